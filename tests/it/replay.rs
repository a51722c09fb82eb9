//! `ringfence replay`: a suspect package installed alone, as on a developer machine and as in CI,
//! with the differences reported and the evidence kept.

use std::process::Command;

use crate::common::{
    Registry, TestContext, bin, copy_tree, fixtures, require_npm, require_userns, show,
};

/// The fixture registry and a fresh world, or `None` when this machine cannot run the test.
fn world() -> Option<(Registry, TestContext)> {
    if !require_userns() || !require_npm() {
        return None;
    }
    Some((Registry::start()?, TestContext::new()))
}

/// `ringfence replay` pointed at the fixture registry, run from the world's root.
fn replay(registry: &Registry, ctx: &TestContext) -> Command {
    let mut cmd = Command::new(bin());
    registry.configure(&mut cmd, &ctx.home, &ctx.root().join("cache"));
    cmd.arg("replay").current_dir(ctx.root());
    cmd
}

/// The CI-aware, time-gated fixture: on a developer machine it waits (killed at the limit); in
/// CI it exfiltrates at once. The replay says exactly that.
#[test]
fn replay_shows_what_differs_between_ci_and_a_developer_machine() {
    let Some((registry, ctx)) = world() else {
        return;
    };
    let report = ctx.root().join("replay.json");
    let evidence = ctx.root().join("evidence");
    let out = replay(&registry, &ctx)
        .args(["--timeout", "3", "--report"])
        .arg(&report)
        .arg("--evidence")
        .arg(&evidence)
        .arg("rf-attack-timegate@1.0.0")
        .env("CI", "true") // the caller's own CI setting must not leak into the dev mode
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    // Valid against the schema, like every report.
    let _ = crate::report::read(&report);
    let r: serde_json::Value = crate::report::json(&report);
    let diffs = r["replay"]["differences"].as_array().unwrap();
    let has = |mode: &str, what: &str| {
        diffs.iter().any(|d| {
            d["only_in"] == mode && d["what"] == what && d["package"] == "rf-attack-timegate"
        })
    };
    assert!(has("dev", "timed-out"), "{diffs:#?}");
    assert!(has("ci", "exfiltration"), "{diffs:#?}");
    // CI detection happened in both modes: not a difference.
    assert!(
        !diffs.iter().any(|d| d["what"] == "fingerprinting"),
        "{diffs:#?}"
    );
    let modes: Vec<&str> = r["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|run| run["replay_mode"].as_str().unwrap())
        .collect();
    assert_eq!(modes, vec!["dev", "ci"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("behaviour that differed between modes"),
        "{stderr}"
    );
    // Evidence: the combined and per-mode reports, the package as its scripts left it.
    for f in [
        "report.json",
        "dev/report.json",
        "ci/report.json",
        "differences.txt",
    ] {
        assert!(evidence.join(f).is_file(), "{f} missing");
    }
    assert!(
        evidence
            .join("ci/packages/node_modules__rf-attack-timegate/payload.js")
            .is_file()
    );
}

/// A package directory is copied and packed without running its scripts: the original is
/// untouched even though the worm fixture rewrites its own package.json.
#[test]
fn replay_of_a_directory_leaves_the_original_untouched() {
    let Some((registry, ctx)) = world() else {
        return;
    };
    let pkg = ctx.root().join("suspect");
    copy_tree(&fixtures().join("registry/rf-attack-worm/1.0.0"), &pkg);
    let before = std::fs::read(pkg.join("package.json")).unwrap();
    let report = ctx.root().join("replay.json");
    let out = replay(&registry, &ctx)
        .args(["--mode", "dev", "--report"])
        .arg(&report)
        .arg(&pkg)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert_eq!(std::fs::read(pkg.join("package.json")).unwrap(), before);
    let r: serde_json::Value = crate::report::json(&report);
    let findings: Vec<&serde_json::Value> = r["runs"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|run| run["findings"].as_array().unwrap().iter())
        .collect();
    assert!(
        findings
            .iter()
            .any(|f| f["target"] == "npm publish" && f["severity"] == "high"),
        "{findings:#?}"
    );
    assert!(
        findings.iter().any(|f| f["kind"] == "tamper-attempt"
            && f["target"]
                .as_str()
                .unwrap()
                .ends_with("rf-attack-worm/package.json")),
        "{findings:#?}"
    );
    assert!(r["replay"]["differences"].as_array().unwrap().is_empty());
}
