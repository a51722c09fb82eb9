//! What the pipeline tells its caller while it runs: a seam for printers (npm's banner for
//! foreground scripts today; progress and NDJSON next). The pipeline itself never prints.

use crate::npm::scripts::Job;

use super::ScriptOutcome;

/// Receives pipeline events; every method has a do-nothing default. Called from worker
/// threads.
pub trait Events: Sync {
    /// A phase (`deps:preinstall`, `links:prepare`, ...) is about to start `scripts` scripts.
    fn phase_starting(&self, _name: &str, _scripts: usize) {}
    /// A script is about to start (for a foreground script: right before it takes the terminal).
    fn script_starting(&self, _job: &Job) {}
    /// A script has finished (or could not start).
    fn script_finished(&self, _outcome: &ScriptOutcome) {}
}

/// No one is listening.
#[derive(Debug, Default, Clone, Copy)]
pub struct Silent;

impl Events for Silent {}
