//! Many seeds of one scenario, run on every core, boiled down to the figures we report.

use std::io::Write as _;
use std::time::Duration;

use crate::harness::{run, Scenario};
use crate::outcome::Outcome;

/// The figures of one scenario over many seeds.
#[derive(Clone, Debug)]
pub struct Summary {
    /// Scenario name.
    pub scenario: String,
    /// Seeds run.
    pub seeds: u64,
    /// Messages per side per seed.
    pub messages: usize,
    /// Seeds whose run broke a promise.
    pub failed_seeds: Vec<u64>,
    /// Full report of the first failing seed.
    pub first_failure: Option<String>,
    /// Mean retransmissions per acknowledged message.
    pub retransmissions_per_message: f64,
    /// Median first-transmission-to-acknowledgement time (virtual).
    pub latency_p50: Duration,
    /// 99th percentile of the same.
    pub latency_p99: Duration,
    /// Mean virtual duration of a run.
    pub mean_run: Duration,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

/// Runs seeds `first..first + count` of `scenario` across the machine's cores.
pub fn run_seeds(scenario: &Scenario, first: u64, count: u64) -> Summary {
    let threads = std::thread::available_parallelism().map_or(1, usize::from) as u64;
    let per_thread = count.div_ceil(threads.max(1));
    let outcomes: Vec<Vec<Outcome>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let start = first + t * per_thread;
                let end = (start + per_thread).min(first + count);
                scope.spawn(move || (start..end).map(|seed| run(scenario, seed)).collect())
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_default())
            .collect()
    });
    let mut failed_seeds = Vec::new();
    let mut first_failure = None;
    let mut latencies = Vec::new();
    let mut extra = 0.0;
    let mut runs = 0u64;
    let mut total_run = Duration::ZERO;
    for outcome in outcomes.iter().flatten() {
        runs += 1;
        total_run += outcome.elapsed;
        let violations = outcome.violations();
        if !violations.is_empty() {
            failed_seeds.push(outcome.seed);
            if first_failure.is_none() {
                first_failure = Some(outcome.failure_report(&violations));
            }
        }
        extra += outcome.retransmissions_per_message();
        latencies.extend(outcome.a.latencies.iter().chain(&outcome.b.latencies));
    }
    failed_seeds.sort_unstable();
    latencies.sort_unstable();
    let runs_f = runs.max(1) as f64;
    Summary {
        scenario: scenario.name.clone(),
        seeds: runs,
        messages: scenario.messages,
        failed_seeds,
        first_failure,
        retransmissions_per_message: extra / runs_f,
        latency_p50: percentile(&latencies, 0.5),
        latency_p99: percentile(&latencies, 0.99),
        mean_run: total_run.div_f64(runs_f),
    }
}

impl Summary {
    /// The table header matching [`row`](Self::row).
    pub fn header() -> String {
        format!(
            "{:<44} {:>6} {:>6} {:>9} {:>9} {:>9} {:>9}",
            "scenario", "seeds", "failed", "retx/msg", "p50 ms", "p99 ms", "run s"
        )
    }

    /// One line of the table.
    pub fn row(&self) -> String {
        format!(
            "{:<44} {:>6} {:>6} {:>9.3} {:>9.1} {:>9.1} {:>9.1}",
            self.scenario,
            self.seeds,
            self.failed_seeds.len(),
            self.retransmissions_per_message,
            self.latency_p50.as_secs_f64() * 1e3,
            self.latency_p99.as_secs_f64() * 1e3,
            self.mean_run.as_secs_f64()
        )
    }
}

/// Writes a line straight to the process's standard error, past the test harness's
/// output capture, so CI logs always show the figures.
pub fn print_uncaptured(line: &str) {
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "{line}");
}

/// Seeds per scenario: `UDPCHAT_SIM_SEEDS` if set (a nightly run raises it), else
/// `default`.
pub fn seeds_from_env(default: u64) -> u64 {
    std::env::var("UDPCHAT_SIM_SEEDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The single seed to replay from `UDPCHAT_SIM_SEED`, if set.
pub fn replay_seed_from_env() -> Option<u64> {
    std::env::var("UDPCHAT_SIM_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_picks_by_rank() {
        let v: Vec<Duration> = (0..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&v, 0.5), Duration::from_millis(50));
        assert_eq!(percentile(&v, 0.99), Duration::from_millis(99));
        assert_eq!(percentile(&[], 0.5), Duration::ZERO);
    }
}
