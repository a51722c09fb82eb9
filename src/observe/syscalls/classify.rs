//! What the recorded events mean: findings, sightings and what was spawned.

use super::*;

/// The state of one classification: findings so far (one per kind and target), and what was
/// spawned, connected to, executed and read in HOME.
struct Classifier<'a> {
    served: &'a Served,
    ctx: &'a Context,
    out: Vec<Finding>,
    seen: std::collections::BTreeSet<(FindingKind, String)>,
    spawned: BTreeMap<Vec<String>, usize>,
    environ_reads: std::collections::BTreeSet<String>,
    environ_first: Option<&'a Noted>,
    connects: Vec<Sighting>,
    execs: Vec<Sighting>,
    home_reads: Vec<Sighting>,
    home_writes: Vec<Sighting>,
    datagrams: Vec<(Sighting, Vec<u8>)>,
}

impl<'a> Classifier<'a> {
    fn actor(&self, n: &Noted) -> Option<Actor> {
        self.served.actors.get(n.actor).cloned()
    }

    /// Keep `f` unless a finding of its kind and target is already kept.
    fn push(&mut self, mut f: Finding, n: &Noted) {
        if self.seen.insert((f.kind, f.target.clone())) {
            f.process = self.actor(n);
            f.at_unix_ms = Some(n.at_unix_ms);
            self.out.push(f);
        }
    }

    fn open(&mut self, n: &'a Noted) {
        let ctx = self.ctx;
        let Event::Open { path, write, .. } = &n.event else {
            return;
        };
        // HOME is the decoy home: reads show in the decoys' atime, writes in its diff.
        if ctx.in_decoy_home(path) {
            // The first 5000 of each, and up to 1000 more writes at persistence paths (what
            // the home's diff reports, however many harmless writes came first).
            let persistence = *write
                && path
                    .strip_prefix(&ctx.home)
                    .is_ok_and(crate::observe::decoys::is_persistence);
            let room = if *write {
                self.home_writes.len() < 5000 || (persistence && self.home_writes.len() < 6000)
            } else {
                self.home_reads.len() < 5000
            };
            if room {
                if let Some(actor) = self.actor(n) {
                    let seen = Sighting {
                        what: path.display().to_string(),
                        actor,
                        at_unix_ms: n.at_unix_ms,
                    };
                    if *write {
                        self.home_writes.push(seen);
                    } else {
                        self.home_reads.push(seen);
                    }
                }
            }
            return;
        }
        let s = path.to_string_lossy();
        if s.starts_with("/proc/") {
            // Paths name pids of the sandbox's own namespace.
            if let Some(owner) = environ_owner(&s) {
                self.environ_reads.insert(owner.to_string());
                self.environ_first.get_or_insert(n);
            }
            return;
        }
        let project_secret = ctx.project_secret(path);
        if let Some(class) = secret_path(path).or(project_secret.then_some("a credential file")) {
            let f = if project_secret {
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
            self.push(f, n);
            return;
        }
        if *write && !ctx.in_decoy_home(path) && !ctx.writable.iter().any(|w| path.starts_with(w)) {
            // The private /tmp is the sandbox's own, unless a host path is bound there.
            let private_tmp =
                path.starts_with("/tmp") && !ctx.visible.iter().any(|v| path.starts_with(v));
            if private_tmp {
                return;
            }
            if let Some(cache) = ctx.caches.iter().find(|c| path.starts_with(c)) {
                // One finding per cache (nested npm runs write logs by the dozen).
                self.push(Finding {
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
                return;
            }
            if let Some((sev, class)) = tamper_class(path) {
                // A directory it tried to create is marked by a trailing `/` (see below): the
                // target is its path, the detail says what it was.
                let dir = s.ends_with('/') && s.len() > 1;
                let target = if dir {
                    s.trim_end_matches('/').to_string()
                } else {
                    s.into_owned()
                };
                self.push(
                    Finding {
                        code: Code::WriteRefused,
                        kind: FindingKind::TamperAttempt,
                        severity: sev,
                        summary: format!("tried to write `{target}` ({class}); refused"),
                        target,
                        detail: dir.then(|| crate::findings::CREATE_DIRECTORY.to_string()),
                        process: None,
                        at_unix_ms: None,
                    },
                    n,
                );
            }
        }
    }

    fn exec(&mut self, n: &'a Noted) {
        let ctx = self.ctx;
        let Event::Exec {
            argv,
            program,
            preload_missing,
        } = &n.event
        else {
            return;
        };
        *self.spawned.entry(argv.clone()).or_default() += 1;
        if *preload_missing {
            self.push(Finding::new(
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
        if self.execs.len() < 5000 {
            if let Some(actor) = self.actor(n) {
                self.execs.push(Sighting {
                    what: argv.join(" "),
                    actor,
                    at_unix_ms: n.at_unix_ms,
                });
            }
        }
        if let Some(f) = exec_finding(argv) {
            self.push(f, n);
        }
        if let Some((command, owner)) = shadow_bin(program).filter(|_| !ctx.in_decoy_home(program))
        {
            self.push(
                Finding::new(
                    Code::ShadowBinRun,
                    format!(
                        "ran `{command}` as `{}`: the bin of package `{owner}`, which shadows the system command",
                        program.display()
                    ),
                    &owner,
                )
                .detail(
                    "npm puts node_modules/.bin first on every script's PATH: a command a script calls by name runs that package's code instead (with the rights of the script that called it, the root project's included)",
                ),
                n,
            );
        }
        // A program run from HOME or the private /tmp was dropped there by the script:
        // a second stage or a brought-along runtime.
        if let Some(prog) = argv.first().map(PathBuf::from) {
            let dropped = prog.is_absolute()
                && (ctx.in_decoy_home(&prog)
                    || (prog.starts_with("/tmp")
                        && !ctx.visible.iter().any(|v| prog.starts_with(v))));
            if dropped {
                self.push(
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

    fn datagram(&mut self, n: &'a Noted) {
        let Event::Datagram {
            addr,
            data,
            unix_path,
            refused,
        } = &n.event
        else {
            return;
        };
        if let (Some(given), Some(real)) = (unix_path, refused) {
            self.push(
                unix_refused_finding(given, &real.0, real.1, "sent a datagram to"),
                n,
            );
        }
        // Judged like a connect (the destination), plus the payload later (canaries).
        if let Some(actor) = self.actor(n) {
            if !addr.starts_with("unix:") {
                self.connects.push(Sighting {
                    what: addr.clone(),
                    actor: actor.clone(),
                    at_unix_ms: n.at_unix_ms,
                });
            }
            if self.datagrams.len() < 1000 {
                self.datagrams.push((
                    Sighting {
                        what: addr.clone(),
                        actor,
                        at_unix_ms: n.at_unix_ms,
                    },
                    data.clone(),
                ));
            }
        }
        if let Some(f) = inet_connect_finding(addr, self.ctx.host_network) {
            self.push(f, n);
        }
    }

    fn denied(&mut self, n: &'a Noted) {
        let Event::Denied { name, errno } = &n.event else {
            return;
        };
        let (severity, what) = denied_class(name);
        let err = match *errno {
            libc::EPERM => "EPERM".to_string(),
            libc::EAFNOSUPPORT => "EAFNOSUPPORT".to_string(),
            libc::ENOSYS => "ENOSYS".to_string(),
            e => format!("errno {e}"),
        };
        self.push(
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

    fn connect(&mut self, n: &'a Noted) {
        let Event::Connect {
            addr,
            unix_path,
            refused,
        } = &n.event
        else {
            return;
        };
        if let (Some(given), Some(real)) = (unix_path, refused) {
            self.push(
                unix_refused_finding(given, &real.0, real.1, "tried to connect to"),
                n,
            );
        }
        if let Some(actor) = self.actor(n).filter(|_| !addr.starts_with("unix:")) {
            self.connects.push(Sighting {
                what: addr.clone(),
                actor,
                at_unix_ms: n.at_unix_ms,
            });
        }
        if let Some(f) = inet_connect_finding(addr, self.ctx.host_network) {
            self.push(f, n);
        }
        if addr.starts_with("unix:") {
            let sock = addr.trim_start_matches("unix:");
            if sock.contains("ssh") && sock.contains("agent")
                || sock.contains("gpg-agent")
                || sock.contains("/gnupg/")
            {
                self.push(
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
                self.push(
                    Finding {
                        code: Code::ContainerSocket,
                        kind: FindingKind::EscapeAttempt,
                        severity: Severity::High,
                        summary: format!("tried to reach a container runtime socket `{sock}`"),
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

/// Every recorded event judged: opens, execs, datagrams, refused syscalls and connects.
pub(super) fn classify(served: &Served, ctx: &Context) -> Recorded {
    let owned: Vec<Noted> = served
        .events
        .iter()
        .filter_map(|n| match &n.event {
            // Sandbox paths equal host paths for everything visible, so an existing host path
            // means the mkdir failed with EEXIST.
            // A directory it tried to create is named with a trailing `/`, so the allowance
            // suggested for it is a directory's (`public/`), not a file's.
            Event::Mkdir { path } => (!path.exists()).then(|| Noted {
                event: Event::Open {
                    path: PathBuf::from(format!(
                        "{}/",
                        path.display().to_string().trim_end_matches('/')
                    )),
                    write: true,
                },
                ..n.clone()
            }),
            _ => Some(n.clone()),
        })
        .collect();
    let mut c = Classifier {
        served,
        ctx,
        out: Vec::new(),
        seen: Default::default(),
        spawned: BTreeMap::new(),
        environ_reads: Default::default(),
        environ_first: None,
        connects: Vec::new(),
        execs: Vec::new(),
        home_reads: Vec::new(),
        home_writes: Vec::new(),
        datagrams: Vec::new(),
    };
    for n in &owned {
        match &n.event {
            // Links are kept as writes to their new name (`serve`).
            Event::Mkdir { .. } | Event::Link { .. } => {}
            Event::Open { .. } => c.open(n),
            Event::Exec { .. } => c.exec(n),
            Event::Datagram { .. } => c.datagram(n),
            Event::Denied { .. } => c.denied(n),
            Event::Connect { .. } => c.connect(n),
        }
    }
    if let Some(n) = c.environ_first {
        c.out.extend(environ_finding(
            &c.environ_reads,
            c.actor(n),
            Some(n.at_unix_ms),
        ));
    }
    c.out.extend(degraded_finding(served));
    let mut list: Vec<Spawned> = c
        .spawned
        .into_iter()
        .map(|(argv, count)| Spawned { argv, count })
        .collect();
    list.truncate(500);
    Recorded {
        findings: c.out,
        spawned: list,
        connects: c.connects,
        execs: c.execs,
        home_reads: c.home_reads,
        home_writes: c.home_writes,
        datagrams: c.datagrams,
    }
}

/// A refused connect or datagram to a pathname unix socket.
pub(super) fn unix_refused_finding(given: &Path, real: &Path, there: bool, what: &str) -> Finding {
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
pub(super) fn degraded_finding(served: &Served) -> Option<Finding> {
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
        .at(served.first_drop_ms.or(Some(crate::util::now_unix_ms()))),
    )
}
