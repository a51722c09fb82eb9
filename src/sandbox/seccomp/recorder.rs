//! The recorder's side of seccomp: what it is notified of, the deny groups it answers itself
//! (so that every attempt is seen), and another ABI's syscalls, which it refuses by
//! architecture before any number is looked up.

use seccompiler::{BpfProgram, SeccompAction, SeccompFilter};

use super::table::{named, unified};
use super::{
    ARCH_CHECK_LEN, ArgCond, BPF_RET_K, FilterPlan, SeccompError, SeccompPlan, SyscallRule,
    rule_map, target_arch, x32_guard,
};

/// Syscalls the recorder is notified of (CONTINUE only: it observes, never decides). `sendto`
/// only with a destination address.
///
/// `open`/`openat` are notified only when their flags ask for writing: a native build opens tens
/// of thousands of headers read-only, and notifying those cost 7.7% of a build here (measured with
/// scripts/bench-record); reads of decoy secrets are seen through their access times instead.
/// The syscalls the recorder is notified of. `reads`: every open (forensic); otherwise only
/// opens that ask for writing (a native build opens thousands of files read-only; notifying
/// them cost 7.7% of its time).
pub fn recorder_rules(reads: bool) -> Vec<SyscallRule> {
    // O_WRONLY, O_RDWR, O_CREAT, O_TRUNC, O_APPEND: any of them makes an open a write attempt.
    // O_NOATIME and O_PATH: opens the decoys' access times do not show (a read with O_NOATIME
    // leaves the atime alone; O_PATH reads nothing but finds the file), so the recorder must
    // see them; builds do not use them.
    const WRITE_BITS: [u32; 7] = [0o1, 0o2, 0o100, 0o1000, 0o2000, 0o1_000_000, 0o10_000_000];
    let mut v = vec![
        unified("openat2", 437),
        rule!(SYS_mkdirat),
        rule!(SYS_unlinkat),
        rule!(SYS_execve),
        rule!(SYS_execveat),
        rule!(SYS_connect),
        // Links: across the sandbox's mounts the supervisor answers with a copy.
        rule!(SYS_linkat),
    ];
    if reads {
        v.push(rule!(SYS_openat));
    } else {
        for bit in WRITE_BITS {
            v.push(rule!(SYS_openat, ArgCond::HasBits { arg: 2, mask: bit }));
        }
    }
    #[cfg(target_arch = "x86_64")]
    {
        v.extend([
            rule!(SYS_creat),
            rule!(SYS_mkdir),
            rule!(SYS_unlink),
            rule!(SYS_link),
        ]);
        if reads {
            v.push(rule!(SYS_open));
        } else {
            for bit in WRITE_BITS {
                v.push(rule!(SYS_open, ArgCond::HasBits { arg: 1, mask: bit }));
            }
        }
    }
    v.into_iter().map(named).collect()
}

/// Deny groups that, while the recorder runs, are enforced through it so that every attempt is
/// seen: their syscalls are notified and the supervisor answers with the group's errno. If the
/// supervisor is gone the kernel answers ENOSYS: still refused. Nobody else can answer: the
/// kernel would hand the notification to the newest filter with a listener, and creating a
/// listener is refused by the static `notification-listeners` group. (`clone3` stays a static
/// filter: glibc tries it for every thread.) `host-datagrams` (the landlock tier's UDP sockets)
/// is answered with a socket that reaches only the supervisor's sinkhole.
pub const NOTIFIED_GROUPS: [&str; 4] = [
    "privileged",
    "new-apis",
    "socket-families",
    "host-datagrams",
];

/// Split `plan` into the groups a recorder enforces by notification and the rest.
pub fn split_for_recorder(plan: &SeccompPlan) -> (SeccompPlan, Vec<FilterPlan>) {
    let (notified, rest): (Vec<FilterPlan>, Vec<FilterPlan>) = plan
        .filters
        .iter()
        .cloned()
        .partition(|f| NOTIFIED_GROUPS.contains(&f.name.as_str()));
    (
        SeccompPlan {
            level: plan.level,
            filters: rest,
            foreign_abis_notified: true,
        },
        notified,
    )
}

/// The answer for each notified deny syscall: number → (name, errno).
pub fn denial_table(groups: &[FilterPlan]) -> std::collections::BTreeMap<i64, (String, i32)> {
    groups
        .iter()
        .flat_map(|g| {
            g.rules
                .iter()
                .map(move |r| (r.nr, (r.name.clone(), g.errno)))
        })
        .collect()
}

/// Compile the recorder's filter: matching syscalls return `SECCOMP_RET_USER_NOTIF`. seccompiler
/// has no such action in 0.5, so the filter is compiled with a sentinel TRACE value that is then
/// rewritten (and `sendto` with a destination is added the same way).
///
/// `channel_fd` is the sandbox's own channel to the supervisor: its `sendmsg` (which carries the
/// listener itself) must not be notified, or it would wait for a supervisor that has no listener
/// yet. Its number is at or above the sandbox's NOFILE limit (`proc::channel_above_nofile`),
/// so no descriptor of the command can have it: the exemption covers the channel alone.
pub fn compile_recorder(
    reads: bool,
    denials: &[FilterPlan],
    channel_fd: u32,
) -> Result<BpfProgram, SeccompError> {
    const SENTINEL: u32 = 0x1234;
    let mut rules = recorder_rules(reads);
    rules.extend(denials.iter().flat_map(|g| g.rules.iter().cloned()));
    rules.push(named(SyscallRule {
        name: "SYS_sendto".into(),
        nr: libc::SYS_sendto,
        when: vec![ArgCond::Ne32 { arg: 4, value: 0 }],
    }));
    // Datagrams with a destination (libuv sends UDP with sendmsg/sendmmsg); the address is in
    // memory, so every call is notified and the recorder looks.
    let not_channel = ArgCond::Ne32 {
        arg: 0,
        value: channel_fd,
    };
    rules.push(named(rule!(SYS_sendmsg, not_channel.clone())));
    rules.push(named(rule!(SYS_sendmmsg, not_channel)));
    if denials.iter().any(|g| g.name == "host-datagrams") {
        // The UDP sockets handed out in the landlock tier are socket pairs, on which the C
        // library's resolver could not enable ICMP error reports (it gives up without them) and
        // libuv could not bind the local address it binds before a first send: the supervisor
        // answers both on them.
        rules.push(named(rule!(SYS_bind)));
        for (level, option) in [
            (libc::SOL_IP, libc::IP_RECVERR),
            (libc::SOL_IPV6, libc::IPV6_RECVERR),
        ] {
            let arg = |arg, v: i32| ArgCond::Eq32 {
                arg,
                value: u32::try_from(v).unwrap_or(u32::MAX),
            };
            rules.push(named(rule!(SYS_setsockopt, arg(1, level), arg(2, option))));
        }
    }
    let err = |source| SeccompError::Compile {
        filter: "recorder".into(),
        source,
    };
    let map = rule_map(&rules).map_err(err)?;
    let mut program: BpfProgram = SeccompFilter::new(
        map,
        SeccompAction::Allow,
        SeccompAction::Trace(SENTINEL),
        target_arch(),
    )
    .map_err(err)?
    .try_into()
    .map_err(err)?;
    for ins in &mut program {
        if ins.code == BPF_RET_K && ins.k == (libc::SECCOMP_RET_TRACE | SENTINEL) {
            ins.k = libc::SECCOMP_RET_USER_NOTIF;
        }
    }
    // Every syscall of another ABI is notified (the static program lets them through to us,
    // see `compile`): the supervisor refuses each and records it. seccompiler's own check
    // (which would kill) then sees only the native architecture.
    let mut foreign = program[..ARCH_CHECK_LEN].to_vec();
    match foreign.get_mut(ARCH_CHECK_LEN - 1) {
        Some(ret) if ret.code == BPF_RET_K => ret.k = libc::SECCOMP_RET_USER_NOTIF,
        _ => {
            return Err(SeccompError::Layout(
                "seccompiler's architecture check changed shape".into(),
            ));
        }
    }
    if cfg!(target_arch = "x86_64") {
        foreign.extend(x32_guard(libc::SECCOMP_RET_USER_NOTIF));
    }
    foreign.extend(program);
    Ok(foreign)
}

/// Whether a notified syscall belongs to another ABI than the one the filters were written
/// for, and then its name as the report gives it (`i386:20`, `x32:39`): it is refused whatever
/// its number means natively.
pub fn foreign_abi(arch: u32, nr: i32) -> Option<String> {
    const AUDIT_ARCH_X86_64: u32 = 0xC000_003E;
    const AUDIT_ARCH_I386: u32 = 0x4000_0003;
    const AUDIT_ARCH_AARCH64: u32 = 0xC000_00B7;
    const AUDIT_ARCH_ARM: u32 = 0x4000_0028;
    const AUDIT_ARCH_RISCV64: u32 = 0xC000_00F3;
    let native = if cfg!(target_arch = "x86_64") {
        AUDIT_ARCH_X86_64
    } else if cfg!(target_arch = "aarch64") {
        AUDIT_ARCH_AARCH64
    } else {
        AUDIT_ARCH_RISCV64
    };
    let nr_bits = u32::from_ne_bytes(nr.to_ne_bytes());
    if arch == native {
        return (cfg!(target_arch = "x86_64") && nr_bits >= 0x4000_0000)
            .then(|| format!("x32:{}", nr_bits - 0x4000_0000));
    }
    Some(match arch {
        AUDIT_ARCH_I386 => format!("i386:{nr}"),
        AUDIT_ARCH_ARM => format!("arm:{nr}"),
        other => format!("arch-{other:#x}:{nr}"),
    })
}
