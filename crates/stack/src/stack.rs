//! [`Stack`]: the protocol session over the encryption layer, or over nothing.

use std::collections::VecDeque;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Instant;

use udpchat_proto::wire::{classify, Classification};
use udpchat_proto::{
    Config, Event, MessageId, PeerState, RttEstimator, SendError, Session, Stats, Transmit,
};
use udpchat_secure::{
    PublicKey, Reject, SealError, SecureConfig, SecureEndpoint, SecureEvent, SecureStats, MAX_INNER,
};

/// Protocol packets held while the first encrypted session is being set up. The newest
/// are kept: they carry the latest acknowledgement, and the protocol retransmits
/// whatever was dropped.
pub const MAX_HELD: usize = 64;

/// The protocol session's peer address while nobody has connected yet (an open
/// invitation): under encryption the address is the encryption layer's business, and
/// this one is only a label.
const NOBODY_YET: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0);

/// How the peer's datagrams are protected.
#[derive(Clone, Debug)]
pub enum Security {
    /// The original program's clear-text protocol: anyone on the path reads and injects
    /// messages.
    Plaintext,
    /// Noise sessions authenticated by long-term keys; see `udpchat-secure`.
    Encrypted {
        /// Identity, pinned keys, passphrase, invitation code, rekey and rate-limit
        /// settings. Its `peer` is overwritten with the stack's peer.
        config: Box<SecureConfig>,
        /// 32 bytes from the operating system's CSPRNG, for ephemeral keys and indices.
        rng_seed: [u8; 32],
    },
}

/// What the stack reports: the protocol's events and the encryption layer's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StackEvent {
    /// From the protocol session: messages, deliveries, failures, peer state.
    Session(Event),
    /// From the encryption layer: sessions established, rekeyed, moved, refused.
    Secure(SecureEvent),
}

/// A received datagram after the encryption layer (see [`Stack::open`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Opened {
    /// A protocol packet for [`Stack::handle_inner`]. Under encryption `from` is the
    /// protocol session's peer: the packet authenticated, whatever address it came
    /// from.
    Inner {
        /// The address to hand the protocol session.
        from: SocketAddr,
        /// The protocol packet.
        bytes: Vec<u8>,
    },
    /// A handshake message or keepalive, fully handled by the encryption layer.
    Consumed,
}

/// One peer: the protocol session, inside the encryption layer unless plaintext. The
/// program and the simulator talk to it, never to the layers inside.
#[derive(Debug)]
pub struct Stack {
    session: Session,
    secure: Option<Box<SecureEndpoint>>,
    /// The encryption layer's events, already applied to the protocol session.
    events: VecDeque<StackEvent>,
    /// Protocol packets waiting for the first encrypted session.
    held: VecDeque<Vec<u8>>,
    /// The latest time given to any call; sealing in `poll_transmit` uses it.
    now: Instant,
    /// Protocol packets that could not be sealed (never expected; the protocol
    /// retransmits them).
    unsealable: u64,
    /// Copies of the protocol packets handed out for sending since the last
    /// [`take_sent_packets`](Self::take_sent_packets), when a trace asked for them
    /// (`None`: not traced, and nothing is copied).
    sent_tap: Option<Vec<Vec<u8>>>,
}

impl Stack {
    /// A peer talking to `peer` (or, encrypted, waiting to be contacted when `None`), for
    /// this process run `epoch` (random, non-zero, fresh at every start).
    ///
    /// In the clear the protocol session learns the peer's run by its HELLO exchange.
    /// Under encryption it learns it from the authenticated handshake instead (one
    /// round trip less, and nothing unauthenticated can claim a run), its packets are
    /// made small enough for the encryption overhead ([`MAX_INNER`]), and the handshake
    /// starts at once.
    ///
    /// # Panics
    /// Never; a plaintext stack without a peer address talks to `0.0.0.0:0` (nothing).
    pub fn new(
        mut protocol: Config,
        security: Security,
        epoch: u64,
        peer: Option<SocketAddr>,
        now: Instant,
    ) -> Self {
        let label = peer.unwrap_or(NOBODY_YET);
        let (session, secure) = match security {
            Security::Plaintext => (Session::new(protocol, epoch, label, now), None),
            Security::Encrypted { config, rng_seed } => {
                protocol.max_datagram = protocol.max_datagram.min(MAX_INNER);
                let config = SecureConfig { peer, ..*config };
                let mut secure = SecureEndpoint::new(config, epoch, now, rng_seed);
                if peer.is_some() {
                    secure.connect(now);
                }
                let session = Session::new_without_hello(protocol, epoch, label, now);
                (session, Some(Box::new(secure)))
            }
        };
        Self {
            session,
            secure,
            events: VecDeque::new(),
            held: VecDeque::new(),
            now,
            unsealable: 0,
            sent_tap: None,
        }
    }

    /// Keeps a copy of every protocol packet handed out for sending (the plaintext
    /// inside the encryption), for a trace of the run (`--trace`); off by default,
    /// when it costs nothing.
    pub fn trace_sent_packets(&mut self, on: bool) {
        self.sent_tap = on.then(Vec::new);
    }

    /// The protocol packets handed out since the last call, oldest first (empty unless
    /// [`trace_sent_packets`](Self::trace_sent_packets) is on).
    pub fn take_sent_packets(&mut self) -> Vec<Vec<u8>> {
        self.sent_tap
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    }

    /// Feeds one received datagram, whatever its size or origin. `Err` means it did not
    /// authenticate (or was a replay, too large, ...): it changed nothing and must not
    /// be answered. Protocol-level rejections come as [`Event::Rejected`] instead.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        from: SocketAddr,
        bytes: &[u8],
    ) -> Result<(), Reject> {
        if let Opened::Inner { from, bytes } = self.open(now, from, bytes)? {
            self.handle_inner(now, from, &bytes);
        }
        Ok(())
    }

    /// The first half of [`handle_datagram`](Self::handle_datagram): authenticates and
    /// decrypts. In the clear, every datagram is passed on as it is.
    pub fn open(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) -> Result<Opened, Reject> {
        self.advance(now);
        let Some(secure) = self.secure.as_mut() else {
            return Ok(Opened::Inner {
                from,
                bytes: bytes.to_vec(),
            });
        };
        let result = secure.handle_datagram(now, from, bytes);
        self.absorb_secure_events(now);
        Ok(match result? {
            Some(plaintext) => Opened::Inner {
                from: self.session.peer_addr(),
                bytes: plaintext.bytes,
            },
            None => Opened::Consumed,
        })
    }

    /// The second half of [`handle_datagram`](Self::handle_datagram): hands an opened
    /// packet to the protocol session.
    pub fn handle_inner(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) {
        self.advance(now);
        self.session.handle_datagram(now, from, bytes);
    }

    /// Fires whatever is due in either layer.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.advance(now);
        if let Some(secure) = self.secure.as_mut() {
            secure.handle_timeout(now);
        }
        self.absorb_secure_events(now);
        self.session.handle_timeout(now);
    }

    /// Queues a message for the peer: it is delivered exactly once, in order, or
    /// reported failed with its text ([`Event::Delivered`] / [`Event::Failed`] with the
    /// returned id). Before a session exists it simply waits.
    ///
    /// # Errors
    /// [`SendError`]: too long, or the queue is full (stop reading input until
    /// [`can_send`](Self::can_send)).
    pub fn send(&mut self, now: Instant, text: String) -> Result<MessageId, SendError> {
        self.advance(now);
        self.session.send(now, text)
    }

    /// Queues a message under the caller's stable id for it (see
    /// [`Session::send_numbered`] and [`Ledger`](crate::Ledger)): commit the number
    /// first, so a restart sends it again under the same one.
    ///
    /// # Errors
    /// [`SendError`] as for [`send`](Self::send).
    pub fn send_numbered(
        &mut self,
        now: Instant,
        id: udpchat_proto::StableId,
        text: String,
    ) -> Result<MessageId, SendError> {
        self.advance(now);
        self.session.send_numbered(now, id, text)
    }

    /// Says that every received message whose event was taken is now durable, so
    /// acknowledgements may cover it (with `Config::durable_receive`; see
    /// [`Session::confirm_durable`]).
    pub fn confirm_durable(&mut self) {
        self.session.confirm_durable();
    }

    /// Queues a frame of the file transfer protocol (see [`Session::send_file_frame`]).
    ///
    /// # Errors
    /// [`SendError`]: too long, or our stream has ended (an offer or a chunk after
    /// [`finish`](Self::finish)).
    pub fn send_file_frame(
        &mut self,
        now: Instant,
        frame: udpchat_proto::FileFrame,
    ) -> Result<(), SendError> {
        self.advance(now);
        self.session.send_file_frame(now, frame)
    }

    /// Drops the queued chunks of `transfer` (see [`Session::drop_file_chunks`]).
    pub fn drop_file_chunks(&mut self, transfer: u64) -> u64 {
        self.session.drop_file_chunks(transfer)
    }

    /// Bytes of file data one chunk carries.
    pub fn max_chunk_len(&self) -> usize {
        self.session.max_chunk_len()
    }

    /// File chunks queued and not yet sent.
    pub fn file_chunks_queued(&self) -> usize {
        self.session.file_chunks_queued()
    }

    /// Bytes of file data the peer acknowledged since the session began.
    pub fn file_bytes_acked(&self) -> u64 {
        self.session.file_bytes_acked()
    }

    /// File frames the session gave up (the peer unreachable or gone), since it began.
    pub fn file_frames_failed(&self) -> u64 {
        self.session.file_frames_failed()
    }

    /// Tells the peer our nickname, in order with our messages.
    ///
    /// # Errors
    /// [`SendError`] as for [`send`](Self::send).
    pub fn send_nick(&mut self, now: Instant, nick: String) -> Result<MessageId, SendError> {
        self.advance(now);
        self.session.send_nick(now, nick)
    }

    /// Ends our stream at the end of input (see [`Session::finish`]): a DONE follows
    /// every message already queued, and `send` refuses from now on.
    pub fn finish(&mut self, now: Instant) {
        self.advance(now);
        self.session.finish(now);
    }

    /// True once the peer acknowledged our DONE and everything we sent (see
    /// [`Session::is_confirmed`]).
    pub fn is_confirmed(&self) -> bool {
        self.session.is_confirmed()
    }

    /// True once the goodbye is over and the program may [`close`](Self::close) and exit
    /// (see [`Session::is_finished`]).
    pub fn is_finished(&self) -> bool {
        // A contact halfway through its handshake (we answered, its last message is on
        // the way) is someone to say goodbye to: wait for it (a pending handshake is
        // forgotten after 15 s, which bounds the wait).
        let mid_handshake = self.session.peer_epoch().is_none() && self.pending_handshakes() > 0;
        self.session.is_finished() && !mid_handshake
    }

    /// True when the peer said it will send nothing more.
    pub fn peer_done(&self) -> bool {
        self.session.peer_done()
    }

    /// Leaves: the last acknowledgement and a CLOSE go out (drain
    /// [`poll_transmit`](Self::poll_transmit) once more), then nothing (see
    /// [`Session::close`]). Ctrl-C and `/quit` call it directly; after a goodbye, call
    /// it once [`is_finished`](Self::is_finished).
    pub fn close(&mut self, now: Instant) {
        self.advance(now);
        self.session.close(now);
    }

    /// True once [`close`](Self::close) was called and its closing period is over: the
    /// program may exit (see [`Session::is_closed`]).
    pub fn is_closed(&self) -> bool {
        self.session.is_closed()
    }

    /// The encryption layer's events are acted on here, before anyone else sees them:
    /// the protocol session adopts the peer's run from an authenticated handshake (the
    /// first, or a restart), and takes the handshake's round trip as an RTT sample.
    fn absorb_secure_events(&mut self, now: Instant) {
        let Some(secure) = self.secure.as_mut() else {
            return;
        };
        while let Some(event) = secure.poll_event() {
            match &event {
                SecureEvent::Established {
                    peer_epoch, rtt, ..
                } => {
                    if let Some(rtt) = rtt {
                        self.session.on_rtt_sample(now, *rtt);
                    }
                    self.session.adopt_peer(now, *peer_epoch);
                }
                SecureEvent::PeerRestarted { new_epoch, rtt, .. } => {
                    if let Some(rtt) = rtt {
                        self.session.on_rtt_sample(now, *rtt);
                    }
                    self.session.adopt_peer(now, *new_epoch);
                }
                SecureEvent::Rekeyed { rtt: Some(rtt), .. } => {
                    self.session.on_rtt_sample(now, *rtt);
                }
                _ => {}
            }
            self.events.push_back(StackEvent::Secure(event));
        }
    }

    /// The next datagram to send: handshake messages first, then protocol packets,
    /// sealed. Returns `None` when nothing more can be sent now.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.poll_transmit_classified().map(|(t, _)| t)
    }

    /// [`poll_transmit`](Self::poll_transmit), also saying what the protocol packet
    /// inside is (a message, an acknowledgement, or control: handshakes, keepalives).
    /// Under encryption only the sender can tell; a simulated network that loses
    /// acknowledgements and messages at different rates needs to know.
    pub fn poll_transmit_classified(&mut self) -> Option<(Transmit, Classification)> {
        let Some(secure) = self.secure.as_mut() else {
            let t = self.session.poll_transmit()?;
            let class = classify(&t.payload);
            if let Some(tap) = self.sent_tap.as_mut() {
                tap.push(t.payload.clone());
            }
            return Some((t, class));
        };
        let tap = &mut self.sent_tap;
        let sealed = |t: udpchat_secure::Transmit, class| {
            let t = Transmit {
                destination: t.destination,
                payload: t.payload,
            };
            (t, class)
        };
        loop {
            if let Some(t) = secure.poll_transmit() {
                return Some(sealed(t, Classification::Control));
            }
            if secure.is_established() {
                if let Some(inner) = self.held.pop_front() {
                    match secure.seal(self.now, &inner) {
                        Ok(t) => {
                            if let Some(tap) = tap.as_mut() {
                                tap.push(inner.clone());
                            }
                            return Some(sealed(t, classify(&inner)));
                        }
                        Err(SealError::NotEstablished) => self.held.push_front(inner),
                        Err(_) => self.unsealable += 1,
                    }
                    continue;
                }
            }
            let inner = self.session.poll_transmit()?.payload;
            match secure.seal(self.now, &inner) {
                Ok(t) => {
                    if let Some(tap) = tap.as_mut() {
                        tap.push(inner.clone());
                    }
                    return Some(sealed(t, classify(&inner)));
                }
                Err(SealError::NotEstablished) => {
                    if self.held.len() == MAX_HELD {
                        self.held.pop_front();
                    }
                    self.held.push_back(inner);
                }
                // Refused: the driver reports it; the packet has nowhere to go.
                Err(_) => self.unsealable += 1,
            }
        }
    }

    /// The next event: the encryption layer's first (a session is shown as established
    /// before the messages it carries), then the protocol's.
    pub fn poll_event(&mut self) -> Option<StackEvent> {
        if let Some(e) = self.events.pop_front() {
            return Some(e);
        }
        self.session.poll_event().map(StackEvent::Session)
    }

    /// When [`handle_timeout`](Self::handle_timeout) must next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let secure = self.secure.as_ref().and_then(|s| s.poll_timeout());
        [self.session.poll_timeout(), secure]
            .into_iter()
            .flatten()
            .min()
    }

    // ---- what the program shows ----

    /// True when [`send`](Self::send) would accept a message now.
    pub fn can_send(&self) -> bool {
        self.session.can_send()
    }

    /// Messages queued or awaiting acknowledgement.
    pub fn outstanding(&self) -> usize {
        self.session.outstanding()
    }

    /// Messages on the wire awaiting acknowledgement.
    pub fn in_flight(&self) -> usize {
        self.session.in_flight()
    }

    /// True when no message of ours is queued or awaiting acknowledgement.
    pub fn is_idle(&self) -> bool {
        self.session.is_idle()
    }

    /// The longest text one datagram carries, in bytes of UTF-8; a longer message
    /// travels in parts (up to [`max_message_len`](Self::max_message_len)).
    pub fn max_text_len(&self) -> usize {
        self.session.max_text_len()
    }

    /// The longest message this side sends (its parts included).
    pub fn max_message_len(&self) -> usize {
        self.session.max_message_len()
    }

    /// The protocol's counters.
    pub fn stats(&self) -> &Stats {
        self.session.stats()
    }

    /// The round-trip estimator: SRTT, RTTVAR and the current RTO.
    pub fn rtt(&self) -> &RttEstimator {
        self.session.rtt()
    }

    /// Whether the peer answers.
    pub fn peer_state(&self) -> PeerState {
        self.session.peer_state()
    }

    /// This run's epoch.
    pub fn local_epoch(&self) -> u64 {
        self.session.local_epoch()
    }

    /// The protocol settings.
    pub fn config(&self) -> &Config {
        self.session.config()
    }

    /// The encryption layer's counters, unless in the clear.
    pub fn secure_stats(&self) -> Option<&SecureStats> {
        self.secure.as_deref().map(SecureEndpoint::stats)
    }

    /// Datagrams rejected so far, by either layer.
    pub fn rejected(&self) -> u64 {
        let secure = self.secure_stats().map_or(0, SecureStats::rejected_total);
        self.session.stats().rejected + secure
    }

    /// Handshakes answered and not finished (encryption only).
    pub fn pending_handshakes(&self) -> usize {
        self.secure.as_deref().map_or(0, |s| s.state_size().pending)
    }

    /// The peer's long-term key, once a session proved it.
    pub fn peer_key(&self) -> Option<PublicKey> {
        self.secure.as_deref().and_then(SecureEndpoint::peer_key)
    }

    /// Our long-term key, unless in the clear.
    pub fn public_key(&self) -> Option<PublicKey> {
        self.secure.as_deref().map(SecureEndpoint::public_key)
    }

    /// Whether an invitation code is still open.
    pub fn invitation_open(&self) -> bool {
        self.secure
            .as_deref()
            .is_some_and(SecureEndpoint::invitation_open)
    }

    /// Whether a refused contact stopped the encryption layer: no session will come.
    pub fn is_stopped(&self) -> bool {
        self.secure
            .as_deref()
            .is_some_and(SecureEndpoint::is_stopped)
    }

    /// Whether an encrypted session exists (always true in the clear).
    pub fn is_established(&self) -> bool {
        self.secure
            .as_deref()
            .is_none_or(SecureEndpoint::is_established)
    }

    /// Whether datagrams are encrypted.
    pub fn is_encrypted(&self) -> bool {
        self.secure.is_some()
    }

    /// Where datagrams go: the encryption layer's peer (it follows an authenticated
    /// peer that moved); in the clear, the address given at start. `None` until an open
    /// invitation is answered.
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        match &self.secure {
            Some(s) => s.peer_addr(),
            None => Some(self.session.peer_addr()),
        }
    }

    /// The peer's run, once known.
    pub fn peer_epoch(&self) -> Option<u64> {
        self.session.peer_epoch()
    }

    /// Protocol packets waiting for the first encrypted session.
    pub fn held(&self) -> usize {
        self.held.len()
    }

    /// Protocol packets the encryption layer refused to seal (never expected, except
    /// after a refused contact).
    pub fn unsealable(&self) -> u64 {
        self.unsealable
    }

    /// The protocol session, for tests and figures that need more than the above.
    pub fn session(&self) -> &Session {
        &self.session
    }

    /// The encryption layer, unless in the clear.
    pub fn secure(&self) -> Option<&SecureEndpoint> {
        self.secure.as_deref()
    }

    fn advance(&mut self, now: Instant) {
        self.now = self.now.max(now);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::pair::Pair;
    use udpchat_secure::{derive_psk_with, Identity, InviteCode, KdfParams, Psk, Trust};

    fn psk(passphrase: &str) -> Psk {
        derive_psk_with(passphrase.as_bytes(), None, KdfParams::INSECURE_TEST_ONLY).unwrap()
    }

    fn ids() -> (Identity, Identity) {
        (
            Identity::from_private([0xA; 32]),
            Identity::from_private([0xB; 32]),
        )
    }

    /// A's and B's security with each other's key pinned.
    fn pinned() -> (Security, Security) {
        let (a, b) = ids();
        let config = |me: &Identity, other: &Identity| SecureConfig {
            trust: Trust {
                pinned: [other.public()].into_iter().collect(),
                expected: Some(other.public()),
            },
            ..SecureConfig::new(me.clone())
        };
        (
            Security::Encrypted {
                config: Box::new(config(&a, &b)),
                rng_seed: [1; 32],
            },
            Security::Encrypted {
                config: Box::new(config(&b, &a)),
                rng_seed: [2; 32],
            },
        )
    }

    fn with_passphrase(passphrase: &str, seed: u8, id: Identity) -> Security {
        Security::Encrypted {
            config: Box::new(SecureConfig {
                psk: Some(psk(passphrase)),
                ..SecureConfig::new(id)
            }),
            rng_seed: [seed; 32],
        }
    }

    fn received(events: &[StackEvent]) -> Vec<String> {
        events
            .iter()
            .filter_map(|e| match e {
                StackEvent::Session(Event::Received { text, .. }) => Some(text.clone()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn encrypted_first_message_goes_out_with_the_handshake_not_after_a_timeout() {
        let (sa, sb) = pinned();
        let mut p = Pair::new(Config::default(), sa, sb);
        p.a.send(p.now, "hello".into()).unwrap();
        let rejects = p.exchange();
        assert!(rejects.is_empty(), "{rejects:?}");
        let eb = p.events_b();
        assert!(matches!(
            eb.first(),
            Some(StackEvent::Secure(SecureEvent::Established { .. }))
        ));
        assert_eq!(received(&eb), ["hello"]);
        assert!(p.a.is_idle());
        assert_eq!(p.a.stats().retransmissions, 0);
        assert_eq!(p.a.held(), 0);
        assert!(
            p.a.rtt().srtt().is_some(),
            "the handshake gave the first RTT sample"
        );
        assert_eq!(p.a.max_text_len(), udpchat_proto::wire::MAX_TEXT_LEN - 29);
        // No HELLO exchange under encryption: the session came up with the handshake.
        assert!(p
            .events_a()
            .iter()
            .any(|e| matches!(e, StackEvent::Session(Event::Connected { .. }))));
    }

    #[test]
    fn a_first_contact_by_code_then_chat() {
        let (a, b) = ids();
        let code = InviteCode::parse("7-ribbon-tunnel").unwrap();
        let sec = |id: Identity, seed| Security::Encrypted {
            config: Box::new(SecureConfig {
                code: Some(code),
                ..SecureConfig::new(id)
            }),
            rng_seed: [seed; 32],
        };
        let mut p = Pair::new(Config::default(), sec(a, 1), sec(b, 2));
        p.a.send(p.now, "nice to meet you".into()).unwrap();
        p.exchange();
        assert_eq!(received(&p.events_b()), ["nice to meet you"]);
        assert_eq!(
            p.a.peer_key(),
            Some(Identity::from_private([0xB; 32]).public())
        );
        assert!(!p.a.invitation_open() && !p.b.invitation_open());
    }

    #[test]
    fn wrong_passphrase_delivers_nothing_and_is_never_answered() {
        let (a, b) = ids();
        let mut p = Pair::new(
            Config::default(),
            with_passphrase("one", 1, a),
            with_passphrase("two", 2, b),
        );
        p.a.send(p.now, "secret".into()).unwrap();
        let rejects = p.exchange();
        assert!(rejects.iter().all(|r| *r == Reject::BadMac1), "{rejects:?}");
        assert!(received(&p.events_b()).is_empty());
        assert_eq!(p.b.pending_handshakes(), 0);
        assert_eq!(p.b.secure_stats().unwrap().handshake_responses_sent, 0);
    }

    #[test]
    fn plaintext_and_encrypted_peers_do_not_understand_each_other() {
        let (_, sb) = pinned();
        let mut p = Pair::new(Config::default(), Security::Plaintext, sb);
        p.a.send(p.now, "clear".into()).unwrap();
        let rejects = p.exchange();
        assert!(rejects.contains(&Reject::NotSecure { first_byte: 0x55 }));
        assert!(received(&p.events_b()).is_empty());
        assert!(p
            .events_a()
            .iter()
            .any(|e| matches!(e, StackEvent::Session(Event::Rejected { .. }))));
    }

    #[test]
    fn plaintext_is_the_protocol_session_unchanged() {
        let mut p = Pair::new(Config::default(), Security::Plaintext, Security::Plaintext);
        p.a.send(p.now, "hi".into()).unwrap();
        p.exchange();
        assert_eq!(received(&p.events_b()), ["hi"]);
        assert!(!p.a.is_encrypted() && p.a.secure().is_none());
        assert_eq!(p.a.max_text_len(), udpchat_proto::wire::MAX_TEXT_LEN);
    }

    #[test]
    fn a_trace_sees_the_protocol_packets_inside_the_encryption() {
        let (sa, sb) = pinned();
        let mut p = Pair::new(Config::default(), sa, sb);
        p.exchange();
        assert!(p.a.take_sent_packets().is_empty(), "off: nothing copied");
        p.a.trace_sent_packets(true);
        p.a.send(p.now, "hi".into()).unwrap();
        let (sealed, _) = p.a.poll_transmit_classified().unwrap();
        let tapped = p.a.take_sent_packets();
        let [inner] = tapped.as_slice() else {
            panic!("{tapped:?}");
        };
        let packet = udpchat_proto::wire::Packet::decode_with(
            inner,
            udpchat_proto::wire::Trailer::Authenticated,
        )
        .unwrap();
        assert!(packet
            .frames
            .iter()
            .any(|f| matches!(f, udpchat_proto::wire::Frame::Data { seq: 0, .. })));
        assert_ne!(&sealed.payload, inner, "the copy is the plaintext");
        assert!(p.a.take_sent_packets().is_empty());
    }

    #[test]
    fn the_class_of_a_sealed_packet_is_its_inner_packet_s() {
        let (sa, sb) = pinned();
        let mut p = Pair::new(Config::default(), sa, sb);
        p.exchange();
        p.a.send(p.now, "hi".into()).unwrap();
        let (data, class) = p.a.poll_transmit_classified().unwrap();
        assert!(
            matches!(class, Classification::Data { seq: 0 }),
            "{class:?}"
        );
        assert_eq!(data.payload[0], udpchat_secure::wire::TYPE_TRANSPORT);
        p.b.handle_datagram(p.now, p.a_addr, &data.payload).unwrap();
        let (_, class) = p.b.poll_transmit_classified().unwrap();
        assert!(
            matches!(class, Classification::Ack { cumulative: 1 }),
            "{class:?}"
        );
        let (fresh, _) = pinned();
        let mut fresh = Stack::new(Config::default(), fresh, 0xA, Some(p.b_addr), p.now);
        let (_, class) = fresh.poll_transmit_classified().unwrap();
        assert_eq!(class, Classification::Control, "the handshake");
    }

    #[test]
    fn held_packets_are_bounded_while_the_peer_is_silent() {
        let (sa, _) = pinned();
        let t0 = Instant::now();
        let mut a = Stack::new(Config::default(), sa, 0xA, Some(Pair::B), t0);
        let mut now = t0;
        for i in 0..300 {
            a.send(now, format!("m{i}")).unwrap();
            while a.poll_transmit().is_some() {}
            now += Duration::from_millis(500);
            a.handle_timeout(now);
        }
        assert!(a.held() <= MAX_HELD);
    }

    #[test]
    fn a_message_waits_for_a_late_peer_without_spending_its_retries() {
        // A fixed 50 ms timeout and 3 retries: 0.2 s of retransmissions. The peer starts
        // 10 s later; the message must neither fail nor have been retransmitted.
        let (sa, sb) = pinned();
        let config = Config {
            rto: udpchat_proto::RtoPolicy::Fixed(Duration::from_millis(50)),
            max_retries: 3,
            ..Config::default()
        };
        let mut p = Pair::new(config.clone(), sa, sb);
        p.a.send(p.now, "early".into()).unwrap();
        let start = p.now;
        // B is not there: whatever A sends is lost.
        while p.now < start + Duration::from_secs(10) {
            while p.a.poll_transmit().is_some() {}
            p.now = p.a.poll_timeout().unwrap_or(p.now + Duration::from_secs(1));
            let now = p.now;
            p.a.handle_timeout(now);
        }
        let (_, sb) = pinned();
        p.b = Stack::new(config, sb, 0xB2, Some(Pair::A), p.now);
        p.exchange();
        let ea = p.events_a();
        assert!(ea
            .iter()
            .any(|e| matches!(e, StackEvent::Session(Event::Delivered { .. }))));
        assert!(!ea
            .iter()
            .any(|e| matches!(e, StackEvent::Session(Event::Failed { .. }))));
        assert_eq!(p.a.stats().retransmissions, 0);
        assert_eq!(received(&p.events_b()), ["early"]);
    }

    #[test]
    fn a_restarted_peer_gets_the_unacknowledged_messages_with_nothing_to_compare() {
        let (sa, sb) = pinned();
        let mut p = Pair::new(Config::default(), sa, sb);
        p.exchange();
        // B restarts (the same identity, a new run) before A's message is acknowledged.
        p.a.send(p.now, "are you there".into()).unwrap();
        while p.a.poll_transmit().is_some() {}
        // A new run draws new randomness (the program seeds from the OS).
        let (_, Security::Encrypted { config, .. }) = pinned() else {
            unreachable!()
        };
        let sb = Security::Encrypted {
            config,
            rng_seed: [3; 32],
        };
        p.b = Stack::new(Config::default(), sb, 0xB2, Some(Pair::A), p.now);
        p.exchange();
        let ea = p.events_a();
        assert!(
            ea.iter().any(|e| matches!(
                e,
                StackEvent::Session(Event::PeerRestarted { resent: 1, .. })
            )),
            "{ea:?}"
        );
        assert!(!ea
            .iter()
            .any(|e| matches!(e, StackEvent::Secure(SecureEvent::Refused { .. }))));
        assert_eq!(received(&p.events_b()), ["are you there"]);
    }
}
