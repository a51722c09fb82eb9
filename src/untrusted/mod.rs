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

use std::path::PathBuf;
use std::time::Instant;

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
    /// Bytes allocated on disk (`st_blocks` × 512): what the entry costs the filesystem (a
    /// sparse file's size is not).
    pub allocated: u64,
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

mod copy;
mod fd;
mod remove;
#[cfg(test)]
mod tests;
mod walk;

pub use copy::copy_file;
pub use remove::remove_tree;
pub use walk::{copy_tree, read_file, stat, walk};
