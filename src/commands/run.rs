//! `ringfence run`: one command in a fresh sandbox, exiting with its status.

use serde_json::json;

use crate::error::RunError;
use crate::output::human;
use crate::pipeline::tier::{self, TierChoice};
use crate::pipeline::{Io, Prepared, Recording};
use crate::policy::{self, PolicyError, ResolveContext};
use crate::report::{Report, ScriptRun};
use crate::sandbox::spec::Tier;
use crate::settings::RunSettings;

use super::Exit;

/// Resolve, prepare, run (or show the plan), report; a failure of ringfence itself is written
/// into the report too.
pub fn run(s: RunSettings) -> Result<Exit, RunError> {
    let mut report = None;
    let r = run_inner(&s, &mut report);
    super::write_sarif(s.sarif.as_deref(), report.as_ref(), None, r.as_ref().err())?;
    super::write_codequality(s.gitlab_codequality.as_deref(), report.as_ref(), None)?;
    if let Err(e) = &r {
        super::report_failure(s.report.as_deref(), None, e);
    }
    r
}

fn run_inner(s: &RunSettings, slot: &mut Option<Report>) -> Result<Exit, RunError> {
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
            creatable: Vec::new(),
            npm: Vec::new(),
        }
    };
    if s.show_plan {
        let tier = tier::choose(s.tier, s.require_tier)?;
        let prepared = Prepared::new(spec, &recording, tier)?;
        let text = serde_json::to_string_pretty(&json!({
            "spec": prepared.spec,
            "plan": prepared.plan,
        }))
        .map_err(RunError::SerializePlan)?;
        println!("{text}");
        return Ok(Exit::Clean);
    }
    // `auto` tries the full tier first and falls back only when namespaces are what failed
    // (setup failures happen before the command runs, so nothing ran twice).
    let first = match s.tier {
        TierChoice::Exactly(t) => tier::choose(TierChoice::Exactly(t), s.require_tier)?,
        TierChoice::Auto => Tier::Full,
    };
    let mut x = Prepared::new(spec.clone(), &recording, first)?.execute(Io::Terminal);
    if s.tier == TierChoice::Auto && s.require_tier != Some(Tier::Full) {
        if let Err(e) = &x.result {
            if tier::namespaces_unusable(e) {
                human::warning(
                    "landlock-tier",
                    &format!(
                        "user namespaces are not usable here ({e}); running in the landlock tier (no namespaces: Landlock, seccomp and a subreaper)"
                    ),
                    Some(
                        "`ringfence doctor` says why; `--tier landlock` skips the attempt, `--require-tier full` refuses instead",
                    ),
                );
                x = Prepared::new(spec, &recording, Tier::Landlock)?.execute(Io::Terminal);
            }
        }
    }
    let outcome = x.result?;
    human::run_notes(&x.spec, &outcome, &x.observed.findings);
    if s.report.is_some() || s.sarif.is_some() || s.gitlab_codequality.is_some() {
        let mut run = ScriptRun::new(&x.spec, &x.seccomp, &outcome, x.started_unix_ms);
        run.observed(x.observed);
        let report = Report::new(vec![run]);
        if let Some(path) = &s.report {
            report.write(path)?;
        }
        *slot = Some(report);
    }
    let code = outcome.termination.exit_code();
    Ok(Exit::Status(u8::try_from(code & 0xff).unwrap_or(u8::MAX)))
}
