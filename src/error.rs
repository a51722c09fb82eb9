//! The top-level error and its exit code. Every variant is a failure of ringfence itself (exit 2);
//! what a sandboxed command did is never an error.

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
    #[error("{source}{}", diagnosis.as_ref().map(|d| format!("\n  cause: {}\n\nhint: {}", d.cause, d.fix)).unwrap_or_default())]
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
    /// The decoy home could not be prepared.
    #[error("preparing the decoy home")]
    Observe(#[source] std::io::Error),
    /// A command-line value is invalid.
    #[error("{0}")]
    Usage(String),
}

impl RunError {
    /// Process exit code for this error.
    pub fn exit_code(&self) -> u8 {
        2
    }
}

/// Render an error with its cause chain, one "caused by" per line, and hints last.
pub fn render(e: &dyn std::error::Error) -> String {
    let mut out = format!("error: {e}");
    let mut hints = Vec::new();
    let mut cur = e.source();
    // Sources already folded into the top message (transparent variants) are skipped.
    while let Some(c) = cur {
        let text = c.to_string();
        if !out.contains(&text) {
            let (msg, hint) = match text.split_once("\n\nhint: ") {
                Some((m, h)) => (m.to_string(), Some(h.to_string())),
                None => (text, None),
            };
            out.push_str(&format!("\n  caused by: {msg}"));
            hints.extend(hint);
        }
        cur = c.source();
    }
    for h in hints {
        out.push_str(&format!("\n\nhint: {h}"));
    }
    out
}
