//! Existing install-script allowlists as input: the per-package decisions a project has
//! already written down for another tool, read from the project root, and the verdict they
//! give one installed package: allowed, denied, or unreviewed.
//!
//! Sources (a missing file or field is simply no entries):
//!
//! | tool | where | module |
//! |---|---|---|
//! | npm 11.16+/12 | `package.json#allowScripts` | [`npm`] |
//! | pnpm 11/12 | `pnpm-workspace.yaml#allowBuilds`, `dangerouslyAllowAllBuilds` | [`pnpm`] |
//! | pnpm 10 | `onlyBuiltDependencies`, `ignoredBuiltDependencies`, `neverBuiltDependencies` in `pnpm-workspace.yaml` or `package.json#pnpm` | [`pnpm`] |
//! | LavaMoat allow-scripts 5 | `package.json#lavamoat.allowScripts` | [`lavamoat`] |
//! | Bun | `package.json#trustedDependencies` | [`bun`] |
//!
//! **Deny wins**: a package any entry of any source denies is [`Decision::Denied`], whatever
//! allows it elsewhere; otherwise one allow anywhere makes it [`Decision::Allowed`]; otherwise
//! it is [`Decision::Unreviewed`]. This is npm's rule ("`false` wins") applied across sources,
//! and stricter than two tools on their own: pnpm's `dangerouslyAllowAllBuilds: true` ignores
//! `allowBuilds` denials, and LavaMoat runs `keccak#3.0.4: true` despite `keccak: false`.
//!
//! Input problems are of two kinds. A file that cannot be used at all (not JSON/YAML, a value
//! of the wrong type such as a string where a boolean belongs, an empty key, a symlinked or
//! oversized file) is an [`AllowlistError`] naming its file, line and a stable code. A key the
//! tool itself would never match (a version range, an alias, a wildcard with a version, a
//! version-less LavaMoat allow) is kept as an entry and reported once as a [`Diagnostic`].
//! The one exception to "wrong type is an error": pnpm writes unreviewed packages into
//! `allowBuilds` with a placeholder string (`set this to true or false`); a string (or empty)
//! value there is an unreviewed package, reported as a diagnostic.
//!
//! Everything here is pure data except [`Allowlists::read`], which reads `package.json` and
//! `pnpm-workspace.yaml` from the project root: never through a symbolic link, never more than
//! [`MAX_FILE_BYTES`], never blocking on a FIFO (through [`crate::untrusted::read_file`]), and
//! with nesting bounded so that no file can exhaust the stack.
//!
//! For LavaMoat, the caller gives each candidate its canonical dependency path, computed from
//! the lockfile by [`lavamoat::logical_paths`].

pub mod bun;
mod doc;
mod git;
mod json;
pub mod lavamoat;
pub mod npm;
pub mod pnpm;
mod spec;
mod yaml;

#[cfg(test)]
mod tests;

use std::fmt;
use std::path::{Path, PathBuf};

use thiserror::Error;

use doc::{Doc, Lang, Member, Node, Value};
use spec::Matcher;

/// Largest allowlist file read, in bytes; a larger one is an error.
pub const MAX_FILE_BYTES: u64 = 8 << 20;

/// The npm manifest, relative to the project root.
pub const PACKAGE_JSON: &str = "package.json";

/// pnpm's workspace settings, relative to the project root.
pub const PNPM_WORKSPACE: &str = "pnpm-workspace.yaml";

/// The tool whose allowlist an entry comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Tool {
    /// npm's `allowScripts`.
    Npm,
    /// pnpm's `allowBuilds` (and pnpm 10's `onlyBuiltDependencies` family).
    Pnpm,
    /// LavaMoat's `lavamoat.allowScripts`.
    Lavamoat,
    /// Bun's `trustedDependencies`.
    Bun,
}

impl fmt::Display for Tool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Tool::Npm => "npm allowScripts",
            Tool::Pnpm => "pnpm allowBuilds",
            Tool::Lavamoat => "LavaMoat allowScripts",
            Tool::Bun => "Bun trustedDependencies",
        })
    }
}

/// What an entry says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// Run the package's install scripts.
    Allow,
    /// Do not.
    Deny,
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Verdict::Allow => "allow",
            Verdict::Deny => "deny",
        })
    }
}

/// One key of one allowlist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The tool.
    pub tool: Tool,
    /// The file, relative to the project root (`package.json`).
    pub file: PathBuf,
    /// The field within it (`allowScripts`, `lavamoat.allowScripts`, `allowBuilds`,
    /// `pnpm.onlyBuiltDependencies`, `dangerouslyAllowAllBuilds`, `trustedDependencies`, ...).
    pub field: &'static str,
    /// 1-based line the key (or list item) is written on.
    pub line: usize,
    /// The key as written (JSON escapes decoded).
    pub key: String,
    /// Allow or deny.
    pub verdict: Verdict,
    matcher: Matcher,
}

impl Entry {
    /// Whether this entry applies to `c`.
    pub fn matches(&self, c: &Candidate<'_>) -> bool {
        // npm: bundled dependencies cannot be allowlisted (their name and version come from the
        // bundling tarball, which can claim anything); a denial still applies.
        if self.tool == Tool::Npm && c.in_bundle && self.verdict == Verdict::Allow {
            return false;
        }
        self.matcher.matches(c, self.verdict)
    }

    /// Whether the tool would never match this key for any package (see the diagnostic
    /// reported for it).
    pub fn never_matches(&self) -> bool {
        self.matcher == Matcher::Never
    }

    /// Whether this entry covers every package (`dangerouslyAllowAllBuilds: true`).
    pub fn matches_everything(&self) -> bool {
        self.matcher == Matcher::All
    }
}

impl fmt::Display for Entry {
    /// `package.json:3: allowScripts "esbuild@0.28.1": true (npm allowScripts)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}: {} {:?}: {} ({})",
            self.file.display(),
            self.line,
            self.field,
            self.key,
            self.verdict == Verdict::Allow,
            self.tool
        )
    }
}

/// One installed package, as the lockfile describes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Candidate<'a> {
    /// The package's real name (the lockfile's `name` for an alias, else the name in its
    /// location). When `resolved` is a registry tarball URL, the name and version in the URL
    /// are what allow entries are matched against (npm's rule: they cannot be forged by the
    /// tarball); this name still matches deny entries.
    pub name: &'a str,
    /// The installed version.
    pub version: &'a str,
    /// The lockfile's `resolved` (a registry tarball URL, `git+ssh://…#<sha>`, `file:…`, or a
    /// link's relative path); `None` when the lockfile has none (a registry package in a
    /// lockfile written with `omit-lockfile-registry-resolved`).
    pub resolved: Option<&'a str>,
    /// LavaMoat's canonical name of the package as a path of dependency names, from one of
    /// the root's direct dependencies down to it: compute it with
    /// [`lavamoat::logical_paths`] (the shortest path through the dependency graph, not the
    /// `node_modules` nesting: a hoisted `node_modules/core-js` that only `rezeplayer` depends
    /// on is `["rezeplayer", "core-js"]`). Empty: LavaMoat entries do not match.
    pub dep_path: &'a [&'a str],
    /// Inside a parent's bundle (npm never lets its allowlist approve these).
    pub in_bundle: bool,
}

impl<'a> Candidate<'a> {
    /// A registry package with no `resolved`, no LavaMoat path, not bundled.
    pub fn new(name: &'a str, version: &'a str) -> Self {
        Candidate {
            name,
            version,
            resolved: None,
            dep_path: &[],
            in_bundle: false,
        }
    }
}

/// What the allowlists say about one package.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision<'a> {
    /// No entry matches.
    Unreviewed,
    /// An entry allows it and none denies it (the first allowing entry).
    Allowed(&'a Entry),
    /// An entry denies it (the first denying entry; deny wins over any allow).
    Denied(&'a Entry),
}

impl<'a> Decision<'a> {
    /// The deciding entry, unless unreviewed.
    pub fn entry(&self) -> Option<&'a Entry> {
        match self {
            Decision::Unreviewed => None,
            Decision::Allowed(e) | Decision::Denied(e) => Some(e),
        }
    }
}

/// Something worth telling the user about an allowlist that does not stop the run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// Stable kebab-case code (see [`DIAGNOSTIC_CODES`]).
    pub code: &'static str,
    /// File, relative to the project root.
    pub file: PathBuf,
    /// 1-based line.
    pub line: usize,
    /// One-line message.
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}: {} [{}]",
            self.file.display(),
            self.line,
            self.message,
            self.code
        )
    }
}

/// Every diagnostic code, with its one-line description.
pub const DIAGNOSTIC_CODES: &[(&str, &str)] = &[
    (
        "allowlist-range-never-matches",
        "a version range in a key: npm and pnpm only match exact versions, so the key matches nothing",
    ),
    (
        "allowlist-key-never-matches",
        "a key the tool never matches (an alias, an invalid name or spec, a wildcard with a version, ...)",
    ),
    (
        "allowlist-duplicate-key",
        "a JSON key written twice: the last value counts, as with JSON.parse",
    ),
    (
        "allowlist-lavamoat-unversioned-allow",
        "a LavaMoat allow without `#version`: LavaMoat requires versions for allowed packages; taken as any version",
    ),
    (
        "allowlist-unreviewed-placeholder",
        "a pnpm allowBuilds value that is not a boolean (pnpm's placeholder): the package stays unreviewed",
    ),
    (
        "allowlist-allow-all",
        "dangerouslyAllowAllBuilds: every package's install scripts are allowed (denials still apply)",
    ),
    (
        "allowlist-never-built-only-denies",
        "pnpm 10 builds every package not in neverBuiltDependencies; only its entries are taken (as denials)",
    ),
    (
        "allowlist-not-read",
        "a setting that points elsewhere (onlyBuiltDependenciesFile) and is not read",
    ),
];

/// Every error code, with its one-line description.
pub const ERROR_CODES: &[(&str, &str)] = &[
    ("allowlist-read", "the file could not be read"),
    (
        "allowlist-symlink",
        "the file is a symbolic link (allowlists are never read through one)",
    ),
    ("allowlist-not-a-file", "the path is not a regular file"),
    (
        "allowlist-too-large",
        "the file is larger than MAX_FILE_BYTES",
    ),
    ("allowlist-not-utf8", "the file is not UTF-8"),
    ("allowlist-invalid-json", "package.json is not valid JSON"),
    (
        "allowlist-invalid-yaml",
        "pnpm-workspace.yaml is not valid YAML (or has a duplicated key, or several documents)",
    ),
    (
        "allowlist-wrong-type",
        "a field or value has the wrong type (a string where a boolean belongs, ...)",
    ),
    ("allowlist-empty-key", "an empty key or list item"),
];

/// An allowlist that cannot be used: `{file}:{line}: {message} [{code}]` (`{file}: …` when
/// the problem is the whole file, line 0).
#[derive(Debug, Error)]
#[error("{}: {message} [{code}]", at(file, *line))]
pub struct AllowlistError {
    /// Stable kebab-case code (see [`ERROR_CODES`]).
    pub code: &'static str,
    /// File, relative to the project root.
    pub file: PathBuf,
    /// 1-based line; 0 when the problem is the file itself.
    pub line: usize,
    /// One-line message.
    pub message: String,
    /// The I/O error, for read failures.
    #[source]
    pub source: Option<std::io::Error>,
}

fn at(file: &Path, line: usize) -> String {
    if line == 0 {
        file.display().to_string()
    } else {
        format!("{}:{line}", file.display())
    }
}

impl AllowlistError {
    fn new(code: &'static str, file: &Path, line: usize, message: String) -> Self {
        AllowlistError {
            code,
            file: file.to_path_buf(),
            line,
            message,
            source: None,
        }
    }

    fn io(file: &Path, source: std::io::Error) -> Self {
        AllowlistError {
            code: "allowlist-read",
            file: file.to_path_buf(),
            line: 0,
            message: format!("reading `{}`: {source}", file.display()),
            source: Some(source),
        }
    }
}

/// Every allowlist of a project.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Allowlists {
    entries: Vec<Entry>,
    diagnostics: Vec<Diagnostic>,
}

impl Allowlists {
    /// Read the allowlists of the project at `root` (`package.json`, `pnpm-workspace.yaml`).
    pub fn read(root: &Path) -> Result<Allowlists, AllowlistError> {
        // The root is the user's choice (it may be reached through a link); only the files in
        // it must not be links.
        let root = std::fs::canonicalize(root).map_err(|e| AllowlistError::io(root, e))?;
        let package_json = read_text(&root, PACKAGE_JSON)?;
        let workspace = read_text(&root, PNPM_WORKSPACE)?;
        Allowlists::from_texts(package_json.as_deref(), workspace.as_deref())
    }

    /// The allowlists in these file contents (`None`: the file does not exist).
    pub fn from_texts(
        package_json: Option<&str>,
        pnpm_workspace: Option<&str>,
    ) -> Result<Allowlists, AllowlistError> {
        let mut out = Allowlists::default();
        let pkg = match package_json {
            Some(text) => {
                let file = PathBuf::from(PACKAGE_JSON);
                let root = json::parse(&file, text)?;
                if !matches!(root.value, Value::Map(_)) {
                    return Err(doc::wrong_type(
                        &file,
                        root.line,
                        "`package.json`",
                        "an object",
                        root.kind(Lang::Json),
                    ));
                }
                Some(Doc {
                    file,
                    lang: Lang::Json,
                    root: Some(root),
                })
            }
            None => None,
        };
        let ws = match pnpm_workspace {
            Some(text) => {
                let file = PathBuf::from(PNPM_WORKSPACE);
                let root = yaml::parse(&file, text)?;
                Some(Doc {
                    file,
                    lang: Lang::Yaml,
                    root,
                })
            }
            None => None,
        };
        if let Some(d) = &pkg {
            npm::read(d, &mut out)?;
        }
        if let Some(d) = &ws {
            pnpm::read_workspace(d, &mut out)?;
        }
        if let Some(d) = &pkg {
            pnpm::read_package_json(d, &mut out)?;
            lavamoat::read(d, &mut out)?;
            bun::read(d, &mut out)?;
        }
        Ok(out)
    }

    /// What the allowlists say about `c`: denied if any entry denies it, else allowed if any
    /// entry allows it, else unreviewed.
    pub fn decide(&self, c: &Candidate<'_>) -> Decision<'_> {
        let mut allowed = None;
        for e in &self.entries {
            if !e.matches(c) {
                continue;
            }
            match e.verdict {
                Verdict::Deny => return Decision::Denied(e),
                Verdict::Allow => {
                    allowed.get_or_insert(e);
                }
            }
        }
        allowed.map_or(Decision::Unreviewed, Decision::Allowed)
    }

    /// Every entry, in the order: npm, `pnpm-workspace.yaml`, `package.json#pnpm`, LavaMoat,
    /// Bun; within one, as written.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// The non-fatal problems found while reading.
    pub fn diagnostics(&self) -> &[Diagnostic] {
        &self.diagnostics
    }

    /// Whether no allowlist has any entry.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Add an entry.
    #[allow(clippy::too_many_arguments)]
    fn push(
        &mut self,
        tool: Tool,
        doc: &Doc,
        field: &'static str,
        line: usize,
        key: &str,
        verdict: Verdict,
        matcher: Matcher,
    ) {
        self.entries.push(Entry {
            tool,
            file: doc.file.clone(),
            field,
            line,
            key: key.to_string(),
            verdict,
            matcher,
        });
    }

    /// Add a diagnostic.
    fn warn(&mut self, code: &'static str, doc: &Doc, line: usize, message: String) {
        debug_assert!(DIAGNOSTIC_CODES.iter().any(|(c, _)| *c == code), "{code}");
        self.diagnostics.push(Diagnostic {
            code,
            file: doc.file.clone(),
            line,
            message,
        });
    }
}

/// Read `rel` below `root` as text; `Ok(None)` when it does not exist.
fn read_text(root: &Path, rel: &str) -> Result<Option<String>, AllowlistError> {
    let file = Path::new(rel);
    let path = root.join(rel);
    let too_large = || {
        AllowlistError::new(
            "allowlist-too-large",
            file,
            0,
            format!("`{rel}` is larger than {} MiB", MAX_FILE_BYTES >> 20),
        )
    };
    let not_a_file = || {
        AllowlistError::new(
            "allowlist-not-a-file",
            file,
            0,
            format!("`{rel}` is not a regular file"),
        )
    };
    match std::fs::symlink_metadata(&path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(AllowlistError::io(file, e)),
        Ok(m) if m.file_type().is_symlink() => {
            return Err(AllowlistError::new(
                "allowlist-symlink",
                file,
                0,
                format!(
                    "`{rel}` is a symbolic link; allowlists are only read from a regular file in the project"
                ),
            ));
        }
        Ok(m) if !m.is_file() => return Err(not_a_file()),
        Ok(m) if m.len() > MAX_FILE_BYTES => return Err(too_large()),
        Ok(_) => {}
    }
    // Opened without following links and without blocking, read at most the cap, whatever
    // the file turned into since the check above.
    match crate::untrusted::read_file(root, file, MAX_FILE_BYTES) {
        Ok(Some((_, true))) => Err(too_large()),
        Ok(Some((bytes, false))) => String::from_utf8(bytes).map(Some).map_err(|e| {
            let before = &e.as_bytes()[..e.utf8_error().valid_up_to()];
            let line = 1 + before.iter().filter(|&&b| b == b'\n').count();
            AllowlistError::new(
                "allowlist-not-utf8",
                file,
                line,
                format!("`{rel}` is not UTF-8"),
            )
        }),
        Ok(None) => Err(not_a_file()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(AllowlistError::io(file, e)),
    }
}

/// The `{key: bool}` object in `m` (npm `allowScripts`, LavaMoat `allowScripts`): each key
/// once (the last value wins, with a diagnostic for the overridden one), its line and value.
/// `null` is no object.
fn bool_object<'d>(
    doc: &Doc,
    m: &'d Member,
    what: &str,
    out: &mut Allowlists,
) -> Result<Vec<(&'d str, usize, bool)>, AllowlistError> {
    let members = match &m.value.value {
        Value::Null => return Ok(Vec::new()),
        Value::Map(members) => members,
        _ => {
            return Err(doc::wrong_type(
                &doc.file,
                m.line,
                what,
                doc::map_word(doc.lang),
                m.value.kind(doc.lang),
            ));
        }
    };
    let (members, dups) = doc::last_wins(members);
    for (key, first, last) in dups {
        out.warn(
            "allowlist-duplicate-key",
            doc,
            first,
            format!("{what} has `{key}` twice; the value on line {last} counts"),
        );
    }
    let mut pairs = Vec::with_capacity(members.len());
    for mem in members {
        check_key(doc, &mem.key, mem.line, what)?;
        match mem.value.value {
            Value::Bool(b) => pairs.push((mem.key.as_str(), mem.line, b)),
            _ => {
                return Err(doc::wrong_type(
                    &doc.file,
                    mem.value.line,
                    &format!("{what} `{}`", mem.key),
                    "true or false",
                    mem.value.kind(doc.lang),
                ));
            }
        }
    }
    Ok(pairs)
}

/// The list of strings in `m` (Bun `trustedDependencies`, pnpm 10 lists), each with its line.
/// `null` is no list.
fn string_list<'d>(
    doc: &Doc,
    m: &'d Member,
    what: &str,
) -> Result<Vec<(&'d str, usize)>, AllowlistError> {
    let items = match &m.value.value {
        Value::Null => return Ok(Vec::new()),
        Value::Seq(items) => items,
        _ => {
            return Err(doc::wrong_type(
                &doc.file,
                m.line,
                what,
                &format!("{} of package names", doc::seq_word(doc.lang)),
                m.value.kind(doc.lang),
            ));
        }
    };
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        match &item.value {
            Value::Str(s) => {
                check_key(doc, s, item.line, what)?;
                out.push((s.as_str(), item.line));
            }
            _ => {
                return Err(doc::wrong_type(
                    &doc.file,
                    item.line,
                    &format!("an item of {what}"),
                    "a package name (a string)",
                    item.kind(doc.lang),
                ));
            }
        }
    }
    Ok(out)
}

/// An empty (or blank) key is an error.
fn check_key(doc: &Doc, key: &str, line: usize, what: &str) -> Result<(), AllowlistError> {
    if key.trim().is_empty() {
        return Err(AllowlistError::new(
            "allowlist-empty-key",
            &doc.file,
            line,
            format!("{what} has an empty key"),
        ));
    }
    Ok(())
}

/// The optional object field `name` of the document's root; `null` is absent; anything else
/// but an object is an error.
fn object_field<'d>(
    doc: &'d Doc,
    name: &str,
    what: &str,
) -> Result<Option<&'d Node>, AllowlistError> {
    let Some(root) = &doc.root else {
        return Ok(None);
    };
    let Some(m) = doc::field(root, name) else {
        return Ok(None);
    };
    match &m.value.value {
        Value::Null => Ok(None),
        Value::Map(_) => Ok(Some(&m.value)),
        _ => Err(doc::wrong_type(
            &doc.file,
            m.line,
            what,
            doc::map_word(doc.lang),
            m.value.kind(doc.lang),
        )),
    }
}
