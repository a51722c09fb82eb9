//! The raw serde model of `sandbox-profiles/*.toml`. Parsing only: presets and paths are
//! strings here; host discovery happens in [`super::resolve`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::sandbox::spec::Level;

/// The profile format version this build reads.
pub const CURRENT_VERSION: u32 = 1;

/// A whole profile file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ProfileFile {
    /// Format version; must be [`CURRENT_VERSION`].
    pub version: u32,
    /// What the profile is for.
    #[serde(default)]
    pub description: Option<String>,
    /// Filesystem view.
    #[serde(default)]
    pub fs: FsSection,
    /// Environment.
    #[serde(default)]
    pub env: EnvSection,
    /// Resource limits.
    #[serde(default)]
    pub limits: LimitsSection,
    /// Required/best-effort levels.
    #[serde(default)]
    pub enforcement: EnforcementSection,
    /// Miscellaneous sandbox settings.
    #[serde(default)]
    pub sandbox: SandboxSection,
    /// Network.
    #[serde(default)]
    pub net: NetSection,
    /// `install`/`ci` behaviour.
    #[serde(default)]
    pub install: InstallSection,
    /// Per-package settings, by package name.
    #[serde(default)]
    pub package: BTreeMap<String, PackageSection>,
}

/// `[install]`: what `--strict` and `--only-approved` give, for a project that always wants it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct InstallSection {
    /// As `--strict`: exit 1 when a script was skipped, failed (even an optional one), timed
    /// out or had something it needed refused.
    pub strict: Option<bool>,
    /// As `--only-approved`: run only approved dependency scripts.
    pub only_approved: Option<bool>,
    /// What to do with a package's bin named like a system or toolchain command (`node`,
    /// `sh`, `git`…), which npm puts first on every later script's PATH: `report` it (the
    /// default; running it is a `shadow-bin-run` finding) or `refuse` it (its link is removed
    /// from `node_modules/.bin` before any script runs).
    pub shadowing_bins: Option<ShadowingBins>,
}

/// `[install] shadowing-bins`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ShadowingBins {
    /// Reported (a warning; running one is a finding).
    Report,
    /// Removed from `node_modules/.bin` before any script runs.
    Refuse,
}

/// `[net]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct NetSection {
    /// Record network attempts with the in-namespace sinkhole (default true). Nothing is ever
    /// forwarded: with or without it, the sandbox has no network.
    pub record: Option<bool>,
}

/// `[package."<name>"]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct PackageSection {
    /// Wall-clock limit for this package's scripts (e.g. a long native build).
    pub timeout: Option<String>,
    /// Extra writable paths for this package's scripts, relative to the project root (they must
    /// stay inside it), e.g. `node_modules/.prisma/` for `@prisma/client`'s generated client. A
    /// trailing `/` names a directory (created when missing); an existing path is allowed as
    /// what it is; a missing one without the slash is a file when its name has an extension
    /// (`lefthook.yml`: created empty for the run, removed again if the script left it empty),
    /// otherwise a directory.
    #[serde(default)]
    pub write: Vec<String>,
    /// Its bins named like system commands are that command's own distribution: neither
    /// reported nor refused (`[install] shadowing-bins`). Needs a `reason`.
    pub shadow_bins: Option<bool>,
    /// Why the allowance is needed: required whenever `write` is not empty or `shadow-bins`
    /// is set.
    pub reason: Option<String>,
}

/// `[fs]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct FsSection {
    /// Read-only paths or `@presets`.
    #[serde(default)]
    pub read_only: Vec<String>,
    /// Writable paths.
    #[serde(default)]
    pub read_write: Vec<String>,
}

/// `[env]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct EnvSection {
    /// Host variables passed through (`PREFIX*` wildcards allowed).
    #[serde(default)]
    pub pass: Vec<String>,
    /// Variables set to fixed values.
    #[serde(default)]
    pub set: BTreeMap<String, String>,
}

/// `[limits]`. Durations like `"90s"`, `"15m"`; sizes like `"512MiB"`, `"8GiB"`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct LimitsSection {
    /// Wall-clock limit (`"0"` for none).
    pub timeout: Option<String>,
    /// `RLIMIT_NPROC`.
    pub nproc: Option<u64>,
    /// `RLIMIT_NOFILE`.
    pub nofile: Option<u64>,
    /// `RLIMIT_FSIZE`.
    pub fsize: Option<String>,
    /// `RLIMIT_CPU` as a duration.
    pub cpu: Option<String>,
    /// Private `/tmp` size.
    pub tmp_size: Option<String>,
    /// Throwaway `HOME` size.
    pub home_size: Option<String>,
    /// Private `/dev/shm` size.
    pub shm_size: Option<String>,
}

/// `[enforcement]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct EnforcementSection {
    /// Landlock level (default best-effort).
    pub landlock: Option<Level>,
    /// seccomp level (default required).
    pub seccomp: Option<Level>,
}

/// `[sandbox]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct SandboxSection {
    /// Hostname inside the sandbox.
    pub hostname: Option<String>,
}

/// Parse `"90s"`, `"15m"`, `"2h"`, `"1500ms"` or a bare number of seconds.
pub fn parse_duration_ms(s: &str) -> Option<u64> {
    let s = s.trim();
    let (num, mult) = if let Some(n) = s.strip_suffix("ms") {
        (n, 1)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1000)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 60_000)
    } else if let Some(n) = s.strip_suffix('h') {
        (n, 3_600_000)
    } else {
        (s, 1000)
    };
    let v: f64 = num.trim().parse().ok()?;
    if !v.is_finite() || v < 0.0 {
        return None;
    }
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    Some((v * mult as f64).round() as u64)
}

/// Parse `"512MiB"`, `"8GiB"`, `"64KiB"`, `"1000"` (bytes).
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let units: [(&str, u64); 7] = [
        ("KiB", 1 << 10),
        ("MiB", 1 << 20),
        ("GiB", 1 << 30),
        ("TiB", 1 << 40),
        ("K", 1 << 10),
        ("M", 1 << 20),
        ("G", 1 << 30),
    ];
    for (suffix, mult) in units {
        if let Some(n) = s.strip_suffix(suffix) {
            return n.trim().parse::<u64>().ok()?.checked_mul(mult);
        }
    }
    s.strip_suffix('B').unwrap_or(s).trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_profile_parses() {
        let p: ProfileFile = toml::from_str(super::super::DEFAULT_PROFILE).unwrap();
        assert_eq!(p.version, 1);
        assert!(p.fs.read_only.contains(&"@system".to_string()));
        assert_eq!(p.enforcement.seccomp, Some(Level::Required));
        assert_eq!(p.limits.timeout.as_deref(), Some("15m"));
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let err = toml::from_str::<ProfileFile>("version = 1\n[fs]\nread-onyl = []\n").unwrap_err();
        assert!(err.to_string().contains("read-onyl"), "{err}");
    }

    #[test]
    fn round_trip() {
        let p: ProfileFile = toml::from_str(super::super::DEFAULT_PROFILE).unwrap();
        let text = toml::to_string(&p).unwrap();
        assert_eq!(toml::from_str::<ProfileFile>(&text).unwrap(), p);
    }

    #[test]
    fn durations_and_sizes() {
        assert_eq!(parse_duration_ms("15m"), Some(900_000));
        assert_eq!(parse_duration_ms("1.5"), Some(1500));
        assert_eq!(parse_duration_ms("250ms"), Some(250));
        assert_eq!(parse_duration_ms("-1"), None);
        assert_eq!(parse_size("8GiB"), Some(8 << 30));
        assert_eq!(parse_size("512MiB"), Some(512 << 20));
        assert_eq!(parse_size("100"), Some(100));
        assert_eq!(parse_size("lots"), None);
    }
}
