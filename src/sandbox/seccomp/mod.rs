//! seccomp deny filters: the table (`table.rs`, pure data, part of the plan), the recorder's
//! side (`recorder.rs`), and here their compilation and installation with `seccompiler` (in the
//! sandboxed child, last step before `execve`).
//!
//! The default action of every filter is "allow": these are deny lists aimed at kernel attack
//! surface that install scripts never need. One group per errno, because a seccompiler filter
//! has exactly one match action; the groups are chained into one program.

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
    /// Syscalls of another ABI (i386 through `int 0x80`, x32) are left to the recorder, which
    /// refuses and records each; otherwise this program refuses them with ENOSYS. Set only on
    /// the static half of [`split_for_recorder`], inside the sandbox (never serialised).
    #[serde(skip)]
    pub foreign_abis_notified: bool,
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
    /// A program did not have the shape this code rewrites (a seccompiler upgrade).
    #[error("building the seccomp program: {0}")]
    Layout(String),
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

mod recorder;
mod table;

pub use recorder::{
    NOTIFIED_GROUPS, compile_recorder, denial_table, foreign_abi, recorder_rules,
    split_for_recorder,
};
pub use table::{deny_plan, host_datagram_filter, host_network_filter};

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
    // Another ABI's syscall numbers mean other calls, which no body below may judge: seccompiler
    // kills the process on an architecture mismatch. Refuse it with ENOSYS instead — or let the
    // recorder's program refuse it and see it (its notification wins over this "allow"; and
    // without a supervisor the kernel answers a notification with ENOSYS).
    let foreign = if plan.foreign_abis_notified {
        libc::SECCOMP_RET_ALLOW
    } else {
        libc::SECCOMP_RET_ERRNO | (libc::ENOSYS as u32)
    };
    match out.get_mut(ARCH_CHECK_LEN - 1) {
        Some(ret) if ret.code == BPF_RET_K => ret.k = foreign,
        _ => {
            return Err(SeccompError::Layout(
                "seccompiler's architecture check changed shape".into(),
            ));
        }
    }
    if cfg!(target_arch = "x86_64") {
        // seccompiler checks AUDIT_ARCH but not the x32 bit: with x32 enabled in the kernel,
        // `nr | 0x40000000` would match no rule.
        out.extend(x32_guard(foreign));
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

/// x86_64's x32 syscalls (`nr | 0x40000000`) return `action`.
fn x32_guard(action: u32) -> [sock_filter; 3] {
    [
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
            k: action,
        },
    ]
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
mod tests;
