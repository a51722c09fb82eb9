//! Process hygiene: single-thread assertion, rlimits, descriptor hygiene, and the survivor scan
//! that pid 1 runs after the command exits.

use std::io;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::path::Path;

use nix::sys::resource::{Resource, getrlimit, setrlimit};

use super::channel::ProcessInfo;
use super::plan::Rlimit;
use crate::sys;

/// Fail unless this process has exactly one thread (fork and `unshare(CLONE_NEWUSER)` need it).
pub fn assert_single_threaded() -> io::Result<()> {
    let threads = thread_count()?;
    if threads == 1 {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "the sandbox init has {threads} threads, expected 1"
        )))
    }
}

/// Close every descriptor above stderr except `keep` (sorted or not).
pub fn close_all_except(keep: &[i32]) -> io::Result<()> {
    let mut keep: Vec<u32> = keep.iter().filter_map(|k| u32::try_from(*k).ok()).collect();
    keep.sort_unstable();
    let mut first = 3u32;
    for k in keep {
        if k >= first {
            if k > first {
                sys::close_range(first, k - 1)?;
            }
            first = k + 1;
        }
    }
    sys::close_range(first, u32::MAX)
}

/// Number of threads of this process.
pub fn thread_count() -> io::Result<usize> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| io::Error::other("no Threads: line in /proc/self/status"))
}

/// Apply each limit as soft = hard = min(value, current hard limit): limits only ever go down.
pub fn set_rlimits(limits: &[Rlimit]) -> io::Result<()> {
    for limit in limits {
        let (resource, value) = match *limit {
            Rlimit::Nproc(v) => (Resource::RLIMIT_NPROC, v),
            Rlimit::Nofile(v) => (Resource::RLIMIT_NOFILE, v),
            Rlimit::Fsize(v) => (Resource::RLIMIT_FSIZE, v),
            Rlimit::Core(v) => (Resource::RLIMIT_CORE, v),
            Rlimit::Cpu(v) => (Resource::RLIMIT_CPU, v),
        };
        let (_, hard) = getrlimit(resource)?;
        let value = value.min(hard);
        setrlimit(resource, value, value)
            .map_err(|e| io::Error::other(format!("setrlimit({resource:?}, {value}): {e}")))?;
    }
    Ok(())
}

/// Move the channel to the supervisor to a descriptor number the command can never be given:
/// at or above the NOFILE limit the sandbox gets (which is lowered by one if it would equal the
/// hard limit, since a descriptor must lie below that). The recorder exempts the channel's own
/// `sendmsg` by descriptor number; the channel is closed at exec, and a socket the command later
/// dup'ed onto a small number would otherwise pass unrecorded. Returns the limits to apply
/// (NOFILE set to that number) and the channel's new descriptor.
pub fn channel_above_nofile(
    chan: BorrowedFd<'_>,
    mut limits: Vec<Rlimit>,
) -> io::Result<(Vec<Rlimit>, OwnedFd)> {
    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE)?;
    let wanted = limits
        .iter()
        .find_map(|l| match l {
            Rlimit::Nofile(v) => Some(*v),
            _ => None,
        })
        .unwrap_or(hard);
    let limit = wanted.min(hard.saturating_sub(1));
    if limit < 3 {
        return Err(io::Error::other(format!(
            "the descriptor limit ({hard}) leaves no room for the channel"
        )));
    }
    // F_DUPFD allocates below the soft limit only: raise it to the hard one for this.
    setrlimit(Resource::RLIMIT_NOFILE, hard, hard)?;
    let min = i32::try_from(limit).map_err(io::Error::other)?;
    let high = sys::dup_at_least(chan, min)?;
    limits.retain(|l| !matches!(l, Rlimit::Nofile(_)));
    limits.push(Rlimit::Nofile(limit));
    Ok((limits, high))
}

/// Mark every descriptor above stderr close-on-exec, so nothing of ours leaks into the command:
/// `close_range` (Linux >= 5.11), else every descriptor listed in /proc/self/fd (the sandbox's
/// own /proc is mounted by now), else every number below the descriptor limit (nsjail's order).
pub fn fd_hygiene() -> io::Result<()> {
    let Err(fast) = sys::close_range_cloexec(3) else {
        return Ok(());
    };
    if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
        // Collect first: the listing's own descriptor is among them.
        let fds: Vec<i32> = dir
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse().ok())
            .filter(|fd| *fd >= 3)
            .collect();
        for fd in fds {
            match sys::set_cloexec_raw(fd) {
                Ok(()) => {}
                Err(e) if e.raw_os_error() == Some(libc::EBADF) => {}
                Err(e) => return Err(e),
            }
        }
        return Ok(());
    }
    let (_, hard) = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .map_err(|_| fast)?;
    let limit = i32::try_from(hard.min(1 << 20)).unwrap_or(1 << 20);
    for fd in 3..limit {
        let _ = sys::set_cloexec_raw(fd);
    }
    Ok(())
}

/// Every process in our pid namespace except pid 1 (ourselves), read from our own `/proc`.
pub fn survivors() -> Vec<ProcessInfo> {
    let mut out: Vec<ProcessInfo> = processes().into_iter().filter(|p| p.pid != 1).collect();
    out.sort_by_key(|p| p.pid);
    out
}

/// Every descendant of `root` (the landlock tier's subreaper), from the host's `/proc`: orphans
/// were reparented to `root`, so the tree below it is the whole sandbox.
pub fn descendants(root: i32) -> Vec<ProcessInfo> {
    let mut out: Vec<ProcessInfo> = descendant_pids(root)
        .into_iter()
        .filter_map(|pid| info(pid, &Path::new("/proc").join(pid.to_string())))
        .collect();
    out.sort_by_key(|p| p.pid);
    out
}

/// The pids below `root`: followed down the kernel's per-task `children` lists (a few reads for
/// a small tree), or, on a kernel without them (`CONFIG_PROC_CHILDREN`), from every process's
/// parent (one `stat` read per process on the host).
pub fn descendant_pids(root: i32) -> std::collections::BTreeSet<i32> {
    children_tree(root).unwrap_or_else(|| scan_parents(root))
}

/// The tree below `root` from `/proc/<pid>/task/<tid>/children`; `None` when the kernel has no
/// such lists. A process that exits while it is read is simply not there; one forked meanwhile
/// is found by the next call (callers that kill loop until nothing is left).
fn children_tree(root: i32) -> Option<std::collections::BTreeSet<i32>> {
    if !Path::new(&format!("/proc/{root}/task/{root}/children")).exists() {
        return None;
    }
    let mut inside = std::collections::BTreeSet::new();
    let mut todo = vec![root];
    while let Some(pid) = todo.pop() {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
            continue;
        };
        for task in tasks.flatten() {
            let Ok(list) = std::fs::read_to_string(task.path().join("children")) else {
                continue;
            };
            for child in list
                .split_whitespace()
                .filter_map(|c| c.parse::<i32>().ok())
            {
                // Bounded by the pid space; a pid seen twice (reused mid-walk) is walked once.
                if child != root && inside.insert(child) {
                    todo.push(child);
                }
            }
        }
    }
    Some(inside)
}

/// The pids below `root`, from each process's parent (one `stat` read per process).
fn scan_parents(root: i32) -> std::collections::BTreeSet<i32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Default::default();
    };
    let links: Vec<(i32, i32)> = dir
        .flatten()
        .filter_map(|e| {
            let pid = e.file_name().to_str()?.parse::<i32>().ok()?;
            Some((pid, parent(&e.path())?))
        })
        .collect();
    let mut inside = std::collections::BTreeSet::from([root]);
    // Parents before children is not guaranteed by pid order: iterate to a fixed point.
    loop {
        let before = inside.len();
        for (pid, ppid) in &links {
            if inside.contains(ppid) {
                inside.insert(*pid);
            }
        }
        if inside.len() == before {
            break;
        }
    }
    inside.remove(&root);
    inside
}

/// SIGKILL everything below `root` until nothing is left (a process that forks while it is
/// being killed is found in the next round; killed processes cannot fork).
pub fn kill_tree(root: i32) {
    use nix::sys::signal::{Signal, kill};
    use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
    use nix::unistd::Pid;
    for round in 0..200 {
        let left = descendant_pids(root);
        if left.is_empty() {
            return;
        }
        for pid in &left {
            let _ = kill(Pid::from_raw(*pid), Signal::SIGKILL);
        }
        while let Ok(s) = waitpid(None::<Pid>, Some(WaitPidFlag::WNOHANG)) {
            if s == WaitStatus::StillAlive {
                break;
            }
        }
        if round > 0 {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }
}

/// `rlimits` for a sandbox without a user namespace: RLIMIT_NPROC counts every task of the uid
/// on the host, so the sandbox's budget comes on top of what the user already runs (host root
/// is not subject to it at all).
pub fn on_top_of_the_users_tasks(rlimits: &[Rlimit]) -> Vec<Rlimit> {
    let uid = nix::unistd::getuid();
    if uid.is_root() {
        return rlimits.to_vec();
    }
    let running = tasks_of(uid.as_raw());
    rlimits
        .iter()
        .map(|r| match *r {
            Rlimit::Nproc(n) => Rlimit::Nproc(n + running),
            other => other,
        })
        .collect()
}

/// How many tasks (threads included) `uid` runs (real uid, from `/proc/<pid>/status`):
/// RLIMIT_NPROC counts every task of the user, not only processes — a desktop's browser alone
/// runs hundreds of threads.
pub fn tasks_of(uid: u32) -> u64 {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0;
    };
    let mut n = 0;
    for entry in dir.flatten() {
        if entry
            .file_name()
            .to_str()
            .is_none_or(|s| s.parse::<u32>().is_err())
        {
            continue;
        }
        let Ok(status) = std::fs::read_to_string(entry.path().join("status")) else {
            continue;
        };
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|l| l.split_whitespace().next())
                .and_then(|u| u.parse::<u64>().ok())
        };
        if field("Uid:") == Some(u64::from(uid)) {
            n += field("Threads:").unwrap_or(1);
        }
    }
    n
}

/// Every process of this `/proc`: pid, parent and command line.
fn processes() -> Vec<ProcessInfo> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return vec![];
    };
    let mut out = Vec::new();
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        out.extend(info(pid, &entry.path()));
    }
    out
}

/// Bytes of a command line kept per process (a script chooses its processes' command lines:
/// a survivor's must fit, with many others, in one control message to the supervisor).
pub const CMDLINE_BYTES: usize = 2048;
/// Arguments kept per process.
const CMDLINE_ARGS: usize = 32;

/// A process's command line, clipped to [`CMDLINE_BYTES`] and [`CMDLINE_ARGS`]: what was cut
/// is said in a last argument.
fn read_cmdline(path: &Path) -> Vec<String> {
    use std::io::Read;
    let mut raw = Vec::new();
    let read = std::fs::File::open(path)
        .and_then(|f| f.take(CMDLINE_BYTES as u64 + 1).read_to_end(&mut raw))
        .is_ok();
    if !read {
        return Vec::new();
    }
    let clipped = raw.len() > CMDLINE_BYTES;
    raw.truncate(CMDLINE_BYTES);
    let mut argv: Vec<String> = raw
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    let clipped = clipped || argv.len() > CMDLINE_ARGS;
    argv.truncate(CMDLINE_ARGS);
    if clipped {
        argv.push(format!("…(command line clipped at {CMDLINE_BYTES} bytes)"));
    }
    argv
}

/// A process's parent pid, from its `/proc` directory's `stat`.
fn parent(base: &Path) -> Option<i32> {
    let stat = std::fs::read_to_string(base.join("stat")).ok()?;
    // The comm field may contain spaces and parentheses: parse after the last ')'.
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// One process's pid, parent and command line, from its `/proc` directory `base`; `None` once it
/// is gone.
fn info(pid: i32, base: &Path) -> Option<ProcessInfo> {
    let ppid = parent(base).unwrap_or(0);
    let argv = read_cmdline(&base.join("cmdline"));
    let argv = if argv.is_empty() {
        // Between fork and exec (or a kernel thread-like process) cmdline is empty: name it
        // by its comm, in brackets as ps does.
        std::fs::read_to_string(base.join("comm"))
            .map(|c| vec![format!("[{}]", c.trim_end())])
            .unwrap_or_default()
    } else {
        argv
    };
    if ppid == 0 && argv.is_empty() && !base.exists() {
        return None;
    }
    Some(ProcessInfo { pid, ppid, argv })
}
