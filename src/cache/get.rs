//! [`Store::get`]: look an entry up and verify all of it before it is used.

use std::fs::{self, File};
use std::io::{self, Read};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, open, openat};
use nix::sys::stat::{Mode, fstat};
use nix::unistd::linkat;

use crate::util::sha256_hex;

use super::key::{Key, is_sha256_hex};
use super::manifest::{Change, Manifest};
use super::put::hash_file;
use super::store::{BLOBS, MANIFEST, MANIFEST_SHA256, RECORD, Store};
use super::{CacheError, MAX_MANIFEST_BYTES};

/// Longest `manifest.sha256` read (64 hex digits and a newline, with room to spare).
const MAX_HASH_FILE: u64 = 128;

/// The answer of [`Store::get`].
#[derive(Debug)]
pub enum Lookup {
    /// A complete, verified entry.
    Hit(Hit),
    /// No entry for the key (or it was removed while it was being read).
    Miss,
    /// There was an entry, but it failed verification; it has been removed.
    Discarded {
        /// What was wrong with it.
        reason: String,
    },
}

impl Lookup {
    /// The hit, if it is one.
    pub fn into_hit(self) -> Option<Hit> {
        match self {
            Self::Hit(hit) => Some(hit),
            _ => None,
        }
    }
}

/// A verified entry, ready to [restore](Hit::restore). It holds private hard links to its
/// blobs (removed when it is dropped), so a concurrent prune cannot take them away.
#[derive(Debug)]
pub struct Hit {
    key: Key,
    record: Vec<u8>,
    changes: Vec<Change>,
    created_ms: u64,
    blobs: tempfile::TempDir,
}

impl Hit {
    /// The key it was found under.
    pub fn key(&self) -> &Key {
        &self.key
    }

    /// The record stored with it (the original run's report entry), verbatim.
    pub fn record(&self) -> &[u8] {
        &self.record
    }

    /// The changes [`Hit::restore`] applies, in order.
    pub fn changes(&self) -> &[Change] {
        &self.changes
    }

    /// When the entry was stored, milliseconds since the epoch.
    pub fn created_ms(&self) -> u64 {
        self.created_ms
    }

    /// The verified private copy of the blob `sha256`.
    pub(super) fn blob(&self, sha256: &str) -> PathBuf {
        self.blobs.path().join(sha256)
    }
}

/// Why verification stopped.
enum Fault {
    /// The entry is not what it must be.
    Corrupt(String),
    /// Our own machinery failed.
    Error(CacheError),
}

impl From<CacheError> for Fault {
    fn from(e: CacheError) -> Self {
        Self::Error(e)
    }
}

fn corrupt(why: String) -> Fault {
    Fault::Corrupt(why)
}

impl Store {
    /// Looks `key` up and verifies the entry completely (see the [module docs](super)) before
    /// returning it. A corrupted entry is removed and reported as [`Lookup::Discarded`]. A hit
    /// marks the entry as used now.
    pub fn get(&self, key: &Key) -> Result<Lookup, CacheError> {
        let dir = self.entry_dir(key);
        let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let fd = match open(&dir, flags, Mode::empty()) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) => return Ok(Lookup::Miss),
            Err(Errno::ELOOP | Errno::ENOTDIR) => {
                return self.discarded(key, &dir, "the entry is not a directory".to_owned());
            }
            Err(e) => {
                return Err(CacheError::ReadStore {
                    path: dir,
                    source: e.into(),
                });
            }
        };
        match self.verify(key, fd.as_fd()) {
            Ok(hit) => {
                if let Err(e) = self.touch(key, SystemTime::now()) {
                    tracing::debug!(%key, error = %e, "marking a build-cache entry as used");
                }
                Ok(Lookup::Hit(hit))
            }
            Err(Fault::Error(e)) => Err(e),
            // Removed or replaced while we read it (a prune, a clear): not ours to judge.
            Err(Fault::Corrupt(_)) if !same_dir(&dir, &fd) => Ok(Lookup::Miss),
            Err(Fault::Corrupt(reason)) => self.discarded(key, &dir, reason),
        }
    }

    fn discarded(&self, key: &Key, dir: &Path, reason: String) -> Result<Lookup, CacheError> {
        tracing::warn!(%key, %reason, "discarding a corrupted build-cache entry");
        self.discard(dir)?;
        Ok(Lookup::Discarded { reason })
    }

    fn verify(&self, key: &Key, dir: BorrowedFd<'_>) -> Result<Hit, Fault> {
        let expected = read_small(dir, MANIFEST_SHA256, MAX_HASH_FILE)?;
        let expected = std::str::from_utf8(&expected).map_or("", str::trim);
        if !is_sha256_hex(expected) {
            return Err(corrupt(format!("`{MANIFEST_SHA256}` is malformed")));
        }
        let json = read_small(dir, MANIFEST, MAX_MANIFEST_BYTES)?;
        if sha256_hex(&json) != expected {
            return Err(corrupt("the manifest does not match its hash".to_owned()));
        }
        let manifest: Manifest = serde_json::from_slice(&json)
            .map_err(|e| corrupt(format!("the manifest cannot be parsed: {e}")))?;
        manifest.validate(key).map_err(corrupt)?;
        let record = read_small(dir, RECORD, self.limits.max_record_bytes)?;
        if u64::try_from(record.len()).ok() != Some(manifest.record_size)
            || sha256_hex(&record) != manifest.record_sha256
        {
            return Err(corrupt("the record does not match the manifest".to_owned()));
        }
        let blobs = openat(dir, BLOBS, dir_flags(), Mode::empty())
            .map_err(|e| corrupt(format!("`{BLOBS}`: {e}")))?;
        let temp_err = |source| {
            Fault::Error(CacheError::ReadStore {
                path: self.temp_dir(),
                source,
            })
        };
        let private = self.temp("hit-").map_err(temp_err)?;
        let private_fd =
            open(private.path(), dir_flags(), Mode::empty()).map_err(|e| temp_err(e.into()))?;
        for (sha256, size) in manifest.blobs() {
            // A private name for the blob: from here on a removal of the entry cannot take it.
            match linkat(&blobs, sha256, &private_fd, sha256, AtFlags::empty()) {
                Ok(()) => {}
                Err(Errno::EXDEV) => return Err(temp_err(Errno::EXDEV.into())),
                Err(e) => return Err(corrupt(format!("blob {sha256}: {e}"))),
            }
            let mut file = open_regular(private_fd.as_fd(), sha256)
                .map_err(|e| corrupt(format!("blob {sha256}: {e}")))?;
            let (got, len) =
                hash_file(&mut file).map_err(|e| corrupt(format!("blob {sha256}: {e}")))?;
            if got != sha256 || len != size {
                return Err(corrupt(format!("blob {sha256} does not match its hash")));
            }
        }
        Ok(Hit {
            key: key.clone(),
            record,
            changes: manifest.changes,
            created_ms: manifest.created_ms,
            blobs: private,
        })
    }
}

fn dir_flags() -> OFlag {
    OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC
}

/// Opens `name` below `dir` if it is a regular file (never following a symlink, never
/// blocking on a FIFO).
fn open_regular(dir: BorrowedFd<'_>, name: &str) -> io::Result<File> {
    let flags = OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC;
    let fd: OwnedFd = openat(dir, name, flags, Mode::empty())?;
    let st = fstat(&fd)?;
    if st.st_mode & libc::S_IFMT != libc::S_IFREG {
        return Err(io::Error::other("not a regular file"));
    }
    Ok(File::from(fd))
}

/// All of the regular file `name` in the entry `dir`, at most `max` bytes.
fn read_small(dir: BorrowedFd<'_>, name: &str, max: u64) -> Result<Vec<u8>, Fault> {
    let file = open_regular(dir, name).map_err(|e| corrupt(format!("`{name}`: {e}")))?;
    let mut bytes = Vec::new();
    file.take(max.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| corrupt(format!("`{name}`: {e}")))?;
    if u64::try_from(bytes.len()).unwrap_or(u64::MAX) > max {
        return Err(corrupt(format!("`{name}` is larger than {max} bytes")));
    }
    Ok(bytes)
}

/// `true` if `path` still names the directory `fd` refers to.
fn same_dir(path: &Path, fd: &OwnedFd) -> bool {
    let (Ok(md), Ok(st)) = (fs::symlink_metadata(path), fstat(fd)) else {
        return false;
    };
    #[allow(clippy::useless_conversion)] // the field types differ between Linux targets
    let id = (u64::from(st.st_dev), u64::from(st.st_ino));
    (md.dev(), md.ino()) == id
}
