//! The per-script pipeline: one package script becomes a sandbox request (policy), a prepared
//! sandbox with its observation ([`execute::Prepared`]), a run, and what was observed — plus, for
//! package scripts, what the script did to its own files and whether its manifest lied about
//! its name. Batches of scripts run through [`batch::run_phase`].

pub mod batch;
pub mod bounds;
pub mod buildcache;
pub mod entry;
pub mod events;
pub mod execute;
pub mod gate;
pub mod tier;

use std::path::PathBuf;
use std::time::Instant;

use crate::error::RunError;
use crate::findings::{Code, Finding, Severity};
use crate::npm::scripts::{Job, Kind};
use crate::observe::pristine::Snapshot;
use crate::policy::package::{InstallScope, Writable, script_request};
use crate::policy::{self, ProfileFile, ResolveContext, Warning};
use crate::sandbox::Outcome;

pub use entry::{JobStatus, package_run};
pub use events::Events;
pub use execute::{Executed, Io, Prepared, Recording};

/// A script whose outputs were restored from the build cache instead of running it.
#[derive(Debug, Clone)]
pub struct CachedRun {
    /// The cache key.
    pub key: String,
    /// The original run, as it was recorded (its findings included).
    pub run: crate::report::ScriptRun,
}

/// What happened to one package script.
#[derive(Debug)]
pub struct ScriptOutcome {
    /// Restored from the build cache (then `executed` is [`RunError::NotRun`]).
    pub cached: Option<CachedRun>,
    /// The script.
    pub job: Job,
    /// Its run; an error when it could not be prepared (policy, decoy home).
    pub executed: Result<Executed, RunError>,
    /// Profile warnings from resolving its sandbox.
    pub warnings: Vec<Warning>,
}

impl ScriptOutcome {
    /// The sandbox's outcome, when the script ran.
    pub fn outcome(&self) -> Option<&Outcome> {
        self.executed.as_ref().ok()?.result.as_ref().ok()
    }

    /// Why ringfence could not run it, when it could not.
    pub fn error(&self) -> Option<&RunError> {
        if self.cached.is_some() {
            return None;
        }
        match &self.executed {
            Err(e) => Some(e),
            Ok(x) => x.result.as_ref().err(),
        }
    }

    /// It exited non-zero, was killed, or could not run.
    pub fn failed(&self) -> bool {
        // Only scripts that exited 0 are cached.
        self.cached.is_none()
            && self
                .outcome()
                .is_none_or(|o| o.termination.exit_code() != 0)
    }

    /// A failure that ends the install (not an optional dependency's own failure).
    pub fn stops(&self) -> bool {
        self.failed()
            && !(self.job.optional && self.job.kind == Kind::Dep && self.error().is_none())
    }
}

/// Runs the package scripts of one install.
pub struct Runner<'a> {
    /// The merged profile.
    pub profile: &'a ProfileFile,
    /// Host facts for resolution.
    pub rctx: &'a ResolveContext,
    /// What every script shares.
    pub scope: InstallScope,
    /// npm's cache (read-only inside the sandbox; writes to it are expected noise).
    pub caches: Vec<PathBuf>,
    /// The paths the real npm runs from (its nested runs read the user's npm config).
    pub npm: Vec<PathBuf>,
    /// Who is told when scripts start and finish.
    pub events: &'a dyn Events,
    /// The isolation tier (chosen once, by the pre-flight).
    pub tier: crate::sandbox::spec::Tier,
    /// The build cache, when it is on.
    pub cache: Option<&'a buildcache::BuildCache>,
}

impl std::fmt::Debug for Runner<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runner")
            .field("scope", &self.scope)
            .field("caches", &self.caches)
            .finish_non_exhaustive()
    }
}

impl Runner<'_> {
    /// Run one script: its allowances prepared, its sandbox resolved and run, its own files
    /// compared before and after, the allowances tidied.
    pub fn run(&self, job: Job) -> ScriptOutcome {
        // Only a script confined to its own directory can be restored from what it left there:
        // one a policy lets write elsewhere (a git-hook installer, gyp's outputs outside) runs.
        let confined = self
            .profile
            .package
            .get(&job.name)
            .is_none_or(|s| s.write.is_empty())
            && crate::npm::gyp::outputs_outside(&self.scope.project, &job.dir).is_empty();
        let cache = self.cache.filter(|_| confined);
        let slot = match cache.map(|c| c.prepare(&job)) {
            Some(buildcache::Prepared::Hit(cached)) => {
                let outcome = ScriptOutcome {
                    job,
                    cached: Some(*cached),
                    executed: Err(RunError::NotRun("restored from the build cache")),
                    warnings: Vec::new(),
                };
                self.events.script_finished(&outcome);
                return outcome;
            }
            Some(buildcache::Prepared::Miss(slot)) => Some(slot),
            Some(buildcache::Prepared::Skip) | None => None,
        };
        let outcome = self.run_sandboxed(job);
        if let (Some(cache), Some(slot)) = (cache, &slot) {
            cache.store(slot, &outcome);
        }
        self.events.script_finished(&outcome);
        outcome
    }

    fn run_sandboxed(&self, job: Job) -> ScriptOutcome {
        let writable = match job.kind {
            Kind::Dep | Kind::Link => Writable::prepare(
                self.profile,
                &self.scope.project,
                &job,
                !self.scope.no_record,
            ),
            Kind::Root => Writable::default(),
        };
        // A package's own files, to see what its script does to them (self-modification,
        // erasing the evidence). Links too; the root project is the user's own.
        let pristine = (!self.scope.no_record && job.kind != Kind::Root)
            .then(|| Snapshot::take(&job.dir, &job.command));
        let req = script_request(&self.scope, &job, &writable.paths);
        let mut warnings = Vec::new();
        let executed = policy::resolve(self.profile, self.rctx, &req)
            .map_err(RunError::from)
            .and_then(|(spec, w)| {
                warnings = w;
                let recording = if self.scope.no_record {
                    Recording::Off
                } else {
                    Recording::On {
                        explicit_env: Vec::new(),
                        caches: self.caches.clone(),
                        creatable: writable.creatable.clone(),
                        npm: self.npm.clone(),
                    }
                };
                Prepared::new(spec, &recording, self.tier)
            })
            .map(|prepared| {
                self.events.script_starting(&job);
                let io = if job.foreground {
                    Io::Terminal
                } else {
                    Io::Capture
                };
                prepared.execute(io)
            });
        writable.undo();
        let mut outcome = ScriptOutcome {
            job,
            cached: None,
            executed,
            warnings,
        };
        if let (Some(before), Ok(x)) = (&pristine, outcome.executed.as_mut()) {
            if x.result.is_ok() {
                own_files(before, &outcome.job, x);
            }
        }
        if let Ok(x) = outcome.executed.as_mut() {
            if let Some(f) = manifest_confusion(&outcome.job, self.profile) {
                x.observed.findings.push(f);
                crate::findings::order(&mut x.observed.findings);
            }
        }
        outcome
    }
}

/// What the script did to its own package directory (self-modification, dropped programs,
/// staged secrets).
fn own_files(before: &Snapshot, job: &Job, x: &mut Executed) {
    let t = Instant::now();
    let after = Snapshot::take(&job.dir, &job.command);
    let ran: Vec<&[String]> = x
        .observed
        .spawned
        .iter()
        .map(|s| s.argv.as_slice())
        .collect();
    let mut found = before.findings(&after, &job.command, &ran, job.integrity.as_deref());
    found.extend(before.staged_secrets(&after, &x.observed.canaries));
    x.observed.findings.extend(found);
    crate::findings::order(&mut x.observed.findings);
    tracing::debug!(
        "{}@{} {}: own files compared in {:?}",
        job.name,
        job.version,
        job.event,
        t.elapsed()
    );
}

/// Policy goes by what npm installed; a manifest naming another package (one with allowances,
/// worst of all) is reaching for that package's identity.
fn manifest_confusion(job: &Job, profile: &ProfileFile) -> Option<Finding> {
    let claimed = job.claimed_name.as_ref()?;
    let privileged = profile.package.contains_key(claimed);
    let f = Finding::new(
        Code::ManifestConfusion,
        format!(
            "its package.json calls it `{claimed}`, but npm installed it as `{}` (manifest confusion){}",
            job.name,
            if privileged {
                "; the policy for that name was not applied"
            } else {
                ""
            }
        ),
        &job.location,
    )
    .detail(
        "packages are identified by their lockfile location and source, never by what their manifest says",
    );
    Some(if privileged {
        f.severity(Severity::High)
    } else {
        f
    })
}
