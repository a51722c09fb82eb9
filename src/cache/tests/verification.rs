//! Every entry is verified before use: corrupted, missing or forged parts are discarded.

use super::*;

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
