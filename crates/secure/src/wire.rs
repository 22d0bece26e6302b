//! The encrypted packet layout: four datagram types, their sizes, and the handshake
//! payloads. Normative description: the crate documentation (`lib.rs`).
//!
//! All integers are big-endian. The first byte tells the types apart, and none of them is
//! 0x55, the first byte of every plaintext protocol packet ("UC").

use std::time::Duration;

use crate::error::Reject;

/// A datagram never exceeds this many bytes, encrypted or not (the protocol's limit).
pub const MAX_DATAGRAM: usize = 1200;

/// Handshake initiation (`Noise_NNpsk0` with the passphrase key, or `Noise_NN`).
pub const TYPE_INITIATION: u8 = 0xE1;
/// Handshake response, to either kind of initiation.
pub const TYPE_RESPONSE: u8 = 0xE2;
/// Transport data: one inner (plaintext protocol) packet, encrypted.
pub const TYPE_TRANSPORT: u8 = 0xE3;
/// Rekey initiation without a passphrase: `Noise_NNpsk0` keyed with a secret of the
/// session being replaced, so that a man in the middle cannot step in at a rekey.
pub const TYPE_REKEY_INITIATION: u8 = 0xE4;

/// X25519 public key length.
pub const DH_LEN: usize = 32;
/// ChaCha20-Poly1305 tag length.
pub const TAG_LEN: usize = 16;

/// Transport header: type (1), receiver index (4), nonce (8).
pub const TRANSPORT_HEADER_LEN: usize = 13;
/// Bytes a transport datagram adds to the inner packet: header plus tag.
pub const OVERHEAD: usize = TRANSPORT_HEADER_LEN + TAG_LEN;
/// The largest inner packet that fits in one datagram: the plaintext protocol must keep
/// its packets at or below this size when it runs inside this layer.
pub const MAX_INNER: usize = MAX_DATAGRAM - OVERHEAD;

/// Handshake initiation payload: sender index (4), epoch (8), seconds (8), nanoseconds
/// (4), zero padding (16). The padding keeps every initiation larger than the response
/// it can earn.
pub const INIT_PAYLOAD_LEN: usize = 40;
/// Handshake response payload: sender index (4), epoch (8).
pub const RESPONSE_PAYLOAD_LEN: usize = 12;

/// Initiation datagram size with a passphrase: type, `e`, encrypted payload and tag.
pub const INITIATION_PSK_LEN: usize = 1 + DH_LEN + INIT_PAYLOAD_LEN + TAG_LEN;
/// Initiation datagram size without a passphrase: type, `e`, payload (in the clear: `NN`
/// has no key before the first DH).
pub const INITIATION_NN_LEN: usize = 1 + DH_LEN + INIT_PAYLOAD_LEN;
/// Rekey initiation datagram size: type, session index, `e`, encrypted payload and tag.
pub const REKEY_INITIATION_LEN: usize = 1 + 4 + DH_LEN + INIT_PAYLOAD_LEN + TAG_LEN;
/// Response datagram size: type, receiver index, `e`, encrypted payload and tag.
pub const RESPONSE_LEN: usize = 1 + 4 + DH_LEN + RESPONSE_PAYLOAD_LEN + TAG_LEN;

/// A wall-clock instant in the handshake, TAI64N-like: seconds and nanoseconds since the
/// Unix epoch. Ordered by time, which is how replayed initiations are recognised.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp {
    /// Whole seconds since 1970-01-01T00:00:00Z.
    pub secs: u64,
    /// Nanoseconds, below 10⁹.
    pub nanos: u32,
}

impl Timestamp {
    /// The timestamp of a duration since the Unix epoch.
    #[must_use]
    pub fn from_unix(d: Duration) -> Self {
        Self {
            secs: d.as_secs(),
            nanos: d.subsec_nanos(),
        }
    }

    /// Back to a duration since the Unix epoch.
    #[must_use]
    pub fn to_unix(self) -> Duration {
        Duration::new(self.secs, self.nanos)
    }
}

/// What an initiator says about itself, inside the (encrypted, with a key) first message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct InitPayload {
    /// The index the initiator wants transport packets addressed to.
    pub sender_index: u32,
    /// The initiator's epoch (its process run).
    pub epoch: u64,
    /// When the initiator made this message.
    pub timestamp: Timestamp,
}

impl InitPayload {
    pub(crate) fn encode(&self) -> [u8; INIT_PAYLOAD_LEN] {
        let mut b = [0u8; INIT_PAYLOAD_LEN];
        b[0..4].copy_from_slice(&self.sender_index.to_be_bytes());
        b[4..12].copy_from_slice(&self.epoch.to_be_bytes());
        b[12..20].copy_from_slice(&self.timestamp.secs.to_be_bytes());
        b[20..24].copy_from_slice(&self.timestamp.nanos.to_be_bytes());
        b
    }

    pub(crate) fn decode(b: &[u8]) -> Result<Self, Reject> {
        if b.len() != INIT_PAYLOAD_LEN || b[24..].iter().any(|&x| x != 0) {
            return Err(Reject::BadPayload);
        }
        let p = Self {
            sender_index: be_u32(&b[0..4]),
            epoch: be_u64(&b[4..12]),
            timestamp: Timestamp {
                secs: be_u64(&b[12..20]),
                nanos: be_u32(&b[20..24]),
            },
        };
        if p.sender_index == 0 || p.epoch == 0 || p.timestamp.nanos >= 1_000_000_000 {
            return Err(Reject::BadPayload);
        }
        Ok(p)
    }
}

/// What a responder says about itself, inside the (always encrypted) second message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ResponsePayload {
    /// The index the responder wants transport packets addressed to.
    pub sender_index: u32,
    /// The responder's epoch.
    pub epoch: u64,
}

impl ResponsePayload {
    pub(crate) fn encode(&self) -> [u8; RESPONSE_PAYLOAD_LEN] {
        let mut b = [0u8; RESPONSE_PAYLOAD_LEN];
        b[0..4].copy_from_slice(&self.sender_index.to_be_bytes());
        b[4..12].copy_from_slice(&self.epoch.to_be_bytes());
        b
    }

    pub(crate) fn decode(b: &[u8]) -> Result<Self, Reject> {
        if b.len() != RESPONSE_PAYLOAD_LEN {
            return Err(Reject::BadPayload);
        }
        let p = Self {
            sender_index: be_u32(&b[0..4]),
            epoch: be_u64(&b[4..12]),
        };
        if p.sender_index == 0 || p.epoch == 0 {
            return Err(Reject::BadPayload);
        }
        Ok(p)
    }
}

/// The fields of a transport datagram's header, and its ciphertext.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TransportHeader<'a> {
    pub receiver_index: u32,
    pub nonce: u64,
    pub ciphertext: &'a [u8],
}

impl<'a> TransportHeader<'a> {
    /// Splits a transport datagram (type byte already checked).
    pub(crate) fn parse(b: &'a [u8]) -> Result<Self, Reject> {
        if b.len() < OVERHEAD {
            return Err(Reject::TooShort { len: b.len() });
        }
        Ok(Self {
            receiver_index: be_u32(&b[1..5]),
            nonce: be_u64(&b[5..13]),
            ciphertext: &b[TRANSPORT_HEADER_LEN..],
        })
    }

    /// Writes the 13-byte header.
    pub(crate) fn write(receiver_index: u32, nonce: u64) -> [u8; TRANSPORT_HEADER_LEN] {
        let mut h = [0u8; TRANSPORT_HEADER_LEN];
        h[0] = TYPE_TRANSPORT;
        h[1..5].copy_from_slice(&receiver_index.to_be_bytes());
        h[5..13].copy_from_slice(&nonce.to_be_bytes());
        h
    }
}

/// Big-endian u32 from exactly four bytes (callers slice exactly).
pub(crate) fn be_u32(b: &[u8]) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(b);
    u32::from_be_bytes(a)
}

/// Big-endian u64 from exactly eight bytes (callers slice exactly).
pub(crate) fn be_u64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(b);
    u64::from_be_bytes(a)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(OVERHEAD, 29);
        assert_eq!(MAX_INNER, 1171);
        assert_eq!(INITIATION_PSK_LEN, 89);
        assert_eq!(INITIATION_NN_LEN, 73);
        assert_eq!(REKEY_INITIATION_LEN, 93);
        assert_eq!(RESPONSE_LEN, 65);
        // No amplification: a response is never larger than the initiation it answers,
        // and the confirming keepalive (OVERHEAD bytes) is smaller still.
        for init in [INITIATION_PSK_LEN, INITIATION_NN_LEN, REKEY_INITIATION_LEN] {
            assert!(RESPONSE_LEN <= init);
        }
        const { assert!(OVERHEAD < RESPONSE_LEN) };
    }

    #[test]
    fn type_bytes_differ_from_plaintext_magic() {
        for t in [
            TYPE_INITIATION,
            TYPE_RESPONSE,
            TYPE_TRANSPORT,
            TYPE_REKEY_INITIATION,
        ] {
            assert_ne!(t, b'U');
        }
    }

    #[test]
    fn init_payload_round_trip_and_validation() {
        let p = InitPayload {
            sender_index: 0x0102_0304,
            epoch: 0x1122_3344_5566_7788,
            timestamp: Timestamp {
                secs: 1_700_000_000,
                nanos: 999_999_999,
            },
        };
        let b = p.encode();
        assert_eq!(
            hex::encode(b),
            "01020304112233445566778800000000\
             6553f1003b9ac9ff00000000000000000000000000000000"
        );
        assert_eq!(InitPayload::decode(&b), Ok(p));
        let mut bad = b;
        bad[39] = 1; // padding must be zero
        assert_eq!(InitPayload::decode(&bad), Err(Reject::BadPayload));
        let mut bad = b;
        bad[20..24].copy_from_slice(&1_000_000_000u32.to_be_bytes());
        assert_eq!(InitPayload::decode(&bad), Err(Reject::BadPayload));
        let mut bad = b;
        bad[4..12].fill(0); // epoch 0
        assert_eq!(InitPayload::decode(&bad), Err(Reject::BadPayload));
        let mut bad = b;
        bad[0..4].fill(0); // index 0
        assert_eq!(InitPayload::decode(&bad), Err(Reject::BadPayload));
        assert_eq!(InitPayload::decode(&b[..39]), Err(Reject::BadPayload));
    }

    #[test]
    fn response_payload_round_trip_and_validation() {
        let p = ResponsePayload {
            sender_index: 7,
            epoch: 9,
        };
        assert_eq!(hex::encode(p.encode()), "000000070000000000000009");
        assert_eq!(ResponsePayload::decode(&p.encode()), Ok(p));
        assert_eq!(ResponsePayload::decode(&[0; 12]), Err(Reject::BadPayload));
        assert_eq!(ResponsePayload::decode(&[1; 11]), Err(Reject::BadPayload));
    }

    #[test]
    fn transport_header_round_trip() {
        let h = TransportHeader::write(0xDEAD_BEEF, 0x0102_0304_0506_0708);
        assert_eq!(hex::encode(h), "e3deadbeef0102030405060708");
        let mut d = h.to_vec();
        d.extend_from_slice(&[0; TAG_LEN]);
        let p = TransportHeader::parse(&d).unwrap();
        assert_eq!(p.receiver_index, 0xDEAD_BEEF);
        assert_eq!(p.nonce, 0x0102_0304_0506_0708);
        assert_eq!(p.ciphertext.len(), TAG_LEN);
        assert_eq!(
            TransportHeader::parse(&d[..28]),
            Err(Reject::TooShort { len: 28 })
        );
    }

    #[test]
    fn timestamps_order_by_time() {
        let a = Timestamp {
            secs: 5,
            nanos: 999_999_999,
        };
        let b = Timestamp { secs: 6, nanos: 0 };
        assert!(a < b);
        assert_eq!(Timestamp::from_unix(b.to_unix()), b);
    }
}
