//! `walk`, `copy_tree` and `read_file`.

use super::*;
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use super::fd::*;
use nix::errno::Errno;
use nix::fcntl::{AT_FDCWD, OFlag, openat};
use nix::sys::stat::{FileStat, Mode, fchmod, fstatat, mkdirat};
use nix::unistd::{geteuid, symlinkat};

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

pub(super) fn prepare_destination(to: &Path) -> io::Result<OwnedFd> {
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
pub(super) struct Copier {
    pub(super) dst: FdStack,
    pub(super) dst_root: (u64, u64),
    pub(super) copied: u64,
    pub(super) buf: Vec<u8>,
}

/// What copying one regular file came to.
pub(super) enum FileCopy {
    /// Not a regular file on the root's filesystem by the time it was opened: nothing copied.
    Skipped,
    /// It could not be opened.
    Unreadable,
    /// Copied whole.
    Whole,
    /// Cut at its limit; `total_spent` when that limit was what the total byte budget had left.
    Cut { total_spent: bool },
}

impl Copier {
    /// Copies the regular file `name` of `dir` (as `st` found it) into the destination's top
    /// directory, up to [`Budget::max_file_bytes`] and what [`Budget::max_total_bytes`] leaves.
    pub(super) fn copy_file(
        &mut self,
        dir: BorrowedFd<'_>,
        name: &OsStr,
        st: &FileStat,
        root_dev: u64,
        budget: &Budget,
    ) -> io::Result<FileCopy> {
        let limit = budget
            .max_file_bytes
            .min(budget.max_total_bytes.saturating_sub(self.copied));
        let src = match open_regular_at(dir, name, root_dev) {
            Ok(Some(src)) => src,
            Ok(None) => return Ok(FileCopy::Skipped),
            Err(_) => return Ok(FileCopy::Unreadable),
        };
        let dst = openat(
            self.dst.top()?,
            name,
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::S_IRUSR | Mode::S_IWUSR,
        )?;
        let dst = File::from(dst);
        let (bytes, cut) = copy_limited(&src, &dst, limit, &mut self.buf)?;
        fchmod(&dst, file_copy_mode(st.st_mode))?;
        self.copied = self.copied.saturating_add(bytes);
        Ok(if cut {
            FileCopy::Cut {
                total_spent: limit < budget.max_file_bytes,
            }
        } else {
            FileCopy::Whole
        })
    }
}

#[derive(Debug, Default)]
pub(super) struct WalkFrame {
    /// Subdirectories still to enter, last first, with their `st_mode`.
    pub(super) subdirs: Vec<(OsString, u32)>,
    /// Mode to put back when leaving (we added `u+rx`).
    pub(super) restore: Option<Mode>,
    /// Mode for the destination directory when leaving ([`copy_tree`]).
    pub(super) dst_mode: Option<Mode>,
}

pub(super) enum Flow {
    Continue,
    Stop,
}

pub(super) fn dir_copy_mode(mode: u32) -> Mode {
    Mode::from_bits_truncate(mode & 0o777) | Mode::S_IRWXU
}

pub(super) fn file_copy_mode(mode: u32) -> Mode {
    Mode::from_bits_truncate(mode & 0o777)
}

pub(super) fn note(walk: &mut Walk, reason: &str) {
    match &mut walk.truncated {
        Some(t) => {
            t.push_str("; ");
            t.push_str(reason);
        }
        None => walk.truncated = Some(reason.to_owned()),
    }
}

/// Gives an (empty) destination directory its final mode.
pub(super) fn finish_dst_dir(copy: Option<&Copier>, name: &OsStr, mode: u32) -> io::Result<()> {
    if let Some(c) = copy {
        let fd = open_dir_at(c.dst.top()?, name)?;
        fchmod(&fd, dir_copy_mode(mode))?;
    }
    Ok(())
}

#[derive(Debug)]
pub(super) struct Traversal<'a> {
    pub(super) budget: &'a Budget,
    pub(super) euid: u32,
    pub(super) root_dev: u64,
    pub(super) stack: FdStack,
    pub(super) frames: Vec<WalkFrame>,
    pub(super) rel: PathBuf,
    pub(super) walk: Walk,
    pub(super) copy: Option<Copier>,
    pub(super) depth_noted: bool,
}

pub(super) fn traverse(
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
    pub(super) fn deadline_passed(&self) -> bool {
        self.budget.deadline.is_some_and(|d| Instant::now() >= d)
    }

    pub(super) fn run(&mut self, descend: &dyn Fn(&Path) -> bool) -> io::Result<()> {
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

    pub(super) fn pop_frame(&mut self) -> io::Result<()> {
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
    pub(super) fn list_top(&mut self, descend: &dyn Fn(&Path) -> bool) -> io::Result<Flow> {
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
                    match c.copy_file(dir, &name, &st, self.root_dev, budget)? {
                        FileCopy::Skipped | FileCopy::Whole => {}
                        FileCopy::Unreadable => self.walk.unreadable.push(rel),
                        FileCopy::Cut { total_spent } => {
                            self.walk.truncated_files.push(rel);
                            if total_spent {
                                let msg = format!(
                                    "total byte budget of {} bytes exhausted",
                                    budget.max_total_bytes
                                );
                                note(&mut self.walk, &msg);
                                return Ok(Flow::Stop);
                            }
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
    let Some((dir, last, root_dev)) = open_parent(root, &comps)? else {
        return Ok(None);
    };
    match open_regular_at(dir.as_fd(), last, root_dev)? {
        Some(file) => read_limited(&file, max).map(Some),
        None => Ok(None),
    }
}

/// The directory holding the last of `comps` below `root`, opened component by component
/// relative to its parent without following a link or leaving the root's filesystem; with that
/// last name and the root's device. `None` when a directory on the way is not a plain directory
/// of the root's filesystem (or `comps` is empty).
fn open_parent<'c>(
    root: &Path,
    comps: &[&'c OsStr],
) -> io::Result<Option<(OwnedFd, &'c OsStr, u64)>> {
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
    Ok(Some((cur, last, root_dev)))
}

/// What the entry `rel` below `root` is, without following a link (the link itself is
/// described, with its target) and without crossing into another filesystem: every directory on
/// the way is opened relative to its parent, as in [`read_file`]. `Ok(None)` when a directory on
/// the way is not a plain directory of the root's filesystem; `NotFound` when nothing is there.
pub fn stat(root: &Path, rel: &Path) -> io::Result<Option<Entry>> {
    let comps = rel_components(rel)?;
    let Some((dir, last, _)) = open_parent(root, &comps)? else {
        return Ok(None);
    };
    let st = fstatat(&dir, last, nofollow())?;
    let link = (Kind::from_mode(st.st_mode) == Kind::Symlink)
        .then(|| read_link_bounded(dir.as_fd(), last))
        .flatten();
    Ok(Some(entry_from_stat(rel.to_path_buf(), &st, link)))
}
