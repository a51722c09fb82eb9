//! npm's script queue order: by node depth, then by path in ICU `en` collation
//! (`@isaacs/string-locale-compare('en')` = `Intl.Collator('en')`).
//!
//! The collator compares in levels: first the primary weights of the whole strings (punctuation in
//! ICU root order, then digits, then letters case-insensitively), and only if those are equal the
//! case (lower before upper). This module implements that for ASCII, which covers npm package
//! paths; other characters sort after letters by code point.

use std::cmp::Ordering;

/// ICU root collation order of ASCII punctuation and symbols (variable characters first).
const PUNCT: &str = " _-,;:!?.'\"()[]{}@*/\\&#%`^+<=>|~$";

fn primary(c: char) -> u32 {
    if let Some(i) = PUNCT.find(c) {
        return 1 + u32::try_from(i).unwrap_or(0);
    }
    if c.is_ascii_digit() {
        return 100 + (c as u32 - '0' as u32);
    }
    if c.is_ascii_alphabetic() {
        return 200 + (c.to_ascii_lowercase() as u32 - 'a' as u32);
    }
    1000 + c as u32
}

/// Compare two strings as `Intl.Collator('en').compare` does (for ASCII).
pub fn icu_en_cmp(a: &str, b: &str) -> Ordering {
    let pa = a.chars().map(primary);
    let pb = b.chars().map(primary);
    match pa.cmp(pb) {
        Ordering::Equal => {}
        other => return other,
    }
    // Tertiary level: lower case sorts before upper case at the first difference.
    let ca = a.chars().map(|c| c.is_ascii_uppercase());
    let cb = b.chars().map(|c| c.is_ascii_uppercase());
    ca.cmp(cb).then_with(|| a.cmp(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The order `node -e "[...].sort(new Intl.Collator('en').compare)"` printed on this machine.
    #[test]
    fn matches_node_intl_collator() {
        let expected = [
            "_x",
            "-x",
            ".x",
            "@x",
            "0",
            "9",
            "a",
            "A",
            "b",
            "B",
            "node_modules/_a",
            "node_modules/-a",
            "node_modules/@s/x",
            "node_modules/a",
            "node_modules/A",
            "node_modules/a_b",
            "node_modules/a-b",
            "node_modules/a.b",
            "node_modules/a/node_modules/b",
            "node_modules/a0",
            "node_modules/ab",
            "x y",
            "x-y",
            "x.y",
            "x/y",
            "x#y",
            "x+y",
            "x~y",
            "x$y",
        ];
        let mut shuffled: Vec<&str> = expected.iter().rev().copied().collect();
        shuffled.sort_by(|a, b| icu_en_cmp(a, b));
        assert_eq!(shuffled, expected);
    }

    #[test]
    fn case_is_a_tie_breaker_only() {
        assert_eq!(icu_en_cmp("aB", "Ab"), Ordering::Less);
        assert_eq!(icu_en_cmp("Ab", "ac"), Ordering::Less);
    }
}
