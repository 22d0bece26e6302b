//! The text diagrams of the four rdt 3.0 cases, and of a long run collapsed.

mod common;

use udpchat_lab::{render_text, render_text_with, TextOptions};

#[test]
fn rdt30_a_no_loss() {
    insta::assert_snapshot!(render_text(&common::no_loss(), 64));
}

#[test]
fn rdt30_b_lost_packet() {
    insta::assert_snapshot!(render_text(&common::lost_packet(), 64));
}

#[test]
fn rdt30_c_lost_ack() {
    insta::assert_snapshot!(render_text(&common::lost_ack(), 64));
}

#[test]
fn rdt30_d_premature_timeout() {
    let options = TextOptions {
        width: 64,
        arrivals: true,
        ..TextOptions::default()
    };
    insta::assert_snapshot!(render_text_with(&common::premature_timeout(), &options));
}

#[test]
fn a_long_run_collapses_its_uneventful_stretches() {
    let trace = common::synthetic(200, 60);
    let full = render_text(&trace, 72);
    let text = render_text_with(
        &trace,
        &TextOptions {
            width: 72,
            max_rows: Some(40),
            arrivals: false,
        },
    );
    assert!(full.lines().count() > 400);
    assert!(text.lines().count() <= 41, "{text}");
    insta::assert_snapshot!(text);
}

#[test]
fn a_run_too_eventful_to_collapse_is_cut_with_a_sum_of_the_rest() {
    let trace = common::synthetic(400, 3);
    let text = render_text_with(
        &trace,
        &TextOptions {
            width: 72,
            max_rows: Some(20),
            arrivals: false,
        },
    );
    assert_eq!(text.lines().count(), 21, "{text}");
    let last = text.lines().last().unwrap();
    assert!(last.contains("… then "), "{last}");
    assert!(last.contains("lost"), "{last}");
}

#[test]
fn every_line_has_the_width_asked_for() {
    for width in [40, 64, 100] {
        for trace in [
            common::no_loss(),
            common::lost_packet(),
            common::synthetic(50, 7),
        ] {
            for line in render_text(&trace, width).lines() {
                assert_eq!(line.chars().count(), width, "{line:?}");
            }
        }
    }
}

#[test]
fn ten_thousand_datagrams_collapse_to_the_rows_asked_for() {
    let trace = common::synthetic(5000, 50);
    let started = std::time::Instant::now();
    let text = render_text_with(
        &trace,
        &TextOptions {
            width: 80,
            max_rows: Some(60),
            arrivals: false,
        },
    );
    let took = started.elapsed();
    if !cfg!(debug_assertions) {
        assert!(took.as_secs_f64() < 1.0, "took {took:?}");
    }
    assert!(text.lines().count() <= 61);
    // The rows left out are summed up: every datagram is accounted for.
    let shown_packets = text
        .lines()
        .filter(|l| l.contains('▶') || l.contains('◀') || l.contains('✕'))
        .count();
    let summed: usize = text
        .lines()
        .filter_map(|l| l.split("… ").nth(1))
        .map(|rest| {
            rest.trim_start_matches("then ")
                .split(' ')
                .next()
                .unwrap()
                .parse::<usize>()
                .unwrap()
        })
        .sum();
    assert_eq!(
        shown_packets + summed,
        udpchat_lab::Flow::of(&trace).packets.len()
    );
}
