//! `udpchat lab`: the protocol at work, drawn. Two protocol sessions talk through two
//! simulated links in virtual time (the deterministic way the simulator runs them), every
//! datagram, timer and figure is recorded as a [`udpchat_lab::Trace`], and the trace is
//! drawn as a sequence diagram: text for a terminal, SVG, or one self-contained HTML
//! report. Named scenarios reproduce the textbook cases (Kurose–Ross's rdt 3.0: no loss,
//! a lost packet, a lost ACK, a premature timeout), a window with selective repeat, and
//! a restart; or choose the impairments yourself. `--from-trace` draws what `--trace`
//! wrote in real runs.
//!
//! Every arrow is a datagram the sessions really sent: nothing is drawn that the trace
//! does not hold.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use udpchat_impair::{ImpairConfig, Impairment, PacketClass};
use udpchat_lab::{EventKind, PacketId, Side, Trace};

use crate::trace::{fired_timers, Figures};
use udpchat_proto::wire::{classify, Classification, Frame, Packet, Payload};
use udpchat_proto::{Config, Event, RtoPolicy, Session};

/// The named scenarios.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Named {
    /// rdt 3.0, no loss: stop-and-wait, each message acknowledged before the next.
    NoLoss,
    /// rdt 3.0, a lost packet: the second message is lost; the timer sends it again.
    LostPacket,
    /// rdt 3.0, a lost ACK: the second acknowledgement is lost; the timer resends the
    /// message and the receiver, which has it, acknowledges the duplicate.
    LostAck,
    /// rdt 3.0, a premature timeout: the timer is shorter than the round trip, so every
    /// message is sent twice and the second copy is a duplicate.
    PrematureTimeout,
    /// A window of 4 with the third message lost: selective repeat sends only that one
    /// again (go-back-N would resend it and everything after it).
    SelectiveRepeat,
    /// The receiver crashes after the second message and starts again: the sender sends
    /// the unacknowledged ones to the new run.
    Restart,
}

/// `udpchat lab`'s options.
#[derive(Clone, Debug, clap::Args)]
pub(crate) struct LabArgs {
    /// A named scenario; the options below change it, or describe a run of their own.
    #[arg(long, value_enum)]
    pub(crate) scenario: Option<Named>,
    /// Messages A sends to B.
    #[arg(long, value_name = "N")]
    pub(crate) messages: Option<usize>,
    /// Loss of A's messages on the way to B, 0 to 1.
    #[arg(long, value_name = "P", allow_negative_numbers = true)]
    pub(crate) drop: Option<f64>,
    /// Loss of B's acknowledgements on the way to A, 0 to 1.
    #[arg(long, value_name = "P", allow_negative_numbers = true)]
    pub(crate) ack_drop: Option<f64>,
    /// Share of datagrams the links duplicate, 0 to 1.
    #[arg(long, value_name = "P", allow_negative_numbers = true)]
    pub(crate) dup: Option<f64>,
    /// Share of datagrams the links hold back (reorder), 0 to 1.
    #[arg(long, value_name = "P", allow_negative_numbers = true)]
    pub(crate) reorder: Option<f64>,
    /// Share of datagrams the links corrupt (the checksum catches them), 0 to 1.
    #[arg(long, value_name = "P", allow_negative_numbers = true)]
    pub(crate) corrupt: Option<f64>,
    /// One-way delay of each link (e.g. 50ms).
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub(crate) delay: Option<Duration>,
    /// Messages in flight at most (1: stop-and-wait).
    #[arg(long, value_name = "N")]
    pub(crate) window: Option<u16>,
    /// A fixed retransmission timeout (without it: the adaptive one).
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub(crate) timeout: Option<Duration>,
    /// Seed of the simulated links.
    #[arg(long, value_name = "N")]
    pub(crate) seed: Option<u64>,
    /// Draw the trace(s) that `udpchat --trace FILE` wrote (one file per side, or one)
    /// instead of simulating.
    #[arg(long, value_name = "FILE", num_args = 1..=2)]
    pub(crate) from_trace: Vec<PathBuf>,
    /// Write the HTML report here (one file, viewable offline).
    #[arg(long, value_name = "FILE.html")]
    pub(crate) out: Option<PathBuf>,
    /// Write the SVG diagram here.
    #[arg(long, value_name = "FILE.svg")]
    pub(crate) svg: Option<PathBuf>,
    /// Write the trace here, as qlog JSON-SEQ.
    #[arg(long, value_name = "FILE.qlog")]
    pub(crate) qlog: Option<PathBuf>,
    /// Print the diagram as text (the default when no file is asked for).
    #[arg(long)]
    pub(crate) text: bool,
    /// Width of the text diagram.
    #[arg(long, value_name = "COLUMNS", default_value_t = 72)]
    pub(crate) width: usize,
}

/// What one lab run does, once the name and the options are put together.
#[derive(Clone, Debug)]
struct Setup {
    title: String,
    messages: usize,
    protocol: Config,
    /// A → B and B → A.
    links: [ImpairConfig; 2],
    seed: u64,
    /// A's DATA datagrams (counted from 1) the A → B link loses whatever its settings.
    lose_data: Vec<usize>,
    /// B's ACK datagrams (counted from 1) the B → A link loses.
    lose_acks: Vec<usize>,
    /// B crashes once it has shown this many messages, and starts again.
    restart_b_after: Option<usize>,
    /// Spaces after each message's name (`m0`), to make it that long.
    pad: usize,
}

impl Setup {
    fn from_args(args: &LabArgs) -> anyhow::Result<Self> {
        let textbook = |title: &str| Self {
            title: title.to_owned(),
            messages: 3,
            protocol: Config {
                window: 1,
                rto: RtoPolicy::Fixed(Duration::from_millis(300)),
                keepalive: None,
                ..Config::default()
            },
            links: [
                link(Duration::from_millis(50)),
                link(Duration::from_millis(50)),
            ],
            seed: 1,
            lose_data: Vec::new(),
            lose_acks: Vec::new(),
            restart_b_after: None,
            pad: 0,
        };
        let mut setup = match args.scenario {
            None => Self {
                title: "udpchat lab".to_owned(),
                messages: 10,
                protocol: Config {
                    keepalive: None,
                    ..Config::default()
                },
                ..textbook("")
            },
            Some(Named::NoLoss) => textbook("rdt 3.0: no loss"),
            Some(Named::LostPacket) => Self {
                lose_data: vec![2],
                ..textbook("rdt 3.0: a lost packet")
            },
            Some(Named::LostAck) => Self {
                lose_acks: vec![2],
                ..textbook("rdt 3.0: a lost ACK")
            },
            Some(Named::PrematureTimeout) => {
                let mut s = textbook("rdt 3.0: a premature timeout");
                s.messages = 2;
                s.protocol.rto = RtoPolicy::Fixed(Duration::from_millis(80));
                s
            }
            Some(Named::SelectiveRepeat) => {
                let mut s = textbook("a window of 4, selective repeat");
                s.messages = 8;
                s.protocol.window = 4;
                // One message per datagram, as in the textbook (udpchat packs them):
                // the smallest datagram, and messages longer than half of it.
                s.protocol.max_datagram = udpchat_proto::MIN_DATAGRAM;
                s.pad = udpchat_proto::wire::MAX_NICK_LEN - 4;
                s.lose_data = vec![3];
                s
            }
            Some(Named::Restart) => Self {
                messages: 5,
                restart_b_after: Some(2),
                protocol: Config {
                    window: 4,
                    rto: RtoPolicy::Fixed(Duration::from_millis(300)),
                    keepalive: None,
                    // One message per datagram, so the crash falls after the second.
                    max_datagram: udpchat_proto::MIN_DATAGRAM,
                    ..Config::default()
                },
                pad: udpchat_proto::wire::MAX_NICK_LEN - 4,
                ..textbook(
                    "the receiver restarts (no store: what its first run showed comes again)",
                )
            },
        };
        if let Some(n) = args.messages {
            setup.messages = n;
        }
        if let Some(w) = args.window {
            anyhow::ensure!(w >= 1, "--window must be at least 1");
            setup.protocol.window = w;
        }
        if let Some(t) = args.timeout {
            setup.protocol.rto = RtoPolicy::Fixed(t.max(Duration::from_millis(1)));
        }
        if let Some(seed) = args.seed {
            setup.seed = seed;
        }
        let probability = |name: &str, p: Option<f64>| -> anyhow::Result<Option<f64>> {
            match p {
                Some(p) if !(0.0..=1.0).contains(&p) => {
                    anyhow::bail!("{name} must be from 0 to 1, not {p}")
                }
                other => Ok(other),
            }
        };
        for l in &mut setup.links {
            if let Some(d) = args.delay {
                l.delay = d;
            }
            if let Some(p) = probability("--dup", args.dup)? {
                l.duplicate = p;
            }
            if let Some(p) = probability("--reorder", args.reorder)? {
                l.reorder = p;
                l.reorder_delay = l.delay.max(Duration::from_millis(10));
            }
            if let Some(p) = probability("--corrupt", args.corrupt)? {
                l.corrupt = p;
            }
        }
        if let Some(p) = probability("--drop", args.drop)? {
            setup.links[0].data_loss = p;
        }
        if let Some(p) = probability("--ack-drop", args.ack_drop)? {
            setup.links[1].ack_loss = p;
        }
        Ok(setup)
    }
}

/// A link with this one-way delay and nothing else.
fn link(delay: Duration) -> ImpairConfig {
    ImpairConfig {
        delay,
        ..ImpairConfig::default()
    }
}

const ADDR_A: SocketAddr = SocketAddr::V4(std::net::SocketAddrV4::new(
    std::net::Ipv4Addr::new(10, 0, 0, 1),
    12000,
));
const ADDR_B: SocketAddr = SocketAddr::V4(std::net::SocketAddrV4::new(
    std::net::Ipv4Addr::new(10, 0, 0, 2),
    12000,
));

/// How long a lab run may take in virtual time before it is cut.
const LAB_DEADLINE: Duration = Duration::from_secs(120);

/// What a datagram carries, for its arrow's label: `DATA seq 3`, `ACK 4 +sack`, `HELLO`.
pub(crate) struct Described {
    pub(crate) summary: String,
    pub(crate) seqs: Vec<u64>,
    pub(crate) ack: Option<u64>,
    /// The run it was sent to (0 before the peer's is known).
    pub(crate) dst_epoch: u64,
}

/// The DATA frames a side has sent, by (peer run, seq): a datagram whose every message
/// went before is a retransmission.
#[derive(Debug, Default)]
pub(crate) struct SentSeqs(std::collections::HashMap<u64, u64>);

impl SentSeqs {
    /// Records what `d` carries; true if all of it was sent before. A sender numbers
    /// messages in the order it first sends them, so "sent before" is "below the next
    /// new number toward that run": one number per peer run, however long the run (a
    /// set of every number sent grew with the conversation and cost a tenth of the
    /// rate of a traced run).
    pub(crate) fn is_retransmission(&mut self, d: &Described) -> bool {
        let next = self.0.entry(d.dst_epoch).or_insert(0);
        let again = !d.seqs.is_empty() && d.seqs.iter().all(|&seq| seq < *next);
        if let Some(&highest) = d.seqs.iter().max() {
            *next = (*next).max(highest.saturating_add(1));
        }
        again
    }
}

/// Describes a protocol packet (the plaintext inside the encryption, if any).
/// `trailer` says whether it travelled inside the encryption (PROTOCOL.md §9.2): in the
/// clear a damaged packet stays undecodable, as the session found it.
pub(crate) fn describe(bytes: &[u8], trailer: udpchat_proto::wire::Trailer) -> Described {
    let Ok(packet) = Packet::decode_with(bytes, trailer) else {
        return Described {
            summary: "undecodable".to_owned(),
            seqs: Vec::new(),
            ack: None,
            dst_epoch: 0,
        };
    };
    let mut parts: Vec<String> = Vec::new();
    let mut seqs = Vec::new();
    let mut ack = None;
    for frame in &packet.frames {
        match frame {
            Frame::Data { seq, payload, .. } => {
                seqs.push(*seq);
                let what = match payload {
                    Payload::Nick(_) => "NICK",
                    Payload::Done => "DONE",
                    _ => "DATA",
                };
                if seqs.len() == 1 {
                    parts.push(format!("{what} seq {seq}"));
                }
            }
            Frame::Ack(a) => {
                ack = Some(a.cumulative);
                let sack = if a.sack.as_bytes().iter().any(|&b| b != 0) {
                    " +sack"
                } else {
                    ""
                };
                parts.push(format!("ACK {}{sack}", a.cumulative));
            }
            Frame::Hello => parts.push("HELLO".to_owned()),
            Frame::Skip { below } => parts.push(format!("SKIP {below}")),
            Frame::Ping { .. } => parts.push("PING".to_owned()),
            Frame::Pong { .. } => parts.push("PONG".to_owned()),
            Frame::Close { .. } => parts.push("CLOSE".to_owned()),
        }
    }
    if seqs.len() > 1 {
        let (first, last) = (seqs[0], seqs[seqs.len() - 1]);
        if let Some(p) = parts.iter_mut().find(|p| p.contains(" seq ")) {
            *p = format!("DATA seq {first}–{last}");
        }
    }
    Described {
        summary: parts.join(" + "),
        seqs,
        ack,
        dst_epoch: packet.dst_epoch,
    }
}

/// One endpoint of a lab run.
struct Endpoint {
    side: Side,
    session: Session,
    /// Sequence numbers this run has sent toward each peer epoch: a second send is a
    /// retransmission.
    sent_seqs: SentSeqs,
    /// DATA and ACK datagrams sent so far (for the scripted losses).
    data_sent: usize,
    acks_sent: usize,
    timeouts: u64,
    probes: u64,
    figures: Option<Figures>,
}

impl Endpoint {
    fn new(side: Side, epoch: u64, peer: SocketAddr, protocol: &Config, now: Instant) -> Self {
        Self {
            side,
            session: Session::new(protocol.clone(), epoch, peer, now),
            sent_seqs: SentSeqs::default(),
            data_sent: 0,
            acks_sent: 0,
            timeouts: 0,
            probes: 0,
            figures: None,
        }
    }
}

/// The seed of one link, from the run's (SplitMix64, as the simulator derives its own).
fn link_seed(seed: u64, link: u64) -> u64 {
    let mut z = seed ^ link.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Marks the timers of `end` that fired since the last look.
fn note_timers(end: &mut Endpoint, trace: &mut Trace, at_us: u64) {
    let stats = *end.session.stats();
    for timer in fired_timers(&stats, &mut end.timeouts, &mut end.probes) {
        trace.push(
            at_us,
            EventKind::TimerFired {
                side: end.side,
                timer,
            },
        );
    }
}

/// Runs `setup` and returns its trace.
fn simulate(setup: &Setup) -> Trace {
    let t0 = Instant::now();
    let us = |now: Instant| {
        u64::try_from(now.saturating_duration_since(t0).as_micros()).unwrap_or(u64::MAX)
    };
    let mut trace = Trace::new();
    let mut a = Endpoint::new(Side::A, 0xA1, ADDR_B, &setup.protocol, t0);
    let mut b = Endpoint::new(Side::B, 0xB1, ADDR_A, &setup.protocol, t0);
    let mut links: [Impairment<PacketId>; 2] = [
        Impairment::new(setup.links[0].clone(), link_seed(setup.seed, 1)),
        Impairment::new(setup.links[1].clone(), link_seed(setup.seed, 2)),
    ];
    let mut next_id: PacketId = 1;
    let mut texts: BTreeMap<udpchat_proto::MessageId, String> = BTreeMap::new();
    let mut accepted = 0u64;
    for i in 0..setup.messages {
        let text = format!("m{i}{}", " ".repeat(setup.pad));
        if let Ok(id) = a.session.send(t0, text.clone()) {
            texts.insert(id, text);
            accepted += 1;
        }
    }
    let mut shown_by_b = 0usize;
    let mut restart_after = setup.restart_b_after;
    // B has shown its `restart_after`-th message: it crashes before doing anything else.
    let mut crash_b = false;
    let mut now = t0;
    let deadline = t0 + LAB_DEADLINE;
    loop {
        a.session.handle_timeout(now);
        b.session.handle_timeout(now);
        // The timer's mark before what it sent.
        note_timers(&mut a, &mut trace, us(now));
        note_timers(&mut b, &mut trace, us(now));
        loop {
            let mut moved = false;
            let [ab, ba] = &mut links;
            for (end, link) in [(&mut a, ab), (&mut b, ba)] {
                while let Some(t) = end.session.poll_transmit() {
                    moved = true;
                    let id = next_id;
                    next_id += 1;
                    let d = describe(&t.payload, udpchat_proto::wire::Trailer::Crc32c);
                    let retransmission = end.sent_seqs.is_retransmission(&d);
                    let class = match classify(&t.payload) {
                        Classification::Data { .. } => PacketClass::Data,
                        Classification::Ack { .. } => PacketClass::Ack,
                        _ => PacketClass::Control,
                    };
                    let scripted = match (end.side, class) {
                        (Side::A, PacketClass::Data) => {
                            end.data_sent += 1;
                            setup.lose_data.contains(&end.data_sent)
                        }
                        (Side::B, PacketClass::Ack) => {
                            end.acks_sent += 1;
                            setup.lose_acks.contains(&end.acks_sent)
                        }
                        _ => false,
                    };
                    trace.push(
                        us(now),
                        EventKind::PacketSent {
                            side: end.side,
                            packet_id: id,
                            summary: d.summary,
                            seqs: d.seqs,
                            ack: d.ack,
                            retransmission,
                            bytes: u64::try_from(t.payload.len()).unwrap_or(u64::MAX),
                        },
                    );
                    if scripted {
                        trace.push(
                            us(now),
                            EventKind::PacketDropped {
                                packet_id: id,
                                reason: udpchat_lab::trace::REASON_SIMULATED_LOSS.to_owned(),
                            },
                        );
                        continue;
                    }
                    let fate = link.handle_input(now, class, t.payload, id);
                    if fate.dropped.is_some() {
                        trace.push(
                            us(now),
                            EventKind::PacketDropped {
                                packet_id: id,
                                reason: udpchat_lab::trace::REASON_SIMULATED_LOSS.to_owned(),
                            },
                        );
                    }
                }
            }
            let [ab, ba] = &mut links;
            for (to, link, from) in [(&mut b, ab, ADDR_A), (&mut a, ba, ADDR_B)] {
                while let Some((id, bytes)) = link.poll_output(now) {
                    moved = true;
                    trace.push(
                        us(now),
                        EventKind::PacketReceived {
                            side: to.side,
                            packet_id: id,
                        },
                    );
                    to.session.handle_datagram(now, from, &bytes);
                    if to.side == Side::B && restart_after.is_some() {
                        // One datagram at a time while B is to crash: it crashes right
                        // after the message it counts, with the rest still on the way.
                        break;
                    }
                }
            }
            for end in [&mut a, &mut b] {
                while let Some(event) = end.session.poll_event() {
                    match event {
                        Event::Delivered { id, seq, .. } => trace.push(
                            us(now),
                            EventKind::Delivered {
                                side: end.side,
                                seq,
                                text: texts
                                    .get(&id)
                                    .map(|t| t.trim_end().to_owned())
                                    .unwrap_or_default(),
                            },
                        ),
                        Event::Received { seq, text, .. } => {
                            if end.side == Side::B {
                                shown_by_b += 1;
                                if restart_after == Some(shown_by_b) {
                                    crash_b = true;
                                }
                            }
                            trace.push(
                                us(now),
                                EventKind::Shown {
                                    side: end.side,
                                    seq,
                                    text: text.trim_end().to_owned(),
                                },
                            );
                        }
                        Event::Rejected { reason } => trace.push(
                            us(now),
                            EventKind::Note {
                                side: Some(end.side),
                                text: format!("rejected: {reason}"),
                            },
                        ),
                        Event::PeerRestarted { resent, .. } => trace.push(
                            us(now),
                            EventKind::Note {
                                side: Some(end.side),
                                text: format!("the peer restarted: {resent} message(s) sent again"),
                            },
                        ),
                        _ => {}
                    }
                }
                note_timers(end, &mut trace, us(now));
                let figures = Figures::of(&end.session);
                if end.figures != Some(figures) {
                    end.figures = Some(figures);
                    trace.push(us(now), figures.event(end.side));
                }
            }
            if crash_b {
                crash_b = false;
                restart_after = None;
                b = Endpoint::new(Side::B, 0xB2, ADDR_A, &setup.protocol, now);
                trace.push(
                    us(now),
                    EventKind::Note {
                        side: Some(Side::B),
                        text: "B crashes and starts again".to_owned(),
                    },
                );
                moved = true;
            }
            if !moved {
                break;
            }
        }
        let stats = a.session.stats();
        let all_delivered = stats.messages_delivered + stats.messages_failed >= accepted;
        let quiet = links.iter().all(|l| l.pending() == 0);
        if (all_delivered && quiet && restart_after.is_none()) || now >= deadline {
            break;
        }
        let next = [
            a.session.poll_timeout(),
            b.session.poll_timeout(),
            links[0].poll_timeout(),
            links[1].poll_timeout(),
        ]
        .into_iter()
        .flatten()
        .min();
        match next {
            Some(t) => now = t.max(now).min(deadline),
            None => break,
        }
    }
    trace
}

/// `udpchat lab`: simulates (or reads `--from-trace`) and draws.
///
/// # Errors
/// A bad option, an unreadable or invalid trace file, a file that cannot be written.
pub(crate) fn run(args: &LabArgs) -> anyhow::Result<()> {
    let (trace, title) = if args.from_trace.is_empty() {
        let setup = Setup::from_args(args)?;
        (simulate(&setup), setup.title)
    } else {
        let texts = args
            .from_trace
            .iter()
            .map(|p| {
                std::fs::read_to_string(p)
                    .with_context(|| format!("cannot read the trace {}", p.display()))
            })
            .collect::<anyhow::Result<Vec<String>>>()?;
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        if let [one] = refs.as_slice() {
            let file = udpchat_lab::read_qlog(one)
                .map_err(|e| anyhow::anyhow!("cannot draw the trace: {e}"))?;
            if file.vantage.kind != udpchat_lab::qlog::VantageKind::Network {
                // One endpoint's file: its sends have no arrivals to meet.
                eprintln!(
                    "udpchat: warning: one endpoint's trace: what it sent is drawn as lost, since the other side's arrivals are not in it (give both sides' files)"
                );
            }
        }
        let trace = udpchat_lab::read_traces(&refs)
            .map_err(|e| anyhow::anyhow!("cannot draw the trace: {e}"))?;
        let names: Vec<String> = args
            .from_trace
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        (trace, format!("udpchat trace: {}", names.join(" + ")))
    };
    let write = |path: &PathBuf, what: &str, text: String| -> anyhow::Result<()> {
        std::fs::write(path, text)
            .with_context(|| format!("cannot write the {what} to {}", path.display()))
    };
    if let Some(path) = &args.out {
        write(path, "report", udpchat_lab::render_html(&trace, &title))?;
    }
    if let Some(path) = &args.svg {
        write(path, "diagram", udpchat_lab::render_svg(&trace))?;
    }
    if let Some(path) = &args.qlog {
        write(
            path,
            "trace",
            udpchat_lab::write_qlog(&trace, &title, udpchat_lab::Scope::Both),
        )?;
    }
    let nothing_else = args.out.is_none() && args.svg.is_none() && args.qlog.is_none();
    if args.text || nothing_else {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        writeln!(out, "{title}")?;
        write!(
            out,
            "{}",
            udpchat_lab::render_text(&trace, args.width.max(40))
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use udpchat_lab::Flow;

    fn args(scenario: Named) -> LabArgs {
        LabArgs {
            scenario: Some(scenario),
            messages: None,
            drop: None,
            ack_drop: None,
            dup: None,
            reorder: None,
            corrupt: None,
            delay: None,
            window: None,
            timeout: None,
            seed: None,
            from_trace: Vec::new(),
            out: None,
            svg: None,
            qlog: None,
            text: true,
            width: 72,
        }
    }

    fn flow_of(scenario: Named) -> (Trace, Flow) {
        let trace = simulate(&Setup::from_args(&args(scenario)).unwrap());
        let flow = Flow::of(&trace);
        (trace, flow)
    }

    fn count(trace: &Trace, pred: impl Fn(&EventKind) -> bool) -> usize {
        trace.events.iter().filter(|e| pred(&e.kind)).count()
    }

    #[test]
    fn the_four_rdt_cases_show_what_the_textbook_shows() {
        let shown = |t: &Trace| count(t, |k| matches!(k, EventKind::Shown { side: Side::B, .. }));
        let retx = |t: &Trace| {
            count(t, |k| {
                matches!(
                    k,
                    EventKind::PacketSent {
                        retransmission: true,
                        ..
                    }
                )
            })
        };
        let lost = |f: &Flow| f.packets.iter().filter(|p| p.lost()).count();
        let (t, f) = flow_of(Named::NoLoss);
        assert_eq!((shown(&t), retx(&t), lost(&f)), (3, 0, 0));
        let (t, f) = flow_of(Named::LostPacket);
        assert_eq!((shown(&t), retx(&t), lost(&f)), (3, 1, 1));
        let (t, f) = flow_of(Named::LostAck);
        assert_eq!((shown(&t), retx(&t), lost(&f)), (3, 1, 1));
        let (t, f) = flow_of(Named::PrematureTimeout);
        assert_eq!(shown(&t), 2, "each shown once");
        assert!(retx(&t) >= 2 && lost(&f) == 0);
        let (t, _) = flow_of(Named::SelectiveRepeat);
        assert_eq!(shown(&t), 8);
        assert_eq!(retx(&t), 1, "only the lost one again");
        let (t, _) = flow_of(Named::Restart);
        assert!(
            shown(&t) >= 5,
            "every message shown by one run or the other"
        );
    }

    #[test]
    fn a_described_packet_says_what_it_carries() {
        let (trace, _) = flow_of(Named::NoLoss);
        let summaries: Vec<&str> = trace
            .events
            .iter()
            .filter_map(|e| match &e.kind {
                EventKind::PacketSent { summary, .. } => Some(summary.as_str()),
                _ => None,
            })
            .collect();
        assert!(summaries.contains(&"DATA seq 0"), "{summaries:?}");
        assert!(
            summaries.iter().any(|s| s.starts_with("ACK 1")),
            "{summaries:?}"
        );
    }
}
