//! Traces built by hand: the four rdt 3.0 cases of Kurose–Ross (figure 3.16) as
//! udpchat's stop-and-wait would trace them, and a long synthetic windowed run.
#![allow(dead_code)]

use udpchat_lab::{EventKind, Side, TimerKind, Trace};

/// Builds a trace with times in milliseconds and packet ids counted from 1.
#[derive(Default)]
pub(crate) struct Run {
    pub(crate) trace: Trace,
    next_id: u64,
}

fn us(ms: f64) -> u64 {
    (ms * 1000.0).round() as u64
}

impl Run {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// A datagram: its send and its id.
    pub(crate) fn send(
        &mut self,
        ms: f64,
        from: Side,
        summary: &str,
        seqs: &[u64],
        ack: Option<u64>,
        retransmission: bool,
    ) -> u64 {
        self.next_id += 1;
        let bytes = 24 + 8 * seqs.len() as u64 + if seqs.is_empty() { 0 } else { 16 };
        self.trace.push(
            us(ms),
            EventKind::PacketSent {
                side: from,
                packet_id: self.next_id,
                summary: summary.to_owned(),
                seqs: seqs.to_vec(),
                ack,
                retransmission,
                bytes,
            },
        );
        self.next_id
    }

    pub(crate) fn data(&mut self, ms: f64, from: Side, seq: u64, retransmission: bool) -> u64 {
        self.send(
            ms,
            from,
            &format!("DATA seq {seq}"),
            &[seq],
            None,
            retransmission,
        )
    }

    pub(crate) fn ack(&mut self, ms: f64, from: Side, cumulative: u64) -> u64 {
        self.send(
            ms,
            from,
            &format!("ACK {cumulative}"),
            &[],
            Some(cumulative),
            false,
        )
    }

    pub(crate) fn arrive(&mut self, ms: f64, id: u64, at: Side) {
        self.trace.push(
            us(ms),
            EventKind::PacketReceived {
                side: at,
                packet_id: id,
            },
        );
    }

    pub(crate) fn drop(&mut self, ms: f64, id: u64, reason: &str) {
        self.trace.push(
            us(ms),
            EventKind::PacketDropped {
                packet_id: id,
                reason: reason.to_owned(),
            },
        );
    }

    pub(crate) fn timer_set(&mut self, ms: f64, side: Side, expires_ms: f64) {
        self.trace.push(
            us(ms),
            EventKind::TimerSet {
                side,
                timer: TimerKind::Retransmission,
                expires_us: us(expires_ms),
            },
        );
    }

    pub(crate) fn timer_fired(&mut self, ms: f64, side: Side) {
        self.trace.push(
            us(ms),
            EventKind::TimerFired {
                side,
                timer: TimerKind::Retransmission,
            },
        );
    }

    pub(crate) fn metrics(
        &mut self,
        ms: f64,
        side: Side,
        srtt_ms: f64,
        rto_ms: f64,
        in_flight: u64,
    ) {
        self.trace.push(
            us(ms),
            EventKind::Metrics {
                side,
                srtt_us: Some(us(srtt_ms)),
                rto_us: Some(us(rto_ms)),
                cwnd_bytes: Some(12_000),
                in_flight: Some(in_flight),
            },
        );
    }

    pub(crate) fn delivered(&mut self, ms: f64, side: Side, seq: u64, text: &str) {
        self.trace.push(
            us(ms),
            EventKind::Delivered {
                side,
                seq,
                text: text.to_owned(),
            },
        );
    }

    pub(crate) fn shown(&mut self, ms: f64, side: Side, seq: u64, text: &str) {
        self.trace.push(
            us(ms),
            EventKind::Shown {
                side,
                seq,
                text: text.to_owned(),
            },
        );
    }

    pub(crate) fn note(&mut self, ms: f64, side: Option<Side>, text: &str) {
        self.trace.push(
            us(ms),
            EventKind::Note {
                side,
                text: text.to_owned(),
            },
        );
    }

    /// The trace, sorted by time.
    pub(crate) fn finish(mut self) -> Trace {
        self.trace.sort();
        self.trace
    }
}

use Side::{A, B};

/// The first exchange all four cases share: "hi" as seq 0, delivered at 50 ms.
fn first_message(run: &mut Run) {
    let data = run.data(0.0, A, 0, false);
    run.timer_set(0.0, A, 200.0);
    run.metrics(0.0, A, 100.0, 200.0, 1);
    run.arrive(25.0, data, B);
    run.shown(25.0, B, 0, "hi");
    let ack = run.ack(25.0, B, 1);
    run.arrive(50.0, ack, A);
    run.delivered(50.0, A, 0, "hi");
    run.metrics(50.0, A, 93.75, 200.0, 0);
}

/// rdt 3.0 (a): no loss. Two messages, each acknowledged.
pub(crate) fn no_loss() -> Trace {
    let mut run = Run::new();
    first_message(&mut run);
    let data = run.data(50.0, A, 1, false);
    run.timer_set(50.0, A, 250.0);
    run.metrics(50.0, A, 93.75, 200.0, 1);
    run.arrive(75.0, data, B);
    run.shown(75.0, B, 1, "there");
    let ack = run.ack(75.0, B, 2);
    run.arrive(100.0, ack, A);
    run.delivered(100.0, A, 1, "there");
    run.metrics(100.0, A, 88.28, 200.0, 0);
    run.finish()
}

/// rdt 3.0 (b): the second message is lost; the RTO fires and it is sent again.
pub(crate) fn lost_packet() -> Trace {
    let mut run = Run::new();
    first_message(&mut run);
    let data = run.data(50.0, A, 1, false);
    run.timer_set(50.0, A, 250.0);
    run.metrics(50.0, A, 93.75, 200.0, 1);
    run.drop(75.0, data, "simulated loss");
    run.timer_fired(250.0, A);
    let again = run.data(250.0, A, 1, true);
    run.timer_set(250.0, A, 650.0);
    run.metrics(250.0, A, 93.75, 400.0, 1);
    run.arrive(275.0, again, B);
    run.shown(275.0, B, 1, "there");
    let ack = run.ack(275.0, B, 2);
    run.arrive(300.0, ack, A);
    run.delivered(300.0, A, 1, "there");
    run.metrics(300.0, A, 88.28, 200.0, 0);
    run.finish()
}

/// rdt 3.0 (c): the second message arrives but its ACK is lost; the RTO fires, the
/// message is sent again, and B acknowledges the duplicate without showing it twice.
pub(crate) fn lost_ack() -> Trace {
    let mut run = Run::new();
    first_message(&mut run);
    let data = run.data(50.0, A, 1, false);
    run.timer_set(50.0, A, 250.0);
    run.metrics(50.0, A, 93.75, 200.0, 1);
    run.arrive(75.0, data, B);
    run.shown(75.0, B, 1, "there");
    let ack = run.ack(75.0, B, 2);
    run.drop(100.0, ack, "simulated loss");
    run.timer_fired(250.0, A);
    let again = run.data(250.0, A, 1, true);
    run.timer_set(250.0, A, 650.0);
    run.metrics(250.0, A, 93.75, 400.0, 1);
    run.arrive(275.0, again, B);
    let ack = run.ack(275.0, B, 2);
    run.arrive(300.0, ack, A);
    run.delivered(300.0, A, 1, "there");
    run.metrics(300.0, A, 88.28, 200.0, 0);
    run.finish()
}

/// rdt 3.0 (d): premature timeout. The ACK of the first message is slow; the RTO fires
/// before it arrives and the message is sent again; B acknowledges the duplicate; A
/// ignores the second ACK 1.
pub(crate) fn premature_timeout() -> Trace {
    let mut run = Run::new();
    let data = run.data(0.0, A, 0, false);
    run.timer_set(0.0, A, 100.0);
    run.metrics(0.0, A, 50.0, 100.0, 1);
    run.arrive(60.0, data, B);
    run.shown(60.0, B, 0, "hi");
    let ack = run.ack(60.0, B, 1);
    run.timer_fired(100.0, A);
    let again = run.data(100.0, A, 0, true);
    run.timer_set(100.0, A, 300.0);
    run.metrics(100.0, A, 50.0, 200.0, 1);
    run.arrive(120.0, ack, A);
    run.delivered(120.0, A, 0, "hi");
    run.metrics(120.0, A, 58.75, 200.0, 0);
    let next = run.data(125.0, A, 1, false);
    run.timer_set(125.0, A, 325.0);
    run.metrics(125.0, A, 58.75, 200.0, 1);
    run.arrive(160.0, again, B);
    let ack_again = run.ack(160.0, B, 1);
    run.arrive(185.0, next, B);
    run.shown(185.0, B, 1, "there");
    let ack2 = run.ack(185.0, B, 2);
    run.arrive(220.0, ack_again, A);
    run.arrive(245.0, ack2, A);
    run.delivered(245.0, A, 1, "there");
    run.metrics(245.0, A, 66.0, 200.0, 0);
    run.finish()
}

/// A long windowed run: `packets` DATA datagrams from A in windows of 8, each
/// acknowledged by B, one in `loss_every` lost and retransmitted after an RTO, with an
/// idle gap of 3 s in the middle.
pub(crate) fn synthetic(packets: u64, loss_every: u64) -> Trace {
    let mut run = Run::new();
    let mut t = 0.0;
    let mut seq = 0;
    while seq < packets {
        let window: Vec<u64> = (seq..(seq + 8).min(packets)).collect();
        let mut lost = Vec::new();
        for (i, &s) in window.iter().enumerate() {
            let sent = t + i as f64 * 0.2;
            let id = run.data(sent, A, s, false);
            if s % loss_every == loss_every - 1 {
                run.drop(sent + 10.0, id, "simulated loss");
                lost.push(s);
            } else {
                run.arrive(sent + 10.0, id, B);
                run.shown(sent + 10.0, B, s, "");
                let ack = run.ack(sent + 10.0, B, s + 1);
                run.arrive(sent + 20.0, ack, A);
                run.delivered(sent + 20.0, A, s, "");
            }
        }
        run.metrics(t + 20.0, A, 20.0, 200.0, lost.len() as u64);
        t += 22.0;
        for s in lost {
            run.timer_fired(t + 200.0, A);
            let id = run.data(t + 200.0, A, s, true);
            run.arrive(t + 210.0, id, B);
            run.shown(t + 210.0, B, s, "");
            let ack = run.ack(t + 210.0, B, s + 1);
            run.arrive(t + 220.0, ack, A);
            run.delivered(t + 220.0, A, s, "");
            t += 222.0;
        }
        seq = window.last().map_or(packets, |last| last + 1);
        if seq == packets / 2 / 8 * 8 {
            t += 3000.0;
        }
    }
    run.finish()
}

/// One element of a parsed XML document: its name and attributes.
#[derive(Debug)]
pub(crate) struct Element {
    pub(crate) name: String,
    pub(crate) attributes: std::collections::HashMap<String, String>,
    /// The names of the elements it is inside, outermost first.
    pub(crate) ancestors: Vec<String>,
}

impl Element {
    pub(crate) fn attr(&self, name: &str) -> Option<&str> {
        self.attributes.get(name).map(String::as_str)
    }

    pub(crate) fn has_class(&self, class: &str) -> bool {
        self.attr("class")
            .is_some_and(|c| c.split_whitespace().any(|c| c == class))
    }
}

/// Parses `text` as XML with quick-xml, panicking on anything not well-formed: tags
/// that do not balance, unknown entities, bad attributes. Returns every element.
pub(crate) fn parse_xml(text: &str) -> Vec<Element> {
    use quick_xml::events::Event as XmlEvent;
    let mut reader = quick_xml::Reader::from_str(text);
    reader.config_mut().check_end_names = true;
    let mut stack: Vec<String> = Vec::new();
    let mut elements = Vec::new();
    loop {
        let event = reader
            .read_event()
            .unwrap_or_else(|e| panic!("not well-formed at {}: {e}", reader.buffer_position()));
        match event {
            XmlEvent::Start(ref start) | XmlEvent::Empty(ref start) => {
                let name = start.name().as_ref().to_owned();
                let mut attributes = std::collections::HashMap::new();
                for attribute in start.attributes() {
                    let attribute =
                        attribute.unwrap_or_else(|e| panic!("bad attribute in <{name}>: {e}"));
                    let key = attribute.key.as_ref().to_owned();
                    let value = attribute
                        .normalized_value(quick_xml::XmlVersion::Implicit1_0)
                        .unwrap_or_else(|e| panic!("bad value of {key} in <{name}>: {e}"))
                        .into_owned();
                    assert!(
                        attributes.insert(key.clone(), value).is_none(),
                        "{key} twice in <{name}>"
                    );
                }
                elements.push(Element {
                    name: name.clone(),
                    attributes,
                    ancestors: stack.clone(),
                });
                if matches!(event, XmlEvent::Start(_)) {
                    stack.push(name);
                }
            }
            XmlEvent::End(end) => {
                let name = end.name().as_ref().to_owned();
                assert_eq!(
                    stack.pop().as_deref(),
                    Some(name.as_str()),
                    "unbalanced </{name}>"
                );
            }
            XmlEvent::GeneralRef(reference) => {
                let name = AsRef::<str>::as_ref(&reference).to_owned();
                assert!(
                    ["amp", "lt", "gt", "quot", "apos"].contains(&name.as_str())
                        || name.starts_with('#'),
                    "unknown entity &{name};"
                );
            }
            XmlEvent::Eof => break,
            _ => {}
        }
    }
    assert!(stack.is_empty(), "unclosed: {stack:?}");
    elements
}

/// The elements with `class` (among its classes).
pub(crate) fn with_class<'a>(elements: &'a [Element], class: &str) -> Vec<&'a Element> {
    elements.iter().filter(|e| e.has_class(class)).collect()
}

/// Writes a picture to `$UDPCHAT_LAB_OUT/name` when that is set, to look at it
/// (`UDPCHAT_LAB_OUT=/tmp/lab cargo test -p udpchat-lab`).
pub(crate) fn keep(name: &str, text: &str) {
    if let Ok(dir) = std::env::var("UDPCHAT_LAB_OUT") {
        let dir = std::path::Path::new(&dir);
        if let Err(error) =
            std::fs::create_dir_all(dir).and_then(|()| std::fs::write(dir.join(name), text))
        {
            panic!("cannot write {name} in {}: {error}", dir.display());
        }
    }
}
