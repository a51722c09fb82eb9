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
    /// `Seccomp:` of `/proc/self/status`: 2 when a filter already confines ringfence itself
    /// (a container runtime's default profile, systemd's SystemCallFilter).
    pub seccomp_mode: Option<String>,
    /// What the kernel shows of a container around us (from `/proc/self/mountinfo`), if any.
    pub container: Option<String>,
}

/// What happens without user namespaces, the start of every such fix.
const LANDLOCK: &str = "unless `--require-tier full` is given, ringfence runs here in its landlock tier (no namespaces; `ringfence doctor` shows it)";

/// Evidence of a container runtime in our own mount table: the runtimes mask `/proc` entries
/// (`/proc/kcore`, `/proc/keys`, `/proc/acpi`…) with their own mounts, and run from an overlay
/// root. Marker files (`/.dockerenv`) are not evidence: anyone can create or omit them.
fn container_evidence(mountinfo: &str) -> Option<String> {
    let mut masked = Vec::new();
    let mut overlay_root = false;
    for line in mountinfo.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        let Some(point) = fields.get(4) else { continue };
        let fstype = line
            .split(" - ")
            .nth(1)
            .and_then(|r| r.split(' ').next())
            .unwrap_or("");
        if *point == "/" && fstype == "overlay" {
            overlay_root = true;
        }
        if [
            "/proc/kcore",
            "/proc/keys",
            "/proc/timer_list",
            "/proc/acpi",
            "/proc/scsi",
        ]
        .contains(point)
        {
            masked.push(*point);
        }
    }
    match (masked.is_empty(), overlay_root) {
        (false, _) => Some(format!(
            "the container runtime's masks over {} in /proc/self/mountinfo",
            masked.join(", ")
        )),
        (true, true) => Some("an overlay root filesystem in /proc/self/mountinfo".into()),
        (true, false) => None,
    }
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
            seccomp_mode: std::fs::read_to_string("/proc/self/status")
                .ok()
                .and_then(|s| {
                    s.lines()
                        .find_map(|l| l.strip_prefix("Seccomp:"))
                        .map(|v| v.trim().to_string())
                }),
            container: std::fs::read_to_string("/proc/self/mountinfo")
                .ok()
                .and_then(|m| container_evidence(&m)),
        }
    }

    /// Whether seccomp user notification is available (for the recorder).
    pub fn user_notif(&self) -> bool {
        self.seccomp_actions
            .as_deref()
            .is_some_and(|a| a.split_whitespace().any(|x| x == "user_notif"))
    }

    /// The most likely reason user namespaces cannot be used, and the fix. Inside a container a
    /// sysctl is never the fix (it is the host's, and the container cannot set it).
    pub fn userns_cause(&self) -> Diagnosis {
        let filtered = self.seccomp_mode.as_deref() == Some("2");
        if let Some(evidence) = &self.container {
            let why = if filtered {
                "a seccomp filter already confines this process (`Seccomp: 2`), as a container runtime's default profile does, and it refuses namespace creation"
            } else {
                "the container's runtime does not allow namespace creation"
            };
            return Diagnosis::new(
                format!("this is a container ({evidence}); {why}"),
                format!(
                    "{LANDLOCK}. For the full tier the container must be allowed to create user namespaces: Docker/podman `--security-opt seccomp=<profile>` with a profile that also allows unshare, setns and clone with namespace flags (`seccomp=unconfined` works too, but drops the runtime's syscall filter for everything in the container); Kubernetes: a Localhost seccompProfile like that. Avoid `--privileged` and `systempaths=unconfined`: they expose the host's /proc/sys"
                ),
            );
        }
        if self.unprivileged_userns_clone.as_deref() == Some("0") {
            return Diagnosis::new(
                "unprivileged user namespaces are disabled (`kernel.unprivileged_userns_clone = 0`)",
                format!(
                    "{LANDLOCK}; for the full tier: `sudo sysctl -w kernel.unprivileged_userns_clone=1` (persist it in /etc/sysctl.d/)"
                ),
            );
        }
        if self.max_user_namespaces.as_deref() == Some("0") {
            return Diagnosis::new(
                "user namespaces are disabled (`user.max_user_namespaces = 0`)",
                format!(
                    "{LANDLOCK}; for the full tier: `sudo sysctl -w user.max_user_namespaces=15000`"
                ),
            );
        }
        if self.apparmor_restrict_unprivileged_userns.as_deref() == Some("1") {
            return Diagnosis::new(
                "AppArmor restricts unprivileged user namespaces (`kernel.apparmor_restrict_unprivileged_userns = 1`, Ubuntu >= 23.10)",
                format!(
                    "{LANDLOCK}; for the full tier: `sudo ringfence setup apparmor` installs and loads an AppArmor profile granting this binary `userns` (as Ubuntu ships for bwrap; nothing else is confined or relaxed)"
                ),
            );
        }
        if filtered {
            return Diagnosis::new(
                "a seccomp filter already confines this process (`Seccomp: 2` in /proc/self/status) and refuses namespace creation",
                format!(
                    "{LANDLOCK}; for the full tier, allow unshare, setns and clone with namespace flags in the filter that starts ringfence (a container runtime's profile, systemd's SystemCallFilter)"
                ),
            );
        }
        Diagnosis::new(
            "the kernel refused to create a user namespace",
            format!(
                "{LANDLOCK}; for the full tier check `sysctl user.max_user_namespaces` and your container or LSM configuration (scripts/check-userns.sh)"
            ),
        )
    }
}

impl KernelFacts {
    /// Why mounting is refused inside a user namespace that *was* created, and the fix. In a
    /// container that allowed the namespace (podman's default profile allows `unshare`), the
    /// namespace cause would be wrong: the kernel refuses a fresh `/proc` in a user namespace
    /// while parts of the visible one are covered, and every runtime masks some of `/proc`.
    pub fn mounts_denied_cause(&self, step: Step) -> Diagnosis {
        const CREATED: &str = "the user namespace was created but mounting inside it is denied";
        let Some(evidence) = &self.container else {
            let d = self.userns_cause();
            return Diagnosis::new(format!("{CREATED}: {}", d.cause), d.fix);
        };
        if step == Step::BuildRoot {
            return Diagnosis::new(
                format!(
                    "{CREATED}: this is a container ({evidence}); its runtime masks parts of /proc, and Linux refuses a fresh /proc (the pid namespace needs one) in a user namespace while any part of the visible /proc is covered"
                ),
                format!(
                    "{LANDLOCK}. The full tier needs a container whose /proc is not masked, which runtimes give only with options that also expose the host's kernel interfaces (`--privileged`, Docker's `--security-opt systempaths=unconfined`, podman's `--security-opt unmask=ALL`): the landlock tier is the one to use here"
                ),
            );
        }
        Diagnosis::new(
            format!(
                "{CREATED}: this is a container ({evidence}); its runtime does not allow mounting there"
            ),
            format!(
                "{LANDLOCK}; for the full tier the runtime must allow mounts in a user namespace"
            ),
        )
    }
}

impl KernelFacts {
    /// Why `sethostname` is refused in a uts namespace that was created (we hold
    /// CAP_SYS_ADMIN there): a syscall filter, as podman's default profile is for a container
    /// without CAP_SYS_ADMIN (seen under `--security-opt unmask=ALL`, where the root builds).
    pub fn hostname_denied_cause(&self) -> Diagnosis {
        let by = if self.seccomp_mode.as_deref() == Some("2") {
            "a seccomp filter already confines this process (`Seccomp: 2`) and refuses `sethostname`, as podman's default profile does for a container without CAP_SYS_ADMIN"
        } else {
            "the kernel refused `sethostname` in the new uts namespace"
        };
        Diagnosis::new(
            format!("the namespaces were created and the root was built, but {by}"),
            format!(
                "{LANDLOCK}; for the full tier the filter that starts ringfence must also allow sethostname (the full tier never runs with the host's hostname)"
            ),
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
            Some(facts.mounts_denied_cause(step))
        }
        Step::SetHostname if errno == Some(libc::EPERM) => Some(facts.hostname_denied_cause()),
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

#[cfg(test)]
mod container_tests {
    use super::{KernelFacts, Step, container_evidence, hint};

    fn podman_like() -> KernelFacts {
        KernelFacts {
            release: "6.18".into(),
            unprivileged_userns_clone: None,
            max_user_namespaces: Some("15000".into()),
            apparmor_restrict_unprivileged_userns: None,
            landlock_abi: Ok(7),
            seccomp_actions: None,
            seccomp_mode: Some("2".into()),
            container: Some("the container runtime's masks over /proc/keys".into()),
        }
    }

    /// podman's default profile allows `unshare`; what fails is the fresh /proc. The diagnosis
    /// must not say the namespace was refused, nor send the user to a seccomp profile.
    #[test]
    fn a_container_that_allows_user_namespaces_is_told_about_proc() {
        let d = hint(Step::BuildRoot, Some(libc::EPERM), &podman_like()).unwrap();
        assert!(d.cause.contains("masks parts of /proc"), "{d:?}");
        assert!(!d.cause.contains("refuses namespace creation"), "{d:?}");
        assert!(!d.fix.contains("seccomp=<profile>"), "{d:?}");
        assert!(d.fix.contains("landlock tier"), "{d:?}");
        // Outside a container, the namespace causes as before.
        let host = KernelFacts {
            container: None,
            ..podman_like()
        };
        let d = hint(Step::BuildRoot, Some(libc::EPERM), &host).unwrap();
        assert!(
            d.cause.starts_with("the user namespace was created"),
            "{d:?}"
        );
    }

    /// podman's default profile refuses `sethostname` without CAP_SYS_ADMIN.
    #[test]
    fn a_refused_hostname_names_the_filter() {
        let d = hint(Step::SetHostname, Some(libc::EPERM), &podman_like()).unwrap();
        assert!(d.cause.contains("refuses `sethostname`"), "{d:?}");
        assert!(d.fix.contains("allow sethostname"), "{d:?}");
    }

    #[test]
    fn containers_are_told_by_their_mount_table() {
        let docker = "589 510 0:52 / / rw,relatime master:300 - overlay overlay rw,lowerdir=/x\n\
                      611 590 0:55 /null /proc/kcore rw,nosuid - tmpfs tmpfs rw\n";
        assert!(container_evidence(docker).unwrap().contains("/proc/kcore"));
        let host = "29 1 252:0 / / rw,relatime shared:1 - ext4 /dev/vda rw\n";
        assert_eq!(container_evidence(host), None);
    }
}
