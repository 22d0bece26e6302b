//! The secure endpoint: handshakes, sessions, rekeying, restarts, and what it does (and
//! refuses to do) with every datagram.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;
use snow::HandshakeState;

use crate::config::SecureConfig;
use crate::error::{Reject, SealError};
use crate::event::{Plaintext, SecureEvent, Transmit};
use crate::key::Psk;
use crate::noise;
use crate::ratelimit::RateLimiter;
use crate::sas::short_authentication_string;
use crate::session::{Mutation, Session, SessionParams};
use crate::stats::{SecureStats, StateSize};
use crate::wire::{
    be_u32, InitPayload, ResponsePayload, Timestamp, TransportHeader, DH_LEN, INITIATION_NN_LEN,
    INITIATION_PSK_LEN, INIT_PAYLOAD_LEN, MAX_DATAGRAM, MAX_INNER, REKEY_INITIATION_LEN,
    RESPONSE_LEN, TYPE_INITIATION, TYPE_REKEY_INITIATION, TYPE_RESPONSE, TYPE_TRANSPORT,
};

/// Responder sessions kept while waiting for the initiator's first packet.
pub const MAX_PENDING: usize = 4;
/// First retry of an unanswered initiation; doubles up to [`RETRY_MAX`].
pub const RETRY_BASE: Duration = Duration::from_secs(1);
/// Longest interval between two initiations.
pub const RETRY_MAX: Duration = Duration::from_secs(8);
/// The responder of the current session starts a rekey this much later than its
/// initiator would, so the two rarely initiate at once.
pub const RESPONDER_REKEY_DELAY: Duration = Duration::from_secs(10);
/// Confirming keepalives re-sent by an initiator that has heard nothing under the new
/// session (1, 3 and 7 s after the response).
pub const CONFIRM_RETRIES: u32 = 3;

/// Our handshake initiation in flight.
struct Initiation {
    hs: HandshakeState,
    local_index: u32,
    /// Our ephemeral public key: breaks the tie when initiations cross.
    ephemeral: [u8; DH_LEN],
    /// Keyed by the current session rather than the passphrase (`NN` mode rekey).
    chained: bool,
    attempt: u32,
    retry_at: Instant,
}

/// Keepalives re-sent until the responder is heard under the new session.
struct Confirm {
    local_index: u32,
    attempts: u32,
    at: Instant,
}

/// Where a transport packet's receiver index points.
#[derive(Clone, Copy)]
enum Slot {
    Current,
    Previous,
    Pending(usize),
}

/// One end of an encrypted, authenticated session with one peer. Sans-IO: see the crate
/// documentation for the calling contract.
pub struct SecureEndpoint {
    psk: Option<Psk>,
    config: SecureConfig,
    local_epoch: u64,
    start: Instant,
    start_unix: Duration,
    /// Latest `now` seen; time never goes backwards inside the endpoint.
    now: Instant,
    rng: ChaCha20Rng,
    peer: Option<SocketAddr>,
    peer_epoch: Option<u64>,
    /// Whether the endpoint should keep a session up (set by `connect`, by `seal` and by
    /// the first session).
    active: bool,
    initiation: Option<Initiation>,
    current: Option<Session>,
    previous: Option<Session>,
    pending: VecDeque<Session>,
    /// Timestamp of the newest initiation whose session was confirmed.
    last_peer_timestamp: Option<Timestamp>,
    last_sent_timestamp: Option<Timestamp>,
    /// Start an initiation at this instant (after a failed one).
    handshake_at: Option<Instant>,
    confirm: Option<Confirm>,
    limiter: RateLimiter,
    transmits: VecDeque<Transmit>,
    events: VecDeque<SecureEvent>,
    stats: SecureStats,
    /// Always [`Mutation::None`] outside this crate's tests, which set it to prove they
    /// catch a broken endpoint. No public API can change it.
    pub(crate) mutation: Mutation,
}

impl std::fmt::Debug for SecureEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecureEndpoint")
            .field("local_epoch", &self.local_epoch)
            .field("peer", &self.peer)
            .field("peer_epoch", &self.peer_epoch)
            .field("state", &self.state_size())
            .finish_non_exhaustive()
    }
}

impl SecureEndpoint {
    /// A new endpoint for one process run.
    ///
    /// - `local_epoch`: this run's epoch, random and non-zero (the same one the plaintext
    ///   protocol uses); a peer refuses a handshake carrying epoch 0.
    /// - `now`, `unix_time`: the monotonic clock and the wall clock (time since the Unix
    ///   epoch) at the same moment; handshake timestamps are derived from both.
    /// - `rng_seed`: 32 bytes from the operating system's CSPRNG. Every ephemeral key and
    ///   index is drawn from a ChaCha20 stream seeded with it. Never reuse a seed.
    #[must_use]
    pub fn new(
        mut config: SecureConfig,
        local_epoch: u64,
        now: Instant,
        unix_time: Duration,
        rng_seed: [u8; 32],
    ) -> Self {
        let psk = config.psk.take();
        let limiter = RateLimiter::new(config.handshake_rate_per_source, config.handshake_burst);
        Self {
            psk,
            peer: config.peer,
            config,
            local_epoch,
            start: now,
            start_unix: unix_time,
            now,
            rng: ChaCha20Rng::from_seed(rng_seed),
            peer_epoch: None,
            active: false,
            initiation: None,
            current: None,
            previous: None,
            pending: VecDeque::new(),
            last_peer_timestamp: None,
            last_sent_timestamp: None,
            handshake_at: None,
            confirm: None,
            limiter,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            stats: SecureStats::default(),
            mutation: Mutation::None,
        }
    }

    /// Starts a handshake with the configured peer, unless a session or a handshake
    /// already exists. Does nothing without a peer address (the endpoint then waits to be
    /// contacted). From then on the endpoint keeps a session up: it retries with backoff
    /// and rekeys on time.
    pub fn connect(&mut self, now: Instant) {
        let now = self.advance(now);
        self.active = true;
        if self.initiation.is_none() && !self.usable(now) {
            self.start_initiation(now, 0);
        }
    }

    /// Handles one received datagram (of any size: pass oversize ones too, so they are
    /// counted). Returns the decrypted inner packet for the protocol layer, `Ok(None)`
    /// for a handshake message or keepalive, or why it was rejected. A rejected datagram
    /// changes nothing but a counter and is never answered.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        from: SocketAddr,
        bytes: &[u8],
    ) -> Result<Option<Plaintext>, Reject> {
        let now = self.advance(now);
        let queued = self.transmits.len();
        let result = self.dispatch(now, from, bytes);
        if let Err(reject) = &result {
            self.stats.count(reject);
            if *reject == Reject::Internal {
                self.stats.internal_errors += 1;
            }
            let extra: usize = self
                .transmits
                .iter()
                .skip(queued)
                .map(|t| t.payload.len())
                .sum();
            self.stats.bytes_sent_after_reject += extra as u64;
        }
        result
    }

    /// Encrypts one inner packet for the current session; send the result to its `to`.
    ///
    /// # Errors
    /// [`SealError::NotEstablished`] if there is no usable session (a handshake is then
    /// under way; queue the packet), [`SealError::TooLarge`] above
    /// [`MAX_INNER`](crate::wire::MAX_INNER) bytes.
    pub fn seal(&mut self, now: Instant, inner: &[u8]) -> Result<Transmit, SealError> {
        let now = self.advance(now);
        if inner.len() > MAX_INNER {
            return Err(SealError::TooLarge { len: inner.len() });
        }
        let (Some(to), true) = (self.peer, self.usable(now)) else {
            self.active = true;
            if self.initiation.is_none() && self.handshake_at.is_none() {
                self.start_initiation(now, 0);
            }
            return Err(SealError::NotEstablished);
        };
        let result = match self.current.as_mut() {
            Some(session) => session.seal(inner),
            None => Err(SealError::NotEstablished),
        };
        match result {
            Ok(payload) => {
                self.stats.transport_sent += 1;
                self.maybe_rekey(now);
                Ok(Transmit { to, payload })
            }
            Err(e) => {
                if e == SealError::Internal {
                    self.stats.internal_errors += 1;
                }
                self.maybe_rekey(now);
                Err(e)
            }
        }
    }

    /// The next datagram to send (handshake messages and keepalives; `seal` returns
    /// transport packets directly).
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<SecureEvent> {
        self.events.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) should next be called; `None`: no
    /// timer is armed.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        let reject_after = self.config.reject_after;
        let mut next: Option<Instant> = None;
        let mut consider = |t: Instant| next = Some(next.map_or(t, |n| n.min(t)));
        if let Some(init) = &self.initiation {
            consider(init.retry_at);
        } else if let Some(at) = self.handshake_at {
            consider(at);
        } else if let Some(s) = &self.current {
            consider(self.rekey_at(s));
        }
        for s in self
            .current
            .iter()
            .chain(self.previous.iter())
            .chain(self.pending.iter())
        {
            consider(s.created + reject_after);
        }
        if let Some(c) = &self.confirm {
            consider(c.at);
        }
        next
    }

    /// Runs the timers due at `now`: handshake retries, rekeys, session expiry and
    /// confirming keepalives. Calling it early is harmless.
    pub fn handle_timeout(&mut self, now: Instant) {
        let now = self.advance(now);
        let reject_after = self.config.reject_after;
        let expired = |s: &Session| now.saturating_duration_since(s.created) >= reject_after;
        if self.current.as_ref().is_some_and(expired) {
            self.current = None;
        }
        if self.previous.as_ref().is_some_and(expired) {
            self.previous = None;
        }
        self.pending.retain(|s| !expired(s));

        if let Some(attempt) = self
            .initiation
            .as_ref()
            .filter(|i| now >= i.retry_at)
            .map(|i| i.attempt + 1)
        {
            self.initiation = None;
            self.start_initiation(now, attempt);
        }
        if self.initiation.is_none() && self.handshake_at.is_some_and(|at| now >= at) {
            self.start_initiation(now, 0);
        }
        self.maybe_rekey(now);
        if self.active
            && self.current.is_none()
            && self.initiation.is_none()
            && self.handshake_at.is_none()
        {
            self.start_initiation(now, 0);
        }

        if let Some(c) = self.confirm.as_mut().filter(|c| now >= c.at) {
            let unheard = self
                .current
                .as_ref()
                .is_some_and(|s| s.local_index == c.local_index && !s.received_any);
            if unheard && c.attempts < CONFIRM_RETRIES {
                c.attempts += 1;
                c.at = now + RETRY_BASE * (1 << c.attempts);
                self.send_keepalive();
            } else {
                self.confirm = None;
            }
        }
    }

    /// The peer's address, once known.
    #[must_use]
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        self.peer
    }

    /// The peer's epoch, from the last authenticated handshake.
    #[must_use]
    pub fn peer_epoch(&self) -> Option<u64> {
        self.peer_epoch
    }

    /// This run's epoch.
    #[must_use]
    pub fn local_epoch(&self) -> u64 {
        self.local_epoch
    }

    /// Whether [`seal`](Self::seal) would currently succeed.
    #[must_use]
    pub fn is_established(&self) -> bool {
        self.usable(self.now)
    }

    /// The handshake hash of the current session.
    #[must_use]
    pub fn handshake_hash(&self) -> Option<[u8; 32]> {
        self.current.as_ref().map(|s| s.handshake_hash)
    }

    /// Counters since start.
    #[must_use]
    pub fn stats(&self) -> &SecureStats {
        &self.stats
    }

    /// How much state the endpoint holds.
    #[must_use]
    pub fn state_size(&self) -> StateSize {
        StateSize {
            sessions: usize::from(self.current.is_some()) + usize::from(self.previous.is_some()),
            pending: self.pending.len(),
            initiating: self.initiation.is_some(),
            rate_limiter_entries: self.limiter.len(),
            queued_transmits: self.transmits.len(),
            queued_events: self.events.len(),
        }
    }

    // ---- datagrams ----

    fn dispatch(
        &mut self,
        now: Instant,
        from: SocketAddr,
        bytes: &[u8],
    ) -> Result<Option<Plaintext>, Reject> {
        if bytes.len() > MAX_DATAGRAM {
            return Err(Reject::TooLarge { len: bytes.len() });
        }
        let Some(&packet_type) = bytes.first() else {
            return Err(Reject::TooShort { len: 0 });
        };
        match packet_type {
            TYPE_TRANSPORT => self.on_transport(now, from, bytes),
            TYPE_INITIATION | TYPE_REKEY_INITIATION => {
                self.on_initiation(now, from, bytes).map(|()| None)
            }
            TYPE_RESPONSE => self.on_response(now, from, bytes).map(|()| None),
            first_byte => Err(Reject::NotSecure { first_byte }),
        }
    }

    /// A handshake initiation. Everything up to the rate limiter only reads, except that
    /// an authenticated initiation raises the replay mark: a datagram that did not
    /// authenticate leaves the endpoint exactly as it was.
    fn on_initiation(
        &mut self,
        now: Instant,
        from: SocketAddr,
        bytes: &[u8],
    ) -> Result<(), Reject> {
        let packet_type = bytes[0];
        let chained = packet_type == TYPE_REKEY_INITIATION;
        let expected = match (chained, self.psk.is_some()) {
            (true, true) => return Err(Reject::UnexpectedType),
            (true, false) => REKEY_INITIATION_LEN,
            (false, true) => INITIATION_PSK_LEN,
            (false, false) => INITIATION_NN_LEN,
        };
        if bytes.len() != expected {
            return Err(Reject::BadLength { len: bytes.len() });
        }
        // Without a passphrase nothing authenticates a first initiation: at least insist
        // it comes from the peer we were told about, so an off-path host cannot start a
        // session with us from elsewhere.
        if !chained && self.psk.is_none() && self.peer.is_some_and(|p| p != from) {
            return Err(Reject::UnknownSource);
        }
        let (key, message) = if chained {
            let index = be_u32(&bytes[1..5]);
            let chain = self
                .established(index, now)
                .and_then(|s| s.chain.clone())
                .ok_or(Reject::UnknownIndex)?;
            (Some(chain), &bytes[5..])
        } else {
            (self.psk.clone(), &bytes[1..])
        };

        // Authenticate and read. Reading the first message draws no randomness, so the
        // seed here is never used and the endpoint's generator is left alone.
        let mut payload = [0u8; INIT_PAYLOAD_LEN];
        let mut probe = noise::build(false, key.as_ref(), packet_type, [0; 32])
            .map_err(|_| Reject::Internal)?;
        let n = probe
            .read_message(message, &mut payload)
            .map_err(|_| Reject::BadMac)?;
        let init = InitPayload::decode(&payload[..n])?;
        if init.epoch == self.local_epoch {
            return Err(Reject::Reflected);
        }
        let floor =
            Timestamp::from_unix(self.start_unix.saturating_sub(self.config.max_clock_skew));
        if init.timestamp < floor
            || self
                .last_peer_timestamp
                .is_some_and(|t| init.timestamp <= t)
        {
            return Err(Reject::StaleHandshake);
        }
        // An initiation keyed by the passphrase or by the previous session can only come
        // from the peer: from now on nothing older than it is fresh, whatever becomes of
        // it (answered, lost in a simultaneous open, rate-limited), as in WireGuard. A
        // recorded one replayed later, from any address, is then stale and never
        // answered. A first initiation without a passphrase authenticates nothing, so
        // there only a confirmed session moves the mark (or a forgery could block the
        // real peer).
        if key.is_some() {
            let ts = init.timestamp;
            self.last_peer_timestamp = Some(self.last_peer_timestamp.map_or(ts, |t| t.max(ts)));
        }
        if self
            .pending
            .iter()
            .any(|s| s.init_timestamp == init.timestamp && s.peer_epoch == init.epoch)
        {
            return Err(Reject::Replay);
        }
        let their_ephemeral = &message[..DH_LEN];
        if let Some(ours) = &self.initiation {
            if ours.ephemeral[..] == their_ephemeral[..] {
                return Err(Reject::Reflected);
            }
            // Both sides initiated. The lower ephemeral key keeps the initiator role; but
            // a fresh initiation always beats our passphrase-less rekey, which a restarted
            // peer could never answer.
            let theirs_preempts = ours.chained && !chained;
            if !theirs_preempts && ours.ephemeral[..] < their_ephemeral[..] {
                return Err(Reject::Collision);
            }
        }
        if !self.limiter.allow(from.ip(), now) {
            return Err(Reject::RateLimited);
        }

        // Accepted: answer it.
        if self.initiation.take().is_some() {
            self.stats.initiations_abandoned += 1;
        }
        let seed = noise::seed(&mut self.rng);
        let mut hs =
            noise::build(false, key.as_ref(), packet_type, seed).map_err(|_| Reject::Internal)?;
        hs.read_message(message, &mut payload)
            .map_err(|_| Reject::Internal)?;
        let local_index = self.fresh_index();
        let response = ResponsePayload {
            sender_index: local_index,
            epoch: self.local_epoch,
        };
        let mut out = vec![0u8; RESPONSE_LEN];
        out[0] = TYPE_RESPONSE;
        out[1..5].copy_from_slice(&init.sender_index.to_be_bytes());
        let n = hs
            .write_message(&response.encode(), &mut out[5..])
            .map_err(|_| Reject::Internal)?;
        if 5 + n != RESPONSE_LEN {
            return Err(Reject::Internal);
        }
        let session = self.finish(
            hs,
            SessionParams {
                local_index,
                remote_index: init.sender_index,
                created: now,
                initiator: false,
                peer_epoch: init.epoch,
                handshake_hash: [0; 32],
                chain: None,
                init_timestamp: init.timestamp,
                chained,
            },
        )?;
        if self.pending.len() >= MAX_PENDING {
            self.pending.pop_front();
        }
        self.pending.push_back(session);
        self.transmits.push_back(Transmit {
            to: from,
            payload: out,
        });
        self.stats.handshake_responses_sent += 1;
        Ok(())
    }

    /// A handshake response to our initiation in flight.
    fn on_response(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) -> Result<(), Reject> {
        if bytes.len() != RESPONSE_LEN {
            return Err(Reject::BadLength { len: bytes.len() });
        }
        let index = be_u32(&bytes[1..5]);
        let Some(init) = self.initiation.as_mut().filter(|i| i.local_index == index) else {
            return Err(Reject::UnknownIndex);
        };
        let mut payload = [0u8; RESPONSE_LEN];
        // snow restores the handshake state when a message fails to authenticate, so a
        // forged response leaves our initiation able to read the real one.
        let n = init
            .hs
            .read_message(&bytes[5..], &mut payload)
            .map_err(|_| Reject::BadMac)?;
        // Authenticated: the handshake state is finished whatever the payload says.
        let Some(init) = self.initiation.take() else {
            return Err(Reject::Internal);
        };
        let response = match ResponsePayload::decode(&payload[..n]) {
            Ok(r) if r.epoch == self.local_epoch => Err(Reject::Reflected),
            other => other,
        };
        let response = match response {
            Ok(r) => r,
            Err(e) => {
                self.handshake_at = Some(now + RETRY_BASE);
                return Err(e);
            }
        };
        let session = self.finish(
            init.hs,
            SessionParams {
                local_index: init.local_index,
                remote_index: response.sender_index,
                created: now,
                initiator: true,
                peer_epoch: response.epoch,
                handshake_hash: [0; 32],
                chain: None,
                init_timestamp: Timestamp::default(),
                chained: init.chained,
            },
        )?;
        let local_index = session.local_index;
        self.install(from, session);
        // Tell the responder to switch: an empty packet under the new keys.
        self.send_keepalive();
        self.confirm = Some(Confirm {
            local_index,
            attempts: 0,
            at: now + RETRY_BASE,
        });
        Ok(())
    }

    /// A transport packet: find the session, check expiry and replay, decrypt, then act.
    fn on_transport(
        &mut self,
        now: Instant,
        from: SocketAddr,
        bytes: &[u8],
    ) -> Result<Option<Plaintext>, Reject> {
        let header = TransportHeader::parse(bytes)?;
        let mutation = self.mutation;
        let reject_after = self.config.reject_after;
        let slot = self
            .find(header.receiver_index)
            .ok_or(Reject::UnknownIndex)?;
        let session = self.slot_mut(slot).ok_or(Reject::Internal)?;
        if now.saturating_duration_since(session.created) >= reject_after {
            return Err(Reject::Expired);
        }
        let (inner, newest) = session.open(header.nonce, header.ciphertext, mutation)?;
        self.stats.transport_received += 1;
        match slot {
            Slot::Pending(i) => {
                // The initiator proved it holds the keys: the session is confirmed.
                let Some(session) = self.pending.remove(i) else {
                    return Err(Reject::Internal);
                };
                self.pending.clear();
                let ts = session.init_timestamp;
                self.last_peer_timestamp = Some(self.last_peer_timestamp.map_or(ts, |t| t.max(ts)));
                self.install(from, session);
                if inner.is_empty() {
                    // Answer the confirming keepalive so the initiator stops re-sending it.
                    self.send_keepalive();
                }
            }
            Slot::Current if newest => self.set_peer(from),
            _ => {}
        }
        if inner.is_empty() {
            return Ok(None);
        }
        Ok(Some(Plaintext { from, bytes: inner }))
    }

    // ---- handshakes ----

    /// Sends a new initiation to the peer (replacing any in flight).
    fn start_initiation(&mut self, now: Instant, attempt: u32) {
        self.handshake_at = None;
        let Some(to) = self.peer else {
            return;
        };
        let chain = match (&self.psk, self.usable_session(now)) {
            (None, Some(s)) => s.chain.clone().map(|c| (c, s.remote_index)),
            _ => None,
        };
        let packet_type = if chain.is_some() {
            TYPE_REKEY_INITIATION
        } else {
            TYPE_INITIATION
        };
        let key = chain
            .as_ref()
            .map(|(c, _)| c)
            .or(self.psk.as_ref())
            .cloned();
        let seed = noise::seed(&mut self.rng);
        let local_index = self.fresh_index();
        let timestamp = self.next_timestamp(now);
        let payload = InitPayload {
            sender_index: local_index,
            epoch: self.local_epoch,
            timestamp,
        };
        let mut msg = vec![0u8; MAX_DATAGRAM];
        msg[0] = packet_type;
        let mut pos = 1;
        if let Some((_, index)) = &chain {
            msg[1..5].copy_from_slice(&index.to_be_bytes());
            pos = 5;
        }
        let written = noise::build(true, key.as_ref(), packet_type, seed).and_then(|mut hs| {
            let n = hs.write_message(&payload.encode(), &mut msg[pos..])?;
            Ok((hs, n))
        });
        let Ok((hs, n)) = written else {
            self.stats.internal_errors += 1;
            self.handshake_at = Some(now + RETRY_BASE);
            return;
        };
        msg.truncate(pos + n);
        let mut ephemeral = [0u8; DH_LEN];
        ephemeral.copy_from_slice(&msg[pos..pos + DH_LEN]);
        let retry_at = now + self.backoff(attempt);
        self.initiation = Some(Initiation {
            hs,
            local_index,
            ephemeral,
            chained: chain.is_some(),
            attempt,
            retry_at,
        });
        self.transmits.push_back(Transmit { to, payload: msg });
        self.stats.handshakes_initiated += 1;
    }

    /// Turns a finished handshake into a session: fills in the handshake hash and, without
    /// a passphrase, the chain secret that keys the next handshake.
    fn finish(&self, mut hs: HandshakeState, mut p: SessionParams) -> Result<Session, Reject> {
        p.handshake_hash = noise::handshake_hash(&hs).ok_or(Reject::Internal)?;
        p.chain = self.psk.is_none().then(|| noise::chain_secret(&mut hs));
        let transport = hs
            .into_stateless_transport_mode()
            .map_err(|_| Reject::Internal)?;
        Ok(Session::new(transport, p))
    }

    /// Makes a session current (the old one stays as previous until it expires) and tells
    /// the application.
    fn install(&mut self, from: SocketAddr, session: Session) {
        let epoch = session.peer_epoch;
        let handshake_hash = session.handshake_hash;
        let chained = session.chained;
        if let Some(old) = self.current.take() {
            self.previous = Some(old);
        }
        self.current = Some(session);
        self.active = true;
        self.handshake_at = None;
        self.stats.handshakes_completed += 1;
        self.set_peer(from);
        let sas = short_authentication_string(&handshake_hash);
        let event = match self.peer_epoch {
            None => SecureEvent::Established {
                peer: from,
                peer_epoch: epoch,
                sas,
                handshake_hash,
                passphrase: self.psk.is_some(),
            },
            Some(old) if old != epoch => SecureEvent::PeerRestarted {
                old_epoch: old,
                new_epoch: epoch,
                sas,
                handshake_hash,
            },
            // Continuity is proven by the passphrase, or by a handshake keyed with the old
            // session's secret; otherwise this is a new, unauthenticated session.
            Some(_) if self.psk.is_some() || chained => SecureEvent::Rekeyed {
                peer_epoch: epoch,
                handshake_hash,
            },
            Some(_) => SecureEvent::Reverify {
                peer_epoch: epoch,
                sas,
                handshake_hash,
            },
        };
        self.peer_epoch = Some(epoch);
        self.events.push_back(event);
    }

    /// Starts a rekey when the current session is old enough or has sent enough.
    fn maybe_rekey(&mut self, now: Instant) {
        if self.initiation.is_some() || self.handshake_at.is_some() {
            return;
        }
        let due = self.current.as_ref().is_some_and(|s| {
            now >= self.rekey_at(s) || s.sent() >= self.config.rekey_after_messages
        });
        if due {
            self.start_initiation(now, 0);
        }
    }

    fn rekey_at(&self, s: &Session) -> Instant {
        let delay = if s.initiator {
            Duration::ZERO
        } else {
            RESPONDER_REKEY_DELAY
        };
        s.created + self.config.rekey_after + delay
    }

    /// An empty transport packet under the current session.
    fn send_keepalive(&mut self) {
        let (Some(to), Some(session)) = (self.peer, self.current.as_mut()) else {
            return;
        };
        match session.seal(&[]) {
            Ok(payload) => {
                self.stats.transport_sent += 1;
                self.stats.keepalives_sent += 1;
                self.transmits.push_back(Transmit { to, payload });
            }
            Err(_) => self.stats.internal_errors += 1,
        }
    }

    // ---- helpers ----

    fn advance(&mut self, now: Instant) -> Instant {
        if now > self.now {
            self.now = now;
        }
        self.now
    }

    fn expired(&self, s: &Session, now: Instant) -> bool {
        now.saturating_duration_since(s.created) >= self.config.reject_after
    }

    fn usable_session(&self, now: Instant) -> Option<&Session> {
        self.current.as_ref().filter(|s| !self.expired(s, now))
    }

    fn usable(&self, now: Instant) -> bool {
        self.usable_session(now).is_some()
    }

    /// A confirmed, unexpired session with this local index (current or previous).
    fn established(&self, index: u32, now: Instant) -> Option<&Session> {
        self.current
            .iter()
            .chain(self.previous.iter())
            .find(|s| s.local_index == index && !self.expired(s, now))
    }

    fn find(&self, index: u32) -> Option<Slot> {
        if self
            .current
            .as_ref()
            .is_some_and(|s| s.local_index == index)
        {
            return Some(Slot::Current);
        }
        if self
            .previous
            .as_ref()
            .is_some_and(|s| s.local_index == index)
        {
            return Some(Slot::Previous);
        }
        self.pending
            .iter()
            .position(|s| s.local_index == index)
            .map(Slot::Pending)
    }

    fn slot_mut(&mut self, slot: Slot) -> Option<&mut Session> {
        match slot {
            Slot::Current => self.current.as_mut(),
            Slot::Previous => self.previous.as_mut(),
            Slot::Pending(i) => self.pending.get_mut(i),
        }
    }

    fn set_peer(&mut self, addr: SocketAddr) {
        if self.peer != Some(addr) {
            if let Some(old) = self.peer {
                self.events
                    .push_back(SecureEvent::PeerAddressChanged { old, new: addr });
            }
            self.peer = Some(addr);
        }
    }

    /// A random non-zero index not used by any session or handshake of ours.
    fn fresh_index(&mut self) -> u32 {
        let mut index = 0;
        for _ in 0..16 {
            index = self.rng.next_u32();
            let in_use = index == 0
                || self.find(index).is_some()
                || self
                    .initiation
                    .as_ref()
                    .is_some_and(|i| i.local_index == index);
            if !in_use {
                break;
            }
        }
        index.max(1)
    }

    /// Wall-clock time at `now`, strictly after every timestamp we sent before.
    fn next_timestamp(&mut self, now: Instant) -> Timestamp {
        let unix = self.start_unix + now.saturating_duration_since(self.start);
        let mut t = Timestamp::from_unix(unix);
        if let Some(last) = self.last_sent_timestamp {
            if t <= last {
                t = Timestamp::from_unix(
                    last.to_unix()
                        .checked_add(Duration::from_nanos(1))
                        .unwrap_or(last.to_unix()),
                );
            }
        }
        self.last_sent_timestamp = Some(t);
        t
    }

    /// Delay before retrying initiation number `attempt`: 1, 2, 4, 8, 8… s, plus up to
    /// 250 ms of jitter so two sides that keep crossing stop doing so.
    fn backoff(&mut self, attempt: u32) -> Duration {
        let base = RETRY_BASE
            .saturating_mul(1 << attempt.min(3))
            .min(RETRY_MAX);
        base + Duration::from_millis(u64::from(self.rng.next_u32() % 250))
    }
}
