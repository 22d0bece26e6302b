//! `--trace FILE`: every protocol packet this run sends and receives (the plaintext
//! inside the encryption), every one the simulated loss drops, the retransmission and
//! probe timers as they fire, and the round trip, timeout, messages in flight and
//! congestion window as they change, written as qlog JSON-SEQ (crates/lab/QLOG.md) with
//! microsecond times. `udpchat lab --from-trace A.qlog B.qlog` draws two runs' files as
//! one sequence diagram: a datagram is named by a hash of its bytes, the same on both
//! sides, so a send in one file meets its arrival in the other.
//!
//! Tracing is off unless asked for; then it costs a copy and a hash per packet and one
//! buffered write per event. A write error is said once and ends the trace, not the chat.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use udpchat_lab::qlog::{QlogWriter, Vantage, VantageKind};
use udpchat_lab::{Event, EventKind, PacketId, Side, TimerKind};
use udpchat_stack::Stack;

use udpchat_proto::wire::Trailer;

use crate::lab::{describe, SentSeqs};

/// The trace of this run, being written.
#[derive(Debug)]
pub(crate) struct Tracer {
    out: Option<QlogWriter<BufWriter<File>>>,
    /// Where the events' times count from.
    t0: Instant,
    /// (peer epoch, sequence number) of every DATA frame sent: a second send is a
    /// retransmission.
    sent_seqs: SentSeqs,
    timeouts: u64,
    probes: u64,
    figures: Option<Figures>,
    /// Why the trace stopped, once, for the user.
    pub(crate) failure: Option<String>,
    /// The last datagrams as a two-sided picture seen from here (`/trace`): the peer's
    /// sends and arrivals placed half a round trip from ours. `None`: not kept.
    recent: Option<VecDeque<Event>>,
    /// When the newest of our datagrams in `recent` was sent: the peer's datagrams are
    /// drawn as sent no earlier (half a round trip is a guess; an answer drawn before
    /// the datagram it answers would be wrong).
    last_sent_us: u64,
    /// What the protocol packets' trailers are: zeros inside the encryption.
    trailer: Trailer,
}

/// Events `/trace` keeps: about the last 30 datagrams, each a send and an arrival.
const RECENT: usize = 64;

/// The name of a datagram in both endpoints' traces: FNV-1a of its bytes.
pub(crate) fn packet_id(bytes: &[u8]) -> PacketId {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// What a picture plots of one endpoint, as it stands: round trip, timeout, messages in
/// flight, congestion window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Figures {
    srtt: Option<Duration>,
    rto: Duration,
    in_flight: usize,
    cwnd: usize,
}

impl Figures {
    /// The figures of `session` now.
    pub(crate) fn of(session: &udpchat_proto::Session) -> Self {
        let rtt = session.rtt();
        Self {
            srtt: rtt.srtt(),
            rto: rtt.rto(),
            in_flight: session.in_flight(),
            cwnd: session.congestion_window(),
        }
    }

    /// Half the smoothed round trip, in microseconds (0 before it is measured).
    fn half_rtt_us(self) -> u64 {
        self.srtt
            .map_or(0, |srtt| u64::try_from(srtt.as_micros() / 2).unwrap_or(0))
    }

    /// The trace's event for `side`.
    pub(crate) fn event(self, side: Side) -> EventKind {
        let micros = |d: Duration| u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        let count = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
        EventKind::Metrics {
            side,
            srtt_us: self.srtt.map(micros),
            rto_us: Some(micros(self.rto)),
            cwnd_bytes: Some(count(self.cwnd)),
            in_flight: Some(count(self.in_flight)),
        }
    }
}

/// The timers that fired since the counters were last read (`timeouts`, `probes`, both
/// brought up to date): the retransmission timer and the tail-loss probe.
pub(crate) fn fired_timers(
    stats: &udpchat_proto::Stats,
    timeouts: &mut u64,
    probes: &mut u64,
) -> Vec<TimerKind> {
    let mut fired = Vec::new();
    if stats.timeouts > *timeouts {
        *timeouts = stats.timeouts;
        fired.push(TimerKind::Retransmission);
    }
    if stats.tail_probes > *probes {
        *probes = stats.tail_probes;
        fired.push(TimerKind::Probe);
    }
    fired
}

impl Tracer {
    /// Creates (or truncates) `path` and writes the qlog header.
    ///
    /// # Errors
    /// The file cannot be created or written, with its path.
    /// `server`: which of the two peers this run is to a qlog tool. qvis pairs a client's
    /// file with a server's (two clients' sends would never meet), so the two runs of
    /// a chat must differ: the caller names the one with the higher address the server.
    pub(crate) fn create(
        path: &Path,
        title: &str,
        now: Instant,
        server: bool,
    ) -> anyhow::Result<Self> {
        let file = File::create(path)
            .with_context(|| format!("cannot create the trace file {}", path.display()))?;
        let reference_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64() * 1e3);
        // This run is the left endpoint of its own file; `udpchat lab --from-trace`
        // puts the second file on the right.
        let vantage = Vantage {
            kind: if server {
                VantageKind::Server
            } else {
                VantageKind::Client
            },
            ..Vantage::side(Side::A)
        };
        let out =
            QlogWriter::with_reference_time(BufWriter::new(file), title, &vantage, reference_ms)
                .with_context(|| format!("cannot write the trace file {}", path.display()))?;
        Ok(Self {
            out: Some(out),
            recent: None,
            ..Self::in_memory(now)
        })
    }

    /// Says the protocol packets travel inside the encryption, so their trailer is not
    /// a checksum (PROTOCOL.md §9.2).
    pub(crate) fn inside_encryption(mut self, encrypted: bool) -> Self {
        self.trailer = if encrypted {
            Trailer::Authenticated
        } else {
            Trailer::Crc32c
        };
        self
    }

    /// A trace that writes no file and keeps only the last datagrams, for `/trace`.
    pub(crate) fn in_memory(now: Instant) -> Self {
        Self {
            out: None,
            t0: now,
            sent_seqs: SentSeqs::default(),
            timeouts: 0,
            probes: 0,
            figures: None,
            failure: None,
            recent: Some(VecDeque::with_capacity(RECENT)),
            last_sent_us: 0,
            trailer: Trailer::Crc32c,
        }
    }

    /// Also keeps the last datagrams for `/trace`.
    pub(crate) fn keep_recent(&mut self) {
        self.recent
            .get_or_insert_with(|| VecDeque::with_capacity(RECENT));
    }

    /// The last datagrams, seen from here, as a trace to draw; `None` unless kept.
    pub(crate) fn recent(&self) -> Option<udpchat_lab::Trace> {
        let recent = self.recent.as_ref()?;
        let mut trace = udpchat_lab::Trace::new();
        for e in recent {
            trace.push(e.time_us, e.kind.clone());
        }
        trace.sort();
        Some(trace)
    }

    fn micros(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.t0).as_micros()).unwrap_or(u64::MAX)
    }

    /// Half the smoothed round trip, in microseconds: where the peer's side of a
    /// datagram is placed in the picture seen from here.
    fn half_rtt_us(&self) -> u64 {
        self.figures.map_or(0, Figures::half_rtt_us)
    }

    fn remember(&mut self, time_us: u64, kind: EventKind) {
        if let Some(recent) = self.recent.as_mut() {
            if recent.len() == RECENT {
                recent.pop_front();
            }
            recent.push_back(Event { time_us, kind });
        }
    }

    fn write(&mut self, now: Instant, kind: EventKind) {
        let time_us = self.micros(now);
        let Some(out) = self.out.as_mut() else {
            return;
        };
        if let Err(e) = out.event(&Event { time_us, kind }) {
            self.out = None;
            self.failure = Some(format!("the trace stopped: {e}"));
        }
    }

    /// A protocol packet this run sent.
    pub(crate) fn sent(&mut self, now: Instant, bytes: &[u8]) {
        let d = describe(bytes, self.trailer);
        let retransmission = self.sent_seqs.is_retransmission(&d);
        let id = packet_id(bytes);
        let sent = EventKind::PacketSent {
            side: Side::A,
            packet_id: id,
            summary: d.summary,
            seqs: d.seqs,
            ack: d.ack,
            retransmission,
            bytes: u64::try_from(bytes.len()).unwrap_or(u64::MAX),
        };
        if self.recent.is_some() {
            let at = self.micros(now);
            self.last_sent_us = at;
            self.remember(at, sent.clone());
            let arrives = at + self.half_rtt_us();
            self.remember(
                arrives,
                EventKind::PacketReceived {
                    side: Side::B,
                    packet_id: id,
                },
            );
        }
        self.write(now, sent);
    }

    /// A protocol packet from the peer reached the session.
    pub(crate) fn received(&mut self, now: Instant, bytes: &[u8]) {
        let id = packet_id(bytes);
        if self.recent.is_some() {
            let at = self.micros(now);
            let d = describe(bytes, self.trailer);
            self.remember(
                at.saturating_sub(self.half_rtt_us()).max(self.last_sent_us),
                EventKind::PacketSent {
                    side: Side::B,
                    packet_id: id,
                    summary: d.summary,
                    seqs: d.seqs,
                    ack: d.ack,
                    retransmission: false,
                    bytes: u64::try_from(bytes.len()).unwrap_or(u64::MAX),
                },
            );
            self.remember(
                at,
                EventKind::PacketReceived {
                    side: Side::A,
                    packet_id: id,
                },
            );
        }
        self.write(
            now,
            EventKind::PacketReceived {
                side: Side::A,
                packet_id: id,
            },
        );
    }

    /// A protocol packet from the peer (named by [`packet_id`]) that
    /// `--drop`/`--ack-drop` ignored.
    pub(crate) fn dropped(&mut self, now: Instant, id: PacketId) {
        self.write(
            now,
            EventKind::PacketDropped {
                packet_id: id,
                reason: udpchat_lab::trace::REASON_SIMULATED_LOSS.to_owned(),
            },
        );
    }

    /// The timers that fired and the figures that changed since the last look.
    pub(crate) fn observe(&mut self, now: Instant, stack: &Stack) {
        if self.out.is_none() && self.recent.is_none() {
            return;
        }
        let stats = *stack.stats();
        for timer in fired_timers(&stats, &mut self.timeouts, &mut self.probes) {
            let fired = EventKind::TimerFired {
                side: Side::A,
                timer,
            };
            let at = self.micros(now);
            self.remember(at, fired.clone());
            self.write(now, fired);
        }
        let figures = Figures::of(stack.session());
        if self.figures != Some(figures) {
            self.figures = Some(figures);
            self.write(now, figures.event(Side::A));
        }
    }

    /// Writes out what is buffered (at the end of the run, and now and then).
    pub(crate) fn flush(&mut self) {
        if let Some(out) = self.out.as_mut() {
            if let Err(e) = out_flush(out) {
                self.out = None;
                self.failure = Some(format!("the trace stopped: {e}"));
            }
        }
    }
}

fn out_flush(out: &mut QlogWriter<BufWriter<File>>) -> std::io::Result<()> {
    out.get_mut().flush()
}
