//! docs/PROTOCOL.md is normative: every hex vector in it must decode as it says, encode
//! back to the same bytes, and the rejected ones must fail for the stated reason.

use udpchat_proto::wire::{
    AckFrame, CancelReason, CloseReason, FileFrame, Frame, Packet, Payload, Sack, StableId,
    MAX_TEXT_LEN,
};

const DOC: &str = include_str!("../../../docs/PROTOCOL.md");

/// The fenced blocks of the document with the given info string.
fn blocks(info: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut lines = DOC.lines();
    let fence = format!("```{info}");
    while let Some(line) = lines.next() {
        if line.trim() == fence {
            let body: String = lines
                .by_ref()
                .take_while(|l| l.trim() != "```")
                .collect::<Vec<_>>()
                .join("");
            found.push(body.trim().to_owned());
        }
    }
    found
}

/// BLAKE3 of the five bytes `hello`, as the offer vector carries it.
fn blake3_of_hello() -> &'static [u8; 32] {
    static HASH: std::sync::OnceLock<[u8; 32]> = std::sync::OnceLock::new();
    HASH.get_or_init(|| *blake3::hash(b"hello").as_bytes())
}

fn data(src: u64, dst: u64, frames: Vec<Frame>) -> Packet {
    Packet {
        src_epoch: src,
        dst_epoch: dst,
        frames,
    }
}

#[test]
fn every_vector_in_the_document_matches_the_codec() {
    let expected = [
        data(1, 0, vec![Frame::Hello]),
        data(2, 1, vec![Frame::Hello]),
        data(
            1,
            2,
            vec![Frame::Data {
                seq: 0,
                after: u16::MAX,
                payload: Payload::Text("hi".into()),
            }],
        ),
        data(
            2,
            1,
            vec![Frame::Ack(AckFrame {
                cumulative: 1,
                sack: Sack::EMPTY,
                window: 1,
                ack_delay_us: 0,
                max_ack_delay_ms: 5,
                duplicate: None,
            })],
        ),
        data(
            2,
            1,
            vec![Frame::Ack(AckFrame {
                cumulative: 3,
                sack: Sack::from_bits(0b101),
                window: 8,
                ack_delay_us: 250,
                max_ack_delay_ms: 5,
                duplicate: Some(2),
            })],
        ),
        data(
            1,
            2,
            vec![
                Frame::Skip { below: 5 },
                Frame::Data {
                    seq: 5,
                    after: 1,
                    payload: Payload::Text("€".into()),
                },
            ],
        ),
        data(
            1,
            2,
            vec![Frame::Data {
                seq: 6,
                after: 1,
                payload: Payload::Nick("ada".into()),
            }],
        ),
        data(1, 2, vec![Frame::Ping { token: 7 }]),
        data(2, 1, vec![Frame::Pong { token: 7 }]),
        data(
            1,
            2,
            vec![
                Frame::Data {
                    seq: 3,
                    after: 3,
                    payload: Payload::Text("a".into()),
                },
                Frame::Data {
                    seq: 4,
                    after: 1,
                    payload: Payload::Text("b".into()),
                },
            ],
        ),
        data(
            1,
            2,
            vec![Frame::Data {
                seq: 8,
                after: 0,
                payload: Payload::Done,
            }],
        ),
        data(
            1,
            2,
            vec![Frame::Data {
                seq: 9,
                after: 3,
                payload: Payload::Numbered {
                    id: StableId {
                        origin: 0x0123_4567_89ab_cdef,
                        number: 41,
                    },
                    text: "hi".into(),
                },
            }],
        ),
        data(
            2,
            1,
            vec![
                Frame::Ack(AckFrame {
                    cumulative: 9,
                    sack: Sack::EMPTY,
                    window: 512,
                    ack_delay_us: 0,
                    max_ack_delay_ms: 5,
                    duplicate: None,
                }),
                Frame::Close {
                    reason: CloseReason::Finished,
                },
            ],
        ),
        data(
            1,
            2,
            vec![
                Frame::Data {
                    seq: 10,
                    after: 1,
                    payload: Payload::Part("long ".into()),
                },
                Frame::Data {
                    seq: 11,
                    after: 1,
                    payload: Payload::Text("text".into()),
                },
            ],
        ),
        data(
            1,
            2,
            vec![Frame::Data {
                seq: 12,
                after: u16::MAX,
                payload: Payload::File(FileFrame::Offer {
                    transfer: 1,
                    size: 5,
                    hash: *blake3_of_hello(),
                    name: "a.txt".into(),
                }),
            }],
        ),
        data(
            2,
            1,
            vec![Frame::Data {
                seq: 10,
                after: u16::MAX,
                payload: Payload::File(FileFrame::Accept {
                    transfer: 1,
                    from: 0,
                }),
            }],
        ),
        data(
            1,
            2,
            vec![Frame::Data {
                seq: 13,
                after: 1,
                payload: Payload::File(FileFrame::Chunk {
                    transfer: 1,
                    offset: 0,
                    data: b"hello".to_vec().into(),
                }),
            }],
        ),
        data(
            2,
            1,
            vec![Frame::Data {
                seq: 11,
                after: 1,
                payload: Payload::File(FileFrame::Stored { transfer: 1 }),
            }],
        ),
        data(
            2,
            1,
            vec![Frame::Data {
                seq: 12,
                after: 1,
                payload: Payload::File(FileFrame::Cancel {
                    transfer: 2,
                    reason: CancelReason::Declined,
                }),
            }],
        ),
    ];
    if std::env::var_os("UDPCHAT_PRINT_VECTORS").is_some() {
        for packet in &expected {
            println!("{}\n", hex::encode(packet.encode()));
        }
    }
    let vectors = blocks("hex");
    assert_eq!(vectors.len(), expected.len(), "vectors in docs/PROTOCOL.md");
    for (hex_text, packet) in vectors.iter().zip(expected) {
        let bytes = hex::decode(hex_text).unwrap();
        assert_eq!(Packet::decode(&bytes).unwrap(), packet, "{hex_text}");
        assert_eq!(hex::encode(packet.encode()), *hex_text);
    }
}

#[test]
fn rejected_vectors_fail_for_the_stated_reason() {
    for code in ["invalid_utf8", "bad_checksum"] {
        let vectors = blocks(&format!("reject-{code}"));
        assert_eq!(vectors.len(), 1, "{code}");
        let bytes = hex::decode(&vectors[0]).unwrap();
        assert_eq!(Packet::decode(&bytes).unwrap_err().code(), code);
    }
}

#[test]
fn the_documented_text_limit_is_the_codes() {
    assert!(DOC.contains(&format!("**{MAX_TEXT_LEN}**")));
    assert!(DOC.contains("**1200 bytes**"));
    // The protocol's longest message, which every receiver accepts.
    let max = udpchat_proto::MAX_MESSAGE_LEN;
    assert_eq!(max, 16 << 20);
    assert!(DOC.contains("at most **16 MiB** (16,777,216 bytes"));
}
