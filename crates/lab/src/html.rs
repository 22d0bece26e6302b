//! One self-contained HTML report of a run: nothing is fetched to view it.
//!
//! The page has, top to bottom:
//!
//! 1. the title and a line saying how many datagrams over how long;
//! 2. a **summary table**: per endpoint, datagrams sent, retransmissions, lost, bytes,
//!    datagrams received, timers fired, messages delivered and shown; and warnings when
//!    the trace looks incomplete (arrivals that match no send, an endpoint with no
//!    events);
//! 3. the **sequence diagram** ([`crate::svg`]) in a scrolling box with zoom buttons
//!    (−, 100%, +, fit to width), preceded by a legend and, for a long run, a sentence
//!    saying which window is drawn in detail;
//! 4. **plots over time** (inline SVG line charts, one line per endpoint, steps since a
//!    value holds until the next): smoothed RTT, RTO, messages in flight and the
//!    congestion window. Their time axis is linear over the whole run (not compressed
//!    like the diagram's).
//!
//! CSS and the few lines of JavaScript (the zoom) are inline; there are no links, no
//! fonts, no images to load. The page is also well-formed XML (a polyglot document), so
//! an XML parser can check it.

use std::fmt::Write as _;

use crate::flow::Flow;
use crate::svg::{self, escape, format_duration, SvgOptions};
use crate::trace::{EventKind, Side, Trace};

const CSS: &str = "
body{font-family:ui-sans-serif,system-ui,'DejaVu Sans',sans-serif;margin:24px auto;max-width:940px;color:#222;padding:0 12px}
h1{font-size:22px;margin:0 0 4px}
h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #ddd;padding-bottom:4px}
p.sub{color:#666;margin:0}
table.summary{border-collapse:collapse;font-size:14px}
table.summary th,table.summary td{border:1px solid #ccc;padding:4px 10px;text-align:right}
table.summary th:first-child,table.summary td:first-child{text-align:left}
table.summary thead th{background:#f4f4f4}
.warning{background:#fff4e0;border:1px solid #e8b466;padding:6px 10px;margin:8px 0;font-size:14px}
ul.legend{list-style:none;padding:0;margin:0 0 8px;display:flex;flex-wrap:wrap;gap:6px 18px;font-size:13px}
ul.legend li{display:flex;align-items:center;gap:6px}
.zoom{margin:6px 0;font-size:13px}
.zoom button{font-size:13px;min-width:2.4em;margin-right:4px}
.diagram{overflow:auto;max-height:85vh;border:1px solid #ddd;background:#fff}
.diagram svg{display:block}
p.note{font-size:13px;color:#555;margin:4px 0}
.plots svg{display:block;margin:0 0 10px}
.plot text{font-family:ui-sans-serif,system-ui,'DejaVu Sans',sans-serif;font-size:11px;fill:#444}
.plot .title{font-size:13px;font-weight:bold;fill:#222}
.plot .grid{stroke:#eee}
.plot .axis{stroke:#888}
.plot .series{fill:none;stroke-width:1.6}
.plot .series[data-side=A]{stroke:#0b7285}
.plot .series[data-side=B]{stroke:#c2255c}
.plot .key[data-side=A]{fill:#0b7285}
.plot .key[data-side=B]{fill:#c2255c}
";

/// The zoom buttons: scale the diagram's SVG, keeping its proportions. Wrapped in a
/// commented CDATA section so that the page stays well-formed XML.
const SCRIPT: &str = "//<![CDATA[
(function(){
  var box=document.getElementById('diagram');
  var svg=box&&box.querySelector('svg');
  if(!svg){return;}
  var w=parseFloat(svg.getAttribute('width')),h=parseFloat(svg.getAttribute('height'));
  var zoom=1,label=document.getElementById('zoom-level');
  function set(z){
    zoom=Math.min(8,Math.max(0.1,z));
    svg.style.width=(w*zoom)+'px';svg.style.height=(h*zoom)+'px';
    label.textContent=Math.round(zoom*100)+'%';
  }
  set(1);
  document.querySelectorAll('.zoom button').forEach(function(b){
    b.addEventListener('click',function(){
      var a=b.getAttribute('data-zoom');
      if(a==='in'){set(zoom*1.25);}else if(a==='out'){set(zoom/1.25);}
      else if(a==='fit'){set((box.clientWidth-2)/w);}else{set(1);}
    });
  });
})();
//]]>";

/// Draws `trace` as a self-contained HTML report titled `title`.
pub fn render_html(trace: &Trace, title: &str) -> String {
    let trace = trace.sorted();
    let flow = Flow::of(&trace);
    let svg = svg::render_svg_with(
        &trace,
        &SvgOptions {
            legend: false,
            ..SvgOptions::default()
        },
    );
    let start = trace.events.first().map_or(0, |e| e.time_us);
    let end = trace.end_us();

    let mut out = String::with_capacity(svg.len() + 64 * 1024);
    out.push_str(
        "<!DOCTYPE html>\n<html lang=\"en\" xmlns=\"http://www.w3.org/1999/xhtml\">\n<head>\n",
    );
    out.push_str("<meta charset=\"utf-8\"/>\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"/>\n");
    let _ = writeln!(out, "<title>{}</title>", escape(title));
    let _ = writeln!(out, "<style>{CSS}</style>\n</head>\n<body>");
    let _ = writeln!(out, "<header><h1>{}</h1>", escape(title));
    let _ = writeln!(
        out,
        "<p class=\"sub\">{} datagrams over {}, drawn by udpchat lab from the run's trace.</p></header>",
        flow.packets.len(),
        format_duration(end.saturating_sub(start))
    );

    summary(&mut out, &trace, &flow);

    out.push_str("<section id=\"diagram-section\">\n<h2>Sequence diagram</h2>\n");
    legend(&mut out);
    let arrows: usize = flow.packets.iter().map(|p| p.arrivals.len().max(1)).sum();
    if arrows > svg::DEFAULT_MAX_ARROWS {
        let _ = writeln!(
            out,
            "<p class=\"note\">This run has {} datagrams: the strip at the top shows all of them \
             over time; below it, the most eventful {} arrows (most losses, retransmissions and \
             duplicates) are drawn in full. Hover an arrow for its details.</p>",
            flow.packets.len(),
            svg::DEFAULT_MAX_ARROWS
        );
    } else {
        out.push_str("<p class=\"note\">Hover an arrow for its details.</p>\n");
    }
    out.push_str(
        "<div class=\"zoom\"><button type=\"button\" data-zoom=\"out\">−</button>\
         <button type=\"button\" data-zoom=\"reset\">100%</button>\
         <button type=\"button\" data-zoom=\"in\">+</button>\
         <button type=\"button\" data-zoom=\"fit\">fit width</button> \
         zoom <span id=\"zoom-level\">100%</span></div>\n",
    );
    out.push_str("<div class=\"diagram\" id=\"diagram\">\n");
    out.push_str(&svg);
    out.push_str("</div>\n</section>\n");

    plots(&mut out, &trace, start, end);

    let _ = writeln!(out, "<script>{SCRIPT}</script>\n</body>\n</html>");
    out
}

fn summary(out: &mut String, trace: &Trace, flow: &Flow) {
    out.push_str("<section id=\"summary\">\n<h2>Summary</h2>\n<table class=\"summary\">\n<thead><tr><th>endpoint</th><th>datagrams sent</th><th>retransmissions</th><th>lost</th><th>bytes sent</th><th>received</th><th>timers fired</th><th>messages delivered</th><th>messages shown</th></tr></thead>\n<tbody>\n");
    for side in Side::BOTH {
        let s = flow.side(side);
        let _ = writeln!(
            out,
            "<tr data-side=\"{side}\"><td>{side}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            s.sent, s.retransmitted, s.lost, s.bytes_sent, s.received, s.timers_fired, s.delivered, s.shown
        );
    }
    out.push_str("</tbody>\n</table>\n");
    if flow.unmatched_receives > 0 {
        let _ = writeln!(
            out,
            "<p class=\"warning\">{} arrivals match no datagram sent in this trace: the other \
             endpoint's trace is missing, or the two traces are not of the same run.</p>",
            flow.unmatched_receives
        );
    }
    for side in Side::BOTH {
        if !trace.events.iter().any(|e| e.kind.side() == Some(side)) && !trace.events.is_empty() {
            let _ = writeln!(
                out,
                "<p class=\"warning\">The trace has no events of {side}: every datagram sent to \
                 {side} is drawn as lost.</p>"
            );
        }
    }
    out.push_str("</section>\n");
}

fn legend(out: &mut String) {
    let arrow = |color: &str, dash: &str| {
        format!(
            "<svg width=\"44\" height=\"12\" viewBox=\"0 0 44 12\" aria-hidden=\"true\"><line x1=\"1\" y1=\"6\" x2=\"36\" y2=\"6\" stroke=\"{color}\" stroke-width=\"2\"{dash}/><path d=\"M34,1 L43,6 L34,11 z\" fill=\"{color}\"/></svg>"
        )
    };
    out.push_str("<ul class=\"legend\">\n");
    let _ = writeln!(
        out,
        "<li>{}DATA (carries messages)</li>",
        arrow("#1f5fbf", "")
    );
    let _ = writeln!(out, "<li>{}ACK</li>", arrow("#2e8b3e", ""));
    let _ = writeln!(
        out,
        "<li>{}other (HELLO, handshake)</li>",
        arrow("#777", "")
    );
    let _ = writeln!(
        out,
        "<li>{}retransmission</li>",
        arrow("#d9822b", " stroke-dasharray=\"6 3\"")
    );
    out.push_str("<li><svg width=\"14\" height=\"14\" viewBox=\"0 0 14 14\" aria-hidden=\"true\"><path d=\"M2,2 L12,12 M2,12 L12,2\" stroke=\"#d62728\" stroke-width=\"2.5\"/></svg>lost (never arrived), with the reason</li>\n");
    out.push_str("<li><svg width=\"14\" height=\"14\" viewBox=\"0 0 14 14\" aria-hidden=\"true\"><circle cx=\"7\" cy=\"7\" r=\"5.5\" fill=\"#fff\" stroke=\"#7b3fa0\" stroke-width=\"1.5\"/><path d=\"M7,3 V7 H10\" stroke=\"#7b3fa0\" fill=\"none\"/></svg>timer fired; its dashed bracket runs from when it was armed</li>\n");
    out.push_str("<li><svg width=\"20\" height=\"14\" viewBox=\"0 0 20 14\" aria-hidden=\"true\"><path d=\"M4,5 l12,-5 M4,14 l12,-5\" stroke=\"#444\" stroke-width=\"1.5\"/></svg>a long idle stretch drawn short (its real length on the axis)</li>\n");
    out.push_str("</ul>\n");
}

/// One metric's points per endpoint: (time, value).
type Series = [Vec<(u64, f64)>; 2];

fn plots(out: &mut String, trace: &Trace, start: u64, end: u64) {
    let mut srtt: Series = Default::default();
    let mut rto: Series = Default::default();
    let mut flight: Series = Default::default();
    let mut cwnd: Series = Default::default();
    for event in &trace.events {
        if let EventKind::Metrics {
            side,
            srtt_us,
            rto_us,
            cwnd_bytes,
            in_flight,
        } = &event.kind
        {
            let i = side.index();
            let t = event.time_us;
            if let Some(v) = srtt_us {
                srtt[i].push((t, *v as f64 / 1000.0));
            }
            if let Some(v) = rto_us {
                rto[i].push((t, *v as f64 / 1000.0));
            }
            if let Some(v) = in_flight {
                flight[i].push((t, *v as f64));
            }
            if let Some(v) = cwnd_bytes {
                cwnd[i].push((t, *v as f64));
            }
        }
    }
    out.push_str("<section id=\"plots\" class=\"plots\">\n<h2>Over time</h2>\n");
    out.push_str("<p class=\"note\">Each endpoint's own view; time is linear over the whole run. A value holds until it next changes.</p>\n");
    let span = (start, end);
    plot(
        out,
        "srtt",
        "Smoothed round-trip time (SRTT)",
        "ms",
        &srtt,
        span,
        false,
    );
    plot(
        out,
        "rto",
        "Retransmission timeout (RTO)",
        "ms",
        &rto,
        span,
        false,
    );
    let in_flight = "Messages in flight (sent, not yet acknowledged)";
    plot(out, "in-flight", in_flight, "messages", &flight, span, true);
    plot(out, "cwnd", "Congestion window", "bytes", &cwnd, span, true);
    out.push_str("</section>\n");
}

/// A round step for `max / 4`: 1, 2 or 5 times a power of ten.
fn nice_step(max: f64) -> f64 {
    let raw = (max / 4.0).max(f64::MIN_POSITIVE);
    let power = 10f64.powf(raw.log10().floor());
    let m = raw / power;
    let nice = if m <= 1.0 {
        1.0
    } else if m <= 2.0 {
        2.0
    } else if m <= 5.0 {
        5.0
    } else {
        10.0
    };
    nice * power
}

fn format_value(v: f64) -> String {
    if v >= 1000.0 && (v / 1000.0).fract() == 0.0 {
        format!("{:.0}k", v / 1000.0)
    } else if v.fract() == 0.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

const PLOT_W: f64 = 900.0;
const PLOT_H: f64 = 170.0;
const PLOT_LEFT: f64 = 64.0;
const PLOT_RIGHT: f64 = 20.0;
const PLOT_TOP: f64 = 26.0;
const PLOT_BOTTOM: f64 = 28.0;

/// One chart of `series` over the run's `span` of time; `integer` for counts, whose
/// axis has no fractional steps.
fn plot(
    out: &mut String,
    metric: &str,
    title: &str,
    unit: &str,
    series: &Series,
    (start, end): (u64, u64),
    integer: bool,
) {
    let points: usize = series.iter().map(Vec::len).sum();
    let end = end.max(start + 1);
    let (x0, x1) = (PLOT_LEFT, PLOT_W - PLOT_RIGHT);
    let (y0, y1) = (PLOT_H - PLOT_BOTTOM, PLOT_TOP);
    let max = series.iter().flatten().map(|&(_, v)| v).fold(0.0, f64::max);
    let step = nice_step(if max > 0.0 { max * 1.1 } else { 1.0 });
    let step = if integer { step.max(1.0) } else { step };
    let top = (max * 1.1 / step).ceil().max(1.0) * step;
    let x_of = |t: u64| x0 + (x1 - x0) * (t.saturating_sub(start)) as f64 / (end - start) as f64;
    let y_of = |v: f64| y0 - (y0 - y1) * v / top;

    let _ = write!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"plot\" data-metric=\"{metric}\" data-points=\"{points}\" width=\"{PLOT_W}\" height=\"{PLOT_H}\" viewBox=\"0 0 {PLOT_W} {PLOT_H}\" role=\"img\">\
         <title>{}</title><text class=\"title\" x=\"{x0}\" y=\"16\">{} ({})</text>",
        escape(title),
        escape(title),
        escape(unit)
    );
    // Horizontal grid and the y axis labels.
    let mut v = 0.0;
    while v <= top + step / 2.0 {
        let y = y_of(v);
        let _ = write!(
            out,
            "<line class=\"grid\" x1=\"{x0}\" y1=\"{y:.1}\" x2=\"{x1}\" y2=\"{y:.1}\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            x0 - 6.0,
            y + 4.0,
            format_value(v)
        );
        v += step;
    }
    // The time axis: five labels.
    let _ = write!(
        out,
        "<line class=\"axis\" x1=\"{x0}\" y1=\"{y0}\" x2=\"{x1}\" y2=\"{y0}\"/>"
    );
    for i in 0..=4 {
        let t = start + (end - start) * i / 4;
        let _ = write!(
            out,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"{}\">{}</text>",
            x_of(t),
            y0 + 16.0,
            match i {
                0 => "start",
                4 => "end",
                _ => "middle",
            },
            escape(&format_duration(t))
        );
    }
    if points == 0 {
        let _ = write!(
            out,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">no values in this trace</text>",
            (x0 + x1) / 2.0,
            (y0 + y1) / 2.0
        );
    }
    for side in Side::BOTH {
        let points = &series[side.index()];
        if points.is_empty() {
            continue;
        }
        let _ = write!(
            out,
            "<path class=\"series\" data-side=\"{side}\" data-points=\"{}\" d=\"{}\"/>",
            points.len(),
            step_path(points, &x_of, &y_of, x1)
        );
        let key_x = x1 - if side == Side::A { 60.0 } else { 24.0 };
        let _ = write!(
            out,
            "<rect class=\"key\" data-side=\"{side}\" x=\"{key_x:.1}\" y=\"8\" width=\"10\" height=\"10\"/>\
             <text x=\"{:.1}\" y=\"17\">{side}</text>",
            key_x + 13.0
        );
    }
    out.push_str("</svg>\n");
}

/// A step line through `points`, held to `right`. Points falling in the same pixel
/// column become one vertical stroke over their range, so a long run's path stays about
/// as long as the plot is wide.
fn step_path(
    points: &[(u64, f64)],
    x_of: &dyn Fn(u64) -> f64,
    y_of: &dyn Fn(f64) -> f64,
    right: f64,
) -> String {
    let mut d = String::new();
    let mut column: Option<(i64, f64, f64, f64)> = None; // (column, min, max, last) in y
    let flush = |d: &mut String, (col, low, high, last): (i64, f64, f64, f64)| {
        let _ = write!(d, " H{col} V{low:.1} V{high:.1} V{last:.1}");
    };
    for (i, &(t, v)) in points.iter().enumerate() {
        let (x, y) = (x_of(t), y_of(v));
        let col = x.round() as i64;
        if i == 0 {
            let _ = write!(d, "M{x:.1},{y:.1}");
            column = Some((col, y, y, y));
            continue;
        }
        column = match column {
            Some((c, low, high, _)) if c == col => Some((c, low.min(y), high.max(y), y)),
            Some(done) => {
                flush(&mut d, done);
                Some((col, y, y, y))
            }
            None => Some((col, y, y, y)),
        };
    }
    if let Some(done) = column {
        flush(&mut d, done);
    }
    let _ = write!(d, " H{right:.1}");
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_are_round() {
        assert_eq!(nice_step(220.0), 100.0);
        assert_eq!(nice_step(33.0), 10.0);
        assert_eq!(nice_step(7.0), 2.0);
        assert_eq!(nice_step(13_200.0), 5000.0);
    }

    #[test]
    fn many_points_in_one_column_make_one_stroke() {
        let points: Vec<(u64, f64)> = (0..1000).map(|i| (i, (i % 7) as f64)).collect();
        let d = step_path(&points, &|t| t as f64 / 500.0, &|v| v, 100.0);
        // Three pixel columns, then the hold to the right edge.
        assert_eq!(d.matches('H').count(), 4, "{d}");
    }
}
