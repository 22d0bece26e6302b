//! What an installation gets from the binary itself: `--version` naming the protocol and
//! the build's revision, shell completions and the manual page generated from the clap
//! definition, and usage errors that keep clap's tips on their one line.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use common::{assert_usage_error, run};

/// stdout of a run that must succeed, as text.
fn stdout_of(args: &[&str]) -> String {
    let out = run(args);
    assert!(out.status.success(), "{args:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn version_names_the_protocol_and_the_git_revision() {
    for flag in ["--version", "-V"] {
        let version = stdout_of(&[flag]);
        assert_eq!(version.lines().count(), 1, "{version:?}");
        assert!(version.starts_with("udpchat 0."), "{version}");
        assert!(
            version.contains(&format!("protocol v{}", udpchat_proto::wire::VERSION)),
            "{version}"
        );
        assert!(version.contains("git "), "{version}");
    }
}

#[test]
fn completions_for_every_shell() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let script = stdout_of(&["completions", shell]);
        assert!(script.contains("udpchat"), "{shell}: {script}");
        // Options and subcommands come from the clap definition.
        assert!(
            script.contains("ack-drop") && script.contains("history"),
            "{shell}"
        );
    }
    assert_usage_error(&["completions", "nonsense"], &["nonsense", "bash"]);
    assert_usage_error(&["completions"], &["<SHELL>"]);
}

/// The bash script parses: `bash -n` reads it without running it. Skipped where there is
/// no bash.
#[test]
fn bash_completion_is_valid_bash() {
    let script = stdout_of(&["completions", "bash"]);
    let Ok(mut bash) = Command::new("bash")
        .arg("-n")
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    else {
        eprintln!("SKIP: no bash");
        return;
    };
    bash.stdin
        .take()
        .expect("stdin")
        .write_all(script.as_bytes())
        .expect("write the script");
    let out = bash.wait_with_output().expect("bash -n");
    assert!(out.status.success(), "{out:?}");
}

#[test]
fn man_page_is_roff_with_the_options_and_commands() {
    let page = stdout_of(&["man"]);
    // The page opens with roff: clap_mangen first defines the apostrophe string `Aq`
    // (`.ie`/`.el`), then the title line.
    let first_request = page
        .lines()
        .find(|l| !l.starts_with(".ie") && !l.starts_with(".el"))
        .unwrap_or_default();
    assert!(first_request.starts_with(".TH udpchat 1 "), "{page}");
    for needle in [
        ".SH NAME",
        ".SH SYNOPSIS",
        ".SH OPTIONS",
        "ack\\-drop",
        "invite",
    ] {
        assert!(page.contains(needle), "{needle} missing from the page");
    }
}

#[test]
fn a_misspelt_option_keeps_the_tip_on_one_line() {
    assert_usage_error(
        &["--nik", "x"],
        &["'--nik'", "a similar argument exists: '--nick'"],
    );
}

#[test]
fn a_negative_number_is_a_value_out_of_range() {
    assert_usage_error(
        &["--drop", "-0.1", "127.0.0.1"],
        &["--drop", "-0.1", "from 0 to 1"],
    );
    assert_usage_error(
        &["--ack-drop", "-1", "127.0.0.1"],
        &["--ack-drop", "-1", "from 0 to 1"],
    );
    assert_usage_error(&["--window", "-5", "127.0.0.1"], &["--window", "-5"]);
}
