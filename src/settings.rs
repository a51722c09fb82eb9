//! Settings: the command line (and `RINGFENCE_*` environment, through clap) turned into typed,
//! validated values once, before anything touches the machine. Commands receive these, never
//! `cli` types; the sandbox never sees either.

use std::path::PathBuf;
use std::time::Duration;

use crate::cli::{DoctorArgs, InstallArgs, ReplayArgs, RunArgs};
use crate::error::RunError;
use crate::findings::Severity;
use crate::npm::Command2;
use crate::pipeline::tier::TierChoice;
use crate::policy::RunRequest;
use crate::sandbox::spec::Tier;

/// `ringfence run`.
#[derive(Debug, Clone)]
pub struct RunSettings {
    /// What to run and what to expose.
    pub request: RunRequest,
    /// Profile file (`None`: the built-in default).
    pub profile: Option<PathBuf>,
    /// Report path.
    pub report: Option<PathBuf>,
    /// Print the resolved spec and plan instead of running.
    pub show_plan: bool,
    /// Requested tier.
    pub tier: TierChoice,
    /// Weakest acceptable tier.
    pub require_tier: Option<Tier>,
    /// SARIF output path.
    pub sarif: Option<PathBuf>,
    /// GitLab Code Quality output path.
    pub gitlab_codequality: Option<PathBuf>,
    /// Running in GitHub Actions (`GITHUB_ACTIONS=true`): annotations and a job summary.
    pub github: Option<GithubOutput>,
}

/// `ringfence install` / `ringfence ci`, and each mode of `replay`.
#[derive(Debug, Clone)]
pub struct InstallSettings {
    /// `install` or `ci`.
    pub command: Command2,
    /// Arguments passed to npm.
    pub npm_args: Vec<String>,
    /// Report path.
    pub report: Option<PathBuf>,
    /// Parallel sandboxes per phase.
    pub jobs: usize,
    /// Profile file.
    pub profile: Option<PathBuf>,
    /// Exit 1 when a finding is at least this severe (`None`: never).
    pub fail_on: Option<Severity>,
    /// Exit 1 when a script is `partial` (exited 0 with refusals) or was skipped (denied by an
    /// allowlist, or unreviewed under `--only-approved`).
    pub strict: bool,
    /// Run only the dependency scripts some allowlist entry or approval approves.
    pub only_approved: bool,
    /// A shorter summary and no status line.
    pub quiet: bool,
    /// The build cache's directory (`None`: no cache).
    pub build_cache: Option<PathBuf>,
    /// Compare runs with the project's `ringfence-approvals.json` and keep this install's report
    /// for `ringfence approve` (the user's project; replay's scratch projects have neither).
    pub approvals: bool,
    /// Containment only: no decoys, canaries or sinkhole.
    pub no_record: bool,
    /// Forensic recording: every open, not only writes.
    pub forensic: bool,
    /// The project directory (default: found from the current directory, as npm does).
    pub project: Option<PathBuf>,
    /// Environment changes for npm and the scripts: `(NAME, Some(value))` sets, `None` removes.
    pub env: Vec<(String, Option<String>)>,
    /// After a required failure, restore the project as npm does (default true; replay keeps
    /// what the scripts left for evidence).
    pub rollback: bool,
    /// Wall-clock limit per script instead of the profile's.
    pub timeout: Option<Duration>,
    /// Print the summary (replay prints its own).
    pub summary: bool,
    /// NDJSON events file.
    pub events: Option<PathBuf>,
    /// Requested tier.
    pub tier: TierChoice,
    /// Weakest acceptable tier.
    pub require_tier: Option<Tier>,
    /// SARIF output path.
    pub sarif: Option<PathBuf>,
    /// GitLab Code Quality output path.
    pub gitlab_codequality: Option<PathBuf>,
    /// Running in GitHub Actions (`GITHUB_ACTIONS=true`): annotations and a job summary.
    pub github: Option<GithubOutput>,
}

/// `ringfence replay`.
#[derive(Debug, Clone)]
pub struct ReplaySettings {
    /// npm package specs, tarballs or package directories.
    pub specs: Vec<String>,
    /// Modes to run, in order (`dev`, `ci`).
    pub modes: Vec<String>,
    /// Combined report.
    pub report: Option<PathBuf>,
    /// Evidence directory (created; must be empty if it exists).
    pub evidence: Option<PathBuf>,
    /// Profile.
    pub profile: Option<PathBuf>,
    /// Exit 1 when a finding in any mode is at least this severe.
    pub fail_on: Option<Severity>,
    /// Wall-clock limit per script.
    pub timeout: Duration,
    /// Requested tier.
    pub tier: TierChoice,
    /// Weakest acceptable tier.
    pub require_tier: Option<Tier>,
    /// SARIF output path.
    pub sarif: Option<PathBuf>,
    /// GitLab Code Quality output path.
    pub gitlab_codequality: Option<PathBuf>,
    /// Running in GitHub Actions (`GITHUB_ACTIONS=true`): annotations and a job summary.
    pub github: Option<GithubOutput>,
}

/// `$XDG_CACHE_HOME/ringfence/builds`, else `~/.cache/ringfence/builds` (`None` without a HOME).
pub fn default_cache_dir() -> Option<PathBuf> {
    let xdg = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute());
    let base = xdg.or_else(|| {
        std::env::var_os("HOME")
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
            .map(|h| h.join(".cache"))
    })?;
    Some(base.join("ringfence/builds"))
}

/// What GitHub Actions gets: annotations on stdout, the summary appended to this file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GithubOutput {
    /// `$GITHUB_STEP_SUMMARY`.
    pub step_summary: Option<PathBuf>,
}

impl GithubOutput {
    /// From the environment GitHub's runner sets.
    pub fn from_env() -> Option<Self> {
        (std::env::var("GITHUB_ACTIONS").as_deref() == Ok("true")).then(|| GithubOutput {
            step_summary: std::env::var_os("GITHUB_STEP_SUMMARY")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from),
        })
    }
}

/// `ringfence approve`.
#[derive(Debug, Clone)]
pub struct ApproveSettings {
    /// Names to approve; empty with `all`.
    pub packages: Vec<String>,
    /// Every dependency script without high or critical findings.
    pub all: bool,
    /// The report (default: the project's last install).
    pub report: Option<PathBuf>,
}

impl ApproveSettings {
    /// From `ringfence approve`'s flags.
    pub fn from_args(args: crate::cli::ApproveArgs) -> Self {
        ApproveSettings {
            packages: args.packages,
            all: args.all,
            report: args.report,
        }
    }
}

/// `ringfence doctor`.
#[derive(Debug, Clone, Copy)]
pub struct DoctorSettings {
    /// JSON instead of the table.
    pub json: bool,
}

fn seconds(flag: &'static str, s: f64) -> Result<Duration, RunError> {
    if s.is_finite() && s > 0.0 {
        Ok(Duration::from_secs_f64(s))
    } else {
        Err(RunError::InvalidArgument {
            flag,
            why: format!("{flag} {s}: expected a positive number of seconds"),
        })
    }
}

fn fail_on(s: &str) -> Result<Option<Severity>, RunError> {
    match s {
        "never" => Ok(None),
        s => s
            .parse::<Severity>()
            .map(Some)
            .map_err(|why| RunError::InvalidArgument {
                flag: "--fail-on",
                why,
            }),
    }
}

/// `--tier` and `--require-tier`.
fn tiers(tier: &str, require: Option<&str>) -> Result<(TierChoice, Option<Tier>), RunError> {
    let choice = tier
        .parse::<TierChoice>()
        .map_err(|why| RunError::InvalidArgument {
            flag: "--tier",
            why,
        })?;
    let minimum = match require {
        None => None,
        Some(r) => match r.parse::<TierChoice>() {
            Ok(TierChoice::Exactly(t)) => Some(t),
            _ => {
                return Err(RunError::InvalidArgument {
                    flag: "--require-tier",
                    why: format!("--require-tier `{r}`: expected full or landlock"),
                });
            }
        },
    };
    Ok((choice, minimum))
}

/// Global installs write outside the project; they are not supported.
fn is_global(args: &[String]) -> bool {
    args.iter().any(|a| {
        a == "-g"
            || a == "--global"
            || a == "--location=global"
            || a.starts_with("--global=") && a != "--global=false"
    })
}

impl RunSettings {
    /// From `ringfence run`'s flags.
    pub fn from_args(args: RunArgs) -> Result<Self, RunError> {
        let timeout = args.timeout.map(|s| seconds("--timeout", s)).transpose()?;
        let (tier, require_tier) = tiers(&args.common.tier, args.common.require_tier.as_deref())?;
        Ok(RunSettings {
            tier,
            require_tier,
            sarif: args.common.sarif,
            gitlab_codequality: args.common.gitlab_codequality,
            github: GithubOutput::from_env(),
            request: RunRequest {
                command: args.command,
                rw: args.rw,
                ro: args.ro,
                timeout,
                env: args.env,
                cwd: args.cwd,
                no_record: args.no_record,
                forensic: args.forensic,
                ..Default::default()
            },
            profile: args.profile,
            report: args.report,
            show_plan: args.show_plan,
        })
    }
}

impl InstallSettings {
    /// Settings for `command` with everything else at its default.
    pub fn new(command: Command2) -> Self {
        InstallSettings {
            command,
            npm_args: Vec::new(),
            report: None,
            jobs: 1,
            profile: None,
            fail_on: Some(Severity::High),
            strict: false,
            only_approved: false,
            quiet: false,
            build_cache: None,
            approvals: false,
            no_record: false,
            forensic: false,
            project: None,
            env: Vec::new(),
            rollback: true,
            timeout: None,
            summary: true,
            events: None,
            tier: TierChoice::Auto,
            require_tier: None,
            sarif: None,
            gitlab_codequality: None,
            github: None,
        }
    }

    /// From `ringfence install|ci`'s flags.
    pub fn from_args(command: Command2, args: InstallArgs) -> Result<Self, RunError> {
        let jobs = args
            .jobs
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
        if jobs == 0 {
            return Err(RunError::InvalidArgument {
                flag: "--jobs",
                why: "--jobs must be at least 1".into(),
            });
        }
        let fail_on = fail_on(&args.fail_on)?;
        if is_global(&args.npm_args) {
            return Err(RunError::InvalidArgument {
                flag: "-g",
                why: "global installs (`-g`) are not supported: ringfence replays scripts inside a project".into(),
            });
        }
        let (tier, require_tier) = tiers(&args.common.tier, args.common.require_tier.as_deref())?;
        Ok(InstallSettings {
            events: args.events,
            tier,
            require_tier,
            sarif: args.common.sarif,
            gitlab_codequality: args.common.gitlab_codequality,
            github: GithubOutput::from_env(),
            npm_args: args.npm_args,
            report: args.report,
            jobs,
            profile: args.profile,
            fail_on,
            strict: args.strict,
            only_approved: args.only_approved,
            quiet: args.quiet,
            build_cache: if args.no_build_cache {
                None
            } else {
                args.cache_dir.or_else(default_cache_dir)
            },
            approvals: true,
            no_record: args.no_record,
            forensic: args.forensic,
            ..InstallSettings::new(command)
        })
    }
}

impl ReplaySettings {
    /// From `ringfence replay`'s flags.
    pub fn from_args(args: ReplayArgs) -> Result<Self, RunError> {
        let timeout = seconds("--timeout", args.timeout)?;
        if args.specs.is_empty() {
            return Err(RunError::InvalidArgument {
                flag: "PACKAGE",
                why: "replay: name at least one package".into(),
            });
        }
        let (tier, require_tier) = tiers(&args.common.tier, args.common.require_tier.as_deref())?;
        Ok(ReplaySettings {
            tier,
            require_tier,
            sarif: args.common.sarif,
            gitlab_codequality: args.common.gitlab_codequality,
            github: GithubOutput::from_env(),
            specs: args.specs,
            modes: if args.modes.is_empty() {
                vec!["dev".to_string(), "ci".to_string()]
            } else {
                args.modes
            },
            report: args.report,
            evidence: args.evidence,
            profile: args.profile,
            fail_on: fail_on(&args.fail_on)?,
            timeout,
        })
    }
}

impl DoctorSettings {
    /// From `ringfence doctor`'s flags.
    pub fn from_args(args: DoctorArgs) -> Self {
        DoctorSettings { json: args.json }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn global_flags_are_recognised() {
        for a in ["-g", "--global", "--location=global", "--global=true"] {
            assert!(is_global(&[a.to_string()]), "{a}");
        }
        for a in ["--global=false", "--location=project", "-G"] {
            assert!(!is_global(&[a.to_string()]), "{a}");
        }
    }

    #[test]
    fn durations_and_severities_are_validated() {
        assert!(seconds("--timeout", 0.0).is_err());
        assert!(seconds("--timeout", f64::NAN).is_err());
        assert_eq!(
            seconds("--timeout", 1.5).unwrap(),
            Duration::from_millis(1500)
        );
        assert_eq!(fail_on("never").unwrap(), None);
        assert_eq!(fail_on("medium").unwrap(), Some(Severity::Medium));
        assert!(fail_on("sometimes").is_err());
    }
}
