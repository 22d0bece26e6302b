//! The full-screen chat, end to end: the real binary in a real terminal (tmux), chatting
//! with a second udpchat process. Typed text reaches the other side, the delivery mark
//! turns to delivered, the reply appears, `/quit` exits 0 and the terminal is restored.
//!
//! tmux is installed if it is missing and the test can (root with apt-get); otherwise
//! the test is skipped with the reason printed.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{bin, free_port, Proc};

/// True when tmux runs, installing it first if it is missing and we can.
fn tmux_available() -> Result<(), String> {
    let works = || {
        Command::new("tmux")
            .arg("-V")
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if works() {
        return Ok(());
    }
    let installed = Command::new("apt-get")
        .args(["install", "-y", "-qq", "tmux"])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .output()
        .is_ok_and(|o| o.status.success());
    if installed && works() {
        Ok(())
    } else {
        Err("tmux is not installed and `apt-get install tmux` did not work".to_owned())
    }
}

/// A tmux session that is killed when dropped.
struct Pane {
    name: String,
}

impl Pane {
    fn start(name: &str, command: &str) -> Self {
        // A tmux server that is just exiting (its last session was killed, here or by
        // another test process) refuses the new session: try again.
        let mut last = None;
        for _ in 0..20 {
            let out = Command::new("tmux")
                .args([
                    "new-session",
                    "-d",
                    "-s",
                    name,
                    "-x",
                    "100",
                    "-y",
                    "20",
                    command,
                ])
                .output();
            match out {
                Ok(o) if o.status.success() => {
                    last = None;
                    break;
                }
                other => last = Some(other),
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        assert!(last.is_none(), "tmux new-session failed: {last:?}");
        Self {
            name: name.to_owned(),
        }
    }

    fn capture(&self) -> String {
        Command::new("tmux")
            .args(["capture-pane", "-p", "-t", &self.name])
            .output()
            .map(|out| String::from_utf8_lossy(&out.stdout).into_owned())
            .unwrap_or_default()
    }

    fn type_line(&self, text: &str) {
        let ok = Command::new("tmux")
            .args(["send-keys", "-t", &self.name, "-l", text])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "tmux send-keys");
        let ok = Command::new("tmux")
            .args(["send-keys", "-t", &self.name, "Enter"])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "tmux send-keys Enter");
    }

    fn press(&self, key: &str) {
        let ok = Command::new("tmux")
            .args(["send-keys", "-t", &self.name, key])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "tmux send-keys {key}");
        std::thread::sleep(Duration::from_millis(100));
    }

    /// Waits until the screen satisfies `done`, failing with the screen after 30 s.
    fn wait_for(&self, what: &str, done: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let screen = self.capture();
            if done(&screen) {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; screen:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Pane {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["kill-session", "-t", &self.name])
            .status();
    }
}

#[test]
fn full_screen_chat_with_a_second_process() {
    if let Err(reason) = tmux_available() {
        eprintln!("SKIPPED full_screen_chat_with_a_second_process: {reason}");
        return;
    }
    let (pa, pb) = (free_port(), free_port());
    let mut bob = Proc::spawn(
        "bob",
        &[
            &format!("127.0.0.1:{pa}"),
            "--port",
            &pb.to_string(),
            "--json",
        ],
    );
    bob.started();
    // After udpchat leaves, the shell prints its exit status where the chat was: seeing
    // it proves the alternate screen is gone and the terminal is back.
    // tmux gives the pane its server's environment: name the test's home explicitly.
    let command = format!(
        "{} 127.0.0.1:{pb} --port {pa} --nick ada --home {}; echo EXIT=$?; sleep 60",
        bin(),
        common::shared_home().display()
    );
    let pane = Pane::start(&format!("udpchat-test-{pa}"), &command);
    pane.wait_for("the chat to open", |s| s.contains("chatting with"));

    pane.type_line("hello over udp");
    bob.wait_event("bob to receive the line", |e| {
        e["event"] == "received" && e["text"] == "hello over udp"
    });
    bob.wait_event("bob to learn the nickname", |e| {
        e["event"] == "peer_nick" && e["nick"] == "ada"
    });
    pane.wait_for("the delivered mark", |s| {
        s.lines()
            .any(|l| l.contains("ada: hello over udp") && l.contains('✓'))
    });

    bob.write_lines(["hi ada"]);
    pane.wait_for("bob's reply", |s| s.contains("peer: hi ada"));
    // More than the next run shows at first, so it has older ones to load.
    bob.write_lines((0..60).map(|i| format!("old {i:02}")));
    pane.wait_for("bob's 60 lines", |s| s.contains("peer: old 59"));

    // Encrypted, and the status bar says whose key it is (here: the same installation,
    // as the test's two chats share one home).
    let encrypted = bob.wait_event("bob's session", |e| e["event"] == "encrypted");
    let key = encrypted["key"].as_str().unwrap()[..4].to_owned();
    pane.wait_for("the key on ada's status bar", |s| {
        s.contains(&format!("encrypted, own key {key}"))
    });

    pane.type_line("/quit");
    let screen = pane.wait_for("udpchat to exit", |s| s.contains("EXIT="));
    assert!(screen.contains("EXIT=0"), "{screen}");
    assert!(
        !screen.contains("│ rtt"),
        "the status bar is still on screen: the terminal was not restored\n{screen}"
    );
    // (The first pane stays until the end: its tmux server keeps running for the next.)

    // The next chat opens with the kept conversation above, and /find searches it.
    let again = Pane::start(&format!("udpchat-test-{pa}-again"), &command);
    let screen = again.wait_for("the kept conversation", |s| s.contains("earlier message"));
    assert!(
        screen.contains("above: 50 earlier messages"),
        "the newest 50 of the first run's 62 lines\n{screen}"
    );
    // The first 50 start at "old 10". Home at the top loads the older ones; Home again
    // goes up to them. (The model takes the screen for 80x24 until the first resize,
    // issue 12, so the top rows of this 100x20 pane may stay just out of view.)
    assert!(!screen.contains("old 05"), "{screen}");
    again.press("Home");
    again.press("Home");
    again.wait_for("older lines loaded", |s| s.contains("peer: old 05"));
    again.press("End");
    again.type_line("/find over udp");
    again.wait_for("what /find found", |s| {
        s.contains("/find over udp: 1 message in the kept conversation")
    });
    // Bob restarts: ada's nickname goes to his new run again.
    bob.kill();
    let mut bob = Proc::spawn(
        "bob2",
        &[
            &format!("127.0.0.1:{pa}"),
            "--port",
            &pb.to_string(),
            "--json",
        ],
    );
    bob.write_lines(["back again"]);
    again.wait_for("bob's new run", |s| s.contains("peer: back again"));
    bob.wait_event("ada's nickname, again", |e| {
        e["event"] == "peer_nick" && e["nick"] == "ada"
    });
    again.type_line("/quit");
    let screen = again.wait_for("udpchat to exit", |s| s.contains("EXIT="));
    assert!(screen.contains("EXIT=0"), "{screen}");
    bob.close_stdin();
    bob.wait_exit();
}
