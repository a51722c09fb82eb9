//! seccomp deny filters: the table (pure data, part of the plan) and its compilation and
//! installation with `seccompiler` (in the sandboxed child, last step before `execve`).
//!
//! The default action of every filter is "allow": these are deny lists aimed at kernel attack
//! surface that install scripts never need. One filter per errno, because a seccompiler filter has
//! exactly one match action; the kernel runs all of them. Why each entry is here is in
//! `../shared/reference/sandbox-design.md` §4 and in the comments below.

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch, sock_filter,
};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::spec::Level;

/// A condition on one syscall argument. Several conditions in a rule are ANDed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "cmp")]
pub enum ArgCond {
    /// `(arg & mask) == mask`, on the low 32 bits.
    HasBits {
        /// Argument index.
        arg: u8,
        /// Bits that must all be set.
        mask: u32,
    },
    /// `arg == value` on the low 32 bits (ioctl request numbers: flatpak CVE-2019-10063).
    Eq32 {
        /// Argument index.
        arg: u8,
        /// Value.
        value: u32,
    },
    /// `(arg & mask) == value` on the low 32 bits (a socket's type without its flags).
    MaskedEq32 {
        /// Argument index.
        arg: u8,
        /// Bits compared.
        mask: u32,
        /// Value they must have.
        value: u32,
    },
    /// `arg != value` on the low 32 bits.
    Ne32 {
        /// Argument index.
        arg: u8,
        /// Value.
        value: u32,
    },
}

/// A syscall, optionally restricted by argument conditions. Rules for the same syscall are ORed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyscallRule {
    /// Syscall name, for reports and tests.
    pub name: String,
    /// Syscall number on the running architecture.
    pub nr: i64,
    /// ANDed conditions; empty means every call.
    pub when: Vec<ArgCond>,
}

/// One filter: every matching rule returns `errno`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FilterPlan {
    /// Short name used in reports ("privileged", "new-apis", "socket-families").
    pub name: String,
    /// errno returned on a match.
    pub errno: i32,
    /// Matching rules.
    pub rules: Vec<SyscallRule>,
}

/// All filters, installed in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeccompPlan {
    /// Required or best-effort.
    pub level: Level,
    /// Filters.
    pub filters: Vec<FilterPlan>,
}

/// Failures compiling or installing a filter.
#[derive(Debug, Error)]
pub enum SeccompError {
    /// seccompiler rejected the rule set.
    #[error("compiling seccomp filter `{filter}`")]
    Compile {
        /// Filter name.
        filter: String,
        /// Cause.
        #[source]
        source: seccompiler::BackendError,
    },
    /// The kernel refused the filter.
    #[error("installing seccomp filter `{filter}`")]
    Install {
        /// Filter name.
        filter: String,
        /// Cause.
        #[source]
        source: seccompiler::Error,
    },
}

macro_rules! rule {
    ($name:ident) => {
        SyscallRule {
            name: stringify!($name).to_string(),
            nr: libc::$name as i64,
            when: vec![],
        }
    };
    ($name:ident, $($cond:expr),+) => {
        SyscallRule {
            name: stringify!($name).to_string(),
            nr: libc::$name as i64,
            when: vec![$($cond),+],
        }
    };
}

/// Syscalls numbered after 2019 share one number on every architecture.
fn unified(name: &str, nr: i64) -> SyscallRule {
    SyscallRule {
        name: name.to_string(),
        nr,
        when: vec![],
    }
}

fn named(mut r: SyscallRule) -> SyscallRule {
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
    // without passing through seccomp; clone3 passes its flags in memory (CVE-2021-41133); the new
    // mount API would bypass the mount rules. ENOSYS makes libc and libuv fall back.
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
        unified("clone3", 435),
        unified("mount_setattr", 442),
        unified("open_tree_attr", 467),
    ];

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
/// filter refuses every other way out — UDP, raw, SCTP and other protocols over IPv4/IPv6, and
/// unix sockets (pathname sockets are not covered by Landlock; abstract ones are scoped anyway).
/// Netlink stays (`os.networkInterfaces()`), as in the full tier.
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
        // Every type but SOCK_STREAM (the low bits; SOCK_NONBLOCK/SOCK_CLOEXEC above them).
        for t in [
            libc::SOCK_DGRAM,
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
    FilterPlan {
        name: "host-network".into(),
        errno: libc::EACCES,
        rules,
    }
}

fn target_arch() -> TargetArch {
    #[cfg(target_arch = "x86_64")]
    {
        TargetArch::x86_64
    }
    #[cfg(target_arch = "aarch64")]
    {
        TargetArch::aarch64
    }
    #[cfg(target_arch = "riscv64")]
    {
        TargetArch::riscv64
    }
}

fn condition(c: &ArgCond) -> Result<SeccompCondition, seccompiler::BackendError> {
    match *c {
        ArgCond::HasBits { arg, mask } => SeccompCondition::new(
            arg,
            SeccompCmpArgLen::Dword,
            SeccompCmpOp::MaskedEq(u64::from(mask)),
            u64::from(mask),
        ),
        ArgCond::MaskedEq32 { arg, mask, value } => SeccompCondition::new(
            arg,
            SeccompCmpArgLen::Dword,
            SeccompCmpOp::MaskedEq(u64::from(mask)),
            u64::from(value),
        ),
        ArgCond::Eq32 { arg, value } => SeccompCondition::new(
            arg,
            SeccompCmpArgLen::Dword,
            SeccompCmpOp::Eq,
            u64::from(value),
        ),
        ArgCond::Ne32 { arg, value } => SeccompCondition::new(
            arg,
            SeccompCmpArgLen::Dword,
            SeccompCmpOp::Ne,
            u64::from(value),
        ),
    }
}

/// seccompiler's rule map for `rules`: conditional rules of one syscall are ORed; an
/// unconditional rule means "every call", which seccompiler spells as an empty rule list.
fn rule_map(
    rules: &[SyscallRule],
) -> Result<std::collections::BTreeMap<i64, Vec<SeccompRule>>, seccompiler::BackendError> {
    let mut map: std::collections::BTreeMap<i64, Vec<SeccompRule>> = Default::default();
    for rule in rules {
        let entry = map.entry(rule.nr).or_default();
        if !rule.when.is_empty() {
            let conds = rule
                .when
                .iter()
                .map(condition)
                .collect::<Result<Vec<_>, _>>()?;
            entry.push(SeccompRule::new(conds)?);
        }
    }
    for rule in rules {
        if rule.when.is_empty() {
            map.insert(rule.nr, vec![]);
        }
    }
    Ok(map)
}

/// Compile one filter to classic BPF (arch check first, as seccompiler emits it).
fn compile_one(filter: &FilterPlan) -> Result<BpfProgram, SeccompError> {
    let err = |source| SeccompError::Compile {
        filter: filter.name.clone(),
        source,
    };
    let map = rule_map(&filter.rules).map_err(err)?;
    let errno = u32::try_from(filter.errno).unwrap_or(libc::EPERM as u32);
    SeccompFilter::new(
        map,
        SeccompAction::Allow,
        SeccompAction::Errno(errno),
        target_arch(),
    )
    .map_err(err)?
    .try_into()
    .map_err(err)
}

const BPF_LD_W_ABS: u16 = 0x20;
const BPF_JMP_JA: u16 = 0x05;
const BPF_JMP_JGE_K: u16 = 0x05 | 0x30;
const BPF_RET_K: u16 = 0x06;
/// seccompiler's architecture check: load arch, jump-if-equal over the kill, kill.
const ARCH_CHECK_LEN: usize = 3;

/// Compile every filter of the plan into **one** BPF program.
///
/// seccompiler gives one match action per filter, and each installed filter costs the kernel a
/// separate BPF JIT at install time and a separate run on every syscall. So the filters are
/// compiled separately and chained: one architecture check, the x32 guard, then each filter's
/// body in order, where every "allow" return of a non-final body becomes a jump to the start of
/// the next body. Classic BPF jumps are relative and forward-only, so the bodies need no other
/// change, and each body starts by loading the syscall number itself.
pub fn compile(plan: &SeccompPlan) -> Result<BpfProgram, SeccompError> {
    let programs = plan
        .filters
        .iter()
        .map(compile_one)
        .collect::<Result<Vec<_>, _>>()?;
    let mut out: BpfProgram = match programs.first() {
        Some(p) => p[..ARCH_CHECK_LEN].to_vec(),
        None => return Ok(vec![]),
    };
    if cfg!(target_arch = "x86_64") {
        // seccompiler checks AUDIT_ARCH but not the x32 bit: with x32 enabled in the kernel,
        // `nr | 0x40000000` would match no rule. Refuse every x32 syscall.
        out.extend([
            sock_filter {
                code: BPF_LD_W_ABS,
                jt: 0,
                jf: 0,
                k: 0,
            },
            sock_filter {
                code: BPF_JMP_JGE_K,
                jt: 0,
                jf: 1,
                k: 0x4000_0000,
            },
            sock_filter {
                code: BPF_RET_K,
                jt: 0,
                jf: 0,
                k: libc::SECCOMP_RET_ERRNO | (libc::ENOSYS as u32),
            },
        ]);
    }
    let last = programs.len() - 1;
    for (i, program) in programs.iter().enumerate() {
        let body = &program[ARCH_CHECK_LEN..];
        for (j, ins) in body.iter().enumerate() {
            if i != last && ins.code == BPF_RET_K && ins.k == libc::SECCOMP_RET_ALLOW {
                out.push(sock_filter {
                    code: BPF_JMP_JA,
                    jt: 0,
                    jf: 0,
                    k: u32::try_from(body.len() - j - 1).unwrap_or(u32::MAX),
                });
            } else {
                out.push(ins.clone());
            }
        }
    }
    Ok(out)
}

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
/// listener is refused by the static `notification-listeners` group. (The new-API group stays a
/// static filter too: glibc tries `clone3` for every thread.)
pub const NOTIFIED_GROUPS: [&str; 2] = ["privileged", "socket-families"];

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
/// yet. It is closed at exec; a later socket reusing that number escapes only the recording.
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
    Ok(program)
}

/// Compile and install the plan as one filter. Returns how many rule groups it enforces.
pub fn install(plan: &SeccompPlan) -> Result<usize, SeccompError> {
    let program = compile(plan)?;
    seccompiler::apply_filter(&program).map_err(|source| SeccompError::Install {
        filter: "merged".into(),
        source,
    })?;
    Ok(plan.filters.len())
}

#[cfg(test)]
#[path = "seccomp_tests.rs"]
mod tests;
