//! What the endpoint hands back: events, decrypted packets and datagrams to send.

use std::net::SocketAddr;

/// Something the user or the application layer should know about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SecureEvent {
    /// The first session with the peer is ready: [`seal`](crate::SecureEndpoint::seal)
    /// now works. Without a passphrase, show `sas` to the user to compare with the peer.
    Established {
        /// The peer's address.
        peer: SocketAddr,
        /// The peer's epoch (its process run), from the authenticated handshake.
        peer_epoch: u64,
        /// Short authentication string: 12 digits in groups of three.
        sas: String,
        /// The Noise handshake hash both sides share.
        handshake_hash: [u8; 32],
        /// Whether the handshake was authenticated by the shared passphrase.
        passphrase: bool,
    },
    /// A new session with the same peer run replaced the old one (time or message count).
    /// Without a passphrase the rekey is keyed by the old session, so the SAS compared
    /// before still holds.
    Rekeyed {
        /// The peer's epoch (unchanged).
        peer_epoch: u64,
        /// The new session's handshake hash.
        handshake_hash: [u8; 32],
    },
    /// The peer started again (a new epoch). Its old run's memory is gone; the
    /// application resets its stream state. Without a passphrase this handshake is a new,
    /// unauthenticated one: the user must compare the new `sas` again.
    PeerRestarted {
        /// The epoch of the run that ended.
        old_epoch: u64,
        /// The epoch of the new run.
        new_epoch: u64,
        /// The new short authentication string.
        sas: String,
        /// The new handshake hash.
        handshake_hash: [u8; 32],
    },
    /// Without a passphrase only: a new session with the same peer run that is **not**
    /// keyed by the previous one: a fresh `NN` handshake, made because the old session
    /// expired (the peer was unreachable for longer than `reject_after`), or forced by
    /// someone in the middle posing as the peer. Nothing proves it is the same person:
    /// show the new `sas` and ask the user to compare it again.
    Reverify {
        /// The peer's epoch (unchanged).
        peer_epoch: u64,
        /// The new short authentication string.
        sas: String,
        /// The new handshake hash.
        handshake_hash: [u8; 32],
    },
    /// An authenticated packet arrived from a new address (NAT rebinding, roaming); all
    /// packets now go there.
    PeerAddressChanged {
        /// Address used until now.
        old: SocketAddr,
        /// Address used from now on.
        new: SocketAddr,
    },
}

/// An authenticated, decrypted inner packet for the plaintext protocol layer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plaintext {
    /// Where the datagram came from (authenticated by the session, not by the address).
    pub from: SocketAddr,
    /// The inner packet, at most [`MAX_INNER`](crate::wire::MAX_INNER) bytes.
    pub bytes: Vec<u8>,
}

/// A datagram to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transmit {
    /// Destination.
    pub to: SocketAddr,
    /// The datagram, at most 1200 bytes.
    pub payload: Vec<u8>,
}
