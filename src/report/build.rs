//! Building report entries from what the pipeline produced.

use crate::report::*;
use crate::sandbox::channel::Termination;
use crate::sandbox::landlock::{LandlockOutcome, Status};
use crate::sandbox::seccomp::SeccompPlan;
use crate::sandbox::spec::{MountKind, SandboxSpec, Tier};
use crate::sandbox::{Outcome, RecorderState};

impl ScriptRun {
    /// Attach what the observation recorded.
    pub fn observed(&mut self, o: crate::observe::Observed) {
        self.findings = o.findings;
        self.canaries = o.canaries;
        self.spawned = o.spawned;
        self.env_probes = o.env_probes;
    }

    /// Build the entry for one finished run.
    pub fn new(
        spec: &SandboxSpec,
        seccomp: &SeccompPlan,
        outcome: &Outcome,
        started_unix_ms: u64,
    ) -> Self {
        let (exit, exit_status) = match outcome.termination {
            Termination::Exited(c) => (Exit::Code(c), c),
            Termination::Signaled(s) => (Exit::Signal(s), 128 + s),
        };
        ScriptRun {
            cached: None,
            package: None,
            command: spec.exec.argv.clone(),
            program: spec.exec.program.clone(),
            cwd: spec.exec.cwd.clone(),
            started_unix_ms,
            duration_ms: (outcome.duration.as_secs_f64() * 1000.0 * 1000.0).round() / 1000.0,
            exit,
            exit_status,
            timed_out: outcome.timed_out,
            timeout_ms: spec.limits.timeout_ms,
            view: view(spec),
            enforcement: enforcement(spec, seccomp, outcome),
            survivors: outcome.survivors.clone(),
            findings: Vec::new(),
            canaries: Vec::new(),
            spawned: Vec::new(),
            env_probes: Vec::new(),
            replay_mode: None,
            refused: Vec::new(),
        }
    }
}

/// What the command could see.
fn view(spec: &SandboxSpec) -> View {
    let mut view = View {
        read_only: vec![],
        read_write: vec![],
        home: spec.home.clone(),
    };
    for m in &spec.mounts {
        match m.kind {
            MountKind::ReadOnly => view.read_only.push(m.path.clone()),
            MountKind::ReadWrite => view.read_write.push(m.path.clone()),
            _ => {}
        }
    }
    view
}

/// What was enforced, from what the init reported (nothing, when setup did not finish).
fn enforcement(spec: &SandboxSpec, seccomp: &SeccompPlan, outcome: &Outcome) -> Enforcement {
    let (landlock, filters) = match &outcome.enforced {
        Some(e) => (e.landlock.clone(), e.seccomp_filters),
        None => (
            LandlockOutcome {
                status: Status::NotEnforced,
                requested_abi: crate::sandbox::landlock::PINNED_ABI_NUMBER,
                kernel_abi: None,
            },
            0,
        ),
    };
    let seccomp_status = if filters == seccomp.filters.len() {
        Status::FullyEnforced
    } else if filters > 0 {
        Status::PartiallyEnforced
    } else {
        Status::NotEnforced
    };
    // RLIMIT_NPROC is not checked for processes whose real uid is the initial namespace's root
    // (kernel/fork.c), even inside a user namespace.
    let (rl_status, rl_detail) = if spec.uid == 0 {
        (
            Status::PartiallyEnforced,
            Some("RLIMIT_NPROC is not enforced by the kernel for host root; the pid namespace still bounds the tree's lifetime".to_string()),
        )
    } else {
        (Status::FullyEnforced, None)
    };
    let recorder = outcome.enforced.as_ref().map(|e| match &e.recorder {
        RecorderState::Attached => Mechanism::full(),
        RecorderState::NotRequested => Mechanism {
            status: Status::NotEnforced,
            detail: Some(RECORDING_OFF.into()),
        },
        RecorderState::Unavailable { why } => Mechanism {
            status: Status::NotEnforced,
            detail: Some(format!(
                "the syscall recorder could not be attached ({why}): writes, execs and connections were denied as planned but not recorded"
            )),
        },
    });
    let namespaces = match spec.tier {
        Tier::Full => Namespaces {
            user: Mechanism {
                status: Status::FullyEnforced,
                detail: Some(format!(
                    "uid {} and gid {} mapped to themselves",
                    spec.uid, spec.gid
                )),
            },
            mount: Mechanism::full(),
            pid: Mechanism::full(),
            net: Mechanism {
                status: Status::FullyEnforced,
                detail: Some("empty network namespace, loopback only".into()),
            },
            ipc: Mechanism::full(),
            uts: Mechanism::full(),
        },
        Tier::Landlock => {
            let none = |detail: &str| Mechanism {
                status: Status::NotEnforced,
                detail: Some(format!("landlock tier: {detail}")),
            };
            Namespaces {
                user: none("no user namespace; the command runs as your own uid"),
                mount: none(
                    "no mount namespace: Landlock is the filesystem view over the host's own paths",
                ),
                pid: none(
                    "no pid namespace: processes are tracked through a child subreaper and killed with the tree",
                ),
                net: none(
                    "no network namespace: Landlock denies TCP bind and connect, seccomp every other socket but netlink; while recording, the supervisor hands each TCP connection and UDP socket to its sinkhole instead, so attempts are recorded as in the full tier and nothing is sent anywhere else",
                ),
                ipc: none(
                    "no ipc namespace: abstract unix sockets and signals are scoped by Landlock",
                ),
                uts: none("no uts namespace"),
            }
        }
    };
    Enforcement {
        namespaces,
        landlock,
        seccomp: SeccompStatus {
            status: seccomp_status,
            filters,
        },
        capabilities: Mechanism::full(),
        no_new_privs: Mechanism::full(),
        rlimits: RlimitStatus {
            status: rl_status,
            detail: rl_detail,
            nproc: spec.limits.nproc,
            nofile: spec.limits.nofile,
            fsize: spec.limits.fsize,
            core: 0,
        },
        recorder,
        tier: Some(spec.tier.as_str().into()),
    }
}

/// How many packages there were, how many had scripts, and which had none.
pub fn install_summary(
    build: &crate::npm::project::BuildSet,
    phases: &[crate::npm::scripts::Phase],
) -> InstallSummary {
    let scripted: std::collections::BTreeSet<&str> = phases
        .iter()
        .flat_map(|p| p.jobs.iter())
        .map(|j| j.location.as_str())
        .collect();
    InstallSummary {
        packages: build.nodes.len(),
        with_scripts: build
            .nodes
            .iter()
            .filter(|n| scripted.contains(n.location.as_str()))
            .count(),
        no_install_time_behaviour: build
            .nodes
            .iter()
            .zip(&build.manifests)
            .filter(|(n, _)| !scripted.contains(n.location.as_str()))
            .map(|(n, m)| PackageId {
                name: m.name.clone().unwrap_or_else(|| n.name.clone()),
                version: m
                    .version
                    .clone()
                    .or_else(|| n.version.clone())
                    .unwrap_or_default(),
                location: n.location.clone(),
            })
            .collect(),
        skipped: Vec::new(),
        unreviewed: Vec::new(),
    }
}
