//! Executing the plan's mount operations inside the staging root, and the `pivot_root` into it.
//!
//! Symlink races (runc CVE-2021-30465): every bind source is opened `O_PATH|O_NOFOLLOW` before
//! anything is mounted and checked to still resolve to its canonical path; mount targets are
//! created only inside our own tmpfs, and every target is opened `O_PATH|O_NOFOLLOW` and
//! re-checked through `/proc/self/fd` before it is mounted on, so a symlink planted in a host tree
//! (for instance by an earlier install script) can never redirect a mount.

use std::collections::HashMap;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::fcntl::{OFlag, open};
use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sys::stat::Mode;
use nix::unistd::{chdir, pivot_root};
use thiserror::Error;

use super::plan::MountOp;
use crate::sys;

/// Where the new root is assembled. Mounting our tmpfs over `/tmp` only affects our private
/// mount namespace, and every bind source was opened before, so nothing under the host's `/tmp`
/// is needed by path afterwards.
pub const STAGING: &str = "/tmp";

/// A mount operation failed.
#[derive(Debug, Error)]
pub enum MountError {
    /// Opening a bind source failed.
    #[error("opening bind source `{}`", path.display())]
    OpenSource {
        /// Source.
        path: PathBuf,
        /// Cause.
        #[source]
        source: io::Error,
    },
    /// A path resolved somewhere else than planned (a symlink appeared).
    #[error("`{}` resolves to `{}`, not to itself: refusing to mount through a symlink", path.display(), actual.display())]
    Moved {
        /// Planned path.
        path: PathBuf,
        /// Where it resolved.
        actual: PathBuf,
    },
    /// A mount system call failed.
    #[error("{op} `{}`", path.display())]
    Op {
        /// Operation name.
        op: &'static str,
        /// Target path inside the sandbox.
        path: PathBuf,
        /// Cause.
        #[source]
        source: io::Error,
    },
}

impl MountError {
    /// errno of the cause, when there is one.
    pub fn errno(&self) -> Option<i32> {
        match self {
            MountError::OpenSource { source, .. } | MountError::Op { source, .. } => {
                source.raw_os_error()
            }
            MountError::Moved { .. } => None,
        }
    }
}

fn op_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> MountError + 'a {
    move |source| MountError::Op {
        op,
        path: path.to_path_buf(),
        source,
    }
}

fn fd_path(fd: &OwnedFd) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

/// Open `path` with `O_PATH|O_NOFOLLOW` and check that it still is `path` (no symlink anywhere).
fn open_exact(path: &Path) -> Result<OwnedFd, MountError> {
    let fd = open(
        path,
        OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| MountError::OpenSource {
        path: path.to_path_buf(),
        source: e.into(),
    })?;
    let actual = std::fs::read_link(fd_path(&fd)).map_err(|source| MountError::OpenSource {
        path: path.to_path_buf(),
        source,
    })?;
    if actual != path {
        return Err(MountError::Moved {
            path: path.to_path_buf(),
            actual,
        });
    }
    Ok(fd)
}

/// Make every mount a slave of the host's, so nothing we do propagates out (mounts still
/// propagate in, and `pivot_root` refuses a shared root).
pub fn make_private() -> io::Result<()> {
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_SLAVE,
        None::<&str>,
    )
    .map_err(io::Error::from)
}

/// Open every bind source before the staging root hides anything.
pub fn open_sources<'a>(
    sources: impl Iterator<Item = &'a Path>,
) -> Result<HashMap<PathBuf, OwnedFd>, MountError> {
    let mut map = HashMap::new();
    for src in sources {
        if !map.contains_key(src) {
            map.insert(src.to_path_buf(), open_exact(src)?);
        }
    }
    Ok(map)
}

fn staged(path: &Path) -> PathBuf {
    let rel = path.strip_prefix("/").unwrap_or(path);
    if rel.as_os_str().is_empty() {
        PathBuf::from(STAGING)
    } else {
        Path::new(STAGING).join(rel)
    }
}

/// Mount the staging root tmpfs (it holds only mount points and links, and becomes `/`).
pub fn mount_root(size: u64) -> Result<(), MountError> {
    mount(
        Some("tmpfs"),
        STAGING,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some(format!("size={size},mode=0755").as_str()),
    )
    .map_err(|e| MountError::Op {
        op: "mounting the root tmpfs on",
        path: PathBuf::from(STAGING),
        source: e.into(),
    })
}

fn set_attrs(target: &Path, recursive: bool, attrs: u64) -> Result<(), MountError> {
    let fd = open_exact(target)?;
    sys::mount_setattr(fd.as_fd(), recursive, attrs)
        .map_err(op_err("setting attributes on", target))
}

/// Apply one operation inside the staging root.
pub fn apply(op: &MountOp, sources: &HashMap<PathBuf, OwnedFd>) -> Result<(), MountError> {
    match op {
        MountOp::MakeDir { path } => {
            let p = staged(path);
            match std::fs::DirBuilder::new().mode(0o755).create(&p) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
                Err(e) => Err(op_err("creating directory", path)(e)),
            }
        }
        MountOp::MakeFile { path } => std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .custom_flags(libc::O_NOFOLLOW)
            .mode(0o644)
            .open(staged(path))
            .map(drop)
            .map_err(op_err("creating mount-point file", path)),
        MountOp::Symlink { path, target } => std::os::unix::fs::symlink(target, staged(path))
            .map_err(op_err("creating symlink", path)),
        MountOp::Bind {
            source,
            path,
            readonly,
            allow_devices,
            noexec,
        } => {
            let src = sources.get(source).ok_or_else(|| MountError::OpenSource {
                path: source.clone(),
                source: io::Error::from_raw_os_error(libc::EBADF),
            })?;
            let target = staged(path);
            let target_fd = open_exact(&target)?;
            mount(
                Some(&fd_path(src)),
                &fd_path(&target_fd),
                None::<&str>,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None::<&str>,
            )
            .map_err(|e| op_err("bind-mounting", path)(e.into()))?;
            let mut attrs = sys::MOUNT_ATTR_NOSUID;
            if !allow_devices {
                attrs |= sys::MOUNT_ATTR_NODEV;
            }
            if *readonly {
                attrs |= sys::MOUNT_ATTR_RDONLY;
            }
            if *noexec {
                attrs |= sys::MOUNT_ATTR_NOEXEC;
            }
            set_attrs(&target, true, attrs)
        }
        MountOp::Tmpfs {
            path,
            size,
            mode,
            noexec,
        } => {
            let mut flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV;
            if *noexec {
                flags |= MsFlags::MS_NOEXEC;
            }
            let target = staged(path);
            let target_fd = open_exact(&target)?;
            mount(
                Some("tmpfs"),
                &fd_path(&target_fd),
                Some("tmpfs"),
                flags,
                Some(format!("size={size},mode={mode:o}").as_str()),
            )
            .map_err(|e| op_err("mounting tmpfs on", path)(e.into()))
        }
        MountOp::Proc { path } => {
            let target = staged(path);
            let target_fd = open_exact(&target)?;
            mount(
                Some("proc"),
                &fd_path(&target_fd),
                Some("proc"),
                MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
                None::<&str>,
            )
            .map_err(|e| op_err("mounting procfs on", path)(e.into()))
        }
        MountOp::MakeReadOnly { path, bind_first } => {
            let target = staged(path);
            if *bind_first {
                let fd = open_exact(&target)?;
                mount(
                    Some(&fd_path(&fd)),
                    &fd_path(&fd),
                    None::<&str>,
                    MsFlags::MS_BIND,
                    None::<&str>,
                )
                .map_err(|e| op_err("bind-mounting onto itself", path)(e.into()))?;
            }
            set_attrs(
                &target,
                false,
                sys::MOUNT_ATTR_RDONLY | sys::MOUNT_ATTR_NOSUID,
            )
        }
    }
}

/// `pivot_root` into the staging root and detach the old root entirely.
pub fn pivot() -> Result<(), MountError> {
    let p = Path::new(STAGING);
    chdir(p).map_err(|e| op_err("chdir to", p)(e.into()))?;
    // pivot_root(".", ".") stacks the old root on top of the new one; unmounting "." then detaches
    // it, so no `put_old` directory is needed (runc, LXC, bubblewrap).
    pivot_root(".", ".").map_err(|e| op_err("pivot_root into", p)(e.into()))?;
    umount2(".", MntFlags::MNT_DETACH).map_err(|e| op_err("detaching old root at", p)(e.into()))?;
    chdir("/").map_err(|e| op_err("chdir to", Path::new("/"))(e.into()))
}

/// Make `/` itself (our staging tmpfs) read-only: nothing can be created at the top level.
pub fn root_read_only() -> Result<(), MountError> {
    set_attrs(
        Path::new("/"),
        false,
        sys::MOUNT_ATTR_RDONLY | sys::MOUNT_ATTR_NOSUID | sys::MOUNT_ATTR_NODEV,
    )
}
