//! Messages longer than one datagram (kind 4 parts) and the file frames (kinds 5–9),
//! between two sessions in virtual time: whole, once, in order, also across a loss, a
//! restart of the receiver and a failure.

// A test file: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use udpchat_proto::wire::{Frame, Packet, Payload};
use udpchat_proto::{Config, Event, FileFrame, Session};

const A: u64 = 0xA;
const B: u64 = 0xB;

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// Two sessions and a virtual clock; datagrams travel in 1 ms, and `lose` decides, by
/// the datagram's number in its direction, which never arrive.
struct Link {
    a: Session,
    b: Session,
    now: Instant,
    a_events: Vec<Event>,
    b_events: Vec<Event>,
    /// When each of `b_events` was taken.
    b_at: Vec<Instant>,
    sent: [usize; 2],
}

impl Link {
    fn new(config: Config) -> Self {
        let now = Instant::now();
        Self {
            a: Session::new(config.clone(), A, addr(2), now),
            b: Session::new(config, B, addr(1), now),
            now,
            a_events: Vec::new(),
            b_events: Vec::new(),
            b_at: Vec::new(),
            sent: [0, 0],
        }
    }

    fn drain(&mut self) {
        self.a_events
            .extend(std::iter::from_fn(|| self.a.poll_event()));
        while let Some(event) = self.b.poll_event() {
            self.b_events.push(event);
            self.b_at.push(self.now);
        }
    }

    /// Runs until both are idle or `limit` of virtual time has passed.
    fn run(&mut self, limit: Duration, mut lose: impl FnMut(usize, usize) -> bool) {
        self.run_seeing(limit, |direction, number, _, _| lose(direction, number));
    }

    /// As [`run`](Self::run), with `lose` also seeing the time and the datagram.
    fn run_seeing(
        &mut self,
        limit: Duration,
        mut lose: impl FnMut(usize, usize, Instant, &[u8]) -> bool,
    ) {
        let end = self.now + limit;
        while self.now < end {
            self.drain();
            let mut in_transit = Vec::new();
            while let Some(t) = self.a.poll_transmit() {
                self.sent[0] += 1;
                if !lose(0, self.sent[0], self.now, &t.payload) {
                    in_transit.push((1, t.payload));
                }
            }
            while let Some(t) = self.b.poll_transmit() {
                self.sent[1] += 1;
                if !lose(1, self.sent[1], self.now, &t.payload) {
                    in_transit.push((0, t.payload));
                }
            }
            self.drain();
            if in_transit.is_empty() {
                if self.a.is_idle() && self.b.is_idle() {
                    return;
                }
                let next = [self.a.poll_timeout(), self.b.poll_timeout()]
                    .into_iter()
                    .flatten()
                    .min();
                let Some(next) = next else { return };
                self.now = next.max(self.now);
                self.a.handle_timeout(self.now);
                self.b.handle_timeout(self.now);
                continue;
            }
            self.now += Duration::from_millis(1);
            for (to, bytes) in in_transit {
                if to == 1 {
                    self.b.handle_datagram(self.now, addr(1), &bytes);
                } else {
                    self.a.handle_datagram(self.now, addr(2), &bytes);
                }
            }
        }
    }
}

fn received(events: &[Event]) -> Vec<&str> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Received { text, .. } => Some(text.as_str()),
            _ => None,
        })
        .collect()
}

fn count(events: &[Event], what: fn(&Event) -> bool) -> usize {
    events.iter().filter(|e| what(e)).count()
}

/// 35 KB of text whose characters are 1 to 4 bytes long, so parts must be cut at
/// character boundaries.
fn long_text() -> String {
    "a é € 😀 ".chars().cycle().take(20_000).collect::<String>() + "end"
}

#[test]
fn a_long_message_arrives_whole_once_between_short_ones_under_loss() {
    let mut link = Link::new(Config::default());
    let long = long_text();
    assert!(long.len() > 30 * 1121);
    link.a.send(link.now, "before".into()).unwrap();
    link.a.send(link.now, long.clone()).unwrap();
    link.a.send(link.now, "after".into()).unwrap();
    // Every seventh datagram each way is lost.
    link.run(Duration::from_secs(60), |_, n| n % 7 == 0);
    assert_eq!(received(&link.b_events), ["before", long.as_str(), "after"]);
    assert_eq!(
        count(&link.a_events, |e| matches!(e, Event::Delivered { .. })),
        3
    );
    assert_eq!(
        count(&link.a_events, |e| matches!(e, Event::Sent { .. })),
        3
    );
    assert_eq!(link.a.stats().messages_delivered, 3);
    assert_eq!(link.b.stats().messages_received, 3);
}

#[test]
fn a_long_message_that_fails_is_reported_once_with_all_its_text() {
    let config = Config {
        max_retries: 2,
        ..Config::default()
    };
    let mut link = Link::new(config);
    link.run(Duration::from_secs(1), |_, _| false);
    let long = long_text();
    link.a.send(link.now, long.clone()).unwrap();
    // The peer falls silent for good once the first datagrams got through.
    link.run(Duration::from_secs(120), |dir, n| dir == 0 && n > 4);
    let failed: Vec<&str> = link
        .a_events
        .iter()
        .filter_map(|e| match e {
            Event::Failed { text, .. } => Some(text.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(failed, [long.as_str()]);
    assert!(received(&link.b_events).is_empty());
}

#[test]
fn a_receiver_restart_in_the_middle_of_a_long_message_gets_it_whole() {
    let mut link = Link::new(Config::default());
    link.run(Duration::from_secs(1), |_, _| false);
    let long = long_text();
    link.a.send(link.now, long.clone()).unwrap();
    // Let part of it through, then B crashes and starts again with a new epoch.
    let mut steps = 0;
    link.run(Duration::from_secs(5), |dir, _| {
        steps += usize::from(dir == 0);
        steps > 20
    });
    let partial = received(&link.b_events).len();
    assert_eq!(partial, 0, "not whole yet");
    link.b = Session::new(Config::default(), B + 1, addr(1), link.now);
    link.b_events.clear();
    link.run(Duration::from_secs(60), |_, _| false);
    assert_eq!(received(&link.b_events), [long.as_str()]);
    assert_eq!(
        count(&link.a_events, |e| matches!(e, Event::Delivered { .. })),
        1
    );
}

#[test]
fn a_sending_limit_refuses_at_home_and_never_after_the_peer_acknowledged() {
    // A sends at most 5,000 bytes: a longer message is refused when it is queued, its
    // text still the caller's, and nothing is sent.
    let mut link = Link::new(Config::default());
    link.a = Session::new(
        Config {
            max_message_len: 5_000,
            ..Config::default()
        },
        A,
        addr(2),
        link.now,
    );
    let err = link.a.send(link.now, "x".repeat(20_000)).unwrap_err();
    assert_eq!(
        err,
        udpchat_proto::SendError::TooLong {
            len: 20_000,
            max: 5_000
        }
    );
    // B's own sending limit is small too, yet it takes A's longer messages: every
    // receiver accepts up to the protocol's maximum, so what is acknowledged is shown.
    link.b = Session::new(
        Config {
            max_message_len: 2_000,
            ..Config::default()
        },
        B,
        addr(1),
        link.now,
    );
    link.a.send(link.now, "y".repeat(5_000)).unwrap();
    link.run(Duration::from_secs(10), |_, _| false);
    assert_eq!(received(&link.b_events), ["y".repeat(5_000).as_str()]);
    assert_eq!(
        count(&link.a_events, |e| matches!(e, Event::Delivered { .. })),
        1
    );
}

#[test]
fn a_peer_cannot_make_the_receiver_hold_more_than_the_protocol_maximum() {
    let mut link = Link::new(Config::default());
    link.run(Duration::from_secs(1), |_, _| false);
    // A peer that ignores the maximum: parts past 16 MiB, then the last piece and one
    // more message, numbered by hand as A's stream toward B.
    let part = "p".repeat(1_000);
    let parts = udpchat_proto::MAX_MESSAGE_LEN / part.len() + 1;
    let payloads = (0..parts)
        .map(|_| Payload::Part(part.clone()))
        .chain([Payload::Text("end".into()), Payload::Text("short".into())]);
    for (seq, payload) in payloads.enumerate() {
        let packet = Packet {
            src_epoch: A,
            dst_epoch: B,
            frames: vec![Frame::Data {
                seq: seq as u64,
                after: 0,
                payload,
            }],
        };
        link.b.handle_datagram(link.now, addr(1), &packet.encode());
        // B's acknowledgements are not for the real A, which sent none of this.
        while link.b.poll_transmit().is_some() {}
    }
    link.drain();
    assert_eq!(received(&link.b_events), ["short"]);
    assert_eq!(
        count(&link.b_events, |e| matches!(e, Event::Rejected { .. })),
        1
    );
}

#[test]
fn a_line_typed_during_a_transfer_overtakes_the_queued_chunks() {
    let mut link = Link::new(Config::default());
    link.run(Duration::from_secs(1), |_, _| false);
    let chunk = link.a.max_chunk_len();
    queue_file(&mut link, 3000);
    link.a.send(link.now, "typed".into()).unwrap();
    let queued = link.a.file_chunks_queued();
    assert!(queued > 2000, "{queued} chunks queued");
    link.run(Duration::from_secs(30), |_, _| false);
    // The line went before most of the file, and every chunk arrived in order.
    let position = link
        .b_events
        .iter()
        .filter(|e| matches!(e, Event::File { .. } | Event::Received { .. }))
        .position(|e| matches!(e, Event::Received { .. }))
        .unwrap();
    assert!(position < 100, "the line came after {position} file frames");
    let offsets = chunk_offsets(&link.b_events);
    assert_eq!(offsets.len(), 3000);
    assert!(offsets.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(link.a.file_bytes_acked(), 3000 * chunk as u64);
    // No file frame is reported as a message of its own.
    assert_eq!(
        count(&link.a_events, |e| matches!(e, Event::Sent { .. })),
        1
    );
}

/// The offsets of the file chunks among `events`, in the order they came.
fn chunk_offsets(events: &[Event]) -> Vec<u64> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::File {
                frame: FileFrame::Chunk { offset, .. },
            } => Some(*offset),
            _ => None,
        })
        .collect()
}

/// True if the datagram carries the file chunk at `offset`.
fn carries_chunk(bytes: &[u8], offset: u64) -> bool {
    Packet::decode(bytes).is_ok_and(|p| {
        p.frames.iter().any(|f| {
            matches!(f, Frame::Data { payload: Payload::File(FileFrame::Chunk { offset: o, .. }), .. } if *o == offset)
        })
    })
}

#[test]
fn a_line_typed_after_a_lost_chunk_is_shown_before_the_chunk_is_repaired() {
    line_after_a_lost_chunk(Config::default());
}

#[test]
fn a_window_full_of_chunks_behind_a_lost_one_leaves_room_for_a_line() {
    // 64 messages: the chunks stop at 60 in flight, and the line takes the 61st.
    line_after_a_lost_chunk(Config {
        window: 64,
        ..Config::default()
    });
}

/// A file of 400 chunks whose first is lost for 200 ms; a line typed 20 ms in is shown
/// within a few milliseconds on a 1 ms link, long before the chunk is repaired, and the
/// file still arrives whole and in order.
fn line_after_a_lost_chunk(config: Config) {
    let mut link = Link::new(config);
    link.run(Duration::from_secs(1), |_, _| false);
    let chunk = link.a.max_chunk_len();
    let chunks = 400u64;
    queue_file(&mut link, chunks);
    // The chunk at offset 0 is lost, every time it is sent, for the first 200 ms; the
    // rest of the file fills the window behind it.
    let start = link.now;
    let hole = start + Duration::from_millis(200);
    let lose_first_chunk = |direction: usize, _: usize, now: Instant, bytes: &[u8]| {
        direction == 0 && now < hole && carries_chunk(bytes, 0)
    };
    link.run_seeing(Duration::from_millis(20), lose_first_chunk);
    assert!(link.b_events.is_empty() || !received(&link.b_events).contains(&"typed"));
    let typed_at = link.now;
    link.a.send(link.now, "typed".into()).unwrap();
    link.run_seeing(Duration::from_secs(30), lose_first_chunk);

    let at = |what: &dyn Fn(&Event) -> bool| {
        let i = link.b_events.iter().position(what).unwrap();
        link.b_at[i]
    };
    let shown = at(&|e| matches!(e, Event::Received { text, .. } if text == "typed"));
    let repaired = at(&|e| {
        matches!(
            e,
            Event::File {
                frame: FileFrame::Chunk { offset: 0, .. }
            }
        )
    });
    assert!(
        shown - typed_at <= Duration::from_millis(5),
        "the line took {:?} on a 1 ms link",
        shown - typed_at
    );
    assert!(
        repaired >= hole,
        "the chunk was repaired at {:?}",
        repaired - start
    );
    // Every chunk arrived once, in order, after the hole was filled.
    let offsets = chunk_offsets(&link.b_events);
    assert_eq!(
        offsets,
        (0..chunks).map(|i| i * chunk as u64).collect::<Vec<_>>()
    );
    assert_eq!(received(&link.b_events), vec!["typed"]);
    assert_eq!(link.a.file_bytes_acked(), chunks * chunk as u64);
}

/// Sends the offer and `chunks` chunks of a file from A, queued at once.
fn queue_file(link: &mut Link, chunks: u64) {
    let chunk = link.a.max_chunk_len();
    link.a
        .send_file_frame(
            link.now,
            FileFrame::Offer {
                transfer: 1,
                size: chunks * chunk as u64,
                hash: [7; 32],
                name: "big.bin".into(),
            },
        )
        .unwrap();
    for i in 0..chunks {
        let frame = FileFrame::Chunk {
            transfer: 1,
            offset: i * chunk as u64,
            data: vec![i as u8; chunk].into(),
        };
        link.a.send_file_frame(link.now, frame).unwrap();
    }
}

/// True for A's datagrams carrying the first chunk: it never arrives.
fn lose_first_chunk(direction: usize, _: usize, _: Instant, bytes: &[u8]) -> bool {
    direction == 0 && carries_chunk(bytes, 0)
}

/// A sends a file of 50 chunks whose first never arrives, and then the line "hi", which
/// B shows ahead of it. Returns the link and the line's id.
fn line_shown_ahead_of_a_chunk_never_repaired() -> (Link, udpchat_proto::MessageId) {
    let mut link = Link::new(Config::default());
    link.run(Duration::from_secs(1), |_, _| false);
    queue_file(&mut link, 50);
    link.run_seeing(Duration::from_millis(10), lose_first_chunk);
    let id = link.a.send(link.now, "hi".into()).unwrap();
    link.run_seeing(Duration::from_millis(10), lose_first_chunk);
    assert_eq!(received(&link.b_events), vec!["hi"]);
    (link, id)
}

#[test]
fn a_line_shown_ahead_of_a_lost_chunk_is_delivered_when_the_peer_leaves() {
    // B shows the line ahead of the lost chunk, then its person quits before the chunk
    // is repaired.
    let (mut link, id) = line_shown_ahead_of_a_chunk_never_repaired();
    link.b.close(link.now);
    link.run_seeing(Duration::from_secs(5), lose_first_chunk);
    assert!(
        link.a_events
            .iter()
            .any(|e| matches!(e, Event::Delivered { id: d, .. } if *d == id)),
        "{:?}",
        link.a_events
    );
    assert_eq!(
        count(
            &link.a_events,
            |e| matches!(e, Event::Failed { text, .. } if text == "hi")
        ),
        0
    );
}

#[test]
fn a_line_shown_ahead_of_a_lost_chunk_is_not_sent_again_to_a_restarted_peer() {
    let (mut link, id) = line_shown_ahead_of_a_chunk_never_repaired();
    // B crashes and starts again: its new run must not be sent the line it showed.
    link.b = Session::new(Config::default(), B + 1, addr(1), link.now);
    link.b_events.clear();
    link.b_at.clear();
    link.run(Duration::from_secs(5), |_, _| false);
    assert!(
        received(&link.b_events).is_empty(),
        "{:?}",
        received(&link.b_events)
    );
    assert!(link
        .a_events
        .iter()
        .any(|e| matches!(e, Event::Delivered { id: d, .. } if *d == id)));
}

#[test]
fn file_frames_round_trip_on_the_wire() {
    let frames = [
        FileFrame::Offer {
            transfer: 1,
            size: 5,
            hash: [9; 32],
            name: "dir/ä.txt".into(),
        },
        FileFrame::Accept {
            transfer: 1,
            from: 3,
        },
        FileFrame::Cancel {
            transfer: 1,
            reason: udpchat_proto::CancelReason::Declined,
        },
        FileFrame::Chunk {
            transfer: 1,
            offset: 3,
            data: b"lo".to_vec().into(),
        },
        FileFrame::Stored { transfer: 1 },
    ];
    for (seq, frame) in frames.into_iter().enumerate() {
        let packet = Packet {
            src_epoch: 1,
            dst_epoch: 2,
            frames: vec![Frame::Data {
                seq: seq as u64,
                after: 0,
                payload: Payload::File(frame),
            }],
        };
        assert_eq!(Packet::decode(&packet.encode()), Ok(packet));
    }
}

#[test]
fn a_long_message_given_up_halfway_does_not_start_the_next() {
    let config = Config {
        max_retries: 2,
        ..Config::default()
    };
    let mut link = Link::new(config);
    link.run(Duration::from_secs(1), |_, _| false);
    let long = long_text();
    link.a.send(link.now, long.clone()).unwrap();
    // Its first datagrams arrive, then nothing from A gets through until it gives up.
    let mut healed = false;
    let start = link.sent[0];
    link.run(Duration::from_secs(120), |dir, n| dir == 0 && n > start + 3);
    assert!(link
        .a_events
        .iter()
        .any(|e| matches!(e, Event::Failed { .. })));
    // The link is back: the next line must arrive as itself.
    link.a.send(link.now, "after".into()).unwrap();
    link.run(Duration::from_secs(60), |_, _| {
        healed = true;
        false
    });
    assert!(healed);
    assert_eq!(received(&link.b_events), ["after"]);
}
