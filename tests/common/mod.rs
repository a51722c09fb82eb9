//! Shared test harness: a disposable world per test, the real binary, the probe helper, and the
//! user-namespace gate.
//!
//! Environment knobs:
//! - `RINGFENCE_TEST_MUST_WORK=1`: a missing capability (user namespaces, gcc for the probe) is a
//!   failure, not a skip. CI always sets it.
//! - `RINGFENCE_BIN`: the `ringfence` binary to test (default: the one cargo built). CI sets it
//!   when it re-runs the suite as an unprivileged user from a copy of the build.
//! - `RINGFENCE_FIXTURES`: the fixtures directory (default: the source tree's).
//! - `RINGFENCE_TEST_SKIP_CLEANUP=1`: keep each test's temporary directory.
//! - `RINGFENCE_TEST_TIER=landlock`: run ringfence the way containers start it, under Docker's
//!   default seccomp refusals for namespaces (`fixtures/probe/docker-seccomp.c`), so that it must
//!   choose the landlock tier by itself; tests state what holds in each tier ([`tier`]).

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

/// The binary under test, as tests run it: under `RINGFENCE_TEST_TIER=landlock` a wrapper that
/// starts it under Docker's default seccomp refusals for namespaces (so the full tier cannot
/// start and ringfence must choose the landlock tier by itself), otherwise [`real_bin`].
pub fn bin() -> PathBuf {
    match tier() {
        Tier::Full => real_bin(),
        Tier::Landlock => container_like_wrapper().clone(),
    }
}

/// The ringfence binary itself.
pub fn real_bin() -> PathBuf {
    std::env::var_os("RINGFENCE_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_ringfence")))
}

/// The isolation tier this run of the suite exercises.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tier {
    /// Namespaces available (the default).
    Full,
    /// `RINGFENCE_TEST_TIER=landlock`: ringfence runs where namespaces are refused.
    Landlock,
}

/// [`Tier`] from `RINGFENCE_TEST_TIER` (`full` or unset, `landlock`).
pub fn tier() -> Tier {
    match std::env::var("RINGFENCE_TEST_TIER").as_deref() {
        Err(_) | Ok("") | Ok("full") => Tier::Full,
        Ok("landlock") => Tier::Landlock,
        Ok(other) => panic!("RINGFENCE_TEST_TIER={other}: expected `full` or `landlock`"),
    }
}

/// The tiers a test that names its tier (`--tier …`) can exercise in this run: both where
/// namespaces work, only the landlock tier under `RINGFENCE_TEST_TIER=landlock`.
pub fn tiers_here() -> &'static [&'static str] {
    match tier() {
        Tier::Full => &["full", "landlock"],
        Tier::Landlock => &["landlock"],
    }
}

/// `fixtures/probe/docker-seccomp.c` built for [`real_bin`], once per test process.
fn container_like_wrapper() -> &'static PathBuf {
    static WRAPPER: OnceLock<PathBuf> = OnceLock::new();
    WRAPPER.get_or_init(|| {
        let target = real_bin().canonicalize().expect("the ringfence binary");
        let define = format!("-DTARGET={:?}", target.to_str().unwrap());
        // One wrapper per target: test processes for another binary never replace this one.
        let id = {
            use std::hash::{Hash, Hasher};
            let mut h = std::collections::hash_map::DefaultHasher::new();
            target.hash(&mut h);
            h.finish()
        };
        let out = compile_fixture(
            "docker-seccomp.c",
            &format!("ringfence-docker-seccomp-{id:016x}"),
            &["-Werror", define.as_str()],
        )
        .expect("gcc could not build docker-seccomp.c (RINGFENCE_TEST_TIER=landlock needs it)");
        // Proof that it refuses what it should: under it the full tier cannot start.
        let probe = Command::new(&out)
            .args(["doctor"])
            .current_dir("/")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&probe.stdout);
        assert!(
            text.contains("landlock: no namespaces"),
            "under docker-seccomp.c, doctor should report the landlock tier:\n{text}{}",
            String::from_utf8_lossy(&probe.stderr)
        );
        out
    })
}

/// The fixtures directory.
pub fn fixtures() -> PathBuf {
    std::env::var_os("RINGFENCE_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures"))
}

fn must_work() -> bool {
    std::env::var("RINGFENCE_TEST_MUST_WORK").as_deref() == Ok("1")
}

/// Skip (loudly) or fail (under MUST_WORK) when a prerequisite is missing.
pub fn skip_or_fail(why: &str) -> bool {
    if must_work() {
        panic!("RINGFENCE_TEST_MUST_WORK=1 but {why}");
    }
    eprintln!("SKIP: {why} (see scripts/check-userns.sh)");
    false
}

/// Whether user namespaces work here; probed once by running the real sandbox around `true`.
pub fn require_userns() -> bool {
    static OK: OnceLock<Result<(), String>> = OnceLock::new();
    let r = OK.get_or_init(|| {
        let out = Command::new(bin())
            .args(["run", "--", "true"])
            .current_dir("/")
            .output()
            .map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    });
    match r {
        Ok(()) => true,
        Err(e) => skip_or_fail(&format!("the sandbox cannot start here: {e}")),
    }
}

/// `id -u` of the test process.
pub fn uid() -> u32 {
    nix_uid()
}

fn nix_uid() -> u32 {
    // Read from /proc to avoid a libc dependency in tests.
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

/// The compiled `try-syscall` probe, in a directory that tests expose read-only.
pub fn probe() -> Option<PathBuf> {
    static PROBE: OnceLock<Option<PathBuf>> = OnceLock::new();
    PROBE
        .get_or_init(|| compile_fixture("try-syscall.c", "try-syscall", &[]))
        .clone()
}

/// `fixtures/probe/<source>` built with gcc (`-O1 -Wall` and `args`) into `name` in a per-uid
/// directory that tests expose read-only; replaced atomically, so concurrent test processes
/// never run a half-written binary and nothing piles up per process.
fn compile_fixture(source: &str, name: &str, args: &[&str]) -> Option<PathBuf> {
    let dir = std::env::temp_dir().join(format!("ringfence-probe-{}", uid()));
    std::fs::create_dir_all(&dir).ok()?;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).ok()?;
    let out = dir.join(name);
    let tmp = dir.join(format!("{name}.{}", std::process::id()));
    let status = Command::new("gcc")
        .args(["-O1", "-Wall"])
        .args(args)
        .arg("-o")
        .arg(&tmp)
        .arg(fixtures().join("probe").join(source))
        .status()
        .ok()?;
    if !status.success() {
        return None;
    }
    std::fs::rename(&tmp, &out).ok()?;
    Some(out)
}

/// The first line `child` prints on its stdout (taken from it), e.g. a server's port.
pub fn first_line(child: &mut std::process::Child) -> String {
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    line
}

/// The probe, or skip/fail when it cannot be built.
pub fn require_probe() -> Option<PathBuf> {
    match probe() {
        Some(p) => Some(p),
        None => {
            skip_or_fail("gcc could not build fixtures/probe/try-syscall.c");
            None
        }
    }
}

/// Parse the probe's `name result` lines.
pub fn probe_results(stdout: &[u8]) -> BTreeMap<String, String> {
    String::from_utf8_lossy(stdout)
        .lines()
        .filter_map(|l| {
            let (a, b) = l.split_once(' ')?;
            Some((a.to_string(), b.to_string()))
        })
        .collect()
}

/// A disposable world: a temp dir with `home/` (what the test pretends is the user's real home),
/// `home/project/` (real users keep their projects under HOME: the default of every test) and
/// `outside/`.
pub struct TestContext {
    dir: tempfile::TempDir,
    /// Fake real home (HOME for the ringfence process).
    pub home: PathBuf,
    /// A project directory, under `home` as real users have it.
    pub project: PathBuf,
    /// A directory never exposed to the sandbox.
    pub outside: PathBuf,
}

impl TestContext {
    /// A new world.
    pub fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("ringfence-test-")
            .tempdir()
            .unwrap();
        let root = dir.path().canonicalize().unwrap();
        let ctx = TestContext {
            home: root.join("home"),
            project: root.join("home/project"),
            outside: root.join("outside"),
            dir,
        };
        for d in [&ctx.home, &ctx.project, &ctx.outside] {
            std::fs::create_dir_all(d).unwrap();
        }
        ctx
    }

    /// The world's root.
    pub fn root(&self) -> PathBuf {
        self.dir.path().canonicalize().unwrap()
    }

    /// Where a test's project called `name` lives: under HOME, as real users have it.
    pub fn project_dir(&self, name: &str) -> PathBuf {
        self.home.join(name)
    }

    /// `ringfence <args>` with HOME set to the fake home, run from the project directory.
    pub fn cmd(&self) -> Command {
        let mut c = Command::new(bin());
        c.env("HOME", &self.home)
            .env("XDG_STATE_HOME", self.root().join("state"))
            .env("XDG_CACHE_HOME", self.root().join("xdg-cache"))
            .current_dir(&self.project)
            .stdin(Stdio::null());
        c
    }

    /// `ringfence run [flags] -- sh -c SCRIPT`, with the project writable.
    pub fn sh(&self, script: &str) -> Output {
        self.run(
            &["--rw", self.project.to_str().unwrap()],
            &["sh", "-c", script],
        )
    }

    /// `ringfence run FLAGS -- COMMAND`.
    pub fn run(&self, flags: &[&str], command: &[&str]) -> Output {
        self.cmd()
            .arg("run")
            .args(flags)
            .arg("--")
            .args(command)
            .output()
            .unwrap()
    }
}

impl Drop for TestContext {
    fn drop(&mut self) {
        if std::env::var("RINGFENCE_TEST_SKIP_CLEANUP").as_deref() == Ok("1") {
            let kept =
                std::mem::replace(&mut self.dir, tempfile::Builder::new().tempdir().unwrap());
            eprintln!("kept {}", kept.keep().display());
        }
    }
}

/// Render an Output for assertion messages.
pub fn show(out: &Output) -> String {
    format!(
        "status: {:?}\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A command the host watched to its end.
pub struct Watched {
    pub output: Output,
    /// The process's own resident-set high-water mark (`VmHWM`, not its children's), as last
    /// sampled before it exited, in KiB.
    pub peak_rss_kib: u64,
    pub elapsed: std::time::Duration,
    /// It was still running at the deadline and was killed.
    pub killed: bool,
}

/// Run `cmd` to its end, sampling the kernel's high-water mark of its resident memory every
/// 20 ms, and kill it (SIGKILL, by the pid this call started) at `deadline`: a ringfence that
/// hangs fails the test instead of hanging it.
pub fn run_watched(cmd: &mut Command, deadline: std::time::Duration) -> Watched {
    use nix::sys::wait::{Id, WaitPidFlag, waitid};
    use std::io::Read;
    let start = std::time::Instant::now();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = r.read_to_end(&mut buf);
            buf
        })
    };
    let out = drain(Box::new(child.stdout.take().unwrap()));
    let err = drain(Box::new(child.stderr.take().unwrap()));
    let mut peak = 0;
    let mut killed = false;
    loop {
        // WNOWAIT: an exited child stays unreaped, so the pid sampled below is always ours.
        let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT;
        let id = Id::Pid(nix::unistd::Pid::from_raw(i32::try_from(pid).unwrap()));
        match waitid(id, flags) {
            Ok(nix::sys::wait::WaitStatus::StillAlive) => {}
            Ok(_) => break,
            Err(e) => panic!("waitid {pid}: {e}"),
        }
        // A zombie has no VmHWM line: the last sample stands.
        if let Some(kib) = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("VmHWM:"))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            })
        {
            peak = peak.max(kib);
        }
        if !killed && start.elapsed() > deadline {
            killed = true;
            let _ = child.kill();
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let status = child.wait().unwrap();
    let elapsed = start.elapsed();
    Watched {
        output: Output {
            status,
            stdout: out.join().unwrap(),
            stderr: err.join().unwrap(),
        },
        peak_rss_kib: peak,
        elapsed,
        killed,
    }
}

/// A command's stdout as text.
pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Host processes whose command line contains `marker`.
pub fn host_processes_with(marker: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        if entry.file_name().to_string_lossy().parse::<u32>().is_err() {
            continue;
        }
        if let Ok(raw) = std::fs::read(entry.path().join("cmdline")) {
            let cmd = String::from_utf8_lossy(&raw).replace('\0', " ");
            if cmd.contains(marker) {
                found.push(format!("{} {}", entry.file_name().to_string_lossy(), cmd));
            }
        }
    }
    found
}

/// Copy a directory tree, following symlinks (fixture projects share files through links).
pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let src = e.path();
        let dst = to.join(e.file_name());
        if std::fs::metadata(&src).unwrap().is_dir() {
            copy_tree(&src, &dst);
        } else {
            std::fs::copy(&src, &dst).unwrap();
        }
    }
}

/// Find an executable on the test's PATH.
pub fn which(name: &str) -> Option<PathBuf> {
    std::env::var("PATH")
        .ok()?
        .split(':')
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
}

/// The fixture registry (`tests/registry/serve.py`) on a loopback port; killed on drop.
pub struct Registry {
    child: std::process::Child,
    /// `http://127.0.0.1:<port>/`
    pub url: String,
}

impl Registry {
    /// Start it on the fixture registry, or skip/fail when python3 is missing.
    pub fn start() -> Option<Registry> {
        Self::start_at(&fixtures().join("registry"))
    }

    /// Start it serving the packages under `root` (laid out as `fixtures/registry`).
    pub fn start_at(root: &Path) -> Option<Registry> {
        let Some(python) = which("python3") else {
            skip_or_fail("python3 is needed for the fixture registry");
            return None;
        };
        let script = fixtures().join("../tests/registry/serve.py");
        let script = if script.exists() {
            script
        } else {
            fixtures().join("registry-server/serve.py")
        };
        let mut child = Command::new(python)
            .arg(script)
            .arg(root)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let port: u16 = first_line(&mut child)
            .trim()
            .parse()
            .expect("registry port");
        Some(Registry {
            child,
            url: format!("http://127.0.0.1:{port}/"),
        })
    }
}

impl Registry {
    /// Point a ringfence or npm command at this registry, with HOME, an isolated npm cache, the
    /// fixture interlock on, and npm's network-y extras off.
    pub fn configure<'c>(
        &self,
        cmd: &'c mut Command,
        home: &Path,
        cache: &Path,
    ) -> &'c mut Command {
        // ringfence keeps each install's report for `approve` under XDG_STATE_HOME (default
        // ~/.local/state) and its build cache under XDG_CACHE_HOME (~/.cache): outside HOME
        // here, so that tests can demand a byte-identical HOME.
        cmd.env("HOME", home)
            .env("XDG_STATE_HOME", cache.with_file_name("state"))
            .env("XDG_CACHE_HOME", cache.with_file_name("xdg-cache"))
            .env("RINGFENCE_FIXTURE", "1")
            .env("npm_config_registry", &self.url)
            .env("npm_config_cache", cache)
            .env("npm_config_fetch_retries", "0")
            .env("npm_config_audit", "false")
            .env("npm_config_fund", "false")
            .env("npm_config_update_notifier", "false")
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// npm is needed for install tests.
pub fn require_npm() -> bool {
    which("npm").is_some() || skip_or_fail("npm is not installed")
}

/// [`snapshot`] kept apart for root and for an ordinary user, where what is enforced legitimately
/// differs (uid mapping, RLIMIT_NPROC for host root).
pub fn snapshot_per_user(name: &str, world: Option<&Path>, text: &str) {
    let who = if uid() == 0 { "as-root" } else { "as-user" };
    snapshot(&format!("{name}-{who}"), world, text);
}

/// Where the pinned snapshots are (`RINGFENCE_SNAPSHOTS` for a staged copy).
pub fn snapshot_dir() -> PathBuf {
    std::env::var_os("RINGFENCE_SNAPSHOTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/snapshots"))
}

/// Snapshot `text` under `name` with what differs between runs, users and machines of this kind
/// redacted: the world's temporary root, other temporary paths, times and durations, pids and
/// ids, canaries and digests, the kernel release. The unredacted text goes to stderr first, for
/// debugging a mismatch.
pub fn snapshot(name: &str, world: Option<&Path>, text: &str) {
    eprintln!("--- {name} (unredacted) ---\n{text}\n--- end {name} ---");
    let mut s = insta::Settings::clone_current();
    s.set_snapshot_path(snapshot_dir());
    s.set_prepend_module_to_snapshot(false);
    s.set_omit_expression(true);
    if let Some(w) = world {
        s.add_filter(&regex_escape(&w.display().to_string()), "[WORLD]");
    }
    let tmp = std::env::temp_dir().display().to_string();
    for (pattern, replacement) in [
        // Temporary directories ringfence or npm made (decoy homes, scratch projects).
        (
            format!(r"{}/[A-Za-z0-9._-]*ringfence[A-Za-z0-9._-]*", regex_escape(&tmp)),
            "[TMP]",
        ),
        (r"\b\d+(\.\d+)?\s?(ms|s)\b".to_string(), "[TIME]"),
        (
            r#""(pid|uid|gid|ppid|pgid|started_unix_ms|finished_unix_ms|duration_ms|at_unix_ms|kernel_abi|rss_kib|max_rss_kib)": ?-?\d+(\.\d+)?"#.to_string(),
            r#""$1": [N]"#,
        ),
        (r#""value": "[^"]*""#.to_string(), r#""value": "[CANARY]""#),
        (r"\bpid \d+\b".to_string(), "pid [N]"),
        // An unprivileged user's ids differ between machines; 0 (root) stays visible, so a user
        // mapped to root would show.
        (
            r"\buid [1-9]\d* and gid [1-9]\d*\b".to_string(),
            "uid [UID] and gid [GID]",
        ),
        (r"\b[0-9a-f]{64}\b".to_string(), "[SHA256]"),
        (r"\b[0-9a-f]{24,40}\b".to_string(), "[HEX]"),
        (r"(?i)ringfence-canary-[A-Za-z0-9_-]+".to_string(), "[CANARY]"),
        (r"\b\d+\.\d+\.\d+-[A-Za-z0-9.+_-]+".to_string(), "[KERNEL]"),
    ] {
        s.add_filter(&pattern, replacement);
    }
    s.bind(|| insta::assert_snapshot!(name, text));
}

fn regex_escape(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if "\\.+*?()|[]{}^$#&-~".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A syscall to refuse with `errno` (when any of `rules` matches; always when there are none).
pub struct Refuse {
    /// Syscall number.
    pub syscall: i64,
    /// Argument conditions, any of which refuses.
    pub rules: Vec<seccompiler::SeccompRule>,
    /// The errno returned.
    pub errno: i32,
}

/// A rule matching when argument `arg` has all bits of `flag` set.
pub fn flag_set(arg: u8, flag: u64) -> seccompiler::SeccompRule {
    use seccompiler::{SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompRule};
    SeccompRule::new(vec![
        SeccompCondition::new(
            arg,
            SeccompCmpArgLen::Qword,
            SeccompCmpOp::MaskedEq(flag),
            flag,
        )
        .unwrap(),
    ])
    .unwrap()
}

/// Run `c` under a seccomp filter refusing `refuse` (as a container runtime's profile would):
/// the filter is installed, with no_new_privs, on a dedicated thread, and inherited by the
/// child spawned from it.
pub fn under_seccomp(c: &mut Command, refuse: &[Refuse]) -> Output {
    use seccompiler::{SeccompAction, SeccompFilter, TargetArch};
    let programs: Vec<seccompiler::BpfProgram> = refuse
        .iter()
        .map(|r| {
            SeccompFilter::new(
                [(r.syscall, r.rules.clone())].into_iter().collect(),
                SeccompAction::Allow,
                SeccompAction::Errno(u32::try_from(r.errno).unwrap()),
                TargetArch::x86_64,
            )
            .unwrap()
            .try_into()
            .unwrap()
        })
        .collect();
    std::thread::scope(|s| {
        s.spawn(|| {
            nix::sys::prctl::set_no_new_privs().unwrap();
            for p in &programs {
                seccompiler::apply_filter(p).unwrap();
            }
            c.output().unwrap()
        })
        .join()
        .unwrap()
    })
}

/// What Docker's default seccomp profile refuses about namespaces: `unshare`, `setns`, `clone`
/// with namespace flags (EPERM) and `clone3` (ENOSYS, so libc falls back to `clone`).
pub fn docker_default_namespaces() -> Vec<Refuse> {
    let namespaces = [
        libc::CLONE_NEWUSER,
        libc::CLONE_NEWNS,
        libc::CLONE_NEWPID,
        libc::CLONE_NEWNET,
        libc::CLONE_NEWIPC,
        libc::CLONE_NEWUTS,
        libc::CLONE_NEWCGROUP,
    ];
    vec![
        Refuse {
            syscall: libc::SYS_unshare,
            rules: vec![],
            errno: libc::EPERM,
        },
        Refuse {
            syscall: libc::SYS_setns,
            rules: vec![],
            errno: libc::EPERM,
        },
        Refuse {
            syscall: libc::SYS_mount,
            rules: vec![],
            errno: libc::EPERM,
        },
        Refuse {
            syscall: libc::SYS_clone,
            rules: namespaces
                .iter()
                .map(|f| flag_set(0, u64::try_from(*f).unwrap()))
                .collect(),
            errno: libc::EPERM,
        },
        Refuse {
            syscall: libc::SYS_clone3,
            rules: vec![],
            errno: libc::ENOSYS,
        },
    ]
}

/// Microsoft's SARIF validator (`@microsoft/sarif-multitool`): `RINGFENCE_SARIF_VALIDATOR`, or
/// where `.ci/run` installs it.
pub fn sarif_validator() -> Option<PathBuf> {
    let p = std::env::var_os("RINGFENCE_SARIF_VALIDATOR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/opt/sarif-tool/node_modules/.bin/sarif-multitool"));
    p.exists().then_some(p)
}

/// A SARIF log written by ringfence: valid for Microsoft's validator (no error), every result's
/// rule in the catalogue and in `tool.driver.rules`, every package result pointing at its line in
/// `project/package-lock.json`, fingerprints present.
pub fn check_sarif(path: &Path, project: &Path) {
    let log: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    assert_eq!(log["version"], "2.1.0");
    let run = &log["runs"][0];
    let rules: Vec<&str> = run["tool"]["driver"]["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    let lock = std::fs::read_to_string(project.join("package-lock.json")).unwrap_or_default();
    let results = run["results"].as_array().unwrap();
    assert!(!results.is_empty(), "no results in {}", path.display());
    for r in results {
        let id = r["ruleId"].as_str().unwrap();
        assert_eq!(
            rules[usize::try_from(r["ruleIndex"].as_u64().unwrap()).unwrap()],
            id,
            "{r}"
        );
        assert!(
            r["partialFingerprints"]["ringfence/v1"].as_str().is_some(),
            "{r}"
        );
        if let Some(loc) = r["properties"]["location"].as_str() {
            let line = r["locations"][0]["physicalLocation"]["region"]["startLine"]
                .as_u64()
                .unwrap_or_else(|| panic!("no line for {loc}: {r}"));
            let text = lock
                .lines()
                .nth(usize::try_from(line).unwrap() - 1)
                .unwrap_or_default();
            assert!(
                text.contains(&format!("\"{loc}\"")),
                "line {line} is `{text}`, not {loc}"
            );
        }
    }
    let Some(validator) = sarif_validator() else {
        skip_or_fail("Microsoft's SARIF validator is not installed (.ci/run installs it)");
        return;
    };
    let out = Command::new(validator)
        .arg("validate")
        .arg(path)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "validator failed:\n{text}");
    assert!(!text.contains(": error "), "validator errors:\n{text}");
}
