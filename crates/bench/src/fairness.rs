//! Section 10, fairness: udpchat bulk and one TCP flow sharing a 20 Mbit/s bottleneck.
//! The equivalent of
//!
//! ```text
//! ip netns add A; ip netns add R; ip netns add B       # senders, router, receivers
//! A 10.77.x.1 —— 10.77.x.254 R 10.78.x.254 —— 10.78.x.2 B   (veth pairs, R forwards)
//! tc -n R qdisc add dev rB root tbf rate 20mbit burst 32kbit latency 50ms
//! ip netns exec B udpchat-bench tcp-sink 10.78.x.2:5201 S     # and, in A, tcp-source (CUBIC)
//! ip netns exec B udpchat 10.77.x.1:12000 --port 12001 --plain --home H   # receiver
//! yes "$LINE_OF_1000_BYTES" | ip netns exec A udpchat 10.78.x.2:12001 --port 12000 --plain --stats --home H
//! ```
//!
//! Both senders sit in namespace A and send to B through the router R, so both go
//! through the one `tbf` on R's link toward B: that is the shared bottleneck, in the
//! network as a home router's uplink is, where neither sender's own stack sees its queue
//! (a `tbf` in the senders' namespace would tell TCP of every drop at once and block a
//! UDP socket on a full qdisc: pressures no remote bottleneck exerts). Acknowledgements
//! come back through R's other direction, which is not shaped.
//!
//! The TCP flow runs CUBIC, Linux's default and what a download from a typical server
//! uses, whatever this machine's own default is (BBR here); the figure names it.
//!
//! The `tbf` parameters, and why:
//! - `rate 20mbit`: the bottleneck the requirement names.
//! - `burst 32kbit` (4 KB, under three full-size frames): the bucket must hold the
//!   largest packet (1514-byte frames; `tbf` splits bigger GSO packets itself), and
//!   should be small so the link is smooth at the millisecond scale: a full bucket lets
//!   only 1.6 ms worth of data through at line rate. With high-resolution timers `tbf`
//!   needs no burst of rate/HZ.
//! - `latency 50ms`: the queue holds what drains in 50 ms, about 125 KB (85 full-size
//!   frames), the buffer of a typical access router. The base round trip here is well
//!   under a millisecond, so this is many times the bandwidth-delay product: TCP alone
//!   fills the link with room to spare, and a flow that overfills the queue gets drops.
//!
//! Goodput is counted by the bench from the receivers' side: payload bytes of the lines
//! the udpchat receiver prints (the 1000 bytes of each line, without `peer> ` and the
//! newline) and bytes the TCP sink has read (it prints its total every 50 ms), each
//! timestamped as it reaches the bench, over the same window of both flows.
//!
//! The helpers `tcp-sink` and `tcp-source` are hidden subcommands of `udpchat-bench`,
//! started inside the namespaces with `ip netns exec`.
//!
//! Prerequisites, else the run is skipped with the reason: root, `ip` and `tc`
//! (iproute2), and a kernel that lets it create network namespaces, veth pairs and a
//! `tbf` qdisc.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::binary::{join, lines_of, Guarded, TempHome};

/// The bottleneck, as given to `tc qdisc add dev VETH root tbf` (see the module's
/// documentation for the values).
pub(crate) const TBF: [&str; 6] = ["rate", "20mbit", "burst", "32kbit", "latency", "50ms"];
/// The bottleneck's rate in Mbit/s, as in [`TBF`].
pub(crate) const RATE_MBIT: f64 = 20.0;
/// Payload bytes of each line udpchat sends (plus a newline on its stdin).
pub(crate) const LINE_BYTES: usize = 1000;
/// The fair-share band the requirement sets for udpchat's goodput / TCP's.
pub(crate) const FAIR: (f64, f64) = (0.5, 2.0);

const TCP_PORT: u16 = 5201;
/// The veth pairs' ends, each in its namespace (names are per namespace): A to R, and R
/// to B. The bottleneck is on `VETH_RB`, R's end toward B.
const VETH_A: &str = "fairA";
const VETH_RA: &str = "fairRA";
const VETH_RB: &str = "fairRB";
const VETH_B: &str = "fairB";
/// The TCP congestion control the fair share is measured against.
pub(crate) const TCP_CONGESTION_CONTROL: &str = "cubic";
const CHAT_PORT_A: u16 = 12000;
const CHAT_PORT_B: u16 = 12001;
/// How often the TCP sink prints the bytes it has read.
const SINK_EVERY: Duration = Duration::from_millis(50);
/// How long a helper or receiver may take to say it is ready.
const READY: Duration = Duration::from_secs(10);
/// Names of this run's namespaces start with this, then the process id.
const PREFIX: &str = "udpchat-fair-";

/// How long each part runs.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Durations {
    /// From the flows' start to the measured window: slow start, the handshake.
    pub(crate) warmup: Duration,
    /// The window measured with both flows running.
    pub(crate) measure: Duration,
    /// The window measured for each flow alone (after the same warm-up).
    pub(crate) alone: Duration,
    /// How long the udpchat sender may take, once its input ended, to deliver what it
    /// still holds (up to 4096 queued messages, 4 MB: under 2 s at 20 Mbit/s) and exit.
    /// After that it gets a Ctrl-C (SIGINT), on which it prints its counters too,
    /// counting what is still pending as failed.
    pub(crate) drain: Duration,
}

/// What a fairness run gives: figures, or why it could not run here.
#[derive(Debug)]
pub(crate) enum Fairness {
    /// A prerequisite is missing; the reason, to be printed.
    Skip(String),
    Ran(Box<Figures>),
}

/// A udpchat's counters at exit (its `--stats` lines).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct ChatStats {
    pub(crate) sent: u64,
    pub(crate) delivered: u64,
    pub(crate) failed: u64,
    pub(crate) received: u64,
    pub(crate) retransmissions: u64,
    /// Copies of messages already received (acknowledged again, not shown).
    pub(crate) duplicates: u64,
    /// The smoothed round trip at exit, in ms.
    pub(crate) srtt_ms: Option<f64>,
}

impl ChatStats {
    pub(crate) fn retransmissions_per_message(&self) -> f64 {
        self.retransmissions as f64 / self.sent.max(1) as f64
    }
}

/// One part of the run: one or both flows through the bottleneck.
#[derive(Debug, Default)]
pub(crate) struct Phase {
    /// TCP goodput over the window, Mbit/s (`None`: TCP did not run).
    pub(crate) tcp_mbit: Option<f64>,
    /// udpchat goodput (line payload) over the window, Mbit/s.
    pub(crate) udpchat_mbit: Option<f64>,
    /// The udpchat sender's counters over its whole run (warm-up and drain included).
    pub(crate) stats: Option<ChatStats>,
    /// The udpchat receiver's: its `duplicates` are retransmissions that crossed the
    /// bottleneck in vain.
    pub(crate) receiver_stats: Option<ChatStats>,
    /// From the end of the udpchat sender's input to its exit.
    pub(crate) drain: Option<Duration>,
    /// Packets the `tbf` dropped during the phase (queue full).
    pub(crate) tbf_drops: Option<u64>,
    /// Anything unexpected: processes killed, exit statuses, counters missing.
    pub(crate) odd: Vec<String>,
}

/// The three parts of a fairness run.
#[derive(Debug)]
pub(crate) struct Figures {
    pub(crate) tcp_alone: Phase,
    pub(crate) udpchat_alone: Phase,
    pub(crate) together: Phase,
    /// The TCP sender's congestion control (set on its socket).
    pub(crate) congestion_control: Option<String>,
}

impl Figures {
    /// udpchat's goodput / TCP's, both flows running (infinite when TCP got nothing).
    pub(crate) fn ratio(&self) -> f64 {
        let udp = self.together.udpchat_mbit.unwrap_or(0.0);
        let tcp = self.together.tcp_mbit.unwrap_or(0.0);
        if tcp > 0.0 {
            udp / tcp
        } else if udp > 0.0 {
            f64::INFINITY
        } else {
            0.0
        }
    }

    /// Whether the ratio is within [`FAIR`].
    pub(crate) fn fair(&self) -> bool {
        (FAIR.0..=FAIR.1).contains(&self.ratio())
    }
}

/// Runs the fairness measurement with the `udpchat` binary `udpchat` and the bench
/// binary `bench` (for its `tcp-sink` and `tcp-source` helpers). Namespaces are removed
/// on every way out, errors and panics included.
pub(crate) fn run(udpchat: &Path, bench: &Path, d: &Durations) -> anyhow::Result<Fairness> {
    let tools = match prerequisites() {
        Ok(tools) => tools,
        Err(reason) => return Ok(Fairness::Skip(reason)),
    };
    sweep_stale(&tools);
    let net = match Net::create(&tools) {
        Ok(net) => net,
        Err(reason) => return Ok(Fairness::Skip(reason)),
    };
    let home = TempHome::new("fairness");
    let out = Command::new(udpchat)
        .args(["id", "--home"])
        .arg(home.path())
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {} id", udpchat.display()))?;
    if !out.status.success() {
        bail!("udpchat id: {}", String::from_utf8_lossy(&out.stderr));
    }
    let setup = Setup {
        net: &net,
        udpchat,
        bench,
        home: home.path(),
    };
    let tcp_alone = setup.phase(true, false, d.warmup, d.alone, d.drain)?;
    let udpchat_alone = setup.phase(false, true, d.warmup, d.alone, d.drain)?;
    let together = setup.phase(true, true, d.warmup, d.measure, d.drain)?;
    Ok(Fairness::Ran(Box::new(Figures {
        // tcp-source sets it on its socket, or fails the run.
        congestion_control: Some(TCP_CONGESTION_CONTROL.to_owned()),
        tcp_alone,
        udpchat_alone,
        together,
    })))
}

/// Absolute paths of `ip`, `tc` and `kill`.
struct Tools {
    ip: PathBuf,
    tc: PathBuf,
    /// To interrupt the udpchat sender as Ctrl-C would; without it, it is killed.
    kill: Option<PathBuf>,
}

/// Root, `ip` and `tc`; or why not.
fn prerequisites() -> Result<Tools, String> {
    match effective_uid() {
        Some(0) => {}
        Some(uid) => {
            return Err(format!(
                "not running as root (effective uid {uid}); network namespaces and tc need it"
            ))
        }
        None => return Err("cannot tell the effective uid (no /proc/self/status)".to_owned()),
    }
    let find = |name: &str| {
        which(name).ok_or_else(|| {
            format!("`{name}` not found in PATH, /usr/sbin or /sbin (it is in iproute2)")
        })
    };
    Ok(Tools {
        ip: find("ip")?,
        tc: find("tc")?,
        kill: which("kill"),
    })
}

/// The effective uid, from /proc/self/status (`Uid: real effective saved fs`).
fn effective_uid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}

/// `name` in PATH or in the system directories root's PATH usually has.
fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// Runs `program args`; on failure, what it printed on stderr.
fn command(program: &Path, args: &[&str]) -> Result<String, String> {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", program.display()))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "`{} {}` failed ({}): {}",
            program.display(),
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Removes namespaces left by an earlier run that was killed before it could clean up
/// (its process id no longer exists).
fn sweep_stale(tools: &Tools) {
    let Ok(list) = command(&tools.ip, &["netns", "list"]) else {
        return;
    };
    for name in list.lines().filter_map(|l| l.split_whitespace().next()) {
        let Some(pid) = name
            .strip_prefix(PREFIX)
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = command(&tools.ip, &["netns", "del", name]);
        }
    }
}

/// The two namespaces and the veth pair between them, with the bottleneck on A's side.
/// Dropping it deletes the namespaces (and with them the veth pair and the qdisc).
struct Net {
    tools: Tools,
    a: String,
    /// The router between A and B, which holds the bottleneck.
    r: String,
    b: String,
    created: Vec<String>,
    addr_a: Ipv4Addr,
    addr_b: Ipv4Addr,
}

impl Net {
    /// Sets everything up; on failure (a missing kernel feature, most likely) the reason.
    fn create(tools: &Tools) -> Result<Self, String> {
        static RUNS: AtomicU32 = AtomicU32::new(0);
        let pid = std::process::id();
        let n = RUNS.fetch_add(1, Ordering::Relaxed);
        let x = u8::try_from(pid % 250).unwrap_or(0) + 1;
        let mut net = Self {
            tools: Tools {
                ip: tools.ip.clone(),
                tc: tools.tc.clone(),
                kill: tools.kill.clone(),
            },
            a: format!("{PREFIX}{pid}-{n}a"),
            r: format!("{PREFIX}{pid}-{n}r"),
            b: format!("{PREFIX}{pid}-{n}b"),
            created: Vec::new(),
            addr_a: Ipv4Addr::new(10, 77, x, 1),
            addr_b: Ipv4Addr::new(10, 78, x, 2),
        };
        for ns in [net.a.clone(), net.r.clone(), net.b.clone()] {
            command(&net.tools.ip, &["netns", "add", &ns])
                .map_err(|e| format!("cannot create a network namespace: {e}"))?;
            net.created.push(ns);
        }
        let (a, rt, b) = (net.a.as_str(), net.r.as_str(), net.b.as_str());
        let ip = |args: &[&str]| command(&net.tools.ip, args);
        for (ns, end, peer_end) in [(a, VETH_A, VETH_RA), (b, VETH_B, VETH_RB)] {
            ip(&[
                "-n", ns, "link", "add", end, "type", "veth", "peer", "name", peer_end, "netns", rt,
            ])
            .map_err(|e| format!("cannot create a veth pair: {e}"))?;
        }
        let (cidr_a, cidr_b) = (format!("{}/24", net.addr_a), format!("{}/24", net.addr_b));
        let [_, _, x, _] = net.addr_a.octets();
        let (gw_a, gw_b) = (format!("10.77.{x}.254"), format!("10.78.{x}.254"));
        let (cidr_ra, cidr_rb) = (format!("{gw_a}/24"), format!("{gw_b}/24"));
        for args in [
            &["-n", a, "addr", "add", &cidr_a, "dev", VETH_A][..],
            &["-n", b, "addr", "add", &cidr_b, "dev", VETH_B],
            &["-n", rt, "addr", "add", &cidr_ra, "dev", VETH_RA],
            &["-n", rt, "addr", "add", &cidr_rb, "dev", VETH_RB],
            &["-n", a, "link", "set", "lo", "up"],
            &["-n", b, "link", "set", "lo", "up"],
            &["-n", rt, "link", "set", "lo", "up"],
            &["-n", a, "link", "set", VETH_A, "up"],
            &["-n", b, "link", "set", VETH_B, "up"],
            &["-n", rt, "link", "set", VETH_RA, "up"],
            &["-n", rt, "link", "set", VETH_RB, "up"],
            &["-n", a, "route", "add", "default", "via", &gw_a],
            &["-n", b, "route", "add", "default", "via", &gw_b],
        ] {
            ip(args).map_err(|e| format!("cannot set up the links: {e}"))?;
        }
        let sysctl = |ns: &str, setting: &str| {
            let mut c = Command::new(&net.tools.ip);
            c.args(["netns", "exec", ns, "sysctl", "-qw", setting]);
            match c.output() {
                Ok(out) if out.status.success() => Ok(()),
                Ok(out) => Err(String::from_utf8_lossy(&out.stderr).trim().to_owned()),
                Err(e) => Err(e.to_string()),
            }
        };
        sysctl(rt, "net.ipv4.ip_forward=1")
            .map_err(|e| format!("cannot make the router forward: {e}"))?;
        let mut tbf = vec!["-n", rt, "qdisc", "add", "dev", VETH_RB, "root", "tbf"];
        tbf.extend(TBF);
        command(&net.tools.tc, &tbf)
            .map_err(|e| format!("cannot install the tbf bottleneck (sch_tbf missing?): {e}"))?;
        Ok(net)
    }

    /// `ip netns exec NS program`: the program runs in place of `ip` (same process).
    fn exec(&self, ns: &str, program: &Path) -> Command {
        let mut c = Command::new(&self.tools.ip);
        c.args(["netns", "exec", ns]).arg(program);
        c
    }

    /// Packets the bottleneck has dropped so far.
    fn tbf_drops(&self) -> Option<u64> {
        let out = command(
            &self.tools.tc,
            &["-n", &self.r, "-s", "qdisc", "show", "dev", VETH_RB],
        )
        .ok()?;
        let after = out.split("dropped ").nth(1)?;
        after
            .split(|c: char| !c.is_ascii_digit())
            .next()?
            .parse()
            .ok()
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for ns in self.created.drain(..).rev() {
            let _ = command(&self.tools.ip, &["netns", "del", &ns]);
        }
    }
}

/// Cumulative bytes received, with the instant the bench learnt of them.
type Samples = Vec<(Instant, u64)>;

/// Goodput in Mbit/s between `from` and `to`, from cumulative samples.
fn mbit(samples: &[(Instant, u64)], from: Instant, to: Instant) -> f64 {
    let at = |t: Instant| {
        samples
            .iter()
            .rev()
            .find(|(s, _)| *s <= t)
            .map_or(0, |&(_, b)| b)
    };
    let secs = to.saturating_duration_since(from).as_secs_f64().max(1e-9);
    at(to).saturating_sub(at(from)) as f64 * 8.0 / 1e6 / secs
}

/// Counts the payload bytes of the `peer> ` lines the udpchat receiver prints.
fn chat_payload(reader: impl Read + Send + 'static) -> JoinHandle<Samples> {
    std::thread::spawn(move || {
        let mut reader = BufReader::with_capacity(1 << 16, reader);
        let mut line = Vec::new();
        let (mut total, mut samples) = (0u64, Vec::new());
        loop {
            line.clear();
            match reader.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            if let Some(text) = line.strip_prefix(b"peer> ") {
                let text = text.strip_suffix(b"\n").unwrap_or(text);
                total += text.len() as u64;
                samples.push((Instant::now(), total));
            }
        }
        samples
    })
}

/// Reads the TCP sink's `bytes N` lines; signals its `listening` line.
fn sink_progress(
    reader: impl Read + Send + 'static,
    ready: mpsc::Sender<()>,
) -> JoinHandle<Samples> {
    std::thread::spawn(move || {
        let mut samples = Vec::new();
        for line in BufReader::new(reader).lines().map_while(Result::ok) {
            if line.starts_with("listening") {
                let _ = ready.send(());
            } else if let Some(n) = line.strip_prefix("bytes ").and_then(|n| n.parse().ok()) {
                samples.push((Instant::now(), n));
            }
        }
        samples
    })
}

/// Writes 1000-byte lines into udpchat's stdin as fast as it takes them, until `stop`;
/// then closes the pipe (end of input).
fn feed(mut stdin: ChildStdin, stop: Arc<AtomicBool>) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut line = b"bulk line of 1000 bytes ".to_vec();
        line.resize(LINE_BYTES, b'x');
        line.push(b'\n');
        let block = line.repeat(64);
        while !stop.load(Ordering::Relaxed) {
            if stdin.write_all(&block).is_err() {
                break;
            }
        }
    })
}

/// The sender's counters from its `--stats` lines on stderr: `udpchat: round trip 3.1 ms
/// (variation …` and `udpchat: sent N, delivered N, failed N, … (retransmissions N, …)`.
pub(crate) fn chat_stats(lines: &[String]) -> Option<ChatStats> {
    let counters = lines.iter().find(|l| l.contains("retransmissions"))?;
    let words: Vec<&str> = counters
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect();
    let get = |key: &str| -> Option<u64> {
        words
            .windows(2)
            .find(|w| w[0] == key)
            .and_then(|w| w[1].parse().ok())
    };
    let srtt_ms = lines.iter().find_map(|l| {
        l.split("round trip ")
            .nth(1)?
            .split(" ms")
            .next()?
            .parse()
            .ok()
    });
    Some(ChatStats {
        sent: get("sent")?,
        delivered: get("delivered")?,
        failed: get("failed")?,
        received: get("received")?,
        retransmissions: get("retransmissions")?,
        duplicates: get("duplicates")?,
        srtt_ms,
    })
}

/// What one phase needs.
struct Setup<'a> {
    net: &'a Net,
    udpchat: &'a Path,
    bench: &'a Path,
    home: &'a Path,
}

impl Setup<'_> {
    /// `udpchat PEER:PEER_PORT --port PORT --home HOME --plain --stats` in `ns`.
    fn chat(&self, ns: &str, port: u16, peer: Ipv4Addr, peer_port: u16) -> anyhow::Result<Command> {
        // One person, a store per process (udpchat locks it).
        let home = crate::binary::same_person(self.home, ns)?;
        let mut c = self.net.exec(ns, self.udpchat);
        c.arg(format!("{peer}:{peer_port}"))
            .args(["--port", &port.to_string(), "--plain", "--stats", "--home"])
            .arg(home);
        Ok(c)
    }

    /// Runs TCP and/or udpchat from A to B, measuring `measure` after `warmup`.
    fn phase(
        &self,
        tcp: bool,
        chat: bool,
        warmup: Duration,
        measure: Duration,
        drain: Duration,
    ) -> anyhow::Result<Phase> {
        let net = self.net;
        let mut phase = Phase::default();
        let drops_before = net.tbf_drops();
        let run_for = warmup + measure;

        // The receivers first, each until it says it is ready.
        let mut receiver = None;
        if chat {
            // -v: from a pipe udpchat is quiet; its greeting ("listening on …") is the
            // receiver's sign that its socket is bound.
            let mut command = self.chat(&net.b, CHAT_PORT_B, net.addr_a, CHAT_PORT_A)?;
            command.arg("-v");
            let mut r = Guarded::spawn(command, "udpchat receiver")?;
            let stdin = r.child.stdin.take();
            let counted = chat_payload(r.child.stdout.take().context("no receiver stdout")?);
            let (tx, rx) = mpsc::channel();
            let err = lines_of(
                r.child.stderr.take().context("no receiver stderr")?,
                Some(tx),
                |l| l.contains("retransmissions") || l.contains("error"),
            );
            if rx.recv_timeout(READY).is_err() {
                bail!("the udpchat receiver printed nothing in {READY:?} (or exited)");
            }
            receiver = Some((r, stdin, counted, err));
        }
        let mut sink = None;
        if tcp {
            let target = SocketAddr::from((net.addr_b, TCP_PORT));
            let mut s = Guarded::spawn(
                {
                    let mut c = net.exec(&net.b, self.bench);
                    c.arg("tcp-sink").arg(target.to_string()).arg(
                        (run_for + Duration::from_secs(10))
                            .as_secs_f64()
                            .to_string(),
                    );
                    c
                },
                "TCP sink",
            )?;
            let (tx, rx) = mpsc::channel();
            let progress = sink_progress(s.child.stdout.take().context("no sink stdout")?, tx);
            let err = lines_of(
                s.child.stderr.take().context("no sink stderr")?,
                None,
                |_| true,
            );
            if rx.recv_timeout(READY).is_err() {
                bail!("the TCP sink did not listen within {READY:?}");
            }
            sink = Some((s, progress, err));
        }

        // Then both senders at once.
        let start = Instant::now();
        let mut source = None;
        if tcp {
            let mut c = net.exec(&net.a, self.bench);
            c.arg("tcp-source")
                .arg(SocketAddr::from((net.addr_b, TCP_PORT)).to_string())
                .arg(
                    (run_for + Duration::from_millis(500))
                        .as_secs_f64()
                        .to_string(),
                );
            let mut s = Guarded::spawn(c, "TCP source")?;
            let out = lines_of(
                s.child.stdout.take().context("no source stdout")?,
                None,
                |_| true,
            );
            let err = lines_of(
                s.child.stderr.take().context("no source stderr")?,
                None,
                |_| true,
            );
            source = Some((s, out, err));
        }
        let stop = Arc::new(AtomicBool::new(false));
        let mut sender = None;
        if chat {
            let c = self.chat(&net.a, CHAT_PORT_A, net.addr_b, CHAT_PORT_B)?;
            let mut s = Guarded::spawn(c, "udpchat sender")?;
            let fed = feed(
                s.child.stdin.take().context("no sender stdin")?,
                Arc::clone(&stop),
            );
            let out = lines_of(
                s.child.stdout.take().context("no sender stdout")?,
                None,
                |_| false,
            );
            let err = lines_of(
                s.child.stderr.take().context("no sender stderr")?,
                None,
                |l| {
                    l.contains("retransmissions") || l.contains("round trip") || l.contains("error")
                },
            );
            sender = Some((s, fed, out, err));
        }

        let (from, to) = (start + warmup, start + run_for);
        std::thread::sleep(to.saturating_duration_since(Instant::now()));
        // End both udpchats' input at once: the sender's (its feeder stops) and the
        // receiver's, which then stays while it still hears the sender, until the
        // sender is done (both sides' input must end for a chat to end).
        stop.store(true, Ordering::Relaxed);
        if let Some((_, stdin, _, _)) = receiver.as_mut() {
            drop(stdin.take());
        }

        // Wind down: TCP stops by itself; udpchat delivers what it holds, then exits.
        if let Some((mut s, out, err)) = source {
            s.finish(Duration::from_secs(5), &mut phase.odd)?;
            let _ = join(out, "the TCP source's output")?;
            for l in join(err, "the TCP source's errors")? {
                phase.odd.push(format!("TCP source: {l}"));
            }
        }
        if let Some((mut s, progress, err)) = sink {
            // Its figures are in; when TCP was starved, what the source wrote last may
            // still be queued, and the connection not ended: no need to wait for it.
            let _ = s.wait_for(Duration::from_secs(1))?;
            phase.tcp_mbit = Some(mbit(&join(progress, "the TCP sink's output")?, from, to));
            for l in join(err, "the TCP sink's errors")? {
                phase.odd.push(format!("TCP sink: {l}"));
            }
        }
        if let Some((mut s, fed, out, err)) = sender {
            let mut status = s.child.try_wait()?;
            let drained_by = to + drain;
            while status.is_none() && Instant::now() < drained_by {
                std::thread::sleep(Duration::from_millis(5));
                status = s.child.try_wait()?;
            }
            if status.is_some() {
                phase.drain = Some(to.elapsed());
            } else if net.tools.kill.as_deref().is_some_and(|k| s.interrupt(k)) {
                phase.odd.push(format!(
                    "udpchat sender still busy {drain:?} after its input ended, interrupted (Ctrl-C): what it still held counts as failed"
                ));
                status = s.wait_for(Duration::from_secs(3))?;
            } else {
                status = s.wait_for(Duration::ZERO)?;
            }
            s.note(status, drain, &mut phase.odd);
            join(fed, "the sender's input")?;
            let _ = join(out, "the sender's output")?;
            let lines = join(err, "the sender's errors")?;
            phase.stats = chat_stats(&lines);
            if phase.stats.is_none() {
                phase
                    .odd
                    .push("the udpchat sender printed no counters".to_owned());
            }
            for l in lines.iter().filter(|l| l.contains("error")) {
                phase.odd.push(format!("udpchat sender: {l}"));
            }
        }
        if let Some((mut r, _, counted, err)) = receiver {
            r.finish(Duration::from_secs(5), &mut phase.odd)?;
            phase.udpchat_mbit = Some(mbit(&join(counted, "the receiver's output")?, from, to));
            let lines = join(err, "the receiver's errors")?;
            phase.receiver_stats = chat_stats(&lines);
            for l in lines.iter().filter(|l| l.contains("error")) {
                phase.odd.push(format!("udpchat receiver: {l}"));
            }
        }
        phase.tbf_drops = drops_before
            .zip(net.tbf_drops())
            .map(|(b, a)| a.saturating_sub(b));
        Ok(phase)
    }
}

/// Parses `ADDR SECONDS`, the arguments of both TCP helpers.
fn helper_args(args: &[String], usage: &str) -> anyhow::Result<(SocketAddr, Duration)> {
    let [addr, secs] = args else {
        bail!("usage: udpchat-bench {usage}");
    };
    let addr: SocketAddr = addr.parse().with_context(|| format!("address {addr}"))?;
    let secs: f64 = secs.parse().with_context(|| format!("seconds {secs}"))?;
    let secs = Duration::try_from_secs_f64(secs).with_context(|| format!("seconds {secs}"))?;
    Ok((addr, secs))
}

/// `udpchat-bench tcp-sink ADDR SECONDS`: listens on ADDR (prints `listening ADDR`),
/// reads one connection to its end or for at most SECONDS, printing `bytes TOTAL` every
/// 50 ms and finally `total N bytes in S s = R Mbit/s`.
pub(crate) fn tcp_sink(args: &[String]) -> anyhow::Result<()> {
    let (addr, limit) = helper_args(args, "tcp-sink ADDR:PORT SECONDS")?;
    let deadline = Instant::now() + limit;
    let listener = TcpListener::bind(addr).with_context(|| format!("listening on {addr}"))?;
    println!("listening {addr}");
    listener.set_nonblocking(true)?;
    let mut stream = loop {
        match listener.accept() {
            Ok((stream, _)) => break stream,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if Instant::now() >= deadline {
                    bail!("no connection within {limit:?}");
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => return Err(e).context("accepting"),
        }
    };
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_millis(100)))?;
    let start = Instant::now();
    let total = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let ticker = {
        let (total, done) = (Arc::clone(&total), Arc::clone(&done));
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                println!("bytes {}", total.load(Ordering::Relaxed));
                std::thread::sleep(SINK_EVERY);
            }
        })
    };
    let mut buf = vec![0u8; 1 << 16];
    let result = loop {
        if Instant::now() >= deadline {
            break Ok(());
        }
        match stream.read(&mut buf) {
            Ok(0) => break Ok(()),
            Ok(n) => {
                total.fetch_add(n as u64, Ordering::Relaxed);
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock
                        | std::io::ErrorKind::TimedOut
                        | std::io::ErrorKind::Interrupted
                ) => {}
            Err(e) => break Err(e),
        }
    };
    done.store(true, Ordering::Relaxed);
    let _ = ticker.join();
    let n = total.load(Ordering::Relaxed);
    let secs = start.elapsed().as_secs_f64();
    println!("bytes {n}");
    println!(
        "total {n} bytes in {secs:.2} s = {:.2} Mbit/s",
        n as f64 * 8.0 / 1e6 / secs.max(1e-9)
    );
    result.context("reading the connection")
}

/// `udpchat-bench tcp-source ADDR SECONDS`: connects to ADDR (retrying for a few
/// seconds) and writes 64 KiB chunks for SECONDS; prints `sent N bytes`.
pub(crate) fn tcp_source(args: &[String]) -> anyhow::Result<()> {
    let (addr, limit) = helper_args(args, "tcp-source ADDR:PORT SECONDS")?;
    let connect_by = Instant::now() + Duration::from_secs(5);
    let connect = || -> std::io::Result<TcpStream> {
        let socket = socket2::Socket::new(
            socket2::Domain::for_address(addr),
            socket2::Type::STREAM,
            Some(socket2::Protocol::TCP),
        )?;
        // Per socket, whatever the namespace's default: the flow the fair share is
        // measured against (root may choose any congestion control the kernel has).
        socket.set_tcp_congestion(TCP_CONGESTION_CONTROL.as_bytes())?;
        socket.connect_timeout(&addr.into(), Duration::from_secs(1))?;
        Ok(socket.into())
    };
    let mut stream = loop {
        match connect() {
            Ok(s) => break s,
            Err(_) if Instant::now() < connect_by => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => return Err(e).with_context(|| format!("connecting to {addr}")),
        }
    };
    let deadline = Instant::now() + limit;
    stream.set_write_timeout(Some(Duration::from_millis(100)))?;
    let chunk = vec![b'x'; 64 * 1024];
    let mut sent = 0u64;
    while Instant::now() < deadline {
        match stream.write(&chunk) {
            Ok(n) => sent += n as u64,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock
                        | std::io::ErrorKind::TimedOut
                        | std::io::ErrorKind::Interrupted
                ) => {}
            Err(e) => return Err(e).context("writing"),
        }
    }
    let _ = stream.shutdown(std::net::Shutdown::Write);
    println!("sent {sent} bytes");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_senders_counters() {
        let lines = [
            "udpchat: round trip 41.5 ms (variation 3.2 ms), timeout 60.0 ms, observed loss 1.5%"
                .to_owned(),
            "udpchat: sent 2000, delivered 1999, failed 1, refused 0, received 0 (retransmissions 7, duplicates 0, rejected 0)".to_owned(),
        ];
        assert_eq!(
            chat_stats(&lines),
            Some(ChatStats {
                sent: 2000,
                delivered: 1999,
                failed: 1,
                received: 0,
                retransmissions: 7,
                duplicates: 0,
                srtt_ms: Some(41.5),
            })
        );
        assert_eq!(chat_stats(&lines[..1]), None);
    }

    #[test]
    fn goodput_over_a_window() {
        let t0 = Instant::now();
        let s = |ms: u64, b: u64| (t0 + Duration::from_millis(ms), b);
        let samples = [
            s(0, 0),
            s(500, 1_000_000),
            s(1_000, 2_000_000),
            s(1_500, 2_500_000),
        ];
        let from = t0 + Duration::from_millis(500);
        let to = t0 + Duration::from_millis(1_500);
        assert!((mbit(&samples, from, to) - 12.0).abs() < 1e-9);
        assert_eq!(mbit(&[], from, to), 0.0);
    }
}
