//! A package script's report entry: attribution, status and — for dependencies and links —
//! what was refused and the allowance that would permit it.

use crate::report::ScriptRun;

use super::ScriptOutcome;

/// How a package script ended, as the report says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobStatus {
    /// Exited 0.
    Ok,
    /// An optional dependency's script failed: its optional set was removed.
    OptionalFailed,
    /// Failed (or could not run).
    Failed,
}

impl JobStatus {
    /// The report's `outcome` value.
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Ok => "ok",
            JobStatus::OptionalFailed => "optional-failed",
            JobStatus::Failed => "failed",
        }
    }
}

fn kind_name(k: crate::npm::scripts::Kind) -> &'static str {
    use crate::npm::scripts::Kind;
    match k {
        Kind::Dep => "dependency",
        Kind::Link => "link",
        Kind::Root => "root",
    }
}

/// The report entry of a package script that ran (`None` when its sandbox never started):
/// attribution, and — for dependencies and links — what was refused and would need an allowance.
pub fn package_run(
    o: &ScriptOutcome,
    status: JobStatus,
    project: &std::path::Path,
) -> Option<ScriptRun> {
    use crate::findings::{Code, FindingKind, Severity};
    if let Some(c) = &o.cached {
        let mut run = c.run.clone();
        if let Some(p) = run.package.as_mut() {
            p.outcome = status.as_str().into();
        }
        run.cached = Some(c.key.clone());
        return Some(run);
    }
    let x = o.executed.as_ref().ok()?;
    let outcome = x.result.as_ref().ok()?;
    let job = &o.job;
    let mut run = ScriptRun::new(&x.spec, &x.seccomp, outcome, x.started_unix_ms);
    run.observed(x.observed.clone());
    run.package = Some(crate::report::PackageRef {
        name: job.name.clone(),
        version: job.version.clone(),
        location: job.location.clone(),
        event: job.event.clone(),
        kind: kind_name(job.kind).into(),
        integrity: job.integrity.clone(),
        script_sha256: crate::util::sha256_hex(job.command.as_bytes()),
        outcome: status.as_str().into(),
    });
    if job.kind != crate::npm::scripts::Kind::Root {
        let refused: Vec<String> = run
            .findings
            .iter()
            .filter(|f| f.code == Code::WriteRefused && f.severity >= Severity::Medium)
            .map(|f| {
                if f.detail.as_deref() == Some(crate::findings::CREATE_DIRECTORY) {
                    format!("{}/", f.target)
                } else {
                    f.target.clone()
                }
            })
            .collect();
        let refused: Vec<&str> = refused.iter().map(String::as_str).collect();
        run.refused = crate::policy::allowance::refusals(project, &refused);
        // A download cannot have succeeded: there is no network in the sandbox.
        run.refused
            .extend(crate::policy::allowance::network_refusals(
                run.findings
                    .iter()
                    .filter(|f| {
                        f.kind == FindingKind::NetworkAttempt && f.severity > Severity::Info
                    })
                    .map(|f| f.target.as_str()),
            ));
    }
    Some(run)
}
