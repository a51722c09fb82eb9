//! The environment of one replayed script, built exactly as npm builds it (§4 of
//! `npm-lifecycle.md`): npm's own environment < arborist's per-node extras < package variables <
//! `npm_package_json` / `npm_lifecycle_*` / `npm_config_node_gyp` < the PATH rewrite.

use std::collections::BTreeMap;
use std::path::Path;

use super::manifest::Manifest;
use super::tree::Node;

/// arborist's per-node additions (`rebuild.js` `#runScripts`), for dependency, bundled and link
/// nodes; never for the root project's own scripts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeExtras {
    /// `npm_package_resolved` (the literal `null` when npm had none).
    pub resolved: String,
    /// `npm_package_integrity` (the literal `null` when npm had none).
    pub integrity: String,
    /// `npm_package_optional`: `1` or empty.
    pub optional: bool,
    /// `npm_package_dev`: `1` or empty.
    pub dev: bool,
    /// `npm_package_peer`: `1` or empty.
    pub peer: bool,
    /// `npm_package_dev_optional`: `1` only if devOptional and neither dev nor optional.
    pub dev_optional: bool,
}

/// The registry tarball URL npm resolves a registry package to (`<registry><name>/-/<base>-<v>.tgz`).
pub fn registry_tarball(registry: &str, name: &str, version: &str) -> String {
    let registry = if registry.ends_with('/') {
        registry.to_string()
    } else {
        format!("{registry}/")
    };
    let base = name.rsplit('/').next().unwrap_or(name);
    format!("{registry}{name}/-/{base}-{version}.tgz")
}

impl NodeExtras {
    /// What npm had in memory for `node`. `resolved` comes from the lockfile when recorded;
    /// otherwise (`omit-lockfile-registry-resolved`) a freshly resolved registry package had the
    /// packument's tarball URL, while a node loaded from an existing lockfile had none (`null`),
    /// as measured with `npm install` vs `npm ci`. Links and bundled nodes always have `null`.
    pub fn for_node(node: &Node, fresh: bool, registry: &str) -> Self {
        let null = || "null".to_string();
        let (resolved, integrity) = if node.link || node.in_bundle {
            (null(), null())
        } else {
            let resolved = match (&node.resolved, &node.version) {
                (Some(r), _) => r.clone(),
                (None, Some(v)) if fresh => registry_tarball(
                    registry,
                    node.package_name.as_deref().unwrap_or(&node.name),
                    v,
                ),
                _ => null(),
            };
            (resolved, node.integrity.clone().unwrap_or_else(null))
        };
        NodeExtras {
            resolved,
            integrity,
            optional: node.optional,
            dev: node.dev,
            peer: node.peer,
            dev_optional: node.dev_optional && !node.dev && !node.optional,
        }
    }
}

fn flag(b: bool) -> String {
    if b { "1".into() } else { String::new() }
}

/// PATH as `@npmcli/run-script` `set-path.js` makes it: `<d>/node_modules/.bin` for every
/// directory from `cwd` up to `/` (no existence check), npm's node-gyp shim directory, then the
/// original PATH.
pub fn script_path(cwd: &Path, node_gyp_bin: &Path, original: &str) -> String {
    let mut parts: Vec<String> = cwd
        .ancestors()
        .map(|d| d.join("node_modules/.bin").display().to_string())
        .collect();
    parts.push(node_gyp_bin.display().to_string());
    if !original.is_empty() {
        parts.push(original.to_string());
    }
    parts.join(":")
}

/// The full environment for `event` of the package in `cwd`.
pub fn script_env(
    base: &BTreeMap<String, String>,
    extras: Option<&NodeExtras>,
    manifest: &Manifest,
    event: &str,
    command: &str,
    cwd: &Path,
    node_gyp_bin: &Path,
) -> BTreeMap<String, String> {
    let mut env = base.clone();
    if let Some(x) = extras {
        env.insert("npm_package_resolved".into(), x.resolved.clone());
        env.insert("npm_package_integrity".into(), x.integrity.clone());
        env.insert("npm_package_optional".into(), flag(x.optional));
        env.insert("npm_package_dev".into(), flag(x.dev));
        env.insert("npm_package_peer".into(), flag(x.peer));
        env.insert("npm_package_dev_optional".into(), flag(x.dev_optional));
    }
    manifest.package_env(&mut env);
    env.insert(
        "npm_package_json".into(),
        cwd.join("package.json").display().to_string(),
    );
    env.insert("npm_lifecycle_event".into(), event.into());
    env.insert("npm_lifecycle_script".into(), command.into());
    if let Some(g) = base.get("npm_config_node_gyp") {
        env.insert("npm_config_node_gyp".into(), g.clone());
    }
    let original = base.get("PATH").cloned().unwrap_or_default();
    env.insert("PATH".into(), script_path(cwd, node_gyp_bin, &original));
    env
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_walks_every_ancestor_then_node_gyp_bin() {
        let p = script_path(
            Path::new("/p/node_modules/a/node_modules/c"),
            Path::new("/npm/node-gyp-bin"),
            "/usr/bin:/bin",
        );
        assert_eq!(
            p,
            "/p/node_modules/a/node_modules/c/node_modules/.bin:/p/node_modules/a/node_modules/node_modules/.bin:/p/node_modules/a/node_modules/.bin:/p/node_modules/node_modules/.bin:/p/node_modules/.bin:/node_modules/.bin:/npm/node-gyp-bin:/usr/bin:/bin"
        );
    }

    #[test]
    fn tarball_urls() {
        assert_eq!(
            registry_tarball("http://127.0.0.1:4873/", "c", "1.0.0"),
            "http://127.0.0.1:4873/c/-/c-1.0.0.tgz"
        );
        assert_eq!(
            registry_tarball("https://registry.npmjs.org", "@s/x", "2.1.0"),
            "https://registry.npmjs.org/@s/x/-/x-2.1.0.tgz"
        );
    }
}
