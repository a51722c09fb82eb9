//! Kernel capability probing (`ringfence doctor`) and the hints attached to setup failures.

use serde::Serialize;

use crate::sandbox::init::Step;
use crate::sys;

/// What the running kernel offers, read from sysctls and probes that need no privileges.
#[derive(Debug, Clone, Serialize)]
pub struct KernelFacts {
    /// `uname -r`.
    pub release: String,
    /// `kernel.unprivileged_userns_clone` (Debian/Ubuntu kernels only).
    pub unprivileged_userns_clone: Option<String>,
    /// `user.max_user_namespaces`.
    pub max_user_namespaces: Option<String>,
    /// `kernel.apparmor_restrict_unprivileged_userns` (Ubuntu ≥ 23.10).
    pub apparmor_restrict_unprivileged_userns: Option<String>,
    /// Landlock ABI, or why it is unavailable.
    pub landlock_abi: Result<i32, String>,
    /// `kernel/seccomp/actions_avail`.
    pub seccomp_actions: Option<String>,
}

fn sysctl(path: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
}

impl KernelFacts {
    /// Read the facts.
    pub fn read() -> Self {
        KernelFacts {
            release: nix::sys::utsname::uname()
                .map(|u| u.release().to_string_lossy().into_owned())
                .unwrap_or_default(),
            unprivileged_userns_clone: sysctl("/proc/sys/kernel/unprivileged_userns_clone"),
            max_user_namespaces: sysctl("/proc/sys/user/max_user_namespaces"),
            apparmor_restrict_unprivileged_userns: sysctl(
                "/proc/sys/kernel/apparmor_restrict_unprivileged_userns",
            ),
            landlock_abi: sys::landlock_abi_version().map_err(|e| match e.raw_os_error() {
                Some(libc::ENOSYS) => "not built into this kernel (needs Linux >= 5.13)".into(),
                Some(libc::EOPNOTSUPP) => {
                    "built in but disabled (add `landlock` to the `lsm=` boot parameter)".into()
                }
                _ => e.to_string(),
            }),
            seccomp_actions: sysctl("/proc/sys/kernel/seccomp/actions_avail"),
        }
    }

    /// Whether seccomp user notification is available (for the recorder).
    pub fn user_notif(&self) -> bool {
        self.seccomp_actions
            .as_deref()
            .is_some_and(|a| a.split_whitespace().any(|x| x == "user_notif"))
    }

    /// The most likely reason user namespaces cannot be used, and the fix.
    pub fn userns_cause(&self) -> Diagnosis {
        if self.unprivileged_userns_clone.as_deref() == Some("0") {
            return Diagnosis::new(
                "unprivileged user namespaces are disabled (`kernel.unprivileged_userns_clone = 0`)",
                "`sudo sysctl -w kernel.unprivileged_userns_clone=1` (persist it in /etc/sysctl.d/)",
            );
        }
        if self.max_user_namespaces.as_deref() == Some("0") {
            return Diagnosis::new(
                "user namespaces are disabled (`user.max_user_namespaces = 0`)",
                "`sudo sysctl -w user.max_user_namespaces=15000`",
            );
        }
        if self.apparmor_restrict_unprivileged_userns.as_deref() == Some("1") {
            return Diagnosis::new(
                "AppArmor restricts unprivileged user namespaces (`kernel.apparmor_restrict_unprivileged_userns = 1`, Ubuntu >= 23.10)",
                "see scripts/check-userns.sh; allow ringfence with an AppArmor profile granting `userns,` or set the sysctl to 0",
            );
        }
        if std::path::Path::new("/.dockerenv").exists()
            || std::path::Path::new("/run/.containerenv").exists()
        {
            return Diagnosis::new(
                "this looks like a container whose seccomp profile or missing privileges block namespace creation",
                "run the container with `--security-opt seccomp=unconfined --security-opt apparmor=unconfined` (Docker) or grant it user namespaces",
            );
        }
        Diagnosis::new(
            "the kernel refused to create a user namespace",
            "check `sysctl user.max_user_namespaces` and your container or LSM configuration (scripts/check-userns.sh)",
        )
    }
}

/// Why something failed and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnosis {
    /// The cause, as far as we can tell.
    pub cause: String,
    /// What the user can do.
    pub fix: String,
}

impl Diagnosis {
    fn new(cause: impl Into<String>, fix: impl Into<String>) -> Self {
        Diagnosis {
            cause: cause.into(),
            fix: fix.into(),
        }
    }
}

/// Cause and fix for a setup failure, where we can tell.
pub fn hint(step: Step, errno: Option<i32>, facts: &KernelFacts) -> Option<Diagnosis> {
    let denied = matches!(
        errno,
        Some(libc::EPERM | libc::EACCES | libc::ENOSPC | libc::EINVAL | libc::EUSERS)
    );
    match step {
        Step::Unshare | Step::MapIds if denied => {
            let d = facts.userns_cause();
            Some(Diagnosis::new(
                format!("user namespaces are not usable here: {}", d.cause),
                d.fix,
            ))
        }
        Step::MakeMountsPrivate | Step::MountRoot | Step::BuildRoot if denied => {
            let d = facts.userns_cause();
            Some(Diagnosis::new(
                format!(
                    "the user namespace was created but mounting inside it is denied: {}",
                    d.cause
                ),
                d.fix,
            ))
        }
        Step::Landlock => Some(Diagnosis::new(
            "the profile requires Landlock and this kernel cannot enforce it fully",
            "set `landlock = \"best-effort\"` under [enforcement] to run without it",
        )),
        Step::Seccomp => Some(Diagnosis::new(
            "the profile requires seccomp and the filter could not be installed",
            "set `seccomp = \"best-effort\"` under [enforcement] to run without it",
        )),
        _ => None,
    }
}
