//! Nobody reads or injects messages without the key, shown against running `udpchat`
//! processes through real sockets.
//!
//! Two chats, A and B, talk through a relay in this test process that records every
//! datagram, as someone on the path would. Then the test attacks: every single-bit flip
//! and every truncation of every recorded packet, replays (in the same session, after a
//! rekey, after a restart), reflection of a peer's own packets, a spoofed source
//! replaying valid packets, 0-byte and 65,507-byte datagrams, 100,000 random datagrams
//! and 10,000 handshakes under a wrong key. Nothing may be shown, the conversation must
//! go on, not one byte may be sent to the attacker, and memory must stay flat.

// Test support: a panic with the captured output is the right way to fail here.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{free_port, Proc};
use rand::{Rng, SeedableRng};
use udpchat_secure::{derive_psk_with, KdfParams, SecureConfig, SecureEndpoint};

const PASSPHRASE: &str = "correct horse battery staple";

/// A file holding `passphrase`, unique to this test.
fn secret_file(name: &str, passphrase: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("udpchat-security-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, format!("{passphrase}\n")).unwrap();
    path
}

fn localhost(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// Starts a chat on `port` talking to `peer`, with extra arguments.
fn chat(name: &str, port: u16, peer: SocketAddr, extra: &[&str]) -> Proc {
    let peer = peer.to_string();
    let port = port.to_string();
    let mut args = vec![
        peer.as_str(),
        "--port",
        &port,
        "--json",
        "--timeout",
        "100ms",
    ];
    args.extend_from_slice(extra);
    Proc::spawn(name, &args)
}

/// Which way a recorded datagram went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Dir {
    AtoB,
    BtoA,
}

/// Every datagram the relay forwarded, in order, with its direction.
type Recording = Arc<Mutex<Vec<(Dir, Vec<u8>)>>>;

/// The man in the middle: forwards between A and B and records everything.
struct Relay {
    /// A talks to this socket (A's PEER).
    for_a: UdpSocket,
    /// B talks to this socket (B's PEER).
    for_b: UdpSocket,
    recorded: Recording,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Relay {
    fn new(a_port: u16, b_port: u16) -> Self {
        let for_a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let for_b = UdpSocket::bind("127.0.0.1:0").unwrap();
        let recorded = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        for (from_sock, to_sock, to, dir) in [
            (&for_a, &for_b, localhost(b_port), Dir::AtoB),
            (&for_b, &for_a, localhost(a_port), Dir::BtoA),
        ] {
            let rx = from_sock.try_clone().unwrap();
            rx.set_read_timeout(Some(Duration::from_millis(50)))
                .unwrap();
            let tx = to_sock.try_clone().unwrap();
            let recorded = Arc::clone(&recorded);
            let stop = Arc::clone(&stop);
            threads.push(std::thread::spawn(move || {
                let mut buf = vec![0u8; 65_536];
                while !stop.load(Ordering::Relaxed) {
                    let Ok((n, _)) = rx.recv_from(&mut buf) else {
                        continue;
                    };
                    recorded.lock().unwrap().push((dir, buf[..n].to_vec()));
                    let _ = tx.send_to(&buf[..n], to);
                }
            }));
        }
        Self {
            for_a,
            for_b,
            recorded,
            stop,
            threads,
        }
    }

    fn addr_for_a(&self) -> SocketAddr {
        self.for_a.local_addr().unwrap()
    }

    fn addr_for_b(&self) -> SocketAddr {
        self.for_b.local_addr().unwrap()
    }

    /// Everything recorded in one direction so far.
    fn recorded(&self, dir: Dir) -> Vec<Vec<u8>> {
        self.recorded
            .lock()
            .unwrap()
            .iter()
            .filter(|(d, _)| *d == dir)
            .map(|(_, b)| b.clone())
            .collect()
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// A socket at an address neither chat knows, that must never be answered.
struct Attacker {
    socket: UdpSocket,
    sent: u64,
}

impl Attacker {
    fn new() -> Self {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket.set_nonblocking(true).unwrap();
        Self { socket, sent: 0 }
    }

    /// Sends, pacing itself so the target's receive buffer is not what drops the flood.
    fn send(&mut self, bytes: &[u8], to: SocketAddr) {
        loop {
            match self.socket.send_to(bytes, to) {
                Ok(_) => break,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err(e) => panic!("send_to {to}: {e}"),
            }
        }
        self.sent += 1;
        if self.sent % 256 == 0 {
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Fails if anything at all arrived for the attacker.
    fn assert_unanswered(&self, what: &str) {
        let mut buf = vec![0u8; 65_536];
        match self.socket.recv_from(&mut buf) {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Ok((n, from)) => panic!("{what}: {n} bytes came back from {from}"),
            Err(e) => panic!("{what}: recv: {e}"),
        }
    }
}

/// Resident memory of a process in KiB (Linux), if it can be read.
fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn received(p: &Proc) -> Vec<String> {
    p.received()
}

/// Waits until `p` has shown `expected` messages, then checks it showed exactly those.
fn expect_received(p: &Proc, expected: &[&str]) {
    p.wait_until(&format!("{} messages", expected.len()), |ev| {
        ev.iter().filter(|e| e["event"] == "received").count() >= expected.len()
    });
    assert_eq!(received(p), expected, "{}", p.dump());
}

/// Lets the chats work through what was sent.
fn settle() {
    std::thread::sleep(Duration::from_millis(500));
}

/// Every datagram that differs from `d` in exactly one bit, then every proper prefix.
fn flips_and_truncations(d: &[u8]) -> impl Iterator<Item = Vec<u8>> + '_ {
    let flips = (0..d.len() * 8).map(move |bit| {
        let mut m = d.to_vec();
        m[bit / 8] ^= 1 << (bit % 8);
        m
    });
    let cuts = (0..d.len()).map(move |len| d[..len].to_vec());
    flips.chain(cuts)
}

fn unix_now() -> Duration {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap()
}

#[test]
fn wrong_passphrase_gets_nothing_and_the_right_one_chats() {
    let (pa, pb) = (free_port(), free_port());
    let right = secret_file("right", PASSPHRASE);
    let wrong = secret_file("wrong", "tr0ub4dor&3 is not the passphrase");
    let right = right.to_str().unwrap();
    let wrong = wrong.to_str().unwrap();
    // Each side's messages fail after a few seconds of unanswered handshakes.
    let quick_failure = ["--max-retries", "4", "--secret-file"];
    let mut a = chat(
        "A",
        pa,
        localhost(pb),
        &[&quick_failure[..], &[right]].concat(),
    );
    let mut b = chat(
        "B",
        pb,
        localhost(pa),
        &[&quick_failure[..], &[wrong]].concat(),
    );
    a.write_lines(["for B's eyes only"]);
    b.write_lines(["for A's eyes only"]);
    a.close_stdin();
    b.close_stdin();
    assert_eq!(a.wait_exit().code(), Some(1), "{}", a.dump());
    assert_eq!(b.wait_exit().code(), Some(1), "{}", b.dump());
    for (p, text) in [(&a, "for B's eyes only"), (&b, "for A's eyes only")] {
        assert!(received(p).is_empty(), "{}", p.dump());
        assert!(p.events_named("encrypted").is_empty(), "{}", p.dump());
        // Reported failed with its text: nothing typed is lost silently.
        let failed = p.events_named("failed");
        assert_eq!(failed.len(), 1, "{}", p.dump());
        assert_eq!(failed[0]["text"], text);
        let exit = p.exit_event();
        assert_eq!(exit["pending_handshakes"], 0, "no state kept: {exit}");
        assert!(exit["rejected"].as_u64().unwrap() > 0, "{exit}");
        assert!(p
            .events_named("rejected")
            .iter()
            .all(|e| e["reason"] == "bad_mac"));
    }

    // A wrong-key handshake from a third address gets no reply at all.
    let mut b = chat("B", pb, localhost(pa), &["--secret-file", right]);
    b.started();
    let attacker = Attacker::new();
    let psk = derive_psk_with(b"guess", None, KdfParams::INSECURE_TEST_ONLY).unwrap();
    let config = SecureConfig {
        psk: Some(psk),
        peer: Some(localhost(pb)),
        ..SecureConfig::default()
    };
    let mut forger = SecureEndpoint::new(config, 7, Instant::now(), unix_now(), [7; 32]);
    forger.connect(Instant::now());
    let initiation = forger.poll_transmit().unwrap();
    attacker
        .socket
        .send_to(&initiation.payload, localhost(pb))
        .unwrap();
    b.wait_event("the rejection", |e| e["event"] == "rejected");
    settle();
    attacker.assert_unanswered("wrong-key handshake");

    // The right passphrase: chat works both ways.
    let mut a = chat("A", pa, localhost(pb), &["--secret-file", right]);
    a.write_lines(["hello B"]);
    b.write_lines(["hello A"]);
    expect_received(&b, &["hello B"]);
    expect_received(&a, &["hello A"]);
    let encrypted = a.wait_event("encrypted", |e| e["event"] == "encrypted");
    assert_eq!(encrypted["mode"], "passphrase");
    assert_eq!(encrypted["code"], serde_json::Value::Null);
    a.close_stdin();
    b.close_stdin();
    assert!(a.wait_exit().success(), "{}", a.dump());
    assert!(b.wait_exit().success(), "{}", b.dump());
}

#[test]
fn without_a_passphrase_both_sides_show_the_same_code() {
    let (pa, pb) = (free_port(), free_port());
    let mut a = chat("A", pa, localhost(pb), &[]);
    let mut b = chat("B", pb, localhost(pa), &[]);
    let code_a = a.wait_event("encrypted", |e| e["event"] == "encrypted");
    let code_b = b.wait_event("encrypted", |e| e["event"] == "encrypted");
    assert_eq!(code_a["mode"], "compare_code");
    let code = code_a["code"].as_str().unwrap();
    assert_eq!(code.len(), 15, "12 digits in groups of three: {code}");
    assert_eq!(code_a["code"], code_b["code"]);
    a.close_stdin();
    b.close_stdin();
    assert!(a.wait_exit().success(), "{}", a.dump());
    assert!(b.wait_exit().success(), "{}", b.dump());
}

#[test]
fn hostile_datagrams_show_nothing_get_no_answer_and_leave_memory_flat() {
    let started = Instant::now();
    let (pa, pb) = (free_port(), free_port());
    let relay = Relay::new(pa, pb);
    let secret = secret_file("hostile", PASSPHRASE);
    let secret = secret.to_str().unwrap();
    let mut a = chat("A", pa, relay.addr_for_a(), &["--secret-file", secret]);
    let mut b = chat("B", pb, relay.addr_for_b(), &["--secret-file", secret]);
    let (to_a, to_b) = (localhost(pa), localhost(pb));

    let a_lines: Vec<String> = (0..5).map(|i| format!("from A {i}")).collect();
    let b_lines: Vec<String> = (0..5).map(|i| format!("from B {i}")).collect();
    a.write_lines(&a_lines);
    b.write_lines(&b_lines);
    let a_expected: Vec<&str> = b_lines.iter().map(String::as_str).collect();
    let b_expected: Vec<&str> = a_lines.iter().map(String::as_str).collect();
    expect_received(&a, &a_expected);
    expect_received(&b, &b_expected);
    settle();
    let to_b_recorded = relay.recorded(Dir::AtoB);
    let to_a_recorded = relay.recorded(Dir::BtoA);
    assert!(to_b_recorded.len() >= 3, "handshake and data recorded");
    let rss_before = rss_kib(b.pid());

    let mut attacker = Attacker::new();
    // Every single-bit flip and every truncation of every recorded packet, both ways.
    for d in &to_b_recorded {
        for m in flips_and_truncations(d) {
            attacker.send(&m, to_b);
        }
    }
    for d in &to_a_recorded {
        for m in flips_and_truncations(d) {
            attacker.send(&m, to_a);
        }
    }
    let mutations = attacker.sent;
    // Replays of every recorded packet, from the spoofed source and from the relay's
    // own address (the one each chat believes is its peer), and reflections: each
    // chat's own packets sent back to it.
    for d in &to_b_recorded {
        attacker.send(d, to_b);
        relay.for_b.send_to(d, to_b).unwrap();
        relay.for_a.send_to(d, to_a).unwrap();
    }
    for d in &to_a_recorded {
        attacker.send(d, to_a);
        relay.for_a.send_to(d, to_a).unwrap();
        relay.for_b.send_to(d, to_b).unwrap();
    }
    // The smallest and the largest datagrams.
    attacker.send(&[], to_b);
    attacker.send(&vec![0xE3; 65_507], to_b);
    attacker.send(&vec![0x55; 65_507], to_b);
    settle();
    attacker.assert_unanswered("mutations, replays and extremes");

    // 100,000 random datagrams, many shaped like real packet types and sizes.
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x5ec);
    let shapes: [(u8, usize); 4] = [(0xE1, 89), (0xE2, 65), (0xE3, 29 + 60), (0xE4, 93)];
    let random_from = attacker.sent;
    for i in 0..100_000 {
        let bytes = if i % 2 == 0 {
            let (kind, len) = shapes[rng.random_range(0..shapes.len())];
            let mut b = vec![0u8; len];
            rng.fill(&mut b[..]);
            b[0] = kind;
            b
        } else {
            let mut b = vec![0u8; rng.random_range(0..1300)];
            rng.fill(&mut b[..]);
            b
        };
        attacker.send(&bytes, to_b);
    }
    let random = attacker.sent - random_from;
    // 10,000 handshakes under a wrong key, each fresh (new key, new timestamp).
    let wrong =
        derive_psk_with(b"not the passphrase", None, KdfParams::INSECURE_TEST_ONLY).unwrap();
    let now = Instant::now();
    for i in 0..10_000u32 {
        let config = SecureConfig {
            psk: Some(wrong.clone()),
            peer: Some(to_b),
            ..SecureConfig::default()
        };
        let mut seed = [0u8; 32];
        seed[..4].copy_from_slice(&i.to_be_bytes());
        let unix = unix_now() + Duration::from_millis(u64::from(i));
        let mut forger = SecureEndpoint::new(config, u64::from(i) + 1, now, unix, seed);
        forger.connect(now);
        let initiation = forger.poll_transmit().unwrap();
        attacker.send(&initiation.payload, to_b);
    }
    settle();
    attacker.assert_unanswered("random datagrams and wrong-key handshakes");
    let rss_after = rss_kib(b.pid());

    // The conversation goes on, and nothing else was ever shown.
    a.write_lines(["after the storm"]);
    b.write_lines(["still here"]);
    let mut b_expected = b_expected.clone();
    b_expected.push("after the storm");
    let mut a_expected = a_expected.clone();
    a_expected.push("still here");
    expect_received(&b, &b_expected);
    expect_received(&a, &a_expected);
    assert!(b.events_named("peer_moved").is_empty(), "{}", b.dump());
    assert!(a.events_named("peer_moved").is_empty(), "{}", a.dump());
    a.close_stdin();
    b.close_stdin();
    assert!(a.wait_exit().success(), "{}", a.dump());
    assert!(b.wait_exit().success(), "{}", b.dump());
    assert_eq!(received(&b), b_expected);
    assert_eq!(received(&a), a_expected);
    attacker.assert_unanswered("the whole run");

    // Every hostile datagram reached B and was counted (a few may have been lost in
    // the socket buffer under the flood, which is the kernel's doing).
    let rejected_b = b.exit_event()["rejected"].as_u64().unwrap();
    let aimed_at_b = random + 10_000;
    assert!(
        rejected_b >= aimed_at_b * 95 / 100,
        "B rejected {rejected_b} of at least {aimed_at_b}\n{}",
        b.dump()
    );
    assert_eq!(b.exit_event()["pending_handshakes"], 0);
    eprintln!(
        "{mutations} mutations, {random} random datagrams, 10000 wrong-key handshakes; B rejected {rejected_b}; {:.1} s",
        started.elapsed().as_secs_f64()
    );
    match (rss_before, rss_after) {
        (Some(before), Some(after)) => {
            eprintln!("B's resident memory: {before} KiB before, {after} KiB after");
            assert!(
                after < before + 1024,
                "memory grew by {} KiB",
                after.saturating_sub(before)
            );
        }
        _ => eprintln!("no /proc/PID/status here: memory growth not measured"),
    }
}

#[test]
fn replays_after_a_rekey_and_after_a_restart_are_refused() {
    let (pa, pb) = (free_port(), free_port());
    let relay = Relay::new(pa, pb);
    let secret = secret_file("rekey", PASSPHRASE);
    let secret = secret.to_str().unwrap();
    let args = ["--secret-file", secret, "--rekey-after", "1s"];
    let mut a = chat("A", pa, relay.addr_for_a(), &args);
    let mut b = chat("B", pb, relay.addr_for_b(), &args);
    let to_b = localhost(pb);
    a.write_lines(["before the rekey"]);
    expect_received(&b, &["before the rekey"]);
    let first_session = relay.recorded(Dir::AtoB);

    // Wait for both sides to renew their keys, and use the new session.
    a.wait_event("a rekey", |e| e["event"] == "rekeyed");
    b.wait_event("a rekey", |e| e["event"] == "rekeyed");
    a.write_lines(["after the rekey"]);
    expect_received(&b, &["before the rekey", "after the rekey"]);
    for d in &first_session {
        relay.for_b.send_to(d, to_b).unwrap();
    }
    settle();
    assert_eq!(received(&b), ["before the rekey", "after the rekey"]);

    // A restarts on the same port; everything the old run sent is now stale.
    let old_run = relay.recorded(Dir::AtoB);
    a.kill();
    let mut a = chat("A2", pa, relay.addr_for_a(), &args);
    a.write_lines(["after the restart"]);
    expect_received(
        &b,
        &["before the rekey", "after the rekey", "after the restart"],
    );
    let rejected_before = b.events_named("rejected").len();
    for d in &old_run {
        relay.for_b.send_to(d, to_b).unwrap();
    }
    settle();
    b.write_lines(["to the new A"]);
    expect_received(&a, &["to the new A"]);
    assert_eq!(
        received(&b),
        ["before the rekey", "after the rekey", "after the restart"],
        "{}",
        b.dump()
    );
    assert!(
        b.events_named("rejected").len() > rejected_before,
        "the old run's packets were rejected: {}",
        b.dump()
    );
    a.close_stdin();
    b.close_stdin();
    assert!(a.wait_exit().success(), "{}", a.dump());
    assert!(b.wait_exit().success(), "{}", b.dump());
}

#[test]
fn a_clear_text_peer_and_an_encrypted_one_are_told_why_nothing_connects() {
    let (pa, pb) = (free_port(), free_port());
    let quick = ["--max-retries", "2"];
    let mut a = chat(
        "A",
        pa,
        localhost(pb),
        &[&quick[..], &["--plaintext"]].concat(),
    );
    let mut b = chat("B", pb, localhost(pa), &quick);
    a.write_lines(["in the clear"]);
    b.write_lines(["encrypted"]);
    let hint = |p: &Proc, words: &'static str| {
        p.wait_event(words, move |e| {
            e["event"] == "warning" && e["message"].as_str().is_some_and(|m| m.contains(words))
        })
    };
    hint(&a, "the peer sends encrypted datagrams");
    hint(&b, "the peer sends unencrypted datagrams");
    a.close_stdin();
    b.close_stdin();
    assert_eq!(a.wait_exit().code(), Some(1), "{}", a.dump());
    assert_eq!(b.wait_exit().code(), Some(1), "{}", b.dump());
    assert!(received(&a).is_empty() && received(&b).is_empty());
    for p in [&a, &b] {
        let hints = p
            .events_named("warning")
            .iter()
            .filter(|e| {
                e["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("the peer sends"))
            })
            .count();
        assert_eq!(hints, 1, "said once: {}", p.dump());
    }
}
