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
    /// A handshake message of the wrong size for its type and this endpoint's mode.
    #[error("handshake message of the wrong length ({len} bytes)")]
    BadLength {
        /// Length received.
        len: usize,
    },
    /// A packet type this endpoint's mode never accepts (a passphrase-less rekey
    /// initiation at an endpoint with a passphrase).
    #[error("packet type not used in this mode")]
    UnexpectedType,
    /// No session or handshake of ours has the index the packet is addressed to.
    #[error("unknown receiver index")]
    UnknownIndex,
    /// Authentication failed: wrong key (passphrase), damaged, forged or reflected.
    #[error("authentication failed")]
    BadMac,
    /// A handshake payload that authenticated but breaks the format (a zero epoch or
    /// index, nanoseconds ≥ 10⁹, padding not zero). In `NN` mode initiations are not
    /// authenticated, so this can also be a forgery.
    #[error("malformed handshake payload")]
    BadPayload,
    /// A transport nonce already seen or older than the replay window, or an exact
    /// repeat of a handshake initiation still being answered.
    #[error("replayed packet")]
    Replay,
    /// A transport packet for a session older than `reject_after`.
    #[error("session expired")]
    Expired,
    /// Too many handshake initiations from this source address.
    #[error("handshake rate limit exceeded")]
    RateLimited,
    /// An initiation whose timestamp is not newer than the last one accepted, or older
    /// than this endpoint's start (less the allowed clock skew): a replayed handshake.
    #[error("stale handshake initiation")]
    StaleHandshake,
    /// A handshake message carrying our own epoch: our own packet sent back to us.
    #[error("reflected packet")]
    Reflected,
    /// A passphrase-less initiation from an address other than the configured peer's.
    #[error("handshake from an unknown source")]
    UnknownSource,
    /// A valid initiation that crossed our own (both sides initiated at once); ours has
    /// the lower ephemeral key, so ours proceeds and the peer answers it.
    #[error("simultaneous handshake: ours proceeds")]
    Collision,
    /// The cryptographic library failed in a way input cannot cause (e.g. a rejected
    /// key). Counted, never expected.
    #[error("internal cryptographic error")]
    Internal,
}

impl Reject {
    /// Every code [`code`](Self::code) can return, in declaration order.
    pub const CODES: [&'static str; 16] = [
        "too_large",
        "too_short",
        "not_secure",
        "bad_length",
        "unexpected_type",
        "unknown_index",
        "bad_mac",
        "bad_payload",
        "replay",
        "expired",
        "rate_limited",
        "stale_handshake",
        "reflected",
        "unknown_source",
        "collision",
        "internal",
    ];

    /// A stable snake_case code for logs, statistics and the `--json` output.
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            Self::TooLarge { .. } => "too_large",
            Self::TooShort { .. } => "too_short",
            Self::NotSecure { .. } => "not_secure",
            Self::BadLength { .. } => "bad_length",
            Self::UnexpectedType => "unexpected_type",
            Self::UnknownIndex => "unknown_index",
            Self::BadMac => "bad_mac",
            Self::BadPayload => "bad_payload",
            Self::Replay => "replay",
            Self::Expired => "expired",
            Self::RateLimited => "rate_limited",
            Self::StaleHandshake => "stale_handshake",
            Self::Reflected => "reflected",
            Self::UnknownSource => "unknown_source",
            Self::Collision => "collision",
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
            Reject::BadLength { len: 0 },
            Reject::UnexpectedType,
            Reject::UnknownIndex,
            Reject::BadMac,
            Reject::BadPayload,
            Reject::Replay,
            Reject::Expired,
            Reject::RateLimited,
            Reject::StaleHandshake,
            Reject::Reflected,
            Reject::UnknownSource,
            Reject::Collision,
            Reject::Internal,
        ];
        let codes: Vec<_> = all.iter().map(Reject::code).collect();
        assert_eq!(codes, Reject::CODES);
        let unique: std::collections::HashSet<_> = codes.iter().collect();
        assert_eq!(unique.len(), codes.len());
    }
}
