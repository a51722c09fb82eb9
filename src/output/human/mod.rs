//! What a person reads on the terminal, one file per kind: the install summary (`summary.rs`),
//! what one script run prints as it happens (`script.rs`: notes after `run`, a failed script's
//! dump, npm's banner), warnings and errors with their hints (`diagnostics.rs`), and the fixed
//! listings of `replay`, `findings` and `doctor` (`tables.rs`). Every untrusted string goes
//! through [`terminal_safe`]; colour and `--quiet` are a [`Style`].

use crate::findings::Severity;

mod diagnostics;
mod script;
mod summary;
mod tables;

pub use diagnostics::{error, error_chain, policy_warnings, report_warnings, warning};
pub use script::{Terminal, run_notes, script_failure};
pub use summary::{summary, summary_styled};
pub use tables::{doctor, findings_catalogue, replay_differences};

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
