//! What the endpoint hands back: events, decrypted packets and datagrams to send.

use std::net::SocketAddr;
use std::time::Duration;

use crate::identity::PublicKey;

/// How the peer's key was found to be the right one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verification {
    /// The key was pinned at an earlier first contact (or earlier in this run).
    Pinned,
    /// This first contact proved the invitation code (a PAKE): pin the key now.
    Code,
    /// The handshake proved the shared passphrase; the key was not pinned yet: pin it.
    Passphrase,
    /// The key is our own: the same installation (the same home) on both ends.
    Own,
}

impl Verification {
    /// Stable lowercase name, for logs and JSON.
    #[must_use]
    pub fn code(self) -> &'static str {
        match self {
            Self::Pinned => "pinned",
            Self::Code => "code",
            Self::Passphrase => "passphrase",
            Self::Own => "own_key",
        }
    }
}

/// Why a contact was refused. Each is final for this endpoint: it makes no more
/// sessions (what a person has to do about it is not something retrying fixes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The key is not pinned, and neither an invitation code nor a passphrase proved it:
    /// a first contact needs one of them.
    UnknownContact,
    /// The peer presented another key than the one pinned for it (or used earlier in
    /// this run): someone in the middle, or the peer's installation was replaced.
    KeyChanged {
        /// The key we expected.
        expected: PublicKey,
    },
    /// The invitation code did not match (each failed attempt is one guess, so this is
    /// also what an attacker guessing the code looks like).
    CodeMismatch,
    /// We offered an invitation code but the peer has no invitation open (none, already
    /// used, or closed after too many attempts), and it is not a known contact.
    NoInvitation,
}

impl Refusal {
    /// Stable snake_case name, for logs, JSON and the close message.
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            Self::UnknownContact => "unknown_contact",
            Self::KeyChanged { .. } => "key_changed",
            Self::CodeMismatch => "code_mismatch",
            Self::NoInvitation => "no_invitation",
        }
    }

    /// The byte that names the reason in a close message.
    pub(crate) fn wire(&self) -> u8 {
        match self {
            Self::UnknownContact => 1,
            Self::KeyChanged { .. } => 2,
            Self::CodeMismatch => 3,
            Self::NoInvitation => 4,
        }
    }
}

/// Why the peer refused us, as its close message says (authenticated under the session
/// it closed, so only the peer can say it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerRefusal {
    /// We are not one of its known contacts, and we proved no code or passphrase.
    UnknownContact,
    /// It has another key pinned for us.
    KeyChanged,
    /// We offered an invitation code, but it had no invitation open and does not know us.
    NoInvitation,
    /// A reason this version does not know.
    Other(u8),
}

impl PeerRefusal {
    pub(crate) fn from_wire(b: u8) -> Self {
        match b {
            1 => Self::UnknownContact,
            2 => Self::KeyChanged,
            4 => Self::NoInvitation,
            other => Self::Other(other),
        }
    }

    /// Stable snake_case name.
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            Self::UnknownContact => "unknown_contact",
            Self::KeyChanged => "key_changed",
            Self::NoInvitation => "no_invitation",
            Self::Other(_) => "other",
        }
    }
}

/// Something the user or the application layer should know about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SecureEvent {
    /// The first session with the peer is ready: [`seal`](crate::SecureEndpoint::seal)
    /// now works.
    Established {
        /// The peer's address.
        peer: SocketAddr,
        /// The peer's epoch (its process run), from the authenticated handshake.
        peer_epoch: u64,
        /// The peer's long-term public key.
        peer_key: PublicKey,
        /// How the key was verified.
        verified: Verification,
        /// The key was not pinned before: the program should pin it now (first contact
        /// by code or passphrase). The endpoint already trusts it for the rest of the run.
        new_contact: bool,
        /// The round trip the handshake measured, if its first message was sent once
        /// (Karn's rule): the protocol's first RTT sample.
        rtt: Option<Duration>,
    },
    /// A new session with the same peer run replaced the old one (time or message count).
    Rekeyed {
        /// The peer's epoch (unchanged).
        peer_epoch: u64,
        /// The handshake's round trip, when measurable.
        rtt: Option<Duration>,
    },
    /// The peer started again (a new epoch) with the same key. Its old run's memory is
    /// gone; the application resets its stream state. Nothing needs comparing.
    PeerRestarted {
        /// The epoch of the run that ended.
        old_epoch: u64,
        /// The epoch of the new run.
        new_epoch: u64,
        /// The handshake's round trip, when measurable.
        rtt: Option<Duration>,
    },
    /// An authenticated packet arrived from a new address (NAT rebinding, roaming); all
    /// packets now go there.
    PeerAddressChanged {
        /// Address used until now.
        old: SocketAddr,
        /// Address used from now on.
        new: SocketAddr,
    },
    /// We refused a contact. When it concerns our configured peer (or the peer we had),
    /// the endpoint stops: no session will be made.
    Refused {
        /// Where the handshake came from.
        peer: SocketAddr,
        /// The key it presented, when the handshake got that far.
        key: Option<PublicKey>,
        /// Why.
        reason: Refusal,
        /// Whether the endpoint stopped (false: a stranger knocked at an open
        /// invitation, or at a chat with someone else, and was turned away).
        fatal: bool,
    },
    /// The peer refused us (its authenticated close message). The endpoint stops.
    RefusedByPeer {
        /// Where it came from.
        peer: SocketAddr,
        /// Why, as the peer says.
        reason: PeerRefusal,
    },
    /// The open invitation was used up: either a first contact proved it (the code
    /// cannot be used again), or it answered [`MAX_CODE_ATTEMPTS`](crate::MAX_CODE_ATTEMPTS)
    /// attempts without success and was closed.
    InvitationClosed {
        /// Whether a contact proved the code (false: too many attempts failed).
        used: bool,
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

/// A datagram to send. The same shape as the protocol layer's `Transmit`, so a stack
/// of the two hands either on unchanged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transmit {
    /// Destination.
    pub destination: SocketAddr,
    /// The datagram, at most 1200 bytes.
    pub payload: Vec<u8>,
}
