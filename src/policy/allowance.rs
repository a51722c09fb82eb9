//! Write allowances: what a `[package."name"] write = [...]` entry makes writable, and, the
//! other way round, the exact entry that would permit a write the sandbox refused — so that a
//! script that "succeeded" without doing its job says so, and says how to let it.

use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};

/// What a `write` entry names once looked at on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Allowed {
    /// An existing directory or file, bound writable as it is.
    Existing(PathBuf),
    /// A missing directory: create it, then bind it.
    NewDir(PathBuf),
    /// A missing file: create it empty, bind it, remove it after the run if still empty.
    NewFile(PathBuf),
    /// Something that cannot be allowed (a symlink, a FIFO: never followed or bound).
    Refused(PathBuf, &'static str),
}

/// Interpret the `write` entry `entry` (already validated: relative and normalised) for the
/// project at `project`. Never follows a symlink.
pub fn interpret(project: &Path, entry: &str) -> Allowed {
    let dir_wanted = entry.ends_with('/');
    let path = project.join(entry.trim_end_matches('/'));
    // Git's directory is never created: a project that is not a repository (or a worktree,
    // whose `.git` is a file) has no hooks to install.
    if (entry == ".git/" || entry.starts_with(".git/"))
        && !std::fs::symlink_metadata(project.join(".git")).is_ok_and(|m| m.is_dir())
    {
        return Allowed::Refused(path, "the project has no .git directory");
    }
    // Every ancestor inside the project must be a real directory, not a link out of it.
    let mut cur = project.to_path_buf();
    if let Some(parent) = Path::new(entry.trim_end_matches('/')).parent() {
        for c in parent.components() {
            cur.push(c);
            match std::fs::symlink_metadata(&cur) {
                Ok(m) if m.file_type().is_symlink() => {
                    return Allowed::Refused(path, "a symbolic link is on the way");
                }
                Ok(m) if !m.is_dir() => {
                    return Allowed::Refused(path, "a parent is not a directory");
                }
                _ => {}
            }
        }
    }
    match std::fs::symlink_metadata(&path) {
        Ok(m) if m.file_type().is_symlink() => {
            Allowed::Refused(path, "it is a symbolic link (never followed)")
        }
        Ok(m) if m.is_dir() || m.is_file() => Allowed::Existing(path),
        Ok(_) => Allowed::Refused(path, "it is neither a file nor a directory"),
        Err(_) if dir_wanted => Allowed::NewDir(path),
        Err(_) => {
            let has_extension = path
                .file_name()
                .map(|n| n.to_string_lossy())
                .is_some_and(|n| n.trim_start_matches('.').contains('.'));
            if has_extension {
                Allowed::NewFile(path)
            } else {
                Allowed::NewDir(path)
            }
        }
    }
}

/// A write the sandbox refused, with the allowance that would permit it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    /// The path the script tried to write.
    pub path: String,
    /// Why it was refused.
    pub why: String,
    /// The `write` entry (relative to the project root) that would permit it, when one can.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow: Option<String>,
}

/// The refusals among `paths` (writes attempted outside the script's writable set) for a
/// package's script in `project`: one entry per suggested allowance, first path each.
pub fn refusals(project: &Path, paths: &[&str]) -> Vec<Refusal> {
    let mut out: Vec<Refusal> = Vec::new();
    for p in paths {
        let path = Path::new(p);
        let (why, allow) = match path.strip_prefix(project) {
            Ok(rel) if rel.components().all(|c| matches!(c, Component::Normal(_))) => {
                let rel_s = rel.to_string_lossy();
                let why = if rel_s.starts_with("node_modules/") {
                    "another package's directory: a dependency's script writes only its own"
                } else {
                    "the project outside the package's own directory"
                };
                (why.to_string(), Some(suggest(rel, p.ends_with('/'))))
            }
            _ => (
                "outside the project: no allowance can permit it".to_string(),
                None,
            ),
        };
        if let Some(a) = &allow {
            if out.iter().any(|r| r.allow.as_ref() == Some(a)) {
                continue;
            }
        } else if out.iter().any(|r| r.path == *p) {
            continue;
        }
        out.push(Refusal {
            path: (*p).to_string(),
            why,
            allow,
        });
    }
    out
}

/// What a script that tried the network did not get: one entry per host (DNS lookups and
/// connections to the sandbox's own loopback left out). No allowance exists: there is never any
/// network; the fix is to provide the download another way (a mirror in npm's cache, an
/// environment variable the package reads to skip it).
pub fn network_refusals<'a>(targets: impl Iterator<Item = &'a str>) -> Vec<Refusal> {
    let mut out: Vec<Refusal> = Vec::new();
    for t in targets {
        let host = match t.rsplit_once(':') {
            Some((h, port)) if port.parse::<u16>().is_ok() => h,
            _ => t,
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let local = host == "localhost"
            || host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback() || ip.is_unspecified());
        let path = format!("network: {host}");
        if local || out.iter().any(|r| r.path == path) {
            continue;
        }
        out.push(Refusal {
            path,
            why: "there is no network in the sandbox: whatever it meant to download is missing"
                .into(),
            allow: None,
        });
    }
    out
}

/// The narrowest useful `write` entry for a refused path `rel`: a file at the project root is
/// allowed as that file; anything deeper through its directory (git hooks, a public directory
/// a worker is copied into), the directory named with a trailing `/`.
fn suggest(rel: &Path, dir: bool) -> String {
    match rel.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => {
            format!("{}/", parent.to_string_lossy())
        }
        // A directory it tried to create at the project root (its path ends with `/`).
        _ if dir => format!("{}/", rel.to_string_lossy()),
        _ => rel.to_string_lossy().into_owned(),
    }
}

/// The `ringfence.toml` text that allows `entries` for `package`.
pub fn snippet(package: &str, entries: &[&str]) -> String {
    let list = entries
        .iter()
        .map(|e| format!("{e:?}"))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "[package.{package:?}]\nwrite = [{list}]\nreason = \"<why this package must write there>\""
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_directory_is_allowed_as_a_directory() {
        let r = refusals(Path::new("/p"), &["/p/public/", "/p/a/b/"]);
        let allow: Vec<_> = r.iter().filter_map(|x| x.allow.as_deref()).collect();
        assert_eq!(allow, vec!["public/", "a/"]);
    }

    #[test]
    fn refused_writes_suggest_the_narrowest_allowance() {
        let project = Path::new("/home/u/app");
        let r = refusals(
            project,
            &[
                "/home/u/app/.git/hooks/pre-commit",
                "/home/u/app/.git/hooks/pre-push",
                "/home/u/app/lefthook.yml",
                "/home/u/app/public/mockServiceWorker.js",
                "/usr/lib/x",
            ],
        );
        let allow: Vec<Option<&str>> = r.iter().map(|r| r.allow.as_deref()).collect();
        assert_eq!(
            allow,
            vec![
                Some(".git/hooks/"),
                Some("lefthook.yml"),
                Some("public/"),
                None
            ]
        );
        assert_eq!(
            snippet("lefthook", &[".git/hooks/", "lefthook.yml"]),
            "[package.\"lefthook\"]\nwrite = [\".git/hooks/\", \"lefthook.yml\"]\nreason = \"<why this package must write there>\""
        );
    }

    #[test]
    fn network_attempts_are_one_refusal_per_host() {
        let r = network_refusals(
            [
                "download.cypress.io",
                "download.cypress.io:443",
                "127.0.0.1:9",
                "[::1]:80",
                "github.com:443",
            ]
            .into_iter(),
        );
        let paths: Vec<&str> = r.iter().map(|r| r.path.as_str()).collect();
        assert_eq!(
            paths,
            vec!["network: download.cypress.io", "network: github.com"]
        );
        assert!(r.iter().all(|r| r.allow.is_none()));
    }

    #[test]
    fn entries_are_files_or_directories_and_links_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path();
        std::fs::create_dir(p.join("public")).unwrap();
        std::fs::write(p.join("lefthook.yml"), "").unwrap();
        std::os::unix::fs::symlink("/etc", p.join("link")).unwrap();
        assert_eq!(interpret(p, "public/"), Allowed::Existing(p.join("public")));
        assert_eq!(
            interpret(p, "lefthook.yml"),
            Allowed::Existing(p.join("lefthook.yml"))
        );
        assert_eq!(interpret(p, "new.yml"), Allowed::NewFile(p.join("new.yml")));
        assert_eq!(
            interpret(p, "node_modules/.prisma"),
            Allowed::NewDir(p.join("node_modules/.prisma"))
        );
        assert_eq!(interpret(p, "gen/"), Allowed::NewDir(p.join("gen")));
        assert!(matches!(interpret(p, "link"), Allowed::Refused(..)));
        assert!(matches!(interpret(p, ".git/hooks/"), Allowed::Refused(..)));
        std::fs::create_dir(p.join(".git")).unwrap();
        assert_eq!(
            interpret(p, ".git/hooks/"),
            Allowed::NewDir(p.join(".git/hooks"))
        );
        assert!(matches!(interpret(p, "link/x/"), Allowed::Refused(..)));
    }
}
