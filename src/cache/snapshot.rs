//! [`snapshot`]: the state of a package directory before its script runs.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::untrusted::{self, Budget, Kind, Walk};
use crate::util::sha256_hex;

use super::{CacheError, Limits};

/// What [`snapshot`] knows about one path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Node {
    /// File type (symlinks never followed).
    pub(super) kind: Kind,
    /// Full `st_mode`.
    pub(super) mode: u32,
    /// `st_size`.
    pub(super) size: u64,
    /// Hex sha256 of a regular file's contents.
    pub(super) sha256: Option<String>,
    /// A symlink's target text.
    pub(super) link_target: Option<PathBuf>,
}

/// The state of a package directory before its script runs: per relative path its kind, mode,
/// and for regular files the sha256 of their contents, for symlinks their target text.
///
/// Bounded by [`Limits`]: a directory with too many entries, too deep, too many bytes, a file
/// too large to hash, an unreadable part or a mount point below it gives an *incomplete*
/// snapshot, and [`super::Store::put`] then answers [`super::PutOutcome::NotCacheable`].
#[derive(Debug, Clone, Default)]
pub struct Before {
    pub(super) nodes: BTreeMap<PathBuf, Node>,
    pub(super) incomplete: Option<String>,
}

impl Before {
    /// Why the snapshot is incomplete (and the run therefore not cacheable), if it is.
    pub fn incomplete(&self) -> Option<&str> {
        self.incomplete.as_deref()
    }

    /// Paths recorded (the root itself not included).
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// A digest of the whole state (every path with its kind, mode, size, content hash and link
    /// target): the package directory as the script finds it, for the cache key.
    pub fn digest(&self) -> String {
        use std::fmt::Write as _;
        let mut text = String::new();
        for (path, n) in &self.nodes {
            let p = path.to_string_lossy();
            let target = n
                .link_target
                .as_ref()
                .map(|t| t.to_string_lossy().into_owned())
                .unwrap_or_default();
            let _ = write!(
                text,
                "{}:{p}\0{:?}\0{:o}\0{}\0{}\0{}:{target}\0",
                p.len(),
                n.kind,
                n.mode,
                n.size,
                n.sha256.as_deref().unwrap_or(""),
                target.len()
            );
        }
        sha256_hex(text.as_bytes())
    }

    /// `true` if the package directory was empty (or the snapshot stopped before any entry).
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }
}

/// The hardened reader's budget for a package directory under `limits`.
pub(super) fn budget(limits: &Limits) -> Budget {
    Budget {
        max_entries: limits.max_tree_entries,
        max_depth: limits.max_depth,
        max_file_bytes: limits.max_tree_bytes,
        max_total_bytes: limits.max_tree_bytes,
        deadline: None,
    }
}

/// Why a listing of a package directory cannot be the basis of a cache entry, if it cannot:
/// it was cut short, part of it could not be read, or it contains a mount point.
pub(super) fn tree_problem(walk: &Walk, root_dev: u64) -> Option<String> {
    if let Some(why) = &walk.truncated {
        return Some(format!(
            "the package directory exceeds the cache's limits: {why}"
        ));
    }
    if let Some(first) = walk.unreadable.first() {
        return Some(format!(
            "`{}` could not be read ({} unreadable in all)",
            first.display(),
            walk.unreadable.len()
        ));
    }
    if let Some(e) = walk.entries.iter().find(|e| e.dev != root_dev) {
        return Some(format!("`{}` is a mount point", e.rel.display()));
    }
    None
}

/// The device of `package_dir` itself (not following a final symlink).
pub(super) fn root_dev(package_dir: &Path) -> std::io::Result<u64> {
    Ok(std::fs::symlink_metadata(package_dir)?.dev())
}

/// [`snapshot_with_limits`] with [`Limits::default`].
pub fn snapshot(package_dir: &Path) -> Result<Before, CacheError> {
    snapshot_with_limits(package_dir, &Limits::default())
}

/// Records the state of `package_dir` (which must be a directory, not a symlink) through the
/// hardened reader: [`untrusted::walk`] for the listing, [`untrusted::read_file`] for each
/// regular file's contents (hashed one at a time, at most
/// [`Limits::max_snapshot_file_bytes`] each).
///
/// Errors only when `package_dir` itself cannot be examined; anything wrong below it makes the
/// snapshot [incomplete](Before::incomplete).
pub fn snapshot_with_limits(package_dir: &Path, limits: &Limits) -> Result<Before, CacheError> {
    let err = |source| CacheError::Snapshot {
        path: package_dir.to_path_buf(),
        source,
    };
    let dev = root_dev(package_dir).map_err(err)?;
    let walk = untrusted::walk(package_dir, &budget(limits), &|_| true).map_err(err)?;
    let mut before = Before::default();
    if let Some(why) = tree_problem(&walk, dev) {
        before.incomplete = Some(why);
        return Ok(before);
    }
    let mut total: u64 = 0;
    for e in walk.entries {
        let sha256 = match e.kind {
            Kind::File => match hash_file(package_dir, &e.rel, limits, &mut total) {
                Ok(sha) => Some(sha),
                Err(why) => {
                    before.incomplete = Some(why);
                    return Ok(before);
                }
            },
            _ => None,
        };
        before.nodes.insert(
            e.rel,
            Node {
                kind: e.kind,
                mode: e.mode,
                size: e.size,
                sha256,
                link_target: e.link_target,
            },
        );
    }
    Ok(before)
}

/// Hex sha256 of the regular file `rel` below `package_dir`, adding its length to `total`;
/// `Err` says why it cannot be hashed within `limits`.
fn hash_file(
    package_dir: &Path,
    rel: &Path,
    limits: &Limits,
    total: &mut u64,
) -> Result<String, String> {
    match untrusted::read_file(package_dir, rel, limits.max_snapshot_file_bytes) {
        Ok(Some((bytes, false))) => {
            *total = total.saturating_add(u64::try_from(bytes.len()).unwrap_or(u64::MAX));
            if *total > limits.max_tree_bytes {
                return Err(format!(
                    "the package directory holds more than {} bytes",
                    limits.max_tree_bytes
                ));
            }
            Ok(sha256_hex(&bytes))
        }
        Ok(Some((_, true))) => Err(format!(
            "`{}` is larger than {} bytes",
            rel.display(),
            limits.max_snapshot_file_bytes
        )),
        Ok(None) => Err(format!(
            "`{}` changed kind while it was snapshotted",
            rel.display()
        )),
        Err(e) => Err(format!("`{}` could not be read: {e}", rel.display())),
    }
}
