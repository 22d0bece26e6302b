//! udpchat's benchmarks: every figure a ratio against a baseline measured in the same
//! run on the same loopback (raw UDP, TCP, QUIC), the median of several runs.
//!
//! ```text
//! udpchat-bench                          # full run, prints the table
//! udpchat-bench --write docs/BENCHMARKS.md
//! udpchat-bench --smoke                  # every benchmark briefly, for CI: no goals judged
//! udpchat-bench --only 3                 # only section 3, the fixed timeout against the adaptive one
//! udpchat-bench --only 9                 # only section 9, the binary over pipes (with --smoke: small)
//! udpchat-bench --only 10                # only section 10, fairness against TCP at a tbf bottleneck
//! udpchat-bench --only 11                # only section 11, opening a history of a million messages
//! udpchat-bench --only 12                # only section 12, files through the binary (1 GiB, three runs)
//! udpchat-bench --udpchat PATH           # sections 8, 9 and 10 measure this udpchat binary instead
//! ```
//!
//! Section 10 needs root, `ip` and `tc`; without them it prints why it was skipped. Its
//! helpers run as hidden subcommands of this binary inside network namespaces:
//! `udpchat-bench tcp-sink ADDR:PORT SECONDS` and `tcp-source ADDR:PORT SECONDS`.
#![forbid(unsafe_code)]

mod baseline;
mod binary;
mod crypto;
mod engine;
mod fairness;
mod files;
mod history;
mod machine;
mod memory;
mod product;

use std::fmt::Write as _;

use anyhow::Context as _;
use std::time::Duration;

use udpchat_impair::ImpairConfig;
use udpchat_proto::{Config, RtoPolicy};

use crate::engine::{measure, BenchSecurity, Outcome, Run};

/// Sizes of one run: the full run and the smoke run differ only in these.
struct Sizes {
    repeats: usize,
    ping_pongs: usize,
    one_way: Duration,
    stop_and_wait: usize,
    lossy: usize,
    fixed_timeout: Duration,
    window: usize,
    streams: usize,
    queued: usize,
    idle_peers: usize,
    /// Starts of two `udpchat` processes per kind (simultaneous, staggered).
    start_rounds: usize,
    /// How long after the first the second side starts in the staggered rounds.
    start_stagger: Duration,
    /// Section 9: lines through the binary per loss-free (and 5% loss) run.
    product_lines: usize,
    /// Section 9: loss-free runs through the binary.
    product_repeats: usize,
    /// Section 9: runs and lines per run at the original program's loss.
    product_lossy_runs: usize,
    product_lossy_lines: usize,
    /// Section 9: runs at 5% loss.
    product_five_repeats: usize,
    /// Section 10: how long the flows run through the bottleneck.
    fairness: fairness::Durations,
    /// Section 11: messages in the history that is opened.
    history_messages: usize,
}

const FULL: Sizes = Sizes {
    repeats: 5,
    ping_pongs: 20_000,
    one_way: Duration::from_secs(1),
    stop_and_wait: 20_000,
    lossy: 1_000,
    fixed_timeout: Duration::from_secs(3),
    window: 200_000,
    streams: 200_000,
    queued: 10_000,
    idle_peers: 1_000,
    start_rounds: 20,
    start_stagger: Duration::from_secs(10),
    product_lines: 200_000,
    product_repeats: 5,
    product_lossy_runs: 10,
    product_lossy_lines: 300,
    product_five_repeats: 5,
    fairness: fairness::Durations {
        warmup: Duration::from_secs(2),
        measure: Duration::from_secs(10),
        alone: Duration::from_secs(5),
        drain: Duration::from_secs(10),
    },
    history_messages: 1_000_000,
};

const SMOKE: Sizes = Sizes {
    repeats: 1,
    ping_pongs: 200,
    one_way: Duration::from_millis(50),
    stop_and_wait: 200,
    lossy: 30,
    // Labelled as such in the output: 3 s would make the smoke run take minutes.
    fixed_timeout: Duration::from_millis(100),
    window: 2_000,
    streams: 2_000,
    queued: 1_000,
    idle_peers: 50,
    start_rounds: 2,
    start_stagger: Duration::from_millis(300),
    product_lines: 2_000,
    product_repeats: 1,
    product_lossy_runs: 1,
    product_lossy_lines: 30,
    product_five_repeats: 1,
    fairness: fairness::Durations {
        warmup: Duration::from_secs(1),
        measure: Duration::from_secs(2),
        alone: Duration::from_secs(1),
        drain: Duration::from_secs(3),
    },
    history_messages: 20_000,
};

/// Bytes per message in every throughput figure.
const SIZE: usize = 100;

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}

fn repeat(n: usize, mut f: impl FnMut() -> anyhow::Result<f64>) -> anyhow::Result<f64> {
    let mut values = Vec::with_capacity(n);
    for _ in 0..n {
        values.push(f()?);
    }
    Ok(median(values))
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// A figure with its goal.
struct Goal {
    what: String,
    value: String,
    target: String,
    met: bool,
}

#[derive(Default)]
struct Report {
    lines: Vec<String>,
    goals: Vec<Goal>,
}

impl Report {
    fn line(&mut self, text: String) {
        println!("{text}");
        self.lines.push(text);
    }

    fn goal(&mut self, what: &str, value: String, target: &str, met: bool) {
        println!(
            "  goal: {what}: {value} (target {target}) {}",
            if met { "MET" } else { "NOT MET" }
        );
        self.goals.push(Goal {
            what: what.to_owned(),
            value,
            target: target.to_owned(),
            met,
        });
    }
}

fn engine(config: Config, impairment: ImpairConfig, messages: usize, seed: u64) -> Run {
    Run {
        config,
        impairment,
        messages,
        size: SIZE,
        seed,
        security: BenchSecurity::Plaintext,
    }
}

/// Seeds of the loss in section 3. One run is luck: whether the last datagrams of the
/// burst are lost decides whether anything waits for the timer at all, and with a window
/// that holds the whole burst, that is the only wait left.
const LOSSY_SEEDS: std::ops::Range<u64> = 7..12;

/// Section 3's runs, one per seed, as one outcome: every message's latency, and the
/// retransmissions and deliveries of all runs summed.
fn lossy_latency(rto: RtoPolicy, s: &Sizes) -> anyhow::Result<Outcome> {
    let config = Config {
        rto,
        max_retries: 1_000,
        ..Config::default()
    };
    let mut all = Outcome::default();
    for seed in LOSSY_SEEDS {
        let o = measure(&engine(
            config.clone(),
            ImpairConfig::seed_classic(),
            s.lossy,
            seed,
        ))?;
        all.latencies.extend(o.latencies);
        all.received += o.received;
        all.elapsed += o.elapsed;
        all.stats.retransmissions += o.stats.retransmissions;
        all.stats.messages_delivered += o.stats.messages_delivered;
    }
    Ok(all)
}

/// Section 3: the original program's loss, its fixed timeout against the adaptive one.
fn timer_section(r: &mut Report, s: &Sizes) -> anyhow::Result<()> {
    // 3. The seed's loss: fixed timeout against adaptive.
    let fixed = lossy_latency(RtoPolicy::Fixed(s.fixed_timeout), s)?;
    let adaptive = lossy_latency(RtoPolicy::adaptive(), s)?;
    let describe = |name: &str, o: &Outcome| {
        let mut l = o.latencies.clone();
        l.sort_unstable();
        let mean = l.iter().sum::<Duration>() / u32::try_from(l.len().max(1)).unwrap_or(1);
        (
            format!(
                "   {name}: mean {:.1} ms, p99 {:.1} ms, {:.3} retransmissions/message",
                ms(mean),
                ms(percentile(&l, 0.99)),
                o.retransmissions_per_message()
            ),
            mean,
        )
    };
    let fixed_label = format!("fixed {} ms timeout", s.fixed_timeout.as_millis());
    let (fixed_line, fixed_mean) = describe(&fixed_label, &fixed);
    let (adaptive_line, adaptive_mean) = describe("adaptive timeout", &adaptive);
    r.line(format!(
        "3. seed's loss (--drop 0.2 --ack-drop 0.2), {} messages, default window, {} runs (loss seeds {}..{}):",
        s.lossy,
        LOSSY_SEEDS.end - LOSSY_SEEDS.start,
        LOSSY_SEEDS.start,
        LOSSY_SEEDS.end - 1
    ));
    r.line(fixed_line);
    r.line(adaptive_line);
    let speedup = ms(fixed_mean) / ms(adaptive_mean).max(1e-6);
    let theory = 1.0 / (0.8 * 0.8) - 1.0;
    r.goal(
        "adaptive mean latency speed-up over the fixed timeout",
        format!("{speedup:.0}x"),
        ">= 100x",
        speedup >= 100.0,
    );
    r.goal(
        "retransmissions per message (adaptive) / theory 0.5625",
        format!("{:.2}", adaptive.retransmissions_per_message() / theory),
        "<= 1.3",
        adaptive.retransmissions_per_message() <= 1.3 * theory,
    );
    Ok(())
}

fn run(
    s: &Sizes,
    smoke: bool,
    only: Option<&str>,
    udpchat: Option<&std::path::Path>,
) -> anyhow::Result<Report> {
    let mut r = Report::default();
    let machine = machine::describe();
    r.line(format!("machine: {machine}"));
    match only {
        None => {}
        Some("3") => {
            timer_section(&mut r, s)?;
            return Ok(r);
        }
        Some("9") => {
            product_path(&mut r, s, smoke, udpchat)?;
            return Ok(r);
        }
        Some("10") => {
            fairness_section(&mut r, s, smoke, udpchat)?;
            return Ok(r);
        }
        Some("11") => {
            let bin = udpchat_binary(smoke, udpchat)?;
            history::section(&mut r, s.history_messages, s.repeats, bin.as_deref())?;
            return Ok(r);
        }
        Some("12") => {
            files_section(&mut r, smoke, udpchat)?;
            return Ok(r);
        }
        Some(other) => anyhow::bail!("--only {other}: only sections 3, 9, 10, 11 and 12 run alone"),
    }
    // 6. Memory, measured first, before the other benchmarks have grown the heap.
    // Idle peers first: the queued messages, once freed, would be reused by them.
    let idle = memory::per_idle_peer(s.idle_peers);
    let (queued_kib, peak_kib) = memory::queued(s.queued);
    let memory_line = format!(
        "6. memory: {} 100-byte messages queued in one session: +{queued_kib} KiB (peak RSS so far {peak_kib} KiB); {idle:.1} KiB per connected idle peer ({} sessions)",
        s.queued, s.idle_peers
    );

    // 1. The limit.
    let ping_pong = repeat(s.repeats, || baseline::udp_ping_pong(s.ping_pongs, SIZE))?;
    let one_way = repeat(s.repeats, || baseline::udp_one_way(s.one_way, SIZE))?;
    r.line(format!(
        "1. raw UDP: {ping_pong:.0} ping-pong round trips/s; {one_way:.0} one-way datagrams/s ({SIZE} bytes)"
    ));

    // 2. Stop-and-wait without loss against ping-pong.
    let saw = Config {
        window: 1,
        ..Config::default()
    };
    let saw_rate = repeat(s.repeats, || {
        Ok(measure(&engine(
            saw.clone(),
            ImpairConfig::default(),
            s.stop_and_wait,
            1,
        ))?
        .rate())
    })?;
    r.line(format!(
        "2. stop-and-wait, no loss: {saw_rate:.0} messages/s = {:.2} x raw ping-pong",
        saw_rate / ping_pong
    ));
    r.goal(
        "stop-and-wait / raw ping-pong",
        format!("{:.2}", saw_rate / ping_pong),
        ">= 0.5",
        saw_rate / ping_pong >= 0.5,
    );

    timer_section(&mut r, s)?;

    // 4. The default window against one-way datagrams, without and with 5% loss.
    let clean = repeat(s.repeats, || {
        Ok(measure(&engine(
            Config::default(),
            ImpairConfig::default(),
            s.window,
            2,
        ))?
        .rate())
    })?;
    let five = ImpairConfig {
        loss: 0.05,
        ..ImpairConfig::default()
    };
    let lossy = repeat(s.repeats, || {
        Ok(measure(&engine(Config::default(), five.clone(), s.window, 3))?.rate())
    })?;
    r.line(format!(
        "4. default window ({}), {SIZE}-byte messages: {clean:.0} messages/s = {:.2} x raw one-way datagrams; with 5% loss {lossy:.0}/s = {:.0}% of loss-free",
        udpchat_proto::DEFAULT_WINDOW,
        clean / one_way,
        100.0 * lossy / clean
    ));
    r.goal(
        "default window / raw one-way datagrams",
        format!("{:.2}", clean / one_way),
        ">= 0.5",
        clean / one_way >= 0.5,
    );
    r.goal(
        "5% loss / loss-free rate",
        format!("{:.0}%", 100.0 * lossy / clean),
        ">= 80%",
        lossy / clean >= 0.8,
    );

    // 4b. The window sweep the default was chosen from.
    let mut sweep = Vec::new();
    for window in [8u16, 64, 256, 512, 2040] {
        let config = Config {
            window,
            ..Config::default()
        };
        let free = measure(&engine(
            config.clone(),
            ImpairConfig::default(),
            s.window,
            4,
        ))?
        .rate();
        let lossy = measure(&engine(config, five.clone(), s.window, 5))?.rate();
        sweep.push(format!(
            "window {window}: {free:.0}/s, with 5% loss {lossy:.0}/s ({:.0}%)",
            100.0 * lossy / free
        ));
    }
    r.line(format!(
        "4b. window sweep (one run each): {}",
        sweep.join("; ")
    ));

    // 5. The alternatives.
    let quic = repeat(s.repeats, || baseline::quic(s.streams, SIZE))?;
    let tcp = repeat(s.repeats, || baseline::tcp(s.streams, SIZE))?;
    r.line(format!(
        "5. ordered {SIZE}-byte messages: quinn (one stream) {quic:.0}/s, TCP NODELAY {tcp:.0}/s; udpchat / quinn = {:.2}, udpchat / TCP = {:.2}",
        clean / quic,
        clean / tcp
    ));
    r.goal(
        "udpchat / quinn",
        format!("{:.2}", clean / quic),
        ">= 1.0",
        clean >= quic,
    );

    r.line(memory_line);

    // 7. What encryption costs.
    encryption(&mut r, s, one_way)?;

    // 8. Starts through the program itself.
    match udpchat_binary(smoke, udpchat)? {
        Some(bin) => starts(&mut r, s, &bin)?,
        None => r.line(
            "8. starts through the binary: skipped, udpchat is not built beside the bench (cargo build -p udpchat)"
                .to_owned(),
        ),
    }
    // 9. Lines through the program over pipes.
    product_path(&mut r, s, smoke, udpchat)?;
    // 10. Fairness against TCP at a shared bottleneck.
    fairness_section(&mut r, s, smoke, udpchat)?;
    // 11. A long history opens at once.
    let bin = udpchat_binary(smoke, udpchat)?;
    history::section(&mut r, s.history_messages, s.repeats, bin.as_deref())?;
    files_section(&mut r, smoke, udpchat)?;
    if smoke {
        r.line("smoke run: sizes reduced, goals not judged".to_owned());
    }
    Ok(r)
}

/// The binary sections 8 and 9 measure: the one given with `--udpchat`, else the one of
/// this build (built first in a full run).
/// Section 12, files through the binary: 1 GiB three times (20 MiB once in a smoke run).
fn files_section(
    r: &mut Report,
    smoke: bool,
    udpchat: Option<&std::path::Path>,
) -> anyhow::Result<()> {
    let Some(bin) = udpchat_binary(smoke, udpchat)? else {
        r.line("12. files through the binary: skipped (no udpchat binary)".to_owned());
        return Ok(());
    };
    let (size, runs) = if smoke { (20 << 20, 1) } else { (1 << 30, 3) };
    files::section(r, &bin, size, runs)
}

fn udpchat_binary(
    smoke: bool,
    udpchat: Option<&std::path::Path>,
) -> anyhow::Result<Option<std::path::PathBuf>> {
    match udpchat {
        Some(path) if path.exists() => Ok(Some(path.to_owned())),
        Some(path) => anyhow::bail!("--udpchat {}: no such file", path.display()),
        None => binary::locate(!smoke),
    }
}

/// Section 9, or a line saying why it was skipped.
fn product_path(
    r: &mut Report,
    s: &Sizes,
    smoke: bool,
    udpchat: Option<&std::path::Path>,
) -> anyhow::Result<()> {
    match udpchat_binary(smoke, udpchat)? {
        Some(bin) => product::section(r, s, &bin),
        None => {
            r.line(
                "9. the product path: skipped, udpchat is not built beside the bench (cargo build -p udpchat)"
                    .to_owned(),
            );
            Ok(())
        }
    }
}

/// Section 10, or a line saying why it was skipped.
fn fairness_section(
    r: &mut Report,
    s: &Sizes,
    smoke: bool,
    udpchat: Option<&std::path::Path>,
) -> anyhow::Result<()> {
    const TITLE: &str = "10. fairness against TCP at a shared bottleneck";
    let Some(bin) = udpchat_binary(smoke, udpchat)? else {
        r.line(format!(
            "{TITLE}: skipped, udpchat is not built beside the bench (cargo build -p udpchat)"
        ));
        return Ok(());
    };
    let bench = std::env::current_exe().context("where is the bench's executable")?;
    let d = &s.fairness;
    let f = match fairness::run(&bin, &bench, d)? {
        fairness::Fairness::Skip(reason) => {
            r.line(format!("{TITLE}: skipped, {reason}"));
            return Ok(());
        }
        fairness::Fairness::Ran(f) => f,
    };
    r.line(format!(
        "{TITLE}: {}, three network namespaces (senders in A, a router R, receivers in B), `tc qdisc add dev VETH root tbf {}` on R's link toward B; one TCP flow ({}, 64 KiB writes) and udpchat bulk ({} over pipes, --plain, encrypted, endless {}-byte lines); goodput from the receivers' side over the same {} s after {} s of warm-up (each flow alone: {} s), one run:",
        bin.display(),
        fairness::TBF.join(" "),
        f.congestion_control.as_deref().unwrap_or("congestion control unknown"),
        bin.file_name().map_or("udpchat".into(), |n| n.to_string_lossy()),
        fairness::LINE_BYTES,
        d.measure.as_secs_f64(),
        d.warmup.as_secs_f64(),
        d.alone.as_secs_f64()
    ));
    let mbit = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.2}"));
    let retx = |p: &fairness::Phase| {
        p.stats.map_or("-".to_owned(), |s| {
            format!(
                "{} / {} sent = {:.3} ({} failed)",
                s.retransmissions,
                s.sent,
                s.retransmissions_per_message(),
                s.failed
            )
        })
    };
    let duplicates = |p: &fairness::Phase| {
        p.receiver_stats.map_or("-".to_owned(), |s| {
            format!("{} of {}", s.duplicates, s.received)
        })
    };
    let srtt = |p: &fairness::Phase| {
        p.stats
            .and_then(|s| s.srtt_ms)
            .map_or("-".to_owned(), |ms| format!("{ms:.1}"))
    };
    r.line(
        "   | run | TCP Mbit/s | udpchat Mbit/s | udpchat / TCP | udpchat retransmissions (whole run) | duplicates at the receiver (of received) | udpchat round trip at exit, ms | tbf drops |"
            .to_owned(),
    );
    r.line("   | --- | --- | --- | --- | --- | --- | --- | --- |".to_owned());
    let ratio = f.ratio();
    for (name, p, share) in [
        ("TCP alone", &f.tcp_alone, "-".to_owned()),
        ("udpchat alone", &f.udpchat_alone, "-".to_owned()),
        ("together", &f.together, format!("{ratio:.2}")),
    ] {
        r.line(format!(
            "   | {name} | {} | {} | {share} | {} | {} | {} | {} |",
            mbit(p.tcp_mbit),
            mbit(p.udpchat_mbit),
            retx(p),
            duplicates(p),
            srtt(p),
            p.tbf_drops.map_or("-".to_owned(), |d| d.to_string())
        ));
    }
    let odd: Vec<String> = [
        ("TCP alone", &f.tcp_alone),
        ("udpchat alone", &f.udpchat_alone),
        ("together", &f.together),
    ]
    .iter()
    .flat_map(|(name, p)| p.odd.iter().map(move |o| format!("{name}: {o}")))
    .collect();
    if !odd.is_empty() {
        r.line(format!("   odd: {}", odd.join("; ")));
    }
    r.goal(
        &format!(
            "udpchat / TCP goodput through a shared {} Mbit/s tbf bottleneck",
            fairness::RATE_MBIT
        ),
        format!("{ratio:.2}"),
        &format!("{} to {}", fairness::FAIR.0, fairness::FAIR.1),
        f.fair(),
    );
    Ok(())
}

/// Section 8: two `udpchat` processes started together and apart, with the defaults
/// and with the shortest timeout people use, each typing a line at once.
fn starts(r: &mut Report, s: &Sizes, bin: &std::path::Path) -> anyhow::Result<()> {
    r.line(format!(
        "8. starts through the binary ({}), two processes already acquainted, {} rounds each, one line typed at start (the `delivered` event counts whole milliseconds):",
        bin.display(),
        s.start_rounds
    ));
    let mut worst = Duration::ZERO;
    let mut failed = 0;
    let mut wrong = 0;
    for (stagger, kind) in [
        (Duration::ZERO, "simultaneous".to_owned()),
        (
            s.start_stagger,
            format!("B {} s after A", s.start_stagger.as_secs_f64()),
        ),
    ] {
        for extra in [&[][..], &["--timeout", "50ms"][..]] {
            let got = binary::starts(bin, extra, stagger, s.start_rounds, 10)?;
            let t = &got.acked_after;
            r.line(format!(
                "   {kind}, {}: acknowledged after p50 {:.0} ms, p90 {:.0} ms, max {:.0} ms; {} failed, {} rounds with a line missing or doubled",
                if extra.is_empty() { "defaults".to_owned() } else { extra.join(" ") },
                ms(percentile(t, 0.5)),
                ms(percentile(t, 0.9)),
                ms(percentile(t, 1.0)),
                got.failed,
                got.wrong
            ));
            worst = worst.max(percentile(t, 1.0));
            failed += got.failed;
            wrong += got.wrong;
        }
    }
    r.goal(
        "starts: messages failed or not delivered exactly once",
        format!("{}", failed + wrong as u64),
        "0",
        failed == 0 && wrong == 0,
    );
    r.goal(
        "starts: slowest first message acknowledged after (from typed or the peer's start)",
        format!("{:.0} ms", ms(worst)),
        "<= 100 ms",
        worst <= Duration::from_millis(100),
    );
    Ok(())
}

/// Section 7: encrypted against clear text, the same runs side by side.
fn encryption(r: &mut Report, s: &Sizes, one_way: f64) -> anyhow::Result<()> {
    let (psk, derive) = crypto::passphrase_key()?;
    r.line(format!(
        "7. encryption (ChaCha20-Poly1305 per datagram after a Noise handshake); the passphrase key took {:.0} ms to derive (Argon2id, once per start)",
        ms(derive)
    ));
    let mut rates = Vec::new();
    for (name, security) in crypto::modes(&psk) {
        let run = |config: Config, messages, seed| Run {
            security: security.clone(),
            ..engine(config, ImpairConfig::default(), messages, seed)
        };
        let window = repeat(s.repeats, || {
            Ok(crypto::cost(&run(Config::default(), s.window, 6))?.rate)
        })?;
        let cpu = crypto::cost(&run(Config::default(), s.window, 7))?;
        let saw = Config {
            window: 1,
            ..Config::default()
        };
        let saw_rate = repeat(s.repeats, || {
            Ok(crypto::cost(&run(saw.clone(), s.stop_and_wait, 8))?.rate)
        })?;
        let mut first = Vec::new();
        for seed in 0..s.repeats.max(3) {
            first.push(ms(crypto::first_message(&run(
                Config::default(),
                1,
                9 + seed as u64,
            ))?));
        }
        let first = median(first);
        r.line(format!(
            "   {name}: default window {window:.0} msg/s ({:.2} x raw one-way), {} CPU per message (both ends); stop-and-wait {saw_rate:.0} msg/s; first message acknowledged {first:.1} ms after start",
            window / one_way,
            cpu.cpu_us.map_or("unmeasured".to_owned(), |us| format!("{us:.1} µs"))
        ));
        rates.push((name, window, cpu.cpu_us, saw_rate));
    }
    let count = if s.repeats > 1 { 100_000 } else { 2_000 };
    let big = crypto::seal_open_ns(1171, count)?;
    let small = crypto::seal_open_ns(50, count)?;
    r.line(format!(
        "   seal + open in memory, no sockets: {:.2} µs for a 1171-byte packet, {:.2} µs for 50 bytes",
        big / 1e3,
        small / 1e3
    ));
    let costs = crypto::responder_costs(if s.repeats > 1 { 2_000 } else { 50 })?;
    r.line(format!(
        "   what an initiation costs the responder: {:.1} µs refused at MAC1, {:.1} µs answered with a cookie, {:.1} µs answered in full (Diffie-Hellman)",
        costs.mac1_reject_ns / 1e3,
        costs.cookie_ns / 1e3,
        costs.answer_ns / 1e3
    ));
    if let [(_, clear, clear_cpu, clear_saw), (_, psk_rate, psk_cpu, psk_saw), ..] = rates[..] {
        r.line(format!(
            "   passphrase / clear text: {:.2} x the rate with the default window, {:.2} x stop-and-wait, {} the CPU per message",
            psk_rate / clear,
            psk_saw / clear_saw,
            psk_cpu
                .zip(clear_cpu)
                .map_or("unmeasured".to_owned(), |(e, c)| format!("{:.2} x", e / c.max(1e-9)))
        ));
        r.goal(
            "encrypted / clear-text rate, default window",
            format!("{:.2}", psk_rate / clear),
            ">= 0.8",
            psk_rate / clear >= 0.8,
        );
    }
    Ok(())
}

fn markdown(r: &Report) -> String {
    let mut md = String::from(
        "# Benchmarks\n\nMeasured with `cargo run --release -p udpchat-bench -- --write docs/BENCHMARKS.md` \
         (reproduce with the same command). Every udpchat figure is compared with a baseline \
         measured in the same run on the same loopback; throughput figures are the median of 5 runs, the latency figures (3) and the window sweep (4b) one run each.\n\n",
    );
    md.push_str("## Results\n\n```text\n");
    for l in &r.lines {
        md.push_str(l);
        md.push('\n');
    }
    md.push_str("```\n\n## Goals\n\n| figure | measured | goal | |\n| --- | --- | --- | --- |\n");
    for g in &r.goals {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} |",
            g.what,
            g.value,
            g.target,
            if g.met { "met" } else { "**not met**" }
        );
    }
    md
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // Section 10's helpers, which the bench starts inside network namespaces.
    match args.first().map(String::as_str) {
        Some("tcp-sink") => return fairness::tcp_sink(&args[1..]),
        Some("tcp-source") => return fairness::tcp_source(&args[1..]),
        _ => {}
    }
    let smoke = args.iter().any(|a| a == "--smoke");
    let only = args
        .iter()
        .position(|a| a == "--only")
        .map(|i| {
            args.get(i + 1)
                .map(String::as_str)
                .context("--only needs a section (3, 9, 10, 11 or 12)")
        })
        .transpose()?;
    let udpchat = args
        .iter()
        .position(|a| a == "--udpchat")
        .map(|i| {
            args.get(i + 1)
                .map(std::path::Path::new)
                .context("--udpchat needs a path")
        })
        .transpose()?;
    let write = args
        .iter()
        .position(|a| a == "--write")
        .and_then(|i| args.get(i + 1));
    if let Some(bad) = args.iter().find(|a| {
        a.starts_with("--") && !matches!(a.as_str(), "--smoke" | "--write" | "--only" | "--udpchat")
    }) {
        anyhow::bail!(
            "unknown option {bad} (use --smoke, --write PATH, --only 3, --only 9, --only 10, --only 11, --only 12 or --udpchat PATH)"
        );
    }
    let report = run(if smoke { &SMOKE } else { &FULL }, smoke, only, udpchat)?;
    if let Some(path) = write {
        // The reading of the figures is written by hand below the marker; keep it.
        let old = std::fs::read_to_string(path).unwrap_or_default();
        std::fs::write(path, markdown(&report) + &analysis_of(&old))?;
        println!("wrote {path}");
    }
    Ok(())
}

/// Where the generated part of docs/BENCHMARKS.md ends and the hand-written reading of
/// the figures begins.
const ANALYSIS_MARKER: &str = "<!-- written by hand below; --write keeps it -->";

/// The hand-written part of an existing document, marker included, or just the marker.
fn analysis_of(document: &str) -> String {
    match document.find(ANALYSIS_MARKER) {
        Some(at) => format!("\n{}", &document[at..]),
        None => format!("\n{ANALYSIS_MARKER}\n"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_keeps_the_hand_written_reading() {
        let old = format!("# Benchmarks\nold figures\n{ANALYSIS_MARKER}\nwhy it is so\n");
        assert_eq!(
            analysis_of(&old),
            format!("\n{ANALYSIS_MARKER}\nwhy it is so\n")
        );
        assert_eq!(analysis_of("no marker"), format!("\n{ANALYSIS_MARKER}\n"));
    }
}
