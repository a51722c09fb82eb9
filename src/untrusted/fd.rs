//! Small system-call helpers and the bounded stack of directory descriptors.

use super::*;
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use nix::dir::{Dir, OwningIter};
use nix::errno::Errno;
use nix::fcntl::{
    AT_FDCWD, AtFlags, OFlag, OpenHow, ResolveFlag, open, openat, openat2, readlinkat,
};
use nix::sys::stat::{FchmodatFlags, FileStat, Mode, fchmod, fchmodat, fstat, fstatat};
use nix::unistd::{Whence, lseek};

// ---------------------------------------------------------------------------------------------
// Small system-call helpers
// ---------------------------------------------------------------------------------------------

/// Cleared the first time `openat2` reports `ENOSYS`.
static OPENAT2_AVAILABLE: AtomicBool = AtomicBool::new(true);

pub(super) fn dir_flags() -> OFlag {
    OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | OFlag::O_NONBLOCK
}

pub(super) fn file_flags() -> OFlag {
    OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_NOCTTY | OFlag::O_CLOEXEC
}

pub(super) fn nofollow() -> AtFlags {
    AtFlags::AT_SYMLINK_NOFOLLOW | AtFlags::AT_NO_AUTOMOUNT
}

/// Opens the single path component `name` (no `/`, not `.` or `..`) below `dir` without
/// following symlinks or crossing mount points (`EXDEV` where `openat2` exists).
pub(super) fn open_beneath(
    dir: BorrowedFd<'_>,
    name: &OsStr,
    flags: OFlag,
) -> nix::Result<OwnedFd> {
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

pub(super) fn open_dir_at(dir: BorrowedFd<'_>, name: &OsStr) -> nix::Result<OwnedFd> {
    open_beneath(dir, name, dir_flags())
}

pub(super) fn is_dir(st: &FileStat) -> bool {
    st.st_mode & libc::S_IFMT == libc::S_IFDIR
}

#[allow(clippy::useless_conversion)] // the field types differ between Linux targets
pub(super) fn file_id(st: &FileStat) -> (u64, u64) {
    (u64::from(st.st_dev), u64::from(st.st_ino))
}

pub(super) fn fd_id(fd: impl AsFd) -> io::Result<(u64, u64)> {
    Ok(file_id(&fstat(fd)?))
}

pub(super) fn millis(sec: i64, nsec: i64) -> u64 {
    let Ok(sec) = u64::try_from(sec) else {
        return 0;
    };
    let ms = u64::try_from(nsec / 1_000_000).unwrap_or(0);
    sec.saturating_mul(1000).saturating_add(ms)
}

#[allow(clippy::useless_conversion)] // the field types differ between Linux targets
pub(super) fn entry_from_stat(rel: PathBuf, st: &FileStat, link_target: Option<PathBuf>) -> Entry {
    let (dev, ino) = file_id(st);
    Entry {
        rel,
        kind: Kind::from_mode(st.st_mode),
        mode: st.st_mode,
        size: u64::try_from(st.st_size).unwrap_or(0),
        allocated: u64::try_from(st.st_blocks).unwrap_or(0).saturating_mul(512),
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

pub(super) fn read_link_bounded(dir: BorrowedFd<'_>, name: &OsStr) -> Option<PathBuf> {
    let mut bytes = readlinkat(dir, name).ok()?.into_vec();
    bytes.truncate(MAX_LINK_TARGET);
    Some(PathBuf::from(OsString::from_vec(bytes)))
}

pub(super) fn is_dot(name: &[u8]) -> bool {
    name == b"." || name == b".."
}

/// A fresh listing of the open directory `dir`, from its beginning, on a duplicate descriptor
/// (so `dir` itself stays usable for `*at` calls while the listing is consumed).
pub(super) fn list(dir: BorrowedFd<'_>) -> io::Result<OwningIter> {
    let dup = dir.try_clone_to_owned()?;
    // The duplicate shares its offset with `dir` (and with earlier listings): rewind it.
    lseek(&dup, 0, Whence::SeekSet)?;
    Ok(Dir::from_fd(dup)?.into_iter())
}

/// Up to `limit` names of `dir` (without `.` and `..`), and the error that ended the listing
/// early, if any.
pub(super) fn read_names(dir: BorrowedFd<'_>, limit: usize) -> (Vec<OsString>, Option<io::Error>) {
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

pub(super) fn dir_nonempty(parent: BorrowedFd<'_>, name: &OsStr) -> bool {
    match open_dir_at(parent, name) {
        Ok(fd) => {
            let (names, err) = read_names(fd.as_fd(), 1);
            !names.is_empty() || err.is_some()
        }
        // Cannot tell: assume there is something in it.
        Err(_) => true,
    }
}

pub(super) fn owner_mode(st: &FileStat) -> Mode {
    Mode::from_bits_truncate(st.st_mode & 0o7777)
}

/// Opens a directory for listing. When it (or its lack of `u+rx`) is in the way and `euid` owns
/// it, grants `u+rx` and returns the original mode so the caller can restore it.
pub(super) fn open_listable(
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
pub(super) fn open_removable(
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
pub(super) fn check_root(root: &Path) -> io::Result<FileStat> {
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

pub(super) fn open_root(root: &Path) -> nix::Result<OwnedFd> {
    open(root, dir_flags(), Mode::empty())
}

/// The `Normal` components of `rel`; rejects empty, absolute and `..`-containing paths.
pub(super) fn rel_components(rel: &Path) -> io::Result<Vec<&OsStr>> {
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
pub(super) fn open_regular_at(
    dir: BorrowedFd<'_>,
    name: &OsStr,
    root_dev: u64,
) -> io::Result<Option<File>> {
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

pub(super) fn read_retrying(mut file: &File, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match file.read(buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            other => return other,
        }
    }
}

/// `true` if `file` has at least one more byte.
pub(super) fn has_more(file: &File) -> io::Result<bool> {
    let mut probe = [0u8; 1];
    Ok(read_retrying(file, &mut probe)? > 0)
}

pub(super) fn chunk_len(left: u64) -> usize {
    usize::try_from(left).map_or(CHUNK, |l| l.min(CHUNK))
}

pub(super) fn read_limited(file: &File, max: u64) -> io::Result<(Vec<u8>, bool)> {
    let mut buf = Vec::new();
    let mut total: u64 = 0;
    while total < max {
        let len = buf.len();
        buf.resize(len + chunk_len(max - total), 0);
        let n = read_retrying(file, &mut buf[len..])?;
        buf.truncate(len + n);
        if n == 0 {
            // The buffer grew by whole chunks: give back what the file did not fill, or every
            // small file kept costs a chunk of memory (25 000 empty files in a HOME cost 1.2 GiB).
            buf.shrink_to_fit();
            return Ok((buf, false));
        }
        total += u64::try_from(n).unwrap_or(u64::MAX);
    }
    buf.shrink_to_fit();
    Ok((buf, has_more(file)?))
}

/// Copies at most `max` bytes; returns the bytes copied and whether the source had more.
pub(super) fn copy_limited(
    src: &File,
    mut dst: &File,
    max: u64,
    buf: &mut [u8],
) -> io::Result<(u64, bool)> {
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
pub(super) struct Level {
    pub(super) name: OsString,
    pub(super) id: (u64, u64),
    pub(super) fd: Option<OwnedFd>,
}

/// The directories from a tree's root down to the current one. Only the top [`FD_CAP`] levels
/// (and the root) hold a descriptor; the others are re-opened, verified, on the way back up.
#[derive(Debug)]
pub(super) struct FdStack {
    pub(super) root: OwnedFd,
    pub(super) levels: Vec<Level>,
    /// Levels holding a descriptor; always the top `open` ones.
    pub(super) open: usize,
}

pub(super) fn tree_changed() -> io::Error {
    io::Error::other("directory tree changed while it was being traversed")
}

impl FdStack {
    pub(super) fn new(root: OwnedFd) -> Self {
        Self {
            root,
            levels: Vec::new(),
            open: 0,
        }
    }

    pub(super) fn top(&self) -> io::Result<BorrowedFd<'_>> {
        match self.levels.last() {
            None => Ok(self.root.as_fd()),
            Some(Level { fd: Some(fd), .. }) => Ok(fd.as_fd()),
            Some(_) => Err(tree_changed()),
        }
    }

    /// Enters `fd` (the child `name` of the current top, identified by `id`). Returns the index
    /// of the level whose descriptor was closed to stay within [`FD_CAP`], if any.
    pub(super) fn push(&mut self, name: OsString, fd: OwnedFd, id: (u64, u64)) -> Option<usize> {
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
    pub(super) fn pop(&mut self) -> (Option<OwnedFd>, io::Result<()>) {
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

    pub(super) fn reopen_top(&mut self, child: Option<&OwnedFd>) -> io::Result<()> {
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
