//! Round-trip time estimation and the retransmission timeout, after RFC 6298.
//!
//! The seed waited a fixed 3 s before every retransmission. Measuring the round trip
//! instead lets a lost message be resent after a few round trips: on loopback that is
//! milliseconds, on a long path it is still a little over one round trip.

use std::time::Duration;

/// How the retransmission timeout is chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RtoPolicy {
    /// Always this long (the seed's behaviour, `--timeout`).
    Fixed(Duration),
    /// RFC 6298 with RFC 9002's allowance for the peer's ACK delay: SRTT + max(4·RTTVAR, 1 ms)
    /// + the peer's max_ack_delay, clamped to `[min, max]`, doubling on each expiry.
    Adaptive {
        /// Timeout before any sample (RFC 6298 says 1 s).
        initial: Duration,
        /// Floor. RFC 6298 recommends 1 s for TCP's delayed ACKs; udpchat acknowledges at
        /// once, so a much lower floor is safe.
        min: Duration,
        /// Ceiling, also for backoff.
        max: Duration,
    },
}

impl RtoPolicy {
    /// The default adaptive policy: 1 s before the first sample (RFC 6298), a 1 ms floor
    /// and a 5 s ceiling. RFC 6298's 1 s floor exists for TCP's delayed ACKs; udpchat
    /// acknowledges at once, so like QUIC (RFC 9002) it keeps only the timer granularity,
    /// and a loss on a fast path is repaired in about a round trip, not a second. The
    /// ceiling keeps a returning peer noticed within seconds, and with it the default 20
    /// retries give up after about a minute.
    pub const fn adaptive() -> Self {
        Self::Adaptive {
            initial: Duration::from_secs(1),
            min: Duration::from_millis(1),
            max: Duration::from_secs(5),
        }
    }
}

/// Clock granularity term G of RFC 6298; our timers are millisecond-precise.
const GRANULARITY: Duration = Duration::from_millis(1);

/// RFC 6298 estimator with Karn's rule left to the caller (it only feeds samples from
/// messages that were sent once) and exponential backoff.
#[derive(Clone, Debug)]
pub struct RttEstimator {
    policy: RtoPolicy,
    srtt: Option<Duration>,
    rttvar: Duration,
    latest: Option<Duration>,
    /// Consecutive expiries since the last new acknowledgement: the RTO is doubled this
    /// many times.
    backoff: u32,
    /// The smallest sample seen, to tell whether an ACK delay can be subtracted.
    min_rtt: Option<Duration>,
    /// The longest the peer holds an acknowledgement, as it advertises (RFC 9002's
    /// max_ack_delay): the timeout waits this much longer than the round trip.
    peer_max_ack_delay: Duration,
}

impl RttEstimator {
    /// A fresh estimator.
    pub fn new(policy: RtoPolicy) -> Self {
        Self {
            policy,
            srtt: None,
            rttvar: Duration::ZERO,
            latest: None,
            backoff: 0,
            min_rtt: None,
            peer_max_ack_delay: Duration::ZERO,
        }
    }

    /// Feeds a sample taken from an acknowledgement the peer says it held for
    /// `ack_delay`: as RFC 9002 §5.3, the delay (at most the advertised maximum) is
    /// subtracted unless that would make the sample smaller than the smallest round trip
    /// seen, so the estimate measures the path and the timer adds the delay separately.
    pub fn on_ack_sample(&mut self, rtt: Duration, ack_delay: Duration) {
        // `on_sample` records the minimum: the adjusted sample never falls below it.
        let min_rtt = self.min_rtt.map_or(rtt, |m| m.min(rtt));
        let ack_delay = ack_delay.min(self.peer_max_ack_delay);
        let adjusted = if rtt >= min_rtt + ack_delay {
            rtt - ack_delay
        } else {
            rtt
        };
        self.on_sample(adjusted);
    }

    /// Records the peer's advertised maximum ACK delay (every ACK carries it).
    pub fn set_peer_max_ack_delay(&mut self, delay: Duration) {
        self.peer_max_ack_delay = delay;
    }

    /// The peer's advertised maximum ACK delay.
    pub fn peer_max_ack_delay(&self) -> Duration {
        self.peer_max_ack_delay
    }

    /// The smallest round trip seen.
    pub fn min_rtt(&self) -> Option<Duration> {
        self.min_rtt
    }

    /// Feeds one round-trip sample (RFC 6298 section 2.2 and 2.3).
    pub fn on_sample(&mut self, rtt: Duration) {
        self.latest = Some(rtt);
        self.min_rtt = Some(self.min_rtt.map_or(rtt, |m| m.min(rtt)));
        match self.srtt {
            None => {
                self.srtt = Some(rtt);
                self.rttvar = rtt / 2;
            }
            Some(srtt) => {
                // RTTVAR <- 3/4 RTTVAR + 1/4 |SRTT - R'|; SRTT <- 7/8 SRTT + 1/8 R'
                let delta = srtt.abs_diff(rtt);
                self.rttvar = (self.rttvar * 3 + delta) / 4;
                self.srtt = Some((srtt * 7 + rtt) / 8);
            }
        }
    }

    /// A new acknowledgement arrived: backoff ends (RFC 6298 section 5, note after 5.7).
    pub fn on_progress(&mut self) {
        self.backoff = 0;
    }

    /// The retransmission timer expired: double the timeout (RFC 6298 5.5).
    pub fn on_expiry(&mut self) {
        self.backoff = self.backoff.saturating_add(1);
    }

    /// The current retransmission timeout, backoff included.
    pub fn rto(&self) -> Duration {
        match self.policy {
            RtoPolicy::Fixed(d) => d,
            RtoPolicy::Adaptive { initial, min, max } => {
                let base = match self.srtt {
                    None => initial,
                    // RFC 9002's PTO: the peer may hold its ACK up to max_ack_delay.
                    Some(srtt) => {
                        srtt + (self.rttvar * 4).max(GRANULARITY) + self.peer_max_ack_delay
                    }
                };
                let base = base.clamp(min, max);
                // Doubling past 2^16 is already far above any ceiling.
                let factor = 1u32 << self.backoff.min(16);
                base.saturating_mul(factor).min(max)
            }
        }
    }

    /// Smoothed round-trip time, once sampled.
    pub fn srtt(&self) -> Option<Duration> {
        self.srtt
    }

    /// Round-trip time variation.
    pub fn rttvar(&self) -> Duration {
        self.rttvar
    }

    /// The most recent sample.
    pub fn latest(&self) -> Option<Duration> {
        self.latest
    }

    /// The policy in force.
    pub fn policy(&self) -> RtoPolicy {
        self.policy
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn wide() -> RttEstimator {
        // A 1 ms floor so the hand-computed values are not clamped.
        RttEstimator::new(RtoPolicy::Adaptive {
            initial: Duration::from_secs(1),
            min: ms(1),
            max: Duration::from_secs(60),
        })
    }

    #[test]
    fn initial_rto_before_any_sample() {
        assert_eq!(wide().rto(), Duration::from_secs(1));
    }

    #[test]
    fn first_sample_sets_srtt_and_half_rttvar() {
        // RFC 6298 2.2: SRTT = R, RTTVAR = R/2, RTO = SRTT + 4*RTTVAR = 3R.
        let mut e = wide();
        e.on_sample(ms(100));
        assert_eq!(e.srtt(), Some(ms(100)));
        assert_eq!(e.rttvar(), ms(50));
        assert_eq!(e.rto(), ms(300));
    }

    #[test]
    fn later_samples_follow_the_rfc_recurrence() {
        // By hand: after 100 ms: SRTT 100, RTTVAR 50.
        // Sample 200: RTTVAR = (3*50 + |100-200|)/4 = 62.5; SRTT = (7*100 + 200)/8 = 112.5
        // RTO = 112.5 + 4*62.5 = 362.5 ms.
        // Sample 100: RTTVAR = (3*62.5 + 12.5)/4 = 50; SRTT = (7*112.5 + 100)/8 = 110.9375
        // RTO = 110.9375 + 200 = 310.9375 ms.
        let mut e = wide();
        e.on_sample(ms(100));
        e.on_sample(ms(200));
        assert_eq!(e.rttvar(), Duration::from_micros(62_500));
        assert_eq!(e.srtt(), Some(Duration::from_micros(112_500)));
        assert_eq!(e.rto(), Duration::from_micros(362_500));
        e.on_sample(ms(100));
        assert_eq!(e.rttvar(), ms(50));
        assert_eq!(e.srtt(), Some(Duration::from_nanos(110_937_500)));
        assert_eq!(e.rto(), Duration::from_nanos(310_937_500));
    }

    #[test]
    fn steady_samples_converge_to_the_floor_of_granularity() {
        let mut e = wide();
        for _ in 0..200 {
            e.on_sample(ms(40));
        }
        // RTTVAR decays toward 0, so RTO tends to SRTT + G.
        assert_eq!(e.srtt(), Some(ms(40)));
        assert!(e.rto() <= ms(42), "{:?}", e.rto());
    }

    #[test]
    fn backoff_doubles_up_to_the_ceiling_and_resets_on_progress() {
        let mut e = wide();
        e.on_sample(ms(100)); // RTO 300 ms
        e.on_expiry();
        assert_eq!(e.rto(), ms(600));
        e.on_expiry();
        assert_eq!(e.rto(), ms(1200));
        for _ in 0..100 {
            e.on_expiry();
        }
        assert_eq!(e.rto(), Duration::from_secs(60));
        e.on_progress();
        assert_eq!(e.rto(), ms(300));
    }

    #[test]
    fn karn_rule_is_the_callers_a_retransmitted_message_gives_no_sample() {
        // The estimator itself is untouched by expiries: only on_sample moves SRTT, and
        // the sender calls it only for messages transmitted once.
        let mut e = wide();
        e.on_sample(ms(100));
        e.on_expiry();
        assert_eq!(e.srtt(), Some(ms(100)));
    }

    #[test]
    fn floor_and_ceiling_clamp_and_fixed_ignores_everything() {
        let mut e = RttEstimator::new(RtoPolicy::adaptive());
        // 50 µs + max(1 ms granularity, 4 x 25 µs): the granularity term dominates.
        e.on_sample(Duration::from_micros(50));
        assert_eq!(e.rto(), Duration::from_micros(1_050));
        for _ in 0..100 {
            e.on_expiry();
        }
        assert_eq!(e.rto(), Duration::from_secs(5));
        let mut f = RttEstimator::new(RtoPolicy::Fixed(Duration::from_secs(3)));
        f.on_sample(ms(1));
        f.on_expiry();
        assert_eq!(f.rto(), Duration::from_secs(3));
    }
}
