//! Many findings alike become one: a script that starts a thousand survivors, or looks up a
//! thousand tunnel names, gets one finding with the count, not a thousand lines. Findings are
//! alike when they have the same code and their targets the same pattern (digit runs and long
//! encoded labels or path segments replaced by placeholders).

use std::collections::BTreeMap;

use super::Finding;

/// More findings alike than this are folded into one.
pub const FOLD_ABOVE: usize = 8;

/// The pattern of a target: runs of digits become `N`; a label or path segment of 12 characters
/// or more mixing letters and digits (an encoded payload, a random name) becomes `*`.
pub fn pattern(target: &str) -> String {
    let mut out = String::with_capacity(target.len());
    let mut segment = String::new();
    let flush = |segment: &mut String, out: &mut String| {
        let encoded = segment.len() >= 12
            && segment.bytes().any(|b| b.is_ascii_digit())
            && segment.bytes().any(|b| b.is_ascii_alphabetic())
            && segment
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if encoded {
            out.push('*');
        } else {
            let mut digits = false;
            for c in segment.chars() {
                if c.is_ascii_digit() {
                    if !digits {
                        out.push('N');
                    }
                    digits = true;
                } else {
                    digits = false;
                    out.push(c);
                }
            }
        }
        segment.clear();
    };
    for c in target.chars() {
        if matches!(c, '.' | '/' | ':' | ' ' | '(' | ')' | '=' | ',') {
            flush(&mut segment, &mut out);
            out.push(c);
        } else {
            segment.push(c);
        }
    }
    flush(&mut segment, &mut out);
    out
}

/// Fold each group of more than [`FOLD_ABOVE`] findings with the same code and target pattern
/// into its first (most severe, then earliest), which carries the count, the pattern as its
/// target and a few of the targets. Smaller groups are left as they are. Order is kept.
pub fn fold(findings: Vec<Finding>) -> Vec<Finding> {
    let mut groups: BTreeMap<(crate::findings::Code, String), Vec<usize>> = BTreeMap::new();
    for (i, f) in findings.iter().enumerate() {
        groups
            .entry((f.code, pattern(&f.target)))
            .or_default()
            .push(i);
    }
    let mut fold_into: BTreeMap<usize, (String, Vec<usize>)> = BTreeMap::new();
    let mut folded = vec![false; findings.len()];
    for ((_, pat), members) in groups {
        if members.len() <= FOLD_ABOVE {
            continue;
        }
        let Some(&first) = members.iter().min_by(|a, b| {
            let (fa, fb) = (&findings[**a], &findings[**b]);
            fb.severity.cmp(&fa.severity).then(
                fa.at_unix_ms
                    .unwrap_or(u64::MAX)
                    .cmp(&fb.at_unix_ms.unwrap_or(u64::MAX)),
            )
        }) else {
            continue;
        };
        for &m in &members {
            folded[m] = m != first;
        }
        fold_into.insert(first, (pat, members));
    }
    let mut out = Vec::with_capacity(findings.len());
    let all = findings.clone();
    for (i, mut f) in findings.into_iter().enumerate() {
        if folded[i] {
            continue;
        }
        if let Some((pat, members)) = fold_into.get(&i) {
            let n = members.len();
            let severity = members.iter().map(|m| all[*m].severity).max();
            let examples: Vec<&str> = members
                .iter()
                .take(3)
                .map(|m| all[*m].target.as_str())
                .collect();
            f.summary = format!("{} (×{n}: {} more like it)", f.summary, n - 1);
            let note = format!(
                "{n} findings `{}` with targets like `{pat}`, e.g. {}",
                f.code.as_str(),
                examples.join(", ")
            );
            f.detail = Some(match f.detail.take() {
                Some(d) => format!("{d}; {note}"),
                None => note,
            });
            f.target = pat.clone();
            if let Some(s) = severity {
                f.severity = s;
            }
        }
        out.push(f);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::findings::{Code, Severity};

    #[test]
    fn patterns() {
        assert_eq!(pattern("pid 1234 (parent 7)"), "pid N (parent N)");
        assert_eq!(
            pattern("6e706d5f41624364.1.x.attacker.test"),
            "*.N.x.attacker.test"
        );
        assert_eq!(
            pattern("/p/node_modules/y/index.js"),
            "/p/node_modules/y/index.js"
        );
    }

    #[test]
    fn many_alike_become_one_with_a_count() {
        let mut v: Vec<Finding> = (0..1013u64)
            .map(|i| {
                Finding::new(
                    Code::Survivor,
                    format!("survivor {i}"),
                    format!("pid {i} (parent 2)"),
                )
                .at(Some(100 + i))
            })
            .collect();
        v.push(Finding::new(Code::GitPush, "push", "git push").at(Some(5)));
        for i in 0..3 {
            v.push(Finding::new(Code::DnsLookup, "dns", format!("a{i}.test")).at(Some(6)));
        }
        let out = fold(v);
        assert_eq!(out.len(), 1 + 1 + 3);
        let s = out.iter().find(|f| f.code == Code::Survivor).unwrap();
        assert!(s.summary.contains("×1013"), "{}", s.summary);
        assert_eq!(s.target, "pid N (parent N)");
        assert_eq!(s.at_unix_ms, Some(100));
        assert_eq!(s.severity, Severity::High);
    }
}
