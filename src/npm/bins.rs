//! Bins that shadow system commands: npm puts `node_modules/.bin` first on every script's PATH.

use std::path::Path;

use super::Notice;

/// Bins named like a system or toolchain command ([`crate::util::SHADOWABLE`]) in the
/// project's `node_modules/.bin` and in every package's nested `node_modules/.bin`
/// (`locations` are the lockfile's): npm puts those directories first on the PATH of every
/// later script below them (the root project's included), so such a bin runs instead of the
/// real command. ringfence runs scripts with the system's shell; each shadow is reported,
/// attributed to the package the bin belongs to (and its use by a script is a finding of the
/// recorder). A command's own distribution (npm's `npm`) is not a shadow, nor are the bins of a
/// package `exempt` says policy allows.
pub fn shadowing_bins<'a>(
    project: &Path,
    locations: impl Iterator<Item = &'a str>,
    exempt: &dyn Fn(&str) -> bool,
) -> Vec<Shadow> {
    let mut dirs = vec![String::new()];
    dirs.extend(
        locations
            .filter(|l| !l.is_empty())
            .filter(|l| project.join(l).join("node_modules/.bin").is_dir())
            .take(10_000)
            .map(str::to_string),
    );
    let mut out = Vec::new();
    for dir in dirs {
        let prefix = if dir.is_empty() {
            "node_modules".to_string()
        } else {
            format!("{dir}/node_modules")
        };
        let bin = project.join(&prefix).join(".bin");
        for name in crate::util::SHADOWABLE {
            let link = bin.join(name);
            let Ok(meta) = std::fs::symlink_metadata(&link) else {
                continue;
            };
            let owner = meta
                .file_type()
                .is_symlink()
                .then(|| std::fs::read_link(&link).ok())
                .flatten()
                .and_then(|t| crate::util::bin_owner(&t));
            if owner
                .as_deref()
                .is_some_and(|o| crate::util::bin_is_the_commands_own(name, o) || exempt(o))
            {
                continue;
            }
            out.push(Shadow {
                command: name,
                owner,
                modules: prefix.clone(),
                link,
            });
        }
    }
    out
}

/// A bin named like a system or toolchain command.
#[derive(Debug, Clone)]
pub struct Shadow {
    /// The command it shadows.
    pub command: &'static str,
    /// The package it belongs to (its link's target), when that can be told.
    pub owner: Option<String>,
    /// The `node_modules` whose `.bin` holds it, relative to the project.
    pub modules: String,
    /// The link itself.
    pub link: std::path::PathBuf,
}

impl Shadow {
    fn owner(&self) -> &str {
        self.owner.as_deref().unwrap_or("an unknown package")
    }

    /// What the report and the summary say about it.
    pub fn notice(&self) -> Notice {
        Notice {
            code: "bin-shadows-command",
            location: Some(format!("{}/{}", self.modules, self.owner())),
            message: format!(
                "{} ships a bin `{}` that shadows the system command for every later script below `{}` (ringfence runs scripts with the system's shell; other commands they call by name resolve to the bin; `[install] shadowing-bins = \"refuse\"` in ringfence.toml removes such bins before scripts run)",
                self.owner(),
                self.command,
                self.modules
            ),
        }
    }

    /// Refuse it: remove the link (never what it points at) from the `.bin` directory, before
    /// any script runs. The notice says what was removed and the allowance that keeps it.
    pub fn refuse(&self) -> Notice {
        let removed = std::fs::symlink_metadata(&self.link)
            .is_ok_and(|m| !m.is_dir())
            .then(|| std::fs::remove_file(&self.link));
        let what = match removed {
            Some(Ok(())) => "removed",
            Some(Err(_)) | None => "could not remove",
        };
        Notice {
            code: "bin-shadow-refused",
            location: Some(format!("{}/{}", self.modules, self.owner())),
            message: format!(
                "{what} `{}/.bin/{}`: a bin of {} that shadows the system command ([install] shadowing-bins = \"refuse\"); to keep it, add to ringfence.toml: [package.\"{}\"] shadow-bins = true, reason = \"<why>\"",
                self.modules,
                self.command,
                self.owner(),
                self.owner()
            ),
        }
    }
}
