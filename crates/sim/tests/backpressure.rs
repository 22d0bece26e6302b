//! Bounded memory: a sender that could type far faster than the network carries is held
//! back by its session's queue limit, never allowed to grow it, and loses nothing.

use std::time::Duration;

use udpchat_impair::ImpairConfig;
use udpchat_proto::Config;
use udpchat_sim::{run, Scenario};

#[test]
fn a_flooding_sender_is_slowed_down_and_nothing_is_lost() {
    const QUEUE: usize = 32;
    const MESSAGES: usize = 3_000;
    let scenario = Scenario {
        name: "flood".into(),
        protocol: Config {
            send_queue: QUEUE,
            window: 8,
            max_retries: 100_000,
            ..Config::default()
        },
        link: ImpairConfig {
            delay: Duration::from_millis(50),
            loss: 0.1,
            ..ImpairConfig::default()
        },
        messages: MESSAGES,
        // All 3,000 are ready at once: the producer is as fast as can be.
        send_interval: Duration::ZERO,
        heal_at: Duration::from_secs(3_600),
        settle: Duration::from_secs(60),
        restart_b_after: None,
        b_starts_at: Duration::ZERO,
        goodbye: false,
        stall_b: None,
        file: 0,
        partition: None,
        security: udpchat_sim::SimSecurity::Plaintext,
    };
    for seed in 0..5 {
        let outcome = run(&scenario, seed);
        let v = outcome.violations();
        assert!(v.is_empty(), "{}", outcome.failure_report(&v));
        assert_eq!(outcome.b.received, outcome.a.sent, "seed {seed}");
        assert_eq!(
            outcome.a.sent.len(),
            MESSAGES,
            "seed {seed}: every message offered"
        );
        // Memory is bounded by the queue limit, not by how much there is to send.
        assert!(
            outcome.a.peak_outstanding <= QUEUE,
            "{}",
            outcome.a.peak_outstanding
        );
        assert_eq!(
            outcome.a.peak_outstanding, QUEUE,
            "the limit was actually reached"
        );
        // Held to the network's pace: 8 in flight per 100 ms round trip at best.
        let floor = Duration::from_millis(100) * (MESSAGES / 8) as u32;
        assert!(outcome.elapsed >= floor, "{:?}", outcome.elapsed);
    }
}
