//! `ringfence doctor`: what this kernel offers, and the honest probe — the real default sandbox
//! around `true`, through the same pipeline every command uses.

use serde_json::json;

use crate::doctor::KernelFacts;
use crate::error::RunError;
use crate::output::human;
use crate::pipeline::execute::sandbox_error;
use crate::pipeline::tier;
use crate::sandbox::landlock::Status;
use crate::sandbox::spec::Tier;
use crate::sandbox::{self, Outcome, SandboxError};
use crate::settings::DoctorSettings;

use super::Exit;

/// The probe in `tier`, with a setup failure diagnosed against `facts`.
fn probe(tier: Tier, facts: &KernelFacts) -> Result<Outcome, RunError> {
    match tier::probe(tier).and_then(|x| x.result) {
        Err(RunError::Sandbox { source, .. }) => Err(sandbox_error(source, Some(facts))),
        other => other,
    }
}

/// `doctor` / `doctor --json`.
pub fn run(s: DoctorSettings) -> Result<Exit, RunError> {
    let facts = KernelFacts::read();
    let probe = probe(Tier::Full, &facts);
    // Without usable user namespaces, the namespace-free tier.
    let fallback = match &probe {
        Err(e) if tier::namespaces_unusable(e) => Some(self::probe(Tier::Landlock, &facts)),
        _ => None,
    };
    let landlock_status = |e: &crate::sandbox::Enforced| match e.landlock.status {
        Status::FullyEnforced => "fully enforced",
        Status::PartiallyEnforced => "partially enforced",
        Status::NotEnforced => "not enforced",
    };
    let (tier, detail, enforced) = match (&probe, &fallback) {
        (Ok(o), _) => match &o.enforced {
            Some(e) => (
                "full",
                format!(
                    "user, mount, pid, net, ipc, uts namespaces; landlock {}; {} seccomp filters; no capabilities; no_new_privs",
                    landlock_status(e),
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
        (Err(_), Some(Ok(o))) => (
            "landlock",
            format!(
                "no namespaces: landlock {} is the filesystem view (the host's paths, what the full tier shows), TCP bind/connect denied by landlock and other sockets by seccomp (recorded runs get the sinkhole through the supervisor); {} seccomp filters; processes tracked through a child subreaper; no capabilities; no_new_privs",
                o.enforced
                    .as_ref()
                    .map_or("status unknown", landlock_status),
                o.enforced.as_ref().map_or(0, |e| e.seccomp_filters)
            ),
            o.enforced.clone(),
        ),
        (Err(e), Some(Err(_)) | None) => ("unavailable", human::error(e), None),
    };
    let usable = probe.is_ok() || matches!(fallback, Some(Ok(_)));
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
            "container": facts.container,
            "seccomp": {
                "mode": facts.seccomp_mode,
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
    Ok(if usable {
        Exit::Clean
    } else {
        Exit::Unavailable
    })
}
