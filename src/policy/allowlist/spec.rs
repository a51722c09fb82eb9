//! The pieces every source's keys are built from: exact versions, version ranges (which never
//! match), `file:` paths, registry tarball URLs, name wildcards (git URLs are `git.rs`'s), and
//! the [`Matcher`] an entry keeps.

use super::git::{GitRepo, parse_git};
use super::{Candidate, Verdict};

/// What an entry matches, parsed once from its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Matcher {
    /// Every package (`dangerouslyAllowAllBuilds: true`).
    All,
    /// A package by name (or name wildcard), optionally pinned to exact versions.
    Name {
        /// The name.
        name: NamePattern,
        /// Which versions.
        versions: Versions,
        /// Whether an allow also covers a package that did not come from a registry (Bun:
        /// names only, and a git dependency is trusted by being listed). npm and pnpm never
        /// let a name approve a git or tarball dependency.
        any_source: bool,
    },
    /// A git repository, optionally at a commit (a prefix of the resolved SHA).
    Git {
        /// pnpm's keys name the package too; npm's git keys match on the URL alone.
        name: Option<String>,
        /// The repository.
        repo: GitRepo,
        /// Commit prefix; `None` is any commit.
        committish: Option<String>,
    },
    /// A `file:` path or a tarball URL, matched exactly against `resolved`.
    Resolved {
        /// Package name when the key names one and the tool checks it (pnpm).
        name: Option<String>,
        /// What `resolved` must be.
        target: Target,
    },
    /// A LavaMoat dependency path, optionally at one version.
    Path {
        /// Package names from the root's direct dependency down.
        path: Vec<String>,
        /// Exact version; `None` is any.
        version: Option<String>,
    },
    /// A key the tool itself never matches (a range, an alias, a tag pnpm rejects); kept so
    /// it can be listed, and reported once as a diagnostic.
    Never,
}

/// A package name, or an aube-style wildcard (`@babel/*`, `*-loader`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum NamePattern {
    /// Exactly this name.
    Exact(String),
    /// `*` matches any run of characters (including `/`), anchored at both ends.
    Glob(String),
}

/// Which versions a name entry covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Versions {
    /// Any version.
    Any,
    /// One of these exact versions.
    Exact(Vec<String>),
}

/// A `file:` path or a remote tarball URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Target {
    /// A local path, compared after [`norm_file`].
    File(String),
    /// A URL, compared exactly.
    Remote(String),
}

impl Matcher {
    /// Whether the matcher covers `c` for an entry of `verdict`.
    ///
    /// Name matching uses the package's *trusted* identity: the name and version in a registry
    /// tarball `resolved` URL when there is one (npm: the tarball's own `package.json` can
    /// claim any name; an alias `node_modules/esbuild` → `npm:evil@1` is `evil`), else the
    /// candidate's name and version. A deny also matches the candidate's own name, so a denied
    /// name is denied under an alias too; an allow never is.
    pub(super) fn matches(&self, c: &Candidate<'_>, verdict: Verdict) -> bool {
        match self {
            Matcher::All => true,
            Matcher::Never => false,
            Matcher::Name {
                name,
                versions,
                any_source,
            } => {
                let trusted = registry_identity(c.resolved);
                let (tname, tversion) = trusted
                    .as_ref()
                    .map_or((c.name, c.version), |(n, v)| (n.as_str(), v.as_str()));
                let by_trusted = name.matches(tname) && versions.matches(tversion);
                match verdict {
                    Verdict::Allow => by_trusted && (*any_source || is_registry(c)),
                    Verdict::Deny => {
                        by_trusted || (name.matches(c.name) && versions.matches(c.version))
                    }
                }
            }
            Matcher::Git {
                name,
                repo,
                committish,
            } => {
                if name.as_deref().is_some_and(|n| n != c.name) {
                    return false;
                }
                let Some(resolved) = c.resolved.filter(|r| r.starts_with("git")) else {
                    return false;
                };
                let Some(parsed) = parse_git(resolved) else {
                    return false;
                };
                if parsed.repo != *repo {
                    return false;
                }
                match committish {
                    None => true,
                    // The lockfile's full SHA must start with the key's (short) one, never
                    // the reverse (npm `script-allowed.js`).
                    Some(k) => parsed
                        .committish
                        .as_deref()
                        .is_some_and(|r| !r.is_empty() && r.starts_with(k.as_str())),
                }
            }
            Matcher::Resolved { name, target } => {
                if name.as_deref().is_some_and(|n| n != c.name) {
                    return false;
                }
                let Some(resolved) = c.resolved else {
                    return false;
                };
                match target {
                    // A link's lockfile `resolved` is the bare relative path (`../bar`).
                    Target::File(path) => {
                        (is_file_spec(resolved) || !resolved.contains(':'))
                            && norm_file(resolved) == *path
                    }
                    Target::Remote(url) => resolved == url,
                }
            }
            Matcher::Path { path, version } => {
                c.dep_path.len() == path.len()
                    && c.dep_path.iter().zip(path).all(|(a, b)| *a == b)
                    && version.as_deref().is_none_or(|v| v == c.version)
            }
        }
    }
}

impl NamePattern {
    /// A name with `*` in it is a wildcard.
    pub(super) fn new(name: &str) -> NamePattern {
        if name.contains('*') {
            NamePattern::Glob(name.to_string())
        } else {
            NamePattern::Exact(name.to_string())
        }
    }

    /// Whether `name` matches.
    pub(super) fn matches(&self, name: &str) -> bool {
        match self {
            NamePattern::Exact(n) => n == name,
            NamePattern::Glob(g) => glob_match(g, name),
        }
    }
}

impl Versions {
    /// Whether `version` is covered. Build metadata (`+sha.1`) is ignored on both sides, as
    /// semver comparison ignores it.
    pub(super) fn matches(&self, version: &str) -> bool {
        match self {
            Versions::Any => true,
            Versions::Exact(list) => list
                .iter()
                .any(|v| strip_build(v) == strip_build(version.trim())),
        }
    }
}

fn strip_build(v: &str) -> &str {
    v.split_once('+').map_or(v, |(a, _)| a)
}

/// `*` wildcard match, anchored (aube / `@pnpm/matcher` semantics: `*` is any run of any
/// characters, `/` included).
pub(super) fn glob_match(pattern: &str, s: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    let (first, rest) = parts.split_first().expect("split yields one part at least");
    let Some(mut s) = s.strip_prefix(first) else {
        return false;
    };
    let Some((last, middle)) = rest.split_last() else {
        return s.is_empty();
    };
    for part in middle {
        match s.find(part) {
            Some(i) => s = &s[i + part.len()..],
            None => return false,
        }
    }
    s.len() >= last.len() && s.ends_with(last)
}

/// A strict semver version (`1.2.3`, `1.2.3-rc.1`, `1.2.3+build`): what npm's and pnpm's
/// exact-version keys must be.
pub(super) fn is_exact_version(s: &str) -> bool {
    let (core, build) = match s.split_once('+') {
        Some((c, b)) => (c, Some(b)),
        None => (s, None),
    };
    let (main, pre) = match core.split_once('-') {
        Some((m, p)) => (m, Some(p)),
        None => (core, None),
    };
    let numeric = |p: &str| {
        !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) && (p == "0" || !p.starts_with('0'))
    };
    let ident =
        |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    let nums: Vec<&str> = main.split('.').collect();
    nums.len() == 3
        && nums.iter().all(|n| numeric(n))
        && pre.is_none_or(|p| {
            p.split('.')
                .all(|i| ident(i) && (!i.bytes().all(|b| b.is_ascii_digit()) || numeric(i)))
        })
        && build.is_none_or(|b| b.split('.').all(ident))
}

/// `1.2.3 || 1.2.4` (at least one part; spaces around `||` allowed; `v1.2.3` accepted, as
/// `semver.valid` accepts it): the exact versions, without the `v`. `None` if any part is not
/// an exact version.
pub(super) fn exact_disjunction(spec: &str) -> Option<Vec<String>> {
    spec.split("||")
        .map(|p| {
            let p = p.trim();
            let p = p.strip_prefix('v').unwrap_or(p);
            is_exact_version(p).then(|| p.to_string())
        })
        .collect()
}

/// Whether `spec` is a semver range that is not a set of exact versions (`^1.2.3`, `~1`,
/// `>=1.0.0 <2`, `1.x`, `1`, `1.2.3 - 2.0.0`, `x`): npm and pnpm never match such a key.
pub(super) fn is_range(spec: &str) -> bool {
    let mut tokens = 0;
    for alt in spec.split("||") {
        for token in alt.split_whitespace() {
            tokens += 1;
            if token == "-" {
                continue;
            }
            let t = token.trim_start_matches(['<', '>', '=', '~', '^']);
            if t.is_empty() {
                // An operator on its own (`>= 1.2.3`).
                continue;
            }
            let t = t.strip_prefix('v').unwrap_or(t);
            if !is_partial_version(t) {
                return false;
            }
        }
    }
    tokens > 0
}

/// `1`, `1.2`, `1.2.3`, `1.x`, `*`, `1.2.3-rc.1` ...
fn is_partial_version(t: &str) -> bool {
    if !t
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-+.*".contains(&b))
    {
        return false;
    }
    let core = t.split(['-', '+']).next().unwrap_or(t);
    let parts: Vec<&str> = core.split('.').collect();
    (1..=3).contains(&parts.len())
        && parts.iter().all(|p| {
            matches!(*p, "x" | "X" | "*")
                || (!p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        })
}

/// Characters `encodeURIComponent` leaves alone: a dist-tag name must consist of them
/// (npm-package-arg rejects any other spec).
pub(super) fn is_tag(spec: &str) -> bool {
    !spec.is_empty()
        && spec
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.!~*'()".contains(&b))
}

/// Whether `spec` is a local path spec (`file:…`, `./…`, `../…`, `/…`, `~/…`).
pub(super) fn is_file_spec(spec: &str) -> bool {
    spec.starts_with("file:")
        || spec.starts_with("./")
        || spec.starts_with("../")
        || spec.starts_with('/')
        || spec.starts_with("~/")
        || spec == "."
        || spec == ".."
}

/// A local path in the form compared: without `file:`, leading `./` and a trailing `/`
/// (`file:./bar/`, `file:bar` and the lockfile link form `bar` are one path).
pub(super) fn norm_file(spec: &str) -> String {
    let mut s = spec.strip_prefix("file:").unwrap_or(spec);
    while let Some(rest) = s.strip_prefix("./") {
        s = rest;
    }
    while s.len() > 1 {
        match s.strip_suffix('/') {
            Some(rest) => s = rest,
            None => break,
        }
    }
    s.to_string()
}

/// A package that came from a registry: no `resolved` at all (a lockfile written with
/// `omit-lockfile-registry-resolved`), or a tarball URL of the registry shape
/// `<host>/…/<name>/-/<name>-<version>.tgz`. Git, `file:` and other tarball URLs are not.
pub(super) fn is_registry(c: &Candidate<'_>) -> bool {
    match c.resolved {
        None => !c.version.is_empty(),
        Some(r) => registry_identity(Some(r)).is_some(),
    }
}

/// The name and version a registry tarball URL names
/// (`https://registry.npmjs.org/@scope/name/-/name-1.2.3.tgz` → `@scope/name`, `1.2.3`), as
/// arborist's `version-from-tgz.js` reads them. A registry at a sub-path works; the host must
/// be followed by at least one path segment before the name.
pub(super) fn registry_identity(resolved: Option<&str>) -> Option<(String, String)> {
    let r = resolved?;
    let rest = r
        .strip_prefix("https://")
        .or_else(|| r.strip_prefix("http://"))?;
    let rest = rest.split(['?', '#']).next()?;
    let (host, path) = rest.split_once('/')?;
    if host.is_empty() {
        return None;
    }
    let (before, file) = path.rsplit_once("/-/")?;
    if file.contains('/') {
        return None;
    }
    let decoded = before
        .replace("%2f", "/")
        .replace("%2F", "/")
        .replace("%40", "@");
    let segs: Vec<&str> = decoded.split('/').filter(|s| !s.is_empty()).collect();
    let (last, init) = segs.split_last()?;
    let name = match init.last() {
        Some(scope) if scope.starts_with('@') => format!("{scope}/{last}"),
        _ => (*last).to_string(),
    };
    let base = name.rsplit('/').next()?;
    let version = file
        .strip_suffix(".tgz")?
        .strip_prefix(base)?
        .strip_prefix('-')?;
    if version.is_empty() || !version.starts_with(|c: char| c.is_ascii_digit()) {
        return None;
    }
    Some((name, version.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_versions() {
        for ok in [
            "1.2.3",
            "0.28.1",
            "1.0.0-rc.1",
            "1.0.0-alpha-1",
            "1.0.0+build.5",
            "10.20.30",
        ] {
            assert!(is_exact_version(ok), "{ok}");
        }
        for bad in [
            "1", "1.2", "01.2.3", "1.2.3-01", "^1.2.3", "v1.2.3", "1.2.x", "", "1.2.3-", "a.b.c",
        ] {
            assert!(!is_exact_version(bad), "{bad}");
        }
    }

    #[test]
    fn disjunctions_of_exact_versions() {
        assert_eq!(
            exact_disjunction("21.6.4 || 21.6.5"),
            Some(vec!["21.6.4".to_string(), "21.6.5".to_string()])
        );
        assert_eq!(exact_disjunction("v1.0.0"), Some(vec!["1.0.0".to_string()]));
        assert_eq!(exact_disjunction("1.0.0 || ^2.0.0"), None);
        assert_eq!(exact_disjunction("1.0.0 ||"), None);
    }

    #[test]
    fn ranges() {
        for r in [
            "^1.2.3",
            "~1.2.3",
            ">=1.0.0",
            "<2",
            "<=1.2.3",
            ">1",
            "1.x",
            "1",
            "1.2",
            "x",
            "*",
            ">= 1.2.3 < 2",
            "1.2.3 - 2.3.4",
            "^1 || ^2",
            "~>1.2",
        ] {
            assert!(is_range(r), "{r}");
        }
        for t in ["latest", "next", "beta", "", "1.2.3-rc.1-x!"] {
            assert!(!is_range(t), "{t}");
        }
    }

    #[test]
    fn tags() {
        assert!(is_tag("latest"));
        assert!(is_tag("next-12"));
        assert!(!is_tag("a b"));
        assert!(!is_tag("a/b"));
        assert!(!is_tag(""));
    }

    #[test]
    fn globs() {
        assert!(glob_match("@babel/*", "@babel/core"));
        assert!(!glob_match("@babel/*", "@babelx/core"));
        assert!(glob_match("*-loader", "css-loader"));
        assert!(glob_match("*-loader", "@scope/x-loader"));
        assert!(!glob_match("*-loader", "loader"));
        assert!(!glob_match("*-loader", "css-loader2"));
        assert!(glob_match("a*b*c", "abc"));
        assert!(glob_match("a*b*c", "a-b-c"));
        assert!(!glob_match("a*b*c", "a-c-b"));
        assert!(glob_match("*", "anything"));
        assert!(glob_match("esbuild", "esbuild"));
        assert!(!glob_match("esbuild", "esbuild-wasm"));
    }

    #[test]
    fn registry_identities() {
        assert_eq!(
            registry_identity(Some(
                "https://registry.npmjs.org/esbuild/-/esbuild-0.28.1.tgz"
            )),
            Some(("esbuild".into(), "0.28.1".into()))
        );
        assert_eq!(
            registry_identity(Some(
                "https://registry.npmjs.org/@esbuild/linux-x64/-/linux-x64-0.28.1.tgz"
            )),
            Some(("@esbuild/linux-x64".into(), "0.28.1".into()))
        );
        assert_eq!(
            registry_identity(Some(
                "https://npm.example.com/api/npm/registry/@s%2fn/-/n-1.0.0-rc.1.tgz"
            )),
            Some(("@s/n".into(), "1.0.0-rc.1".into()))
        );
        // The host alone before `/-/` is not a registry shape (npm's regex).
        assert_eq!(
            registry_identity(Some("https://evil.com/-/trusted-1.0.0.tgz")),
            None
        );
        assert_eq!(
            registry_identity(Some("https://x.com/a/-/b-1.0.0.tgz")),
            None
        );
        assert_eq!(
            registry_identity(Some("git+ssh://git@github.com/o/p.git#abc")),
            None
        );
        assert_eq!(registry_identity(Some("file:../bar")), None);
        assert_eq!(registry_identity(None), None);
    }

    #[test]
    fn file_paths_normalise() {
        assert_eq!(norm_file("file:./bar/"), "bar");
        assert_eq!(norm_file("file:../bar"), "../bar");
        assert_eq!(norm_file("../bar"), "../bar");
        assert_eq!(norm_file("file:/"), "/");
    }
}
