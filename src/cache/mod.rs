//! The storage half of the hermetic build cache (issue 13): what a successful install script
//! changed in its package directory, stored under a key made of everything that can change that
//! result, verified before every use and restored without ever leaving the package directory.
//!
//! # Use
//!
//! 1. Before the script runs: [`snapshot`] the package directory ([`Before`]).
//! 2. After it exits 0: [`Store::put`] with the run's [`Key`] ([`KeyInputs::key`]), the snapshot
//!    and the run's report entry as opaque bytes (the *record*).
//! 3. On a later install, before running the script: [`Store::get`]; on a [`Lookup::Hit`],
//!    [`Hit::restore`] into the freshly installed (script-less) package directory and report
//!    [`Hit::record`] instead of running the script.
//!
//! # Store layout
//!
//! ```text
//! <root>/                       0700, owned by us, not a symlink, not group/world-writable
//!   v1/<key[0..2]>/<key>/       one entry, published by an atomic rename (never modified after,
//!     manifest.json             except `last-used`): every change, with kind, path, mode, size,
//!                               sha256 or link target; the key; the record's sha256 and size
//!     manifest.sha256           hex sha256 of manifest.json
//!     record.json               the caller's record, verbatim
//!     blobs/<sha256>            file contents, content-addressed (deduplicated within the entry)
//!     last-used                 empty; its mtime is the time of the last hit (LRU pruning)
//!   tmp/put-*                   staging of a put in progress (same filesystem as v1/)
//!   tmp/hit-*                   a hit's private hard links to its verified blobs
//!   tmp/trash-*                 an entry renamed away for removal
//! ```
//!
//! # What is verified on [`Store::get`]
//!
//! The manifest's sha256 against `manifest.sha256`; the manifest's format version and key; every
//! path in it (relative, normalised: no empty, `.` or `..` component, no leading `/`, no NUL);
//! deletions first, then creations in strictly increasing path order; every ancestor of a
//! created path that the manifest itself creates is a directory (never a symlink or a file), and
//! no created path lies below a deleted one unless that directory is created again; modes at
//! most `0o7777`; symlink targets non-empty, NUL-free, at most [`MAX_LINK_TARGET`] bytes; the
//! record's sha256 and size; and every blob's sha256 and size. The blobs are first hard-linked
//! into a private directory and verified there, so a concurrent [`Store::prune`] or
//! [`Store::clear`] cannot take them away between verification and [`Hit::restore`]: a get
//! racing with a removal either holds a complete verified copy or misses. An entry that fails
//! verification is removed and reported as [`Lookup::Discarded`] with the reason.
//!
//! [`Hit::restore`] checks the package directory before it writes anything (every existing
//! ancestor of every path must be a real directory on the package's filesystem; a symlink on the
//! way is refused, not followed) and then applies the changes with `*at` calls relative to
//! directory descriptors opened one component at a time with `O_NOFOLLOW`.
//!
//! # Trust
//!
//! The package directory is hostile: it is read only through [`crate::untrusted`] (`walk`,
//! `read_file`, `copy_tree`) and removed below only with [`crate::untrusted::remove_tree`].
//! The store is written only by this module (the supervisor), never by a sandbox; its root is
//! checked on [`Store::open`] and everything below it is created `0700`/`0600`.

use std::path::PathBuf;

use thiserror::Error;

mod get;
mod key;
mod manifest;
mod put;
mod restore;
mod snapshot;
mod store;
#[cfg(test)]
mod tests;

pub use get::{Hit, Lookup};
pub use key::{Key, KeyInputs};
pub use manifest::Change;
pub use put::PutOutcome;
pub use restore::RestoreReport;
pub use snapshot::{Before, snapshot, snapshot_with_limits};
pub use store::{EntryInfo, PruneReport, Store};

/// Longest symlink target stored, in bytes (the hardened reader's limit, Linux's `PATH_MAX`).
pub const MAX_LINK_TARGET: usize = crate::untrusted::MAX_LINK_TARGET;

/// Largest `manifest.json` [`Store::get`] reads.
pub const MAX_MANIFEST_BYTES: u64 = 64 << 20;

/// Limits on what is snapshotted, stored and read back. Exceeding one makes a run not cacheable
/// (or, for [`Limits::max_entry_bytes`], [`PutOutcome::TooLarge`]); it is never an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Most entries (files, directories, links) in a package directory, before or after its
    /// script.
    pub max_tree_entries: usize,
    /// Deepest entry in a package directory (its children are at depth 1).
    pub max_depth: usize,
    /// Most bytes of regular files in a package directory: hashed by [`snapshot`], copied into
    /// the store's staging area by [`Store::put`].
    pub max_tree_bytes: u64,
    /// Largest single file [`snapshot`] hashes. It is read whole into memory (one file at a
    /// time) by [`crate::untrusted::read_file`], so this also bounds the snapshot's memory.
    pub max_snapshot_file_bytes: u64,
    /// Most bytes one entry may hold: changed and new file contents (after deduplication),
    /// record and manifest.
    pub max_entry_bytes: u64,
    /// Largest record ([`Store::put`]'s `record`).
    pub max_record_bytes: u64,
}

impl Default for Limits {
    /// 100 000 entries, depth 64, 4 GiB per tree, 64 MiB per snapshotted file, 512 MiB per
    /// entry, 16 MiB per record.
    fn default() -> Self {
        Self {
            max_tree_entries: 100_000,
            max_depth: 64,
            max_tree_bytes: 4 << 30,
            max_snapshot_file_bytes: 64 << 20,
            max_entry_bytes: 512 << 20,
            max_record_bytes: 16 << 20,
        }
    }
}

/// A failure of the cache machinery itself. A run that cannot be cached, an entry that is
/// missing, too large or corrupted are outcomes ([`PutOutcome`], [`Lookup`]), not errors.
#[derive(Debug, Error)]
pub enum CacheError {
    /// The store's root directory could not be created or examined.
    #[error("opening the build cache `{}`", path.display())]
    OpenRoot {
        /// The root.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// The store's root is not safe to use.
    #[error("refusing to use the build cache `{}`: {why}", path.display())]
    UnsafeRoot {
        /// The root.
        path: PathBuf,
        /// What is wrong with it.
        why: String,
    },
    /// The package directory could not be listed or hashed before its script ran.
    #[error("snapshotting the package directory `{}`", path.display())]
    Snapshot {
        /// The package directory.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// The package directory could not be listed or copied after its script ran.
    #[error("reading the package directory `{}` into the build cache", path.display())]
    ReadPackage {
        /// The package directory.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// Writing a new entry (or the store's temporary area) failed.
    #[error("writing the build-cache entry `{}`", path.display())]
    WriteEntry {
        /// The file or directory being written.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// Renaming a finished entry into place failed.
    #[error("publishing the build-cache entry `{}`", path.display())]
    Publish {
        /// The entry's final path.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// The store could not be read (a lookup's private area, a listing).
    #[error("reading the build cache `{}`", path.display())]
    ReadStore {
        /// The path being read or created.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// An entry or temporary directory could not be removed.
    #[error("removing the build-cache entry `{}`", path.display())]
    RemoveEntry {
        /// The path.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// Restoring would have to follow a symlink, cross a filesystem or replace something that
    /// is not what the entry expects; nothing was written for this path.
    #[error("refusing to restore into `{}`: {why}", path.display())]
    RestoreRefused {
        /// The path in the package directory.
        path: PathBuf,
        /// What is in the way.
        why: String,
    },
    /// A system call failed while restoring.
    #[error("restoring `{}`", path.display())]
    Restore {
        /// The path in the package directory.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
}
