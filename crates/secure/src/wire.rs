//! The encrypted packet layouts (protocol version 3): five datagram types, each a view
//! over bytes with named field ranges (the smoltcp idiom), and the payloads carried
//! inside the Noise messages. Normative description: `docs/PROTOCOL.md`, section 9.
//!
//! All integers are big-endian. The first byte is the type; none of the types is 0x55,
//! the first byte of every plaintext protocol packet ("UC"), and none is one of version
//! 1's types (0xE1–0xE4), so a peer of the other version is recognised as such. Every
//! handshake packet carries the version in its second byte, so a later version can be
//! told apart too.

use std::ops::{Range, RangeInclusive};

use crate::error::Reject;

/// A field of a packet: the byte range it occupies.
pub type Field = Range<usize>;

/// The version of the encrypted protocol this crate speaks.
pub const VERSION: u8 = 3;

/// A datagram never exceeds this many bytes, encrypted or not (the protocol's limit).
pub const MAX_DATAGRAM: usize = 1200;

/// Handshake message 1 (`Noise_XXpsk2` → e), with its MACs.
pub const TYPE_INITIATION: u8 = 0xD1;
/// Handshake message 2 (← e, ee, s, es, psk).
pub const TYPE_RESPONSE: u8 = 0xD2;
/// Handshake message 3 (→ s, se).
pub const TYPE_FINISH: u8 = 0xD3;
/// A responder under load answers an initiation with a cookie instead of doing
/// Diffie–Hellman work (WireGuard's cookie reply).
pub const TYPE_COOKIE_REPLY: u8 = 0xD4;
/// Transport data: one inner packet (a protocol packet, a keepalive or a close),
/// encrypted.
pub const TYPE_TRANSPORT: u8 = 0xD5;
/// The types version 1 used (initiation, response, transport, rekey initiation).
pub const V1_TYPES: RangeInclusive<u8> = 0xE1..=0xE4;

/// Initiation and response flag: the message carries a SPAKE2 message (first contact by
/// an invitation code). The other bits are reserved and must be zero.
pub const FLAG_PAKE: u8 = 0x01;
/// Initiation flag: the session's cipher is AES-256-GCM
/// ([`PATTERN_AES_GCM`](crate::PATTERN_AES_GCM)) instead of ChaCha20-Poly1305. The
/// initiator chooses, by its processor; the flag is in the prologue, so a relay that
/// changes it makes the handshake fail.
pub const FLAG_AES_GCM: u8 = 0x02;

/// X25519 public key length.
pub const DH_LEN: usize = 32;
/// ChaCha20-Poly1305 tag length.
pub const TAG_LEN: usize = 16;
/// Length of MAC1, MAC2 and a cookie (keyed BLAKE2s with a 16-byte output).
pub const MAC_LEN: usize = 16;
/// Length of a symmetric SPAKE2 message on Ed25519: the side byte 'S' and a point.
pub const SPAKE_LEN: usize = 33;
/// Length of the cookie reply's XChaCha20-Poly1305 nonce.
pub const COOKIE_NONCE_LEN: usize = 24;

/// First byte of an inner packet that is a control message of this layer, not a
/// protocol packet (protocol packets start with 0x55; a keepalive is empty).
pub const INNER_CLOSE: u8 = 0x01;

/// Handshake message 1.
///
/// ```text
/// 0      type 0xD1
/// 1      version
/// 2      flags
/// 3..7   sender index: where the initiator wants packets addressed (non-zero)
/// 7..39  e: the initiator's ephemeral public key            } the Noise message
/// 39..100 payload, sealed under a key derived from e alone  }
/// 100..116 its tag                                          }
/// 116..132 mac1 over bytes 0..116
/// 132..148 mac2 over bytes 0..132 (zeros without a cookie)
/// ```
///
/// Bytes 0..7 are appended to the Noise prologue, so the tag of the first payload
/// authenticates them as part of the handshake.
pub mod initiation {
    use super::{payload1, Field, DH_LEN, MAC_LEN, TAG_LEN};
    /// Packet type.
    pub const TYPE: usize = 0;
    /// Protocol version.
    pub const VERSION: usize = 1;
    /// Flags ([`FLAG_PAKE`](super::FLAG_PAKE)).
    pub const FLAGS: usize = 2;
    /// The index the initiator wants packets addressed to.
    pub const SENDER_INDEX: Field = 3..7;
    /// The header that goes into the prologue.
    pub const HEADER: Field = 0..SENDER_INDEX.end;
    /// The Noise message: `e` and the payload with its tag. With a PSK modifier, Noise
    /// mixes `e` into the key, so even the first payload is sealed, under a key anyone
    /// can compute: it hides nothing, but it binds the prologue.
    pub const NOISE: Field = HEADER.end..HEADER.end + DH_LEN + payload1::LEN + TAG_LEN;
    /// The ephemeral key inside the Noise message.
    pub const EPHEMERAL: Field = NOISE.start..NOISE.start + DH_LEN;
    /// MAC1: proves the sender knows the responder's public key, or the passphrase.
    pub const MAC1: Field = NOISE.end..NOISE.end + MAC_LEN;
    /// MAC2: proves the sender receives at its address (a cookie); zeros without one.
    pub const MAC2: Field = MAC1.end..MAC1.end + MAC_LEN;
    /// Total length.
    pub const LEN: usize = MAC2.end;
}

/// The payload of message 1 (sealed under a key derived from `e` only: readable by
/// anyone, bound to the handshake).
pub mod payload1 {
    use super::{Field, SPAKE_LEN};
    /// The SPAKE2 message, or zeros without [`FLAG_PAKE`](super::FLAG_PAKE).
    pub const SPAKE: Field = 0..SPAKE_LEN;
    /// Zeros: they keep message 1 as large as the message 2 it can earn.
    pub const PADDING: Field = SPAKE.end..SPAKE.end + 28;
    /// Length.
    pub const LEN: usize = PADDING.end;
}

/// Handshake message 2.
///
/// ```text
/// 0      type 0xD2
/// 1      version
/// 2      flags
/// 3..7   receiver index (the initiator's sender index)
/// 7..40  the responder's SPAKE2 message, or zeros
/// 40..148 the Noise message: e (32), encrypted s (48), encrypted payload (28)
/// ```
pub mod response {
    use super::{payload2, Field, DH_LEN, SPAKE_LEN, TAG_LEN};
    /// Packet type.
    pub const TYPE: usize = 0;
    /// Protocol version.
    pub const VERSION: usize = 1;
    /// Flags.
    pub const FLAGS: usize = 2;
    /// Which initiation this answers.
    pub const RECEIVER_INDEX: Field = 3..7;
    /// The SPAKE2 message (outside the Noise message: its key is needed to read it).
    pub const SPAKE: Field = 7..7 + SPAKE_LEN;
    /// The Noise message.
    pub const NOISE: Field =
        SPAKE.end..SPAKE.end + DH_LEN + DH_LEN + TAG_LEN + payload2::LEN + TAG_LEN;
    /// Total length.
    pub const LEN: usize = NOISE.end;
}

/// The payload of message 2 (encrypted).
pub mod payload2 {
    use super::Field;
    /// The index the responder wants packets addressed to (non-zero).
    pub const SENDER_INDEX: Field = 0..4;
    /// The responder's epoch (its process run, non-zero).
    pub const EPOCH: Field = 4..12;
    /// Length.
    pub const LEN: usize = EPOCH.end;
}

/// Handshake message 3.
///
/// ```text
/// 0      type 0xD3
/// 1      version
/// 2..6   receiver index (the responder's sender index)
/// 6..78  the Noise message: encrypted s (48), encrypted payload (24)
/// ```
pub mod finish {
    use super::{payload3, Field, DH_LEN, TAG_LEN};
    /// Packet type.
    pub const TYPE: usize = 0;
    /// Protocol version.
    pub const VERSION: usize = 1;
    /// Which response this finishes.
    pub const RECEIVER_INDEX: Field = 2..6;
    /// The Noise message.
    pub const NOISE: Field = 6..6 + DH_LEN + TAG_LEN + payload3::LEN + TAG_LEN;
    /// Total length.
    pub const LEN: usize = NOISE.end;
}

/// The payload of message 3 (encrypted).
pub mod payload3 {
    use super::Field;
    /// The initiator's epoch (non-zero).
    pub const EPOCH: Field = 0..8;
    /// Length.
    pub const LEN: usize = EPOCH.end;
}

/// Cookie reply.
///
/// ```text
/// 0      type 0xD4
/// 1      version
/// 2..6   receiver index (the initiator's sender index)
/// 6..30  nonce
/// 30..62 the cookie, XChaCha20-Poly1305-sealed (16 + tag 16)
/// ```
pub mod cookie_reply {
    use super::{Field, COOKIE_NONCE_LEN, MAC_LEN, TAG_LEN};
    /// Packet type.
    pub const TYPE: usize = 0;
    /// Protocol version.
    pub const VERSION: usize = 1;
    /// Which initiation this answers.
    pub const RECEIVER_INDEX: Field = 2..6;
    /// Random nonce.
    pub const NONCE: Field = 6..6 + COOKIE_NONCE_LEN;
    /// The sealed cookie.
    pub const COOKIE: Field = NONCE.end..NONCE.end + MAC_LEN + TAG_LEN;
    /// Total length.
    pub const LEN: usize = COOKIE.end;
}

/// Transport data.
///
/// ```text
/// 0      type 0xD5
/// 1..5   receiver index
/// 5..13  nonce (per session and direction, from 0, never reused)
/// 13..   ChaCha20-Poly1305(inner packet) and its tag
/// ```
pub mod transport {
    use super::{Field, TAG_LEN};
    /// Packet type.
    pub const TYPE: usize = 0;
    /// The receiver's session index.
    pub const RECEIVER_INDEX: Field = 1..5;
    /// The AEAD nonce.
    pub const NONCE: Field = 5..13;
    /// Header length.
    pub const HEADER_LEN: usize = NONCE.end;
    /// Bytes a transport datagram adds to the inner packet.
    pub const OVERHEAD: usize = HEADER_LEN + TAG_LEN;
}

/// Bytes a transport datagram adds to the inner packet: header plus tag.
pub const OVERHEAD: usize = transport::OVERHEAD;
/// The largest inner packet that fits in one datagram: the plaintext protocol must keep
/// its packets at or below this size when it runs inside this layer.
pub const MAX_INNER: usize = MAX_DATAGRAM - OVERHEAD;

/// Big-endian u32 of a 4-byte field.
pub(crate) fn be_u32(b: &[u8], field: Field) -> u32 {
    let mut a = [0u8; 4];
    if let Some(src) = b.get(field) {
        if src.len() == 4 {
            a.copy_from_slice(src);
        }
    }
    u32::from_be_bytes(a)
}

/// Big-endian u64 of an 8-byte field.
pub(crate) fn be_u64(b: &[u8], field: Field) -> u64 {
    let mut a = [0u8; 8];
    if let Some(src) = b.get(field) {
        if src.len() == 8 {
            a.copy_from_slice(src);
        }
    }
    u64::from_be_bytes(a)
}

/// A fixed-size array copied out of a field (zeros if the field is out of range, which
/// the length checks of the views rule out).
pub(crate) fn array<const N: usize>(b: &[u8], field: Field) -> [u8; N] {
    let mut a = [0u8; N];
    if let Some(src) = b.get(field) {
        if src.len() == N {
            a.copy_from_slice(src);
        }
    }
    a
}

/// Checks a handshake packet's length and version.
fn check(bytes: &[u8], len: usize, version_at: usize) -> Result<(), Reject> {
    let version = bytes.get(version_at).copied().unwrap_or(0);
    if version != VERSION {
        return Err(Reject::OtherVersion { version });
    }
    if bytes.len() != len {
        return Err(Reject::BadLength { len: bytes.len() });
    }
    Ok(())
}

/// Checks a flags byte: only those in `allowed` may be set.
fn check_flags(flags: u8, allowed: u8) -> Result<u8, Reject> {
    if flags & !allowed != 0 {
        return Err(Reject::BadFlags { flags });
    }
    Ok(flags)
}

/// A view of handshake message 1.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Initiation<'a>(&'a [u8]);

impl<'a> Initiation<'a> {
    /// Checks length, version and flags.
    pub(crate) fn parse(bytes: &'a [u8]) -> Result<Self, Reject> {
        check(bytes, initiation::LEN, initiation::VERSION)?;
        check_flags(bytes[initiation::FLAGS], FLAG_PAKE | FLAG_AES_GCM)?;
        Ok(Self(bytes))
    }
    pub(crate) fn flags(&self) -> u8 {
        self.0[initiation::FLAGS]
    }
    pub(crate) fn header(&self) -> &'a [u8] {
        &self.0[initiation::HEADER]
    }
    pub(crate) fn sender_index(&self) -> u32 {
        be_u32(self.0, initiation::SENDER_INDEX)
    }
    pub(crate) fn noise(&self) -> &'a [u8] {
        &self.0[initiation::NOISE]
    }
    pub(crate) fn ephemeral(&self) -> [u8; DH_LEN] {
        array(self.0, initiation::EPHEMERAL)
    }
    /// The bytes MAC1 covers.
    pub(crate) fn mac1_input(&self) -> &'a [u8] {
        &self.0[..initiation::MAC1.start]
    }
    pub(crate) fn mac1(&self) -> [u8; MAC_LEN] {
        array(self.0, initiation::MAC1)
    }
    /// The bytes MAC2 covers.
    pub(crate) fn mac2_input(&self) -> &'a [u8] {
        &self.0[..initiation::MAC2.start]
    }
    pub(crate) fn mac2(&self) -> [u8; MAC_LEN] {
        array(self.0, initiation::MAC2)
    }
}

/// A view of handshake message 2.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Response<'a>(&'a [u8]);

impl<'a> Response<'a> {
    pub(crate) fn parse(bytes: &'a [u8]) -> Result<Self, Reject> {
        check(bytes, response::LEN, response::VERSION)?;
        // The responder takes the initiator's cipher: nothing to say about it.
        check_flags(bytes[response::FLAGS], FLAG_PAKE)?;
        Ok(Self(bytes))
    }
    pub(crate) fn flags(&self) -> u8 {
        self.0[response::FLAGS]
    }
    pub(crate) fn receiver_index(&self) -> u32 {
        be_u32(self.0, response::RECEIVER_INDEX)
    }
    pub(crate) fn spake(&self) -> &'a [u8] {
        &self.0[response::SPAKE]
    }
    pub(crate) fn noise(&self) -> &'a [u8] {
        &self.0[response::NOISE]
    }
}

/// A view of handshake message 3.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Finish<'a>(&'a [u8]);

impl<'a> Finish<'a> {
    pub(crate) fn parse(bytes: &'a [u8]) -> Result<Self, Reject> {
        check(bytes, finish::LEN, finish::VERSION)?;
        Ok(Self(bytes))
    }
    pub(crate) fn receiver_index(&self) -> u32 {
        be_u32(self.0, finish::RECEIVER_INDEX)
    }
    pub(crate) fn noise(&self) -> &'a [u8] {
        &self.0[finish::NOISE]
    }
}

/// A view of a cookie reply.
#[derive(Clone, Copy, Debug)]
pub(crate) struct CookieReply<'a>(&'a [u8]);

impl<'a> CookieReply<'a> {
    pub(crate) fn parse(bytes: &'a [u8]) -> Result<Self, Reject> {
        check(bytes, cookie_reply::LEN, cookie_reply::VERSION)?;
        Ok(Self(bytes))
    }
    pub(crate) fn receiver_index(&self) -> u32 {
        be_u32(self.0, cookie_reply::RECEIVER_INDEX)
    }
    pub(crate) fn nonce(&self) -> [u8; COOKIE_NONCE_LEN] {
        array(self.0, cookie_reply::NONCE)
    }
    pub(crate) fn sealed(&self) -> &'a [u8] {
        &self.0[cookie_reply::COOKIE]
    }
}

/// A view of a transport datagram.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Transport<'a>(&'a [u8]);

impl<'a> Transport<'a> {
    pub(crate) fn parse(bytes: &'a [u8]) -> Result<Self, Reject> {
        if bytes.len() < OVERHEAD {
            return Err(Reject::TooShort { len: bytes.len() });
        }
        Ok(Self(bytes))
    }
    pub(crate) fn receiver_index(&self) -> u32 {
        be_u32(self.0, transport::RECEIVER_INDEX)
    }
    pub(crate) fn nonce(&self) -> u64 {
        be_u64(self.0, transport::NONCE)
    }
    pub(crate) fn ciphertext(&self) -> &'a [u8] {
        &self.0[transport::HEADER_LEN..]
    }
    /// Writes the header of a transport datagram.
    pub(crate) fn header(receiver_index: u32, nonce: u64) -> [u8; transport::HEADER_LEN] {
        let mut h = [0u8; transport::HEADER_LEN];
        h[transport::TYPE] = TYPE_TRANSPORT;
        h[transport::RECEIVER_INDEX].copy_from_slice(&receiver_index.to_be_bytes());
        h[transport::NONCE].copy_from_slice(&nonce.to_be_bytes());
        h
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(OVERHEAD, 29);
        assert_eq!(MAX_INNER, 1171);
        assert_eq!(payload1::LEN, 61);
        assert_eq!(initiation::LEN, 148);
        assert_eq!(response::LEN, 148);
        assert_eq!(finish::LEN, 78);
        assert_eq!(cookie_reply::LEN, 62);
        // No amplification: nothing sent in answer to an initiation (a response, a
        // cookie reply) is larger than the initiation, and the keepalive or close sent
        // in answer to message 3 (at most OVERHEAD + 2 bytes) is smaller than it.
        const { assert!(response::LEN <= initiation::LEN) };
        const { assert!(cookie_reply::LEN < initiation::LEN) };
        const { assert!(OVERHEAD + 2 < finish::LEN) };
    }

    #[test]
    fn type_bytes_differ_from_plaintext_magic_and_from_version_1() {
        for t in [
            TYPE_INITIATION,
            TYPE_RESPONSE,
            TYPE_FINISH,
            TYPE_COOKIE_REPLY,
            TYPE_TRANSPORT,
        ] {
            assert_ne!(t, b'U');
            assert!(!V1_TYPES.contains(&t));
        }
    }

    #[test]
    fn views_check_version_length_and_flags() {
        let mut m = vec![0u8; initiation::LEN];
        m[0] = TYPE_INITIATION;
        m[1] = VERSION;
        assert!(Initiation::parse(&m).is_ok());
        m[1] = VERSION + 1;
        assert_eq!(
            Initiation::parse(&m).unwrap_err(),
            Reject::OtherVersion {
                version: VERSION + 1
            }
        );
        // The person is told which version this side speaks.
        let told = Reject::OtherVersion { version: 2 }.to_string();
        assert!(
            told.ends_with(&format!("speaks version {VERSION}")),
            "{told}"
        );
        m[1] = VERSION;
        m[2] = 0x80;
        assert_eq!(
            Initiation::parse(&m).unwrap_err(),
            Reject::BadFlags { flags: 0x80 }
        );
        m[2] = FLAG_PAKE;
        assert_eq!(Initiation::parse(&m).unwrap().flags(), FLAG_PAKE);
        assert_eq!(
            Initiation::parse(&m[..147]).unwrap_err(),
            Reject::BadLength { len: 147 }
        );
        let mut r = vec![0u8; response::LEN];
        r[1] = VERSION;
        r[3..7].copy_from_slice(&[1, 2, 3, 4]);
        assert_eq!(Response::parse(&r).unwrap().receiver_index(), 0x0102_0304);
        let mut f = vec![0u8; finish::LEN];
        f[1] = VERSION;
        f[2..6].copy_from_slice(&[0, 0, 0, 9]);
        assert_eq!(Finish::parse(&f).unwrap().receiver_index(), 9);
        assert_eq!(
            Finish::parse(&[TYPE_FINISH]).unwrap_err(),
            Reject::OtherVersion { version: 0 }
        );
    }

    #[test]
    fn transport_header_round_trip() {
        let h = Transport::header(0xDEAD_BEEF, 0x0102_0304_0506_0708);
        assert_eq!(hex::encode(h), "d5deadbeef0102030405060708");
        let mut d = h.to_vec();
        d.extend_from_slice(&[0; TAG_LEN]);
        let p = Transport::parse(&d).unwrap();
        assert_eq!(p.receiver_index(), 0xDEAD_BEEF);
        assert_eq!(p.nonce(), 0x0102_0304_0506_0708);
        assert_eq!(p.ciphertext().len(), TAG_LEN);
        assert_eq!(
            Transport::parse(&d[..28]).unwrap_err(),
            Reject::TooShort { len: 28 }
        );
    }
}
