//! The project's approvals after the scripts ran: the runs judged against
//! `ringfence-approvals.json` (and the lock rewritten by `install`), and the report kept for
//! `ringfence approve`.

use std::os::unix::fs::DirBuilderExt;

use crate::approvals;
use crate::error::RunError;
use crate::npm::{self, project::BuildSet};
use crate::output::human;
use crate::policy::ResolveContext;
use crate::report::{ApprovalsSummary, CarriedApproval, ChangedBehaviour, Report, ReportWarning};
use crate::settings::InstallSettings;

/// Compare the runs with the project's approvals: `behaviour-changed` findings on runs that did
/// more, approvals carried over to new versions that did the same or less (the lock is
/// rewritten by `install`, never by `ci`), unused approvals as warnings.
pub(super) fn review_approvals(
    s: &InstallSettings,
    lock: &approvals::Lock,
    runs: &mut [crate::report::ScriptRun],
    project: &std::path::Path,
    build: &BuildSet,
    warnings: &mut Vec<ReportWarning>,
) -> Result<ApprovalsSummary, RunError> {
    let v = approvals::judge(lock, runs, project, &build.after.package_names());
    let lock_updated = match (&v.updated, s.command) {
        (Some(updated), npm::Command2::Install) => {
            updated.write(project)?;
            true
        }
        _ => false,
    };
    let unused: Vec<ReportWarning> = v
        .unused
        .iter()
        .map(|name| ReportWarning {
            code: "unused-approval".into(),
            location: None,
            message: format!(
                "{} approves `{name}`, which is not in the installed tree: remove the entry if the dependency is gone",
                approvals::FILE
            ),
        })
        .collect();
    human::report_warnings(&unused);
    warnings.extend(unused);
    let summary = ApprovalsSummary {
        file: approvals::FILE.into(),
        within: v.within,
        carried: v
            .carried
            .iter()
            .map(|c| CarriedApproval {
                name: c.package.name.clone(),
                version: c.package.version.clone(),
                event: c.package.event.clone(),
                from: c.from.clone(),
            })
            .collect(),
        changed: v
            .changed
            .iter()
            .map(|c| ChangedBehaviour {
                name: c.package.name.clone(),
                version: c.package.version.clone(),
                event: c.package.event.clone(),
                approved_versions: c.approved_versions.clone(),
                new: c
                    .grew
                    .categories()
                    .iter()
                    .filter(|(_, set)| !set.is_empty())
                    .map(|(name, set)| ((*name).to_string(), set.iter().cloned().collect()))
                    .collect(),
            })
            .collect(),
        unused: v.unused,
        lock_updated,
    };
    Ok(summary)
}

/// Keep the report for `ringfence approve` (best effort: a failure is a log line, not a
/// failed install).
pub(super) fn remember(report: &Report, project: &std::path::Path, rctx: &ResolveContext) {
    let path = approvals::last_report_path(project, &rctx.home, rctx.var("XDG_STATE_HOME"));
    let saved = path
        .parent()
        .map_or(Ok(()), |dir| {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
        })
        .map_err(|source| crate::report::ReportError::Write {
            path: path.clone(),
            source,
        })
        .and_then(|()| report.write(&path));
    if let Err(e) = saved {
        tracing::warn!("keeping the report for `ringfence approve`: {e}");
    }
}
