//! End-to-end tests: whole files in, decisions and diagnostics out.

use std::path::{Path, PathBuf};

use super::*;

fn pkg(text: &str) -> Allowlists {
    Allowlists::from_texts(Some(text), None).unwrap()
}

fn ws(text: &str) -> Allowlists {
    Allowlists::from_texts(None, Some(text)).unwrap()
}

fn pkg_err(text: &str) -> AllowlistError {
    Allowlists::from_texts(Some(text), None).unwrap_err()
}

fn ws_err(text: &str) -> AllowlistError {
    Allowlists::from_texts(None, Some(text)).unwrap_err()
}

fn registry<'a>(name: &'a str, version: &'a str, url: &'a str) -> Candidate<'a> {
    Candidate {
        resolved: Some(url),
        ..Candidate::new(name, version)
    }
}

/// The verdict, and the deciding entry's key and line.
fn decide<'a>(a: &'a Allowlists, c: &Candidate<'_>) -> (&'static str, Option<(&'a str, usize)>) {
    let d = a.decide(c);
    let word = match d {
        Decision::Unreviewed => "unreviewed",
        Decision::Allowed(_) => "allowed",
        Decision::Denied(_) => "denied",
    };
    (word, d.entry().map(|e| (e.key.as_str(), e.line)))
}

fn codes(a: &Allowlists) -> Vec<(&'static str, usize)> {
    a.diagnostics().iter().map(|d| (d.code, d.line)).collect()
}

// --- npm --------------------------------------------------------------------------------------

const NPM_EXAMPLE: &str = r#"{
  "name": "app",
  "allowScripts": {
    "esbuild@0.28.1": true,
    "nx@21.6.4 || 21.6.5": true,
    "sharp": true,
    "fsevents": false,
    "foo@git+ssh://git@github.com/org/foo.git#abc123": true,
    "bar@file:../bar": true
  }
}
"#;

#[test]
fn npm_reference_example() {
    let a = pkg(NPM_EXAMPLE);
    assert_eq!(a.entries().len(), 6);
    assert!(a.diagnostics().is_empty(), "{:?}", a.diagnostics());
    let lines: Vec<_> = a
        .entries()
        .iter()
        .map(|e| (e.key.as_str(), e.line))
        .collect();
    assert_eq!(
        lines,
        vec![
            ("esbuild@0.28.1", 4),
            ("nx@21.6.4 || 21.6.5", 5),
            ("sharp", 6),
            ("fsevents", 7),
            ("foo@git+ssh://git@github.com/org/foo.git#abc123", 8),
            ("bar@file:../bar", 9),
        ]
    );
    assert!(a.entries().iter().all(|e| e.tool == Tool::Npm
        && e.file == Path::new("package.json")
        && e.field == "allowScripts"));

    let esbuild = registry(
        "esbuild",
        "0.28.1",
        "https://registry.npmjs.org/esbuild/-/esbuild-0.28.1.tgz",
    );
    assert_eq!(
        decide(&a, &esbuild),
        ("allowed", Some(("esbuild@0.28.1", 4)))
    );
    let esbuild_next = registry(
        "esbuild",
        "0.28.2",
        "https://registry.npmjs.org/esbuild/-/esbuild-0.28.2.tgz",
    );
    assert_eq!(decide(&a, &esbuild_next).0, "unreviewed");
    assert_eq!(decide(&a, &Candidate::new("nx", "21.6.5")).0, "allowed");
    assert_eq!(decide(&a, &Candidate::new("nx", "21.6.6")).0, "unreviewed");
    assert_eq!(decide(&a, &Candidate::new("sharp", "0.1.0")).0, "allowed");
    assert_eq!(
        decide(&a, &Candidate::new("fsevents", "2.3.3")),
        ("denied", Some(("fsevents", 7)))
    );
    let foo = Candidate {
        resolved: Some(
            "git+ssh://git@github.com/org/foo.git#abc123def4567890abc123def4567890abc123de",
        ),
        ..Candidate::new("foo", "1.0.0")
    };
    assert_eq!(decide(&a, &foo).0, "allowed");
    let foo_other = Candidate {
        resolved: Some(
            "git+ssh://git@github.com/org/foo.git#0000000def4567890abc123def4567890abc123d",
        ),
        ..foo
    };
    assert_eq!(decide(&a, &foo_other).0, "unreviewed");
    let bar = Candidate {
        resolved: Some("../bar"),
        ..Candidate::new("bar", "1.0.0")
    };
    assert_eq!(decide(&a, &bar).0, "allowed");
    assert_eq!(
        decide(&a, &Candidate::new("left-pad", "1.0.0")).0,
        "unreviewed"
    );
}

#[test]
fn npm_false_wins_within_the_source() {
    let a = pkg(r#"{"allowScripts": {"esbuild": true, "esbuild@0.28.1": false}}"#);
    assert_eq!(decide(&a, &Candidate::new("esbuild", "0.28.1")).0, "denied");
    assert_eq!(
        decide(&a, &Candidate::new("esbuild", "0.28.2")).0,
        "allowed"
    );
    let a = pkg(r#"{"allowScripts": {"esbuild@0.28.1": true, "esbuild": false}}"#);
    assert_eq!(decide(&a, &Candidate::new("esbuild", "0.28.1")).0, "denied");
}

#[test]
fn npm_ranges_are_kept_but_warned_about() {
    let a = pkg("{\"allowScripts\": {\n  \"esbuild@^0.28.0\": true,\n  \"sharp@x\": true\n}}");
    assert_eq!(a.entries().len(), 2);
    assert!(a.entries().iter().all(Entry::never_matches));
    assert_eq!(
        codes(&a),
        vec![
            ("allowlist-range-never-matches", 2),
            ("allowlist-range-never-matches", 3)
        ]
    );
    assert!(a.diagnostics()[0].message.contains("esbuild@^0.28.0"));
    assert_eq!(
        decide(&a, &Candidate::new("esbuild", "0.28.1")).0,
        "unreviewed"
    );
}

#[test]
fn npm_duplicate_keys_last_wins_with_a_diagnostic() {
    let a =
        pkg("{\"allowScripts\": {\n\"esbuild\": false,\n\"sharp\": true,\n\"esbuild\": true\n}}");
    assert_eq!(a.entries().len(), 2);
    assert_eq!(
        decide(&a, &Candidate::new("esbuild", "1.0.0")),
        ("allowed", Some(("esbuild", 4)))
    );
    assert_eq!(codes(&a), vec![("allowlist-duplicate-key", 2)]);
}

#[test]
fn npm_bundled_dependencies_are_never_approved() {
    let a = pkg(r#"{"allowScripts": {"esbuild": true, "fsevents": false}}"#);
    let bundled = Candidate {
        in_bundle: true,
        ..Candidate::new("esbuild", "1.0.0")
    };
    assert_eq!(decide(&a, &bundled).0, "unreviewed");
    let bundled = Candidate {
        in_bundle: true,
        ..Candidate::new("fsevents", "1.0.0")
    };
    assert_eq!(decide(&a, &bundled).0, "denied");
}

#[test]
fn npm_escaped_keys_are_decoded_and_lines_stay_right() {
    let a = pkg(
        "{\"scripts\": {\"allowScripts\": \"no\"},\n\"allowScripts\": {\n\"\\u0065sbuild\": true}}",
    );
    assert_eq!(a.entries().len(), 1);
    assert_eq!(
        (a.entries()[0].key.as_str(), a.entries()[0].line),
        ("esbuild", 3)
    );
}

// --- pnpm -------------------------------------------------------------------------------------

const PNPM_EXAMPLE: &str = "packages:
  - 'packages/*'
allowBuilds:
  esbuild: true
  core-js: false
  nx@21.6.4 || 21.6.5: true          # exact versions / unions
  nx@21.6.0: false
  'foo@git+ssh://git@example.com/org/foo.git': true        # any commit of this repo
  'bar@git+https://github.com/org/bar.git#abc123': true    # exact commit
strictDepBuilds: true
dangerouslyAllowAllBuilds: false
";

#[test]
fn pnpm_reference_example() {
    let a = ws(PNPM_EXAMPLE);
    assert!(a.diagnostics().is_empty(), "{:?}", a.diagnostics());
    let got: Vec<_> = a
        .entries()
        .iter()
        .map(|e| (e.key.as_str(), e.line, e.verdict))
        .collect();
    assert_eq!(
        got,
        vec![
            ("esbuild", 4, Verdict::Allow),
            ("core-js", 5, Verdict::Deny),
            ("nx@21.6.4 || 21.6.5", 6, Verdict::Allow),
            ("nx@21.6.0", 7, Verdict::Deny),
            (
                "foo@git+ssh://git@example.com/org/foo.git",
                8,
                Verdict::Allow
            ),
            (
                "bar@git+https://github.com/org/bar.git#abc123",
                9,
                Verdict::Allow
            ),
        ]
    );
    assert!(a.entries().iter().all(|e| e.tool == Tool::Pnpm
        && e.file == Path::new("pnpm-workspace.yaml")
        && e.field == "allowBuilds"));
    assert_eq!(
        decide(&a, &Candidate::new("esbuild", "0.28.1")).0,
        "allowed"
    );
    assert_eq!(decide(&a, &Candidate::new("core-js", "3.0.0")).0, "denied");
    assert_eq!(decide(&a, &Candidate::new("nx", "21.6.4")).0, "allowed");
    assert_eq!(decide(&a, &Candidate::new("nx", "21.6.0")).0, "denied");
    assert_eq!(decide(&a, &Candidate::new("nx", "21.6.1")).0, "unreviewed");
    let foo = Candidate {
        resolved: Some("git+ssh://git@example.com/org/foo.git#4f1c2d3e"),
        ..Candidate::new("foo", "1.0.0")
    };
    assert_eq!(decide(&a, &foo).0, "allowed");
    let bar = Candidate {
        resolved: Some(
            "git+ssh://git@github.com/org/bar.git#abc123ffffffffffffffffffffffffffffffffff",
        ),
        ..Candidate::new("bar", "1.0.0")
    };
    assert_eq!(decide(&a, &bar).0, "allowed");
    let bar_other = Candidate {
        resolved: Some("git+ssh://git@github.com/org/bar.git#fffffff"),
        ..bar
    };
    assert_eq!(decide(&a, &bar_other).0, "unreviewed");
    // A bare name never approves a git dependency, but `false` blocks one.
    let git_esbuild = Candidate {
        resolved: Some("git+ssh://git@github.com/evanw/esbuild.git#abc"),
        ..Candidate::new("esbuild", "0.28.1")
    };
    assert_eq!(decide(&a, &git_esbuild).0, "unreviewed");
    let git_core_js = Candidate {
        resolved: Some("git+ssh://git@github.com/zloirock/core-js.git#abc"),
        ..Candidate::new("core-js", "3.0.0")
    };
    assert_eq!(decide(&a, &git_core_js).0, "denied");
}

#[test]
fn pnpm_allow_all_is_one_entry_and_denials_still_win() {
    let a = ws("allowBuilds:\n  core-js: false\ndangerouslyAllowAllBuilds: true\n");
    assert_eq!(a.entries().len(), 2);
    let all = &a.entries()[1];
    assert!(all.matches_everything());
    assert_eq!(
        (all.key.as_str(), all.line, all.field),
        ("dangerouslyAllowAllBuilds", 3, "dangerouslyAllowAllBuilds")
    );
    assert_eq!(codes(&a), vec![("allowlist-allow-all", 3)]);
    assert_eq!(
        decide(&a, &Candidate::new("anything", "1.0.0")),
        ("allowed", Some(("dangerouslyAllowAllBuilds", 3)))
    );
    assert_eq!(decide(&a, &Candidate::new("core-js", "3.0.0")).0, "denied");
}

#[test]
fn pnpm_placeholders_stay_unreviewed() {
    let a = ws("allowBuilds:\n  esbuild: set this to true or false\n  sharp:\n  nx: true\n");
    assert_eq!(a.entries().len(), 1);
    assert_eq!(
        codes(&a),
        vec![
            ("allowlist-unreviewed-placeholder", 2),
            ("allowlist-unreviewed-placeholder", 3)
        ]
    );
    assert_eq!(
        decide(&a, &Candidate::new("esbuild", "1.0.0")).0,
        "unreviewed"
    );
}

#[test]
fn pnpm_wildcards() {
    let a = ws("allowBuilds:\n  '@babel/*': true\n  '*-loader': true\n  '@babel/*@7.0.0': true\n");
    assert_eq!(
        decide(&a, &Candidate::new("@babel/core", "7.0.0")).0,
        "allowed"
    );
    assert_eq!(
        decide(&a, &Candidate::new("css-loader", "1.0.0")).0,
        "allowed"
    );
    assert_eq!(
        decide(&a, &Candidate::new("@babelx/core", "7.0.0")).0,
        "unreviewed"
    );
    assert_eq!(codes(&a), vec![("allowlist-key-never-matches", 4)]);
}

#[test]
fn pnpm_ranges_never_match() {
    let a = ws("allowBuilds:\n  esbuild@^0.28.0: true\n");
    assert_eq!(codes(&a), vec![("allowlist-range-never-matches", 2)]);
    assert_eq!(
        decide(&a, &Candidate::new("esbuild", "0.28.1")).0,
        "unreviewed"
    );
}

#[test]
fn pnpm_10_lists_in_the_workspace_file() {
    let a = ws(
        "onlyBuiltDependencies:\n  - esbuild\n  - nx@21.6.4 || 21.6.5\nignoredBuiltDependencies:\n  - core-js\nneverBuiltDependencies:\n  - fsevents\n",
    );
    let got: Vec<_> = a
        .entries()
        .iter()
        .map(|e| (e.field, e.key.as_str(), e.line, e.verdict))
        .collect();
    assert_eq!(
        got,
        vec![
            ("onlyBuiltDependencies", "esbuild", 2, Verdict::Allow),
            (
                "onlyBuiltDependencies",
                "nx@21.6.4 || 21.6.5",
                3,
                Verdict::Allow
            ),
            ("ignoredBuiltDependencies", "core-js", 5, Verdict::Deny),
            ("neverBuiltDependencies", "fsevents", 7, Verdict::Deny),
        ]
    );
    assert!(a.diagnostics().is_empty(), "{:?}", a.diagnostics());
    assert_eq!(decide(&a, &Candidate::new("esbuild", "1.0.0")).0, "allowed");
    assert_eq!(decide(&a, &Candidate::new("nx", "21.6.5")).0, "allowed");
    assert_eq!(decide(&a, &Candidate::new("nx", "21.6.6")).0, "unreviewed");
    assert_eq!(decide(&a, &Candidate::new("core-js", "1.0.0")).0, "denied");
    assert_eq!(decide(&a, &Candidate::new("fsevents", "1.0.0")).0, "denied");
}

#[test]
fn pnpm_10_lists_in_package_json() {
    let a = pkg(r#"{
  "pnpm": {
    "onlyBuiltDependencies": ["esbuild"],
    "ignoredBuiltDependencies": ["core-js"],
    "neverBuiltDependencies": ["fsevents"],
    "onlyBuiltDependenciesFile": "allowed.json"
  }
}"#);
    let got: Vec<_> = a
        .entries()
        .iter()
        .map(|e| (e.tool, e.field, e.key.as_str(), e.line))
        .collect();
    assert_eq!(
        got,
        vec![
            (Tool::Pnpm, "pnpm.onlyBuiltDependencies", "esbuild", 3),
            (Tool::Pnpm, "pnpm.ignoredBuiltDependencies", "core-js", 4),
            (Tool::Pnpm, "pnpm.neverBuiltDependencies", "fsevents", 5),
        ]
    );
    assert_eq!(codes(&a), vec![("allowlist-not-read", 6)]);
    assert_eq!(decide(&a, &Candidate::new("esbuild", "1.0.0")).0, "allowed");
    assert_eq!(decide(&a, &Candidate::new("fsevents", "1.0.0")).0, "denied");
}

#[test]
fn pnpm_10_never_built_alone_says_it_is_not_an_allowlist() {
    let a = pkg("{\"pnpm\": {\n\"neverBuiltDependencies\": []}}");
    assert!(a.is_empty());
    assert_eq!(codes(&a), vec![("allowlist-never-built-only-denies", 2)]);
    let a = pkg(r#"{"pnpm": {"neverBuiltDependencies": ["x"], "onlyBuiltDependencies": []}}"#);
    assert!(a.diagnostics().is_empty());
}

#[test]
fn pnpm_allow_all_in_package_json() {
    let a = pkg(r#"{"pnpm": {"dangerouslyAllowAllBuilds": true}}"#);
    assert_eq!(a.entries()[0].field, "pnpm.dangerouslyAllowAllBuilds");
    assert_eq!(decide(&a, &Candidate::new("x", "1.0.0")).0, "allowed");
}

#[test]
fn pnpm_merge_keys_are_followed() {
    let a = ws("common: &c\n  esbuild: true\nallowBuilds:\n  <<: *c\n  sharp: true\n");
    assert_eq!(
        decide(&a, &Candidate::new("esbuild", "1.0.0")),
        ("allowed", Some(("esbuild", 2)))
    );
    assert_eq!(decide(&a, &Candidate::new("sharp", "1.0.0")).0, "allowed");
}

// --- LavaMoat ---------------------------------------------------------------------------------

const LAVAMOAT_EXAMPLE: &str = r#"{ "lavamoat": { "allowScripts": {
    "keccak#3.0.4": true,
    "rezeplayer>core-js#3.49.0": false,
    "core-js": false
} } }"#;

#[test]
fn lavamoat_reference_example() {
    let a = pkg(LAVAMOAT_EXAMPLE);
    assert!(a.diagnostics().is_empty(), "{:?}", a.diagnostics());
    let got: Vec<_> = a
        .entries()
        .iter()
        .map(|e| (e.tool, e.field, e.key.as_str(), e.line, e.verdict))
        .collect();
    assert_eq!(
        got,
        vec![
            (
                Tool::Lavamoat,
                "lavamoat.allowScripts",
                "keccak#3.0.4",
                2,
                Verdict::Allow
            ),
            (
                Tool::Lavamoat,
                "lavamoat.allowScripts",
                "rezeplayer>core-js#3.49.0",
                3,
                Verdict::Deny
            ),
            (
                Tool::Lavamoat,
                "lavamoat.allowScripts",
                "core-js",
                4,
                Verdict::Deny
            ),
        ]
    );
    let keccak = Candidate {
        dep_path: &["keccak"],
        ..Candidate::new("keccak", "3.0.4")
    };
    assert_eq!(decide(&a, &keccak).0, "allowed");
    let keccak_next = Candidate {
        version: "3.0.5",
        ..keccak
    };
    assert_eq!(decide(&a, &keccak_next).0, "unreviewed");
    let nested_keccak = Candidate {
        dep_path: &["ethereumjs-util", "keccak"],
        ..keccak
    };
    assert_eq!(decide(&a, &nested_keccak).0, "unreviewed");
    let core_js = Candidate {
        dep_path: &["rezeplayer", "core-js"],
        ..Candidate::new("core-js", "3.49.0")
    };
    assert_eq!(
        decide(&a, &core_js),
        ("denied", Some(("rezeplayer>core-js#3.49.0", 3)))
    );
    let direct_core_js = Candidate {
        dep_path: &["core-js"],
        ..Candidate::new("core-js", "2.0.0")
    };
    assert_eq!(
        decide(&a, &direct_core_js),
        ("denied", Some(("core-js", 4)))
    );
}

#[test]
fn lavamoat_unversioned_allow_allows_any_version_with_a_warning() {
    let a =
        pkg("{\"lavamoat\": {\"allowScripts\": {\n  \"keccak\": true,\n  \"a>b#1.0.0\": true\n}}}");
    assert_eq!(codes(&a), vec![("allowlist-lavamoat-unversioned-allow", 2)]);
    let keccak = Candidate {
        dep_path: &["keccak"],
        ..Candidate::new("keccak", "9.9.9")
    };
    assert_eq!(decide(&a, &keccak).0, "allowed");
}

#[test]
fn lavamoat_versionless_deny_wins_over_a_versioned_allow() {
    let a = pkg(r#"{"lavamoat": {"allowScripts": {"keccak#3.0.4": true, "keccak": false}}}"#);
    let keccak = Candidate {
        dep_path: &["keccak"],
        ..Candidate::new("keccak", "3.0.4")
    };
    assert_eq!(decide(&a, &keccak).0, "denied");
}

#[test]
fn lavamoat_with_computed_paths() {
    let lock: std::collections::BTreeMap<String, serde_json::Value> = serde_json::from_str(
        r#"{
            "": {"dependencies": {"rezeplayer": "1"}},
            "node_modules/rezeplayer": {"dependencies": {"core-js": "3"}},
            "node_modules/core-js": {"version": "3.49.0"}
        }"#,
    )
    .unwrap();
    let paths = lavamoat::logical_paths(&lock);
    let path: Vec<&str> = paths["node_modules/core-js"]
        .iter()
        .map(String::as_str)
        .collect();
    let a = pkg(LAVAMOAT_EXAMPLE);
    let c = Candidate {
        dep_path: &path,
        ..Candidate::new("core-js", "3.49.0")
    };
    assert_eq!(
        decide(&a, &c),
        ("denied", Some(("rezeplayer>core-js#3.49.0", 3)))
    );
}

// --- Bun --------------------------------------------------------------------------------------

#[test]
fn bun_trusted_dependencies() {
    let a = pkg("{\n  \"trustedDependencies\": [\"esbuild\", \"sharp\"]\n}");
    let got: Vec<_> = a
        .entries()
        .iter()
        .map(|e| (e.tool, e.key.as_str(), e.line, e.verdict))
        .collect();
    assert_eq!(
        got,
        vec![
            (Tool::Bun, "esbuild", 2, Verdict::Allow),
            (Tool::Bun, "sharp", 2, Verdict::Allow)
        ]
    );
    assert_eq!(
        decide(&a, &Candidate::new("esbuild", "0.28.1")).0,
        "allowed"
    );
    assert_eq!(
        decide(&a, &Candidate::new("esbuild-wasm", "0.28.1")).0,
        "unreviewed"
    );
    // A listed git dependency is trusted: the name is how Bun lists it.
    let git = Candidate {
        resolved: Some("git+ssh://git@github.com/lovell/sharp.git#abc"),
        ..Candidate::new("sharp", "0.34.0")
    };
    assert_eq!(decide(&a, &git).0, "allowed");
}

#[test]
fn bun_versions_and_globs_never_match() {
    let a = pkg("{\"trustedDependencies\": [\n\"esbuild@0.28.1\",\n\"@babel/*\"]}");
    assert_eq!(
        codes(&a),
        vec![
            ("allowlist-key-never-matches", 2),
            ("allowlist-key-never-matches", 3)
        ]
    );
    assert_eq!(
        decide(&a, &Candidate::new("esbuild", "0.28.1")).0,
        "unreviewed"
    );
}

// --- across sources ---------------------------------------------------------------------------

#[test]
fn false_wins_across_sources() {
    // Each allow comes before the deny in source order (npm, pnpm-workspace.yaml, package.json
    // pnpm, LavaMoat, Bun), so the order of entries cannot be what decides.
    let a = Allowlists::from_texts(
        Some(
            r#"{"allowScripts": {"esbuild": true, "sharp": true, "nx": true},
                "pnpm": {"neverBuiltDependencies": ["nx"]},
                "lavamoat": {"allowScripts": {"sharp": false}},
                "trustedDependencies": ["esbuild", "sharp", "nx"]}"#,
        ),
        Some("allowBuilds:\n  esbuild: false\n"),
    )
    .unwrap();
    let esbuild = a.decide(&Candidate::new("esbuild", "1.0.0"));
    assert!(matches!(esbuild, Decision::Denied(e) if e.tool == Tool::Pnpm && e.line == 2));
    let sharp = Candidate {
        dep_path: &["sharp"],
        ..Candidate::new("sharp", "1.0.0")
    };
    let sharp = a.decide(&sharp);
    assert!(matches!(sharp, Decision::Denied(e) if e.tool == Tool::Lavamoat));
    let nx = a.decide(&Candidate::new("nx", "1.0.0"));
    assert!(matches!(nx, Decision::Denied(e) if e.field == "pnpm.neverBuiltDependencies"));
    // Without a denial, the first allow in source order decides.
    let a = Allowlists::from_texts(
        Some(r#"{"trustedDependencies": ["sharp"], "allowScripts": {"sharp": true}}"#),
        Some("allowBuilds:\n  sharp: true\n"),
    )
    .unwrap();
    let d = a.decide(&Candidate::new("sharp", "1.0.0"));
    assert_eq!(d.entry().map(|e| e.tool), Some(Tool::Npm));
    // dangerouslyAllowAllBuilds does not override a denial elsewhere.
    let a = Allowlists::from_texts(
        Some(r#"{"lavamoat": {"allowScripts": {"esbuild": false}}}"#),
        Some("dangerouslyAllowAllBuilds: true\n"),
    )
    .unwrap();
    let c = Candidate {
        dep_path: &["esbuild"],
        ..Candidate::new("esbuild", "1.0.0")
    };
    assert_eq!(decide(&a, &c).0, "denied");
}

#[test]
fn entries_come_in_source_order() {
    let a = Allowlists::from_texts(
        Some(r#"{"trustedDependencies": ["d"], "lavamoat": {"allowScripts": {"c#1.0.0": true}}, "pnpm": {"onlyBuiltDependencies": ["b2"]}, "allowScripts": {"a": true}}"#),
        Some("allowBuilds:\n  b1: true\n"),
    )
    .unwrap();
    let keys: Vec<_> = a.entries().iter().map(|e| e.key.as_str()).collect();
    assert_eq!(keys, vec!["a", "b1", "b2", "c#1.0.0", "d"]);
}

#[test]
fn no_files_or_no_fields_is_empty() {
    let a = Allowlists::from_texts(None, None).unwrap();
    assert!(a.is_empty());
    assert!(a.diagnostics().is_empty());
    assert_eq!(
        decide(&a, &Candidate::new("esbuild", "1.0.0")).0,
        "unreviewed"
    );
    let a = Allowlists::from_texts(
        Some(r#"{"name": "x", "allowScripts": null, "lavamoat": {}, "pnpm": {"overrides": {}}}"#),
        Some("packages:\n  - a\n"),
    )
    .unwrap();
    assert!(a.is_empty());
    assert!(
        Allowlists::from_texts(Some("{}"), Some(""))
            .unwrap()
            .is_empty()
    );
    assert!(
        Allowlists::from_texts(Some(r#"{"allowScripts": {}}"#), Some("allowBuilds: {}\n"))
            .unwrap()
            .is_empty()
    );
}

#[test]
fn displays() {
    let a = pkg("{\"allowScripts\": {\n\"esbuild@^1\": true}}");
    assert_eq!(
        a.entries()[0].to_string(),
        "package.json:2: allowScripts \"esbuild@^1\": true (npm allowScripts)"
    );
    let d = a.diagnostics()[0].to_string();
    assert!(d.starts_with("package.json:2: npm never matches"), "{d}");
    assert!(d.ends_with("[allowlist-range-never-matches]"), "{d}");
    assert_eq!(Tool::Pnpm.to_string(), "pnpm allowBuilds");
    assert_eq!(Tool::Lavamoat.to_string(), "LavaMoat allowScripts");
    assert_eq!(Tool::Bun.to_string(), "Bun trustedDependencies");
    let e = pkg_err("{\"allowScripts\": {\n\"esbuild\": \"yes\"}}");
    assert_eq!(
        e.to_string(),
        "package.json:2: `allowScripts` `esbuild` must be true or false, not a string [allowlist-wrong-type]"
    );
}

#[test]
fn every_code_used_is_listed() {
    let listed = |c: &str| {
        DIAGNOSTIC_CODES
            .iter()
            .chain(ERROR_CODES)
            .any(|(x, _)| *x == c)
    };
    for c in [
        "allowlist-range-never-matches",
        "allowlist-wrong-type",
        "allowlist-empty-key",
        "allowlist-invalid-json",
        "allowlist-invalid-yaml",
        "allowlist-symlink",
        "allowlist-too-large",
    ] {
        assert!(listed(c), "{c}");
    }
    let mut all: Vec<_> = DIAGNOSTIC_CODES
        .iter()
        .chain(ERROR_CODES)
        .map(|(c, _)| *c)
        .collect();
    all.sort_unstable();
    let n = all.len();
    all.dedup();
    assert_eq!(all.len(), n, "codes are unique");
    assert!(all.iter().all(|c| {
        c.starts_with("allowlist-")
            && c.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    }));
}

// --- malformed input --------------------------------------------------------------------------

#[test]
fn malformed_package_json_errors_name_the_line() {
    let cases: &[(&str, &str, usize)] = &[
        (
            "{\n\"allowScripts\": {\n\"a\": true,\n}\n}",
            "allowlist-invalid-json",
            4,
        ),
        ("[]", "allowlist-wrong-type", 1),
        (
            "{\n\"allowScripts\": [\"esbuild\"]}",
            "allowlist-wrong-type",
            2,
        ),
        (
            "{\"allowScripts\": {\n\"esbuild\": \"true\"}}",
            "allowlist-wrong-type",
            2,
        ),
        (
            "{\"allowScripts\": {\n\"esbuild\":\n1}}",
            "allowlist-wrong-type",
            3,
        ),
        (
            "{\"allowScripts\": {\n\"\": true}}",
            "allowlist-empty-key",
            2,
        ),
        (
            "{\"allowScripts\": {\n\"  \": true}}",
            "allowlist-empty-key",
            2,
        ),
        ("{\"lavamoat\": \n[]}", "allowlist-wrong-type", 1),
        (
            "{\"lavamoat\": {\"allowScripts\": {\n\"a#1.0.0\": null}}}",
            "allowlist-wrong-type",
            2,
        ),
        (
            "{\n\"trustedDependencies\": \"esbuild\"}",
            "allowlist-wrong-type",
            2,
        ),
        (
            "{\"trustedDependencies\": [\n\"a\",\n1]}",
            "allowlist-wrong-type",
            3,
        ),
        (
            "{\"trustedDependencies\": [\n\"\"]}",
            "allowlist-empty-key",
            2,
        ),
        ("{\"pnpm\": \n\"x\"}", "allowlist-wrong-type", 1),
        (
            "{\"pnpm\": {\n\"onlyBuiltDependencies\": {\"a\": true}}}",
            "allowlist-wrong-type",
            2,
        ),
        (
            "{\"pnpm\": {\n\"dangerouslyAllowAllBuilds\": \"true\"}}",
            "allowlist-wrong-type",
            2,
        ),
    ];
    for (text, code, line) in cases {
        let e = pkg_err(text);
        assert_eq!((e.code, e.line), (*code, *line), "{text}: {e}");
        assert_eq!(e.file, PathBuf::from("package.json"));
    }
}

#[test]
fn malformed_workspace_yaml_errors_name_the_line() {
    let cases: &[(&str, &str, usize)] = &[
        (
            "allowBuilds:\n  esbuild: true\n   sharp: true\n",
            "allowlist-invalid-yaml",
            3,
        ),
        ("- a\n- b\n", "allowlist-wrong-type", 1),
        ("allowBuilds:\n  - esbuild\n", "allowlist-wrong-type", 1),
        ("allowBuilds:\n  esbuild: 1\n", "allowlist-wrong-type", 2),
        (
            "allowBuilds:\n  esbuild: [true]\n",
            "allowlist-wrong-type",
            2,
        ),
        ("allowBuilds:\n  '': true\n", "allowlist-empty-key", 2),
        (
            "allowBuilds:\n  esbuild: true\n  esbuild: false\n",
            "allowlist-invalid-yaml",
            3,
        ),
        (
            "onlyBuiltDependencies: esbuild\n",
            "allowlist-wrong-type",
            1,
        ),
        (
            "onlyBuiltDependencies:\n  - esbuild\n  - true\n",
            "allowlist-wrong-type",
            3,
        ),
        (
            "neverBuiltDependencies:\n  - ''\n",
            "allowlist-empty-key",
            2,
        ),
        (
            "dangerouslyAllowAllBuilds: yes\n",
            "allowlist-wrong-type",
            1,
        ),
    ];
    for (text, code, line) in cases {
        let e = ws_err(text);
        assert_eq!((e.code, e.line), (*code, *line), "{text:?}: {e}");
        assert_eq!(e.file, PathBuf::from("pnpm-workspace.yaml"));
    }
}

// --- reading files ----------------------------------------------------------------------------

#[test]
fn read_finds_both_files() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("package.json"), NPM_EXAMPLE).unwrap();
    std::fs::write(dir.path().join("pnpm-workspace.yaml"), PNPM_EXAMPLE).unwrap();
    let a = Allowlists::read(dir.path()).unwrap();
    assert_eq!(a.entries().len(), 12);
    assert_eq!(a.entries()[0].file, PathBuf::from("package.json"));
    assert_eq!(a.entries()[6].file, PathBuf::from("pnpm-workspace.yaml"));
}

#[test]
fn read_without_files_is_empty() {
    let dir = tempfile::tempdir().unwrap();
    let a = Allowlists::read(dir.path()).unwrap();
    assert!(a.is_empty());
}

#[test]
fn read_refuses_a_symlinked_file() {
    let dir = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("package.json"), NPM_EXAMPLE).unwrap();
    std::os::unix::fs::symlink(
        outside.path().join("package.json"),
        dir.path().join("package.json"),
    )
    .unwrap();
    let e = Allowlists::read(dir.path()).unwrap_err();
    assert_eq!((e.code, e.line), ("allowlist-symlink", 0));
    assert_eq!(e.file, PathBuf::from("package.json"));
    assert!(e.to_string().starts_with("package.json: "), "{e}");
}

#[test]
fn read_accepts_a_root_reached_through_a_link() {
    let dir = tempfile::tempdir().unwrap();
    let real = dir.path().join("real");
    std::fs::create_dir(&real).unwrap();
    std::fs::write(
        real.join("package.json"),
        r#"{"allowScripts": {"a": true}}"#,
    )
    .unwrap();
    std::os::unix::fs::symlink(&real, dir.path().join("link")).unwrap();
    assert_eq!(
        Allowlists::read(&dir.path().join("link"))
            .unwrap()
            .entries()
            .len(),
        1
    );
}

#[test]
fn read_refuses_a_directory_or_fifo() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("pnpm-workspace.yaml")).unwrap();
    let e = Allowlists::read(dir.path()).unwrap_err();
    assert_eq!(
        (e.code, e.file),
        ("allowlist-not-a-file", PathBuf::from("pnpm-workspace.yaml"))
    );
    let dir = tempfile::tempdir().unwrap();
    nix::unistd::mkfifo(
        &dir.path().join("package.json"),
        nix::sys::stat::Mode::S_IRWXU,
    )
    .unwrap();
    let e = Allowlists::read(dir.path()).unwrap_err();
    assert_eq!(e.code, "allowlist-not-a-file");
}

#[test]
fn read_refuses_a_file_over_the_cap() {
    let dir = tempfile::tempdir().unwrap();
    let f = std::fs::File::create(dir.path().join("package.json")).unwrap();
    f.set_len(MAX_FILE_BYTES + 1).unwrap();
    let e = Allowlists::read(dir.path()).unwrap_err();
    assert_eq!(e.code, "allowlist-too-large");
}

#[test]
fn read_refuses_a_file_that_is_not_utf8() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("package.json"), b"{\n\"a\": \"\xff\"}").unwrap();
    let e = Allowlists::read(dir.path()).unwrap_err();
    assert_eq!((e.code, e.line), ("allowlist-not-utf8", 2));
}

#[test]
fn read_reports_parse_errors_with_the_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("pnpm-workspace.yaml"),
        "allowBuilds:\n  esbuild: 'x\n",
    )
    .unwrap();
    let e = Allowlists::read(dir.path()).unwrap_err();
    assert_eq!(e.code, "allowlist-invalid-yaml");
    assert!(e.to_string().starts_with("pnpm-workspace.yaml:"), "{e}");
}
