//! The report contract, frozen by deserialising into local mirror structs that reject unknown
//! fields: adding, renaming or removing a field fails here first.

use std::path::PathBuf;

use serde::Deserialize;

use crate::common::{TestContext, require_userns, show};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Report {
    schema_version: u32,
    tool: Tool,
    runs: Vec<Run>,
    #[serde(default)]
    warnings: Vec<serde_json::Value>,
    #[serde(default)]
    install: Option<InstallM>,
    #[serde(default)]
    replay: Option<serde_json::Value>,
    #[serde(default)]
    approvals: Option<serde_json::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct InstallM {
    packages: usize,
    with_scripts: usize,
    no_install_time_behaviour: Vec<PackageIdM>,
    #[serde(default)]
    skipped: Vec<serde_json::Value>,
    #[serde(default)]
    unreviewed: Vec<PackageIdM>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct PackageIdM {
    name: String,
    version: String,
    location: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Tool {
    name: String,
    version: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Run {
    #[serde(default)]
    package: Option<Package>,
    command: Vec<String>,
    program: PathBuf,
    cwd: PathBuf,
    started_unix_ms: u64,
    duration_ms: f64,
    exit: Exit,
    exit_status: i32,
    timed_out: bool,
    timeout_ms: Option<u64>,
    view: View,
    enforcement: Enforcement,
    survivors: Vec<Survivor>,
    findings: Vec<FindingM>,
    canaries: Vec<CanaryM>,
    spawned: Vec<SpawnedM>,
    env_probes: Vec<EnvProbeM>,
    #[serde(default)]
    replay_mode: Option<String>,
    #[serde(default)]
    cached: Option<String>,
    #[serde(default)]
    refused: Vec<RefusalM>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct ActorM {
    pid: u32,
    argv: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct EnvProbeM {
    name: String,
    op: String,
    process: ActorM,
    at_unix_ms: u64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct SpawnedM {
    argv: Vec<String>,
    count: usize,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // fields exist to freeze the contract
struct FindingM {
    code: String,
    kind: String,
    severity: String,
    summary: String,
    target: String,
    #[serde(default)]
    detail: Option<String>,
    #[serde(default)]
    process: Option<ActorM>,
    #[serde(default)]
    at_unix_ms: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct CanaryM {
    id: String,
    value: String,
}

#[derive(Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
enum Exit {
    Code(i32),
    Signal(i32),
}

#[allow(dead_code)]
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RefusalM {
    path: String,
    why: String,
    #[serde(default)]
    allow: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct View {
    read_only: Vec<PathBuf>,
    read_write: Vec<PathBuf>,
    home: PathBuf,
}

#[derive(Debug, Deserialize, PartialEq, Clone, Copy)]
#[serde(rename_all = "snake_case")]
#[allow(clippy::enum_variant_names)] // mirrors the report's wording exactly
enum Status {
    FullyEnforced,
    PartiallyEnforced,
    NotEnforced,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Mechanism {
    status: Status,
    #[serde(default)]
    detail: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Namespaces {
    user: Mechanism,
    mount: Mechanism,
    pid: Mechanism,
    net: Mechanism,
    ipc: Mechanism,
    uts: Mechanism,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Landlock {
    status: Status,
    requested_abi: u32,
    kernel_abi: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Seccomp {
    status: Status,
    filters: usize,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Rlimits {
    status: Status,
    #[serde(default)]
    detail: Option<String>,
    nproc: u64,
    nofile: u64,
    fsize: u64,
    core: u64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Enforcement {
    namespaces: Namespaces,
    landlock: Landlock,
    seccomp: Seccomp,
    capabilities: Mechanism,
    no_new_privs: Mechanism,
    rlimits: Rlimits,
    recorder: Option<Mechanism>,
    tier: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // fields exist to freeze the contract
struct Package {
    name: String,
    version: String,
    location: String,
    event: String,
    kind: String,
    integrity: Option<String>,
    script_sha256: String,
    outcome: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Survivor {
    pid: i32,
    ppid: i32,
    argv: Vec<String>,
}

/// Validate a report against `docs/report.schema.json` (every report a test writes goes
/// through this as well as through the mirror structs above).
pub fn validate_against_schema(report: &serde_json::Value) -> Result<(), String> {
    validate_against("report.schema.json", report)
}

/// Validate `value` against `docs/<schema>`.
pub fn validate_against(schema: &str, report: &serde_json::Value) -> Result<(), String> {
    let schema_path = std::env::var_os("RINGFENCE_FIXTURES")
        .map(|f| std::path::PathBuf::from(f).join("../docs").join(schema))
        .filter(|p| p.exists())
        .unwrap_or_else(|| {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("docs")
                .join(schema)
        });
    let schema: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&schema_path).map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
    let validator = jsonschema::validator_for(&schema).map_err(|e| e.to_string())?;
    let errors: Vec<String> = validator
        .iter_errors(report)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.join("; "))
    }
}

/// A report file as JSON, validated against `docs/report.schema.json` first: the schema's
/// finding `code` enum is the catalogue (a unit test in `findings::catalog` keeps them equal),
/// so every finding of every report a test reads has a catalogued code.
pub(crate) fn json(path: &std::path::Path) -> serde_json::Value {
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    if let Err(e) = validate_against_schema(&v) {
        panic!(
            "{} does not match docs/report.schema.json: {e}",
            path.display()
        );
    }
    v
}

pub(crate) fn read(path: &std::path::Path) -> Report {
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    validate_against_schema(&v).unwrap();
    let r: Report = serde_json::from_value(v).unwrap();
    // Every refusal says why; a refused write inside the project says how to allow it.
    for x in r.runs.iter().flat_map(|run| &run.refused) {
        assert!(!x.why.is_empty() && !x.path.is_empty(), "{x:?}");
    }
    r
}

#[test]
fn report_describes_what_was_enforced() {
    if !require_userns() {
        return;
    }
    let ctx = TestContext::new();
    let report = ctx.root().join("r.json");
    let out = ctx.run(
        &[
            "--report",
            report.to_str().unwrap(),
            "--rw",
            ctx.project.to_str().unwrap(),
        ],
        &["sh", "-c", "exit 5"],
    );
    assert_eq!(out.status.code(), Some(5), "{}", show(&out));
    let r = read(&report);
    assert_eq!(r.schema_version, 1);
    assert_eq!(r.tool.name, "ringfence");
    assert!(!r.tool.version.is_empty());
    assert_eq!(r.runs.len(), 1);
    assert!(r.warnings.is_empty());
    let run = &r.runs[0];
    assert_eq!(run.command, ["sh", "-c", "exit 5"]);
    assert!(run.program.is_absolute());
    assert_eq!(run.cwd, ctx.project);
    assert!(run.started_unix_ms > 1_600_000_000_000);
    assert!(run.duration_ms > 0.0);
    assert_eq!(run.exit, Exit::Code(5));
    assert_eq!(run.exit_status, 5);
    assert!(!run.timed_out);
    assert!(run.timeout_ms.is_some());
    assert!(run.view.read_write.contains(&ctx.project));
    assert!(run.view.read_only.contains(&PathBuf::from("/usr")));
    assert_eq!(run.view.home, ctx.home);
    let e = &run.enforcement;
    for ns in [
        &e.namespaces.user,
        &e.namespaces.mount,
        &e.namespaces.pid,
        &e.namespaces.net,
        &e.namespaces.ipc,
        &e.namespaces.uts,
    ] {
        assert_eq!(ns.status, Status::FullyEnforced);
    }
    assert_eq!(e.seccomp.status, Status::FullyEnforced);
    // The deny table's groups: privileged, new APIs, clone3, socket families, listeners.
    assert_eq!(e.seccomp.filters, 5);
    assert_eq!(e.capabilities.status, Status::FullyEnforced);
    assert_eq!(e.no_new_privs.status, Status::FullyEnforced);
    assert_eq!(
        e.recorder.as_ref().map(|m| m.status),
        Some(Status::FullyEnforced)
    );
    assert_eq!(e.tier.as_deref(), Some("full"));
    assert_eq!(e.rlimits.core, 0);
    assert!(e.rlimits.nproc > 0 && e.rlimits.nofile > 0 && e.rlimits.fsize > 0);
    // Landlock: whatever the kernel gives, the report must say it; pinned via env in CI.
    assert_eq!(e.landlock.requested_abi, 7);
    match std::env::var("RINGFENCE_TEST_LANDLOCK_ABI")
        .ok()
        .and_then(|v| v.parse::<u32>().ok())
    {
        Some(abi) if abi >= 7 => {
            assert_eq!(e.landlock.status, Status::FullyEnforced);
            assert_eq!(e.landlock.kernel_abi, Some(abi));
        }
        Some(0) => assert_eq!(e.landlock.status, Status::NotEnforced),
        _ => {}
    }
    assert!(run.survivors.is_empty());
    assert!(run.package.is_none(), "`run` has no package");
    assert!(run.replay_mode.is_none() && r.replay.is_none() && r.install.is_none());
    assert!(run.findings.is_empty(), "{:?}", run.findings);
    // The syscall recorder saw the shell run.
    assert!(
        run.spawned
            .iter()
            .any(|s| s.argv.first().is_some_and(|a| a.ends_with("sh"))),
        "{:?}",
        run.spawned
    );
    // Decoy files and well-known environment canaries were planted.
    let ids: Vec<&str> = run.canaries.iter().map(|c| c.id.as_str()).collect();
    for id in [
        "npmrc-token",
        "ssh-key",
        "aws-secret-access-key",
        "env:NPM_TOKEN",
        "env:GITHUB_TOKEN",
    ] {
        assert!(ids.contains(&id), "{id} not in {ids:?}");
    }
    let _ = (
        &e.namespaces.user.detail,
        &e.rlimits.status,
        &e.rlimits.detail,
    );
}

#[test]
fn timed_out_run_is_reported() {
    if !require_userns() {
        return;
    }
    let ctx = TestContext::new();
    let report = ctx.root().join("r.json");
    let out = ctx.run(
        &["--report", report.to_str().unwrap(), "--timeout", "0.5"],
        &["sleep", "30"],
    );
    assert_eq!(out.status.code(), Some(137), "{}", show(&out));
    let r = read(&report);
    assert!(r.runs[0].timed_out);
    assert_eq!(r.runs[0].exit, Exit::Signal(9));
    assert_eq!(r.runs[0].timeout_ms, Some(500));
    let _ = (&r.runs[0]
        .survivors
        .first()
        .map(|s| (s.pid, s.ppid, &s.argv)),);
}

/// The install report holds one entry per script with package attribution, in the same frozen
/// shape.
#[test]
fn install_report_contract() {
    use crate::common::{Registry, copy_tree, fixtures, require_npm};
    if !require_userns() || !require_npm() {
        return;
    }
    let Some(registry) = Registry::start() else {
        return;
    };
    let ctx = TestContext::new();
    let app = ctx.project_dir("app");
    copy_tree(&fixtures().join("projects/confined"), &app);
    let report = ctx.root().join("r.json");
    let mut cmd = std::process::Command::new(crate::common::bin());
    registry.configure(&mut cmd, &ctx.home, &ctx.root().join("cache"));
    let out = cmd
        .args(["install", "--report", report.to_str().unwrap()])
        .current_dir(&app)
        .output()
        .unwrap();
    // rf-writer appends to ~/.bashrc: a high finding, exit 1.
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let r = read(&report);
    let events: Vec<(String, String, String)> = r
        .runs
        .iter()
        .map(|run| {
            let p = run.package.as_ref().unwrap();
            (p.name.clone(), p.event.clone(), p.outcome.clone())
        })
        .collect();
    assert!(
        events.contains(&("rf-writer".into(), "postinstall".into(), "ok".into())),
        "{events:?}"
    );
    let writer = r
        .runs
        .iter()
        .find(|x| x.package.as_ref().unwrap().name == "rf-writer")
        .unwrap();
    let p = writer.package.as_ref().unwrap();
    assert_eq!(p.location, "node_modules/rf-writer");
    assert_eq!(p.kind, "dependency");
    assert!(p.integrity.as_deref().unwrap_or("").starts_with("sha512-"));
    assert_eq!(p.script_sha256.len(), 64);
    assert_eq!(
        writer.view.read_write,
        vec![app.join("node_modules/rf-writer")]
    );
    // Every package npm added is accounted for: with scripts (runs above) or with none.
    let install = r.install.as_ref().expect("install section");
    assert_eq!(
        install.packages,
        install.with_scripts + install.no_install_time_behaviour.len()
    );
    assert!(install.with_scripts >= 1);
    // A first install in this world: nothing came from the build cache.
    assert!(r.runs.iter().all(|run| run.cached.is_none()));
    // No allowlist and no approvals: nothing skipped, every scripted dependency unreviewed.
    assert!(
        install.skipped.is_empty() && r.approvals.is_none(),
        "{install:?}"
    );
    assert!(
        install.unreviewed.iter().any(|u| u.name == "rf-writer"),
        "{install:?}"
    );
}

/// The schema check can fail: an unknown field, a wrong severity, a missing field.
#[test]
fn schema_rejects_malformed_reports() {
    let good = serde_json::json!({"schema_version": 1, "tool": {"name": "ringfence", "version": "0"}, "runs": []});
    assert!(validate_against_schema(&good).is_ok());
    for bad in [
        serde_json::json!({"schema_version": 2, "tool": {"name": "ringfence", "version": "0"}, "runs": []}),
        serde_json::json!({"schema_version": 1, "tool": {"name": "ringfence", "version": "0"}, "runs": [], "extra": 1}),
        serde_json::json!({"schema_version": 1, "tool": {"name": "ringfence", "version": "0"}}),
    ] {
        assert!(validate_against_schema(&bad).is_err(), "{bad}");
    }
}

/// Node processes' environment lookups are recorded by name (never value) with the process that
/// made them, child node processes included, and CI detection / credential lookups are findings.
/// Assigning to process.env still works under the recording proxy.
#[test]
fn env_probes_are_recorded_and_attributed() {
    if !require_userns() || !crate::common::require_npm() {
        return;
    }
    let ctx = TestContext::new();
    let report = ctx.root().join("r.json");
    let script = r#"
        if (process.env.CI === undefined) console.log('dev box');
        if ('NPM_TOKEN' in process.env) console.log('token present');
        process.env.PATH = '/nonexistent:' + process.env.PATH;
        const out = require('child_process')
            .execFileSync('node', ['-e', 'console.log(process.env.BUILDKITE === undefined, process.env.PATH.split(":")[0])'])
            .toString();
        console.log(out.trim());
    "#;
    let out = ctx.run(
        &["--report", report.to_str().unwrap()],
        &["node", "-e", script],
    );
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let text = crate::common::stdout(&out);
    assert!(text.contains("dev box"), "{text}");
    assert!(
        text.contains("token present"),
        "a canary NPM_TOKEN is planted: {text}"
    );
    assert!(
        text.contains("true /nonexistent"),
        "assignment went through: {text}"
    );
    let r = read(&report);
    let run = &r.runs[0];
    let probe = |name: &str| {
        run.env_probes
            .iter()
            .find(|p| p.name == name)
            .unwrap_or_else(|| panic!("no probe of {name}: {:#?}", run.env_probes))
    };
    assert_eq!(probe("CI").op, "get");
    assert_eq!(probe("NPM_TOKEN").op, "has");
    assert!(
        probe("CI")
            .process
            .argv
            .iter()
            .any(|a| a.contains("dev box"))
    );
    assert_ne!(probe("BUILDKITE").process.pid, probe("CI").process.pid);
    assert!(probe("BUILDKITE").process.pid > 1);
    let finding = |kind: &str| {
        run.findings
            .iter()
            .find(|f| f.kind == kind)
            .unwrap_or_else(|| panic!("no {kind} finding: {:#?}", run.findings))
    };
    let fp = finding("fingerprinting");
    assert_eq!(fp.severity, "low");
    assert!(fp.summary.contains("CI") && fp.summary.contains("BUILDKITE"));
    let sr = finding("secret-read");
    // NPM_TOKEN was not set: the script saw a decoy ringfence planted (a probe, low).
    assert_eq!(
        (sr.severity.as_str(), sr.target.as_str()),
        ("low", "env:NPM_TOKEN")
    );
    assert!(sr.process.is_some() && sr.at_unix_ms.is_some());
    // The report holds names, not values: the canary's value appears only under `canaries`.
    let canary = run
        .canaries
        .iter()
        .find(|c| c.id == "env:NPM_TOKEN")
        .unwrap();
    let without_canaries = std::fs::read_to_string(&report)
        .unwrap()
        .replacen(&canary.value, "", 1);
    assert!(!without_canaries.contains(&canary.value));
}

/// Reads of secrets by programs that are not node: attributed only with `--forensic` (every
/// open is notified); node's own reads of other processes' environments are seen by default.
#[test]
fn forensic_recording_attributes_reads_by_any_program() {
    if !require_userns() || !crate::common::require_npm() {
        return;
    }
    let ctx = TestContext::new();
    let script = "cat \"$HOME/.npmrc\" >/dev/null; head -c 10 /proc/1/environ >/dev/null 2>&1; \
                  node -e \"try { require('fs').readFileSync('/proc/1/environ') } catch {}\"; true";
    let finding = |r: &Report, target: &str| -> Option<FindingM> {
        r.runs[0]
            .findings
            .iter()
            .find(|f| f.target.ends_with(target))
            .map(|f| FindingM {
                code: f.code.clone(),
                kind: f.kind.clone(),
                severity: f.severity.clone(),
                summary: f.summary.clone(),
                target: f.target.clone(),
                detail: None,
                process: f.process.as_ref().map(|p| ActorM {
                    pid: p.pid,
                    argv: p.argv.clone(),
                }),
                at_unix_ms: f.at_unix_ms,
            })
    };
    // Default: the decoy read is seen (access time) and attributed through the command line
    // that names it; node's environ read is seen through the preload.
    let report = ctx.root().join("default.json");
    let out = ctx.run(
        &["--report", report.to_str().unwrap()],
        &["sh", "-c", script],
    );
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let r = read(&report);
    let npmrc = finding(&r, "/.npmrc").expect("decoy read");
    assert_eq!(npmrc.process.as_ref().unwrap().argv[0], "cat");
    let environ = finding(&r, "/proc/*/environ").expect("environ read");
    assert_eq!(
        (environ.kind.as_str(), environ.severity.as_str()),
        ("secret-read", "high")
    );
    assert!(environ.process.as_ref().unwrap().argv[0].ends_with("node"));
    // Forensic: `head` reading /proc/1/environ is seen and named too.
    let report = ctx.root().join("forensic.json");
    let out = ctx.run(
        &["--forensic", "--report", report.to_str().unwrap()],
        &["sh", "-c", script],
    );
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let r = read(&report);
    let environ = finding(&r, "/proc/*/environ").expect("environ read");
    assert_eq!(environ.process.as_ref().unwrap().argv[0], "head");
}

/// When the seccomp listener cannot be installed (a runtime that refuses
/// SECCOMP_FILTER_FLAG_NEW_LISTENER), the run still happens under the static filter and the
/// report and the terminal say that nothing was recorded.
#[test]
fn a_recorder_that_cannot_attach_is_reported() {
    use crate::common::{Refuse, flag_set, under_seccomp};
    if !crate::common::require_userns() {
        return;
    }
    const NEW_LISTENER: u64 = 1 << 3;
    let refuse = [Refuse {
        syscall: libc::SYS_seccomp,
        rules: vec![flag_set(1, NEW_LISTENER)],
        errno: libc::EBUSY,
    }];
    let ctx = TestContext::new();
    let report = ctx.outside.join("report.json");
    let mut c = ctx.cmd();
    c.args([
        "run",
        "--ro",
        ".",
        "--report",
        report.to_str().unwrap(),
        "--",
    ])
    .args(["sh", "-c", "echo x > /tmp/y"]);
    let out = under_seccomp(&mut c, &refuse);
    assert!(out.status.success(), "{}", show(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("warning[recorder-unavailable]"), "{err}");
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    let rec = &r["runs"][0]["enforcement"]["recorder"];
    assert_eq!(rec["status"], "not_enforced", "{rec}");
    assert!(
        rec["detail"]
            .as_str()
            .unwrap()
            .contains("could not be attached"),
        "{rec}"
    );
    // With the recorder, the same run says so too.
    let out = ctx.run(
        &["--ro", ".", "--report", report.to_str().unwrap()],
        &["true"],
    );
    assert!(out.status.success(), "{}", show(&out));
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!(
        r["runs"][0]["enforcement"]["recorder"]["status"],
        "fully_enforced"
    );

    // An install's summary says how many scripts ran unrecorded.
    if !crate::common::require_npm() {
        return;
    }
    std::fs::write(
        ctx.project.join("package.json"),
        r#"{"name":"p","version":"1.0.0","scripts":{"postinstall":"true"}}"#,
    )
    .unwrap();
    let mut c = ctx.cmd();
    c.args(["install", "--no-audit", "--no-fund", "--offline"]);
    let out = under_seccomp(&mut c, &refuse);
    assert!(out.status.success(), "{}", show(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("warning[recorder-unavailable]: 1 script(s) ran without the syscall recorder"),
        "{err}"
    );
}
