//! Landlock: the second filesystem layer behind the mount view, plus TCP-bind denial and
//! abstract-socket/signal scoping. Applied after every mount (Landlock forbids later topology
//! changes) in the single-threaded sandboxed child.
//!
//! The ABI is pinned to the version we test against ([`PINNED_ABI`]); the crate's best-effort
//! mode drops what an older kernel lacks and [`LandlockOutcome`] records what was achieved.

use landlock::{
    ABI, Access, AccessFs, AccessNet, BitFlags, CompatLevel, Compatible, LandlockStatus,
    PathBeneath, PathFd, Ruleset, RulesetAttr, RulesetCreatedAttr, RulesetStatus, Scope,
};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::plan::{FsAccess, LandlockPlan};
use super::spec::Level;

/// The Landlock ABI this code was written and tested against (Linux 6.15: scopes and log flags).
pub const PINNED_ABI: ABI = ABI::V7;
/// Numeric value of [`PINNED_ABI`], for reports.
pub const PINNED_ABI_NUMBER: u32 = 7;

/// What the kernel actually enforced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Every requested restriction is enforced.
    FullyEnforced,
    /// Some restrictions are enforced (older kernel).
    PartiallyEnforced,
    /// Nothing is enforced.
    NotEnforced,
}

/// Landlock result for the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LandlockOutcome {
    /// Achieved status.
    pub status: Status,
    /// The ABI we asked for.
    pub requested_abi: u32,
    /// The ABI the kernel offers (`None` if Landlock is unavailable).
    pub kernel_abi: Option<u32>,
}

/// Failures building or applying the ruleset.
#[derive(Debug, Error)]
pub enum LandlockError {
    /// Opening a rule's path failed.
    #[error("opening `{path}` for a landlock rule")]
    OpenPath {
        /// Path.
        path: String,
        /// Cause.
        #[source]
        source: landlock::PathFdError,
    },
    /// The ruleset could not be built or applied.
    #[error("building or applying the landlock ruleset")]
    Ruleset(#[from] landlock::RulesetError),
    /// The landlock tier needs at least this ABI.
    #[error(
        "the landlock tier needs Landlock ABI >= {min} (Linux >= 6.7: filesystem and TCP rules); this kernel offers {kernel_abi:?}"
    )]
    TooOld {
        /// Needed.
        min: u32,
        /// Offered.
        kernel_abi: Option<u32>,
    },
    /// Required but not fully enforced.
    #[error(
        "landlock is required by the profile but the kernel enforced it only as `{status:?}` (kernel ABI {kernel_abi:?}, pinned ABI {PINNED_ABI_NUMBER}); Landlock needs Linux >= 5.13, scopes >= 6.12"
    )]
    NotEnforced {
        /// Achieved status.
        status: Status,
        /// Kernel ABI.
        kernel_abi: Option<u32>,
    },
}

fn access(a: FsAccess) -> BitFlags<AccessFs> {
    match a {
        FsAccess::ListDir => AccessFs::ReadDir.into(),
        FsAccess::Read => AccessFs::from_read(PINNED_ABI),
        FsAccess::Devices => {
            AccessFs::ReadFile | AccessFs::WriteFile | AccessFs::ReadDir | AccessFs::IoctlDev
        }
        FsAccess::Full => AccessFs::from_all(PINNED_ABI),
        FsAccess::DirOnly(writable) => super::hostview::dir_only(writable),
    }
}

/// Build and apply the ruleset to the calling thread (which must be the only thread).
pub fn restrict(plan: &LandlockPlan) -> Result<LandlockOutcome, LandlockError> {
    let mut ruleset = Ruleset::default()
        .set_compatibility(CompatLevel::BestEffort)
        .handle_access(AccessFs::from_all(PINNED_ABI))?;
    if plan.deny_tcp_bind {
        ruleset = ruleset.handle_access(AccessNet::BindTcp)?;
    }
    if plan.deny_tcp_connect {
        ruleset = ruleset.handle_access(AccessNet::ConnectTcp)?;
    }
    if plan.scoped {
        ruleset = ruleset.scope(Scope::AbstractUnixSocket | Scope::Signal)?;
    }
    let mut created = ruleset.create()?;
    for rule in &plan.rules {
        let fd = PathFd::new(&rule.path).map_err(|source| LandlockError::OpenPath {
            path: rule.path.display().to_string(),
            source,
        })?;
        // Directory-only rights on a file rule would make the crate report partial enforcement.
        let mut rights = access(rule.access);
        if !rule.dir {
            rights &= AccessFs::from_file(PINNED_ABI);
        }
        created = created.add_rule(PathBeneath::new(fd, rights))?;
    }
    // Denials of untrusted code are expected; do not flood the audit log with them (the UAPI
    // documentation recommends this for sandboxers).
    let status = created.log_same_exec(false)?.restrict_self()?;
    let outcome = LandlockOutcome {
        status: match status.ruleset {
            RulesetStatus::FullyEnforced => Status::FullyEnforced,
            RulesetStatus::PartiallyEnforced => Status::PartiallyEnforced,
            RulesetStatus::NotEnforced => Status::NotEnforced,
        },
        requested_abi: PINNED_ABI_NUMBER,
        kernel_abi: match status.landlock {
            LandlockStatus::Available {
                effective_abi,
                kernel_abi,
            } => kernel_abi
                .and_then(|k| u32::try_from(k).ok())
                .or(Some(effective_abi as u32)),
            _ => None,
        },
    };
    if let Some(min) = plan.min_abi {
        if outcome.kernel_abi.is_none_or(|k| k < min) {
            return Err(LandlockError::TooOld {
                min,
                kernel_abi: outcome.kernel_abi,
            });
        }
    }
    if plan.level == Level::Required && outcome.status != Status::FullyEnforced {
        return Err(LandlockError::NotEnforced {
            status: outcome.status,
            kernel_abi: outcome.kernel_abi,
        });
    }
    Ok(outcome)
}
