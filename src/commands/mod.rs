//! One module per subcommand. Each turns its settings into calls on the pipeline and the
//! printers; the exit status is decided here, in [`Exit`], and nowhere else.

pub mod doctor;
pub mod install;
pub mod replay;
pub mod run;

use crate::cli::{Cli, Command};
use crate::error::RunError;
use crate::npm::Command2;
use crate::settings::{DoctorSettings, InstallSettings, ReplaySettings, RunSettings};

/// How a command ended. Errors of ringfence itself are `Err(RunError)` (exit 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Everything ran; nothing at or above `--fail-on` (exit 0).
    Clean,
    /// Findings at or above `--fail-on`, or `--strict` and a partial script (exit 1).
    Flagged,
    /// `run`: the command's own status; `install`: a required script's status (1–255).
    Status(u8),
    /// `doctor`: the sandbox cannot run here (exit 2).
    Unavailable,
}

impl Exit {
    /// The process exit code.
    pub fn code(self) -> u8 {
        match self {
            Exit::Clean => 0,
            Exit::Flagged => 1,
            Exit::Status(c) => c,
            Exit::Unavailable => 2,
        }
    }

    /// The process exit code for an error of ringfence itself.
    pub fn error_code(_: &RunError) -> u8 {
        2
    }
}

/// Write the SARIF log of `report` (with `e` as a failed invocation) to `path`, if asked.
pub(crate) fn write_sarif(
    path: Option<&std::path::Path>,
    report: Option<&crate::report::Report>,
    project: Option<&std::path::Path>,
    e: Option<&RunError>,
) -> Result<(), RunError> {
    let Some(path) = path else { return Ok(()) };
    let mut r = report
        .cloned()
        .unwrap_or_else(|| crate::report::Report::new(Vec::new()));
    if let Some(e) = e {
        r.error = Some(crate::report::RunFailure {
            message: crate::output::human::error_chain(e),
            cause: None,
            hint: e.hint().map(|h| h.fix),
        });
    }
    crate::output::sarif::write(&r, project, path).map_err(|source| {
        RunError::Report(crate::report::ReportError::Write {
            path: path.to_path_buf(),
            source,
        })
    })
}

/// Write the GitLab Code Quality report of `report` to `path`, if asked.
pub(crate) fn write_codequality(
    path: Option<&std::path::Path>,
    report: Option<&crate::report::Report>,
    project: Option<&std::path::Path>,
) -> Result<(), RunError> {
    let Some(path) = path else { return Ok(()) };
    let empty = crate::report::Report::new(Vec::new());
    crate::output::gitlab::write(report.unwrap_or(&empty), project, path).map_err(|source| {
        RunError::Report(crate::report::ReportError::Write {
            path: path.to_path_buf(),
            source,
        })
    })
}

/// GitHub Actions: annotations on stdout (where the runner reads workflow commands) and the
/// job summary appended to `$GITHUB_STEP_SUMMARY`.
pub(crate) fn github(
    gh: Option<&crate::settings::GithubOutput>,
    report: Option<&crate::report::Report>,
    project: Option<&std::path::Path>,
    fail_on: Option<crate::findings::Severity>,
    e: Option<&RunError>,
) {
    use crate::findings::Severity;
    let Some(gh) = gh else { return };
    let mut r = report
        .cloned()
        .unwrap_or_else(|| crate::report::Report::new(Vec::new()));
    if let Some(e) = e {
        r.error = Some(crate::report::RunFailure {
            message: crate::output::human::error_chain(e),
            cause: None,
            hint: e.hint().map(|h| h.fix),
        });
        println!(
            "::error title=ringfence failed::{}",
            crate::output::github::message(&crate::output::human::error_chain(e))
        );
    }
    let threshold = fail_on.map_or(Severity::Medium, |t| t.min(Severity::Medium));
    print!(
        "{}",
        crate::output::github::annotations(&r, project, threshold)
    );
    if let Some(path) = &gh.step_summary {
        let text = crate::output::github::step_summary(&r, threshold);
        let written = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(path)
            .and_then(|mut f| std::io::Write::write_all(&mut f, text.as_bytes()));
        if let Err(w) = written {
            tracing::warn!("writing the job summary to `{}`: {w}", path.display());
        }
    }
}

/// Write `e` into the report at `path` (the report so far, or an empty one), so that a CI step
/// reading only the report never sees a clean-looking install when ringfence failed.
pub(crate) fn report_failure(
    path: Option<&std::path::Path>,
    report: Option<crate::report::Report>,
    e: &RunError,
) {
    let Some(path) = path else { return };
    let mut r = report.unwrap_or_else(|| crate::report::Report::new(Vec::new()));
    let hint = e.hint();
    r.error = Some(crate::report::RunFailure {
        message: crate::output::human::error_chain(e),
        cause: hint.as_ref().and_then(|h| h.cause.clone()),
        hint: hint.map(|h| h.fix),
    });
    if let Err(w) = r.write(path) {
        tracing::warn!("could not write the failure into the report: {w}");
    }
}

/// Run the parsed command line.
pub fn dispatch(cli: Cli) -> Result<Exit, RunError> {
    // Installs and replays create many decoy homes over minutes: an interruption removes them.
    // (`run` stays single-threaded until its sandbox is forked: the fast launcher needs that.)
    if matches!(
        cli.command,
        Command::Install(_) | Command::Ci(_) | Command::Replay(_)
    ) {
        if let Err(e) = crate::cleanup::watch() {
            tracing::warn!("interruption cleanup unavailable: {e}");
        }
    }
    match cli.command {
        Command::Run(args) => run::run(RunSettings::from_args(args)?),
        Command::Doctor(args) => doctor::run(DoctorSettings::from_args(args)),
        Command::Install(args) => {
            install::run(InstallSettings::from_args(Command2::Install, args)?)
        }
        Command::Ci(args) => install::run(InstallSettings::from_args(Command2::Ci, args)?),
        Command::Replay(args) => replay::run(ReplaySettings::from_args(args)?),
        Command::Findings(args) => {
            print!(
                "{}",
                crate::output::human::findings_catalogue(args.markdown)
            );
            Ok(Exit::Clean)
        }
    }
}
