//! Tests of the recorder's decoding, budgets and classification.

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
        host_network: false,
        writable: vec!["/home/u/p/node_modules/x".into()],
        visible: vec!["/home/u/p".into(), "/home/u/.npm".into()],
        caches: vec!["/home/u/.npm".into()],
        cwd: "/home/u/p/node_modules/x".into(),
        denied: BTreeMap::new(),
        ..Context::default()
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
                program: PathBuf::new(),
                preload_missing: false,
            },
            Event::Exec {
                argv: vec!["/home/u/.bun/bin/bun".into()],
                program: PathBuf::new(),
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
        host_network: false,
        writable: vec!["/p/node_modules/x".into()],
        visible: vec!["/p".into()],
        caches: vec![],
        cwd: "/p/node_modules/x".into(),
        denied: BTreeMap::new(),
        ..Context::default()
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
            program: PathBuf::new(),
            preload_missing: false,
        },
        Event::Exec {
            argv: vec!["/usr/bin/gcc".into(), "-c".into()],
            program: PathBuf::new(),
            preload_missing: false,
        },
        Event::Exec {
            argv: vec!["/usr/bin/gcc".into(), "-c".into()],
            program: PathBuf::new(),
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
    let kinds: Vec<(FindingKind, &str)> = f.iter().map(|x| (x.kind, x.target.as_str())).collect();
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
                    program: PathBuf::new(),
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
    let preload = "--require=/tmp/.tmpAbC123/preload.js";
    let env = |vars: &[&str]| -> bool {
        let strings: Vec<std::ffi::CString> = vars
            .iter()
            .map(|v| std::ffi::CString::new(*v).unwrap())
            .collect();
        let mut ptrs: Vec<u64> = strings.iter().map(|c| c.as_ptr() as usize as u64).collect();
        ptrs.push(0);
        env_has_preload(&me, ptrs.as_ptr() as usize as u64, preload)
    };
    let with = format!("NODE_OPTIONS=--max-old-space-size=100 {preload}");
    assert!(env(&["PATH=/bin", &with]));
    assert!(!env(&["PATH=/bin"]));
    assert!(!env(&["NODE_OPTIONS=--max-old-space-size=100", &with]));
    let r = classified(
        vec![Event::Exec {
            argv: vec!["node".into(), "-e".into(), "x".into()],
            program: PathBuf::new(),
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
