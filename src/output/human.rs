//! What a person reads on the terminal: the install summary, a failed script's dump, notes after
//! `run`, replay differences, doctor's table, the findings catalogue, warnings and errors. Every
//! untrusted string goes through [`terminal_safe`].

use std::collections::BTreeMap;
use std::io::Write as _;

use crate::doctor::KernelFacts;
use crate::error::RunError;
use crate::findings::{Finding, Severity};
use crate::npm::scripts::Job;
use crate::pipeline::{Events, ScriptOutcome};
use crate::policy::Warning;
use crate::report::{Difference, InstallSummary, Report, ReportWarning, ScriptRun};
use crate::sandbox::Outcome;
use crate::sandbox::landlock::Status;
use crate::sandbox::spec::SandboxSpec;

/// Findings shown per run in the human summary (most severe first); the JSON has them all.
const SUMMARY_FINDINGS: usize = 12;

/// `s` made safe for a terminal: control characters (C0 except tab, DEL, C1), bidirectional
/// overrides and isolates, and other invisible format characters are shown as `\u{…}` escapes,
/// so that a package name, a path or a script's output cannot move the cursor, recolour,
/// reorder or hide text in the summary.
pub fn terminal_safe(s: &str) -> std::borrow::Cow<'_, str> {
    let bad = |c: char| {
        (c.is_control() && c != '\t')
            || matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{061c}' | '\u{feff}')
    };
    if !s.chars().any(bad) {
        return std::borrow::Cow::Borrowed(s);
    }
    std::borrow::Cow::Owned(
        s.chars()
            .map(|c| {
                if bad(c) {
                    format!("\\u{{{:x}}}", u32::from(c))
                } else {
                    c.to_string()
                }
            })
            .collect(),
    )
}

fn severity_label(s: Severity) -> &'static str {
    match s {
        Severity::Info => "info",
        Severity::Low => "low",
        Severity::Medium => "MEDIUM",
        Severity::High => "HIGH",
        Severity::Critical => "CRITICAL",
    }
}

/// How the summary is printed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Style {
    /// Severities and statuses in colour (a terminal, `NO_COLOR` unset, not `TERM=dumb`).
    pub color: bool,
    /// Only scripts with findings shown by default, failures and skips (`--quiet`).
    pub quiet: bool,
}

impl Style {
    /// The style for stderr as it is now.
    pub fn for_stderr(quiet: bool) -> Style {
        use std::io::IsTerminal as _;
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        let dumb = std::env::var("TERM").is_ok_and(|t| t == "dumb");
        Style {
            color: std::io::stderr().is_terminal() && !no_color && !dumb,
            quiet,
        }
    }

    /// `text` in the colour of `severity` (padded to `width` first, so columns line up).
    fn severity(self, severity: Severity, width: usize) -> String {
        let text = format!("{:<width$}", severity_label(severity));
        if !self.color {
            return text;
        }
        let code = match severity {
            Severity::Critical => "1;35",
            Severity::High => "1;31",
            Severity::Medium => "33",
            Severity::Low | Severity::Info => "2",
        };
        format!("\x1b[{code}m{text}\x1b[0m")
    }

    /// A run status (`ok`, `FAILED`, `partial`, ...), padded to `width`, in colour.
    fn status(self, status: &str, width: usize) -> String {
        let text = format!("{status:<width$}");
        let code = match status {
            "FAILED" | "timeout" => "1;31",
            "partial" | "opt-fail" | "skipped" => "33",
            _ => return text,
        };
        if self.color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text
        }
    }
}

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

/// `warning[code]: message`, and its hint, on stderr.
pub fn warning(code: &str, message: &str, hint: Option<&str>) {
    let mut e = std::io::stderr().lock();
    let _ = writeln!(e, "warning[{code}]: {}", terminal_safe(message));
    if let Some(h) = hint {
        let _ = writeln!(e, "\nhint: {}", terminal_safe(h));
    }
}

/// Profile warnings, each once, in the order first seen.
pub fn policy_warnings<'a>(warnings: impl IntoIterator<Item = &'a Warning>) {
    let mut seen = std::collections::BTreeSet::new();
    for w in warnings {
        if seen.insert((w.code, w.message.clone())) {
            warning(w.code, &w.message, w.hint.as_deref());
        }
    }
}

/// Report-level warnings (git dependencies not prepared, shadowing bins).
pub fn report_warnings(warnings: &[ReportWarning]) {
    for w in warnings {
        warning(&w.code, &w.message, None);
    }
}

/// The error and each cause not already in its message, one per line.
pub fn error_chain(e: &RunError) -> String {
    let mut out = e.to_string();
    let mut cur = std::error::Error::source(e);
    // Sources already folded into the top message (transparent variants) are skipped.
    while let Some(c) = cur {
        let text = c.to_string();
        if !out.contains(&text) {
            out.push_str(&format!("\n  caused by: {text}"));
        }
        cur = c.source();
    }
    out
}

/// `error: …`, each cause not already in the message on its own line, then the hint.
pub fn error(e: &RunError) -> String {
    let mut out = format!("error: {}", error_chain(e));
    if let Some(h) = e.hint() {
        if let Some(cause) = &h.cause {
            out.push_str(&format!("\n  cause: {cause}"));
        }
        out.push_str(&format!("\n\nhint: {}", h.fix));
    }
    out
}

/// What the user should know about a finished `run`, on stderr.
pub fn run_notes(spec: &SandboxSpec, outcome: &Outcome, findings: &[Finding]) {
    let cmd = spec.exec.argv.join(" ");
    if outcome.timed_out {
        eprintln!(
            "ringfence: `{}` timed out after {:.1}s; the whole sandbox was killed",
            terminal_safe(&cmd),
            spec.limits.timeout_ms.unwrap_or(0) as f64 / 1000.0
        );
    }
    if let Some(e) = &outcome.enforced {
        if e.landlock.status != Status::FullyEnforced {
            eprintln!(
                "warning[landlock]: only {:?} (kernel ABI {:?}, wanted {})",
                e.landlock.status, e.landlock.kernel_abi, e.landlock.requested_abi
            );
        }
        if let crate::sandbox::RecorderState::Unavailable { why } = &e.recorder {
            warning(
                "recorder-unavailable",
                &format!(
                    "the syscall recorder could not be attached ({why}): writes, execs and connections were denied but not recorded"
                ),
                None,
            );
        }
    }
    for f in findings {
        eprintln!(
            "ringfence: finding [{}] {}",
            f.severity.as_str(),
            terminal_safe(&f.summary)
        );
    }
}

/// A failed background script, printed like npm prints one: code, path, command, then its
/// output (never its terminal escapes).
pub fn script_failure(o: &ScriptOutcome) {
    let code = o.outcome().map_or(2, |x| x.termination.exit_code());
    let job = &o.job;
    let mut e = std::io::stderr().lock();
    let safe = terminal_safe;
    let _ = writeln!(
        e,
        "ringfence error: {}@{} {} script failed",
        safe(&job.name),
        safe(&job.version),
        job.event
    );
    let _ = writeln!(e, "ringfence error code {code}");
    let _ = writeln!(
        e,
        "ringfence error path {}",
        safe(&job.dir.display().to_string())
    );
    let _ = writeln!(e, "ringfence error command failed");
    let _ = writeln!(e, "ringfence error command sh -c {}", safe(&job.command));
    if o.outcome().is_some_and(|x| x.timed_out) {
        let _ = writeln!(
            e,
            "ringfence error the script timed out and its sandbox was killed"
        );
    }
    if let Ok(x) = &o.executed {
        for stream in [&x.stdout, &x.stderr] {
            for line in String::from_utf8_lossy(stream).lines() {
                let _ = writeln!(e, "ringfence error {}", safe(line));
            }
        }
    }
}

/// The differences between replay modes (empty when there was one mode).
pub fn replay_differences(modes: usize, diffs: &[Difference]) -> String {
    let mut text = String::new();
    if modes > 1 {
        if diffs.is_empty() {
            text.push_str("ringfence replay: the same behaviour in every mode\n");
        } else {
            text.push_str("ringfence replay: behaviour that differed between modes:\n");
            for d in diffs {
                text.push_str(&format!(
                    "  only in {:<4} {}  {}{}\n",
                    d.only_in,
                    terminal_safe(&d.package),
                    d.severity
                        .map(|s| format!("[{}] ", s.as_str()))
                        .unwrap_or_default(),
                    terminal_safe(&d.summary)
                ));
            }
        }
    }
    text
}

/// The findings catalogue, as Markdown or one line per code.
pub fn findings_catalogue(markdown: bool) -> String {
    use crate::findings::catalog;
    if markdown {
        return catalog::markdown();
    }
    catalog::RULES
        .iter()
        .map(|r| {
            format!(
                "{:<27} {:<8} {:<19} {}\n",
                r.code.as_str(),
                r.severity.as_str(),
                r.kind.as_str(),
                r.meaning
            )
        })
        .collect()
}

/// `doctor`'s table.
pub fn doctor(facts: &KernelFacts, userns: &str, tier: &str, detail: &str) -> String {
    let landlock = match &facts.landlock_abi {
        Ok(abi) => format!(
            "ABI {abi} (ringfence pins ABI {})",
            crate::sandbox::landlock::PINNED_ABI_NUMBER
        ),
        Err(e) => format!("unavailable: {e}"),
    };
    format!(
        "kernel            {}\nuser namespaces   {userns}\nlandlock          {landlock}\nseccomp           filters: {}; user notification: {}\nisolation tier    {tier}: {detail}\n",
        facts.release,
        if facts.seccomp_actions.is_some() {
            "yes"
        } else {
            "unknown"
        },
        if facts.user_notif() { "yes" } else { "no" }
    )
}

/// The terminal as a pipeline listener: npm's banner before a foreground script takes it
/// (foreground scripts are the user's own root scripts; the banner is npm's, byte for byte).
#[derive(Debug, Default, Clone, Copy)]
pub struct Terminal;

impl Events for Terminal {
    fn script_starting(&self, job: &Job) {
        if job.foreground {
            let mut out = std::io::stdout().lock();
            let _ = write!(
                out,
                "\n> {}@{} {}\n> {}\n\n",
                job.name, job.version, job.event, job.command
            );
            let _ = out.flush();
        }
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
