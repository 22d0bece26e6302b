//! The sequence diagram as SVG: two timelines, each datagram a sloped arrow from its
//! send to its arrival.
//!
//! # What is drawn
//!
//! - A on the left, B on the right, time going down; the time of sends is written on the
//!   left axis, in milliseconds.
//! - Each datagram is an arrow from the sender's timeline at its send time to the
//!   receiver's at its arrival time, labelled along its slope with its summary: DATA
//!   blue, ACK green, anything else grey; a retransmission orange and dashed. A datagram
//!   that never arrived stops halfway across in a red `✕`, with the drop reason. A
//!   datagram the link duplicated has one arrow per arrival.
//! - A timer that fired is a clock mark on its timeline with its name (`RTO`, `probe`)
//!   and a bracket from when it was armed; messages delivered (left of A) and shown
//!   (right of B) are small marks beside the timelines; notes likewise.
//! - A legend at the bottom.
//!
//! Every arrow is one `<g class="packet" data-packet-id="…">` (with `data-from`,
//! `data-kind` = `data`/`ack`/`control`, and `data-retx`, `data-lost`, `data-dup` when
//! they apply); every lost arrow holds one `<g class="loss">` cross. The root `<svg>`
//! says how many datagrams the trace has (`data-packets`), how many arrows are drawn
//! (`data-arrows`) and how many datagrams were lost (`data-lost`), and which datagrams
//! (in order of sending, from 0, end excluded) are drawn in detail (`data-window-first`,
//! `data-window-end`). A test or a headless browser counts them.
//!
//! # The time scale
//!
//! Time is linear where things happen: the median one-way delay is drawn 80 px tall,
//! so slopes compare. A stretch with nothing happening that would be drawn taller than
//! 600 px (seven and a half one-way delays: a 3 s timeout, an idle user) is drawn 60 px tall
//! instead, with a break mark across both timelines and its real length on the axis
//! (`≈ 2.95 s`). Events closer than 2 px are drawn 2 px apart, so they keep their order.
//! If the diagram would still be taller than 12,000 px, the scale shrinks until it fits.
//!
//! # Long runs
//!
//! Up to [`SvgOptions::max_arrows`] arrows (400 by default) everything is drawn. Beyond
//! that the SVG has two parts, so that it stays readable and its size bounded (about
//! 300 KB whatever the run's length):
//!
//! 1. an **overview** strip of the whole run on a linear time axis: the datagrams sent
//!    in each of 190 time bins as bars (A→B above the axis, B→A below), red ticks for
//!    losses, orange for retransmissions, and a frame around the detailed window;
//! 2. the **detail**: the sequence diagram of the `max_arrows` consecutive datagrams
//!    with the most losses, retransmissions and duplicates (the earliest such window; the
//!    first `max_arrows` when nothing went wrong).

use std::collections::HashMap;
use std::fmt::Write as _;

use crate::flow::{Flow, Packet, PacketKind};
use crate::trace::{EventKind, Side, TimerKind, Trace};

/// How to draw the SVG.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SvgOptions {
    /// Draw every arrow up to this many; beyond, an overview and the most eventful
    /// window of this many arrows.
    pub max_arrows: usize,
    /// Whether to draw the legend at the bottom (the HTML report has its own).
    pub legend: bool,
}

/// The default [`SvgOptions::max_arrows`].
pub const DEFAULT_MAX_ARROWS: usize = 400;

impl Default for SvgOptions {
    fn default() -> Self {
        Self {
            max_arrows: DEFAULT_MAX_ARROWS,
            legend: true,
        }
    }
}

/// Escapes `text` for XML text and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Control characters other than tab and newline are not allowed in XML 1.0.
            c if c.is_control() && c != '\t' && c != '\n' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// Cuts `text` to `max` chars, ending in `…` when cut.
fn cut(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_owned()
    } else {
        let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
        out.push('…');
        out
    }
}

/// Milliseconds, for labels: `250 ms`, `12.5 ms`, `0.25 ms`, `2.95 s`.
pub fn format_duration(us: u64) -> String {
    let ms = us as f64 / 1000.0;
    if ms >= 1000.0 {
        format!("{:.2} s", ms / 1000.0)
    } else if ms >= 100.0 || ms.fract() == 0.0 {
        format!("{ms:.0} ms")
    } else if ms >= 1.0 {
        format!("{ms:.1} ms")
    } else {
        format!("{ms:.2} ms")
    }
}

const WIDTH: f64 = 880.0;
const A_X: f64 = 260.0;
const B_X: f64 = 620.0;
const AXIS_X: f64 = 70.0;
const HEAD_H: f64 = 64.0;
const DELAY_PX: f64 = 80.0;
const GAP_CAP_PX: f64 = 600.0;
const GAP_DRAWN_PX: f64 = 60.0;
const MIN_STEP_PX: f64 = 2.0;
const MAX_HEIGHT_PX: f64 = 12_000.0;
const LABEL_ROOM_PX: f64 = 16.0;
const OVERVIEW_H: f64 = 150.0;
const OVERVIEW_BINS: usize = 190;

const STYLE: &str = "
.udpchat-lab text{font-family:ui-sans-serif,system-ui,'DejaVu Sans',sans-serif;font-size:12px;fill:#222}
.udpchat-lab .timeline{stroke:#444;stroke-width:2;fill:none}
.udpchat-lab .endpoint rect{fill:#f4f4f4;stroke:#444}
.udpchat-lab .endpoint text{font-weight:bold;font-size:15px;text-anchor:middle}
.udpchat-lab .axis text,.udpchat-lab .caption{font-size:11px;fill:#666}
.udpchat-lab .axis line{stroke:#bbb}
.udpchat-lab .packet line{stroke-width:1.6}
.udpchat-lab .packet text{font-size:11px}
.udpchat-lab .packet[data-kind=data] line{stroke:#1f5fbf}
.udpchat-lab .packet[data-kind=data] text{fill:#1f5fbf}
.udpchat-lab .packet[data-kind=ack] line{stroke:#2e8b3e}
.udpchat-lab .packet[data-kind=ack] text{fill:#2e8b3e}
.udpchat-lab .packet[data-kind=control] line{stroke:#777}
.udpchat-lab .packet[data-kind=control] text{fill:#555}
.udpchat-lab .packet[data-retx] line{stroke:#d9822b;stroke-dasharray:6 3}
.udpchat-lab .packet[data-retx] text{fill:#b5651d}
.udpchat-lab .packet[data-dup] line{stroke-dasharray:2 3}
.udpchat-lab .packet:hover line{stroke-width:3}
.udpchat-lab .packet .loss line,.udpchat-lab .legend-loss line{stroke:#d62728;stroke-width:2.5;stroke-dasharray:none}
.udpchat-lab .packet .loss text{fill:#d62728;font-size:11px}
.udpchat-lab .timer circle,.udpchat-lab .legend-timer circle{fill:#fff;stroke:#7b3fa0;stroke-width:1.5}
.udpchat-lab .timer path,.udpchat-lab .legend-timer path{stroke:#7b3fa0;fill:none;stroke-width:1.2}
.udpchat-lab .timer text{fill:#7b3fa0;font-size:11px}
.udpchat-lab .mark text{font-size:11px;fill:#555}
.udpchat-lab .note text{font-size:11px;fill:#444;font-style:italic}
.udpchat-lab .gap path{stroke:#444;stroke-width:1.5;fill:none}
.udpchat-lab .gap text{font-size:11px;fill:#444}
.udpchat-lab .overview rect.bin-a{fill:#1f5fbf}
.udpchat-lab .overview rect.bin-b{fill:#2e8b3e}
.udpchat-lab .overview rect.frame{fill:#fde9a8;fill-opacity:.45;stroke:#c9a227}
.udpchat-lab .overview line.lost{stroke:#d62728}
.udpchat-lab .overview line.retx{stroke:#d9822b}
.udpchat-lab .overview line.axis{stroke:#444}
";

/// Time → y: linear where things happen, long idle stretches compressed.
#[derive(Debug)]
struct Scale {
    keys: Vec<u64>,
    ys: Vec<f64>,
    /// Microseconds per pixel outside compressed gaps.
    px_per_us: f64,
    /// Compressed gaps: (index of the key before it, real length).
    gaps: Vec<(usize, u64)>,
}

impl Scale {
    fn new(mut keys: Vec<u64>, delay_us: u64, top: f64) -> Self {
        keys.sort_unstable();
        keys.dedup();
        if keys.is_empty() {
            keys.push(0);
        }
        let mut px_per_us = DELAY_PX / delay_us.max(1) as f64;
        loop {
            let mut ys = Vec::with_capacity(keys.len());
            let mut gaps = Vec::new();
            let mut y = top;
            ys.push(y);
            for i in 1..keys.len() {
                let dt = keys[i] - keys[i - 1];
                let px = dt as f64 * px_per_us;
                if px > GAP_CAP_PX {
                    gaps.push((i - 1, dt));
                    y += GAP_DRAWN_PX;
                } else {
                    y += px.max(MIN_STEP_PX);
                }
                ys.push(y);
            }
            let height = y - top;
            // Shrink until it fits; the floor of MIN_STEP_PX per key bounds the loop's use.
            if height <= MAX_HEIGHT_PX || px_per_us < 1e-9 {
                return Self {
                    keys,
                    ys,
                    px_per_us,
                    gaps,
                };
            }
            px_per_us *= 0.7;
        }
    }

    fn y(&self, t: u64) -> f64 {
        match self.keys.binary_search(&t) {
            Ok(i) => self.ys[i],
            Err(0) => self.ys[0],
            Err(i) if i == self.keys.len() => self.ys[i - 1],
            Err(i) => {
                let (t0, t1) = (self.keys[i - 1], self.keys[i]);
                let (y0, y1) = (self.ys[i - 1], self.ys[i]);
                y0 + (y1 - y0) * (t - t0) as f64 / (t1 - t0) as f64
            }
        }
    }

    fn bottom(&self) -> f64 {
        self.ys.last().copied().unwrap_or(0.0)
    }
}

/// The datagrams drawn in detail: all, or a window of consecutive ones.
#[derive(Debug, Clone, Copy)]
struct Window {
    first: usize,
    /// One past the last.
    end: usize,
    start_us: u64,
    end_us: u64,
}

fn arrows_of(packet: &Packet) -> usize {
    packet.arrivals.len().max(1)
}

/// The window of consecutive datagrams, at most `max_arrows` arrows, with the most
/// losses, retransmissions and duplicates; the earliest of equals. Only maximal windows
/// (that could not take one more datagram) compete.
fn choose_window(packets: &[Packet], max_arrows: usize) -> (usize, usize) {
    let score = |p: &Packet| {
        3 * usize::from(p.lost())
            + 2 * usize::from(p.retransmission)
            + p.arrivals.len().saturating_sub(1)
    };
    let mut best: Option<((usize, usize), usize)> = None;
    let (mut end, mut arrows, mut sum) = (0, 0, 0);
    for start in 0..packets.len() {
        while end < packets.len()
            && (end == start || arrows + arrows_of(&packets[end]) <= max_arrows)
        {
            arrows += arrows_of(&packets[end]);
            sum += score(&packets[end]);
            end += 1;
        }
        if best.is_none_or(|(_, best_sum)| sum > best_sum) {
            best = Some(((start, end), sum));
        }
        if end == packets.len() {
            break;
        }
        arrows -= arrows_of(&packets[start]);
        sum -= score(&packets[start]);
    }
    best.map_or((0, 0), |(range, _)| range)
}

/// Draws `trace` as an SVG sequence diagram with the default options.
pub fn render_svg(trace: &Trace) -> String {
    render_svg_with(trace, &SvgOptions::default())
}

/// Draws `trace` as an SVG sequence diagram.
pub fn render_svg_with(trace: &Trace, options: &SvgOptions) -> String {
    let trace = trace.sorted();
    let flow = Flow::of(&trace);
    let total_arrows: usize = flow.packets.iter().map(arrows_of).sum();
    let window_range = if total_arrows > options.max_arrows.max(1) {
        Some(choose_window(&flow.packets, options.max_arrows.max(1)))
    } else {
        None
    };
    let (first, end) = window_range.unwrap_or((0, flow.packets.len()));
    let shown = &flow.packets[first..end];
    let window = Window {
        first,
        end,
        start_us: if window_range.is_some() {
            shown.first().map_or(0, |p| p.sent_us)
        } else {
            trace.events.first().map_or(0, |e| e.time_us)
        },
        end_us: if window_range.is_some() {
            shown
                .iter()
                .map(|p| p.arrivals.iter().copied().max().unwrap_or(p.sent_us))
                .max()
                .unwrap_or(0)
                .max(shown.last().map_or(0, |p| p.sent_us))
        } else {
            trace.end_us()
        },
    };

    let mut body = String::new();
    let mut top = 0.0;
    if window_range.is_some() {
        overview(&mut body, &trace, &flow, &window);
        top += OVERVIEW_H;
    }
    let height = diagram(&mut body, &trace, &flow, &window, top, options.legend);

    let lost = flow.packets.iter().filter(|p| p.lost()).count();
    let drawn: usize = shown.iter().map(arrows_of).sum();
    let mut out = String::with_capacity(body.len() + 4096);
    let _ = writeln!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"udpchat-lab\" width=\"{WIDTH}\" \
         height=\"{height:.0}\" viewBox=\"0 0 {WIDTH} {height:.0}\" data-packets=\"{}\" \
         data-arrows=\"{drawn}\" data-lost=\"{lost}\" data-window-first=\"{}\" \
         data-window-end=\"{}\" role=\"img\">",
        flow.packets.len(),
        window.first,
        window.end,
    );
    let _ = writeln!(
        out,
        "<title>udpchat sequence diagram: {} datagrams, {lost} lost</title>",
        flow.packets.len()
    );
    out.push_str("<style>");
    out.push_str(STYLE);
    out.push_str("</style>\n");
    out.push_str(&defs());
    let _ = writeln!(
        out,
        "<rect class=\"background\" width=\"{WIDTH}\" height=\"{height:.0}\" fill=\"#fff\"/>"
    );
    out.push_str(&body);
    out.push_str("</svg>\n");
    out
}

fn defs() -> String {
    let mut out = String::from("<defs>\n");
    for (id, color) in [
        ("head-data", "#1f5fbf"),
        ("head-ack", "#2e8b3e"),
        ("head-control", "#777"),
        ("head-retx", "#d9822b"),
    ] {
        let _ = writeln!(
            out,
            "<marker id=\"{id}\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" markerWidth=\"7\" \
             markerHeight=\"7\" orient=\"auto-start-reverse\"><path d=\"M0,0 L10,5 L0,10 z\" \
             fill=\"{color}\"/></marker>"
        );
    }
    out.push_str("</defs>\n");
    out
}

fn side_x(side: Side) -> f64 {
    match side {
        Side::A => A_X,
        Side::B => B_X,
    }
}

/// Per-lane memory of where the last label went, so that labels never overlap: a label
/// closer than `LABEL_ROOM_PX` to the previous one in its lane is left out (the arrow's
/// tooltip still has it).
#[derive(Default)]
struct Lanes(HashMap<&'static str, f64>);

impl Lanes {
    fn take(&mut self, lane: &'static str, y: f64) -> bool {
        match self.0.get(lane) {
            Some(&last) if (y - last).abs() < LABEL_ROOM_PX => false,
            _ => {
                self.0.insert(lane, y);
                true
            }
        }
    }
}

/// The sequence diagram of the window's datagrams and the events around them, from
/// `top`; returns the SVG's total height.
fn diagram(
    out: &mut String,
    trace: &Trace,
    flow: &Flow,
    window: &Window,
    top: f64,
    legend: bool,
) -> f64 {
    let packets = &flow.packets[window.first..window.end];
    let delay = flow.median_delay_us.unwrap_or(10_000).max(1);
    let inside = |t: u64| t >= window.start_us && t <= window.end_us;

    // The times that get a place on the axis.
    let mut keys = vec![window.start_us];
    for packet in packets {
        keys.push(packet.sent_us);
        keys.extend(&packet.arrivals);
        if packet.lost() {
            keys.push(packet.sent_us + delay / 2);
        }
    }
    let mut last_set: HashMap<(Side, TimerKind), u64> = HashMap::new();
    let mut brackets = Vec::new();
    for event in &trace.events {
        match &event.kind {
            EventKind::TimerSet { side, timer, .. } => {
                last_set.insert((*side, timer.clone()), event.time_us);
            }
            EventKind::TimerFired { side, timer } if inside(event.time_us) => {
                let set = last_set.get(&(*side, timer.clone())).copied();
                brackets.push((event.time_us, *side, timer.clone(), set));
                keys.push(event.time_us);
            }
            EventKind::Delivered { .. } | EventKind::Shown { .. } | EventKind::Note { .. }
                if inside(event.time_us) =>
            {
                keys.push(event.time_us);
            }
            _ => {}
        }
    }
    let scale = Scale::new(keys, delay, top + HEAD_H + 16.0);
    let bottom = scale.bottom() + 24.0;

    // Header: the endpoints, and how time is drawn.
    for side in Side::BOTH {
        endpoint_box(out, side, top + 14.0);
    }
    let _ = writeln!(
        out,
        "<text class=\"caption\" x=\"{AXIS_X}\" y=\"{:.1}\" text-anchor=\"end\">time ↓</text>",
        top + 40.0
    );
    let _ = writeln!(
        out,
        "<text class=\"caption\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
        (A_X + B_X) / 2.0,
        top + 58.0,
        escape(&format!(
            "1 ms = {:.2} px{}",
            scale.px_per_us * 1000.0,
            if scale.gaps.is_empty() {
                String::new()
            } else {
                format!(
                    "; idle stretches over {} drawn short (≈)",
                    format_duration((GAP_CAP_PX / scale.px_per_us) as u64)
                )
            }
        ))
    );

    // Timelines, interrupted at compressed gaps.
    for side in Side::BOTH {
        let x = side_x(side);
        let mut d = format!("M{x},{:.1}", top + HEAD_H);
        for &(i, _) in &scale.gaps {
            let (y0, y1) = (scale.ys[i], scale.ys[i + 1]);
            let _ = write!(d, " V{:.1} M{x},{:.1}", y0 + 16.0, y1 - 16.0);
        }
        let _ = write!(d, " V{bottom:.1}");
        let _ = writeln!(out, "<path class=\"timeline\" d=\"{d}\"/>");
    }
    for &(i, length) in &scale.gaps {
        let (y0, y1) = (scale.ys[i], scale.ys[i + 1]);
        out.push_str("<g class=\"gap\">");
        for x in [A_X, B_X] {
            for y in [y0 + 16.0, y1 - 16.0] {
                let _ = write!(out, "<path d=\"M{:.1},{:.1} l12,-5\"/>", x - 6.0, y + 2.5);
            }
        }
        let _ = writeln!(
            out,
            "<text x=\"{AXIS_X}\" y=\"{:.1}\" text-anchor=\"end\">≈ {}</text></g>",
            (y0 + y1) / 2.0 + 4.0,
            escape(&format_duration(length))
        );
    }

    // The axis: the time of each send that has room.
    out.push_str("<g class=\"axis\">");
    let mut last_tick = f64::NEG_INFINITY;
    for packet in packets {
        let y = scale.y(packet.sent_us);
        if y - last_tick >= 14.0 {
            last_tick = y;
            let _ = write!(
                out,
                "<text x=\"{AXIS_X}\" y=\"{:.1}\" text-anchor=\"end\">{:.1}</text>\
                 <line x1=\"{:.1}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\"/>",
                y + 4.0,
                packet.sent_us as f64 / 1000.0,
                AXIS_X + 4.0,
                AXIS_X + 12.0,
            );
        }
    }
    out.push_str("</g>\n");

    let mut lanes = Lanes::default();

    // Timers: a bracket from when the timer was armed to when it fired, a clock mark.
    for (fired, side, timer, set) in &brackets {
        let x = side_x(*side);
        let outward = if *side == Side::A { -1.0 } else { 1.0 };
        let y1 = scale.y(*fired);
        let _ = write!(
            out,
            "<g class=\"timer\" data-side=\"{side}\" data-timer=\"{}\"><title>{}</title>",
            escape(timer.as_str()),
            escape(&format!(
                "{side}: {} timer fired at {:.3} ms{}",
                timer.as_str(),
                *fired as f64 / 1000.0,
                set.map_or(String::new(), |set| format!(
                    " (armed at {:.3} ms)",
                    set as f64 / 1000.0
                ))
            ))
        );
        if let Some(set) = set {
            let y0 = scale.y(*set);
            let bx = x + outward * 14.0;
            let _ = write!(
                out,
                "<path d=\"M{:.1},{y0:.1} H{bx:.1} V{y1:.1} H{:.1}\" stroke-dasharray=\"3 2\"/>",
                x + outward * 4.0,
                x + outward * 6.0
            );
        }
        let _ = write!(
            out,
            "<circle cx=\"{x:.1}\" cy=\"{y1:.1}\" r=\"6\"/><path d=\"M{x:.1},{:.1} V{y1:.1} H{:.1}\"/>",
            y1 - 4.0,
            x + 3.0
        );
        let lane = if *side == Side::A {
            "outside-a"
        } else {
            "outside-b"
        };
        if lanes.take(lane, y1) {
            let (tx, anchor) = (
                x + outward * 20.0,
                if *side == Side::A { "end" } else { "start" },
            );
            let _ = write!(
                out,
                "<text x=\"{tx:.1}\" y=\"{:.1}\" text-anchor=\"{anchor}\">{} fired</text>",
                y1 + 4.0,
                escape(timer.short_label())
            );
        }
        out.push_str("</g>\n");
    }

    // Arrows.
    for packet in packets {
        arrow_group(out, packet, &scale, delay, &mut lanes);
    }

    // Marks beside the timelines: messages delivered and shown, notes.
    for event in &trace.events {
        if !inside(event.time_us) {
            continue;
        }
        let (class, side, text) = match &event.kind {
            EventKind::Delivered { side, seq, text } => (
                "mark",
                Some(*side),
                format!("✓ delivered {seq}{}", quote(text)),
            ),
            EventKind::Shown { side, seq, text } => {
                ("mark", Some(*side), format!("shown {seq}{}", quote(text)))
            }
            EventKind::Note { side, text } => ("note", *side, text.clone()),
            _ => continue,
        };
        let y = scale.y(event.time_us);
        let (x, anchor, lane) = match side {
            Some(Side::A) => (A_X - 20.0, "end", "outside-a"),
            Some(Side::B) => (B_X + 20.0, "start", "outside-b"),
            None => ((A_X + B_X) / 2.0, "middle", "middle"),
        };
        if lanes.take(lane, y) {
            let _ = writeln!(
                out,
                "<g class=\"{class}\"><text x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"{anchor}\">{}</text></g>",
                y + 4.0,
                escape(&cut(&text, 28))
            );
        }
    }

    for side in Side::BOTH {
        endpoint_box(out, side, bottom);
    }
    let mut height = bottom + 40.0;
    if legend {
        height = draw_legend(out, height);
    }
    height
}

fn quote(text: &str) -> String {
    if text.is_empty() {
        String::new()
    } else {
        format!(" “{text}”")
    }
}

fn endpoint_box(out: &mut String, side: Side, y: f64) {
    let x = side_x(side);
    let _ = writeln!(
        out,
        "<g class=\"endpoint\"><rect x=\"{:.1}\" y=\"{y:.1}\" width=\"44\" height=\"26\" rx=\"4\"/>\
         <text x=\"{x:.1}\" y=\"{:.1}\">{side}</text></g>",
        x - 22.0,
        y + 18.0
    );
}

fn arrow_group(out: &mut String, packet: &Packet, scale: &Scale, delay: u64, lanes: &mut Lanes) {
    let from = side_x(packet.from);
    let to = side_x(packet.from.other());
    let y0 = scale.y(packet.sent_us);
    let head = match (packet.retransmission, packet.kind) {
        (true, _) => "head-retx",
        (false, PacketKind::Data) => "head-data",
        (false, PacketKind::Ack) => "head-ack",
        (false, PacketKind::Control) => "head-control",
    };
    let ends: Vec<(Option<u64>, f64, f64)> = if packet.lost() {
        let t = packet.sent_us + delay / 2;
        vec![(None, (from + to) / 2.0, scale.y(t))]
    } else {
        packet
            .arrivals
            .iter()
            .map(|&t| (Some(t), to, scale.y(t)))
            .collect()
    };
    for (copy, (arrival, x1, y1)) in ends.into_iter().enumerate() {
        let mut label = packet.summary.clone();
        if packet.retransmission {
            label.push_str(" (retx)");
        }
        if copy > 0 {
            label.push_str(" (dup)");
        }
        let title = format!(
            "{} → {}: {}{} · sent {:.3} ms · {} · {} bytes · id {}",
            packet.from,
            packet.from.other(),
            packet.summary,
            if packet.retransmission {
                " (retransmission)"
            } else {
                ""
            },
            packet.sent_us as f64 / 1000.0,
            match arrival {
                Some(t) => format!("arrived {:.3} ms", t as f64 / 1000.0),
                None => format!("never arrived ({})", packet.loss_label()),
            },
            packet.bytes,
            packet.id,
        );
        let _ = write!(
            out,
            "<g class=\"packet\" data-packet-id=\"{}\" data-from=\"{}\" data-kind=\"{}\"{}{}{}><title>{}</title>",
            packet.id,
            packet.from,
            packet.kind.as_str(),
            if packet.retransmission { " data-retx=\"true\"" } else { "" },
            if arrival.is_none() { " data-lost=\"true\"" } else { "" },
            if copy > 0 { " data-dup=\"true\"" } else { "" },
            escape(&title)
        );
        let marker = if arrival.is_some() {
            format!(" marker-end=\"url(#{head})\"")
        } else {
            String::new()
        };
        let _ = write!(
            out,
            "<line x1=\"{from:.1}\" y1=\"{y0:.1}\" x2=\"{x1:.1}\" y2=\"{y1:.1}\"{marker}/>"
        );
        // The label along the slope, a third of the way from the sender, reading left
        // to right.
        let f = if arrival.is_some() { 0.3 } else { 0.5 };
        let (lx, ly) = (from + (x1 - from) * f, y0 + (y1 - y0) * f);
        let lane = if packet.from == Side::A {
            "a-to-b"
        } else {
            "b-to-a"
        };
        if lanes.take(lane, ly) {
            let mut angle = (y1 - y0).atan2(x1 - from).to_degrees();
            if angle > 90.0 {
                angle -= 180.0;
            } else if angle < -90.0 {
                angle += 180.0;
            }
            let _ = write!(
                out,
                "<text x=\"{lx:.1}\" y=\"{:.1}\" text-anchor=\"middle\" transform=\"rotate({angle:.1} {lx:.1} {ly:.1})\">{}</text>",
                ly - 4.0,
                escape(&cut(&label, 34))
            );
        }
        if arrival.is_none() {
            let _ = write!(
                out,
                "<g class=\"loss\"><line x1=\"{:.1}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\"/>\
                 <line x1=\"{:.1}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\"/>\
                 <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"{}\">{}</text></g>",
                x1 - 6.0,
                y1 - 6.0,
                x1 + 6.0,
                y1 + 6.0,
                x1 - 6.0,
                y1 + 6.0,
                x1 + 6.0,
                y1 - 6.0,
                if packet.from == Side::A {
                    x1 + 10.0
                } else {
                    x1 - 10.0
                },
                y1 + 4.0,
                if packet.from == Side::A {
                    "start"
                } else {
                    "end"
                },
                escape(&cut(packet.loss_label(), 24))
            );
        }
        out.push_str("</g>\n");
    }
}

fn draw_legend(out: &mut String, y: f64) -> f64 {
    let y = y + 4.0;
    out.push_str("<g class=\"legend\">");
    let mut x = 40.0;
    for (kind, retx, label) in [
        ("data", false, "DATA"),
        ("ack", false, "ACK"),
        ("control", false, "other"),
        ("data", true, "retransmission"),
    ] {
        let head = if retx {
            "head-retx".to_owned()
        } else {
            format!("head-{kind}")
        };
        let _ = write!(
            out,
            "<g class=\"legend-packet\" data-kind=\"{kind}\"{}><line x1=\"{x:.1}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\" marker-end=\"url(#{head})\" stroke=\"{}\" stroke-width=\"1.6\"{}/>\
             <text x=\"{:.1}\" y=\"{:.1}\">{label}</text></g>",
            if retx { " data-retx=\"true\"" } else { "" },
            x + 34.0,
            match (kind, retx) {
                (_, true) => "#d9822b",
                ("data", _) => "#1f5fbf",
                ("ack", _) => "#2e8b3e",
                _ => "#777",
            },
            if retx { " stroke-dasharray=\"6 3\"" } else { "" },
            x + 40.0,
            y + 4.0
        );
        x += 50.0 + 7.0 * label.len() as f64;
    }
    let _ = write!(
        out,
        "<g class=\"legend-loss\"><line x1=\"{:.1}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\"/><line x1=\"{:.1}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\"/></g>\
         <text x=\"{:.1}\" y=\"{:.1}\">lost</text>",
        x - 5.0,
        y - 5.0,
        x + 5.0,
        y + 5.0,
        x - 5.0,
        y + 5.0,
        x + 5.0,
        y - 5.0,
        x + 10.0,
        y + 4.0
    );
    x += 50.0;
    let _ = write!(
        out,
        "<g class=\"legend-timer\"><circle cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"6\"/><path d=\"M{x:.1},{:.1} V{y:.1} H{:.1}\"/></g>\
         <text x=\"{:.1}\" y=\"{:.1}\">timer fired (bracket: armed → fired)</text>",
        y - 4.0,
        x + 3.0,
        x + 12.0,
        y + 4.0
    );
    out.push_str("</g>\n");
    y + 24.0
}

/// The overview of a long run: datagrams per time bin, losses and retransmissions, and
/// the frame of the window drawn in detail below.
fn overview(out: &mut String, trace: &Trace, flow: &Flow, window: &Window) {
    let start = trace.events.first().map_or(0, |e| e.time_us);
    let end = trace.end_us().max(start + 1);
    let (left, right) = (AXIS_X + 10.0, WIDTH - 30.0);
    let bin_w = (right - left) / OVERVIEW_BINS as f64;
    let x_of = |t: u64| left + (right - left) * (t - start) as f64 / (end - start) as f64;
    let bin_of = |t: u64| {
        (((t - start) as f64 / (end - start) as f64 * OVERVIEW_BINS as f64) as usize)
            .min(OVERVIEW_BINS - 1)
    };
    let mut counts = [[0usize; OVERVIEW_BINS]; 2];
    for packet in &flow.packets {
        counts[packet.from.index()][bin_of(packet.sent_us)] += 1;
    }
    let max = counts.iter().flatten().copied().max().unwrap_or(1).max(1) as f64;
    let mid = 70.0;
    let bar_h = 40.0;
    let _ = writeln!(
        out,
        "<g class=\"overview\" data-bins=\"{OVERVIEW_BINS}\"><text x=\"{left:.1}\" y=\"16\">{}</text>",
        escape(&format!(
            "The whole run: {} datagrams over {}. A → B above the line, B → A below; red: lost, orange: retransmitted.",
            flow.packets.len(),
            format_duration(end - start),
        ))
    );
    let _ = writeln!(
        out,
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
        (left + right) / 2.0,
        mid + bar_h + 26.0,
        escape(&format!(
            "Framed (yellow): datagrams {}–{}, drawn below.",
            window.first + 1,
            window.end
        ))
    );
    let _ = writeln!(
        out,
        "<rect class=\"frame\" x=\"{:.1}\" y=\"24\" width=\"{:.1}\" height=\"{:.1}\"/>",
        x_of(window.start_us),
        (x_of(window.end_us) - x_of(window.start_us)).max(2.0),
        2.0 * bar_h + 14.0
    );
    for side in Side::BOTH {
        for (bin, &count) in counts[side.index()].iter().enumerate() {
            if count == 0 {
                continue;
            }
            let h = (count as f64 / max * bar_h).max(1.0);
            let x = left + bin as f64 * bin_w;
            let y = if side == Side::A { mid - h } else { mid };
            let _ = write!(
                out,
                "<rect class=\"bin-{}\" x=\"{x:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{h:.1}\"><title>{count}</title></rect>",
                if side == Side::A { "a" } else { "b" },
                (bin_w - 0.5).max(0.5)
            );
        }
    }
    out.push('\n');
    let mut ticks = [vec![false; OVERVIEW_BINS], vec![false; OVERVIEW_BINS]];
    for packet in &flow.packets {
        let bin = bin_of(packet.sent_us);
        if packet.lost() {
            ticks[0][bin] = true;
        }
        if packet.retransmission {
            ticks[1][bin] = true;
        }
    }
    for (bin, _) in ticks[0].iter().enumerate().filter(|(_, &on)| on) {
        let x = left + (bin as f64 + 0.5) * bin_w;
        let _ = write!(
            out,
            "<line class=\"lost\" x1=\"{x:.1}\" y1=\"22\" x2=\"{x:.1}\" y2=\"29\"/>"
        );
    }
    for (bin, _) in ticks[1].iter().enumerate().filter(|(_, &on)| on) {
        let x = left + (bin as f64 + 0.5) * bin_w;
        let _ = write!(
            out,
            "<line class=\"retx\" x1=\"{x:.1}\" y1=\"{:.1}\" x2=\"{x:.1}\" y2=\"{:.1}\"/>",
            mid + bar_h + 4.0,
            mid + bar_h + 11.0
        );
    }
    let _ = writeln!(
        out,
        "\n<line class=\"axis\" x1=\"{left:.1}\" y1=\"{mid}\" x2=\"{right:.1}\" y2=\"{mid}\"/>\
         <text x=\"{left:.1}\" y=\"{:.1}\">{}</text><text x=\"{right:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text></g>",
        mid + bar_h + 26.0,
        escape(&format_duration(start)),
        mid + bar_h + 26.0,
        escape(&format_duration(end))
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_for_xml() {
        assert_eq!(
            escape("<a href=\"x\">&'\u{7}"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&apos; "
        );
    }

    #[test]
    fn long_idle_stretches_are_compressed_and_short_ones_are_not() {
        // One-way delay 25 ms: 80 px. 100 ms is 320 px; 3 s would be 9600 px.
        let scale = Scale::new(vec![0, 25_000, 125_000, 3_125_000], 25_000, 0.0);
        assert_eq!(scale.ys, vec![0.0, 80.0, 400.0, 400.0 + GAP_DRAWN_PX]);
        assert_eq!(scale.gaps, vec![(2, 3_000_000)]);
        assert!((scale.y(75_000) - 240.0).abs() < 1e-9);
    }

    #[test]
    fn close_events_keep_their_order() {
        let scale = Scale::new(vec![0, 1, 2], 25_000, 0.0);
        assert_eq!(scale.ys, vec![0.0, MIN_STEP_PX, 2.0 * MIN_STEP_PX]);
    }

    #[test]
    fn durations_read_well() {
        assert_eq!(format_duration(250_000), "250 ms");
        assert_eq!(format_duration(12_500), "12.5 ms");
        assert_eq!(format_duration(250), "0.25 ms");
        assert_eq!(format_duration(2_950_000), "2.95 s");
    }
}
