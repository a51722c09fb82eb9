//! Pure classification tables: which paths are secrets or tampering, which commands and connections are what.

use super::*;

/// Credential files looked for outside HOME (another user's home, the host's root, the
/// project's dotenv files, orchestrator secrets). Opens of invisible paths in general are noise
/// (PATH and library lookups), so only these names count.
/// What kind of secret a path holds by convention, if any.
pub(crate) fn secret_path(path: &Path) -> Option<&'static str> {
    let s = path.to_string_lossy();
    let file = path
        .file_name()
        .map(|f| f.to_string_lossy())
        .unwrap_or_default();
    if ["/etc/shadow", "/etc/gshadow", "/etc/sudoers"].contains(&s.as_ref())
        || s.starts_with("/var/run/secrets/")
        || s.starts_with("/run/secrets/")
    {
        return Some("a system secret");
    }
    if s.contains("/.ssh/id_") || s.ends_with("/.ssh/authorized_keys") {
        return Some("an ssh key");
    }
    if file == ".npmrc" || s.ends_with("/.git-credentials") || s.ends_with("/.config/gh/hosts.yml")
    {
        return Some("a token file");
    }
    if s.ends_with("/.aws/credentials")
        || s.ends_with("/.kube/config")
        || s.ends_with("/.docker/config.json")
    {
        return Some("cloud credentials");
    }
    if s.contains("/.azure/") || s.contains("/.config/gcloud/") || s.ends_with("/.netrc") {
        return Some("cloud credentials");
    }
    if s.ends_with("_history") {
        return Some("shell history");
    }
    if s.contains("/.ethereum/")
        || s.contains("/.electrum/")
        || s.contains("/.bitcoin/")
        || s.contains("/.config/solana/")
        || s.contains("/.config/Exodus/")
    {
        return Some("a crypto wallet");
    }
    if (file == ".env" || file.starts_with(".env.")) && !s.contains("/node_modules/") {
        return Some("a dotenv file");
    }
    None
}

/// Where a write outside the writable set points, and how bad that is.
pub(super) fn tamper_class(path: &Path) -> Option<(Severity, &'static str)> {
    let s = path.to_string_lossy();
    if s.starts_with("/dev/") || s.starts_with("/proc/") {
        return None;
    }
    // Python writes its bytecode cache opportunistically next to every module it imports
    // (node-gyp's gyp among them) and carries on when it cannot: noise, not tampering.
    if path.components().any(|c| c.as_os_str() == "__pycache__")
        || path.extension().is_some_and(|e| e == "pyc")
    {
        return None;
    }
    let name = |n: &str| path.components().any(|c| c.as_os_str() == n);
    let any = |names: &[&str]| names.iter().any(|n| name(n));
    if any(&[
        ".git",
        ".github",
        ".husky",
        ".gitlab-ci.yml",
        ".circleci",
        ".buildkite",
        "Jenkinsfile",
        "azure-pipelines.yml",
        ".travis.yml",
    ]) {
        return Some((Severity::High, "the project's git hooks or CI workflows"));
    }
    if any(&[
        ".claude",
        ".vscode",
        ".cursor",
        ".mcp.json",
        ".gemini",
        ".windsurf",
        ".codex",
        ".continue",
        "CLAUDE.md",
        "AGENTS.md",
        "GEMINI.md",
    ]) {
        return Some((
            Severity::High,
            "an AI-agent or IDE auto-run config of the project",
        ));
    }
    // `node_modules/.cache/<tool>`: where babel, jiti, terser and eslint keep caches; they carry
    // on without one.
    let mut parts = path.components().map(|c| c.as_os_str());
    if parts.any(|c| c == "node_modules") && parts.next().is_some_and(|c| c == ".cache") {
        return Some((
            Severity::Low,
            "the project's tool cache, node_modules/.cache",
        ));
    }
    if name("node_modules") {
        return Some((Severity::High, "another package"));
    }
    if s.starts_with("/etc/")
        || s.starts_with("/usr/")
        || s.starts_with("/bin")
        || s.starts_with("/lib")
    {
        return Some((Severity::High, "system files"));
    }
    Some((Severity::High, "outside the package's own directory"))
}

/// The pid a `/proc/<pid>/environ` path names, if it names one.
pub(crate) fn environ_owner(path: &str) -> Option<&str> {
    path.strip_prefix("/proc/")
        .and_then(|r| r.strip_suffix("/environ"))
        .filter(|pid| pid.parse::<u32>().is_ok())
}

/// Reads of other processes' environments (`pids` inside the sandbox), whoever saw them: pid 1
/// is ringfence's init, the stand-in for npm (whose environment held the user's tokens), and
/// many pids is a scan; one sibling is only curiosity.
pub(crate) fn environ_finding(
    pids: &std::collections::BTreeSet<String>,
    by: Option<Actor>,
    at_unix_ms: Option<u64>,
) -> Option<Finding> {
    if pids.is_empty() {
        return None;
    }
    let list = pids.iter().cloned().collect::<Vec<_>>().join(", ");
    let scan = pids.contains("1") || pids.len() >= 3;
    Some(Finding {
        code: Code::EnvironRead,
        kind: if scan {
            FindingKind::SecretRead
        } else {
            FindingKind::Fingerprinting
        },
        severity: if scan { Severity::High } else { Severity::Low },
        summary: if scan {
            format!("read other processes' environments (pids {list})")
        } else {
            format!("read the environment of a sibling process (pid {list}) in its own sandbox")
        },
        target: "/proc/*/environ".into(),
        detail: scan.then(|| "a way to steal tokens from the parent (npm) process".into()),
        process: by,
        at_unix_ms,
    })
}

/// How bad a refused deny-table syscall is: the ones that break out of or into other processes,
/// namespaces, the kernel or the terminal are high; the rest (keyrings, NUMA, odd legacy calls,
/// unusual socket families) medium.
pub(super) fn denied_class(name: &str) -> (Severity, &'static str) {
    // `i386:20`, `x32:39` (seccomp::foreign_abi): the classic way around a filter written for
    // one ABI's numbers. Refused whatever the number means; an evasion technique, not harm.
    if name.contains(':') {
        return (
            Severity::Medium,
            "a system call of another ABI, which filters written for this one would not match",
        );
    }
    match name {
        "unshare" | "setns" | "clone" => (Severity::High, "namespace creation or entry"),
        "mount" | "umount2" | "pivot_root" | "chroot" | "open_by_handle_at" | "open_tree"
        | "open_tree_attr" | "move_mount" | "fsopen" | "fsconfig" | "fsmount" | "fspick"
        | "mount_setattr" => (Severity::High, "mount table or filesystem escape"),
        // Some runtimes try io_uring for file I/O and fall back when it is refused; its
        // operations would pass no syscall filter, so the attempt is noted, not alarmed.
        "io_uring_setup" | "io_uring_enter" | "io_uring_register" => (
            Severity::Low,
            "io_uring, whose operations no syscall filter sees; refused, so programs fall back",
        ),
        "ptrace" | "process_vm_readv" | "process_vm_writev" => {
            (Severity::High, "access to another process's memory")
        }
        "bpf" | "perf_event_open" | "userfaultfd" | "init_module" | "finit_module"
        | "delete_module" | "kexec_load" | "kexec_file_load" | "iopl" | "ioperm" => {
            (Severity::High, "kernel attack surface")
        }
        "ioctl" => (Severity::High, "terminal input injection"),
        // Reading the kernel log (`dmesg`: diagnostics of test runners and system-info
        // collectors) is a probe, not an attack.
        "syslog" => (Severity::Low, "reading the kernel log, as `dmesg` does"),
        "socket" => (
            Severity::Medium,
            "a socket family install scripts never need",
        ),
        _ => (Severity::Medium, "a privileged interface"),
    }
}

/// A connection the sinkhole cannot see: a port it does not listen on (refused at once inside
/// the namespace). Ports it serves are reported by the sinkhole itself, with names and payloads.
/// `host_network`: the landlock tier, where there is no sinkhole to record the common ports and
/// loopback is the host's (the kernel refuses the connect).
pub(super) fn inet_connect_finding(addr: &str, host_network: bool) -> Option<Finding> {
    let (host, port) = addr.rsplit_once(':')?;
    let port: u16 = port.parse().ok()?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let sinkhole_port = crate::observe::net::TCP_PORTS.contains(&port) || port == 53;
    if port == 0 || (sinkhole_port && !host_network) {
        return None;
    }
    let ip: std::net::IpAddr = host.parse().ok()?;
    if ip.is_loopback() || ip.is_unspecified() {
        return Some(Finding {
            code: Code::LoopbackConnection,
            kind: FindingKind::NetworkAttempt,
            severity: Severity::Low,
            summary: if host_network {
                format!(
                    "connection attempt to `{addr}` (a service on the host's loopback); refused"
                )
            } else {
                format!(
                    "connection attempt to `{addr}` (the sandbox's own loopback; nothing listens)"
                )
            },
            target: addr.to_string(),
            detail: None,
            process: None,
            at_unix_ms: None,
        });
    }
    let fake = matches!(ip, std::net::IpAddr::V4(v4) if v4.octets()[0] == 198 && (v4.octets()[1] & 0xfe) == 18);
    Some(Finding {
        code: Code::UnservedConnection,
        kind: FindingKind::NetworkAttempt,
        severity: if fake {
            Severity::Medium
        } else {
            Severity::High
        },
        summary: format!(
            "connection attempt to `{addr}`{}{}; refused",
            if sinkhole_port {
                ""
            } else {
                " on an unusual port"
            },
            if fake {
                " (a name the sinkhole resolved)"
            } else {
                " (a hard-coded address)"
            }
        ),
        target: addr.to_string(),
        detail: None,
        process: None,
        at_unix_ms: None,
    })
}

/// The subcommand of a `git` command line and what follows it: git's global options
/// (`-C dir`, `-c k=v`, `--git-dir=…`) are skipped, so `git -C x push` is a push and `git log
/// --grep push` is not.
pub(super) fn subcommand(argv: &[String]) -> Option<(&str, &[String])> {
    let mut i = 1;
    while let Some(a) = argv.get(i) {
        if matches!(
            a.as_str(),
            "-C" | "-c" | "--git-dir" | "--work-tree" | "--namespace"
        ) {
            i += 2;
        } else if a.starts_with('-') {
            i += 1;
        } else {
            return Some((a.as_str(), &argv[i + 1..]));
        }
    }
    None
}

/// npm commands that act on the user's registry account or publish (npm accepts any
/// unambiguous prefix of a command: `npm publ`).
pub(super) const NPM_ACCOUNT_COMMANDS: &[&str] = &[
    "publish",
    "unpublish",
    "whoami",
    "adduser",
    "add-user",
    "login",
    "token",
    "access",
    "owner",
    "author",
    "deprecate",
    "dist-tag",
    "dist-tags",
    "team",
    "org",
    "profile",
    "star",
    "hook",
];

/// npm's other commands and aliases (npm 11), which an account-command prefix could also
/// abbreviate and which end the search for one.
pub(super) const NPM_OTHER_COMMANDS: &[&str] = &[
    "audit",
    "bugs",
    "cache",
    "ci",
    "completion",
    "config",
    "dedupe",
    "diff",
    "docs",
    "doctor",
    "edit",
    "exec",
    "explain",
    "explore",
    "find-dupes",
    "fund",
    "get",
    "help",
    "help-search",
    "init",
    "install",
    "install-ci-test",
    "install-test",
    "link",
    "ll",
    "logout",
    "ls",
    "outdated",
    "pack",
    "ping",
    "pkg",
    "prefix",
    "prune",
    "query",
    "rebuild",
    "repo",
    "restart",
    "root",
    "run",
    "run-script",
    "sbom",
    "search",
    "set",
    "shrinkwrap",
    "stars",
    "start",
    "stop",
    "test",
    "undeprecate",
    "uninstall",
    "unstar",
    "update",
    "version",
    "view",
    "i",
    "it",
    "cit",
    "add",
    "rm",
    "r",
    "un",
    "unlink",
    "remove",
    "x",
    "c",
    "up",
    "upgrade",
    "t",
    "tst",
    "rb",
    "v",
    "info",
    "show",
    "s",
    "se",
    "find",
    "ln",
    "la",
    "list",
    "create",
    "innit",
    "isntall",
];

pub(super) fn npm_account_command(sub: &str) -> bool {
    if NPM_ACCOUNT_COMMANDS.contains(&sub) {
        return true;
    }
    // An abbreviation: a prefix of exactly one account command and of no other command.
    sub.len() >= 3
        && !NPM_OTHER_COMMANDS.contains(&sub)
        && NPM_ACCOUNT_COMMANDS
            .iter()
            .filter(|c| c.starts_with(sub))
            .count()
            == 1
        && !NPM_OTHER_COMMANDS.iter().any(|c| c.starts_with(sub))
}

/// Whether an npm command line runs an account or publish command: the first word that names
/// a command decides (words before it that name none are option values: `--otp 1 publish`).
pub(super) fn npm_runs_account_command(npm_argv: &[String]) -> bool {
    for a in npm_argv.iter().skip(1).filter(|a| !a.starts_with('-')) {
        if npm_account_command(a) {
            return true;
        }
        if NPM_OTHER_COMMANDS.contains(&a.as_str()) {
            return false;
        }
    }
    false
}

pub(super) fn exec_finding(argv: &[String]) -> Option<Finding> {
    let base = |s: &str| s.rsplit('/').next().unwrap_or(s).to_string();
    let prog = base(argv.first()?);
    // `node …/npm-cli.js publish`: npm run through node.
    let npm_argv: Option<&[String]> = if prog == "npm" {
        Some(argv)
    } else if prog == "node" && argv.get(1).is_some_and(|a| a.ends_with("npm-cli.js")) {
        Some(&argv[1..])
    } else {
        None
    };
    let git = (prog == "git").then(|| subcommand(argv)).flatten();
    let (code, kind, severity, what) = if npm_argv.is_some_and(npm_runs_account_command) {
        (
            Code::NpmAccountCommand,
            FindingKind::TamperAttempt,
            Severity::High,
            "worm propagation: npm account or publish command",
        )
    } else if matches!(git, Some(("credential", _)))
        || (prog == "gh" && argv.get(1).is_some_and(|a| a == "auth"))
        || prog == "trufflehog"
        || prog == "git-credential-manager"
    {
        (
            Code::CredentialHelper,
            FindingKind::SecretRead,
            Severity::High,
            "credential helper or secret scanner",
        )
    } else if [
        "sudo", "su", "doas", "pkexec", "nsenter", "docker", "podman", "kubectl", "setcap",
        "mount", "unshare", "chroot", "insmod", "modprobe",
    ]
    .contains(&prog.as_str())
    {
        (
            Code::EscapeTool,
            FindingKind::EscapeAttempt,
            Severity::High,
            "privilege or container escape tool",
        )
    } else if [
        "curl", "wget", "nc", "ncat", "socat", "ssh", "scp", "telnet", "dig", "nslookup", "host",
    ]
    .contains(&prog.as_str())
    {
        (
            Code::NetworkTool,
            FindingKind::NetworkAttempt,
            Severity::Medium,
            "network tool",
        )
    } else if matches!(git, Some(("push", _))) {
        (
            Code::GitPush,
            FindingKind::TamperAttempt,
            Severity::High,
            "git push from an install script",
        )
    } else if let Some(("remote", rest)) = git
        && rest
            .first()
            .is_some_and(|a| ["add", "set-url", "rename"].contains(&a.as_str()))
    {
        (
            Code::GitRemoteChange,
            FindingKind::TamperAttempt,
            Severity::Medium,
            "changes where the project's git remote points",
        )
    } else if ["crontab", "systemctl", "systemd-run", "launchctl", "at"].contains(&prog.as_str()) {
        (
            Code::SchedulerPersistence,
            FindingKind::PersistenceAttempt,
            Severity::High,
            "scheduler / service persistence",
        )
    } else {
        return None;
    };
    let shown: Vec<&str> = argv.iter().take(8).map(String::as_str).collect();
    // The tool and its subcommand (`npm publish`, `git push`), past an interpreter running it.
    let start = usize::from(
        ["node", "sh", "bash", "dash", "python", "python3"].contains(&prog.as_str())
            && argv.get(1).is_some_and(|a| !a.starts_with('-')),
    );
    let mut target = base(&argv[start]).replace("npm-cli.js", "npm");
    if let Some(sub) = argv
        .get(start + 1)
        .filter(|a| !a.starts_with('-') && a.len() <= 40)
    {
        target = format!("{target} {sub}");
    }
    if let Some((sub, _)) = git {
        target = format!("git {sub}");
    }
    Some(Finding {
        code,
        kind,
        severity,
        summary: format!("ran `{}` ({what})", shown.join(" ")),
        target,
        detail: None,
        process: None,
        at_unix_ms: None,
    })
}

/// A bin in a `node_modules/.bin` named like a system or toolchain command, run in that
/// command's place: `(command, owning package)`, unless the package is the command's own
/// distribution. The bin is npm's link (read, never followed); an exec attempt of a name that
/// is not there (a shell's PATH search) is nothing.
pub(super) fn shadow_bin(program: &Path) -> Option<(String, String)> {
    let name = program.file_name()?.to_str()?;
    let dir = program.parent()?;
    if dir.file_name()? != ".bin"
        || dir.parent()?.file_name()? != "node_modules"
        || !crate::util::SHADOWABLE.contains(&name)
    {
        return None;
    }
    let owner = crate::util::bin_owner(&std::fs::read_link(program).ok()?)?;
    (!crate::util::bin_is_the_commands_own(name, &owner)).then(|| (name.to_string(), owner))
}
