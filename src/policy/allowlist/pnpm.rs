//! pnpm: `pnpm-workspace.yaml#allowBuilds` (pnpm 10.26+, the only form in 11 and 12) and
//! `dangerouslyAllowAllBuilds`; pnpm 10's `onlyBuiltDependencies` (allow),
//! `ignoredBuiltDependencies` and `neverBuiltDependencies` (deny), in `pnpm-workspace.yaml` or
//! `package.json#pnpm`.
//!
//! ```yaml
//! allowBuilds:
//!   esbuild: true
//!   core-js: false
//!   nx@21.6.4 || 21.6.5: true
//!   nx@21.6.0: false
//!   'foo@git+ssh://git@example.com/org/foo.git': true      # any commit of this repo
//!   'bar@git+https://github.com/org/bar.git#abc123': true  # that commit
//! dangerouslyAllowAllBuilds: false
//! ```
//!
//! Keys, as pnpm's `createAllowBuildFunction` / `parseVersionPolicyRule` read them:
//!
//! * `name` (any version) or `name@1.2.3 || 1.2.4` (exact versions; a leading `v` is dropped as
//!   `semver.valid` does). pnpm rejects any other version (a range or a tag) with
//!   `ERR_PNPM_INVALID_VERSION_UNION`; here such a key never matches
//!   (`allowlist-range-never-matches` / `allowlist-key-never-matches`);
//! * in `allowBuilds` only, aube's `*` wildcards in names (`@babel/*`, `*-loader`); a wildcard
//!   with a version never matches (pnpm: `ERR_PNPM_NAME_PATTERN_IN_VERSION_UNION`);
//! * `name@<git url>[#commit]`, `name@https://…tgz`, `name@file:…`: pnpm matches the package's
//!   dependency path, so the name must be the package's and the source its `resolved`: git
//!   repositories compared as npm does (a commit in the key must be a prefix of the resolved
//!   SHA; none is any commit), tarballs and paths exactly.
//!
//! A name approves only a package from a registry ("a bare name never approves a git/tarball
//! dependency"); a name `false` blocks it from any source. `dangerouslyAllowAllBuilds: true` is
//! recorded as one entry that allows every package (pnpm then ignores `false` entries too;
//! here they still deny). A value in `allowBuilds` that is not a boolean is pnpm's placeholder
//! for an unreviewed package (`set this to true or false`): no entry, a diagnostic.

use super::doc::{self, Doc, Value};
use super::npm::{Problem, valid_name};
use super::spec::{self, Matcher, NamePattern, Versions};
use super::{AllowlistError, Allowlists, Tool, Verdict};

/// `allowBuilds` (pnpm 10.26+).
pub const ALLOW_BUILDS: &str = "allowBuilds";
/// `dangerouslyAllowAllBuilds`.
pub const ALLOW_ALL: &str = "dangerouslyAllowAllBuilds";
/// pnpm 10 fields: name and whether listed packages are allowed.
pub const LISTS: [(&str, Verdict); 3] = [
    ("onlyBuiltDependencies", Verdict::Allow),
    ("ignoredBuiltDependencies", Verdict::Deny),
    ("neverBuiltDependencies", Verdict::Deny),
];
/// pnpm 10's file of names (not read).
pub const ONLY_BUILT_FILE: &str = "onlyBuiltDependenciesFile";

/// Read `pnpm-workspace.yaml` into `out`.
pub(super) fn read_workspace(d: &Doc, out: &mut Allowlists) -> Result<(), AllowlistError> {
    let Some(root) = &d.root else {
        return Ok(());
    };
    if !matches!(root.value, Value::Map(_)) {
        return Err(doc::wrong_type(
            &d.file,
            root.line,
            "`pnpm-workspace.yaml`",
            "a mapping",
            root.kind(d.lang),
        ));
    }
    if let Some(m) = doc::field(root, ALLOW_BUILDS) {
        allow_builds(d, m, out)?;
    }
    settings(d, root, Fields::WORKSPACE, out)
}

/// Read `package.json#pnpm` (pnpm 10) into `out`.
pub(super) fn read_package_json(d: &Doc, out: &mut Allowlists) -> Result<(), AllowlistError> {
    match super::object_field(d, "pnpm", "`pnpm`")? {
        Some(pnpm) => settings(d, pnpm, Fields::PACKAGE_JSON, out),
        None => Ok(()),
    }
}

/// The entry field names for one location.
struct Fields {
    allow_all: &'static str,
    lists: [&'static str; 3],
    only_built_file: &'static str,
}

impl Fields {
    const WORKSPACE: Fields = Fields {
        allow_all: ALLOW_ALL,
        lists: [LISTS[0].0, LISTS[1].0, LISTS[2].0],
        only_built_file: ONLY_BUILT_FILE,
    };
    const PACKAGE_JSON: Fields = Fields {
        allow_all: "pnpm.dangerouslyAllowAllBuilds",
        lists: [
            "pnpm.onlyBuiltDependencies",
            "pnpm.ignoredBuiltDependencies",
            "pnpm.neverBuiltDependencies",
        ],
        only_built_file: "pnpm.onlyBuiltDependenciesFile",
    };
}

/// `dangerouslyAllowAllBuilds` and the pnpm 10 lists in the map `node`.
fn settings(
    d: &Doc,
    node: &doc::Node,
    fields: Fields,
    out: &mut Allowlists,
) -> Result<(), AllowlistError> {
    if let Some(m) = doc::field(node, ALLOW_ALL) {
        match m.value.value {
            Value::Bool(true) => {
                out.push(
                    Tool::Pnpm,
                    d,
                    fields.allow_all,
                    m.line,
                    ALLOW_ALL,
                    Verdict::Allow,
                    Matcher::All,
                );
                out.warn(
                    "allowlist-allow-all",
                    d,
                    m.line,
                    format!(
                        "`{}: true` allows every package's install scripts; `false` entries still deny",
                        fields.allow_all
                    ),
                );
            }
            Value::Bool(false) | Value::Null => {}
            _ => {
                return Err(doc::wrong_type(
                    &d.file,
                    m.value.line,
                    &format!("`{}`", fields.allow_all),
                    "true or false",
                    m.value.kind(d.lang),
                ));
            }
        }
    }
    for ((list, verdict), field) in LISTS.iter().zip(fields.lists) {
        let Some(m) = doc::field(node, list) else {
            continue;
        };
        for (item, line) in super::string_list(d, m, &format!("`{field}`"))? {
            let (matcher, problem) = parse_key(item, false);
            report(d, out, field, item, line, problem);
            out.push(Tool::Pnpm, d, field, line, item, *verdict, matcher);
        }
    }
    let has = |name: &str| doc::field(node, name).is_some_and(|m| m.value.value != Value::Null);
    if has("neverBuiltDependencies") && !has("onlyBuiltDependencies") {
        let line = doc::field(node, "neverBuiltDependencies").map_or(0, |m| m.line);
        out.warn(
            "allowlist-never-built-only-denies",
            d,
            line,
            format!(
                "pnpm 10 builds every package not in `{}`; ringfence takes its entries as denials and leaves the other packages unreviewed",
                fields.lists[2]
            ),
        );
    }
    if let Some(m) = doc::field(node, ONLY_BUILT_FILE) {
        out.warn(
            "allowlist-not-read",
            d,
            m.line,
            format!(
                "`{}` is not read; list the packages in `allowBuilds` instead",
                fields.only_built_file
            ),
        );
    }
    Ok(())
}

/// `allowBuilds`: a mapping of key → boolean (or pnpm's placeholder string).
fn allow_builds(d: &Doc, m: &doc::Member, out: &mut Allowlists) -> Result<(), AllowlistError> {
    let members = match &m.value.value {
        Value::Null => return Ok(()),
        Value::Map(members) => members,
        _ => {
            return Err(doc::wrong_type(
                &d.file,
                m.line,
                "`allowBuilds`",
                "a mapping",
                m.value.kind(d.lang),
            ));
        }
    };
    for mem in members {
        super::check_key(d, &mem.key, mem.line, "`allowBuilds`")?;
        let verdict = match &mem.value.value {
            Value::Bool(true) => Verdict::Allow,
            Value::Bool(false) => Verdict::Deny,
            Value::Str(_) | Value::Null => {
                out.warn(
                    "allowlist-unreviewed-placeholder",
                    d,
                    mem.line,
                    format!(
                        "`allowBuilds` leaves `{}` for review (its value is not true or false); it stays unreviewed",
                        mem.key
                    ),
                );
                continue;
            }
            _ => {
                return Err(doc::wrong_type(
                    &d.file,
                    mem.value.line,
                    &format!("`allowBuilds` `{}`", mem.key),
                    "true or false",
                    mem.value.kind(d.lang),
                ));
            }
        };
        let (matcher, problem) = parse_key(&mem.key, true);
        report(d, out, ALLOW_BUILDS, &mem.key, mem.line, problem);
        out.push(
            Tool::Pnpm,
            d,
            ALLOW_BUILDS,
            mem.line,
            &mem.key,
            verdict,
            matcher,
        );
    }
    Ok(())
}

fn report(d: &Doc, out: &mut Allowlists, field: &str, key: &str, line: usize, problem: Problem) {
    if let Some((code, why)) = problem {
        out.warn(
            code,
            d,
            line,
            format!("pnpm never matches the `{field}` entry `{key}`: {why}"),
        );
    }
}

fn never(why: impl Into<String>) -> (Matcher, Problem) {
    (
        Matcher::Never,
        Some(("allowlist-key-never-matches", why.into())),
    )
}

/// Parse one pnpm key; `wildcards`: whether `*` in a name is a wildcard (`allowBuilds`).
pub(super) fn parse_key(key: &str, wildcards: bool) -> (Matcher, Problem) {
    let key = key.trim();
    let at = if key.starts_with('@') {
        key.get(1..).and_then(|s| s.find('@')).map(|i| i + 1)
    } else {
        key.find('@')
    };
    let (name, rest) = match at {
        Some(i) => (&key[..i], Some(&key[i + 1..])),
        None => (key, None),
    };
    let glob = name.contains('*');
    if glob && !wildcards {
        return never(format!(
            "`{name}`: wildcards are only read in `allowBuilds`"
        ));
    }
    let checked = if glob {
        name.replace('*', "x")
    } else {
        name.to_string()
    };
    if !valid_name(&checked) {
        return never(format!("`{name}` is not a valid package name"));
    }
    let Some(rest) = rest else {
        return (
            Matcher::Name {
                name: NamePattern::new(name),
                versions: Versions::Any,
                any_source: false,
            },
            None,
        );
    };
    let rest = rest.trim();
    if rest.contains([':', '/', '#']) {
        return source(name, rest);
    }
    if glob {
        return never("a wildcard name cannot carry versions");
    }
    if let Some(list) = spec::exact_disjunction(rest) {
        return (
            Matcher::Name {
                name: NamePattern::Exact(name.to_string()),
                versions: Versions::Exact(list),
                any_source: false,
            },
            None,
        );
    }
    if spec::is_range(rest) {
        return (
            Matcher::Never,
            Some((
                "allowlist-range-never-matches",
                format!(
                    "`{rest}` is a range; pnpm accepts only exact versions (`{name}@1.2.3 || 1.2.4`)"
                ),
            )),
        );
    }
    never(format!(
        "`{rest}` is not an exact version (pnpm accepts no tags)"
    ))
}

/// `name@<source>`.
fn source(name: &str, src: &str) -> (Matcher, Problem) {
    if name.contains('*') {
        return never("a wildcard name cannot carry a source");
    }
    super::npm::source_matcher(src, Some(name.to_string()), "pnpm")
}

#[cfg(test)]
mod tests {
    use super::super::Candidate;
    use super::*;

    fn m(key: &str) -> Matcher {
        let (m, p) = parse_key(key, true);
        assert!(p.is_none(), "{key}: {p:?}");
        m
    }

    #[test]
    fn names_and_exact_versions() {
        assert!(m("esbuild").matches(&Candidate::new("esbuild", "0.28.1"), Verdict::Allow));
        let nx = m("nx@21.6.4 || 21.6.5");
        assert!(nx.matches(&Candidate::new("nx", "21.6.5"), Verdict::Allow));
        assert!(!nx.matches(&Candidate::new("nx", "21.6.6"), Verdict::Allow));
        assert!(m("nx@v21.6.0").matches(&Candidate::new("nx", "21.6.0"), Verdict::Allow));
        let scoped = m("@scope/pkg@1.0.0");
        assert!(scoped.matches(&Candidate::new("@scope/pkg", "1.0.0"), Verdict::Allow));
        assert!(!scoped.matches(&Candidate::new("@scope/pkg", "1.0.1"), Verdict::Allow));
    }

    #[test]
    fn ranges_and_tags_never_match() {
        for key in ["nx@^21.0.0", "nx@21", "nx@>=1 <2", "nx@21.6.4 || ^21"] {
            let (m, p) = parse_key(key, true);
            assert_eq!(m, Matcher::Never, "{key}");
            assert_eq!(
                p.map(|p| p.0),
                Some("allowlist-range-never-matches"),
                "{key}"
            );
        }
        let (m, p) = parse_key("nx@latest", true);
        assert_eq!(
            (m, p.map(|p| p.0)),
            (Matcher::Never, Some("allowlist-key-never-matches"))
        );
    }

    #[test]
    fn wildcards_only_without_versions_and_only_in_allow_builds() {
        let babel = m("@babel/*");
        assert!(babel.matches(&Candidate::new("@babel/core", "7.0.0"), Verdict::Allow));
        assert!(!babel.matches(&Candidate::new("@babelx/core", "7.0.0"), Verdict::Allow));
        let loader = m("*-loader");
        assert!(loader.matches(&Candidate::new("css-loader", "7.0.0"), Verdict::Allow));
        assert!(!loader.matches(&Candidate::new("css-loaders", "7.0.0"), Verdict::Allow));
        for key in ["@babel/*@7.0.0", "*-loader@1.0.0"] {
            let (m, p) = parse_key(key, true);
            assert_eq!(
                (m, p.map(|p| p.0)),
                (Matcher::Never, Some("allowlist-key-never-matches")),
                "{key}"
            );
        }
        let (m, p) = parse_key("@babel/*", false);
        assert_eq!(
            (m, p.map(|p| p.0)),
            (Matcher::Never, Some("allowlist-key-never-matches"))
        );
    }

    #[test]
    fn git_keys_name_the_package_and_repo() {
        let sha = "abc123def4567890abc123def4567890abc123de";
        let resolved = format!("git+ssh://git@github.com/org/bar.git#{sha}");
        let c = Candidate {
            resolved: Some(&resolved),
            ..Candidate::new("bar", "1.0.0")
        };
        assert!(m("bar@git+https://github.com/org/bar.git#abc123").matches(&c, Verdict::Allow));
        assert!(m("bar@git+https://github.com/org/bar.git").matches(&c, Verdict::Allow));
        assert!(
            m(&format!(
                "bar@https://codeload.github.com/org/bar/tar.gz/{sha}"
            ))
            .matches(&c, Verdict::Allow)
        );
        assert!(!m("bar@git+https://github.com/org/bar.git#abd").matches(&c, Verdict::Allow));
        assert!(!m("baz@git+https://github.com/org/bar.git#abc123").matches(&c, Verdict::Allow));
        let other = Candidate {
            resolved: Some("git+ssh://git@example.com/org/foo.git#0123abc"),
            ..Candidate::new("foo", "1.0.0")
        };
        assert!(m("foo@git+ssh://git@example.com/org/foo.git").matches(&other, Verdict::Allow));
    }

    #[test]
    fn tarball_and_file_keys() {
        let c = Candidate {
            resolved: Some("https://example.com/foo-1.0.0.tgz"),
            ..Candidate::new("foo", "1.0.0")
        };
        assert!(m("foo@https://example.com/foo-1.0.0.tgz").matches(&c, Verdict::Allow));
        assert!(!m("foo@https://example.com/foo-1.0.1.tgz").matches(&c, Verdict::Allow));
        let f = Candidate {
            resolved: Some("file:../foo"),
            ..Candidate::new("foo", "1.0.0")
        };
        assert!(m("foo@file:../foo").matches(&f, Verdict::Allow));
    }

    #[test]
    fn a_bare_name_approves_registry_packages_only_but_denies_all() {
        let git = Candidate {
            resolved: Some("git+ssh://git@github.com/org/foo.git#abc"),
            ..Candidate::new("foo", "1.0.0")
        };
        let tgz = Candidate {
            resolved: Some("https://example.com/foo-1.0.0.tgz"),
            ..Candidate::new("foo", "1.0.0")
        };
        for c in [git, tgz] {
            assert!(!m("foo").matches(&c, Verdict::Allow));
            assert!(!m("foo@1.0.0").matches(&c, Verdict::Allow));
            assert!(m("foo").matches(&c, Verdict::Deny));
        }
        let reg = Candidate {
            resolved: Some("https://registry.npmjs.org/foo/-/foo-1.0.0.tgz"),
            ..Candidate::new("foo", "1.0.0")
        };
        assert!(m("foo").matches(&reg, Verdict::Allow));
    }
}
