//! The session with one peer: epochs and the HELLO exchange, one [`Sender`] and one
//! [`Receiver`], round-trip estimation, keepalives and the peer's state, and the queues of
//! transmits and events the caller drains.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::config::Config;
use crate::error::{DecodeError, RejectReason, SendError};
use crate::event::{Event, FailReason, MessageId, PeerState};
use crate::receiver::{Arrival, Receiver};
use crate::rtt::RttEstimator;
use crate::sender::{Sender, SenderOutput};
use crate::stats::Stats;
use crate::transmit::Transmit;
use crate::wire::{
    AckFrame, CloseReason, FileFrame, Frame, Packet, Payload, StableId, Trailer, CHUNK_HEADER_LEN,
    CRC_LEN, HEADER_LEN, MAX_NICK_LEN, STABLE_ID_LEN,
};

/// Payload kinds that are not messages of their own (see [`Payload`]).
mod kind {
    pub(super) const PART: u8 = 4;
    pub(super) const FILE_FIRST: u8 = 5;
    pub(super) const FILE_CHUNK: u8 = 8;
    pub(super) const FILE_LAST: u8 = 9;
}

/// One of our messages, whole: what `send` was given.
#[derive(Debug)]
struct LongMessage {
    text: String,
    stable: Option<StableId>,
    /// Its first frame went out (reported as [`Event::Sent`]).
    started: bool,
    /// Its failure was reported (once, with the whole text).
    failed: bool,
}

impl LongMessage {
    /// The DATA payloads that carry it when a frame holds at most `max` bytes: parts
    /// cut at character boundaries, then the last piece as a text or numbered text.
    fn payloads(&self, max: usize) -> Vec<Payload> {
        let last_max = match self.stable {
            Some(_) => max.saturating_sub(STABLE_ID_LEN),
            None => max,
        }
        .max(4);
        let max = max.max(4);
        let mut rest = self.text.as_str();
        let mut payloads = Vec::new();
        while rest.len() > last_max {
            let mut cut = max.min(rest.len());
            // A character is at most 4 bytes, so this stops within 3 steps above 0.
            while !rest.is_char_boundary(cut) {
                cut -= 1;
            }
            let (part, tail) = rest.split_at(cut);
            payloads.push(Payload::Part(part.to_owned()));
            rest = tail;
        }
        payloads.push(match self.stable {
            Some(id) => Payload::Numbered {
                id,
                text: rest.to_owned(),
            },
            None => Payload::Text(rest.to_owned()),
        });
        payloads
    }
}

/// A message of the peer's arriving in parts (PROTOCOL.md §3, kind 4).
#[derive(Debug)]
struct Reassembly {
    /// The sequence number of its first part: a SKIP above it gave the rest up.
    first: u64,
    text: String,
    /// Bytes that arrived, kept or not: past the limit the text is dropped.
    len: usize,
}

/// How many ended runs of the peer are remembered, so their late datagrams are
/// recognised as stale instead of being taken for yet another restart.
const RETIRED_EPOCHS: usize = 16;

/// How many times our DONE goes unanswered, once the peer's DONE is in and everything
/// else of ours is confirmed, before we take it that the peer has left and only our
/// last acknowledgement (or its CLOSE) was lost. The peer ends only after receiving our
/// DONE, so in that state it either has it or is still there to acknowledge it.
const GOODBYE_ATTEMPTS: u32 = 6;

/// The keepalive interval while waiting for the peer's goodbye when the configuration
/// has none (classic mode): the default keepalive.
const GOODBYE_KEEPALIVE: Duration = Duration::from_secs(5);

/// The end of the conversation: ours (DONE sent), the peer's (DONE received), and how
/// it closed.
#[derive(Debug, Default)]
struct Goodbye {
    /// Our DONE, once [`Session::finish`] queued it.
    done: Option<MessageId>,
    /// The peer acknowledged our DONE, and with it everything before.
    done_delivered: bool,
    /// Our DONE was given up (the peer is unreachable): there is nothing to wait for.
    done_failed: bool,
    /// The peer's DONE arrived: it sends nothing more.
    peer_done: bool,
    /// The peer's run sent CLOSE: `Some(finished)`.
    peer_left: Option<bool>,
    /// [`Session::close`] was called: this run says nothing more of its own.
    closed: bool,
    /// After a finished goodbye, the last ACK and CLOSE (frozen at close) are repeated
    /// and given in answer to the peer until then: its own last word may still be
    /// missing them (TCP's TIME-WAIT, QUIC's closing period).
    draining: Option<Draining>,
}

/// The closing period after a finished goodbye.
#[derive(Debug)]
struct Draining {
    /// The ACK sent with the CLOSE.
    ack: AckFrame,
    /// When it ends at the latest.
    until: Instant,
    /// When the CLOSE is next repeated unasked, and the interval after that (doubling).
    repeat_at: Instant,
    interval: Duration,
}

/// The closing period lasts this many retransmission timeouts: the peer, missing our
/// CLOSE, resends its last messages after one, three, seven timeouts (backoff), and each
/// is answered; we also repeat the CLOSE unasked at the same moments.
const DRAIN_TIMEOUTS: u32 = 8;

/// What the receiver may acknowledge under [`Config::durable_receive`]: messages are
/// acknowledged only once the caller has taken their events and made them durable.
#[derive(Debug, Default)]
struct Durability {
    /// Every message of the current stream below this is durable.
    upto: u64,
    /// Deliveries not yet confirmed: the count of events up to and including each
    /// delivery's last one, and the receiver's next expected sequence number after it.
    unconfirmed: VecDeque<(u64, u64)>,
    /// Frames shown ahead of a gap and not yet confirmed: the count of events up to and
    /// including theirs, and their sequence number. Acknowledgements report them only
    /// once confirmed, since a sender that gives up counts them delivered.
    shown_ahead: VecDeque<(u64, u64)>,
}

/// A reliable, ordered, exactly-once message session with one peer.
///
/// See the crate documentation for the calling contract.
#[derive(Debug)]
pub struct Session {
    config: Config,
    local_epoch: u64,
    peer_addr: SocketAddr,
    /// The peer's current run, once learnt from a HELLO, from any packet addressed to our
    /// epoch (in a HELLO session), or from [`Session::adopt_peer`].
    peer_epoch: Option<u64>,
    /// Whether this session runs the HELLO exchange ([`Session::new`]) or leaves the
    /// peer's run to the layer below ([`Session::new_without_hello`]).
    sends_hello: bool,
    retired: VecDeque<u64>,
    /// The peer's run that last left with a CLOSE: the copy of its last packet (a CLOSE
    /// travels twice) and anything late from it are dropped without a word, as the end
    /// it announced rather than a rejected datagram.
    left_epoch: Option<u64>,
    /// Ids of nickname announcements in flight: delivered or failed like messages,
    /// but not counted as messages in [`Stats`].
    announcements: HashSet<MessageId>,
    /// Our messages longer than one datagram, sent as parts, until delivered or failed:
    /// the whole text, to report a failure with it and to send the message whole again
    /// to a new run of the peer.
    long: HashMap<MessageId, LongMessage>,
    /// The peer's longer message being put together from its parts.
    reassembly: Option<Reassembly>,
    /// Bytes of file data the peer has acknowledged, over the session's life.
    file_bytes_acked: u64,
    /// File frames given up, over the session's life.
    file_frames_failed: u64,
    peer_state: PeerState,
    /// While the peer's epoch is unknown, when to send the next HELLO.
    hello_at: Option<Instant>,
    /// When the first HELLO went out, for a round-trip sample if it is answered.
    first_hello_at: Instant,
    /// No packet addressed to this run has arrived yet: the first one answers our first
    /// HELLO and gives a round-trip sample, if that HELLO was the only one (Karn's rule).
    hello_sample_pending: bool,
    /// HELLOs sent so far without an answer, for Karn's rule on the HELLO sample. They
    /// spend no message's retry budget: before the peer is known messages just wait.
    hello_attempts: u32,
    /// When the session was created: [`Event::NoAnswer`] says how long it has waited.
    started: Instant,
    /// While the peer's epoch is unknown, when to say that nobody answers
    /// ([`Event::NoAnswer`]) and fail what is queued.
    no_answer_at: Option<Instant>,
    rtt: RttEstimator,
    /// When we last received a valid packet of the current pair from the peer.
    last_heard: Instant,
    /// Since when we have been waiting for any answer to something that asks for one.
    awaiting_since: Option<Instant>,
    /// The PING waiting for its PONG: token and when it was sent.
    ping: Option<(u64, Instant)>,
    next_ping_token: u64,
    sender: Sender,
    receiver: Receiver,
    /// An acknowledgement is to go out at the next `poll_transmit`.
    ack_pending: bool,
    /// With delayed ACKs ([`Config::ack_delay`]), when the held acknowledgement is due.
    ack_due_at: Option<Instant>,
    /// Packets with DATA or SKIP frames not acknowledged yet.
    unacked_packets: u32,
    /// When the newest of them arrived: the ACK says how long it was held.
    newest_data_at: Instant,
    goodbye: Goodbye,
    /// With [`Config::durable_receive`], what the caller has made durable.
    durable: Durability,
    next_id: u64,
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
    /// Events taken with [`Session::poll_event`] so far: with `events.len()`, where in
    /// the stream of events a delivery's events end.
    events_taken: u64,
    stats: Stats,
    /// Latest `now` seen, so a clock that steps back cannot move timers backwards.
    now: Instant,
}

impl Session {
    /// Creates a session with the peer at `peer_addr` that learns the peer's run with the
    /// HELLO exchange. `local_epoch` must be random and non-zero, chosen once per process
    /// start (0 is replaced by 1). The first HELLO is ready in
    /// [`poll_transmit`](Self::poll_transmit) at once.
    pub fn new(config: Config, local_epoch: u64, peer_addr: SocketAddr, now: Instant) -> Self {
        let mut session = Self::build(config, local_epoch, peer_addr, now, true);
        session.send_hello(0);
        session.hello_attempts = 1;
        session.hello_at = Some(now + session.rtt.rto());
        session
    }

    /// Creates a session for use under a layer that authenticates the peer itself (the
    /// secure handshake of `udpchat-secure`, which already carries both epochs): no HELLO
    /// is ever sent, which saves the round trip a HELLO exchange would add after that
    /// handshake.
    ///
    /// Messages wait until the layer below calls [`adopt_peer`](Self::adopt_peer); until
    /// then nothing is sent, and the connect-timeout verdict ([`Event::NoAnswer`]) applies
    /// as in a HELLO session. The peer's run changes only through `adopt_peer`: a datagram
    /// addressed to us from any other run is rejected as
    /// [`RejectReason::UnknownEpoch`], and a misaddressed one as
    /// [`RejectReason::WrongDestinationEpoch`] without an answer. `local_epoch` is as for
    /// [`new`](Self::new), and must be the one the layer below announces.
    pub fn new_without_hello(
        config: Config,
        local_epoch: u64,
        peer_addr: SocketAddr,
        now: Instant,
    ) -> Self {
        let mut session = Self::build(config, local_epoch, peer_addr, now, false);
        // No HELLO goes out, so none can be answered with a round-trip sample.
        session.hello_sample_pending = false;
        session
    }

    fn build(
        config: Config,
        local_epoch: u64,
        peer_addr: SocketAddr,
        now: Instant,
        sends_hello: bool,
    ) -> Self {
        let window = config.effective_window();
        let mut session = Self {
            sender: Sender::new(
                window,
                config.seq_bits,
                config.max_retries,
                config.effective_max_datagram(),
            ),
            receiver: Receiver::new(window, config.seq_bits)
                .with_durable_receive(config.durable_receive),
            rtt: RttEstimator::new(config.rto),
            config,
            local_epoch: local_epoch.max(1),
            peer_addr,
            peer_epoch: None,
            sends_hello,
            retired: VecDeque::new(),
            left_epoch: None,
            announcements: HashSet::new(),
            long: HashMap::new(),
            reassembly: None,
            file_bytes_acked: 0,
            file_frames_failed: 0,
            peer_state: PeerState::Connecting,
            hello_at: None,
            first_hello_at: now,
            hello_sample_pending: true,
            hello_attempts: 0,
            started: now,
            no_answer_at: None,
            last_heard: now,
            awaiting_since: None,
            ping: None,
            next_ping_token: 1,
            ack_pending: false,
            ack_due_at: None,
            unacked_packets: 0,
            newest_data_at: now,
            goodbye: Goodbye::default(),
            durable: Durability::default(),
            next_id: 0,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            events_taken: 0,
            stats: Stats::default(),
            now,
        };
        session.no_answer_at = session.no_answer_after(now);
        session
    }

    /// Tells the session that the layer below authenticated the peer's run `peer_epoch`
    /// (its handshake carries the epochs of both sides).
    ///
    /// The first call connects, as the first HELLO does: [`Event::Connected`], the peer
    /// is online, and queued messages go out at the next
    /// [`poll_transmit`](Self::poll_transmit). A later call with another epoch is a
    /// restart of the peer: [`Event::PeerRestarted`], its old stream is forgotten and our
    /// unacknowledged messages are sent again to the new run, renumbered from 0. The
    /// current epoch again changes nothing, and so does 0, which no run may use. The layer
    /// below is the authority: a run it authenticates is taken as current even if it had
    /// been retired. Works on a HELLO session too.
    pub fn adopt_peer(&mut self, now: Instant, peer_epoch: u64) {
        let now = self.advance(now);
        if peer_epoch == 0 || self.peer_epoch == Some(peer_epoch) {
            return;
        }
        self.retired.retain(|&epoch| epoch != peer_epoch);
        // A packet addressed to us no longer tells when our first HELLO was answered.
        self.hello_sample_pending = false;
        self.adopt_peer_epoch(peer_epoch);
        // The handshake below came from the peer: it is there now.
        self.heard_from_peer(now);
    }

    /// Feeds one round-trip sample measured by the layer below: the secure handshake's
    /// request and response are a round trip.
    ///
    /// Without it, the first retransmission timeout is RFC 6298's initial 1 s, and in a
    /// HELLO session the first sample would include the wait for the handshake. RFC 6298
    /// (2.2) sets SRTT and RTTVAR from the first measurement, and QUIC (RFC 9002) takes
    /// its first sample from the handshake; this lets the first messages' timers rest on
    /// a real measurement, so call it before [`adopt_peer`](Self::adopt_peer). The sample
    /// must come from an exchange sent once (Karn's rule). A fixed timeout
    /// ([`RtoPolicy::Fixed`](crate::RtoPolicy::Fixed)) is not changed by it.
    pub fn on_rtt_sample(&mut self, now: Instant, rtt: Duration) {
        self.advance(now);
        self.rtt.on_sample(rtt);
    }

    /// Queues a message. It is sent when the window allows, and ends in exactly one
    /// [`Event::Delivered`] or [`Event::Failed`] carrying the same id. Refused, with the
    /// text left to the caller, when it is too long or the queue is full.
    pub fn send(&mut self, now: Instant, text: String) -> Result<MessageId, SendError> {
        let max = self.max_message_len();
        self.queue_message(
            now,
            LongMessage {
                text,
                stable: None,
                started: false,
                failed: false,
            },
            max,
        )
    }

    /// The longest message this side sends: [`Config::max_message_len`], never more than
    /// the protocol's [`MAX_MESSAGE_LEN`](crate::MAX_MESSAGE_LEN) (which every receiver
    /// accepts) and never less than one datagram's text.
    pub fn max_message_len(&self) -> usize {
        self.config
            .max_message_len
            .min(crate::MAX_MESSAGE_LEN)
            .max(self.max_text_len())
    }

    /// The longest message this side puts together from a peer's parts: the protocol's
    /// maximum, whatever this side's own sending limit is, so that what the peer may send
    /// is never refused after it was acknowledged.
    fn max_accepted_len(&self) -> usize {
        crate::MAX_MESSAGE_LEN.max(self.max_text_len())
    }

    /// Queues a message of any length up to `max`: one DATA frame when it fits, else
    /// parts (kind 4) and a last frame that carries its kind.
    fn queue_message(
        &mut self,
        now: Instant,
        message: LongMessage,
        max: usize,
    ) -> Result<MessageId, SendError> {
        if message.text.len() > max {
            return Err(SendError::TooLong {
                len: message.text.len(),
                max,
            });
        }
        let payloads = message.payloads(self.max_text_len());
        let parts = payloads.len();
        let id = self.queue_payloads(now, payloads)?;
        if parts > 1 {
            self.long.insert(id, message);
        }
        Ok(id)
    }

    /// Queues a frame of the file transfer protocol (PROTOCOL.md §6c). Chunks wait
    /// behind every chat message; offers and answers go with them. None of these is a
    /// message: no event reports them, and their acknowledgement is counted in
    /// [`file_bytes_acked`](Self::file_bytes_acked) for chunks.
    pub fn send_file_frame(&mut self, now: Instant, frame: FileFrame) -> Result<(), SendError> {
        let len = frame.wire_len();
        if len > self.max_text_len() {
            return Err(SendError::TooLong {
                len,
                max: self.max_text_len(),
            });
        }
        // An answer to the peer's transfer may follow our DONE: the peer's file is not
        // a message of ours, and the goodbye waits for the answer to be acknowledged.
        let answer = matches!(
            frame,
            FileFrame::Accept { .. } | FileFrame::Cancel { .. } | FileFrame::Stored { .. }
        );
        if self.goodbye.closed || (self.goodbye.done.is_some() && !answer) {
            return Err(SendError::Finished);
        }
        // Chunks are held back by the caller (it keeps few queued); anything else counts
        // against the queue, so a peer that never acknowledges cannot grow it.
        let chunk = matches!(frame, FileFrame::Chunk { .. });
        if !chunk && !self.can_send() {
            return Err(SendError::QueueFull {
                limit: self.config.send_queue,
            });
        }
        let now = self.advance(now);
        let id = MessageId(self.next_id);
        self.next_id += 1;
        self.sender.push(id, Payload::File(frame), now);
        self.expect_a_peer(now);
        Ok(())
    }

    /// Bytes of file data a chunk may carry under this configuration.
    pub fn max_chunk_len(&self) -> usize {
        self.max_text_len().saturating_sub(CHUNK_HEADER_LEN)
    }

    /// Drops the queued, not yet sent, chunks of `transfer`: the peer lost track of it,
    /// and what it needs next is the offer, then chunks from where it says. Returns the
    /// file bytes they held.
    pub fn drop_file_chunks(&mut self, transfer: u64) -> u64 {
        self.sender.drop_queued_chunks(transfer) as u64
    }

    /// File chunks queued and not yet sent: a driver reading a file keeps this short
    /// (a few congestion windows), so memory does not grow with the file.
    pub fn file_chunks_queued(&self) -> usize {
        self.sender.bulk_queued()
    }

    /// Bytes of file data the peer has acknowledged since the session began.
    pub fn file_bytes_acked(&self) -> u64 {
        self.file_bytes_acked
    }

    /// File frames given up (the peer became unreachable or left) since the session
    /// began: the transfers they belonged to must start again from an offer.
    pub fn file_frames_failed(&self) -> u64 {
        self.file_frames_failed
    }

    /// Queues a message that carries the caller's stable id for it (its store and its
    /// number there, kept by the caller): sent again after a restart of either side, it
    /// keeps the id, so the peer shows it once (PROTOCOL.md §6b). Otherwise as
    /// [`send`](Self::send), except for the length: the caller numbered and kept it
    /// under the sending limit of its time (perhaps an earlier run's), so only what the
    /// protocol cannot carry ([`MAX_MESSAGE_LEN`](crate::MAX_MESSAGE_LEN)) is refused
    /// here; a kept message never blocks the ones behind it after a lower limit.
    pub fn send_numbered(
        &mut self,
        now: Instant,
        id: StableId,
        text: String,
    ) -> Result<MessageId, SendError> {
        let max = self.max_accepted_len();
        self.queue_message(
            now,
            LongMessage {
                text,
                stable: Some(id),
                started: false,
                failed: false,
            },
            max,
        )
    }

    /// Says that every message whose events were taken with
    /// [`poll_event`](Self::poll_event) is now durable (committed to the caller's store),
    /// so acknowledgements may cover them. Only meaningful with
    /// [`Config::durable_receive`]; call it after draining the events and committing.
    pub fn confirm_durable(&mut self) {
        while let Some(&(last_event, upto)) = self.durable.unconfirmed.front() {
            if last_event > self.events_taken {
                break;
            }
            self.durable.upto = self.durable.upto.max(upto);
            self.durable.unconfirmed.pop_front();
        }
        while let Some(&(last_event, seq)) = self.durable.shown_ahead.front() {
            if last_event > self.events_taken {
                break;
            }
            self.receiver.confirm_shown(seq);
            self.durable.shown_ahead.pop_front();
        }
    }

    /// Received messages are waiting to be made durable before they may be acknowledged.
    fn awaiting_durability(&self) -> bool {
        self.config.durable_receive
            && (self.durable.upto < self.receiver.expected()
                || !self.durable.shown_ahead.is_empty())
    }

    /// Tells the peer our nickname, in order with our messages: it applies from the next
    /// message on. Delivered or failed like a message, under the returned id.
    pub fn send_nick(&mut self, now: Instant, nick: String) -> Result<MessageId, SendError> {
        if nick.len() > MAX_NICK_LEN {
            return Err(SendError::TooLong {
                len: nick.len(),
                max: MAX_NICK_LEN,
            });
        }
        let id = self.queue_payload(now, Payload::Nick(nick))?;
        self.stats.messages_queued -= 1;
        self.stats.nicks_sent += 1;
        self.announcements.insert(id);
        Ok(id)
    }

    fn queue_payload(&mut self, now: Instant, payload: Payload) -> Result<MessageId, SendError> {
        self.queue_payloads(now, vec![payload])
    }

    /// Queues one message as these payloads, in order, under one id.
    fn queue_payloads(
        &mut self,
        now: Instant,
        payloads: Vec<Payload>,
    ) -> Result<MessageId, SendError> {
        if self.goodbye.done.is_some() || self.goodbye.closed {
            return Err(SendError::Finished);
        }
        if !self.can_send() {
            return Err(SendError::QueueFull {
                limit: self.config.send_queue,
            });
        }
        let now = self.advance(now);
        let id = MessageId(self.next_id);
        self.next_id += 1;
        self.stats.messages_queued += 1;
        // Not sent yet: poll_transmit fills the window, so messages queued together
        // share datagrams.
        for payload in payloads {
            self.sender.push(id, payload, now);
        }
        self.expect_a_peer(now);
        Ok(id)
    }

    /// Something was queued while no peer run is known (at the start, or after the peer
    /// left): arm the no-answer verdict, so it is said if nobody comes in time.
    fn expect_a_peer(&mut self, now: Instant) {
        if self.peer_epoch.is_none() && self.no_answer_at.is_none() {
            self.no_answer_at = self.no_answer_after(now);
        }
    }

    /// Ends our stream: nothing more will be sent (our input ended). A DONE goes after
    /// every message already queued; [`send`](Self::send) refuses from now on. The
    /// conversation is over ([`is_finished`](Self::is_finished)) once the peer has
    /// acknowledged the DONE, and with it every message, and has said the same, or has
    /// left, or is unreachable. Until then the session keeps acknowledging the peer.
    /// Calling it again does nothing.
    pub fn finish(&mut self, now: Instant) {
        if self.goodbye.done.is_some() || self.goodbye.closed {
            return;
        }
        let now = self.advance(now);
        let id = MessageId(self.next_id);
        self.next_id += 1;
        self.goodbye.done = Some(id);
        self.sender.push(id, Payload::Done, now);
        self.expect_a_peer(now);
    }

    /// True once our DONE and everything we sent, before and after it, is acknowledged:
    /// the peer has every line and file frame of ours. A side that only came to deliver
    /// (`udpchat --send`) may [`close`](Self::close) then without waiting for the
    /// peer's own DONE; the peer learns that it left.
    pub fn is_confirmed(&self) -> bool {
        self.goodbye.done_delivered && self.sender.outstanding() == 0
    }

    /// True once the goodbye is over and the program may exit: after
    /// [`finish`](Self::finish), every message of ours is settled (delivered or failed)
    /// and
    /// - the peer acknowledged our DONE and sent its own, or became unreachable; or
    /// - every message of ours but the DONE is confirmed and the peer is unreachable; or
    /// - the peer left (CLOSE), or our DONE was given up, or no peer ever answered and
    ///   nothing but the DONE is left to send; or
    /// - the peer's DONE is in, everything else of ours is confirmed, and our DONE went
    ///   unanswered [`GOODBYE_ATTEMPTS`] times: the peer had it and only its last word
    ///   was lost.
    ///
    /// Then call [`close`](Self::close).
    pub fn is_finished(&self) -> bool {
        let g = &self.goodbye;
        let Some(done) = g.done else {
            return g.closed;
        };
        if g.closed || g.done_failed || g.peer_left.is_some() {
            return true;
        }
        let unreachable = self.peer_state == PeerState::Unreachable;
        if g.done_delivered {
            // Answers to the peer's transfers may follow our DONE; they settle too.
            return (g.peer_done && self.sender.outstanding() == 0) || unreachable;
        }
        // Every line of ours is settled; the DONE alone is outstanding.
        let only_done_left = self.sender.outstanding() == 1;
        if only_done_left && (self.peer_epoch.is_none() || unreachable) {
            // Nobody ever answered (no one to say goodbye to), or the peer has not
            // answered for the peer timeout: it is gone (crashed, or left unheard).
            return true;
        }
        g.peer_done
            && only_done_left
            && self
                .sender
                .attempts_of(done)
                .is_some_and(|attempts| attempts >= GOODBYE_ATTEMPTS)
    }

    /// True when the peer's DONE has arrived: it will send nothing more.
    pub fn peer_done(&self) -> bool {
        self.goodbye.peer_done
    }

    /// This run is leaving: sends, at once, an acknowledgement of everything received
    /// together with a CLOSE (twice), so the peer stops waiting and reports what we never
    /// acknowledged as not shown. After a complete goodbye the CLOSE says `finished`, and
    /// a short closing period follows in which it is repeated and given in answer to
    /// anything the peer still sends, until the peer's own CLOSE or at most
    /// [`DRAIN_TIMEOUTS`] timeouts ([`is_closed`](Self::is_closed) says when it is over).
    /// Otherwise (Ctrl-C, `/quit`) it says the person left, and that is all. Nothing else
    /// is sent or shown after `close`; what of ours is unsettled stays the caller's to
    /// report.
    pub fn close(&mut self, now: Instant) {
        if self.goodbye.closed {
            return;
        }
        let now = self.advance(now);
        let finished = self.goodbye.done_delivered && self.goodbye.peer_done;
        self.goodbye.closed = true;
        self.ack_pending = false;
        self.ack_due_at = None;
        if self.peer_epoch.is_none() || self.goodbye.peer_left.is_some() {
            return;
        }
        let reason = if finished {
            CloseReason::Finished
        } else {
            CloseReason::Left
        };
        let ack = self.ack_frame();
        for _ in 0..2 {
            self.push_last_word(ack.clone(), reason);
        }
        if finished {
            let rto = self.rtt.rto();
            self.goodbye.draining = Some(Draining {
                ack,
                until: now + rto * DRAIN_TIMEOUTS,
                repeat_at: now + rto,
                interval: rto * 2,
            });
        }
    }

    /// True once [`close`](Self::close) was called and its closing period is over: the
    /// program may exit.
    pub fn is_closed(&self) -> bool {
        self.goodbye.closed && self.goodbye.draining.is_none()
    }

    /// In the closing period: answers a packet of the peer's run with our last ACK and
    /// CLOSE, or ends the period if the peer has closed too.
    fn drain_datagram(&mut self, from: SocketAddr, bytes: &[u8]) {
        let Some(draining) = &self.goodbye.draining else {
            return;
        };
        let ack = draining.ack.clone();
        let Ok(packet) = Packet::decode_with(bytes, self.trailer()) else {
            return;
        };
        let ours = from == self.peer_addr
            && Some(packet.src_epoch) == self.peer_epoch
            && packet.dst_epoch == self.local_epoch;
        if !ours {
            return;
        }
        if packet
            .frames
            .iter()
            .any(|f| matches!(f, Frame::Close { .. }))
        {
            self.goodbye.draining = None;
            return;
        }
        self.push_last_word(ack, CloseReason::Finished);
    }

    /// In the closing period: repeats the last ACK and CLOSE when due, ends it when over.
    fn drain_timeout(&mut self, now: Instant) {
        let Some(draining) = &mut self.goodbye.draining else {
            return;
        };
        if now >= draining.until {
            self.goodbye.draining = None;
            return;
        }
        if now < draining.repeat_at {
            return;
        }
        draining.repeat_at = now + draining.interval;
        draining.interval *= 2;
        let ack = draining.ack.clone();
        self.push_last_word(ack, CloseReason::Finished);
    }

    /// Our last word: the acknowledgement of everything received, then CLOSE.
    fn push_last_word(&mut self, ack: AckFrame, reason: CloseReason) {
        self.push_packet(vec![Frame::Ack(ack), Frame::Close { reason }]);
    }

    /// The longest text [`send`](Self::send) accepts, in bytes of UTF-8:
    /// [`MAX_TEXT_LEN`](crate::wire::MAX_TEXT_LEN) in the clear, less under encryption (see
    /// [`Config::max_datagram`]).
    pub fn max_text_len(&self) -> usize {
        self.config.max_text_len()
    }

    /// True when [`send`](Self::send) would accept a message now. A driver stops reading
    /// input while this is false: back-pressure instead of unbounded memory.
    pub fn can_send(&self) -> bool {
        self.sender.outstanding() < self.config.send_queue
    }

    /// Feeds one datagram received from `from`.
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) {
        let now = self.advance(now);
        self.stats.datagrams_received += 1;
        if self.goodbye.closed {
            // This run has said its last word; it only repeats it.
            return self.drain_datagram(from, bytes);
        }
        if from != self.peer_addr {
            self.reject(RejectReason::UnknownSource);
            return;
        }
        let packet = match Packet::decode_with(bytes, self.trailer()) {
            Ok(p) => p,
            Err(e) => return self.reject(e.into()),
        };
        if self.retired.contains(&packet.src_epoch) {
            if self.left_epoch == Some(packet.src_epoch) {
                return;
            }
            return self.reject(RejectReason::StaleEpoch);
        }
        let has_hello = packet.frames.contains(&Frame::Hello);
        let addressed_to_us = packet.dst_epoch == self.local_epoch;
        if !self.sends_hello {
            // The layer below authenticates the peer and tells us its run (adopt_peer);
            // a packet cannot change it, and we do not announce ourselves with HELLOs.
            if !addressed_to_us {
                return self.reject(RejectReason::WrongDestinationEpoch);
            }
            if self.peer_epoch != Some(packet.src_epoch) {
                return self.reject(RejectReason::UnknownEpoch);
            }
            return self.accept(now, packet);
        }
        if has_hello || addressed_to_us {
            self.adopt_peer_epoch(packet.src_epoch);
        }
        if addressed_to_us && self.hello_sample_pending {
            self.hello_sample_pending = false;
            if self.hello_attempts == 1 {
                self.rtt
                    .on_sample(now.saturating_duration_since(self.first_hello_at));
            }
        }
        if !addressed_to_us {
            // The sender does not know this run of ours: tell it, with a packet no larger
            // than the one it sent, and act on nothing else in it.
            self.send_hello(packet.src_epoch);
            if !has_hello {
                self.reject(RejectReason::WrongDestinationEpoch);
            }
            return;
        }
        self.accept(now, packet);
    }

    /// Acts on a packet of the current pair: from the peer's current run, to ours.
    fn accept(&mut self, now: Instant, packet: Packet) {
        self.heard_from_peer(now);
        let mut must_ack = false;
        let mut ack_at_once = false;
        let mut close = None;
        let mut outputs = Vec::new();
        for frame in packet.frames {
            match frame {
                Frame::Hello => {}
                Frame::Skip { below } => {
                    if self.reassembly.as_ref().is_some_and(|r| r.first < below) {
                        // The sender gave up what it had not sent whole: a longer message
                        // begun before the gap never ends, and must not start the next.
                        // (One begun after it, delivered ahead of a lost chunk, goes on.)
                        self.reassembly = None;
                    }
                    let ready = self.receiver.on_skip(below);
                    self.deliver(ready);
                    must_ack = true;
                    ack_at_once = true;
                }
                Frame::Data {
                    seq,
                    after,
                    payload,
                } => {
                    must_ack = true;
                    match self.receiver.on_data(seq, after, payload) {
                        Arrival::Deliver(ready) => {
                            self.deliver(ready);
                            // Delivered above a gap, or the gap only partly filled: the
                            // sender's loss detection needs to know at once.
                            ack_at_once |= self.receiver.has_gap();
                        }
                        Arrival::Duplicate => {
                            self.stats.duplicates += 1;
                            self.events.push_back(Event::Duplicate { seq });
                            // The D-SACK should reach the sender before it resends more.
                            ack_at_once = true;
                        }
                        // Out of order: the sender's loss detection needs this at once.
                        Arrival::Buffered | Arrival::BeyondWindow => ack_at_once = true,
                    }
                }
                Frame::Ack(ack) => {
                    self.rtt
                        .set_peer_max_ack_delay(Duration::from_millis(ack.max_ack_delay_ms.into()));
                    let held = Duration::from_micros(ack.ack_delay_us.into());
                    let result = self.sender.on_ack(ack, now, self.rtt.rto(), &mut outputs);
                    if result.beyond_sent {
                        self.reject(RejectReason::AckBeyondSent);
                    }
                    if let Some(sample) = result.rtt_sample {
                        self.rtt.on_ack_sample(sample, held);
                    }
                    if result.spurious.is_some() {
                        self.stats.spurious_retransmissions += 1;
                    }
                    if result.progress {
                        self.rtt.on_progress();
                    }
                }
                Frame::Ping { token } => self.push_packet(vec![Frame::Pong { token }]),
                Frame::Pong { token } => {
                    if let Some((expected, sent_at)) = self.ping {
                        if expected == token {
                            self.ping = None;
                            self.rtt.on_sample(now.saturating_duration_since(sent_at));
                        }
                    }
                }
                Frame::Close { reason } => close = Some(reason),
            }
        }
        self.apply(outputs, now);
        if let Some(reason) = close {
            // After the frames before it: the ACK it travels with settles what arrived.
            return self.on_peer_close(now, reason);
        }
        if must_ack {
            self.newest_data_at = now;
            self.unacked_packets += 1;
            // One acknowledgement for everything handled before the next poll_transmit:
            // a driver that drains its socket first sends one ACK for the lot. With
            // delayed ACKs it may wait up to `ack_delay`, except for what loss detection
            // needs at once, and never past a second packet (RFC 9000 §13.2.2).
            if self.config.ack_delay.is_zero() || ack_at_once || self.unacked_packets >= 2 {
                self.ack_pending = true;
            } else {
                self.ack_due_at.get_or_insert(now + self.config.ack_delay);
            }
        }
    }

    /// The peer's run said it is leaving. What it acknowledged is settled (the ACK came
    /// first), and what it showed ahead of a gap is delivered; everything else of ours
    /// fails as not shown; its run is retired, and the
    /// session waits for a new one (a restart connects as at the start).
    fn on_peer_close(&mut self, now: Instant, reason: CloseReason) {
        let finished = reason == CloseReason::Finished;
        self.goodbye.peer_left = Some(finished);
        self.goodbye.peer_done = false;
        self.events.push_back(Event::PeerLeft { finished });
        self.set_peer_state(PeerState::Connecting);
        let mut out = Vec::new();
        self.sender
            .fail_all_because(now, Some(FailReason::PeerLeft), &mut out);
        self.apply(out, now);
        if finished {
            // Our CLOSE in answer ends the peer's closing period at once.
            self.push_packet(vec![Frame::Close {
                reason: CloseReason::Finished,
            }]);
        }
        if let Some(old) = self.peer_epoch.take() {
            self.retire(old);
            self.left_epoch = Some(old);
        }
        self.reset_receiver();
        // Everything in flight was given up just above.
        let mut out = Vec::new();
        self.sender.restart_stream(now, &mut out);
        self.apply(out, now);
        self.ack_pending = false;
        self.ack_due_at = None;
        self.unacked_packets = 0;
        self.ping = None;
        self.awaiting_since = None;
        self.hello_sample_pending = false;
        self.no_answer_at = None;
    }

    fn retire(&mut self, epoch: u64) {
        if self.retired.len() == RETIRED_EPOCHS {
            self.retired.pop_front();
        }
        self.retired.push_back(epoch);
    }

    /// Tells the session that `now` has been reached; fires what is due: HELLO and
    /// message retransmissions, keepalives, and the no-answer and unreachable verdicts.
    pub fn handle_timeout(&mut self, now: Instant) {
        let now = self.advance(now);
        if self.goodbye.closed {
            return self.drain_timeout(now);
        }
        if self.ack_due_at.is_some_and(|at| at <= now) {
            self.ack_due_at = None;
            self.ack_pending = true;
        }
        if self.no_answer_at.is_some_and(|at| at <= now) {
            self.on_connect_timeout(now);
        }
        if self.hello_at.is_some_and(|at| at <= now) {
            self.on_hello_timeout(now);
        }
        if self.peer_epoch.is_some() {
            if self.sender.probe_at().is_some_and(|at| at <= now) {
                let mut out = Vec::new();
                if self.sender.on_probe(now, self.rtt.rto(), &mut out) {
                    self.stats.tail_probes += 1;
                }
                self.apply(out, now);
            }
            if self.sender.next_timeout().is_some_and(|at| at <= now) {
                self.stats.timeouts += 1;
                self.rtt.on_expiry();
                let mut out = Vec::new();
                self.sender.on_timeout(now, self.rtt.rto(), &mut out);
                self.apply(out, now);
            }
            if self.keepalive_at().is_some_and(|at| at <= now) {
                self.send_ping(now);
            }
            if self.unreachable_at().is_some_and(|at| at <= now) {
                self.set_peer_state(PeerState::Unreachable);
            }
        }
    }

    /// The next datagram to send, if any. Drain until `None` after every input. New
    /// messages are put on the wire here, packed as many to a datagram as fit.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        // Persist, then acknowledge: a pending ACK waits for `confirm_durable`.
        if self.ack_pending && !self.awaiting_durability() {
            self.ack_pending = false;
            self.send_ack();
            // One ACK per duplicate (D-SACK): the sender learns of every unnecessary
            // retransmission, not only the newest of a batch.
            while self.receiver.has_duplicates() {
                self.send_ack();
            }
        }
        if self.transmits.is_empty() {
            self.pump(self.now);
        }
        self.transmits.pop_front()
    }

    /// The next event, if any. Drain until `None` after every input, after
    /// [`poll_transmit`](Self::poll_transmit) (which produces the `Sent` events).
    pub fn poll_event(&mut self) -> Option<Event> {
        let event = self.events.pop_front()?;
        self.events_taken += 1;
        Some(event)
    }

    /// When [`handle_timeout`](Self::handle_timeout) must next be called, if ever. It may
    /// change after any input, so ask again after each.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.goodbye.closed {
            return self
                .goodbye
                .draining
                .as_ref()
                .map(|d| d.repeat_at.min(d.until));
        }
        let connected = self.peer_epoch.is_some();
        [
            self.ack_due_at,
            self.hello_at,
            self.no_answer_at,
            connected.then(|| self.sender.next_timeout()).flatten(),
            connected.then(|| self.sender.next_send_at()).flatten(),
            connected.then(|| self.sender.probe_at()).flatten(),
            connected.then(|| self.keepalive_at()).flatten(),
            connected.then(|| self.unreachable_at()).flatten(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// True when no message of ours is queued or awaiting acknowledgement.
    pub fn is_idle(&self) -> bool {
        self.sender.is_idle()
    }

    /// Messages queued or awaiting acknowledgement.
    pub fn outstanding(&self) -> usize {
        self.sender.outstanding()
    }

    /// Messages on the wire awaiting acknowledgement.
    pub fn in_flight(&self) -> usize {
        self.sender.in_flight()
    }

    /// This run's epoch.
    pub fn local_epoch(&self) -> u64 {
        self.local_epoch
    }

    /// The peer's epoch, once known.
    pub fn peer_epoch(&self) -> Option<u64> {
        self.peer_epoch
    }

    /// The peer's address.
    pub fn peer_addr(&self) -> SocketAddr {
        self.peer_addr
    }

    /// Whether the peer answers.
    pub fn peer_state(&self) -> PeerState {
        self.peer_state
    }

    /// The round-trip estimator: SRTT, RTTVAR and the current RTO.
    pub fn rtt(&self) -> &RttEstimator {
        &self.rtt
    }

    /// Transmissions that must overtake a message before it is taken for lost: 3, more
    /// after spurious retransmissions showed that the path reorders.
    pub fn reordering_threshold(&self) -> u64 {
        self.sender.reordering_threshold()
    }

    /// The congestion window (RFC 9002 NewReno), in bytes of messages in flight.
    pub fn congestion_window(&self) -> usize {
        self.sender.congestion_window()
    }

    /// Bytes of messages in flight, not yet acknowledged.
    pub fn bytes_in_flight(&self) -> usize {
        self.sender.bytes_in_flight()
    }

    /// Counters since creation.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// The settings this session runs with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    fn advance(&mut self, now: Instant) -> Instant {
        self.now = self.now.max(now);
        self.now
    }

    fn reject(&mut self, reason: RejectReason) {
        self.stats.rejected += 1;
        self.events.push_back(Event::Rejected { reason });
    }

    fn set_peer_state(&mut self, state: PeerState) {
        if self.peer_state != state {
            self.peer_state = state;
            self.events.push_back(Event::PeerStateChanged { state });
        }
    }

    /// A valid packet of the current pair arrived: the peer is there.
    fn heard_from_peer(&mut self, now: Instant) {
        // Backoff exists for a path that has gone quiet. A peer we hear from is reachable,
        // and the losses a chat meets are random rather than congestion, so a retransmission
        // after the base timeout is the right next step.
        self.rtt.on_progress();
        self.last_heard = now;
        self.awaiting_since = None;
        self.set_peer_state(PeerState::Online);
    }

    /// When to ping: after `keepalive` of silence, and again every `keepalive` while the
    /// silence lasts.
    fn keepalive_at(&self) -> Option<Instant> {
        // Even without keepalives (classic mode), a side waiting for the peer's goodbye
        // pings, so a peer that crashed meanwhile is found unreachable and the wait ends.
        let interval = self
            .config
            .keepalive
            .or_else(|| self.goodbye.done.map(|_| GOODBYE_KEEPALIVE))?;
        let last_ping = self.ping.map_or(self.last_heard, |(_, at)| at);
        Some(self.last_heard.max(last_ping) + interval)
    }

    /// When the peer will be declared unreachable: `peer_timeout` after we started waiting
    /// for an answer that has not come.
    fn unreachable_at(&self) -> Option<Instant> {
        if self.peer_state != PeerState::Online {
            return None;
        }
        self.awaiting_since
            .map(|since| since + self.config.peer_timeout)
    }

    fn expect_answer(&mut self, now: Instant) {
        self.awaiting_since.get_or_insert(now);
    }

    fn send_ping(&mut self, now: Instant) {
        let token = self.next_ping_token;
        self.next_ping_token += 1;
        self.ping = Some((token, now));
        self.stats.pings_sent += 1;
        self.expect_answer(now);
        self.push_packet(vec![Frame::Ping { token }]);
    }

    /// Makes `epoch` the peer's current run. A different known run means the peer
    /// restarted: forget its old stream and send it ours again from the start.
    fn adopt_peer_epoch(&mut self, epoch: u64) {
        match self.peer_epoch {
            Some(current) if current == epoch => {}
            Some(old) => {
                self.retire(old);
                self.peer_epoch = Some(epoch);
                self.goodbye.peer_done = false;
                self.stats.peer_restarts += 1;
                self.reset_receiver();
                let now = self.now;
                let mut out = Vec::new();
                let resent = self.sender.restart_stream(now, &mut out);
                self.apply(out, now);
                self.requeue_long_messages();
                self.ping = None;
                self.events.push_back(Event::PeerRestarted {
                    old_epoch: old,
                    new_epoch: epoch,
                    resent,
                });
                self.set_peer_state(PeerState::Online);
            }
            None => {
                self.peer_epoch = Some(epoch);
                self.hello_at = None;
                self.no_answer_at = None;
                self.goodbye.peer_left = None;
                self.events
                    .push_back(Event::Connected { peer_epoch: epoch });
                self.set_peer_state(PeerState::Online);
            }
        }
    }

    fn on_hello_timeout(&mut self, now: Instant) {
        self.rtt.on_expiry();
        self.send_hello(0);
        self.hello_attempts = self.hello_attempts.saturating_add(1);
        self.hello_at = Some(now + self.rtt.rto());
    }

    /// Nobody has answered for the connect timeout: say so, then report everything queued
    /// as failed, so no text waits unseen for a peer that may never come. Keeps trying
    /// (HELLOs go on, if this session sends them), with the next verdict a connect
    /// timeout later.
    fn on_connect_timeout(&mut self, now: Instant) {
        self.events.push_back(Event::NoAnswer {
            waited: now.saturating_duration_since(self.started),
        });
        let mut out = Vec::new();
        self.sender.fail_all(now, &mut out);
        self.apply(out, now);
        self.no_answer_at = self.no_answer_after(now);
    }

    /// When the next no-answer verdict is due, counting from `now`; never, when the
    /// connect timeout is too long for the clock (`Duration::MAX` waits for ever).
    fn no_answer_after(&self, now: Instant) -> Option<Instant> {
        now.checked_add(self.config.effective_connect_timeout())
    }

    /// Moves queued messages onto the wire once the peer is known.
    fn pump(&mut self, now: Instant) {
        if self.peer_epoch.is_none() {
            return;
        }
        let mut out = Vec::new();
        self.sender
            .fill_window(now, self.rtt.rto(), self.rtt.srtt(), &mut out);
        self.apply(out, now);
    }

    /// (Re)arms the tail-loss probe: two smoothed round trips (at least the timer
    /// granularity), plus the peer's deliberate ACK delay (its advertised maximum less
    /// the scheduling allowance) when everything in flight fits one datagram (a lone
    /// packet may wait for a delayed ACK), as RFC 8985 §7.2; never later than the
    /// retransmission timer would fire anyway. Without a round-trip
    /// sample, or with a fixed timeout (`--timeout`, classic mode), none.
    fn arm_probe(&mut self, now: Instant) {
        let Some(srtt) = self.rtt.srtt() else {
            return;
        };
        if matches!(self.config.rto, crate::rtt::RtoPolicy::Fixed(_)) {
            // A fixed timeout (`--timeout`, classic mode) means exactly that.
            return;
        }
        let mut delay = (srtt * 2).max(Duration::from_millis(1));
        if self.sender.bytes_in_flight() <= self.config.effective_max_datagram() {
            // All in flight fits one datagram: the peer may hold its ACK for it, as long
            // as it delays ACKs on purpose. Its allowance for being descheduled is left
            // to the retransmission timer: a probe is one datagram, and an unnecessary
            // one is cheap (and counted), while waiting costs a stall on every tail.
            delay += self
                .rtt
                .peer_max_ack_delay()
                .saturating_sub(crate::config::SCHEDULING_ALLOWANCE);
        }
        self.sender.arm_probe(now, delay.min(self.rtt.rto()));
    }

    fn sync_congestion_stats(&mut self) {
        let (reductions, undos, random_losses) = self.sender.congestion_events();
        self.stats.window_reductions = reductions;
        self.stats.window_undos = undos;
        self.stats.random_losses = random_losses;
    }

    /// Turns sender outputs into events and packets. Messages going out together share
    /// datagrams, as many as fit in 1200 bytes, so a burst costs few datagrams.
    fn apply(&mut self, outputs: Vec<SenderOutput>, now: Instant) {
        self.sync_congestion_stats();
        let mut batch = Vec::new();
        for output in outputs {
            match output {
                SenderOutput::Transmit {
                    id,
                    seq,
                    after,
                    payload,
                    attempt,
                } => {
                    let file = matches!(payload, Payload::File(_));
                    // Only a message's first frame says it went out.
                    let later_part = attempt == 1
                        && self
                            .long
                            .get_mut(&id)
                            .is_some_and(|m| std::mem::replace(&mut m.started, true));
                    batch.push(Frame::Data {
                        seq,
                        after,
                        payload,
                    });
                    let done = self.goodbye.done == Some(id) || file;
                    if later_part {
                        self.stats.data_sent += 1;
                    } else if attempt == 1 {
                        self.stats.data_sent += 1;
                        if !done {
                            self.events.push_back(Event::Sent { id, seq });
                        }
                    } else {
                        self.stats.retransmissions += 1;
                        if !done {
                            self.events
                                .push_back(Event::Retransmit { id, seq, attempt });
                        }
                    }
                }
                SenderOutput::Delivered {
                    id,
                    seq,
                    attempts,
                    elapsed,
                    kind,
                    len,
                } => {
                    if kind == kind::FILE_CHUNK {
                        self.file_bytes_acked += len.saturating_sub(CHUNK_HEADER_LEN) as u64;
                    }
                    if kind == kind::PART || (kind::FILE_FIRST..=kind::FILE_LAST).contains(&kind) {
                        continue;
                    }
                    self.long.remove(&id);
                    if self.goodbye.done == Some(id) {
                        self.goodbye.done_delivered = true;
                        continue;
                    }
                    if !self.announcements.remove(&id) {
                        self.stats.messages_delivered += 1;
                    }
                    self.events.push_back(Event::Delivered {
                        id,
                        seq,
                        attempts,
                        elapsed,
                    });
                }
                SenderOutput::Failed {
                    id,
                    mut text,
                    reason,
                    kind,
                } => {
                    if (kind::FILE_FIRST..=kind::FILE_LAST).contains(&kind) {
                        // The transfer layer sees the count and offers again.
                        self.file_frames_failed += 1;
                        continue;
                    }
                    if let Some(message) = self.long.get_mut(&id) {
                        // One report per message, with all of its text, whichever of
                        // its frames failed first; the last frame fails last.
                        let reported = std::mem::replace(&mut message.failed, true);
                        if kind != kind::PART {
                            if let Some(message) = self.long.remove(&id) {
                                text = message.text;
                            }
                        } else {
                            text = message.text.clone();
                        }
                        if reported {
                            continue;
                        }
                    } else if kind == kind::PART {
                        continue;
                    }
                    if self.goodbye.done == Some(id) {
                        self.goodbye.done_failed = true;
                        continue;
                    }
                    if !self.announcements.remove(&id) {
                        self.stats.messages_failed += 1;
                    }
                    self.events.push_back(Event::Failed { id, text, reason });
                    self.set_peer_state_if_online(PeerState::Unreachable);
                }
            }
        }
        if !batch.is_empty() {
            self.expect_answer(now);
            self.send_data_frames(batch);
        }
        self.arm_probe(now);
    }

    fn set_peer_state_if_online(&mut self, state: PeerState) {
        if self.peer_state == PeerState::Online {
            self.set_peer_state(state);
        }
    }

    /// Packs DATA frames into as few datagrams as fit, each led by a SKIP frame while the
    /// receiver may still be waiting for abandoned messages.
    fn send_data_frames(&mut self, frames: Vec<Frame>) {
        let skip = self
            .sender
            .pending_skip()
            .map(|below| Frame::Skip { below });
        let base = HEADER_LEN + CRC_LEN + skip.as_ref().map_or(0, Frame::encoded_len);
        let mut packet: Vec<Frame> = skip.iter().cloned().collect();
        let mut size = base;
        let mut has_data = false;
        for frame in frames {
            let len = frame.encoded_len();
            if has_data && size + len > self.config.effective_max_datagram() {
                self.push_packet(std::mem::replace(
                    &mut packet,
                    skip.iter().cloned().collect(),
                ));
                size = base;
            }
            size += len;
            has_data = true;
            packet.push(frame);
        }
        if has_data {
            self.push_packet(packet);
        }
    }

    /// The whole text of a message whose last frame carries `last`, if it ended parts
    /// (else `last` itself); `None` when it was longer than this side accepts, which is
    /// reported.
    fn whole_text(&mut self, last: String) -> Option<String> {
        let Some(mut whole) = self.reassembly.take() else {
            return Some(last);
        };
        whole.len += last.len();
        if whole.len > self.max_accepted_len() {
            self.stats.rejected += 1;
            self.events.push_back(Event::Rejected {
                reason: RejectReason::Malformed(DecodeError::TextTooLong { len: whole.len }),
            });
            return None;
        }
        whole.text.push_str(&last);
        Some(whole.text)
    }

    fn deliver(&mut self, ready: Vec<(u64, Payload)>) {
        // Frames shown ahead of the gap are remembered only where they must be made
        // durable before acknowledged: this runs for every frame of a file.
        let expected = self.receiver.expected();
        let shown_ahead: Vec<u64> = if self.config.durable_receive {
            ready
                .iter()
                .map(|(seq, _)| *seq)
                .filter(|&seq| seq >= expected)
                .collect()
        } else {
            Vec::new()
        };
        for (seq, payload) in ready {
            let payload = match payload {
                Payload::Text(text) => self.whole_text(text).map(Payload::Text),
                Payload::Numbered { id, text } => self
                    .whole_text(text)
                    .map(|text| Payload::Numbered { id, text }),
                other => Some(other),
            };
            let Some(payload) = payload else {
                continue;
            };
            match payload {
                Payload::Part(part) => {
                    let limit = self.max_accepted_len();
                    let whole = self.reassembly.get_or_insert_with(|| Reassembly {
                        first: seq,
                        text: String::new(),
                        len: 0,
                    });
                    whole.len += part.len();
                    // Past the limit the text is dropped, not kept: the peer cannot make
                    // this side hold more than the limit.
                    if whole.len <= limit {
                        whole.text.push_str(&part);
                    } else {
                        whole.text = String::new();
                    }
                }
                Payload::File(frame) => self.events.push_back(Event::File { frame }),
                Payload::Text(text) => {
                    self.stats.messages_received += 1;
                    self.events.push_back(Event::Received {
                        seq,
                        stable: None,
                        text,
                    });
                }
                Payload::Numbered { id, text } => {
                    self.stats.messages_received += 1;
                    self.events.push_back(Event::Received {
                        seq,
                        stable: Some(id),
                        text,
                    });
                }
                Payload::Nick(nick) => self.events.push_back(Event::PeerNick { nick }),
                Payload::Done => {
                    if !self.goodbye.peer_done {
                        self.goodbye.peer_done = true;
                        self.events.push_back(Event::PeerDone);
                    }
                }
                // Acknowledged and ordered; a newer peer's kind means nothing to us.
                Payload::Unknown { .. } => {}
            }
        }
        // What the stream advanced by (delivered, or skipped by the sender), and what
        // was shown ahead of the gap, becomes acknowledgeable once the events so far are
        // taken and confirmed.
        let last_event = self.events_taken + self.events.len() as u64;
        self.durable
            .shown_ahead
            .extend(shown_ahead.into_iter().map(|seq| (last_event, seq)));
        let recorded = self
            .durable
            .unconfirmed
            .back()
            .map_or(self.durable.upto, |u| u.1);
        if self.config.durable_receive && expected > recorded {
            self.durable.unconfirmed.push_back((last_event, expected));
        }
    }

    /// After a restart of the peer, a longer message of ours whose first parts the ended
    /// run acknowledged goes out whole again: the new run never saw them.
    fn requeue_long_messages(&mut self) {
        let max = self.max_text_len();
        let now = self.now;
        for (id, message) in &mut self.long {
            message.started = false;
            self.sender.replace_queued(*id, message.payloads(max), now);
        }
    }

    /// A new stream from the peer (it restarted or left): nothing of it is durable yet.
    fn reset_receiver(&mut self) {
        self.reassembly = None;
        self.receiver = Receiver::new(self.config.effective_window(), self.config.seq_bits)
            .with_durable_receive(self.config.durable_receive);
        self.durable = Durability::default();
    }

    fn send_ack(&mut self) {
        self.stats.acks_sent += 1;
        let ack = self.ack_frame();
        self.push_packet(vec![Frame::Ack(ack)]);
    }

    /// The acknowledgement of what has arrived, saying how long it was held.
    fn ack_frame(&mut self) -> AckFrame {
        let held = self.now.saturating_duration_since(self.newest_data_at);
        let held_us = u32::try_from(held.as_micros()).unwrap_or(u32::MAX);
        let max_ms = u8::try_from(self.config.max_ack_delay().as_millis()).unwrap_or(u8::MAX);
        self.unacked_packets = 0;
        self.ack_due_at = None;
        let durable = if self.config.durable_receive {
            self.durable.upto
        } else {
            u64::MAX
        };
        self.receiver.ack(held_us, max_ms, durable)
    }

    fn send_hello(&mut self, dst_epoch: u64) {
        let packet = Packet {
            src_epoch: self.local_epoch,
            dst_epoch,
            frames: vec![Frame::Hello],
        };
        self.push_encoded(packet.encode_with(self.trailer()));
    }

    /// A session under the secure layer (no HELLO) sends its packets inside an AEAD:
    /// their trailer is not a checksum (PROTOCOL.md §9.2).
    fn trailer(&self) -> Trailer {
        if self.sends_hello {
            Trailer::Crc32c
        } else {
            Trailer::Authenticated
        }
    }

    fn push_packet(&mut self, frames: Vec<Frame>) {
        let packet = Packet {
            src_epoch: self.local_epoch,
            dst_epoch: self.peer_epoch.unwrap_or(0),
            frames,
        };
        self.push_encoded(packet.encode_with(self.trailer()));
    }

    fn push_encoded(&mut self, payload: Vec<u8>) {
        self.stats.datagrams_sent += 1;
        self.transmits.push_back(Transmit {
            destination: self.peer_addr,
            payload,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::FailReason;
    use crate::wire::AckFrame;
    use crate::wire::{MAX_DATAGRAM, MAX_TEXT_LEN};

    const A: u64 = 0xA;
    const B: u64 = 0xB;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    fn pair(now: Instant) -> (Session, Session) {
        let a = Session::new(Config::classic(), A, addr(2), now);
        let b = Session::new(Config::classic(), B, addr(1), now);
        (a, b)
    }

    /// Delivers everything each side has to send to the other, losslessly, until quiet.
    fn exchange(a: &mut Session, b: &mut Session, now: Instant) {
        loop {
            let mut moved = false;
            while let Some(t) = a.poll_transmit() {
                b.handle_datagram(now, addr(1), &t.payload);
                moved = true;
            }
            while let Some(t) = b.poll_transmit() {
                a.handle_datagram(now, addr(2), &t.payload);
                moved = true;
            }
            if !moved {
                break;
            }
        }
    }

    fn events(s: &mut Session) -> Vec<Event> {
        std::iter::from_fn(|| s.poll_event()).collect()
    }

    #[test]
    fn a_durable_receiver_acknowledges_only_what_was_confirmed() {
        let now = Instant::now();
        let a = Session::new(Config::default(), A, addr(2), now);
        let config = Config {
            durable_receive: true,
            ..Config::default()
        };
        let b = Session::new(config, B, addr(1), now);
        let (mut a, mut b) = (a, b);
        exchange(&mut a, &mut b, now);
        let id = |number| StableId { origin: 7, number };
        a.send_numbered(now, id(41), "one".into()).unwrap();
        a.send_numbered(now, id(42), "two".into()).unwrap();
        // A's DATA reaches B; B's ACK must wait for the confirmation.
        while let Some(t) = a.poll_transmit() {
            b.handle_datagram(now, addr(1), &t.payload);
        }
        assert!(b.poll_transmit().is_none(), "no ACK before the commit");
        let got: Vec<_> = events(&mut b)
            .into_iter()
            .filter_map(|e| match e {
                Event::Received { stable, text, .. } => Some((stable, text)),
                _ => None,
            })
            .collect();
        assert_eq!(
            got,
            [
                (Some(id(41)), "one".to_string()),
                (Some(id(42)), "two".to_string())
            ]
        );
        b.confirm_durable();
        let ack = b.poll_transmit().expect("the ACK once committed");
        a.handle_datagram(now, addr(2), &ack.payload);
        let delivered = events(&mut a)
            .iter()
            .filter(|e| matches!(e, Event::Delivered { .. }))
            .count();
        assert_eq!(delivered, 2);
    }

    #[test]
    fn a_confirmation_covers_only_the_events_taken() {
        let now = Instant::now();
        let config = Config {
            durable_receive: true,
            ..Config::default()
        };
        let mut a = Session::new(Config::default(), A, addr(2), now);
        let mut b = Session::new(config, B, addr(1), now);
        exchange(&mut a, &mut b, now);
        a.send(now, "one".into()).unwrap();
        while let Some(t) = a.poll_transmit() {
            b.handle_datagram(now, addr(1), &t.payload);
        }
        // Confirmed before its event was taken: not durable, so not acknowledged.
        b.confirm_durable();
        assert!(b.poll_transmit().is_none());
        assert_eq!(received(&mut b), ["one"]);
        b.confirm_durable();
        assert!(b.poll_transmit().is_some());
    }

    fn received(s: &mut Session) -> Vec<String> {
        events(s)
            .into_iter()
            .filter_map(|e| match e {
                Event::Received { text, .. } => Some(text),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn the_goodbye_ends_both_sides_with_everything_confirmed() {
        let t0 = Instant::now();
        let (mut a, mut b) = pair(t0);
        a.send(t0, "last words".into()).unwrap();
        a.finish(t0);
        assert_eq!(a.send(t0, "too late".into()), Err(SendError::Finished));
        exchange(&mut a, &mut b, t0);
        assert_eq!(received(&mut b), vec!["last words"]);
        // A waits for B, whose input has not ended: B was told, and may still answer.
        assert!(!a.is_finished() && b.peer_done());
        b.send(t0, "an answer".into()).unwrap();
        b.finish(t0);
        exchange(&mut a, &mut b, t0);
        assert!(a.is_finished() && b.is_finished());
        assert_eq!(received(&mut a), vec!["an answer"]);
        // A leaves first: its last ACK and CLOSE end B's wait, and B's answering CLOSE
        // ends A's closing period.
        a.close(t0);
        let last: Vec<_> = std::iter::from_fn(|| a.poll_transmit()).collect();
        assert_eq!(last.len(), 2, "the last word goes twice");
        let packet = Packet::decode(&last[0].payload).unwrap();
        assert!(matches!(
            packet.frames.as_slice(),
            [
                Frame::Ack(_),
                Frame::Close {
                    reason: CloseReason::Finished
                }
            ]
        ));
        assert!(!a.is_closed(), "in its closing period");
        for t in &last {
            b.handle_datagram(t0, addr(1), &t.payload);
        }
        assert!(events(&mut b).contains(&Event::PeerLeft { finished: true }));
        let answer = b.poll_transmit().unwrap();
        a.handle_datagram(t0, addr(2), &answer.payload);
        assert!(a.is_closed());
        assert_eq!(a.poll_timeout(), None);
    }

    #[test]
    fn a_peer_that_leaves_early_fails_what_it_never_confirmed() {
        let t0 = Instant::now();
        let (mut a, mut b) = pair(t0);
        exchange(&mut a, &mut b, t0);
        a.send(t0, "will you see this?".into()).unwrap();
        // A's message is on the wire, and B quits before it arrives.
        let in_flight: Vec<_> = std::iter::from_fn(|| a.poll_transmit()).collect();
        assert!(!in_flight.is_empty());
        b.close(t0);
        while let Some(t) = b.poll_transmit() {
            a.handle_datagram(t0, addr(2), &t.payload);
        }
        let ev = events(&mut a);
        assert!(ev.contains(&Event::PeerLeft { finished: false }), "{ev:?}");
        // The CLOSE came twice; its copy is the end announced, not a rejected datagram.
        assert!(
            !ev.iter().any(|e| matches!(e, Event::Rejected { .. })),
            "{ev:?}"
        );
        assert_eq!(a.stats().rejected, 0);
        assert!(ev.iter().any(|e| matches!(
            e,
            Event::Failed { text, reason: FailReason::PeerLeft, .. } if text == "will you see this?"
        )));
        // B's run is retired: its late datagrams are stale, and a new run connects.
        for t in &in_flight {
            b.handle_datagram(t0, addr(1), &t.payload);
        }
        assert!(received(&mut b).is_empty(), "nothing is shown after close");
        assert_eq!(a.peer_state(), PeerState::Connecting);
    }

    #[test]
    fn waiting_for_a_peer_that_crashed_ends_even_without_keepalives() {
        // Classic mode sends no keepalives; the goodbye must still find the peer gone.
        let t0 = Instant::now();
        let (mut a, mut b) = pair(t0);
        a.send(t0, "bye".into()).unwrap();
        a.finish(t0);
        exchange(&mut a, &mut b, t0);
        assert!(!a.is_finished(), "waiting for B's goodbye");
        // B crashes: nothing more comes from it.
        drop(b);
        while !a.is_finished() {
            let now = a.poll_timeout().expect("a timer while waiting");
            assert!(
                now < t0 + Duration::from_secs(60),
                "still waiting at {now:?}"
            );
            a.handle_timeout(now);
            while a.poll_transmit().is_some() {}
        }
        assert_eq!(a.peer_state(), PeerState::Unreachable);
    }

    #[test]
    fn ending_input_with_nobody_there_is_finished_at_once() {
        let t0 = Instant::now();
        let mut a = Session::new(Config::default(), A, addr(2), t0);
        a.finish(t0);
        assert!(a.is_finished());
        a.close(t0);
        assert!(a.is_closed());
    }

    #[test]
    fn handshake_then_message_then_ack() {
        let t0 = Instant::now();
        let (mut a, mut b) = pair(t0);
        a.send(t0, "hello".into()).unwrap();
        exchange(&mut a, &mut b, t0);
        assert_eq!(received(&mut b), vec!["hello"]);
        let ev = events(&mut a);
        assert!(ev.contains(&Event::Connected { peer_epoch: B }));
        assert!(ev.iter().any(|e| matches!(
            e,
            Event::Delivered {
                seq: 0,
                attempts: 1,
                ..
            }
        )));
        assert!(a.is_idle());
        assert_eq!(a.poll_timeout(), None, "idle and connected: no timer");
    }

    #[test]
    fn lost_data_is_retransmitted_and_duplicate_is_reacked_not_shown() {
        let t0 = Instant::now();
        let (mut a, mut b) = pair(t0);
        exchange(&mut a, &mut b, t0);
        a.send(t0, "x".into()).unwrap();
        let first = a.poll_transmit().unwrap();
        let t1 = a.poll_timeout().unwrap();
        assert_eq!(t1, t0 + Duration::from_secs(3));
        a.handle_timeout(t1);
        let again = a.poll_transmit().unwrap();
        assert_eq!(first.payload, again.payload);
        b.handle_datagram(t1, addr(1), &first.payload);
        b.handle_datagram(t1, addr(1), &again.payload);
        let ev = events(&mut b);
        assert_eq!(
            ev.iter()
                .filter(|e| matches!(e, Event::Received { .. }))
                .count(),
            1
        );
        assert!(ev.contains(&Event::Duplicate { seq: 0 }));
        // Both copies are acknowledged by one ACK, as they arrived before it was sent.
        assert!(b.poll_transmit().is_some());
        assert!(b.poll_transmit().is_none());
    }

    #[test]
    fn garbage_and_strangers_are_rejected_with_a_reason() {
        let t0 = Instant::now();
        let (_, mut b) = pair(t0);
        b.handle_datagram(t0, addr(1), b"");
        b.handle_datagram(t0, addr(9), b"whatever");
        let reasons: Vec<_> = events(&mut b)
            .into_iter()
            .filter_map(|e| match e {
                Event::Rejected { reason } => Some(reason.code()),
                _ => None,
            })
            .collect();
        assert_eq!(reasons, vec!["too_short", "unknown_source"]);
        assert_eq!(b.stats().rejected, 2);
    }

    #[test]
    fn peer_restart_resends_unacknowledged_to_the_new_run() {
        let t0 = Instant::now();
        let (mut a, mut b) = pair(t0);
        exchange(&mut a, &mut b, t0);
        a.send(t0, "one".into()).unwrap();
        exchange(&mut a, &mut b, t0);
        assert_eq!(received(&mut b), vec!["one"]);
        a.send(t0, "two".into()).unwrap();
        let _lost = a.poll_transmit();
        // B dies; B2 starts on the same address.
        let mut b2 = Session::new(Config::classic(), 0xB2, addr(1), t0);
        exchange(&mut a, &mut b2, t0);
        assert_eq!(received(&mut b2), vec!["two"]);
        assert!(events(&mut a).contains(&Event::PeerRestarted {
            old_epoch: B,
            new_epoch: 0xB2,
            resent: 1
        }));
        // A late datagram of the old run is recognised as stale.
        let stale = Packet {
            src_epoch: B,
            dst_epoch: A,
            frames: vec![Frame::Data {
                seq: 1,
                after: 0,
                payload: Payload::Text("ghost".into()),
            }],
        };
        a.handle_datagram(t0, addr(2), &stale.encode());
        assert!(events(&mut a).contains(&Event::Rejected {
            reason: RejectReason::StaleEpoch
        }));
    }

    #[test]
    fn our_own_restart_is_learnt_by_the_peer_from_a_hello_reply() {
        let t0 = Instant::now();
        let (mut a, mut b) = pair(t0);
        exchange(&mut a, &mut b, t0);
        b.send(t0, "to the old a".into()).unwrap();
        let to_old = b.poll_transmit().unwrap();
        let mut a2 = Session::new(Config::classic(), 0xA2, addr(2), t0);
        let _ = a2.poll_transmit(); // its first HELLO is lost
        a2.handle_datagram(t0, addr(2), &to_old.payload);
        assert!(events(&mut a2).contains(&Event::Rejected {
            reason: RejectReason::WrongDestinationEpoch
        }));
        exchange(&mut a2, &mut b, t0);
        assert_eq!(received(&mut a2), vec!["to the old a"]);
    }

    #[test]
    fn unanswered_handshake_fails_queued_messages_after_the_connect_timeout() {
        let t0 = Instant::now();
        let config = Config {
            max_retries: 2,
            ..Config::classic()
        };
        let mut a = Session::new(config, A, addr(2), t0);
        a.send(t0, "anyone?".into()).unwrap();
        let mut now = t0;
        while !a.is_idle() {
            now = a.poll_timeout().unwrap();
            a.handle_timeout(now);
        }
        // Not after max_retries HELLOs (9 s) any more: the connect timeout decides.
        assert_eq!(now, t0 + Duration::from_secs(30));
        assert!(events(&mut a).contains(&Event::Failed {
            id: MessageId(0),
            text: "anyone?".into(),
            reason: FailReason::PeerUnreachable
        }));
        assert!(a.poll_timeout().is_some(), "keeps knocking for a late peer");
    }

    /// Runs `s`'s timers up to `until` with nobody answering; returns what it put on the
    /// wire, decoded.
    fn run_alone(s: &mut Session, until: Instant) -> Vec<Packet> {
        let mut wire = Vec::new();
        loop {
            while let Some(t) = s.poll_transmit() {
                wire.push(Packet::decode(&t.payload).unwrap());
            }
            match s.poll_timeout() {
                Some(at) if at <= until => s.handle_timeout(at),
                _ => return wire,
            }
        }
    }

    fn is_hello(p: &Packet) -> bool {
        p.frames == [Frame::Hello]
    }

    #[test]
    fn a_message_typed_before_the_peer_starts_waits_without_spending_retries() {
        let t0 = Instant::now();
        let config = Config {
            rto: crate::rtt::RtoPolicy::Fixed(Duration::from_millis(50)),
            max_retries: 3,
            ..Config::default()
        };
        let mut a = Session::new(config.clone(), A, addr(2), t0);
        a.send(t0, "early".into()).unwrap();
        // The peer is silent for 10 s: 200 times the timeout, far beyond 3 retries.
        let t1 = t0 + Duration::from_secs(10);
        let wire = run_alone(&mut a, t1);
        assert!(wire.len() > 100 && wire.iter().all(is_hello), "only HELLOs");
        assert!(events(&mut a).is_empty(), "nothing failed, nothing sent");
        assert_eq!(a.outstanding(), 1);
        // The peer appears.
        let mut b = Session::new(config, B, addr(1), t1);
        exchange(&mut a, &mut b, t1);
        assert_eq!(received(&mut b), vec!["early"]);
        assert!(events(&mut a).iter().any(|e| matches!(
            e,
            Event::Delivered {
                id: MessageId(0),
                attempts: 1,
                ..
            }
        )));
        let stats = a.stats();
        assert_eq!(stats.messages_failed, 0);
        assert_eq!(stats.retransmissions, 0);
        assert_eq!(stats.messages_delivered, 1);
        assert!(a.is_idle());
    }

    #[test]
    fn nobody_answering_for_the_connect_timeout_fails_what_is_queued_and_keeps_knocking() {
        let t0 = Instant::now();
        let config = Config::default();
        let connect = config.connect_timeout;
        let mut a = Session::new(config, A, addr(2), t0);
        a.send(t0, "one".into()).unwrap();
        a.send(t0, "two".into()).unwrap();
        let wire = run_alone(&mut a, t0 + connect - Duration::from_millis(1));
        assert!(wire.iter().all(is_hello));
        assert!(
            events(&mut a).is_empty(),
            "no verdict before the connect timeout"
        );
        // Exactly at the connect timeout: the verdict, then each message, in that order.
        assert_eq!(a.poll_timeout(), Some(t0 + connect));
        let wire = run_alone(&mut a, t0 + connect);
        assert!(wire.iter().all(is_hello));
        assert_eq!(
            events(&mut a),
            vec![
                Event::NoAnswer { waited: connect },
                Event::Failed {
                    id: MessageId(0),
                    text: "one".into(),
                    reason: FailReason::PeerUnreachable
                },
                Event::Failed {
                    id: MessageId(1),
                    text: "two".into(),
                    reason: FailReason::PeerUnreachable
                },
            ]
        );
        assert_eq!(a.peer_state(), PeerState::Connecting);
        assert!(a.is_idle());
        // A message sent afterwards waits for the next verdict, a connect timeout later,
        // while the HELLOs go on.
        let t1 = t0 + connect + Duration::from_secs(1);
        a.send(t1, "three".into()).unwrap();
        let wire = run_alone(&mut a, t0 + 2 * connect - Duration::from_millis(1));
        assert!(!wire.is_empty() && wire.iter().all(is_hello));
        assert!(events(&mut a).is_empty());
        assert_eq!(a.outstanding(), 1);
        let wire = run_alone(&mut a, t0 + 2 * connect);
        assert!(wire.iter().all(is_hello));
        assert_eq!(
            events(&mut a),
            vec![
                Event::NoAnswer {
                    waited: 2 * connect
                },
                Event::Failed {
                    id: MessageId(2),
                    text: "three".into(),
                    reason: FailReason::PeerUnreachable
                },
            ]
        );
        // The next HELLO is due within the 5 s ceiling of the backoff.
        let next = a.poll_timeout().unwrap();
        assert!(next <= t0 + 2 * connect + Duration::from_secs(5));
    }

    /// Like [`exchange`], and checks that no HELLO ever goes on the wire.
    fn exchange_without_hello(a: &mut Session, b: &mut Session, now: Instant) {
        loop {
            let mut moved = false;
            while let Some(t) = a.poll_transmit() {
                assert!(!Packet::decode_with(&t.payload, Trailer::Authenticated)
                    .unwrap()
                    .frames
                    .contains(&Frame::Hello));
                b.handle_datagram(now, addr(1), &t.payload);
                moved = true;
            }
            while let Some(t) = b.poll_transmit() {
                assert!(!Packet::decode_with(&t.payload, Trailer::Authenticated)
                    .unwrap()
                    .frames
                    .contains(&Frame::Hello));
                a.handle_datagram(now, addr(2), &t.payload);
                moved = true;
            }
            if !moved {
                break;
            }
        }
    }

    fn rejections(ev: &[Event]) -> Vec<&'static str> {
        ev.iter()
            .filter_map(|e| match e {
                Event::Rejected { reason } => Some(reason.code()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_session_without_hello_waits_for_the_layer_below_to_adopt_the_peer() {
        let t0 = Instant::now();
        let config = Config::default();
        let mut a = Session::new_without_hello(config.clone(), A, addr(2), t0);
        let mut b = Session::new_without_hello(config.clone(), B, addr(1), t0);
        a.send(t0, "hi".into()).unwrap();
        // Nothing goes out, not even a HELLO; the only timer is the connect verdict.
        assert!(a.poll_transmit().is_none());
        assert!(b.poll_transmit().is_none());
        assert_eq!(a.poll_timeout(), Some(t0 + config.connect_timeout));
        assert_eq!(a.peer_state(), PeerState::Connecting);
        assert!(events(&mut a).is_empty());

        // A's handshake below authenticated B: the message goes out at once, to B.
        let t1 = t0 + Duration::from_millis(10);
        a.adopt_peer(t1, B);
        assert_eq!(
            events(&mut a),
            vec![
                Event::Connected { peer_epoch: B },
                Event::PeerStateChanged {
                    state: PeerState::Online
                }
            ]
        );
        let data = a.poll_transmit().unwrap();
        let packet = Packet::decode_with(&data.payload, Trailer::Authenticated).unwrap();
        assert_eq!((packet.src_epoch, packet.dst_epoch), (A, B));
        assert!(matches!(packet.frames[..], [Frame::Data { seq: 0, .. }]));
        assert!(a.poll_transmit().is_none());
        assert_eq!(
            events(&mut a),
            vec![Event::Sent {
                id: MessageId(0),
                seq: 0
            }]
        );
        // B's handshake has not finished: A's run is unknown to it, and it says nothing.
        b.handle_datagram(t1, addr(1), &data.payload);
        assert_eq!(rejections(&events(&mut b)), vec!["unknown_epoch"]);
        assert!(b.poll_transmit().is_none());
        // Now it has: the retransmission is delivered, exactly once.
        b.adopt_peer(t1, A);
        a.adopt_peer(t1, B); // the same run again changes nothing
        assert!(events(&mut a).is_empty());
        b.handle_datagram(t1, addr(1), &data.payload);
        b.handle_datagram(t1, addr(1), &data.payload);
        exchange_without_hello(&mut a, &mut b, t1);
        let ev = events(&mut b);
        let got: Vec<_> = ev
            .iter()
            .filter(|e| matches!(e, Event::Received { .. }))
            .collect();
        assert_eq!(
            got,
            [&Event::Received {
                seq: 0,
                stable: None,
                text: "hi".into()
            }]
        );
        assert!(events(&mut a).iter().any(|e| matches!(
            e,
            Event::Delivered {
                id: MessageId(0),
                ..
            }
        )));
        assert!(a.is_idle());

        // B restarts as B2; the layer below authenticates the new run to A.
        a.send(t1, "two".into()).unwrap();
        let _lost = a.poll_transmit().unwrap();
        let mut b2 = Session::new_without_hello(config, 0xB2, addr(1), t1);
        b2.adopt_peer(t1, A);
        a.adopt_peer(t1, 0xB2);
        assert!(events(&mut a).contains(&Event::PeerRestarted {
            old_epoch: B,
            new_epoch: 0xB2,
            resent: 1
        }));
        let resent =
            Packet::decode_with(&a.poll_transmit().unwrap().payload, Trailer::Authenticated)
                .unwrap();
        assert_eq!(resent.dst_epoch, 0xB2);
        assert!(matches!(resent.frames[..], [Frame::Data { seq: 0, .. }]));
        b2.handle_datagram(t1, addr(1), &resent.encode());
        exchange_without_hello(&mut a, &mut b2, t1);
        assert_eq!(received(&mut b2), vec!["two"]);
        assert!(a.is_idle());

        // Addressed to A from a run the layer below never authenticated: no adoption.
        let stranger = Packet {
            src_epoch: 0xC,
            dst_epoch: A,
            frames: vec![Frame::Data {
                seq: 0,
                after: 0,
                payload: Payload::Text("spoof".into()),
            }],
        };
        a.handle_datagram(t1, addr(2), &stranger.encode());
        // From the old run: stale. Misaddressed (or a HELLO): rejected, never answered.
        let old = Packet {
            src_epoch: B,
            ..stranger.clone()
        };
        a.handle_datagram(t1, addr(2), &old.encode());
        let misaddressed = Packet {
            src_epoch: 0xB2,
            dst_epoch: 0xA0,
            ..stranger
        };
        a.handle_datagram(t1, addr(2), &misaddressed.encode());
        let hello = Packet {
            src_epoch: 0xB3,
            dst_epoch: 0,
            frames: vec![Frame::Hello],
        };
        a.handle_datagram(t1, addr(2), &hello.encode());
        assert_eq!(
            rejections(&events(&mut a)),
            vec![
                "unknown_epoch",
                "stale_epoch",
                "wrong_destination_epoch",
                "wrong_destination_epoch"
            ]
        );
        assert_eq!(a.peer_epoch(), Some(0xB2));
        assert!(a.poll_transmit().is_none(), "no HELLO in answer");
    }

    #[test]
    fn a_connect_timeout_too_long_for_the_clock_means_wait_for_ever() {
        let t0 = Instant::now();
        let config = Config {
            connect_timeout: Duration::MAX,
            ..Config::default()
        };
        let a = Session::new_without_hello(config.clone(), A, addr(2), t0);
        assert_eq!(a.poll_timeout(), None);
        let mut b = Session::new(config, B, addr(1), t0);
        b.send(t0, "patient".into()).unwrap();
        run_alone(&mut b, t0 + Duration::from_secs(3600));
        assert!(events(&mut b).is_empty());
        assert_eq!(b.outstanding(), 1);
    }

    #[test]
    fn a_session_without_hello_gives_its_no_answer_verdict_too() {
        let t0 = Instant::now();
        let config = Config::default();
        let connect = config.connect_timeout;
        let mut a = Session::new_without_hello(config, A, addr(2), t0);
        a.send(t0, "anyone?".into()).unwrap();
        assert!(run_alone(&mut a, t0 + connect).is_empty());
        assert_eq!(
            events(&mut a),
            vec![
                Event::NoAnswer { waited: connect },
                Event::Failed {
                    id: MessageId(0),
                    text: "anyone?".into(),
                    reason: FailReason::PeerUnreachable
                }
            ]
        );
        assert_eq!(a.poll_timeout(), Some(t0 + 2 * connect));
        // The peer turns up after all.
        a.adopt_peer(t0 + 2 * connect, B);
        a.send(t0 + 2 * connect, "there you are".into()).unwrap();
        assert!(a.poll_transmit().is_some());
    }

    #[test]
    fn adopt_peer_connects_a_hello_session_too() {
        let t0 = Instant::now();
        let (mut a, mut b) = pair(t0);
        let _hello = a.poll_transmit().unwrap();
        let _hello = b.poll_transmit().unwrap();
        a.send(t0, "hi".into()).unwrap();
        a.adopt_peer(t0, B);
        assert!(events(&mut a).contains(&Event::Connected { peer_epoch: B }));
        // No more HELLOs: the message goes straight to B, which learns A from it.
        let data = a.poll_transmit().unwrap();
        let packet = Packet::decode_with(&data.payload, Trailer::Authenticated).unwrap();
        assert_eq!(packet.dst_epoch, B);
        assert!(!packet.frames.contains(&Frame::Hello));
        assert!(a
            .poll_timeout()
            .is_some_and(|at| at == t0 + Duration::from_secs(3)));
        b.handle_datagram(t0, addr(1), &data.payload);
        exchange(&mut a, &mut b, t0);
        assert_eq!(received(&mut b), vec!["hi"]);
        assert!(a.is_idle());
    }

    #[test]
    fn a_round_trip_from_the_layer_below_sets_the_first_timeout() {
        let t0 = Instant::now();
        let mut a = Session::new_without_hello(Config::default(), A, addr(2), t0);
        assert_eq!(
            a.rtt().rto(),
            Duration::from_secs(1),
            "RFC 6298's initial value"
        );
        a.on_rtt_sample(t0, Duration::from_millis(2));
        // RFC 6298 2.2: SRTT = 2 ms, RTTVAR = 1 ms, RTO = SRTT + 4 RTTVAR = 6 ms.
        assert_eq!(a.rtt().srtt(), Some(Duration::from_millis(2)));
        assert_eq!(a.rtt().rttvar(), Duration::from_millis(1));
        assert_eq!(a.rtt().rto(), Duration::from_millis(6));
        // The first message's timers rest on it: the tail-loss probe after two round
        // trips (4 ms; the peer has advertised no ACK delay yet), then the
        // retransmission timer.
        a.adopt_peer(t0, B);
        a.send(t0, "quick".into()).unwrap();
        assert!(a.poll_transmit().is_some());
        assert_eq!(a.poll_timeout(), Some(t0 + Duration::from_millis(4)));
        a.handle_timeout(t0 + Duration::from_millis(4));
        assert!(a.poll_transmit().is_some(), "the probe");
        assert_eq!(a.stats().tail_probes, 1);
        // The probe restarted the message's timer: one timeout after it.
        assert_eq!(a.poll_timeout(), Some(t0 + Duration::from_millis(10)));
    }

    #[test]
    fn chatting_with_itself_works() {
        let t0 = Instant::now();
        let mut me = Session::new(Config::classic(), A, addr(1), t0);
        me.send(t0, "echo".into()).unwrap();
        while let Some(t) = me.poll_transmit() {
            me.handle_datagram(t0, addr(1), &t.payload);
        }
        assert_eq!(received(&mut me), vec!["echo"]);
        assert!(me.is_idle());
    }

    #[test]
    fn too_long_is_refused_and_nothing_is_queued() {
        let t0 = Instant::now();
        let (mut a, _) = pair(t0);
        let limit = crate::MAX_MESSAGE_LEN;
        let err = a.send(t0, "é".repeat(limit / 2 + 1)).unwrap_err();
        assert_eq!(
            err,
            SendError::TooLong {
                len: limit + 2,
                max: limit
            }
        );
        assert!(a.is_idle());
    }

    #[test]
    fn a_burst_shares_datagrams() {
        let t0 = Instant::now();
        let mut a = Session::new(Config::default(), A, addr(2), t0);
        let mut b = Session::new(Config::default(), B, addr(1), t0);
        exchange(&mut a, &mut b, t0);
        for i in 0..40 {
            a.send(t0, format!("{i:>100}")).unwrap();
        }
        let datagrams: Vec<_> = std::iter::from_fn(|| a.poll_transmit()).collect();
        // 40 messages of 111 bytes on the wire: 10 fit in a 1200-byte datagram.
        assert_eq!(datagrams.len(), 4);
        assert!(datagrams.iter().all(|d| d.payload.len() <= MAX_DATAGRAM));
        for d in &datagrams {
            b.handle_datagram(t0, addr(1), &d.payload);
        }
        assert_eq!(received(&mut b).len(), 40);
    }

    #[test]
    fn a_smaller_datagram_limit_shrinks_messages_and_packets() {
        let t0 = Instant::now();
        // What the encryption layer leaves: 1200 less its 29 bytes.
        let config = Config {
            max_datagram: 1171,
            ..Config::default()
        };
        let mut a = Session::new(config.clone(), A, addr(2), t0);
        let mut b = Session::new(config, B, addr(1), t0);
        exchange(&mut a, &mut b, t0);
        assert_eq!(a.max_text_len(), MAX_TEXT_LEN - 29);
        a.send(t0, "x".repeat(MAX_TEXT_LEN - 29)).unwrap();
        for i in 0..40 {
            a.send(t0, format!("{i:>100}")).unwrap();
        }
        let datagrams: Vec<_> = std::iter::from_fn(|| a.poll_transmit()).collect();
        assert!(datagrams.iter().all(|d| d.payload.len() <= 1171));
        // The longest message alone leaves room for an ACK and a SKIP frame.
        let reserve = crate::wire::ACK_RESERVE + crate::wire::SKIP_FRAME_LEN;
        assert_eq!(datagrams[0].payload.len(), 1171 - reserve);
        for d in &datagrams {
            b.handle_datagram(t0, addr(1), &d.payload);
        }
        assert_eq!(received(&mut b).len(), 41);
        // Out of range limits are clamped, never break the packing.
        let tiny = Config {
            max_datagram: 0,
            ..Config::default()
        };
        assert_eq!(tiny.max_text_len(), crate::wire::MAX_NICK_LEN);
    }

    #[test]
    fn the_queue_is_bounded_and_says_so() {
        let t0 = Instant::now();
        let config = Config {
            send_queue: 3,
            ..Config::default()
        };
        let mut a = Session::new(config, A, addr(2), t0);
        for _ in 0..3 {
            a.send(t0, "x".into()).unwrap();
        }
        assert!(!a.can_send());
        assert_eq!(
            a.send(t0, "y".into()),
            Err(SendError::QueueFull { limit: 3 })
        );
    }

    #[test]
    fn the_hello_exchange_gives_the_first_round_trip_sample() {
        let t0 = Instant::now();
        let (mut a, mut b) = pair(t0);
        let hello = a.poll_transmit().unwrap();
        let t1 = t0 + Duration::from_millis(40);
        b.handle_datagram(t1, addr(1), &hello.payload);
        while let Some(t) = b.poll_transmit() {
            a.handle_datagram(t0 + Duration::from_millis(80), addr(2), &t.payload);
        }
        assert_eq!(a.rtt().srtt(), Some(Duration::from_millis(80)));
    }

    #[test]
    fn keepalives_find_an_absent_peer_and_a_returning_one() {
        let t0 = Instant::now();
        let config = Config::default();
        let mut a = Session::new(config.clone(), A, addr(2), t0);
        let mut b = Session::new(config, B, addr(1), t0);
        exchange(&mut a, &mut b, t0);
        events(&mut a);
        // Idle: the next thing to do is a keepalive 5 s after last hearing from B.
        let ping_at = a.poll_timeout().unwrap();
        assert_eq!(ping_at, t0 + Duration::from_secs(5));
        a.handle_timeout(ping_at);
        let ping = a.poll_transmit().unwrap();
        assert!(matches!(
            Packet::decode(&ping.payload).unwrap().frames[0],
            Frame::Ping { .. }
        ));
        // B is gone: pings go unanswered; after 15 s A reports it unreachable.
        let mut now = ping_at;
        while a.peer_state() == PeerState::Online {
            now = a.poll_timeout().unwrap();
            a.handle_timeout(now);
            while a.poll_transmit().is_some() {}
        }
        assert_eq!(now, ping_at + Duration::from_secs(15));
        assert!(events(&mut a).contains(&Event::PeerStateChanged {
            state: PeerState::Unreachable
        }));
        // B answers a ping: back online, with a round-trip sample.
        a.handle_timeout(a.poll_timeout().unwrap());
        let ping = a.poll_transmit().unwrap();
        b.handle_datagram(now, addr(1), &ping.payload);
        let pong = b.poll_transmit().unwrap();
        a.handle_datagram(now, addr(2), &pong.payload);
        assert!(events(&mut a).contains(&Event::PeerStateChanged {
            state: PeerState::Online
        }));
    }

    #[test]
    fn a_nickname_arrives_in_order_with_the_messages() {
        let t0 = Instant::now();
        let (mut a, mut b) = pair(t0);
        a.send(t0, "before".into()).unwrap();
        a.send_nick(t0, "ada".into()).unwrap();
        a.send(t0, "after".into()).unwrap();
        for _ in 0..3 {
            exchange(&mut a, &mut b, t0);
        }
        let seen: Vec<_> = events(&mut b)
            .into_iter()
            .filter_map(|e| match e {
                Event::Received { text, .. } => Some(text),
                Event::PeerNick { nick } => Some(format!("nick={nick}")),
                _ => None,
            })
            .collect();
        assert_eq!(seen, vec!["before", "nick=ada", "after"]);
        // The announcement is not a message in the counters.
        let stats = a.stats();
        assert_eq!((stats.messages_queued, stats.nicks_sent), (2, 1));
        assert_eq!(stats.messages_delivered, 2);
        assert!(matches!(
            a.send_nick(t0, "x".repeat(65)),
            Err(SendError::TooLong { max: 64, .. })
        ));
    }

    #[test]
    fn an_unknown_kind_is_acknowledged_in_order_and_not_shown() {
        let t0 = Instant::now();
        let (mut a, mut b) = pair(t0);
        exchange(&mut a, &mut b, t0);
        let future = Packet {
            src_epoch: A,
            dst_epoch: B,
            frames: vec![Frame::Data {
                seq: 0,
                after: 0,
                payload: Payload::Unknown {
                    kind: 10,
                    bytes: vec![1, 2, 3],
                },
            }],
        };
        b.handle_datagram(t0, addr(1), &future.encode());
        let ack = Packet::decode(&b.poll_transmit().unwrap().payload).unwrap();
        assert!(matches!(
            ack.frames[0],
            Frame::Ack(AckFrame { cumulative: 1, .. })
        ));
        assert!(events(&mut b)
            .iter()
            .all(|e| !matches!(e, Event::Received { .. } | Event::Rejected { .. })));
    }

    #[test]
    fn classic_mode_is_silent_when_idle() {
        let t0 = Instant::now();
        let (mut a, mut b) = pair(t0);
        exchange(&mut a, &mut b, t0);
        assert_eq!(a.poll_timeout(), None);
        assert_eq!(b.poll_timeout(), None);
    }
}
