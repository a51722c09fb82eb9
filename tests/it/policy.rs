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
    let r = json(&r1);
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
    let r = json(&r2);
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
    let r = json(&report);
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
