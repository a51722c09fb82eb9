//! The throwaway HOME, populated with realistic decoy credentials carrying per-run canary values,
//! and compared after the run: a decoy whose access time moved was read, a persistence path that
//! changed was written.
//!
//! Reads are detected through the access time, which the kernel updates on every read made
//! through any mount of the file (kernel truth, no TOCTOU, no syscall interception): after
//! planting, each decoy's atime is set far in the past, so even `relatime` updates it on the first
//! read, at any timestamp granularity. inotify would also work but its teardown waits for an SRCU
//! grace period (measured here: 1 to 18 ms per sandbox), which is paid on every run.
//!
//! The directory lives on the host (a private temp dir) and is bind-mounted at the caller's real
//! HOME path inside the sandbox; it is deleted after the run, so nothing written there reaches
//! the real home.
//!
//! `plant.rs` creates and fills it, `env.rs` decides which variables are credentials and puts
//! canaries in their place, `diff.rs` compares the home after the run.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{Code, Finding, FindingKind, Severity};

mod diff;
mod env;
mod plant;
#[cfg(test)]
mod tests;

pub(crate) use diff::is_persistence;
pub use env::{EnvHolding, is_secret_var, looks_secret};

/// A canary: a unique fake secret planted for one run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Canary {
    /// Stable id (`npmrc-token`, `env:NPM_TOKEN`, ...).
    pub id: String,
    /// The value. Fake by construction; safe to print and to match in payloads.
    pub value: String,
}

/// Decoy files: (path relative to HOME, class used in findings). A trailing `/` is a directory
/// whose one decoy is named per run (a wallet keystore is named by its date and address).
const SECRET_FILES: [(&str, &str); 12] = [
    (".npmrc", "npm token"),
    (".ssh/id_ed25519", "ssh private key"),
    (".ssh/id_rsa", "ssh private key"),
    (".aws/credentials", "cloud credentials"),
    (".config/gh/hosts.yml", "github token"),
    (".git-credentials", "git credentials"),
    (".docker/config.json", "registry credentials"),
    (".kube/config", "kubernetes credentials"),
    (
        ".config/gcloud/application_default_credentials.json",
        "cloud credentials",
    ),
    (".ethereum/keystore/", "crypto wallet"),
    (".claude.json", "AI tool credentials"),
    (".bash_history", "shell history"),
];

/// A planted, watched throwaway HOME.
#[derive(Debug)]
pub struct DecoyHome {
    dir: tempfile::TempDir,
    /// The HOME path as the sandbox sees it.
    home: PathBuf,
    canaries: Vec<Canary>,
    /// Credential variables the caller did not have, planted as decoys.
    planted_env: Vec<String>,
    before: BTreeMap<String, Vec<u8>>,
    /// Each decoy file as planted (relative to HOME), its entry in [`SECRET_FILES`] (what
    /// findings name: stable across runs) and its class.
    files: Vec<(String, &'static str, &'static str)>,
    /// The access (and modification) time every decoy was given: a plausible day in the past
    /// months, per run. Any read moves the access time (it is not after the modification time,
    /// so even `relatime` updates it).
    parked_at: i64,
}

impl Drop for DecoyHome {
    /// The decoy home is sandbox-written: removed without following links, whatever its
    /// permissions and depth (std's removal gives up on a chmod-000 directory).
    fn drop(&mut self) {
        crate::cleanup::unregister(self.dir.path());
        match crate::untrusted::remove_tree(self.dir.path()) {
            Ok(r) if !r.left.is_empty() => tracing::warn!(
                "could not remove all of the decoy home `{}`: {:?}",
                self.dir.path().display(),
                r.left
            ),
            Err(e) => tracing::warn!(
                "removing the decoy home `{}`: {e}",
                self.dir.path().display()
            ),
            Ok(_) => {}
        }
    }
}

impl DecoyHome {
    /// Whether `path` (as the sandbox sees it) is one of the planted decoy secrets.
    pub fn is_decoy(&self, path: &Path) -> bool {
        path.strip_prefix(&self.home)
            .is_ok_and(|rel| self.files.iter().any(|(r, _, _)| Path::new(r) == rel))
    }

    /// HOME as the sandbox sees it.
    pub fn home(&self) -> &Path {
        &self.home
    }

    /// The host directory to bind at HOME.
    pub fn host_dir(&self) -> &Path {
        self.dir.path()
    }

    /// Every canary planted for this run (files and environment).
    pub fn canaries(&self) -> &[Canary] {
        &self.canaries
    }
}
