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

mod classify;
mod dns;
mod redirect;
mod scan;
mod sniff;
#[cfg(test)]
mod tests;
mod unanswered;

use classify::*;
use dns::*;
pub use redirect::Redirect;
use scan::*;
pub(crate) use scan::{canaries_in, decode_hex};
use sniff::*;
pub(crate) use unanswered::{registry_writes, sent_encrypted, unanswered};

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

    /// A handle for handing connections and datagram sockets over to this sinkhole (the
    /// landlock tier, which has no network namespace to route them here).
    pub fn redirect(&self) -> Redirect {
        Redirect::new(self.shared.clone(), self.stop.clone(), self.conns.clone())
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
                // Inside the namespace every address is local: the accepted socket's own
                // address is where the script connected.
                let Ok(dst) = stream.local_addr().map(unmapped) else {
                    continue;
                };
                serve_connection(stream, dst, shared, stop, conns);
            }
        }
    }
}

/// Serve one accepted connection to `dst` on its own thread, counted as live while it runs
/// (the caller checked the budget); a panic in it is recorded as degraded recording.
fn serve_connection(
    stream: TcpStream,
    dst: SocketAddr,
    shared: &Arc<Shared>,
    stop: &Arc<AtomicBool>,
    conns: &Mutex<Vec<JoinHandle<()>>>,
) {
    shared.live.fetch_add(1, Ordering::SeqCst);
    let (shared, stop) = (shared.clone(), stop.clone());
    let h = std::thread::spawn(move || {
        let served = catch_unwind(AssertUnwindSafe(|| handle(stream, dst, &shared, &stop)));
        if let Err(p) = served {
            shared.degraded("TCP connection", p.as_ref());
        }
        shared.live.fetch_sub(1, Ordering::SeqCst);
    });
    keep_thread(conns, h);
}

/// Keep a serving thread for the final join; finished ones need none, so the list stays as
/// short as what is open.
fn keep_thread(conns: &Mutex<Vec<JoinHandle<()>>>, h: JoinHandle<()>) {
    let mut c = lock(conns);
    c.retain(|h| !h.is_finished());
    c.push(h);
}

/// An IPv4 address as such, not as the IPv4-mapped IPv6 address a dual-stack listener sees
/// (so that it matches the recorder's `connect` of the same destination).
fn unmapped(a: SocketAddr) -> SocketAddr {
    match a {
        SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(IpAddr::V4(v4), v6.port()),
            None => a,
        },
        SocketAddr::V4(_) => a,
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

/// Serve one connection to `dst`: read everything the client sends until it closes, goes idle or a
/// budget ends, searching all of it for canaries; answer a complete HTTP request with a 404 and
/// a TLS ClientHello with a fatal alert and close our side, so that clients fail fast and close
/// themselves (what a client sends on its half-open side is still read).
fn handle(mut stream: TcpStream, dst: SocketAddr, shared: &Shared, stop: &AtomicBool) {
    let _ = stream.set_nonblocking(false);
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
