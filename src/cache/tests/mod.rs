//! Tests of the build cache's storage: round trips, keys, verification, hostile package
//! directories, limits, pruning and concurrency.

use super::manifest::check_rel;
use super::store::{BLOBS, MANIFEST, MANIFEST_SHA256};
use super::*;
use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// A whole tree as data: what "byte-identical" means here.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Node {
    File { mode: u32, bytes: Vec<u8> },
    Dir { mode: u32 },
    Link(PathBuf),
    Other { mode: u32 },
}

fn tree(root: &Path) -> BTreeMap<PathBuf, Node> {
    let mut out = BTreeMap::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        for ent in fs::read_dir(root.join(&rel)).expect("read_dir") {
            let ent = ent.expect("entry");
            let rel = rel.join(ent.file_name());
            let path = root.join(&rel);
            let md = fs::symlink_metadata(&path).expect("lstat");
            let mode = md.mode() & 0o7777;
            let node = if md.file_type().is_symlink() {
                Node::Link(fs::read_link(&path).expect("readlink"))
            } else if md.is_dir() {
                stack.push(rel.clone());
                Node::Dir { mode }
            } else if md.is_file() {
                Node::File {
                    mode,
                    bytes: fs::read(&path).expect("read"),
                }
            } else {
                Node::Other { mode }
            };
            out.insert(rel, node);
        }
    }
    out
}

fn write(root: &Path, rel: &str, bytes: &[u8], mode: u32) {
    let path = root.join(rel);
    fs::create_dir_all(path.parent().expect("parent")).expect("mkdir -p");
    fs::write(&path, bytes).expect("write");
    fs::set_permissions(&path, fs::Permissions::from_mode(mode)).expect("chmod");
}

fn chmod(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).expect("chmod");
}

/// The freshly installed package, before its script.
fn install(dir: &Path) {
    fs::create_dir_all(dir).expect("mkdir");
    write(
        dir,
        "package.json",
        br#"{"name":"pkg","version":"1.0.0"}"#,
        0o644,
    );
    write(
        dir,
        "index.js",
        b"module.exports = require('./build/current');\n",
        0o644,
    );
    write(dir, "binding.gyp", b"{ 'targets': [] }\n", 0o644);
    write(dir, "lib/old.js", b"old\n", 0o644);
    write(dir, "lib/keep.js", b"keep\n", 0o644);
    write(dir, "gone/a.txt", b"a\n", 0o644);
    write(dir, "gone/deeper/b.txt", b"b\n", 0o644);
    write(dir, "bin/cli.js", b"#!/usr/bin/env node\n", 0o644);
    write(dir, "kind", b"a file that becomes a directory\n", 0o644);
    write(dir, "same-size.txt", b"0123456789", 0o644);
    symlink("lib/keep.js", dir.join("main-link")).expect("symlink");
    symlink("lib/keep.js", dir.join("retarget")).expect("symlink");
}

/// What a typical build script does to it.
fn build(dir: &Path) {
    let addon = b"\x7fELF fake addon \x00\x01\x02".repeat(100);
    write(dir, "build/Release/addon.node", &addon, 0o755);
    // Same contents twice: one blob.
    write(dir, "build/Release/obj.target/addon.node", &addon, 0o644);
    write(dir, "build/config.gypi", b"{ 'variables': {} }\n", 0o644);
    write(dir, "build/empty", b"", 0o600);
    write(
        dir,
        "binding.gyp",
        b"{ 'targets': [ { 'target_name': 'addon' } ] }\n",
        0o644,
    );
    write(dir, "same-size.txt", b"9876543210", 0o644);
    fs::remove_file(dir.join("lib/old.js")).expect("rm");
    fs::remove_dir_all(dir.join("gone")).expect("rm -r");
    symlink("Release/addon.node", dir.join("build/current")).expect("symlink");
    chmod(&dir.join("bin/cli.js"), 0o755);
    fs::remove_file(dir.join("kind")).expect("rm");
    write(dir, "kind/inner.txt", b"inner\n", 0o640);
    fs::remove_file(dir.join("retarget")).expect("rm");
    symlink("index.js", dir.join("retarget")).expect("symlink");
    write(dir, "readonly.txt", b"read only\n", 0o444);
    fs::hard_link(dir.join("index.js"), dir.join("build/hardlink.js")).expect("ln");
    write(dir, "private/secret-ish", b"x", 0o600);
    chmod(&dir.join("private"), 0o750);
    write(
        dir,
        "ro/inside.txt",
        b"inside a read-only directory\n",
        0o644,
    );
    chmod(&dir.join("ro"), 0o555);
}

/// Makes a tree removable again (`ro/` is read-only).
fn unlock(dir: &Path) {
    let ro = dir.join("ro");
    if fs::symlink_metadata(&ro).is_ok_and(|m| m.is_dir()) {
        chmod(&ro, 0o755);
    }
}

fn inputs() -> KeyInputs {
    KeyInputs::new()
        .with("integrity", "sha512-AAAA")
        .with("event", "install")
        .with("script", "node-gyp rebuild")
        .with("node_version", "v22.11.0")
        .with("node_abi", "127")
        .with("platform", "linux")
        .with("arch", "x64")
        .with("libc", "glibc 2.39")
        .with("env.CC", "gcc")
        .with("dep.node-addon-api", "sha512-BBBB")
}

struct World {
    dir: tempfile::TempDir,
}

impl World {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn store(&self) -> Store {
        Store::open(&self.path("cache/ringfence/builds")).expect("open store")
    }

    fn store_with(&self, limits: Limits) -> Store {
        Store::open_with_limits(&self.path("cache/ringfence/builds"), limits).expect("open store")
    }
}

impl Drop for World {
    fn drop(&mut self) {
        for sub in ["pkg", "fresh", "fresh2"] {
            unlock(&self.path(sub));
        }
    }
}

fn stored(outcome: PutOutcome) {
    assert!(
        matches!(outcome, PutOutcome::Stored { .. }),
        "expected Stored, got {outcome:?}"
    );
}

/// Installs, snapshots, builds and stores `pkg` under `key`; returns the store.
fn stored_build(w: &World, key: &Key) -> Store {
    let pkg = w.path("pkg");
    install(&pkg);
    let before = snapshot(&pkg).expect("snapshot");
    assert_eq!(before.incomplete(), None);
    build(&pkg);
    let store = w.store();
    stored(
        store
            .put(key, &pkg, &before, b"{\"outcome\":\"ok\"}")
            .expect("put"),
    );
    store
}

fn every_file_bytes(root: &Path) -> Vec<Vec<u8>> {
    tree(root)
        .into_values()
        .filter_map(|n| match n {
            Node::File { bytes, .. } => Some(bytes),
            _ => None,
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Round trip
// ---------------------------------------------------------------------------------------------

#[test]
fn put_get_restore_gives_a_byte_identical_tree() {
    let w = World::new();
    let key = inputs().key();
    let store = stored_build(&w, &key);
    let fresh = w.path("fresh");
    install(&fresh);
    assert_ne!(tree(&w.path("pkg")), tree(&fresh));

    let hit = store.get(&key).expect("get").into_hit().expect("a hit");
    assert_eq!(hit.record(), b"{\"outcome\":\"ok\"}");
    let report = hit.restore(&fresh).expect("restore");
    assert_eq!(tree(&w.path("pkg")), tree(&fresh));

    assert_eq!(report.files_written, 11, "{report:?}");
    assert_eq!(report.deleted, 3, "lib/old.js, gone, kind: {report:?}");
    assert!(
        fs::symlink_metadata(fresh.join("build/current"))
            .expect("lstat")
            .file_type()
            .is_symlink()
    );
    // A hard link is restored as a plain copy.
    assert_eq!(
        fs::symlink_metadata(fresh.join("build/hardlink.js"))
            .expect("lstat")
            .nlink(),
        1
    );
    // The two identical files share one blob.
    let files = hit
        .changes()
        .iter()
        .filter(|c| matches!(c, Change::File { .. }))
        .count();
    let blobs = fs::read_dir(store.entry_dir(&key).join(BLOBS))
        .expect("blobs")
        .count();
    assert_eq!(blobs + 1, files, "{:#?}", hit.changes());
    // Unchanged files are not stored at all.
    assert!(
        !hit.changes()
            .iter()
            .any(|c| c.path() == Path::new("package.json"))
    );
    assert!(
        !hit.changes()
            .iter()
            .any(|c| c.path() == Path::new("main-link"))
    );
    assert!(hit.changes().contains(&Change::Chmod {
        path: "bin/cli.js".to_owned(),
        mode: 0o755
    }));
}

#[test]
fn a_hit_survives_the_removal_of_its_entry() {
    let w = World::new();
    let key = inputs().key();
    let store = stored_build(&w, &key);
    let hit = store.get(&key).expect("get").into_hit().expect("a hit");
    assert_eq!(store.clear().expect("clear"), 1);
    assert!(matches!(store.get(&key).expect("get"), Lookup::Miss));
    let fresh = w.path("fresh");
    install(&fresh);
    hit.restore(&fresh).expect("restore");
    assert_eq!(tree(&w.path("pkg")), tree(&fresh));
}

#[test]
fn a_script_that_changed_nothing_restores_nothing() {
    let w = World::new();
    let pkg = w.path("pkg");
    install(&pkg);
    let before = snapshot(&pkg).expect("snapshot");
    let store = w.store();
    let key = inputs().key();
    assert!(matches!(
        store.put(&key, &pkg, &before, b"{}").expect("put"),
        PutOutcome::Stored { changes: 0, .. }
    ));
    let hit = store.get(&key).expect("get").into_hit().expect("hit");
    let fresh = w.path("fresh");
    install(&fresh);
    assert_eq!(
        hit.restore(&fresh).expect("restore"),
        RestoreReport::default()
    );
    assert_eq!(tree(&fresh), tree(&pkg));
}

// ---------------------------------------------------------------------------------------------
// Keys
// ---------------------------------------------------------------------------------------------

#[test]
fn a_different_key_misses() {
    let w = World::new();
    let key = inputs().key();
    let store = stored_build(&w, &key);
    let other = inputs().with("node_version", "v22.12.0").key();
    assert!(matches!(store.get(&other).expect("get"), Lookup::Miss));
    assert!(matches!(store.get(&key).expect("get"), Lookup::Hit(_)));
}

#[test]
fn every_field_is_part_of_the_key() {
    let base = inputs();
    let key = base.key();
    for name in base.fields.keys() {
        let mut changed = base.clone();
        changed.set(name.as_str(), format!("{}!", base.fields[name]));
        assert_ne!(changed.key(), key, "changing {name}");
        let mut removed = base.clone();
        removed.fields.remove(name);
        assert_ne!(removed.key(), key, "removing {name}");
    }
    assert_ne!(base.clone().with("env.CFLAGS", "").key(), key);
}

#[test]
fn keys_do_not_depend_on_insertion_order_and_are_unambiguous() {
    let mut names: Vec<(String, String)> = inputs().fields.into_iter().collect();
    let forward = names
        .iter()
        .fold(KeyInputs::new(), |k, (n, v)| k.with(n, v));
    names.reverse();
    let backward = names
        .iter()
        .fold(KeyInputs::new(), |k, (n, v)| k.with(n, v));
    assert_eq!(forward.key(), backward.key());
    assert_eq!(forward.key(), inputs().key());
    // Concatenating names and values would make these equal.
    let a = KeyInputs::new().with("a", "bc").key();
    let b = KeyInputs::new().with("ab", "c").key();
    assert_ne!(a, b);
    let c = KeyInputs::new().with("a", "b").with("c", "d").key();
    let d = KeyInputs::new().with("a", "bcd").key();
    assert_ne!(c, d);
    assert_ne!(KeyInputs::new().key(), KeyInputs::new().with("", "").key());
    // Equal as `count ‖ (len(name) ‖ name ‖ value)*`: the value lengths tell them apart.
    let len1 = "\u{1}\0\0\0\0\0\0\0";
    let e = KeyInputs::new()
        .with("a", "")
        .with("b", format!("c{len1}de"))
        .key();
    let f = KeyInputs::new()
        .with("a", format!("{len1}bc"))
        .with("d", "e")
        .key();
    assert_ne!(e, f);
}

#[test]
fn keys_are_64_hex_digits() {
    let key = inputs().key();
    assert_eq!(key.as_str().len(), 64);
    assert_eq!(Key::parse(&key.to_string()), Some(key.clone()));
    assert_eq!(Key::parse(&key.as_str().to_uppercase()), None);
    assert_eq!(Key::parse(&key.as_str()[..63]), None);
    assert_eq!(Key::parse("../../../../etc/passwd"), None);
}

mod hostile;
mod limits;
mod verification;
