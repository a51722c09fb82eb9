//! A package's `package.json`, as run-script sees it: scripts, the implicit `node-gyp rebuild`,
//! and the flattened `npm_package_*` variables.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

use super::NpmError;

/// Nesting deeper than this is read as `null` (JSON.parse has no such limit; serde_json stops
/// at 128, and nothing ringfence reads from a manifest is that deep).
const MAX_DEPTH: usize = 100;

/// Parse a `package.json` the way npm does (`JSON.parse` after stripping a BOM), where
/// serde_json is stricter: a UTF-8 BOM is skipped; an unpaired surrogate escape (`"\ud800"`)
/// becomes U+FFFD, which is what node makes of it when the string reaches a process or a file;
/// bytes that are not UTF-8 become U+FFFD as node's UTF-8 decoding makes them; values nested
/// deeper than 100 levels become `null`; duplicate keys keep the last value, as in
/// JavaScript. What is not JSON even then is an error.
pub fn parse_lenient(bytes: &[u8]) -> Result<Value, String> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let text = String::from_utf8_lossy(bytes);
    let fixed = normalise(&text);
    serde_json::from_str(&fixed).map_err(|e| e.to_string())
}

/// The hex value of a `\uXXXX` escape starting at `i` (at the backslash).
fn escape_at(b: &[u8], i: usize) -> Option<u16> {
    if b.get(i) != Some(&b'\\') || b.get(i + 1) != Some(&b'u') {
        return None;
    }
    let hex = std::str::from_utf8(b.get(i + 2..i + 6)?).ok()?;
    u16::from_str_radix(hex, 16).ok()
}

/// One pass over JSON text: lone surrogate escapes replaced, over-deep values pruned.
fn normalise(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let mut depth = 0usize;
    let mut in_string = false;
    // Bytes are copied in runs; only ASCII positions are ever cut at, so runs stay UTF-8.
    let mut run_start = 0;
    let flush = |out: &mut String, from: usize, to: usize| {
        if let Some(t) = text.get(from..to) {
            out.push_str(t);
        }
    };
    while i < b.len() {
        let c = b[i];
        if in_string {
            match c {
                b'"' => in_string = false,
                b'\\' => {
                    if let Some(u) = escape_at(b, i) {
                        let lone = match u {
                            0xD800..=0xDBFF => {
                                !escape_at(b, i + 6).is_some_and(|l| (0xDC00..=0xDFFF).contains(&l))
                            }
                            0xDC00..=0xDFFF => true,
                            _ => false,
                        };
                        if lone {
                            flush(&mut out, run_start, i);
                            out.push_str("\\uFFFD");
                            i += 6;
                            run_start = i;
                            continue;
                        }
                        // A valid pair: copy both escapes as they are.
                        i += if (0xD800..=0xDBFF).contains(&u) {
                            12
                        } else {
                            6
                        };
                        continue;
                    }
                    i += 2;
                    continue;
                }
                _ => {}
            }
            i += 1;
            continue;
        }
        match c {
            b'"' => in_string = true,
            b'[' | b'{' if depth >= MAX_DEPTH => {
                // Replace the whole value with null.
                flush(&mut out, run_start, i);
                out.push_str("null");
                i = skip_value(b, i);
                run_start = i;
                continue;
            }
            b'[' | b'{' => depth += 1,
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    flush(&mut out, run_start, b.len().min(i));
    out
}

/// The index just past the array or object starting at `i`.
fn skip_value(b: &[u8], mut i: usize) -> usize {
    let mut depth = 0usize;
    let mut in_string = false;
    while i < b.len() {
        let c = b[i];
        if in_string {
            match c {
                b'"' => in_string = false,
                b'\\' => i += 1,
                _ => {}
            }
        } else {
            match c {
                b'"' => in_string = true,
                b'[' | b'{' => depth += 1,
                b']' | b'}' => {
                    depth = depth.saturating_sub(1);
                    if depth == 0 {
                        return i + 1;
                    }
                }
                _ => {}
            }
        }
        i += 1;
    }
    b.len()
}

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
}

impl Manifest {
    /// Read `<dir>/package.json`.
    pub fn read(dir: &Path) -> Result<Self, NpmError> {
        let path = dir.join("package.json");
        let bytes = std::fs::read(&path).map_err(|source| NpmError::Read {
            path: path.clone(),
            source,
        })?;
        let v = parse_lenient(&bytes).map_err(|message| NpmError::Parse {
            path: path.clone(),
            message,
        })?;
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

    /// What npm accepts must not stop the install: a BOM, lone surrogate escapes (in a
    /// description and in a script), duplicate keys (the last wins), odd types for fields
    /// ringfence reads, nesting deeper than serde_json allows.
    #[test]
    fn manifests_npm_accepts_are_read() {
        let deep = format!("{}1{}", "[".repeat(3000), "]".repeat(3000));
        let text = format!(
            "\u{feff}{{\"name\":\"odd\",\"description\":\"bad \\ud800 surrogate \\udc00 and a pair \\ud83d\\ude00\",\
             \"version\":\"1.0.0\",\"version\":\"1.0.1\",\"bin\":7,\"engines\":\"node\",\"gypfile\":\"no\",\
             \"keywords\":{deep},\"config\":{{\"deep\":{deep},\"port\":1}},\
             \"scripts\":{{\"postinstall\":\"echo \\udbff done\",\"test\":5}}}}"
        );
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("package.json"), &text).unwrap();
        let m = Manifest::read(dir.path()).unwrap();
        assert_eq!(m.name.as_deref(), Some("odd"));
        assert_eq!(m.version.as_deref(), Some("1.0.1"));
        assert_eq!(
            m.scripts.get("postinstall").map(String::as_str),
            Some("echo \u{fffd} done")
        );
        assert!(!m.scripts.contains_key("test"));
        assert_eq!(m.bin, None);
        assert_eq!(m.config.as_ref().unwrap()["port"], 1);
        let v = parse_lenient(text.as_bytes()).unwrap();
        assert_eq!(
            v["description"],
            "bad \u{fffd} surrogate \u{fffd} and a pair \u{1f600}"
        );
        // Not JSON at all is still an error (reported for that package).
        assert!(parse_lenient(b"{\"name\": ").is_err());
        assert!(parse_lenient(b"").is_err());
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        fn text() -> impl Strategy<Value = String> {
            proptest::collection::vec(any::<char>(), 0..12).prop_map(|c| c.into_iter().collect())
        }

        fn json() -> impl Strategy<Value = Value> {
            let leaf = prop_oneof![
                Just(Value::Null),
                any::<bool>().prop_map(Value::Bool),
                any::<i64>().prop_map(|n| Value::Number(n.into())),
                text().prop_map(Value::String),
            ];
            leaf.prop_recursive(4, 32, 6, |inner| {
                prop_oneof![
                    proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                    proptest::collection::vec((text(), inner), 0..6)
                        .prop_map(|kv| Value::Object(kv.into_iter().collect())),
                ]
            })
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(512))]

            /// Any bytes: an error or a value, never a panic.
            #[test]
            fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
                let _ = parse_lenient(&bytes);
            }

            /// JSON with escapes sprinkled in (lone and paired surrogates, backslashes).
            #[test]
            fn escape_soup_never_panics(parts in proptest::collection::vec(
                prop_oneof![
                    Just("\\ud800".to_string()), Just("\\udc00".to_string()),
                    Just("\\ud83d\\ude00".to_string()), Just("\\\\".to_string()),
                    Just("\\u12".to_string()), Just("[".to_string()), Just("{".to_string()),
                    text(),
                ], 0..24)) {
                let s = format!("{{\"d\":\"{}\"}}", parts.concat());
                let _ = parse_lenient(s.as_bytes());
            }

            /// What serde_json writes reads back the same.
            #[test]
            fn valid_json_round_trips(v in json()) {
                let text = serde_json::to_string(&v).unwrap();
                prop_assert_eq!(parse_lenient(text.as_bytes()).unwrap(), v.clone());
                let pretty = serde_json::to_string_pretty(&v).unwrap();
                prop_assert_eq!(parse_lenient(pretty.as_bytes()).unwrap(), v);
            }
        }
    }
}
