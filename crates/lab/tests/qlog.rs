//! qlog: what is written reads back the same, and two endpoints' files merge into the
//! two-sided trace they came from.

mod common;

use udpchat_lab::qlog::{Alignment, VantageKind};
use udpchat_lab::{merge, read_qlog, read_traces, write_qlog, EventKind, Flow, Scope, Side, Trace};

fn scenarios() -> Vec<Trace> {
    vec![
        common::no_loss(),
        common::lost_packet(),
        common::lost_ack(),
        common::premature_timeout(),
        common::synthetic(300, 7),
        everything(),
    ]
}

/// A trace with every kind of event and field, odd values included.
fn everything() -> Trace {
    let mut run = common::Run::new();
    let id = run.send(0.001, Side::A, "HELLO \"epoch\" <a>", &[], None, false);
    run.arrive(1.0, id, Side::B);
    let id = run.send(1.5, Side::B, "DATA seq 0,1 +ACK 3", &[0, 1], Some(3), true);
    run.drop(2.0, id, "bad_checksum");
    run.drop(2.5, id, "lost");
    run.trace.push(
        2_600,
        EventKind::TimerSet {
            side: Side::B,
            timer: udpchat_lab::TimerKind::Ack,
            expires_us: 27_600,
        },
    );
    run.trace.push(
        3_000,
        EventKind::TimerFired {
            side: Side::A,
            timer: udpchat_lab::TimerKind::Other("idle".to_owned()),
        },
    );
    run.trace.push(
        3_500,
        EventKind::Metrics {
            side: Side::B,
            srtt_us: None,
            rto_us: Some(1_000_001),
            cwnd_bytes: None,
            in_flight: Some(0),
        },
    );
    run.delivered(4.0, Side::B, 0, "");
    run.shown(4.2, Side::A, u64::MAX, "ünïcødé \u{1} ✓");
    run.note(5.0, None, "partition");
    run.note(5.5, Side::B.into(), "restart");
    run.finish()
}

#[test]
fn a_network_file_reads_back_the_same_trace() {
    for trace in scenarios() {
        let text = write_qlog(&trace, "round trip", Scope::Both);
        let file = read_qlog(&text).unwrap();
        assert_eq!(file.title, "round trip");
        assert_eq!(file.vantage.kind, VantageKind::Network);
        assert_eq!(file.skipped, 0);
        assert_eq!(file.trace, trace);
    }
}

#[test]
fn two_endpoints_files_merge_into_the_trace_they_came_from() {
    for trace in scenarios() {
        let a = write_qlog(&trace, "A", Scope::Side(Side::A));
        let b = write_qlog(&trace, "B", Scope::Side(Side::B));
        // Each file is one endpoint's view: no event names a side.
        assert!(!a.contains("\"side\""));
        assert!(b.contains("\"vantage_point\":{\"type\":\"server\",\"name\":\"B\"}"));
        let (a, b) = (read_qlog(&a).unwrap(), read_qlog(&b).unwrap());
        assert_eq!(
            a.trace.events.len() + b.trace.events.len(),
            trace.events.len()
        );
        let merged = merge(&a, &b);
        assert_eq!(merged.alignment, Alignment::AsIs);
        assert_eq!(merged.right_offset_us, 0);
        assert_eq!(merged.trace, trace);
    }
}

#[test]
fn the_position_decides_the_side_not_the_vantage_point() {
    let trace = common::lost_ack();
    let a = read_qlog(&write_qlog(&trace, "", Scope::Side(Side::A))).unwrap();
    let b = read_qlog(&write_qlog(&trace, "", Scope::Side(Side::B))).unwrap();
    let swapped = merge(&b, &a).trace;
    let flow = Flow::of(&swapped);
    assert!(flow.packets.iter().filter(|p| !p.lost()).count() > 0);
    assert_eq!(flow.side(Side::B).sent, Flow::of(&trace).side(Side::A).sent);
}

#[test]
fn a_datagram_with_no_arrival_in_the_other_file_is_lost() {
    let trace = common::no_loss();
    let a = read_qlog(&write_qlog(&trace, "", Scope::Side(Side::A))).unwrap();
    let mut b = read_qlog(&write_qlog(&trace, "", Scope::Side(Side::B))).unwrap();
    // B never got A's second DATA (and no drop was reported).
    let second = Flow::of(&trace).packets[2].id;
    b.trace.events.retain(
        |e| !matches!(e.kind, EventKind::PacketReceived { packet_id, .. } if packet_id == second),
    );
    let flow = Flow::of(&merge(&a, &b).trace);
    let lost: Vec<_> = flow.packets.iter().filter(|p| p.lost()).collect();
    assert_eq!(lost.len(), 1);
    assert_eq!(lost[0].id, second);
    assert_eq!(lost[0].loss_label(), "lost");
}

/// B's events as if its clock had started `seconds` earlier than A's.
fn b_file_with_clock_ahead(trace: &Trace, seconds: u64) -> String {
    let mut shifted = trace.clone();
    for event in &mut shifted.events {
        if event.kind.side() == Some(Side::B)
            || matches!(event.kind, EventKind::PacketDropped { .. })
        {
            event.time_us += seconds * 1_000_000;
        }
    }
    write_qlog(&shifted, "B", Scope::Side(Side::B))
}

#[test]
fn clocks_are_lined_up_by_reference_time() {
    let trace = common::lost_packet();
    let a = write_qlog(&trace, "A", Scope::Side(Side::A)).replace(
        "\"reference_time\":0.0",
        "\"reference_time\":1700000000000.0",
    );
    let b = b_file_with_clock_ahead(&trace, 5).replace(
        "\"reference_time\":0.0",
        "\"reference_time\":1699999995000.0",
    );
    let merged = merge(&read_qlog(&a).unwrap(), &read_qlog(&b).unwrap());
    assert_eq!(merged.alignment, Alignment::ReferenceTime);
    assert_eq!(merged.right_offset_us, -5_000_000);
    assert_eq!(merged.trace, trace);
}

#[test]
fn clocks_without_reference_time_are_lined_up_by_causality() {
    // Delays are the same both ways in these traces, so the middle of what causality
    // allows is the true offset.
    for trace in [
        common::lost_packet(),
        common::lost_ack(),
        common::premature_timeout(),
    ] {
        let a = write_qlog(&trace, "A", Scope::Side(Side::A));
        let b = b_file_with_clock_ahead(&trace, 5);
        let merged = merge(&read_qlog(&a).unwrap(), &read_qlog(&b).unwrap());
        assert_eq!(merged.alignment, Alignment::Causality);
        assert_eq!(merged.right_offset_us, -5_000_000);
        assert_eq!(merged.trace, trace);
    }
}

#[test]
fn read_traces_takes_one_file_or_two() {
    let trace = common::lost_ack();
    let both = write_qlog(&trace, "", Scope::Both);
    assert_eq!(read_traces(&[&both]).unwrap(), trace);
    let a = write_qlog(&trace, "", Scope::Side(Side::A));
    let b = write_qlog(&trace, "", Scope::Side(Side::B));
    assert_eq!(read_traces(&[&a, &b]).unwrap(), trace);
    assert!(read_traces(&[]).is_err());
}

#[test]
fn a_network_event_without_a_side_is_an_error() {
    let text = "\u{1e}{\"qlog_version\":\"0.4\",\"trace\":{\"vantage_point\":{\"type\":\"network\"}}}\n\
                \u{1e}{\"time\":1.0,\"name\":\"udpchat:message_shown\",\"data\":{\"seq\":1,\"text\":\"x\"}}\n";
    let error = read_qlog(text).unwrap_err();
    assert!(error.to_string().contains("no \"side\""), "{error}");
}
