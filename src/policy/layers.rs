//! Layering policy files with provenance: the built-in default (or `--profile FILE`), then the
//! project's `ringfence.toml`. Tables merge key by key, lists add the entries they do not have
//! yet, any other value replaces. Every value remembers the file it came from, for
//! `ringfence config`.

use std::collections::BTreeMap;
use std::path::Path;

use super::{PolicyError, ProfileFile};

/// One layer: where it came from and its parsed TOML.
#[derive(Debug, Clone)]
pub struct Layer {
    /// `built-in default`, a profile path, or the project file's path.
    pub source: String,
    /// Its TOML.
    pub table: toml::Table,
}

/// The merged policy and where each value came from.
#[derive(Debug, Clone)]
pub struct Layered {
    /// The result, checked against the schema.
    pub profile: ProfileFile,
    /// Dotted key (`limits.timeout`, `package."husky".write`) → each value's rendering and
    /// source; a list has one entry per element (an empty list one entry with an empty
    /// rendering).
    pub origins: BTreeMap<String, Vec<(String, String)>>,
    /// The project file, when one was layered.
    pub project_file: Option<String>,
}

impl Layer {
    /// Parse `text` (`source` for messages) as a layer.
    pub fn parse(source: &str, text: &str) -> Result<Layer, PolicyError> {
        let table: toml::Table = toml::from_str(text).map_err(|e| PolicyError::ParseProfile {
            name: source.to_string(),
            source: Box::new(e),
        })?;
        Ok(Layer {
            source: source.to_string(),
            table,
        })
    }
}

/// Merge `layers` in order (later wins) and check the result.
pub fn merge(layers: &[Layer]) -> Result<Layered, PolicyError> {
    let mut merged = toml::Table::new();
    let mut origins = BTreeMap::new();
    for layer in layers {
        merge_table(&mut merged, &layer.table, "", &layer.source, &mut origins);
    }
    let text = toml::to_string(&merged).expect("a TOML table serialises");
    let name = layers
        .iter()
        .map(|l| l.source.as_str())
        .collect::<Vec<_>>()
        .join(" + ");
    let profile = super::parse_checked_profile(&name, &text)?;
    Ok(Layered {
        profile,
        origins,
        project_file: None,
    })
}

fn merge_table(
    into: &mut toml::Table,
    from: &toml::Table,
    prefix: &str,
    source: &str,
    origins: &mut BTreeMap<String, Vec<(String, String)>>,
) {
    for (key, value) in from {
        let path = if prefix.is_empty() {
            key_segment(key)
        } else {
            format!("{prefix}.{}", key_segment(key))
        };
        match (into.get_mut(key), value) {
            (Some(toml::Value::Table(a)), toml::Value::Table(b)) => {
                merge_table(a, b, &path, source, origins);
            }
            (Some(toml::Value::Array(a)), toml::Value::Array(b)) => {
                for v in b {
                    if !a.contains(v) {
                        a.push(v.clone());
                        origins
                            .entry(path.clone())
                            .or_default()
                            .push((v.to_string(), source.to_string()));
                    }
                }
            }
            (_, toml::Value::Table(b)) => {
                let mut t = toml::Table::new();
                merge_table(&mut t, b, &path, source, origins);
                into.insert(key.clone(), toml::Value::Table(t));
            }
            (_, toml::Value::Array(b)) => {
                // An empty list still has a source: one entry with an empty rendering.
                let mut each: Vec<(String, String)> = b
                    .iter()
                    .map(|v| (v.to_string(), source.to_string()))
                    .collect();
                if each.is_empty() {
                    each.push((String::new(), source.to_string()));
                }
                origins.insert(path.clone(), each);
                into.insert(key.clone(), value.clone());
            }
            (_, v) => {
                origins.insert(path, vec![(v.to_string(), source.to_string())]);
                into.insert(key.clone(), v.clone());
            }
        }
    }
}

/// A key as written in a dotted path: bare when it can be, quoted otherwise.
fn key_segment(key: &str) -> String {
    if !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        key.to_string()
    } else {
        format!("{key:?}")
    }
}

/// The built-in default or `--profile FILE`, then the project's `ringfence.toml` when `project`
/// has one.
pub fn load(profile: Option<&Path>, project: Option<&Path>) -> Result<Layered, PolicyError> {
    let base = match profile {
        None => Layer::parse("built-in default", super::DEFAULT_PROFILE)?,
        Some(p) => {
            let text = std::fs::read_to_string(p).map_err(|source| PolicyError::ReadProfile {
                path: p.to_path_buf(),
                source,
            })?;
            Layer::parse(&p.display().to_string(), &text)?
        }
    };
    // The base alone must be a valid profile (its own errors name its own file).
    super::parse_checked_profile(
        &base.source,
        &toml::to_string(&base.table).unwrap_or_default(),
    )?;
    let mut layers = vec![base];
    let mut project_file = None;
    if let Some(root) = project {
        let path = root.join(super::PROJECT_FILE);
        match std::fs::symlink_metadata(&path) {
            Ok(m) if !m.file_type().is_file() => {
                return Err(PolicyError::Invalid(vec![format!(
                    "{}: not a regular file (a link or a directory) [policy-file-unusable]",
                    path.display()
                )]));
            }
            Ok(_) => {
                let name = path.display().to_string();
                let text =
                    std::fs::read_to_string(&path).map_err(|source| PolicyError::ReadProfile {
                        path: path.clone(),
                        source,
                    })?;
                // Alone, it must be a valid project file: errors name it and its line.
                super::check_project_text(&name, &text)?;
                layers.push(Layer::parse(&name, &text)?);
                project_file = Some(name);
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => return Err(PolicyError::ReadProfile { path, source }),
        }
    }
    let mut layered = merge(&layers)?;
    layered.project_file = project_file;
    Ok(layered)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn default() -> Layer {
        Layer::parse("built-in default", super::super::DEFAULT_PROFILE).unwrap()
    }

    #[test]
    fn a_project_file_adds_to_lists_and_replaces_values_with_provenance() {
        let project = Layer::parse(
            "/p/ringfence.toml",
            "version = 1\n[limits]\ntimeout = \"30m\"\n[env]\npass = [\"PATH\", \"SHARP_DIST_BASE_URL\"]\n[package.husky]\nwrite = [\".husky/\"]\n",
        )
        .unwrap();
        let l = merge(&[default(), project]).unwrap();
        assert_eq!(l.profile.limits.timeout.as_deref(), Some("30m"));
        assert_eq!(
            l.origins["limits.timeout"],
            vec![("\"30m\"".to_string(), "/p/ringfence.toml".to_string())]
        );
        assert_eq!(l.origins["limits.nproc"][0].1, "built-in default");
        let pass = &l.profile.env.pass;
        assert!(pass.contains(&"SHARP_DIST_BASE_URL".to_string()));
        assert_eq!(pass.iter().filter(|p| *p == "PATH").count(), 1);
        assert!(
            l.origins["env.pass"]
                .iter()
                .any(|(v, s)| v == "\"SHARP_DIST_BASE_URL\"" && s == "/p/ringfence.toml")
        );
        let husky = &l.profile.package["husky"];
        assert_eq!(
            husky.write,
            vec![".git/hooks/".to_string(), ".husky/".to_string()]
        );
        assert!(husky.reason.is_some(), "the default's reason stays");
    }

    #[test]
    fn unknown_keys_in_any_layer_are_errors_naming_it() {
        let e = load(None, None).map(|_| ()).err();
        assert!(e.is_none(), "{e:?}");
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("ringfence.toml"),
            "version = 1\n[limits]\ntimeuot = \"1m\"\n",
        )
        .unwrap();
        let e = load(None, Some(dir.path())).unwrap_err();
        let mut text = e.to_string();
        let mut cause = std::error::Error::source(&e);
        while let Some(c) = cause {
            text.push_str(&format!(": {c}"));
            cause = c.source();
        }
        assert!(
            text.contains("ringfence.toml") && text.contains("timeuot"),
            "{text}"
        );
        assert!(text.contains("line 3"), "{text}");
    }
}
