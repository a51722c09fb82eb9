//! `ringfence install` / `ringfence ci`: npm with `--ignore-scripts`, then npm's lifecycle
//! replayed script by script, each in its own sandbox.
//!
//! Steps: read the project (malformed manifest or lockfile → exit 2 before anything changes) →
//! `npm <cmd> --ignore-scripts` with the user's own config, capturing npm's environment → the
//! build set (added/changed nodes and root links) → phases → each phase's jobs in parallel
//! sandboxes (`--jobs`), barrier between phases → optional failures remove their optional set, a
//! required failure stops and rolls back as npm does → report, summary, exit status.

use std::path::PathBuf;
use std::time::Instant;

use crate::approvals;
use crate::error::RunError;
use crate::npm::project::{self, BuildSet, Project};
use crate::npm::scripts::Phase;
use crate::npm::{self, Toolchain};
use crate::output::human;
use crate::pipeline::{JobStatus, Runner, package_run};
use crate::policy::{self, PolicyError, ProfileFile, ResolveContext};
use crate::report::{InstallSummary, Report, ReportWarning};
use crate::settings::InstallSettings;

use super::Exit;

mod phases;
mod review;

use phases::{Batch, run_phases, scope, share_cores};
use review::{remember, review_approvals};

/// An install's result, with its report when it got as far as running scripts (replay keeps
/// the report of a mode whose install failed).
#[derive(Debug)]
pub struct Installed {
    /// The exit status, or the error that stopped ringfence.
    pub exit: Result<Exit, RunError>,
    /// The report, once scripts ran.
    pub report: Option<Report>,
    /// The project root, once found.
    pub project: Option<PathBuf>,
}

/// `ringfence install|ci`.
pub fn run(s: InstallSettings) -> Result<Exit, RunError> {
    let installed = install(&s);
    super::github(
        s.github.as_ref(),
        installed.report.as_ref(),
        installed.project.as_deref(),
        s.fail_on,
        installed.exit.as_ref().err(),
    );
    super::write_sarif(
        s.sarif.as_deref(),
        installed.report.as_ref(),
        installed.project.as_deref(),
        installed.exit.as_ref().err(),
    )?;
    super::write_codequality(
        s.gitlab_codequality.as_deref(),
        installed.report.as_ref(),
        installed.project.as_deref(),
    )?;
    if let Err(e) = &installed.exit {
        super::report_failure(s.report.as_deref(), installed.report, e);
    }
    installed.exit
}

/// The install, for `install`/`ci` and for each mode of `replay`.
pub fn install(s: &InstallSettings) -> Installed {
    let mut report = None;
    let mut project = None;
    let ndjson = match &s.events {
        Some(path) => match crate::output::ndjson::Ndjson::create(path) {
            Ok(n) => Some(n),
            Err(source) => {
                return Installed {
                    exit: Err(RunError::Report(crate::report::ReportError::Write {
                        path: path.clone(),
                        source,
                    })),
                    report,
                    project,
                };
            }
        },
        None => None,
    };
    let exit = install_reporting(s, ndjson.as_ref(), &mut report, &mut project);
    if let Some(n) = &ndjson {
        let code = match &exit {
            Ok(e) => e.code(),
            Err(e) => Exit::error_code(e),
        };
        n.install_finished(report.as_ref(), code);
    }
    Installed {
        exit,
        report,
        project,
    }
}

/// The caller's context with the settings' environment changes and project applied.
fn context(s: &InstallSettings) -> Result<ResolveContext, RunError> {
    let mut rctx = ResolveContext::from_process().map_err(PolicyError::Context)?;
    for (name, value) in &s.env {
        rctx.env.retain(|(k, _)| k != name);
        if let Some(v) = value {
            rctx.env.push((name.clone(), v.clone()));
        }
    }
    if let Some(p) = &s.project {
        rctx.cwd = p.clone();
    }
    Ok(rctx)
}

/// The project root (as npm finds it) and the profile with the project's `ringfence.toml`.
fn project_and_policy(
    s: &InstallSettings,
    rctx: &ResolveContext,
) -> Result<(PathBuf, ProfileFile), RunError> {
    let root = match &s.project {
        Some(p) => p.clone(),
        None => npm::find_project(&rctx.cwd)?,
    };
    let root = std::fs::canonicalize(&root).unwrap_or(root);
    let layered = policy::layers::load(s.profile.as_deref(), Some(&root))?;
    if let Some(f) = &layered.project_file {
        tracing::info!("policy: {f} layered over the profile");
    }
    Ok((root, layered.profile))
}

/// The project's `package.json` as JSON (read again: it was checked before npm ran), for the
/// dependency paths LavaMoat's keys use.
fn root_manifest(root: &std::path::Path) -> Option<serde_json::Value> {
    let (bytes, _) =
        crate::untrusted::read_file(root, std::path::Path::new("package.json"), 16 << 20)
            .ok()??;
    serde_json::from_slice(&bytes).ok()
}

/// Scripts that exited 0 but are probably incomplete (something they needed was refused).
fn partial(report: &Report) -> Vec<String> {
    report
        .runs
        .iter()
        .filter(|r| !r.refused.is_empty())
        .filter_map(|r| r.package.as_ref())
        .filter(|p| p.outcome == JobStatus::Ok.as_str())
        .map(|p| format!("{}@{} {}", p.name, p.version, p.event))
        .collect()
}

/// Optional scripts that failed or timed out (npm removes their optional set and goes on).
fn shrugged(report: &Report) -> Vec<String> {
    report
        .runs
        .iter()
        .filter_map(|r| r.package.as_ref())
        .filter(|p| p.outcome == JobStatus::OptionalFailed.as_str())
        .map(|p| format!("{}@{} {}", p.name, p.version, p.event))
        .collect()
}

/// The install after `install`'s `--events` file is open, in its stages; the report and the
/// project root are handed back through the slots as soon as they exist.
fn install_reporting(
    s: &InstallSettings,
    ndjson: Option<&crate::output::ndjson::Ndjson>,
    slot: &mut Option<Report>,
    project_slot: &mut Option<PathBuf>,
) -> Result<Exit, RunError> {
    let t0 = Instant::now();
    let install = Install::check(s, ndjson, project_slot)?;
    let Planned {
        build,
        phases,
        warnings,
        summary,
        npm_cache,
        nodedir,
    } = install.npm_and_plan()?;
    let total: usize = phases.iter().map(|p| p.jobs.len()).sum();
    let batch = install.run_scripts(phases, &build, total, npm_cache, nodedir);
    let report = install.report(&batch, &build, warnings, summary, t0)?;
    let flagged = install.flagged(&report);
    let ran = report.runs.len();
    *slot = Some(report);
    install.finish(batch, &build, flagged, ran, total)
}

/// What an install settles before npm changes anything: the caller's context, the toolchain,
/// the project (manifest and lockfile checked), its policy, approvals and allowlists, and the
/// tier every script runs in.
struct Install<'a> {
    s: &'a InstallSettings,
    /// Where `--events` go, when asked.
    ndjson: Option<&'a crate::output::ndjson::Ndjson>,
    rctx: ResolveContext,
    /// The caller's `PATH` (or the default).
    path_env: String,
    tool: Toolchain,
    /// The profile with the project's `ringfence.toml` layered over it.
    profile: ProfileFile,
    /// The project's approvals, when `--approvals` uses them.
    lock: Option<approvals::Lock>,
    allowlists: crate::policy::allowlist::Allowlists,
    project: Project,
    tier: crate::sandbox::spec::Tier,
}

/// What npm's install without scripts left to do: the build set, the scripts by phase (gated
/// and with their share of the cores), and the report's warnings and install part so far.
struct Planned {
    build: BuildSet,
    phases: Vec<Phase>,
    /// Already printed.
    warnings: Vec<ReportWarning>,
    summary: InstallSummary,
    /// npm's cache directory (read-only in the sandbox).
    npm_cache: Option<PathBuf>,
    /// node's headers for node-gyp, as npm's environment names them.
    nodedir: Option<PathBuf>,
}

impl<'a> Install<'a> {
    /// The checks before npm runs: a lock, allowlist, manifest or lockfile that cannot be used,
    /// or a machine where no sandbox runs, stops the install here.
    fn check(
        s: &'a InstallSettings,
        ndjson: Option<&'a crate::output::ndjson::Ndjson>,
        project_slot: &mut Option<PathBuf>,
    ) -> Result<Install<'a>, RunError> {
        let rctx = context(s)?;
        let path_env = rctx.var("PATH").unwrap_or(policy::DEFAULT_PATH).to_string();
        let tool = Toolchain::locate(&path_env, &rctx.cwd)?;
        let (root, profile) = project_and_policy(s, &rctx)?;
        *project_slot = Some(root.clone());
        // A lock that cannot be used stops the install before npm changes anything.
        let lock = if s.approvals {
            approvals::Lock::read(&root)?
        } else {
            None
        };
        let allowlists = crate::policy::allowlist::Allowlists::read(&root)?;
        let project = Project::read(root, s.command)?;
        // Pre-flight: a machine where no sandbox runs fails here, before npm changes anything.
        let tier = crate::pipeline::tier::preflight(s.tier, s.require_tier)?;
        Ok(Install {
            s,
            ndjson,
            rctx,
            path_env,
            tool,
            profile,
            lock,
            allowlists,
            project,
            tier,
        })
    }

    /// npm itself, outside the sandbox, with the user's own configuration; then the build set,
    /// its warnings (printed), the phases and the gate.
    fn npm_and_plan(&self) -> Result<Planned, RunError> {
        let (s, project, tool) = (self.s, &self.project, &self.tool);
        let captured =
            npm::run_ignore_scripts(tool, s.command, &s.npm_args, &project.root, &self.rctx.env)?;
        let build = project.build_set(s.command)?;
        let mut notices = build.warnings();
        notices.extend(self.allowlists.diagnostics().iter().map(|d| npm::Notice {
            code: d.code,
            location: None,
            message: format!("{}:{}: {}", d.file.display(), d.line, d.message),
        }));
        let allowed = |owner: &str| {
            self.profile
                .package
                .get(owner)
                .is_some_and(|p| p.shadow_bins == Some(true))
        };
        let refuse =
            self.profile.install.shadowing_bins == Some(crate::policy::file::ShadowingBins::Refuse);
        notices.extend(
            npm::bins::shadowing_bins(
                &project.root,
                build.after.packages.keys().map(String::as_str),
                &allowed,
            )
            .iter()
            .map(|s| if refuse { s.refuse() } else { s.notice() }),
        );
        let warnings: Vec<ReportWarning> = notices
            .into_iter()
            .map(|n| ReportWarning {
                code: n.code.into(),
                location: n.location,
                message: n.message,
            })
            .collect();
        human::report_warnings(&warnings);
        let (npm_env, nodedir) = project::script_env(&captured, tool);
        let phases = build.phases(project, s.command, &s.npm_args, &captured, &npm_env, tool);
        let mut summary = crate::report::install_summary(&build, &phases);
        let gated = crate::pipeline::gate::Gate::new(
            &self.allowlists,
            self.lock.as_ref(),
            s.only_approved || self.profile.install.only_approved == Some(true),
            &build.after.packages,
            root_manifest(&project.root).as_ref(),
        )
        .apply(phases);
        let mut phases = gated.phases;
        share_cores(&mut phases, s.jobs);
        summary.skipped = gated.skipped;
        summary.unreviewed = gated.unreviewed;
        let npm_cache = project::cache_dir(&npm_env, &self.rctx.home);
        Ok(Planned {
            build,
            phases,
            warnings,
            summary,
            npm_cache,
            nodedir,
        })
    }

    /// The build cache, when `--build-cache` asks for one and it opens (else a warning).
    fn build_cache(
        &self,
        build: &BuildSet,
        nodedir: Option<&std::path::Path>,
    ) -> Option<crate::pipeline::buildcache::BuildCache> {
        let (s, tier) = (self.s, self.tier);
        s.build_cache.as_ref().and_then(|dir| {
            let machine = (
                self.tool.node.clone(),
                self.path_env.clone(),
                nodedir.map(std::path::Path::to_path_buf),
            );
            let policy = crate::util::sha256_hex(
                format!(
                    "{}\0no_record={}\0forensic={}\0tier={tier:?}\0ringfence={}",
                    toml::to_string(&self.profile).unwrap_or_default(),
                    s.no_record,
                    s.forensic,
                    // What the sandbox does changes what a script leaves (a link answered by a
                    // copy): another ringfence version is another key.
                    env!("CARGO_PKG_VERSION")
                )
                .as_bytes(),
            );
            match crate::pipeline::buildcache::BuildCache::open(
                dir,
                machine,
                policy,
                build.after.packages.clone(),
                self.project.root.clone(),
            ) {
                Ok(c) => Some(c),
                Err(e) => {
                    eprintln!(
                        "ringfence: warning[build-cache]: not using the build cache: {}",
                        human::error_chain(&RunError::from(e))
                    );
                    None
                }
            }
        })
    }

    /// Every phase's scripts, each in its sandbox, told to the terminal, the progress line,
    /// `--events` and GitHub's log groups; then the profile warnings they raised.
    fn run_scripts(
        &self,
        phases: Vec<Phase>,
        build: &BuildSet,
        total: usize,
        npm_cache: Option<PathBuf>,
        nodedir: Option<PathBuf>,
    ) -> Batch {
        let s = self.s;
        let groups = s
            .github
            .as_ref()
            .map(|_| crate::output::github::Groups::default());
        // GitHub's log is not a terminal; a replay prints its own lines.
        let progress = if s.summary && s.github.is_none() && !s.quiet {
            crate::output::progress::Progress::on_terminal(total)
        } else {
            None
        };
        let mut sinks: Vec<&dyn crate::pipeline::Events> = vec![&human::Terminal];
        if let Some(p) = &progress {
            sinks.push(p);
        }
        if let Some(n) = self.ndjson {
            sinks.push(n);
        }
        if let Some(g) = &groups {
            sinks.push(g);
        }
        let fanout = crate::output::ndjson::Fanout(sinks);
        let events: &dyn crate::pipeline::Events = &fanout;
        let build_cache = self.build_cache(build, nodedir.as_deref());
        let runner = Runner {
            cache: build_cache.as_ref(),
            profile: &self.profile,
            rctx: &self.rctx,
            scope: scope(
                s,
                &self.project,
                build,
                &self.tool,
                npm_cache.as_ref(),
                nodedir,
            ),
            caches: npm_cache.iter().cloned().collect(),
            npm: self.tool.run_paths(),
            events,
            tier: self.tier,
        };
        let batch = run_phases(phases, &runner, build, s.jobs);
        drop(runner);
        drop(fanout);
        // The status line is cleared before anything else is printed.
        drop(progress);
        human::policy_warnings(batch.outcomes.iter().flat_map(|(o, _)| &o.warnings));
        batch
    }

    /// The report: the runs, judged against the approvals; written to `--report`, kept for
    /// `ringfence approve`, and summarised on stderr.
    fn report(
        &self,
        batch: &Batch,
        build: &BuildSet,
        mut warnings: Vec<ReportWarning>,
        summary: InstallSummary,
        t0: Instant,
    ) -> Result<Report, RunError> {
        let (s, project) = (self.s, &self.project);
        let mut runs: Vec<_> = batch
            .outcomes
            .iter()
            .filter_map(|(o, status)| package_run(o, *status, &project.root))
            .collect();
        let approvals = match &self.lock {
            Some(lock) => Some(review_approvals(
                s,
                lock,
                &mut runs,
                &project.root,
                build,
                &mut warnings,
            )?),
            None => None,
        };
        let mut report = Report::new(runs);
        report.warnings = warnings;
        report.install = Some(summary);
        report.approvals = approvals;
        if let Some(path) = &s.report {
            report.write(path)?;
        }
        if s.approvals {
            remember(&report, &project.root, &self.rctx);
        }
        if s.summary {
            eprint!(
                "{}",
                human::summary_styled(
                    &report,
                    t0.elapsed().as_secs_f64(),
                    human::Style::for_stderr(s.quiet)
                )
            );
        }
        Ok(report)
    }

    /// Whether the install is flagged: findings at `--fail-on` or worse, or under `--strict`
    /// scripts that are probably incomplete, were not run or failed optionally (each said on
    /// stderr).
    fn flagged(&self, report: &Report) -> bool {
        let s = self.s;
        let partial = partial(report);
        let skipped: Vec<String> = report
            .install
            .iter()
            .flat_map(|i| &i.skipped)
            .map(|k| format!("{}@{} {}", k.name, k.version, k.event))
            .collect();
        let strict = s.strict || self.profile.install.strict == Some(true);
        if strict && !partial.is_empty() {
            eprintln!(
                "ringfence: --strict: {} script(s) exited 0 but are probably incomplete: {}",
                partial.len(),
                partial.join(", ")
            );
        }
        if strict && !skipped.is_empty() {
            eprintln!(
                "ringfence: --strict: {} script(s) were not run, so their packages may not work: {}",
                skipped.len(),
                skipped.join(", ")
            );
        }
        // An optional dependency's failure or a timeout npm would shrug off (the optional set is
        // removed and the install goes on) is a broken install for a CI job that asked.
        let shrugged = shrugged(report);
        if strict && !shrugged.is_empty() {
            eprintln!(
                "ringfence: --strict: {} optional script(s) failed or timed out and their packages were removed: {}",
                shrugged.len(),
                shrugged.join(", ")
            );
        }
        s.fail_on
            .zip(report.worst())
            .is_some_and(|(threshold, worst)| worst >= threshold)
            || (strict && !(partial.is_empty() && skipped.is_empty() && shrugged.is_empty()))
    }

    /// The exit status: a required script's failure (dumped, rolled back when asked), else the
    /// optional sets removed and clean or flagged.
    fn finish(
        self,
        batch: Batch,
        build: &BuildSet,
        flagged: bool,
        ran: usize,
        total: usize,
    ) -> Result<Exit, RunError> {
        let (s, project) = (self.s, &self.project);
        let failed = batch
            .outcomes
            .into_iter()
            .find(|(_, status)| *status == JobStatus::Failed)
            .map(|(o, _)| o);
        if let Some(f) = failed {
            if !f.job.foreground && f.error().is_none() {
                human::script_failure(&f);
            }
            if s.rollback {
                eprintln!(
                    "ringfence: {}",
                    project.rollback.apply(&project.root).message()
                );
            }
            // A sandbox that could not run is ringfence's failure (exit 2); a script's own
            // failure is its status, unless findings already decide the exit.
            let outcome = f.executed.and_then(|x| x.result)?;
            let code = outcome.termination.exit_code();
            return Ok(if flagged {
                Exit::Flagged
            } else {
                Exit::Status(u8::try_from(code.clamp(1, 255)).unwrap_or(1))
            });
        }
        if !batch.trashed.is_empty() {
            npm::optional::remove_optional_set(&project.root, &build.after, &batch.trashed)?;
        }
        tracing::info!("replayed {ran} of {total} lifecycle script(s)");
        Ok(if flagged { Exit::Flagged } else { Exit::Clean })
    }
}
