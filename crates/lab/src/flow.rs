//! From events to datagrams: each send matched with its arrivals, and the counts a
//! summary table shows.
//!
//! Every picture draws from [`Flow`], so they agree with each other by construction:
//! one [`Packet`] per [`EventKind::PacketSent`], its arrivals the
//! [`EventKind::PacketReceived`]s with the same id at the other side, lost when it has
//! none.

use std::collections::HashMap;

use crate::trace::{EventKind, PacketId, Side, Trace};

/// What a datagram carries, for its color.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PacketKind {
    /// It carries at least one message (it may acknowledge too).
    Data,
    /// It only acknowledges.
    Ack,
    /// Anything else: HELLO, CLOSE, handshake packets.
    Control,
}

impl PacketKind {
    /// `"data"`, `"ack"` or `"control"`: the value of `data-kind` in the SVG.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Data => "data",
            Self::Ack => "ack",
            Self::Control => "control",
        }
    }
}

/// One datagram: its send and what became of it.
#[derive(Debug, Clone, PartialEq)]
pub struct Packet {
    /// Its id.
    pub id: PacketId,
    /// Who sent it; it arrives (or not) at `from.other()`.
    pub from: Side,
    /// When it was sent, in microseconds.
    pub sent_us: u64,
    /// The label: what it carries.
    pub summary: String,
    /// What it carries, for its color.
    pub kind: PacketKind,
    /// Whether it carries a message sent before.
    pub retransmission: bool,
    /// Its size on the wire.
    pub bytes: u64,
    /// When it arrived, in microseconds: empty if lost, more than one if the link
    /// duplicated it.
    pub arrivals: Vec<u64>,
    /// The reason of the first drop reported for it, if any.
    pub drop_reason: Option<String>,
}

impl Packet {
    /// Whether it never arrived.
    pub fn lost(&self) -> bool {
        self.arrivals.is_empty()
    }

    /// What to write at a lost datagram's cross: the reported reason, or `"lost"`.
    pub fn loss_label(&self) -> &str {
        self.drop_reason.as_deref().unwrap_or("lost")
    }
}

/// Per-endpoint counts for the summary table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SideStats {
    /// Datagrams sent.
    pub sent: usize,
    /// Of those, retransmissions.
    pub retransmitted: usize,
    /// Of those, never received.
    pub lost: usize,
    /// Bytes sent.
    pub bytes_sent: u64,
    /// Datagrams received (duplicates included).
    pub received: usize,
    /// Timers that fired.
    pub timers_fired: usize,
    /// Own messages reported delivered.
    pub delivered: usize,
    /// Peer messages shown.
    pub shown: usize,
}

/// The datagrams of a trace, matched, with counts.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Flow {
    /// Every datagram sent, in order of sending (for a sorted trace: the order of its
    /// `PacketSent` events).
    pub packets: Vec<Packet>,
    /// Counts for `A` (index 0) and `B` (index 1).
    pub stats: [SideStats; 2],
    /// Arrivals that match no send: the other side's trace is missing or does not
    /// match (a sign of traces from different runs).
    pub unmatched_receives: usize,
    /// The median time from a send to its first arrival, in microseconds (`None` when
    /// nothing arrived). Pictures use it to place a lost datagram's cross.
    pub median_delay_us: Option<u64>,
}

impl Flow {
    /// Matches the sends, arrivals and drops of `trace` (which should be sorted).
    ///
    /// Ids should be unique per send. One sent more than once anyway (a writer that
    /// hashes a byte-identical retransmission) is matched as well as can be: an arrival
    /// goes to the latest such send before it that has not arrived yet, which is right
    /// when the first copy was lost (the common case) and merely crosses two arrows when
    /// both arrived out of order.
    pub fn of(trace: &Trace) -> Self {
        let mut packets: Vec<Packet> = Vec::new();
        let mut by_id: HashMap<PacketId, Vec<usize>> = HashMap::new();
        let mut stats = [SideStats::default(); 2];
        let mut unmatched_receives = 0;
        for event in &trace.events {
            match &event.kind {
                EventKind::PacketSent {
                    side,
                    packet_id,
                    summary,
                    seqs,
                    ack,
                    retransmission,
                    bytes,
                } => {
                    let kind = if !seqs.is_empty() {
                        PacketKind::Data
                    } else if ack.is_some() {
                        PacketKind::Ack
                    } else {
                        PacketKind::Control
                    };
                    by_id.entry(*packet_id).or_default().push(packets.len());
                    packets.push(Packet {
                        id: *packet_id,
                        from: *side,
                        sent_us: event.time_us,
                        summary: summary.clone(),
                        kind,
                        retransmission: *retransmission,
                        bytes: *bytes,
                        arrivals: Vec::new(),
                        drop_reason: None,
                    });
                }
                EventKind::PacketReceived { side, packet_id } => {
                    stats[side.index()].received += 1;
                    let candidates = by_id.get(packet_id).map(Vec::as_slice).unwrap_or(&[]);
                    let candidates: Vec<usize> = candidates
                        .iter()
                        .copied()
                        .filter(|&i| packets[i].from == side.other())
                        .collect();
                    let t = event.time_us;
                    let chosen = candidates
                        .iter()
                        .copied()
                        .rev()
                        .find(|&i| packets[i].arrivals.is_empty() && packets[i].sent_us <= t)
                        .or_else(|| {
                            candidates
                                .iter()
                                .copied()
                                .rev()
                                .find(|&i| packets[i].sent_us <= t)
                        })
                        .or_else(|| candidates.first().copied());
                    match chosen {
                        Some(i) => packets[i].arrivals.push(t),
                        None => unmatched_receives += 1,
                    }
                }
                EventKind::PacketDropped { packet_id, reason } => {
                    let candidates = by_id.get(packet_id).map(Vec::as_slice).unwrap_or(&[]);
                    let t = event.time_us;
                    let chosen = candidates
                        .iter()
                        .copied()
                        .rev()
                        .find(|&i| packets[i].sent_us <= t)
                        .or_else(|| candidates.first().copied());
                    if let Some(i) = chosen {
                        packets[i].drop_reason.get_or_insert_with(|| reason.clone());
                    }
                }
                EventKind::TimerFired { side, .. } => stats[side.index()].timers_fired += 1,
                EventKind::Delivered { side, .. } => stats[side.index()].delivered += 1,
                EventKind::Shown { side, .. } => stats[side.index()].shown += 1,
                EventKind::TimerSet { .. } | EventKind::Metrics { .. } | EventKind::Note { .. } => {
                }
            }
        }
        packets.sort_by_key(|packet| packet.sent_us);
        let mut delays = Vec::new();
        for packet in &packets {
            let side = &mut stats[packet.from.index()];
            side.sent += 1;
            side.bytes_sent += packet.bytes;
            side.retransmitted += usize::from(packet.retransmission);
            side.lost += usize::from(packet.lost());
            if let Some(first) = packet.arrivals.iter().min() {
                delays.push(first.saturating_sub(packet.sent_us));
            }
        }
        delays.sort_unstable();
        let median_delay_us = delays.get(delays.len() / 2).copied();
        Self {
            packets,
            stats,
            unmatched_receives,
            median_delay_us,
        }
    }

    /// The counts of one endpoint.
    pub fn side(&self, side: Side) -> &SideStats {
        &self.stats[side.index()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sent(trace: &mut Trace, t: u64, side: Side, id: u64, seqs: Vec<u64>, ack: Option<u64>) {
        trace.push(
            t,
            EventKind::PacketSent {
                side,
                packet_id: id,
                summary: format!("#{id}"),
                seqs,
                ack,
                retransmission: false,
                bytes: 40,
            },
        );
    }

    #[test]
    fn sends_are_matched_with_arrivals_at_the_other_side() {
        let mut trace = Trace::new();
        sent(&mut trace, 0, Side::A, 1, vec![0], None);
        sent(&mut trace, 5, Side::A, 2, vec![1], None);
        trace.push(
            10,
            EventKind::PacketReceived {
                side: Side::B,
                packet_id: 1,
            },
        );
        trace.push(
            11,
            EventKind::PacketDropped {
                packet_id: 2,
                reason: "simulated loss".to_owned(),
            },
        );
        sent(&mut trace, 12, Side::B, 3, vec![], Some(1));
        trace.push(
            22,
            EventKind::PacketReceived {
                side: Side::A,
                packet_id: 3,
            },
        );
        trace.push(
            23,
            EventKind::PacketReceived {
                side: Side::A,
                packet_id: 3,
            },
        );
        trace.push(
            24,
            EventKind::PacketReceived {
                side: Side::A,
                packet_id: 99,
            },
        );
        let flow = Flow::of(&trace);
        assert_eq!(flow.packets.len(), 3);
        assert_eq!(flow.packets[0].arrivals, vec![10]);
        assert!(flow.packets[1].lost());
        assert_eq!(flow.packets[1].loss_label(), "simulated loss");
        assert_eq!(flow.packets[2].kind, PacketKind::Ack);
        assert_eq!(flow.packets[2].arrivals, vec![22, 23]);
        assert_eq!(flow.unmatched_receives, 1);
        assert_eq!(flow.side(Side::A).sent, 2);
        assert_eq!(flow.side(Side::A).lost, 1);
        assert_eq!(flow.side(Side::A).received, 3);
        assert_eq!(flow.median_delay_us, Some(10));
    }

    #[test]
    fn a_reused_id_goes_to_the_latest_send_not_yet_arrived() {
        let mut trace = Trace::new();
        sent(&mut trace, 0, Side::A, 7, vec![0], None);
        sent(&mut trace, 100, Side::A, 7, vec![0], None);
        trace.push(
            110,
            EventKind::PacketReceived {
                side: Side::B,
                packet_id: 7,
            },
        );
        trace.push(
            150,
            EventKind::PacketReceived {
                side: Side::B,
                packet_id: 7,
            },
        );
        let flow = Flow::of(&trace);
        assert_eq!(flow.packets[1].arrivals, vec![110]);
        assert_eq!(flow.packets[0].arrivals, vec![150]);
    }
}
