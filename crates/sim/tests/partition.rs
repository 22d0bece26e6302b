//! A 30-second partition of virtual time: the peer goes unreachable, comes back online,
//! and every queued message is delivered afterwards, in order. With a small retry limit,
//! a message caught in the partition is reported failed with its text instead.

use std::time::Duration;

use udpchat_impair::ImpairConfig;
use udpchat_proto::{Config, PeerState};
use udpchat_sim::scenario::sim_protocol;
use udpchat_sim::{run, Scenario, SimSecurity};

fn partitioned(protocol: Config, security: SimSecurity) -> Scenario {
    Scenario {
        name: "partition 30 s".into(),
        protocol,
        link: ImpairConfig {
            delay: Duration::from_millis(20),
            jitter: Duration::from_millis(5),
            loss: 0.05,
            ..ImpairConfig::default()
        },
        // One message every 100 ms for 20 s: many are typed during the partition.
        messages: 200,
        send_interval: Duration::from_millis(100),
        heal_at: Duration::from_secs(120),
        settle: Duration::from_secs(60),
        restart_b_after: None,
        b_starts_at: Duration::ZERO,
        goodbye: false,
        stall_b: None,
        file: 0,
        // From 3 s: late enough that a first handshake lost to the 5% loss (retried
        // after 1 s) has completed, so the peer was online before it vanished.
        partition: Some((Duration::from_secs(3), Duration::from_secs(33))),
        security,
    }
}

#[test]
fn everything_queued_is_delivered_after_a_partition_heals() {
    let modes = [
        (SimSecurity::Plaintext, 50),
        (SimSecurity::Passphrase, 15),
        (SimSecurity::Pinned, 15),
    ];
    for (window, (security, seeds)) in [1, 8, 64].into_iter().flat_map(|w| modes.map(|m| (w, m))) {
        for seed in 0..seeds {
            // The default retry limit rides out 30 s.
            let scenario = partitioned(
                Config {
                    window,
                    ..Config::default()
                },
                security,
            );
            let outcome = run(&scenario, seed);
            let v = outcome.violations();
            assert!(v.is_empty(), "{}", outcome.failure_report(&v));
            assert!(outcome.a.failed.is_empty(), "window {window} seed {seed}");
            assert_eq!(
                outcome.b.received, outcome.a.sent,
                "window {window} seed {seed}"
            );
            assert_eq!(
                outcome.a.peer_states,
                vec![PeerState::Online, PeerState::Unreachable, PeerState::Online],
                "window {window} seed {seed}"
            );
        }
    }
}

#[test]
fn a_message_past_its_retries_fails_with_its_text_and_the_rest_still_arrive() {
    for seed in 0..50 {
        let scenario = partitioned(
            Config {
                max_retries: 3,
                ..sim_protocol(8)
            },
            SimSecurity::Plaintext,
        );
        let outcome = run(&scenario, seed);
        let v = outcome.violations();
        assert!(v.is_empty(), "{}", outcome.failure_report(&v));
        assert!(!outcome.a.failed.is_empty(), "seed {seed}: nothing failed");
        // Each failed text was a real message, and was reported, not dropped.
        for text in &outcome.a.failed {
            assert!(outcome.a.sent.contains(text));
        }
        assert_eq!(
            outcome.a.delivered.len() + outcome.a.failed.len(),
            outcome.a.sent.len()
        );
    }
}
