//! Self-modification: what a script did to its own package's shipped files. The package
//! directory is snapshotted (metadata of every file, content of the manifest and of the files the
//! command names) before the script runs and compared after. The change time cannot be set back
//! from inside the sandbox, so a rewrite that restores size and mtime is still seen. The pristine
//! content stays in npm's cache under the package's integrity, which the report names.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::{Code, Finding, FindingKind, Severity};
use crate::util::sha256_hex;

/// At most this many entries are snapshotted (a package larger than that is compared partially).
const MAX_ENTRIES: usize = 50_000;
/// Files whose content is kept for the before/after comparison: each at most this big...
const MAX_KEPT: u64 = 256 << 10;
/// ...and all of them together.
const MAX_KEPT_TOTAL: u64 = 4 << 20;
/// Bytes of each file the script created or changed that are searched for staged secrets (its
/// beginning)...
const STAGED_SCAN: u64 = 1 << 20;
/// ...and of all of them together.
const STAGED_SCAN_TOTAL: u64 = 16 << 20;

fn is_script(rel: &str) -> bool {
    [".js", ".cjs", ".mjs", ".sh", ".py", ".ts", ".json", ".gyp"]
        .iter()
        .any(|e| rel.ends_with(e))
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Stat {
    ino: u64,
    size: u64,
    mtime_ns: i128,
    ctime_ns: i128,
    mode: u32,
}

impl Stat {
    fn of(e: &crate::untrusted::Entry) -> Stat {
        Stat {
            ino: e.ino,
            size: e.size,
            mtime_ns: i128::from(e.mtime_ms) * 1_000_000,
            ctime_ns: i128::from(e.ctime_ms) * 1_000_000,
            mode: e.mode,
        }
    }
}

/// The state of a package directory at one moment.
#[derive(Debug, Clone)]
pub struct Snapshot {
    root: PathBuf,
    files: BTreeMap<String, Stat>,
    /// Content of `package.json` and of the files the lifecycle command names.
    kept: BTreeMap<String, Vec<u8>>,
    /// Why the walk stopped early (the entry budget, the deadline), if it did.
    truncated: Option<String>,
}

/// Whether `rel` below `root` is now a native executable (ELF): an installer that replaced the
/// script it ran with its platform binary (esbuild's postinstall puts the binary of its
/// platform package where its JavaScript launcher was), not one erasing what it ran — the
/// launcher stays in npm's cache either way.
fn native_binary(root: &Path, rel: &str) -> bool {
    crate::untrusted::read_file(root, Path::new(rel), 4)
        .ok()
        .flatten()
        .is_some_and(|(head, _)| head == b"\x7fELF")
}

/// Shipped files a command line mentions (`node setup.js`, `sh ./scripts/x.sh`, or an absolute
/// path under `root`).
fn named_files<'a>(
    words: impl Iterator<Item = &'a str>,
    root: &Path,
    files: &BTreeMap<String, Stat>,
) -> Vec<String> {
    let mut out: Vec<String> = candidates(words, root)
        .into_iter()
        .filter(|w| files.contains_key(w))
        .collect();
    out.sort();
    out.dedup();
    out
}

/// The words of command lines that could name a file below `root`, as paths relative to it.
fn candidates<'a>(words: impl Iterator<Item = &'a str>, root: &Path) -> Vec<String> {
    words
        .flat_map(|w| w.split(|c: char| c.is_whitespace() || "&|;<>()'\"`=".contains(c)))
        .map(|w| {
            Path::new(w)
                .strip_prefix(root)
                .map_or(w, |r| r.to_str().unwrap_or(w))
                .trim_start_matches("./")
        })
        .filter(|w| !w.is_empty() && !w.starts_with('/') && !w.split('/').any(|c| c == ".."))
        .map(str::to_string)
        .collect()
}

impl Snapshot {
    /// Snapshot `root` (its nested `node_modules` excluded: other packages), keeping the content
    /// of `package.json` and the files `command` names.
    pub fn take(root: &Path, command: &str) -> Snapshot {
        // After the run the directory is the script's work: walked through the hardened reader
        // (no link followed, no FIFO opened, bounded, iterative).
        let mut files = BTreeMap::new();
        let budget = crate::untrusted::Budget {
            max_entries: MAX_ENTRIES,
            deadline: Some(std::time::Instant::now() + std::time::Duration::from_secs(10)),
            ..Default::default()
        };
        let descend = |rel: &Path| rel != Path::new("node_modules");
        let mut truncated = None;
        if let Ok(walk) = crate::untrusted::walk(root, &budget, &descend) {
            if let Some(why) = &walk.truncated {
                tracing::warn!(
                    "`{}`: own-files comparison incomplete: {why}",
                    root.display()
                );
                truncated = Some(why.clone());
            }
            for e in walk
                .entries
                .iter()
                .filter(|e| e.kind != crate::untrusted::Kind::Dir)
            {
                files.insert(e.rel.display().to_string(), Stat::of(e));
            }
        }
        // Whatever the walk reached, the manifest and the files the command names are looked
        // at directly: a package that ships more files than the budget, or a script that
        // floods its directory, cannot put what the script rewrites or deletes out of sight.
        let direct = std::iter::once("package.json".to_string())
            .chain(candidates(std::iter::once(command), root));
        for rel in direct {
            if files.contains_key(&rel) {
                continue;
            }
            if let Ok(Some(e)) = crate::untrusted::stat(root, Path::new(&rel)) {
                if e.kind != crate::untrusted::Kind::Dir {
                    files.insert(rel, Stat::of(&e));
                }
            }
        }
        // Content for the evidence: the manifest, what the command names, then script-like
        // files (what a hook could run), within a budget.
        let mut kept = BTreeMap::new();
        let mut wanted = vec!["package.json".to_string()];
        wanted.extend(named_files(std::iter::once(command), root, &files));
        wanted.extend(files.keys().filter(|k| is_script(k)).cloned());
        let mut budget = MAX_KEPT_TOTAL;
        for rel in wanted {
            let Some(size) = files.get(&rel).map(|s| s.size) else {
                continue;
            };
            if size > MAX_KEPT || size > budget || kept.contains_key(&rel) {
                continue;
            }
            if let Ok(Some((c, _))) = crate::untrusted::read_file(root, Path::new(&rel), MAX_KEPT) {
                budget = budget.saturating_sub(size);
                kept.insert(rel, c);
            }
        }
        Snapshot {
            root: root.to_path_buf(),
            files,
            kept,
            truncated,
        }
    }

    /// What changed in the shipped files between `self` (before the script) and `after`.
    /// `ran` are the command lines the run executed (a file one of them names is a file the
    /// script ran); `integrity` names where the pristine tarball is (npm's cache).
    pub fn findings(
        &self,
        after: &Snapshot,
        command: &str,
        ran: &[&[String]],
        integrity: Option<&str>,
    ) -> Vec<Finding> {
        let mut out = Vec::new();
        if let Some(why) = self.truncated.as_ref().or(after.truncated.as_ref()) {
            out.push(
                Finding::new(
                    Code::RecordingDegraded,
                    format!(
                        "its package directory held more than ringfence compares ({}); the manifest and the files its command names were checked directly, other files were not",
                        crate::util::clip(why, 120)
                    ),
                    self.root.display().to_string(),
                )
                .severity(Severity::Medium)
                .at(Some(crate::util::now_unix_ms())),
            );
        }
        let mut changed: Vec<(&str, Option<&Stat>)> = Vec::new();
        for (rel, before) in &self.files {
            match after.files.get(rel) {
                Some(now) if now == before => {}
                now => changed.push((rel.as_str(), now)),
            }
        }
        if changed.is_empty() {
            return out;
        }
        let pristine = match integrity {
            Some(i) => format!("the pristine file is in npm's cache under {i}"),
            None => "no integrity recorded for this package".to_string(),
        };
        let when = |s: Option<&Stat>| {
            s.map(|s| u64::try_from(s.ctime_ns / 1_000_000).unwrap_or(0))
                .or_else(|| Some(super::now_unix_ms()))
        };
        let named = named_files(
            std::iter::once(command).chain(ran.iter().flat_map(|a| a.iter().map(String::as_str))),
            &self.root,
            &self.files,
        );
        let mut rest = Vec::new();
        for (rel, now) in changed {
            let verb = if now.is_none() { "deleted" } else { "rewrote" };
            let path = self.root.join(rel).display().to_string();
            if rel == "package.json" {
                let (what, severity) = manifest_change(
                    self.kept.get(rel).map(Vec::as_slice),
                    now.and(after.kept.get(rel).map(Vec::as_slice)),
                );
                out.push(Finding {
                    code: Code::ManifestRewritten,
                    kind: FindingKind::TamperAttempt,
                    severity,
                    summary: format!("{verb} its own package.json ({what})"),
                    target: path,
                    detail: Some(format!(
                        "self-modification of the installed package; {pristine}"
                    )),
                    process: None,
                    at_unix_ms: when(now),
                });
            } else if named.iter().any(|n| n == rel)
                && !(now.is_some() && native_binary(&after.root, rel))
            {
                let detail = match (self.kept.get(rel), after.kept.get(rel)) {
                    (Some(b), Some(a)) => format!(
                        "sha256 before {} after {}; {pristine}",
                        sha256_hex(b),
                        sha256_hex(a)
                    ),
                    (Some(b), None) => format!("sha256 before {}; {pristine}", sha256_hex(b)),
                    _ => pristine.clone(),
                };
                out.push(Finding {
                    code: Code::ExecutedFileRewritten,
                    kind: FindingKind::TamperAttempt,
                    severity: Severity::High,
                    summary: format!(
                        "{verb} the file its install script ran (`{rel}`): erasing the evidence"
                    ),
                    target: path,
                    detail: Some(detail),
                    process: None,
                    at_unix_ms: when(now),
                });
            } else {
                rest.push((rel, verb, when(now)));
            }
        }
        if let Some((_, _, at)) = rest.first() {
            let shown: Vec<String> = rest
                .iter()
                .take(8)
                .map(|(rel, verb, _)| format!("{rel} ({verb})"))
                .collect();
            out.push(Finding {
                code: Code::ShippedFileChanged,
                kind: FindingKind::TamperAttempt,
                severity: Severity::Low,
                summary: format!(
                    "changed {} of its own shipped file(s): {}{}",
                    rest.len(),
                    shown.join(", "),
                    if rest.len() > shown.len() {
                        ", …"
                    } else {
                        ""
                    }
                ),
                target: self.root.display().to_string(),
                detail: Some(format!(
                    "some installers replace shipped files (a platform binary); {pristine}"
                )),
                process: None,
                at_unix_ms: *at,
            });
        }
        out
    }
}

impl Snapshot {
    /// Secrets (canary values, in any encoding the sinkhole decodes) in files the script created
    /// or changed in its own directory: that directory outlives the sandbox, so a token written
    /// there is staged for later (runtime) exfiltration or publication.
    pub fn staged_secrets(
        &self,
        after: &Snapshot,
        canaries: &[super::decoys::Canary],
    ) -> Vec<Finding> {
        let mut out = Vec::new();
        let mut unreadable: Vec<String> = Vec::new();
        let mut budget: u64 = STAGED_SCAN_TOTAL;
        for (rel, now) in &after.files {
            if self.files.get(rel) == Some(now) || budget == 0 {
                continue;
            }
            // Binary files too: a secret after a NUL byte is still a secret, and canary values
            // are random enough that build output never holds one by chance.
            let limit = STAGED_SCAN.min(budget);
            let content = match crate::untrusted::read_file(&after.root, Path::new(rel), limit) {
                Ok(Some((content, _))) => content,
                // A file the script made unreadable to us (or a directory on the way to it):
                // what it holds was not inspected, and that is said.
                Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                    unreadable.push(rel.clone());
                    continue;
                }
                _ => continue,
            };
            budget = budget.saturating_sub(content.len() as u64);
            let hits = super::net::canaries_in(&content, canaries);
            drop(content);
            if hits.is_empty() {
                continue;
            }
            // A decoy file's secret copied out is theft; credential variables alone may be a
            // build log that dumps the environment.
            let from_files = hits.iter().any(|c| !c.id.starts_with("env:"));
            out.push(Finding {
                code: Code::SecretStaged,
                kind: FindingKind::Exfiltration,
                severity: if from_files {
                    Severity::High
                } else {
                    Severity::Medium
                },
                summary: format!(
                    "wrote {} ({}) into its own package directory, which outlives the sandbox: `{rel}`",
                    if from_files {
                        "a secret"
                    } else {
                        "credential variables"
                    },
                    hits.iter().map(|c| c.id.as_str()).collect::<Vec<_>>().join(", ")
                ),
                target: after.root.join(rel).display().to_string(),
                detail: Some(
                    "staged for runtime exfiltration or republication; it holds only a canary".into(),
                ),
                process: None,
                at_unix_ms: Some(u64::try_from(now.ctime_ns / 1_000_000).unwrap_or(0)),
            });
        }
        if let Some(first) = unreadable.first() {
            out.push(Finding {
                code: Code::RecordingDegraded,
                kind: FindingKind::EscapeAttempt,
                severity: Severity::Medium,
                summary: format!(
                    "{} file(s) it wrote in its own package directory could not be read to look for staged secrets (made unreadable): `{first}`",
                    unreadable.len()
                ),
                target: after.root.join(first).display().to_string(),
                detail: Some(
                    "a package has no reason to make its own files unreadable; their contents were not inspected".into(),
                ),
                process: None,
                at_unix_ms: after
                    .files
                    .get(first)
                    .map(|st| u64::try_from(st.ctime_ns / 1_000_000).unwrap_or(0)),
            });
        }
        out
    }
}

/// How a manifest changed, and how bad that is: hooks or version rewritten is what worms
/// (republish) and self-erasing droppers (hide the install script) do.
fn manifest_change(before: Option<&[u8]>, after: Option<&[u8]>) -> (String, Severity) {
    let parse =
        |b: Option<&[u8]>| b.and_then(|b| serde_json::from_slice::<serde_json::Value>(b).ok());
    let (Some(b), a) = (parse(before), parse(after)) else {
        return ("content not comparable".into(), Severity::High);
    };
    let Some(a) = a else {
        return ("removed or made unreadable".into(), Severity::High);
    };
    let mut what = Vec::new();
    if b.get("version") != a.get("version") {
        what.push(format!(
            "version {} → {}",
            b.get("version").map_or("none".into(), ToString::to_string),
            a.get("version").map_or("none".into(), ToString::to_string)
        ));
    }
    let scripts = |v: &serde_json::Value| {
        v.get("scripts")
            .and_then(|s| s.as_object())
            .cloned()
            .unwrap_or_default()
    };
    let (sb, sa) = (scripts(&b), scripts(&a));
    for k in sb
        .keys()
        .chain(sa.keys())
        .collect::<std::collections::BTreeSet<_>>()
    {
        match (sb.get(k), sa.get(k)) {
            (Some(_), None) => what.push(format!("script `{k}` removed")),
            (None, Some(_)) => what.push(format!("script `{k}` added")),
            (Some(x), Some(y)) if x != y => what.push(format!("script `{k}` changed")),
            _ => {}
        }
    }
    if what.is_empty() {
        ("other fields changed".into(), Severity::Medium)
    } else {
        (what.join(", "), Severity::High)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_modification_is_classified() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::write(
            root.join("package.json"),
            r#"{"name":"x","version":"1.0.0","scripts":{"postinstall":"node setup.js"}}"#,
        )
        .unwrap();
        std::fs::write(root.join("setup.js"), "evil()").unwrap();
        std::fs::create_dir_all(root.join("bin")).unwrap();
        std::fs::write(root.join("bin/tool"), "stub").unwrap();
        std::fs::write(root.join("README.md"), "readme").unwrap();
        std::fs::create_dir_all(root.join("node_modules/dep")).unwrap();
        std::fs::write(root.join("node_modules/dep/index.js"), "a").unwrap();
        let command = "node setup.js";
        let before = Snapshot::take(root, command);
        // Nothing changed: nothing to say. New build output is not a change of shipped files.
        std::fs::create_dir_all(root.join("build")).unwrap();
        std::fs::write(root.join("build/out.o"), "o").unwrap();
        assert!(
            before
                .findings(&Snapshot::take(root, command), command, &[], None)
                .is_empty()
        );

        std::fs::write(
            root.join("package.json"),
            r#"{"name":"x","version":"1.0.0","scripts":{}}"#,
        )
        .unwrap();
        std::fs::remove_file(root.join("setup.js")).unwrap();
        std::fs::write(root.join("bin/tool"), "native binary").unwrap();
        std::fs::write(root.join("node_modules/dep/index.js"), "b").unwrap();
        // `node-gyp rebuild` names nothing; the payload is found through what the run executed.
        let ran = [
            "/bin/sh".to_string(),
            "-c".to_string(),
            "node setup.js > /dev/null".to_string(),
        ];
        let f = before.findings(
            &Snapshot::take(root, command),
            "node-gyp rebuild",
            &[&ran[..]],
            Some("sha512-abc"),
        );
        let got: Vec<(Severity, &str)> =
            f.iter().map(|x| (x.severity, x.summary.as_str())).collect();
        assert_eq!(
            got,
            vec![
                (
                    Severity::High,
                    "rewrote its own package.json (script `postinstall` removed)"
                ),
                (
                    Severity::High,
                    "deleted the file its install script ran (`setup.js`): erasing the evidence"
                ),
                (
                    Severity::Low,
                    "changed 1 of its own shipped file(s): bin/tool (rewrote)"
                ),
            ]
        );
        assert!(f[1].detail.as_deref().unwrap().contains("sha256 before"));
        assert!(f[0].detail.as_deref().unwrap().contains("sha512-abc"));
        assert!(f.iter().all(|x| x.at_unix_ms.is_some()));
    }

    /// A package shipping more files than the walk's budget cannot hide its script's rewrite of
    /// the file it runs or of its manifest behind them: those are looked at directly, and the
    /// incomplete comparison is itself a finding.
    #[test]
    fn a_flooded_package_directory_still_shows_the_rewrite_of_what_it_ran() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("a")).unwrap();
        for i in 0..MAX_ENTRIES + 10 {
            std::fs::write(root.join(format!("a/{i}")), "").unwrap();
        }
        std::fs::create_dir_all(root.join("z")).unwrap();
        std::fs::write(root.join("z/setup.js"), "evil()").unwrap();
        std::fs::write(
            root.join("package.json"),
            r#"{"name":"x","version":"1.0.0","scripts":{"postinstall":"node z/setup.js"}}"#,
        )
        .unwrap();
        let command = "node z/setup.js";
        let before = Snapshot::take(root, command);
        assert!(before.truncated.is_some(), "the budget ran out");
        std::fs::remove_file(root.join("z/setup.js")).unwrap();
        let f = before.findings(&Snapshot::take(root, command), command, &[], None);
        let codes: Vec<(Code, Severity)> = f.iter().map(|x| (x.code, x.severity)).collect();
        assert!(
            codes.contains(&(Code::RecordingDegraded, Severity::Medium)),
            "{f:#?}"
        );
        assert!(
            f.iter()
                .any(|x| x.severity == Severity::High && x.summary.contains("z/setup.js")),
            "{f:#?}"
        );
    }

    #[test]
    fn staged_secrets_are_found_in_new_files() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::write(root.join("package.json"), "{}").unwrap();
        let canaries = vec![super::super::decoys::Canary {
            id: "npmrc-token".into(),
            value: "npm_AbCdEf0123456789xyzXYZ".into(),
        }];
        let before = Snapshot::take(root, "");
        std::fs::create_dir_all(root.join(".cache")).unwrap();
        std::fs::write(root.join("build.log"), "compiled ok").unwrap();
        let b64 = "Ly9yZWdpc3RyeS86X2F1dGhUb2tlbj1ucG1fQWJDZEVmMDEyMzQ1Njc4OXh5elhZWgo=";
        std::fs::write(root.join(".cache/blob"), b64).unwrap();
        // Hidden behind a NUL byte, and past the first 256 KiB of a file.
        let mut binary = b"\x7fELF\0\0\0".to_vec();
        binary.extend_from_slice(b"npm_AbCdEf0123456789xyzXYZ");
        std::fs::write(root.join("addon.node"), &binary).unwrap();
        let mut padded = vec![b' '; 300 << 10];
        padded.extend_from_slice(b"token=npm_AbCdEf0123456789xyzXYZ");
        std::fs::write(root.join("padded.txt"), &padded).unwrap();
        let f = before.staged_secrets(&Snapshot::take(root, ""), &canaries);
        assert_eq!(f.len(), 3, "{f:?}");
        for name in [".cache/blob", "addon.node", "padded.txt"] {
            assert!(f.iter().any(|x| x.target.ends_with(name)), "{name}: {f:?}");
        }
        let f: Vec<Finding> = f
            .into_iter()
            .filter(|x| x.target.ends_with(".cache/blob"))
            .collect();
        assert_eq!(
            (f[0].kind, f[0].severity),
            (FindingKind::Exfiltration, Severity::High)
        );
    }

    #[test]
    fn manifest_changes() {
        let b = br#"{"version":"1.0.0","scripts":{"test":"x"}}"#;
        assert_eq!(
            manifest_change(
                Some(b),
                Some(br#"{"version":"1.0.1","scripts":{"test":"x","preinstall":"node setup.js"}}"#)
            ),
            (
                "version \"1.0.0\" → \"1.0.1\", script `preinstall` added".to_string(),
                Severity::High
            )
        );
        assert_eq!(
            manifest_change(
                Some(b),
                Some(br#"{"version":"1.0.0","scripts":{"test":"x"},"x":1}"#)
            )
            .1,
            Severity::Medium
        );
        assert_eq!(manifest_change(Some(b), None).1, Severity::High);
    }
}
