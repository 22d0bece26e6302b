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

use std::collections::HashSet;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use udpchat_lab::qlog::{QlogWriter, Vantage};
use udpchat_lab::{Event, EventKind, PacketId, Side, TimerKind};
use udpchat_proto::wire::Packet;
use udpchat_stack::Stack;

use crate::lab::describe;

/// The trace of this run, being written.
#[derive(Debug)]
pub(crate) struct Tracer {
    out: Option<QlogWriter<BufWriter<File>>>,
    /// Where the events' times count from.
    t0: Instant,
    /// (peer epoch, sequence number) of every DATA frame sent: a second send is a
    /// retransmission.
    sent_seqs: HashSet<(u64, u64)>,
    timeouts: u64,
    probes: u64,
    figures: Option<(Option<Duration>, Duration, usize, usize)>,
    /// Why the trace stopped, once, for the user.
    pub(crate) failure: Option<String>,
}

/// The name of a datagram in both endpoints' traces: FNV-1a of its bytes.
pub(crate) fn packet_id(bytes: &[u8]) -> PacketId {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

impl Tracer {
    /// Creates (or truncates) `path` and writes the qlog header.
    ///
    /// # Errors
    /// The file cannot be created or written, with its path.
    pub(crate) fn create(path: &Path, title: &str, now: Instant) -> anyhow::Result<Self> {
        let file = File::create(path)
            .with_context(|| format!("cannot create the trace file {}", path.display()))?;
        let reference_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64() * 1e3);
        // This run is the left endpoint of its own file; `udpchat lab --from-trace`
        // puts the second file on the right.
        let out = QlogWriter::with_reference_time(
            BufWriter::new(file),
            title,
            &Vantage::side(Side::A),
            reference_ms,
        )
        .with_context(|| format!("cannot write the trace file {}", path.display()))?;
        Ok(Self {
            out: Some(out),
            t0: now,
            sent_seqs: HashSet::new(),
            timeouts: 0,
            probes: 0,
            figures: None,
            failure: None,
        })
    }

    fn write(&mut self, now: Instant, kind: EventKind) {
        let Some(out) = self.out.as_mut() else {
            return;
        };
        let time_us =
            u64::try_from(now.saturating_duration_since(self.t0).as_micros()).unwrap_or(u64::MAX);
        if let Err(e) = out.event(&Event { time_us, kind }) {
            self.out = None;
            self.failure = Some(format!("the trace stopped: {e}"));
        }
    }

    /// A protocol packet this run sent.
    pub(crate) fn sent(&mut self, now: Instant, bytes: &[u8]) {
        let d = describe(bytes);
        let peer_epoch = Packet::decode(bytes).map_or(0, |p| p.dst_epoch);
        let mut retransmission = !d.seqs.is_empty();
        for &seq in &d.seqs {
            retransmission &= !self.sent_seqs.insert((peer_epoch, seq));
        }
        self.write(
            now,
            EventKind::PacketSent {
                side: Side::A,
                packet_id: packet_id(bytes),
                summary: d.summary,
                seqs: d.seqs,
                ack: d.ack,
                retransmission,
                bytes: u64::try_from(bytes.len()).unwrap_or(u64::MAX),
            },
        );
    }

    /// A protocol packet from the peer reached the session.
    pub(crate) fn received(&mut self, now: Instant, bytes: &[u8]) {
        self.write(
            now,
            EventKind::PacketReceived {
                side: Side::A,
                packet_id: packet_id(bytes),
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
        if self.out.is_none() {
            return;
        }
        let stats = *stack.stats();
        if stats.timeouts > self.timeouts {
            self.timeouts = stats.timeouts;
            self.write(
                now,
                EventKind::TimerFired {
                    side: Side::A,
                    timer: TimerKind::Retransmission,
                },
            );
        }
        if stats.tail_probes > self.probes {
            self.probes = stats.tail_probes;
            self.write(
                now,
                EventKind::TimerFired {
                    side: Side::A,
                    timer: TimerKind::Probe,
                },
            );
        }
        let rtt = stack.rtt();
        let figures = (
            rtt.srtt(),
            rtt.rto(),
            stack.in_flight(),
            stack.session().congestion_window(),
        );
        if self.figures != Some(figures) {
            self.figures = Some(figures);
            let micros = |d: Duration| u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
            let count = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
            self.write(
                now,
                EventKind::Metrics {
                    side: Side::A,
                    srtt_us: figures.0.map(micros),
                    rto_us: Some(micros(figures.1)),
                    cwnd_bytes: Some(count(figures.3)),
                    in_flight: Some(count(figures.2)),
                },
            );
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
