//! Errors a caller branches on: why a datagram was rejected and why a message was refused.

use thiserror::Error;

/// Why a datagram could not be decoded. Every variant has a stable snake_case
/// [`code`](Self::code) for logs and the `rejected` JSON event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum DecodeError {
    /// Shorter than a header plus checksum.
    #[error("datagram too short ({len} bytes)")]
    TooShort {
        /// Length received.
        len: usize,
    },
    /// Longer than the 1200-byte limit.
    #[error("datagram too large ({len} bytes, limit 1200)")]
    TooLarge {
        /// Length received.
        len: usize,
    },
    /// Does not start with "UC".
    #[error("not a udpchat packet (bad magic)")]
    BadMagic,
    /// A version this implementation does not speak.
    #[error("unsupported protocol version {version}")]
    UnsupportedVersion {
        /// Version byte received.
        version: u8,
    },
    /// The CRC-32C trailer does not match: the datagram was damaged.
    #[error("bad checksum")]
    BadChecksum,
    /// A reserved flag bit is set.
    #[error("reserved flags set ({flags:#04x})")]
    ReservedFlags {
        /// Flags byte received.
        flags: u8,
    },
    /// The sender's epoch is 0, which no sender may use.
    #[error("sender epoch is zero")]
    ZeroEpoch,
    /// A frame type this version does not define.
    #[error("unknown frame type {frame_type:#04x}")]
    UnknownFrame {
        /// Type byte received.
        frame_type: u8,
    },
    /// A frame runs past the end of the packet.
    #[error("truncated frame")]
    TruncatedFrame,
    /// A DATA frame's length exceeds the text limit.
    #[error("message text too long ({len} bytes)")]
    TextTooLong {
        /// Length field received.
        len: usize,
    },
    /// Message text is not valid UTF-8.
    #[error("message text is not valid UTF-8")]
    InvalidUtf8,
    /// The packet has a header but no frame.
    #[error("packet has no frames")]
    NoFrames,
}

impl DecodeError {
    /// Stable machine-readable name.
    pub fn code(&self) -> &'static str {
        match self {
            Self::TooShort { .. } => "too_short",
            Self::TooLarge { .. } => "too_large",
            Self::BadMagic => "bad_magic",
            Self::UnsupportedVersion { .. } => "unsupported_version",
            Self::BadChecksum => "bad_checksum",
            Self::ReservedFlags { .. } => "reserved_flags",
            Self::ZeroEpoch => "zero_epoch",
            Self::UnknownFrame { .. } => "unknown_frame",
            Self::TruncatedFrame => "truncated_frame",
            Self::TextTooLong { .. } => "text_too_long",
            Self::InvalidUtf8 => "invalid_utf8",
            Self::NoFrames => "no_frames",
        }
    }
}

/// Why a well-formed or malformed datagram was not acted on by the session.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum RejectReason {
    /// It did not decode.
    #[error("{0}")]
    Malformed(#[from] DecodeError),
    /// It came from an address other than the peer's.
    #[error("datagram from an unknown address")]
    UnknownSource,
    /// It came from an earlier run of the peer, which has since restarted.
    #[error("datagram from an earlier run of the peer (stale epoch)")]
    StaleEpoch,
    /// It was addressed to another run of this program (we restarted). A session that
    /// sends HELLOs tells the sender our current epoch with one; a session without HELLO
    /// ([`Session::new_without_hello`](crate::Session::new_without_hello)) leaves that to
    /// the layer below and does not answer.
    #[error("datagram addressed to an earlier run of this program")]
    WrongDestinationEpoch,
    /// Addressed to this run, but from a run of the peer that the layer below has not
    /// authenticated (a session without HELLO, see
    /// [`Session::new_without_hello`](crate::Session::new_without_hello)). There only
    /// [`Session::adopt_peer`](crate::Session::adopt_peer) may say that the peer
    /// restarted, so such a datagram is dropped instead of being taken for a new run.
    #[error("datagram from a run of the peer not authenticated by the layer below")]
    UnknownEpoch,
    /// An acknowledgement for a message never sent.
    #[error("acknowledgement beyond anything sent")]
    AckBeyondSent,
}

impl RejectReason {
    /// Stable machine-readable name: the [`DecodeError`] code for a malformed datagram,
    /// else `unknown_source`, `stale_epoch`, `wrong_destination_epoch`, `unknown_epoch` or
    /// `ack_beyond_sent`.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Malformed(e) => e.code(),
            Self::UnknownSource => "unknown_source",
            Self::StaleEpoch => "stale_epoch",
            Self::WrongDestinationEpoch => "wrong_destination_epoch",
            Self::UnknownEpoch => "unknown_epoch",
            Self::AckBeyondSent => "ack_beyond_sent",
        }
    }
}

/// Why [`Session::send`](crate::Session::send) refused a message; the text is kept by
/// the caller and nothing was queued.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum SendError {
    /// The text does not fit in one datagram.
    #[error("message too long: {len} bytes, the limit is {max} bytes")]
    TooLong {
        /// Bytes of UTF-8 in the refused text.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Too many messages are waiting; try again once some are delivered.
    #[error("send queue full ({limit} messages waiting)")]
    QueueFull {
        /// The queue's capacity.
        limit: usize,
    },
    /// [`Session::finish`](crate::Session::finish) was called: the stream has ended.
    #[error("the conversation is ending; nothing more can be sent")]
    Finished,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_snake_case_and_distinct() {
        let all = [
            RejectReason::from(DecodeError::TooShort { len: 0 }),
            DecodeError::TooLarge { len: 0 }.into(),
            DecodeError::BadMagic.into(),
            DecodeError::UnsupportedVersion { version: 0 }.into(),
            DecodeError::BadChecksum.into(),
            DecodeError::ReservedFlags { flags: 1 }.into(),
            DecodeError::ZeroEpoch.into(),
            DecodeError::UnknownFrame { frame_type: 9 }.into(),
            DecodeError::TruncatedFrame.into(),
            DecodeError::TextTooLong { len: 2000 }.into(),
            DecodeError::InvalidUtf8.into(),
            DecodeError::NoFrames.into(),
            RejectReason::UnknownSource,
            RejectReason::StaleEpoch,
            RejectReason::WrongDestinationEpoch,
            RejectReason::UnknownEpoch,
            RejectReason::AckBeyondSent,
        ];
        let mut codes: Vec<_> = all.iter().map(RejectReason::code).collect();
        assert!(codes.iter().all(|c| c
            .chars()
            .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '_')));
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), all.len());
    }
}
