//! What one script run prints as it happens: the notes after `run`, a failed background
//! script's dump (as npm prints one), and npm's banner before a foreground script.

use std::io::Write as _;

use super::{terminal_safe, warning};
use crate::findings::Finding;
use crate::npm::scripts::Job;
use crate::pipeline::{Events, ScriptOutcome};
use crate::sandbox::Outcome;
use crate::sandbox::landlock::Status;
use crate::sandbox::spec::SandboxSpec;

/// What the user should know about a finished `run`, on stderr.
pub fn run_notes(spec: &SandboxSpec, outcome: &Outcome, findings: &[Finding]) {
    let cmd = spec.exec.argv.join(" ");
    if outcome.timed_out {
        eprintln!(
            "ringfence: `{}` timed out after {:.1}s; the whole sandbox was killed",
            terminal_safe(&cmd),
            spec.limits.timeout_ms.unwrap_or(0) as f64 / 1000.0
        );
    }
    if let Some(e) = &outcome.enforced {
        if e.landlock.status != Status::FullyEnforced {
            eprintln!(
                "warning[landlock]: only {:?} (kernel ABI {:?}, wanted {})",
                e.landlock.status, e.landlock.kernel_abi, e.landlock.requested_abi
            );
        }
        if let crate::sandbox::RecorderState::Unavailable { why } = &e.recorder {
            warning(
                "recorder-unavailable",
                &format!(
                    "the syscall recorder could not be attached ({why}): writes, execs and connections were denied but not recorded"
                ),
                None,
            );
        }
    }
    for f in findings {
        eprintln!(
            "ringfence: finding [{}] {}",
            f.severity.as_str(),
            terminal_safe(&f.summary)
        );
    }
}

/// A failed background script, printed like npm prints one: code, path, command, then its
/// output (never its terminal escapes).
pub fn script_failure(o: &ScriptOutcome) {
    let code = o.outcome().map_or(2, |x| x.termination.exit_code());
    let job = &o.job;
    let mut e = std::io::stderr().lock();
    let safe = terminal_safe;
    let _ = writeln!(
        e,
        "ringfence error: {}@{} {} script failed",
        safe(&job.name),
        safe(&job.version),
        job.event
    );
    let _ = writeln!(e, "ringfence error code {code}");
    let _ = writeln!(
        e,
        "ringfence error path {}",
        safe(&job.dir.display().to_string())
    );
    let _ = writeln!(e, "ringfence error command failed");
    let _ = writeln!(e, "ringfence error command sh -c {}", safe(&job.command));
    if o.outcome().is_some_and(|x| x.timed_out) {
        let _ = writeln!(
            e,
            "ringfence error the script timed out and its sandbox was killed"
        );
    }
    if let Ok(x) = &o.executed {
        for stream in [&x.stdout, &x.stderr] {
            for line in String::from_utf8_lossy(stream).lines() {
                let _ = writeln!(e, "ringfence error {}", safe(line));
            }
        }
    }
}

/// The terminal as a pipeline listener: npm's banner before a foreground script takes it
/// (foreground scripts are the user's own root scripts; the banner is npm's, byte for byte).
#[derive(Debug, Default, Clone, Copy)]
pub struct Terminal;

impl Events for Terminal {
    fn script_starting(&self, job: &Job) {
        if job.foreground {
            let mut out = std::io::stdout().lock();
            let _ = write!(
                out,
                "\n> {}@{} {}\n> {}\n\n",
                job.name, job.version, job.event, job.command
            );
            let _ = out.flush();
        }
    }
}
