//! The findings catalogue: one stable kebab-case code per rule, with its class, default
//! severity, what it means and what a user should do. Codes are the identity of a finding
//! across runs and versions (SARIF `ruleId`s, approvals, suppressions): never renamed, never
//! reused. `docs/findings.md` is generated from this table (`ringfence findings --markdown`)
//! and a test checks it is current. Adding a finding: a variant here, its rule in [`RULES`],
//! then `Finding::new(Code::…, summary, target)` where it is observed.

use serde::{Deserialize, Serialize};

use super::{FindingKind, Severity};

/// The codes: each variant with its one stable name.
macro_rules! codes {
    ($($(#[$doc:meta])* $var:ident => $name:literal,)*) => {
        /// One rule of the catalogue.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        pub enum Code {
            $($(#[$doc])* #[serde(rename = $name)] $var,)*
        }

        impl Code {
            /// Every code.
            pub const ALL: &[Code] = &[$(Code::$var,)*];

            /// The stable kebab-case name (`decoy-read`).
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Code::$var => $name,)*
                }
            }
        }
    };
}

codes! {
    /// A decoy secret in the throwaway home was read.
    DecoyRead => "decoy-read",
    /// A path that conventionally holds a secret was looked for outside the decoys.
    SecretPathProbe => "secret-path-probe",
    /// The project's own secret files, denied to dependency scripts, were looked for.
    ProjectSecretProbe => "project-secret-probe",
    /// A credential variable was looked up.
    CredentialVariableLookup => "credential-variable-lookup",
    /// Other processes' environments were read.
    EnvironRead => "environ-read",
    /// A key agent's socket was used.
    KeyAgentSocket => "key-agent-socket",
    /// A credential helper or secret scanner was run.
    CredentialHelper => "credential-helper",
    /// A canary left in a DNS query name.
    DnsExfiltration => "dns-exfiltration",
    /// A canary left in a TCP payload.
    TcpExfiltration => "tcp-exfiltration",
    /// A canary left in a datagram.
    DatagramExfiltration => "datagram-exfiltration",
    /// A canary was written into the package's own directory.
    SecretStaged => "secret-staged",
    /// A DNS lookup.
    DnsLookup => "dns-lookup",
    /// A DNS lookup whose labels carry encoded data.
    DnsTunnel => "dns-tunnel",
    /// A TCP connection the sinkhole served.
    Connection => "connection",
    /// A connection to a port nothing serves.
    UnservedConnection => "unserved-connection",
    /// A connection to the sandbox's own loopback.
    LoopbackConnection => "loopback-connection",
    /// A network tool was run.
    NetworkTool => "network-tool",
    /// Persistence written into the throwaway home.
    HomePersistence => "home-persistence",
    /// An executable dropped into a bin directory of the throwaway home.
    HomeExecutable => "home-executable",
    /// A scheduler or service manager was run.
    SchedulerPersistence => "scheduler-persistence",
    /// A write outside the writable set was refused.
    WriteRefused => "write-refused",
    /// A write to npm's shared cache was refused.
    CacheWrite => "cache-write",
    /// The package rewrote its own manifest.
    ManifestRewritten => "manifest-rewritten",
    /// The package rewrote or erased a file its script ran.
    ExecutedFileRewritten => "executed-file-rewritten",
    /// Other shipped files changed.
    ShippedFileChanged => "shipped-file-changed",
    /// A symbolic link was planted in the throwaway home.
    HomeLinkPlanted => "home-link-planted",
    /// The manifest names a different package than npm installed.
    ManifestConfusion => "manifest-confusion",
    /// An npm account or publish command was run.
    NpmAccountCommand => "npm-account-command",
    /// A write request (publish, unpublish, login, tokens, tags) was sent to a package registry.
    RegistryWrite => "registry-write",
    /// `git push` was run.
    GitPush => "git-push",
    /// The project's git remote was changed.
    GitRemoteChange => "git-remote-change",
    /// A privilege or container escape tool was run.
    EscapeTool => "escape-tool",
    /// A program the script dropped into HOME or /tmp was run.
    DroppedProgram => "dropped-program",
    /// A syscall from the deny table was refused.
    SyscallDenied => "syscall-denied",
    /// A container runtime's socket was reached for.
    ContainerSocket => "container-socket",
    /// A script ran another package's bin that shadows a system or toolchain command.
    ShadowBinRun => "shadow-bin-run",
    /// A process outlived the script.
    Survivor => "survivor",
    /// A script filled its HOME or TMPDIR, or printed, past its sandbox's limit and was stopped.
    LimitExceeded => "limit-exceeded",
    /// CI-detection variables were looked up.
    CiDetection => "ci-detection",
    /// Recording lost part of what happened (a budget ran out, a parser failed).
    RecordingDegraded => "recording-degraded",
    /// A process ran without the recording a run gives every process (node without the preload).
    RecordingEvaded => "recording-evaded",
    /// A connection to a pathname unix socket outside the sandbox's own areas was refused.
    UnixSocketRefused => "unix-socket-refused",
    /// An approved package's script did more than the behaviour its approval recorded.
    BehaviourChanged => "behaviour-changed",
}

/// What the catalogue says about one code.
#[derive(Debug, Clone, Copy)]
pub struct Rule {
    /// The code.
    pub code: Code,
    /// Its class.
    pub kind: FindingKind,
    /// Default severity (some rules raise or lower it with the evidence; the docs say when).
    pub severity: Severity,
    /// What it means.
    pub meaning: &'static str,
    /// Why this severity, and what to do.
    pub advice: &'static str,
}

use Code as C;
use FindingKind as K;
use Severity as S;

/// Every rule, in the order of the docs.
pub const RULES: &[Rule] = &[
    Rule {
        code: C::DecoyRead,
        kind: K::SecretRead,
        severity: S::High,
        meaning: "A script opened a decoy credential file ringfence planted in the throwaway HOME (npm token, SSH key, cloud credentials, wallet). A nested npm run reading ~/.npmrc (its own user config) is low.",
        advice: "High: no legitimate install script reads your keys or tokens. The file held only per-run canaries; look for an exfiltration finding in the same run, and do not use the package.",
    },
    Rule {
        code: C::SecretPathProbe,
        kind: K::SecretRead,
        severity: S::High,
        meaning: "A script looked for a file that conventionally holds a secret, outside the decoys (another user's home, /etc/shadow, /run/secrets, a key path absent from the decoy home).",
        advice: "High: credential harvesting looks exactly like this. Nothing was there to read; treat the package as malicious.",
    },
    Rule {
        code: C::ProjectSecretProbe,
        kind: K::SecretRead,
        severity: S::Low,
        meaning: "A dependency script looked for one of the project's own credential files (.env, .env.*, .npmrc, .netrc, a key or keystore… anywhere in the project outside node_modules), which are denied to dependency scripts.",
        advice: "Low alone: tools that load configuration (prisma generate, dotenv) check for a project .env at install time; the read was refused, nothing was read. High when the same run also goes after your credentials (a decoy read, a secret-path probe, other processes' environments): then it is part of the harvest.",
    },
    Rule {
        code: C::CredentialVariableLookup,
        kind: K::SecretRead,
        severity: S::Medium,
        meaning: "Node code looked up a credential-like environment variable. Medium when it was set in your environment (the script saw a canary, never the value), low for a decoy ringfence planted, info when it was not set at all.",
        advice: "SDKs read their own tokens (SENTRY_AUTH_TOKEN for @sentry/cli); anything else reading NPM_TOKEN or GITHUB_TOKEN at install time deserves a look at its code. The value was a canary: if it left, an exfiltration finding says so.",
    },
    Rule {
        code: C::EnvironRead,
        kind: K::SecretRead,
        severity: S::High,
        meaning: "A script read other processes' environments (/proc/<pid>/environ): pid 1 (the stand-in for npm, whose environment holds tokens) or several pids is a scan (high); one sibling is curiosity (low, fingerprinting).",
        advice: "High: the way to steal tokens from the parent npm process. Treat the package as malicious.",
    },
    Rule {
        code: C::KeyAgentSocket,
        kind: K::SecretRead,
        severity: S::High,
        meaning: "A script tried to connect to an ssh-agent or gpg-agent socket (signing with your keys).",
        advice: "High: no install script needs your agent. Host sockets are not visible in the sandbox; the attempt is the evidence.",
    },
    Rule {
        code: C::CredentialHelper,
        kind: K::SecretRead,
        severity: S::High,
        meaning: "A script ran a credential helper or secret scanner (`git credential`, `gh auth`, trufflehog).",
        advice: "High: asking helpers for tokens is what token-stealing worms do.",
    },
    Rule {
        code: C::DnsExfiltration,
        kind: K::Exfiltration,
        severity: S::Critical,
        meaning: "A canary (a decoy secret, or a credential variable's stand-in) appeared in a DNS query name, in any encoding or case.",
        advice: "Critical: the script sent a secret out. Had it been a real machine, that secret would be gone: rotate what it would have been, remove the package, report it.",
    },
    Rule {
        code: C::TcpExfiltration,
        kind: K::Exfiltration,
        severity: S::Critical,
        meaning: "A canary appeared in what a script sent over TCP (HTTP request, headers, body, raw stream), in any encoding or case. Medium, not critical, when the only secrets are GitHub tokens sent to GitHub itself in a read request (GET or HEAD, as release downloaders authenticate): the token reached its issuer only, in a request that changes nothing.",
        advice: "Critical: a secret left. Remove the package and report it; on a real machine the secret would have to be rotated.",
    },
    Rule {
        code: C::DatagramExfiltration,
        kind: K::Exfiltration,
        severity: S::Critical,
        meaning: "A canary appeared in a UDP datagram sent to a port nothing serves.",
        advice: "Critical: a secret left. Remove the package and report it.",
    },
    Rule {
        code: C::SecretStaged,
        kind: K::Exfiltration,
        severity: S::High,
        meaning: "A script wrote a canary into its own package directory, which outlives the sandbox: high for a decoy file's secret, medium for credential variables alone (a build log that dumps the environment looks the same).",
        advice: "High: staged for runtime exfiltration or republication. Inspect the named file.",
    },
    Rule {
        code: C::DnsLookup,
        kind: K::NetworkAttempt,
        severity: S::Low,
        meaning: "A DNS lookup, answered by the sinkhole (nothing leaves). High for cloud metadata endpoints and known exfiltration/webhook services, medium for the GitHub API, low for other hosts, info for funding banners.",
        advice: "There is no network in the sandbox: a package that needed a download is probably incomplete (the summary says so). High ones are malicious on their own.",
    },
    Rule {
        code: C::DnsTunnel,
        kind: K::NetworkAttempt,
        severity: S::High,
        meaning: "A DNS lookup whose labels decode (hex, base32) to readable text: data tunnelled out through DNS, even without a canary (hostname, user name, paths).",
        advice: "High: no legitimate installer encodes data in host names.",
    },
    Rule {
        code: C::Connection,
        kind: K::NetworkAttempt,
        severity: S::Low,
        meaning: "A TCP connection the sinkhole served: destination, TLS SNI, HTTP request line. Severity by destination (as for dns-lookup) and by what was sent: an upload (a request body, a raw stream) to an ordinary host is medium, a hard-coded address nobody resolved medium.",
        advice: "A download attempt failed closed: the package is probably missing what it downloads. Uploads and webhook/metadata destinations deserve a look at the package.",
    },
    Rule {
        code: C::UnservedConnection,
        kind: K::NetworkAttempt,
        severity: S::High,
        meaning: "A connection to a port the sinkhole does not serve: a hard-coded address (high) or a name the sinkhole resolved (medium).",
        advice: "Command-and-control looks like this; installers use 80 and 443.",
    },
    Rule {
        code: C::LoopbackConnection,
        kind: K::NetworkAttempt,
        severity: S::Low,
        meaning: "A connection to the sandbox's own loopback, where nothing listens (host services are unreachable).",
        advice: "Low: usually a tool probing for a local daemon.",
    },
    Rule {
        code: C::NetworkTool,
        kind: K::NetworkAttempt,
        severity: S::Medium,
        meaning: "A script ran curl, wget, nc, ssh, dig or a similar tool.",
        advice: "Medium: installers use node's own HTTP; shell downloaders are typical of droppers. Look at what it fetched (connection findings).",
    },
    Rule {
        code: C::HomePersistence,
        kind: K::PersistenceAttempt,
        severity: S::High,
        meaning: "A script wrote a persistence location in the (throwaway) HOME: shell rc and login files, autostart, systemd user units, AI-agent and editor configs that run commands, ssh config, credential_process, docker credential helpers.",
        advice: "High: on a real machine this would run later, outside any sandbox. Treat the package as malicious.",
    },
    Rule {
        code: C::HomeExecutable,
        kind: K::PersistenceAttempt,
        severity: S::Medium,
        meaning: "A script dropped an executable into a bin directory of HOME (~/.local/bin, ~/bin, ~/.bun/bin…).",
        advice: "Medium: a brought-along runtime or a second stage; see whether it was run (dropped-program).",
    },
    Rule {
        code: C::SchedulerPersistence,
        kind: K::PersistenceAttempt,
        severity: S::High,
        meaning: "A script ran crontab, systemctl, systemd-run, launchctl or at.",
        advice: "High: scheduling work to run later is persistence.",
    },
    Rule {
        code: C::WriteRefused,
        kind: K::TamperAttempt,
        severity: S::High,
        meaning: "A write outside the script's writable set was refused: the project's git hooks or CI files, AI-agent/IDE auto-run configs, another package, system files, elsewhere in the project.",
        advice: "High: code or config that runs later. If the package is legitimate and needs the write (a git-hook installer, a worker copied into public/), the summary marks the run `partial` and prints the exact `write` allowance for ringfence.toml.",
    },
    Rule {
        code: C::CacheWrite,
        kind: K::TamperAttempt,
        severity: S::Low,
        meaning: "A write into npm's shared cache (read-only in the sandbox) was refused; one finding per cache.",
        advice: "Low: nested npm runs write logs there.",
    },
    Rule {
        code: C::ManifestRewritten,
        kind: K::TamperAttempt,
        severity: S::High,
        meaning: "A script rewrote its own package.json (hooks or version changed: high; other fields: low).",
        advice: "High: hiding what ran, or preparing a republication. The report names the pristine tarball's integrity to compare with.",
    },
    Rule {
        code: C::ExecutedFileRewritten,
        kind: K::TamperAttempt,
        severity: S::High,
        meaning: "A script deleted or rewrote a file its own run executed (self-erasing payload).",
        advice: "High: erasing the evidence. The report has the file's hash before and after.",
    },
    Rule {
        code: C::ShippedFileChanged,
        kind: K::TamperAttempt,
        severity: S::Low,
        meaning: "Other files the package shipped changed (esbuild swaps its JS shim for its binary).",
        advice: "Low: common for platform-binary installers.",
    },
    Rule {
        code: C::HomeLinkPlanted,
        kind: K::TamperAttempt,
        severity: S::High,
        meaning: "A script left a symbolic link in the throwaway HOME. Inside the sandbox HOME is at its real path, so on the host the link points at your real files: bait for tools that inspect the sandbox afterwards. High when it points at a secret or outside HOME.",
        advice: "ringfence never follows it. No legitimate installer does this; treat the package as malicious.",
    },
    Rule {
        code: C::ManifestConfusion,
        kind: K::TamperAttempt,
        severity: S::Medium,
        meaning: "The package's own package.json names a different package than npm installed at that location. Packages are identified by location and source; high when the claimed name has policy allowances (it reached for them).",
        advice: "Check the lockfile entry's resolved URL and integrity.",
    },
    Rule {
        code: C::NpmAccountCommand,
        kind: K::TamperAttempt,
        severity: S::High,
        meaning: "A script ran an npm account or publish command (publish, whoami, token, owner, access…, also abbreviated).",
        advice: "High: worm propagation (Shai-Hulud republishes itself with stolen tokens).",
    },
    Rule {
        code: C::RegistryWrite,
        kind: K::TamperAttempt,
        severity: S::High,
        meaning: "A script's node code sent a write request to a package registry: a PUT, DELETE or PATCH to a public registry (publish, unpublish, dist-tags, owners, adduser), or a login/token request to any registry's API paths. Seen in the request itself by the sinkhole (plain HTTP) or by the node preload before encryption (HTTPS); nothing reached a registry.",
        advice: "High: worm propagation without the npm CLI (republishing packages through the registry's HTTP API with a stolen token). Install scripts only ever read from registries.",
    },
    Rule {
        code: C::GitPush,
        kind: K::TamperAttempt,
        severity: S::High,
        meaning: "A script ran `git push`.",
        advice: "High: pushing from an install script publishes stolen data or code.",
    },
    Rule {
        code: C::GitRemoteChange,
        kind: K::TamperAttempt,
        severity: S::Medium,
        meaning: "A script added or changed a git remote (`git remote add|set-url|rename`).",
        advice: "Medium: preparing a push elsewhere. Reading remotes (`git remote -v`) is not a finding.",
    },
    Rule {
        code: C::EscapeTool,
        kind: K::EscapeAttempt,
        severity: S::High,
        meaning: "A script ran sudo, su, nsenter, docker, kubectl, mount, unshare, chroot, modprobe or a similar tool.",
        advice: "High: privilege or container escape attempts have no place in an install.",
    },
    Rule {
        code: C::DroppedProgram,
        kind: K::EscapeAttempt,
        severity: S::High,
        meaning: "A script ran a program it had dropped into the throwaway HOME or the private /tmp (a binary shipped inside an installed package is not this).",
        advice: "High: a second stage or a brought-along runtime (Shai-Hulud 2 brings bun).",
    },
    Rule {
        code: C::SyscallDenied,
        kind: K::EscapeAttempt,
        severity: S::Medium,
        meaning: "A system call from the deny table was refused: namespaces, mounts, ptrace, bpf, kernel modules, terminal injection (high); keyrings, odd socket families (medium); the kernel log (low).",
        advice: "High ones are escape attempts. dmesg-style reads by test runners are low.",
    },
    Rule {
        code: C::ContainerSocket,
        kind: K::EscapeAttempt,
        severity: S::High,
        meaning: "A script tried to reach a container runtime's socket (docker.sock, containerd, podman).",
        advice: "High: root on the host through the runtime. Host sockets are not visible in the sandbox.",
    },
    Rule {
        code: C::Survivor,
        kind: K::Survivor,
        severity: S::High,
        meaning: "A process outlived the script and was killed with the whole sandbox (daemons, double forks).",
        advice: "High: installers do not leave processes behind; backdoors and miners do. The finding lists what it did before it was killed.",
    },
    Rule {
        code: C::ShadowBinRun,
        kind: K::TamperAttempt,
        severity: S::High,
        meaning: "A script ran a command (node, sh, git, make, python…) that resolved to a bin another package put in node_modules/.bin, which npm puts first on every script's PATH: that package's code ran in the command's place, with the rights of the script that called it. The finding names the package the bin belongs to.",
        advice: "High: a package whose bin is called like a system command takes over every later script that calls it — the root project's scripts included, which may write the whole project. Remove the package, or if it really is that tool's distribution, report it as a false positive.",
    },
    Rule {
        code: C::LimitExceeded,
        kind: K::ResourceAbuse,
        severity: S::Medium,
        meaning: "A script wrote more into its throwaway HOME or private TMPDIR than the profile's home-size / tmp-size allows, made more files there than ringfence counts, or printed more than 256 MiB; ringfence stopped its whole process tree, as at a timeout. The check runs every 250 ms, so the directory can briefly hold what the disk writes in that time beyond the limit; everything in it is removed with the sandbox.",
        advice: "Medium: builds do not fill gigabytes of HOME or print hundreds of MiB; a script that does is broken or trying to exhaust the disk. If a real build needs more, raise [limits] home-size or tmp-size for it.",
    },
    Rule {
        code: C::CiDetection,
        kind: K::Fingerprinting,
        severity: S::Low,
        meaning: "Node code looked up CI-detection variables (CI, GITHUB_ACTIONS, …).",
        advice: "Low: npm itself (ci-info) does this in every nested run. It matters when behaviour differs between CI and a developer machine: `ringfence replay` runs both and lists the differences.",
    },
    Rule {
        code: C::RecordingDegraded,
        kind: K::EscapeAttempt,
        severity: S::Low,
        meaning: "Recording lost part of what the run did: the syscall recorder's event budget ran out (it then keeps only what would be a medium or worse finding, and counts the rest), the sinkhole closed connections unread, left bytes uninspected, or one of its parsers failed on crafted input, or the script filled its HOME or its package directory past what the comparisons after the run read (persistence paths, the manifest and the files its command names are then checked directly). Medium when something that could matter was lost (a parser failure, connections or suspicious events dropped, an incomplete comparison), when the node preload's log holds entries the preload cannot have written (its directory is the script's to write: forged entries are reported, never taken as what node did), or when files the script wrote in its own package directory were made unreadable, so that they could not be searched for staged secrets.",
        advice: "Low: a huge native build can exhaust a budget honestly. The findings of the run are still what was seen, but not everything was seen: flooding the recorder is also how a script would hide. Replay the package alone (`ringfence replay`) and read what else it did.",
    },
    Rule {
        code: C::RecordingEvaded,
        kind: K::EscapeAttempt,
        severity: S::Medium,
        meaning: "A node process started without ringfence's preload (its NODE_OPTIONS was removed or overwritten), so the environment probes and file-access attribution of that process were not recorded. The syscall recorder, which sees every exec whatever the environment, noticed it.",
        advice: "Medium: some tools clean the environment of their children, but a script that spawns node without NODE_OPTIONS also turns recording off. The sandbox still enforced everything; read the rest of the run for what that process did.",
    },
    Rule {
        code: C::UnixSocketRefused,
        kind: K::EscapeAttempt,
        severity: S::High,
        meaning: "A sandboxed process tried to connect to a pathname unix socket outside the sandbox's own private areas (a dev server's socket in the project, a host daemon's socket under /run); the connect was refused with EACCES. Sockets a sandboxed process created itself in its private /tmp, the throwaway home or its writable package directory stay reachable. High when a socket was there; medium when nothing was (the attempt is what matters); low for the system service sockets the C library tries on its own (nscd, userdb, resolved, syslog), which it then does without.",
        advice: "High: a host listener reached over a socket file is a way out of the sandbox (to a dev server, a database, a container runtime, a desktop session). No install script needs another program's socket.",
    },
    Rule {
        code: C::BehaviourChanged,
        kind: K::BehaviourChange,
        severity: S::High,
        meaning: "The package is approved in ringfence-approvals.json, but this run of its script did something the approved record does not hold: a new network destination, a new secret or credential variable, a new program, a new write outside its directory, a new kind of finding. The detail lists exactly what is new against the approved record. Approvals are bound to behaviour, not to a version: a new version that does the same (or less) keeps its approval.",
        advice: "High: this is how a hijacked release of a trusted package looks (the same build, plus a token read and a new host). Read the difference; if it is legitimate, `ringfence approve PKG` records the new behaviour.",
    },
];

impl Code {
    /// The catalogue's rule for this code.
    pub fn rule(self) -> &'static Rule {
        RULES
            .iter()
            .find(|r| r.code == self)
            .expect("every code has a rule (tested)")
    }

    /// Its class.
    pub fn kind(self) -> FindingKind {
        self.rule().kind
    }

    /// Its default severity.
    pub fn default_severity(self) -> Severity {
        self.rule().severity
    }
}

/// The catalogue as Markdown (`docs/findings.md`).
pub fn markdown() -> String {
    use std::fmt::Write as _;
    let mut out = String::from(
        "# Findings\n\nEvery finding in a report has a stable `code` from this catalogue (generated from\n`src/findings/catalog.rs` by `ringfence findings --markdown`; a test keeps this file current).\nSeverities mean harm: high and critical are acts harmful on their own (a secret leaving, a\nrefused write to code or config that runs later, persistence, a survivor, tampering); probes,\nbanners and downloads that failed closed are low or info. `--fail-on` (default `high`) decides\nthe exit status.\n\n| code | class | default severity |\n|---|---|---|\n",
    );
    for r in RULES {
        let _ = writeln!(
            out,
            "| [`{0}`](#{0}) | {1} | {2} |",
            r.code.as_str(),
            r.kind.as_str(),
            r.severity.as_str()
        );
    }
    for r in RULES {
        let _ = write!(
            out,
            "\n## {}\n\n{} · default **{}**\n\n{}\n\n**What to do.** {}\n",
            r.code.as_str(),
            r.kind.as_str(),
            r.severity.as_str(),
            r.meaning,
            r.advice
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_kebab_case_and_every_code_has_one_rule() {
        let mut seen = std::collections::BTreeSet::new();
        for r in RULES {
            let name = r.code.as_str();
            assert!(seen.insert(name), "duplicate code {name}");
            assert!(
                name.chars().all(|c| c.is_ascii_lowercase() || c == '-')
                    && !name.starts_with('-')
                    && !name.ends_with('-'),
                "{name} is not kebab-case"
            );
            assert_eq!(
                RULES.iter().filter(|x| x.code == r.code).count(),
                1,
                "{name}"
            );
            assert!(!r.meaning.is_empty() && !r.advice.is_empty(), "{name}");
        }
        // Every variant has its rule, and serde renders the same name.
        assert_eq!(seen.len(), Code::ALL.len());
        for c in Code::ALL {
            assert_eq!(c.rule().code, *c);
            assert_eq!(
                serde_json::to_value(c).unwrap(),
                serde_json::Value::String(c.as_str().into())
            );
        }
    }

    #[test]
    fn the_report_schema_lists_exactly_the_catalogue() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/report.schema.json");
        let schema: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let listed: Vec<&str> =
            schema["$defs"]["run"]["properties"]["findings"]["items"]["properties"]["code"]["enum"]
                .as_array()
                .expect("the schema lists the finding codes")
                .iter()
                .map(|v| v.as_str().unwrap())
                .collect();
        let ours: Vec<&str> = Code::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(listed, ours);
    }

    #[test]
    fn docs_findings_md_is_current() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/findings.md");
        let on_disk = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            on_disk == markdown(),
            "docs/findings.md is stale: run `cargo run -- findings --markdown > docs/findings.md`"
        );
    }
}
