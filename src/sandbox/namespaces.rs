//! Namespace creation and the uid/gid mapping.

use std::io;

use nix::sched::{CloneFlags, unshare};

/// Every namespace the sandbox gets. No cgroup namespace: no cgroup subtree is delegated to us.
pub fn flags() -> CloneFlags {
    CloneFlags::CLONE_NEWUSER
        | CloneFlags::CLONE_NEWNS
        | CloneFlags::CLONE_NEWPID
        | CloneFlags::CLONE_NEWNET
        | CloneFlags::CLONE_NEWIPC
        | CloneFlags::CLONE_NEWUTS
}

/// `unshare` all sandbox namespaces. The pid namespace applies to the next child.
pub fn enter() -> nix::Result<()> {
    unshare(flags())
}

/// Map the caller's own uid and gid to themselves (never to 0 for an unprivileged caller), after
/// denying `setgroups` as an unprivileged writer must. The process keeps the full capability set
/// the kernel gave it in the new user namespace, because it does not `execve` before the setup.
pub fn map_ids(uid: u32, gid: u32) -> io::Result<()> {
    std::fs::write("/proc/self/setgroups", "deny")?;
    std::fs::write("/proc/self/uid_map", format!("{uid} {uid} 1\n"))?;
    std::fs::write("/proc/self/gid_map", format!("{gid} {gid} 1\n"))?;
    Ok(())
}
