//! Credential variables: which names and values are credentials, and replacing them by canaries
//! (the caller's own by fresh ones, the well-known ones the caller lacks by planted decoys).

use super::plant::{alnum, random_hex};
use super::{Canary, DecoyHome};

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
    const WORDS: [&str; 9] = [
        "TOKEN",
        "SECRET",
        "PASSWORD",
        "PASSWD",
        "PASSPHRASE",
        "BEARER",
        "CREDENTIAL",
        "APIKEY",
        // A webhook URL is its own credential: whoever has it can post.
        "WEBHOOK",
    ];
    // Words that are credentials only as a whole segment (`GIT_AUTHOR_NAME` is not `AUTH`).
    const SEGMENTS: [&str; 14] = [
        "AUTH", "PAT", "PASS", "KEY", "KEYS", "DSN", "COOKIE", "PRIVATE", "CREDS", "PGPASS",
        "SALT", "HMAC", "SIGNING", "JWT",
    ];
    WORDS.iter().any(|w| n.contains(w))
        || n.split('_').any(|seg| SEGMENTS.contains(&seg))
        || n == "DATABASE_URL"
        || n.ends_with("_DATABASE_URL")
        || n.ends_with("_CONNECTION_STRING")
}

/// Whether a variable's value is worth judging by its shape: npm's own package metadata
/// (`npm_package_integrity` is a long base64 hash) and lifecycle variables are not credentials.
pub(super) fn value_may_be_secret(name: &str) -> bool {
    if name.starts_with("npm_package_") || name.starts_with("npm_lifecycle_") {
        return false;
    }
    // Names that say their value is an identifier or a digest (a commit, a run id, a tenant's
    // UUID): long hex is what they hold, and it is public.
    const IDS: [&str; 12] = [
        "SHA",
        "SHA1",
        "SHA256",
        "COMMIT",
        "REVISION",
        "REV",
        "HASH",
        "ID",
        "UUID",
        "DIGEST",
        "CHECKSUM",
        "INTEGRITY",
    ];
    !name
        .to_ascii_uppercase()
        .split('_')
        .any(|seg| IDS.contains(&seg))
}

/// Prefixes of well-known token formats: a value that starts with one (16 characters or more,
/// no whitespace) is a credential, and a canary replacing one keeps it.
const TOKEN_PREFIXES: [&str; 22] = [
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
/// Token prefixes that are also ordinary words (`npm_…` variables, `sk-` of anything): a
/// credential only when the rest looks like one (see `looks_secret`).
const LOOSE_PREFIXES: [&str; 2] = ["npm_", "sk-"];

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
    // Webhook URLs carry their secret in the path.
    const WEBHOOKS: [&str; 6] = [
        "hooks.slack.com/services/",
        "discord.com/api/webhooks/",
        "discordapp.com/api/webhooks/",
        ".webhook.office.com/",
        "api.telegram.org/bot",
        "hooks.zapier.com/hooks/",
    ];
    if v.contains("://") && WEBHOOKS.iter().any(|w| v.contains(w)) {
        return true;
    }
    if TOKEN_PREFIXES.iter().any(|p| v.starts_with(p))
        && v.len() >= 16
        && !v.contains(char::is_whitespace)
    {
        return true;
    }
    if LOOSE_PREFIXES.iter().any(|p| v.starts_with(p))
        && v.len() >= 30
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return true;
    }
    // Opaque hex of key length (API keys, old-style GitHub tokens) and UUIDs (API keys of many
    // services); names that call their value an id or a digest are not judged by it (see
    // `value_may_be_secret`).
    let hex = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit());
    if v.len() >= 32 && hex(v) {
        return true;
    }
    let parts: Vec<&str> = v.split('-').collect();
    if parts.iter().map(|p| p.len()).eq([8, 4, 4, 4, 12]) && parts.iter().all(|p| hex(p)) {
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
    // Base64 uses `/` too: allowed where the value cannot be a path (no leading `/`, `.` or
    // `~`, no `//`).
    let slash_ok = !v.starts_with(['/', '.', '~']) && !v.contains("//");
    if v.len() < 32
        || !v
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+=_-".contains(&b) || (b == b'/' && slash_ok))
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

/// A canary shaped like the value it replaces: the same well-known token prefix, if it had one,
/// and about its length, so that nothing in its text says it is a decoy (a script that sees
/// `rf_canary_…` knows it is watched). At least 20 random characters follow the prefix.
fn canary_like(old: &str) -> String {
    let prefix = TOKEN_PREFIXES
        .iter()
        .chain(&LOOSE_PREFIXES)
        .find(|p| old.starts_with(*p))
        .copied()
        .unwrap_or("");
    let len = old
        .chars()
        .count()
        .clamp(24, 64)
        .saturating_sub(prefix.len())
        .max(20);
    let body = alnum(&random_hex(len), len);
    if prefix.starts_with("AKIA") || prefix.starts_with("ASIA") {
        format!("{prefix}{}", body.to_ascii_uppercase())
    } else {
        format!("{prefix}{body}")
    }
}

impl DecoyHome {
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
                let value = canary_like(v);
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
}
