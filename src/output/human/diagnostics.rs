//! Warnings and errors on stderr: `warning[code]: …` with its hint, profile and report
//! warnings each once, and an error with its causes and its hint.

use std::io::Write as _;

use super::terminal_safe;
use crate::error::RunError;
use crate::policy::Warning;
use crate::report::ReportWarning;

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
