//! Policy: profile files (raw) → host-resolved [`SandboxSpec`](crate::sandbox::spec::SandboxSpec).
//!
//! Precedence, highest first: command-line flags, then the selected profile, then the built-in
//! defaults of this module. Everything that needs the host (canonical paths, the `node` prefix,
//! resolving the program on `PATH`) happens here, never in `sandbox/`.

pub mod allowance;
pub mod allowlist;
pub mod edit;
pub mod file;
pub mod layers;
pub mod package;
pub mod presets;
mod resolve;

use std::path::{Path, PathBuf};
use std::time::Duration;

use thiserror::Error;

pub use file::ProfileFile;
pub use resolve::resolve;

/// The built-in default profile (`sandbox-profiles/default.toml`).
pub const DEFAULT_PROFILE: &str = include_str!("../../sandbox-profiles/default.toml");

/// Facts about the host and the caller that resolution needs.
#[derive(Debug, Clone)]
pub struct ResolveContext {
    /// Caller's uid.
    pub uid: u32,
    /// Caller's gid.
    pub gid: u32,
    /// Caller's `HOME` (where the throwaway home is mounted).
    pub home: PathBuf,
    /// Current directory.
    pub cwd: PathBuf,
    /// The caller's environment.
    pub env: Vec<(String, String)>,
}

impl ResolveContext {
    /// Read the context from this process.
    pub fn from_process() -> std::io::Result<Self> {
        let env: Vec<(String, String)> = std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
            .collect();
        let home = env
            .iter()
            .find(|(k, _)| k == "HOME")
            .map(|(_, v)| PathBuf::from(v))
            .unwrap_or_default();
        Ok(ResolveContext {
            uid: nix::unistd::getuid().as_raw(),
            gid: nix::unistd::getgid().as_raw(),
            home,
            cwd: std::env::current_dir()?,
            env,
        })
    }

    /// A variable of the caller's environment.
    pub fn var(&self, name: &str) -> Option<&str> {
        self.env
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Find an executable on the caller's `PATH`.
    pub fn which(&self, name: &str) -> Option<PathBuf> {
        search_path(self.var("PATH").unwrap_or(DEFAULT_PATH), name, &self.cwd)
    }
}

/// `PATH` used when the caller has none.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

pub use crate::util::search_path;

/// What the caller asked for on top of the profile (from `ringfence run` flags).
#[derive(Debug, Clone, Default)]
pub struct RunRequest {
    /// The command and its arguments.
    pub command: Vec<String>,
    /// Extra writable paths.
    pub rw: Vec<PathBuf>,
    /// Extra read-only paths.
    pub ro: Vec<PathBuf>,
    /// Wall-clock limit override.
    pub timeout: Option<Duration>,
    /// `NAME` (pass the caller's value) or `NAME=VALUE`.
    pub env: Vec<String>,
    /// Working directory override.
    pub cwd: Option<PathBuf>,
    /// The exact environment to give the command (replayed npm scripts get npm's), instead of
    /// the profile's allowlist filtering of the caller's environment.
    pub base_env: Option<Vec<(String, String)>>,
    /// Wall-clock limit for this package from the profile's `[package."<name>"]` section.
    pub package: Option<String>,
    /// Containment only: no sinkhole (and the caller plants no decoys).
    pub no_record: bool,
    /// Forensic recording (every open, not only writes).
    pub forensic: bool,
    /// Files inside visible paths that must not be readable (secrets of the project).
    pub deny: Vec<PathBuf>,
}

/// Something worth telling the user that does not stop the run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// Stable kebab-case code.
    pub code: &'static str,
    /// One-line message.
    pub message: String,
    /// What would make it go away.
    pub hint: Option<String>,
}

/// Problems with the profile or the request; all are exit code 2.
#[derive(Debug, Error)]
pub enum PolicyError {
    /// The profile file could not be read.
    #[error("reading profile `{}`", path.display())]
    ReadProfile {
        /// Path.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// The profile is not valid TOML for our schema.
    #[error("parsing profile `{name}` [policy-parse]")]
    ParseProfile {
        /// Path or `default`.
        name: String,
        /// Cause.
        #[source]
        source: Box<toml::de::Error>,
    },
    /// Unsupported `version`.
    #[error(
        "profile `{name}` has version {found}; this ringfence reads version {} [policy-version]",
        file::CURRENT_VERSION
    )]
    Version {
        /// Path or `default`.
        name: String,
        /// Version found.
        found: u32,
    },
    /// Invalid entries, all reported at once.
    #[error("invalid sandbox policy:\n{}", .0.iter().map(|d| format!("  - {d}")).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<String>),
    /// The command was not found.
    #[error("command not found: `{0}`")]
    CommandNotFound(String),
    /// The command exists but would not be visible inside the sandbox.
    #[error("`{}` is not visible inside the sandbox", path.display())]
    CommandNotVisible {
        /// Program.
        path: PathBuf,
        /// Directory to expose.
        dir: PathBuf,
    },
    /// The process context could not be read.
    #[error("reading the current directory")]
    Context(#[source] std::io::Error),
}

impl PolicyError {
    /// What would fix it, when there is one thing to do.
    pub fn hint(&self) -> Option<String> {
        match self {
            PolicyError::CommandNotVisible { dir, .. } => {
                Some(format!("pass `--ro {}`", dir.display()))
            }
            _ => None,
        }
    }
}

/// Load a profile from a file, or the built-in default when `path` is `None`.
pub fn load(path: Option<&Path>) -> Result<ProfileFile, PolicyError> {
    let (name, text) = match path {
        None => ("default".to_string(), DEFAULT_PROFILE.to_string()),
        Some(p) => (
            p.display().to_string(),
            std::fs::read_to_string(p).map_err(|source| PolicyError::ReadProfile {
                path: p.to_path_buf(),
                source,
            })?,
        ),
    };
    parse_checked_profile(&name, &text)
}

/// Parse a profile's text (`name` for messages) and check its per-package entries.
pub fn parse_checked_profile(name: &str, text: &str) -> Result<ProfileFile, PolicyError> {
    let profile: ProfileFile = parse_versioned(name, text, |p: &ProfileFile| p.version)?;
    let problems = check_packages(&profile.package, name, text);
    if !problems.is_empty() {
        return Err(PolicyError::Invalid(problems));
    }
    Ok(profile)
}

/// The project's own policy file, found at the project root (`ringfence.toml`): the profile
/// schema, layered over the profile ([`layers`]: lists add entries, values replace). Only data;
/// nothing in it executes.
pub const PROJECT_FILE: &str = "ringfence.toml";

/// Parse and check a project file's text (`name` for messages).
pub fn check_project_text(name: &str, text: &str) -> Result<ProfileFile, PolicyError> {
    let file: ProfileFile = parse_versioned(name, text, |f: &ProfileFile| f.version)?;
    let problems = check_packages(&file.package, name, text);
    if !problems.is_empty() {
        return Err(PolicyError::Invalid(problems));
    }
    Ok(file)
}

/// Parse a policy file (`name` for messages) and check its format version.
fn parse_versioned<T: serde::de::DeserializeOwned>(
    name: &str,
    text: &str,
    version: impl Fn(&T) -> u32,
) -> Result<T, PolicyError> {
    let parsed: T = toml::from_str(text).map_err(|source| PolicyError::ParseProfile {
        name: name.to_string(),
        source: Box::new(source),
    })?;
    let found = version(&parsed);
    if found != file::CURRENT_VERSION {
        return Err(PolicyError::Version {
            name: name.to_string(),
            found,
        });
    }
    Ok(parsed)
}

/// Every problem of the per-package sections, each as `file:line: what [code]` (the line of
/// the entry in `text`, or of its section).
fn check_packages(
    packages: &std::collections::BTreeMap<String, file::PackageSection>,
    name: &str,
    text: &str,
) -> Vec<String> {
    let line_of = |needle: &str| -> Option<usize> {
        text.lines().position(|l| l.contains(needle)).map(|i| i + 1)
    };
    let at = |line: Option<usize>| match line {
        Some(l) => format!("{name}:{l}"),
        None => name.to_string(),
    };
    let mut problems = Vec::new();
    for (pkg, section) in packages {
        let header =
            line_of(&format!("package.\"{pkg}\"]")).or_else(|| line_of(&format!("package.{pkg}]")));
        let no_reason = section.reason.as_deref().is_none_or(str::is_empty);
        if section.write.is_empty() && section.shadow_bins == Some(true) && no_reason {
            problems.push(format!(
                "{}: [package.\"{pkg}\"] allows its shadowing bins but gives no `reason` (every allowance needs one) [policy-allowance-reason]",
                at(header)
            ));
        }
        if !section.write.is_empty() && no_reason {
            problems.push(format!(
                "{}: [package.\"{pkg}\"] allows writes but gives no `reason` (every allowance needs one) [policy-allowance-reason]",
                at(header)
            ));
        }
        for w in &section.write {
            let p = Path::new(w);
            if p.is_absolute()
                || p.components()
                    .any(|c| !matches!(c, std::path::Component::Normal(_)))
            {
                problems.push(format!(
                    "{}: [package.\"{pkg}\"] write `{w}` must be a normalised path relative to the project root, inside it [policy-allowance-path]",
                    at(line_of(&format!("{w:?}")).or(header))
                ));
            }
        }
    }
    problems
}
