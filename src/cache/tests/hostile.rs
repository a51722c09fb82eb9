//! What the sandbox left in a package directory never redirects a restore.

use super::*;

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
