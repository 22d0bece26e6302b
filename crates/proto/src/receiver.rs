//! The receiving half of one direction: delivers each message once, in order, and says
//! what it holds in acknowledgements.

use std::collections::{BTreeMap, VecDeque};

use crate::config::SeqBits;
use crate::wire::{AckFrame, Payload, Sack};

/// Duplicates waiting to be reported; more between two acknowledgements are not.
const MAX_DUPLICATES_REPORTED: usize = 64;

/// What became of one received DATA frame.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Arrival {
    /// These messages are now deliverable, in order (the arrived one and any buffered
    /// ones it unblocked).
    Deliver(Vec<(u64, Payload)>),
    /// Held until the gap before it fills.
    Buffered,
    /// Seen before; acknowledge again, show nothing.
    Duplicate,
    /// Too far ahead of the window; dropped, the sender will retry.
    BeyondWindow,
}

/// Receive state of the stream from the peer's current epoch.
#[derive(Debug)]
pub(crate) struct Receiver {
    /// Next sequence number to deliver; everything below was delivered or skipped.
    expected: u64,
    /// Messages after a gap, keyed by sequence number; never more than `window - 1`.
    buffered: BTreeMap<u64, Payload>,
    window: u16,
    seq_bits: SeqBits,
    /// Messages that arrived again since they were last reported, oldest first: each
    /// acknowledgement reports one as a D-SACK (bounded: a flood of copies is not
    /// worth more than this many acknowledgements).
    duplicates: VecDeque<u64>,
}

impl Receiver {
    pub(crate) fn new(window: u16, seq_bits: SeqBits) -> Self {
        Self {
            expected: 0,
            buffered: BTreeMap::new(),
            window,
            seq_bits,
            duplicates: VecDeque::new(),
        }
    }

    /// Handles one DATA frame whose sequence number, as carried on the wire, is `wire_seq`.
    pub(crate) fn on_data(&mut self, wire_seq: u64, payload: Payload) -> Arrival {
        match self.seq_bits {
            // The alternating bit: "is it the one I expect?" is all it can ask, so a late
            // copy of the message two back looks new. That is the flaw the teeth test shows.
            SeqBits::One => {
                if wire_seq == self.expected & 1 {
                    let seq = self.expected;
                    self.expected += 1;
                    Arrival::Deliver(vec![(seq, payload)])
                } else {
                    self.note_duplicate(wire_seq);
                    Arrival::Duplicate
                }
            }
            SeqBits::Full => self.on_full_data(wire_seq, payload),
        }
    }

    fn on_full_data(&mut self, seq: u64, payload: Payload) -> Arrival {
        if seq < self.expected || self.buffered.contains_key(&seq) {
            self.note_duplicate(seq);
            return Arrival::Duplicate;
        }
        if seq - self.expected >= u64::from(self.window) {
            return Arrival::BeyondWindow;
        }
        if seq > self.expected {
            self.buffered.insert(seq, payload);
            return Arrival::Buffered;
        }
        let mut ready = vec![(seq, payload)];
        self.expected += 1;
        self.drain_ready(&mut ready);
        Arrival::Deliver(ready)
    }

    fn drain_ready(&mut self, ready: &mut Vec<(u64, Payload)>) {
        while let Some(payload) = self.buffered.remove(&self.expected) {
            ready.push((self.expected, payload));
            self.expected += 1;
        }
    }

    /// The sender gave up on everything below `below`: stop waiting for it, and deliver
    /// whatever buffered messages that unblocks. Returns them in order.
    pub(crate) fn on_skip(&mut self, below: u64) -> Vec<(u64, Payload)> {
        let mut ready = Vec::new();
        if self.seq_bits == SeqBits::One || below <= self.expected {
            return ready;
        }
        self.expected = below;
        self.buffered = self.buffered.split_off(&below);
        self.drain_ready(&mut ready);
        ready
    }

    fn note_duplicate(&mut self, seq: u64) {
        if self.duplicates.len() < MAX_DUPLICATES_REPORTED && !self.duplicates.contains(&seq) {
            self.duplicates.push_back(seq);
        }
    }

    /// True while duplicates wait to be reported: each needs an acknowledgement of its
    /// own.
    pub(crate) fn has_duplicates(&self) -> bool {
        !self.duplicates.is_empty()
    }

    /// The next sequence number to deliver.
    pub(crate) fn expected(&self) -> u64 {
        self.expected
    }

    /// The acknowledgement describing what has been received, with the oldest duplicate
    /// not yet reported (which it then forgets), the time it was held, and the longest it
    /// may ever be held. Nothing at or above `durable` counts as received but what is
    /// buffered after a gap: messages delivered to the caller and not yet made durable
    /// are not acknowledged (persist, then acknowledge).
    pub(crate) fn ack(
        &mut self,
        ack_delay_us: u32,
        max_ack_delay_ms: u8,
        durable: u64,
    ) -> AckFrame {
        let cumulative = self.expected.min(durable);
        let mut sack = Sack::EMPTY;
        for &seq in self.buffered.keys() {
            // Buffered sequence numbers are within the window above expected, which the
            // bitmap covers (beyond it, when `durable` holds the cumulative point back,
            // `insert` ignores them).
            if let Some(offset) = seq.checked_sub(cumulative + 1) {
                sack.insert(offset);
            }
        }
        AckFrame {
            cumulative: self.seq_bits.on_wire(cumulative),
            sack,
            window: self.window,
            ack_delay_us,
            max_ack_delay_ms,
            duplicate: self.duplicates.pop_front(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(text: &str) -> Payload {
        Payload::Text(text.into())
    }

    fn texts(a: Arrival) -> Vec<u64> {
        match a {
            Arrival::Deliver(v) => v.into_iter().map(|(s, _)| s).collect(),
            other => panic!("expected delivery, got {other:?}"),
        }
    }

    #[test]
    fn stop_and_wait_delivers_in_order_and_flags_duplicates() {
        let mut r = Receiver::new(1, SeqBits::Full);
        assert_eq!(texts(r.on_data(0, t("a"))), vec![0]);
        assert_eq!(r.on_data(0, t("a")), Arrival::Duplicate);
        assert_eq!(r.on_data(2, t("c")), Arrival::BeyondWindow);
        assert_eq!(texts(r.on_data(1, t("b"))), vec![1]);
        assert_eq!(r.ack(0, 0, u64::MAX).cumulative, 2);
    }

    #[test]
    fn window_buffers_and_releases_in_order_with_sack() {
        let mut r = Receiver::new(8, SeqBits::Full);
        assert_eq!(r.on_data(2, t("c")), Arrival::Buffered);
        assert_eq!(r.on_data(3, t("d")), Arrival::Buffered);
        assert_eq!(r.on_data(3, t("d")), Arrival::Duplicate);
        let ack = r.ack(0, 0, u64::MAX);
        assert_eq!((ack.cumulative, ack.sack), (0, Sack::from_bits(0b110)));
        assert_eq!(texts(r.on_data(0, t("a"))), vec![0]);
        assert_eq!(texts(r.on_data(1, t("b"))), vec![1, 2, 3]);
        assert_eq!(
            (r.ack(0, 0, u64::MAX).cumulative, r.ack(0, 0, u64::MAX).sack),
            (4, Sack::EMPTY)
        );
    }

    #[test]
    fn skip_moves_past_abandoned_messages() {
        let mut r = Receiver::new(8, SeqBits::Full);
        assert_eq!(r.on_data(3, t("d")), Arrival::Buffered);
        assert_eq!(r.on_data(1, t("b")), Arrival::Buffered);
        let ready: Vec<u64> = r.on_skip(2).into_iter().map(|(s, _)| s).collect();
        assert!(ready.is_empty());
        assert_eq!(r.ack(0, 0, u64::MAX).cumulative, 2);
        assert!(r.on_skip(1).is_empty(), "a skip never goes backwards");
        assert_eq!(texts(r.on_data(2, t("c"))), vec![2, 3]);
    }

    #[test]
    fn one_bit_compares_only_the_low_bit() {
        let mut r = Receiver::new(1, SeqBits::One);
        assert_eq!(texts(r.on_data(0, t("a"))), vec![0]);
        assert_eq!(r.on_data(0, t("a")), Arrival::Duplicate);
        assert_eq!(r.ack(0, 0, u64::MAX).cumulative, 1);
        assert_eq!(texts(r.on_data(1, t("b"))), vec![1]);
        // A late copy of message 0 is indistinguishable from message 2.
        assert_eq!(texts(r.on_data(0, t("a"))), vec![2]);
    }
}
