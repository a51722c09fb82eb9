//! GitHub Actions: workflow-command annotations for findings (pointing at the dependency's line
//! in `package-lock.json`) and a Markdown job summary for `$GITHUB_STEP_SUMMARY`. GitHub shows
//! at most 10 annotations of each kind per step and 1 MiB of summary, so both are capped, most
//! severe first. Every value from the report is escaped, so a package cannot inject workflow
//! commands.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use crate::findings::Severity;
use crate::report::Report;

/// Annotations GitHub shows per kind (error, warning, notice) and step.
const PER_KIND: usize = 10;
/// The job summary's limit, with room for other steps.
const SUMMARY_BYTES: usize = 512 << 10;

/// Escape a workflow-command message (`%`, CR, LF).
pub fn message(s: &str) -> String {
    s.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// Escape a workflow-command property value (also `:` and `,`).
fn property(s: &str) -> String {
    message(s).replace(':', "%3A").replace(',', "%2C")
}

/// A line of Markdown table text: no pipes, no newlines, no HTML.
fn cell(s: &str) -> String {
    crate::output::terminal_safe(s)
        .replace('|', "\\|")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace(['\n', '\r'], " ")
}

fn command(s: Severity) -> &'static str {
    match s {
        Severity::Critical | Severity::High => "error",
        Severity::Medium => "warning",
        Severity::Low | Severity::Info => "notice",
    }
}

/// Line numbers of package entries in the project's lockfile.
fn lock_lines(project: Option<&Path>) -> BTreeMap<String, usize> {
    let text = project
        .and_then(|p| std::fs::read_to_string(p.join("package-lock.json")).ok())
        .unwrap_or_default();
    super::sarif::lock_lines(&text)
}

/// `::error file=…,line=…,title=…::…` for every finding at or above `threshold`, at most
/// 10 per kind (what GitHub shows), most severe first; a last notice says how many were left out.
pub fn annotations(report: &Report, project: Option<&Path>, threshold: Severity) -> String {
    let lines = lock_lines(project);
    let mut all: Vec<(&crate::report::ScriptRun, &crate::findings::Finding)> = report
        .runs
        .iter()
        .flat_map(|r| r.findings.iter().map(move |f| (r, f)))
        .filter(|(_, f)| f.severity >= threshold)
        .collect();
    all.sort_by_key(|(_, f)| std::cmp::Reverse(f.severity));
    let mut shown: BTreeMap<&str, usize> = BTreeMap::new();
    let mut left = 0usize;
    let mut out = String::new();
    for (run, f) in all {
        let kind = command(f.severity);
        let n = shown.entry(kind).or_default();
        if *n >= PER_KIND {
            left += 1;
            continue;
        }
        *n += 1;
        let who = run.package.as_ref().map_or_else(
            || run.command.join(" "),
            |p| format!("{}@{} {}", p.name, p.version, p.event),
        );
        let mut props = vec![format!(
            "title={}",
            property(&format!("ringfence {}: {who}", f.code.as_str()))
        )];
        if let Some(p) = &run.package {
            props.insert(0, "file=package-lock.json".to_string());
            if let Some(line) = lines.get(&p.location) {
                props.insert(1, format!("line={line}"));
            }
        }
        let _ = writeln!(
            out,
            "::{kind} {}::{}",
            props.join(","),
            message(&format!("[{}] {}", f.severity.as_str(), f.summary))
        );
    }
    if left > 0 {
        let _ = writeln!(
            out,
            "::notice title=ringfence::{}",
            message(&format!(
                "{left} more finding(s) not annotated (GitHub shows {PER_KIND} per kind); see the job summary and the report"
            ))
        );
    }
    out
}

/// The Markdown job summary: tier, totals, one row per script, the findings at or above
/// `threshold`. Bounded to well under GitHub's 1 MiB.
pub fn step_summary(report: &Report, threshold: Severity) -> String {
    let mut out = String::from("## ringfence\n\n");
    let tier = report
        .runs
        .iter()
        .find_map(|r| r.enforcement.tier.clone())
        .unwrap_or_else(|| "full".into());
    let mut counts: BTreeMap<Severity, usize> = BTreeMap::new();
    for f in report.runs.iter().flat_map(|r| &r.findings) {
        *counts.entry(f.severity).or_default() += 1;
    }
    let totals: Vec<String> = counts
        .iter()
        .rev()
        .map(|(s, n)| format!("{n} {}", s.as_str()))
        .collect();
    let _ = writeln!(
        out,
        "{} lifecycle script(s), each in its own sandbox ({tier} tier); findings: {}\n",
        report.runs.len(),
        if totals.is_empty() {
            "none".to_string()
        } else {
            totals.join(", ")
        }
    );
    if let Some(e) = &report.error {
        let _ = writeln!(out, "**ringfence failed:** {}\n", cell(&e.message));
    }
    out.push_str("| script | outcome | worst finding |\n|---|---|---|\n");
    for (rows, r) in report.runs.iter().enumerate() {
        if out.len() > SUMMARY_BYTES {
            let _ = writeln!(out, "| … {} more | | |", report.runs.len() - rows);
            break;
        }
        let (who, outcome) = match &r.package {
            Some(p) => (
                format!("{}@{} {}", p.name, p.version, p.event),
                p.outcome.as_str(),
            ),
            None => (r.command.join(" "), "ran"),
        };
        let outcome = if outcome == "ok" && !r.refused.is_empty() {
            "partial"
        } else {
            outcome
        };
        let worst = r
            .findings
            .iter()
            .max_by_key(|f| f.severity)
            .map(|f| format!("{} `{}`", f.severity.as_str(), f.code.as_str()))
            .unwrap_or_default();
        let _ = writeln!(out, "| {} | {outcome} | {worst} |", cell(&who));
    }
    let notable: Vec<_> = report
        .runs
        .iter()
        .flat_map(|r| r.findings.iter().map(move |f| (r, f)))
        .filter(|(_, f)| f.severity >= threshold)
        .collect();
    if !notable.is_empty() {
        out.push_str("\n### Findings\n\n| severity | code | script | what |\n|---|---|---|---|\n");
        for (r, f) in notable {
            if out.len() > SUMMARY_BYTES {
                out.push_str("| … | | | more in the JSON report |\n");
                break;
            }
            let who = r.package.as_ref().map_or_else(
                || r.command.join(" "),
                |p| format!("{}@{} {}", p.name, p.version, p.event),
            );
            let _ = writeln!(
                out,
                "| {} | `{}` | {} | {} |",
                f.severity.as_str(),
                f.code.as_str(),
                cell(&who),
                cell(&f.summary)
            );
        }
    }
    out
}

/// Each script's captured output inside a collapsible `::group::` of the GitHub log, as it
/// finishes. What a script printed can never act as a workflow command: it is wrapped in
/// `::stop-commands::` with a token the script cannot know.
#[derive(Debug)]
pub struct Groups {
    token: String,
}

/// Output beyond this per script is cut (the full output stays available with `--report`'s
/// failure details and `-v`).
const GROUP_BYTES: usize = 64 << 10;

impl Default for Groups {
    fn default() -> Self {
        use std::hash::{BuildHasher, Hasher};
        // RandomState is seeded from the OS's randomness per process.
        let mut token = String::new();
        for i in 0..2u8 {
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u8(i);
            let _ = write!(token, "{:016x}", h.finish());
        }
        Groups { token }
    }
}

impl Groups {
    /// The group for one finished script: header, its output with commands stopped, end.
    pub fn group(&self, o: &crate::pipeline::ScriptOutcome) -> String {
        let job = &o.job;
        if let Some(c) = &o.cached {
            return format!(
                "::group::{}@{} {} (cached)\nrestored from the build cache entry {}: not run\n::endgroup::\n",
                message(&job.name),
                message(&job.version),
                message(&job.event),
                c.key
            );
        }
        let empty: &[u8] = &[];
        let streams = match &o.executed {
            Ok(x) => [x.stdout.as_slice(), x.stderr.as_slice()],
            Err(_) => [empty, empty],
        };
        self.text(
            &format!("{}@{} {}", job.name, job.version, job.event),
            o.failed(),
            streams,
        )
    }

    fn text(&self, who: &str, failed: bool, streams: [&[u8]; 2]) -> String {
        let status = if failed { "failed" } else { "ok" };
        let mut out = format!("::group::{} ({status})\n", message(who));
        let _ = writeln!(out, "::stop-commands::{}", self.token);
        let mut shown = 0usize;
        let mut cut = false;
        'streams: for stream in streams {
            for line in String::from_utf8_lossy(stream).lines() {
                if shown + line.len() > GROUP_BYTES {
                    let _ = writeln!(out, "[ringfence: output cut at {GROUP_BYTES} bytes]");
                    cut = true;
                    break 'streams;
                }
                shown += line.len() + 1;
                let _ = writeln!(out, "{}", super::human::terminal_safe(line));
            }
        }
        if shown == 0 && !cut {
            out.push_str("(no output)\n");
        }
        let _ = writeln!(out, "::{}::", self.token);
        out.push_str("::endgroup::\n");
        out
    }
}

impl crate::pipeline::Events for Groups {
    fn script_finished(&self, o: &crate::pipeline::ScriptOutcome) {
        use std::io::Write as _;
        // Foreground scripts (the project's own) printed to the log as they ran.
        if o.job.foreground {
            return;
        }
        let text = self.group(o);
        let mut stdout = std::io::stdout().lock();
        let _ = stdout.write_all(text.as_bytes());
        let _ = stdout.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::findings::{Code, Finding};
    use crate::report::tests::run;

    #[test]
    fn script_output_in_a_group_cannot_run_workflow_commands() {
        let g = Groups::default();
        let other = Groups::default();
        assert_eq!(g.token.len(), 32);
        assert_ne!(g.token, other.token, "the token is not predictable");
        let text = g.text(
            "evil@1.0.0 postinstall",
            false,
            [
                b"building\n::error::pwned\n::endgroup::\n",
                b"\x1b[2Kwarn\n",
            ],
        );
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "::group::evil@1.0.0 postinstall (ok)");
        assert_eq!(lines[1], format!("::stop-commands::{}", g.token));
        let resume = lines
            .iter()
            .position(|l| *l == format!("::{}::", g.token))
            .unwrap();
        // Every line the script printed is between the stop and the resume.
        assert!(lines[2..resume].contains(&"::error::pwned"), "{text}");
        assert!(lines[2..resume].contains(&"::endgroup::"), "{text}");
        assert_eq!(lines[resume + 1..], ["::endgroup::"]);
        assert!(!text.contains('\x1b'), "{text}");
        let big = vec![b'a'; 200_000];
        let cut = g.text("big@1.0.0 install", true, [&big, b""]);
        assert!(
            cut.len() < 70_000 && cut.contains("output cut"),
            "{}",
            cut.len()
        );
        assert!(!cut.contains("(no output)"));
    }

    #[test]
    fn values_cannot_inject_workflow_commands() {
        let evil = "x\n::error::pwned%0A";
        let mut r = run(evil, "postinstall", "ok", vec![]);
        r.findings.push(
            Finding::new(Code::DecoyRead, format!("read {evil}"), "/x").severity(Severity::High),
        );
        let report = Report::new(vec![r]);
        let text = annotations(&report, None, Severity::Medium);
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(text.starts_with("::error "), "{text}");
        assert!(!text.contains("\n::error::pwned"), "{text}");
        assert!(text.contains("%250A"), "{text}");
        let summary = step_summary(&report, Severity::Medium);
        assert!(summary.lines().all(|l| !l.starts_with("::")), "{summary}");
    }

    #[test]
    fn annotations_are_capped_per_kind_most_severe_first() {
        let findings: Vec<Finding> = (0..15)
            .map(|i| {
                Finding::new(Code::Survivor, format!("s{i}"), format!("pid {i}")).severity(
                    if i < 3 {
                        Severity::Critical
                    } else {
                        Severity::High
                    },
                )
            })
            .collect();
        let report = Report::new(vec![run("p", "install", "ok", findings)]);
        let text = annotations(&report, None, Severity::Medium);
        let errors = text.lines().filter(|l| l.starts_with("::error")).count();
        assert_eq!(errors, PER_KIND, "{text}");
        assert!(
            text.lines().next().unwrap().contains("[critical]"),
            "{text}"
        );
        assert!(text.contains("5 more finding(s)"), "{text}");
    }
}
