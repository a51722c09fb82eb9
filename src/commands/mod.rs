//! One module per subcommand. Each turns its settings into calls on the pipeline and the
//! printers; the exit status is decided here, in [`Exit`], and nowhere else.

pub mod allow;
pub mod approve;
pub mod cache;
pub mod config;
pub mod doctor;
pub mod install;
pub mod replay;
pub mod run;
pub mod setup;

use std::path::Path;

use crate::cli::{Cli, Command};
use crate::error::RunError;
use crate::npm::Command2;
use crate::report::{Report, ReportError, RunFailure};
use crate::settings::{
    ApproveSettings, DoctorSettings, InstallSettings, ReplaySettings, RunSettings,
};

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

/// The report as outputs show it: the report so far (or an empty one), with `e`, if any, as
/// its `error`.
fn finished_report(report: Option<&Report>, e: Option<&RunError>) -> Report {
    let mut r = report.cloned().unwrap_or_else(|| Report::new(Vec::new()));
    if let Some(e) = e {
        let hint = e.hint();
        r.error = Some(RunFailure {
            message: crate::output::human::error_chain(e),
            cause: hint.as_ref().and_then(|h| h.cause.clone()),
            hint: hint.map(|h| h.fix),
        });
    }
    r
}

/// A failed write of an output file.
fn write_error(path: &Path) -> impl FnOnce(std::io::Error) -> RunError + '_ {
    move |source| {
        RunError::Report(ReportError::Write {
            path: path.to_path_buf(),
            source,
        })
    }
}

/// Write the SARIF log of `report` (with `e` as a failed invocation) to `path`, if asked.
pub(crate) fn write_sarif(
    path: Option<&Path>,
    report: Option<&Report>,
    project: Option<&Path>,
    e: Option<&RunError>,
) -> Result<(), RunError> {
    let Some(path) = path else { return Ok(()) };
    crate::output::sarif::write(&finished_report(report, e), project, path)
        .map_err(write_error(path))
}

/// Write the GitLab Code Quality report of `report` to `path`, if asked.
pub(crate) fn write_codequality(
    path: Option<&Path>,
    report: Option<&Report>,
    project: Option<&Path>,
) -> Result<(), RunError> {
    let Some(path) = path else { return Ok(()) };
    crate::output::gitlab::write(&finished_report(report, None), project, path)
        .map_err(write_error(path))
}

/// GitHub Actions: annotations on stdout (where the runner reads workflow commands) and the
/// job summary appended to `$GITHUB_STEP_SUMMARY`.
pub(crate) fn github(
    gh: Option<&crate::settings::GithubOutput>,
    report: Option<&Report>,
    project: Option<&Path>,
    fail_on: Option<crate::findings::Severity>,
    e: Option<&RunError>,
) {
    use crate::findings::Severity;
    let Some(gh) = gh else { return };
    let r = finished_report(report, e);
    if let Some(failure) = &r.error {
        println!(
            "::error title=ringfence failed::{}",
            crate::output::github::message(&failure.message)
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
pub(crate) fn report_failure(path: Option<&Path>, report: Option<Report>, e: &RunError) {
    let Some(path) = path else { return };
    if let Err(w) = finished_report(report.as_ref(), Some(e)).write(path) {
        tracing::warn!("could not write the failure into the report: {w}");
    }
}

/// Run the parsed command line.
pub fn dispatch(cli: Cli) -> Result<Exit, RunError> {
    // Installs and replays create many decoy homes over minutes: an interruption removes them.
    // (`run` stays single-threaded until its sandbox is forked, for the fast launcher: its
    // watcher starts right after the fork.)
    if matches!(
        cli.command,
        Command::Install(_) | Command::Ci(_) | Command::Replay(_)
    ) {
        crate::cleanup::watch_once();
    }
    match cli.command {
        Command::Run(args) => run::run(RunSettings::from_args(args)?),
        Command::Doctor(args) => doctor::run(DoctorSettings::from_args(args)),
        Command::Install(args) => {
            install::run(InstallSettings::from_args(Command2::Install, args)?)
        }
        Command::Ci(args) => install::run(InstallSettings::from_args(Command2::Ci, args)?),
        Command::Replay(args) => replay::run(ReplaySettings::from_args(args)?),
        Command::Approve(args) => approve::run(&ApproveSettings::from_args(args)),
        Command::Allow(args) => allow::run(&args),
        Command::Config(args) => config::run(&args),
        Command::Cache(args) => cache::run(&args),
        Command::Completions(args) => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            let mut out = Vec::new();
            clap_complete::generate(args.shell, &mut cmd, "ringfence", &mut out);
            use std::io::Write as _;
            // A closed pipe (`| head`) is the reader's choice, not an error.
            let _ = std::io::stdout().write_all(&out);
            Ok(Exit::Clean)
        }
        Command::Man => {
            let cmd = <Cli as clap::CommandFactory>::command();
            let mut out = Vec::new();
            clap_mangen::Man::new(cmd)
                .render(&mut out)
                .map_err(|source| {
                    RunError::Report(crate::report::ReportError::Write {
                        path: "<stdout>".into(),
                        source,
                    })
                })?;
            use std::io::Write as _;
            let _ = std::io::stdout().write_all(&out);
            Ok(Exit::Clean)
        }
        Command::Setup(crate::cli::SetupCommand::Apparmor(args)) => setup::apparmor(&args),
        Command::Findings(args) => {
            print!(
                "{}",
                crate::output::human::findings_catalogue(args.markdown)
            );
            Ok(Exit::Clean)
        }
    }
}
