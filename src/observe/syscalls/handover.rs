//! The landlock tier's network, answered by the recorder: a UDP socket request gets a socket
//! that reaches only the sinkhole's DNS service, and a TCP `connect` to a port the sinkhole
//! serves gets, at the same descriptor number, a connection to the sinkhole
//! ([`crate::observe::net::Redirect`]). Every answer here is given instead of the syscall: the
//! kernel never runs the script's own connect, so what the script wrote into memory can change
//! what is recorded, never where anything goes. What is not handed over runs as the kernel
//! decides, under Landlock (which refuses every TCP connect) and the static filters.

use std::net::SocketAddr;
use std::os::fd::{AsFd, OwnedFd, RawFd};

use nix::sys::socket::{SockType, getsockopt, sockopt};

use super::*;
use crate::observe::net::Redirect;

/// Whether a notified `socket` call asks for a UDP socket (IPv4 or IPv6).
pub(super) fn is_inet_datagram(nr: i32, args: [u64; 6]) -> bool {
    let family = i32::try_from(args[0] & 0xffff_ffff).unwrap_or(-1);
    let ty = i32::try_from(args[1] & 0xf).unwrap_or(-1);
    i64::from(nr) == libc::SYS_socket
        && (family == libc::AF_INET || family == libc::AF_INET6)
        && ty == libc::SOCK_DGRAM
}

/// Answer a UDP `socket` call with a datagram socket of the sinkhole's, with the flags asked
/// for (`SOCK_NONBLOCK`, `SOCK_CLOEXEC`); refused if none can be made.
pub(super) fn datagram_socket(listener: &OwnedFd, req: &libc::seccomp_notif, r: &Redirect) {
    let flags = i32::try_from(req.data.args[1] & 0xffff_ffff).unwrap_or(0);
    let given = r.datagram().and_then(|fd| {
        if flags & libc::SOCK_NONBLOCK != 0 {
            set_nonblocking(&fd)?;
        }
        sys::seccomp_notif_addfd_send(
            listener.as_fd(),
            req.id,
            fd.as_fd(),
            flags & libc::SOCK_CLOEXEC != 0,
        )
    });
    if let Err(e) = given {
        tracing::debug!("a datagram socket for the sandbox: {e}");
        let _ = sys::seccomp_notif_fail(
            listener.as_fd(),
            req.id,
            e.raw_os_error().unwrap_or(libc::EACCES),
        );
    }
}

/// Answer a request a UDP socket grants and a socket pair cannot, on a datagram socket handed
/// out: success. These are the resolver's ICMP error reports (`IP_RECVERR`, the only
/// `setsockopt` notified) and a `bind` of a local address (libuv binds before its first send).
/// On any other socket the call runs as the kernel decides (Landlock refuses every TCP bind).
pub(super) fn granted_on_ours(listener: &OwnedFd, req: &libc::seccomp_notif, r: &Redirect) {
    let ours = RawFd::try_from(req.data.args[0] & 0xffff_ffff)
        .ok()
        .and_then(|fd| their_socket(listener, req, fd))
        .is_some_and(|theirs| {
            nix::sys::stat::fstat(theirs.as_fd()).is_ok_and(|st| r.is_datagram(st.st_ino))
        });
    let _ = if ours {
        sys::seccomp_notif_succeed(listener.as_fd(), req.id)
    } else {
        sys::seccomp_notif_continue(listener.as_fd(), req.id)
    };
}

/// Answer a `connect` to the inet address `addr` if it is the sinkhole's to answer: on a
/// datagram socket handed out (success: it stays connected to the sinkhole), or on a TCP socket
/// (a connection to the sinkhole put in its place for a port the sinkhole serves, else
/// ECONNREFUSED, as a port nothing listens on in the full tier's namespace). `false`: not
/// answered here (another kind of socket, or the target could not be inspected); the syscall
/// then runs under Landlock and the static filters.
pub(super) fn connect(
    listener: &OwnedFd,
    req: &libc::seccomp_notif,
    addr: &str,
    r: &Redirect,
) -> bool {
    let Ok(dst) = addr.parse::<SocketAddr>() else {
        return false;
    };
    let Ok(fd) = RawFd::try_from(req.data.args[0] & 0xffff_ffff) else {
        return false;
    };
    let Some(theirs) = their_socket(listener, req, fd) else {
        return false;
    };
    let answer = |errno: Option<i32>| {
        let _ = match errno {
            Some(e) => sys::seccomp_notif_fail(listener.as_fd(), req.id, e),
            None => sys::seccomp_notif_succeed(listener.as_fd(), req.id),
        };
        true
    };
    if nix::sys::stat::fstat(theirs.as_fd()).is_ok_and(|st| r.is_datagram(st.st_ino)) {
        return answer(None);
    }
    if getsockopt(&theirs, sockopt::SockType).ok() != Some(SockType::Stream) {
        return false;
    }
    let v6 = match nix::sys::socket::getsockname::<nix::sys::socket::SockaddrStorage>(
        std::os::fd::AsRawFd::as_raw_fd(&theirs),
    ) {
        Ok(a) if a.as_sockaddr_in6().is_some() => true,
        Ok(a) if a.as_sockaddr_in().is_some() => false,
        _ => return false,
    };
    if nix::sys::socket::getpeername::<nix::sys::socket::SockaddrStorage>(
        std::os::fd::AsRawFd::as_raw_fd(&theirs),
    )
    .is_ok()
    {
        return answer(Some(libc::EISCONN));
    }
    if !crate::observe::net::TCP_PORTS.contains(&dst.port()) {
        return answer(Some(libc::ECONNREFUSED));
    }
    let handed = r.tcp(dst, v6).and_then(|sub| {
        carry_over(&theirs, &sub)?;
        sys::seccomp_notif_addfd_at(
            listener.as_fd(),
            req.id,
            sub.as_fd(),
            u32::try_from(fd).unwrap_or(u32::MAX),
            close_on_exec(req.pid, fd),
        )
    });
    match handed {
        Ok(()) => answer(None),
        Err(e) => {
            tracing::debug!("handing a connection to {dst} over: {e}");
            answer(Some(libc::ECONNREFUSED))
        }
    }
}

/// Our duplicate of descriptor `fd` of the notifying process, if it may be inspected and the
/// notification is still pending (so the pid still names the process that made it).
fn their_socket(listener: &OwnedFd, req: &libc::seccomp_notif, fd: RawFd) -> Option<OwnedFd> {
    // The notification names the thread; descriptors belong to its process (a resolver thread
    // is not the leader that pidfd_open wants).
    let status = std::fs::read_to_string(format!("/proc/{}/status", req.pid)).ok()?;
    let tgid: i32 = status
        .lines()
        .find_map(|l| l.strip_prefix("Tgid:"))
        .and_then(|v| v.trim().parse().ok())?;
    let pidfd = sys::pidfd_open(nix::unistd::Pid::from_raw(tgid)).ok()?;
    if !sys::seccomp_notif_id_valid(listener.as_fd(), req.id) {
        return None;
    }
    sys::pidfd_getfd(pidfd.as_fd(), fd).ok()
}

/// What the script set on its socket that its replacement must have: non-blocking mode and
/// the send and receive timeouts.
fn carry_over(theirs: &OwnedFd, sub: &OwnedFd) -> std::io::Result<()> {
    use nix::fcntl::{FcntlArg, OFlag, fcntl};
    let flags = OFlag::from_bits_truncate(fcntl(theirs, FcntlArg::F_GETFL)?);
    if flags.contains(OFlag::O_NONBLOCK) {
        set_nonblocking(sub)?;
    }
    if let Ok(t) = getsockopt(theirs, sockopt::ReceiveTimeout) {
        let _ = nix::sys::socket::setsockopt(sub, sockopt::ReceiveTimeout, &t);
    }
    if let Ok(t) = getsockopt(theirs, sockopt::SendTimeout) {
        let _ = nix::sys::socket::setsockopt(sub, sockopt::SendTimeout, &t);
    }
    Ok(())
}

fn set_nonblocking(fd: &OwnedFd) -> std::io::Result<()> {
    use nix::fcntl::{FcntlArg, OFlag, fcntl};
    let flags = OFlag::from_bits_truncate(fcntl(fd, FcntlArg::F_GETFL)?);
    fcntl(fd, FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK))?;
    Ok(())
}

/// Whether descriptor `fd` of process `pid` is close-on-exec (its `fdinfo` flags).
fn close_on_exec(pid: u32, fd: RawFd) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/fdinfo/{fd}"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("flags:"))
                .and_then(|v| i64::from_str_radix(v.trim(), 8).ok())
        })
        .is_some_and(|flags| flags & i64::from(libc::O_CLOEXEC) != 0)
}
