//! Small helpers shared by every layer (no I/O policy, no printing).

/// Milliseconds since the Unix epoch, now.
pub fn now_unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Lower-case hex SHA-256 of `data` (script hashes, file evidence).
pub fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Search `path` (colon-separated) for an executable regular file called `name`, as execvp does.
pub fn search_path(path: &str, name: &str, cwd: &std::path::Path) -> Option<std::path::PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    path.split(':').find_map(|dir| {
        let dir = if dir.is_empty() {
            std::path::Path::new(".")
        } else {
            std::path::Path::new(dir)
        };
        let candidate = cwd.join(dir).join(name);
        let meta = std::fs::metadata(&candidate).ok()?;
        (meta.is_file() && meta.permissions().mode() & 0o111 != 0).then_some(candidate)
    })
}

/// Write `bytes` to `path` atomically: a temporary file in the same directory, then a rename.
pub fn write_atomic(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    std::io::Write::write_all(&mut tmp, bytes)?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// Whether a file called `name`, in a directory called `parent`, conventionally holds
/// credentials: dotenv files, package-manager and netrc configs, git credentials, private keys
/// and keystores, cloud and container credentials. Such files anywhere in a project are denied
/// to dependency scripts, and a look at one is a probe for a secret.
pub fn is_credential_file(parent: &str, name: &str) -> bool {
    const NAMES: &[&str] = &[
        ".env",
        ".npmrc",
        ".yarnrc",
        ".yarnrc.yml",
        ".netrc",
        "_netrc",
        ".git-credentials",
        ".pgpass",
        ".pypirc",
        ".dockercfg",
        ".htpasswd",
        "id_rsa",
        "id_dsa",
        "id_ecdsa",
        "id_ed25519",
        "credentials.json",
        "service-account.json",
    ];
    const EXTENSIONS: &[&str] = &[".pem", ".key", ".p12", ".pfx", ".jks", ".keystore", ".ppk"];
    const IN_DIRS: &[(&str, &str)] = &[
        (".aws", "credentials"),
        (".aws", "config"),
        (".docker", "config.json"),
        (".kube", "config"),
        (".ssh", "config"),
    ];
    let lower = name.to_ascii_lowercase();
    NAMES.contains(&lower.as_str())
        || lower.starts_with(".env.")
        || EXTENSIONS
            .iter()
            .any(|e| lower.len() > e.len() && lower.ends_with(e))
        || IN_DIRS.iter().any(|(d, f)| parent == *d && lower == *f)
}

/// Commands whose shadowing by a package's bin changes what every later script runs: shells,
/// interpreters, the toolchain, git, npm itself, privilege tools and the coreutils scripts call.
pub const SHADOWABLE: &[&str] = &[
    "sh",
    "bash",
    "dash",
    "zsh",
    "env",
    "node",
    "npm",
    "npx",
    "git",
    "make",
    "cmake",
    "python",
    "python3",
    "gcc",
    "g++",
    "cc",
    "c++",
    "clang",
    "ld",
    "ar",
    "as",
    "pkg-config",
    "sudo",
    "su",
    "ssh",
    "curl",
    "wget",
    "tar",
    "cp",
    "mv",
    "rm",
    "ln",
    "mkdir",
    "chmod",
    "cat",
    "ls",
    "sed",
    "grep",
    "find",
    "xargs",
    "cut",
    "tr",
    "head",
    "tail",
    "sort",
    "uname",
    "id",
    "whoami",
];

/// The package a bin link in a `node_modules/.bin` belongs to: npm links bins as relative
/// symlinks into the owning package (`../@scope/pkg/bin/x.js`).
pub fn bin_owner(target: &std::path::Path) -> Option<String> {
    let rest = target.to_str()?.strip_prefix("../")?;
    let mut parts = rest.split('/');
    let first = parts.next()?;
    Some(if first.starts_with('@') {
        format!("{first}/{}", parts.next()?)
    } else {
        first.to_string()
    })
}

/// Whether package `owner` shipping a bin named `command` is that command's own distribution,
/// not a shadow of it: npm's `npm`/`npx` (semantic-release depends on npm), the `node` package
/// that pins a node version, the old standalone `npx`.
pub fn bin_is_the_commands_own(command: &str, owner: &str) -> bool {
    matches!(
        (command, owner),
        ("npm" | "npx", "npm") | ("npx", "npx") | ("node", "node")
    )
}

/// `text` cut to at most `max` characters, with `…` where it was cut.
pub fn clip(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_string(),
    }
}
