//! Which environment variables a script's node processes looked up. A preload (`envprobe.js`,
//! loaded through `NODE_OPTIONS=--require`) wraps `process.env` in a forwarding Proxy and writes
//! the names it is asked for into a per-run log directory; after the run they become
//! [`EnvProbe`]s in the report and, for CI-detection and credential names, findings. Scripts in
//! other languages are not covered (their environment access is a libc read, invisible to any
//! cheap mechanism); their secrets are canaries anyway.

use std::collections::BTreeMap;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::syscalls::Sighting;
use super::{Actor, Code, Finding, FindingKind, Severity};
use crate::sandbox::spec::{MountKind, MountSpec, SandboxSpec};

const PRELOAD: &str = include_str!("envprobe.js");

/// The preload as planted: without its comment lines, which name ringfence (whatever the
/// command can read names nothing of it; a determined script still sees that node loads a
/// preload — docs/tiers.md).
fn unbranded(source: &str) -> String {
    let mut out = String::with_capacity(source.len());
    for line in source.lines() {
        if !line.trim_start().starts_with("//") {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// Variables whose only use is telling CI systems apart (ci-info's list, abridged).
pub const CI_VARS: &[&str] = &[
    "CI",
    "CONTINUOUS_INTEGRATION",
    "BUILD_NUMBER",
    "BUILD_ID",
    "RUN_ID",
    "GITHUB_ACTIONS",
    "GITHUB_WORKFLOW",
    "GITHUB_RUN_ID",
    "GITHUB_REPOSITORY",
    "GITLAB_CI",
    "BUILDKITE",
    "CIRCLECI",
    "CIRCLE_SHA1",
    "TRAVIS",
    "JENKINS_URL",
    "JENKINS_HOME",
    "HUDSON_URL",
    "CODEBUILD_BUILD_NUMBER",
    "CODEBUILD_BUILD_ID",
    "TF_BUILD",
    "BITBUCKET_BUILD_NUMBER",
    "BITBUCKET_COMMIT",
    "DRONE",
    "TEAMCITY_VERSION",
    "APPVEYOR",
    "SEMAPHORE",
    "NETLIFY",
    "VERCEL",
    "NOW_BUILDER",
    "BUDDY",
    "CF_PAGES",
    "RENDER",
    "HEROKU_TEST_RUN_ID",
    "WOODPECKER",
    "CIRRUS_CI",
    "BUILDER_OUTPUT",
];

impl Drop for EnvProbes {
    /// The log directory is sandbox-written: removed without following links, whatever its
    /// permissions and depth.
    fn drop(&mut self) {
        crate::cleanup::unregister(self.dir.path());
        if let Err(e) = crate::untrusted::remove_tree(self.dir.path()) {
            tracing::warn!("removing `{}`: {e}", self.dir.path().display());
        }
    }
}

/// One variable name looked up, the first time it was.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvProbe {
    /// The variable name; `*` for a listing of the whole environment (a copy, a dump).
    pub name: String,
    /// `get` (`process.env.X`), `has` (`'X' in process.env`) or `list`.
    pub op: String,
    /// The process that first looked it up.
    pub process: Actor,
    /// When.
    pub at_unix_ms: u64,
}

/// The planted preload and its log directory for one run.
#[derive(Debug)]
pub struct EnvProbes {
    dir: tempfile::TempDir,
    /// The landlock tier replaces HOME with a private directory: the caller's real home (whose
    /// files the script may still try by absolute path) and the HOME it was given instead.
    host_home: Option<(PathBuf, PathBuf)>,
}

#[derive(Deserialize)]
struct Line {
    op: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    argv: Option<Vec<String>>,
    #[serde(default)]
    t: u64,
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    path: Option<String>,
    #[serde(default)]
    data: Option<String>,
    #[serde(default)]
    method: Option<String>,
}

/// A network attempt node code made through its own modules, as the preload saw it (before the
/// kernel refused it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetProbe {
    /// `tcp`, `unix`, `dns`, `http`, `https`, `fetch` or `udp`.
    pub kind: String,
    /// `host:port` (a unix socket's path for `unix`, port 0 for `dns`).
    pub dest: String,
    /// The URL path and query (HTTP).
    pub path: Option<String>,
    /// The first bytes of a datagram.
    pub data: Option<Vec<u8>>,
    /// The HTTP method (HTTP requests; upper case).
    pub method: Option<String>,
    /// Who.
    pub actor: Actor,
    /// When.
    pub at_unix_ms: u64,
}

/// What the preload logged.
#[derive(Debug, Default)]
pub struct Collected {
    /// Environment names looked up.
    pub probes: Vec<EnvProbe>,
    /// Files under HOME (and other watched paths) node code touched.
    pub files: Vec<Sighting>,
    /// Network attempts through node's modules.
    pub net: Vec<NetProbe>,
    /// Entries of the log the preload cannot have written (a file not named as it names its
    /// files, a link or FIFO, a line that is not one of its lines): how many, and the first few.
    /// The log directory is writable by the script, so forged or erased entries are possible;
    /// these are the ones that show.
    pub tampered: (usize, Vec<String>),
}

impl Collected {
    fn tampered(&mut self, why: String) {
        self.tampered.0 += 1;
        if self.tampered.1.len() < 3 {
            self.tampered.1.push(why);
        }
    }
}

/// `<pid>-<ms>.jsonl`, the preload's name for a process's log.
fn preload_log_name(name: &str) -> Option<u32> {
    let (pid, rest) = name.split_once('-')?;
    let ms = rest.strip_suffix(".jsonl")?;
    (!ms.is_empty() && ms.bytes().all(|b| b.is_ascii_digit()))
        .then(|| pid.parse().ok())
        .flatten()
}

impl EnvProbes {
    /// Write the preload and an empty log directory, bind both into `spec` (in the full tier
    /// at the same name in its private /tmp) and make node load the preload. Returns the sandbox path of the log
    /// directory with the recorder (its writes there are ours, not the script's).
    pub fn plant(spec: &mut SandboxSpec, host_home: Option<&Path>) -> io::Result<(Self, PathBuf)> {
        let host_home = host_home
            .filter(|h| *h != spec.home && h.is_absolute() && *h != Path::new("/"))
            .map(Path::to_path_buf);
        // A name like any other program's temporary directory: nothing a script can list or read
        // names ringfence (a fingerprint to behave only when unwatched).
        let dir = tempfile::Builder::new().tempdir()?;
        crate::cleanup::register(dir.path());
        let preload = dir.path().join("preload.js");
        // Host paths bound below HOME are not the decoy home: node's module loading there (the
        // project's node_modules) is not a read of HOME.
        let binds: Vec<String> = spec
            .mounts
            .iter()
            .filter(|m| {
                matches!(
                    m.kind,
                    MountKind::ReadOnly | MountKind::ReadWrite | MountKind::Denied
                ) && [Some(&spec.home), host_home.as_ref()]
                    .into_iter()
                    .flatten()
                    .any(|h| m.path.starts_with(h) && m.path != *h)
            })
            .map(|m| m.path.to_string_lossy().into_owned())
            .collect();
        let binds = serde_json::to_string(&binds).map_err(io::Error::other)?;
        let homes: Vec<String> = host_home
            .iter()
            .map(|h| h.to_string_lossy().into_owned())
            .collect();
        let homes = serde_json::to_string(&homes).map_err(io::Error::other)?;
        // Stripped once per process, not per sandbox.
        static PLANTED: std::sync::OnceLock<String> = std::sync::OnceLock::new();
        let text = PLANTED
            .get_or_init(|| unbranded(PRELOAD))
            .replacen("/*RINGFENCE_BINDS*/[]", &binds, 1)
            .replacen("/*RINGFENCE_HOMES*/[]", &homes, 1);
        std::fs::write(&preload, text)?;
        std::fs::set_permissions(&preload, std::fs::Permissions::from_mode(0o444))?;
        let log = dir.path().join("log");
        std::fs::create_dir(&log)?;
        std::fs::set_permissions(&log, std::fs::Permissions::from_mode(0o700))?;
        // The landlock tier has no mount namespace: the preload is used where it is. The full
        // tier mounts it at the same name in its private /tmp, so both look alike from inside.
        let inside = match spec.tier {
            crate::sandbox::spec::Tier::Full => {
                Path::new("/tmp").join(dir.path().file_name().unwrap_or_default())
            }
            crate::sandbox::spec::Tier::Landlock => dir.path().to_path_buf(),
        };
        spec.mounts.push(MountSpec {
            path: inside.join("preload.js"),
            kind: MountKind::Recording {
                source: preload,
                writable: false,
            },
        });
        spec.mounts.push(MountSpec {
            path: inside.join("log"),
            kind: MountKind::Recording {
                source: log,
                writable: true,
            },
        });
        let require = format!("--require={}", inside.join("preload.js").display());
        match spec.exec.env.iter_mut().find(|(k, _)| k == "NODE_OPTIONS") {
            Some((_, v)) if !v.trim().is_empty() => *v = format!("{v} {require}"),
            Some((_, v)) => *v = require,
            None => spec.exec.env.push(("NODE_OPTIONS".into(), require)),
        }
        let log = inside.join("log");
        Ok((
            EnvProbes {
                dir,
                host_home: host_home.map(|h| (h, spec.home.clone())),
            },
            log,
        ))
    }

    /// The names looked up, first occurrence each, in time order, and the files under HOME that
    /// node code opened, read or checked (the path in `what`). Call after the run.
    pub fn collect(&self) -> (Vec<EnvProbe>, Vec<Sighting>) {
        let c = self.collect_all();
        (c.probes, c.files)
    }

    /// Everything the preload logged, network attempts included. A file of the caller's real
    /// home is reported at the same place in the HOME the script was given (`~/.ssh/id_rsa`
    /// either way), so that both tiers judge it alike.
    pub fn collect_all(&self) -> Collected {
        let mut c = collect(&self.dir.path().join("log"));
        if let Some((host, apparent)) = &self.host_home {
            for f in &mut c.files {
                if let Ok(rest) = Path::new(&f.what).strip_prefix(host) {
                    f.what = apparent.join(rest).to_string_lossy().into_owned();
                }
            }
        }
        c
    }
}

fn collect(log: &Path) -> Collected {
    let mut c = Collected::default();
    let mut first: BTreeMap<String, EnvProbe> = BTreeMap::new();
    let mut files: Vec<Sighting> = Vec::new();
    let mut net: Vec<NetProbe> = Vec::new();
    let Ok(entries) = std::fs::read_dir(log) else {
        return Collected::default();
    };
    let mut logs: Vec<PathBuf> = entries.flatten().take(100_000).map(|e| e.path()).collect();
    logs.sort();
    // The directory is the script's to write: forged or endless logs cost at most this much.
    let mut total: u64 = 32 << 20;
    for path in logs.into_iter().take(4096) {
        let Some(name) = path.file_name() else {
            continue;
        };
        // The printers escape what they show (a name is the script's choice).
        let shown = name.to_string_lossy();
        // `<pid>-<ms>.jsonl`, written by the preload (or forged by the script: it is its own).
        let Some(pid) = name.to_str().and_then(preload_log_name) else {
            c.tampered(format!("a file the preload does not write: `{shown}`"));
            continue;
        };
        // Regular files only, never through a link, never more than 4 MiB each.
        let Ok(Some((bytes, more))) =
            crate::untrusted::read_file(log, Path::new(name), (4 << 20).min(total))
        else {
            c.tampered(format!("`{shown}` is not a regular file"));
            continue;
        };
        total = total.saturating_sub(bytes.len() as u64);
        let text = String::from_utf8_lossy(&bytes);
        let mut actor = Actor {
            pid,
            argv: Vec::new(),
        };
        // The last line may be cut short (a process killed while writing, a budget): only
        // complete lines are judged.
        let complete = text.ends_with('\n') && !more;
        let lines: Vec<&str> = text.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            let judged = complete || i + 1 < lines.len();
            let Ok(l) = serde_json::from_str::<Line>(line) else {
                if judged && !line.trim().is_empty() {
                    c.tampered(format!("a line of `{shown}` that is not the preload's"));
                }
                continue;
            };
            let known = matches!(
                l.op.as_str(),
                "start" | "net" | "open" | "get" | "has" | "list"
            );
            if !known || (i == 0) != (l.op == "start") {
                c.tampered(format!(
                    "a line of `{shown}` the preload cannot have written (op `{}`, line {})",
                    l.op.chars().take(32).collect::<String>(),
                    i + 1
                ));
                continue;
            }
            if l.op == "start" {
                actor.argv = l.argv.unwrap_or_default();
                continue;
            }
            let Some(name) = l.name.filter(|n| !n.is_empty() && n.len() <= 256) else {
                continue;
            };
            if l.op == "net" {
                if net.len() < 2000 {
                    net.push(NetProbe {
                        kind: l.kind.unwrap_or_default(),
                        dest: name,
                        path: l.path,
                        data: l.data.and_then(|d| super::net::decode_hex(&d)),
                        method: l.method.filter(|m| m.len() <= 16),
                        actor: actor.clone(),
                        at_unix_ms: l.t,
                    });
                }
                continue;
            }
            if l.op == "open" {
                if files.len() < 10_000 && name.starts_with('/') {
                    files.push(Sighting {
                        what: name,
                        actor: actor.clone(),
                        at_unix_ms: l.t,
                    });
                }
                continue;
            }
            if !matches!(l.op.as_str(), "get" | "has" | "list") {
                continue;
            }
            let probe = EnvProbe {
                name: name.clone(),
                op: l.op,
                process: actor.clone(),
                at_unix_ms: l.t,
            };
            match first.get(&name) {
                Some(p) if p.at_unix_ms <= probe.at_unix_ms => {}
                _ => {
                    first.insert(name, probe);
                }
            }
        }
    }
    let mut out: Vec<EnvProbe> = first.into_values().collect();
    out.sort_by(|a, b| a.at_unix_ms.cmp(&b.at_unix_ms).then(a.name.cmp(&b.name)));
    out.truncate(2000);
    files.sort_by_key(|f| f.at_unix_ms);
    net.sort_by_key(|n| n.at_unix_ms);
    Collected {
        probes: out,
        files,
        net,
        ..c
    }
}

/// Whether `argv` is npm itself (`npm …`, `node …/npm-cli.js …`): nested npm runs read the user
/// config (`~/.npmrc`) by design.
///
/// Only the real npm counts: `argv[0]` or, for node, `argv[1]` is exactly one of the paths it
/// runs from (`npm`: its launcher on PATH and the CLI scripts, as the launcher's shebang hands
/// them to node and as node records them). A script chooses its own file names and process
/// titles, so `./npm-cli.js` or a process that calls itself `npm` is not npm. With no npm known
/// (`ringfence run`), nothing is.
pub fn is_npm(argv: &[String], npm: &[PathBuf]) -> bool {
    let is =
        |a: Option<&String>| a.is_some_and(|a| npm.iter().any(|p| p.as_os_str() == a.as_str()));
    is(argv.first())
        || (argv.first().is_some_and(|a| super::syscalls::is_node(a)) && is(argv.get(1)))
}

/// Findings from the probes: CI detection (fingerprinting, low: common in legitimate tools, the
/// signal is what a script does differently in CI) and credential variables looked up (medium:
/// they held canaries; sending one anywhere is a critical exfiltration on its own).
pub fn findings(
    probes: &[EnvProbe],
    holding: &dyn Fn(&str) -> super::decoys::EnvHolding,
) -> Vec<Finding> {
    use super::decoys::EnvHolding;
    let mut out = Vec::new();
    let ci: Vec<&EnvProbe> = probes
        .iter()
        .filter(|p| CI_VARS.contains(&p.name.as_str()))
        .collect();
    if let Some(first) = ci.first() {
        let names: Vec<&str> = ci.iter().map(|p| p.name.as_str()).collect();
        out.push(Finding {
            code: Code::CiDetection,
            kind: FindingKind::Fingerprinting,
            severity: Severity::Low,
            summary: format!(
                "checked whether it runs in CI ({} variable{}: {})",
                names.len(),
                if names.len() == 1 { "" } else { "s" },
                names.join(", ")
            ),
            target: "env:CI".into(),
            detail: Some(
                "install-time code that branches on CI is how time-gated payloads decide when to act"
                    .into(),
            ),
            process: Some(first.process.clone()),
            at_unix_ms: Some(first.at_unix_ms),
        });
    }
    for p in probes
        .iter()
        .filter(|p| super::decoys::is_secret_var(&p.name))
    {
        // A lookup alone harms nothing (the value is a canary; its leaving is critical
        // elsewhere): a credential of yours is worth a medium, a decoy or an unset name
        // (SDKs and CI detectors probe dozens) is not.
        let (severity, summary, detail) = match holding(&p.name) {
            EnvHolding::YoursReplaced => (
                Severity::Medium,
                format!("looked up your credential variable `{}`", p.name),
                "set in your environment; the script saw a per-run canary, never the real value",
            ),
            EnvHolding::PlantedDecoy => (
                Severity::Low,
                format!("looked up the credential variable `{}`", p.name),
                "not set in your environment: a decoy ringfence planted, holding a per-run canary",
            ),
            EnvHolding::Unset => (
                Severity::Info,
                format!("looked up the unset credential-like variable `{}`", p.name),
                "not set: nothing was there to read",
            ),
        };
        out.push(Finding {
            code: Code::CredentialVariableLookup,
            kind: FindingKind::SecretRead,
            severity,
            summary,
            target: format!("env:{}", p.name),
            detail: Some(detail.into()),
            process: Some(p.process.clone()),
            at_unix_ms: Some(p.at_unix_ms),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    /// What a script can read of the preload names nothing of ringfence.
    #[test]
    fn the_planted_preload_is_unbranded() {
        let text = super::unbranded(super::PRELOAD)
            .replacen("/*RINGFENCE_BINDS*/[]", "[]", 1)
            .replacen("/*RINGFENCE_HOMES*/[]", "[]", 1);
        assert!(!text.to_ascii_lowercase().contains("ringfence"));
        assert!(text.contains("new Proxy"), "code lines stay");
    }

    use super::*;

    #[test]
    fn probes_are_collected_first_occurrence_and_classified() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("7-1.jsonl"),
            concat!(
                r#"{"op":"start","argv":["node","payload.js"],"t":10}"#,
                "\n",
                r#"{"op":"get","name":"CI","t":12}"#,
                "\n",
                r#"{"op":"has","name":"GITHUB_ACTIONS","t":13}"#,
                "\n",
                r#"{"op":"get","name":"NPM_TOKEN","t":14}"#,
                "\n",
                "not json\n",
                r#"{"op":"list","name":"*","t":15}"#,
                "\n",
                r#"{"op":"open","name":"/home/u/.npmrc","t":16}"#,
                "\n",
            ),
        )
        .unwrap();
        std::fs::write(
            dir.path().join("9-2.jsonl"),
            concat!(
                r#"{"op":"start","argv":["node","stage2.js"],"t":5}"#,
                "\n",
                r#"{"op":"get","name":"CI","t":6}"#,
                "\n",
                r#"{"op":"get","name":"PATH","t":20}"#,
                "\n",
            ),
        )
        .unwrap();
        std::fs::write(dir.path().join("junk"), "{}").unwrap();
        let Collected { probes, files, .. } = collect(dir.path());
        assert_eq!(files.len(), 1);
        assert_eq!(
            (files[0].what.as_str(), files[0].actor.pid),
            ("/home/u/.npmrc", 7)
        );
        let names: Vec<(&str, u32)> = probes
            .iter()
            .map(|p| (p.name.as_str(), p.process.pid))
            .collect();
        assert_eq!(
            names,
            vec![
                ("CI", 9),
                ("GITHUB_ACTIONS", 7),
                ("NPM_TOKEN", 7),
                ("*", 7),
                ("PATH", 9)
            ]
        );
        assert_eq!(probes[0].process.argv, vec!["node", "stage2.js"]);
        use crate::observe::decoys::EnvHolding;
        let f = findings(&probes, &|_| EnvHolding::YoursReplaced);
        assert_eq!(f.len(), 2);
        assert_eq!(
            (f[0].kind, f[0].severity),
            (FindingKind::Fingerprinting, Severity::Low)
        );
        assert!(f[0].summary.contains("CI, GITHUB_ACTIONS"));
        assert_eq!(f[1].target, "env:NPM_TOKEN");
        assert_eq!(f[1].severity, Severity::Medium);
        // A decoy ringfence planted, or a name that was never set: probes, not harm.
        let f = findings(&probes, &|_| EnvHolding::PlantedDecoy);
        assert_eq!(f[1].severity, Severity::Low);
        let f = findings(&probes, &|_| EnvHolding::Unset);
        assert_eq!(f[1].severity, Severity::Info);
        assert!(!f[1].detail.as_deref().unwrap().contains("canary"));
    }
}
