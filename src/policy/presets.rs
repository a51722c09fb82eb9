//! `@preset` expansion against the host, for [`super::resolve`].

use std::path::{Path, PathBuf};

use crate::sandbox::spec::{MountKind, MountSpec};

use super::ResolveContext;

/// Names of every preset this build knows.
pub const PRESETS: [&str; 3] = ["@system", "@etc", "@node"];

/// The usrmerge links or directories at the top level.
const SYSTEM_TOP: [&str; 7] = [
    "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32",
];

/// The part of `/etc` programs need to run: accounts, name service, TLS roots, the dynamic
/// linker, time zone, alternatives. Never all of `/etc`: it may hold `/etc/npmrc` and other
/// credentials.
const ETC_CURATED: [&str; 24] = [
    "/etc/passwd",
    "/etc/group",
    "/etc/hosts",
    "/etc/host.conf",
    "/etc/resolv.conf",
    "/etc/nsswitch.conf",
    "/etc/gai.conf",
    "/etc/protocols",
    "/etc/services",
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/ssl",
    "/etc/ca-certificates",
    "/etc/ca-certificates.conf",
    "/etc/pki",
    "/etc/crypto-policies",
    "/etc/alternatives",
    "/etc/localtime",
    "/etc/timezone",
    "/etc/os-release",
    "/etc/debian_version",
    "/etc/mime.types",
    "/etc/machine-id",
];

/// Expand one preset. `None` if the name is unknown.
pub fn expand(name: &str, ctx: &ResolveContext) -> Option<Vec<MountSpec>> {
    match name {
        "@system" => Some(
            SYSTEM_TOP
                .iter()
                .flat_map(|p| host_entry(Path::new(p)))
                .collect(),
        ),
        "@etc" => Some(
            ETC_CURATED
                .iter()
                .flat_map(|p| host_entry(Path::new(p)))
                .collect(),
        ),
        "@node" => Some(node_prefix(ctx).into_iter().map(read_only).collect()),
        _ => None,
    }
}

fn read_only(path: PathBuf) -> MountSpec {
    MountSpec {
        path,
        kind: MountKind::ReadOnly,
    }
}

/// A top-level entry mirrored as it is on the host: a symlink stays a symlink with the same target;
/// if that target lies outside the curated view (e.g. `/etc/resolv.conf -> /run/...`), the file it
/// resolves to is bound read-only at its own path so the link does not dangle. Anything else is
/// bound read-only. Missing entries are optional (`/lib32` rarely exists).
fn host_entry(path: &Path) -> Vec<MountSpec> {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return vec![];
    };
    if !meta.file_type().is_symlink() {
        return vec![read_only(path.to_path_buf())];
    }
    let Ok(target) = std::fs::read_link(path) else {
        return vec![];
    };
    let mut out = vec![MountSpec {
        path: path.to_path_buf(),
        kind: MountKind::Symlink {
            target: target.clone(),
        },
    }];
    let inside = |p: &Path| SYSTEM_TOP.iter().any(|t| p.starts_with(t)) || p.starts_with("/etc");
    if let Ok(real) = std::fs::canonicalize(path) {
        if !inside(&real) {
            out.push(read_only(real));
        }
    }
    out
}

/// The install prefix of the `node` on PATH when it is outside `/usr` (nvm, volta, /opt/node…).
fn node_prefix(ctx: &ResolveContext) -> Option<PathBuf> {
    let node = ctx.which("node")?;
    let real = std::fs::canonicalize(node).ok()?;
    let prefix = real.parent()?.parent()?.to_path_buf();
    if prefix.starts_with("/usr") || prefix == Path::new("/") {
        None
    } else {
        Some(prefix)
    }
}
