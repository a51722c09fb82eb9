//! The landlock tier's sinkhole. There is no network namespace whose routes would bring every
//! address to the sinkhole's listeners, so the supervisor hands each attempt over itself: the
//! syscall recorder answers a script's `connect` of a TCP socket by putting, at that descriptor
//! number, a connection to a loopback listener of ours, and a request for a UDP socket with one
//! end of a socket pair whose other end our DNS service reads. The kernel never runs the
//! script's own connect or creates its UDP socket, so nothing it sends can reach any other
//! address, loopback included: Landlock still refuses every TCP connect it makes itself, and a
//! sequenced-packet socket pair ignores any destination it names.
//!
//! What arrives is recorded exactly like the full tier's sinkhole records it (the same
//! [`Shared`] state, the same connection handler, the same DNS answers), under the destination
//! the script asked for.

use std::collections::HashSet;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixDatagram;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use super::{Shared, budget, dns_datagram, keep_thread, lock, serve_connection};

/// Datagram sockets handed out and still open at the same time; more are refused.
const LIVE_DATAGRAM_SOCKETS: usize = 128;
/// Foreign connections to our listener dropped while looking for our own (another local
/// process may connect to it; it is never served).
const ACCEPT_TRIES: usize = 64;

/// A handle on a running [`super::Sinkhole`] for handing connections over to it.
#[derive(Debug)]
pub struct Redirect {
    shared: Arc<Shared>,
    stop: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<JoinHandle<()>>>>,
    v4: Option<TcpListener>,
    v6: Option<TcpListener>,
    /// Inode numbers of the datagram sockets handed out that are still served (their number is
    /// the live count): a `connect` on one of them is answered here (it stays connected to the
    /// sinkhole).
    datagrams: Arc<Mutex<HashSet<u64>>>,
}

impl Redirect {
    pub(super) fn new(
        shared: Arc<Shared>,
        stop: Arc<AtomicBool>,
        conns: Arc<Mutex<Vec<JoinHandle<()>>>>,
    ) -> Redirect {
        let bind = |ip: std::net::IpAddr| {
            TcpListener::bind(SocketAddr::new(ip, 0))
                .and_then(|l| l.set_nonblocking(true).map(|()| l))
                .map_err(|e| tracing::debug!("no redirect listener on {ip}: {e}"))
                .ok()
        };
        Redirect {
            shared,
            stop,
            conns,
            v4: bind(Ipv4Addr::LOCALHOST.into()),
            v6: bind(Ipv6Addr::LOCALHOST.into()),
            datagrams: Arc::default(),
        }
    }

    /// A TCP connection to the sinkhole, recorded as a connection to `dst`: the socket to hand
    /// the script (an IPv6 one if `v6` and IPv6 loopback works). Refused past the sinkhole's
    /// budget of open connections, or when no loopback listener could be made.
    pub fn tcp(&self, dst: SocketAddr, v6: bool) -> io::Result<OwnedFd> {
        let listener = if v6 {
            self.v6.as_ref().or(self.v4.as_ref())
        } else {
            self.v4.as_ref().or(self.v6.as_ref())
        }
        .ok_or_else(|| io::Error::from_raw_os_error(libc::ECONNREFUSED))?;
        if self.shared.live.load(Ordering::SeqCst) >= budget::LIVE_CONNECTIONS {
            lock(&self.shared.state).unserved += 1;
            return Err(io::Error::from_raw_os_error(libc::ECONNREFUSED));
        }
        let client = TcpStream::connect(listener.local_addr()?)?;
        let ours = client.local_addr()?;
        // A loopback connect returns once the connection is established and queued: ours is
        // there to accept. Anything else queued is another process's, closed unserved.
        let mut server = None;
        for _ in 0..ACCEPT_TRIES {
            match listener.accept() {
                Ok((s, peer)) if peer == ours => {
                    server = Some(s);
                    break;
                }
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_micros(50));
                }
                Err(e) => return Err(e),
            }
        }
        let server = server.ok_or_else(|| io::Error::from_raw_os_error(libc::ECONNREFUSED))?;
        serve_connection(server, dst, &self.shared, &self.stop, &self.conns);
        Ok(OwnedFd::from(client))
    }

    /// A datagram socket for the script whose every message reaches our DNS service (a
    /// sequenced-packet socket pair: it keeps message boundaries, and the kernel ignores any
    /// destination a send names). Each query is answered as the full tier's sinkhole answers it.
    pub fn datagram(&self) -> io::Result<OwnedFd> {
        use nix::sys::socket::{AddressFamily, SockFlag, SockType, socketpair};
        if lock(&self.datagrams).len() >= LIVE_DATAGRAM_SOCKETS {
            return Err(io::Error::from_raw_os_error(libc::EMFILE));
        }
        let (ours, theirs) = socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )?;
        let ino = nix::sys::stat::fstat(theirs.as_fd())?.st_ino;
        lock(&self.datagrams).insert(ino);
        let (shared, stop, datagrams) = (
            self.shared.clone(),
            self.stop.clone(),
            self.datagrams.clone(),
        );
        let h = std::thread::spawn(move || {
            serve_queries(&UnixDatagram::from(ours), &shared, &stop);
            lock(&datagrams).remove(&ino);
        });
        keep_thread(&self.conns, h);
        Ok(theirs)
    }

    /// Whether the socket with inode `ino` is one of the datagram sockets handed out.
    pub fn is_datagram(&self, ino: u64) -> bool {
        lock(&self.datagrams).contains(&ino)
    }
}

/// Answer the DNS queries arriving on one handed-out datagram socket until the script closes
/// its end or the sinkhole stops. A message that is not a query is dropped (the recorder saw
/// its bytes when it was sent).
fn serve_queries(sock: &UnixDatagram, shared: &Shared, stop: &AtomicBool) {
    let _ = sock.set_read_timeout(Some(Duration::from_millis(100)));
    let mut buf = vec![0u8; budget::DATAGRAM];
    while !stop.load(Ordering::SeqCst) {
        match sock.recv(&mut buf) {
            // The script closed its end.
            Ok(0) => break,
            Ok(n) => {
                let datagram = buf.get(..n).unwrap_or_default();
                let served = catch_unwind(AssertUnwindSafe(|| {
                    if let Some(reply) = dns_datagram(datagram, shared) {
                        let _ = sock.send(&reply);
                    }
                }));
                if let Err(p) = served {
                    shared.degraded("DNS datagram", p.as_ref());
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) => {}
            Err(_) => break,
        }
    }
}
