//! What an endpoint is told at start.

use std::net::SocketAddr;
use std::time::Duration;

use crate::key::Psk;

/// Configuration of a [`SecureEndpoint`](crate::SecureEndpoint).
#[derive(Clone, Debug)]
pub struct SecureConfig {
    /// The key derived from the shared passphrase ([`derive_psk`](crate::derive_psk)).
    /// `None`: encrypt anyway, with an unauthenticated ephemeral handshake whose short
    /// authentication string the two people compare by voice.
    pub psk: Option<Psk>,
    /// The peer's address, if known. Without it the endpoint only answers handshakes and
    /// learns the address from the first one that completes. It changes later only when
    /// an authenticated packet arrives from a new address.
    pub peer: Option<SocketAddr>,
    /// Start a new handshake once the current session is this old (WireGuard: 120 s). The
    /// side that responded to the current session waits 10 s longer, so the two sides do
    /// not routinely initiate at the same moment.
    pub rekey_after: Duration,
    /// Refuse to send or accept transport packets of a session this old (WireGuard: 180 s).
    /// Must exceed `rekey_after` by enough for a handshake to complete.
    pub reject_after: Duration,
    /// Start a new handshake after sending this many packets in one session.
    pub rekey_after_messages: u64,
    /// Handshake initiations answered per second from one source IP.
    pub handshake_rate_per_source: u32,
    /// Initiations from one source IP answered back to back before the rate applies.
    pub handshake_burst: u32,
    /// How much older than this endpoint's start an initiation's timestamp may be. An
    /// initiation made before this process started (less this skew) is a replay from an
    /// earlier run and is refused; a peer whose clock lags ours by more than this can
    /// still connect through our own initiation.
    pub max_clock_skew: Duration,
}

impl Default for SecureConfig {
    fn default() -> Self {
        Self {
            psk: None,
            peer: None,
            rekey_after: Duration::from_secs(120),
            reject_after: Duration::from_secs(180),
            rekey_after_messages: 1 << 20,
            handshake_rate_per_source: 20,
            handshake_burst: 5,
            max_clock_skew: Duration::from_secs(120),
        }
    }
}
