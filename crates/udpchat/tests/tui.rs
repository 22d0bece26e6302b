//! The full-screen chat, end to end: the real binary in a real terminal (tmux), chatting
//! with a second udpchat process. Typed text reaches the other side, the delivery mark
//! turns to delivered, the reply appears, `/quit` exits 0 and the terminal is restored;
//! a multi-line paste, SIGTERM, and `TERM=dumb` (the line interface) in a second test.
//!
//! tmux is installed if it is missing and the test can (root with apt-get); otherwise
//! the test is skipped with the reason printed.

// Test support: a panic with the screen is the right way to fail here.
#![allow(clippy::unwrap_used)]

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

impl Pane {
    /// Pastes `text` as a terminal does when the program asked for bracketed paste.
    fn paste(&self, text: &str) {
        let ok = Command::new("tmux")
            .args(["set-buffer", "-b", &self.name, text])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "tmux set-buffer");
        let ok = Command::new("tmux")
            .args([
                "paste-buffer",
                "-p",
                "-d",
                "-b",
                &self.name,
                "-t",
                &self.name,
            ])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "tmux paste-buffer");
    }

    /// Waits until the pane's title (set by the program) satisfies `done`.
    fn wait_title(&self, what: &str, done: impl Fn(&str) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let out = Command::new("tmux")
                .args(["display-message", "-p", "-t", &self.name, "#{pane_title}"])
                .output()
                .unwrap();
            let title = String::from_utf8_lossy(&out.stdout).trim().to_owned();
            if done(&title) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; title: {title:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Makes the window `width` x `height`, as a person resizing the terminal.
    fn resize(&self, width: u16, height: u16) {
        let ok = Command::new("tmux")
            .args([
                "resize-window",
                "-t",
                &self.name,
                "-x",
                &width.to_string(),
                "-y",
                &height.to_string(),
            ])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "tmux resize-window");
    }

    /// The process id of the program the pane's shell runs.
    fn program_pid(&self) -> String {
        let out = Command::new("tmux")
            .args(["list-panes", "-t", &self.name, "-F", "#{pane_pid}"])
            .output()
            .unwrap();
        let shell = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        let out = Command::new("pgrep")
            .args(["-P", &shell, "udpchat"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }
}

impl Drop for Pane {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["kill-session", "-t", &self.name])
            .status();
    }
}

/// Bob: a line-interface chat on `pb` with the full-screen one on `pa`, in JSON.
fn start_bob(name: &str, pa: u16, pb: u16) -> Proc {
    Proc::spawn(
        name,
        &[
            &format!("127.0.0.1:{pa}"),
            "--port",
            &pb.to_string(),
            "--json",
        ],
    )
}

#[test]
fn full_screen_chat_with_a_second_process() {
    if let Err(reason) = tmux_available() {
        eprintln!("SKIPPED full_screen_chat_with_a_second_process: {reason}");
        return;
    }
    let (pa, pb) = (free_port(), free_port());
    let mut bob = start_bob("bob", pa, pb);
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
    // goes up to them (the model knows the pane is 100x20 from the first frame).
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
    let mut bob = start_bob("bob2", pa, pb);
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

#[test]
fn paste_signals_and_a_dumb_terminal() {
    if let Err(reason) = tmux_available() {
        eprintln!("SKIPPED paste_signals_and_a_dumb_terminal: {reason}");
        return;
    }
    let (pa, pb) = (free_port(), free_port());
    let mut bob = start_bob("bob", pa, pb);
    bob.started();
    let home = common::own_copy_of_shared_home();
    let command = format!(
        "{} 127.0.0.1:{pb} --port {pa} --nick ada --home {}; echo EXIT=$?; sleep 60",
        bin(),
        home.display()
    );
    let pane = Pane::start(&format!("udpchat-paste-{pa}"), &command);
    pane.wait_for("the chat to open", |s| s.contains("chatting with"));
    // The status bar fits the pane's 100 columns from the first frame.
    pane.wait_for("the status bar", |s| s.contains("● online"));

    // A paste of three lines waits in the input, then goes as one message of three
    // lines, shown with its line breaks on both sides.
    pane.paste("first line\nsecond line\n\tthird line");
    pane.wait_for("the paste in the input", |s| {
        s.contains("first line↵second line↵        third line")
    });
    pane.press("Enter");
    bob.wait_until("the pasted message", |events| {
        events.iter().any(|e| e["event"] == "received")
    });
    assert_eq!(
        bob.received(),
        ["first line\nsecond line\n        third line"],
        "{}",
        bob.dump()
    );
    pane.wait_for("the paste shown as three rows", |s| {
        let rows: Vec<&str> = s.lines().collect();
        rows.iter().enumerate().any(|(i, row)| {
            row.ends_with("ada: first line")
                && rows.get(i + 1).is_some_and(|r| r.trim() == "second line")
                && rows
                    .get(i + 2)
                    .is_some_and(|r| r.trim_start().starts_with("third line"))
        })
    });

    // /trace draws the last datagrams as a small sequence diagram.
    pane.type_line("/trace");
    pane.wait_for("the diagram", |s| {
        s.contains("/trace: the last datagrams") && s.contains("DATA seq") && s.contains('▶')
    });

    // The first PgUp scrolls by the pane's real height; a line arriving meanwhile is
    // counted in the terminal's title until the reader is back at the bottom.
    bob.write_lines((0..40).map(|i| format!("filler {i:02}")));
    pane.wait_for("bob's 40 lines", |s| s.contains("peer: filler 39"));
    pane.press("PPage");
    pane.wait_for("the first PgUp", |s| {
        !s.contains("peer: filler 39") && s.contains("peer: filler 2")
    });
    bob.write_lines(["while ada reads"]);
    pane.wait_title("one unseen message in the title", |t| {
        t.starts_with("(1) udpchat")
    });
    pane.press("End");
    pane.wait_for("the bottom again", |s| s.contains("peer: while ada reads"));
    pane.wait_title("the title without a count", |t| t.starts_with("udpchat — "));

    // A narrow window keeps the peer's state and the protection on the status bar.
    pane.resize(40, 20);
    pane.wait_for("the narrow status bar", |s| {
        s.lines()
            .any(|l| l.starts_with("peer ● online │ encrypted") && l.chars().count() <= 40)
    });

    // Bob leaves without a word; a line to him cannot be delivered. SIGTERM then ends
    // the chat as /quit does: the terminal restored and the line said, not lost.
    bob.kill();
    pane.type_line("nobody hears this");
    // Taken in (and so in the outbox) before the signal.
    pane.wait_for("the line on screen", |s| {
        s.contains("ada: nobody hears this")
    });
    let pid = pane.program_pid();
    assert!(!pid.is_empty(), "no udpchat under the pane's shell");
    let killed = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(killed.success());
    let screen = pane.wait_for("udpchat to exit", |s| s.contains("EXIT="));
    assert!(
        !screen.contains("│ encrypt") && !screen.contains("● online"),
        "the status bar is still on screen: the terminal was not restored\n{screen}"
    );
    assert!(screen.contains("nobody hears this"), "{screen}");
    assert!(screen.contains("outbox"), "{screen}");

    // TERM=dumb cannot draw a screen: the line interface, as from a pipe.
    let dumb = format!(
        "TERM=dumb {} 127.0.0.1:{pb} --port {pa} --home {} --connect-timeout 1s; echo EXIT=$?; sleep 60",
        bin(),
        home.display()
    );
    let pane = Pane::start(&format!("udpchat-dumb-{pa}"), &dumb);
    let screen = pane.wait_for("the line interface", |s| {
        s.contains("type a line and press Enter")
    });
    assert!(!screen.contains("│ rtt"), "{screen}");
    pane.press("C-d");
    pane.wait_for("udpchat to exit", |s| s.contains("EXIT="));
}

#[test]
fn files_from_and_to_the_full_screen_chat() {
    if let Err(reason) = tmux_available() {
        eprintln!("SKIPPED files_from_and_to_the_full_screen_chat: {reason}");
        return;
    }
    let work = common::temp_home("tui-files");
    let (bob_dir, ada_dir) = (work.join("bob-downloads"), work.join("ada-downloads"));
    std::fs::create_dir_all(&ada_dir).unwrap();
    let outgoing = work.join("from ada.txt");
    std::fs::write(&outgoing, "ada's notes\n".repeat(50_000)).unwrap();
    let (pa, pb) = (free_port(), free_port());
    let bob_args = |extra: &[&str]| {
        let mut args = vec![
            format!("127.0.0.1:{pa}"),
            "--port".to_owned(),
            pb.to_string(),
            "--json".to_owned(),
        ];
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        args
    };
    let args = bob_args(&["--accept-files", bob_dir.to_str().unwrap()]);
    let mut bob = Proc::spawn("bob", &args.iter().map(String::as_str).collect::<Vec<_>>());
    bob.started();
    let command = format!(
        "{} 127.0.0.1:{pb} --port {pa} --nick ada --download-dir {} --home {}; echo EXIT=$?; sleep 60",
        bin(),
        ada_dir.display(),
        common::own_copy_of_shared_home().display()
    );
    let pane = Pane::start(&format!("udpchat-files-{pa}"), &command);
    pane.wait_for("the chat to open", |s| s.contains("● online"));

    // Ada sends a file with /send; Bob takes it at once; Ada is told it arrived checked.
    pane.type_line(&format!("/send {}", outgoing.display()));
    bob.wait_event("the file", |e| e["event"] == "file_done");
    pane.wait_for("the confirmation", |s| {
        s.contains("sent from ada.txt") && s.contains("the peer has it, checked")
    });
    assert_eq!(
        std::fs::read(bob_dir.join("from ada.txt")).unwrap(),
        std::fs::read(&outgoing).unwrap()
    );

    // Bob starts again to send Ada a file: she sees the offer and takes it with /accept.
    bob.close_stdin();
    bob.kill();
    let incoming = work.join("for-ada.bin");
    std::fs::write(&incoming, vec![7u8; 300_000]).unwrap();
    let args = bob_args(&["--send", incoming.to_str().unwrap()]);
    let mut bob = Proc::spawn(
        "bob again",
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    bob.close_stdin();
    pane.wait_for("the offer", |s| {
        s.contains("the peer offers for-ada.bin") && s.contains("/accept 1")
    });
    pane.type_line("/accept");
    pane.wait_for("the file", |s| s.contains("received for-ada.bin"));
    assert!(bob.wait_exit().success(), "{}", bob.dump());
    assert_eq!(
        std::fs::read(ada_dir.join("for-ada.bin")).unwrap(),
        vec![7u8; 300_000]
    );
    pane.type_line("/quit");
    pane.wait_for("the shell", |s| s.contains("EXIT="));
}
