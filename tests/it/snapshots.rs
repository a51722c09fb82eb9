//! What users see, pinned: `run --show-plan`, `doctor`, every policy and argument error, a
//! sandbox setup failure with its hint (under a container-like seccomp filter), a report file.
//! (`install` stderr on the fidelity fixture is pinned in `install::install_matches_plain_npm`.)
//! Redactions: `common::snapshot`. Update with `cargo insta review` after an intended change.

use std::process::{Command, Output};

use crate::common::{TestContext, require_userns, show, snapshot, snapshot_per_user};

/// Exit code, stdout and stderr; npm's own `npm notice`/`npm warn` lines (they vary with its
/// version) left out.
fn both(out: &Output) -> String {
    let text = |b: &[u8]| {
        String::from_utf8_lossy(b)
            .lines()
            .filter(|l| !l.starts_with("npm "))
            .map(|l| format!("{l}\n"))
            .collect::<String>()
    };
    format!(
        "exit: {:?}\n--- stdout\n{}--- stderr\n{}",
        out.status.code(),
        text(&out.stdout),
        text(&out.stderr)
    )
}

#[test]
fn show_plan_of_the_default_profile() {
    if !require_userns() {
        return;
    }
    let ctx = TestContext::new();
    let out = ctx
        .cmd()
        // Only the variables the default profile passes that this test sets itself: the host's
        // SHELL, USER, LC_* and so on differ between machines and users.
        .env_clear()
        .env("HOME", &ctx.home)
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("TERM", "xterm")
        .env("LANG", "C.UTF-8")
        .args([
            "run",
            "--show-plan",
            "--no-record",
            "--ro",
            ".",
            "--",
            "true",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", show(&out));
    let mut plan: serde_json::Value = serde_json::from_slice(&out.stdout).expect("plan is JSON");
    // The curated host entries exist or not, and are links or not, machine by machine
    // (`/etc/timezone`, `/lib64`, a `resolv.conf` under `/run`): checked here, left out of the
    // snapshot, which pins everything else.
    let text = serde_json::to_string(&plan).unwrap();
    for needed in ["\"/etc/passwd\"", "\"/usr\""] {
        assert!(
            text.contains(needed),
            "{needed} is not in the plan:\n{text}"
        );
    }
    for whole_etc in [
        "\"source\":\"/etc\"",
        "\"kind\":{\"type\":\"read-only\"},\"path\":\"/etc\"",
    ] {
        assert!(
            !text.contains(whole_etc),
            "all of /etc is in the plan:\n{text}"
        );
    }
    drop_host_entries(&mut plan);
    let text = serde_json::to_string_pretty(&plan).unwrap();
    // Machine facts that legitimately differ between the root and the unprivileged CI run.
    let text = text
        .lines()
        .filter(|l| !l.contains("\"uid\"") && !l.contains("\"gid\""))
        .collect::<Vec<_>>()
        .join("\n");
    snapshot_per_user("run-show-plan", Some(&ctx.root()), &text);
}

/// Remove, at any depth, every array element that is an object whose `path` is one of the host
/// entries the `@etc`/`@system` presets mirror only where they exist.
fn drop_host_entries(value: &mut serde_json::Value) {
    let host_dependent = |v: &serde_json::Value| {
        let Some(path) = v.get("path").and_then(|p| p.as_str()) else {
            return false;
        };
        path.starts_with("/etc/")
            || path.starts_with("/run/")
            || path.starts_with("/lib")
            || path == "/bin"
            || path == "/sbin"
    };
    match value {
        serde_json::Value::Array(items) => {
            items.retain(|v| !host_dependent(v));
            items.iter_mut().for_each(drop_host_entries);
        }
        serde_json::Value::Object(map) => map.values_mut().for_each(drop_host_entries),
        _ => {}
    }
}

#[test]
fn doctor_text() {
    if !require_userns() {
        return;
    }
    let ctx = TestContext::new();
    let out = ctx.cmd().arg("doctor").output().unwrap();
    snapshot("doctor", Some(&ctx.root()), &both(&out));
}

/// Every policy and argument error a user can cause, one command each.
#[test]
fn policy_and_argument_errors() {
    let ctx = TestContext::new();
    let profile = |name: &str, text: &str| {
        let p = ctx.outside.join(name);
        std::fs::write(&p, text).unwrap();
        p.display().to_string()
    };
    let default = std::fs::read_to_string(
        crate::common::fixtures()
            .parent()
            .unwrap()
            .join("sandbox-profiles/default.toml"),
    )
    .unwrap();
    let missing = ctx.outside.join("missing.toml").display().to_string();
    let syntax = profile("syntax.toml", "version = 1\n[limits\n");
    let version = profile("version.toml", "version = 99\n");
    let unknown = profile("unknown.toml", &format!("{default}\n[bogus]\nx = 1\n"));
    let invalid = profile(
        "invalid.toml",
        &default
            .replace("timeout = \"15m\"", "timeout = \"soon\"")
            .replace("nproc = 1024", "nproc = 0"),
    );
    let package = profile(
        "package.toml",
        &format!("{default}\n[package.\"../evil\"]\nwrite = [\"/etc/passwd\"]\n"),
    );
    let tool = ctx.outside.join("tool.sh");
    std::fs::write(&tool, "#!/bin/sh\n").unwrap();
    std::fs::set_permissions(&tool, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let tool = tool.display().to_string();
    let nonempty = ctx.outside.join("evidence");
    std::fs::create_dir_all(nonempty.join("x")).unwrap();
    let nonempty = nonempty.display().to_string();
    std::fs::write(
        ctx.project.join("package.json"),
        r#"{"name":"p","version":"1.0.0"}"#,
    )
    .unwrap();
    let cases: Vec<Vec<&str>> = vec![
        vec!["run", "--profile", &missing, "--", "true"],
        vec!["run", "--profile", &syntax, "--", "true"],
        vec!["run", "--profile", &version, "--", "true"],
        vec!["run", "--profile", &unknown, "--", "true"],
        vec!["run", "--profile", &invalid, "--", "true"],
        vec!["run", "--profile", &package, "--", "true"],
        vec!["run", "--rw", "/no/such/dir", "--ro", "/proc", "--", "true"],
        vec!["run", "--", "ringfence-no-such-command"],
        vec!["run", "--", &tool],
        vec!["run", "--timeout", "-1", "--", "true"],
        vec!["install", "--fail-on", "sometimes"],
        vec!["install", "--jobs", "0"],
        vec!["install", "-g", "left-pad"],
        vec!["ci"],
        vec!["replay"],
        vec!["replay", "--evidence", &nonempty, "left-pad@1.3.0"],
        vec!["replay", "--timeout", "0", "left-pad@1.3.0"],
    ];
    let mut text = String::new();
    for args in cases {
        let out = ctx.cmd().args(&args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}\n{}", show(&out));
        text.push_str(&format!(
            "$ ringfence {}\n{}\n",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    snapshot("policy-and-argument-errors", Some(&ctx.root()), &text);
}

fn container_like(c: &mut Command) -> Output {
    crate::common::under_seccomp(c, &crate::common::docker_default_namespaces())
}

/// Under a container-like profile `auto` runs in the landlock tier; `--require-tier full` fails
/// with the same cause and hint in every command, `ci` before npm changes anything.
#[test]
fn a_setup_failure_gives_the_same_hint_in_every_command() {
    let ctx = TestContext::new();
    let mut text = String::new();
    for args in [
        &["run", "--", "true"][..],
        &["run", "--require-tier", "full", "--", "true"][..],
    ] {
        let mut c = ctx.cmd();
        c.args(args);
        text.push_str(&format!(
            "$ ringfence {}\n{}\n",
            args.join(" "),
            both(&container_like(&mut c))
        ));
    }
    if crate::common::require_npm() {
        std::fs::write(
            ctx.project.join("package.json"),
            r#"{"name":"p","version":"1.0.0","scripts":{"postinstall":"true"}}"#,
        )
        .unwrap();
        std::fs::write(
            ctx.project.join("package-lock.json"),
            r#"{"name":"p","version":"1.0.0","lockfileVersion":3,"requires":true,"packages":{"":{"name":"p","version":"1.0.0"}}}"#,
        )
        .unwrap();
        for args in [
            &["ci", "--require-tier", "full", "--no-audit", "--no-fund"][..],
            &["ci", "--no-audit", "--no-fund"][..],
        ] {
            let mut c = ctx.cmd();
            c.args(args);
            text.push_str(&format!(
                "$ ringfence {}\n{}\n",
                args.join(" "),
                both(&container_like(&mut c))
            ));
        }
    }
    let mut doctor = ctx.cmd();
    doctor.arg("doctor");
    text.push_str(&format!(
        "$ ringfence doctor\n{}\n",
        both(&container_like(&mut doctor))
    ));
    snapshot("setup-failure-hint", Some(&ctx.root()), &text);
}

#[test]
fn report_file_of_a_recorded_run() {
    if !require_userns() {
        return;
    }
    let ctx = TestContext::new();
    let report = ctx.outside.join("report.json");
    let out = ctx
        .cmd()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .args([
            "run",
            "--rw",
            ".",
            "--report",
            report.to_str().unwrap(),
            "--",
        ])
        .args(["sh", "-c", "cat ~/.npmrc >/dev/null; echo hi > out.txt"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", show(&out));
    let text = std::fs::read_to_string(&report).unwrap();
    crate::report::json(&report);
    snapshot_per_user("report-file", Some(&ctx.root()), &text);
}
