//! Random primitives that consume the RNG only when the outcome is uncertain.

use std::time::Duration;

use rand::Rng;

/// Bernoulli trial. Draws one `f64` only if `0 < p < 1`; `p <= 0` or NaN is
/// never, `p >= 1` is always. Skipping certain outcomes keeps a perfect
/// network free of RNG draws.
pub(crate) fn chance<R: Rng + ?Sized>(rng: &mut R, p: f64) -> bool {
    if p >= 1.0 {
        true
    } else if p > 0.0 {
        rng.random::<f64>() < p
    } else {
        false
    }
}

/// Uniform duration in `0..=max` at nanosecond resolution (capped at
/// `u64::MAX` ns, about 584 years). Draws nothing when `max` is zero.
pub(crate) fn uniform_duration<R: Rng + ?Sized>(rng: &mut R, max: Duration) -> Duration {
    if max.is_zero() {
        return Duration::ZERO;
    }
    let nanos = u64::try_from(max.as_nanos()).unwrap_or(u64::MAX);
    Duration::from_nanos(rng.random_range(0..=nanos))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn certain_outcomes_draw_nothing() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let before = rng.clone();
        assert!(!chance(&mut rng, 0.0));
        assert!(!chance(&mut rng, -1.0));
        assert!(!chance(&mut rng, f64::NAN));
        assert!(chance(&mut rng, 1.0));
        assert!(chance(&mut rng, 2.0));
        assert_eq!(uniform_duration(&mut rng, Duration::ZERO), Duration::ZERO);
        assert_eq!(rng, before);
        chance(&mut rng, 0.5);
        assert_ne!(rng, before);
    }

    #[test]
    fn uniform_duration_stays_in_bounds() {
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let max = Duration::from_micros(3);
        for _ in 0..1000 {
            assert!(uniform_duration(&mut rng, max) <= max);
        }
        // Huge bounds saturate instead of panicking.
        let _ = uniform_duration(&mut rng, Duration::MAX);
    }
}
