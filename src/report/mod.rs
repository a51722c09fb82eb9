//! The JSON report (`--report FILE`), schema version 1.
//!
//! ```text
//! {
//!   "schema_version": 1,
//!   "tool": { "name": "ringfence", "version": "0.1.0" },
//!   "runs": [ {
//!       "package": {                           // install/ci only
//!         "name": "esbuild", "version": "0.28.2", "location": "node_modules/esbuild",
//!         "event": "postinstall", "kind": "dependency" | "link" | "root",
//!         "integrity": "sha512-…" | null, "script_sha256": "…",
//!         "outcome": "ok" | "failed" | "optional-failed" },
//!       "command": ["sh", "-c", "…"],          // argv as executed
//!       "program": "/usr/bin/sh",              // absolute path executed
//!       "cwd": "/home/u/proj",
//!       "started_unix_ms": 1764061200000,
//!       "duration_ms": 12.5,                   // spawn of the sandbox to its teardown
//!       "exit": { "code": 0 } | { "signal": 9 },
//!       "exit_status": 0,                      // code, or 128 + signal
//!       "timed_out": false,
//!       "timeout_ms": 900000 | null,
//!       "view": { "read_only": [...], "read_write": [...], "home": "/home/u" },
//!       "enforcement": {
//!         "namespaces": { "user": S, "mount": S, "pid": S, "net": S, "ipc": S, "uts": S },
//!         "landlock": { "status": S, "requested_abi": 7, "kernel_abi": 7 | null },
//!         "seccomp": { "status": S, "filters": 4 },
//!         "capabilities": S, "no_new_privs": S,
//!         "rlimits": { "status": S, "nproc": 1024, "nofile": 4096, "fsize": 8589934592, "core": 0 }
//!       },
//!       "survivors": [ { "pid": 7, "ppid": 1, "argv": ["sleep", "100"] } ],
//!       "findings": [ { "kind": "secret-read" | "exfiltration" | "network-attempt" |
//!                        "persistence-attempt" | "tamper-attempt" | "escape-attempt" |
//!                        "survivor" | "fingerprinting",
//!                       "severity": "info" | "low" | "medium" | "high" | "critical",
//!                       "summary": "read decoy npm token `~/.npmrc`",
//!                       "target": "/home/u/.npmrc", "detail": "…" } ],
//!       "canaries": [ { "id": "npmrc-token", "value": "npm_…" } ],  // fake values
//!       "spawned": [ { "argv": ["/usr/bin/gcc", "-c", "…"], "count": 12 } ],
//!       "env_probes": [ { "name": "CI", "op": "get" | "has" | "list",
//!                         "process": { "pid": 3, "argv": ["node", "x.js"] }, "at_unix_ms": … } ]
//!   } ],
//!   "warnings": [ { "code": "git-prepare-skipped", "location": "node_modules/x", "message": "…" } ]
//! }
//! ```
//! where `S` is `"fully_enforced" | "partially_enforced" | "not_enforced"`, each with a
//! `"detail"` string where the status needs explaining. Fields are only ever added within a schema
//! version; a removal or change of meaning bumps `schema_version`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

mod build;

pub use build::install_summary;
use thiserror::Error;

use crate::observe::Finding;
use crate::observe::decoys::Canary;
use crate::sandbox::channel::ProcessInfo;
use crate::sandbox::landlock::{LandlockOutcome, Status};

/// Current report schema version.
pub const SCHEMA_VERSION: u32 = 1;

/// The whole report.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    /// Schema version ([`SCHEMA_VERSION`]).
    pub schema_version: u32,
    /// Who wrote it.
    pub tool: Tool,
    /// One entry per sandboxed command.
    pub runs: Vec<ScriptRun>,
    /// Things the user should know that are not about one script run (e.g. a git dependency
    /// whose fetch-time `prepare` npm would have run).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<ReportWarning>,
    /// `install`/`ci` only: what npm installed and which packages had nothing to run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub install: Option<InstallSummary>,
    /// `install`/`ci` with a `ringfence-approvals.json`: how each approved package's runs
    /// compared with their approved behaviour.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approvals: Option<ApprovalsSummary>,
    /// `replay` only: the modes replayed and how their behaviour differed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replay: Option<ReplaySummary>,
    /// ringfence itself failed (exit 2): what, and what to do. A report with an error is never
    /// a clean install, whatever `runs` holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<RunFailure>,
}

/// Why ringfence could not do its job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunFailure {
    /// The error and its causes, one per line.
    pub message: String,
    /// The cause ringfence diagnosed, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
    /// What to do about it, if ringfence knows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

/// A forensic replay: the same packages installed once per mode.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplaySummary {
    /// What was replayed, as given.
    pub specs: Vec<String>,
    /// Each mode, in order.
    pub modes: Vec<ReplayMode>,
    /// What happened in one mode and not in the other(s).
    pub differences: Vec<Difference>,
}

/// One replay mode.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplayMode {
    /// `dev` (no CI variables) or `ci` (`CI=true`, `GITHUB_ACTIONS=true`).
    pub mode: String,
    /// The environment changes that make the mode.
    pub env: Vec<String>,
    /// The install's exit status (as `ringfence install` would have exited), or 2 when it
    /// could not run.
    pub exit_status: i32,
}

/// A behaviour seen in one mode only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Difference {
    /// The mode it happened in.
    pub only_in: String,
    /// The package.
    pub package: String,
    /// A finding kind, or `timed-out` / `failed` for how a script ended.
    pub what: String,
    /// The finding's severity, if it is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<crate::observe::Severity>,
    /// The finding's target, or the lifecycle event.
    pub target: String,
    /// One line.
    pub summary: String,
}

/// The packages of an install, as far as scripts go.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstallSummary {
    /// Packages npm added or changed (dependencies and links; the root project not counted).
    pub packages: usize,
    /// Of those, how many had lifecycle scripts (explicit or an implicit `node-gyp rebuild`).
    pub with_scripts: usize,
    /// The others: nothing of theirs runs at install time, so ringfence saw nothing of them.
    /// That is *no install-time behaviour*, not "clean": their runtime code is not examined.
    pub no_install_time_behaviour: Vec<PackageId>,
    /// Scripts not run: denied by an allowlist, or unreviewed under `--only-approved`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skipped: Vec<SkippedScript>,
    /// Dependency scripts that ran with no approval from any source (an allowlist entry or
    /// `ringfence-approvals.json`): sandboxed and recorded like every other, but nobody has
    /// reviewed them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unreviewed: Vec<PackageId>,
}

/// What the project's approvals said about an install.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalsSummary {
    /// The lock file, relative to the project root.
    pub file: String,
    /// Runs of approved packages that stayed within their approval (same version and script).
    pub within: usize,
    /// Approvals carried over to a new version or script with the same or less behaviour.
    pub carried: Vec<CarriedApproval>,
    /// Runs that did more than their approval records (each also has a `behaviour-changed`
    /// finding).
    pub changed: Vec<ChangedBehaviour>,
    /// Approved packages not in the installed tree.
    pub unused: Vec<String>,
    /// The lock file was rewritten with the carried-over approvals (`install`; `ci` never
    /// writes it).
    pub lock_updated: bool,
}

/// An approval that carried over.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CarriedApproval {
    /// Package name.
    pub name: String,
    /// The version it now covers.
    pub version: String,
    /// Lifecycle event.
    pub event: String,
    /// The versions it was given for before.
    pub from: Vec<String>,
}

/// A run that did more than approved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangedBehaviour {
    /// Package name.
    pub name: String,
    /// Version that ran.
    pub version: String,
    /// Lifecycle event.
    pub event: String,
    /// The versions the approval was given for.
    pub approved_versions: Vec<String>,
    /// What is new, by category (`network`, `secrets`, `credential variables`, `commands`,
    /// `writes`, `other`).
    pub new: BTreeMap<String, Vec<String>>,
}

/// A script that was not run because of an allowlist or `--only-approved`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkippedScript {
    /// Package name.
    pub name: String,
    /// Version.
    pub version: String,
    /// Lockfile location.
    pub location: String,
    /// Lifecycle event.
    pub event: String,
    /// `denied` (an allowlist entry says no) or `unreviewed` (`--only-approved` and nothing
    /// approves it).
    pub reason: String,
    /// The entry that decided (`package.json:12 npm allowScripts "fsevents": false`) or
    /// `--only-approved`.
    pub by: String,
}

/// A package by name, version and lockfile location.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackageId {
    /// Name.
    pub name: String,
    /// Version.
    pub version: String,
    /// Lockfile location (`node_modules/x`).
    pub location: String,
}

/// A report-level warning.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportWarning {
    /// Stable kebab-case code.
    pub code: String,
    /// Lockfile location of the package concerned, if any.
    pub location: Option<String>,
    /// One-line message.
    pub message: String,
}

/// Tool identification.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Tool {
    /// `ringfence`.
    pub name: String,
    /// Crate version.
    pub version: String,
}

/// How the command ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Exit {
    /// Exit code.
    Code(i32),
    /// Killing signal.
    Signal(i32),
}

/// A mechanism's achieved status with an optional explanation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mechanism {
    /// Achieved status.
    pub status: Status,
    /// Why it is not fully enforced, or what it covers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl Mechanism {
    fn full() -> Self {
        Mechanism {
            status: Status::FullyEnforced,
            detail: None,
        }
    }
}

/// Namespace statuses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Namespaces {
    /// user namespace (uid mapped to itself).
    pub user: Mechanism,
    /// mount namespace with a tmpfs root.
    pub mount: Mechanism,
    /// pid namespace with our own pid 1.
    pub pid: Mechanism,
    /// empty network namespace.
    pub net: Mechanism,
    /// ipc namespace.
    pub ipc: Mechanism,
    /// uts namespace.
    pub uts: Mechanism,
}

/// seccomp status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeccompStatus {
    /// Achieved status.
    pub status: Status,
    /// Number of filters installed.
    pub filters: usize,
}

/// rlimits status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RlimitStatus {
    /// Achieved status.
    pub status: Status,
    /// Why not fully enforced.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// `RLIMIT_NPROC`.
    pub nproc: u64,
    /// `RLIMIT_NOFILE`.
    pub nofile: u64,
    /// `RLIMIT_FSIZE`.
    pub fsize: u64,
    /// `RLIMIT_CORE`.
    pub core: u64,
}

/// The recorder's detail when recording was not asked for.
pub const RECORDING_OFF: &str = "recording off (--no-record)";

impl Enforcement {
    /// Recording was asked for but the syscall recorder was not attached: the run's writes,
    /// execs and connections were denied but not recorded.
    pub fn recorder_missing(&self) -> Option<&str> {
        let m = self.recorder.as_ref()?;
        let off = m.detail.as_deref() == Some(RECORDING_OFF);
        (m.status != crate::sandbox::landlock::Status::FullyEnforced && !off)
            .then(|| m.detail.as_deref().unwrap_or("unavailable"))
    }
}

/// Everything that was enforced for one run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Enforcement {
    /// Namespaces.
    pub namespaces: Namespaces,
    /// Landlock.
    pub landlock: LandlockOutcome,
    /// seccomp deny filters.
    pub seccomp: SeccompStatus,
    /// All capability sets empty, securebits locked.
    pub capabilities: Mechanism,
    /// `PR_SET_NO_NEW_PRIVS`.
    pub no_new_privs: Mechanism,
    /// Resource limits.
    pub rlimits: RlimitStatus,
    /// The syscall recorder (absent when setup did not finish).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recorder: Option<Mechanism>,
    /// The isolation tier: `full` (namespaces) or `landlock` (no namespaces).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier: Option<String>,
}

/// What the command could see.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct View {
    /// Host paths visible read-only (system view included).
    pub read_only: Vec<PathBuf>,
    /// Host paths visible writable.
    pub read_write: Vec<PathBuf>,
    /// The throwaway home's path.
    pub home: PathBuf,
}

/// The npm package and lifecycle event a run belongs to (`install`/`ci` only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackageRef {
    /// Package name.
    pub name: String,
    /// Version.
    pub version: String,
    /// Lockfile location (`node_modules/a/node_modules/c`; empty for the root project).
    pub location: String,
    /// Lifecycle event.
    pub event: String,
    /// `dependency`, `link` or `root`.
    pub kind: String,
    /// npm's integrity for the package, when known.
    pub integrity: Option<String>,
    /// SHA-256 of the script command (hex), to tell scripts apart across versions.
    pub script_sha256: String,
    /// The outcome in npm's terms: `ok`, `failed`, `optional-failed` (the optional set was
    /// removed, as npm does) or `skipped-after-failure`.
    pub outcome: String,
}

/// One sandboxed command.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScriptRun {
    /// The package and event (`install`/`ci` only).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub package: Option<PackageRef>,
    /// argv.
    pub command: Vec<String>,
    /// Absolute program path.
    pub program: PathBuf,
    /// Working directory.
    pub cwd: PathBuf,
    /// Start time, milliseconds since the Unix epoch.
    pub started_unix_ms: u64,
    /// Wall time in milliseconds.
    pub duration_ms: f64,
    /// How it ended.
    pub exit: Exit,
    /// Exit code, or 128 + signal.
    pub exit_status: i32,
    /// Killed by the wall-clock limit.
    pub timed_out: bool,
    /// The wall-clock limit.
    pub timeout_ms: Option<u64>,
    /// Mount view.
    pub view: View,
    /// Enforcement.
    pub enforcement: Enforcement,
    /// Processes alive when the command exited (killed afterwards).
    pub survivors: Vec<ProcessInfo>,
    /// What the run tried, classified, most severe first.
    pub findings: Vec<Finding>,
    /// The canaries planted for this run (decoy files and environment). Fake values by
    /// construction: they identify what was taken if it shows up elsewhere.
    pub canaries: Vec<Canary>,
    /// Distinct command lines the script ran (from the syscall recorder), with counts.
    pub spawned: Vec<crate::observe::syscalls::Spawned>,
    /// Environment variable names the script's node processes looked up, first occurrence each,
    /// in time order (`*` = the whole environment listed).
    #[serde(default)]
    pub env_probes: Vec<crate::observe::envprobe::EnvProbe>,
    /// `replay` only: the mode this run belongs to (`dev` or `ci`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replay_mode: Option<String>,
    /// `install`/`ci`: not run this time: its outputs were restored from the build cache entry
    /// with this key, and everything else here is the original run's (its findings included).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cached: Option<String>,
    /// `install`/`ci`: writes the sandbox refused, each with the `write` allowance that would
    /// permit it. A script that exited 0 with refusals is probably incomplete.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub refused: Vec<crate::policy::allowance::Refusal>,
}

/// Writing the report failed.
#[derive(Debug, Error)]
pub enum ReportError {
    /// Serialising or writing failed.
    #[error("writing report `{}`", path.display())]
    Write {
        /// Path.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
}

impl Report {
    /// A report with these runs.
    pub fn new(runs: Vec<ScriptRun>) -> Self {
        Report {
            schema_version: SCHEMA_VERSION,
            tool: Tool {
                name: env!("CARGO_PKG_NAME").into(),
                version: env!("CARGO_PKG_VERSION").into(),
            },
            runs,
            warnings: Vec::new(),
            install: None,
            approvals: None,
            replay: None,
            error: None,
        }
    }

    /// Write as pretty JSON (atomically: temp file + rename).
    pub fn write(&self, path: &Path) -> Result<(), ReportError> {
        let err = |source| ReportError::Write {
            path: path.to_path_buf(),
            source,
        };
        let mut json = serde_json::to_vec_pretty(self).map_err(|e| err(e.into()))?;
        json.push(b'\n');
        crate::util::write_atomic(path, &json).map_err(err)
    }
}

impl Report {
    /// The most severe finding across all runs.
    pub fn worst(&self) -> Option<crate::observe::Severity> {
        self.runs
            .iter()
            .flat_map(|r| r.findings.iter().map(|f| f.severity))
            .max()
    }
}

impl ScriptRun {
    /// The most severe finding's severity.
    pub fn worst(&self) -> Option<crate::observe::Severity> {
        self.findings.iter().map(|f| f.severity).max()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::observe::Finding;
    use crate::sandbox::landlock::{LandlockOutcome, Status};

    pub(crate) fn run(name: &str, event: &str, outcome: &str, findings: Vec<Finding>) -> ScriptRun {
        let full = || Mechanism {
            status: Status::FullyEnforced,
            detail: None,
        };
        ScriptRun {
            package: Some(PackageRef {
                name: name.into(),
                version: "1.0.0".into(),
                location: format!("node_modules/{name}"),
                event: event.into(),
                kind: "dependency".into(),
                integrity: None,
                script_sha256: "0".repeat(64),
                outcome: outcome.into(),
            }),
            command: vec!["sh".into(), "-c".into(), "x".into()],
            program: "/usr/bin/sh".into(),
            cwd: "/p".into(),
            started_unix_ms: 0,
            duration_ms: 1234.0,
            exit: Exit::Code(0),
            exit_status: 0,
            timed_out: false,
            timeout_ms: None,
            view: View {
                read_only: vec![],
                read_write: vec![],
                home: "/h".into(),
            },
            enforcement: Enforcement {
                namespaces: Namespaces {
                    user: full(),
                    mount: full(),
                    pid: full(),
                    net: full(),
                    ipc: full(),
                    uts: full(),
                },
                landlock: LandlockOutcome {
                    status: Status::FullyEnforced,
                    requested_abi: 7,
                    kernel_abi: Some(7),
                },
                seccomp: SeccompStatus {
                    status: Status::FullyEnforced,
                    filters: 3,
                },
                capabilities: full(),
                no_new_privs: full(),
                recorder: Some(full()),
                tier: Some("full".into()),
                rlimits: RlimitStatus {
                    status: Status::FullyEnforced,
                    detail: None,
                    nproc: 1,
                    nofile: 1,
                    fsize: 1,
                    core: 0,
                },
            },
            survivors: vec![],
            findings,
            canaries: vec![],
            spawned: vec![],
            env_probes: vec![],
            replay_mode: None,
            cached: None,
            refused: Vec::new(),
        }
    }
}
