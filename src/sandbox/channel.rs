//! The typed parent ↔ init protocol: JSON messages over a `SOCK_SEQPACKET` socketpair (one
//! message per datagram, so no framing), with an optional descriptor attached via `SCM_RIGHTS`.

use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};

use nix::sys::socket::{ControlMessage, ControlMessageOwned, MsgFlags, recvmsg, sendmsg};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::init::Step;
use super::landlock::LandlockOutcome;
use super::plan::SetupPlan;

/// Most descriptors one message carries (the sinkhole's listening sockets).
pub const MAX_FDS: usize = 64;

/// Largest message we accept (the plan is the biggest, typically a few KiB).
pub const MAX_MESSAGE: usize = 4 << 20;

/// How the sandboxed command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Termination {
    /// Exited with this code.
    Exited(i32),
    /// Killed by this signal.
    Signaled(i32),
}

impl Termination {
    /// The shell convention: the code, or 128 + signal.
    pub fn exit_code(self) -> i32 {
        match self {
            Termination::Exited(c) => c,
            Termination::Signaled(s) => 128 + s,
        }
    }
}

/// A process found alive in the sandbox after the command itself exited.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessInfo {
    /// pid inside the sandbox's pid namespace.
    pub pid: i32,
    /// Parent pid inside the sandbox.
    pub ppid: i32,
    /// Command line (NUL-separated arguments, lossily decoded).
    pub argv: Vec<String>,
}

/// A sinkhole socket handed to the supervisor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SinkSocket {
    /// UDP DNS (dual-stack) on port 53.
    Dns,
    /// A listening TCP socket (dual-stack) on this port.
    Tcp(u16),
}

/// Messages from the init process to the parent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "msg")]
pub enum FromInit {
    /// Stage A forked the sandbox's pid 1; a pidfd for it is attached.
    Spawned,
    /// The sinkhole's sockets, created inside the sandbox's network namespace, are attached in
    /// this order.
    Sinkhole {
        /// What each attached socket is.
        sockets: Vec<SinkSocket>,
    },
    /// A setup step failed; nothing untrusted ran.
    StepFailed {
        /// Which step.
        step: Step,
        /// What failed, with its cause chain.
        error: String,
        /// The errno, if the failure was a system call.
        errno: Option<i32>,
    },
    /// The recorder's seccomp listener is attached.
    Recorder,
    /// Every layer is in place; the next thing is `execve`.
    Enforced {
        /// Landlock's achieved status.
        landlock: LandlockOutcome,
        /// Number of seccomp filters installed.
        seccomp_filters: usize,
        /// The recorder's listener.
        recorder: super::RecorderState,
    },
    /// `execve` failed.
    ExecFailed {
        /// errno.
        errno: i32,
    },
    /// The command exited; `survivors` were still running and are killed when init exits.
    Exited {
        /// How it ended.
        termination: Termination,
        /// Processes left behind.
        survivors: Vec<ProcessInfo>,
    },
}

/// Messages from the parent to init.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "msg")]
pub enum ToInit {
    /// The plan to execute.
    Plan(Box<SetupPlan>),
}

/// Channel failures.
#[derive(Debug, Error)]
pub enum ChannelError {
    /// `sendmsg` failed.
    #[error("sending on the sandbox control channel")]
    Send(#[source] nix::Error),
    /// `recvmsg` failed.
    #[error("receiving on the sandbox control channel")]
    Recv(#[source] nix::Error),
    /// The message was not valid JSON for its type.
    #[error("decoding a sandbox control message")]
    Decode(#[source] serde_json::Error),
    /// The message did not fit the buffer.
    #[error("sandbox control message larger than {MAX_MESSAGE} bytes")]
    TooLarge,
}

/// Send one message, with descriptors attached (at most [`MAX_FDS`]).
pub fn send<T: Serialize>(
    sock: BorrowedFd<'_>,
    msg: &T,
    fds: &[BorrowedFd<'_>],
) -> Result<(), ChannelError> {
    let bytes = serde_json::to_vec(msg).map_err(ChannelError::Decode)?;
    let fds: Vec<RawFd> = fds.iter().map(|f| f.as_raw_fd()).collect();
    let cmsgs: Vec<ControlMessage<'_>> = if fds.is_empty() {
        vec![]
    } else {
        vec![ControlMessage::ScmRights(&fds)]
    };
    sendmsg::<()>(
        sock.as_raw_fd(),
        &[IoSlice::new(&bytes)],
        &cmsgs,
        MsgFlags::MSG_NOSIGNAL,
        None,
    )
    .map_err(ChannelError::Send)?;
    Ok(())
}

/// Receive one message. `Ok(None)` means every peer closed its end.
///
/// The buffer is sized to the pending datagram (peeked with `MSG_TRUNC`, which unix
/// `SOCK_SEQPACKET` sockets honour), so small messages cost no large allocation.
pub fn recv<T: for<'de> Deserialize<'de>>(
    sock: BorrowedFd<'_>,
    buf: &mut Vec<u8>,
) -> Result<Option<(T, Vec<OwnedFd>)>, ChannelError> {
    let pending = loop {
        match nix::sys::socket::recv(
            sock.as_raw_fd(),
            &mut [],
            MsgFlags::MSG_PEEK | MsgFlags::MSG_TRUNC,
        ) {
            Ok(n) => break n,
            Err(nix::Error::EINTR) => continue,
            Err(e) => return Err(ChannelError::Recv(e)),
        }
    };
    if pending > MAX_MESSAGE {
        return Err(ChannelError::TooLarge);
    }
    buf.resize(pending.max(1), 0);
    let mut cmsg = nix::cmsg_space!([RawFd; MAX_FDS]);
    let (len, fd) = loop {
        let mut iov = [IoSliceMut::new(buf)];
        match recvmsg::<()>(
            sock.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg),
            MsgFlags::MSG_CMSG_CLOEXEC,
        ) {
            Ok(msg) => {
                if msg.flags.contains(MsgFlags::MSG_TRUNC) {
                    return Err(ChannelError::TooLarge);
                }
                let mut fd = Vec::new();
                for c in msg.cmsgs().map_err(ChannelError::Recv)? {
                    if let ControlMessageOwned::ScmRights(fds) = c {
                        for raw in fds {
                            fd.push(crate::sys::own_received_fd(raw));
                        }
                    }
                }
                break (msg.bytes, fd);
            }
            Err(nix::Error::EINTR) => continue,
            Err(e) => return Err(ChannelError::Recv(e)),
        }
    };
    if len == 0 {
        return Ok(None);
    }
    let msg = serde_json::from_slice(&buf[..len]).map_err(ChannelError::Decode)?;
    Ok(Some((msg, fd)))
}
