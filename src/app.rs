//! Orchestration of the subcommands.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::json;

use crate::cli::{Cli, Command, DoctorArgs, InstallArgs, RunArgs};
use crate::doctor::{self, KernelFacts};
use crate::error::RunError;
use crate::observe::Observation;
use crate::policy::{self, PolicyError, ResolveContext, RunRequest};
use crate::report::{Report, ScriptRun};
use crate::sandbox::landlock::Status;
use crate::sandbox::plan::SetupPlan;
use crate::sandbox::spec::SandboxSpec;
use crate::sandbox::{self, Outcome, SandboxError, Stdio2};

/// Run the parsed command line; `Ok` carries the process exit code.
pub fn main(cli: Cli) -> Result<u8, RunError> {
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
        Command::Run(args) => run(args),
        Command::Doctor(args) => doctor(args),
        Command::Install(args) => install(crate::npm::Command2::Install, args),
        Command::Ci(args) => install(crate::npm::Command2::Ci, args),
        Command::Replay(args) => replay(args),
        Command::Findings(args) => {
            print!("{}", findings_catalogue(args.markdown));
            Ok(0)
        }
    }
}

/// The findings catalogue, as Markdown or one line per code.
fn findings_catalogue(markdown: bool) -> String {
    use crate::findings::catalog;
    if markdown {
        return catalog::markdown();
    }
    catalog::RULES
        .iter()
        .map(|r| {
            format!(
                "{:<27} {:<8} {:<19} {}\n",
                r.code.as_str(),
                r.severity.as_str(),
                r.kind.as_str(),
                r.meaning
            )
        })
        .collect()
}

fn sandbox_error(e: SandboxError, facts: Option<&KernelFacts>) -> RunError {
    let hint = match &e {
        SandboxError::Setup { step, errno, .. } => {
            let owned;
            let facts = match facts {
                Some(f) => f,
                None => {
                    owned = KernelFacts::read();
                    &owned
                }
            };
            doctor::hint(*step, *errno, facts)
        }
        SandboxError::Exec { source, .. } if source.raw_os_error() == Some(libc::ENOENT) => {
            Some(doctor::Diagnosis {
                cause:
                    "the program or its interpreter (`#!` line) does not exist inside the sandbox"
                        .into(),
                fix: "expose the interpreter's directory with `--ro`".into(),
            })
        }
        _ => None,
    };
    RunError::Sandbox {
        source: e,
        diagnosis: hint,
    }
}

/// Resolve a request against a profile into a spec, printing warnings.
pub fn prepare(
    profile: Option<&std::path::Path>,
    req: &RunRequest,
) -> Result<SandboxSpec, RunError> {
    let ctx = ResolveContext::from_process().map_err(PolicyError::Context)?;
    let profile = policy::load(profile)?;
    let (spec, warnings) = policy::resolve(&profile, &ctx, req)?;
    for w in warnings {
        eprintln!("warning[{}]: {}", w.code, w.message);
    }
    Ok(spec)
}

/// The setup plan for a spec (with per-step timing when debug logging is on).
pub fn plan_for(spec: &SandboxSpec) -> SetupPlan {
    let mut plan = SetupPlan::from_spec(spec, &|p| p.is_dir());
    plan.trace_steps = tracing::enabled!(tracing::Level::DEBUG);
    plan
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

fn run(args: RunArgs) -> Result<u8, RunError> {
    let timeout = match args.timeout {
        None => None,
        Some(s) if s.is_finite() && s > 0.0 => Some(Duration::from_secs_f64(s)),
        Some(s) => {
            return Err(RunError::Usage(format!(
                "--timeout {s}: expected a positive number of seconds"
            )));
        }
    };
    let req = RunRequest {
        command: args.command.clone(),
        rw: args.rw,
        ro: args.ro,
        timeout,
        env: args.env,
        cwd: args.cwd,
        no_record: args.no_record,
        forensic: args.forensic,
        deny: vec![],
        ..Default::default()
    };
    let mut spec = prepare(args.profile.as_deref(), &req)?;
    let t_attach = std::time::Instant::now();
    let observation = if req.no_record {
        None
    } else {
        Some(Observation::attach(&mut spec, &req.env).map_err(RunError::Observe)?)
    };
    tracing::debug!("recording attached in {:?}", t_attach.elapsed());
    let plan = plan_for(&spec);
    if args.show_plan {
        let text = serde_json::to_string_pretty(&json!({ "spec": spec, "plan": plan }))
            .map_err(|e| RunError::Usage(e.to_string()))?;
        println!("{text}");
        return Ok(0);
    }
    let started = unix_ms(SystemTime::now());
    let mut observation = observation;
    let outcome = sandbox::run(
        &plan,
        spec.limits.timeout_ms.map(Duration::from_millis),
        Stdio2::inherit(),
        &mut |what| {
            if let Some(o) = observation.as_mut() {
                o.take(what);
            }
        },
    )
    .map_err(|e| sandbox_error(e, None))?;
    let t_finish = std::time::Instant::now();
    let observed = observation.map(|o| o.finish(&outcome)).unwrap_or_default();
    tracing::debug!("recording finished in {:?}", t_finish.elapsed());
    tell(&spec, &outcome);
    for f in &observed.findings {
        eprintln!("ringfence: finding [{}] {}", f.severity.as_str(), f.summary);
    }
    if let Some(path) = &args.report {
        let mut run = ScriptRun::new(&spec, &plan.seccomp, &outcome, started);
        run.observed(observed);
        Report::new(vec![run]).write(path)?;
    }
    let code = outcome.termination.exit_code();
    Ok(u8::try_from(code & 0xff).unwrap_or(u8::MAX))
}

/// What the user should know about a finished run, on stderr.
fn tell(spec: &SandboxSpec, outcome: &Outcome) {
    let cmd = spec.exec.argv.join(" ");
    if outcome.timed_out {
        eprintln!(
            "ringfence: `{cmd}` timed out after {:.1}s; the whole sandbox was killed",
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
    }
}

fn doctor(args: DoctorArgs) -> Result<u8, RunError> {
    let facts = KernelFacts::read();
    // The honest probe: run the real default sandbox around `true`.
    let req = RunRequest {
        command: vec!["true".into()],
        timeout: Some(Duration::from_secs(30)),
        no_record: true,
        forensic: false,
        deny: vec![],
        ..Default::default()
    };
    let probe = prepare(None, &req).and_then(|spec| {
        let plan = plan_for(&spec);
        sandbox::run(
            &plan,
            Some(Duration::from_secs(30)),
            Stdio2::inherit(),
            &mut |_| {},
        )
        .map(|o| (spec, plan, o))
        .map_err(|e| sandbox_error(e, Some(&facts)))
    });
    let (tier, detail, enforced) = match &probe {
        Ok((_, _, o)) => match &o.enforced {
            Some(e) => (
                "full",
                format!(
                    "user, mount, pid, net, ipc, uts namespaces; landlock {}; {} seccomp filters; no capabilities; no_new_privs",
                    match e.landlock.status {
                        Status::FullyEnforced => "fully enforced",
                        Status::PartiallyEnforced => "partially enforced",
                        Status::NotEnforced => "not enforced",
                    },
                    e.seccomp_filters
                ),
                Some(e.clone()),
            ),
            None => (
                "unknown",
                "the probe ended before setup finished".into(),
                None,
            ),
        },
        Err(e) => ("unavailable", crate::error::render(e), None),
    };
    let userns = match &probe {
        Ok(_) => "usable".to_string(),
        Err(RunError::Sandbox {
            source:
                SandboxError::Setup {
                    step: sandbox::init::Step::Unshare | sandbox::init::Step::MapIds,
                    ..
                },
            ..
        }) => {
            let d = facts.userns_cause();
            format!("not usable: {}; fix: {}", d.cause, d.fix)
        }
        Err(_) => "created, but the sandbox failed later (see tier)".to_string(),
    };
    if args.json {
        let v = json!({
            "kernel": facts.release,
            "user_namespaces": {
                "usable": probe.is_ok(),
                "detail": userns,
                "unprivileged_userns_clone": facts.unprivileged_userns_clone,
                "max_user_namespaces": facts.max_user_namespaces,
                "apparmor_restrict_unprivileged_userns": facts.apparmor_restrict_unprivileged_userns,
            },
            "landlock": {
                "kernel_abi": facts.landlock_abi.as_ref().ok(),
                "unavailable": facts.landlock_abi.as_ref().err(),
                "pinned_abi": sandbox::landlock::PINNED_ABI_NUMBER,
            },
            "seccomp": {
                "actions": facts.seccomp_actions,
                "user_notification": facts.user_notif(),
            },
            "tier": tier,
            "detail": detail,
            "enforced": enforced,
        });
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    } else {
        let landlock = match &facts.landlock_abi {
            Ok(abi) => format!(
                "ABI {abi} (ringfence pins ABI {})",
                sandbox::landlock::PINNED_ABI_NUMBER
            ),
            Err(e) => format!("unavailable: {e}"),
        };
        println!("kernel            {}", facts.release);
        println!("user namespaces   {userns}");
        println!("landlock          {landlock}");
        println!(
            "seccomp           filters: {}; user notification: {}",
            if facts.seccomp_actions.is_some() {
                "yes"
            } else {
                "unknown"
            },
            if facts.user_notif() { "yes" } else { "no" }
        );
        println!("isolation tier    {tier}: {detail}");
    }
    Ok(if probe.is_ok() { 0 } else { 2 })
}

fn fail_on(s: &str) -> Result<Option<crate::observe::Severity>, RunError> {
    match s {
        "never" => Ok(None),
        s => s
            .parse::<crate::observe::Severity>()
            .map(Some)
            .map_err(RunError::Usage),
    }
}

fn replay(args: crate::cli::ReplayArgs) -> Result<u8, RunError> {
    if !(args.timeout.is_finite() && args.timeout > 0.0) {
        return Err(RunError::Usage(format!(
            "--timeout {}: expected a positive number of seconds",
            args.timeout
        )));
    }
    let modes = if args.modes.is_empty() {
        vec!["dev".to_string(), "ci".to_string()]
    } else {
        args.modes
    };
    crate::replay::run(crate::replay::ReplayOptions {
        specs: args.specs,
        modes,
        report: args.report,
        evidence: args.evidence,
        profile: args.profile,
        fail_on: fail_on(&args.fail_on)?,
        timeout: Duration::from_secs_f64(args.timeout),
    })
}

fn install(command: crate::npm::Command2, args: InstallArgs) -> Result<u8, RunError> {
    let jobs = args
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    if jobs == 0 {
        return Err(RunError::Usage("--jobs must be at least 1".into()));
    }
    let fail_on = fail_on(&args.fail_on)?;
    crate::install::run(crate::install::InstallOptions {
        command,
        npm_args: args.npm_args,
        report: args.report,
        jobs,
        profile: args.profile,
        fail_on,
        strict: args.strict,
        no_record: args.no_record,
        forensic: args.forensic,
        ..crate::install::InstallOptions::new(command)
    })
}
