use crate::common::{TestContext, bin, require_userns, show, stdout};
use std::process::Command;

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn missing_rw_path_is_exit_2_naming_the_path() {
    let ctx = TestContext::new();
    let missing = ctx.root().join("no-such-dir");
    let out = ctx.run(&["--rw", missing.to_str().unwrap()], &["true"]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(stderr(&out).contains("--rw"), "{}", show(&out));
    assert!(stderr(&out).contains("no-such-dir"), "{}", show(&out));
}

#[test]
fn nonexistent_command_is_exit_2() {
    let ctx = TestContext::new();
    let out = ctx.run(&[], &["ringfence-no-such-command-xyz"]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(stderr(&out).contains("command not found"), "{}", show(&out));
    let out = ctx.run(&[], &["/no/such/program"]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
}

#[test]
fn command_outside_the_view_is_exit_2_with_hint() {
    let ctx = TestContext::new();
    let script = ctx.outside.join("tool.sh");
    std::fs::write(&script, "#!/bin/sh\necho hi\n").unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let out = ctx.run(&[], &[script.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(
        stderr(&out).contains("not visible inside the sandbox"),
        "{}",
        show(&out)
    );
    assert!(stderr(&out).contains("hint: pass `--ro"), "{}", show(&out));
}

#[test]
fn bad_timeout_and_reserved_paths_are_exit_2() {
    let ctx = TestContext::new();
    for flags in [
        vec!["--timeout", "-1"],
        vec!["--timeout", "nan"],
        vec!["--ro", "/proc"],
        vec!["--rw", "/dev/shm"],
        vec!["--rw", "/"],
    ] {
        let out = ctx.run(&flags, &["true"]);
        assert_eq!(out.status.code(), Some(2), "{flags:?}\n{}", show(&out));
    }
}

#[test]
fn all_policy_problems_are_reported_together() {
    let ctx = TestContext::new();
    let out = ctx.run(&["--rw", "/no/such/a", "--ro", "/no/such/b"], &["true"]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    let err = stderr(&out);
    assert!(
        err.contains("/no/such/a") && err.contains("/no/such/b"),
        "{err}"
    );
}

#[test]
fn bad_profile_is_exit_2_naming_the_key() {
    let ctx = TestContext::new();
    let profile = ctx.root().join("p.toml");
    std::fs::write(
        &profile,
        "version = 1\n[limits]\ntimeout = \"5m\"\nnprocs = 3\n",
    )
    .unwrap();
    let out = ctx.run(&["--profile", profile.to_str().unwrap()], &["true"]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(stderr(&out).contains("nprocs"), "{}", show(&out));
    std::fs::write(&profile, "version = 9\n").unwrap();
    let out = ctx.run(&["--profile", profile.to_str().unwrap()], &["true"]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(stderr(&out).contains("version 9"), "{}", show(&out));
}

#[test]
fn missing_command_is_a_usage_error() {
    let out = Command::new(bin()).arg("run").output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
}

/// With user namespaces made unusable (a user namespace whose `max_user_namespaces` is 0),
/// `run --require-tier full` must fail with exit 2 and name the cause and the fix, and plain
/// `run` must run in the landlock tier and say so.
#[test]
fn unusable_user_namespaces_are_exit_2_with_cause() {
    if !require_userns() {
        return;
    }
    let unshare = ["/usr/bin/unshare", "/bin/unshare"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists());
    let Some(unshare) = unshare else {
        crate::common::skip_or_fail("util-linux `unshare` is not installed");
        return;
    };
    let under_limit = |args: &str| {
        let script = format!(
            "echo 0 > /proc/sys/user/max_user_namespaces && exec {} {args}",
            bin().display()
        );
        Command::new(unshare)
            .args(["--user", "--map-root-user", "sh", "-c", &script])
            .current_dir("/")
            .output()
            .unwrap()
    };
    let out = under_limit("run --require-tier full -- true");
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    let err = stderr(&out);
    assert!(err.contains("step `unshare`"), "{err}");
    assert!(err.contains("user namespaces are not usable"), "{err}");
    assert!(err.contains("max_user_namespaces"), "{err}");
    let out = under_limit("run -- sh -c 'echo in-landlock-tier'");
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert!(stdout(&out).contains("in-landlock-tier"), "{}", show(&out));
    assert!(
        stderr(&out).contains("warning[landlock-tier]"),
        "{}",
        show(&out)
    );
}

#[test]
fn doctor_reports_the_tier() {
    if !require_userns() {
        return;
    }
    let out = Command::new(bin())
        .args(["doctor", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", show(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["tier"], "full", "{v:#}");
    assert_eq!(v["user_namespaces"]["usable"], true);
    assert!(v["landlock"]["pinned_abi"].as_u64().is_some());
    let out = Command::new(bin()).arg("doctor").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("isolation tier    full"), "{text}");
}

/// Shell completions are valid shell (bash checks the syntax) and know every subcommand; the
/// manual page is roff with the name and the commands.
#[test]
fn completions_and_man_page() {
    let ctx = crate::common::TestContext::new();
    let out = ctx.cmd().args(["completions", "bash"]).output().unwrap();
    assert!(out.status.success(), "{}", crate::common::show(&out));
    let script = ctx.root().join("ringfence.bash");
    std::fs::write(&script, &out.stdout).unwrap();
    let check = std::process::Command::new("bash")
        .arg("-n")
        .arg(&script)
        .output()
        .unwrap();
    assert!(check.status.success(), "{}", crate::common::show(&check));
    let text = String::from_utf8_lossy(&out.stdout);
    for sub in [
        "install", "ci", "approve", "allow", "config", "replay", "doctor",
    ] {
        assert!(text.contains(sub), "{sub} missing from the completions");
    }
    for shell in ["zsh", "fish"] {
        let out = ctx.cmd().args(["completions", shell]).output().unwrap();
        assert!(out.status.success() && !out.stdout.is_empty(), "{shell}");
    }
    let man = ctx.cmd().arg("man").output().unwrap();
    assert!(man.status.success(), "{}", crate::common::show(&man));
    let roff = String::from_utf8_lossy(&man.stdout);
    assert!(roff.contains(".TH ringfence 1"), "{roff}");
    assert!(roff.contains("approve"), "{roff}");
}

/// `setup apparmor --print` prints, for the binary given, the profile Ubuntu 23.10+ needs to
/// let it create user namespaces (`userns` granted, nothing else confined) and changes nothing.
#[test]
fn setup_apparmor_prints_a_profile_for_the_binary() {
    let ctx = TestContext::new();
    let out = ctx
        .cmd()
        .args([
            "setup",
            "apparmor",
            "--print",
            "--binary",
            "/opt/rf tools/ringfence",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let text = stdout(&out);
    assert!(
        text.contains(
            "profile ringfence \"/opt/rf tools/ringfence\" flags=(unconfined) {\n  userns,\n"
        ),
        "{text}"
    );
    assert!(
        text.starts_with("# AppArmor profile for ringfence"),
        "{text}"
    );
    let out = ctx
        .cmd()
        .args([
            "setup",
            "apparmor",
            "--print",
            "--binary",
            "relative/ringfence",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not absolute"));
}
