//! Forging handshake initiations cheaply, for floods: what an attacker who knows the
//! MAC1 key (an open invitation, a known public key) can send.
//!
//! Writing a first message through snow costs an X25519 key generation. The first
//! message of `XXpsk2` involves no DH at all, so this writes it directly from the Noise
//! symmetric-state rules with snow's own BLAKE2s and ChaCha20-Poly1305, with any 32
//! bytes as `e`. A test checks it against snow.

use snow::params::{CipherChoice, HashChoice};
use snow::resolvers::{CryptoResolver, DefaultResolver};

use crate::cookie::{mac, Mac1Key};
use crate::noise::{PATTERN, PROLOGUE};
use crate::wire::{initiation, payload1, TYPE_INITIATION, VERSION};

struct Symmetric {
    hash: Box<dyn snow::types::Hash>,
    ck: [u8; 32],
    h: [u8; 32],
    k: [u8; 32],
}

impl Symmetric {
    fn new() -> Self {
        let hash = DefaultResolver.resolve_hash(&HashChoice::Blake2s).unwrap();
        let mut s = Self {
            hash,
            ck: [0; 32],
            h: [0; 32],
            k: [0; 32],
        };
        // The protocol name is longer than 32 bytes: h = HASH(name).
        s.h = s.digest(&[PATTERN.as_bytes()]);
        s.ck = s.h;
        s
    }
    fn digest(&mut self, parts: &[&[u8]]) -> [u8; 32] {
        self.hash.reset();
        for p in parts {
            self.hash.input(p);
        }
        let mut out = [0u8; 64];
        self.hash.result(&mut out);
        out[..32].try_into().unwrap()
    }
    fn mix_hash(&mut self, data: &[u8]) {
        self.h = self.digest(&[&self.h.clone(), data]);
    }
    fn hkdf(&mut self, ikm: &[u8]) -> ([u8; 32], [u8; 32], [u8; 32]) {
        let (mut o1, mut o2, mut o3) = ([0u8; 64], [0u8; 64], [0u8; 64]);
        let ck = self.ck;
        self.hash.hkdf(&ck, ikm, 3, &mut o1, &mut o2, &mut o3);
        let t = |o: [u8; 64]| -> [u8; 32] { o[..32].try_into().unwrap() };
        (t(o1), t(o2), t(o3))
    }
}

/// Noise message 1 of `XXpsk2` (as snow would write it with ephemeral key `e_pub`),
/// after the prologue `PROLOGUE ‖ header`.
pub(crate) fn xxpsk2_message1(header: &[u8], e_pub: &[u8; 32], payload: &[u8]) -> Vec<u8> {
    let mut s = Symmetric::new();
    let mut prologue = PROLOGUE.to_vec();
    prologue.extend_from_slice(header);
    s.mix_hash(&prologue);
    // e: MixHash, and MixKey because the pattern has a PSK.
    s.mix_hash(e_pub);
    let (ck, k, _) = s.hkdf(e_pub);
    s.ck = ck;
    s.k = k;
    // EncryptAndHash(payload) with nonce 0 and the hash as associated data.
    let mut cipher = DefaultResolver
        .resolve_cipher(&CipherChoice::ChaChaPoly)
        .unwrap();
    cipher.set(&s.k);
    let mut c = vec![0u8; payload.len() + 16];
    cipher.encrypt(0, &s.h, payload, &mut c);
    let mut msg = e_pub.to_vec();
    msg.extend_from_slice(&c);
    msg
}

/// A whole initiation datagram with a valid Noise message and MAC1 under `key`, from
/// any ephemeral key and sender index: what a flood made by someone who knows the MAC1
/// key looks like. MAC2 is zero (no cookie).
pub(crate) fn initiation(key: Mac1Key<'_>, e_pub: &[u8; 32], sender_index: u32) -> Vec<u8> {
    let mut header = vec![TYPE_INITIATION, VERSION, 0];
    header.extend_from_slice(&sender_index.to_be_bytes());
    let mut d = header.clone();
    d.extend_from_slice(&xxpsk2_message1(&header, e_pub, &[0u8; payload1::LEN]));
    let mac1 = mac(key.derive().as_ref(), &d);
    d.extend_from_slice(&mac1);
    d.extend_from_slice(&[0u8; 16]);
    assert_eq!(d.len(), initiation::LEN);
    d
}

#[test]
fn forged_message_matches_snow() {
    let id = crate::Identity::from_private([4; 32]);
    for header in [&[TYPE_INITIATION, VERSION, 0, 0, 0, 0, 1][..], &[1, 2, 3]] {
        let mut hs =
            crate::noise::build(true, &id, header, [3; 32], crate::SessionCipher::ChaChaPoly)
                .unwrap();
        let mut m = [0u8; 200];
        let n = hs.write_message(&[7; 61], &mut m).unwrap();
        let e: [u8; 32] = m[..32].try_into().unwrap();
        assert_eq!(xxpsk2_message1(header, &e, &[7; 61]), m[..n].to_vec());
    }
}
