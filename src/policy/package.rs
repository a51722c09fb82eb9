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
    /// Credential files found below the project root once per install
    /// ([`credential_files_below`]).
    pub deep_secrets: Vec<PathBuf>,
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
        let mut d = project_secrets(&scope.project, &scope.link_dirs, &scope.deep_secrets);
        // `.git` is the project's history and config, not something a dependency's build
        // reads; hidden (as in a tarball or a Docker build context) unless a policy allowance
        // lets this package write inside it (git-hook installers, which then see it whole
        // except a config holding credentials).
        let git = scope.project.join(".git");
        if !extra_rw.iter().any(|p| p.starts_with(&git))
            && std::fs::symlink_metadata(&git).is_ok_and(|m| !m.file_type().is_symlink())
        {
            d.retain(|p| !p.starts_with(&git));
            d.push(git);
        }
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
    /// Files an allowance names that did not exist: created empty, removed if left empty
    /// (without the recorder).
    pub placeholders: Vec<PathBuf>,
    /// Files an allowance names that did not exist, left absent: the recorder creates one on
    /// the script's behalf when it asks to (so that a tool writing a config template when
    /// there is none does so, as under npm).
    pub creatable: Vec<PathBuf>,
    /// gyp's output directories beside a scoped package: removed if left empty.
    pub gyp_dirs: Vec<PathBuf>,
}

impl Writable {
    /// The job's policy allowances (each with a reason) and gyp's outputs, created as needed.
    /// `recorded`: the recorder runs, and creates allowed files that do not exist yet when the
    /// script asks (otherwise they are created empty beforehand).
    pub fn prepare(profile: &ProfileFile, project: &Path, job: &Job, recorded: bool) -> Writable {
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
                    Allowed::NewFile(p) if recorded && p.parent().is_some_and(Path::is_dir) => {
                        tracing::info!(
                            "{}: `{}` may be created by policy ({})",
                            job.name,
                            p.display(),
                            section.reason.as_deref().unwrap_or("")
                        );
                        w.creatable.push(p);
                        continue;
                    }
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

/// Files in the project that hold credentials, denied to dependency and link scripts: every
/// file whose name says so ([`crate::util::is_credential_file`]: dotenv, package-manager and
/// netrc configs, git credentials, keys) in the project root and every workspace / `file:`
/// directory (`dirs`, looked at again for each script: an earlier script may have created
/// one), the ones found once per install anywhere else in the project (`deep`, see
/// [`credential_files_below`]), a symlinked one through its target inside the project, and
/// the project's `.git/config` when it holds credentials (the `extraheader` token
/// actions/checkout persists, a remote URL with a password).
pub fn project_secrets(project: &Path, dirs: &[PathBuf], deep: &[PathBuf]) -> Vec<PathBuf> {
    let mut out = deep.to_vec();
    for dir in std::iter::once(project).chain(dirs.iter().map(PathBuf::as_path)) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        let parent = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        for e in entries.flatten().take(10_000) {
            if !crate::util::is_credential_file(&parent, &e.file_name().to_string_lossy()) {
                continue;
            }
            if let Some(p) = credential_target(project, &e) {
                out.push(p);
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

/// The file to deny for a credential-named entry: the entry itself when it is a regular file;
/// for a link, what it points at when that is a regular file in the project (a target
/// elsewhere is not visible to the script at all).
fn credential_target(project: &Path, e: &std::fs::DirEntry) -> Option<PathBuf> {
    let t = e.file_type().ok()?;
    if t.is_file() {
        return Some(e.path());
    }
    if t.is_symlink() {
        let real = std::fs::canonicalize(e.path()).ok()?;
        if real.starts_with(project) && real.is_file() {
            return Some(real);
        }
    }
    None
}

/// Most entries looked at, deepest directory descended into, and most files collected by
/// [`credential_files_below`]: a walk of the user's source tree once per install.
const DEEP_ENTRIES: usize = 200_000;
const DEEP_DEPTH: usize = 24;
const DEEP_FILES: usize = 512;

/// Credential files anywhere in the project below its root (a nested `config/.env`, a
/// package's `.npmrc` that is not a workspace, a key in `certs/`), skipping `node_modules`
/// (dependencies' own files) and `.git`. Iterative, never follows a link to a directory, and
/// bounded; the second value says whether a bound was reached (the rest is then not denied).
pub fn credential_files_below(project: &Path) -> (Vec<PathBuf>, bool) {
    let mut out = Vec::new();
    let mut seen = 0usize;
    let mut truncated = false;
    let mut stack = vec![(project.to_path_buf(), 0usize)];
    while let Some((dir, depth)) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        let parent = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        for e in entries.flatten() {
            seen += 1;
            if seen > DEEP_ENTRIES || out.len() >= DEEP_FILES {
                return (out, true);
            }
            let name = e.file_name();
            let name = name.to_string_lossy();
            let Ok(t) = e.file_type() else { continue };
            if t.is_dir() {
                if name == "node_modules" || name == ".git" {
                    continue;
                }
                if depth + 1 >= DEEP_DEPTH {
                    truncated = true;
                    continue;
                }
                stack.push((e.path(), depth + 1));
            } else if depth > 0 && crate::util::is_credential_file(&parent, &name) {
                out.extend(credential_target(project, &e));
            }
        }
    }
    (out, truncated)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Credential files below the root are found wherever they are, except in dependencies'
    /// own directories and in `.git`; links to directories are not descended into.
    #[test]
    fn credential_files_are_found_below_the_root() {
        let t = tempfile::tempdir().unwrap();
        let p = std::fs::canonicalize(t.path()).unwrap();
        for f in [
            "config/.env.production",
            "certs/deploy.key",
            "tools/.npmrc",
            "infra/.aws/credentials",
            "a/b/c/d/id_ed25519",
            "node_modules/x/.npmrc",
            ".git/.env",
            "src/index.js",
            "src/.env.js/readme",
            ".env",
        ] {
            let path = p.join(f);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, "x").unwrap();
        }
        std::os::unix::fs::symlink(p.join("config"), p.join("linked")).unwrap();
        let (mut found, truncated) = credential_files_below(&p);
        found.sort();
        let rel: Vec<String> = found
            .iter()
            .map(|f| f.strip_prefix(&p).unwrap().display().to_string())
            .collect();
        assert_eq!(
            rel,
            [
                "a/b/c/d/id_ed25519",
                "certs/deploy.key",
                "config/.env.production",
                "infra/.aws/credentials",
                "tools/.npmrc",
            ]
        );
        assert!(!truncated);
        // The root's own files are looked at per script, with the workspaces'.
        let all = project_secrets(&p, &[], &found);
        assert!(all.contains(&p.join(".env")));
        assert_eq!(all.len(), 6);
    }

    /// A dependency does not see `.git` at all; a package a policy lets write `.git/hooks` sees
    /// it, minus a config that holds credentials.
    #[test]
    fn git_is_hidden_unless_an_allowance_writes_inside_it() {
        use crate::npm::scripts::{Job, Kind};
        let t = tempfile::tempdir().unwrap();
        let p = std::fs::canonicalize(t.path()).unwrap();
        std::fs::create_dir_all(p.join(".git/hooks")).unwrap();
        std::fs::write(
            p.join(".git/config"),
            "[http]\n\textraheader = AUTHORIZATION: basic x\n",
        )
        .unwrap();
        let dir = p.join("node_modules/dep");
        std::fs::create_dir_all(&dir).unwrap();
        let scope = InstallScope {
            project: p.clone(),
            toolchain: vec![],
            link_dirs: vec![],
            deep_secrets: vec![],
            no_record: false,
            forensic: false,
            timeout: None,
        };
        let job = Job {
            kind: Kind::Dep,
            location: "node_modules/dep".into(),
            name: "dep".into(),
            version: "1.0.0".into(),
            event: "postinstall".into(),
            command: "true".into(),
            dir: dir.clone(),
            env: Default::default(),
            foreground: false,
            optional: false,
            integrity: None,
            claimed_name: None,
        };
        let req = script_request(&scope, &job, &[]);
        assert_eq!(req.deny, vec![p.join(".git")]);
        let req = script_request(&scope, &job, &[p.join(".git/hooks")]);
        assert_eq!(req.deny, vec![p.join(".git/config")]);
    }
}
