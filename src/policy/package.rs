//! What policy grants one package script of an install: its sandbox request (its own directory
//! writable, the project and toolchain readable, the project's credential files denied), the
//! writes its `[package."<name>"]` allowances add, and where the project keeps secrets.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::npm::scripts::{Job, Kind};

use super::{ProfileFile, RunRequest};

/// What every script of one install shares.
#[derive(Debug, Clone)]
pub struct InstallScope {
    /// The project root.
    pub project: PathBuf,
    /// Toolchain directories scripts read (npm, npm's cache, node's headers, a node prefix
    /// outside /usr).
    pub toolchain: Vec<PathBuf>,
    /// Workspace and `file:` directories (their secrets are denied too).
    pub link_dirs: Vec<PathBuf>,
    /// Containment only.
    pub no_record: bool,
    /// Forensic recording.
    pub forensic: bool,
    /// Wall-clock limit per script instead of the profile's.
    pub timeout: Option<Duration>,
}

/// The sandbox request for one job: its package directory writable (a dependency's nested
/// `node_modules` read-only; a link's real directory), or the whole project for the user's own
/// root scripts; the project and the toolchain readable; the project's credential files denied
/// to everything but the root. `extra_rw` are the job's prepared [`Writable`] paths.
pub fn script_request(scope: &InstallScope, job: &Job, extra_rw: &[PathBuf]) -> RunRequest {
    let shell = job
        .env
        .get("npm_config_script_shell")
        .filter(|s| !s.is_empty())
        .cloned()
        .unwrap_or_else(|| "sh".into());
    let mut ro = vec![scope.project.clone()];
    ro.extend(scope.toolchain.iter().cloned());
    let mut rw = Vec::new();
    match job.kind {
        Kind::Dep | Kind::Link => {
            // A dependency writes its own directory; so does a link (a workspace package or a
            // `file:` directory, which may be third-party code): its real directory, not the
            // project around it.
            rw.push(job.dir.clone());
            rw.extend(extra_rw.iter().cloned());
            let nested = job.dir.join("node_modules");
            if job.kind == Kind::Dep && nested.is_dir() {
                ro.push(nested);
            }
        }
        Kind::Root => {
            // The user's own project scripts (husky's `prepare` writes .git/config).
            rw.push(scope.project.clone());
        }
    }
    ro.retain(|p| p.exists());
    let deny = if job.kind == Kind::Root {
        Vec::new()
    } else {
        let mut d = project_secrets(&scope.project, &scope.link_dirs);
        // npm's global config (`<prefix>/etc/npmrc`) can hold registry tokens and sits inside
        // the node prefix the sandbox shows.
        d.extend(
            job.env
                .get("npm_config_globalconfig")
                .map(PathBuf::from)
                .filter(|p| p.is_file()),
        );
        d
    };
    RunRequest {
        command: vec![shell, "-c".into(), job.command.clone()],
        rw,
        ro,
        timeout: scope.timeout,
        env: vec![],
        cwd: Some(job.dir.clone()),
        base_env: Some(
            job.env
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        ),
        package: Some(job.name.clone()),
        no_record: scope.no_record,
        forensic: scope.forensic,
        deny,
    }
}

/// Paths outside its own directory a dependency's or link's script may write, made ready
/// before the run (a bind needs an existing target) and tidied after it.
#[derive(Debug, Default)]
pub struct Writable {
    /// Everything to bind writable.
    pub paths: Vec<PathBuf>,
    /// Files an allowance names that did not exist: created empty, removed if left empty.
    pub placeholders: Vec<PathBuf>,
    /// gyp's output directories beside a scoped package: removed if left empty.
    pub gyp_dirs: Vec<PathBuf>,
}

impl Writable {
    /// The job's policy allowances (each with a reason) and gyp's outputs, created as needed.
    pub fn prepare(profile: &ProfileFile, project: &Path, job: &Job) -> Writable {
        use crate::policy::allowance::{Allowed, interpret};
        let mut w = Writable::default();
        let create = |p: &Path, file: bool| {
            let made = if file {
                p.parent()
                    .map_or(Ok(()), std::fs::create_dir_all)
                    .and_then(|()| {
                        std::fs::OpenOptions::new()
                            .write(true)
                            .create_new(true)
                            .open(p)
                            .map(drop)
                    })
            } else {
                std::fs::create_dir_all(p)
            };
            if let Err(e) = &made {
                tracing::warn!("{}: creating `{}`: {e}", job.name, p.display());
            }
            made.is_ok()
        };
        if let Some(section) = profile.package.get(&job.name) {
            for entry in &section.write {
                let p = match interpret(project, entry) {
                    Allowed::Existing(p) => p,
                    Allowed::NewDir(p) if create(&p, false) => p,
                    Allowed::NewFile(p) if create(&p, true) => {
                        w.placeholders.push(p.clone());
                        p
                    }
                    Allowed::NewDir(_) | Allowed::NewFile(_) => continue,
                    Allowed::Refused(p, why) => {
                        tracing::info!(
                            "{}: the allowance `{entry}` is not applied: `{}`: {why}",
                            job.name,
                            p.display()
                        );
                        continue;
                    }
                };
                tracing::info!(
                    "{}: `{}` writable by policy ({})",
                    job.name,
                    p.display(),
                    section.reason.as_deref().unwrap_or("")
                );
                w.paths.push(p);
            }
        }
        for d in crate::npm::gyp::outputs_outside(project, &job.dir) {
            if create(&d, false) {
                tracing::info!(
                    "{}: `{}` writable for gyp's generated makefiles",
                    job.name,
                    d.display()
                );
                w.paths.push(d.clone());
                w.gyp_dirs.push(d);
            }
        }
        w
    }

    /// Remove what the script did not use: empty placeholders, and gyp directories nothing was
    /// written into (npm leaves the ones gyp wrote into; so do we).
    pub fn undo(&self) {
        for p in &self.placeholders {
            if std::fs::symlink_metadata(p).is_ok_and(|m| m.is_file() && m.len() == 0) {
                let _ = std::fs::remove_file(p);
            }
        }
        for d in &self.gyp_dirs {
            let _ = std::fs::remove_dir(d);
        }
    }
}

/// Files of the project root that hold the user's secrets by convention (dotenv files, the
/// project's `.npmrc` with registry tokens): denied to dependency and link scripts, which can
/// otherwise read the whole project.
/// Files in the project that hold credentials, denied to dependency and link scripts: the
/// dotenv files and package-manager, netrc and git-credential files of the project root and of
/// every workspace / `file:` directory (`dirs`), a symlinked one through its target inside the
/// project, and the project's `.git/config` when it holds credentials (the `extraheader` token
/// actions/checkout persists, a remote URL with a password).
pub fn project_secrets(project: &Path, dirs: &[PathBuf]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for dir in std::iter::once(project).chain(dirs.iter().map(PathBuf::as_path)) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        for e in entries.flatten().take(10_000) {
            let name = e.file_name();
            let name = name.to_string_lossy();
            let secret = name == ".env"
                || name.starts_with(".env.")
                || [
                    ".npmrc",
                    ".yarnrc",
                    ".yarnrc.yml",
                    ".netrc",
                    ".git-credentials",
                    ".pgpass",
                ]
                .contains(&name.as_ref());
            if !secret {
                continue;
            }
            let Ok(t) = e.file_type() else { continue };
            if t.is_file() {
                out.push(e.path());
            } else if t.is_symlink() {
                // A link is denied through what it points at, when that is in the project (a
                // target elsewhere is not visible to the script at all).
                if let Ok(real) = std::fs::canonicalize(e.path()) {
                    if real.starts_with(project) && real.is_file() {
                        out.push(real);
                    }
                }
            }
        }
    }
    let git_config = project.join(".git/config");
    if std::fs::symlink_metadata(&git_config).is_ok_and(|m| m.is_file() && m.len() < 1 << 20) {
        let text = std::fs::read_to_string(&git_config).unwrap_or_default();
        let userinfo = text.lines().any(|l| {
            l.split_once("://")
                .and_then(|(_, rest)| rest.split('/').next())
                .and_then(|auth| auth.rsplit_once('@'))
                .is_some_and(|(user, _)| user.contains(':'))
        });
        if text.to_ascii_lowercase().contains("extraheader") || userinfo {
            out.push(git_config);
        }
    }
    out.sort();
    out.dedup();
    out
}
