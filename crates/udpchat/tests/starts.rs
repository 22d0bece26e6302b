//! Starting a chat as people do: both ends at once, or one long before the other, with
//! a line typed at once on each side (before the other end is up), with the defaults
//! and with `--timeout 50ms` (where version 1 failed every message in half the
//! simultaneous starts: their retry budget ran out during the handshake). Twenty of
//! each, through the real binary, with keys pinned from an earlier first contact.
//!
//! Asserted: no message fails, each arrives exactly once, both exit 0. The times are
//! printed (the goal of 100 ms from typing to acknowledgement is measured in
//! `udpchat-bench starts`, docs/BENCHMARKS.md, not judged here on a busy CI machine).

// Test support: a panic with the captured output is the right way to fail here.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::{acquainted, free_port, localhost, Proc};

/// How one round went: the time from each line being typed (or from the late side
/// starting, whichever is later) to its acknowledgement.
struct Round {
    acked_after: Vec<Duration>,
}

/// One round: A starts, B starts `stagger` later; each types one line at its start.
fn round(extra: &[&str], stagger: Duration, tag: &str) -> Round {
    let (pa, pb) = (free_port(), free_port());
    let (home_a, home_b) = acquainted(pa, pb);
    let spawn = |name: &str, port: u16, peer: u16, home: &std::path::Path| {
        let mut args = vec!["--home", home.to_str().unwrap()];
        args.extend_from_slice(extra);
        Proc::chat(name, port, localhost(peer), &args)
    };
    let a_start = Instant::now();
    let mut a = spawn(&format!("A{tag}"), pa, pb, &home_a);
    a.write_lines([format!("hello from A{tag}")]);
    a.close_stdin();
    std::thread::sleep(stagger);
    let b_start = Instant::now();
    let mut b = spawn(&format!("B{tag}"), pb, pa, &home_b);
    b.write_lines([format!("hello from B{tag}")]);
    b.close_stdin();
    let (sa, sb) = (a.wait_exit(), b.wait_exit());
    let context = || format!("{}\n{}", a.dump(), b.dump());
    assert!(sa.success() && sb.success(), "{sa} {sb}\n{}", context());
    assert_eq!(
        b.received(),
        [format!("hello from A{tag}")],
        "{}",
        context()
    );
    assert_eq!(
        a.received(),
        [format!("hello from B{tag}")],
        "{}",
        context()
    );
    let mut acked_after = Vec::new();
    for (p, typed) in [(&a, a_start), (&b, b_start)] {
        let exit = p.exit_event();
        assert_eq!(exit["failed"], 0, "{}", context());
        assert_eq!(exit["delivered"], 1, "{}", context());
        assert!(p.events_named("refused").is_empty(), "{}", context());
        let delivered = p.events_named("delivered");
        let elapsed = Duration::from_millis(delivered[0]["elapsed_ms"].as_u64().unwrap());
        // From the later of "typed" and "the other side started".
        let since = b_start.saturating_duration_since(typed);
        acked_after.push(elapsed.saturating_sub(since));
    }
    Round { acked_after }
}

/// Runs `count` rounds, `batch` at a time in parallel; returns all the times.
fn rounds(extra: &'static [&'static str], stagger: Duration, count: usize) -> Vec<Duration> {
    let batch = 5;
    let mut times = Vec::new();
    for first in (0..count).step_by(batch) {
        let handles: Vec<_> = (first..(first + batch).min(count))
            .map(|i| std::thread::spawn(move || round(extra, stagger, &i.to_string())))
            .collect();
        for h in handles {
            times.extend(h.join().unwrap().acked_after);
        }
    }
    times.sort_unstable();
    times
}

fn report(what: &str, times: &[Duration]) {
    let pct = |p: f64| times[((times.len() - 1) as f64 * p) as usize];
    eprintln!(
        "{what}: first message acknowledged after p50 {:?}, p90 {:?}, max {:?} ({} messages, none failed)",
        pct(0.5),
        pct(0.9),
        pct(1.0),
        times.len()
    );
}

#[test]
fn twenty_simultaneous_starts_lose_nothing() {
    for extra in [&[][..], &["--timeout", "50ms"][..]] {
        let times = rounds(extra, Duration::ZERO, 20);
        report(&format!("simultaneous {extra:?}"), &times);
    }
}

#[test]
fn twenty_staggered_starts_lose_nothing() {
    // Two seconds apart: twice as long as version 1 took to give up a message with
    // `--timeout 50ms`, and past the first few handshake retries.
    for extra in [&[][..], &["--timeout", "50ms"][..]] {
        let times = rounds(extra, Duration::from_secs(2), 20);
        report(&format!("staggered by 2 s {extra:?}"), &times);
    }
}
