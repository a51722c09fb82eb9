//! A package's `package.json`, as run-script sees it: scripts, the implicit `node-gyp rebuild`,
//! and the flattened `npm_package_*` variables.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

use super::{NpmError, read_json};

/// The parts of a manifest the replay needs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Manifest {
    /// `name` (may be absent for odd packages).
    pub name: Option<String>,
    /// `version`.
    pub version: Option<String>,
    /// `scripts`, string values only.
    pub scripts: BTreeMap<String, String>,
    /// `gypfile: false` opts out of the implicit `node-gyp rebuild`.
    pub gypfile_false: bool,
    /// `binding.gyp` is a regular file in the package root.
    pub has_binding_gyp: bool,
    /// The raw `config`, `engines` and `bin` (normalised) values for `npm_package_*`.
    pub config: Option<Value>,
    /// `engines`.
    pub engines: Option<Value>,
    /// `bin`, normalised to an object.
    pub bin: Option<Value>,
    /// `allowScripts` (root manifest only).
    pub allow_scripts: BTreeMap<String, bool>,
}

impl Manifest {
    /// Read `<dir>/package.json`.
    pub fn read(dir: &Path) -> Result<Self, NpmError> {
        let path = dir.join("package.json");
        let v = read_json(&path)?;
        let obj = v.as_object().ok_or_else(|| NpmError::Parse {
            path: path.clone(),
            message: "not a JSON object".into(),
        })?;
        let string = |k: &str| obj.get(k).and_then(Value::as_str).map(str::to_string);
        let scripts = obj
            .get("scripts")
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                    .collect()
            })
            .unwrap_or_default();
        let name = string("name");
        let bin = obj
            .get("bin")
            .and_then(|b| normalize_bin(b, name.as_deref()));
        let allow_scripts = obj
            .get("allowScripts")
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.as_bool()?)))
                    .collect()
            })
            .unwrap_or_default();
        let has_binding_gyp = std::fs::symlink_metadata(dir.join("binding.gyp"))
            .map(|m| m.file_type().is_file())
            .unwrap_or(false);
        Ok(Manifest {
            name,
            version: string("version"),
            scripts,
            gypfile_false: obj.get("gypfile") == Some(&Value::Bool(false)),
            has_binding_gyp,
            config: obj.get("config").cloned(),
            engines: obj.get("engines").cloned(),
            bin,
            allow_scripts,
        })
    }

    /// Use the package data npm has for a node it loaded from a lockfile rather than from the
    /// registry: only the lockfile's metadata keys (arborist `shrinkwrap.js` `pkgMetaKeys`:
    /// version, engines, bin, ...; name for aliases), so `npm_package_config_*` is absent. The
    /// scripts still come from `package.json` on disk, as arborist re-reads them.
    pub fn use_lockfile_meta(&mut self, entry: &Value, location_name: &str) {
        let name = entry
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or(location_name)
            .to_string();
        self.version = entry
            .get("version")
            .and_then(Value::as_str)
            .map(str::to_string);
        self.engines = entry.get("engines").cloned();
        self.bin = entry.get("bin").and_then(|b| normalize_bin(b, Some(&name)));
        self.config = None;
        self.name = Some(name);
    }

    /// The command for `event`, with npm's rules: only a non-empty string counts, and `install`
    /// falls back to `node-gyp rebuild` when neither `install` nor `preinstall` is set, `gypfile`
    /// is not `false` and `binding.gyp` is a regular file (`@npmcli/node-gyp` `isNodeGypPackage`).
    pub fn command(&self, event: &str) -> Option<String> {
        let get = |e: &str| self.scripts.get(e).filter(|s| !s.is_empty()).cloned();
        match get(event) {
            Some(c) => Some(c),
            None if event == "install"
                && get("preinstall").is_none()
                && !self.gypfile_false
                && self.has_binding_gyp =>
            {
                Some("node-gyp rebuild".into())
            }
            None => None,
        }
    }

    /// `npm_package_*` variables, as `@npmcli/run-script` `package-envs.js` makes them.
    pub fn package_env(&self, env: &mut BTreeMap<String, String>) {
        let mut top = serde_json::Map::new();
        if let Some(n) = &self.name {
            top.insert("name".into(), Value::String(n.clone()));
        }
        if let Some(v) = &self.version {
            top.insert("version".into(), Value::String(v.clone()));
        }
        for (k, v) in [
            ("config", &self.config),
            ("engines", &self.engines),
            ("bin", &self.bin),
        ] {
            if let Some(v) = v {
                top.insert(k.into(), v.clone());
            }
        }
        flatten(&Value::Object(top), "npm_package_", env);
    }
}

/// run-script's flattening: objects join keys with `_`, arrays use `_<index>`, `false` and `null`
/// become empty, names are not sanitised.
fn flatten(v: &Value, prefix: &str, env: &mut BTreeMap<String, String>) {
    let Value::Object(map) = v else { return };
    for (k, v) in map {
        put(&format!("{prefix}{k}"), v, env);
    }
}

fn put(key: &str, v: &Value, env: &mut BTreeMap<String, String>) {
    match v {
        Value::Null | Value::Bool(false) => {
            env.insert(key.to_string(), String::new());
        }
        Value::Bool(true) => {
            env.insert(key.to_string(), "true".into());
        }
        Value::Number(n) => {
            env.insert(key.to_string(), js_number(n));
        }
        Value::String(s) => {
            env.insert(key.to_string(), s.clone());
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                put(&format!("{key}_{i}"), item, env);
            }
        }
        Value::Object(_) => flatten(v, &format!("{key}_"), env),
    }
}

/// `String(n)` in JavaScript, for the numbers JSON can hold.
fn js_number(n: &serde_json::Number) -> String {
    if let Some(i) = n.as_i64() {
        return i.to_string();
    }
    if let Some(u) = n.as_u64() {
        return u.to_string();
    }
    let f = n.as_f64().unwrap_or(0.0);
    if f.fract() == 0.0 && f.abs() < 1e21 {
        format!("{f:.0}")
    } else {
        f.to_string()
    }
}

/// npm normalises `bin` (`@npmcli/package-json`, secure bins): a string becomes
/// `{<name without scope>: path}`; names become their basename; paths are resolved against `/`
/// and made relative again, so `..` can never climb out of the package.
pub fn normalize_bin(bin: &Value, name: Option<&str>) -> Option<Value> {
    let clean = |p: &str| -> Option<String> {
        let mut parts: Vec<&str> = Vec::new();
        for part in p.split('/') {
            match part {
                "" | "." => {}
                ".." => {
                    parts.pop();
                }
                x => parts.push(x),
            }
        }
        (!parts.is_empty()).then(|| parts.join("/"))
    };
    match bin {
        Value::String(s) => {
            let n = name?.rsplit('/').next()?.to_string();
            Some(Value::Object(
                [(n, Value::String(clean(s)?))].into_iter().collect(),
            ))
        }
        Value::Object(m) => Some(Value::Object(
            m.iter()
                .filter_map(|(k, v)| {
                    let base = k.rsplit('/').next()?.to_string();
                    if base.is_empty() || base == "." || base == ".." {
                        return None;
                    }
                    Some((base, Value::String(clean(v.as_str()?)?)))
                })
                .collect(),
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn manifest(v: Value) -> Manifest {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("package.json"), v.to_string()).unwrap();
        Manifest::read(dir.path()).unwrap()
    }

    /// E15's package: scoped name, string bin, config with array/false/null and a number.
    #[test]
    fn package_env_flattening_matches_run_script() {
        let m = manifest(json!({
            "name": "@scope/envtest", "version": "1.0.0", "bin": "./cli.js",
            "config": { "arr": ["x", "y"], "flag": false, "nul": null, "port": 8080, "nested": {"x": 1} },
            "engines": { "node": ">=18", "npm": ">=9" }
        }));
        let mut env = BTreeMap::new();
        m.package_env(&mut env);
        let expected: BTreeMap<String, String> = [
            ("npm_package_bin_envtest", "cli.js"),
            ("npm_package_config_arr_0", "x"),
            ("npm_package_config_arr_1", "y"),
            ("npm_package_config_flag", ""),
            ("npm_package_config_nested_x", "1"),
            ("npm_package_config_nul", ""),
            ("npm_package_config_port", "8080"),
            ("npm_package_engines_node", ">=18"),
            ("npm_package_engines_npm", ">=9"),
            ("npm_package_name", "@scope/envtest"),
            ("npm_package_version", "1.0.0"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(env, expected);
    }

    #[test]
    fn implicit_node_gyp_rules() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("binding.gyp"), "{}").unwrap();
        let write = |v: Value| {
            std::fs::write(dir.path().join("package.json"), v.to_string()).unwrap();
            Manifest::read(dir.path()).unwrap()
        };
        let m = write(json!({"name": "g", "scripts": {"postinstall": "x"}}));
        assert_eq!(m.command("install").as_deref(), Some("node-gyp rebuild"));
        let m = write(json!({"name": "g", "scripts": {"preinstall": "x"}}));
        assert_eq!(m.command("install"), None, "preinstall suppresses it");
        let m = write(json!({"name": "g", "scripts": {"install": ""}}));
        assert_eq!(
            m.command("install").as_deref(),
            Some("node-gyp rebuild"),
            "empty counts as absent"
        );
        let m = write(json!({"name": "g", "gypfile": false}));
        assert_eq!(m.command("install"), None);
        std::fs::remove_file(dir.path().join("binding.gyp")).unwrap();
        std::fs::create_dir(dir.path().join("binding.gyp")).unwrap();
        let m = write(json!({"name": "g"}));
        assert_eq!(
            m.command("install"),
            None,
            "binding.gyp must be a regular file"
        );
    }

    #[test]
    fn bin_normalisation_refuses_escapes() {
        let b = normalize_bin(
            &json!({"../../evil": "x.js", "ok": "./bin/../cli.js", "up": "../../../etc/passwd"}),
            Some("p"),
        )
        .unwrap();
        assert_eq!(
            b,
            json!({"evil": "x.js", "ok": "cli.js", "up": "etc/passwd"})
        );
    }
}
