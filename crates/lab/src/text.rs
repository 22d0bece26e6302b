//! The sequence diagram as text, for a terminal or a README.
//!
//! ```text
//!       ms A                                                     B
//!      0.0 │──DATA seq 0────────────────────────────────────────▶│
//!     25.0 │                                      shown 0 "hi" ✓ │
//!     25.0 │◀─────────────────────────────────────────────ACK 1──│
//!     50.0 │ ✓ delivered 0 "hi"                                  │
//!     50.0 │──DATA seq 1─────────────✕ simulated loss            │
//!    250.0 ⊙ RTO fired                                           │
//!    250.0 │──DATA seq 1 (retx)─────────────────────────────────▶│
//!    275.0 │                                   shown 1 "there" ✓ │
//!    275.0 │◀─────────────────────────────────────────────ACK 2──│
//!    300.0 │ ✓ delivered 1 "there"                               │
//! ```
//!
//! Time goes down; the left column is the time of the row in milliseconds. Each
//! datagram is one row at its send time: an arrow from the sender's timeline to the
//! receiver's, labelled with its summary, or ending in `✕` halfway with the drop reason
//! when nothing received it. A datagram the link duplicated gets one more row per
//! extra arrival, marked `(dup)`; a retransmission is marked `(retx)`. Timers that fired
//! are marked `⊙` on their side's timeline; messages delivered and shown, and notes, are
//! written beside their side. Arrival times are not drawn (the SVG shows them as the
//! arrows' slope).
//!
//! Widths are counted in `char`s: labels are truncated with `…` to fit; text with
//! double-width characters (some message texts) will be wider on screen.

use crate::flow::{Flow, Packet};
use crate::trace::{EventKind, Side, Trace};

/// How to draw the text diagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextOptions {
    /// The width of each line in characters (at least 40 is used).
    pub width: usize,
    /// At most this many rows below the header: when there are more, stretches of
    /// uneventful traffic (datagrams that arrived, not retransmissions, messages
    /// delivered and shown) are collapsed into one row each, such as
    /// `… 120 packets, no loss …`, keeping a little context around every loss,
    /// retransmission, duplicate, timer and note; if that is still too many, the diagram
    /// ends with one row summing up the rest. `None` draws every row.
    pub max_rows: Option<usize>,
    /// Whether to write each datagram's arrival time in its label (`ACK 1 (at 120.0)`, `DATA seq 0 (retx, at 160.0)`):
    /// the text has no slope to show a slow datagram, which is what a premature timeout
    /// is about.
    pub arrivals: bool,
}

impl Default for TextOptions {
    fn default() -> Self {
        Self {
            width: 72,
            max_rows: None,
            arrivals: false,
        }
    }
}

/// The width of the time column, its trailing space included.
const TIME_COLUMN: usize = 9;
/// The smallest width drawn.
const MIN_WIDTH: usize = 40;

/// Draws `trace` as a text sequence diagram `width` characters wide, every row shown.
pub fn render_text(trace: &Trace, width: usize) -> String {
    render_text_with(
        trace,
        &TextOptions {
            width,
            ..TextOptions::default()
        },
    )
}

/// Draws `trace` as a text sequence diagram as `options` say.
pub fn render_text_with(trace: &Trace, options: &TextOptions) -> String {
    let width = options.width.max(MIN_WIDTH);
    let inner = width - TIME_COLUMN - 2;
    let trace = trace.sorted();
    let flow = Flow::of(&trace);
    let rows = rows(&trace, &flow, inner, options.arrivals);
    let rows = match options.max_rows {
        Some(max_rows) if rows.len() > max_rows => collapse(rows, max_rows.max(1), inner),
        _ => rows,
    };
    let mut out = String::new();
    out.push_str(&format!("{:>8} A{}B\n", "ms", " ".repeat(inner)));
    for row in &rows {
        out.push_str(&format!("{:>8} {}\n", format_ms(row.time_us), row.line));
    }
    out
}

fn format_ms(us: u64) -> String {
    format!("{:.1}", us as f64 / 1000.0)
}

/// One line of the diagram, without its time column.
#[derive(Debug, Clone)]
struct Row {
    time_us: u64,
    /// Timelines and what lies between them: `inner + 2` chars.
    line: String,
    /// A loss, a retransmission, a duplicate, a timer or a note: kept when collapsing.
    eventful: bool,
    /// What the row stands for, for the collapsed rows' counts.
    tally: Tally,
}

#[derive(Debug, Clone, Copy, Default)]
struct Tally {
    packets: usize,
    lost: usize,
    retransmitted: usize,
    delivered: usize,
}

impl Tally {
    fn add(&mut self, other: Self) {
        self.packets += other.packets;
        self.lost += other.lost;
        self.retransmitted += other.retransmitted;
        self.delivered += other.delivered;
    }
}

/// Cleans text from a trace for one line: control characters become spaces.
fn clean(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// `text` cut to at most `max` chars, ending in `…` when cut.
fn fit(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    if max == 0 {
        return String::new();
    }
    let mut cut: String = text.chars().take(max - 1).collect();
    cut.push('…');
    cut
}

fn len(text: &str) -> usize {
    text.chars().count()
}

fn quoted(text: &str) -> String {
    if text.is_empty() {
        String::new()
    } else {
        format!(" \"{}\"", clean(text))
    }
}

/// The arrow of one datagram's arrival number `copy` (0, or more for the link's
/// duplicates) across `inner` chars.
fn arrow(packet: &Packet, copy: usize, arrivals: bool, inner: usize) -> String {
    let mut tags = Vec::new();
    if packet.retransmission {
        tags.push("retx".to_owned());
    }
    if copy > 0 {
        tags.push("dup".to_owned());
    }
    if arrivals {
        if let Some(&at) = packet.arrivals.get(copy) {
            tags.push(format!("at {}", format_ms(at)));
        }
    }
    let mut label = clean(&packet.summary);
    if !tags.is_empty() {
        label.push_str(&format!(" ({})", tags.join(", ")));
    }
    let rightward = packet.from == Side::A;
    if packet.lost() {
        // The cross halfway, the reason beyond it (on the far side of the cross).
        let label = fit(&label, inner / 2 - 3);
        let reason = format!(" {}", clean(packet.loss_label()));
        let dashes = (inner / 2).saturating_sub(len(&label) + 3).max(1);
        let shaft = format!("──{label}{}✕", "─".repeat(dashes));
        let room = inner - len(&shaft);
        let reason = fit(&reason, room);
        let pad = " ".repeat(room - len(&reason));
        if rightward {
            format!("│{shaft}{reason}{pad}│")
        } else {
            let shaft = format!("✕{}{label}──", "─".repeat(dashes));
            let reason = fit(&format!("{} ", reason.trim_start()), room);
            let pad = " ".repeat(room - len(&reason));
            format!("│{pad}{reason}{shaft}│")
        }
    } else {
        let label = fit(&label, inner - 5);
        let dashes = inner - len(&label) - 3;
        if rightward {
            format!("│──{label}{}▶│", "─".repeat(dashes))
        } else {
            format!("│◀{}{label}──│", "─".repeat(dashes))
        }
    }
}

/// A remark beside `side`'s timeline; `mark` replaces the timeline itself when given.
fn beside(side: Option<Side>, mark: Option<char>, text: &str, inner: usize) -> String {
    match side {
        Some(Side::A) => {
            let text = fit(&format!(" {text}"), inner);
            let pad = " ".repeat(inner - len(&text));
            format!("{}{text}{pad}│", mark.unwrap_or('│'))
        }
        Some(Side::B) => {
            let text = fit(&format!("{text} "), inner);
            let pad = " ".repeat(inner - len(&text));
            format!("│{pad}{text}{}", mark.unwrap_or('│'))
        }
        None => {
            let text = fit(&format!("~ {text} ~"), inner);
            let left = (inner - len(&text)) / 2;
            let right = inner - len(&text) - left;
            format!("│{}{text}{}│", " ".repeat(left), " ".repeat(right))
        }
    }
}

fn rows(trace: &Trace, flow: &Flow, inner: usize, arrivals: bool) -> Vec<Row> {
    // In the trace's order, so that a cause comes before its effect at the same time (the
    // timer's firing before the retransmission it sends). The flow's packets are the
    // trace's sends in that same order.
    let mut rows = Vec::new();
    let mut packets = flow.packets.iter();
    for event in &trace.events {
        let (line, eventful, delivered) = match &event.kind {
            EventKind::PacketSent { .. } => {
                let Some(packet) = packets.next() else {
                    continue;
                };
                for copy in 0..packet.arrivals.len().max(1) {
                    let duplicate = copy > 0;
                    rows.push(Row {
                        time_us: packet.sent_us,
                        line: arrow(packet, copy, arrivals, inner),
                        eventful: packet.lost() || packet.retransmission || duplicate,
                        tally: Tally {
                            packets: usize::from(!duplicate),
                            lost: usize::from(packet.lost()),
                            retransmitted: usize::from(packet.retransmission && !duplicate),
                            delivered: 0,
                        },
                    });
                }
                continue;
            }
            EventKind::TimerFired { side, timer } => (
                beside(
                    Some(*side),
                    Some('⊙'),
                    &format!("{} fired", timer.short_label()),
                    inner,
                ),
                true,
                0,
            ),
            EventKind::Delivered { side, seq, text } => (
                beside(
                    Some(*side),
                    None,
                    &format!("✓ delivered {seq}{}", quoted(text)),
                    inner,
                ),
                false,
                1,
            ),
            EventKind::Shown { side, seq, text } => (
                beside(
                    Some(*side),
                    None,
                    &format!("shown {seq}{} ✓", quoted(text)),
                    inner,
                ),
                false,
                0,
            ),
            EventKind::Note { side, text } => (beside(*side, None, &clean(text), inner), true, 0),
            _ => continue,
        };
        rows.push(Row {
            time_us: event.time_us,
            line,
            eventful,
            tally: Tally {
                delivered,
                ..Tally::default()
            },
        });
    }
    rows
}

/// The row standing for a collapsed stretch.
fn summary_row(time_us: u64, tally: Tally, more: bool, inner: usize) -> Row {
    let mut text = format!(
        "… {}{} packet{}",
        if more { "then " } else { "" },
        tally.packets,
        if tally.packets == 1 { "" } else { "s" }
    );
    if tally.delivered > 0 {
        text.push_str(&format!(", {} delivered", tally.delivered));
    }
    if tally.lost == 0 && tally.retransmitted == 0 {
        text.push_str(", no loss");
    } else {
        text.push_str(&format!(
            ", {} lost, {} retransmitted",
            tally.lost, tally.retransmitted
        ));
    }
    text.push_str(" …");
    let text = fit(&text, inner);
    let left = (inner - len(&text)) / 2;
    let right = inner - len(&text) - left;
    Row {
        time_us,
        line: format!("┆{}{text}{}┆", " ".repeat(left), " ".repeat(right)),
        eventful: false,
        tally,
    }
}

/// Collapses uneventful stretches so that at most `max_rows` rows remain.
fn collapse(rows: Vec<Row>, max_rows: usize, inner: usize) -> Vec<Row> {
    let mut best = Vec::new();
    for context in [2usize, 1, 0] {
        let mut keep = vec![false; rows.len()];
        // The start of the run (the handshake) and the last row always show.
        for flag in keep.iter_mut().take(context.max(1)) {
            *flag = true;
        }
        if let Some(last) = keep.last_mut() {
            *last = true;
        }
        for (i, row) in rows.iter().enumerate() {
            if row.eventful {
                let from = i.saturating_sub(context);
                let to = (i + context).min(rows.len() - 1);
                for flag in &mut keep[from..=to] {
                    *flag = true;
                }
            }
        }
        let mut out = Vec::new();
        let mut i = 0;
        while i < rows.len() {
            if keep[i] {
                out.push(rows[i].clone());
                i += 1;
                continue;
            }
            let start = i;
            while i < rows.len() && !keep[i] {
                i += 1;
            }
            if i - start == 1 {
                out.push(rows[start].clone());
            } else {
                let mut tally = Tally::default();
                for row in &rows[start..i] {
                    tally.add(row.tally);
                }
                out.push(summary_row(rows[start].time_us, tally, false, inner));
            }
        }
        if out.len() <= max_rows {
            return out;
        }
        best = out;
    }
    // Still too many: show what fits and sum up the rest in the last row.
    let shown = max_rows - 1;
    let mut tally = Tally::default();
    for row in &best[shown..] {
        tally.add(row.tally);
    }
    let time_us = best[shown].time_us;
    best.truncate(shown);
    best.push(summary_row(time_us, tally, true, inner));
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(from: Side, summary: &str, lost: bool) -> Packet {
        Packet {
            id: 1,
            from,
            sent_us: 0,
            summary: summary.to_owned(),
            kind: crate::flow::PacketKind::Data,
            retransmission: false,
            bytes: 10,
            arrivals: if lost { vec![] } else { vec![5] },
            drop_reason: None,
        }
    }

    #[test]
    fn every_arrow_is_exactly_as_wide_as_the_space_between_the_timelines() {
        for inner in [29, 30, 61, 100] {
            for from in Side::BOTH {
                for lost in [false, true] {
                    for summary in ["ACK 1", "a very long summary that cannot possibly fit in"] {
                        let line = arrow(&packet(from, summary, lost), 0, false, inner);
                        assert_eq!(len(&line), inner + 2, "{line:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn a_lost_arrow_ends_in_a_cross_halfway() {
        let line = arrow(&packet(Side::A, "DATA seq 1", true), 0, false, 40);
        assert_eq!(line, "│──DATA seq 1───────✕ lost               │");
        let line = arrow(&packet(Side::B, "ACK 2", true), 0, false, 40);
        assert_eq!(line, "│               lost ✕────────────ACK 2──│");
    }
}
