//! Figures measured through the `udpchat` binary as people run it: two processes on
//! loopback, each fed through a pipe and read through `--json`, with the shipped
//! defaults. What the engine figures cannot see: the handshake, the wait for a peer
//! that starts later, the pipe and the process around the protocol.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::Value;

/// The `udpchat` binary of this build: beside the bench's own executable. When `build`
/// is set and cargo runs the bench, it is built first (with the bench's profile) so a
/// stale binary is never measured.
pub(crate) fn locate(build: bool) -> anyhow::Result<Option<PathBuf>> {
    let exe = std::env::current_exe().context("where is the bench's executable")?;
    let dir = exe
        .parent()
        .context("the bench's executable has no directory")?;
    // Under `cargo test` the executable is in target/<profile>/deps.
    let dir = if dir.ends_with("deps") {
        dir.parent().unwrap_or(dir)
    } else {
        dir
    };
    if let (true, Some(cargo)) = (build, std::env::var_os("CARGO")) {
        let mut command = Command::new(cargo);
        command.args(["build", "--quiet", "-p", "udpchat", "--bin", "udpchat"]);
        if dir.ends_with("release") {
            command.arg("--release");
        }
        let status = command.status().context("building udpchat")?;
        if !status.success() {
            bail!("building udpchat failed ({status})");
        }
    }
    let bin = dir.join(format!("udpchat{}", std::env::consts::EXE_SUFFIX));
    Ok(bin.exists().then_some(bin))
}

/// A data directory of its own under the system's temporary directory, removed on drop.
pub(crate) struct TempHome(PathBuf);

impl TempHome {
    pub(crate) fn new(tag: &str) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let dir = std::env::temp_dir().join(format!(
            "udpchat-bench-{}-{tag}-{nanos}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        Self(dir)
    }

    pub(crate) fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempHome {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A data directory for another process of the same person: inside `home`, named `tag`,
/// holding a copy of `home`'s identity and pinned peers. Two chats may not share one
/// store (udpchat locks it), so the bench's two processes of one installation each get
/// their own, with the same key.
pub(crate) fn same_person(home: &Path, tag: &str) -> anyhow::Result<PathBuf> {
    let other = home.join(tag);
    std::fs::create_dir_all(&other).with_context(|| format!("creating {}", other.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&other, std::fs::Permissions::from_mode(0o700))?;
    }
    for name in ["identity", "known_peers"] {
        let (from, to) = (home.join(name), other.join(name));
        if from.exists() && !to.exists() {
            std::fs::copy(&from, &to).with_context(|| format!("copying {}", from.display()))?;
        }
    }
    Ok(other)
}

pub(crate) fn free_port() -> anyhow::Result<u16> {
    Ok(UdpSocket::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// The public key (hex) of the identity in `home`, created by `udpchat id`.
fn public_key(bin: &Path, home: &Path) -> anyhow::Result<String> {
    let out = Command::new(bin)
        .args(["id", "--json", "--home"])
        .arg(home)
        .stdin(Stdio::null())
        .output()?;
    if !out.status.success() {
        bail!("udpchat id: {}", String::from_utf8_lossy(&out.stderr));
    }
    let v: Value = serde_json::from_slice(&out.stdout)?;
    v["public_key"]
        .as_str()
        .map(str::to_owned)
        .context("udpchat id printed no public_key")
}

/// Two installations that met before: each has the other's key pinned at its address,
/// so a start needs nothing compared (the everyday case after a first contact).
fn acquainted(bin: &Path, ports: (u16, u16), tag: &str) -> anyhow::Result<(TempHome, TempHome)> {
    let (a, b) = (
        TempHome::new(&format!("{tag}a")),
        TempHome::new(&format!("{tag}b")),
    );
    let (key_a, key_b) = (public_key(bin, a.path())?, public_key(bin, b.path())?);
    for (home, key, port) in [(&a, &key_b, ports.1), (&b, &key_a, ports.0)] {
        std::fs::write(
            home.path().join("known_peers"),
            format!("{key} manual 2026-12-01T00:00:00Z 127.0.0.1:{port}\n"),
        )?;
    }
    Ok((a, b))
}

/// `udpchat 127.0.0.1:PEER --port PORT --home HOME`, the chat as people start it on
/// loopback; the caller adds its own options and pipes.
pub(crate) fn chat_command(bin: &Path, home: &Path, port: u16, peer: u16) -> Command {
    let mut command = Command::new(bin);
    command
        .arg(format!("127.0.0.1:{peer}"))
        .args(["--port", &port.to_string(), "--home"])
        .arg(home);
    command
}

/// One `udpchat --json` process that was given one line and then end of input.
struct Chat(Guarded);

impl Chat {
    fn start(
        bin: &Path,
        home: &Path,
        port: u16,
        peer: u16,
        extra: &[&str],
        line: &str,
        name: String,
    ) -> anyhow::Result<Self> {
        let mut child = chat_command(bin, home, port, peer)
            .arg("--json")
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        if let Some(mut stdin) = child.stdin.take() {
            writeln!(stdin, "{line}")?;
        }
        Ok(Self(Guarded { child, name }))
    }

    /// Waits for the exit (killing the process after `deadline`); returns its events.
    fn events(mut self, deadline: Instant) -> anyhow::Result<Vec<Value>> {
        let Self(chat) = &mut self;
        let stdout = chat.child.stdout.take().context("no stdout")?;
        let reader = std::thread::spawn(move || {
            BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
                .filter_map(|l| serde_json::from_str::<Value>(&l).ok())
                .collect::<Vec<_>>()
        });
        if chat
            .wait_for(deadline.saturating_duration_since(Instant::now()))?
            .is_none()
        {
            bail!("{} did not finish in time", chat.name);
        }
        reader
            .join()
            .map_err(|_| anyhow::anyhow!("reading {}'s output failed", chat.name))
    }
}

/// What starting two chats did, over all rounds.
#[derive(Default)]
pub(crate) struct Starts {
    /// For each message: from the later of "typed" and "the other side started" to its
    /// acknowledgement, as the sender's `delivered` event reports it.
    pub(crate) acked_after: Vec<Duration>,
    /// Messages the program reported as not delivered.
    pub(crate) failed: u64,
    /// Rounds where a side did not receive the other's line exactly once.
    pub(crate) wrong: usize,
    pub(crate) rounds: usize,
}

/// Starts two acquainted chats `rounds` times, the second `stagger` after the first, each
/// typing one line at once and then ending its input; `parallel` rounds at a time.
pub(crate) fn starts(
    bin: &Path,
    extra: &[&str],
    stagger: Duration,
    rounds: usize,
    parallel: usize,
) -> anyhow::Result<Starts> {
    let mut all = Starts::default();
    let mut next = 0;
    while next < rounds {
        let batch: Vec<_> = (next..rounds.min(next + parallel.max(1)))
            .map(|i| {
                let bin = bin.to_owned();
                let extra: Vec<String> = extra.iter().map(|s| (*s).to_owned()).collect();
                std::thread::spawn(move || {
                    let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
                    one_start(&bin, &extra, stagger, i)
                })
            })
            .collect();
        next += batch.len();
        for handle in batch {
            let round = handle
                .join()
                .map_err(|_| anyhow::anyhow!("a start round panicked"))??;
            all.acked_after.extend(round.acked_after);
            all.failed += round.failed;
            all.wrong += round.wrong;
            all.rounds += 1;
        }
    }
    all.acked_after.sort_unstable();
    Ok(all)
}

fn one_start(bin: &Path, extra: &[&str], stagger: Duration, i: usize) -> anyhow::Result<Starts> {
    let (pa, pb) = (free_port()?, free_port()?);
    let (home_a, home_b) = acquainted(bin, (pa, pb), &i.to_string())?;
    let line = |side: &str| format!("hello from {side}{i}");
    let a_typed = Instant::now();
    let a = Chat::start(
        bin,
        home_a.path(),
        pa,
        pb,
        extra,
        &line("A"),
        format!("A{i}"),
    )?;
    std::thread::sleep(stagger);
    let b_typed = Instant::now();
    let b = Chat::start(
        bin,
        home_b.path(),
        pb,
        pa,
        extra,
        &line("B"),
        format!("B{i}"),
    )?;
    let deadline = Instant::now() + Duration::from_secs(60);
    let (events_a, events_b) = (a.events(deadline)?, b.events(deadline)?);
    let mut round = Starts::default();
    for (events, typed, other) in [
        (&events_a, a_typed, line("B")),
        (&events_b, b_typed, line("A")),
    ] {
        fn named<'a>(events: &'a [Value], name: &'a str) -> impl Iterator<Item = &'a Value> {
            events.iter().filter(move |e| e["event"] == name)
        }
        let received: Vec<_> = named(events, "received")
            .filter_map(|e| e["text"].as_str())
            .collect();
        if received != [other.as_str()] {
            round.wrong += 1;
        }
        round.failed += named(events, "exit")
            .filter_map(|e| e["failed"].as_u64())
            .sum::<u64>();
        for delivered in named(events, "delivered") {
            let elapsed = Duration::from_millis(delivered["elapsed_ms"].as_u64().unwrap_or(0));
            // The line waited for the other side to start: that part is not the chat's.
            let waited = b_typed.saturating_duration_since(typed);
            round.acked_after.push(elapsed.saturating_sub(waited));
        }
    }
    Ok(round)
}

/// A child process killed (and reaped) when dropped, so no way out leaves one behind.
pub(crate) struct Guarded {
    pub(crate) child: Child,
    pub(crate) name: String,
}

impl Guarded {
    /// Starts `command` with all three standard streams piped.
    pub(crate) fn spawn(mut command: Command, name: &str) -> anyhow::Result<Self> {
        let child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting the {name}"))?;
        Ok(Self {
            child,
            name: name.to_owned(),
        })
    }

    /// Waits up to `limit` for the exit; then kills the process and returns `None`.
    pub(crate) fn wait_for(&mut self, limit: Duration) -> anyhow::Result<Option<ExitStatus>> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(Some(status));
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                return Ok(None);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Like [`Self::wait_for`], noting a kill or a failure in `odd`.
    pub(crate) fn finish(&mut self, limit: Duration, odd: &mut Vec<String>) -> anyhow::Result<()> {
        let status = self.wait_for(limit)?;
        self.note(status, limit, odd);
        Ok(())
    }

    pub(crate) fn note(&self, status: Option<ExitStatus>, after: Duration, odd: &mut Vec<String>) {
        match status {
            Some(s) if s.success() => {}
            Some(s) => odd.push(format!("{} exited with {s}", self.name)),
            None => odd.push(format!("{} killed after {after:?}", self.name)),
        }
    }

    /// Sends SIGINT, as Ctrl-C would, with `kill` (the process is not reaped yet, so
    /// its id is still its own).
    pub(crate) fn interrupt(&mut self, kill: &Path) -> bool {
        Command::new(kill)
            .args(["-INT", &self.child.id().to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }
}

impl Drop for Guarded {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// Waits for a reader thread; a panic there is an error here.
pub(crate) fn join<T>(handle: JoinHandle<T>, what: &str) -> anyhow::Result<T> {
    handle
        .join()
        .map_err(|_| anyhow::anyhow!("the thread reading {what} panicked"))
}

/// Reads lines on a thread; signals the first one on `ready`; returns those `keep` keeps.
pub(crate) fn lines_of(
    reader: impl Read + Send + 'static,
    ready: Option<mpsc::Sender<()>>,
    keep: fn(&str) -> bool,
) -> JoinHandle<Vec<String>> {
    std::thread::spawn(move || {
        let mut ready = ready;
        let mut kept = Vec::new();
        for line in BufReader::new(reader).lines().map_while(Result::ok) {
            if let Some(tx) = ready.take() {
                let _ = tx.send(());
            }
            if keep(&line) {
                kept.push(line);
            }
        }
        kept
    })
}
