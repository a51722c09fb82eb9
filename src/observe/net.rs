//! The supervisor side of the sinkhole: answers DNS with fake addresses, accepts every TCP
//! connection on the common ports, records query names, original destinations, TLS SNI, HTTP
//! request lines, headers and the first bytes, and turns them into findings. A canary seen in a
//! query name or a payload (raw, hex, base32 or base64, nested) is an exfiltration.

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use super::decoys::Canary;
use super::syscalls::Sighting;
use super::{Actor, Code, Finding, FindingKind, Severity};
use crate::sandbox::channel::SinkSocket;

/// TCP ports the sinkhole listens on (others are refused at once inside the namespace).
pub const TCP_PORTS: [u16; 20] = [
    21, 22, 25, 53, 80, 443, 587, 3000, 3306, 4873, 5000, 5432, 6379, 8000, 8080, 8443, 8888, 9000,
    9418, 27017,
];

/// What arrived.
#[derive(Debug, Clone)]
enum Event {
    Dns {
        name: String,
        qtype: u16,
        at: u64,
    },
    Tcp {
        dst: SocketAddr,
        payload: Vec<u8>,
        at: u64,
    },
}

#[derive(Debug, Default)]
struct Shared {
    events: Mutex<Vec<Event>>,
    fake: Mutex<HashMap<Ipv4Addr, String>>,
}

/// A running sinkhole for one sandbox.
#[derive(Debug)]
pub struct Sinkhole {
    stop: Arc<AtomicBool>,
    /// Closing the write end wakes the serving threads at once (their poll sees POLLHUP).
    wake: Option<OwnedFd>,
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
    conns: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl Sinkhole {
    /// Start serving the sockets the sandbox created.
    pub fn start(sockets: Vec<(SinkSocket, OwnedFd)>) -> Sinkhole {
        let stop = Arc::new(AtomicBool::new(false));
        let (wake_rx, wake_tx) = match nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC) {
            Ok((r, w)) => (Some(Arc::new(r)), Some(w)),
            Err(_) => (None, None),
        };
        let shared = Arc::new(Shared::default());
        let conns: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let mut threads = Vec::new();
        let mut listeners = Vec::new();
        for (kind, fd) in sockets {
            match kind {
                SinkSocket::Dns => {
                    let udp = UdpSocket::from(fd);
                    let (stop, shared, wake) = (stop.clone(), shared.clone(), wake_rx.clone());
                    threads.push(std::thread::spawn(move || {
                        serve_dns(&udp, &stop, &shared, wake.as_deref())
                    }));
                }
                SinkSocket::Tcp(_) => listeners.push(TcpListener::from(fd)),
            }
        }
        {
            let (stop, shared, conns, wake) =
                (stop.clone(), shared.clone(), conns.clone(), wake_rx.clone());
            threads.push(std::thread::spawn(move || {
                serve_tcp(&listeners, &stop, &shared, &conns, wake.as_deref())
            }));
        }
        Sinkhole {
            stop,
            wake: wake_tx,
            shared,
            threads,
            conns,
        }
    }

    /// Stop serving and classify everything that arrived; `connects` (from the syscall
    /// recorder, if any) name the process behind each connection.
    pub fn finish(mut self, canaries: &[Canary], connects: &[Sighting]) -> Vec<Finding> {
        self.stop.store(true, Ordering::SeqCst);
        drop(self.wake.take());
        for t in self.threads {
            let _ = t.join();
        }
        if let Ok(mut c) = self.conns.lock() {
            for t in c.drain(..) {
                let _ = t.join();
            }
        }
        let events = self
            .shared
            .events
            .lock()
            .map(|e| e.clone())
            .unwrap_or_default();
        let fake = self
            .shared
            .fake
            .lock()
            .map(|f| f.clone())
            .unwrap_or_default();
        classify(&events, &fake, canaries, connects)
    }
}

/// Wait until `fd` is readable or the wake pipe closes; `false` means stop.
fn wait_readable(
    fds: &[std::os::fd::BorrowedFd<'_>],
    wake: Option<&OwnedFd>,
    stop: &AtomicBool,
) -> bool {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    use std::os::fd::AsFd;
    let mut set: Vec<PollFd<'_>> = fds
        .iter()
        .map(|f| PollFd::new(*f, PollFlags::POLLIN))
        .collect();
    if let Some(w) = wake {
        set.push(PollFd::new(w.as_fd(), PollFlags::POLLIN));
    }
    // Without a wake pipe, poll in short slices so a stop is still noticed.
    let timeout = if wake.is_some() {
        PollTimeout::NONE
    } else {
        PollTimeout::from(50u16)
    };
    loop {
        if stop.load(Ordering::SeqCst) {
            return false;
        }
        match poll(&mut set, timeout) {
            Ok(0) | Err(nix::Error::EINTR) => continue,
            Ok(_) => {
                if wake.is_some()
                    && set
                        .last()
                        .and_then(|p| p.revents())
                        .is_some_and(|r| !r.is_empty())
                {
                    return false;
                }
                return true;
            }
            Err(_) => return false,
        }
    }
}

fn serve_dns(udp: &UdpSocket, stop: &AtomicBool, shared: &Shared, wake: Option<&OwnedFd>) {
    use std::os::fd::AsFd;
    let _ = udp.set_nonblocking(true);
    let mut buf = [0u8; 1500];
    while wait_readable(&[udp.as_fd()], wake, stop) {
        let Ok((n, from)) = udp.recv_from(&mut buf) else {
            continue;
        };
        let Some((name, qtype, qend)) = parse_query(&buf[..n]) else {
            continue;
        };
        if let Ok(mut e) = shared.events.lock() {
            e.push(Event::Dns {
                name: name.clone(),
                qtype,
                at: super::now_unix_ms(),
            });
        }
        let ip = (qtype == 1).then(|| fake_ip(shared, &name));
        let _ = udp.send_to(&answer(&buf[..qend], ip), from);
    }
}

/// A stable fake address in 198.18.0.0/15 (benchmarking range) per name.
fn fake_ip(shared: &Shared, name: &str) -> Ipv4Addr {
    let mut map = match shared.fake.lock() {
        Ok(m) => m,
        Err(p) => p.into_inner(),
    };
    if let Some((ip, _)) = map.iter().find(|(_, n)| *n == name) {
        return *ip;
    }
    let n = u32::try_from(map.len() + 1).unwrap_or(1);
    let ip = Ipv4Addr::from(0xC612_0000u32 | (n & 0x1_FFFF));
    map.insert(ip, name.to_string());
    ip
}

/// (name, qtype, end of the question section).
fn parse_query(p: &[u8]) -> Option<(String, u16, usize)> {
    if p.len() < 12 || p[2] & 0x80 != 0 || u16::from_be_bytes([p[4], p[5]]) == 0 {
        return None;
    }
    let mut i = 12;
    let mut labels = Vec::new();
    loop {
        let len = usize::from(*p.get(i)?);
        i += 1;
        if len == 0 {
            break;
        }
        if len > 63 {
            return None;
        }
        labels.push(String::from_utf8_lossy(p.get(i..i + len)?).into_owned());
        i += len;
    }
    let qtype = u16::from_be_bytes([*p.get(i)?, *p.get(i + 1)?]);
    Some((labels.join("."), qtype, i + 4))
}

fn answer(query: &[u8], ip: Option<Ipv4Addr>) -> Vec<u8> {
    let mut r = query.to_vec();
    r[2] = 0x80 | (query[2] & 0x01); // QR, keep RD
    r[3] = 0x80; // RA, NOERROR
    r[6] = 0;
    r[7] = u8::from(ip.is_some());
    r[8..12].fill(0);
    if let Some(ip) = ip {
        r.extend_from_slice(&[0xC0, 0x0C, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4]);
        r.extend_from_slice(&ip.octets());
    }
    r
}

fn serve_tcp(
    listeners: &[TcpListener],
    stop: &AtomicBool,
    shared: &Arc<Shared>,
    conns: &Arc<Mutex<Vec<JoinHandle<()>>>>,
    wake: Option<&OwnedFd>,
) {
    use std::os::fd::AsFd;
    for l in listeners {
        let _ = l.set_nonblocking(true);
    }
    let fds: Vec<std::os::fd::BorrowedFd<'_>> = listeners.iter().map(|l| l.as_fd()).collect();
    while wait_readable(&fds, wake, stop) {
        for l in listeners {
            while let Ok((stream, _)) = l.accept() {
                let shared = shared.clone();
                let h = std::thread::spawn(move || handle(stream, &shared));
                if let Ok(mut c) = conns.lock() {
                    c.push(h);
                }
            }
        }
    }
}

/// Read what the client sends (up to 64 KiB, until it pauses), answer HTTP with a 404 so clients
/// fail fast, record, close.
fn handle(mut stream: TcpStream, shared: &Shared) {
    let _ = stream.set_nonblocking(false);
    let Ok(dst) = stream.local_addr() else { return };
    let at = super::now_unix_ms();
    let _ = stream.set_read_timeout(Some(Duration::from_millis(300)));
    let mut payload = Vec::new();
    let mut buf = [0u8; 8192];
    while payload.len() < 64 << 10 {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                payload.extend_from_slice(&buf[..n]);
                if http_complete(&payload) {
                    break;
                }
            }
        }
    }
    if payload.starts_with(b"GET ")
        || payload.starts_with(b"POST ")
        || payload.starts_with(b"PUT ")
        || payload.starts_with(b"HEAD ")
        || payload.starts_with(b"CONNECT ")
    {
        let _ = stream
            .write_all(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
    }
    if let Ok(mut e) = shared.events.lock() {
        e.push(Event::Tcp { dst, payload, at });
    }
}

fn http_complete(p: &[u8]) -> bool {
    let Some(end) = p.windows(4).position(|w| w == b"\r\n\r\n") else {
        return false;
    };
    let head = String::from_utf8_lossy(&p[..end]).to_ascii_lowercase();
    let len = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    p.len() >= end + 4 + len
}

/// The TLS SNI of a ClientHello, if the payload is one.
fn sni(p: &[u8]) -> Option<String> {
    if p.len() < 43 || p[0] != 0x16 || p[5] != 0x01 {
        return None;
    }
    let mut i = 43;
    let sid = usize::from(*p.get(i)?);
    i += 1 + sid;
    let cs = usize::from(u16::from_be_bytes([*p.get(i)?, *p.get(i + 1)?]));
    i += 2 + cs;
    let cm = usize::from(*p.get(i)?);
    i += 1 + cm;
    let ext_end = i + 2 + usize::from(u16::from_be_bytes([*p.get(i)?, *p.get(i + 1)?]));
    i += 2;
    while i + 4 <= ext_end.min(p.len()) {
        let ty = u16::from_be_bytes([p[i], p[i + 1]]);
        let len = usize::from(u16::from_be_bytes([p[i + 2], p[i + 3]]));
        if ty == 0 {
            let name_len = usize::from(u16::from_be_bytes([*p.get(i + 7)?, *p.get(i + 8)?]));
            return Some(String::from_utf8_lossy(p.get(i + 9..i + 9 + name_len)?).into_owned());
        }
        i += 4 + len;
    }
    None
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if s.len() < 8 || s.len() % 2 != 0 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
        .collect()
}

/// Pack `width`-bit symbols (`None` = not in the alphabet) into bytes, as base32/base64 do.
fn unpack_bits(symbols: impl Iterator<Item = Option<u8>>, width: u32) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0u32);
    for v in symbols {
        acc = ((acc << width) | u32::from(v?)) & 0xFFFF;
        bits += width;
        if bits >= 8 {
            bits -= 8;
            out.push(((acc >> bits) & 0xFF) as u8);
        }
    }
    Some(out)
}

fn decode_base32(s: &str) -> Option<Vec<u8>> {
    let s = s.trim_end_matches('=').to_ascii_uppercase();
    if s.len() < 8 {
        return None;
    }
    unpack_bits(
        s.bytes().map(|b| match b {
            b'A'..=b'Z' => Some(b - b'A'),
            b'2'..=b'7' => Some(b - b'2' + 26),
            _ => None,
        }),
        5,
    )
}

fn decode_base64(s: &str) -> Option<Vec<u8>> {
    let s = s.trim_end_matches('=');
    if s.len() < 12 {
        return None;
    }
    unpack_bits(
        s.bytes().map(|b| match b {
            b'A'..=b'Z' => Some(b - b'A'),
            b'a'..=b'z' => Some(b - b'a' + 26),
            b'0'..=b'9' => Some(b - b'0' + 52),
            b'+' | b'-' => Some(62),
            b'/' | b'_' => Some(63),
            _ => None,
        }),
        6,
    )
}

/// Every text a payload may carry a secret in: itself, and the decodings of its hex, base32 and
/// base64 tokens, nested up to three levels (Shai-Hulud double-base64-encodes).
fn expansions(data: &[u8]) -> Vec<Vec<u8>> {
    let mut out = vec![data.to_vec()];
    let mut frontier = vec![data.to_vec()];
    for _ in 0..3 {
        let mut next = Vec::new();
        for d in &frontier {
            let text = String::from_utf8_lossy(d);
            for token in text.split(|c: char| !(c.is_ascii_alphanumeric() || "+/_-".contains(c))) {
                for dec in [
                    decode_hex(token),
                    decode_base32(token),
                    decode_base64(token),
                ]
                .into_iter()
                .flatten()
                {
                    if dec.len() >= 6 && !out.contains(&dec) {
                        next.push(dec.clone());
                        out.push(dec);
                    }
                }
            }
        }
        if next.is_empty() || out.len() > 4096 {
            break;
        }
        frontier = next;
    }
    out
}

/// Canary fragments this long are matched too: exfiltration often splits a token across DNS
/// labels or truncates it, and 16 characters of a random canary never occur by chance.
const MIN_FRAGMENT: usize = 16;

pub(crate) fn canaries_in<'a>(data: &[u8], canaries: &'a [Canary]) -> Vec<&'a Canary> {
    // Matched without regard to ASCII case (host names, DNS labels and SNI arrive lowercased:
    // node and resolvers fold them) and also reversed (loot stored backwards).
    let mut texts = expansions(data);
    texts.push(data.iter().rev().copied().collect());
    for t in &mut texts {
        t.make_ascii_lowercase();
    }
    let values: Vec<Vec<u8>> = canaries
        .iter()
        .map(|c| c.value.to_ascii_lowercase().into_bytes())
        .collect();
    // Every fragment of every canary, by length: one pass over each text per length.
    let mut by_len: BTreeMap<usize, HashMap<&[u8], Vec<usize>>> = BTreeMap::new();
    for (i, v) in values.iter().enumerate() {
        let n = v.len().min(MIN_FRAGMENT);
        if n == 0 {
            continue;
        }
        let frags = by_len.entry(n).or_default();
        for f in v.windows(n) {
            frags.entry(f).or_default().push(i);
        }
    }
    let mut hit = vec![false; canaries.len()];
    for (n, frags) in &by_len {
        for t in &texts {
            for w in t.windows(*n) {
                if let Some(ids) = frags.get(w) {
                    for &i in ids {
                        hit[i] = true;
                    }
                }
            }
        }
    }
    canaries
        .iter()
        .zip(hit)
        .filter_map(|(c, h)| h.then_some(c))
        .collect()
}

/// How suspicious a destination host is.
fn host_class(host: &str) -> (Severity, &'static str) {
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

/// How much a payload without a secret to an otherwise unremarkable host adds: data of the
/// script's choosing uploaded (an HTTP request with a body, or a non-TLS, non-HTTP stream) is
/// suspicious; a plain GET or a TLS handshake is what every downloader does.
fn sent_class(payload: &[u8], request_line: Option<&str>) -> Option<(Severity, &'static str)> {
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

fn printable(data: &[u8]) -> String {
    String::from_utf8_lossy(&data[..data.len().min(200)])
        .chars()
        .map(|c| if c.is_control() && c != '\n' { '.' } else { c })
        .collect::<String>()
        .replace("\r\n", "\\n")
        .replace('\n', "\\n")
}

/// The process that made a connection: the last connect to the same destination (DNS: to any
/// port 53) the recorder saw before it arrived (with 50 ms of slack for clock reads).
fn who(connects: &[Sighting], at: u64, matches: impl Fn(&str) -> bool) -> Option<Actor> {
    let same: Vec<&Sighting> = connects.iter().filter(|c| matches(&c.what)).collect();
    same.iter()
        .rev()
        .find(|c| c.at_unix_ms <= at + 50)
        .or(same.last())
        .map(|c| c.actor.clone())
}

fn classify(
    events: &[Event],
    fake: &HashMap<Ipv4Addr, String>,
    canaries: &[Canary],
    connects: &[Sighting],
) -> Vec<Finding> {
    let mut out = Vec::new();
    let mut dns_seen: BTreeMap<String, (Vec<u16>, u64)> = BTreeMap::new();
    for e in events {
        if let Event::Dns { name, qtype, at } = e {
            let entry = dns_seen.entry(name.clone()).or_insert((Vec::new(), *at));
            entry.0.push(*qtype);
        }
    }
    for (name, (qtypes, at)) in &dns_seen {
        let process = who(connects, *at, |a| a.ends_with(":53"));
        let hits = canaries_in(name.as_bytes(), canaries);
        let decoded: Vec<String> = name
            .split('.')
            .filter_map(|l| decode_hex(l).or_else(|| decode_base32(l)))
            .filter(|d| d.iter().all(|b| b.is_ascii_graphic() || *b == b' '))
            .map(|d| String::from_utf8_lossy(&d).into_owned())
            .collect();
        let detail =
            (!decoded.is_empty()).then(|| format!("decoded labels: {}", decoded.join(" | ")));
        if !hits.is_empty() {
            out.push(Finding {
                code: Code::DnsExfiltration,
                kind: FindingKind::Exfiltration,
                severity: Severity::Critical,
                summary: format!(
                    "secret sent out in a DNS query name ({})",
                    hits.iter()
                        .map(|c| c.id.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                target: name.clone(),
                detail,
                process: process.clone(),
                at_unix_ms: Some(*at),
            });
        } else {
            let (sev, why) = host_class(name);
            // Long encoded labels are a DNS tunnel even without a canary (hostname, user, cwd).
            let sev = if decoded.is_empty() {
                sev
            } else {
                sev.max(Severity::High)
            };
            out.push(Finding {
                code: if decoded.is_empty() {
                    Code::DnsLookup
                } else {
                    Code::DnsTunnel
                },
                kind: FindingKind::NetworkAttempt,
                severity: sev,
                summary: format!("DNS lookup of `{name}` ({why}; {} queries)", qtypes.len()),
                target: name.clone(),
                detail,
                process: process.clone(),
                at_unix_ms: Some(*at),
            });
        }
    }
    let mut tcp_seen: BTreeMap<String, usize> = BTreeMap::new();
    for e in events {
        let Event::Tcp { dst, payload, at } = e else {
            continue;
        };
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
        let hits = canaries_in(payload, canaries);
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
        detail.push(format!(
            "{} bytes; first: {}",
            payload.len(),
            printable(payload)
        ));
        if !hits.is_empty() {
            out.push(Finding {
                code: Code::TcpExfiltration,
                kind: FindingKind::Exfiltration,
                severity: Severity::Critical,
                summary: format!(
                    "secret sent to `{target}` ({})",
                    hits.iter()
                        .map(|c| c.id.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                target,
                detail: Some(detail.join("; ")),
                process: process.clone(),
                at_unix_ms: Some(*at),
            });
            continue;
        }
        let count = tcp_seen.entry(target.clone()).or_default();
        *count += 1;
        if *count > 1 {
            continue;
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
        out.push(Finding {
            code: Code::Connection,
            kind: FindingKind::NetworkAttempt,
            severity: sev,
            summary: format!("connection to `{target}` ({why})"),
            target,
            detail: Some(detail.join("; ")),
            process,
            at_unix_ms: Some(*at),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canary(v: &str) -> Canary {
        Canary {
            id: "npmrc-token".into(),
            value: v.into(),
        }
    }

    #[test]
    fn canaries_are_found_through_encodings() {
        let c = [canary("npm_AbCdEf0123456789xyz")];
        let b64 = "bnBtX0FiQ2RFZjAxMjM0NTY3ODl4eXo="; // base64 of the canary
        let double = "Ym5CdFgwRmlRMlJGWmpBeE1qTTBOVFkzT0RsNGVYbz0="; // base64(base64)
        for payload in [
            "token=npm_AbCdEf0123456789xyz".to_string(),
            format!("{{\"d\":\"{b64}\"}}"),
            format!("data={double}"),
        ] {
            assert_eq!(canaries_in(payload.as_bytes(), &c).len(), 1, "{payload}");
        }
        assert!(canaries_in(b"nothing here", &c).is_empty());
        // Host names arrive lowercased; loot may be stored reversed.
        assert_eq!(
            canaries_in(b"npm_abcdef0123456789xyz.x.attacker.test", &c).len(),
            1
        );
        let reversed: Vec<u8> = b"t=npm_AbCdEf0123456789xyz".iter().rev().copied().collect();
        assert_eq!(canaries_in(&reversed, &c).len(), 1);
        // A truncated token still counts (16 characters or more of it).
        assert_eq!(canaries_in(b"x=AbCdEf0123456789", &c).len(), 1);
        assert!(canaries_in(b"x=AbCdEf01234", &c).is_empty());
        let hex: String = "npm_AbCdEf0123456789xyz"
            .bytes()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(
            canaries_in(format!("{hex}.x.attacker.test").as_bytes(), &c).len(),
            1
        );
    }

    #[test]
    fn dns_query_round_trip() {
        let mut q = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        for l in ["abc", "example", "com"] {
            q.push(u8::try_from(l.len()).unwrap());
            q.extend_from_slice(l.as_bytes());
        }
        q.extend_from_slice(&[0, 0, 1, 0, 1]);
        let (name, qtype, end) = parse_query(&q).unwrap();
        assert_eq!((name.as_str(), qtype, end), ("abc.example.com", 1, q.len()));
        let a = answer(&q, Some(Ipv4Addr::new(198, 18, 0, 1)));
        assert_eq!(a[7], 1);
        assert_eq!(&a[a.len() - 4..], &[198, 18, 0, 1]);
    }

    #[test]
    fn hosts_are_classified() {
        assert_eq!(host_class("169.254.169.254").0, Severity::High);
        assert_eq!(host_class("abc.oastify.com").0, Severity::High);
        assert_eq!(host_class("github.com").0, Severity::Low);
        assert_eq!(host_class("api.github.com").0, Severity::Medium);
        assert_eq!(host_class("example.org").0, Severity::Low);
        assert_eq!(host_class("opencollective.com").0, Severity::Info);
        assert_eq!(
            sent_class(
                b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n",
                Some("GET /x HTTP/1.1")
            ),
            None
        );
        assert_eq!(
            sent_class(
                b"POST /x HTTP/1.1\r\nHost: a\r\n\r\nhostname=box",
                Some("POST /x HTTP/1.1")
            )
            .map(|s| s.0),
            Some(Severity::Medium)
        );
        assert_eq!(sent_class(&[0x16, 3, 1, 0, 200, 1, 0, 0], None), None);
    }

    #[test]
    fn connections_are_attributed_to_the_matching_connect() {
        let seen = |addr: &str, pid: u32, at: u64| Sighting {
            what: addr.into(),
            actor: Actor {
                pid,
                argv: vec![format!("p{pid}")],
            },
            at_unix_ms: at,
        };
        let connects = vec![
            seen("127.0.0.53:53", 4, 100),
            seen("198.18.0.1:443", 5, 110),
            seen("198.18.0.1:443", 6, 500),
            seen("198.18.0.2:80", 7, 120),
        ];
        let dst: SocketAddr = "198.18.0.1:443".parse().unwrap();
        let events = vec![
            Event::Dns {
                name: "x.attacker.test".into(),
                qtype: 1,
                at: 101,
            },
            Event::Tcp {
                dst,
                payload: b"GET / HTTP/1.1\r\nHost: x.attacker.test\r\n\r\n".to_vec(),
                at: 111,
            },
        ];
        let f = classify(&events, &HashMap::new(), &[], &connects);
        let pids: Vec<Option<u32>> = f
            .iter()
            .map(|x| x.process.as_ref().map(|a| a.pid))
            .collect();
        assert_eq!(pids, vec![Some(4), Some(5)]);
        assert_eq!(f[1].at_unix_ms, Some(111));
    }
}
