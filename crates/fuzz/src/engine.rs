//! A small mutational fuzzing engine for the stable toolchain: no coverage
//! instrumentation, so it keeps an input when the target reports a feature it has not
//! seen before (the target's outcome is a whitespace-separated list of features: a
//! reject reason, a frame kind reached), which steers it toward the formats' deeper
//! paths. Deterministic from its seed: a failure is replayed by its
//! seed, or by the crashing input written to `crates/fuzz/artifacts/<target>/`.

use std::collections::HashSet;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::seeds::corpus_dir;
use crate::Target;

/// Values that sit on the edges of lengths, counters and type bytes.
const INTERESTING: [u8; 12] = [
    0x00, 0x01, 0x02, 0x03, 0x7f, 0x80, 0xff, 0x55, 0xe1, 0xe2, 0xe3, 0xe4,
];

/// Longest input the engine makes: a few datagrams' worth.
const MAX_INPUT: usize = 4 * 1300;

/// How long and how hard to run.
#[derive(Clone, Copy, Debug)]
pub struct Budget {
    /// Inputs to try (after the seeds).
    pub iterations: u64,
    /// Stop earlier when this much time has passed.
    pub time: Duration,
    /// Seed of the mutations.
    pub seed: u64,
}

impl Budget {
    /// The budget from the environment: `UDPCHAT_FUZZ_ITERS` (default `iterations`),
    /// `UDPCHAT_FUZZ_SECS` (default `secs`) and `UDPCHAT_FUZZ_SEED` (default 1).
    pub fn from_env(iterations: u64, secs: u64) -> Self {
        let var = |name: &str, default: u64| {
            std::env::var(name)
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(default)
        };
        Self {
            iterations: var("UDPCHAT_FUZZ_ITERS", iterations),
            time: Duration::from_secs(var("UDPCHAT_FUZZ_SECS", secs)),
            seed: var("UDPCHAT_FUZZ_SEED", 1),
        }
    }
}

/// What a run did.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// Inputs tried, seeds included.
    pub executions: u64,
    /// Distinct features seen.
    pub outcomes: usize,
    /// Inputs in the corpus at the end (seeds plus those kept).
    pub corpus: usize,
    /// Inputs kept because they did something new.
    pub kept: Vec<Vec<u8>>,
    /// Wall time.
    pub elapsed: Duration,
}

/// An input that made the target panic.
#[derive(Clone, Debug)]
pub struct Crash {
    /// The input.
    pub input: Vec<u8>,
    /// The panic message.
    pub message: String,
    /// Where the input was written, if it could be.
    pub saved: Option<PathBuf>,
}

impl std::fmt::Display for Crash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "panic: {}\ninput ({} bytes): ",
            self.message,
            self.input.len()
        )?;
        for b in &self.input {
            write!(f, "{b:02x}")?;
        }
        if let Some(path) = &self.saved {
            write!(
                f,
                "\nsaved to {} (replayed by the corpus test)",
                path.display()
            )?;
        }
        Ok(())
    }
}

/// Runs `target` on `seeds`, then on mutations of the corpus, until the budget is
/// spent or an input panics. `artifacts`: the directory to write a crashing input to.
///
/// # Errors
/// The first [`Crash`].
pub fn fuzz(
    target: Target,
    seeds: Vec<Vec<u8>>,
    budget: Budget,
    artifacts: Option<PathBuf>,
) -> Result<Report, Crash> {
    let started = Instant::now();
    let mut rng = ChaCha8Rng::seed_from_u64(budget.seed);
    let mut corpus: Vec<Vec<u8>> = Vec::new();
    let mut seen = HashSet::new();
    let mut report = Report::default();
    let mut run =
        |input: Vec<u8>, corpus: &mut Vec<Vec<u8>>, report: &mut Report, keep_seed: bool| {
            report.executions += 1;
            match catch_unwind(AssertUnwindSafe(|| target(&input))) {
                Ok(outcome) => {
                    // Every feature is recorded, not just the first new one.
                    let fresh = outcome
                        .split_whitespace()
                        .filter(|f| seen.insert((*f).to_owned()))
                        .count();
                    let new = fresh > 0;
                    if new {
                        if !keep_seed {
                            report.kept.push(input.clone());
                        }
                        corpus.push(input);
                    } else if keep_seed {
                        corpus.push(input);
                    }
                    Ok(())
                }
                Err(panic) => {
                    let message = panic
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                        .unwrap_or_else(|| "(no message)".to_owned());
                    let saved = artifacts
                        .as_ref()
                        .and_then(|dir| save(dir, "crash", &input));
                    Err(Crash {
                        input,
                        message,
                        saved,
                    })
                }
            }
        };
    for seed in seeds {
        run(seed, &mut corpus, &mut report, true)?;
    }
    if corpus.is_empty() {
        corpus.push(Vec::new());
    }
    for _ in 0..budget.iterations {
        if started.elapsed() >= budget.time {
            break;
        }
        let input = mutate(&mut rng, &corpus);
        run(input, &mut corpus, &mut report, false)?;
    }
    report.outcomes = seen.len();
    report.corpus = corpus.len();
    report.elapsed = started.elapsed();
    Ok(report)
}

/// Writes the inputs a run kept into the target's corpus directory (the corpus grows
/// across runs this way; commit what is worth keeping). Returns how many were new.
pub fn save_kept(target: &str, kept: &[Vec<u8>]) -> usize {
    let dir = corpus_dir(target);
    kept.iter()
        .filter(|input| {
            let path = dir.join(name_of("input", input));
            !path.exists() && save(&dir, "input", input).is_some()
        })
        .count()
}

fn name_of(prefix: &str, input: &[u8]) -> String {
    // FNV-1a: a stable name for the same bytes.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in input {
        h = (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
    }
    format!("{prefix}-{h:016x}")
}

fn save(dir: &std::path::Path, prefix: &str, input: &[u8]) -> Option<PathBuf> {
    std::fs::create_dir_all(dir).ok()?;
    let path = dir.join(name_of(prefix, input));
    std::fs::write(&path, input).ok()?;
    Some(path)
}

fn below(rng: &mut ChaCha8Rng, n: usize) -> usize {
    if n == 0 {
        return 0;
    }
    usize::try_from(rng.next_u64() % n as u64).unwrap_or(0)
}

/// One to four stacked mutations of a corpus entry.
pub fn mutate(rng: &mut ChaCha8Rng, corpus: &[Vec<u8>]) -> Vec<u8> {
    let mut input = corpus[below(rng, corpus.len())].clone();
    for _ in 0..=below(rng, 4) {
        mutate_once(rng, &mut input, corpus);
    }
    input.truncate(MAX_INPUT);
    input
}

fn mutate_once(rng: &mut ChaCha8Rng, input: &mut Vec<u8>, corpus: &[Vec<u8>]) {
    let len = input.len();
    match below(rng, 9) {
        0 if len > 0 => {
            let bit = below(rng, len * 8);
            input[bit / 8] ^= 1 << (bit % 8);
        }
        1 if len > 0 => {
            let at = below(rng, len);
            input[at] = u8::try_from(rng.next_u32() & 0xff).unwrap_or(0);
        }
        2 if len > 0 => {
            let at = below(rng, len);
            input[at] = INTERESTING[below(rng, INTERESTING.len())];
        }
        3 => {
            let at = below(rng, len + 1);
            let n = 1 + below(rng, 16);
            let bytes: Vec<u8> = (0..n)
                .map(|_| u8::try_from(rng.next_u32() & 0xff).unwrap_or(0))
                .collect();
            input.splice(at..at, bytes);
        }
        4 if len > 0 => {
            let at = below(rng, len);
            let n = 1 + below(rng, (len - at).min(64));
            input.drain(at..at + n);
        }
        5 if len > 0 => {
            let at = below(rng, len);
            let n = 1 + below(rng, (len - at).min(64));
            let copy = input[at..at + n].to_vec();
            let to = below(rng, len + 1);
            input.splice(to..to, copy);
        }
        6 => input.truncate(below(rng, len + 1)),
        7 => {
            let other = &corpus[below(rng, corpus.len())];
            let cut = below(rng, len + 1);
            let from = below(rng, other.len() + 1);
            input.truncate(cut);
            input.extend_from_slice(&other[from..]);
        }
        _ if len >= 2 => {
            // A big-endian length or counter set to an edge value.
            let at = below(rng, len - 1);
            let value: u16 = match below(rng, 5) {
                0 => 0,
                1 => 1,
                2 => u16::MAX,
                3 => u16::try_from(len).unwrap_or(u16::MAX),
                _ => 1200,
            };
            input[at..at + 2].copy_from_slice(&value.to_be_bytes());
        }
        _ => input.push(INTERESTING[below(rng, INTERESTING.len())]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A target with a bug two steps deep, like a parser that only reads the second
    /// byte for one type byte: it panics on 0xE3 0x02 at the start. Reaching it at
    /// random takes about 10^7 inputs; keeping the input that made the first step (a
    /// new outcome) brings it within reach.
    fn planted(data: &[u8]) -> String {
        match data {
            [0xE3, 0x02, ..] => panic!("planted bug"),
            [0xE3, ..] => "e3".to_owned(),
            _ => "other".to_owned(),
        }
    }

    #[test]
    fn the_engine_finds_a_planted_bug() {
        let budget = Budget {
            iterations: 200_000,
            time: Duration::from_secs(60),
            seed: 7,
        };
        let seeds = vec![vec![0u8; 48], vec![1u8; 30]];
        let crash = fuzz(planted, seeds, budget, None).unwrap_err();
        assert_eq!(crash.message, "planted bug");
        assert_eq!(crash.input[..2], [0xE3, 0x02]);
        assert!(crash.to_string().contains("input ("));
    }

    #[test]
    fn the_same_seed_makes_the_same_inputs() {
        let corpus = vec![b"hello world".to_vec()];
        let run = |seed| {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            (0..50)
                .map(|_| mutate(&mut rng, &corpus))
                .collect::<Vec<_>>()
        };
        assert_eq!(run(3), run(3));
        assert_ne!(run(3), run(4));
    }

    #[test]
    fn new_outcomes_are_kept() {
        let budget = Budget {
            iterations: 2_000,
            time: Duration::from_secs(30),
            seed: 1,
        };
        let report = fuzz(
            |d| format!("{}", d.len() % 7),
            vec![vec![0; 10]],
            budget,
            None,
        )
        .unwrap();
        assert_eq!(report.outcomes, 7);
        assert_eq!(report.kept.len(), 6);
        assert_eq!(report.executions, 2_001);
    }
}
