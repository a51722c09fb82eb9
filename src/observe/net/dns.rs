//! The DNS side: parsing a query and answering it with a fake address (total parsers: a datagram is untrusted input).

use super::*;

/// (name, qtype, end of the question section). Total: `None` for anything that is not one
/// well-formed question.
pub(crate) fn parse_query(p: &[u8]) -> Option<(String, u16, usize)> {
    let flags = *p.get(2)?;
    let qdcount = u16::from_be_bytes([*p.get(4)?, *p.get(5)?]);
    if p.len() < 12 || flags & 0x80 != 0 || qdcount == 0 {
        return None;
    }
    let mut i: usize = 12;
    let mut labels = Vec::new();
    let mut total = 0usize;
    loop {
        let len = usize::from(*p.get(i)?);
        i = i.checked_add(1)?;
        if len == 0 {
            break;
        }
        // Compression pointers and reserved label types have no place in a question.
        if len > 63 {
            return None;
        }
        total += len + 1;
        if total > 255 {
            return None;
        }
        let end = i.checked_add(len)?;
        labels.push(String::from_utf8_lossy(p.get(i..end)?).into_owned());
        i = end;
    }
    let qtype = u16::from_be_bytes([*p.get(i)?, *p.get(i.checked_add(1)?)?]);
    // QTYPE and QCLASS must both be there.
    let qend = i.checked_add(4)?;
    if qend > p.len() {
        return None;
    }
    Some((labels.join("."), qtype, qend))
}

/// The answer to `query` (its header and question): one A record for `ip`, or no answer.
pub(super) fn answer(query: &[u8], ip: Option<Ipv4Addr>) -> Vec<u8> {
    if query.len() < 12 {
        return Vec::new();
    }
    let mut r = query.to_vec();
    let rd = query.get(2).copied().unwrap_or(0) & 0x01;
    let header = [0x80 | rd, 0x80, 0, 1, 0, u8::from(ip.is_some()), 0, 0, 0, 0];
    // Bytes 2..12: flags, QDCOUNT = 1, ANCOUNT, NSCOUNT = ARCOUNT = 0.
    for (dst, src) in r.iter_mut().skip(2).zip(header) {
        *dst = src;
    }
    if let Some(ip) = ip {
        r.extend_from_slice(&[0xC0, 0x0C, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4]);
        r.extend_from_slice(&ip.octets());
    }
    r
}
