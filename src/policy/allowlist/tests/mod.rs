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

mod bun_and_together;
mod lavamoat_sources;
mod pnpm_sources;
