//! pnpm's allowlists (`onlyBuiltDependencies` and friends).

use super::*;

// --- pnpm -------------------------------------------------------------------------------------

pub(super) const PNPM_EXAMPLE: &str = "packages:
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
