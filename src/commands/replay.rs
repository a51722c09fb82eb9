//! `ringfence replay`: forensic replay of suspect packages. Each package spec is installed alone
//! into a scratch project, once per mode — `dev` (no CI variable, as on a developer machine) and
//! `ci` (`CI=true`, `GITHUB_ACTIONS=true`) — with forensic recording (every open), a short
//! wall-clock limit per script (time-gated payloads show as timeouts) and no rollback, so that
//! what the scripts left is evidence. The combined report holds both modes' runs and what
//! happened in one mode only; `--evidence DIR` keeps the reports and each package directory as
//! the scripts left it. Directories are copied and packed with `npm pack --ignore-scripts`
//! first: the original is never touched and no script runs outside a sandbox.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::error::RunError;
use crate::npm::{self, Command2, NpmError, Toolchain};
use crate::observe::envprobe::CI_VARS;
use crate::output::human;
use crate::policy::{self, PolicyError, ResolveContext};
use crate::report::{Difference, ReplayMode, ReplaySummary, Report};
use crate::settings::{InstallSettings, ReplaySettings};

use super::Exit;

/// The environment changes of a mode.
fn mode_env(mode: &str) -> Vec<(String, Option<String>)> {
    let mut env: Vec<(String, Option<String>)> =
        CI_VARS.iter().map(|v| ((*v).to_string(), None)).collect();
    if mode == "ci" {
        env.retain(|(k, _)| k != "CI" && k != "GITHUB_ACTIONS");
        env.push(("CI".into(), Some("true".into())));
        env.push(("GITHUB_ACTIONS".into(), Some("true".into())));
    }
    env
}

fn describe(env: &[(String, Option<String>)]) -> Vec<String> {
    let set: Vec<String> = env
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={v}")))
        .collect();
    let unset = env.iter().filter(|(_, v)| v.is_none()).count();
    let mut out = set;
    out.push(format!("{unset} other CI variables unset"));
    out
}

/// Turn the specs into what npm installs in a scratch project: directories are copied and packed
/// (scripts ignored), tarball paths made absolute, registry specs kept.
fn resolve_specs(
    specs: &[String],
    tool: &Toolchain,
    work: &Path,
    env: &[(String, String)],
    cwd: &Path,
) -> Result<Vec<String>, RunError> {
    let mut out = Vec::new();
    for (i, spec) in specs.iter().enumerate() {
        let path = cwd.join(spec);
        let local = spec.starts_with('.') || spec.starts_with('/') || path.is_dir();
        if local && path.is_dir() {
            let copy = work.join(format!("src-{i}"));
            copy_dir(&path, &copy).map_err(|source| NpmError::Copy {
                path: path.clone(),
                source,
            })?;
            let dest = work.join("packed");
            std::fs::create_dir_all(&dest).map_err(|source| NpmError::CreateDir {
                path: dest.clone(),
                source,
            })?;
            let tgz = npm::pack_ignore_scripts(tool, &copy, &dest, env).map_err(RunError::Npm)?;
            out.push(tgz.display().to_string());
        } else if local && path.is_file() {
            out.push(path.display().to_string());
        } else if local {
            return Err(RunError::NoSuchPackagePath { spec: spec.clone() });
        } else {
            out.push(spec.clone());
        }
    }
    Ok(out)
}

/// Copy a package directory that is hostile input (a suspect's source, or what its scripts left
/// behind) through the hardened reader: links copied as links and never followed, FIFOs and
/// devices skipped, bounded. `node_modules` and `.git` are left out, and so are the npm and yarn
/// configs npm never packs: nothing from a suspect's files may configure a host-side tool.
fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    let budget = crate::untrusted::Budget {
        max_total_bytes: 512 << 20,
        max_file_bytes: 256 << 20,
        ..Default::default()
    };
    if let Some(parent) = to.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let walk = crate::untrusted::copy_tree(from, to, &budget)?;
    if let Some(why) = walk.truncated {
        tracing::warn!("copying `{}`: incomplete: {why}", from.display());
    }
    for name in ["node_modules", ".git", ".npmrc", ".yarnrc", ".yarnrc.yml"] {
        let p = to.join(name);
        if std::fs::symlink_metadata(&p).is_ok_and(|m| m.is_dir()) {
            crate::untrusted::remove_tree(&p)?;
        } else if std::fs::symlink_metadata(&p).is_ok() {
            std::fs::remove_file(&p)?;
        }
    }
    Ok(())
}

/// The behaviours of one mode: each finding, and each script that timed out or failed, with
/// the scratch project's path replaced by `<project>` (it differs between modes).
fn behaviours(mode: &str, project: &Path, report: &Report) -> Vec<Difference> {
    let p = project.display().to_string();
    let mut out = Vec::new();
    for run in &report.runs {
        let Some(pkg) = &run.package else { continue };
        let mut push = |what: &str, severity, target: &str, summary: String| {
            out.push(Difference {
                only_in: mode.to_string(),
                package: pkg.name.clone(),
                what: what.to_string(),
                severity,
                target: target.replace(&p, "<project>"),
                summary: summary.replace(&p, "<project>"),
            });
        };
        for f in &run.findings {
            push(
                f.kind.as_str(),
                Some(f.severity),
                &f.target,
                f.summary.clone(),
            );
        }
        if run.timed_out {
            let summary = format!("`{}` was killed at the wall-clock limit", pkg.event);
            push("timed-out", None, &pkg.event, summary);
        } else if pkg.outcome == "failed" {
            let summary = format!("`{}` failed with status {}", pkg.event, run.exit_status);
            push("failed", None, &pkg.event, summary);
        }
    }
    out
}

/// What each mode did that the others did not, compared by (package, what, target).
fn differences(results: &[(String, PathBuf, Option<Report>)]) -> Vec<Difference> {
    if results.len() < 2 {
        return Vec::new();
    }
    let key = |d: &Difference| (d.package.clone(), d.what.clone(), d.target.clone());
    let sets: Vec<Vec<Difference>> = results
        .iter()
        .map(|(mode, project, r)| {
            r.as_ref()
                .map(|r| behaviours(mode, project, r))
                .unwrap_or_default()
        })
        .collect();
    let mut out = Vec::new();
    for (i, items) in sets.iter().enumerate() {
        let elsewhere: BTreeSet<_> = sets
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .flat_map(|(_, other)| other.iter().map(key))
            .collect();
        let mut seen = BTreeSet::new();
        for d in items {
            if !elsewhere.contains(&key(d)) && seen.insert(key(d)) {
                out.push(d.clone());
            }
        }
    }
    out
}

/// Copy what the scripts left of each package directory into the evidence directory.
fn keep_packages(report: &Report, project: &Path, dest: &Path) {
    let mut done = BTreeSet::new();
    for run in &report.runs {
        let Some(p) = &run.package else { continue };
        if p.location.is_empty() || !done.insert(p.location.clone()) {
            continue;
        }
        let src = project.join(&p.location);
        let to = dest.join(p.location.replace('/', "__"));
        if let Err(e) = copy_dir(&src, &to) {
            tracing::warn!("evidence: copying `{}`: {e}", src.display());
        }
    }
}

/// The evidence directory, created empty (an existing non-empty one is refused).
fn evidence_dir(dir: &Path) -> Result<(), RunError> {
    let empty = std::fs::read_dir(dir).map_or(true, |mut d| d.next().is_none());
    if !empty {
        return Err(RunError::EvidenceDirNotEmpty {
            path: dir.to_path_buf(),
        });
    }
    std::fs::create_dir_all(dir).map_err(|source| {
        RunError::Npm(NpmError::CreateDir {
            path: dir.to_path_buf(),
            source,
        })
    })
}

/// One mode: a scratch project, the install with that mode's environment, its evidence.
fn run_mode(
    s: &ReplaySettings,
    i: usize,
    mode: &str,
    specs: &[String],
    work: &Path,
) -> Result<(ReplayMode, PathBuf, Option<Report>), RunError> {
    let project = work.join(mode);
    let manifest = r#"{ "name": "ringfence-replay", "version": "0.0.0", "private": true }"#;
    std::fs::create_dir_all(&project)
        .and_then(|()| std::fs::write(project.join("package.json"), manifest))
        .map_err(|source| NpmError::Write {
            path: project.join("package.json"),
            source,
        })?;
    let env = mode_env(mode);
    eprintln!(
        "== ringfence replay {}/{}: {} ({})",
        i + 1,
        s.modes.len(),
        if mode == "ci" {
            "as in CI"
        } else {
            "as on a developer machine"
        },
        describe(&env).join(", ")
    );
    let installed = super::install::install(&InstallSettings {
        npm_args: specs.to_vec(),
        profile: s.profile.clone(),
        fail_on: None,
        forensic: true,
        project: Some(project.clone()),
        env: env.clone(),
        rollback: false,
        timeout: Some(s.timeout),
        jobs: 1,
        tier: s.tier,
        require_tier: s.require_tier,
        ..InstallSettings::new(Command2::Install)
    });
    let exit_status = match &installed.exit {
        Ok(c) => i32::from(c.code()),
        Err(e) => {
            eprintln!("ringfence replay: {mode}: {}", human::error(e));
            2
        }
    };
    let report = match (installed.exit, installed.report) {
        // Nothing ran (npm could not fetch the package, say): stop here.
        (Err(e), None) => return Err(e),
        (_, r) => r,
    };
    if let (Some(dir), Some(r)) = (&s.evidence, &report) {
        let d = dir.join(mode);
        let _ = std::fs::create_dir_all(&d);
        let _ = r.write(&d.join("report.json"));
        keep_packages(r, &project, &d.join("packages"));
    }
    let mode = ReplayMode {
        mode: mode.to_string(),
        env: describe(&env),
        exit_status,
    };
    Ok((mode, project, report))
}

/// Run the replay: every mode, then what differed. Exit 1 when a finding in any mode is at
/// least `--fail-on`. A failure of ringfence itself is written into the report too.
pub fn run(s: ReplaySettings) -> Result<Exit, RunError> {
    let mut combined = None;
    let r = replay(&s, &mut combined);
    super::github(
        s.github.as_ref(),
        combined.as_ref(),
        None,
        s.fail_on,
        r.as_ref().err(),
    );
    super::write_sarif(
        s.sarif.as_deref(),
        combined.as_ref(),
        None,
        r.as_ref().err(),
    )?;
    super::write_codequality(s.gitlab_codequality.as_deref(), combined.as_ref(), None)?;
    if let Err(e) = &r {
        super::report_failure(s.report.as_deref(), None, e);
    }
    r
}

fn replay(s: &ReplaySettings, slot: &mut Option<Report>) -> Result<Exit, RunError> {
    let rctx = ResolveContext::from_process().map_err(PolicyError::Context)?;
    let path_env = rctx.var("PATH").unwrap_or(policy::DEFAULT_PATH).to_string();
    let tool = Toolchain::locate(&path_env, &rctx.cwd)?;
    if let Some(dir) = &s.evidence {
        evidence_dir(dir)?;
    }
    let work = tempfile::Builder::new()
        .prefix("ringfence-replay-")
        .tempdir()
        .map_err(|source| NpmError::TempDir {
            path: std::env::temp_dir(),
            source,
        })?;
    let work_path =
        std::fs::canonicalize(work.path()).unwrap_or_else(|_| work.path().to_path_buf());
    let specs = resolve_specs(&s.specs, &tool, &work_path, &rctx.env, &rctx.cwd)?;

    let mut results: Vec<(String, PathBuf, Option<Report>)> = Vec::new();
    let mut modes = Vec::new();
    for (i, mode) in s.modes.iter().enumerate() {
        let (m, project, report) = run_mode(s, i, mode, &specs, &work_path)?;
        modes.push(m);
        results.push((mode.clone(), project, report));
    }

    let diffs = differences(&results);
    let mut runs = Vec::new();
    for (mode, _, report) in &results {
        for run in report.iter().flat_map(|r| r.runs.iter()) {
            let mut run = run.clone();
            run.replay_mode = Some(mode.clone());
            runs.push(run);
        }
    }
    let mut combined = Report::new(runs);
    combined.replay = Some(ReplaySummary {
        specs: s.specs.clone(),
        modes,
        differences: diffs.clone(),
    });
    let text = human::replay_differences(s.modes.len(), &diffs);
    eprint!("{text}");
    if let Some(path) = &s.report {
        combined.write(path)?;
    }
    if let Some(dir) = &s.evidence {
        combined.write(&dir.join("report.json"))?;
        let _ = std::fs::write(dir.join("differences.txt"), &text);
        eprintln!("ringfence replay: evidence in `{}`", dir.display());
    }
    let flagged = matches!((s.fail_on, combined.worst()), (Some(t), Some(w)) if w >= t);
    *slot = Some(combined);
    Ok(if flagged { Exit::Flagged } else { Exit::Clean })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::{Code, Finding, FindingKind, Severity};

    fn report_with(project: &str, findings: Vec<(&str, &str)>, timed_out: bool) -> Report {
        let mut r = Report::new(Vec::new());
        let mut run = crate::report::tests::run("p", "postinstall", "ok", vec![]);
        run.timed_out = timed_out;
        run.findings = findings
            .into_iter()
            .map(|(kind, target)| Finding {
                code: Code::Connection,
                kind: if kind == "exfiltration" {
                    FindingKind::Exfiltration
                } else {
                    FindingKind::Fingerprinting
                },
                severity: Severity::High,
                summary: format!("{kind} {target}"),
                target: target.replace("<p>", project),
                detail: None,
                process: None,
                at_unix_ms: None,
            })
            .collect();
        r.runs.push(run);
        r
    }

    #[test]
    fn differences_between_modes() {
        let dev = report_with("/w/dev", vec![("fingerprinting", "env:CI")], true);
        let ci = report_with(
            "/w/ci",
            vec![
                ("fingerprinting", "env:CI"),
                ("exfiltration", "x.attacker.test:80"),
                ("exfiltration", "<p>/node_modules/p/.cache"),
            ],
            false,
        );
        let d = differences(&[
            ("dev".into(), PathBuf::from("/w/dev"), Some(dev)),
            ("ci".into(), PathBuf::from("/w/ci"), Some(ci)),
        ]);
        let got: Vec<(&str, &str, &str)> = d
            .iter()
            .map(|x| (x.only_in.as_str(), x.what.as_str(), x.target.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("dev", "timed-out", "postinstall"),
                ("ci", "exfiltration", "x.attacker.test:80"),
                ("ci", "exfiltration", "<project>/node_modules/p/.cache"),
            ]
        );
    }

    #[test]
    fn modes_set_and_clear_ci_variables() {
        let dev = mode_env("dev");
        assert!(dev.iter().all(|(_, v)| v.is_none()));
        assert!(dev.iter().any(|(k, _)| k == "CI"));
        let ci = mode_env("ci");
        assert!(ci.contains(&("CI".into(), Some("true".into()))));
        assert!(ci.contains(&("GITHUB_ACTIONS".into(), Some("true".into()))));
        assert!(ci.iter().any(|(k, v)| k == "BUILDKITE" && v.is_none()));
    }
}
