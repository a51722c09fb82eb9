//! The comparison after the run: which decoys were read (their access time moved) and what was
//! written to the throwaway home (a snapshot of it against what was planted): persistence paths,
//! dropped executables, planted symbolic links.

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use super::{Code, DecoyHome, Finding, FindingKind, Severity};

/// Paths whose creation or change is persistence (relative to HOME; a trailing `/` means any
/// file below).
const PERSISTENCE: [(&str, &str); 35] = [
    (".bashrc", "shell rc"),
    (".bash_profile", "shell rc"),
    (".bash_login", "shell rc"),
    (".profile", "shell rc"),
    (".zshrc", "shell rc"),
    (".zprofile", "shell rc"),
    (".config/fish/", "shell rc"),
    (".ssh/authorized_keys", "ssh authorized keys"),
    (".ssh/config", "ssh config (ProxyCommand)"),
    (".ssh/rc", "ssh login script"),
    (".pam_environment", "login environment"),
    (".config/environment.d/", "login environment"),
    (".xprofile", "desktop session script"),
    (".xinitrc", "desktop session script"),
    (".aws/config", "cloud config (credential_process)"),
    (".docker/config.json", "registry credential helper"),
    (".yarnrc", "package manager config"),
    (".yarnrc.yml", "package manager config"),
    (".bunfig.toml", "package manager config"),
    (".gitconfig", "git config (hooks)"),
    (".config/git/", "git config (hooks)"),
    (".npmrc", "npm config"),
    (".config/autostart/", "desktop autostart"),
    (".config/systemd/", "systemd user unit"),
    (".local/share/systemd/", "systemd user unit"),
    (".claude/", "AI agent config"),
    (".claude.json", "AI agent config"),
    (".cursor/", "AI agent config"),
    (".codeium/", "AI agent config"),
    (".gemini/", "AI agent config"),
    (".codex/", "AI agent config"),
    (".continue/", "AI agent config"),
    (".windsurf/", "AI agent config"),
    (".vscode/", "IDE auto-run config"),
    (".config/Code/", "IDE auto-run config"),
];

/// Whether `rel` (relative to HOME) is a persistence path: one of [`PERSISTENCE`] or below one
/// of its directories.
pub(crate) fn is_persistence(rel: &Path) -> bool {
    PERSISTENCE.iter().any(|(p, _)| match p.strip_suffix('/') {
        Some(dir) => rel.starts_with(dir) && rel != Path::new(dir),
        None => rel == Path::new(p),
    })
}

/// Directories where a new executable file is a dropped binary or stage 2.
const BIN_DIRS: [&str; 4] = [".local/bin/", ".bun/", ".cache/", ".config/"];

impl DecoyHome {
    /// What the run did to the decoys: secret reads (access times) and persistence writes (a
    /// comparison of the home after the run with what was planted). Call once, after the run.
    pub fn findings(&self) -> Vec<Finding> {
        // Reads first: the snapshot below reads the files itself.
        let mut out = self.read_findings();
        let (mut after, incomplete) = snapshot(self.dir.path());
        if let Some(why) = incomplete {
            // What the budget left out is still checked where it matters: every persistence
            // path, directly (filling HOME with junk first cannot hide an rc-file write).
            persistence_direct(self.dir.path(), &mut after);
            out.push(
                Finding::new(
                    Code::RecordingDegraded,
                    format!(
                        "filled its throwaway HOME past what ringfence compares ({}); persistence paths were checked directly, other files there were not",
                        crate::util::clip(&why, 120)
                    ),
                    self.home.display().to_string(),
                )
                .severity(Severity::Medium)
                .at(Some(crate::util::now_unix_ms())),
            );
        }
        for (rel, content) in &after {
            if self.before.get(rel) == Some(content) {
                continue;
            }
            let created = !self.before.contains_key(rel);
            let finding = match content.strip_prefix(SYMLINK) {
                Some(target) => Some(self.link_finding(rel, target)),
                None => self.write_finding(rel, content, created),
            };
            out.extend(finding);
        }
        out
    }

    /// A decoy whose access time is no longer the one it was planted with was read.
    fn read_findings(&self) -> Vec<Finding> {
        let mut out = Vec::new();
        for (rel, listed, class) in &self.files {
            let read_at = std::fs::symlink_metadata(self.dir.path().join(rel))
                .ok()
                .filter(|m| m.atime() != self.parked_at)
                .map(|m| unix_ms(m.atime(), m.atime_nsec()));
            if let Some(at) = read_at {
                out.push(Finding {
                    code: Code::DecoyRead,
                    kind: FindingKind::SecretRead,
                    severity: Severity::High,
                    summary: format!("read decoy {class} `~/{listed}`"),
                    target: self.home.join(listed).display().to_string(),
                    detail: Some(if rel == listed {
                        format!("{class}; the file held only per-run canary values")
                    } else {
                        format!("{class} `~/{rel}`; the file held only per-run canary values")
                    }),
                    process: None,
                    at_unix_ms: Some(at),
                });
            }
        }
        out
    }

    /// A symbolic link `rel` -> `target` new or changed in the home.
    fn link_finding(&self, rel: &str, target: &[u8]) -> Finding {
        // Inside the sandbox HOME is at its real path, so a link there resolves, on the
        // host, into the user's real home: bait for host-side code. Named, never read.
        let target = String::from_utf8_lossy(target).into_owned();
        let sensitive = target.starts_with('/')
            && (crate::observe::syscalls::secret_path(Path::new(&target)).is_some()
                || !target.starts_with(&self.home.display().to_string()));
        Finding {
            code: Code::HomeLinkPlanted,
            kind: FindingKind::TamperAttempt,
            severity: if sensitive {
                Severity::High
            } else {
                Severity::Medium
            },
            summary: format!(
                "planted a symbolic link `~/{rel}` -> `{target}` in the throwaway home (never followed)"
            ),
            target: self.home.join(rel).display().to_string(),
            detail: Some(
                "a link in HOME points, on the host, at the user's real files: bait for tools that inspect the sandbox afterwards".into(),
            ),
            process: None,
            at_unix_ms: std::fs::symlink_metadata(self.dir.path().join(rel))
                .ok()
                .map(|m| unix_ms(m.mtime(), m.mtime_nsec())),
        }
    }

    /// A file `rel` created or modified in the home: persistence when its path is one
    /// ([`PERSISTENCE`]), a dropped binary when it is executable in one of [`BIN_DIRS`].
    fn write_finding(&self, rel: &str, content: &[u8], created: bool) -> Option<Finding> {
        let persistence = PERSISTENCE.iter().find(|(p, _)| {
            if let Some(dir) = p.strip_suffix('/') {
                rel.starts_with(&format!("{dir}/"))
            } else {
                rel == *p
            }
        });
        let meta = std::fs::symlink_metadata(self.dir.path().join(rel)).ok();
        let executable = meta
            .as_ref()
            .is_some_and(|m| m.permissions().mode() & 0o111 != 0);
        let written_at = meta.as_ref().map(|m| unix_ms(m.mtime(), m.mtime_nsec()));
        if let Some((_, class)) = persistence {
            Some(Finding {
                code: Code::HomePersistence,
                kind: FindingKind::PersistenceAttempt,
                severity: Severity::High,
                summary: format!(
                    "{} `~/{rel}` ({class})",
                    if created { "created" } else { "modified" }
                ),
                target: self.home.join(rel).display().to_string(),
                // What the script wrote is not copied into the report: it may hold anything
                // the script could read. Its size and hash identify it.
                detail: Some(format!(
                    "written to the throwaway home: {} bytes, sha256 {}",
                    content.len(),
                    crate::util::sha256_hex(content)
                )),
                process: None,
                at_unix_ms: written_at,
            })
        } else if executable && BIN_DIRS.iter().any(|d| rel.starts_with(d)) {
            Some(Finding {
                code: Code::HomeExecutable,
                kind: FindingKind::PersistenceAttempt,
                severity: Severity::Medium,
                summary: format!("dropped an executable `~/{rel}`"),
                target: self.home.join(rel).display().to_string(),
                detail: Some(format!("{} bytes", content.len())),
                process: None,
                at_unix_ms: written_at,
            })
        } else {
            None
        }
    }
}

/// A file time as milliseconds since the epoch.
pub(crate) fn unix_ms(secs: i64, nsec: i64) -> u64 {
    u64::try_from(secs.saturating_mul(1000).saturating_add(nsec / 1_000_000)).unwrap_or(0)
}

/// How a symbolic link is kept in a snapshot: this marker, then its target (never followed).
const SYMLINK: &[u8] = b"\0symlink\0";

/// Content of the files under `root` that could matter (persistence paths, bin dirs, decoys):
/// small regular files only, read through the hardened reader ([`crate::untrusted`]: never
/// following a link, never opening a FIFO or device, bounded), so a script filling `~/.cache`
/// costs nothing here and a link planted to a host file is kept as a link.
fn snapshot(root: &Path) -> (BTreeMap<String, Vec<u8>>, Option<String>) {
    let mut out = BTreeMap::new();
    let mut incomplete = None;
    let budget = crate::untrusted::Budget {
        max_entries: 20_000,
        max_depth: 32,
        deadline: Some(std::time::Instant::now() + std::time::Duration::from_secs(5)),
        ..Default::default()
    };
    let skip = |rel: &Path| rel != Path::new(".npm") && rel != Path::new(".cache/node-gyp");
    let Ok(walk) = crate::untrusted::walk(root, &budget, &skip) else {
        return (out, Some("the home could not be listed".into()));
    };
    if let Some(why) = &walk.truncated {
        tracing::warn!("decoy home comparison incomplete: {why}");
        incomplete = Some(why.clone());
    }
    let mut total: u64 = 0;
    for e in &walk.entries {
        let rel = e.rel.display().to_string();
        match e.kind {
            crate::untrusted::Kind::File if e.size <= 1 << 20 && total >= 32 << 20 => {
                incomplete.get_or_insert_with(|| "more than 32 MiB of small files".into());
            }
            _ => {
                if let Some(content) = kept(root, e, &mut total) {
                    out.insert(rel, content);
                }
            }
        }
    }
    (out, incomplete)
}

/// What a snapshot keeps of one entry: a link as [`SYMLINK`] and its target, a small regular
/// file as its bytes (`\0exec` appended when it is executable); nothing else.
fn kept(root: &Path, e: &crate::untrusted::Entry, total: &mut u64) -> Option<Vec<u8>> {
    match e.kind {
        crate::untrusted::Kind::Symlink => {
            let mut content = SYMLINK.to_vec();
            if let Some(t) = &e.link_target {
                content.extend_from_slice(t.as_os_str().as_encoded_bytes());
            }
            Some(content)
        }
        crate::untrusted::Kind::File if e.size <= 1 << 20 => {
            let Ok(Some((mut content, _))) = crate::untrusted::read_file(root, &e.rel, 1 << 20)
            else {
                return None;
            };
            *total += content.len() as u64;
            if e.mode & 0o111 != 0 {
                content.extend_from_slice(b"\0exec");
            }
            Some(content)
        }
        _ => None,
    }
}

/// Add every persistence path under `root` the snapshot does not hold, read directly: a file
/// entry by its path, a directory entry (`.config/autostart/`) by a small walk of its own that
/// only descends towards and inside that directory (the rest of HOME is not listed below the
/// top). Links are never followed; the walks are bounded.
fn persistence_direct(root: &Path, after: &mut BTreeMap<String, Vec<u8>>) {
    let dirs: Vec<&Path> = PERSISTENCE
        .iter()
        .filter_map(|(p, _)| p.strip_suffix('/'))
        .map(Path::new)
        .collect();
    // Towards a persistence directory (an ancestor of one) or inside one.
    let towards = |rel: &Path| {
        dirs.iter()
            .any(|d| d.starts_with(rel) || rel.starts_with(d))
    };
    let budget = crate::untrusted::Budget {
        max_entries: 200_000,
        max_depth: 16,
        deadline: Some(std::time::Instant::now() + std::time::Duration::from_secs(5)),
        ..Default::default()
    };
    let Ok(walk) = crate::untrusted::walk(root, &budget, &towards) else {
        return;
    };
    let mut total = 0;
    for e in &walk.entries {
        let rel = e.rel.display().to_string();
        let persistence = PERSISTENCE.iter().any(|(p, _)| match p.strip_suffix('/') {
            Some(dir) => e.rel.starts_with(dir),
            None => rel == *p,
        });
        if persistence && !after.contains_key(&rel) && total < 32 << 20 {
            if let Some(content) = kept(root, e, &mut total) {
                after.insert(rel, content);
            }
        }
    }
}
