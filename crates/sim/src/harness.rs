//! Two protocol endpoints, one impairment per direction between them, and virtual time.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use std::sync::OnceLock;

use udpchat_impair::{ImpairConfig, Impairment, PacketClass};
use udpchat_proto::wire::Classification;
use udpchat_proto::{Config, Event, MessageId};
use udpchat_secure::{
    derive_psk_with, Identity, InviteCode, KdfParams, Psk, SecureConfig, SecureEvent, Trust,
};
use udpchat_stack::{Security, Stack, StackEvent};

use crate::outcome::{Outcome, SideOutcome};
use crate::trace::Trace;

/// One simulated run, fully determined by this value and its seed.
#[derive(Clone, Debug)]
pub struct Scenario {
    /// A short name for reports.
    pub name: String,
    /// Protocol settings of both endpoints.
    pub protocol: Config,
    /// Impairment of each direction until the network heals.
    pub link: ImpairConfig,
    /// Messages each side sends; both directions run at once.
    pub messages: usize,
    /// Time between one message and the next on each side; zero queues them all at once.
    pub send_interval: Duration,
    /// Virtual time at which the network heals (the impairment is switched off).
    pub heal_at: Duration,
    /// How long after healing everything must have been delivered (liveness bound).
    pub settle: Duration,
    /// If set, side B crashes once it has shown this many messages, and a new run of it
    /// starts in its place on the same address.
    pub restart_b_after: Option<usize>,
    /// If set, nothing crosses the network from the first time to the second.
    pub partition: Option<(Duration, Duration)>,
    /// When side B starts (zero: with A). Until then nothing runs there: what A sends it
    /// is lost, as on a machine where udpchat is not running yet.
    pub b_starts_at: Duration,
    /// Each side ends its stream once it has offered all its messages (end of input,
    /// [`Stack::finish`]) and leaves when the goodbye says so ([`Stack::is_finished`],
    /// then [`Stack::close`]); the run ends when both have left. Otherwise the run ends
    /// when both sides are idle.
    pub goodbye: bool,
    /// If set, side B stalls from the first time to the second (a descheduled or stopped
    /// process): it handles no datagram and no timer; what arrives meanwhile waits in its
    /// socket and is handled, in order, when it resumes.
    pub stall_b: Option<(Duration, Duration)>,
    /// Whether the endpoints encrypt, as the real program does by default. The
    /// impairment then acts on ciphertext: a corrupted datagram must fail
    /// authentication, a duplicate must be caught by the replay window.
    pub security: SimSecurity,
    /// Bytes of a file A sends B beside the chat (PROTOCOL.md §6c); 0 for none. B
    /// accepts it, and after a restart resumes from what it had.
    pub file: usize,
}

impl Scenario {
    /// The same scenario with the endpoints protecting their datagrams as `security`
    /// says; the name says so too.
    #[must_use]
    pub fn with_security(self, security: SimSecurity) -> Self {
        Self {
            name: format!("{} [{}]", self.name, security.name()),
            security,
            ..self
        }
    }
}

/// How the simulated endpoints protect their datagrams.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SimSecurity {
    /// The protocol in the clear (`--plaintext`).
    #[default]
    Plaintext,
    /// Encrypted; each side has the other's key pinned (every session after the first
    /// contact, and the program's default).
    Pinned,
    /// Encrypted; a first contact by an invitation code (SPAKE2) that both sides hold.
    /// A side that restarts has the other's key pinned by then.
    Code,
    /// Encrypted; a first contact by a shared passphrase.
    Passphrase,
}

impl SimSecurity {
    /// A short name for reports.
    pub fn name(self) -> &'static str {
        match self {
            Self::Plaintext => "plaintext",
            Self::Pinned => "pinned",
            Self::Code => "code",
            Self::Passphrase => "passphrase",
        }
    }
}

/// The long-term identity of side A (`false`) or B (`true`).
fn identity(b: bool) -> Identity {
    Identity::from_private(if b { [0xB2; 32] } else { [0xA1; 32] })
}

/// The passphrase key, derived once for all runs (cheap parameters: the simulation
/// tests the protocol, not Argon2).
fn sim_psk() -> Option<Psk> {
    static PSK: OnceLock<Option<Psk>> = OnceLock::new();
    PSK.get_or_init(|| {
        derive_psk_with(b"simulated passphrase", None, KdfParams::INSECURE_TEST_ONLY).ok()
    })
    .clone()
}

/// The stack of one simulated endpoint (`b`: side B), started at `now` (virtual) with
/// `epoch`; `restarted` for a new run of a side that crashed.
fn new_stack(
    scenario: &Scenario,
    b: bool,
    epoch: u64,
    peer: SocketAddr,
    now: Instant,
    restarted: bool,
) -> Stack {
    let security = match scenario.security {
        SimSecurity::Plaintext => Security::Plaintext,
        mode => {
            let mut rng_seed = [0u8; 32];
            rng_seed[..8].copy_from_slice(&epoch.to_le_bytes());
            let other = identity(!b).public();
            let mut config = SecureConfig::new(identity(b));
            match mode {
                SimSecurity::Passphrase => config.psk = sim_psk(),
                // After a first contact the keys are pinned on disk: a new run has them.
                SimSecurity::Code if !restarted => {
                    config.code = InviteCode::parse("7-ribbon-tunnel").ok();
                }
                _ => {
                    config.trust = Trust {
                        pinned: [other].into_iter().collect(),
                        expected: Some(other),
                    };
                }
            }
            Security::Encrypted {
                config: Box::new(config),
                rng_seed,
            }
        }
    };
    Stack::new(scenario.protocol.clone(), security, epoch, Some(peer), now)
}

/// The address of side A, as B sees it.
const ADDR_A: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 1);
/// The address of side B, as A sees it.
const ADDR_B: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 2);

/// An endpoint and what it observed.
struct Side {
    stack: Stack,
    /// Texts of the messages this side queued, by id.
    sent: BTreeMap<MessageId, String>,
    /// Virtual time of the first transmission of each message.
    first_sent_at: BTreeMap<MessageId, Instant>,
    /// Messages offered to the session so far.
    offered: usize,
    /// It has left (goodbye scenarios).
    closed: bool,
    /// Its goodbye is over; it leaves after its events are drained.
    leaving: bool,
    /// Every message it will send has been offered: its input has ended.
    offered_all: bool,
    outcome: SideOutcome,
    /// Its file transfers (both sides, if the scenario has a file: A sends, B takes).
    files: Option<crate::file::SimFiles>,
    /// It is to receive a file (side B, if the scenario has one).
    expects_file: bool,
}

impl Side {
    fn new(stack: Stack) -> Self {
        Self {
            stack,
            sent: BTreeMap::new(),
            first_sent_at: BTreeMap::new(),
            offered: 0,
            closed: false,
            leaving: false,
            offered_all: false,
            outcome: SideOutcome::default(),
            files: None,
            expects_file: false,
        }
    }
}

/// Derives an independent, reproducible stream id from the run seed (SplitMix64), for
/// every random choice a simulation makes besides the link's.
#[must_use]
pub fn sub_seed(seed: u64, stream: u64) -> u64 {
    // SplitMix64 finaliser: cheap and well mixed, so streams of neighbouring seeds differ.
    let mut z = seed ^ stream.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Runs `scenario` with `seed` and reports what each side saw. Never panics on protocol
/// misbehaviour: that is for the caller to judge with [`Outcome::violations`].
pub fn run(scenario: &Scenario, seed: u64) -> Outcome {
    let t0 = Instant::now();
    let epoch_a = sub_seed(seed, 1) | 1;
    let epoch_b = sub_seed(seed, 2) | 1;
    let mut a = Side::new(new_stack(scenario, false, epoch_a, ADDR_B, t0, false));
    let work = (scenario.file > 0).then(|| crate::file::WorkDir::new(seed));
    if let Some(work) = &work {
        a.files = Some(crate::file::SimFiles::sender(
            work,
            scenario.file,
            sub_seed(seed, 6),
            &mut a.stack,
            t0,
        ));
    }
    let mut b = Side::new(new_stack(scenario, true, epoch_b, ADDR_A, t0, false));
    b.expects_file = scenario.file > 0;
    b.files = work.as_ref().map(crate::file::SimFiles::receiver);
    let mut ab: Impairment<()> = Impairment::new(scenario.link.clone(), sub_seed(seed, 3));
    let mut ba: Impairment<()> = Impairment::new(scenario.link.clone(), sub_seed(seed, 4));
    let mut trace = Trace::default();

    let b_starts = t0 + scenario.b_starts_at;
    let mut b_running = b_starts <= t0;
    let heal_at = t0 + scenario.heal_at;
    let deadline = heal_at + scenario.settle;
    let mut restart_after = scenario.restart_b_after;
    let mut partition_starts = scenario.partition.map(|(start, _)| t0 + start);
    let mut partition_ends = scenario.partition.map(|(_, end)| t0 + end);
    let mut healed = false;
    let mut now = t0;
    let stall = scenario.stall_b.map(|(from, to)| (t0 + from, t0 + to));
    let stalled = |now: Instant| stall.is_some_and(|(from, to)| now >= from && now < to);
    let mut socket_b: Vec<Vec<u8>> = Vec::new();
    loop {
        if !healed && now >= heal_at && partition_ends.is_none() {
            healed = true;
            ab.set_config(healed_link(&scenario.link));
            ba.set_config(healed_link(&scenario.link));
        }
        if partition_starts.is_some_and(|at| now >= at) {
            partition_starts = None;
            let cut = ImpairConfig {
                partitioned: true,
                ..ab.config().clone()
            };
            ab.set_config(cut.clone());
            ba.set_config(cut);
            trace.note(now.saturating_duration_since(t0), "partition");
        }
        if partition_starts.is_none() && partition_ends.is_some_and(|at| now >= at) {
            partition_ends = None;
            let link = if healed {
                healed_link(&scenario.link)
            } else {
                scenario.link.clone()
            };
            ab.set_config(link.clone());
            ba.set_config(link);
            trace.note(now.saturating_duration_since(t0), "partition ends");
        }
        if restart_after.is_some_and(|n| b.outcome.received.len() >= n) {
            restart_after = None;
            // The crash loses everything B held in memory; the new run keeps only what a
            // person would still see: the messages it had already shown.
            let epoch = sub_seed(seed, 5) | 1;
            let mut reborn = Side::new(new_stack(scenario, true, epoch, ADDR_A, now, true));
            reborn.outcome.received_before_restart = std::mem::take(&mut b.outcome.received);
            reborn.outcome.restarted = true;
            reborn.sent = std::mem::take(&mut b.sent);
            // Whatever the old run had still to type died with it.
            reborn.offered = scenario.messages;
            // Its partial file is on disk: the new run resumes from it.
            // Its download directory is on disk: the new run resumes from it.
            reborn.files = work.as_ref().map(crate::file::SimFiles::receiver);
            reborn.expects_file = b.expects_file;
            if let Some(old) = &b.files {
                if let Some(files) = reborn.files.as_mut() {
                    files.failures.extend(old.failures.iter().cloned());
                }
            }
            b = reborn;
            trace.note(now.saturating_duration_since(t0), "restart b");
        }
        if !b_running && now >= b_starts {
            b_running = true;
            b = Side::new(new_stack(scenario, true, epoch_b, ADDR_A, now, false));
            b.expects_file = scenario.file > 0;
            b.files = work.as_ref().map(crate::file::SimFiles::receiver);
            trace.note(now.saturating_duration_since(t0), "b starts");
        }
        offer(&mut a, "a", scenario, t0, now);
        a.stack.handle_timeout(now);
        if b_running && !stalled(now) {
            for bytes in socket_b.drain(..) {
                receive(&mut b, now, ADDR_A, &bytes);
            }
            offer(&mut b, "b", scenario, b_starts, now);
            b.stack.handle_timeout(now);
        }
        // A stalled B does nothing at all, and its person's typing waits with it.
        let b_awake = b_running && !stalled(now);
        loop {
            let mut moved = false;
            moved |= flush(&mut a, &mut ab, now, t0, &mut trace, "a");
            if b_awake {
                moved |= flush(&mut b, &mut ba, now, t0, &mut trace, "b");
            }
            while let Some(((), bytes)) = ab.poll_output(now) {
                if b_running && stalled(now) {
                    socket_b.push(bytes);
                } else if b_running {
                    receive(&mut b, now, ADDR_A, &bytes);
                }
                moved = true;
            }
            while let Some(((), bytes)) = ba.poll_output(now) {
                receive(&mut a, now, ADDR_B, &bytes);
                moved = true;
            }
            // Acknowledgements free room in the queue: offer more before time moves on.
            moved |= offer(&mut a, "a", scenario, t0, now);
            if b_awake {
                moved |= offer(&mut b, "b", scenario, b_starts, now);
            }
            if scenario.goodbye {
                moved |= leave_if_finished(&mut a, now, t0, &mut trace, "a");
                if b_awake && restart_after.is_none() {
                    moved |= leave_if_finished(&mut b, now, t0, &mut trace, "b");
                }
            }
            if !moved {
                break;
            }
        }
        // An idle sender has had every message acknowledged, so both idle means done.
        let done = if scenario.goodbye {
            a.closed && b.closed && a.stack.is_closed() && b.stack.is_closed()
        } else {
            a.stack.is_idle()
                && b.stack.is_idle()
                && b_running
                && restart_after.is_none()
                && partition_ends.is_none()
                && a.offered == scenario.messages
                && b.offered == scenario.messages
                && file_settled(&a)
        };
        if done || now >= deadline {
            break;
        }
        let next = [
            a.stack.poll_timeout(),
            b_awake.then(|| b.stack.poll_timeout()).flatten(),
            stall.map(|(_, to)| to).filter(|&to| to > now),
            (!b_running).then_some(b_starts),
            ab.poll_timeout(),
            ba.poll_timeout(),
            (!healed).then_some(heal_at),
            partition_starts,
            partition_ends,
            next_offer(&a, scenario, t0, now),
            b_awake
                .then(|| next_offer(&b, scenario, b_starts, now))
                .flatten(),
        ]
        .into_iter()
        .flatten()
        .min();
        match next {
            Some(t) => now = t.max(now).min(deadline),
            None => break,
        }
    }

    let elapsed = now.saturating_duration_since(t0);
    let file_violations = match &work {
        None => Vec::new(),
        Some(work) => {
            let sent = a.files.as_ref().is_some_and(|f| f.sent);
            // A download interrupted by a silent or departed peer is reported, and is no
            // fault if the file then arrives whole; every other failure is.
            let interrupted = |e: &String| {
                e.starts_with("in: peer_unreachable:") || e.starts_with("in: peer_left:")
            };
            let mut found: Vec<String> = [&a.files, &b.files]
                .into_iter()
                .flatten()
                .flat_map(|f| f.failures.iter())
                .filter(|e| !(sent && interrupted(e)))
                .map(|e| format!("file: {e}"))
                .collect();
            let arrived = std::fs::read(work.downloads().join("sim.bin")).ok();
            let expected = crate::file::pattern(scenario.file, sub_seed(seed, 6));
            if !sent {
                found.push("file: not confirmed by the end".into());
            }
            match arrived {
                Some(bytes) if bytes == expected => {}
                Some(bytes) => found.push(format!(
                    "file: {} bytes under its name, differing from the {} sent",
                    bytes.len(),
                    expected.len()
                )),
                None if sent => {
                    found.push("file: confirmed, but not in the download directory".into())
                }
                None => {}
            }
            found
        }
    };
    Outcome {
        file_violations,
        goodbye: scenario.goodbye,
        trace_tail: trace.tail(),
        scenario: scenario.name.clone(),
        seed,
        messages: scenario.messages,
        elapsed,
        trace_hash: trace.hash(),
        a: finish(a),
        b: finish(b),
    }
}

/// Once `side` has offered everything, ends its stream; once the goodbye is over, leaves
/// (the CLOSE is flushed by the next pass) and records what it knew at that moment.
/// True if it did either.
fn leave_if_finished(
    side: &mut Side,
    now: Instant,
    t0: Instant,
    trace: &mut Trace,
    tag: &'static str,
) -> bool {
    if side.closed {
        return false;
    }
    if !side.outcome.finish_called && side.offered_all {
        side.outcome.finish_called = true;
        side.stack.finish(now);
        return true;
    }
    if !side.stack.is_finished() {
        return false;
    }
    if !side.leaving {
        // Take one more pass first, so the events that finished it are recorded.
        side.leaving = true;
        return true;
    }
    side.stack.close(now);
    side.closed = true;
    let at = now.saturating_duration_since(t0);
    trace.note(at, if tag == "a" { "a leaves" } else { "b leaves" });
    side.outcome.left = Some(crate::outcome::Leaving {
        at,
        delivered: side.outcome.delivered.len(),
        failed: side.outcome.failed.len(),
        received: side.outcome.received.len(),
    });
    true
}

/// The time the next message of `side` is due, `send_interval` after the previous one.
fn due(side: &Side, scenario: &Scenario, t0: Instant) -> Instant {
    t0 + scenario.send_interval * u32::try_from(side.offered).unwrap_or(u32::MAX)
}

/// Offers `side`'s due messages to its session while the session has room: a producer
/// faster than the network is held back, never dropped. True if anything was offered.
fn offer(side: &mut Side, tag: &str, scenario: &Scenario, t0: Instant, now: Instant) -> bool {
    let mut offered = false;
    if let Some(files) = side.files.as_mut() {
        offered |= files.pump(&mut side.stack, now);
    }
    side.offered_all = side.offered == scenario.messages && file_settled(side);
    while side.offered < scenario.messages && due(side, scenario, t0) <= now {
        if !side.stack.can_send() {
            break;
        }
        let text = format!("{tag}{}", side.offered);
        let Ok(id) = side.stack.send(now, text.clone()) else {
            break;
        };
        side.sent.insert(id, text);
        side.offered += 1;
        offered = true;
        let outstanding = side.stack.outstanding();
        side.outcome.peak_outstanding = side.outcome.peak_outstanding.max(outstanding);
    }
    side.offered_all = side.offered == scenario.messages && file_settled(side);
    offered
}

/// The side's file is settled: the peer has stored the one it sends (as the program's
/// `--send` waits for its files), and it has stored the one it expects (a receiver is
/// kept running until its file is in). Only then may its input end.
fn file_settled(side: &Side) -> bool {
    side.files
        .as_ref()
        .is_none_or(crate::file::SimFiles::settled)
        && (!side.expects_file || side.files.as_ref().is_some_and(|f| f.received))
}

/// When `side` will next have a message to offer, if it is waiting on the clock (one
/// held back by a full queue waits for an acknowledgement instead).
fn next_offer(side: &Side, scenario: &Scenario, t0: Instant, now: Instant) -> Option<Instant> {
    let at = due(side, scenario, t0);
    (side.offered < scenario.messages && at > now).then_some(at)
}

/// The network after healing: the same delay, no faults.
fn healed_link(link: &ImpairConfig) -> ImpairConfig {
    ImpairConfig {
        delay: link.delay,
        jitter: link.jitter,
        ..ImpairConfig::default()
    }
}

fn finish(side: Side) -> SideOutcome {
    let mut outcome = side.outcome;
    outcome.sent = side.sent.into_values().collect();
    outcome.stats = *side.stack.stats();
    outcome
}

/// Hands one datagram from the network to `side`; one the encryption layer rejects is
/// counted by its reason.
fn receive(side: &mut Side, now: Instant, from: SocketAddr, bytes: &[u8]) {
    if let Err(reject) = side.stack.handle_datagram(now, from, bytes) {
        *side
            .outcome
            .security_rejects
            .entry(reject.code())
            .or_insert(0) += 1;
    }
}

/// Moves one side's transmits into its outgoing link and records its events.
fn flush(
    side: &mut Side,
    link: &mut Impairment<()>,
    now: Instant,
    t0: Instant,
    trace: &mut Trace,
    tag: &'static str,
) -> bool {
    let at = now.saturating_duration_since(t0);
    let mut moved = false;
    while let Some((transmit, class)) = side.stack.poll_transmit_classified() {
        moved = true;
        let class = match class {
            Classification::Data { .. } => PacketClass::Data,
            Classification::Ack { .. } => PacketClass::Ack,
            Classification::Control | Classification::Invalid => PacketClass::Control,
        };
        trace.datagram(at, tag, &transmit.payload);
        link.handle_input(now, class, transmit.payload, ());
    }
    while let Some(event) = side.stack.poll_event() {
        let event = match event {
            StackEvent::Session(e) => e,
            StackEvent::Secure(e) => {
                match e {
                    SecureEvent::Established { .. } | SecureEvent::PeerRestarted { .. } => {
                        side.outcome.secure_sessions += 1;
                        side.outcome
                            .connected_at
                            .get_or_insert(now.saturating_duration_since(t0));
                    }
                    SecureEvent::Refused { .. } | SecureEvent::RefusedByPeer { .. } => {
                        side.outcome.refusals += 1;
                    }
                    _ => {}
                }
                continue;
            }
        };
        trace.event(at, tag, &event);
        match event {
            Event::Received { text, .. } => side.outcome.received.push(text),
            Event::Connected { .. } if side.outcome.connected_at.is_none() => {
                side.outcome.connected_at = Some(at);
            }
            Event::Sent { id, .. } => {
                side.first_sent_at.insert(id, now);
            }
            Event::Delivered { id, attempts, .. } => {
                let since = side.first_sent_at.get(&id).copied().unwrap_or(now);
                side.outcome
                    .latencies
                    .push(now.saturating_duration_since(since));
                side.outcome.attempts.push(attempts);
                if let Some(text) = side.sent.get(&id) {
                    side.outcome.delivered.push(text.clone());
                }
            }
            Event::Failed { text, .. } => side.outcome.failed.push(text),
            Event::PeerStateChanged { state } => side.outcome.peer_states.push(state),
            Event::NoAnswer { .. } => side.outcome.no_answers += 1,
            Event::PeerDone => side.outcome.peer_done = true,
            Event::PeerLeft { .. } => {
                side.outcome.peer_left = true;
                if let Some(files) = side.files.as_mut() {
                    files.on_peer_left();
                }
            }
            Event::File { frame } => {
                if let Some(files) = side.files.as_mut() {
                    files.on_frame(frame, &mut side.stack, now);
                }
            }
            Event::PeerRestarted { .. } => {
                // The new run knows no transfer: offer again; it says where to go on.
                if let Some(files) = side.files.as_mut() {
                    files.on_peer_restarted(&mut side.stack, now);
                }
            }
            Event::Connected { .. }
            | Event::PeerNick { .. }
            | Event::Retransmit { .. }
            | Event::Duplicate { .. }
            | Event::Rejected { .. } => {}
        }
    }
    moved
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clean(messages: usize) -> Scenario {
        Scenario {
            name: "clean".into(),
            protocol: Config::classic(),
            link: ImpairConfig {
                delay: Duration::from_millis(10),
                ..ImpairConfig::default()
            },
            messages,
            send_interval: Duration::ZERO,
            heal_at: Duration::from_secs(60),
            settle: Duration::from_secs(60),
            restart_b_after: None,
            b_starts_at: Duration::ZERO,
            goodbye: false,
            stall_b: None,
            file: 0,
            partition: None,
            security: SimSecurity::Plaintext,
        }
    }

    #[test]
    fn a_clean_network_delivers_everything_in_one_attempt() {
        let outcome = run(&clean(20), 1);
        assert!(
            outcome.violations().is_empty(),
            "{:?}",
            outcome.violations()
        );
        assert!(outcome.a.attempts.iter().all(|&n| n == 1));
        // Stop-and-wait at 20 ms round trip: 20 messages take about 20 round trips.
        assert!(
            outcome.elapsed < Duration::from_millis(20 * 25),
            "{:?}",
            outcome.elapsed
        );
    }

    #[test]
    fn sub_seeds_differ_per_stream() {
        assert_ne!(sub_seed(7, 1), sub_seed(7, 2));
        assert_ne!(sub_seed(7, 1), sub_seed(8, 1));
    }
}
