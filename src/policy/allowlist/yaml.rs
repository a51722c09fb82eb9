//! YAML with line numbers, read the way pnpm reads `pnpm-workspace.yaml` (js-yaml's default
//! schema): YAML 1.2 core scalars (`true`/`True`/`TRUE` are booleans, `yes` is a string),
//! anchors and aliases, `<<` merge keys (explicit keys override merged ones; of several merged
//! maps the first wins), a duplicated key is an error, and only one document.
//!
//! Parsing is saphyr's (markers on every node, a budget on alias expansion against "billion
//! laughs" documents); scalars are loaded unresolved so keys keep their exact text (`123: true`
//! is the package `123`) and are resolved here. Nesting is bounded ([`MAX_DEPTH`] as written,
//! twice that once aliases are expanded) so no hostile file can exhaust the stack.

use std::borrow::Cow;
use std::path::Path;

use saphyr::{LoadableYamlNode, MarkedYaml, Scalar, ScalarStyle, Tag, YamlData, YamlLoader};
use saphyr_parser::{Event, SpannedEventReceiver};

use super::AllowlistError;
use super::doc::{Member, Node, Value};

/// Parse `text` into a positioned tree; `Ok(None)` for a document with nothing in it.
pub(super) fn parse(file: &Path, text: &str) -> Result<Option<Node>, AllowlistError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut loader: YamlLoader<'_, MarkedYaml<'_>> = YamlLoader::default();
    loader.early_parse(false);
    // The parser's own `load` recurses once per nesting level; pulling its events one at a
    // time does not, and lets the depth be checked before the loader builds anything.
    let mut depth = 0usize;
    let mut scan = None;
    for event in saphyr_parser::Parser::new_from_str(text) {
        let (ev, span) = match event {
            Ok(e) => e,
            Err(e) => {
                scan = Some(e);
                break;
            }
        };
        match ev {
            Event::SequenceStart(..) | Event::MappingStart(..) => {
                if depth == MAX_DEPTH {
                    return Err(AllowlistError::new(
                        "allowlist-invalid-yaml",
                        file,
                        span.start.line().max(1),
                        format!("nested deeper than {MAX_DEPTH} levels"),
                    ));
                }
                depth += 1;
            }
            Event::SequenceEnd | Event::MappingEnd => depth = depth.saturating_sub(1),
            _ => {}
        }
        loader.on_event(ev, span);
    }
    if let Some(e) = scan.or_else(|| loader.error().cloned()) {
        return Err(AllowlistError::new(
            "allowlist-invalid-yaml",
            file,
            e.marker().line().max(1),
            format!("not valid YAML: {}", e.info()),
        ));
    }
    let docs = loader.into_documents();
    let mut docs = docs.into_iter().filter(|d| !d.is_badvalue());
    let Some(first) = docs.next() else {
        return Ok(None);
    };
    if let Some(second) = docs.next() {
        return Err(AllowlistError::new(
            "allowlist-invalid-yaml",
            file,
            second.span.start.line().max(1),
            "more than one YAML document (pnpm reads exactly one)".into(),
        ));
    }
    let node = convert(file, &first, 0)?;
    Ok(if node.value == Value::Null {
        None
    } else {
        Some(node)
    })
}

/// Deepest nesting of mappings and sequences read, as written and after aliases are expanded
/// (block sequences nest without limit on one line, `- - - - x`; the tree is walked
/// recursively). Workspace files nest a few levels.
const MAX_DEPTH: usize = 64;

/// Resolve one scalar's text the way the core schema does.
fn scalar(
    file: &Path,
    line: usize,
    text: &str,
    style: ScalarStyle,
    tag: Option<&Cow<'_, Tag>>,
) -> Result<Value, AllowlistError> {
    match Scalar::parse_from_cow_and_metadata(Cow::Borrowed(text), style, tag) {
        Some(Scalar::Null) => Ok(Value::Null),
        Some(Scalar::Boolean(b)) => Ok(Value::Bool(b)),
        Some(Scalar::Integer(_) | Scalar::FloatingPoint(_)) => Ok(Value::Num(text.to_string())),
        Some(Scalar::String(s)) => Ok(Value::Str(s.into_owned())),
        None => Err(AllowlistError::new(
            "allowlist-invalid-yaml",
            file,
            line,
            format!("`{text}` is not a valid value for its tag"),
        )),
    }
}

/// Convert one saphyr node (aliases are already expanded by the loader) at nesting `depth`.
fn convert(file: &Path, y: &MarkedYaml<'_>, depth: usize) -> Result<Node, AllowlistError> {
    let line = y.span.start.line().max(1);
    if depth > 2 * MAX_DEPTH {
        // Only aliases of aliases get here: each stays within MAX_DEPTH as written.
        return Err(AllowlistError::new(
            "allowlist-invalid-yaml",
            file,
            line,
            format!(
                "nested deeper than {} levels once aliases are expanded",
                2 * MAX_DEPTH
            ),
        ));
    }
    let value = match &y.data {
        YamlData::Representation(text, style, tag) => {
            scalar(file, line, text, *style, tag.as_ref())?
        }
        YamlData::Value(s) => match s {
            Scalar::Null => Value::Null,
            Scalar::Boolean(b) => Value::Bool(*b),
            Scalar::Integer(i) => Value::Num(i.to_string()),
            Scalar::FloatingPoint(f) => Value::Num(f.to_string()),
            Scalar::String(s) => Value::Str(s.to_string()),
        },
        YamlData::Sequence(items) => Value::Seq(
            items
                .iter()
                .map(|i| convert(file, i, depth + 1))
                .collect::<Result<_, _>>()?,
        ),
        YamlData::Mapping(map) => Value::Map(mapping(file, map.iter(), depth + 1)?),
        YamlData::Tagged(_, inner) => return convert(file, inner, depth),
        YamlData::Alias(_) | YamlData::BadValue => {
            return Err(AllowlistError::new(
                "allowlist-invalid-yaml",
                file,
                line,
                "an alias to an unknown anchor, or an anchor too large to expand".into(),
            ));
        }
    };
    Ok(Node { line, value })
}

/// The text of a mapping key, or `None` for `<<`.
fn key_text(file: &Path, k: &MarkedYaml<'_>) -> Result<Option<String>, AllowlistError> {
    let line = k.span.start.line().max(1);
    let (text, style, tag) = match &k.data {
        YamlData::Representation(text, style, tag) => (text, *style, tag.as_ref()),
        YamlData::Value(Scalar::String(s)) => {
            return Ok(Some(s.to_string()));
        }
        YamlData::Tagged(_, inner) => return key_text(file, inner),
        _ => {
            return Err(AllowlistError::new(
                "allowlist-wrong-type",
                file,
                line,
                "a mapping key must be a plain string".into(),
            ));
        }
    };
    if style == ScalarStyle::Plain && tag.is_none() && text == "<<" {
        return Ok(None);
    }
    match scalar(file, line, text, style, tag)? {
        Value::Null => Err(AllowlistError::new(
            "allowlist-empty-key",
            file,
            line,
            "a mapping key is empty".into(),
        )),
        _ => Ok(Some(text.to_string())),
    }
}

/// A mapping's members with `<<` merges applied; its values are at nesting `depth`.
fn mapping<'a, 'y: 'a>(
    file: &Path,
    entries: impl Iterator<Item = (&'a MarkedYaml<'y>, &'a MarkedYaml<'y>)>,
    depth: usize,
) -> Result<Vec<Member>, AllowlistError> {
    let mut explicit: Vec<Member> = Vec::new();
    let mut merged: Vec<Member> = Vec::new();
    for (k, v) in entries {
        let line = k.span.start.line().max(1);
        match key_text(file, k)? {
            Some(key) => {
                if let Some(prev) = explicit.iter().find(|m| m.key == key) {
                    return Err(AllowlistError::new(
                        "allowlist-invalid-yaml",
                        file,
                        line,
                        format!(
                            "duplicated mapping key `{key}` (first written on line {})",
                            prev.line
                        ),
                    ));
                }
                explicit.push(Member {
                    key,
                    line,
                    value: convert(file, v, depth)?,
                });
            }
            None => {
                let source = convert(file, v, depth)?;
                let maps: Vec<Node> = match source.value {
                    Value::Map(_) => vec![source],
                    Value::Seq(items) => items,
                    _ => Vec::new(),
                };
                if maps.is_empty() {
                    return Err(AllowlistError::new(
                        "allowlist-invalid-yaml",
                        file,
                        line,
                        "a `<<` merge key must name a mapping or a sequence of mappings".into(),
                    ));
                }
                for m in maps {
                    let Value::Map(members) = m.value else {
                        return Err(AllowlistError::new(
                            "allowlist-invalid-yaml",
                            file,
                            m.line,
                            "a `<<` merge key must name a mapping or a sequence of mappings".into(),
                        ));
                    };
                    merged.extend(members);
                }
            }
        }
    }
    for m in merged {
        if !explicit.iter().any(|e| e.key == m.key) {
            explicit.push(m);
        }
    }
    Ok(explicit)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> Node {
        parse(Path::new("pnpm-workspace.yaml"), text)
            .unwrap()
            .unwrap()
    }

    fn err(text: &str) -> AllowlistError {
        parse(Path::new("pnpm-workspace.yaml"), text).unwrap_err()
    }

    fn members(n: &Node) -> &[Member] {
        match &n.value {
            Value::Map(m) => m,
            other => panic!("not a map: {other:?}"),
        }
    }

    #[test]
    fn keys_and_values_carry_their_lines_and_core_types() {
        let n = p(
            "# c\nallowBuilds:\n  esbuild: true\n  'nx@21.6.4 || 21.6.5': False\n  yes: yes\n  123: ~\n",
        );
        let top = members(&n);
        assert_eq!((top[0].key.as_str(), top[0].line), ("allowBuilds", 2));
        let m = members(&top[0].value);
        assert_eq!((m[0].key.as_str(), m[0].line), ("esbuild", 3));
        assert_eq!(m[0].value.value, Value::Bool(true));
        assert_eq!((m[1].key.as_str(), m[1].line), ("nx@21.6.4 || 21.6.5", 4));
        assert_eq!(m[1].value.value, Value::Bool(false));
        assert_eq!(m[2].value.value, Value::Str("yes".into()));
        assert_eq!(
            (m[3].key.as_str(), &m[3].value.value),
            ("123", &Value::Null)
        );
    }

    #[test]
    fn quoted_true_is_a_string() {
        let n = p("a: 'true'\nb: !!str true\n");
        let m = members(&n);
        assert_eq!(m[0].value.value, Value::Str("true".into()));
        assert_eq!(m[1].value.value, Value::Str("true".into()));
    }

    #[test]
    fn merge_keys_apply_with_explicit_keys_winning() {
        let n =
            p("base: &b\n  esbuild: true\n  sharp: true\nallowBuilds:\n  <<: *b\n  sharp: false\n");
        let m = members(&members(&n)[1].value);
        let got: Vec<_> = m
            .iter()
            .map(|x| (x.key.as_str(), x.line, x.value.value.clone()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("sharp", 6, Value::Bool(false)),
                ("esbuild", 2, Value::Bool(true)),
            ]
        );
    }

    #[test]
    fn empty_documents_are_nothing() {
        assert_eq!(parse(Path::new("x"), "").unwrap(), None);
        assert_eq!(parse(Path::new("x"), "# only a comment\n").unwrap(), None);
        assert_eq!(parse(Path::new("x"), "~\n").unwrap(), None);
    }

    #[test]
    fn duplicated_keys_are_errors_even_in_different_styles() {
        let e = err("a: 1\nb: 2\na: 3\n");
        assert_eq!((e.code, e.line), ("allowlist-invalid-yaml", 3));
        let e = err("allowBuilds:\n  esbuild: true\n  'esbuild': false\n");
        assert_eq!((e.code, e.line), ("allowlist-invalid-yaml", 3));
        assert!(e.message.contains("line 2"), "{}", e.message);
    }

    #[test]
    fn syntax_errors_are_errors_at_their_line() {
        let e = err("allowBuilds:\n  esbuild: true\n  - sharp\n");
        assert_eq!(e.code, "allowlist-invalid-yaml");
        assert_eq!(e.line, 3);
        let e = err("a: [1, 2\n");
        assert_eq!(e.code, "allowlist-invalid-yaml");
    }

    #[test]
    fn nesting_is_bounded_as_written_and_through_aliases() {
        let ok = format!("{}x\n", "- ".repeat(MAX_DEPTH));
        assert!(parse(Path::new("x"), &ok).is_ok());
        let e = err(&format!("a: 1\nb:\n{}x\n", "- ".repeat(200_000)));
        assert_eq!((e.code, e.line), ("allowlist-invalid-yaml", 3));
        assert!(e.message.contains("deeper than 64"), "{e}");
        // Each anchor nests 60 levels as written; aliases stack them.
        let mut text = String::new();
        for i in 0..4 {
            let inner = if i == 0 {
                "x".to_string()
            } else {
                format!("*a{}", i - 1)
            };
            text.push_str(&format!(
                "k{i}: &a{i} {}{inner}{}\n",
                "[".repeat(60),
                "]".repeat(60)
            ));
        }
        let e = err(&text);
        assert!(e.message.contains("once aliases are expanded"), "{e}");
    }

    #[test]
    fn more_than_one_document_is_an_error() {
        let e = err("a: 1\n---\nb: 2\n");
        assert_eq!((e.code, e.line), ("allowlist-invalid-yaml", 3));
    }

    #[test]
    fn null_keys_are_empty_keys() {
        let e = err("allowBuilds:\n  ~: true\n");
        assert_eq!((e.code, e.line), ("allowlist-empty-key", 2));
    }
}
