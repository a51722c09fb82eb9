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

/// What the recorder needs to know about the sandbox.
#[derive(Debug, Clone, Default)]
pub struct Context {
    /// HOME inside the sandbox (the decoy home; its writes are judged by the home diff).
    pub home: PathBuf,
    /// The NODE_OPTIONS entry that loads the env-probe preload in this run (its path differs
    /// between tiers); empty: the full tier's.
    pub preload_option: String,
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
}

impl Context {
    /// Whether `path` is one of the project's own secret files (dotenv, npm/yarn configs) in a
    /// host tree bound into the sandbox: denied to dependency scripts, and looked for by
    /// configuration loaders (prisma, dotenv) in the normal course of things.
    pub fn project_secret(&self, path: &Path) -> bool {
        let file = path
            .file_name()
            .map(|f| f.to_string_lossy())
            .unwrap_or_default();
        let secret_file = file == ".env"
            || file.starts_with(".env.")
            || file == ".npmrc"
            || file == ".yarnrc"
            || file == ".yarnrc.yml";
        secret_file && !self.in_decoy_home(path) && self.visible.iter().any(|v| path.starts_with(v))
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

/// pid in the innermost pid namespace and command line of host pid `pid`.
/// `with_argv`: also read the command line (not needed when the event is an exec, whose argv
/// names the process from now on: most new processes announce themselves that way).
fn actor_of(pid: u32, with_argv: bool) -> Actor {
    let inner = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("NSpid:"))
                .and_then(|l| l.split_whitespace().last())
                .and_then(|p| p.parse().ok())
        })
        .unwrap_or(0);
    if !with_argv {
        return Actor {
            pid: inner,
            argv: Vec::new(),
        };
    }
    let argv = std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| {
            b.split(|c| *c == 0)
                .filter(|a| !a.is_empty())
                .take(16)
                .map(|a| String::from_utf8_lossy(&a[..a.len().min(200)]).into_owned())
                .collect()
        })
        .unwrap_or_default();
    Actor { pid: inner, argv }
}

fn serve(listener: &OwnedFd, ctx: &Context) -> Served {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    let denied = &ctx.denied;
    let mut served = Served::default();
    let mut current: BTreeMap<u32, usize> = BTreeMap::new();
    let mut mem = MemCache::default();
    let mut argv_cache = ArgvCache::new();
    let mut alike: HashMap<(u8, String), usize> = HashMap::new();
    let mut since_sweep = 0u32;
    let preload = if ctx.preload_option.is_empty() {
        preload_option()
    } else {
        ctx.preload_option.clone()
    };
    loop {
        let mut fds = [PollFd::new(listener.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::NONE) {
            Err(nix::Error::EINTR) => continue,
            Err(_) => break,
            Ok(_) => {}
        }
        let revents = fds[0].revents().unwrap_or(PollFlags::empty());
        if !revents.contains(PollFlags::POLLIN) {
            // POLLHUP without POLLIN: every task using the filter has exited.
            break;
        }
        let req = match sys::seccomp_notif_recv(listener.as_fd()) {
            Ok(r) => r,
            // ENOENT: the target died between poll and recv.
            Err(_) => continue,
        };
        *served.counts.entry(req.data.nr).or_default() += 1;
        since_sweep += 1;
        if since_sweep >= budget::SWEEP {
            // Processes that exited: their memory handles close, their caches go.
            since_sweep = 0;
            mem.sweep();
            if argv_cache.len() > 4096 {
                argv_cache.clear();
            }
            if current.len() > 2 * budget::ACTORS {
                current.retain(|pid, _| process_alive(*pid));
            }
        }
        let refused = denied.get(&i64::from(req.data.nr));
        let mut event = match refused {
            Some((name, errno)) => Some(Event::Denied {
                name: name.clone(),
                errno: *errno,
            }),
            None => read_event(&req, &mut mem, &mut argv_cache, &preload).or_else(|| {
                // A stale memory handle (the process exec'd): reopen once.
                mem.forget(req.pid)
                    .then(|| read_event(&req, &mut mem, &mut argv_cache, &preload))
                    .flatten()
            }),
        };
        // A pathname unix socket outside the sandbox's own areas is refused (see
        // `unix_refusal` for what is checked and what is not).
        let unix_refused = match &mut event {
            Some(
                Event::Connect {
                    unix_path: Some(p),
                    refused,
                    ..
                }
                | Event::Datagram {
                    unix_path: Some(p),
                    refused,
                    ..
                },
            ) => {
                *refused = unix_refusal(req.pid, p, ctx);
                refused.is_some()
            }
            _ => false,
        };
        // Who it is, read while it is blocked (once per process image).
        let known = current.get(&req.pid).copied();
        let is_exec = matches!(event, Some(Event::Exec { .. }));
        let fresh = known.is_none().then(|| actor_of(req.pid, !is_exec));
        // Only trust what we read if the target is still blocked in this very syscall.
        let valid = sys::seccomp_notif_id_valid(listener.as_fd(), req.id);
        match refused {
            // The deny table, enforced here: the syscall never runs.
            Some((_, errno)) => {
                let _ = sys::seccomp_notif_fail(listener.as_fd(), req.id, *errno);
            }
            None if unix_refused => {
                let _ = sys::seccomp_notif_fail(listener.as_fd(), req.id, libc::EACCES);
            }
            None => {
                let _ = sys::seccomp_notif_continue(listener.as_fd(), req.id);
            }
        }
        let Some(e) = event.filter(|_| valid) else {
            continue;
        };
        let mut actor = match (known, fresh) {
            (Some(i), _) => i,
            (None, fresh) => {
                let i = if served.actors.len() < budget::ACTORS {
                    served.actors.push(fresh.unwrap_or(Actor {
                        pid: 0,
                        argv: Vec::new(),
                    }));
                    served.actors.len() - 1
                } else {
                    served.actors_dropped += 1;
                    UNKNOWN_ACTOR
                };
                current.insert(req.pid, i);
                i
            }
        };
        if let Event::Exec { argv, .. } = &e {
            // Name the process by what it now runs. (Its memory handle is reopened when a read
            // through it fails: a successful exec replaces the address space, a failed attempt
            // in a PATH search does not.)
            let pid = served.actors.get(actor).map_or(0, |a| a.pid);
            actor = if served.actors.len() < budget::ACTORS {
                served.actors.push(Actor {
                    pid,
                    argv: argv.clone(),
                });
                served.actors.len() - 1
            } else {
                served.actors_dropped += 1;
                UNKNOWN_ACTOR
            };
            current.insert(req.pid, actor);
        }
        keep(
            &mut served,
            &mut alike,
            Noted {
                event: e,
                actor,
                at_unix_ms: super::now_unix_ms(),
            },
            ctx,
        );
    }
    served
}

/// Store an event within the budget: the first [`budget::EVENTS`] as they come; past them only
/// events that could matter, a few of each kind and target; everything else is counted.
fn keep(served: &mut Served, alike: &mut HashMap<(u8, String), usize>, n: Noted, ctx: &Context) {
    if served.events.len() >= budget::EVENTS {
        let kept = notable(&n.event, ctx)
            .then(|| alike_key(&n.event))
            .and_then(|key| {
                let limit = if key.0 == 5 {
                    budget::ALIKE_DATAGRAMS
                } else {
                    budget::ALIKE
                };
                if alike.len() >= budget::KEYS && !alike.contains_key(&key) {
                    served.dropped_notable += 1;
                    return None;
                }
                let count = alike.entry(key).or_default();
                *count += 1;
                (*count <= limit).then_some(())
            });
        if kept.is_none() {
            served.dropped += 1;
            served.first_drop_ms.get_or_insert(n.at_unix_ms);
            return;
        }
    }
    served.events.push(n);
}

/// Whether host pid `pid` still exists.
fn process_alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// The kind and target an event is deduplicated by past the budget (the kind's number first:
/// 5 is a datagram).
fn alike_key(e: &Event) -> (u8, String) {
    match e {
        Event::Open { path, write } => (u8::from(*write), path.display().to_string()),
        Event::Mkdir { path } => (2, path.display().to_string()),
        Event::Exec { argv, .. } => (3, argv.join(" ")),
        Event::Connect { addr, .. } => (4, addr.clone()),
        Event::Datagram { addr, .. } => (5, addr.clone()),
        Event::Denied { name, .. } => (6, name.clone()),
    }
}

/// Whether an event could make a finding of medium or worse, or name who read a decoy or made
/// a connection: what is still kept once the event budget is spent.
fn notable(e: &Event, ctx: &Context) -> bool {
    match e {
        Event::Open { path, write } => {
            let s = path.to_string_lossy();
            if ctx.in_decoy_home(path) {
                // Reads of the decoys name who read them; writes are judged by the home diff.
                return !*write;
            }
            if environ_owner(&s).is_some() || secret_path(path).is_some() {
                return true;
            }
            *write && write_matters(path, ctx)
        }
        Event::Mkdir { path } => write_matters(path, ctx),
        Event::Exec {
            argv,
            preload_missing,
        } => {
            *preload_missing
                || exec_finding(argv).is_some()
                || argv.first().map(Path::new).is_some_and(|p| {
                    p.is_absolute() && (ctx.in_decoy_home(p) || p.starts_with("/tmp"))
                })
        }
        Event::Connect { .. } | Event::Datagram { .. } | Event::Denied { .. } => true,
    }
}

/// A write that would be a finding of medium or worse: outside the writable set, the private
/// /tmp and the caches, at a place [`tamper_class`] rates so.
fn write_matters(path: &Path, ctx: &Context) -> bool {
    let private_tmp = path.starts_with("/tmp") && !ctx.visible.iter().any(|v| path.starts_with(v));
    let allowed = ctx.writable.iter().any(|w| path.starts_with(w))
        || private_tmp
        || ctx.caches.iter().any(|c| path.starts_with(c));
    !allowed && tamper_class(path).is_some_and(|(s, _)| s >= Severity::Medium)
}

/// Open `/proc/<pid>/mem` handles, at most [`budget::MEM_HANDLES`]: the least recently used is
/// closed first, and a sweep closes those of processes that exited, so the supervisor's
/// descriptors do not depend on how many processes the script starts.
#[derive(Debug, Default)]
struct MemCache {
    files: BTreeMap<u32, (File, u64)>,
    tick: u64,
}

impl MemCache {
    fn get(&mut self, pid: u32) -> Option<&File> {
        self.tick += 1;
        if !self.files.contains_key(&pid) {
            if self.files.len() >= budget::MEM_HANDLES {
                let oldest = self
                    .files
                    .iter()
                    .min_by_key(|(_, (_, used))| *used)
                    .map(|(p, _)| *p);
                if let Some(p) = oldest {
                    self.files.remove(&p);
                }
            }
            let f = File::open(format!("/proc/{pid}/mem")).ok()?;
            self.files.insert(pid, (f, self.tick));
        }
        let tick = self.tick;
        let entry = self.files.get_mut(&pid)?;
        entry.1 = tick;
        Some(&entry.0)
    }

    /// Close `pid`'s handle; whether there was one.
    fn forget(&mut self, pid: u32) -> bool {
        self.files.remove(&pid).is_some()
    }

    /// Close the handles of processes that exited.
    fn sweep(&mut self) {
        self.files.retain(|pid, _| process_alive(*pid));
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.files.len()
    }
}

/// Whether a connect (or a datagram) to the pathname unix socket `path` of process `pid` must
/// be refused, and if so where the socket resolved.
///
/// Allowed: sockets in the sandbox's private /tmp and the throwaway home (nothing of the host
/// listens there), and sockets in a writable host directory (the package's own) that a
/// process of the sandbox bound itself, as the sandbox's own network namespace lists them in
/// `/proc/<pid>/net/unix` (when the sandbox shares the host's network namespace this cannot be
/// told, and writable directories are allowed). Everything else (the project, HOME's host
/// binds, /run, /var/run) is refused: a host listener there (a dev server's socket, a database,
/// a container runtime, a desktop bus) is a way out.
///
/// The path is resolved as the process sees it (its cwd, its root, symbolic links followed in
/// its root), so a link in /tmp to the project's socket is judged at the socket. What this
/// cannot close (Landlock gains pathname-socket rules only with LANDLOCK_ACCESS_FS_RESOLVE_UNIX,
/// after Linux 6.18): the kernel resolves the path again after we answer, so a script racing a
/// rename or a link swap in its own areas between our check and the connect can still win. The
/// attempt that loses the race, and every plain attempt, is refused and recorded.
fn unix_refusal(pid: u32, path: &Path, ctx: &Context) -> Option<(PathBuf, bool)> {
    if path.as_os_str().is_empty() {
        return None;
    }
    let lexical = resolve(pid, i64::from(libc::AT_FDCWD), &path.to_string_lossy());
    let real = resolve_in_root(pid, &lexical).unwrap_or(lexical);
    let private_tmp = real.starts_with("/tmp") && !ctx.visible.iter().any(|v| real.starts_with(v));
    if private_tmp || ctx.in_decoy_home(&real) {
        return None;
    }
    if ctx.writable.iter().any(|w| real.starts_with(w)) && bound_in_own_netns(pid, &real) {
        return None;
    }
    let there = real
        .strip_prefix("/")
        .ok()
        .and_then(|r| {
            std::fs::symlink_metadata(Path::new(&format!("/proc/{pid}/root")).join(r)).ok()
        })
        .is_some();
    Some((real, there))
}

/// Whether a socket of the sandbox's own network namespace is bound at `path` (or the sandbox
/// shares the host's namespace, where this cannot be told).
fn bound_in_own_netns(pid: u32, path: &Path) -> bool {
    let ns = |p: &str| std::fs::metadata(p).map(|m| std::os::unix::fs::MetadataExt::ino(&m));
    match (ns(&format!("/proc/{pid}/ns/net")), ns("/proc/self/ns/net")) {
        (Ok(theirs), Ok(ours)) if theirs != ours => {}
        _ => return true,
    }
    let Ok(table) = std::fs::read_to_string(format!("/proc/{pid}/net/unix")) else {
        return false;
    };
    table.lines().skip(1).any(|l| {
        l.split_whitespace().nth(7).is_some_and(|bound| {
            let bound = Path::new(bound);
            bound == path || (bound.is_relative() && path.ends_with(bound))
        })
    })
}

/// `path` (absolute) with symbolic links followed as process `pid` sees them: inside its root
/// (`/proc/<pid>/root`), absolute link targets from that root. Components that do not exist are
/// kept as they are. `None` past 40 links.
fn resolve_in_root(pid: u32, path: &Path) -> Option<PathBuf> {
    use std::path::Component;
    let root = PathBuf::from(format!("/proc/{pid}/root"));
    let mut stack: Vec<std::ffi::OsString> = path
        .components()
        .rev()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_os_string()),
            Component::ParentDir => Some("..".into()),
            _ => None,
        })
        .collect();
    let mut out = PathBuf::from("/");
    let mut links = 0;
    while let Some(c) = stack.pop() {
        if c == ".." {
            out.pop();
            continue;
        }
        let candidate = out.join(&c);
        let on_host = root.join(candidate.strip_prefix("/").ok()?);
        match std::fs::symlink_metadata(&on_host) {
            Ok(m) if m.file_type().is_symlink() => {
                links += 1;
                if links > 40 {
                    return None;
                }
                let target = std::fs::read_link(&on_host).ok()?;
                if target.is_absolute() {
                    out = PathBuf::from("/");
                }
                for t in target.components().rev() {
                    match t {
                        Component::Normal(n) => stack.push(n.to_os_string()),
                        Component::ParentDir => stack.push("..".into()),
                        _ => {}
                    }
                }
            }
            _ => out = candidate,
        }
    }
    Some(out)
}

fn mem_of(mem: &mut MemCache, pid: u32) -> Option<&File> {
    mem.get(pid)
}

fn read_cstr(f: &File, addr: u64, max: usize) -> Option<String> {
    if addr == 0 {
        return None;
    }
    let mut out = Vec::new();
    let mut buf = [0u8; 256];
    let mut at = addr;
    while out.len() < max {
        let n = f.read_at(&mut buf, at).ok()?;
        if n == 0 {
            // Nothing at all: a stale handle (the process has exec'd since it was opened).
            if out.is_empty() {
                return None;
            }
            break;
        }
        if let Some(end) = buf[..n].iter().position(|b| *b == 0) {
            out.extend_from_slice(&buf[..end]);
            return Some(String::from_utf8_lossy(&out).into_owned());
        }
        out.extend_from_slice(&buf[..n]);
        at += n as u64;
    }
    Some(String::from_utf8_lossy(&out).into_owned())
}

fn read_u64(f: &File, addr: u64) -> Option<u64> {
    let mut b = [0u8; 8];
    (f.read_at(&mut b, addr).ok()? == 8).then(|| u64::from_ne_bytes(b))
}

/// Resolve `path` as the kernel would for `dirfd` in process `pid` (lexically: `..` is folded,
/// symlinks are not followed, which is what the report should show anyway).
fn resolve(pid: u32, dirfd: i64, path: &str) -> PathBuf {
    let p = Path::new(path);
    let joined = if p.is_absolute() {
        p.to_path_buf()
    } else {
        let base = if dirfd == i64::from(libc::AT_FDCWD) {
            std::fs::read_link(format!("/proc/{pid}/cwd")).ok()
        } else {
            std::fs::read_link(format!("/proc/{pid}/fd/{dirfd}")).ok()
        };
        base.unwrap_or_default().join(p)
    };
    let mut out = PathBuf::new();
    for c in joined.components() {
        match c {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::CurDir => {}
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// The last exec's argv per pid, by the (argv, argv[0]) pointers: a PATH search retries the same
/// argv with each directory, and reading it again costs dozens of reads.
type ArgvCache = BTreeMap<u32, (u64, u64, Vec<String>, bool)>;

/// The option ringfence's env-probe preload is loaded with (see `envprobe::EnvProbes::plant`).
fn preload_option() -> String {
    format!("--require={}/preload.js", super::envprobe::SANDBOX_DIR)
}

/// Whether `program` (a path or a bare name) is node.
fn is_node(program: &str) -> bool {
    let base = program.rsplit('/').next().unwrap_or(program);
    base == "node"
        || base == "nodejs"
        || base
            .strip_prefix("node")
            .is_some_and(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit() || b == b'.'))
}

/// Whether the environment at `envp` in the target's memory has NODE_OPTIONS loading the
/// preload (the first NODE_OPTIONS, as getenv finds it). Unreadable counts as yes: the
/// recorder accuses only what it read.
fn env_has_preload(f: &File, envp: u64, want: &str) -> bool {
    for i in 0..4096u64 {
        let Some(p) = envp.checked_add(i * 8).and_then(|at| read_u64(f, at)) else {
            return true;
        };
        if p == 0 {
            return false;
        }
        let Some(var) = read_cstr(f, p, 64 << 10) else {
            return true;
        };
        if let Some(v) = var.strip_prefix("NODE_OPTIONS=") {
            return v.contains(want);
        }
    }
    true
}

/// The pathname of a `struct sockaddr_un` (`None` for other families, abstract and unnamed
/// sockets).
fn unix_pathname(b: &[u8]) -> Option<PathBuf> {
    use std::os::unix::ffi::OsStrExt;
    let family = u16::from_ne_bytes([*b.first()?, *b.get(1)?]);
    if i32::from(family) != libc::AF_UNIX {
        return None;
    }
    let raw = b.get(2..)?;
    if raw.first().is_none_or(|c| *c == 0) {
        return None;
    }
    let end = raw.iter().position(|c| *c == 0).unwrap_or(raw.len());
    Some(PathBuf::from(std::ffi::OsStr::from_bytes(raw.get(..end)?)))
}

fn read_event(
    req: &libc::seccomp_notif,
    mem: &mut MemCache,
    argv_cache: &mut ArgvCache,
    preload: &str,
) -> Option<Event> {
    let nr = i64::from(req.data.nr);
    let a = req.data.args;
    let pid = req.pid;
    // The dirfd argument is an int: only its low 32 bits are meaningful (AT_FDCWD is -100).
    let dirfd_of = |v: u64| {
        let low = v.to_le_bytes();
        i64::from(i32::from_le_bytes([low[0], low[1], low[2], low[3]]))
    };
    let f = mem_of(mem, pid)?;
    #[cfg(target_arch = "x86_64")]
    {
        if nr == libc::SYS_open {
            let path = read_cstr(f, a[0], 4096)?;
            return Some(Event::Open {
                path: resolve(pid, i64::from(libc::AT_FDCWD), &path),
                write: is_write(a[1]),
            });
        }
        if nr == libc::SYS_mkdir {
            let path = read_cstr(f, a[0], 4096)?;
            return Some(Event::Mkdir {
                path: resolve(pid, i64::from(libc::AT_FDCWD), &path),
            });
        }
        if nr == libc::SYS_unlink {
            let path = read_cstr(f, a[0], 4096)?;
            return Some(Event::Open {
                path: resolve(pid, i64::from(libc::AT_FDCWD), &path),
                write: true,
            });
        }
        if nr == libc::SYS_creat {
            let path = read_cstr(f, a[0], 4096)?;
            return Some(Event::Open {
                path: resolve(pid, i64::from(libc::AT_FDCWD), &path),
                write: true,
            });
        }
    }
    if nr == libc::SYS_openat {
        let path = read_cstr(f, a[1], 4096)?;
        return Some(Event::Open {
            path: resolve(pid, dirfd_of(a[0]), &path),
            write: is_write(a[2]),
        });
    }
    if nr == libc::SYS_mkdirat {
        let path = read_cstr(f, a[1], 4096)?;
        return Some(Event::Mkdir {
            path: resolve(pid, dirfd_of(a[0]), &path),
        });
    }
    if nr == libc::SYS_unlinkat {
        let path = read_cstr(f, a[1], 4096)?;
        return Some(Event::Open {
            path: resolve(pid, dirfd_of(a[0]), &path),
            write: true,
        });
    }
    if nr == 437 {
        // openat2(dirfd, path, struct open_how *{ u64 flags, u64 mode, u64 resolve }, size).
        // RESOLVE_IN_ROOT (0x10) resolves an absolute path from dirfd, as if it were the root.
        let path = read_cstr(f, a[1], 4096)?;
        let flags = read_u64(f, a[2]).unwrap_or(0);
        let how = read_u64(f, a[2].wrapping_add(16)).unwrap_or(0);
        let path = if how & 0x10 != 0 {
            path.trim_start_matches('/').to_string()
        } else {
            path
        };
        return Some(Event::Open {
            path: resolve(pid, dirfd_of(a[0]), &path),
            write: is_write(flags),
        });
    }
    if nr == libc::SYS_execve || nr == libc::SYS_execveat {
        let (path_ptr, argv_ptr, envp_ptr) = if nr == libc::SYS_execve {
            (a[0], a[1], a[2])
        } else {
            (a[1], a[2], a[3])
        };
        let first = read_u64(f, argv_ptr)?;
        if let Some((p, q, argv, preload_missing)) = argv_cache.get(&pid) {
            if *p == argv_ptr && *q == first && first != 0 {
                return Some(Event::Exec {
                    argv: argv.clone(),
                    preload_missing: *preload_missing,
                });
            }
        }
        let mut argv = Vec::new();
        for i in 0..16u64 {
            let p = read_u64(f, argv_ptr + i * 8)?;
            if p == 0 {
                break;
            }
            argv.push(read_cstr(f, p, 200)?);
        }
        let program = read_cstr(f, path_ptr, 4096).unwrap_or_default();
        if argv.is_empty() {
            argv.push(program.clone());
        }
        // A node started without the preload (its NODE_OPTIONS removed or overwritten) is not
        // recorded by it: every exec passes here, whatever the environment says.
        let node =
            is_node(&program) || (program.is_empty() && argv.first().is_some_and(|a| is_node(a)));
        let preload_missing = node && !env_has_preload(f, envp_ptr, preload);
        argv_cache.insert(pid, (argv_ptr, first, argv.clone(), preload_missing));
        return Some(Event::Exec {
            argv,
            preload_missing,
        });
    }
    if nr == libc::SYS_sendmsg || nr == libc::SYS_sendmmsg {
        // struct msghdr { void *name; socklen_t namelen; struct iovec *iov; size_t iovlen; … }
        // (the first of an mmsghdr array: the same layout at its start).
        let hdr = a[1];
        let name = read_u64(f, hdr)?;
        if name == 0 {
            return None;
        }
        let namelen = read_u64(f, hdr + 8).unwrap_or(0) & 0xffff_ffff;
        let mut buf = vec![0u8; usize::try_from(namelen.min(128)).unwrap_or(0)];
        let n = f.read_at(&mut buf, name).ok()?;
        let addr = sockaddr(&buf[..n])?;
        let unix_path = unix_pathname(&buf[..n]);
        let mut data = Vec::new();
        let (iov, iovlen) = (read_u64(f, hdr + 16)?, read_u64(f, hdr + 24)?);
        for i in 0..iovlen.min(8) {
            let (base, len) = (read_u64(f, iov + i * 16)?, read_u64(f, iov + i * 16 + 8)?);
            let want = usize::try_from(len.min(4096))
                .unwrap_or(0)
                .min(4096 - data.len());
            let mut chunk = vec![0u8; want];
            let got = f.read_at(&mut chunk, base).unwrap_or(0);
            data.extend_from_slice(&chunk[..got]);
            if data.len() >= 4096 {
                break;
            }
        }
        return Some(Event::Datagram {
            addr,
            data,
            unix_path,
            refused: None,
        });
    }
    if nr == libc::SYS_connect || nr == libc::SYS_sendto {
        let (ptr, len) = if nr == libc::SYS_connect {
            (a[1], a[2])
        } else {
            (a[4], a[5])
        };
        let len = usize::try_from(len.min(128)).unwrap_or(0);
        let mut buf = vec![0u8; len];
        let n = f.read_at(&mut buf, ptr).ok()?;
        let addr = sockaddr(&buf[..n])?;
        let unix_path = unix_pathname(&buf[..n]);
        if nr == libc::SYS_connect {
            return Some(Event::Connect {
                addr,
                unix_path,
                refused: None,
            });
        }
        // sendto(fd, buf, len, flags, addr, addrlen): a datagram to a port nothing serves is
        // only seen here, so keep its first bytes for the canary search.
        let size = usize::try_from(a[2].min(4096)).unwrap_or(0);
        let mut data = vec![0u8; size];
        let got = f.read_at(&mut data, a[1]).unwrap_or(0);
        data.truncate(got);
        return Some(Event::Datagram {
            addr,
            data,
            unix_path,
            refused: None,
        });
    }
    None
}

fn is_write(flags: u64) -> bool {
    flags & O_ACCMODE != 0 || flags & (O_CREAT | O_TRUNC | O_APPEND) != 0
}

/// Render a `struct sockaddr` (unix path, inet, inet6).
fn sockaddr(b: &[u8]) -> Option<String> {
    let family = u16::from_ne_bytes([*b.first()?, *b.get(1)?]);
    match i32::from(family) {
        libc::AF_UNIX => {
            let raw = b.get(2..)?;
            if raw.first() == Some(&0) {
                let name: Vec<u8> = raw[1..].iter().copied().take_while(|c| *c != 0).collect();
                Some(format!("unix:@{}", String::from_utf8_lossy(&name)))
            } else {
                let name: Vec<u8> = raw.iter().copied().take_while(|c| *c != 0).collect();
                Some(format!("unix:{}", String::from_utf8_lossy(&name)))
            }
        }
        libc::AF_INET => {
            let port = u16::from_be_bytes([*b.get(2)?, *b.get(3)?]);
            Some(format!(
                "{}.{}.{}.{}:{port}",
                b.get(4)?,
                b.get(5)?,
                b.get(6)?,
                b.get(7)?
            ))
        }
        libc::AF_INET6 => {
            let port = u16::from_be_bytes([*b.get(2)?, *b.get(3)?]);
            let mut o = [0u8; 16];
            o.copy_from_slice(b.get(8..24)?);
            Some(format!("[{}]:{port}", std::net::Ipv6Addr::from(o)))
        }
        _ => None,
    }
}

/// Credential files looked for outside HOME (another user's home, the host's root, the
/// project's dotenv files, orchestrator secrets). Opens of invisible paths in general are noise
/// (PATH and library lookups), so only these names count.
/// What kind of secret a path holds by convention, if any.
pub(crate) fn secret_path(path: &Path) -> Option<&'static str> {
    let s = path.to_string_lossy();
    let file = path
        .file_name()
        .map(|f| f.to_string_lossy())
        .unwrap_or_default();
    if ["/etc/shadow", "/etc/gshadow", "/etc/sudoers"].contains(&s.as_ref())
        || s.starts_with("/var/run/secrets/")
        || s.starts_with("/run/secrets/")
    {
        return Some("a system secret");
    }
    if s.contains("/.ssh/id_") || s.ends_with("/.ssh/authorized_keys") {
        return Some("an ssh key");
    }
    if file == ".npmrc" || s.ends_with("/.git-credentials") || s.ends_with("/.config/gh/hosts.yml")
    {
        return Some("a token file");
    }
    if s.ends_with("/.aws/credentials")
        || s.ends_with("/.kube/config")
        || s.ends_with("/.docker/config.json")
    {
        return Some("cloud credentials");
    }
    if s.contains("/.azure/") || s.contains("/.config/gcloud/") || s.ends_with("/.netrc") {
        return Some("cloud credentials");
    }
    if s.ends_with("_history") {
        return Some("shell history");
    }
    if s.contains("/.ethereum/")
        || s.contains("/.electrum/")
        || s.contains("/.bitcoin/")
        || s.contains("/.config/solana/")
        || s.contains("/.config/Exodus/")
    {
        return Some("a crypto wallet");
    }
    if (file == ".env" || file.starts_with(".env.")) && !s.contains("/node_modules/") {
        return Some("a dotenv file");
    }
    None
}

/// Where a write outside the writable set points, and how bad that is.
fn tamper_class(path: &Path) -> Option<(Severity, &'static str)> {
    let s = path.to_string_lossy();
    if s.starts_with("/dev/") || s.starts_with("/proc/") {
        return None;
    }
    // Python writes its bytecode cache opportunistically next to every module it imports
    // (node-gyp's gyp among them) and carries on when it cannot: noise, not tampering.
    if path.components().any(|c| c.as_os_str() == "__pycache__")
        || path.extension().is_some_and(|e| e == "pyc")
    {
        return None;
    }
    let name = |n: &str| path.components().any(|c| c.as_os_str() == n);
    let any = |names: &[&str]| names.iter().any(|n| name(n));
    if any(&[
        ".git",
        ".github",
        ".husky",
        ".gitlab-ci.yml",
        ".circleci",
        ".buildkite",
        "Jenkinsfile",
        "azure-pipelines.yml",
        ".travis.yml",
    ]) {
        return Some((Severity::High, "the project's git hooks or CI workflows"));
    }
    if any(&[
        ".claude",
        ".vscode",
        ".cursor",
        ".mcp.json",
        ".gemini",
        ".windsurf",
        ".codex",
        ".continue",
        "CLAUDE.md",
        "AGENTS.md",
        "GEMINI.md",
    ]) {
        return Some((
            Severity::High,
            "an AI-agent or IDE auto-run config of the project",
        ));
    }
    // `node_modules/.cache/<tool>`: where babel, jiti, terser and eslint keep caches; they carry
    // on without one.
    let mut parts = path.components().map(|c| c.as_os_str());
    if parts.any(|c| c == "node_modules") && parts.next().is_some_and(|c| c == ".cache") {
        return Some((
            Severity::Low,
            "the project's tool cache, node_modules/.cache",
        ));
    }
    if name("node_modules") {
        return Some((Severity::High, "another package"));
    }
    if s.starts_with("/etc/")
        || s.starts_with("/usr/")
        || s.starts_with("/bin")
        || s.starts_with("/lib")
    {
        return Some((Severity::High, "system files"));
    }
    Some((Severity::High, "outside the package's own directory"))
}

fn classify(served: &Served, ctx: &Context) -> Recorded {
    let mut out = Vec::new();
    let mut spawned: BTreeMap<Vec<String>, usize> = BTreeMap::new();
    let mut seen: std::collections::BTreeSet<(FindingKind, String)> = Default::default();
    let mut environ_reads: std::collections::BTreeSet<String> = Default::default();
    let mut environ_first: Option<&Noted> = None;
    let mut connects = Vec::new();
    let mut execs = Vec::new();
    let mut home_reads = Vec::new();
    let mut datagrams = Vec::new();
    let actor = |n: &Noted| served.actors.get(n.actor).cloned();
    let mut push = |out: &mut Vec<Finding>, mut f: Finding, n: &Noted| {
        if seen.insert((f.kind, f.target.clone())) {
            f.process = actor(n);
            f.at_unix_ms = Some(n.at_unix_ms);
            out.push(f);
        }
    };
    let owned: Vec<Noted> = served
        .events
        .iter()
        .filter_map(|n| match &n.event {
            // Sandbox paths equal host paths for everything visible, so an existing host path
            // means the mkdir failed with EEXIST.
            Event::Mkdir { path } => (!path.exists()).then(|| Noted {
                event: Event::Open {
                    path: path.clone(),
                    write: true,
                },
                ..n.clone()
            }),
            _ => Some(n.clone()),
        })
        .collect();
    for n in &owned {
        match &n.event {
            Event::Mkdir { .. } => {}
            Event::Open { path, write, .. } => {
                // HOME is the decoy home: reads show in the decoys' atime, writes in its diff.
                if ctx.in_decoy_home(path) {
                    if !*write && home_reads.len() < 5000 {
                        if let Some(actor) = actor(n) {
                            home_reads.push(Sighting {
                                what: path.display().to_string(),
                                actor,
                                at_unix_ms: n.at_unix_ms,
                            });
                        }
                    }
                    continue;
                }
                let s = path.to_string_lossy();
                if s.starts_with("/proc/") {
                    // Paths name pids of the sandbox's own namespace.
                    if let Some(owner) = environ_owner(&s) {
                        environ_reads.insert(owner.to_string());
                        environ_first.get_or_insert(n);
                    }
                    continue;
                }
                if let Some(class) = secret_path(path) {
                    let f = if ctx.project_secret(path) {
                        Finding::new(
                            Code::ProjectSecretProbe,
                            format!(
                                "tried to open the project's {} `{s}` (denied to dependency scripts; nothing was read)",
                                class.trim_start_matches("a ")
                            ),
                            s,
                        )
                    } else {
                        Finding::new(
                            Code::SecretPathProbe,
                            format!("tried to open {class} `{s}` outside the decoy home"),
                            s,
                        )
                        .detail("not visible in the sandbox; the attempt is what matters")
                    };
                    push(&mut out, f, n);
                    continue;
                }
                if *write
                    && !ctx.in_decoy_home(path)
                    && !ctx.writable.iter().any(|w| path.starts_with(w))
                {
                    // The private /tmp is the sandbox's own, unless a host path is bound there.
                    let private_tmp = path.starts_with("/tmp")
                        && !ctx.visible.iter().any(|v| path.starts_with(v));
                    if private_tmp {
                        continue;
                    }
                    if let Some(cache) = ctx.caches.iter().find(|c| path.starts_with(c)) {
                        // One finding per cache (nested npm runs write logs by the dozen).
                        push(
                            &mut out,
                            Finding {
                                code: Code::CacheWrite,
                                kind: FindingKind::TamperAttempt,
                                severity: Severity::Low,
                                summary: format!(
                                    "tried to write the shared npm cache (read-only in the sandbox), first `{s}`"
                                ),
                                target: cache.display().to_string(),
                                detail: None,
                                process: None,
                                at_unix_ms: None,
                            },
                            n,
                        );
                        continue;
                    }
                    if let Some((sev, class)) = tamper_class(path) {
                        push(
                            &mut out,
                            Finding {
                                code: Code::WriteRefused,
                                kind: FindingKind::TamperAttempt,
                                severity: sev,
                                summary: format!("tried to write `{s}` ({class}); refused"),
                                target: s.into_owned(),
                                detail: None,
                                process: None,
                                at_unix_ms: None,
                            },
                            n,
                        );
                    }
                }
            }
            Event::Exec {
                argv,
                preload_missing,
            } => {
                *spawned.entry(argv.clone()).or_default() += 1;
                if *preload_missing {
                    push(
                        &mut out,
                        Finding::new(
                            Code::RecordingEvaded,
                            format!(
                                "started node without ringfence's preload (NODE_OPTIONS removed or overwritten): `{}`",
                                argv.iter().take(8).cloned().collect::<Vec<_>>().join(" ")
                            ),
                            "env:NODE_OPTIONS",
                        )
                        .detail(
                            "seen by the syscall recorder in the exec's environment; that process's environment probes and file reads were not recorded by the preload",
                        ),
                        n,
                    );
                }
                if execs.len() < 5000 {
                    if let Some(actor) = actor(n) {
                        execs.push(Sighting {
                            what: argv.join(" "),
                            actor,
                            at_unix_ms: n.at_unix_ms,
                        });
                    }
                }
                if let Some(f) = exec_finding(argv) {
                    push(&mut out, f, n);
                }
                // A program run from HOME or the private /tmp was dropped there by the script:
                // a second stage or a brought-along runtime.
                if let Some(prog) = argv.first().map(PathBuf::from) {
                    let dropped = prog.is_absolute()
                        && (ctx.in_decoy_home(&prog)
                            || (prog.starts_with("/tmp")
                                && !ctx.visible.iter().any(|v| prog.starts_with(v))));
                    if dropped {
                        push(
                            &mut out,
                            Finding {
                                code: Code::DroppedProgram,
                                kind: FindingKind::EscapeAttempt,
                                severity: Severity::High,
                                summary: format!("ran a program it dropped: `{}`", argv.join(" ")),
                                target: prog.display().to_string(),
                                detail: Some("second stage or brought-along runtime".into()),
                                process: None,
                                at_unix_ms: None,
                            },
                            n,
                        );
                    }
                }
            }
            Event::Datagram {
                addr,
                data,
                unix_path,
                refused,
            } => {
                if let (Some(given), Some(real)) = (unix_path, refused) {
                    push(
                        &mut out,
                        unix_refused_finding(given, &real.0, real.1, "sent a datagram to"),
                        n,
                    );
                }
                // Judged like a connect (the destination), plus the payload later (canaries).
                if let Some(actor) = actor(n) {
                    if !addr.starts_with("unix:") {
                        connects.push(Sighting {
                            what: addr.clone(),
                            actor: actor.clone(),
                            at_unix_ms: n.at_unix_ms,
                        });
                    }
                    if datagrams.len() < 1000 {
                        datagrams.push((
                            Sighting {
                                what: addr.clone(),
                                actor,
                                at_unix_ms: n.at_unix_ms,
                            },
                            data.clone(),
                        ));
                    }
                }
                if let Some(f) = inet_connect_finding(addr) {
                    push(&mut out, f, n);
                }
            }
            Event::Denied { name, errno } => {
                let (severity, what) = denied_class(name);
                let err = match *errno {
                    libc::EPERM => "EPERM".to_string(),
                    libc::EAFNOSUPPORT => "EAFNOSUPPORT".to_string(),
                    e => format!("errno {e}"),
                };
                push(
                    &mut out,
                    Finding {
                        code: Code::SyscallDenied,
                        kind: FindingKind::EscapeAttempt,
                        severity,
                        summary: format!("called `{name}` ({what}); refused with {err}"),
                        target: format!("syscall:{name}"),
                        detail: None,
                        process: None,
                        at_unix_ms: None,
                    },
                    n,
                );
            }
            Event::Connect {
                addr,
                unix_path,
                refused,
            } => {
                if let (Some(given), Some(real)) = (unix_path, refused) {
                    push(
                        &mut out,
                        unix_refused_finding(given, &real.0, real.1, "tried to connect to"),
                        n,
                    );
                }
                if let Some(actor) = actor(n).filter(|_| !addr.starts_with("unix:")) {
                    connects.push(Sighting {
                        what: addr.clone(),
                        actor,
                        at_unix_ms: n.at_unix_ms,
                    });
                }
                if let Some(f) = inet_connect_finding(addr) {
                    push(&mut out, f, n);
                }
                if addr.starts_with("unix:") {
                    let sock = addr.trim_start_matches("unix:");
                    if sock.contains("ssh") && sock.contains("agent")
                        || sock.contains("gpg-agent")
                        || sock.contains("/gnupg/")
                    {
                        push(
                            &mut out,
                            Finding {
                                code: Code::KeyAgentSocket,
                                kind: FindingKind::SecretRead,
                                severity: Severity::High,
                                summary: format!(
                                    "tried to use a key agent's socket `{sock}` (signing with your keys)"
                                ),
                                target: addr.clone(),
                                detail: None,
                                process: None,
                                at_unix_ms: None,
                            },
                            n,
                        );
                    }
                    if sock.contains("docker.sock")
                        || sock.contains("containerd")
                        || sock.contains("podman")
                    {
                        push(
                            &mut out,
                            Finding {
                                code: Code::ContainerSocket,
                                kind: FindingKind::EscapeAttempt,
                                severity: Severity::High,
                                summary: format!(
                                    "tried to reach a container runtime socket `{sock}`"
                                ),
                                target: addr.clone(),
                                detail: None,
                                process: None,
                                at_unix_ms: None,
                            },
                            n,
                        );
                    }
                }
            }
        }
    }
    if let Some(n) = environ_first {
        out.extend(environ_finding(
            &environ_reads,
            actor(n),
            Some(n.at_unix_ms),
        ));
    }
    out.extend(degraded_finding(served));
    let mut list: Vec<Spawned> = spawned
        .into_iter()
        .map(|(argv, count)| Spawned { argv, count })
        .collect();
    list.truncate(500);
    Recorded {
        findings: out,
        spawned: list,
        connects,
        execs,
        home_reads,
        datagrams,
    }
}

/// A refused connect or datagram to a pathname unix socket.
fn unix_refused_finding(given: &Path, real: &Path, there: bool, what: &str) -> Finding {
    let shown = if given == real {
        format!("`{}`", given.display())
    } else {
        format!("`{}` (resolves to `{}`)", given.display(), real.display())
    };
    // Sockets the C library tries on its own (name service cache, user database, resolver,
    // syslog): refused like any other, it falls back; not the script's doing.
    const SYSTEM: [&str; 7] = [
        "/var/run/nscd/socket",
        "/run/nscd/socket",
        "/run/systemd/userdb/",
        "/run/systemd/resolve/io.systemd.Resolve",
        "/dev/log",
        "/run/systemd/journal/",
        "/run/systemd/notify",
    ];
    let s = real.to_string_lossy();
    let system = SYSTEM.iter().any(|p| {
        if p.ends_with('/') {
            s.starts_with(p)
        } else {
            s == *p
        }
    });
    let (severity, why) = if system {
        (
            // Every getpwuid() of a build tool tries nscd: noise on real projects, refused
            // anyway; in the report, not the summary.
            Severity::Info,
            "a system service socket the C library tries on its own; it falls back",
        )
    } else if there {
        (
            Severity::High,
            "a host listener reached through a socket file is a way out of the sandbox",
        )
    } else {
        (
            Severity::Medium,
            "nothing was there this time; the attempt is what matters",
        )
    };
    Finding::new(
        Code::UnixSocketRefused,
        format!(
            "{what} the unix socket {shown} outside the sandbox's own areas; refused with EACCES"
        ),
        format!("unix-path:{}", real.display()),
    )
    .severity(severity)
    .detail(why)
}

/// What the budgets left out, if anything.
fn degraded_finding(served: &Served) -> Option<Finding> {
    if served.dropped == 0 && served.actors_dropped == 0 {
        return None;
    }
    let mut detail = vec![format!(
        "the first {} events were kept; past them only events that could be a medium or worse finding, {} alike at most",
        budget::EVENTS,
        budget::ALIKE
    )];
    if served.dropped_notable > 0 {
        detail.push(format!(
            "{} of the dropped events could have mattered ({} distinct kinds and targets were already tracked)",
            served.dropped_notable,
            budget::KEYS
        ));
    }
    if served.actors_dropped > 0 {
        detail.push(format!(
            "{} process identities past the budget of {} are not named",
            served.actors_dropped,
            budget::ACTORS
        ));
    }
    let severity = if served.dropped_notable > 0 || served.actors_dropped > 0 {
        Severity::Medium
    } else {
        Severity::Low
    };
    Some(
        Finding::new(
            Code::RecordingDegraded,
            format!("recording degraded: {} events dropped", served.dropped),
            "recorder",
        )
        .severity(severity)
        .detail(detail.join("; "))
        .at(served.first_drop_ms.or(Some(super::now_unix_ms()))),
    )
}

/// The pid a `/proc/<pid>/environ` path names, if it names one.
pub(crate) fn environ_owner(path: &str) -> Option<&str> {
    path.strip_prefix("/proc/")
        .and_then(|r| r.strip_suffix("/environ"))
        .filter(|pid| pid.parse::<u32>().is_ok())
}

/// Reads of other processes' environments (`pids` inside the sandbox), whoever saw them: pid 1
/// is ringfence's init, the stand-in for npm (whose environment held the user's tokens), and
/// many pids is a scan; one sibling is only curiosity.
pub(crate) fn environ_finding(
    pids: &std::collections::BTreeSet<String>,
    by: Option<Actor>,
    at_unix_ms: Option<u64>,
) -> Option<Finding> {
    if pids.is_empty() {
        return None;
    }
    let list = pids.iter().cloned().collect::<Vec<_>>().join(", ");
    let scan = pids.contains("1") || pids.len() >= 3;
    Some(Finding {
        code: Code::EnvironRead,
        kind: if scan {
            FindingKind::SecretRead
        } else {
            FindingKind::Fingerprinting
        },
        severity: if scan { Severity::High } else { Severity::Low },
        summary: if scan {
            format!("read other processes' environments (pids {list})")
        } else {
            format!("read the environment of a sibling process (pid {list}) in its own sandbox")
        },
        target: "/proc/*/environ".into(),
        detail: scan.then(|| "a way to steal tokens from the parent (npm) process".into()),
        process: by,
        at_unix_ms,
    })
}

/// How bad a refused deny-table syscall is: the ones that break out of or into other processes,
/// namespaces, the kernel or the terminal are high; the rest (keyrings, NUMA, odd legacy calls,
/// unusual socket families) medium.
fn denied_class(name: &str) -> (Severity, &'static str) {
    match name {
        "unshare" | "setns" | "clone" => (Severity::High, "namespace creation or entry"),
        "mount" | "umount2" | "pivot_root" | "chroot" | "open_by_handle_at" => {
            (Severity::High, "mount table or filesystem escape")
        }
        "ptrace" | "process_vm_readv" | "process_vm_writev" => {
            (Severity::High, "access to another process's memory")
        }
        "bpf" | "perf_event_open" | "userfaultfd" | "init_module" | "finit_module"
        | "delete_module" | "kexec_load" | "kexec_file_load" | "iopl" | "ioperm" => {
            (Severity::High, "kernel attack surface")
        }
        "ioctl" => (Severity::High, "terminal input injection"),
        // Reading the kernel log (`dmesg`: diagnostics of test runners and system-info
        // collectors) is a probe, not an attack.
        "syslog" => (Severity::Low, "reading the kernel log, as `dmesg` does"),
        "socket" => (
            Severity::Medium,
            "a socket family install scripts never need",
        ),
        _ => (Severity::Medium, "a privileged interface"),
    }
}

/// A connection the sinkhole cannot see: a port it does not listen on (refused at once inside
/// the namespace). Ports it serves are reported by the sinkhole itself, with names and payloads.
fn inet_connect_finding(addr: &str) -> Option<Finding> {
    let (host, port) = addr.rsplit_once(':')?;
    let port: u16 = port.parse().ok()?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if port == 0 || super::net::TCP_PORTS.contains(&port) || port == 53 {
        return None;
    }
    let ip: std::net::IpAddr = host.parse().ok()?;
    if ip.is_loopback() || ip.is_unspecified() {
        return Some(Finding {
            code: Code::LoopbackConnection,
            kind: FindingKind::NetworkAttempt,
            severity: Severity::Low,
            summary: format!(
                "connection attempt to `{addr}` (the sandbox's own loopback; nothing listens)"
            ),
            target: addr.to_string(),
            detail: None,
            process: None,
            at_unix_ms: None,
        });
    }
    let fake = matches!(ip, std::net::IpAddr::V4(v4) if v4.octets()[0] == 198 && (v4.octets()[1] & 0xfe) == 18);
    Some(Finding {
        code: Code::UnservedConnection,
        kind: FindingKind::NetworkAttempt,
        severity: if fake {
            Severity::Medium
        } else {
            Severity::High
        },
        summary: format!(
            "connection attempt to `{addr}` on an unusual port{}; refused",
            if fake {
                " (a name the sinkhole resolved)"
            } else {
                " (a hard-coded address)"
            }
        ),
        target: addr.to_string(),
        detail: None,
        process: None,
        at_unix_ms: None,
    })
}

/// The subcommand of a `git` command line and what follows it: git's global options
/// (`-C dir`, `-c k=v`, `--git-dir=…`) are skipped, so `git -C x push` is a push and `git log
/// --grep push` is not.
fn subcommand(argv: &[String]) -> Option<(&str, &[String])> {
    let mut i = 1;
    while let Some(a) = argv.get(i) {
        if matches!(
            a.as_str(),
            "-C" | "-c" | "--git-dir" | "--work-tree" | "--namespace"
        ) {
            i += 2;
        } else if a.starts_with('-') {
            i += 1;
        } else {
            return Some((a.as_str(), &argv[i + 1..]));
        }
    }
    None
}

/// npm commands that act on the user's registry account or publish (npm accepts any
/// unambiguous prefix of a command: `npm publ`).
const NPM_ACCOUNT_COMMANDS: &[&str] = &[
    "publish",
    "unpublish",
    "whoami",
    "adduser",
    "add-user",
    "login",
    "token",
    "access",
    "owner",
    "author",
    "deprecate",
    "dist-tag",
    "dist-tags",
    "team",
    "org",
    "profile",
    "star",
    "hook",
];

/// npm's other commands and aliases (npm 11), which an account-command prefix could also
/// abbreviate and which end the search for one.
const NPM_OTHER_COMMANDS: &[&str] = &[
    "audit",
    "bugs",
    "cache",
    "ci",
    "completion",
    "config",
    "dedupe",
    "diff",
    "docs",
    "doctor",
    "edit",
    "exec",
    "explain",
    "explore",
    "find-dupes",
    "fund",
    "get",
    "help",
    "help-search",
    "init",
    "install",
    "install-ci-test",
    "install-test",
    "link",
    "ll",
    "logout",
    "ls",
    "outdated",
    "pack",
    "ping",
    "pkg",
    "prefix",
    "prune",
    "query",
    "rebuild",
    "repo",
    "restart",
    "root",
    "run",
    "run-script",
    "sbom",
    "search",
    "set",
    "shrinkwrap",
    "stars",
    "start",
    "stop",
    "test",
    "undeprecate",
    "uninstall",
    "unstar",
    "update",
    "version",
    "view",
    "i",
    "it",
    "cit",
    "add",
    "rm",
    "r",
    "un",
    "unlink",
    "remove",
    "x",
    "c",
    "up",
    "upgrade",
    "t",
    "tst",
    "rb",
    "v",
    "info",
    "show",
    "s",
    "se",
    "find",
    "ln",
    "la",
    "list",
    "create",
    "innit",
    "isntall",
];

fn npm_account_command(sub: &str) -> bool {
    if NPM_ACCOUNT_COMMANDS.contains(&sub) {
        return true;
    }
    // An abbreviation: a prefix of exactly one account command and of no other command.
    sub.len() >= 3
        && !NPM_OTHER_COMMANDS.contains(&sub)
        && NPM_ACCOUNT_COMMANDS
            .iter()
            .filter(|c| c.starts_with(sub))
            .count()
            == 1
        && !NPM_OTHER_COMMANDS.iter().any(|c| c.starts_with(sub))
}

/// Whether an npm command line runs an account or publish command: the first word that names
/// a command decides (words before it that name none are option values: `--otp 1 publish`).
fn npm_runs_account_command(npm_argv: &[String]) -> bool {
    for a in npm_argv.iter().skip(1).filter(|a| !a.starts_with('-')) {
        if npm_account_command(a) {
            return true;
        }
        if NPM_OTHER_COMMANDS.contains(&a.as_str()) {
            return false;
        }
    }
    false
}

fn exec_finding(argv: &[String]) -> Option<Finding> {
    let base = |s: &str| s.rsplit('/').next().unwrap_or(s).to_string();
    let prog = base(argv.first()?);
    // `node …/npm-cli.js publish`: npm run through node.
    let npm_argv: Option<&[String]> = if prog == "npm" {
        Some(argv)
    } else if prog == "node" && argv.get(1).is_some_and(|a| a.ends_with("npm-cli.js")) {
        Some(&argv[1..])
    } else {
        None
    };
    let git = (prog == "git").then(|| subcommand(argv)).flatten();
    let (code, kind, severity, what) = if npm_argv.is_some_and(npm_runs_account_command) {
        (
            Code::NpmAccountCommand,
            FindingKind::TamperAttempt,
            Severity::High,
            "worm propagation: npm account or publish command",
        )
    } else if matches!(git, Some(("credential", _)))
        || (prog == "gh" && argv.get(1).is_some_and(|a| a == "auth"))
        || prog == "trufflehog"
        || prog == "git-credential-manager"
    {
        (
            Code::CredentialHelper,
            FindingKind::SecretRead,
            Severity::High,
            "credential helper or secret scanner",
        )
    } else if [
        "sudo", "su", "doas", "pkexec", "nsenter", "docker", "podman", "kubectl", "setcap",
        "mount", "unshare", "chroot", "insmod", "modprobe",
    ]
    .contains(&prog.as_str())
    {
        (
            Code::EscapeTool,
            FindingKind::EscapeAttempt,
            Severity::High,
            "privilege or container escape tool",
        )
    } else if [
        "curl", "wget", "nc", "ncat", "socat", "ssh", "scp", "telnet", "dig", "nslookup", "host",
    ]
    .contains(&prog.as_str())
    {
        (
            Code::NetworkTool,
            FindingKind::NetworkAttempt,
            Severity::Medium,
            "network tool",
        )
    } else if matches!(git, Some(("push", _))) {
        (
            Code::GitPush,
            FindingKind::TamperAttempt,
            Severity::High,
            "git push from an install script",
        )
    } else if let Some(("remote", rest)) = git
        && rest
            .first()
            .is_some_and(|a| ["add", "set-url", "rename"].contains(&a.as_str()))
    {
        (
            Code::GitRemoteChange,
            FindingKind::TamperAttempt,
            Severity::Medium,
            "changes where the project's git remote points",
        )
    } else if ["crontab", "systemctl", "systemd-run", "launchctl", "at"].contains(&prog.as_str()) {
        (
            Code::SchedulerPersistence,
            FindingKind::PersistenceAttempt,
            Severity::High,
            "scheduler / service persistence",
        )
    } else {
        return None;
    };
    let shown: Vec<&str> = argv.iter().take(8).map(String::as_str).collect();
    // The tool and its subcommand (`npm publish`, `git push`), past an interpreter running it.
    let start = usize::from(
        ["node", "sh", "bash", "dash", "python", "python3"].contains(&prog.as_str())
            && argv.get(1).is_some_and(|a| !a.starts_with('-')),
    );
    let mut target = base(&argv[start]).replace("npm-cli.js", "npm");
    if let Some(sub) = argv
        .get(start + 1)
        .filter(|a| !a.starts_with('-') && a.len() <= 40)
    {
        target = format!("{target} {sub}");
    }
    if let Some((sub, _)) = git {
        target = format!("git {sub}");
    }
    Some(Finding {
        code,
        kind,
        severity,
        summary: format!("ran `{}` ({what})", shown.join(" ")),
        target,
        detail: None,
        process: None,
        at_unix_ms: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Events with one actor each, classified in `ctx`.
    fn classified(events: Vec<Event>, ctx: &Context) -> Recorded {
        let served = Served {
            counts: BTreeMap::new(),
            actors: (0..events.len())
                .map(|i| Actor {
                    pid: u32::try_from(i).unwrap() + 2,
                    argv: vec![format!("prog{i}")],
                })
                .collect(),
            events: events
                .into_iter()
                .enumerate()
                .map(|(i, event)| Noted {
                    event,
                    actor: i,
                    at_unix_ms: 1000 + u64::try_from(i).unwrap(),
                })
                .collect(),
            ..Default::default()
        };
        classify(&served, ctx)
    }

    #[test]
    fn a_project_under_home_is_judged_as_a_host_path() {
        let ctx = Context {
            home: "/home/u".into(),
            preload_option: String::new(),
            writable: vec!["/home/u/p/node_modules/x".into()],
            visible: vec!["/home/u/p".into(), "/home/u/.npm".into()],
            caches: vec!["/home/u/.npm".into()],
            cwd: "/home/u/p/node_modules/x".into(),
            denied: BTreeMap::new(),
        };
        assert!(ctx.in_decoy_home(Path::new("/home/u/.bashrc")));
        assert!(ctx.in_decoy_home(Path::new("/home/u/pp/x")));
        assert!(!ctx.in_decoy_home(Path::new("/home/u/p/.git/hooks/pre-commit")));
        let r = classified(
            vec![
                Event::Open {
                    path: "/home/u/p/.git/hooks/pre-commit".into(),
                    write: true,
                },
                Event::Open {
                    path: "/home/u/p/node_modules/x/build/a.o".into(),
                    write: true,
                },
                Event::Open {
                    path: "/home/u/.bashrc".into(),
                    write: true,
                },
                Event::Exec {
                    argv: vec!["/home/u/p/node_modules/esbuild/bin/esbuild".into()],
                    preload_missing: false,
                },
                Event::Exec {
                    argv: vec!["/home/u/.bun/bin/bun".into()],
                    preload_missing: false,
                },
                Event::Open {
                    path: "/home/u/p/node_modules/y/index.js".into(),
                    write: false,
                },
                Event::Open {
                    path: "/home/u/p/node_modules/.cache/jiti/x.json".into(),
                    write: true,
                },
            ],
            &ctx,
        );
        // A tool cache under node_modules is not another package.
        assert!(
            r.findings
                .iter()
                .any(|f| f.target.ends_with("/.cache/jiti/x.json") && f.severity == Severity::Low),
            "{:?}",
            r.findings
        );
        let targets: Vec<&str> = r.findings.iter().map(|f| f.target.as_str()).collect();
        assert!(
            r.findings
                .iter()
                .any(|f| f.target == "/home/u/p/.git/hooks/pre-commit"
                    && f.kind == FindingKind::TamperAttempt
                    && f.severity == Severity::High),
            "{targets:?}"
        );
        assert!(
            r.findings
                .iter()
                .any(|f| f.target == "/home/u/.bun/bin/bun"),
            "{targets:?}"
        );
        assert!(
            !targets
                .iter()
                .any(|t| t.contains("esbuild") || t.contains("/x/build")),
            "{targets:?}"
        );
        assert!(
            !targets.contains(&"/home/u/.bashrc"),
            "judged by the home diff"
        );
        assert!(r.home_reads.is_empty(), "{:?}", r.home_reads);
    }

    #[test]
    fn exec_rules_read_the_subcommand() {
        let f = |a: &str| {
            exec_finding(&a.split(' ').map(String::from).collect::<Vec<_>>())
                .map(|f| (f.severity, f.target))
        };
        assert_eq!(f("git remote -v"), None);
        assert_eq!(f("git remote get-url origin"), None);
        assert_eq!(f("git log --grep push"), None);
        assert_eq!(f("git rev-parse --show-toplevel"), None);
        assert_eq!(f("git config core.hooksPath .husky"), None);
        assert_eq!(
            f("/usr/bin/git -C /p push origin HEAD"),
            Some((Severity::High, "git push".into()))
        );
        assert_eq!(
            f("git remote add x https://example.test/r.git").map(|x| x.0),
            Some(Severity::Medium)
        );
        assert_eq!(f("git credential fill").map(|x| x.0), Some(Severity::High));
        for worm in [
            "npm publish",
            "npm publ",
            "npm pub --access public",
            "/usr/bin/npm --otp 123456 publish",
            "npm whoami",
            "npm who",
            "npm tok list",
            "node /usr/lib/node_modules/npm/bin/npm-cli.js publish",
        ] {
            assert_eq!(f(worm).map(|x| x.0), Some(Severity::High), "{worm}");
        }
        for benign in [
            "npm run build",
            "npm install",
            "npm pack",
            "npm prefix",
            "npm sta",
            "npm run publish",
            "npm test",
            "npm exec -- token",
            "npm view esbuild owner",
        ] {
            assert_eq!(f(benign), None, "{benign}");
        }
    }

    #[test]
    fn classification() {
        let ctx = Context {
            home: "/home/u".into(),
            preload_option: String::new(),
            writable: vec!["/p/node_modules/x".into()],
            visible: vec!["/p".into()],
            caches: vec![],
            cwd: "/p/node_modules/x".into(),
            denied: BTreeMap::new(),
        };
        let events = vec![
            Event::Open {
                path: "/p/node_modules/x/build/a.o".into(),
                write: true,
            },
            Event::Open {
                path: "/p/node_modules/y/index.js".into(),
                write: true,
            },
            Event::Open {
                path: "/p/.github/workflows/x.yml".into(),
                write: true,
            },
            Event::Open {
                path: "/p/package.json".into(),
                write: false,
            },
            Event::Open {
                path: "/usr/lib/python3/x/__pycache__".into(),
                write: true,
            },
            Event::Open {
                path: "/proc/1/environ".into(),
                write: false,
            },
            Event::Open {
                path: "/proc/self/environ".into(),
                write: false,
            },
            Event::Open {
                path: "/home/u/.bashrc".into(),
                write: true,
            },
            Event::Exec {
                argv: vec!["/usr/bin/npm".into(), "publish".into()],
                preload_missing: false,
            },
            Event::Exec {
                argv: vec!["/usr/bin/gcc".into(), "-c".into()],
                preload_missing: false,
            },
            Event::Exec {
                argv: vec!["/usr/bin/gcc".into(), "-c".into()],
                preload_missing: false,
            },
            Event::Connect {
                addr: "unix:/var/run/docker.sock".into(),
                unix_path: None,
                refused: None,
            },
            Event::Connect {
                addr: "203.0.113.7:1337".into(),
                unix_path: None,
                refused: None,
            },
            Event::Connect {
                addr: "198.18.0.1:443".into(),
                unix_path: None,
                refused: None,
            },
        ];
        let Recorded {
            findings: f,
            spawned,
            connects,
            execs,
            home_reads,
            ..
        } = classified(events, &ctx);
        assert!(home_reads.is_empty(), "the only HOME open is a write");
        assert_eq!(execs.len(), 3);
        assert_eq!(execs[0].what, "/usr/bin/npm publish");
        // Attribution: the sibling write was event 1, the npm publish event 8.
        assert_eq!(f[0].process.as_ref().map(|a| a.pid), Some(3));
        assert_eq!(f[0].at_unix_ms, Some(1001));
        assert_eq!(
            f[2].process.as_ref().map(|a| a.argv[0].as_str()),
            Some("prog8")
        );
        // The /proc/1/environ read was event 5.
        assert_eq!(f[5].process.as_ref().map(|a| a.pid), Some(7));
        assert_eq!(
            connects.iter().map(|c| c.what.as_str()).collect::<Vec<_>>(),
            vec!["203.0.113.7:1337", "198.18.0.1:443"]
        );
        let kinds: Vec<(FindingKind, &str)> =
            f.iter().map(|x| (x.kind, x.target.as_str())).collect();
        assert_eq!(
            kinds,
            vec![
                (FindingKind::TamperAttempt, "/p/node_modules/y/index.js"),
                (FindingKind::TamperAttempt, "/p/.github/workflows/x.yml"),
                (FindingKind::TamperAttempt, "npm publish"),
                (FindingKind::EscapeAttempt, "unix:/var/run/docker.sock"),
                (FindingKind::NetworkAttempt, "203.0.113.7:1337"),
                (FindingKind::SecretRead, "/proc/*/environ"),
            ]
        );
        assert_eq!(
            spawned
                .iter()
                .find(|s| s.argv[0] == "/usr/bin/gcc")
                .unwrap()
                .count,
            2
        );
    }

    #[test]
    fn denied_syscalls_are_escape_attempts() {
        let served = Served {
            counts: BTreeMap::new(),
            actors: vec![Actor {
                pid: 3,
                argv: vec!["evil".into()],
            }],
            events: [
                ("unshare", libc::EPERM),
                ("keyctl", libc::EPERM),
                ("unshare", libc::EPERM),
            ]
            .into_iter()
            .map(|(name, errno)| Noted {
                event: Event::Denied {
                    name: name.into(),
                    errno,
                },
                actor: 0,
                at_unix_ms: 7,
            })
            .collect(),
            ..Default::default()
        };
        let r = classify(&served, &Context::default());
        let got: Vec<(FindingKind, Severity, &str)> = r
            .findings
            .iter()
            .map(|f| (f.kind, f.severity, f.target.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![
                (
                    FindingKind::EscapeAttempt,
                    Severity::High,
                    "syscall:unshare"
                ),
                (
                    FindingKind::EscapeAttempt,
                    Severity::Medium,
                    "syscall:keyctl"
                ),
            ]
        );
        assert!(r.findings[0].summary.contains("refused with EPERM"));
        assert_eq!(r.findings[0].process.as_ref().unwrap().pid, 3);
    }

    #[test]
    fn sockaddrs() {
        let mut v4 = vec![2u8, 0, 0x01, 0xbb, 10, 1, 2, 3];
        v4.resize(16, 0);
        assert_eq!(sockaddr(&v4).as_deref(), Some("10.1.2.3:443"));
        let mut un = vec![1u8, 0];
        un.extend_from_slice(b"/run/x.sock\0");
        assert_eq!(sockaddr(&un).as_deref(), Some("unix:/run/x.sock"));
    }

    /// Harmless noise after an attack no longer erases it: past the budget the first events
    /// stay, notable ones are still kept, and what was dropped is a finding.
    #[test]
    fn the_budget_keeps_the_first_events_and_what_matters() {
        let ctx = Context {
            home: "/home/u".into(),
            writable: vec!["/p/node_modules/x".into()],
            visible: vec!["/p".into()],
            ..Default::default()
        };
        let mut served = Served {
            actors: vec![Actor {
                pid: 3,
                argv: vec!["evil".into()],
            }],
            ..Default::default()
        };
        let mut alike = HashMap::new();
        let noted = |event: Event, at: u64| Noted {
            event,
            actor: 0,
            at_unix_ms: at,
        };
        let noise = || Event::Open {
            path: "/p/node_modules/x/build/obj.o".into(),
            write: true,
        };
        keep(
            &mut served,
            &mut alike,
            noted(
                Event::Open {
                    path: "/p/.github/workflows/x.yml".into(),
                    write: true,
                },
                1,
            ),
            &ctx,
        );
        for i in 0..(budget::EVENTS + 50_000) {
            keep(&mut served, &mut alike, noted(noise(), 2 + i as u64), &ctx);
        }
        // Past the budget: a second attack is kept, its repetitions only a few times.
        for _ in 0..100 {
            keep(
                &mut served,
                &mut alike,
                noted(
                    Event::Exec {
                        argv: vec!["npm".into(), "publish".into()],
                        preload_missing: false,
                    },
                    9_000_000,
                ),
                &ctx,
            );
        }
        assert_eq!(served.events.len(), budget::EVENTS + budget::ALIKE);
        assert_eq!(served.dropped, 50_000 + 1 + 100 - budget::ALIKE as u64);
        let r = classify(&served, &ctx);
        let targets: Vec<&str> = r.findings.iter().map(|f| f.target.as_str()).collect();
        assert!(
            targets.contains(&"/p/.github/workflows/x.yml"),
            "{targets:?}"
        );
        assert!(targets.contains(&"npm publish"), "{targets:?}");
        let d = r
            .findings
            .iter()
            .find(|f| f.code == Code::RecordingDegraded)
            .unwrap();
        assert_eq!(
            d.summary,
            format!("recording degraded: {} events dropped", served.dropped)
        );
        assert_eq!(d.severity, Severity::Low);
    }

    /// At most MEM_HANDLES memory handles are open whatever the number of processes, and the
    /// sweep closes those of processes that exited.
    #[test]
    fn memory_handles_are_bounded_and_released() {
        let mut children: Vec<std::process::Child> = (0..budget::MEM_HANDLES + 20)
            .map(|_| {
                std::process::Command::new("sleep")
                    .arg("30")
                    .spawn()
                    .unwrap()
            })
            .collect();
        let mut cache = MemCache::default();
        let mut opened = 0;
        for c in &children {
            opened += usize::from(cache.get(c.id()).is_some());
            assert!(cache.len() <= budget::MEM_HANDLES);
        }
        assert_eq!(opened, children.len(), "every handle could be opened");
        for c in &mut children {
            c.kill().unwrap();
            c.wait().unwrap();
        }
        cache.sweep();
        assert_eq!(cache.len(), 0);
    }

    /// A node exec's environment is read from the target's memory: NODE_OPTIONS without the
    /// preload, or none at all, is a missing preload.
    #[test]
    fn node_execs_without_the_preload_are_seen() {
        assert!(is_node("/usr/bin/node") && is_node("node") && is_node("/opt/node20"));
        assert!(!is_node("/usr/bin/nodemon") && !is_node("/bin/sh"));
        let me = File::open("/proc/self/mem").unwrap();
        let env = |vars: &[&str]| -> bool {
            let strings: Vec<std::ffi::CString> = vars
                .iter()
                .map(|v| std::ffi::CString::new(*v).unwrap())
                .collect();
            let mut ptrs: Vec<u64> = strings.iter().map(|c| c.as_ptr() as usize as u64).collect();
            ptrs.push(0);
            env_has_preload(&me, ptrs.as_ptr() as usize as u64, &preload_option())
        };
        let with = format!("NODE_OPTIONS=--max-old-space-size=100 {}", preload_option());
        assert!(env(&["PATH=/bin", &with]));
        assert!(!env(&["PATH=/bin"]));
        assert!(!env(&["NODE_OPTIONS=--max-old-space-size=100", &with]));
        let r = classified(
            vec![Event::Exec {
                argv: vec!["node".into(), "-e".into(), "x".into()],
                preload_missing: true,
            }],
            &Context::default(),
        );
        assert_eq!(r.findings[0].code, Code::RecordingEvaded);
        assert_eq!(r.findings[0].process.as_ref().unwrap().pid, 2);
    }

    /// Pathname unix sockets: the project's socket is refused, also through a link in the
    /// private /tmp; a socket of the sandbox's own in /tmp is not.
    #[test]
    fn unix_sockets_outside_the_sandbox_areas_are_refused() {
        let root = tempfile::Builder::new()
            .prefix("rf-unix-")
            .tempdir_in("/tmp")
            .unwrap();
        let project = root.path().join("project");
        std::fs::create_dir_all(project.join("node_modules/x")).unwrap();
        let _listener = std::os::unix::net::UnixListener::bind(project.join("dev.sock")).unwrap();
        std::os::unix::fs::symlink(project.join("dev.sock"), root.path().join("link")).unwrap();
        std::os::unix::fs::symlink("node_modules/../project", root.path().join("up")).unwrap();
        std::fs::create_dir(root.path().join("node_modules")).unwrap();
        let ctx = Context {
            home: "/home/nobody-rf".into(),
            writable: vec![project.join("node_modules/x")],
            visible: vec![project.clone()],
            ..Default::default()
        };
        let me = std::process::id();
        let refused = |p: &Path| unix_refusal(me, p, &ctx);
        let there = Some((project.join("dev.sock"), true));
        assert_eq!(refused(&project.join("dev.sock")), there);
        assert_eq!(refused(&root.path().join("link")), there);
        assert_eq!(refused(&root.path().join("up/./dev.sock")), there);
        assert_eq!(
            refused(&project.join("none.sock")),
            Some((project.join("none.sock"), false))
        );
        assert_eq!(refused(&root.path().join("own.sock")), None);
        assert_eq!(refused(&project.join("node_modules/x/own.sock")), None);
        assert_eq!(
            unix_pathname(&[1, 0, b'/', b'r', 0, b'x']),
            Some(PathBuf::from("/r"))
        );
        assert_eq!(unix_pathname(&[1, 0, 0, b'a']), None, "abstract");
        assert_eq!(unix_pathname(&[2, 0, 0, 80]), None, "inet");
    }
}
