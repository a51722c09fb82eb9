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

// ---------------------------------------------------------------------------------------------
// Verification
// ---------------------------------------------------------------------------------------------

fn discarded(store: &Store, key: &Key) -> String {
    match store.get(key).expect("get") {
        Lookup::Discarded { reason } => {
            assert!(!store.entry_dir(key).exists(), "the entry is removed");
            assert!(matches!(store.get(key).expect("get"), Lookup::Miss));
            reason
        }
        other => panic!("expected Discarded, got {other:?}"),
    }
}

#[test]
fn a_corrupted_blob_is_discarded() {
    let w = World::new();
    let key = inputs().key();
    let store = stored_build(&w, &key);
    let blobs = store.entry_dir(&key).join(BLOBS);
    let blob = fs::read_dir(&blobs)
        .expect("blobs")
        .map(|e| e.expect("entry").path())
        .max_by_key(|p| fs::metadata(p).map(|m| m.len()).unwrap_or(0))
        .expect("a blob");
    let mut bytes = fs::read(&blob).expect("read");
    bytes[10] ^= 0x20;
    fs::write(&blob, bytes).expect("write");
    let reason = discarded(&store, &key);
    assert!(reason.contains("does not match its hash"), "{reason}");
}

#[test]
fn a_missing_blob_is_discarded() {
    let w = World::new();
    let key = inputs().key();
    let store = stored_build(&w, &key);
    let blobs = store.entry_dir(&key).join(BLOBS);
    let blob = fs::read_dir(&blobs)
        .expect("blobs")
        .next()
        .expect("a blob")
        .expect("entry");
    fs::remove_file(blob.path()).expect("rm");
    let reason = discarded(&store, &key);
    assert!(reason.contains("blob"), "{reason}");
}

#[test]
fn a_corrupted_manifest_or_record_is_discarded() {
    let w = World::new();
    let key = inputs().key();
    let store = stored_build(&w, &key);
    let manifest = store.entry_dir(&key).join(MANIFEST);
    // Still valid JSON, still the same changes: only the hash tells.
    fs::OpenOptions::new()
        .append(true)
        .open(&manifest)
        .and_then(|mut f| f.write_all(b" "))
        .expect("append");
    let reason = discarded(&store, &key);
    assert!(
        reason.contains("manifest does not match its hash"),
        "{reason}"
    );

    let w = World::new();
    let store = stored_build(&w, &key);
    let record = store.entry_dir(&key).join("record.json");
    fs::write(&record, b"{\"outcome\":\"forged\"}").expect("write");
    let reason = discarded(&store, &key);
    assert!(reason.contains("record"), "{reason}");
}

/// Rewrites the manifest with `edit` and a matching `manifest.sha256`, as a corrupted or
/// forged store would have it.
fn forge(store: &Store, key: &Key, edit: impl FnOnce(&mut serde_json::Value)) {
    let dir = store.entry_dir(key);
    let mut value: serde_json::Value =
        serde_json::from_slice(&fs::read(dir.join(MANIFEST)).expect("read")).expect("json");
    edit(&mut value);
    let bytes = serde_json::to_vec(&value).expect("json");
    fs::write(dir.join(MANIFEST), &bytes).expect("write");
    let sha = format!("{}\n", crate::util::sha256_hex(&bytes));
    fs::write(dir.join(MANIFEST_SHA256), sha).expect("write");
}

fn first_file_change(value: &mut serde_json::Value) -> &mut serde_json::Value {
    value["changes"]
        .as_array_mut()
        .expect("changes")
        .iter_mut()
        .find(|c| c["op"] == "file")
        .expect("a file change")
}

#[test]
fn manifest_paths_that_escape_are_refused() {
    for bad in ["../x", "/tmp/x", "build/../../x", "./x", "a//b", ""] {
        let w = World::new();
        let key = inputs().key();
        let store = stored_build(&w, &key);
        forge(&store, &key, |m| first_file_change(m)["path"] = bad.into());
        let reason = discarded(&store, &key);
        assert!(
            ["absolute", "not normalised", "empty path"]
                .iter()
                .any(|r| reason.contains(r)),
            "{bad}: {reason}"
        );
    }
}

#[test]
fn a_forged_manifest_that_is_otherwise_consistent_still_restores_nothing_outside() {
    // A symlink change followed by a file below it: the file would be written through the
    // link on restore. Rejected on get.
    let w = World::new();
    let key = inputs().key();
    let store = stored_build(&w, &key);
    forge(&store, &key, |m| {
        let changes = m["changes"].as_array_mut().expect("changes");
        let file = changes
            .iter()
            .find(|c| c["op"] == "file")
            .expect("a file")
            .clone();
        changes.retain(|c| c["op"] == "delete");
        changes.push(serde_json::json!({"op": "symlink", "path": "escape", "target": "/tmp"}));
        let mut below = file;
        below["path"] = "escape/planted".into();
        changes.push(below);
    });
    let reason = discarded(&store, &key);
    assert!(reason.contains("does not make a directory"), "{reason}");
}

#[test]
fn manifest_paths_are_checked() {
    for good in [
        "a",
        "a/b",
        "build/Release/addon.node",
        ".hidden",
        "a..b",
        "...",
    ] {
        assert_eq!(check_rel(good), Ok(()), "{good}");
    }
    for bad in [
        "", "/", "/a", "a/", "a//b", ".", "..", "a/..", "../a", "a/./b", "a\0b",
    ] {
        assert!(check_rel(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn a_manifest_for_another_key_is_refused() {
    let w = World::new();
    let key = inputs().key();
    let store = stored_build(&w, &key);
    let other = inputs().with("arch", "arm64").key();
    forge(&store, &key, |m| m["key"] = other.to_string().into());
    let reason = discarded(&store, &key);
    assert!(reason.contains("is for key"), "{reason}");
}

// ---------------------------------------------------------------------------------------------
// Hostile package directories
// ---------------------------------------------------------------------------------------------

/// Builds and stores a package whose script writes `build/Release/addon.node` (and
/// `lib/extra.js` in the existing `lib/`); returns the store and the outside directory.
fn plant_target(w: &World) -> (Store, Key, PathBuf) {
    let key = inputs().key();
    let store = stored_build(w, &key);
    let outside = w.path("elsewhere");
    write(&outside, "marker", b"outside", 0o644);
    (store, key, outside)
}

fn assert_refused(result: Result<RestoreReport, CacheError>, at: &Path) {
    match result {
        Err(CacheError::RestoreRefused { path, why }) => {
            assert_eq!(path, at, "{why}");
            assert!(why.contains("symbolic link"), "{why}");
        }
        other => panic!("expected a refusal at {}, got {other:?}", at.display()),
    }
}

#[test]
fn restore_refuses_a_symlink_planted_where_a_new_directory_goes() {
    let w = World::new();
    let (store, key, outside) = plant_target(&w);
    let fresh = w.path("fresh");
    install(&fresh);
    symlink(&outside, fresh.join("build")).expect("symlink");
    let (fresh_before, outside_before) = (tree(&fresh), tree(&outside));
    let hit = store.get(&key).expect("get").into_hit().expect("hit");
    assert_refused(hit.restore(&fresh), &fresh.join("build"));
    assert_eq!(tree(&outside), outside_before, "nothing written outside");
    assert_eq!(tree(&fresh), fresh_before, "nothing written at all");
}

#[test]
fn restore_refuses_a_symlink_planted_on_the_way_to_an_existing_directory() {
    let w = World::new();
    let (store, key, outside) = plant_target(&w);
    let fresh = w.path("fresh");
    install(&fresh);
    // `bin/` exists before the script (which changes `bin/cli.js`'s mode); a planted link
    // replaces it.
    fs::remove_dir_all(fresh.join("bin")).expect("rm");
    write(&outside, "cli.js", b"outside cli\n", 0o600);
    symlink(&outside, fresh.join("bin")).expect("symlink");
    let (fresh_before, outside_before) = (tree(&fresh), tree(&outside));
    let hit = store.get(&key).expect("get").into_hit().expect("hit");
    assert_refused(hit.restore(&fresh), &fresh.join("bin"));
    assert_eq!(tree(&outside), outside_before);
    assert_eq!(
        fs::metadata(outside.join("cli.js")).expect("stat").mode() & 0o777,
        0o600,
        "the outside file's mode is untouched"
    );
    assert_eq!(tree(&fresh), fresh_before);
}

#[test]
fn restore_refuses_to_delete_through_a_symlink() {
    let w = World::new();
    let pkg = w.path("pkg");
    install(&pkg);
    let before = snapshot(&pkg).expect("snapshot");
    fs::remove_file(pkg.join("lib/old.js")).expect("rm");
    let store = w.store();
    let key = inputs().key();
    stored(store.put(&key, &pkg, &before, b"{}").expect("put"));

    let outside = w.path("elsewhere");
    write(&outside, "old.js", b"must survive\n", 0o644);
    let fresh = w.path("fresh");
    install(&fresh);
    fs::remove_dir_all(fresh.join("lib")).expect("rm");
    symlink(&outside, fresh.join("lib")).expect("symlink");
    let hit = store.get(&key).expect("get").into_hit().expect("hit");
    assert_refused(hit.restore(&fresh), &fresh.join("lib"));
    assert_eq!(
        fs::read(outside.join("old.js")).expect("read"),
        b"must survive\n"
    );
}

#[test]
fn restore_replaces_a_planted_symlink_at_a_file_path_without_following_it() {
    let w = World::new();
    let (store, key, outside) = plant_target(&w);
    let fresh = w.path("fresh");
    install(&fresh);
    // `binding.gyp` is rewritten by the script; a link there must be replaced, not written
    // through.
    fs::remove_file(fresh.join("binding.gyp")).expect("rm");
    symlink(outside.join("marker"), fresh.join("binding.gyp")).expect("symlink");
    let outside_before = tree(&outside);
    let hit = store.get(&key).expect("get").into_hit().expect("hit");
    // `build/` is fine here; the restore succeeds.
    hit.restore(&fresh).expect("restore");
    assert_eq!(tree(&outside), outside_before);
    assert_eq!(tree(&fresh), tree(&w.path("pkg")));
}

#[test]
fn restore_never_writes_through_a_planted_hard_link() {
    let w = World::new();
    let (store, key, outside) = plant_target(&w);
    let fresh = w.path("fresh");
    install(&fresh);
    // `binding.gyp` is rewritten by the script; as a hard link to an outside file, writing it
    // in place would change that file.
    fs::remove_file(fresh.join("binding.gyp")).expect("rm");
    fs::hard_link(outside.join("marker"), fresh.join("binding.gyp")).expect("ln");
    let hit = store.get(&key).expect("get").into_hit().expect("hit");
    hit.restore(&fresh).expect("restore");
    assert_eq!(fs::read(outside.join("marker")).expect("read"), b"outside");
    assert_eq!(tree(&fresh), tree(&w.path("pkg")));
}

#[test]
fn restore_refuses_a_package_dir_that_is_a_symlink() {
    let w = World::new();
    let (store, key, _) = plant_target(&w);
    let fresh = w.path("fresh");
    install(&fresh);
    symlink(&fresh, w.path("link")).expect("symlink");
    let hit = store.get(&key).expect("get").into_hit().expect("hit");
    assert_refused(hit.restore(&w.path("link")), &w.path("link"));
}

#[test]
fn a_fifo_or_a_socket_makes_the_run_not_cacheable() {
    let w = World::new();
    let pkg = w.path("pkg");
    install(&pkg);
    let before = snapshot(&pkg).expect("snapshot");
    nix::unistd::mkfifo(&pkg.join("build.fifo"), nix::sys::stat::Mode::S_IRWXU).expect("mkfifo");
    let store = w.store();
    let key = inputs().key();
    match store.put(&key, &pkg, &before, b"{}").expect("put") {
        PutOutcome::NotCacheable { reason } => {
            assert!(
                reason.contains("FIFO") && reason.contains("build.fifo"),
                "{reason}"
            );
        }
        other => panic!("{other:?}"),
    }
    fs::remove_file(pkg.join("build.fifo")).expect("rm");
    let _listener = std::os::unix::net::UnixListener::bind(pkg.join("s")).expect("bind");
    match store.put(&key, &pkg, &before, b"{}").expect("put") {
        PutOutcome::NotCacheable { reason } => assert!(reason.contains("socket"), "{reason}"),
        other => panic!("{other:?}"),
    }
    assert!(store.list().expect("list").is_empty());
}

#[test]
fn a_symlink_to_a_secret_is_stored_as_a_link_and_never_read() {
    let w = World::new();
    let secret = w.path("home/.ssh/id_rsa");
    write(
        &w.path("home"),
        ".ssh/id_rsa",
        b"-----BEGIN OPENSSH PRIVATE KEY----- SECRET-MATERIAL",
        0o600,
    );
    let pkg = w.path("pkg");
    install(&pkg);
    let before = snapshot(&pkg).expect("snapshot");
    symlink(&secret, pkg.join("leak")).expect("symlink");
    symlink(w.path("home/.ssh"), pkg.join("ssh-dir")).expect("symlink");
    let store = w.store();
    let key = inputs().key();
    stored(store.put(&key, &pkg, &before, b"{}").expect("put"));
    let leaked = every_file_bytes(store.root())
        .into_iter()
        .any(|b| b.windows(15).any(|w| w == b"SECRET-MATERIAL"));
    assert!(!leaked, "the secret's contents are in the store");

    let hit = store.get(&key).expect("get").into_hit().expect("hit");
    assert!(hit.changes().contains(&Change::Symlink {
        path: "leak".to_owned(),
        target: secret.to_str().expect("utf-8").to_owned(),
    }));
    let fresh = w.path("fresh");
    install(&fresh);
    hit.restore(&fresh).expect("restore");
    assert_eq!(fs::read_link(fresh.join("leak")).expect("readlink"), secret);
    assert_eq!(tree(&fresh), tree(&pkg));
}

// ---------------------------------------------------------------------------------------------
// Limits
// ---------------------------------------------------------------------------------------------

#[test]
fn an_entry_over_the_size_cap_is_not_stored() {
    let w = World::new();
    let limits = Limits {
        max_entry_bytes: 1024,
        ..Limits::default()
    };
    let store = w.store_with(limits);
    let key = inputs().key();
    let pkg = w.path("pkg");
    install(&pkg);
    // Rewritten in place at the same size: only hashing finds out.
    write(&pkg, "a.bin", &[b'a'; 700], 0o644);
    write(&pkg, "b.bin", &[b'b'; 700], 0o644);
    let before = snapshot(&pkg).expect("snapshot");
    write(&pkg, "a.bin", &[b'A'; 700], 0o644);
    write(&pkg, "b.bin", &[b'B'; 700], 0o644);
    assert!(matches!(
        store.put(&key, &pkg, &before, b"{}").expect("put"),
        PutOutcome::TooLarge { limit: 1024, bytes } if bytes > 1024
    ));
    // A new file larger than the cap: found from the listing already.
    write(&pkg, "big.bin", &[0u8; 4096], 0o644);
    assert!(matches!(
        store.put(&key, &pkg, &before, b"{}").expect("put"),
        PutOutcome::TooLarge { limit: 1024, bytes } if bytes >= 4096
    ));
    assert!(store.list().expect("list").is_empty());
    assert!(matches!(store.get(&key).expect("get"), Lookup::Miss));
    // Nothing left behind in the staging area either.
    assert_eq!(fs::read_dir(store.temp_dir()).expect("tmp").count(), 0);
}

#[test]
fn an_incomplete_snapshot_is_not_cacheable() {
    let w = World::new();
    let pkg = w.path("pkg");
    install(&pkg);
    let limits = Limits {
        max_tree_entries: 3,
        ..Limits::default()
    };
    let before = snapshot_with_limits(&pkg, &limits).expect("snapshot");
    assert!(
        before
            .incomplete()
            .is_some_and(|r| r.contains("entry budget"))
    );
    let big = Limits {
        max_snapshot_file_bytes: 4,
        ..Limits::default()
    };
    let before_big = snapshot_with_limits(&pkg, &big).expect("snapshot");
    assert!(
        before_big
            .incomplete()
            .is_some_and(|r| r.contains("larger than 4 bytes"))
    );
    build(&pkg);
    let store = w.store();
    match store
        .put(&inputs().key(), &pkg, &before, b"{}")
        .expect("put")
    {
        PutOutcome::NotCacheable { reason } => assert!(reason.contains("incomplete"), "{reason}"),
        other => panic!("{other:?}"),
    }
    assert!(store.list().expect("list").is_empty());
}

fn put_distinct(w: &World, store: &Store, n: u8) -> Key {
    let pkg = w.path(&format!("pkg{n}"));
    fs::create_dir_all(&pkg).expect("mkdir");
    let before = snapshot(&pkg).expect("snapshot");
    write(&pkg, "out.bin", &[n; 2000], 0o644);
    let key = inputs().with("n", n.to_string()).key();
    stored(store.put(&key, &pkg, &before, b"{}").expect("put"));
    key
}

fn at(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
}

#[test]
fn prune_keeps_the_most_recently_used_within_the_budget() {
    let w = World::new();
    let store = w.store();
    let a = put_distinct(&w, &store, 1);
    let b = put_distinct(&w, &store, 2);
    let c = put_distinct(&w, &store, 3);
    store.touch(&a, at(1_000_000)).expect("touch");
    store.touch(&b, at(2_000_000)).expect("touch");
    store.touch(&c, at(3_000_000)).expect("touch");
    // `a` is used again: now the most recent.
    store.touch(&a, at(4_000_000)).expect("touch");
    let list = store.list().expect("list");
    assert_eq!(list.len(), 3);
    let size = |k: &Key| list.iter().find(|e| &e.key == k).expect("listed").bytes;
    assert!(size(&a) > 2000);
    assert_eq!(
        list.iter().find(|e| e.key == a).expect("a").last_used_ms,
        4_000_000_000
    );

    let report = store.prune(size(&a) + size(&c)).expect("prune");
    assert_eq!(report.removed, vec![b.clone()]);
    assert_eq!(report.kept, 2);
    assert_eq!(report.freed_bytes, size(&b));
    let mut left: Vec<Key> = store
        .list()
        .expect("list")
        .into_iter()
        .map(|e| e.key)
        .collect();
    left.sort();
    let mut want = vec![a.clone(), c.clone()];
    want.sort();
    assert_eq!(left, want);
    assert!(matches!(store.get(&b).expect("get"), Lookup::Miss));

    let report = store.prune(size(&a)).expect("prune");
    assert_eq!(report.removed, vec![c]);
    assert_eq!(store.prune(0).expect("prune").removed, vec![a]);
    assert!(store.list().expect("list").is_empty());
}

#[test]
fn a_hit_marks_the_entry_as_used() {
    let w = World::new();
    let store = w.store();
    let a = put_distinct(&w, &store, 1);
    store.touch(&a, at(1_000)).expect("touch");
    assert_eq!(store.list().expect("list")[0].last_used_ms, 1_000_000);
    assert!(matches!(store.get(&a).expect("get"), Lookup::Hit(_)));
    let used = store.list().expect("list")[0].last_used_ms;
    assert!(used + 60_000 > crate::util::now_unix_ms(), "{used}");
}

#[test]
fn clear_empties_the_store() {
    let w = World::new();
    let store = w.store();
    let a = put_distinct(&w, &store, 1);
    put_distinct(&w, &store, 2);
    assert_eq!(store.list().expect("list").len(), 2);
    assert_eq!(store.clear().expect("clear"), 2);
    assert!(store.list().expect("list").is_empty());
    assert!(matches!(store.get(&a).expect("get"), Lookup::Miss));
    assert_eq!(store.clear().expect("clear"), 0);
}

// ---------------------------------------------------------------------------------------------
// The store's root
// ---------------------------------------------------------------------------------------------

#[test]
fn the_root_is_created_private() {
    let w = World::new();
    let store = w.store();
    for dir in [
        store.root(),
        &w.path("cache/ringfence"),
        &store.root().join("v1"),
    ] {
        assert_eq!(
            fs::metadata(dir).expect("stat").mode() & 0o777,
            0o700,
            "{}",
            dir.display()
        );
    }
}

fn refused_root(result: Result<Store, CacheError>, what: &str) {
    match result {
        Err(CacheError::UnsafeRoot { why, .. }) => assert!(why.contains(what), "{why}"),
        other => panic!("expected a refusal ({what}), got {other:?}"),
    }
}

#[test]
fn an_unsafe_root_is_refused() {
    let w = World::new();
    let real = w.path("real");
    fs::create_dir(&real).expect("mkdir");
    symlink(&real, w.path("link")).expect("symlink");
    refused_root(Store::open(&w.path("link")), "symbolic link");

    let shared = w.path("shared");
    fs::create_dir(&shared).expect("mkdir");
    chmod(&shared, 0o777);
    refused_root(Store::open(&shared), "world-writable");
    chmod(&shared, 0o770);
    refused_root(Store::open(&shared), "group");
    chmod(&shared, 0o755);
    Store::open(&shared).expect("a private-enough root");

    let file = w.path("file");
    fs::File::create(&file)
        .expect("create")
        .write_all(b"x")
        .expect("write");
    refused_root(Store::open(&file), "not a directory");
}

// ---------------------------------------------------------------------------------------------
// Concurrency
// ---------------------------------------------------------------------------------------------

#[test]
fn two_concurrent_puts_of_one_key_both_succeed_and_one_wins() {
    let w = World::new();
    let pkg = w.path("pkg");
    install(&pkg);
    let before = snapshot(&pkg).expect("snapshot");
    build(&pkg);
    let store = w.store();
    let key = inputs().key();
    let barrier = std::sync::Barrier::new(2);
    let outcomes: Vec<PutOutcome> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..2)
            .map(|_| {
                s.spawn(|| {
                    barrier.wait();
                    store.put(&key, &pkg, &before, b"{\"outcome\":\"ok\"}")
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("thread").expect("put"))
            .collect()
    });
    let wins = outcomes
        .iter()
        .filter(|o| matches!(o, PutOutcome::Stored { .. }))
        .count();
    assert_eq!(wins, 1, "{outcomes:?}");
    assert!(
        outcomes.contains(&PutOutcome::AlreadyPresent),
        "{outcomes:?}"
    );
    let hit = store.get(&key).expect("get").into_hit().expect("hit");
    let fresh = w.path("fresh");
    install(&fresh);
    hit.restore(&fresh).expect("restore");
    assert_eq!(tree(&fresh), tree(&pkg));
    assert_eq!(
        fs::read_dir(store.temp_dir()).expect("tmp").count(),
        1,
        "only the hit's"
    );
}

#[test]
fn a_get_racing_with_prune_hits_completely_or_misses() {
    fn small(dir: &Path) {
        write(dir, "package.json", b"{}", 0o644);
        write(dir, "old.txt", b"old", 0o644);
    }
    let w = World::new();
    let pkg = w.path("pkg");
    small(&pkg);
    let before = snapshot(&pkg).expect("snapshot");
    write(&pkg, "build/out.bin", &[7u8; 64 * 1024], 0o755);
    write(&pkg, "build/b/c.txt", b"c", 0o644);
    symlink("out.bin", pkg.join("build/link")).expect("symlink");
    fs::remove_file(pkg.join("old.txt")).expect("rm");
    let want = tree(&pkg);
    let store = w.store();
    let key = inputs().key();
    let done = std::sync::atomic::AtomicBool::new(false);
    let (hits, misses) = std::thread::scope(|s| {
        s.spawn(|| {
            for _ in 0..40 {
                let outcome = store.put(&key, &pkg, &before, b"{}").expect("put");
                assert!(
                    matches!(
                        outcome,
                        PutOutcome::Stored { .. } | PutOutcome::AlreadyPresent
                    ),
                    "{outcome:?}"
                );
                store.prune(0).expect("prune");
            }
            done.store(true, std::sync::atomic::Ordering::SeqCst);
        });
        let (mut hits, mut misses) = (0, 0);
        while !done.load(std::sync::atomic::Ordering::SeqCst) {
            match store.get(&key).expect("get") {
                Lookup::Hit(hit) => {
                    let fresh = tempfile::tempdir().expect("tempdir");
                    small(fresh.path());
                    hit.restore(fresh.path()).expect("restore");
                    assert_eq!(tree(fresh.path()), want);
                    hits += 1;
                }
                Lookup::Miss => misses += 1,
                Lookup::Discarded { reason } => panic!("discarded in a race: {reason}"),
            }
        }
        (hits, misses)
    });
    assert!(hits + misses > 0);
}
