//! A two-endpoint, in-memory, virtual-time network for the scenario tests.
//!
//! Datagrams go into a queue with a delivery time (`latency` after they were sent) and
//! are delivered by address in time order; every delivery is recorded (receiver, sender
//! address, bytes, whether it was accepted), so the adversarial tests can replay, flip,
//! truncate and reflect exactly what went over the wire.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::{
    derive_psk_with, Identity, InviteCode, KdfParams, Plaintext, Psk, PublicKey, Reject, SealError,
    SecureConfig, SecureEndpoint, SecureEvent, Transmit, Trust,
};

/// Which endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Side {
    A,
    B,
}

/// How the two endpoints know each other.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Each has the other's key pinned (a later session after a first contact).
    Pinned,
    /// First contact by the same invitation code; both know the other's address.
    Code,
    /// First contact by a shared passphrase.
    Passphrase,
    /// Strangers: no pin, no code, no passphrase.
    Strangers,
}

/// One delivered datagram.
#[derive(Clone, Debug)]
pub(crate) struct Record {
    pub to: Side,
    pub from: SocketAddr,
    pub bytes: Vec<u8>,
    pub accepted: bool,
}

pub(crate) struct Peer {
    pub ep: SecureEndpoint,
    pub addr: SocketAddr,
    /// Inner packets delivered, in order.
    pub received: Vec<Vec<u8>>,
    pub events: Vec<SecureEvent>,
    pub rejects: Vec<Reject>,
}

impl Peer {
    pub(crate) fn count(&self, pred: impl Fn(&SecureEvent) -> bool) -> usize {
        self.events.iter().filter(|e| pred(e)).count()
    }
    pub(crate) fn established(&self) -> usize {
        self.count(|e| matches!(e, SecureEvent::Established { .. }))
    }
    pub(crate) fn rekeyed(&self) -> usize {
        self.count(|e| matches!(e, SecureEvent::Rekeyed { .. }))
    }
    pub(crate) fn refused(&self) -> Vec<&SecureEvent> {
        self.events
            .iter()
            .filter(|e| {
                matches!(
                    e,
                    SecureEvent::Refused { .. } | SecureEvent::RefusedByPeer { .. }
                )
            })
            .collect()
    }
}

pub(crate) fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([192, 0, 2, 1], port))
}

/// A cheap passphrase key for tests (Argon2 with minimal cost).
pub(crate) fn test_psk(passphrase: &str) -> Psk {
    derive_psk_with(passphrase.as_bytes(), None, KdfParams::INSECURE_TEST_ONLY).unwrap()
}

/// Alice's and Bob's identities for a given seed.
pub(crate) fn identities(seed: u8) -> (Identity, Identity) {
    (
        Identity::from_private([seed ^ 0xA1; 32]),
        Identity::from_private([seed ^ 0xB2; 32]),
    )
}

pub(crate) fn code() -> InviteCode {
    InviteCode::parse("7-ribbon-tunnel").unwrap()
}

pub(crate) fn pinned(key: PublicKey) -> Trust {
    Trust {
        pinned: [key].into_iter().collect(),
        expected: Some(key),
    }
}

/// The configuration of one side in a mode.
pub(crate) fn config(
    mode: Mode,
    me: &Identity,
    other: &Identity,
    peer: Option<SocketAddr>,
) -> SecureConfig {
    let mut c = SecureConfig::new(me.clone());
    c.peer = peer;
    match mode {
        Mode::Pinned => c.trust = pinned(other.public()),
        Mode::Code => c.code = Some(code()),
        Mode::Passphrase => c.psk = Some(test_psk("hunter2 hunter2")),
        Mode::Strangers => {}
    }
    c
}

pub(crate) struct Net {
    pub a: Peer,
    pub b: Peer,
    pub t0: Instant,
    pub now: Instant,
    /// One-way delay of every datagram.
    pub latency: Duration,
    /// (delivery time, destination address, source address, bytes) not yet delivered.
    pub queue: VecDeque<(Instant, SocketAddr, SocketAddr, Vec<u8>)>,
    pub log: Vec<Record>,
    /// Drops a datagram before delivery when it returns true.
    pub drop: Option<DropFn>,
    /// Runs just before each delivery, with the receiving endpoint in exactly the state
    /// that will handle the datagram (the adversarial tests inject mutations here).
    pub pre_deliver: Option<PreDeliver>,
}

/// See [`Net::drop`]: (destination, bytes).
pub(crate) type DropFn = Box<dyn FnMut(&SocketAddr, &[u8]) -> bool>;

/// See [`Net::pre_deliver`].
pub(crate) type PreDeliver = Box<dyn FnMut(&mut SecureEndpoint, Instant, SocketAddr, &[u8])>;

impl Net {
    /// A and B, each configured with the other's address, in `mode`.
    pub(crate) fn new(mode: Mode, seed: u8) -> Self {
        let (ia, ib) = identities(seed);
        let (aa, ba) = (addr(1001), addr(1002));
        let t0 = Instant::now();
        let a = SecureEndpoint::new(config(mode, &ia, &ib, Some(ba)), 0xA0A0, t0, [seed; 32]);
        let b = SecureEndpoint::new(
            config(mode, &ib, &ia, Some(aa)),
            0xB0B0,
            t0,
            [seed.wrapping_add(100); 32],
        );
        Self::with(a, b, aa, ba, t0)
    }

    pub(crate) fn with(
        a: SecureEndpoint,
        b: SecureEndpoint,
        aa: SocketAddr,
        ba: SocketAddr,
        t0: Instant,
    ) -> Self {
        let peer = |ep, addr| Peer {
            ep,
            addr,
            received: vec![],
            events: vec![],
            rejects: vec![],
        };
        Self {
            a: peer(a, aa),
            b: peer(b, ba),
            t0,
            now: t0,
            latency: Duration::ZERO,
            queue: VecDeque::new(),
            log: vec![],
            drop: None,
            pre_deliver: None,
        }
    }

    pub(crate) fn peer(&mut self, side: Side) -> &mut Peer {
        match side {
            Side::A => &mut self.a,
            Side::B => &mut self.b,
        }
    }

    fn side_of(&self, addr: SocketAddr) -> Option<Side> {
        if addr == self.a.addr {
            Some(Side::A)
        } else if addr == self.b.addr {
            Some(Side::B)
        } else {
            None
        }
    }

    /// Moves what an endpoint wants to send into the network, and its events into the log.
    pub(crate) fn drain(&mut self, side: Side) {
        let at = self.now + self.latency;
        let p = self.peer(side);
        let from = p.addr;
        let mut out = vec![];
        while let Some(t) = p.ep.poll_transmit() {
            out.push(t);
        }
        while let Some(e) = p.ep.poll_event() {
            p.events.push(e);
        }
        for Transmit {
            destination,
            payload,
        } in out
        {
            self.queue.push_back((at, destination, from, payload));
        }
    }

    /// Delivers everything due by now (and everything that causes), in time order.
    pub(crate) fn pump(&mut self) {
        self.drain(Side::A);
        self.drain(Side::B);
        let mut steps = 0;
        while let Some(i) = self.next_due() {
            steps += 1;
            assert!(steps < 100_000, "network never quiesces");
            let Some((_, to, from, bytes)) = self.queue.remove(i) else {
                break;
            };
            if let Some(drop) = self.drop.as_mut() {
                if drop(&to, &bytes) {
                    continue;
                }
            }
            let Some(side) = self.side_of(to) else {
                continue;
            };
            self.deliver(side, from, bytes);
        }
    }

    /// The index of the earliest datagram due by now.
    fn next_due(&self) -> Option<usize> {
        self.queue
            .iter()
            .enumerate()
            .filter(|(_, (at, ..))| *at <= self.now)
            .min_by_key(|(i, (at, ..))| (*at, *i))
            .map(|(i, _)| i)
    }

    /// Hands one datagram to an endpoint, records it, and drains the endpoint.
    pub(crate) fn deliver(&mut self, side: Side, from: SocketAddr, bytes: Vec<u8>) {
        let now = self.now;
        let mut hook = self.pre_deliver.take();
        let p = self.peer(side);
        if let Some(h) = hook.as_mut() {
            h(&mut p.ep, now, from, &bytes);
        }
        self.pre_deliver = hook;
        let p = self.peer(side);
        let result = p.ep.handle_datagram(now, from, &bytes);
        let accepted = result.is_ok();
        match result {
            Ok(Some(Plaintext { bytes: inner, .. })) => p.received.push(inner),
            Ok(None) => {}
            Err(r) => p.rejects.push(r),
        }
        self.log.push(Record {
            to: side,
            from,
            bytes,
            accepted,
        });
        self.drain(side);
    }

    /// Seals an inner packet on `side` and puts it in flight.
    pub(crate) fn send(&mut self, side: Side, inner: &[u8]) -> Result<(), SealError> {
        let now = self.now;
        let at = now + self.latency;
        let p = self.peer(side);
        let from = p.addr;
        let t = p.ep.seal(now, inner)?;
        self.queue.push_back((at, t.destination, from, t.payload));
        self.drain(side);
        Ok(())
    }

    /// Advances virtual time to `now + d`, firing every timer and delivering every
    /// datagram on the way, in time order.
    pub(crate) fn advance(&mut self, d: Duration) {
        let target = self.now + d;
        let mut fired = 0;
        loop {
            self.pump();
            let timer = [self.a.ep.poll_timeout(), self.b.ep.poll_timeout()]
                .into_iter()
                .flatten()
                .min();
            let arrival = self.queue.iter().map(|(at, ..)| *at).min();
            let next = [timer, arrival].into_iter().flatten().min();
            match next {
                Some(t) if t <= target => {
                    fired += 1;
                    assert!(fired < 1_000_000, "timers never settle");
                    self.now = self.now.max(t);
                    let now = self.now;
                    self.a.ep.handle_timeout(now);
                    self.b.ep.handle_timeout(now);
                    self.drain(Side::A);
                    self.drain(Side::B);
                }
                _ => break,
            }
        }
        self.now = target;
        self.pump();
    }

    /// Advances until `done` holds (checked after every step) or `limit` passes; returns
    /// the virtual time it took.
    pub(crate) fn run_until(
        &mut self,
        limit: Duration,
        done: impl Fn(&Self) -> bool,
    ) -> Option<Duration> {
        let start = self.now;
        let step = Duration::from_millis(1);
        while self.now < start + limit {
            if done(self) {
                return Some(self.now - start);
            }
            self.advance(step);
        }
        done(self).then(|| self.now - start)
    }

    /// A connects; everything is delivered.
    pub(crate) fn connect(&mut self) {
        let now = self.now;
        self.a.ep.connect(now);
        self.pump();
    }

    /// Both connect at the same instant.
    pub(crate) fn connect_both(&mut self) {
        let now = self.now;
        self.a.ep.connect(now);
        self.b.ep.connect(now);
        self.pump();
    }

    /// Sends `n` numbered messages each way, delivering as it goes.
    pub(crate) fn chat(&mut self, n: usize, tag: &str) {
        self.try_chat(n, tag).unwrap();
    }

    /// [`chat`](Self::chat), returning the first sealing error.
    pub(crate) fn try_chat(&mut self, n: usize, tag: &str) -> Result<(), SealError> {
        let latency = self.latency;
        for i in 0..n {
            self.send(Side::A, format!("{tag} a{i}").as_bytes())?;
            self.advance(latency);
            self.send(Side::B, format!("{tag} b{i}").as_bytes())?;
            self.advance(latency);
        }
        Ok(())
    }
}

/// What one injected datagram caused: its result, and everything the endpoint queued.
pub(crate) struct Outcome {
    pub result: Result<Option<Plaintext>, Reject>,
    pub sent_bytes: usize,
    pub events: Vec<SecureEvent>,
}

/// Feeds one datagram to an endpoint and collects (without delivering) what it queued.
pub(crate) fn inject(
    ep: &mut SecureEndpoint,
    now: Instant,
    from: SocketAddr,
    bytes: &[u8],
) -> Outcome {
    let result = ep.handle_datagram(now, from, bytes);
    let mut sent_bytes = 0;
    while let Some(t) = ep.poll_transmit() {
        sent_bytes += t.payload.len();
    }
    let events = std::iter::from_fn(|| ep.poll_event()).collect();
    Outcome {
        result,
        sent_bytes,
        events,
    }
}

/// Checks that an injected datagram was rejected without any effect; describes the
/// violation otherwise.
pub(crate) fn expect_nothing(what: &str, o: &Outcome) -> Result<(), String> {
    if o.result.is_ok() {
        return Err(format!("{what}: accepted ({:?})", o.result));
    }
    if o.sent_bytes != 0 {
        return Err(format!("{what}: {} bytes sent in answer", o.sent_bytes));
    }
    if !o.events.is_empty() {
        return Err(format!("{what}: events {:?}", o.events));
    }
    Ok(())
}
