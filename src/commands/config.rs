//! `ringfence config`: the resolved policy of the project, with where each value came from.

use crate::cli::ConfigArgs;
use crate::error::RunError;
use crate::policy::{self, PolicyError};

use super::Exit;

/// `ringfence config`.
pub fn run(args: &ConfigArgs) -> Result<Exit, RunError> {
    let cwd = std::env::current_dir().map_err(PolicyError::Context)?;
    let root = crate::npm::find_project(&cwd).ok();
    let root = root.map(|r| std::fs::canonicalize(&r).unwrap_or(r));
    let layered = policy::layers::load(args.profile.as_deref(), root.as_deref())?;
    let lock = match &root {
        Some(r) => crate::approvals::Lock::read(r)?,
        None => None,
    };
    let view = crate::output::config::View {
        project: root.as_deref(),
        layered: &layered,
        lock: lock.as_ref(),
    };
    if args.json {
        println!("{}", crate::output::config::json(&view));
    } else {
        print!("{}", crate::output::config::text(&view));
    }
    Ok(Exit::Clean)
}
