//! `ringfence run`: one command in a fresh sandbox, exiting with its status.

use serde_json::json;

use crate::error::RunError;
use crate::output::human;
use crate::pipeline::{Io, Prepared, Recording};
use crate::policy::{self, PolicyError, ResolveContext};
use crate::report::{Report, ScriptRun};
use crate::settings::RunSettings;

use super::Exit;

/// Resolve, prepare, run (or show the plan), report.
pub fn run(s: RunSettings) -> Result<Exit, RunError> {
    let rctx = ResolveContext::from_process().map_err(PolicyError::Context)?;
    let profile = policy::load(s.profile.as_deref())?;
    let (spec, warnings) = policy::resolve(&profile, &rctx, &s.request)?;
    human::policy_warnings(&warnings);
    let recording = if s.request.no_record {
        Recording::Off
    } else {
        Recording::On {
            explicit_env: s.request.env.clone(),
            caches: Vec::new(),
        }
    };
    let prepared = Prepared::new(spec, &recording)?;
    if s.show_plan {
        let text = serde_json::to_string_pretty(&json!({
            "spec": prepared.spec,
            "plan": prepared.plan,
        }))
        .map_err(RunError::SerializePlan)?;
        println!("{text}");
        return Ok(Exit::Clean);
    }
    let x = prepared.execute(Io::Terminal);
    let outcome = x.result?;
    human::run_notes(&x.spec, &outcome, &x.observed.findings);
    if let Some(path) = &s.report {
        let mut run = ScriptRun::new(&x.spec, &x.seccomp, &outcome, x.started_unix_ms);
        run.observed(x.observed);
        Report::new(vec![run]).write(path)?;
    }
    let code = outcome.termination.exit_code();
    Ok(Exit::Status(u8::try_from(code & 0xff).unwrap_or(u8::MAX)))
}
