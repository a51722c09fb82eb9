//! Dropping every capability and locking the securebits, so that nothing the command executes can
//! regain privileges inside the user namespace (not even as uid 0 there, when the caller is root).

use std::io;

use caps::CapSet;

use crate::sys;

/// Lock securebits (needs `CAP_SETPCAP`, so first), then clear the bounding, ambient,
/// inheritable, effective and permitted sets, then check the bounding set really is empty.
pub fn drop_all() -> io::Result<()> {
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
    for set in [
        CapSet::Bounding,
        CapSet::Ambient,
        CapSet::Inheritable,
        CapSet::Effective,
        CapSet::Permitted,
    ] {
        caps::clear(None, set)
            .map_err(|e| io::Error::other(format!("clearing capability set {set:?}: {e}")))?;
    }
    // `caps` only knows capabilities up to the one it was built with; a newer kernel may have more.
    let status = std::fs::read_to_string("/proc/self/status")?;
    for field in ["CapBnd:", "CapEff:", "CapPrm:"] {
        let value = status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .map(str::trim)
            .unwrap_or("?");
        if value.trim_start_matches('0') != "" {
            return Err(io::Error::other(format!(
                "{field} is {value} after dropping every capability this build knows"
            )));
        }
    }
    Ok(())
}
