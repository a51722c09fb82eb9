use std::path::Path;

use crate::common::{TestContext, Tier, require_userns, show, stdout, tier, tiers_here};

/// Snapshot of a directory tree: relative path → contents (files) or "<dir>".
fn tree(root: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap().flatten() {
            let p = e.path();
            let rel = p.strip_prefix(root).unwrap().display().to_string();
            let meta = std::fs::symlink_metadata(&p).unwrap();
            if meta.is_dir() {
                out.push((rel, b"<dir>".to_vec()));
                stack.push(p);
            } else {
                out.push((rel, std::fs::read(&p).unwrap_or_default()));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn exit_status_is_the_commands() {
    if !require_userns() {
        return;
    }
    let ctx = TestContext::new();
    assert_eq!(ctx.sh("exit 0").status.code(), Some(0));
    assert_eq!(ctx.sh("exit 7").status.code(), Some(7));
    assert_eq!(ctx.sh("exit 255").status.code(), Some(255));
    // Killed by a signal: 128 + signal, like a shell.
    let out = ctx.sh("kill -TERM $$");
    assert_eq!(out.status.code(), Some(143), "{}", show(&out));
    let out = ctx.sh("kill -KILL $$");
    assert_eq!(out.status.code(), Some(137), "{}", show(&out));
}

#[test]
fn writable_path_is_writable_and_changes_land_on_the_host() {
    if !require_userns() {
        return;
    }
    let ctx = TestContext::new();
    let out = ctx.sh(&format!(
        "echo built > {p}/out.txt && mkdir -p {p}/build/Release && echo ok",
        p = ctx.project.display()
    ));
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert_eq!(
        std::fs::read_to_string(ctx.project.join("out.txt")).unwrap(),
        "built\n"
    );
    assert!(ctx.project.join("build/Release").is_dir());
}

#[test]
fn writes_outside_the_writable_set_fail_and_leave_the_host_untouched() {
    if !require_userns() {
        return;
    }
    let ctx = TestContext::new();
    let ro = ctx.root().join("readonly");
    std::fs::create_dir(&ro).unwrap();
    std::fs::write(ro.join("keep.txt"), "original").unwrap();
    let before_ro = tree(&ro);
    let before_outside = tree(&ctx.outside);
    let script = format!(
        r#"
        for target in {ro}/keep.txt {ro}/new.txt /usr/ringfence-test /etc/ringfence-test /ringfence-test {outside}/x; do
            if (echo pwned > "$target") 2>/dev/null; then echo "WROTE $target"; else echo "DENIED $target"; fi
        done
        if rm -f {ro}/keep.txt 2>/dev/null && [ ! -e {ro}/keep.txt ]; then echo "WROTE rm"; else echo "DENIED rm"; fi
        if mkdir {ro}/d 2>/dev/null; then echo "WROTE mkdir"; else echo "DENIED mkdir"; fi
        "#,
        ro = ro.display(),
        outside = ctx.outside.display()
    );
    let out = ctx.run(
        &[
            "--ro",
            ro.to_str().unwrap(),
            "--rw",
            ctx.project.to_str().unwrap(),
        ],
        &["sh", "-c", &script],
    );
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let text = stdout(&out);
    assert!(!text.contains("WROTE"), "{text}");
    assert_eq!(text.matches("DENIED").count(), 8, "{text}");
    assert_eq!(tree(&ro), before_ro);
    assert_eq!(tree(&ctx.outside), before_outside);
    assert!(!Path::new("/usr/ringfence-test").exists());
    assert!(!Path::new("/ringfence-test").exists());
}

#[test]
fn writable_directory_nested_in_read_only_tree() {
    if !require_userns() {
        return;
    }
    let ctx = TestContext::new();
    let pkg = ctx.project.join("node_modules/pkg");
    let sibling = ctx.project.join("node_modules/sibling");
    std::fs::create_dir_all(&pkg).unwrap();
    std::fs::create_dir_all(&sibling).unwrap();
    std::fs::write(sibling.join("index.js"), "module.exports = 1").unwrap();
    let script = format!(
        "echo built > {pkg}/build.txt && (echo tampered > {sib}/index.js) 2>/dev/null; (echo x > {proj}/package.json) 2>/dev/null; cat {sib}/index.js",
        pkg = pkg.display(),
        sib = sibling.display(),
        proj = ctx.project.display()
    );
    let out = ctx.run(
        &[
            "--ro",
            ctx.project.to_str().unwrap(),
            "--rw",
            pkg.to_str().unwrap(),
        ],
        &["sh", "-c", &script],
    );
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert_eq!(stdout(&out), "module.exports = 1");
    assert_eq!(
        std::fs::read_to_string(pkg.join("build.txt")).unwrap(),
        "built\n"
    );
    assert_eq!(
        std::fs::read_to_string(sibling.join("index.js")).unwrap(),
        "module.exports = 1"
    );
    assert!(!ctx.project.join("package.json").exists());
}

#[test]
fn home_is_a_throwaway_directory_at_the_real_path() {
    if !require_userns() {
        return;
    }
    let ctx = TestContext::new();
    std::fs::create_dir_all(ctx.home.join(".ssh")).unwrap();
    std::fs::write(ctx.home.join(".ssh/id_ed25519"), "REAL-HOST-KEY").unwrap();
    std::fs::write(ctx.home.join(".npmrc"), "//registry/:_authToken=REAL").unwrap();
    let before = tree(&ctx.home);
    let report = ctx.root().join("r.json");
    let out = ctx.run(
        &["--report", report.to_str().unwrap()],
        &[
            "sh",
            "-c",
            r#"echo "HOME=$HOME"; cat "$HOME/.ssh/id_ed25519" 2>&1 | head -c 300; grep -c . "$HOME/.npmrc";
           echo persist >> "$HOME/.bashrc" && mkdir -p "$HOME/.config/x" && echo ok"#,
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let text = stdout(&out);
    match tier() {
        // The decoy home is mounted at the real path.
        Tier::Full => assert!(
            text.contains(&format!("HOME={}\n", ctx.home.display())),
            "{text}"
        ),
        // No mounts: HOME points at a private host directory instead.
        Tier::Landlock => assert!(
            text.starts_with("HOME=/") && !text.contains(&format!("HOME={}\n", ctx.home.display())),
            "{text}"
        ),
    }
    // The sandbox sees decoys at the real paths, never the host's files.
    assert!(!text.contains("REAL-HOST-KEY"), "{text}");
    assert!(text.contains("BEGIN OPENSSH PRIVATE KEY"), "{text}");
    assert!(text.trim_end().ends_with("ok"), "{text}");
    assert_eq!(tree(&ctx.home), before, "host home changed");
    // ... and the reads and the write are recorded.
    let v: serde_json::Value = crate::report::json(&report);
    let kinds: Vec<(String, String)> = v["runs"][0]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["kind"].as_str().unwrap().into(),
                f["target"].as_str().unwrap().into(),
            )
        })
        .collect();
    let home = ctx.home.display().to_string();
    for want in [
        ("secret-read", format!("{home}/.ssh/id_ed25519")),
        ("secret-read", format!("{home}/.npmrc")),
        ("persistence-attempt", format!("{home}/.bashrc")),
    ] {
        assert!(
            kinds.contains(&(want.0.to_string(), want.1.clone())),
            "{want:?} not in {kinds:?}"
        );
    }
}

/// Nothing the command can see names ringfence or calls itself a decoy — its environment,
/// HOME (names and contents), `/`, `/tmp`, TMPDIR, the mount table, its init and parent, and
/// the node preload it is told to load — so a script cannot cheaply tell that it is watched and
/// behave only when it is not. (In the landlock tier the host's processes, ringfence's own
/// supervisor among them, are listed: there is no pid namespace; docs/tiers.md.)
#[test]
fn nothing_the_command_sees_names_ringfence() {
    if !require_userns() {
        return;
    }
    let ctx = TestContext::new();
    let mounts = if tier() == Tier::Full {
        "cat /proc/self/mountinfo"
    } else {
        "true"
    };
    let out = ctx.sh(&format!(
        r#"{{ env; ls -a / /tmp "$HOME" "$TMPDIR"; {mounts}
             cat /proc/1/comm /proc/1/cmdline /proc/$PPID/comm /proc/$PPID/cmdline; echo
             find "$HOME/"; find "$HOME/" -type f -exec cat {{}} +
             p=${{NODE_OPTIONS#*--require=}}; p=${{p%% *}}; echo "preload $p"; cat "$p"
           }} 2>&1 | tr '\0' ' '"#
    ));
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    // The test's own directories are named after the suite, not by ringfence; and the decoys
    // are written for the caller's login name, which on a CI machine may be `ringfence-ci`.
    let root = ctx.root();
    let user = nix::unistd::User::from_uid(nix::unistd::getuid())
        .unwrap()
        .map_or_else(String::new, |u| u.name);
    let mut text = stdout(&out)
        .replace(&root.display().to_string(), "<test>")
        .replace(&*root.file_name().unwrap().to_string_lossy(), "<test>");
    if !user.is_empty() {
        text = text.replace(&user, "<user>");
    }
    assert!(
        text.contains("preload /"),
        "the command is told to load a preload: {text}"
    );
    assert!(text.contains("new Proxy"), "the preload was read: {text}");
    assert!(
        text.contains("BEGIN OPENSSH PRIVATE KEY"),
        "HOME was read: {text}"
    );
    let named: Vec<&str> = text
        .lines()
        .filter(|l| {
            let l = l.to_ascii_lowercase();
            l.contains("ringfence") || l.contains("decoy")
        })
        .collect();
    assert!(named.is_empty(), "the sandbox announces itself: {named:#?}");
}

#[test]
fn host_tmp_and_other_users_files_are_invisible() {
    if !require_userns() {
        return;
    }
    let ctx = TestContext::new();
    // The test's own temp dir lives under the host's /tmp (or $TMPDIR): it must not be visible.
    let host_tmp_file = ctx.outside.join("secret.txt");
    std::fs::write(&host_tmp_file, "host tmp secret").unwrap();
    let script = format!(
        r#"
        test -e {f} && echo "VISIBLE {f}"
        ls -A /tmp | tr '\n' ' '; echo
        echo "$NODE_OPTIONS"
        for p in /etc/shadow /etc/npmrc /root/.bashrc /var /run /home/rftest /sys /boot /mnt /srv /opt; do
            test -e "$p" && echo "VISIBLE $p"
        done
        ls /etc | tr '\n' ' '
        echo
        ls /dev | tr '\n' ' '
        "#,
        f = host_tmp_file.display()
    );
    if tier() == Tier::Landlock {
        return host_files_are_unreadable_in_the_landlock_tier(&ctx, &host_tmp_file);
    }
    let out = ctx.run(&[], &["sh", "-c", &script]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let text = stdout(&out);
    let mut lines = text.lines();
    // The private /tmp holds nothing but the path down to the throwaway HOME (which the tests
    // place under the host's temp dir) and the directory of the node preload.
    let entries = lines.next().unwrap_or("").to_string();
    let node_options = lines.next().unwrap_or("");
    for entry in entries.split_whitespace() {
        let preload = format!("--require=/tmp/{entry}/preload.js");
        assert!(
            ctx.home.starts_with(Path::new("/tmp").join(entry)) || node_options == preload,
            "unexpected /tmp entry {entry}: {text}"
        );
    }
    let visible: Vec<&str> = text.lines().filter(|l| l.starts_with("VISIBLE")).collect();
    assert!(visible.is_empty(), "{text}");
    let etc = lines.next().unwrap_or("");
    for must in [
        "passwd",
        "group",
        "hosts",
        "resolv.conf",
        "nsswitch.conf",
        "ld.so.cache",
        "ssl",
    ] {
        assert!(
            etc.split(' ').any(|e| e == must),
            "/etc lacks {must}: {etc}"
        );
    }
    assert!(!etc.split(' ').any(|e| e == "shadow"), "{etc}");
    let dev: Vec<&str> = lines.next().unwrap_or("").split_whitespace().collect();
    let mut dev_sorted = dev.clone();
    dev_sorted.sort();
    assert_eq!(
        dev_sorted,
        vec![
            "fd", "full", "null", "random", "shm", "stderr", "stdin", "stdout", "urandom", "zero"
        ],
        "{text}"
    );
}

/// The landlock tier has no mount namespace: host paths exist (Landlock does not control
/// `stat`) but none outside the granted view can be opened, listed or written (docs/tiers.md).
fn host_files_are_unreadable_in_the_landlock_tier(ctx: &TestContext, host_tmp_file: &Path) {
    let script = format!(
        r#"
        for f in {f} /etc/shadow /root/.bashrc; do
            head -c 1 "$f" >/dev/null 2>&1 && echo "READ $f"
        done
        for d in /tmp /var/log /run /boot /mnt /srv /opt /root; do
            ls "$d/" >/dev/null 2>&1 && echo "LISTED $d"
        done
        (echo x > /tmp/ringfence-test-probe) 2>/dev/null && echo "WROTE /tmp"
        (echo x > /dev/shm/ringfence-test-probe) 2>/dev/null && echo "WROTE /dev/shm"
        for p in /etc/passwd /etc/hosts /etc/resolv.conf /etc/ld.so.cache /dev/null /dev/urandom; do
            head -c 1 "$p" >/dev/null 2>&1 || echo "UNREADABLE $p"
        done
        echo done
        "#,
        f = host_tmp_file.display()
    );
    let out = ctx.run(&[], &["sh", "-c", &script]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let text = stdout(&out);
    assert_eq!(text, "done\n", "{}", show(&out));
    assert!(!Path::new("/tmp/ringfence-test-probe").exists());
    assert!(!Path::new("/dev/shm/ringfence-test-probe").exists());
}

#[test]
fn proc_is_fresh_and_read_only_where_it_matters() {
    if !require_userns() {
        return;
    }
    let ctx = TestContext::new();
    let out = ctx.sh(
        r#"(echo 1 > /proc/sys/kernel/ns_last_pid) 2>/dev/null && echo WROTE-SYSCTL;
           grep -c . /proc/self/mountinfo >/dev/null && echo mountinfo-ok;
           awk '$5=="/proc" {print $9}' /proc/self/mountinfo"#,
    );
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let text = stdout(&out);
    assert!(!text.contains("WROTE-SYSCTL"), "{text}");
    assert!(text.contains("mountinfo-ok"), "{text}");
    assert!(
        text.lines().any(|l| l == "proc"),
        "a fresh procfs at /proc: {text}"
    );
}

#[test]
fn devices_work_and_tmp_is_usable() {
    if !require_userns() {
        return;
    }
    let ctx = TestContext::new();
    // The full tier's /tmp and /dev/shm are private tmpfs; the landlock tier has only TMPDIR (the
    // host's /tmp and /dev/shm are not writable there: docs/tiers.md).
    let tmp = match tier() {
        Tier::Full => "/tmp",
        Tier::Landlock => "$TMPDIR",
    };
    let shm = match tier() {
        Tier::Full => "/dev/shm",
        Tier::Landlock => "$TMPDIR",
    };
    let out = ctx.sh(&format!(
        r#"head -c 16 /dev/urandom | wc -c; echo x > /dev/null && echo null-ok;
           echo data > {tmp}/f && cat {tmp}/f; echo shm > {shm}/x && cat {shm}/x;
           (echo x > /dev/evil) 2>/dev/null && echo WROTE-DEV; true"#
    ));
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert_eq!(stdout(&out), "16\nnull-ok\ndata\nshm\n", "{}", show(&out));
}

#[test]
fn symlinked_bind_source_is_resolved_to_its_real_path() {
    if !require_userns() {
        return;
    }
    let ctx = TestContext::new();
    let real = ctx.root().join("real");
    std::fs::create_dir(&real).unwrap();
    std::fs::write(real.join("f"), "via link").unwrap();
    let link = ctx.root().join("link");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let out = ctx.run(
        &["--ro", link.to_str().unwrap()],
        &["cat", real.join("f").to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert_eq!(stdout(&out), "via link");
}

/// What a script fills besides its package directory is bounded while it runs: the decoy HOME
/// of a recorded run and, in the landlock tier, HOME and TMPDIR are host directories, so the
/// supervisor measures them and stops the whole tree past the profile's limit. Checked from
/// the host: the script did not go on, the report names the limit, nothing is left in TMPDIR.
#[test]
fn a_script_filling_its_home_or_tmpdir_is_stopped() {
    if !require_userns() {
        return;
    }
    let ctx = TestContext::new();
    let profile = ctx.outside.join("small.toml");
    let default =
        std::fs::read_to_string(crate::common::fixtures().join("../sandbox-profiles/default.toml"))
            .unwrap();
    let small = default
        .replace("home-size = \"1GiB\"", "home-size = \"8MiB\"")
        .replace("tmp-size = \"4GiB\"", "tmp-size = \"8MiB\"");
    assert_ne!(small, default);
    std::fs::write(&profile, small).unwrap();
    let tmp = ctx.root().join("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    for (tier, dir) in [
        ("full", "HOME"),
        ("landlock", "HOME"),
        ("landlock", "TMPDIR"),
    ] {
        if !tiers_here().contains(&tier) {
            continue;
        }
        let report = ctx.outside.join(format!("{tier}-{dir}.json"));
        let script = format!(
            "head -c 64000000 /dev/zero > \"${dir}/fill\"; echo wrote; sleep 5; echo survived"
        );
        let out = ctx
            .cmd()
            .env("TMPDIR", &tmp)
            .args(["run", "--tier", tier, "--profile"])
            .arg(&profile)
            .arg("--report")
            .arg(&report)
            .args(["--", "sh", "-c", &script])
            .output()
            .unwrap();
        let label = format!("{tier} {dir}");
        assert_eq!(out.status.code(), Some(137), "{label}: {}", show(&out));
        assert!(
            !stdout(&out).contains("survived"),
            "{label}: {}",
            show(&out)
        );
        let r: serde_json::Value = crate::report::json(&report);
        let f = r["runs"][0]["findings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["code"] == "limit-exceeded")
            .unwrap_or_else(|| panic!("{label}: no limit-exceeded finding: {r}"));
        assert!(
            f["summary"]
                .as_str()
                .unwrap()
                .contains(&format!("filled its {dir} past")),
            "{label}: {f}"
        );
        let left: Vec<_> = std::fs::read_dir(&tmp).unwrap().flatten().collect();
        assert!(left.is_empty(), "{label}: TMPDIR keeps {left:?}");
    }
}

/// The node preload's log directory is the script's to write (node code writes it): entries the
/// preload cannot have written — a file not named as it names them, a line out of its order or
/// of an op it never writes — are reported as degraded recording, never taken as what node did.
#[test]
fn a_forged_preload_log_is_reported() {
    if !require_userns() {
        return;
    }
    let ctx = TestContext::new();
    let report = ctx.root().join("r.json");
    let script = r#"
        p=$(printf %s "$NODE_OPTIONS" | sed -n 's/.*--require=\([^ ]*preload\.js\).*/\1/p')
        d=$(dirname "$p")/log
        node -e 'process.env.SOME_NAME'
        printf '{"op":"get","name":"FORGED_NAME","t":1}\n' > "$d/999-1.jsonl"
        echo note > "$d/notes.txt"
        ls "$d" | wc -l
    "#;
    let out = ctx.run(
        &["--report", report.to_str().unwrap()],
        &["sh", "-c", script],
    );
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert_eq!(stdout(&out).trim(), "3", "{}", show(&out));
    let v: serde_json::Value = crate::report::json(&report);
    let findings = v["runs"][0]["findings"].as_array().unwrap();
    let tampered: Vec<&serde_json::Value> = findings
        .iter()
        .filter(|f| f["code"] == "recording-degraded" && f["target"] == "preload log")
        .collect();
    assert_eq!(tampered.len(), 1, "{findings:#?}");
    assert_eq!(tampered[0]["severity"], "medium");
    let detail = tampered[0]["detail"].as_str().unwrap();
    assert!(
        detail.contains("notes.txt") && detail.contains("999-1.jsonl"),
        "{detail}"
    );
    // The forged probe is not taken as one.
    assert!(
        !serde_json::to_string(findings)
            .unwrap()
            .contains("FORGED_NAME"),
        "{findings:#?}"
    );
}

/// Names a script chooses (a file it plants, its processes' command lines) reach the terminal
/// escaped: no raw ESC, CR or bidi control in what ringfence prints, so a name cannot rewrite the
/// summary.
#[test]
fn names_a_script_chooses_reach_the_terminal_escaped() {
    if !require_userns() {
        return;
    }
    let ctx = TestContext::new();
    let script = r#"
        evil=$(printf 'x\033[2J\033[1;1Hno findings\r\342\200\256gpj.desktop')
        mkdir -p "$HOME/.config/autostart"
        : > "$HOME/.config/autostart/$evil"
        (setsid sh -c 'sleep 30' "$evil" &)
        sleep 0.2
    "#;
    let out = ctx.run(&[], &["sh", "-c", script]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("autostart"),
        "the planted entry is reported: {err}"
    );
    assert!(err.contains("outlived"), "the survivor is reported: {err}");
    for (raw, what) in [('\u{1b}', "ESC"), ('\r', "CR"), ('\u{202e}', "RLO")] {
        assert!(
            !err.contains(raw),
            "a raw {what} reached the terminal: {err:?}"
        );
    }
}
