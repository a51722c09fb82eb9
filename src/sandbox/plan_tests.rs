//! Tests of `plan`.

use super::*;
use crate::sandbox::spec::{EnforcementLevels, Limits, MountSpec};

fn spec(mounts: Vec<MountSpec>, home: &str) -> SandboxSpec {
    SandboxSpec {
        exec: ExecSpec {
            program: PathBuf::from("/usr/bin/true"),
            argv: vec!["true".into()],
            env: vec![],
            cwd: PathBuf::from("/"),
        },
        mounts,
        home: PathBuf::from(home),
        home_source: None,
        tmp_size: 1 << 30,
        shm_size: 1 << 26,
        home_size: 1 << 30,
        hostname: "localhost".into(),
        uid: 1000,
        gid: 1000,
        limits: Limits {
            timeout_ms: None,
            nproc: 512,
            nofile: 4096,
            fsize: 1 << 32,
            cpu_secs: None,
        },
        enforcement: EnforcementLevels {
            landlock: Level::BestEffort,
            seccomp: Level::Required,
        },
        network: NetworkSpec::Isolated,
        record_syscalls: false,
        record_reads: false,
        tier: Tier::Full,
        private_tmp: None,
    }
}

fn ro(p: &str) -> MountSpec {
    MountSpec {
        path: p.into(),
        kind: MountKind::ReadOnly,
    }
}
fn rw(p: &str) -> MountSpec {
    MountSpec {
        path: p.into(),
        kind: MountKind::ReadWrite,
    }
}

fn ops_text(plan: &SetupPlan) -> Vec<String> {
    plan.mounts
        .iter()
        .map(|op| match op {
            MountOp::MakeDir { path } => format!("mkdir {}", path.display()),
            MountOp::MakeFile { path } => format!("touch {}", path.display()),
            MountOp::Symlink { path, target } => {
                format!("ln {} -> {}", path.display(), target.display())
            }
            MountOp::Bind {
                path,
                readonly,
                allow_devices,
                ..
            } => format!(
                "bind {} {}{}",
                path.display(),
                if *readonly { "ro" } else { "rw" },
                if *allow_devices { ",dev" } else { "" }
            ),
            MountOp::Tmpfs { path, .. } => format!("tmpfs {}", path.display()),
            MountOp::Proc { path } => format!("proc {}", path.display()),
            MountOp::MakeReadOnly { path, .. } => format!("ro {}", path.display()),
        })
        .collect()
}

/// The whole mount sequence for a typical project layout, pinned: parents first, targets
/// created only in our own tmpfs, nested package dir writable inside a read-only project.
#[test]
fn plan_for_project_layout() {
    let s = spec(
        vec![
            ro("/usr"),
            MountSpec {
                path: "/bin".into(),
                kind: MountKind::Symlink {
                    target: "usr/bin".into(),
                },
            },
            ro("/etc/passwd"),
            ro("/home/u/proj"),
            rw("/home/u/proj/node_modules/pkg"),
        ],
        "/home/u",
    );
    let plan = SetupPlan::from_spec(&s, &|p: &Path| !p.starts_with("/etc/passwd"));
    assert_eq!(
        ops_text(&plan),
        vec![
            "mkdir /proc",
            "proc /proc",
            "ro /proc/sys",
            "mkdir /dev",
            "tmpfs /dev",
            "touch /dev/null",
            "bind /dev/null rw,dev",
            "touch /dev/zero",
            "bind /dev/zero rw,dev",
            "touch /dev/full",
            "bind /dev/full rw,dev",
            "touch /dev/random",
            "bind /dev/random rw,dev",
            "touch /dev/urandom",
            "bind /dev/urandom rw,dev",
            "ln /dev/fd -> /proc/self/fd",
            "ln /dev/stdin -> /proc/self/fd/0",
            "ln /dev/stdout -> /proc/self/fd/1",
            "ln /dev/stderr -> /proc/self/fd/2",
            "mkdir /dev/shm",
            "tmpfs /dev/shm",
            "ro /dev",
            "mkdir /tmp",
            "tmpfs /tmp",
            "mkdir /usr",
            "bind /usr ro",
            "ln /bin -> usr/bin",
            "mkdir /home",
            "mkdir /home/u",
            "tmpfs /home/u",
            "mkdir /etc",
            "touch /etc/passwd",
            "bind /etc/passwd ro",
            "mkdir /home/u/proj",
            "bind /home/u/proj ro",
            "bind /home/u/proj/node_modules/pkg rw",
        ]
    );
    // The nested writable directory is inside a host bind: nothing is created there.
    assert!(!plan.mounts.iter().any(|op| matches!(op,
        MountOp::MakeDir { path } | MountOp::MakeFile { path }
            if path.starts_with("/home/u/proj") && path != Path::new("/home/u/proj"))));
}

#[test]
fn landlock_rules_mirror_mount_view() {
    let s = spec(vec![ro("/usr"), rw("/work/pkg")], "/root");
    let plan = SetupPlan::from_spec(&s, &|_| true);
    let rules: Vec<(String, FsAccess)> = plan
        .landlock
        .rules
        .iter()
        .map(|r| (r.path.display().to_string(), r.access))
        .collect();
    for expected in [
        ("/", FsAccess::ListDir),
        ("/usr", FsAccess::Read),
        ("/work/pkg", FsAccess::Full),
        ("/tmp", FsAccess::Full),
        ("/root", FsAccess::Full),
        ("/dev", FsAccess::Devices),
        ("/dev/shm", FsAccess::Full),
        ("/proc", FsAccess::Read),
    ] {
        assert!(
            rules.contains(&(expected.0.to_string(), expected.1)),
            "missing {expected:?} in {rules:?}"
        );
    }
    assert_eq!(rules.len(), 8, "{rules:?}");
    assert!(plan.landlock.deny_tcp_bind && plan.landlock.scoped);
}

#[test]
fn writable_dir_under_tmp_is_created_in_private_tmp() {
    let s = spec(vec![rw("/tmp/x/y")], "/root");
    let plan = SetupPlan::from_spec(&s, &|_| true);
    let text = ops_text(&plan);
    let tmpfs = text.iter().position(|t| t == "tmpfs /tmp").unwrap();
    let mk = text.iter().position(|t| t == "mkdir /tmp/x/y").unwrap();
    let bind = text.iter().position(|t| t == "bind /tmp/x/y rw").unwrap();
    assert!(tmpfs < mk && mk < bind, "{text:?}");
}

#[test]
fn home_inside_a_bind_is_overmounted_without_creating_host_dirs() {
    let s = spec(vec![ro("/home")], "/home/u");
    let plan = SetupPlan::from_spec(&s, &|_| true);
    let text = ops_text(&plan);
    assert!(!text.contains(&"mkdir /home/u".to_string()), "{text:?}");
    let bind = text.iter().position(|t| t == "bind /home ro").unwrap();
    let home = text.iter().position(|t| t == "tmpfs /home/u").unwrap();
    assert!(bind < home);
}

/// The decoy home is our own directory: binds below HOME (npm's cache in `~/.npm`) get their
/// mount points created in it.
#[test]
fn mount_points_below_a_decoy_home_are_created() {
    let mut s = spec(vec![ro("/home/u/.npm")], "/home/u");
    s.home_source = Some(PathBuf::from("/tmp/decoy"));
    let plan = SetupPlan::from_spec(&s, &|_| true);
    let text = ops_text(&plan);
    let home = text.iter().position(|t| t == "bind /home/u rw").unwrap();
    let mk = text.iter().position(|t| t == "mkdir /home/u/.npm").unwrap();
    let cache = text
        .iter()
        .position(|t| t == "bind /home/u/.npm ro")
        .unwrap();
    assert!(home < mk && mk < cache, "{text:?}");
}

#[test]
fn rlimits_and_bind_sources() {
    let s = spec(vec![ro("/usr"), rw("/w")], "/root");
    let plan = SetupPlan::from_spec(&s, &|_| true);
    assert!(plan.rlimits.contains(&Rlimit::Core(0)));
    assert!(plan.rlimits.contains(&Rlimit::Nproc(512)));
    let sources: Vec<_> = plan.bind_sources().collect();
    assert!(sources.contains(&Path::new("/usr")));
    assert!(sources.contains(&Path::new("/dev/null")));
    assert!(sources.contains(&Path::new("/w")));
}

#[test]
fn plan_round_trips_through_json() {
    let s = spec(vec![ro("/usr")], "/root");
    let plan = SetupPlan::from_spec(&s, &|_| true);
    let json = serde_json::to_string(&plan).unwrap();
    let back: SetupPlan = serde_json::from_str(&json).unwrap();
    assert_eq!(plan, back);
}

/// A denied directory (the project's `.git`) is an empty read-only tmpfs of mode 000, and what
/// the spec would mount below it (a denied file inside it) is not mounted at all.
#[test]
fn a_denied_directory_is_hidden_and_nothing_below_it_is_mounted() {
    let denied = |p: &str| MountSpec {
        path: p.into(),
        kind: MountKind::Denied,
    };
    let s = spec(
        vec![
            ro("/home/u/proj"),
            denied("/home/u/proj/.git"),
            denied("/home/u/proj/.git/config"),
            denied("/home/u/proj/.env"),
        ],
        "/home/u",
    );
    let plan = SetupPlan::from_spec(&s, &|p: &Path| {
        !p.ends_with(".env") && !p.ends_with("config")
    });
    let ops = ops_text(&plan);
    let tail: Vec<&str> = ops
        .iter()
        .skip_while(|o| *o != "bind /home/u/proj ro")
        .map(String::as_str)
        .collect();
    assert_eq!(
        tail,
        vec![
            "bind /home/u/proj ro",
            "tmpfs /home/u/proj/.git",
            "ro /home/u/proj/.git",
            "bind /home/u/proj/.env ro",
        ]
    );
    assert!(plan.mounts.iter().any(|op| matches!(op,
        MountOp::Tmpfs { path, mode: 0, noexec: true, .. } if path == Path::new("/home/u/proj/.git"))));
}
