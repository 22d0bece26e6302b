//! Section 9, the product path: the real `udpchat` binary as people run it over pipes,
//! the equivalent of
//!
//! ```text
//! udpchat id --home DIR
//! udpchat 127.0.0.1:PA --port PB --plain --home DIR > received          # the receiver
//! seq N | sed 's/^/line /' | udpchat 127.0.0.1:PB --port PA --plain --stats --home DIR
//! ```
//!
//! Both processes share one data directory: the same installation, which trusts itself,
//! so nothing is compared or pinned. The bench feeds the sender's stdin in big chunks
//! and closes it, counts the receiver's `peer> TEXT` lines as they arrive, and reads the
//! sender's counters from its `--stats` line on stderr (`sent …, delivered …, failed …
//! (retransmissions …)`) or, with `--json`, from its `exit` event. Every process has a
//! deadline and is killed when it passes.
//!
//! `udpchat-bench --only 9` runs only this section (with the full sizes; add `--smoke`
//! for the small ones).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::Value;

use crate::binary::{chat_command, free_port, join, lines_of, Guarded, TempHome};
use crate::{baseline, Report, Sizes, SIZE};

/// How long one process may run before it is killed and the run reported as an error.
const DEADLINE: Duration = Duration::from_secs(120);
/// How long the receiver may take to leave once its input ended and the sender has.
const RECEIVER_EXIT: Duration = Duration::from_secs(10);
/// Between two lines typed in the lossy runs (c).
const PACE: Duration = Duration::from_millis(5);
/// How long the receiver may still print lines once the sender has exited.
const GRACE: Duration = Duration::from_secs(3);
/// Retransmissions per message the original program's loss (20% each way) costs:
/// 1 / (0.8 * 0.8) - 1.
const THEORY: f64 = 1.0 / (0.8 * 0.8) - 1.0;

/// The sender's counters at exit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Stats {
    pub(crate) sent: u64,
    pub(crate) delivered: u64,
    pub(crate) failed: u64,
    pub(crate) retransmissions: u64,
}

/// How the sender reports: `--plain --stats` (a line on stderr) or `--json` (events on
/// stdout, one per message too).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum SenderOutput {
    Plain,
    Json,
}

/// One transfer of `lines` lines from a sender to a receiver process.
#[derive(Debug, Default)]
pub(crate) struct Transfer {
    pub(crate) lines: usize,
    /// `peer> ` lines the receiver printed.
    pub(crate) received: usize,
    /// Received lines that were not `line i` for the i-th one.
    pub(crate) out_of_order: usize,
    /// From the sender's start to the receiver's first line (process start + handshake).
    pub(crate) first_line: Option<Duration>,
    /// From the sender's start to the receiver's `lines`-th line.
    pub(crate) last_line: Option<Duration>,
    /// From the sender's start to its exit (what `seq | udpchat` takes).
    pub(crate) sender_exit: Option<Duration>,
    pub(crate) stats: Option<Stats>,
    /// Kernel UDP receive-buffer drops (system-wide) during the run.
    pub(crate) rcvbuf_errors: Option<u64>,
    /// Anything unexpected: exit statuses, processes killed, lines missing.
    pub(crate) odd: Vec<String>,
}

impl Transfer {
    /// Lines per second from the sender's start to the last line.
    pub(crate) fn rate(&self) -> f64 {
        self.last_line
            .map_or(0.0, |t| self.lines as f64 / t.as_secs_f64().max(1e-9))
    }

    /// Lines per second once the first line was through (the handshake left out).
    fn steady_rate(&self) -> f64 {
        match (self.first_line, self.last_line) {
            (Some(a), Some(b)) if b > a => {
                (self.lines.saturating_sub(1)) as f64 / (b - a).as_secs_f64()
            }
            _ => 0.0,
        }
    }

    pub(crate) fn retransmissions_per_message(&self) -> Option<f64> {
        self.stats
            .map(|s| s.retransmissions as f64 / (s.sent.max(1)) as f64)
    }
}

/// The counters of the sender's `--stats` line, e.g. `udpchat: sent 2000, delivered
/// 2000, failed 0, refused 0, received 0 (retransmissions 0, duplicates 0, rejected 0)`.
pub(crate) fn plain_stats(line: &str) -> Option<Stats> {
    let words: Vec<&str> = line
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect();
    let get = |key: &str| {
        words
            .windows(2)
            .find(|w| w[0] == key)
            .and_then(|w| w[1].parse().ok())
    };
    Some(Stats {
        sent: get("sent")?,
        delivered: get("delivered")?,
        failed: get("failed")?,
        retransmissions: get("retransmissions")?,
    })
}

/// The counters of a `--json` `exit` event.
pub(crate) fn json_stats(line: &str) -> Option<Stats> {
    let v: Value = serde_json::from_str(line).ok()?;
    if v["event"] != "exit" {
        return None;
    }
    Some(Stats {
        sent: v["sent"].as_u64()?,
        delivered: v["delivered"].as_u64()?,
        failed: v["failed"].as_u64()?,
        retransmissions: v["retransmissions"].as_u64()?,
    })
}

/// `RcvbufErrors` of the `Udp:` line of /proc/net/snmp (system-wide), if readable.
pub(crate) fn rcvbuf_errors() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/net/snmp").ok()?;
    let mut udp = text.lines().filter(|l| l.starts_with("Udp:"));
    let (names, values) = (udp.next()?, udp.next()?);
    let column = names.split_whitespace().position(|n| n == "RcvbufErrors")?;
    values.split_whitespace().nth(column)?.parse().ok()
}

/// What the receiver's stdout showed.
#[derive(Default)]
struct Received {
    count: usize,
    out_of_order: usize,
    first: Option<Instant>,
    last: Option<Instant>,
}

/// Counts the receiver's `peer> ` lines as they arrive; signals the `lines`-th.
fn count_lines(
    reader: impl Read + Send + 'static,
    lines: usize,
    done: mpsc::Sender<()>,
) -> JoinHandle<Received> {
    std::thread::spawn(move || {
        let mut got = Received::default();
        for line in BufReader::new(reader).lines().map_while(Result::ok) {
            let Some(text) = line.strip_prefix("peer> ") else {
                continue;
            };
            let now = Instant::now();
            got.count += 1;
            got.first.get_or_insert(now);
            got.last = Some(now);
            if text != format!("line {}", got.count) {
                got.out_of_order += 1;
            }
            if got.count == lines {
                let _ = done.send(());
            }
        }
        got
    })
}

fn spawn(
    bin: &Path,
    home: &Path,
    peer: u16,
    port: u16,
    args: &[String],
    name: &'static str,
) -> anyhow::Result<Guarded> {
    let child = chat_command(bin, home, port, peer)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting the {name} ({})", bin.display()))?;
    Ok(Guarded {
        child,
        name: name.to_owned(),
    })
}

/// Writes `input` in big chunks (or, with a `pace`, one line per `pace`, as a person
/// types), then closes the pipe (end of input).
fn feed(
    mut stdin: ChildStdin,
    input: Vec<u8>,
    pace: Option<Duration>,
) -> JoinHandle<std::io::Result<()>> {
    std::thread::spawn(move || {
        match pace {
            None => {
                for chunk in input.chunks(64 * 1024) {
                    stdin.write_all(chunk)?;
                }
            }
            Some(pace) => {
                for line in input.split_inclusive(|&b| b == b'\n') {
                    stdin.write_all(line)?;
                    stdin.flush()?;
                    std::thread::sleep(pace);
                }
            }
        }
        stdin.flush()
    })
}

/// One installation's data directory with its identity created.
pub(crate) fn installation(bin: &Path, tag: &str) -> anyhow::Result<TempHome> {
    let home = TempHome::new(tag);
    let out = Command::new(bin)
        .args(["id", "--home"])
        .arg(home.path())
        .stdin(Stdio::null())
        .output()
        .context("running udpchat id")?;
    if !out.status.success() {
        bail!("udpchat id: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(home)
}

/// Sends `lines` lines `line 1`.. from a sender to a receiver process sharing `home`;
/// `both` is given to both processes, `seeds` (sender, receiver) as their `--seed`.
pub(crate) fn transfer(
    bin: &Path,
    home: &Path,
    lines: usize,
    both: &[&str],
    seeds: Option<(u64, u64)>,
    report: SenderOutput,
    pace: Option<Duration>,
) -> anyhow::Result<Transfer> {
    let (pa, pb) = (free_port()?, free_port()?);
    let with_seed = |seed: Option<u64>, own: &[&str]| {
        let mut args: Vec<String> = own.iter().chain(both).map(|s| (*s).to_owned()).collect();
        if let Some(seed) = seed {
            args.extend(["--seed".to_owned(), seed.to_string()]);
        }
        args
    };
    let input: Vec<u8> = (1..=lines)
        .flat_map(|i| format!("line {i}\n").into_bytes())
        .collect();
    let before = rcvbuf_errors();

    // The receiver first, until it has said it listens (its first line on stderr: from
    // a pipe udpchat greets only with -v, and the receiver types nothing, so -v adds
    // no per-message lines). The same person, with a store of its own.
    let receiver_home = crate::binary::same_person(home, "receiver")?;
    let mut receiver = spawn(
        bin,
        &receiver_home,
        pa,
        pb,
        &with_seed(seeds.map(|s| s.1), &["--plain", "-v"]),
        "receiver",
    )?;
    let receiver_stdin = receiver.child.stdin.take();
    let (done_tx, done_rx) = mpsc::channel();
    let counted = count_lines(
        receiver.child.stdout.take().context("no receiver stdout")?,
        lines,
        done_tx,
    );
    let (ready_tx, ready_rx) = mpsc::channel();
    let receiver_err = lines_of(
        receiver.child.stderr.take().context("no receiver stderr")?,
        Some(ready_tx),
        |_| false,
    );
    if ready_rx.recv_timeout(Duration::from_secs(10)).is_err() {
        bail!("the receiver printed nothing in 10 s (or exited)");
    }

    let own: &[&str] = match report {
        SenderOutput::Plain => &["--plain", "--stats"],
        SenderOutput::Json => &["--json"],
    };
    let start = Instant::now();
    let deadline = start + DEADLINE;
    let mut sender = spawn(
        bin,
        home,
        pb,
        pa,
        &with_seed(seeds.map(|s| s.0), own),
        "sender",
    )?;
    let fed = feed(
        sender.child.stdin.take().context("no sender stdin")?,
        input,
        pace,
    );
    let (sender_out, sender_err) = {
        let out = sender.child.stdout.take().context("no sender stdout")?;
        let err = sender.child.stderr.take().context("no sender stderr")?;
        match report {
            SenderOutput::Plain => (
                lines_of(out, None, |_| false),
                lines_of(err, None, |l| plain_stats(l).is_some()),
            ),
            SenderOutput::Json => (
                lines_of(out, None, |l| json_stats(l).is_some()),
                lines_of(err, None, |_| false),
            ),
        }
    };

    // Until the last line, or the sender's exit and a grace period, or the deadline.
    let mut t = Transfer {
        lines,
        ..Transfer::default()
    };
    let mut sender_status = None;
    let mut sender_gone: Option<Instant> = None;
    loop {
        if done_rx.recv_timeout(Duration::from_millis(5)).is_ok() {
            break;
        }
        let now = Instant::now();
        if sender_gone.is_none() {
            if let Some(status) = sender.child.try_wait()? {
                sender_status = Some(status);
                sender_gone = Some(now);
                t.sender_exit = Some(now - start);
            }
        }
        if sender_gone.is_some_and(|gone| now - gone > GRACE) {
            break;
        }
        if now > deadline {
            bail!("{lines} lines through udpchat did not arrive within {DEADLINE:?}");
        }
    }
    // The receiver's input ends once it has every line: the sender's goodbye waits for
    // the receiver's (PROTOCOL.md §6a), as a chat that both sides end.
    drop(receiver_stdin);
    if sender_gone.is_none() {
        sender_status = sender.wait_for(deadline.saturating_duration_since(Instant::now()))?;
        t.sender_exit = Some(start.elapsed());
    }
    sender.note(sender_status, DEADLINE, &mut t.odd);
    if sender_status.is_none() {
        t.sender_exit = None;
    }
    let receiver_status = receiver.wait_for(RECEIVER_EXIT)?;
    receiver.note(receiver_status, RECEIVER_EXIT, &mut t.odd);
    t.rcvbuf_errors = before
        .zip(rcvbuf_errors())
        .map(|(b, a)| a.saturating_sub(b));

    if let Err(e) = join(fed, "the sender's input")? {
        t.odd
            .push(format!("writing the sender's input failed: {e}"));
    }
    let got = join(counted, "the receiver's output")?;
    let _ = join(receiver_err, "the receiver's stderr")?;
    let stats_line = match report {
        SenderOutput::Plain => {
            let _ = join(sender_out, "the sender's stdout")?;
            join(sender_err, "the sender's stderr")?.pop()
        }
        SenderOutput::Json => {
            let _ = join(sender_err, "the sender's stderr")?;
            join(sender_out, "the sender's stdout")?.pop()
        }
    };
    t.stats = stats_line.as_deref().and_then(match report {
        SenderOutput::Plain => plain_stats,
        SenderOutput::Json => json_stats,
    });
    if t.stats.is_none() {
        t.odd
            .push("the sender printed no counters at exit".to_owned());
    }
    t.received = got.count;
    t.out_of_order = got.out_of_order;
    t.first_line = got.first.map(|f| f - start);
    if got.count >= lines {
        t.last_line = got.last.map(|l| l - start);
    }
    if got.count != lines {
        t.odd
            .push(format!("receiver printed {} of {lines} lines", got.count));
    }
    if got.out_of_order > 0 {
        t.odd.push(format!(
            "{} lines out of order or altered",
            got.out_of_order
        ));
    }
    if let Some(s) = t.stats {
        if s.failed > 0 || s.delivered != lines as u64 {
            t.odd.push(format!(
                "sender: {} delivered, {} failed of {lines}",
                s.delivered, s.failed
            ));
        }
    }
    Ok(t)
}

/// The same lines through one TCP connection on loopback between two threads, written
/// in big chunks and read line by line: lines per second.
pub(crate) fn tcp_lines(lines: usize) -> anyhow::Result<f64> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let input: Vec<u8> = (1..=lines)
        .flat_map(|i| format!("line {i}\n").into_bytes())
        .collect();
    let reader = std::thread::spawn(move || -> anyhow::Result<Instant> {
        let (stream, _) = listener.accept()?;
        let mut count = 0;
        for line in BufReader::new(stream).lines() {
            let line = line?;
            count += 1;
            anyhow::ensure!(line == format!("line {count}"), "TCP line {count} wrong");
            if count == lines {
                break;
            }
        }
        anyhow::ensure!(count == lines, "TCP: {count} of {lines} lines");
        Ok(Instant::now())
    });
    let start = Instant::now();
    let mut stream = TcpStream::connect(addr)?;
    for chunk in input.chunks(64 * 1024) {
        stream.write_all(chunk)?;
    }
    drop(stream);
    let end = join(reader, "TCP")??;
    Ok(lines as f64 / (end - start).as_secs_f64())
}

/// (min, median, max).
fn spread(values: &[f64]) -> (f64, f64, f64) {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let min = v.first().copied().unwrap_or(0.0);
    let max = v.last().copied().unwrap_or(0.0);
    (min, crate::median(v), max)
}

fn show(values: &[f64], digits: usize) -> String {
    let (min, med, max) = spread(values);
    if values.len() == 1 {
        format!("{med:.digits$}")
    } else {
        format!("{med:.digits$} (min {min:.digits$}, max {max:.digits$})")
    }
}

/// `n` lines with `--no-history` on both sides: the transport alone.
fn without_store(bin: &Path, home: &Path, n: usize) -> anyhow::Result<Transfer> {
    transfer(
        bin,
        home,
        n,
        &["--no-history"],
        None,
        SenderOutput::Plain,
        None,
    )
}

/// Section 9.
pub(crate) fn section(r: &mut Report, s: &Sizes, bin: &Path) -> anyhow::Result<()> {
    let n = s.product_lines;
    let home = installation(bin, "product")?;
    r.line(format!(
        "9. the product path: {} over pipes, two processes of one person (one identity, a data directory each); `seq {n} | sed 's/^/line /' | udpchat PEER --plain --stats`, timed from the sender's start to the receiver's {n}-th line; median (min, max) of {} runs. a), b) and d) measure the transport with --no-history; e) the default, which keeps the conversation:",
        bin.display(),
        s.product_repeats
    ));
    let mut odd = Vec::new();
    let mut note = |what: &str, t: &Transfer| {
        for o in &t.odd {
            odd.push(format!("{what}: {o}"));
        }
    };

    // a) and b): no simulated loss.
    let mut clean = Vec::new();
    for i in 0..s.product_repeats {
        let t = without_store(bin, home.path(), n)?;
        note(&format!("loss-free run {}", i + 1), &t);
        clean.push(t);
    }
    let rates: Vec<f64> = clean.iter().map(Transfer::rate).collect();
    let steady: Vec<f64> = clean.iter().map(Transfer::steady_rate).collect();
    let first: Vec<f64> = clean
        .iter()
        .filter_map(|t| t.first_line)
        .map(crate::ms)
        .collect();
    let exits: Vec<f64> = clean
        .iter()
        .filter_map(|t| t.sender_exit)
        .map(|d| d.as_secs_f64())
        .collect();
    let one_way = crate::repeat(s.repeats, || baseline::udp_one_way(s.one_way, SIZE))?;
    let tcp: Vec<f64> = (0..s.repeats)
        .map(|_| tcp_lines(n))
        .collect::<anyhow::Result<_>>()?;
    let quic: Vec<f64> = (0..s.repeats)
        .map(|_| baseline::quic(n, SIZE))
        .collect::<anyhow::Result<_>>()?;
    let rate = spread(&rates).1;
    r.line(format!(
        "   a) no loss: {} lines/s; first line after {} ms (process start + handshake), {} lines/s after it; the sender exited after {} s",
        show(&rates, 0),
        show(&first, 1),
        show(&steady, 0),
        show(&exits, 2)
    ));
    r.line(format!(
        "      same run: raw UDP {one_way:.0} one-way datagrams/s ({SIZE} bytes, median of {}); TCP, the same lines through one connection: {} lines/s; quinn, one stream: {} messages/s ({SIZE} bytes); udpchat / raw = {:.2}, / TCP = {:.3}, / quinn = {:.2}",
        s.repeats,
        show(&tcp, 0),
        show(&quic, 0),
        rate / one_way,
        rate / spread(&tcp).1,
        rate / spread(&quic).1
    ));
    r.goal(
        "binary lines/s / raw one-way datagrams/s",
        format!("{:.2}", rate / one_way),
        ">= 2",
        rate / one_way >= 2.0,
    );

    let retx: Vec<f64> = clean
        .iter()
        .filter_map(Transfer::retransmissions_per_message)
        .collect();
    let drops: Option<Vec<u64>> = clean.iter().map(|t| t.rcvbuf_errors).collect();
    let total_retx: u64 = clean
        .iter()
        .filter_map(|t| t.stats)
        .map(|s| s.retransmissions)
        .sum();
    r.line(format!(
        "   b) no loss: {} retransmissions per message (from the --stats line; {total_retx} in all); kernel UDP receive-buffer drops (RcvbufErrors, system-wide) per run: {}",
        if retx.is_empty() { "unmeasured".to_owned() } else { show(&retx, 4) },
        drops.as_ref().map_or("unmeasured".to_owned(), |d| format!("{d:?}"))
    ));
    let worst_retx = retx.iter().copied().fold(f64::NAN, f64::max);
    r.goal(
        "binary retransmissions per message, no loss (worst run)",
        if retx.is_empty() {
            "unmeasured".to_owned()
        } else {
            format!("{:.2}%", 100.0 * worst_retx)
        },
        "<= 1%",
        !retx.is_empty() && worst_retx <= 0.01,
    );
    let total_drops = drops.as_ref().map(|d| d.iter().sum::<u64>());
    r.goal(
        "kernel UDP receive-buffer drops during the binary's loss-free runs",
        total_drops.map_or("unmeasured".to_owned(), |d| d.to_string()),
        "0",
        total_drops == Some(0),
    );

    // c) The original program's loss.
    let mut seed_loss = Vec::new();
    for i in 0..s.product_lossy_runs {
        let seed = 1_000 + 2 * i as u64;
        let mut t = transfer(
            bin,
            home.path(),
            s.product_lossy_lines,
            &["--drop", "0.2", "--ack-drop", "0.2"],
            Some((seed, seed + 1)),
            SenderOutput::Json,
            // One line every 5 ms, as the original program was used (a line typed,
            // sent, acknowledged): each message travels alone, which is what the
            // theory counts. Lines written all at once share datagrams, and a lost
            // datagram then costs all its lines a retransmission together.
            Some(PACE),
        )?;
        if t.stats.is_some_and(|s| s.retransmissions == 0) {
            t.odd
                .push("no retransmission at all (was the simulated loss applied?)".to_owned());
        }
        note(&format!("20% loss run {}", i + 1), &t);
        seed_loss.push(t.retransmissions_per_message().unwrap_or(f64::NAN));
    }
    r.line(format!(
        "   c) the original program's loss (--drop 0.2 --ack-drop 0.2 on both, --seed 1000.., sender --json), {} lines typed one every {} ms, {} runs: retransmissions per message {} (theory {THEORY:.4}); median {}",
        s.product_lossy_lines,
        PACE.as_millis(),
        s.product_lossy_runs,
        seed_loss
            .iter()
            .map(|v| format!("{v:.3}"))
            .collect::<Vec<_>>()
            .join(", "),
        show(&seed_loss, 3)
    ));
    let worst = seed_loss.iter().copied().fold(f64::NAN, f64::max);
    r.goal(
        "binary retransmissions per message at 20% loss each way, worst run / theory 0.5625",
        format!("{:.2}", worst / THEORY),
        "<= 1.3 in every run",
        seed_loss.iter().all(|v| *v <= 1.3 * THEORY),
    );

    // d) 5% loss each way.
    let mut five = Vec::new();
    for i in 0..s.product_five_repeats {
        let seed = 2_000 + 2 * i as u64;
        let t = transfer(
            bin,
            home.path(),
            n,
            &["--drop", "0.05", "--ack-drop", "0.05", "--no-history"],
            Some((seed, seed + 1)),
            SenderOutput::Plain,
            None,
        )?;
        note(&format!("5% loss run {}", i + 1), &t);
        five.push(t);
    }
    let five_rates: Vec<f64> = five.iter().map(Transfer::rate).collect();
    let five_retx: Vec<f64> = five
        .iter()
        .filter_map(Transfer::retransmissions_per_message)
        .collect();
    let share = spread(&five_rates).1 / rate.max(1e-9);
    r.line(format!(
        "   d) 5% loss each way (--drop 0.05 --ack-drop 0.05 on both), {n} lines, {} runs: {} lines/s = {:.0}% of loss-free; {} retransmissions per message",
        s.product_five_repeats,
        show(&five_rates, 0),
        100.0 * share,
        if five_retx.is_empty() { "unmeasured".to_owned() } else { show(&five_retx, 3) }
    ));
    r.goal(
        "binary lines/s at 5% loss / loss-free",
        format!("{:.0}%", 100.0 * share),
        ">= 80%",
        share >= 0.8,
    );
    // e) The store: the default against --no-history, in turns.
    let (mut kept, mut unkept) = (Vec::new(), Vec::new());
    for i in 0..s.product_repeats {
        let t = transfer(bin, home.path(), n, &[], None, SenderOutput::Plain, None)?;
        note(&format!("run {} with the store", i + 1), &t);
        kept.push(t.rate());
        let t = without_store(bin, home.path(), n)?;
        note(&format!("run {} without the store", i + 1), &t);
        unkept.push(t.rate());
    }
    let store_share = spread(&kept).1 / spread(&unkept).1.max(1e-9);
    r.line(format!(
        "   e) the store (the default: every line committed to history.db before it is sent or shown, one transaction per batch, WAL, synchronous=NORMAL) against --no-history, in turns, {} runs each: {} lines/s against {} lines/s = {:.0}%",
        s.product_repeats,
        show(&kept, 0),
        show(&unkept, 0),
        100.0 * store_share
    ));
    r.goal(
        "binary lines/s with the store / without",
        format!("{:.0}%", 100.0 * store_share),
        ">= 50%",
        store_share >= 0.5,
    );
    r.line(if odd.is_empty() {
        "   every run: all lines arrived once and in order, both processes exited with success"
            .to_owned()
    } else {
        format!("   odd: {}", odd.join("; "))
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_counters() {
        let plain = "udpchat: sent 2000, delivered 1999, failed 1, refused 0, received 0 (retransmissions 7, duplicates 0, rejected 0)";
        let want = Stats {
            sent: 2000,
            delivered: 1999,
            failed: 1,
            retransmissions: 7,
        };
        assert_eq!(plain_stats(plain), Some(want));
        assert_eq!(plain_stats("udpchat: delivered #3 (1 attempt, 0 ms)"), None);
        let json = r#"{"event":"exit","sent":2000,"delivered":1999,"failed":1,"refused":0,"received":0,"retransmissions":7}"#;
        assert_eq!(json_stats(json), Some(want));
        assert_eq!(json_stats(r#"{"event":"delivered","id":1}"#), None);
    }

    #[test]
    fn tcp_lines_arrive() {
        assert!(tcp_lines(1_000).unwrap() > 0.0);
    }
}
