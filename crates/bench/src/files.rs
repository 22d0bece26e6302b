//! Section 12: files through the binary. `udpchat --send FILE` into `udpchat
//! --accept-files DIR`, two processes on loopback, encrypted, the file read from and
//! written to disk and checked end to end (BLAKE3); beside it, in the same run, the
//! same bytes through one TCP connection and one quinn stream (in memory). A line is
//! typed into the sender halfway through each transfer and timed to the receiver's
//! `received` event. CPU and peak memory of both processes come from /proc.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::Value;

use crate::binary::{chat_command, free_port, Guarded, TempHome};

/// What one transfer through the binary measured.
struct Run {
    /// Bytes per second from the receiver's answer to the last byte checked.
    rate: f64,
    /// From the line written to the sender's stdin to the receiver printing it.
    line_latency: Option<Duration>,
    /// CPU seconds, sender and receiver.
    cpu: (f64, f64),
    /// Peak resident memory in MiB, sender and receiver.
    peak_mib: (f64, f64),
}

/// `(utime + stime)` in seconds and VmHWM in KiB of a live process.
fn sample(pid: u32) -> Option<(f64, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let hwm = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())?;
    Some((ticks as f64 / 100.0, hwm))
}

/// Samples `pids` every 20 ms until `stop`; the last values seen of each.
fn watch(pids: [u32; 2], stop: Arc<AtomicBool>) -> std::thread::JoinHandle<[(f64, u64); 2]> {
    std::thread::spawn(move || {
        let mut last = [(0.0, 0); 2];
        while !stop.load(Ordering::Relaxed) {
            for (i, pid) in pids.iter().enumerate() {
                if let Some(s) = sample(*pid) {
                    last[i] = s;
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        last
    })
}

/// A file of `size` bytes that compresses to nothing useful: a random 1 MiB block,
/// each copy marked with its index.
fn make_file(dir: &Path, size: u64) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join("bulk.bin");
    let mut block = vec![0u8; 1 << 20];
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for b in &mut block {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x.to_le_bytes()[0];
    }
    let mut out = std::io::BufWriter::new(std::fs::File::create(&path)?);
    let mut written = 0u64;
    let mut index = 0u64;
    while written < size {
        block[..8].copy_from_slice(&index.to_le_bytes());
        let n = (size - written).min(block.len() as u64) as usize;
        out.write_all(&block[..n])?;
        written += n as u64;
        index += 1;
    }
    out.flush()?;
    Ok(path)
}

fn one_run(bin: &Path, home: &Path, file: &Path, downloads: &Path) -> anyhow::Result<Run> {
    let _ = std::fs::remove_dir_all(downloads);
    let (pa, pb) = (free_port()?, free_port()?);
    let mut receiver_cmd = chat_command(bin, home, pb, pa);
    receiver_cmd
        .args(["--json", "--no-history", "--accept-files"])
        .arg(downloads);
    let mut receiver = Guarded::spawn(receiver_cmd, "receiver")?;
    let mut sender_cmd: Command = chat_command(bin, home, pa, pb);
    sender_cmd
        .args(["--json", "--no-history", "--send"])
        .arg(file);
    let mut sender = Guarded::spawn(sender_cmd, "sender")?;
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = watch([sender.child.id(), receiver.child.id()], Arc::clone(&stop));

    let stdout = receiver.child.stdout.take().context("receiver stdout")?;
    let (events_tx, events) = mpsc::channel::<(Instant, Value)>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Ok(v) = serde_json::from_str::<Value>(&line) {
                if events_tx.send((Instant::now(), v)).is_err() {
                    break;
                }
            }
        }
    });
    let mut sender_stdin = sender.child.stdin.take();
    let mut typed_at = None;
    let mut line_latency = None;
    let mut seconds = None;
    let deadline = Instant::now() + Duration::from_secs(600);
    while seconds.is_none() && Instant::now() < deadline {
        let Ok((at, event)) = events.recv_timeout(Duration::from_secs(1)) else {
            continue;
        };
        match event["event"].as_str() {
            Some("file_progress") if typed_at.is_none() => {
                if let Some(stdin) = sender_stdin.as_mut() {
                    // Taken before the write: the receiver may print it before this
                    // thread runs again.
                    typed_at = Some(Instant::now());
                    stdin.write_all(b"typed during the transfer\n")?;
                    stdin.flush()?;
                }
            }
            Some("received") => line_latency = typed_at.map(|t| at.saturating_duration_since(t)),
            Some("file_done") => seconds = event["seconds"].as_f64(),
            Some("file_failed") => anyhow::bail!("the transfer failed: {event}"),
            _ => {}
        }
    }
    // The line may come after the file's last byte if it was typed near the end.
    if typed_at.is_some() && line_latency.is_none() {
        while let Ok((at, event)) = events.recv_timeout(Duration::from_secs(2)) {
            if event["event"] == "received" {
                line_latency = typed_at.map(|t| at.saturating_duration_since(t));
                break;
            }
        }
    }
    drop(sender_stdin);
    let seconds = seconds.context("no file_done within 10 minutes")?;
    let mut odd = Vec::new();
    sender.finish(Duration::from_secs(30), &mut odd)?;
    drop(receiver.child.stdin.take());
    receiver.finish(Duration::from_secs(30), &mut odd)?;
    stop.store(true, Ordering::Relaxed);
    let [(cpu_s, hwm_s), (cpu_r, hwm_r)] = watcher
        .join()
        .map_err(|_| anyhow::anyhow!("watcher panicked"))?;
    anyhow::ensure!(odd.is_empty(), "{}", odd.join("; "));
    let size = std::fs::metadata(file)?.len();
    let arrived = std::fs::metadata(downloads.join("bulk.bin"))?.len();
    anyhow::ensure!(arrived == size, "{arrived} of {size} bytes arrived");
    Ok(Run {
        rate: size as f64 / seconds.max(1e-6),
        line_latency,
        cpu: (cpu_s, cpu_r),
        peak_mib: (hwm_s as f64 / 1024.0, hwm_r as f64 / 1024.0),
    })
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}

fn spread(values: &[f64], scale: f64, digits: usize) -> String {
    if values.is_empty() {
        return "n/a".to_owned();
    }
    let mut v: Vec<f64> = values.iter().map(|x| x / scale).collect();
    v.sort_by(f64::total_cmp);
    let min = v.first().copied().unwrap_or(0.0);
    let max = v.last().copied().unwrap_or(0.0);
    format!(
        "{:.digits$} (min {min:.digits$}, max {max:.digits$})",
        median(v.clone())
    )
}

/// Measures `runs` transfers of `size` bytes and the same bytes over TCP and quinn.
pub(crate) fn section(
    r: &mut crate::Report,
    bin: &Path,
    size: u64,
    runs: usize,
) -> anyhow::Result<()> {
    const MIB: f64 = 1024.0 * 1024.0;
    let work = TempHome::new("files");
    let file = make_file(&work.path().join("out"), size)?;
    let home = crate::product::installation(bin, "files")?;
    let downloads = work.path().join("in");
    let mut results = Vec::new();
    let mut tcp = Vec::new();
    let mut quic = Vec::new();
    // Messages of 60,000 bytes: large writes, as a file copy makes them.
    let chunk = 60_000;
    let messages = usize::try_from(size / chunk as u64)
        .unwrap_or(usize::MAX)
        .max(1);
    for _ in 0..runs {
        results.push(one_run(bin, home.path(), &file, &downloads)?);
        tcp.push(crate::baseline::tcp(messages, chunk)? * chunk as f64);
        quic.push(crate::baseline::quic(messages, chunk)? * chunk as f64);
    }
    let rates: Vec<f64> = results.iter().map(|x| x.rate).collect();
    let latencies: Vec<f64> = results
        .iter()
        .filter_map(|x| x.line_latency.map(|d| d.as_secs_f64() * 1e3))
        .collect();
    let cpu: Vec<f64> = results.iter().map(|x| x.cpu.0 + x.cpu.1).collect();
    let peak: Vec<f64> = results
        .iter()
        .map(|x| x.peak_mib.0.max(x.peak_mib.1))
        .collect();
    r.line(format!(
        "12. files through the binary: udpchat --send into --accept-files, encrypted, loopback, {:.0} MiB read from and written to disk and checked (BLAKE3), {runs} runs; the same bytes in memory through one TCP connection and one quinn stream ({chunk}-byte writes) in the same runs:",
        size as f64 / MIB
    ));
    r.line(format!(
        "    udpchat {} MiB/s; TCP {} MiB/s; quinn {} MiB/s; udpchat / TCP = {:.2}, / quinn = {:.2}",
        spread(&rates, MIB, 0),
        spread(&tcp, MIB, 0),
        spread(&quic, MIB, 0),
        median(rates.clone()) / median(tcp.clone()).max(1.0),
        median(rates.clone()) / median(quic.clone()).max(1.0),
    ));
    r.line(format!(
        "    a line typed halfway through, to the receiver's screen: {} ms; CPU of both processes per transfer {} s ({:.2} s per GiB); peak memory of the larger process {} MiB",
        spread(&latencies, 1.0, 1),
        spread(&cpu, 1.0, 2),
        median(cpu.clone()) * (1024.0 * MIB) / size as f64,
        spread(&peak, 1.0, 0),
    ));
    Ok(())
}
