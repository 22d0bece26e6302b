//! What an attacker gets: nothing. Wrong passphrases, every bit flip and truncation of
//! every packet, replays, reflections, garbage, floods.
//!
//! The checks are functions returning the first violation, so `teeth.rs` can run them
//! against deliberately broken endpoints and require that they fail.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;

use super::forge::nnpsk0_message1;
use super::harness::{addr, config, expect_nothing, inject, test_psk, Net, Side, UNIX0};
use crate::session::Mutation;
use crate::wire::{
    InitPayload, Timestamp, TransportHeader, INITIATION_NN_LEN, INITIATION_PSK_LEN,
    REKEY_INITIATION_LEN, RESPONSE_LEN, TYPE_INITIATION, TYPE_REKEY_INITIATION, TYPE_RESPONSE,
    TYPE_TRANSPORT,
};
use crate::{Reject, SecureEndpoint, SecureEvent, StateSize, MAX_PENDING};

fn new_net(psk: bool, seed: u8, mutation: Mutation) -> Net {
    let mut net = if psk {
        Net::psk(seed)
    } else {
        Net::new(None, None, seed)
    };
    net.a.ep.mutation = mutation;
    net.b.ep.mutation = mutation;
    net
}

/// Every packet kind: handshake, keepalives, data both ways, a rekey, more data.
fn conversation(net: &mut Net) -> Result<(), String> {
    net.connect();
    net.try_chat(3, "one")
        .map_err(|e| format!("first chat: {e}"))?;
    net.advance(Duration::from_secs(125));
    net.try_chat(3, "two")
        .map_err(|e| format!("second chat: {e}"))
}

/// Every single-bit flip, every truncation, and two extensions of a datagram.
fn mutations_of(d: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut out = vec![];
    for bit in 0..d.len() * 8 {
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

/// Before each datagram of a conversation is delivered, every mutation of it is fed to
/// the receiver in exactly the state that is about to accept the original: each must be
/// rejected with no answer and no event, and the original must still be accepted
/// afterwards (so no rejected datagram changed the state). Returns the number of
/// mutations tried.
///
/// Without a passphrase the first initiation is not authenticated by design (anyone can
/// write one), so its mutations are skipped there; everything else is authenticated.
pub(crate) fn check_mutations(psk: bool, mutation: Mutation) -> Result<usize, String> {
    let mut net = new_net(psk, 21, mutation);
    let violations = Rc::new(RefCell::new(Vec::new()));
    let tried = Rc::new(RefCell::new(0usize));
    let types = Rc::new(RefCell::new(std::collections::BTreeSet::new()));
    let (v, n, ty) = (violations.clone(), tried.clone(), types.clone());
    net.pre_deliver = Some(Box::new(move |ep, now, from, bytes| {
        if !psk && bytes[0] == TYPE_INITIATION {
            return;
        }
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
    // Every authenticated packet type was covered.
    let expected: std::collections::BTreeSet<u8> = if psk {
        [TYPE_INITIATION, TYPE_RESPONSE, TYPE_TRANSPORT].into()
    } else {
        [TYPE_REKEY_INITIATION, TYPE_RESPONSE, TYPE_TRANSPORT].into()
    };
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
pub(crate) fn check_replays(psk: bool, mutation: Mutation) -> Result<(), String> {
    let mut net = new_net(psk, 22, mutation);
    conversation(&mut net)?;
    let log = net.log.clone();
    let now = net.now;
    // Same session and after the rekey.
    for r in &log {
        let o = inject(&mut net.peer(r.to).ep, now, r.from, &r.bytes);
        expect_nothing(&format!("replay of a {:#04x} packet", r.bytes[0]), &o)?;
    }
    // A restarts and connects again; then everything old is replayed to B.
    net.advance(Duration::from_secs(10));
    let unix = UNIX0 + net.now.duration_since(net.t0);
    let key = psk.then(|| test_psk("hunter2 hunter2"));
    net.a.ep = SecureEndpoint::new(
        config(key.clone(), Some(net.b.addr)),
        0xA9,
        net.now,
        unix,
        [90; 32],
    );
    net.a.ep.mutation = mutation;
    net.connect();
    if !net
        .b
        .events
        .iter()
        .any(|e| matches!(e, SecureEvent::PeerRestarted { .. }))
    {
        return Err("restart not seen".into());
    }
    let now = net.now;
    for r in log.iter().filter(|r| r.to == Side::B) {
        let o = inject(&mut net.b.ep, now, r.from, &r.bytes);
        expect_nothing(
            &format!("replay after sender restart, {:#04x}", r.bytes[0]),
            &o,
        )?;
    }
    // Both restart five minutes later; the whole old conversation is replayed to them.
    net.advance(Duration::from_secs(300));
    let unix = UNIX0 + net.now.duration_since(net.t0);
    let now = net.now;
    for (side, seed) in [(Side::A, 91u8), (Side::B, 92)] {
        let peer = net.peer(side.other()).addr;
        let mut fresh = SecureEndpoint::new(
            config(key.clone(), Some(peer)),
            0xC0 + u64::from(seed),
            now,
            unix,
            [seed; 32],
        );
        fresh.mutation = mutation;
        for r in log.iter().filter(|r| r.to == side) {
            let o = inject(&mut fresh, now, r.from, &r.bytes);
            expect_nothing(
                &format!("replay to a restarted endpoint, {:#04x}", r.bytes[0]),
                &o,
            )?;
        }
        if fresh.state_size() != StateSize::default() {
            return Err(format!(
                "restarted endpoint kept state: {:?}",
                fresh.state_size()
            ));
        }
    }
    Ok(())
}

/// Feeds each endpoint every datagram it sent itself, as if from its peer.
pub(crate) fn check_reflection(psk: bool) -> Result<(), String> {
    let mut net = new_net(psk, 23, Mutation::None);
    conversation(&mut net)?;
    let now = net.now;
    let log = net.log.clone();
    for r in &log {
        let sender = r.to.other();
        let peer_addr = net.peer(r.to).addr;
        let o = inject(&mut net.peer(sender).ep, now, peer_addr, &r.bytes);
        expect_nothing(&format!("reflection of a {:#04x} packet", r.bytes[0]), &o)?;
    }
    Ok(())
}

/// Forged transport packets (the real receiver index, nonces at and ahead of the real
/// ones, random ciphertext) between real ones: all rejected, and every real one still
/// accepted (the RUSTSEC-2024-0011 class of bug: state advanced by a failed decryption).
pub(crate) fn check_garbage_between_valid(mutation: Mutation) -> Result<(), String> {
    let mut net = new_net(true, 24, mutation);
    net.connect();
    let mut rng = ChaCha20Rng::seed_from_u64(24);
    for i in 0..20u64 {
        let now = net.now;
        let t = net
            .a
            .ep
            .seal(now, format!("real {i}").as_bytes())
            .map_err(|e| e.to_string())?;
        let h = TransportHeader::parse(&t.payload).map_err(|e| e.to_string())?;
        for nonce in [
            h.nonce,
            h.nonce + 1,
            h.nonce + 50,
            h.nonce + 5000,
            1 << 40,
            u64::MAX - 1,
            u64::MAX,
        ] {
            let mut forged = TransportHeader::write(h.receiver_index, nonce).to_vec();
            let mut ct = vec![0u8; h.ciphertext.len()];
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
fn every_mutation_of_every_packet_is_rejected_with_passphrase() {
    let n = check_mutations(true, Mutation::None).unwrap();
    assert!(n > 5_000, "{n} mutations");
}

#[test]
fn every_mutation_of_every_authenticated_packet_is_rejected_without_passphrase() {
    let n = check_mutations(false, Mutation::None).unwrap();
    assert!(n > 5_000, "{n} mutations");
}

#[test]
fn replays_are_rejected_in_session_after_rekey_and_after_restart() {
    check_replays(true, Mutation::None).unwrap();
    check_replays(false, Mutation::None).unwrap();
}

#[test]
fn reflected_packets_are_rejected() {
    check_reflection(true).unwrap();
    check_reflection(false).unwrap();
}

#[test]
fn garbage_between_valid_packets_does_not_disturb_them() {
    check_garbage_between_valid(Mutation::None).unwrap();
}

#[test]
fn wrong_passphrase_gets_no_session_no_reply_and_no_state() {
    let mut net = Net::new(
        Some(test_psk("right horse")),
        Some(test_psk("wrong horse")),
        25,
    );
    net.connect();
    net.advance(Duration::from_secs(30));
    // B never answered: everything on the wire is A's initiations.
    assert!(net.log.len() >= 5);
    assert!(net
        .log
        .iter()
        .all(|r| r.to == Side::B && r.bytes[0] == TYPE_INITIATION));
    assert!(net.b.rejects.iter().all(|r| *r == Reject::BadMac));
    assert_eq!(
        net.b.ep.state_size(),
        StateSize::default(),
        "no state, not even a rate-limiter entry"
    );
    assert!(net.b.events.is_empty() && net.a.events.is_empty());
    // Now both try, for a minute: still nothing but initiations, both ways refused.
    let now = net.now;
    net.b.ep.connect(now);
    net.advance(Duration::from_secs(60));
    assert!(net.log.iter().all(|r| r.bytes[0] == TYPE_INITIATION));
    assert!(net.a.rejects.iter().all(|r| *r == Reject::BadMac) && !net.a.rejects.is_empty());
    assert!(!net.a.ep.is_established() && !net.b.ep.is_established());
    for p in [&net.a, &net.b] {
        assert_eq!(p.ep.stats().handshake_responses_sent, 0);
        assert_eq!(p.ep.stats().bytes_sent_after_reject, 0);
        assert_eq!(p.ep.state_size().pending, 0);
        assert_eq!(p.ep.state_size().sessions, 0);
        assert_eq!(p.ep.state_size().rate_limiter_entries, 0);
        assert!(p.received.is_empty());
    }
    // The right passphrase on both sides works (the control).
    let mut ok = Net::psk(25);
    ok.connect();
    assert!(ok.a.ep.is_established() && ok.b.ep.is_established());
}

#[test]
fn empty_oversize_and_plaintext_datagrams() {
    let mut net = Net::psk(26);
    net.connect();
    let now = net.now;
    let from = net.a.addr;
    let ep = &mut net.b.ep;
    for (bytes, code) in [
        (vec![], "too_short"),
        (vec![0u8; 65_507], "too_large"),
        (vec![TYPE_TRANSPORT; 65_507], "too_large"),
        (vec![TYPE_TRANSPORT; 1201], "too_large"),
        (vec![TYPE_TRANSPORT], "too_short"),
        (b"UC\x01\x00plaintext".to_vec(), "not_secure"),
    ] {
        let o = inject(ep, now, from, &bytes);
        expect_nothing(code, &o).unwrap();
        assert_eq!(o.result.unwrap_err().code(), code, "{} bytes", bytes.len());
    }
}

/// Random datagrams of every shape, from the peer's address and from elsewhere.
fn random_flood(psk: bool, count: usize) {
    let mut net = new_net(psk, 27, Mutation::None);
    net.connect();
    net.chat(1, "before");
    let index = TransportHeader::parse(&net.a.ep.seal(net.now, b"x").unwrap().payload)
        .unwrap()
        .receiver_index;
    let sessions = net.b.ep.state_size();
    let mut rng = ChaCha20Rng::seed_from_u64(27);
    let now = net.now;
    for i in 0..count {
        let r = rng.next_u32();
        let (ty, len) = match r % 10 {
            0 => (rng.next_u32() as u8, (rng.next_u32() % 1300) as usize),
            1 => (
                TYPE_INITIATION,
                if psk {
                    INITIATION_PSK_LEN
                } else {
                    INITIATION_NN_LEN
                },
            ),
            2 => (TYPE_RESPONSE, RESPONSE_LEN),
            3..=6 => (TYPE_TRANSPORT, 29 + (rng.next_u32() % 200) as usize),
            7 => (TYPE_REKEY_INITIATION, REKEY_INITIATION_LEN),
            8 => (b'U', 25 + (rng.next_u32() % 100) as usize),
            _ => (rng.next_u32() as u8, (rng.next_u32() % 40) as usize),
        };
        let mut d = vec![0u8; len];
        rng.fill_bytes(&mut d);
        if let Some(b) = d.first_mut() {
            *b = ty;
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
fn random_datagrams_get_nothing_with_passphrase() {
    random_flood(true, 100_000);
}

#[test]
fn random_datagrams_get_nothing_without_passphrase() {
    random_flood(false, 100_000);
}

/// A plausible initiation payload, fresh by the receiver's clock.
fn payload(rng: &mut ChaCha20Rng, secs: u64) -> [u8; 40] {
    InitPayload {
        sender_index: rng.next_u32() | 1,
        epoch: rng.next_u64() | 1,
        timestamp: Timestamp {
            secs,
            nanos: rng.next_u32() % 1_000_000_000,
        },
    }
    .encode()
}

#[test]
fn ten_thousand_wrong_key_initiations_get_nothing() {
    let mut rng = ChaCha20Rng::seed_from_u64(28);
    // With a passphrase: initiations under other keys, fresh timestamps, from anywhere.
    let mut net = new_net(true, 28, Mutation::None);
    net.connect();
    let before = net.b.ep.state_size();
    let now = net.now;
    let secs = UNIX0.as_secs() + 1;
    for i in 0..10_000 {
        let mut key = [0u8; 32];
        rng.fill_bytes(&mut key);
        let mut e = [0u8; 32];
        rng.fill_bytes(&mut e);
        let mut d = vec![TYPE_INITIATION];
        d.extend(nnpsk0_message1(
            &key,
            TYPE_INITIATION,
            &e,
            &payload(&mut rng, secs),
        ));
        assert_eq!(d.len(), INITIATION_PSK_LEN);
        let from = if i % 2 == 0 {
            net.a.addr
        } else {
            addr(10_000 + (i % 50_000) as u16)
        };
        let o = inject(&mut net.b.ep, now, from, &d);
        expect_nothing("wrong-key initiation", &o).unwrap();
        assert_eq!(o.result.unwrap_err(), Reject::BadMac);
    }
    assert_eq!(
        net.b.ep.state_size(),
        before,
        "not even a rate-limiter entry"
    );

    // Without a passphrase: rekey initiations for the live session, under wrong chain keys.
    let mut net = new_net(false, 29, Mutation::None);
    net.connect();
    let before = net.b.ep.state_size();
    let b_index = TransportHeader::parse(&net.a.ep.seal(net.now, b"x").unwrap().payload)
        .unwrap()
        .receiver_index;
    let now = net.now;
    for _ in 0..2_000 {
        let mut key = [0u8; 32];
        rng.fill_bytes(&mut key);
        let mut e = [0u8; 32];
        rng.fill_bytes(&mut e);
        let mut d = vec![TYPE_REKEY_INITIATION];
        d.extend_from_slice(&b_index.to_be_bytes());
        d.extend(nnpsk0_message1(
            &key,
            TYPE_REKEY_INITIATION,
            &e,
            &payload(&mut rng, secs),
        ));
        let o = inject(&mut net.b.ep, now, net.a.addr, &d);
        expect_nothing("wrong-key rekey initiation", &o).unwrap();
        assert_eq!(o.result.unwrap_err(), Reject::BadMac);
    }
    assert_eq!(net.b.ep.state_size(), before);
}

#[test]
fn a_flood_of_valid_initiations_is_rate_limited_and_never_amplified() {
    let psk = test_psk("hunter2 hunter2");
    let mut rng = ChaCha20Rng::seed_from_u64(30);
    let mut net = new_net(true, 30, Mutation::None);
    let (mut answered, mut limited, mut sent, mut received) = (0, 0, 0, 0);
    // 1,000 valid initiations (a passphrase holder misbehaving) from one address in one
    // second: the burst of 5 plus 20/s are answered, the rest get nothing.
    for i in 0..1_000u64 {
        let now = net.t0 + Duration::from_millis(i);
        let mut e = [0u8; 32];
        rng.fill_bytes(&mut e);
        let secs = UNIX0.as_secs() + 1 + i;
        let mut d = vec![TYPE_INITIATION];
        d.extend(nnpsk0_message1(
            psk.as_bytes(),
            TYPE_INITIATION,
            &e,
            &payload(&mut rng, secs),
        ));
        let o = inject(&mut net.b.ep, now, net.a.addr, &d);
        received += d.len();
        sent += o.sent_bytes;
        match o.result {
            Ok(None) => {
                answered += 1;
                assert_eq!(o.sent_bytes, RESPONSE_LEN);
                assert!(o.sent_bytes <= d.len());
            }
            Err(Reject::RateLimited) => {
                limited += 1;
                assert_eq!(o.sent_bytes, 0);
            }
            other => panic!("{other:?}"),
        }
        assert!(net.b.ep.state_size().pending <= MAX_PENDING);
    }
    assert!((24..=26).contains(&answered), "{answered} answered");
    assert_eq!(answered + limited, 1_000);
    assert!(sent < received / 30, "{sent} bytes out for {received} in");
    assert_eq!(net.b.ep.state_size().rate_limiter_entries, 1);
}

#[test]
fn an_old_initiation_replayed_after_a_newer_one_is_stale() {
    let mut net = Net::psk(31);
    net.connect();
    let old = net.log[0].clone();
    net.advance(Duration::from_secs(125)); // a rekey: a newer initiation was confirmed
    let now = net.now;
    let o = inject(&mut net.b.ep, now, old.from, &old.bytes);
    expect_nothing("old initiation", &o).unwrap();
    assert_eq!(o.result.unwrap_err(), Reject::StaleHandshake);
}

#[test]
fn an_initiation_that_lost_a_simultaneous_open_is_stale_when_replayed_from_anywhere() {
    for seed in 0..8u8 {
        let key = test_psk("same");
        let mut net = Net::new(Some(key.clone()), Some(key), 40 + seed);
        let now = net.now;
        net.a.ep.connect(now);
        net.b.ep.connect(now);
        net.pump();
        net.chat(1, "x");
        let initiations: Vec<_> = net
            .log
            .iter()
            .filter(|d| d.bytes[0] == crate::wire::TYPE_INITIATION)
            .cloned()
            .collect();
        assert_eq!(initiations.len(), 2, "seed {seed}: both sides initiated");
        for d in &initiations {
            for from in [d.from, addr(9999)] {
                for side in [Side::A, Side::B] {
                    let now = net.now;
                    let o = inject(&mut net.peer(side).ep, now, from, &d.bytes);
                    expect_nothing(&format!("seed {seed}: initiation replay"), &o).unwrap();
                }
            }
        }
    }
}

#[test]
fn without_passphrase_initiations_from_strangers_are_refused() {
    let mut net = Net::new(None, None, 32);
    net.connect();
    let init = net.log[0].bytes.clone();
    let now = net.now;
    let o = inject(&mut net.b.ep, now, addr(4444), &init);
    expect_nothing("initiation from a stranger", &o).unwrap();
    assert_eq!(o.result.unwrap_err(), Reject::UnknownSource);
}
