//! Approvals bound to behaviour: `ringfence-approvals.json` at the project root records, per
//! approved package and lifecycle event, what its script did when it was approved (network
//! destinations, secrets, credential variables, programs, writes outside its directory, other
//! findings). A later install compares each run with the record: the same or less carries the
//! approval over to a new version (no churn on bumps); anything more is a `behaviour-changed`
//! finding that shows the difference.
//!
//! The file is data only, sorted and pretty-printed so that a review diff is line by line. It is
//! read and written by ringfence (`approve`, and an install that carries an approval over),
//! never by a sandboxed script (the project root is read-only to dependency scripts).

mod behaviour;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use thiserror::Error;

pub use behaviour::Behaviour;

use crate::findings::{Code, Finding, Severity};
use crate::report::{PackageRef, ScriptRun};

/// The lock file's name, at the project root.
pub const FILE: &str = "ringfence-approvals.json";

/// The format version this build reads and writes.
pub const VERSION: u32 = 1;

/// Larger files are refused (a lock for thousands of packages is far smaller).
const MAX_BYTES: u64 = 16 << 20;

/// The whole lock file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lock {
    /// Format version ([`VERSION`]).
    pub version: u32,
    /// Approved packages by name.
    pub packages: BTreeMap<String, Approval>,
}

impl Default for Lock {
    fn default() -> Self {
        Lock {
            version: VERSION,
            packages: BTreeMap::new(),
        }
    }
}

/// One approved package.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Approval {
    /// Versions the approval covered so far, with npm's integrity for each when known.
    pub versions: BTreeMap<String, Option<String>>,
    /// Per lifecycle event.
    pub scripts: BTreeMap<String, ScriptApproval>,
}

/// One approved lifecycle script of a package.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScriptApproval {
    /// SHA-256 of each script command approved (a new command with the same behaviour is
    /// added when the approval carries over).
    pub script_sha256: BTreeSet<String>,
    /// The approved behaviour.
    pub behaviour: Behaviour,
}

/// The lock file could not be used; exit 2.
#[derive(Debug, Error)]
pub enum ApprovalError {
    /// Reading failed.
    #[error("reading `{}`", path.display())]
    Read {
        /// Path.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// Not a regular file, or too large.
    #[error("`{}` {why} [approvals-unusable]", path.display())]
    Unusable {
        /// Path.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// Not valid JSON for the schema.
    #[error("{}:{line}: {message} [approvals-invalid]", path.display())]
    Invalid {
        /// Path.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// serde's message.
        message: String,
    },
    /// Unsupported format version.
    #[error("`{}` has version {found}; this ringfence reads version {VERSION} [approvals-version]", path.display())]
    Version {
        /// Path.
        path: PathBuf,
        /// Version found.
        found: u32,
    },
    /// Writing failed.
    #[error("writing `{}`", path.display())]
    Write {
        /// Path.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
}

impl Lock {
    /// The project's lock, `None` when it has none.
    pub fn read(project: &Path) -> Result<Option<Lock>, ApprovalError> {
        let path = project.join(FILE);
        let meta = match std::fs::symlink_metadata(&path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(ApprovalError::Read { path, source }),
        };
        if !meta.file_type().is_file() {
            return Err(ApprovalError::Unusable {
                path,
                why: "is not a regular file (a link or a directory)".into(),
            });
        }
        if meta.len() > MAX_BYTES {
            return Err(ApprovalError::Unusable {
                path,
                why: format!("is larger than {MAX_BYTES} bytes"),
            });
        }
        let text = std::fs::read_to_string(&path).map_err(|source| ApprovalError::Read {
            path: path.clone(),
            source,
        })?;
        Lock::parse(&path, &text).map(Some)
    }

    fn parse(path: &Path, text: &str) -> Result<Lock, ApprovalError> {
        #[derive(Deserialize)]
        struct Versioned {
            version: u32,
        }
        let invalid = |e: serde_json::Error| ApprovalError::Invalid {
            path: path.to_path_buf(),
            line: e.line(),
            message: e.to_string(),
        };
        let v: Versioned = serde_json::from_str(text).map_err(invalid)?;
        if v.version != VERSION {
            return Err(ApprovalError::Version {
                path: path.to_path_buf(),
                found: v.version,
            });
        }
        serde_json::from_str(text).map_err(invalid)
    }

    /// Write it to the project, atomically.
    pub fn write(&self, project: &Path) -> Result<PathBuf, ApprovalError> {
        let path = project.join(FILE);
        let mut text = serde_json::to_string_pretty(self).expect("the lock serialises");
        text.push('\n');
        crate::util::write_atomic(&path, text.as_bytes()).map_err(|source| {
            ApprovalError::Write {
                path: path.clone(),
                source,
            }
        })?;
        Ok(path)
    }

    /// Record `runs` (dependency scripts of a report) as approved: their behaviour is added
    /// to each package's record for that event.
    pub fn approve(&mut self, runs: &[&ScriptRun], project: &Path) {
        for run in runs {
            let Some(p) = &run.package else { continue };
            let approval = self.packages.entry(p.name.clone()).or_default();
            approval
                .versions
                .insert(p.version.clone(), p.integrity.clone());
            let script = approval.scripts.entry(p.event.clone()).or_default();
            script.script_sha256.insert(p.script_sha256.clone());
            script
                .behaviour
                .extend(&Behaviour::of(run, project, &run.cwd));
        }
    }
}

/// Where `install`/`ci` keep the project's last report for `ringfence approve`:
/// `$XDG_STATE_HOME/ringfence/last-report/<digest of the project path>.json` (default
/// `~/.local/state`). Outside the project, so the tree stays what npm makes it.
pub fn last_report_path(project: &Path, home: &Path, xdg_state_home: Option<&str>) -> PathBuf {
    let base = xdg_state_home
        .filter(|v| v.starts_with('/'))
        .map_or_else(|| home.join(".local/state"), PathBuf::from);
    let digest = crate::util::sha256_hex(project.as_os_str().as_encoded_bytes());
    base.join("ringfence/last-report")
        .join(format!("{}.json", &digest[..16]))
}

/// A run whose behaviour went beyond its package's approval.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Changed {
    /// The package and event.
    pub package: PackageRef,
    /// What is new against the approved record.
    pub grew: Behaviour,
    /// The versions the approval was given for.
    pub approved_versions: Vec<String>,
}

/// An approval carried over to a version (or script) it was not given for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Carried {
    /// The package and event.
    pub package: PackageRef,
    /// The versions the approval was given for before.
    pub from: Vec<String>,
}

/// What the lock said about an install's runs.
#[derive(Debug, Clone, Default)]
pub struct Verdicts {
    /// Runs that did more than approved.
    pub changed: Vec<Changed>,
    /// Approvals carried over (the lock was updated for them).
    pub carried: Vec<Carried>,
    /// Runs of approved packages that stayed within their approval.
    pub within: usize,
    /// Approved names that matched no package of the project.
    pub unused: Vec<String>,
    /// The lock with the carried-over approvals, when it changed.
    pub updated: Option<Lock>,
}

impl Verdicts {
    /// `true` when `name` is approved in the lock (before behaviour is compared).
    pub fn is_approved(lock: Option<&Lock>, name: &str) -> bool {
        lock.is_some_and(|l| l.packages.contains_key(name))
    }
}

/// Compare each dependency run with its package's approval, add a `behaviour-changed`
/// finding to runs that did more, and carry approvals over where they did the same or less.
/// `present` is every package name in the installed tree (for unused approvals).
pub fn judge(
    lock: &Lock,
    runs: &mut [ScriptRun],
    project: &Path,
    present: &BTreeSet<String>,
) -> Verdicts {
    let mut v = Verdicts::default();
    let mut updated = lock.clone();
    for run in runs.iter_mut() {
        let Some(p) = run.package.clone() else {
            continue;
        };
        if p.kind != "dependency" {
            continue;
        }
        let Some(approval) = lock.packages.get(&p.name) else {
            continue;
        };
        let now = Behaviour::of(run, project, &run.cwd);
        let record = approval.scripts.get(&p.event);
        let mut grew = match record {
            Some(r) => now.beyond(&r.behaviour),
            None => now.clone(),
        };
        if record.is_none() {
            grew.other
                .insert(format!("a `{}` script the approval does not have", p.event));
        }
        let approved_versions: Vec<String> = approval.versions.keys().cloned().collect();
        if !grew.is_empty() {
            run.findings
                .push(changed_finding(&p, &grew, &approved_versions));
            crate::findings::order(&mut run.findings);
            v.changed.push(Changed {
                package: p,
                grew,
                approved_versions,
            });
            continue;
        }
        let known_version = approval.versions.contains_key(&p.version);
        let known_script = record.is_some_and(|r| r.script_sha256.contains(&p.script_sha256));
        if known_version && known_script {
            v.within += 1;
            continue;
        }
        let entry = updated.packages.entry(p.name.clone()).or_default();
        entry
            .versions
            .insert(p.version.clone(), p.integrity.clone());
        entry
            .scripts
            .entry(p.event.clone())
            .or_default()
            .script_sha256
            .insert(p.script_sha256.clone());
        v.carried.push(Carried {
            package: p,
            from: approved_versions,
        });
    }
    v.unused = lock
        .packages
        .keys()
        .filter(|name| !present.contains(*name))
        .cloned()
        .collect();
    if updated != *lock {
        v.updated = Some(updated);
    }
    v
}

fn changed_finding(p: &PackageRef, grew: &Behaviour, approved: &[String]) -> Finding {
    let mut f = Finding::new(
        Code::BehaviourChanged,
        format!(
            "did more than its approval in {FILE} records (approved for {}): {}",
            approved.join(", "),
            grew.describe()
        ),
        format!("{}@{} {}", p.name, p.version, p.event),
    );
    f.severity = Severity::High;
    f.detail = Some(format!(
        "new against the approved record: {}; if this is legitimate, `ringfence approve {}` records it",
        grew.describe(),
        p.name
    ));
    f
}

#[cfg(test)]
mod tests;
