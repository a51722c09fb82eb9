//! NDJSON events (`--events FILE`): one JSON object per line as scripts start and finish, for
//! CI systems and dashboards that follow an install while it runs. Lines are written and flushed
//! one at a time, so a reader tailing the file never sees half a line.

use std::io::Write as _;
use std::sync::Mutex;

use serde_json::json;

use crate::npm::scripts::{Job, Kind};
use crate::pipeline::{Events, ScriptOutcome};

/// Writes events to a file.
#[derive(Debug)]
pub struct Ndjson {
    file: Mutex<std::fs::File>,
}

fn kind(k: Kind) -> &'static str {
    match k {
        Kind::Dep => "dependency",
        Kind::Link => "link",
        Kind::Root => "root",
    }
}

impl Ndjson {
    /// Create (truncate) `path`.
    pub fn create(path: &std::path::Path) -> std::io::Result<Self> {
        Ok(Ndjson {
            file: Mutex::new(std::fs::File::create(path)?),
        })
    }

    fn line(&self, v: serde_json::Value) {
        if let Ok(mut f) = self.file.lock() {
            let _ = writeln!(f, "{v}");
            let _ = f.flush();
        }
    }
}

fn package(job: &Job) -> serde_json::Value {
    json!({
        "name": job.name,
        "version": job.version,
        "location": job.location,
        "event": job.event,
        "kind": kind(job.kind),
    })
}

impl Events for Ndjson {
    fn script_starting(&self, job: &Job) {
        self.line(json!({
            "event": "script-started",
            "at_unix_ms": crate::util::now_unix_ms(),
            "package": package(job),
        }));
    }

    fn script_finished(&self, o: &ScriptOutcome) {
        let (status, duration_ms, findings, worst) = match &o.executed {
            Ok(x) => {
                let worst = x.observed.findings.iter().map(|f| f.severity).max();
                let status = match &x.result {
                    Ok(outcome) if outcome.timed_out => "timed-out".to_string(),
                    Ok(outcome) => match outcome.termination.exit_code() {
                        0 => "ok".to_string(),
                        c => format!("exit {c}"),
                    },
                    Err(_) => "sandbox-error".to_string(),
                };
                let ms = x.result.as_ref().map_or(0, |r| {
                    u64::try_from(r.duration.as_millis()).unwrap_or(u64::MAX)
                });
                (status, ms, x.observed.findings.len(), worst)
            }
            Err(_) => ("not-started".to_string(), 0, 0, None),
        };
        self.line(json!({
            "event": "script-finished",
            "at_unix_ms": crate::util::now_unix_ms(),
            "package": package(&o.job),
            "status": status,
            "duration_ms": duration_ms,
            "findings": findings,
            "worst": worst.map(|s| s.as_str()),
        }));
    }
}

/// Several listeners as one (the terminal, a file, the GitHub log), called in order.
pub struct Fanout<'a>(pub Vec<&'a dyn Events>);

impl std::fmt::Debug for Fanout<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Fanout({})", self.0.len())
    }
}

impl Events for Fanout<'_> {
    fn script_starting(&self, job: &Job) {
        for e in &self.0 {
            e.script_starting(job);
        }
    }

    fn script_finished(&self, o: &ScriptOutcome) {
        for e in &self.0 {
            e.script_finished(o);
        }
    }
}
