//! Planting a decoy home: a private directory where access times work, each decoy file written
//! with a fresh canary value, and every decoy's access time parked in the past (so that any read
//! moves it).

use std::collections::BTreeMap;
use std::io::{self, Read};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use nix::sys::stat::{UtimensatFlags, utimensat};
use nix::sys::time::TimeSpec;

use super::{Canary, DecoyHome, SECRET_FILES};

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
            }) && tempfile::Builder::new().tempdir_in(d).is_ok()
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
        let values = DecoyValues::mint(&mut canaries);
        let contents = values.files();
        write_decoys(dir.path(), &contents)?;
        // What the comparison after the run starts from is exactly what was just written (mode
        // 0600: no exec marker); reading it back would only cost time.
        let before: BTreeMap<String, Vec<u8>> = contents
            .iter()
            .map(|(rel, text)| (rel.clone(), text.as_bytes().to_vec()))
            .collect();
        let files: Vec<(String, &'static str, &'static str)> = contents
            .iter()
            .zip(SECRET_FILES)
            .map(|((rel, _), (listed, class))| (rel.clone(), listed, class))
            .collect();
        // Last: park every decoy's times in the past.
        park_times(dir.path(), &files, values.parked_at)?;
        Ok(DecoyHome {
            dir,
            home: home.to_path_buf(),
            canaries,
            planted_env: Vec::new(),
            before,
            files,
            parked_at: values.parked_at,
        })
    }
}

/// The decoy home's host directory: private (mode 0700), under [`decoy_parent`], and registered
/// for removal on an interruption.
fn private_dir() -> io::Result<tempfile::TempDir> {
    // Named like any program's temporary directory: in the full tier it is the source of the
    // HOME mount, which /proc/self/mountinfo shows; in the landlock tier it is HOME itself.
    let dir = tempfile::Builder::new().tempdir_in(decoy_parent())?;
    crate::cleanup::register(dir.path());
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700))?;
    Ok(dir)
}

/// The canary value each decoy file carries, minted fresh for one run.
struct DecoyValues {
    /// The account name the decoys are for: the caller's own login name (what `$USER` says
    /// anyway), so that nothing in them names ringfence.
    user: String,
    /// A plausible modification and access time for every decoy, some weeks or months ago.
    parked_at: i64,
    /// The wallet keystore's file name (`UTC--<time>--<address>`, as geth names it).
    keystore: String,
    /// The OAuth client id of the cloud credentials.
    gcloud_client: String,
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
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1_760_000_000, |d| {
                i64::try_from(d.as_secs()).unwrap_or(i64::MAX / 2)
            });
        let days = i64::from_str_radix(&random_hex(2), 16).unwrap_or(0) % 170 + 10;
        let secs = i64::from_str_radix(&random_hex(3), 16).unwrap_or(0) % 86_400;
        let parked_at = now - days * 86_400 - secs;
        let digits: String = random_hex(12)
            .bytes()
            .step_by(2)
            .map(|b| char::from(b'0' + b % 10))
            .collect();
        DecoyValues {
            user: login_name().to_string(),
            parked_at,
            keystore: format!(
                "UTC--{}.{:03}Z--{}",
                utc_stamp(parked_at - 86_400 * 30),
                secs % 1000,
                random_hex(20)
            ),
            gcloud_client: format!(
                "{digits}-{}.apps.googleusercontent.com",
                alnum(&random_hex(16), 32).to_ascii_lowercase()
            ),
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
    fn files(&self) -> Vec<(String, String)> {
        let DecoyValues {
            user,
            parked_at: _,
            keystore,
            gcloud_client,
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
        let texts = [
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
                    "github.com:\n    user: {user}\n    oauth_token: {gh}\n    git_protocol: https\n"
                ),
            ),
            (
                ".git-credentials",
                format!("https://{user}:{git}@github.com\n"),
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
                    "{{\n  \"client_id\": \"{gcloud_client}\",\n  \"client_secret\": \"GOCSPX-{}\",\n  \"refresh_token\": \"{gcloud}\",\n  \"type\": \"authorized_user\"\n}}\n",
                    alnum(&random_hex(16), 28)
                ),
            ),
            (
                ".ethereum/keystore/",
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
        texts
            .into_iter()
            .map(|(rel, text)| {
                let rel = match rel.strip_suffix('/') {
                    Some(dir) => format!("{dir}/{keystore}"),
                    None => rel.to_string(),
                };
                (rel, text)
            })
            .collect()
    }
}

/// Write each decoy file below `dir`, creating its parents, readable by its owner only.
fn write_decoys(dir: &Path, contents: &[(String, String)]) -> io::Result<()> {
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

/// Give every decoy `at` as its access and modification time. A read then moves the access
/// time: it is not after the modification time (nor the change time, which is now), so the
/// kernel updates it even under `relatime`.
fn park_times(dir: &Path, files: &[(String, &str, &str)], at: i64) -> io::Result<()> {
    for (rel, _, _) in files {
        utimensat(
            nix::fcntl::AT_FDCWD,
            &dir.join(rel),
            &TimeSpec::new(at, 0),
            &TimeSpec::new(at, 0),
            UtimensatFlags::NoFollowSymlink,
        )?;
    }
    Ok(())
}

/// The caller's login name for the decoys: `$USER` or `$LOGNAME` when it looks like one, else
/// the account of this uid, else `dev`.
fn login_name() -> &'static str {
    // Looked up once per process (it may need a passwd lookup), not per sandbox.
    static NAME: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    NAME.get_or_init(looked_up_login_name)
}

fn looked_up_login_name() -> String {
    let plausible = |n: &str| {
        !n.is_empty()
            && n.len() <= 32
            && n.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
    };
    ["USER", "LOGNAME"]
        .iter()
        .filter_map(|v| std::env::var(v).ok())
        .chain(
            nix::unistd::User::from_uid(nix::unistd::getuid())
                .ok()
                .flatten()
                .map(|u| u.name),
        )
        .find(|n| plausible(n))
        .unwrap_or_else(|| "dev".to_string())
}

/// `secs` since the epoch as geth's keystore file names write UTC time: `2026-03-18T09-41-27`.
pub(super) fn utc_stamp(secs: i64) -> String {
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (proleptic Gregorian; H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}-{:02}-{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}
