//! `ringfence doctor`: what this kernel offers, and the honest probe — the real default sandbox
//! around `true`, through the same pipeline every command uses.

use std::time::Duration;

use serde_json::json;

use crate::doctor::KernelFacts;
use crate::error::RunError;
use crate::output::human;
use crate::pipeline::{Executed, Io, Prepared, Recording};
use crate::policy::{self, PolicyError, ResolveContext, RunRequest};
use crate::sandbox::landlock::Status;
use crate::sandbox::{self, SandboxError};
use crate::settings::DoctorSettings;

use super::Exit;

/// Run the probe (its policy warnings are its own business: not printed) and the sandbox.
fn probe(facts: &KernelFacts) -> Result<Executed, RunError> {
    let req = RunRequest {
        command: vec!["true".into()],
        timeout: Some(Duration::from_secs(30)),
        no_record: true,
        ..Default::default()
    };
    let rctx = ResolveContext::from_process().map_err(PolicyError::Context)?;
    let profile = policy::load(None)?;
    let (spec, _probe_warnings) = policy::resolve(&profile, &rctx, &req)?;
    let mut x = Prepared::new(spec, &Recording::Off)?.execute(Io::Terminal);
    if let Err(RunError::Sandbox { source, .. }) = x.result {
        x.result = Err(crate::pipeline::execute::sandbox_error(source, Some(facts)));
    }
    Ok(x)
}

/// `doctor` / `doctor --json`.
pub fn run(s: DoctorSettings) -> Result<Exit, RunError> {
    let facts = KernelFacts::read();
    let probe = probe(&facts).and_then(|x| x.result);
    let (tier, detail, enforced) = match &probe {
        Ok(o) => match &o.enforced {
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
        Err(e) => ("unavailable", human::error(e), None),
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
    if s.json {
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
        print!("{}", human::doctor(&facts, &userns, tier, &detail));
    }
    Ok(if probe.is_ok() {
        Exit::Clean
    } else {
        Exit::Unavailable
    })
}
