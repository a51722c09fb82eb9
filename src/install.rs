//! `ringfence install` / `ringfence ci`: npm with `--ignore-scripts`, then npm's lifecycle
//! replayed script by script, each in its own sandbox.
//!
//! Steps: read the project (malformed manifest or lockfile → exit 2 before anything changes) →
//! snapshot what npm would diff against → `npm <cmd> --ignore-scripts` with the user's own config,
//! capturing npm's environment → the build set (added/changed nodes and root links) → phases →
//! run each phase's jobs in parallel sandboxes (`--jobs`), barrier between phases → optional
//! failures remove their optional set, a required failure stops and rolls back as npm does.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use crate::error::RunError;
use crate::npm::env::NodeExtras;
use crate::npm::manifest::Manifest;
use crate::npm::scripts::{Job, Kind, PlanInput, plan};
use crate::npm::tree::{Lockfile, build_set, optional_set, scan_identities};
use crate::npm::{self, Command2, NpmError, Toolchain};
use crate::observe::pristine::Snapshot;
use crate::observe::{Observation, Observed, Severity};
use crate::policy::{self, PolicyError, ResolveContext, RunRequest};
use crate::report::{PackageRef, Report, ReportWarning, ScriptRun};
use crate::sandbox::{self, Outcome, SandboxError, Stdio2};

/// Options of `install` / `ci`.
#[derive(Debug, Clone)]
pub struct InstallOptions {
    /// `install` or `ci`.
    pub command: Command2,
    /// Arguments passed to npm.
    pub npm_args: Vec<String>,
    /// Report path.
    pub report: Option<PathBuf>,
    /// Parallel sandboxes per phase.
    pub jobs: usize,
    /// Profile file.
    pub profile: Option<PathBuf>,
    /// Exit 1 when a finding is at least this severe (`None`: never).
    pub fail_on: Option<Severity>,
    /// Exit 1 when a script is `partial` (exited 0 with refusals).
    pub strict: bool,
    /// Containment only: no decoys, canaries or sinkhole.
    pub no_record: bool,
    /// Forensic recording: every open, not only writes.
    pub forensic: bool,
    /// The project directory (default: found from the current directory, as npm does).
    pub project: Option<PathBuf>,
    /// Environment changes for npm and the scripts: `(NAME, Some(value))` sets, `None` removes.
    pub env: Vec<(String, Option<String>)>,
    /// After a required failure, restore the project as npm does (default true; replay keeps
    /// what the scripts left for evidence).
    pub rollback: bool,
    /// Wall-clock limit per script instead of the profile's.
    pub timeout: Option<Duration>,
}

impl InstallOptions {
    /// Options for `command` with everything else at its default.
    pub fn new(command: Command2) -> Self {
        InstallOptions {
            command,
            npm_args: Vec::new(),
            report: None,
            jobs: 1,
            profile: None,
            fail_on: Some(Severity::High),
            strict: false,
            no_record: false,
            forensic: false,
            project: None,
            env: Vec::new(),
            rollback: true,
            timeout: None,
        }
    }
}

/// What happened to one job.
#[derive(Debug)]
struct JobResult {
    job: Job,
    spec: Option<crate::sandbox::spec::SandboxSpec>,
    seccomp: Option<crate::sandbox::seccomp::SeccompPlan>,
    started_unix_ms: u64,
    result: Result<Outcome, RunError>,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    observed: Observed,
    /// The package directory before the script (dependencies, when recording).
    pristine: Option<Snapshot>,
}

impl JobResult {
    fn failed(&self) -> bool {
        match &self.result {
            Ok(o) => o.termination.exit_code() != 0,
            Err(_) => true,
        }
    }
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(0))
        .unwrap_or(0)
}

fn npm_err(e: NpmError) -> RunError {
    RunError::Npm(e)
}

/// Paths outside its own directory a dependency's or link's script may write, made ready
/// before the run (a bind needs an existing target) and tidied after it.
#[derive(Debug, Default)]
struct Writable {
    /// Everything to bind writable.
    paths: Vec<PathBuf>,
    /// Files an allowance names that did not exist: created empty, removed if left empty.
    placeholders: Vec<PathBuf>,
    /// gyp's output directories beside a scoped package: removed if left empty.
    gyp_dirs: Vec<PathBuf>,
}

impl Writable {
    /// The job's policy allowances (each with a reason) and gyp's outputs, created as needed.
    fn prepare(ctx: &Context<'_>, job: &Job) -> Writable {
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
        if let Some(section) = ctx.profile.package.get(&job.name) {
            for entry in &section.write {
                let p = match interpret(ctx.project, entry) {
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
        for d in gyp_outputs_outside(ctx.project, &job.dir) {
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
    fn undo(&self) {
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
fn shadowing_bins(project: &Path) -> Vec<ReportWarning> {
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
        eprintln!(
            "warning[bin-shadows-command]: {} ships a bin `{name}` that shadows the system command for every later script (ringfence runs scripts with the system's shell; other commands they call by name resolve to the bin)",
            crate::report::terminal_safe(&owner)
        );
        out.push(ReportWarning {
            code: "bin-shadows-command".into(),
            location: Some(format!("node_modules/{owner}")),
            message: format!(
                "{owner} ships a bin `{name}` in node_modules/.bin, first on every script's PATH: it shadows the system command"
            ),
        });
    }
    out
}

/// Where gyp writes generated makefiles outside the package directory `pkg`, that do not exist
/// yet. gyp puts the makefile of every `.gyp` file a build depends on at
/// `build/<path from the package to that file's directory>`; for a package in a scope
/// (`node_modules/@s/pkg`) and a hoisted dependency with gyp files (`node_modules/node-addon-api`)
/// that is `node_modules/@s/node-addon-api/`, beside the package. npm creates it; so do we, only
/// for a package that builds with gyp, only for directories that do not exist (never into
/// another package), and remove it again when nothing was written.
fn gyp_outputs_outside(project: &Path, pkg: &Path) -> Vec<PathBuf> {
    if !pkg.join("binding.gyp").is_file() {
        return Vec::new();
    }
    let has_gyp = |d: &Path| {
        std::fs::read_dir(d).is_ok_and(|r| {
            r.flatten()
                .take(1000)
                .any(|e| e.file_name().to_string_lossy().ends_with(".gyp"))
        })
    };
    let top = project.join("node_modules");
    let mut candidates = Vec::new();
    for e in std::fs::read_dir(&top)
        .into_iter()
        .flatten()
        .flatten()
        .take(20_000)
    {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || !e.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        if name.starts_with('@') {
            for f in std::fs::read_dir(e.path())
                .into_iter()
                .flatten()
                .flatten()
                .take(5000)
            {
                if f.file_type().is_ok_and(|t| t.is_dir()) && has_gyp(&f.path()) {
                    candidates.push(f.path());
                }
            }
        } else if has_gyp(&e.path()) {
            candidates.push(e.path());
        }
    }
    let mut out = Vec::new();
    for dep in candidates {
        // build/<relative path from pkg to dep>, resolved lexically.
        let (Ok(p_rel), Ok(d_rel)) = (pkg.strip_prefix(project), dep.strip_prefix(project)) else {
            continue;
        };
        let p_parts: Vec<_> = p_rel.components().collect();
        let d_parts: Vec<_> = d_rel.components().collect();
        let common = p_parts
            .iter()
            .zip(&d_parts)
            .take_while(|(a, b)| a == b)
            .count();
        let ups = p_parts.len() - common;
        // build/ + ups × `..` lands `ups - 1` levels above pkg.
        if ups < 2 {
            continue; // inside the package (build/..)
        }
        let mut target = pkg.to_path_buf();
        for _ in 0..ups - 1 {
            target.pop();
        }
        for c in &d_parts[common..] {
            target.push(c);
        }
        if target.starts_with(project)
            && !target.starts_with(pkg)
            && std::fs::symlink_metadata(&target).is_err()
            && !out.contains(&target)
        {
            out.push(target);
        }
    }
    out
}

/// Global installs write outside the project; they are not supported (yet).
fn is_global(args: &[String]) -> bool {
    args.iter().any(|a| {
        a == "-g"
            || a == "--global"
            || a == "--location=global"
            || a.starts_with("--global=") && a != "--global=false"
    })
}

/// Everything the jobs share.
struct Context<'a> {
    profile: &'a policy::ProfileFile,
    rctx: &'a ResolveContext,
    tool: &'a Toolchain,
    project: &'a Path,
    npm_cache: Option<PathBuf>,
    nodedir: Option<PathBuf>,
    no_record: bool,
    forensic: bool,
    timeout: Option<Duration>,
    /// Workspace and `file:` directories (their secrets are denied too).
    link_dirs: Vec<PathBuf>,
}

impl Context<'_> {
    /// The sandbox for one job: its package directory writable (a dependency's nested
    /// `node_modules` read-only; a link's real directory), or the whole project for the user's own
    /// root scripts; the project,
    /// node, npm and npm's cache readable; no network; throwaway HOME.
    fn spec(
        &self,
        job: &Job,
        extra_rw: &[PathBuf],
    ) -> Result<crate::sandbox::spec::SandboxSpec, RunError> {
        let shell = job
            .env
            .get("npm_config_script_shell")
            .filter(|s| !s.is_empty())
            .cloned()
            .unwrap_or_else(|| "sh".into());
        let mut ro = vec![self.project.to_path_buf(), self.tool.npm_dir.clone()];
        ro.extend(self.npm_cache.iter().cloned());
        ro.extend(self.nodedir.iter().cloned());
        if !self.tool.node_prefix.starts_with("/usr") {
            ro.push(self.tool.node_prefix.clone());
        }
        let mut rw = Vec::new();
        match job.kind {
            Kind::Dep | Kind::Link => {
                // A dependency writes its own directory; so does a link (a workspace package or a
                // `file:` directory, which may be third-party code): its real directory, not the
                // project around it.
                rw.push(job.dir.clone());
                // Policy allowances and gyp's outputs beside the package, prepared by the
                // caller (`Writable::prepare`).
                rw.extend(extra_rw.iter().cloned());
                let nested = job.dir.join("node_modules");
                if job.kind == Kind::Dep && nested.is_dir() {
                    ro.push(nested);
                }
            }
            Kind::Root => {
                // The user's own project scripts (husky's `prepare` writes .git/config).
                rw.push(self.project.to_path_buf());
            }
        }
        ro.retain(|p| p.exists());
        let req = RunRequest {
            command: vec![shell, "-c".into(), job.command.clone()],
            rw,
            ro,
            timeout: self.timeout,
            env: vec![],
            cwd: Some(job.dir.clone()),
            base_env: Some(
                job.env
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            ),
            package: Some(job.name.clone()),
            no_record: self.no_record,
            forensic: self.forensic,
            deny: if job.kind == Kind::Root {
                Vec::new()
            } else {
                let mut d = project_secrets(self.project, &self.link_dirs);
                // npm's global config (`<prefix>/etc/npmrc`) can hold registry tokens and sits
                // inside the node prefix the sandbox shows.
                d.extend(
                    job.env
                        .get("npm_config_globalconfig")
                        .map(PathBuf::from)
                        .filter(|p| p.is_file()),
                );
                d
            },
        };
        let (spec, warnings) = policy::resolve(self.profile, self.rctx, &req)?;
        for w in warnings {
            tracing::debug!("{}@{} {}: {}", job.name, job.version, job.event, w.message);
        }
        Ok(spec)
    }

    fn run_job(&self, job: Job) -> JobResult {
        let writable = match job.kind {
            Kind::Dep | Kind::Link => Writable::prepare(self, &job),
            Kind::Root => Writable::default(),
        };
        let mut r = self.run_job_sandboxed(job, &writable.paths);
        writable.undo();
        if let Some(before) = &r.pristine {
            if r.result.is_ok() {
                let t = Instant::now();
                let after = Snapshot::take(&r.job.dir, &r.job.command);
                let ran: Vec<&[String]> = r
                    .observed
                    .spawned
                    .iter()
                    .map(|s| s.argv.as_slice())
                    .collect();
                let mut found =
                    before.findings(&after, &r.job.command, &ran, r.job.integrity.as_deref());
                found.extend(before.staged_secrets(&after, &r.observed.canaries));
                r.observed.findings.extend(found);
                tracing::debug!(
                    "{}@{} {}: own files compared in {:?}",
                    r.job.name,
                    r.job.version,
                    r.job.event,
                    t.elapsed()
                );
                crate::observe::order(&mut r.observed.findings);
            }
        }
        r
    }

    fn run_job_sandboxed(&self, job: Job, extra_rw: &[PathBuf]) -> JobResult {
        let started_unix_ms = unix_ms();
        // A package's own files, to see what its script does to them (self-modification, erasing
        // the evidence). Links (workspaces, `file:` directories) too; the root project is the
        // user's own.
        let pristine = (!self.no_record && job.kind != Kind::Root)
            .then(|| Snapshot::take(&job.dir, &job.command));
        // Every script gets its own decoy home and canaries, so what is read or written there is
        // attributed to exactly this script.
        let prepared = self.spec(&job, extra_rw).and_then(|mut spec| {
            let obs = if self.no_record {
                None
            } else {
                let caches: Vec<PathBuf> = self.npm_cache.iter().cloned().collect();
                Some(
                    Observation::attach_with_caches(&mut spec, &[], &caches)
                        .map_err(RunError::Observe)?,
                )
            };
            Ok((spec, obs))
        });
        let (spec, mut obs) = match prepared {
            Ok(x) => x,
            Err(e) => {
                return JobResult {
                    pristine: pristine.clone(),
                    job,
                    spec: None,
                    seccomp: None,
                    started_unix_ms,
                    result: Err(e),
                    stdout: vec![],
                    stderr: vec![],
                    observed: Default::default(),
                };
            }
        };
        let plan = crate::app::plan_for(&spec);
        let timeout = spec.limits.timeout_ms.map(Duration::from_millis);
        if job.foreground {
            // npm's banner for foreground scripts, then the script shares our terminal.
            let mut out = std::io::stdout().lock();
            let _ = write!(
                out,
                "\n> {}@{} {}\n> {}\n\n",
                job.name, job.version, job.event, job.command
            );
            let _ = out.flush();
            drop(out);
            let result = sandbox::run(&plan, timeout, Stdio2::inherit(), &mut |s| {
                if let Some(o) = obs.as_mut() {
                    o.take(s);
                }
            })
            .map_err(|source| RunError::Sandbox {
                source,
                diagnosis: None,
            });
            let observed = match (&result, obs) {
                (Ok(o), Some(obs)) => obs.finish(o),
                _ => Default::default(),
            };
            return JobResult {
                pristine: pristine.clone(),
                job,
                seccomp: Some(plan.seccomp.clone()),
                spec: Some(spec),
                started_unix_ms,
                result,
                stdout: vec![],
                stderr: vec![],
                observed,
            };
        }
        let files = (tempfile::tempfile(), tempfile::tempfile());
        let (mut out, mut err) = match files {
            (Ok(o), Ok(e)) => (o, e),
            (Err(e), _) | (_, Err(e)) => {
                return JobResult {
                    pristine: pristine.clone(),
                    job,
                    spec: Some(spec),
                    seccomp: None,
                    started_unix_ms,
                    result: Err(RunError::Sandbox {
                        source: SandboxError::SpawnInit(e),
                        diagnosis: None,
                    }),
                    stdout: vec![],
                    stderr: vec![],
                    observed: Default::default(),
                };
            }
        };
        let stdio = match (out.try_clone(), err.try_clone()) {
            (Ok(o), Ok(e)) => Stdio2 {
                stdout: Some(o.into()),
                stderr: Some(e.into()),
            },
            _ => Stdio2::inherit(),
        };
        let result = sandbox::run(&plan, timeout, stdio, &mut |s| {
            if let Some(o) = obs.as_mut() {
                o.take(s);
            }
        })
        .map_err(|source| RunError::Sandbox {
            source,
            diagnosis: None,
        });
        // What a script printed is kept bounded: its first and last 64 KiB, with the number of
        // bytes left out between them (a script can print gigabytes).
        let read_back = |f: &mut std::fs::File| {
            const KEEP: u64 = 64 << 10;
            let len = f.metadata().map_or(0, |m| m.len());
            let mut v = Vec::new();
            let _ = f.rewind();
            if len <= 2 * KEEP {
                let _ = f.take(2 * KEEP).read_to_end(&mut v);
                return v;
            }
            let _ = f.take(KEEP).read_to_end(&mut v);
            v.extend_from_slice(
                format!("\n[… {} bytes of output left out …]\n", len - 2 * KEEP).as_bytes(),
            );
            if f.seek(std::io::SeekFrom::Start(len - KEEP)).is_ok() {
                let _ = f.take(KEEP).read_to_end(&mut v);
            }
            v
        };
        let stdout = read_back(&mut out);
        let stderr = read_back(&mut err);
        let observed = match (&result, obs) {
            (Ok(o), Some(obs)) => obs.finish(o),
            _ => Default::default(),
        };
        JobResult {
            pristine: pristine.clone(),
            job,
            seccomp: Some(plan.seccomp.clone()),
            spec: Some(spec),
            started_unix_ms,
            result,
            stdout,
            stderr,
            observed,
        }
    }
}

/// Run one phase: background jobs on up to `jobs` parallel sandboxes; once a required job has
/// failed, no further job of the phase is started (npm's first rejection fails the phase).
fn run_phase(ctx: &Context<'_>, jobs: Vec<Job>, parallel: usize) -> Vec<JobResult> {
    let (fg, bg): (Vec<Job>, Vec<Job>) = jobs.into_iter().partition(|j| j.foreground);
    let mut results = Vec::new();
    for job in fg {
        let r = ctx.run_job(job);
        let stop = r.failed();
        results.push(r);
        if stop {
            return results;
        }
    }
    if bg.is_empty() {
        return results;
    }
    let queue = Mutex::new(bg.into_iter().enumerate().collect::<VecDeque<_>>());
    let done = Mutex::new(Vec::<(usize, JobResult)>::new());
    let stop = std::sync::atomic::AtomicBool::new(false);
    let workers = parallel
        .max(1)
        .min(queue.lock().map(|q| q.len()).unwrap_or(1));
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| {
                loop {
                    if stop.load(std::sync::atomic::Ordering::SeqCst) {
                        break;
                    }
                    let next = queue.lock().ok().and_then(|mut q| q.pop_front());
                    let Some((i, job)) = next else { break };
                    let r = ctx.run_job(job);
                    if r.failed() && !r.job.optional {
                        stop.store(true, std::sync::atomic::Ordering::SeqCst);
                    }
                    if let Ok(mut d) = done.lock() {
                        d.push((i, r));
                    }
                }
            });
        }
    });
    let mut done = done.into_inner().unwrap_or_default();
    done.sort_by_key(|(i, _)| *i);
    results.extend(done.into_iter().map(|(_, r)| r));
    results
}

/// Remove an optional set as arborist does: the folders, their bin links, and their entries in
/// the hidden lockfile (package-lock.json keeps them, marked optional).
fn remove_optional_set(
    project: &Path,
    after: &Lockfile,
    set: &BTreeSet<String>,
) -> Result<(), RunError> {
    for loc in set {
        let Some(entry) = after.packages.get(loc) else {
            continue;
        };
        if entry.get("link").and_then(serde_json::Value::as_bool) == Some(true) {
            continue;
        }
        // Bins live in the parent's node_modules/.bin.
        let parent_nm = match loc.rfind("node_modules/") {
            Some(i) => &loc[..i + "node_modules/".len()],
            None => continue,
        };
        if let Some(bins) = entry.get("bin").and_then(serde_json::Value::as_object) {
            for bin in bins.keys() {
                let base = bin.rsplit('/').next().unwrap_or(bin);
                let link = project.join(parent_nm).join(".bin").join(base);
                if std::fs::symlink_metadata(&link).is_ok_and(|m| m.file_type().is_symlink()) {
                    let _ = std::fs::remove_file(&link);
                }
            }
        }
        let dir = project.join(loc);
        if dir.starts_with(project.join("node_modules")) && dir.is_dir() {
            std::fs::remove_dir_all(&dir).map_err(|source| {
                RunError::Npm(NpmError::Read {
                    path: dir.clone(),
                    source,
                })
            })?;
        }
    }
    // Rewrite the hidden lockfile without the removed entries.
    let hidden = project.join("node_modules/.package-lock.json");
    if let Ok(mut v) = npm::read_json(&hidden) {
        if let Some(p) = v.get_mut("packages").and_then(|p| p.as_object_mut()) {
            for loc in set {
                p.remove(loc);
            }
        }
        if let Ok(text) = serde_json::to_string_pretty(&v) {
            let _ = std::fs::write(&hidden, format!("{text}\n"));
        }
    }
    Ok(())
}

/// State needed to leave the project as npm would after a failed required script.
struct Rollback {
    node_modules_existed: bool,
    package_lock: Option<Vec<u8>>,
}

impl Rollback {
    fn apply(&self, project: &Path) -> String {
        let lock = project.join("package-lock.json");
        match &self.package_lock {
            Some(bytes) => {
                let _ = std::fs::write(&lock, bytes);
            }
            None => {
                let _ = std::fs::remove_file(&lock);
            }
        }
        if self.node_modules_existed {
            "package-lock.json was restored; node_modules keeps the packages npm installed (with --ignore-scripts)".into()
        } else {
            let _ = std::fs::remove_dir_all(project.join("node_modules"));
            "node_modules and package-lock.json were removed, as npm does after a failed install"
                .into()
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
fn project_secrets(project: &Path, dirs: &[PathBuf]) -> Vec<PathBuf> {
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

fn script_sha256(cmd: &str) -> String {
    crate::report::sha256_hex(cmd.as_bytes())
}

fn kind_name(k: Kind) -> &'static str {
    match k {
        Kind::Dep => "dependency",
        Kind::Link => "link",
        Kind::Root => "root",
    }
}

/// Print a failed background script like npm does: code, path, command, then its output.
fn print_failure(r: &JobResult) {
    let code = match &r.result {
        Ok(o) => o.termination.exit_code(),
        Err(_) => 2,
    };
    let mut e = std::io::stderr().lock();
    let safe = crate::report::terminal_safe;
    let _ = writeln!(
        e,
        "ringfence error: {}@{} {} script failed",
        safe(&r.job.name),
        safe(&r.job.version),
        r.job.event
    );
    let _ = writeln!(e, "ringfence error code {code}");
    let _ = writeln!(
        e,
        "ringfence error path {}",
        safe(&r.job.dir.display().to_string())
    );
    let _ = writeln!(e, "ringfence error command failed");
    let _ = writeln!(e, "ringfence error command sh -c {}", safe(&r.job.command));
    if let Ok(o) = &r.result {
        if o.timed_out {
            let _ = writeln!(
                e,
                "ringfence error the script timed out and its sandbox was killed"
            );
        }
    }
    for stream in [&r.stdout, &r.stderr] {
        for line in String::from_utf8_lossy(stream).lines() {
            // The script's own output, but never its terminal escapes.
            let _ = writeln!(e, "ringfence error {}", crate::report::terminal_safe(line));
        }
    }
}

/// `ringfence install` / `ringfence ci`.
pub fn run(opts: InstallOptions) -> Result<u8, RunError> {
    run_reporting(opts).0
}

/// [`run`], also handing back the report (when the install got as far as running scripts).
pub fn run_reporting(opts: InstallOptions) -> (Result<u8, RunError>, Option<Report>) {
    let mut slot = None;
    let code = run_inner(opts, &mut slot);
    (code, slot)
}

fn run_inner(opts: InstallOptions, slot: &mut Option<Report>) -> Result<u8, RunError> {
    let t0 = Instant::now();
    if is_global(&opts.npm_args) {
        return Err(RunError::Usage(
            "global installs (`-g`) are not supported: ringfence replays scripts inside a project"
                .into(),
        ));
    }
    let mut rctx = ResolveContext::from_process().map_err(PolicyError::Context)?;
    for (name, value) in &opts.env {
        rctx.env.retain(|(k, _)| k != name);
        if let Some(v) = value {
            rctx.env.push((name.clone(), v.clone()));
        }
    }
    if let Some(p) = &opts.project {
        rctx.cwd = p.clone();
    }
    let mut profile = policy::load(opts.profile.as_deref())?;
    let path_env = rctx.var("PATH").unwrap_or(policy::DEFAULT_PATH).to_string();
    let tool = Toolchain::locate(&path_env, &rctx.cwd).map_err(npm_err)?;
    let project = match &opts.project {
        Some(p) => p.clone(),
        None => npm::find_project(&rctx.cwd).map_err(npm_err)?,
    };
    let project = std::fs::canonicalize(&project).unwrap_or(project);
    if policy::layer_project_file(&mut profile, &project)? {
        tracing::info!("policy: {} layered over the profile", policy::PROJECT_FILE);
    }

    // Read everything npm will read, before anything changes: a malformed manifest or lockfile
    // is exit 2 with the project untouched.
    let root = Manifest::read(&project).map_err(npm_err)?;
    let lock_path = project.join("package-lock.json");
    let package_lock_bytes = std::fs::read(&lock_path).ok();
    let lock_before = Lockfile::read(&lock_path).map_err(npm_err)?;
    // A lockfile that places packages outside node_modules would make npm itself write there:
    // refuse it before npm runs.
    if let Some(l) = &lock_before {
        for (loc, v) in &l.packages {
            let link_target = !loc.starts_with("node_modules/") && !loc.contains("/node_modules/");
            npm::tree::check_location(loc, link_target).map_err(|why| {
                npm_err(NpmError::BadPackage {
                    name: v
                        .get("name")
                        .and_then(|n| n.as_str())
                        .unwrap_or(loc)
                        .to_string(),
                    location: loc.clone(),
                    why,
                })
            })?;
            if let Some(name) = v.get("name").and_then(|n| n.as_str()) {
                npm::tree::check_package_name(name).map_err(|why| {
                    npm_err(NpmError::BadPackage {
                        name: name.to_string(),
                        location: loc.clone(),
                        why,
                    })
                })?;
            }
        }
    }
    if opts.command == Command2::Ci && lock_before.is_none() {
        return Err(RunError::Usage(format!(
            "`ringfence ci` needs a package-lock.json in `{}` (as `npm ci` does)",
            project.display()
        )));
    }
    let node_modules_existed = project.join("node_modules").exists();
    let hidden = project.join("node_modules/.package-lock.json");
    let before = if opts.command == Command2::Ci {
        BTreeMap::new()
    } else {
        match Lockfile::read(&hidden) {
            Ok(Some(l)) => l.identities(),
            _ => scan_identities(&project),
        }
    };
    let locked_before: BTreeMap<String, Option<String>> = lock_before
        .as_ref()
        .map(|l| {
            l.packages
                .iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        v.get("version")
                            .and_then(|x| x.as_str())
                            .map(str::to_string),
                    )
                })
                .collect()
        })
        .unwrap_or_default();

    // npm itself, outside the sandbox, with the user's own configuration.
    let captured =
        npm::run_ignore_scripts(&tool, opts.command, &opts.npm_args, &project, &rctx.env)
            .map_err(npm_err)?;
    let after = Lockfile::read(&hidden)
        .map_err(npm_err)?
        .unwrap_or_default();
    let nodes = build_set(&project, &after, &before).map_err(npm_err)?;
    // A node is "fresh" when npm resolved it from the registry during this install; otherwise
    // arborist loaded it from package-lock.json and knows only the lockfile's metadata.
    let fresh = |n: &npm::tree::Node| {
        opts.command != Command2::Ci
            && locked_before
                .get(&n.location)
                .is_none_or(|v| *v != n.version)
    };
    let mut manifests = nodes
        .iter()
        .map(|n| Manifest::read(&n.dir))
        .collect::<Result<Vec<_>, _>>()
        .map_err(npm_err)?;
    for (n, m) in nodes.iter().zip(manifests.iter_mut()) {
        if !n.link && !fresh(n) {
            if let Some(entry) = after.packages.get(&n.location) {
                m.use_lockfile_meta(entry, &n.name);
            }
        }
    }
    for (n, m) in nodes.iter().zip(&manifests) {
        if let Some(name) = &m.name {
            npm::tree::check_package_name(name).map_err(|why| {
                npm_err(NpmError::BadPackage {
                    name: name.clone(),
                    location: n.location.clone(),
                    why,
                })
            })?;
        }
    }

    // Git dependencies are prepared by npm at fetch time (a nested install plus `prepare`, then
    // packed), which `--ignore-scripts` skips. That is not replayable in node_modules: say so.
    let mut git_unprepared = Vec::new();
    for (n, m) in nodes.iter().zip(&manifests) {
        let git = n.resolved.as_deref().is_some_and(|r| r.starts_with("git+"));
        if git && m.scripts.contains_key("prepare") {
            eprintln!(
                "warning[git-prepare-skipped]: {}@{} is a git dependency with a `prepare` script; npm runs it at fetch time, which `--ignore-scripts` skips, so its build output may be missing (its install scripts are still replayed)",
                m.name.as_deref().unwrap_or(&n.name),
                m.version.as_deref().unwrap_or("?")
            );
            git_unprepared.push(ReportWarning {
                code: "git-prepare-skipped".into(),
                location: Some(n.location.clone()),
                message: format!(
                    "git dependency {} has a `prepare` script that npm runs at fetch time; it was not run",
                    m.name.as_deref().unwrap_or(&n.name)
                ),
            });
        }
    }

    git_unprepared.extend(shadowing_bins(&project));

    let mut npm_env = captured.env.clone();
    let nodedir = match npm_env.get("npm_config_nodedir") {
        Some(d) if !d.is_empty() => Some(PathBuf::from(d)),
        _ => {
            // Give node-gyp the headers of the node that runs, so it never downloads them.
            let d = tool.nodedir();
            match &d {
                Some(d) => {
                    npm_env.insert("npm_config_nodedir".into(), d.display().to_string());
                }
                None => tracing::warn!(
                    "node headers not found under `{}`; native builds will try to download them and fail offline",
                    tool.node_prefix.display()
                ),
            }
            d
        }
    };
    let registry = npm_env
        .get("npm_config_registry")
        .cloned()
        .unwrap_or_else(|| "https://registry.npmjs.org/".into());
    let remain = captured.remain.clone();
    let package_args = match &remain {
        Some(r) => r.len() > 1,
        None => opts.npm_args.iter().any(|a| !a.starts_with('-')),
    };
    let run_root = opts.command == Command2::Ci || !package_args;
    let diff_changed =
        !nodes.iter().all(|n| n.link) || npm::tree::removed_any(&before, &after) || {
            let ids = after.identities();
            ids.iter().any(|(k, v)| before.get(k) != Some(v))
        };
    let node_gyp_bin = tool.node_gyp_bin();
    let input = PlanInput {
        project: &project,
        nodes: nodes
            .iter()
            .zip(&manifests)
            .map(|(n, m)| {
                let fresh = locked_before
                    .get(&n.location)
                    .is_none_or(|v| *v != n.version);
                (n, m, NodeExtras::for_node(n, fresh, &registry))
            })
            .collect(),
        root: &root,
        npm_env: &npm_env,
        node_gyp_bin: &node_gyp_bin,
        run_dependencies: diff_changed,
        run_root,
    };
    let phases = plan(&input);
    let scripted: BTreeSet<&str> = phases
        .iter()
        .flat_map(|p| p.jobs.iter())
        .map(|j| j.location.as_str())
        .collect();
    let install_summary = crate::report::InstallSummary {
        packages: nodes.len(),
        with_scripts: nodes
            .iter()
            .filter(|n| scripted.contains(n.location.as_str()))
            .count(),
        no_install_time_behaviour: nodes
            .iter()
            .zip(&manifests)
            .filter(|(n, _)| !scripted.contains(n.location.as_str()))
            .map(|(n, m)| crate::report::PackageId {
                name: m.name.clone().unwrap_or_else(|| n.name.clone()),
                version: m
                    .version
                    .clone()
                    .or_else(|| n.version.clone())
                    .unwrap_or_default(),
                location: n.location.clone(),
            })
            .collect(),
    };
    drop(scripted);

    let npm_cache = npm_env
        .get("npm_config_cache")
        .map(PathBuf::from)
        .or_else(|| Some(rctx.home.join(".npm")))
        .filter(|p| p.exists())
        .and_then(|p| std::fs::canonicalize(p).ok());
    let ctx = Context {
        profile: &profile,
        rctx: &rctx,
        tool: &tool,
        project: &project,
        npm_cache,
        nodedir,
        no_record: opts.no_record,
        forensic: opts.forensic,
        timeout: opts.timeout,
        link_dirs: nodes
            .iter()
            .filter(|n| n.link)
            .map(|n| n.dir.clone())
            .collect(),
    };
    let rollback = Rollback {
        node_modules_existed,
        package_lock: package_lock_bytes,
    };

    let mut trashed: BTreeSet<String> = BTreeSet::new();
    let mut runs = Vec::new();
    let mut failure: Option<JobResult> = None;
    let mut machinery: Option<RunError> = None;
    let total: usize = phases.iter().map(|p| p.jobs.len()).sum();
    let mut ran = 0usize;
    for phase in phases {
        let jobs: Vec<Job> = phase
            .jobs
            .into_iter()
            .filter(|j| !trashed.contains(&j.location))
            .collect();
        tracing::info!("phase {}: {} script(s)", phase.name, jobs.len());
        for r in run_phase(&ctx, jobs, opts.jobs) {
            ran += 1;
            let outcome = if r.failed() {
                if r.job.optional && r.job.kind == Kind::Dep && r.result.is_ok() {
                    let set = optional_set(&after, &r.job.location);
                    tracing::info!(
                        "optional {}@{} failed its {} script; removing {} package(s)",
                        r.job.name,
                        r.job.version,
                        r.job.event,
                        set.len()
                    );
                    trashed.extend(set);
                    "optional-failed"
                } else {
                    "failed"
                }
            } else {
                "ok"
            };
            if let (Some(spec), Some(seccomp), Ok(o)) = (&r.spec, &r.seccomp, &r.result) {
                let mut run = ScriptRun::new(spec, seccomp, o, r.started_unix_ms);
                run.observed(r.observed.clone());
                run.package = Some(PackageRef {
                    name: r.job.name.clone(),
                    version: r.job.version.clone(),
                    location: r.job.location.clone(),
                    event: r.job.event.clone(),
                    kind: kind_name(r.job.kind).into(),
                    integrity: r.job.integrity.clone(),
                    script_sha256: script_sha256(&r.job.command),
                    outcome: outcome.into(),
                });
                if r.job.kind != Kind::Root {
                    let refused: Vec<&str> = run
                        .findings
                        .iter()
                        .filter(|f| {
                            f.code == crate::findings::Code::WriteRefused
                                && f.severity >= crate::observe::Severity::Medium
                        })
                        .map(|f| f.target.as_str())
                        .collect();
                    run.refused = crate::policy::allowance::refusals(&project, &refused);
                    // A download cannot have succeeded: there is no network in the sandbox.
                    run.refused
                        .extend(crate::policy::allowance::network_refusals(
                            run.findings
                                .iter()
                                .filter(|f| {
                                    f.kind == crate::observe::FindingKind::NetworkAttempt
                                        && f.severity > crate::observe::Severity::Info
                                })
                                .map(|f| f.target.as_str()),
                        ));
                }
                if let Some(claimed) = &r.job.claimed_name {
                    // Policy goes by what npm installed; a manifest naming a package that has
                    // allowances is reaching for them.
                    let privileged = profile.package.contains_key(claimed);
                    let confusion = crate::observe::Finding::new(
                        crate::findings::Code::ManifestConfusion,
                        format!(
                            "its package.json calls it `{claimed}`, but npm installed it as `{}` (manifest confusion){}",
                            r.job.name,
                            if privileged {
                                "; the policy for that name was not applied"
                            } else {
                                ""
                            }
                        ),
                        &r.job.location,
                    )
                    .detail(
                        "packages are identified by their lockfile location and source, never by what their manifest says",
                    );
                    run.findings.push(if privileged {
                        confusion.severity(crate::observe::Severity::High)
                    } else {
                        confusion
                    });
                    crate::observe::order(&mut run.findings);
                }
                runs.push(run);
            }
            if outcome == "failed" {
                match r.result {
                    Err(e) => {
                        if machinery.is_none() {
                            machinery = Some(e);
                        }
                    }
                    Ok(_) => {
                        if failure.is_none() {
                            failure = Some(r);
                        }
                    }
                }
            }
        }
        if failure.is_some() || machinery.is_some() {
            break;
        }
    }
    let mut report = Report::new(runs);
    report.warnings = git_unprepared;
    report.install = Some(install_summary);
    if let Some(path) = &opts.report {
        report.write(path)?;
    }
    eprint!("{}", report.summary(t0.elapsed().as_secs_f64()));
    *slot = Some(report.clone());
    let partial: Vec<String> = report
        .runs
        .iter()
        .filter(|r| !r.refused.is_empty())
        .filter_map(|r| r.package.as_ref())
        .filter(|p| p.outcome == "ok")
        .map(|p| format!("{}@{} {}", p.name, p.version, p.event))
        .collect();
    if opts.strict && !partial.is_empty() {
        eprintln!(
            "ringfence: --strict: {} script(s) exited 0 but are probably incomplete: {}",
            partial.len(),
            partial.join(", ")
        );
    }
    let flagged = match (opts.fail_on, report.worst()) {
        (Some(threshold), Some(worst)) => worst >= threshold,
        _ => false,
    } || (opts.strict && !partial.is_empty());
    if let Some(e) = machinery {
        if opts.rollback {
            let what = rollback.apply(&project);
            eprintln!("ringfence: {what}");
        }
        return Err(e);
    }
    if let Some(f) = failure {
        if !f.job.foreground {
            print_failure(&f);
        }
        if opts.rollback {
            let what = rollback.apply(&project);
            eprintln!("ringfence: {what}");
        }
        if flagged {
            return Ok(1);
        }
        let code = f
            .result
            .as_ref()
            .map(|o| o.termination.exit_code())
            .unwrap_or(1);
        return Ok(u8::try_from(code.clamp(1, 255)).unwrap_or(1));
    }
    if !trashed.is_empty() {
        remove_optional_set(&project, &after, &trashed)?;
    }
    tracing::info!("replayed {ran} of {total} lifecycle script(s)");
    Ok(u8::from(flagged))
}
