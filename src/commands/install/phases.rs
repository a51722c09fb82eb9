//! Running the phases: what every script of the install shares, the cores node-gyp builds
//! divide among them, and the loop over phases that stops after a required failure and drops an
//! optional dependency's set after its failure.

use std::collections::BTreeSet;
use std::path::PathBuf;

use crate::npm::Toolchain;
use crate::npm::project::{BuildSet, Project};
use crate::npm::scripts::{Job, Phase};
use crate::npm::tree::optional_set;
use crate::pipeline::{JobStatus, Runner, ScriptOutcome, batch};
use crate::policy::package::InstallScope;
use crate::settings::InstallSettings;

/// What the scripts of this install share: the project, the toolchain they read, the links.
pub(super) fn scope(
    s: &InstallSettings,
    project: &Project,
    build: &BuildSet,
    tool: &Toolchain,
    npm_cache: Option<&PathBuf>,
    nodedir: Option<PathBuf>,
) -> InstallScope {
    let mut toolchain = vec![tool.npm_dir.clone()];
    toolchain.extend(npm_cache.cloned());
    toolchain.extend(nodedir);
    if !tool.node_prefix.starts_with("/usr") {
        toolchain.push(tool.node_prefix.clone());
    }
    let (deep_secrets, truncated) = crate::policy::package::credential_files_below(&project.root);
    if truncated {
        tracing::warn!(
            "`{}`: the search for credential files below the project root stopped at its bound; files beyond it are not denied to dependency scripts",
            project.root.display()
        );
    }
    InstallScope {
        project: project.root.clone(),
        toolchain,
        link_dirs: build.link_dirs(),
        deep_secrets,
        no_record: s.no_record,
        forensic: s.forensic,
        timeout: s.timeout,
    }
}

/// Native builds get the machine's cores: node-gyp builds with one compiler job unless told
/// (`JOBS`), so each build script of a phase gets `JOBS` = the CPUs divided among the builds
/// that run at once (at least 1). Only scripts that run node-gyp, and never over the user's own
/// `JOBS` or `MAKEFLAGS=-j…`; npm's own `npm_*` environment is left exactly as npm makes it.
pub(super) fn share_cores(phases: &mut [Phase], parallel: usize) {
    let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    for phase in phases {
        let builds = phase
            .jobs
            .iter()
            .filter(|j| j.command.contains("node-gyp"))
            .count();
        if builds == 0 {
            continue;
        }
        let each = (cpus / builds.min(parallel.max(1))).max(1);
        for job in phase
            .jobs
            .iter_mut()
            .filter(|j| j.command.contains("node-gyp"))
        {
            let told = job.env.contains_key("JOBS")
                || job.env.get("MAKEFLAGS").is_some_and(|m| m.contains("-j"));
            if !told {
                job.env.insert("JOBS".into(), each.to_string());
            }
        }
    }
}

/// Every phase in order; within a phase up to `--jobs` sandboxes. Stops after a phase in which
/// a required script failed or could not run; an optional dependency's failure removes its
/// optional set from the rest of the install.
pub(super) struct Batch {
    pub(super) outcomes: Vec<(ScriptOutcome, JobStatus)>,
    pub(super) trashed: BTreeSet<String>,
}

pub(super) fn run_phases(
    phases: Vec<Phase>,
    runner: &Runner<'_>,
    build: &BuildSet,
    jobs: usize,
) -> Batch {
    let mut b = Batch {
        outcomes: Vec::new(),
        trashed: BTreeSet::new(),
    };
    for phase in phases {
        let todo: Vec<Job> = phase
            .jobs
            .into_iter()
            .filter(|j| !b.trashed.contains(&j.location))
            .collect();
        tracing::info!("phase {}: {} script(s)", phase.name, todo.len());
        if !todo.is_empty() {
            runner.events.phase_starting(&phase.name, todo.len());
        }
        let done = batch::run_phase(
            todo,
            jobs,
            |j| j.foreground,
            ScriptOutcome::stops,
            |j| runner.run(j),
        );
        let mut stop = false;
        for o in done {
            let status = if !o.failed() {
                JobStatus::Ok
            } else if o.stops() {
                stop = true;
                JobStatus::Failed
            } else {
                let set = optional_set(&build.after, &o.job.location);
                tracing::info!(
                    "optional {}@{} failed its {} script; removing {} package(s)",
                    o.job.name,
                    o.job.version,
                    o.job.event,
                    set.len()
                );
                b.trashed.extend(set);
                JobStatus::OptionalFailed
            };
            b.outcomes.push((o, status));
        }
        if stop {
            break;
        }
    }
    b
}
