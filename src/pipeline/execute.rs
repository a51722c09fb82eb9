//! Running one script: the only place that calls [`sandbox::run`]. `run`, `install`/`ci`,
//! `replay` and `doctor` all come through here, so all get the same hints on a setup failure and
//! the same recording.

use std::io::{Read, Seek};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::doctor::{self, Diagnosis, KernelFacts};
use crate::error::RunError;
use crate::observe::{Observation, Observed};
use crate::sandbox::plan::SetupPlan;
use crate::sandbox::seccomp::SeccompPlan;
use crate::sandbox::spec::{SandboxSpec, Tier};
use crate::sandbox::{self, Outcome, SandboxError, Stdio2};

/// What to record around the run.
#[derive(Debug, Clone)]
pub enum Recording {
    /// Containment only: no decoys, canaries, sinkhole or recorder.
    Off,
    /// Decoy HOME, canaries, sinkhole, recorder.
    On {
        /// Variables the user passed explicitly (`--env`): kept, not replaced by canaries.
        explicit_env: Vec<String>,
        /// Shared read-only caches (npm's) whose write attempts are expected noise.
        caches: Vec<PathBuf>,
        /// Files policy lets the script create that do not exist yet: the recorder creates
        /// them when it asks.
        creatable: Vec<PathBuf>,
        /// The paths the real npm runs from (`Toolchain::run_paths`); empty outside installs.
        npm: Vec<PathBuf>,
    },
}

/// Where the script's output goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Io {
    /// Our own stdout and stderr (foreground scripts, `run`).
    Terminal,
    /// Captured, bounded (head and tail), shown only when asked (background scripts).
    Capture,
}

/// A script ready to run: its final spec, its setup plan, its observation.
#[derive(Debug)]
pub struct Prepared {
    /// The resolved, instrumented spec.
    pub spec: SandboxSpec,
    /// The setup plan the sandbox applies.
    pub plan: SetupPlan,
    observation: Option<Observation>,
    scratch: Option<Scratch>,
    /// The user's HOME (in the landlock tier `spec.home` is the private one that replaces it).
    host_home: PathBuf,
}

/// The landlock tier's private host directories: `tmp/` (the sandbox's /tmp and TMPDIR) and
/// `home` (HOME: a link to the decoy home when recording, else an empty directory). Removed,
/// through the hardened remover, when the run is over.
#[derive(Debug)]
struct Scratch {
    dir: PathBuf,
}

impl Scratch {
    fn create(spec: &mut SandboxSpec) -> std::io::Result<Scratch> {
        // Named like any program's temporary directory: HOME and TMPDIR are below it, and
        // nothing the command sees may name ringfence.
        let dir = tempfile::Builder::new().tempdir()?.keep();
        crate::cleanup::register(&dir);
        let scratch = Scratch { dir };
        let tmp = scratch.dir.join("tmp");
        std::fs::DirBuilder::new().mode(0o700).create(&tmp)?;
        let home = scratch.dir.join("home");
        if spec.exec.cwd == spec.home {
            spec.exec.cwd = home.clone();
        }
        spec.home = home;
        spec.private_tmp = Some(tmp);
        Ok(scratch)
    }

    /// HOME: the decoy home planted by the observation, or an empty directory.
    fn home(&self, spec: &SandboxSpec) -> std::io::Result<()> {
        match &spec.home_source {
            Some(decoys) => std::os::unix::fs::symlink(decoys, &spec.home),
            None => std::fs::DirBuilder::new().mode(0o700).create(&spec.home),
        }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = crate::untrusted::remove_tree(&self.dir);
        crate::cleanup::unregister(&self.dir);
    }
}

/// A script that ran, or whose sandbox could not start.
#[derive(Debug)]
pub struct Executed {
    /// The spec it ran under.
    pub spec: SandboxSpec,
    /// The seccomp plan it was given.
    pub seccomp: SeccompPlan,
    /// When it started.
    pub started_unix_ms: u64,
    /// What the sandbox reported; an error (with its hint) when the sandbox failed.
    pub result: Result<Outcome, RunError>,
    /// Captured output (empty for [`Io::Terminal`]).
    pub stdout: Vec<u8>,
    /// Captured output (empty for [`Io::Terminal`]).
    pub stderr: Vec<u8>,
    /// What the observation recorded.
    pub observed: Observed,
}

impl Prepared {
    /// Attach the observation (it rewrites HOME and the environment of `spec`) and plan the
    /// sandbox.
    pub fn new(
        mut spec: SandboxSpec,
        recording: &Recording,
        tier: Tier,
    ) -> Result<Prepared, RunError> {
        spec.tier = tier;
        let host_home = spec.home.clone();
        let scratch = match tier {
            Tier::Full => None,
            Tier::Landlock => Some(Scratch::create(&mut spec).map_err(RunError::Observe)?),
        };
        let observation = match recording {
            Recording::Off => None,
            Recording::On {
                explicit_env,
                caches,
                creatable,
                npm,
            } => {
                let t = std::time::Instant::now();
                let mut o = Observation::attach_with_caches(
                    &mut spec,
                    explicit_env,
                    caches,
                    scratch.as_ref().map(|_| host_home.as_path()),
                )
                .map_err(RunError::Observe)?;
                o.allow_creating(creatable);
                o.know_npm(npm);
                tracing::debug!("recording attached in {:?}", t.elapsed());
                Some(o)
            }
        };
        if let Some(s) = &scratch {
            s.home(&spec).map_err(RunError::Observe)?;
        }
        let mut plan = SetupPlan::from_spec(&spec, &|p| p.is_dir());
        plan.trace_steps = tracing::enabled!(tracing::Level::DEBUG);
        Ok(Prepared {
            spec,
            plan,
            observation,
            scratch,
            host_home,
        })
    }

    /// Run it to the end and collect what was observed.
    pub fn execute(self, io: Io) -> Executed {
        let Prepared {
            spec,
            plan,
            mut observation,
            scratch,
            host_home,
        } = self;
        let started_unix_ms = crate::util::now_unix_ms();
        let timeout = spec.limits.timeout_ms.map(Duration::from_millis);
        let capture = match io {
            Io::Terminal => Ok(None),
            Io::Capture => tempfile::tempfile()
                .and_then(|o| Ok((o, tempfile::tempfile()?)))
                .map(Some),
        };
        let mut files = match capture {
            Ok(f) => f,
            Err(e) => {
                return Executed {
                    seccomp: plan.seccomp.clone(),
                    spec,
                    started_unix_ms,
                    result: Err(sandbox_error(SandboxError::SpawnInit(e), None)),
                    stdout: Vec::new(),
                    stderr: Vec::new(),
                    observed: Observed::default(),
                };
            }
        };
        let stdio = match &files {
            None => Stdio2::inherit(),
            Some((o, e)) => match (o.try_clone(), e.try_clone()) {
                (Ok(o), Ok(e)) => Stdio2 {
                    stdout: Some(o.into()),
                    stderr: Some(e.into()),
                },
                _ => Stdio2::inherit(),
            },
        };
        let bounded = super::bounds::bounded_dirs(&spec);
        let outputs: Vec<&std::fs::File> = files.iter().flat_map(|(o, e)| [o, e]).collect();
        let mut check = || super::bounds::check(&bounded, &outputs);
        let watch = sandbox::Watch {
            every: super::bounds::EVERY,
            check: &mut check,
        };
        let result = sandbox::run(
            &plan,
            timeout,
            stdio,
            &mut |what| {
                // `run` is single-threaded until the fast launcher forks: only now may the
                // interruption watcher (a thread) start.
                if matches!(what, sandbox::Attach::Started) {
                    crate::cleanup::watch_once();
                }
                if let Some(o) = observation.as_mut() {
                    o.take(what);
                }
            },
            Some(watch),
        )
        .map_err(|e| sandbox_error(e, None));
        drop(outputs);
        let (stdout, stderr) = match files.as_mut() {
            Some((o, e)) => (read_back(o), read_back(e)),
            None => (Vec::new(), Vec::new()),
        };
        let t = std::time::Instant::now();
        let mut observed = match (&result, observation) {
            (Ok(o), Some(obs)) => obs.finish(o),
            _ => Observed::default(),
        };
        if let Some(why) = result.as_ref().ok().and_then(|o| o.stopped.as_deref()) {
            observed.findings.push(super::bounds::finding(why));
            crate::findings::order(&mut observed.findings);
        }
        tracing::debug!("recording finished in {:?}", t.elapsed());
        if scratch.is_some() {
            at_the_users_home(&mut observed.findings, &spec.home, &host_home);
        }
        drop(scratch);
        Executed {
            seccomp: plan.seccomp.clone(),
            spec,
            started_unix_ms,
            result,
            stdout,
            stderr,
            observed,
        }
    }
}

/// Findings name paths below the landlock tier's private HOME as the paths the script was
/// after, below the user's HOME (`~/.ssh/id_ed25519`), as the full tier names them (it mounts the
/// decoy home at the real path): the same act gives the same finding in both tiers.
fn at_the_users_home(findings: &mut [crate::findings::Finding], private: &Path, user: &Path) {
    let (Some(private), Some(user)) = (private.to_str(), user.to_str()) else {
        return;
    };
    let rename = |s: &str| -> Option<String> {
        // Only whole path components: `<private>` or `<private>/…`.
        let mut out = String::new();
        let mut rest = s;
        let mut changed = false;
        while let Some(i) = rest.find(private) {
            let after = &rest[i + private.len()..];
            out.push_str(&rest[..i]);
            if after.is_empty() || after.starts_with('/') {
                out.push_str(user);
                changed = true;
            } else {
                out.push_str(private);
            }
            rest = after;
        }
        out.push_str(rest);
        changed.then_some(out)
    };
    for f in findings {
        if let Some(t) = rename(&f.target) {
            f.target = t;
        }
        if let Some(t) = rename(&f.summary) {
            f.summary = t;
        }
        if let Some(t) = f.detail.as_deref().and_then(rename) {
            f.detail = Some(t);
        }
    }
}

/// What a script printed, bounded: its first and last 64 KiB, with the number of bytes left out
/// between them (a script can print gigabytes).
fn read_back(f: &mut std::fs::File) -> Vec<u8> {
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
}

/// A sandbox failure with its cause and fix, as `doctor` would diagnose it.
pub fn sandbox_error(e: SandboxError, facts: Option<&KernelFacts>) -> RunError {
    let diagnosis = match &e {
        SandboxError::Setup { step, errno, .. } => {
            let owned;
            let facts = match facts {
                Some(f) => f,
                None => {
                    owned = KernelFacts::read();
                    &owned
                }
            };
            doctor::hint(*step, *errno, facts)
        }
        SandboxError::Exec { source, .. } if source.raw_os_error() == Some(libc::ENOENT) => {
            Some(Diagnosis {
                cause:
                    "the program or its interpreter (`#!` line) does not exist inside the sandbox"
                        .into(),
                fix: "expose the interpreter's directory with `--ro`".into(),
            })
        }
        _ => None,
    };
    RunError::Sandbox {
        source: e,
        diagnosis,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::findings::{Code, Finding};

    /// Paths below the landlock tier's private HOME are named below the user's HOME, whole
    /// components only, in the target, the summary and the detail.
    #[test]
    fn findings_name_the_users_home_not_the_private_one() {
        let private = Path::new("/tmp/ringfence-tier-x/home");
        let user = Path::new("/home/u");
        let mut f = vec![
            Finding::new(
                Code::DecoyRead,
                "read decoy `/tmp/ringfence-tier-x/home/.ssh/id_ed25519`",
                "/tmp/ringfence-tier-x/home/.ssh/id_ed25519",
            )
            .detail("also /tmp/ringfence-tier-x/home"),
            Finding::new(Code::DecoyRead, "other", "/tmp/ringfence-tier-x/homeless/x"),
        ];
        at_the_users_home(&mut f, private, user);
        assert_eq!(f[0].target, "/home/u/.ssh/id_ed25519");
        assert_eq!(f[0].summary, "read decoy `/home/u/.ssh/id_ed25519`");
        assert_eq!(f[0].detail.as_deref(), Some("also /home/u"));
        assert_eq!(f[1].target, "/tmp/ringfence-tier-x/homeless/x");
    }
}
