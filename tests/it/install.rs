//! `ringfence install` / `ci` against plain npm, on fixture packages served from a loopback
//! registry. Every fixture script records its event, cwd, start time and the exact environment it
//! was given into its own directory (`fixtures/registry/.shared/rec.js`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::common::{
    Registry, TestContext, bin, copy_tree, fixtures, require_npm, require_userns, show,
};

type Records = BTreeMap<(String, String), (BTreeMap<String, String>, f64)>;

fn records(project: &Path) -> Records {
    let mut out = Records::new();
    let mut stack = vec![project.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            let meta = std::fs::symlink_metadata(&p).unwrap();
            if meta.file_type().is_symlink() {
                continue; // node_modules/<link> -> packages/x: count the real directory once
            }
            if p.file_name().is_some_and(|n| n == ".rec") {
                for rec in std::fs::read_dir(&p).unwrap().flatten() {
                    let v: serde_json::Value =
                        serde_json::from_slice(&std::fs::read(rec.path()).unwrap()).unwrap();
                    let rel = dir.strip_prefix(project).unwrap().display().to_string();
                    let env: BTreeMap<String, String> = v["env"]
                        .as_object()
                        .unwrap()
                        .iter()
                        .filter(|(k, _)| {
                            k.starts_with("npm_")
                                || [
                                    "PATH", "INIT_CWD", "NODE", "HOME", "NODE_ENV", "COLOR",
                                    "EDITOR",
                                ]
                                .contains(&k.as_str())
                        })
                        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
                        .collect();
                    out.insert(
                        (rel, v["event"].as_str().unwrap().to_string()),
                        (env, v["start"].as_f64().unwrap()),
                    );
                }
            } else if meta.is_dir() {
                stack.push(p);
            }
        }
    }
    out
}

struct World {
    ctx: TestContext,
    registry: Registry,
    app: PathBuf,
    cache: PathBuf,
}

impl World {
    fn new() -> Option<World> {
        if !require_userns() || !require_npm() {
            return None;
        }
        let registry = Registry::start()?;
        let ctx = TestContext::new();
        let app = ctx.project_dir("app");
        // npm's default cache location, inside HOME: the sandbox mounts it read-only inside the
        // decoy home.
        let cache = ctx.home.join(".npm");
        Some(World {
            ctx,
            registry,
            app,
            cache,
        })
    }

    fn fresh_project(&self, name: &str) {
        let _ = std::fs::remove_dir_all(&self.app);
        copy_tree(&fixtures().join("projects").join(name), &self.app);
    }

    fn env(&self, c: &mut Command) {
        self.registry
            .configure(c, &self.ctx.home, &self.cache)
            .current_dir(&self.app);
    }

    fn npm(&self, args: &[&str]) -> Output {
        let mut c = Command::new("npm");
        self.env(&mut c);
        // Plain npm needs the headers configured to build offline; ringfence provides them itself.
        c.env("npm_config_nodedir", node_prefix()).args(args);
        c.output().unwrap()
    }

    /// A fresh project with `package_json` installed by ringfence: its output and its report.
    fn install_app(&self, package_json: &str) -> (Output, serde_json::Value) {
        let _ = std::fs::remove_dir_all(&self.app);
        std::fs::create_dir_all(&self.app).unwrap();
        std::fs::write(self.app.join("package.json"), package_json).unwrap();
        let report = self.ctx.root().join("r.json");
        let out = self.ringfence(&["install", "--report", report.to_str().unwrap()]);
        let r = if report.exists() {
            crate::report::json(&report)
        } else {
            serde_json::Value::Null
        };
        (out, r)
    }

    fn ringfence(&self, args: &[&str]) -> Output {
        let mut c = Command::new(bin());
        self.env(&mut c);
        c.args(args);
        c.output().unwrap()
    }
}

/// Every finding of every run in report `r`.
fn findings_of(r: &serde_json::Value) -> Vec<&serde_json::Value> {
    r["runs"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|run| run["findings"].as_array().unwrap())
        .collect()
}

fn node_prefix() -> String {
    let node = std::fs::canonicalize(crate::common::which("node").unwrap()).unwrap();
    node.parent()
        .unwrap()
        .parent()
        .unwrap()
        .display()
        .to_string()
}

fn phase_of(rel: &str, event: &str) -> usize {
    let link = rel == "dirdep" || rel.starts_with("packages/");
    match (rel.is_empty(), link, event) {
        (false, false, "preinstall") => 0,
        (false, false, "install") => 1,
        (false, false, "postinstall") => 2,
        (false, true, "preinstall") => 3,
        (false, true, "prepare") => 4,
        (false, true, "install") => 5,
        (false, true, "postinstall") => 6,
        (true, _, e) => {
            10 + [
                "predependencies",
                "dependencies",
                "postdependencies",
                "preinstall",
                "install",
                "postinstall",
                "prepublish",
                "preprepare",
                "prepare",
                "postprepare",
            ]
            .iter()
            .position(|x| *x == e)
            .unwrap()
        }
        _ => panic!("unexpected record {rel} {event}"),
    }
}

fn top_level(app: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(app.join("node_modules"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// The same project, installed by plain `npm install` and by `ringfence install` at the same
/// absolute path: same (package, event) records with identical npm environment, npm's phase
/// barriers, the same built artefacts, bins and optional-failure outcome.
#[test]
fn install_matches_plain_npm() {
    let Some(w) = World::new() else { return };

    w.fresh_project("fidelity");
    let out = w.npm(&["install"]);
    assert!(out.status.success(), "plain npm failed\n{}", show(&out));
    let npm_records = records(&w.app);
    let npm_top = top_level(&w.app);
    let npm_bins = std::fs::read_dir(w.app.join("node_modules/.bin"))
        .unwrap()
        .count();
    let npm_lock: serde_json::Value =
        serde_json::from_slice(&std::fs::read(w.app.join("package-lock.json")).unwrap()).unwrap();
    assert!(
        w.app
            .join("node_modules/rf-gyp/build/Release/hello.node")
            .is_file()
    );

    w.fresh_project("fidelity");
    let report = w.ctx.root().join("report.json");
    let out = w.ringfence(&[
        "install",
        "--jobs",
        "2",
        "--report",
        report.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "ringfence install failed\n{}",
        show(&out)
    );
    let rf_records = records(&w.app);

    // Same scripts ran.
    let npm_keys: Vec<_> = npm_records.keys().collect();
    let rf_keys: Vec<_> = rf_records.keys().collect();
    assert_eq!(npm_keys, rf_keys);
    assert!(npm_keys.len() >= 30, "{npm_keys:?}");
    // Never run: dependency prepare, a workspace's `dependencies`, the failed optional's set.
    for k in rf_records.keys() {
        assert!(
            !(k.0.starts_with("node_modules") && k.1.contains("prepare")),
            "dependency prepare ran: {k:?}"
        );
        assert!(!k.0.contains("rf-fodep"), "{k:?}");
    }
    // Identical environments.
    for (k, (npm_env, _)) in &npm_records {
        let diff = env_difference(npm_env, &rf_records[k].0);
        assert!(diff.is_empty(), "{k:?}\n{}", diff.join("\n"));
    }
    // Phase barriers: every script of a phase started after every script of earlier phases.
    let mut by_phase: BTreeMap<usize, Vec<f64>> = BTreeMap::new();
    for ((rel, event), (_, start)) in &rf_records {
        by_phase
            .entry(phase_of(rel, event))
            .or_default()
            .push(*start);
    }
    let mut last_max = f64::MIN;
    for (phase, starts) in &by_phase {
        let min = starts.iter().copied().fold(f64::MAX, f64::min);
        assert!(
            min > last_max,
            "phase {phase} started before the previous phase's scripts"
        );
        last_max = starts.iter().copied().fold(f64::MIN, f64::max);
    }
    // Same tree, bins, native build, optional-failure outcome and lockfile.
    assert_eq!(top_level(&w.app), npm_top);
    assert!(!w.app.join("node_modules/rf-failopt").exists());
    assert!(!w.app.join("node_modules/rf-fodep").exists());
    assert!(!w.app.join("node_modules/.bin/fo-bin").exists());
    assert_eq!(
        std::fs::read_dir(w.app.join("node_modules/.bin"))
            .unwrap()
            .count(),
        npm_bins
    );
    let rf_lock: serde_json::Value =
        serde_json::from_slice(&std::fs::read(w.app.join("package-lock.json")).unwrap()).unwrap();
    assert_eq!(rf_lock, npm_lock);
    let hello = Command::new("node")
        .args(["-e", "process.stdout.write(require('rf-gyp').hello())"])
        .current_dir(&w.app)
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&hello.stdout),
        "world",
        "{}",
        show(&hello)
    );

    // The report has one entry per script, with attribution.
    let r: serde_json::Value = crate::report::json(&report);
    let runs = r["runs"].as_array().unwrap();
    // Every script is reported: those that recorded, plus rf-gyp's implicit `node-gyp rebuild`
    // and the failed optional install (whose package directory was removed).
    assert_eq!(runs.len(), rf_records.len() + 2);
    assert!(
        runs.iter()
            .any(|x| x["package"]["name"] == "rf-gyp" && x["command"][2] == "node-gyp rebuild")
    );
    let failed: Vec<&serde_json::Value> = runs
        .iter()
        .filter(|x| x["package"]["outcome"] == "optional-failed")
        .collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["package"]["name"], "rf-failopt");
    assert_eq!(failed[0]["exit"]["code"], 3);

    // What the user sees on stderr, pinned (npm's own lines vary with its version: left out).
    let stderr = String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| !l.starts_with("npm "))
        .collect::<Vec<_>>()
        .join("\n");
    // The summary names the tier when it is not the full one.
    let name = match crate::common::tier() {
        crate::common::Tier::Full => "install-fidelity-stderr",
        crate::common::Tier::Landlock => "install-fidelity-stderr-landlock",
    };
    crate::common::snapshot(name, Some(&w.ctx.root()), &stderr);
}

/// In GitHub Actions: findings become annotations on the dependency's lockfile line and a job
/// summary; the SARIF log passes Microsoft's validator.
#[test]
fn github_actions_gets_annotations_and_a_job_summary() {
    let Some(w) = World::new() else { return };
    w.fresh_project("confined");
    let summary = w.ctx.root().join("summary.md");
    let sarif = w.ctx.root().join("r.sarif");
    let mut c = Command::new(crate::common::bin());
    w.env(&mut c);
    let quality = w.ctx.root().join("gl-code-quality.json");
    let events = w.ctx.root().join("events.ndjson");
    c.env("GITHUB_ACTIONS", "true")
        .env("GITHUB_STEP_SUMMARY", &summary)
        .args(["install", "--sarif", sarif.to_str().unwrap()])
        .args(["--gitlab-codequality", quality.to_str().unwrap()])
        .args(["--events", events.to_str().unwrap()]);
    let out = c.output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lock = std::fs::read_to_string(w.app.join("package-lock.json")).unwrap();
    let writer_line = lock
        .lines()
        .position(|l| l.contains("\"node_modules/rf-writer\""))
        .unwrap()
        + 1;
    assert!(
        stdout.contains(&format!(
            "::error file=package-lock.json,line={writer_line},title=ringfence "
        )),
        "{stdout}"
    );
    // Every dependency script's output in a group, with workflow commands stopped inside.
    let groups = stdout
        .lines()
        .filter(|l| l.starts_with("::group::"))
        .count();
    assert!(groups > 0, "{stdout}");
    assert_eq!(
        groups,
        stdout.lines().filter(|l| *l == "::endgroup::").count(),
        "{stdout}"
    );
    assert!(stdout.contains("::group::rf-writer@1.0.0 "), "{stdout}");
    let stops = stdout
        .lines()
        .filter(|l| l.starts_with("::stop-commands::"))
        .count();
    assert_eq!(stops, groups, "{stdout}");
    // NDJSON events: every script started and finished, one whole JSON object per line.
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&events)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let started = lines
        .iter()
        .filter(|l| l["event"] == "script-started")
        .count();
    let finished: Vec<_> = lines
        .iter()
        .filter(|l| l["event"] == "script-finished")
        .collect();
    assert!(started > 0 && started == finished.len(), "{lines:?}");
    for l in &lines {
        crate::report::validate_against("events.schema.json", l)
            .unwrap_or_else(|e| panic!("{e}: {l}"));
    }
    assert_eq!(lines[0]["event"], "phase-started", "{lines:?}");
    let last = lines.last().unwrap();
    assert_eq!(last["event"], "install-finished", "{lines:?}");
    assert_eq!(last["exit_code"], 1, "{last}");
    assert!(
        lines
            .iter()
            .any(|l| l["event"] == "finding" && l["package"]["name"] == "rf-writer"),
        "{lines:?}"
    );
    assert!(
        finished
            .iter()
            .any(|l| l["package"]["name"] == "rf-writer" && l["findings"].as_u64().unwrap() > 0),
        "{lines:?}"
    );
    // GitLab Code Quality: the same findings at the same line, with GitLab's severities.
    let q: serde_json::Value = serde_json::from_slice(&std::fs::read(&quality).unwrap()).unwrap();
    let writer = q
        .as_array()
        .unwrap()
        .iter()
        .find(|e| {
            e["description"]
                .as_str()
                .unwrap()
                .contains("rf-writer@1.0.0")
        })
        .unwrap();
    assert_eq!(writer["location"]["path"], "package-lock.json");
    assert_eq!(writer["location"]["lines"]["begin"], writer_line);
    assert!(
        ["blocker", "critical", "major", "minor", "info"]
            .contains(&writer["severity"].as_str().unwrap())
    );
    let md = std::fs::read_to_string(&summary).unwrap();
    assert!(md.starts_with("## ringfence"), "{md}");
    assert!(md.contains("rf-writer@1.0.0"), "{md}");
    crate::common::check_sarif(&sarif, &w.app);
}

/// Without usable user namespaces (a Docker-like seccomp profile), `install` runs every script
/// in the landlock tier and leaves the same tree as plain npm: same packages, bins, lockfile,
/// the native addon built offline; the project's `.env` never reaches a package directory.
#[test]
fn install_in_the_landlock_tier_builds_the_same_tree() {
    let Some(w) = World::new() else { return };
    w.fresh_project("fidelity");
    let out = w.npm(&["install"]);
    assert!(out.status.success(), "plain npm failed\n{}", show(&out));
    let npm_top = top_level(&w.app);
    let npm_bins = std::fs::read_dir(w.app.join("node_modules/.bin"))
        .unwrap()
        .count();
    let npm_lock: serde_json::Value =
        serde_json::from_slice(&std::fs::read(w.app.join("package-lock.json")).unwrap()).unwrap();

    w.fresh_project("fidelity");
    std::fs::write(w.app.join(".env"), "API_KEY=HOST-REAL-DOTENV\n").unwrap();
    let report = w.ctx.root().join("report.json");
    let mut c = Command::new(crate::common::bin());
    w.env(&mut c);
    c.args([
        "install",
        "--jobs",
        "2",
        "--report",
        report.to_str().unwrap(),
    ]);
    let out = crate::common::under_seccomp(&mut c, &crate::common::docker_default_namespaces());
    assert!(
        out.status.success(),
        "ringfence install failed\n{}",
        show(&out)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("landlock tier"),
        "{}",
        show(&out)
    );
    assert_eq!(top_level(&w.app), npm_top);
    assert_eq!(
        std::fs::read_dir(w.app.join("node_modules/.bin"))
            .unwrap()
            .count(),
        npm_bins
    );
    let rf_lock: serde_json::Value =
        serde_json::from_slice(&std::fs::read(w.app.join("package-lock.json")).unwrap()).unwrap();
    assert_eq!(rf_lock, npm_lock);
    let hello = Command::new("node")
        .args(["-e", "process.stdout.write(require('rf-gyp').hello())"])
        .current_dir(&w.app)
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&hello.stdout),
        "world",
        "{}",
        show(&hello)
    );
    let r: serde_json::Value = crate::report::json(&report);
    let runs = r["runs"].as_array().unwrap();
    assert!(runs.len() >= 30);
    assert!(runs.iter().all(|x| x["enforcement"]["tier"] == "landlock"));
    let mut stack = vec![w.app.join("node_modules")];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let t = e.file_type().unwrap();
            if t.is_dir() {
                stack.push(e.path());
            } else if t.is_file() {
                let bytes = std::fs::read(e.path()).unwrap_or_default();
                assert!(
                    !String::from_utf8_lossy(&bytes).contains("HOST-REAL"),
                    "a real secret reached {}",
                    e.path().display()
                );
            }
        }
    }
}

/// `npm ci` from the lockfile: same records and environments (`npm_command=ci`, lockfile-loaded
/// nodes have `npm_package_resolved=null` when the lockfile omits it).
#[test]
fn ci_matches_plain_npm_ci() {
    let Some(w) = World::new() else { return };
    w.fresh_project("fidelity");
    let out = w.npm(&["install", "--ignore-scripts"]);
    assert!(out.status.success(), "{}", show(&out));
    let lock = std::fs::read(w.app.join("package-lock.json")).unwrap();

    let reset = || {
        w.fresh_project("fidelity");
        std::fs::write(w.app.join("package-lock.json"), &lock).unwrap();
    };
    reset();
    let out = w.npm(&["ci"]);
    assert!(out.status.success(), "{}", show(&out));
    let npm_records = records(&w.app);
    reset();
    let out = w.ringfence(&["ci"]);
    assert!(out.status.success(), "{}", show(&out));
    let rf_records = records(&w.app);
    assert_eq!(
        npm_records.keys().collect::<Vec<_>>(),
        rf_records.keys().collect::<Vec<_>>()
    );
    for (k, (npm_env, _)) in &npm_records {
        let diff = env_difference(npm_env, &rf_records[k].0);
        assert!(diff.is_empty(), "{k:?}\n{}", diff.join("\n"));
        assert_eq!(npm_env["npm_command"], "ci");
    }
}

/// How a script's environment under ringfence differs from npm's. Identical in the full tier;
/// the landlock tier (no mounts, docs/tiers.md) differs in exactly two ways: HOME is a private
/// directory instead of the decoy home mounted at the real path, and PATH leaves out the
/// directories the view cannot execute from (npm's PATH, in order, minus some entries).
fn env_difference(npm: &BTreeMap<String, String>, rf: &BTreeMap<String, String>) -> Vec<String> {
    let landlock = crate::common::tier() == crate::common::Tier::Landlock;
    npm.keys()
        .chain(rf.keys())
        .filter(|x| npm.get(*x) != rf.get(*x))
        .filter(|x| {
            let (Some(n), Some(r)) = (npm.get(*x), rf.get(*x)) else {
                return true;
            };
            match x.as_str() {
                "HOME" if landlock => {
                    // The tier's private HOME, below a temporary directory named like any.
                    !(r.ends_with("/home")
                        && r.starts_with(std::env::temp_dir().to_str().unwrap())
                        && !r.to_ascii_lowercase().contains("ringfence"))
                }
                "PATH" if landlock => {
                    let mut theirs = n.split(':');
                    let ordered_subset = r.split(':').all(|d| theirs.any(|t| t == d));
                    let keeps = r.split(':').any(|d| d.ends_with("/node_modules/.bin"))
                        && r.split(':').any(|d| d.ends_with("/node-gyp-bin"))
                        && r.split(':').any(|d| d == "/usr/bin");
                    !(ordered_subset && keeps)
                }
                _ => true,
            }
        })
        .map(|x| format!("{x}: npm={:?} ringfence={:?}", npm.get(x), rf.get(x)))
        .collect()
}

/// A required dependency's failing script stops the install, prints its output like npm, exits
/// with its code, and leaves a fresh project as npm does: no node_modules, no package-lock.json.
#[test]
fn required_failure_stops_and_rolls_back() {
    let Some(w) = World::new() else { return };
    w.fresh_project("fidelity");
    let mut c = Command::new(bin());
    w.env(&mut c);
    let out = c
        .env("RINGFENCE_FIXTURE_FAIL", "rf-a:install")
        .arg("install")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", show(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("rf-a@1.0.0 install"), "{err}");
    assert!(err.contains("command sh -c node rec.js"), "{err}");
    assert!(!w.app.join("node_modules").exists());
    assert!(!w.app.join("package-lock.json").exists());
    // Root scripts never ran.
    assert!(!w.app.join(".rec").exists());
}

/// Each dependency script can write only its own package directory.
#[test]
fn dependency_scripts_are_confined_to_their_own_directory() {
    let Some(w) = World::new() else { return };
    w.fresh_project("confined");
    std::fs::write(w.app.join(".env"), "API_KEY=fixture-project-secret\n").unwrap();
    std::fs::write(w.app.join(".npmrc"), "# project npmrc\n").unwrap();
    let report = w.ctx.root().join("r.json");
    let sarif = w.ctx.root().join("r.sarif");
    let out = w.ringfence(&[
        "install",
        "--report",
        report.to_str().unwrap(),
        "--sarif",
        sarif.to_str().unwrap(),
    ]);
    // The HOME write is persistence (a high finding, so exit 1); everything else was refused.
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    crate::common::check_sarif(&sarif, &w.app);
    let r: serde_json::Value = crate::report::json(&report);
    let writer = r["runs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["package"]["name"] == "rf-writer")
        .unwrap();
    let has = |kind: &str, suffix: &str| {
        writer["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["kind"] == kind && f["target"].as_str().unwrap_or("").ends_with(suffix))
    };
    assert!(has("persistence-attempt", "/.bashrc"), "{writer:#}");
    // The denied read of the project's .env is seen (node preload) and named.
    assert!(has("secret-read", "/.env"), "{writer:#}");
    let probe = std::fs::read_to_string(w.app.join("node_modules/rf-writer/result.txt")).unwrap();
    assert_eq!(
        probe.lines().collect::<Vec<_>>(),
        vec![
            "own: ok",
            "sibling: denied",
            "project: denied",
            "lockfile: denied",
            // The landlock tier cannot keep a package's own nested node_modules read-only
            // (docs/tiers.md).
            if crate::common::tier() == crate::common::Tier::Landlock {
                "nested-node_modules: ok"
            } else {
                "nested-node_modules: denied"
            },
            "home: ok",
            "project-readable: ok",
            "project-dotenv: denied",
            "project-npmrc: denied",
        ],
        "{probe}"
    );
    assert!(!w.app.join("tampered.txt").exists());
    assert!(!w.app.join("node_modules/rf-c/tampered.txt").exists());
    assert!(!w.ctx.home.join(".bashrc").exists());
}

#[test]
fn bad_input_is_exit_2_and_leaves_the_project_untouched() {
    let Some(w) = World::new() else { return };
    // Malformed package.json.
    w.fresh_project("fidelity");
    std::fs::write(w.app.join("package.json"), "{ not json").unwrap();
    let out = w.ringfence(&["install"]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("package.json"),
        "{}",
        show(&out)
    );
    assert!(!w.app.join("node_modules").exists());

    // Malformed lockfile.
    w.fresh_project("fidelity");
    std::fs::write(w.app.join("package-lock.json"), "[1,").unwrap();
    let out = w.ringfence(&["ci"]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(!w.app.join("node_modules").exists());
    assert_eq!(
        std::fs::read_to_string(w.app.join("package-lock.json")).unwrap(),
        "[1,"
    );

    // A lockfile placing a package outside node_modules (path tricks).
    w.fresh_project("fidelity");
    let evil = serde_json::json!({
        "name": "fidelity-app", "lockfileVersion": 3, "requires": true,
        "packages": {
            "": {"name": "fidelity-app"},
            "node_modules/../../escaped": {"version": "1.0.0", "resolved": "http://127.0.0.1:1/x.tgz"}
        }
    });
    std::fs::write(w.app.join("package-lock.json"), evil.to_string()).unwrap();
    let out = w.ringfence(&["ci"]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("refusing package"),
        "{}",
        show(&out)
    );
    assert!(!w.app.join("node_modules").exists());

    // npm failing (a package that does not exist).
    w.fresh_project("fidelity");
    let out = w.ringfence(&["install", "rf-does-not-exist"]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no script was run"),
        "{}",
        show(&out)
    );

    // npm missing.
    w.fresh_project("fidelity");
    let mut c = Command::new(bin());
    w.env(&mut c);
    let out = c
        .env("PATH", "/nonexistent")
        .arg("install")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("`npm` was not found"),
        "{}",
        show(&out)
    );
    assert!(!w.app.join("node_modules").exists());
}

/// Git dependencies: npm prepares them at fetch time, which `--ignore-scripts` skips. ringfence
/// replays their install scripts in node_modules, and says (stderr and report) that the fetch-time
/// `prepare` did not run.
#[test]
fn git_dependency_prepare_is_reported_not_silently_lost() {
    let Some(w) = World::new() else { return };
    if crate::common::which("git").is_none() {
        crate::common::skip_or_fail("git is not installed");
        return;
    }
    let repo = w.ctx.root().join("gitdep");
    std::fs::create_dir_all(&repo).unwrap();
    std::fs::write(
        repo.join("package.json"),
        r#"{"name":"rf-gitdep","version":"1.0.0","scripts":{"prepare":"node rec.js","install":"node rec.js"}}"#,
    )
    .unwrap();
    std::fs::copy(
        fixtures().join("registry/.shared/rec.js"),
        repo.join("rec.js"),
    )
    .unwrap();
    let git = |args: &[&str]| {
        let out = Command::new("git")
            .args(["-c", "user.name=t", "-c", "user.email=t@example.invalid"])
            .args(args)
            .current_dir(&repo)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", show(&out));
    };
    git(&["init", "-q"]);
    git(&["add", "."]);
    git(&["commit", "-q", "-m", "x"]);
    let _ = std::fs::remove_dir_all(&w.app);
    std::fs::create_dir_all(&w.app).unwrap();
    std::fs::write(
        w.app.join("package.json"),
        format!(
            r#"{{"name":"gitapp","version":"1.0.0","dependencies":{{"rf-gitdep":"git+file://{}"}}}}"#,
            repo.display()
        ),
    )
    .unwrap();
    let report = w.ctx.root().join("r.json");
    let out = w.ringfence(&["install", "--report", report.to_str().unwrap()]);
    assert!(out.status.success(), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("warning[git-prepare-skipped]"),
        "{}",
        show(&out)
    );
    assert!(
        w.app
            .join("node_modules/rf-gitdep/.rec/install.json")
            .exists()
    );
    let r: serde_json::Value = crate::report::json(&report);
    assert_eq!(r["warnings"][0]["code"], "git-prepare-skipped");
    assert_eq!(r["warnings"][0]["location"], "node_modules/rf-gitdep");
}

/// A script that exits 0 although a write it needed was refused (a git-hook installer) is
/// reported as probably incomplete, with what was refused, why, and the exact allowance; the
/// allowance, put in the project's `ringfence.toml`, makes it work — for a directory and for a
/// file that does not exist yet.
#[test]
fn refused_writes_are_explained_and_their_allowance_works() {
    let Some(w) = World::new() else { return };
    let _ = std::fs::remove_dir_all(&w.app);
    std::fs::create_dir_all(w.app.join(".git/hooks")).unwrap();
    std::fs::write(
        w.app.join("package.json"),
        r#"{ "name": "hooks-app", "version": "1.0.0", "dependencies": { "rf-hooks": "1.0.0" } }"#,
    )
    .unwrap();
    let report = w.ctx.root().join("r.json");
    let out = w.ringfence(&["install", "--report", report.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    // A refused write to the project's hooks is high (code that runs later): exit 1.
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(err.contains("partial  rf-hooks@1.0.0 postinstall"), "{err}");
    assert!(err.contains("the package is probably incomplete"), "{err}");
    assert!(
        err.contains("refused  `") && err.contains(".git/hooks/pre-commit"),
        "{err}"
    );
    assert!(
        err.contains("write = [\".git/hooks/\", \"rf-hooks.yml\"]"),
        "the exact allowance: {err}"
    );
    let r: serde_json::Value = crate::report::json(&report);
    let run = r["runs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["package"]["name"] == "rf-hooks")
        .unwrap();
    let allow: Vec<&str> = run["refused"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|x| x["allow"].as_str())
        .collect();
    assert_eq!(allow, vec![".git/hooks/", "rf-hooks.yml"], "{run:#}");
    assert!(!w.app.join(".git/hooks/pre-commit").exists());
    assert!(!w.app.join("rf-hooks.yml").exists());

    // The allowance as printed, applied with the printed `ringfence allow` command to the
    // project's own policy file, which keeps its comments and gains exactly the section.
    assert!(
        err.contains("git hooks: a dependency that may write .git/hooks"),
        "{err}"
    );
    let before = "# team policy: reviewed in PRs\nversion = 1\n";
    std::fs::write(w.app.join("ringfence.toml"), before).unwrap();
    let printed = err
        .lines()
        .find_map(|l| l.trim().strip_prefix("or run: ringfence allow "))
        .unwrap_or_else(|| panic!("no `ringfence allow` command printed: {err}"))
        .replace("<why>", "installs the project's git hooks");
    let mut allow = Command::new("sh");
    w.env(&mut allow);
    let applied = allow
        .args(["-c", &format!("\"$RF\" allow {printed}")])
        .env("RF", bin())
        .output()
        .unwrap();
    assert_eq!(applied.status.code(), Some(0), "{}", show(&applied));
    assert_eq!(
        std::fs::read_to_string(w.app.join("ringfence.toml")).unwrap(),
        format!(
            "{before}\n[package.rf-hooks]\nwrite = [\".git/hooks/\", \"rf-hooks.yml\"]\nreason = \"installs the project's git hooks\"\n"
        )
    );
    // Again: nothing to change.
    let mut again = Command::new("sh");
    w.env(&mut again);
    let again = again
        .args(["-c", &format!("\"$RF\" allow {printed}")])
        .env("RF", bin())
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("already allows"),
        "{}",
        show(&again)
    );
    let _ = std::fs::remove_dir_all(w.app.join("node_modules"));
    let out = w.ringfence(&["install", "--report", report.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("ok       rf-hooks@1.0.0 postinstall"), "{err}");
    assert!(!err.contains("refused"), "{err}");
    assert!(w.app.join(".git/hooks/pre-commit").is_file());
    assert_eq!(
        std::fs::read_to_string(w.app.join("rf-hooks.yml")).unwrap(),
        "pre-commit: true\n"
    );
    // The same in the landlock tier: the config it creates is created on its behalf.
    let _ = std::fs::remove_dir_all(w.app.join("node_modules"));
    let _ = std::fs::remove_file(w.app.join("rf-hooks.yml"));
    let _ = std::fs::remove_file(w.app.join(".git/hooks/pre-commit"));
    let out = w.ringfence(&["install", "--tier", "landlock", "--no-build-cache"]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert!(
        w.app.join(".git/hooks/pre-commit").is_file(),
        "{}",
        show(&out)
    );
    assert_eq!(
        std::fs::read_to_string(w.app.join("rf-hooks.yml")).unwrap(),
        "pre-commit: true\n",
        "{}",
        show(&out)
    );

    // Unknown keys in the project file are errors that name the file.
    std::fs::write(
        w.app.join("ringfence.toml"),
        "version = 1\n[fs]\nread-onyl = []\n",
    )
    .unwrap();
    let out = w.ringfence(&["install"]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("ringfence.toml") && err.contains("read-onyl") && err.contains("line 3"),
        "{}",
        show(&out)
    );

    // `ringfence config` shows where each value came from.
    std::fs::write(
        w.app.join("ringfence.toml"),
        "version = 1\n[limits]\ntimeout = \"20m\"\n[env]\npass = [\"RF_BUILD_MIRROR\"]\n",
    )
    .unwrap();
    let out = w.ringfence(&["config"]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    let line = |key: &str| {
        text.lines()
            .find(|l| l.starts_with(&format!("{key} = ")))
            .unwrap_or_else(|| panic!("no {key}: {text}"))
            .to_string()
    };
    assert!(line("limits.timeout").ends_with("ringfence.toml"), "{text}");
    assert!(
        line("limits.nproc").ends_with("# built-in default"),
        "{text}"
    );
    assert!(
        line("env.pass").contains("ringfence.toml adds \"RF_BUILD_MIRROR\""),
        "{text}"
    );
}

/// Interrupted mid-install (SIGTERM, as CI cancels a job; SIGINT is Ctrl-C), ringfence removes
/// its temporary directories — decoy homes full of canaries, preload logs, whatever the script
/// planted there — and exits 128 + the signal.
#[test]
fn an_interrupted_install_leaves_no_temporary_directory() {
    let Some(w) = World::new() else { return };
    let _ = std::fs::remove_dir_all(&w.app);
    std::fs::create_dir_all(&w.app).unwrap();
    // The time-gated fixture waits 30 s on a developer machine.
    std::fs::write(
        w.app.join("package.json"),
        r#"{ "name": "slow-app", "version": "1.0.0", "dependencies": { "rf-attack-timegate": "1.0.0" } }"#,
    )
    .unwrap();
    let tmp = w.ctx.root().join("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    let mut c = Command::new(bin());
    w.env(&mut c);
    c.env("TMPDIR", &tmp)
        .env_remove("CI")
        .env_remove("GITHUB_ACTIONS")
        .args(["install"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    let child = c.spawn().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let started = loop {
        // A decoy home (named like any temporary directory) holds a decoy .npmrc.
        let homes = std::fs::read_dir(&tmp)
            .unwrap()
            .flatten()
            .any(|e| e.path().join(".npmrc").exists());
        if homes || std::time::Instant::now() > deadline {
            break homes;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert!(started, "no sandbox started within 60 s");
    // Let the script start, then cancel.
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(128 + 15), "{err}");
    assert!(err.contains("interrupted"), "{err}");
    let left: Vec<String> = std::fs::read_dir(&tmp)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(left.is_empty(), "left in TMPDIR: {left:?}");
}

/// A package with no scripts can ship bins named like system commands; npm links them into
/// `node_modules/.bin`, first on every later script's PATH. The shell ringfence runs a script
/// with comes from the system, and the shadowing bins are reported with their package.
#[test]
fn bins_named_like_system_commands_do_not_replace_the_shell() {
    let Some(w) = World::new() else { return };
    let _ = std::fs::remove_dir_all(&w.app);
    std::fs::create_dir_all(&w.app).unwrap();
    std::fs::write(
        w.app.join("package.json"),
        r#"{ "name": "shadow-app", "version": "1.0.0", "dependencies": { "rf-shadow": "1.0.0", "rf-a": "1.0.0", "rf-calls-git": "1.0.0" } }"#,
    )
    .unwrap();
    let report = w.ctx.root().join("r.json");
    let out = w.ringfence(&["install", "--report", report.to_str().unwrap()]);
    assert!(
        w.app.join("node_modules/.bin/sh").exists(),
        "{}",
        show(&out)
    );
    assert!(
        !w.app
            .join("node_modules/rf-a/shadowed-by-rf-shadow")
            .exists(),
        "the script ran under the package's fake sh: {}",
        show(&out)
    );
    assert!(
        w.app.join("node_modules/rf-a/.rec").exists() || out.status.success(),
        "{}",
        show(&out)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("rf-shadow") && err.contains("shadows"),
        "the shadowing bins are reported: {err}"
    );
    let r: serde_json::Value = crate::report::json(&report);
    let warned = r["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .any(|w| w["message"].as_str().unwrap_or("").contains("`sh`"));
    assert!(warned, "{:#}", r["warnings"]);
    // A script that calls git by name runs the shadow (as under npm), and that is a high
    // finding attributed to the package the bin belongs to; rf-a, which calls only node, has
    // none.
    let runs = r["runs"].as_array().unwrap();
    let shadow_findings = |pkg: &str| -> Vec<serde_json::Value> {
        runs.iter()
            .filter(|run| run["package"]["name"] == pkg)
            .flat_map(|run| run["findings"].as_array().unwrap().clone())
            .filter(|f| f["code"] == "shadow-bin-run")
            .collect()
    };
    let calls_git = shadow_findings("rf-calls-git");
    assert_eq!(calls_git.len(), 1, "{runs:#?}");
    assert_eq!(calls_git[0]["severity"], "high");
    assert_eq!(calls_git[0]["target"], "rf-shadow");
    assert!(shadow_findings("rf-a").is_empty(), "{runs:#?}");

    // Refused by policy: the links are removed before any script runs, the report says so
    // with the allowance that keeps them, and git is the system's again.
    std::fs::write(
        w.app.join("ringfence.toml"),
        "version = 1\n[install]\nshadowing-bins = \"refuse\"\n",
    )
    .unwrap();
    let _ = std::fs::remove_dir_all(w.app.join("node_modules"));
    let out = w.ringfence(&["install", "--report", report.to_str().unwrap()]);
    assert!(out.status.success(), "{}", show(&out));
    assert!(
        std::fs::symlink_metadata(w.app.join("node_modules/.bin/git")).is_err(),
        "{}",
        show(&out)
    );
    assert!(w.app.join("node_modules/rf-shadow/fake-sh.js").is_file());
    let r: serde_json::Value = crate::report::json(&report);
    let refused: Vec<&str> = r["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|w| w["code"] == "bin-shadow-refused")
        .filter_map(|w| w["message"].as_str())
        .collect();
    assert_eq!(refused.len(), 2, "{:#}", r["warnings"]);
    assert!(
        refused
            .iter()
            .all(|m| m.starts_with("removed `node_modules/.bin/")
                && m.contains("[package.\"rf-shadow\"] shadow-bins = true")),
        "{refused:?}"
    );
    assert!(!r.to_string().contains("shadow-bin-run"), "{r:#}");
    assert!(
        !w.app
            .join("node_modules/rf-calls-git/shadowed-by-rf-shadow")
            .exists()
    );
    // Allowed for that package: kept, and not reported.
    std::fs::write(
        w.app.join("ringfence.toml"),
        "version = 1\n[install]\nshadowing-bins = \"refuse\"\n[package.\"rf-shadow\"]\nshadow-bins = true\nreason = \"test\"\n",
    )
    .unwrap();
    let _ = std::fs::remove_dir_all(w.app.join("node_modules"));
    let out = w.ringfence(&["install", "--report", report.to_str().unwrap()]);
    assert!(
        w.app.join("node_modules/.bin/git").exists(),
        "{}",
        show(&out)
    );
    let r: serde_json::Value = crate::report::json(&report);
    assert!(
        !r["warnings"].to_string().contains("rf-shadow"),
        "{:#}",
        r["warnings"]
    );
}

/// On a real terminal (a pty from util-linux `script`), a status line shows how many scripts are
/// done and which are running, redrawn in place and cleared before the summary; without a
/// terminal there is none.
#[test]
fn a_terminal_gets_a_status_line_and_a_pipe_does_not() {
    let Some(w) = World::new() else { return };
    let Some(script) = crate::common::which("script") else {
        crate::common::skip_or_fail("util-linux `script` is needed for the pty test");
        return;
    };
    w.fresh_project("confined");
    let log = w.ctx.root().join("tty.log");
    let mut c = Command::new(script);
    w.env(&mut c);
    c.env("RF", crate::common::bin())
        .env("TERM", "xterm")
        .env_remove("GITHUB_ACTIONS")
        .args(["-qfec", "\"$RF\" install", log.to_str().unwrap()])
        .stdin(std::process::Stdio::null());
    let out = c.output().unwrap();
    let tty = String::from_utf8_lossy(&std::fs::read(&log).unwrap()).into_owned();
    assert!(out.status.code().is_some(), "{}", show(&out));
    let draws: Vec<&str> = tty
        .split("\r\x1b[2K")
        .filter(|s| s.starts_with("ringfence: ["))
        .collect();
    assert!(
        !draws.is_empty(),
        "no status line on the terminal:\n{tty:?}"
    );
    let counts: Vec<(usize, usize)> = draws
        .iter()
        .map(|d| {
            let inner = d["ringfence: [".len()..].split(']').next().unwrap();
            let (done, total) = inner.split_once('/').unwrap();
            (done.parse().unwrap(), total.parse().unwrap())
        })
        .collect();
    // Done counts only grow, towards the total the install has.
    assert!(counts.windows(2).all(|w| w[0].0 <= w[1].0), "{draws:?}");
    assert!(
        counts.iter().all(|(d, t)| d <= t && *t == counts[0].1),
        "{draws:?}"
    );
    assert!(counts.last().unwrap().0 > 0, "{draws:?}");
    assert!(
        draws.iter().any(|d| d.contains("rf-writer@1.0.0")),
        "{draws:?}"
    );
    // The summary starts on a cleared line, its severities in colour on a terminal.
    assert!(tty.contains("\r\x1b[2Kringfence: "), "{tty:?}");
    assert!(tty.contains("\x1b[1;31mHIGH"), "{tty:?}");
    let plain = w.ringfence(&["install"]);
    let plain_err = String::from_utf8_lossy(&plain.stderr);
    assert!(
        !plain_err.contains("\x1b[2K") && !plain_err.contains("\x1b[1;31m"),
        "{}",
        show(&plain)
    );
}

/// A script that hard-links another package's file into its own directory (esbuild's
/// postinstall puts its platform package's binary over its JavaScript launcher) gets EXDEV
/// across the sandbox's mounts; the recorder answers that link with a copy, so the tree is
/// npm's, in both tiers. The other package's file is never a second name of the same inode
/// (writing through it would change another package).
#[test]
fn a_link_to_another_packages_file_gives_npms_tree() {
    use std::os::unix::fs::MetadataExt;
    let Some(w) = World::new() else { return };
    let manifest =
        r#"{ "name": "link-app", "version": "1.0.0", "dependencies": { "rf-linkbin": "1.0.0" } }"#;
    let fresh = || {
        let _ = std::fs::remove_dir_all(&w.app);
        std::fs::create_dir_all(&w.app).unwrap();
        std::fs::write(w.app.join("package.json"), manifest).unwrap();
    };
    let tool = w.app.join("node_modules/rf-linkbin/bin/tool");
    let native = w.app.join("node_modules/rf-linkbin-native/bin/tool");
    fresh();
    let out = w.npm(&["install"]);
    assert!(out.status.success(), "plain npm failed\n{}", show(&out));
    let npm_tool = std::fs::read(&tool).unwrap();
    assert_eq!(
        npm_tool,
        std::fs::read(&native).unwrap(),
        "npm links the binary"
    );
    for &tier in crate::common::tiers_here() {
        fresh();
        let report = w.ctx.root().join("link.json");
        let out = w.ringfence(&[
            "install",
            "--tier",
            tier,
            "--no-build-cache",
            "--report",
            report.to_str().unwrap(),
        ]);
        assert!(out.status.success(), "{tier}\n{}", show(&out));
        assert_eq!(std::fs::read(&tool).unwrap(), npm_tool, "{tier}");
        let (t, n) = (
            std::fs::metadata(&tool).unwrap(),
            std::fs::metadata(&native).unwrap(),
        );
        assert_ne!(t.ino(), n.ino(), "{tier}: a copy, not a second name");
        assert_eq!(t.mode() & 0o777, 0o755, "{tier}");
        assert!(!w.app.join("node_modules/rf-linkbin/bin-tool").exists());
        let r: serde_json::Value = crate::report::json(&report);
        let worst: Vec<_> = r["runs"][0]["findings"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["severity"] == "high" || f["severity"] == "critical")
            .collect();
        assert!(worst.is_empty(), "{tier}: {worst:?}");
    }
}

/// A nested run of the real npm reads the user's npm config itself: that is npm's own (low).
/// A script that names its own reader `npm-cli.js` and titles itself `npm` is not npm: its read
/// of the same token is a decoy read (high). npm is known by the path it runs from.
#[test]
fn only_the_real_npm_reads_its_config_quietly() {
    let Some(w) = World::new() else { return };
    let (out, r) = w.install_app(
        r#"{ "name": "npm-app", "version": "1.0.0", "dependencies": { "rf-nested-npm": "1.0.0", "rf-npm-lookalike": "1.0.0" } }"#,
    );
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let findings = |pkg: &str| -> Vec<serde_json::Value> {
        r["runs"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|run| run["package"]["name"] == pkg)
            .flat_map(|run| run["findings"].as_array().unwrap().clone())
            .collect()
    };
    let nested = findings("rf-nested-npm");
    assert!(
        nested
            .iter()
            .all(|f| f["severity"] != "high" && f["severity"] != "critical"),
        "{nested:#?}"
    );
    let npmrc_read = |f: &&serde_json::Value| {
        f["code"] == "decoy-read" && f["target"].as_str().unwrap().ends_with("/.npmrc")
    };
    // (Whether npm's read shows at all depends on the tier's access-time view; when it does,
    // it is npm's own.)
    assert!(
        nested
            .iter()
            .filter(npmrc_read)
            .all(|f| f["severity"] == "low")
    );
    let lookalike = findings("rf-npm-lookalike");
    let read = lookalike
        .iter()
        .find(npmrc_read)
        .unwrap_or_else(|| panic!("{lookalike:#?}"));
    assert_eq!(read["severity"], "high", "{read:#}");
}

/// A write request to a package registry's API (here the login that precedes a republish, sent
/// over HTTPS to loopback port 9, where nothing answers) is a high registry-write finding, seen
/// in the request before encryption, naming the process; an install script that only reads has
/// none (the fidelity fixture's runs).
#[test]
fn a_registry_write_over_https_is_seen() {
    let Some(w) = World::new() else { return };
    let (out, r) = w.install_app(
        r#"{ "name": "writer-app", "version": "1.0.0", "dependencies": { "rf-registry-writer": "1.0.0" } }"#,
    );
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let found: Vec<&serde_json::Value> = findings_of(&r)
        .into_iter()
        .filter(|f| f["code"] == "registry-write")
        .collect();
    assert_eq!(found.len(), 1, "{r:#}");
    let f = found[0];
    assert_eq!(
        (&f["severity"], &f["target"]),
        (&"high".into(), &"127.0.0.1:9".into())
    );
    assert!(
        f["summary"].as_str().unwrap().contains("PUT /-/user/"),
        "{f:#}"
    );
    assert!(
        f["process"]["argv"].to_string().contains("login.js"),
        "{f:#}"
    );
}

/// A program that is not node (python here; curl and wget alike) exfiltrating the environment
/// over HTTP is a critical exfiltration in both tiers. In the landlock tier, which has no network
/// namespace, the recorder hands its UDP socket and its connection over to the sinkhole; before,
/// its lookup failed and nothing of what it would have sent was seen.
#[test]
fn a_program_that_is_not_node_is_recorded_exfiltrating() {
    let Some(w) = World::new() else { return };
    let (out, r) = w.install_app(
        r#"{ "name": "tool-app", "version": "1.0.0", "dependencies": { "rf-tool-exfil": "1.0.0" } }"#,
    );
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let found: Vec<&serde_json::Value> = findings_of(&r)
        .into_iter()
        .filter(|f| f["kind"] == "exfiltration")
        .collect();
    assert!(
        found.iter().any(|f| f["severity"] == "critical"
            && f["target"] == "collect.example.net:80"
            && f["process"]["argv"].to_string().contains("exfil.py")),
        "{r:#}"
    );
}

/// Manifest confusion: a package npm installed as `rf-confused` whose own package.json says it
/// is `@prisma/client` is reported under the name npm installed it as, with a high finding, and
/// does not get @prisma/client's profile allowance (writing `node_modules/.prisma/`).
#[test]
fn a_manifest_claiming_another_name_gets_no_allowance() {
    let Some(w) = World::new() else { return };
    let (out, r) = w.install_app(
        r#"{ "name": "confused-app", "version": "1.0.0", "dependencies": { "rf-confused": "1.0.0" } }"#,
    );
    let text = show(&out);
    let findings: Vec<&serde_json::Value> = findings_of(&r);
    let confusion: Vec<&&serde_json::Value> = findings
        .iter()
        .filter(|f| f["code"] == "manifest-confusion")
        .collect();
    assert_eq!(confusion.len(), 1, "{text}\n{r:#}");
    assert_eq!(confusion[0]["severity"], "high", "{r:#}");
    assert!(
        confusion[0]["summary"]
            .as_str()
            .unwrap()
            .contains("`@prisma/client`"),
        "{r:#}"
    );
    assert!(
        r["runs"]
            .as_array()
            .unwrap()
            .iter()
            .all(|run| run["package"]["name"] != "@prisma/client"),
        "reported under the name npm installed it as: {r:#}"
    );
    assert!(
        !w.app.join("node_modules/.prisma/client/index.js").exists(),
        "the allowance of @prisma/client was applied\n{text}"
    );
    assert_ne!(out.status.code(), Some(0), "{text}");
}

/// A dependency's bin named `node` comes first on the PATH of every later script, the root
/// project's included (which may write the whole project). Its run is a high finding
/// attributed to the package that shipped it, in the root project's run.
#[test]
fn a_bin_named_node_is_reported_when_the_root_project_runs_it() {
    let Some(w) = World::new() else { return };
    let (out, r) = w.install_app(
        r#"{ "name": "shadow-node-app", "version": "1.0.0",
             "scripts": { "postinstall": "node -e \"require('fs').writeFileSync('real-node-ran', '')\"" },
             "dependencies": { "rf-shadow-node": "1.0.0" } }"#,
    );
    let text = show(&out);
    let found: Vec<&serde_json::Value> = findings_of(&r)
        .into_iter()
        .filter(|f| f["code"] == "shadow-bin-run")
        .collect();
    assert_eq!(found.len(), 1, "{text}\n{r:#}");
    assert_eq!(found[0]["severity"], "high", "{r:#}");
    assert_eq!(found[0]["target"], "rf-shadow-node", "{r:#}");
    // As under npm, the shadow is what ran (so the finding is about a real run).
    assert!(w.app.join("shadowed-by-rf-shadow-node").exists(), "{text}");
    assert!(!w.app.join("real-node-ran").exists(), "{text}");
    assert_eq!(out.status.code(), Some(1), "{text}");
}

/// Loot staged in the package's own directory (which outlives the sandbox) and hidden in a
/// directory the script made unreadable: root reads through and finds the staged secret; an
/// ordinary user cannot read it, and that is a finding of its own rather than silence.
#[test]
fn loot_staged_in_an_unreadable_directory_is_not_silent() {
    use std::os::unix::fs::PermissionsExt;
    let Some(w) = World::new() else { return };
    let (out, r) = w.install_app(
        r#"{ "name": "loot-app", "version": "1.0.0", "dependencies": { "rf-hidden-loot": "1.0.0" } }"#,
    );
    let text = show(&out);
    let loot = w.app.join("node_modules/rf-hidden-loot/.cache/loot");
    let _ = std::fs::set_permissions(&loot, std::fs::Permissions::from_mode(0o755));
    let findings: Vec<&serde_json::Value> = findings_of(&r);
    let seen = findings.iter().any(|f| {
        let target = f["target"].as_str().unwrap_or("");
        (f["code"] == "secret-staged" && target.ends_with(".cache/loot/t"))
            || (f["code"] == "recording-degraded"
                && f["severity"] == "medium"
                && target.ends_with(".cache/loot/t"))
    });
    assert!(seen, "{text}\n{findings:#?}");
}
