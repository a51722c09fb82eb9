//! Recognising protocols on a connection: HTTP request completeness, TLS SNI.

/// Whether `p` holds a complete HTTP request head and the body its Content-Length announces.
pub(super) fn http_complete(p: &[u8]) -> bool {
    let Some(end) = p.windows(4).position(|w| w == b"\r\n\r\n") else {
        return false;
    };
    let head = String::from_utf8_lossy(p.get(..end).unwrap_or_default()).to_ascii_lowercase();
    let len = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    p.len() >= end.saturating_add(4).saturating_add(len)
}

/// The TLS SNI of a ClientHello, if the payload is one. Total: any bytes give `None` or a name.
pub(super) fn sni(p: &[u8]) -> Option<String> {
    let be16 = |i: usize| -> Option<usize> {
        Some(usize::from(u16::from_be_bytes([
            *p.get(i)?,
            *p.get(i.checked_add(1)?)?,
        ])))
    };
    if *p.first()? != 0x16 || *p.get(5)? != 0x01 {
        return None;
    }
    // record header (5), handshake header (4), version (2), random (32).
    let mut i: usize = 43;
    let sid = usize::from(*p.get(i)?);
    i = i.checked_add(1 + sid)?;
    let cs = be16(i)?;
    i = i.checked_add(2 + cs)?;
    let cm = usize::from(*p.get(i)?);
    i = i.checked_add(1 + cm)?;
    let ext_end = i.checked_add(2)?.checked_add(be16(i)?)?.min(p.len());
    i = i.checked_add(2)?;
    while i.checked_add(4)? <= ext_end {
        let ty = be16(i)?;
        let len = be16(i + 2)?;
        if ty == 0 {
            // server_name list: list length (2), name type (1), name length (2), name.
            let name_len = be16(i.checked_add(7)?)?;
            let start = i.checked_add(9)?;
            return Some(
                String::from_utf8_lossy(p.get(start..start.checked_add(name_len)?)?).into_owned(),
            );
        }
        i = i.checked_add(4 + len)?;
    }
    None
}
