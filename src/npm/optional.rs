//! A failed optional dependency's set, removed as arborist removes it.

use std::collections::BTreeSet;
use std::path::Path;

use super::NpmError;
use super::tree::Lockfile;

/// Remove an optional set as arborist does: the folders, their bin links, and their entries in
/// the hidden lockfile (package-lock.json keeps them, marked optional).
pub fn remove_optional_set(
    project: &Path,
    after: &Lockfile,
    set: &BTreeSet<String>,
) -> Result<(), NpmError> {
    for loc in set {
        let Some(entry) = after.packages.get(loc) else {
            continue;
        };
        if entry.get("link").and_then(serde_json::Value::as_bool) == Some(true) {
            continue;
        }
        // Bins live in the parent's node_modules/.bin.
        let parent_nm = match loc.rfind("node_modules/") {
            Some(i) => &loc[..i + "node_modules/".len()],
            None => continue,
        };
        if let Some(bins) = entry.get("bin").and_then(serde_json::Value::as_object) {
            for bin in bins.keys() {
                let base = bin.rsplit('/').next().unwrap_or(bin);
                let link = project.join(parent_nm).join(".bin").join(base);
                if std::fs::symlink_metadata(&link).is_ok_and(|m| m.file_type().is_symlink()) {
                    let _ = std::fs::remove_file(&link);
                }
            }
        }
        let dir = project.join(loc);
        if dir.starts_with(project.join("node_modules")) && dir.is_dir() {
            // What the failed script left there is hostile: links unlinked, never followed;
            // any depth; directories it made unreadable opened up first.
            let removal =
                crate::untrusted::remove_tree(&dir).map_err(|source| NpmError::RemoveDir {
                    path: dir.clone(),
                    source,
                })?;
            if let Some(left) = removal.left.first() {
                return Err(NpmError::RemoveDir {
                    path: dir.clone(),
                    source: std::io::Error::other(format!(
                        "{} entries could not be removed, among them `{}`",
                        removal.left.len(),
                        left.display()
                    )),
                });
            }
        }
    }
    // Rewrite the hidden lockfile without the removed entries.
    let hidden = project.join("node_modules/.package-lock.json");
    if let Ok(mut v) = super::read_json(&hidden) {
        if let Some(p) = v.get_mut("packages").and_then(|p| p.as_object_mut()) {
            for loc in set {
                p.remove(loc);
            }
        }
        if let Ok(text) = serde_json::to_string_pretty(&v) {
            let _ = std::fs::write(&hidden, format!("{text}\n"));
        }
    }
    Ok(())
}
