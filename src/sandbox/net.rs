//! The sandbox's own network namespace. Today: loopback up and nothing else, so every address
//! outside is unreachable. The recording sinkhole (local routes for every address, DNS and TCP
//! listeners handed to the supervisor) plugs in here, driven by `NetworkPlan`.

use std::io;
use std::os::fd::AsFd;

use nix::sys::socket::{AddressFamily, SockFlag, SockType, socket};

use super::plan::NetworkPlan;
use crate::sys;

/// Prepare the network namespace as planned.
pub fn setup(plan: &NetworkPlan) -> io::Result<()> {
    if plan.loopback_up {
        let sock = socket(
            AddressFamily::Inet,
            SockType::Datagram,
            SockFlag::SOCK_CLOEXEC,
            None,
        )?;
        sys::interface_up(sock.as_fd(), c"lo")?;
    }
    Ok(())
}
