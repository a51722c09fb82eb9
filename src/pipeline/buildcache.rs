//! The build cache in the pipeline: before a dependency script runs, its package directory is
//! snapshotted and its key computed from everything that can change its result
//! ([`crate::npm::buildkey`]); on a hit the stored outputs are restored instead of running it,
//! and the report keeps the original run (its findings too: a cached malicious build is still
//! reported as malicious); after a script exits 0, what it changed is stored with its run.
//! Only the supervisor reads and writes the store ([`crate::cache`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::cache::{self, Before, Key, KeyInputs, Lookup, PutOutcome, Store};
use crate::npm::buildkey::{self, Machine};
use crate::npm::scripts::{Job, Kind};
use crate::report::ScriptRun;

use super::{CachedRun, JobStatus, ScriptOutcome};

/// The cache one install uses.
#[derive(Debug)]
pub struct BuildCache {
    store: Store,
    /// Gathered when the first cacheable script needs a key (six short processes: not paid by
    /// installs with nothing to cache).
    machine: std::sync::OnceLock<Machine>,
    /// What [`Machine::gather`] looks at: node, PATH, the headers' directory.
    probe: (PathBuf, String, Option<PathBuf>),
    /// Digest of the policy and recording settings (a different sandbox can record differently).
    policy: String,
    packages: BTreeMap<String, Value>,
    project: PathBuf,
}

/// A script's place in the cache, found before it runs.
#[derive(Debug)]
pub struct Slot {
    key: Key,
    before: Before,
}

/// What the cache said before a script ran.
#[derive(Debug)]
pub enum Prepared {
    /// Not cacheable (a link, the root, a foreground script, an incomplete snapshot).
    Skip,
    /// Run it; store its outputs if it exits 0.
    Miss(Slot),
    /// Restored: the original run.
    Hit(Box<CachedRun>),
}

impl BuildCache {
    /// Open the store at `dir` for an install of `project`; `probe` is what the machine facts
    /// are gathered from (node, PATH, the headers' directory), when first needed.
    pub fn open(
        dir: &Path,
        probe: (PathBuf, String, Option<PathBuf>),
        policy: String,
        packages: BTreeMap<String, Value>,
        project: PathBuf,
    ) -> Result<BuildCache, cache::CacheError> {
        Ok(BuildCache {
            store: Store::open(dir)?,
            machine: std::sync::OnceLock::new(),
            probe,
            policy,
            packages,
            project,
        })
    }

    /// Before `job` runs: its key, and its outputs restored when the cache has them.
    pub fn prepare(&self, job: &Job) -> Prepared {
        if job.kind != Kind::Dep || job.foreground {
            return Prepared::Skip;
        }
        let before = match cache::snapshot(&job.dir) {
            Ok(b) if b.incomplete().is_none() => b,
            Ok(b) => {
                tracing::info!(
                    "build cache: {}@{} {} not cacheable: {}",
                    job.name,
                    job.version,
                    job.event,
                    b.incomplete().unwrap_or_default()
                );
                return Prepared::Skip;
            }
            Err(e) => {
                tracing::warn!("build cache: {e}");
                return Prepared::Skip;
            }
        };
        let fields = buildkey::inputs(
            job,
            &self.packages,
            self.machine.get_or_init(|| {
                let (node, path, nodedir) = &self.probe;
                Machine::gather(node, path, nodedir.as_deref())
            }),
            &self.policy,
            &before.digest(),
        );
        let key = KeyInputs { fields }.key();
        match self.store.get(&key) {
            Ok(Lookup::Hit(hit)) => {
                let run: Result<ScriptRun, _> = serde_json::from_slice(hit.record());
                match run {
                    Ok(run) => match hit.restore(&job.dir) {
                        Ok(r) => {
                            tracing::info!(
                                "build cache: {}@{} {} restored from {key} ({} file(s), {} bytes)",
                                job.name,
                                job.version,
                                job.event,
                                r.files_written,
                                r.bytes_written
                            );
                            return Prepared::Hit(Box::new(CachedRun {
                                key: key.to_string(),
                                run,
                            }));
                        }
                        Err(e) => {
                            // Checked before anything was written, so the directory is as npm
                            // left it unless the failure came midway: the script then runs over
                            // it, as it would have without a cache.
                            tracing::warn!("build cache: restoring {key}: {e}");
                        }
                    },
                    Err(e) => tracing::warn!("build cache: the record of {key} is unusable: {e}"),
                }
            }
            Ok(Lookup::Discarded { reason }) => {
                tracing::warn!("build cache: entry {key} discarded: {reason}");
            }
            Ok(Lookup::Miss) => {}
            Err(e) => tracing::warn!("build cache: {e}"),
        }
        Prepared::Miss(Slot { key, before })
    }

    /// After a script ran: store what it changed, with its run, when it exited 0.
    pub fn store(&self, slot: &Slot, outcome: &ScriptOutcome) {
        if outcome.failed() {
            return;
        }
        let Some(run) = super::package_run(outcome, JobStatus::Ok, &self.project) else {
            return;
        };
        let record = match serde_json::to_vec(&run) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!("build cache: serialising a run: {e}");
                return;
            }
        };
        let job = &outcome.job;
        match self.store.put(&slot.key, &job.dir, &slot.before, &record) {
            Ok(PutOutcome::Stored { changes, bytes }) => tracing::info!(
                "build cache: {}@{} {} stored as {} ({changes} change(s), {bytes} bytes)",
                job.name,
                job.version,
                job.event,
                slot.key
            ),
            Ok(PutOutcome::AlreadyPresent) => {}
            Ok(PutOutcome::NotCacheable { reason }) => tracing::info!(
                "build cache: {}@{} {} not stored: {reason}",
                job.name,
                job.version,
                job.event
            ),
            Ok(PutOutcome::TooLarge { bytes, limit }) => tracing::info!(
                "build cache: {}@{} {} not stored: {bytes} bytes is over the {limit}-byte limit",
                job.name,
                job.version,
                job.event
            ),
            Err(e) => tracing::warn!("build cache: {e}"),
        }
    }
}
