//! First contact by a short code: `udpchat invite` shows `7-ribbon-tunnel`, the other
//! person types it, and a PAKE (SPAKE2, symmetric, on Ed25519) turns it into a key that
//! only holders of the code share. The key is mixed into the handshake, so each
//! handshake attempt lets an active attacker test exactly one guess of the code, and a
//! passive one learns nothing it could search offline.
//!
//! The code is a number from 1 to 99 and two words of the BIP-39 English list (2048
//! words, unique in their first four letters): 99 × 2048² ≈ 4.2 × 10⁸ codes, 28.6 bits.
//! The endpoint answers at most [`MAX_CODE_ATTEMPTS`] attempts per invitation, so the
//! attacker's chance is at most that many in 4.2 × 10⁸ (see docs/SECURITY.md).

use std::fmt;

use bip39::Language;
use rand_chacha::rand_core::RngCore;
use rand_chacha::ChaCha20Rng;
use spake2::{Ed25519Group, Identity as SpakeIdentity, Password, Spake2};
use thiserror::Error;
use zeroize::Zeroizing;

use crate::wire::SPAKE_LEN;

/// Invitation codes there are: 99 numbers × 2048 × 2048 words.
pub const CODE_SPACE: u64 = 99 * 2048 * 2048;

/// Handshakes an open invitation answers (each is one guess for whoever sent it) before
/// it is closed; a first contact needs one, or a few when packets are lost.
pub const MAX_CODE_ATTEMPTS: u32 = 10;

/// The SPAKE2 identity both sides use: it binds the key to this purpose.
const SPAKE_IDENTITY: &[u8] = b"udpchat/v2/invite";

/// Why a typed code is not a code.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum CodeError {
    /// Not three parts separated by dashes or spaces.
    #[error("an invitation code looks like 7-ribbon-tunnel: a number and two words")]
    Shape,
    /// The number is not 1 to 99.
    #[error("the code's number must be 1 to 99, not {0:?}")]
    Number(String),
    /// A word that is not in the list (and not the start of exactly one word of it).
    #[error("{0:?} is not a word of invitation codes; check the spelling")]
    Word(String),
}

/// An invitation code: a number and two word indices.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct InviteCode {
    number: u8,
    words: [u16; 2],
}

impl InviteCode {
    /// A code from 8 random bytes (the program draws them from the OS CSPRNG).
    #[must_use]
    pub fn from_random(bytes: [u8; 8]) -> Self {
        // The modulo bias is 2⁶⁴ mod CODE_SPACE in 2⁶⁴: about 10⁻¹¹.
        let n = u64::from_le_bytes(bytes) % CODE_SPACE;
        let per_number = 2048 * 2048;
        let number = u8::try_from(1 + n / per_number).unwrap_or(1);
        let rest = n % per_number;
        let w0 = u16::try_from(rest / 2048).unwrap_or(0);
        let w1 = u16::try_from(rest % 2048).unwrap_or(0);
        Self {
            number,
            words: [w0, w1],
        }
    }

    /// Parses what a person typed: `7-ribbon-tunnel`, `7 Ribbon Tunnel`, or each word
    /// shortened to its first four letters or more (`7-ribb-tunn`).
    ///
    /// # Errors
    /// [`CodeError`] says what is wrong, so a typo is caught before any packet is sent.
    pub fn parse(text: &str) -> Result<Self, CodeError> {
        let parts: Vec<String> = text
            .split(|c: char| c == '-' || c.is_whitespace())
            .filter(|p| !p.is_empty())
            .map(str::to_lowercase)
            .collect();
        let [number, w0, w1] = parts.as_slice() else {
            return Err(CodeError::Shape);
        };
        let number = number
            .parse::<u8>()
            .ok()
            .filter(|n| (1..=99).contains(n))
            .ok_or_else(|| CodeError::Number(number.clone()))?;
        Ok(Self {
            number,
            words: [word_index(w0)?, word_index(w1)?],
        })
    }

    /// The canonical text, which is also the SPAKE2 password.
    fn canonical(&self) -> Zeroizing<String> {
        let list = Language::English.word_list();
        Zeroizing::new(format!(
            "{}-{}-{}",
            self.number,
            list[usize::from(self.words[0]) % 2048],
            list[usize::from(self.words[1]) % 2048]
        ))
    }
}

impl fmt::Display for InviteCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.canonical())
    }
}

impl fmt::Debug for InviteCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("InviteCode(<redacted>)")
    }
}

/// A word's index in the list: the word itself, or a prefix of at least four letters
/// that starts exactly one word.
fn word_index(word: &str) -> Result<u16, CodeError> {
    let lang = Language::English;
    if let Some(i) = lang.find_word(word) {
        return Ok(i);
    }
    if word.len() >= 4 {
        if let [only] = lang.words_by_prefix(word) {
            if let Some(i) = lang.find_word(only) {
                return Ok(i);
            }
        }
    }
    Err(CodeError::Word(word.to_owned()))
}

/// One side's SPAKE2 state for one handshake attempt.
pub(crate) struct Pake(Spake2<Ed25519Group>);

impl Pake {
    /// Starts an attempt: the state and the message to send.
    pub(crate) fn start(code: &InviteCode, rng: &mut ChaCha20Rng) -> (Self, [u8; SPAKE_LEN]) {
        let password = code.canonical();
        let (state, msg) = Spake2::<Ed25519Group>::start_symmetric_with_rng(
            &Password::new(password.as_bytes()),
            &SpakeIdentity::new(SPAKE_IDENTITY),
            Rng06(rng),
        );
        let mut out = [0u8; SPAKE_LEN];
        if msg.len() == SPAKE_LEN {
            out.copy_from_slice(&msg);
        }
        (Self(state), out)
    }

    /// Finishes with the other side's message: the shared key (the same on both sides
    /// only if both used the same code), or `None` for a malformed message.
    pub(crate) fn finish(self, theirs: &[u8]) -> Option<Zeroizing<[u8; 32]>> {
        let key = Zeroizing::new(self.0.finish(theirs).ok()?);
        let mut out = Zeroizing::new([0u8; 32]);
        if key.len() != 32 {
            return None;
        }
        out.copy_from_slice(&key);
        Some(out)
    }
}

/// The endpoint's ChaCha20 stream through rand_core 0.6's traits, which spake2 0.4 uses.
struct Rng06<'a>(&'a mut ChaCha20Rng);

impl rand_core_06::RngCore for Rng06<'_> {
    fn next_u32(&mut self) -> u32 {
        self.0.next_u32()
    }
    fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        self.0.fill_bytes(dest);
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core_06::Error> {
        self.0.fill_bytes(dest);
        Ok(())
    }
}

impl rand_core_06::CryptoRng for Rng06<'_> {}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::rand_core::SeedableRng;

    #[test]
    fn codes_print_and_parse_back() {
        for seed in 0..200u64 {
            let code =
                InviteCode::from_random(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15).to_le_bytes());
            let text = code.to_string();
            assert_eq!(InviteCode::parse(&text), Ok(code), "{text}");
            assert!((1..=99).contains(&code.number));
        }
    }

    #[test]
    fn typing_is_forgiving_but_typos_are_caught() {
        let code = InviteCode::parse("7-ribbon-tunnel").unwrap();
        assert_eq!(code.to_string(), "7-ribbon-tunnel");
        assert_eq!(InviteCode::parse("  7 RIBBON   tunnel ").unwrap(), code);
        assert_eq!(InviteCode::parse("07-ribb-tunn").unwrap(), code);
        assert_eq!(
            InviteCode::parse("7-ribon-tunnel"),
            Err(CodeError::Word("ribon".into()))
        );
        assert_eq!(InviteCode::parse("7-ribbon"), Err(CodeError::Shape));
        assert_eq!(
            InviteCode::parse("100-ribbon-tunnel"),
            Err(CodeError::Number("100".into()))
        );
        assert_eq!(
            InviteCode::parse("0-ribbon-tunnel"),
            Err(CodeError::Number("0".into()))
        );
        // Three letters could start several words: refused rather than guessed.
        assert!(InviteCode::parse("7-abs-tunnel").is_err());
    }

    #[test]
    fn same_code_same_key_other_code_other_key() {
        let mut rng = ChaCha20Rng::from_seed([1; 32]);
        let code = InviteCode::parse("7-ribbon-tunnel").unwrap();
        let other = InviteCode::parse("7-ribbon-tuition").unwrap();
        let (a, ma) = Pake::start(&code, &mut rng);
        let (b, mb) = Pake::start(&code, &mut rng);
        let ka = a.finish(&mb).unwrap();
        let kb = b.finish(&ma).unwrap();
        assert_eq!(*ka, *kb);
        let (c, mc) = Pake::start(&code, &mut rng);
        let (d, md) = Pake::start(&other, &mut rng);
        assert_ne!(*c.finish(&md).unwrap(), *d.finish(&mc).unwrap());
        assert_eq!(ma[0], b'S', "symmetric SPAKE2 side byte");
        let (e, _) = Pake::start(&code, &mut rng);
        assert!(e.finish(&[0u8; 5]).is_none());
    }

    #[test]
    fn debug_never_shows_the_code() {
        let code = InviteCode::parse("7-ribbon-tunnel").unwrap();
        assert!(!format!("{code:?}").contains("ribbon"));
    }
}
