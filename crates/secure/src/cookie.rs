//! MAC1, MAC2 and cookies: what an initiation must show before a responder spends any
//! Diffie–Hellman work on it (after WireGuard, whitepaper section 5.4.4 and 5.4.7).
//!
//! - **MAC1** is keyed by something the genuine initiator knows: the passphrase's key,
//!   or the responder's public key once it is pinned. A host that only knows the two
//!   addresses cannot produce it, so its initiations cost one keyed hash each and are
//!   never answered. First contacts by invitation code use a public MAC1 key; only an
//!   endpoint that can accept a first contact accepts it.
//! - **MAC2** proves the initiator receives at its address. A responder under load
//!   answers an initiation without a valid MAC2 with a *cookie reply* (smaller than the
//!   initiation, no DH), carrying a cookie bound to the source address and port; the
//!   initiator sends the initiation again with MAC2 keyed by it. Spoofed initiations
//!   never see the cookie, so a flood from spoofed sources costs the responder one hash
//!   and one small reply each, and cannot lock the real peer out.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use blake2::digest::consts::U16;
use blake2::digest::{KeyInit, Mac};
use blake2::{Blake2s256, Blake2sMac, Digest};
use chacha20poly1305::aead::{Aead, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand_chacha::rand_core::RngCore;
use rand_chacha::ChaCha20Rng;
use zeroize::Zeroizing;

use crate::identity::PublicKey;
use crate::key::Psk;
use crate::wire::{COOKIE_NONCE_LEN, MAC_LEN, TAG_LEN};

/// A cookie secret is replaced this often; cookies made with the one before stay valid
/// until the next change, so a cookie is good for at least this long.
pub const COOKIE_SECRET_LIFETIME: Duration = Duration::from_secs(120);

/// An initiator uses a cookie for this long after receiving it.
pub(crate) const COOKIE_LIFETIME: Duration = Duration::from_secs(110);

/// What keys MAC1.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Mac1Key<'a> {
    /// The passphrase's key: with a passphrase, nothing else is accepted.
    Passphrase(&'a Psk),
    /// The responder's public key, known to an initiator that pinned it.
    Static(&'a PublicKey),
    /// A constant: a first contact, where the initiator knows neither.
    Open,
}

impl Mac1Key<'_> {
    /// The 32-byte key MAC1 is computed with.
    pub(crate) fn derive(self) -> Zeroizing<[u8; 32]> {
        let mut h = Blake2s256::new();
        match self {
            Self::Passphrase(psk) => {
                h.update(b"udpchat/v2/mac1/passphrase");
                h.update(psk.as_bytes());
            }
            Self::Static(key) => {
                h.update(b"udpchat/v2/mac1/static");
                h.update(key.0);
            }
            Self::Open => h.update(b"udpchat/v2/mac1/open"),
        }
        Zeroizing::new(h.finalize().into())
    }
}

/// Keyed BLAKE2s with a 16-byte output (MAC1, MAC2, cookies).
pub(crate) fn mac(key: &[u8], data: &[u8]) -> [u8; MAC_LEN] {
    let Ok(mut m) = <Blake2sMac<U16> as KeyInit>::new_from_slice(key) else {
        return [0; MAC_LEN];
    };
    Mac::update(&mut m, data);
    m.finalize().into_bytes().into()
}

/// The key that seals a cookie reply: derived from the MAC1 key the initiation used, so
/// the initiator can open it and a bystander who does not know the MAC1 key cannot.
fn reply_key(mac1_key: &[u8; 32]) -> Zeroizing<[u8; 32]> {
    let mut h = Blake2s256::new();
    h.update(b"udpchat/v2/cookie");
    h.update(mac1_key);
    Zeroizing::new(h.finalize().into())
}

/// Seals a cookie for the initiation whose MAC1 was `mac1` (the associated data, so the
/// reply cannot be used for another initiation).
pub(crate) fn seal_cookie(
    mac1_key: &[u8; 32],
    nonce: &[u8; COOKIE_NONCE_LEN],
    cookie: &[u8; MAC_LEN],
    mac1: &[u8; MAC_LEN],
) -> Option<[u8; MAC_LEN + TAG_LEN]> {
    let key = reply_key(mac1_key);
    let aead = XChaCha20Poly1305::new_from_slice(key.as_ref()).ok()?;
    let sealed = aead
        .encrypt(
            XNonce::from_slice(nonce),
            Payload {
                msg: cookie,
                aad: mac1,
            },
        )
        .ok()?;
    sealed.try_into().ok()
}

/// Opens a cookie reply to our initiation (MAC1 `mac1`, keyed with `mac1_key`).
pub(crate) fn open_cookie(
    mac1_key: &[u8; 32],
    nonce: &[u8; COOKIE_NONCE_LEN],
    sealed: &[u8],
    mac1: &[u8; MAC_LEN],
) -> Option<[u8; MAC_LEN]> {
    let key = reply_key(mac1_key);
    let aead = XChaCha20Poly1305::new_from_slice(key.as_ref()).ok()?;
    let cookie = aead
        .decrypt(
            XNonce::from_slice(nonce),
            Payload {
                msg: sealed,
                aad: mac1,
            },
        )
        .ok()?;
    cookie.try_into().ok()
}

/// The responder's rotating cookie secrets.
pub(crate) struct CookieSecrets {
    current: Zeroizing<[u8; 32]>,
    previous: Option<Zeroizing<[u8; 32]>>,
    changed: Instant,
}

impl CookieSecrets {
    pub(crate) fn new(now: Instant, rng: &mut ChaCha20Rng) -> Self {
        Self {
            current: fresh(rng),
            previous: None,
            changed: now,
        }
    }

    /// Replaces the secret when it is old enough.
    fn rotate(&mut self, now: Instant, rng: &mut ChaCha20Rng) {
        if now.saturating_duration_since(self.changed) >= COOKIE_SECRET_LIFETIME {
            let old = std::mem::replace(&mut self.current, fresh(rng));
            self.previous = Some(old);
            self.changed = now;
        }
    }

    /// The cookie for a source address and port.
    pub(crate) fn cookie(
        &mut self,
        now: Instant,
        rng: &mut ChaCha20Rng,
        from: SocketAddr,
    ) -> [u8; MAC_LEN] {
        self.rotate(now, rng);
        mac(self.current.as_ref(), &address_bytes(from))
    }

    /// Whether `mac2` over `input` was made with a cookie we gave `from` (under the
    /// current or the previous secret).
    pub(crate) fn mac2_valid(&self, from: SocketAddr, input: &[u8], mac2: &[u8; MAC_LEN]) -> bool {
        if mac2.iter().all(|&b| b == 0) {
            return false;
        }
        let addr = address_bytes(from);
        std::iter::once(&self.current)
            .chain(self.previous.iter())
            .any(|secret| {
                let cookie = mac(secret.as_ref(), &addr);
                constant_time_eq(&mac(&cookie, input), mac2)
            })
    }
}

/// The bytes a cookie is bound to: the IP address (4 or 16 bytes) and the port.
fn address_bytes(addr: SocketAddr) -> Vec<u8> {
    let mut b = match addr.ip() {
        std::net::IpAddr::V4(ip) => ip.octets().to_vec(),
        std::net::IpAddr::V6(ip) => ip.octets().to_vec(),
    };
    b.extend_from_slice(&addr.port().to_be_bytes());
    b
}

fn fresh(rng: &mut ChaCha20Rng) -> Zeroizing<[u8; 32]> {
    let mut s = Zeroizing::new([0u8; 32]);
    rng.fill_bytes(s.as_mut());
    s
}

/// Compares two MACs without an early exit.
pub(crate) fn constant_time_eq(a: &[u8; MAC_LEN], b: &[u8; MAC_LEN]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::rand_core::SeedableRng;

    #[test]
    fn keyed_blake2s_known_answer() {
        // Python: hashlib.blake2s(b"abc", key=bytes(range(32)), digest_size=16).hexdigest()
        let key: Vec<u8> = (0..32).collect();
        assert_eq!(hex::encode(mac(&key, b"abc")), KAT_MAC);
    }

    const KAT_MAC: &str = "61ba5f165c194692e09d12520cc4c74a";

    #[test]
    fn mac1_keys_differ_by_kind() {
        let psk = Psk::from_bytes([1; 32]);
        let key = PublicKey([1; 32]);
        let a = Mac1Key::Passphrase(&psk).derive();
        let b = Mac1Key::Static(&key).derive();
        let c = Mac1Key::Open.derive();
        assert_ne!(*a, *b);
        assert_ne!(*b, *c);
    }

    #[test]
    fn cookies_bind_address_and_port_and_survive_one_rotation() {
        let t0 = Instant::now();
        let mut rng = ChaCha20Rng::from_seed([3; 32]);
        let mut secrets = CookieSecrets::new(t0, &mut rng);
        let a: SocketAddr = "192.0.2.1:12000".parse().unwrap();
        let b: SocketAddr = "192.0.2.1:12001".parse().unwrap();
        let cookie = secrets.cookie(t0, &mut rng, a);
        let mac2 = mac(&cookie, b"initiation");
        assert!(secrets.mac2_valid(a, b"initiation", &mac2));
        assert!(!secrets.mac2_valid(b, b"initiation", &mac2), "another port");
        assert!(!secrets.mac2_valid(a, b"other", &mac2));
        assert!(!secrets.mac2_valid(a, b"initiation", &[0; 16]));
        // One rotation later the old cookie still works; two, and it does not.
        let t1 = t0 + COOKIE_SECRET_LIFETIME;
        let _ = secrets.cookie(t1, &mut rng, b);
        assert!(secrets.mac2_valid(a, b"initiation", &mac2));
        let _ = secrets.cookie(t1 + COOKIE_SECRET_LIFETIME, &mut rng, b);
        assert!(!secrets.mac2_valid(a, b"initiation", &mac2));
    }

    #[test]
    fn cookie_reply_opens_only_for_its_initiation() {
        let key = Mac1Key::Open.derive();
        let nonce = [7u8; COOKIE_NONCE_LEN];
        let cookie = [9u8; MAC_LEN];
        let mac1 = [1u8; MAC_LEN];
        let sealed = seal_cookie(&key, &nonce, &cookie, &mac1).unwrap();
        assert_eq!(open_cookie(&key, &nonce, &sealed, &mac1), Some(cookie));
        assert_eq!(open_cookie(&key, &nonce, &sealed, &[2u8; MAC_LEN]), None);
        let other = Mac1Key::Static(&PublicKey([5; 32])).derive();
        assert_eq!(open_cookie(&other, &nonce, &sealed, &mac1), None);
    }
}
