//! The sandbox, parent side: spawn `/proc/self/exe __sandbox-init`, send it the plan, drive the
//! control channel, enforce the wall-clock timeout, and turn what init reports into an
//! [`Outcome`] or a [`SandboxError`].
//!
//! Kernel-facing code lives in the submodules and sees only a [`plan::SetupPlan`].

pub mod caps;
pub mod channel;
pub mod hostview;
pub mod init;
pub mod landlock;
pub mod mount;
pub mod namespaces;
pub mod net;
pub mod plan;
pub mod proc;
pub mod seccomp;
pub mod spec;

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::process::{Child, Command, Stdio};

use nix::sys::signal::Signal;
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::{ForkResult, Pid};
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::socket::{AddressFamily, SockFlag, SockType, socketpair};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use channel::{ChannelError, FromInit, ProcessInfo, Termination, ToInit};
use init::Step;
use plan::SetupPlan;

/// What each layer achieved for one run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Enforced {
    /// Landlock status and ABI.
    pub landlock: landlock::LandlockOutcome,
    /// Number of seccomp filters installed (0 if best-effort and unavailable).
    pub seccomp_filters: usize,
    /// Whether the syscall recorder's listener was attached.
    pub recorder: RecorderState,
}

/// The syscall recorder's seccomp listener, as the init found it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum RecorderState {
    /// The plan asked for no recorder (`--no-record`).
    NotRequested,
    /// Attached: notified syscalls reach the supervisor.
    Attached,
    /// Asked for but not installed (the notified groups were enforced by the static filter).
    Unavailable {
        /// Why.
        why: String,
    },
}

/// How a sandboxed run ended.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Exit code or signal of the command (SIGKILL after a timeout).
    pub termination: Termination,
    /// The wall-clock limit expired and the whole tree was killed.
    pub timed_out: bool,
    /// Wall time from spawning init to its exit.
    pub duration: Duration,
    /// What was enforced (`None` only if the run was killed before setup finished).
    pub enforced: Option<Enforced>,
    /// Processes still alive when the command exited (all killed since).
    pub survivors: Vec<ProcessInfo>,
    /// Why a [`Watch`] stopped the run (the whole tree was killed, as at the deadline).
    pub stopped: Option<String>,
}

/// A check the supervisor makes every `every` while the sandbox runs (the size of the host
/// directories a script writes besides its own); `Err(why)` kills the whole tree, as the
/// deadline does, and [`Outcome::stopped`] says why.
pub struct Watch<'a> {
    /// Interval between checks.
    pub every: Duration,
    /// The check.
    pub check: &'a mut dyn FnMut() -> Result<(), String>,
}

impl std::fmt::Debug for Watch<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watch").field("every", &self.every).finish()
    }
}

/// Failures of the sandbox machinery itself (never of the sandboxed command).
#[derive(Debug, Error)]
pub enum SandboxError {
    /// Creating the control socketpair failed.
    #[error("creating the sandbox control socket")]
    Socketpair(#[source] nix::Error),
    /// Spawning the init process failed.
    #[error("starting the sandbox init process (`/proc/self/exe __sandbox-init`)")]
    SpawnInit(#[source] io::Error),
    /// The control channel failed.
    #[error(transparent)]
    Channel(#[from] ChannelError),
    /// A setup step failed inside init; the command never ran.
    #[error("sandbox setup failed at step `{step}`: {error}")]
    Setup {
        /// The failed step.
        step: Step,
        /// Error chain from init.
        error: String,
        /// errno, if a system call failed.
        errno: Option<i32>,
    },
    /// The program could not be executed.
    #[error("cannot execute `{program}` in the sandbox")]
    Exec {
        /// Program path.
        program: String,
        /// Cause.
        #[source]
        source: io::Error,
    },
    /// Waiting for or killing the init process failed.
    #[error("waiting for the sandbox init process")]
    Wait(#[source] io::Error),
    /// Init exited without reporting how the command ended.
    #[error("the sandbox init process exited without reporting the command's exit")]
    Lost,
}

impl SandboxError {
    /// The failing step, for setup errors.
    pub fn step(&self) -> Option<Step> {
        match self {
            SandboxError::Setup { step, .. } => Some(*step),
            _ => None,
        }
    }
}

/// Observation endpoints the sandbox hands to the supervisor while it runs.
#[derive(Debug)]
pub enum Attach {
    /// The sandbox's first process exists: the fast launcher has forked, so the supervisor may
    /// start threads now.
    Started,
    /// The sinkhole's sockets, created inside the sandbox's network namespace.
    Sinkhole(Vec<(channel::SinkSocket, OwnedFd)>),
    /// The recorder's seccomp notification listener.
    Recorder(OwnedFd),
}

/// Where the command's stdout and stderr go (`None`: share the caller's).
#[derive(Debug, Default)]
pub struct Stdio2 {
    /// Standard output.
    pub stdout: Option<OwnedFd>,
    /// Standard error.
    pub stderr: Option<OwnedFd>,
}

impl Stdio2 {
    /// Share the caller's stdout and stderr.
    pub fn inherit() -> Self {
        Stdio2::default()
    }
}

/// The stage-A process, started by fork (single-threaded caller) or by re-exec.
enum InitProcess {
    Forked(Pid),
    Exec(Child),
}

impl InitProcess {
    fn kill(&mut self) -> io::Result<()> {
        match self {
            InitProcess::Forked(pid) => {
                nix::sys::signal::kill(*pid, Signal::SIGKILL).map_err(io::Error::from)
            }
            InitProcess::Exec(child) => child.kill(),
        }
    }

    fn wait(self) -> io::Result<()> {
        match self {
            InitProcess::Forked(pid) => loop {
                match waitpid(pid, None) {
                    Ok(WaitStatus::Exited(..) | WaitStatus::Signaled(..)) => return Ok(()),
                    Ok(_) | Err(nix::Error::EINTR) => continue,
                    Err(e) => return Err(e.into()),
                }
            },
            InitProcess::Exec(mut child) => child.wait().map(drop),
        }
    }
}

/// Start stage A. A single-threaded caller forks (no `execve`, no plan decoding); otherwise the
/// binary is re-executed so that no setup ever runs in a fork of a multi-threaded process.
fn start_init(
    plan: &SetupPlan,
    ours: &OwnedFd,
    theirs: OwnedFd,
    stdio: Stdio2,
) -> Result<InitProcess, SandboxError> {
    // `RINGFENCE_SANDBOX_REEXEC=1` forces the re-exec path (tests cover both launchers with it).
    let force_exec = std::env::var_os("RINGFENCE_SANDBOX_REEXEC").is_some_and(|v| v == "1");
    if !force_exec && proc::thread_count().map_err(SandboxError::SpawnInit)? == 1 {
        let supervisor = nix::unistd::getpid();
        match crate::sys::fork_single_threaded().map_err(SandboxError::SpawnInit)? {
            ForkResult::Child => {
                // Our end of the channel must not stay open in the sandbox, or we would never
                // see EOF; `forked` closes every descriptor but its own end and stdio.
                let _ = ours;
                init::forked(
                    theirs.as_fd(),
                    plan,
                    supervisor,
                    stdio.stdout.as_ref().map(|f| f.as_fd()),
                    stdio.stderr.as_ref().map(|f| f.as_fd()),
                )
            }
            ForkResult::Parent { child } => Ok(InitProcess::Forked(child)),
        }
    } else {
        // The socket becomes the child's stdin (dup2 clears close-on-exec on fd 0 only), so no
        // descriptor is ever left inheritable for other threads' children.
        let mut cmd = Command::new("/proc/self/exe");
        cmd.arg("__sandbox-init")
            .env_clear()
            .stdin(Stdio::from(theirs))
            .stdout(stdio.stdout.map_or_else(Stdio::inherit, Stdio::from))
            .stderr(stdio.stderr.map_or_else(Stdio::inherit, Stdio::from));
        let child = cmd.spawn().map_err(SandboxError::SpawnInit)?;
        channel::send(ours.as_fd(), &ToInit::Plan(Box::new(plan.clone())), &[])?;
        Ok(InitProcess::Exec(child))
    }
}

/// Run `plan` in a fresh sandbox and wait for it, killing the whole tree after `timeout` or
/// when `watch` says so.
pub fn run(
    plan: &SetupPlan,
    timeout: Option<Duration>,
    stdio: Stdio2,
    attach: &mut dyn FnMut(Attach),
    watch: Option<Watch<'_>>,
) -> Result<Outcome, SandboxError> {
    let (ours, theirs) = socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .map_err(SandboxError::Socketpair)?;
    let start = Instant::now();
    let mut child = start_init(plan, &ours, theirs, stdio)?;
    attach(Attach::Started);
    let mut sup = Supervisor::new(start, timeout, watch);
    let mut buf = Vec::new();
    loop {
        let mut fds = [PollFd::new(ours.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, sup.poll_timeout()) {
            Ok(0) => {
                if sup.timer_fired() {
                    sup.kill_tree(&mut child)?;
                }
                continue;
            }
            Ok(_) => {}
            Err(nix::Error::EINTR) => continue,
            Err(e) => return Err(SandboxError::Wait(e.into())),
        }
        match channel::recv::<FromInit>(ours.as_fd(), &mut buf)? {
            None => break,
            Some((msg, fds)) => sup.receive(msg, fds, plan, attach),
        }
    }
    child.wait().map_err(SandboxError::Wait)?;
    sup.outcome(plan, start.elapsed())
}

/// The supervisor's state while one sandbox runs: its deadline and watch, and what init has
/// reported so far.
struct Supervisor<'w> {
    deadline: Option<Instant>,
    watch: Option<Watch<'w>>,
    /// When the watch is next due.
    next_check: Option<Instant>,
    /// The sandbox's pid 1 (a pidfd), once it exists.
    pid1: Option<OwnedFd>,
    setup_error: Option<SandboxError>,
    enforced: Option<Enforced>,
    exited: Option<(Termination, Vec<ProcessInfo>)>,
    /// The deadline passed and the tree was killed.
    timed_out: bool,
    /// The watch failed (why) and the tree was killed.
    stopped: Option<String>,
}

impl<'w> Supervisor<'w> {
    fn new(start: Instant, timeout: Option<Duration>, watch: Option<Watch<'w>>) -> Self {
        Supervisor {
            deadline: timeout.map(|t| start + t),
            next_check: watch.as_ref().map(|w| start + w.every),
            watch,
            pid1: None,
            setup_error: None,
            enforced: None,
            exited: None,
            timed_out: false,
            stopped: None,
        }
    }

    /// How long to wait for init: until the deadline or the next check, whichever comes
    /// first; once the tree was killed, until init reports (or hangs up).
    fn poll_timeout(&self) -> PollTimeout {
        let wake = [self.deadline, self.next_check].into_iter().flatten().min();
        match wake {
            _ if self.timed_out || self.stopped.is_some() => PollTimeout::NONE,
            None => PollTimeout::NONE,
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now()).as_millis();
                i32::try_from(left).map_or(PollTimeout::MAX, |ms| {
                    PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX)
                })
            }
        }
    }

    /// The poll timed out: note the deadline, or run the watch if it is due. Whether the tree
    /// must be killed now.
    fn timer_fired(&mut self) -> bool {
        let now = Instant::now();
        if self.deadline.is_some_and(|d| now >= d) {
            self.timed_out = true;
            return true;
        }
        let (Some(w), Some(due)) = (self.watch.as_mut(), self.next_check) else {
            return false;
        };
        if now < due {
            return false;
        }
        match (w.check)() {
            Ok(()) => {
                self.next_check = Some(Instant::now() + w.every);
                false
            }
            Err(why) => {
                self.stopped = Some(why);
                true
            }
        }
    }

    /// Deadline or a failed watch: SIGKILL pid 1, which makes the kernel kill everything in its
    /// pid namespace, detached and double-forked processes included. Before pid 1 exists, kill
    /// stage A instead.
    fn kill_tree(&self, child: &mut InitProcess) -> Result<(), SandboxError> {
        let killed = match &self.pid1 {
            Some(fd) => crate::sys::pidfd_send_signal(fd.as_fd(), libc::SIGKILL),
            None => child.kill(),
        };
        if let Err(e) = killed {
            if e.raw_os_error() != Some(libc::ESRCH) {
                return Err(SandboxError::Wait(e));
            }
        }
        Ok(())
    }

    /// One message from init, with the descriptors it carried.
    fn receive(
        &mut self,
        msg: FromInit,
        fds: Vec<OwnedFd>,
        plan: &SetupPlan,
        attach: &mut dyn FnMut(Attach),
    ) {
        match msg {
            FromInit::Spawned => self.pid1 = fds.into_iter().next(),
            FromInit::Sinkhole { sockets } => {
                attach(Attach::Sinkhole(sockets.into_iter().zip(fds).collect()));
            }
            FromInit::Recorder => {
                if let Some(fd) = fds.into_iter().next() {
                    attach(Attach::Recorder(fd));
                }
            }
            FromInit::StepFailed { step, error, errno } => {
                self.setup_error = Some(SandboxError::Setup { step, error, errno });
            }
            FromInit::Enforced {
                landlock,
                seccomp_filters,
                recorder,
            } => {
                self.enforced = Some(Enforced {
                    landlock,
                    seccomp_filters,
                    recorder,
                });
            }
            FromInit::ExecFailed { errno } => {
                self.setup_error = Some(SandboxError::Exec {
                    program: plan.exec.program.display().to_string(),
                    source: io::Error::from_raw_os_error(errno),
                });
            }
            FromInit::Exited {
                termination,
                survivors,
            } => self.exited = Some((termination, survivors)),
        }
    }

    /// What the run came to, once init is gone.
    fn outcome(self, plan: &SetupPlan, duration: Duration) -> Result<Outcome, SandboxError> {
        if let Some(e) = self.setup_error {
            return Err(e);
        }
        let killed = self.timed_out || self.stopped.is_some();
        let (termination, survivors) = match self.exited {
            Some(x) => x,
            None if killed => (Termination::Signaled(libc::SIGKILL), Vec::new()),
            None => return Err(SandboxError::Lost),
        };
        // Without a pid namespace the tree killed at the deadline is still found below the
        // subreaper: it did not outlive the script, it was killed with it.
        let survivors = if killed && plan.tier == spec::Tier::Landlock {
            Vec::new()
        } else {
            survivors
        };
        Ok(Outcome {
            termination,
            timed_out: self.timed_out,
            duration,
            enforced: self.enforced,
            survivors,
            stopped: self.stopped,
        })
    }
}
