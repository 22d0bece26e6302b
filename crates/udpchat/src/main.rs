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
mod lab;
mod launch;
mod line_ui;
mod peer_addr;
mod reject_budget;
mod report;
mod secret;
mod trace;
mod tui_driver;

use std::io::Write;
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
    // A chat asked for JSON reports a fatal error as an event too, so a script reading
    // stdout learns why the run ended.
    let json = match &cli.command {
        None => cli.chat.json,
        Some(Command::Invite { chat }) => chat.json,
        Some(_) => false,
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
        Some(Command::Lab(args)) => lab::run(&args).map(|()| 0),
    };
    match result {
        Ok(status) => ExitCode::from(status),
        Err(e) => {
            let status = if e.is::<UsageError>() { USAGE } else { FAILURE };
            // `{:#}` keeps the whole chain of causes on one line.
            eprintln!("udpchat: {e:#}");
            if json {
                // The error, then the exit, as every run's last line is an `exit`.
                let ts = humantime::format_rfc3339_millis(std::time::SystemTime::now());
                // Not println!: stdout may be the closed pipe that ended the run.
                let _ = writeln!(
                    std::io::stdout().lock(),
                    "{}",
                    report::fatal_json(&format!("{e:#}"), status, &ts.to_string())
                );
            }
            ExitCode::from(status)
        }
    }
}

/// `--help` and `--version` print in full; any other clap error becomes one line.
fn clap_exit(e: &clap::Error) -> ExitCode {
    if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
        let _ = e.print();
        return ExitCode::SUCCESS;
    }
    eprintln!("udpchat: {}", one_line(&e.to_string()));
    ExitCode::from(USAGE)
}

/// clap's message as one line: its first line without the `error: ` prefix, then in
/// parentheses what clap adds on later lines that helps fix the mistake (its tips, such
/// as "a similar argument exists: '--nick'", and the possible values) and where to look
/// for the rest. The usage block and the "For more information" line are left out.
fn one_line(message: &str) -> String {
    let mut lines = message.lines().map(str::trim).peekable();
    let first = lines.next().unwrap_or_default();
    let mut first = first.strip_prefix("error: ").unwrap_or(first).to_owned();
    // "the following required arguments were not provided:" lists them on the lines
    // that follow, up to a blank line.
    if first.ends_with(':') {
        let listed: Vec<&str> = std::iter::from_fn(|| lines.next_if(|l| !l.is_empty())).collect();
        first = format!("{first} {}", listed.join(", "));
    }
    let mut notes = String::new();
    for line in lines {
        let note = if line.starts_with("tip: ") {
            line
        } else if let Some(values) = line
            .strip_prefix('[')
            .and_then(|l| l.strip_suffix(']'))
            .filter(|l| l.starts_with("possible values: "))
        {
            values
        } else {
            continue;
        };
        notes.push_str(note);
        notes.push_str("; ");
    }
    format!("{first} ({notes}see udpchat --help)")
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

    /// clap's message for `args`, as udpchat prints it.
    fn usage_line(args: &[&str]) -> String {
        let e = Cli::try_parse_from(std::iter::once("udpchat").chain(args.iter().copied()))
            .unwrap_err();
        let line = one_line(&e.to_string());
        assert!(!line.starts_with("error"), "{line}");
        assert!(!line.contains('\n'), "one line: {line:?}");
        assert!(!line.contains('\u{1b}'), "no colour codes: {line:?}");
        assert!(line.ends_with("see udpchat --help)"), "{line}");
        line
    }

    #[test]
    fn clap_errors_become_one_line() {
        let line = usage_line(&["--drop", "1.5"]);
        assert!(line.contains("--drop") && line.contains("1.5"), "{line}");
    }

    #[test]
    fn one_line_keeps_the_tips_and_the_possible_values() {
        let line = usage_line(&["--nik", "x"]);
        assert!(
            line.contains("--nik") && line.contains("tip: a similar argument exists: '--nick'"),
            "{line}"
        );
        let line = usage_line(&["completions", "nonsense"]);
        assert!(
            line.contains("nonsense") && line.contains("possible values: bash"),
            "{line}"
        );
        let line = usage_line(&["alias"]);
        assert!(
            line.starts_with(
                "the following required arguments were not provided: <NAME>, <PEER|FINGERPRINT> ("
            ),
            "{line}"
        );
    }

    #[test]
    fn negative_numbers_reach_the_value_parser() {
        for (args, needle) in [
            (&["--drop", "-0.1"][..], "from 0 to 1"),
            (&["--ack-drop", "-1"], "from 0 to 1"),
            (&["--port", "-1"], "-1"),
            (&["--window", "-3"], "-3"),
            (&["--seed", "-7"], "-7"),
            (&["--max-retries", "-2"], "-2"),
            (&["history", "--limit", "-5"], "-5"),
        ] {
            let line = usage_line(args);
            assert!(line.starts_with("invalid value"), "{args:?}: {line}");
            assert!(
                line.contains(args[args.len() - 2]) && line.contains(needle),
                "{args:?}: {line}"
            );
        }
    }
}
