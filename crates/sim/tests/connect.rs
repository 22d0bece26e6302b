//! Connection setup with the shipped defaults (20 retries, a 30 s connect timeout, the
//! adaptive timeout): both sides starting at once, or one long after the other, under
//! loss. Messages typed before the session exists must wait for it, never fail, and be
//! delivered exactly once; each side must make one session, and refuse nothing.
//!
//! The fault matrix sets retries and the connect timeout out of reach to check liveness;
//! here they are the real ones, because a slow handshake is exactly what real starts do.

use std::time::Duration;

use udpchat_impair::ImpairConfig;
use udpchat_proto::Config;
use udpchat_sim::summary::{print_uncaptured, replay_seed_from_env, seeds_from_env};
use udpchat_sim::{run, Outcome, Scenario, SimSecurity};

fn setup(name: &str, security: SimSecurity, loss: f64, b_starts_at: Duration) -> Scenario {
    Scenario {
        name: name.into(),
        protocol: Config::default(),
        link: ImpairConfig {
            loss,
            delay: Duration::from_millis(20),
            jitter: Duration::from_millis(10),
            ..ImpairConfig::default()
        },
        // A few lines typed at start, before any session can exist.
        messages: 5,
        send_interval: Duration::ZERO,
        heal_at: Duration::from_secs(600),
        settle: Duration::from_secs(60),
        restart_b_after: None,
        b_starts_at,
        goodbye: false,
        stall_b: None,
        file: 0,
        partition: None,
        security,
    }
}

/// What setup must give on top of the protocol's promises.
fn setup_violations(o: &Outcome) -> Vec<String> {
    let mut v = o.violations();
    for (name, side) in [("a", &o.a), ("b", &o.b)] {
        if !side.failed.is_empty() {
            v.push(format!("{name}: {} messages failed", side.failed.len()));
        }
        if side.no_answers > 0 {
            v.push(format!("{name}: the connect timeout fired"));
        }
        if side.refusals > 0 {
            v.push(format!("{name}: refused its peer"));
        }
        if side.secure_sessions != 1 {
            v.push(format!("{name}: {} first sessions", side.secure_sessions));
        }
    }
    v
}

/// Runs seeds on every core; returns each run's time from B's start to both sides'
/// first session, and fails with the first broken run.
fn check(scenario: &Scenario, default_seeds: u64) -> Vec<Duration> {
    let seeds: Vec<u64> = match replay_seed_from_env() {
        Some(seed) => vec![seed],
        None => (0..seeds_from_env(default_seeds)).collect(),
    };
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    let chunks: Vec<Vec<u64>> = seeds
        .chunks(seeds.len().div_ceil(threads).max(1))
        .map(<[u64]>::to_vec)
        .collect();
    let results: Vec<Result<Vec<Duration>, String>> = std::thread::scope(|s| {
        let handles: Vec<_> = chunks
            .iter()
            .map(|chunk| {
                s.spawn(move || {
                    let mut times = Vec::new();
                    for &seed in chunk {
                        let o = run(scenario, seed);
                        let v = setup_violations(&o);
                        if !v.is_empty() {
                            return Err(o.failure_report(&v));
                        }
                        let both = o.a.connected_at.max(o.b.connected_at).unwrap_or_default();
                        times.push(both.saturating_sub(scenario.b_starts_at));
                    }
                    Ok(times)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err("a thread panicked".into())))
            .collect()
    });
    let mut times = Vec::new();
    for r in results {
        match r {
            Ok(t) => times.extend(t),
            Err(report) => panic!("{report}"),
        }
    }
    times.sort_unstable();
    let pct = |p: f64| times[((times.len() - 1) as f64 * p) as usize];
    print_uncaptured(&format!(
        "{:<58} {} seeds: session after p50 {:?} p99 {:?} max {:?}",
        scenario.name,
        times.len(),
        pct(0.5),
        pct(0.99),
        pct(1.0)
    ));
    times
}

#[test]
fn simultaneous_open_under_30_percent_loss_with_the_shipped_defaults() {
    let s = setup(
        "simultaneous open, 30% loss each way, pinned keys",
        SimSecurity::Pinned,
        0.3,
        Duration::ZERO,
    );
    check(&s, 10_000);
}

#[test]
fn simultaneous_first_contact_by_code_under_30_percent_loss() {
    let s = setup(
        "simultaneous first contact by code, 30% loss each way",
        SimSecurity::Code,
        0.3,
        Duration::ZERO,
    );
    check(&s, 2_000);
}

#[test]
fn a_peer_that_starts_10_s_later_gets_the_session_within_two_round_trips() {
    // No loss, 20-30 ms each way: a round trip is at most 60 ms.
    let s = setup(
        "b starts 10 s after a, no loss",
        SimSecurity::Pinned,
        0.0,
        Duration::from_secs(10),
    );
    let times = check(&s, 500);
    let worst = times.last().copied().unwrap_or_default();
    assert!(worst <= Duration::from_millis(120), "{worst:?}");
}

#[test]
fn a_peer_that_starts_10_s_later_under_30_percent_loss() {
    let s = setup(
        "b starts 10 s after a, 30% loss each way",
        SimSecurity::Pinned,
        0.3,
        Duration::from_secs(10),
    );
    check(&s, 2_000);
}
