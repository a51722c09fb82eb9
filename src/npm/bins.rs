//! Bins that shadow system commands: npm puts `node_modules/.bin` first on every script's PATH.

use std::path::Path;

use super::Notice;

/// Bins named like a system or toolchain command ([`crate::util::SHADOWABLE`]) in the
/// project's `node_modules/.bin` and in every package's nested `node_modules/.bin`
/// (`locations` are the lockfile's): npm puts those directories first on the PATH of every
/// later script below them (the root project's included), so such a bin runs instead of the
/// real command. ringfence runs scripts with the system's shell; each shadow is reported,
/// attributed to the package the bin belongs to (and its use by a script is a finding of the
/// recorder). A command's own distribution (npm's `npm`) is not a shadow.
pub fn shadowing_bins<'a>(project: &Path, locations: impl Iterator<Item = &'a str>) -> Vec<Notice> {
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
                .is_some_and(|o| crate::util::bin_is_the_commands_own(name, o))
            {
                continue;
            }
            let owner = owner.unwrap_or_else(|| "an unknown package".into());
            out.push(Notice {
                code: "bin-shadows-command",
                location: Some(format!("{prefix}/{owner}")),
                message: format!(
                    "{owner} ships a bin `{name}` that shadows the system command for every later script below `{prefix}` (ringfence runs scripts with the system's shell; other commands they call by name resolve to the bin)"
                ),
            });
        }
    }
    out
}
