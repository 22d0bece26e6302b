//! Running real `udpchat` processes: spawn with arguments, feed stdin, collect the JSON
//! events they print, wait for an event or for the exit with a generous deadline, and
//! fail with everything they printed.

// Test support: a panic with the captured output is the right way to fail here.
#![allow(
    dead_code,
    unreachable_pub,
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used
)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

/// How long any wait may take before the test fails. Far above what a run needs, so a
/// slow CI machine does not fail the test; a hang still ends.
pub const DEADLINE: Duration = Duration::from_secs(60);

/// A config file that does not exist: the tests never read the person's own.
pub const NO_CONFIG: &str = "/nonexistent/udpchat-test/config.toml";

/// Path of the binary under test.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_udpchat")
}

/// The data directory every process of this test binary shares unless a test gives
/// `--home`: one installation, so two chats of a test are the same person (their own
/// key is trusted without a first contact), and nothing lands in the real home.
pub fn shared_home() -> PathBuf {
    static HOME: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    HOME.get_or_init(|| temp_home("shared")).clone()
}

/// A data directory of its own holding the shared home's identity and pinned peers:
/// the same person as every other process of this test binary, but a store (history,
/// outbox, its lock) of its own, as two chats may not share one.
pub fn own_copy_of_shared_home() -> PathBuf {
    let shared = shared_home();
    // The identity is made once, by the first caller.
    static MADE: std::sync::Once = std::sync::Once::new();
    MADE.call_once(|| {
        identity(&shared);
    });
    let own = temp_home("own");
    std::fs::create_dir_all(&own).unwrap();
    for entry in std::fs::read_dir(&shared).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if entry.file_type().unwrap().is_file()
            && !name.starts_with("history.db")
            && name != "udpchat.lock"
        {
            std::fs::copy(entry.path(), own.join(&*name)).unwrap();
        }
    }
    own
}

/// A fresh, empty data directory: a new installation, a new person.
pub fn temp_home(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "udpchat-test-{}-{name}-{}",
        std::process::id(),
        rand::random::<u32>()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// The fingerprint and public key (hex) of the identity in `home`, created if needed.
pub fn identity(home: &std::path::Path) -> (String, String) {
    let out = run(&["id", "--json", "--home", home.to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    (
        v["fingerprint"].as_str().unwrap().to_owned(),
        v["public_key"].as_str().unwrap().to_owned(),
    )
}

/// Two installations that already met: each has the other's key pinned at the other's
/// address (as after a first contact), so their chats need nothing compared.
pub fn acquainted(a_port: u16, b_port: u16) -> (PathBuf, PathBuf) {
    let (a, b) = (temp_home("a"), temp_home("b"));
    let (_, key_a) = identity(&a);
    let (_, key_b) = identity(&b);
    for (home, key, port) in [(&a, &key_b, b_port), (&b, &key_a, a_port)] {
        std::fs::write(
            home.join("known_peers"),
            format!("{key} manual 2026-12-01T00:00:00Z 127.0.0.1:{port}\n"),
        )
        .unwrap();
    }
    (a, b)
}

/// Runs `udpchat` to completion with stdin closed (not a terminal).
pub fn run(args: &[&str]) -> Output {
    Command::new(bin())
        .args(args)
        .env("UDPCHAT_HOME", shared_home())
        .env("UDPCHAT_CONFIG", NO_CONFIG)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// Runs `udpchat ARGS` and requires a usage error: exit status 2, nothing on stdout and
/// exactly one line on stderr that contains every one of `needles`.
pub fn assert_usage_error(args: &[&str], needles: &[&str]) {
    let out = run(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
    assert_eq!(
        stderr.lines().count(),
        1,
        "{args:?}: one line, got {stderr:?}"
    );
    assert!(stderr.starts_with("udpchat: "), "{stderr}");
    for needle in needles {
        assert!(
            stderr.contains(needle),
            "{args:?}: {needle:?} missing in {stderr:?}"
        );
    }
    assert!(out.stdout.is_empty(), "{args:?}");
}

/// The kept conversation of `home` as `udpchat history --json` prints it.
pub fn history(home: &std::path::Path) -> Vec<Value> {
    let out = run(&["history", "--json", "--home", home.to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The texts of the kept messages going `direction` (`in` or `out`), oldest first.
pub fn history_texts(home: &std::path::Path, direction: &str) -> Vec<String> {
    history(home)
        .iter()
        .filter(|m| m["direction"] == direction)
        .map(|m| m["text"].as_str().unwrap().to_owned())
        .collect()
}

/// `127.0.0.1:port`.
pub fn localhost(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// A UDP port for a chat this test starts later, kept from every other test process.
///
/// A port the kernel handed out for `bind(0)` and that was then released can be handed
/// out again, to anyone, before the chat binds it: a loaded run lost a staggered start
/// that way ("port already in use" two seconds after the port was chosen). So the port
/// comes from below the kernel's ephemeral range (which `bind(0)` never uses) and is
/// reserved for the life of this test process by an abstract Unix socket named after
/// it: the kernel releases the name when the process ends, even by SIGKILL, and two
/// test processes cannot hold the same name.
pub fn free_port() -> u16 {
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::net::{SocketAddr as UnixAddr, UnixDatagram};
    static HELD: Mutex<Vec<UnixDatagram>> = Mutex::new(Vec::new());
    const LOWEST: u32 = 20_000;
    let ephemeral_start = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u32>().ok())
        .unwrap_or(32_768);
    let span = ephemeral_start.saturating_sub(LOWEST).max(1_000);
    let offset = rand::random::<u32>();
    for i in 0..span {
        let port = u16::try_from(LOWEST + (offset.wrapping_add(i)) % span).unwrap();
        let name = format!("udpchat-test-port-{port}");
        let Ok(reservation) = UnixDatagram::bind_addr(&UnixAddr::from_abstract_name(name).unwrap())
        else {
            continue; // another test process holds it
        };
        // Something other than a test may use it: take only a port free right now.
        if UdpSocket::bind(("0.0.0.0", port)).is_err() {
            continue;
        }
        HELD.lock().unwrap().push(reservation);
        return port;
    }
    panic!("no free UDP port between {LOWEST} and {}", LOWEST + span);
}

#[derive(Default)]
struct Captured {
    events: Vec<Value>,
    stdout_closed: bool,
}

/// One running `udpchat --json`.
pub struct Proc {
    name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    captured: Arc<(Mutex<Captured>, Condvar)>,
    stderr: Arc<Mutex<String>>,
    /// The stderr reader has read to the end (the process exited and its pipe closed).
    stderr_closed: Arc<std::sync::atomic::AtomicBool>,
}

impl Proc {
    /// Starts `udpchat` with `args` (add `--json` yourself) and piped stdin.
    /// `udpchat PEER --port PORT --json` and `extra`: one side of a chat on loopback.
    pub fn chat(name: &str, port: u16, peer: SocketAddr, extra: &[&str]) -> Self {
        let (peer, port) = (peer.to_string(), port.to_string());
        let mut args = vec![peer.as_str(), "--port", &port, "--json"];
        args.extend_from_slice(extra);
        Self::spawn(name, &args)
    }

    pub fn spawn(name: &str, args: &[&str]) -> Self {
        let mut child = Command::new(bin())
            .args(args)
            .env("UDPCHAT_HOME", own_copy_of_shared_home())
            .env("UDPCHAT_CONFIG", NO_CONFIG)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let captured = Arc::new((Mutex::new(Captured::default()), Condvar::new()));
        let stdout = child.stdout.take().unwrap();
        let sink = Arc::clone(&captured);
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let value = serde_json::from_str(&line)
                    .unwrap_or_else(|_| serde_json::json!({ "event": "NOT_JSON", "line": line }));
                let (lock, cv) = &*sink;
                lock.lock().unwrap().events.push(value);
                cv.notify_all();
            }
            let (lock, cv) = &*sink;
            lock.lock().unwrap().stdout_closed = true;
            cv.notify_all();
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let stderr_closed = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut err_pipe = child.stderr.take().unwrap();
        let err_sink = Arc::clone(&stderr);
        let err_closed = Arc::clone(&stderr_closed);
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = err_pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                err_sink
                    .lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
            err_closed.store(true, std::sync::atomic::Ordering::Release);
        });
        let stdin = child.stdin.take();
        Self {
            name: name.to_string(),
            child,
            stdin,
            captured,
            stderr,
            stderr_closed,
        }
    }

    /// Everything printed so far, for failure messages.
    pub fn dump(&self) -> String {
        let events = self.events();
        let shown: Vec<String> = events
            .iter()
            .filter(|e| e["event"] != "retransmitted" && e["event"] != "dropped_by_simulation")
            .map(|e| e.to_string())
            .collect();
        format!(
            "--- {} ({} events, retransmit/dropped_by_simulation not shown) ---\n{}\n--- {} stderr ---\n{}",
            self.name,
            events.len(),
            shown.join("\n"),
            self.name,
            self.stderr.lock().unwrap()
        )
    }

    /// The JSON events printed so far.
    pub fn events(&self) -> Vec<Value> {
        self.captured.0.lock().unwrap().events.clone()
    }

    /// The events named `name` printed so far.
    pub fn events_named(&self, name: &str) -> Vec<Value> {
        self.events()
            .into_iter()
            .filter(|e| e["event"] == name)
            .collect()
    }

    /// Texts of the `received` events so far, in order.
    pub fn received(&self) -> Vec<String> {
        self.events_named("received")
            .iter()
            .map(|e| e["text"].as_str().unwrap().to_string())
            .collect()
    }

    /// Waits until `done` holds for the events printed so far; returns how many there
    /// were then. Fails the test, with all output, after [`DEADLINE`].
    pub fn wait_until(&self, what: &str, done: impl Fn(&[Value]) -> bool) -> usize {
        let until = Instant::now() + DEADLINE;
        let (lock, cv) = &*self.captured;
        let mut captured = lock.lock().unwrap();
        loop {
            if done(&captured.events) {
                return captured.events.len();
            }
            let now = Instant::now();
            if now >= until || captured.stdout_closed {
                drop(captured);
                panic!("{}: gave up waiting for {what}\n{}", self.name, self.dump());
            }
            captured = cv.wait_timeout(captured, until - now).unwrap().0;
        }
    }

    /// Waits for the first event satisfying `pred` and returns it.
    pub fn wait_event(&self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        self.wait_until(what, |events| events.iter().any(&pred));
        self.events().into_iter().find(|e| pred(e)).unwrap()
    }

    /// Waits for the first event satisfying `pred` among those printed after the first
    /// `after` (see [`Proc::events`]`().len()` taken before an action): an event of the
    /// same kind printed earlier must not answer for the action's.
    pub fn wait_event_after(
        &self,
        after: usize,
        what: &str,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        self.wait_until(what, |events| events.iter().skip(after).any(&pred));
        self.events()
            .into_iter()
            .skip(after)
            .find(|e| pred(e))
            .unwrap()
    }

    /// Writes lines to stdin.
    pub fn write_lines<S: AsRef<str>>(&mut self, lines: impl IntoIterator<Item = S>) {
        let stdin = self.stdin.as_mut().expect("stdin already closed");
        let mut all = String::new();
        for line in lines {
            all.push_str(line.as_ref());
            all.push('\n');
        }
        stdin.write_all(all.as_bytes()).unwrap();
        stdin.flush().unwrap();
    }

    /// Writes raw bytes to stdin.
    pub fn write_bytes(&mut self, bytes: &[u8]) {
        let stdin = self.stdin.as_mut().expect("stdin already closed");
        stdin.write_all(bytes).unwrap();
        stdin.flush().unwrap();
    }

    /// Ends stdin: the program finishes what it has and exits.
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// Waits for the process to exit on its own.
    pub fn wait_exit(&mut self) -> ExitStatus {
        self.wait_exit_with(None)
    }

    /// [`wait_exit`](Self::wait_exit), showing `other`'s output too if this one does not
    /// exit in time (the peer's side of a conversation that did not end).
    pub fn wait_exit_or_dump(&mut self, other: &Self) -> ExitStatus {
        self.wait_exit_with(Some(other))
    }

    fn wait_exit_with(&mut self, other: Option<&Self>) -> ExitStatus {
        let until = Instant::now() + DEADLINE;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                self.wait_stdout_closed();
                return status;
            }
            if Instant::now() >= until {
                let _ = self.child.kill();
                let others = other.map(Self::dump).unwrap_or_default();
                panic!(
                    "{}: did not exit in time\n{}\n{others}",
                    self.name,
                    self.dump()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Lets the reader threads take the last lines of an exited process: stdout's
    /// events, and stderr (a loaded run once saw only "udpchat: " of an error line).
    fn wait_stdout_closed(&self) {
        let until = Instant::now() + DEADLINE;
        while !self
            .stderr_closed
            .load(std::sync::atomic::Ordering::Acquire)
        {
            assert!(
                Instant::now() < until,
                "{}: stderr stayed open after exit",
                self.name
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        self.wait_events_closed();
    }

    fn wait_events_closed(&self) {
        let until = Instant::now() + DEADLINE;
        let (lock, cv) = &*self.captured;
        let mut captured = lock.lock().unwrap();
        while !captured.stdout_closed {
            let now = Instant::now();
            assert!(now < until, "{}: stdout stayed open after exit", self.name);
            captured = cv.wait_timeout(captured, until - now).unwrap().0;
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL, then reap.
    pub fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// The `exit` event, once the process has exited.
    pub fn exit_event(&self) -> Value {
        let exits = self.events_named("exit");
        assert_eq!(exits.len(), 1, "one exit event\n{}", self.dump());
        exits[0].clone()
    }

    /// The `started` event's epoch and local port.
    pub fn started(&self) -> (String, u16) {
        let e = self.wait_event("started", |e| e["event"] == "started");
        let local: std::net::SocketAddr = e["local"].as_str().unwrap().parse().unwrap();
        (e["epoch"].as_str().unwrap().to_string(), local.port())
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// For each event name, the field sets docs/JSON.md shows for it.
pub fn documented_fields() -> std::collections::HashMap<String, Vec<Vec<String>>> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/JSON.md");
    let doc = std::fs::read_to_string(path).unwrap();
    let mut fields: std::collections::HashMap<String, Vec<Vec<String>>> = Default::default();
    for line in doc.lines().filter(|l| l.starts_with("{\"event\"")) {
        let value: Value = serde_json::from_str(line).unwrap();
        let mut keys: Vec<String> = value.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        fields
            .entry(value["event"].as_str().unwrap().to_owned())
            .or_default()
            .push(keys);
    }
    fields
}

/// Fails unless every event has a name and exactly the fields docs/JSON.md shows for it.
pub fn assert_documented(events: &[Value]) {
    let documented = documented_fields();
    for event in events {
        let name = event["event"].as_str().unwrap_or_default();
        let mut keys: Vec<String> = event.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        let shapes = documented
            .get(name)
            .unwrap_or_else(|| panic!("docs/JSON.md has no `{name}`: {event}"));
        assert!(
            shapes.contains(&keys),
            "`{name}` has fields {keys:?}, docs/JSON.md shows {shapes:?}: {event}"
        );
    }
}
