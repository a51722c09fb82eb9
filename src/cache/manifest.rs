//! `manifest.json`: the list of changes an entry applies, and its validation.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::MAX_LINK_TARGET;
use super::key::{Key, is_sha256_hex};

/// Version of the manifest format (and the `v1/` directory of the store).
pub(super) const FORMAT: u32 = 1;

/// One change a script made to its package directory, as stored in an entry. Paths are
/// relative to the package directory, `/`-separated and normalised (checked on every read).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Change {
    /// The path (with everything below it) no longer exists, or changed kind.
    Delete {
        /// Relative path.
        path: String,
    },
    /// A new directory.
    Dir {
        /// Relative path.
        path: String,
        /// Permission bits as the script left them (applied without setuid/setgid/sticky).
        mode: u32,
    },
    /// A new or changed regular file (a hard link is stored as a plain copy).
    File {
        /// Relative path.
        path: String,
        /// Permission bits as the script left them (applied without setuid/setgid/sticky).
        mode: u32,
        /// Length in bytes.
        size: u64,
        /// Hex sha256 of the contents: the blob's name.
        sha256: String,
    },
    /// A new or changed symlink, stored as its target text (never followed).
    Symlink {
        /// Relative path.
        path: String,
        /// The target exactly as `readlink` returned it.
        target: String,
    },
    /// An existing file or directory whose permission bits changed (contents unchanged).
    Chmod {
        /// Relative path.
        path: String,
        /// New permission bits (applied without setuid/setgid/sticky).
        mode: u32,
    },
}

impl Change {
    /// The relative path this change is about.
    pub fn path(&self) -> &Path {
        Path::new(self.path_str())
    }

    fn path_str(&self) -> &str {
        match self {
            Self::Delete { path }
            | Self::Dir { path, .. }
            | Self::File { path, .. }
            | Self::Symlink { path, .. }
            | Self::Chmod { path, .. } => path,
        }
    }
}

/// The whole manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub(super) struct Manifest {
    /// [`FORMAT`].
    pub(super) format: u32,
    /// The entry's key (must equal its directory name).
    pub(super) key: String,
    /// When the entry was made, milliseconds since the epoch.
    pub(super) created_ms: u64,
    /// Hex sha256 of `record.json`.
    pub(super) record_sha256: String,
    /// Length of `record.json`.
    pub(super) record_size: u64,
    /// Deletions first, then everything else in increasing path order.
    pub(super) changes: Vec<Change>,
}

/// Checks that `path` is a normalised relative path: non-empty, no leading `/`, no empty, `.`
/// or `..` component, no NUL.
pub(super) fn check_rel(path: &str) -> Result<(), String> {
    if path.is_empty() {
        return Err("an empty path".to_owned());
    }
    if path.starts_with('/') {
        return Err(format!("an absolute path `{path}`"));
    }
    if path.contains('\0') {
        return Err(format!("a path with a NUL byte `{}`", path.escape_debug()));
    }
    for comp in path.split('/') {
        if comp.is_empty() || comp == "." || comp == ".." {
            return Err(format!("a path that is not normalised `{path}`"));
        }
    }
    Ok(())
}

/// The proper ancestors of a checked relative path, shallowest first (`a`, `a/b` for `a/b/c`).
pub(super) fn ancestors(path: &Path) -> impl Iterator<Item = &Path> {
    let mut all: Vec<&Path> = path
        .ancestors()
        .skip(1)
        .filter(|p| !p.as_os_str().is_empty())
        .collect();
    all.reverse();
    all.into_iter()
}

impl Manifest {
    /// Everything [`super::Store::get`] checks about the manifest itself (blobs and record are
    /// checked against it separately). `Err` says what is wrong.
    pub(super) fn validate(&self, key: &Key) -> Result<(), String> {
        if self.format != FORMAT {
            return Err(format!(
                "manifest format {} (expected {FORMAT})",
                self.format
            ));
        }
        if self.key != key.as_str() {
            return Err(format!("manifest is for key {}", self.key));
        }
        if !is_sha256_hex(&self.record_sha256) {
            return Err("manifest has a malformed record hash".to_owned());
        }
        let mut deleted: BTreeSet<PathBuf> = BTreeSet::new();
        // Non-deletions by path, to look up ancestors; `true` for directories.
        let mut made: BTreeMap<PathBuf, bool> = BTreeMap::new();
        let mut blob_sizes: BTreeMap<&str, u64> = BTreeMap::new();
        let mut last: Option<&Path> = None;
        for change in &self.changes {
            check_rel(change.path_str()).map_err(|e| format!("manifest has {e}"))?;
            let path = change.path();
            let p = change.path_str();
            if let Change::Delete { .. } = change {
                if !made.is_empty() {
                    return Err(format!("manifest deletes `{p}` after a creation"));
                }
                if !deleted.insert(path.to_path_buf()) {
                    return Err(format!("manifest deletes `{p}` twice"));
                }
                continue;
            }
            if last.is_some_and(|l| l >= path) {
                return Err(format!("manifest is not in path order at `{p}`"));
            }
            last = Some(path);
            for anc in ancestors(path) {
                match made.get(anc) {
                    Some(true) => {}
                    Some(false) => {
                        return Err(format!(
                            "manifest puts `{p}` below `{}`, which it does not make a directory",
                            anc.display()
                        ));
                    }
                    None if is_deleted(&deleted, anc) => {
                        return Err(format!(
                            "manifest puts `{p}` below the deleted `{}`",
                            anc.display()
                        ));
                    }
                    None => {}
                }
            }
            match change {
                Change::Dir { mode, .. } | Change::Chmod { mode, .. } if *mode > 0o7777 => {
                    return Err(format!("manifest has mode {mode:o} for `{p}`"));
                }
                Change::File {
                    mode, size, sha256, ..
                } => {
                    if *mode > 0o7777 {
                        return Err(format!("manifest has mode {mode:o} for `{p}`"));
                    }
                    if !is_sha256_hex(sha256) {
                        return Err(format!("manifest has a malformed hash for `{p}`"));
                    }
                    if *blob_sizes.entry(sha256).or_insert(*size) != *size {
                        return Err(format!("manifest gives blob {sha256} two sizes"));
                    }
                }
                Change::Symlink { target, .. }
                    if target.is_empty()
                        || target.len() > MAX_LINK_TARGET
                        || target.contains('\0') =>
                {
                    return Err(format!("manifest has a malformed link target for `{p}`"));
                }
                Change::Chmod { .. } if is_deleted(&deleted, path) => {
                    return Err(format!("manifest changes the mode of the deleted `{p}`"));
                }
                _ => {}
            }
            made.insert(path.to_path_buf(), matches!(change, Change::Dir { .. }));
        }
        Ok(())
    }

    /// Every distinct blob, with its size.
    pub(super) fn blobs(&self) -> BTreeMap<&str, u64> {
        self.changes
            .iter()
            .filter_map(|c| match c {
                Change::File { sha256, size, .. } => Some((sha256.as_str(), *size)),
                _ => None,
            })
            .collect()
    }
}

/// `true` if `path` or one of its ancestors is in `deleted`.
pub(super) fn is_deleted(deleted: &BTreeSet<PathBuf>, path: &Path) -> bool {
    path.ancestors().any(|p| deleted.contains(p))
}
