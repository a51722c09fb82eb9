//! Which dependency scripts run: the allowlists the project already has (npm, pnpm, LavaMoat,
//! Bun), its `ringfence-approvals.json`, and `--only-approved`. A denied package's scripts are
//! not run and are reported as skipped with the entry that denied them; an approved one runs
//! (sandboxed and recorded like every other); an unreviewed one runs and is listed as
//! unreviewed, or is skipped under `--only-approved`. The project's own scripts and its
//! workspace links are the user's code and always run, as with npm.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::approvals::{self, Lock};
use crate::npm::scripts::{Job, Kind, Phase};
use crate::policy::allowlist::{Allowlists, Candidate, Decision};
use crate::report::{PackageId, SkippedScript};

/// The gate for one install.
#[derive(Debug)]
pub struct Gate<'a> {
    allowlists: &'a Allowlists,
    lock: Option<&'a Lock>,
    only_approved: bool,
    packages: &'a BTreeMap<String, Value>,
    lavamoat_paths: BTreeMap<String, Vec<String>>,
}

/// What the gate let through and what it kept back.
#[derive(Debug, Default)]
pub struct Gated {
    /// The phases with only the scripts that run.
    pub phases: Vec<Phase>,
    /// Scripts not run.
    pub skipped: Vec<SkippedScript>,
    /// Dependencies whose scripts run with no approval from any source.
    pub unreviewed: Vec<PackageId>,
}

impl<'a> Gate<'a> {
    /// A gate over the installed tree (`packages`: the lockfile's map, by location; npm's
    /// hidden lockfile has no root entry, so `root_manifest`, the project's `package.json`,
    /// stands in for it when it is missing).
    pub fn new(
        allowlists: &'a Allowlists,
        lock: Option<&'a Lock>,
        only_approved: bool,
        packages: &'a BTreeMap<String, Value>,
        root_manifest: Option<&Value>,
    ) -> Gate<'a> {
        let lavamoat_paths = if allowlists.is_empty() {
            BTreeMap::new()
        } else if packages.contains_key("") {
            crate::policy::allowlist::lavamoat::logical_paths(packages)
        } else {
            let mut with_root = packages.clone();
            if let Some(m) = root_manifest {
                with_root.insert(String::new(), m.clone());
            }
            crate::policy::allowlist::lavamoat::logical_paths(&with_root)
        };
        Gate {
            allowlists,
            lock,
            only_approved,
            packages,
            lavamoat_paths,
        }
    }

    /// Keep back what must not run.
    pub fn apply(&self, phases: Vec<Phase>) -> Gated {
        let mut out = Gated::default();
        let mut unreviewed: BTreeSet<String> = BTreeSet::new();
        for phase in phases {
            let mut jobs = Vec::new();
            for job in phase.jobs {
                match self.admit(&job) {
                    Admission::Run { reviewed } => {
                        if !reviewed && unreviewed.insert(job.location.clone()) {
                            out.unreviewed.push(PackageId {
                                name: job.name.clone(),
                                version: job.version.clone(),
                                location: job.location.clone(),
                            });
                        }
                        jobs.push(job);
                    }
                    Admission::Skip { reason, by } => out.skipped.push(SkippedScript {
                        name: job.name.clone(),
                        version: job.version.clone(),
                        location: job.location.clone(),
                        event: job.event.clone(),
                        reason: reason.into(),
                        by,
                    }),
                }
            }
            out.phases.push(Phase {
                name: phase.name,
                jobs,
            });
        }
        out
    }

    fn admit(&self, job: &Job) -> Admission {
        if job.kind != Kind::Dep {
            return Admission::Run { reviewed: true };
        }
        let entry = self.packages.get(&job.location);
        let field = |f: &str| entry.and_then(|e| e.get(f));
        let path: Vec<&str> = self
            .lavamoat_paths
            .get(&job.location)
            .map(|p| p.iter().map(String::as_str).collect())
            .unwrap_or_default();
        let candidate = Candidate {
            name: &job.name,
            version: &job.version,
            resolved: field("resolved").and_then(Value::as_str),
            dep_path: &path,
            in_bundle: field("inBundle").and_then(Value::as_bool).unwrap_or(false),
        };
        match self.allowlists.decide(&candidate) {
            Decision::Denied(e) => Admission::Skip {
                reason: "denied",
                by: e.to_string(),
            },
            Decision::Allowed(_) => Admission::Run { reviewed: true },
            Decision::Unreviewed if approvals::Verdicts::is_approved(self.lock, &job.name) => {
                Admission::Run { reviewed: true }
            }
            Decision::Unreviewed if self.only_approved => Admission::Skip {
                reason: "unreviewed",
                by: format!(
                    "--only-approved: no allowlist entry or {} approval",
                    approvals::FILE
                ),
            },
            Decision::Unreviewed => Admission::Run { reviewed: false },
        }
    }
}

enum Admission {
    Run { reviewed: bool },
    Skip { reason: &'static str, by: String },
}
