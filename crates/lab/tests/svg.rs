//! The SVG diagram: an arrow per datagram, a cross per loss, well-formed XML, escaped
//! text, compressed idle gaps, and a bounded picture of a 10,000-datagram run.

mod common;

use std::time::Instant;

use common::{keep, parse_xml, with_class};
use udpchat_lab::svg::DEFAULT_MAX_ARROWS;
use udpchat_lab::{render_svg, EventKind, Flow, Side, Trace};

fn scenarios() -> Vec<(&'static str, Trace)> {
    vec![
        ("rdt30-a-no-loss", common::no_loss()),
        ("rdt30-b-lost-packet", common::lost_packet()),
        ("rdt30-c-lost-ack", common::lost_ack()),
        ("rdt30-d-premature-timeout", common::premature_timeout()),
    ]
}

fn sent_ids(trace: &Trace) -> Vec<u64> {
    trace
        .events
        .iter()
        .filter_map(|event| match event.kind {
            EventKind::PacketSent { packet_id, .. } => Some(packet_id),
            _ => None,
        })
        .collect()
}

#[test]
fn one_arrow_per_datagram_and_one_cross_per_loss() {
    for (name, trace) in scenarios() {
        let svg = render_svg(&trace);
        keep(&format!("{name}.svg"), &svg);
        let elements = parse_xml(&svg);
        let arrows = with_class(&elements, "packet");
        let mut drawn: Vec<u64> = arrows
            .iter()
            .map(|a| a.attr("data-packet-id").unwrap().parse().unwrap())
            .collect();
        let mut sent = sent_ids(&trace);
        drawn.sort_unstable();
        sent.sort_unstable();
        assert_eq!(drawn, sent, "{name}");
        assert!(arrows.iter().all(|a| a.name == "g"));

        let flow = Flow::of(&trace);
        let lost: Vec<u64> = flow
            .packets
            .iter()
            .filter(|p| p.lost())
            .map(|p| p.id)
            .collect();
        let crosses = with_class(&elements, "loss");
        assert_eq!(crosses.len(), lost.len(), "{name}");
        let lost_arrows: Vec<u64> = arrows
            .iter()
            .filter(|a| a.attr("data-lost") == Some("true"))
            .map(|a| a.attr("data-packet-id").unwrap().parse().unwrap())
            .collect();
        assert_eq!(lost_arrows, lost, "{name}");
        let root = &elements[0];
        assert_eq!(root.name, "svg");
        assert_eq!(
            root.attr("data-packets"),
            Some(sent.len().to_string().as_str())
        );
        assert_eq!(
            root.attr("data-arrows"),
            Some(sent.len().to_string().as_str())
        );
        assert_eq!(
            root.attr("data-lost"),
            Some(lost.len().to_string().as_str())
        );

        let retx = arrows
            .iter()
            .filter(|a| a.attr("data-retx") == Some("true"))
            .count();
        assert_eq!(
            retx,
            flow.packets.iter().filter(|p| p.retransmission).count(),
            "{name}"
        );
        let timers = with_class(&elements, "timer");
        let fired = trace
            .events
            .iter()
            .filter(|e| matches!(e.kind, EventKind::TimerFired { .. }))
            .count();
        assert_eq!(timers.len(), fired, "{name}");
    }
}

#[test]
fn each_ack_and_data_arrow_says_what_it_is() {
    let svg = render_svg(&common::lost_ack());
    let elements = parse_xml(&svg);
    let kinds: Vec<(&str, &str)> = with_class(&elements, "packet")
        .iter()
        .map(|a| (a.attr("data-from").unwrap(), a.attr("data-kind").unwrap()))
        .collect();
    assert_eq!(
        kinds,
        vec![
            ("A", "data"),
            ("B", "ack"),
            ("A", "data"),
            ("B", "ack"),
            ("A", "data"),
            ("B", "ack")
        ]
    );
}

#[test]
fn a_duplicated_datagram_has_an_arrow_per_arrival() {
    let mut trace = common::no_loss();
    let first = sent_ids(&trace)[0];
    trace.push(
        30_000,
        EventKind::PacketReceived {
            side: Side::B,
            packet_id: first,
        },
    );
    trace.sort();
    let elements = parse_xml(&render_svg(&trace));
    let arrows = with_class(&elements, "packet");
    assert_eq!(arrows.len(), sent_ids(&trace).len() + 1);
    let dups: Vec<_> = arrows
        .iter()
        .filter(|a| a.attr("data-dup") == Some("true"))
        .collect();
    assert_eq!(dups.len(), 1);
    assert_eq!(
        dups[0].attr("data-packet-id"),
        Some(first.to_string().as_str())
    );
}

#[test]
fn text_from_the_trace_is_escaped() {
    let mut run = common::Run::new();
    let id = run.send(
        0.0,
        Side::A,
        "<script>alert('&')</script>",
        &[0],
        None,
        false,
    );
    run.arrive(10.0, id, Side::B);
    run.shown(10.0, Side::B, 0, "\"quotes\" & <tags>\u{1}");
    run.note(12.0, None, "]]> -->");
    run.drop(13.0, 77, "x<y");
    let svg = render_svg(&run.finish());
    parse_xml(&svg);
    assert!(!svg.contains("<script"));
    assert!(svg.contains("&lt;script&gt;alert(&apos;&amp;&apos;)&lt;/script&gt;"));
}

#[test]
fn a_long_idle_stretch_is_drawn_short_and_marked() {
    let trace = common::synthetic(48, 1000);
    assert!(trace.end_us() > 3_000_000);
    let svg = render_svg(&trace);
    keep("gap.svg", &svg);
    let elements = parse_xml(&svg);
    assert_eq!(with_class(&elements, "gap").len(), 1);
    assert!(
        svg.contains("≈ 3.00 s"),
        "the gap's real length is on the axis"
    );
    let height: f64 = elements[0].attr("height").unwrap().parse().unwrap();
    assert!(height < 2500.0, "{height}");
}

#[test]
fn an_empty_trace_still_draws_two_timelines() {
    let elements = parse_xml(&render_svg(&Trace::new()));
    assert_eq!(with_class(&elements, "timeline").len(), 2);
    assert!(with_class(&elements, "packet").is_empty());
}

#[test]
fn ten_thousand_datagrams_give_an_overview_and_a_bounded_detail() {
    let trace = common::synthetic(5000, 50);
    let total = sent_ids(&trace).len();
    assert!(total >= 10_000, "{total}");
    let started = Instant::now();
    let svg = render_svg(&trace);
    let took = started.elapsed();
    keep("ten-thousand.svg", &svg);
    if !cfg!(debug_assertions) {
        assert!(took.as_secs_f64() < 1.0, "took {took:?}");
    }
    eprintln!("10k datagrams: {} bytes of SVG in {took:?}", svg.len());
    assert!(svg.len() < 400_000, "{} bytes", svg.len());
    let elements = parse_xml(&svg);
    let arrows = with_class(&elements, "packet");
    assert!(arrows.len() <= DEFAULT_MAX_ARROWS && arrows.len() > DEFAULT_MAX_ARROWS - 10);
    assert_eq!(
        elements[0].attr("data-packets"),
        Some(total.to_string().as_str())
    );
    assert_eq!(
        elements[0].attr("data-arrows"),
        Some(arrows.len().to_string().as_str())
    );
    assert_eq!(with_class(&elements, "overview").len(), 1);
    // The detail window is an eventful one: it holds losses.
    assert!(arrows.iter().any(|a| a.attr("data-lost") == Some("true")));
    let height: f64 = elements[0].attr("height").unwrap().parse().unwrap();
    assert!(height <= 12_500.0, "{height}");
}
