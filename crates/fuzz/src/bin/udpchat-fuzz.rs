//! Runs one fuzz target for longer than CI does:
//! `cargo run -p udpchat-fuzz --release -- session_receive --secs 600 --save`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use udpchat_fuzz::engine::{fuzz, save_kept, Budget};
use udpchat_fuzz::{seed_inputs, TARGETS};

/// Fuzz one udpchat target with the mutational engine.
#[derive(Debug, Parser)]
#[command(name = "udpchat-fuzz")]
struct Args {
    /// packet_decoder, handshake_responder or session_receive.
    target: String,
    /// Stop after this many seconds.
    #[arg(long, default_value_t = 60)]
    secs: u64,
    /// Stop after this many inputs.
    #[arg(long, default_value_t = u64::MAX)]
    iterations: u64,
    /// Seed of the mutations.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Add inputs that did something new to the kept corpus.
    #[arg(long)]
    save: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let Some((name, target)) = TARGETS.iter().find(|(n, _)| *n == args.target) else {
        let names: Vec<&str> = TARGETS.iter().map(|(n, _)| *n).collect();
        eprintln!(
            "udpchat-fuzz: no target {:?}; one of {}",
            args.target,
            names.join(", ")
        );
        return ExitCode::from(2);
    };
    let budget = Budget {
        iterations: args.iterations,
        time: Duration::from_secs(args.secs),
        seed: args.seed,
    };
    let artifacts = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("artifacts")
        .join(name);
    match fuzz(*target, seed_inputs(name), budget, Some(artifacts)) {
        Ok(report) => {
            println!(
                "{name}: {} inputs in {:.1} s, {} outcomes, corpus {}",
                report.executions,
                report.elapsed.as_secs_f64(),
                report.outcomes,
                report.corpus
            );
            if args.save {
                println!(
                    "{name}: {} new corpus inputs",
                    save_kept(name, &report.kept)
                );
            }
            ExitCode::SUCCESS
        }
        Err(crash) => {
            eprintln!("{name} (seed {}): {crash}", args.seed);
            ExitCode::FAILURE
        }
    }
}
