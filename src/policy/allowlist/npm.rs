//! npm 11.16+/12: `package.json#allowScripts` (the root manifest only; npm ignores a
//! workspace's own field).
//!
//! ```json
//! { "allowScripts": {
//!     "esbuild@0.28.1": true,
//!     "nx@21.6.4 || 21.6.5": true,
//!     "sharp": true,
//!     "fsevents": false,
//!     "foo@git+ssh://git@github.com/org/foo.git#abc123": true,
//!     "bar@file:../bar": true
//! } }
//! ```
//!
//! Keys, as npm's `script-allowed.js` reads them through npm-package-arg:
//!
//! * `name`, `name@*`, `name@` and `name@<tag>` (`latest`, `next`) are name-only: any version;
//! * `name@1.2.3` is that exact version (compared literally, so `name@v1.2.3` never matches);
//! * `name@1.2.3 || 1.2.4` is one of these exact versions;
//! * any other range (`^1`, `~1.2.3`, `>=1`, `1.x`, `1`, `x`) never matches
//!   (`allowlist-range-never-matches`); nor does an alias (`name@npm:other@1`);
//! * `name@git+ssh://…#sha` (any git form: `git+https`, `github:o/p`, `o/p`) matches a package
//!   whose `resolved` is the same repository (hosted ones compared as host/owner/project,
//!   others by URL) at a commit the key's SHA is a prefix of; without `#sha`, any commit.
//!   Like npm, the key's name is not checked;
//! * `name@file:../bar` (or `../bar`, `./bar`) and `name@https://…/x.tgz` match `resolved`
//!   exactly (`file:` paths compared without `./` and a trailing `/`; a link's lockfile
//!   `resolved` is the bare path, `../bar`).
//!
//! Name keys approve only packages from a registry (npm: "a registry-style key must not match
//! a tarball or git node"), matched on the name and version in the `resolved` tarball URL. A
//! name `false` denies the package from any source: npm itself leaves a git `fsevents`
//! unreviewed (whose scripts npm 12 does not run either), so denying it is the same outcome,
//! said plainly. Bundled dependencies are never approved (see [`super::Entry::matches`]).

use super::doc::{self, Doc};
use super::git;
use super::spec::{self, Matcher, NamePattern, Target, Versions};
use super::{AllowlistError, Allowlists, Tool, Verdict};

/// The field read.
pub const FIELD: &str = "allowScripts";

/// Read `package.json#allowScripts` into `out`.
pub(super) fn read(d: &Doc, out: &mut Allowlists) -> Result<(), AllowlistError> {
    let Some(root) = &d.root else {
        return Ok(());
    };
    let Some(m) = doc::field(root, FIELD) else {
        return Ok(());
    };
    for (key, line, allow) in super::bool_object(d, m, "`allowScripts`", out)? {
        let (matcher, problem) = parse_key(key);
        if let Some((code, why)) = problem {
            out.warn(
                code,
                d,
                line,
                format!("npm never matches the `allowScripts` key `{key}`: {why}"),
            );
        }
        let verdict = if allow { Verdict::Allow } else { Verdict::Deny };
        out.push(Tool::Npm, d, FIELD, line, key, verdict, matcher);
    }
    Ok(())
}

/// A problem with a key: diagnostic code and why.
pub(super) type Problem = Option<(&'static str, String)>;

pub(super) fn never(why: impl Into<String>) -> (Matcher, Problem) {
    (
        Matcher::Never,
        Some(("allowlist-key-never-matches", why.into())),
    )
}

/// Whether `key` starts with a URL scheme (`git+ssh:`, `file:`, `github:`, `https:`): then it
/// is a spec without a name, as npm-package-arg reads it.
fn has_scheme(key: &str) -> bool {
    let Some(colon) = key.find(':') else {
        return false;
    };
    let scheme = &key[..colon];
    scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+.-".contains(&b))
}

/// Split a key into name and spec the way npm-package-arg does: a leading `@` is a scope, the
/// next `@` separates the spec; a key that is itself a URL, a path or a tarball has no name.
pub(super) fn split_key(key: &str) -> (Option<&str>, &str) {
    if has_scheme(key) || git::looks_like_git(key) || spec::is_file_spec(key) {
        return (None, key);
    }
    let at = key.get(1..).and_then(|s| s.find('@')).map(|i| i + 1);
    let name = at.map_or(key, |i| &key[..i]);
    let lower = name.to_ascii_lowercase();
    if !name.starts_with('@')
        && (name.contains('/')
            || name.contains('\\')
            || lower.ends_with(".tgz")
            || lower.ends_with(".tar")
            || lower.ends_with(".tar.gz"))
    {
        return (None, key);
    }
    match at {
        Some(i) => (Some(name), &key[i + 1..]),
        None => (Some(key), ""),
    }
}

/// Whether `name` could be a package name (npm-package-arg throws on others).
pub(super) fn valid_name(name: &str) -> bool {
    let ok = |s: &str| {
        !s.is_empty()
            && !s.starts_with('.')
            && !s.starts_with('_')
            && !s
                .chars()
                .any(|c| c.is_whitespace() || "/\\:?#%\"<>|@*".contains(c))
    };
    match name.strip_prefix('@') {
        Some(scoped) => scoped
            .split_once('/')
            .is_some_and(|(scope, n)| !scope.is_empty() && !scope.contains(['@', ' ']) && ok(n)),
        None => ok(name),
    }
}

/// Parse one `allowScripts` key.
pub(super) fn parse_key(key: &str) -> (Matcher, Problem) {
    let (name, spec) = split_key(key);
    let Some(name) = name else {
        return source_spec(spec);
    };
    if !valid_name(name) {
        return never(format!("`{name}` is not a valid package name"));
    }
    let spec = spec.trim();
    let by_name = |versions| Matcher::Name {
        name: NamePattern::Exact(name.to_string()),
        versions,
        any_source: false,
    };
    if spec.is_empty() || spec == "*" {
        return (by_name(Versions::Any), None);
    }
    if spec.starts_with("npm:") {
        return never("alias keys never match; name the real package");
    }
    if has_scheme(spec)
        || git::looks_like_git(spec)
        || spec::is_file_spec(spec)
        || spec.contains('/')
    {
        return source_spec(spec);
    }
    if spec::is_exact_version(spec) {
        return (by_name(Versions::Exact(vec![spec.to_string()])), None);
    }
    if let Some(rest) = spec.strip_prefix(['v', '=']) {
        if spec::is_exact_version(rest) {
            return never(format!(
                "npm compares `{spec}` literally with the installed version; write `{name}@{rest}`"
            ));
        }
    }
    if spec.contains("||") {
        if let Some(list) = spec::exact_disjunction(spec) {
            return (by_name(Versions::Exact(list)), None);
        }
    }
    if spec::is_range(spec) {
        return (
            Matcher::Never,
            Some((
                "allowlist-range-never-matches",
                format!(
                    "`{spec}` is a range, and only exact versions (`{name}@1.2.3 || 1.2.4`) or the bare name match"
                ),
            )),
        );
    }
    if spec::is_tag(spec) {
        // A dist-tag (`latest`): name-only.
        return (by_name(Versions::Any), None);
    }
    never(format!("`{spec}` is not a version, a tag or a source"))
}

/// A git, `file:` or remote spec (npm does not check the key's name against these).
fn source_spec(spec: &str) -> (Matcher, Problem) {
    source_matcher(spec, None, "npm")
}

/// The matcher of a git, `file:` or remote source `src`, also requiring `name` when given
/// (pnpm does; npm does not); `tool` names who would not match it, for the diagnostic.
pub(super) fn source_matcher(src: &str, name: Option<String>, tool: &str) -> (Matcher, Problem) {
    if spec::is_file_spec(src) {
        return (
            Matcher::Resolved {
                name,
                target: Target::File(spec::norm_file(src)),
            },
            None,
        );
    }
    if let Some(g) = git::parse_git(src) {
        if g.committish
            .as_deref()
            .is_some_and(|c| c.starts_with("semver:"))
        {
            return never("a `#semver:` git range never matches; pin a commit");
        }
        return (
            Matcher::Git {
                name,
                repo: g.repo,
                committish: g.committish,
            },
            None,
        );
    }
    if src.starts_with("https://") || src.starts_with("http://") {
        return (
            Matcher::Resolved {
                name,
                target: Target::Remote(src.to_string()),
            },
            None,
        );
    }
    never(format!("`{src}` is not a source {tool} matches"))
}

#[cfg(test)]
mod tests {
    use super::super::Candidate;
    use super::*;

    fn allow(key: &str, c: &Candidate<'_>) -> bool {
        let (m, p) = parse_key(key);
        assert!(p.is_none(), "{key}: {p:?}");
        m.matches(c, Verdict::Allow)
    }

    fn reg<'a>(name: &'a str, version: &'a str, url: &'a str) -> Candidate<'a> {
        Candidate {
            resolved: Some(url),
            ..Candidate::new(name, version)
        }
    }

    const ESBUILD: &str = "https://registry.npmjs.org/esbuild/-/esbuild-0.28.1.tgz";

    #[test]
    fn names_split_like_npm_package_arg() {
        assert_eq!(split_key("esbuild"), (Some("esbuild"), ""));
        assert_eq!(split_key("esbuild@0.28.1"), (Some("esbuild"), "0.28.1"));
        assert_eq!(split_key("@scope/name"), (Some("@scope/name"), ""));
        assert_eq!(
            split_key("@scope/name@1.0.0"),
            (Some("@scope/name"), "1.0.0")
        );
        assert_eq!(
            split_key("foo@git+ssh://git@github.com/org/foo.git#abc"),
            (Some("foo"), "git+ssh://git@github.com/org/foo.git#abc")
        );
        assert_eq!(
            split_key("git+ssh://git@github.com/org/foo.git#abc"),
            (None, "git+ssh://git@github.com/org/foo.git#abc")
        );
        assert_eq!(split_key("bar@file:../bar"), (Some("bar"), "file:../bar"));
        assert_eq!(split_key("./bar"), (None, "./bar"));
        assert_eq!(split_key("org/foo"), (None, "org/foo"));
        assert_eq!(split_key("foo.tgz"), (None, "foo.tgz"));
    }

    #[test]
    fn exact_pin() {
        assert!(allow("esbuild@0.28.1", &reg("esbuild", "0.28.1", ESBUILD)));
        assert!(!allow("esbuild@0.28.2", &reg("esbuild", "0.28.1", ESBUILD)));
        assert!(!allow(
            "esbuild@0.28.1",
            &Candidate::new("esbuild-wasm", "0.28.1")
        ));
    }

    #[test]
    fn bare_name_star_and_tag_are_name_only() {
        for key in ["sharp", "sharp@*", "sharp@latest", "sharp@next", "sharp@"] {
            assert!(allow(key, &Candidate::new("sharp", "0.34.0")), "{key}");
            assert!(!allow(key, &Candidate::new("sharpie", "0.34.0")), "{key}");
        }
    }

    #[test]
    fn exact_disjunction() {
        let key = "nx@21.6.4 || 21.6.5";
        assert!(allow(key, &Candidate::new("nx", "21.6.4")));
        assert!(allow(key, &Candidate::new("nx", "21.6.5")));
        assert!(!allow(key, &Candidate::new("nx", "21.6.6")));
    }

    #[test]
    fn scoped_names() {
        let c = reg(
            "@esbuild/linux-x64",
            "0.28.1",
            "https://registry.npmjs.org/@esbuild/linux-x64/-/linux-x64-0.28.1.tgz",
        );
        assert!(allow("@esbuild/linux-x64@0.28.1", &c));
        assert!(allow("@esbuild/linux-x64", &c));
        assert!(!allow("@esbuild/linux-x64@0.28.0", &c));
        assert!(!allow("linux-x64", &c));
        assert!(!allow("@esbuild/linux-arm64", &c));
    }

    #[test]
    fn ranges_never_match_and_say_so() {
        for key in [
            "esbuild@^0.28.1",
            "esbuild@~0.28.1",
            "esbuild@>=0.28.0",
            "esbuild@<1",
            "esbuild@<=0.28.1",
            "esbuild@>0.1",
            "esbuild@0.x",
            "esbuild@x",
            "esbuild@0",
            "esbuild@0.28.1 || ^0.29",
        ] {
            let (m, p) = parse_key(key);
            assert_eq!(m, Matcher::Never, "{key}");
            assert_eq!(
                p.map(|p| p.0),
                Some("allowlist-range-never-matches"),
                "{key}"
            );
        }
    }

    #[test]
    fn aliases_v_prefixes_and_junk_never_match() {
        for key in [
            "foo@npm:bar@1.0.0",
            "foo@v1.0.0",
            "foo@=1.0.0",
            "foo bar",
            "foo@a b",
            "@scope",
        ] {
            let (m, p) = parse_key(key);
            assert_eq!(m, Matcher::Never, "{key}");
            assert_eq!(p.map(|p| p.0), Some("allowlist-key-never-matches"), "{key}");
        }
    }

    #[test]
    fn a_name_never_approves_a_git_or_file_package_but_denies_it() {
        let git = Candidate {
            resolved: Some("git+ssh://git@github.com/org/sharp.git#0123456789abcdef"),
            ..Candidate::new("sharp", "0.34.0")
        };
        let (m, _) = parse_key("sharp");
        assert!(!m.matches(&git, Verdict::Allow));
        assert!(m.matches(&git, Verdict::Deny));
        let tarball = reg("sharp", "0.34.0", "https://example.com/sharp-0.34.0.tgz");
        assert!(!m.matches(&tarball, Verdict::Allow));
        assert!(m.matches(&tarball, Verdict::Deny));
    }

    #[test]
    fn the_registry_url_is_the_identity_allows_trust() {
        // `node_modules/esbuild` is really `evil` (an alias, or a lying tarball).
        let c = reg(
            "esbuild",
            "0.28.1",
            "https://registry.npmjs.org/evil/-/evil-0.28.1.tgz",
        );
        let (m, _) = parse_key("esbuild");
        assert!(!m.matches(&c, Verdict::Allow));
        assert!(
            m.matches(&c, Verdict::Deny),
            "a denied name is denied under an alias too"
        );
        let (m, _) = parse_key("evil@0.28.1");
        assert!(m.matches(&c, Verdict::Allow));
        // The version in the URL counts, not the one claimed.
        let c = reg(
            "esbuild",
            "0.28.1",
            "https://registry.npmjs.org/esbuild/-/esbuild-0.0.1.tgz",
        );
        assert!(!allow("esbuild@0.28.1", &c));
    }

    #[test]
    fn git_keys_match_the_resolved_repository_and_commit_prefix() {
        let c = Candidate {
            resolved: Some(
                "git+ssh://git@github.com/org/foo.git#abc123def4567890abc123def4567890abc123de",
            ),
            ..Candidate::new("foo", "1.0.0")
        };
        assert!(allow("foo@git+ssh://git@github.com/org/foo.git#abc123", &c));
        assert!(allow(
            "foo@git+ssh://git@github.com/org/foo.git#abc123def4567890abc123def4567890abc123de",
            &c
        ));
        assert!(allow("foo@git+https://github.com/org/foo.git#abc1", &c));
        assert!(allow("foo@github:org/foo#abc123", &c));
        assert!(allow("foo@org/foo#abc123", &c));
        assert!(allow("git+ssh://git@github.com/org/foo.git#abc123", &c));
        assert!(
            allow("foo@git+ssh://git@github.com/org/foo.git", &c),
            "no commit: any"
        );
        assert!(!allow("foo@git+ssh://git@github.com/org/foo.git#abd", &c));
        assert!(!allow(
            "foo@git+ssh://git@github.com/org/bar.git#abc123",
            &c
        ));
        assert!(!allow(
            "foo@git+ssh://git@github.com/other/foo.git#abc123",
            &c
        ));
        // A longer key than the resolved commit never matches.
        let short = Candidate {
            resolved: Some("git+ssh://git@github.com/org/foo.git#abc"),
            ..c
        };
        assert!(!allow(
            "foo@git+ssh://git@github.com/org/foo.git#abc123",
            &short
        ));
        // Not git at all.
        assert!(!allow(
            "foo@git+ssh://git@github.com/org/foo.git",
            &Candidate::new("foo", "1.0.0")
        ));
    }

    #[test]
    fn non_hosted_git_compares_urls() {
        let c = Candidate {
            resolved: Some("git+ssh://git@example.com/org/foo.git#abc123def"),
            ..Candidate::new("foo", "1.0.0")
        };
        assert!(allow(
            "foo@git+ssh://git@example.com/org/foo.git#abc123",
            &c
        ));
        assert!(!allow(
            "foo@git+ssh://git@example.org/org/foo.git#abc123",
            &c
        ));
        let (m, p) = parse_key("foo@git+ssh://git@example.com/org/foo.git#semver:^1");
        assert_eq!(
            (m, p.map(|p| p.0)),
            (Matcher::Never, Some("allowlist-key-never-matches"))
        );
    }

    #[test]
    fn file_and_remote_keys_match_resolved_exactly() {
        let link = Candidate {
            resolved: Some("../bar"),
            ..Candidate::new("bar", "1.0.0")
        };
        let file = Candidate {
            resolved: Some("file:../bar"),
            ..Candidate::new("bar", "1.0.0")
        };
        for key in ["bar@file:../bar", "bar@../bar", "bar@file:../bar/"] {
            assert!(allow(key, &link), "{key}");
            assert!(allow(key, &file), "{key}");
        }
        assert!(!allow("bar@file:../baz", &file));
        assert!(!allow("bar@file:../bar", &Candidate::new("bar", "1.0.0")));
        let tgz = Candidate {
            resolved: Some("https://example.com/bar-1.0.0.tgz"),
            ..Candidate::new("bar", "1.0.0")
        };
        assert!(allow("bar@https://example.com/bar-1.0.0.tgz", &tgz));
        assert!(!allow("bar@https://example.com/bar-1.0.1.tgz", &tgz));
    }
}
