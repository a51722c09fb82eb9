//! LavaMoat's allow-scripts configuration.

use super::*;

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
