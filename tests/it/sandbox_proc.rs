use std::time::{Duration, Instant};

use crate::common::{
    TestContext, Tier, host_processes_with, require_userns, show, stdout, tier, tiers_here, uid,
};

/// Held by the tests whose outcome depends on how many tasks the user runs host-wide (the
/// landlock tier's RLIMIT_NPROC counts them): one that starts 1300 threads must not run while
/// another measures the limit.
static USER_TASKS: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn field<'a>(status: &'a str, name: &str) -> &'a str {
    status
        .lines()
        .find_map(|l| l.strip_prefix(name))
        .map(str::trim)
        .unwrap_or("")
}

#[test]
fn no_capabilities_no_new_privs_seccomp_filter() {
    if !require_userns() {
        return;
    }
    let ctx = TestContext::new();
    let out = ctx.run(&[], &["cat", "/proc/self/status"]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let s = stdout(&out);
    for cap in ["CapInh:", "CapPrm:", "CapEff:", "CapBnd:", "CapAmb:"] {
        // Without a user namespace an ordinary user cannot shrink the bounding set (that needs
        // CAP_SETPCAP); it holds nothing and no_new_privs keeps exec from granting anything
        // (docs/tiers.md).
        if cap == "CapBnd:" && tier() == Tier::Landlock && uid() != 0 {
            continue;
        }
        assert_eq!(field(&s, cap), "0000000000000000", "{cap} in\n{s}");
    }
    assert_eq!(field(&s, "NoNewPrivs:"), "1", "{s}");
    assert_eq!(field(&s, "Seccomp:"), "2", "{s}");
    // The caller's own uid, never 0 for an unprivileged caller.
    let uid_line = field(&s, "Uid:");
    assert_eq!(
        uid_line.split_whitespace().next(),
        Some(uid().to_string().as_str()),
        "{s}"
    );
}

#[test]
fn only_sandbox_pids_are_visible_and_pid_1_is_ours() {
    if !require_userns() {
        return;
    }
    let ctx = TestContext::new();
    let out = ctx.sh(
        "ls /proc | grep -E '^[0-9]+$' | sort -n | tr '\\n' ' '; echo; echo $$; cat /proc/1/comm",
    );
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    if tier() == Tier::Landlock {
        return host_processes_are_not_readable_in_the_landlock_tier(&ctx);
    }
    let text = stdout(&out);
    let mut lines = text.lines();
    let pids: Vec<u32> = lines
        .next()
        .unwrap()
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect();
    // pid 1 (our init), the shell, and the pipeline's few processes: nothing of the host.
    assert!(pids.len() <= 6, "{text}");
    assert!(pids.iter().all(|p| *p < 100), "{text}");
    let shell: u32 = lines.next().unwrap().trim().parse().unwrap();
    assert_ne!(shell, 1, "the command must never be pid 1");
    let init = lines.next().unwrap_or("");
    assert_eq!(init.trim(), "init", "pid 1 is ringfence's init: {text}");
}

/// Without a pid namespace host pids are listed (docs/tiers.md), but no other process's
/// environment, memory or descriptors can be read — the test process's own included — and the
/// command's parent is ringfence's subreaper.
fn host_processes_are_not_readable_in_the_landlock_tier(ctx: &TestContext) {
    let me = std::process::id();
    let out = ctx.sh(&format!(
        r#"for p in {me} 1 $PPID; do
               for f in environ mem maps; do
                   head -c 1 /proc/$p/$f >/dev/null 2>&1 && echo "READ /proc/$p/$f"
               done
               for d in cwd root; do
                   ls /proc/$p/$d/ >/dev/null 2>&1 && echo "LISTED /proc/$p/$d"
               done
               # Descriptor numbers may be listed (host metadata); where they lead may not.
               for fd in /proc/$p/fd/*; do
                   readlink "$fd" >/dev/null 2>&1 && echo "FOLLOWED $fd"
               done
           done
           cat /proc/$PPID/comm"#
    ));
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert_eq!(stdout(&out), "init\n", "{}", show(&out));
}

#[test]
fn timeout_kills_setsid_and_double_forked_descendants() {
    if !require_userns() {
        return;
    }
    let ctx = TestContext::new();
    let marker = format!("31{}.4159", std::process::id());
    let script = format!(
        "setsid sleep {m} & (sleep {m} &) ; nohup sleep {m} >/dev/null 2>&1 & sleep {m}",
        m = marker
    );
    let start = Instant::now();
    let out = ctx.run(&["--timeout", "1"], &["sh", "-c", &script]);
    let took = start.elapsed();
    assert_eq!(out.status.code(), Some(137), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("timed out"),
        "{}",
        show(&out)
    );
    assert!(took < Duration::from_secs(20), "took {took:?}");
    // Give the kernel a moment to reap, then nothing with the marker may exist on the host.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let left = host_processes_with(&marker);
        if left.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "survivors on the host: {left:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn processes_left_behind_are_killed_and_reported() {
    if !require_userns() {
        return;
    }
    let ctx = TestContext::new();
    let marker = format!("27{}.1828", std::process::id());
    let report = ctx.root().join("report.json");
    let script = format!(
        "setsid sleep {m} & (sleep {m} &); sleep 0.2; exit 3",
        m = marker
    );
    let out = ctx.run(
        &["--report", report.to_str().unwrap()],
        &["sh", "-c", &script],
    );
    assert_eq!(out.status.code(), Some(3), "{}", show(&out));
    let deadline = Instant::now() + Duration::from_secs(5);
    while !host_processes_with(&marker).is_empty() {
        assert!(
            Instant::now() < deadline,
            "{:?}",
            host_processes_with(&marker)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let v: serde_json::Value = crate::report::json(&report);
    let survivors = v["runs"][0]["survivors"].as_array().unwrap();
    let with_marker = survivors
        .iter()
        .filter(|s| s["argv"].to_string().contains(&marker))
        .count();
    assert_eq!(with_marker, 2, "{survivors:?}");
}

/// A script chooses its processes' command lines: one survivor with 120 KiB of control
/// characters in its argv, and 150 more with 2 KiB each, must not lose the run (they once made
/// the init's report too large for its channel: exit 2, no run in the report).
#[test]
fn a_survivor_with_a_huge_command_line_is_still_reported() {
    if !require_userns() {
        return;
    }
    let ctx = TestContext::new();
    let marker = format!("31{}.4159", std::process::id());
    let report = ctx.root().join("report.json");
    let script = format!(
        "import subprocess\n\
         subprocess.Popen(['sh', '-c', 'sleep {marker}', 'x', '\\x01' * 120000], start_new_session=True)\n\
         for i in range(150):\n    \
         subprocess.Popen(['sh', '-c', 'sleep {marker}', 'x', 'y' * 2000], start_new_session=True)\n"
    );
    let out = ctx.run(
        &["--report", report.to_str().unwrap()],
        &["/usr/bin/python3", "-c", &script],
    );
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let deadline = Instant::now() + Duration::from_secs(10);
    while !host_processes_with(&marker).is_empty() {
        assert!(Instant::now() < deadline, "survivors left on the host");
        std::thread::sleep(Duration::from_millis(50));
    }
    let v: serde_json::Value = crate::report::json(&report);
    let survivors = v["runs"][0]["survivors"].as_array().unwrap();
    assert!(!survivors.is_empty(), "{}", show(&out));
    let listed = survivors
        .iter()
        .map(|s| s["argv"].to_string())
        .collect::<Vec<_>>();
    assert!(
        listed.iter().any(|a| a.contains(&marker)),
        "the survivors are named: {listed:?}"
    );
    assert!(
        listed.iter().all(|a| a.len() < 16 << 10),
        "every command line is clipped"
    );
    let findings = v["runs"][0]["findings"].as_array().unwrap();
    assert!(
        findings.iter().any(|f| f["kind"] == "survivor"),
        "{findings:?}"
    );
}

#[test]
fn stdin_is_dev_null_and_no_descriptors_leak() {
    if !require_userns() {
        return;
    }
    let ctx = TestContext::new();
    // ringfence's own descriptors (the control channel, the recorder's) must not reach the
    // command: with close_range, and on a kernel or under a runtime profile without it.
    let no_close_range = [crate::common::Refuse {
        syscall: libc::SYS_close_range,
        rules: vec![],
        errno: libc::ENOSYS,
    }];
    for refuse in [&[][..], &no_close_range[..]] {
        let mut c = ctx.cmd();
        c.args([
            "run",
            "--",
            "sh",
            "-c",
            "readlink /proc/self/fd/0; ls /proc/self/fd | tr '\\n' ' '",
        ]);
        let out = crate::common::under_seccomp(&mut c, refuse);
        assert_eq!(out.status.code(), Some(0), "{}", show(&out));
        let text = stdout(&out);
        let mut lines = text.lines();
        assert_eq!(lines.next(), Some("/dev/null"), "{text}");
        let fds: Vec<&str> = lines.next().unwrap_or("").split_whitespace().collect();
        // 0, 1, 2 and the one `ls` opened for /proc/self/fd.
        assert!(
            fds.len() <= 4,
            "refusing {} syscall(s): {text}",
            refuse.len()
        );
    }
}

#[test]
fn rlimits_are_applied() {
    if !require_userns() {
        return;
    }
    let _tasks = USER_TASKS.lock().unwrap_or_else(|e| e.into_inner());
    let ctx = TestContext::new();
    let out = ctx.run(&[], &["cat", "/proc/self/limits"]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let text = stdout(&out);
    let soft_hard = |name: &str| -> (String, String) {
        let line = text.lines().find(|l| l.starts_with(name)).unwrap();
        let mut cols = line[name.len()..].split_whitespace();
        (
            cols.next().unwrap().to_string(),
            cols.next().unwrap().to_string(),
        )
    };
    assert_eq!(
        soft_hard("Max open files"),
        ("4096".into(), "4096".into()),
        "{text}"
    );
    assert_eq!(
        soft_hard("Max core file size"),
        ("0".into(), "0".into()),
        "{text}"
    );
    let (soft, hard) = soft_hard("Max processes");
    assert_eq!(soft, hard, "{text}");
    match tier() {
        Tier::Full => assert_eq!(soft, "1024", "{text}"),
        // No user namespace: RLIMIT_NPROC counts the uid's processes host-wide, so the landlock
        // tier adds what the uid already runs (docs/tiers.md); root is exempt from it anyway.
        Tier::Landlock => {
            let n: u64 = soft.parse().unwrap();
            assert!((1024..1024 + 8192).contains(&n), "{text}");
        }
    }
    assert_eq!(
        soft_hard("Max file size"),
        ((8u64 << 30).to_string(), (8u64 << 30).to_string()),
        "{text}"
    );
}

#[test]
fn fork_bomb_is_bounded_by_nproc() {
    if !require_userns() {
        return;
    }
    let _tasks = USER_TASKS.lock().unwrap_or_else(|e| e.into_inner());
    if uid() == 0 {
        // The kernel does not apply RLIMIT_NPROC to host root (the report says so); the pid
        // namespace and the timeout still bound the tree.
        eprintln!("note: RLIMIT_NPROC is not enforced for root; tested by the unprivileged run");
        return;
    }
    let ctx = TestContext::new();
    let profile = ctx.root().join("p.toml");
    std::fs::write(
        &profile,
        "version = 1\n[fs]\nread-only = [\"@system\", \"@etc\"]\n[limits]\nnproc = 20\n",
    )
    .unwrap();
    // Try to start 60 sleepers; dash gives up ("Cannot fork") once the limit bites. Whatever
    // was running when the shell exited is in the report's survivors.
    let report = ctx.root().join("r.json");
    let out = ctx.run(
        &[
            "--profile",
            profile.to_str().unwrap(),
            "--timeout",
            "20",
            "--report",
            report.to_str().unwrap(),
        ],
        &[
            "sh",
            "-c",
            "i=0; while [ $i -lt 60 ]; do sleep 30 & i=$((i+1)); done; sleep 0.5",
        ],
    );
    let v: serde_json::Value = crate::report::json(&report);
    let alive = v["runs"][0]["survivors"].as_array().unwrap().len();
    // 20 processes of the sandbox user in its user namespace, pid 1 and the shell included. The
    // landlock tier counts host-wide, threads included: a thread of ringfence's supervisor or of
    // this harness that ends during the run frees its slot, so a few more may start there.
    let bound = match tier() {
        Tier::Full => 18,
        Tier::Landlock => 24,
    };
    assert!(
        alive <= bound,
        "{alive} survivors with nproc = 20\n{}",
        show(&out)
    );
    assert!(
        alive >= 5,
        "the limit should still allow some: {alive}\n{}",
        show(&out)
    );
}

#[test]
fn terminal_injection_is_refused() {
    if !require_userns() {
        return;
    }
    let Some(probe) = crate::common::require_probe() else {
        return;
    };
    let dir = probe.parent().unwrap().to_str().unwrap().to_string();
    let ctx = TestContext::new();
    let out = ctx.run(
        &["--ro", &dir],
        &[
            probe.to_str().unwrap(),
            "tiocsti",
            "tiocsti_highbits",
            "tioclinux",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let r = crate::common::probe_results(&out.stdout);
    for k in ["tiocsti", "tiocsti_highbits", "tioclinux"] {
        assert_eq!(r.get(k).map(String::as_str), Some("EPERM"), "{k}: {r:?}");
    }
    // And the command has no controlling terminal (setsid).
    let out = ctx.sh("read -r line < /proc/self/stat; set -- $line; echo $7");
    assert_eq!(stdout(&out).trim(), "0", "tty_nr must be 0: {}", show(&out));
}

/// The re-exec launcher (used when the caller is multi-threaded, as `install --jobs` is) builds the
/// same sandbox as the fork launcher.
#[test]
fn reexec_launcher_builds_the_same_sandbox() {
    if !require_userns() {
        return;
    }
    let ctx = TestContext::new();
    let marker = format!("41{}.2718", std::process::id());
    let report = ctx.root().join("r.json");
    let out = ctx
        .cmd()
        .env("RINGFENCE_SANDBOX_REEXEC", "1")
        .args(["run", "--report", report.to_str().unwrap(), "--rw", ctx.project.to_str().unwrap(), "--"])
        .args(["sh", "-c", &format!("grep -E '^(CapEff|NoNewPrivs|Seccomp):' /proc/self/status; cat /proc/$PPID/comm; (setsid sleep {marker} &); echo w > {}/f; exit 4", ctx.project.display())])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4), "{}", show(&out));
    let text = stdout(&out);
    assert!(text.contains("CapEff:\t0000000000000000"), "{text}");
    assert!(text.contains("NoNewPrivs:\t1"), "{text}");
    assert!(text.contains("Seccomp:\t2"), "{text}");
    assert!(text.lines().any(|l| l == "init"), "{text}");
    assert!(ctx.project.join("f").exists());
    let v: serde_json::Value = crate::report::json(&report);
    // The deny table's groups (privileged, new APIs, clone3, socket families, notification
    // listeners); the landlock tier adds its host-network and host-datagram filters (and is
    // started under the container-like one).
    let filters = match tier() {
        Tier::Full => 5,
        Tier::Landlock => 7,
    };
    assert_eq!(v["runs"][0]["enforcement"]["seccomp"]["filters"], filters);
    let deadline = Instant::now() + Duration::from_secs(5);
    while !host_processes_with(&marker).is_empty() {
        assert!(
            Instant::now() < deadline,
            "{:?}",
            host_processes_with(&marker)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Ctrl-C on `ringfence run` (SIGINT to its process group, as a terminal sends it): ringfence
/// exits 130 and leaves nothing behind — no decoy home, preload log or private directory in
/// TMPDIR, and no process of the sandboxed tree, a daemonised one included — in both tiers.
#[test]
fn an_interrupted_run_leaves_nothing_behind() {
    use std::io::BufRead;
    use std::os::unix::process::CommandExt;
    if !require_userns() {
        return;
    }
    let ctx = TestContext::new();
    let tmp = ctx.root().join("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    for &tier in tiers_here() {
        let marker = format!("{}.{}", 7000 + std::process::id() % 1000, tier.len());
        let script = format!("(setsid sleep {marker} &); echo started; sleep {marker}");
        let mut child = ctx
            .cmd()
            .env("TMPDIR", &tmp)
            .args(["run", "--tier", tier, "--", "sh", "-c", &script])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .process_group(0)
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line, "started\n", "{tier}");
        let pgid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap());
        nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGINT).unwrap();
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(130), "{tier}: {err}");
        assert!(err.contains("interrupted"), "{tier}: {err}");
        let left: Vec<_> = std::fs::read_dir(&tmp)
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert!(left.is_empty(), "{tier}: left in TMPDIR: {left:?}");
        let deadline = Instant::now() + Duration::from_secs(5);
        while !host_processes_with(&marker).is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        assert_eq!(host_processes_with(&marker), Vec::<String>::new(), "{tier}");
    }
}

/// RLIMIT_NPROC counts every task of the uid host-wide when there is no user namespace: a user
/// whose programs run more threads than the sandbox's whole budget (a browser, an IDE) must
/// still get a sandbox that can fork. Meaningful for an ordinary user (root is exempt from the
/// limit), which is how CI runs the suite a second time.
#[test]
fn many_host_threads_of_the_user_leave_the_landlock_tier_able_to_fork() {
    if !require_userns() {
        return;
    }
    let _tasks = USER_TASKS.lock().unwrap_or_else(|e| e.into_inner());
    let ctx = TestContext::new();
    let mut threads = std::process::Command::new("python3")
        .args([
            "-c",
            "import threading, time, sys\n\
             threading.stack_size(64 * 1024)\n\
             ts = [threading.Thread(target=time.sleep, args=(30,), daemon=True) for _ in range(1300)]\n\
             [t.start() for t in ts]\n\
             print('up', flush=True)\n\
             time.sleep(30)\n",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    assert_eq!(crate::common::first_line(&mut threads), "up\n");
    let out = ctx.run(
        &["--tier", "landlock"],
        &["sh", "-c", "(true) && /bin/true && echo forked"],
    );
    let _ = threads.kill();
    let _ = threads.wait();
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert_eq!(stdout(&out), "forked\n", "{}", show(&out));
}
