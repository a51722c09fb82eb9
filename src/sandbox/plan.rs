//! `SetupPlan`: pure data computed from a [`SandboxSpec`], executed step by step by `init`.
//!
//! No system calls happen here. The plan fixes, in order, every mount operation (parents before
//! children, mount targets created only inside our own fresh tmpfs), the Landlock rules that
//! mirror the resulting mount view, the seccomp deny table, and the rlimits. Because it is plain
//! data it is unit-tested without privileges, and it is what the parent sends to the init process.

use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::seccomp::{self, SeccompPlan};
use super::spec::{ExecSpec, Level, MountKind, MountSpec, NetworkSpec, SandboxSpec, Tier};

/// Host device nodes bound into the sandbox's private `/dev`.
pub const DEV_NODES: [&str; 5] = ["null", "zero", "full", "random", "urandom"];

/// One mount-namespace operation. Paths are absolute as seen from inside the sandbox (the
/// executor prefixes the staging root until `pivot_root`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "op")]
pub enum MountOp {
    /// Create a directory in our own tmpfs.
    MakeDir {
        /// Directory to create.
        path: PathBuf,
    },
    /// Create an empty regular file in our own tmpfs (a target for a file bind mount).
    MakeFile {
        /// File to create.
        path: PathBuf,
    },
    /// Create a symbolic link in our own tmpfs.
    Symlink {
        /// The link.
        path: PathBuf,
        /// Its target, verbatim.
        target: PathBuf,
    },
    /// Recursively bind a host path (opened before the staging root hid anything) at `path`.
    Bind {
        /// Host source path; opened `O_PATH` at the start of setup.
        source: PathBuf,
        /// Target path inside the sandbox.
        path: PathBuf,
        /// Add `MOUNT_ATTR_RDONLY` (recursively).
        readonly: bool,
        /// Keep device nodes usable (only for the `/dev` node binds).
        allow_devices: bool,
        /// Add `MOUNT_ATTR_NOEXEC`.
        noexec: bool,
    },
    /// Mount a fresh tmpfs.
    Tmpfs {
        /// Mount point.
        path: PathBuf,
        /// Size limit in bytes.
        size: u64,
        /// Mode of the tmpfs root (octal permission bits).
        mode: u32,
        /// Add `noexec`.
        noexec: bool,
    },
    /// Mount a fresh procfs for the sandbox's pid namespace (never the host's `/proc`).
    Proc {
        /// Mount point.
        path: PathBuf,
    },
    /// Make an existing mount read-only; with `bind_first`, first bind the path onto itself so
    /// that only that subtree changes (used for `/proc/sys`).
    MakeReadOnly {
        /// Path whose mount becomes read-only.
        path: PathBuf,
        /// Bind the path onto itself first.
        bind_first: bool,
    },
}

/// What a Landlock rule grants beneath a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FsAccess {
    /// List directories only.
    ListDir,
    /// Read files, list directories, execute.
    Read,
    /// Read and write existing device files (no creating or removing entries).
    Devices,
    /// Everything.
    Full,
    /// A directory on the way to a carved-out file (landlock tier): list it and, when `true`,
    /// create and remove entries, but no rights on file contents below it.
    DirOnly(bool),
}

impl FsAccess {
    /// Writable.
    pub fn is_full(self) -> bool {
        matches!(self, FsAccess::Full | FsAccess::DirOnly(true))
    }
}

/// One Landlock path-beneath rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LandlockRule {
    /// Path inside the sandbox.
    pub path: PathBuf,
    /// Access granted beneath it.
    pub access: FsAccess,
    /// Whether the path is a directory (file rules cannot carry directory-only rights).
    pub dir: bool,
}

/// The Landlock ruleset to apply after all mounts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LandlockPlan {
    /// Whether a ruleset that is not fully enforced aborts the run.
    pub level: Level,
    /// Filesystem rules mirroring the mount view.
    pub rules: Vec<LandlockRule>,
    /// Handle `BindTcp` with no rule: every TCP bind is denied.
    pub deny_tcp_bind: bool,
    /// Handle `ConnectTcp` with no rule: every TCP connect is denied (the landlock tier, which
    /// has no network namespace).
    #[serde(default)]
    pub deny_tcp_connect: bool,
    /// The lowest kernel ABI that still enforces what the tier relies on (the landlock tier:
    /// 4, for TCP); below it the step fails whatever the profile's level.
    #[serde(default)]
    pub min_abi: Option<u32>,
    /// Scope abstract unix sockets and signals to the sandbox's own domain.
    pub scoped: bool,
}

/// A resource limit, applied as soft = hard = min(value, current hard limit).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Rlimit {
    /// `RLIMIT_NPROC`.
    Nproc(u64),
    /// `RLIMIT_NOFILE`.
    Nofile(u64),
    /// `RLIMIT_FSIZE` in bytes.
    Fsize(u64),
    /// `RLIMIT_CORE` in bytes.
    Core(u64),
    /// `RLIMIT_CPU` in seconds.
    Cpu(u64),
}

/// How the network namespace is prepared.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkPlan {
    /// Bring `lo` up.
    pub loopback_up: bool,
    /// Set up the recording sinkhole.
    pub sinkhole: Option<SinkholePlan>,
}

/// The sinkhole's sockets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SinkholePlan {
    /// TCP ports to listen on (UDP 53 always).
    pub tcp_ports: Vec<u16>,
}

/// Everything `init` needs, in the order it needs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetupPlan {
    /// uid mapped to itself.
    pub uid: u32,
    /// gid mapped to itself.
    pub gid: u32,
    /// UTS hostname.
    pub hostname: String,
    /// Size of the staging root tmpfs in bytes (it only holds mount points and links).
    pub root_size: u64,
    /// Ordered mount operations, executed inside the staging root.
    pub mounts: Vec<MountOp>,
    /// Landlock rules applied after every mount.
    pub landlock: LandlockPlan,
    /// seccomp filters installed last.
    pub seccomp: SeccompPlan,
    /// Resource limits.
    pub rlimits: Vec<Rlimit>,
    /// Network namespace preparation.
    pub network: NetworkPlan,
    /// The command.
    pub exec: ExecSpec,
    /// Install the recorder's notification filter and hand its listener to the supervisor.
    #[serde(default)]
    pub recorder: bool,
    /// The recorder is notified of read-only opens too (forensic).
    #[serde(default)]
    pub recorder_reads: bool,
    /// Print per-step timings on stderr (set by the caller for `-vv`).
    #[serde(default)]
    pub trace_steps: bool,
    /// The isolation tier the init sets up.
    #[serde(default)]
    pub tier: Tier,
}

/// A mount before it is lowered to [`MountOp`]s.
#[derive(Debug, Clone)]
enum Entry {
    Host {
        source: PathBuf,
        path: PathBuf,
        readonly: bool,
        /// The source is a directory of ours (the decoy home): mount points may be created in it.
        ours: bool,
    },
    Symlink {
        path: PathBuf,
        target: PathBuf,
    },
    Tmpfs {
        path: PathBuf,
        size: u64,
        mode: u32,
        noexec: bool,
    },
    /// A denied directory: an empty read-only tmpfs of mode 000 over it; nothing below it is
    /// mounted.
    Hidden {
        path: PathBuf,
    },
    Dev,
    Proc,
}

impl Entry {
    /// The entry for one of the spec's mounts (`is_dir`: a denied path is a directory).
    fn of_mount(m: &MountSpec, is_dir: &dyn Fn(&Path) -> bool) -> Entry {
        match &m.kind {
            MountKind::ReadOnly => Entry::Host {
                source: m.path.clone(),
                path: m.path.clone(),
                readonly: true,
                ours: false,
            },
            MountKind::ReadWrite => Entry::Host {
                source: m.path.clone(),
                path: m.path.clone(),
                readonly: false,
                ours: false,
            },
            MountKind::Recording { source, writable } => Entry::Host {
                source: source.clone(),
                path: m.path.clone(),
                readonly: !writable,
                ours: false,
            },
            MountKind::Denied if is_dir(&m.path) => Entry::Hidden {
                path: m.path.clone(),
            },
            MountKind::Denied => Entry::Host {
                source: PathBuf::from("/dev/null"),
                path: m.path.clone(),
                readonly: true,
                ours: false,
            },
            MountKind::Symlink { target } => Entry::Symlink {
                path: m.path.clone(),
                target: target.clone(),
            },
            MountKind::Tmpfs { size } => Entry::Tmpfs {
                path: m.path.clone(),
                size: *size,
                mode: 0o755,
                noexec: false,
            },
        }
    }

    fn path(&self) -> &Path {
        match self {
            Entry::Host { path, .. }
            | Entry::Symlink { path, .. }
            | Entry::Tmpfs { path, .. }
            | Entry::Hidden { path } => path,
            Entry::Dev => Path::new("/dev"),
            Entry::Proc => Path::new("/proc"),
        }
    }
}

fn depth(path: &Path) -> usize {
    path.components()
        .filter(|c| matches!(c, Component::Normal(_)))
        .count()
}

/// Where an existing path's content comes from, as far as the plan knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Origin {
    /// Inside a tmpfs we mounted (including the staging root): we may create entries.
    Ours,
    /// Inside a host bind: the path must already exist on the host; never create anything.
    Host,
}

impl SetupPlan {
    /// Compute the plan for `spec`. `is_dir` tells whether a host bind source is a directory
    /// (file binds need a file as mount target); the caller provides it so that this function
    /// stays free of I/O.
    pub fn from_spec(spec: &SandboxSpec, is_dir: &dyn Fn(&Path) -> bool) -> SetupPlan {
        if spec.tier == Tier::Landlock {
            let list = |d: &Path| -> Vec<PathBuf> {
                std::fs::read_dir(d)
                    .map(|r| r.flatten().take(100_000).map(|e| e.path()).collect())
                    .unwrap_or_default()
            };
            return super::hostview::plan(spec, is_dir, &list);
        }
        let mut low = Lowering::new();
        for entry in &in_mount_order(entries(spec, is_dir)) {
            low.lower(entry, spec, is_dir);
        }
        SetupPlan {
            uid: spec.uid,
            gid: spec.gid,
            hostname: spec.hostname.clone(),
            root_size: 1 << 20,
            mounts: low.ops,
            landlock: LandlockPlan {
                level: spec.enforcement.landlock,
                rules: low.rules,
                deny_tcp_bind: true,
                deny_tcp_connect: false,
                min_abi: None,
                scoped: true,
            },
            seccomp: seccomp::deny_plan(spec.enforcement.seccomp),
            rlimits: rlimits(spec),
            network: match &spec.network {
                NetworkSpec::Isolated => NetworkPlan {
                    loopback_up: true,
                    sinkhole: None,
                },
                NetworkSpec::Sinkhole { tcp_ports } => NetworkPlan {
                    loopback_up: true,
                    sinkhole: Some(SinkholePlan {
                        tcp_ports: tcp_ports.clone(),
                    }),
                },
            },
            exec: spec.exec.clone(),
            recorder: spec.record_syscalls,
            recorder_reads: spec.record_syscalls && spec.record_reads,
            trace_steps: false,
            tier: Tier::Full,
        }
    }

    /// Host paths that must be opened before the staging root is mounted.
    pub fn bind_sources(&self) -> impl Iterator<Item = &Path> {
        self.mounts.iter().filter_map(|op| match op {
            MountOp::Bind { source, .. } => Some(source.as_path()),
            _ => None,
        })
    }
}

/// The full tier's mounts, in the spec's order: a fresh `/proc`, the minimal `/dev`, a private
/// `/tmp`, HOME (the decoy home, or else a private tmpfs), then every mount of the spec.
fn entries(spec: &SandboxSpec, is_dir: &dyn Fn(&Path) -> bool) -> Vec<Entry> {
    let mut entries: Vec<Entry> = vec![
        Entry::Proc,
        Entry::Dev,
        Entry::Tmpfs {
            path: PathBuf::from("/tmp"),
            size: spec.tmp_size,
            mode: 0o1777,
            noexec: false,
        },
    ];
    entries.push(match &spec.home_source {
        Some(source) => Entry::Host {
            source: source.clone(),
            path: spec.home.clone(),
            readonly: false,
            ours: true,
        },
        None => Entry::Tmpfs {
            path: spec.home.clone(),
            size: spec.home_size,
            mode: 0o700,
            noexec: false,
        },
    });
    entries.extend(spec.mounts.iter().map(|m| Entry::of_mount(m, is_dir)));
    entries
}

/// `entries` in the order they are mounted: parents first; among equals the spec's order (a
/// later entry for the same path is mounted on top and wins). What lies below a hidden directory
/// is not shown at all.
fn in_mount_order(mut entries: Vec<Entry>) -> Vec<Entry> {
    entries.sort_by_key(|e| depth(e.path()));
    let hidden: Vec<PathBuf> = entries
        .iter()
        .filter_map(|e| match e {
            Entry::Hidden { path } => Some(path.clone()),
            _ => None,
        })
        .collect();
    entries.retain(|e| {
        !hidden
            .iter()
            .any(|h| e.path() != h && e.path().starts_with(h))
    });
    entries
}

/// The resource limits of every tier: the spec's, and no core dumps.
pub(super) fn rlimits(spec: &SandboxSpec) -> Vec<Rlimit> {
    let mut rlimits = vec![
        Rlimit::Nproc(spec.limits.nproc),
        Rlimit::Nofile(spec.limits.nofile),
        Rlimit::Fsize(spec.limits.fsize),
        Rlimit::Core(0),
    ];
    if let Some(cpu) = spec.limits.cpu_secs {
        rlimits.push(Rlimit::Cpu(cpu));
    }
    rlimits
}

/// The mounts lowered so far to [`MountOp`]s, and the Landlock rules mirroring them.
struct Lowering {
    ops: Vec<MountOp>,
    /// Mount points so far, with the origin of their content.
    mounted: Vec<(PathBuf, Origin)>,
    /// Directories and files we created in our own tmpfs.
    created: Vec<PathBuf>,
    /// Landlock rules, starting with listing the root.
    rules: Vec<LandlockRule>,
}

impl Lowering {
    fn new() -> Self {
        Lowering {
            ops: Vec::new(),
            mounted: Vec::new(),
            created: Vec::new(),
            rules: vec![LandlockRule {
                path: PathBuf::from("/"),
                access: FsAccess::ListDir,
                dir: true,
            }],
        }
    }

    fn origin_of(&self, path: &Path) -> Origin {
        self.mounted
            .iter()
            .filter(|(m, _)| path.starts_with(m))
            .max_by_key(|(m, _)| depth(m))
            .map_or(Origin::Ours, |(_, o)| *o)
    }

    /// Create `path`'s missing ancestors (and, if `leaf` is given, the path itself) inside our
    /// tmpfs. Paths that live under a host bind are left alone: they exist on the host.
    fn prepare(&mut self, path: &Path, leaf: Option<LeafKind>) {
        let mut ancestors: Vec<&Path> = path.ancestors().skip(1).collect();
        ancestors.reverse();
        for dir in ancestors {
            if dir == Path::new("/") {
                continue;
            }
            self.make(dir, LeafKind::Dir);
        }
        if let Some(kind) = leaf {
            self.make(path, kind);
        }
    }

    fn make(&mut self, path: &Path, kind: LeafKind) {
        if self.origin_of(path) == Origin::Host
            || self.created.iter().any(|c| c == path)
            || self.mounted.iter().any(|(m, _)| m == path)
        {
            return;
        }
        self.created.push(path.to_path_buf());
        self.ops.push(match kind {
            LeafKind::Dir => MountOp::MakeDir {
                path: path.to_path_buf(),
            },
            LeafKind::File => MountOp::MakeFile {
                path: path.to_path_buf(),
            },
        });
    }

    /// Lower one entry (its parents are already lowered).
    fn lower(&mut self, entry: &Entry, spec: &SandboxSpec, is_dir: &dyn Fn(&Path) -> bool) {
        match entry {
            Entry::Host {
                source,
                path,
                readonly,
                ours,
            } => self.host(source, path, *readonly, *ours, is_dir(source)),
            Entry::Symlink { path, target } => self.symlink(path, target),
            Entry::Tmpfs {
                path,
                size,
                mode,
                noexec,
            } => self.tmpfs(path, *size, *mode, *noexec),
            Entry::Hidden { path } => self.hidden(path),
            Entry::Proc => self.proc(),
            Entry::Dev => self.dev(spec),
        }
    }

    /// A host bind (`dir`: its source is a directory), granted read or full.
    fn host(&mut self, source: &Path, path: &Path, readonly: bool, ours: bool, dir: bool) {
        self.prepare(path, Some(if dir { LeafKind::Dir } else { LeafKind::File }));
        self.ops.push(MountOp::Bind {
            source: source.to_path_buf(),
            path: path.to_path_buf(),
            readonly,
            allow_devices: false,
            noexec: false,
        });
        self.mounted.push((
            path.to_path_buf(),
            if ours { Origin::Ours } else { Origin::Host },
        ));
        self.rules.push(LandlockRule {
            path: path.to_path_buf(),
            access: if readonly {
                FsAccess::Read
            } else {
                FsAccess::Full
            },
            dir,
        });
    }

    /// A symbolic link, created only where it lands in our own tmpfs (under a host bind the host
    /// has it already).
    fn symlink(&mut self, path: &Path, target: &Path) {
        self.prepare(path, None);
        if self.origin_of(path) == Origin::Ours {
            self.ops.push(MountOp::Symlink {
                path: path.to_path_buf(),
                target: target.to_path_buf(),
            });
            self.created.push(path.to_path_buf());
        }
    }

    /// A private tmpfs, granted full.
    fn tmpfs(&mut self, path: &Path, size: u64, mode: u32, noexec: bool) {
        self.prepare(path, Some(LeafKind::Dir));
        self.ops.push(MountOp::Tmpfs {
            path: path.to_path_buf(),
            size,
            mode,
            noexec,
        });
        self.mounted.push((path.to_path_buf(), Origin::Ours));
        self.rules.push(LandlockRule {
            path: path.to_path_buf(),
            access: FsAccess::Full,
            dir: true,
        });
    }

    /// A denied directory: an empty read-only tmpfs of mode 000 over it, granted nothing.
    fn hidden(&mut self, path: &Path) {
        self.prepare(path, Some(LeafKind::Dir));
        self.ops.push(MountOp::Tmpfs {
            path: path.to_path_buf(),
            size: 4096,
            mode: 0,
            noexec: true,
        });
        self.ops.push(MountOp::MakeReadOnly {
            path: path.to_path_buf(),
            bind_first: false,
        });
        self.mounted.push((path.to_path_buf(), Origin::Host));
    }

    /// A fresh procfs with `/proc/sys` read-only, granted read.
    fn proc(&mut self) {
        let proc_ = PathBuf::from("/proc");
        self.prepare(&proc_, Some(LeafKind::Dir));
        self.ops.push(MountOp::Proc {
            path: proc_.clone(),
        });
        self.mounted.push((proc_.clone(), Origin::Host));
        self.ops.push(MountOp::MakeReadOnly {
            path: PathBuf::from("/proc/sys"),
            bind_first: true,
        });
        self.rules.push(LandlockRule {
            path: proc_,
            access: FsAccess::Read,
            dir: true,
        });
    }

    /// The minimal `/dev`: a tmpfs holding binds of the harmless host nodes, the `fd`/`std*`
    /// links and a private size-limited `/dev/shm`; then the tmpfs itself becomes read-only.
    fn dev(&mut self, spec: &SandboxSpec) {
        let dev = PathBuf::from("/dev");
        self.prepare(&dev, Some(LeafKind::Dir));
        self.ops.push(MountOp::Tmpfs {
            path: dev.clone(),
            size: 64 << 10,
            mode: 0o755,
            noexec: true,
        });
        self.mounted.push((dev.clone(), Origin::Ours));
        for node in DEV_NODES {
            let path = dev.join(node);
            self.prepare(&path, Some(LeafKind::File));
            self.ops.push(MountOp::Bind {
                source: path.clone(),
                path: path.clone(),
                readonly: false,
                allow_devices: true,
                noexec: true,
            });
            self.mounted.push((path, Origin::Host));
        }
        for (link, target) in [
            ("fd", "/proc/self/fd"),
            ("stdin", "/proc/self/fd/0"),
            ("stdout", "/proc/self/fd/1"),
            ("stderr", "/proc/self/fd/2"),
        ] {
            let path = dev.join(link);
            self.ops.push(MountOp::Symlink {
                path: path.clone(),
                target: PathBuf::from(target),
            });
            self.created.push(path);
        }
        let shm = dev.join("shm");
        self.prepare(&shm, Some(LeafKind::Dir));
        self.ops.push(MountOp::Tmpfs {
            path: shm.clone(),
            size: spec.shm_size,
            mode: 0o1777,
            noexec: true,
        });
        self.mounted.push((shm.clone(), Origin::Ours));
        self.ops.push(MountOp::MakeReadOnly {
            path: dev.clone(),
            bind_first: false,
        });
        self.rules.push(LandlockRule {
            path: dev,
            access: FsAccess::Devices,
            dir: true,
        });
        self.rules.push(LandlockRule {
            path: shm,
            access: FsAccess::Full,
            dir: true,
        });
    }
}

#[derive(Debug, Clone, Copy)]
enum LeafKind {
    Dir,
    File,
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
