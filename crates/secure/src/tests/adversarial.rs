//! What an attacker gets: nothing. Wrong passphrases and keys, every bit flip and
//! truncation of every packet, replays, reflections, garbage, floods, old versions.
//!
//! The checks are functions returning the first violation, so `teeth.rs` can run them
//! against deliberately broken endpoints and require that they fail.
//!
//! One thing differs from version 1 by design: the first message of `XX` proves nothing
//! about freshness (no timestamp), so a replayed first message may be answered (by a
//! response no larger than it, bounded per source) when the endpoint no longer
//! remembers it. It never touches a session: a handshake only completes with message 3,
//! which needs the initiator's private keys.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;

use super::forge;
use super::harness::{addr, config, expect_nothing, identities, inject, Mode, Net, Outcome, Side};
use crate::cookie::Mac1Key;
use crate::session::Mutation;
use crate::wire::{
    finish, initiation, response, Transport, OVERHEAD, TYPE_COOKIE_REPLY, TYPE_FINISH,
    TYPE_INITIATION, TYPE_RESPONSE, TYPE_TRANSPORT,
};
use crate::{Reject, SecureEndpoint, StateSize, MAX_PENDING};

fn new_net(mode: Mode, seed: u8, mutation: Mutation) -> Net {
    let mut net = Net::new(mode, seed);
    net.a.ep.mutation = mutation;
    net.b.ep.mutation = mutation;
    net
}

/// Every packet kind: a handshake, confirmations, data both ways, a rekey, more data.
fn conversation(net: &mut Net) -> Result<(), String> {
    net.connect();
    net.try_chat(3, "one")
        .map_err(|e| format!("first chat: {e}"))?;
    net.advance(Duration::from_secs(125));
    net.try_chat(3, "two")
        .map_err(|e| format!("second chat: {e}"))
}

/// Every single-bit flip, every truncation, and two extensions of a datagram. MAC2 of
/// an initiation is left alone: it is read only under load, so a flipped MAC2 makes an
/// initiation exactly as valid as the original.
fn mutations_of(d: &[u8]) -> Vec<(String, Vec<u8>)> {
    let skip = if d.first() == Some(&TYPE_INITIATION) && d.len() == initiation::LEN {
        initiation::MAC2
    } else {
        0..0
    };
    let mut out = vec![];
    for bit in 0..d.len() * 8 {
        if skip.contains(&(bit / 8)) {
            continue;
        }
        let mut m = d.to_vec();
        m[bit / 8] ^= 1 << (bit % 8);
        out.push((format!("flip of bit {bit}"), m));
    }
    for len in 0..d.len() {
        out.push((format!("truncation to {len}"), d[..len].to_vec()));
    }
    for extra in [0x00u8, 0xFF] {
        let mut m = d.to_vec();
        m.push(extra);
        out.push((format!("extension by {extra:#04x}"), m));
    }
    out
}

fn first(violations: &RefCell<Vec<String>>) -> Result<(), String> {
    let v = violations.borrow();
    match v.first() {
        Some(f) => Err(format!("{} violations, first: {f}", v.len())),
        None => Ok(()),
    }
}

/// A datagram that had no effect: no plaintext, no event, and nothing sent beyond
/// `answer_allowed` bytes (an answer to a copy of a handshake message).
fn expect_no_effect(what: &str, o: &Outcome, answer_allowed: usize) -> Result<(), String> {
    if let Ok(Some(p)) = &o.result {
        return Err(format!("{what}: delivered {} bytes", p.bytes.len()));
    }
    if o.sent_bytes > answer_allowed {
        return Err(format!("{what}: {} bytes sent in answer", o.sent_bytes));
    }
    if !o.events.is_empty() {
        return Err(format!("{what}: events {:?}", o.events));
    }
    Ok(())
}

/// Before each datagram of a conversation is delivered, every mutation of it is fed to
/// the receiver in exactly the state that is about to accept the original: each must be
/// rejected with no answer and no event, and the original must still be accepted
/// afterwards (so no rejected datagram changed the state). Returns the number of
/// mutations tried.
pub(crate) fn check_mutations(mode: Mode, mutation: Mutation) -> Result<usize, String> {
    let mut net = new_net(mode, 21, mutation);
    let violations = Rc::new(RefCell::new(Vec::new()));
    let tried = Rc::new(RefCell::new(0usize));
    let types = Rc::new(RefCell::new(std::collections::BTreeSet::new()));
    let (v, n, ty) = (violations.clone(), tried.clone(), types.clone());
    net.pre_deliver = Some(Box::new(move |ep, now, from, bytes| {
        ty.borrow_mut().insert(bytes[0]);
        for (what, m) in mutations_of(bytes) {
            *n.borrow_mut() += 1;
            let o = inject(ep, now, from, &m);
            if let Err(e) = expect_nothing(&format!("{what} of a {:#04x} packet", bytes[0]), &o) {
                v.borrow_mut().push(e);
            }
        }
    }));
    let conversation = conversation(&mut net);
    for r in &net.log {
        if !r.accepted {
            violations.borrow_mut().push(format!(
                "original {:#04x} packet of {} bytes rejected after its mutations",
                r.bytes[0],
                r.bytes.len()
            ));
        }
    }
    if let Err(e) = conversation {
        violations.borrow_mut().push(e);
    }
    if net.b.received.len() != 6 || net.a.received.len() != 6 {
        violations.borrow_mut().push("messages lost".into());
    }
    first(&violations)?;
    let expected: std::collections::BTreeSet<u8> =
        [TYPE_INITIATION, TYPE_RESPONSE, TYPE_FINISH, TYPE_TRANSPORT].into();
    if *types.borrow() != expected {
        return Err(format!(
            "mutated types {:x?}, expected {expected:x?}",
            types.borrow()
        ));
    }
    let n = *tried.borrow();
    Ok(n)
}

/// Replays every recorded datagram to its receiver: in the same session, after a rekey
/// (the conversation has one), after the sender restarted, and to a restarted receiver.
pub(crate) fn check_replays(mode: Mode, mutation: Mutation) -> Result<(), String> {
    let mut net = new_net(mode, 22, mutation);
    conversation(&mut net)?;
    let log = net.log.clone();
    let now = net.now;
    let sessions = |net: &Net| (net.a.ep.handshake_hash(), net.b.ep.handshake_hash());
    let before = sessions(&net);
    // Same session and after the rekey. A copy of the current session's message 3 gets
    // one more confirmation (a keepalive, to the peer, smaller than what came).
    for r in &log {
        let o = inject(&mut net.peer(r.to).ep, now, r.from, &r.bytes);
        let allowed = if r.bytes[0] == TYPE_FINISH {
            OVERHEAD
        } else {
            0
        };
        expect_no_effect(
            &format!("replay of a {:#04x} packet", r.bytes[0]),
            &o,
            allowed,
        )?;
        if o.result.is_ok() && r.bytes[0] == TYPE_TRANSPORT {
            return Err("a transport packet was accepted twice".into());
        }
    }
    if sessions(&net) != before {
        return Err("a replay changed a session".into());
    }
    // A restarts and connects again; then everything old is replayed to B.
    net.advance(Duration::from_secs(10));
    let (ia, ib) = identities(22);
    net.a.ep = SecureEndpoint::new(
        config(mode, &ia, &ib, Some(net.b.addr)),
        0xA9,
        net.now,
        [90; 32],
    );
    net.a.ep.mutation = mutation;
    net.connect();
    if !net
        .b
        .events
        .iter()
        .any(|e| matches!(e, crate::SecureEvent::PeerRestarted { .. }))
    {
        return Err(format!("restart not seen: {:?}", net.b.events));
    }
    let now = net.now;
    let current = net.b.ep.handshake_hash();
    for r in log.iter().filter(|r| r.to == Side::B) {
        let o = inject(&mut net.b.ep, now, r.from, &r.bytes);
        expect_no_effect(
            &format!("replay after sender restart, {:#04x}", r.bytes[0]),
            &o,
            0,
        )?;
    }
    if net.b.ep.handshake_hash() != current {
        return Err("a replay after the restart changed the session".into());
    }
    // Both restart five minutes later; the whole old conversation is replayed to them.
    // A first message they no longer remember may be answered (no larger than itself,
    // rate-limited); nothing else is.
    net.advance(Duration::from_secs(300));
    let now = net.now;
    for (side, seed) in [(Side::A, 91u8), (Side::B, 92)] {
        let (me, other, peer) = match side {
            Side::A => (&ia, &ib, net.b.addr),
            Side::B => (&ib, &ia, net.a.addr),
        };
        let mut fresh = SecureEndpoint::new(
            config(mode, me, other, Some(peer)),
            0xC0 + u64::from(seed),
            now,
            [seed; 32],
        );
        fresh.mutation = mutation;
        for r in log.iter().filter(|r| r.to == side) {
            let allowed = if r.bytes[0] == TYPE_INITIATION {
                response::LEN
            } else {
                0
            };
            let o = inject(&mut fresh, now, r.from, &r.bytes);
            expect_no_effect(
                &format!("replay to a restarted endpoint, {:#04x}", r.bytes[0]),
                &o,
                allowed,
            )?;
        }
        let state = fresh.state_size();
        if state.sessions != 0 || state.pending > MAX_PENDING || state.initiating {
            return Err(format!("restarted endpoint: {state:?}"));
        }
    }
    Ok(())
}

/// Feeds each endpoint every datagram it sent itself, as if from its peer.
pub(crate) fn check_reflection(mode: Mode) -> Result<(), String> {
    let mut net = new_net(mode, 23, Mutation::None);
    conversation(&mut net)?;
    let now = net.now;
    let log = net.log.clone();
    let hashes = (net.a.ep.handshake_hash(), net.b.ep.handshake_hash());
    for r in &log {
        let sender = match r.to {
            Side::A => Side::B,
            Side::B => Side::A,
        };
        let peer_addr = net.peer(r.to).addr;
        let o = inject(&mut net.peer(sender).ep, now, peer_addr, &r.bytes);
        // Our own first message must not be answered (it is ours: reflected), and
        // nothing else may have any effect.
        let allowed = 0;
        expect_no_effect(
            &format!("reflection of a {:#04x} packet", r.bytes[0]),
            &o,
            allowed,
        )?;
    }
    if (net.a.ep.handshake_hash(), net.b.ep.handshake_hash()) != hashes {
        return Err("a reflection changed a session".into());
    }
    Ok(())
}

/// Forged transport packets (the real receiver index, nonces at and ahead of the real
/// ones, random ciphertext) between real ones: all rejected, and every real one still
/// accepted (the RUSTSEC-2024-0011 class of bug: state advanced by a failed decryption).
pub(crate) fn check_garbage_between_valid(mutation: Mutation) -> Result<(), String> {
    let mut net = new_net(Mode::Pinned, 24, mutation);
    net.connect();
    let mut rng = ChaCha20Rng::seed_from_u64(24);
    for i in 0..20u64 {
        let now = net.now;
        let t = net
            .a
            .ep
            .seal(now, format!("real {i}").as_bytes())
            .map_err(|e| e.to_string())?;
        let h = Transport::parse(&t.payload).map_err(|e| e.to_string())?;
        for nonce in [
            h.nonce(),
            h.nonce() + 1,
            h.nonce() + 50,
            h.nonce() + 5000,
            1 << 40,
            u64::MAX - 1,
            u64::MAX,
        ] {
            let mut forged = Transport::header(h.receiver_index(), nonce).to_vec();
            let mut ct = vec![0u8; h.ciphertext().len()];
            rng.fill_bytes(&mut ct);
            forged.extend_from_slice(&ct);
            let o = inject(&mut net.b.ep, now, net.a.addr, &forged);
            expect_nothing(&format!("forged packet with nonce {nonce}"), &o)?;
        }
        match net.b.ep.handle_datagram(now, net.a.addr, &t.payload) {
            Ok(Some(p)) if p.bytes == format!("real {i}").as_bytes() => {}
            other => return Err(format!("real packet {i} after garbage: {other:?}")),
        }
    }
    Ok(())
}

#[test]
fn every_mutation_of_every_packet_is_rejected_between_pinned_peers() {
    let n = check_mutations(Mode::Pinned, Mutation::None).unwrap();
    assert!(n > 10_000, "{n} mutations");
}

#[test]
fn every_mutation_of_every_packet_is_rejected_with_a_passphrase() {
    let n = check_mutations(Mode::Passphrase, Mutation::None).unwrap();
    assert!(n > 10_000, "{n} mutations");
}

#[test]
fn replays_have_no_effect_in_session_after_rekey_and_after_restart() {
    for mode in [Mode::Pinned, Mode::Passphrase] {
        check_replays(mode, Mutation::None).unwrap();
    }
}

#[test]
fn reflected_packets_have_no_effect() {
    for mode in [Mode::Pinned, Mode::Passphrase] {
        check_reflection(mode).unwrap();
    }
}

#[test]
fn garbage_between_valid_packets_does_not_disturb_them() {
    check_garbage_between_valid(Mutation::None).unwrap();
}

#[test]
fn wrong_passphrase_gets_no_session_no_reply_and_no_state() {
    let (ia, ib) = identities(25);
    let t0 = std::time::Instant::now();
    let mut ca = config(Mode::Passphrase, &ia, &ib, Some(addr(1002)));
    ca.psk = Some(super::harness::test_psk("right horse"));
    let mut cb = config(Mode::Passphrase, &ib, &ia, Some(addr(1001)));
    cb.psk = Some(super::harness::test_psk("wrong horse"));
    let mut net = Net::with(
        SecureEndpoint::new(ca, 1, t0, [1; 32]),
        SecureEndpoint::new(cb, 2, t0, [2; 32]),
        addr(1001),
        addr(1002),
        t0,
    );
    net.connect();
    net.advance(Duration::from_secs(30));
    // B never answered: everything on the wire is A's initiations, refused at MAC1.
    assert!(net.log.len() >= 5);
    assert!(net
        .log
        .iter()
        .all(|r| r.to == Side::B && r.bytes[0] == TYPE_INITIATION));
    assert!(net.b.rejects.iter().all(|r| *r == Reject::BadMac1));
    assert_eq!(
        net.b.ep.state_size(),
        StateSize::default(),
        "no state, not even a rate-limiter entry"
    );
    assert!(net.b.events.is_empty() && net.a.events.is_empty());
    let now = net.now;
    net.b.ep.connect(now);
    net.advance(Duration::from_secs(60));
    assert!(net.log.iter().all(|r| r.bytes[0] == TYPE_INITIATION));
    for p in [&net.a, &net.b] {
        assert!(!p.ep.is_established());
        assert_eq!(p.ep.stats().handshake_responses_sent, 0);
        assert_eq!(p.ep.stats().bytes_sent_after_reject, 0);
        assert_eq!(p.ep.state_size().pending, 0);
        assert_eq!(p.ep.state_size().rate_limiter_entries, 0);
        assert!(p.received.is_empty());
    }
}

#[test]
fn an_unknown_sender_cannot_make_a_pinned_peer_do_any_work() {
    // B has pinned A: an initiation must carry MAC1 keyed by B's public key. A host that
    // knows only the addresses (and so uses the open key, or a guess) gets nothing.
    let mut net = Net::new(Mode::Pinned, 26);
    net.connect();
    let before = net.b.ep.state_size();
    let mut rng = ChaCha20Rng::seed_from_u64(26);
    let now = net.now;
    for i in 0..10_000u32 {
        let mut e = [0u8; 32];
        rng.fill_bytes(&mut e);
        let wrong = crate::PublicKey([i as u8; 32]);
        let key = if i % 2 == 0 {
            Mac1Key::Open
        } else {
            Mac1Key::Static(&wrong)
        };
        let d = forge::initiation(key, &e, i | 1);
        let from = if i % 2 == 0 {
            net.a.addr
        } else {
            addr(10_000 + (i % 50_000) as u16)
        };
        let o = inject(&mut net.b.ep, now, from, &d);
        expect_nothing("unkeyed initiation", &o).unwrap();
        assert_eq!(o.result.unwrap_err(), Reject::BadMac1);
    }
    assert_eq!(
        net.b.ep.state_size(),
        before,
        "not even a rate-limiter entry"
    );
    assert_eq!(net.b.ep.stats().handshake_responses_sent, 1);
}

#[test]
fn empty_oversize_plaintext_and_version_1_datagrams() {
    let mut net = Net::new(Mode::Pinned, 27);
    net.connect();
    let now = net.now;
    let from = net.a.addr;
    let ep = &mut net.b.ep;
    let mut old_initiation = vec![0xE1u8];
    old_initiation.extend_from_slice(&[7; 88]);
    for (bytes, code) in [
        (vec![], "too_short"),
        (vec![0u8; 65_507], "too_large"),
        (vec![TYPE_TRANSPORT; 65_507], "too_large"),
        (vec![TYPE_TRANSPORT; 1201], "too_large"),
        (vec![TYPE_TRANSPORT], "too_short"),
        (b"UC\x01\x00plaintext".to_vec(), "not_secure"),
        (old_initiation, "other_version"),
        (vec![0xE3; 60], "other_version"),
        (
            vec![TYPE_INITIATION, crate::wire::VERSION + 1, 0],
            "other_version",
        ),
        (vec![TYPE_INITIATION, crate::wire::VERSION, 0], "bad_length"),
        (vec![TYPE_FINISH, crate::wire::VERSION], "bad_length"),
    ] {
        let o = inject(ep, now, from, &bytes);
        expect_nothing(code, &o).unwrap();
        assert_eq!(o.result.unwrap_err().code(), code, "{} bytes", bytes.len());
    }
}

/// Random datagrams of every shape, from the peer's address and from elsewhere.
fn random_flood(mode: Mode, count: usize) {
    let mut net = Net::new(mode, 28);
    net.connect();
    net.chat(1, "before");
    let index = Transport::parse(&net.a.ep.seal(net.now, b"x").unwrap().payload)
        .unwrap()
        .receiver_index();
    let sessions = net.b.ep.state_size();
    let mut rng = ChaCha20Rng::seed_from_u64(28);
    let now = net.now;
    for i in 0..count {
        let r = rng.next_u32();
        let (ty, len) = match r % 10 {
            0 => (rng.next_u32() as u8, (rng.next_u32() % 1300) as usize),
            1 => (TYPE_INITIATION, initiation::LEN),
            2 => (TYPE_RESPONSE, response::LEN),
            3..=5 => (TYPE_TRANSPORT, 29 + (rng.next_u32() % 200) as usize),
            6 => (TYPE_FINISH, finish::LEN),
            7 => (TYPE_COOKIE_REPLY, crate::wire::cookie_reply::LEN),
            8 => (b'U', 25 + (rng.next_u32() % 100) as usize),
            _ => (rng.next_u32() as u8, (rng.next_u32() % 40) as usize),
        };
        let mut d = vec![0u8; len];
        rng.fill_bytes(&mut d);
        if let Some(b) = d.first_mut() {
            *b = ty;
        }
        if ty != TYPE_TRANSPORT && len > 1 && r & 0x400 != 0 {
            d[1] = crate::wire::VERSION;
        }
        if ty == TYPE_TRANSPORT && len >= 5 && r & 0x100 != 0 {
            d[1..5].copy_from_slice(&index.to_be_bytes());
        }
        let from = if r & 0x200 != 0 {
            net.a.addr
        } else {
            SocketAddr::from((
                rng.next_u32().to_be_bytes(),
                (rng.next_u32() % 65536) as u16,
            ))
        };
        let o = inject(&mut net.b.ep, now, from, &d);
        if let Err(e) = expect_nothing(&format!("random datagram {i}"), &o) {
            panic!("{e}: {}", hex::encode(&d));
        }
    }
    assert_eq!(net.b.ep.stats().rejected_total(), count as u64);
    assert_eq!(net.b.ep.stats().bytes_sent_after_reject, 0);
    assert_eq!(net.b.ep.state_size(), sessions, "state unchanged");
    net.chat(1, "after");
    assert_eq!(net.b.received.len(), 2);
}

#[test]
fn random_datagrams_get_nothing_between_pinned_peers() {
    random_flood(Mode::Pinned, 100_000);
}

#[test]
fn random_datagrams_get_nothing_with_a_passphrase() {
    random_flood(Mode::Passphrase, 100_000);
}

#[test]
fn a_flood_of_valid_initiations_is_rate_limited_and_never_amplified() {
    // Someone who knows the MAC1 key (here: an open invitation) sends 1,000 well-formed
    // initiations in one second from one address and port, each with a fresh ephemeral
    // key. Below the load threshold they are answered at the per-source rate; above it
    // they get cookie replies (smaller, no Diffie-Hellman), and nothing amplifies.
    let (ia, ib) = identities(30);
    let t0 = std::time::Instant::now();
    let mut b = SecureEndpoint::new(config(Mode::Code, &ib, &ia, None), 2, t0, [2; 32]);
    let mut rng = ChaCha20Rng::seed_from_u64(30);
    let (mut answered, mut cookies, mut limited, mut sent, mut received) = (0, 0, 0, 0, 0);
    for i in 0..1_000u32 {
        let now = t0 + Duration::from_millis(u64::from(i));
        let mut e = [0u8; 32];
        rng.fill_bytes(&mut e);
        let d = forge::initiation(Mac1Key::Open, &e, i + 1);
        let o = inject(&mut b, now, addr(1001), &d);
        received += d.len();
        sent += o.sent_bytes;
        assert!(
            o.sent_bytes <= d.len(),
            "amplified: {} for {}",
            o.sent_bytes,
            d.len()
        );
        match (&o.result, o.sent_bytes) {
            (Ok(None), n) if n == response::LEN => answered += 1,
            (Ok(None), n) if n == crate::wire::cookie_reply::LEN => cookies += 1,
            (Err(Reject::RateLimited), 0) => limited += 1,
            other => panic!("{other:?}"),
        }
        assert!(b.state_size().pending <= crate::MAX_PENDING_PER_SOURCE);
    }
    assert!(answered <= 30, "{answered} answered");
    assert!(cookies > 850, "{cookies} cookies");
    assert_eq!(answered + cookies + limited, 1_000);
    assert!(sent < received / 2, "{sent} bytes out for {received} in");
    assert!(b.stats().code_attempts <= 10);
}
