//! The sandbox's own network namespace: loopback up, and optionally the recording sinkhole.
//!
//! Without the sinkhole every address outside is unreachable (ENETUNREACH at once). With it,
//! `local 0.0.0.0/0` and `local ::/0` routes on `lo` make *every* address local to this namespace
//! (measured: unprivileged, no iptables needed), so a DNS query to whatever `resolv.conf` names and
//! a connection to any address reach listeners created here; `getsockname` on an accepted socket
//! still returns the original destination. Nothing ever leaves the namespace. The sockets are
//! created here, while we hold CAP_NET_BIND_SERVICE in the namespace, and handed to the
//! supervisor, which records what arrives.

use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use nix::sys::socket::{
    AddressFamily, Backlog, NetlinkAddr, SockFlag, SockProtocol, SockType, SockaddrIn6, bind,
    listen, recv, send, setsockopt, socket, sockopt,
};

use super::channel::SinkSocket;
use super::plan::NetworkPlan;
use crate::sys;

/// `AF_INET` / `AF_INET6` as the byte `struct rtmsg` carries.
const AF_INET: u8 = 2;
const AF_INET6: u8 = 10;

/// Prepare the network namespace as planned; returns the sinkhole sockets, if any.
pub fn setup(plan: &NetworkPlan) -> io::Result<Vec<(SinkSocket, OwnedFd)>> {
    if plan.loopback_up {
        let sock = socket(
            AddressFamily::Inet,
            SockType::Datagram,
            SockFlag::SOCK_CLOEXEC,
            None,
        )?;
        sys::interface_up(sock.as_fd(), c"lo")?;
    }
    let Some(sink) = &plan.sinkhole else {
        return Ok(Vec::new());
    };
    add_local_default_route(AF_INET)?;
    // IPv6 may be disabled on this host: then v4 alone is captured.
    let v6 = add_local_default_route(AF_INET6).is_ok();
    let mut out = Vec::new();
    out.push((SinkSocket::Dns, udp_listener(53, v6)?));
    for port in &sink.tcp_ports {
        out.push((SinkSocket::Tcp(*port), tcp_listener(*port, v6)?));
    }
    Ok(out)
}

fn dual_stack(ty: SockType, v6: bool) -> io::Result<(OwnedFd, bool)> {
    if v6 {
        if let Ok(s) = socket(AddressFamily::Inet6, ty, SockFlag::SOCK_CLOEXEC, None) {
            setsockopt(&s, sockopt::Ipv6V6Only, &false)?;
            return Ok((s, true));
        }
    }
    Ok((
        socket(AddressFamily::Inet, ty, SockFlag::SOCK_CLOEXEC, None)?,
        false,
    ))
}

fn bind_any(s: &OwnedFd, port: u16, v6: bool) -> io::Result<()> {
    if v6 {
        bind(
            s.as_raw_fd(),
            &SockaddrIn6::from(std::net::SocketAddrV6::new(
                std::net::Ipv6Addr::UNSPECIFIED,
                port,
                0,
                0,
            )),
        )?;
    } else {
        bind(
            s.as_raw_fd(),
            &nix::sys::socket::SockaddrIn::new(0, 0, 0, 0, port),
        )?;
    }
    Ok(())
}

fn udp_listener(port: u16, v6: bool) -> io::Result<OwnedFd> {
    let (s, v6) = dual_stack(SockType::Datagram, v6)?;
    bind_any(&s, port, v6)?;
    Ok(s)
}

fn tcp_listener(port: u16, v6: bool) -> io::Result<OwnedFd> {
    let (s, v6) = dual_stack(SockType::Stream, v6)?;
    setsockopt(&s, sockopt::ReuseAddr, &true)?;
    bind_any(&s, port, v6)?;
    listen(&s, Backlog::new(64).unwrap_or(Backlog::MAXCONN))?;
    Ok(s)
}

/// `ip route add local <any>/0 dev lo table local` through one rtnetlink message.
fn add_local_default_route(family: u8) -> io::Result<()> {
    const RTM_NEWROUTE: u16 = 24;
    const NLM_F_REQUEST: u16 = 0x1;
    const NLM_F_ACK: u16 = 0x4;
    const NLM_F_EXCL: u16 = 0x200;
    const NLM_F_CREATE: u16 = 0x400;
    const RT_TABLE_LOCAL: u8 = 255;
    const RTPROT_BOOT: u8 = 3;
    const RT_SCOPE_HOST: u8 = 254;
    const RTN_LOCAL: u8 = 2;
    const RTA_OIF: u16 = 4;
    const NLMSG_ERROR: u16 = 2;
    let lo_index: u32 = 1;

    let mut msg = Vec::with_capacity(36);
    let len: u32 = 16 + 12 + 8;
    msg.extend_from_slice(&len.to_ne_bytes());
    msg.extend_from_slice(&RTM_NEWROUTE.to_ne_bytes());
    msg.extend_from_slice(&(NLM_F_REQUEST | NLM_F_ACK | NLM_F_EXCL | NLM_F_CREATE).to_ne_bytes());
    msg.extend_from_slice(&1u32.to_ne_bytes()); // seq
    msg.extend_from_slice(&0u32.to_ne_bytes()); // pid
    // struct rtmsg
    msg.extend_from_slice(&[
        family,
        0, // dst_len: the default route
        0, // src_len
        0, // tos
        RT_TABLE_LOCAL,
        RTPROT_BOOT,
        RT_SCOPE_HOST,
        RTN_LOCAL,
    ]);
    msg.extend_from_slice(&0u32.to_ne_bytes()); // rtm_flags
    // RTA_OIF = lo
    msg.extend_from_slice(&8u16.to_ne_bytes());
    msg.extend_from_slice(&RTA_OIF.to_ne_bytes());
    msg.extend_from_slice(&lo_index.to_ne_bytes());

    let s = socket(
        AddressFamily::Netlink,
        SockType::Raw,
        SockFlag::SOCK_CLOEXEC,
        SockProtocol::NetlinkRoute,
    )?;
    bind(s.as_raw_fd(), &NetlinkAddr::new(0, 0))?;
    send(s.as_raw_fd(), &msg, nix::sys::socket::MsgFlags::empty())?;
    let mut buf = [0u8; 512];
    let n = recv(s.as_raw_fd(), &mut buf, nix::sys::socket::MsgFlags::empty())?;
    // The ACK is an NLMSG_ERROR carrying error 0 on success, -errno otherwise.
    if n >= 20 && u16::from_ne_bytes([buf[4], buf[5]]) == NLMSG_ERROR {
        let err = i32::from_ne_bytes([buf[16], buf[17], buf[18], buf[19]]);
        if err != 0 {
            return Err(io::Error::from_raw_os_error(-err));
        }
        return Ok(());
    }
    Err(io::Error::other("unexpected rtnetlink reply"))
}
