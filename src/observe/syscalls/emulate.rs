//! What the sandbox's mounts make impossible but policy or npm's semantics allow, done by the
//! supervisor on the script's behalf.
//!
//! **Files policy lets a script create.** An allowance may name a file that does not exist
//! (lefthook writes `lefthook.yml` from its template when the project has none). It cannot be
//! bound before it exists, and an empty placeholder would make the tool keep the empty file.
//! So it stays absent, and when the script opens exactly that path with `O_CREAT` the
//! supervisor creates it (`O_EXCL`, never through a link) and hands the script the open file
//! as the result of its `open` (`SECCOMP_IOCTL_NOTIF_ADDFD`).
//!
//! **Hard links across mounts, done as copies.** A script that links another
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
    if writable(from).is_some()
        || ctx.in_decoy_home(from)
        || ctx.in_decoy_home(to)
        || ctx.denied_paths.iter().any(|d| from.starts_with(d))
    {
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

/// The answer to an open of `path` when it is a file policy lets the script create and the
/// open creates it: the new file, open as asked, and whether the script asked for
/// close-on-exec; `None` leaves the open to the kernel (any other path, no `O_CREAT`, the file
/// exists by now).
pub(super) fn create_allowed(
    ctx: &Context,
    path: &Path,
    req: &libc::seccomp_notif,
) -> Option<Result<(std::os::fd::OwnedFd, bool), i32>> {
    use nix::fcntl::OFlag;
    if !ctx.creatable.iter().any(|c| c == path) {
        return None;
    }
    let a = req.data.args;
    let nr = i64::from(req.data.nr);
    let (flags, mode) = if nr == libc::SYS_openat {
        (a[2], a[3])
    } else if cfg!(target_arch = "x86_64") && nr == 2 {
        // open(path, flags, mode)
        (a[1], a[2])
    } else if cfg!(target_arch = "x86_64") && nr == 85 {
        // creat(path, mode)
        (
            u64::try_from(libc::O_CREAT | libc::O_WRONLY | libc::O_TRUNC).unwrap_or(0),
            a[1],
        )
    } else {
        return None;
    };
    let flags = OFlag::from_bits_truncate(i32::try_from(flags & 0xffff_ffff).unwrap_or(0));
    if !flags.contains(OFlag::O_CREAT) {
        return None;
    }
    let (parent, name) = (path.parent()?, path.file_name()?);
    let dir = match nix::fcntl::open(
        parent,
        OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | OFlag::O_PATH,
        nix::sys::stat::Mode::empty(),
    ) {
        Ok(d) => d,
        Err(e) => return Some(Err(e as i32)),
    };
    let keep = flags & (OFlag::O_ACCMODE | OFlag::O_APPEND);
    let mode = u32::try_from(mode & 0o666).unwrap_or(0o644) & !0o022;
    match nix::fcntl::openat(
        &dir,
        name,
        keep | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::from_bits_truncate(mode),
    ) {
        Ok(fd) => Some(Ok((fd, flags.contains(OFlag::O_CLOEXEC)))),
        Err(nix::errno::Errno::EEXIST) => None,
        Err(e) => Some(Err(e as i32)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn openat(flags: i32) -> libc::seccomp_notif {
        let mut req = notification();
        req.data.nr = i32::try_from(libc::SYS_openat).unwrap();
        req.data.args = [0, 0, u64::try_from(flags).unwrap(), 0o666, 0, 0];
        req
    }

    /// A notification as the kernel hands one over, before its syscall is filled in.
    fn notification() -> libc::seccomp_notif {
        libc::seccomp_notif {
            id: 0,
            pid: 0,
            flags: 0,
            data: libc::seccomp_data {
                nr: 0,
                arch: 0,
                instruction_pointer: 0,
                args: [0; 6],
            },
        }
    }

    /// Only the allowed name, only when the open creates it, only once (then the kernel
    /// decides); the file is created fresh, without following a link planted in its place.
    #[test]
    fn an_allowed_missing_file_is_created_when_the_script_creates_it() {
        use std::io::Write;
        let t = tempfile::tempdir().unwrap();
        let root = t.path().canonicalize().unwrap();
        let allowed = root.join("lefthook.yml");
        let ctx = Context {
            creatable: vec![allowed.clone()],
            ..Context::default()
        };
        let create = libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC | libc::O_CLOEXEC;
        assert!(create_allowed(&ctx, &root.join("other.yml"), &openat(create)).is_none());
        assert!(create_allowed(&ctx, &allowed, &openat(libc::O_WRONLY)).is_none());
        let (fd, cloexec) = create_allowed(&ctx, &allowed, &openat(create))
            .unwrap()
            .unwrap();
        assert!(cloexec);
        std::fs::File::from(fd).write_all(b"pre-commit:\n").unwrap();
        assert_eq!(std::fs::read(&allowed).unwrap(), b"pre-commit:\n");
        assert!(create_allowed(&ctx, &allowed, &openat(create)).is_none());
        std::fs::remove_file(&allowed).unwrap();
        std::os::unix::fs::symlink(root.join("elsewhere"), &allowed).unwrap();
        assert!(create_allowed(&ctx, &allowed, &openat(create)).is_none());
        assert!(!root.join("elsewhere").exists());
    }

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
