//! Attack fixtures (`fixtures/attacks/*.toml`, packages in `fixtures/registry`): each is installed
//! with `ringfence install` into a fresh project. The host must be untouched (the real HOME, the
//! project outside node_modules, no surviving process) and the report must hold the expected
//! findings, attributed to the package. Adding a fixture adds a case with no Rust change.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use serde::Deserialize;

use crate::common::{
    Registry, TestContext, bin, fixtures, host_processes_with, require_npm, require_userns, show,
};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct Expectation {
    title: String,
    package: String,
    #[serde(default)]
    benign: bool,
    #[serde(default)]
    expect: Vec<ExpectedFinding>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct ExpectedFinding {
    kind: String,
    severity: String,
    target_suffix: String,
}

fn tree(root: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            let rel = p.strip_prefix(root).unwrap().display().to_string();
            if rel == "node_modules" || rel == "package-lock.json" {
                continue;
            }
            if p.is_dir() {
                out.insert(rel, b"<dir>".to_vec());
                stack.push(p);
            } else {
                out.insert(rel, std::fs::read(&p).unwrap_or_default());
            }
        }
    }
    out
}

#[test]
fn attack_fixtures_are_contained_and_reported() {
    if !require_userns() || !require_npm() {
        return;
    }
    let Some(registry) = Registry::start() else {
        return;
    };
    let mut dir: Vec<_> = std::fs::read_dir(fixtures().join("attacks"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    dir.sort();
    assert!(dir.len() >= 4);
    let mut failures = Vec::new();
    for case in dir {
        let exp: Expectation = toml::from_str(&std::fs::read_to_string(&case).unwrap()).unwrap();
        let ctx = TestContext::new();
        // The "real" home: canary files that must stay byte-identical.
        std::fs::create_dir_all(ctx.home.join(".ssh")).unwrap();
        std::fs::write(
            ctx.home.join(".npmrc"),
            "//registry/:_authToken=HOST-REAL-TOKEN\n",
        )
        .unwrap();
        std::fs::write(ctx.home.join(".ssh/id_ed25519"), "HOST-REAL-KEY\n").unwrap();
        std::fs::write(ctx.home.join(".bashrc"), "# host bashrc\n").unwrap();
        let app = ctx.root().join("app");
        std::fs::create_dir_all(&app).unwrap();
        std::fs::write(
            app.join("package.json"),
            format!(
                r#"{{"name":"victim","version":"1.0.0","dependencies":{{"{}":"1.0.0"}}}}"#,
                exp.package
            ),
        )
        .unwrap();
        std::fs::write(app.join("README.md"), "project file\n").unwrap();
        let home_before = tree(&ctx.home);
        let app_before = tree(&app);
        let outside_before = tree(&ctx.outside);
        let marker = format!("rf-marker-{}-{}", std::process::id(), exp.package);
        let report = ctx.root().join("report.json");
        let mut cmd = Command::new(bin());
        registry.configure(&mut cmd, &ctx.home, &ctx.root().join("cache"));
        let out = cmd
            .args(["install", "--report", report.to_str().unwrap()])
            .env("RINGFENCE_FIXTURE_MARKER", &marker)
            .current_dir(&app)
            .output()
            .unwrap();
        let label = format!("{} ({})", exp.title, case.display());
        let expected_code = if exp.benign { 0 } else { 1 };
        if out.status.code() != Some(expected_code) {
            failures.push(format!(
                "{label}: exit {:?}, expected {expected_code}\n{}",
                out.status.code(),
                show(&out)
            ));
            continue;
        }
        if tree(&ctx.home) != home_before {
            failures.push(format!("{label}: the host HOME changed"));
        }
        if tree(&app) != app_before {
            failures.push(format!("{label}: the project changed outside node_modules"));
        }
        if tree(&ctx.outside) != outside_before {
            failures.push(format!("{label}: a host directory changed"));
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
        let left = host_processes_with(&marker);
        if !left.is_empty() {
            failures.push(format!("{label}: processes survived on the host: {left:?}"));
        }
        let r: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
        let findings: Vec<&serde_json::Value> = r["runs"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|run| run["package"]["name"] == exp.package.as_str())
            .flat_map(|run| run["findings"].as_array().unwrap().iter())
            .collect();
        for e in &exp.expect {
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
        if exp.benign {
            let high: Vec<_> = r["runs"]
                .as_array()
                .unwrap()
                .iter()
                .flat_map(|run| run["findings"].as_array().unwrap().iter())
                .filter(|f| f["severity"] == "high" || f["severity"] == "critical")
                .collect();
            if !high.is_empty() {
                failures.push(format!(
                    "{label}: benign control has high findings: {high:#?}"
                ));
            }
        }
        // No canary or real secret in the report: the real host token never reaches it.
        let text = std::fs::read_to_string(&report).unwrap();
        if text.contains("HOST-REAL") {
            failures.push(format!("{label}: a real secret reached the report"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
