//! Counters, and the size of the endpoint's state (which must stay bounded).

use std::collections::BTreeMap;

use crate::error::Reject;

/// Counters since the endpoint started.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SecureStats {
    /// Rejected datagrams by [`Reject::code`].
    pub rejected: BTreeMap<&'static str, u64>,
    /// Handshake initiations sent (each retry counts).
    pub handshakes_initiated: u64,
    /// Sessions established (as initiator, or as responder once confirmed).
    pub handshakes_completed: u64,
    /// Handshake responses sent.
    pub handshake_responses_sent: u64,
    /// Our initiations dropped because the peer's crossed them, won the tie-break and
    /// completed.
    pub initiations_abandoned: u64,
    /// Initiations that crossed ours and lost the tie-break (not answered).
    pub collisions: u64,
    /// Copies of handshake messages already handled (answered again or ignored).
    pub duplicate_handshakes: u64,
    /// Cookie replies sent instead of handshake work, while under load.
    pub cookie_replies_sent: u64,
    /// Cookie replies received and accepted for our initiation.
    pub cookies_received: u64,
    /// Handshakes answered for an open invitation (each one guess for its sender).
    pub code_attempts: u64,
    /// Contacts refused (unknown or changed key, code mismatch).
    pub refusals: u64,
    /// Transport packets sealed (including keepalives).
    pub transport_sent: u64,
    /// Transport packets authenticated and accepted (including keepalives).
    pub transport_received: u64,
    /// Empty transport packets sent to confirm a new session.
    pub keepalives_sent: u64,
    /// Bytes queued for sending while handling a datagram that was then rejected. Must
    /// stay 0: a rejected datagram gets no answer.
    pub bytes_sent_after_reject: u64,
    /// Cryptographic library failures that input cannot cause. Must stay 0.
    pub internal_errors: u64,
}

impl SecureStats {
    /// How many datagrams were rejected with this code.
    #[must_use]
    pub fn rejected(&self, code: &str) -> u64 {
        self.rejected.get(code).copied().unwrap_or(0)
    }

    /// How many datagrams were rejected in all.
    #[must_use]
    pub fn rejected_total(&self) -> u64 {
        self.rejected.values().sum()
    }

    pub(crate) fn count(&mut self, reject: &Reject) {
        *self.rejected.entry(reject.code()).or_insert(0) += 1;
    }
}

/// How much state the endpoint holds: every item is bounded whatever arrives.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StateSize {
    /// Established sessions (current and previous: at most 2).
    pub sessions: usize,
    /// Handshakes we answered and wait to see finished (at most
    /// [`MAX_PENDING`](crate::MAX_PENDING)).
    pub pending: usize,
    /// Whether an initiation of ours is in flight.
    pub initiating: bool,
    /// Sources (address and port) in the handshake rate limiter (at most 4096).
    pub rate_limiter_entries: usize,
    /// Datagrams queued and not yet taken by `poll_transmit`.
    pub queued_transmits: usize,
    /// Events queued and not yet taken by `poll_event`.
    pub queued_events: usize,
}
