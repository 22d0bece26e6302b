//! The goodbye (PROTOCOL.md §6a) with the shipped defaults, under loss that never heals:
//! both sides end their input, and each leaves only once every message of its own is
//! confirmed and every message of the peer's shown; nothing shown on one side is
//! reported failed on the other.

use std::time::Duration;

use udpchat_impair::ImpairConfig;
use udpchat_proto::Config;
use udpchat_sim::summary::{print_uncaptured, replay_seed_from_env, seeds_from_env};
use udpchat_sim::{run, run_seeds, Scenario, SimSecurity, Summary};

fn goodbye(name: &str, link: ImpairConfig, security: SimSecurity) -> Scenario {
    Scenario {
        name: name.into(),
        protocol: Config::default(),
        link,
        messages: 10,
        // Typed a little apart, so the last lines and the DONE are in flight together.
        send_interval: Duration::from_millis(30),
        // The loss never heals: the goodbye must work through it.
        heal_at: Duration::from_secs(600),
        settle: Duration::from_secs(60),
        restart_b_after: None,
        b_starts_at: Duration::ZERO,
        goodbye: true,
        stall_b: None,
        file: 0,
        partition: None,
        security,
    }
}

/// The original program's loss (20% of messages and 20% of ACKs, both directions) on a
/// path of 20–30 ms each way.
fn seeds_loss() -> ImpairConfig {
    ImpairConfig {
        delay: Duration::from_millis(20),
        jitter: Duration::from_millis(10),
        ..ImpairConfig::seed_classic()
    }
}

fn check(scenario: &Scenario, default_seeds: u64) -> Summary {
    if let Some(seed) = replay_seed_from_env() {
        let o = run(scenario, seed);
        let v = o.violations();
        assert!(v.is_empty(), "{}", o.failure_report(&v));
    }
    let summary = run_seeds(scenario, 0, seeds_from_env(default_seeds));
    print_uncaptured(&format!(
        "{:<64} {} seeds: both left after {:?} on average, {:.3} retransmissions/message",
        summary.scenario, summary.seeds, summary.mean_run, summary.retransmissions_per_message
    ));
    if let Some(report) = &summary.first_failure {
        panic!(
            "{} of {} seeds broke the goodbye: {:?}\n{report}",
            summary.failed_seeds.len(),
            summary.seeds,
            &summary.failed_seeds[..summary.failed_seeds.len().min(10)]
        );
    }
    summary
}

#[test]
fn goodbye_under_the_original_programs_loss_both_ways() {
    check(
        &goodbye(
            "goodbye, 20% message + 20% ACK loss each way",
            seeds_loss(),
            SimSecurity::Plaintext,
        ),
        10_000,
    );
}

#[test]
fn goodbye_under_loss_encrypted() {
    check(
        &goodbye(
            "goodbye, 20% message + 20% ACK loss each way",
            seeds_loss(),
            SimSecurity::Pinned,
        ),
        2_000,
    );
}

#[test]
fn goodbye_on_a_clean_path_takes_a_few_round_trips() {
    let s = goodbye(
        "goodbye, no loss",
        ImpairConfig {
            delay: Duration::from_millis(20),
            ..ImpairConfig::default()
        },
        SimSecurity::Plaintext,
    );
    let o = run(&s, 1);
    let v = o.violations();
    assert!(v.is_empty(), "{}", o.failure_report(&v));
    // The last line is typed at 270 ms; its DONE needs one round trip (40 ms) to be
    // confirmed and the peer's DONE arrives meanwhile: both leave within two round trips.
    let last_typed = s.send_interval * 9;
    for side in [&o.a, &o.b] {
        let left = side.left.map(|l| l.at).unwrap_or_default();
        assert!(
            left <= last_typed + Duration::from_millis(2 * 40 + 5),
            "left at {left:?}"
        );
    }
}
