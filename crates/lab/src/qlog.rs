//! A [`Trace`] as qlog JSON-SEQ, and back.
//!
//! The format (every name and field is listed in `QLOG.md` beside this crate's
//! `Cargo.toml`): RFC 7464 JSON text sequences, each record preceded by the record
//! separator `0x1E` and followed by a newline. The first record is the qlog header
//! (`qlog_version` `"0.3"`, `qlog_format` `"JSON-SEQ"`, one `trace` with its
//! `vantage_point` and `common_fields` saying times are relative to a `reference_time`);
//! every later record is one event: `time` in milliseconds (a float, microsecond
//! precision), `name` (`transport:packet_sent`, `recovery:metrics_updated`, …) and `data`.
//! qlog's main-schema names and fields are used where they fit; what only udpchat has
//! sits in `data.udpchat`, and udpchat's own events are named `udpchat:…`.
//!
//! Each endpoint writes its own file ([`Vantage::side`]: A as the `client`, B as the
//! `server`); [`merge`] puts two such files side by side, matching datagrams by their
//! `packet_id`. The simulator, which sees both endpoints, may instead write one file with
//! a `network` vantage point in which each event names its side.
//!
//! [`QlogWriter`] writes event by event (for `--trace FILE` while a chat runs, straight
//! into a buffered file with no intermediate JSON tree); [`write_qlog`] writes a whole
//! trace; [`read_qlog`] reads one file and [`read_traces`] reads one or two.

use std::collections::HashMap;
use std::fmt;
use std::io::{self, Write};

use serde::Serialize;
use serde_json::{Map, Value};

use crate::trace::{Event, EventKind, PacketId, Side, TimerKind, Trace, REASON_LOST};

/// The qlog version written in the header.
/// "0.3" is the newest version qvis opens (its loader accepts "draft-02", "qlog-03-WIP"
/// and "0.3"; a file saying "0.4" is refused as unparseable); the events and fields
/// written here are those of that schema.
pub const QLOG_VERSION: &str = "0.3";
/// The RFC 7464 record separator written before each record.
pub const RECORD_SEPARATOR: u8 = 0x1E;
/// The `packet_type` written in every packet header. udpchat has one packet-number
/// space, like QUIC's 1-RTT packets; QUIC tools (qvis) want some type to match sends
/// with arrivals by `packet_number`, which is the [`PacketId`].
pub const PACKET_TYPE: &str = "1RTT";

/// Event names, as written in `name`.
pub mod names {
    /// A datagram was sent ([`EventKind::PacketSent`](crate::EventKind::PacketSent)).
    pub const PACKET_SENT: &str = "transport:packet_sent";
    /// A datagram arrived ([`EventKind::PacketReceived`](crate::EventKind::PacketReceived)).
    pub const PACKET_RECEIVED: &str = "transport:packet_received";
    /// A datagram was dropped by the link, the impairment or the receiver
    /// ([`EventKind::PacketDropped`](crate::EventKind::PacketDropped) with any reason but
    /// `"lost"`).
    pub const PACKET_DROPPED: &str = "transport:packet_dropped";
    /// The sender took a datagram for lost
    /// ([`EventKind::PacketDropped`](crate::EventKind::PacketDropped) with reason `"lost"`).
    pub const PACKET_LOST: &str = "recovery:packet_lost";
    /// A timer was armed or fired ([`EventKind::TimerSet`](crate::EventKind::TimerSet),
    /// [`EventKind::TimerFired`](crate::EventKind::TimerFired)).
    pub const LOSS_TIMER_UPDATED: &str = "recovery:loss_timer_updated";
    /// RTT, RTO, window or flight changed
    /// ([`EventKind::Metrics`](crate::EventKind::Metrics)).
    pub const METRICS_UPDATED: &str = "recovery:metrics_updated";
    /// The user was told a message was delivered
    /// ([`EventKind::Delivered`](crate::EventKind::Delivered)).
    pub const MESSAGE_DELIVERED: &str = "udpchat:message_delivered";
    /// A peer's message was shown ([`EventKind::Shown`](crate::EventKind::Shown)).
    pub const MESSAGE_SHOWN: &str = "udpchat:message_shown";
    /// A remark ([`EventKind::Note`](crate::EventKind::Note)).
    pub const NOTE: &str = "udpchat:note";
}

/// The qlog vantage point type: whose view a file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VantageKind {
    /// One endpoint's view; udpchat writes A's file as the client.
    Client,
    /// One endpoint's view; udpchat writes B's file as the server.
    Server,
    /// Both endpoints' view (the simulator): each event names its side.
    Network,
}

impl VantageKind {
    /// `"client"`, `"server"` or `"network"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Client => "client",
            Self::Server => "server",
            Self::Network => "network",
        }
    }
}

/// Whose view a qlog file is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vantage {
    /// The type.
    pub kind: VantageKind,
    /// The name: `"A"`, `"B"`, or the simulator's name for the link.
    pub name: String,
}

impl Vantage {
    /// One endpoint's view: A as the client, B as the server.
    pub fn side(side: Side) -> Self {
        let kind = match side {
            Side::A => VantageKind::Client,
            Side::B => VantageKind::Server,
        };
        Self {
            kind,
            name: side.name().to_owned(),
        }
    }

    /// The view of both endpoints.
    pub fn network(name: &str) -> Self {
        Self {
            kind: VantageKind::Network,
            name: name.to_owned(),
        }
    }

    /// The side a one-endpoint file's events belong to: by name (`"A"`, `"B"`) first,
    /// else client → A and server → B; `None` for a network view.
    pub fn default_side(&self) -> Option<Side> {
        match (self.name.as_str(), self.kind) {
            (_, VantageKind::Network) => None,
            ("A", _) => Some(Side::A),
            ("B", _) => Some(Side::B),
            (_, VantageKind::Client) => Some(Side::A),
            (_, VantageKind::Server) => Some(Side::B),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Writing

#[derive(Serialize)]
struct Header<'a> {
    qlog_version: &'static str,
    qlog_format: &'static str,
    title: &'a str,
    trace: HeaderTrace<'a>,
}

#[derive(Serialize)]
struct HeaderTrace<'a> {
    vantage_point: VantagePoint<'a>,
    common_fields: CommonFields,
}

#[derive(Serialize)]
struct VantagePoint<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    name: &'a str,
}

#[derive(Serialize)]
struct CommonFields {
    time_format: &'static str,
    reference_time: f64,
}

#[derive(Serialize)]
struct Record<D> {
    time: f64,
    name: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    side: Option<Side>,
    data: D,
}

#[derive(Serialize)]
struct PacketHeader {
    packet_type: &'static str,
    packet_number: PacketId,
}

#[derive(Serialize)]
struct Raw {
    length: u64,
}

#[derive(Serialize)]
struct SentData<'a> {
    header: PacketHeader,
    raw: Raw,
    udpchat: SentExtra<'a>,
}

#[derive(Serialize)]
struct SentExtra<'a> {
    packet_id: PacketId,
    summary: &'a str,
    seqs: &'a [u64],
    #[serde(skip_serializing_if = "Option::is_none")]
    ack: Option<u64>,
    retransmission: bool,
}

#[derive(Serialize)]
struct ReceivedData {
    header: PacketHeader,
    udpchat: IdExtra,
}

#[derive(Serialize)]
struct IdExtra {
    packet_id: PacketId,
}

#[derive(Serialize)]
struct DroppedData<'a> {
    header: PacketHeader,
    details: &'a str,
    udpchat: DroppedExtra<'a>,
}

#[derive(Serialize)]
struct DroppedExtra<'a> {
    packet_id: PacketId,
    reason: &'a str,
}

#[derive(Serialize)]
struct TimerData<'a> {
    event_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    timer_type: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    delta: Option<f64>,
    udpchat: TimerExtra<'a>,
}

#[derive(Serialize)]
struct TimerExtra<'a> {
    timer: &'a str,
}

#[derive(Serialize)]
struct MetricsData {
    #[serde(skip_serializing_if = "Option::is_none")]
    smoothed_rtt: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    congestion_window: Option<u64>,
    #[serde(skip_serializing_if = "MetricsExtra::is_empty")]
    udpchat: MetricsExtra,
}

#[derive(Serialize)]
struct MetricsExtra {
    #[serde(skip_serializing_if = "Option::is_none")]
    rto: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    messages_in_flight: Option<u64>,
}

impl MetricsExtra {
    fn is_empty(&self) -> bool {
        self.rto.is_none() && self.messages_in_flight.is_none()
    }
}

#[derive(Serialize)]
struct MessageData<'a> {
    seq: u64,
    text: &'a str,
}

#[derive(Serialize)]
struct NoteData<'a> {
    text: &'a str,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    link: bool,
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

fn header(id: PacketId) -> PacketHeader {
    PacketHeader {
        packet_type: PACKET_TYPE,
        packet_number: id,
    }
}

/// `qlog`'s `timer_type` where one of its values means the same timer: both the RTO and
/// the probe are probe timeouts (`"pto"`); the delayed-ACK timer has no qlog type.
fn qlog_timer_type(timer: &TimerKind) -> Option<&'static str> {
    match timer {
        TimerKind::Retransmission | TimerKind::Probe => Some("pto"),
        TimerKind::Ack | TimerKind::Other(_) => None,
    }
}

/// Writes a qlog JSON-SEQ file event by event.
///
/// In a one-endpoint file (client or server vantage) events are written without their
/// side, which the reader takes from the vantage point; in a network file each event
/// carries a top-level `"side"`.
#[derive(Debug)]
pub struct QlogWriter<W: Write> {
    out: W,
    with_side: bool,
}

impl<W: Write> QlogWriter<W> {
    /// Writes the header record for `vantage` and returns the writer.
    pub fn new(out: W, title: &str, vantage: &Vantage) -> io::Result<Self> {
        Self::with_reference_time(out, title, vantage, 0.0)
    }

    /// [`new`](Self::new), with the wall-clock time (milliseconds since the Unix epoch)
    /// that the events' relative times count from: [`merge`] lines up two endpoints'
    /// files by it.
    pub fn with_reference_time(
        mut out: W,
        title: &str,
        vantage: &Vantage,
        reference_time_ms: f64,
    ) -> io::Result<Self> {
        let header = Header {
            qlog_version: QLOG_VERSION,
            qlog_format: "JSON-SEQ",
            title,
            trace: HeaderTrace {
                vantage_point: VantagePoint {
                    kind: vantage.kind.as_str(),
                    name: &vantage.name,
                },
                common_fields: CommonFields {
                    time_format: "relative",
                    reference_time: reference_time_ms,
                },
            },
        };
        out.write_all(&[RECORD_SEPARATOR])?;
        serde_json::to_writer(&mut out, &header)?;
        out.write_all(b"\n")?;
        Ok(Self {
            out,
            with_side: vantage.kind == VantageKind::Network,
        })
    }

    fn record<D: Serialize>(
        &mut self,
        time_us: u64,
        name: &'static str,
        side: Option<Side>,
        data: D,
    ) -> io::Result<()> {
        let side = if self.with_side { side } else { None };
        self.out.write_all(&[RECORD_SEPARATOR])?;
        serde_json::to_writer(
            &mut self.out,
            &Record {
                time: ms(time_us),
                name,
                side,
                data,
            },
        )?;
        self.out.write_all(b"\n")
    }

    /// The writer underneath (to flush it, say).
    pub fn get_mut(&mut self) -> &mut W {
        &mut self.out
    }

    /// Writes one event.
    pub fn event(&mut self, event: &Event) -> io::Result<()> {
        let t = event.time_us;
        let side = event.kind.side();
        match &event.kind {
            EventKind::PacketSent {
                packet_id,
                summary,
                seqs,
                ack,
                retransmission,
                bytes,
                ..
            } => {
                let data = SentData {
                    header: header(*packet_id),
                    raw: Raw { length: *bytes },
                    udpchat: SentExtra {
                        packet_id: *packet_id,
                        summary,
                        seqs,
                        ack: *ack,
                        retransmission: *retransmission,
                    },
                };
                self.record(t, names::PACKET_SENT, side, data)
            }
            EventKind::PacketReceived { packet_id, .. } => {
                let data = ReceivedData {
                    header: header(*packet_id),
                    udpchat: IdExtra {
                        packet_id: *packet_id,
                    },
                };
                self.record(t, names::PACKET_RECEIVED, side, data)
            }
            EventKind::PacketDropped { packet_id, reason } => {
                let name = if reason == REASON_LOST {
                    names::PACKET_LOST
                } else {
                    names::PACKET_DROPPED
                };
                let data = DroppedData {
                    header: header(*packet_id),
                    details: reason,
                    udpchat: DroppedExtra {
                        packet_id: *packet_id,
                        reason,
                    },
                };
                self.record(t, name, side, data)
            }
            EventKind::TimerSet {
                timer, expires_us, ..
            } => {
                let data = TimerData {
                    event_type: "set",
                    timer_type: qlog_timer_type(timer),
                    delta: Some(ms(expires_us.saturating_sub(t))),
                    udpchat: TimerExtra {
                        timer: timer.as_str(),
                    },
                };
                self.record(t, names::LOSS_TIMER_UPDATED, side, data)
            }
            EventKind::TimerFired { timer, .. } => {
                let data = TimerData {
                    event_type: "expired",
                    timer_type: qlog_timer_type(timer),
                    delta: None,
                    udpchat: TimerExtra {
                        timer: timer.as_str(),
                    },
                };
                self.record(t, names::LOSS_TIMER_UPDATED, side, data)
            }
            EventKind::Metrics {
                srtt_us,
                rto_us,
                cwnd_bytes,
                in_flight,
                ..
            } => {
                let data = MetricsData {
                    smoothed_rtt: srtt_us.map(ms),
                    congestion_window: *cwnd_bytes,
                    udpchat: MetricsExtra {
                        rto: rto_us.map(ms),
                        messages_in_flight: *in_flight,
                    },
                };
                self.record(t, names::METRICS_UPDATED, side, data)
            }
            EventKind::Delivered { seq, text, .. } => self.record(
                t,
                names::MESSAGE_DELIVERED,
                side,
                MessageData { seq: *seq, text },
            ),
            EventKind::Shown { seq, text, .. } => self.record(
                t,
                names::MESSAGE_SHOWN,
                side,
                MessageData { seq: *seq, text },
            ),
            EventKind::Note {
                side: note_side,
                text,
            } => {
                let data = NoteData {
                    text,
                    link: note_side.is_none(),
                };
                self.record(t, names::NOTE, side, data)
            }
        }
    }

    /// Flushes and returns the underlying writer.
    pub fn into_inner(mut self) -> io::Result<W> {
        self.out.flush()?;
        Ok(self.out)
    }
}

/// Which events of a two-sided trace go in a file: one endpoint's, or all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// What endpoint `Side` saw: its own events, the drops of datagrams sent to it
    /// (udpchat's impairment drops at the receiver) and the sender's loss inferences for
    /// its own datagrams. Drops of unknown datagrams and link notes go in A's file.
    Side(Side),
    /// Every event, in one network-vantage file.
    Both,
}

/// Writes `trace` (or one endpoint's part of it) as a qlog JSON-SEQ file.
pub fn write_qlog(trace: &Trace, title: &str, scope: Scope) -> String {
    let vantage = match scope {
        Scope::Side(side) => Vantage::side(side),
        Scope::Both => Vantage::network("link"),
    };
    let senders: HashMap<PacketId, Side> = trace
        .events
        .iter()
        .filter_map(|event| match event.kind {
            EventKind::PacketSent {
                side, packet_id, ..
            } => Some((packet_id, side)),
            _ => None,
        })
        .collect();
    let mut out = Vec::new();
    // Writing into a Vec cannot fail, and every value serializes (no maps with non-string
    // keys, no non-finite floats from integer microseconds).
    let result = (|| -> io::Result<()> {
        let mut writer = QlogWriter::new(&mut out, title, &vantage)?;
        for event in &trace.events {
            let owner = match &event.kind {
                EventKind::PacketDropped { packet_id, reason } => match senders.get(packet_id) {
                    Some(&sender) if reason == REASON_LOST => sender,
                    Some(&sender) => sender.other(),
                    None => Side::A,
                },
                kind => kind.side().unwrap_or(Side::A),
            };
            if scope == Scope::Both || scope == Scope::Side(owner) {
                writer.event(event)?;
            }
        }
        writer.into_inner().map(|_| ())
    })();
    debug_assert!(result.is_ok(), "writing qlog to memory failed: {result:?}");
    String::from_utf8_lossy(&out).into_owned()
}

// ---------------------------------------------------------------------------------------
// Reading

/// A qlog file that could not be read.
#[derive(Debug)]
pub enum QlogError {
    /// The file has no records.
    Empty,
    /// A record is not JSON.
    Json {
        /// The record's position, 0 for the header.
        record: usize,
        /// The parser's complaint.
        source: serde_json::Error,
    },
    /// The header is not a qlog JSON-SEQ header this reader understands.
    Header(String),
    /// An event lacks a field this reader needs.
    Event {
        /// The record's position (the first event is 1).
        record: usize,
        /// The event's name.
        name: String,
        /// What is wrong.
        message: String,
    },
}

impl fmt::Display for QlogError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("the qlog file has no records"),
            Self::Json { record, source } => {
                write!(f, "qlog record {record} is not JSON: {source}")
            }
            Self::Header(message) => write!(f, "qlog header: {message}"),
            Self::Event {
                record,
                name,
                message,
            } => {
                write!(f, "qlog record {record} ({name}): {message}")
            }
        }
    }
}

impl std::error::Error for QlogError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Json { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// One qlog file, read.
#[derive(Debug, Clone, PartialEq)]
pub struct QlogFile {
    /// The header's `title` (empty if none).
    pub title: String,
    /// Whose view it is.
    pub vantage: Vantage,
    /// `common_fields.reference_time`, in milliseconds: 0 when the writer gave none, else
    /// what event times are relative to (wall-clock milliseconds since the Unix epoch for
    /// a real run), which [`merge`] uses to line two files up.
    pub reference_time_ms: f64,
    /// The events, in file order, each given its side (from the record, else from the
    /// vantage point).
    pub trace: Trace,
    /// Events with names this reader does not know (other tools' events), skipped.
    pub skipped: usize,
}

/// Splits a JSON-SEQ text into records; a text without any record separator is read as
/// one JSON value per line (JSON Lines), which some tools write instead.
fn records(text: &str) -> Vec<&str> {
    let separator = char::from(RECORD_SEPARATOR);
    let parts: Vec<&str> = if text.contains(separator) {
        text.split(separator).collect()
    } else {
        text.lines().collect()
    };
    parts
        .into_iter()
        .map(str::trim)
        .filter(|part| !part.is_empty())
        .collect()
}

fn us_from_ms(ms: f64) -> u64 {
    // Negative or non-finite times (a broken writer) clamp to 0 rather than wrap.
    if ms.is_finite() && ms > 0.0 {
        (ms * 1000.0).round() as u64
    } else {
        0
    }
}

/// Reads one qlog JSON-SEQ file.
pub fn read_qlog(text: &str) -> Result<QlogFile, QlogError> {
    let records = records(text);
    let (first, rest) = records.split_first().ok_or(QlogError::Empty)?;
    let header: Value =
        serde_json::from_str(first).map_err(|source| QlogError::Json { record: 0, source })?;
    let title = header
        .get("title")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    let trace_header = header.get("trace").ok_or_else(|| {
        QlogError::Header("no \"trace\" object (is this a qlog JSON-SEQ file?)".into())
    })?;
    let vantage_point = trace_header.get("vantage_point");
    let kind = match vantage_point
        .and_then(|v| v.get("type"))
        .and_then(Value::as_str)
    {
        Some("client") => VantageKind::Client,
        Some("server") => VantageKind::Server,
        Some("network") | None => VantageKind::Network,
        Some(other) => {
            return Err(QlogError::Header(format!(
                "unknown vantage point type {other:?}"
            )))
        }
    };
    let name = vantage_point
        .and_then(|v| v.get("name"))
        .and_then(Value::as_str)
        .unwrap_or("");
    let vantage = Vantage {
        kind,
        name: name.to_owned(),
    };
    let common = trace_header.get("common_fields");
    match common
        .and_then(|c| c.get("time_format"))
        .and_then(Value::as_str)
    {
        None | Some("relative") => {}
        Some(other) => {
            return Err(QlogError::Header(format!(
                "time_format {other:?}: only \"relative\" is supported"
            )))
        }
    }
    let reference_time_ms = common
        .and_then(|c| c.get("reference_time"))
        .and_then(Value::as_f64)
        .unwrap_or(0.0);
    let file_side = vantage.default_side();

    let mut trace = Trace::new();
    let mut skipped = 0;
    for (index, text) in rest.iter().enumerate() {
        let record = index + 1;
        let value: Value =
            serde_json::from_str(text).map_err(|source| QlogError::Json { record, source })?;
        let name = value
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        let fail = |message: &str| QlogError::Event {
            record,
            name: name.clone(),
            message: message.to_owned(),
        };
        let Some(time) = value.get("time").and_then(Value::as_f64) else {
            return Err(fail("no numeric \"time\""));
        };
        let empty = Map::new();
        let data = value
            .get("data")
            .and_then(Value::as_object)
            .unwrap_or(&empty);
        let extra = data
            .get("udpchat")
            .and_then(Value::as_object)
            .unwrap_or(&empty);
        let side = match value.get("side").and_then(Value::as_str) {
            Some("A") => Some(Side::A),
            Some("B") => Some(Side::B),
            Some(other) => return Err(fail(&format!("unknown side {other:?}"))),
            None => file_side,
        };
        let need_side = || side.ok_or_else(|| fail("no \"side\" in a network-vantage file"));
        let packet_id = || {
            extra
                .get("packet_id")
                .and_then(Value::as_u64)
                .or_else(|| {
                    data.get("header")
                        .and_then(|h| h.get("packet_number"))
                        .and_then(Value::as_u64)
                })
                .ok_or_else(|| fail("no udpchat.packet_id or header.packet_number"))
        };
        let u64_of = |map: &Map<String, Value>, key: &str| map.get(key).and_then(Value::as_u64);
        let us_of = |map: &Map<String, Value>, key: &str| {
            map.get(key).and_then(Value::as_f64).map(us_from_ms)
        };
        let str_of = |map: &Map<String, Value>, key: &str| {
            map.get(key).and_then(Value::as_str).map(str::to_owned)
        };
        let kind = match name.as_str() {
            names::PACKET_SENT => {
                let id = packet_id()?;
                let summary = str_of(extra, "summary").unwrap_or_else(|| {
                    let kind = data
                        .get("header")
                        .and_then(|h| h.get("packet_type"))
                        .and_then(Value::as_str)
                        .unwrap_or("packet");
                    format!("{kind} {id}")
                });
                let seqs = extra
                    .get("seqs")
                    .and_then(Value::as_array)
                    .map(|seqs| seqs.iter().filter_map(Value::as_u64).collect())
                    .unwrap_or_default();
                let bytes = data
                    .get("raw")
                    .and_then(|raw| raw.get("length"))
                    .and_then(Value::as_u64)
                    .unwrap_or(0);
                EventKind::PacketSent {
                    side: need_side()?,
                    packet_id: id,
                    summary,
                    seqs,
                    ack: u64_of(extra, "ack"),
                    retransmission: extra
                        .get("retransmission")
                        .and_then(Value::as_bool)
                        .unwrap_or(false),
                    bytes,
                }
            }
            names::PACKET_RECEIVED => EventKind::PacketReceived {
                side: need_side()?,
                packet_id: packet_id()?,
            },
            names::PACKET_DROPPED | names::PACKET_LOST => {
                let default = if name == names::PACKET_LOST {
                    REASON_LOST
                } else {
                    "dropped"
                };
                let reason = str_of(extra, "reason")
                    .or_else(|| str_of(data, "details"))
                    .or_else(|| str_of(data, "trigger"))
                    .unwrap_or_else(|| default.to_owned());
                EventKind::PacketDropped {
                    packet_id: packet_id()?,
                    reason,
                }
            }
            names::LOSS_TIMER_UPDATED => {
                let timer = str_of(extra, "timer")
                    .or_else(|| str_of(data, "timer_type"))
                    .map(TimerKind::from)
                    .unwrap_or(TimerKind::Retransmission);
                match data.get("event_type").and_then(Value::as_str) {
                    Some("set") => {
                        let delta = us_of(data, "delta").unwrap_or(0);
                        EventKind::TimerSet {
                            side: need_side()?,
                            timer,
                            expires_us: us_from_ms(time) + delta,
                        }
                    }
                    Some("expired") => EventKind::TimerFired {
                        side: need_side()?,
                        timer,
                    },
                    // "cancelled" has no place in the model (nothing is drawn for it).
                    _ => {
                        skipped += 1;
                        continue;
                    }
                }
            }
            names::METRICS_UPDATED => EventKind::Metrics {
                side: need_side()?,
                srtt_us: us_of(data, "smoothed_rtt"),
                rto_us: us_of(extra, "rto"),
                cwnd_bytes: u64_of(data, "congestion_window"),
                in_flight: u64_of(extra, "messages_in_flight"),
            },
            names::MESSAGE_DELIVERED | names::MESSAGE_SHOWN => {
                let seq = u64_of(data, "seq").ok_or_else(|| fail("no \"seq\""))?;
                let text = str_of(data, "text").unwrap_or_default();
                if name == names::MESSAGE_DELIVERED {
                    EventKind::Delivered {
                        side: need_side()?,
                        seq,
                        text,
                    }
                } else {
                    EventKind::Shown {
                        side: need_side()?,
                        seq,
                        text,
                    }
                }
            }
            names::NOTE => {
                let link = data.get("link").and_then(Value::as_bool).unwrap_or(false);
                EventKind::Note {
                    side: if link { None } else { side },
                    text: str_of(data, "text").unwrap_or_default(),
                }
            }
            _ => {
                skipped += 1;
                continue;
            }
        };
        trace.push(us_from_ms(time), kind);
    }
    Ok(QlogFile {
        title,
        vantage,
        reference_time_ms,
        trace,
        skipped,
    })
}

/// How [`merge`] lined up the right file's clock with the left one's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alignment {
    /// Both files' times were taken as they are (same reference time, and no datagram
    /// arrives before it was sent).
    AsIs,
    /// By the difference of the two files' `reference_time`s.
    ReferenceTime,
    /// The reference times gave arrivals before sends (clocks of two machines, or no
    /// reference time): the offset was chosen so that every datagram arrives after it
    /// was sent, halfway within what the datagrams allow (equal delays both ways).
    Causality,
}

/// Two one-endpoint traces on one time line.
#[derive(Debug, Clone, PartialEq)]
pub struct Merged {
    /// The two-sided trace: the left file's events as A, the right file's as B.
    pub trace: Trace,
    /// Microseconds added to the right file's times (before both were shifted to start
    /// at 0, if the offset was negative).
    pub right_offset_us: i64,
    /// How the offset was chosen.
    pub alignment: Alignment,
}

/// Puts two one-endpoint files side by side: `left`'s events become side A and
/// `right`'s side B, whatever their vantage points say, and datagrams are matched by
/// `packet_id` (a send in one file, its arrival in the other).
///
/// The clocks are lined up by the files' reference times when both have one; if that
/// (or no reference time) has a datagram arrive before it was sent, the right file is
/// shifted to the middle of the offsets that make every arrival follow its send. A
/// datagram sent in one file with no arrival in the other is drawn as lost. The result
/// is sorted by time; at equal times the left file's events come first (two processes'
/// clocks cannot order them anyway).
pub fn merge(left: &QlogFile, right: &QlogFile) -> Merged {
    let mut left_events = left.trace.events.clone();
    let mut right_events = right.trace.events.clone();
    for event in &mut left_events {
        event.kind.set_side(Side::A);
    }
    for event in &mut right_events {
        event.kind.set_side(Side::B);
    }

    let by_reference = left.reference_time_ms != 0.0 && right.reference_time_ms != 0.0;
    let initial: i64 = if by_reference {
        ((right.reference_time_ms - left.reference_time_ms) * 1000.0).round() as i64
    } else {
        0
    };

    // Offsets that keep causality: a datagram sent by A at s and received by B at r
    // (B's clock) needs r + offset >= s; one sent by B at s and received by A at r needs
    // r >= s + offset.
    let sends = |events: &[Event]| -> HashMap<PacketId, u64> {
        let mut sends = HashMap::new();
        for event in events {
            if let EventKind::PacketSent { packet_id, .. } = event.kind {
                sends.entry(packet_id).or_insert(event.time_us);
            }
        }
        sends
    };
    let (left_sends, right_sends) = (sends(&left_events), sends(&right_events));
    let mut low: Option<i64> = None;
    let mut high: Option<i64> = None;
    for event in &right_events {
        if let EventKind::PacketReceived { packet_id, .. } = event.kind {
            if let Some(&sent) = left_sends.get(&packet_id) {
                let bound = sent as i64 - event.time_us as i64;
                low = Some(low.map_or(bound, |low| low.max(bound)));
            }
        }
    }
    for event in &left_events {
        if let EventKind::PacketReceived { packet_id, .. } = event.kind {
            if let Some(&sent) = right_sends.get(&packet_id) {
                let bound = event.time_us as i64 - sent as i64;
                high = Some(high.map_or(bound, |high| high.min(bound)));
            }
        }
    }
    let fits = low.is_none_or(|low| initial >= low) && high.is_none_or(|high| initial <= high);
    let (offset, alignment) = if fits {
        (
            initial,
            if by_reference {
                Alignment::ReferenceTime
            } else {
                Alignment::AsIs
            },
        )
    } else {
        let offset = match (low, high) {
            (Some(low), Some(high)) => low + (high - low) / 2,
            (Some(low), None) => low,
            (None, Some(high)) => high,
            (None, None) => initial,
        };
        (offset, Alignment::Causality)
    };

    let shifted: Vec<(i64, Event)> = left_events
        .into_iter()
        .map(|event| (event.time_us as i64, event))
        .chain(
            right_events
                .into_iter()
                .map(|event| (event.time_us as i64 + offset, event)),
        )
        .collect();
    let start = shifted.iter().map(|(t, _)| *t).min().unwrap_or(0).min(0);
    let mut trace = Trace {
        events: shifted
            .into_iter()
            .map(|(t, mut event)| {
                event.time_us = (t - start) as u64;
                event
            })
            .collect(),
    };
    trace.sort();
    Merged {
        trace,
        right_offset_us: offset,
        alignment,
    }
}

/// Reads the trace of one run from one file (a network view, or one endpoint's alone)
/// or two (A's and B's, merged with [`merge`]).
pub fn read_traces(files: &[&str]) -> Result<Trace, QlogError> {
    match files {
        [] => Err(QlogError::Empty),
        [one] => {
            let mut trace = read_qlog(one)?.trace;
            trace.sort();
            Ok(trace)
        }
        [left, right, ..] => Ok(merge(&read_qlog(left)?, &read_qlog(right)?).trace),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_record_starts_with_the_separator_and_the_header_comes_first() {
        let mut trace = Trace::new();
        trace.push(
            1500,
            EventKind::PacketReceived {
                side: Side::B,
                packet_id: 9,
            },
        );
        let text = write_qlog(&trace, "t", Scope::Both);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(lines.iter().all(|line| line.starts_with('\u{1e}')));
        assert!(lines[0].contains(r#""qlog_version":"0.3""#));
        assert!(lines[0].contains(r#""vantage_point":{"type":"network","name":"link"}"#));
        assert_eq!(
            lines[1],
            "\u{1e}{\"time\":1.5,\"name\":\"transport:packet_received\",\"side\":\"B\",\
             \"data\":{\"header\":{\"packet_type\":\"1RTT\",\"packet_number\":9},\
             \"udpchat\":{\"packet_id\":9}}}"
        );
    }

    #[test]
    fn json_lines_without_separators_are_read_too() {
        let text = "{\"qlog_version\":\"0.3\",\"trace\":{\"vantage_point\":{\"type\":\"server\"}}}\n\
                    {\"time\":2,\"name\":\"transport:packet_received\",\"data\":{\"header\":{\"packet_number\":5}}}\n\
                    {\"time\":3,\"name\":\"quic:something_else\",\"data\":{}}\n";
        let file = read_qlog(text).unwrap();
        assert_eq!(file.skipped, 1);
        assert_eq!(
            file.trace.events,
            vec![Event {
                time_us: 2000,
                kind: EventKind::PacketReceived {
                    side: Side::B,
                    packet_id: 5
                }
            }]
        );
    }

    #[test]
    fn broken_records_say_where() {
        let text = "\u{1e}{\"trace\":{}}\n\u{1e}{\"time\":1,\"name\":\"transport:packet_sent\",\"data\":{}}\n";
        let error = read_qlog(text).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("record 1 (transport:packet_sent)"),
            "{error}"
        );
        assert!(matches!(
            read_qlog("\u{1e}{nope"),
            Err(QlogError::Json { record: 0, .. })
        ));
        assert!(matches!(read_qlog(""), Err(QlogError::Empty)));
    }

    #[test]
    fn microseconds_survive_milliseconds_as_floats() {
        for us in [0, 1, 999, 1001, 123_456_789, 86_400_000_000] {
            assert_eq!(us_from_ms(ms(us)), us);
        }
    }
}
