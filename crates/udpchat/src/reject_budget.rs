//! How many rejected datagrams are reported: at most 200 per second. A flood of garbage must
//! not turn into a flood of output (or of work: each report is a write).

use std::time::{Duration, Instant};

/// Reports allowed per window: enough to diagnose a misbehaving peer datagram by
/// datagram, few enough that a flood costs little output.
const PER_WINDOW: u32 = 200;
/// The window.
const WINDOW: Duration = Duration::from_secs(1);

/// Counts reports per second and what was left out.
#[derive(Debug)]
pub(crate) struct RejectBudget {
    window_start: Option<Instant>,
    shown: u32,
    suppressed: u64,
}

impl RejectBudget {
    /// A fresh budget.
    pub(crate) fn new() -> Self {
        Self {
            window_start: None,
            shown: 0,
            suppressed: 0,
        }
    }

    /// Whether to report a rejection at `now`: `Some(n)` to report it, after saying that
    /// `n` earlier ones were not reported (0: none); `None` to leave it out.
    pub(crate) fn admit(&mut self, now: Instant) -> Option<u64> {
        if self
            .window_start
            .is_none_or(|start| now.saturating_duration_since(start) >= WINDOW)
        {
            self.window_start = Some(now);
            self.shown = 0;
        }
        if self.shown >= PER_WINDOW {
            self.suppressed += 1;
            return None;
        }
        self.shown += 1;
        Some(std::mem::take(&mut self.suppressed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_few_per_second_and_the_rest_counted() {
        let t0 = Instant::now();
        let mut budget = RejectBudget::new();
        let shown = (0..1000).filter(|_| budget.admit(t0).is_some()).count();
        assert_eq!(shown, PER_WINDOW as usize);
        assert_eq!(budget.admit(t0 + WINDOW), Some(800));
        assert_eq!(budget.admit(t0 + WINDOW), Some(0));
    }
}
