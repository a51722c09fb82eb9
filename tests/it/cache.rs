//! The build cache: a hit restores byte-identical files and reports the original run (findings
//! included) marked `cached`; a changed key input misses; a corrupted entry is discarded and
//! rebuilt; `--no-build-cache` runs everything; two installs sharing a cache both succeed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::common::{Registry, TestContext, bin, require_npm, require_userns, show};

struct Project {
    ctx: TestContext,
    app: PathBuf,
    cache: PathBuf,
}

impl Project {
    fn new(deps: &str) -> Project {
        let ctx = TestContext::new();
        let app = ctx.project_dir("app");
        std::fs::create_dir_all(&app).unwrap();
        std::fs::write(
            app.join("package.json"),
            format!(r#"{{"name":"app","version":"1.0.0","dependencies":{{{deps}}}}}"#),
        )
        .unwrap();
        let cache = ctx.root().join("builds");
        Project { ctx, app, cache }
    }

    fn install(
        &self,
        registry: &Registry,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> (Output, serde_json::Value) {
        let _ = std::fs::remove_dir_all(self.app.join("node_modules"));
        let report = self.ctx.root().join("r.json");
        let mut c = Command::new(bin());
        registry.configure(&mut c, &self.ctx.home, &self.ctx.root().join("npm-cache"));
        c.current_dir(&self.app)
            .args(["install", "--report", report.to_str().unwrap()])
            .arg("--cache-dir")
            .arg(&self.cache)
            .args(extra);
        for (k, v) in env {
            c.env(k, v);
        }
        let out = c.output().unwrap();
        let r = if report.exists() {
            crate::report::json(&report)
        } else {
            serde_json::Value::Null
        };
        (out, r)
    }
}

/// Every file under `root` (symlinks as their target text), by relative path.
fn tree(root: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap().flatten() {
            let p = e.path();
            let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            let m = std::fs::symlink_metadata(&p).unwrap();
            use std::os::unix::fs::PermissionsExt;
            let mode = m.permissions().mode() & 0o777;
            if m.file_type().is_symlink() {
                out.insert(rel, format!("link {:?}", std::fs::read_link(&p).unwrap()));
            } else if m.is_dir() {
                out.insert(rel, format!("dir {mode:o}"));
                stack.push(p);
            } else {
                let bytes = std::fs::read(&p).unwrap();
                out.insert(
                    rel,
                    format!("file {mode:o} {}", bytes.len()) + &format!(" {:x}", md(&bytes)),
                );
            }
        }
    }
    out
}

/// A cheap content digest for comparing trees (FNV-1a 64).
fn md(b: &[u8]) -> u64 {
    b.iter().fold(0xcbf29ce484222325u64, |h, x| {
        (h ^ u64::from(*x)).wrapping_mul(0x100000001b3)
    })
}

fn runs(r: &serde_json::Value) -> Vec<serde_json::Value> {
    r["runs"].as_array().cloned().unwrap_or_default()
}

fn codes(run: &serde_json::Value) -> Vec<String> {
    let mut c: Vec<String> = run["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["code"].as_str().unwrap().to_string())
        .collect();
    c.sort();
    c
}

#[test]
fn a_hit_restores_the_build_and_reports_the_original_run() {
    if !require_userns() || !require_npm() {
        return;
    }
    let Some(registry) = Registry::start() else {
        return;
    };
    let p = Project::new(r#""rf-gyp":"1.0.0","rf-attack-secret-read":"1.0.0""#);
    let (out, first) = p.install(&registry, &[], &[]);
    assert_eq!(out.status.code(), Some(1), "high findings: {}", show(&out));
    assert!(
        runs(&first).iter().all(|r| r["cached"].is_null()),
        "{first:#}"
    );
    let built = tree(&p.app.join("node_modules"));
    assert!(
        built.contains_key("rf-gyp/build/Release/hello.node"),
        "{built:#?}"
    );

    // Again from a fresh node_modules: every script restored, not run.
    let (out, second) = p.install(&registry, &[], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cached   rf-gyp@1.0.0 install"), "{err}");
    for r in runs(&second) {
        assert!(
            r["cached"].as_str().is_some_and(|k| k.len() == 64),
            "not cached: {r:#}"
        );
        let same = runs(&first)
            .into_iter()
            .find(|f| f["package"] == r["package"])
            .unwrap_or_else(|| panic!("{r:#}"));
        // The original run's findings: a cached malicious build is still malicious.
        assert_eq!(codes(&r), codes(&same), "{}", r["package"]);
    }
    assert!(
        runs(&second).iter().any(|r| r["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["code"] == "decoy-read")),
        "{second:#}"
    );
    crate::report::validate_against_schema(&second).unwrap();
    assert_eq!(
        tree(&p.app.join("node_modules")),
        built,
        "the restored tree differs"
    );
    let hello = Command::new("node")
        .args(["-e", "process.stdout.write(require('rf-gyp').hello())"])
        .current_dir(&p.app)
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&hello.stdout),
        "world",
        "{}",
        show(&hello)
    );

    // A build setting is a key input: the addon's build misses, the others still hit.
    let (out, third) = p.install(&registry, &[], &[("CFLAGS", "-O1")]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let gyp = runs(&third)
        .into_iter()
        .find(|r| r["package"]["name"] == "rf-gyp" && r["package"]["event"] == "install")
        .unwrap();
    assert!(
        gyp["cached"].is_null(),
        "CFLAGS did not change the key: {gyp:#}"
    );

    // Corrupt every stored blob: entries are discarded and rebuilt, the install still works.
    let mut corrupted = 0;
    let mut stack = vec![p.cache.clone()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let path = e.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.parent().is_some_and(|d| d.ends_with("blobs")) {
                let mut b = std::fs::read(&path).unwrap();
                if let Some(x) = b.first_mut() {
                    *x ^= 0xff;
                    std::fs::write(&path, &b).unwrap();
                    corrupted += 1;
                }
            }
        }
    }
    assert!(corrupted > 0, "no blob found under {}", p.cache.display());
    let (out, fourth) = p.install(&registry, &[], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let gyp = runs(&fourth)
        .into_iter()
        .find(|r| r["package"]["name"] == "rf-gyp" && r["package"]["event"] == "install")
        .unwrap();
    assert!(
        gyp["cached"].is_null(),
        "a corrupted entry was used: {gyp:#}"
    );
    assert!(
        p.app
            .join("node_modules/rf-gyp/build/Release/hello.node")
            .is_file()
    );

    // --no-build-cache runs everything.
    let (out, fifth) = p.install(&registry, &["--no-build-cache"], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(
        runs(&fifth).iter().all(|r| r["cached"].is_null()),
        "{fifth:#}"
    );

    // `ringfence cache ls` lists the entries; `clear` empties the store.
    let ls = Command::new(bin())
        .args(["cache", "ls", "--cache-dir"])
        .arg(&p.cache)
        .output()
        .unwrap();
    assert!(ls.status.success(), "{}", show(&ls));
    assert!(
        String::from_utf8_lossy(&ls.stdout).lines().count() >= 3,
        "{}",
        show(&ls)
    );
    let clear = Command::new(bin())
        .args(["cache", "clear", "--cache-dir"])
        .arg(&p.cache)
        .output()
        .unwrap();
    assert!(clear.status.success(), "{}", show(&clear));
    let ls = Command::new(bin())
        .args(["cache", "ls", "--cache-dir"])
        .arg(&p.cache)
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&ls.stdout).lines().count(),
        0,
        "{}",
        show(&ls)
    );
    for r in [&first, &second] {
        assert!(!r.to_string().contains("HOST-REAL"));
    }
}

/// Two installs sharing one cache at the same time both succeed.
#[test]
fn concurrent_installs_share_a_cache() {
    if !require_userns() || !require_npm() {
        return;
    }
    let Some(registry) = Registry::start() else {
        return;
    };
    let a = Project::new(r#""rf-gyp":"1.0.0""#);
    let b = Project::new(r#""rf-gyp":"1.0.0""#);
    let cache = a.cache.clone();
    let b = Project { cache, ..b };
    let (ra, rb) = std::thread::scope(|s| {
        let ta = s.spawn(|| a.install(&registry, &[], &[]));
        let tb = s.spawn(|| b.install(&registry, &[], &[]));
        (ta.join().unwrap(), tb.join().unwrap())
    });
    for (out, _) in [&ra, &rb] {
        assert_eq!(out.status.code(), Some(0), "{}", show(out));
    }
    for p in [&a, &b] {
        assert!(
            p.app
                .join("node_modules/rf-gyp/build/Release/hello.node")
                .is_file()
        );
    }
}

/// A script a policy lets write outside its directory (a git-hook installer writing
/// `.git/hooks`) is never restored from the cache: its effects are not all in its directory, so
/// it runs every time and the hooks are there every time.
#[test]
fn scripts_allowed_to_write_elsewhere_are_not_cached() {
    if !require_userns() || !require_npm() {
        return;
    }
    let Some(registry) = Registry::start() else {
        return;
    };
    let p = Project::new(r#""rf-hooks":"1.0.0""#);
    std::fs::create_dir_all(p.app.join(".git/hooks")).unwrap();
    std::fs::write(
        p.app.join("ringfence.toml"),
        "version = 1\n[package.\"rf-hooks\"]\nwrite = [\".git/hooks/\", \"rf-hooks.yml\"]\nreason = \"installs the project's git hooks\"\n",
    )
    .unwrap();
    for round in 0..2 {
        let _ = std::fs::remove_file(p.app.join(".git/hooks/pre-commit"));
        let _ = std::fs::remove_file(p.app.join("rf-hooks.yml"));
        let (out, r) = p.install(&registry, &[], &[]);
        assert_eq!(out.status.code(), Some(0), "round {round}: {}", show(&out));
        assert!(
            runs(&r).iter().all(|x| x["cached"].is_null()),
            "round {round}: {r:#}"
        );
        assert!(
            p.app.join(".git/hooks/pre-commit").is_file(),
            "round {round}: no hook"
        );
    }
}
