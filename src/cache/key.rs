//! Cache keys: every input that can change a script's result, hashed canonically.

use std::collections::BTreeMap;
use std::fmt;

use sha2::{Digest, Sha256};

/// Prefix of the hashed encoding, so that a key can never collide with the hash of some other
/// encoding (or of a later version of this one).
const KEY_DOMAIN: &[u8] = b"ringfence build-cache key v1\0";

/// Everything that can change a script's result, as `(name, value)` strings: for example
/// `integrity`, `event`, `script`, `node_version`, `node_abi`, `platform`, `arch`, `libc`,
/// `env.CC`, `dep.node-addon-api`. The caller chooses the names; [`KeyInputs::key`] hashes them
/// in a canonical, unambiguous encoding, so the order of insertion never matters and no two
/// different maps give the same key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyInputs {
    /// The inputs, by name.
    pub fields: BTreeMap<String, String>,
}

impl KeyInputs {
    /// No inputs yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets (or replaces) the input `name`.
    pub fn set(&mut self, name: impl Into<String>, value: impl Into<String>) -> &mut Self {
        self.fields.insert(name.into(), value.into());
        self
    }

    /// [`KeyInputs::set`], by value.
    #[must_use]
    pub fn with(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.set(name, value);
        self
    }

    /// The key: hex sha256 of the domain prefix, the number of fields, then each field in name
    /// order as `len(name) ‖ name ‖ len(value) ‖ value` (lengths as little-endian `u64`).
    pub fn key(&self) -> Key {
        let mut h = Sha256::new();
        h.update(KEY_DOMAIN);
        h.update(len64(self.fields.len()).to_le_bytes());
        for (name, value) in &self.fields {
            h.update(len64(name.len()).to_le_bytes());
            h.update(name.as_bytes());
            h.update(len64(value.len()).to_le_bytes());
            h.update(value.as_bytes());
        }
        Key(hex(&h.finalize()))
    }
}

fn len64(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

/// Lower-case hex of `bytes`.
pub(super) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// `true` for exactly 64 lower-case hex digits (a sha256).
pub(super) fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// A cache key: 64 lower-case hex digits. It names the entry's directory, so it is only ever
/// made by [`KeyInputs::key`] or checked by [`Key::parse`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key(String);

impl Key {
    /// A key from its text form; `None` unless it is 64 lower-case hex digits.
    pub fn parse(s: &str) -> Option<Self> {
        is_sha256_hex(s).then(|| Self(s.to_owned()))
    }

    /// The hex text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The shard directory name: the first two hex digits.
    pub(super) fn shard(&self) -> &str {
        &self.0[..2]
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
