//! A peer crashes mid-conversation and a new run of it starts on the same address: the
//! survivor resynchronises, nothing is shown out of order, and what was unacknowledged
//! reaches the new run.

use std::time::Duration;

use udpchat_impair::ImpairConfig;
use udpchat_sim::scenario::sim_protocol;
use udpchat_sim::{run, Scenario, SimSecurity};

fn crash(link: ImpairConfig, security: SimSecurity) -> Scenario {
    Scenario {
        name: "restart b".into(),
        protocol: sim_protocol(1),
        link,
        messages: 100,
        send_interval: Duration::ZERO,
        heal_at: Duration::from_secs(120),
        settle: Duration::from_secs(60),
        // Mid-conversation.
        restart_b_after: Some(30),
        b_starts_at: Duration::ZERO,
        goodbye: false,
        stall_b: None,
        file: 0,
        partition: None,
        security,
    }
}

#[test]
fn survivor_resends_unacknowledged_messages_to_the_new_run() {
    let links = [
        ImpairConfig {
            delay: Duration::from_millis(20),
            ..ImpairConfig::default()
        },
        ImpairConfig {
            loss: 0.2,
            duplicate: 0.1,
            reorder: 0.2,
            reorder_delay: Duration::from_millis(400),
            corrupt: 0.05,
            delay: Duration::from_millis(20),
            jitter: Duration::from_millis(10),
            ..ImpairConfig::default()
        },
    ];
    let modes = [
        (SimSecurity::Plaintext, 300),
        (SimSecurity::Passphrase, 100),
        (SimSecurity::Pinned, 100),
        (SimSecurity::Code, 100),
    ];
    for (security, seeds) in modes {
        for link in &links {
            for seed in 0..seeds {
                check(&crash(link.clone(), security), seed);
            }
        }
    }
}

fn check(scenario: &Scenario, seed: u64) {
    {
        {
            let outcome = run(scenario, seed);
            let v = outcome.violations();
            assert!(v.is_empty(), "{}", outcome.failure_report(&v));
            let old = &outcome.b.received_before_restart;
            let new = &outcome.b.received;
            assert!(
                !old.is_empty(),
                "seed {seed}: the crash came too early to test anything"
            );
            // Everything A sent reached one run of B or the other, ending with the last.
            assert_eq!(new.last(), outcome.a.sent.last(), "seed {seed}");
            assert_eq!(outcome.a.stats.peer_restarts, 1, "seed {seed}");
            if scenario.security != SimSecurity::Plaintext {
                // A session with the first run of B, then one with the second.
                assert_eq!(outcome.a.secure_sessions, 2, "seed {seed}");
                assert_eq!(outcome.b.secure_sessions, 1, "seed {seed}: the new run");
            }
        }
    }
}
