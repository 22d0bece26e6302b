//! The anti-replay window on transport nonces (RFC 6479).
//!
//! Stateless AEAD decryption accepts the same (nonce, ciphertext) as often as it is
//! offered, so replay protection is this window's job. It remembers every nonce within
//! [`WINDOW`] of the highest one seen, as a ring of 64-bit blocks, and refuses anything
//! older. Reordering within the window is tolerated; duplicates never are.
//!
//! The calling order matters and is part of the security argument:
//! [`check`](ReplayWindow::check) (no side effects) **before** decryption, and
//! [`mark`](ReplayWindow::mark) only **after** the packet authenticated. Marking first
//! would let anyone who can send a datagram burn future nonces (or, with one huge forged
//! nonce, slide the whole window past the real traffic).

/// Number of 64-bit blocks in the ring.
const BLOCKS: usize = 32;
/// Bits per block.
const BLOCK_BITS: u64 = 64;
/// Total bits in the ring.
const RING_BITS: u64 = BLOCKS as u64 * BLOCK_BITS;

/// How far behind the highest nonce seen a nonce may be and still be accepted (if unseen):
/// the ring's size less one block, which is being reused as the window slides (as in
/// RFC 6479 and WireGuard's `counter.c`).
pub const WINDOW: u64 = RING_BITS - BLOCK_BITS;

/// A sliding anti-replay window over 64-bit nonces.
#[derive(Clone, Debug, Default)]
pub struct ReplayWindow {
    /// Highest nonce marked so far; `None` until the first mark.
    top: Option<u64>,
    /// Bit `n % RING_BITS` is set when nonce `n` (within the window) was marked.
    ring: [u64; BLOCKS],
}

impl ReplayWindow {
    /// An empty window: every nonce is acceptable.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// The highest nonce marked so far.
    #[must_use]
    pub fn top(&self) -> Option<u64> {
        self.top
    }

    /// Would nonce `n` be accepted? Never changes the window.
    #[must_use]
    pub fn check(&self, n: u64) -> bool {
        let Some(top) = self.top else {
            return true;
        };
        if n > top {
            return true;
        }
        if top - n >= WINDOW {
            return false;
        }
        let (block, bit) = Self::position(n);
        self.ring[block] & bit == 0
    }

    /// Records nonce `n` as seen. Call only after the packet carrying it authenticated.
    /// Marking a nonce that [`check`](Self::check) refuses is harmless and changes nothing.
    pub fn mark(&mut self, n: u64) {
        match self.top {
            None => self.top = Some(n),
            Some(top) if n > top => {
                // Clear the blocks the window slides onto, at most the whole ring.
                let old_block = top / BLOCK_BITS;
                let new_block = n / BLOCK_BITS;
                let steps = (new_block - old_block).min(BLOCKS as u64);
                for i in 1..=steps {
                    // Truncation is intended: the ring index is taken modulo BLOCKS.
                    let idx = (old_block.wrapping_add(i) % BLOCKS as u64) as usize;
                    self.ring[idx] = 0;
                }
                self.top = Some(n);
            }
            Some(top) if top - n >= WINDOW => return,
            Some(_) => {}
        }
        let (block, bit) = Self::position(n);
        self.ring[block] |= bit;
    }

    /// Ring block index and bit mask of nonce `n`.
    fn position(n: u64) -> (usize, u64) {
        // Truncation is intended: the result is < BLOCKS.
        let block = ((n / BLOCK_BITS) % BLOCKS as u64) as usize;
        (block, 1u64 << (n % BLOCK_BITS))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use proptest::prelude::*;

    use super::*;

    /// The reference model: every nonce ever marked, and the highest.
    #[derive(Default)]
    struct Model {
        seen: HashSet<u64>,
        top: Option<u64>,
    }

    impl Model {
        fn check(&self, n: u64) -> bool {
            match self.top {
                None => true,
                Some(top) => !self.seen.contains(&n) && (n > top || top - n < WINDOW),
            }
        }
        fn mark(&mut self, n: u64) {
            if self.check(n) {
                self.seen.insert(n);
                self.top = Some(self.top.map_or(n, |t| t.max(n)));
            }
        }
    }

    #[test]
    fn window_is_at_least_1024() {
        assert_eq!(WINDOW, 1984);
    }

    // The shape of WireGuard's counter self-test (drivers/net/wireguard/selftest/counter.c),
    // adapted to a window that starts empty and accepts nonce 0.
    #[test]
    fn kernel_style_edge_cases() {
        let mut w = ReplayWindow::new();
        let mut t = |n: u64, expect: bool| {
            let got = w.check(n);
            assert_eq!(got, expect, "nonce {n}");
            if got {
                w.mark(n);
            }
        };
        t(0, true);
        t(1, true);
        t(1, false);
        t(9, true);
        t(8, true);
        t(7, true);
        t(7, false);
        t(WINDOW, true);
        t(WINDOW - 1, true);
        t(WINDOW - 1, false);
        t(WINDOW - 2, true);
        t(2, true);
        t(2, false);
        t(WINDOW + 16, true);
        t(3, false); // now too old
        t(WINDOW + 16, false);
        t(WINDOW * 3, true);
        t(WINDOW * 3 - 1, true);
        t(WINDOW * 3 - 1, false);
        t(WINDOW * 2, false); // exactly WINDOW behind: too old
        t(WINDOW * 2 + 1, true);
        t(WINDOW * 2 + 1, false);
        t(WINDOW * 3 + 1, true);
        t(WINDOW * 3 + 2, true);
        t(WINDOW * 3 + 1, false);
        // A jump of more than the ring clears it entirely.
        t(WINDOW * 10, true);
        for n in WINDOW * 9 + 1..WINDOW * 10 {
            t(n, true);
        }
        t(WINDOW * 9, false);
    }

    #[test]
    fn every_bit_of_the_ring_is_distinct() {
        let mut w = ReplayWindow::new();
        w.mark(RING_BITS * 4 - 1);
        for n in (RING_BITS * 4 - WINDOW)..(RING_BITS * 4 - 1) {
            assert!(w.check(n), "{n}");
        }
        for n in (RING_BITS * 4 - WINDOW)..(RING_BITS * 4 - 1) {
            w.mark(n);
            assert!(!w.check(n), "{n}");
        }
    }

    #[test]
    fn values_at_the_top_of_the_range() {
        let mut w = ReplayWindow::new();
        w.mark(u64::MAX);
        assert!(!w.check(u64::MAX));
        assert!(w.check(u64::MAX - 1));
        assert!(w.check(u64::MAX - (WINDOW - 1)));
        assert!(!w.check(u64::MAX - WINDOW));
        assert!(!w.check(0));
        w.mark(u64::MAX - 5);
        assert!(!w.check(u64::MAX - 5));
    }

    fn nonce() -> impl Strategy<Value = u64> {
        prop_oneof![
            0u64..3 * RING_BITS,
            (u64::MAX - 3 * RING_BITS)..=u64::MAX,
            (1u64 << 40)..(1u64 << 40) + 3 * RING_BITS,
            any::<u64>(),
        ]
    }

    /// A long seeded random walk (cheap, so much longer than the proptest cases): nonces
    /// mostly just below and above the top, some far away, against the model.
    #[test]
    fn long_random_walk_matches_the_model() {
        use rand_chacha::rand_core::{RngCore, SeedableRng};
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(6479);
        let mut w = ReplayWindow::new();
        let mut m = Model::default();
        let mut top = 1u64 << 62;
        for _ in 0..200_000 {
            let r = rng.next_u64();
            let n = match r % 8 {
                0 => rng.next_u64(),
                1..=5 => top.wrapping_sub(rng.next_u64() % (WINDOW + 200)),
                _ => top.wrapping_add(rng.next_u64() % 300),
            };
            assert_eq!(w.check(n), m.check(n), "check({n})");
            if r & (1 << 20) != 0 {
                w.mark(n);
                m.mark(n);
                top = m.top.unwrap_or(top);
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(10_000))]
        #[test]
        fn matches_the_reference_model(ops in proptest::collection::vec((nonce(), any::<bool>()), 1..40)) {
            let mut w = ReplayWindow::new();
            let mut m = Model::default();
            for (n, do_mark) in ops {
                prop_assert_eq!(w.check(n), m.check(n), "check({})", n);
                if do_mark {
                    w.mark(n);
                    m.mark(n);
                }
                prop_assert_eq!(w.top(), m.top);
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1_000))]
        #[test]
        fn dense_runs_with_reordering(base in nonce(), perm in proptest::collection::vec(0u64..4096, 1..300)) {
            let mut w = ReplayWindow::new();
            let mut m = Model::default();
            for off in perm {
                let n = base.saturating_add(off);
                prop_assert_eq!(w.check(n), m.check(n), "check({})", n);
                w.mark(n);
                m.mark(n);
            }
        }
    }
}
