//! Dropping every capability and locking the securebits, so that nothing the command executes can
//! regain privileges inside the user namespace (not even as uid 0 there, when the caller is root).

use std::io;

use caps::CapSet;

use crate::sys;

/// Lock securebits (needs `CAP_SETPCAP`, so first), then clear the bounding, ambient,
/// inheritable, effective and permitted sets, then check nothing is left permitted.
pub fn drop_all() -> io::Result<()> {
    // Without CAP_SETPCAP (an ordinary user in the landlock tier, which has no user namespace)
    // there are no securebits or bounding-set entries to lock or drop, and nothing permitted to
    // regain: no_new_privs already blocks setuid gains. Clear the sets and check.
    let setpcap = caps::has_cap(None, CapSet::Effective, caps::Capability::CAP_SETPCAP)
        .map_err(|e| io::Error::other(format!("reading capabilities: {e}")))?;
    if setpcap {
        lock_and_drop_bounding()?;
    }
    for set in [
        CapSet::Ambient,
        CapSet::Inheritable,
        CapSet::Effective,
        CapSet::Permitted,
    ] {
        caps::clear(None, set)
            .map_err(|e| io::Error::other(format!("clearing capability set {set:?}: {e}")))?;
    }
    let left = caps::read(None, CapSet::Permitted)
        .map_err(|e| io::Error::other(format!("reading permitted capabilities: {e}")))?;
    if !left.is_empty() {
        return Err(io::Error::other(format!(
            "capabilities still permitted after dropping: {left:?}"
        )));
    }
    Ok(())
}

/// Lock securebits (needs CAP_SETPCAP), then drop the whole bounding set.
fn lock_and_drop_bounding() -> io::Result<()> {
    sys::set_securebits(
        sys::SECBIT_NOROOT
            | sys::SECBIT_NOROOT_LOCKED
            | sys::SECBIT_NO_SETUID_FIXUP
            | sys::SECBIT_NO_SETUID_FIXUP_LOCKED
            | sys::SECBIT_KEEP_CAPS_LOCKED
            | sys::SECBIT_NO_CAP_AMBIENT_RAISE
            | sys::SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED,
    )
    .map_err(|e| io::Error::new(e.kind(), format!("PR_SET_SECUREBITS: {e}")))?;
    // Bounding set: drop every capability number until the kernel says it does not exist, which
    // also covers capabilities newer than the `caps` crate (one prctl each, no reads).
    sys::drop_bounding_set().map_err(|e| io::Error::new(e.kind(), format!("PR_CAPBSET_DROP: {e}")))
}
