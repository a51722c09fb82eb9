//! The landlock tier's plan: no namespaces, so Landlock is the filesystem view over the host's
//! own paths — the same things the full tier shows (system directories, the curated `/etc`
//! files, node, npm's cache, the project minus its secrets, the package directory writable), a
//! private HOME and `/tmp` replacement, a few device nodes, `/proc` — and the network is closed
//! by Landlock (TCP bind and connect) and seccomp (every other socket).
//!
//! Landlock grants, it cannot subtract: a denied file inside a granted directory is carved out by
//! granting the directory's other entries one by one (and the directory itself only what does not
//! reach file contents).

use std::path::{Path, PathBuf};

use landlock::AccessFs;

use super::plan::{
    DEV_NODES, FsAccess, LandlockPlan, LandlockRule, NetworkPlan, SetupPlan, rlimits,
};
use super::seccomp;
use super::spec::{ExecSpec, MountKind, SandboxSpec, Tier};

/// Deepest directory chain carved for one denied file.
const MAX_CARVE_DEPTH: usize = 32;

/// The plan for `spec` in the landlock tier. `list` lists a host directory's entries (full
/// paths), for carving denied files out of granted directories.
pub fn plan(
    spec: &SandboxSpec,
    is_dir: &dyn Fn(&Path) -> bool,
    list: &dyn Fn(&Path) -> Vec<PathBuf>,
) -> SetupPlan {
    let rules = view(spec, is_dir, list);
    let exec = command(spec, &rules);
    let mut seccomp = seccomp::deny_plan(spec.enforcement.seccomp);
    seccomp.filters.push(seccomp::host_network_filter());
    seccomp.filters.push(seccomp::host_datagram_filter());
    SetupPlan {
        uid: spec.uid,
        gid: spec.gid,
        hostname: spec.hostname.clone(),
        root_size: 0,
        mounts: Vec::new(),
        landlock: LandlockPlan {
            level: spec.enforcement.landlock,
            rules,
            deny_tcp_bind: true,
            deny_tcp_connect: true,
            // Landlock is the whole filesystem view here, and the only TCP barrier (ABI 4).
            min_abi: Some(4),
            scoped: true,
        },
        seccomp,
        rlimits: rlimits(spec),
        network: NetworkPlan {
            loopback_up: false,
            sinkhole: None,
        },
        exec,
        recorder: spec.record_syscalls,
        recorder_reads: spec.record_syscalls && spec.record_reads,
        trace_steps: false,
        tier: Tier::Landlock,
    }
}

/// The filesystem view as Landlock rules over host paths: the spec's mounts (the recording
/// machinery at its host path), the private HOME and `/tmp`, `/proc`, the device nodes; then the
/// denied paths carved out of whatever grants them.
fn view(
    spec: &SandboxSpec,
    is_dir: &dyn Fn(&Path) -> bool,
    list: &dyn Fn(&Path) -> Vec<PathBuf>,
) -> Vec<LandlockRule> {
    let mut rules = Vec::new();
    let mut denied = Vec::new();
    for m in &spec.mounts {
        let (path, access) = match &m.kind {
            MountKind::ReadOnly => (&m.path, FsAccess::Read),
            MountKind::ReadWrite => (&m.path, FsAccess::Full),
            MountKind::Denied => {
                denied.push(m.path.clone());
                continue;
            }
            // The recording machinery is planted at its host path in this tier.
            MountKind::Recording { source, writable } => (
                source,
                if *writable {
                    FsAccess::Full
                } else {
                    FsAccess::Read
                },
            ),
            // Links the full tier recreates inside its root exist on the host already; a
            // private tmpfs cannot exist without a mount namespace (HOME and /tmp have their
            // private host directories instead).
            MountKind::Symlink { .. } | MountKind::Tmpfs { .. } => continue,
        };
        rules.push(LandlockRule {
            path: path.clone(),
            access,
            dir: is_dir(path),
        });
    }
    // HOME is `spec.home`, a private host directory (a link to the decoy home when recording).
    rules.push(LandlockRule {
        path: spec
            .home_source
            .clone()
            .unwrap_or_else(|| spec.home.clone()),
        access: FsAccess::Full,
        dir: true,
    });
    if let Some(tmp) = &spec.private_tmp {
        rules.push(LandlockRule {
            path: tmp.clone(),
            access: FsAccess::Full,
            dir: true,
        });
    }
    rules.push(LandlockRule {
        path: PathBuf::from("/proc"),
        access: FsAccess::Read,
        dir: true,
    });
    for node in DEV_NODES {
        rules.push(LandlockRule {
            path: Path::new("/dev").join(node),
            access: FsAccess::Devices,
            dir: false,
        });
    }
    for d in &denied {
        carve(&mut rules, d, list);
    }
    rules
}

/// The command with HOME and TMPDIR at their private host directories and PATH cut to the
/// directories the view (`rules`) has.
fn command(spec: &SandboxSpec, rules: &[LandlockRule]) -> ExecSpec {
    let mut exec = spec.exec.clone();
    let set = |env: &mut Vec<(String, String)>, k: &str, v: &Path| {
        env.retain(|(name, _)| name != k);
        env.push((k.to_string(), v.display().to_string()));
    };
    set(&mut exec.env, "HOME", &spec.home);
    if let Some(tmp) = &spec.private_tmp {
        set(&mut exec.env, "TMPDIR", tmp);
    }
    // PATH as the full tier sees it: directories outside the view do not exist there, and here
    // they exist but cannot be executed from (a pyenv shim under the real HOME would be found
    // first and fail, where the full tier falls through to the system's python).
    if let Some((_, path)) = exec.env.iter_mut().find(|(k, _)| k == "PATH") {
        let inside = |dir: &Path| {
            let real = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
            rules.iter().any(|r| {
                r.access != FsAccess::Devices
                    && (dir.starts_with(&r.path) || real.starts_with(&r.path))
            })
        };
        *path = path
            .split(':')
            .filter(|d| !d.is_empty() && inside(Path::new(d)))
            .collect::<Vec<_>>()
            .join(":");
    }
    exec.env.sort();
    exec
}

/// Replace the rule granting an ancestor of `denied` by rules on that ancestor's other entries,
/// down the path to `denied`; the directories on the way keep only rights that do not reach file
/// contents.
fn carve(rules: &mut Vec<LandlockRule>, denied: &Path, list: &dyn Fn(&Path) -> Vec<PathBuf>) {
    // Granted individually by an earlier carve: simply not granted.
    rules.retain(|r| r.path != denied);
    while let Some(i) = rules.iter().position(|r| {
        r.dir && !matches!(r.access, FsAccess::DirOnly(_)) && denied.starts_with(&r.path)
    }) {
        let granted = rules.remove(i);
        carve_under(rules, &granted, denied, list);
    }
}

fn carve_under(
    rules: &mut Vec<LandlockRule>,
    granted: &LandlockRule,
    denied: &Path,
    list: &dyn Fn(&Path) -> Vec<PathBuf>,
) {
    let mut dir = granted.path.clone();
    let rest: Vec<_> = denied
        .strip_prefix(&granted.path)
        .map(|r| r.components().map(|c| c.as_os_str().to_owned()).collect())
        .unwrap_or_default();
    for (depth, next) in rest.iter().enumerate() {
        if depth >= MAX_CARVE_DEPTH {
            break;
        }
        rules.push(LandlockRule {
            path: dir.clone(),
            access: FsAccess::DirOnly(granted.access.is_full()),
            dir: true,
        });
        for entry in list(&dir) {
            if entry.file_name() == Some(next.as_os_str()) {
                continue;
            }
            // A rule on a link would grant what it points at (the rule's path is opened
            // following it): a script of an earlier phase could plant `ws/x -> ~/.ssh`. Links
            // are left ungranted; what they point at is reachable only if the view has it.
            let meta = std::fs::symlink_metadata(&entry).ok();
            if meta.as_ref().is_some_and(|m| m.file_type().is_symlink()) {
                continue;
            }
            rules.push(LandlockRule {
                dir: meta.is_some_and(|m| m.is_dir()),
                path: entry,
                access: granted.access,
            });
        }
        dir.push(next);
    }
}

/// Directory rights that do not reach the contents of files below: listing, and (for a
/// writable directory) creating and removing entries.
pub fn dir_only(writable: bool) -> landlock::BitFlags<AccessFs> {
    let mut a = AccessFs::ReadDir.into();
    if writable {
        a |= AccessFs::MakeReg
            | AccessFs::MakeDir
            | AccessFs::MakeSym
            | AccessFs::RemoveFile
            | AccessFs::RemoveDir;
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_beside_a_denied_file_are_not_granted() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path();
        std::fs::write(p.join(".env"), "x").unwrap();
        std::fs::write(p.join("index.js"), "x").unwrap();
        std::os::unix::fs::symlink("/etc/shadow", p.join("planted")).unwrap();
        let mut rules = vec![LandlockRule {
            path: p.to_path_buf(),
            access: FsAccess::Read,
            dir: true,
        }];
        let list = |d: &Path| -> Vec<PathBuf> {
            std::fs::read_dir(d)
                .unwrap()
                .map(|e| e.unwrap().path())
                .collect()
        };
        carve(&mut rules, &p.join(".env"), &list);
        let paths: Vec<&Path> = rules.iter().map(|r| r.path.as_path()).collect();
        assert!(paths.contains(&p.join("index.js").as_path()), "{paths:?}");
        assert!(!paths.contains(&p.join("planted").as_path()), "{paths:?}");
        assert!(!paths.contains(&p.join(".env").as_path()), "{paths:?}");
    }

    #[test]
    fn a_denied_file_is_carved_out_of_its_directory() {
        let mut rules = vec![LandlockRule {
            path: PathBuf::from("/p"),
            access: FsAccess::Read,
            dir: true,
        }];
        let list = |d: &Path| -> Vec<PathBuf> {
            match d.to_str() {
                Some("/p") => vec!["/p/.env".into(), "/p/src".into(), "/p/ws".into()],
                Some("/p/ws") => vec!["/p/ws/.npmrc".into(), "/p/ws/index.js".into()],
                _ => vec![],
            }
        };
        carve(&mut rules, Path::new("/p/ws/.npmrc"), &list);
        carve(&mut rules, Path::new("/p/.env"), &list);
        let paths: Vec<(&str, FsAccess)> = rules
            .iter()
            .map(|r| (r.path.to_str().unwrap(), r.access))
            .collect();
        assert!(
            !paths
                .iter()
                .any(|(p, _)| *p == "/p/.env" || *p == "/p/ws/.npmrc")
        );
        assert!(paths.contains(&("/p/src", FsAccess::Read)), "{paths:?}");
        assert!(
            paths.contains(&("/p/ws/index.js", FsAccess::Read)),
            "{paths:?}"
        );
        assert!(
            paths.contains(&("/p", FsAccess::DirOnly(false))),
            "{paths:?}"
        );
        assert!(
            !paths.contains(&("/p", FsAccess::Read)),
            "the directory itself must not grant file reads: {paths:?}"
        );
    }
}
