//! The short authentication string (SAS): what two people compare by voice to detect a
//! man in the middle of a passphrase-less handshake.
//!
//! Both ends of one handshake compute the same handshake hash; a man in the middle runs
//! two handshakes with two different hashes. The SAS is 12 decimal digits (about 40 bits)
//! from a hash of the handshake hash. Why 12 and not 6: in `Noise_NN` the responder
//! chooses its ephemeral key after seeing the initiator's, so a man in the middle can
//! try keys until the two strings match; each try costs an X25519 key generation, and
//! this endpoint gives up on an initiation within seconds (its retry interval), so 2⁴⁰
//! tries are out of reach where 10⁶ would take about a second. A commitment scheme
//! (ZRTP-style) or a PAKE would allow a shorter string; see the crate documentation.

use blake2::{Blake2s256, Digest};

/// Number of decimal digits in the SAS.
pub const SAS_DIGITS: u32 = 12;

/// The SAS of a handshake hash, as four groups of three digits: `"042 917 503 288"`.
#[must_use]
pub fn short_authentication_string(handshake_hash: &[u8; 32]) -> String {
    let mut h = Blake2s256::new();
    h.update(b"udpchat/v1/sas");
    h.update(handshake_hash);
    let digest = h.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    let n = u64::from_be_bytes(first) % 10u64.pow(SAS_DIGITS);
    let digits = format!("{n:012}");
    let groups: Vec<&str> = (0..digits.len())
        .step_by(3)
        .filter_map(|i| digits.get(i..i + 3))
        .collect();
    groups.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_answer_and_format() {
        let sas = short_authentication_string(&[0; 32]);
        assert_eq!(sas, KAT_ZERO);
        assert_eq!(sas.len(), 15);
        assert!(sas
            .split(' ')
            .all(|g| g.len() == 3 && g.bytes().all(|b| b.is_ascii_digit())));
    }

    // Computed independently: Python hashlib.blake2s(b"udpchat/v1/sas" + bytes(32)).
    const KAT_ZERO: &str = "864 459 483 554";

    #[test]
    fn different_hashes_give_different_strings() {
        let mut seen = std::collections::HashSet::new();
        for i in 0..=255u8 {
            let mut h = [0u8; 32];
            h[31] = i;
            assert!(seen.insert(short_authentication_string(&h)));
        }
    }
}
