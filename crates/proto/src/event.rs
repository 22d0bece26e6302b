//! What the session tells its user.

use std::time::Duration;

use crate::wire::{FileFrame, StableId};

use crate::error::RejectReason;

/// Local identifier of a message given to [`Session::send`](crate::Session::send). It
/// stays the same when the message is renumbered after a peer restart.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MessageId(pub u64);

/// Why a message was given up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailReason {
    /// It was sent `attempts` times without an acknowledgement.
    MaxRetries {
        /// Transmissions made.
        attempts: u32,
    },
    /// It was waiting behind a message that failed, or nobody answered for the connect
    /// timeout ([`Event::NoAnswer`]): the peer is unreachable.
    PeerUnreachable,
    /// The peer left ([`Event::PeerLeft`]) before acknowledging it: it was not shown.
    PeerLeft,
}

impl FailReason {
    /// Stable machine-readable name.
    pub fn code(&self) -> &'static str {
        match self {
            Self::MaxRetries { .. } => "max_retries",
            Self::PeerUnreachable => "peer_unreachable",
            Self::PeerLeft => "peer_left",
        }
    }
}

/// Whether the peer answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerState {
    /// Its epoch is not known yet: HELLOs are being sent, or (in a session without HELLO)
    /// the layer below has not authenticated the peer yet.
    Connecting,
    /// It answered recently.
    Online,
    /// It has not answered for the peer timeout, or a message ran out of retries.
    Unreachable,
}

impl PeerState {
    /// Stable machine-readable name.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Connecting => "connecting",
            Self::Online => "online",
            Self::Unreachable => "unreachable",
        }
    }
}

/// Something the user of the session should know, drained with
/// [`Session::poll_event`](crate::Session::poll_event).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// The peer's epoch is known; messages can flow.
    Connected {
        /// The peer's epoch.
        peer_epoch: u64,
    },
    /// The peer started again with a new epoch. Messages it had not acknowledged are
    /// sent again to the new run, renumbered from 0.
    PeerRestarted {
        /// The epoch of the run that ended.
        old_epoch: u64,
        /// The epoch of the new run.
        new_epoch: u64,
        /// Unacknowledged messages that will be sent again.
        resent: usize,
    },
    /// Nobody answered for [`Config::connect_timeout`](crate::Config::connect_timeout):
    /// the peer is probably not running, or not at that address/port, or UDP is blocked.
    ///
    /// The peer's epoch is still unknown. This event comes first; then every queued
    /// message is reported [`Failed`](Self::Failed) with
    /// [`FailReason::PeerUnreachable`], its text returned. The session keeps trying, and
    /// says this again `connect_timeout` later if nobody answers by then.
    NoAnswer {
        /// How long the session has waited for the peer so far: `connect_timeout` at the
        /// first verdict, a multiple of it at later ones.
        waited: Duration,
    },
    /// The peer became unreachable, or came back online.
    PeerStateChanged {
        /// The new state.
        state: PeerState,
    },
    /// A message from the peer, in order, exactly once.
    Received {
        /// Its sequence number in the peer's stream.
        seq: u64,
        /// Its identity across runs, if the sender gave one (a numbered text, from a
        /// peer with a store): the same across restarts of either side, so a receiver
        /// that remembers the last one it showed shows the message once.
        stable: Option<StableId>,
        /// Its text.
        text: String,
    },
    /// The peer's nickname from here on in its stream.
    PeerNick {
        /// The nickname.
        nick: String,
    },
    /// A message of ours went on the wire for the first time.
    Sent {
        /// Its id.
        id: MessageId,
        /// Its sequence number.
        seq: u64,
    },
    /// A message of ours was sent again because no acknowledgement came in time.
    Retransmit {
        /// Its id.
        id: MessageId,
        /// Its sequence number.
        seq: u64,
        /// Transmissions so far, this one included.
        attempt: u32,
    },
    /// The peer acknowledged a message of ours.
    Delivered {
        /// Its id.
        id: MessageId,
        /// Its sequence number.
        seq: u64,
        /// Transmissions it took.
        attempts: u32,
        /// Time from `send` to the acknowledgement.
        elapsed: Duration,
    },
    /// A message of ours was given up. Its text is returned so nothing is lost silently.
    Failed {
        /// Its id.
        id: MessageId,
        /// Its text.
        text: String,
        /// Why.
        reason: FailReason,
    },
    /// The peer's input ended: it will send nothing more (its DONE arrived, after every
    /// message it sent). It still acknowledges ours.
    PeerDone,
    /// The peer's run ended and said so (a CLOSE). Everything it had not acknowledged
    /// comes as [`Failed`](Self::Failed) with [`FailReason::PeerLeft`] after this. If it
    /// starts again, the session connects to the new run.
    PeerLeft {
        /// True when it left after a complete goodbye (both streams ended and
        /// confirmed); false when its person quit first.
        finished: bool,
    },
    /// A message already delivered arrived again; it was acknowledged, not shown.
    Duplicate {
        /// Its sequence number.
        seq: u64,
    },
    /// A frame of the peer's file transfer protocol (PROTOCOL.md §6c), in its place in
    /// the stream: the layer above keeps the transfers.
    File {
        /// The frame.
        frame: FileFrame,
    },
    /// A datagram was dropped without effect.
    Rejected {
        /// Why.
        reason: RejectReason,
    },
}
