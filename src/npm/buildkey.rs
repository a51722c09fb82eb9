//! What can change a package script's result, for the build cache key: the script and its
//! package, the packages it can read (its dependency closure, by integrity), the node it runs
//! with and the headers it builds against, the machine (platform, arch, libc), the toolchain
//! (compiler and python versions), the build-relevant environment and the sandbox policy.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::Path;
use std::process::Command;

use serde_json::Value;

use super::scripts::Job;
use super::tree::resolve_edge;

/// Facts about the machine, gathered once per install.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Machine {
    /// `(name, value)` pairs: `node`, `libc`, `cc`, `c++`, `python3`, `platform`, `arch`,
    /// `headers`.
    pub facts: BTreeMap<String, String>,
}

impl Machine {
    /// Ask the machine: `node` (the install's node), the C library, the compilers and python on
    /// `path`, the headers in `nodedir`.
    pub fn gather(node: &Path, path: &str, nodedir: Option<&Path>) -> Machine {
        let mut facts = BTreeMap::new();
        facts.insert("platform".into(), std::env::consts::OS.into());
        facts.insert("arch".into(), std::env::consts::ARCH.into());
        facts.insert(
            "node".into(),
            first_line(
                Command::new(node)
                    .args(["-p", "process.version + ' abi ' + process.versions.modules + ' napi ' + process.versions.napi"]),
            ),
        );
        for (name, program, arg) in [
            ("libc", "ldd", "--version"),
            ("cc", "cc", "--version"),
            ("c++", "c++", "--version"),
            ("python3", "python3", "--version"),
            ("make", "make", "--version"),
        ] {
            let found = crate::util::search_path(path, program, Path::new("/"));
            let value = match found {
                Some(p) => first_line(Command::new(p).arg(arg)),
                None => "absent".to_string(),
            };
            facts.insert(name.into(), value);
        }
        let headers = nodedir.map_or_else(
            || "none".to_string(),
            |d| {
                let h = d.join("include/node/node_version.h");
                match std::fs::read(&h) {
                    Ok(bytes) => format!("{} {}", d.display(), crate::util::sha256_hex(&bytes)),
                    Err(_) => format!("{} (no node_version.h)", d.display()),
                }
            },
        );
        facts.insert("headers".into(), headers);
        Machine { facts }
    }
}

/// The first line a command prints (stdout, else stderr), or why there is none. Never fails:
/// a fact that cannot be read is a value too (it keys a different entry).
fn first_line(c: &mut Command) -> String {
    match c
        .stdin(std::process::Stdio::null())
        .env_remove("NODE_OPTIONS")
        .output()
    {
        Ok(o) => {
            let text = if o.stdout.is_empty() {
                o.stderr
            } else {
                o.stdout
            };
            String::from_utf8_lossy(&text)
                .lines()
                .next()
                .unwrap_or("")
                .trim()
                .to_string()
        }
        Err(e) => format!("unavailable ({})", e.kind()),
    }
}

/// Environment variables that change what a build produces (besides every `npm_config_*`
/// setting, which npm derives from the user's configuration).
const BUILD_ENV: [&str; 14] = [
    "CC",
    "CXX",
    "CPP",
    "CFLAGS",
    "CXXFLAGS",
    "CPPFLAGS",
    "LDFLAGS",
    "LD",
    "AR",
    "PYTHON",
    "NODE_ENV",
    "CI",
    "PKG_CONFIG_PATH",
    "LIBRARY_PATH",
];

/// `npm_config_*` settings that never change a build's output (paths of npm's own files, log
/// and progress settings, the per-run user agent).
fn volatile_npm_config(name: &str) -> bool {
    [
        "npm_config_cache",
        "npm_config_logs_dir",
        "npm_config_loglevel",
        "npm_config_progress",
        "npm_config_user_agent",
        "npm_config_update_notifier",
        "npm_config_fund",
        "npm_config_audit",
        "npm_config_color",
        "npm_config_jobs",
    ]
    .contains(&name)
}

/// Every key input of `job`'s run: `(name, value)`, as strings.
pub fn inputs(
    job: &Job,
    packages: &BTreeMap<String, Value>,
    machine: &Machine,
    profile_digest: &str,
    before_digest: &str,
) -> BTreeMap<String, String> {
    let mut k = BTreeMap::new();
    k.insert(
        "format".into(),
        format!("ringfence {} v1", env!("CARGO_PKG_VERSION")),
    );
    k.insert("package".into(), format!("{}@{}", job.name, job.version));
    k.insert("location".into(), job.location.clone());
    k.insert("dir".into(), job.dir.display().to_string());
    k.insert("event".into(), job.event.clone());
    k.insert("script".into(), job.command.clone());
    k.insert(
        "integrity".into(),
        job.integrity.clone().unwrap_or_else(|| "none".into()),
    );
    // The package directory as the script finds it (earlier events' outputs included).
    k.insert("before".into(), before_digest.to_string());
    k.insert("profile".into(), profile_digest.to_string());
    for (name, value) in &machine.facts {
        k.insert(format!("machine.{name}"), value.clone());
    }
    for (name, value) in &job.env {
        let relevant = (name.starts_with("npm_config_") && !volatile_npm_config(name))
            || BUILD_ENV.contains(&name.as_str());
        if relevant {
            k.insert(format!("env.{name}"), value.clone());
        }
    }
    for (loc, identity) in closure(packages, &job.location) {
        k.insert(format!("dep.{loc}"), identity);
    }
    k
}

/// The packages `location` can reach through its dependencies (resolved as node does), each
/// with its identity (integrity, else version and resolved).
fn closure(packages: &BTreeMap<String, Value>, location: &str) -> BTreeMap<String, String> {
    let mut seen: BTreeSet<String> = BTreeSet::new();
    let mut queue: VecDeque<String> = VecDeque::from([location.to_string()]);
    let mut out = BTreeMap::new();
    while let Some(loc) = queue.pop_front() {
        if !seen.insert(loc.clone()) || seen.len() > 100_000 {
            continue;
        }
        let Some(entry) = packages.get(&loc) else {
            continue;
        };
        if loc != location {
            let s = |f: &str| entry.get(f).and_then(Value::as_str).unwrap_or("");
            let id = if s("integrity").is_empty() {
                format!("{} {}", s("version"), s("resolved"))
            } else {
                s("integrity").to_string()
            };
            out.insert(loc.clone(), id);
        }
        for field in ["dependencies", "optionalDependencies", "peerDependencies"] {
            if let Some(deps) = entry.get(field).and_then(Value::as_object) {
                for name in deps.keys() {
                    if let Some(to) = resolve_edge(packages, &loc, name) {
                        queue.push_back(to);
                    }
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lock() -> BTreeMap<String, Value> {
        serde_json::from_str(
            r#"{
            "node_modules/addon": {"version": "1.0.0", "integrity": "sha512-A", "dependencies": {"nan": "^2"}},
            "node_modules/nan": {"version": "2.0.0", "integrity": "sha512-N", "dependencies": {"util": "1"}},
            "node_modules/util": {"version": "1.0.0", "integrity": "sha512-U"},
            "node_modules/other": {"version": "9.0.0", "integrity": "sha512-O"}
        }"#,
        )
        .unwrap()
    }

    #[test]
    fn the_closure_is_what_the_package_can_reach() {
        let c = closure(&lock(), "node_modules/addon");
        assert_eq!(
            c.keys().cloned().collect::<Vec<_>>(),
            vec![
                "node_modules/nan".to_string(),
                "node_modules/util".to_string()
            ]
        );
        assert_eq!(c["node_modules/nan"], "sha512-N");
    }

    #[test]
    fn volatile_settings_stay_out_and_build_settings_go_in() {
        let job = Job {
            kind: super::super::scripts::Kind::Dep,
            location: "node_modules/addon".into(),
            name: "addon".into(),
            version: "1.0.0".into(),
            event: "install".into(),
            command: "node-gyp rebuild".into(),
            dir: "/p/node_modules/addon".into(),
            env: [
                ("npm_config_cache", "/home/u/.npm"),
                ("npm_config_nodedir", "/usr"),
                ("CC", "clang"),
                ("JOBS", "2"),
                ("HOME", "/home/u"),
            ]
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect(),
            foreground: false,
            optional: false,
            integrity: Some("sha512-A".into()),
            claimed_name: None,
        };
        let k = inputs(&job, &lock(), &Machine::default(), "p", "b");
        assert_eq!(k["env.npm_config_nodedir"], "/usr");
        assert_eq!(k["env.CC"], "clang");
        assert!(!k.contains_key("env.npm_config_cache"));
        assert!(!k.contains_key("env.JOBS") && !k.contains_key("env.HOME"));
        assert_eq!(k["dep.node_modules/util"], "sha512-U");
        assert!(!k.contains_key("dep.node_modules/other"));
        assert_eq!(k["script"], "node-gyp rebuild");
    }
}
