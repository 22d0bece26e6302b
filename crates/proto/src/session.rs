//! The session with one peer: epochs and the HELLO exchange, one [`Sender`] and one
//! [`Receiver`], and the queues of transmits and events the caller drains.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Instant;

use crate::config::Config;
use crate::error::{RejectReason, SendError};
use crate::event::{Event, MessageId};
use crate::receiver::{Arrival, Receiver};
use crate::sender::{AckOutcome, Sender, SenderOutput};
use crate::stats::Stats;
use crate::transmit::Transmit;
use crate::wire::{Frame, Packet, MAX_TEXT_LEN};

/// How many ended runs of the peer are remembered, so their late datagrams are
/// recognised as stale instead of being taken for yet another restart.
const RETIRED_EPOCHS: usize = 16;

/// A reliable, ordered, exactly-once message session with one peer.
///
/// See the crate documentation for the calling contract.
#[derive(Debug)]
pub struct Session {
    config: Config,
    local_epoch: u64,
    peer_addr: SocketAddr,
    /// The peer's current run, once learnt from a HELLO or from any packet addressed to
    /// our epoch.
    peer_epoch: Option<u64>,
    retired: VecDeque<u64>,
    /// While the peer's epoch is unknown, when to send the next HELLO.
    hello_at: Option<Instant>,
    /// HELLOs sent without an answer; they stand in for the first message's attempts.
    hello_attempts: u32,
    sender: Sender,
    receiver: Receiver,
    next_id: u64,
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
    stats: Stats,
    /// Latest `now` seen, so a clock that steps back cannot move timers backwards.
    now: Instant,
}

impl Session {
    /// Creates a session with the peer at `peer_addr`. `local_epoch` must be random and
    /// non-zero, chosen once per process start (0 is replaced by 1). The first HELLO is
    /// ready in [`poll_transmit`](Self::poll_transmit) at once.
    pub fn new(config: Config, local_epoch: u64, peer_addr: SocketAddr, now: Instant) -> Self {
        let window = config.effective_window();
        let mut session = Self {
            sender: Sender::new(window, config.seq_bits, config.rto, config.max_retries),
            receiver: Receiver::new(window, config.seq_bits),
            config,
            local_epoch: local_epoch.max(1),
            peer_addr,
            peer_epoch: None,
            retired: VecDeque::new(),
            hello_at: None,
            hello_attempts: 0,
            next_id: 0,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            stats: Stats::default(),
            now,
        };
        session.send_hello(0);
        session.hello_attempts = 1;
        session.hello_at = Some(now + session.config.rto);
        session
    }

    /// Queues a message. It is sent when the window allows, and ends in exactly one
    /// [`Event::Delivered`] or [`Event::Failed`] carrying the same id.
    pub fn send(&mut self, now: Instant, text: String) -> Result<MessageId, SendError> {
        if text.len() > MAX_TEXT_LEN {
            return Err(SendError::TooLong {
                len: text.len(),
                max: MAX_TEXT_LEN,
            });
        }
        let now = self.advance(now);
        let id = MessageId(self.next_id);
        self.next_id += 1;
        self.stats.messages_queued += 1;
        self.sender.push(id, text, now);
        self.pump(now);
        Ok(id)
    }

    /// Feeds one datagram received from `from`.
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) {
        let now = self.advance(now);
        self.stats.datagrams_received += 1;
        if from != self.peer_addr {
            self.reject(RejectReason::UnknownSource);
            return;
        }
        let packet = match Packet::decode(bytes) {
            Ok(p) => p,
            Err(e) => return self.reject(e.into()),
        };
        if self.retired.contains(&packet.src_epoch) {
            return self.reject(RejectReason::StaleEpoch);
        }
        let has_hello = packet.frames.contains(&Frame::Hello);
        let addressed_to_us = packet.dst_epoch == self.local_epoch;
        if has_hello || addressed_to_us {
            self.adopt_peer_epoch(packet.src_epoch);
        }
        if !addressed_to_us {
            // The sender does not know this run of ours: tell it, with a packet no larger
            // than the one it sent, and act on nothing else in it.
            self.send_hello(packet.src_epoch);
            if !has_hello {
                self.reject(RejectReason::WrongDestinationEpoch);
            }
            self.pump(now);
            return;
        }
        let mut must_ack = false;
        for frame in packet.frames {
            match frame {
                Frame::Hello => {}
                Frame::Skip { below } => {
                    let ready = self.receiver.on_skip(below);
                    self.deliver(ready);
                    must_ack = true;
                }
                Frame::Data { seq, text } => {
                    must_ack = true;
                    match self.receiver.on_data(seq, text) {
                        Arrival::Deliver(ready) => self.deliver(ready),
                        Arrival::Duplicate => {
                            self.stats.duplicates += 1;
                            self.events.push_back(Event::Duplicate { seq });
                        }
                        Arrival::Buffered | Arrival::BeyondWindow => {}
                    }
                }
                Frame::Ack(ack) => {
                    let mut out = Vec::new();
                    if self.sender.on_ack(ack, now, &mut out) == AckOutcome::BeyondSent {
                        self.reject(RejectReason::AckBeyondSent);
                    }
                    self.apply(out);
                }
            }
        }
        if must_ack {
            self.send_ack();
        }
        self.pump(now);
    }

    /// Tells the session that `now` has been reached; fires due retransmissions.
    pub fn handle_timeout(&mut self, now: Instant) {
        let now = self.advance(now);
        if let Some(at) = self.hello_at {
            if at <= now {
                self.on_hello_timeout(now);
            }
        }
        let mut out = Vec::new();
        self.sender.on_timeout(now, &mut out);
        self.apply(out);
        self.pump(now);
    }

    /// The next datagram to send, if any. Drain until `None` after every input.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next event, if any. Drain until `None` after every input.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) must next be called, if ever. It may
    /// change after any input, so ask again after each.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        let data = if self.peer_epoch.is_some() {
            self.sender.next_timeout()
        } else {
            None
        };
        match (self.hello_at, data) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// True when no message of ours is queued or awaiting acknowledgement.
    pub fn is_idle(&self) -> bool {
        self.sender.is_idle()
    }

    /// Messages queued or awaiting acknowledgement.
    pub fn outstanding(&self) -> usize {
        self.sender.outstanding()
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

    /// Makes `epoch` the peer's current run. A different known run means the peer
    /// restarted: forget its old stream and send it ours again from the start.
    fn adopt_peer_epoch(&mut self, epoch: u64) {
        match self.peer_epoch {
            Some(current) if current == epoch => {}
            Some(old) => {
                if self.retired.len() == RETIRED_EPOCHS {
                    self.retired.pop_front();
                }
                self.retired.push_back(old);
                self.peer_epoch = Some(epoch);
                self.stats.peer_restarts += 1;
                let window = self.config.effective_window();
                self.receiver = Receiver::new(window, self.config.seq_bits);
                let resent = self.sender.restart_stream();
                self.events.push_back(Event::PeerRestarted {
                    old_epoch: old,
                    new_epoch: epoch,
                    resent,
                });
            }
            None => {
                self.peer_epoch = Some(epoch);
                self.hello_at = None;
                self.hello_attempts = 0;
                self.events
                    .push_back(Event::Connected { peer_epoch: epoch });
            }
        }
    }

    fn on_hello_timeout(&mut self, now: Instant) {
        if self.hello_attempts > self.config.max_retries && !self.sender.is_idle() {
            // Nobody has answered for as long as a message may wait: report everything
            // queued as failed, then keep knocking in case the peer starts later.
            let mut out = Vec::new();
            self.sender.fail_all(&mut out);
            self.apply(out);
            self.hello_attempts = 0;
        }
        self.send_hello(0);
        self.hello_attempts += 1;
        self.hello_at = Some(now + self.config.rto);
    }

    /// Moves queued messages onto the wire once the peer is known.
    fn pump(&mut self, now: Instant) {
        if self.peer_epoch.is_none() {
            return;
        }
        let mut out = Vec::new();
        self.sender.fill_window(now, &mut out);
        self.apply(out);
    }

    fn apply(&mut self, outputs: Vec<SenderOutput>) {
        for output in outputs {
            match output {
                SenderOutput::Transmit {
                    id,
                    seq,
                    text,
                    attempt,
                } => {
                    let mut frames = Vec::with_capacity(2);
                    if let Some(below) = self.sender.pending_skip() {
                        frames.push(Frame::Skip { below });
                    }
                    frames.push(Frame::Data { seq, text });
                    self.push_packet(frames);
                    if attempt == 1 {
                        self.stats.data_sent += 1;
                        self.events.push_back(Event::Sent { id, seq });
                    } else {
                        self.stats.retransmissions += 1;
                        self.events
                            .push_back(Event::Retransmit { id, seq, attempt });
                    }
                }
                SenderOutput::Delivered {
                    id,
                    seq,
                    attempts,
                    elapsed,
                } => {
                    self.stats.messages_delivered += 1;
                    self.events.push_back(Event::Delivered {
                        id,
                        seq,
                        attempts,
                        elapsed,
                    });
                }
                SenderOutput::Failed { id, text, reason } => {
                    self.stats.messages_failed += 1;
                    self.events.push_back(Event::Failed { id, text, reason });
                }
            }
        }
    }

    fn deliver(&mut self, ready: Vec<(u64, String)>) {
        for (seq, text) in ready {
            self.stats.messages_received += 1;
            self.events.push_back(Event::Received { seq, text });
        }
    }

    fn send_ack(&mut self) {
        self.stats.acks_sent += 1;
        let ack = self.receiver.ack();
        self.push_packet(vec![Frame::Ack(ack)]);
    }

    fn send_hello(&mut self, dst_epoch: u64) {
        let packet = Packet {
            src_epoch: self.local_epoch,
            dst_epoch,
            frames: vec![Frame::Hello],
        };
        self.push_encoded(packet.encode());
    }

    fn push_packet(&mut self, frames: Vec<Frame>) {
        let packet = Packet {
            src_epoch: self.local_epoch,
            dst_epoch: self.peer_epoch.unwrap_or(0),
            frames,
        };
        self.push_encoded(packet.encode());
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
    use std::time::Duration;

    const A: u64 = 0xA;
    const B: u64 = 0xB;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    fn pair(now: Instant) -> (Session, Session) {
        let a = Session::new(Config::default(), A, addr(2), now);
        let b = Session::new(Config::default(), B, addr(1), now);
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
        assert!(b.poll_transmit().is_some() && b.poll_transmit().is_some());
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
        let mut b2 = Session::new(Config::default(), 0xB2, addr(1), t0);
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
                text: "ghost".into(),
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
        let mut a2 = Session::new(Config::default(), 0xA2, addr(2), t0);
        let _ = a2.poll_transmit(); // its first HELLO is lost
        a2.handle_datagram(t0, addr(2), &to_old.payload);
        assert!(events(&mut a2).contains(&Event::Rejected {
            reason: RejectReason::WrongDestinationEpoch
        }));
        exchange(&mut a2, &mut b, t0);
        assert_eq!(received(&mut a2), vec!["to the old a"]);
    }

    #[test]
    fn unanswered_handshake_fails_queued_messages_after_max_retries() {
        let t0 = Instant::now();
        let config = Config {
            max_retries: 2,
            ..Config::default()
        };
        let mut a = Session::new(config, A, addr(2), t0);
        a.send(t0, "anyone?".into()).unwrap();
        let mut now = t0;
        while !a.is_idle() {
            now = a.poll_timeout().unwrap();
            a.handle_timeout(now);
        }
        assert_eq!(now, t0 + Duration::from_secs(9));
        assert!(events(&mut a).contains(&Event::Failed {
            id: MessageId(0),
            text: "anyone?".into(),
            reason: FailReason::PeerUnreachable
        }));
        assert!(a.poll_timeout().is_some(), "keeps knocking for a late peer");
    }

    #[test]
    fn chatting_with_itself_works() {
        let t0 = Instant::now();
        let mut me = Session::new(Config::default(), A, addr(1), t0);
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
        let err = a.send(t0, "é".repeat(MAX_TEXT_LEN)).unwrap_err();
        assert_eq!(
            err,
            SendError::TooLong {
                len: 2 * MAX_TEXT_LEN,
                max: MAX_TEXT_LEN
            }
        );
        assert!(a.is_idle());
    }
}
