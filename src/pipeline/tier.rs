//! Choosing the isolation tier: the full tier (namespaces) where user namespaces work, the
//! landlock tier where they do not (default Docker/podman/Kubernetes profiles, Ubuntu's AppArmor
//! restriction). The choice is made by running the real sandbox around `true`, once per
//! process, so it is never a guess from marker files.

use std::sync::OnceLock;
use std::time::Duration;

use crate::error::RunError;
use crate::policy::{self, PolicyError, ResolveContext, RunRequest};
use crate::sandbox::SandboxError;
use crate::sandbox::init::Step;
use crate::sandbox::spec::Tier;

use super::execute::{Executed, Io, Prepared, Recording};

/// What the user asked for (`--tier`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TierChoice {
    /// The full tier where it works, else the landlock tier.
    #[default]
    Auto,
    /// Exactly this tier.
    Exactly(Tier),
}

impl std::str::FromStr for TierChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(TierChoice::Auto),
            "full" => Ok(TierChoice::Exactly(Tier::Full)),
            "landlock" => Ok(TierChoice::Exactly(Tier::Landlock)),
            _ => Err(format!("unknown tier `{s}` (auto, full, landlock)")),
        }
    }
}

/// Tiers ordered by strength, for `--require-tier`.
fn strength(t: Tier) -> u8 {
    match t {
        Tier::Landlock => 1,
        Tier::Full => 2,
    }
}

/// A setup failure in a step only the full tier has: user namespaces are not usable here.
pub fn namespaces_unusable(e: &RunError) -> bool {
    matches!(
        e,
        RunError::Sandbox {
            source: SandboxError::Setup {
                step: Step::Unshare
                    | Step::MapIds
                    | Step::ForkInit
                    | Step::DieWithStageA
                    | Step::MakeMountsPrivate
                    | Step::OpenSources
                    | Step::MountRoot
                    | Step::BuildRoot
                    | Step::PivotRoot
                    | Step::RemountRootReadOnly
                    | Step::SetHostname
                    | Step::Network,
                ..
            },
            ..
        }
    )
}

/// The full tier if its probe runs; else, when namespaces are what failed, the landlock tier if
/// its probe runs; else the error.
fn auto() -> Result<Tier, RunError> {
    match probe(Tier::Full).and_then(|x| x.result) {
        Ok(_) => Ok(Tier::Full),
        Err(e) if namespaces_unusable(&e) => {
            tracing::info!("user namespaces are not usable here ({e}); using the landlock tier");
            probe(Tier::Landlock).and_then(|x| x.result)?;
            Ok(Tier::Landlock)
        }
        Err(e) => Err(e),
    }
}

/// Run the default sandbox around `true` in `tier`, without recording.
pub fn probe(tier: Tier) -> Result<Executed, RunError> {
    let req = RunRequest {
        command: vec!["true".into()],
        timeout: Some(Duration::from_secs(30)),
        no_record: true,
        ..Default::default()
    };
    let mut rctx = ResolveContext::from_process().map_err(PolicyError::Context)?;
    rctx.cwd = "/".into();
    let profile = policy::load(None)?;
    let (spec, _probe_warnings) = policy::resolve(&profile, &rctx, &req)?;
    Ok(Prepared::new(spec, &Recording::Off, tier)?.execute(Io::Terminal))
}

/// The tier to use: `choice`, or for `Auto` the full tier if its probe runs and else the
/// landlock tier if its probe runs (each probed once per process). A tier below `minimum` is
/// refused. Errors are the probe's own (with their hint).
pub fn choose(choice: TierChoice, minimum: Option<Tier>) -> Result<Tier, RunError> {
    static AUTO: OnceLock<Tier> = OnceLock::new();
    let tier = match choice {
        TierChoice::Exactly(t) => t,
        // The full tier or nothing: its own failure (with its hint) is the answer.
        TierChoice::Auto if minimum == Some(Tier::Full) => {
            probe(Tier::Full).and_then(|x| x.result)?;
            Tier::Full
        }
        TierChoice::Auto => match AUTO.get() {
            Some(t) => *t,
            None => {
                let t = auto()?;
                *AUTO.get_or_init(|| t)
            }
        },
    };
    if let Some(min) = minimum {
        if strength(tier) < strength(min) {
            return Err(RunError::TierTooLow {
                tier: tier.as_str(),
                required: min.as_str(),
            });
        }
    }
    Ok(tier)
}

/// [`choose`], then the chosen tier's probe when `choose` did not already run it: an install
/// that cannot sandbox fails here, in milliseconds, before npm touches the project.
pub fn preflight(choice: TierChoice, minimum: Option<Tier>) -> Result<Tier, RunError> {
    let tier = choose(choice, minimum)?;
    if let TierChoice::Exactly(t) = choice {
        probe(t).and_then(|x| x.result)?;
    }
    Ok(tier)
}
