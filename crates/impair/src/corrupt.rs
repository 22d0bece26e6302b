//! Datagram corruption: bit flips, truncation or trailing garbage.

use rand::Rng;

/// Alters `datagram` so that it always differs from the original, in bytes
/// or in length. One of three kinds is drawn uniformly:
/// flip 1..=3 distinct random bits, truncate to a random shorter length
/// (possibly 0), or append 1..=16 random bytes. An empty datagram can only
/// grow, so the first two kinds fall back to appending.
pub(crate) fn corrupt<R: Rng + ?Sized>(rng: &mut R, datagram: &mut Vec<u8>) {
    match rng.random_range(0..3u8) {
        0 if !datagram.is_empty() => flip_bits(rng, datagram),
        1 if !datagram.is_empty() => {
            let len = rng.random_range(0..datagram.len());
            datagram.truncate(len);
        }
        _ => {
            let start = datagram.len();
            let extra = rng.random_range(1..=16usize);
            datagram.resize(start + extra, 0);
            rng.fill_bytes(&mut datagram[start..]);
        }
    }
}

/// Flips 1..=3 distinct bits of a non-empty datagram (distinct, so that two
/// flips never cancel out).
fn flip_bits<R: Rng + ?Sized>(rng: &mut R, datagram: &mut [u8]) {
    let total_bits = datagram.len().saturating_mul(8);
    let wanted = rng.random_range(1..=3usize);
    let mut flipped = [usize::MAX; 3];
    let mut count = 0;
    while count < wanted {
        let bit = rng.random_range(0..total_bits);
        if !flipped[..count].contains(&bit) {
            flipped[count] = bit;
            count += 1;
            datagram[bit / 8] ^= 1 << (bit % 8);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    proptest! {
        #[test]
        fn corruption_always_changes_the_datagram(
            seed: u64,
            original in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let mut d = original.clone();
            corrupt(&mut rng, &mut d);
            prop_assert_ne!(&d, &original);
            if d.len() == original.len() {
                let flipped: u32 = d.iter().zip(&original).map(|(a, b)| (a ^ b).count_ones()).sum();
                prop_assert!((1..=3).contains(&flipped));
            } else if d.len() < original.len() {
                prop_assert_eq!(&d[..], &original[..d.len()]);
            } else {
                prop_assert!(d.len() - original.len() <= 16);
                prop_assert_eq!(&d[..original.len()], &original[..]);
            }
        }
    }

    #[test]
    fn all_three_kinds_occur() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let (mut flip, mut cut, mut grow) = (0, 0, 0);
        for _ in 0..300 {
            let mut d = vec![0u8; 32];
            corrupt(&mut rng, &mut d);
            match d.len() {
                32 => flip += 1,
                n if n < 32 => cut += 1,
                _ => grow += 1,
            }
        }
        assert!(flip > 50 && cut > 50 && grow > 50, "{flip} {cut} {grow}");
    }
}
