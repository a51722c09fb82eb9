//! Bun's trusted dependencies, the sources together, malformed input and reading files.

use super::pnpm_sources::PNPM_EXAMPLE;
use super::*;

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
