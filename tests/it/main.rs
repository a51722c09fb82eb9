//! The one integration-test binary: every test runs the real `ringfence` binary.
//!
//! Sandbox tests skip loudly when user namespaces are unavailable and fail instead under
//! `RINGFENCE_TEST_MUST_WORK=1` (CI). CI runs this binary as root and again as an unprivileged
//! user.

#[path = "../../tests/common/mod.rs"]
mod common;

/// Attack fixtures: contained, and reported with attribution.
mod attacks;
/// The build cache of sandboxed script outputs.
mod cache;
/// Argument errors, exit codes, `doctor`.
mod cli;
/// `install`/`ci` against plain npm on fixture packages from a loopback registry.
mod install;
/// Approvals bound to behaviour, allowlists, `--only-approved`.
mod policy;
/// JSON report contract.
mod replay;
mod report;
/// Filesystem view: writable and read-only paths, HOME, /tmp, /etc, other users' files.
mod sandbox_fs;
/// Network isolation against listeners on the host's loopback.
mod sandbox_net;
/// Credentials, pid namespace, timeout, survivors, descriptors, rlimits, terminal.
mod sandbox_proc;
/// Every seccomp deny entry returns its errno.
mod seccomp;
/// What users see, pinned (insta).
mod snapshots;
/// The landlock tier (no namespaces).
mod tier;
