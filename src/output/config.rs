//! `ringfence config`'s printers: the layered policy, one value per line with its source.

use std::fmt::Write as _;
use std::path::Path;

use crate::approvals::Lock;
use crate::policy::layers::Layered;

/// What `config` shows.
#[derive(Debug)]
pub struct View<'a> {
    /// The project root, when the current directory is in a project.
    pub project: Option<&'a Path>,
    /// The merged policy.
    pub layered: &'a Layered,
    /// The project's approvals.
    pub lock: Option<&'a Lock>,
}

/// The text form.
pub fn text(v: &View<'_>) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# project: {}",
        v.project
            .map_or("(none: not inside an npm project)".to_string(), |p| p
                .display()
                .to_string())
    );
    let _ = writeln!(
        out,
        "# policy file: {}",
        v.layered.project_file.as_deref().unwrap_or(
            "none (create ringfence.toml at the project root, or use `ringfence allow`)"
        )
    );
    for (key, values) in &v.layered.origins {
        if key == "description" {
            continue;
        }
        let items: Vec<&(String, String)> = values.iter().filter(|(v, _)| !v.is_empty()).collect();
        let is_list = values.len() != 1 || values[0].0.is_empty() || is_list_key(key);
        let value = if is_list {
            format!(
                "[{}]",
                items
                    .iter()
                    .map(|(v, _)| v.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        } else {
            values[0].0.clone()
        };
        // Sources in order of appearance, each with the entries it added after the first.
        let mut sources: Vec<(&str, Vec<&str>)> = Vec::new();
        for (val, src) in values {
            match sources.iter_mut().find(|(s, _)| s == src) {
                Some((_, vals)) => vals.push(val),
                None => sources.push((src, vec![val])),
            }
        }
        let source = sources
            .iter()
            .enumerate()
            .map(|(i, (src, vals))| {
                if i == 0 {
                    (*src).to_string()
                } else {
                    format!("{src} adds {}", vals.join(", "))
                }
            })
            .collect::<Vec<_>>()
            .join("; ");
        let _ = writeln!(
            out,
            "{} = {}  # {}",
            super::human::terminal_safe(key),
            super::human::terminal_safe(&value),
            super::human::terminal_safe(&source)
        );
    }
    match v.lock {
        Some(lock) => {
            let _ = writeln!(
                out,
                "# approvals: {} approves {} package(s): {}",
                crate::approvals::FILE,
                lock.packages.len(),
                lock.packages.keys().cloned().collect::<Vec<_>>().join(", ")
            );
        }
        None => {
            let _ = writeln!(
                out,
                "# approvals: none ({} is written by `ringfence approve`)",
                crate::approvals::FILE
            );
        }
    }
    out
}

fn is_list_key(key: &str) -> bool {
    ["fs.read-only", "fs.read-write", "env.pass"].contains(&key) || key.ends_with(".write")
}

/// The JSON form.
pub fn json(v: &View<'_>) -> String {
    let values: serde_json::Map<String, serde_json::Value> = v
        .layered
        .origins
        .iter()
        .map(|(k, vals)| {
            (
                k.clone(),
                serde_json::Value::Array(
                    vals.iter()
                        .map(|(value, source)| {
                            serde_json::json!({ "value": value, "source": source })
                        })
                        .collect(),
                ),
            )
        })
        .collect();
    let doc = serde_json::json!({
        "project": v.project,
        "policy_file": v.layered.project_file,
        "values": values,
        "profile": v.layered.profile,
        "approvals": v.lock.map(|l| l.packages.keys().cloned().collect::<Vec<_>>()),
    });
    serde_json::to_string_pretty(&doc).expect("the view serialises")
}
