//! [`Store::put`]: what a script changed in its package directory, into a new entry.
//!
//! The package directory is copied once with [`untrusted::copy_tree`] into a staging directory
//! inside the store (bounded, symlinks re-created as links, special files not created, hard
//! links as separate files). That copy is ours: its files are hashed there, compared with the
//! [`Before`] snapshot, and the new or changed ones are renamed into the entry's `blobs/`, so
//! file contents are streamed, never held in memory. The finished entry is synced and renamed
//! into place with `RENAME_NOREPLACE`: whoever publishes a key first wins, the other put drops
//! its copy.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{AT_FDCWD, RenameFlags, renameat2};
use sha2::{Digest, Sha256};

use crate::untrusted::{self, Entry, Kind, Walk};
use crate::util::{now_unix_ms, sha256_hex};

use super::CacheError;
use super::key::{Key, hex};
use super::manifest::{Change, FORMAT, Manifest};
use super::snapshot::{Before, budget, root_dev, tree_problem};
use super::store::{BLOBS, LAST_USED, MANIFEST, MANIFEST_SHA256, RECORD, Store};

/// What [`Store::put`] did. Only [`PutOutcome::Stored`] and [`PutOutcome::AlreadyPresent`]
/// leave an entry for the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PutOutcome {
    /// A new entry was published.
    Stored {
        /// Changes recorded.
        changes: usize,
        /// Bytes of blobs, record and manifest.
        bytes: u64,
    },
    /// Another process published an entry for this key first; theirs is kept.
    AlreadyPresent,
    /// The run cannot be cached (nothing was stored).
    NotCacheable {
        /// Why.
        reason: String,
    },
    /// The entry would exceed [`super::Limits::max_entry_bytes`] (nothing was stored).
    TooLarge {
        /// Bytes counted when the limit was crossed (the entry would be at least this large).
        bytes: u64,
        /// The limit.
        limit: u64,
    },
}

fn not_cacheable(reason: String) -> PutOutcome {
    PutOutcome::NotCacheable { reason }
}

fn len64(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

/// The staging directory of one put: `tree/` (the copy of the package directory, removed with
/// the hardened remover, since its shape is the script's) and `entry/` (the entry being built).
#[derive(Debug)]
struct Staging {
    _dir: tempfile::TempDir,
    tree: PathBuf,
    entry: PathBuf,
}

impl Drop for Staging {
    fn drop(&mut self) {
        // `TempDir` removes the rest (our own files) after this.
        if let Err(e) = untrusted::remove_tree(&self.tree) {
            tracing::debug!(path = %self.tree.display(), error = %e, "removing a staging copy");
        }
    }
}

impl Store {
    /// Records what the script changed in `package_dir` relative to `before` (taken before it
    /// ran), together with `record` (opaque bytes: the run's report entry), under `key`.
    ///
    /// Not cacheable (nothing stored): an incomplete snapshot; a package directory over the
    /// [limits](super::Limits), with unreadable parts or mount points; a FIFO, socket or device
    /// node the script left; a path or link target that is not UTF-8. Too large: more than
    /// [`super::Limits::max_entry_bytes`] of new contents. Errors are failures to read the
    /// package directory or to write the store.
    pub fn put(
        &self,
        key: &Key,
        package_dir: &Path,
        before: &Before,
        record: &[u8],
    ) -> Result<PutOutcome, CacheError> {
        let outcome = self.put_inner(key, package_dir, before, record)?;
        tracing::debug!(%key, package = %package_dir.display(), ?outcome, "build cache put");
        Ok(outcome)
    }

    fn put_inner(
        &self,
        key: &Key,
        package_dir: &Path,
        before: &Before,
        record: &[u8],
    ) -> Result<PutOutcome, CacheError> {
        let limits = &self.limits;
        if let Some(why) = before.incomplete() {
            return Ok(not_cacheable(format!(
                "the snapshot before the script is incomplete: {why}"
            )));
        }
        let record_len = len64(record.len());
        if record_len > limits.max_record_bytes {
            return Ok(not_cacheable(format!(
                "the record is larger than {} bytes",
                limits.max_record_bytes
            )));
        }
        let final_dir = self.entry_dir(key);
        if fs::symlink_metadata(&final_dir).is_ok() {
            return Ok(PutOutcome::AlreadyPresent);
        }
        let read_err = |source| CacheError::ReadPackage {
            path: package_dir.to_path_buf(),
            source,
        };
        let dev = root_dev(package_dir).map_err(read_err)?;
        let budget = budget(limits);

        // A listing first: cheap, and it spares copying a tree that cannot be stored.
        let listing = untrusted::walk(package_dir, &budget, &|_| true).map_err(read_err)?;
        if let Some(outcome) = refusal(&listing, dev, before) {
            return Ok(outcome);
        }
        let certain = certainly_new_bytes(&listing.entries, before).saturating_add(record_len);
        if certain > limits.max_entry_bytes {
            return Ok(PutOutcome::TooLarge {
                bytes: certain,
                limit: limits.max_entry_bytes,
            });
        }

        let staging = self.staging()?;
        let copied = untrusted::copy_tree(package_dir, &staging.tree, &budget).map_err(read_err)?;
        if let Some(outcome) = refusal(&copied, dev, before) {
            return Ok(outcome);
        }
        if let Some(cut) = copied.truncated_files.first() {
            return Ok(not_cacheable(format!(
                "`{}` is larger than {} bytes",
                cut.display(),
                limits.max_tree_bytes
            )));
        }
        let blobs = staging.entry.join(BLOBS);
        let changes = match diff(
            before,
            &copied.entries,
            &staging.tree,
            &blobs,
            self,
            record_len,
        )? {
            Ok(changes) => changes,
            Err(outcome) => return Ok(outcome),
        };
        let manifest = Manifest {
            format: FORMAT,
            key: key.to_string(),
            created_ms: now_unix_ms(),
            record_sha256: sha256_hex(record),
            record_size: record_len,
            changes: changes.changes,
        };
        if let Err(why) = manifest.validate(key) {
            // A bug in `diff`; never publish what `get` would refuse.
            tracing::warn!(%key, %why, "the build-cache manifest made for a put is invalid");
            return Ok(not_cacheable(format!(
                "the manifest made is invalid: {why}"
            )));
        }
        let json = serde_json::to_vec(&manifest).map_err(|e| CacheError::WriteEntry {
            path: staging.entry.join(MANIFEST),
            source: e.into(),
        })?;
        let bytes = changes.bytes.saturating_add(len64(json.len()));
        if bytes > limits.max_entry_bytes {
            return Ok(PutOutcome::TooLarge {
                bytes,
                limit: limits.max_entry_bytes,
            });
        }
        let entry = &staging.entry;
        write_new(&entry.join(RECORD), record)?;
        write_new(&entry.join(MANIFEST), &json)?;
        write_new(
            &entry.join(MANIFEST_SHA256),
            format!("{}\n", sha256_hex(&json)).as_bytes(),
        )?;
        write_new(&entry.join(LAST_USED), b"")?;
        sync_dir(&blobs)?;
        sync_dir(entry)?;
        if !publish(entry, &final_dir)? {
            return Ok(PutOutcome::AlreadyPresent);
        }
        Ok(PutOutcome::Stored {
            changes: manifest.changes.len(),
            bytes,
        })
    }

    fn staging(&self) -> Result<Staging, CacheError> {
        let dir = self.temp("put-").map_err(|source| CacheError::WriteEntry {
            path: self.temp_dir(),
            source,
        })?;
        let tree = dir.path().join("tree");
        let entry = dir.path().join("entry");
        for path in [entry.clone(), entry.join(BLOBS)] {
            fs::DirBuilder::new()
                .mode(0o700)
                .create(&path)
                .map_err(|source| CacheError::WriteEntry { path, source })?;
        }
        Ok(Staging {
            _dir: dir,
            tree,
            entry,
        })
    }
}

/// Why a listing of the package directory after the script cannot be stored, if it cannot.
fn refusal(walk: &Walk, dev: u64, before: &Before) -> Option<PutOutcome> {
    if let Some(why) = tree_problem(walk, dev) {
        return Some(not_cacheable(why));
    }
    for e in &walk.entries {
        let what = match e.kind {
            Kind::File | Kind::Dir => continue,
            Kind::Symlink if e.link_target.is_some() => continue,
            Kind::Symlink => {
                return Some(not_cacheable(format!(
                    "the target of the symlink `{}` could not be read",
                    e.rel.display()
                )));
            }
            Kind::Fifo => "a FIFO",
            Kind::Socket => "a socket",
            Kind::CharDevice => "a character device",
            Kind::BlockDevice => "a block device",
            Kind::Other => "a file of unknown type",
        };
        // One that was there before and is untouched stays in place on restore.
        let untouched = before
            .nodes
            .get(&e.rel)
            .is_some_and(|n| n.kind == e.kind && n.mode == e.mode);
        if !untouched {
            return Some(not_cacheable(format!(
                "the script left {what} at `{}`",
                e.rel.display()
            )));
        }
    }
    None
}

/// Bytes of regular files that are new or changed size: they must be stored whatever their
/// contents.
fn certainly_new_bytes(entries: &[Entry], before: &Before) -> u64 {
    entries
        .iter()
        .filter(|e| e.kind == Kind::File)
        .filter(|e| {
            before
                .nodes
                .get(&e.rel)
                .is_none_or(|n| n.kind != Kind::File || n.size != e.size)
        })
        .map(|e| e.size)
        .fold(0, u64::saturating_add)
}

/// The changes, and the bytes they (with the record) take in the store.
#[derive(Debug)]
struct Diff {
    changes: Vec<Change>,
    bytes: u64,
}

fn utf8(path: &Path) -> Result<String, PutOutcome> {
    path.to_str().map(str::to_owned).ok_or_else(|| {
        not_cacheable(format!(
            "`{}` is not valid UTF-8",
            path.as_os_str().to_string_lossy()
        ))
    })
}

fn same_perm(a: u32, b: u32) -> bool {
    a & 0o777 == b & 0o777
}

/// Compares the copy in `tree` (listed as `after`) with `before`, moving new and changed
/// files' contents into `blobs` (deduplicated). `Ok(Err(_))`: not stored, and why.
fn diff(
    before: &Before,
    after: &[Entry],
    tree: &Path,
    blobs: &Path,
    store: &Store,
    record_len: u64,
) -> Result<Result<Diff, PutOutcome>, CacheError> {
    let limit = store.limits.max_entry_bytes;
    let after: BTreeMap<&Path, &Entry> = after.iter().map(|e| (e.rel.as_path(), e)).collect();
    let mut changes = Vec::new();
    // Deletions: what is gone or changed kind; only the top of each deleted subtree (paths
    // sort component-wise, so a subtree follows its root).
    let mut last_deleted: Option<&Path> = None;
    for (rel, node) in &before.nodes {
        if last_deleted.is_some_and(|d| rel.starts_with(d)) {
            continue;
        }
        if after
            .get(rel.as_path())
            .is_some_and(|e| e.kind == node.kind)
        {
            continue;
        }
        match utf8(rel) {
            Ok(path) => changes.push(Change::Delete { path }),
            Err(outcome) => return Ok(Err(outcome)),
        }
        last_deleted = Some(rel);
    }
    let mut stored: BTreeSet<String> = BTreeSet::new();
    let mut bytes = record_len;
    for (rel, e) in &after {
        let old = before.nodes.get(*rel).filter(|n| n.kind == e.kind);
        let mode = e.mode & 0o7777;
        let path = || utf8(rel);
        let change = match e.kind {
            Kind::Dir => match old {
                None => path().map(|path| Some(Change::Dir { path, mode })),
                Some(n) if same_perm(n.mode, e.mode) => Ok(None),
                Some(_) => path().map(|path| Some(Change::Chmod { path, mode })),
            },
            Kind::Symlink => {
                let target = e.link_target.as_deref().unwrap_or(Path::new(""));
                match old {
                    Some(n) if n.link_target.as_deref() == Some(target) => Ok(None),
                    _ => path().and_then(|path| {
                        let target = utf8(target)?;
                        Ok(Some(Change::Symlink { path, target }))
                    }),
                }
            }
            Kind::File => {
                let staged = tree.join(rel);
                let mut file = open_staged(&staged).map_err(|source| CacheError::WriteEntry {
                    path: staged.clone(),
                    source,
                })?;
                let (sha256, size) =
                    hash_file(&mut file).map_err(|source| CacheError::WriteEntry {
                        path: staged.clone(),
                        source,
                    })?;
                match old {
                    Some(n) if n.sha256.as_deref() == Some(sha256.as_str()) => {
                        if same_perm(n.mode, e.mode) {
                            Ok(None)
                        } else {
                            path().map(|path| Some(Change::Chmod { path, mode }))
                        }
                    }
                    _ => {
                        if !stored.contains(&sha256) {
                            bytes = bytes.saturating_add(size);
                            if bytes > limit {
                                return Ok(Err(PutOutcome::TooLarge { bytes, limit }));
                            }
                            let blob = blobs.join(&sha256);
                            let err = |source| CacheError::WriteEntry {
                                path: blob.clone(),
                                source,
                            };
                            file.sync_all().map_err(err)?;
                            fs::rename(&staged, &blob).map_err(err)?;
                            stored.insert(sha256.clone());
                        }
                        path().map(|path| {
                            Some(Change::File {
                                path,
                                mode,
                                size,
                                sha256,
                            })
                        })
                    }
                }
            }
            // Untouched special files (checked by `refusal`) stay as they are.
            _ => Ok(None),
        };
        match change {
            Ok(Some(change)) => changes.push(change),
            Ok(None) => {}
            Err(outcome) => return Ok(Err(outcome)),
        }
    }
    Ok(Ok(Diff { changes, bytes }))
}

/// Opens a regular file of the staging copy for reading. `copy_tree` gave it the script's
/// permission bits, which may deny us reading it; blobs are `0600` anyway.
fn open_staged(path: &Path) -> io::Result<File> {
    if !fs::symlink_metadata(path)?.is_file() {
        return Err(io::Error::other("not a regular file in the staging copy"));
    }
    fs::set_permissions(path, fs::Permissions::from_mode(0o600))?;
    fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
}

/// Hex sha256 and length of everything `file` still has to read.
pub(super) fn hash_file(file: &mut File) -> io::Result<(String, u64)> {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut total: u64 = 0;
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        h.update(&buf[..n]);
        total = total.saturating_add(len64(n));
    }
    Ok((hex(&h.finalize()), total))
}

/// Creates `path` (`0600`, must not exist) with `bytes`, synced.
fn write_new(path: &Path, bytes: &[u8]) -> Result<(), CacheError> {
    let err = |source| CacheError::WriteEntry {
        path: path.to_path_buf(),
        source,
    };
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(err)?;
    file.write_all(bytes).map_err(err)?;
    file.sync_all().map_err(err)
}

/// `fsync` of a directory we made, so the names in it survive a crash.
fn sync_dir(path: &Path) -> Result<(), CacheError> {
    File::open(path)
        .and_then(|d| d.sync_all())
        .map_err(|source| CacheError::WriteEntry {
            path: path.to_path_buf(),
            source,
        })
}

/// Renames the finished `entry` to `final_dir` unless something is there already; `false`
/// if another process got there first.
fn publish(entry: &Path, final_dir: &Path) -> Result<bool, CacheError> {
    let err = |source| CacheError::Publish {
        path: final_dir.to_path_buf(),
        source,
    };
    let Some(shard) = final_dir.parent() else {
        return Err(err(io::Error::other("entry path has no parent")));
    };
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(shard)
        .map_err(err)?;
    match renameat2(
        AT_FDCWD,
        entry,
        AT_FDCWD,
        final_dir,
        RenameFlags::RENAME_NOREPLACE,
    ) {
        Ok(()) => {}
        Err(Errno::EEXIST | Errno::ENOTEMPTY) => return Ok(false),
        // A filesystem without RENAME_NOREPLACE: a plain rename still refuses to replace a
        // non-empty directory, and an entry is never empty.
        Err(Errno::EINVAL) => match fs::rename(entry, final_dir) {
            Ok(()) => {}
            Err(e) if matches!(e.raw_os_error(), Some(libc::EEXIST | libc::ENOTEMPTY)) => {
                return Ok(false);
            }
            Err(e) => return Err(err(e)),
        },
        Err(e) => return Err(err(e.into())),
    }
    File::open(shard).and_then(|d| d.sync_all()).map_err(err)?;
    Ok(true)
}
