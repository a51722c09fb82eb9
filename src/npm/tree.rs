//! The installed tree, read from npm's hidden lockfile (`node_modules/.package-lock.json`), and
//! the set of nodes npm would build (arborist `reify.js` `[_build]`): every node added or changed
//! by this install, plus every link from the root (workspaces, `file:` directories), which npm
//! rebuilds on every install.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Component, Path, PathBuf};

use serde_json::Value;

use super::{NpmError, read_json};

/// One package location in the tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// Lockfile key: `node_modules/a/node_modules/c`, or a link target such as `packages/ws1`.
    pub location: String,
    /// Absolute directory the package's scripts run in (the real directory for links).
    pub dir: PathBuf,
    /// Name from the location (`node_modules/<name>`), or the link's name.
    pub name: String,
    /// The package's real name when the lockfile records one (aliases: `npm:real@1`).
    pub package_name: Option<String>,
    /// Version recorded in the lockfile.
    pub version: Option<String>,
    /// `resolved` as recorded.
    pub resolved: Option<String>,
    /// `integrity` as recorded.
    pub integrity: Option<String>,
    /// Flags.
    pub dev: bool,
    /// Reachable only through optional edges.
    pub optional: bool,
    /// Peer dependency.
    pub peer: bool,
    /// `devOptional`.
    pub dev_optional: bool,
    /// Inside a parent's bundle.
    pub in_bundle: bool,
    /// A link target (workspace or `file:` directory): built in the second pass.
    pub link: bool,
    /// arborist's `node.depth` (links count as direct children of the root).
    pub depth: usize,
    /// Outgoing edges: name → (spec, optional edge).
    pub edges: BTreeMap<String, bool>,
    /// Bin names (from the lockfile), to unlink when the node is removed.
    pub bins: Vec<String>,
}

/// Identity used to decide "changed": version, resolved, integrity, link target.
pub type Identity = (Option<String>, Option<String>, Option<String>, bool);

/// A parsed lockfile (`package-lock.json` or the hidden one).
#[derive(Debug, Clone, Default)]
pub struct Lockfile {
    /// Entries by location (`""` is the root).
    pub packages: BTreeMap<String, Value>,
}

impl Lockfile {
    /// Read a lockfile; `Ok(None)` if it does not exist.
    pub fn read(path: &Path) -> Result<Option<Self>, NpmError> {
        if !path.exists() {
            return Ok(None);
        }
        let v = read_json(path)?;
        let packages = v
            .get("packages")
            .and_then(Value::as_object)
            .ok_or_else(|| NpmError::Parse {
                path: path.to_path_buf(),
                message: "no `packages` object (lockfileVersion 1 lockfiles are not supported; run `npm install` once with npm >= 7)".into(),
            })?
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        Ok(Some(Lockfile { packages }))
    }

    /// Every package name in the tree: the lockfile's `name` (aliases, links) or the last
    /// `node_modules/` segment of its location.
    pub fn package_names(&self) -> std::collections::BTreeSet<String> {
        self.packages
            .iter()
            .filter(|(k, _)| !k.is_empty())
            .filter_map(|(k, v)| {
                // The real name of an alias, if its tarball is that package's; never a name a
                // package's own manifest claims (npm copies that into the lockfile too).
                v.get("name")
                    .and_then(Value::as_str)
                    .filter(|n| alias_is_real(n, v.get("resolved").and_then(Value::as_str)))
                    .map(str::to_string)
                    .or_else(|| {
                        k.rsplit_once("node_modules/")
                            .map(|(_, name)| name.to_string())
                    })
            })
            .collect()
    }

    /// Identities by location, for diffing.
    pub fn identities(&self) -> BTreeMap<String, Identity> {
        self.packages
            .iter()
            .filter(|(k, _)| !k.is_empty())
            .map(|(k, v)| {
                let s = |f: &str| v.get(f).and_then(Value::as_str).map(str::to_string);
                (
                    k.clone(),
                    (
                        s("version"),
                        s("resolved"),
                        s("integrity"),
                        v.get("link").and_then(Value::as_bool).unwrap_or(false),
                    ),
                )
            })
            .collect()
    }
}

/// Identities of what is in `node_modules` when there is no hidden lockfile to compare with
/// (each `package.json` found by walking `node_modules` trees).
pub fn scan_identities(project: &Path) -> BTreeMap<String, Identity> {
    let mut out = BTreeMap::new();
    let mut stack = vec![(project.join("node_modules"), String::from("node_modules"))];
    while let Some((dir, loc)) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue;
            }
            let path = e.path();
            if name.starts_with('@') {
                stack.push((path, format!("{loc}/{name}")));
                continue;
            }
            let loc = format!("{loc}/{name}");
            let is_link = std::fs::symlink_metadata(&path)
                .map(|m| m.file_type().is_symlink())
                .unwrap_or(false);
            let version = read_json(&path.join("package.json"))
                .ok()
                .and_then(|v| v.get("version").and_then(Value::as_str).map(str::to_string));
            out.insert(loc.clone(), (version, None, None, is_link));
            if !is_link {
                stack.push((path.join("node_modules"), format!("{loc}/node_modules")));
            }
        }
    }
    out
}

/// Check a lockfile location: relative, normalised, no `..` (unless `allow_parent` for link
/// targets outside the project), every package segment a valid npm name segment.
pub fn check_location(location: &str, allow_parent: bool) -> Result<(), String> {
    if location.is_empty() {
        return Ok(());
    }
    let p = Path::new(location);
    if p.is_absolute() {
        return Err("absolute location".into());
    }
    let mut seen_normal = false;
    for c in p.components() {
        match c {
            Component::Normal(s) => {
                let s = s.to_str().ok_or("location is not UTF-8")?;
                if s.starts_with('.') && s != ".bin" || s.contains('\\') || s.contains('\0') {
                    return Err(format!("path segment `{s}`"));
                }
                seen_normal = true;
            }
            Component::ParentDir if allow_parent && !seen_normal => {}
            other => {
                return Err(format!(
                    "path component `{}`",
                    other.as_os_str().to_string_lossy()
                ));
            }
        }
    }
    if location.ends_with('/') || location.contains("//") {
        return Err("not a normalised path".into());
    }
    Ok(())
}

/// A package name must be a valid npm name: `[@scope/]name`, no path tricks.
pub fn check_package_name(name: &str) -> Result<(), String> {
    let parts: Vec<&str> = name.split('/').collect();
    let ok_segment = |s: &str| {
        !s.is_empty()
            && !s.starts_with('.')
            && !s.contains(['\\', '\0', ' '])
            && s != "node_modules"
    };
    let valid = match parts.as_slice() {
        [n] => ok_segment(n) && !n.starts_with('@'),
        [scope, n] => scope.starts_with('@') && ok_segment(&scope[1..]) && ok_segment(n),
        _ => false,
    };
    if valid && name.len() <= 214 {
        Ok(())
    } else {
        Err(format!("`{name}` is not a valid package name"))
    }
}

/// Whether the real name the lockfile records for a package installed under another name
/// (`"x": "npm:real@1"`) is the package npm fetched: its registry tarball URL is
/// `…/<real>/-/<base>-<version>.tgz`. npm copies that name from the package's own manifest,
/// so a tarball claiming another name (manifest confusion) would otherwise be believed.
pub fn alias_is_real(real: &str, resolved: Option<&str>) -> bool {
    let Some(url) = resolved else {
        return false;
    };
    let path = url
        .split_once("://")
        .map_or(url, |(_, rest)| rest.split_once('/').map_or("", |(_, p)| p));
    let path = path.replace("%2f", "/").replace("%2F", "/");
    let Some((pkg, _)) = path.rsplit_once("/-/") else {
        return false;
    };
    // The package is the path's last segment, or its last two when the one before is a scope
    // (a registry may serve below a prefix: `/api/npm/remote/@scope/name/-/…`).
    let segs: Vec<&str> = pkg.split('/').filter(|s| !s.is_empty()).collect();
    let name = match segs.as_slice() {
        [.., scope, base] if scope.starts_with('@') => format!("{scope}/{base}"),
        [.., base] => (*base).to_string(),
        [] => return false,
    };
    name == real
}

fn name_of(location: &str) -> String {
    match location.rsplit_once("node_modules/") {
        Some((_, n)) => n.to_string(),
        None => location.rsplit('/').next().unwrap_or(location).to_string(),
    }
}

fn depth_of(location: &str) -> usize {
    location.matches("node_modules/").count()
}

/// The nodes npm would build, from the lockfiles before and after `npm install --ignore-scripts`.
///
/// `before` are the identities of the tree before the install (hidden lockfile or a scan of
/// `node_modules`; empty for a fresh install or `npm ci`).
pub fn build_set(
    project: &Path,
    after: &Lockfile,
    before: &BTreeMap<String, Identity>,
) -> Result<Vec<Node>, NpmError> {
    let ids = after.identities();
    let mut nodes = Vec::new();
    // Link targets referenced by root-level links: location of the link → target location.
    let mut link_targets: BTreeMap<String, String> = BTreeMap::new();
    for (loc, v) in &after.packages {
        if v.get("link").and_then(Value::as_bool) == Some(true) {
            if let Some(target) = v.get("resolved").and_then(Value::as_str) {
                link_targets.insert(loc.clone(), target.to_string());
            }
        }
    }
    for (loc, v) in &after.packages {
        if loc.is_empty() {
            continue;
        }
        let is_link_entry = v.get("link").and_then(Value::as_bool) == Some(true);
        if is_link_entry {
            continue; // the target entry carries the package
        }
        let target_of: Option<&String> =
            link_targets.iter().find(|(_, t)| *t == loc).map(|(l, _)| l);
        let in_node_modules = loc.starts_with("node_modules/") || loc.contains("/node_modules/");
        let is_link_target = target_of.is_some() && !in_node_modules;
        check_location(loc, is_link_target).map_err(|why| NpmError::BadPackage {
            name: name_of(loc),
            location: loc.clone(),
            why,
        })?;
        if !is_link_target && !in_node_modules {
            // A location that is neither in node_modules nor a link target: not part of the tree.
            continue;
        }
        if is_link_target {
            // Linked from root: a direct child link of the root, or a target inside the project.
            let link_loc = target_of.cloned().unwrap_or_default();
            let from_root = depth_of(&link_loc) == 1 || !loc.starts_with("..");
            if !from_root {
                continue;
            }
        } else {
            let changed = match before.get(loc) {
                None => true,
                Some(b) => Some(b) != ids.get(loc),
            };
            if !changed {
                continue;
            }
        }
        let dir = project.join(loc);
        let dir = if is_link_target {
            std::fs::canonicalize(&dir).unwrap_or(dir)
        } else {
            // Never follow a symlink for a registry package: its directory must be its location.
            let meta = std::fs::symlink_metadata(&dir).map_err(|source| NpmError::Read {
                path: dir.clone(),
                source,
            })?;
            if !meta.is_dir() {
                return Err(NpmError::BadPackage {
                    name: name_of(loc),
                    location: loc.clone(),
                    why: "its directory is not a plain directory (symlink or file)".into(),
                });
            }
            dir
        };
        let s = |f: &str| v.get(f).and_then(Value::as_str).map(str::to_string);
        let b = |f: &str| v.get(f).and_then(Value::as_bool).unwrap_or(false);
        let mut edges = BTreeMap::new();
        for (field, optional) in [
            ("dependencies", false),
            ("peerDependencies", false),
            ("optionalDependencies", true),
        ] {
            if let Some(m) = v.get(field).and_then(Value::as_object) {
                for name in m.keys() {
                    edges.entry(name.clone()).or_insert(optional);
                }
            }
        }
        let bins = v
            .get("bin")
            .and_then(Value::as_object)
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default();
        nodes.push(Node {
            location: loc.clone(),
            name: match target_of {
                Some(link) if is_link_target => name_of(link),
                _ => name_of(loc),
            },
            dir,
            package_name: s("name"),
            version: s("version"),
            resolved: s("resolved"),
            integrity: s("integrity"),
            dev: b("dev"),
            optional: b("optional"),
            peer: b("peer"),
            dev_optional: b("devOptional"),
            in_bundle: b("inBundle"),
            link: is_link_target,
            depth: if is_link_target { 1 } else { depth_of(loc) },
            edges,
            bins,
        });
    }
    Ok(nodes)
}

/// Whether anything was removed between `before` and `after` (for the root `dependencies`
/// scripts, which run when the reify diff had any change).
pub fn removed_any(before: &BTreeMap<String, Identity>, after: &Lockfile) -> bool {
    let after_ids = after.identities();
    before.keys().any(|k| !after_ids.contains_key(k))
}

/// Resolve a dependency `name` from the package at `from` the way node does: the nearest
/// `node_modules/<name>` walking up the location.
pub fn resolve_edge(packages: &BTreeMap<String, Value>, from: &str, name: &str) -> Option<String> {
    let mut base = from.to_string();
    loop {
        let candidate = if base.is_empty() {
            format!("node_modules/{name}")
        } else {
            format!("{base}/node_modules/{name}")
        };
        if packages.contains_key(&candidate) {
            return Some(candidate);
        }
        if base.is_empty() {
            return None;
        }
        base = match base.rfind("/node_modules/") {
            Some(i) => base[..i].to_string(),
            None => String::new(),
        };
    }
}

/// arborist's optional set for a failed optional node: the node, every node that depends on a
/// member through a non-optional edge (walking up), then every dependency of the members that
/// nothing outside the set still needs.
pub fn optional_set(lock: &Lockfile, failed: &str) -> BTreeSet<String> {
    let packages = &lock.packages;
    let edges_of = |loc: &str| -> Vec<(String, bool)> {
        let Some(v) = packages.get(loc) else {
            return vec![];
        };
        let mut out = Vec::new();
        for (field, optional) in [
            ("dependencies", false),
            ("peerDependencies", false),
            ("optionalDependencies", true),
            ("devDependencies", false),
        ] {
            if field == "devDependencies" && !loc.is_empty() {
                continue;
            }
            if let Some(m) = v.get(field).and_then(Value::as_object) {
                for name in m.keys() {
                    if let Some(to) = resolve_edge(packages, loc, name) {
                        out.push((to, optional));
                    }
                }
            }
        }
        out
    };
    let mut set: BTreeSet<String> = [failed.to_string()].into();
    // Dependents through required edges.
    loop {
        let mut grew = false;
        for loc in packages.keys() {
            if loc.is_empty() || set.contains(loc) {
                continue;
            }
            if edges_of(loc)
                .iter()
                .any(|(to, optional)| !optional && set.contains(to))
            {
                set.insert(loc.clone());
                grew = true;
            }
        }
        if !grew {
            break;
        }
    }
    // Dependencies of the set that nothing outside it needs.
    loop {
        let mut grew = false;
        let members: Vec<String> = set.iter().cloned().collect();
        for m in members {
            for (dep, _) in edges_of(&m) {
                if set.contains(&dep) {
                    continue;
                }
                let needed_outside = packages.keys().any(|other| {
                    !set.contains(other)
                        && *other != dep
                        && edges_of(other).iter().any(|(to, _)| *to == dep)
                });
                if !needed_outside {
                    set.insert(dep);
                    grew = true;
                }
            }
        }
        if !grew {
            break;
        }
    }
    set
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_lockfile_npm_accepts_is_read() {
        // npm copies a dependency's license/description into the lockfile; JSON.parse takes a
        // lone surrogate escape and a BOM, so must we.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("package-lock.json");
        std::fs::write(
            &path,
            "\u{feff}{\"lockfileVersion\":3,\"packages\":{\"\":{\"name\":\"p\"},\
             \"node_modules/x\":{\"version\":\"1.0.0\",\"license\":\"MIT\\ud800\"}}}",
        )
        .unwrap();
        let lock = Lockfile::read(&path).unwrap().unwrap();
        assert_eq!(
            lock.packages["node_modules/x"]["license"],
            json!("MIT\u{fffd}")
        );
    }

    fn lock(v: Value) -> Lockfile {
        Lockfile {
            packages: v
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        }
    }

    #[test]
    fn package_names_with_path_tricks_are_refused() {
        for ok in ["a", "@s/a", "a-b.c_d"] {
            assert!(check_package_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "../x",
            "..",
            ".hidden",
            "a/b",
            "@s/../x",
            "@/x",
            "a\\b",
            "@s",
            "node_modules",
        ] {
            assert!(check_package_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn locations_with_path_tricks_are_refused() {
        assert!(check_location("node_modules/a", false).is_ok());
        assert!(check_location("node_modules/@s/a/node_modules/b", false).is_ok());
        assert!(check_location("../sibling", true).is_ok());
        for bad in [
            "node_modules/../../etc",
            "/etc/passwd",
            "node_modules/.hidden",
            "../x",
            "node_modules/a/../../b",
            "node_modules//a",
        ] {
            assert!(check_location(bad, false).is_err(), "{bad}");
        }
    }

    #[test]
    fn build_set_is_added_changed_and_root_links() {
        let dir = tempfile::tempdir().unwrap();
        for d in [
            "node_modules/a",
            "node_modules/b",
            "node_modules/a/node_modules/c",
            "packages/ws",
        ] {
            std::fs::create_dir_all(dir.path().join(d)).unwrap();
        }
        let after = lock(json!({
            "": {"name": "root"},
            "node_modules/a": {"version": "1.0.0", "dependencies": {"c": "2"}},
            "node_modules/a/node_modules/c": {"version": "2.0.0", "dev": true},
            "node_modules/b": {"version": "2.0.0"},
            "node_modules/ws": {"resolved": "packages/ws", "link": true},
            "packages/ws": {"version": "1.0.0"}
        }));
        let before: BTreeMap<String, Identity> = [
            (
                "node_modules/a".to_string(),
                (Some("1.0.0".into()), None, None, false),
            ),
            (
                "node_modules/b".to_string(),
                (Some("1.0.0".into()), None, None, false),
            ),
            (
                "node_modules/gone".to_string(),
                (Some("1.0.0".into()), None, None, false),
            ),
        ]
        .into();
        let set = build_set(dir.path(), &after, &before).unwrap();
        let locs: Vec<(&str, bool, usize)> = set
            .iter()
            .map(|n| (n.location.as_str(), n.link, n.depth))
            .collect();
        assert_eq!(
            locs,
            vec![
                ("node_modules/a/node_modules/c", false, 2),
                ("node_modules/b", false, 1),
                ("packages/ws", true, 1),
            ]
        );
        assert_eq!(set[2].name, "ws");
        assert!(set[0].dev);
        assert!(removed_any(&before, &after));
    }

    #[test]
    fn optional_set_walks_up_required_edges_and_down_to_unshared_deps() {
        let l = lock(json!({
            "": {"optionalDependencies": {"failopt": "1"}, "dependencies": {"shared": "1"}},
            "node_modules/failopt": {"dependencies": {"fodep": "1", "shared": "1"}, "optional": true},
            "node_modules/needsfail": {"dependencies": {"failopt": "1"}, "optional": true},
            "node_modules/usesneeds": {"optionalDependencies": {"needsfail": "1"}},
            "node_modules/fodep": {"optional": true},
            "node_modules/shared": {}
        }));
        let set = optional_set(&l, "node_modules/failopt");
        let got: Vec<&str> = set.iter().map(String::as_str).collect();
        assert_eq!(
            got,
            vec![
                "node_modules/failopt",
                "node_modules/fodep",
                "node_modules/needsfail"
            ]
        );
    }

    #[test]
    fn edges_resolve_like_node() {
        let l = lock(json!({
            "node_modules/a": {}, "node_modules/c": {}, "node_modules/a/node_modules/c": {}
        }));
        assert_eq!(
            resolve_edge(&l.packages, "node_modules/a", "c").as_deref(),
            Some("node_modules/a/node_modules/c")
        );
        assert_eq!(
            resolve_edge(&l.packages, "node_modules/c", "a").as_deref(),
            Some("node_modules/a")
        );
        assert_eq!(resolve_edge(&l.packages, "", "zz"), None);
    }
}
