//! Hard links the sandbox's mounts make impossible, done as copies. A script that links another
//! package's file into its own directory (esbuild's postinstall links its platform package's
//! binary over its JavaScript shim) gets `EXDEV` in the sandbox: the file is on a read-only
//! bind (or, in the landlock tier, under a rule with fewer rights) and its directory on a
//! writable one. Under npm the link succeeds. The supervisor answers such a `link` itself by
//! copying the file — never by linking it, which would let the script write another package's
//! file through its own directory — so the tree ends up as npm's (a copy instead of a second
//! name for the same inode).
//!
//! Nothing here widens what the script can do: it could read the source and write the copy
//! itself. The paths come from the script's memory and are only a request; the copy resolves
//! both itself, below roots that look the same inside and outside the sandbox, without
//! following links or crossing mounts (`untrusted::copy_file`).

use std::path::Path;

use super::Context;

/// Largest file copied for a link (esbuild's binary is about 10 MiB).
const MAX_COPY: u64 = 256 << 20;

/// The answer to `link(from, to)` when the supervisor makes it: `Some(Ok)` copied, `Some(Err)`
/// the errno to fail with; `None` leaves it to the kernel (a link within one writable tree,
/// anything outside the cases above).
pub(super) fn link_by_copy(ctx: &Context, from: &Path, to: &Path) -> Option<Result<(), i32>> {
    let writable = |p: &Path| ctx.writable.iter().find(|w| p.starts_with(w));
    let dst_root = writable(to)?;
    if writable(from).is_some() || ctx.in_decoy_home(from) || ctx.in_decoy_home(to) {
        return None;
    }
    // Another package's file: below a tree bound at its own path, in a `node_modules`.
    let src_root = ctx
        .visible
        .iter()
        .filter(|v| from.starts_with(v))
        .max_by_key(|v| v.components().count())?;
    let src_rel = from.strip_prefix(src_root).ok()?;
    if !src_rel
        .components()
        .any(|c| c.as_os_str() == "node_modules")
    {
        return None;
    }
    let dst_rel = to.strip_prefix(dst_root).ok()?;
    Some(
        crate::untrusted::copy_file(src_root, src_rel, dst_root, dst_rel, MAX_COPY)
            .map(drop)
            .map_err(|e| e.raw_os_error().unwrap_or(libc::EXDEV)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn another_packages_file_is_copied_into_the_scripts_directory() {
        let t = tempfile::tempdir().unwrap();
        let proj = t.path().canonicalize().unwrap().join("home/u/proj");
        let bin = proj.join("node_modules/@esbuild/linux-x64/bin/esbuild");
        let own = proj.join("node_modules/esbuild");
        std::fs::create_dir_all(bin.parent().unwrap()).unwrap();
        std::fs::create_dir_all(&own).unwrap();
        std::fs::write(&bin, b"\x7fELF").unwrap();
        std::fs::write(proj.join(".env"), b"SECRET").unwrap();
        let ctx = Context {
            home: t.path().canonicalize().unwrap().join("home/u"),
            writable: vec![own.clone()],
            visible: vec![proj.clone(), own.clone()],
            ..Context::default()
        };
        assert_eq!(
            link_by_copy(&ctx, &bin, &own.join("bin-esbuild")),
            Some(Ok(()))
        );
        assert_eq!(std::fs::read(own.join("bin-esbuild")).unwrap(), b"\x7fELF");
        // Twice: the name exists, as link(2) says.
        assert_eq!(
            link_by_copy(&ctx, &bin, &own.join("bin-esbuild")),
            Some(Err(libc::EEXIST))
        );
        // Not another package's file, not into the script's directory, within its own
        // directory: the kernel decides.
        assert_eq!(link_by_copy(&ctx, &proj.join(".env"), &own.join("x")), None);
        assert_eq!(link_by_copy(&ctx, &bin, &proj.join("x")), None);
        assert_eq!(
            link_by_copy(&ctx, &own.join("bin-esbuild"), &own.join("y")),
            None
        );
        // Through a link: refused, nothing copied.
        std::os::unix::fs::symlink(proj.join(".env"), proj.join("node_modules/evil")).unwrap();
        assert!(matches!(
            link_by_copy(&ctx, &proj.join("node_modules/evil"), &own.join("z")),
            Some(Err(_))
        ));
        assert!(!own.join("z").exists());
    }
}
