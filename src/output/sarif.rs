//! SARIF 2.1.0 for code-scanning tools: one run, `tool.driver.rules` from the findings catalogue,
//! one result per finding. A result points at the dependency's entry in `package-lock.json`
//! (the line of its `"node_modules/<name>"` key) and at its package directory.
//! `partialFingerprints` are built from the code, the package and a normalised target, never
//! from a pid, a time or a temporary path, so they stay stable across runs.
//!
//! Severity → level: critical and high → `error`, medium → `warning`, low and info → `note`.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{Value, json};

use crate::findings::catalog::RULES;
use crate::findings::{Finding, Severity};
use crate::report::{Report, ScriptRun};

/// The SARIF level of a severity.
pub fn level(s: Severity) -> &'static str {
    match s {
        Severity::Critical | Severity::High => "error",
        Severity::Medium => "warning",
        Severity::Low | Severity::Info => "note",
    }
}

/// Line numbers (1-based) of every package entry key in a lockfile's text.
pub(super) fn lock_lines(lock: &str) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for (i, line) in lock.lines().enumerate() {
        let t = line.trim_start();
        if let Some(rest) = t.strip_prefix('"') {
            if let Some((key, after)) = rest.split_once('"') {
                if after.trim_start().starts_with(": {") && !out.contains_key(key) {
                    out.insert(key.to_string(), i + 1);
                }
            }
        }
    }
    out
}

/// What of a target is the same from run to run: temporary directories, pids and digits of
/// generated names are replaced.
fn normalise(target: &str, project: &str) -> String {
    let t = if project.is_empty() {
        target.to_string()
    } else {
        target.replace(project, "<project>")
    };
    let mut out = String::with_capacity(t.len());
    let mut last_digit = false;
    for c in t.chars() {
        if c.is_ascii_digit() {
            if !last_digit {
                out.push('N');
            }
            last_digit = true;
        } else {
            out.push(c);
            last_digit = false;
        }
    }
    // Temporary directories of ringfence and the system differ per run.
    let tmp = std::env::temp_dir().display().to_string();
    match out.find(&format!("{tmp}/")) {
        Some(i) => {
            let rest = &out[i + tmp.len() + 1..];
            let tail = rest.split_once('/').map_or("", |(_, t)| t);
            format!("{}<tmp>/{tail}", &out[..i])
        }
        None => out,
    }
}

/// `write-refused` → `WriteRefused`: SARIF wants a rule's name readable and different from its id.
fn pascal(code: &str) -> String {
    code.split('-')
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect()
}

fn fingerprint(code: &str, package: &str, target: &str) -> String {
    crate::util::sha256_hex(format!("{code}\0{package}\0{target}").as_bytes())[..32].to_string()
}

fn result(
    run: &ScriptRun,
    f: &Finding,
    rule_index: usize,
    lines: &BTreeMap<String, usize>,
    project: &str,
) -> Value {
    let package = run.package.as_ref();
    let who = package.map_or_else(
        || run.command.join(" "),
        |p| format!("{}@{} {}", p.name, p.version, p.event),
    );
    let mut locations = Vec::new();
    if let Some(p) = package {
        let mut physical = json!({ "artifactLocation": { "uri": "package-lock.json" } });
        if let Some(line) = lines.get(&p.location) {
            physical["region"] = json!({ "startLine": line });
        }
        locations.push(json!({
            "physicalLocation": physical,
            "logicalLocations": [{
                "name": p.name,
                "fullyQualifiedName": format!("{}@{}", p.name, p.version),
                "kind": "package",
            }],
        }));
    }
    let target = normalise(&f.target, project);
    let name = package.map_or("", |p| p.name.as_str());
    let mut properties = json!({
        "severity": f.severity.as_str(),
        "kind": f.kind.as_str(),
        "target": target,
    });
    if let Some(p) = package {
        properties["package"] = json!(format!("{}@{}", p.name, p.version));
        properties["location"] = json!(p.location);
        properties["event"] = json!(p.event);
        properties["integrity"] = json!(p.integrity);
        properties["scriptSha256"] = json!(p.script_sha256);
        properties["outcome"] = json!(p.outcome);
    }
    if let Some(d) = &f.detail {
        properties["detail"] = json!(d);
    }
    json!({
        "ruleId": f.code.as_str(),
        "ruleIndex": rule_index,
        "level": level(f.severity),
        "message": { "text": format!("{who}: {}", f.summary) },
        "locations": locations,
        "partialFingerprints": {
            "ringfence/v1": fingerprint(f.code.as_str(), name, &target),
        },
        "properties": properties,
    })
}

/// The SARIF log of `report`; `project` is the directory holding `package-lock.json` (for the
/// result lines and to normalise targets), when there is one.
pub fn log(report: &Report, project: Option<&Path>) -> Value {
    let lock = project
        .and_then(|p| std::fs::read_to_string(p.join("package-lock.json")).ok())
        .unwrap_or_default();
    let lines = lock_lines(&lock);
    let project_text = project.map(|p| p.display().to_string()).unwrap_or_default();
    let rules: Vec<Value> = RULES
        .iter()
        .map(|r| {
            let mut rule = json!({
                "id": r.code.as_str(),
                "shortDescription": { "text": r.meaning },
                "fullDescription": { "text": r.meaning },
                "help": { "text": r.advice },
                "defaultConfiguration": { "level": level(r.severity) },
                "properties": { "kind": r.kind.as_str(), "severity": r.severity.as_str() },
            });
            // A readable name that is not the id (SARIF1001); one-word codes have none.
            let name = pascal(r.code.as_str());
            if !name.eq_ignore_ascii_case(r.code.as_str()) {
                rule["name"] = json!(name);
            }
            rule
        })
        .collect();
    let index = |code: &str| {
        RULES
            .iter()
            .position(|r| r.code.as_str() == code)
            .unwrap_or(0)
    };
    let results: Vec<Value> = report
        .runs
        .iter()
        .flat_map(|run| {
            run.findings
                .iter()
                .map(|f| result(run, f, index(f.code.as_str()), &lines, &project_text))
        })
        .collect();
    let mut run = json!({
        "tool": {
            "driver": {
                "name": "ringfence",
                "version": report.tool.version,
                "semanticVersion": report.tool.version,
                "rules": rules,
            }
        },
        "results": results,
        "columnKind": "unicodeCodePoints",
    });
    if let Some(p) = project {
        run["originalUriBaseIds"] = json!({
            "PROJECTROOT": { "uri": format!("file://{}/", p.display()) }
        });
        for r in run["results"].as_array_mut().into_iter().flatten() {
            for l in r["locations"].as_array_mut().into_iter().flatten() {
                l["physicalLocation"]["artifactLocation"]["uriBaseId"] = json!("PROJECTROOT");
            }
        }
    }
    if let Some(e) = &report.error {
        run["invocations"] = json!([{
            "executionSuccessful": false,
            "toolExecutionNotifications": [{
                "level": "error",
                "message": { "text": e.message },
            }],
        }]);
    } else {
        run["invocations"] = json!([{ "executionSuccessful": true }]);
    }
    json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [run],
    })
}

/// Write the SARIF log atomically.
pub fn write(report: &Report, project: Option<&Path>, path: &Path) -> std::io::Result<()> {
    let text = serde_json::to_vec_pretty(&log(report, project)).map_err(std::io::Error::other)?;
    crate::util::write_atomic(path, &text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lockfile_lines_and_stable_fingerprints() {
        let lock = "{\n  \"packages\": {\n    \"\": {\n    },\n    \"node_modules/a\": {\n      \"version\": \"1.0.0\"\n    }\n  }\n}\n";
        let lines = lock_lines(lock);
        assert_eq!(lines.get("node_modules/a"), Some(&5));
        let tmp = std::env::temp_dir().display().to_string();
        let a = normalise(&format!("{tmp}/ringfence-home-AbC1/.npmrc pid 12"), "/p");
        let b = normalise(&format!("{tmp}/ringfence-home-XyZ9/.npmrc pid 345"), "/p");
        assert_eq!(a, b);
        assert_eq!(
            normalise("/p/node_modules/x/out", "/p"),
            "<project>/node_modules/x/out"
        );
        assert_eq!(fingerprint("c", "p", &a), fingerprint("c", "p", &b));
        assert_eq!(level(Severity::High), "error");
        assert_eq!(level(Severity::Info), "note");
    }
}
