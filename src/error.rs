//! The top-level error. Every variant is a failure of ringfence itself (exit 2, decided in
//! `commands::Exit`); what a sandboxed command did is never an error. Hints are data
//! ([`RunError::hint`]), never text folded into a message.

use std::path::PathBuf;

use thiserror::Error;

use crate::doctor::Diagnosis;
use crate::policy::PolicyError;
use crate::report::ReportError;
use crate::sandbox::SandboxError;

/// Anything that stops ringfence from doing its job.
#[derive(Debug, Error)]
pub enum RunError {
    /// Bad profile or request.
    #[error(transparent)]
    Policy(#[from] PolicyError),
    /// The sandbox machinery failed.
    #[error("{source}")]
    Sandbox {
        /// Cause.
        #[source]
        source: SandboxError,
        /// Why, and what to do about it.
        diagnosis: Option<Diagnosis>,
    },
    /// npm, the project or its lockfile.
    #[error(transparent)]
    Npm(#[from] crate::npm::NpmError),
    /// The report could not be written.
    #[error(transparent)]
    Report(#[from] ReportError),
    /// An allowlist the project has (package.json, pnpm-workspace.yaml) could not be used.
    #[error(transparent)]
    Allowlist(#[from] crate::policy::allowlist::AllowlistError),
    /// The script was not run (its outputs came from the build cache).
    #[error("not run: {0}")]
    NotRun(&'static str),
    /// The build cache could not be used.
    #[error(transparent)]
    Cache(#[from] crate::cache::CacheError),
    /// The project's `ringfence-approvals.json` could not be used.
    #[error(transparent)]
    Approvals(#[from] crate::approvals::ApprovalError),
    /// The decoy home could not be prepared.
    #[error("preparing the decoy home")]
    Observe(#[source] std::io::Error),
    /// `ringfence setup` could not do what it was asked.
    #[error("{what}")]
    Setup {
        /// What failed, with the path or command.
        what: String,
        /// What to do instead.
        fix: String,
    },
    /// A command-line value is invalid.
    #[error("{why}")]
    InvalidArgument {
        /// The flag or argument.
        flag: &'static str,
        /// The whole message.
        why: String,
    },
    /// `replay --evidence` names a directory that already holds something.
    #[error("--evidence `{}` exists and is not empty", path.display())]
    EvidenceDirNotEmpty {
        /// The directory.
        path: PathBuf,
    },
    /// `replay` was given a local path that does not exist.
    #[error(
        "replay: `{spec}` does not exist (a package directory, a .tgz, or a registry spec such as name@1.2.3)"
    )]
    NoSuchPackagePath {
        /// What was given.
        spec: String,
    },
    /// The tier that works here is weaker than `--require-tier`.
    #[error(
        "the {tier} tier is the strongest isolation available here, but --require-tier {required} asks for more"
    )]
    TierTooLow {
        /// What works.
        tier: &'static str,
        /// What was required.
        required: &'static str,
    },
    /// `approve` has no report to approve from.
    #[error("approve: no report of an install of this project at `{}`", path.display())]
    NoReport {
        /// Where it looked.
        path: PathBuf,
    },
    /// `approve` could not read or parse the report.
    #[error("approve: reading the report `{}`: {why}", path.display())]
    BadReport {
        /// The report.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// `run --show-plan` could not serialise the plan.
    #[error("serialising the plan")]
    SerializePlan(#[source] serde_json::Error),
}

/// A cause and what to do about it, for the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hint {
    /// Why it failed (optional: some hints are only a fix).
    pub cause: Option<String>,
    /// What to do.
    pub fix: String,
}

impl RunError {
    /// What the user can do about this error, when ringfence knows.
    pub fn hint(&self) -> Option<Hint> {
        match self {
            RunError::Sandbox {
                diagnosis: Some(d), ..
            } => Some(Hint {
                cause: Some(d.cause.clone()),
                fix: d.fix.clone(),
            }),
            RunError::Policy(p) => p.hint().map(|fix| Hint { cause: None, fix }),
            RunError::Npm(n) => n.hint().map(|fix| Hint { cause: None, fix }),
            RunError::Setup { fix, .. } => Some(Hint {
                cause: None,
                fix: fix.clone(),
            }),
            RunError::NoReport { .. } => Some(Hint {
                cause: None,
                fix: "run `ringfence install` (or `ringfence ci`) in the project first, or pass `--report FILE` of an install".into(),
            }),
            _ => None,
        }
    }
}
