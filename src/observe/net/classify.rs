//! What the sinkhole saw, as findings: hosts, payloads, DNS names, attribution to the connecting process.

use super::*;

/// How suspicious a destination host is.
pub(super) fn host_class(host: &str) -> (Severity, &'static str) {
    let h = host.trim_end_matches('.').to_ascii_lowercase();
    let ends = |d: &str| h == d || h.ends_with(&format!(".{d}"));
    if [
        "169.254.169.254",
        "metadata.google.internal",
        "100.100.100.200",
        "fd00:ec2::254",
    ]
    .contains(&h.as_str())
        || ends("metadata.azure.com")
    {
        return (Severity::High, "cloud metadata endpoint");
    }
    const SHADY: [&str; 16] = [
        "webhook.site",
        "discord.com",
        "discordapp.com",
        "api.telegram.org",
        "oastify.com",
        "oast.fun",
        "oast.pro",
        "oast.live",
        "interact.sh",
        "burpcollaborator.net",
        "ngrok.io",
        "ngrok-free.app",
        "pipedream.net",
        "trycloudflare.com",
        "pastebin.com",
        "transfer.sh",
    ];
    if SHADY.iter().any(|d| ends(d)) {
        return (Severity::High, "known exfiltration/webhook service");
    }
    const INSTALLER: [&str; 13] = [
        "github.com",
        "objects.githubusercontent.com",
        "codeload.github.com",
        "nodejs.org",
        "registry.npmjs.org",
        "registry.yarnpkg.com",
        "binaries.prisma.sh",
        "storage.googleapis.com",
        "download.cypress.io",
        "npmmirror.com",
        "electronjs.org",
        "pixelplumbing.com",
        "sentry-cdn.com",
    ];
    if ends("api.github.com") {
        return (Severity::Medium, "GitHub API");
    }
    if INSTALLER.iter().any(|d| ends(d)) {
        return (
            Severity::Low,
            "a host legitimate installers download from (prebuilt binaries, headers); the attempt failed closed",
        );
    }
    // Funding banners and install telemetry of popular packages.
    const BANNER: [&str; 4] = [
        "opencollective.com",
        "api.opencollective.com",
        "funding.communitybridge.org",
        "telemetry.nextjs.org",
    ];
    if BANNER.iter().any(|d| ends(d)) {
        return (
            Severity::Info,
            "a funding banner or install telemetry host; the attempt failed closed",
        );
    }
    // A connection by itself harms nothing: nothing secret was seen in it (that would be an
    // exfiltration, critical), and nothing left the machine. What was sent is judged by
    // `sent_class`.
    (
        Severity::Low,
        "unknown host; nothing secret was seen in what it sent",
    )
}

/// Whether an HTTP request is a write to a package registry, and then what kind: a PUT, DELETE
/// or PATCH to a public registry (publish, unpublish, dist-tags, owners, adduser), or a request
/// to the registry API's login and token paths on any host (private registries included).
/// Reads (GET, HEAD) never are, nor `npm audit`'s POST.
pub(crate) fn registry_write(method: &str, host: &str, path: &str) -> Option<&'static str> {
    const REGISTRIES: [&str; 5] = [
        "registry.npmjs.org",
        "registry.yarnpkg.com",
        "registry.npmmirror.com",
        "npm.pkg.github.com",
        "registry.npmjs.com",
    ];
    let method = method.to_ascii_uppercase();
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    let path = path.to_ascii_lowercase();
    let api = ["/-/user/", "/-/v1/login", "/-/npm/v1/tokens"];
    if ["PUT", "POST", "DELETE"].contains(&method.as_str())
        && api.iter().any(|p| path.starts_with(p))
    {
        return Some("login or token management");
    }
    let public = REGISTRIES
        .iter()
        .any(|r| host == *r || host.ends_with(&format!(".{r}")));
    if !public || !["PUT", "DELETE", "PATCH"].contains(&method.as_str()) {
        return None;
    }
    Some(if method == "DELETE" {
        "unpublish or tag removal"
    } else if path.starts_with("/-/package/") {
        "dist-tag change"
    } else {
        "publish"
    })
}

/// The finding for a registry write seen as `method path` to `target` (`host:port`).
pub(crate) fn registry_write_finding(
    target: &str,
    method: &str,
    path: &str,
    what: &str,
    seen_by: &str,
) -> Finding {
    Finding::new(
        Code::RegistryWrite,
        format!(
            "sent a write request to the package registry `{target}` ({what}: `{method} {}`)",
            crate::util::clip(path, 120)
        ),
        target,
    )
    .detail(format!(
        "{seen_by}; install scripts only read from registries, a worm republishes through them"
    ))
}

/// How much a payload without a secret to an otherwise unremarkable host adds: data of the
/// script's choosing uploaded (an HTTP request with a body, or a non-TLS, non-HTTP stream) is
/// suspicious; a plain GET or a TLS handshake is what every downloader does.
pub(super) fn sent_class(
    payload: &[u8],
    request_line: Option<&str>,
) -> Option<(Severity, &'static str)> {
    if let Some(r) = request_line {
        let method = r.split(' ').next().unwrap_or("");
        let head_end = payload
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .map_or(payload.len(), |p| p + 4);
        if ["POST", "PUT", "PATCH"].contains(&method) && payload.len() > head_end {
            return Some((Severity::Medium, "uploaded data"));
        }
        return None;
    }
    let tls = payload.first() == Some(&0x16);
    (!tls && payload.len() >= 16).then_some((Severity::Medium, "sent raw data"))
}

pub(super) fn printable(data: &[u8]) -> String {
    String::from_utf8_lossy(&data[..data.len().min(200)])
        .chars()
        .map(|c| if c.is_control() && c != '\n' { '.' } else { c })
        .collect::<String>()
        .replace("\r\n", "\\n")
        .replace('\n', "\\n")
}

/// The process that made a connection: the last connect to the same destination (DNS: to any
/// port 53) the recorder saw before it arrived (with 50 ms of slack for clock reads).
pub(super) fn who(connects: &[Sighting], at: u64, matches: impl Fn(&str) -> bool) -> Option<Actor> {
    let same: Vec<&Sighting> = connects.iter().filter(|c| matches(&c.what)).collect();
    same.iter()
        .rev()
        .find(|c| c.at_unix_ms <= at + 50)
        .or(same.last())
        .map(|c| c.actor.clone())
}

pub(super) fn canary_ids(hits: &BTreeSet<usize>, canaries: &[Canary]) -> String {
    hits.iter()
        .filter_map(|i| canaries.get(*i))
        .map(|c| c.id.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Labels of `name` that decode (hex, base32) to printable text — and shorter hex labels that
/// decode to the machine's own name (a two-letter hostname is four hex digits, below what is
/// otherwise taken for an encoding).
pub(super) fn decoded_labels(name: &str) -> Vec<String> {
    name.split('.')
        .filter_map(|l| {
            decode_hex(l)
                .or_else(|| decode_base32(l))
                .or_else(|| short_hex(l).filter(|d| is_host_name(d)))
        })
        .filter(|d| d.iter().all(|b| b.is_ascii_graphic() || *b == b' '))
        .map(|d| String::from_utf8_lossy(&d).into_owned())
        .collect()
}

/// A hex label of 2 or 3 bytes (`decode_hex` takes 4 or more).
fn short_hex(label: &str) -> Option<Vec<u8>> {
    if !(4..8).contains(&label.len())
        || label.len() % 2 != 0
        || !label.bytes().all(|b| b.is_ascii_hexdigit())
    {
        return None;
    }
    (0..label.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(label.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Whether `text` is this machine's hostname (what a script sees in the landlock tier, which
/// has no uts namespace) or the full tier's default sandbox hostname.
fn is_host_name(text: &[u8]) -> bool {
    static NAME: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    let host = NAME.get_or_init(|| {
        nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok())
    });
    text == b"localhost"
        || host
            .as_deref()
            .is_some_and(|h| !h.is_empty() && h.as_bytes() == text)
}

/// One finding for a DNS name (or, with `more`, for the names counted under a domain past the
/// budget).
pub(super) fn dns_finding(
    name: &str,
    queries: usize,
    hits: &BTreeSet<usize>,
    at: u64,
    canaries: &[Canary],
    process: Option<Actor>,
    more: Option<(&str, usize)>,
) -> Finding {
    let decoded = decoded_labels(name);
    let mut detail: Vec<String> = Vec::new();
    if !decoded.is_empty() {
        detail.push(format!("decoded labels: {}", decoded.join(" | ")));
    }
    let (target, what) = match more {
        Some((domain, names)) => {
            detail.push(format!(
                "{names} more names under `{domain}` past the budget of {} names kept one by one; the first: `{name}`",
                budget::DNS_NAMES
            ));
            (
                format!("*.{domain}"),
                format!("{names} more DNS names under `{domain}`"),
            )
        }
        None => (name.to_string(), format!("DNS lookup of `{name}`")),
    };
    let detail = (!detail.is_empty()).then(|| detail.join("; "));
    if !hits.is_empty() {
        return Finding {
            code: Code::DnsExfiltration,
            kind: FindingKind::Exfiltration,
            severity: Severity::Critical,
            summary: match more {
                Some(_) => format!(
                    "secret sent out in DNS query names: {what} ({})",
                    canary_ids(hits, canaries)
                ),
                None => format!(
                    "secret sent out in a DNS query name ({})",
                    canary_ids(hits, canaries)
                ),
            },
            target,
            detail,
            process,
            at_unix_ms: Some(at),
        };
    }
    let (sev, why) = host_class(name);
    // Long encoded labels are a DNS tunnel even without a canary (hostname, user, cwd).
    let sev = if decoded.is_empty() {
        sev
    } else {
        sev.max(Severity::High)
    };
    Finding {
        code: if decoded.is_empty() {
            Code::DnsLookup
        } else {
            Code::DnsTunnel
        },
        kind: FindingKind::NetworkAttempt,
        severity: sev,
        summary: format!("{what} ({why}; {queries} queries)"),
        target,
        detail,
        process,
        at_unix_ms: Some(at),
    }
}

/// Everything the sinkhole saw, as findings: DNS names, connections (one per destination, a
/// canary an exfiltration), connections past the budget, and what the budgets left out.
pub(super) fn classify(
    state: &State,
    fake: &HashMap<Ipv4Addr, String>,
    canaries: &[Canary],
    connects: &[Sighting],
) -> Vec<Finding> {
    let mut out = dns_findings(state, canaries, connects);
    let mut tcp_seen: BTreeMap<String, usize> = BTreeMap::new();
    for c in &state.tcp {
        out.extend(connection_finding(
            c,
            fake,
            canaries,
            connects,
            &mut tcp_seen,
        ));
    }
    out.extend(overflow_findings(state, fake, canaries, connects));
    let not_inspected: u64 = state.tcp.iter().map(|c| c.not_inspected).sum();
    out.extend(degraded_finding(state, not_inspected));
    out
}

/// One finding per DNS name (and per domain past the name budget).
fn dns_findings(state: &State, canaries: &[Canary], connects: &[Sighting]) -> Vec<Finding> {
    let mut out = Vec::new();
    for (name, seen) in &state.dns {
        let process = who(connects, seen.at, |a| a.ends_with(":53"));
        out.push(dns_finding(
            name,
            seen.qtypes,
            &seen.hits,
            seen.at,
            canaries,
            process,
            None,
        ));
    }
    for (domain, o) in &state.dns_overflow {
        let process = who(connects, o.at, |a| a.ends_with(":53"));
        out.push(dns_finding(
            &o.sample,
            o.queries,
            &o.hits,
            o.at,
            canaries,
            process,
            Some((domain, o.names)),
        ));
    }
    out
}

/// A connection's finding: an exfiltration when it carried a canary, else one per destination
/// judged by its host and what was sent.
fn connection_finding(
    c: &Conn,
    fake: &HashMap<Ipv4Addr, String>,
    canaries: &[Canary],
    connects: &[Sighting],
    tcp_seen: &mut BTreeMap<String, usize>,
) -> Option<Finding> {
    let Conn {
        dst,
        head: payload,
        total,
        not_inspected,
        hits,
        at,
    } = c;
    let process = who(connects, *at, |a| a == dst.to_string());
    let ip = dst.ip();
    let mapped = match ip {
        IpAddr::V4(v4) => fake.get(&v4).cloned(),
        IpAddr::V6(v6) => v6.to_ipv4_mapped().and_then(|v4| fake.get(&v4).cloned()),
    };
    let sni = sni(payload);
    let text = String::from_utf8_lossy(payload);
    let request_line = text
        .lines()
        .next()
        .filter(|l| l.contains(" HTTP/"))
        .map(str::to_string);
    let host_header = text
        .lines()
        .find_map(|l| {
            l.strip_prefix("Host: ")
                .or_else(|| l.strip_prefix("host: "))
        })
        .map(|h| h.trim().to_string());
    let plain_ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        other => other,
    };
    let host = sni
        .clone()
        .or(host_header.clone())
        .or(mapped.clone())
        .unwrap_or_else(|| plain_ip.to_string());
    let target = format!("{host}:{}", dst.port());
    let mut detail = vec![format!("destination {plain_ip}:{}", dst.port())];
    if let Some(r) = &request_line {
        detail.push(format!("request `{r}`"));
    }
    if let Some(s) = &sni {
        detail.push(format!("TLS SNI {s}"));
    }
    if text.to_ascii_lowercase().contains("\nauthorization:") {
        detail.push("an Authorization header was present (value not recorded)".into());
    }
    detail.push(format!("{total} bytes; first: {}", printable(payload)));
    if *not_inspected > 0 {
        detail.push(format!(
            "{not_inspected} bytes not inspected (the inspection budget ran out)"
        ));
    }
    if !hits.is_empty() {
        return Some(Finding {
            code: Code::TcpExfiltration,
            kind: FindingKind::Exfiltration,
            severity: Severity::Critical,
            summary: format!("secret sent to `{target}` ({})", canary_ids(hits, canaries)),
            target,
            detail: Some(detail.join("; ")),
            process: process.clone(),
            at_unix_ms: Some(*at),
        });
    }
    let count = tcp_seen.entry(target.clone()).or_default();
    *count += 1;
    if *count > 1 {
        return None;
    }
    if let Some((method, path)) = request_line
        .as_deref()
        .and_then(|r| r.split_once(' '))
        .map(|(m, rest)| (m, rest.split(' ').next().unwrap_or("")))
    {
        if let Some(what) = registry_write(method, &host, path) {
            let mut f = registry_write_finding(&target, method, path, what, "seen by the sinkhole");
            f.process = process;
            f.at_unix_ms = Some(*at);
            return Some(f);
        }
    }
    let (sev, why) = host_class(&host);
    let unremarkable = sev <= Severity::Low;
    let (sev, why) = match sent_class(payload, request_line.as_deref()) {
        Some((s, what)) if unremarkable => (s, what),
        _ if unremarkable && host == plain_ip.to_string() => {
            // A raw address nobody resolved: a hard-coded endpoint.
            (Severity::Medium, "a hard-coded address nobody resolved")
        }
        _ => (sev, why),
    };
    Some(Finding {
        code: Code::Connection,
        kind: FindingKind::NetworkAttempt,
        severity: sev,
        summary: format!("connection to `{target}` ({why})"),
        target,
        detail: Some(detail.join("; ")),
        process,
        at_unix_ms: Some(*at),
    })
}

/// Connections past the budget, counted per destination.
fn overflow_findings(
    state: &State,
    fake: &HashMap<Ipv4Addr, String>,
    canaries: &[Canary],
    connects: &[Sighting],
) -> Vec<Finding> {
    let mut out = Vec::new();
    for (dst, (count, hits, at)) in &state.tcp_overflow {
        let process = who(connects, *at, |a| a == dst.to_string());
        let name = match dst.ip() {
            IpAddr::V4(v4) => fake.get(&v4).cloned(),
            IpAddr::V6(v6) => v6.to_ipv4_mapped().and_then(|v4| fake.get(&v4).cloned()),
        };
        let target = format!(
            "{}:{}",
            name.unwrap_or_else(|| dst.ip().to_string()),
            dst.port()
        );
        let f = if hits.is_empty() {
            Finding::new(
                Code::Connection,
                format!(
                    "{count} more connections to `{target}` past the budget of {} recorded one by one",
                    budget::CONNECTIONS
                ),
                format!("{target} (more)"),
            )
            .severity(Severity::Medium)
        } else {
            Finding::new(
                Code::TcpExfiltration,
                format!(
                    "secret sent to `{target}` in {count} connections past the record budget ({})",
                    canary_ids(hits, canaries)
                ),
                format!("{target} (more)"),
            )
        };
        out.push(
            f.detail(format!("destination {dst}; searched for canaries in full"))
                .process(process)
                .at(Some(*at)),
        );
    }
    out
}

/// What the sinkhole could not record (parser failures caught, connections closed unread,
/// bytes not inspected).
fn degraded_finding(state: &State, not_inspected_total: u64) -> Option<Finding> {
    let mut degraded = Vec::new();
    if state.panic_count > 0 {
        degraded.push(format!(
            "{} datagram(s) or connection(s) made a parser fail ({}); the sinkhole kept serving",
            state.panic_count,
            state.panics.join("; ")
        ));
    }
    if state.unserved > 0 {
        degraded.push(format!(
            "{} connection(s) closed unread: {} were already open",
            state.unserved,
            budget::LIVE_CONNECTIONS
        ));
    }
    if not_inspected_total > 0 {
        degraded.push(format!(
            "{not_inspected_total} bytes not inspected for secrets (budget {} per connection, {} in all)",
            budget::INSPECT_PER_CONNECTION,
            budget::INSPECT_TOTAL
        ));
    }
    if !degraded.is_empty() {
        let severity = if state.panic_count > 0 || state.unserved > 0 {
            Severity::Medium
        } else {
            Severity::Low
        };
        return Some(
            Finding::new(
                Code::RecordingDegraded,
                format!("network recording degraded: {}", degraded.join("; ")),
                "sinkhole",
            )
            .severity(severity)
            .at(Some(crate::util::now_unix_ms())),
        );
    }
    None
}
