//! What an endpoint is told at start.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use crate::identity::{Identity, PublicKey};
use crate::invite::InviteCode;
use crate::key::Psk;

/// Which peer keys the endpoint accepts without further proof.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Trust {
    /// Every pinned key (the program's known-peers file). A key in here is accepted from
    /// any address: a known contact that moved.
    pub pinned: BTreeSet<PublicKey>,
    /// The key pinned for the configured peer's address, if any: at that address, any
    /// other key is refused ([`Refusal::KeyChanged`](crate::Refusal::KeyChanged)) unless
    /// an invitation code proves it.
    pub expected: Option<PublicKey>,
}

/// Configuration of a [`SecureEndpoint`](crate::SecureEndpoint).
#[derive(Clone, Debug)]
pub struct SecureConfig {
    /// This installation's long-term key pair.
    pub identity: Identity,
    /// The key derived from the shared passphrase ([`derive_psk`](crate::derive_psk)).
    /// With it, only holders of the passphrase can make an initiation we answer, and a
    /// first contact is accepted on its strength.
    pub psk: Option<Psk>,
    /// An invitation code for a first contact (`udpchat invite` on one side, `--code` on
    /// the other). Used once: a contact that proves it is pinned, and the code is
    /// forgotten.
    pub code: Option<InviteCode>,
    /// The pinned keys.
    pub trust: Trust,
    /// The peer's address, if known. Without it the endpoint only answers handshakes and
    /// learns the address from the first one that completes (an open invitation). It
    /// changes later only when an authenticated packet arrives from a new address.
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
    /// Handshake initiations answered per second from one source address and port.
    pub handshake_rate_per_source: u32,
    /// Initiations from one source answered back to back before the rate applies.
    pub handshake_burst: u32,
    /// Initiations per second, from all sources together, answered without a cookie:
    /// above it the endpoint is under load, and an initiation must carry a valid MAC2.
    pub load_rate: u32,
}

impl SecureConfig {
    /// The defaults for this identity.
    #[must_use]
    pub fn new(identity: Identity) -> Self {
        Self {
            identity,
            psk: None,
            code: None,
            trust: Trust::default(),
            peer: None,
            rekey_after: Duration::from_secs(120),
            reject_after: Duration::from_secs(180),
            rekey_after_messages: 1 << 20,
            handshake_rate_per_source: 20,
            handshake_burst: 5,
            load_rate: 50,
        }
    }
}
