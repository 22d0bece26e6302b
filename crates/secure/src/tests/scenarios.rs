//! Whole conversations between two endpoints: first contacts (code, passphrase), pinned
//! peers, refusals, simultaneous and staggered starts, loss, rekeys, restarts, moves.

use std::time::Duration;

use super::harness::{addr, code, config, identities, Mode, Net, Side};
use crate::wire::{TYPE_COOKIE_REPLY, TYPE_FINISH, TYPE_INITIATION, TYPE_RESPONSE};
use crate::{
    InviteCode, PeerRefusal, Refusal, SealError, SecureConfig, SecureEndpoint, SecureEvent,
    Verification, MAX_CODE_ATTEMPTS, MAX_CODE_FAILURES, RETRY_BASE,
};

fn strings(v: &[Vec<u8>]) -> Vec<String> {
    v.iter()
        .map(|b| String::from_utf8_lossy(b).into_owned())
        .collect()
}

fn verified(events: &[SecureEvent]) -> Option<(Verification, bool)> {
    events.iter().find_map(|e| match e {
        SecureEvent::Established {
            verified,
            new_contact,
            ..
        } => Some((*verified, *new_contact)),
        _ => None,
    })
}

#[test]
fn pinned_peers_connect_and_talk_with_nothing_to_compare() {
    let mut net = Net::new(Mode::Pinned, 1);
    net.connect();
    net.chat(3, "hi");
    assert_eq!(strings(&net.b.received), ["hi a0", "hi a1", "hi a2"]);
    assert_eq!(strings(&net.a.received), ["hi b0", "hi b1", "hi b2"]);
    assert_eq!(verified(&net.a.events), Some((Verification::Pinned, false)));
    assert_eq!(verified(&net.b.events), Some((Verification::Pinned, false)));
    assert_eq!(net.a.ep.peer_key(), Some(identities(1).1.public()));
    assert_eq!(net.a.ep.handshake_hash(), net.b.ep.handshake_hash());
    assert!(net.a.rejects.is_empty() && net.b.rejects.is_empty());
    // Three handshake messages, then a confirmation from the responder.
    let kinds: Vec<u8> = net.log.iter().take(3).map(|r| r.bytes[0]).collect();
    assert_eq!(kinds, [TYPE_INITIATION, TYPE_RESPONSE, TYPE_FINISH]);
}

#[test]
fn a_first_contact_by_code_pins_both_keys_and_uses_the_code_up() {
    let mut net = Net::new(Mode::Code, 2);
    net.connect();
    net.chat(2, "first");
    assert_eq!(verified(&net.a.events), Some((Verification::Code, true)));
    assert_eq!(verified(&net.b.events), Some((Verification::Code, true)));
    for p in [&net.a, &net.b] {
        assert!(!p.ep.invitation_open(), "a code is used once");
        assert!(p
            .events
            .contains(&SecureEvent::InvitationClosed { used: true }));
    }
    assert_eq!(strings(&net.b.received), ["first a0", "first a1"]);
    // A rekey after the code is gone is authenticated by the keys alone.
    net.advance(Duration::from_secs(125));
    net.chat(1, "later");
    assert_eq!(net.a.rekeyed() + net.b.rekeyed(), 2);
    assert!(net.a.refused().is_empty() && net.b.refused().is_empty());
}

#[test]
fn an_open_invitation_learns_the_peer_s_address() {
    let (ia, ib) = identities(3);
    let t0 = std::time::Instant::now();
    let a = SecureEndpoint::new(
        config(Mode::Code, &ia, &ib, Some(addr(1002))),
        1,
        t0,
        [3; 32],
    );
    let b = SecureEndpoint::new(config(Mode::Code, &ib, &ia, None), 2, t0, [4; 32]);
    let mut net = Net::with(a, b, addr(1001), addr(1002), t0);
    net.connect();
    assert_eq!(net.b.ep.peer_addr(), Some(addr(1001)));
    net.chat(1, "x");
    assert_eq!(strings(&net.b.received), ["x a0"]);
}

#[test]
fn a_first_contact_by_passphrase_pins_the_key() {
    let mut net = Net::new(Mode::Passphrase, 4);
    net.connect();
    net.chat(1, "p");
    assert_eq!(
        verified(&net.a.events),
        Some((Verification::Passphrase, true))
    );
    assert_eq!(
        verified(&net.b.events),
        Some((Verification::Passphrase, true))
    );
}

#[test]
fn strangers_are_refused_on_both_sides_and_say_why() {
    let mut net = Net::new(Mode::Strangers, 5);
    net.connect_both();
    net.advance(Duration::from_secs(3));
    for (p, other) in [(&net.a, identities(5).1), (&net.b, identities(5).0)] {
        let refused = p.refused();
        assert!(
            refused.iter().any(|e| matches!(e,
                SecureEvent::Refused { reason: Refusal::UnknownContact, key: Some(k), fatal: true, .. }
                    if *k == other.public())
                || matches!(e, SecureEvent::RefusedByPeer { reason: PeerRefusal::UnknownContact, .. })),
            "{:?}",
            p.events
        );
        assert!(p.ep.is_stopped());
        assert_eq!(p.established(), 0);
    }
    assert_eq!(net.a.ep.seal(net.now, b"x"), Err(SealError::Refused));
}

#[test]
fn a_changed_key_is_refused_never_accepted() {
    let (ia, ib) = identities(6);
    let (_, impostor) = identities(99);
    let t0 = std::time::Instant::now();
    // A pinned the real B; the one answering at B's address has another key (and has
    // pinned A, so it would happily talk).
    let a = SecureEndpoint::new(
        config(Mode::Pinned, &ia, &ib, Some(addr(1002))),
        1,
        t0,
        [6; 32],
    );
    let b = SecureEndpoint::new(
        config(Mode::Pinned, &impostor, &ia, Some(addr(1001))),
        2,
        t0,
        [7; 32],
    );
    let mut net = Net::with(a, b, addr(1001), addr(1002), t0);
    net.connect_both();
    net.advance(Duration::from_secs(3));
    assert!(
        net.a.events.iter().any(|e| matches!(e,
            SecureEvent::Refused { reason: Refusal::KeyChanged { expected }, key: Some(k), fatal: true, .. }
                if *expected == ib.public() && *k == impostor.public())),
        "{:?}",
        net.a.events
    );
    assert_eq!(net.a.established(), 0);
    assert!(net.a.received.is_empty());
    // The impostor hears why (A's close, authenticated under the refused session).
    assert!(net.b.events.iter().any(|e| matches!(
        e,
        SecureEvent::RefusedByPeer {
            reason: PeerRefusal::KeyChanged,
            ..
        }
    )));
}

#[test]
fn a_wrong_code_fails_after_a_few_attempts_with_a_clear_reason() {
    let (ia, ib) = identities(7);
    let t0 = std::time::Instant::now();
    let mut ca = config(Mode::Code, &ia, &ib, Some(addr(1002)));
    ca.code = Some(InviteCode::parse("7-ribbon-tuition").unwrap());
    let a = SecureEndpoint::new(ca, 1, t0, [7; 32]);
    let b = SecureEndpoint::new(config(Mode::Code, &ib, &ia, None), 2, t0, [8; 32]);
    let mut net = Net::with(a, b, addr(1001), addr(1002), t0);
    net.connect();
    net.advance(Duration::from_secs(5));
    assert!(net.a.events.contains(&SecureEvent::Refused {
        peer: addr(1002),
        key: None,
        reason: Refusal::CodeMismatch,
        fatal: true
    }));
    assert_eq!(net.b.established(), 0);
    assert_eq!(net.b.ep.stats().code_attempts, u64::from(MAX_CODE_FAILURES));
    assert!(
        net.b.ep.invitation_open(),
        "a few wrong guesses do not close it yet"
    );
}

#[test]
fn an_invitation_closes_after_its_attempts_and_then_nobody_gets_in() {
    let (ia, ib) = identities(8);
    let t0 = std::time::Instant::now();
    let b = SecureEndpoint::new(config(Mode::Code, &ib, &ia, None), 2, t0, [9; 32]);
    let mut net = Net::with(
        SecureEndpoint::new(SecureConfig::new(ia.clone()), 1, t0, [1; 32]),
        b,
        addr(1001),
        addr(1002),
        t0,
    );
    // Wrong guesses, each from a fresh attacker endpoint: each is one attempt.
    let mut guesses = 0;
    for i in 0..20u8 {
        let mut c = SecureConfig::new(identities(100 + i).0);
        c.code = Some(InviteCode::from_random([i; 8]));
        c.peer = Some(addr(1002));
        net.a.ep = SecureEndpoint::new(c, 1, net.now, [i; 32]);
        net.connect();
        net.advance(Duration::from_millis(200));
        guesses += 1;
        if !net.b.ep.invitation_open() {
            break;
        }
    }
    assert_eq!(u64::from(MAX_CODE_ATTEMPTS), net.b.ep.stats().code_attempts);
    assert!(guesses <= MAX_CODE_ATTEMPTS as usize);
    assert!(net
        .b
        .events
        .contains(&SecureEvent::InvitationClosed { used: false }));
    // Now even the right code is told there is no invitation.
    let mut c = config(Mode::Code, &ia, &ib, Some(addr(1002)));
    c.code = Some(code());
    net.a = super::harness::Peer {
        ep: SecureEndpoint::new(c, 1, net.now, [77; 32]),
        addr: addr(1001),
        received: vec![],
        events: vec![],
        rejects: vec![],
    };
    net.connect();
    net.advance(Duration::from_secs(1));
    assert!(
        net.a.events.iter().any(|e| matches!(
            e,
            SecureEvent::Refused {
                reason: Refusal::NoInvitation,
                ..
            }
        )),
        "{:?}",
        net.a.events
    );
    assert_eq!(net.b.established(), 0);
}

#[test]
fn a_code_for_a_peer_without_an_invitation_says_so() {
    let (ia, ib) = identities(9);
    let t0 = std::time::Instant::now();
    let a = SecureEndpoint::new(
        config(Mode::Code, &ia, &ib, Some(addr(1002))),
        1,
        t0,
        [1; 32],
    );
    let b = SecureEndpoint::new(SecureConfig::new(ib.clone()), 2, t0, [2; 32]);
    let mut net = Net::with(a, b, addr(1001), addr(1002), t0);
    net.connect();
    assert!(net.a.events.iter().any(|e| matches!(
        e,
        SecureEvent::Refused {
            reason: Refusal::NoInvitation,
            fatal: true,
            ..
        }
    )));
}

#[test]
fn simultaneous_open_makes_one_session() {
    for seed in 0..40u8 {
        for mode in [Mode::Pinned, Mode::Code, Mode::Passphrase] {
            let mut net = Net::new(mode, seed);
            net.latency = Duration::from_millis(5);
            net.connect_both();
            net.advance(Duration::from_millis(30));
            net.chat(1, "s");
            let (a, b) = (net.a.ep.stats(), net.b.ep.stats());
            assert_eq!(
                (a.handshakes_completed, b.handshakes_completed),
                (1, 1),
                "{mode:?} seed {seed}: one handshake each"
            );
            assert_eq!(net.a.ep.handshake_hash(), net.b.ep.handshake_hash());
            assert_eq!(a.collisions + b.collisions, 1, "{mode:?} seed {seed}");
            assert_eq!(strings(&net.b.received), ["s a0"]);
            assert!(
                net.a.rejects.is_empty() && net.b.rejects.is_empty(),
                "{mode:?} {:?} {:?}",
                net.a.rejects,
                net.b.rejects
            );
        }
    }
}

#[test]
fn a_late_starter_is_connected_within_two_round_trips() {
    // A starts; B is not there for 10 s (everything to B is lost); then B starts and
    // initiates at once. Whoever wins the tie-break, both have the session within two
    // round trips of B starting.
    for seed in 0..40u8 {
        let mut net = Net::new(Mode::Pinned, seed);
        let rtt = Duration::from_millis(20);
        net.latency = rtt / 2;
        let b_up = net.t0 + Duration::from_secs(10);
        net.a.ep.connect(net.now);
        // B's endpoint exists from the start but only hears and speaks once it is up.
        let up = std::rc::Rc::new(std::cell::Cell::new(false));
        let up2 = std::rc::Rc::clone(&up);
        let b_addr = net.b.addr;
        net.drop = Some(Box::new(move |to, _| *to == b_addr && !up2.get()));
        net.advance(b_up - net.now);
        up.set(true);
        net.b.ep = SecureEndpoint::new(
            config(
                Mode::Pinned,
                &identities(seed).1,
                &identities(seed).0,
                Some(net.a.addr),
            ),
            0xB0B1,
            net.now,
            [seed ^ 0x55; 32],
        );
        net.b.ep.connect(net.now);
        let took = net
            .run_until(Duration::from_secs(5), |n| {
                n.a.ep.is_established() && n.b.ep.is_established()
            })
            .unwrap_or_else(|| {
                panic!(
                    "seed {seed}: no session\nA {:?}\n{:?}\nB {:?}\n{:?}\n{:?}",
                    net.a.ep.stats(),
                    net.a.rejects,
                    net.b.ep.stats(),
                    net.b.rejects,
                    net.log
                        .iter()
                        .rev()
                        .take(12)
                        .map(|r| (r.to, r.bytes[0], r.accepted))
                        .collect::<Vec<_>>()
                )
            });
        assert!(took <= rtt * 2, "seed {seed}: {took:?}");
    }
}

#[test]
fn lost_initiations_are_retried_with_backoff_from_250ms() {
    let mut net = Net::new(Mode::Pinned, 10);
    net.drop = Some(Box::new(|_, _| true));
    net.connect();
    net.advance(Duration::from_secs(4));
    let sent = net.a.ep.stats().handshakes_initiated;
    // 0, ~0.25, ~0.75, ~1.75, ~3.75 s (plus up to a quarter of jitter each).
    assert!((4..=6).contains(&sent), "{sent}");
    net.drop = None;
    net.advance(Duration::from_secs(3));
    assert!(net.a.ep.is_established());
    assert_eq!(RETRY_BASE, Duration::from_millis(250));
}

#[test]
fn a_lost_message_3_is_sent_again_until_the_responder_is_heard() {
    let mut net = Net::new(Mode::Pinned, 11);
    let mut dropped = 0;
    net.drop = Some(Box::new(move |_, b| {
        if b[0] == TYPE_FINISH && dropped < 2 {
            dropped += 1;
            return true;
        }
        false
    }));
    net.connect();
    assert!(net.a.ep.is_established(), "the initiator may send at once");
    assert!(!net.b.ep.is_established());
    net.advance(Duration::from_secs(2));
    assert!(net.b.ep.is_established());
    net.chat(1, "ok");
    assert_eq!(strings(&net.b.received), ["ok a0"]);
}

#[test]
fn rekey_by_time_keeps_the_conversation_going() {
    let mut net = Net::new(Mode::Pinned, 12);
    net.connect();
    net.chat(2, "before");
    net.advance(Duration::from_secs(125));
    net.chat(2, "after");
    assert_eq!(net.a.rekeyed() + net.b.rekeyed(), 2);
    assert_eq!(net.b.received.len(), 4);
}

#[test]
fn rekey_by_message_count() {
    let (ia, ib) = identities(13);
    let t0 = std::time::Instant::now();
    let mut ca = config(Mode::Pinned, &ia, &ib, Some(addr(1002)));
    ca.rekey_after_messages = 5;
    let a = SecureEndpoint::new(ca, 1, t0, [1; 32]);
    let b = SecureEndpoint::new(
        config(Mode::Pinned, &ib, &ia, Some(addr(1001))),
        2,
        t0,
        [2; 32],
    );
    let mut net = Net::with(a, b, addr(1001), addr(1002), t0);
    net.connect();
    net.chat(8, "m");
    assert!(net.a.rekeyed() >= 1);
    assert_eq!(net.b.received.len(), 8);
}

#[test]
fn a_restarted_peer_is_recognised_by_its_key_with_nothing_to_compare() {
    let mut net = Net::new(Mode::Pinned, 14);
    net.connect();
    net.chat(1, "one");
    let (ia, ib) = identities(14);
    net.b.ep = SecureEndpoint::new(
        config(Mode::Pinned, &ib, &ia, Some(net.a.addr)),
        0xB0B2,
        net.now,
        [55; 32],
    );
    net.b.ep.connect(net.now);
    net.pump();
    net.chat(1, "two");
    assert!(net.a.events.iter().any(|e| matches!(
        e,
        SecureEvent::PeerRestarted {
            old_epoch: 0xB0B0,
            new_epoch: 0xB0B2,
            ..
        }
    )));
    assert!(net.a.refused().is_empty());
    assert_eq!(strings(&net.a.received), ["one b0", "two b0"]);
}

#[test]
fn a_restart_with_another_key_is_refused() {
    let mut net = Net::new(Mode::Pinned, 15);
    net.connect();
    net.chat(1, "one");
    let (ia, _) = identities(15);
    let (_, other) = identities(16);
    net.b.ep = SecureEndpoint::new(
        config(Mode::Pinned, &other, &ia, Some(net.a.addr)),
        0xB0B3,
        net.now,
        [56; 32],
    );
    net.b.ep.connect(net.now);
    net.advance(Duration::from_secs(2));
    assert!(net.a.events.iter().any(|e| matches!(
        e,
        SecureEvent::Refused {
            reason: Refusal::KeyChanged { .. },
            ..
        }
    )));
    assert!(!net
        .a
        .events
        .iter()
        .any(|e| matches!(e, SecureEvent::PeerRestarted { .. })));
}

#[test]
fn the_handshake_gives_the_first_round_trip_sample() {
    let mut net = Net::new(Mode::Pinned, 17);
    net.latency = Duration::from_millis(7);
    net.connect();
    net.advance(Duration::from_millis(50));
    let rtt = |events: &[SecureEvent]| {
        events.iter().find_map(|e| match e {
            SecureEvent::Established { rtt, .. } => *rtt,
            _ => None,
        })
    };
    assert_eq!(rtt(&net.a.events), Some(Duration::from_millis(14)));
    assert_eq!(rtt(&net.b.events), Some(Duration::from_millis(14)));
}

#[test]
fn peer_address_moves_only_on_authenticated_newest_packets() {
    let mut net = Net::new(Mode::Pinned, 18);
    net.connect();
    net.chat(2, "x");
    // B roams to a new address: its next packet authenticates from there.
    let new_b = addr(2002);
    net.b.addr = new_b;
    net.send(Side::B, b"from the new address").unwrap();
    net.pump();
    assert_eq!(net.a.ep.peer_addr(), Some(new_b));
    assert!(net.a.events.contains(&SecureEvent::PeerAddressChanged {
        old: addr(1002),
        new: new_b
    }));
    // An old packet replayed from the old address is a replay: it moves nothing.
    let old = net
        .log
        .iter()
        .find(|r| {
            r.to == Side::A && r.from == addr(1002) && r.bytes[0] == crate::wire::TYPE_TRANSPORT
        })
        .unwrap()
        .clone();
    let before = net.a.events.len();
    net.deliver(Side::A, old.from, old.bytes);
    assert_eq!(net.a.ep.peer_addr(), Some(new_b));
    assert_eq!(net.a.events.len(), before);
}

#[test]
fn an_unauthenticated_initiation_never_cancels_our_handshake() {
    // A forged initiation from B's address that would win the tie-break (lowest possible
    // ephemeral key) arrives at A while A's initiation is in flight: A answers it but
    // keeps its own, and the real handshake completes.
    let mut net = Net::new(Mode::Strangers, 19);
    // Strangers accept the open MAC1 key, so the forger can make one.
    let (ia, ib) = identities(19);
    let (aa, ba) = (net.a.addr, net.b.addr);
    let t0 = net.now;
    let mut ca = config(Mode::Code, &ia, &ib, Some(ba));
    ca.code = Some(code());
    let mut cb = config(Mode::Code, &ib, &ia, Some(aa));
    cb.code = Some(code());
    net = Net::with(
        SecureEndpoint::new(ca, 1, t0, [1; 32]),
        SecureEndpoint::new(cb, 2, t0, [2; 32]),
        aa,
        ba,
        t0,
    );
    net.a.ep.connect(net.now);
    net.drain(Side::A);
    let forged = super::forge::initiation(crate::cookie::Mac1Key::Open, &[0; 32], 42);
    let out = super::harness::inject(&mut net.a.ep, net.now, ba, &forged);
    assert!(out.result.is_ok() || out.result.is_err());
    assert!(
        net.a.ep.state_size().initiating,
        "our initiation is still there"
    );
    net.advance(Duration::from_millis(100));
    assert!(net.a.ep.is_established() && net.b.ep.is_established());
}

#[test]
fn a_spoofed_initiation_flood_delays_a_first_contact_by_at_most_a_round_trip() {
    // 1000 forged initiations per second from the real peer's address and port (the
    // forger knows the open MAC1 key of an invitation), while the peer makes its first
    // contact with the code. The responder goes under load and asks for cookies; the
    // forger never sees one; the peer does, and gets in.
    let (ia, ib) = identities(20);
    let t0 = std::time::Instant::now();
    let a = SecureEndpoint::new(
        config(Mode::Code, &ia, &ib, Some(addr(1002))),
        1,
        t0,
        [1; 32],
    );
    let b = SecureEndpoint::new(config(Mode::Code, &ib, &ia, None), 2, t0, [2; 32]);
    let mut net = Net::with(a, b, addr(1001), addr(1002), t0);
    let rtt = Duration::from_millis(10);
    net.latency = rtt / 2;
    // Two seconds of flood first, so the responder is well under load.
    let mut forged = 0u32;
    let flood = |net: &mut Net, forged: &mut u32, until: std::time::Instant| {
        while net.now < until {
            *forged += 1;
            let mut e = [0u8; 32];
            e[..4].copy_from_slice(&forged.to_le_bytes());
            e[31] = 0x40;
            let d = super::forge::initiation(crate::cookie::Mac1Key::Open, &e, *forged);
            net.deliver(Side::B, addr(1001), d);
            net.advance(Duration::from_millis(1));
        }
    };
    flood(&mut net, &mut forged, t0 + Duration::from_secs(2));
    let start = net.now;
    net.a.ep.connect(net.now);
    let mut took = None;
    while net.now < start + Duration::from_secs(1) {
        let until = net.now + Duration::from_millis(1);
        flood(&mut net, &mut forged, until);
        if took.is_none() && net.a.ep.is_established() && net.b.ep.is_established() {
            took = Some(net.now - start);
        }
    }
    let b = net.b.ep.stats().clone();
    let took = took.unwrap_or_else(|| panic!("no session under the flood: {b:?}"));
    // Without load the first contact takes two round trips; the cookie adds one.
    assert!(took <= rtt * 4, "{took:?}");
    assert!(b.cookie_replies_sent > 1500, "{b:?}");
    // After the first contact the invitation is used up: the forger's open MAC1 is no
    // longer accepted at all.
    assert!(b.rejected("bad_mac1") > 500, "{b:?}");
    // The work done: at most the load budget's worth of responses in 3 s.
    assert!(b.handshake_responses_sent <= 50 + 3 * 50 + 2, "{b:?}");
    assert_eq!(net.a.ep.stats().cookies_received, 1);
    assert!(net
        .log
        .iter()
        .any(|r| r.to == Side::A && r.bytes[0] == TYPE_COOKIE_REPLY));
}

/// A and B pinned to each other, A initiating with `cipher`.
fn net_with_cipher(cipher: crate::SessionCipher) -> Net {
    net_with_ciphers(cipher, |_| {})
}

/// The same, with B's configuration changed by `b`.
fn net_with_ciphers(cipher: crate::SessionCipher, b: impl FnOnce(&mut SecureConfig)) -> Net {
    let (ia, ib) = identities(7);
    let (aa, ba) = (addr(1001), addr(1002));
    let t0 = std::time::Instant::now();
    let mut ca = config(Mode::Pinned, &ia, &ib, Some(ba));
    ca.cipher = cipher;
    let mut cb = config(Mode::Pinned, &ib, &ia, Some(aa));
    b(&mut cb);
    let a = SecureEndpoint::new(ca, 0xA0A0, t0, [7; 32]);
    let b = SecureEndpoint::new(cb, 0xB0B0, t0, [107; 32]);
    Net::with(a, b, aa, ba, t0)
}

#[test]
fn an_initiator_that_asks_for_aes_gcm_gets_it_and_both_sides_talk() {
    let mut aes = net_with_cipher(crate::SessionCipher::AesGcm);
    aes.connect();
    aes.chat(3, "hi");
    assert_eq!(strings(&aes.b.received), ["hi a0", "hi a1", "hi a2"]);
    assert_eq!(strings(&aes.a.received), ["hi b0", "hi b1", "hi b2"]);
    let initiation = &aes.log[0].bytes;
    assert_eq!(initiation[0], TYPE_INITIATION);
    assert_eq!(
        initiation[2] & crate::wire::FLAG_AES_GCM,
        crate::wire::FLAG_AES_GCM
    );
    // The protocol name is the first thing hashed: the same keys and randomness with
    // ChaCha20-Poly1305 give another handshake.
    let mut chacha = net_with_cipher(crate::SessionCipher::ChaChaPoly);
    chacha.connect();
    chacha.chat(1, "hi");
    assert_eq!(chacha.log[0].bytes[2] & crate::wire::FLAG_AES_GCM, 0);
    assert_ne!(aes.a.ep.handshake_hash(), chacha.a.ep.handshake_hash());
    assert_eq!(aes.a.ep.handshake_hash(), aes.b.ep.handshake_hash());
}

#[test]
fn a_relay_that_changes_the_cipher_flag_gets_no_session() {
    // The attacker's best try: clear (or set) the flag on the way and make MAC1 valid
    // again (without a passphrase its key is the responder's public key, known to all).
    for cipher in [
        crate::SessionCipher::AesGcm,
        crate::SessionCipher::ChaChaPoly,
    ] {
        let mut net = net_with_cipher(cipher);
        let now = net.now;
        net.a.ep.connect(now);
        let Some(t) = net.a.ep.poll_transmit() else {
            panic!("no initiation");
        };
        let mut bytes = t.payload;
        bytes[crate::wire::initiation::FLAGS] ^= crate::wire::FLAG_AES_GCM;
        let key = identities(7).1.public();
        let mac1_end = crate::wire::initiation::MAC1;
        let mac1 = crate::cookie::mac(
            crate::cookie::Mac1Key::Static(&key).derive().as_ref(),
            &bytes[..mac1_end.start],
        );
        bytes[mac1_end].copy_from_slice(&mac1);
        let from = net.a.addr;
        net.deliver(Side::B, from, bytes);
        net.advance(Duration::from_millis(1));
        assert_eq!(net.b.established(), 0, "{cipher:?}: {:?}", net.b.events);
        assert!(!net.b.rejects.is_empty(), "{cipher:?}: rejected nothing");
    }
}

#[test]
fn a_rekey_keeps_the_session_s_cipher_whoever_starts_it() {
    // A asks for AES-GCM; B, left to itself, would choose ChaCha20-Poly1305, and it is B
    // that rekeys first (by message count): its initiation keeps AES-GCM.
    let mut net = net_with_ciphers(crate::SessionCipher::AesGcm, |b| {
        b.rekey_after_messages = 5;
    });
    net.connect();
    net.chat(8, "m");
    assert!(net.b.rekeyed() >= 1, "B never rekeyed");
    assert_eq!(net.a.received.len(), 8);
    let initiations: Vec<(Side, u8)> = net
        .log
        .iter()
        .filter(|r| r.bytes[0] == TYPE_INITIATION)
        .map(|r| (r.to, r.bytes[crate::wire::initiation::FLAGS]))
        .collect();
    assert!(
        initiations.iter().any(|(to, _)| *to == Side::A),
        "{initiations:?}"
    );
    assert!(
        initiations
            .iter()
            .all(|(_, flags)| flags & crate::wire::FLAG_AES_GCM != 0),
        "{initiations:?}"
    );
}
