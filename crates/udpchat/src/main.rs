//! udpchat: a peer-to-peer chat over UDP that never loses, duplicates or reorders a
//! message, encrypted and authenticated by default. This binary is a thin tokio driver
//! around the sans-IO stack of `udpchat-stack` (the protocol session of
//! `udpchat-proto` inside the Noise sessions of `udpchat-secure`), with the seeded loss
//! of `udpchat-impair` applied to what it receives, as the original Python chat did.
//!
//! Exit status: 0 when every input line was delivered; 1 when a message failed, a line
//! was refused (too long, not UTF-8) or the program could not run; 2 for a usage error;
//! 130 after Ctrl-C.

mod cli;
mod commands;
mod config;
mod contacts;
mod driver;
mod endpoint;
mod home;
mod journal;
mod known_peers;
mod launch;
mod line_ui;
mod peer_addr;
mod reject_budget;
mod report;
mod secret;
mod tui_driver;

use std::process::ExitCode;

use clap::error::ErrorKind;
use clap::Parser;

use crate::cli::{Cli, Command, UsageError};

/// Exit status of a usage error, as clap and the shell conventions have it.
const USAGE: u8 = 2;
/// Exit status of a runtime failure.
const FAILURE: u8 = 1;

fn main() -> ExitCode {
    // First: it may execute the program again, which must happen before anything else.
    secret::scrub_environment();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return clap_exit(&e),
    };
    init_tracing();
    let cli = match config::load() {
        Ok(file) => cli.with_config(&file),
        Err(e) => {
            eprintln!("udpchat: {e}");
            return ExitCode::from(USAGE);
        }
    };
    let result = match cli.command {
        None => launch::run(cli.chat.settings(false)).map(|f| f.exit_status()),
        Some(Command::Invite { chat }) => launch::run(chat.settings(true)).map(|f| f.exit_status()),
        Some(Command::Id { store, json }) => commands::id(&store, json).map(|()| 0),
        Some(Command::Peers { store, json }) => commands::peers(&store, json).map(|()| 0),
        Some(Command::Forget { store, target }) => commands::forget(&store, &target).map(|()| 0),
        Some(Command::Alias {
            name,
            target,
            store,
        }) => commands::alias(&store, &name, &target).map(|()| 0),
        Some(Command::History {
            peer,
            since,
            limit,
            json,
            store,
        }) => commands::history(&store, peer.as_deref(), since, limit, json).map(|()| 0),
        Some(Command::Outbox { json, store }) => commands::outbox(&store, json).map(|()| 0),
        Some(Command::Completions { shell }) => commands::completions(shell).map(|()| 0),
        Some(Command::Man) => commands::man().map(|()| 0),
    };
    match result {
        Ok(status) => ExitCode::from(status),
        Err(e) => {
            // `{:#}` keeps the whole chain of causes on one line.
            eprintln!("udpchat: {e:#}");
            ExitCode::from(if e.is::<UsageError>() { USAGE } else { FAILURE })
        }
    }
}

/// `--help` and `--version` print in full; any other clap error becomes one line.
fn clap_exit(e: &clap::Error) -> ExitCode {
    if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
        let _ = e.print();
        return ExitCode::SUCCESS;
    }
    eprintln!(
        "udpchat: {} (see udpchat --help)",
        first_line(&e.to_string())
    );
    ExitCode::from(USAGE)
}

/// The first line of clap's message, without its `error: ` prefix.
fn first_line(message: &str) -> &str {
    let line = message.lines().next().unwrap_or_default().trim();
    line.strip_prefix("error: ").unwrap_or(line)
}

/// Diagnostics (`RUST_LOG=udpchat=debug`) go to stderr, so stdout stays the
/// conversation or the JSON stream.
fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clap_errors_become_one_line() {
        let e = Cli::try_parse_from(["udpchat", "--drop", "1.5"]).unwrap_err();
        let line = first_line(&e.to_string()).to_string();
        assert!(!line.starts_with("error"), "{line}");
        assert!(line.contains("--drop") && line.contains("1.5"), "{line}");
        assert!(!line.contains('\u{1b}'), "no colour codes: {line:?}");
    }
}
