//! Edit a project's `ringfence.toml` in place for `ringfence allow`: comments, order and
//! formatting of everything else are kept (`toml_edit`); the result is checked like any
//! project file before it is written.

use super::{PolicyError, file};

/// One allowance for one package.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Allow {
    /// Package name.
    pub package: String,
    /// Project-relative paths to add to `write` (kept when already there).
    pub write: Vec<String>,
    /// A wall-clock limit for the package's scripts.
    pub timeout: Option<String>,
    /// Why (required with `write` unless the section already has one).
    pub reason: Option<String>,
}

/// `text` (the file, `None` when there is none yet) with `allow` applied, and one line per
/// change made (empty when the file already allowed all of it).
pub fn apply(text: Option<&str>, allow: &Allow) -> Result<(String, Vec<String>), PolicyError> {
    let name = super::PROJECT_FILE.to_string();
    let mut doc: toml_edit::DocumentMut = match text {
        Some(t) => t.parse().map_err(|e: toml_edit::TomlError| {
            PolicyError::Invalid(vec![format!("{name}: {e}")])
        })?,
        None => {
            let mut d = toml_edit::DocumentMut::new();
            d["version"] = toml_edit::value(i64::from(file::CURRENT_VERSION));
            d
        }
    };
    if let Some(t) = &allow.timeout {
        if file::parse_duration_ms(t).is_none() {
            return Err(PolicyError::Invalid(vec![format!(
                "--timeout `{t}` is not a duration (e.g. \"90s\", \"30m\")"
            )]));
        }
    }
    let mut changes = Vec::new();
    let header = format!("[package.{:?}]", allow.package);
    let packages = doc
        .entry("package")
        .or_insert_with(|| {
            let mut t = toml_edit::Table::new();
            t.set_implicit(true);
            toml_edit::Item::Table(t)
        })
        .as_table_mut()
        .ok_or_else(|| PolicyError::Invalid(vec![format!("{name}: `package` is not a table")]))?;
    let section = packages
        .entry(&allow.package)
        .or_insert_with(|| toml_edit::Item::Table(toml_edit::Table::new()))
        .as_table_mut()
        .ok_or_else(|| PolicyError::Invalid(vec![format!("{name}: `{header}` is not a table")]))?;
    if !allow.write.is_empty() {
        let list = section
            .entry("write")
            .or_insert_with(|| toml_edit::value(toml_edit::Array::new()))
            .as_array_mut()
            .ok_or_else(|| {
                PolicyError::Invalid(vec![format!("{name}: `{header}` write is not an array")])
            })?;
        for w in &allow.write {
            if !list.iter().any(|v| v.as_str() == Some(w.as_str())) {
                list.push(w.as_str());
                changes.push(format!("{header} write += {w:?}"));
            }
        }
    }
    if let Some(t) = &allow.timeout {
        if section.get("timeout").and_then(|v| v.as_str()) != Some(t.as_str()) {
            section["timeout"] = toml_edit::value(t.as_str());
            changes.push(format!("{header} timeout = {t:?}"));
        }
    }
    match &allow.reason {
        Some(r) if section.get("reason").and_then(|v| v.as_str()) != Some(r.as_str()) => {
            section["reason"] = toml_edit::value(r.as_str());
            changes.push(format!("{header} reason = {r:?}"));
        }
        _ => {}
    }
    let out = doc.to_string();
    // The result must be a valid project file (paths inside the project, a reason for every
    // write allowance, the format version), or nothing is written.
    super::check_project_text(&name, &out)?;
    Ok((out, changes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn husky() -> Allow {
        Allow {
            package: "husky".into(),
            write: vec![".git/hooks/".into()],
            timeout: None,
            reason: Some("installs the git hooks".into()),
        }
    }

    #[test]
    fn a_new_file_gets_the_version_and_the_section() {
        let (text, changes) = apply(None, &husky()).unwrap();
        assert!(text.starts_with("version = 1\n"), "{text}");
        assert!(
            text.contains(
                "[package.husky]\nwrite = [\".git/hooks/\"]\nreason = \"installs the git hooks\"\n"
            ),
            "{text}"
        );
        assert_eq!(changes.len(), 2, "{changes:?}");
    }

    #[test]
    fn comments_order_and_other_sections_are_kept() {
        let before = "# team policy\nversion = 1\n\n# the hooks\n[package.\"husky\"]\nwrite = [\"a/\"] # keep\nreason = \"old\"\n\n[package.other]\ntimeout = \"30m\"\n";
        let (text, changes) = apply(Some(before), &husky()).unwrap();
        assert!(
            text.starts_with("# team policy\nversion = 1\n\n# the hooks\n[package.\"husky\"]\n"),
            "{text}"
        );
        assert!(text.contains("write = [\"a/\", \".git/hooks/\"]"), "{text}");
        assert!(
            text.contains("[package.other]\ntimeout = \"30m\"\n"),
            "{text}"
        );
        assert_eq!(changes.len(), 2, "{changes:?}");
        // Applying it again changes nothing.
        let (again, none) = apply(Some(&text), &husky()).unwrap();
        assert_eq!(again, text);
        assert!(none.is_empty(), "{none:?}");
    }

    #[test]
    fn invalid_allowances_are_refused_with_the_rule() {
        let mut a = husky();
        a.write = vec!["../outside".into()];
        let e = apply(None, &a).unwrap_err().to_string();
        assert!(e.contains("relative to the project root"), "{e}");
        let mut a = husky();
        a.reason = None;
        let e = apply(None, &a).unwrap_err().to_string();
        assert!(e.contains("reason"), "{e}");
        let mut a = husky();
        a.write.clear();
        a.timeout = Some("soon".into());
        assert!(apply(None, &a).is_err());
        assert!(apply(Some("version = 1\npackage = 3\n"), &husky()).is_err());
    }

    #[test]
    fn a_timeout_alone_needs_no_reason() {
        let a = Allow {
            package: "better-sqlite3".into(),
            timeout: Some("30m".into()),
            ..Allow::default()
        };
        let (text, _) = apply(Some("version = 1\n"), &a).unwrap();
        assert!(
            text.contains("[package.better-sqlite3]\ntimeout = \"30m\"\n"),
            "{text}"
        );
    }
}
