//! docs/PROTOCOL.md section 9 is normative: every `secure-vectors` block in it must be
//! what this crate produces. `UDPCHAT_PRINT_VECTORS=1 cargo test -p udpchat-secure
//! --test protocol_doc -- --nocapture` prints the transcripts the document should hold.

// A test: a panic with the mismatch is the right way to fail.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use udpchat_secure::{
    derive_psk, short_authentication_string, Psk, SecureConfig, SecureEndpoint, SecureEvent,
};

const DOC: &str = include_str!("../../../docs/PROTOCOL.md");

/// The `name = value` lines of the `secure-vectors <block>` block, values without
/// whitespace.
fn named(block: &str) -> Vec<(String, String)> {
    DOC.split(&format!("```secure-vectors {block}\n"))
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.split_whitespace().collect()))
        .collect()
}

fn value(block: &str, name: &str) -> String {
    named(block)
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
        .unwrap_or_else(|| panic!("docs/PROTOCOL.md: no `{name}` in block `{block}`"))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex32(s: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    assert_eq!(s.len(), 64, "{s}");
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap();
    }
    out
}

const A: &str = "192.0.2.1:12000";
const B: &str = "192.0.2.2:12000";
const UNIX: Duration = Duration::from_secs(1_800_000_000);

/// The transcript of section 9: A (epoch 0xA, seed 0xA1…) initiates to B (epoch 0xB,
/// seed 0xB2…), both starting at Unix time 1,800,000,000; B answers; A confirms with a
/// keepalive; A sends `hello`, B answers `hi`.
fn transcript(psk: Option<Psk>) -> Vec<(String, String)> {
    let (a_addr, b_addr): (SocketAddr, SocketAddr) = (A.parse().unwrap(), B.parse().unwrap());
    let now = Instant::now();
    let config = |peer| SecureConfig {
        psk: psk.clone(),
        peer: Some(peer),
        ..SecureConfig::default()
    };
    let mut a = SecureEndpoint::new(config(b_addr), 0xA, now, UNIX, [0xA1; 32]);
    let mut b = SecureEndpoint::new(config(a_addr), 0xB, now, UNIX, [0xB2; 32]);
    a.connect(now);
    let mut out = Vec::new();
    let initiation = a.poll_transmit().unwrap().payload;
    out.push(("initiation".to_owned(), hex(&initiation)));
    assert_eq!(b.handle_datagram(now, a_addr, &initiation).unwrap(), None);
    let response = b.poll_transmit().unwrap().payload;
    out.push(("response".to_owned(), hex(&response)));
    assert_eq!(a.handle_datagram(now, b_addr, &response).unwrap(), None);
    let keepalive = a.poll_transmit().unwrap().payload;
    out.push(("keepalive".to_owned(), hex(&keepalive)));
    assert_eq!(b.handle_datagram(now, a_addr, &keepalive).unwrap(), None);
    while b.poll_transmit().is_some() {}
    let hello = a.seal(now, b"hello").unwrap().payload;
    out.push(("transport_a".to_owned(), hex(&hello)));
    let opened = b.handle_datagram(now, a_addr, &hello).unwrap().unwrap();
    assert_eq!(opened.bytes, b"hello");
    let hi = b.seal(now, b"hi").unwrap().payload;
    out.push(("transport_b".to_owned(), hex(&hi)));
    assert_eq!(
        a.handle_datagram(now, b_addr, &hi).unwrap().unwrap().bytes,
        b"hi"
    );
    let hash = a.handshake_hash().unwrap();
    assert_eq!(Some(hash), b.handshake_hash());
    out.push(("handshake_hash".to_owned(), hex(&hash)));
    let sas = match a.poll_event() {
        Some(SecureEvent::Established { sas, .. }) => sas,
        other => panic!("expected Established, got {other:?}"),
    };
    assert_eq!(sas, short_authentication_string(&hash));
    out.push(("sas".to_owned(), sas.replace(' ', "")));
    out
}

fn check(block: &str, expected: Vec<(String, String)>) {
    if std::env::var_os("UDPCHAT_PRINT_VECTORS").is_some() {
        println!("```secure-vectors {block}");
        for (k, v) in &expected {
            println!("{k} = {v}");
        }
        println!("```");
    }
    assert_eq!(
        named(block),
        expected,
        "docs/PROTOCOL.md, vectors `{block}`"
    );
}

#[test]
fn the_key_derivation_vectors_match() {
    // The key's bytes stay inside the crate; a key is only ever used in a handshake. So
    // the document's key, given as raw bytes, must give the same handshake bytes as the
    // key derived from the passphrase, from the same seeds.
    for (name, room) in [("psk", None), ("psk_room_lab", Some("lab"))] {
        let documented = Psk::from_bytes(unhex32(&value("kdf", name)));
        let derived = derive_psk(b"correct horse battery staple", room).unwrap();
        assert_eq!(
            transcript(Some(documented)),
            transcript(Some(derived)),
            "docs/PROTOCOL.md: `{name}` is not the key of the passphrase"
        );
    }
    assert_ne!(value("kdf", "psk"), value("kdf", "psk_room_lab"));
}

#[test]
fn the_handshake_transcript_with_a_passphrase_matches() {
    let psk = Psk::from_bytes(unhex32(&value("kdf", "psk")));
    check("transcript-psk", transcript(Some(psk)));
}

#[test]
fn the_handshake_transcript_without_a_passphrase_matches() {
    check("transcript-nn", transcript(None));
}

#[test]
fn the_documented_sizes_hold() {
    for block in ["transcript-psk", "transcript-nn"] {
        let len = |name: &str| value(block, name).len() / 2;
        let expected_initiation = if block == "transcript-psk" { 89 } else { 73 };
        assert_eq!(len("initiation"), expected_initiation, "{block}");
        assert_eq!(len("response"), 65, "{block}");
        assert_eq!(len("keepalive"), 29, "{block}");
        assert_eq!(len("transport_a"), 29 + 5, "{block}");
        assert_eq!(len("transport_b"), 29 + 2, "{block}");
    }
}

#[test]
fn every_vector_block_is_checked() {
    let all = DOC.matches("```secure-vectors ").count();
    assert_eq!(
        all, 3,
        "a vector block was added or removed: update this test"
    );
}
