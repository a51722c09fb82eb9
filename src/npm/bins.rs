//! Bins that shadow system commands: npm puts `node_modules/.bin` first on every script's PATH.

use std::path::Path;

use super::Notice;

/// Commands whose shadowing by a package's bin changes what every later script runs: shells,
/// interpreters, the toolchain, git, npm itself, privilege tools and the coreutils scripts call.
const SHADOWABLE: &[&str] = &[
    "sh",
    "bash",
    "dash",
    "zsh",
    "env",
    "node",
    "npm",
    "npx",
    "git",
    "make",
    "cmake",
    "python",
    "python3",
    "gcc",
    "g++",
    "cc",
    "c++",
    "clang",
    "ld",
    "ar",
    "as",
    "pkg-config",
    "sudo",
    "su",
    "ssh",
    "curl",
    "wget",
    "tar",
    "cp",
    "mv",
    "rm",
    "ln",
    "mkdir",
    "chmod",
    "cat",
    "ls",
    "sed",
    "grep",
    "find",
    "xargs",
    "cut",
    "tr",
    "head",
    "tail",
    "sort",
    "uname",
    "id",
    "whoami",
];

/// Bins in the project's `node_modules/.bin` named like a system or toolchain command: npm puts
/// that directory first on every later script's PATH (the root project's included), so such a
/// bin runs instead of the real command. ringfence runs scripts with the system's shell; the
/// rest is reported, attributed to the package the bin belongs to.
pub fn shadowing_bins(project: &Path) -> Vec<Notice> {
    let bin = project.join("node_modules/.bin");
    let mut out = Vec::new();
    for name in SHADOWABLE {
        let link = bin.join(name);
        let Ok(meta) = std::fs::symlink_metadata(&link) else {
            continue;
        };
        // npm links bins as relative symlinks into the owning package.
        let target = if meta.file_type().is_symlink() {
            std::fs::read_link(&link).ok()
        } else {
            None
        };
        let owner = target
            .as_deref()
            .and_then(|t| t.to_str())
            .and_then(|t| {
                let rest = t.strip_prefix("../")?;
                let mut parts = rest.split('/');
                let first = parts.next()?;
                Some(if first.starts_with('@') {
                    format!("{first}/{}", parts.next()?)
                } else {
                    first.to_string()
                })
            })
            .unwrap_or_else(|| "an unknown package".into());
        out.push(Notice {
            code: "bin-shadows-command",
            location: Some(format!("node_modules/{owner}")),
            message: format!(
                "{owner} ships a bin `{name}` that shadows the system command for every later script (ringfence runs scripts with the system's shell; other commands they call by name resolve to the bin)"
            ),
        });
    }
    out
}
