//! Tests of the hardened reader against hostile trees.

use super::*;
use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::Instant;

use nix::fcntl::{OFlag, open, openat};
use nix::sys::stat::{Mode, mkdirat};
use std::os::unix::fs::{PermissionsExt, symlink};
use std::sync::mpsc;
use std::time::Duration;

fn all(_: &Path) -> bool {
    true
}

fn find<'a>(w: &'a Walk, rel: &str) -> &'a Entry {
    w.entries
        .iter()
        .find(|e| e.rel == Path::new(rel))
        .unwrap_or_else(|| panic!("{rel} not listed in {:?}", w.entries))
}

/// Runs `f` on a thread with a 256 KiB stack and fails if it takes longer than `secs`.
fn small_stack<T: Send + 'static>(secs: u64, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .stack_size(256 * 1024)
        .spawn(move || {
            let _ = tx.send(f());
        })
        .expect("spawn");
    rx.recv_timeout(Duration::from_secs(secs))
        .expect("worker finished in time")
}

/// `base/d/d/d/...` `depth` levels deep, built fd-relative (the path is far beyond PATH_MAX).
fn make_deep(base: &Path, depth: usize) {
    std::fs::create_dir(base).expect("mkdir");
    let mut fd = open(base, OFlag::O_RDONLY | OFlag::O_DIRECTORY, Mode::empty()).expect("open");
    for _ in 0..depth {
        mkdirat(&fd, "d", Mode::S_IRWXU).expect("mkdirat");
        fd = openat(
            &fd,
            "d",
            OFlag::O_RDONLY | OFlag::O_DIRECTORY,
            Mode::empty(),
        )
        .expect("openat");
    }
    std::fs::write(base.join("top-file"), b"x").expect("write");
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

#[test]
fn symlink_out_of_root_is_listed_not_followed() {
    let outside = tempfile::tempdir().expect("tempdir");
    std::fs::write(outside.path().join("id_rsa"), b"SECRET").expect("write");
    std::fs::write(outside.path().join("other"), b"x").expect("write");
    let root = tempfile::tempdir().expect("tempdir");
    let r = root.path();
    symlink(outside.path().join("id_rsa"), r.join("key")).expect("symlink");
    symlink(outside.path(), r.join("home")).expect("symlink");
    symlink("/dev/zero", r.join("zero")).expect("symlink");

    let w = walk(r, &Budget::default(), &all).expect("walk");
    let key = find(&w, "key");
    assert_eq!(key.kind, Kind::Symlink);
    assert_eq!(
        key.link_target.as_deref(),
        Some(outside.path().join("id_rsa").as_path())
    );
    assert_eq!(find(&w, "home").kind, Kind::Symlink);
    assert_eq!(
        find(&w, "zero").link_target.as_deref(),
        Some(Path::new("/dev/zero"))
    );
    assert_eq!(
        w.entries.len(),
        3,
        "nothing listed through the directory symlink"
    );
    assert_eq!(w.truncated, None);

    assert_eq!(read_file(r, Path::new("key"), 1 << 20).expect("read"), None);
    assert_eq!(
        read_file(r, Path::new("zero"), 1 << 20).expect("read"),
        None
    );
    assert_eq!(
        read_file(r, Path::new("home/id_rsa"), 1 << 20).expect("read"),
        None
    );
    assert_eq!(
        read_file(r, Path::new("home/other"), 1 << 20).expect("read"),
        None
    );
}

#[test]
fn root_symlink_and_bad_rel_paths_are_rejected() {
    let root = tempfile::tempdir().expect("tempdir");
    let r = root.path();
    std::fs::create_dir(r.join("real")).expect("mkdir");
    std::fs::write(r.join("real/f"), b"hello").expect("write");
    symlink(r.join("real"), r.join("link")).expect("symlink");
    assert!(walk(&r.join("link"), &Budget::default(), &all).is_err());
    assert!(read_file(&r.join("link"), Path::new("f"), 10).is_err());
    for bad in ["../real/f", "/etc/passwd", "", "real/../real/f"] {
        let err = read_file(r, Path::new(bad), 10).expect_err(bad);
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{bad}");
    }
    assert_eq!(
        read_file(r, Path::new("real/f"), 10).expect("read"),
        Some((b"hello".to_vec(), false))
    );
    assert_eq!(
        read_file(r, Path::new("./real/f"), 3).expect("read"),
        Some((b"hel".to_vec(), true))
    );
    assert_eq!(
        read_file(r, Path::new("real/missing"), 3)
            .expect_err("missing")
            .kind(),
        io::ErrorKind::NotFound
    );
    assert_eq!(read_file(r, Path::new("real"), 3).expect("dir"), None);
}

#[test]
fn fifo_socket_and_odd_names_never_block() {
    let root = tempfile::tempdir().expect("tempdir");
    let r = root.path().to_path_buf();
    nix::unistd::mkfifo(&r.join("fifo"), Mode::S_IRWXU).expect("mkfifo");
    let _sock = std::os::unix::net::UnixListener::bind(r.join("sock")).expect("bind");
    let odd = OsStr::from_bytes(b"a\nb\x1b[31m\x7f");
    std::fs::write(r.join(odd), b"odd").expect("write");
    std::fs::write(r.join("f"), b"data").expect("write");
    std::fs::hard_link(r.join("f"), r.join("f2")).expect("link");

    let result = small_stack(20, move || {
        let w = walk(&r, &Budget::default(), &all).expect("walk");
        let fifo = read_file(&r, Path::new("fifo"), 100).expect("read fifo");
        let sock = read_file(&r, Path::new("sock"), 100).expect("read sock");
        let odd = read_file(&r, Path::new(OsStr::from_bytes(b"a\nb\x1b[31m\x7f")), 100)
            .expect("read odd");
        (w, fifo, sock, odd)
    });
    let (w, fifo, sock, odd) = result;
    assert_eq!(find(&w, "fifo").kind, Kind::Fifo);
    assert_eq!(find(&w, "sock").kind, Kind::Socket);
    assert_eq!(find(&w, "f").nlink, 2);
    assert_eq!(find(&w, "f").ino, find(&w, "f2").ino);
    assert_eq!(fifo, None);
    assert_eq!(sock, None);
    assert_eq!(odd, Some((b"odd".to_vec(), false)));
    let names: Vec<_> = w.entries.iter().map(|e| e.rel.clone()).collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted, "entries sorted by name");
}

#[test]
fn sparse_huge_file_is_read_up_to_max() {
    let root = tempfile::tempdir().expect("tempdir");
    let f = File::create(root.path().join("huge")).expect("create");
    f.set_len(10 << 30).expect("set_len");
    let start = Instant::now();
    let (data, truncated) = read_file(root.path(), Path::new("huge"), 1 << 20)
        .expect("read")
        .expect("regular file");
    assert_eq!(data.len(), 1 << 20);
    assert!(truncated);
    assert!(start.elapsed() < Duration::from_secs(5));
    let w = walk(root.path(), &Budget::default(), &all).expect("walk");
    assert_eq!(find(&w, "huge").size, 10 << 30);
}

#[test]
fn deep_tree_walk_respects_depth_and_removal_needs_no_recursion() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let base = tmp.path().join("deep");
    make_deep(&base, 20_000);
    let b = base.clone();
    let (w, removal) = small_stack(300, move || {
        let w = walk(&b, &Budget::default(), &all).expect("walk");
        let removal = remove_tree(&b).expect("remove");
        (w, removal)
    });
    assert_eq!(w.entries.len(), 65, "64 levels plus top-file");
    assert!(w.entries.iter().all(|e| e.rel.components().count() <= 64));
    let reason = w.truncated.expect("truncated");
    assert!(reason.contains("depth limit 64"), "{reason}");
    assert_eq!(removal.left, Vec::<PathBuf>::new());
    assert_eq!(removal.removed, 20_002);
    assert!(!base.exists());
}

#[test]
fn deep_walk_beyond_fd_cap_is_iterative_and_fd_bounded() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let base = tmp.path().join("deep");
    make_deep(&base, 3_000);
    let b = base.clone();
    let (w, max_fds) = small_stack(300, move || {
        let max_fds = std::sync::atomic::AtomicUsize::new(0);
        let budget = Budget {
            max_depth: 10_000,
            ..Budget::default()
        };
        let count = |rel: &Path| {
            if rel.components().count() % 500 == 0 {
                let n = std::fs::read_dir("/proc/self/fd").map_or(0, Iterator::count);
                max_fds.fetch_max(n, Ordering::Relaxed);
            }
            true
        };
        let w = walk(&b, &budget, &count).expect("walk");
        (w, max_fds.into_inner())
    });
    assert_eq!(w.truncated, None);
    assert_eq!(w.entries.len(), 3_001);
    // Other tests run concurrently in this process; 3 000 levels would need 3 000 fds.
    assert!(max_fds < 1_000, "{max_fds} descriptors open");
    assert_eq!(
        remove_tree(&base).expect("remove").left,
        Vec::<PathBuf>::new()
    );
}

#[test]
fn locked_directories_are_listed_restored_and_removed() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let r = tmp.path().join("tree");
    std::fs::create_dir_all(r.join("locked/sub")).expect("mkdir");
    std::fs::write(r.join("locked/a"), b"a").expect("write");
    std::fs::write(r.join("locked/sub/b"), b"b").expect("write");
    std::fs::create_dir(r.join("readonly")).expect("mkdir");
    std::fs::write(r.join("readonly/c"), b"c").expect("write");
    std::fs::create_dir(r.join("noexec")).expect("mkdir");
    std::fs::write(r.join("noexec/d"), b"d").expect("write");
    chmod(&r.join("locked/sub"), 0o000);
    chmod(&r.join("locked"), 0o000);
    chmod(&r.join("readonly"), 0o500);
    chmod(&r.join("noexec"), 0o400);

    let w = walk(&r, &Budget::default(), &all).expect("walk");
    assert_eq!(w.unreadable, Vec::<PathBuf>::new());
    assert_eq!(find(&w, "locked").mode & 0o777, 0);
    find(&w, "locked/a");
    find(&w, "locked/sub/b");
    find(&w, "noexec/d");
    let mode = |p: &str| {
        std::fs::symlink_metadata(r.join(p))
            .expect("stat")
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode("locked"), 0o000, "mode restored");
    assert_eq!(mode("noexec"), 0o400, "mode restored");

    let removal = remove_tree(&r).expect("remove");
    assert_eq!(removal.left, Vec::<PathBuf>::new());
    assert_eq!(removal.removed, 9);
    assert!(!r.exists());
}

#[test]
fn remove_tree_unlinks_symlinks_not_targets() {
    let outside = tempfile::tempdir().expect("tempdir");
    std::fs::write(outside.path().join("keep"), b"k").expect("write");
    let tmp = tempfile::tempdir().expect("tempdir");
    let r = tmp.path().join("tree");
    std::fs::create_dir(&r).expect("mkdir");
    symlink(outside.path(), r.join("home")).expect("symlink");
    symlink(outside.path().join("keep"), r.join("keep")).expect("symlink");
    let top_link = tmp.path().join("toplink");
    symlink(outside.path(), &top_link).expect("symlink");

    assert_eq!(remove_tree(&top_link).expect("remove").removed, 1);
    assert_eq!(remove_tree(&r).expect("remove").removed, 3);
    assert!(outside.path().join("keep").exists());
    let gone = remove_tree(&tmp.path().join("never-existed")).expect("remove");
    assert_eq!(gone, Removal::default());
    assert!(remove_tree(Path::new("/")).is_err());
}

#[test]
fn entry_budget_and_deadline_truncate() {
    let root = tempfile::tempdir().expect("tempdir");
    for i in 0..100 {
        std::fs::write(root.path().join(format!("f{i:03}")), b"").expect("write");
    }
    let budget = Budget {
        max_entries: 10,
        ..Budget::default()
    };
    let w = walk(root.path(), &budget, &all).expect("walk");
    assert_eq!(w.entries.len(), 10);
    assert!(
        w.truncated
            .expect("truncated")
            .contains("entry budget of 10")
    );

    let past = Budget {
        deadline: Some(Instant::now()),
        ..Budget::default()
    };
    let w = walk(root.path(), &past, &all).expect("walk");
    assert!(w.entries.is_empty());
    assert!(w.truncated.expect("truncated").contains("deadline"));
}

#[test]
fn descend_callback_prunes() {
    let root = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(root.path().join("node_modules/x")).expect("mkdir");
    std::fs::create_dir_all(root.path().join("src/y")).expect("mkdir");
    let w = walk(root.path(), &Budget::default(), &|rel: &Path| {
        rel != Path::new("node_modules")
    })
    .expect("walk");
    find(&w, "node_modules");
    find(&w, "src/y");
    assert!(
        w.entries
            .iter()
            .all(|e| e.rel != Path::new("node_modules/x"))
    );
    assert_eq!(w.truncated, None);
}

#[test]
fn copy_tree_keeps_symlinks_and_skips_special_files() {
    let src = tempfile::tempdir().expect("tempdir");
    let s = src.path();
    std::fs::create_dir(s.join("dir")).expect("mkdir");
    std::fs::write(s.join("dir/small"), b"small").expect("write");
    std::fs::write(s.join("big"), vec![7u8; 10_000]).expect("write");
    chmod(&s.join("dir/small"), 0o4755);
    symlink("/home/user/.ssh/id_rsa", s.join("dir/key")).expect("symlink");
    nix::unistd::mkfifo(&s.join("fifo"), Mode::S_IRWXU).expect("mkfifo");
    let dst = tempfile::tempdir().expect("tempdir");
    let to = dst.path().join("copy");
    let budget = Budget {
        max_file_bytes: 4_096,
        ..Budget::default()
    };

    let w = copy_tree(s, &to, &budget).expect("copy");
    assert_eq!(
        std::fs::read_link(to.join("dir/key")).expect("readlink"),
        Path::new("/home/user/.ssh/id_rsa")
    );
    assert_eq!(std::fs::read(to.join("dir/small")).expect("read"), b"small");
    let small_mode = std::fs::metadata(to.join("dir/small"))
        .expect("stat")
        .permissions()
        .mode();
    assert_eq!(small_mode & 0o7777, 0o755, "setuid dropped");
    assert_eq!(std::fs::read(to.join("big")).expect("read").len(), 4_096);
    assert_eq!(w.truncated_files, vec![PathBuf::from("big")]);
    assert_eq!(find(&w, "fifo").kind, Kind::Fifo);
    assert!(
        std::fs::symlink_metadata(to.join("fifo")).is_err(),
        "FIFO not created"
    );
    assert_eq!(w.truncated, None);

    // The destination must be empty.
    assert!(copy_tree(s, &to, &budget).is_err());

    let total = Budget {
        max_total_bytes: 100,
        ..Budget::default()
    };
    let w = copy_tree(s, &dst.path().join("copy2"), &total).expect("copy");
    assert!(
        w.truncated
            .expect("truncated")
            .contains("total byte budget")
    );
}

/// Slow: `cargo test --lib untrusted -- --ignored remove_100k`.
#[test]
#[ignore = "slow"]
fn remove_100k_deep() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let base = tmp.path().join("deep");
    make_deep(&base, 100_000);
    let b = base.clone();
    let removal = small_stack(600, move || remove_tree(&b).expect("remove"));
    assert_eq!(removal.left, Vec::<PathBuf>::new());
    assert_eq!(removal.removed, 100_002);
    assert!(!base.exists());
}

/// Needs root in a private mount namespace:
/// `unshare -m --propagation private <test binary> --ignored mount_points`.
#[test]
#[ignore = "needs root in a private mount namespace"]
fn mount_points_are_not_crossed() {
    use nix::mount::{MsFlags, mount};
    let tmp = tempfile::tempdir().expect("tempdir");
    let r = tmp.path().join("tree");
    std::fs::create_dir_all(r.join("tmpfs")).expect("mkdir");
    std::fs::create_dir_all(r.join("bind")).expect("mkdir");
    let host = tmp.path().join("host");
    std::fs::create_dir(&host).expect("mkdir");
    std::fs::write(host.join("precious"), b"p").expect("write");
    mount(
        Some("tmpfs"),
        &r.join("tmpfs"),
        Some("tmpfs"),
        MsFlags::empty(),
        None::<&str>,
    )
    .expect("mount tmpfs");
    std::fs::write(r.join("tmpfs/inner"), b"i").expect("write");
    // Same filesystem as the tree: only openat2's RESOLVE_NO_XDEV can tell.
    mount(
        Some(&host),
        &r.join("bind"),
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .expect("bind mount");

    let w = walk(&r, &Budget::default(), &all).expect("walk");
    find(&w, "tmpfs");
    find(&w, "bind");
    assert_eq!(w.entries.len(), 2, "{:?}", w.entries);
    assert_eq!(
        read_file(&r, Path::new("bind/precious"), 10).expect("read"),
        None
    );
    assert_eq!(
        read_file(&r, Path::new("tmpfs/inner"), 10).expect("read"),
        None
    );

    let removal = remove_tree(&r).expect("remove");
    assert!(
        host.join("precious").exists(),
        "removal went through a bind mount"
    );
    assert!(
        r.join("tmpfs/inner").exists(),
        "removal went into another filesystem"
    );
    assert_eq!(removal.left.len(), 2, "{:?}", removal.left);
    nix::mount::umount(&r.join("bind")).expect("umount");
    nix::mount::umount(&r.join("tmpfs")).expect("umount");
    assert_eq!(remove_tree(&r).expect("remove").left, Vec::<PathBuf>::new());
}

/// `stat` describes what is there without following it: a link as a link (with its target),
/// nothing through a linked directory, and a missing name as NotFound.
#[test]
fn stat_never_follows() {
    let t = tempfile::tempdir().unwrap();
    let r = t.path();
    std::fs::create_dir(r.join("d")).unwrap();
    std::fs::write(r.join("d/f"), "x").unwrap();
    std::os::unix::fs::symlink("/etc/passwd", r.join("link")).unwrap();
    std::os::unix::fs::symlink("/etc", r.join("dirlink")).unwrap();
    let f = stat(r, Path::new("d/f")).unwrap().unwrap();
    assert_eq!((f.kind, f.size), (Kind::File, 1));
    let l = stat(r, Path::new("link")).unwrap().unwrap();
    assert_eq!(l.kind, Kind::Symlink);
    assert_eq!(l.link_target.as_deref(), Some(Path::new("/etc/passwd")));
    assert!(stat(r, Path::new("dirlink/passwd")).unwrap().is_none());
    assert_eq!(
        stat(r, Path::new("d/missing")).unwrap_err().kind(),
        std::io::ErrorKind::NotFound
    );
}
