//! The fuzz targets, run by `cargo test` for a bounded number of inputs (deterministic:
//! `UDPCHAT_FUZZ_SEED`, `UDPCHAT_FUZZ_ITERS` and `UDPCHAT_FUZZ_SECS` change the run;
//! `UDPCHAT_FUZZ_SAVE=1` adds inputs that did something new to the kept corpus), and
//! every kept input and past crash replayed.

use std::path::PathBuf;

use udpchat_fuzz::engine::{fuzz, save_kept, Budget};
use udpchat_fuzz::{seed_inputs, Target, TARGETS};

fn artifacts(target: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("artifacts")
        .join(target)
}

fn target(name: &str) -> Target {
    TARGETS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, t)| *t)
        .unwrap_or_else(|| panic!("no target {name}"))
}

fn run(name: &str, iterations: u64) {
    let budget = Budget::from_env(iterations, 20);
    let report = fuzz(
        target(name),
        seed_inputs(name),
        budget,
        Some(artifacts(name)),
    )
    .unwrap_or_else(|crash| panic!("{name} (UDPCHAT_FUZZ_SEED={}): {crash}", budget.seed));
    eprintln!(
        "{name}: {} inputs in {:.1} s ({:.0}/s), {} outcomes, corpus {}",
        report.executions,
        report.elapsed.as_secs_f64(),
        report.executions as f64 / report.elapsed.as_secs_f64().max(1e-9),
        report.outcomes,
        report.corpus
    );
    if std::env::var_os("UDPCHAT_FUZZ_SAVE").is_some() {
        eprintln!(
            "{name}: {} new corpus inputs",
            save_kept(name, &report.kept)
        );
    }
}

#[test]
fn packet_decoder_survives_fuzzing() {
    run("packet_decoder", 1_000_000);
}

#[test]
fn handshake_responder_survives_fuzzing() {
    run("handshake_responder", 50_000);
}

#[test]
fn session_receive_survives_fuzzing() {
    run("session_receive", 5_000);
}

#[test]
fn past_crashes_and_the_corpus_still_pass() {
    for (name, target) in TARGETS {
        let dir = artifacts(name);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let input = std::fs::read(entry.path()).unwrap_or_default();
            target(&input);
        }
    }
    for (name, target) in TARGETS {
        for input in seed_inputs(name) {
            target(&input);
        }
    }
}
