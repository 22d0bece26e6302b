//! A compact record of a run: a hash of every datagram with its virtual time, to prove
//! that one seed reproduces one run, and the last steps of it, to explain a failure.
//!
//! Recording is cheap (bytes are hashed and kept raw); text is made only when a failure
//! is reported, so ten thousand seeds cost little.

use std::collections::VecDeque;
use std::time::Duration;

use udpchat_proto::wire::Packet;
use udpchat_proto::Event;

/// Steps kept for a failure report.
const TAIL: usize = 80;

#[derive(Debug)]
enum Step {
    Datagram {
        at: Duration,
        side: &'static str,
        bytes: Vec<u8>,
    },
    Event {
        at: Duration,
        side: &'static str,
        event: Event,
    },
    Note {
        at: Duration,
        what: &'static str,
    },
}

/// FNV-1a over every datagram and its time, in order, plus the most recent steps.
#[derive(Debug)]
pub struct Trace {
    hash: u64,
    tail: VecDeque<Step>,
}

impl Default for Trace {
    fn default() -> Self {
        Self {
            hash: 0xcbf2_9ce4_8422_2325,
            tail: VecDeque::with_capacity(TAIL),
        }
    }
}

impl Trace {
    fn mix(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.hash ^= u64::from(b);
            self.hash = self.hash.wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn push(&mut self, step: Step) {
        if self.tail.len() == TAIL {
            self.tail.pop_front();
        }
        self.tail.push_back(step);
    }

    /// Records a datagram sent by `side` at virtual time `at`.
    pub fn datagram(&mut self, at: Duration, side: &'static str, bytes: &[u8]) {
        self.mix(&at.as_nanos().to_le_bytes());
        self.mix(side.as_bytes());
        self.mix(bytes);
        self.push(Step::Datagram {
            at,
            side,
            bytes: bytes.to_vec(),
        });
    }

    /// Records an event reported by `side` (kept for the report, not hashed: events
    /// follow from the datagrams).
    pub fn event(&mut self, at: Duration, side: &'static str, event: &Event) {
        self.push(Step::Event {
            at,
            side,
            event: event.clone(),
        });
    }

    /// Records a scenario step such as a restart.
    pub fn note(&mut self, at: Duration, what: &'static str) {
        self.mix(what.as_bytes());
        self.push(Step::Note { at, what });
    }

    /// The hash of everything recorded.
    pub fn hash(&self) -> u64 {
        self.hash
    }

    /// The most recent steps, one line each.
    pub fn tail(&self) -> Vec<String> {
        let ms = |at: &Duration| at.as_secs_f64() * 1e3;
        self.tail
            .iter()
            .map(|step| match step {
                Step::Datagram { at, side, bytes } => match Packet::decode(bytes) {
                    Ok(p) => format!(
                        "{:10.3} {side} >> {:x}->{:x} {:?}",
                        ms(at),
                        p.src_epoch,
                        p.dst_epoch,
                        p.frames
                    ),
                    Err(e) => format!("{:10.3} {side} >> undecodable ({e})", ms(at)),
                },
                Step::Event { at, side, event } => format!("{:10.3} {side} !! {event:?}", ms(at)),
                Step::Note { at, what } => format!("{:10.3} -- {what}", ms(at)),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_input_same_hash_and_tail_is_bounded() {
        let mut x = Trace::default();
        let mut y = Trace::default();
        for i in 0..100u64 {
            let at = Duration::from_millis(i);
            x.datagram(at, "a", &i.to_be_bytes());
            y.datagram(at, "a", &i.to_be_bytes());
        }
        assert_eq!(x.hash(), y.hash());
        assert_eq!(x.tail().len(), TAIL);
        y.note(Duration::ZERO, "one more");
        assert_ne!(x.hash(), y.hash());
    }
}
