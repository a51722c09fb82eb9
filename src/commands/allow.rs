//! `ringfence allow`: add an allowance to the project's `ringfence.toml`, in place.

use crate::cli::AllowArgs;
use crate::error::RunError;
use crate::policy::{self, PolicyError, edit};

use super::Exit;

/// Files larger than this are not a policy file.
const MAX_BYTES: u64 = 4 << 20;

/// `ringfence allow`.
pub fn run(args: &AllowArgs) -> Result<Exit, RunError> {
    let cwd = std::env::current_dir().map_err(PolicyError::Context)?;
    let root = crate::npm::find_project(&cwd)?;
    let path = root.join(policy::PROJECT_FILE);
    let text = match std::fs::symlink_metadata(&path) {
        Ok(m) if !m.file_type().is_file() || m.len() > MAX_BYTES => {
            return Err(PolicyError::Invalid(vec![format!(
                "{}: not a regular file of at most {MAX_BYTES} bytes",
                path.display()
            )])
            .into());
        }
        Ok(_) => {
            Some(
                std::fs::read_to_string(&path).map_err(|source| PolicyError::ReadProfile {
                    path: path.clone(),
                    source,
                })?,
            )
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(source) => return Err(PolicyError::ReadProfile { path, source }.into()),
    };
    let allow = edit::Allow {
        package: args.package.clone(),
        write: args.write.clone(),
        timeout: args.timeout.clone(),
        reason: args.reason.clone(),
    };
    let (out, changes) = edit::apply(text.as_deref(), &allow)?;
    if changes.is_empty() {
        eprintln!("ringfence: {} already allows that", path.display());
        return Ok(Exit::Clean);
    }
    crate::util::write_atomic(&path, out.as_bytes()).map_err(|source| {
        RunError::Report(crate::report::ReportError::Write {
            path: path.clone(),
            source,
        })
    })?;
    for c in &changes {
        eprintln!("ringfence: {}: {c}", path.display());
    }
    if args.write.iter().any(|w| w.starts_with(".git/")) {
        eprintln!(
            "ringfence: note: {} may now change your git hooks; they run on every commit",
            args.package
        );
    }
    Ok(Exit::Clean)
}
