//! [`Stack`]: the protocol session over the encryption layer, or over nothing.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use udpchat_proto::wire::{classify, Classification};
use udpchat_proto::{Config, Event, Session, Transmit};
use udpchat_secure::{Reject, SealError, SecureConfig, SecureEndpoint, SecureEvent, MAX_INNER};

/// Protocol packets held while the first encrypted session is being set up. The newest
/// are kept: they carry the latest acknowledgement, and the protocol retransmits
/// whatever was dropped.
pub const MAX_HELD: usize = 64;

/// How the peer's datagrams are protected.
#[derive(Clone, Debug)]
pub enum Security {
    /// The seed's clear-text protocol: anyone on the path reads and injects messages.
    Plaintext,
    /// A Noise session per peer run; see `udpchat-secure`.
    Encrypted {
        /// Passphrase key (or none: ephemeral handshake and a short authentication
        /// string), rekey and rate-limit settings. Its `peer` is overwritten with the
        /// stack's peer.
        config: SecureConfig,
        /// The wall clock at start (time since the Unix epoch), read once: it stamps
        /// handshakes so a recorded one replayed later is refused.
        unix_time: Duration,
        /// 32 bytes from the operating system's CSPRNG, for ephemeral keys and indices.
        rng_seed: [u8; 32],
    },
}

/// What the stack reports: the protocol's events and the encryption layer's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StackEvent {
    /// From the protocol session: messages, deliveries, failures, peer state.
    Session(Event),
    /// From the encryption layer: sessions established, rekeyed, re-verified, moved.
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

/// One peer: the protocol session, inside the encryption layer unless plaintext.
#[derive(Debug)]
pub struct Stack {
    session: Session,
    secure: Option<Box<SecureEndpoint>>,
    /// Protocol packets waiting for the first encrypted session.
    held: VecDeque<Vec<u8>>,
    /// The latest time given to any call; sealing in `poll_transmit` uses it.
    now: Instant,
    /// Protocol packets that could not be sealed (never expected; the protocol
    /// retransmits them).
    unsealable: u64,
}

impl Stack {
    /// A peer talking to `peer`, for this process run `epoch` (random, non-zero, fresh
    /// at every start). Under encryption the protocol's packets are made small enough
    /// for the encryption overhead ([`MAX_INNER`]) and the handshake starts at once.
    pub fn new(
        mut protocol: Config,
        security: Security,
        epoch: u64,
        peer: SocketAddr,
        now: Instant,
    ) -> Self {
        let secure = match security {
            Security::Plaintext => None,
            Security::Encrypted {
                config,
                unix_time,
                rng_seed,
            } => {
                protocol.max_datagram = protocol.max_datagram.min(MAX_INNER);
                let config = SecureConfig {
                    peer: Some(peer),
                    ..config
                };
                let mut secure = SecureEndpoint::new(config, epoch, now, unix_time, rng_seed);
                secure.connect(now);
                Some(Box::new(secure))
            }
        };
        Self {
            session: Session::new(protocol, epoch, peer, now),
            secure,
            held: VecDeque::new(),
            now,
            unsealable: 0,
        }
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
        Ok(match secure.handle_datagram(now, from, bytes)? {
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
        self.session.handle_timeout(now);
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
            return Some((t, class));
        };
        let sealed = |t: udpchat_secure::Transmit, class| {
            let t = Transmit {
                destination: t.to,
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
                        Ok(t) => return Some(sealed(t, classify(&inner))),
                        Err(SealError::NotEstablished) => self.held.push_front(inner),
                        Err(_) => self.unsealable += 1,
                    }
                    continue;
                }
            }
            let inner = self.session.poll_transmit()?.payload;
            match secure.seal(self.now, &inner) {
                Ok(t) => return Some(sealed(t, classify(&inner))),
                Err(SealError::NotEstablished) => {
                    if self.held.len() == MAX_HELD {
                        self.held.pop_front();
                    }
                    self.held.push_back(inner);
                }
                Err(_) => self.unsealable += 1,
            }
        }
    }

    /// The next event: the encryption layer's first (a session is shown as established
    /// before the messages it carries), then the protocol's.
    pub fn poll_event(&mut self) -> Option<StackEvent> {
        if let Some(e) = self.secure.as_mut().and_then(|s| s.poll_event()) {
            return Some(StackEvent::Secure(e));
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

    /// The protocol session: send messages, read its state and figures.
    pub fn session(&self) -> &Session {
        &self.session
    }

    /// The protocol session, to send messages and nicknames.
    pub fn session_mut(&mut self) -> &mut Session {
        &mut self.session
    }

    /// The encryption layer, unless in the clear.
    pub fn secure(&self) -> Option<&SecureEndpoint> {
        self.secure.as_deref()
    }

    /// Whether datagrams are encrypted.
    pub fn is_encrypted(&self) -> bool {
        self.secure.is_some()
    }

    /// Where datagrams go: the encryption layer follows an authenticated peer that
    /// moved; in the clear it is the address given at start.
    pub fn peer_addr(&self) -> SocketAddr {
        self.secure
            .as_ref()
            .and_then(|s| s.peer_addr())
            .unwrap_or_else(|| self.session.peer_addr())
    }

    /// Protocol packets waiting for the first encrypted session.
    pub fn held(&self) -> usize {
        self.held.len()
    }

    /// Protocol packets the encryption layer refused to seal (never expected).
    pub fn unsealable(&self) -> u64 {
        self.unsealable
    }

    fn advance(&mut self, now: Instant) {
        self.now = self.now.max(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use udpchat_secure::{derive_psk_with, KdfParams, Psk};

    const A: u64 = 0xA;
    const B: u64 = 0xB;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    fn psk(passphrase: &str) -> Psk {
        derive_psk_with(passphrase.as_bytes(), None, KdfParams::INSECURE_TEST_ONLY).unwrap()
    }

    fn encrypted(psk: Option<Psk>, seed: u8) -> Security {
        Security::Encrypted {
            config: SecureConfig {
                psk,
                ..SecureConfig::default()
            },
            unix_time: Duration::from_secs(1_800_000_000),
            rng_seed: [seed; 32],
        }
    }

    fn pair(sa: Security, sb: Security, now: Instant) -> (Stack, Stack) {
        (
            Stack::new(Config::default(), sa, A, addr(2), now),
            Stack::new(Config::default(), sb, B, addr(1), now),
        )
    }

    /// Moves datagrams both ways until both are quiet; returns the rejections.
    fn exchange(a: &mut Stack, b: &mut Stack, now: Instant) -> Vec<Reject> {
        let mut rejects = Vec::new();
        loop {
            let mut moved = false;
            while let Some(t) = a.poll_transmit() {
                if let Err(r) = b.handle_datagram(now, addr(1), &t.payload) {
                    rejects.push(r);
                }
                moved = true;
            }
            while let Some(t) = b.poll_transmit() {
                if let Err(r) = a.handle_datagram(now, addr(2), &t.payload) {
                    rejects.push(r);
                }
                moved = true;
            }
            if !moved {
                return rejects;
            }
        }
    }

    fn events(s: &mut Stack) -> Vec<StackEvent> {
        std::iter::from_fn(|| s.poll_event()).collect()
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
        let t0 = Instant::now();
        let key = psk("correct horse");
        let (mut a, mut b) = pair(encrypted(Some(key.clone()), 1), encrypted(Some(key), 2), t0);
        a.session_mut().send(t0, "hello".into()).unwrap();
        let rejects = exchange(&mut a, &mut b, t0);
        // Both sides initiate at start: one initiation loses the tie-break.
        assert!(
            rejects.iter().all(|r| *r == Reject::Collision),
            "{rejects:?}"
        );
        let eb = events(&mut b);
        assert!(matches!(
            eb.first(),
            Some(StackEvent::Secure(SecureEvent::Established {
                passphrase: true,
                ..
            }))
        ));
        assert_eq!(received(&eb), ["hello"]);
        assert!(a.session().is_idle());
        assert_eq!(a.session().stats().retransmissions, 0);
        assert_eq!(a.held(), 0);
        assert_eq!(
            a.session().max_text_len(),
            udpchat_proto::wire::MAX_TEXT_LEN - 29
        );
    }

    #[test]
    fn without_passphrase_both_see_the_same_code() {
        let t0 = Instant::now();
        let (mut a, mut b) = pair(encrypted(None, 1), encrypted(None, 2), t0);
        exchange(&mut a, &mut b, t0);
        let sas = |evs: Vec<StackEvent>| {
            evs.into_iter().find_map(|e| match e {
                StackEvent::Secure(SecureEvent::Established {
                    sas, passphrase, ..
                }) => {
                    assert!(!passphrase);
                    Some(sas)
                }
                _ => None,
            })
        };
        let (sa, sb) = (sas(events(&mut a)), sas(events(&mut b)));
        assert!(sa.is_some());
        assert_eq!(sa, sb);
    }

    #[test]
    fn wrong_passphrase_delivers_nothing_and_is_never_answered() {
        let t0 = Instant::now();
        let (mut a, mut b) = pair(
            encrypted(Some(psk("one")), 1),
            encrypted(Some(psk("two")), 2),
            t0,
        );
        a.session_mut().send(t0, "secret".into()).unwrap();
        let initiation = a.poll_transmit().unwrap();
        assert_eq!(
            b.handle_datagram(t0, addr(1), &initiation.payload),
            Err(Reject::BadMac)
        );
        // b's own initiation is all it sends: nothing in answer.
        let from_b: Vec<_> = std::iter::from_fn(|| b.poll_transmit()).collect();
        assert_eq!(from_b.len(), 1);
        assert_eq!(from_b[0].payload[0], udpchat_secure::wire::TYPE_INITIATION);
        assert!(received(&events(&mut b)).is_empty());
        assert!(b.secure().unwrap().state_size().pending == 0);
    }

    #[test]
    fn plaintext_and_encrypted_peers_do_not_understand_each_other() {
        let t0 = Instant::now();
        let (mut a, mut b) = pair(Security::Plaintext, encrypted(None, 2), t0);
        a.session_mut().send(t0, "clear".into()).unwrap();
        let rejects = exchange(&mut a, &mut b, t0);
        assert!(rejects.contains(&Reject::NotSecure { first_byte: 0x55 }));
        assert!(received(&events(&mut b)).is_empty());
        let ea = events(&mut a);
        assert!(ea
            .iter()
            .any(|e| matches!(e, StackEvent::Session(Event::Rejected { .. }))));
    }

    #[test]
    fn plaintext_is_the_protocol_session_unchanged() {
        let t0 = Instant::now();
        let (mut a, mut b) = pair(Security::Plaintext, Security::Plaintext, t0);
        a.session_mut().send(t0, "hi".into()).unwrap();
        exchange(&mut a, &mut b, t0);
        assert_eq!(received(&events(&mut b)), ["hi"]);
        assert!(!a.is_encrypted() && a.secure().is_none());
        assert_eq!(
            a.session().max_text_len(),
            udpchat_proto::wire::MAX_TEXT_LEN
        );
    }

    #[test]
    fn the_class_of_a_sealed_packet_is_its_inner_packet_s() {
        let t0 = Instant::now();
        let (mut a, mut b) = pair(encrypted(None, 1), encrypted(None, 2), t0);
        exchange(&mut a, &mut b, t0);
        a.session_mut().send(t0, "hi".into()).unwrap();
        let (data, class) = a.poll_transmit_classified().unwrap();
        assert!(
            matches!(class, Classification::Data { seq: 0 }),
            "{class:?}"
        );
        assert_eq!(data.payload[0], udpchat_secure::wire::TYPE_TRANSPORT);
        b.handle_datagram(t0, addr(1), &data.payload).unwrap();
        let (_, class) = b.poll_transmit_classified().unwrap();
        assert!(
            matches!(class, Classification::Ack { cumulative: 1 }),
            "{class:?}"
        );
        let mut fresh = Stack::new(Config::default(), encrypted(None, 3), A, addr(2), t0);
        let (_, class) = fresh.poll_transmit_classified().unwrap();
        assert_eq!(class, Classification::Control, "the handshake");
    }

    #[test]
    fn held_packets_are_bounded_while_the_peer_is_silent() {
        let t0 = Instant::now();
        let mut a = Stack::new(Config::default(), encrypted(None, 1), A, addr(2), t0);
        let mut now = t0;
        for i in 0..300 {
            a.session_mut().send(now, format!("m{i}")).unwrap();
            while a.poll_transmit().is_some() {}
            now += Duration::from_millis(500);
            a.handle_timeout(now);
        }
        assert!(a.held() <= MAX_HELD);
    }
}
