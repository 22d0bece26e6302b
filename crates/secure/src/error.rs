//! Why a datagram was rejected, and why a packet could not be sealed.

use thiserror::Error;

/// Why [`SecureEndpoint::handle_datagram`](crate::SecureEndpoint::handle_datagram)
/// dropped a datagram. A rejected datagram has no effect beyond a counter: no reply, no
/// state. Every variant has a stable snake_case [`code`](Self::code) for logs and
/// statistics.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum Reject {
    /// Longer than the 1200-byte datagram limit.
    #[error("datagram too large ({len} bytes, limit 1200)")]
    TooLarge {
        /// Length received.
        len: usize,
    },
    /// Empty, or shorter than the smallest packet of its type.
    #[error("datagram too short ({len} bytes)")]
    TooShort {
        /// Length received.
        len: usize,
    },
    /// The first byte is not one of this layer's packet types (a plaintext udpchat packet,
    /// which starts with 0x55, lands here).
    #[error("not an encrypted udpchat packet (first byte {first_byte:#04x})")]
    NotSecure {
        /// The first byte received.
        first_byte: u8,
    },
    /// A packet of another version of the encrypted protocol: version 1's types, or a
    /// handshake packet whose version byte is not ours.
    #[error(
        "packet of encrypted protocol version {version}; this udpchat speaks version {}",
        crate::wire::VERSION
    )]
    OtherVersion {
        /// The version the packet says it is (1 for version 1's types).
        version: u8,
    },
    /// A handshake message of the wrong size for its type.
    #[error("handshake message of the wrong length ({len} bytes)")]
    BadLength {
        /// Length received.
        len: usize,
    },
    /// Reserved flag bits set in a handshake message.
    #[error("reserved handshake flags set ({flags:#04x})")]
    BadFlags {
        /// The flags byte.
        flags: u8,
    },
    /// No session or handshake of ours has the index the packet is addressed to.
    #[error("unknown receiver index")]
    UnknownIndex,
    /// An initiation whose MAC1 is wrong: the sender does not have our passphrase (or
    /// room), or does not know our public key while we only accept known contacts.
    /// Checked before any other work; nothing is answered.
    #[error("handshake not authenticated (another passphrase or room, or an unexpected contact)")]
    BadMac1,
    /// Authentication failed: wrong key, damaged, forged or reflected.
    #[error("authentication failed")]
    BadMac,
    /// A handshake payload that authenticated but breaks the format (a zero epoch or
    /// index, padding not zero, a malformed SPAKE2 message).
    #[error("malformed handshake payload")]
    BadPayload,
    /// A transport nonce already seen or older than the replay window.
    #[error("replayed packet")]
    Replay,
    /// A transport packet for a session older than `reject_after`.
    #[error("session expired")]
    Expired,
    /// Too many handshake initiations from this source address and port.
    #[error("handshake rate limit exceeded")]
    RateLimited,
    /// A handshake message carrying our own ephemeral key or epoch: our own packet sent
    /// back to us.
    #[error("reflected packet")]
    Reflected,
    /// The cryptographic library failed in a way input cannot cause (e.g. a rejected
    /// key). Counted, never expected.
    #[error("internal cryptographic error")]
    Internal,
}

impl Reject {
    /// Every code [`code`](Self::code) can return, in declaration order.
    pub const CODES: [&'static str; 15] = [
        "too_large",
        "too_short",
        "not_secure",
        "other_version",
        "bad_length",
        "bad_flags",
        "unknown_index",
        "bad_mac1",
        "bad_mac",
        "bad_payload",
        "replay",
        "expired",
        "rate_limited",
        "reflected",
        "internal",
    ];

    /// A stable snake_case code for logs, statistics and the `--json` output.
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            Self::TooLarge { .. } => "too_large",
            Self::TooShort { .. } => "too_short",
            Self::NotSecure { .. } => "not_secure",
            Self::OtherVersion { .. } => "other_version",
            Self::BadLength { .. } => "bad_length",
            Self::BadFlags { .. } => "bad_flags",
            Self::UnknownIndex => "unknown_index",
            Self::BadMac1 => "bad_mac1",
            Self::BadMac => "bad_mac",
            Self::BadPayload => "bad_payload",
            Self::Replay => "replay",
            Self::Expired => "expired",
            Self::RateLimited => "rate_limited",
            Self::Reflected => "reflected",
            Self::Internal => "internal",
        }
    }
}

/// Why [`SecureEndpoint::seal`](crate::SecureEndpoint::seal) produced no datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum SealError {
    /// No session is established (or the last one expired). A handshake is under way or
    /// was started by this call; queue the packet and try again after
    /// [`SecureEvent::Established`](crate::SecureEvent::Established).
    #[error("no secure session established yet")]
    NotEstablished,
    /// The inner packet exceeds [`MAX_INNER`](crate::wire::MAX_INNER) bytes.
    #[error(
        "inner packet too large ({len} bytes, limit {})",
        crate::wire::MAX_INNER
    )]
    TooLarge {
        /// Length given.
        len: usize,
    },
    /// The contact was refused (its key is unknown or changed, or the invitation code
    /// did not match): this endpoint makes no more sessions. See
    /// [`SecureEvent::Refused`](crate::SecureEvent::Refused).
    #[error("the contact was refused")]
    Refused,
    /// The cryptographic library refused to encrypt (not expected).
    #[error("internal cryptographic error")]
    Internal,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_and_listed() {
        let all = [
            Reject::TooLarge { len: 0 },
            Reject::TooShort { len: 0 },
            Reject::NotSecure { first_byte: 0 },
            Reject::OtherVersion { version: 1 },
            Reject::BadLength { len: 0 },
            Reject::BadFlags { flags: 0 },
            Reject::UnknownIndex,
            Reject::BadMac1,
            Reject::BadMac,
            Reject::BadPayload,
            Reject::Replay,
            Reject::Expired,
            Reject::RateLimited,
            Reject::Reflected,
            Reject::Internal,
        ];
        let codes: Vec<_> = all.iter().map(Reject::code).collect();
        assert_eq!(codes, Reject::CODES);
        let unique: std::collections::HashSet<_> = codes.iter().collect();
        assert_eq!(unique.len(), codes.len());
    }
}
