//! The fault matrix with encryption on, as the real program runs by default: the
//! impairment between the endpoints now loses, duplicates, reorders and corrupts
//! ciphertext. Every message must still arrive exactly once and in order; corrupted
//! datagrams must die at authentication and duplicates at the replay window.

use udpchat_sim::scenario::matrix;
use udpchat_sim::summary::{print_uncaptured, replay_seed_from_env, seeds_from_env};
use udpchat_sim::{run, Outcome, SimSecurity};

/// Seeds per scenario and mode: 8 scenarios x 3 modes x 300 = 7,200 encrypted runs per
/// window size in CI (the plaintext matrix runs 10,000).
const SEEDS_PER_SCENARIO: u64 = 300;

fn check_window(window: u16) {
    let modes = [
        SimSecurity::Pinned,
        SimSecurity::Code,
        SimSecurity::Passphrase,
    ];
    let scenarios: Vec<_> = modes
        .iter()
        .flat_map(|&mode| {
            matrix(window)
                .into_iter()
                .map(move |s| s.with_security(mode))
        })
        .collect();
    let seeds: Vec<u64> = match replay_seed_from_env() {
        Some(seed) => vec![seed],
        None => (0..seeds_from_env(SEEDS_PER_SCENARIO)).collect(),
    };
    print_uncaptured(&format!(
        "\nencrypted simulation matrix, window {window}: {} scenarios x {} seeds",
        scenarios.len(),
        seeds.len()
    ));
    let mut failures = Vec::new();
    for scenario in &scenarios {
        let mut rejects = std::collections::BTreeMap::new();
        for &seed in &seeds {
            let outcome = run(scenario, seed);
            let mut violations = outcome.violations();
            violations.extend(encryption_violations(&outcome));
            if !violations.is_empty() {
                failures.push(outcome.failure_report(&violations));
                break;
            }
            for side in [&outcome.a, &outcome.b] {
                for (code, n) in &side.security_rejects {
                    *rejects.entry(*code).or_insert(0u64) += n;
                }
            }
        }
        print_uncaptured(&format!("  {:<52} rejected {rejects:?}", scenario.name));
        // The impairment really hit ciphertext: what it damaged failed authentication,
        // what it copied was caught as a replay.
        let name = &scenario.name;
        if name.contains("corrupt") {
            assert!(
                rejects.get("bad_mac").copied().unwrap_or(0) > 0,
                "{name}: {rejects:?}"
            );
        }
        if name.contains("dup") {
            assert!(
                rejects.get("replay").copied().unwrap_or(0) > 0,
                "{name}: {rejects:?}"
            );
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// What encryption adds to the protocol's checks: both sides set up a session, and
/// neither refused the other.
fn encryption_violations(outcome: &Outcome) -> Vec<String> {
    let mut v: Vec<String> = [("a", &outcome.a), ("b", &outcome.b)]
        .into_iter()
        .filter(|(_, side)| side.secure_sessions == 0)
        .map(|(name, _)| format!("{name} never established an encrypted session"))
        .collect();
    for (name, side) in [("a", &outcome.a), ("b", &outcome.b)] {
        if side.refusals > 0 {
            v.push(format!("{name} refused its peer {} times", side.refusals));
        }
    }
    v
}

#[test]
fn stop_and_wait_survives_the_fault_matrix_encrypted() {
    check_window(1);
}

#[test]
fn window_8_survives_the_fault_matrix_encrypted() {
    check_window(8);
}

#[test]
fn window_64_survives_the_fault_matrix_encrypted() {
    check_window(64);
}
