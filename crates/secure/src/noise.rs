//! Noise handshakes through `snow`: the two patterns, a seeded RNG for ephemeral keys, and
//! what is derived from a finished handshake.
//!
//! Randomness comes from the caller (a seed), never from the operating system inside this
//! crate: each handshake gets its own ChaCha20 stream, seeded from the endpoint's. That
//! keeps the crate sans-IO and every test run byte-for-byte reproducible.

use blake2::{Blake2s256, Digest};
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;
use snow::params::{CipherChoice, DHChoice, HashChoice, NoiseParams};
use snow::resolvers::{CryptoResolver, DefaultResolver, RingResolver};
use snow::types::{Cipher, Dh, Hash, Random};
use snow::{Builder, HandshakeState};
use zeroize::Zeroize;

use crate::key::Psk;

/// The pattern with a passphrase, and for rekeys without one.
pub const PATTERN_PSK: &str = "Noise_NNpsk0_25519_ChaChaPoly_BLAKE2s";
/// The pattern for a first handshake without a passphrase.
pub const PATTERN_NN: &str = "Noise_NN_25519_ChaChaPoly_BLAKE2s";
/// The Noise prologue; the initiation's type byte is appended, so the two kinds of
/// handshake can never be confused with one another.
pub const PROLOGUE: &[u8] = b"udpchat/v1";

/// A ChaCha20 stream as snow's RNG.
struct SeededRandom(ChaCha20Rng);

impl Random for SeededRandom {
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), snow::Error> {
        self.0.fill_bytes(dest);
        Ok(())
    }
}

/// snow's default primitives, with the RNG replaced by a seeded one.
struct SeededResolver {
    seed: [u8; 32],
}

impl Drop for SeededResolver {
    fn drop(&mut self) {
        self.seed.zeroize();
    }
}

impl CryptoResolver for SeededResolver {
    fn resolve_rng(&self) -> Option<Box<dyn Random>> {
        Some(Box::new(SeededRandom(ChaCha20Rng::from_seed(self.seed))))
    }
    fn resolve_dh(&self, choice: &DHChoice) -> Option<Box<dyn Dh>> {
        DefaultResolver.resolve_dh(choice)
    }
    fn resolve_hash(&self, choice: &HashChoice) -> Option<Box<dyn Hash>> {
        DefaultResolver.resolve_hash(choice)
    }
    fn resolve_cipher(&self, choice: &CipherChoice) -> Option<Box<dyn Cipher>> {
        // ring's ChaCha20-Poly1305 (assembly, vectorised): the same algorithm and bytes
        // as the pure-Rust one, several times faster per datagram (docs/BENCHMARKS.md).
        RingResolver
            .resolve_cipher(choice)
            .or_else(|| DefaultResolver.resolve_cipher(choice))
    }
}

/// Builds one side of a handshake. With a key: `NNpsk0` keyed with it; without: `NN`.
/// `packet_type` is the initiation's type byte, bound through the prologue.
pub(crate) fn build(
    initiator: bool,
    psk: Option<&Psk>,
    packet_type: u8,
    seed: [u8; 32],
) -> Result<HandshakeState, snow::Error> {
    let pattern = if psk.is_some() {
        PATTERN_PSK
    } else {
        PATTERN_NN
    };
    let params: NoiseParams = pattern.parse()?;
    let mut prologue = PROLOGUE.to_vec();
    prologue.push(packet_type);
    let mut builder =
        Builder::with_resolver(params, Box::new(SeededResolver { seed })).prologue(&prologue)?;
    if let Some(psk) = psk {
        builder = builder.psk(0, psk.as_bytes())?;
    }
    if initiator {
        builder.build_initiator()
    } else {
        builder.build_responder()
    }
}

/// The handshake hash of a finished handshake (32 bytes with BLAKE2s).
pub(crate) fn handshake_hash(hs: &HandshakeState) -> Option<[u8; 32]> {
    hs.get_handshake_hash().try_into().ok()
}

/// A secret both ends of a finished handshake share and nobody else knows: a one-way
/// hash of the two transport keys. Keys the next handshake when there is no passphrase,
/// so a rekey is authenticated by the session it replaces.
pub(crate) fn chain_secret(hs: &mut HandshakeState) -> Psk {
    let (mut k1, mut k2) = hs.dangerously_get_raw_split();
    let mut h = Blake2s256::new();
    h.update(b"udpchat/v1/chain");
    h.update(k1);
    h.update(k2);
    k1.zeroize();
    k2.zeroize();
    Psk::from_bytes(h.finalize().into())
}

/// A fresh 32-byte seed from the endpoint's generator.
pub(crate) fn seed(rng: &mut ChaCha20Rng) -> [u8; 32] {
    let mut s = [0u8; 32];
    rng.fill_bytes(&mut s);
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(psk: Option<&Psk>, i_seed: u8, r_seed: u8) -> (Vec<u8>, Vec<u8>, [u8; 32]) {
        let mut i = build(true, psk, 0xE1, [i_seed; 32]).unwrap();
        let mut r = build(false, psk, 0xE1, [r_seed; 32]).unwrap();
        let mut m1 = vec![0u8; 200];
        let n1 = i.write_message(b"one", &mut m1).unwrap();
        m1.truncate(n1);
        let mut p = [0u8; 200];
        assert_eq!(r.read_message(&m1, &mut p).unwrap(), 3);
        let mut m2 = vec![0u8; 200];
        let n2 = r.write_message(b"two", &mut m2).unwrap();
        m2.truncate(n2);
        assert_eq!(i.read_message(&m2, &mut p).unwrap(), 3);
        let h = handshake_hash(&i).unwrap();
        assert_eq!(Some(h), handshake_hash(&r));
        assert_eq!(
            chain_secret(&mut i).as_bytes(),
            chain_secret(&mut r).as_bytes()
        );
        (m1, m2, h)
    }

    #[test]
    fn seeded_handshakes_are_reproducible() {
        let psk = Psk::from_bytes([9; 32]);
        let a = run(Some(&psk), 1, 2);
        let b = run(Some(&psk), 1, 2);
        assert_eq!(a, b);
        let c = run(Some(&psk), 1, 3);
        assert_ne!(a.1, c.1);
        assert_eq!(a.0.len(), 32 + 3 + 16);
        assert_eq!(run(None, 1, 2).0.len(), 32 + 3);
    }

    /// Known answer: Noise_NNpsk0 with fixed ephemeral keys (from the seeds), PSK 0x09…,
    /// prologue "udpchat/v1" ‖ 0xE1, payloads "one" and "two". Guards the pattern, the
    /// prologue and the RNG plumbing against silent change.
    #[test]
    fn known_answer_transcript() {
        let psk = Psk::from_bytes([9; 32]);
        let (m1, m2, h) = run(Some(&psk), 1, 2);
        assert_eq!(hex::encode(&m1), KAT_M1);
        assert_eq!(hex::encode(&m2), KAT_M2);
        assert_eq!(hex::encode(h), KAT_H);
    }

    // Computed independently with Python: the `noiseprotocol` package (0.3.1), with the
    // ephemeral private keys taken as the first 32 bytes of the ChaCha20 keystream
    // (`cryptography`, all-zero nonce and counter) under the keys [1; 32] and [2; 32].
    const KAT_M1: &str = "d53b9fea1dd4d570dbe38180767c236456ca6633f103f1aa0637e7b613d25274\
                          1438a50721d98acde6d7cf29c7c02e07fe63d4";
    const KAT_M2: &str = "c5c4aede10f07dc551ae692813183793bbcc96f56020f8e11dcb8e4824871338\
                          c91bb1a4b8805f1084fbdca4230cf0ad0a6b11";
    const KAT_H: &str = "5063ca76e3bd7d01905fe4d8368960aced143d3ab3c2d54d1d2ba7a6dc162e10";

    #[test]
    fn wrong_psk_fails_on_the_first_message() {
        let mut i = build(true, Some(&Psk::from_bytes([1; 32])), 0xE1, [1; 32]).unwrap();
        let mut r = build(false, Some(&Psk::from_bytes([2; 32])), 0xE1, [2; 32]).unwrap();
        let mut m1 = [0u8; 200];
        let n1 = i.write_message(&[], &mut m1).unwrap();
        let mut p = [0u8; 200];
        assert!(r.read_message(&m1[..n1], &mut p).is_err());
    }

    #[test]
    fn prologue_type_byte_separates_handshakes() {
        let psk = Psk::from_bytes([1; 32]);
        let mut i = build(true, Some(&psk), 0xE1, [1; 32]).unwrap();
        let mut r = build(false, Some(&psk), 0xE4, [2; 32]).unwrap();
        let mut m1 = [0u8; 200];
        let n1 = i.write_message(&[], &mut m1).unwrap();
        let mut p = [0u8; 200];
        assert!(r.read_message(&m1[..n1], &mut p).is_err());
    }
}
