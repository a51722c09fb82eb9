//! `ringfence approve`: record packages' install scripts, as they behaved in an install's
//! report, in the project's `ringfence-approvals.json`.

use std::path::{Path, PathBuf};

use crate::approvals::{self, Behaviour, Lock};
use crate::error::RunError;
use crate::findings::Severity;
use crate::report::{Report, ScriptRun};
use crate::settings::ApproveSettings;

use super::Exit;

/// Reports larger than this are refused.
const MAX_REPORT_BYTES: u64 = 256 << 20;

/// `ringfence approve`.
pub fn run(s: &ApproveSettings) -> Result<Exit, RunError> {
    let cwd = std::env::current_dir().map_err(crate::policy::PolicyError::Context)?;
    let root = crate::npm::find_project(&cwd)?;
    let root = std::fs::canonicalize(&root).unwrap_or(root);
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default();
    let path = s.report.clone().unwrap_or_else(|| {
        approvals::last_report_path(
            &root,
            &home,
            std::env::var("XDG_STATE_HOME").ok().as_deref(),
        )
    });
    let report = read_report(&path)?;
    let deps: Vec<&ScriptRun> = report
        .runs
        .iter()
        .filter(|r| r.package.as_ref().is_some_and(|p| p.kind == "dependency"))
        .collect();
    let mut chosen: Vec<&ScriptRun> = Vec::new();
    let mut held_back: Vec<(&ScriptRun, Severity)> = Vec::new();
    if s.all {
        for r in &deps {
            match r.worst() {
                Some(w) if w >= Severity::High => held_back.push((r, w)),
                _ => chosen.push(r),
            }
        }
    } else {
        let missing: Vec<&String> = s
            .packages
            .iter()
            .filter(|n| !deps.iter().any(|r| name(r) == n.as_str()))
            .collect();
        if !missing.is_empty() {
            let mut present: Vec<&str> = deps.iter().map(|r| name(r)).collect();
            present.dedup();
            return Err(RunError::InvalidArgument {
                flag: "PKG",
                why: format!(
                    "approve: no dependency script of {} in `{}` (it has: {})",
                    missing
                        .iter()
                        .map(|n| format!("`{n}`"))
                        .collect::<Vec<_>>()
                        .join(", "),
                    path.display(),
                    if present.is_empty() {
                        "none".to_string()
                    } else {
                        present.join(", ")
                    }
                ),
            });
        }
        chosen = deps
            .iter()
            .copied()
            .filter(|r| s.packages.iter().any(|n| n == name(r)))
            .collect();
    }
    let mut lock = Lock::read(&root)?.unwrap_or_default();
    lock.approve(&chosen, &root);
    let written = lock.write(&root)?;
    // layer-check: may print (commands/ prints)
    for r in &chosen {
        let p = r
            .package
            .as_ref()
            .expect("dependency runs name their package");
        let b = Behaviour::of(r, &root, &r.cwd);
        let what = if b.is_empty() {
            "nothing observable".to_string()
        } else {
            b.describe()
        };
        let warn = match r.worst() {
            Some(w) if w >= Severity::High => format!(
                " (WARNING: approved with {} finding(s) at {})",
                r.findings
                    .iter()
                    .filter(|f| f.severity >= Severity::High)
                    .count(),
                w.as_str()
            ),
            _ => String::new(),
        };
        eprintln!(
            "ringfence: approved {}@{} {}: {what}{warn}",
            p.name, p.version, p.event
        );
    }
    for (r, w) in &held_back {
        eprintln!(
            "ringfence: not approved: {} {} has {} finding(s); read them in the report and name it to approve it anyway",
            name(r),
            r.package.as_ref().map_or("", |p| p.event.as_str()),
            w.as_str()
        );
    }
    eprintln!(
        "ringfence: {} script(s) approved in {}",
        chosen.len(),
        written.display()
    );
    Ok(Exit::Clean)
}

fn name(r: &ScriptRun) -> &str {
    r.package.as_ref().map_or("", |p| p.name.as_str())
}

fn read_report(path: &Path) -> Result<Report, RunError> {
    let bad = |why: String| RunError::BadReport {
        path: path.to_path_buf(),
        why,
    };
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(RunError::NoReport {
                path: path.to_path_buf(),
            });
        }
        Err(e) => return Err(bad(e.to_string())),
    };
    if !meta.is_file() || meta.len() > MAX_REPORT_BYTES {
        return Err(bad(format!(
            "not a regular file of at most {MAX_REPORT_BYTES} bytes"
        )));
    }
    let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
    let report: Report = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
    if report.install.is_none() {
        return Err(bad(
            "not the report of an install (`ringfence install`/`ci`)".into(),
        ));
    }
    Ok(report)
}
