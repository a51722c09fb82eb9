use crate::common::{TestContext, probe_results, require_probe, require_userns, show};

/// (probe, errno expected inside the sandbox)
const EXPECTED: &[(&str, &str)] = &[
    ("unshare", "EPERM"),
    ("setns", "EPERM"),
    ("mount", "EPERM"),
    ("umount2", "EPERM"),
    ("pivot_root", "EPERM"),
    ("chroot", "EPERM"),
    ("keyctl", "EPERM"),
    ("add_key", "EPERM"),
    ("request_key", "EPERM"),
    ("bpf", "EPERM"),
    ("perf_event_open", "EPERM"),
    ("userfaultfd", "EPERM"),
    ("ptrace", "EPERM"),
    ("process_vm_readv", "EPERM"),
    ("process_vm_writev", "EPERM"),
    ("init_module", "EPERM"),
    ("finit_module", "EPERM"),
    ("delete_module", "EPERM"),
    ("kexec_load", "EPERM"),
    ("kexec_file_load", "EPERM"),
    ("reboot", "EPERM"),
    ("swapon", "EPERM"),
    ("swapoff", "EPERM"),
    ("acct", "EPERM"),
    ("syslog", "EPERM"),
    ("quotactl", "EPERM"),
    ("open_by_handle_at", "EPERM"),
    ("name_to_handle_at", "EPERM"),
    ("move_pages", "EPERM"),
    ("mbind", "EPERM"),
    ("migrate_pages", "EPERM"),
    ("fanotify_init", "EPERM"),
    ("clone_newuser", "EPERM"),
    ("clone_newns", "EPERM"),
    ("clone_newnet", "EPERM"),
    ("personality_read_implies_exec", "EPERM"),
    ("tiocsti", "EPERM"),
    ("tiocsti_highbits", "EPERM"),
    ("tioclinux", "EPERM"),
    ("clone3", "ENOSYS"),
    ("io_uring_setup", "ENOSYS"),
    ("io_uring_enter", "ENOSYS"),
    ("io_uring_register", "ENOSYS"),
    ("open_tree", "ENOSYS"),
    ("move_mount", "ENOSYS"),
    ("fsopen", "ENOSYS"),
    ("fsconfig", "ENOSYS"),
    ("fsmount", "ENOSYS"),
    ("fspick", "ENOSYS"),
    ("mount_setattr", "ENOSYS"),
    ("open_tree_attr", "ENOSYS"),
    ("socket_vsock", "EAFNOSUPPORT"),
    ("socket_packet", "EAFNOSUPPORT"),
    ("socket_bluetooth", "EAFNOSUPPORT"),
    // Still allowed: ordinary programs need these.
    ("socket_unix", "ok"),
    ("socket_inet", "ok"),
    ("socket_inet6", "ok"),
    ("socket_netlink", "ok"),
    ("clone_plain", "ok"),
    ("personality_query", "ok"),
];

#[cfg(target_arch = "x86_64")]
const X86: &[(&str, &str)] = &[
    ("uselib", "EPERM"),
    ("iopl", "EPERM"),
    ("ioperm", "EPERM"),
    ("x32_getpid", "ENOSYS"),
];
#[cfg(not(target_arch = "x86_64"))]
const X86: &[(&str, &str)] = &[];

#[test]
fn every_deny_entry_returns_its_errno() {
    if !require_userns() {
        return;
    }
    let Some(probe) = require_probe() else {
        return;
    };
    let ctx = TestContext::new();
    let dir = probe.parent().unwrap().to_str().unwrap().to_string();
    let mut args = vec![probe.to_str().unwrap()];
    args.extend(EXPECTED.iter().chain(X86).map(|(n, _)| *n));
    let out = ctx.run(&["--ro", &dir], &args);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let got = probe_results(&out.stdout);
    let mut wrong = Vec::new();
    for (name, want) in EXPECTED.iter().chain(X86) {
        let have = got.get(*name).map(String::as_str).unwrap_or("<missing>");
        if have != *want {
            wrong.push(format!("{name}: expected {want}, got {have}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// The same probes outside the sandbox do *not* return these errnos, so the test above can fail.
#[test]
fn probes_are_not_refused_without_the_sandbox() {
    let Some(probe) = require_probe() else {
        return;
    };
    let out = std::process::Command::new(&probe)
        .args([
            "clone3",
            "io_uring_setup",
            "personality_read_implies_exec",
            "socket_inet",
            "tiocsti_highbits",
        ])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let got = probe_results(&out.stdout);
    assert_ne!(got["clone3"], "ENOSYS", "{got:?}");
    assert_ne!(got["io_uring_setup"], "ENOSYS", "{got:?}");
    assert_eq!(got["personality_read_implies_exec"], "ok", "{got:?}");
    assert_ne!(got["tiocsti_highbits"], "EPERM", "{got:?}");
}
