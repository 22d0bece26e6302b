//! The man in the middle: a relay on the path that answers both sides itself (as
//! responder to the initiator, as initiator to the responder) and forwards what it can
//! decrypt. In version 1 it ground the passphrase-less short code until both people saw
//! the same digits, then read and rewrote the conversation. Here it must end with no
//! session or a refused contact on each side, in every mode, with the relay's best
//! strategy: it knows both addresses, both public keys, and guesses the code.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::harness::{addr, config, identities, test_psk, Mode};
use crate::{InviteCode, Refusal, SecureConfig, SecureEndpoint, SecureEvent};

/// A, B and the relay's two faces: `ma` (posing as B to A) and `mb` (posing as A to B).
struct Relay {
    a: SecureEndpoint,
    b: SecureEndpoint,
    ma: SecureEndpoint,
    mb: SecureEndpoint,
    events_a: Vec<SecureEvent>,
    events_b: Vec<SecureEvent>,
    events_m: Vec<SecureEvent>,
    /// What A and B received and showed: the relay rewrites what passes.
    shown_a: Vec<Vec<u8>>,
    shown_b: Vec<Vec<u8>>,
}

const A: u16 = 1001;
const B: u16 = 1002;

impl Relay {
    fn run(&mut self, t0: Instant, for_how_long: Duration) {
        let mut now = t0;
        self.a.connect(now);
        self.b.connect(now);
        self.ma.connect(now);
        self.mb.connect(now);
        // Datagrams in flight: (to A? to B?), from which face.
        let mut wire: VecDeque<(u16, SocketAddr, Vec<u8>)> = VecDeque::new();
        while now < t0 + for_how_long {
            for _ in 0..1000 {
                // Everything A sends to "B" reaches the relay's face ma; everything B
                // sends to "A" reaches mb; the relay's faces send to the real ones.
                while let Some(t) = self.a.poll_transmit() {
                    wire.push_back((0, addr(A), t.payload));
                }
                while let Some(t) = self.b.poll_transmit() {
                    wire.push_back((1, addr(B), t.payload));
                }
                while let Some(t) = self.ma.poll_transmit() {
                    wire.push_back((A, addr(B), t.payload));
                }
                while let Some(t) = self.mb.poll_transmit() {
                    wire.push_back((B, addr(A), t.payload));
                }
                let Some((to, from, bytes)) = wire.pop_front() else {
                    break;
                };
                match to {
                    0 => {
                        if let Ok(Some(p)) = self.ma.handle_datagram(now, from, &bytes) {
                            // The relay rewrites what A says and passes it on to B.
                            let mut p = p.bytes;
                            p.extend_from_slice(b" (rewritten)");
                            if let Ok(t) = self.mb.seal(now, &p) {
                                wire.push_back((B, addr(A), t.payload));
                            }
                        }
                    }
                    1 => {
                        if let Ok(Some(p)) = self.mb.handle_datagram(now, from, &bytes) {
                            if let Ok(t) = self.ma.seal(now, &p.bytes) {
                                wire.push_back((A, addr(B), t.payload));
                            }
                        }
                    }
                    A => {
                        if let Ok(Some(p)) = self.a.handle_datagram(now, from, &bytes) {
                            self.shown_a.push(p.bytes);
                        }
                    }
                    _ => {
                        if let Ok(Some(p)) = self.b.handle_datagram(now, from, &bytes) {
                            self.shown_b.push(p.bytes);
                        }
                    }
                }
            }
            for e in std::iter::from_fn(|| self.a.poll_event()) {
                self.events_a.push(e);
            }
            for e in std::iter::from_fn(|| self.b.poll_event()) {
                self.events_b.push(e);
            }
            for e in std::iter::from_fn(|| self.ma.poll_event().or_else(|| self.mb.poll_event())) {
                self.events_m.push(e);
            }
            // The real ones talk once they think they can.
            if let Ok(t) = self.a.seal(now, b"PAY ALICE") {
                wire.push_back((0, addr(A), t.payload));
            }
            now += Duration::from_millis(1);
            for ep in [&mut self.a, &mut self.b, &mut self.ma, &mut self.mb] {
                ep.handle_timeout(now);
            }
        }
    }

    fn accepted(events: &[SecureEvent]) -> bool {
        events
            .iter()
            .any(|e| matches!(e, SecureEvent::Established { .. }))
    }
}

/// Builds the four endpoints: A and B in `mode`; the relay with its own key, configured
/// as the most permissive first contact it can be (with `relay_code` as its guess, and
/// the passphrase `relay_passphrase` if it has one).
fn relay(
    mode: Mode,
    relay_code: Option<InviteCode>,
    relay_passphrase: Option<&str>,
    seed: u8,
) -> (Relay, Instant) {
    let (ia, ib) = identities(seed);
    let (im, _) = identities(seed.wrapping_add(50));
    let t0 = Instant::now();
    let a = SecureEndpoint::new(config(mode, &ia, &ib, Some(addr(B))), 0xA, t0, [seed; 32]);
    let b = SecureEndpoint::new(
        config(mode, &ib, &ia, Some(addr(A))),
        0xB,
        t0,
        [seed ^ 1; 32],
    );
    // The attacker knows both public keys: it answers A whatever A's MAC1, and keys its
    // own initiation to B with B's public key, as A would.
    let face = |peer: u16, victim: &crate::Identity, epoch: u64, rng: u8| {
        let mut c = SecureConfig::new(im.clone());
        c.peer = Some(addr(peer));
        c.code = relay_code;
        c.psk = relay_passphrase.map(test_psk);
        c.trust = super::harness::pinned(victim.public());
        let mut ep = SecureEndpoint::new(c, epoch, t0, [rng; 32]);
        ep.mutation = crate::session::Mutation::AcceptAnyMac1;
        ep
    };
    (
        Relay {
            a,
            b,
            ma: face(A, &ia, 0xAA, seed ^ 2),
            mb: face(B, &ib, 0xBB, seed ^ 3),
            events_a: vec![],
            events_b: vec![],
            events_m: vec![],
            shown_a: vec![],
            shown_b: vec![],
        },
        t0,
    )
}

fn no_session_or_refused(r: &Relay, mode: Mode) {
    let refused = |events: &[SecureEvent]| {
        events.iter().any(|e| {
            matches!(
                e,
                SecureEvent::Refused { .. } | SecureEvent::RefusedByPeer { .. }
            )
        })
    };
    for (name, events) in [("A", &r.events_a), ("B", &r.events_b)] {
        assert!(
            !Relay::accepted(events) || refused(events),
            "{mode:?}: {name} accepted a session through the relay: {events:?}"
        );
    }
    assert!(
        r.shown_b.is_empty() && r.shown_a.is_empty(),
        "{mode:?}: something crossed the relay: {:?} {:?}",
        r.shown_a,
        r.shown_b
    );
}

#[test]
fn the_relay_gets_nothing_between_pinned_peers() {
    for seed in 0..5 {
        let (mut r, t0) = relay(Mode::Pinned, None, None, seed);
        r.run(t0, Duration::from_secs(3));
        no_session_or_refused(&r, Mode::Pinned);
        assert!(r.events_a.iter().any(|e| matches!(
            e,
            SecureEvent::Refused {
                reason: Refusal::KeyChanged { .. },
                ..
            }
        )));
    }
}

#[test]
fn the_relay_gets_nothing_from_a_first_contact_by_code() {
    // The relay's best strategy is to guess the code, one guess per attempt: each of A's
    // attempts and each answer B gives is one guess. A gives up after MAX_CODE_FAILURES,
    // B's invitation after MAX_CODE_ATTEMPTS.
    for seed in 0..5 {
        let guess = InviteCode::from_random([seed; 8]);
        let (mut r, t0) = relay(Mode::Code, Some(guess), None, seed);
        r.run(t0, Duration::from_secs(5));
        no_session_or_refused(&r, Mode::Code);
        assert!(
            r.events_a.iter().any(|e| matches!(
                e,
                SecureEvent::Refused {
                    reason: Refusal::CodeMismatch,
                    ..
                }
            )),
            "{:?}",
            r.events_a
        );
        let guesses = r.b.stats().code_attempts + u64::from(crate::MAX_CODE_FAILURES);
        assert!(guesses <= u64::from(crate::MAX_CODE_ATTEMPTS + crate::MAX_CODE_FAILURES));
    }
}

#[test]
fn the_relay_gets_nothing_without_the_passphrase() {
    for seed in 0..5 {
        let (mut r, t0) = relay(Mode::Passphrase, None, Some("a guess"), seed);
        r.run(t0, Duration::from_secs(3));
        no_session_or_refused(&r, Mode::Passphrase);
        assert_eq!(
            r.b.stats().handshake_responses_sent,
            0,
            "not even an answer"
        );
    }
}

#[test]
fn the_relay_is_refused_by_strangers() {
    for seed in 0..5 {
        let (mut r, t0) = relay(Mode::Strangers, None, None, seed);
        r.run(t0, Duration::from_secs(3));
        no_session_or_refused(&r, Mode::Strangers);
        assert!(r.events_a.iter().any(|e| matches!(
            e,
            SecureEvent::Refused {
                reason: Refusal::UnknownContact,
                ..
            }
        )));
    }
}

/// Teeth: a relay that knows the code does get in (whoever holds the code is trusted),
/// and the checks above notice.
#[test]
fn a_relay_that_knows_the_code_is_caught_by_the_same_check() {
    let code = super::harness::code();
    let (mut r, t0) = relay(Mode::Code, Some(code), None, 9);
    r.run(t0, Duration::from_secs(3));
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        no_session_or_refused(&r, Mode::Code);
    }));
    assert!(caught.is_err(), "the check must fail when the relay wins");
    assert!(r.shown_b.iter().any(|m| m.ends_with(b"(rewritten)")));
}
