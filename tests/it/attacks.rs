//! Attack fixtures (`fixtures/attacks/*.toml`, packages in `fixtures/registry`) installed with
//! `ringfence install`. The host must be untouched (the real HOME, the project outside
//! node_modules, host directories byte-identical; no surviving process; no real secret in the
//! report) and the report must hold the expected findings, attributed to the package.
//!
//! 1. Each fixture as published, alone, with `CI` unset and with `CI=true`.
//! 2. The hook matrix: every fixture moved to `preinstall`, `install`, `postinstall`, an implicit
//!    `node-gyp rebuild` (`binding.gyp` command expansion), a transitive dependency (root →
//!    carrier → payload) and a `file:` dependency's `prepare` — all fixtures of one variant in one
//!    install, in both CI modes.
//!
//! Adding a fixture adds cases with no Rust change.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use serde::Deserialize;

use crate::common::{
    Registry, TestContext, Tier, bin, copy_tree, fixtures, host_processes_with, require_npm,
    require_userns, run_watched, show, snapshot_per_user, tier,
};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct Expectation {
    title: String,
    package: String,
    /// A negative control: exit 0, no high or critical finding.
    #[serde(default)]
    benign: bool,
    /// Part of the hook matrix (default true).
    #[serde(default = "yes")]
    variants: bool,
    /// Wall-clock limit for this package's hooks (given through a profile).
    #[serde(default)]
    timeout: Option<String>,
    /// Exit status expected with `CI=true` / without `CI` (default: 0 benign, 1 otherwise).
    #[serde(default)]
    exit_ci: Option<i32>,
    #[serde(default)]
    exit_dev: Option<i32>,
    /// Without `CI` the hook must be killed at the timeout.
    #[serde(default)]
    timed_out_dev: bool,
    /// The package has no lifecycle script: the report must list it as having no install-time
    /// behaviour (and have no run for it).
    #[serde(default)]
    no_install_time_behaviour: bool,
    #[serde(default)]
    expect: Vec<ExpectedFinding>,
    #[serde(default)]
    expect_probe: Vec<ExpectedProbe>,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct ExpectedFinding {
    kind: String,
    severity: String,
    target_suffix: String,
    /// Only in this mode (`ci` or `dev`); both when absent.
    #[serde(default)]
    mode: Option<String>,
    /// Only in this isolation tier (`full` or `landlock`); both when absent.
    #[serde(default)]
    tier: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct ExpectedProbe {
    name: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Dev,
    Ci,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Dev => "dev",
            Mode::Ci => "ci",
        }
    }
}

fn expectations() -> Vec<(PathBuf, Expectation)> {
    let mut dir: Vec<_> = std::fs::read_dir(fixtures().join("attacks"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    dir.sort();
    assert!(dir.len() >= 4);
    dir.into_iter()
        .map(|p| {
            let e = toml::from_str(&std::fs::read_to_string(&p).unwrap())
                .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            (p, e)
        })
        .collect()
}

/// What of HOME the home comparison leaves out: the project, which lives there.
fn home_skip() -> Vec<String> {
    vec!["app".to_string(), "project".to_string()]
}

/// Every entry under `root` that `skip` does not exclude, never following a link or opening
/// anything but a regular file (what the scripts left is hostile): `(relative path, path,
/// metadata)`, directories before their contents.
fn walk(
    root: &Path,
    skip: &dyn Fn(&str) -> bool,
    visit: &mut dyn FnMut(String, &Path, &std::fs::Metadata) -> bool,
) {
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            let rel = p.strip_prefix(root).unwrap().display().to_string();
            let Ok(m) = std::fs::symlink_metadata(&p) else {
                continue;
            };
            if skip(&rel) {
                continue;
            }
            if !visit(rel, &p, &m) {
                return;
            }
            if m.is_dir() {
                stack.push(p);
            }
        }
    }
}

fn tree(root: &Path, skip: &[String]) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let skip = |rel: &str| {
        rel == "node_modules"
            || rel == "package-lock.json"
            || skip
                .iter()
                .any(|s| rel == *s || rel.starts_with(&format!("{s}/")))
    };
    walk(root, &skip, &mut |rel, p, m| {
        let content = if m.is_dir() {
            b"<dir>".to_vec()
        } else if m.file_type().is_symlink() {
            format!("<link {:?}>", std::fs::read_link(p).ok()).into_bytes()
        } else if m.is_file() {
            std::fs::read(p).unwrap_or_default()
        } else {
            b"<special>".to_vec()
        };
        out.insert(rel, content);
        true
    });
    out
}

/// A host world: a "real" HOME with secrets that must never change or leak, a project (a git
/// repository), a host directory outside everything.
struct World {
    ctx: TestContext,
    app: PathBuf,
    /// Project paths a script may legitimately change (a `file:` dependency's own directory).
    own: Vec<String>,
    home_before: BTreeMap<String, Vec<u8>>,
    app_before: BTreeMap<String, Vec<u8>>,
    outside_before: BTreeMap<String, Vec<u8>>,
    /// How the last install went as the host saw it (peak RSS, wall time, killed).
    last: std::cell::Cell<Option<Usage>>,
}

#[derive(Clone, Copy)]
struct Usage {
    peak_rss_kib: u64,
    elapsed: Duration,
    killed: bool,
}

impl World {
    fn new(package_json: &str, vendor: &[(String, PathBuf)]) -> World {
        let ctx = TestContext::new();
        std::fs::create_dir_all(ctx.home.join(".ssh")).unwrap();
        std::fs::write(
            ctx.home.join(".npmrc"),
            "//registry/:_authToken=HOST-REAL-TOKEN\n",
        )
        .unwrap();
        std::fs::write(ctx.home.join(".ssh/id_ed25519"), "HOST-REAL-KEY\n").unwrap();
        std::fs::write(ctx.home.join(".bashrc"), "# host bashrc\n").unwrap();
        let app = ctx.project_dir("app");
        std::fs::create_dir_all(app.join(".git/hooks")).unwrap();
        // actions/checkout persists the job's token in the repository's config.
        std::fs::write(
            app.join(".git/config"),
            "[core]\n[http \"https://github.com/\"]\n\textraheader = AUTHORIZATION: basic HOST-REAL-GITHEADER\n",
        )
        .unwrap();
        std::fs::write(
            app.join(".netrc"),
            "machine example.test password HOST-REAL-NETRC\n",
        )
        .unwrap();
        std::fs::write(app.join(".git/HEAD"), "ref: refs/heads/main\n").unwrap();
        std::fs::create_dir_all(app.join(".git/logs")).unwrap();
        std::fs::write(
            app.join(".git/logs/HEAD"),
            "0000 1111 Dev <dev@example.test> HOST-REAL-GITLOG\n",
        )
        .unwrap();
        // Credential files below the root, outside any workspace.
        for (file, text) in [
            ("config/.env.production", "DB=HOST-REAL-NESTED-DOTENV\n"),
            ("certs/deploy.key", "HOST-REAL-KEYFILE\n"),
            ("tools/.npmrc", "//r/:_authToken=HOST-REAL-NESTED-NPMRC\n"),
        ] {
            let path = app.join(file);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        std::fs::write(app.join("package.json"), package_json).unwrap();
        std::fs::write(app.join("README.md"), "project file\n").unwrap();
        // The project's own secrets: dependency scripts must not read them.
        std::fs::write(app.join(".env"), "API_KEY=HOST-REAL-DOTENV\n").unwrap();
        std::fs::write(
            app.join(".npmrc"),
            "//registry/:_authToken=HOST-REAL-PROJECT-TOKEN\n",
        )
        .unwrap();
        let mut own = Vec::new();
        for (name, dir) in vendor {
            copy_tree(dir, &app.join("vendor").join(name));
            own.push(format!("vendor/{name}"));
        }
        let home_before = tree(&ctx.home, &home_skip());
        let app_before = tree(&app, &own);
        let outside_before = tree(&ctx.outside, &[]);
        World {
            ctx,
            app,
            own,
            home_before,
            app_before,
            outside_before,
            last: std::cell::Cell::new(None),
        }
    }

    fn install(&self, registry: &Registry, mode: Mode, profile: Option<&str>) -> (Output, PathBuf) {
        let report = self.ctx.root().join("report.json");
        let mut cmd = Command::new(bin());
        registry.configure(&mut cmd, &self.ctx.home, &self.ctx.root().join("cache"));
        // ringfence's own temporary files (decoy homes, preload logs) go here: checked empty after.
        let tmp = self.ctx.root().join("tmp");
        std::fs::create_dir_all(&tmp).unwrap();
        // Real-looking credentials in the user's environment, named and shaped as they are in
        // the wild: none may reach a dependency script.
        cmd.env(
            "DATABASE_URL",
            "postgres://app:HOST-REAL-DBPASS@db.internal:5432/app",
        )
        .env("PGPASSWORD", "HOST-REAL-PGPASS")
        .env("STRIPE_SECRET_KEY", "sk_live_HOST-REAL-STRIPE")
        .env("SENTRY_DSN", "https://HOST-REAL-DSN@o1.ingest.sentry.io/1")
        .env("DEPLOY_HOOK", "ghp_HOST-REAL-0123456789abcdefABCDEF")
        .env("GITHUB_PAT", "github_pat_HOST-REAL-PAT")
        .env("API_KEY", "HOST-REAL-APIKEY")
        .env("SECRET_KEY_BASE", "HOST-REAL-KEYBASE")
        .env(
            "GOOGLE_CREDENTIALS",
            r#"{"type":"service_account","private_key":"HOST-REAL-GCP"}"#,
        )
        .env(
            "DOCKER_AUTH_CONFIG",
            r#"{"auths":{"registry.example":{"auth":"HOST-REAL-DOCKER"}}}"#,
        )
        // Names that match no credential word: caught by their name's other words or by the
        // value's shape.
        .env(
            "SLACK_WEBHOOK_URL",
            "https://hooks.slack.com/services/T0/B0/HOST-REAL-SLACK",
        )
        .env("APP_SIGNING_SALT", "HOST-REAL-SALT")
        .env(
            "UPLOAD_URL",
            "https://ci:HOST-REAL-URLPASS@uploads.example/",
        );
        cmd.args(["install", "--report", report.to_str().unwrap()])
            .env("RINGFENCE_FIXTURE_MARKER", self.marker())
            .env("TMPDIR", &tmp)
            .current_dir(&self.app);
        for v in [
            "CI",
            "GITHUB_ACTIONS",
            "BUILDKITE",
            "GITLAB_CI",
            "JENKINS_URL",
        ] {
            cmd.env_remove(v);
        }
        if mode == Mode::Ci {
            cmd.env("CI", "true").env("GITHUB_ACTIONS", "true");
        }
        let profile = profile.map_or_else(|| harness_profile(""), str::to_owned);
        let path = self.ctx.root().join("profile.toml");
        std::fs::write(&path, profile).unwrap();
        cmd.arg("--profile").arg(path);
        let run = run_watched(&mut cmd, INSTALL_DEADLINE);
        self.last.set(Some(Usage {
            peak_rss_kib: run.peak_rss_kib,
            elapsed: run.elapsed,
            killed: run.killed,
        }));
        (run.output, report)
    }

    fn marker(&self) -> String {
        format!(
            "rf-marker-{}-{}",
            std::process::id(),
            self.ctx.root().file_name().unwrap().to_string_lossy()
        )
    }

    /// Check the exit status and the host, and read the report; `None` when the exit status
    /// was wrong (recorded in `failures`).
    fn outcome(
        &self,
        label: &str,
        out: &Output,
        report: &Path,
        expected_code: i32,
        failures: &mut Vec<String>,
    ) -> Option<serde_json::Value> {
        if out.status.code() != Some(expected_code) {
            failures.push(format!(
                "{label}: exit {:?}, expected {expected_code}\n{}",
                out.status.code(),
                show(out)
            ));
            return None;
        }
        if let Some(u) = self.last.get() {
            eprintln!(
                "host: ringfence peak RSS {} MiB, {:.1} s: {label}",
                u.peak_rss_kib >> 10,
                u.elapsed.as_secs_f64()
            );
        }
        for p in self.host_problems(report) {
            failures.push(format!("{label}: {p}"));
        }
        if show(out).contains("HOST-REAL") {
            failures.push(format!("{label}: a real secret reached ringfence's output"));
        }
        Some(crate::report::json(report))
    }

    /// Everything the host must still be; the problems found.
    fn host_problems(&self, report: &Path) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(u) = self.last.get() {
            if u.killed {
                out.push(format!(
                    "ringfence was still running after {:?} and was killed",
                    u.elapsed
                ));
            }
            if u.peak_rss_kib > RSS_BOUND_KIB {
                out.push(format!(
                    "ringfence's resident memory reached {} MiB (bound {} MiB)",
                    u.peak_rss_kib >> 10,
                    RSS_BOUND_KIB >> 10
                ));
            }
        }
        if tree(&self.ctx.home, &home_skip()) != self.home_before {
            out.push("the host HOME changed".to_string());
        }
        if tree(&self.app, &self.own) != self.app_before {
            out.push("the project changed outside node_modules".to_string());
        }
        if tree(&self.ctx.outside, &[]) != self.outside_before {
            out.push("a host directory changed".to_string());
        }
        let left: Vec<String> = std::fs::read_dir(self.ctx.root().join("tmp"))
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        if !left.is_empty() {
            out.push(format!("temporary files remain in TMPDIR: {left:?}"));
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
        let left = host_processes_with(&self.marker());
        if !left.is_empty() {
            out.push(format!("processes survived on the host: {left:?}"));
        }
        let text = std::fs::read_to_string(report).unwrap_or_default();
        if text.contains("HOST-REAL") {
            out.push("a real secret reached the report".to_string());
        }
        if let Some(p) = file_containing(&self.app.join("node_modules"), b"HOST-REAL") {
            out.push(format!(
                "a real secret reached a package directory: {}",
                p.display()
            ));
        }
        out
    }
}

/// The first regular file under `root` holding `needle` (links, FIFOs and devices the scripts
/// left are never opened).
fn file_containing(root: &Path, needle: &[u8]) -> Option<PathBuf> {
    let mut found = None;
    walk(root, &|_| false, &mut |_, p, m| {
        let hit = m.is_file()
            && m.len() <= 8 << 20
            && std::fs::read(p).is_ok_and(|c| c.windows(needle.len()).any(|w| w == needle));
        if hit {
            found = Some(p.to_path_buf());
        }
        !hit
    });
    found
}

/// The findings and probes of `exp`'s package in `report`, checked against the expectation.
fn check_package(
    label: &str,
    exp: &Expectation,
    mode: Mode,
    report: &serde_json::Value,
    failures: &mut Vec<String>,
) {
    let runs: Vec<&serde_json::Value> = report["runs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|run| run["package"]["name"] == exp.package.as_str())
        .collect();
    if exp.no_install_time_behaviour {
        if !runs.is_empty() {
            failures.push(format!("{label}: a package without scripts has runs"));
        }
        let listed = report["install"]["no_install_time_behaviour"]
            .as_array()
            .is_some_and(|l| l.iter().any(|p| p["name"] == exp.package.as_str()));
        if !listed {
            failures.push(format!(
                "{label}: not listed under install.no_install_time_behaviour: {:#}",
                report["install"]
            ));
        }
        return;
    }
    if runs.is_empty() {
        failures.push(format!("{label}: no run of the package in the report"));
        return;
    }
    let findings: Vec<&serde_json::Value> = runs
        .iter()
        .flat_map(|run| run["findings"].as_array().unwrap().iter())
        .collect();
    for e in &exp.expect {
        if e.mode.as_deref().is_some_and(|m| m != mode.name())
            || e.tier.as_deref().is_some_and(|t| t != tier_name())
        {
            continue;
        }
        let hit = findings.iter().any(|f| {
            f["kind"] == e.kind.as_str()
                && f["severity"] == e.severity.as_str()
                && f["target"]
                    .as_str()
                    .unwrap_or("")
                    .ends_with(&e.target_suffix)
        });
        if !hit {
            failures.push(format!("{label}: missing finding {e:?} in {findings:#?}"));
        }
    }
    // Attribution: every finding says when; findings of the syscall recorder and the sinkhole
    // say which process (pid inside the sandbox, its argv).
    for f in &findings {
        if f["at_unix_ms"]
            .as_u64()
            .is_none_or(|t| t < 1_600_000_000_000)
        {
            failures.push(format!("{label}: finding without a time: {f:#}"));
        }
    }
    if !exp.benign
        && !findings.iter().any(|f| {
            f["process"]["pid"].as_u64().is_some_and(|p| p >= 2)
                && f["process"]["argv"]
                    .as_array()
                    .is_some_and(|a| !a.is_empty())
        })
    {
        failures.push(format!(
            "{label}: no finding names the process: {findings:#?}"
        ));
    }
    for p in &exp.expect_probe {
        let hit = runs.iter().any(|run| {
            run["env_probes"]
                .as_array()
                .is_some_and(|l| l.iter().any(|x| x["name"] == p.name.as_str()))
        });
        if !hit {
            failures.push(format!(
                "{label}: the probe of `{}` was not recorded",
                p.name
            ));
        }
    }
    if exp.benign {
        let high: Vec<_> = findings
            .iter()
            .filter(|f| f["severity"] == "high" || f["severity"] == "critical")
            .collect();
        if !high.is_empty() {
            failures.push(format!(
                "{label}: benign control has high findings: {high:#?}"
            ));
        }
    }
}

/// Every script's wall-clock limit in these tests (the default profile's 15 minutes would let a
/// hung fixture stall the suite): a fixture's own `timeout` overrides it for its package.
const SCRIPT_TIMEOUT: &str = "60s";

/// How long one install may take before the host calls ringfence hung and kills it: npm's own
/// work, at most four script phases (preinstall, install, postinstall, the root's prepare)
/// each at [`SCRIPT_TIMEOUT`], and a bounded analysis after each.
const INSTALL_DEADLINE: Duration = Duration::from_secs(5 * 60);

/// The most resident memory ringfence itself may use for one of these installs, whatever the
/// scripts left behind (sparse and endless files, deep trees, floods of output and events).
const RSS_BOUND_KIB: u64 = 256 << 10;

/// The default profile with the tests' script timeout and the fixtures' own timeouts.
fn profile_with_timeouts<'a>(exps: impl Iterator<Item = &'a Expectation>) -> Option<String> {
    let mut extra = String::new();
    for e in exps {
        if let Some(t) = &e.timeout {
            extra.push_str(&format!(
                "\n[package.\"{}\"]\ntimeout = \"{t}\"\n",
                e.package
            ));
        }
    }
    Some(harness_profile(&extra))
}

fn harness_profile(extra: &str) -> String {
    let default =
        std::fs::read_to_string(fixtures().join("../sandbox-profiles/default.toml")).unwrap();
    let limited = default.replacen(
        "timeout = \"15m\"",
        &format!("timeout = \"{SCRIPT_TIMEOUT}\""),
        1,
    );
    assert_ne!(limited, default, "the default profile's timeout line moved");
    limited + extra
}

#[test]
fn attack_fixtures_are_contained_and_reported() {
    if !require_userns() || !require_npm() {
        return;
    }
    let Some(registry) = Registry::start() else {
        return;
    };
    let mut failures = Vec::new();
    let mut kinds = String::new();
    for (case, exp) in expectations() {
        for mode in [Mode::Dev, Mode::Ci] {
            let label = format!("{} [{}] ({})", exp.title, mode.name(), case.display());
            let world = World::new(
                &format!(
                    r#"{{"name":"victim","version":"1.0.0","dependencies":{{"{}":"1.0.0"}}}}"#,
                    exp.package
                ),
                &[],
            );
            let profile = profile_with_timeouts(std::iter::once(&exp));
            let (out, report) = world.install(&registry, mode, profile.as_deref());
            let expected_code = match mode {
                Mode::Ci => exp.exit_ci,
                Mode::Dev => exp.exit_dev,
            }
            .unwrap_or(if exp.benign || exp.no_install_time_behaviour {
                0
            } else {
                1
            });
            let Some(r) = world.outcome(&label, &out, &report, expected_code, &mut failures) else {
                continue;
            };
            check_package(&label, &exp, mode, &r, &mut failures);
            kinds.push_str(&finding_kinds_line(&case, mode, &exp.package, &r));
            let timed_out = r["runs"]
                .as_array()
                .unwrap()
                .iter()
                .any(|run| run["timed_out"] == true);
            if timed_out != (exp.timed_out_dev && mode == Mode::Dev) {
                failures.push(format!("{label}: timed_out is {timed_out}"));
            }
            if exp.no_install_time_behaviour {
                let summary = String::from_utf8_lossy(&out.stderr);
                if !summary.contains("no install-time behaviour") {
                    failures.push(format!("{label}: the summary does not say so:\n{summary}"));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    // What each tier found, pinned, so that `finding_kinds_agree_between_tiers` compares what
    // each tier really finds (a change in either shows up here first).
    snapshot_per_user(
        &format!("attack-finding-kinds-{}", tier_name()),
        None,
        &kinds,
    );
}

fn tier_name() -> &'static str {
    match tier() {
        Tier::Full => "full",
        Tier::Landlock => "landlock",
    }
}

const SEVERITIES: [&str; 5] = ["info", "low", "medium", "high", "critical"];

/// `fixture [mode]: kind:severity, …` — the distinct finding kinds of the fixture's package,
/// each with the highest severity it had.
fn finding_kinds_line(
    case: &Path,
    mode: Mode,
    package: &str,
    report: &serde_json::Value,
) -> String {
    let mut kinds: BTreeMap<&str, usize> = BTreeMap::new();
    for f in report["runs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|run| run["package"]["name"] == package)
        .flat_map(|run| run["findings"].as_array().unwrap().iter())
    {
        let (Some(kind), Some(sev)) = (f["kind"].as_str(), f["severity"].as_str()) else {
            continue;
        };
        let rank = SEVERITIES.iter().position(|s| *s == sev).unwrap();
        let e = kinds.entry(kind).or_insert(rank);
        *e = (*e).max(rank);
    }
    let kinds: Vec<String> = kinds
        .into_iter()
        .map(|(k, r)| format!("{k}:{}", SEVERITIES[r]))
        .collect();
    format!(
        "{} [{}]: {}\n",
        case.file_stem().unwrap().to_string_lossy(),
        mode.name(),
        kinds.join(", ")
    )
}

/// The kinds of a pinned line that reached medium or more: what decides the verdict. Info and
/// low findings differ between the tiers by construction (the C library's try of the nscd
/// socket is seen at `connect` in one tier and refused at `socket` in the other; the fixtures'
/// own offline interlock probes loopback where there is no network namespace).
fn decisive(line: &str) -> Vec<&str> {
    line.split(", ")
        .filter_map(|e| e.split_once(':'))
        .filter(|(_, sev)| SEVERITIES.iter().position(|s| s == sev) >= Some(2))
        .map(|(k, _)| k)
        .collect()
}

/// The issue's bar for the namespace-free tier: at least 90% of the attack fixtures get the same
/// finding kinds (at medium and above, [`decisive`]) there as in the full tier, in both modes,
/// and docs/tiers.md names every one that does not. Reads the pinned kinds of both tiers (each tier's suite checks its own against
/// what it really finds).
#[test]
fn finding_kinds_agree_between_tiers() {
    let who = if crate::common::uid() == 0 {
        "as-root"
    } else {
        "as-user"
    };
    let dir = crate::common::snapshot_dir();
    let read = |tier: &str| -> BTreeMap<String, String> {
        let path = dir.join(format!("attack-finding-kinds-{tier}-{who}.snap"));
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        // insta's header ends with `---`; then one line per fixture and mode.
        text.split("\n---\n")
            .nth(1)
            .unwrap_or("")
            .lines()
            .filter_map(|l| {
                l.split_once(": ")
                    .or_else(|| l.strip_suffix(':').map(|k| (k, "")))
            })
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    let full = read("full");
    let landlock = read("landlock");
    assert_eq!(
        full.keys().collect::<Vec<_>>(),
        landlock.keys().collect::<Vec<_>>(),
        "both tiers ran the same fixtures"
    );
    let mut fixtures: BTreeMap<&str, bool> = BTreeMap::new();
    for (k, v) in &full {
        let fixture = k.split(" [").next().unwrap();
        let same = landlock.get(k).map(|l| decisive(l)) == Some(decisive(v));
        *fixtures.entry(fixture).or_insert(true) &= same;
    }
    assert!(fixtures.len() >= 20, "{fixtures:?}");
    let differ: Vec<&str> = fixtures
        .iter()
        .filter(|(_, same)| !**same)
        .map(|(f, _)| *f)
        .collect();
    let agree = fixtures.len() - differ.len();
    assert!(
        agree * 10 >= fixtures.len() * 9,
        "only {agree} of {} attack fixtures get the same finding kinds in both tiers; differ: {differ:?}",
        fixtures.len()
    );
    let doc = std::fs::read_to_string(fixtures_dir_docs().join("tiers.md")).unwrap();
    for f in &differ {
        assert!(
            doc.contains(&format!("`{f}`")),
            "docs/tiers.md does not name `{f}`, whose finding kinds differ between the tiers"
        );
    }
}

fn fixtures_dir_docs() -> PathBuf {
    fixtures().join("../docs")
}

/// How a variant carries the payload.
#[derive(Debug, Clone, Copy)]
enum Hook {
    Event(&'static str),
    /// An implicit `node-gyp rebuild`: `binding.gyp` with a `<!(…)` command expansion.
    Gyp,
    /// Root → `rf-carrier` → the fixture, as published.
    Transitive,
    /// A `file:` dependency (a link) whose `prepare` runs the payload in its real directory.
    Prepare,
}

impl Hook {
    fn name(self) -> &'static str {
        match self {
            Hook::Event(e) => e,
            Hook::Gyp => "gyp",
            Hook::Transitive => "transitive",
            Hook::Prepare => "prepare",
        }
    }
}

/// The single lifecycle command of a published fixture.
fn payload_command(pkg: &Path) -> Option<String> {
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(pkg.join("package.json")).unwrap()).unwrap();
    let scripts = m["scripts"].as_object()?;
    assert!(
        scripts.len() <= 1,
        "{}: one script per fixture",
        pkg.display()
    );
    scripts.values().next()?.as_str().map(str::to_string)
}

fn rewrite(pkg: &Path, hook: Hook) {
    let path = pkg.join("package.json");
    let mut m: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let Some(command) = payload_command(pkg) else {
        return;
    };
    match hook {
        Hook::Event(event) => m["scripts"] = serde_json::json!({ event: command }),
        Hook::Prepare => m["scripts"] = serde_json::json!({ "prepare": command }),
        Hook::Gyp => {
            m["scripts"] = serde_json::json!({});
            let gyp = serde_json::json!({
                "variables": { "rf_payload": format!("<!({command} >/dev/null 2>&1; echo ran)") },
                "targets": [ { "target_name": "rf_payload", "type": "none" } ]
            });
            std::fs::write(pkg.join("binding.gyp"), gyp.to_string()).unwrap();
        }
        Hook::Transitive => return,
    }
    std::fs::write(&path, m.to_string()).unwrap();
}

#[test]
fn attack_variants_every_hook_and_ci_mode() {
    if !require_userns() || !require_npm() {
        return;
    }
    let exps: Vec<Expectation> = expectations()
        .into_iter()
        .map(|(_, e)| e)
        .filter(|e| e.variants && !e.no_install_time_behaviour)
        .collect();
    let mut failures = Vec::new();
    for hook in [
        Hook::Event("preinstall"),
        Hook::Event("install"),
        Hook::Event("postinstall"),
        Hook::Gyp,
        Hook::Transitive,
        Hook::Prepare,
    ] {
        let scratch = tempfile::Builder::new()
            .prefix("ringfence-variant-")
            .tempdir()
            .unwrap();
        let root = scratch.path().join("registry");
        copy_tree(&fixtures().join("registry"), &root);
        let mut vendor = Vec::new();
        let mut deps = serde_json::Map::new();
        for e in &exps {
            let pkg = root.join(&e.package).join("1.0.0");
            if let Hook::Prepare = hook {
                let dir = scratch.path().join("vendor").join(&e.package);
                copy_tree(&pkg, &dir);
                rewrite(&dir, hook);
                vendor.push((e.package.clone(), dir));
                deps.insert(
                    e.package.clone(),
                    format!("file:vendor/{}", e.package).into(),
                );
            } else {
                rewrite(&pkg, hook);
                deps.insert(e.package.clone(), "1.0.0".into());
            }
        }
        if let Hook::Transitive = hook {
            let carrier = root.join("rf-carrier/1.0.0");
            std::fs::create_dir_all(&carrier).unwrap();
            std::fs::write(
                carrier.join("package.json"),
                serde_json::json!({"name": "rf-carrier", "version": "1.0.0", "dependencies": deps})
                    .to_string(),
            )
            .unwrap();
            deps = serde_json::Map::new();
            deps.insert("rf-carrier".into(), "1.0.0".into());
        }
        let Some(registry) = Registry::start_at(&root) else {
            return;
        };
        for mode in [Mode::Dev, Mode::Ci] {
            let label = format!("[{} {}]", hook.name(), mode.name());
            let world = World::new(
                &serde_json::json!({"name": "victim", "version": "1.0.0", "dependencies": deps})
                    .to_string(),
                &vendor,
            );
            let profile = profile_with_timeouts(exps.iter());
            let (out, report) = world.install(&registry, mode, profile.as_deref());
            // Exit 1: findings.
            let Some(r) = world.outcome(&label, &out, &report, 1, &mut failures) else {
                continue;
            };
            let bad: Vec<String> = r["runs"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|run| run["package"]["outcome"] != "ok")
                .map(|run| format!("{} {}", run["package"]["name"], run["package"]["event"]))
                .collect();
            if !bad.is_empty() {
                failures.push(format!("{label}: scripts did not complete: {bad:?}"));
            }
            for e in &exps {
                let events: Vec<String> = r["runs"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|run| run["package"]["name"] == e.package.as_str())
                    .map(|run| run["package"]["event"].as_str().unwrap_or("").to_string())
                    .collect();
                let want = match hook {
                    Hook::Event(ev) => Some(ev),
                    Hook::Gyp => Some("install"),
                    Hook::Prepare => Some("prepare"),
                    Hook::Transitive => None,
                };
                let scripted =
                    payload_command(&fixtures().join("registry").join(&e.package).join("1.0.0"))
                        .is_some();
                if let (Some(want), true) = (want, scripted) {
                    if !events.iter().any(|x| x == want) {
                        failures.push(format!(
                            "{label} {}: ran {events:?}, expected {want}",
                            e.package
                        ));
                    }
                }
                check_package(&format!("{label} {}", e.title), e, mode, &r, &mut failures);
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// Negative control: a husky-style `prepare` of the user's own project sets `core.hooksPath` in
/// `.git/config` and writes hook shims. Root scripts may write their project, so this works as
/// with plain npm and yields no high finding; the real HOME stays untouched.
#[test]
fn husky_style_root_prepare_is_benign() {
    if !require_userns() || !require_npm() {
        return;
    }
    if crate::common::which("git").is_none() {
        crate::common::skip_or_fail("git is needed for the husky control");
        return;
    }
    let Some(registry) = Registry::start() else {
        return;
    };
    let world = World::new("{}", &[]);
    copy_tree(&fixtures().join("projects/husky"), &world.app);
    let git = Command::new("git")
        .args(["init", "-q"])
        .current_dir(&world.app)
        .output()
        .unwrap();
    assert!(git.status.success(), "{}", show(&git));
    let home_before = tree(&world.ctx.home, &home_skip());
    let (out, report) = world.install(&registry, Mode::Dev, None);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let config = std::fs::read_to_string(world.app.join(".git/config")).unwrap();
    assert!(config.contains("hooksPath = .husky/_"), "{config}");
    assert!(world.app.join(".husky/_/pre-commit").is_file());
    assert_eq!(tree(&world.ctx.home, &home_skip()), home_before);
    let r: serde_json::Value = crate::report::json(&report);
    let runs = r["runs"].as_array().unwrap();
    assert!(
        runs.iter()
            .any(|run| run["package"]["event"] == "prepare" && run["package"]["kind"] == "root"),
        "{r:#}"
    );
    let high: Vec<_> = runs
        .iter()
        .flat_map(|run| run["findings"].as_array().unwrap().iter())
        .filter(|f| f["severity"] == "high" || f["severity"] == "critical")
        .collect();
    assert!(high.is_empty(), "{high:#?}");
}

/// The cases of `fixtures/attacks/<name>.toml` for `names`, run as
/// [`attack_fixtures_are_contained_and_reported`] runs every case (which includes these).
fn run_cases(names: &[&str]) -> Vec<String> {
    let Some(registry) = Registry::start() else {
        return Vec::new();
    };
    let mut failures = Vec::new();
    for (case, exp) in expectations() {
        let stem = case.file_stem().unwrap().to_string_lossy().into_owned();
        if !names.contains(&stem.as_str()) {
            continue;
        }
        for mode in [Mode::Dev, Mode::Ci] {
            let label = format!("{} [{}] ({})", exp.title, mode.name(), case.display());
            let world = World::new(
                &format!(
                    r#"{{"name":"victim","version":"1.0.0","dependencies":{{"{}":"1.0.0"}}}}"#,
                    exp.package
                ),
                &[],
            );
            let (out, report) = world.install(&registry, mode, None);
            let code = if exp.benign { 0 } else { 1 };
            if let Some(r) = world.outcome(&label, &out, &report, code, &mut failures) {
                check_package(&label, &exp, mode, &r, &mut failures);
            }
        }
    }
    failures
}

/// The hardening cases alone (a quick way to run them: `cargo test --test it -- --ignored
/// hardening`); the full attack test runs them too.
#[test]
#[ignore = "a subset of attack_fixtures_are_contained_and_reported"]
fn hardening_cases_only() {
    if !require_userns() || !require_npm() {
        return;
    }
    let failures = run_cases(&["sinkhole-crafted", "noatime", "unix-socket", "flood"]);
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// A host listener on a pathname unix socket in the project (a dev server's socket): the
/// dependency script's attempts (directly, through links in its package directory and in
/// /tmp) never reach it, and each is a finding.
#[test]
fn a_host_unix_listener_in_the_project_is_not_reachable() {
    if !require_userns() || !require_npm() {
        return;
    }
    let Some(registry) = Registry::start() else {
        return;
    };
    let mut world = World::new(
        r#"{"name":"victim","version":"1.0.0","dependencies":{"rf-attack-unix-socket":"1.0.0"}}"#,
        &[],
    );
    let sock = world.app.join("dev.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    // Reachable by anyone, as a dev server's socket often is.
    std::fs::set_permissions(&sock, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    listener.set_nonblocking(true).unwrap();
    world.own.push("dev.sock".into());
    let (out, report) = world.install(&registry, Mode::Dev, None);
    let mut failures = Vec::new();
    let r = world.outcome("unix listener", &out, &report, 1, &mut failures);
    let mut reached = Vec::new();
    while let Ok((mut s, _)) = listener.accept() {
        let mut got = Vec::new();
        let _ = std::io::Read::read_to_end(&mut s, &mut got);
        reached.push(String::from_utf8_lossy(&got).into_owned());
    }
    assert!(
        reached.is_empty(),
        "the host listener was reached: {reached:?}"
    );
    let r = r.unwrap_or_else(|| panic!("{}", failures.join("\n\n")));
    let refused: Vec<&serde_json::Value> = r["runs"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|run| run["findings"].as_array().unwrap().iter())
        .filter(|f| f["code"] == "unix-socket-refused")
        .collect();
    assert!(
        refused.iter().any(|f| f["severity"] == "high"
            && f["target"]
                .as_str()
                .is_some_and(|t| t.ends_with("/app/dev.sock"))),
        "{refused:#?}"
    );
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// A project whose package.json npm accepts but serde_json does not (a BOM, a lone surrogate
/// escape in the description and in a script, duplicate keys, odd types), with a `file:`
/// dependency whose manifest is as odd: the install goes on and both scripts run.
#[test]
fn odd_manifests_npm_accepts_do_not_stop_the_install() {
    if !require_userns() || !require_npm() {
        return;
    }
    let Some(registry) = Registry::start() else {
        return;
    };
    let scratch = tempfile::tempdir().unwrap();
    let dep = scratch.path().join("rf-odd-dep");
    std::fs::create_dir_all(&dep).unwrap();
    let odd = |name: &str, script_event: &str, extra: &str| {
        format!(
            "\u{feff}{{\"name\":\"{name}\",\"version\":\"1.0.0\",\"version\":\"1.0.0\",\
             \"description\":\"lone \\ud800 surrogate\",\"keywords\":\"not-an-array\",\
             \"bin\":7,\"engines\":\"node\",{extra}\
             \"scripts\":{{\"{script_event}\":\"node -e \\\"require('fs').writeFileSync('ran-{name}', '\\udc00')\\\"\",\"test\":5}}}}"
        )
    };
    std::fs::write(dep.join("package.json"), odd("rf-odd-dep", "prepare", "")).unwrap();
    let world = World::new(
        &odd(
            "victim",
            "postinstall",
            "\"dependencies\":{\"rf-odd-dep\":\"file:vendor/rf-odd-dep\"},",
        ),
        &[("rf-odd-dep".to_string(), dep)],
    );
    let (out, report) = world.install(&registry, Mode::Dev, None);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert!(world.app.join("ran-victim").is_file(), "{}", show(&out));
    assert!(
        world.app.join("vendor/rf-odd-dep/ran-rf-odd-dep").is_file(),
        "{}",
        show(&out)
    );
    let r: serde_json::Value = crate::report::json(&report);
    let events: Vec<String> = r["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|run| format!("{} {}", run["package"]["name"], run["package"]["event"]))
        .collect();
    assert!(
        events.iter().any(|e| e.contains("postinstall"))
            && events.iter().any(|e| e.contains("prepare")),
        "{events:?}"
    );
}
