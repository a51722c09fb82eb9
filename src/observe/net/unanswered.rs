//! Network attempts where nothing answers, judged from the node preload's record of each
//! attempt (refused by the kernel) as the sinkhole would judge what arrived: in the landlock
//! tier, node's unix-socket attempts (refused at `socket`, before any connect the recorder could
//! see), and every attempt when that tier runs without the recorder, which is what hands
//! connections over to a sinkhole there (`redirect.rs`).

use std::collections::BTreeSet;
use std::net::IpAddr;

use super::classify;
use super::dns::parse_query;
use super::scan::canaries_in;
use super::{Canary, Code, Finding, Severity};
use crate::observe::envprobe::NetProbe;

/// Why nothing was sent, said in every finding made here.
const REFUSED: &str = "refused by the kernel: there is no network in the landlock tier";

/// Findings for network attempts node code made where nothing answers (the landlock tier has no
/// sinkhole): each destination once, a canary in its host, URL path or datagram an
/// exfiltration (critical), key-agent and container sockets high, the rest by host class. The
/// kernel refused every one; nothing was sent.
pub(crate) fn unanswered(probes: &[NetProbe], canaries: &[Canary]) -> Vec<Finding> {
    let mut out = Vec::new();
    let mut seen = BTreeSet::new();
    let mut reached = BTreeSet::new();
    for p in probes {
        let p = &as_lookup(p);
        let host = match p.kind.as_str() {
            "unix" => p.dest.trim_end_matches(":0").to_string(),
            _ => p
                .dest
                .rsplit_once(':')
                .map_or(p.dest.clone(), |(h, _)| h.to_string()),
        };
        if !seen.insert((p.kind.clone(), p.dest.clone())) {
            continue;
        }
        if p.kind == "dns" && host.parse::<IpAddr>().is_ok() {
            // An address "looked up" (dgram's bind of 0.0.0.0, a connect to a literal): no query
            // leaves the machine for it, so the full tier's sinkhole never sees one either.
            continue;
        }
        let hits = canaries_in(&scanned(&host, p), canaries);
        let f = if p.kind == "dns" {
            // Judged as the sinkhole judges a query (encoded labels are a tunnel, a canary an
            // exfiltration), once per name.
            if !reached.insert(format!("dns:{host}")) {
                continue;
            }
            lookup_finding(&host, &hits, p, canaries)
        } else if !hits.is_empty() {
            exfiltration_finding(p, &host, &hits)
        } else if p.kind == "unix" {
            unix_socket_finding(&host)
        } else if host.parse::<IpAddr>().is_ok() && p.kind == "tcp" {
            // Raw addresses: the syscall recorder saw the connect itself.
            continue;
        } else if !reached.insert(p.dest.clone()) {
            // One attempt per destination (a request names it, its connect names it again).
            continue;
        } else {
            connection_finding(p, &host)
        };
        let mut f = f;
        f.process = Some(p.actor.clone());
        f.at_unix_ms = Some(p.at_unix_ms);
        out.push(f);
    }
    out
}

/// The full tier's complement to the sinkhole: a canary node code put into what it sent over a
/// connection the sinkhole cannot read (TLS: it sees only the name) is an exfiltration all the
/// same, found in the preload's record of the request before encryption. Destinations the
/// sinkhole already rated an exfiltration are not reported twice.
pub(crate) fn sent_encrypted(
    probes: &[NetProbe],
    canaries: &[Canary],
    already: &[Finding],
) -> Vec<Finding> {
    let mut out: Vec<Finding> = Vec::new();
    for p in probes {
        if matches!(p.kind.as_str(), "dns" | "unix" | "udp") {
            continue;
        }
        let taken = |t: &str| {
            already
                .iter()
                .chain(out.iter())
                .any(|f| f.kind == super::FindingKind::Exfiltration && f.target == t)
        };
        if taken(&p.dest) {
            continue;
        }
        let host = p
            .dest
            .rsplit_once(':')
            .map_or(p.dest.clone(), |(h, _)| h.to_string());
        let hits = canaries_in(&scanned(&host, p), canaries);
        if hits.is_empty() {
            continue;
        }
        let mut f = exfiltration_finding(p, &host, &hits).detail(
            "seen by the node preload in the request before encryption; the connection itself ended in ringfence's sinkhole",
        );
        f.process = Some(p.actor.clone());
        f.at_unix_ms = Some(p.at_unix_ms);
        out.push(f);
    }
    out
}

/// Write requests to package registries that node code made (the method and path as the
/// preload saw them, before any encryption), one finding per destination, unless one is
/// `already` there (the sinkhole saw the same request in plain HTTP).
pub(crate) fn registry_writes(probes: &[NetProbe], already: &[Finding]) -> Vec<Finding> {
    let host_of = |dest: &str| dest.rsplit_once(':').map_or(dest, |(h, _)| h).to_string();
    // One per host, method and path: the preload notes a request when it is made and again
    // with its body (where it knows only the agent's default port).
    let mut seen: std::collections::BTreeSet<(String, String, String)> = already
        .iter()
        .filter(|f| f.code == Code::RegistryWrite)
        .map(|f| (host_of(&f.target), String::new(), String::new()))
        .collect();
    let mut out: Vec<Finding> = Vec::new();
    for p in probes {
        let (Some(method), Some(path)) = (&p.method, &p.path) else {
            continue;
        };
        let host = host_of(&p.dest);
        let Some(what) = super::classify::registry_write(method, &host, path) else {
            continue;
        };
        if seen.contains(&(host.clone(), String::new(), String::new()))
            || !seen.insert((host, method.clone(), path.clone()))
        {
            continue;
        }
        let mut f = super::classify::registry_write_finding(
            &p.dest,
            method,
            path,
            what,
            "seen by the node preload in the request before encryption",
        );
        f.process = Some(p.actor.clone());
        f.at_unix_ms = Some(p.at_unix_ms);
        out.push(f);
    }
    out
}

/// `p`, or, for a DNS query sent by hand (a datagram to port 53), a lookup of its name: it is
/// judged as one.
fn as_lookup(p: &NetProbe) -> NetProbe {
    let query = (p.kind == "udp" && p.dest.ends_with(":53"))
        .then(|| p.data.as_deref().and_then(parse_query))
        .flatten();
    let (kind, dest) = match &query {
        Some((name, _, _)) => ("dns".to_string(), format!("{name}:0")),
        None => (p.kind.clone(), p.dest.clone()),
    };
    NetProbe {
        kind,
        dest,
        ..p.clone()
    }
}

/// What is searched for canaries: the host, the URL path and the datagram.
fn scanned(host: &str, p: &NetProbe) -> Vec<u8> {
    let mut scanned = host.to_string().into_bytes();
    if let Some(path) = &p.path {
        scanned.push(b' ');
        scanned.extend_from_slice(path.as_bytes());
    }
    if let Some(d) = &p.data {
        scanned.push(b' ');
        scanned.extend_from_slice(d);
    }
    scanned
}

/// A name looked up, as the sinkhole's [`classify::dns_finding`] judges it.
fn lookup_finding(host: &str, hits: &[&Canary], p: &NetProbe, canaries: &[Canary]) -> Finding {
    let idx: BTreeSet<usize> = hits
        .iter()
        .filter_map(|h| canaries.iter().position(|c| std::ptr::eq(c, *h)))
        .collect();
    let f = classify::dns_finding(host, 1, &idx, p.at_unix_ms, canaries, None, None);
    let detail = match f.detail.as_deref() {
        Some(d) if !d.is_empty() => format!("{d}; seen by the node preload; {REFUSED}"),
        _ => format!("seen by the node preload; {REFUSED}"),
    };
    f.detail(detail)
}

/// A canary in what an attempt would have sent: an exfiltration, critical.
fn exfiltration_finding(p: &NetProbe, host: &str, hits: &[&Canary]) -> Finding {
    let ids = hits
        .iter()
        .map(|c| c.id.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    let (code, target) = match p.kind.as_str() {
        "dns" => (Code::DnsExfiltration, host.to_string()),
        "udp" => (Code::DatagramExfiltration, p.dest.clone()),
        _ => (Code::TcpExfiltration, p.dest.clone()),
    };
    if code == Code::TcpExfiltration && github_read_with_a_github_token(p, host, hits) {
        let method = p.method.as_deref().unwrap_or("GET");
        let path = crate::util::clip(p.path.as_deref().unwrap_or("/"), 120);
        return Finding::new(
            code,
            format!(
                "sent a GitHub token to GitHub itself in a read request (`{method} {path}`), as release downloaders do ({ids})"
            ),
            target,
        )
        .severity(Severity::Medium)
        .detail(format!(
            "the token went only to its issuer, in a request that changes nothing; a write (a repository created, a push through the API) or any other destination would be critical; seen by the node preload before the call; {REFUSED}"
        ));
    }
    Finding::new(
        code,
        format!("tried to send a secret to `{target}` ({ids})"),
        target,
    )
    .severity(Severity::Critical)
    .detail(format!(
        "seen by the node preload before the call; {REFUSED}"
    ))
}

/// Whether `p` is a read request (GET or HEAD) to GitHub itself that carries only GitHub
/// tokens: how downloaders authenticate release downloads (`@vscode/ripgrep` sends
/// `GITHUB_TOKEN`, which ringfence plants as a decoy when the user has none). The token reaches
/// only its issuer and the request changes nothing. An unknown method, a write, another host or
/// any other secret does not qualify.
fn github_read_with_a_github_token(p: &NetProbe, host: &str, hits: &[&Canary]) -> bool {
    const GITHUB: [&str; 4] = [
        "api.github.com",
        "github.com",
        "codeload.github.com",
        "objects.githubusercontent.com",
    ];
    const TOKENS: [&str; 5] = ["ghp_", "gho_", "ghs_", "ghu_", "github_pat_"];
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    GITHUB.contains(&host.as_str())
        && p.method
            .as_deref()
            .is_some_and(|m| m.eq_ignore_ascii_case("GET") || m.eq_ignore_ascii_case("HEAD"))
        && !hits.is_empty()
        && hits
            .iter()
            .all(|c| TOKENS.iter().any(|t| c.value.starts_with(t)))
}

/// A unix socket: a key agent's or a container runtime's (high), else any other (medium).
fn unix_socket_finding(host: &str) -> Finding {
    let agent = host.contains("ssh") && host.contains("agent")
        || host.contains("gpg-agent")
        || host.contains("/gnupg/");
    let runtime = ["docker.sock", "containerd", "podman"]
        .iter()
        .any(|s| host.contains(s));
    if agent {
        Finding::new(
            Code::KeyAgentSocket,
            format!("tried to use a key agent's socket `{host}` (signing with your keys)"),
            format!("unix:{host}"),
        )
    } else if runtime {
        Finding::new(
            Code::ContainerSocket,
            format!("tried to reach a container runtime socket `{host}`"),
            format!("unix:{host}"),
        )
    } else if live_socket(host) {
        // As the syscall recorder rates it in the full tier: a socket file with (possibly) a
        // host listener behind it is a way out.
        return Finding::new(
            Code::UnixSocketRefused,
            format!("tried to connect to the unix socket `{host}`, a host socket file; refused"),
            format!("unix-path:{host}"),
        )
        .severity(Severity::High)
        .detail("a host listener reached through a socket file is a way out of the sandbox; seen by the node preload; unix sockets are refused in the landlock tier");
    } else {
        Finding::new(
            Code::UnixSocketRefused,
            format!("tried to connect to the unix socket `{host}`; refused"),
            format!("unix-path:{host}"),
        )
        .severity(Severity::Medium)
    }
    .detail("seen by the node preload; unix sockets are refused in the landlock tier")
}

/// Whether an absolute `path` names a socket file on the host (a link to one included). Only
/// metadata is read: nothing at the path is opened.
fn live_socket(path: &str) -> bool {
    use std::os::unix::fs::FileTypeExt;
    let path = std::path::Path::new(path);
    path.is_absolute() && std::fs::metadata(path).is_ok_and(|m| m.file_type().is_socket())
}

/// A connection (or a lookup) by the class of its host.
fn connection_finding(p: &NetProbe, host: &str) -> Finding {
    let (severity, class) = classify::host_class(host);
    let code = if p.kind == "dns" {
        Code::DnsLookup
    } else {
        Code::Connection
    };
    let dest = if p.kind == "dns" {
        host.to_string()
    } else {
        p.dest.clone()
    };
    Finding::new(
        code,
        format!("tried to reach `{dest}` ({class}); {REFUSED}"),
        dest,
    )
    .severity(severity)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::findings::Actor;

    fn probe(kind: &str, dest: &str, data: &str) -> NetProbe {
        NetProbe {
            kind: kind.into(),
            dest: dest.into(),
            path: Some("/user/repos".into()),
            data: Some(data.as_bytes().to_vec()),
            method: None,
            actor: Actor {
                pid: 7,
                argv: vec!["node".into()],
            },
            at_unix_ms: 1,
        }
    }

    /// A canary in an HTTPS request the sinkhole could not read is one critical exfiltration,
    /// attributed to the process; not when the sinkhole already rated that destination, not
    /// for what carries no canary, not for lookups.
    #[test]
    fn a_canary_sent_over_tls_is_an_exfiltration_once() {
        let canaries = vec![Canary {
            id: "env:GITHUB_TOKEN".into(),
            value: "ghp_RINGFENCEcanary0123456789".into(),
        }];
        let token = r#"{"authorization":"token ghp_RINGFENCEcanary0123456789"} {}"#;
        let probes = vec![
            probe("https", "api.github.com:443", ""),
            probe("https-body:1", "api.github.com:443", token),
            probe("https-body:2", "api.github.com:443", token),
            probe("https-body:1", "example.test:443", "{} nothing"),
            probe("dns", "ghp_RINGFENCEcanary0123456789.x.test:0", ""),
        ];
        let found = sent_encrypted(&probes, &canaries, &[]);
        assert_eq!(found.len(), 1, "{found:#?}");
        assert_eq!(found[0].severity, Severity::Critical);
        assert_eq!(found[0].target, "api.github.com:443");
        assert_eq!(found[0].process.as_ref().map(|a| a.pid), Some(7));
        assert!(sent_encrypted(&probes, &canaries, &found).is_empty());
    }

    /// A GitHub token sent to GitHub itself in a GET (a release download authenticating) is
    /// medium; the same token in a write, to another host, or any other secret to GitHub stays
    /// critical.
    #[test]
    fn a_github_token_in_a_read_to_github_is_not_an_exfiltration() {
        let canaries = vec![
            Canary {
                id: "env:GITHUB_TOKEN".into(),
                value: "ghp_RINGFENCEcanary0123456789".into(),
            },
            Canary {
                id: "npmrc-token".into(),
                value: "npm_AnotherCanary9876543210zyx".into(),
            },
        ];
        let with = |dest: &str, method: &str, body: &str| {
            let mut p = probe("https-body:1", dest, body);
            p.method = Some(method.into());
            p.path = Some("/repos/microsoft/ripgrep-prebuilt/releases/tags/v13".into());
            p
        };
        let gh = r#"{"authorization":"token ghp_RINGFENCEcanary0123456789"} "#;
        let npm = r#"{"authorization":"token npm_AnotherCanary9876543210zyx"} "#;
        let severity = |p: NetProbe| {
            let f = sent_encrypted(&[p], &canaries, &[]);
            assert_eq!(f.len(), 1, "{f:#?}");
            f[0].severity
        };
        assert_eq!(
            severity(with("api.github.com:443", "GET", gh)),
            Severity::Medium
        );
        assert_eq!(
            severity(with("API.github.com:443", "head", gh)),
            Severity::Medium
        );
        assert_eq!(
            severity(with("api.github.com:443", "POST", gh)),
            Severity::Critical
        );
        assert_eq!(
            severity(with("evil.example:443", "GET", gh)),
            Severity::Critical
        );
        assert_eq!(
            severity(with("api.github.com:443", "GET", npm)),
            Severity::Critical
        );
    }
}
