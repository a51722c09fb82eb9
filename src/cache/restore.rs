//! [`Hit::restore`]: apply an entry's changes beneath a package directory, never following a
//! symlink that is there and never writing outside it.
//!
//! Two passes. The first only looks: every existing ancestor of every path must be a real
//! directory on the package directory's filesystem, and what is at each path must be something
//! the change may replace; anything else (a symlink planted on the way, a mount point, a file
//! where a directory is expected) refuses the whole restore before anything is written. The
//! second applies the changes with `*at` calls relative to directory descriptors opened one
//! component at a time with `O_NOFOLLOW` and checked with `fstat`, so a symlink that appears
//! after the first pass is still refused, not followed. Files are created with `O_EXCL` after
//! unlinking what was there (never written through an existing hard link or symlink), and
//! directory modes are applied last, deepest first, so a read-only directory can still be
//! filled.

use std::collections::{BTreeSet, HashMap};
use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{AT_FDCWD, AtFlags, OFlag, open, openat};
use nix::sys::stat::{FchmodatFlags, FileStat, Mode, fchmod, fchmodat, fstat, fstatat, mkdirat};
use nix::unistd::{UnlinkatFlags, symlinkat, unlinkat};

use crate::untrusted;

use super::CacheError;
use super::get::Hit;
use super::manifest::{Change, ancestors, check_rel, is_deleted};

/// What [`Hit::restore`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RestoreReport {
    /// Paths deleted (each with everything below it).
    pub deleted: usize,
    /// Directories created.
    pub dirs_created: usize,
    /// Regular files written.
    pub files_written: usize,
    /// Bytes written to them.
    pub bytes_written: u64,
    /// Symlinks created.
    pub symlinks_created: usize,
    /// Existing files and directories whose mode changed.
    pub modes_changed: usize,
}

/// What is at a path in the package directory (never following a symlink).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Missing,
    Dir,
    File,
    Symlink,
    /// FIFO, socket, device node.
    Special,
    /// A directory on another filesystem (a mount point).
    Mount,
}

impl State {
    fn of(st: &FileStat, dev: u64) -> Self {
        match st.st_mode & libc::S_IFMT {
            libc::S_IFDIR if dev_of(st) != dev => Self::Mount,
            libc::S_IFDIR => Self::Dir,
            libc::S_IFREG => Self::File,
            libc::S_IFLNK => Self::Symlink,
            _ => Self::Special,
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Self::Missing => "it is missing",
            Self::Dir => "it is a directory",
            Self::File => "it is a regular file",
            Self::Symlink => "it is a symbolic link (never followed)",
            Self::Special => "it is a FIFO, socket or device node",
            Self::Mount => "it is a mount point",
        }
    }
}

#[allow(clippy::useless_conversion)] // the field types differ between Linux targets
fn dev_of(st: &FileStat) -> u64 {
    u64::from(st.st_dev)
}

#[allow(clippy::useless_conversion)] // the field types differ between Linux targets
fn id_of(st: &FileStat) -> (u64, u64) {
    (u64::from(st.st_dev), u64::from(st.st_ino))
}

fn nofollow() -> AtFlags {
    AtFlags::AT_SYMLINK_NOFOLLOW | AtFlags::AT_NO_AUTOMOUNT
}

/// `O_PATH` descriptor of a directory: needs no read permission, serves `*at` calls.
fn path_dir_flags() -> OFlag {
    OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC
}

/// The package directory being restored into.
#[derive(Debug)]
struct Target<'a> {
    base: &'a Path,
    root: OwnedFd,
    dev: u64,
}

impl Target<'_> {
    fn refused(&self, rel: &Path, why: impl Into<String>) -> CacheError {
        CacheError::RestoreRefused {
            path: self.base.join(rel),
            why: why.into(),
        }
    }

    fn failed(&self, rel: &Path, source: impl Into<io::Error>) -> CacheError {
        CacheError::Restore {
            path: self.base.join(rel),
            source: source.into(),
        }
    }

    /// Opens the directory `rel` one component at a time; `None` if a component is missing.
    /// A component that is a symlink, not a directory or on another filesystem is refused.
    fn open_dir(&self, rel: &Path) -> Result<Option<OwnedFd>, CacheError> {
        let mut cur = self
            .root
            .try_clone()
            .map_err(|e| self.failed(Path::new(""), e))?;
        let mut at = PathBuf::new();
        for comp in rel.components() {
            let Component::Normal(name) = comp else {
                return Err(self.refused(rel, "it is not a plain relative path"));
            };
            at.push(name);
            let fd = match openat(&cur, name, path_dir_flags(), Mode::empty()) {
                Ok(fd) => fd,
                Err(Errno::ENOENT) => return Ok(None),
                Err(Errno::ENOTDIR | Errno::ELOOP) => {
                    let state = match fstatat(&cur, name, nofollow()) {
                        Ok(st) => State::of(&st, self.dev),
                        Err(_) => State::Special,
                    };
                    return Err(self.refused(&at, state.describe()));
                }
                Err(e) => return Err(self.failed(&at, e)),
            };
            let st = fstat(&fd).map_err(|e| self.failed(&at, e))?;
            match State::of(&st, self.dev) {
                State::Dir => cur = fd,
                other => return Err(self.refused(&at, other.describe())),
            }
        }
        Ok(Some(cur))
    }

    /// The parent directory of `rel` and `rel`'s last component; `None` if an ancestor is
    /// missing.
    fn open_parent<'p>(&self, rel: &'p Path) -> Result<Option<(OwnedFd, &'p OsStr)>, CacheError> {
        let Some(name) = rel.file_name() else {
            return Err(self.refused(rel, "it has no final component"));
        };
        let parent = rel.parent().unwrap_or(Path::new(""));
        Ok(self.open_dir(parent)?.map(|fd| (fd, name)))
    }

    /// [`Target::open_parent`], for a change whose parent must exist by now.
    fn parent_of<'p>(&self, rel: &'p Path) -> Result<(OwnedFd, &'p OsStr), CacheError> {
        self.open_parent(rel)?
            .ok_or_else(|| self.refused(rel, "its parent directory is missing"))
    }

    fn state(&self, rel: &Path) -> Result<State, CacheError> {
        let Some((parent, name)) = self.open_parent(rel)? else {
            return Ok(State::Missing);
        };
        match fstatat(&parent, name, nofollow()) {
            Ok(st) => Ok(State::of(&st, self.dev)),
            Err(Errno::ENOENT) => Ok(State::Missing),
            Err(e) => Err(self.failed(rel, e)),
        }
    }

    /// A path naming the open directory `fd` (which is `rel_dir` below the package directory)
    /// for APIs that take paths: its `/proc/self/fd` magic link when that resolves to the same
    /// directory, which no rename or planted symlink can redirect; otherwise the joined path
    /// (whose components were just checked).
    fn dir_path(&self, fd: &OwnedFd, rel_dir: &Path) -> PathBuf {
        let magic = PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()));
        let same = match (std::fs::metadata(&magic), fstat(fd)) {
            (Ok(md), Ok(st)) => (md.dev(), md.ino()) == id_of(&st),
            _ => false,
        };
        if same { magic } else { self.base.join(rel_dir) }
    }

    /// Removes `name` in `parent` (`rel`), a directory with everything below it through the
    /// hardened remover. `false` if nothing was there.
    fn remove(&self, parent: &OwnedFd, name: &OsStr, rel: &Path) -> Result<bool, CacheError> {
        let st = match fstatat(parent, name, nofollow()) {
            Ok(st) => st,
            Err(Errno::ENOENT) => return Ok(false),
            Err(e) => return Err(self.failed(rel, e)),
        };
        match State::of(&st, self.dev) {
            State::Mount => Err(self.refused(rel, State::Mount.describe())),
            State::Dir => {
                let parent_rel = rel.parent().unwrap_or(Path::new(""));
                let path = self.dir_path(parent, parent_rel).join(name);
                let removal = untrusted::remove_tree(&path).map_err(|e| self.failed(rel, e))?;
                if removal.left.is_empty() {
                    Ok(true)
                } else {
                    Err(self.failed(
                        rel,
                        io::Error::other(format!(
                            "{} path(s) below it could not be removed",
                            removal.left.len()
                        )),
                    ))
                }
            }
            _ => {
                unlinkat(parent, name, UnlinkatFlags::NoRemoveDir)
                    .map_err(|e| self.failed(rel, e))?;
                Ok(true)
            }
        }
    }

    /// Makes room for a new file or symlink at `name` in `parent`: unlinks a file, symlink or
    /// special file there (never following it); refuses a directory.
    fn clear_for_file(&self, parent: &OwnedFd, name: &OsStr, rel: &Path) -> Result<(), CacheError> {
        match fstatat(parent, name, nofollow()) {
            Err(Errno::ENOENT) => Ok(()),
            Err(e) => Err(self.failed(rel, e)),
            Ok(st) => match State::of(&st, self.dev) {
                state @ (State::Dir | State::Mount) => Err(self.refused(rel, state.describe())),
                _ => unlinkat(parent, name, UnlinkatFlags::NoRemoveDir)
                    .map_err(|e| self.failed(rel, e)),
            },
        }
    }

    /// Sets the permission bits of the regular file or directory `rel` (not a symlink).
    fn set_mode(&self, rel: &Path, mode: u32) -> Result<(), CacheError> {
        let (parent, name) = self.parent_of(rel)?;
        let st = fstatat(&parent, name, nofollow()).map_err(|e| self.failed(rel, e))?;
        let state = State::of(&st, self.dev);
        if !matches!(state, State::File | State::Dir) {
            return Err(self.refused(rel, state.describe()));
        }
        let mode = Mode::from_bits_truncate(mode & 0o777);
        let flags = OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_NOCTTY;
        let (fd, path_only) = match openat(&parent, name, flags | OFlag::O_CLOEXEC, Mode::empty()) {
            Ok(fd) => (fd, false),
            // Modes that deny us reading it: an `O_PATH` descriptor needs no permission.
            Err(Errno::EACCES) => {
                let flags = OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
                let fd =
                    openat(&parent, name, flags, Mode::empty()).map_err(|e| self.failed(rel, e))?;
                (fd, true)
            }
            Err(e) => return Err(self.failed(rel, e)),
        };
        let now = fstat(&fd).map_err(|e| self.failed(rel, e))?;
        if id_of(&now) != id_of(&st) {
            return Err(self.refused(rel, "it changed while it was being restored"));
        }
        let res = if path_only {
            // fchmod(2) rejects `O_PATH` descriptors; the magic link resolves to the inode
            // itself (just checked to be no symlink), never through a path.
            let magic = format!("/proc/self/fd/{}", fd.as_raw_fd());
            fchmodat(AT_FDCWD, magic.as_str(), mode, FchmodatFlags::FollowSymlink)
        } else {
            fchmod(&fd, mode)
        };
        res.map_err(|e| self.failed(rel, e))
    }

    /// Checks, without writing anything, that every change can be applied safely.
    fn preflight(&self, changes: &[Change]) -> Result<(), CacheError> {
        let deleted: BTreeSet<PathBuf> = changes
            .iter()
            .filter(|c| matches!(c, Change::Delete { .. }))
            .map(|c| c.path().to_path_buf())
            .collect();
        let made_dirs: BTreeSet<&Path> = changes
            .iter()
            .filter(|c| matches!(c, Change::Dir { .. }))
            .map(Change::path)
            .collect();
        let mut states: HashMap<PathBuf, State> = HashMap::new();
        let mut state = |rel: &Path| -> Result<State, CacheError> {
            if let Some(s) = states.get(rel) {
                return Ok(*s);
            }
            let s = self.state(rel)?;
            states.insert(rel.to_path_buf(), s);
            Ok(s)
        };
        for change in changes {
            let rel = change.path();
            let is_delete = matches!(change, Change::Delete { .. });
            if let Some(s) = rel.to_str() {
                check_rel(s).map_err(|why| self.refused(rel, format!("the entry has {why}")))?;
            }
            // Ancestors: real directories, or made by the entry where missing or deleted.
            let mut gone = false;
            for anc in ancestors(rel) {
                if gone || is_deleted(&deleted, anc) {
                    // Nothing that is there now survives below this point.
                    if is_delete {
                        break;
                    }
                    gone = true;
                    if !made_dirs.contains(anc) {
                        return Err(self.refused(anc, State::Missing.describe()));
                    }
                    continue;
                }
                match state(anc)? {
                    State::Dir => {}
                    State::Missing if is_delete => break,
                    State::Missing => {
                        gone = true;
                        if !made_dirs.contains(anc) {
                            return Err(self.refused(anc, State::Missing.describe()));
                        }
                    }
                    other => return Err(self.refused(anc, other.describe())),
                }
            }
            if is_delete {
                if state(rel)? == State::Mount {
                    return Err(self.refused(rel, State::Mount.describe()));
                }
                continue;
            }
            let now = if gone || is_deleted(&deleted, rel) {
                State::Missing
            } else {
                state(rel)?
            };
            let ok = match change {
                Change::Dir { .. } => matches!(now, State::Missing | State::Dir),
                Change::File { .. } | Change::Symlink { .. } => {
                    !matches!(now, State::Dir | State::Mount)
                }
                Change::Chmod { .. } => matches!(now, State::File | State::Dir),
                Change::Delete { .. } => true,
            };
            if !ok {
                return Err(self.refused(rel, now.describe()));
            }
        }
        Ok(())
    }

    /// Applies `changes` (after a successful [`Target::preflight`]).
    fn apply(&self, hit: &Hit, changes: &[Change]) -> Result<RestoreReport, CacheError> {
        let mut report = RestoreReport::default();
        // Directory modes, applied last and deepest first.
        let mut dir_modes: Vec<(&Path, u32)> = Vec::new();
        for change in changes {
            let rel = change.path();
            match change {
                Change::Delete { .. } => {
                    if let Some((parent, name)) = self.open_parent(rel)? {
                        if self.remove(&parent, name, rel)? {
                            report.deleted += 1;
                        }
                    }
                }
                Change::Dir { mode, .. } => {
                    let (parent, name) = self.parent_of(rel)?;
                    match mkdirat(&parent, name, Mode::S_IRWXU) {
                        Ok(()) => report.dirs_created += 1,
                        Err(Errno::EEXIST) => {
                            let st = fstatat(&parent, name, nofollow())
                                .map_err(|e| self.failed(rel, e))?;
                            let state = State::of(&st, self.dev);
                            if state != State::Dir {
                                return Err(self.refused(rel, state.describe()));
                            }
                        }
                        Err(e) => return Err(self.failed(rel, e)),
                    }
                    dir_modes.push((rel, *mode));
                }
                Change::File {
                    mode, size, sha256, ..
                } => {
                    let (parent, name) = self.parent_of(rel)?;
                    self.clear_for_file(&parent, name, rel)?;
                    let flags = OFlag::O_WRONLY
                        | OFlag::O_CREAT
                        | OFlag::O_EXCL
                        | OFlag::O_NOFOLLOW
                        | OFlag::O_CLOEXEC;
                    let fd = openat(&parent, name, flags, Mode::S_IRUSR | Mode::S_IWUSR)
                        .map_err(|e| self.failed(rel, e))?;
                    let mut out = File::from(fd);
                    let written = File::open(hit.blob(sha256))
                        .and_then(|mut blob| io::copy(&mut blob, &mut out))
                        .map_err(|e| self.failed(rel, e))?;
                    if written != *size {
                        return Err(self.failed(rel, io::Error::other("the blob changed size")));
                    }
                    fchmod(out.as_fd(), Mode::from_bits_truncate(mode & 0o777))
                        .map_err(|e| self.failed(rel, e))?;
                    report.files_written += 1;
                    report.bytes_written = report.bytes_written.saturating_add(written);
                }
                Change::Symlink { target, .. } => {
                    let (parent, name) = self.parent_of(rel)?;
                    self.clear_for_file(&parent, name, rel)?;
                    symlinkat(target.as_str(), &parent, name).map_err(|e| self.failed(rel, e))?;
                    report.symlinks_created += 1;
                }
                Change::Chmod { mode, .. } => {
                    if self.state(rel)? == State::Dir {
                        dir_modes.push((rel, *mode));
                    } else {
                        self.set_mode(rel, *mode)?;
                    }
                    report.modes_changed += 1;
                }
            }
        }
        // Changes are in path order, so reversed a directory comes after everything below it.
        for (rel, mode) in dir_modes.iter().rev() {
            self.set_mode(rel, *mode)?;
        }
        Ok(report)
    }
}

impl Hit {
    /// Applies the stored changes to `package_dir`, which holds the freshly installed,
    /// script-less package (the state the [`super::Before`] snapshot was taken from):
    /// deletes what the script deleted, creates directories, writes files (permission bits
    /// without setuid/setgid/sticky), creates symlinks (never following one), changes modes.
    ///
    /// `package_dir` itself must be a directory, not a symlink. A symlink, mount point or
    /// unexpected file anywhere on the way is [refused](CacheError::RestoreRefused) before
    /// anything is written. Timestamps are not restored. After an error other than a refusal
    /// the package directory may be partly restored; reinstall it before running its script.
    pub fn restore(&self, package_dir: &Path) -> Result<RestoreReport, CacheError> {
        let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let root = match open(package_dir, flags, Mode::empty()) {
            Ok(fd) => fd,
            // `O_DIRECTORY | O_NOFOLLOW` on a symlink fails with either.
            Err(Errno::ELOOP | Errno::ENOTDIR) => {
                let symlink = std::fs::symlink_metadata(package_dir)
                    .is_ok_and(|m| m.file_type().is_symlink());
                let state = if symlink { State::Symlink } else { State::File };
                return Err(CacheError::RestoreRefused {
                    path: package_dir.to_path_buf(),
                    why: state.describe().to_owned(),
                });
            }
            Err(e) => {
                return Err(CacheError::Restore {
                    path: package_dir.to_path_buf(),
                    source: e.into(),
                });
            }
        };
        let st = fstat(&root).map_err(|e| CacheError::Restore {
            path: package_dir.to_path_buf(),
            source: e.into(),
        })?;
        let target = Target {
            base: package_dir,
            root,
            dev: dev_of(&st),
        };
        target.preflight(self.changes())?;
        let report = target.apply(self, self.changes())?;
        tracing::debug!(key = %self.key(), package = %package_dir.display(), ?report, "restored from the build cache");
        Ok(report)
    }
}
