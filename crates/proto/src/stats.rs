//! Counters of what a session has done, for `--stats`, the status bar and benchmarks.

/// Running totals since the session was created.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Messages accepted by `send` (nickname announcements are not messages: see
    /// `nicks_sent`).
    pub messages_queued: u64,
    /// Nickname announcements accepted by `send_nick`.
    pub nicks_sent: u64,
    /// Messages acknowledged by the peer.
    pub messages_delivered: u64,
    /// Messages reported failed.
    pub messages_failed: u64,
    /// Messages received and handed to the user.
    pub messages_received: u64,
    /// First transmissions of messages.
    pub data_sent: u64,
    /// Retransmissions of messages.
    pub retransmissions: u64,
    /// Messages found to have been sent again unnecessarily: the peer reported receiving
    /// a copy of one it already had (D-SACK) after we had sent it more than once. Counted
    /// once per message.
    pub spurious_retransmissions: u64,
    /// Times the congestion window was reduced (a loss, once per round trip, or
    /// persistent timeouts).
    pub window_reductions: u64,
    /// Of those, undone because the loss proved to be no loss.
    pub window_undos: u64,
    /// Loss episodes (one per round trip with losses) taken for a lossy link rather
    /// than congestion: no queue had built up and the recent loss rate was low. They
    /// leave the window as it was, or cost 30% (CUBIC's reduction) when the smallest
    /// round trip is 5 ms or more and may hold a queue (see `congestion.rs`).
    pub random_losses: u64,
    /// Tail-loss probes sent: the newest message again, two round trips after the last
    /// news, when nothing later could reveal a lost tail.
    pub tail_probes: u64,
    /// Expiries of the retransmission timer; each sends one datagram of the oldest
    /// unacknowledged messages.
    pub timeouts: u64,
    /// Messages received again after delivery (re-acknowledged, not shown).
    pub duplicates: u64,
    /// Acknowledgements sent.
    pub acks_sent: u64,
    /// Datagrams that were dropped as malformed, stale or misaddressed.
    pub rejected: u64,
    /// Datagrams the session produced.
    pub datagrams_sent: u64,
    /// Datagrams the session was given.
    pub datagrams_received: u64,
    /// Times the peer was seen to restart.
    pub peer_restarts: u64,
    /// Keepalive PINGs sent.
    pub pings_sent: u64,
}

impl Stats {
    /// Share of message transmissions that were retransmissions: an estimate of the
    /// loss the messages met (it also counts late acknowledgements as losses).
    pub fn loss_estimate(&self) -> f64 {
        let total = self.data_sent + self.retransmissions;
        if total == 0 {
            0.0
        } else {
            self.retransmissions as f64 / total as f64
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loss_estimate_is_retransmissions_over_transmissions() {
        let mut s = Stats::default();
        assert_eq!(s.loss_estimate(), 0.0);
        s.data_sent = 3;
        s.retransmissions = 1;
        assert!((s.loss_estimate() - 0.25).abs() < 1e-12);
    }
}
