//! Which lifecycle scripts run, in which phases and order (`npm-lifecycle.md` §1–§3), as pure
//! data: a list of phases separated by barriers, each a list of jobs sorted by npm's queue order
//! (depth, then ICU `en` path order).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::env::{NodeExtras, script_env};
use super::manifest::Manifest;
use super::order::icu_en_cmp;
use super::tree::Node;

/// Where a script comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A registry/tarball dependency (or a bundled one): only its own directory is writable.
    Dep,
    /// A workspace or `file:` directory linked from the root: the user's own code.
    Link,
    /// The root project's own scripts.
    Root,
}

/// One script to run.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    /// Dep, link or root.
    pub kind: Kind,
    /// Lockfile location (`""` for the root).
    pub location: String,
    /// Package name and version, for messages and reports.
    pub name: String,
    /// Version.
    pub version: String,
    /// Lifecycle event.
    pub event: String,
    /// Shell command.
    pub command: String,
    /// Working directory (the package's real directory).
    pub dir: PathBuf,
    /// Complete environment.
    pub env: BTreeMap<String, String>,
    /// Foreground (inherit stdio, banner) like npm's root scripts; otherwise output is captured
    /// and shown only on failure.
    pub foreground: bool,
    /// A failure removes the node's optional set instead of failing the install.
    pub optional: bool,
    /// npm's `integrity` for the package (reports).
    pub integrity: Option<String>,
    /// The name the package's own manifest claims when it differs from what npm installed it
    /// as (manifest confusion): reported, never used for policy.
    pub claimed_name: Option<String>,
}

/// Scripts separated by a barrier: every job of a phase settles before the next phase starts.
#[derive(Debug, Clone, PartialEq)]
pub struct Phase {
    /// `deps:preinstall`, `links:prepare`, `root:postinstall`, ...
    pub name: String,
    /// Jobs, in npm's queue order.
    pub jobs: Vec<Job>,
}

/// Everything the plan needs.
#[derive(Debug)]
pub struct PlanInput<'a> {
    /// Project root.
    pub project: &'a Path,
    /// Nodes to build with their manifests and extras.
    pub nodes: Vec<(&'a Node, &'a Manifest, NodeExtras)>,
    /// The root manifest.
    pub root: &'a Manifest,
    /// npm's environment.
    pub npm_env: &'a BTreeMap<String, String>,
    /// npm's node-gyp shim directory.
    pub node_gyp_bin: &'a Path,
    /// Run the root's `(pre|post)dependencies` (the reify diff had changes).
    pub run_dependencies: bool,
    /// Run the root's 7 install scripts (`npm install` without package args, or `npm ci`).
    pub run_root: bool,
}

const DEP_EVENTS: [&str; 3] = ["preinstall", "install", "postinstall"];
const LINK_EVENTS: [&str; 4] = ["preinstall", "prepare", "install", "postinstall"];
const ROOT_EVENTS: [&str; 7] = [
    "preinstall",
    "install",
    "postinstall",
    "prepublish",
    "preprepare",
    "prepare",
    "postprepare",
];
const DEPENDENCIES_EVENTS: [&str; 3] = ["predependencies", "dependencies", "postdependencies"];

/// The phases of one `npm install` / `npm ci`.
pub fn plan(input: &PlanInput<'_>) -> Vec<Phase> {
    let mut phases = Vec::new();
    let mut sorted: Vec<&(&Node, &Manifest, NodeExtras)> = input.nodes.iter().collect();
    sorted.sort_by(|a, b| {
        a.0.depth
            .cmp(&b.0.depth)
            .then_with(|| icu_en_cmp(&a.0.dir.to_string_lossy(), &b.0.dir.to_string_lossy()))
    });
    for (pass, events, link) in [
        ("deps", &DEP_EVENTS[..], false),
        ("links", &LINK_EVENTS[..], true),
    ] {
        for event in events {
            let jobs: Vec<Job> = sorted
                .iter()
                .filter(|(n, _, _)| n.link == link)
                .filter_map(|(node, manifest, extras)| {
                    let version = manifest
                        .version
                        .clone()
                        .or_else(|| node.version.clone())
                        .unwrap_or_default();
                    // A dependency is who npm installed: its location, or the real name the
                    // lockfile records for an alias. A manifest claiming another name is not
                    // believed (policy allowances go by name) and is reported.
                    let installed_as = node
                        .package_name
                        .clone()
                        .filter(|real| super::tree::alias_is_real(real, node.resolved.as_deref()))
                        .unwrap_or_else(|| node.name.clone());
                    let name = if link {
                        manifest.name.clone().unwrap_or_else(|| node.name.clone())
                    } else {
                        installed_as
                    };
                    let claimed_name = manifest.name.clone().filter(|m| !link && *m != name);
                    let command = manifest.command(event)?;
                    Some(Job {
                        kind: if link { Kind::Link } else { Kind::Dep },
                        location: node.location.clone(),
                        env: script_env(
                            input.npm_env,
                            Some(extras),
                            manifest,
                            event,
                            &command,
                            &node.dir,
                            input.node_gyp_bin,
                        ),
                        name,
                        version,
                        event: (*event).to_string(),
                        command,
                        dir: node.dir.clone(),
                        foreground: false,
                        optional: node.optional,
                        integrity: node.integrity.clone(),
                        claimed_name,
                    })
                })
                .collect();
            if !jobs.is_empty() {
                phases.push(Phase {
                    name: format!("{pass}:{event}"),
                    jobs,
                });
            }
        }
    }
    let root_job = |event: &str, foreground: bool| -> Option<Job> {
        let command = input.root.command(event)?;
        Some(Job {
            kind: Kind::Root,
            location: String::new(),
            env: script_env(
                input.npm_env,
                None,
                input.root,
                event,
                &command,
                input.project,
                input.node_gyp_bin,
            ),
            name: input.root.name.clone().unwrap_or_default(),
            version: input.root.version.clone().unwrap_or_default(),
            event: event.to_string(),
            command,
            dir: input.project.to_path_buf(),
            foreground,
            optional: false,
            integrity: None,
            claimed_name: None,
        })
    };
    if input.run_root && input.run_dependencies {
        for event in DEPENDENCIES_EVENTS {
            if let Some(job) = root_job(event, false) {
                phases.push(Phase {
                    name: format!("root:{event}"),
                    jobs: vec![job],
                });
            }
        }
    }
    if input.run_root {
        for event in ROOT_EVENTS {
            if let Some(job) = root_job(event, true) {
                phases.push(Phase {
                    name: format!("root:{event}"),
                    jobs: vec![job],
                });
            }
        }
    }
    phases
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_alias_is_believed_only_when_its_tarball_is_that_package() {
        use crate::npm::tree::alias_is_real;
        let url = |p: &str| Some(format!("https://registry.npmjs.org/{p}"));
        assert!(alias_is_real(
            "@prisma/client",
            url("@prisma/client/-/client-5.0.0.tgz").as_deref()
        ));
        assert!(alias_is_real(
            "@prisma/client",
            url("@prisma%2fclient/-/client-5.0.0.tgz").as_deref()
        ));
        assert!(alias_is_real(
            "husky",
            url("husky/-/husky-9.0.0.tgz").as_deref()
        ));
        assert!(alias_is_real(
            "husky",
            Some("https://art.example/api/npm/remote/husky/-/husky-9.0.0.tgz")
        ));
        // A tarball of another package claiming the name.
        assert!(!alias_is_real(
            "@prisma/client",
            url("rf-confused/-/rf-confused-1.0.0.tgz").as_deref()
        ));
        assert!(!alias_is_real(
            "husky",
            url("@evil/husky/-/husky-1.0.0.tgz").as_deref()
        ));
        assert!(!alias_is_real(
            "husky",
            Some("git+ssh://git@github.com/x/husky.git")
        ));
        assert!(!alias_is_real("husky", None));
    }

    use super::*;
    use crate::npm::env::NodeExtras;

    fn node(loc: &str, dir: &str, depth: usize, link: bool) -> Node {
        Node {
            location: loc.into(),
            dir: dir.into(),
            name: loc.rsplit('/').next().unwrap().into(),
            package_name: None,
            version: Some("1.0.0".into()),
            resolved: None,
            integrity: Some("sha512-x".into()),
            dev: false,
            optional: false,
            peer: false,
            dev_optional: false,
            in_bundle: false,
            link,
            depth,
            edges: Default::default(),
            bins: vec![],
        }
    }

    fn manifest(name: &str, scripts: &[(&str, &str)]) -> Manifest {
        Manifest {
            name: Some(name.into()),
            version: Some("1.0.0".into()),
            scripts: scripts
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..Default::default()
        }
    }

    fn extras() -> NodeExtras {
        NodeExtras {
            resolved: "null".into(),
            integrity: "null".into(),
            optional: false,
            dev: false,
            peer: false,
            dev_optional: false,
        }
    }

    #[test]
    fn phases_barriers_order_and_root_scripts() {
        let all = [
            ("preinstall", "x"),
            ("install", "x"),
            ("postinstall", "x"),
            ("prepare", "x"),
            ("preprepare", "x"),
            ("dependencies", "x"),
        ];
        let a = node("node_modules/a", "/p/node_modules/a", 1, false);
        let c = node(
            "node_modules/a/node_modules/c",
            "/p/node_modules/a/node_modules/c",
            2,
            false,
        );
        let b = node("node_modules/B", "/p/node_modules/B", 1, false);
        let ws = node("packages/ws", "/p/packages/ws", 1, true);
        let (ma, mc, mb, mw) = (
            manifest("a", &all),
            manifest("c", &all),
            manifest("B", &[("postinstall", "y")]),
            manifest("ws", &all),
        );
        let mut root = manifest("root", &all);
        root.scripts.insert("postprepare".into(), "z".into());
        let env = BTreeMap::new();
        let input = PlanInput {
            project: Path::new("/p"),
            nodes: vec![
                (&c, &mc, extras()),
                (&b, &mb, extras()),
                (&ws, &mw, extras()),
                (&a, &ma, extras()),
            ],
            root: &root,
            npm_env: &env,
            node_gyp_bin: Path::new("/g"),
            run_dependencies: true,
            run_root: true,
        };
        let phases = plan(&input);
        let summary: Vec<(String, Vec<String>)> = phases
            .iter()
            .map(|p| {
                (
                    p.name.clone(),
                    p.jobs.iter().map(|j| j.location.clone()).collect(),
                )
            })
            .collect();
        let s = |p: &str, l: &[&str]| {
            (
                p.to_string(),
                l.iter().map(|x| x.to_string()).collect::<Vec<_>>(),
            )
        };
        assert_eq!(
            summary,
            vec![
                s(
                    "deps:preinstall",
                    &["node_modules/a", "node_modules/a/node_modules/c"]
                ),
                s(
                    "deps:install",
                    &["node_modules/a", "node_modules/a/node_modules/c"]
                ),
                s(
                    "deps:postinstall",
                    &[
                        "node_modules/a",
                        "node_modules/B",
                        "node_modules/a/node_modules/c"
                    ]
                ),
                s("links:preinstall", &["packages/ws"]),
                s("links:prepare", &["packages/ws"]),
                s("links:install", &["packages/ws"]),
                s("links:postinstall", &["packages/ws"]),
                s("root:dependencies", &[""]),
                s("root:preinstall", &[""]),
                s("root:install", &[""]),
                s("root:postinstall", &[""]),
                s("root:preprepare", &[""]),
                s("root:prepare", &[""]),
                s("root:postprepare", &[""]),
            ]
        );
        // Dependency prepare never runs; root scripts are foreground and get no arborist extras.
        let root_install = &phases[9].jobs[0];
        assert!(root_install.foreground);
        assert!(!root_install.env.contains_key("npm_package_resolved"));
        assert_eq!(phases[1].jobs[0].env["npm_package_resolved"], "null");
        assert_eq!(phases[1].jobs[0].env["npm_lifecycle_event"], "install");
        assert_eq!(
            phases[1].jobs[0].env["npm_package_json"],
            "/p/node_modules/a/package.json"
        );
    }
}
