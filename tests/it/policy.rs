//! Policy a team lives with: approvals bound to behaviour (`ringfence approve`,
//! `ringfence-approvals.json`), the allowlists projects already have, `--only-approved`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::common::{Registry, TestContext, bin, require_npm, require_userns, show};

/// A project under the user's HOME, installed from the fixture registry.
struct Project {
    ctx: TestContext,
    app: PathBuf,
}

impl Project {
    fn new(package_json: &str) -> Project {
        let ctx = TestContext::new();
        let app = ctx.project_dir("app");
        std::fs::create_dir_all(&app).unwrap();
        std::fs::write(app.join("package.json"), package_json).unwrap();
        // A decoy-worthy real token: it must never show up anywhere.
        std::fs::write(
            ctx.home.join(".npmrc"),
            "//registry/:_authToken=HOST-REAL-TOKEN\n",
        )
        .unwrap();
        Project { ctx, app }
    }

    fn cmd(&self, registry: &Registry, args: &[&str]) -> Command {
        let mut c = Command::new(bin());
        registry.configure(&mut c, &self.ctx.home, &self.ctx.root().join("cache"));
        c.args(args).current_dir(&self.app);
        for v in ["CI", "GITHUB_ACTIONS", "GITLAB_CI"] {
            c.env_remove(v);
        }
        c
    }

    fn run(&self, registry: &Registry, args: &[&str]) -> Output {
        self.cmd(registry, args).output().unwrap()
    }

    fn report(&self, name: &str) -> PathBuf {
        self.ctx.root().join(name)
    }

    fn lock(&self) -> String {
        std::fs::read_to_string(self.app.join("ringfence-approvals.json")).unwrap_or_default()
    }
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The approval trio: rf-appr 1.0.0 builds an addon and is approved; 1.0.1 builds the same and
/// keeps its approval (the lock gains the version, nothing else); 1.0.2 also reads `~/.npmrc`
/// and looks up an attacker host: `behaviour-changed`, exit 1, the difference in the summary,
/// the report and SARIF, and the lock untouched.
#[test]
fn approvals_carry_over_same_behaviour_and_flag_grown_behaviour() {
    if !require_userns() || !require_npm() {
        return;
    }
    let Some(registry) = Registry::start() else {
        return;
    };
    let p = Project::new(r#"{"name":"app","version":"1.0.0","dependencies":{"rf-appr":"1.0.0"}}"#);
    let out = p.run(&registry, &["install"]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));

    // Without a report of this project, approve says what to do.
    let lone = TestContext::new();
    std::fs::write(lone.project.join("package.json"), "{}").unwrap();
    let none = lone.cmd().args(["approve", "--all"]).output().unwrap();
    assert_eq!(none.status.code(), Some(2), "{}", show(&none));
    assert!(
        stderr(&none).contains("ringfence install"),
        "{}",
        show(&none)
    );
    // A package that did not run is refused by name, with what there is.
    let bad = p.run(&registry, &["approve", "rf-nope"]);
    assert_eq!(bad.status.code(), Some(2), "{}", show(&bad));
    assert!(stderr(&bad).contains("rf-appr"), "{}", show(&bad));

    let out = p.run(&registry, &["approve", "rf-appr"]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let approved = p.lock();
    let lock: serde_json::Value = serde_json::from_str(&approved).unwrap();
    let rec = &lock["packages"]["rf-appr"];
    assert!(rec["versions"]["1.0.0"].is_string(), "{approved}");
    let commands = rec["scripts"]["install"]["behaviour"]["commands"]
        .as_array()
        .unwrap();
    assert!(
        commands.iter().any(|c| c == "node-gyp" || c == "make"),
        "{approved}"
    );
    assert!(
        rec["scripts"]["install"]["behaviour"]["network"].is_null(),
        "{approved}"
    );

    // Same behaviour, new version: carried over, exit 0, the lock gains only the version.
    let r1 = p.report("r1.json");
    let out = p.run(
        &registry,
        &["install", "--report", r1.to_str().unwrap(), "rf-appr@1.0.1"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert!(
        stderr(&out).contains("carried over to 1.0.1"),
        "{}",
        show(&out)
    );
    let r = crate::report::json(&r1);
    assert_eq!(r["approvals"]["carried"][0]["version"], "1.0.1", "{r:#}");
    assert_eq!(r["approvals"]["lock_updated"], true);
    let carried = p.lock();
    let before: Vec<&str> = approved.lines().collect();
    let added: Vec<&str> = carried
        .lines()
        .filter(|l| !before.contains(l) && !before.contains(&l.trim_end_matches(',')))
        .collect();
    assert_eq!(added.len(), 1, "only the new version is added:\n{carried}");
    assert!(added[0].contains("\"1.0.1\""), "{added:?}");

    // More behaviour: a secret read and a new host.
    let r2 = p.report("r2.json");
    let sarif = p.report("r2.sarif");
    let out = p.run(
        &registry,
        &[
            "install",
            "--report",
            r2.to_str().unwrap(),
            "--sarif",
            sarif.to_str().unwrap(),
            "rf-appr@1.0.2",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let err = stderr(&out);
    assert!(err.contains("BEHAVIOUR CHANGED"), "{err}");
    assert!(
        err.contains("collect.attacker.test") && err.contains("~/.npmrc"),
        "{err}"
    );
    let r = crate::report::json(&r2);
    let changed = &r["approvals"]["changed"][0];
    assert_eq!(changed["version"], "1.0.2", "{r:#}");
    assert_eq!(changed["new"]["secrets"][0], "~/.npmrc", "{r:#}");
    assert_eq!(
        changed["new"]["network"][0], "collect.attacker.test",
        "{r:#}"
    );
    let finding = r["runs"][0]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["code"] == "behaviour-changed")
        .unwrap_or_else(|| panic!("no behaviour-changed finding: {r:#}"))
        .clone();
    assert_eq!(finding["severity"], "high");
    let s = std::fs::read_to_string(&sarif).unwrap();
    assert!(s.contains("\"ruleId\": \"behaviour-changed\""), "{s}");
    assert_eq!(
        p.lock(),
        carried,
        "a changed run is never approved by itself"
    );
    for file in [&r2, &sarif, &p.app.join("ringfence-approvals.json")] {
        let text = std::fs::read_to_string(file).unwrap();
        assert!(
            !text.contains("HOST-REAL"),
            "a real secret in {}",
            file.display()
        );
    }
}

/// `ci` compares but never rewrites the lock; an approval for a package that is gone is an
/// `unused-approval` warning; a malformed lock stops before npm runs (exit 2, file:line).
#[test]
fn ci_never_writes_the_lock_and_unused_or_malformed_approvals_are_reported() {
    if !require_userns() || !require_npm() {
        return;
    }
    let Some(registry) = Registry::start() else {
        return;
    };
    let p = Project::new(r#"{"name":"app","version":"1.0.0","dependencies":{"rf-appr":"1.0.0"}}"#);
    let out = p.run(&registry, &["install"]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let out = p.run(&registry, &["approve", "--all"]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let mut lock: serde_json::Value = serde_json::from_str(&p.lock()).unwrap();
    // Approved for another version only, plus a package the project no longer has.
    let rec = lock["packages"]["rf-appr"].clone();
    let mut other = rec.clone();
    other["versions"] = serde_json::json!({"0.9.0": null});
    lock["packages"]["rf-appr"] = other;
    lock["packages"]["rf-gone"] = rec;
    let text = serde_json::to_string_pretty(&lock).unwrap() + "\n";
    std::fs::write(p.app.join("ringfence-approvals.json"), &text).unwrap();

    let report = p.report("ci.json");
    let out = p.run(&registry, &["ci", "--report", report.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let r = crate::report::json(&report);
    assert_eq!(r["approvals"]["carried"][0]["version"], "1.0.0", "{r:#}");
    assert_eq!(r["approvals"]["lock_updated"], false, "{r:#}");
    assert_eq!(r["approvals"]["unused"][0], "rf-gone", "{r:#}");
    assert!(
        r["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w["code"] == "unused-approval"),
        "{r:#}"
    );
    assert!(stderr(&out).contains("rf-gone"), "{}", show(&out));
    assert_eq!(p.lock(), text, "ci rewrote the lock");

    std::fs::write(
        p.app.join("ringfence-approvals.json"),
        "{\n  \"version\": 1,\n  \"packages\": {\"x\": {\"versions\": {}, \"scripts\": {}, \"typo\": 1}}\n}\n",
    )
    .unwrap();
    let lockfile_before = std::fs::read(p.app.join("package-lock.json")).unwrap();
    let out = p.run(&registry, &["install", "rf-appr@1.0.1"]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    let err = stderr(&out);
    assert!(
        err.contains("ringfence-approvals.json:3") && err.contains("approvals-invalid"),
        "{err}"
    );
    assert_eq!(
        std::fs::read(p.app.join("package-lock.json")).unwrap(),
        lockfile_before,
        "npm ran although the lock was unusable"
    );
}

/// One allowlist case: the project's files, ringfence's flags, and what must happen.
struct Case {
    name: &'static str,
    /// Extra `package.json` fields (JSON object members, without braces).
    package_json: &'static str,
    pnpm_workspace: Option<&'static str>,
    flags: &'static [&'static str],
    exit: i32,
    /// `name@version` of packages whose scripts must not have run, with the source file named.
    denied: &'static [(&'static str, &'static str)],
    /// `name@version` whose scripts ran.
    ran: &'static [&'static str],
    /// `name@version` listed as unreviewed.
    unreviewed: &'static [&'static str],
}

/// The allowlists projects already have, in their real formats: a deny means the scripts do
/// not run (checked on disk: the package's own record of running is absent) and the summary and
/// report name the file and entry; an allow runs them (still sandboxed); the rest are listed as
/// unreviewed, or skipped with `--only-approved`, which `--strict` makes exit 1.
#[test]
fn allowlists_in_their_real_formats_decide_what_runs() {
    if !require_userns() || !require_npm() {
        return;
    }
    let Some(registry) = Registry::start() else {
        return;
    };
    let cases = [
        Case {
            name: "npm allowScripts",
            package_json: r#""allowScripts": { "rf-a@1.0.0": true, "rf-c@2.0.0 || 2.0.1": true, "rf-b": false }"#,
            pnpm_workspace: None,
            flags: &[],
            exit: 0,
            denied: &[("rf-b@1.0.0", "package.json:")],
            ran: &["rf-a@1.0.0", "rf-c@2.0.0", "rf-c@1.0.0"],
            unreviewed: &["rf-c@1.0.0"],
        },
        Case {
            name: "pnpm 11 allowBuilds",
            package_json: "",
            pnpm_workspace: Some(
                "packages:\n  - .\nallowBuilds:\n  rf-a: true\n  rf-b: true\n  rf-c@2.0.0: false\n  rf-c@1.0.0: true\n",
            ),
            flags: &[],
            exit: 0,
            denied: &[("rf-c@2.0.0", "pnpm-workspace.yaml:6")],
            ran: &["rf-a@1.0.0", "rf-b@1.0.0", "rf-c@1.0.0"],
            unreviewed: &[],
        },
        Case {
            name: "pnpm 10 fields in package.json",
            package_json: r#""pnpm": { "onlyBuiltDependencies": ["rf-a", "rf-c"], "ignoredBuiltDependencies": ["rf-b"] }"#,
            pnpm_workspace: None,
            flags: &[],
            exit: 0,
            denied: &[("rf-b@1.0.0", "package.json:")],
            ran: &["rf-a@1.0.0", "rf-c@1.0.0", "rf-c@2.0.0"],
            unreviewed: &[],
        },
        Case {
            name: "LavaMoat allowScripts",
            package_json: r#""lavamoat": { "allowScripts": { "rf-a#1.0.0": true, "rf-a>rf-b": false, "rf-a>rf-c#2.0.0": true, "rf-a>rf-b>rf-c#1.0.0": true } }"#,
            pnpm_workspace: None,
            flags: &[],
            exit: 0,
            denied: &[("rf-b@1.0.0", "package.json:")],
            ran: &["rf-a@1.0.0", "rf-c@2.0.0", "rf-c@1.0.0"],
            unreviewed: &[],
        },
        Case {
            name: "Bun trustedDependencies, --only-approved --strict",
            package_json: r#""trustedDependencies": ["rf-a", "rf-b"]"#,
            pnpm_workspace: None,
            flags: &["--only-approved", "--strict"],
            exit: 1,
            denied: &[
                ("rf-c@1.0.0", "--only-approved"),
                ("rf-c@2.0.0", "--only-approved"),
            ],
            ran: &["rf-a@1.0.0", "rf-b@1.0.0"],
            unreviewed: &[],
        },
    ];
    let mut failures = Vec::new();
    for case in &cases {
        let extra = if case.package_json.is_empty() {
            String::new()
        } else {
            format!(",\n  {}", case.package_json)
        };
        let p = Project::new(&format!(
            "{{\n  \"name\": \"app\",\n  \"version\": \"1.0.0\",\n  \"dependencies\": {{ \"rf-a\": \"1.0.0\" }}{extra}\n}}\n"
        ));
        if let Some(y) = case.pnpm_workspace {
            std::fs::write(p.app.join("pnpm-workspace.yaml"), y).unwrap();
        }
        let report = p.report("r.json");
        let mut args = vec!["install", "--report", report.to_str().unwrap()];
        args.extend(case.flags);
        let out = p.run(&registry, &args);
        let err = stderr(&out);
        let label = case.name;
        if out.status.code() != Some(case.exit) {
            failures.push(format!(
                "{label}: exit {:?}, expected {}\n{}",
                out.status.code(),
                case.exit,
                show(&out)
            ));
            continue;
        }
        let r = crate::report::json(&report);
        let ran: Vec<String> = r["runs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| {
                format!(
                    "{}@{}",
                    x["package"]["name"].as_str().unwrap(),
                    x["package"]["version"].as_str().unwrap()
                )
            })
            .collect();
        let skipped = r["install"]["skipped"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        for (who, by) in case.denied {
            if ran.iter().any(|x| x == who) {
                failures.push(format!("{label}: {who} ran: {ran:?}"));
            }
            let (name, version) = who.split_once('@').unwrap();
            // On disk: the package's own record of running is absent.
            let dir = installed_dir(&p.app, name, version);
            if dir.join(".rec").exists() {
                failures.push(format!("{label}: {who} left its .rec: it ran"));
            }
            if !skipped.iter().any(|k| {
                format!(
                    "{}@{}",
                    k["name"].as_str().unwrap(),
                    k["version"].as_str().unwrap()
                ) == *who
                    && k["by"].as_str().unwrap().contains(by)
            }) {
                failures.push(format!(
                    "{label}: {who} is not reported skipped by {by}: {skipped:?}"
                ));
            }
            if !err
                .lines()
                .any(|l| l.contains("skipped") && l.contains(who) && l.contains(by))
            {
                failures.push(format!(
                    "{label}: the summary does not say {who} was skipped by {by}:\n{err}"
                ));
            }
        }
        for who in case.ran {
            if !ran.iter().any(|x| x == who) {
                failures.push(format!("{label}: {who} did not run: {ran:?}"));
            }
        }
        let unreviewed: Vec<String> = r["install"]["unreviewed"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|u| {
                format!(
                    "{}@{}",
                    u["name"].as_str().unwrap(),
                    u["version"].as_str().unwrap()
                )
            })
            .collect();
        let mut want: Vec<String> = case.unreviewed.iter().map(|s| s.to_string()).collect();
        let mut got = unreviewed.clone();
        want.sort();
        got.sort();
        if got != want {
            failures.push(format!("{label}: unreviewed {got:?}, expected {want:?}"));
        }
        if case.flags.contains(&"--strict")
            && !err.lines().any(|l| {
                l.contains("--strict:") && l.contains("were not run") && l.contains("rf-c@1.0.0")
            })
        {
            failures.push(format!(
                "{label}: --strict does not list the skipped scripts:\n{err}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// The directory npm installed `name@version` in (nested or hoisted).
fn installed_dir(app: &Path, name: &str, version: &str) -> PathBuf {
    let lock: serde_json::Value =
        serde_json::from_slice(&std::fs::read(app.join("package-lock.json")).unwrap()).unwrap();
    let loc = lock["packages"]
        .as_object()
        .unwrap()
        .iter()
        .find(|(k, v)| k.ends_with(&format!("node_modules/{name}")) && v["version"] == version)
        .map(|(k, _)| k.clone())
        .unwrap_or_else(|| panic!("{name}@{version} is not installed"));
    app.join(loc)
}

/// A malformed allowlist stops the install before npm runs, with the file, line and code.
#[test]
fn a_malformed_allowlist_is_exit_2_with_file_and_line() {
    if !require_userns() || !require_npm() {
        return;
    }
    let Some(registry) = Registry::start() else {
        return;
    };
    let p = Project::new(
        "{\n  \"name\": \"app\",\n  \"dependencies\": { \"rf-a\": \"1.0.0\" },\n  \"allowScripts\": { \"rf-a\": \"yes\" }\n}\n",
    );
    let out = p.run(&registry, &["install"]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    let err = stderr(&out);
    assert!(err.contains("package.json:4"), "{err}");
    assert!(err.contains('['), "a code: {err}");
    assert!(!p.app.join("node_modules").exists(), "npm ran: {err}");
}

/// `--strict` for CI: an optional dependency whose script failed (npm removes it and exits 0)
/// makes the install exit 1 with the reason; a clean project stays 0.
#[test]
fn strict_fails_on_an_optional_failure_and_passes_a_clean_install() {
    if !require_userns() || !require_npm() {
        return;
    }
    let Some(registry) = Registry::start() else {
        return;
    };
    let p = Project::new(
        r#"{"name":"app","version":"1.0.0","optionalDependencies":{"rf-failopt":"1.0.0"}}"#,
    );
    let out = p.run(&registry, &["install"]);
    assert_eq!(out.status.code(), Some(0), "as npm: {}", show(&out));
    let _ = std::fs::remove_dir_all(p.app.join("node_modules"));
    let out = p.run(&registry, &["install", "--strict"]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let err = stderr(&out);
    assert!(
        err.lines()
            .any(|l| l.contains("--strict:") && l.contains("rf-failopt@1.0.0")),
        "{err}"
    );
    // The same from the project's policy file.
    let _ = std::fs::remove_dir_all(p.app.join("node_modules"));
    std::fs::write(
        p.app.join("ringfence.toml"),
        "version = 1\n[install]\nstrict = true\n",
    )
    .unwrap();
    let out = p.run(&registry, &["install"]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let clean = Project::new(r#"{"name":"app","version":"1.0.0","dependencies":{"rf-c":"1.0.0"}}"#);
    let out = clean.run(&registry, &["install", "--strict"]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
}

/// SARIF fingerprints identify a finding across runs: two installs of the same project give the
/// same set (no pid, time, temp path or canary in them), and the log passes Microsoft's
/// validator.
#[test]
fn sarif_fingerprints_are_stable_across_runs() {
    if !require_userns() || !require_npm() {
        return;
    }
    let Some(registry) = Registry::start() else {
        return;
    };
    let p = Project::new(
        r#"{"name":"app","version":"1.0.0","dependencies":{"rf-attack-secret-read":"1.0.0","rf-writer":"1.0.0"}}"#,
    );
    let mut sets = Vec::new();
    for i in 0..2 {
        let _ = std::fs::remove_dir_all(p.app.join("node_modules"));
        let sarif = p.report(&format!("r{i}.sarif"));
        let out = p.run(&registry, &["install", "--sarif", sarif.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(1), "{}", show(&out));
        crate::common::check_sarif(&sarif, &p.app);
        let log = json(&sarif);
        let mut set: Vec<(String, String)> = log["runs"][0]["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["ruleId"].as_str().unwrap().to_string(),
                    r["partialFingerprints"]["ringfence/v1"]
                        .as_str()
                        .unwrap()
                        .to_string(),
                )
            })
            .collect();
        set.sort();
        assert!(set.len() > 3, "{set:?}");
        sets.push(set);
    }
    assert_eq!(sets[0], sets[1]);
}

/// A native build gets the machine's cores (`JOBS` for node-gyp: the CPUs shared among the
/// builds running at once); the user's own `JOBS` wins.
#[test]
fn native_builds_get_the_cores() {
    if !require_userns() || !require_npm() {
        return;
    }
    let Some(registry) = Registry::start() else {
        return;
    };
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let p = Project::new(r#"{"name":"app","version":"1.0.0","dependencies":{"rf-jobs":"1.0.0"}}"#);
    let out = p.run(&registry, &["install"]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let jobs = std::fs::read_to_string(p.app.join("node_modules/rf-jobs/jobs.txt")).unwrap();
    assert_eq!(jobs, cpus.to_string());
    let _ = std::fs::remove_dir_all(p.app.join("node_modules"));
    // (JOBS is not a build cache key input — a job count does not change what a build makes —
    // but this fixture records it, so it must run again.)
    let out = p
        .cmd(&registry, &["install", "--no-build-cache"])
        .env("JOBS", "7")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let jobs = std::fs::read_to_string(p.app.join("node_modules/rf-jobs/jobs.txt")).unwrap();
    assert_eq!(jobs, "7");
}
