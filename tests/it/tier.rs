//! The landlock tier (no namespaces): chosen automatically under a container-like seccomp
//! profile, and holding from the host's side — nothing written outside the package, no real
//! secret read, nothing reaching a host listener (TCP, UDP, abstract or pathname unix sockets),
//! no signal to a host process, no surviving process.

use std::net::{TcpListener, UdpSocket};
use std::os::unix::net::UnixListener;
use std::process::Command;
use std::time::Duration;

use crate::common::{
    TestContext, docker_default_namespaces, host_processes_with, require_userns, show, stdout,
    under_seccomp,
};

use crate::report::json;

#[test]
fn a_container_like_profile_gets_the_landlock_tier_automatically() {
    if !require_userns() {
        return;
    }
    let ctx = TestContext::new();
    let docker = docker_default_namespaces();
    let mut doctor = ctx.cmd();
    doctor.arg("doctor");
    let out = under_seccomp(&mut doctor, &docker);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert!(
        stdout(&out).contains("isolation tier    landlock: no namespaces"),
        "{}",
        show(&out)
    );

    let report = ctx.outside.join("report.json");
    let mut run = ctx.cmd();
    run.args([
        "run",
        "--ro",
        ".",
        "--report",
        report.to_str().unwrap(),
        "--",
    ])
    .args(["sh", "-c", "echo inside"]);
    let out = under_seccomp(&mut run, &docker);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert_eq!(stdout(&out), "inside\n");
    let e = &json(&report)["runs"][0]["enforcement"];
    assert_eq!(e["tier"], "landlock", "{e}");
    assert_eq!(e["namespaces"]["pid"]["status"], "not_enforced", "{e}");
    assert_eq!(e["landlock"]["status"], "fully_enforced", "{e}");

    // A tier below what is required is refused, with exit 2, before anything runs.
    let marker = ctx.outside.join("ran");
    let mut strict = ctx.cmd();
    strict.args(["run", "--require-tier", "full", "--"]).args([
        "sh",
        "-c",
        &format!("touch {}", marker.display()),
    ]);
    let out = under_seccomp(&mut strict, &docker);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(!marker.exists());
}

/// Every way out, tried from inside; every check from the host.
#[test]
fn the_landlock_tier_contains_the_script() {
    if !require_userns() {
        return;
    }
    let ctx = TestContext::new();
    // Real secrets where a script would look.
    std::fs::create_dir_all(ctx.home.join(".ssh")).unwrap();
    std::fs::write(ctx.home.join(".ssh/id_ed25519"), "HOST-REAL-KEY\n").unwrap();
    std::fs::write(
        ctx.home.join(".npmrc"),
        "//registry/:_authToken=HOST-REAL-TOKEN\n",
    )
    .unwrap();
    std::fs::write(ctx.project.join("index.js"), "// the project\n").unwrap();
    let pkg = ctx.project.join("node_modules/pkg");
    std::fs::create_dir_all(&pkg).unwrap();
    // Listeners on the host.
    let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
    tcp.set_nonblocking(true).unwrap();
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let unix_path = ctx.project.join("dev.sock");
    let unix = UnixListener::bind(&unix_path).unwrap();
    unix.set_nonblocking(true).unwrap();
    let abstract_name = format!("ringfence-test-{}", std::process::id());
    let abstract_listener = {
        use std::os::linux::net::SocketAddrExt;
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(&abstract_name).unwrap();
        let l = UnixListener::bind_addr(&addr).unwrap();
        l.set_nonblocking(true).unwrap();
        l
    };
    // A host process of the same user the script must not be able to signal.
    let mut bystander = Command::new("sleep").arg("60").spawn().unwrap();
    let marker = format!("rf-tier-daemon-{}", std::process::id());
    let script = format!(
        r#"
        cat ~/.npmrc; cat {home}/.ssh/id_ed25519; cat {home}/.npmrc
        cat {project}/index.js
        echo x > {project}/index.js; echo x > {home}/.bashrc; echo x > /tmp/rf-tier-host-tmp
        echo ok > out.txt; echo ok > "$TMPDIR/t"
        kill -9 {bystander}
        cat /proc/{bystander}/environ
        node -e '
          const net = require("net");
          net.connect({tcp}, "127.0.0.1").on("error", e => console.log("tcp", e.code));
          net.connect("{unix}").on("error", e => console.log("unix", e.code));
          net.connect("\0{abstract_name}").on("error", e => console.log("abstract", e.code));
          const d = require("dgram").createSocket("udp4");
          d.on("error", e => console.log("udp", e.code));
          d.send("HOST-LEAK", {udp}, "127.0.0.1", () => d.close());
        '
        (setsid sh -c 'sleep 60; echo {marker}' &)
        sleep 0.3
        "#,
        home = ctx.home.display(),
        project = ctx.project.display(),
        bystander = bystander.id(),
        tcp = tcp.local_addr().unwrap().port(),
        udp = udp.local_addr().unwrap().port(),
        unix = unix_path.display(),
    );
    let report = ctx.outside.join("report.json");
    let out = ctx
        .cmd()
        .current_dir(&pkg)
        .args(["run", "--tier", "landlock", "--rw", ".", "--ro"])
        .arg(&ctx.project)
        .args([
            "--report",
            report.to_str().unwrap(),
            "--",
            "sh",
            "-c",
            &script,
        ])
        .output()
        .unwrap();
    let text = show(&out);
    // No real secret reached the script, its output or the report.
    assert!(!text.contains("HOST-REAL"), "{text}");
    let report_text = std::fs::read_to_string(&report).unwrap();
    assert!(!report_text.contains("HOST-REAL"), "{report_text}");
    // The decoy ~/.npmrc was read and recorded.
    assert!(report_text.contains("decoy-read"), "{report_text}");
    // The project was readable, not writable; nothing landed outside the package.
    assert!(stdout(&out).contains("// the project"), "{text}");
    assert_eq!(
        std::fs::read_to_string(ctx.project.join("index.js")).unwrap(),
        "// the project\n"
    );
    assert!(!ctx.home.join(".bashrc").exists());
    assert!(!std::path::Path::new("/tmp/rf-tier-host-tmp").exists());
    assert_eq!(
        std::fs::read_to_string(pkg.join("out.txt")).unwrap(),
        "ok\n"
    );
    // Nothing reached a host listener.
    assert!(
        tcp.accept().is_err(),
        "TCP listener got a connection\n{text}"
    );
    assert!(
        unix.accept().is_err(),
        "unix listener got a connection\n{text}"
    );
    assert!(
        abstract_listener.accept().is_err(),
        "abstract listener got a connection\n{text}"
    );
    let mut buf = [0u8; 64];
    assert!(
        udp.recv_from(&mut buf).is_err(),
        "UDP listener got a datagram\n{text}"
    );
    // The bystander lives; the daemon does not.
    assert!(
        bystander.try_wait().unwrap().is_none(),
        "a host process was killed\n{text}"
    );
    let _ = bystander.kill();
    let _ = bystander.wait();
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        host_processes_with(&marker).is_empty(),
        "a process survived\n{text}"
    );
    assert!(report_text.contains("survivor"), "{report_text}");
}

/// A ringfence failure is written into the report (an `error` object), never an empty
/// clean-looking report; `ci` fails in the pre-flight, before npm touches the project.
#[test]
fn a_failure_is_in_the_report_and_the_project_is_untouched() {
    if !require_userns() || !crate::common::require_npm() {
        return;
    }
    let ctx = TestContext::new();
    std::fs::write(
        ctx.project.join("package.json"),
        r#"{"name":"p","version":"1.0.0","scripts":{"postinstall":"true"}}"#,
    )
    .unwrap();
    let lock = r#"{"name":"p","version":"1.0.0","lockfileVersion":3,"requires":true,"packages":{"":{"name":"p","version":"1.0.0"}}}"#;
    std::fs::write(ctx.project.join("package-lock.json"), lock).unwrap();
    let report = ctx.outside.join("report.json");
    let mut c = ctx.cmd();
    c.args([
        "ci",
        "--require-tier",
        "full",
        "--report",
        report.to_str().unwrap(),
    ]);
    let out = under_seccomp(&mut c, &docker_default_namespaces());
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    let r = json(&report);
    assert_eq!(r["runs"], serde_json::json!([]), "{r}");
    assert!(
        r["error"]["message"].as_str().unwrap().contains("unshare"),
        "{r}"
    );
    assert!(r["error"]["hint"].as_str().is_some(), "{r}");
    // Pre-flight: npm never ran.
    assert!(!ctx.project.join("node_modules").exists());
    assert_eq!(
        std::fs::read_to_string(ctx.project.join("package-lock.json")).unwrap(),
        lock
    );
}

/// In the landlock tier HOME is a private directory, but the caller's real home is still at its
/// path: a script reading the user's own key there by absolute path is refused by Landlock and
/// recorded as the same high finding the full tier gives (a read of the key in HOME), with the
/// same target; the real key never reaches the report.
#[test]
fn a_read_of_the_real_home_by_absolute_path_is_recorded_in_the_landlock_tier() {
    if !require_userns() {
        return;
    }
    let ctx = TestContext::new();
    std::fs::create_dir_all(ctx.home.join(".ssh")).unwrap();
    std::fs::write(ctx.home.join(".ssh/id_ed25519"), "HOST-REAL-KEY\n").unwrap();
    let key = ctx.home.join(".ssh/id_ed25519");
    let script = format!(
        "let r; try {{ r = require('fs').readFileSync({:?}, 'utf8'); }} catch (e) {{ r = e.code; }} console.log(r.includes('REAL' + '-KEY') ? 'LEAKED' : r);",
        key.to_str().unwrap()
    );
    for &tier in crate::common::tiers_here() {
        let report = ctx.outside.join(format!("{tier}.json"));
        let out = ctx
            .cmd()
            .args(["run", "--tier", tier, "--report", report.to_str().unwrap()])
            .args(["--", "node", "-e", &script])
            .output()
            .unwrap();
        assert!(!stdout(&out).contains("LEAKED"), "{tier}: {}", show(&out));
        let r = json(&report);
        let findings = r["runs"][0]["findings"].as_array().unwrap().clone();
        let hit = findings
            .iter()
            .find(|f| {
                f["target"]
                    .as_str()
                    .is_some_and(|t| t.ends_with("/.ssh/id_ed25519"))
            })
            .unwrap_or_else(|| panic!("{tier}: no finding for the key read: {findings:#?}"));
        assert_eq!(hit["severity"], "high", "{tier}: {hit}");
        assert!(
            !std::fs::read_to_string(&report)
                .unwrap()
                .contains("HOST-REAL-KEY"),
            "{tier}: the real key is in the report"
        );
    }
}
