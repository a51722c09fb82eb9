//! The summary after `install`/`ci` (and each `replay` mode): a headline, one line per script
//! run with what was refused, how to allow it and its findings underneath, the scripts the
//! allowlists or approvals kept from running, and what the approvals said.

use std::collections::BTreeMap;

use super::{Style, severity_label, terminal_safe};
use crate::findings::{Finding, Severity};
use crate::report::{InstallSummary, Report, ScriptRun};

/// Findings shown per run in the human summary (most severe first); the JSON has them all.
const SUMMARY_FINDINGS: usize = 12;

/// The human summary printed after `install`/`ci`: a headline, then one line per script run
/// with its findings underneath (plain text).
pub fn summary(report: &Report, elapsed_secs: f64) -> String {
    summary_styled(report, elapsed_secs, Style::default())
}

/// [`summary`] in a [`Style`].
pub fn summary_styled(report: &Report, elapsed_secs: f64, style: Style) -> String {
    use std::fmt::Write as _;
    let mut counts: BTreeMap<crate::observe::Severity, usize> = BTreeMap::new();
    for f in report
        .runs
        .iter()
        .flat_map(|r| &r.findings)
        .filter(|f| shown(f))
    {
        *counts.entry(f.severity).or_default() += 1;
    }
    let findings = if counts.is_empty() {
        "no findings".to_string()
    } else {
        counts
            .iter()
            .rev()
            .map(|(s, n)| format!("{n} {}", severity_label(*s).to_ascii_lowercase()))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut out = String::new();
    let landlock = report
        .runs
        .iter()
        .any(|r| r.enforcement.tier.as_deref() == Some("landlock"));
    let _ = writeln!(
        out,
        "ringfence: {} lifecycle script(s), each in its own sandbox{}, {elapsed_secs:.1}s; {findings}",
        report.runs.len(),
        if landlock {
            " (landlock tier: no namespaces here; Landlock, seccomp and a subreaper instead)"
        } else {
            ""
        }
    );
    let unrecorded: Vec<&ScriptRun> = report
        .runs
        .iter()
        .filter(|r| r.enforcement.recorder_missing().is_some())
        .collect();
    if let Some(first) = unrecorded.first() {
        let _ = writeln!(
            out,
            "  warning[recorder-unavailable]: {} script(s) ran without the syscall recorder: {}",
            unrecorded.len(),
            first.enforcement.recorder_missing().unwrap_or_default()
        );
    }
    for r in &report.runs {
        let interesting = r.timed_out
            || !r.refused.is_empty()
            || r.findings.iter().any(shown)
            || r.package.as_ref().is_some_and(|p| p.outcome != "ok");
        if style.quiet && !interesting {
            continue;
        }
        run_lines(&mut out, r, style);
    }
    if let Some(i) = &report.install {
        gate_lines(&mut out, i, style);
        if !style.quiet {
            quiet_packages(&mut out, i);
        }
    }
    if let Some(a) = &report.approvals {
        approval_lines(&mut out, a);
    }
    out
}

/// Scripts an allowlist or `--only-approved` kept from running, and scripts nobody reviewed.
fn gate_lines(out: &mut String, i: &crate::report::InstallSummary, style: Style) {
    use std::fmt::Write as _;
    for k in &i.skipped {
        let why = match k.reason.as_str() {
            "denied" => format!("denied by {}", k.by),
            _ => format!("not approved ({})", k.by),
        };
        let _ = writeln!(
            out,
            "  {} {}@{} {}  {why}: the package may not work without it",
            style.status("skipped", 8),
            terminal_safe(&k.name),
            terminal_safe(&k.version),
            terminal_safe(&k.event)
        );
    }
    if !i.unreviewed.is_empty() && !style.quiet {
        const SHOWN: usize = 8;
        let names: Vec<String> = i
            .unreviewed
            .iter()
            .take(SHOWN)
            .map(|p| format!("{}@{}", p.name, p.version))
            .collect();
        let more = i.unreviewed.len().saturating_sub(SHOWN);
        let _ = writeln!(
            out,
            "  {} package(s) ran scripts nobody approved (sandboxed and recorded): {}{}; `ringfence approve PKG` records what they did",
            i.unreviewed.len(),
            names.join(", "),
            if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            }
        );
    }
}

/// What the project's approvals said.
fn approval_lines(out: &mut String, a: &crate::report::ApprovalsSummary) {
    use std::fmt::Write as _;
    for c in &a.carried {
        let _ = writeln!(
            out,
            "  info: the approval of {} ({}) carried over to {} {}: it did nothing its approved record lacks{}",
            c.name,
            c.from.join(", "),
            c.version,
            c.event,
            if a.lock_updated {
                format!("; {} updated", a.file)
            } else {
                format!(
                    " (`ringfence install` or `ringfence approve {}` records it in {})",
                    c.name, a.file
                )
            }
        );
    }
    for c in &a.changed {
        let _ = writeln!(
            out,
            "  BEHAVIOUR CHANGED  {}@{} {} did more than approved for {}:",
            c.name,
            c.version,
            c.event,
            c.approved_versions.join(", ")
        );
        for (category, items) in &c.new {
            let _ = writeln!(out, "           + {category}: {}", items.join(", "));
        }
    }
}

/// `s` quoted for a POSIX shell when it holds anything but safe characters.
fn shell_word(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "@/._-+:=".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// Probes nobody needs by default (CI detection, info) stay in the report and out of the
/// summary; `-v` shows them.
fn shown(f: &Finding) -> bool {
    tracing::enabled!(tracing::Level::INFO)
        || !(f.severity == Severity::Info || f.code == crate::findings::Code::CiDetection)
}

/// One script's line, what was refused (with the allowance that would permit it) and its
/// findings.
fn run_lines(out: &mut String, r: &ScriptRun, style: Style) {
    status_line(out, r, style);
    refusal_lines(out, r);
    finding_lines(out, r, style);
}

/// The script's own line: its status, who it is and how long it took, with why it was killed
/// or is probably incomplete.
fn status_line(out: &mut String, r: &ScriptRun, style: Style) {
    use std::fmt::Write as _;
    let (who, outcome) = match &r.package {
        Some(p) => (
            format!("{}@{} {}", p.name, p.version, p.event),
            p.outcome.as_str(),
        ),
        None => (r.command.join(" "), "ran"),
    };
    let status = match (outcome, r.timed_out) {
        _ if r.cached.is_some() && outcome == "ok" => "cached",
        (_, true) => "timeout",
        ("ok", _) if !r.refused.is_empty() => "partial",
        ("ok", _) | ("ran", _) => "ok",
        ("optional-failed", _) => "opt-fail",
        _ => "FAILED",
    };
    let limit = match (r.timed_out, r.timeout_ms) {
        (true, Some(ms)) => format!(
            "  (killed at the {:.0}s wall-clock limit with its whole process tree)",
            ms as f64 / 1000.0
        ),
        _ => String::new(),
    };
    let partial = if status == "partial" {
        let net = r
            .refused
            .iter()
            .filter(|x| x.path.starts_with("network: "))
            .count();
        let writes = r.refused.len() - net;
        let what: Vec<String> = [
            (writes, "write(s) were refused"),
            (net, "host(s) it needed were unreachable"),
        ]
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, w)| format!("{n} {w}"))
        .collect();
        format!(
            "  (exited 0, but {}: the package is probably incomplete)",
            what.join(" and ")
        )
    } else {
        String::new()
    };
    let _ = writeln!(
        out,
        "  {} {}  {:.1}s{limit}{partial}",
        style.status(status, 8),
        terminal_safe(&who),
        r.duration_ms / 1000.0
    );
}

/// What was refused, and how to allow it (the `ringfence.toml` snippet, the `ringfence allow`
/// command) or give a script that timed out more time.
fn refusal_lines(out: &mut String, r: &ScriptRun) {
    use std::fmt::Write as _;
    for x in &r.refused {
        let _ = writeln!(
            out,
            "           refused  `{}`: {}",
            terminal_safe(&x.path),
            x.why
        );
    }
    let allow: Vec<&str> = r
        .refused
        .iter()
        .filter_map(|x| x.allow.as_deref())
        .collect();
    if let (Some(p), false) = (&r.package, allow.is_empty()) {
        let _ = writeln!(
            out,
            "           to allow it, add to {} at the project root (or your --profile):",
            crate::policy::PROJECT_FILE
        );
        for line in crate::policy::allowance::snippet(&p.name, &allow).lines() {
            let _ = writeln!(out, "             {}", terminal_safe(line));
        }
        let _ = writeln!(
            out,
            "           or run: ringfence allow {} {} --reason \"<why>\"",
            terminal_safe(&shell_word(&p.name)),
            allow
                .iter()
                .map(|a| format!("--write {}", terminal_safe(&shell_word(a))))
                .collect::<Vec<_>>()
                .join(" ")
        );
        if allow.iter().any(|a| a.starts_with(".git/")) {
            let _ = writeln!(
                out,
                "           git hooks: a dependency that may write .git/hooks gains code execution on every commit; allow it only for the hook installer you chose (husky, lefthook, simple-git-hooks)"
            );
        }
    }
    if let (Some(p), true, Some(ms)) = (&r.package, r.timed_out, r.timeout_ms) {
        let more = (ms / 1000).saturating_mul(4).max(60) / 60;
        let _ = writeln!(
            out,
            "           to give it more time, add to {}: [package.{:?}] timeout = \"{more}m\"  (or run: ringfence allow {} --timeout {more}m)",
            crate::policy::PROJECT_FILE,
            terminal_safe(&p.name),
            terminal_safe(&shell_word(&p.name))
        );
    }
}

/// The findings shown (at most [`SUMMARY_FINDINGS`]) and how many more the report holds.
fn finding_lines(out: &mut String, r: &ScriptRun, style: Style) {
    use std::fmt::Write as _;
    let shown: Vec<&Finding> = r.findings.iter().filter(|f| shown(f)).collect();
    for f in shown.iter().take(SUMMARY_FINDINGS) {
        let _ = writeln!(
            out,
            "           {} {:<26} {}",
            style.severity(f.severity, 8),
            f.code.as_str(),
            terminal_safe(&f.summary)
        );
    }
    let hidden = r.findings.len() - shown.len();
    let more = shown.len().saturating_sub(SUMMARY_FINDINGS);
    // Hidden probes alone are not worth a line: they are in the report, and -v shows them.
    if more > 0 {
        let _ = writeln!(
            out,
            "           … and {} more finding(s) of this run in the JSON report (--report){}",
            more + hidden,
            if hidden > 0 {
                format!("; {hidden} of them CI-detection or info probes (-v shows them)")
            } else {
                String::new()
            }
        );
    }
}

/// The packages that had nothing to run.
fn quiet_packages(out: &mut String, i: &InstallSummary) {
    use std::fmt::Write as _;
    let quiet = &i.no_install_time_behaviour;
    if !quiet.is_empty() {
        let shown: Vec<String> = quiet
            .iter()
            .take(5)
            .map(|p| terminal_safe(&format!("{}@{}", p.name, p.version)).into_owned())
            .collect();
        let more = quiet.len() - shown.len();
        let _ = writeln!(
            out,
            "  {} package(s) with no install-time behaviour (no lifecycle scripts: nothing ran, their runtime code is not examined): {}{}",
            quiet.len(),
            shown.join(", "),
            if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            }
        );
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::findings::{Code, FindingKind};
    use crate::report::tests::run;
    use crate::report::{InstallSummary, PackageId};

    #[test]
    fn colour_only_when_asked_and_quiet_keeps_only_what_matters() {
        let report = Report::new(vec![
            run("calm", "install", "ok", vec![]),
            run(
                "loud",
                "postinstall",
                "failed",
                vec![Finding::new(
                    Code::DecoyRead,
                    "read decoy npm token",
                    "/h/.npmrc",
                )],
            ),
        ]);
        let plain = summary(&report, 1.0);
        assert!(!plain.contains('\x1b'), "{plain}");
        let color = summary_styled(
            &report,
            1.0,
            Style {
                color: true,
                quiet: false,
            },
        );
        assert!(
            color.contains("\x1b[1;31mHIGH    \x1b[0m decoy-read"),
            "{color}"
        );
        assert!(
            color.contains("\x1b[1;31mFAILED  \x1b[0m loud@1.0.0"),
            "{color}"
        );
        // Without the escapes, the same text: colour changes nothing else.
        let stripped = color.replace("\x1b[1;31m", "").replace("\x1b[0m", "");
        assert_eq!(stripped, plain);
        let quiet = summary_styled(
            &report,
            1.0,
            Style {
                color: false,
                quiet: true,
            },
        );
        assert!(!quiet.contains("calm@1.0.0"), "{quiet}");
        assert!(
            quiet.contains("loud@1.0.0") && quiet.contains("decoy-read"),
            "{quiet}"
        );
    }

    /// The human summary, pinned.
    #[test]
    fn summary_snapshot() {
        let report = Report::new(vec![
            run("argon2", "install", "ok", vec![]),
            run(
                "evil",
                "postinstall",
                "ok",
                vec![
                    Finding {
                        code: Code::TcpExfiltration,
                        kind: FindingKind::Exfiltration,
                        severity: Severity::Critical,
                        summary: "secret sent to `webhook.site:80` (env:NPM_TOKEN)".into(),
                        target: "webhook.site:80".into(),
                        detail: None,
                        process: None,
                        at_unix_ms: None,
                    },
                    Finding {
                        code: Code::DecoyRead,
                        kind: FindingKind::SecretRead,
                        severity: Severity::High,
                        summary: "read decoy npm token `~/.npmrc`".into(),
                        target: "/h/.npmrc".into(),
                        detail: None,
                        process: None,
                        at_unix_ms: None,
                    },
                ],
            ),
            run("opt", "install", "optional-failed", vec![]),
            {
                let mut r = run("hooks", "postinstall", "ok", vec![]);
                r.refused = crate::policy::allowance::refusals(
                    Path::new("/p"),
                    &["/p/.git/hooks/pre-commit", "/p/hooks.yml"],
                );
                r.refused.extend(crate::policy::allowance::network_refusals(
                    ["github.com:443"].into_iter(),
                ));
                r
            },
        ]);
        assert_eq!(
            summary(&report, 3.25),
            "ringfence: 4 lifecycle script(s), each in its own sandbox, 3.2s; 1 critical, 1 high
  ok       argon2@1.0.0 install  1.2s
  ok       evil@1.0.0 postinstall  1.2s
           CRITICAL tcp-exfiltration           secret sent to `webhook.site:80` (env:NPM_TOKEN)
           HIGH     decoy-read                 read decoy npm token `~/.npmrc`
  opt-fail opt@1.0.0 install  1.2s
  partial  hooks@1.0.0 postinstall  1.2s  (exited 0, but 2 write(s) were refused and 1 host(s) it needed were unreachable: the package is probably incomplete)
           refused  `/p/.git/hooks/pre-commit`: the project outside the package's own directory
           refused  `/p/hooks.yml`: the project outside the package's own directory
           refused  `network: github.com`: there is no network in the sandbox: whatever it meant to download is missing
           to allow it, add to ringfence.toml at the project root (or your --profile):
             [package.\"hooks\"]
             write = [\".git/hooks/\", \"hooks.yml\"]
             reason = \"<why this package must write there>\"
           or run: ringfence allow hooks --write .git/hooks/ --write hooks.yml --reason \"<why>\"
           git hooks: a dependency that may write .git/hooks gains code execution on every commit; allow it only for the hook installer you chose (husky, lefthook, simple-git-hooks)
"
        );
        assert_eq!(report.worst(), Some(Severity::Critical));
    }

    /// Names, paths and summaries from a package cannot move the cursor, recolour, reorder or
    /// add lines to the summary.
    #[test]
    fn untrusted_strings_reach_the_terminal_escaped() {
        let evil = "\x1b[2K\r  ok       fine@1.0.0 postinstall\n\u{202e}x\u{9b}";
        let mut r = run(evil, "postinstall", "ok", vec![]);
        r.findings
            .push(Finding::new(Code::WriteRefused, evil, "/x"));
        r.refused = vec![crate::policy::allowance::Refusal {
            path: evil.into(),
            why: "w".into(),
            allow: Some("a/".into()),
        }];
        let text = summary(&Report::new(vec![r]), 1.0);
        assert!(!text.contains('\x1b') && !text.contains('\r') && !text.contains('\u{202e}'));
        assert!(!text.contains('\u{9b}'));
        assert!(text.contains("\\u{1b}[2K\\u{d}"), "{text}");
        // One line per thing, whatever the names hold.
        assert_eq!(
            text.lines().filter(|l| l.contains("fine@1.0.0")).count(),
            5,
            "{text}"
        );
        assert!(
            text.lines().all(|l| !l.starts_with("  ok       fine")),
            "{text}"
        );
    }

    /// Timeouts, long finding lists and packages with nothing to run, pinned.
    #[test]
    fn summary_snapshot_timeouts_caps_and_quiet_packages() {
        let noisy: Vec<Finding> = (0..14)
            .map(|i| Finding {
                code: Code::Survivor,
                kind: FindingKind::Survivor,
                severity: Severity::High,
                summary: format!("survivor {i}"),
                target: format!("pid {i}"),
                detail: None,
                process: None,
                at_unix_ms: None,
            })
            .collect();
        let mut gated = run("gated", "postinstall", "failed", vec![]);
        gated.timed_out = true;
        gated.timeout_ms = Some(3000);
        let mut report = Report::new(vec![gated, run("worm", "prepare", "ok", noisy)]);
        report.install = Some(InstallSummary {
            packages: 9,
            with_scripts: 2,
            no_install_time_behaviour: (0..7)
                .map(|i| PackageId {
                    name: format!("p{i}"),
                    version: "1.0.0".into(),
                    location: format!("node_modules/p{i}"),
                })
                .collect(),
            skipped: Vec::new(),
            unreviewed: Vec::new(),
        });
        let text = summary(&report, 1.0);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[1],
            "  timeout  gated@1.0.0 postinstall  1.2s  (killed at the 3s wall-clock limit with its whole process tree)"
        );
        assert_eq!(
            lines[2],
            "           to give it more time, add to ringfence.toml: [package.\"gated\"] timeout = \"1m\"  (or run: ringfence allow gated --timeout 1m)"
        );
        assert_eq!(lines.len(), 1 + 2 + 1 + 12 + 1 + 1);
        assert_eq!(
            lines[16],
            "           … and 2 more finding(s) of this run in the JSON report (--report)"
        );
        assert_eq!(
            lines[17],
            "  7 package(s) with no install-time behaviour (no lifecycle scripts: nothing ran, their runtime code is not examined): p0@1.0.0, p1@1.0.0, p2@1.0.0, p3@1.0.0, p4@1.0.0 and 2 more"
        );
    }
}
