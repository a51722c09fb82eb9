//! The serving thread: each notification is read (arguments, who makes it) while the target is
//! blocked, answered (continue, the deny table's errno, a refused unix socket, an emulation's
//! result), and kept within the recorder's budgets.

use super::*;

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

/// The serving thread: answer every notification on `listener` until no task uses the filter,
/// and collect what was seen.
pub(super) fn serve(listener: &OwnedFd, ctx: &Context) -> Served {
    let mut server = Server::new(listener, ctx);
    while let Some(req) = server.next_notification() {
        server.handle(&req);
    }
    server.served
}

/// The serving thread's state: what it collected so far and the caches it reads through.
struct Server<'a> {
    listener: &'a OwnedFd,
    ctx: &'a Context,
    /// The NODE_OPTIONS entry a node exec should carry.
    preload: String,
    served: Served,
    /// Host pid → index into [`Served::actors`] of its current process image.
    current: BTreeMap<u32, usize>,
    mem: MemCache,
    argv_cache: ArgvCache,
    /// Events kept per (kind, target) past [`budget::EVENTS`].
    alike: HashMap<(u8, String), usize>,
    /// Notifications since the last sweep.
    since_sweep: u32,
}

impl<'a> Server<'a> {
    fn new(listener: &'a OwnedFd, ctx: &'a Context) -> Self {
        // Empty when no preload was planted: then every node process "has" it.
        let preload = ctx.preload_option.clone();
        Server {
            listener,
            ctx,
            preload,
            served: Served::default(),
            current: BTreeMap::new(),
            mem: MemCache::default(),
            argv_cache: ArgvCache::new(),
            alike: HashMap::new(),
            since_sweep: 0,
        }
    }

    /// Wait for the next notification; `None` once every task using the filter has exited (or
    /// the listener failed).
    fn next_notification(&self) -> Option<libc::seccomp_notif> {
        use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
        loop {
            let mut fds = [PollFd::new(self.listener.as_fd(), PollFlags::POLLIN)];
            match poll(&mut fds, PollTimeout::NONE) {
                Err(nix::Error::EINTR) => continue,
                Err(_) => return None,
                Ok(_) => {}
            }
            let revents = fds[0].revents().unwrap_or(PollFlags::empty());
            if !revents.contains(PollFlags::POLLIN) {
                // POLLHUP without POLLIN: every task using the filter has exited.
                return None;
            }
            match sys::seccomp_notif_recv(self.listener.as_fd()) {
                Ok(r) => return Some(r),
                // ENOENT: the target died between poll and recv.
                Err(_) => continue,
            }
        }
    }

    /// One notification: read what the syscall is about and who makes it while the target is
    /// blocked, answer it, then keep the event if what was read is still valid.
    fn handle(&mut self, req: &libc::seccomp_notif) {
        let ctx = self.ctx;
        *self.served.counts.entry(req.data.nr).or_default() += 1;
        self.sweep_when_due();
        // Another ABI's syscall first: its number means another call here, so it is refused
        // before any table is consulted (the static filter left it to us).
        let foreign = crate::sandbox::seccomp::foreign_abi(req.data.arch, req.data.nr);
        // The landlock tier's UDP sockets: one of the sinkhole's instead (see `handover`). Only
        // for native calls: i386's 54 is ioctl, not setsockopt.
        if let (None, Some(r)) = (&foreign, &ctx.redirect) {
            if handover::is_inet_datagram(req.data.nr, req.data.args) {
                handover::datagram_socket(self.listener, req, r);
                return;
            }
            let nr = i64::from(req.data.nr);
            if nr == libc::SYS_setsockopt || nr == libc::SYS_bind {
                handover::granted_on_ours(self.listener, req, r);
                return;
            }
        }
        let refused = foreign
            .map(|name| (name, libc::ENOSYS))
            .or_else(|| ctx.denied.get(&i64::from(req.data.nr)).cloned());
        let mut event = match &refused {
            Some((name, errno)) => Some(Event::Denied {
                name: name.clone(),
                errno: *errno,
            }),
            None => self.read_event(req),
        };
        let unix_refused = refuse_unix_socket(&mut event, req.pid, ctx);
        // Who it is, read while it is blocked (once per process image).
        let known = self.current.get(&req.pid).copied();
        let is_exec = matches!(event, Some(Event::Exec { .. }));
        let fresh = known.is_none().then(|| actor_of(req.pid, !is_exec));
        // Only trust what we read if the target is still blocked in this very syscall.
        let valid = sys::seccomp_notif_id_valid(self.listener.as_fd(), req.id);
        let emulated = Emulated::attempt(&mut event, valid, ctx, req);
        let handed = match (&ctx.redirect, &event) {
            (
                Some(r),
                Some(Event::Connect {
                    addr,
                    unix_path: None,
                    ..
                }),
            ) if valid && refused.is_none() => handover::connect(self.listener, req, addr, r),
            _ => false,
        };
        if !handed {
            answer(
                self.listener,
                req.id,
                refused.as_ref().map(|(_, errno)| *errno),
                unix_refused,
                &emulated,
            );
        }
        // A file created as policy allows is not a refused write.
        if matches!(emulated.created, Some(Ok(_))) {
            return;
        }
        let Some(e) = event.filter(|_| valid) else {
            return;
        };
        let mut actor = match known {
            Some(i) => i,
            None => {
                let i = self.new_actor(fresh.unwrap_or(Actor {
                    pid: 0,
                    argv: Vec::new(),
                }));
                self.current.insert(req.pid, i);
                i
            }
        };
        if let Event::Exec { argv, .. } = &e {
            // Name the process by what it now runs. (Its memory handle is reopened when a read
            // through it fails: a successful exec replaces the address space, a failed attempt
            // in a PATH search does not.)
            let pid = self.served.actors.get(actor).map_or(0, |a| a.pid);
            actor = self.new_actor(Actor {
                pid,
                argv: argv.clone(),
            });
            self.current.insert(req.pid, actor);
        }
        keep(
            &mut self.served,
            &mut self.alike,
            Noted {
                event: e,
                actor,
                at_unix_ms: crate::observe::now_unix_ms(),
            },
            ctx,
        );
    }

    /// Every [`budget::SWEEP`] notifications: processes that exited have their memory handles
    /// closed and their caches dropped.
    fn sweep_when_due(&mut self) {
        self.since_sweep += 1;
        if self.since_sweep >= budget::SWEEP {
            // Processes that exited: their memory handles close, their caches go.
            self.since_sweep = 0;
            self.mem.sweep();
            if self.argv_cache.len() > 4096 {
                self.argv_cache.clear();
            }
            if self.current.len() > 2 * budget::ACTORS {
                self.current.retain(|pid, _| process_alive(*pid));
            }
        }
    }

    /// The event the notified syscall is, read from the target's memory.
    fn read_event(&mut self, req: &libc::seccomp_notif) -> Option<Event> {
        let (mem, argv_cache, preload) = (&mut self.mem, &mut self.argv_cache, &self.preload);
        read_event(req, mem, argv_cache, preload).or_else(|| {
            // A stale memory handle (the process exec'd): reopen once.
            mem.forget(req.pid)
                .then(|| read_event(req, mem, argv_cache, preload))
                .flatten()
        })
    }

    /// A new process identity within [`budget::ACTORS`]: its index, or [`UNKNOWN_ACTOR`] past
    /// the budget.
    fn new_actor(&mut self, actor: Actor) -> usize {
        if self.served.actors.len() < budget::ACTORS {
            self.served.actors.push(actor);
            self.served.actors.len() - 1
        } else {
            self.served.actors_dropped += 1;
            UNKNOWN_ACTOR
        }
    }
}

/// A pathname unix socket outside the sandbox's own areas is refused (see `unix_refusal` for
/// what is checked and what is not): marks the event so and says whether it was.
fn refuse_unix_socket(event: &mut Option<Event>, pid: u32, ctx: &Context) -> bool {
    match event {
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
            *refused = unix_refusal(pid, p, ctx);
            refused.is_some()
        }
        _ => false,
    }
}

/// What the recorder did on the script's behalf instead of letting the syscall run (see
/// `emulate`).
struct Emulated {
    /// A link across the sandbox's mounts answered with a copy: what the copy came to.
    copied: Option<Result<(), i32>>,
    /// An allowed file created: the open file to hand over (and whether it is close-on-exec),
    /// or the errno to answer.
    created: Option<Result<(OwnedFd, bool), i32>>,
}

impl Emulated {
    /// Emulate what `event` asks for if what was read is `valid`: a link across the sandbox's
    /// mounts is answered with a copy, and from here on it is a write to its new name; an
    /// allowed file is created on the script's behalf.
    fn attempt(
        event: &mut Option<Event>,
        valid: bool,
        ctx: &Context,
        req: &libc::seccomp_notif,
    ) -> Emulated {
        let copied = match &*event {
            Some(Event::Link { from, to }) if valid => emulate::link_by_copy(ctx, from, to),
            _ => None,
        };
        let created = match &*event {
            Some(Event::Open { path, write: true }) if valid && !ctx.creatable.is_empty() => {
                emulate::create_allowed(ctx, path, req)
            }
            _ => None,
        };
        if let Some(Event::Link { to, .. }) = &*event {
            *event = Some(Event::Open {
                path: to.clone(),
                write: true,
            });
        }
        Emulated { copied, created }
    }
}

/// Answer notification `id`: a deny-table syscall (`denied_errno`) fails with its errno, a
/// refused unix socket with EACCES; an emulated syscall gets what the emulation came to (the
/// created file, the copy's success, or the errno); anything else runs exactly as if we were
/// not there.
fn answer(
    listener: &OwnedFd,
    id: u64,
    denied_errno: Option<i32>,
    unix_refused: bool,
    emulated: &Emulated,
) {
    match denied_errno {
        // The deny table, enforced here: the syscall never runs.
        Some(errno) => {
            let _ = sys::seccomp_notif_fail(listener.as_fd(), id, errno);
        }
        None if unix_refused => {
            let _ = sys::seccomp_notif_fail(listener.as_fd(), id, libc::EACCES);
        }
        None if emulated.created.is_some() => {
            let _ = match &emulated.created {
                Some(Ok((fd, cloexec))) => {
                    sys::seccomp_notif_addfd_send(listener.as_fd(), id, fd.as_fd(), *cloexec)
                        .or_else(|e| {
                            sys::seccomp_notif_fail(
                                listener.as_fd(),
                                id,
                                e.raw_os_error().unwrap_or(libc::EACCES),
                            )
                        })
                }
                Some(Err(errno)) => sys::seccomp_notif_fail(listener.as_fd(), id, *errno),
                None => Ok(()),
            };
        }
        None if emulated.copied.is_some() => {
            let _ = match emulated.copied {
                Some(Err(errno)) => sys::seccomp_notif_fail(listener.as_fd(), id, errno),
                _ => sys::seccomp_notif_succeed(listener.as_fd(), id),
            };
        }
        None => {
            let _ = sys::seccomp_notif_continue(listener.as_fd(), id);
        }
    }
}

/// Store an event within the budget: the first [`budget::EVENTS`] as they come; past them only
/// events that could matter, a few of each kind and target; everything else is counted.
pub(super) fn keep(
    served: &mut Served,
    alike: &mut HashMap<(u8, String), usize>,
    n: Noted,
    ctx: &Context,
) {
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

/// The kind and target an event is deduplicated by past the budget (the kind's number first:
/// 5 is a datagram).
fn alike_key(e: &Event) -> (u8, String) {
    match e {
        Event::Open { path, write } => (u8::from(*write), path.display().to_string()),
        Event::Mkdir { path } => (2, path.display().to_string()),
        Event::Link { to, .. } => (1, to.display().to_string()),
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
        Event::Mkdir { path } | Event::Link { to: path, .. } => write_matters(path, ctx),
        Event::Exec {
            argv,
            program,
            preload_missing,
        } => {
            shadow_bin(program).is_some()
                || *preload_missing
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
    // A persistence path in the decoy home: its write is a finding of the home's diff, and
    // this event names who made it, however many harmless writes came first.
    if ctx.in_decoy_home(path)
        && path
            .strip_prefix(&ctx.home)
            .is_ok_and(crate::observe::decoys::is_persistence)
    {
        return true;
    }
    let private_tmp = path.starts_with("/tmp") && !ctx.visible.iter().any(|v| path.starts_with(v));
    let allowed = ctx.writable.iter().any(|w| path.starts_with(w))
        || private_tmp
        || ctx.caches.iter().any(|c| path.starts_with(c));
    !allowed && tamper_class(path).is_some_and(|(s, _)| s >= Severity::Medium)
}
