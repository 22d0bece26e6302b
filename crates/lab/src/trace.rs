//! The neutral trace of one run: what each of the two endpoints did, in time order.
//!
//! A [`Trace`] is a list of [`Event`]s, each with a time in microseconds since the start
//! of the run and, where it happened at one endpoint, the [`Side`]: `A` (drawn on the
//! left) or `B` (on the right). It knows nothing of sockets, the simulator or qlog: the
//! simulator and the binary produce it (through [`crate::qlog`] or directly), and every
//! picture in this crate is drawn from it alone.
//!
//! Datagrams are identified by a [`PacketId`]: one value per datagram put on the wire,
//! the same in the sender's [`EventKind::PacketSent`] and the receiver's
//! [`EventKind::PacketReceived`]. That is how a send is matched to its arrival, and a
//! send with no arrival is drawn as lost.

use std::fmt;

use serde::{Deserialize, Serialize};

/// One datagram on the wire: unique per send, shared by the send and its arrival(s).
///
/// A writer that traces each endpoint separately derives it from the datagram's bytes
/// (a hash), so both endpoints name the same datagram the same way without talking.
pub type PacketId = u64;

/// Which endpoint: `A` is the left timeline, `B` the right one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Side {
    /// The left endpoint (in a chat started by hand: the one that was started first).
    A,
    /// The right endpoint.
    B,
}

impl Side {
    /// The other endpoint: where a datagram sent by `self` arrives.
    pub fn other(self) -> Self {
        match self {
            Self::A => Self::B,
            Self::B => Self::A,
        }
    }

    /// `"A"` or `"B"`.
    pub fn name(self) -> &'static str {
        match self {
            Self::A => "A",
            Self::B => "B",
        }
    }

    /// 0 for `A`, 1 for `B`: an index into per-side arrays.
    pub fn index(self) -> usize {
        match self {
            Self::A => 0,
            Self::B => 1,
        }
    }

    /// Both sides, left to right.
    pub const BOTH: [Self; 2] = [Self::A, Self::B];
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Which timer an endpoint armed or saw fire.
///
/// Written as a plain string (`"retransmission"`, `"probe"`, `"ack"`, or any other name),
/// so a writer with a timer this crate does not know yet still round-trips.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub enum TimerKind {
    /// The retransmission timer (RTO): on expiry the oldest unacknowledged message is
    /// sent again.
    Retransmission,
    /// The tail-loss probe: sends the newest message again, before the RTO would.
    Probe,
    /// The delayed-ACK timer: on expiry the receiver sends the ACK it was holding.
    Ack,
    /// Any other timer, by its name.
    Other(String),
}

impl TimerKind {
    /// The name used in traces: `"retransmission"`, `"probe"`, `"ack"` or the other name.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Retransmission => "retransmission",
            Self::Probe => "probe",
            Self::Ack => "ack",
            Self::Other(name) => name,
        }
    }

    /// A short label for pictures: `"RTO"`, `"probe"`, `"ACK timer"` or the other name.
    pub fn short_label(&self) -> &str {
        match self {
            Self::Retransmission => "RTO",
            Self::Probe => "probe",
            Self::Ack => "ACK timer",
            Self::Other(name) => name,
        }
    }
}

impl From<String> for TimerKind {
    fn from(name: String) -> Self {
        match name.as_str() {
            "retransmission" => Self::Retransmission,
            "probe" => Self::Probe,
            "ack" => Self::Ack,
            _ => Self::Other(name),
        }
    }
}

impl From<TimerKind> for String {
    fn from(kind: TimerKind) -> Self {
        kind.as_str().to_owned()
    }
}

/// The reason for a drop that the sender inferred (it saw no acknowledgement in time),
/// as opposed to one the network or the receiver reported.
pub const REASON_LOST: &str = "lost";
/// The reason for a drop by the impairment (the simulator's link, or `--drop`/`--ack-drop`).
pub const REASON_SIMULATED_LOSS: &str = "simulated loss";

/// What happened, at one endpoint or on the link.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum EventKind {
    /// `side` put a datagram on the wire.
    PacketSent {
        /// The sender.
        side: Side,
        /// This datagram's id (see [`PacketId`]).
        packet_id: PacketId,
        /// What it carries, as a person reads it: `"DATA seq 3"`, `"ACK 4 +sack"`,
        /// `"HELLO"`. It is the arrow's label.
        summary: String,
        /// The message sequence numbers it carries (empty for a pure ACK or a HELLO).
        seqs: Vec<u64>,
        /// The cumulative acknowledgement it carries, if any (the next sequence number
        /// the sender of this datagram expects).
        ack: Option<u64>,
        /// Whether it carries a message sent before (a retransmission or a probe).
        retransmission: bool,
        /// Its size on the wire, in bytes (the UDP payload).
        bytes: u64,
    },
    /// `side` received the datagram `packet_id` (before any simulated loss is applied:
    /// a datagram the receiver's impairment dropped is a [`EventKind::PacketDropped`]
    /// instead).
    PacketReceived {
        /// The receiver.
        side: Side,
        /// The datagram's id, as in its [`EventKind::PacketSent`].
        packet_id: PacketId,
    },
    /// The datagram `packet_id` was dropped or taken for lost.
    ///
    /// Pictures draw a datagram as lost when it has no [`EventKind::PacketReceived`],
    /// whether or not a drop was reported; the drop only gives the reason. A drop of a
    /// datagram that did arrive (the sender took it for lost too early, a premature
    /// timeout) changes nothing in the pictures.
    PacketDropped {
        /// The datagram's id, as in its [`EventKind::PacketSent`].
        packet_id: PacketId,
        /// Why: [`REASON_SIMULATED_LOSS`], [`REASON_LOST`] (the sender's inference), or a
        /// receiver's rejection code such as `"bad_checksum"` or `"stale_epoch"`.
        reason: String,
    },
    /// `side` armed (or re-armed) a timer that expires at `expires_us`.
    TimerSet {
        /// The endpoint.
        side: Side,
        /// Which timer.
        timer: TimerKind,
        /// When it will fire unless re-armed or cancelled, in microseconds since the
        /// start of the run.
        expires_us: u64,
    },
    /// A timer of `side` fired (at the event's time).
    TimerFired {
        /// The endpoint.
        side: Side,
        /// Which timer.
        timer: TimerKind,
    },
    /// `side`'s recovery state changed. Each field is `None` when it did not change
    /// (or is not known): the last value given holds until the next one.
    Metrics {
        /// The endpoint.
        side: Side,
        /// The smoothed round-trip time, in microseconds.
        srtt_us: Option<u64>,
        /// The retransmission timeout, in microseconds.
        rto_us: Option<u64>,
        /// The congestion window, in **bytes** of DATA frames in flight (PROTOCOL.md §7,
        /// rule 9: NewReno as in RFC 9002 §7).
        cwnd_bytes: Option<u64>,
        /// The messages in flight: sent and not yet acknowledged, in **messages**.
        in_flight: Option<u64>,
    },
    /// `side`'s user was told that its message `seq` was delivered (acknowledged).
    Delivered {
        /// The endpoint whose message it was.
        side: Side,
        /// The message's sequence number.
        seq: u64,
        /// The message's text (may be empty when the writer does not keep it).
        text: String,
    },
    /// `side` showed the peer's message `seq` to its user.
    Shown {
        /// The endpoint that showed it.
        side: Side,
        /// The message's sequence number.
        seq: u64,
        /// The message's text.
        text: String,
    },
    /// A remark worth a line in the picture: a restart, an adopted epoch, a rejected
    /// datagram's explanation. `side` is `None` for a remark about the link.
    Note {
        /// The endpoint it concerns, if one.
        side: Option<Side>,
        /// The remark.
        text: String,
    },
}

impl EventKind {
    /// The endpoint this event happened at, when it has one (drops and link notes have
    /// none).
    pub fn side(&self) -> Option<Side> {
        match self {
            Self::PacketSent { side, .. }
            | Self::PacketReceived { side, .. }
            | Self::TimerSet { side, .. }
            | Self::TimerFired { side, .. }
            | Self::Metrics { side, .. }
            | Self::Delivered { side, .. }
            | Self::Shown { side, .. } => Some(*side),
            Self::Note { side, .. } => *side,
            Self::PacketDropped { .. } => None,
        }
    }

    /// Moves this event to `to` (used when merging two one-sided traces: each file's
    /// events belong to the side given by its position). Events without a side stay as
    /// they are.
    pub fn set_side(&mut self, to: Side) {
        match self {
            Self::PacketSent { side, .. }
            | Self::PacketReceived { side, .. }
            | Self::TimerSet { side, .. }
            | Self::TimerFired { side, .. }
            | Self::Metrics { side, .. }
            | Self::Delivered { side, .. }
            | Self::Shown { side, .. } => *side = to,
            Self::Note { side, .. } => {
                if side.is_some() {
                    *side = Some(to);
                }
            }
            Self::PacketDropped { .. } => {}
        }
    }
}

/// One thing that happened, and when.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Microseconds since the start of the run (virtual time in the simulator).
    pub time_us: u64,
    /// What happened.
    #[serde(flatten)]
    pub kind: EventKind,
}

/// The events of one run at both endpoints, in time order.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Trace {
    /// The events. Pictures expect them sorted by time ([`Trace::sort`]); events with
    /// equal times keep their order, which is the order they happened in.
    pub events: Vec<Event>,
}

impl Trace {
    /// An empty trace.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends an event at `time_us`.
    pub fn push(&mut self, time_us: u64, kind: EventKind) {
        self.events.push(Event { time_us, kind });
    }

    /// Sorts the events by time, keeping the order of events with equal times.
    pub fn sort(&mut self) {
        self.events.sort_by_key(|event| event.time_us);
    }

    /// This trace sorted by time: borrowed when it already is (the usual case), else a
    /// sorted copy. Every picture draws from it.
    pub fn sorted(&self) -> std::borrow::Cow<'_, Self> {
        if self.events.is_sorted_by_key(|event| event.time_us) {
            std::borrow::Cow::Borrowed(self)
        } else {
            let mut copy = self.clone();
            copy.sort();
            std::borrow::Cow::Owned(copy)
        }
    }

    /// The time of the last event, 0 for an empty trace.
    pub fn end_us(&self) -> u64 {
        self.events
            .iter()
            .map(|event| event.time_us)
            .max()
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_serialize_flat_with_an_event_tag() {
        let event = Event {
            time_us: 1500,
            kind: EventKind::TimerSet {
                side: Side::A,
                timer: TimerKind::Retransmission,
                expires_us: 201_500,
            },
        };
        let json = serde_json::to_string(&event).unwrap();
        assert_eq!(
            json,
            r#"{"time_us":1500,"event":"timer_set","side":"A","timer":"retransmission","expires_us":201500}"#
        );
        let back: Event = serde_json::from_str(&json).unwrap();
        assert_eq!(back, event);
    }

    #[test]
    fn unknown_timer_names_round_trip() {
        let kind = TimerKind::from("idle".to_owned());
        assert_eq!(kind, TimerKind::Other("idle".to_owned()));
        assert_eq!(String::from(kind), "idle");
    }

    #[test]
    fn moving_an_event_to_the_other_side_leaves_link_events_alone() {
        let mut sent = EventKind::PacketReceived {
            side: Side::A,
            packet_id: 1,
        };
        sent.set_side(Side::B);
        assert_eq!(sent.side(), Some(Side::B));
        let mut link = EventKind::Note {
            side: None,
            text: "partition".to_owned(),
        };
        link.set_side(Side::B);
        assert_eq!(link.side(), None);
    }
}
