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
//!
//! A loss says "congestion" only when the path shows it: a queue that has built up
//! (the latest round trip at least [`CONGESTION_QUEUE_DELAY`] above the smallest seen),
//! or more losses than a lossy link shows at random (over [`RANDOM_LOSS_CEILING`] of
//! what was recently sent). Otherwise the loss is repaired without shrinking the window
//! (or, when the smallest round trip may itself hold a queue, with CUBIC's 30% cut), as
//! TCP Veno (Fu and Liew, 2003) tells random from congestive loss by the backlog it has
//! built: a path that drops 5% of datagrams at random would otherwise keep NewReno
//! at a few datagrams (Mathis: rate ∝ 1/√p). A full router queue (the `tbf` of the
//! fairness benchmark holds 50 ms) is a queue, so a shared bottleneck still halves the
//! window as NewReno does; one whose buffer holds less than 5 ms is told apart only by
//! its loss rate.

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

/// Queueing delay (the latest round trip less the smallest) from which a loss is taken
/// for congestion: a router's queue has built up. Below it the delay is what a busy host
/// adds by itself (the scheduling allowance every receiver advertises).
pub(crate) const CONGESTION_QUEUE_DELAY: Duration = crate::config::SCHEDULING_ALLOWANCE;

/// Share of recently sent bytes found lost above which every loss is taken for
/// congestion, queue or not: random loss on a real link stays below it, and a sender that
/// ignored losses at a bottleneck with a shallow buffer would push the loss rate past it.
pub(crate) const RANDOM_LOSS_CEILING: f64 = 0.10;

/// The window left after a loss judged random on a path whose smallest round trip may
/// hold a standing queue, in tenths: CUBIC's multiplicative decrease (RFC 9438's
/// β = 0.7).
const UNSURE_RANDOM_LOSS_TENTHS: usize = 7;

/// What a loss is taken for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Verdict {
    /// A queue has built up, or more is lost than a lossy link loses: halve.
    Congestion,
    /// A lossy link, and the smallest round trip is the empty path's: repair only.
    Random,
    /// A lossy link, but the smallest round trip may hold someone else's queue.
    RandomUnsure,
}

/// How much sending the loss rate is measured over, in datagrams: the counts are halved
/// whenever they sum to more, so the rate follows the last several hundred datagrams.
const LOSS_RATE_SPAN_DATAGRAMS: usize = 1_000;

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
    /// Losses of transmissions up to this number were already judged random: they are
    /// one episode, which keeps the window as it is (and growing).
    judged_tx: u64,
    /// The window and threshold before the latest reduction, to undo it if it proves
    /// unnecessary.
    before_reduction: Option<(usize, usize)>,
    /// The smallest and the latest round trip measured: their difference is the queue.
    min_rtt: Option<Duration>,
    latest_rtt: Option<Duration>,
    /// Bytes acknowledged and found lost lately (see [`LOSS_RATE_SPAN_DATAGRAMS`]).
    recent_acked: usize,
    recent_lost: usize,
    /// Times the window was reduced, collapsed or restored.
    pub(crate) reductions: u64,
    pub(crate) undos: u64,
    /// Loss episodes that did not reduce the window: no queue, a low loss rate.
    pub(crate) random_losses: u64,
}

impl NewReno {
    pub(crate) fn new(max_datagram: usize) -> Self {
        Self {
            max_datagram,
            cwnd: INITIAL_WINDOW_DATAGRAMS * max_datagram,
            ssthresh: usize::MAX,
            acked_in_avoidance: 0,
            recovery_tx: 0,
            judged_tx: 0,
            before_reduction: None,
            min_rtt: None,
            latest_rtt: None,
            recent_acked: 0,
            recent_lost: 0,
            reductions: 0,
            undos: 0,
            random_losses: 0,
        }
    }

    /// The smallest round trip measured so far.
    pub(crate) fn min_rtt(&self) -> Option<Duration> {
        self.min_rtt
    }

    /// A round trip was measured (from a message's first transmission to its
    /// acknowledgement).
    pub(crate) fn on_rtt_sample(&mut self, rtt: Duration) {
        self.latest_rtt = Some(rtt);
        self.min_rtt = Some(self.min_rtt.map_or(rtt, |min| min.min(rtt)));
    }

    /// The share of recently sent bytes found lost.
    pub(crate) fn recent_loss_rate(&self) -> f64 {
        let total = self.recent_acked + self.recent_lost;
        if total == 0 {
            0.0
        } else {
            self.recent_lost as f64 / total as f64
        }
    }

    fn count_recent(&mut self) {
        if self.recent_acked + self.recent_lost > LOSS_RATE_SPAN_DATAGRAMS * self.max_datagram {
            self.recent_acked /= 2;
            self.recent_lost /= 2;
        }
    }

    /// What a loss now means: congestion when a queue has built up, the loss rate is
    /// higher than random loss, or nothing is known yet; otherwise random loss, to be
    /// repaired without a reduction only when the smallest round trip can be trusted as
    /// the empty path's.
    fn verdict(&self) -> Verdict {
        let (Some(latest), Some(min)) = (self.latest_rtt, self.min_rtt) else {
            return Verdict::Congestion;
        };
        if latest.saturating_sub(min) >= CONGESTION_QUEUE_DELAY
            || self.recent_loss_rate() > RANDOM_LOSS_CEILING
        {
            return Verdict::Congestion;
        }
        // A smallest round trip of 5 ms or more may itself hold a queue that another
        // flow had built before our first sample (a download filling a router's
        // buffer): a loss then still costs CUBIC's reduction, so that a wrong verdict
        // leaves us an AIMD flow with β = 0.7, about 1.4 times a Reno flow's share at
        // the same loss rate (within the 2 times a fair share may differ).
        if min >= CONGESTION_QUEUE_DELAY {
            Verdict::RandomUnsure
        } else {
            Verdict::Random
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
        self.recent_acked += bytes;
        self.count_recent();
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

    /// `bytes` of a message last transmitted as transmission `tx` were lost; `newest_tx`
    /// is the newest transmission so far. Halves the window once per recovery period if
    /// the loss means congestion (see the module's documentation).
    pub(crate) fn on_lost(&mut self, bytes: usize, tx: u64, newest_tx: u64) {
        self.recent_lost += bytes;
        self.count_recent();
        // One verdict per round trip of losses, as one reduction.
        if tx <= self.recovery_tx || tx <= self.judged_tx {
            return;
        }
        self.judged_tx = newest_tx;
        let reduced = match self.verdict() {
            Verdict::Random => {
                self.random_losses += 1;
                // An older reduction must not be undone by a later episode's spurious
                // retransmission: only the latest reduction may be.
                self.before_reduction = None;
                return;
            }
            Verdict::RandomUnsure => {
                self.random_losses += 1;
                self.cwnd / 10 * UNSURE_RANDOM_LOSS_TENTHS
            }
            Verdict::Congestion => self.cwnd / 2,
        };
        self.before_reduction = Some((self.cwnd, self.ssthresh));
        self.recovery_tx = newest_tx;
        self.ssthresh = reduced.max(self.minimum());
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
        cc.on_lost(MSS, 5, 40);
        assert_eq!(cc.window(), 12_000);
        cc.on_lost(MSS, 30, 41);
        assert_eq!(cc.window(), 12_000, "one reduction per recovery period");
        cc.on_acked(1_000, 35, false);
        assert_eq!(cc.window(), 12_000, "sent before recovery: no growth");
        cc.on_acked(12_000, 50, false);
        assert_eq!(cc.window(), 13_200, "one datagram per window acknowledged");
        cc.on_lost(MSS, 60, 70);
        assert_eq!(cc.window(), 6_600);
    }

    #[test]
    fn a_loss_without_a_queue_keeps_the_window_and_one_with_a_queue_halves_it() {
        let mut cc = NewReno::new(MSS);
        cc.on_rtt_sample(Duration::from_micros(100));
        // A lossy link: 1 datagram in 20 lost, the round trip as it always was.
        for tx in 1..=400_u64 {
            if tx % 20 == 0 {
                cc.on_lost(MSS, tx, tx + 5);
            } else {
                cc.on_acked(MSS, tx, false);
            }
        }
        assert!(cc.window() > 12_000, "the window grew: {}", cc.window());
        assert_eq!(cc.reductions, 0);
        assert_eq!(cc.random_losses, 20);
        assert!((cc.recent_loss_rate() - 0.05).abs() < 0.01);
        // A router's queue has built up: the next loss is congestion.
        let before = cc.window();
        cc.on_rtt_sample(Duration::from_millis(30));
        cc.on_lost(MSS, 420, 430);
        assert_eq!(cc.window(), before / 2);
        assert_eq!(cc.reductions, 1);
    }

    #[test]
    fn a_loss_on_a_path_whose_smallest_round_trip_may_hold_a_queue_costs_cubics_reduction() {
        // Started into a router queue someone else keeps full: every sample is ~50 ms,
        // so no queue can be seen growing; a loss then costs 30%, not nothing.
        let mut cc = NewReno::new(MSS);
        cc.on_rtt_sample(Duration::from_millis(48));
        cc.on_rtt_sample(Duration::from_millis(50));
        for tx in 1..=19_u64 {
            cc.on_acked(MSS, tx, false);
        }
        let before = cc.window();
        cc.on_lost(MSS, 20, 25);
        assert_eq!(cc.window(), before / 10 * 7);
        assert_eq!((cc.random_losses, cc.reductions), (1, 1));
    }

    #[test]
    fn a_loss_rate_above_random_is_congestion_even_without_a_queue() {
        let mut cc = NewReno::new(MSS);
        cc.on_rtt_sample(Duration::from_micros(100));
        // A shallow buffer: no queueing delay to see, but one datagram in five lost.
        for tx in 1..=100_u64 {
            if tx % 5 == 0 {
                cc.on_lost(MSS, tx, tx + 1);
            } else {
                cc.on_acked(MSS, tx, false);
            }
        }
        assert!(cc.recent_loss_rate() > RANDOM_LOSS_CEILING);
        assert!(cc.reductions > 0, "{cc:?}");
        // Losses found before the first round trip is measured count as congestion.
        let mut fresh = NewReno::new(MSS);
        fresh.on_lost(MSS, 1, 2);
        assert_eq!(fresh.window(), 6_000);
    }

    #[test]
    fn a_random_loss_episode_closes_the_door_on_undoing_an_older_reduction() {
        let mut cc = NewReno::new(MSS);
        cc.on_rtt_sample(Duration::from_micros(100));
        cc.on_rtt_sample(Duration::from_millis(30));
        cc.on_lost(MSS, 1, 10);
        assert_eq!(cc.window(), 6_000, "a queue: halved");
        cc.on_rtt_sample(Duration::from_micros(100));
        for tx in 11..=40_u64 {
            cc.on_acked(MSS, tx, false);
        }
        let grown = cc.window();
        cc.on_lost(MSS, 41, 50);
        assert_eq!(cc.window(), grown, "random: kept");
        // A spurious retransmission of the random episode must not restore the window
        // from before the genuine halving.
        cc.undo();
        assert_eq!(cc.window(), grown);
        assert_eq!(cc.undos, 0);
    }

    #[test]
    fn an_unnecessary_reduction_is_undone() {
        let mut cc = NewReno::new(MSS);
        cc.on_lost(MSS, 1, 10);
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
