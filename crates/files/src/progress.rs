//! [`Progress`]: rate, ETA and the rhythm of progress events for one transfer, from
//! byte counts and instants the caller supplies (no clock of its own, so it is as
//! testable and as deterministic as the protocol).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// The rate is measured over about this much of the recent past: long enough to smooth
/// bursts, short enough to follow a link that changes speed.
const WINDOW: Duration = Duration::from_secs(2);
/// Samples closer together than this are merged, so memory stays bounded however
/// often [`Progress::update`] is called (about 2 s / 50 ms = 40 samples).
const SAMPLE_EVERY: Duration = Duration::from_millis(50);
/// [`Progress::due`] says yes at most this often: at most 4 progress events a second.
const DUE_EVERY: Duration = Duration::from_millis(250);

/// Progress of one transfer: fed the bytes done so far with [`update`](Self::update),
/// it gives the [`rate`](Self::rate) over the last ~2 s, an [`eta`](Self::eta), and
/// says when a progress event is [`due`](Self::due).
#[derive(Debug, Clone)]
pub struct Progress {
    /// `(when, bytes done)`, oldest first, at least [`SAMPLE_EVERY`] apart; the first
    /// is at or just before the start of the window.
    samples: VecDeque<(Instant, u64)>,
    /// The newest update, which may be newer than the last sample.
    latest: (Instant, u64),
    last_due: Option<Instant>,
}

impl Progress {
    /// Progress starting at `now` with `bytes_done` already done (a resumed transfer's
    /// offset, which does not count towards the rate).
    pub fn new(now: Instant, bytes_done: u64) -> Self {
        Self {
            samples: VecDeque::from([(now, bytes_done)]),
            latest: (now, bytes_done),
            last_due: None,
        }
    }

    /// Records that `bytes_done` bytes are done at `now`. Instants earlier than the
    /// latest one are taken as the latest (the caller's clock is monotonic, but its
    /// readings may be taken out of order).
    pub fn update(&mut self, now: Instant, bytes_done: u64) {
        let now = now.max(self.latest.0);
        self.latest = (now, bytes_done);
        let newest_sample = self.samples.back().map_or(now, |s| s.0);
        if now.duration_since(newest_sample) >= SAMPLE_EVERY {
            self.samples.push_back(self.latest);
        }
        // Keep one sample at or before the window's start, drop older ones.
        if let Some(start) = now.checked_sub(WINDOW) {
            while self.samples.len() > 1 && self.samples.get(1).is_some_and(|s| s.0 <= start) {
                self.samples.pop_front();
            }
        }
    }

    /// Bytes done so far (as last updated).
    pub fn done(&self) -> u64 {
        self.latest.1
    }

    /// Bytes per second over the last ~2 s; 0 before any time has passed.
    pub fn rate(&self) -> f64 {
        let Some(&(then, bytes_then)) = self.samples.front() else {
            return 0.0;
        };
        let (now, bytes_now) = self.latest;
        let seconds = now.duration_since(then).as_secs_f64();
        if seconds <= 0.0 {
            return 0.0;
        }
        bytes_now.saturating_sub(bytes_then) as f64 / seconds
    }

    /// How long the rest of `total` bytes would take at the current rate: `None` while
    /// the rate is 0 (nothing moving, or no time passed yet), zero when done.
    pub fn eta(&self, total: u64) -> Option<Duration> {
        let left = total.saturating_sub(self.done());
        if left == 0 {
            return Some(Duration::ZERO);
        }
        let rate = self.rate();
        if rate <= 0.0 {
            return None;
        }
        Duration::try_from_secs_f64(left as f64 / rate).ok()
    }

    /// Whether a progress event should be emitted now: true at most once every 250 ms
    /// (the first call is always true). A true answer counts as the event.
    pub fn due(&mut self, now: Instant) -> bool {
        match self.last_due {
            Some(last) if now.saturating_duration_since(last) < DUE_EVERY => false,
            _ => {
                self.last_due = Some(now);
                true
            }
        }
    }
}

/// A byte count for people, in binary units: `512 B`, `1.5 KiB`, `1.5 MiB`...
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    // Move up a unit while the value would print as 1024.0 or more.
    while value >= 1023.95 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// A rate for people: `human_bytes` per second, `0 B/s` for anything not a positive
/// finite number.
pub fn human_rate(bytes_per_second: f64) -> String {
    let bytes = if bytes_per_second.is_finite() && bytes_per_second > 0.0 {
        // Saturates at u64::MAX, far beyond any real rate.
        bytes_per_second.round() as u64
    } else {
        0
    };
    format!("{}/s", human_bytes(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn the_rate_follows_the_last_two_seconds() {
        let t0 = Instant::now();
        let mut p = Progress::new(t0, 0);
        assert_eq!(p.rate(), 0.0);
        assert_eq!(p.eta(100), None);
        // 1 MB/s for 5 s, in 1106-byte chunks.
        let mut done = 0u64;
        for i in 1..=5000u64 {
            done += 1000;
            p.update(t0 + ms(i), done);
        }
        assert!((p.rate() - 1_000_000.0).abs() < 1.0, "{}", p.rate());
        assert!(p.samples.len() <= 42, "{}", p.samples.len());
        // Then 100 kB/s: after 2 s the old speed is forgotten.
        for i in 1..=2100u64 {
            done += 100;
            p.update(t0 + ms(5000 + i), done);
        }
        assert!((p.rate() - 100_000.0).abs() < 1_000.0, "{}", p.rate());
        let eta = p.eta(done + 1_000_000).unwrap();
        assert!((eta.as_secs_f64() - 10.0).abs() < 0.2, "{eta:?}");
        assert_eq!(p.eta(done), Some(Duration::ZERO));
        assert_eq!(p.eta(0), Some(Duration::ZERO));
    }

    #[test]
    fn a_resumed_offset_does_not_count_towards_the_rate() {
        let t0 = Instant::now();
        let mut p = Progress::new(t0, 1_000_000);
        p.update(t0 + ms(1000), 1_000_500);
        assert!((p.rate() - 500.0).abs() < 1e-6);
        assert_eq!(p.done(), 1_000_500);
    }

    #[test]
    fn a_stall_brings_the_rate_to_zero() {
        let t0 = Instant::now();
        let mut p = Progress::new(t0, 0);
        p.update(t0 + ms(1000), 1000);
        p.update(t0 + ms(5000), 1000);
        assert_eq!(p.rate(), 0.0);
        assert_eq!(p.eta(2000), None);
    }

    #[test]
    fn due_at_most_every_250_ms() {
        let t0 = Instant::now();
        let mut p = Progress::new(t0, 0);
        let dues: Vec<u64> = (0..=1000)
            .step_by(10)
            .filter(|&t| p.due(t0 + ms(t)))
            .collect();
        assert_eq!(dues, [0, 250, 500, 750, 1000]);
        assert!(!p.due(t0 + ms(900)), "an earlier instant is not due");
    }

    #[test]
    fn human_units() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(1024), "1.0 KiB");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(3 * 1024 * 1024 / 2), "1.5 MiB");
        assert_eq!(human_bytes(1024 * 1024 - 1), "1.0 MiB");
        assert_eq!(human_bytes(5 * 1024 * 1024 * 1024), "5.0 GiB");
        assert_eq!(human_bytes(u64::MAX), "16.0 EiB");
        assert_eq!(human_rate(1536.0), "1.5 KiB/s");
        assert_eq!(human_rate(12.4), "12 B/s");
        assert_eq!(human_rate(f64::NAN), "0 B/s");
        assert_eq!(human_rate(-5.0), "0 B/s");
        assert_eq!(human_rate(f64::INFINITY), "0 B/s");
    }
}
