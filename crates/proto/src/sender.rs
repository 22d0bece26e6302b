//! The sending half of one direction: numbers messages, keeps up to a window of them in
//! flight, retransmits what is lost (on timeout, or at once when something sent after
//! it has been acknowledged), and gives up after too many tries, never silently.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::config::SeqBits;
use crate::congestion::{NewReno, Pacer};
use crate::event::{FailReason, MessageId};
use crate::wire::{
    AckFrame, FileFrame, Payload, Stream, CRC_LEN, DATA_FRAME_OVERHEAD, HEADER_LEN, MAX_DATAGRAM,
    SKIP_FRAME_LEN,
};

/// A message is taken for lost, and resent without waiting for its timer, once a
/// message transmitted this many transmissions after it has been acknowledged. This is
/// RACK's rule (RFC 8985) counted in transmissions instead of time: it tolerates a little
/// reordering, and unlike TCP's one-shot fast retransmit it also catches a retransmission
/// that was itself lost.
const REORDERING_THRESHOLD: u64 = 3;

/// The reordering threshold grows by one each time a retransmission made by it proves
/// unnecessary (RACK's adaptive reordering window, RFC 8985 §6.2, counted as above), up
/// to this many transmissions.
const MAX_REORDERING_THRESHOLD: u64 = 16;

/// Acknowledged messages that had been retransmitted, remembered so that a late report
/// of their duplicate (a D-SACK) can still reveal a spurious retransmission.
const RECENT_RETRANSMITTED: usize = 128;

/// What made the sender retransmit a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Cause {
    /// Later transmissions arrived before it (loss detection).
    Reordering,
    /// Its retransmission timer expired.
    Timeout,
    /// It was the newest in flight when the tail-loss probe fired.
    Probe,
}

/// Bytes of messages one expiry of the retransmission timer may resend: one datagram.
const PROBE_BYTES: usize = MAX_DATAGRAM - HEADER_LEN - CRC_LEN - SKIP_FRAME_LEN;

/// File chunks wait in a queue of their own, behind every other message, so a line typed
/// during a transfer goes out at once; and they leave part of the window free (see
/// [`chat_reserve`]), so the line finds room on the wire even while the window is full
/// of chunks waiting for one lost ahead of them.
fn is_bulk(payload: &Payload) -> bool {
    matches!(payload, Payload::File(FileFrame::Chunk { .. }))
}

/// Sequence numbers of the window that file chunks leave to the chat: a sixteenth, so
/// with the default window 127 messages can go out while a lost chunk holds the
/// cumulative acknowledgement back (their stream is delivered without it, PROTOCOL.md
/// §5), and nothing with a window under 16.
fn chat_reserve(window: usize) -> usize {
    window / 16
}

/// The `after` field (PROTOCOL.md §3) of frame `seq` whose stream's previous frame is
/// `previous`: the distance back to it, or 65535 when there is none or it is farther
/// back than that. A frame that far back was acknowledged or given up before this one
/// could be sent (the window is at most 2040), so the receiver has nothing to wait for.
fn after_previous(seq: u64, previous: Option<u64>) -> u16 {
    previous
        .and_then(|p| u16::try_from(seq.saturating_sub(p)).ok())
        .unwrap_or(u16::MAX)
}

/// A message accepted by `send` and not yet on the wire.
#[derive(Debug)]
struct Queued {
    id: MessageId,
    payload: Payload,
    queued_at: Instant,
}

/// A message on the wire, not yet acknowledged.
#[derive(Debug)]
struct InFlight {
    id: MessageId,
    seq: u64,
    /// The DATA frame's `after`: every transmission carries the same.
    after: u16,
    payload: Payload,
    queued_at: Instant,
    first_sent_at: Instant,
    /// When it was last sent (the first time, or its latest retransmission).
    last_sent_at: Instant,
    /// Transmissions so far.
    attempts: u32,
    retransmit_at: Instant,
    /// Reported received by a selective acknowledgement; not retransmitted.
    sacked: bool,
    /// Order of its first transmission among all of this sender's transmissions; it
    /// grows with `seq`, which lets scans over the window stop early.
    first_tx: u64,
    /// Order of its latest transmission.
    last_tx: u64,
    /// Why it was last sent again, until a spurious retransmission of it is counted.
    retransmitted_by: Option<Cause>,
}

/// What the sender wants done after an input.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum SenderOutput {
    /// Put this message on the wire (first transmission when `attempt == 1`).
    Transmit {
        id: MessageId,
        seq: u64,
        after: u16,
        payload: Payload,
        attempt: u32,
    },
    /// The peer acknowledged this message.
    Delivered {
        id: MessageId,
        seq: u64,
        attempts: u32,
        elapsed: Duration,
        /// The payload's kind and its bytes on the wire: a part of a longer message or
        /// a file chunk is not a message of its own.
        kind: u8,
        len: usize,
    },
    /// This message is given up.
    Failed {
        id: MessageId,
        text: String,
        reason: FailReason,
        /// The payload's kind (see `Delivered`).
        kind: u8,
    },
}

/// What an acknowledgement did.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct AckResult {
    /// It acknowledges messages never sent; it was ignored.
    pub(crate) beyond_sent: bool,
    /// Something new was acknowledged (ends retransmission backoff).
    pub(crate) progress: bool,
    /// A round-trip sample from a message sent only once (Karn's rule).
    pub(crate) rtt_sample: Option<Duration>,
    /// The peer reported a duplicate of a message we had sent more than once: that
    /// retransmission was unnecessary, and this made it.
    pub(crate) spurious: Option<Cause>,
}

/// Send state of our stream toward the peer's current epoch.
#[derive(Debug)]
pub(crate) struct Sender {
    queue: VecDeque<Queued>,
    /// File chunks, sent only when `queue` has nothing to send before a DONE (see
    /// [`is_bulk`]).
    bulk: VecDeque<Queued>,
    in_flight: VecDeque<InFlight>,
    next_seq: u64,
    /// The latest sequence number given to a frame of each stream (by
    /// [`Stream::index`]), for the next one's `after`.
    stream_last: [Option<u64>; Stream::ALL.len()],
    /// Everything below has been acknowledged or skipped.
    acked_below: u64,
    /// Messages below this were given up; the receiver must be told (SKIP frame).
    skip_below: u64,
    window: u16,
    /// The receiver's advertised window; starts equal to ours.
    peer_window: u16,
    seq_bits: SeqBits,
    max_retries: u32,
    /// Transmissions so far (first ones and retransmissions), to order them.
    transmissions: u64,
    /// The latest transmission known to have arrived.
    largest_acked_tx: u64,
    /// Transmissions that must overtake a message before it is taken for lost.
    reordering: u64,
    /// Sequence numbers of recently acknowledged messages that had been retransmitted,
    /// and why, for D-SACK (see [`RECENT_RETRANSMITTED`]).
    recent_retransmitted: VecDeque<(u64, Cause)>,
    /// The congestion window, and the pacer that spreads it over a round trip.
    cc: NewReno,
    pacer: Pacer,
    max_datagram: usize,
    /// Bytes of DATA frames in flight and not selectively acknowledged.
    bytes_in_flight: usize,
    /// The last `fill_window` ran out of messages before the window (or the pacer) said
    /// stop: the window is not being tested, so acknowledgements do not grow it.
    app_limited: bool,
    /// When the pacer lets the next queued message go, if it is holding one back.
    next_send_at: Option<Instant>,
    /// Timer expiries since the last acknowledgement of anything new.
    consecutive_timeouts: u32,
    /// One timeout after the latest acknowledgement of anything new: no retransmission
    /// timer fires before it.
    timer_floor: Option<Instant>,
    /// When the tail-loss probe fires, if one is armed (see [`Sender::arm_probe`]).
    probe_at: Option<Instant>,
    /// A probe was sent and nothing new has been acknowledged since: one per tail.
    probe_sent: bool,
}

/// Which transmission of `m` an acknowledgement arriving `now` is taken to report, for
/// loss detection: the latest, unless `m` was sent again less than the smallest round
/// trip ago, when the acknowledgement must be for an earlier copy (RACK's guard, RFC
/// 8985 §6.2 step 2), and then the first. Taking a fresh retransmission for acknowledged
/// would make every message sent between its two copies look overtaken and lost: after
/// a timeout, hundreds of spurious retransmissions at once.
fn transmission_acked(m: &InFlight, now: Instant, min_rtt: Option<Duration>) -> u64 {
    if m.attempts == 1 {
        return m.last_tx;
    }
    let since = now.saturating_duration_since(m.last_sent_at);
    match min_rtt {
        Some(min) if since >= min => m.last_tx,
        _ => m.first_tx,
    }
}

/// Bytes a message takes in a packet: its DATA frame.
fn frame_size(payload: &Payload) -> usize {
    DATA_FRAME_OVERHEAD + payload.wire_len()
}

impl Sender {
    pub(crate) fn new(
        window: u16,
        seq_bits: SeqBits,
        max_retries: u32,
        max_datagram: usize,
    ) -> Self {
        Self {
            queue: VecDeque::new(),
            bulk: VecDeque::new(),
            in_flight: VecDeque::new(),
            next_seq: 0,
            stream_last: [None; Stream::ALL.len()],
            acked_below: 0,
            skip_below: 0,
            window,
            peer_window: window,
            seq_bits,
            max_retries,
            transmissions: 0,
            largest_acked_tx: 0,
            reordering: REORDERING_THRESHOLD,
            recent_retransmitted: VecDeque::new(),
            cc: NewReno::new(max_datagram),
            pacer: Pacer::new(),
            max_datagram,
            bytes_in_flight: 0,
            app_limited: true,
            next_send_at: None,
            consecutive_timeouts: 0,
            timer_floor: None,
            probe_at: None,
            probe_sent: false,
        }
    }

    /// The congestion window, in bytes.
    pub(crate) fn congestion_window(&self) -> usize {
        self.cc.window()
    }

    /// Bytes of messages in flight.
    pub(crate) fn bytes_in_flight(&self) -> usize {
        self.bytes_in_flight
    }

    /// Window reductions, undone reductions and losses judged random so far.
    pub(crate) fn congestion_events(&self) -> (u64, u64, u64) {
        (self.cc.reductions, self.cc.undos, self.cc.random_losses)
    }

    /// When the pacer lets the next queued message go, if it is holding one back.
    pub(crate) fn next_send_at(&self) -> Option<Instant> {
        self.next_send_at
    }

    /// Transmissions that must overtake a message before it is taken for lost: 3, more
    /// after spurious retransmissions showed the path reorders.
    pub(crate) fn reordering_threshold(&self) -> u64 {
        self.reordering
    }

    /// Transmissions so far of the message `id`, if it is in flight.
    pub(crate) fn attempts_of(&self, id: MessageId) -> Option<u32> {
        self.in_flight
            .iter()
            .rev()
            .find(|m| m.id == id)
            .map(|m| m.attempts)
    }

    fn remember_retransmitted(&mut self, seq: u64, cause: Option<Cause>) {
        let Some(cause) = cause else {
            return;
        };
        if self.recent_retransmitted.len() == RECENT_RETRANSMITTED {
            self.recent_retransmitted.pop_front();
        }
        self.recent_retransmitted.push_back((seq, cause));
    }

    /// The peer received message `seq` twice. If we had sent it more than once, one of
    /// those transmissions was unnecessary: say what made it, once per message. A
    /// duplicate of a message sent once was the network's doing, and says nothing.
    fn on_duplicate(&mut self, seq: u64) -> Option<Cause> {
        if let Some(m) = self.in_flight.iter_mut().find(|m| m.seq == seq) {
            return m.retransmitted_by.take();
        }
        let at = self
            .recent_retransmitted
            .iter()
            .position(|&(s, _)| s == seq)?;
        self.recent_retransmitted.remove(at).map(|(_, cause)| cause)
    }

    fn next_tx(&mut self) -> u64 {
        self.transmissions += 1;
        self.transmissions
    }

    /// Accepts a message for sending.
    pub(crate) fn push(&mut self, id: MessageId, payload: Payload, now: Instant) {
        let queued = Queued {
            id,
            payload,
            queued_at: now,
        };
        if is_bulk(&queued.payload) {
            self.bulk.push_back(queued);
        } else {
            self.queue.push_back(queued);
        }
    }

    /// Puts `payloads` in the place of every queued message with this id (the first's
    /// place), so a longer message whose parts were partly acknowledged by a run that
    /// ended goes out whole again.
    pub(crate) fn replace_queued(&mut self, id: MessageId, payloads: Vec<Payload>, now: Instant) {
        let Some(at) = self.queue.iter().position(|q| q.id == id) else {
            return;
        };
        let queued_at = self.queue.get(at).map_or(now, |q| q.queued_at);
        let mut rest = self.queue.split_off(at);
        rest.retain(|q| q.id != id);
        self.queue
            .extend(payloads.into_iter().map(|payload| Queued {
                id,
                payload,
                queued_at,
            }));
        self.queue.append(&mut rest);
    }

    /// True when nothing is queued or in flight.
    pub(crate) fn is_idle(&self) -> bool {
        self.queue.is_empty() && self.bulk.is_empty() && self.in_flight.is_empty()
    }

    /// Messages queued or in flight, file chunks not counted.
    pub(crate) fn outstanding(&self) -> usize {
        self.queue.len() + self.in_flight.len()
    }

    /// Drops the queued chunks of one transfer; returns the file bytes they held.
    pub(crate) fn drop_queued_chunks(&mut self, transfer: u64) -> usize {
        let mut dropped = 0;
        self.bulk.retain(|q| match &q.payload {
            Payload::File(FileFrame::Chunk {
                transfer: t, data, ..
            }) if *t == transfer => {
                dropped += data.len();
                false
            }
            _ => true,
        });
        dropped
    }

    /// File chunks queued and not yet sent.
    pub(crate) fn bulk_queued(&self) -> usize {
        self.bulk.len()
    }

    /// The next message to send: the chat's, else a file chunk, but never a DONE while
    /// file chunks wait (nothing follows a DONE).
    fn next_queue(&mut self) -> &mut VecDeque<Queued> {
        let chat_first = match self.queue.front() {
            Some(q) => !matches!(q.payload, Payload::Done) || self.bulk.is_empty(),
            None => false,
        };
        if chat_first {
            &mut self.queue
        } else {
            &mut self.bulk
        }
    }

    /// Messages on the wire awaiting acknowledgement.
    pub(crate) fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// The SKIP frame value to send with data, while the receiver may not know yet.
    pub(crate) fn pending_skip(&self) -> Option<u64> {
        (self.seq_bits == SeqBits::Full && self.skip_below > self.acked_below)
            .then_some(self.skip_below)
    }

    fn effective_window(&self) -> usize {
        usize::from(self.window.min(self.peer_window).max(1))
    }

    /// How many messages may be in flight for the next one to go: the window, less the
    /// chat's share of it when that is a file chunk (see [`chat_reserve`]).
    fn window_for(&self, bulk: bool) -> usize {
        let window = self.effective_window();
        if bulk {
            window - chat_reserve(window)
        } else {
            window
        }
    }

    /// The `after` of frame `seq` of `stream`, noting it as its stream's latest. With
    /// the alternating bit there is one stream and nothing to tell: 0.
    fn after_for(&mut self, seq: u64, stream: Option<Stream>) -> u16 {
        match (self.seq_bits, stream) {
            (SeqBits::Full, Some(stream)) => {
                after_previous(seq, self.stream_last[stream.index()].replace(seq))
            }
            // DONE (and a kind without a stream) comes after everything before it.
            _ => 0,
        }
    }

    /// Moves queued messages onto the wire while the window has room.
    pub(crate) fn fill_window(
        &mut self,
        now: Instant,
        rto: Duration,
        srtt: Option<Duration>,
        out: &mut Vec<SenderOutput>,
    ) {
        self.next_send_at = None;
        // Until the congestion window or the pacer stops us, we are not testing the path.
        let mut limited = false;
        while let Some((size, bulk)) = self
            .next_queue()
            .front()
            .map(|q| (frame_size(&q.payload), is_bulk(&q.payload)))
        {
            if self.in_flight.len() >= self.window_for(bulk) {
                // Held back by the receiver's window (or, for a chunk, the chat's share
                // of it): not a test of the path either.
                break;
            }
            let cwnd = self.cc.window();
            // Always one message when nothing is in flight, however large.
            if self.bytes_in_flight > 0 && self.bytes_in_flight + size > cwnd {
                limited = true;
                break;
            }
            let at = self.pacer.send_at(now, size, cwnd, srtt, self.max_datagram);
            if at > now {
                self.next_send_at = Some(at);
                limited = true;
                break;
            }
            let Some(q) = self.next_queue().pop_front() else {
                break;
            };
            self.bytes_in_flight += size;
            let seq = self.next_seq;
            self.next_seq += 1;
            let after = self.after_for(seq, q.payload.stream());
            let last_tx = self.next_tx();
            out.push(SenderOutput::Transmit {
                id: q.id,
                seq: self.seq_bits.on_wire(seq),
                after,
                payload: q.payload.clone(),
                attempt: 1,
            });
            self.in_flight.push_back(InFlight {
                id: q.id,
                seq,
                after,
                payload: q.payload,
                queued_at: q.queued_at,
                first_sent_at: now,
                last_sent_at: now,
                attempts: 1,
                retransmit_at: now + rto,
                sacked: false,
                first_tx: last_tx,
                last_tx,
                retransmitted_by: None,
            });
        }
        self.app_limited = !limited;
    }

    /// Applies an acknowledgement from the peer.
    pub(crate) fn on_ack(
        &mut self,
        ack: AckFrame,
        now: Instant,
        rto: Duration,
        out: &mut Vec<SenderOutput>,
    ) -> AckResult {
        let mut result = AckResult::default();
        let cumulative = match self.seq_bits {
            // The alternating bit can only say "the one outstanding got through".
            SeqBits::One => match self.in_flight.front() {
                Some(head) if ack.cumulative == (head.seq + 1) & 1 => head.seq + 1,
                _ => return result,
            },
            SeqBits::Full => {
                if ack.cumulative > self.next_seq {
                    result.beyond_sent = true;
                    return result;
                }
                ack.cumulative
            }
        };
        self.peer_window = ack.window.max(1);
        let mut sample = None;
        let mut acked_tx = 0;
        let min_rtt = self.cc.min_rtt();
        while self.in_flight.front().is_some_and(|m| m.seq < cumulative) {
            let Some(done) = self.in_flight.pop_front() else {
                break;
            };
            if done.attempts == 1 && !done.sacked {
                sample = Some(now.saturating_duration_since(done.first_sent_at));
            }
            acked_tx = acked_tx.max(transmission_acked(&done, now, min_rtt));
            result.progress = true;
            self.remember_retransmitted(done.seq, done.retransmitted_by);
            if !done.sacked {
                let size = frame_size(&done.payload);
                self.bytes_in_flight = self.bytes_in_flight.saturating_sub(size);
                self.cc.on_acked(size, done.last_tx, self.app_limited);
            }
            out.push(SenderOutput::Delivered {
                id: done.id,
                seq: done.seq,
                attempts: done.attempts,
                elapsed: now.saturating_duration_since(done.queued_at),
                kind: done.payload.kind(),
                len: done.payload.wire_len(),
            });
        }
        self.acked_below = self.acked_below.max(cumulative);
        let sacked_span = 8 * ack.sack.as_bytes().len() as u64;
        for m in &mut self.in_flight {
            let Some(offset) = m.seq.checked_sub(cumulative + 1) else {
                continue;
            };
            if offset >= sacked_span {
                break;
            }
            if ack.sack.contains(offset) && !m.sacked {
                m.sacked = true;
                result.progress = true;
                acked_tx = acked_tx.max(transmission_acked(m, now, min_rtt));
                let size = frame_size(&m.payload);
                self.bytes_in_flight = self.bytes_in_flight.saturating_sub(size);
                self.cc.on_acked(size, m.last_tx, self.app_limited);
                if m.attempts == 1 {
                    sample = Some(now.saturating_duration_since(m.first_sent_at));
                }
            }
        }
        self.largest_acked_tx = self.largest_acked_tx.max(acked_tx);
        if let (SeqBits::Full, Some(seq)) = (self.seq_bits, ack.duplicate) {
            result.spurious = self.on_duplicate(seq);
            if result.spurious == Some(Cause::Reordering) {
                // The path reorders more than we allowed for: wait for more evidence.
                self.reordering = (self.reordering + 1).min(MAX_REORDERING_THRESHOLD);
            }
            if result.spurious.is_some() {
                // The loss that shrank the window was no loss.
                self.cc.undo();
            }
        }
        if result.progress {
            self.consecutive_timeouts = 0;
            self.timer_floor = Some(now + rto);
            self.probe_sent = false;
        }
        if let Some(rtt) = sample {
            // Before loss detection: the queue at this moment tells a congestive loss.
            self.cc.on_rtt_sample(rtt);
        }
        self.retransmit_lost(now, rto, out);
        result.rtt_sample = sample;
        result
    }

    /// Resends, at once, every message that something transmitted well after it has
    /// overtaken (see [`REORDERING_THRESHOLD`]).
    fn retransmit_lost(&mut self, now: Instant, rto: Duration, out: &mut Vec<SenderOutput>) {
        let horizon = self.largest_acked_tx;
        for i in 0..self.in_flight.len() {
            // Later messages were first sent later still: none of them can be overtaken.
            if self.in_flight[i].first_tx + self.reordering > horizon {
                break;
            }
            let lost =
                self.in_flight[i].last_tx + self.reordering <= horizon && !self.in_flight[i].sacked;
            if lost {
                let size = frame_size(&self.in_flight[i].payload);
                self.cc
                    .on_lost(size, self.in_flight[i].last_tx, self.transmissions);
                self.resend(i, now, rto, Cause::Reordering, out);
            }
        }
    }

    /// Sends the message at `index` of the window again, with a fresh timer of `rto`.
    fn resend(
        &mut self,
        index: usize,
        now: Instant,
        rto: Duration,
        cause: Cause,
        out: &mut Vec<SenderOutput>,
    ) {
        let last_tx = self.next_tx();
        let Some(m) = self.in_flight.get_mut(index) else {
            return;
        };
        m.attempts += 1;
        m.retransmitted_by = Some(cause);
        m.last_tx = last_tx;
        m.last_sent_at = now;
        m.retransmit_at = now + rto;
        out.push(SenderOutput::Transmit {
            id: m.id,
            seq: self.seq_bits.on_wire(m.seq),
            after: m.after,
            payload: m.payload.clone(),
            attempt: m.attempts,
        });
    }

    /// Arms the tail-loss probe (RACK-TLP, RFC 8985 §7) `delay` from now, unless one was
    /// sent since the last acknowledgement of anything new or nothing is in flight.
    /// When the last datagrams of a burst are lost nothing sent later can reveal it, and
    /// without a probe only the retransmission timer would (a whole RTO, with the
    /// peer's ACK delay allowance); the probe resends the newest message after about two
    /// round trips, and its acknowledgement lets loss detection find the rest.
    pub(crate) fn arm_probe(&mut self, now: Instant, delay: Duration) {
        let anything = self.in_flight.iter().any(|m| !m.sacked);
        self.probe_at = (anything && !self.probe_sent).then(|| now + delay);
    }

    /// When the tail-loss probe fires, if armed.
    pub(crate) fn probe_at(&self) -> Option<Instant> {
        self.probe_at
    }

    /// The tail-loss probe fired: the newest message in flight goes again (no backoff,
    /// no change to the window: it is a question, not a verdict). True if one went.
    pub(crate) fn on_probe(
        &mut self,
        now: Instant,
        rto: Duration,
        out: &mut Vec<SenderOutput>,
    ) -> bool {
        if self.probe_at.is_none_or(|at| at > now) {
            return false;
        }
        self.probe_at = None;
        let Some(newest) = self.in_flight.iter().rposition(|m| !m.sacked) else {
            return false;
        };
        self.probe_sent = true;
        self.resend(newest, now, rto, Cause::Probe, out);
        true
    }

    /// When the earliest retransmission is due: never sooner than one timeout after the
    /// latest acknowledgement of something new (RFC 6298 5.3 restarts the timer on each;
    /// QUIC's PTO counts from the latest packet). While acknowledgements keep coming the
    /// path is alive, and losses are found by loss detection, not by the clock: a queue
    /// that grows faster than the round-trip estimate must not make every message in it
    /// time out.
    pub(crate) fn next_timeout(&self) -> Option<Instant> {
        let earliest = self
            .in_flight
            .iter()
            .filter(|m| !m.sacked)
            .map(|m| m.retransmit_at)
            .min()?;
        Some(
            self.timer_floor
                .map_or(earliest, |floor| earliest.max(floor)),
        )
    }

    /// The retransmission timer expired. Only the oldest unacknowledged messages are sent
    /// again, as many as fill one datagram (RFC 6298 resends the oldest segment; QUIC
    /// sends one or two probe packets), each with a timer of `rto` (already backed off by
    /// the caller); other due messages wait for the same timer. Resending a whole window
    /// on one expiry would turn a scheduling hiccup into a storm, and the probe's
    /// acknowledgement lets loss detection find whatever else is really missing. A message
    /// out of retries fails, and with it everything behind it, because the peer is
    /// evidently unreachable. Returns true if anything was due.
    pub(crate) fn on_timeout(
        &mut self,
        now: Instant,
        rto: Duration,
        out: &mut Vec<SenderOutput>,
    ) -> bool {
        if self.timer_floor.is_some_and(|floor| now < floor) {
            return false;
        }
        let due = |m: &InFlight| !m.sacked && m.retransmit_at <= now;
        let Some(oldest) = self.in_flight.iter().position(due) else {
            return false;
        };
        if self.in_flight[oldest].attempts > self.max_retries {
            self.fail_all(now, out);
            return true;
        }
        self.consecutive_timeouts += 1;
        self.cc
            .on_timeout(self.consecutive_timeouts, self.transmissions);
        let mut room = PROBE_BYTES;
        for i in oldest..self.in_flight.len() {
            if !due(&self.in_flight[i]) {
                continue;
            }
            let size = DATA_FRAME_OVERHEAD + self.in_flight[i].payload.wire_len();
            self.in_flight[i].retransmit_at = now + rto;
            if size > room && i != oldest {
                continue;
            }
            room = room.saturating_sub(size);
            self.resend(i, now, rto, Cause::Timeout, out);
        }
        true
    }

    /// Gives up every message in flight or queued, in order, and arranges for the
    /// receiver to be told to stop waiting for them. A message the receiver has shown
    /// ahead of a gap (see [`shown_ahead`](Self::shown_ahead)) is delivered instead.
    pub(crate) fn fail_all(&mut self, now: Instant, out: &mut Vec<SenderOutput>) {
        self.fail_all_because(now, None, out);
    }

    /// Which messages in flight the receiver has shown although the cumulative
    /// acknowledgement has not passed them (PROTOCOL.md §6), by position in the window:
    /// selectively acknowledged, and the frame each comes after acknowledged, given up,
    /// or shown itself. Not DONE (`after` 0), which is shown only in the order of the
    /// whole stream. What the sender cannot know (an acknowledgement that was lost) it
    /// does not count: this never says shown of what was not.
    fn shown_ahead(&self) -> Vec<bool> {
        // Below this every frame was acknowledged, or given up with a SKIP that went
        // ahead of every later frame, so the receiver was past it when they arrived.
        let settled_below = self.acked_below.max(self.skip_below);
        let mut shown: Vec<bool> = Vec::with_capacity(self.in_flight.len());
        for m in &self.in_flight {
            let previous_shown = match m.seq.checked_sub(u64::from(m.after)) {
                None => true,
                Some(p) if p < settled_below => true,
                Some(p) => self
                    .in_flight
                    .binary_search_by_key(&p, |f| f.seq)
                    .ok()
                    .and_then(|i| shown.get(i).copied())
                    .unwrap_or(false),
            };
            shown
                .push(self.seq_bits == SeqBits::Full && m.sacked && m.after != 0 && previous_shown);
        }
        shown
    }

    /// The message the receiver showed ahead of a gap, reported delivered.
    fn delivered_ahead(m: &InFlight, now: Instant) -> SenderOutput {
        SenderOutput::Delivered {
            id: m.id,
            seq: m.seq,
            attempts: m.attempts,
            elapsed: now.saturating_duration_since(m.queued_at),
            kind: m.payload.kind(),
            len: m.payload.wire_len(),
        }
    }

    /// [`fail_all`](Self::fail_all), every message for `reason` when it is given (else
    /// the first for running out of retries and the rest for an unreachable peer).
    pub(crate) fn fail_all_because(
        &mut self,
        now: Instant,
        reason: Option<FailReason>,
        out: &mut Vec<SenderOutput>,
    ) {
        let mut first = true;
        let shown = self.shown_ahead();
        for (m, shown) in self.in_flight.drain(..).zip(shown) {
            if shown {
                out.push(Self::delivered_ahead(&m, now));
                continue;
            }
            let reason = match reason {
                Some(reason) => reason,
                None if first && !m.sacked => {
                    first = false;
                    FailReason::MaxRetries {
                        attempts: m.attempts,
                    }
                }
                None => FailReason::PeerUnreachable,
            };
            out.push(SenderOutput::Failed {
                id: m.id,
                text: m.payload.to_text(),
                reason,
                kind: m.payload.kind(),
            });
        }
        for q in self.queue.drain(..).chain(self.bulk.drain(..)) {
            out.push(SenderOutput::Failed {
                id: q.id,
                text: q.payload.to_text(),
                reason: reason.unwrap_or(FailReason::PeerUnreachable),
                kind: q.payload.kind(),
            });
        }
        self.skip_below = self.next_seq;
        self.bytes_in_flight = 0;
    }

    /// The peer restarted: its new run expects our stream from 0. Every unacknowledged
    /// message goes back to the queue, in order, to be renumbered; one the ended run
    /// showed ahead of a gap is delivered instead (into `out`). Returns how many went
    /// back. File chunks are dropped instead: the new run knows no transfer, and the
    /// layer above offers the file again from what the peer holds.
    pub(crate) fn restart_stream(&mut self, now: Instant, out: &mut Vec<SenderOutput>) -> usize {
        let shown = self.shown_ahead();
        let mut index = 0;
        self.in_flight.retain(|m| {
            let keep = !shown.get(index).copied().unwrap_or(false);
            index += 1;
            if !keep {
                out.push(Self::delivered_ahead(m, now));
            }
            keep
        });
        // Every file frame was for the run that ended (the new one knows no transfer):
        // the layer above offers its files again, and the peer offers its own.
        let file = |p: &Payload| matches!(p, Payload::File(_));
        self.bulk.clear();
        self.in_flight.retain(|m| !file(&m.payload));
        self.queue.retain(|q| !file(&q.payload));
        let resent = self.in_flight.len();
        for m in self.in_flight.drain(..).rev() {
            self.queue.push_front(Queued {
                id: m.id,
                payload: m.payload,
                queued_at: m.queued_at,
            });
        }
        self.next_seq = 0;
        self.stream_last = [None; Stream::ALL.len()];
        self.acked_below = 0;
        self.skip_below = 0;
        self.peer_window = self.window;
        self.recent_retransmitted.clear();
        self.bytes_in_flight = 0;
        resent
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Sack;

    const RTO: Duration = Duration::from_secs(3);

    fn ack(cumulative: u64, sack: u64) -> AckFrame {
        AckFrame {
            cumulative,
            sack: Sack::from_bits(sack),
            window: 64,
            ..Default::default()
        }
    }

    fn sender(window: u16) -> Sender {
        Sender::new(window, SeqBits::Full, 2, MAX_DATAGRAM)
    }

    /// A sender with `messages` texts queued and the first window already sent.
    fn loaded(window: u16, messages: u64, t0: Instant) -> Sender {
        let mut s = sender(window);
        for i in 0..messages {
            s.push(MessageId(i), Payload::Text(format!("m{i}")), t0);
        }
        s.fill_window(t0, RTO, None, &mut Vec::new());
        s
    }

    fn sent_seqs(out: &[SenderOutput]) -> Vec<u64> {
        out.iter()
            .filter_map(|o| match o {
                SenderOutput::Transmit { seq, .. } => Some(*seq),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn stop_and_wait_sends_one_at_a_time_and_samples_the_round_trip() {
        let t0 = Instant::now();
        let mut s = sender(1);
        s.push(MessageId(1), Payload::Text("a".into()), t0);
        s.push(MessageId(2), Payload::Text("b".into()), t0);
        let mut out = Vec::new();
        s.fill_window(t0, RTO, None, &mut out);
        assert_eq!(sent_seqs(&out), vec![0]);
        out.clear();
        let r = s.on_ack(ack(1, 0), t0 + Duration::from_millis(10), RTO, &mut out);
        assert_eq!(r.rtt_sample, Some(Duration::from_millis(10)));
        assert!(r.progress);
        assert!(matches!(
            out[0],
            SenderOutput::Delivered {
                seq: 0,
                attempts: 1,
                ..
            }
        ));
        out.clear();
        s.fill_window(t0, RTO, None, &mut out);
        assert_eq!(sent_seqs(&out), vec![1]);
    }

    #[test]
    fn karn_no_sample_from_a_retransmitted_message() {
        let t0 = Instant::now();
        let mut s = sender(1);
        s.push(MessageId(1), Payload::Text("a".into()), t0);
        let mut out = Vec::new();
        s.fill_window(t0, RTO, None, &mut out);
        s.on_timeout(t0 + RTO, RTO, &mut out);
        let r = s.on_ack(
            ack(1, 0),
            t0 + RTO + Duration::from_millis(5),
            RTO,
            &mut out,
        );
        assert_eq!(r.rtt_sample, None);
        assert!(r.progress);
    }

    #[test]
    fn an_ack_too_soon_after_a_retransmission_does_not_make_the_window_look_lost() {
        let t0 = Instant::now();
        let mut s = sender(16);
        // Each fills most of a datagram, so a timer expiry resends one.
        for i in 0..10 {
            s.push(MessageId(i), Payload::Text("x".repeat(1000)), t0);
        }
        let mut out = Vec::new();
        s.fill_window(t0, RTO, None, &mut out);
        assert_eq!(sent_seqs(&out).len(), 10);
        out.clear();
        // A round trip of 10 ms is measured.
        s.on_ack(ack(1, 0), t0 + Duration::from_millis(10), RTO, &mut out);
        // The receiver stalls; the timer resends the oldest (message 1).
        let now = s.next_timeout().unwrap();
        assert!(s.on_timeout(now, RTO, &mut out));
        assert_eq!(sent_seqs(&out), vec![1]);
        out.clear();
        // 1 ms later message 1 is acknowledged: too soon for the copy just sent, so the
        // acknowledgement was for the first one, and messages 2-9 were not overtaken.
        s.on_ack(ack(2, 0), now + Duration::from_millis(1), RTO, &mut out);
        assert_eq!(sent_seqs(&out), Vec::<u64>::new());
        // A later acknowledgement of message 1's copy would count as the copy's.
    }

    #[test]
    fn retransmits_then_fails_everything_with_its_text() {
        let t0 = Instant::now();
        let mut s = sender(1);
        s.push(MessageId(1), Payload::Text("a".into()), t0);
        s.push(MessageId(2), Payload::Text("b".into()), t0);
        let mut out = Vec::new();
        s.fill_window(t0, RTO, None, &mut out);
        let mut now = t0;
        for attempt in 2..=3 {
            out.clear();
            now = s.next_timeout().unwrap();
            assert!(s.on_timeout(now, RTO, &mut out));
            assert!(matches!(out[0], SenderOutput::Transmit { attempt: a, .. } if a == attempt));
        }
        out.clear();
        s.on_timeout(now + RTO, RTO, &mut out);
        assert_eq!(
            out,
            vec![
                SenderOutput::Failed {
                    id: MessageId(1),
                    text: "a".into(),
                    reason: FailReason::MaxRetries { attempts: 3 },
                    kind: 0,
                },
                SenderOutput::Failed {
                    id: MessageId(2),
                    text: "b".into(),
                    reason: FailReason::PeerUnreachable,
                    kind: 0,
                },
            ]
        );
        assert!(s.is_idle());
        assert_eq!(s.pending_skip(), Some(1));
        s.push(MessageId(3), Payload::Text("c".into()), now);
        out.clear();
        s.fill_window(now, RTO, None, &mut out);
        assert_eq!(sent_seqs(&out), vec![1]);
        s.on_ack(ack(2, 0), now, RTO, &mut out);
        assert_eq!(s.pending_skip(), None);
    }

    #[test]
    fn ack_beyond_sent_is_refused_and_stale_ack_is_harmless() {
        let t0 = Instant::now();
        let mut s = sender(4);
        s.push(MessageId(1), Payload::Text("a".into()), t0);
        let mut out = Vec::new();
        s.fill_window(t0, RTO, None, &mut out);
        assert!(s.on_ack(ack(5, 0), t0, RTO, &mut out).beyond_sent);
        out.clear();
        let r = s.on_ack(ack(0, 0), t0, RTO, &mut out);
        assert!(!r.beyond_sent && !r.progress);
        assert!(out.is_empty());
    }

    #[test]
    fn sacked_messages_are_not_retransmitted() {
        let t0 = Instant::now();
        let mut s = loaded(4, 3, t0);
        let mut out = Vec::new();
        s.on_ack(ack(0, 0b11), t0, RTO, &mut out);
        s.on_timeout(t0 + RTO, RTO, &mut out);
        assert_eq!(sent_seqs(&out), vec![0]);
    }

    #[test]
    fn a_lost_retransmission_is_resent_again_without_waiting_for_the_timer() {
        let t0 = Instant::now();
        let mut s = loaded(16, 10, t0);
        let mut out = Vec::new();
        // 0 lost; 1..=3 arrive: 0 is resent (transmission 11).
        s.on_ack(ack(0, 0b111), t0, RTO, &mut out);
        assert_eq!(sent_seqs(&out), vec![0]);
        out.clear();
        // 4..=9 arrive, all sent before the retransmission: no new verdict on 0.
        s.on_ack(ack(0, 0b1_1111_1111), t0, RTO, &mut out);
        assert!(sent_seqs(&out).is_empty());
        // More messages sent after the retransmission arrive, the retransmission did not:
        // it was lost too, and goes again at once.
        for i in 10..14 {
            s.push(MessageId(i), Payload::Text(format!("m{i}")), t0);
        }
        s.fill_window(t0, RTO, None, &mut out);
        out.clear();
        s.on_ack(ack(0, 0b1_1111_1111_1111), t0, RTO, &mut out);
        assert_eq!(sent_seqs(&out), vec![0]);
    }

    #[test]
    fn a_hole_with_three_later_messages_acknowledged_is_resent_at_once() {
        let t0 = Instant::now();
        let mut s = loaded(8, 5, t0);
        let mut out = Vec::new();
        // 0 lost; 1 and 2 arrive: not yet enough evidence.
        s.on_ack(ack(0, 0b11), t0, RTO, &mut out);
        assert!(sent_seqs(&out).is_empty());
        // 3 arrives too: 0 is resent once, without waiting for the timer.
        s.on_ack(ack(0, 0b111), t0, RTO, &mut out);
        assert_eq!(sent_seqs(&out), vec![0]);
        out.clear();
        s.on_ack(ack(0, 0b1111), t0, RTO, &mut out);
        assert!(sent_seqs(&out).is_empty(), "only once per hole");
    }

    #[test]
    fn the_receivers_window_limits_what_is_in_flight() {
        let t0 = Instant::now();
        let mut s = sender(64);
        for i in 0..10 {
            s.push(MessageId(i), Payload::Text(format!("m{i}")), t0);
        }
        let mut out = Vec::new();
        s.on_ack(
            AckFrame {
                cumulative: 0,
                sack: Sack::EMPTY,
                window: 2,
                ..Default::default()
            },
            t0,
            RTO,
            &mut out,
        );
        s.fill_window(t0, RTO, None, &mut out);
        assert_eq!(sent_seqs(&out), vec![0, 1]);
        assert_eq!(s.in_flight(), 2);
    }

    #[test]
    fn restart_requeues_unacknowledged_in_order_from_zero() {
        let t0 = Instant::now();
        let mut s = sender(2);
        for i in 0..3 {
            s.push(MessageId(i), Payload::Text(format!("m{i}")), t0);
        }
        let mut out = Vec::new();
        s.fill_window(t0, RTO, None, &mut out);
        s.on_ack(ack(1, 0), t0, RTO, &mut out);
        out.clear();
        s.fill_window(t0, RTO, None, &mut out);
        out.clear();
        assert_eq!(s.restart_stream(t0, &mut out), 2);
        assert!(out.is_empty(), "nothing was shown ahead: {out:?}");
        out.clear();
        s.fill_window(t0, RTO, None, &mut out);
        let sent: Vec<_> = out
            .iter()
            .map(|o| match o {
                SenderOutput::Transmit { id, seq, .. } => (id.0, *seq),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(sent, vec![(1, 0), (2, 1)]);
    }
}
