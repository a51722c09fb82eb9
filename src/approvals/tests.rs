use super::*;
use crate::observe::syscalls::Spawned;
use crate::report::tests::run;

fn built(name: &str, version: &str, extra: Vec<Finding>) -> ScriptRun {
    let mut r = run(name, "install", "ok", extra);
    let p = r.package.as_mut().unwrap();
    p.version = version.into();
    p.integrity = Some(format!("sha512-{version}"));
    r.cwd = format!("/h/app/node_modules/{name}").into();
    r.view.home = "/h".into();
    r.spawned = ["sh", "/usr/bin/node", "make", "cc1"]
        .iter()
        .map(|a| Spawned {
            argv: vec![a.to_string()],
            count: 1,
        })
        .collect();
    r
}

fn project() -> &'static Path {
    Path::new("/h/app")
}

fn present(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

fn approved(run: &ScriptRun) -> Lock {
    let mut lock = Lock::default();
    lock.approve(&[run], project());
    lock
}

#[test]
fn the_same_behaviour_in_a_new_version_carries_the_approval_over() {
    let lock = approved(&built("addon", "1.0.0", vec![]));
    let rec = &lock.packages["addon"].scripts["install"].behaviour;
    assert_eq!(
        rec.commands,
        present(&["cc1", "make", "node", "sh"]),
        "{rec:?}"
    );
    let mut runs = vec![built("addon", "1.0.1", vec![])];
    let v = judge(&lock, &mut runs, project(), &present(&["addon"]));
    assert!(v.changed.is_empty(), "{:?}", v.changed);
    assert_eq!(v.carried.len(), 1);
    assert_eq!(v.carried[0].from, vec!["1.0.0".to_string()]);
    let updated = v.updated.expect("the lock records the new version");
    assert!(updated.packages["addon"].versions.contains_key("1.0.1"));
    // The behaviour record itself is not widened by a carry-over.
    assert_eq!(updated.packages["addon"].scripts["install"].behaviour, *rec);
    assert!(runs[0].findings.is_empty());
}

#[test]
fn the_same_version_again_changes_nothing() {
    let lock = approved(&built("addon", "1.0.0", vec![]));
    let mut runs = vec![built("addon", "1.0.0", vec![])];
    let v = judge(&lock, &mut runs, project(), &present(&["addon"]));
    assert_eq!((v.within, v.carried.len(), v.changed.len()), (1, 0, 0));
    assert!(v.updated.is_none());
}

#[test]
fn a_new_host_and_a_secret_read_are_a_behaviour_change() {
    let lock = approved(&built("addon", "1.0.0", vec![]));
    let mut runs = vec![built(
        "addon",
        "1.0.2",
        vec![
            Finding::new(Code::DnsLookup, "lookup", "Exfil.Attacker.test"),
            Finding::new(Code::DecoyRead, "read", "/h/.npmrc"),
        ],
    )];
    let v = judge(&lock, &mut runs, project(), &present(&["addon"]));
    assert_eq!(v.changed.len(), 1);
    let grew = &v.changed[0].grew;
    assert_eq!(grew.network, present(&["exfil.attacker.test"]));
    assert_eq!(grew.secrets, present(&["~/.npmrc"]));
    assert!(grew.commands.is_empty());
    let f = runs[0]
        .findings
        .iter()
        .find(|f| f.code == Code::BehaviourChanged)
        .expect("a behaviour-changed finding");
    assert_eq!(f.severity, Severity::High);
    assert!(f.summary.contains("exfil.attacker.test") && f.summary.contains("~/.npmrc"));
    assert!(f.summary.contains("1.0.0"), "{}", f.summary);
    // A changed run is not carried over.
    assert!(v.updated.is_none());
}

#[test]
fn a_script_for_an_event_the_approval_lacks_is_a_change() {
    let lock = approved(&built("addon", "1.0.0", vec![]));
    let mut r = built("addon", "1.0.1", vec![]);
    r.package.as_mut().unwrap().event = "preinstall".into();
    let mut runs = vec![r];
    let v = judge(&lock, &mut runs, project(), &present(&["addon"]));
    assert_eq!(v.changed.len(), 1);
    assert!(
        v.changed[0].grew.describe().contains("preinstall"),
        "{:?}",
        v.changed[0].grew
    );
}

#[test]
fn approvals_matching_nothing_are_unused_and_unapproved_runs_are_left_alone() {
    let lock = approved(&built("gone", "1.0.0", vec![]));
    let mut runs = vec![built("other", "1.0.0", vec![])];
    let v = judge(&lock, &mut runs, project(), &present(&["other"]));
    assert_eq!(v.unused, vec!["gone".to_string()]);
    assert_eq!((v.within, v.carried.len(), v.changed.len()), (0, 0, 0));
    assert!(runs[0].findings.is_empty());
}

#[test]
fn run_specific_values_do_not_make_a_change() {
    // Survivors name pids, environ reads name /proc paths: the code alone is recorded.
    let mk = |pid: &str| {
        built(
            "addon",
            "1.0.0",
            vec![
                Finding::new(Code::Survivor, "left", pid),
                Finding::new(
                    Code::DnsTunnel,
                    "tunnel",
                    format!("{pid}abcdef.t.attacker.test"),
                ),
            ],
        )
    };
    let lock = approved(&mk("pid 7"));
    let mut runs = vec![mk("pid 9")];
    let v = judge(&lock, &mut runs, project(), &present(&["addon"]));
    assert!(v.changed.is_empty(), "{:?}", v.changed);
}

#[test]
fn the_lock_round_trips_sorted_and_rejects_what_it_does_not_know() {
    let dir = tempfile::tempdir().unwrap();
    let mut lock = approved(&built("b", "1.0.0", vec![]));
    lock.approve(&[&built("a", "2.0.0", vec![])], project());
    let path = lock.write(dir.path()).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        text.find("\"a\"").unwrap() < text.find("\"b\"").unwrap(),
        "{text}"
    );
    assert_eq!(Lock::read(dir.path()).unwrap(), Some(lock));

    std::fs::write(&path, "{\"version\": 1,\n \"packages\": {}, \"extra\": 1}").unwrap();
    let e = Lock::read(dir.path()).unwrap_err().to_string();
    assert!(e.contains(":2:") && e.contains("approvals-invalid"), "{e}");
    std::fs::write(&path, "{\"version\": 9, \"packages\": {}}").unwrap();
    let e = Lock::read(dir.path()).unwrap_err().to_string();
    assert!(e.contains("version 9"), "{e}");
    std::fs::remove_file(&path).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", &path).unwrap();
    let e = Lock::read(dir.path()).unwrap_err().to_string();
    assert!(e.contains("not a regular file"), "{e}");
    std::fs::remove_file(&path).unwrap();
    assert_eq!(Lock::read(dir.path()).unwrap(), None);
}
