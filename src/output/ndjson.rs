//! NDJSON events (`--events FILE`, `-` for stdout): one JSON object per line as phases start,
//! scripts start and finish (each finding of a finished script follows it) and the install
//! ends, for CI systems and dashboards that follow an install while it runs
//! (`docs/events.schema.json`). Lines are written and flushed
//! one at a time, so a reader tailing the file never sees half a line.

use std::io::Write as _;
use std::sync::Mutex;

use serde_json::json;

use crate::npm::scripts::{Job, Kind};
use crate::pipeline::{Events, ScriptOutcome};

/// Writes events to a file or stdout.
pub struct Ndjson {
    file: Mutex<Box<dyn std::io::Write + Send>>,
}

impl std::fmt::Debug for Ndjson {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Ndjson")
    }
}

fn kind(k: Kind) -> &'static str {
    match k {
        Kind::Dep => "dependency",
        Kind::Link => "link",
        Kind::Root => "root",
    }
}

impl Ndjson {
    /// Create (truncate) `path`; `-` is stdout.
    pub fn create(path: &std::path::Path) -> std::io::Result<Self> {
        let out: Box<dyn std::io::Write + Send> = if path.as_os_str() == "-" {
            Box::new(std::io::stdout())
        } else {
            Box::new(std::fs::File::create(path)?)
        };
        Ok(Ndjson {
            file: Mutex::new(out),
        })
    }

    /// The install is over: its exit code and totals.
    pub fn install_finished(&self, report: Option<&crate::report::Report>, exit_code: u8) {
        let (scripts, findings, worst, skipped) = report.map_or((0, 0, None, 0), |r| {
            (
                r.runs.len(),
                r.runs.iter().map(|x| x.findings.len()).sum::<usize>(),
                r.worst(),
                r.install.as_ref().map_or(0, |i| i.skipped.len()),
            )
        });
        self.line(json!({
            "event": "install-finished",
            "at_unix_ms": crate::util::now_unix_ms(),
            "exit_code": exit_code,
            "scripts": scripts,
            "skipped": skipped,
            "findings": findings,
            "worst": worst.map(|s| s.as_str()),
        }));
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
    fn phase_starting(&self, name: &str, scripts: usize) {
        self.line(json!({
            "event": "phase-started",
            "at_unix_ms": crate::util::now_unix_ms(),
            "phase": name,
            "scripts": scripts,
        }));
    }

    fn script_starting(&self, job: &Job) {
        self.line(json!({
            "event": "script-started",
            "at_unix_ms": crate::util::now_unix_ms(),
            "package": package(job),
        }));
    }

    fn script_finished(&self, o: &ScriptOutcome) {
        let (status, duration_ms, findings, worst) = match (&o.cached, &o.executed) {
            (Some(c), _) => ("cached".to_string(), 0, c.run.findings.len(), c.run.worst()),
            (None, executed) => match executed {
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
            },
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
        let findings = match (&o.cached, &o.executed) {
            (Some(c), _) => Some(&c.run.findings),
            (None, Ok(x)) => Some(&x.observed.findings),
            (None, Err(_)) => None,
        };
        if let Some(findings) = findings {
            for f in findings {
                self.line(json!({
                    "event": "finding",
                    "at_unix_ms": f.at_unix_ms,
                    "package": package(&o.job),
                    "code": f.code.as_str(),
                    "severity": f.severity.as_str(),
                    "summary": f.summary,
                    "target": f.target,
                }));
            }
        }
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
    fn phase_starting(&self, name: &str, scripts: usize) {
        for e in &self.0 {
            e.phase_starting(name, scripts);
        }
    }

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
