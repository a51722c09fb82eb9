//! Tests of `seccomp`.

use super::*;

#[test]
fn recorder_takes_the_privileged_and_socket_groups_only() {
    let plan = deny_plan(Level::Required);
    let (rest, notified) = split_for_recorder(&plan);
    let names = |v: &[FilterPlan]| v.iter().map(|f| f.name.clone()).collect::<Vec<_>>();
    assert_eq!(
        names(&rest.filters),
        vec!["new-apis", "notification-listeners"]
    );
    assert_eq!(names(&notified), vec!["privileged", "socket-families"]);
    let table = denial_table(&notified);
    assert_eq!(
        table.get(&libc::SYS_unshare),
        Some(&("unshare".into(), libc::EPERM))
    );
    assert_eq!(
        table.get(&libc::SYS_socket),
        Some(&("socket".into(), libc::EAFNOSUPPORT))
    );
    // Nothing the recorder lets through is answered with an error.
    for r in recorder_rules(true) {
        assert!(
            !table.contains_key(&r.nr),
            "{} is both recorded and denied",
            r.name
        );
    }
    // The recorder program compiles with the denials in it.
    assert!(compile_recorder(false, &notified, 3).unwrap().len() > 10);
}

#[test]
fn merged_program_has_one_arch_check_x32_guard_and_chained_bodies() {
    let plan = deny_plan(Level::Required);
    let p = compile(&plan).unwrap();
    if cfg!(target_arch = "x86_64") {
        assert_eq!(p[4].k, 0x4000_0000, "x32 guard");
    }
    let allows = p
        .iter()
        .filter(|i| i.code == BPF_RET_K && i.k == libc::SECCOMP_RET_ALLOW)
        .count();
    let last_alone = compile_one(plan.filters.last().unwrap()).unwrap();
    let last_allows = last_alone
        .iter()
        .filter(|i| i.code == BPF_RET_K && i.k == libc::SECCOMP_RET_ALLOW)
        .count();
    // Only the final body may still return "allow"; the others jump onwards.
    assert_eq!(allows, last_allows);
    // Every jump stays inside the program.
    for (pc, i) in p.iter().enumerate() {
        if i.code == BPF_JMP_JA {
            assert!(pc + 1 + (i.k as usize) < p.len());
        }
    }
    assert!(p.len() < 4096);
}

#[test]
fn table_covers_the_issue_list() {
    let plan = deny_plan(Level::Required);
    let names = |i: usize| -> Vec<String> {
        plan.filters[i]
            .rules
            .iter()
            .map(|r| r.name.clone())
            .collect()
    };
    let eperm = names(0);
    for n in [
        "unshare",
        "setns",
        "mount",
        "keyctl",
        "bpf",
        "ptrace",
        "perf_event_open",
        "userfaultfd",
        "kexec_load",
        "init_module",
        "ioctl",
        "clone",
    ] {
        assert!(eperm.iter().any(|x| x == n), "{n} not in EPERM filter");
    }
    let enosys = names(1);
    for n in [
        "io_uring_setup",
        "clone3",
        "open_tree",
        "fsopen",
        "move_mount",
    ] {
        assert!(enosys.iter().any(|x| x == n), "{n} not in ENOSYS filter");
    }
    assert_eq!(plan.filters[2].errno, libc::EAFNOSUPPORT);
    assert_eq!(plan.filters[2].rules[0].when.len(), 4);
}
