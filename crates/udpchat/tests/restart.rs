//! B is killed (SIGKILL) in the middle of a conversation while A still has messages on
//! the way, and starts again on the same port. A learns of the new run, sends it every
//! message the old run had not acknowledged, in order, and loses none.

mod common;

use common::{free_port, localhost, Proc};

const BEFORE: usize = 10;
const DURING: usize = 10;

fn start(name: &str, port: u16, peer_port: u16, seed: &str) -> Proc {
    Proc::chat(
        name,
        port,
        localhost(peer_port),
        &[
            "--drop",
            "0.2",
            "--ack-drop",
            "0.2",
            "--timeout",
            "50ms",
            // B is down for a moment: A must not give up on its messages meanwhile.
            "--max-retries",
            "1000",
            "--seed",
            seed,
        ],
    )
}

fn a_line(i: usize) -> String {
    format!("from a {i}")
}

#[test]
fn a_resynchronises_with_a_restarted_b_and_loses_nothing() {
    let started = std::time::Instant::now();
    let (pa, pb) = (free_port(), free_port());
    let mut a = start("A", pa, pb, "11");
    let mut b1 = start("B1", pb, pa, "12");
    a.started();
    let (b1_epoch, _) = b1.started();

    // A conversation: both talk; B1 is killed once it has half of A's first lines.
    a.write_lines((0..BEFORE).map(a_line));
    b1.write_lines(["from b 0", "from b 1"]);
    b1.wait_until("half of A's lines", |ev| {
        ev.iter()
            .any(|e| e["event"] == "received" && e["text"] == a_line(BEFORE / 2 - 1))
    });
    b1.kill();

    // A goes on typing while B is down: these cannot have been acknowledged by anyone.
    let killed_at = a.events().len();
    a.write_lines((BEFORE..BEFORE + DURING).map(a_line));
    a.wait_until("A retransmitting into the void", |ev| {
        ev[killed_at..]
            .iter()
            .any(|e| e["event"] == "retransmitted")
    });

    let mut b2 = start("B2", pb, pa, "13");
    let (b2_epoch, _) = b2.started();
    assert_ne!(b1_epoch, b2_epoch, "a new run has a new epoch");
    let restarted = a.wait_event("peer_restarted", |e| e["event"] == "peer_restarted");
    assert_eq!(restarted["old_epoch"], b1_epoch.as_str(), "{restarted}");
    assert_eq!(restarted["new_epoch"], b2_epoch.as_str(), "{restarted}");
    let last = a_line(BEFORE + DURING - 1);
    b2.wait_until("A's last line at B2", |ev| {
        ev.iter()
            .any(|e| e["event"] == "received" && e["text"] == last)
    });

    a.close_stdin();
    b2.close_stdin();
    let status_a = a.wait_exit();
    let status_b2 = b2.wait_exit();
    let context = || format!("{}\n{}\n{}", a.dump(), b1.dump(), b2.dump());

    let all: Vec<String> = (0..BEFORE + DURING).map(a_line).collect();
    let got1 = b1.received();
    let got2 = b2.received();
    // B1 saw a prefix of A's lines, B2 a suffix ending with the last one, in order.
    assert_eq!(got1, all[..got1.len()], "B1: a prefix\n{}", context());
    let from = all.len() - got2.len();
    assert_eq!(got2, all[from..], "B2: a suffix\n{}", context());
    // Nothing fell in between: whatever B1 did not get, B2 got.
    assert!(from <= got1.len(), "a gap between B1 and B2\n{}", context());
    // What A calls delivered after the restart was delivered to B2. Ids follow the
    // order of A's lines, as every line is a valid message.
    let a_events = a.events();
    let after = a_events
        .iter()
        .position(|e| e["event"] == "peer_restarted")
        .unwrap();
    for e in &a_events[after..] {
        if e["event"] == "delivered" {
            let text = a_line(e["id"].as_u64().unwrap() as usize);
            assert!(
                got2.contains(&text),
                "{text} delivered after the restart\n{}",
                context()
            );
        }
    }
    // A received B1's lines in order, once each.
    let from_b = a.received();
    assert_eq!(
        from_b,
        ["from b 0", "from b 1"][..from_b.len()],
        "{}",
        context()
    );

    assert!(status_a.success(), "A: {status_a}\n{}", context());
    assert!(status_b2.success(), "B2: {status_b2}\n{}", context());
    assert_eq!(a.exit_event()["failed"], 0, "{}", context());
    assert_eq!(a.exit_event()["delivered"], all.len(), "{}", context());
    eprintln!("restart: {:?}", started.elapsed());
}
