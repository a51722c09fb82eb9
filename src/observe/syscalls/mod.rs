//! The syscall recorder: a seccomp user-notification listener (installed by the sandboxed
//! process itself, handed to us before its first notified syscall). For every `open*`, `creat`,
//! `execve*`, `connect` and `sendto`-with-address it reads the arguments from the target's memory,
//! checks the notification is still valid, and answers CONTINUE: the kernel then runs the syscall
//! exactly as if we were not there. Pointer arguments can change after we read them (TOCTOU), so
//! this only ever records; namespaces and Landlock enforce.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;

use serde::{Deserialize, Serialize};

use super::{Actor, Code, Finding, FindingKind, Severity};
use crate::sys;

mod classify;
mod decode;
mod emulate;
mod handover;
mod rules;
mod serve;
#[cfg(test)]
mod tests;

use classify::*;
pub(crate) use decode::is_node;
use decode::*;
use rules::*;
pub(crate) use rules::{environ_finding, environ_owner, secret_path};
use serve::*;

/// What the recorder needs to know about the sandbox.
#[derive(Debug, Clone, Default)]
pub struct Context {
    /// HOME inside the sandbox (the decoy home; its writes are judged by the home diff).
    pub home: PathBuf,
    /// The NODE_OPTIONS entry that loads the env-probe preload in this run (its path differs
    /// between tiers); empty: the full tier's.
    pub preload_option: String,
    /// The landlock tier without a sinkhole: the host's network stack (the kernel refuses
    /// every connection).
    pub host_network: bool,
    /// The landlock tier's sinkhole: connections and UDP sockets are handed over to it (see
    /// `handover`).
    pub redirect: Option<std::sync::Arc<crate::observe::net::Redirect>>,
    /// Host paths bound writable.
    pub writable: Vec<PathBuf>,
    /// Every host path bound into the sandbox (read-only or writable).
    pub visible: Vec<PathBuf>,
    /// Read-only shared caches (npm's): write attempts there are expected from nested npm runs
    /// and reported at low severity.
    pub caches: Vec<PathBuf>,
    /// The command's working directory.
    pub cwd: PathBuf,
    /// Deny-table syscalls the recorder enforces: number → (name, errno to answer).
    pub denied: BTreeMap<i64, (String, i32)>,
    /// Host paths denied to the script (credential files, a hidden `.git`): never read on its
    /// behalf.
    pub denied_paths: Vec<PathBuf>,
    /// Files policy lets the script create that did not exist: created by the recorder when
    /// the script opens one with `O_CREAT` (see `emulate`).
    pub creatable: Vec<PathBuf>,
    /// The paths the real npm runs from (its launcher on PATH, its `npm-cli.js`, and npx's):
    /// a process is npm only when it runs one of them, never by a name it chose itself.
    pub npm: Vec<PathBuf>,
}

impl Context {
    /// Whether `path` is one of the project's own credential files
    /// ([`crate::util::is_credential_file`]: dotenv, npm/yarn configs, keys…) in a host tree bound
    /// into the sandbox: denied to dependency scripts, and looked for by configuration loaders
    /// (prisma, dotenv) in the normal course of things.
    pub fn project_secret(&self, path: &Path) -> bool {
        let name = |p: Option<&Path>| {
            p.and_then(Path::file_name)
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default()
        };
        crate::util::is_credential_file(&name(path.parent()), &name(Some(path)))
            && !path.components().any(|c| c.as_os_str() == "node_modules")
            && !self.in_decoy_home(path)
            && self.visible.iter().any(|v| path.starts_with(v))
    }

    /// Whether `path` is in the throwaway home itself: under HOME and not under a host path
    /// bound below it (the project, npm's cache, a node install under HOME are host binds, judged
    /// like any other path; only the rest of HOME is the decoy home, judged by its diff).
    pub fn in_decoy_home(&self, path: &Path) -> bool {
        path.starts_with(&self.home)
            && !self
                .visible
                .iter()
                .any(|v| v.starts_with(&self.home) && v != &self.home && path.starts_with(v))
    }
}

/// A distinct command line the script ran, with how often.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Spawned {
    /// argv (truncated to 16 arguments of 200 bytes).
    pub argv: Vec<String>,
    /// Times run.
    pub count: usize,
}

#[derive(Debug, Clone)]
enum Event {
    Open {
        path: PathBuf,
        write: bool,
    },
    /// `mkdir` of a path: only a write attempt if the path did not already exist (EEXIST is
    /// what `mkdir -p` gets for every existing ancestor).
    Mkdir {
        path: PathBuf,
    },
    Exec {
        argv: Vec<String>,
        /// The file executed, as resolved from the caller's path (empty for `AT_EMPTY_PATH`).
        program: PathBuf,
        /// The program is node and its environment lacks ringfence's preload (NODE_OPTIONS
        /// removed or overwritten by whoever started it).
        preload_missing: bool,
    },
    Connect {
        addr: String,
        /// A pathname unix socket: the path as given.
        unix_path: Option<PathBuf>,
        /// Refused (EACCES): the socket resolved here, outside the sandbox's own areas (and
        /// whether something was there).
        refused: Option<(PathBuf, bool)>,
    },
    /// `sendto` with a destination: the address and the first bytes sent.
    Datagram {
        addr: String,
        data: Vec<u8>,
        /// A pathname unix socket: the path as given.
        unix_path: Option<PathBuf>,
        /// Refused (EACCES), as for a connect.
        refused: Option<(PathBuf, bool)>,
    },
    /// `link`/`linkat`: a new name `to` for the file at `from` (kept as a write to `to`).
    Link {
        from: PathBuf,
        to: PathBuf,
    },
    /// A deny-table syscall, refused with its errno.
    Denied {
        name: String,
        errno: i32,
    },
}

/// An event with who did it and when.
#[derive(Debug, Clone)]
struct Noted {
    event: Event,
    /// Index into [`Served::actors`] ([`UNKNOWN_ACTOR`] past the identity budget).
    actor: usize,
    at_unix_ms: u64,
}

/// The recorder's budgets: memory and descriptors spent on one run do not grow with what the
/// script does.
mod budget {
    /// Events kept as they come; past this only events that could make a finding of medium or
    /// worse are kept, [`ALIKE`] of each kind and target.
    pub const EVENTS: usize = 200_000;
    /// Events kept per (kind, target) past [`EVENTS`].
    pub const ALIKE: usize = 4;
    /// Datagrams kept per destination past [`EVENTS`] (each is searched for canaries).
    pub const ALIKE_DATAGRAMS: usize = 64;
    /// Distinct (kind, target) keys tracked past [`EVENTS`].
    pub const KEYS: usize = 65_536;
    /// Process identities kept; later processes' events carry none.
    pub const ACTORS: usize = 100_000;
    /// Open `/proc/<pid>/mem` handles (least recently used closed first).
    pub const MEM_HANDLES: usize = 64;
    /// Notifications between sweeps that close the handles of processes that exited.
    pub const SWEEP: u32 = 1024;
}

/// The actor index of events whose process identity was past the budget.
const UNKNOWN_ACTOR: usize = usize::MAX;

/// What the serving thread collected.
#[derive(Debug, Default)]
struct Served {
    events: Vec<Noted>,
    /// Every process identity seen; a process that execs gets a new entry.
    actors: Vec<Actor>,
    /// Notifications answered, by syscall number (for `-vv`).
    counts: BTreeMap<i32, u64>,
    /// Events not kept (past the budget).
    dropped: u64,
    /// Of those, events that could have made a finding of medium or worse.
    dropped_notable: u64,
    /// Process identities not kept.
    actors_dropped: u64,
    /// When the first event was dropped.
    first_drop_ms: Option<u64>,
}

/// Something the recorder saw a process do, kept for the other mechanisms to name who did what
/// they saw: a connect (for the sinkhole), an exec or a read under HOME (for decoy reads), a
/// datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sighting {
    /// A connect or datagram: `ip:port` as the sinkhole renders its original destination
    /// (`[v6]:port` for IPv6). An exec: the command line joined with spaces. A read: the path.
    pub what: String,
    /// Who.
    pub actor: Actor,
    /// When.
    pub at_unix_ms: u64,
}

/// Everything the recorder concluded.
#[derive(Debug, Default)]
pub struct Recorded {
    /// Classified findings.
    pub findings: Vec<Finding>,
    /// Distinct command lines run.
    pub spawned: Vec<Spawned>,
    /// Every inet connect, in order.
    pub connects: Vec<Sighting>,
    /// Every exec (the first 5000), in order: who ran what, when.
    pub execs: Vec<Sighting>,
    /// Read-only opens under HOME (forensic recording only; the first 5000), the path in
    /// `addr`: they name who read a decoy.
    pub home_reads: Vec<Sighting>,
    /// Opens for writing under HOME (the first 5000, and every one at a persistence path), the
    /// path in `what`: they name who wrote what the home's diff found.
    pub home_writes: Vec<Sighting>,
    /// Datagrams sent with an address (the first 1000), with their first bytes.
    pub datagrams: Vec<(Sighting, Vec<u8>)>,
}

/// A running recorder.
#[derive(Debug)]
pub struct Recorder {
    thread: Option<JoinHandle<Served>>,
    context: Context,
}

const O_ACCMODE: u64 = 3;
const O_CREAT: u64 = 0o100;
const O_TRUNC: u64 = 0o1000;
const O_APPEND: u64 = 0o2000;

impl Recorder {
    /// Serve `listener` until every task of the sandbox is gone.
    pub fn start(listener: OwnedFd, context: Context) -> Recorder {
        let ctx = context.clone();
        if let Err(e) = sys::seccomp_notif_sync_wakeup(listener.as_fd()) {
            // Older kernels: notifications still work, with scheduler latency.
            tracing::debug!("seccomp notification sync wake-up unavailable: {e}");
        }
        let thread = std::thread::spawn(move || serve(&listener, &ctx));
        Recorder {
            thread: Some(thread),
            context,
        }
    }

    /// The findings and the distinct commands run. Call after the sandbox is gone (the thread
    /// ends when the listener reports that no task uses the filter any more).
    pub fn finish(mut self) -> Recorded {
        let served = self
            .thread
            .take()
            .and_then(|t| t.join().ok())
            .unwrap_or_default();
        tracing::debug!(
            "syscall recorder: {} notification(s) by syscall number {:?}",
            served.counts.values().sum::<u64>(),
            served.counts
        );
        classify(&served, &self.context)
    }
}

/// Whether host pid `pid` still exists.
fn process_alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}
