//! The secure endpoint: handshakes (ours and the ones we answer), sessions, rekeying,
//! restarts, trust decisions, and what it does (and refuses to do) with every datagram.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;
use snow::HandshakeState;
use zeroize::Zeroizing;

use crate::config::{SecureConfig, SessionCipher};
use crate::cookie::{
    constant_time_eq, mac, open_cookie, seal_cookie, CookieSecrets, Mac1Key, COOKIE_LIFETIME,
};
use crate::error::{Reject, SealError};
use crate::event::{PeerRefusal, Plaintext, Refusal, SecureEvent, Transmit, Verification};
use crate::identity::PublicKey;
use crate::invite::{Pake, MAX_CODE_ATTEMPTS};
use crate::noise;
use crate::ratelimit::RateLimiter;
use crate::session::{Mutation, Session, SessionParams};
use crate::stats::{SecureStats, StateSize};
use crate::wire::{
    array, be_u32, be_u64, cookie_reply, finish, initiation, payload1, payload2, payload3,
    response, CookieReply, Finish, Initiation, Response, Transport, COOKIE_NONCE_LEN, DH_LEN,
    FLAG_PAKE, INNER_CLOSE, MAC_LEN, MAX_DATAGRAM, MAX_INNER, SPAKE_LEN, TYPE_COOKIE_REPLY,
    TYPE_FINISH, TYPE_INITIATION, TYPE_RESPONSE, TYPE_TRANSPORT, V1_TYPES, VERSION,
};

/// Handshakes we answered and wait to see finished, at most.
pub const MAX_PENDING: usize = 8;
/// Of those, from one source address and port at most: a flood from one source cannot
/// push out the real peer's handshake.
pub const MAX_PENDING_PER_SOURCE: usize = 2;
/// An answered handshake not finished within this long is forgotten.
pub const PENDING_TTL: Duration = Duration::from_secs(15);
/// First retry of an unanswered initiation; doubles up to [`RETRY_MAX`]. A first
/// contact knows no round trip yet, so this is short: an initiation is 148 bytes.
pub const RETRY_BASE: Duration = Duration::from_millis(250);
/// Longest interval between two copies of an initiation.
pub const RETRY_MAX: Duration = Duration::from_secs(1);
/// The responder of the current session starts a rekey this much later than its
/// initiator would, so the two rarely initiate at once.
pub const RESPONDER_REKEY_DELAY: Duration = Duration::from_secs(10);
/// Copies of message 3 sent by an initiator that has not heard the responder under the
/// new session, before it drops the session and starts over.
pub const CONFIRM_RETRIES: u32 = 8;
/// Failed code attempts (a response that does not authenticate under the code) after
/// which an initiator gives up: the code is wrong.
pub const MAX_CODE_FAILURES: u32 = 3;
/// Shortest wait for the responder's confirmation.
const CONFIRM_MIN: Duration = Duration::from_millis(10);
/// Shortest time between two copies of our initiation sent out of schedule (because the
/// peer's crossed it, or a cookie arrived): a flood cannot make us flood.
const RESEND_GUARD: Duration = Duration::from_millis(20);
/// Ephemeral keys of handshakes already finished that are remembered, so a late copy
/// of their first message is not taken for a new handshake.
const REMEMBERED: usize = 16;
/// Cookie replies sent per second at most, from all sources together. High on purpose:
/// a reply is smaller than what provoked it, and the real peer behind a spoofed flood
/// needs its own reply to get through.
const COOKIE_REPLY_RATE: u32 = 10_000;
/// How long the same non-fatal refusal of the same key is not reported again.
const REFUSAL_QUIET: Duration = Duration::from_secs(10);

/// Our handshake initiation in flight.
struct OurInitiation {
    hs: HandshakeState,
    local_index: u32,
    /// Our ephemeral public key: breaks the tie when initiations cross.
    ephemeral: [u8; DH_LEN],
    /// The datagram up to MAC1.
    body: [u8; initiation::MAC1.start],
    mac1_key: Zeroizing<[u8; 32]>,
    mac1: [u8; MAC_LEN],
    /// Our SPAKE2 state, when this attempt offers an invitation code.
    pake: Option<Pake>,
    /// Whether this attempt offered a code (`pake` is taken when the response arrives).
    offered_code: bool,
    /// Scheduled retransmissions so far.
    attempt: u32,
    retry_at: Instant,
    first_sent: Instant,
    /// Copies sent: with more than one, the round trip is ambiguous (Karn).
    sends: u32,
    /// Initiations of the peer that crossed this one and lost the tie-break.
    collided: Vec<[u8; DH_LEN]>,
}

/// A handshake we answered, waiting for its message 3.
struct Responding {
    hs: HandshakeState,
    /// How to make `hs` again: snow's `read_message` restores only part of the state
    /// after a message fails to authenticate (not the cipher key), so a forged message 3
    /// that decrypts as far as `s` would leave `hs` unable to read the real one.
    recipe: Recipe,
    local_index: u32,
    remote_index: u32,
    their_ephemeral: [u8; DH_LEN],
    from: SocketAddr,
    /// Our response, sent again if the same initiation comes again.
    msg2: Vec<u8>,
    sent_at: Instant,
    sends: u32,
    /// Whether the invitation code keyed this handshake.
    pake: bool,
}

/// Everything that determines a responder's handshake state after message 2.
struct Recipe {
    header: Vec<u8>,
    noise1: Vec<u8>,
    seed: [u8; 32],
    psk: Zeroizing<[u8; 32]>,
    payload2: [u8; payload2::LEN],
}

impl Recipe {
    /// The cipher the initiation's flags name.
    fn cipher(&self) -> SessionCipher {
        SessionCipher::from_flags(self.header.get(initiation::FLAGS).copied().unwrap_or(0))
    }

    /// The responder's state after reading message 1 and writing message 2 (whose Noise
    /// part goes to `out`, when given).
    fn make(
        &self,
        identity: &crate::Identity,
        out: Option<&mut [u8]>,
    ) -> Result<(HandshakeState, Vec<u8>), Reject> {
        let mut hs = noise::build(false, identity, &self.header, self.seed, self.cipher())
            .map_err(|_| Reject::Internal)?;
        let mut p1 = [0u8; payload1::LEN + 16];
        let n = hs
            .read_message(&self.noise1, &mut p1)
            .map_err(|_| Reject::BadPayload)?;
        noise::set_psk(&mut hs, &self.psk).map_err(|_| Reject::Internal)?;
        let mut scratch = [0u8; response::LEN];
        let out = out.unwrap_or(&mut scratch[response::NOISE]);
        let written = hs
            .write_message(&self.payload2, out)
            .map_err(|_| Reject::Internal)?;
        if written != response::NOISE.len() {
            return Err(Reject::Internal);
        }
        Ok((hs, p1[..n].to_vec()))
    }
}

/// Message 3 re-sent until the responder is heard under the new session.
struct Confirm {
    local_index: u32,
    /// The session was verified by the invitation code: the code is used up only once
    /// the responder is heard (if it never got message 3, the next attempt needs the
    /// code again, because the responder has not pinned us yet).
    uses_code: bool,
    msg3: Vec<u8>,
    attempts: u32,
    delay: Duration,
    at: Instant,
}

/// Where a transport packet's receiver index points.
#[derive(Clone, Copy)]
enum Slot {
    Current,
    Previous,
}

/// One end of encrypted, authenticated sessions with one peer at a time. Sans-IO: see
/// the crate documentation for the calling contract.
pub struct SecureEndpoint {
    config: SecureConfig,
    local_epoch: u64,
    /// Latest `now` seen; time never goes backwards inside the endpoint.
    now: Instant,
    rng: ChaCha20Rng,
    peer: Option<SocketAddr>,
    peer_epoch: Option<u64>,
    /// The key of the peer we have (had) a session with: within this run, no other key.
    peer_key: Option<PublicKey>,
    /// Whether the endpoint should keep a session up (set by `connect`, by `seal` and by
    /// the first session).
    active: bool,
    /// A contact was refused, or refused us: no more handshakes of ours.
    stopped: bool,
    /// Handshakes answered for the open invitation.
    code_attempts: u32,
    /// Our attempts with a code that failed.
    code_failures: u32,
    initiation: Option<OurInitiation>,
    /// Indices of our initiations that ended: a late response or cookie for one of them
    /// is a harmless copy.
    finished_indices: VecDeque<u32>,
    /// Ephemeral keys of the peer's initiations whose handshake is done.
    finished_ephemerals: VecDeque<[u8; DH_LEN]>,
    /// Our own recent ephemeral keys: an initiation of ours sent back to us is not
    /// answered.
    own_ephemerals: VecDeque<[u8; DH_LEN]>,
    confirm: Option<Confirm>,
    responding: VecDeque<Responding>,
    current: Option<Session>,
    previous: Option<Session>,
    /// Start an initiation at this instant (after a failed one).
    handshake_at: Option<Instant>,
    /// A cookie from the peer, for MAC2, and when it came.
    cookie: Option<([u8; MAC_LEN], Instant)>,
    cookies: CookieSecrets,
    /// Handshake work per source and whether the initiation proved its address with a
    /// cookie: a flood spoofing the peer's address cannot use up the peer's own budget.
    limiter: RateLimiter<(SocketAddr, bool)>,
    /// Handshake work from all sources without a cookie: empty means under load.
    load: RateLimiter<()>,
    cookie_replies: RateLimiter<()>,
    last_resend: Option<Instant>,
    /// Non-fatal refusals recently reported, by key.
    refusals_shown: VecDeque<(PublicKey, &'static str, Instant)>,
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
            .field("identity", &self.config.identity)
            .field("local_epoch", &self.local_epoch)
            .field("peer", &self.peer)
            .field("peer_epoch", &self.peer_epoch)
            .field("peer_key", &self.peer_key)
            .field("state", &self.state_size())
            .finish_non_exhaustive()
    }
}

impl SecureEndpoint {
    /// A new endpoint for one process run.
    ///
    /// - `local_epoch`: this run's epoch, random and non-zero (the same one the plaintext
    ///   protocol uses); a peer refuses a handshake carrying epoch 0.
    /// - `now`: the monotonic clock.
    /// - `rng_seed`: 32 bytes from the operating system's CSPRNG. Every ephemeral key,
    ///   index, SPAKE2 scalar and cookie secret is drawn from a ChaCha20 stream seeded
    ///   with it. Never reuse a seed.
    #[must_use]
    pub fn new(config: SecureConfig, local_epoch: u64, now: Instant, rng_seed: [u8; 32]) -> Self {
        let mut rng = ChaCha20Rng::from_seed(rng_seed);
        let cookies = CookieSecrets::new(now, &mut rng);
        let limiter = RateLimiter::new(config.handshake_rate_per_source, config.handshake_burst);
        let load = RateLimiter::new(config.load_rate, config.load_rate.max(1));
        Self {
            peer: config.peer,
            config,
            local_epoch,
            now,
            rng,
            peer_epoch: None,
            peer_key: None,
            active: false,
            stopped: false,
            code_attempts: 0,
            code_failures: 0,
            initiation: None,
            finished_indices: VecDeque::new(),
            finished_ephemerals: VecDeque::new(),
            own_ephemerals: VecDeque::new(),
            confirm: None,
            responding: VecDeque::new(),
            current: None,
            previous: None,
            handshake_at: None,
            cookie: None,
            cookies,
            limiter,
            load,
            cookie_replies: RateLimiter::new(COOKIE_REPLY_RATE, COOKIE_REPLY_RATE / 10),
            last_resend: None,
            refusals_shown: VecDeque::new(),
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
            self.start_initiation(now);
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

    /// Encrypts one inner packet for the current session; send the result to its
    /// `destination`.
    ///
    /// # Errors
    /// [`SealError::NotEstablished`] if there is no usable session (a handshake is then
    /// under way; queue the packet), [`SealError::Refused`] once the contact was refused,
    /// [`SealError::TooLarge`] above [`MAX_INNER`](crate::wire::MAX_INNER) bytes.
    pub fn seal(&mut self, now: Instant, inner: &[u8]) -> Result<Transmit, SealError> {
        let now = self.advance(now);
        if inner.len() > MAX_INNER {
            return Err(SealError::TooLarge { len: inner.len() });
        }
        let (Some(destination), true) = (self.peer, self.usable(now)) else {
            if self.stopped {
                return Err(SealError::Refused);
            }
            self.active = true;
            if self.initiation.is_none() && self.handshake_at.is_none() {
                self.start_initiation(now);
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
                Ok(Transmit {
                    destination,
                    payload,
                })
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
        } else if let Some(s) = self.current.as_ref().filter(|_| !self.stopped) {
            consider(self.rekey_at(s));
        }
        for s in self.current.iter().chain(self.previous.iter()) {
            consider(s.created + reject_after);
        }
        if !self.responding.is_empty() {
            consider(self.oldest_responding() + PENDING_TTL);
        }
        if let Some(c) = &self.confirm {
            consider(c.at);
        }
        next
    }

    /// Runs the timers due at `now`: handshake retries, rekeys, session expiry and
    /// confirmations. Calling it early is harmless.
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
        self.responding
            .retain(|r| now.saturating_duration_since(r.sent_at) < PENDING_TTL);

        if let Some(init) = self.initiation.as_mut().filter(|i| now >= i.retry_at) {
            init.attempt += 1;
            let delay = backoff(&mut self.rng, init.attempt);
            init.retry_at = now + delay;
            self.resend_initiation(now, false);
        }
        if self.initiation.is_none() && self.handshake_at.is_some_and(|at| now >= at) {
            self.start_initiation(now);
        }
        self.on_confirm_timer(now);
        self.maybe_rekey(now);
        if self.active
            && !self.stopped
            && self.current.is_none()
            && self.initiation.is_none()
            && self.handshake_at.is_none()
        {
            self.start_initiation(now);
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

    /// The peer's long-term key, once a session proved it.
    #[must_use]
    pub fn peer_key(&self) -> Option<PublicKey> {
        self.peer_key
    }

    /// Our long-term public key.
    #[must_use]
    pub fn public_key(&self) -> PublicKey {
        self.config.identity.public()
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

    /// Whether a refusal stopped the endpoint: it makes no more sessions.
    #[must_use]
    pub fn is_stopped(&self) -> bool {
        self.stopped
    }

    /// Whether an invitation code is open (not yet used, not closed).
    #[must_use]
    pub fn invitation_open(&self) -> bool {
        self.config.code.is_some()
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
            pending: self.responding.len(),
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
            TYPE_INITIATION => self.on_initiation(now, from, bytes).map(|()| None),
            TYPE_RESPONSE => self.on_response(now, from, bytes).map(|()| None),
            TYPE_FINISH => self.on_finish(now, from, bytes).map(|()| None),
            TYPE_COOKIE_REPLY => self.on_cookie_reply(now, bytes).map(|()| None),
            t if V1_TYPES.contains(&t) => Err(Reject::OtherVersion { version: 1 }),
            first_byte => Err(Reject::NotSecure { first_byte }),
        }
    }

    /// Handshake message 1. In this order: format; MAC1 (the only check an off-path
    /// host that knows the addresses cannot pass, for a peer with a passphrase or a
    /// pinned contact); copies of what we answered; under load, MAC2 or a cookie reply;
    /// the simultaneous-open tie-break; the per-source rate limit. Only then any
    /// Diffie–Hellman work, a response and a pending handshake.
    fn on_initiation(
        &mut self,
        now: Instant,
        from: SocketAddr,
        bytes: &[u8],
    ) -> Result<(), Reject> {
        let msg = Initiation::parse(bytes)?;
        let mac1_key = self.check_mac1(&msg)?;
        let their_e = msg.ephemeral();
        if self.own_ephemerals.contains(&their_e) {
            return Err(Reject::Reflected);
        }
        if let Some(r) = self
            .responding
            .iter()
            .find(|r| r.their_ephemeral == their_e)
        {
            // A copy of one we answered: our response was lost (or the copy is late).
            self.stats.duplicate_handshakes += 1;
            let again = r.msg2.clone();
            if self.limiter.allow((from, false), now) {
                self.transmits.push_back(Transmit {
                    destination: from,
                    payload: again,
                });
            }
            return Ok(());
        }
        if self.finished_ephemerals.contains(&their_e) {
            self.stats.duplicate_handshakes += 1;
            return Ok(());
        }
        // Before any other work (a Noise state costs a scalar multiplication): an attempt
        // at the invitation's code uses up one of its few attempts, so it must come from
        // an address that receives (a cookie), or anyone could close the invitation by
        // spoofing the real peer's address; other initiations need a cookie only under
        // load.
        let mac2_ok = self.cookies.mac2_valid(from, msg.mac2_input(), &msg.mac2());
        let code_attempt = msg.flags() & FLAG_PAKE != 0 && self.config.code.is_some();
        if !mac2_ok && (code_attempt || !self.load.allow((), now)) {
            self.send_cookie_reply(now, from, &msg, &mac1_key);
            return Ok(());
        }
        // Read message 1 (no Diffie-Hellman in it, no state kept) and check its payload
        // before the tie-break and the rate limit see it.
        let spake_a = self.read_initiation(&msg)?;
        if let Some(ours) = self.initiation.as_mut() {
            // Both sides initiated: the lower ephemeral key keeps the initiator role, and
            // the peer answers ours. Ours may have been lost before the peer was up, so
            // send it again now that the peer evidently is. But if the peer sends the
            // same initiation again, ours is evidently not being answered (lost again,
            // or refused before any work, as by a peer that does not know our key): then
            // answer theirs, and let whichever handshake finishes first win.
            if ours.ephemeral < their_e && !ours.collided.contains(&their_e) {
                self.stats.collisions += 1;
                if ours.collided.len() < REMEMBERED {
                    ours.collided.push(their_e);
                }
                self.resend_initiation(now, true);
                return Ok(());
            }
        }
        if !self.limiter.allow((from, mac2_ok), now) {
            return Err(Reject::RateLimited);
        }
        self.answer_initiation(now, from, &msg, &spake_a)
    }

    /// Reads message 1 with a throwaway state and checks its payload; returns the SPAKE2
    /// message it carries (zeros without a code).
    fn read_initiation(&self, msg: &Initiation<'_>) -> Result<[u8; SPAKE_LEN], Reject> {
        let cipher = SessionCipher::from_flags(msg.flags());
        let mut probe = noise::build(false, &self.config.identity, msg.header(), [0; 32], cipher)
            .map_err(|_| Reject::Internal)?;
        let mut p1 = [0u8; payload1::LEN + 16];
        let n = probe
            .read_message(msg.noise(), &mut p1)
            .map_err(|_| Reject::BadPayload)?;
        let p1 = &p1[..n];
        let offered = msg.flags() & FLAG_PAKE != 0;
        let spake: [u8; SPAKE_LEN] = array(p1, payload1::SPAKE);
        if n != payload1::LEN
            || msg.sender_index() == 0
            || p1[payload1::PADDING].iter().any(|&b| b != 0)
            || (!offered && spake.iter().any(|&b| b != 0))
            || (offered && spake[0] != b'S')
        {
            return Err(Reject::BadPayload);
        }
        Ok(spake)
    }

    /// Writes message 2 for an initiation that passed every check.
    fn answer_initiation(
        &mut self,
        now: Instant,
        from: SocketAddr,
        msg: &Initiation<'_>,
        spake_a: &[u8; SPAKE_LEN],
    ) -> Result<(), Reject> {
        let flags = msg.flags();
        let remote_index = msg.sender_index();
        let offered = flags & FLAG_PAKE != 0;
        let seed = noise::seed(&mut self.rng);
        let code = self.config.code.filter(|_| offered);
        let (flags2, spake_b, pake_key) = match code {
            Some(code) => {
                let (pake, spake_b) = Pake::start(&code, &mut self.rng);
                let key = pake.finish(spake_a).ok_or(Reject::BadPayload)?;
                (FLAG_PAKE, spake_b, Some(key))
            }
            None => (0, [0u8; SPAKE_LEN], None),
        };
        let local_index = self.fresh_index();
        let mut payload2 = [0u8; payload2::LEN];
        payload2[payload2::SENDER_INDEX].copy_from_slice(&local_index.to_be_bytes());
        payload2[payload2::EPOCH].copy_from_slice(&self.local_epoch.to_be_bytes());
        let recipe = Recipe {
            header: msg.header().to_vec(),
            noise1: msg.noise().to_vec(),
            seed,
            psk: noise::handshake_psk(self.config.psk.as_ref(), pake_key.as_deref()),
            payload2,
        };
        let mut out = vec![0u8; response::LEN];
        out[response::TYPE] = TYPE_RESPONSE;
        out[response::VERSION] = VERSION;
        out[response::FLAGS] = flags2;
        out[response::RECEIVER_INDEX].copy_from_slice(&remote_index.to_be_bytes());
        out[response::SPAKE].copy_from_slice(&spake_b);
        let (hs, _) = recipe.make(&self.config.identity, Some(&mut out[response::NOISE]))?;
        if pake_key.is_some() {
            // Each answer under the code is one guess for whoever sent the initiation.
            self.code_attempts += 1;
            self.stats.code_attempts += 1;
            if self.code_attempts >= MAX_CODE_ATTEMPTS && self.config.code.take().is_some() {
                self.events
                    .push_back(SecureEvent::InvitationClosed { used: false });
            }
        }
        // Bounded: at most MAX_PENDING_PER_SOURCE from one source, MAX_PENDING in all;
        // the oldest goes first.
        let same_source = self.responding.iter().filter(|r| r.from == from).count();
        if same_source >= MAX_PENDING_PER_SOURCE {
            if let Some(i) = self.responding.iter().position(|r| r.from == from) {
                self.responding.remove(i);
            }
        }
        if self.responding.len() >= MAX_PENDING {
            self.responding.pop_front();
        }
        self.responding.push_back(Responding {
            hs,
            recipe,
            local_index,
            remote_index,
            their_ephemeral: msg.ephemeral(),
            from,
            msg2: out.clone(),
            sent_at: now,
            sends: 1,
            pake: pake_key.is_some(),
        });
        self.transmits.push_back(Transmit {
            destination: from,
            payload: out,
        });
        self.stats.handshake_responses_sent += 1;
        Ok(())
    }

    /// The MAC1 key an initiation was made with, among those we accept: the
    /// passphrase's (with a passphrase, nothing else), else our public key's, and the
    /// open key only while a first contact is possible.
    fn check_mac1(&self, msg: &Initiation<'_>) -> Result<Zeroizing<[u8; 32]>, Reject> {
        let own = self.config.identity.public();
        let mut keys = Vec::with_capacity(2);
        match &self.config.psk {
            Some(psk) => keys.push(Mac1Key::Passphrase(psk)),
            None => {
                keys.push(Mac1Key::Static(&own));
                if self.accepts_first_contact() {
                    keys.push(Mac1Key::Open);
                }
            }
        }
        if self.mutation == Mutation::AcceptAnyMac1 {
            keys.push(Mac1Key::Open);
        }
        let expected = msg.mac1();
        keys.into_iter()
            .map(Mac1Key::derive)
            .find(|key| constant_time_eq(&mac(key.as_ref(), msg.mac1_input()), &expected))
            .or_else(|| (self.mutation == Mutation::AcceptAnyMac1).then(|| Mac1Key::Open.derive()))
            .ok_or(Reject::BadMac1)
    }

    /// Whether an initiation from someone who does not know our key could lead anywhere:
    /// an open invitation, or no contact pinned for (or made with) our peer yet. A peer
    /// with our own key (the same installation) never gets pinned, so its next run
    /// cannot know to key MAC1 with it: it is let in the same way.
    fn accepts_first_contact(&self) -> bool {
        let own = self.config.identity.public();
        self.config.code.is_some()
            || (self.config.trust.expected.is_none() && self.peer_key.is_none_or(|k| k == own))
    }

    /// Under load: a cookie for the initiation's source instead of any work.
    fn send_cookie_reply(
        &mut self,
        now: Instant,
        from: SocketAddr,
        msg: &Initiation<'_>,
        mac1_key: &[u8; 32],
    ) {
        if !self.cookie_replies.allow((), now) {
            return;
        }
        let cookie = self.cookies.cookie(now, &mut self.rng, from);
        let mut nonce = [0u8; COOKIE_NONCE_LEN];
        self.rng.fill_bytes(&mut nonce);
        let Some(sealed) = seal_cookie(mac1_key, &nonce, &cookie, &msg.mac1()) else {
            self.stats.internal_errors += 1;
            return;
        };
        let sender_index = msg.sender_index();
        let mut out = vec![0u8; cookie_reply::LEN];
        out[cookie_reply::TYPE] = TYPE_COOKIE_REPLY;
        out[cookie_reply::VERSION] = VERSION;
        out[cookie_reply::RECEIVER_INDEX].copy_from_slice(&sender_index.to_be_bytes());
        out[cookie_reply::NONCE].copy_from_slice(&nonce);
        out[cookie_reply::COOKIE].copy_from_slice(&sealed);
        self.transmits.push_back(Transmit {
            destination: from,
            payload: out,
        });
        self.stats.cookie_replies_sent += 1;
    }

    /// Whether a reply addressed to `index` answers the initiation we have in flight:
    /// `Ok(false)` for a late duplicate answering one that already finished (counted,
    /// otherwise ignored), an error for an index we never used.
    fn answers_our_initiation(&mut self, index: u32) -> Result<bool, Reject> {
        if self
            .initiation
            .as_ref()
            .is_some_and(|i| i.local_index == index)
        {
            return Ok(true);
        }
        if self.finished_indices.contains(&index) {
            self.stats.duplicate_handshakes += 1;
            return Ok(false);
        }
        Err(Reject::UnknownIndex)
    }

    /// Handshake message 2, answering our initiation.
    fn on_response(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) -> Result<(), Reject> {
        let msg = Response::parse(bytes)?;
        if !self.answers_our_initiation(msg.receiver_index())? {
            return Ok(());
        }
        let Some(init) = self.initiation.as_mut() else {
            return Err(Reject::UnknownIndex);
        };
        let answered = msg.flags() & FLAG_PAKE != 0;
        if (answered && !init.offered_code) || (!answered && msg.spake().iter().any(|&b| b != 0)) {
            return Err(Reject::BadPayload);
        }
        let pake_key = match (answered, init.pake.take()) {
            (true, Some(pake)) => match pake.finish(msg.spake()) {
                Some(key) => Some(key),
                None => {
                    self.code_attempt_failed(now, from);
                    return Err(Reject::BadPayload);
                }
            },
            (true, None) => return Err(Reject::BadPayload),
            (false, pake) => {
                init.pake = pake;
                None
            }
        };
        let psk = noise::handshake_psk(self.config.psk.as_ref(), pake_key.as_deref());
        noise::set_psk(&mut init.hs, &psk).map_err(|_| Reject::Internal)?;
        let mut p2 = [0u8; payload2::LEN + 16];
        let read = init.hs.read_message(msg.noise(), &mut p2);
        let Ok(n) = read else {
            // snow restores the handshake when a message fails to authenticate, so a
            // forged response leaves our initiation able to read the real one. Under a
            // code, though, a failure is one guess at the code: this attempt ends.
            if pake_key.is_some() {
                self.code_attempt_failed(now, from);
            }
            return Err(Reject::BadMac);
        };
        // Authenticated: the responder holds the private key of the static key it sent,
        // and the PSK (passphrase, code) is the same on both sides.
        let Some(init) = self.initiation.take() else {
            return Err(Reject::Internal);
        };
        self.remember_index(init.local_index);
        let p2 = &p2[..n];
        let remote_index = be_u32(p2, payload2::SENDER_INDEX);
        let epoch = be_u64(p2, payload2::EPOCH);
        if n != payload2::LEN || remote_index == 0 || epoch == 0 {
            self.handshake_at = Some(now + RETRY_BASE);
            return Err(Reject::BadPayload);
        }
        if epoch == self.local_epoch {
            self.handshake_at = Some(now + RETRY_MAX);
            return Err(Reject::Reflected);
        }
        let key = noise::remote_static(&init.hs)
            .map(PublicKey)
            .ok_or(Reject::Internal)?;
        let declined = init.offered_code && !answered;
        let judged = self.judge(key, pake_key.is_some(), declined);
        let mut p3 = [0u8; payload3::LEN];
        p3[payload3::EPOCH].copy_from_slice(&self.local_epoch.to_be_bytes());
        let mut out = vec![0u8; finish::LEN];
        out[finish::TYPE] = TYPE_FINISH;
        out[finish::VERSION] = VERSION;
        out[finish::RECEIVER_INDEX].copy_from_slice(&remote_index.to_be_bytes());
        let mut hs = init.hs;
        let n = hs
            .write_message(&p3, &mut out[finish::NOISE])
            .map_err(|_| Reject::Internal)?;
        if n != finish::NOISE.len() {
            return Err(Reject::Internal);
        }
        let session = self.finish_session(
            hs,
            SessionParams {
                local_index: init.local_index,
                remote_index,
                created: now,
                initiator: true,
                peer_epoch: epoch,
                peer_key: key,
                handshake_hash: [0; 32],
                finish_digest: None,
                cipher: SessionCipher::from_flags(init.body[initiation::FLAGS]),
            },
        )?;
        let (verified, new_contact) = match judged {
            Ok(v) => v,
            Err(reason) => {
                // Finish the handshake all the same and say why, under its keys: the
                // responder learns our key from message 3 (and refuses us, if it does
                // not know us either) and why we will not talk. Otherwise a responder
                // whose own initiation lost the tie-break would never find out.
                let mut session = session;
                self.transmits.push_back(Transmit {
                    destination: from,
                    payload: out,
                });
                if let Ok(payload) = session.seal(&[INNER_CLOSE, reason.wire()]) {
                    self.transmits.push_back(Transmit {
                        destination: from,
                        payload,
                    });
                }
                self.refuse(now, from, Some(key), reason, true);
                return Ok(());
            }
        };
        let rtt = (init.sends == 1).then(|| now.saturating_duration_since(init.first_sent));
        for e in init.collided {
            self.remember_ephemeral(e);
        }
        self.transmits.push_back(Transmit {
            destination: from,
            payload: out.clone(),
        });
        let delay = rtt
            .map_or(RETRY_BASE, |r| (r * 3).max(CONFIRM_MIN))
            .min(RETRY_MAX);
        self.confirm = Some(Confirm {
            local_index: init.local_index,
            uses_code: verified == Verification::Code,
            msg3: out,
            attempts: 0,
            delay,
            at: now + delay,
        });
        self.accept(from, session, verified, new_contact, rtt);
        Ok(())
    }

    /// An attempt with the invitation code got a response that does not prove the same
    /// code: that attempt is over (one guess per attempt). A few such failures mean the
    /// code is wrong.
    fn code_attempt_failed(&mut self, now: Instant, from: SocketAddr) {
        self.code_failures += 1;
        if let Some(init) = self.initiation.take() {
            self.remember_index(init.local_index);
        }
        if self.code_failures >= MAX_CODE_FAILURES {
            self.refuse(now, from, None, Refusal::CodeMismatch, true);
        } else {
            self.handshake_at = Some(now + RETRY_BASE);
        }
    }

    /// Handshake message 3, finishing a handshake we answered.
    fn on_finish(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) -> Result<(), Reject> {
        let msg = Finish::parse(bytes)?;
        let index = msg.receiver_index();
        let Some(pos) = self.responding.iter().position(|r| r.local_index == index) else {
            // A copy of the message 3 that made the current session: the initiator did
            // not hear our confirmation. Confirm again (smaller than what came).
            let digest = finish_digest(bytes);
            if self
                .current
                .as_ref()
                .is_some_and(|s| s.local_index == index && s.finish_digest == Some(digest))
            {
                self.stats.duplicate_handshakes += 1;
                self.send_keepalive();
                return Ok(());
            }
            return Err(Reject::UnknownIndex);
        };
        let mut p3 = [0u8; payload3::LEN + 16];
        let read = self.responding[pos].hs.read_message(msg.noise(), &mut p3);
        let Ok(n) = read else {
            // Put the handshake back exactly as it was before this message (see Recipe).
            let identity = self.config.identity.clone();
            let r = &mut self.responding[pos];
            r.hs = r.recipe.make(&identity, None)?.0;
            return Err(Reject::BadMac);
        };
        let Some(r) = self.responding.remove(pos) else {
            return Err(Reject::Internal);
        };
        let epoch = be_u64(&p3[..n], payload3::EPOCH);
        if n != payload3::LEN || epoch == 0 {
            return Err(Reject::BadPayload);
        }
        if epoch == self.local_epoch {
            return Err(Reject::Reflected);
        }
        let key = noise::remote_static(&r.hs)
            .map(PublicKey)
            .ok_or(Reject::Internal)?;
        let mut session = self.finish_session(
            r.hs,
            SessionParams {
                local_index: r.local_index,
                remote_index: r.remote_index,
                created: now,
                initiator: false,
                peer_epoch: epoch,
                peer_key: key,
                handshake_hash: [0; 32],
                finish_digest: Some(finish_digest(bytes)),
                cipher: r.recipe.cipher(),
            },
        )?;
        self.remember_ephemeral(r.their_ephemeral);
        match self.judge(key, r.pake, false) {
            Err(reason) => {
                // Tell the initiator why, under the keys of the session we will not use:
                // only it can read this, and only we can have sent it.
                if let Ok(payload) = session.seal(&[INNER_CLOSE, reason.wire()]) {
                    self.transmits.push_back(Transmit {
                        destination: from,
                        payload,
                    });
                }
                let fatal = self.peer == Some(from) && self.current.is_none();
                self.refuse(now, from, Some(key), reason, fatal);
                Ok(())
            }
            Ok((verified, new_contact)) => {
                let rtt = (r.sends == 1).then(|| now.saturating_duration_since(r.sent_at));
                if let Some(init) = self.initiation.take() {
                    // Ours crossed the peer's and lost; this session replaces it.
                    self.stats.initiations_abandoned += 1;
                    self.remember_index(init.local_index);
                    for e in init.collided {
                        self.remember_ephemeral(e);
                    }
                }
                self.accept(from, session, verified, new_contact, rtt);
                // Confirm at once, so the initiator stops sending message 3.
                self.send_keepalive();
                Ok(())
            }
        }
    }

    /// A cookie reply to our initiation: use the cookie for MAC2 and send the initiation
    /// again at once.
    fn on_cookie_reply(&mut self, now: Instant, bytes: &[u8]) -> Result<(), Reject> {
        let msg = CookieReply::parse(bytes)?;
        if !self.answers_our_initiation(msg.receiver_index())? {
            return Ok(());
        }
        let Some(init) = self.initiation.as_ref() else {
            return Err(Reject::UnknownIndex);
        };
        let cookie = open_cookie(&init.mac1_key, &msg.nonce(), msg.sealed(), &init.mac1)
            .ok_or(Reject::BadMac)?;
        self.cookie = Some((cookie, now));
        self.stats.cookies_received += 1;
        self.resend_initiation(now, true);
        Ok(())
    }

    /// A transport packet: find the session, check expiry and replay, decrypt, then act.
    fn on_transport(
        &mut self,
        now: Instant,
        from: SocketAddr,
        bytes: &[u8],
    ) -> Result<Option<Plaintext>, Reject> {
        let msg = Transport::parse(bytes)?;
        let mutation = self.mutation;
        let reject_after = self.config.reject_after;
        let index = msg.receiver_index();
        let slot = self.find(index).ok_or(Reject::UnknownIndex)?;
        let session = self.slot_mut(slot).ok_or(Reject::Internal)?;
        if now.saturating_duration_since(session.created) >= reject_after {
            return Err(Reject::Expired);
        }
        let (inner, newest) = session.open(msg.nonce(), msg.ciphertext(), mutation)?;
        self.stats.transport_received += 1;
        if let Slot::Current = slot {
            if self
                .confirm
                .as_ref()
                .is_some_and(|c| c.local_index == index)
            {
                self.confirmed();
            }
            if newest {
                self.set_peer(from);
            }
        }
        if inner.first() == Some(&INNER_CLOSE) {
            let reason = PeerRefusal::from_wire(inner.get(1).copied().unwrap_or(0));
            match slot {
                Slot::Current => self.current = None,
                Slot::Previous => self.previous = None,
            }
            self.stop();
            self.events
                .push_back(SecureEvent::RefusedByPeer { peer: from, reason });
            return Ok(None);
        }
        if inner.is_empty() {
            return Ok(None);
        }
        Ok(Some(Plaintext { from, bytes: inner }))
    }

    // ---- trust ----

    /// Whether the peer's key is acceptable, and how it was verified; or why not.
    fn judge(
        &self,
        key: PublicKey,
        code_proved: bool,
        code_declined: bool,
    ) -> Result<(Verification, bool), Refusal> {
        if key == self.config.identity.public() {
            return Ok((Verification::Own, false));
        }
        if let Some(current) = self.peer_key {
            // Within one run the peer is one key; a restart keeps its key too.
            return if key == current {
                Ok((Verification::Pinned, false))
            } else {
                Err(Refusal::KeyChanged { expected: current })
            };
        }
        if let Some(expected) = self.config.trust.expected {
            if key == expected {
                return Ok((Verification::Pinned, false));
            }
            // A matching invitation code is a new first contact: it may replace a pin.
            if code_proved {
                return Ok((Verification::Code, true));
            }
            return Err(Refusal::KeyChanged { expected });
        }
        if self.config.trust.pinned.contains(&key) {
            return Ok((Verification::Pinned, false));
        }
        if code_proved {
            return Ok((Verification::Code, true));
        }
        if self.config.psk.is_some() {
            return Ok((Verification::Passphrase, true));
        }
        if code_declined {
            return Err(Refusal::NoInvitation);
        }
        Err(Refusal::UnknownContact)
    }

    /// Reports a refusal; a fatal one stops the endpoint.
    fn refuse(
        &mut self,
        now: Instant,
        peer: SocketAddr,
        key: Option<PublicKey>,
        reason: Refusal,
        fatal: bool,
    ) {
        self.stats.refusals += 1;
        if fatal {
            self.stop();
        } else if let Some(key) = key {
            // A stranger knocking again and again is reported once in a while.
            self.refusals_shown
                .retain(|(_, _, at)| now.saturating_duration_since(*at) < REFUSAL_QUIET);
            if self
                .refusals_shown
                .iter()
                .any(|(k, r, _)| *k == key && *r == reason.code())
            {
                return;
            }
            if self.refusals_shown.len() >= REMEMBERED {
                self.refusals_shown.pop_front();
            }
            self.refusals_shown.push_back((key, reason.code(), now));
        }
        self.events.push_back(SecureEvent::Refused {
            peer,
            key,
            reason,
            fatal,
        });
    }

    /// No more handshakes of ours.
    fn stop(&mut self) {
        self.stopped = true;
        if let Some(init) = self.initiation.take() {
            self.remember_index(init.local_index);
        }
        self.handshake_at = None;
        self.confirm = None;
    }

    // ---- handshakes ----

    /// Sends a new initiation to the peer (replacing any in flight).
    fn start_initiation(&mut self, now: Instant) {
        self.handshake_at = None;
        if self.stopped {
            return;
        }
        if self.peer.is_none() {
            return;
        }
        let code = self.config.code;
        // MAC1 is keyed by what the responder will check: the passphrase; else its key,
        // if this run met it (it has pinned us by now, and may accept nothing else);
        // else, for a first contact by code, the open key (a key pinned on disk may be
        // the very thing the code is replacing); else the pinned key; else the open one.
        let mac1_key = match (
            &self.config.psk,
            self.peer_key.as_ref(),
            code,
            self.config.trust.expected.as_ref(),
        ) {
            (Some(psk), ..) => Mac1Key::Passphrase(psk),
            (None, Some(key), ..) => Mac1Key::Static(key),
            (None, None, Some(_), _) | (None, None, None, None) => Mac1Key::Open,
            (None, None, None, Some(key)) => Mac1Key::Static(key),
        }
        .derive();
        let pake_flag = if code.is_some() { FLAG_PAKE } else { 0 };
        // A rekey keeps the session's cipher, whoever chose it: a transfer does not change
        // cipher halfway (and the responder's side of a mixed pair keeps what it had).
        let cipher = self
            .current
            .as_ref()
            .map_or(self.config.cipher, |s| s.cipher);
        let flags = pake_flag | cipher.flag();
        let (pake, spake) = match code {
            Some(code) => {
                let (pake, msg) = Pake::start(&code, &mut self.rng);
                (Some(pake), msg)
            }
            None => (None, [0u8; SPAKE_LEN]),
        };
        let local_index = self.fresh_index();
        let mut p1 = [0u8; payload1::LEN];
        p1[payload1::SPAKE].copy_from_slice(&spake);
        let mut body = [0u8; initiation::MAC1.start];
        body[initiation::TYPE] = TYPE_INITIATION;
        body[initiation::VERSION] = VERSION;
        body[initiation::FLAGS] = flags;
        body[initiation::SENDER_INDEX].copy_from_slice(&local_index.to_be_bytes());
        let seed = noise::seed(&mut self.rng);
        let header = body[initiation::HEADER].to_vec();
        let written =
            noise::build(true, &self.config.identity, &header, seed, cipher).and_then(|mut hs| {
                let n = hs.write_message(&p1, &mut body[initiation::NOISE])?;
                Ok((hs, n))
            });
        let Ok((hs, n)) = written else {
            self.stats.internal_errors += 1;
            self.handshake_at = Some(now + RETRY_MAX);
            return;
        };
        if n != initiation::NOISE.len() {
            self.stats.internal_errors += 1;
            self.handshake_at = Some(now + RETRY_MAX);
            return;
        }
        let mac1 = mac(mac1_key.as_ref(), &body);
        let ephemeral = array(&body, initiation::EPHEMERAL);
        if self.own_ephemerals.len() >= REMEMBERED {
            self.own_ephemerals.pop_front();
        }
        self.own_ephemerals.push_back(ephemeral);
        if let Some(old) = self.initiation.take() {
            self.remember_index(old.local_index);
        }
        let retry_at = now + backoff(&mut self.rng, 0);
        self.initiation = Some(OurInitiation {
            hs,
            local_index,
            ephemeral,
            body,
            mac1_key,
            mac1,
            offered_code: pake.is_some(),
            pake,
            attempt: 0,
            retry_at,
            first_sent: now,
            sends: 0,
            collided: Vec::new(),
        });
        self.resend_initiation(now, false);
    }

    /// Sends our initiation (again): the same handshake message, with MAC2 from a fresh
    /// cookie if we have one. `out_of_schedule` copies (the peer's initiation crossed
    /// ours, a cookie arrived) are spaced by at least [`RESEND_GUARD`].
    fn resend_initiation(&mut self, now: Instant, out_of_schedule: bool) {
        if out_of_schedule {
            if self
                .last_resend
                .is_some_and(|t| now.saturating_duration_since(t) < RESEND_GUARD)
            {
                return;
            }
            self.last_resend = Some(now);
        }
        let (Some(destination), Some(init)) = (self.peer, self.initiation.as_mut()) else {
            return;
        };
        let cookie = self
            .cookie
            .filter(|(_, at)| now.saturating_duration_since(*at) < COOKIE_LIFETIME)
            .map(|(c, _)| c);
        let mut payload = Vec::with_capacity(initiation::LEN);
        payload.extend_from_slice(&init.body);
        payload.extend_from_slice(&init.mac1);
        let mac2 = cookie.map_or([0u8; MAC_LEN], |c| mac(&c, &payload));
        payload.extend_from_slice(&mac2);
        if init.sends == 0 {
            init.first_sent = now;
        }
        init.sends += 1;
        self.transmits.push_back(Transmit {
            destination,
            payload,
        });
        self.stats.handshakes_initiated += 1;
    }

    /// The initiator's confirmation timer: send message 3 again until the responder is
    /// heard under the new session; after [`CONFIRM_RETRIES`], drop the session (the
    /// responder never got it) and start over.
    fn on_confirm_timer(&mut self, now: Instant) {
        let Some(c) = self.confirm.as_mut().filter(|c| now >= c.at) else {
            return;
        };
        let ours = self
            .current
            .as_ref()
            .filter(|s| s.local_index == c.local_index);
        let heard = ours.is_none_or(|s| s.received_any);
        if heard {
            self.confirmed();
            return;
        }
        if c.attempts >= CONFIRM_RETRIES {
            self.confirm = None;
            self.current = None;
            self.finished_ephemerals.clear();
            self.start_initiation(now);
            return;
        }
        c.attempts += 1;
        c.delay = (c.delay * 2).min(RETRY_MAX);
        c.at = now + c.delay;
        let payload = c.msg3.clone();
        if let Some(destination) = self.peer {
            self.transmits.push_back(Transmit {
                destination,
                payload,
            });
        }
    }

    /// The responder was heard under the session our message 3 made.
    fn confirmed(&mut self) {
        if self.confirm.take().is_some_and(|c| c.uses_code) {
            self.invitation_used();
        }
    }

    /// The invitation's code proved a first contact: it is used up, and the
    /// application is told (once; later calls find no code left).
    fn invitation_used(&mut self) {
        if self.config.code.take().is_some() {
            self.events
                .push_back(SecureEvent::InvitationClosed { used: true });
        }
    }

    /// Turns a finished handshake into a session.
    fn finish_session(&self, hs: HandshakeState, mut p: SessionParams) -> Result<Session, Reject> {
        p.handshake_hash = noise::handshake_hash(&hs).ok_or(Reject::Internal)?;
        let transport = hs
            .into_stateless_transport_mode()
            .map_err(|_| Reject::Internal)?;
        Ok(Session::new(transport, p))
    }

    /// A session whose peer key was judged acceptable: a code is used up, a new key is
    /// trusted for the rest of the run, and the session is installed.
    fn accept(
        &mut self,
        from: SocketAddr,
        session: Session,
        verified: Verification,
        new_contact: bool,
        rtt: Option<Duration>,
    ) {
        // A responder has seen the initiator prove the code (message 3): used up. An
        // initiator waits until the responder is heard (see `Confirm::uses_code`).
        if verified == Verification::Code && !session.initiator {
            self.invitation_used();
        }
        if new_contact {
            self.config.trust.pinned.insert(session.peer_key);
        }
        self.install(from, session, verified, new_contact, rtt);
    }

    /// Makes a session current (the old one stays as previous until it expires) and tells
    /// the application.
    fn install(
        &mut self,
        from: SocketAddr,
        session: Session,
        verified: Verification,
        new_contact: bool,
        rtt: Option<Duration>,
    ) {
        let epoch = session.peer_epoch;
        let key = session.peer_key;
        if let Some(old) = self.current.take() {
            self.previous = Some(old);
        }
        self.current = Some(session);
        self.active = true;
        self.handshake_at = None;
        self.stats.handshakes_completed += 1;
        self.set_peer(from);
        let event = match self.peer_epoch {
            None => SecureEvent::Established {
                peer: from,
                peer_epoch: epoch,
                peer_key: key,
                verified,
                new_contact,
                rtt,
            },
            Some(old) if old != epoch => SecureEvent::PeerRestarted {
                old_epoch: old,
                new_epoch: epoch,
                rtt,
            },
            Some(_) => SecureEvent::Rekeyed {
                peer_epoch: epoch,
                rtt,
            },
        };
        self.peer_epoch = Some(epoch);
        self.peer_key = Some(key);
        self.events.push_back(event);
    }

    /// Starts a rekey when the current session is old enough or has sent enough.
    fn maybe_rekey(&mut self, now: Instant) {
        if self.stopped || self.initiation.is_some() || self.handshake_at.is_some() {
            return;
        }
        let due = self.current.as_ref().is_some_and(|s| {
            now >= self.rekey_at(s) || s.sent() >= self.config.rekey_after_messages
        });
        if due {
            self.start_initiation(now);
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
        let (Some(destination), Some(session)) = (self.peer, self.current.as_mut()) else {
            return;
        };
        match session.seal(&[]) {
            Ok(payload) => {
                self.stats.transport_sent += 1;
                self.stats.keepalives_sent += 1;
                self.transmits.push_back(Transmit {
                    destination,
                    payload,
                });
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

    fn oldest_responding(&self) -> Instant {
        self.responding
            .iter()
            .map(|r| r.sent_at)
            .min()
            .unwrap_or(self.now)
    }

    fn usable(&self, now: Instant) -> bool {
        self.current
            .as_ref()
            .is_some_and(|s| now.saturating_duration_since(s.created) < self.config.reject_after)
    }

    fn find(&self, index: u32) -> Option<Slot> {
        if self
            .current
            .as_ref()
            .is_some_and(|s| s.local_index == index)
        {
            return Some(Slot::Current);
        }
        self.previous
            .as_ref()
            .filter(|s| s.local_index == index)
            .map(|_| Slot::Previous)
    }

    fn slot_mut(&mut self, slot: Slot) -> Option<&mut Session> {
        match slot {
            Slot::Current => self.current.as_mut(),
            Slot::Previous => self.previous.as_mut(),
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

    fn remember_index(&mut self, index: u32) {
        if self.finished_indices.len() >= REMEMBERED {
            self.finished_indices.pop_front();
        }
        self.finished_indices.push_back(index);
    }

    fn remember_ephemeral(&mut self, e: [u8; DH_LEN]) {
        if self.finished_ephemerals.contains(&e) {
            return;
        }
        if self.finished_ephemerals.len() >= REMEMBERED {
            self.finished_ephemerals.pop_front();
        }
        self.finished_ephemerals.push_back(e);
    }

    /// A random non-zero index not used by any session or handshake of ours.
    fn fresh_index(&mut self) -> u32 {
        let mut index = 0;
        for _ in 0..16 {
            index = self.rng.next_u32();
            let in_use = index == 0
                || self.find(index).is_some()
                || self.responding.iter().any(|r| r.local_index == index)
                || self.finished_indices.contains(&index)
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
}

/// Delay before retry number `attempt` of an initiation: 250 ms, 500 ms, 1 s, 1 s…,
/// plus up to a quarter more of jitter so two sides that keep crossing stop doing so.
fn backoff(rng: &mut ChaCha20Rng, attempt: u32) -> Duration {
    let base = RETRY_BASE
        .saturating_mul(1 << attempt.min(4))
        .min(RETRY_MAX);
    let quarter = u64::try_from(base.as_micros() / 4).unwrap_or(1).max(1);
    base + Duration::from_micros(rng.next_u64() % quarter)
}

/// A digest of a message 3, to recognise a copy of it.
fn finish_digest(bytes: &[u8]) -> [u8; MAC_LEN] {
    mac(b"udpchat/v2/finish-digest", bytes)
}
