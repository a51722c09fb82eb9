//! The deny table: which syscalls every sandbox refuses, grouped by the errno they get (pure
//! data, part of the plan). Why each entry is here is in `../shared/reference/sandbox-design.md`
//! §4 and in the comments below.

use super::{ArgCond, FilterPlan, Level, SeccompPlan, SyscallRule};

/// Syscalls numbered after 2019 share one number on every architecture.
pub(super) fn unified(name: &str, nr: i64) -> SyscallRule {
    SyscallRule {
        name: name.to_string(),
        nr,
        when: vec![],
    }
}

pub(super) fn named(mut r: SyscallRule) -> SyscallRule {
    r.name = r.name.trim_start_matches("SYS_").to_string();
    r
}

/// Namespace-creating clone flags; `clone` with any of them is refused.
const CLONE_NS_FLAGS: [u32; 8] = [
    libc::CLONE_NEWNS as u32,
    libc::CLONE_NEWCGROUP as u32,
    libc::CLONE_NEWUTS as u32,
    libc::CLONE_NEWIPC as u32,
    libc::CLONE_NEWUSER as u32,
    libc::CLONE_NEWPID as u32,
    libc::CLONE_NEWNET as u32,
    0x80, // CLONE_NEWTIME
];

/// `TIOCSTI` (CVE-2017-5226) and `TIOCLINUX` (CVE-2023-28100): terminal input injection.
const TIOCSTI: u32 = 0x5412;
const TIOCLINUX: u32 = 0x541C;

/// Socket families that install scripts legitimately use. NETLINK is needed by
/// `os.networkInterfaces()`; everything else (AF_VSOCK reaches the hypervisor, AF_PACKET, …) is
/// refused.
const ALLOWED_FAMILIES: [u32; 4] = [
    libc::AF_UNIX as u32,
    libc::AF_INET as u32,
    libc::AF_INET6 as u32,
    libc::AF_NETLINK as u32,
];

/// The default deny table.
pub fn deny_plan(level: Level) -> SeccompPlan {
    // Privileged kernel interfaces: namespaces, mounts, keyrings, bpf, tracing, modules, kexec,
    // NUMA page moves, handle-based opens. All return EPERM, as if the capability were missing.
    let mut privileged = vec![
        rule!(SYS_unshare),
        rule!(SYS_setns),
        rule!(SYS_mount),
        rule!(SYS_umount2),
        rule!(SYS_pivot_root),
        rule!(SYS_chroot),
        rule!(SYS_keyctl),
        rule!(SYS_add_key),
        rule!(SYS_request_key),
        rule!(SYS_bpf),
        rule!(SYS_perf_event_open),
        rule!(SYS_userfaultfd),
        rule!(SYS_ptrace),
        rule!(SYS_process_vm_readv),
        rule!(SYS_process_vm_writev),
        rule!(SYS_init_module),
        rule!(SYS_finit_module),
        rule!(SYS_delete_module),
        rule!(SYS_kexec_load),
        rule!(SYS_kexec_file_load),
        rule!(SYS_reboot),
        rule!(SYS_swapon),
        rule!(SYS_swapoff),
        rule!(SYS_acct),
        rule!(SYS_syslog),
        rule!(SYS_quotactl),
        rule!(SYS_vhangup),
        rule!(SYS_open_by_handle_at),
        rule!(SYS_name_to_handle_at),
        rule!(SYS_move_pages),
        rule!(SYS_mbind),
        rule!(SYS_migrate_pages),
        rule!(SYS_fanotify_init),
        rule!(
            SYS_ioctl,
            ArgCond::Eq32 {
                arg: 1,
                value: TIOCSTI
            }
        ),
        rule!(
            SYS_ioctl,
            ArgCond::Eq32 {
                arg: 1,
                value: TIOCLINUX
            }
        ),
        // Only the default persona and the query value: READ_IMPLIES_EXEC, ADDR_NO_RANDOMIZE
        // and friends weaken exploit mitigations.
        rule!(
            SYS_personality,
            ArgCond::Ne32 { arg: 0, value: 0 },
            ArgCond::Ne32 {
                arg: 0,
                value: 0xffff_ffff
            }
        ),
    ];
    #[cfg(target_arch = "x86_64")]
    privileged.extend([
        rule!(SYS_uselib),
        rule!(SYS_iopl),
        rule!(SYS_ioperm),
        rule!(SYS_quotactl_fd),
    ]);
    for flag in CLONE_NS_FLAGS {
        privileged.push(rule!(SYS_clone, ArgCond::HasBits { arg: 0, mask: flag }));
    }

    // Interfaces a classic-syscall filter cannot see into: io_uring runs opens and connects
    // without passing through seccomp; the new mount API would bypass the mount rules; clone3
    // passes its flags in memory (CVE-2021-41133). ENOSYS makes libc and libuv fall back.
    let new_apis = vec![
        unified("io_uring_setup", 425),
        unified("io_uring_enter", 426),
        unified("io_uring_register", 427),
        unified("open_tree", 428),
        unified("move_mount", 429),
        unified("fsopen", 430),
        unified("fsconfig", 431),
        unified("fsmount", 432),
        unified("fspick", 433),
        unified("mount_setattr", 442),
        unified("open_tree_attr", 467),
    ];
    // clone3 on its own: glibc tries it for every thread, so it is refused statically and never
    // notified (an attempt would be indistinguishable from a thread anyway).
    let clone3 = vec![unified("clone3", 435)];

    let families = vec![named(SyscallRule {
        name: "SYS_socket".into(),
        nr: libc::SYS_socket,
        when: ALLOWED_FAMILIES
            .iter()
            .map(|f| ArgCond::Ne32 { arg: 0, value: *f })
            .collect(),
    })];

    // A new notification listener: a script with its own USER_NOTIF filter would get the
    // notifications of ringfence's recorder (the kernel hands equal actions to the newest
    // filter), hide from it, and answer the deny-table calls the recorder enforces. Always
    // static, so it holds whatever else is notified.
    let listener = vec![named(rule!(
        SYS_seccomp,
        ArgCond::HasBits {
            arg: 1,
            mask: 1 << 3 // SECCOMP_FILTER_FLAG_NEW_LISTENER
        }
    ))];

    SeccompPlan {
        level,
        foreign_abis_notified: false,
        filters: vec![
            FilterPlan {
                name: "privileged".into(),
                errno: libc::EPERM,
                rules: privileged.into_iter().map(named).collect(),
            },
            FilterPlan {
                name: "new-apis".into(),
                errno: libc::ENOSYS,
                rules: new_apis,
            },
            FilterPlan {
                name: "clone3".into(),
                errno: libc::ENOSYS,
                rules: clone3,
            },
            FilterPlan {
                name: "socket-families".into(),
                errno: libc::EAFNOSUPPORT,
                rules: families,
            },
            FilterPlan {
                name: "notification-listeners".into(),
                errno: libc::EPERM,
                rules: listener,
            },
        ],
    }
}

/// The landlock tier has no network namespace: Landlock denies TCP bind and connect, and this
/// filter refuses every other way out — raw, SCTP and other protocols over IPv4/IPv6, unix
/// sockets and datagram socket pairs (pathname sockets are not covered by Landlock; abstract
/// ones are scoped anyway).
/// Netlink stays (`os.networkInterfaces()`), as in the full tier. UDP is [`host_datagram_filter`].
pub fn host_network_filter() -> FilterPlan {
    let socket = |when: Vec<ArgCond>| {
        named(SyscallRule {
            name: "SYS_socket".into(),
            nr: libc::SYS_socket,
            when,
        })
    };
    let unsigned = |v: i32| u32::try_from(v).unwrap_or(u32::MAX);
    let mut rules = vec![socket(vec![ArgCond::Eq32 {
        arg: 0,
        value: unsigned(libc::AF_UNIX),
    }])];
    for family in [libc::AF_INET, libc::AF_INET6] {
        let family = ArgCond::Eq32 {
            arg: 0,
            value: unsigned(family),
        };
        // Every type but SOCK_STREAM and SOCK_DGRAM (the low bits; SOCK_NONBLOCK/SOCK_CLOEXEC
        // above them).
        for t in [
            libc::SOCK_RAW,
            libc::SOCK_RDM,
            libc::SOCK_SEQPACKET,
            6,  // SOCK_DCCP
            10, // SOCK_PACKET
        ] {
            rules.push(socket(vec![
                family.clone(),
                ArgCond::MaskedEq32 {
                    arg: 1,
                    mask: 0xf,
                    value: unsigned(t),
                },
            ]));
        }
        // SOCK_STREAM with a protocol other than TCP (SCTP, MPTCP) is not what Landlock's TCP
        // rules cover.
        rules.push(socket(vec![
            family,
            ArgCond::Ne32 { arg: 2, value: 0 },
            ArgCond::Ne32 {
                arg: 2,
                value: unsigned(libc::IPPROTO_TCP),
            },
        ]));
    }
    // A datagram socket pair: its sends may name any pathname socket on the host (syslog's,
    // the journal's, a dev server's), which Landlock does not cover, and a check of the name in
    // memory would race. Stream and sequenced-packet pairs ignore or refuse a destination.
    rules.push(named(SyscallRule {
        name: "SYS_socketpair".into(),
        nr: libc::SYS_socketpair,
        when: vec![
            ArgCond::Eq32 {
                arg: 0,
                value: unsigned(libc::AF_UNIX),
            },
            ArgCond::MaskedEq32 {
                arg: 1,
                mask: 0xf,
                value: unsigned(libc::SOCK_DGRAM),
            },
        ],
    }));
    FilterPlan {
        name: "host-network".into(),
        errno: libc::EACCES,
        rules,
    }
}

/// UDP sockets in the landlock tier, which Landlock does not cover: refused (EACCES) — or, while
/// the recorder runs, notified, and the supervisor answers each with a socket of its own that
/// can reach only its sinkhole (see `observe::net::Redirect`). Without a supervisor the kernel
/// answers ENOSYS: still refused.
pub fn host_datagram_filter() -> FilterPlan {
    let unsigned = |v: i32| u32::try_from(v).unwrap_or(u32::MAX);
    let rules = [libc::AF_INET, libc::AF_INET6]
        .into_iter()
        .map(|family| {
            named(SyscallRule {
                name: "SYS_socket".into(),
                nr: libc::SYS_socket,
                when: vec![
                    ArgCond::Eq32 {
                        arg: 0,
                        value: unsigned(family),
                    },
                    ArgCond::MaskedEq32 {
                        arg: 1,
                        mask: 0xf,
                        value: unsigned(libc::SOCK_DGRAM),
                    },
                ],
            })
        })
        .collect();
    FilterPlan {
        name: "host-datagrams".into(),
        errno: libc::EACCES,
        rules,
    }
}
