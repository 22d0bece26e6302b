//! docs/PROTOCOL.md section 9 is normative: every `secure-vectors` block in it must be
//! what this crate produces. `UDPCHAT_PRINT_VECTORS=1 cargo test -p udpchat-secure
//! --test protocol_doc -- --nocapture` prints the blocks the document should hold.

// A test: a panic with the mismatch is the right way to fail.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::Instant;

use udpchat_secure::{
    derive_psk, Identity, InviteCode, Psk, SecureConfig, SecureEndpoint, SecureEvent,
    SessionCipher, Trust, Verification,
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

fn alice() -> Identity {
    Identity::from_private(unhex32(&value("identities", "private_a")))
}

fn bob() -> Identity {
    Identity::from_private(unhex32(&value("identities", "private_b")))
}

/// How the two know each other in a transcript.
#[derive(Clone)]
enum Proof {
    Pinned,
    Passphrase(Psk),
    Code(InviteCode),
    /// Pinned, and B under load: it answers the first initiation with a cookie.
    Cookie,
}

/// A transcript of section 9.9: A (epoch 0xA, seed 0x0A…) initiates to B (epoch 0xB,
/// seed 0x0B…); B answers; A finishes; B confirms with a keepalive; A sends `hello`,
/// B answers `hi`.
fn transcript(proof: &Proof, cipher: SessionCipher) -> Vec<(String, String)> {
    let (a_addr, b_addr): (SocketAddr, SocketAddr) = (A.parse().unwrap(), B.parse().unwrap());
    let now = Instant::now();
    let config = |me: Identity, other: &Identity, peer| {
        let mut c = SecureConfig::new(me);
        c.peer = Some(peer);
        c.cipher = cipher;
        match proof {
            Proof::Pinned | Proof::Cookie => {
                c.trust = Trust {
                    pinned: [other.public()].into_iter().collect(),
                    expected: Some(other.public()),
                };
            }
            Proof::Passphrase(psk) => c.psk = Some(psk.clone()),
            Proof::Code(code) => c.code = Some(*code),
        }
        c
    };
    let mut cb = config(bob(), &alice(), a_addr);
    if matches!(proof, Proof::Cookie) {
        cb.load_rate = 0;
    }
    let mut a = SecureEndpoint::new(config(alice(), &bob(), b_addr), 0xA, now, [0x0A; 32]);
    let mut b = SecureEndpoint::new(cb, 0xB, now, [0x0B; 32]);
    a.connect(now);
    let mut out = Vec::new();
    let mut initiation = a.poll_transmit().unwrap().payload;
    out.push(("initiation".to_owned(), hex(&initiation)));
    assert_eq!(b.handle_datagram(now, a_addr, &initiation).unwrap(), None);
    // Under load, and for every attempt at a code, the first answer is a cookie.
    let mut first = b.poll_transmit().unwrap().payload;
    if first[0] == udpchat_secure::wire::TYPE_COOKIE_REPLY {
        let cookie = first;
        out.push(("cookie_reply".to_owned(), hex(&cookie)));
        assert_eq!(a.handle_datagram(now, b_addr, &cookie).unwrap(), None);
        initiation = a.poll_transmit().unwrap().payload;
        out.push(("initiation_with_mac2".to_owned(), hex(&initiation)));
        assert_eq!(b.handle_datagram(now, a_addr, &initiation).unwrap(), None);
        first = b.poll_transmit().unwrap().payload;
    }
    let response = first;
    out.push(("response".to_owned(), hex(&response)));
    assert_eq!(a.handle_datagram(now, b_addr, &response).unwrap(), None);
    let finish = a.poll_transmit().unwrap().payload;
    out.push(("finish".to_owned(), hex(&finish)));
    assert_eq!(b.handle_datagram(now, a_addr, &finish).unwrap(), None);
    let keepalive = b.poll_transmit().unwrap().payload;
    out.push(("keepalive".to_owned(), hex(&keepalive)));
    assert_eq!(a.handle_datagram(now, b_addr, &keepalive).unwrap(), None);
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
    let verified = match a.poll_event() {
        Some(SecureEvent::Established {
            verified, peer_key, ..
        }) => {
            assert_eq!(peer_key, bob().public());
            verified
        }
        other => panic!("expected Established, got {other:?}"),
    };
    let expected = match proof {
        Proof::Pinned | Proof::Cookie => Verification::Pinned,
        Proof::Passphrase(_) => Verification::Passphrase,
        Proof::Code(_) => Verification::Code,
    };
    assert_eq!(verified, expected);
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
fn the_identity_vectors_match() {
    let mut expected = Vec::new();
    for (side, id) in [("a", alice()), ("b", bob())] {
        expected.push((
            format!("private_{side}"),
            value("identities", &format!("private_{side}")),
        ));
        expected.push((format!("public_{side}"), id.public().to_hex()));
        expected.push((
            format!("fingerprint_{side}"),
            id.public().fingerprint().to_string(),
        ));
    }
    check("identities", expected);
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
            transcript(&Proof::Passphrase(documented), SessionCipher::ChaChaPoly),
            transcript(&Proof::Passphrase(derived), SessionCipher::ChaChaPoly),
            "docs/PROTOCOL.md: `{name}` is not the key of the passphrase"
        );
    }
    assert_ne!(value("kdf", "psk"), value("kdf", "psk_room_lab"));
}

#[test]
fn the_pinned_transcript_matches() {
    check(
        "transcript-pinned",
        transcript(&Proof::Pinned, SessionCipher::ChaChaPoly),
    );
}

#[test]
fn the_pinned_aes_gcm_transcript_matches() {
    // The same, with the initiation's flag 0x02: the AESGCM pattern and its nonces.
    check(
        "transcript-pinned-aesgcm",
        transcript(&Proof::Pinned, SessionCipher::AesGcm),
    );
}

#[test]
fn the_passphrase_transcript_matches() {
    let psk = Psk::from_bytes(unhex32(&value("kdf", "psk")));
    check(
        "transcript-passphrase",
        transcript(&Proof::Passphrase(psk), SessionCipher::ChaChaPoly),
    );
}

#[test]
fn the_invitation_code_transcript_matches() {
    let code = InviteCode::parse("7-ribbon-tunnel").unwrap();
    check(
        "transcript-code",
        transcript(&Proof::Code(code), SessionCipher::ChaChaPoly),
    );
}

#[test]
fn the_cookie_transcript_matches() {
    check(
        "transcript-cookie",
        transcript(&Proof::Cookie, SessionCipher::ChaChaPoly),
    );
}

#[test]
fn the_documented_sizes_hold() {
    for block in [
        "transcript-pinned",
        "transcript-pinned-aesgcm",
        "transcript-passphrase",
        "transcript-code",
        "transcript-cookie",
    ] {
        let len = |name: &str| value(block, name).len() / 2;
        assert_eq!(len("initiation"), 148, "{block}");
        assert_eq!(len("response"), 148, "{block}");
        assert_eq!(len("finish"), 78, "{block}");
        assert_eq!(len("keepalive"), 29, "{block}");
        assert_eq!(len("transport_a"), 29 + 5, "{block}");
        assert_eq!(len("transport_b"), 29 + 2, "{block}");
    }
    for block in ["transcript-cookie", "transcript-code"] {
        assert_eq!(value(block, "cookie_reply").len() / 2, 62, "{block}");
    }
}

#[test]
fn every_vector_block_is_checked() {
    let all = DOC.matches("```secure-vectors ").count();
    assert_eq!(
        all, 7,
        "a vector block was added or removed: update this test"
    );
}

/// The document is enough: an implementation written from section 9 alone, in Python,
/// with other libraries (noiseprotocol, cryptography, PyNaCl, magic-wormhole's spake2),
/// rebuilds the pinned (ChaCha20-Poly1305 and AES-256-GCM), cookie and invitation-code
/// transcripts byte for byte. Installs the packages
/// if it can; skips, saying why, if it cannot.
#[test]
fn an_independent_reading_of_the_document_reproduces_the_transcripts() {
    use std::process::Command;
    let dir = env!("CARGO_MANIFEST_DIR");
    let have = |python: &str| {
        Command::new(python)
            .args(["-c", "import noise, spake2, cryptography, nacl"])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    let python = "python3";
    if !have(python) {
        let installed = Command::new(python)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "noiseprotocol==0.3.1",
                "spake2==0.9",
                "cryptography",
                "pynacl",
            ])
            .output()
            .is_ok_and(|o| o.status.success());
        if !installed || !have(python) {
            eprintln!(
                "SKIPPED the independent Python check: python3 with noiseprotocol, spake2, cryptography and pynacl is not available"
            );
            return;
        }
    }
    let out = Command::new(python)
        .arg(format!("{dir}/kat/v3_transcript.py"))
        .arg(format!("{dir}/../../docs/PROTOCOL.md"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for line in [
        "transcript-pinned: all 7",
        "transcript-cookie: all 9",
        "transcript-code: all 9",
    ] {
        assert!(text.contains(line), "{text}");
    }
}
