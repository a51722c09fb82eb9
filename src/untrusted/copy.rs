//! One file copied from one tree into another on a sandboxed script's behalf (the recorder's
//! emulation of a hard link across the sandbox's mounts): every component of both paths opened
//! below its root without following links or crossing mounts, the source only if it is a
//! regular file, the destination created fresh (never an existing name, never through a link).

use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::{OFlag, openat};
use nix::sys::stat::{Mode, fstat};

use super::fd::{copy_limited, file_id, open_dir_at, open_regular_at, open_root, rel_components};

/// Copy `src_root/src_rel` to `dst_root/dst_rel` with the source's permission bits (at most
/// `max` bytes; a longer source is refused with `EFBIG` and nothing is left). Errors as the
/// system calls give them: `EEXIST` if the destination exists, `ENOENT`, `ELOOP` or `EXDEV`
/// for a path through a link or a mount, `EINVAL` if the source is not a regular file.
pub fn copy_file(
    src_root: &Path,
    src_rel: &Path,
    dst_root: &Path,
    dst_rel: &Path,
    max: u64,
) -> io::Result<u64> {
    let (src_dir, src_name) = open_parent(src_root, src_rel)?;
    let root_dev = file_id(&fstat(&src_dir)?).0;
    let src = open_regular_at(src_dir.as_fd(), src_name, root_dev)?
        .ok_or_else(|| io::Error::from(Errno::EINVAL))?;
    let mode = fstat(&src)?.st_mode & 0o777;
    let (dst_dir, dst_name) = open_parent(dst_root, dst_rel)?;
    let fd = openat(
        dst_dir.as_fd(),
        dst_name,
        OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::from_bits_truncate(mode),
    )?;
    let dst = File::from(fd);
    let mut buf = vec![0u8; 64 << 10];
    let copied = copy_limited(&src, &dst, max, &mut buf);
    match copied {
        Ok((n, false)) => Ok(n),
        Ok((_, true)) | Err(_) => {
            drop(dst);
            let _ = nix::unistd::unlinkat(
                dst_dir.as_fd(),
                dst_name,
                nix::unistd::UnlinkatFlags::NoRemoveDir,
            );
            Err(copied.err().unwrap_or_else(|| Errno::EFBIG.into()))
        }
    }
}

/// The directory holding `rel` below `root` (each component opened without following links or
/// crossing mounts) and the last component's name.
fn open_parent<'a>(root: &Path, rel: &'a Path) -> io::Result<(OwnedFd, &'a OsStr)> {
    let parts = rel_components(rel)?;
    let (name, dirs) = parts
        .split_last()
        .ok_or_else(|| io::Error::from(Errno::EINVAL))?;
    let mut dir = open_root(root)?;
    for part in dirs {
        dir = open_dir_at(dir.as_fd(), part)?;
    }
    Ok((dir, name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_a_regular_file_and_refuses_links_existing_names_and_escapes() {
        use std::os::unix::fs::PermissionsExt;
        let t = tempfile::tempdir().unwrap();
        let (a, b) = (t.path().join("a"), t.path().join("b"));
        std::fs::create_dir_all(a.join("pkg/bin")).unwrap();
        std::fs::create_dir_all(b.join("out")).unwrap();
        std::fs::write(a.join("pkg/bin/tool"), b"ELF").unwrap();
        std::fs::set_permissions(
            a.join("pkg/bin/tool"),
            std::fs::Permissions::from_mode(0o755),
        )
        .unwrap();
        std::fs::write(t.path().join("secret"), b"no").unwrap();
        std::os::unix::fs::symlink(t.path().join("secret"), a.join("pkg/link")).unwrap();
        std::os::unix::fs::symlink(t.path(), b.join("up")).unwrap();

        let n = copy_file(
            &a,
            Path::new("pkg/bin/tool"),
            &b,
            Path::new("out/tool"),
            1 << 20,
        )
        .unwrap();
        assert_eq!(n, 3);
        assert_eq!(std::fs::read(b.join("out/tool")).unwrap(), b"ELF");
        let mode = std::fs::metadata(b.join("out/tool"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o755);
        let errno = |r: io::Result<u64>| r.unwrap_err().raw_os_error();
        // The destination exists.
        let again = copy_file(
            &a,
            Path::new("pkg/bin/tool"),
            &b,
            Path::new("out/tool"),
            1 << 20,
        );
        assert_eq!(errno(again), Some(libc::EEXIST));
        // The source is a link.
        let link = copy_file(&a, Path::new("pkg/link"), &b, Path::new("out/x"), 1 << 20);
        assert_eq!(errno(link), Some(libc::EINVAL));
        // The destination goes through a link.
        let up = copy_file(
            &a,
            Path::new("pkg/bin/tool"),
            &b,
            Path::new("up/x"),
            1 << 20,
        );
        assert!(up.is_err());
        assert!(!t.path().join("x").exists());
        // `..` is not a path below the root.
        let dots = copy_file(&a, Path::new("../secret"), &b, Path::new("out/y"), 1 << 20);
        assert!(dots.is_err());
        // Too big: refused, nothing left.
        let big = copy_file(&a, Path::new("pkg/bin/tool"), &b, Path::new("out/z"), 2);
        assert_eq!(errno(big), Some(libc::EFBIG));
        assert!(!b.join("out/z").exists());
    }
}
