//! The HTML report: self-contained, well-formed, with the diagram, the table and the
//! plots.

mod common;

use std::time::Instant;

use common::{keep, parse_xml, with_class};
use udpchat_lab::{render_html, Flow, Side};

/// Nothing in the page makes a browser fetch anything.
fn assert_self_contained(html: &str) {
    for needle in [
        " src=", " href=", "<link", "@import", "url(http", "<iframe", "<object", "<img",
    ] {
        assert!(!html.contains(needle), "the page contains {needle:?}");
    }
    // The only addresses are XML namespace names, which are never fetched.
    let addresses = html.matches("http").count();
    let namespaces = html.matches("\"http://www.w3.org/2000/svg\"").count()
        + html.matches("\"http://www.w3.org/1999/xhtml\"").count();
    assert_eq!(addresses, namespaces);
}

#[test]
fn the_report_of_a_lost_packet() {
    let trace = common::lost_packet();
    let html = render_html(&trace, "rdt 3.0 (b): lost packet <& friends>");
    keep("rdt30-b-lost-packet.html", &html);
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert_self_contained(&html);
    let elements = parse_xml(&html);
    assert_eq!(elements[0].name, "html");

    // The title, escaped.
    assert!(html.contains("<title>rdt 3.0 (b): lost packet &lt;&amp; friends&gt;</title>"));

    // The diagram, its arrows inside the zoomable box.
    let flow = Flow::of(&trace);
    let arrows = with_class(&elements, "packet");
    assert_eq!(arrows.len(), flow.packets.len());
    assert!(arrows
        .iter()
        .all(|a| a.ancestors.iter().any(|n| n == "svg")));
    assert_eq!(with_class(&elements, "loss").len(), 1);

    // The summary table: one row per endpoint with its counts.
    let rows: Vec<_> = elements
        .iter()
        .filter(|e| e.name == "tr" && e.attr("data-side").is_some())
        .collect();
    assert_eq!(rows.len(), 2);
    let a = flow.side(Side::A);
    assert_eq!((a.sent, a.retransmitted, a.lost, a.delivered), (3, 1, 1, 2));
    assert!(html.contains("<tr data-side=\"A\"><td>A</td><td>3</td><td>1</td><td>1</td>"));

    // Four plots; A's metrics are drawn, B has none.
    let plots = with_class(&elements, "plot");
    let metrics: Vec<_> = plots
        .iter()
        .map(|p| p.attr("data-metric").unwrap())
        .collect();
    assert_eq!(metrics, vec!["srtt", "rto", "in-flight", "cwnd"]);
    let series = with_class(&elements, "series");
    assert_eq!(series.len(), 4);
    assert!(series.iter().all(|s| s.attr("data-side") == Some("A")));
    assert!(!html.contains("no values in this trace"));
}

#[test]
fn a_one_sided_trace_is_flagged() {
    let mut trace = common::no_loss();
    trace.events.retain(|e| e.kind.side() != Some(Side::B));
    let html = render_html(&trace, "A only");
    parse_xml(&html);
    assert!(html.contains("The trace has no events of B"));
}

#[test]
fn ten_thousand_datagrams_make_a_bounded_page() {
    let trace = common::synthetic(5000, 50);
    let started = Instant::now();
    let html = render_html(&trace, "10,000 datagrams");
    let took = started.elapsed();
    keep("ten-thousand.html", &html);
    eprintln!("10k datagrams: {} bytes of HTML in {took:?}", html.len());
    if !cfg!(debug_assertions) {
        assert!(took.as_secs_f64() < 1.0, "took {took:?}");
    }
    assert!(html.len() < 600_000, "{} bytes", html.len());
    assert_self_contained(&html);
    let elements = parse_xml(&html);
    assert!(with_class(&elements, "packet").len() <= 400);
    assert!(html.contains("the most eventful 400 arrows"));
}
