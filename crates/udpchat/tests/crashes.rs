//! Exactly once across crashes, through the real binary (PROTOCOL.md §6b): one
//! conversation of 400 lines from A to B under 20% simulated loss of messages and of
//! acknowledgements on both sides, while 200 times the sender, the receiver or both are
//! killed with SIGKILL at a random moment (before, during or after any commit, between
//! receiving and acknowledging) and started again.
//!
//! The person at A types on: after A is restarted, the lines its store does not hold
//! (they were read from the pipe but never accepted) are typed again, as someone who
//! looks at `udpchat history` would. At the end both sides end their input and must
//! exit 0. Asserted: B's history holds every line exactly once, in order; no run of B
//! printed a line twice or out of order; A's outbox is empty and every line of A's
//! history is delivered.

// Test support: a panic with the captured output is the right way to fail here.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::time::Duration;

use common::{acquainted, free_port, history, history_texts, localhost, run, Proc};
use rand::{Rng, SeedableRng};

const LINES: usize = 400;
const ROUNDS: usize = 200;

struct Side<'a> {
    name: &'static str,
    home: &'a Path,
    port: u16,
    peer: u16,
    seed: u64,
    runs: usize,
}

impl Side<'_> {
    fn start(&mut self) -> Proc {
        self.runs += 1;
        let (peer, port, seed) = (
            localhost(self.peer).to_string(),
            self.port.to_string(),
            (self.seed + self.runs as u64).to_string(),
        );
        Proc::spawn(
            &format!("{}{}", self.name, self.runs),
            &[
                &peer,
                "--port",
                &port,
                "--json",
                "--home",
                self.home.to_str().unwrap(),
                "--drop",
                "0.2",
                "--ack-drop",
                "0.2",
                "--seed",
                &seed,
            ],
        )
    }
}

/// Types again at a restarted A what the person had typed and A's store does not hold.
fn type_again(a: &mut Proc, home: &Path, lines: &[String]) {
    let accepted = history_texts(home, "out");
    assert_eq!(
        accepted,
        lines[..accepted.len()],
        "A accepted lines in order"
    );
    a.write_lines(&lines[accepted.len()..]);
}

/// Lines typed per round: the conversation lasts through every crash.
const PER_ROUND: usize = LINES / ROUNDS;

#[test]
fn two_hundred_crashes_lose_and_repeat_nothing() {
    let seed: u64 = std::env::var("UDPCHAT_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    eprintln!("crash schedule seed {seed} (UDPCHAT_CRASH_SEED to replay)");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let lines: Vec<String> = (0..LINES).map(|i| format!("line {i:04}")).collect();
    let (pa, pb) = (free_port(), free_port());
    let (home_a, home_b) = acquainted(pa, pb);
    let mut side_a = Side {
        name: "A",
        home: &home_a,
        port: pa,
        peer: pb,
        seed,
        runs: 0,
    };
    let mut side_b = Side {
        name: "B",
        home: &home_b,
        port: pb,
        peer: pa,
        seed: seed ^ 0xB,
        runs: 0,
    };
    let mut b = side_b.start();
    let mut a = side_a.start();
    let mut typed = 0;
    // Every line B printed, run by run.
    let mut printed: Vec<Vec<String>> = Vec::new();
    let (mut killed_a, mut killed_b) = (0, 0);
    for _ in 0..ROUNDS {
        a.write_lines(&lines[typed..typed + PER_ROUND]);
        typed += PER_ROUND;
        std::thread::sleep(Duration::from_millis(rng.random_range(0..120)));
        match rng.random_range(0..3) {
            0 => {
                a.kill();
                killed_a += 1;
                a = side_a.start();
                type_again(&mut a, &home_a, &lines[..typed]);
            }
            1 => {
                b.kill();
                killed_b += 1;
                printed.push(b.received());
                b = side_b.start();
            }
            _ => {
                a.kill();
                b.kill();
                killed_a += 1;
                killed_b += 1;
                printed.push(b.received());
                b = side_b.start();
                a = side_a.start();
                type_again(&mut a, &home_a, &lines[..typed]);
            }
        }
    }
    let shown_before_end = history_texts(&home_b, "in").len();
    eprintln!(
        "{ROUNDS} rounds: A killed {killed_a} times, B {killed_b} times; {shown_before_end} of {LINES} lines shown by then"
    );
    // The end: both stop typing, the rest is delivered, both leave. Both runs meet
    // first: a side whose input ends before it has ever met the peer leaves at once
    // (nothing to say, nobody to wait for), and A's last unconfirmed lines would wait.
    a.write_lines(&lines[typed..]);
    for p in [&a, &b] {
        p.wait_event("the last runs to meet", |e| e["event"] == "connected");
    }
    a.close_stdin();
    b.close_stdin();
    assert!(a.wait_exit_or_dump(&b).success(), "{}", a.dump());
    assert!(b.wait_exit_or_dump(&a).success(), "{}", b.dump());
    printed.push(b.received());

    let shown = history_texts(&home_b, "in");
    assert_eq!(shown.len(), LINES, "every line once in B's history");
    assert_eq!(shown, lines, "in order");
    for (run, run_printed) in printed.iter().enumerate() {
        let mut seen = std::collections::HashSet::new();
        let mut last = None;
        for text in run_printed {
            assert!(seen.insert(text), "run {run} of B printed {text} twice");
            let i = lines.iter().position(|l| l == text).unwrap();
            assert!(last < Some(i), "run {run} of B printed {text} out of order");
            last = Some(i);
        }
    }
    // Across runs too: a line is printed by one run at most (a crash between its
    // commit and its printing leaves it in the history only, which the full-screen
    // chat and `udpchat history` show).
    let mut across = std::collections::HashSet::new();
    for text in printed.iter().flatten() {
        assert!(across.insert(text), "{text} printed by two runs of B");
    }
    let sent = history(&home_a);
    assert_eq!(history_texts(&home_a, "out"), lines);
    assert!(
        sent.iter().all(|m| m["state"] == "delivered"),
        "every line of A's history delivered"
    );
    let outbox = run(&["outbox", "--json", "--home", home_a.to_str().unwrap()]);
    assert!(outbox.stdout.is_empty(), "A's outbox is empty");
}
