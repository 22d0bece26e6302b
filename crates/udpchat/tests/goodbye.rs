//! The goodbye through the real binary (PROTOCOL.md §6a). Two processes on loopback,
//! each ignoring 20% of the messages and 20% of the acknowledgements it receives (the
//! original program's loss), are given their lines and the end of their input at once:
//! in every round both exit 0, each having shown every line of the other, and neither
//! reports anything failed. Ctrl-C on one side tells the other at once.

mod common;

use common::{free_port, localhost, Proc};

const ROUNDS: usize = 10;
const LINES: usize = 50;

fn lines(side: &str, round: usize) -> Vec<String> {
    (0..LINES)
        .map(|i| format!("{side} round {round} line {i}"))
        .collect()
}

#[test]
fn both_sides_end_their_input_under_loss_and_both_exit_0_every_round() {
    let started = std::time::Instant::now();
    for round in 0..ROUNDS {
        let (pa, pb) = (free_port(), free_port());
        let (seed_a, seed_b) = ((2 * round + 1).to_string(), (2 * round + 2).to_string());
        let mut a = Proc::chat(
            "A",
            pa,
            localhost(pb),
            &["--drop", "0.2", "--ack-drop", "0.2", "--seed", &seed_a],
        );
        let mut b = Proc::chat(
            "B",
            pb,
            localhost(pa),
            &["--drop", "0.2", "--ack-drop", "0.2", "--seed", &seed_b],
        );
        a.started();
        b.started();
        // The lines and the end of input right after them: the goodbye starts while
        // most of them are still in flight, both ways.
        a.write_lines(lines("a", round));
        b.write_lines(lines("b", round));
        a.close_stdin();
        b.close_stdin();
        let status_a = a.wait_exit_or_dump(&b);
        let status_b = b.wait_exit_or_dump(&a);
        let context = || format!("round {round}\n{}\n{}", a.dump(), b.dump());
        assert!(status_a.success(), "A: {status_a}\n{}", context());
        assert!(status_b.success(), "B: {status_b}\n{}", context());
        assert_eq!(b.received(), lines("a", round), "{}", context());
        assert_eq!(a.received(), lines("b", round), "{}", context());
        for p in [&a, &b] {
            // Every event a lossy run prints (retransmissions, duplicates, drops) is
            // as docs/JSON.md shows it.
            common::assert_documented(&p.events());
            assert!(p.events_named("failed").is_empty(), "{}", context());
            let exit = p.exit_event();
            assert_eq!(exit["delivered"], LINES, "{exit}");
            assert_eq!(exit["received"], LINES, "{exit}");
        }
    }
    eprintln!(
        "goodbye: {ROUNDS} rounds of {LINES} lines each way under 20%/20% loss, all exit 0, in {:?}",
        started.elapsed()
    );
}

#[test]
fn a_side_that_ends_its_input_waits_for_the_other_and_then_both_leave() {
    let (pa, pb) = (free_port(), free_port());
    let mut a = Proc::chat("A", pa, localhost(pb), &[]);
    let mut b = Proc::chat("B", pb, localhost(pa), &[]);
    a.write_lines(["my last word"]);
    a.close_stdin();
    // B is told A has finished, and can still answer: A is waiting for it.
    b.wait_event("A's end of input", |e| e["event"] == "peer_done");
    b.write_lines(["one more thing"]);
    a.wait_event("B's answer", |e| e["event"] == "received");
    b.close_stdin();
    assert!(a.wait_exit_or_dump(&b).success(), "{}", a.dump());
    assert!(b.wait_exit_or_dump(&a).success(), "{}", b.dump());
    assert_eq!(b.received(), ["my last word"]);
    assert_eq!(a.received(), ["one more thing"]);
    let left = b.events_named("peer_left");
    assert!(left.iter().all(|e| e["finished"] == true), "{}", b.dump());
}

#[test]
fn ctrl_c_tells_the_peer_at_once() {
    let (pa, pb) = (free_port(), free_port());
    let mut a = Proc::chat("A", pa, localhost(pb), &[]);
    let mut b = Proc::chat("B", pb, localhost(pa), &[]);
    a.write_lines(["hello"]);
    b.wait_event("A's line", |e| e["event"] == "received");
    // SIGINT, as Ctrl-C in a terminal.
    let status = std::process::Command::new("kill")
        .args(["-INT", &a.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(a.wait_exit().code(), Some(130), "{}", a.dump());
    let left = b.wait_event("A left", |e| e["event"] == "peer_left");
    assert_eq!(left["finished"], false, "{left}");
    // A line typed now waits for A's next run instead of being retried into the void.
    b.close_stdin();
    assert!(b.wait_exit().success(), "{}", b.dump());
}
