//! Thin wrappers for the few system calls that neither `nix` nor the other crates expose safely.
//!
//! This is the only module allowed to contain `unsafe`. Each wrapper makes exactly one system call
//! (or one libc call) and every block states the invariant it relies on, who upholds it, and what
//! happens if it is wrong.

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::unistd::{ForkResult, Pid};

/// `fork(2)`, for the sandbox init process only.
///
/// The caller must be single-threaded: after `fork` in a multi-threaded process only
/// async-signal-safe functions may run, and the init process allocates freely afterwards.
pub fn fork_single_threaded() -> io::Result<ForkResult> {
    // SAFETY: two kinds of callers, both single-threaded at the call: the stages of
    // `sandbox::init`, which run in a freshly exec'd process image and call
    // `init::assert_single_threaded` before their first fork; and the supervisor's fast launcher
    // (`sandbox::spawn_init`), which forks only after `proc::thread_count()` read exactly one
    // thread from /proc/self/status (`run` forks before starting any thread; `install` and
    // `replay`, which have worker threads, take the re-exec path instead). So no other thread can
    // hold a lock (allocator, stdio) that the child would inherit in a locked state. If that
    // invariant were broken the child could deadlock on such a lock; it could not corrupt the
    // parent.
    unsafe { nix::unistd::fork() }.map_err(io::Error::from)
}

/// `_exit(2)`: leave immediately without running atexit handlers or flushing stdio buffers.
pub fn exit_now(code: i32) -> ! {
    // SAFETY: `_exit` has no preconditions; it never returns and touches no Rust state. It is used
    // in forked children so that buffers inherited from the parent are not flushed twice.
    unsafe { libc::_exit(code) }
}

/// `struct mount_attr` from `<linux/mount.h>` (libc does not export it on every target).
#[repr(C)]
#[derive(Debug, Default)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// `MOUNT_ATTR_RDONLY`.
pub const MOUNT_ATTR_RDONLY: u64 = 0x0000_0001;
/// `MOUNT_ATTR_NOSUID`.
pub const MOUNT_ATTR_NOSUID: u64 = 0x0000_0002;
/// `MOUNT_ATTR_NODEV`.
pub const MOUNT_ATTR_NODEV: u64 = 0x0000_0004;
/// `MOUNT_ATTR_NOEXEC`.
pub const MOUNT_ATTR_NOEXEC: u64 = 0x0000_0008;

/// `mount_setattr(2)` on the mount whose root is `fd` (`AT_EMPTY_PATH`), optionally recursively.
///
/// Unlike a `MS_REMOUNT`, it only adds the requested attributes, so flags locked by a more
/// privileged mount namespace (`nosuid`, `nodev`, `ro`) are never accidentally cleared.
pub fn mount_setattr(fd: BorrowedFd<'_>, recursive: bool, attr_set: u64) -> io::Result<()> {
    let attr = MountAttr {
        attr_set,
        ..MountAttr::default()
    };
    let mut flags = libc::AT_EMPTY_PATH as libc::c_uint;
    if recursive {
        flags |= libc::AT_RECURSIVE as libc::c_uint;
    }
    // SAFETY: `fd` is a live borrowed descriptor, the path is a static NUL-terminated empty
    // string, and `attr` is a properly initialised `struct mount_attr` whose size we pass, all of
    // which outlive the call. The kernel only reads from these pointers. A wrong size would make
    // the kernel reject the call with EINVAL, not corrupt memory.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd.as_raw_fd(),
            c"".as_ptr(),
            flags,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if ret == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// `close_range(first, ~0, CLOSE_RANGE_CLOEXEC)`: mark every descriptor from `first` close-on-exec.
pub fn close_range_cloexec(first: u32) -> io::Result<()> {
    // SAFETY: the call takes integers only. Marking descriptors close-on-exec cannot invalidate any
    // Rust-owned descriptor before the exec that follows; after a failed exec our own descriptors
    // (the control channel) are still open because CLOEXEC only acts at exec time.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    if ret == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// `fcntl(fd, F_SETFD, FD_CLOEXEC)` on a raw descriptor number that may or may not be open
/// (`EBADF` then): the fallback of [`close_range_cloexec`] on kernels before 5.11 or under a
/// seccomp profile that refuses `close_range`.
pub fn set_cloexec_raw(fd: i32) -> io::Result<()> {
    // SAFETY: fcntl with F_SETFD takes integers only and touches no memory; on a number that is
    // not an open descriptor it fails with EBADF. Setting close-on-exec on a descriptor Rust owns
    // does not invalidate it (the flag acts only at exec).
    let ret = unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    if ret == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// `pidfd_open(2)`: a descriptor that refers to exactly this process, immune to pid reuse.
pub fn pidfd_open(pid: Pid) -> io::Result<OwnedFd> {
    // SAFETY: integer arguments only; the kernel returns a new descriptor or -1.
    let ret = unsafe { libc::syscall(libc::SYS_pidfd_open, pid.as_raw(), 0) };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    let fd = RawFd::try_from(ret).map_err(|_| io::Error::from_raw_os_error(libc::EBADF))?;
    // SAFETY: `fd` was just returned by pidfd_open, so it is open and owned by nobody else; the
    // OwnedFd becomes its only owner and closes it once.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `pidfd_send_signal(2)`.
pub fn pidfd_send_signal(pidfd: BorrowedFd<'_>, signal: libc::c_int) -> io::Result<()> {
    // SAFETY: `pidfd` is a live descriptor borrowed for the call; the info pointer is NULL, which
    // the kernel documents as "behave like kill(2)".
    let ret = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            signal,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    if ret == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// `SECBIT_NOROOT`.
pub const SECBIT_NOROOT: libc::c_ulong = 1 << 0;
/// `SECBIT_NOROOT_LOCKED`.
pub const SECBIT_NOROOT_LOCKED: libc::c_ulong = 1 << 1;
/// `SECBIT_NO_SETUID_FIXUP`.
pub const SECBIT_NO_SETUID_FIXUP: libc::c_ulong = 1 << 2;
/// `SECBIT_NO_SETUID_FIXUP_LOCKED`.
pub const SECBIT_NO_SETUID_FIXUP_LOCKED: libc::c_ulong = 1 << 3;
/// `SECBIT_KEEP_CAPS_LOCKED` (keep-caps itself stays off).
pub const SECBIT_KEEP_CAPS_LOCKED: libc::c_ulong = 1 << 5;
/// `SECBIT_NO_CAP_AMBIENT_RAISE`.
pub const SECBIT_NO_CAP_AMBIENT_RAISE: libc::c_ulong = 1 << 6;
/// `SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED`.
pub const SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED: libc::c_ulong = 1 << 7;

/// `prctl(PR_SET_SECUREBITS, bits)`. Needs `CAP_SETPCAP` in the current user namespace.
pub fn set_securebits(bits: libc::c_ulong) -> io::Result<()> {
    // SAFETY: PR_SET_SECUREBITS takes one integer argument; the unused arguments are zero as the
    // man page requires. No memory is passed.
    let ret = unsafe { libc::prctl(libc::PR_SET_SECUREBITS, bits, 0, 0, 0) };
    if ret == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// `LANDLOCK_CREATE_RULESET_VERSION`.
const LANDLOCK_CREATE_RULESET_VERSION: libc::c_uint = 1;

/// The Landlock ABI version the running kernel implements (`landlock_create_ruleset(NULL, 0,
/// LANDLOCK_CREATE_RULESET_VERSION)`).
pub fn landlock_abi_version() -> io::Result<i32> {
    // SAFETY: with the VERSION flag the kernel requires a NULL attribute pointer and size 0, and
    // returns an integer; no descriptor is created.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<libc::c_void>(),
            0usize,
            LANDLOCK_CREATE_RULESET_VERSION,
        )
    };
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        i32::try_from(ret).map_err(|_| io::Error::from_raw_os_error(libc::EOVERFLOW))
    }
}

/// Bring an interface up with `SIOCGIFFLAGS`/`SIOCSIFFLAGS` on `sock` (any AF_INET socket).
pub fn interface_up(sock: BorrowedFd<'_>, name: &CStr) -> io::Result<()> {
    // SAFETY: `ifreq` is plain old data for which all-zero bytes are a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    let bytes = name.to_bytes_with_nul();
    if bytes.len() > req.ifr_name.len() {
        return Err(io::Error::from_raw_os_error(libc::ENAMETOOLONG));
    }
    for (dst, src) in req.ifr_name.iter_mut().zip(bytes) {
        *dst = libc::c_char::from_ne_bytes([*src]);
    }
    // SAFETY: `req` is a live, initialised `ifreq` that outlives the call; SIOCGIFFLAGS writes the
    // flags into its union, which is large enough by definition of the struct.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) } == -1 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: SIOCGIFFLAGS just initialised the `ifru_flags` member of the union, so reading and
    // updating it reads initialised memory.
    unsafe {
        req.ifr_ifru.ifru_flags |= libc::c_short::try_from(libc::IFF_UP).unwrap_or(1);
    }
    // SAFETY: as above; SIOCSIFFLAGS only reads `req`.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) } == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Take ownership of a descriptor the kernel just installed in our table via `SCM_RIGHTS`.
pub fn own_received_fd(raw: RawFd) -> OwnedFd {
    // SAFETY: `raw` comes straight from a `recvmsg` control message, so the kernel created it for
    // this process and no other owner exists; the returned OwnedFd is its single owner. Calling
    // this twice for one control message would double-close; `channel::recv` calls it once per fd.
    unsafe { OwnedFd::from_raw_fd(raw) }
}

/// Drop every capability from the bounding set: `PR_CAPBSET_DROP` for 0, 1, 2, … until the
/// kernel answers EINVAL (no such capability). Needs `CAP_SETPCAP`.
pub fn drop_bounding_set() -> io::Result<()> {
    for cap in 0..=255u32 {
        // SAFETY: PR_CAPBSET_DROP takes an integer capability number; the remaining arguments
        // are zero as required. No memory is passed.
        let ret = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, libc::c_ulong::from(cap), 0, 0, 0) };
        if ret == -1 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EINVAL) && cap > 0 {
                return Ok(());
            }
            return Err(e);
        }
    }
    Ok(())
}

/// `close_range(first, last, 0)`: close every descriptor in the range.
pub fn close_range(first: u32, last: u32) -> io::Result<()> {
    // SAFETY: integer arguments only. Closing descriptors that Rust objects still own would make
    // those objects close a stale number later; the only caller is the freshly forked sandbox
    // child, which owns none of the descriptors it closes (they are the supervisor's, inherited by
    // fork) and never returns into the supervisor's code.
    let ret = unsafe { libc::syscall(libc::SYS_close_range, first, last, 0) };
    if ret != -1 {
        return Ok(());
    }
    let fast = io::Error::last_os_error();
    // Kernels before 5.11, or a runtime's seccomp profile without close_range: close what
    // /proc/self/fd lists in the range (collected first: the listing holds a descriptor too).
    let dir = std::fs::read_dir("/proc/self/fd").map_err(|_| fast)?;
    let open: Vec<i32> = dir
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|fd| (first..=last).contains(fd))
        .filter_map(|fd| i32::try_from(fd).ok())
        .collect();
    for fd in open {
        // SAFETY: as above — descriptors inherited from the supervisor that no Rust object of
        // this child owns; the listing's own descriptor is closed by now (EBADF is ignored).
        unsafe { libc::close(fd) };
    }
    Ok(())
}

/// Install a classic-BPF seccomp filter with `SECCOMP_FILTER_FLAG_NEW_LISTENER` and return the
/// listener descriptor (seccompiler cannot pass that flag). `no_new_privs` must already be set.
pub fn seccomp_install_listener(program: &[seccompiler::sock_filter]) -> io::Result<OwnedFd> {
    let len =
        u16::try_from(program.len()).map_err(|_| io::Error::from_raw_os_error(libc::E2BIG))?;
    let prog = libc::sock_fprog {
        len,
        filter: program.as_ptr().cast::<libc::sock_filter>().cast_mut(),
    };
    // SAFETY: seccompiler's `sock_filter` is `#[repr(C)]` with the same layout as the kernel's
    // `struct sock_filter` (u16, u8, u8, u32), so the pointer cast is valid; `program` outlives the
    // call and the kernel only reads `len` entries from it, copying them before returning.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            libc::SECCOMP_FILTER_FLAG_NEW_LISTENER,
            &prog as *const libc::sock_fprog,
        )
    };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    let fd = RawFd::try_from(ret).map_err(|_| io::Error::from_raw_os_error(libc::EBADF))?;
    // SAFETY: the kernel just returned this new listener descriptor; nobody else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `SECCOMP_IOCTL_NOTIF_RECV`: the next pending notification.
pub fn seccomp_notif_recv(listener: BorrowedFd<'_>) -> io::Result<libc::seccomp_notif> {
    // SAFETY: `seccomp_notif` is plain old data; the kernel requires it zeroed before RECV.
    let mut req: libc::seccomp_notif = unsafe { std::mem::zeroed() };
    // SAFETY: `req` is a live, correctly sized `seccomp_notif` the kernel fills in.
    let ret = unsafe {
        libc::ioctl(
            listener.as_raw_fd(),
            libc::SECCOMP_IOCTL_NOTIF_RECV as _,
            &mut req as *mut libc::seccomp_notif,
        )
    };
    if ret == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(req)
    }
}

/// `SECCOMP_IOCTL_NOTIF_ID_VALID`: the notifying task is still blocked in that syscall (so the
/// memory we read belonged to it, not to a recycled pid).
pub fn seccomp_notif_id_valid(listener: BorrowedFd<'_>, id: u64) -> bool {
    // SAFETY: the kernel reads one u64 from a live local.
    unsafe {
        libc::ioctl(
            listener.as_raw_fd(),
            libc::SECCOMP_IOCTL_NOTIF_ID_VALID as _,
            &id as *const u64,
        ) == 0
    }
}

/// `SECCOMP_IOCTL_NOTIF_SET_FLAGS` with `SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP` (Linux 6.6): the
/// notifying task and the supervisor wake each other synchronously, on the same CPU, instead of
/// waiting for the scheduler to give the supervisor a time slice — on a machine busy with a
/// build that wait, not the work, is what a notification costs.
pub fn seccomp_notif_sync_wakeup(listener: BorrowedFd<'_>) -> io::Result<()> {
    const SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP: libc::c_ulong = 1;
    // SAFETY: the request takes its argument by value (a flags word); no memory is passed.
    let ret = unsafe {
        libc::ioctl(
            listener.as_raw_fd(),
            libc::SECCOMP_IOCTL_NOTIF_SET_FLAGS as _,
            SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP,
        )
    };
    if ret == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// `SECCOMP_IOCTL_NOTIF_SEND` with an error: the syscall fails with `errno` without running.
/// Used for the deny-table syscalls the recorder is notified of (so that each attempt is seen).
pub fn seccomp_notif_fail(listener: BorrowedFd<'_>, id: u64, errno: i32) -> io::Result<()> {
    seccomp_notif_send(
        listener,
        &libc::seccomp_notif_resp {
            id,
            val: 0,
            error: -errno,
            flags: 0,
        },
    )
}

/// `SECCOMP_IOCTL_NOTIF_SEND` with success: the syscall returns 0 without running (the
/// supervisor did its work, e.g. a link across mounts answered with a copy).
pub fn seccomp_notif_succeed(listener: BorrowedFd<'_>, id: u64) -> io::Result<()> {
    seccomp_notif_send(
        listener,
        &libc::seccomp_notif_resp {
            id,
            val: 0,
            error: 0,
            flags: 0,
        },
    )
}

/// `SECCOMP_IOCTL_NOTIF_ADDFD` with `SECCOMP_ADDFD_FLAG_SEND` (Linux 5.14): `fd` is installed
/// in the notifying task and its number becomes the syscall's result, in one step (an `open`
/// answered with a file the supervisor opened).
pub fn seccomp_notif_addfd_send(
    listener: BorrowedFd<'_>,
    id: u64,
    fd: BorrowedFd<'_>,
    cloexec: bool,
) -> io::Result<()> {
    let add = libc::seccomp_notif_addfd {
        id,
        flags: u32::try_from(libc::SECCOMP_ADDFD_FLAG_SEND).unwrap_or(0),
        srcfd: u32::try_from(fd.as_raw_fd()).unwrap_or(u32::MAX),
        newfd: 0,
        newfd_flags: if cloexec {
            u32::try_from(libc::O_CLOEXEC).unwrap_or(0)
        } else {
            0
        },
    };
    notif_write_ioctl(listener, libc::SECCOMP_IOCTL_NOTIF_ADDFD, &add)
}

/// `SECCOMP_IOCTL_NOTIF_ADDFD` with `SECCOMP_ADDFD_FLAG_SETFD` (Linux 5.9): `fd` is installed in
/// the notifying task at number `at`, replacing whatever that number held (as `dup2` does); the
/// syscall itself is answered separately. A connection handed over in place of the socket the
/// script asked to connect.
pub fn seccomp_notif_addfd_at(
    listener: BorrowedFd<'_>,
    id: u64,
    fd: BorrowedFd<'_>,
    at: u32,
    cloexec: bool,
) -> io::Result<()> {
    let add = libc::seccomp_notif_addfd {
        id,
        flags: u32::try_from(libc::SECCOMP_ADDFD_FLAG_SETFD).unwrap_or(0),
        srcfd: u32::try_from(fd.as_raw_fd()).unwrap_or(u32::MAX),
        newfd: at,
        newfd_flags: if cloexec {
            u32::try_from(libc::O_CLOEXEC).unwrap_or(0)
        } else {
            0
        },
    };
    notif_write_ioctl(listener, libc::SECCOMP_IOCTL_NOTIF_ADDFD, &add)
}

fn seccomp_notif_send(listener: BorrowedFd<'_>, resp: &libc::seccomp_notif_resp) -> io::Result<()> {
    notif_write_ioctl(listener, libc::SECCOMP_IOCTL_NOTIF_SEND, resp)
}

/// A seccomp-listener ioctl whose argument the kernel only reads (`_IOW`): `arg` must be the
/// structure `request` names (`seccomp_notif_resp` for SEND, `seccomp_notif_addfd` for ADDFD).
fn notif_write_ioctl<T>(listener: BorrowedFd<'_>, request: libc::Ioctl, arg: &T) -> io::Result<()> {
    // SAFETY: the kernel reads one live, initialised `T` through the pointer, which outlives the
    // call, and the two callers pass the structure their request is defined for; `listener`
    // is a live borrowed descriptor.
    let ret = unsafe { libc::ioctl(listener.as_raw_fd(), request as _, arg as *const T) };
    if ret == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// `SECCOMP_IOCTL_NOTIF_SEND` with `SECCOMP_USER_NOTIF_FLAG_CONTINUE`: let the syscall proceed as
/// if nothing happened. The recorder only ever observes; enforcement is the sandbox's job.
pub fn seccomp_notif_continue(listener: BorrowedFd<'_>, id: u64) -> io::Result<()> {
    seccomp_notif_send(
        listener,
        &libc::seccomp_notif_resp {
            id,
            val: 0,
            error: 0,
            flags: u32::try_from(libc::SECCOMP_USER_NOTIF_FLAG_CONTINUE).unwrap_or(1),
        },
    )
}

/// The write end of the termination pipe, for the signal handler (-1 until installed).
static TERMINATION_PIPE: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(-1);

extern "C" fn on_termination_signal(sig: libc::c_int) {
    let fd = TERMINATION_PIPE.load(std::sync::atomic::Ordering::Relaxed);
    let byte = u8::try_from(sig).unwrap_or(0);
    // SAFETY: `write(2)` is async-signal-safe; `fd` is the non-blocking write end of a pipe this
    // process created and never closes, and `byte` lives on this handler's stack for the call.
    // A full pipe (a second signal before the first was read) makes the write fail, harmlessly.
    let _ = unsafe { libc::write(fd, std::ptr::addr_of!(byte).cast(), 1) };
}

/// Route SIGINT, SIGTERM and SIGHUP to a pipe: returns its read end, which yields one byte (the
/// signal number) per signal. Handlers are reset to the default by `execve`, so programs this
/// process runs (npm, the sandbox init, scripts) are unaffected.
pub fn termination_pipe() -> io::Result<OwnedFd> {
    let (read, write) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC | nix::fcntl::OFlag::O_NONBLOCK)
            .map_err(io::Error::from)?;
    // The read end blocks: the watcher thread waits on it.
    nix::fcntl::fcntl(
        &read,
        nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::empty()),
    )
    .map_err(io::Error::from)?;
    let raw = write.as_raw_fd();
    // Never closed: the handler may run at any time for the rest of the process.
    std::mem::forget(write);
    TERMINATION_PIPE.store(raw, std::sync::atomic::Ordering::Relaxed);
    let action = nix::sys::signal::SigAction::new(
        nix::sys::signal::SigHandler::Handler(on_termination_signal),
        nix::sys::signal::SaFlags::SA_RESTART,
        nix::sys::signal::SigSet::empty(),
    );
    for sig in [
        nix::sys::signal::Signal::SIGINT,
        nix::sys::signal::Signal::SIGTERM,
        nix::sys::signal::Signal::SIGHUP,
    ] {
        // SAFETY: the handler only loads an atomic and calls `write(2)`, both async-signal-safe;
        // it touches no lock, allocator or Rust-managed state, so it may interrupt any code.
        unsafe { nix::sys::signal::sigaction(sig, &action) }.map_err(io::Error::from)?;
    }
    Ok(read)
}

/// Overwrite this process's argument area (what `/proc/<pid>/cmdline` shows) with `name`
/// followed by NULs, as setproctitle(3) does: the kernel reports the bytes between the
/// `arg_start` and `arg_end` it recorded at exec, whatever they hold now. Shrinking the area
/// would need `PR_SET_MM`, which needs CAP_SYS_RESOURCE; zeroing it needs nothing.
///
/// Only for a process that no longer reads its own arguments (the sandbox's init: after this,
/// `std::env::args` would yield `name` and empty strings).
pub fn blank_command_line(name: &[u8]) -> io::Result<()> {
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    // Fields after the parenthesised comm, which may itself hold spaces or parentheses:
    // arg_start and arg_end are fields 48 and 49 of proc_pid_stat(5), 46 and 47 after it.
    let after = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .ok_or_else(|| io::Error::other("unparsable /proc/self/stat"))?;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let field = |i: usize| -> io::Result<usize> {
        fields
            .get(i)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| io::Error::other("no argument area in /proc/self/stat"))
    };
    let (start, end) = (field(45)?, field(46)?);
    if start == 0 || end <= start || name.len() >= end - start {
        return Err(io::Error::other("argument area too small"));
    }
    // SAFETY: [arg_start, arg_end) is this process's own argument strings, which the kernel
    // placed in a private, writable stack mapping at exec and which stay mapped for the life of
    // the process (the kernel reads them for /proc/self/cmdline by those same bounds). Nothing in
    // this process holds a Rust reference into them: std keeps only raw pointers, read when
    // `std::env::args` is called, and the callers never call it afterwards. The writes stay
    // strictly inside the area (checked above), and this process is single-threaded here (the
    // init right after fork), so no other thread reads the bytes while they change.
    unsafe {
        let area = std::slice::from_raw_parts_mut(start as *mut u8, end - start);
        area.fill(0);
        area[..name.len()].copy_from_slice(name);
    }
    Ok(())
}

/// Duplicate `fd` onto the lowest free descriptor number at or above `min`, close-on-exec.
pub fn dup_at_least(fd: BorrowedFd<'_>, min: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: F_DUPFD_CLOEXEC takes an int argument and touches no memory of ours; `fd` is a
    // live descriptor for the duration of the borrow.
    let raw = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, min) };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: on success the kernel just created `raw` for this call; nothing else owns it, so
    // the OwnedFd is its single owner.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}
