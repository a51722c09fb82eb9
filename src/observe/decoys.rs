//! The throwaway HOME, populated with realistic decoy credentials carrying per-run canary values,
//! and compared after the run: a decoy whose access time moved was read, a persistence path that
//! changed was written.
//!
//! Reads are detected through the access time, which the kernel updates on every read made
//! through any mount of the file (kernel truth, no TOCTOU, no syscall interception): after
//! planting, each decoy's atime is set far in the past, so even `relatime` updates it on the first
//! read, at any timestamp granularity. inotify would also work but its teardown waits for an SRCU
//! grace period (measured here: 1 to 18 ms per sandbox), which is paid on every run.
//!
//! The directory lives on the host (a private temp dir) and is bind-mounted at the caller's real
//! HOME path inside the sandbox; it is deleted after the run, so nothing written there reaches
//! the real home.

use std::collections::BTreeMap;
use std::io::{self, Read};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use nix::sys::stat::{UtimensatFlags, utimensat};
use nix::sys::time::TimeSpec;
use serde::{Deserialize, Serialize};

use super::{Code, Finding, FindingKind, Severity};

/// A canary: a unique fake secret planted for one run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Canary {
    /// Stable id (`npmrc-token`, `env:NPM_TOKEN`, ...).
    pub id: String,
    /// The value. Fake by construction; safe to print and to match in payloads.
    pub value: String,
}

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    if std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .is_err()
    {
        // Never fatal: fall back to time and pid entropy (still unique per run).
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let seed = t.to_le_bytes();
        let pid = std::process::id().to_le_bytes();
        for (i, b) in buf.iter_mut().enumerate() {
            *b = seed[i % seed.len()] ^ pid[i % pid.len()];
        }
    }
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

fn alnum(hex: &str, len: usize) -> String {
    // Map hex into the alphabet GitHub/npm tokens use, deterministic per canary.
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    hex.as_bytes()
        .chunks(2)
        .cycle()
        .take(len)
        .enumerate()
        .map(|(i, c)| {
            let v = u8::from_str_radix(std::str::from_utf8(c).unwrap_or("0"), 16).unwrap_or(0);
            A[(usize::from(v) + i * 7) % A.len()] as char
        })
        .collect()
}

/// Decoy files: (path relative to HOME, class used in findings).
const SECRET_FILES: [(&str, &str); 12] = [
    (".npmrc", "npm token"),
    (".ssh/id_ed25519", "ssh private key"),
    (".ssh/id_rsa", "ssh private key"),
    (".aws/credentials", "cloud credentials"),
    (".config/gh/hosts.yml", "github token"),
    (".git-credentials", "git credentials"),
    (".docker/config.json", "registry credentials"),
    (".kube/config", "kubernetes credentials"),
    (
        ".config/gcloud/application_default_credentials.json",
        "cloud credentials",
    ),
    (
        ".ethereum/keystore/UTC--2025-01-01T00-00-00.000Z--decoy",
        "crypto wallet",
    ),
    (".claude.json", "AI tool credentials"),
    (".bash_history", "shell history"),
];

/// Paths whose creation or change is persistence (relative to HOME; a trailing `/` means any
/// file below).
const PERSISTENCE: [(&str, &str); 35] = [
    (".bashrc", "shell rc"),
    (".bash_profile", "shell rc"),
    (".bash_login", "shell rc"),
    (".profile", "shell rc"),
    (".zshrc", "shell rc"),
    (".zprofile", "shell rc"),
    (".config/fish/", "shell rc"),
    (".ssh/authorized_keys", "ssh authorized keys"),
    (".ssh/config", "ssh config (ProxyCommand)"),
    (".ssh/rc", "ssh login script"),
    (".pam_environment", "login environment"),
    (".config/environment.d/", "login environment"),
    (".xprofile", "desktop session script"),
    (".xinitrc", "desktop session script"),
    (".aws/config", "cloud config (credential_process)"),
    (".docker/config.json", "registry credential helper"),
    (".yarnrc", "package manager config"),
    (".yarnrc.yml", "package manager config"),
    (".bunfig.toml", "package manager config"),
    (".gitconfig", "git config (hooks)"),
    (".config/git/", "git config (hooks)"),
    (".npmrc", "npm config"),
    (".config/autostart/", "desktop autostart"),
    (".config/systemd/", "systemd user unit"),
    (".local/share/systemd/", "systemd user unit"),
    (".claude/", "AI agent config"),
    (".claude.json", "AI agent config"),
    (".cursor/", "AI agent config"),
    (".codeium/", "AI agent config"),
    (".gemini/", "AI agent config"),
    (".codex/", "AI agent config"),
    (".continue/", "AI agent config"),
    (".windsurf/", "AI agent config"),
    (".vscode/", "IDE auto-run config"),
    (".config/Code/", "IDE auto-run config"),
];

/// Directories where a new executable file is a dropped binary or stage 2.
const BIN_DIRS: [&str; 4] = [".local/bin/", ".bun/", ".cache/", ".config/"];

/// A planted, watched throwaway HOME.
#[derive(Debug)]
pub struct DecoyHome {
    dir: tempfile::TempDir,
    /// The HOME path as the sandbox sees it.
    home: PathBuf,
    canaries: Vec<Canary>,
    /// Credential variables the caller did not have, planted as decoys.
    planted_env: Vec<String>,
    before: BTreeMap<String, Vec<u8>>,
}

impl Drop for DecoyHome {
    /// The decoy home is sandbox-written: removed without following links, whatever its
    /// permissions and depth (std's removal gives up on a chmod-000 directory).
    fn drop(&mut self) {
        crate::cleanup::unregister(self.dir.path());
        match crate::untrusted::remove_tree(self.dir.path()) {
            Ok(r) if !r.left.is_empty() => tracing::warn!(
                "could not remove all of the decoy home `{}`: {:?}",
                self.dir.path().display(),
                r.left
            ),
            Err(e) => tracing::warn!(
                "removing the decoy home `{}`: {e}",
                self.dir.path().display()
            ),
            Ok(_) => {}
        }
    }
}

/// What a credential-like variable held inside the sandbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnvHolding {
    /// The caller had it: its value was replaced by a canary.
    YoursReplaced,
    /// The caller did not have it: a decoy with a canary value was planted.
    PlantedDecoy,
    /// Not set at all.
    Unset,
}

/// The access time planted on every decoy (2001-09-09): any read moves it.
const SENTINEL_ATIME: i64 = 1_000_000_000;

/// Environment variables that hold credentials by name: never passed to scripts; canaries
/// instead. Names are matched by the words credentials are named with (a password in
/// `PGPASSWORD`, a DSN, `DATABASE_URL`, `*_PAT`, `*_KEY`, `*AUTH*`), not by a list of known
/// services; npm's own settings (`npm_config_*`) only for its auth entries.
pub fn is_secret_var(name: &str) -> bool {
    let n = name.to_ascii_uppercase();
    if n.starts_with("NPM_CONFIG_")
        || n.starts_with("NPM_PACKAGE_")
        || n.starts_with("NPM_LIFECYCLE")
    {
        return n.starts_with("NPM_CONFIG__AUTH")
            || n.starts_with("NPM_CONFIG_//")
            || n.contains("_AUTHTOKEN")
            || n.ends_with("_PASSWORD");
    }
    // Names that carry a credential word but only point at one or configure a tool.
    const NOT_SECRETS: [&str; 6] = [
        "SSH_AUTH_SOCK",
        "GPG_AGENT_INFO",
        "KRB5CCNAME",
        "XAUTHORITY",
        "GIT_ASKPASS",
        "SSH_ASKPASS",
    ];
    if NOT_SECRETS.contains(&n.as_str()) {
        return false;
    }
    // Words that are never part of an innocent word, anywhere in the name.
    const WORDS: [&str; 6] = [
        "TOKEN",
        "SECRET",
        "PASSWORD",
        "PASSWD",
        "CREDENTIAL",
        "APIKEY",
    ];
    // Words that are credentials only as a whole segment (`GIT_AUTHOR_NAME` is not `AUTH`).
    const SEGMENTS: [&str; 10] = [
        "AUTH", "PAT", "PASS", "KEY", "KEYS", "DSN", "COOKIE", "PRIVATE", "CREDS", "PGPASS",
    ];
    WORDS.iter().any(|w| n.contains(w))
        || n.split('_').any(|seg| SEGMENTS.contains(&seg))
        || n == "DATABASE_URL"
        || n.ends_with("_DATABASE_URL")
        || n.ends_with("_CONNECTION_STRING")
}

/// Whether a variable's value is worth judging by its shape: npm's own package metadata
/// (`npm_package_integrity` is a long base64 hash) and lifecycle variables are not credentials.
fn value_may_be_secret(name: &str) -> bool {
    !(name.starts_with("npm_package_") || name.starts_with("npm_lifecycle_"))
}

/// Whether a value looks like a credential whatever its variable is called: a URL with a
/// password in it, a PEM block, a JSON key file, a well-known token format, or a long
/// high-entropy string.
pub fn looks_secret(value: &str) -> bool {
    let v = value.trim();
    if v.len() < 8 {
        return false;
    }
    // Subresource-integrity hashes (`sha512-…`) are public.
    if ["sha1-", "sha256-", "sha384-", "sha512-"]
        .iter()
        .any(|p| v.starts_with(p))
    {
        return false;
    }
    // scheme://user:password@host
    if let Some((_, rest)) = v.split_once("://") {
        let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
        if let Some((userinfo, _)) = authority.rsplit_once('@') {
            if userinfo.split_once(':').is_some_and(|(_, p)| !p.is_empty()) {
                return true;
            }
        }
    }
    if v.contains("-----BEGIN ") || v.contains("\"private_key\"") || v.contains("\"client_secret\"")
    {
        return true;
    }
    const PREFIXES: [&str; 22] = [
        "ghp_",
        "gho_",
        "ghu_",
        "ghs_",
        "ghr_",
        "github_pat_",
        "glpat-",
        "xoxb-",
        "xoxp-",
        "xoxa-",
        "xoxs-",
        "sk_live_",
        "sk_test_",
        "rk_live_",
        "sk-ant-",
        "AKIA",
        "ASIA",
        "AIza",
        "hf_",
        "pypi-",
        "dop_v1_",
        "shpat_",
    ];
    if PREFIXES.iter().any(|p| v.starts_with(p))
        && v.len() >= 16
        && !v.contains(char::is_whitespace)
    {
        return true;
    }
    if (v.starts_with("npm_") || v.starts_with("sk-"))
        && v.len() >= 30
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return true;
    }
    // A JSON web token: three base64url parts, the first an encoded `{"`.
    if v.starts_with("eyJ") && v.matches('.').count() == 2 && v.len() >= 30 {
        return true;
    }
    high_entropy(v)
}

/// A long token of mixed letters and digits with close to random entropy (hashes of hex digits
/// stay below the bar; paths — whose temporary names are random too — and prose have
/// separators, and `/` is one).
fn high_entropy(v: &str) -> bool {
    if v.len() < 32
        || !v
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+=_-".contains(&b))
    {
        return false;
    }
    let (upper, lower, digit) = (
        v.bytes().any(|b| b.is_ascii_uppercase()),
        v.bytes().any(|b| b.is_ascii_lowercase()),
        v.bytes().any(|b| b.is_ascii_digit()),
    );
    if !(upper && lower && digit) {
        return false;
    }
    let mut counts = [0u32; 256];
    for b in v.bytes() {
        counts[usize::from(b)] += 1;
    }
    let n = f64::from(u32::try_from(v.len()).unwrap_or(u32::MAX));
    let entropy: f64 = counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = f64::from(c) / n;
            -p * p.log2()
        })
        .sum();
    entropy >= 4.2
}

/// Where decoy homes go: reads are detected through access times, so the first of `$TMPDIR`,
/// `/dev/shm`, `/tmp` and `$XDG_RUNTIME_DIR` whose filesystem is not mounted `noatime` (our bind
/// inherits the host mount's atime mode and may not change it from inside a user namespace).
fn decoy_parent() -> &'static Path {
    static PARENT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    PARENT.get_or_init(|| {
        let mut candidates = vec![std::env::temp_dir(), PathBuf::from("/dev/shm"), PathBuf::from("/tmp")];
        candidates.extend(std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from));
        let atime_works = |d: &Path| {
            nix::sys::statvfs::statvfs(d).is_ok_and(|s| {
                !s.flags().contains(nix::sys::statvfs::FsFlags::ST_NOATIME)
            }) && tempfile::Builder::new().prefix("ringfence-probe-").tempdir_in(d).is_ok()
        };
        match candidates.iter().find(|d| atime_works(d)) {
            Some(d) => d.clone(),
            None => {
                tracing::warn!(
                    "every temporary directory is on a noatime filesystem: decoy reads are seen only through the node preload and --forensic"
                );
                std::env::temp_dir()
            }
        }
    })
}

impl DecoyHome {
    /// Create and plant a decoy home for a sandbox whose HOME is `home`.
    pub fn plant(home: &Path) -> io::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("ringfence-home-")
            .tempdir_in(decoy_parent())?;
        crate::cleanup::register(dir.path());
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700))?;
        let mut canaries = Vec::new();
        let mut canary = |id: &str, value: String| -> String {
            canaries.push(Canary {
                id: id.to_string(),
                value: value.clone(),
            });
            value
        };
        let h = random_hex(24);
        let npm = canary("npmrc-token", format!("npm_{}", alnum(&h, 36)));
        let gh = canary(
            "gh-hosts-token",
            format!("gho_{}", alnum(&random_hex(24), 36)),
        );
        let git = canary(
            "git-credentials",
            format!("ghp_{}", alnum(&random_hex(24), 36)),
        );
        let aws_id = canary(
            "aws-access-key-id",
            format!("AKIA{}", alnum(&random_hex(16), 16).to_ascii_uppercase()),
        );
        let aws_secret = canary("aws-secret-access-key", alnum(&random_hex(32), 40));
        let ssh = canary("ssh-key", alnum(&random_hex(32), 64));
        let docker = canary("docker-auth", alnum(&random_hex(16), 24));
        let kube = canary("kube-token", format!("eyJ{}", alnum(&random_hex(24), 40)));
        let gcloud = canary(
            "gcloud-refresh-token",
            format!("1//{}", alnum(&random_hex(24), 40)),
        );
        let wallet = canary("wallet-ciphertext", random_hex(32));
        let claude = canary(
            "claude-api-key",
            format!("sk-ant-api03-{}", alnum(&random_hex(24), 40)),
        );
        let history = canary(
            "history-token",
            format!("npm_{}", alnum(&random_hex(24), 36)),
        );
        let contents: [(&str, String); 12] = [
            (
                ".npmrc",
                format!("//registry.npmjs.org/:_authToken={npm}\n"),
            ),
            (
                ".ssh/id_ed25519",
                format!(
                    "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ{ssh}\n-----END OPENSSH PRIVATE KEY-----\n"
                ),
            ),
            (
                ".ssh/id_rsa",
                format!(
                    "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA{ssh}\n-----END RSA PRIVATE KEY-----\n"
                ),
            ),
            (
                ".aws/credentials",
                format!(
                    "[default]\naws_access_key_id = {aws_id}\naws_secret_access_key = {aws_secret}\n"
                ),
            ),
            (
                ".config/gh/hosts.yml",
                format!(
                    "github.com:\n    user: ringfence\n    oauth_token: {gh}\n    git_protocol: https\n"
                ),
            ),
            (
                ".git-credentials",
                format!("https://ringfence:{git}@github.com\n"),
            ),
            (
                ".docker/config.json",
                format!(
                    "{{\"auths\":{{\"https://index.docker.io/v1/\":{{\"auth\":\"{docker}\"}}}}}}\n"
                ),
            ),
            (
                ".kube/config",
                format!(
                    "apiVersion: v1\nkind: Config\nusers:\n- name: admin\n  user:\n    token: {kube}\n"
                ),
            ),
            (
                ".config/gcloud/application_default_credentials.json",
                format!(
                    "{{\"type\":\"authorized_user\",\"client_id\":\"decoy.apps.googleusercontent.com\",\"refresh_token\":\"{gcloud}\"}}\n"
                ),
            ),
            (
                ".ethereum/keystore/UTC--2025-01-01T00-00-00.000Z--decoy",
                format!(
                    "{{\"version\":3,\"crypto\":{{\"ciphertext\":\"{wallet}\",\"cipher\":\"aes-128-ctr\"}}}}\n"
                ),
            ),
            (
                ".claude.json",
                format!("{{\"primaryApiKey\":\"{claude}\"}}\n"),
            ),
            (
                ".bash_history",
                format!("ls\nexport NPM_TOKEN={history}\nnpm publish\n"),
            ),
        ];
        for (rel, text) in &contents {
            let p = dir.path().join(rel);
            if let Some(parent) = p.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::write(&p, text)?;
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600))?;
        }
        // What the comparison after the run starts from is exactly what was just written (mode
        // 0600: no exec marker); reading it back would only cost time.
        let before: BTreeMap<String, Vec<u8>> = contents
            .iter()
            .map(|(rel, text)| ((*rel).to_string(), text.as_bytes().to_vec()))
            .collect();
        // Last: park every decoy's atime in the past.
        for (rel, _) in SECRET_FILES {
            utimensat(
                nix::fcntl::AT_FDCWD,
                &dir.path().join(rel),
                &TimeSpec::new(SENTINEL_ATIME, 0),
                &TimeSpec::UTIME_OMIT,
                UtimensatFlags::NoFollowSymlink,
            )?;
        }
        Ok(DecoyHome {
            dir,
            home: home.to_path_buf(),
            canaries,
            planted_env: Vec::new(),
            before,
        })
    }

    /// Whether `path` (as the sandbox sees it) is one of the planted decoy secrets.
    pub fn is_decoy(&self, path: &Path) -> bool {
        path.strip_prefix(&self.home)
            .is_ok_and(|rel| SECRET_FILES.iter().any(|(r, _)| Path::new(r) == rel))
    }

    /// HOME as the sandbox sees it.
    pub fn home(&self) -> &Path {
        &self.home
    }

    /// The host directory to bind at HOME.
    pub fn host_dir(&self) -> &Path {
        self.dir.path()
    }

    /// Every canary planted for this run (files and environment).
    pub fn canaries(&self) -> &[Canary] {
        &self.canaries
    }

    /// What a credential variable `name` held in the sandbox.
    pub fn env_holding(&self, name: &str) -> EnvHolding {
        if self.planted_env.iter().any(|n| n == name) {
            EnvHolding::PlantedDecoy
        } else if self.canaries.iter().any(|c| c.id == format!("env:{name}")) {
            EnvHolding::YoursReplaced
        } else {
            EnvHolding::Unset
        }
    }

    /// Replace credential variables in `env` by canaries, and plant the well-known ones the
    /// caller does not have, so that a script looking for tokens finds only decoys.
    pub fn scrub_env(&mut self, env: &mut Vec<(String, String)>) {
        let mut present: Vec<String> = Vec::new();
        for (k, v) in env.iter_mut() {
            if is_secret_var(k) || (value_may_be_secret(k) && looks_secret(v)) {
                let value = format!("rf_canary_{}", alnum(&random_hex(16), 32));
                self.canaries.push(Canary {
                    id: format!("env:{k}"),
                    value: value.clone(),
                });
                *v = value;
                present.push(k.clone());
            }
        }
        for name in [
            "NPM_TOKEN",
            "GITHUB_TOKEN",
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
        ] {
            if !present.iter().any(|p| p == name) {
                let value = match name {
                    "NPM_TOKEN" => format!("npm_{}", alnum(&random_hex(24), 36)),
                    "GITHUB_TOKEN" => format!("ghp_{}", alnum(&random_hex(24), 36)),
                    "AWS_ACCESS_KEY_ID" => {
                        format!("AKIA{}", alnum(&random_hex(16), 16).to_ascii_uppercase())
                    }
                    _ => alnum(&random_hex(32), 40),
                };
                self.canaries.push(Canary {
                    id: format!("env:{name}"),
                    value: value.clone(),
                });
                self.planted_env.push(name.to_string());
                env.push((name.to_string(), value));
            }
        }
    }

    /// What the run did to the decoys: secret reads (inotify) and persistence writes (a
    /// comparison of the home after the run with what was planted). Call once, after the run.
    pub fn findings(&self) -> Vec<Finding> {
        let mut out = Vec::new();
        // Reads first: the snapshot below reads the files itself.
        for (rel, class) in SECRET_FILES {
            use std::os::unix::fs::MetadataExt;
            let read_at = std::fs::symlink_metadata(self.dir.path().join(rel))
                .ok()
                .filter(|m| m.atime() != SENTINEL_ATIME)
                .map(|m| unix_ms(m.atime(), m.atime_nsec()));
            if let Some(at) = read_at {
                out.push(Finding {
                    code: Code::DecoyRead,
                    kind: FindingKind::SecretRead,
                    severity: Severity::High,
                    summary: format!("read decoy {class} `~/{rel}`"),
                    target: self.home.join(rel).display().to_string(),
                    detail: Some(format!("{class}; the file held only per-run canary values")),
                    process: None,
                    at_unix_ms: Some(at),
                });
            }
        }
        let after = snapshot(self.dir.path());
        for (rel, content) in &after {
            if self.before.get(rel) == Some(content) {
                continue;
            }
            let created = !self.before.contains_key(rel);
            if let Some(target) = content.strip_prefix(SYMLINK) {
                // Inside the sandbox HOME is at its real path, so a link there resolves, on the
                // host, into the user's real home: bait for host-side code. Named, never read.
                let target = String::from_utf8_lossy(target).into_owned();
                let sensitive = target.starts_with('/')
                    && (super::syscalls::secret_path(Path::new(&target)).is_some()
                        || !target.starts_with(&self.home.display().to_string()));
                out.push(Finding {
                    code: Code::HomeLinkPlanted,
                    kind: FindingKind::TamperAttempt,
                    severity: if sensitive {
                        Severity::High
                    } else {
                        Severity::Medium
                    },
                    summary: format!(
                        "planted a symbolic link `~/{rel}` -> `{target}` in the throwaway home (never followed)"
                    ),
                    target: self.home.join(rel).display().to_string(),
                    detail: Some(
                        "a link in HOME points, on the host, at the user's real files: bait for tools that inspect the sandbox afterwards".into(),
                    ),
                    process: None,
                    at_unix_ms: std::fs::symlink_metadata(self.dir.path().join(rel))
                        .ok()
                        .map(|m| {
                            use std::os::unix::fs::MetadataExt;
                            unix_ms(m.mtime(), m.mtime_nsec())
                        }),
                });
                continue;
            }
            let persistence = PERSISTENCE.iter().find(|(p, _)| {
                if let Some(dir) = p.strip_suffix('/') {
                    rel.starts_with(&format!("{dir}/"))
                } else {
                    rel == p
                }
            });
            let meta = std::fs::symlink_metadata(self.dir.path().join(rel)).ok();
            let executable = meta
                .as_ref()
                .is_some_and(|m| m.permissions().mode() & 0o111 != 0);
            let written_at = meta.as_ref().map(|m| {
                use std::os::unix::fs::MetadataExt;
                unix_ms(m.mtime(), m.mtime_nsec())
            });
            if let Some((_, class)) = persistence {
                out.push(Finding {
                    code: Code::HomePersistence,
                    kind: FindingKind::PersistenceAttempt,
                    severity: Severity::High,
                    summary: format!(
                        "{} `~/{rel}` ({class})",
                        if created { "created" } else { "modified" }
                    ),
                    target: self.home.join(rel).display().to_string(),
                    // What the script wrote is not copied into the report: it may hold anything
                    // the script could read. Its size and hash identify it.
                    detail: Some(format!(
                        "written to the throwaway home: {} bytes, sha256 {}",
                        content.len(),
                        crate::util::sha256_hex(content)
                    )),
                    process: None,
                    at_unix_ms: written_at,
                });
            } else if executable && BIN_DIRS.iter().any(|d| rel.starts_with(d)) {
                out.push(Finding {
                    code: Code::HomeExecutable,
                    kind: FindingKind::PersistenceAttempt,
                    severity: Severity::Medium,
                    summary: format!("dropped an executable `~/{rel}`"),
                    target: self.home.join(rel).display().to_string(),
                    detail: Some(format!("{} bytes", content.len())),
                    process: None,
                    at_unix_ms: written_at,
                });
            }
        }
        out
    }
}

/// A file time as milliseconds since the epoch.
pub(crate) fn unix_ms(secs: i64, nsec: i64) -> u64 {
    u64::try_from(secs.saturating_mul(1000).saturating_add(nsec / 1_000_000)).unwrap_or(0)
}

/// How a symbolic link is kept in a snapshot: this marker, then its target (never followed).
const SYMLINK: &[u8] = b"\0symlink\0";

/// Content of the files under `root` that could matter (persistence paths, bin dirs, decoys):
/// small regular files only, read through the hardened reader ([`crate::untrusted`]: never
/// following a link, never opening a FIFO or device, bounded), so a script filling `~/.cache`
/// costs nothing here and a link planted to a host file is kept as a link.
fn snapshot(root: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let budget = crate::untrusted::Budget {
        max_entries: 20_000,
        max_depth: 32,
        deadline: Some(std::time::Instant::now() + std::time::Duration::from_secs(5)),
        ..Default::default()
    };
    let skip = |rel: &Path| rel != Path::new(".npm") && rel != Path::new(".cache/node-gyp");
    let Ok(walk) = crate::untrusted::walk(root, &budget, &skip) else {
        return out;
    };
    if let Some(why) = &walk.truncated {
        tracing::warn!("decoy home comparison incomplete: {why}");
    }
    let mut total: u64 = 0;
    for e in &walk.entries {
        let rel = e.rel.display().to_string();
        match e.kind {
            crate::untrusted::Kind::Symlink => {
                let mut content = SYMLINK.to_vec();
                if let Some(t) = &e.link_target {
                    content.extend_from_slice(t.as_os_str().as_encoded_bytes());
                }
                out.insert(rel, content);
            }
            crate::untrusted::Kind::File if e.size <= 1 << 20 && total < 32 << 20 => {
                let Ok(Some((mut content, _))) = crate::untrusted::read_file(root, &e.rel, 1 << 20)
                else {
                    continue;
                };
                total += content.len() as u64;
                if e.mode & 0o111 != 0 {
                    content.extend_from_slice(b"\0exec");
                }
                out.insert(rel, content);
            }
            _ => {}
        }
    }
    out
}

#[cfg(test)]
#[path = "decoys_tests.rs"]
mod tests;
