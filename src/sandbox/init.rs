//! The `__sandbox-init` process: one ordered list of named steps.
//!
//! Stage A starts one of two ways. When the parent is single-threaded (`ringfence run`), it simply
//! forks and the child enters [`forked`] with the plan in memory. Otherwise it spawns
//! `/proc/self/exe __sandbox-init` with the control socket as stdin and sends the [`SetupPlan`]
//! ([`main`]), so that setup never runs in a forked copy of a multi-threaded process. Three stages
//! follow, each a fork of the previous one, so the setup runs single-threaded and never `execve`s
//! between creating the user namespace and finishing the mounts (an `execve` as a non-root uid
//! would drop the namespace capabilities).
//!
//! Stage A — outside the new pid namespace, relays pid 1's fate:
//!
//! | #  | Step                     | Why here |
//! |----|--------------------------|----------|
//! | 1  | `read-plan`              | re-exec path: the plan arrives on stdin; fork path: close inherited descriptors. Either way stdin becomes `/dev/null` |
//! | 2  | `assert-single-threaded` | `unshare(CLONE_NEWUSER)` and fork-then-allocate need it (birdcage) |
//! | 3  | `die-with-supervisor`    | PDEATHSIG, then re-check the parent (the signal is lost if it already died); a process group of its own, so a terminal's Ctrl-C reaches only the supervisor |
//! | 4  | `unshare`                | user, mount, pid, net, ipc, uts namespaces at once |
//! | 5  | `map-ids`                | setgroups deny, then uid/gid mapped to themselves (never 0 for a user) |
//! | 6  | `fork-init`              | the pid namespace applies to children: the child is pid 1; its pidfd goes to the parent for the watchdog |
//!
//! Stage B — pid 1 of the sandbox, our own code, never runs untrusted code and reaps:
//!
//! | #  | Step                     | Why here |
//! |----|--------------------------|----------|
//! | 7  | `die-with-stage-a`       | if stage A is killed, pid 1 dies and the kernel kills the whole namespace |
//! | 8  | `make-mounts-private`    | before any mount: nothing propagates out, and `pivot_root` needs a non-shared root |
//! | 9  | `open-sources`           | `O_PATH|O_NOFOLLOW` every bind source and check its path, before anything hides or moves it |
//! | 10 | `mount-root`             | the staging tmpfs that becomes `/` |
//! | 11 | `build-root`             | the plan's mount ops: parents first, `ro,nosuid,nodev` via `mount_setattr` (only adds flags, so locked ones survive), fresh `/proc`, minimal `/dev`, private `/tmp` and `HOME` |
//! | 12 | `pivot-root`             | `pivot_root(".", ".")` and detach the old root: the host tree is gone |
//! | 13 | `remount-root-read-only` | nothing can be created at the top level |
//! | 14 | `set-hostname`           | UTS namespace is ours |
//! | 15 | `network`                | loopback up; with the sinkhole, local routes for every address and the DNS/TCP listening sockets, created here (we hold CAP_NET_BIND_SERVICE in this netns) and handed to the supervisor |
//! | 16 | `fork-command`           | the command must never be pid 1 |
//!
//! Stage C — becomes the command:
//!
//! | #  | Step              | Why here |
//! |----|-------------------|----------|
//! | 17 | `new-session`     | `setsid`: no controlling terminal, so TIOCSTI is refused (CVE-2017-5226) |
//! | 18 | `die-with-parent` | PDEATHSIG on pid 1 (cleared by fork, so set again) |
//! | 19 | `set-rlimits`     | NPROC (counted per user namespace), NOFILE, CORE 0, FSIZE, CPU |
//! | 20 | `no-new-privs`    | required by Landlock and seccomp without privileges; blocks setuid gains |
//! | 21 | `drop-caps`       | securebits locked first (needs CAP_SETPCAP), then every capability set emptied |
//! | 22 | `landlock`        | after every mount (Landlock forbids later topology changes); status recorded |
//! | 23 | `chdir`           | into the working directory |
//! | 24 | `fd-hygiene`      | everything above stderr close-on-exec |
//! | 25 | `seccomp`         | last before exec, so our own setup calls are not filtered |
//! | 26 | `exec`            | the absolute program path resolved by the parent, with the filtered environment |

use std::ffi::CString;
use std::fmt;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;

use nix::fcntl::{OFlag, open};
use nix::sys::prctl;
use nix::sys::signal::Signal;
use nix::sys::stat::Mode;
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::{ForkResult, Pid, chdir, execve, getppid, sethostname, setsid};
use serde::{Deserialize, Serialize};

use super::channel::{self, FromInit, Termination, ToInit};
use super::plan::SetupPlan;
use super::{caps, landlock, mount, namespaces, net, proc, seccomp};
use crate::sys;

macro_rules! steps {
    ($($variant:ident => $name:literal),+ $(,)?) => {
        /// A named setup step, as reported in errors and in the report.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
        pub enum Step {
            $(
                #[doc = $name]
                #[serde(rename = $name)]
                $variant,
            )+
        }
        impl Step {
            /// The kebab-case name.
            pub fn as_str(self) -> &'static str {
                match self { $(Step::$variant => $name,)+ }
            }
        }
    };
}

steps! {
    ReadPlan => "read-plan",
    AssertSingleThreaded => "assert-single-threaded",
    DieWithSupervisor => "die-with-supervisor",
    SetSubreaper => "set-subreaper",
    Unshare => "unshare",
    MapIds => "map-ids",
    ForkInit => "fork-init",
    DieWithStageA => "die-with-stage-a",
    MakeMountsPrivate => "make-mounts-private",
    OpenSources => "open-sources",
    MountRoot => "mount-root",
    BuildRoot => "build-root",
    PivotRoot => "pivot-root",
    RemountRootReadOnly => "remount-root-read-only",
    SetHostname => "set-hostname",
    Network => "network",
    ForkCommand => "fork-command",
    NewSession => "new-session",
    DieWithParent => "die-with-parent",
    SetRlimits => "set-rlimits",
    NoNewPrivs => "no-new-privs",
    DropCaps => "drop-caps",
    Landlock => "landlock",
    Chdir => "chdir",
    FdHygiene => "fd-hygiene",
    Seccomp => "seccomp",
    Exec => "exec",
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failed step with its message and errno, ready to send to the parent.
struct Failure {
    step: Step,
    error: String,
    errno: Option<i32>,
}

trait StepResult<T> {
    fn at(self, step: Step) -> Result<T, Failure>;
}

fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

impl<T> StepResult<T> for Result<T, std::io::Error> {
    fn at(self, step: Step) -> Result<T, Failure> {
        self.map_err(|e| Failure {
            step,
            errno: e.raw_os_error(),
            error: chain(&e),
        })
    }
}

impl<T> StepResult<T> for Result<T, nix::Error> {
    fn at(self, step: Step) -> Result<T, Failure> {
        self.map_err(|e| Failure {
            step,
            errno: Some(e as i32),
            error: e.desc().to_string(),
        })
    }
}

impl<T> StepResult<T> for Result<T, mount::MountError> {
    fn at(self, step: Step) -> Result<T, Failure> {
        self.map_err(|e| Failure {
            step,
            errno: e.errno(),
            error: chain(&e),
        })
    }
}

impl<T> StepResult<T> for Result<T, landlock::LandlockError> {
    fn at(self, step: Step) -> Result<T, Failure> {
        self.map_err(|e| Failure {
            step,
            errno: None,
            error: chain(&e),
        })
    }
}

impl<T> StepResult<T> for Result<T, seccomp::SeccompError> {
    fn at(self, step: Step) -> Result<T, Failure> {
        self.map_err(|e| Failure {
            step,
            errno: None,
            error: chain(&e),
        })
    }
}

/// Per-step timing on stderr when the plan asks for it (`ringfence -vv`).
struct Timer {
    on: bool,
    last: std::time::Instant,
}

impl Timer {
    fn new(on: bool) -> Self {
        Timer {
            on,
            last: std::time::Instant::now(),
        }
    }

    /// Print how long `step` took since the previous mark.
    fn mark(&mut self, step: Step) {
        if self.on {
            let now = std::time::Instant::now();
            // layer-check: may print (opt-in step timing, -vv; the init has no logger)
            eprintln!(
                "ringfence-init: {step:<24} {:>8.1} µs",
                (now - self.last).as_secs_f64() * 1e6
            );
            self.last = now;
        }
    }
}

fn report_and_exit(chan: BorrowedFd<'_>, f: Failure) -> ! {
    let _ = channel::send(
        chan,
        &FromInit::StepFailed {
            step: f.step,
            error: f.error,
            errno: f.errno,
        },
        &[],
    );
    sys::exit_now(125)
}

/// Entry point of `ringfence __sandbox-init` (the re-exec path). Never returns.
pub fn main() -> ! {
    // fd 0 is the control socket. Move it above stderr (close-on-exec); stdin then becomes
    // /dev/null so that neither our stages nor the command ever read the parent's terminal.
    // (`try_clone_to_owned` is `fcntl(F_DUPFD_CLOEXEC, 3)`.)
    let chan = match std::io::stdin().as_fd().try_clone_to_owned() {
        Ok(fd) => fd,
        Err(_) => sys::exit_now(125),
    };
    let chan_fd = chan.as_fd();
    let parent = getppid();
    // 1. read-plan
    let mut buf = Vec::new();
    let plan = match channel::recv::<ToInit>(chan_fd, &mut buf) {
        Ok(Some((ToInit::Plan(plan), _))) => plan,
        Ok(None) => sys::exit_now(125),
        Err(e) => report_and_exit(
            chan_fd,
            Failure {
                step: Step::ReadPlan,
                error: chain(&e),
                errno: None,
            },
        ),
    };
    drop(buf);
    match stage_a(chan_fd, &plan, parent) {
        Ok(never) => match never {},
        Err(f) => report_and_exit(chan_fd, f),
    }
}

/// Entry point of the fork path: the supervisor, while single-threaded, forked and this child
/// continues here with the plan already in memory (saving an `execve` and the plan's decoding).
/// `stdout`/`stderr` replace fds 1/2 when given; every other inherited descriptor except the
/// channel is closed, so no other sandbox's pipes or sockets stay open in this one.
pub fn forked(
    chan: BorrowedFd<'_>,
    plan: &SetupPlan,
    supervisor: Pid,
    stdout: Option<BorrowedFd<'_>>,
    stderr: Option<BorrowedFd<'_>>,
) -> ! {
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        if let Some(fd) = stdout {
            nix::unistd::dup2_stdout(fd).at(Step::ReadPlan)?;
        }
        if let Some(fd) = stderr {
            nix::unistd::dup2_stderr(fd).at(Step::ReadPlan)?;
        }
        proc::close_all_except(&[chan.as_raw_fd()]).at(Step::ReadPlan)?;
        stage_a(chan, plan, supervisor)
    }));
    match result {
        Ok(Ok(never)) => match never {},
        Ok(Err(f)) => report_and_exit(chan, f),
        // Never unwind into the supervisor's stack copy: its destructors are not ours to run.
        Err(_) => sys::exit_now(125),
    }
}

enum Never {}

fn stage_a(chan: BorrowedFd<'_>, plan: &SetupPlan, supervisor: Pid) -> Result<Never, Failure> {
    let devnull =
        open("/dev/null", OFlag::O_RDWR | OFlag::O_CLOEXEC, Mode::empty()).at(Step::ReadPlan)?;
    nix::unistd::dup2_stdin(&devnull).at(Step::ReadPlan)?;
    drop(devnull);

    let mut t = Timer::new(plan.trace_steps);
    // 2. assert-single-threaded
    proc::assert_single_threaded().at(Step::AssertSingleThreaded)?;
    t.mark(Step::AssertSingleThreaded);

    // 3. die-with-supervisor. In a process group of our own, a terminal's Ctrl-C reaches the
    // supervisor only: it removes its temporary directories and exits, and the sandbox dies
    // with it (the landlock tier's stage A, which does not die with the supervisor but kills
    // the tree first, would otherwise be killed by the signal and leave the tree running).
    prctl::set_pdeathsig(Signal::SIGKILL).at(Step::DieWithSupervisor)?;
    nix::unistd::setpgid(Pid::from_raw(0), Pid::from_raw(0)).at(Step::DieWithSupervisor)?;
    t.mark(Step::DieWithSupervisor);
    if getppid() != supervisor {
        sys::exit_now(125);
    }
    if plan.tier == super::spec::Tier::Landlock {
        return stage_a_host(chan, plan, supervisor, t);
    }

    // 4. unshare
    namespaces::enter().at(Step::Unshare)?;
    t.mark(Step::Unshare);

    // 5. map-ids
    namespaces::map_ids(plan.uid, plan.gid).at(Step::MapIds)?;
    t.mark(Step::MapIds);

    // 6. fork-init
    match sys::fork_single_threaded().at(Step::ForkInit)? {
        ForkResult::Child => match stage_b(chan, plan) {
            Ok(never) => match never {},
            Err(f) => report_and_exit(chan, f),
        },
        ForkResult::Parent { child } => {
            let pidfd = sys::pidfd_open(child).at(Step::ForkInit)?;
            channel::send(chan, &FromInit::Spawned, &[pidfd.as_fd()]).map_err(|e| Failure {
                step: Step::ForkInit,
                error: chain(&e),
                errno: None,
            })?;
            drop(pidfd);
            // Keep no copy of the channel: the parent sees EOF once pid 1 and the command are gone.
            let _ = nix::unistd::close(chan.as_raw_fd());
            let code = loop {
                match waitpid(child, None) {
                    Ok(WaitStatus::Exited(_, c)) => break c,
                    Ok(WaitStatus::Signaled(_, s, _)) => break 128 + s as i32,
                    Ok(_) | Err(nix::Error::EINTR) => continue,
                    Err(_) => break 125,
                }
            };
            sys::exit_now(code)
        }
    }
}

/// What the sandbox's init is called, as its comm and its whole command line.
const INIT_NAME: &std::ffi::CStr = c"init";

/// Take [`INIT_NAME`] as comm and command line. Best effort: a name is not a boundary.
fn unbranded() {
    let _ = prctl::set_name(INIT_NAME);
    let _ = sys::blank_command_line(INIT_NAME.to_bytes());
}

fn stage_b(chan: BorrowedFd<'_>, plan: &SetupPlan) -> Result<Never, Failure> {
    let mut t = Timer::new(plan.trace_steps);
    // 7. die-with-stage-a. Our parent is outside the pid namespace, so getppid() reads 0 and
    // cannot be re-checked; stage A only dies by being killed, and then so do we.
    prctl::set_pdeathsig(Signal::SIGKILL).at(Step::DieWithStageA)?;
    // Named like a plain init, in `ps` and in /proc/1/cmdline: nothing the command sees
    // names ringfence (a fingerprint a script could use to behave only when unwatched).
    unbranded();
    t.mark(Step::DieWithStageA);

    // 8. make-mounts-private
    mount::make_private().at(Step::MakeMountsPrivate)?;
    t.mark(Step::MakeMountsPrivate);

    // 9. open-sources
    let sources = mount::open_sources(plan.bind_sources()).at(Step::OpenSources)?;
    t.mark(Step::OpenSources);

    // 10. mount-root
    mount::mount_root(plan.root_size).at(Step::MountRoot)?;
    t.mark(Step::MountRoot);

    // 11. build-root
    for op in &plan.mounts {
        mount::apply(op, &sources).at(Step::BuildRoot)?;
    }
    drop(sources);
    t.mark(Step::BuildRoot);

    // 12. pivot-root
    mount::pivot().at(Step::PivotRoot)?;
    t.mark(Step::PivotRoot);

    // 13. remount-root-read-only
    mount::root_read_only().at(Step::RemountRootReadOnly)?;
    t.mark(Step::RemountRootReadOnly);

    // 14. set-hostname
    sethostname(&plan.hostname).at(Step::SetHostname)?;
    t.mark(Step::SetHostname);

    // 15. network
    let sinks = net::setup(&plan.network).at(Step::Network)?;
    if !sinks.is_empty() {
        let (kinds, fds): (Vec<_>, Vec<_>) = sinks.into_iter().unzip();
        let borrowed: Vec<_> = fds.iter().map(|f| f.as_fd()).collect();
        channel::send(chan, &FromInit::Sinkhole { sockets: kinds }, &borrowed).map_err(|e| {
            Failure {
                step: Step::Network,
                error: chain(&e),
                errno: None,
            }
        })?;
    }
    t.mark(Step::Network);

    // 16. fork-command
    let child = match sys::fork_single_threaded().at(Step::ForkCommand)? {
        ForkResult::Child => match stage_c(chan, plan, Pid::from_raw(1)) {
            Ok(never) => match never {},
            Err(f) => report_and_exit(chan, f),
        },
        ForkResult::Parent { child } => child,
    };
    let termination = reap_until(child);
    send_exited(chan, termination, proc::survivors());
    // Returning from pid 1 makes the kernel SIGKILL every process left in the namespace.
    sys::exit_now(0)
}

/// Reap every child (we are the namespace's init) until `command` has exited.
fn reap_until(command: Pid) -> Termination {
    loop {
        match waitpid(None::<Pid>, None) {
            Ok(WaitStatus::Exited(pid, code)) if pid == command => {
                return Termination::Exited(code);
            }
            Ok(WaitStatus::Signaled(pid, sig, _)) if pid == command => {
                return Termination::Signaled(sig as i32);
            }
            Ok(_) | Err(nix::Error::EINTR) => continue,
            Err(_) => return Termination::Signaled(libc::SIGKILL),
        }
    }
}

fn cstring(s: &[u8], step: Step) -> Result<CString, Failure> {
    CString::new(s).map_err(|_| Failure {
        step,
        error: format!(
            "argument contains a NUL byte: {:?}",
            String::from_utf8_lossy(s)
        ),
        errno: None,
    })
}

/// The landlock tier's stage A: no namespaces. It becomes the tree's child subreaper (orphans,
/// double-forked and `setsid` processes are reparented to it), forks the command (stage C), and
/// once the command has exited kills and reports whatever is left below it. It watches the
/// supervisor through a pidfd instead of dying with it, so that the tree is killed first.
///
/// | #  | Step             | Why here |
/// |----|------------------|----------|
/// | 4' | `set-subreaper`  | without a pid namespace, the tree is what is reparented to us |
/// | 5' | `fork-command`   | stage C, as in the full tier |
fn stage_a_host(
    chan: BorrowedFd<'_>,
    plan: &SetupPlan,
    supervisor: Pid,
    mut t: Timer,
) -> Result<Never, Failure> {
    // 4'. set-subreaper
    prctl::set_child_subreaper(true).at(Step::SetSubreaper)?;
    // Named like the full tier's pid 1: the command's parent does not name ringfence.
    unbranded();
    let watch = sys::pidfd_open(supervisor).at(Step::SetSubreaper)?;
    // From here the supervisor's death is seen on `watch`: the tree is killed before we go.
    prctl::set_pdeathsig(None).at(Step::SetSubreaper)?;
    if getppid() != supervisor {
        sys::exit_now(125);
    }
    t.mark(Step::SetSubreaper);

    // 5'. fork-command
    let me = nix::unistd::getpid();
    let child = match sys::fork_single_threaded().at(Step::ForkCommand)? {
        ForkResult::Child => match stage_c(chan, plan, me) {
            Ok(never) => match never {},
            Err(f) => report_and_exit(chan, f),
        },
        ForkResult::Parent { child } => child,
    };
    let command = sys::pidfd_open(child).at(Step::ForkCommand)?;
    channel::send(chan, &FromInit::Spawned, &[command.as_fd()]).map_err(|e| Failure {
        step: Step::ForkCommand,
        error: chain(&e),
        errno: None,
    })?;
    let termination = reap_host(child, &command, &watch);
    let survivors = match termination {
        Some(_) => proc::descendants(me.as_raw()),
        None => Vec::new(),
    };
    proc::kill_tree(me.as_raw());
    if let Some(termination) = termination {
        send_exited(chan, termination, survivors);
    }
    sys::exit_now(0)
}

/// Report the command's end and the processes that outlived it. Their command lines are the
/// script's choice: if the message does not fit the channel, the first few are sent with
/// their command lines cut short, then, failing that, only their number, so that the run is
/// never lost.
fn send_exited(
    chan: BorrowedFd<'_>,
    termination: channel::Termination,
    survivors: Vec<channel::ProcessInfo>,
) {
    const FEW: usize = 16;
    const SHORT: usize = 120;
    let total = survivors.len();
    let attempt = |survivors: Vec<channel::ProcessInfo>| {
        channel::send(
            chan,
            &FromInit::Exited {
                termination,
                survivors,
            },
            &[],
        )
        .is_ok()
    };
    if attempt(survivors.clone()) {
        return;
    }
    let mut few: Vec<channel::ProcessInfo> = survivors.into_iter().take(FEW).collect();
    for p in &mut few {
        let mut line = p.argv.join(" ");
        if line.len() > SHORT {
            let mut end = SHORT;
            while !line.is_char_boundary(end) {
                end -= 1;
            }
            line.truncate(end);
            line.push('…');
        }
        p.argv = vec![line];
    }
    let unlisted = total.saturating_sub(few.len());
    if unlisted > 0 {
        few.push(channel::ProcessInfo {
            pid: 0,
            ppid: 0,
            argv: vec![format!("…and {unlisted} more processes (not listed)")],
        });
    }
    if attempt(few) {
        return;
    }
    let _ = attempt(vec![channel::ProcessInfo {
        pid: 0,
        ppid: 0,
        argv: vec![format!(
            "{total} processes (their command lines could not be reported)"
        )],
    }]);
}

/// Reap children (the command and every orphan reparented to us) until the command has exited;
/// `None` when the supervisor died first.
fn reap_host(
    command: Pid,
    command_fd: &std::os::fd::OwnedFd,
    supervisor: &std::os::fd::OwnedFd,
) -> Option<Termination> {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    use nix::sys::wait::WaitPidFlag;
    loop {
        loop {
            match waitpid(None::<Pid>, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(pid, code)) if pid == command => {
                    return Some(Termination::Exited(code));
                }
                Ok(WaitStatus::Signaled(pid, sig, _)) if pid == command => {
                    return Some(Termination::Signaled(sig as i32));
                }
                Ok(WaitStatus::StillAlive) | Err(nix::Error::ECHILD) => break,
                Ok(_) | Err(nix::Error::EINTR) => continue,
                Err(_) => return Some(Termination::Signaled(libc::SIGKILL)),
            }
        }
        let mut fds = [
            PollFd::new(command_fd.as_fd(), PollFlags::POLLIN),
            PollFd::new(supervisor.as_fd(), PollFlags::POLLIN),
        ];
        // Wake at least every second to reap orphans between the command's own exits.
        match poll(&mut fds, PollTimeout::from(1000u16)) {
            Ok(_) => {
                if fds[1].revents().is_some_and(|r| !r.is_empty()) {
                    return None;
                }
            }
            Err(nix::Error::EINTR) => {}
            Err(_) => return Some(Termination::Signaled(libc::SIGKILL)),
        }
    }
}

fn stage_c(chan: BorrowedFd<'_>, plan: &SetupPlan, parent: Pid) -> Result<Never, Failure> {
    let mut t = Timer::new(plan.trace_steps);
    // 17. new-session
    setsid().at(Step::NewSession)?;
    t.mark(Step::NewSession);

    // 18. die-with-parent
    prctl::set_pdeathsig(Signal::SIGKILL).at(Step::DieWithParent)?;
    t.mark(Step::DieWithParent);
    if getppid() != parent {
        sys::exit_now(125);
    }

    // 19. set-rlimits. Without a user namespace RLIMIT_NPROC counts every task of the uid on the
    // host: the sandbox's budget comes on top of what the user already runs, threads included.
    let rlimits = match plan.tier {
        super::spec::Tier::Full => plan.rlimits.clone(),
        super::spec::Tier::Landlock => proc::on_top_of_the_users_tasks(&plan.rlimits),
    };
    // The channel moves above the NOFILE limit: the recorder exempts its sendmsg by number.
    let (rlimits, high) = proc::channel_above_nofile(chan, rlimits).at(Step::SetRlimits)?;
    let chan = high.as_fd();
    proc::set_rlimits(&rlimits).at(Step::SetRlimits)?;
    t.mark(Step::SetRlimits);

    // 20. no-new-privs
    prctl::set_no_new_privs().at(Step::NoNewPrivs)?;
    t.mark(Step::NoNewPrivs);

    // 21. drop-caps
    caps::drop_all().at(Step::DropCaps)?;
    t.mark(Step::DropCaps);

    // 22. landlock
    let landlock = landlock::restrict(&plan.landlock).at(Step::Landlock)?;
    t.mark(Step::Landlock);

    // 23. chdir
    chdir(&plan.exec.cwd).at(Step::Chdir)?;
    t.mark(Step::Chdir);

    // 24. fd-hygiene
    proc::fd_hygiene().at(Step::FdHygiene)?;
    t.mark(Step::FdHygiene);

    // Prepare exec arguments before seccomp, so nothing after the filter allocates needlessly.
    let program = cstring(plan.exec.program.as_os_str().as_bytes(), Step::Exec)?;
    let argv = plan
        .exec
        .argv
        .iter()
        .map(|a| cstring(a.as_bytes(), Step::Exec))
        .collect::<Result<Vec<_>, _>>()?;
    let env = plan
        .exec
        .env
        .iter()
        .map(|(k, v)| cstring(format!("{k}={v}").as_bytes(), Step::Exec))
        .collect::<Result<Vec<_>, _>>()?;

    // 25. seccomp: the recorder first (it also enforces the privileged and socket-family groups,
    // answering each attempt with its errno, so that attempts are seen), then the static deny
    // filter with the other groups — or all of them when there is no recorder. The listener
    // must reach the supervisor before the first notified syscall (the execve below), or that
    // syscall would wait forever; sendmsg is not notified.
    let mut notified = Vec::new();
    let mut recorder = super::RecorderState::NotRequested;
    if plan.recorder {
        let (_, groups) = seccomp::split_for_recorder(&plan.seccomp);
        let channel_fd = u32::try_from(chan.as_raw_fd()).unwrap_or(u32::MAX);
        match seccomp::compile_recorder(plan.recorder_reads, &groups, channel_fd)
            .map_err(|e| chain(&e))
            .and_then(|p| sys::seccomp_install_listener(&p).map_err(|e| e.to_string()))
        {
            Ok(listener) => {
                let _ = channel::send(chan, &FromInit::Recorder, &[listener.as_fd()]);
                notified = groups;
                recorder = super::RecorderState::Attached;
            }
            // Reported to the supervisor with the enforcement (this process has no log).
            Err(why) => recorder = super::RecorderState::Unavailable { why },
        }
    }
    let static_plan = if notified.is_empty() {
        plan.seccomp.clone()
    } else {
        seccomp::split_for_recorder(&plan.seccomp).0
    };
    let seccomp_filters = match seccomp::install(&static_plan) {
        Ok(n) => n + notified.len(),
        Err(e) if plan.seccomp.level == super::spec::Level::BestEffort => {
            tracing::warn!("seccomp not enforced: {}", chain(&e));
            notified.len()
        }
        Err(e) => return Err(e).at(Step::Seccomp),
    };
    t.mark(Step::Seccomp);

    let _ = channel::send(
        chan,
        &FromInit::Enforced {
            landlock,
            seccomp_filters,
            recorder,
        },
        &[],
    );

    // 26. exec
    let err = match execve(&program, &argv, &env) {
        Ok(never) => match never {},
        Err(e) => e,
    };
    let _ = channel::send(chan, &FromInit::ExecFailed { errno: err as i32 }, &[]);
    sys::exit_now(127)
}
