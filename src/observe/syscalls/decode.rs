//! Reading a notified syscall's arguments from the target's memory: paths, argv, environments, socket addresses.

use super::*;

/// Open `/proc/<pid>/mem` handles, at most [`budget::MEM_HANDLES`]: the least recently used is
/// closed first, and a sweep closes those of processes that exited, so the supervisor's
/// descriptors do not depend on how many processes the script starts.
#[derive(Debug, Default)]
pub(super) struct MemCache {
    pub(super) files: BTreeMap<u32, (File, u64)>,
    pub(super) tick: u64,
}

impl MemCache {
    pub(super) fn get(&mut self, pid: u32) -> Option<&File> {
        self.tick += 1;
        if !self.files.contains_key(&pid) {
            if self.files.len() >= budget::MEM_HANDLES {
                let oldest = self
                    .files
                    .iter()
                    .min_by_key(|(_, (_, used))| *used)
                    .map(|(p, _)| *p);
                if let Some(p) = oldest {
                    self.files.remove(&p);
                }
            }
            let f = File::open(format!("/proc/{pid}/mem")).ok()?;
            self.files.insert(pid, (f, self.tick));
        }
        let tick = self.tick;
        let entry = self.files.get_mut(&pid)?;
        entry.1 = tick;
        Some(&entry.0)
    }

    /// Close `pid`'s handle; whether there was one.
    pub(super) fn forget(&mut self, pid: u32) -> bool {
        self.files.remove(&pid).is_some()
    }

    /// Close the handles of processes that exited.
    pub(super) fn sweep(&mut self) {
        self.files.retain(|pid, _| process_alive(*pid));
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.files.len()
    }
}

/// Whether a connect (or a datagram) to the pathname unix socket `path` of process `pid` must
/// be refused, and if so where the socket resolved.
///
/// Allowed: sockets in the sandbox's private /tmp and the throwaway home (nothing of the host
/// listens there), and sockets in a writable host directory (the package's own) that a
/// process of the sandbox bound itself, as the sandbox's own network namespace lists them in
/// `/proc/<pid>/net/unix` (when the sandbox shares the host's network namespace this cannot be
/// told, and writable directories are allowed). Everything else (the project, HOME's host
/// binds, /run, /var/run) is refused: a host listener there (a dev server's socket, a database,
/// a container runtime, a desktop bus) is a way out.
///
/// The path is resolved as the process sees it (its cwd, its root, symbolic links followed in
/// its root), so a link in /tmp to the project's socket is judged at the socket. What this
/// cannot close (Landlock gains pathname-socket rules only with LANDLOCK_ACCESS_FS_RESOLVE_UNIX,
/// after Linux 6.18): the kernel resolves the path again after we answer, so a script racing a
/// rename or a link swap in its own areas between our check and the connect can still win. The
/// attempt that loses the race, and every plain attempt, is refused and recorded.
pub(super) fn unix_refusal(pid: u32, path: &Path, ctx: &Context) -> Option<(PathBuf, bool)> {
    if path.as_os_str().is_empty() {
        return None;
    }
    let lexical = resolve(pid, i64::from(libc::AT_FDCWD), &path.to_string_lossy());
    let real = resolve_in_root(pid, &lexical).unwrap_or(lexical);
    let private_tmp = real.starts_with("/tmp") && !ctx.visible.iter().any(|v| real.starts_with(v));
    if private_tmp || ctx.in_decoy_home(&real) {
        return None;
    }
    if ctx.writable.iter().any(|w| real.starts_with(w)) && bound_in_own_netns(pid, &real) {
        return None;
    }
    let there = real
        .strip_prefix("/")
        .ok()
        .and_then(|r| {
            std::fs::symlink_metadata(Path::new(&format!("/proc/{pid}/root")).join(r)).ok()
        })
        .is_some();
    Some((real, there))
}

/// Whether a socket of the sandbox's own network namespace is bound at `path` (or the sandbox
/// shares the host's namespace, where this cannot be told).
pub(super) fn bound_in_own_netns(pid: u32, path: &Path) -> bool {
    let ns = |p: &str| std::fs::metadata(p).map(|m| std::os::unix::fs::MetadataExt::ino(&m));
    match (ns(&format!("/proc/{pid}/ns/net")), ns("/proc/self/ns/net")) {
        (Ok(theirs), Ok(ours)) if theirs != ours => {}
        _ => return true,
    }
    let Ok(table) = std::fs::read_to_string(format!("/proc/{pid}/net/unix")) else {
        return false;
    };
    table.lines().skip(1).any(|l| {
        l.split_whitespace().nth(7).is_some_and(|bound| {
            let bound = Path::new(bound);
            bound == path || (bound.is_relative() && path.ends_with(bound))
        })
    })
}

/// `path` (absolute) with symbolic links followed as process `pid` sees them: inside its root
/// (`/proc/<pid>/root`), absolute link targets from that root. Components that do not exist are
/// kept as they are. `None` past 40 links.
pub(super) fn resolve_in_root(pid: u32, path: &Path) -> Option<PathBuf> {
    use std::path::Component;
    let root = PathBuf::from(format!("/proc/{pid}/root"));
    let mut stack: Vec<std::ffi::OsString> = path
        .components()
        .rev()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_os_string()),
            Component::ParentDir => Some("..".into()),
            _ => None,
        })
        .collect();
    let mut out = PathBuf::from("/");
    let mut links = 0;
    while let Some(c) = stack.pop() {
        if c == ".." {
            out.pop();
            continue;
        }
        let candidate = out.join(&c);
        let on_host = root.join(candidate.strip_prefix("/").ok()?);
        match std::fs::symlink_metadata(&on_host) {
            Ok(m) if m.file_type().is_symlink() => {
                links += 1;
                if links > 40 {
                    return None;
                }
                let target = std::fs::read_link(&on_host).ok()?;
                if target.is_absolute() {
                    out = PathBuf::from("/");
                }
                for t in target.components().rev() {
                    match t {
                        Component::Normal(n) => stack.push(n.to_os_string()),
                        Component::ParentDir => stack.push("..".into()),
                        _ => {}
                    }
                }
            }
            _ => out = candidate,
        }
    }
    Some(out)
}

pub(super) fn mem_of(mem: &mut MemCache, pid: u32) -> Option<&File> {
    mem.get(pid)
}

pub(super) fn read_cstr(f: &File, addr: u64, max: usize) -> Option<String> {
    if addr == 0 {
        return None;
    }
    let mut out = Vec::new();
    let mut buf = [0u8; 256];
    let mut at = addr;
    while out.len() < max {
        let n = f.read_at(&mut buf, at).ok()?;
        if n == 0 {
            // Nothing at all: a stale handle (the process has exec'd since it was opened).
            if out.is_empty() {
                return None;
            }
            break;
        }
        if let Some(end) = buf[..n].iter().position(|b| *b == 0) {
            out.extend_from_slice(&buf[..end]);
            return Some(String::from_utf8_lossy(&out).into_owned());
        }
        out.extend_from_slice(&buf[..n]);
        at += n as u64;
    }
    Some(String::from_utf8_lossy(&out).into_owned())
}

pub(super) fn read_u64(f: &File, addr: u64) -> Option<u64> {
    let mut b = [0u8; 8];
    (f.read_at(&mut b, addr).ok()? == 8).then(|| u64::from_ne_bytes(b))
}

/// Resolve `path` as the kernel would for `dirfd` in process `pid` (lexically: `..` is folded,
/// symlinks are not followed, which is what the report should show anyway).
pub(super) fn resolve(pid: u32, dirfd: i64, path: &str) -> PathBuf {
    let p = Path::new(path);
    let joined = if p.is_absolute() {
        p.to_path_buf()
    } else {
        let base = if dirfd == i64::from(libc::AT_FDCWD) {
            std::fs::read_link(format!("/proc/{pid}/cwd")).ok()
        } else {
            std::fs::read_link(format!("/proc/{pid}/fd/{dirfd}")).ok()
        };
        base.unwrap_or_default().join(p)
    };
    let mut out = PathBuf::new();
    for c in joined.components() {
        match c {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::CurDir => {}
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// The last exec's argv per pid, by the (argv, argv[0]) pointers: a PATH search retries the same
/// argv with each directory, and reading it again costs dozens of reads.
pub(super) type ArgvCache = BTreeMap<u32, (u64, u64, Vec<String>, bool)>;

/// Whether `program` (a path or a bare name) is node.
pub(crate) fn is_node(program: &str) -> bool {
    let base = program.rsplit('/').next().unwrap_or(program);
    base == "node"
        || base == "nodejs"
        || base
            .strip_prefix("node")
            .is_some_and(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit() || b == b'.'))
}

/// Whether the environment at `envp` in the target's memory has NODE_OPTIONS loading the
/// preload (the first NODE_OPTIONS, as getenv finds it). Unreadable counts as yes: the
/// recorder accuses only what it read.
pub(super) fn env_has_preload(f: &File, envp: u64, want: &str) -> bool {
    for i in 0..4096u64 {
        let Some(p) = envp.checked_add(i * 8).and_then(|at| read_u64(f, at)) else {
            return true;
        };
        if p == 0 {
            return false;
        }
        let Some(var) = read_cstr(f, p, 64 << 10) else {
            return true;
        };
        if let Some(v) = var.strip_prefix("NODE_OPTIONS=") {
            return v.contains(want);
        }
    }
    true
}

/// The pathname of a `struct sockaddr_un` (`None` for other families, abstract and unnamed
/// sockets).
pub(super) fn unix_pathname(b: &[u8]) -> Option<PathBuf> {
    use std::os::unix::ffi::OsStrExt;
    let family = u16::from_ne_bytes([*b.first()?, *b.get(1)?]);
    if i32::from(family) != libc::AF_UNIX {
        return None;
    }
    let raw = b.get(2..)?;
    if raw.first().is_none_or(|c| *c == 0) {
        return None;
    }
    let end = raw.iter().position(|c| *c == 0).unwrap_or(raw.len());
    Some(PathBuf::from(std::ffi::OsStr::from_bytes(raw.get(..end)?)))
}

/// A dirfd argument: an int, so only its low 32 bits are meaningful (AT_FDCWD is -100).
fn dirfd_of(v: u64) -> i64 {
    let low = v.to_le_bytes();
    i64::from(i32::from_le_bytes([low[0], low[1], low[2], low[3]]))
}

pub(super) fn read_event(
    req: &libc::seccomp_notif,
    mem: &mut MemCache,
    argv_cache: &mut ArgvCache,
    preload: &str,
) -> Option<Event> {
    let nr = i64::from(req.data.nr);
    let a = req.data.args;
    let pid = req.pid;
    let f = mem_of(mem, pid)?;
    #[cfg(target_arch = "x86_64")]
    {
        if nr == libc::SYS_open {
            let path = read_cstr(f, a[0], 4096)?;
            return Some(Event::Open {
                path: resolve(pid, i64::from(libc::AT_FDCWD), &path),
                write: is_write(a[1]),
            });
        }
        if nr == libc::SYS_mkdir {
            let path = read_cstr(f, a[0], 4096)?;
            return Some(Event::Mkdir {
                path: resolve(pid, i64::from(libc::AT_FDCWD), &path),
            });
        }
        if nr == libc::SYS_unlink {
            let path = read_cstr(f, a[0], 4096)?;
            return Some(Event::Open {
                path: resolve(pid, i64::from(libc::AT_FDCWD), &path),
                write: true,
            });
        }
        if nr == libc::SYS_link {
            let cwd = i64::from(libc::AT_FDCWD);
            let from = read_cstr(f, a[0], 4096)?;
            let to = read_cstr(f, a[1], 4096)?;
            return Some(Event::Link {
                from: resolve(pid, cwd, &from),
                to: resolve(pid, cwd, &to),
            });
        }
        if nr == libc::SYS_creat {
            let path = read_cstr(f, a[0], 4096)?;
            return Some(Event::Open {
                path: resolve(pid, i64::from(libc::AT_FDCWD), &path),
                write: true,
            });
        }
    }
    if nr == libc::SYS_openat {
        let path = read_cstr(f, a[1], 4096)?;
        return Some(Event::Open {
            path: resolve(pid, dirfd_of(a[0]), &path),
            write: is_write(a[2]),
        });
    }
    if nr == libc::SYS_linkat {
        // linkat(olddirfd, oldpath, newdirfd, newpath, flags); AT_EMPTY_PATH links the file
        // olddirfd refers to: only its new name is known.
        let to = read_cstr(f, a[3], 4096)?;
        let to = resolve(pid, dirfd_of(a[2]), &to);
        let from = read_cstr(f, a[1], 4096).unwrap_or_default();
        if from.is_empty() || a[4] & u64::from(libc::AT_EMPTY_PATH.unsigned_abs()) != 0 {
            return Some(Event::Open {
                path: to,
                write: true,
            });
        }
        return Some(Event::Link {
            from: resolve(pid, dirfd_of(a[0]), &from),
            to,
        });
    }
    if nr == libc::SYS_mkdirat {
        let path = read_cstr(f, a[1], 4096)?;
        return Some(Event::Mkdir {
            path: resolve(pid, dirfd_of(a[0]), &path),
        });
    }
    if nr == libc::SYS_unlinkat {
        let path = read_cstr(f, a[1], 4096)?;
        return Some(Event::Open {
            path: resolve(pid, dirfd_of(a[0]), &path),
            write: true,
        });
    }
    if nr == 437 {
        // openat2(dirfd, path, struct open_how *{ u64 flags, u64 mode, u64 resolve }, size).
        // RESOLVE_IN_ROOT (0x10) resolves an absolute path from dirfd, as if it were the root.
        let path = read_cstr(f, a[1], 4096)?;
        let flags = read_u64(f, a[2]).unwrap_or(0);
        let how = read_u64(f, a[2].wrapping_add(16)).unwrap_or(0);
        let path = if how & 0x10 != 0 {
            path.trim_start_matches('/').to_string()
        } else {
            path
        };
        return Some(Event::Open {
            path: resolve(pid, dirfd_of(a[0]), &path),
            write: is_write(flags),
        });
    }
    if nr == libc::SYS_execve || nr == libc::SYS_execveat {
        return read_exec(nr, a, pid, f, argv_cache, preload);
    }
    if nr == libc::SYS_sendmsg || nr == libc::SYS_sendmmsg {
        return read_sendmsg(a, f);
    }
    if nr == libc::SYS_connect || nr == libc::SYS_sendto {
        return read_connect(nr, a, f);
    }
    None
}

/// An `execve`/`execveat`: the program, its first arguments (cached per process by their
/// pointers), and whether a node started without the preload.
fn read_exec(
    nr: i64,
    a: [u64; 6],
    pid: u32,
    f: &File,
    argv_cache: &mut ArgvCache,
    preload: &str,
) -> Option<Event> {
    let (path_ptr, argv_ptr, envp_ptr) = if nr == libc::SYS_execve {
        (a[0], a[1], a[2])
    } else {
        (a[1], a[2], a[3])
    };
    let first = read_u64(f, argv_ptr)?;
    let program = read_cstr(f, path_ptr, 4096).unwrap_or_default();
    let dirfd = if nr == libc::SYS_execve {
        i64::from(libc::AT_FDCWD)
    } else {
        dirfd_of(a[0])
    };
    let path = if program.is_empty() {
        PathBuf::new()
    } else {
        resolve(pid, dirfd, &program)
    };
    if let Some((p, q, argv, preload_missing)) = argv_cache.get(&pid) {
        if *p == argv_ptr && *q == first && first != 0 {
            return Some(Event::Exec {
                argv: argv.clone(),
                program: path,
                preload_missing: *preload_missing,
            });
        }
    }
    let mut argv = Vec::new();
    for i in 0..16u64 {
        let p = read_u64(f, argv_ptr + i * 8)?;
        if p == 0 {
            break;
        }
        argv.push(read_cstr(f, p, 200)?);
    }
    if argv.is_empty() {
        argv.push(program.clone());
    }
    // A node started without the preload (its NODE_OPTIONS removed or overwritten) is not
    // recorded by it: every exec passes here, whatever the environment says.
    let node =
        is_node(&program) || (program.is_empty() && argv.first().is_some_and(|a| is_node(a)));
    let preload_missing = node && !env_has_preload(f, envp_ptr, preload);
    argv_cache.insert(pid, (argv_ptr, first, argv.clone(), preload_missing));
    Some(Event::Exec {
        argv,
        program: path,
        preload_missing,
    })
}

/// A `sendmsg`/`sendmmsg` with a destination: the address and the first 4 KiB of the first
/// message's data.
fn read_sendmsg(a: [u64; 6], f: &File) -> Option<Event> {
    // struct msghdr { void *name; socklen_t namelen; struct iovec *iov; size_t iovlen; … }
    // (the first of an mmsghdr array: the same layout at its start).
    let hdr = a[1];
    let name = read_u64(f, hdr)?;
    if name == 0 {
        return None;
    }
    let namelen = read_u64(f, hdr + 8).unwrap_or(0) & 0xffff_ffff;
    let mut buf = vec![0u8; usize::try_from(namelen.min(128)).unwrap_or(0)];
    let n = f.read_at(&mut buf, name).ok()?;
    let addr = sockaddr(&buf[..n])?;
    let unix_path = unix_pathname(&buf[..n]);
    let mut data = Vec::new();
    let (iov, iovlen) = (read_u64(f, hdr + 16)?, read_u64(f, hdr + 24)?);
    for i in 0..iovlen.min(8) {
        let (base, len) = (read_u64(f, iov + i * 16)?, read_u64(f, iov + i * 16 + 8)?);
        let want = usize::try_from(len.min(4096))
            .unwrap_or(0)
            .min(4096 - data.len());
        let mut chunk = vec![0u8; want];
        let got = f.read_at(&mut chunk, base).unwrap_or(0);
        data.extend_from_slice(&chunk[..got]);
        if data.len() >= 4096 {
            break;
        }
    }
    Some(Event::Datagram {
        addr,
        data,
        unix_path,
        refused: None,
    })
}

/// A `connect`, or a `sendto` with a destination (and then its first 4 KiB).
fn read_connect(nr: i64, a: [u64; 6], f: &File) -> Option<Event> {
    let (ptr, len) = if nr == libc::SYS_connect {
        (a[1], a[2])
    } else {
        (a[4], a[5])
    };
    let len = usize::try_from(len.min(128)).unwrap_or(0);
    let mut buf = vec![0u8; len];
    let n = f.read_at(&mut buf, ptr).ok()?;
    let addr = sockaddr(&buf[..n])?;
    let unix_path = unix_pathname(&buf[..n]);
    if nr == libc::SYS_connect {
        return Some(Event::Connect {
            addr,
            unix_path,
            refused: None,
        });
    }
    // sendto(fd, buf, len, flags, addr, addrlen): a datagram to a port nothing serves is
    // only seen here, so keep its first bytes for the canary search.
    let size = usize::try_from(a[2].min(4096)).unwrap_or(0);
    let mut data = vec![0u8; size];
    let got = f.read_at(&mut data, a[1]).unwrap_or(0);
    data.truncate(got);
    Some(Event::Datagram {
        addr,
        data,
        unix_path,
        refused: None,
    })
}

pub(super) fn is_write(flags: u64) -> bool {
    flags & O_ACCMODE != 0 || flags & (O_CREAT | O_TRUNC | O_APPEND) != 0
}

/// Render a `struct sockaddr` (unix path, inet, inet6).
pub(super) fn sockaddr(b: &[u8]) -> Option<String> {
    let family = u16::from_ne_bytes([*b.first()?, *b.get(1)?]);
    match i32::from(family) {
        libc::AF_UNIX => {
            let raw = b.get(2..)?;
            if raw.first() == Some(&0) {
                let name: Vec<u8> = raw[1..].iter().copied().take_while(|c| *c != 0).collect();
                Some(format!("unix:@{}", String::from_utf8_lossy(&name)))
            } else {
                let name: Vec<u8> = raw.iter().copied().take_while(|c| *c != 0).collect();
                Some(format!("unix:{}", String::from_utf8_lossy(&name)))
            }
        }
        libc::AF_INET => {
            let port = u16::from_be_bytes([*b.get(2)?, *b.get(3)?]);
            Some(format!(
                "{}.{}.{}.{}:{port}",
                b.get(4)?,
                b.get(5)?,
                b.get(6)?,
                b.get(7)?
            ))
        }
        libc::AF_INET6 => {
            let port = u16::from_be_bytes([*b.get(2)?, *b.get(3)?]);
            let mut o = [0u8; 16];
            o.copy_from_slice(b.get(8..24)?);
            Some(format!("[{}]:{port}", std::net::Ipv6Addr::from(o)))
        }
        _ => None,
    }
}
