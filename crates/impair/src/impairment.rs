//! The impairment state machine: decide each datagram's fate, queue the
//! survivors by release time, hand them back when their time comes.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::corrupt::corrupt;
use crate::draw::{chance, uniform_duration};
use crate::{DropCause, Fate, ImpairConfig, ImpairStats, PacketClass};

/// Most datagram copies held at once; beyond this, new datagrams are dropped
/// with [`DropCause::Overflow`] so a huge delay cannot grow memory unboundedly.
pub const MAX_PENDING: usize = 65_536;

/// A queued copy, ordered by (release time, arrival counter) only.
#[derive(Debug)]
struct Pending<T> {
    release: Instant,
    seq: u64,
    meta: T,
    datagram: Vec<u8>,
}

impl<T> Pending<T> {
    fn key(&self) -> (Instant, u64) {
        (self.release, self.seq)
    }
}

impl<T> PartialEq for Pending<T> {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}

impl<T> Eq for Pending<T> {}

impl<T> PartialOrd for Pending<T> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl<T> Ord for Pending<T> {
    fn cmp(&self, other: &Self) -> Ordering {
        self.key().cmp(&other.key())
    }
}

/// A seeded, sans-IO impaired link carrying datagrams tagged with caller
/// metadata `T` (e.g. the source address).
///
/// Per datagram, random draws happen in this fixed order, each only when its
/// outcome is uncertain: `loss`, class loss, `duplicate`, `corrupt` (kind,
/// then its details), `reorder` (then its hold-back), then jitter per copy.
/// `partitioned` and overflow draw nothing.
#[derive(Debug)]
pub struct Impairment<T> {
    config: ImpairConfig,
    rng: ChaCha8Rng,
    queue: BinaryHeap<Reverse<Pending<T>>>,
    next_seq: u64,
    stats: ImpairStats,
}

impl<T> Impairment<T> {
    /// Creates an empty link. The ChaCha8 stream seeded from `seed` is
    /// portable, so a seed reproduces a run on any platform. The config is
    /// not validated here; see [`ImpairConfig::validate`].
    #[must_use]
    pub fn new(config: ImpairConfig, seed: u64) -> Self {
        Self {
            config,
            rng: ChaCha8Rng::seed_from_u64(seed),
            queue: BinaryHeap::new(),
            next_seq: 0,
            stats: ImpairStats::default(),
        }
    }

    /// Returns the next datagram whose release time is `<= now`: earliest
    /// release first, ties in arrival order. Call until `None`.
    pub fn poll_output(&mut self, now: Instant) -> Option<(T, Vec<u8>)> {
        if self.queue.peek()?.0.release > now {
            return None;
        }
        let Reverse(p) = self.queue.pop()?;
        self.stats.delivered += 1;
        Some((p.meta, p.datagram))
    }

    /// The earliest pending release time: when the caller should next call
    /// [`poll_output`](Self::poll_output). `None` if nothing is queued.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.queue.peek().map(|Reverse(p)| p.release)
    }

    /// Replaces the knobs for datagrams handed in from now on; queued copies
    /// keep their release times. The RNG is not reseeded.
    pub fn set_config(&mut self, config: ImpairConfig) {
        self.config = config;
    }

    /// The current knobs.
    #[must_use]
    pub const fn config(&self) -> &ImpairConfig {
        &self.config
    }

    /// Counters since creation.
    #[must_use]
    pub const fn stats(&self) -> &ImpairStats {
        &self.stats
    }

    /// Number of copies queued and not yet released.
    #[must_use]
    pub fn pending(&self) -> usize {
        self.queue.len()
    }

    /// Decides whether the datagram is dropped, before any other draw.
    fn draw_drop(&mut self, class: PacketClass) -> Option<DropCause> {
        if self.config.partitioned {
            return Some(DropCause::Partition);
        }
        if chance(&mut self.rng, self.config.loss) {
            return Some(DropCause::Loss);
        }
        let (p, cause) = class.extra_loss(&self.config)?;
        chance(&mut self.rng, p).then_some(cause)
    }

    fn push(&mut self, release: Instant, meta: T, datagram: Vec<u8>) {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.queue.push(Reverse(Pending {
            release,
            seq,
            meta,
            datagram,
        }));
    }
}

impl<T: Clone> Impairment<T> {
    /// Feeds one datagram that entered the link at `now`, classed by the
    /// caller. Surviving copies are queued; the returned [`Fate`] says what
    /// happened so the caller can report it.
    pub fn handle_input(
        &mut self,
        now: Instant,
        class: PacketClass,
        mut datagram: Vec<u8>,
        meta: T,
    ) -> Fate {
        self.stats.received += 1;
        if let Some(cause) = self.draw_drop(class) {
            self.stats.record_drop(cause);
            return Fate::dropped(cause);
        }
        let (cfg, rng) = (&self.config, &mut self.rng);
        let copies: u8 = if chance(rng, cfg.duplicate) { 2 } else { 1 };
        let corrupted = chance(rng, cfg.corrupt);
        if corrupted {
            corrupt(rng, &mut datagram);
        }
        let reordered = chance(rng, cfg.reorder);
        let extra_delay = if reordered {
            uniform_duration(rng, cfg.reorder_delay)
        } else {
            Duration::ZERO
        };
        let mut releases = [now; 2];
        let mut fits = self.queue.len() + usize::from(copies) <= MAX_PENDING;
        for release in releases.iter_mut().take(copies.into()) {
            let delay = cfg
                .delay
                .saturating_add(uniform_duration(rng, cfg.jitter))
                .saturating_add(extra_delay);
            match now.checked_add(delay) {
                Some(at) => *release = at,
                None => fits = false,
            }
        }
        if !fits {
            self.stats.record_drop(DropCause::Overflow);
            return Fate::dropped(DropCause::Overflow);
        }

        self.stats.duplicated += u64::from(copies - 1);
        self.stats.corrupted += u64::from(corrupted);
        self.stats.reordered += u64::from(reordered);
        if copies == 2 {
            self.push(releases[0], meta.clone(), datagram.clone());
        }
        self.push(releases[usize::from(copies - 1)], meta, datagram);
        Fate {
            dropped: None,
            copies,
            corrupted,
            reordered,
            extra_delay,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MS: Duration = Duration::from_millis(1);

    /// One delivered copy: (time since start, meta, bytes).
    type Trace = Vec<(Duration, u32, Vec<u8>)>;

    /// Sends `n` datagrams of `class`, one per millisecond, polling at every
    /// wake-up, and returns every delivery with its time since start.
    fn run(config: ImpairConfig, seed: u64, class: PacketClass, n: u32) -> (Trace, ImpairStats) {
        let t0 = Instant::now();
        let mut net = Impairment::new(config, seed);
        let mut trace = Vec::new();
        let mut next_send = 0;
        loop {
            let send_at = (next_send < n).then(|| t0 + MS * next_send);
            let now = match (send_at, net.poll_timeout()) {
                (Some(a), Some(b)) => a.min(b),
                (a, b) => match a.or(b) {
                    Some(t) => t,
                    None => break,
                },
            };
            if send_at == Some(now) {
                net.handle_input(now, class, next_send.to_be_bytes().to_vec(), next_send);
                next_send += 1;
            }
            while let Some((meta, bytes)) = net.poll_output(now) {
                trace.push((now - t0, meta, bytes));
            }
        }
        (trace, *net.stats())
    }

    fn dropped_fraction(config: ImpairConfig, class: PacketClass, n: u32) -> f64 {
        let (_, stats) = run(config, 99, class, n);
        stats.total_dropped() as f64 / f64::from(n)
    }

    #[test]
    fn zero_config_passes_everything_unchanged_immediately_in_order() {
        let (trace, stats) = run(ImpairConfig::default(), 1, PacketClass::Data, 500);
        let expected: Trace = (0..500u32)
            .map(|i| (MS * i, i, i.to_be_bytes().to_vec()))
            .collect();
        assert_eq!(trace, expected);
        assert_eq!(stats.delivered, 500);
    }

    #[test]
    fn zero_config_draws_no_randomness() {
        let mut a = Impairment::new(ImpairConfig::default(), 5);
        let before = a.rng.clone();
        a.handle_input(Instant::now(), PacketClass::Data, vec![1], ());
        assert_eq!(a.rng, before);
    }

    #[test]
    fn data_loss_is_twenty_percent_and_only_for_data() {
        let c = ImpairConfig {
            data_loss: 0.2,
            ..ImpairConfig::default()
        };
        let f = dropped_fraction(c.clone(), PacketClass::Data, 100_000);
        assert!((0.19..=0.21).contains(&f), "{f}");
        assert_eq!(dropped_fraction(c.clone(), PacketClass::Ack, 10_000), 0.0);
        assert_eq!(dropped_fraction(c, PacketClass::Control, 10_000), 0.0);
    }

    #[test]
    fn ack_loss_is_twenty_percent_and_only_for_acks() {
        let c = ImpairConfig {
            ack_loss: 0.2,
            ..ImpairConfig::default()
        };
        let f = dropped_fraction(c.clone(), PacketClass::Ack, 100_000);
        assert!((0.19..=0.21).contains(&f), "{f}");
        assert_eq!(dropped_fraction(c.clone(), PacketClass::Data, 10_000), 0.0);
        assert_eq!(dropped_fraction(c, PacketClass::Control, 10_000), 0.0);
    }

    #[test]
    fn loss_applies_to_every_class() {
        let c = ImpairConfig {
            loss: 0.3,
            ..ImpairConfig::default()
        };
        for class in [PacketClass::Data, PacketClass::Ack, PacketClass::Control] {
            let f = dropped_fraction(c.clone(), class, 20_000);
            assert!((0.28..=0.32).contains(&f), "{class:?} {f}");
        }
    }

    #[test]
    fn duplicate_one_gives_exactly_two_copies() {
        let c = ImpairConfig {
            duplicate: 1.0,
            jitter: 5 * MS,
            ..ImpairConfig::default()
        };
        let (trace, stats) = run(c, 3, PacketClass::Data, 200);
        assert_eq!(trace.len(), 400);
        for i in 0..200u32 {
            assert_eq!(trace.iter().filter(|(_, m, _)| *m == i).count(), 2);
        }
        assert_eq!(stats.duplicated, 200);
    }

    #[test]
    fn corrupt_one_always_changes_the_datagram() {
        let c = ImpairConfig {
            corrupt: 1.0,
            ..ImpairConfig::default()
        };
        let (trace, stats) = run(c, 4, PacketClass::Data, 1000);
        assert_eq!(trace.len(), 1000);
        assert!(trace.iter().all(|(_, m, b)| *b != m.to_be_bytes()));
        assert_eq!(stats.corrupted, 1000);
    }

    #[test]
    fn reorder_lets_later_datagrams_overtake() {
        let c = ImpairConfig {
            reorder: 0.3,
            reorder_delay: 10 * MS,
            ..ImpairConfig::default()
        };
        let (trace, stats) = run(c, 5, PacketClass::Data, 1000);
        let inversions = trace.windows(2).filter(|w| w[0].1 > w[1].1).count();
        assert!(inversions > 50, "{inversions}");
        assert!(stats.reordered > 200);
        for (at, meta, _) in &trace {
            assert!(*at >= MS * *meta && *at <= MS * *meta + 10 * MS);
        }
    }

    #[test]
    fn delay_and_jitter_bounds_hold() {
        let c = ImpairConfig {
            delay: 50 * MS,
            jitter: 20 * MS,
            ..ImpairConfig::default()
        };
        let (trace, _) = run(c, 6, PacketClass::Data, 1000);
        assert_eq!(trace.len(), 1000);
        let lags: Vec<Duration> = trace.iter().map(|(at, m, _)| *at - MS * *m).collect();
        assert!(lags.iter().all(|l| (50 * MS..=70 * MS).contains(l)));
        assert!(lags.iter().any(|l| *l < 55 * MS) && lags.iter().any(|l| *l > 65 * MS));
    }

    #[test]
    fn partition_drops_everything() {
        let c = ImpairConfig {
            partitioned: true,
            ..ImpairConfig::default()
        };
        let (trace, stats) = run(c, 7, PacketClass::Control, 100);
        assert!(trace.is_empty());
        assert_eq!(stats.dropped_partition, 100);
    }

    #[test]
    fn fate_reports_the_decision() {
        let now = Instant::now();
        let mut net = Impairment::new(ImpairConfig::seed_classic(), 8);
        let fate = net.handle_input(now, PacketClass::Control, vec![1], ());
        assert_eq!((fate.dropped, fate.copies), (None, 1));
        net.set_config(ImpairConfig {
            loss: 1.0,
            ..ImpairConfig::default()
        });
        let fate = net.handle_input(now, PacketClass::Control, vec![1], ());
        assert_eq!(fate, Fate::dropped(DropCause::Loss));
        assert_eq!(net.pending(), 1);
    }

    #[test]
    fn queue_is_bounded() {
        let c = ImpairConfig {
            delay: Duration::from_secs(3600),
            ..ImpairConfig::default()
        };
        let now = Instant::now();
        let mut net = Impairment::new(c, 9);
        for _ in 0..MAX_PENDING {
            assert!(!net
                .handle_input(now, PacketClass::Data, vec![], ())
                .is_dropped());
        }
        let fate = net.handle_input(now, PacketClass::Data, vec![], ());
        assert_eq!(fate.dropped, Some(DropCause::Overflow));
        assert_eq!(net.pending(), MAX_PENDING);
        assert_eq!(net.stats().dropped_overflow, 1);
    }

    #[test]
    fn unrepresentable_release_time_is_an_overflow_not_a_panic() {
        let mut net = Impairment::new(
            ImpairConfig {
                delay: Duration::MAX,
                ..ImpairConfig::default()
            },
            10,
        );
        let fate = net.handle_input(Instant::now(), PacketClass::Data, vec![], ());
        assert_eq!(fate.dropped, Some(DropCause::Overflow));
    }

    fn everything() -> ImpairConfig {
        ImpairConfig {
            loss: 0.1,
            data_loss: 0.1,
            duplicate: 0.2,
            reorder: 0.2,
            reorder_delay: 7 * MS,
            corrupt: 0.1,
            delay: 3 * MS,
            jitter: 4 * MS,
            ..ImpairConfig::default()
        }
    }

    #[test]
    fn same_seed_same_trace_different_seed_different_trace() {
        let a = run(everything(), 11, PacketClass::Data, 2000);
        let b = run(everything(), 11, PacketClass::Data, 2000);
        let c = run(everything(), 12, PacketClass::Data, 2000);
        assert_eq!(a, b);
        assert_ne!(a.0, c.0);
    }

    proptest! {
        /// Polling is never early, `poll_timeout` is the earliest release,
        /// and every received datagram is accounted for.
        #[test]
        fn timeout_is_earliest_release_and_nothing_is_early_or_lost(
            seed: u64,
            gaps in proptest::collection::vec(0u64..5_000, 1..200),
        ) {
            let t0 = Instant::now();
            let mut net = Impairment::new(everything(), seed);
            let mut sent_at = Vec::new();
            let mut now = t0;
            for gap in gaps {
                let arrival = now + Duration::from_micros(gap);
                // Deliver everything due before the next arrival.
                while let Some(wake) = net.poll_timeout().filter(|w| *w <= arrival) {
                    prop_assert!(wake >= now);
                    prop_assert!(net.poll_output(wake - Duration::from_nanos(1)).is_none());
                    now = wake;
                    let mut released = 0;
                    while let Some((i, _)) = net.poll_output(now) {
                        let min_lag: Duration = 3 * MS;
                        prop_assert!(now >= sent_at[i] + min_lag);
                        released += 1;
                    }
                    prop_assert!(released > 0);
                    prop_assert!(net.poll_timeout().is_none_or(|w| w > now));
                }
                now = arrival;
                let i = sent_at.len();
                sent_at.push(now);
                net.handle_input(now, PacketClass::Data, vec![0; 8], i);
            }
            while let Some(wake) = net.poll_timeout() {
                while net.poll_output(wake).is_some() {}
            }
            let s = net.stats();
            prop_assert_eq!(s.received, sent_at.len() as u64);
            prop_assert_eq!(s.delivered, s.received - s.total_dropped() + s.duplicated);
        }
    }
}
