//! The fixed listings other commands print: `replay`'s differences between modes, the
//! `findings` catalogue and `doctor`'s table.

use super::terminal_safe;
use crate::doctor::KernelFacts;
use crate::report::Difference;

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
