//! `remove_tree`: permission-independent, iterative, never following a link.

use super::*;
use std::collections::HashSet;
use std::ffi::{OsStr, OsString};
use std::io::{self};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::fd::*;
use nix::errno::Errno;
use nix::fcntl::{OFlag, open, openat};
use nix::sys::stat::{Mode, fchmod, fstatat};
use nix::unistd::{UnlinkatFlags, geteuid, unlinkat};

// ---------------------------------------------------------------------------------------------
// remove_tree
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Default)]
pub(super) struct RemoveFrame {
    /// Subdirectories found by the last scan and not entered yet (a cache: dropped for deep
    /// levels, a later scan finds them again).
    pub(super) pending: Vec<OsString>,
    /// Entries that could not be removed; later scans ignore them.
    pub(super) skip: HashSet<OsString>,
    /// We already tried to make this directory `0700`.
    pub(super) chmodded: bool,
    /// `Remover::failures` when this directory was entered.
    pub(super) failures_at_entry: u64,
}

#[derive(Debug)]
pub(super) struct Remover {
    pub(super) base: PathBuf,
    pub(super) euid: u32,
    pub(super) root_dev: u64,
    pub(super) failures: u64,
    pub(super) removal: Removal,
}

impl Remover {
    pub(super) fn fail(&mut self, rel: &Path) {
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

pub(super) enum Scan {
    /// Removed or found something: scan again (or enter the pending subdirectories).
    Progress,
    /// Nothing left but skipped entries.
    Done,
    /// The directory cannot be listed.
    Failed,
}

/// Runs `op`; if it fails for lack of permission, makes `dir` `0700` once and retries.
pub(super) fn with_chmod_retry(
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
pub(super) fn scan(
    dir: BorrowedFd<'_>,
    frame: &mut RemoveFrame,
    rm: &mut Remover,
    rel: &Path,
) -> Scan {
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
pub(super) fn remove_below(mut stack: FdStack, rm: &mut Remover) -> io::Result<()> {
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
