//! node-gyp's outputs outside the package it builds.

use std::path::{Path, PathBuf};

/// Where gyp writes generated makefiles outside the package directory `pkg`, that do not exist
/// yet. gyp puts the makefile of every `.gyp` file a build depends on at
/// `build/<path from the package to that file's directory>`; for a package in a scope
/// (`node_modules/@s/pkg`) and a hoisted dependency with gyp files (`node_modules/node-addon-api`)
/// that is `node_modules/@s/node-addon-api/`, beside the package. npm creates it; so do we, only
/// for a package that builds with gyp, only for directories that do not exist (never into
/// another package), and remove it again when nothing was written.
pub fn outputs_outside(project: &Path, pkg: &Path) -> Vec<PathBuf> {
    if !pkg.join("binding.gyp").is_file() {
        return Vec::new();
    }
    let has_gyp = |d: &Path| {
        std::fs::read_dir(d).is_ok_and(|r| {
            r.flatten()
                .take(1000)
                .any(|e| e.file_name().to_string_lossy().ends_with(".gyp"))
        })
    };
    let top = project.join("node_modules");
    let mut candidates = Vec::new();
    for e in std::fs::read_dir(&top)
        .into_iter()
        .flatten()
        .flatten()
        .take(20_000)
    {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || !e.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        if name.starts_with('@') {
            for f in std::fs::read_dir(e.path())
                .into_iter()
                .flatten()
                .flatten()
                .take(5000)
            {
                if f.file_type().is_ok_and(|t| t.is_dir()) && has_gyp(&f.path()) {
                    candidates.push(f.path());
                }
            }
        } else if has_gyp(&e.path()) {
            candidates.push(e.path());
        }
    }
    let mut out = Vec::new();
    for dep in candidates {
        // build/<relative path from pkg to dep>, resolved lexically.
        let (Ok(p_rel), Ok(d_rel)) = (pkg.strip_prefix(project), dep.strip_prefix(project)) else {
            continue;
        };
        let p_parts: Vec<_> = p_rel.components().collect();
        let d_parts: Vec<_> = d_rel.components().collect();
        let common = p_parts
            .iter()
            .zip(&d_parts)
            .take_while(|(a, b)| a == b)
            .count();
        let ups = p_parts.len() - common;
        // build/ + ups × `..` lands `ups - 1` levels above pkg.
        if ups < 2 {
            continue; // inside the package (build/..)
        }
        let mut target = pkg.to_path_buf();
        for _ in 0..ups - 1 {
            target.pop();
        }
        for c in &d_parts[common..] {
            target.push(c);
        }
        if target.starts_with(project)
            && !target.starts_with(pkg)
            && std::fs::symlink_metadata(&target).is_err()
            && !out.contains(&target)
        {
            out.push(target);
        }
    }
    out
}
