//! The one document shape both parsers produce: JSON ([`super::json`]) and YAML
//! ([`super::yaml`]) become a tree of [`Node`]s that remember the 1-based line each value and
//! each key is written on, so every entry and every error can point at its line.

use std::path::{Path, PathBuf};

use super::AllowlistError;

/// Which syntax a document was written in (only changes the words in messages).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Lang {
    /// `package.json`.
    Json,
    /// `pnpm-workspace.yaml`.
    Yaml,
}

/// A value and the line it starts on.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Node {
    /// 1-based line.
    pub line: usize,
    /// The value.
    pub value: Value,
}

/// A parsed value. Numbers keep their text: nothing here needs their value.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Value {
    /// An object (JSON) or a mapping (YAML), members in document order, duplicates kept.
    Map(Vec<Member>),
    /// An array or a sequence.
    Seq(Vec<Node>),
    /// A string.
    Str(String),
    /// A boolean.
    Bool(bool),
    /// `null` (YAML: `~`, `null`, or nothing).
    Null,
    /// A number, as written.
    Num(String),
}

/// One `key: value` of a map.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Member {
    /// The key, unescaped.
    pub key: String,
    /// 1-based line of the key.
    pub line: usize,
    /// The value.
    pub value: Node,
}

/// A parsed file: its tree and what the messages need to name it.
#[derive(Debug)]
pub(super) struct Doc {
    /// Path relative to the project root (`package.json`).
    pub file: PathBuf,
    /// Syntax.
    pub lang: Lang,
    /// The top-level value; `None` for an empty YAML file.
    pub root: Option<Node>,
}

impl Node {
    /// What kind of value this is, for messages ("an object", "a string", ...).
    pub fn kind(&self, lang: Lang) -> &'static str {
        match (&self.value, lang) {
            (Value::Map(_), Lang::Json) => "an object",
            (Value::Map(_), Lang::Yaml) => "a mapping",
            (Value::Seq(_), Lang::Json) => "an array",
            (Value::Seq(_), Lang::Yaml) => "a sequence",
            (Value::Str(_), _) => "a string",
            (Value::Bool(_), _) => "a boolean",
            (Value::Null, _) => "null",
            (Value::Num(_), _) => "a number",
        }
    }
}

/// The word for a map in `lang`.
pub(super) fn map_word(lang: Lang) -> &'static str {
    match lang {
        Lang::Json => "an object",
        Lang::Yaml => "a mapping",
    }
}

/// The word for a list in `lang`.
pub(super) fn seq_word(lang: Lang) -> &'static str {
    match lang {
        Lang::Json => "an array",
        Lang::Yaml => "a sequence",
    }
}

/// The members of a map with each key once, in the order keys were first written: for a key
/// written twice the *last* member wins (as `JSON.parse` keeps the last value), with its line.
/// The second list names every overridden key as `(key, line overridden, line that counts)`.
pub(super) fn last_wins(members: &[Member]) -> (Vec<&Member>, Vec<(&str, usize, usize)>) {
    let mut out: Vec<&Member> = Vec::with_capacity(members.len());
    let mut dups = Vec::new();
    let mut index: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for m in members {
        match index.get(m.key.as_str()) {
            Some(&i) => {
                dups.push((m.key.as_str(), out[i].line, m.line));
                out[i] = m;
            }
            None => {
                index.insert(m.key.as_str(), out.len());
                out.push(m);
            }
        }
    }
    (out, dups)
}

/// The member `key` of the map `node` (the last one written, as `JSON.parse` keeps).
pub(super) fn field<'a>(node: &'a Node, key: &str) -> Option<&'a Member> {
    match &node.value {
        Value::Map(members) => members.iter().rev().find(|m| m.key == key),
        _ => None,
    }
}

/// The error for a value of the wrong type at `line`.
pub(super) fn wrong_type(
    file: &Path,
    line: usize,
    what: &str,
    expected: &str,
    found: &str,
) -> AllowlistError {
    AllowlistError::new(
        "allowlist-wrong-type",
        file,
        line,
        format!("{what} must be {expected}, not {found}"),
    )
}
