//! Congestion control and pacing: how much a sender may have in flight, and how fast it
//! may put it on the wire, so that it never overruns the path or a router's queue and
//! leaves a fair share to the other flows at a bottleneck.
//!
//! [`NewReno`] is RFC 9002 §7 (QUIC's NewReno, in bytes): slow start from 10 datagrams,
//! halving once per round trip of losses (a recovery period), additive increase after,
//! and a collapse to the minimum window after persistent timeouts. Losses are found by
//! the sender's loss detection; a reduction later shown unnecessary (D-SACK, see
//! `Sender`) is undone, as Linux undoes one after a spurious retransmission (RFC 5682's
//! response, in spirit). [`Pacer`] is RFC 9002 §7.7: a token bucket filled at 1.25 ×
//! cwnd / SRTT, so a window is spread over a round trip instead of leaving in one burst.

use std::time::{Duration, Instant};

/// RFC 9002's initial window: 10 datagrams (capped to 14,720 bytes, which our 1200-byte
/// datagrams never reach).
const INITIAL_WINDOW_DATAGRAMS: usize = 10;

/// RFC 9002's minimum window: 2 datagrams.
const MINIMUM_WINDOW_DATAGRAMS: usize = 2;

/// Pacing rate as a multiple of cwnd per SRTT (RFC 9002 §7.7's N = 1.25), so that
/// pacing itself never keeps the window from filling.
const PACING_GAIN: f64 = 1.25;

/// The pacer lets at most this much time's worth of sending go out at once, and never
/// less than the initial window: enough to keep a fast path busy between two wake-ups
/// of a busy process, short enough to spare a slow bottleneck's queue.
const PACING_BURST: Duration = Duration::from_millis(2);

/// NewReno congestion window, in bytes of DATA frames (RFC 9002 §7).
#[derive(Clone, Debug)]
pub(crate) struct NewReno {
    max_datagram: usize,
    cwnd: usize,
    ssthresh: usize,
    /// Acknowledged bytes not yet turned into congestion-avoidance growth.
    acked_in_avoidance: usize,
    /// Transmissions up to this number were sent before the current recovery period
    /// started: their loss does not reduce the window again.
    recovery_tx: u64,
    /// The window and threshold before the latest reduction, to undo it if it proves
    /// unnecessary.
    before_reduction: Option<(usize, usize)>,
    /// Times the window was reduced, collapsed or restored.
    pub(crate) reductions: u64,
    pub(crate) undos: u64,
}

impl NewReno {
    pub(crate) fn new(max_datagram: usize) -> Self {
        Self {
            max_datagram,
            cwnd: INITIAL_WINDOW_DATAGRAMS * max_datagram,
            ssthresh: usize::MAX,
            acked_in_avoidance: 0,
            recovery_tx: 0,
            before_reduction: None,
            reductions: 0,
            undos: 0,
        }
    }

    fn minimum(&self) -> usize {
        MINIMUM_WINDOW_DATAGRAMS * self.max_datagram
    }

    /// The congestion window in bytes.
    pub(crate) fn window(&self) -> usize {
        self.cwnd
    }

    /// True in slow start.
    pub(crate) fn in_slow_start(&self) -> bool {
        self.cwnd < self.ssthresh
    }

    /// `bytes` of a message last transmitted as transmission `tx` were acknowledged.
    /// Grows the window unless the message was sent before the current recovery period,
    /// or the sender was not using the window (`app_limited`: a chat typed by hand must
    /// not earn a window it never tested).
    pub(crate) fn on_acked(&mut self, bytes: usize, tx: u64, app_limited: bool) {
        if tx <= self.recovery_tx || app_limited {
            return;
        }
        if self.in_slow_start() {
            self.cwnd += bytes;
            return;
        }
        self.acked_in_avoidance += bytes;
        if self.acked_in_avoidance >= self.cwnd {
            self.acked_in_avoidance -= self.cwnd;
            self.cwnd += self.max_datagram;
        }
    }

    /// A message last transmitted as transmission `tx` was lost; `newest_tx` is the
    /// newest transmission so far. Halves the window once per recovery period.
    pub(crate) fn on_lost(&mut self, tx: u64, newest_tx: u64) {
        if tx <= self.recovery_tx {
            return;
        }
        self.before_reduction = Some((self.cwnd, self.ssthresh));
        self.recovery_tx = newest_tx;
        self.ssthresh = (self.cwnd / 2).max(self.minimum());
        self.cwnd = self.ssthresh;
        self.acked_in_avoidance = 0;
        self.reductions += 1;
    }

    /// Timeouts in a row without anything acknowledged: the path may be gone or
    /// congested beyond the window. From the second one the window collapses to the
    /// minimum (RFC 9002's persistent congestion, counted in timeouts).
    pub(crate) fn on_timeout(&mut self, consecutive: u32, newest_tx: u64) {
        if consecutive < 2 {
            return;
        }
        if self.cwnd > self.minimum() {
            self.before_reduction = Some((self.cwnd, self.ssthresh));
            self.ssthresh = (self.cwnd / 2).max(self.minimum());
            self.cwnd = self.minimum();
            self.acked_in_avoidance = 0;
            self.recovery_tx = newest_tx;
            self.reductions += 1;
        }
    }

    /// The latest reduction was caused by a retransmission that proved unnecessary:
    /// restore the window and threshold from before it.
    pub(crate) fn undo(&mut self) {
        if let Some((cwnd, ssthresh)) = self.before_reduction.take() {
            self.cwnd = self.cwnd.max(cwnd);
            self.ssthresh = ssthresh;
            self.undos += 1;
        }
    }
}

/// A token bucket that spreads the window over a round trip (RFC 9002 §7.7).
#[derive(Clone, Debug)]
pub(crate) struct Pacer {
    /// Bytes that may go out now.
    tokens: f64,
    last: Option<Instant>,
}

impl Pacer {
    pub(crate) fn new() -> Self {
        Self {
            tokens: 0.0,
            last: None,
        }
    }

    /// Bytes per second and bucket size for this window and round trip; `None` before
    /// any round trip is measured (nothing to pace by: the window alone limits).
    fn rate_and_burst(
        cwnd: usize,
        srtt: Option<Duration>,
        max_datagram: usize,
    ) -> Option<(f64, f64)> {
        let srtt = srtt?.as_secs_f64();
        if srtt <= 0.0 {
            return None;
        }
        let rate = PACING_GAIN * cwnd as f64 / srtt;
        let initial = (INITIAL_WINDOW_DATAGRAMS * max_datagram) as f64;
        let burst = (rate * PACING_BURST.as_secs_f64()).max(initial);
        Some((rate, burst))
    }

    /// When `bytes` may be sent, given the window and round trip: `now` (and the tokens
    /// are spent) or a later instant (nothing is spent).
    pub(crate) fn send_at(
        &mut self,
        now: Instant,
        bytes: usize,
        cwnd: usize,
        srtt: Option<Duration>,
        max_datagram: usize,
    ) -> Instant {
        let Some((rate, burst)) = Self::rate_and_burst(cwnd, srtt, max_datagram) else {
            return now;
        };
        let elapsed = self.last.map_or(f64::INFINITY, |last| {
            now.saturating_duration_since(last).as_secs_f64()
        });
        self.tokens = (self.tokens + elapsed * rate).min(burst);
        self.last = Some(now);
        let bytes = bytes as f64;
        let wait = Duration::from_secs_f64(((bytes - self.tokens) / rate).max(0.0));
        // A wait too short for the clock is no wait (and must not loop).
        if wait < Duration::from_micros(1) {
            self.tokens = (self.tokens - bytes).max(0.0);
            return now;
        }
        now + wait
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MSS: usize = 1200;

    #[test]
    fn slow_start_then_halving_once_per_recovery_then_linear_growth() {
        let mut cc = NewReno::new(MSS);
        assert_eq!(cc.window(), 12_000);
        cc.on_acked(12_000, 1, false);
        assert_eq!(cc.window(), 24_000, "slow start doubles per round trip");
        cc.on_lost(5, 40);
        assert_eq!(cc.window(), 12_000);
        cc.on_lost(30, 41);
        assert_eq!(cc.window(), 12_000, "one reduction per recovery period");
        cc.on_acked(1_000, 35, false);
        assert_eq!(cc.window(), 12_000, "sent before recovery: no growth");
        cc.on_acked(12_000, 50, false);
        assert_eq!(cc.window(), 13_200, "one datagram per window acknowledged");
        cc.on_lost(60, 70);
        assert_eq!(cc.window(), 6_600);
    }

    #[test]
    fn an_unnecessary_reduction_is_undone() {
        let mut cc = NewReno::new(MSS);
        cc.on_lost(1, 10);
        assert_eq!(cc.window(), 6_000);
        cc.undo();
        assert_eq!(cc.window(), 12_000);
        cc.undo();
        assert_eq!(cc.window(), 12_000, "only once");
    }

    #[test]
    fn persistent_timeouts_collapse_to_the_minimum_and_an_idle_sender_does_not_grow() {
        let mut cc = NewReno::new(MSS);
        cc.on_timeout(1, 5);
        assert_eq!(cc.window(), 12_000);
        cc.on_timeout(2, 6);
        assert_eq!(cc.window(), 2 * MSS);
        cc.on_acked(100_000, 3, false);
        assert_eq!(cc.window(), 2 * MSS, "sent before the collapse");
        cc.on_acked(100_000, 9, true);
        assert_eq!(cc.window(), 2 * MSS, "application-limited");
    }

    #[test]
    fn the_pacer_spreads_a_window_over_a_round_trip() {
        let t0 = Instant::now();
        let mut p = Pacer::new();
        let srtt = Some(Duration::from_millis(100));
        // 120,000 bytes per 100 ms at gain 1.25: 1.5 MB/s, a 12,000-byte bucket.
        let cwnd = 120_000;
        let mut sent = 0;
        let mut now = t0;
        while now < t0 + Duration::from_millis(100) {
            let at = p.send_at(now, 1_000, cwnd, srtt, MSS);
            if at == now {
                sent += 1_000;
            } else {
                now = at;
            }
        }
        // The bucket (12 kB) plus 100 ms at 1.5 MB/s (150 kB).
        assert!((150_000..=165_000).contains(&sent), "{sent}");
        // Without a round trip there is nothing to pace by.
        assert_eq!(Pacer::new().send_at(t0, 1_000_000, cwnd, None, MSS), t0);
    }
}
