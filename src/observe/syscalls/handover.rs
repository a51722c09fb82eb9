//! The landlock tier's network, answered by the recorder: a UDP socket request gets a socket
//! that reaches only the sinkhole's DNS service, and a TCP `connect` to a port the sinkhole
//! serves gets, at the same descriptor number, a connection to the sinkhole
//! ([`crate::observe::net::Redirect`]). Every answer here is given instead of the syscall: the
//! kernel never runs the script's own connect, so what the script wrote into memory can change
//! what is recorded, never where anything goes. What is not handed over runs as the kernel
//! decides, under Landlock (which refuses every TCP connect) and the static filters.

use std::net::SocketAddr;
use std::os::fd::{AsFd, OwnedFd, RawFd};

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
        .and_then(|fd| socket_inode(listener, req, fd))
        .is_some_and(|ino| r.is_datagram(ino));
    let _ = if ours {
        sys::seccomp_notif_succeed(listener.as_fd(), req.id)
    } else {
        sys::seccomp_notif_continue(listener.as_fd(), req.id)
    };
}

/// Answer a `connect` to the inet address `addr`: on a datagram socket handed out, success (it
/// stays connected to the sinkhole); on any other socket, a connection to the sinkhole put in
/// its place for a port the sinkhole serves, else ECONNREFUSED (as a port nothing listens on in
/// the full tier's namespace). `false`: not answered here (the descriptor could not be looked
/// at); the syscall then runs under Landlock and the static filters.
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
    let Some(ino) = socket_inode(listener, req, fd) else {
        return false;
    };
    let answer = |errno: Option<i32>| {
        let _ = match errno {
            Some(e) => sys::seccomp_notif_fail(listener.as_fd(), req.id, e),
            None => sys::seccomp_notif_succeed(listener.as_fd(), req.id),
        };
        true
    };
    if r.is_datagram(ino) {
        return answer(None);
    }
    // Any other socket asked to connect to an inet address is a TCP one (the UDP sockets here
    // are all ours; the rest of the inet family is refused at `socket`). Whatever it really is,
    // it is only ever replaced by a connection to the sinkhole.
    if !crate::observe::net::TCP_PORTS.contains(&dst.port()) {
        return answer(Some(libc::ECONNREFUSED));
    }
    let flags = fd_flags(req.pid, fd).unwrap_or(0);
    let handed = r.tcp(dst, dst.is_ipv6()).and_then(|sub| {
        if flags & i64::from(libc::O_NONBLOCK) != 0 {
            set_nonblocking(&sub)?;
        }
        sys::seccomp_notif_addfd_at(
            listener.as_fd(),
            req.id,
            sub.as_fd(),
            u32::try_from(fd).unwrap_or(u32::MAX),
            flags & i64::from(libc::O_CLOEXEC) != 0,
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

/// The socket inode at descriptor `fd` of the notifying thread (`socket:[N]`, its `/proc` fd
/// link), if the notification is still pending (so the pid still names the thread that made
/// it). A read-only look through `/proc`, not `pidfd_getfd`, which needs a ptrace attach that
/// Yama or a container runtime's profile may refuse: measured, with `pidfd_getfd` nothing was
/// handed over in Docker's default container (`scripts/container-check`, `run-sinkhole`).
fn socket_inode(listener: &OwnedFd, req: &libc::seccomp_notif, fd: RawFd) -> Option<u64> {
    let link = std::fs::read_link(format!("/proc/{}/fd/{fd}", req.pid)).ok()?;
    if !sys::seccomp_notif_id_valid(listener.as_fd(), req.id) {
        return None;
    }
    link.to_str()?
        .strip_prefix("socket:[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

fn set_nonblocking(fd: &OwnedFd) -> std::io::Result<()> {
    use nix::fcntl::{FcntlArg, OFlag, fcntl};
    let flags = OFlag::from_bits_truncate(fcntl(fd, FcntlArg::F_GETFL)?);
    fcntl(fd, FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK))?;
    Ok(())
}

/// The file status and descriptor flags of descriptor `fd` of thread `pid` (`fdinfo`'s octal
/// `flags`: `O_NONBLOCK`, and `O_CLOEXEC` for the descriptor's close-on-exec).
fn fd_flags(pid: u32, fd: RawFd) -> Option<i64> {
    std::fs::read_to_string(format!("/proc/{pid}/fdinfo/{fd}"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("flags:"))
        .and_then(|v| i64::from_str_radix(v.trim(), 8).ok())
}
