//! Size caps, incomplete snapshots, the store's root and concurrent installs.

use super::*;

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
