//! The fault matrix: thousands of seeds, every one delivering every message exactly once
//! and in order, in both directions at once, and everything after the network heals.

use udpchat_sim::scenario::matrix;
use udpchat_sim::summary::{print_uncaptured, replay_seed_from_env, seeds_from_env};
use udpchat_sim::{run, run_seeds, Summary};

/// Seeds per scenario: 8 scenarios x 1,250 = 10,000 seeds per window size in CI.
const SEEDS_PER_SCENARIO: u64 = 1_250;

fn check_window(window: u16) {
    let scenarios = matrix(window);
    if let Some(seed) = replay_seed_from_env() {
        for scenario in &scenarios {
            let outcome = run(scenario, seed);
            let violations = outcome.violations();
            assert!(
                violations.is_empty(),
                "{}",
                outcome.failure_report(&violations)
            );
        }
        return;
    }
    let seeds = seeds_from_env(SEEDS_PER_SCENARIO);
    print_uncaptured(&format!(
        "\nsimulation matrix, window {window}: {} scenarios x {seeds} seeds x {} messages each way",
        scenarios.len(),
        udpchat_sim::scenario::MATRIX_MESSAGES
    ));
    print_uncaptured(&Summary::header());
    let mut failures = Vec::new();
    for scenario in &scenarios {
        let summary = run_seeds(scenario, 0, seeds);
        print_uncaptured(&summary.row());
        if let Some(report) = summary.first_failure {
            failures.push(format!(
                "{} seeds failed: {:?}\n{report}",
                summary.failed_seeds.len(),
                &summary.failed_seeds[..summary.failed_seeds.len().min(20)]
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn stop_and_wait_survives_the_fault_matrix() {
    check_window(1);
}

#[test]
fn window_8_survives_the_fault_matrix() {
    check_window(8);
}

#[test]
fn window_64_survives_the_fault_matrix() {
    check_window(64);
}
