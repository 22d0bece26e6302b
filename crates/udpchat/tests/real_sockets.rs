//! Two real `udpchat` processes on loopback, each ignoring 20% of the messages and 20%
//! of the acknowledgements it receives, send 200 messages each way at the same time:
//! every message arrives exactly once, in order, on both sides. Once as the issue asks
//! (stop-and-wait, a fixed 50 ms timeout), once with the defaults (a window of 64 and
//! the adaptive timeout).

mod common;

use common::{free_port, localhost, Proc};

const MESSAGES: usize = 200;

fn lines(side: &str) -> Vec<String> {
    (0..MESSAGES)
        .map(|i| format!("{side} message {i}"))
        .collect()
}

fn start(name: &str, port: u16, peer_port: u16, seed: &str, extra: &[&str]) -> Proc {
    let mut args = vec!["--drop", "0.2", "--ack-drop", "0.2", "--seed", seed];
    args.extend_from_slice(extra);
    Proc::chat(name, port, localhost(peer_port), &args)
}

#[test]
fn two_hundred_messages_each_way_under_loss_arrive_once_in_order() {
    exchange(&["--timeout", "50ms", "--window", "1"]);
}

#[test]
fn the_same_with_the_default_window_and_adaptive_timeout() {
    exchange(&[]);
}

fn exchange(extra: &[&str]) {
    let started = std::time::Instant::now();
    let (pa, pb) = (free_port(), free_port());
    let mut a = start("A", pa, pb, "1", extra);
    let mut b = start("B", pb, pa, "2", extra);
    // Both are bound before anything is sent, so no line meets a port that is closed.
    a.started();
    b.started();

    // One line at a time, each typed once the previous one is on the wire, as the
    // original program was used: each message then travels in its own datagram, and
    // about one in five is lost. (Written all at once, the lines would share a few
    // datagrams, and a run could meet no loss at all.)
    let sent = |p: &Proc, n: usize| {
        p.wait_until(&format!("{n} lines sent"), |ev| {
            ev.iter().filter(|e| e["event"] == "sent").count() >= n
        });
    };
    for (i, (line_a, line_b)) in lines("a").into_iter().zip(lines("b")).enumerate() {
        a.write_lines([line_a]);
        b.write_lines([line_b]);
        sent(&a, i + 1);
        sent(&b, i + 1);
    }
    a.close_stdin();
    b.close_stdin();

    let status_a = a.wait_exit_or_dump(&b);
    let status_b = b.wait_exit_or_dump(&a);
    let context = || format!("{}\n{}", a.dump(), b.dump());
    assert_eq!(b.received(), lines("a"), "B got A's lines\n{}", context());
    assert_eq!(a.received(), lines("b"), "A got B's lines\n{}", context());
    for (p, status) in [(&a, status_a), (&b, status_b)] {
        assert!(status.success(), "{status}\n{}", context());
        let exit = p.exit_event();
        assert_eq!(exit["failed"], 0, "{exit}");
        assert_eq!(exit["sent"], MESSAGES, "{exit}");
        assert_eq!(exit["delivered"], MESSAGES, "{exit}");
        assert_eq!(exit["received"], MESSAGES, "{exit}");
        // The loss really happened (about one datagram in five, seeded, of some 200).
        assert!(
            !p.events_named("dropped_by_simulation").is_empty(),
            "{}",
            context()
        );
        // Received sequence numbers are exactly 0..200, in order.
        let seqs: Vec<u64> = p
            .events_named("received")
            .iter()
            .filter_map(|e| e["seq"].as_u64())
            .collect();
        assert_eq!(seqs, (0..MESSAGES as u64).collect::<Vec<_>>());
    }
    // And it was repaired: a message datagram one side ignored was sent again by the
    // other. (How many messages share a datagram depends on timing, so how many
    // retransmissions there are does not; that there is one for each side's loss does.)
    for (sender, receiver) in [(&a, &b), (&b, &a)] {
        let data_drops = receiver
            .events_named("dropped_by_simulation")
            .iter()
            .filter(|e| e["kind"] == "data")
            .count();
        if data_drops > 0 {
            let exit = sender.exit_event();
            assert!(exit["retransmissions"].as_u64().unwrap_or(0) > 0, "{exit}");
        }
    }
    eprintln!("real_sockets {extra:?}: {:?}", started.elapsed());
}
