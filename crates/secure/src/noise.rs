//! The Noise handshake through `snow`: one pattern, a seeded RNG for ephemeral keys, and
//! the pre-shared key that binds a passphrase and an invitation code into it.
//!
//! `Noise_XXpsk2_25519_ChaChaPoly_BLAKE2s`:
//!
//! ```text
//! -> e
//! <- e, ee, s, es, psk
//! -> s, se
//! ```
//!
//! Both sides prove their long-term (static) keys, which travel encrypted. The PSK is
//! mixed in at the end of message 2, so the responder proves it before the initiator
//! reveals anything, and the initiator proves it in message 3. The PSK is a hash of the
//! passphrase's key and the SPAKE2 key when there are ones, and a constant otherwise
//! (then the static keys alone authenticate, against the pinned keys).
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
use zeroize::{Zeroize, Zeroizing};

use crate::config::SessionCipher;
use crate::identity::Identity;
use crate::key::Psk;

/// The handshake pattern.
pub const PATTERN: &str = "Noise_XXpsk2_25519_ChaChaPoly_BLAKE2s";
/// The same with AES-256-GCM, for an initiation with
/// [`FLAG_AES_GCM`](crate::wire::FLAG_AES_GCM): on a processor with AES instructions it
/// costs a fraction of ChaCha20-Poly1305 per byte, which is most of a file transfer's
/// CPU (docs/BENCHMARKS.md), as QUIC and TLS prefer AES-GCM there.
pub const PATTERN_AES_GCM: &str = "Noise_XXpsk2_25519_AESGCM_BLAKE2s";
/// The Noise prologue; the initiation's header (type, version, flags, sender index) is
/// appended, so a header changed on the way makes the handshake fail.
pub const PROLOGUE: &[u8] = b"udpchat/v2";
/// Where the PSK is mixed in (after message 2's tokens).
pub(crate) const PSK_LOCATION: usize = 2;

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

/// Builds one side of a handshake with our static key; `header` is the initiation's
/// header, bound through the prologue (its flags name `cipher`, so a relay that changes
/// them makes the handshake fail). The PSK is set later ([`set_psk`]), once the SPAKE2
/// key is known.
pub(crate) fn build(
    initiator: bool,
    identity: &Identity,
    header: &[u8],
    seed: [u8; 32],
    cipher: SessionCipher,
) -> Result<HandshakeState, snow::Error> {
    let pattern = match cipher {
        SessionCipher::ChaChaPoly => PATTERN,
        SessionCipher::AesGcm => PATTERN_AES_GCM,
    };
    let params: NoiseParams = pattern.parse()?;
    let mut prologue = PROLOGUE.to_vec();
    prologue.extend_from_slice(header);
    let builder = Builder::with_resolver(params, Box::new(SeededResolver { seed }))
        .prologue(&prologue)?
        .local_private_key(identity.private())?;
    if initiator {
        builder.build_initiator()
    } else {
        builder.build_responder()
    }
}

/// The handshake's PSK: a hash of the passphrase's key and the SPAKE2 key, each marked
/// present or absent, so every combination gives a different key. With neither it is a
/// constant, and the static keys alone authenticate.
pub(crate) fn handshake_psk(
    passphrase: Option<&Psk>,
    pake: Option<&[u8; 32]>,
) -> Zeroizing<[u8; 32]> {
    let mut h = Blake2s256::new();
    h.update(b"udpchat/v2/psk");
    match passphrase {
        Some(psk) => {
            h.update([1]);
            h.update(psk.as_bytes());
        }
        None => h.update([0]),
    }
    match pake {
        Some(key) => {
            h.update([1]);
            h.update(key);
        }
        None => h.update([0]),
    }
    Zeroizing::new(h.finalize().into())
}

/// Sets the PSK of a handshake in progress.
pub(crate) fn set_psk(hs: &mut HandshakeState, psk: &[u8; 32]) -> Result<(), snow::Error> {
    hs.set_psk(PSK_LOCATION, psk)
}

/// The handshake hash of a finished handshake (32 bytes with BLAKE2s).
pub(crate) fn handshake_hash(hs: &HandshakeState) -> Option<[u8; 32]> {
    hs.get_handshake_hash().try_into().ok()
}

/// The peer's static public key, once the handshake has delivered it.
pub(crate) fn remote_static(hs: &HandshakeState) -> Option<[u8; 32]> {
    hs.get_remote_static()?.try_into().ok()
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

    /// Runs one whole handshake with fixed keys and payloads; returns the three messages
    /// and the handshake hash.
    fn run(psk: &[u8; 32]) -> (Vec<u8>, Vec<u8>, Vec<u8>, [u8; 32]) {
        let a = Identity::from_private([0xA1; 32]);
        let b = Identity::from_private([0xB2; 32]);
        let mut i = build(true, &a, &[0], [1; 32], SessionCipher::ChaChaPoly).unwrap();
        let mut r = build(false, &b, &[0], [2; 32], SessionCipher::ChaChaPoly).unwrap();
        set_psk(&mut i, psk).unwrap();
        set_psk(&mut r, psk).unwrap();
        let mut p = [0u8; 200];
        let mut m1 = vec![0u8; 200];
        let n = i.write_message(b"one", &mut m1).unwrap();
        m1.truncate(n);
        assert_eq!(r.read_message(&m1, &mut p).unwrap(), 3);
        let mut m2 = vec![0u8; 200];
        let n = r.write_message(b"two", &mut m2).unwrap();
        m2.truncate(n);
        assert_eq!(i.read_message(&m2, &mut p).unwrap(), 3);
        assert_eq!(remote_static(&i), Some(b.public().0));
        let mut m3 = vec![0u8; 200];
        let n = i.write_message(b"three", &mut m3).unwrap();
        m3.truncate(n);
        assert_eq!(r.read_message(&m3, &mut p).unwrap(), 5);
        assert_eq!(remote_static(&r), Some(a.public().0));
        let h = handshake_hash(&i).unwrap();
        assert_eq!(Some(h), handshake_hash(&r));
        (m1, m2, m3, h)
    }

    #[test]
    fn seeded_handshakes_are_reproducible_and_sized() {
        let psk = handshake_psk(None, None);
        let x = run(&psk);
        assert_eq!(x, run(&psk));
        // With a PSK modifier even message 1's payload has a tag (Noise mixes e into the
        // key in PSK handshakes).
        assert_eq!(x.0.len(), 32 + 3 + 16);
        assert_eq!(x.1.len(), 32 + 48 + 3 + 16);
        assert_eq!(x.2.len(), 48 + 5 + 16);
    }

    /// Known answer: the pattern, the prologue, the PSK derivation and the RNG plumbing
    /// must not change silently. Computed independently with Python's `noiseprotocol`
    /// package, ephemeral keys from the ChaCha20 keystream of the seeds (see
    /// `kat/noise_kat.py`).
    #[test]
    fn known_answer_transcript() {
        let psk = handshake_psk(None, None);
        let (m1, m2, m3, h) = run(&psk);
        let kat = format!(
            "{}\n{}\n{}\n{}",
            hex::encode(&m1),
            hex::encode(&m2),
            hex::encode(&m3),
            hex::encode(h)
        );
        assert_eq!(kat, KAT.trim());
    }

    const KAT: &str = "
d53b9fea1dd4d570dbe38180767c236456ca6633f103f1aa0637e7b613d2527435156f07433a6931790eea690f6ea31e3e79c6
c5c4aede10f07dc551ae692813183793bbcc96f56020f8e11dcb8e4824871338fe53cfed67c2c5d95befdebd9212af5f6f7a5542a2b16db5d8d7148a9903ea52c6b27f3ff8e2b4ccf243af5c703ea9fbcda5048cb6cbd63e75d6917f3990261ed0c27e
c5eb2e71d5f0d0a278024848d2237959b9691bab1b210f97c5b66ed1f4222a9476ecc25a7b944483876c7107e32ba2c7b1f1792b5ba5f24b2509d51a9d9f3af05b882b2b22
b8d88b2507d9488c16905f091adf5d4b7c555abdeb1212c16896037741c7a2c3
";

    #[test]
    fn psk_combinations_differ() {
        let pass = Psk::from_bytes([1; 32]);
        let pake = [2u8; 32];
        let keys = [
            handshake_psk(None, None),
            handshake_psk(Some(&pass), None),
            handshake_psk(None, Some(&pake)),
            handshake_psk(Some(&pass), Some(&pake)),
        ];
        for (i, a) in keys.iter().enumerate() {
            for b in &keys[i + 1..] {
                assert_ne!(**a, **b);
            }
        }
    }

    #[test]
    fn a_different_psk_fails_message_2() {
        let a = Identity::from_private([0xA1; 32]);
        let b = Identity::from_private([0xB2; 32]);
        let mut i = build(true, &a, &[0], [1; 32], SessionCipher::ChaChaPoly).unwrap();
        let mut r = build(false, &b, &[0], [2; 32], SessionCipher::ChaChaPoly).unwrap();
        set_psk(&mut i, &[1; 32]).unwrap();
        set_psk(&mut r, &[2; 32]).unwrap();
        let mut m = [0u8; 200];
        let mut p = [0u8; 200];
        let n = i.write_message(&[], &mut m).unwrap();
        r.read_message(&m[..n], &mut p).unwrap();
        let n = r.write_message(&[], &mut m).unwrap();
        assert!(i.read_message(&m[..n], &mut p).is_err());
    }

    #[test]
    fn prologue_flags_separate_handshakes() {
        let a = Identity::from_private([0xA1; 32]);
        let b = Identity::from_private([0xB2; 32]);
        let mut i = build(true, &a, &[0], [1; 32], SessionCipher::ChaChaPoly).unwrap();
        let mut r = build(false, &b, &[1], [2; 32], SessionCipher::ChaChaPoly).unwrap();
        set_psk(&mut i, &[1; 32]).unwrap();
        set_psk(&mut r, &[1; 32]).unwrap();
        let mut m = [0u8; 200];
        let mut p = [0u8; 200];
        let n = i.write_message(&[], &mut m).unwrap();
        // The first message's tag covers the prologue: the changed flag shows at once.
        assert!(r.read_message(&m[..n], &mut p).is_err());
    }
}
