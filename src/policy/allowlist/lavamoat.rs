//! LavaMoat `@lavamoat/allow-scripts` 5: `package.json#lavamoat.allowScripts`.
//!
//! ```json
//! { "lavamoat": { "allowScripts": {
//!     "keccak#3.0.4": true,
//!     "rezeplayer>core-js#3.49.0": false,
//!     "core-js": false
//! } } }
//! ```
//!
//! A key is a package's *canonical name*, a dependency path `a>b>c`, with an optional
//! `#version`. LavaMoat (`@lavamoat/aa` `loadCanonicalNameMap`) names each installed package
//! directory by its best logical path from the project: the dependency names walked from the
//! root's `dependencies`/`devDependencies`/`optionalDependencies`/`peerDependencies` down
//! through each package's own (non-dev) ones, resolved the way node resolves them, shortest
//! path first, ties broken per step by the shorter name, then the alphabetically first. A
//! package is matched by `canonicalName#version` exactly (`allow-scripts` `versionAwareMatcher`).
//!
//! Matching rule here: a key matches a [`Candidate`](super::Candidate) when its path equals
//! the candidate's `dep_path` element by element and, if the key has a version, the version is
//! the candidate's. There is no looser rule (a single name does not match the same package
//! deeper in the tree): in LavaMoat a package has exactly one canonical name. The caller must
//! therefore pass LavaMoat's canonical path, which [`logical_paths`] computes from the
//! lockfile. Its approximations: dependency names come from the lockfile entries (which
//! mirror each `package.json`), resolution walks lockfile locations (a link's dependencies are
//! resolved from its target's location rather than through the symlink, which differs only
//! for a `node_modules` beside the link's parent), and a package missing from the lockfile is
//! unresolved (LavaMoat skips unresolvable dependencies too).
//!
//! Versions: LavaMoat requires `#version` on allowed packages ("in case of maintainer
//! compromise") and, without `--skip-versions`, refuses to run at all while a version-less
//! `true` is present. Here a version-less `true` allows any version, with the diagnostic
//! `allowlist-lavamoat-unversioned-allow`. A version-less `false` denies every version, as in
//! LavaMoat. Unlike LavaMoat (whose allow check looks only at the exact key), a version-less
//! `false` also wins over a versioned `true` of the same path: deny wins everywhere.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value as Json;

use super::doc::Doc;
use super::npm::Problem;
use super::spec::Matcher;
use super::{AllowlistError, Allowlists, Tool, Verdict};

/// The field read.
pub const FIELD: &str = "lavamoat.allowScripts";

/// LavaMoat's name for the project itself.
const ROOT_NAME: &str = "$root$";

/// Read `package.json#lavamoat.allowScripts` into `out`.
pub(super) fn read(d: &Doc, out: &mut Allowlists) -> Result<(), AllowlistError> {
    let Some(lavamoat) = super::object_field(d, "lavamoat", "`lavamoat`")? else {
        return Ok(());
    };
    let Some(m) = super::doc::field(lavamoat, "allowScripts") else {
        return Ok(());
    };
    for (key, line, allow) in super::bool_object(d, m, "`lavamoat.allowScripts`", out)? {
        let (matcher, problem) = parse_key(key);
        if let Some((code, why)) = problem {
            out.warn(code, d, line, why);
        }
        if allow && matches!(&matcher, Matcher::Path { version: None, .. }) {
            out.warn(
                "allowlist-lavamoat-unversioned-allow",
                d,
                line,
                format!(
                    "`{key}: true` has no `#version`; LavaMoat requires one for allowed packages (unless run with `--skip-versions`); taken as allowing every version"
                ),
            );
        }
        let verdict = if allow { Verdict::Allow } else { Verdict::Deny };
        out.push(Tool::Lavamoat, d, FIELD, line, key, verdict, matcher);
    }
    Ok(())
}

/// Parse `a>b>c#1.2.3` (LavaMoat splits on `#` and takes the second piece as the version;
/// an empty version is none).
pub(super) fn parse_key(key: &str) -> (Matcher, Problem) {
    let mut pieces = key.split('#');
    let path = pieces.next().unwrap_or_default();
    let version = pieces.next().filter(|v| !v.is_empty()).map(str::to_string);
    let never = |why: String| {
        (
            Matcher::Never,
            Some((
                "allowlist-key-never-matches",
                format!("LavaMoat never matches the `lavamoat.allowScripts` key `{key}`: {why}"),
            )),
        )
    };
    if path == ROOT_NAME {
        return never(
            "`$root$` is the project itself, whose scripts are not a dependency's".into(),
        );
    }
    let parts: Vec<&str> = path.split('>').collect();
    if parts.iter().any(|p| p.trim().is_empty()) {
        return never("its dependency path has an empty step".into());
    }
    (
        Matcher::Path {
            path: parts.iter().map(|p| (*p).to_string()).collect(),
            version,
        },
        None,
    )
}

/// LavaMoat's canonical dependency path of every package in an npm lockfile's `packages` map
/// (location → entry, `""` the root), by location. A link (`"link": true`) and its target
/// location both get the path. Packages no dependency path reaches are absent.
pub fn logical_paths(packages: &BTreeMap<String, Json>) -> BTreeMap<String, Vec<String>> {
    let mut best: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut links: BTreeMap<String, String> = BTreeMap::new();
    let mut frontier: BTreeSet<String> = BTreeSet::from([String::new()]);
    // Breadth first, one path length at a time: every path of the next length is offered
    // before any of it is walked further, so each location's best path is final when it is
    // walked (the order is shortest first, then per step shorter name, then alphabetical).
    while !frontier.is_empty() {
        let mut next = BTreeSet::new();
        for loc in &frontier {
            let base = best.get(loc).cloned().unwrap_or_default();
            for dep in dependencies(packages, loc) {
                let Some((found, real)) = resolve(packages, loc, &dep) else {
                    continue;
                };
                if real.is_empty() {
                    continue;
                }
                let mut path = base.clone();
                path.push(dep);
                if best.get(&real).is_none_or(|cur| better(&path, cur)) {
                    if found != real {
                        links.insert(found, real.clone());
                    }
                    best.insert(real.clone(), path);
                    next.insert(real);
                }
            }
        }
        frontier = next;
    }
    for (link, target) in links {
        if let Some(p) = best.get(&target).cloned() {
            best.insert(link, p);
        }
    }
    best
}

/// The dependency names of the package at `loc` (the root's include `devDependencies`).
fn dependencies(packages: &BTreeMap<String, Json>, loc: &str) -> Vec<String> {
    let Some(entry) = packages.get(loc) else {
        return Vec::new();
    };
    let mut fields = vec!["dependencies", "optionalDependencies", "peerDependencies"];
    if loc.is_empty() {
        fields.push("devDependencies");
    }
    let mut names: Vec<String> = fields
        .into_iter()
        .filter_map(|f| entry.get(f).and_then(Json::as_object))
        .flat_map(|o| o.keys().cloned())
        .collect();
    names.sort();
    names.dedup();
    names
}

/// Where node finds `dep` from the package at `from`: `<dir>/node_modules/<dep>` for `from`
/// and each ancestor directory (skipping `node_modules` directories themselves), nearest
/// first. Returns the location found and, for a link, its target.
fn resolve(packages: &BTreeMap<String, Json>, from: &str, dep: &str) -> Option<(String, String)> {
    let parts: Vec<&str> = if from.is_empty() {
        Vec::new()
    } else {
        from.split('/').collect()
    };
    for i in (0..=parts.len()).rev() {
        if i > 0 && parts[i - 1] == "node_modules" {
            continue;
        }
        let dir = parts[..i].join("/");
        let loc = if dir.is_empty() {
            format!("node_modules/{dep}")
        } else {
            format!("{dir}/node_modules/{dep}")
        };
        if let Some(entry) = packages.get(&loc) {
            let link = entry.get("link").and_then(Json::as_bool) == Some(true);
            let real = if link {
                entry
                    .get("resolved")
                    .and_then(Json::as_str)
                    .map_or_else(|| loc.clone(), normalize)
            } else {
                loc.clone()
            };
            return Some((loc, real));
        }
    }
    None
}

/// A link target relative to the root, without `./` and a trailing `/`.
fn normalize(target: &str) -> String {
    let mut t = target.strip_prefix("file:").unwrap_or(target);
    while let Some(rest) = t.strip_prefix("./") {
        t = rest;
    }
    t.trim_end_matches('/').to_string()
}

/// LavaMoat's `comparePackageLogicalPaths(a, b) < 0`: fewer steps first; then, step by step,
/// the shorter name, then the alphabetically first.
fn better(a: &[String], b: &[String]) -> bool {
    if a.len() != b.len() {
        return a.len() < b.len();
    }
    for (x, y) in a.iter().zip(b) {
        match x.len().cmp(&y.len()).then_with(|| x.cmp(y)) {
            std::cmp::Ordering::Less => return true,
            std::cmp::Ordering::Greater => return false,
            std::cmp::Ordering::Equal => {}
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::super::Candidate;
    use super::*;

    fn m(key: &str) -> Matcher {
        let (m, p) = parse_key(key);
        assert!(p.is_none(), "{key}: {p:?}");
        m
    }

    fn at<'a>(path: &'a [&'a str], version: &'a str) -> Candidate<'a> {
        Candidate {
            dep_path: path,
            ..Candidate::new(path.last().copied().unwrap_or(""), version)
        }
    }

    #[test]
    fn keys_are_paths_with_optional_versions() {
        assert_eq!(
            m("rezeplayer>core-js#3.49.0"),
            Matcher::Path {
                path: vec!["rezeplayer".into(), "core-js".into()],
                version: Some("3.49.0".into())
            }
        );
        assert_eq!(
            m("@scope/a>@scope/b"),
            Matcher::Path {
                path: vec!["@scope/a".into(), "@scope/b".into()],
                version: None
            }
        );
        assert_eq!(
            m("keccak#"),
            Matcher::Path {
                path: vec!["keccak".into()],
                version: None
            }
        );
    }

    #[test]
    fn a_path_matches_only_the_same_path_and_version() {
        let k = m("rezeplayer>core-js#3.49.0");
        assert!(k.matches(&at(&["rezeplayer", "core-js"], "3.49.0"), Verdict::Deny));
        assert!(!k.matches(&at(&["rezeplayer", "core-js"], "3.49.1"), Verdict::Deny));
        assert!(!k.matches(&at(&["core-js"], "3.49.0"), Verdict::Deny));
        assert!(!k.matches(
            &at(&["x", "rezeplayer", "core-js"], "3.49.0"),
            Verdict::Deny
        ));
        let bare = m("core-js");
        assert!(bare.matches(&at(&["core-js"], "1.0.0"), Verdict::Deny));
        assert!(!bare.matches(&at(&["rezeplayer", "core-js"], "1.0.0"), Verdict::Deny));
        assert!(
            !bare.matches(&Candidate::new("core-js", "1.0.0"), Verdict::Deny),
            "no path given"
        );
    }

    #[test]
    fn root_and_empty_steps_never_match() {
        for key in ["$root$", "a>>b", ">a", "a>", "#1.0.0"] {
            let (m, p) = parse_key(key);
            assert_eq!(
                (m, p.map(|p| p.0)),
                (Matcher::Never, Some("allowlist-key-never-matches")),
                "{key}"
            );
        }
    }

    fn lock(json: &str) -> BTreeMap<String, Json> {
        let v: Json = serde_json::from_str(json).unwrap();
        v["packages"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    #[test]
    fn logical_paths_follow_dependencies_not_nesting() {
        let l = lock(
            r#"{"packages": {
                "": {"dependencies": {"rezeplayer": "1", "keccak": "3"}, "devDependencies": {"dev": "1"}},
                "node_modules/rezeplayer": {"dependencies": {"core-js": "3"}},
                "node_modules/core-js": {},
                "node_modules/keccak": {"dependencies": {"node-gyp-build": "4"}},
                "node_modules/node-gyp-build": {},
                "node_modules/dev": {"devDependencies": {"never-walked": "1"}},
                "node_modules/never-walked": {},
                "node_modules/orphan": {}
            }}"#,
        );
        let p = logical_paths(&l);
        let get = |loc: &str| p.get(loc).map(|v| v.join(">"));
        assert_eq!(
            get("node_modules/rezeplayer").as_deref(),
            Some("rezeplayer")
        );
        assert_eq!(
            get("node_modules/core-js").as_deref(),
            Some("rezeplayer>core-js")
        );
        assert_eq!(
            get("node_modules/node-gyp-build").as_deref(),
            Some("keccak>node-gyp-build")
        );
        assert_eq!(get("node_modules/dev").as_deref(), Some("dev"));
        assert_eq!(
            get("node_modules/never-walked"),
            None,
            "dev deps of a dependency are not walked"
        );
        assert_eq!(get("node_modules/orphan"), None);
        assert_eq!(get(""), None);
    }

    #[test]
    fn logical_paths_prefer_short_then_shorter_names_then_alphabetical() {
        let l = lock(
            r#"{"packages": {
                "": {"dependencies": {"bbbb": "1", "aaaa": "1", "cc": "1", "direct": "1", "zz": "1", "aaa": "1"}},
                "node_modules/zz": {"dependencies": {"other": "1"}},
                "node_modules/aaa": {"dependencies": {"other": "1"}},
                "node_modules/other": {},
                "node_modules/aaaa": {"dependencies": {"shared": "1"}},
                "node_modules/bbbb": {"dependencies": {"shared": "1", "direct": "1"}},
                "node_modules/cc": {"dependencies": {"deep": "1"}},
                "node_modules/deep": {"dependencies": {"shared": "1"}},
                "node_modules/shared": {},
                "node_modules/direct": {}
            }}"#,
        );
        let p = logical_paths(&l);
        assert_eq!(p["node_modules/shared"], vec!["aaaa", "shared"]);
        // The shorter name first, even when it sorts later.
        assert_eq!(p["node_modules/other"], vec!["zz", "other"]);
        assert_eq!(p["node_modules/direct"], vec!["direct"]);
        // `cc` is shorter than `aaaa`, but `cc>deep>shared` is a step longer.
        assert_eq!(p["node_modules/deep"], vec!["cc", "deep"]);
    }

    #[test]
    fn logical_paths_resolve_nested_copies_and_links() {
        let l = lock(
            r#"{"packages": {
                "": {"dependencies": {"a": "1", "b": "1", "ws": "*"}},
                "node_modules/a": {"dependencies": {"c": "2"}},
                "node_modules/a/node_modules/c": {"dependencies": {"d": "1"}},
                "node_modules/b": {"dependencies": {"c": "1"}},
                "node_modules/c": {},
                "node_modules/d": {},
                "node_modules/ws": {"resolved": "packages/ws", "link": true},
                "packages/ws": {"dependencies": {"e": "1"}, "devDependencies": {"d": "1"}},
                "packages/ws/node_modules/e": {}
            }}"#,
        );
        let p = logical_paths(&l);
        assert_eq!(p["node_modules/a/node_modules/c"], vec!["a", "c"]);
        assert_eq!(p["node_modules/c"], vec!["b", "c"]);
        assert_eq!(p["node_modules/d"], vec!["a", "c", "d"]);
        assert_eq!(p["packages/ws"], vec!["ws"]);
        assert_eq!(p["node_modules/ws"], vec!["ws"]);
        assert_eq!(p["packages/ws/node_modules/e"], vec!["ws", "e"]);
    }

    #[test]
    fn logical_paths_survive_cycles() {
        let l = lock(
            r#"{"packages": {
                "": {"dependencies": {"a": "1"}},
                "node_modules/a": {"dependencies": {"b": "1"}},
                "node_modules/b": {"dependencies": {"a": "1"}}
            }}"#,
        );
        let p = logical_paths(&l);
        assert_eq!(p["node_modules/a"], vec!["a"]);
        assert_eq!(p["node_modules/b"], vec!["a", "b"]);
    }
}
