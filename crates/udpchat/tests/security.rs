//! You talk to the person whose key you pinned, and nobody reads or injects messages,
//! shown against running `udpchat` processes through real sockets.
//!
//! First contacts (an invitation code, a passphrase), restarts that need nothing
//! compared, a changed key refused, strangers told what to do, and a man in the middle
//! who answers both sides and guesses the code. Then two chats talk through a relay in
//! this test process that records every datagram, as someone on the path would, and the
//! test attacks: every single-bit flip and every truncation of every recorded packet,
//! replays (in the same session, after a rekey, after a restart), reflection of a peer's
//! own packets, a spoofed source replaying valid packets, 0-byte and 65,507-byte
//! datagrams, 100,000 random datagrams and 10,000 handshakes under a wrong key. Nothing
//! may be shown, the conversation must go on, not one byte may be sent to the attacker,
//! and memory must stay flat.

// Test support: a panic with the captured output is the right way to fail here.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::{free_port, identity, localhost, temp_home, Proc};
use rand::{Rng, SeedableRng};
use udpchat_secure::{
    derive_psk_with, Identity, InviteCode, KdfParams, SecureConfig, SecureEndpoint,
};

const PASSPHRASE: &str = "correct horse battery staple";

/// A file holding `passphrase`, unique to this test.
fn secret_file(name: &str, passphrase: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("udpchat-security-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, format!("{passphrase}\n")).unwrap();
    path
}

/// Starts a chat on `port` talking to `peer`, with a short timeout and extra arguments.
fn chat(name: &str, port: u16, peer: SocketAddr, extra: &[&str]) -> Proc {
    let mut args = vec!["--timeout", "100ms"];
    args.extend_from_slice(extra);
    Proc::chat(name, port, peer, &args)
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
        if self.sent.is_multiple_of(256) {
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Fails if anything at all arrived for the attacker.
    fn assert_unanswered(&self, what: &str) {
        let mut buf = vec![0u8; 65_536];
        match self.socket.recv_from(&mut buf) {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Ok((n, from)) => panic!(
                "{what}: {n} bytes came back from {from}, type {:#04x}",
                buf[0]
            ),
            Err(e) => panic!("{what}: recv: {e}"),
        }
    }

    /// Like [`assert_unanswered`], except for what the protocol allows: a replayed first
    /// handshake message carries no proof of freshness, so a chat that no longer
    /// remembers it answers it, with one response no larger than it (148 bytes), within
    /// the per-source rate limit. Returns how many such answers came.
    fn assert_only_responses_to_replayed_initiations(&self, what: &str, limit: usize) -> usize {
        let mut buf = vec![0u8; 65_536];
        let mut answers = 0;
        loop {
            match self.socket.recv_from(&mut buf) {
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Ok((148, _)) if buf[0] == 0xD2 => answers += 1,
                Ok((n, from)) => {
                    panic!(
                        "{what}: {n} bytes came back from {from}, type {:#04x}",
                        buf[0]
                    )
                }
                Err(e) => panic!("{what}: recv: {e}"),
            }
        }
        assert!(
            answers <= limit,
            "{what}: {answers} responses (limit {limit})"
        );
        answers
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

/// A throwaway identity for a forged handshake.
fn stranger(seed: u32) -> Identity {
    let mut key = [0x5Au8; 32];
    key[..4].copy_from_slice(&seed.to_be_bytes());
    Identity::from_private(key)
}

/// `--home DIR` for a home directory.
fn home_args(home: &std::path::Path) -> [String; 2] {
    ["--home".to_owned(), home.to_str().unwrap().to_owned()]
}

#[test]
fn wrong_passphrase_gets_nothing_and_the_right_one_chats() {
    let (pa, pb) = (free_port(), free_port());
    let right = secret_file("right", PASSPHRASE);
    let wrong = secret_file("wrong", "tr0ub4dor&3 is not the passphrase");
    let right = right.to_str().unwrap();
    let wrong = wrong.to_str().unwrap();
    let (home_a, home_b) = (temp_home("pa"), temp_home("pb"));
    let (ha, hb) = (home_args(&home_a), home_args(&home_b));
    // Each side's messages fail once nobody has answered for 3 s.
    let quick = ["--connect-timeout", "3s", "--secret-file"];
    let mut a = chat(
        "A",
        pa,
        localhost(pb),
        &[&quick[..], &[right, &ha[0], &ha[1]]].concat(),
    );
    let mut b = chat(
        "B",
        pb,
        localhost(pa),
        &[&quick[..], &[wrong, &hb[0], &hb[1]]].concat(),
    );
    a.write_lines(["for B's eyes only"]);
    b.write_lines(["for A's eyes only"]);
    a.close_stdin();
    b.close_stdin();
    // 3: nothing was delivered, and nothing is lost: it waits in the outbox.
    assert_eq!(a.wait_exit().code(), Some(3), "{}", a.dump());
    assert_eq!(b.wait_exit().code(), Some(3), "{}", b.dump());
    for (p, text) in [(&a, "for B's eyes only"), (&b, "for A's eyes only")] {
        assert!(received(p).is_empty(), "{}", p.dump());
        assert!(p.events_named("encrypted").is_empty(), "{}", p.dump());
        // Reported not delivered with its text, and kept: nothing typed is lost.
        let kept = p.events_named("kept");
        assert_eq!(kept.len(), 1, "{}", p.dump());
        assert_eq!(kept[0]["text"], text);
        assert_eq!(p.events_named("no_answer").len(), 1, "{}", p.dump());
        let exit = p.exit_event();
        assert_eq!(exit["pending_handshakes"], 0, "no state kept: {exit}");
        assert!(exit["rejected"].as_u64().unwrap() > 0, "{exit}");
        assert!(p
            .events_named("rejected")
            .iter()
            .all(|e| e["reason"] == "bad_mac1"));
        // And the user is told why, once.
        let hints: Vec<_> = p
            .events_named("warning")
            .into_iter()
            .filter(|e| {
                e["message"]
                    .as_str()
                    .unwrap()
                    .contains("another passphrase")
            })
            .collect();
        assert_eq!(hints.len(), 1, "{}", p.dump());
    }

    // A wrong-key handshake from a third address gets no reply at all.
    let mut b = chat(
        "B",
        pb,
        localhost(pa),
        &["--secret-file", right, &hb[0], &hb[1]],
    );
    b.started();
    let attacker = Attacker::new();
    let psk = derive_psk_with(b"guess", None, KdfParams::INSECURE_TEST_ONLY).unwrap();
    let config = SecureConfig {
        psk: Some(psk),
        peer: Some(localhost(pb)),
        ..SecureConfig::new(stranger(7))
    };
    let mut forger = SecureEndpoint::new(config, 7, Instant::now(), [7; 32]);
    forger.connect(Instant::now());
    let initiation = forger.poll_transmit().unwrap();
    attacker
        .socket
        .send_to(&initiation.payload, localhost(pb))
        .unwrap();
    b.wait_event("the rejection", |e| e["event"] == "rejected");
    settle();
    attacker.assert_unanswered("wrong-key handshake");

    // The right passphrase: a first contact, chat works both ways, the keys are pinned.
    let mut a = chat(
        "A",
        pa,
        localhost(pb),
        &["--secret-file", right, &ha[0], &ha[1]],
    );
    a.write_lines(["hello B"]);
    b.write_lines(["hello A"]);
    // What the wrong-passphrase runs kept in their outboxes goes first, once.
    expect_received(&b, &["for B's eyes only", "hello B"]);
    expect_received(&a, &["for A's eyes only", "hello A"]);
    let encrypted = a.wait_event("encrypted", |e| e["event"] == "encrypted");
    assert_eq!(encrypted["verified"], "passphrase");
    assert_eq!(encrypted["new_contact"], true);
    assert_eq!(encrypted["key"], identity(&home_b).0.as_str());

    // B goes away; A's next line waits in the outbox of this first contact, which was
    // kept under B's address (B's key was pinned only during this run), and A crashes.
    b.kill();
    // A resend of this very line proves it is in the outbox (it is written down before
    // it is first sent); an older resend, printed before, proves nothing.
    let before = a.events().len();
    a.write_lines(["while B is away"]);
    let sent = a.wait_event_after(before, "the line sent", |e| e["event"] == "sent");
    a.wait_event_after(before, "a resend of the line", |e| {
        e["event"] == "retransmitted" && e["id"] == sent["id"]
    });
    a.kill();
    // The next runs know B by its key: the line goes out, once, first.
    let mut b = chat("B", pb, localhost(pa), &[&hb[0], &hb[1]]);
    b.started();
    let mut a = chat("A", pa, localhost(pb), &[&ha[0], &ha[1]]);
    a.write_lines(["B is back"]);
    expect_received(&b, &["while B is away", "B is back"]);
    a.close_stdin();
    b.close_stdin();
    assert!(a.wait_exit().success(), "{}", a.dump());
    assert!(b.wait_exit().success(), "{}", b.dump());
    let outbox = common::run(&["outbox", "--home", &ha[1]]);
    assert_eq!(
        String::from_utf8_lossy(&outbox.stdout).trim(),
        "the outbox is empty"
    );
}

/// Reads the invitation code from `udpchat invite --json`.
fn invitation_code(p: &Proc) -> String {
    let inv = p.wait_event("the invitation", |e| e["event"] == "invitation");
    let code = inv["code"].as_str().unwrap().to_owned();
    assert!(inv["command"].as_str().unwrap().contains(&code), "{inv}");
    code
}

fn encrypted_event(p: &Proc) -> serde_json::Value {
    p.wait_event("encrypted", |e| e["event"] == "encrypted")
}

#[test]
fn a_first_contact_by_code_then_restarts_need_nothing_and_a_changed_key_is_refused() {
    let (pa, pb) = (free_port(), free_port());
    let (home_a, home_b) = (temp_home("code-a"), temp_home("code-b"));
    let (ha, hb) = (home_args(&home_a), home_args(&home_b));
    let (fp_a, _) = identity(&home_a);
    let (fp_b, _) = identity(&home_b);
    let pb_s = pb.to_string();
    // B invites, knowing nobody's address; A gives the code it was told.
    let mut b = Proc::spawn("B", &["invite", "--port", &pb_s, "--json", &hb[0], &hb[1]]);
    let code = invitation_code(&b);
    let mut a = chat("A", pa, localhost(pb), &["--code", &code, &ha[0], &ha[1]]);
    let (ea, eb) = (encrypted_event(&a), encrypted_event(&b));
    for (e, fp) in [(&ea, &fp_b), (&eb, &fp_a)] {
        assert_eq!(e["verified"], "code", "{e}");
        assert_eq!(e["new_contact"], true, "{e}");
        assert_eq!(e["key"], fp.as_str(), "{e}");
    }
    a.write_lines(["nice to meet you"]);
    b.write_lines(["likewise"]);
    expect_received(&b, &["nice to meet you"]);
    expect_received(&a, &["likewise"]);
    a.close_stdin();
    b.close_stdin();
    assert!(a.wait_exit().success(), "{}", a.dump());
    assert!(b.wait_exit().success(), "{}", b.dump());
    // The code was used once: it is no good now.
    let known = std::fs::read_to_string(home_b.join("known_peers")).unwrap();
    assert!(known.contains(" code "), "{known}");

    // Later chats: both restart without a code, with nothing to compare.
    let mut a = chat("A", pa, localhost(pb), &[&ha[0], &ha[1]]);
    let mut b = chat("B", pb, localhost(pa), &[&hb[0], &hb[1]]);
    assert_eq!(encrypted_event(&a)["verified"], "pinned");
    assert_eq!(encrypted_event(&b)["verified"], "pinned");
    let before = a.events().len();
    a.write_lines(["back again"]);
    expect_received(&b, &["back again"]);
    // Until A has B's acknowledgement, a crash of B would have A send the line again
    // to B's next run (exactly-once across a crash needs stored state): wait for it.
    a.wait_event_after(before, "the acknowledgement", |e| e["event"] == "delivered");
    // B crashes and restarts: A sees a restart, and nothing needs comparing.
    b.kill();
    let mut b = chat("B2", pb, localhost(pa), &[&hb[0], &hb[1]]);
    a.write_lines(["after your crash"]);
    expect_received(&b, &["after your crash"]);
    a.wait_event("the restart", |e| e["event"] == "peer_restarted");
    assert!(a.events_named("refused").is_empty(), "{}", a.dump());
    // Each leaves once both have ended their input (the goodbye).
    b.close_stdin();
    a.close_stdin();
    assert!(b.wait_exit().success(), "{}", b.dump());
    assert!(a.wait_exit().success(), "{}", a.dump());

    // Someone else answers at B's address (another installation, another key): refused,
    // loudly, and the message is reported not delivered with its text.
    let impostor = temp_home("impostor");
    let hi = home_args(&impostor);
    let (impostor_fp, _) = identity(&impostor);
    let (_, key_a) = identity(&home_a);
    // The impostor even knows A (it pinned A's key), so it would gladly talk.
    std::fs::write(
        impostor.join("known_peers"),
        format!("{key_a} manual 2026-12-01T00:00:00Z 127.0.0.1:{pa}\n"),
    )
    .unwrap();
    let mut c = chat("C", pb, localhost(pa), &[&hi[0], &hi[1]]);
    c.started();
    let mut a = chat("A3", pa, localhost(pb), &[&ha[0], &ha[1]]);
    a.write_lines(["is it you?"]);
    let refused = a.wait_event("the refusal", |e| e["event"] == "refused");
    assert_eq!(refused["reason"], "key_changed", "{refused}");
    assert_eq!(refused["expected"], fp_b.as_str(), "{refused}");
    assert_eq!(refused["key"], impostor_fp.as_str(), "{refused}");
    assert_eq!(refused["fatal"], true, "{refused}");
    assert_eq!(a.wait_exit().code(), Some(1), "{}", a.dump());
    // Not delivered, and kept in the outbox for the peer whose key is pinned.
    let kept = a.events_named("kept");
    assert!(
        kept.iter()
            .any(|f| f["text"] == "is it you?" && f["reason"] == "refused"),
        "{}",
        a.dump()
    );
    assert!(a.events_named("encrypted").is_empty(), "{}", a.dump());
    assert!(received(&c).is_empty(), "{}", c.dump());
    c.wait_event("told why", |e| e["event"] == "refused_by_peer");
    c.kill();
}

#[test]
fn strangers_are_refused_and_told_how_to_meet() {
    let (pa, pb) = (free_port(), free_port());
    let (ha, hb) = (home_args(&temp_home("s-a")), home_args(&temp_home("s-b")));
    let mut a = chat("A", pa, localhost(pb), &[&ha[0], &ha[1]]);
    let mut b = chat("B", pb, localhost(pa), &[&hb[0], &hb[1]]);
    a.write_lines(["hello stranger"]);
    for p in [&mut a, &mut b] {
        assert_eq!(p.wait_exit().code(), Some(1), "{}", p.dump());
        let why = p
            .events()
            .into_iter()
            .find(|e| e["event"] == "refused" || e["event"] == "refused_by_peer")
            .unwrap_or_else(|| panic!("no refusal: {}", p.dump()));
        assert_eq!(why["reason"], "unknown_contact", "{why}");
        assert!(received(p).is_empty());
    }
    let kept = a.events_named("kept");
    assert_eq!(kept.len(), 1, "{}", a.dump());
    assert_eq!(kept[0]["text"], "hello stranger");
    assert_eq!(kept[0]["reason"], "refused");
}

#[test]
fn a_wrong_code_is_refused_after_a_few_tries_and_the_right_one_still_works() {
    let (pa, pb) = (free_port(), free_port());
    let (ha, hb) = (home_args(&temp_home("w-a")), home_args(&temp_home("w-b")));
    let pb_s = pb.to_string();
    let mut b = Proc::spawn("B", &["invite", "--port", &pb_s, "--json", &hb[0], &hb[1]]);
    let code = invitation_code(&b);
    let wrong = {
        let c = InviteCode::parse(&code).unwrap();
        let mut other = InviteCode::from_random([9; 8]);
        if other == c {
            other = InviteCode::from_random([10; 8]);
        }
        other.to_string()
    };
    let mut a = chat("A", pa, localhost(pb), &["--code", &wrong, &ha[0], &ha[1]]);
    a.write_lines(["hi"]);
    assert_eq!(a.wait_exit().code(), Some(1), "{}", a.dump());
    let refused = a.events_named("refused");
    assert_eq!(refused.len(), 1, "{}", a.dump());
    assert_eq!(refused[0]["reason"], "code_mismatch");
    assert!(b.events_named("encrypted").is_empty());
    // The right code still works: three wrong guesses did not close the invitation.
    let mut a = chat("A2", pa, localhost(pb), &["--code", &code, &ha[0], &ha[1]]);
    assert_eq!(encrypted_event(&a)["verified"], "code");
    a.close_stdin();
    b.close_stdin();
    assert!(a.wait_exit().success(), "{}", a.dump());
    assert!(b.wait_exit().success(), "{}", b.dump());
}

/// A man in the middle on real sockets: it answers A's first contact itself (posing as
/// B) and makes its own first contact with B (posing as A), each time with its best
/// guess of the code, and would relay and rewrite what it could read.
struct Mitm {
    /// A's PEER.
    for_a: UdpSocket,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<u64>>,
}

impl Mitm {
    fn new(b: SocketAddr, guess: InviteCode) -> Self {
        let for_a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let for_b = UdpSocket::bind("127.0.0.1:0").unwrap();
        for s in [&for_a, &for_b] {
            s.set_nonblocking(true).unwrap();
        }
        let stop = Arc::new(AtomicBool::new(false));
        let (rx_a, rx_b, stop2) = (for_a.try_clone().unwrap(), for_b, Arc::clone(&stop));
        let thread = std::thread::spawn(move || {
            let now = Instant::now();
            let face = |peer: Option<SocketAddr>, seed: u8| {
                let config = SecureConfig {
                    code: Some(guess),
                    peer,
                    ..SecureConfig::new(stranger(u32::from(seed)))
                };
                SecureEndpoint::new(config, u64::from(seed), now, [seed; 32])
            };
            let mut ma = face(None, 1);
            let mut mb = face(Some(b), 2);
            mb.connect(now);
            let mut relayed = 0u64;
            let mut buf = vec![0u8; 65_536];
            while !stop2.load(Ordering::Relaxed) {
                let now = Instant::now();
                if let Ok((n, from)) = rx_a.recv_from(&mut buf) {
                    if let Ok(Some(p)) = ma.handle_datagram(now, from, &buf[..n]) {
                        if let Ok(t) = mb.seal(now, &p.bytes) {
                            let _ = rx_b.send_to(&t.payload, t.destination);
                            relayed += 1;
                        }
                    }
                }
                if let Ok((n, from)) = rx_b.recv_from(&mut buf) {
                    if let Ok(Some(p)) = mb.handle_datagram(now, from, &buf[..n]) {
                        if let Ok(t) = ma.seal(now, &p.bytes) {
                            let _ = rx_a.send_to(&t.payload, t.destination);
                            relayed += 1;
                        }
                    }
                }
                ma.handle_timeout(now);
                mb.handle_timeout(now);
                while let Some(t) = ma.poll_transmit() {
                    let _ = rx_a.send_to(&t.payload, t.destination);
                }
                while let Some(t) = mb.poll_transmit() {
                    let _ = rx_b.send_to(&t.payload, t.destination);
                }
                while ma.poll_event().is_some() || mb.poll_event().is_some() {}
                std::thread::sleep(Duration::from_millis(1));
            }
            relayed
        });
        Self {
            for_a,
            stop,
            thread: Some(thread),
        }
    }

    /// Stops the relay; returns how many packets it managed to relay.
    fn finish(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().map_or(0, |t| t.join().unwrap())
    }
}

#[test]
fn a_man_in_the_middle_who_guesses_the_code_gets_nothing() {
    let (pa, pb) = (free_port(), free_port());
    let (ha, hb) = (home_args(&temp_home("m-a")), home_args(&temp_home("m-b")));
    let pb_s = pb.to_string();
    let mut b = Proc::spawn("B", &["invite", "--port", &pb_s, "--json", &hb[0], &hb[1]]);
    let code = invitation_code(&b);
    let mut guess = InviteCode::from_random([0x33; 8]);
    if guess.to_string() == code {
        guess = InviteCode::from_random([0x34; 8]);
    }
    let mitm = Mitm::new(localhost(pb), guess);
    let to_mitm = mitm.for_a.local_addr().unwrap();
    let mut a = chat("A", pa, to_mitm, &["--code", &code, &ha[0], &ha[1]]);
    a.write_lines(["PAY ALICE"]);
    assert_eq!(a.wait_exit().code(), Some(1), "{}", a.dump());
    let refused = a.events_named("refused");
    assert_eq!(refused.len(), 1, "{}", a.dump());
    assert_eq!(refused[0]["reason"], "code_mismatch");
    assert!(a.events_named("encrypted").is_empty(), "{}", a.dump());
    settle();
    let relayed = mitm.finish();
    assert_eq!(relayed, 0, "the relay decrypted something");
    assert!(b.events_named("encrypted").is_empty(), "{}", b.dump());
    assert!(received(&b).is_empty());
    b.close_stdin();
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
    attacker.send(&vec![0xD5; 65_507], to_b);
    attacker.send(&vec![0x55; 65_507], to_b);
    settle();
    // The per-source budget: a burst of 5, then 20 a second (a few seconds here).
    let answered = attacker.assert_only_responses_to_replayed_initiations(
        "mutations, replays and extremes",
        5 + 20 * 10,
    );

    // 100,000 random datagrams, many shaped like real packet types and sizes.
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x5ec);
    let shapes: [(u8, usize); 6] = [
        (0xD1, 148),
        (0xD2, 148),
        (0xD3, 78),
        (0xD4, 62),
        (0xD5, 29 + 60),
        (0xE1, 89),
    ];
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
    // 10,000 handshakes under a wrong key, each fresh (new identity, new ephemeral).
    let wrong =
        derive_psk_with(b"not the passphrase", None, KdfParams::INSECURE_TEST_ONLY).unwrap();
    let now = Instant::now();
    for i in 0..10_000u32 {
        let config = SecureConfig {
            psk: Some(wrong.clone()),
            peer: Some(to_b),
            ..SecureConfig::new(stranger(i))
        };
        let mut seed = [0u8; 32];
        seed[..4].copy_from_slice(&i.to_be_bytes());
        let mut forger = SecureEndpoint::new(config, u64::from(i) + 1, now, seed);
        forger.connect(now);
        let initiation = forger.poll_transmit().unwrap();
        attacker.send(&initiation.payload, to_b);
    }
    settle();
    attacker.assert_unanswered("random datagrams and wrong-key handshakes");
    eprintln!("{answered} replayed first messages were answered (each by 148 bytes, no session)");
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
    attacker.assert_only_responses_to_replayed_initiations("the whole run", 0);

    // Every hostile datagram reached B and was counted (a few may have been lost in
    // the socket buffer under the flood, which is the kernel's doing).
    let rejected_b = b.exit_event()["rejected"].as_u64().unwrap();
    let aimed_at_b = random + 10_000;
    assert!(
        rejected_b >= aimed_at_b * 90 / 100,
        "B rejected {rejected_b} of at least {aimed_at_b}\n{}",
        b.dump()
    );
    // Replayed first messages that were answered wait, bounded, for a message 3 that
    // never comes (and are forgotten after 15 s).
    let pending = b.exit_event()["pending_handshakes"].as_u64().unwrap();
    assert!(pending <= udpchat_secure::MAX_PENDING as u64, "{pending}");
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
    let quick = ["--connect-timeout", "2s"];
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
    assert_eq!(a.wait_exit().code(), Some(3), "{}", a.dump());
    assert_eq!(b.wait_exit().code(), Some(3), "{}", b.dump());
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
