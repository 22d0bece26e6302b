//! Garbage aimed at a running udpchat, from the peer's own address and from a
//! stranger: none of it is shown as a message, each datagram is counted as rejected
//! once, and the chat goes on afterwards. The test socket plays the peer by hand with
//! frames built by `udpchat_proto::wire`.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use common::{Proc, DEADLINE};
use rand::{Rng, SeedableRng};
use udpchat_proto::wire::{
    AckFrame, CloseReason, Frame, Packet, Payload, Sack, CRC_LEN, HEADER_LEN, MAX_DATAGRAM,
};

/// The test peer's epoch.
const T: u64 = 0x7e57_0000_0000_0001;

/// Receives from `socket` until a packet satisfying `pred` comes, skipping others.
fn recv_packet(socket: &UdpSocket, what: &str, pred: impl Fn(&Packet) -> bool) -> Packet {
    let until = Instant::now() + DEADLINE;
    let mut buf = vec![0u8; 65_536];
    while Instant::now() < until {
        let Ok((n, _)) = socket.recv_from(&mut buf) else {
            continue; // read timeout: look at the clock again
        };
        if let Ok(p) = Packet::decode(&buf[..n]) {
            if pred(&p) {
                return p;
            }
        }
    }
    panic!("no {what} from udpchat");
}

fn fix_crc(bytes: &mut [u8]) {
    let body = bytes.len() - CRC_LEN;
    let crc = crc32c::crc32c(&bytes[..body]).to_be_bytes();
    bytes[body..].copy_from_slice(&crc);
}

#[test]
fn garbage_is_rejected_counted_and_the_chat_goes_on() {
    let started = Instant::now();
    let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
    peer.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let stranger = UdpSocket::bind("127.0.0.1:0").unwrap();
    let peer_arg = peer.local_addr().unwrap().to_string();
    let mut chat = Proc::spawn(
        "udpchat",
        // The test plays the peer with clear-text packets built by hand.
        &[
            &peer_arg,
            "--port",
            "0",
            "--timeout",
            "100ms",
            "--json",
            "--plaintext",
        ],
    );
    let (epoch_hex, port) = chat.started();
    let epoch = u64::from_str_radix(&epoch_hex, 16).unwrap();
    let target: SocketAddr = ([127, 0, 0, 1], port).into();

    // Handshake by hand: udpchat knocks with a HELLO, we answer with ours.
    let hello = recv_packet(&peer, "HELLO", |p| p.frames.contains(&Frame::Hello));
    assert_eq!(hello.src_epoch, epoch);
    let packet = |frames| Packet {
        src_epoch: T,
        dst_epoch: epoch,
        frames,
    };
    peer.send_to(&packet(vec![Frame::Hello]).encode(), target)
        .unwrap();
    chat.wait_event("connected", |e| e["event"] == "connected");

    // The garbage, with the reason each must be rejected for (None: any reason).
    let valid = packet(vec![Frame::Data {
        seq: 0,
        after: 0,
        payload: Payload::Text("a valid message".into()),
    }])
    .encode();
    let mut bad: Vec<(Vec<u8>, Option<&str>)> = vec![
        (Vec::new(), Some("too_short")),
        (vec![0x55; 65_507], Some("too_large")),
        (vec![0; MAX_DATAGRAM + 1], Some("too_large")),
    ];
    let mut rng = rand::rngs::StdRng::seed_from_u64(0xbad);
    for _ in 0..50 {
        let len = rng.random_range(0..1300);
        let mut bytes = vec![0u8; len];
        rng.fill(&mut bytes[..]);
        bad.push((bytes, None));
    }
    let mut wrong_version = valid.clone();
    wrong_version[2] = udpchat_proto::wire::VERSION + 1;
    fix_crc(&mut wrong_version);
    bad.push((wrong_version, Some("unsupported_version")));
    let mut bad_crc = valid.clone();
    *bad_crc.last_mut().unwrap() ^= 0x01;
    bad.push((bad_crc, Some("bad_checksum")));
    let mut flipped = valid.clone();
    flipped[HEADER_LEN + 3] ^= 0x10;
    bad.push((flipped, Some("bad_checksum")));
    for cut in 0..valid.len() {
        bad.push((valid[..cut].to_vec(), None));
    }
    let text_at = valid.len() - CRC_LEN - "a valid message".len();
    let mut not_utf8 = valid.clone();
    not_utf8[text_at] = 0xff;
    not_utf8[text_at + 1] = 0xfe;
    fix_crc(&mut not_utf8);
    bad.push((not_utf8, Some("invalid_utf8")));
    let ack_beyond = packet(vec![Frame::Ack(AckFrame {
        cumulative: 5,
        sack: Sack::EMPTY,
        window: 1,
        ..Default::default()
    })])
    .encode();
    bad.push((ack_beyond, Some("ack_beyond_sent")));

    // One at a time, waiting for each verdict, so no burst can overflow a socket buffer.
    let mut expected = 0;
    for (bytes, reason) in &bad {
        peer.send_to(bytes, target).unwrap();
        expected += 1;
        chat.wait_until(&format!("rejection #{expected} ({reason:?})"), |ev| {
            ev.iter().filter(|e| e["event"] == "rejected").count() >= expected
        });
        if let Some(reason) = reason {
            let last = chat.events_named("rejected").pop().unwrap();
            assert_eq!(last["reason"], *reason, "{last}");
            assert!(last["detail"].as_str().is_some_and(|d| !d.is_empty()));
        }
    }
    // A perfectly valid message from a stranger is not a message either.
    stranger.send_to(&valid, target).unwrap();
    expected += 1;
    chat.wait_until("rejection of the stranger", |ev| {
        ev.iter().filter(|e| e["event"] == "rejected").count() >= expected
    });
    assert_eq!(
        chat.events_named("rejected").pop().unwrap()["reason"],
        "unknown_source"
    );
    assert!(chat.received().is_empty(), "{}", chat.dump());
    // Another protocol version from the peer is said once, as the likely reason.
    let version_hint = |e: &serde_json::Value| {
        e["event"] == "warning"
            && e["message"].as_str().is_some_and(|m| {
                m.contains("another version of udpchat")
                    && m.contains(&format!("v{}", udpchat_proto::wire::VERSION + 1))
            })
    };
    chat.wait_event("the version hint", version_hint);
    // The other version again: the hint, already out, is not said again.
    let (again, _) = bad
        .iter()
        .find(|(_, reason)| *reason == Some("unsupported_version"))
        .unwrap();
    peer.send_to(again, target).unwrap();
    expected += 1;
    chat.wait_until("one more rejection", |ev| {
        ev.iter().filter(|e| e["event"] == "rejected").count() >= expected
    });
    let hints = chat.events().iter().filter(|e| version_hint(e)).count();
    assert_eq!(hints, 1, "{}", chat.dump());

    // The chat goes on: our message is shown and acknowledged...
    peer.send_to(&valid, target).unwrap();
    chat.wait_event("the valid message", |e| e["event"] == "received");
    let ack = recv_packet(&peer, "ACK", |p| {
        p.frames
            .iter()
            .any(|f| matches!(f, Frame::Ack(a) if a.cumulative == 1))
    });
    assert_eq!((ack.src_epoch, ack.dst_epoch), (epoch, T));
    // ...and udpchat's message reaches us and our acknowledgement is taken.
    chat.write_lines(["still here"]);
    let data = recv_packet(&peer, "DATA", |p| {
        p.frames.iter().any(|f| matches!(f, Frame::Data { .. }))
    });
    // A chat with a store numbers its messages under its store's origin (§6b).
    assert!(
        matches!(
            data.frames.as_slice(),
            [Frame::Data {
                seq: 0,
                after: u16::MAX,
                payload: Payload::Numbered { id, text },
            }] if id.number == 0 && text == "still here"
        ),
        "{:?}",
        data.frames
    );
    peer.send_to(
        &packet(vec![Frame::Ack(AckFrame {
            cumulative: 1,
            sack: Sack::EMPTY,
            window: 1,
            ..Default::default()
        })])
        .encode(),
        target,
    )
    .unwrap();
    chat.wait_event("delivered", |e| e["event"] == "delivered");

    // The goodbye by hand (PROTOCOL.md §6a): end of input sends a DONE after the
    // message; we confirm it and send ours, and udpchat answers with its last ACK and a
    // CLOSE, then exits.
    chat.close_stdin();
    let done = recv_packet(&peer, "DONE", |p| {
        p.frames.iter().any(|f| {
            matches!(
                f,
                Frame::Data {
                    payload: Payload::Done,
                    ..
                }
            )
        })
    });
    assert_eq!(
        done.frames,
        vec![Frame::Data {
            seq: 1,
            after: 0,
            payload: Payload::Done
        }]
    );
    peer.send_to(
        &packet(vec![
            Frame::Ack(AckFrame {
                cumulative: 2,
                window: 1,
                ..Default::default()
            }),
            Frame::Data {
                seq: 1,
                after: 0,
                payload: Payload::Done,
            },
        ])
        .encode(),
        target,
    )
    .unwrap();
    let close = recv_packet(&peer, "CLOSE", |p| {
        p.frames.iter().any(|f| matches!(f, Frame::Close { .. }))
    });
    assert!(
        matches!(
            close.frames.as_slice(),
            [
                Frame::Ack(AckFrame { cumulative: 2, .. }),
                Frame::Close {
                    reason: CloseReason::Finished
                }
            ]
        ),
        "{close:?}"
    );
    // Our CLOSE in answer ends its closing period at once.
    peer.send_to(
        &packet(vec![Frame::Close {
            reason: CloseReason::Finished,
        }])
        .encode(),
        target,
    )
    .unwrap();
    let status = chat.wait_exit();
    assert!(status.success(), "{status}\n{}", chat.dump());
    assert_eq!(chat.received(), ["a valid message"], "{}", chat.dump());
    let rejected = chat.events_named("rejected").len();
    assert_eq!(rejected, expected, "{}", chat.dump());
    let exit = chat.exit_event();
    assert_eq!(exit["rejected"], expected, "{exit}");
    assert_eq!(exit["received"], 1, "{exit}");
    assert_eq!(exit["delivered"], 1, "{exit}");
    eprintln!(
        "bad_input: {} datagrams rejected in {:?}",
        expected,
        started.elapsed()
    );
}
