//! The receiving half of one direction: delivers each message once, in the order of its
//! stream (a chat message never waits for a lost file chunk), and says what it holds in
//! acknowledgements.

use std::collections::{BTreeMap, VecDeque};

use crate::config::SeqBits;
use crate::wire::{AckFrame, Payload, Sack};

/// Duplicates waiting to be reported; more between two acknowledgements are not.
const MAX_DUPLICATES_REPORTED: usize = 64;

/// What became of one received DATA frame.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Arrival {
    /// These messages are now deliverable, in the order of each stream (the arrived one
    /// and any held ones it unblocked).
    Deliver(Vec<(u64, Payload)>),
    /// Held until the frame it is delivered after arrives.
    Buffered,
    /// Seen before; acknowledge again, show nothing.
    Duplicate,
    /// Too far ahead of the window; dropped, the sender will retry.
    BeyondWindow,
}

/// A frame received above a gap.
#[derive(Debug)]
enum Slot {
    /// Waiting for the frame it is delivered after (its stream's previous, or with
    /// `after` 0 every earlier one).
    Held(Payload),
    /// Already delivered, because its stream's previous frame was: kept so that the
    /// acknowledgement reports it and a copy counts as a duplicate. Reported only once
    /// `durable` (at once, unless the caller persists before acknowledging): a sender
    /// counts a frame reported and shown as delivered when it gives up.
    Delivered { durable: bool },
}

/// Receive state of the stream from the peer's current epoch.
#[derive(Debug)]
pub(crate) struct Receiver {
    /// Next sequence number to deliver in the order of the whole stream; everything
    /// below was delivered or skipped.
    expected: u64,
    /// Frames after a gap, keyed by sequence number; never more than `window - 1`.
    buffered: BTreeMap<u64, Slot>,
    /// Held frames waiting for their stream's previous frame, keyed by that frame's
    /// sequence number (each frame is the previous of at most one in its stream).
    waiting_on: BTreeMap<u64, u64>,
    window: u16,
    seq_bits: SeqBits,
    /// Frames shown ahead of a gap wait for [`confirm_shown`](Self::confirm_shown)
    /// before the acknowledgement reports them (persist, then acknowledge).
    durable_receive: bool,
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
            waiting_on: BTreeMap::new(),
            window,
            seq_bits,
            durable_receive: false,
            duplicates: VecDeque::new(),
        }
    }

    /// The same, reporting frames shown ahead of a gap only once confirmed durable.
    pub(crate) fn with_durable_receive(mut self, durable_receive: bool) -> Self {
        self.durable_receive = durable_receive;
        self
    }

    /// Frame `seq`, shown ahead of a gap, is now durable: acknowledgements report it.
    pub(crate) fn confirm_shown(&mut self, seq: u64) {
        if let Some(Slot::Delivered { durable }) = self.buffered.get_mut(&seq) {
            *durable = true;
        }
    }

    /// A slot for a frame shown ahead of a gap.
    fn shown_slot(&self) -> Slot {
        Slot::Delivered {
            durable: !self.durable_receive,
        }
    }

    /// Marks the buffered frame `seq` shown and returns its payload, if it was held.
    fn release(&mut self, seq: u64) -> Option<Payload> {
        let shown = self.shown_slot();
        let slot = self.buffered.get_mut(&seq)?;
        if !matches!(slot, Slot::Held(_)) {
            return None;
        }
        match std::mem::replace(slot, shown) {
            Slot::Held(payload) => Some(payload),
            Slot::Delivered { .. } => None,
        }
    }

    /// Handles one DATA frame whose sequence number, as carried on the wire, is
    /// `wire_seq`, and whose `after` field is `after` (PROTOCOL.md §6).
    pub(crate) fn on_data(&mut self, wire_seq: u64, after: u16, payload: Payload) -> Arrival {
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
            SeqBits::Full => self.on_full_data(wire_seq, after, payload),
        }
    }

    fn on_full_data(&mut self, seq: u64, after: u16, payload: Payload) -> Arrival {
        if seq < self.expected || self.buffered.contains_key(&seq) {
            self.note_duplicate(seq);
            return Arrival::Duplicate;
        }
        if seq - self.expected >= u64::from(self.window) {
            return Arrival::BeyondWindow;
        }
        let mut ready = Vec::new();
        if seq == self.expected {
            self.expected += 1;
            self.show(seq, payload, &mut ready);
            self.drain_ready(&mut ready);
            return Arrival::Deliver(ready);
        }
        // Above a gap: its stream may still be complete up to it.
        let previous = match after {
            0 => Some(self.expected),
            after => seq.checked_sub(u64::from(after)),
        };
        match previous {
            Some(p)
                if p >= self.expected
                    && !matches!(self.buffered.get(&p), Some(Slot::Delivered { .. })) =>
            {
                if after != 0 {
                    self.waiting_on.insert(p, seq);
                }
                self.buffered.insert(seq, Slot::Held(payload));
                Arrival::Buffered
            }
            _ => {
                self.buffered.insert(seq, self.shown_slot());
                self.show(seq, payload, &mut ready);
                Arrival::Deliver(ready)
            }
        }
    }

    /// Delivers frame `seq`, then every held frame its delivery unblocks in its stream,
    /// each marked delivered where it is buffered.
    fn show(&mut self, seq: u64, payload: Payload, ready: &mut Vec<(u64, Payload)>) {
        ready.push((seq, payload));
        let mut previous = seq;
        while let Some(next) = self.waiting_on.remove(&previous) {
            if !self.buffered.contains_key(&next) {
                break;
            }
            if let Some(payload) = self.release(next) {
                ready.push((next, payload));
            }
            previous = next;
        }
    }

    /// Delivers what is now next in the order of the whole stream, passing over what
    /// its own stream delivered already.
    fn drain_ready(&mut self, ready: &mut Vec<(u64, Payload)>) {
        while let Some(slot) = self.buffered.remove(&self.expected) {
            let seq = self.expected;
            self.expected += 1;
            if let Slot::Held(payload) = slot {
                self.show(seq, payload, ready);
            }
        }
    }

    /// The sender gave up on everything below `below`: stop waiting for it, and deliver
    /// whatever held messages that unblocks. Returns them in the order of each stream.
    pub(crate) fn on_skip(&mut self, below: u64) -> Vec<(u64, Payload)> {
        let mut ready = Vec::new();
        if self.seq_bits == SeqBits::One || below <= self.expected {
            return ready;
        }
        self.expected = below;
        self.buffered = self.buffered.split_off(&below);
        // Frames whose previous was given up wait for nothing more; those given up
        // themselves are gone.
        let still_waiting = self.waiting_on.split_off(&below);
        let unblocked = std::mem::replace(&mut self.waiting_on, still_waiting);
        for (_, seq) in unblocked {
            if let Some(payload) = self.release(seq) {
                self.show(seq, payload, &mut ready);
            }
        }
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

    /// The next sequence number to deliver in the order of the whole stream.
    pub(crate) fn expected(&self) -> u64 {
        self.expected
    }

    /// True while something is received above a gap: acknowledgements then go at once,
    /// since the sender's loss detection waits for them.
    pub(crate) fn has_gap(&self) -> bool {
        !self.buffered.is_empty()
    }

    /// The acknowledgement describing what has been received, with the oldest duplicate
    /// not yet reported (which it then forgets), the time it was held, and the longest it
    /// may ever be held. Nothing at or above `durable` counts as received but what is
    /// buffered after a gap: messages delivered to the caller and not yet made durable
    /// are not acknowledged (persist, then acknowledge), and a frame shown ahead of a gap
    /// is reported only once confirmed durable (when the caller persists).
    pub(crate) fn ack(
        &mut self,
        ack_delay_us: u32,
        max_ack_delay_ms: u8,
        durable: u64,
    ) -> AckFrame {
        let cumulative = self.expected.min(durable);
        let mut sack = Sack::EMPTY;
        // Frames delivered ahead of a gap count as received like held ones, once durable.
        for (&seq, slot) in &self.buffered {
            if matches!(slot, Slot::Delivered { durable: false }) {
                continue;
            }
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
        assert_eq!(texts(r.on_data(0, 0, t("a"))), vec![0]);
        assert_eq!(r.on_data(0, 0, t("a")), Arrival::Duplicate);
        assert_eq!(r.on_data(2, 0, t("c")), Arrival::BeyondWindow);
        assert_eq!(texts(r.on_data(1, 0, t("b"))), vec![1]);
        assert_eq!(r.ack(0, 0, u64::MAX).cumulative, 2);
    }

    #[test]
    fn window_buffers_and_releases_in_order_with_sack() {
        let mut r = Receiver::new(8, SeqBits::Full);
        assert_eq!(r.on_data(2, 0, t("c")), Arrival::Buffered);
        assert_eq!(r.on_data(3, 0, t("d")), Arrival::Buffered);
        assert_eq!(r.on_data(3, 0, t("d")), Arrival::Duplicate);
        let ack = r.ack(0, 0, u64::MAX);
        assert_eq!((ack.cumulative, ack.sack), (0, Sack::from_bits(0b110)));
        assert_eq!(texts(r.on_data(0, 0, t("a"))), vec![0]);
        assert_eq!(texts(r.on_data(1, 0, t("b"))), vec![1, 2, 3]);
        assert_eq!(
            (r.ack(0, 0, u64::MAX).cumulative, r.ack(0, 0, u64::MAX).sack),
            (4, Sack::EMPTY)
        );
    }

    #[test]
    fn skip_moves_past_abandoned_messages() {
        let mut r = Receiver::new(8, SeqBits::Full);
        assert_eq!(r.on_data(3, 0, t("d")), Arrival::Buffered);
        assert_eq!(r.on_data(1, 0, t("b")), Arrival::Buffered);
        let ready: Vec<u64> = r.on_skip(2).into_iter().map(|(s, _)| s).collect();
        assert!(ready.is_empty());
        assert_eq!(r.ack(0, 0, u64::MAX).cumulative, 2);
        assert!(r.on_skip(1).is_empty(), "a skip never goes backwards");
        assert_eq!(texts(r.on_data(2, 0, t("c"))), vec![2, 3]);
    }

    #[test]
    fn one_bit_compares_only_the_low_bit() {
        let mut r = Receiver::new(1, SeqBits::One);
        assert_eq!(texts(r.on_data(0, 0, t("a"))), vec![0]);
        assert_eq!(r.on_data(0, 0, t("a")), Arrival::Duplicate);
        assert_eq!(r.ack(0, 0, u64::MAX).cumulative, 1);
        assert_eq!(texts(r.on_data(1, 0, t("b"))), vec![1]);
        // A late copy of message 0 is indistinguishable from message 2.
        assert_eq!(texts(r.on_data(0, 0, t("a"))), vec![2]);
    }

    fn chunk(offset: u64) -> Payload {
        Payload::File(crate::wire::FileFrame::Chunk {
            transfer: 1,
            offset,
            data: vec![0; 4].into(),
        })
    }

    fn seqs(ready: Vec<(u64, Payload)>) -> Vec<u64> {
        ready.into_iter().map(|(s, _)| s).collect()
    }

    #[test]
    fn a_chat_message_is_not_held_behind_a_lost_chunk() {
        let mut r = Receiver::new(64, SeqBits::Full);
        // 0: chat, 1: chunk (lost), 2: chunk, 3: chat after 0, 4: chat after 3.
        assert_eq!(texts(r.on_data(0, u16::MAX, t("a"))), vec![0]);
        assert_eq!(r.on_data(2, 1, chunk(4)), Arrival::Buffered);
        assert_eq!(texts(r.on_data(3, 3, t("b"))), vec![3]);
        assert_eq!(texts(r.on_data(4, 1, t("c"))), vec![4]);
        // Reported received, and a copy is a duplicate, though not yet cumulative.
        let ack = r.ack(0, 0, u64::MAX);
        assert_eq!((ack.cumulative, ack.sack), (1, Sack::from_bits(0b111)));
        assert_eq!(r.on_data(3, 3, t("b")), Arrival::Duplicate);
        // The chunks follow in their own order once the lost one comes; the chat
        // messages are not shown again.
        assert_eq!(texts(r.on_data(1, u16::MAX, chunk(0))), vec![1, 2]);
        assert_eq!(r.ack(0, 0, u64::MAX).cumulative, 5);
    }

    #[test]
    fn a_stream_keeps_its_own_order_and_done_waits_for_everything() {
        let mut r = Receiver::new(64, SeqBits::Full);
        // 0: chunk (lost), 1: chat "a" (lost), 2: chat "b" after 1, 3: DONE.
        assert_eq!(r.on_data(2, 1, t("b")), Arrival::Buffered);
        assert_eq!(r.on_data(3, 0, Payload::Done), Arrival::Buffered);
        assert_eq!(texts(r.on_data(1, u16::MAX, t("a"))), vec![1, 2]);
        assert_eq!(texts(r.on_data(0, u16::MAX, chunk(0))), vec![0, 3]);
    }

    #[test]
    fn a_distance_below_what_was_delivered_waits_for_nothing() {
        let mut r = Receiver::new(64, SeqBits::Full);
        assert_eq!(texts(r.on_data(0, 0, t("a"))), vec![0]);
        // Its stream's previous is 0, delivered; 1 is a missing chunk.
        assert_eq!(texts(r.on_data(2, 2, t("b"))), vec![2]);
        // A chunk after the missing 1 waits; 65535 back reaches below 0.
        assert_eq!(r.on_data(3, 2, chunk(4)), Arrival::Buffered);
        assert_eq!(texts(r.on_data(4, u16::MAX, t("c"))), vec![4]);
    }

    #[test]
    fn a_skip_releases_what_waited_for_a_given_up_frame() {
        let mut r = Receiver::new(64, SeqBits::Full);
        // 1 (chat) is given up; 3 (chat after 1) and 2 (chunk after 0) wait.
        assert_eq!(r.on_data(3, 2, t("c")), Arrival::Buffered);
        assert_eq!(r.on_data(2, 2, chunk(8)), Arrival::Buffered);
        assert_eq!(seqs(r.on_skip(2)), vec![2, 3]);
        assert_eq!(r.ack(0, 0, u64::MAX).cumulative, 4);
        assert!(!r.has_gap());
    }

    #[test]
    fn a_chain_of_held_messages_goes_out_in_order_when_its_head_arrives() {
        let mut r = Receiver::new(64, SeqBits::Full);
        // 0: chunk (lost); chat 1, 3, 5 with chunks 2, 4 between, arriving backwards.
        assert_eq!(r.on_data(5, 2, t("c")), Arrival::Buffered);
        assert_eq!(r.on_data(4, 2, chunk(8)), Arrival::Buffered);
        assert_eq!(r.on_data(3, 2, t("b")), Arrival::Buffered);
        assert_eq!(r.on_data(2, 2, chunk(4)), Arrival::Buffered);
        assert_eq!(texts(r.on_data(1, u16::MAX, t("a"))), vec![1, 3, 5]);
        assert_eq!(texts(r.on_data(0, u16::MAX, chunk(0))), vec![0, 2, 4]);
        assert_eq!(r.ack(0, 0, u64::MAX).cumulative, 6);
    }

    #[test]
    fn a_durable_receiver_reports_a_line_shown_ahead_only_once_confirmed() {
        let mut r = Receiver::new(64, SeqBits::Full).with_durable_receive(true);
        // 0: chunk (lost), 1: chat shown ahead, 2: chunk held.
        assert_eq!(texts(r.on_data(1, u16::MAX, t("a"))), vec![1]);
        assert_eq!(r.on_data(2, 2, chunk(4)), Arrival::Buffered);
        // A sender giving up would count a reported line delivered: not before it is
        // durable. The held chunk is reported at once (loss detection needs it).
        assert_eq!(r.ack(0, 0, 0).sack, Sack::from_bits(0b10));
        r.confirm_shown(1);
        assert_eq!(r.ack(0, 0, 0).sack, Sack::from_bits(0b11));
    }
}
