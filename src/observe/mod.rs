//! Recording what sandboxed code tried. Observation never enforces (namespaces and Landlock do):
//! it plants decoys, watches them, compares, and turns what it saw into [`Finding`]s, which are
//! data in the report, never errors.

mod aggregate;
pub mod decoys;
pub mod envprobe;
pub mod net;
pub mod pristine;
pub mod syscalls;

pub use crate::findings::{Actor, Code, Finding, FindingKind, Severity, order, worst};

pub use crate::util::now_unix_ms;

use std::collections::BTreeSet;

use crate::sandbox::Outcome;
use crate::sandbox::spec::SandboxSpec;
use decoys::{Canary, DecoyHome};

/// The recording attached to one sandboxed run.
#[derive(Debug)]
pub struct Observation {
    decoys: DecoyHome,
    env_probes: envprobe::EnvProbes,
    sinkhole: Option<net::Sinkhole>,
    recorder: Option<syscalls::Recorder>,
    context: syscalls::Context,
}

impl Observation {
    /// Plant a decoy home at the spec's HOME and replace credential variables with canaries
    /// (except the names the caller passed explicitly with `--env`).
    pub fn attach(spec: &mut SandboxSpec, explicit_env: &[String]) -> std::io::Result<Self> {
        Self::attach_with_caches(spec, explicit_env, &[], None)
    }

    /// [`Observation::attach`], naming shared read-only caches (npm's) whose write attempts are
    /// expected noise, and — when the tier gave the script another HOME — the caller's real home,
    /// whose files the script may try by absolute path.
    pub fn attach_with_caches(
        spec: &mut SandboxSpec,
        explicit_env: &[String],
        caches: &[std::path::PathBuf],
        host_home: Option<&std::path::Path>,
    ) -> std::io::Result<Self> {
        let mut decoys = DecoyHome::plant(&spec.home)?;
        spec.home_source = Some(decoys.host_dir().to_path_buf());
        let keep: Vec<(String, String)> = spec
            .exec
            .env
            .iter()
            .filter(|(k, _)| {
                explicit_env
                    .iter()
                    .any(|e| e == k || e.split_once('=').is_some_and(|(n, _)| n == k))
            })
            .cloned()
            .collect();
        let mut env: Vec<(String, String)> = spec
            .exec
            .env
            .iter()
            .filter(|kv| !keep.contains(kv))
            .cloned()
            .collect();
        decoys.scrub_env(&mut env);
        env.extend(keep);
        spec.exec.env = env;
        let (env_probes, probe_log) = envprobe::EnvProbes::plant(spec, host_home)?;
        spec.exec.env.sort();
        let preload_option = probe_log
            .parent()
            .map(|d| format!("--require={}", d.join("preload.js").display()))
            .unwrap_or_default();
        let context = syscalls::Context {
            home: spec.home.clone(),
            preload_option,
            host_network: spec.tier == crate::sandbox::spec::Tier::Landlock,
            redirect: None,
            writable: spec
                .mounts
                .iter()
                .filter(|m| m.kind == crate::sandbox::spec::MountKind::ReadWrite)
                .map(|m| m.path.clone())
                .chain([probe_log])
                // The landlock tier's private host directory for /tmp and TMPDIR.
                .chain(spec.private_tmp.clone())
                .collect(),
            visible: spec
                .mounts
                .iter()
                .filter(|m| {
                    matches!(
                        m.kind,
                        crate::sandbox::spec::MountKind::ReadWrite
                            | crate::sandbox::spec::MountKind::ReadOnly
                            | crate::sandbox::spec::MountKind::Denied
                    )
                })
                .map(|m| m.path.clone())
                .collect(),
            denied_paths: spec
                .mounts
                .iter()
                .filter(|m| m.kind == crate::sandbox::spec::MountKind::Denied)
                .map(|m| m.path.clone())
                .collect(),
            creatable: Vec::new(),
            npm: Vec::new(),
            caches: caches.to_vec(),
            cwd: spec.exec.cwd.clone(),
            denied: {
                use crate::sandbox::seccomp;
                let plan = seccomp::deny_plan(spec.enforcement.seccomp);
                seccomp::denial_table(&seccomp::split_for_recorder(&plan).1)
            },
        };
        Ok(Observation {
            decoys,
            env_probes,
            sinkhole: None,
            recorder: None,
            context,
        })
    }

    /// Files the recorder creates on the script's behalf when it asks to (policy allows them
    /// and they did not exist).
    pub fn allow_creating(&mut self, paths: &[std::path::PathBuf]) {
        self.context.creatable = paths.to_vec();
    }

    /// The paths the real npm runs from: its processes' reads of the user's npm config are
    /// npm's own (see `envprobe::is_npm`).
    pub fn know_npm(&mut self, paths: &[std::path::PathBuf]) {
        self.context.npm = paths.to_vec();
    }

    /// Take over what the sandbox hands the supervisor: the sinkhole's sockets, the recorder's
    /// listener.
    pub fn take(&mut self, what: crate::sandbox::Attach) {
        match what {
            crate::sandbox::Attach::Started => {}
            crate::sandbox::Attach::Sinkhole(sockets) => {
                self.sinkhole = Some(net::Sinkhole::start_with(sockets, self.decoys.canaries()));
            }
            crate::sandbox::Attach::Recorder(fd) => {
                if self.context.host_network && self.sinkhole.is_none() {
                    // The landlock tier: the recorder hands connections and UDP sockets over
                    // to a sinkhole of our own.
                    let sinkhole = net::Sinkhole::start_with(Vec::new(), self.decoys.canaries());
                    self.context.redirect = Some(std::sync::Arc::new(sinkhole.redirect()));
                    self.context.host_network = false;
                    self.sinkhole = Some(sinkhole);
                }
                self.recorder = Some(syscalls::Recorder::start(fd, self.context.clone()));
            }
        }
    }

    /// Everything observed, once the run is over.
    pub fn finish(self, outcome: &Outcome) -> Observed {
        // The tree is killed when the script's own process exits; the run ends right after.
        let outcome_end_ms = now_unix_ms();
        let t = std::time::Instant::now();
        let recorded = self.recorder.map(|r| r.finish()).unwrap_or_default();
        let t_recorder = t.elapsed();
        let collected = self.env_probes.collect_all();
        let t_preload = t.elapsed();
        let (env_probes, mut touched) = (collected.probes, collected.files);
        // Forensic recording sees every program's reads, not only node's.
        touched.extend(recorded.home_reads.iter().cloned());
        let mut home = self.decoys.findings();
        name_home_writers(&mut home, &recorded.home_writes);
        let t_home = t.elapsed();
        let mut findings =
            attribute_home_reads(home, &touched, &recorded.execs, &self.decoys, &self.context);
        tracing::debug!(
            "finishing the recording: recorder {t_recorder:?}, preload logs {:?}, decoy home {:?}",
            t_preload - t_recorder,
            t_home - t_preload
        );
        match self.sinkhole {
            Some(s) => {
                let served = s.finish(self.decoys.canaries(), &recorded.connects);
                let unread = net::sent_encrypted(&collected.net, self.decoys.canaries(), &served);
                findings.extend(served);
                findings.extend(unread);
                if self.context.redirect.is_some() {
                    // The landlock tier refuses unix sockets before any connect the recorder
                    // could see: node's attempts are known from the preload alone.
                    let unix: Vec<envprobe::NetProbe> = collected
                        .net
                        .iter()
                        .filter(|p| p.kind == "unix")
                        .cloned()
                        .collect();
                    findings.extend(net::unanswered(&unix, self.decoys.canaries()));
                }
            }
            // No sinkhole (the landlock tier): what node code tried to reach, from the preload.
            None => findings.extend(net::unanswered(&collected.net, self.decoys.canaries())),
        }
        let writes = net::registry_writes(&collected.net, &findings);
        findings.extend(writes);
        findings.extend(recorded.findings);
        // Datagrams to ports the sinkhole does not serve (DNS it decodes itself).
        for (seen, data) in recorded
            .datagrams
            .iter()
            .filter(|(s, _)| !s.what.ends_with(":53"))
        {
            let hits = net::canaries_in(data, self.decoys.canaries());
            if hits.is_empty() {
                continue;
            }
            findings.push(Finding {
                code: Code::DatagramExfiltration,
                kind: FindingKind::Exfiltration,
                severity: Severity::Critical,
                summary: format!(
                    "secret sent in a datagram to `{}` ({})",
                    seen.what,
                    hits.iter()
                        .map(|c| c.id.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                target: seen.what.clone(),
                detail: Some(format!("{} bytes seen by the syscall recorder", data.len())),
                process: Some(seen.actor.clone()),
                at_unix_ms: Some(seen.at_unix_ms),
            });
        }
        if collected.tampered.0 > 0 {
            findings.push(Finding {
                code: Code::RecordingDegraded,
                kind: FindingKind::EscapeAttempt,
                severity: Severity::Medium,
                summary: format!(
                    "the node preload's log holds {} entr{} the preload cannot have written: what node code did may be missing or forged",
                    collected.tampered.0,
                    if collected.tampered.0 == 1 { "y" } else { "ies" }
                ),
                target: "preload log".into(),
                detail: Some(collected.tampered.1.join("; ")),
                process: None,
                at_unix_ms: Some(outcome_end_ms),
            });
        }
        let spawned = recorded.spawned;
        findings.extend(envprobe::findings(&env_probes, &|name| {
            self.decoys.env_holding(name)
        }));
        for p in &outcome.survivors {
            let pid = u32::try_from(p.pid).unwrap_or(0);
            let did: Vec<&str> = findings
                .iter()
                .filter(|f| f.process.as_ref().is_some_and(|a| a.pid == pid))
                .map(|f| f.summary.as_str())
                .take(5)
                .collect();
            findings.push(Finding {
                code: Code::Survivor,
                kind: FindingKind::Survivor,
                severity: Severity::High,
                summary: format!(
                    "a process outlived the script and was killed: `{}`",
                    p.argv.join(" ")
                ),
                target: format!("pid {} (parent {})", p.pid, p.ppid),
                detail: (!did.is_empty())
                    .then(|| format!("before it was killed it: {}", did.join("; "))),
                process: Some(Actor {
                    pid,
                    argv: p.argv.clone(),
                }),
                at_unix_ms: Some(outcome_end_ms),
            });
        }
        // A destination a secret was sent to is that exfiltration, not also a connection that
        // "sent nothing secret" (the sinkhole saw only the TLS handshake the preload read past).
        let exfiltrated: BTreeSet<String> = findings
            .iter()
            .filter(|f| f.kind == FindingKind::Exfiltration)
            .map(|f| f.target.clone())
            .collect();
        findings.retain(|f| {
            !(f.kind == FindingKind::NetworkAttempt
                && f.severity <= Severity::Low
                && exfiltrated.contains(&f.target))
        });
        escalate_project_secret_probes(&mut findings);
        order(&mut findings);
        // Two mechanisms may see the same thing (the preload and forensic recording): once, the
        // earliest sighting.
        let mut seen = std::collections::BTreeSet::new();
        findings.retain(|f| seen.insert((f.kind, f.target.clone())));
        // Many alike (a thousand survivors, tunnel names, refused writes): one, with the count.
        let findings = aggregate::fold(findings);
        Observed {
            findings,
            canaries: self.decoys.canaries().to_vec(),
            spawned,
            env_probes,
        }
    }
}

/// A look at the project's `.env` alone is what configuration loaders do (low); in a run that
/// also goes after the user's credentials it is part of the harvest (high).
fn escalate_project_secret_probes(findings: &mut [Finding]) {
    let harvesting = findings.iter().any(|f| {
        f.severity >= Severity::High
            && matches!(
                f.code,
                Code::DecoyRead
                    | Code::SecretPathProbe
                    | Code::EnvironRead
                    | Code::KeyAgentSocket
                    | Code::CredentialHelper
            )
    });
    if !harvesting {
        return;
    }
    for f in findings
        .iter_mut()
        .filter(|f| f.code == Code::ProjectSecretProbe)
    {
        f.severity = Severity::High;
        f.summary = format!("{}, alongside other credential harvesting", f.summary);
    }
}

/// Name the process behind decoy reads (the kernel's access time has no pid): node code's file
/// accesses noted by the preload, or a command line that names the file (`cat ~/.npmrc`). A decoy
/// read only by nested npm runs (its own user config) is expected and low. Sensitive paths under
/// HOME that node code looked for but that hold no decoy are findings of their own.
fn attribute_home_reads(
    mut findings: Vec<Finding>,
    touched: &[syscalls::Sighting],
    execs: &[syscalls::Sighting],
    decoys: &DecoyHome,
    context: &syscalls::Context,
) -> Vec<Finding> {
    name_decoy_readers(&mut findings, touched, execs, &context.npm);
    environ_reads(&mut findings, touched);
    // Paths already reported, so that each is reported once.
    let mut seen = BTreeSet::new();
    decoy_reads_without_atime(&mut findings, touched, decoys, &context.npm, &mut seen);
    secret_path_probes(&mut findings, touched, decoys, context, &mut seen);
    findings
}

/// Name the process behind each decoy read the access time showed: the first reader that is not
/// a nested npm run; a `.npmrc` read only by nested npm runs is low.
fn name_decoy_readers(
    findings: &mut [Finding],
    touched: &[syscalls::Sighting],
    execs: &[syscalls::Sighting],
    npm: &[std::path::PathBuf],
) {
    for f in findings
        .iter_mut()
        .filter(|f| f.kind == FindingKind::SecretRead && f.process.is_none())
    {
        let mut readers: Vec<(Actor, u64)> = touched
            .iter()
            .filter(|t| t.what == f.target)
            .map(|t| (t.actor.clone(), t.at_unix_ms))
            .collect();
        readers.extend(
            execs
                .iter()
                .filter(|e| e.what.split(' ').any(|w| w == f.target))
                .map(|e| (e.actor.clone(), e.at_unix_ms)),
        );
        readers.sort_by_key(|r| r.1);
        let npm_only = !readers.is_empty()
            && readers.iter().all(|(a, _)| envprobe::is_npm(&a.argv, npm))
            && f.target.ends_with("/.npmrc");
        if npm_only {
            f.severity = Severity::Low;
            f.summary = format!("{} (by a nested npm run: its own user config)", f.summary);
        }
        let first = readers
            .iter()
            .find(|(a, _)| !envprobe::is_npm(&a.argv, npm))
            .or(readers.first());
        if let Some((actor, _)) = first {
            f.process = Some(actor.clone());
        }
    }
}

/// Name the process behind each change the home's diff found: the first that opened that path
/// for writing.
fn name_home_writers(findings: &mut [Finding], writes: &[syscalls::Sighting]) {
    for f in findings.iter_mut().filter(|f| f.process.is_none()) {
        if let Some(w) = writes.iter().find(|w| w.what == f.target) {
            f.process = Some(w.actor.clone());
        }
    }
}

/// Other processes' environments, as node code read them (the same rule as the recorder's).
fn environ_reads(findings: &mut Vec<Finding>, touched: &[syscalls::Sighting]) {
    let environ: Vec<(&str, &syscalls::Sighting)> = touched
        .iter()
        .filter_map(|t| syscalls::environ_owner(&t.what).map(|pid| (pid, t)))
        .collect();
    if let Some((_, first)) = environ.first() {
        let pids = environ.iter().map(|(pid, _)| (*pid).to_string()).collect();
        findings.extend(syscalls::environ_finding(
            &pids,
            Some(first.actor.clone()),
            Some(first.at_unix_ms),
        ));
    }
}

/// A decoy that node code read but whose access time did not move (a filesystem where atime is
/// off): the preload's sighting is the finding.
fn decoy_reads_without_atime(
    findings: &mut Vec<Finding>,
    touched: &[syscalls::Sighting],
    decoys: &DecoyHome,
    npm: &[std::path::PathBuf],
    seen: &mut BTreeSet<String>,
) {
    for t in touched {
        let path = std::path::Path::new(&t.what);
        if decoys.is_decoy(path)
            && !envprobe::is_npm(&t.actor.argv, npm)
            && !findings.iter().any(|f| f.target == t.what)
            && seen.insert(t.what.clone())
        {
            findings.push(Finding {
                code: Code::DecoyRead,
                kind: FindingKind::SecretRead,
                severity: Severity::High,
                summary: format!(
                    "read decoy {} `{}`",
                    syscalls::secret_path(path).unwrap_or("secret"),
                    t.what
                ),
                target: t.what.clone(),
                detail: Some(
                    "seen by the node preload or the syscall recorder (an open the access time does not show: O_NOATIME, O_PATH, a noatime filesystem); the file held only per-run canary values".into(),
                ),
                process: Some(t.actor.clone()),
                at_unix_ms: Some(t.at_unix_ms),
            });
        }
    }
}

/// Sensitive paths that node code looked for but that hold no decoy: the user's key paths absent
/// from the decoy home or not visible in the sandbox, and the project's own credential files.
fn secret_path_probes(
    findings: &mut Vec<Finding>,
    touched: &[syscalls::Sighting],
    decoys: &DecoyHome,
    context: &syscalls::Context,
    seen: &mut BTreeSet<String>,
) {
    for t in touched {
        let path = std::path::Path::new(&t.what);
        let project_secret = context.project_secret(path);
        let Some(class) =
            syscalls::secret_path(path).or(project_secret.then_some("a credential file"))
        else {
            continue;
        };
        if decoys.is_decoy(path)
            || envprobe::is_npm(&t.actor.argv, &context.npm)
            || !seen.insert(t.what.clone())
        {
            continue;
        }
        let f = if project_secret {
            Finding::new(
                Code::ProjectSecretProbe,
                format!(
                    "looked for the project's {} `{}` (denied to dependency scripts; nothing was read)",
                    class.trim_start_matches("a "),
                    t.what
                ),
                &t.what,
            )
        } else {
            Finding::new(
                Code::SecretPathProbe,
                format!(
                    "looked for {class} `{}` ({})",
                    t.what,
                    if context.in_decoy_home(path) {
                        "absent from the decoy home"
                    } else {
                        "not visible in the sandbox"
                    }
                ),
                &t.what,
            )
        };
        findings.push(
            f.detail("seen by the node preload: a read, stat or existence check")
                .process(Some(t.actor.clone()))
                .at(Some(t.at_unix_ms)),
        );
    }
}

/// Everything recorded for one run.
#[derive(Debug, Clone, Default)]
pub struct Observed {
    /// Classified behaviour, most severe first.
    pub findings: Vec<Finding>,
    /// The canaries planted.
    pub canaries: Vec<Canary>,
    /// Distinct command lines the script ran.
    pub spawned: Vec<syscalls::Spawned>,
    /// Environment variable names its node processes looked up.
    pub env_probes: Vec<envprobe::EnvProbe>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(path: &str, argv: &[&str], at: u64) -> syscalls::Sighting {
        syscalls::Sighting {
            what: path.into(),
            actor: Actor {
                pid: 5,
                argv: argv.iter().map(|a| (*a).to_string()).collect(),
            },
            at_unix_ms: at,
        }
    }

    /// The names used in summaries are the report's.
    #[test]
    fn names_match_the_report() {
        for s in [
            Severity::Info,
            Severity::Low,
            Severity::Medium,
            Severity::High,
            Severity::Critical,
        ] {
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        for k in [
            FindingKind::SecretRead,
            FindingKind::Exfiltration,
            FindingKind::NetworkAttempt,
            FindingKind::PersistenceAttempt,
            FindingKind::TamperAttempt,
            FindingKind::EscapeAttempt,
            FindingKind::Survivor,
            FindingKind::Fingerprinting,
        ] {
            assert_eq!(serde_json::to_value(k).unwrap(), k.as_str());
        }
    }

    /// Decoy reads get a process from the preload or a command line; nested npm reading its
    /// own config is low; a decoy read the access time missed (noatime) still counts; looking
    /// for absent secrets is a finding of its own.
    #[test]
    fn home_reads_are_attributed() {
        let decoys = DecoyHome::plant(std::path::Path::new("/home/u")).unwrap();
        let atime = |rel: &str| Finding {
            code: Code::DecoyRead,
            kind: FindingKind::SecretRead,
            severity: Severity::High,
            summary: format!("read decoy `~/{rel}`"),
            target: format!("/home/u/{rel}"),
            detail: None,
            process: None,
            at_unix_ms: Some(1),
        };
        let touched = vec![
            seen(
                "/home/u/.npmrc",
                &[
                    "node",
                    "/usr/lib/node_modules/npm/bin/npm-cli.js",
                    "run",
                    "x",
                ],
                2,
            ),
            seen("/home/u/.aws/credentials", &["node", "steal.js"], 3),
            seen("/home/u/.azure/accessTokens.json", &["node", "steal.js"], 4),
            seen("/home/u/.kube/config", &["node", "steal.js"], 5),
        ];
        let execs = vec![syscalls::Sighting {
            what: "cat /home/u/.ssh/id_ed25519".into(),
            actor: Actor {
                pid: 9,
                argv: vec!["cat".into(), "/home/u/.ssh/id_ed25519".into()],
            },
            at_unix_ms: 6,
        }];
        let out = attribute_home_reads(
            vec![
                atime(".npmrc"),
                atime(".aws/credentials"),
                atime(".ssh/id_ed25519"),
            ],
            &touched,
            &execs,
            &decoys,
            &syscalls::Context {
                home: "/home/u".into(),
                visible: vec!["/home/u/project".into()],
                npm: vec!["/usr/lib/node_modules/npm/bin/npm-cli.js".into()],
                ..Default::default()
            },
        );
        let get = |t: &str| out.iter().find(|f| f.target == t).unwrap();
        assert_eq!(get("/home/u/.npmrc").severity, Severity::Low);
        // A process is npm by the real npm's path, never by a name it chose: a script's own
        // `npm-cli.js`, or a process titled `npm`, reading the npm token is a decoy read.
        for argv in [
            &["node", "/home/u/project/node_modules/evil/npm-cli.js"][..],
            &["node", "./npm-cli.js"][..],
            &["npm", "install"][..],
        ] {
            let out = attribute_home_reads(
                vec![atime(".npmrc")],
                &[seen("/home/u/.npmrc", argv, 2)],
                &[],
                &decoys,
                &syscalls::Context {
                    home: "/home/u".into(),
                    npm: vec![
                        "/usr/bin/npm".into(),
                        "/usr/lib/node_modules/npm/bin/npm-cli.js".into(),
                    ],
                    ..Default::default()
                },
            );
            assert_eq!(out[0].severity, Severity::High, "{argv:?}: {out:?}");
        }
        assert_eq!(
            get("/home/u/.aws/credentials")
                .process
                .as_ref()
                .unwrap()
                .argv[1],
            "steal.js"
        );
        assert_eq!(
            get("/home/u/.ssh/id_ed25519").process.as_ref().unwrap().pid,
            9
        );
        // The access time missed it: the preload's sighting is enough.
        assert_eq!(get("/home/u/.kube/config").severity, Severity::High);
        let absent = get("/home/u/.azure/accessTokens.json");
        assert!(
            absent.summary.contains("absent from the decoy home"),
            "{absent:?}"
        );
        assert_eq!(out.len(), 5);
    }
}
