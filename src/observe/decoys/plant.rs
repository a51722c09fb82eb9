//! Planting a decoy home: a private directory where access times work, each decoy file written
//! with a fresh canary value, and every decoy's access time parked in the past (so that any read
//! moves it).

use std::collections::BTreeMap;
use std::io::{self, Read};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use nix::sys::stat::{UtimensatFlags, utimensat};
use nix::sys::time::TimeSpec;

use super::{Canary, DecoyHome, SECRET_FILES, SENTINEL_ATIME};

pub(super) fn random_hex(bytes: usize) -> String {
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

pub(super) fn alnum(hex: &str, len: usize) -> String {
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
        let dir = private_dir()?;
        let mut canaries = Vec::new();
        let contents = DecoyValues::mint(&mut canaries).files();
        write_decoys(dir.path(), &contents)?;
        // What the comparison after the run starts from is exactly what was just written (mode
        // 0600: no exec marker); reading it back would only cost time.
        let before: BTreeMap<String, Vec<u8>> = contents
            .iter()
            .map(|(rel, text)| ((*rel).to_string(), text.as_bytes().to_vec()))
            .collect();
        // Last: park every decoy's atime in the past.
        park_access_times(dir.path())?;
        Ok(DecoyHome {
            dir,
            home: home.to_path_buf(),
            canaries,
            planted_env: Vec::new(),
            before,
        })
    }
}

/// The decoy home's host directory: private (mode 0700), under [`decoy_parent`], and registered
/// for removal on an interruption.
fn private_dir() -> io::Result<tempfile::TempDir> {
    let dir = tempfile::Builder::new()
        .prefix("ringfence-home-")
        .tempdir_in(decoy_parent())?;
    crate::cleanup::register(dir.path());
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700))?;
    Ok(dir)
}

/// The canary value each decoy file carries, minted fresh for one run.
struct DecoyValues {
    npm: String,
    gh: String,
    git: String,
    aws_id: String,
    aws_secret: String,
    ssh: String,
    docker: String,
    kube: String,
    gcloud: String,
    wallet: String,
    claude: String,
    history: String,
}

impl DecoyValues {
    /// Mint every value, each recorded as a [`Canary`] in `canaries` in this order.
    fn mint(canaries: &mut Vec<Canary>) -> Self {
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
        DecoyValues {
            npm,
            gh,
            git,
            aws_id,
            aws_secret,
            ssh,
            docker,
            kube,
            gcloud,
            wallet,
            claude,
            history,
        }
    }

    /// Each decoy file (relative to HOME, in the order of [`SECRET_FILES`]) and its text.
    fn files(&self) -> [(&'static str, String); 12] {
        let DecoyValues {
            npm,
            gh,
            git,
            aws_id,
            aws_secret,
            ssh,
            docker,
            kube,
            gcloud,
            wallet,
            claude,
            history,
        } = self;
        [
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
        ]
    }
}

/// Write each decoy file below `dir`, creating its parents, readable by its owner only.
fn write_decoys(dir: &Path, contents: &[(&str, String)]) -> io::Result<()> {
    for (rel, text) in contents {
        let p = dir.join(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&p, text)?;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(())
}

/// Set every decoy's access time to [`SENTINEL_ATIME`], leaving its modification time alone.
fn park_access_times(dir: &Path) -> io::Result<()> {
    for (rel, _) in SECRET_FILES {
        utimensat(
            nix::fcntl::AT_FDCWD,
            &dir.join(rel),
            &TimeSpec::new(SENTINEL_ATIME, 0),
            &TimeSpec::UTIME_OMIT,
            UtimensatFlags::NoFollowSymlink,
        )?;
    }
    Ok(())
}
