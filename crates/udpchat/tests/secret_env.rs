//! `UDPCHAT_SECRET` as a user meets it: the passphrase works, yet does not stay readable
//! in `/proc/PID/environ` while the chat runs (udpchat re-executes itself without it),
//! and every other path (help, usage errors, `--plaintext`) behaves as before.

// Test support: a panic with the captured output is the right way to fail here.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use common::{bin, free_port, DEADLINE};
use serde_json::Value;

const PASSPHRASE: &str = "correct horse battery staple";

/// A value that cannot appear in the environment by chance.
fn unique_secret() -> String {
    format!(
        "udpchat-env-secret-{}-{}",
        std::process::id(),
        rand::random::<u64>()
    )
}

/// One running `udpchat --json`, started with `env` added to this process's environment.
struct Chat {
    child: Child,
    /// Kept open so the chat does not finish its input and exit.
    stdin: ChildStdin,
    events: Receiver<Value>,
    seen: Vec<Value>,
    stderr: Arc<Mutex<String>>,
}

impl Chat {
    fn spawn(args: &[&str], env: &[(&str, &str)]) -> Self {
        let mut command = Command::new(bin());
        // Each chat its own installation (never the real home): two people.
        let home = std::env::temp_dir().join(format!(
            "udpchat-secret-env-home-{}-{}",
            std::process::id(),
            rand::random::<u32>()
        ));
        command
            .args(args)
            .env("UDPCHAT_HOME", home)
            .env_remove("UDPCHAT_SECRET")
            .env_remove("UDPCHAT_SECRET_FD")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            command.env(k, v);
        }
        let mut child = command.spawn().unwrap();
        let (tx, events) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let value = serde_json::from_str(&line)
                    .unwrap_or_else(|_| serde_json::json!({ "event": "NOT_JSON", "line": line }));
                if tx.send(value).is_err() {
                    break;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let sink = Arc::clone(&stderr);
        let mut pipe = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = pipe.read_to_string(&mut text);
            sink.lock().unwrap().push_str(&text);
        });
        let stdin = child.stdin.take().unwrap();
        Self {
            child,
            stdin,
            events,
            seen: Vec::new(),
            stderr,
        }
    }

    /// The first event, seen so far or to come, that satisfies `pred`; fails the test
    /// with everything printed after [`DEADLINE`] or if the chat ends first.
    fn wait_for(&mut self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        if let Some(found) = self.seen.iter().find(|e| pred(e)) {
            return found.clone();
        }
        let until = Instant::now() + DEADLINE;
        loop {
            let left = until.saturating_duration_since(Instant::now());
            match self.events.recv_timeout(left) {
                Ok(event) => {
                    self.seen.push(event.clone());
                    if pred(&event) {
                        return event;
                    }
                }
                Err(_) => panic!("gave up waiting for {what}\n{}", self.dump()),
            }
        }
    }

    fn dump(&self) -> String {
        let events: Vec<String> = self.seen.iter().map(Value::to_string).collect();
        format!(
            "--- events ---\n{}\n--- stderr ---\n{}",
            events.join("\n"),
            self.stderr.lock().unwrap()
        )
    }

    /// Fails if the pipe that carried the passphrase still holds it: another process of
    /// the user could read it through `/proc/PID/fd` as it could the environment.
    fn assert_pipe_drained(&self, secret: &str) {
        let environ = String::from_utf8_lossy(&self.proc_file("environ")).into_owned();
        let fd = environ
            .split('\0')
            .find_map(|v| v.strip_prefix("UDPCHAT_SECRET_FD="))
            .unwrap_or_else(|| panic!("no UDPCHAT_SECRET_FD: not re-executed?\n{}", self.dump()))
            .to_owned();
        // The write end is closed, so this read ends at once, with whatever is left.
        let left = std::fs::read(format!("/proc/{}/fd/{fd}", self.child.id())).unwrap();
        assert!(
            !contains(&left, secret.as_bytes()),
            "the pipe still holds it"
        );
        assert!(left.is_empty(), "{} bytes left in the pipe", left.len());
    }

    /// What `/proc/PID/<name>` holds now.
    fn proc_file(&self, name: &str) -> Vec<u8> {
        std::fs::read(format!("/proc/{}/{name}", self.child.id())).unwrap()
    }
}

impl Drop for Chat {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Runs `udpchat` to completion with `env` set and stdin closed.
fn run_with(args: &[&str], env: &[(&str, &std::ffi::OsStr)]) -> Output {
    let mut command = Command::new(bin());
    command
        .args(args)
        .env_remove("UDPCHAT_SECRET")
        .env_remove("UDPCHAT_SECRET_FD")
        .stdin(Stdio::null());
    for (k, v) in env {
        command.env(k, v);
    }
    command.output().unwrap()
}

#[test]
fn the_passphrase_does_not_stay_in_proc_environ() {
    if !std::path::Path::new("/proc/self/environ").exists() {
        eprintln!("skipped: no /proc/PID/environ on this system");
        return;
    }
    let secret = unique_secret();
    let mut chat = Chat::spawn(
        &["--json", "--port", "0", "127.0.0.1:9"],
        &[("UDPCHAT_SECRET", &secret)],
    );
    let started = chat.wait_for("started", |e| e["event"] == "started");
    assert_eq!(started["security"], "passphrase", "{}", chat.dump());
    let environ = chat.proc_file("environ");
    assert!(
        !contains(&environ, secret.as_bytes()),
        "the passphrase is readable in /proc/{}/environ",
        chat.child.id()
    );
    assert!(!contains(&environ, b"UDPCHAT_SECRET="), "{}", chat.dump());
    // Re-executed as itself: same name in ps, same arguments.
    assert_eq!(chat.proc_file("comm"), b"udpchat\n");
    let cmdline = String::from_utf8(chat.proc_file("cmdline")).unwrap();
    let argv: Vec<&str> = cmdline.trim_end_matches('\0').split('\0').collect();
    assert_eq!(argv, [bin(), "--json", "--port", "0", "127.0.0.1:9"]);
    chat.assert_pipe_drained(&secret);
    let stderr = chat.stderr.lock().unwrap().clone();
    assert!(!stderr.contains("could not be removed"), "{stderr}");
}

#[test]
fn a_passphrase_from_the_environment_meets_the_same_from_a_file() {
    let dir = std::env::temp_dir().join(format!("udpchat-secret-env-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("passphrase");
    std::fs::write(&file, format!("{PASSPHRASE}\n")).unwrap();
    let file = file.to_str().unwrap();
    let (pa, pb) = (free_port(), free_port());
    let (a_peer, b_peer) = (format!("127.0.0.1:{pb}"), format!("127.0.0.1:{pa}"));
    let (pa, pb) = (pa.to_string(), pb.to_string());
    // A byte order mark in front, as an editor may leave: not part of the passphrase.
    let marked = format!("\u{feff}{PASSPHRASE}");
    let mut a = Chat::spawn(
        &[&a_peer, "--port", &pa, "--json", "--timeout", "100ms"],
        &[("UDPCHAT_SECRET", &marked)],
    );
    let mut b = Chat::spawn(
        &[
            &b_peer,
            "--port",
            &pb,
            "--json",
            "--timeout",
            "100ms",
            "--secret-file",
            file,
        ],
        &[],
    );
    for chat in [&mut a, &mut b] {
        let up = chat.wait_for("encrypted", |e| e["event"] == "encrypted");
        assert_eq!(up["verified"], "passphrase", "{}", chat.dump());
    }
    use std::io::Write;
    a.stdin.write_all(b"through the pipe\n").unwrap();
    a.stdin.flush().unwrap();
    let got = b.wait_for("received", |e| e["event"] == "received");
    assert_eq!(got["text"], "through the pipe");
}

#[test]
fn plaintext_still_says_the_variable_is_ignored() {
    let secret = unique_secret();
    let mut chat = Chat::spawn(
        &["--json", "--plaintext", "--port", "0", "127.0.0.1:9"],
        &[("UDPCHAT_SECRET", &secret)],
    );
    chat.wait_for("the notice", |e| {
        e["event"] == "warning" && e["message"] == "UDPCHAT_SECRET is ignored with --plaintext"
    });
    if std::path::Path::new("/proc/self/environ").exists() {
        assert!(!contains(&chat.proc_file("environ"), secret.as_bytes()));
        // Not used in the clear, yet not left in the pipe either.
        chat.assert_pipe_drained(&secret);
    }
}

#[test]
fn help_and_usage_errors_are_the_same_with_the_variable() {
    let secret = unique_secret();
    let secret = std::ffi::OsStr::new(&secret);
    for args in [
        &["--help"][..],
        &["--version"],
        &["--drop", "1.5", "127.0.0.1"],
        &["--classic", "--room", "r", "127.0.0.1"],
        &[],
    ] {
        let without = run_with(args, &[]);
        let with = run_with(args, &[("UDPCHAT_SECRET", secret)]);
        assert_eq!(with.status.code(), without.status.code(), "{args:?}");
        assert_eq!(with.stdout, without.stdout, "{args:?}");
        assert_eq!(
            String::from_utf8_lossy(&with.stderr),
            String::from_utf8_lossy(&without.stderr),
            "{args:?}"
        );
    }
}

#[test]
fn a_bad_variable_is_one_line_and_status_2() {
    use std::os::unix::ffi::OsStrExt;
    let big = "x".repeat(70_000);
    for (value, expected) in [
        (
            std::ffi::OsStr::new(""),
            "udpchat: UDPCHAT_SECRET is empty\n",
        ),
        (
            std::ffi::OsStr::new("\u{feff}"),
            "udpchat: UDPCHAT_SECRET is empty\n",
        ),
        (
            std::ffi::OsStr::from_bytes(b"caf\xe9 au lait, long enough"),
            "udpchat: UDPCHAT_SECRET is not valid UTF-8\n",
        ),
        (
            std::ffi::OsStr::new(&big),
            "udpchat: UDPCHAT_SECRET is larger than 64 KiB; it should hold one passphrase\n",
        ),
    ] {
        let out = run_with(
            &["--json", "--port", "0", "127.0.0.1:9"],
            &[("UDPCHAT_SECRET", value)],
        );
        assert_eq!(out.status.code(), Some(2), "{expected}");
        assert_eq!(String::from_utf8_lossy(&out.stderr), expected);
    }
}
