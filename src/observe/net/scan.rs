//! Finding canaries in what arrives, through the encodings exfiltration uses, streaming over every byte.

use super::*;

pub(crate) fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if s.len() < 8 || s.len() % 2 != 0 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    s.as_bytes()
        .chunks(2)
        .map(|pair| {
            let hi = char::from(*pair.first()?).to_digit(16)?;
            let lo = char::from(*pair.get(1)?).to_digit(16)?;
            u8::try_from(hi * 16 + lo).ok()
        })
        .collect()
}

/// Pack `width`-bit symbols (`None` = not in the alphabet) into bytes, as base32/base64 do.
pub(super) fn unpack_bits(
    symbols: impl Iterator<Item = Option<u8>>,
    width: u32,
) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0u32);
    for v in symbols {
        acc = ((acc << width) | u32::from(v?)) & 0xFFFF;
        bits += width;
        if bits >= 8 {
            bits -= 8;
            out.push(((acc >> bits) & 0xFF) as u8);
        }
    }
    Some(out)
}

pub(super) fn decode_base32(s: &str) -> Option<Vec<u8>> {
    let s = s.trim_end_matches('=').to_ascii_uppercase();
    if s.len() < 8 {
        return None;
    }
    unpack_bits(
        s.bytes().map(|b| match b {
            b'A'..=b'Z' => Some(b - b'A'),
            b'2'..=b'7' => Some(b - b'2' + 26),
            _ => None,
        }),
        5,
    )
}

pub(super) fn decode_base64(s: &str) -> Option<Vec<u8>> {
    let s = s.trim_end_matches('=');
    if s.len() < 12 {
        return None;
    }
    unpack_bits(
        s.bytes().map(|b| match b {
            b'A'..=b'Z' => Some(b - b'A'),
            b'a'..=b'z' => Some(b - b'a' + 26),
            b'0'..=b'9' => Some(b - b'0' + 52),
            b'+' | b'-' => Some(62),
            b'/' | b'_' => Some(63),
            _ => None,
        }),
        6,
    )
}

/// Whether `b` can be part of an encoded token (hex, base32, base64, base64url).
pub(super) fn token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"+/_-".contains(&b)
}

/// Every text a payload may carry a secret in: itself, and the decodings of its hex, base32 and
/// base64 tokens, nested up to three levels (Shai-Hulud double-base64-encodes).
pub(super) fn expansions(data: &[u8]) -> Vec<Vec<u8>> {
    let mut out = vec![data.to_vec()];
    let mut known: HashSet<Vec<u8>> = HashSet::new();
    let mut frontier = vec![data.to_vec()];
    for _ in 0..3 {
        let mut next = Vec::new();
        for d in &frontier {
            for token in d.split(|b| !token_byte(*b)) {
                // Only ASCII bytes: the split left nothing else.
                let Ok(token) = std::str::from_utf8(token) else {
                    continue;
                };
                for dec in [
                    decode_hex(token),
                    decode_base32(token),
                    decode_base64(token),
                ]
                .into_iter()
                .flatten()
                {
                    if dec.len() >= 6 && known.insert(dec.clone()) {
                        next.push(dec.clone());
                        out.push(dec);
                    }
                }
            }
        }
        if next.is_empty() || out.len() > 4096 {
            break;
        }
        frontier = next;
    }
    out
}

/// Canary fragments this long are matched too: exfiltration often splits a token across DNS
/// labels or truncates it, and 16 characters of a random canary never occur by chance.
pub(super) const MIN_FRAGMENT: usize = 16;

/// The canaries' fragments, indexed once per run.
#[derive(Debug, Default)]
pub(super) struct Matcher {
    /// Fragment length → fragment (lowercased) → canary indexes.
    pub(super) by_len: BTreeMap<usize, HashMap<Vec<u8>, Vec<usize>>>,
}

impl Matcher {
    pub(super) fn new(canaries: &[Canary]) -> Matcher {
        let mut by_len: BTreeMap<usize, HashMap<Vec<u8>, Vec<usize>>> = BTreeMap::new();
        for (i, c) in canaries.iter().enumerate() {
            let v = c.value.to_ascii_lowercase().into_bytes();
            let n = v.len().min(MIN_FRAGMENT);
            if n == 0 {
                continue;
            }
            let frags = by_len.entry(n).or_default();
            for f in v.windows(n) {
                let ids = frags.entry(f.to_vec()).or_default();
                if !ids.contains(&i) {
                    ids.push(i);
                }
            }
        }
        Matcher { by_len }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.by_len.is_empty()
    }

    /// Indexes of the canaries in `data`, matched without regard to ASCII case (host names, DNS
    /// labels and SNI arrive lowercased: node and resolvers fold them), through encodings and
    /// also reversed (loot stored backwards).
    pub(super) fn hits(&self, data: &[u8]) -> BTreeSet<usize> {
        let mut hit = BTreeSet::new();
        if self.is_empty() || data.is_empty() {
            return hit;
        }
        let mut texts = expansions(data);
        texts.push(data.iter().rev().copied().collect());
        for t in &mut texts {
            t.make_ascii_lowercase();
        }
        for (n, frags) in &self.by_len {
            for t in &texts {
                for w in t.windows(*n) {
                    if let Some(ids) = frags.get(w) {
                        hit.extend(ids.iter().copied());
                    }
                }
            }
        }
        hit
    }
}

/// Streaming canary search over a connection: bytes are searched in segments cut after a byte
/// that cannot be part of an encoded token, so every token is decoded whole (a token longer
/// than a segment is cut on a symbol boundary of every encoding), and each segment is searched
/// together with the end of the one before it, so raw text crossing a cut is found too.
#[derive(Debug)]
pub(super) struct StreamScan<'a> {
    pub(super) matcher: &'a Matcher,
    pub(super) pending: Vec<u8>,
    pub(super) tail: Vec<u8>,
    pub(super) hits: BTreeSet<usize>,
}

impl<'a> StreamScan<'a> {
    /// Bytes gathered before a segment is searched.
    pub(super) const SEGMENT: usize = 64 << 10;
    /// Bytes of the previous segment searched again with the next.
    const OVERLAP: usize = 1024;

    pub(super) fn new(matcher: &'a Matcher) -> Self {
        StreamScan {
            matcher,
            pending: Vec::new(),
            tail: Vec::new(),
            hits: BTreeSet::new(),
        }
    }

    pub(super) fn feed(&mut self, data: &[u8]) {
        if self.matcher.is_empty() {
            return;
        }
        self.pending.extend_from_slice(data);
        while self.pending.len() >= Self::SEGMENT {
            let cut = match self.pending.iter().rposition(|b| !token_byte(*b)) {
                Some(i) => i + 1,
                // One long token: cut it at a multiple of 8 characters from its start, where
                // hex, base32 and base64 alike restart on a symbol boundary (and so does the
                // base64 of base64: 8 characters decode to 6 bytes, and SEGMENT / 8 * 6 is a
                // multiple of 8 too), so each piece decodes as the whole would.
                None => Self::SEGMENT,
            };
            let segment: Vec<u8> = self.pending.drain(..cut).collect();
            self.search(&segment);
        }
    }

    pub(super) fn search(&mut self, segment: &[u8]) {
        let mut text = std::mem::take(&mut self.tail);
        text.extend_from_slice(segment);
        self.hits.extend(self.matcher.hits(&text));
        let keep = text.len().min(Self::OVERLAP);
        self.tail = text.split_off(text.len() - keep);
    }

    pub(super) fn finish(mut self) -> BTreeSet<usize> {
        let rest = std::mem::take(&mut self.pending);
        if !rest.is_empty() {
            self.search(&rest);
        }
        self.hits
    }
}

/// The canaries in `data` (searched whole; for streams see [`StreamScan`]).
pub(crate) fn canaries_in<'a>(data: &[u8], canaries: &'a [Canary]) -> Vec<&'a Canary> {
    let hits = Matcher::new(canaries).hits(data);
    canaries
        .iter()
        .enumerate()
        .filter_map(|(i, c)| hits.contains(&i).then_some(c))
        .collect()
}
