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
use thiserror::Error;

use crate::observe::Finding;
use crate::observe::decoys::Canary;
use crate::sandbox::channel::{ProcessInfo, Termination};
use crate::sandbox::landlock::{LandlockOutcome, Status};
use crate::sandbox::spec::{MountKind, SandboxSpec};
use crate::sandbox::{Outcome, seccomp::SeccompPlan};

/// Lower-case hex SHA-256 of `data` (script hashes, file evidence).
pub fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Findings shown per run in the human summary (most severe first); the JSON has them all.
const SUMMARY_FINDINGS: usize = 12;

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
    /// `replay` only: the modes replayed and how their behaviour differed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replay: Option<ReplaySummary>,
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
            replay: None,
        }
    }

    /// Write as pretty JSON (atomically: temp file + rename).
    pub fn write(&self, path: &Path) -> Result<(), ReportError> {
        let err = |source| ReportError::Write {
            path: path.to_path_buf(),
            source,
        };
        let json = serde_json::to_vec_pretty(self).map_err(|e| err(e.into()))?;
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(err)?;
        std::io::Write::write_all(&mut tmp, &json).map_err(err)?;
        std::io::Write::write_all(&mut tmp, b"\n").map_err(err)?;
        tmp.persist(path).map_err(|e| err(e.error))?;
        Ok(())
    }
}

impl ScriptRun {
    /// Attach what the observation recorded.
    pub fn observed(&mut self, o: crate::observe::Observed) {
        self.findings = o.findings;
        self.canaries = o.canaries;
        self.spawned = o.spawned;
        self.env_probes = o.env_probes;
    }

    /// Build the entry for one finished run.
    pub fn new(
        spec: &SandboxSpec,
        seccomp: &SeccompPlan,
        outcome: &Outcome,
        started_unix_ms: u64,
    ) -> Self {
        let (exit, exit_status) = match outcome.termination {
            Termination::Exited(c) => (Exit::Code(c), c),
            Termination::Signaled(s) => (Exit::Signal(s), 128 + s),
        };
        let mut view = View {
            read_only: vec![],
            read_write: vec![],
            home: spec.home.clone(),
        };
        for m in &spec.mounts {
            match m.kind {
                MountKind::ReadOnly => view.read_only.push(m.path.clone()),
                MountKind::ReadWrite => view.read_write.push(m.path.clone()),
                _ => {}
            }
        }
        let (landlock, filters) = match &outcome.enforced {
            Some(e) => (e.landlock.clone(), e.seccomp_filters),
            None => (
                LandlockOutcome {
                    status: Status::NotEnforced,
                    requested_abi: crate::sandbox::landlock::PINNED_ABI_NUMBER,
                    kernel_abi: None,
                },
                0,
            ),
        };
        let seccomp_status = if filters == seccomp.filters.len() {
            Status::FullyEnforced
        } else if filters > 0 {
            Status::PartiallyEnforced
        } else {
            Status::NotEnforced
        };
        // RLIMIT_NPROC is not checked for processes whose real uid is the initial namespace's
        // root (kernel/fork.c), even inside a user namespace.
        let (rl_status, rl_detail) = if spec.uid == 0 {
            (
                Status::PartiallyEnforced,
                Some("RLIMIT_NPROC is not enforced by the kernel for host root; the pid namespace still bounds the tree's lifetime".to_string()),
            )
        } else {
            (Status::FullyEnforced, None)
        };
        ScriptRun {
            package: None,
            command: spec.exec.argv.clone(),
            program: spec.exec.program.clone(),
            cwd: spec.exec.cwd.clone(),
            started_unix_ms,
            duration_ms: (outcome.duration.as_secs_f64() * 1000.0 * 1000.0).round() / 1000.0,
            exit,
            exit_status,
            timed_out: outcome.timed_out,
            timeout_ms: spec.limits.timeout_ms,
            view,
            enforcement: Enforcement {
                namespaces: Namespaces {
                    user: Mechanism {
                        status: Status::FullyEnforced,
                        detail: Some(format!(
                            "uid {} and gid {} mapped to themselves",
                            spec.uid, spec.gid
                        )),
                    },
                    mount: Mechanism::full(),
                    pid: Mechanism::full(),
                    net: Mechanism {
                        status: Status::FullyEnforced,
                        detail: Some("empty network namespace, loopback only".into()),
                    },
                    ipc: Mechanism::full(),
                    uts: Mechanism::full(),
                },
                landlock,
                seccomp: SeccompStatus {
                    status: seccomp_status,
                    filters,
                },
                capabilities: Mechanism::full(),
                no_new_privs: Mechanism::full(),
                rlimits: RlimitStatus {
                    status: rl_status,
                    detail: rl_detail,
                    nproc: spec.limits.nproc,
                    nofile: spec.limits.nofile,
                    fsize: spec.limits.fsize,
                    core: 0,
                },
            },
            survivors: outcome.survivors.clone(),
            findings: Vec::new(),
            canaries: Vec::new(),
            spawned: Vec::new(),
            env_probes: Vec::new(),
            replay_mode: None,
            refused: Vec::new(),
        }
    }
}

/// `s` made safe for a terminal: control characters (C0 except tab, DEL, C1), bidirectional
/// overrides and isolates, and other invisible format characters are shown as `\u{…}` escapes,
/// so that a package name, a path or a script's output cannot move the cursor, recolour,
/// reorder or hide text in the summary.
pub fn terminal_safe(s: &str) -> std::borrow::Cow<'_, str> {
    let bad = |c: char| {
        (c.is_control() && c != '\t')
            || matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{061c}' | '\u{feff}')
    };
    if !s.chars().any(bad) {
        return std::borrow::Cow::Borrowed(s);
    }
    std::borrow::Cow::Owned(
        s.chars()
            .map(|c| {
                if bad(c) {
                    format!("\\u{{{:x}}}", u32::from(c))
                } else {
                    c.to_string()
                }
            })
            .collect(),
    )
}

fn severity_label(s: crate::observe::Severity) -> &'static str {
    use crate::observe::Severity::*;
    match s {
        Info => "info",
        Low => "low",
        Medium => "MEDIUM",
        High => "HIGH",
        Critical => "CRITICAL",
    }
}

impl Report {
    /// The human summary printed after `install`/`ci`: a headline, then one line per script run
    /// with its findings underneath.
    pub fn summary(&self, elapsed_secs: f64) -> String {
        use std::fmt::Write as _;
        let mut counts: BTreeMap<crate::observe::Severity, usize> = BTreeMap::new();
        for f in self.runs.iter().flat_map(|r| &r.findings) {
            *counts.entry(f.severity).or_default() += 1;
        }
        let findings = if counts.is_empty() {
            "no findings".to_string()
        } else {
            counts
                .iter()
                .rev()
                .map(|(s, n)| format!("{n} {}", severity_label(*s).to_ascii_lowercase()))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut out = String::new();
        let _ = writeln!(
            out,
            "ringfence: {} lifecycle script(s), each in its own sandbox, {elapsed_secs:.1}s; {findings}",
            self.runs.len()
        );
        for r in &self.runs {
            let (who, outcome) = match &r.package {
                Some(p) => (
                    format!("{}@{} {}", p.name, p.version, p.event),
                    p.outcome.as_str(),
                ),
                None => (r.command.join(" "), "ran"),
            };
            let status = match (outcome, r.timed_out) {
                (_, true) => "timeout",
                ("ok", _) if !r.refused.is_empty() => "partial",
                ("ok", _) | ("ran", _) => "ok",
                ("optional-failed", _) => "opt-fail",
                _ => "FAILED",
            };
            let limit = match (r.timed_out, r.timeout_ms) {
                (true, Some(ms)) => format!(
                    "  (killed at the {:.0}s wall-clock limit with its whole process tree)",
                    ms as f64 / 1000.0
                ),
                _ => String::new(),
            };
            let partial = if status == "partial" {
                let net = r
                    .refused
                    .iter()
                    .filter(|x| x.path.starts_with("network: "))
                    .count();
                let writes = r.refused.len() - net;
                let what: Vec<String> = [
                    (writes, "write(s) were refused"),
                    (net, "host(s) it needed were unreachable"),
                ]
                .iter()
                .filter(|(n, _)| *n > 0)
                .map(|(n, w)| format!("{n} {w}"))
                .collect();
                format!(
                    "  (exited 0, but {}: the package is probably incomplete)",
                    what.join(" and ")
                )
            } else {
                String::new()
            };
            let _ = writeln!(
                out,
                "  {status:<8} {}  {:.1}s{limit}{partial}",
                terminal_safe(&who),
                r.duration_ms / 1000.0
            );
            for x in &r.refused {
                let _ = writeln!(
                    out,
                    "           refused  `{}`: {}",
                    terminal_safe(&x.path),
                    x.why
                );
            }
            let allow: Vec<&str> = r
                .refused
                .iter()
                .filter_map(|x| x.allow.as_deref())
                .collect();
            if let (Some(p), false) = (&r.package, allow.is_empty()) {
                let _ = writeln!(
                    out,
                    "           to allow it, add to {} at the project root (or your --profile):",
                    crate::policy::PROJECT_FILE
                );
                for line in crate::policy::allowance::snippet(&p.name, &allow).lines() {
                    let _ = writeln!(out, "             {}", terminal_safe(line));
                }
            }
            // Probes nobody needs by default (CI detection, info) stay in the report; `-v` shows
            // them.
            let verbose = tracing::enabled!(tracing::Level::INFO);
            let shown: Vec<&Finding> = r
                .findings
                .iter()
                .filter(|f| {
                    verbose
                        || !(f.severity == crate::observe::Severity::Info
                            || f.code == crate::findings::Code::CiDetection)
                })
                .collect();
            for f in shown.iter().take(SUMMARY_FINDINGS) {
                let _ = writeln!(
                    out,
                    "           {:<8} {:<26} {}",
                    severity_label(f.severity),
                    f.code.as_str(),
                    terminal_safe(&f.summary)
                );
            }
            let hidden = r.findings.len() - shown.len();
            let more = shown.len().saturating_sub(SUMMARY_FINDINGS);
            if more > 0 || hidden > 0 {
                let _ = writeln!(
                    out,
                    "           … and {} more finding(s) of this run in the JSON report (--report){}",
                    more + hidden,
                    if hidden > 0 {
                        format!("; {hidden} of them CI-detection or info probes (-v shows them)")
                    } else {
                        String::new()
                    }
                );
            }
        }
        if let Some(i) = &self.install {
            let quiet = &i.no_install_time_behaviour;
            if !quiet.is_empty() {
                let shown: Vec<String> = quiet
                    .iter()
                    .take(5)
                    .map(|p| terminal_safe(&format!("{}@{}", p.name, p.version)).into_owned())
                    .collect();
                let more = quiet.len() - shown.len();
                let _ = writeln!(
                    out,
                    "  {} package(s) with no install-time behaviour (no lifecycle scripts: nothing ran, their runtime code is not examined): {}{}",
                    quiet.len(),
                    shown.join(", "),
                    if more > 0 {
                        format!(" and {more} more")
                    } else {
                        String::new()
                    }
                );
            }
        }
        out
    }

    /// The most severe finding across all runs.
    pub fn worst(&self) -> Option<crate::observe::Severity> {
        self.runs
            .iter()
            .flat_map(|r| r.findings.iter().map(|f| f.severity))
            .max()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::observe::{Code, Finding, FindingKind, Severity};
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
            refused: Vec::new(),
        }
    }

    /// The human summary, pinned.
    #[test]
    fn summary_snapshot() {
        let report = Report::new(vec![
            run("argon2", "install", "ok", vec![]),
            run(
                "evil",
                "postinstall",
                "ok",
                vec![
                    Finding {
                        code: Code::TcpExfiltration,
                        kind: FindingKind::Exfiltration,
                        severity: Severity::Critical,
                        summary: "secret sent to `webhook.site:80` (env:NPM_TOKEN)".into(),
                        target: "webhook.site:80".into(),
                        detail: None,
                        process: None,
                        at_unix_ms: None,
                    },
                    Finding {
                        code: Code::DecoyRead,
                        kind: FindingKind::SecretRead,
                        severity: Severity::High,
                        summary: "read decoy npm token `~/.npmrc`".into(),
                        target: "/h/.npmrc".into(),
                        detail: None,
                        process: None,
                        at_unix_ms: None,
                    },
                ],
            ),
            run("opt", "install", "optional-failed", vec![]),
            {
                let mut r = run("hooks", "postinstall", "ok", vec![]);
                r.refused = crate::policy::allowance::refusals(
                    Path::new("/p"),
                    &["/p/.git/hooks/pre-commit", "/p/hooks.yml"],
                );
                r.refused.extend(crate::policy::allowance::network_refusals(
                    ["github.com:443"].into_iter(),
                ));
                r
            },
        ]);
        assert_eq!(
            report.summary(3.25),
            "ringfence: 4 lifecycle script(s), each in its own sandbox, 3.2s; 1 critical, 1 high
  ok       argon2@1.0.0 install  1.2s
  ok       evil@1.0.0 postinstall  1.2s
           CRITICAL tcp-exfiltration           secret sent to `webhook.site:80` (env:NPM_TOKEN)
           HIGH     decoy-read                 read decoy npm token `~/.npmrc`
  opt-fail opt@1.0.0 install  1.2s
  partial  hooks@1.0.0 postinstall  1.2s  (exited 0, but 2 write(s) were refused and 1 host(s) it needed were unreachable: the package is probably incomplete)
           refused  `/p/.git/hooks/pre-commit`: the project outside the package's own directory
           refused  `/p/hooks.yml`: the project outside the package's own directory
           refused  `network: github.com`: there is no network in the sandbox: whatever it meant to download is missing
           to allow it, add to ringfence.toml at the project root (or your --profile):
             [package.\"hooks\"]
             write = [\".git/hooks/\", \"hooks.yml\"]
             reason = \"<why this package must write there>\"
"
        );
        assert_eq!(report.worst(), Some(Severity::Critical));
    }

    /// Names, paths and summaries from a package cannot move the cursor, recolour, reorder or
    /// add lines to the summary.
    #[test]
    fn untrusted_strings_reach_the_terminal_escaped() {
        let evil = "\x1b[2K\r  ok       fine@1.0.0 postinstall\n\u{202e}x\u{9b}";
        let mut r = run(evil, "postinstall", "ok", vec![]);
        r.findings
            .push(Finding::new(Code::WriteRefused, evil, "/x"));
        r.refused = vec![crate::policy::allowance::Refusal {
            path: evil.into(),
            why: "w".into(),
            allow: Some("a/".into()),
        }];
        let text = Report::new(vec![r]).summary(1.0);
        assert!(!text.contains('\x1b') && !text.contains('\r') && !text.contains('\u{202e}'));
        assert!(!text.contains('\u{9b}'));
        assert!(text.contains("\\u{1b}[2K\\u{d}"), "{text}");
        // One line per thing, whatever the names hold.
        assert_eq!(
            text.lines().filter(|l| l.contains("fine@1.0.0")).count(),
            4,
            "{text}"
        );
        assert!(
            text.lines().all(|l| !l.starts_with("  ok       fine")),
            "{text}"
        );
    }

    /// Timeouts, long finding lists and packages with nothing to run, pinned.
    #[test]
    fn summary_snapshot_timeouts_caps_and_quiet_packages() {
        let noisy: Vec<Finding> = (0..14)
            .map(|i| Finding {
                code: Code::Survivor,
                kind: FindingKind::Survivor,
                severity: Severity::High,
                summary: format!("survivor {i}"),
                target: format!("pid {i}"),
                detail: None,
                process: None,
                at_unix_ms: None,
            })
            .collect();
        let mut gated = run("gated", "postinstall", "failed", vec![]);
        gated.timed_out = true;
        gated.timeout_ms = Some(3000);
        let mut report = Report::new(vec![gated, run("worm", "prepare", "ok", noisy)]);
        report.install = Some(InstallSummary {
            packages: 9,
            with_scripts: 2,
            no_install_time_behaviour: (0..7)
                .map(|i| PackageId {
                    name: format!("p{i}"),
                    version: "1.0.0".into(),
                    location: format!("node_modules/p{i}"),
                })
                .collect(),
        });
        let text = report.summary(1.0);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[1],
            "  timeout  gated@1.0.0 postinstall  1.2s  (killed at the 3s wall-clock limit with its whole process tree)"
        );
        assert_eq!(lines.len(), 1 + 1 + 1 + 12 + 1 + 1);
        assert_eq!(
            lines[15],
            "           … and 2 more finding(s) of this run in the JSON report (--report)"
        );
        assert_eq!(
            lines[16],
            "  7 package(s) with no install-time behaviour (no lifecycle scripts: nothing ran, their runtime code is not examined): p0@1.0.0, p1@1.0.0, p2@1.0.0, p3@1.0.0, p4@1.0.0 and 2 more"
        );
    }
}
