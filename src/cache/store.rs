//! [`Store`]: the cache root, and listing, pruning and clearing its entries.

use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use nix::unistd::geteuid;

use crate::untrusted;

use super::key::Key;
use super::{CacheError, Limits};

/// Directory of the entries (the manifest format version).
const ENTRIES: &str = "v1";
/// Directory of staging areas, hits' private blob links and entries being removed.
const TEMP: &str = "tmp";
/// An entry's manifest.
pub(super) const MANIFEST: &str = "manifest.json";
/// Hex sha256 of the manifest.
pub(super) const MANIFEST_SHA256: &str = "manifest.sha256";
/// The caller's record.
pub(super) const RECORD: &str = "record.json";
/// File contents, by sha256.
pub(super) const BLOBS: &str = "blobs";
/// Its mtime is the entry's last use.
pub(super) const LAST_USED: &str = "last-used";

/// Age after which a `put-*` or `hit-*` directory in `tmp/` is left over from a crashed
/// process (a put or a restore takes seconds to minutes).
const STALE_TEMP: Duration = Duration::from_secs(24 * 60 * 60);
/// Age after which a `trash-*` directory is left over (its removal started right after it was
/// made; a younger one may still be being removed by another process).
const STALE_TRASH: Duration = Duration::from_secs(60 * 60);

/// A build cache on disk (see the [module docs](super) for the layout).
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
    pub(super) limits: Limits,
}

/// One entry, as [`Store::list`] sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryInfo {
    /// Its key.
    pub key: Key,
    /// Bytes of its files on disk (manifest, record, blobs).
    pub bytes: u64,
    /// When it was stored, milliseconds since the epoch.
    pub created_ms: u64,
    /// Its last hit (or its creation), milliseconds since the epoch.
    pub last_used_ms: u64,
}

/// What [`Store::prune`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PruneReport {
    /// Entries kept.
    pub kept: usize,
    /// Their bytes.
    pub kept_bytes: u64,
    /// Entries removed, least recently used last.
    pub removed: Vec<Key>,
    /// Their bytes.
    pub freed_bytes: u64,
    /// Left-over temporary directories removed.
    pub stale_temp_removed: usize,
}

impl Store {
    /// [`Store::open_with_limits`] with [`Limits::default`].
    pub fn open(dir: &Path) -> Result<Self, CacheError> {
        Self::open_with_limits(dir, Limits::default())
    }

    /// Opens (creating it `0700`, with any missing parents, if needed) the cache rooted at
    /// `dir`, typically `$XDG_CACHE_HOME/ringfence/builds`.
    ///
    /// Refuses a root that is a symlink, not a directory, not owned by the effective uid, or
    /// group- or world-writable (its parents are trusted).
    pub fn open_with_limits(dir: &Path, limits: Limits) -> Result<Self, CacheError> {
        match fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
        {
            Ok(()) => {}
            // Something that is not a directory: `check_private_dir` says what.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(source) => {
                return Err(CacheError::OpenRoot {
                    path: dir.to_path_buf(),
                    source,
                });
            }
        }
        check_private_dir(dir)?;
        for sub in [ENTRIES, TEMP] {
            let path = dir.join(sub);
            match fs::DirBuilder::new().mode(0o700).create(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(source) => return Err(CacheError::OpenRoot { path, source }),
            }
            check_private_dir(&path)?;
        }
        Ok(Self {
            root: dir.to_path_buf(),
            limits,
        })
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    pub(super) fn temp_dir(&self) -> PathBuf {
        self.root.join(TEMP)
    }

    pub(super) fn entry_dir(&self, key: &Key) -> PathBuf {
        self.root.join(ENTRIES).join(key.shard()).join(key.as_str())
    }

    /// A fresh private directory in `tmp/` whose name starts with `prefix`.
    pub(super) fn temp(&self, prefix: &str) -> io::Result<tempfile::TempDir> {
        tempfile::Builder::new()
            .prefix(prefix)
            .tempdir_in(self.temp_dir())
    }

    /// Every entry, by key. Entries removed while the listing runs may or may not appear.
    pub fn list(&self) -> Result<Vec<EntryInfo>, CacheError> {
        let entries = self.root.join(ENTRIES);
        let mut out = Vec::new();
        for shard in dir_names(&entries)? {
            let shard_dir = entries.join(&shard);
            if shard.len() != 2 || !fs::symlink_metadata(&shard_dir).is_ok_and(|m| m.is_dir()) {
                continue;
            }
            for name in dir_names(&shard_dir)? {
                let Some(key) = Key::parse(&name).filter(|k| k.shard() == shard) else {
                    continue;
                };
                if let Some(info) = self.entry_info(key) {
                    out.push(info);
                }
            }
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    /// Sizes and times of the entry `key`; `None` if it is not (or no longer) a directory.
    fn entry_info(&self, key: Key) -> Option<EntryInfo> {
        let dir = self.entry_dir(&key);
        let md = fs::symlink_metadata(&dir)
            .ok()
            .filter(fs::Metadata::is_dir)?;
        let bytes = files_bytes(&dir).saturating_add(files_bytes(&dir.join(BLOBS)));
        let created_ms = mtime_ms(&dir.join(MANIFEST)).unwrap_or_else(|| md_mtime_ms(&md));
        let last_used_ms = mtime_ms(&dir.join(LAST_USED)).unwrap_or(created_ms);
        Some(EntryInfo {
            key,
            bytes,
            created_ms,
            last_used_ms,
        })
    }

    /// Marks the entry `key` as used at `when` (best effort: a missing entry is not an error).
    pub(super) fn touch(&self, key: &Key, when: SystemTime) -> io::Result<()> {
        use std::os::unix::fs::OpenOptionsExt;
        let file = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(self.entry_dir(key).join(LAST_USED))?;
        file.set_modified(when)
    }

    /// Removes the least recently used entries until the rest fit in `max_bytes`: entries are
    /// kept, most recently used first, as long as they fit; the first that does not and every
    /// older one are removed. Also removes temporary directories left over by crashed
    /// processes.
    pub fn prune(&self, max_bytes: u64) -> Result<PruneReport, CacheError> {
        let mut report = PruneReport {
            stale_temp_removed: self.sweep_temp()?,
            ..PruneReport::default()
        };
        let mut entries = self.list()?;
        entries.sort_by(|a, b| {
            (b.last_used_ms, b.created_ms)
                .cmp(&(a.last_used_ms, a.created_ms))
                .then_with(|| a.key.cmp(&b.key))
        });
        let mut full = false;
        for e in entries {
            if !full && report.kept_bytes.saturating_add(e.bytes) <= max_bytes {
                report.kept += 1;
                report.kept_bytes += e.bytes;
                continue;
            }
            full = true;
            if self.discard(&self.entry_dir(&e.key))? {
                report.freed_bytes = report.freed_bytes.saturating_add(e.bytes);
                report.removed.push(e.key);
            }
        }
        tracing::debug!(
            kept = report.kept,
            removed = report.removed.len(),
            freed_bytes = report.freed_bytes,
            "pruned the build cache"
        );
        Ok(report)
    }

    /// Removes every entry (and left-over temporary directories); returns the number of
    /// entries removed. Puts and hits in progress in other processes are not disturbed.
    pub fn clear(&self) -> Result<u64, CacheError> {
        self.sweep_temp()?;
        let mut removed = 0;
        for e in self.list()? {
            if self.discard(&self.entry_dir(&e.key))? {
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Takes the entry directory `dir` out of the store with one rename (so that a concurrent
    /// lookup sees all of it or nothing), then deletes it. `false` if it was already gone.
    pub(super) fn discard(&self, dir: &Path) -> Result<bool, CacheError> {
        let temp_err = |source| CacheError::RemoveEntry {
            path: self.temp_dir(),
            source,
        };
        // An empty directory with a unique name, for the entry to be renamed over.
        let trash = self.temp("trash-").map_err(temp_err)?.keep();
        match fs::rename(dir, &trash) {
            Ok(()) => {}
            Err(e) => {
                let _ = fs::remove_dir(&trash);
                if e.kind() == io::ErrorKind::NotFound {
                    return Ok(false);
                }
                return Err(CacheError::RemoveEntry {
                    path: dir.to_path_buf(),
                    source: e,
                });
            }
        }
        remove_all(&trash)?;
        Ok(true)
    }

    /// Removes left-over temporary directories; returns how many.
    fn sweep_temp(&self) -> Result<usize, CacheError> {
        let temp = self.temp_dir();
        let now = SystemTime::now();
        let mut removed = 0;
        for name in dir_names(&temp)? {
            let path = temp.join(&name);
            let Ok(md) = fs::symlink_metadata(&path) else {
                continue;
            };
            let age = md
                .modified()
                .ok()
                .and_then(|m| now.duration_since(m).ok())
                .unwrap_or_default();
            let stale = if name.starts_with("trash-") {
                age > STALE_TRASH
            } else {
                age > STALE_TEMP
            };
            if stale {
                remove_all(&path)?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}

/// Checks that `path` is a directory we alone can write: not a symlink, owned by the
/// effective uid, not group- or world-writable.
fn check_private_dir(path: &Path) -> Result<(), CacheError> {
    let md = fs::symlink_metadata(path).map_err(|source| CacheError::OpenRoot {
        path: path.to_path_buf(),
        source,
    })?;
    let unsafe_root = |why: String| CacheError::UnsafeRoot {
        path: path.to_path_buf(),
        why,
    };
    if md.file_type().is_symlink() {
        return Err(unsafe_root("it is a symbolic link".to_owned()));
    }
    if !md.is_dir() {
        return Err(unsafe_root("it is not a directory".to_owned()));
    }
    let euid = geteuid().as_raw();
    if md.uid() != euid {
        return Err(unsafe_root(format!(
            "it is owned by uid {}, not by the current user (uid {euid})",
            md.uid()
        )));
    }
    if md.mode() & 0o022 != 0 {
        return Err(unsafe_root(format!(
            "it is group- or world-writable (mode {:04o})",
            md.mode() & 0o7777
        )));
    }
    Ok(())
}

/// Removes `path` (our own files) with the hardened remover; an error if anything is left.
pub(super) fn remove_all(path: &Path) -> Result<(), CacheError> {
    let removal = untrusted::remove_tree(path).map_err(|source| CacheError::RemoveEntry {
        path: path.to_path_buf(),
        source,
    })?;
    match removal.left.first() {
        None => Ok(()),
        Some(left) => Err(CacheError::RemoveEntry {
            path: left.clone(),
            source: io::Error::other(format!(
                "{} path(s) could not be removed",
                removal.left.len()
            )),
        }),
    }
}

/// The names in the store directory `dir` (none if it does not exist).
fn dir_names(dir: &Path) -> Result<Vec<String>, CacheError> {
    let err = |source| CacheError::ReadStore {
        path: dir.to_path_buf(),
        source,
    };
    let read = match fs::read_dir(dir) {
        Ok(read) => read,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(err(e)),
    };
    let mut names = Vec::new();
    for ent in read {
        let ent = ent.map_err(err)?;
        // Names the store never makes (not UTF-8) are not ours to list.
        if let Ok(name) = ent.file_name().into_string() {
            names.push(name);
        }
    }
    Ok(names)
}

/// Total length of the regular files directly in `dir`.
fn files_bytes(dir: &Path) -> u64 {
    let Ok(read) = fs::read_dir(dir) else {
        return 0;
    };
    read.filter_map(Result::ok)
        .filter_map(|e| e.metadata().ok())
        .filter(fs::Metadata::is_file)
        .map(|m| m.len())
        .fold(0, u64::saturating_add)
}

fn md_mtime_ms(md: &fs::Metadata) -> u64 {
    md.modified()
        .ok()
        .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn mtime_ms(path: &Path) -> Option<u64> {
    fs::symlink_metadata(path).ok().map(|md| md_mtime_ms(&md))
}
