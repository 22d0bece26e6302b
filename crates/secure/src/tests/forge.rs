//! Forging handshake initiations cheaply, for floods.
//!
//! Writing a `Noise_NNpsk0` first message through snow costs an X25519 key generation
//! (about 11 ms in an unoptimised build). The first message involves no DH at all, so
//! this writes it directly from the Noise symmetric-state rules with snow's own BLAKE2s
//! and ChaCha20-Poly1305, with any 32 bytes as `e`. A test checks it against snow.

use snow::params::{CipherChoice, HashChoice};
use snow::resolvers::{CryptoResolver, DefaultResolver};

use crate::noise::{PATTERN_PSK, PROLOGUE};

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
        s.h = s.digest(&[PATTERN_PSK.as_bytes()]);
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

/// Noise message 1 of `NNpsk0` (as snow would write it with ephemeral key `e_pub`).
pub(crate) fn nnpsk0_message1(
    psk: &[u8; 32],
    packet_type: u8,
    e_pub: &[u8; 32],
    payload: &[u8],
) -> Vec<u8> {
    let mut s = Symmetric::new();
    let mut prologue = PROLOGUE.to_vec();
    prologue.push(packet_type);
    s.mix_hash(&prologue);
    // psk: MixKeyAndHash.
    let (ck, temp_h, k) = s.hkdf(psk);
    s.ck = ck;
    s.mix_hash(&temp_h);
    s.k = k;
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

#[test]
fn forged_message_matches_snow() {
    let psk = crate::Psk::from_bytes([5; 32]);
    for ty in [
        crate::wire::TYPE_INITIATION,
        crate::wire::TYPE_REKEY_INITIATION,
    ] {
        let mut hs = crate::noise::build(true, Some(&psk), ty, [3; 32]).unwrap();
        let mut m = [0u8; 200];
        let n = hs.write_message(&[7; 40], &mut m).unwrap();
        let e: [u8; 32] = m[..32].try_into().unwrap();
        assert_eq!(
            nnpsk0_message1(psk.as_bytes(), ty, &e, &[7; 40]),
            m[..n].to_vec()
        );
    }
}
