//! The project as npm reads it, checked before anything changes, and what npm installed into
//! it: the build set and the phases of scripts npm would run.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::env::NodeExtras;
use super::manifest::Manifest;
use super::rollback::Rollback;
use super::scripts::{Phase, PlanInput, plan};
use super::tree::{self, Identity, Lockfile, Node, build_set, scan_identities};
use super::{Captured, Command2, Notice, NpmError, Toolchain};

/// The project before npm runs.
#[derive(Debug)]
pub struct Project {
    /// The project root (canonical).
    pub root: PathBuf,
    /// Its package.json.
    pub manifest: Manifest,
    /// How to restore it after a failed required script.
    pub rollback: Rollback,
    /// What was installed before (from the hidden lockfile or a scan; nothing for `ci`).
    before: BTreeMap<String, Identity>,
    /// Versions package-lock.json recorded before.
    locked_before: BTreeMap<String, Option<String>>,
}

/// What npm installed whose scripts npm would run.
#[derive(Debug)]
pub struct BuildSet {
    /// The hidden lockfile after the install.
    pub after: Lockfile,
    /// Added/changed nodes and root links.
    pub nodes: Vec<Node>,
    /// Their manifests, with lockfile metadata where arborist had only that.
    pub manifests: Vec<Manifest>,
    /// Per node: resolved from the registry during this install.
    fresh: Vec<bool>,
    /// Something besides links changed (npm then runs dependency scripts at all).
    changed: bool,
    /// Packages whose manifest could not be read (their scripts are not run).
    pub unreadable: Vec<Notice>,
}

fn bad_package(name: &str, location: &str, why: String) -> NpmError {
    NpmError::BadPackage {
        name: name.to_string(),
        location: location.to_string(),
        why,
    }
}

impl Project {
    /// Read everything npm will read, before anything changes: a malformed manifest or lockfile,
    /// a lockfile placing packages outside node_modules, or `ci` without a lockfile is an error
    /// with the project untouched.
    pub fn read(root: PathBuf, command: Command2) -> Result<Project, NpmError> {
        let manifest = Manifest::read(&root)?;
        let lock_path = root.join("package-lock.json");
        let package_lock = std::fs::read(&lock_path).ok();
        let lock_before = Lockfile::read(&lock_path)?;
        if let Some(l) = &lock_before {
            for (loc, v) in &l.packages {
                let name = v.get("name").and_then(|n| n.as_str());
                let link_target =
                    !loc.starts_with("node_modules/") && !loc.contains("/node_modules/");
                tree::check_location(loc, link_target)
                    .map_err(|why| bad_package(name.unwrap_or(loc), loc, why))?;
                if let Some(name) = name {
                    tree::check_package_name(name).map_err(|why| bad_package(name, loc, why))?;
                }
            }
        }
        if command == Command2::Ci && lock_before.is_none() {
            return Err(NpmError::CiNeedsLockfile { project: root });
        }
        let before = if command == Command2::Ci {
            BTreeMap::new()
        } else {
            match Lockfile::read(&root.join("node_modules/.package-lock.json")) {
                Ok(Some(l)) => l.identities(),
                _ => scan_identities(&root),
            }
        };
        // `ci` loads every node from the lockfile: none is fresh.
        let locked_before = lock_before
            .iter()
            .flat_map(|l| l.packages.iter())
            .map(|(k, v)| {
                let version = v.get("version").and_then(|x| x.as_str());
                (k.clone(), version.map(str::to_string))
            })
            .collect();
        Ok(Project {
            rollback: Rollback {
                node_modules_existed: root.join("node_modules").exists(),
                package_lock,
            },
            root,
            manifest,
            before,
            locked_before,
        })
    }

    /// After `npm … --ignore-scripts`: the nodes npm would build, with their manifests.
    pub fn build_set(&self, command: Command2) -> Result<BuildSet, NpmError> {
        let after =
            Lockfile::read(&self.root.join("node_modules/.package-lock.json"))?.unwrap_or_default();
        let nodes = build_set(&self.root, &after, &self.before)?;
        // A node is "fresh" when npm resolved it from the registry during this install;
        // otherwise arborist loaded it from package-lock.json and knows only the lockfile's
        // metadata. (`npm ci` loads every node from the lockfile.)
        let fresh: Vec<bool> = nodes
            .iter()
            .map(|n| {
                command != Command2::Ci
                    && self
                        .locked_before
                        .get(&n.location)
                        .is_none_or(|v| *v != n.version)
            })
            .collect();
        // A package whose manifest cannot be read at all fails alone: its scripts are not run
        // and the install says so; every other package is replayed.
        let mut unreadable = Vec::new();
        let mut manifests: Vec<Manifest> = nodes
            .iter()
            .map(|n| {
                Manifest::read(&n.dir).unwrap_or_else(|e| {
                    unreadable.push(Notice {
                        code: "manifest-unreadable",
                        location: Some(n.location.clone()),
                        message: format!(
                            "{} at {}: its package.json could not be read ({e}); its install scripts were not run",
                            n.name, n.location
                        ),
                    });
                    Manifest::default()
                })
            })
            .collect();
        for ((n, m), fresh) in nodes.iter().zip(manifests.iter_mut()).zip(&fresh) {
            if !n.link && !fresh {
                if let Some(entry) = after.packages.get(&n.location) {
                    m.use_lockfile_meta(entry, &n.name);
                }
            }
        }
        for (n, m) in nodes.iter().zip(&manifests) {
            if let Some(name) = &m.name {
                tree::check_package_name(name)
                    .map_err(|why| bad_package(name, &n.location, why))?;
            }
        }
        let changed = !nodes.iter().all(|n| n.link)
            || tree::removed_any(&self.before, &after)
            || after
                .identities()
                .iter()
                .any(|(k, v)| self.before.get(k) != Some(v));
        Ok(BuildSet {
            after,
            nodes,
            manifests,
            fresh,
            changed,
            unreadable,
        })
    }
}

/// The environment npm's scripts get, with node's headers for node-gyp when the user's config
/// names none (so native builds never try to download them), and the directory of those headers.
pub fn script_env(
    captured: &Captured,
    tool: &Toolchain,
) -> (BTreeMap<String, String>, Option<PathBuf>) {
    let mut env = captured.env.clone();
    let nodedir = match env.get("npm_config_nodedir") {
        Some(d) if !d.is_empty() => Some(PathBuf::from(d)),
        _ => {
            let d = tool.nodedir();
            match &d {
                Some(d) => {
                    env.insert("npm_config_nodedir".into(), d.display().to_string());
                }
                None => tracing::warn!(
                    "node headers not found under `{}`; native builds will try to download them and fail offline",
                    tool.node_prefix.display()
                ),
            }
            d
        }
    };
    (env, nodedir)
}

impl BuildSet {
    /// The phases of scripts npm would run, in its order.
    pub fn phases(
        &self,
        project: &Project,
        command: Command2,
        npm_args: &[String],
        captured: &Captured,
        npm_env: &BTreeMap<String, String>,
        tool: &Toolchain,
    ) -> Vec<Phase> {
        let registry = npm_env
            .get("npm_config_registry")
            .cloned()
            .unwrap_or_else(|| "https://registry.npmjs.org/".into());
        let package_args = match &captured.remain {
            Some(r) => r.len() > 1,
            None => npm_args.iter().any(|a| !a.starts_with('-')),
        };
        let node_gyp_bin = tool.node_gyp_bin();
        let input = PlanInput {
            project: &project.root,
            nodes: self
                .nodes
                .iter()
                .zip(&self.manifests)
                .zip(&self.fresh)
                .map(|((n, m), fresh)| (n, m, NodeExtras::for_node(n, *fresh, &registry)))
                .collect(),
            root: &project.manifest,
            npm_env,
            node_gyp_bin: &node_gyp_bin,
            run_dependencies: self.changed,
            run_root: command == Command2::Ci || !package_args,
        };
        plan(&input)
    }

    /// Workspace and `file:` directories.
    pub fn link_dirs(&self) -> Vec<PathBuf> {
        self.nodes
            .iter()
            .filter(|n| n.link)
            .map(|n| n.dir.clone())
            .collect()
    }

    /// What the install should say about its packages: manifests that could not be read (their
    /// scripts were not run), and git dependencies, which npm prepares at fetch time (a nested
    /// install plus `prepare`, then packed) — `--ignore-scripts` skips that and it is not
    /// replayable in node_modules.
    pub fn warnings(&self) -> Vec<Notice> {
        let mut out = self.unreadable.clone();
        for (n, m) in self.nodes.iter().zip(&self.manifests) {
            let git = n.resolved.as_deref().is_some_and(|r| r.starts_with("git+"));
            if git && m.scripts.contains_key("prepare") {
                out.push(Notice {
                    code: "git-prepare-skipped",
                    location: Some(n.location.clone()),
                    message: format!(
                        "{}@{} is a git dependency with a `prepare` script; npm runs it at fetch time, which `--ignore-scripts` skips, so its build output may be missing (its install scripts are still replayed)",
                        m.name.as_deref().unwrap_or(&n.name),
                        m.version.as_deref().unwrap_or("?")
                    ),
                });
            }
        }
        out
    }
}

/// npm's cache directory, if it exists (mounted read-only so scripts that consult it work).
pub fn cache_dir(npm_env: &BTreeMap<String, String>, home: &Path) -> Option<PathBuf> {
    npm_env
        .get("npm_config_cache")
        .map(PathBuf::from)
        .or_else(|| Some(home.join(".npm")))
        .filter(|p| p.exists())
        .and_then(|p| std::fs::canonicalize(p).ok())
}
