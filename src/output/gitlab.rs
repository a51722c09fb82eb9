//! GitLab Code Quality (`--gitlab-codequality FILE`): the JSON array GitLab's code-quality
//! widget reads. One entry per finding, at the dependency's line in `package-lock.json`, with a
//! fingerprint stable across runs (the SARIF one: code, package, normalised target).
//!
//! Severity → GitLab: critical → `blocker`, high → `critical`, medium → `major`, low → `minor`,
//! info → `info`.

use std::path::Path;

use serde_json::{Value, json};

use crate::findings::Severity;
use crate::report::Report;

/// GitLab's severity for ours.
pub fn severity(s: Severity) -> &'static str {
    match s {
        Severity::Critical => "blocker",
        Severity::High => "critical",
        Severity::Medium => "major",
        Severity::Low => "minor",
        Severity::Info => "info",
    }
}

/// The Code Quality report for `report`; `project` holds `package-lock.json`.
pub fn log(report: &Report, project: Option<&Path>) -> Value {
    // The SARIF log has the locations and fingerprints already: one source of truth.
    let sarif = super::sarif::log(report, project);
    let mut out = Vec::new();
    let results = sarif["runs"][0]["results"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let findings = report.runs.iter().flat_map(|r| r.findings.iter());
    for (r, f) in results.iter().zip(findings) {
        let line = r["locations"][0]["physicalLocation"]["region"]["startLine"]
            .as_u64()
            .unwrap_or(1);
        out.push(json!({
            "description": r["message"]["text"],
            "check_name": f.code.as_str(),
            "fingerprint": r["partialFingerprints"]["ringfence/v1"],
            "severity": severity(f.severity),
            "location": { "path": "package-lock.json", "lines": { "begin": line } },
        }));
    }
    Value::Array(out)
}

/// Write it atomically.
pub fn write(report: &Report, project: Option<&Path>, path: &Path) -> std::io::Result<()> {
    let text = serde_json::to_vec_pretty(&log(report, project)).map_err(std::io::Error::other)?;
    crate::util::write_atomic(path, &text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::findings::{Code, Finding};
    use crate::report::tests::run;

    #[test]
    fn one_entry_per_finding_with_gitlab_severities() {
        let findings = vec![
            Finding::new(Code::DecoyRead, "read", "/h/.npmrc").severity(Severity::High),
            Finding::new(Code::Survivor, "s", "pid 3").severity(Severity::Critical),
        ];
        let report = Report::new(vec![run("p", "install", "ok", findings)]);
        let v = log(&report, None);
        let a = v.as_array().unwrap();
        assert_eq!(a.len(), 2);
        assert_eq!(a[0]["check_name"], "decoy-read");
        assert_eq!(a[0]["severity"], "critical");
        assert_eq!(a[1]["severity"], "blocker");
        assert_eq!(a[0]["location"]["path"], "package-lock.json");
        assert!(a[0]["fingerprint"].as_str().is_some_and(|f| f.len() == 32));
        assert!(
            a[0]["description"]
                .as_str()
                .unwrap()
                .contains("p@1.0.0 install")
        );
    }
}
