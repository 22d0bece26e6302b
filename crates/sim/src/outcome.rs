//! What a run produced, and the checks that decide whether the protocol kept its promise.

use std::time::Duration;

use udpchat_proto::{PeerState, Stats};

/// What one endpoint observed.
#[derive(Clone, Debug, Default)]
pub struct SideOutcome {
    /// Texts it queued, in order.
    pub sent: Vec<String>,
    /// Texts of its messages the peer acknowledged, in acknowledgement order.
    pub delivered: Vec<String>,
    /// Texts of its messages reported failed.
    pub failed: Vec<String>,
    /// Texts it received and showed, in order (since its last restart).
    pub received: Vec<String>,
    /// Texts a crashed earlier run of this side had shown.
    pub received_before_restart: Vec<String>,
    /// This side crashed and started again during the run; its earlier run's queued
    /// messages died with it, so only safety is checked for them.
    pub restarted: bool,
    /// Transmissions per acknowledged message.
    pub attempts: Vec<u32>,
    /// First transmission to acknowledgement, per acknowledged message (virtual time).
    pub latencies: Vec<Duration>,
    /// The session's counters at the end.
    pub stats: Stats,
    /// Every change of the peer's state it reported, in order.
    pub peer_states: Vec<PeerState>,
    /// Most messages its session held at once (queued or in flight).
    pub peak_outstanding: usize,
    /// Datagrams the encryption layer rejected, by reason (`bad_mac` for corruption,
    /// `replay` for duplicates, ...). Empty in the clear.
    pub security_rejects: std::collections::BTreeMap<&'static str, u64>,
    /// Encrypted sessions established with a peer run (first one, and one per restart).
    pub secure_sessions: u64,
    /// Virtual time from the start to the first session (the protocol's `Connected` in
    /// the clear, the encryption layer's first session otherwise).
    pub connected_at: Option<Duration>,
    /// Contacts refused (never expected between the simulated pair).
    pub refusals: u64,
    /// Connect-timeout verdicts: nobody answered for `connect_timeout`.
    pub no_answers: u64,
    /// The peer's DONE arrived.
    pub peer_done: bool,
    /// The peer's CLOSE arrived.
    pub peer_left: bool,
    /// It ended its stream (goodbye scenarios).
    pub finish_called: bool,
    /// When it left and what it knew then (goodbye scenarios).
    pub left: Option<Leaving>,
}

/// The moment a side left after its goodbye, and its counts at that moment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Leaving {
    /// Virtual time since the start.
    pub at: Duration,
    /// Its messages the peer had acknowledged.
    pub delivered: usize,
    /// Its messages reported failed.
    pub failed: usize,
    /// The peer's messages it had shown.
    pub received: usize,
}

/// The result of one seeded run.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// What went wrong with the scenario's file, if it had one: a byte lost, repeated or
    /// misplaced, or the file not complete by the end.
    pub file_violations: Vec<String>,
    /// Both sides ended with a goodbye (see [`Outcome::violations`]).
    pub goodbye: bool,
    /// Scenario name.
    pub scenario: String,
    /// The seed that reproduces this run.
    pub seed: u64,
    /// Messages each side queued.
    pub messages: usize,
    /// Virtual time the run took.
    pub elapsed: Duration,
    /// Hash of the whole trace: equal seeds give equal hashes.
    pub trace_hash: u64,
    /// The last steps of the run, for a failure report.
    pub trace_tail: Vec<String>,
    /// Side A.
    pub a: SideOutcome,
    /// Side B (the new run, if it was restarted).
    pub b: SideOutcome,
}

/// Index in `sent` of each received text, or an error naming the first text that was
/// never sent, or was shown twice or out of order.
fn check_in_order_once(sent: &[String], received: &[String]) -> Result<Vec<usize>, String> {
    let mut positions = Vec::with_capacity(received.len());
    let mut last: Option<usize> = None;
    for text in received {
        let Some(pos) = sent.iter().position(|s| s == text) else {
            return Err(format!("{text:?} was shown but never sent"));
        };
        if last.is_some_and(|l| pos <= l) {
            return Err(format!(
                "{text:?} was shown twice or out of order (after {:?})",
                last.map(|l| &sent[l])
            ));
        }
        last = Some(pos);
        positions.push(pos);
    }
    Ok(positions)
}

impl Outcome {
    /// Every broken promise, in words. Empty means the run was correct:
    /// - safety: each side showed the other's messages in order, never twice, never one
    ///   that was not sent;
    /// - every message ended exactly once, delivered or failed;
    /// - liveness: every message not reported failed was shown, within the time allowed
    ///   after the network healed; a restart only repeats what was unacknowledged;
    /// - in a goodbye: both sides left, each only once every message of its own was
    ///   confirmed and every message of the peer's shown, and nothing shown on one side
    ///   was reported failed on the other.
    pub fn violations(&self) -> Vec<String> {
        let mut found = self.file_violations.clone();
        if self.goodbye {
            self.goodbye_violations(&mut found);
        }
        for (from, to, dir) in [(&self.a, &self.b, "a->b"), (&self.b, &self.a, "b->a")] {
            if from.delivered.len() + from.failed.len() != from.sent.len() && !from.restarted {
                found.push(format!(
                    "{dir}: {} sent but {} delivered + {} failed",
                    from.sent.len(),
                    from.delivered.len(),
                    from.failed.len()
                ));
            }
            if let Err(e) = check_in_order_once(&from.sent, &to.received) {
                found.push(format!("{dir}: {e}"));
            }
            if let Err(e) = check_in_order_once(&from.sent, &to.received_before_restart) {
                found.push(format!("{dir} (before restart): {e}"));
            }
            if !from.restarted {
                for text in &from.sent {
                    let shown =
                        to.received.contains(text) || to.received_before_restart.contains(text);
                    if !shown && !from.failed.contains(text) {
                        found.push(format!("{dir}: {text:?} neither shown nor reported failed"));
                        break;
                    }
                }
                for text in &from.delivered {
                    if !to.received.contains(text) && !to.received_before_restart.contains(text) {
                        found.push(format!("{dir}: {text:?} acknowledged but never shown"));
                        break;
                    }
                }
            }
            if to.restarted {
                // The new run must pick up no later than where the old one stopped.
                let old_end = to.received_before_restart.len();
                if let Some(first) = to.received.first() {
                    let start = from
                        .sent
                        .iter()
                        .position(|s| s == first)
                        .unwrap_or(usize::MAX);
                    if start > old_end {
                        found.push(format!(
                            "{dir}: after the restart delivery resumed at {first:?}, skipping \
                             messages the old run never showed"
                        ));
                    }
                }
            }
        }
        found
    }

    fn goodbye_violations(&self, found: &mut Vec<String>) {
        for (side, peer, name) in [(&self.a, &self.b, "a"), (&self.b, &self.a, "b")] {
            let Some(left) = side.left else {
                found.push(format!("{name} never left"));
                continue;
            };
            // A side that crashed lost what its earlier run had still to send: only
            // the messages its peer's runs queued are owed.
            if left.delivered != side.sent.len() && !side.restarted {
                found.push(format!(
                    "{name} left at {:?} with {} of its {} messages confirmed ({} failed)",
                    left.at,
                    left.delivered,
                    side.sent.len(),
                    left.failed
                ));
            }
            if side.restarted {
                // Its two runs together showed everything (without a store the second
                // may show again what the first had not confirmed).
                let shown = |t: &String| {
                    side.received.contains(t) || side.received_before_restart.contains(t)
                };
                if let Some(text) = peer.sent.iter().find(|t| !shown(t)) {
                    found.push(format!("{name} left without ever showing {text:?}"));
                }
            } else if left.received != peer.sent.len() && !peer.restarted {
                found.push(format!(
                    "{name} left at {:?} having shown {} of the peer's {} messages",
                    left.at,
                    left.received,
                    peer.sent.len()
                ));
            }
            if let Some(text) = side.failed.iter().find(|t| peer.received.contains(t)) {
                found.push(format!(
                    "{name} reported {text:?} failed but the peer showed it"
                ));
            }
        }
    }

    /// Retransmissions per acknowledged message, both directions together.
    pub fn retransmissions_per_message(&self) -> f64 {
        let attempts: Vec<u32> = self
            .a
            .attempts
            .iter()
            .chain(&self.b.attempts)
            .copied()
            .collect();
        if attempts.is_empty() {
            return 0.0;
        }
        let extra: u64 = attempts
            .iter()
            .map(|&n| u64::from(n.saturating_sub(1)))
            .sum();
        extra as f64 / attempts.len() as f64
    }

    /// A report that lets anyone reproduce and read a failing run.
    pub fn failure_report(&self, violations: &[String]) -> String {
        let mut s = format!(
            "simulation failed: scenario {:?}, seed {} (reproduce: UDPCHAT_SIM_SEED={} cargo test -p udpchat-sim)\n",
            self.scenario, self.seed, self.seed
        );
        for v in violations {
            s.push_str("  violation: ");
            s.push_str(v);
            s.push('\n');
        }
        s.push_str("  last steps of the run:\n");
        for line in &self.trace_tail {
            s.push_str("  | ");
            s.push_str(line);
            s.push('\n');
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn order_check_catches_duplicates_reordering_and_inventions() {
        let sent = texts(&["a0", "a1", "a2"]);
        assert!(check_in_order_once(&sent, &texts(&["a0", "a1"])).is_ok());
        assert!(check_in_order_once(&sent, &texts(&["a0", "a0"])).is_err());
        assert!(check_in_order_once(&sent, &texts(&["a1", "a0"])).is_err());
        assert!(check_in_order_once(&sent, &texts(&["zz"])).is_err());
    }

    #[test]
    fn a_missing_message_is_a_violation() {
        let side = |sent: &[&str], received: &[&str]| SideOutcome {
            sent: texts(sent),
            delivered: texts(sent),
            received: texts(received),
            ..SideOutcome::default()
        };
        let outcome = Outcome {
            file_violations: Vec::new(),
            goodbye: false,
            scenario: "t".into(),
            seed: 0,
            messages: 2,
            elapsed: Duration::ZERO,
            trace_hash: 0,
            trace_tail: Vec::new(),
            a: side(&["a0", "a1"], &["b0"]),
            b: side(&["b0"], &["a0"]),
        };
        let v = outcome.violations();
        assert!(v.iter().any(|m| m.contains("\"a1\"")), "{v:?}");
    }
}
