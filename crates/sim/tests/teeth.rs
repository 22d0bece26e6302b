//! The harness has teeth: the seed's 1-bit alternating sequence number delivers a late
//! retransmission twice once the network reorders and duplicates, and the same harness
//! catches it. The 64-bit sequence number passes the very same seeds.

use udpchat_proto::{Config, SeqBits};
use udpchat_sim::scenario::{reorder_and_duplicate, sim_protocol};
use udpchat_sim::summary::print_uncaptured;
use udpchat_sim::{run, run_seeds, Scenario};

const SEEDS: u64 = 200;

fn one_bit() -> Config {
    Config {
        seq_bits: SeqBits::One,
        ..sim_protocol(1)
    }
}

#[test]
fn one_bit_sequence_numbers_fail_under_reordering_and_duplication() {
    let summary = run_seeds(&reorder_and_duplicate(one_bit()), 0, SEEDS);
    print_uncaptured(&format!(
        "teeth: 1-bit sequence numbers failed {} of {} seeds under reordering + duplication",
        summary.failed_seeds.len(),
        summary.seeds
    ));
    // Nearly every seed must break; demand a clear majority so the test cannot pass by luck.
    assert!(
        summary.failed_seeds.len() as u64 >= SEEDS * 9 / 10,
        "only {} of {SEEDS} seeds caught the alternating-bit bug",
        summary.failed_seeds.len()
    );
    let report = summary.first_failure.unwrap_or_default();
    assert!(
        report.contains("twice or out of order") || report.contains("never sent"),
        "the failure should be a duplicate or misordered delivery:\n{report}"
    );
}

#[test]
fn the_same_seeds_pass_with_wide_sequence_numbers() {
    let summary = run_seeds(&reorder_and_duplicate(sim_protocol(1)), 0, SEEDS);
    assert!(
        summary.failed_seeds.is_empty(),
        "{:?}",
        summary.first_failure
    );
}

#[test]
fn one_bit_is_correct_on_a_fifo_channel_with_loss() {
    // The alternating bit is a correct protocol when the channel keeps order: the teeth
    // test fails for the reason it claims, not because the one-bit code is broken.
    let fifo_lossy = Scenario {
        name: "fifo loss 30%".into(),
        link: udpchat_impair::ImpairConfig {
            loss: 0.3,
            delay: std::time::Duration::from_millis(20),
            ..Default::default()
        },
        ..reorder_and_duplicate(one_bit())
    };
    for seed in 0..SEEDS {
        let outcome = run(&fifo_lossy, seed);
        let v = outcome.violations();
        assert!(v.is_empty(), "{}", outcome.failure_report(&v));
    }
}
