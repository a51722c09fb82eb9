//! JSON with line numbers: `serde_json` decides whether the text is JSON (and says where it is
//! not); a small scanner then walks the same, now known-valid, text and records the line every
//! key and value starts on. Keys are unescaped (`"\u0065sbuild"` is `esbuild`) and duplicates
//! are kept, so callers can apply `JSON.parse`'s last-wins rule and say so.

use std::path::Path;

use super::AllowlistError;
use super::doc::{Member, Node, Value};

/// Parse `text` (a leading byte-order mark is skipped, as npm does) into a positioned tree.
pub(super) fn parse(file: &Path, text: &str) -> Result<Node, AllowlistError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    if let Err(e) = serde_json::from_str::<serde::de::IgnoredAny>(text) {
        let full = e.to_string();
        // serde_json appends " at line L column C"; the line goes into the error's own field.
        let message = full
            .rfind(" at line ")
            .map_or(full.as_str(), |i| &full[..i])
            .to_string();
        return Err(AllowlistError::new(
            "allowlist-invalid-json",
            file,
            e.line().max(1),
            format!("not valid JSON: {message}"),
        ));
    }
    let mut s = Scanner {
        b: text.as_bytes(),
        i: 0,
        line: 1,
        depth: 0,
        too_deep: None,
    };
    let node = s.value();
    if let Some(line) = s.too_deep {
        return Err(AllowlistError::new(
            "allowlist-invalid-json",
            file,
            line,
            format!("nested deeper than {MAX_DEPTH} levels"),
        ));
    }
    // The text is valid JSON, so the scanner cannot fail otherwise; should it ever disagree
    // with serde_json, say so rather than panic.
    node.ok_or_else(|| {
        AllowlistError::new(
            "allowlist-invalid-json",
            file,
            s.line,
            "the JSON could not be read back (please report this)".into(),
        )
    })
}

/// Deepest nesting of objects and arrays read. serde_json's validation of a value it skips has
/// no depth limit; the scanner recurses, so it has one (manifests nest a few levels).
const MAX_DEPTH: usize = 128;

/// A cursor over valid JSON that counts lines. Newlines can only occur in whitespace between
/// tokens (never raw inside a string), so the line only moves in [`Scanner::ws`].
struct Scanner<'a> {
    b: &'a [u8],
    i: usize,
    line: usize,
    /// Objects and arrays open around the cursor.
    depth: usize,
    /// The line where [`MAX_DEPTH`] was exceeded.
    too_deep: Option<usize>,
}

impl Scanner<'_> {
    /// Skip whitespace, counting newlines.
    fn ws(&mut self) {
        while let Some(&c) = self.b.get(self.i) {
            match c {
                b'\n' => self.line += 1,
                b' ' | b'\t' | b'\r' => {}
                _ => break,
            }
            self.i += 1;
        }
    }

    /// One value, after optional whitespace.
    fn value(&mut self) -> Option<Node> {
        self.ws();
        let line = self.line;
        let nested = matches!(self.b.get(self.i), Some(b'{' | b'['));
        if nested {
            if self.depth == MAX_DEPTH {
                self.too_deep = Some(line);
                return None;
            }
            self.depth += 1;
        }
        let value = self.value_here()?;
        if nested {
            self.depth -= 1;
        }
        Some(Node { line, value })
    }

    /// The value at the cursor (whitespace already skipped).
    fn value_here(&mut self) -> Option<Value> {
        let value =
            match *self.b.get(self.i)? {
                b'{' => {
                    self.i += 1;
                    let mut members = Vec::new();
                    self.ws();
                    if self.b.get(self.i) == Some(&b'}') {
                        self.i += 1;
                    } else {
                        loop {
                            self.ws();
                            let key_line = self.line;
                            let key = self.string()?;
                            self.ws();
                            if self.b.get(self.i) != Some(&b':') {
                                return None;
                            }
                            self.i += 1;
                            let value = self.value()?;
                            members.push(Member {
                                key,
                                line: key_line,
                                value,
                            });
                            self.ws();
                            match self.b.get(self.i)? {
                                b',' => self.i += 1,
                                b'}' => {
                                    self.i += 1;
                                    break;
                                }
                                _ => return None,
                            }
                        }
                    }
                    Value::Map(members)
                }
                b'[' => {
                    self.i += 1;
                    let mut items = Vec::new();
                    self.ws();
                    if self.b.get(self.i) == Some(&b']') {
                        self.i += 1;
                    } else {
                        loop {
                            items.push(self.value()?);
                            self.ws();
                            match self.b.get(self.i)? {
                                b',' => self.i += 1,
                                b']' => {
                                    self.i += 1;
                                    break;
                                }
                                _ => return None,
                            }
                        }
                    }
                    Value::Seq(items)
                }
                b'"' => Value::Str(self.string()?),
                b't' => {
                    self.literal(b"true")?;
                    Value::Bool(true)
                }
                b'f' => {
                    self.literal(b"false")?;
                    Value::Bool(false)
                }
                b'n' => {
                    self.literal(b"null")?;
                    Value::Null
                }
                _ => {
                    let start = self.i;
                    while self.b.get(self.i).is_some_and(|c| {
                        matches!(c, b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E')
                    }) {
                        self.i += 1;
                    }
                    if self.i == start {
                        return None;
                    }
                    Value::Num(String::from_utf8_lossy(&self.b[start..self.i]).into_owned())
                }
            };
        Some(value)
    }

    /// Expect the bytes `lit`.
    fn literal(&mut self, lit: &[u8]) -> Option<()> {
        if self.b.get(self.i..self.i + lit.len())? == lit {
            self.i += lit.len();
            Some(())
        } else {
            None
        }
    }

    /// A string token, unescaped.
    fn string(&mut self) -> Option<String> {
        if self.b.get(self.i) != Some(&b'"') {
            return None;
        }
        self.i += 1;
        let mut out: Vec<u8> = Vec::new();
        loop {
            let c = *self.b.get(self.i)?;
            self.i += 1;
            match c {
                b'"' => break,
                b'\\' => {
                    let e = *self.b.get(self.i)?;
                    self.i += 1;
                    match e {
                        b'"' => out.push(b'"'),
                        b'\\' => out.push(b'\\'),
                        b'/' => out.push(b'/'),
                        b'b' => out.push(0x08),
                        b'f' => out.push(0x0c),
                        b'n' => out.push(b'\n'),
                        b'r' => out.push(b'\r'),
                        b't' => out.push(b'\t'),
                        b'u' => {
                            let hi = self.hex4()?;
                            // A surrogate pair is one character; a lone surrogate (which
                            // `JSON.parse` keeps) cannot be in a Rust string: U+FFFD.
                            let lo = (0xD800..0xDC00).contains(&hi)
                                && self.b.get(self.i..self.i + 2) == Some(b"\\u".as_slice());
                            let lo = lo
                                .then(|| self.b.get(self.i + 2..self.i + 6))
                                .flatten()
                                .and_then(|d| std::str::from_utf8(d).ok())
                                .and_then(|d| u32::from_str_radix(d, 16).ok())
                                .filter(|lo| (0xDC00..0xE000).contains(lo));
                            let ch = match lo {
                                Some(lo) => {
                                    self.i += 6;
                                    char::from_u32(0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00))?
                                }
                                None => char::from_u32(hi).unwrap_or(char::REPLACEMENT_CHARACTER),
                            };
                            let mut buf = [0u8; 4];
                            out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                        }
                        _ => return None,
                    }
                }
                _ => out.push(c),
            }
        }
        String::from_utf8(out).ok()
    }

    /// Four hex digits.
    fn hex4(&mut self) -> Option<u32> {
        let digits = std::str::from_utf8(self.b.get(self.i..self.i + 4)?).ok()?;
        self.i += 4;
        u32::from_str_radix(digits, 16).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> Node {
        parse(Path::new("package.json"), text).unwrap()
    }

    fn members(n: &Node) -> &[Member] {
        match &n.value {
            Value::Map(m) => m,
            other => panic!("not a map: {other:?}"),
        }
    }

    #[test]
    fn keys_carry_their_lines() {
        let n = p("{\n  \"a\": 1,\n\n  \"b\": {\n    \"c\": true\n  }\n}\n");
        let m = members(&n);
        assert_eq!((m[0].key.as_str(), m[0].line), ("a", 2));
        assert_eq!((m[1].key.as_str(), m[1].line), ("b", 4));
        let inner = members(&m[1].value);
        assert_eq!((inner[0].key.as_str(), inner[0].line), ("c", 5));
        assert_eq!(inner[0].value.value, Value::Bool(true));
    }

    #[test]
    fn escapes_are_decoded_and_do_not_confuse_the_scanner() {
        let n = p(r#"{"x\"}": "\u0065sbuild", "\ud83d\ude00": [null, -1.5e3, "a\\"]}"#);
        let m = members(&n);
        assert_eq!(m[0].key, "x\"}");
        assert_eq!(m[0].value.value, Value::Str("esbuild".into()));
        assert_eq!(m[1].key, "\u{1F600}");
        let Value::Seq(items) = &m[1].value.value else {
            panic!()
        };
        assert_eq!(items[0].value, Value::Null);
        assert_eq!(items[1].value, Value::Num("-1.5e3".into()));
        assert_eq!(items[2].value, Value::Str("a\\".into()));
    }

    #[test]
    fn lone_surrogates_do_not_break_reading() {
        // serde_json accepts them when skipping a value, as `JSON.parse` does.
        let n = p(r#"{"a\ud800": true, "b\udc00\u0041": false, "c\ud800\u0041": 1}"#);
        let m = members(&n);
        assert_eq!(m[0].key, "a\u{fffd}");
        assert_eq!(m[1].key, "b\u{fffd}A");
        assert_eq!(m[2].key, "c\u{fffd}A");
    }

    #[test]
    fn duplicates_are_kept_in_order() {
        let n = p("{\"a\": true,\n\"a\": false}");
        let m = members(&n);
        assert_eq!(m.len(), 2);
        assert_eq!((m[1].line, &m[1].value.value), (2, &Value::Bool(false)));
    }

    #[test]
    fn nesting_is_bounded() {
        let ok = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert!(parse(Path::new("package.json"), &ok).is_ok());
        let deep = format!(
            "{{\n\"a\": {}{}}}",
            "[".repeat(100_000),
            "]".repeat(100_000)
        );
        let e = parse(Path::new("package.json"), &deep).unwrap_err();
        assert_eq!((e.code, e.line), ("allowlist-invalid-json", 2));
        assert!(e.message.contains("deeper"), "{e}");
    }

    #[test]
    fn a_byte_order_mark_is_skipped() {
        assert_eq!(members(&p("\u{feff}{\"a\": 1}")).len(), 1);
    }

    #[test]
    fn invalid_json_is_an_error_at_its_line() {
        let e = parse(
            Path::new("package.json"),
            "{\n  \"a\": true,\n  \"b\": tx,\n}",
        )
        .unwrap_err();
        assert_eq!(e.code, "allowlist-invalid-json");
        assert_eq!(e.line, 3);
        assert!(!e.message.contains(" at line "), "{}", e.message);
        let e = parse(Path::new("package.json"), "{\"a\": 1,}").unwrap_err();
        assert_eq!(e.code, "allowlist-invalid-json");
    }
}
