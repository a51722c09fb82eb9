//! `SandboxSpec`: the resolved, serialisable contract for one sandboxed command.
//!
//! Everything here is already decided: paths are absolute and canonical, presets are expanded,
//! the environment is final and the program is resolved to an absolute path. Nothing in
//! `sandbox/` ever looks at a CLI flag, a profile or a preset; it only sees this type (and the
//! [`SetupPlan`](super::plan::SetupPlan) computed from it).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// How strongly a mechanism is required.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Level {
    /// Abort before running the command if the mechanism cannot be fully enforced.
    Required,
    /// Run anyway, but record the achieved status in the report and warn.
    BestEffort,
}

/// The program to execute and the world it starts in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecSpec {
    /// Absolute path of the program, resolved against the sandbox `PATH`.
    pub program: PathBuf,
    /// Full argv, including `argv[0]`.
    pub argv: Vec<String>,
    /// The complete environment (already filtered; nothing else is inherited).
    pub env: Vec<(String, String)>,
    /// Working directory inside the sandbox (a real host path that is visible there).
    pub cwd: PathBuf,
}

/// One path made visible inside the sandbox at its real host path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MountSpec {
    /// Absolute canonical path, both on the host and inside the sandbox.
    pub path: PathBuf,
    /// What is mounted there.
    pub kind: MountKind,
}

/// What a [`MountSpec`] puts at its path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "type")]
pub enum MountKind {
    /// The host path, read-only (`ro,nosuid,nodev`).
    ReadOnly,
    /// The host path, writable (`nosuid,nodev`).
    ReadWrite,
    /// A symbolic link with this target (used for the usrmerge links such as `/bin -> usr/bin`).
    Symlink {
        /// Link target, exactly as on the host.
        target: PathBuf,
    },
    /// A host path of the supervisor's own recording machinery (a preload, a log directory)
    /// bound at a path that exists only inside the sandbox.
    Recording {
        /// The host file or directory.
        source: PathBuf,
        /// Writable (a log directory) or read-only (the preload).
        writable: bool,
    },
    /// A host path made unreadable where it is. A file gets `/dev/null` bound over it on a
    /// `nodev` mount, so opening it fails with EACCES (dotenv files, project `.npmrc`); a
    /// directory gets an empty read-only tmpfs of mode 000 over it (the project's `.git`), so
    /// it cannot be listed or entered. The landlock tier grants neither.
    Denied,
    /// A fresh, private, size-limited tmpfs owned by the sandbox user.
    Tmpfs {
        /// Size limit in bytes.
        size: u64,
    },
}

/// Resource limits for the sandboxed process tree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// Wall-clock limit in milliseconds for the whole tree; `None` means no limit.
    pub timeout_ms: Option<u64>,
    /// `RLIMIT_NPROC`: processes of the sandbox user (counted per user namespace).
    pub nproc: u64,
    /// `RLIMIT_NOFILE`.
    pub nofile: u64,
    /// `RLIMIT_FSIZE` in bytes.
    pub fsize: u64,
    /// `RLIMIT_CPU` in seconds, a backstop behind the wall clock; `None` for no limit.
    pub cpu_secs: Option<u64>,
}

/// Required/best-effort level of each optional mechanism.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnforcementLevels {
    /// Landlock filesystem/network/scope rules.
    pub landlock: Level,
    /// seccomp deny filters.
    pub seccomp: Level,
}

/// TCP ports the sinkhole listens on (others are refused at once inside the namespace).
pub const SINKHOLE_TCP_PORTS: [u16; 20] = [
    21, 22, 25, 53, 80, 443, 587, 3000, 3306, 4873, 5000, 5432, 6379, 8000, 8080, 8443, 8888, 9000,
    9418, 27017,
];

/// The network the sandbox sees.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "type")]
pub enum NetworkSpec {
    /// An empty network namespace with only loopback up: nothing outside is reachable.
    Isolated,
    /// The same, plus the recording sinkhole: every address is local to the namespace, DNS (UDP
    /// 53) and these TCP ports are served by the supervisor, which records what arrives.
    Sinkhole {
        /// TCP ports to listen on.
        tcp_ports: Vec<u16>,
    },
}

/// How the sandbox isolates.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Tier {
    /// User, mount, pid, net, ipc and uts namespaces, then Landlock and seccomp.
    #[default]
    Full,
    /// No namespaces (default Docker/podman/Kubernetes seccomp profiles, Ubuntu's AppArmor
    /// restriction): Landlock is the filesystem view over the host's own paths, TCP bind and
    /// connect are denied by Landlock and every other socket but netlink by seccomp, the tree is
    /// tracked through a child subreaper, HOME and TMPDIR point at private host directories.
    Landlock,
}

impl Tier {
    /// The name used in reports and flags.
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Full => "full",
            Tier::Landlock => "landlock",
        }
    }
}

/// The resolved contract for one sandboxed command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SandboxSpec {
    /// What to run.
    pub exec: ExecSpec,
    /// Host paths made visible (besides the fixed system view: `/proc`, `/dev`, `/tmp`).
    pub mounts: Vec<MountSpec>,
    /// Where the throwaway home directory is mounted (the caller's real `HOME` path).
    pub home: PathBuf,
    /// A host directory (the decoy home) bound writable at `home`; `None` mounts an empty tmpfs.
    pub home_source: Option<PathBuf>,
    /// Size limit of the private `/tmp` in bytes.
    pub tmp_size: u64,
    /// Size limit of the private `/dev/shm` in bytes.
    pub shm_size: u64,
    /// Size limit of the throwaway home in bytes.
    pub home_size: u64,
    /// Hostname inside the UTS namespace.
    pub hostname: String,
    /// The caller's uid, mapped to itself inside the user namespace.
    pub uid: u32,
    /// The caller's gid, mapped to itself inside the user namespace.
    pub gid: u32,
    /// Resource limits.
    pub limits: Limits,
    /// Required/best-effort levels.
    pub enforcement: EnforcementLevels,
    /// Network view.
    pub network: NetworkSpec,
    /// Report file opens, execs and connects to the supervisor (seccomp user notification,
    /// CONTINUE only).
    pub record_syscalls: bool,
    /// With `record_syscalls`: notify read-only opens too (forensic recording).
    #[serde(default)]
    pub record_reads: bool,
    /// The isolation tier.
    #[serde(default)]
    pub tier: Tier,
    /// Landlock tier: a private host directory used as `/tmp` and `TMPDIR` (the full tier mounts
    /// a tmpfs instead). Created and removed by the caller.
    #[serde(default)]
    pub private_tmp: Option<PathBuf>,
}
