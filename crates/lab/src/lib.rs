//! The protocol lab's pictures (issue 14): the trace of one run of two udpchat
//! endpoints, drawn as a textbook sequence diagram.
//!
//! - [`trace`]: the neutral model: [`Trace`], a time-ordered list of [`Event`]s at
//!   endpoints `A` (left) and `B` (right): datagrams sent, received and dropped, timers,
//!   RTT/RTO/window metrics, messages delivered and shown.
//! - [`qlog`]: the model as qlog JSON-SEQ (one file per endpoint, or one for both), and
//!   the merge of two endpoints' files into one trace. Every event name and field is in
//!   `QLOG.md`.
//! - [`flow`]: each datagram's send matched with its arrivals; the counts.
//! - [`text`]: the diagram as text, for a terminal or a README.
//! - [`svg`]: the diagram as SVG, time scaled, with long idle gaps compressed.
//! - [`html`]: one self-contained HTML report: the SVG, a legend, a summary table and
//!   plots of SRTT, RTO, messages in flight and the congestion window.
//!
//! Every picture is drawn from the trace alone: one arrow per datagram sent (and one more
//! per duplicate arrival), lost when no arrival matches it, so a picture cannot show
//! what did not happen.
//!
//! ```
//! use udpchat_lab::{render_svg, render_text, EventKind, Side, Trace};
//!
//! let mut trace = Trace::new();
//! trace.push(0, EventKind::PacketSent {
//!     side: Side::A,
//!     packet_id: 1,
//!     summary: "DATA seq 0".to_owned(),
//!     seqs: vec![0],
//!     ack: None,
//!     retransmission: false,
//!     bytes: 40,
//! });
//! trace.push(25_000, EventKind::PacketReceived { side: Side::B, packet_id: 1 });
//! trace.push(25_000, EventKind::PacketSent {
//!     side: Side::B,
//!     packet_id: 2,
//!     summary: "ACK 1".to_owned(),
//!     seqs: vec![],
//!     ack: Some(1),
//!     retransmission: false,
//!     bytes: 25,
//! });
//! // Nothing received datagram 2: it is drawn as lost.
//!
//! assert_eq!(
//!     render_text(&trace, 40),
//!     "      ms A                             B
//!      0.0 │──DATA seq 0────────────────▶│
//!     25.0 │          lost ✕──────ACK 1──│
//! "
//! );
//! let svg = render_svg(&trace);
//! assert_eq!(svg.matches(r#"class="packet""#).count(), 2);
//! assert_eq!(svg.matches(r#"class="loss""#).count(), 1);
//! ```
#![forbid(unsafe_code)]

pub mod flow;
pub mod html;
pub mod qlog;
pub mod svg;
pub mod text;
pub mod trace;

pub use flow::{Flow, Packet, PacketKind, SideStats};
pub use html::render_html;
pub use qlog::{merge, read_qlog, read_traces, write_qlog, Merged, QlogError, QlogFile, Scope};
pub use svg::{render_svg, render_svg_with, SvgOptions};
pub use text::{render_text, render_text_with, TextOptions};
pub use trace::{Event, EventKind, PacketId, Side, TimerKind, Trace};
