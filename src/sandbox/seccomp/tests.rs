//! Tests of `seccomp`.

use super::*;

#[test]
fn recorder_takes_the_notified_groups_and_clone3_stays_static() {
    let plan = deny_plan(Level::Required);
    let (rest, notified) = split_for_recorder(&plan);
    let names = |v: &[FilterPlan]| v.iter().map(|f| f.name.clone()).collect::<Vec<_>>();
    assert_eq!(
        names(&rest.filters),
        vec!["clone3", "notification-listeners"]
    );
    assert_eq!(
        names(&notified),
        vec!["privileged", "new-apis", "socket-families"]
    );
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
    let enosys = [names(1), names(2)].concat();
    for n in [
        "io_uring_setup",
        "clone3",
        "open_tree",
        "fsopen",
        "move_mount",
    ] {
        assert!(enosys.iter().any(|x| x == n), "{n} not in ENOSYS filter");
    }
    assert_eq!(plan.filters[3].errno, libc::EAFNOSUPPORT);
    assert_eq!(plan.filters[3].rules[0].when.len(), 4);
}

/// Another ABI's syscalls are refused by the static program (ENOSYS, not a kill) — or, when
/// the recorder takes them, let through by it and notified by the recorder's program, so the
/// supervisor refuses and records each. The supervisor knows them by architecture and bit 30.
#[test]
fn foreign_abis_are_refused_or_notified_never_judged_by_native_numbers() {
    let plan = deny_plan(Level::Required);
    let ret = |p: &[sock_filter], at: usize| (p[at].code, p[at].k);
    let p = compile(&plan).unwrap();
    let enosys = libc::SECCOMP_RET_ERRNO | (libc::ENOSYS as u32);
    assert_eq!(ret(&p, ARCH_CHECK_LEN - 1), (BPF_RET_K, enosys));
    let (rest, notified) = split_for_recorder(&plan);
    assert!(rest.foreign_abis_notified);
    let p = compile(&rest).unwrap();
    assert_eq!(
        ret(&p, ARCH_CHECK_LEN - 1),
        (BPF_RET_K, libc::SECCOMP_RET_ALLOW)
    );
    let r = compile_recorder(false, &notified, 3).unwrap();
    assert_eq!(
        ret(&r, ARCH_CHECK_LEN - 1),
        (BPF_RET_K, libc::SECCOMP_RET_USER_NOTIF)
    );
    if cfg!(target_arch = "x86_64") {
        assert_eq!(p[4].k, 0x4000_0000, "x32 guard");
        assert_eq!(ret(&p, 5), (BPF_RET_K, libc::SECCOMP_RET_ALLOW));
        assert_eq!(r[4].k, 0x4000_0000, "x32 guard");
        assert_eq!(ret(&r, 5), (BPF_RET_K, libc::SECCOMP_RET_USER_NOTIF));
        let x86_64 = 0xC000_003E;
        assert_eq!(foreign_abi(x86_64, 39), None);
        assert_eq!(foreign_abi(x86_64, 0x4000_0027).as_deref(), Some("x32:39"));
        assert_eq!(foreign_abi(0x4000_0003, 310).as_deref(), Some("i386:310"));
    }
}
