//! Handshake rate limits: a bounded table of GCRA token buckets, keyed by source address
//! and port (or by `()` for one global bucket).
//!
//! Answering an initiation costs Diffie-Hellman work and a datagram, so each source gets
//! a rate (per second) and a small burst. Keying by address *and port* means a flood
//! from one port of a host does not lock out a peer behind the same address. The table never holds more than
//! [`MAX_SOURCES`] entries: when full, entries whose bucket has refilled completely (the
//! same as having no entry) are dropped, and if none has, a new source is refused until
//! one does. A flood from many spoofed sources therefore costs bounded memory and at
//! most briefly delays a new source.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::{Duration, Instant};

/// Most sources tracked at once.
pub const MAX_SOURCES: usize = 4096;

/// A bounded per-key rate limiter (generic cell rate algorithm).
#[derive(Debug)]
pub(crate) struct RateLimiter<K> {
    /// Time between two handshakes at the sustained rate; `None` refuses everything.
    interval: Option<Duration>,
    /// How far ahead of `now` a source's theoretical arrival time may run (the burst).
    tolerance: Duration,
    /// Theoretical arrival time of each source's next handshake.
    tat: HashMap<K, Instant>,
}

impl<K: Hash + Eq + Copy> RateLimiter<K> {
    /// `rate` handshakes per second per source, bursts of up to `burst` (at least 1).
    pub(crate) fn new(rate: u32, burst: u32) -> Self {
        let interval = (rate > 0).then(|| Duration::from_secs(1) / rate);
        let tolerance = interval.unwrap_or_default() * burst.max(1).saturating_sub(1);
        Self {
            interval,
            tolerance,
            tat: HashMap::new(),
        }
    }

    /// Counts one handshake from `key` at `now`; false if it exceeds the limit.
    pub(crate) fn allow(&mut self, key: K, now: Instant) -> bool {
        let Some(interval) = self.interval else {
            return false;
        };
        let tat = self.tat.get(&key).copied().map_or(now, |t| t.max(now));
        if tat > now + self.tolerance {
            return false;
        }
        if !self.tat.contains_key(&key) && self.tat.len() >= MAX_SOURCES {
            self.tat.retain(|_, t| *t > now);
            if self.tat.len() >= MAX_SOURCES {
                return false;
            }
        }
        self.tat.insert(key, tat + interval);
        true
    }

    /// Sources currently tracked.
    pub(crate) fn len(&self) -> usize {
        self.tat.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(n: u32) -> std::net::IpAddr {
        std::net::IpAddr::from(n.to_be_bytes())
    }

    #[test]
    fn address_and_port_are_separate_sources() {
        let t0 = Instant::now();
        let mut rl = RateLimiter::new(20, 1);
        let a: std::net::SocketAddr = "192.0.2.1:1".parse().unwrap();
        let b: std::net::SocketAddr = "192.0.2.1:2".parse().unwrap();
        assert!(rl.allow(a, t0));
        assert!(!rl.allow(a, t0));
        assert!(
            rl.allow(b, t0),
            "another port of the same host is another source"
        );
    }

    #[test]
    fn burst_then_sustained_rate() {
        let t0 = Instant::now();
        let mut rl = RateLimiter::new(20, 5);
        let allowed = (0..10).filter(|_| rl.allow(ip(1), t0)).count();
        assert_eq!(allowed, 5);
        // 50 ms later exactly one more token.
        let t1 = t0 + Duration::from_millis(50);
        assert!(rl.allow(ip(1), t1));
        assert!(!rl.allow(ip(1), t1));
        // Another source is independent.
        assert!(rl.allow(ip(2), t1));
        // Over 10 s at most 20/s get through.
        let mut n = 0;
        for ms in 0..10_000u64 {
            if rl.allow(ip(3), t1 + Duration::from_millis(ms)) {
                n += 1;
            }
        }
        assert!((200..=205).contains(&n), "{n}");
    }

    #[test]
    fn zero_rate_refuses_everything() {
        let mut rl = RateLimiter::new(0, 5);
        assert!(!rl.allow(ip(1), Instant::now()));
        assert_eq!(rl.len(), 0);
    }

    #[test]
    fn table_is_bounded_and_recovers() {
        let t0 = Instant::now();
        let mut rl = RateLimiter::new(20, 5);
        for i in 0..(MAX_SOURCES as u32 + 1000) {
            rl.allow(ip(i), t0);
        }
        assert_eq!(rl.len(), MAX_SOURCES);
        assert!(!rl.allow(ip(u32::MAX), t0));
        // Once the buckets have refilled, new sources get in again.
        let later = t0 + Duration::from_secs(1);
        assert!(rl.allow(ip(u32::MAX), later));
        assert!(rl.len() <= MAX_SOURCES);
    }
}
