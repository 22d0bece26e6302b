//! Who an endpoint is: a long-term X25519 key pair per installation, and the public
//! key's fingerprint that people read.
//!
//! The private key is made and stored by the program (this crate never touches a disk
//! or the operating system's RNG): it hands 32 random bytes to [`Identity::from_private`].
//! The handshake proves possession of the private key; a peer pins the public key after
//! a first contact and refuses any other key later.

use std::fmt;

use blake2::{Blake2s256, Digest};
use snow::params::DHChoice;
use snow::resolvers::{CryptoResolver, DefaultResolver};
use zeroize::Zeroizing;

use crate::wire::DH_LEN;

/// A public X25519 key: what identifies a peer.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PublicKey(pub [u8; DH_LEN]);

impl PublicKey {
    /// The key as 64 lowercase hex digits (what the known-peers file stores).
    #[must_use]
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Parses 64 hex digits.
    #[must_use]
    pub fn from_hex(s: &str) -> Option<Self> {
        let s = s.trim();
        if s.len() != 2 * DH_LEN || !s.is_ascii() {
            return None;
        }
        let mut key = [0u8; DH_LEN];
        for (i, byte) in key.iter_mut().enumerate() {
            *byte = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
        }
        Some(Self(key))
    }

    /// The fingerprint people compare and type: see [`Fingerprint`].
    #[must_use]
    pub fn fingerprint(&self) -> Fingerprint {
        let mut h = Blake2s256::new();
        h.update(b"udpchat/v2/fingerprint");
        h.update(self.0);
        let digest = h.finalize();
        let mut f = [0u8; 16];
        f.copy_from_slice(&digest[..16]);
        Fingerprint(f)
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.fingerprint())
    }
}

/// 128 bits of a hash of a public key, shown as eight groups of four hex digits
/// (`3f2a-91c0-5b7e-0d44-a1e9-7723-c0de-19f5`). Long enough that nobody can make a key
/// with a given fingerprint (a second preimage costs about 2¹²⁸ hashes); short enough to
/// compare by eye.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint(pub [u8; 16]);

impl Fingerprint {
    /// The first group only (`3f2a`), for a short mention in a status line.
    #[must_use]
    pub fn short(&self) -> String {
        format!("{:02x}{:02x}", self.0[0], self.0[1])
    }

    /// Whether `text` names this fingerprint: all of it, or a prefix of at least four hex
    /// digits, with or without the dashes, in any case.
    #[must_use]
    pub fn matches(&self, text: &str) -> bool {
        let wanted: String = text
            .chars()
            .filter(|c| *c != '-' && *c != ' ' && *c != ':')
            .map(|c| c.to_ascii_lowercase())
            .collect();
        let full: String = self.0.iter().map(|b| format!("{b:02x}")).collect();
        wanted.len() >= 4 && full.starts_with(&wanted)
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, pair) in self.0.chunks(2).enumerate() {
            if i > 0 {
                f.write_str("-")?;
            }
            write!(f, "{:02x}{:02x}", pair[0], pair[1])?;
        }
        Ok(())
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}

/// A long-term X25519 key pair. The private half is wiped from memory when dropped and
/// never shown by `Debug`.
#[derive(Clone)]
pub struct Identity {
    private: Zeroizing<[u8; DH_LEN]>,
    public: PublicKey,
}

impl Identity {
    /// The identity with this private key (32 random bytes from the operating system's
    /// CSPRNG when it is created; any 32 bytes are a valid X25519 private key).
    #[must_use]
    pub fn from_private(private: [u8; DH_LEN]) -> Self {
        let private = Zeroizing::new(private);
        let public = public_key(&private);
        Self { private, public }
    }

    /// The public key.
    #[must_use]
    pub fn public(&self) -> PublicKey {
        self.public
    }

    /// The private key, for the Noise handshake.
    pub(crate) fn private(&self) -> &[u8; DH_LEN] {
        &self.private
    }
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Identity({}, private <redacted>)",
            self.public.fingerprint()
        )
    }
}

/// The X25519 public key of a private key, computed with the same primitive the
/// handshake uses.
fn public_key(private: &[u8; DH_LEN]) -> PublicKey {
    let mut key = [0u8; DH_LEN];
    if let Some(mut dh) = DefaultResolver.resolve_dh(&DHChoice::Curve25519) {
        dh.set(private);
        key.copy_from_slice(&dh.pubkey()[..DH_LEN]);
    }
    PublicKey(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7748 section 6.1: Alice's private and public keys.
    #[test]
    fn public_key_is_x25519() {
        let private =
            hex::decode("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")
                .unwrap();
        let id = Identity::from_private(private.try_into().unwrap());
        assert_eq!(
            id.public().to_hex(),
            "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a"
        );
    }

    #[test]
    fn hex_round_trip_and_rejects() {
        let k = PublicKey([0xAB; 32]);
        assert_eq!(PublicKey::from_hex(&k.to_hex()), Some(k));
        assert_eq!(PublicKey::from_hex("ab"), None);
        assert_eq!(PublicKey::from_hex(&"zz".repeat(32)), None);
    }

    #[test]
    fn fingerprint_format_and_matching() {
        let f = PublicKey([0; 32]).fingerprint();
        let shown = f.to_string();
        // Computed independently: Python hashlib.blake2s(b"udpchat/v2/fingerprint" + bytes(32)).
        assert_eq!(shown, KAT_ZERO_FINGERPRINT);
        assert_eq!(shown.len(), 39);
        assert!(f.matches(&shown));
        assert!(f.matches(&shown[..4]));
        assert!(f.matches(&shown.to_uppercase().replace('-', "")));
        assert!(!f.matches(&shown[..3]), "too short to be meant");
        assert!(!f.matches("ffff"));
        assert_eq!(f.short(), &shown[..4]);
    }

    const KAT_ZERO_FINGERPRINT: &str = "baf7-35d0-1d5d-f8d6-8a63-1926-0ffc-8f94";

    #[test]
    fn debug_never_shows_the_private_key() {
        let id = Identity::from_private([0x42; 32]);
        let shown = format!("{id:?}");
        assert!(!shown.contains("4242"), "{shown}");
        assert!(shown.contains("redacted"));
    }
}
