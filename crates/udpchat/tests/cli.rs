//! The command line as a user meets it: help, one-line errors with exit status 2,
//! refused lines that do not stop the chat, and chatting with oneself.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{assert_usage_error, bin, free_port, localhost, run, Proc};

#[test]
fn help_lists_every_option() {
    let out = run(&["--help"]);
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for option in [
        "[PEER]",
        "--port",
        "--bind",
        "--timeout",
        "--drop",
        "--ack-drop",
        "--seed",
        "--max-retries",
        "--window",
        "--stats",
        "--classic",
        "--plaintext",
        "--secret-file",
        "--ask-secret",
        "--room",
        "--json",
        "--verbose",
        "--help",
        "--version",
    ] {
        assert!(
            help.contains(option),
            "{option} missing from --help:\n{help}"
        );
    }
    // --help wraps lines, so compare with the whitespace collapsed.
    let flat = help.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(flat.contains("Overrides --port, --timeout, --window, --drop and --ack-drop"));
}

#[test]
fn bad_options_give_one_line_and_status_2() {
    assert_usage_error(&["--frobnicate", "127.0.0.1"], &["--frobnicate"]);
    assert_usage_error(
        &["--drop", "1.5", "127.0.0.1"],
        &["--drop", "1.5", "from 0 to 1"],
    );
    assert_usage_error(
        &["--ack-drop", "lots", "127.0.0.1"],
        &["--ack-drop", "lots"],
    );
    assert_usage_error(
        &["--timeout", "0s", "127.0.0.1"],
        &["--timeout", "greater than zero"],
    );
    assert_usage_error(&["--timeout", "soon", "127.0.0.1"], &["--timeout", "soon"]);
    assert_usage_error(&["--port", "65536", "127.0.0.1"], &["--port", "65536"]);
}

#[test]
fn passphrase_mistakes_give_one_line_and_status_2() {
    let missing = std::env::temp_dir().join("udpchat-cli-no-such-secret");
    let missing = missing.to_str().unwrap();
    assert_usage_error(
        &["--port", "0", "--secret-file", missing, "127.0.0.1:9"],
        &["cannot read the passphrase file", missing],
    );
    let empty = std::env::temp_dir().join(format!("udpchat-cli-empty-{}", std::process::id()));
    std::fs::write(&empty, "\n").unwrap();
    let empty = empty.to_str().unwrap();
    assert_usage_error(
        &["--port", "0", "--secret-file", empty, "127.0.0.1:9"],
        &["is empty"],
    );
    assert_usage_error(
        &["--classic", "--secret-file", empty, "127.0.0.1"],
        &["--classic", "--secret-file"],
    );
    assert_usage_error(
        &["--plaintext", "--room", "lab", "127.0.0.1"],
        &["--plaintext", "--room"],
    );
    assert_usage_error(
        &["--port", "0", "--room", "lab", "127.0.0.1:9"],
        &["--room needs a passphrase"],
    );
    // The passphrase itself is never an option.
    assert_usage_error(&["--secret", "hunter2", "127.0.0.1"], &["--secret"]);
}

#[test]
fn no_peer_without_a_terminal_is_a_usage_error() {
    assert_usage_error(&[], &["no PEER given", "not a terminal"]);
}

#[test]
fn bad_peers_are_usage_errors() {
    assert_usage_error(
        &["no-such-host.invalid"],
        &["cannot resolve", "no-such-host.invalid"],
    );
    assert_usage_error(&["127.0.0.1:99999"], &["invalid port", "99999"]);
    assert_usage_error(&["[::1"], &["invalid peer address"]);
    assert_usage_error(&["--bind", "::", "127.0.0.1"], &["IPv4", "IPv6"]);
}

#[test]
fn port_in_use_is_one_line_naming_the_port() {
    let holder = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
    let port = holder.local_addr().unwrap().port().to_string();
    let out = run(&["127.0.0.1", "--port", &port]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr:?}");
    assert!(stderr.contains(&format!("port {port}")), "{stderr}");
    assert!(stderr.contains("already in use"), "{stderr}");
}

/// `udpchat 127.0.0.1:P --port P` talks to itself.
fn self_chat(extra: &[&str]) -> Proc {
    let port = free_port().to_string();
    let peer = format!("127.0.0.1:{port}");
    let mut args = vec![
        peer.as_str(),
        "--port",
        &port,
        "--timeout",
        "50ms",
        "--json",
    ];
    args.extend_from_slice(extra);
    Proc::spawn("self", &args)
}

#[test]
fn chatting_with_oneself_receives_each_line_and_exits_0() {
    let mut me = self_chat(&[]);
    me.write_lines(["hello, me", "", "second"]);
    me.close_stdin();
    let status = me.wait_exit();
    assert!(status.success(), "{status}\n{}", me.dump());
    assert_eq!(me.received(), ["hello, me", "second"], "{}", me.dump());
    common::assert_documented(&me.events());
    let exit = me.exit_event();
    assert_eq!(exit["sent"], 2, "{exit}");
    assert_eq!(exit["delivered"], 2, "{exit}");
}

#[test]
fn refused_lines_are_reported_with_their_text_and_the_chat_goes_on() {
    let mut me = self_chat(&["--max-message", "1500"]);
    let long = "x".repeat(2000);
    me.write_lines([long.as_str(), "after the long one"]);
    me.write_bytes(b"bad \xff utf-8\n");
    me.write_lines(["after the bad one"]);
    me.close_stdin();
    let status = me.wait_exit();
    assert_eq!(
        me.received(),
        ["after the long one", "after the bad one"],
        "{}",
        me.dump()
    );
    let errors = me.events_named("error");
    assert_eq!(errors.len(), 2, "{}", me.dump());
    assert_eq!(errors[0]["text"], long.as_str());
    let message = errors[0]["message"].as_str().unwrap();
    assert!(
        message.contains("too long") && message.contains("limit is 1500 bytes"),
        "{message}"
    );
    assert!(errors[1]["message"].as_str().unwrap().contains("UTF-8"));
    assert_eq!(errors[1]["text"], "bad \u{fffd} utf-8");
    // Two lines were not sent, so not everything typed was delivered.
    assert_eq!(status.code(), Some(1), "{}", me.dump());
    assert_eq!(me.exit_event()["refused"], 2);
    assert_eq!(me.exit_event()["failed"], 0);
}

#[test]
fn human_output_keeps_the_conversation_on_stdout() {
    let port = free_port().to_string();
    let peer = format!("127.0.0.1:{port}");
    let mut child = Command::new(bin())
        .args([peer.as_str(), "--port", &port, "--timeout", "50ms"])
        .env("UDPCHAT_HOME", common::own_copy_of_shared_home())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(b"one\ntwo\n").unwrap();
    }
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "peer> one\npeer> two\n"
    );
    assert!(stderr.contains("delivered #0"), "{stderr}");
    assert!(stderr.contains("sent 2, delivered 2, failed 0"), "{stderr}");
}

/// Runs a chat whose peer never answers, with one line typed; returns it after exit.
fn unanswered(name: &str, extra: &[&str]) -> Proc {
    // Nobody listens on the peer's port: nothing ever answers.
    let port = free_port().to_string();
    let peer = format!("127.0.0.1:{}", free_port());
    let mut args = vec![
        peer.as_str(),
        "--port",
        &port,
        "--timeout",
        "20ms",
        "--max-retries",
        "3",
        // Messages wait for a session without spending retries; nobody answering
        // for this long gives them up.
        "--connect-timeout",
        "1s",
        "--json",
    ];
    args.extend_from_slice(extra);
    let mut me = Proc::spawn(name, &args);
    me.write_lines(["anyone there?"]);
    me.close_stdin();
    me.wait_exit();
    me
}

#[test]
fn an_unanswered_message_is_kept_in_the_outbox_with_status_3() {
    let home = common::temp_home("outbox");
    let home_arg = home.to_str().unwrap().to_owned();
    let mut me = unanswered("lonely", &["--home", &home_arg]);
    let status = me.wait_exit();
    assert_eq!(status.code(), Some(3), "{}", me.dump());
    assert!(me.events_named("failed").is_empty(), "{}", me.dump());
    let kept = me.events_named("kept");
    assert!(!kept.is_empty(), "{}", me.dump());
    assert_eq!(kept[0]["text"], "anyone there?");
    assert_eq!(kept[0]["reason"], "peer_unreachable");
    assert_eq!(me.exit_event()["failed"], 0);
    assert_eq!(me.exit_event()["queued"], 1);
    // `udpchat outbox` lists it, with its number, until the peer takes it.
    let out = common::run(&["outbox", "--json", "--home", &home_arg]);
    assert!(out.status.success(), "{out:?}");
    let listed: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["text"], "anyone there?");
    assert_eq!(listed[0]["number"], 0);
    assert_eq!(listed[0]["state"], "queued");
}

#[test]
fn no_history_keeps_nothing_and_fails_what_was_not_delivered() {
    let home = common::temp_home("no-history");
    let home_arg = home.to_str().unwrap().to_owned();
    let mut me = unanswered("lonely-unkept", &["--home", &home_arg, "--no-history"]);
    assert_eq!(me.wait_exit().code(), Some(1), "{}", me.dump());
    let failed = me.events_named("failed");
    assert_eq!(failed.len(), 1, "{}", me.dump());
    assert_eq!(failed[0]["text"], "anyone there?");
    assert!(!home.join("history.db").exists(), "no store was made");
}

#[test]
fn an_unanswered_message_fails_with_its_text_and_status_1_when_ephemeral() {
    let mut me = unanswered("lonely-ephemeral", &["--ephemeral"]);
    let status = me.wait_exit();
    assert_eq!(status.code(), Some(1), "{}", me.dump());
    let failed = me.events_named("failed");
    assert_eq!(failed.len(), 1, "{}", me.dump());
    assert_eq!(failed[0]["text"], "anyone there?");
    assert_eq!(failed[0]["reason"], "peer_unreachable");
    assert_eq!(me.exit_event()["failed"], 1);
    assert_eq!(me.exit_event()["queued"], 0);
}

#[test]
fn chatting_with_oneself_over_ipv6() {
    let Ok(probe) = std::net::UdpSocket::bind("[::1]:0") else {
        eprintln!("no IPv6 loopback here; skipped");
        return;
    };
    let port = probe.local_addr().unwrap().port().to_string();
    drop(probe);
    let peer = format!("[::1]:{port}");
    let mut me = Proc::spawn(
        "self6",
        &[&peer, "--port", &port, "--timeout", "50ms", "--json"],
    );
    let started = me.wait_event("started", |e| e["event"] == "started");
    assert_eq!(
        started["local"],
        format!("[::]:{port}"),
        "binds the peer's family"
    );
    me.write_lines(["over v6"]);
    me.close_stdin();
    let status = me.wait_exit();
    assert!(status.success(), "{status}\n{}", me.dump());
    assert_eq!(me.received(), ["over v6"]);
}

#[cfg(unix)]
#[test]
fn ctrl_c_reports_unacknowledged_messages_and_exits_130() {
    use udpchat_proto::wire::{Frame, Packet};
    // The test socket is a peer that answers the handshake but never acknowledges.
    let peer = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    peer.set_read_timeout(Some(common::DEADLINE)).unwrap();
    let peer_arg = peer.local_addr().unwrap().to_string();
    let mut me = Proc::spawn(
        "interrupted",
        &[&peer_arg, "--port", "0", "--json", "--plaintext"],
    );
    let (epoch, port) = me.started();
    let mut buf = [0u8; 2048];
    let (n, _) = peer.recv_from(&mut buf).unwrap();
    let hello = Packet::decode(&buf[..n]).unwrap();
    let answer = Packet {
        src_epoch: 0x5eed,
        dst_epoch: hello.src_epoch,
        frames: vec![Frame::Hello],
    };
    assert_eq!(format!("{:016x}", hello.src_epoch), epoch);
    peer.send_to(&answer.encode(), ("127.0.0.1", port)).unwrap();
    me.write_lines(["never acknowledged"]);
    me.wait_event("sent", |e| e["event"] == "sent");

    let kill = Command::new("kill")
        .args(["-INT", &me.pid().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let status = me.wait_exit();
    assert_eq!(status.code(), Some(130), "{}", me.dump());
    // Nothing is lost: the message stays in the outbox for the next run.
    let kept = me.events_named("kept");
    assert_eq!(kept.len(), 1, "{}", me.dump());
    assert_eq!(kept[0]["text"], "never acknowledged");
    assert_eq!(kept[0]["reason"], "interrupted");
    assert_eq!(me.exit_event()["failed"], 0);
    assert_eq!(me.exit_event()["queued"], 1);
}

#[test]
fn the_line_interface_from_a_pipe_is_quiet_names_the_peer_and_stamps_events() {
    let (pa, pb) = (free_port(), free_port());
    let (home_a, home_b) = common::acquainted(pa, pb);
    let (ha, hb) = (home_a.to_str().unwrap(), home_b.to_str().unwrap());
    // A: human lines from a pipe, with a nickname; B: JSON.
    let a = Command::new(bin())
        .args([&format!("127.0.0.1:{pb}"), "--port", &pa.to_string()])
        .args(["--plain", "--nick", "ada", "--home", ha])
        .env("UDPCHAT_CONFIG", "/nonexistent/udpchat.toml")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut b = Proc::chat(
        "B",
        pb,
        common::localhost(pa),
        &["--home", hb, "--nick", "bob"],
    );
    let started = b.wait_event("started", |e| e["event"] == "started");
    // The seed as a string: JavaScript's numbers cannot hold every u64.
    assert!(started["seed"].is_string(), "{started}");
    assert!(started["ts"].as_str().unwrap().ends_with('Z'), "{started}");
    let mut stdin = a.stdin.as_ref().unwrap();
    std::io::Write::write_all(&mut stdin, b"hello from a pipe\n").unwrap();
    let got = b.wait_event("the line", |e| e["event"] == "received");
    assert_eq!(got["text"], "hello from a pipe");
    assert_eq!(got["nick"], "ada", "{got}");
    b.write_lines(["hi ada"]);
    b.wait_event("the answer delivered", |e| e["event"] == "delivered");
    b.close_stdin();
    let mut a = a;
    drop(a.stdin.take());
    let out = a.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("type a line") && !stderr.contains("seed"),
        "no greeting from a pipe: {stderr}"
    );
    // The totals count messages, not the nickname announcement.
    assert!(stderr.contains("sent 1, delivered 1, failed 0"), "{stderr}");
    assert!(b.wait_exit().success(), "{}", b.dump());
    common::assert_documented(&b.events());
    // B's nickname announcement is not a message: one sent, one delivered, id 1 (the
    // announcement took 0).
    let sent = b.events_named("sent");
    assert_eq!(sent.len(), 1, "{}", b.dump());
    assert_eq!(b.events_named("delivered").len(), 1, "{}", b.dump());
    assert_eq!(b.exit_event()["sent"], 1);
}

#[test]
fn a_fatal_error_is_an_event_in_json() {
    let holder = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
    let port = holder.local_addr().unwrap().port().to_string();
    let out = run(&["127.0.0.1", "--port", &port, "--json"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let events: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let [error, exit] = events.as_slice() else {
        panic!("{stdout}");
    };
    assert_eq!(error["event"], "error", "{error}");
    assert_eq!(error["fatal"], true, "{error}");
    let message = error["message"].as_str().unwrap();
    assert!(message.contains("already in use"), "{error}");
    assert_eq!(exit["event"], "exit", "{exit}");
    assert_eq!(exit["status"], 1, "{exit}");
    common::assert_documented(&events);
}

#[test]
fn a_peer_that_never_answers_is_named_within_seconds() {
    // Shipped defaults: the session's own verdict comes at 30 s; the hint at 10 s.
    let port = free_port().to_string();
    let peer = format!("127.0.0.1:{}", free_port());
    let mut me = Proc::spawn("silent", &[peer.as_str(), "--port", &port, "--json"]);
    me.write_lines(["anyone there?"]);
    let started = Instant::now();
    let hint = me.wait_event("the hint", |e| {
        e["event"] == "warning" && e["message"].as_str().unwrap().starts_with("no answer from")
    });
    let waited = started.elapsed();
    let message = hint["message"].as_str().unwrap();
    assert!(
        message.contains(&peer) && message.contains("is UDP allowed"),
        "{message}"
    );
    // A timer of the driver: about 10 s, bounded generously for a loaded machine.
    assert!(waited >= Duration::from_secs(9), "{waited:?}");
    assert!(waited < Duration::from_secs(25), "{waited:?}");
    // Nothing was given up: the line still waits for the peer.
    assert!(me.events_named("kept").is_empty(), "{}", me.dump());
    assert!(me.events_named("failed").is_empty(), "{}", me.dump());
}

#[test]
fn an_alias_names_a_pinned_peer_and_starts_the_chat() {
    let (pa, pb) = (free_port(), free_port());
    let (home_a, home_b) = common::acquainted(pa, pb);
    let (ha, hb) = (home_a.to_str().unwrap(), home_b.to_str().unwrap());
    let named = common::run(&["alias", "bob", &format!("127.0.0.1:{pb}"), "--home", ha]);
    assert!(named.status.success(), "{named:?}");
    assert!(String::from_utf8_lossy(&named.stdout).contains("is now bob"));
    let unknown = common::run(&["alias", "eve", "127.0.0.1:9", "--home", ha]);
    assert_eq!(unknown.status.code(), Some(1), "{unknown:?}");
    let peers = common::run(&["peers", "--json", "--home", ha]);
    assert!(String::from_utf8_lossy(&peers.stdout).contains("\"name\":\"bob\""));

    let mut b = Proc::chat("B", pb, common::localhost(pa), &["--home", hb]);
    let mut a = Proc::spawn(
        "A",
        &["bob", "--port", &pa.to_string(), "--json", "--home", ha],
    );
    let started = a.wait_event("started", |e| e["event"] == "started");
    assert_eq!(started["peer"], format!("127.0.0.1:{pb}"));
    a.write_lines(["hi bob"]);
    a.close_stdin();
    b.wait_event("the line", |e| {
        e["event"] == "received" && e["text"] == "hi bob"
    });
    b.close_stdin();
    assert!(a.wait_exit_or_dump(&b).success(), "{}", a.dump());
    assert!(b.wait_exit_or_dump(&a).success(), "{}", b.dump());
    // The name stands for the peer in `udpchat history` too.
    let history = common::run(&["history", "bob", "--home", ha]);
    assert!(history.status.success(), "{history:?}");
    assert!(
        String::from_utf8_lossy(&history.stdout).contains("hi bob"),
        "{history:?}"
    );
}

#[test]
fn a_pinned_peer_is_found_by_the_nickname_it_sent() {
    let (pa, pb) = (free_port(), free_port());
    let (home_a, home_b) = common::acquainted(pa, pb);
    let (ha, hb) = (home_a.to_str().unwrap(), home_b.to_str().unwrap());
    // B tells A its nickname once; A's store keeps it.
    let mut b = Proc::chat(
        "B",
        pb,
        common::localhost(pa),
        &["--home", hb, "--nick", "bobby"],
    );
    let mut a = Proc::chat("A", pa, common::localhost(pb), &["--home", ha]);
    a.wait_event("the nickname", |e| e["event"] == "peer_nick");
    a.close_stdin();
    b.close_stdin();
    assert!(a.wait_exit_or_dump(&b).success(), "{}", a.dump());
    assert!(b.wait_exit_or_dump(&a).success(), "{}", b.dump());
    // Nobody gave B a name; `udpchat bobby` finds it by the nickname it sent.
    let mut b = Proc::chat("B", pb, common::localhost(pa), &["--home", hb]);
    let mut a = Proc::spawn(
        "A",
        &["bobby", "--port", &pa.to_string(), "--json", "--home", ha],
    );
    let started = a.wait_event("started", |e| e["event"] == "started");
    assert_eq!(started["peer"], format!("127.0.0.1:{pb}"));
    a.write_lines(["found you"]);
    a.close_stdin();
    b.wait_event("the line", |e| {
        e["event"] == "received" && e["text"] == "found you"
    });
    b.close_stdin();
    assert!(a.wait_exit_or_dump(&b).success(), "{}", a.dump());
    assert!(b.wait_exit_or_dump(&a).success(), "{}", b.dump());
    let history = common::run(&["history", "bobby", "--home", ha]);
    assert!(
        String::from_utf8_lossy(&history.stdout).contains("found you"),
        "{history:?}"
    );
}

#[test]
fn the_config_file_sets_defaults_below_flags_and_the_environment() {
    let dir = common::temp_home("config");
    std::fs::create_dir_all(&dir).unwrap();
    let (from_file, from_env, from_flag) = (dir.join("file"), dir.join("env"), dir.join("flag"));
    let config = dir.join("config.toml");
    let port = free_port();
    std::fs::write(
        &config,
        format!(
            "nick = \"ada\"\nhome = \"{}\"\nport = {port}\n",
            from_file.display()
        ),
    )
    .unwrap();
    let home_of = |env_home: Option<&std::path::Path>, flag: Option<&std::path::Path>| {
        let mut c = Command::new(bin());
        c.args(["id", "--json"])
            .env("UDPCHAT_CONFIG", &config)
            .env_remove("UDPCHAT_HOME")
            .stdin(Stdio::null());
        if let Some(h) = env_home {
            c.env("UDPCHAT_HOME", h);
        }
        if let Some(h) = flag {
            c.arg("--home").arg(h);
        }
        let out = c.output().unwrap();
        assert!(out.status.success(), "{out:?}");
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v["home"].as_str().unwrap().to_owned()
    };
    assert_eq!(home_of(None, None), from_file.display().to_string());
    assert_eq!(
        home_of(Some(&from_env), None),
        from_env.display().to_string()
    );
    assert_eq!(
        home_of(Some(&from_env), Some(&from_flag)),
        from_flag.display().to_string()
    );

    // The port comes from the file too, for a chat.
    let mut me = Command::new(bin());
    me.args([
        "127.0.0.1:9",
        "--json",
        "--connect-timeout",
        "1s",
        "--no-history",
    ])
    .env("UDPCHAT_CONFIG", &config)
    .env_remove("UDPCHAT_HOME")
    .stdin(Stdio::null());
    let out = me.output().unwrap();
    let started: serde_json::Value =
        serde_json::from_str(String::from_utf8_lossy(&out.stdout).lines().next().unwrap()).unwrap();
    assert_eq!(started["local"], format!("0.0.0.0:{port}"), "{out:?}");

    // A mistake in the file is one line naming it, and a usage error.
    std::fs::write(&config, "nik = \"ada\"\n").unwrap();
    let out = Command::new(bin())
        .args(["id"])
        .env("UDPCHAT_CONFIG", &config)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains(&config.display().to_string()) && err.contains("nik"),
        "{err}"
    );
}

/// A line longer than a datagram, and one of many kilobytes, go in parts and arrive
/// whole, once, in order between short ones, with the store (the default: the history
/// keeps them) on both sides; the receiver's own `--max-message` limits only what it
/// sends, so a longer message from the peer is shown, never refused after it was
/// acknowledged.
#[test]
fn long_lines_arrive_whole_with_the_store_and_a_smaller_limit_on_the_receiver() {
    let (pa, pb) = (free_port(), free_port());
    let mut b = Proc::chat("b", pb, localhost(pa), &["--max-message", "2000"]);
    let mut a = Proc::chat("a", pa, localhost(pb), &[]);
    let long: String = (0..100_000)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    let medium = "é".repeat(1_000);
    a.write_lines(["first", long.as_str(), medium.as_str(), "last"]);
    a.close_stdin();
    // A side whose input ends before it met the peer leaves at once: B ends its input
    // only once everything arrived.
    b.wait_until("the last line", |events| {
        events
            .iter()
            .any(|e| e["event"] == "received" && e["text"] == "last")
    });
    b.close_stdin();
    let status = a.wait_exit_or_dump(&b);
    assert_eq!(status.code(), Some(0), "{}\n{}", a.dump(), b.dump());
    assert_eq!(b.wait_exit().code(), Some(0), "{}", b.dump());
    assert_eq!(
        b.received(),
        ["first", long.as_str(), medium.as_str(), "last"],
        "{}",
        b.dump()
    );
    assert_eq!(a.exit_event()["delivered"], 4, "{}", a.dump());
    let too_long = b
        .events_named("rejected")
        .into_iter()
        .filter(|e| e["reason"] == "text_too_long")
        .count();
    assert_eq!(too_long, 0, "{}", b.dump());
}
