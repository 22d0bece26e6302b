//! Retransmissions that should not happen, counted: a peer that holds its ACKs (delayed
//! ACKs, advertised as `max_ack_delay`), and a receiver that stalls (a descheduled or
//! stopped process). The sender must allow for the first and, for the second, send one
//! probe per backed-off timeout, learn from the D-SACKs that they were unnecessary, and
//! show nothing twice.

use std::time::Duration;

use udpchat_impair::ImpairConfig;
use udpchat_proto::Config;
use udpchat_sim::summary::print_uncaptured;
use udpchat_sim::{run, Outcome, Scenario, SimSecurity};

fn chat(name: &str, protocol: Config, stall_b: Option<(Duration, Duration)>) -> Scenario {
    Scenario {
        name: name.into(),
        protocol,
        link: ImpairConfig {
            delay: Duration::from_millis(10),
            jitter: Duration::from_millis(2),
            ..ImpairConfig::default()
        },
        messages: 40,
        // Typed as people type: each line alone, each answered alone.
        send_interval: Duration::from_millis(50),
        heal_at: Duration::ZERO,
        settle: Duration::from_secs(60),
        restart_b_after: None,
        b_starts_at: Duration::ZERO,
        goodbye: true,
        stall_b,
        file: 0,
        partition: None,
        security: SimSecurity::Plaintext,
    }
}

fn report(o: &Outcome) -> String {
    let (a, b) = (&o.a.stats, &o.b.stats);
    format!(
        "{:<32} seed {:>2}: timeouts a {} b {}, retransmissions a {} b {}, found unnecessary a {} b {}",
        o.scenario,
        o.seed,
        a.timeouts,
        b.timeouts,
        a.retransmissions,
        b.retransmissions,
        a.spurious_retransmissions,
        b.spurious_retransmissions
    )
}

fn checked(s: &Scenario, seed: u64) -> Outcome {
    let o = run(s, seed);
    let v = o.violations();
    assert!(v.is_empty(), "{}", o.failure_report(&v));
    print_uncaptured(&report(&o));
    o
}

#[test]
fn delayed_acks_within_the_advertised_maximum_cost_no_retransmission() {
    for ack_delay_ms in [0, 5, 25, 100] {
        let protocol = Config {
            ack_delay: Duration::from_millis(ack_delay_ms),
            ..Config::default()
        };
        let s = chat(
            &format!("ACKs held up to {ack_delay_ms} ms"),
            protocol,
            None,
        );
        for seed in 0..20 {
            let o = checked(&s, seed);
            assert_eq!(
                o.a.stats.retransmissions + o.b.stats.retransmissions,
                0,
                "{}",
                report(&o)
            );
        }
    }
}

#[test]
fn a_stalled_receiver_gets_one_probe_per_backed_off_timeout_and_they_are_found_unnecessary() {
    // B stops for 500 ms in the middle of the conversation (at 1 s, after 20 lines).
    let stall = (Duration::from_millis(1000), Duration::from_millis(1500));
    let s = chat("receiver stalled 500 ms", Config::default(), Some(stall));
    for seed in 0..20 {
        let o = checked(&s, seed);
        let a = &o.a.stats;
        // The RTO is about 20-24 ms of path plus the peer's 5 ms allowance, doubling at
        // each expiry: 1x, 3x, 7x, 15x of it fall inside 500 ms, and each expiry sends
        // one datagram of the oldest messages.
        let resent = o.a.attempts.iter().filter(|&&n| n > 1).count() as u64;
        eprintln!("resent messages {resent}, attempts {:?}", o.a.attempts);
        // Every probe arrived after the original (the path lost nothing): each message
        // sent again is reported as a duplicate and counted as unnecessarily resent.
        assert_eq!(a.spurious_retransmissions, resent, "{}", report(&o));
    }
}
