//! Fixed keys, addresses and clocks the targets share, the deterministic live chat the
//! receive-path target attacks, and the built-in seed inputs each target starts from.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Instant;

use udpchat_proto::wire::{AckFrame, Frame, Packet, Payload, Sack, MAX_DATAGRAM};
use udpchat_proto::Config;
use udpchat_secure::{
    derive_psk_with, Identity, InviteCode, KdfParams, Psk, SecureConfig, SecureEndpoint, Trust,
};
use udpchat_stack::{Security, Stack};

use crate::join_datagrams;

/// Where the fuzz input comes from: the peer's address as the endpoint under test sees
/// it.
pub(crate) const FROM: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 1);
/// The endpoint under test's own address, as its peer sees it.
pub(crate) const TO: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 2);
/// How the fuzzed endpoints know each other.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Trusting {
    /// Each has the other's key pinned.
    Pinned,
    /// Both hold the same passphrase.
    Passphrase,
    /// A first contact by an invitation code (the responder waits, knowing no address).
    Invitation,
}

impl Trusting {
    /// All three, in a fixed order.
    pub(crate) const ALL: [Self; 3] = [Self::Pinned, Self::Passphrase, Self::Invitation];

    /// A short name for features.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Pinned => "pin",
            Self::Passphrase => "psk",
            Self::Invitation => "inv",
        }
    }
}

/// The long-term identity of the peer at `FROM` (`a`) or of the endpoint under test.
pub(crate) fn identity(a: bool) -> Identity {
    Identity::from_private(if a { [0xA1; 32] } else { [0xB2; 32] })
}

/// The configuration of one side (`a`: the peer at `FROM`; else the endpoint under test)
/// in a way of trusting.
pub(crate) fn config(trusting: Trusting, a: bool) -> SecureConfig {
    let other = identity(!a).public();
    let mut c = SecureConfig::new(identity(a));
    match trusting {
        Trusting::Pinned => {
            c.trust = Trust {
                pinned: [other].into_iter().collect(),
                expected: Some(other),
            };
        }
        Trusting::Passphrase => c.psk = Some(fuzz_psk()),
        Trusting::Invitation => c.code = InviteCode::parse("7-ribbon-tunnel").ok(),
    }
    c.peer = if a {
        Some(TO)
    } else {
        (trusting != Trusting::Invitation).then_some(FROM)
    };
    c
}

/// The passphrase key of every fuzzed endpoint, derived once.
pub(crate) fn fuzz_psk() -> Psk {
    static PSK: OnceLock<Psk> = OnceLock::new();
    PSK.get_or_init(|| {
        derive_psk_with(b"fuzz passphrase", None, KdfParams::INSECURE_TEST_ONLY)
            .unwrap_or_else(|e| panic!("cannot derive the fuzz key: {e}"))
    })
    .clone()
}

fn encrypted(a: bool) -> Security {
    Security::Encrypted {
        config: Box::new(config(Trusting::Pinned, a)),
        rng_seed: [if a { 0xA } else { 0xB }; 32],
    }
}

/// Two encrypted chats with an established session and one message delivered each
/// way: A (at `FROM`) and B (at `TO`, the one under attack), the virtual time, and
/// every datagram A sent B so far. Deterministic: the same keys, indices and nonces
/// every time, so those recorded datagrams, kept in the corpus, are replays of packets
/// B has already had. (Packets A sends *later* are not: in a new run A sends other
/// texts under the same nonces, which an attacker could never obtain.)
pub(crate) fn live_pair() -> (Stack, Stack, Instant, Vec<Vec<u8>>) {
    let now = Instant::now();
    let mut a = Stack::new(Config::default(), encrypted(true), 0xA, Some(TO), now);
    let mut b = Stack::new(Config::default(), encrypted(false), 0xB, Some(FROM), now);
    let sent = [(&mut a, "warm-up from a"), (&mut b, "warm-up from b")];
    for (side, text) in sent {
        side.send(now, text.to_owned())
            .unwrap_or_else(|e| panic!("cannot queue: {e}"));
    }
    let mut recorded = Vec::new();
    exchange(&mut a, &mut b, now, &mut recorded);
    (a, b, now, recorded)
}

/// Moves datagrams both ways until quiet, recording what A sent to B.
fn exchange(a: &mut Stack, b: &mut Stack, now: Instant, a_to_b: &mut Vec<Vec<u8>>) {
    for _ in 0..100 {
        let mut moved = false;
        while let Some(t) = a.poll_transmit() {
            let _ = b.handle_datagram(now, FROM, &t.payload);
            a_to_b.push(t.payload);
            moved = true;
        }
        while let Some(t) = b.poll_transmit() {
            let _ = a.handle_datagram(now, TO, &t.payload);
            moved = true;
        }
        while a.poll_event().is_some() {}
        while b.poll_event().is_some() {}
        if !moved {
            return;
        }
    }
}

/// The seed inputs of a target: the kept corpus (`crates/fuzz/corpus/<target>/`) and
/// inputs built here from real packets, so mutation starts deep inside each format.
pub fn seed_inputs(target: &str) -> Vec<Vec<u8>> {
    let mut inputs = read_corpus(target);
    inputs.extend(match target {
        "packet_decoder" => plaintext_packets(),
        "handshake_responder" => handshake_transcripts(),
        "session_receive" => receive_paths(),
        _ => Vec::new(),
    });
    inputs
}

/// The kept corpus directory of a target.
pub fn corpus_dir(target: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(target)
}

fn read_corpus(target: &str) -> Vec<Vec<u8>> {
    let Ok(entries) = std::fs::read_dir(corpus_dir(target)) else {
        return Vec::new();
    };
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    paths
        .into_iter()
        .filter_map(|p| std::fs::read(p).ok())
        .collect()
}

/// One valid packet of every frame type and payload kind, plus the edges of the size
/// limits.
fn plaintext_packets() -> Vec<Vec<u8>> {
    let packet = |frames| {
        Packet {
            src_epoch: 0x0102_0304_0506_0708,
            dst_epoch: 0x1112_1314_1516_1718,
            frames,
        }
        .encode()
    };
    let mut sack = Sack::EMPTY;
    sack.insert(3);
    sack.insert(40);
    vec![
        packet(vec![Frame::Hello]),
        packet(vec![Frame::Data {
            seq: 7,
            after: 0,
            payload: Payload::Text("hello".into()),
        }]),
        packet(vec![Frame::Data {
            seq: 8,
            after: 0,
            payload: Payload::Nick("ada".into()),
        }]),
        packet(vec![
            Frame::Data {
                seq: 10,
                after: 0,
                payload: Payload::Part("the beginning of ".into()),
            },
            Frame::Data {
                seq: 11,
                after: 0,
                payload: Payload::Text("a longer message".into()),
            },
        ]),
        packet(vec![Frame::Data {
            seq: 12,
            after: 0,
            payload: Payload::File(udpchat_proto::FileFrame::Offer {
                transfer: 1,
                size: 5,
                hash: [7; 32],
                name: "dir/a.txt".into(),
            }),
        }]),
        packet(vec![Frame::Data {
            seq: 13,
            after: 0,
            payload: Payload::File(udpchat_proto::FileFrame::Chunk {
                transfer: 1,
                offset: 0,
                data: b"hello".to_vec().into(),
            }),
        }]),
        packet(vec![Frame::Data {
            seq: 9,
            after: 0,
            payload: Payload::Unknown {
                kind: 10,
                bytes: vec![1, 2, 3],
            },
        }]),
        packet(vec![Frame::Ack(AckFrame {
            cumulative: 5,
            sack,
            window: 64,
            ..Default::default()
        })]),
        packet(vec![
            Frame::Skip { below: 3 },
            Frame::Data {
                seq: 3,
                after: 0,
                payload: Payload::Text("after a skip".into()),
            },
            Frame::Data {
                seq: 4,
                after: 0,
                payload: Payload::Text("é".into()),
            },
        ]),
        packet(vec![Frame::Ping { token: 42 }, Frame::Pong { token: 41 }]),
        packet(vec![
            Frame::Data {
                seq: 3,
                after: 0,
                payload: Payload::Done,
            },
            Frame::Close {
                reason: udpchat_proto::wire::CloseReason::Left,
            },
        ]),
        Vec::new(),
        vec![0x55; MAX_DATAGRAM],
        vec![0x55; MAX_DATAGRAM + 1],
    ]
}

/// Real handshakes in every way of trusting: each initiation alone, and whole
/// transcripts (initiation, finish, transport) as the responder would see them.
fn handshake_transcripts() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for trusting in Trusting::ALL {
        let now = Instant::now();
        let mut initiator = SecureEndpoint::new(config(trusting, true), 0xA, now, [0xA; 32]);
        let mut responder = SecureEndpoint::new(config(trusting, false), 0xB, now, [0xB; 32]);
        initiator.connect(now);
        let mut to_responder = Vec::new();
        for _ in 0..10 {
            let mut moved = false;
            while let Some(t) = initiator.poll_transmit() {
                let _ = responder.handle_datagram(now, FROM, &t.payload);
                to_responder.push(t.payload);
                moved = true;
            }
            while let Some(t) = responder.poll_transmit() {
                let _ = initiator.handle_datagram(now, TO, &t.payload);
                moved = true;
            }
            if !moved {
                break;
            }
        }
        if let Ok(t) = initiator.seal(now, b"an inner packet") {
            to_responder.push(t.payload);
        }
        if let Some(first) = to_responder.first() {
            out.push(join_datagrams(std::slice::from_ref(first)));
        }
        out.push(join_datagrams(&to_responder));
    }
    out
}

/// What A sent B while setting up the live session (handshake and transport packets),
/// alone and together, so replays and mutations of genuine packets are where mutation
/// starts.
fn receive_paths() -> Vec<Vec<u8>> {
    let (_, _, _, recorded) = live_pair();
    let mut out: Vec<Vec<u8>> = recorded
        .iter()
        .map(|d| join_datagrams(std::slice::from_ref(d)))
        .collect();
    out.push(join_datagrams(&recorded));
    out.push(join_datagrams(&plaintext_packets()[..7]));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_live_pair_is_deterministic() {
        let (_, _, _, first) = live_pair();
        assert!(first.len() >= 2, "a handshake and a message");
        assert_eq!(first, live_pair().3);
    }

    #[test]
    fn every_target_has_seeds() {
        for (name, _) in crate::TARGETS {
            assert!(seed_inputs(name).len() >= 3, "{name}");
        }
    }
}
