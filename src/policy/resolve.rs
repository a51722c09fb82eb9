//! Raw profile + request + host → [`SandboxSpec`]. Collects every problem before failing.

use std::path::{Path, PathBuf};

use super::file::{ProfileFile, parse_duration_ms, parse_size};
use super::{DEFAULT_PATH, PolicyError, ResolveContext, RunRequest, Warning, presets, search_path};
use crate::sandbox::spec::{
    EnforcementLevels, ExecSpec, Level, Limits, MountKind, MountSpec, NetworkSpec, SandboxSpec,
};

/// Paths the caller may not mount over: the sandbox builds these itself.
const RESERVED: [&str; 3] = ["/proc", "/dev", "/"];

/// Fallback throwaway home when `HOME` is unset or unusable.
const FALLBACK_HOME: &str = "/home/sandbox";

fn size(errors: &mut Vec<String>, key: &str, v: Option<&str>, default: u64) -> u64 {
    match v {
        None => default,
        Some(s) => parse_size(s).unwrap_or_else(|| {
            errors.push(format!(
                "[limits] {key} = {s:?} is not a size like \"512MiB\""
            ));
            default
        }),
    }
}

fn canonical_request_path(
    errors: &mut Vec<String>,
    flag: &str,
    p: &Path,
    cwd: &Path,
) -> Option<PathBuf> {
    let abs = cwd.join(p);
    match std::fs::canonicalize(&abs) {
        Ok(c) => {
            if RESERVED
                .iter()
                .any(|r| c == Path::new(r) || c.starts_with(r) && *r != "/")
            {
                errors.push(format!(
                    "{flag} `{}`: the sandbox provides its own `/`, `/proc` and `/dev`",
                    p.display()
                ));
                None
            } else {
                Some(c)
            }
        }
        Err(e) => {
            errors.push(format!("{flag} `{}`: {e}", abs.display()));
            None
        }
    }
}

/// What resolution found wrong (errors: all reported together) or worth saying (warnings).
#[derive(Debug, Default)]
struct Diagnostics {
    errors: Vec<String>,
    warnings: Vec<Warning>,
}

/// Resolve `profile` and `req` against the host described by `ctx`: mounts, HOME, environment,
/// working directory, limits, program — each step collecting its problems, all reported at once.
pub fn resolve(
    profile: &ProfileFile,
    ctx: &ResolveContext,
    req: &RunRequest,
) -> Result<(SandboxSpec, Vec<Warning>), PolicyError> {
    let mut d = Diagnostics::default();
    let mounts = mounts(profile, ctx, req, &mut d);
    let home = home(ctx, &mounts, &mut d);
    let env = env(profile, ctx, req, &home, &mut d);
    let cwd = cwd(ctx, req, &mounts, &home, &mut d);
    let (limits, tmp_size, home_size, shm_size) = limits(profile, req, &mut d);
    if req.command.is_empty() {
        d.errors.push("no command given".to_string());
    }
    if !d.errors.is_empty() {
        return Err(PolicyError::Invalid(d.errors));
    }
    let program = program(ctx, req, &env, &cwd, &mounts)?;
    let spec = SandboxSpec {
        exec: ExecSpec {
            program,
            argv: req.command.clone(),
            env,
            cwd,
        },
        mounts,
        home,
        home_source: None,
        tmp_size,
        shm_size,
        home_size,
        hostname: profile
            .sandbox
            .hostname
            .clone()
            .unwrap_or_else(|| "localhost".into()),
        uid: ctx.uid,
        gid: ctx.gid,
        limits,
        enforcement: EnforcementLevels {
            landlock: profile.enforcement.landlock.unwrap_or(Level::BestEffort),
            seccomp: profile.enforcement.seccomp.unwrap_or(Level::Required),
        },
        network: if profile.net.record.unwrap_or(true) && !req.no_record {
            NetworkSpec::Sinkhole {
                tcp_ports: crate::sandbox::spec::SINKHOLE_TCP_PORTS.to_vec(),
            }
        } else {
            NetworkSpec::Isolated
        },
        record_syscalls: profile.net.record.unwrap_or(true) && !req.no_record,
        record_reads: req.forensic && !req.no_record,
        tier: crate::sandbox::spec::Tier::Full,
        private_tmp: None,
    };
    Ok((spec, d.warnings))
}

/// A host path is visible only under a bind of the host: the sandbox's /tmp and HOME are
/// private, so the host's /tmp/x or ~/x are *not* what the sandbox sees at those paths.
fn visible(mounts: &[MountSpec], p: &Path) -> bool {
    mounts
        .iter()
        .any(|m| p.starts_with(&m.path) && !matches!(m.kind, MountKind::Symlink { .. }))
}

/// The profile's paths and presets, the denied files, then the command line's `--ro`/`--rw`;
/// one entry per path, the later (command line over profile) winning.
fn mounts(
    profile: &ProfileFile,
    ctx: &ResolveContext,
    req: &RunRequest,
    d: &mut Diagnostics,
) -> Vec<MountSpec> {
    let mut mounts: Vec<MountSpec> = Vec::new();
    for entry in &profile.fs.read_only {
        if entry.starts_with('@') {
            match presets::expand(entry, ctx) {
                Some(list) => mounts.extend(list),
                None => d.errors.push(format!(
                    "[fs] read-only: unknown preset `{entry}` (known: {})",
                    presets::PRESETS.join(", ")
                )),
            }
        } else if let Ok(c) = std::fs::canonicalize(entry) {
            mounts.push(MountSpec {
                path: c,
                kind: MountKind::ReadOnly,
            });
        } else {
            d.warnings.push(Warning {
                code: "missing-path",
                message: format!("[fs] read-only `{entry}` does not exist; skipped"),
                hint: None,
            });
        }
    }
    for entry in &profile.fs.read_write {
        match std::fs::canonicalize(entry) {
            Ok(c) => mounts.push(MountSpec {
                path: c,
                kind: MountKind::ReadWrite,
            }),
            Err(_) => d.warnings.push(Warning {
                code: "missing-path",
                message: format!("[fs] read-write `{entry}` does not exist; skipped"),
                hint: None,
            }),
        }
    }
    // Denied files and hidden directories: mounted over last (mounts are applied parents
    // first, so a path inside a bound directory is covered after its directory).
    for p in &req.deny {
        if let Ok(c) = std::fs::canonicalize(p) {
            if c.is_file() || c.is_dir() {
                mounts.push(MountSpec {
                    path: c,
                    kind: MountKind::Denied,
                });
            }
        }
    }
    for (flag, list, kind) in [
        ("--ro", &req.ro, MountKind::ReadOnly),
        ("--rw", &req.rw, MountKind::ReadWrite),
    ] {
        for p in list {
            if let Some(path) = canonical_request_path(&mut d.errors, flag, p, &ctx.cwd) {
                mounts.push(MountSpec {
                    path,
                    kind: kind.clone(),
                });
            }
        }
    }
    // One entry per path; the later one (command line over profile) wins.
    let mut dedup: Vec<MountSpec> = Vec::new();
    for m in mounts {
        dedup.retain(|d| d.path != m.path);
        dedup.push(m);
    }
    dedup
}

/// HOME: the real path, replaced by a throwaway tmpfs. A missing, relative or system HOME falls
/// back to a neutral path.
fn home(ctx: &ResolveContext, mounts: &[MountSpec], d: &mut Diagnostics) -> PathBuf {
    let home = if ctx.home.is_absolute()
        && ctx.home != Path::new("/")
        && !RESERVED
            .iter()
            .any(|r| ctx.home.starts_with(r) && *r != "/")
        && !mounts
            .iter()
            .any(|m| matches!(m.kind, MountKind::Symlink { .. }) && m.path == ctx.home)
        && !ctx.home.starts_with("/usr")
        && !ctx.home.starts_with("/etc")
    {
        ctx.home.clone()
    } else {
        PathBuf::from(FALLBACK_HOME)
    };
    // A mount of HOME itself goes on top of the throwaway tmpfs (same depth, later): say so.
    // Ancestors of HOME are harmless (the tmpfs covers HOME) and descendants are the point.
    if let Some(m) = mounts
        .iter()
        .find(|m| m.path == home && !matches!(m.kind, MountKind::Symlink { .. }))
    {
        d.warnings.push(Warning {
            code: "home-exposed",
            message: format!(
                "`{}` exposes your real home directory inside the sandbox",
                m.path.display()
            ),
            hint: None,
        });
    }
    home
}

/// Environment: the profile's allowlist (or npm's exact environment), then explicit settings;
/// HOME, TMPDIR and PATH always ours.
fn env(
    profile: &ProfileFile,
    ctx: &ResolveContext,
    req: &RunRequest,
    home: &Path,
    d: &mut Diagnostics,
) -> Vec<(String, String)> {
    let matches = |pattern: &str, name: &str| match pattern.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => pattern == name,
    };
    let mut env: Vec<(String, String)> = match &req.base_env {
        Some(base) => base.clone(),
        None => ctx
            .env
            .iter()
            .filter(|(k, _)| profile.env.pass.iter().any(|p| matches(p, k)))
            .cloned()
            .collect(),
    };
    let set = |env: &mut Vec<(String, String)>, k: &str, v: &str| {
        env.retain(|(name, _)| name != k);
        env.push((k.to_string(), v.to_string()));
    };
    for (k, v) in &profile.env.set {
        set(&mut env, k, v);
    }
    for e in &req.env {
        match e.split_once('=') {
            Some((k, v)) if !k.is_empty() => set(&mut env, k, v),
            _ => match ctx.var(e) {
                Some(v) => set(&mut env, e, v),
                None => d.warnings.push(Warning {
                    code: "env-unset",
                    message: format!("--env `{e}`: not set in your environment; skipped"),
                    hint: None,
                }),
            },
        }
    }
    set(&mut env, "HOME", &home.display().to_string());
    if req.base_env.is_none() || env.iter().any(|(k, _)| k == "TMPDIR") {
        set(&mut env, "TMPDIR", "/tmp");
    }
    if !env.iter().any(|(k, _)| k == "PATH") {
        set(&mut env, "PATH", DEFAULT_PATH);
    }
    env.sort();
    env
}

/// Working directory: the requested or current one if it is visible, else the throwaway home.
fn cwd(
    ctx: &ResolveContext,
    req: &RunRequest,
    mounts: &[MountSpec],
    home: &Path,
    d: &mut Diagnostics,
) -> PathBuf {
    let cwd = match &req.cwd {
        Some(c) => canonical_request_path(&mut d.errors, "--cwd", c, &ctx.cwd),
        None => std::fs::canonicalize(&ctx.cwd).ok(),
    };
    match cwd {
        Some(c) if visible(mounts, &c) => c,
        Some(c) => {
            if req.cwd.is_some() {
                d.errors.push(format!(
                    "--cwd `{}` is not visible inside the sandbox; add `--ro` or `--rw` for it",
                    c.display()
                ));
            } else if c == Path::new("/") || c == home {
                // Nothing to expose: `/` is the sandbox's own, HOME is the throwaway one.
            } else {
                d.warnings.push(Warning {
                    code: "cwd-not-visible",
                    message: format!(
                        "the current directory `{}` is not mounted in the sandbox; running in `{}`",
                        c.display(),
                        home.display()
                    ),
                    hint: Some("pass `--ro .` or `--rw .` to expose it".into()),
                });
            }
            home.to_path_buf()
        }
        None => home.to_path_buf(),
    }
}

/// Limits: wall clock (per package, then profile, then 15 minutes), processes, files, sizes.
fn limits(profile: &ProfileFile, req: &RunRequest, d: &mut Diagnostics) -> (Limits, u64, u64, u64) {
    let l = &profile.limits;
    let package_timeout = req
        .package
        .as_ref()
        .and_then(|name| profile.package.get(name))
        .and_then(|p| p.timeout.as_deref());
    let timeout_ms = match &req.timeout {
        Some(t) => Some(u64::try_from(t.as_millis()).unwrap_or(u64::MAX)),
        None => match package_timeout.or(l.timeout.as_deref()) {
            None => Some(15 * 60_000),
            Some(s) => match parse_duration_ms(s) {
                Some(0) => None,
                Some(ms) => Some(ms),
                None => {
                    d.errors.push(format!(
                        "[limits] timeout = {s:?} is not a duration like \"15m\""
                    ));
                    None
                }
            },
        },
    };
    let cpu_secs = l.cpu.as_deref().and_then(|s| match parse_duration_ms(s) {
        Some(ms) => Some(ms.div_ceil(1000)),
        None => {
            d.errors
                .push(format!("[limits] cpu = {s:?} is not a duration"));
            None
        }
    });
    let limits = Limits {
        timeout_ms,
        nproc: l.nproc.unwrap_or(1024),
        nofile: l.nofile.unwrap_or(4096),
        fsize: size(&mut d.errors, "fsize", l.fsize.as_deref(), 8 << 30),
        cpu_secs,
    };
    let tmp_size = size(&mut d.errors, "tmp-size", l.tmp_size.as_deref(), 4 << 30);
    let home_size = size(&mut d.errors, "home-size", l.home_size.as_deref(), 1 << 30);
    let shm_size = size(&mut d.errors, "shm-size", l.shm_size.as_deref(), 512 << 20);
    (limits, tmp_size, home_size, shm_size)
}

/// The program, resolved against the sandbox PATH (a lifecycle script's shell against the
/// system part of it only), which must be visible inside.
fn program(
    ctx: &ResolveContext,
    req: &RunRequest,
    env: &[(String, String)],
    cwd: &Path,
    mounts: &[MountSpec],
) -> Result<PathBuf, PolicyError> {
    let arg0 = &req.command[0];
    let sandbox_path = env
        .iter()
        .find(|(k, _)| k == "PATH")
        .map(|(_, v)| v.clone())
        .unwrap_or_else(|| DEFAULT_PATH.to_string());
    let program = if arg0.contains('/') {
        let p = ctx.cwd.join(arg0);
        if !p.is_file() {
            return Err(PolicyError::CommandNotFound(arg0.clone()));
        }
        p
    } else if req.package.is_some() {
        // A lifecycle script's shell comes from the system, never from `node_modules/.bin`: any
        // package can ship a bin called `sh`, and npm puts those directories first on PATH.
        let system: Vec<&str> = sandbox_path
            .split(':')
            .filter(|d| {
                !Path::new(d)
                    .components()
                    .any(|c| c.as_os_str() == "node_modules")
            })
            .collect();
        search_path(&system.join(":"), arg0, cwd)
            .ok_or_else(|| PolicyError::CommandNotFound(arg0.clone()))?
    } else {
        search_path(&sandbox_path, arg0, cwd)
            .ok_or_else(|| PolicyError::CommandNotFound(arg0.clone()))?
    };
    let real = std::fs::canonicalize(&program).unwrap_or_else(|_| program.clone());
    if !visible(mounts, &real) {
        return Err(PolicyError::CommandNotVisible {
            dir: real.parent().unwrap_or(Path::new("/")).to_path_buf(),
            path: real,
        });
    }
    Ok(program)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{DEFAULT_PROFILE, load};

    fn ctx(home: &str) -> ResolveContext {
        ResolveContext {
            uid: 1000,
            gid: 1000,
            home: PathBuf::from(home),
            cwd: PathBuf::from("/"),
            env: vec![
                ("PATH".into(), "/usr/bin:/bin".into()),
                ("NPM_TOKEN".into(), "npm_secret".into()),
                ("LC_ALL".into(), "C".into()),
                ("HOME".into(), home.into()),
            ],
        }
    }

    fn req(cmd: &[&str]) -> RunRequest {
        RunRequest {
            command: cmd.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn default_profile_resolves_with_system_view_and_scrubbed_env() {
        let profile = load(None).unwrap();
        let (spec, _) = resolve(&profile, &ctx("/home/u"), &req(&["true"])).unwrap();
        assert!(spec.mounts.iter().any(|m| m.path == Path::new("/usr")));
        assert!(!spec.mounts.iter().any(|m| m.path == Path::new("/etc")));
        assert!(spec.exec.env.contains(&("LC_ALL".into(), "C".into())));
        assert!(!spec.exec.env.iter().any(|(k, _)| k == "NPM_TOKEN"));
        assert!(spec.exec.env.contains(&("HOME".into(), "/home/u".into())));
        assert!(spec.exec.env.contains(&("TMPDIR".into(), "/tmp".into())));
        assert_eq!(spec.home, Path::new("/home/u"));
        assert_eq!(spec.limits.timeout_ms, Some(900_000));
        // cwd `/` is not visible as such: the throwaway home is used.
        assert_eq!(spec.exec.cwd, Path::new("/home/u"));
        assert!(spec.exec.program.ends_with("true"));
        assert!(DEFAULT_PROFILE.contains("@etc"));
    }

    #[test]
    fn all_problems_are_reported_at_once() {
        let mut profile = load(None).unwrap();
        profile.fs.read_only.push("@nope".into());
        profile.limits.timeout = Some("soon".into());
        let mut r = req(&["true"]);
        r.rw.push(PathBuf::from("/definitely/missing/path"));
        r.ro.push(PathBuf::from("/proc/self"));
        let err = resolve(&profile, &ctx("/home/u"), &r).unwrap_err();
        let PolicyError::Invalid(list) = err else {
            panic!("{err}")
        };
        assert_eq!(list.len(), 4, "{list:#?}");
    }

    #[test]
    fn missing_command_and_invisible_command() {
        let profile = load(None).unwrap();
        let err = resolve(&profile, &ctx("/home/u"), &req(&["no-such-cmd-xyz"])).unwrap_err();
        assert!(matches!(err, PolicyError::CommandNotFound(_)), "{err}");
        let exe = std::env::current_exe().unwrap();
        let r = req(&[exe.to_str().unwrap()]);
        let err = resolve(&profile, &ctx("/home/u"), &r).unwrap_err();
        assert!(
            matches!(err, PolicyError::CommandNotVisible { .. }) || exe.starts_with("/usr"),
            "{err}"
        );
    }

    #[test]
    fn cli_overrides_profile_and_env_flags() {
        let profile = load(None).unwrap();
        let mut r = req(&["true"]);
        r.timeout = Some(std::time::Duration::from_secs(3));
        r.env = vec!["FOO=bar".into(), "NPM_TOKEN".into()];
        let (spec, _) = resolve(&profile, &ctx("/"), &r).unwrap();
        assert_eq!(spec.limits.timeout_ms, Some(3000));
        assert!(spec.exec.env.contains(&("FOO".into(), "bar".into())));
        // Explicitly requested: passed.
        assert!(
            spec.exec
                .env
                .contains(&("NPM_TOKEN".into(), "npm_secret".into()))
        );
        // HOME "/" is unusable: neutral fallback.
        assert_eq!(spec.home, Path::new(FALLBACK_HOME));
    }
}
