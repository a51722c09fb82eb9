//! Host-side access to file trees written by sandboxed (hostile) install scripts.
//!
//! Everything a sandboxed script wrote is attacker-controlled: symlinks to the user's real files
//! or to `/dev/zero`, FIFOs that block whoever opens them, sparse or endless files, directory
//! chains tens of thousands of levels deep, `chmod 000` directories, names with control
//! characters, hard links, sockets and device nodes. The functions here are the only way
//! host-side code should look at such a tree:
//!
//! * every open is relative to an already-open directory descriptor, one path component at a
//!   time, with `O_NOFOLLOW` (and, where the kernel has it, `openat2` with `RESOLVE_BENEATH |
//!   RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV`), so a symlink is never
//!   followed and a mount point is never crossed (an `st_dev` check backs this up);
//! * metadata comes from `fstatat(AT_SYMLINK_NOFOLLOW | AT_NO_AUTOMOUNT)`;
//! * only regular files are ever opened for reading (with `O_NONBLOCK | O_NOCTTY`, checked again
//!   with `fstat` after the open), and never more than a caller-given number of bytes is read,
//!   whatever `st_size` claims;
//! * traversals are iterative (an explicit stack, no recursion) and keep at most [`FD_CAP`]
//!   directory descriptors open per tree; deeper ancestors are re-opened through `..` when the
//!   traversal climbs back, and the re-opened directory must have the device and inode number
//!   recorded on the way down (otherwise it is re-opened by name from the nearest open ancestor,
//!   again verified, or the traversal fails);
//! * listings, reads and copies are bounded by a [`Budget`].
//!
//! Without `openat2` (kernels before 5.6, or a seccomp filter that rejects it with `EPERM`) the
//! code falls back to `openat` with `O_NOFOLLOW`; a bind mount of the *same* filesystem cannot be
//! detected then (its `st_dev` is the same), every other guarantee holds.

use std::collections::HashSet;
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use nix::dir::{Dir, OwningIter};
use nix::errno::Errno;
use nix::fcntl::{
    AT_FDCWD, AtFlags, OFlag, OpenHow, ResolveFlag, open, openat, openat2, readlinkat,
};
use nix::sys::stat::{FchmodatFlags, FileStat, Mode, fchmod, fchmodat, fstat, fstatat, mkdirat};
use nix::unistd::{UnlinkatFlags, Whence, geteuid, lseek, symlinkat, unlinkat};

/// Most directory descriptors a traversal keeps open per tree (besides the tree's root).
pub const FD_CAP: usize = 16;

/// Longest symlink target kept in [`Entry::link_target`], in bytes (Linux's `PATH_MAX`).
pub const MAX_LINK_TARGET: usize = 4096;

/// Most paths recorded in [`Removal::left`]; further failures are not listed.
pub const MAX_LEFT: usize = 1024;

/// Subdirectory names remembered per directory between two scans in [`remove_tree`].
const REMOVE_BATCH: usize = 256;

/// Entries of one directory [`remove_tree`] may fail to remove before it gives that directory up.
const MAX_SKIP: usize = 4096;

/// Read/copy chunk size.
const CHUNK: usize = 64 * 1024;

/// Limits for [`walk`] and [`copy_tree`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Budget {
    /// Most entries listed; the walk stops (and says so in [`Walk::truncated`]) at the next one.
    pub max_entries: usize,
    /// Deepest entry listed: the root's children are at depth 1. Directories at this depth are
    /// listed but not entered.
    pub max_depth: usize,
    /// Most bytes copied from one regular file by [`copy_tree`].
    pub max_file_bytes: u64,
    /// Most bytes copied in total by [`copy_tree`]; the copy stops once it is exhausted.
    pub max_total_bytes: u64,
    /// The walk stops when this instant has passed.
    pub deadline: Option<Instant>,
}

impl Default for Budget {
    /// 50 000 entries, depth 64, 1 MiB per file, 64 MiB in total, no deadline.
    fn default() -> Self {
        Self {
            max_entries: 50_000,
            max_depth: 64,
            max_file_bytes: 1 << 20,
            max_total_bytes: 64 << 20,
            deadline: None,
        }
    }
}

/// File type of an [`Entry`], from `st_mode` (never from following a symlink).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Regular file.
    File,
    /// Directory.
    Dir,
    /// Symbolic link (never followed).
    Symlink,
    /// Named pipe.
    Fifo,
    /// Unix-domain socket.
    Socket,
    /// Character device node.
    CharDevice,
    /// Block device node.
    BlockDevice,
    /// A file type Linux does not normally produce.
    Other,
}

impl Kind {
    fn from_mode(mode: u32) -> Self {
        match mode & libc::S_IFMT {
            libc::S_IFREG => Self::File,
            libc::S_IFDIR => Self::Dir,
            libc::S_IFLNK => Self::Symlink,
            libc::S_IFIFO => Self::Fifo,
            libc::S_IFSOCK => Self::Socket,
            libc::S_IFCHR => Self::CharDevice,
            libc::S_IFBLK => Self::BlockDevice,
            _ => Self::Other,
        }
    }
}

/// One file found by [`walk`] or [`copy_tree`], as `fstatat(AT_SYMLINK_NOFOLLOW)` saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Path relative to the walked root (raw bytes: may contain control characters).
    pub rel: PathBuf,
    /// File type.
    pub kind: Kind,
    /// Full `st_mode` (type and permission bits) as found, before any permission repair.
    pub mode: u32,
    /// `st_size` (for a symlink: the target's length); never trusted for reading.
    pub size: u64,
    /// Owner.
    pub uid: u32,
    /// Hard link count.
    pub nlink: u64,
    /// Inode number.
    pub ino: u64,
    /// Device of the filesystem holding the entry.
    pub dev: u64,
    /// Last access, milliseconds since the epoch (0 if before it).
    pub atime_ms: u64,
    /// Last modification, milliseconds since the epoch (0 if before it).
    pub mtime_ms: u64,
    /// Last status change, milliseconds since the epoch (0 if before it).
    pub ctime_ms: u64,
    /// For symlinks: the target as stored (`readlinkat`, never followed), at most
    /// [`MAX_LINK_TARGET`] bytes. `None` for other kinds or if it could not be read.
    pub link_target: Option<PathBuf>,
}

/// Result of [`walk`] or [`copy_tree`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Walk {
    /// Entries found, directory by directory, each directory's entries sorted by name bytes.
    /// The root itself is not included.
    pub entries: Vec<Entry>,
    /// Why the listing is incomplete: entry budget, deadline or total byte budget (the walk
    /// stopped there), or depth limit (deeper directories were not entered). Several reasons
    /// are joined with `"; "`. `None` means everything was listed.
    pub truncated: Option<String>,
    /// Paths (relative to the root) that could not be opened or examined: directories that
    /// stayed unreadable even after `chmod u+rx` where we own them (walks restore the original
    /// mode afterwards), and for [`copy_tree`] also regular files that could not be opened.
    pub unreadable: Vec<PathBuf>,
    /// [`copy_tree`] only: regular files whose copy was cut at the byte budget.
    pub truncated_files: Vec<PathBuf>,
}

/// Result of [`remove_tree`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Removal {
    /// Directory entries removed (files, symlinks, directories, including the top one).
    pub removed: u64,
    /// Paths that could not be removed: mount points, entries we may not delete, directories
    /// that could not be read. Their ancestors necessarily remain too and are not listed
    /// separately. At most [`MAX_LEFT`] paths; empty means the whole tree is gone.
    pub left: Vec<PathBuf>,
}

// ---------------------------------------------------------------------------------------------
// Small system-call helpers
// ---------------------------------------------------------------------------------------------

/// Cleared the first time `openat2` reports `ENOSYS`.
static OPENAT2_AVAILABLE: AtomicBool = AtomicBool::new(true);

fn dir_flags() -> OFlag {
    OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | OFlag::O_NONBLOCK
}

fn file_flags() -> OFlag {
    OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_NOCTTY | OFlag::O_CLOEXEC
}

fn nofollow() -> AtFlags {
    AtFlags::AT_SYMLINK_NOFOLLOW | AtFlags::AT_NO_AUTOMOUNT
}

/// Opens the single path component `name` (no `/`, not `.` or `..`) below `dir` without
/// following symlinks or crossing mount points (`EXDEV` where `openat2` exists).
fn open_beneath(dir: BorrowedFd<'_>, name: &OsStr, flags: OFlag) -> nix::Result<OwnedFd> {
    if OPENAT2_AVAILABLE.load(Ordering::Relaxed) {
        let how = OpenHow::new().flags(flags).resolve(
            ResolveFlag::RESOLVE_BENEATH
                | ResolveFlag::RESOLVE_NO_SYMLINKS
                | ResolveFlag::RESOLVE_NO_MAGICLINKS
                | ResolveFlag::RESOLVE_NO_XDEV,
        );
        match openat2(dir, name, how) {
            Err(Errno::ENOSYS) => OPENAT2_AVAILABLE.store(false, Ordering::Relaxed),
            // A container's seccomp filter: fall back for this call.
            Err(Errno::EPERM) => {}
            other => return other,
        }
    }
    openat(dir, name, flags, Mode::empty())
}

fn open_dir_at(dir: BorrowedFd<'_>, name: &OsStr) -> nix::Result<OwnedFd> {
    open_beneath(dir, name, dir_flags())
}

fn is_dir(st: &FileStat) -> bool {
    st.st_mode & libc::S_IFMT == libc::S_IFDIR
}

#[allow(clippy::useless_conversion)] // the field types differ between Linux targets
fn file_id(st: &FileStat) -> (u64, u64) {
    (u64::from(st.st_dev), u64::from(st.st_ino))
}

fn fd_id(fd: impl AsFd) -> io::Result<(u64, u64)> {
    Ok(file_id(&fstat(fd)?))
}

fn millis(sec: i64, nsec: i64) -> u64 {
    let Ok(sec) = u64::try_from(sec) else {
        return 0;
    };
    let ms = u64::try_from(nsec / 1_000_000).unwrap_or(0);
    sec.saturating_mul(1000).saturating_add(ms)
}

#[allow(clippy::useless_conversion)] // the field types differ between Linux targets
fn entry_from_stat(rel: PathBuf, st: &FileStat, link_target: Option<PathBuf>) -> Entry {
    let (dev, ino) = file_id(st);
    Entry {
        rel,
        kind: Kind::from_mode(st.st_mode),
        mode: st.st_mode,
        size: u64::try_from(st.st_size).unwrap_or(0),
        uid: st.st_uid,
        nlink: u64::from(st.st_nlink),
        ino,
        dev,
        atime_ms: millis(st.st_atime, st.st_atime_nsec),
        mtime_ms: millis(st.st_mtime, st.st_mtime_nsec),
        ctime_ms: millis(st.st_ctime, st.st_ctime_nsec),
        link_target,
    }
}

fn read_link_bounded(dir: BorrowedFd<'_>, name: &OsStr) -> Option<PathBuf> {
    let mut bytes = readlinkat(dir, name).ok()?.into_vec();
    bytes.truncate(MAX_LINK_TARGET);
    Some(PathBuf::from(OsString::from_vec(bytes)))
}

fn is_dot(name: &[u8]) -> bool {
    name == b"." || name == b".."
}

/// A fresh listing of the open directory `dir`, from its beginning, on a duplicate descriptor
/// (so `dir` itself stays usable for `*at` calls while the listing is consumed).
fn list(dir: BorrowedFd<'_>) -> io::Result<OwningIter> {
    let dup = dir.try_clone_to_owned()?;
    // The duplicate shares its offset with `dir` (and with earlier listings): rewind it.
    lseek(&dup, 0, Whence::SeekSet)?;
    Ok(Dir::from_fd(dup)?.into_iter())
}

/// Up to `limit` names of `dir` (without `.` and `..`), and the error that ended the listing
/// early, if any.
fn read_names(dir: BorrowedFd<'_>, limit: usize) -> (Vec<OsString>, Option<io::Error>) {
    let mut names = Vec::new();
    if limit == 0 {
        return (names, None);
    }
    let stream = match list(dir) {
        Ok(stream) => stream,
        Err(e) => return (names, Some(e)),
    };
    for ent in stream {
        match ent {
            Ok(ent) => {
                let name = ent.file_name().to_bytes();
                if is_dot(name) {
                    continue;
                }
                names.push(OsStr::from_bytes(name).to_os_string());
                if names.len() >= limit {
                    break;
                }
            }
            Err(e) => return (names, Some(e.into())),
        }
    }
    (names, None)
}

fn dir_nonempty(parent: BorrowedFd<'_>, name: &OsStr) -> bool {
    match open_dir_at(parent, name) {
        Ok(fd) => {
            let (names, err) = read_names(fd.as_fd(), 1);
            !names.is_empty() || err.is_some()
        }
        // Cannot tell: assume there is something in it.
        Err(_) => true,
    }
}

fn owner_mode(st: &FileStat) -> Mode {
    Mode::from_bits_truncate(st.st_mode & 0o7777)
}

/// Opens a directory for listing. When it (or its lack of `u+rx`) is in the way and `euid` owns
/// it, grants `u+rx` and returns the original mode so the caller can restore it.
fn open_listable(
    parent: BorrowedFd<'_>,
    name: &OsStr,
    euid: u32,
    opener: &dyn Fn() -> nix::Result<OwnedFd>,
) -> nix::Result<(OwnedFd, Option<Mode>)> {
    let rx = Mode::S_IRUSR | Mode::S_IXUSR;
    let fd = match opener() {
        Ok(fd) => fd,
        Err(Errno::EACCES) => {
            let st = fstatat(parent, name, nofollow())?;
            if st.st_uid != euid || !is_dir(&st) {
                return Err(Errno::EACCES);
            }
            let orig = owner_mode(&st);
            fchmodat(parent, name, orig | rx, FchmodatFlags::NoFollowSymlink)
                .map_err(|_| Errno::EACCES)?;
            return match opener() {
                Ok(fd) => Ok((fd, Some(orig))),
                Err(e) => {
                    let _ = fchmodat(parent, name, orig, FchmodatFlags::NoFollowSymlink);
                    Err(e)
                }
            };
        }
        Err(e) => return Err(e),
    };
    let st = fstat(&fd)?;
    if st.st_uid == euid && st.st_mode & 0o500 != 0o500 {
        let orig = owner_mode(&st);
        if fchmod(&fd, orig | rx).is_ok() {
            return Ok((fd, Some(orig)));
        }
    }
    Ok((fd, None))
}

/// Opens a directory that is about to be emptied, making it `0700` if that is what stands in
/// the way (only possible where we own it or are privileged).
fn open_removable(
    parent: BorrowedFd<'_>,
    name: &OsStr,
    euid: u32,
    opener: &dyn Fn() -> nix::Result<OwnedFd>,
) -> nix::Result<OwnedFd> {
    let fd = match opener() {
        Ok(fd) => fd,
        Err(e @ (Errno::EACCES | Errno::EPERM)) => {
            fchmodat(parent, name, Mode::S_IRWXU, FchmodatFlags::NoFollowSymlink).map_err(|_| e)?;
            opener()?
        }
        Err(e) => return Err(e),
    };
    let st = fstat(&fd)?;
    if st.st_uid == euid && st.st_mode & 0o700 != 0o700 {
        let _ = fchmod(&fd, Mode::S_IRWXU);
    }
    Ok(fd)
}

/// Checks that `root` is a directory and not a symlink (its parent path is trusted).
fn check_root(root: &Path) -> io::Result<FileStat> {
    let st = fstatat(AT_FDCWD, root, nofollow())?;
    match Kind::from_mode(st.st_mode) {
        Kind::Dir => Ok(st),
        Kind::Symlink => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} is a symbolic link", root.display()),
        )),
        _ => Err(Errno::ENOTDIR.into()),
    }
}

fn open_root(root: &Path) -> nix::Result<OwnedFd> {
    open(root, dir_flags(), Mode::empty())
}

/// The `Normal` components of `rel`; rejects empty, absolute and `..`-containing paths.
fn rel_components(rel: &Path) -> io::Result<Vec<&OsStr>> {
    let mut out = Vec::new();
    for c in rel.components() {
        match c {
            Component::Normal(name) => out.push(name),
            Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("{} is not a plain relative path", rel.display()),
                ));
            }
        }
    }
    if out.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "empty relative path",
        ));
    }
    Ok(out)
}

/// Opens `name` below `dir` for reading if, and only if, it is a regular file on `root_dev`.
/// `Ok(None)` for anything else (symlink, FIFO, device, socket, directory, mount point).
fn open_regular_at(dir: BorrowedFd<'_>, name: &OsStr, root_dev: u64) -> io::Result<Option<File>> {
    let st = fstatat(dir, name, nofollow())?;
    if Kind::from_mode(st.st_mode) != Kind::File || file_id(&st).0 != root_dev {
        return Ok(None);
    }
    let fd = match open_beneath(dir, name, file_flags()) {
        Ok(fd) => fd,
        // Swapped for a symlink, a directory or a mount since the fstatat.
        Err(Errno::ELOOP | Errno::EXDEV | Errno::EISDIR | Errno::ENXIO | Errno::ENOTDIR) => {
            return Ok(None);
        }
        Err(e) => return Err(e.into()),
    };
    let now = fstat(&fd)?;
    if Kind::from_mode(now.st_mode) != Kind::File || file_id(&now) != file_id(&st) {
        return Ok(None);
    }
    Ok(Some(File::from(fd)))
}

fn read_retrying(mut file: &File, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match file.read(buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            other => return other,
        }
    }
}

/// `true` if `file` has at least one more byte.
fn has_more(file: &File) -> io::Result<bool> {
    let mut probe = [0u8; 1];
    Ok(read_retrying(file, &mut probe)? > 0)
}

fn chunk_len(left: u64) -> usize {
    usize::try_from(left).map_or(CHUNK, |l| l.min(CHUNK))
}

fn read_limited(file: &File, max: u64) -> io::Result<(Vec<u8>, bool)> {
    let mut buf = Vec::new();
    let mut total: u64 = 0;
    while total < max {
        let len = buf.len();
        buf.resize(len + chunk_len(max - total), 0);
        let n = read_retrying(file, &mut buf[len..])?;
        buf.truncate(len + n);
        if n == 0 {
            return Ok((buf, false));
        }
        total += u64::try_from(n).unwrap_or(u64::MAX);
    }
    Ok((buf, has_more(file)?))
}

/// Copies at most `max` bytes; returns the bytes copied and whether the source had more.
fn copy_limited(src: &File, mut dst: &File, max: u64, buf: &mut [u8]) -> io::Result<(u64, bool)> {
    let mut total: u64 = 0;
    while total < max {
        let want = chunk_len(max - total).min(buf.len());
        let n = read_retrying(src, &mut buf[..want])?;
        if n == 0 {
            return Ok((total, false));
        }
        dst.write_all(&buf[..n])?;
        total += u64::try_from(n).unwrap_or(u64::MAX);
    }
    Ok((total, has_more(src)?))
}

// ---------------------------------------------------------------------------------------------
// Bounded stack of directory descriptors
// ---------------------------------------------------------------------------------------------

#[derive(Debug)]
struct Level {
    name: OsString,
    id: (u64, u64),
    fd: Option<OwnedFd>,
}

/// The directories from a tree's root down to the current one. Only the top [`FD_CAP`] levels
/// (and the root) hold a descriptor; the others are re-opened, verified, on the way back up.
#[derive(Debug)]
struct FdStack {
    root: OwnedFd,
    levels: Vec<Level>,
    /// Levels holding a descriptor; always the top `open` ones.
    open: usize,
}

fn tree_changed() -> io::Error {
    io::Error::other("directory tree changed while it was being traversed")
}

impl FdStack {
    fn new(root: OwnedFd) -> Self {
        Self {
            root,
            levels: Vec::new(),
            open: 0,
        }
    }

    fn top(&self) -> io::Result<BorrowedFd<'_>> {
        match self.levels.last() {
            None => Ok(self.root.as_fd()),
            Some(Level { fd: Some(fd), .. }) => Ok(fd.as_fd()),
            Some(_) => Err(tree_changed()),
        }
    }

    /// Enters `fd` (the child `name` of the current top, identified by `id`). Returns the index
    /// of the level whose descriptor was closed to stay within [`FD_CAP`], if any.
    fn push(&mut self, name: OsString, fd: OwnedFd, id: (u64, u64)) -> Option<usize> {
        self.levels.push(Level {
            name,
            id,
            fd: Some(fd),
        });
        self.open += 1;
        if self.open > FD_CAP {
            let lowest = self.levels.len() - self.open;
            self.levels[lowest].fd = None;
            self.open -= 1;
            return Some(lowest);
        }
        None
    }

    /// Leaves the top level and returns its descriptor, together with the outcome of making
    /// the new top usable again (re-opening it if its descriptor had been closed).
    fn pop(&mut self) -> (Option<OwnedFd>, io::Result<()>) {
        let Some(child) = self.levels.pop() else {
            return (None, Ok(()));
        };
        if child.fd.is_some() {
            self.open -= 1;
        }
        let res = match self.levels.last() {
            Some(parent) if parent.fd.is_none() => self.reopen_top(child.fd.as_ref()),
            _ => Ok(()),
        };
        (child.fd, res)
    }

    fn reopen_top(&mut self, child: Option<&OwnedFd>) -> io::Result<()> {
        let n = self.levels.len();
        let want = self.levels[n - 1].id;
        // Fast path: the child's "..", which is the parent because no symlink was followed and
        // no mount crossed on the way down, as long as nothing was renamed meanwhile.
        if let Some(child) = child {
            if let Ok(fd) = openat(child, "..", dir_flags(), Mode::empty()) {
                if fd_id(&fd)? == want {
                    self.levels[n - 1].fd = Some(fd);
                    self.open += 1;
                    return Ok(());
                }
            }
        }
        // Slow path: down by name from the nearest ancestor still open, verifying each level.
        let start = self.levels[..n - 1].iter().rposition(|l| l.fd.is_some());
        let mut cur = match start {
            Some(i) => self.levels[i].fd.as_ref().map(OwnedFd::try_clone),
            None => Some(self.root.try_clone()),
        }
        .ok_or_else(tree_changed)??;
        for level in &self.levels[start.map_or(0, |i| i + 1)..] {
            let fd = open_dir_at(cur.as_fd(), &level.name).map_err(|_| tree_changed())?;
            if fd_id(&fd)? != level.id {
                return Err(tree_changed());
            }
            cur = fd;
        }
        self.levels[n - 1].fd = Some(cur);
        self.open += 1;
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// walk / copy_tree
// ---------------------------------------------------------------------------------------------

/// Lists the tree below `root` without following symlinks or crossing filesystems.
///
/// `root` must be a directory and not a symlink (its parent path is trusted). `descend` is asked,
/// with the directory's path relative to `root`, before each directory on the root's filesystem
/// is entered. Directories we own that deny us `u+rx` get it for the duration of the walk and
/// their mode is restored afterwards; [`Entry::mode`] is always the mode as found.
///
/// Errors only for problems with `root` itself or when the tree is changed underneath the walk;
/// everything else is reported in the returned [`Walk`].
pub fn walk(root: &Path, budget: &Budget, descend: &dyn Fn(&Path) -> bool) -> io::Result<Walk> {
    traverse(root, budget, descend, None)
}

/// Copies the tree below `from` into `to`, which must not exist (its parent must) or be an empty
/// directory.
///
/// Regular files are copied up to [`Budget::max_file_bytes`] each and
/// [`Budget::max_total_bytes`] in total (cut files are listed in [`Walk::truncated_files`]) with
/// their permission bits minus setuid/setgid/sticky; directories are created with their
/// permission bits plus `u+rwx`; symlinks are re-created as symlinks with the same target (never
/// followed). FIFOs, sockets and device nodes are not created, but appear in
/// [`Walk::entries`] with their kind. Directories on other filesystems are created empty.
/// Entry, depth and deadline limits apply as in [`walk`]. Errors writing the destination are
/// returned as errors.
pub fn copy_tree(from: &Path, to: &Path, budget: &Budget) -> io::Result<Walk> {
    let dst = prepare_destination(to)?;
    let dst_root = fd_id(&dst)?;
    let copier = Copier {
        dst: FdStack::new(dst),
        dst_root,
        copied: 0,
        buf: vec![0; CHUNK],
    };
    traverse(from, budget, &|_| true, Some(copier))
}

fn prepare_destination(to: &Path) -> io::Result<OwnedFd> {
    match fstatat(AT_FDCWD, to, nofollow()) {
        Err(Errno::ENOENT) => std::fs::DirBuilder::new().mode(0o700).create(to)?,
        Ok(st) if is_dir(&st) => {}
        Ok(_) => {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{} exists and is not a directory", to.display()),
            ));
        }
        Err(e) => return Err(e.into()),
    }
    let fd = open_root(to)?;
    let (names, err) = read_names(fd.as_fd(), 1);
    if let Some(e) = err {
        return Err(e);
    }
    if !names.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("{} is not empty", to.display()),
        ));
    }
    Ok(fd)
}

#[derive(Debug)]
struct Copier {
    dst: FdStack,
    dst_root: (u64, u64),
    copied: u64,
    buf: Vec<u8>,
}

#[derive(Debug, Default)]
struct WalkFrame {
    /// Subdirectories still to enter, last first, with their `st_mode`.
    subdirs: Vec<(OsString, u32)>,
    /// Mode to put back when leaving (we added `u+rx`).
    restore: Option<Mode>,
    /// Mode for the destination directory when leaving ([`copy_tree`]).
    dst_mode: Option<Mode>,
}

enum Flow {
    Continue,
    Stop,
}

fn dir_copy_mode(mode: u32) -> Mode {
    Mode::from_bits_truncate(mode & 0o777) | Mode::S_IRWXU
}

fn file_copy_mode(mode: u32) -> Mode {
    Mode::from_bits_truncate(mode & 0o777)
}

fn note(walk: &mut Walk, reason: &str) {
    match &mut walk.truncated {
        Some(t) => {
            t.push_str("; ");
            t.push_str(reason);
        }
        None => walk.truncated = Some(reason.to_owned()),
    }
}

/// Gives an (empty) destination directory its final mode.
fn finish_dst_dir(copy: Option<&Copier>, name: &OsStr, mode: u32) -> io::Result<()> {
    if let Some(c) = copy {
        let fd = open_dir_at(c.dst.top()?, name)?;
        fchmod(&fd, dir_copy_mode(mode))?;
    }
    Ok(())
}

#[derive(Debug)]
struct Traversal<'a> {
    budget: &'a Budget,
    euid: u32,
    root_dev: u64,
    stack: FdStack,
    frames: Vec<WalkFrame>,
    rel: PathBuf,
    walk: Walk,
    copy: Option<Copier>,
    depth_noted: bool,
}

fn traverse(
    root: &Path,
    budget: &Budget,
    descend: &dyn Fn(&Path) -> bool,
    copy: Option<Copier>,
) -> io::Result<Walk> {
    check_root(root)?;
    let euid = geteuid().as_raw();
    let (fd, restore) = open_listable(AT_FDCWD, root.as_os_str(), euid, &|| open_root(root))?;
    let root_dev = fd_id(&fd)?.0;
    let mut t = Traversal {
        budget,
        euid,
        root_dev,
        stack: FdStack::new(fd),
        frames: vec![WalkFrame {
            restore,
            ..WalkFrame::default()
        }],
        rel: PathBuf::new(),
        walk: Walk::default(),
        copy,
        depth_noted: false,
    };
    let res = t.run(descend);
    // Put back every mode we changed, also after an early stop or an error.
    while t.frames.len() > 1 {
        if t.pop_frame().is_err() {
            break;
        }
    }
    if let Some(mode) = t.frames.first().and_then(|f| f.restore) {
        let _ = fchmod(&t.stack.root, mode);
    }
    res.map(|()| t.walk)
}

impl Traversal<'_> {
    fn deadline_passed(&self) -> bool {
        self.budget.deadline.is_some_and(|d| Instant::now() >= d)
    }

    fn run(&mut self, descend: &dyn Fn(&Path) -> bool) -> io::Result<()> {
        if self.budget.max_depth == 0 {
            if dir_nonempty(self.stack.root.as_fd(), OsStr::new(".")) {
                note(&mut self.walk, "depth limit 0: the root was not listed");
            }
            return Ok(());
        }
        if let Flow::Stop = self.list_top(descend)? {
            return Ok(());
        }
        loop {
            let Some((name, mode)) = self.frames.last_mut().and_then(|f| f.subdirs.pop()) else {
                if self.frames.len() <= 1 {
                    return Ok(());
                }
                self.pop_frame()?;
                continue;
            };
            if self.deadline_passed() {
                note(&mut self.walk, "deadline reached");
                return Ok(());
            }
            let parent = self.stack.top()?;
            let opened = open_listable(parent, &name, self.euid, &|| open_dir_at(parent, &name));
            let (fd, restore) = match opened {
                Ok(opened) => opened,
                // A mount point (listed, not entered) or gone since it was listed.
                Err(Errno::EXDEV | Errno::ENOENT) => {
                    finish_dst_dir(self.copy.as_ref(), &name, mode)?;
                    continue;
                }
                Err(_) => {
                    self.walk.unreadable.push(self.rel.join(&name));
                    finish_dst_dir(self.copy.as_ref(), &name, mode)?;
                    continue;
                }
            };
            let id = fd_id(&fd)?;
            if id.0 != self.root_dev {
                if let Some(m) = restore {
                    let _ = fchmod(&fd, m);
                }
                finish_dst_dir(self.copy.as_ref(), &name, mode)?;
                continue;
            }
            let mut dst_mode = None;
            if let Some(c) = self.copy.as_mut() {
                let dfd = open_dir_at(c.dst.top()?, &name)?;
                let did = fd_id(&dfd)?;
                c.dst.push(name.clone(), dfd, did);
                dst_mode = Some(dir_copy_mode(mode));
            }
            self.rel.push(&name);
            self.stack.push(name, fd, id);
            self.frames.push(WalkFrame {
                subdirs: Vec::new(),
                restore,
                dst_mode,
            });
            if let Flow::Stop = self.list_top(descend)? {
                return Ok(());
            }
        }
    }

    fn pop_frame(&mut self) -> io::Result<()> {
        let Some(frame) = self.frames.pop() else {
            return Ok(());
        };
        self.rel.pop();
        let (fd, res) = self.stack.pop();
        if let (Some(mode), Some(fd)) = (frame.restore, fd.as_ref()) {
            let _ = fchmod(fd, mode);
        }
        drop(fd);
        let mut dst_res = Ok(());
        if let Some(c) = self.copy.as_mut() {
            let (dfd, r) = c.dst.pop();
            if let (Some(mode), Some(dfd)) = (frame.dst_mode, dfd.as_ref()) {
                fchmod(dfd, mode)?;
            }
            dst_res = r;
        }
        res.and(dst_res)
    }

    /// Lists the directory on top of the stack into `walk.entries` (and copies it).
    fn list_top(&mut self, descend: &dyn Fn(&Path) -> bool) -> io::Result<Flow> {
        let depth = self.frames.len();
        let budget = self.budget;
        let dir = self.stack.top()?;
        let remaining = budget.max_entries.saturating_sub(self.walk.entries.len());
        let (mut names, err) = read_names(dir, remaining.saturating_add(1));
        if err.is_some() {
            self.walk.unreadable.push(self.rel.clone());
        }
        names.sort();
        let mut subdirs = Vec::new();
        for name in names {
            if self.walk.entries.len() >= budget.max_entries {
                let msg = format!("entry budget of {} entries reached", budget.max_entries);
                note(&mut self.walk, &msg);
                return Ok(Flow::Stop);
            }
            if budget.deadline.is_some_and(|d| Instant::now() >= d) {
                note(&mut self.walk, "deadline reached");
                return Ok(Flow::Stop);
            }
            let rel = self.rel.join(&name);
            let st = match fstatat(dir, name.as_os_str(), nofollow()) {
                Ok(st) => st,
                Err(Errno::ENOENT) => continue,
                Err(_) => {
                    self.walk.unreadable.push(rel);
                    continue;
                }
            };
            if self
                .copy
                .as_ref()
                .is_some_and(|c| c.dst_root == file_id(&st))
            {
                // The destination of copy_tree, inside the source.
                continue;
            }
            let kind = Kind::from_mode(st.st_mode);
            let link_target = match kind {
                Kind::Symlink => read_link_bounded(dir, &name),
                _ => None,
            };
            self.walk
                .entries
                .push(entry_from_stat(rel.clone(), &st, link_target.clone()));
            match kind {
                Kind::Dir => {
                    if let Some(c) = self.copy.as_ref() {
                        mkdirat(c.dst.top()?, name.as_os_str(), Mode::S_IRWXU)?;
                    }
                    let wanted = file_id(&st).0 == self.root_dev && descend(&rel);
                    if wanted && depth < budget.max_depth {
                        subdirs.push((name, st.st_mode));
                        continue;
                    }
                    if wanted && !self.depth_noted && dir_nonempty(dir, &name) {
                        self.depth_noted = true;
                        let msg = format!(
                            "depth limit {} reached: {} (and possibly others) not entered",
                            budget.max_depth,
                            rel.display()
                        );
                        note(&mut self.walk, &msg);
                    }
                    finish_dst_dir(self.copy.as_ref(), &name, st.st_mode)?;
                }
                Kind::Symlink => {
                    if let (Some(c), Some(target)) = (self.copy.as_ref(), link_target.as_ref()) {
                        symlinkat(target.as_path(), c.dst.top()?, name.as_os_str())?;
                    }
                }
                Kind::File => {
                    let Some(c) = self.copy.as_mut() else {
                        continue;
                    };
                    let limit = budget
                        .max_file_bytes
                        .min(budget.max_total_bytes.saturating_sub(c.copied));
                    let src = match open_regular_at(dir, &name, self.root_dev) {
                        Ok(Some(src)) => src,
                        Ok(None) => continue,
                        Err(_) => {
                            self.walk.unreadable.push(rel);
                            continue;
                        }
                    };
                    let dst = openat(
                        c.dst.top()?,
                        name.as_os_str(),
                        OFlag::O_WRONLY
                            | OFlag::O_CREAT
                            | OFlag::O_EXCL
                            | OFlag::O_NOFOLLOW
                            | OFlag::O_CLOEXEC,
                        Mode::S_IRUSR | Mode::S_IWUSR,
                    )?;
                    let dst = File::from(dst);
                    let (bytes, cut) = copy_limited(&src, &dst, limit, &mut c.buf)?;
                    fchmod(&dst, file_copy_mode(st.st_mode))?;
                    c.copied = c.copied.saturating_add(bytes);
                    if cut {
                        self.walk.truncated_files.push(rel);
                        if limit < budget.max_file_bytes {
                            let msg = format!(
                                "total byte budget of {} bytes exhausted",
                                budget.max_total_bytes
                            );
                            note(&mut self.walk, &msg);
                            return Ok(Flow::Stop);
                        }
                    }
                }
                _ => {}
            }
        }
        subdirs.reverse();
        if let Some(frame) = self.frames.last_mut() {
            frame.subdirs = subdirs;
        }
        Ok(Flow::Continue)
    }
}

// ---------------------------------------------------------------------------------------------
// read_file
// ---------------------------------------------------------------------------------------------

/// Reads at most `max` bytes of the regular file `rel` below `root`.
///
/// `rel` must be relative and free of `..`. Every component is opened relative to its parent
/// without following symlinks or crossing mount points. Returns `Ok(None)` if the file, or any
/// directory on the way to it, is not what it must be (a symlink, FIFO, socket, device, directory
/// or mount point): such files are never opened for reading, and never block. Otherwise returns
/// the bytes read and whether the file had more than `max` bytes (`st_size` is never trusted).
/// A missing file is an error of kind `NotFound`.
pub fn read_file(root: &Path, rel: &Path, max: u64) -> io::Result<Option<(Vec<u8>, bool)>> {
    let comps = rel_components(rel)?;
    check_root(root)?;
    let mut cur = open_root(root)?;
    let root_dev = fd_id(&cur)?.0;
    let Some((last, dirs)) = comps.split_last() else {
        return Ok(None);
    };
    for &name in dirs {
        let st = fstatat(&cur, name, nofollow())?;
        if !is_dir(&st) || file_id(&st).0 != root_dev {
            return Ok(None);
        }
        cur = match open_dir_at(cur.as_fd(), name) {
            Ok(fd) => fd,
            Err(Errno::ELOOP | Errno::ENOTDIR | Errno::EXDEV) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        if fd_id(&cur)?.0 != root_dev {
            return Ok(None);
        }
    }
    match open_regular_at(cur.as_fd(), last, root_dev)? {
        Some(file) => read_limited(&file, max).map(Some),
        None => Ok(None),
    }
}

// ---------------------------------------------------------------------------------------------
// remove_tree
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Default)]
struct RemoveFrame {
    /// Subdirectories found by the last scan and not entered yet (a cache: dropped for deep
    /// levels, a later scan finds them again).
    pending: Vec<OsString>,
    /// Entries that could not be removed; later scans ignore them.
    skip: HashSet<OsString>,
    /// We already tried to make this directory `0700`.
    chmodded: bool,
    /// `Remover::failures` when this directory was entered.
    failures_at_entry: u64,
}

#[derive(Debug)]
struct Remover {
    base: PathBuf,
    euid: u32,
    root_dev: u64,
    failures: u64,
    removal: Removal,
}

impl Remover {
    fn fail(&mut self, rel: &Path) {
        self.failures += 1;
        if self.removal.left.len() < MAX_LEFT {
            let path = if rel.as_os_str().is_empty() {
                self.base.clone()
            } else {
                self.base.join(rel)
            };
            self.removal.left.push(path);
        }
    }
}

enum Scan {
    /// Removed or found something: scan again (or enter the pending subdirectories).
    Progress,
    /// Nothing left but skipped entries.
    Done,
    /// The directory cannot be listed.
    Failed,
}

/// Runs `op`; if it fails for lack of permission, makes `dir` `0700` once and retries.
fn with_chmod_retry(
    dir: BorrowedFd<'_>,
    frame: &mut RemoveFrame,
    op: &dyn Fn() -> nix::Result<()>,
) -> nix::Result<()> {
    match op() {
        Err(Errno::EACCES | Errno::EPERM) if !frame.chmodded => {
            frame.chmodded = true;
            let _ = fchmod(dir, Mode::S_IRWXU);
            op()
        }
        other => other,
    }
}

/// One pass over `dir`: unlinks everything that is not a directory, remembers subdirectories.
fn scan(dir: BorrowedFd<'_>, frame: &mut RemoveFrame, rm: &mut Remover, rel: &Path) -> Scan {
    if frame.skip.len() > MAX_SKIP {
        return Scan::Done;
    }
    let Ok(stream) = list(dir) else {
        return Scan::Failed;
    };
    let mut progress = false;
    for ent in stream {
        let Ok(ent) = ent else {
            return if progress {
                Scan::Progress
            } else {
                Scan::Failed
            };
        };
        let name = ent.file_name().to_bytes();
        if is_dot(name) {
            continue;
        }
        let name = OsStr::from_bytes(name);
        if frame.skip.contains(name) {
            continue;
        }
        progress = true;
        let st = match fstatat(dir, name, nofollow()) {
            Ok(st) => st,
            Err(Errno::ENOENT) => continue,
            Err(_) => {
                rm.fail(&rel.join(name));
                frame.skip.insert(name.to_os_string());
                continue;
            }
        };
        if is_dir(&st) {
            if file_id(&st).0 != rm.root_dev {
                // A mount point.
                rm.fail(&rel.join(name));
                frame.skip.insert(name.to_os_string());
                continue;
            }
            frame.pending.push(name.to_os_string());
            if frame.pending.len() >= REMOVE_BATCH {
                break;
            }
            continue;
        }
        match with_chmod_retry(dir, frame, &|| {
            unlinkat(dir, name, UnlinkatFlags::NoRemoveDir)
        }) {
            Ok(()) => rm.removal.removed += 1,
            // Gone, or turned into a directory meanwhile (the next scan sees it as one).
            Err(Errno::ENOENT | Errno::EISDIR) => {}
            Err(_) => {
                rm.fail(&rel.join(name));
                frame.skip.insert(name.to_os_string());
            }
        }
    }
    if progress { Scan::Progress } else { Scan::Done }
}

/// Removes `path` and everything below it, without following symlinks or entering other
/// filesystems.
///
/// A symlink (also as `path` itself) is unlinked, never its target. Mount points below `path`
/// are left in place and reported. Directories that deny us access are made `0700` first where
/// we own them. Works on arbitrarily deep trees with bounded stack and descriptors. `path` not
/// existing is not an error. The parent of `path` is trusted (symlinks in it are followed); a
/// path without a final component (`/`, `..`) is rejected.
pub fn remove_tree(path: &Path) -> io::Result<Removal> {
    let Some(name) = path.file_name() else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} has no final component to remove", path.display()),
        ));
    };
    let parent_path = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let parent = match open(
        parent_path,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        Err(Errno::ENOENT) => return Ok(Removal::default()),
        Err(e) => return Err(e.into()),
    };
    let st = match fstatat(&parent, name, nofollow()) {
        Ok(st) => st,
        Err(Errno::ENOENT) => return Ok(Removal::default()),
        Err(e) => return Err(e.into()),
    };
    let euid = geteuid().as_raw();
    let mut rm = Remover {
        base: path.to_path_buf(),
        euid,
        root_dev: file_id(&st).0,
        failures: 0,
        removal: Removal::default(),
    };
    if !is_dir(&st) {
        match unlinkat(&parent, name, UnlinkatFlags::NoRemoveDir) {
            Ok(()) => rm.removal.removed += 1,
            Err(Errno::ENOENT) => {}
            Err(_) => rm.fail(Path::new("")),
        }
        return Ok(rm.removal);
    }
    let opened = open_removable(parent.as_fd(), name, euid, &|| {
        openat(&parent, name, dir_flags(), Mode::empty())
    });
    let root = match opened {
        Ok(fd) => fd,
        Err(Errno::ENOENT) => return Ok(rm.removal),
        Err(Errno::EACCES | Errno::EPERM | Errno::ENOTDIR | Errno::ELOOP) => {
            rm.fail(Path::new(""));
            return Ok(rm.removal);
        }
        Err(e) => return Err(e.into()),
    };
    rm.root_dev = fd_id(&root)?.0;
    remove_below(FdStack::new(root), &mut rm)?;
    match unlinkat(&parent, name, UnlinkatFlags::RemoveDir) {
        Ok(()) => rm.removal.removed += 1,
        Err(Errno::ENOENT) => {}
        Err(_) => {
            if rm.failures == 0 {
                rm.fail(Path::new(""));
            }
        }
    }
    Ok(rm.removal)
}

/// Empties the root of `stack`, iteratively.
fn remove_below(mut stack: FdStack, rm: &mut Remover) -> io::Result<()> {
    let mut frames = vec![RemoveFrame::default()];
    let mut rel = PathBuf::new();
    loop {
        let Some(frame) = frames.last_mut() else {
            return Ok(());
        };
        if let Some(sub) = frame.pending.pop() {
            let top = stack.top()?;
            match open_removable(top, &sub, rm.euid, &|| open_dir_at(top, &sub)) {
                Ok(fd) => {
                    let id = fd_id(&fd)?;
                    if id.0 != rm.root_dev {
                        rm.fail(&rel.join(&sub));
                        frame.skip.insert(sub);
                        continue;
                    }
                    rel.push(&sub);
                    if let Some(i) = stack.push(sub, fd, id) {
                        // frames[0] is the root; frames[i + 1] belongs to stack level i.
                        if let Some(f) = frames.get_mut(i + 1) {
                            f.pending = Vec::new();
                        }
                    }
                    frames.push(RemoveFrame {
                        failures_at_entry: rm.failures,
                        ..RemoveFrame::default()
                    });
                }
                // Gone, or no longer a directory (the next scan handles it).
                Err(Errno::ENOENT | Errno::ENOTDIR | Errno::ELOOP) => {}
                // EXDEV: a mount point. Anything else: cannot enter it.
                Err(_) => {
                    rm.fail(&rel.join(&sub));
                    frame.skip.insert(sub);
                }
            }
            continue;
        }
        match scan(stack.top()?, frame, rm, &rel) {
            Scan::Progress => continue,
            Scan::Done => {}
            Scan::Failed => rm.fail(&rel),
        }
        // This directory is as empty as it will get: leave it and remove it from its parent.
        if frames.len() == 1 {
            return Ok(());
        }
        let Some(done) = frames.pop() else {
            return Ok(());
        };
        let child = stack
            .levels
            .last()
            .map(|l| l.name.clone())
            .unwrap_or_default();
        let (fd, res) = stack.pop();
        drop(fd);
        res?;
        let child_rel = rel.clone();
        rel.pop();
        let parent = stack.top()?;
        let Some(frame) = frames.last_mut() else {
            return Ok(());
        };
        let op = || unlinkat(parent, child.as_os_str(), UnlinkatFlags::RemoveDir);
        match with_chmod_retry(parent, frame, &op) {
            Ok(()) => rm.removal.removed += 1,
            Err(Errno::ENOENT) => {}
            Err(_) => {
                if rm.failures == done.failures_at_entry {
                    rm.fail(&child_rel);
                }
                frame.skip.insert(child);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{PermissionsExt, symlink};
    use std::sync::mpsc;
    use std::time::Duration;

    fn all(_: &Path) -> bool {
        true
    }

    fn find<'a>(w: &'a Walk, rel: &str) -> &'a Entry {
        w.entries
            .iter()
            .find(|e| e.rel == Path::new(rel))
            .unwrap_or_else(|| panic!("{rel} not listed in {:?}", w.entries))
    }

    /// Runs `f` on a thread with a 256 KiB stack and fails if it takes longer than `secs`.
    fn small_stack<T: Send + 'static>(secs: u64, f: impl FnOnce() -> T + Send + 'static) -> T {
        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new()
            .stack_size(256 * 1024)
            .spawn(move || {
                let _ = tx.send(f());
            })
            .expect("spawn");
        rx.recv_timeout(Duration::from_secs(secs))
            .expect("worker finished in time")
    }

    /// `base/d/d/d/...` `depth` levels deep, built fd-relative (the path is far beyond PATH_MAX).
    fn make_deep(base: &Path, depth: usize) {
        std::fs::create_dir(base).expect("mkdir");
        let mut fd = open(base, OFlag::O_RDONLY | OFlag::O_DIRECTORY, Mode::empty()).expect("open");
        for _ in 0..depth {
            mkdirat(&fd, "d", Mode::S_IRWXU).expect("mkdirat");
            fd = openat(
                &fd,
                "d",
                OFlag::O_RDONLY | OFlag::O_DIRECTORY,
                Mode::empty(),
            )
            .expect("openat");
        }
        std::fs::write(base.join("top-file"), b"x").expect("write");
    }

    fn chmod(path: &Path, mode: u32) {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
    }

    #[test]
    fn symlink_out_of_root_is_listed_not_followed() {
        let outside = tempfile::tempdir().expect("tempdir");
        std::fs::write(outside.path().join("id_rsa"), b"SECRET").expect("write");
        std::fs::write(outside.path().join("other"), b"x").expect("write");
        let root = tempfile::tempdir().expect("tempdir");
        let r = root.path();
        symlink(outside.path().join("id_rsa"), r.join("key")).expect("symlink");
        symlink(outside.path(), r.join("home")).expect("symlink");
        symlink("/dev/zero", r.join("zero")).expect("symlink");

        let w = walk(r, &Budget::default(), &all).expect("walk");
        let key = find(&w, "key");
        assert_eq!(key.kind, Kind::Symlink);
        assert_eq!(
            key.link_target.as_deref(),
            Some(outside.path().join("id_rsa").as_path())
        );
        assert_eq!(find(&w, "home").kind, Kind::Symlink);
        assert_eq!(
            find(&w, "zero").link_target.as_deref(),
            Some(Path::new("/dev/zero"))
        );
        assert_eq!(
            w.entries.len(),
            3,
            "nothing listed through the directory symlink"
        );
        assert_eq!(w.truncated, None);

        assert_eq!(read_file(r, Path::new("key"), 1 << 20).expect("read"), None);
        assert_eq!(
            read_file(r, Path::new("zero"), 1 << 20).expect("read"),
            None
        );
        assert_eq!(
            read_file(r, Path::new("home/id_rsa"), 1 << 20).expect("read"),
            None
        );
        assert_eq!(
            read_file(r, Path::new("home/other"), 1 << 20).expect("read"),
            None
        );
    }

    #[test]
    fn root_symlink_and_bad_rel_paths_are_rejected() {
        let root = tempfile::tempdir().expect("tempdir");
        let r = root.path();
        std::fs::create_dir(r.join("real")).expect("mkdir");
        std::fs::write(r.join("real/f"), b"hello").expect("write");
        symlink(r.join("real"), r.join("link")).expect("symlink");
        assert!(walk(&r.join("link"), &Budget::default(), &all).is_err());
        assert!(read_file(&r.join("link"), Path::new("f"), 10).is_err());
        for bad in ["../real/f", "/etc/passwd", "", "real/../real/f"] {
            let err = read_file(r, Path::new(bad), 10).expect_err(bad);
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{bad}");
        }
        assert_eq!(
            read_file(r, Path::new("real/f"), 10).expect("read"),
            Some((b"hello".to_vec(), false))
        );
        assert_eq!(
            read_file(r, Path::new("./real/f"), 3).expect("read"),
            Some((b"hel".to_vec(), true))
        );
        assert_eq!(
            read_file(r, Path::new("real/missing"), 3)
                .expect_err("missing")
                .kind(),
            io::ErrorKind::NotFound
        );
        assert_eq!(read_file(r, Path::new("real"), 3).expect("dir"), None);
    }

    #[test]
    fn fifo_socket_and_odd_names_never_block() {
        let root = tempfile::tempdir().expect("tempdir");
        let r = root.path().to_path_buf();
        nix::unistd::mkfifo(&r.join("fifo"), Mode::S_IRWXU).expect("mkfifo");
        let _sock = std::os::unix::net::UnixListener::bind(r.join("sock")).expect("bind");
        let odd = OsStr::from_bytes(b"a\nb\x1b[31m\x7f");
        std::fs::write(r.join(odd), b"odd").expect("write");
        std::fs::write(r.join("f"), b"data").expect("write");
        std::fs::hard_link(r.join("f"), r.join("f2")).expect("link");

        let result = small_stack(20, move || {
            let w = walk(&r, &Budget::default(), &all).expect("walk");
            let fifo = read_file(&r, Path::new("fifo"), 100).expect("read fifo");
            let sock = read_file(&r, Path::new("sock"), 100).expect("read sock");
            let odd = read_file(&r, Path::new(OsStr::from_bytes(b"a\nb\x1b[31m\x7f")), 100)
                .expect("read odd");
            (w, fifo, sock, odd)
        });
        let (w, fifo, sock, odd) = result;
        assert_eq!(find(&w, "fifo").kind, Kind::Fifo);
        assert_eq!(find(&w, "sock").kind, Kind::Socket);
        assert_eq!(find(&w, "f").nlink, 2);
        assert_eq!(find(&w, "f").ino, find(&w, "f2").ino);
        assert_eq!(fifo, None);
        assert_eq!(sock, None);
        assert_eq!(odd, Some((b"odd".to_vec(), false)));
        let names: Vec<_> = w.entries.iter().map(|e| e.rel.clone()).collect();
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(names, sorted, "entries sorted by name");
    }

    #[test]
    fn sparse_huge_file_is_read_up_to_max() {
        let root = tempfile::tempdir().expect("tempdir");
        let f = File::create(root.path().join("huge")).expect("create");
        f.set_len(10 << 30).expect("set_len");
        let start = Instant::now();
        let (data, truncated) = read_file(root.path(), Path::new("huge"), 1 << 20)
            .expect("read")
            .expect("regular file");
        assert_eq!(data.len(), 1 << 20);
        assert!(truncated);
        assert!(start.elapsed() < Duration::from_secs(5));
        let w = walk(root.path(), &Budget::default(), &all).expect("walk");
        assert_eq!(find(&w, "huge").size, 10 << 30);
    }

    #[test]
    fn deep_tree_walk_respects_depth_and_removal_needs_no_recursion() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let base = tmp.path().join("deep");
        make_deep(&base, 20_000);
        let b = base.clone();
        let (w, removal) = small_stack(300, move || {
            let w = walk(&b, &Budget::default(), &all).expect("walk");
            let removal = remove_tree(&b).expect("remove");
            (w, removal)
        });
        assert_eq!(w.entries.len(), 65, "64 levels plus top-file");
        assert!(w.entries.iter().all(|e| e.rel.components().count() <= 64));
        let reason = w.truncated.expect("truncated");
        assert!(reason.contains("depth limit 64"), "{reason}");
        assert_eq!(removal.left, Vec::<PathBuf>::new());
        assert_eq!(removal.removed, 20_002);
        assert!(!base.exists());
    }

    #[test]
    fn deep_walk_beyond_fd_cap_is_iterative_and_fd_bounded() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let base = tmp.path().join("deep");
        make_deep(&base, 3_000);
        let b = base.clone();
        let (w, max_fds) = small_stack(300, move || {
            let max_fds = std::sync::atomic::AtomicUsize::new(0);
            let budget = Budget {
                max_depth: 10_000,
                ..Budget::default()
            };
            let count = |rel: &Path| {
                if rel.components().count() % 500 == 0 {
                    let n = std::fs::read_dir("/proc/self/fd").map_or(0, Iterator::count);
                    max_fds.fetch_max(n, Ordering::Relaxed);
                }
                true
            };
            let w = walk(&b, &budget, &count).expect("walk");
            (w, max_fds.into_inner())
        });
        assert_eq!(w.truncated, None);
        assert_eq!(w.entries.len(), 3_001);
        // Other tests run concurrently in this process; 3 000 levels would need 3 000 fds.
        assert!(max_fds < 1_000, "{max_fds} descriptors open");
        assert_eq!(
            remove_tree(&base).expect("remove").left,
            Vec::<PathBuf>::new()
        );
    }

    #[test]
    fn locked_directories_are_listed_restored_and_removed() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let r = tmp.path().join("tree");
        std::fs::create_dir_all(r.join("locked/sub")).expect("mkdir");
        std::fs::write(r.join("locked/a"), b"a").expect("write");
        std::fs::write(r.join("locked/sub/b"), b"b").expect("write");
        std::fs::create_dir(r.join("readonly")).expect("mkdir");
        std::fs::write(r.join("readonly/c"), b"c").expect("write");
        std::fs::create_dir(r.join("noexec")).expect("mkdir");
        std::fs::write(r.join("noexec/d"), b"d").expect("write");
        chmod(&r.join("locked/sub"), 0o000);
        chmod(&r.join("locked"), 0o000);
        chmod(&r.join("readonly"), 0o500);
        chmod(&r.join("noexec"), 0o400);

        let w = walk(&r, &Budget::default(), &all).expect("walk");
        assert_eq!(w.unreadable, Vec::<PathBuf>::new());
        assert_eq!(find(&w, "locked").mode & 0o777, 0);
        find(&w, "locked/a");
        find(&w, "locked/sub/b");
        find(&w, "noexec/d");
        let mode = |p: &str| {
            std::fs::symlink_metadata(r.join(p))
                .expect("stat")
                .permissions()
                .mode()
                & 0o777
        };
        assert_eq!(mode("locked"), 0o000, "mode restored");
        assert_eq!(mode("noexec"), 0o400, "mode restored");

        let removal = remove_tree(&r).expect("remove");
        assert_eq!(removal.left, Vec::<PathBuf>::new());
        assert_eq!(removal.removed, 9);
        assert!(!r.exists());
    }

    #[test]
    fn remove_tree_unlinks_symlinks_not_targets() {
        let outside = tempfile::tempdir().expect("tempdir");
        std::fs::write(outside.path().join("keep"), b"k").expect("write");
        let tmp = tempfile::tempdir().expect("tempdir");
        let r = tmp.path().join("tree");
        std::fs::create_dir(&r).expect("mkdir");
        symlink(outside.path(), r.join("home")).expect("symlink");
        symlink(outside.path().join("keep"), r.join("keep")).expect("symlink");
        let top_link = tmp.path().join("toplink");
        symlink(outside.path(), &top_link).expect("symlink");

        assert_eq!(remove_tree(&top_link).expect("remove").removed, 1);
        assert_eq!(remove_tree(&r).expect("remove").removed, 3);
        assert!(outside.path().join("keep").exists());
        let gone = remove_tree(&tmp.path().join("never-existed")).expect("remove");
        assert_eq!(gone, Removal::default());
        assert!(remove_tree(Path::new("/")).is_err());
    }

    #[test]
    fn entry_budget_and_deadline_truncate() {
        let root = tempfile::tempdir().expect("tempdir");
        for i in 0..100 {
            std::fs::write(root.path().join(format!("f{i:03}")), b"").expect("write");
        }
        let budget = Budget {
            max_entries: 10,
            ..Budget::default()
        };
        let w = walk(root.path(), &budget, &all).expect("walk");
        assert_eq!(w.entries.len(), 10);
        assert!(
            w.truncated
                .expect("truncated")
                .contains("entry budget of 10")
        );

        let past = Budget {
            deadline: Some(Instant::now()),
            ..Budget::default()
        };
        let w = walk(root.path(), &past, &all).expect("walk");
        assert!(w.entries.is_empty());
        assert!(w.truncated.expect("truncated").contains("deadline"));
    }

    #[test]
    fn descend_callback_prunes() {
        let root = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(root.path().join("node_modules/x")).expect("mkdir");
        std::fs::create_dir_all(root.path().join("src/y")).expect("mkdir");
        let w = walk(root.path(), &Budget::default(), &|rel: &Path| {
            rel != Path::new("node_modules")
        })
        .expect("walk");
        find(&w, "node_modules");
        find(&w, "src/y");
        assert!(
            w.entries
                .iter()
                .all(|e| e.rel != Path::new("node_modules/x"))
        );
        assert_eq!(w.truncated, None);
    }

    #[test]
    fn copy_tree_keeps_symlinks_and_skips_special_files() {
        let src = tempfile::tempdir().expect("tempdir");
        let s = src.path();
        std::fs::create_dir(s.join("dir")).expect("mkdir");
        std::fs::write(s.join("dir/small"), b"small").expect("write");
        std::fs::write(s.join("big"), vec![7u8; 10_000]).expect("write");
        chmod(&s.join("dir/small"), 0o4755);
        symlink("/home/user/.ssh/id_rsa", s.join("dir/key")).expect("symlink");
        nix::unistd::mkfifo(&s.join("fifo"), Mode::S_IRWXU).expect("mkfifo");
        let dst = tempfile::tempdir().expect("tempdir");
        let to = dst.path().join("copy");
        let budget = Budget {
            max_file_bytes: 4_096,
            ..Budget::default()
        };

        let w = copy_tree(s, &to, &budget).expect("copy");
        assert_eq!(
            std::fs::read_link(to.join("dir/key")).expect("readlink"),
            Path::new("/home/user/.ssh/id_rsa")
        );
        assert_eq!(std::fs::read(to.join("dir/small")).expect("read"), b"small");
        let small_mode = std::fs::metadata(to.join("dir/small"))
            .expect("stat")
            .permissions()
            .mode();
        assert_eq!(small_mode & 0o7777, 0o755, "setuid dropped");
        assert_eq!(std::fs::read(to.join("big")).expect("read").len(), 4_096);
        assert_eq!(w.truncated_files, vec![PathBuf::from("big")]);
        assert_eq!(find(&w, "fifo").kind, Kind::Fifo);
        assert!(
            std::fs::symlink_metadata(to.join("fifo")).is_err(),
            "FIFO not created"
        );
        assert_eq!(w.truncated, None);

        // The destination must be empty.
        assert!(copy_tree(s, &to, &budget).is_err());

        let total = Budget {
            max_total_bytes: 100,
            ..Budget::default()
        };
        let w = copy_tree(s, &dst.path().join("copy2"), &total).expect("copy");
        assert!(
            w.truncated
                .expect("truncated")
                .contains("total byte budget")
        );
    }

    /// Slow: `cargo test --lib untrusted -- --ignored remove_100k`.
    #[test]
    #[ignore = "slow"]
    fn remove_100k_deep() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let base = tmp.path().join("deep");
        make_deep(&base, 100_000);
        let b = base.clone();
        let removal = small_stack(600, move || remove_tree(&b).expect("remove"));
        assert_eq!(removal.left, Vec::<PathBuf>::new());
        assert_eq!(removal.removed, 100_002);
        assert!(!base.exists());
    }

    /// Needs root in a private mount namespace:
    /// `unshare -m --propagation private <test binary> --ignored mount_points`.
    #[test]
    #[ignore = "needs root in a private mount namespace"]
    fn mount_points_are_not_crossed() {
        use nix::mount::{MsFlags, mount};
        let tmp = tempfile::tempdir().expect("tempdir");
        let r = tmp.path().join("tree");
        std::fs::create_dir_all(r.join("tmpfs")).expect("mkdir");
        std::fs::create_dir_all(r.join("bind")).expect("mkdir");
        let host = tmp.path().join("host");
        std::fs::create_dir(&host).expect("mkdir");
        std::fs::write(host.join("precious"), b"p").expect("write");
        mount(
            Some("tmpfs"),
            &r.join("tmpfs"),
            Some("tmpfs"),
            MsFlags::empty(),
            None::<&str>,
        )
        .expect("mount tmpfs");
        std::fs::write(r.join("tmpfs/inner"), b"i").expect("write");
        // Same filesystem as the tree: only openat2's RESOLVE_NO_XDEV can tell.
        mount(
            Some(&host),
            &r.join("bind"),
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .expect("bind mount");

        let w = walk(&r, &Budget::default(), &all).expect("walk");
        find(&w, "tmpfs");
        find(&w, "bind");
        assert_eq!(w.entries.len(), 2, "{:?}", w.entries);
        assert_eq!(
            read_file(&r, Path::new("bind/precious"), 10).expect("read"),
            None
        );
        assert_eq!(
            read_file(&r, Path::new("tmpfs/inner"), 10).expect("read"),
            None
        );

        let removal = remove_tree(&r).expect("remove");
        assert!(
            host.join("precious").exists(),
            "removal went through a bind mount"
        );
        assert!(
            r.join("tmpfs/inner").exists(),
            "removal went into another filesystem"
        );
        assert_eq!(removal.left.len(), 2, "{:?}", removal.left);
        nix::mount::umount(&r.join("bind")).expect("umount");
        nix::mount::umount(&r.join("tmpfs")).expect("umount");
        assert_eq!(remove_tree(&r).expect("remove").left, Vec::<PathBuf>::new());
    }
}
