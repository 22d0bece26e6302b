//! The pre-shared key: derived once, at start, from the shared passphrase with Argon2id.
//!
//! The salt is fixed and application-specific (plus an optional room name) so that both
//! peers derive the same key without talking, and so that the expensive derivation runs
//! exactly once per process: a per-handshake salt would let every unauthenticated
//! datagram cost an Argon2 run.
//!
//! Whoever records one handshake initiation can test passphrase guesses offline at the
//! cost of one Argon2id run per guess; the parameters below make that cost real, but only
//! a strong passphrase (five or more diceware words) makes it hopeless. A PAKE (CPace,
//! SPAKE2) is the upgrade path that removes offline guessing altogether.

use std::fmt;

use argon2::{Algorithm, Argon2, Params, Version};
use thiserror::Error;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

/// Length of the pre-shared key in bytes (the Noise PSK length).
pub const PSK_LEN: usize = 32;

/// The fixed application salt. A room name, when given, is appended after
/// [`ROOM_SEPARATOR`], so the same passphrase in two rooms gives two unrelated keys.
pub const PSK_SALT: &[u8] = b"udpchat/v1/psk";

/// Separates [`PSK_SALT`] from the room name in the Argon2 salt.
pub const ROOM_SEPARATOR: &[u8] = b"/room/";

/// Argon2id cost parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KdfParams {
    /// Memory in KiB.
    pub m_kib: u32,
    /// Passes over memory.
    pub t: u32,
    /// Lanes.
    pub p: u32,
}

impl KdfParams {
    /// The parameters [`derive_psk`] uses: RFC 9106's "second recommended option",
    /// Argon2id with m = 64 MiB, t = 3, p = 4. About 240 ms on the project's 2-core machine
    /// in an optimised build (the argon2 crate computes the lanes one after another).
    pub const RECOMMENDED: Self = Self {
        m_kib: 64 * 1024,
        t: 3,
        p: 4,
    };

    /// The smallest parameters Argon2 allows (8 KiB, one pass, one lane). **Offers no
    /// protection against guessing**: only for tests in this and other crates that need
    /// many keys quickly. Never use it for a real passphrase.
    pub const INSECURE_TEST_ONLY: Self = Self {
        m_kib: 8,
        t: 1,
        p: 1,
    };
}

/// Why a key could not be derived.
#[derive(Debug, Error)]
pub enum KeyError {
    /// Argon2 refused the parameters or the input (for example, out of memory).
    #[error("key derivation failed: {0}")]
    Kdf(argon2::Error),
}

/// A 32-byte pre-shared key. Zeroed when dropped; its `Debug` output is redacted.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct Psk([u8; PSK_LEN]);

impl Psk {
    /// Wraps raw key bytes (for a key that was not derived from a passphrase).
    #[must_use]
    pub fn from_bytes(bytes: [u8; PSK_LEN]) -> Self {
        Self(bytes)
    }

    /// The raw key bytes, for the Noise handshake.
    pub(crate) fn as_bytes(&self) -> &[u8; PSK_LEN] {
        &self.0
    }
}

impl fmt::Debug for Psk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Psk(<redacted>)")
    }
}

/// Derives the pre-shared key from a passphrase and an optional room name with Argon2id
/// and [`KdfParams::RECOMMENDED`]. Call it once at start; it takes a quarter of a second
/// by design.
///
/// `None` and `Some("")` name the same (default) room. The caller should keep the
/// passphrase in a zeroizing buffer (e.g. `zeroize::Zeroizing<String>`) and drop it
/// after this call.
///
/// # Errors
/// [`KeyError::Kdf`] if Argon2 cannot run (in practice: cannot allocate 64 MiB).
pub fn derive_psk(passphrase: &[u8], room: Option<&str>) -> Result<Psk, KeyError> {
    derive_psk_with(passphrase, room, KdfParams::RECOMMENDED)
}

/// [`derive_psk`] with explicit Argon2id parameters. Both peers must use the same ones.
///
/// # Errors
/// [`KeyError::Kdf`] if Argon2 refuses the parameters or cannot allocate memory.
pub fn derive_psk_with(
    passphrase: &[u8],
    room: Option<&str>,
    params: KdfParams,
) -> Result<Psk, KeyError> {
    let argon_params =
        Params::new(params.m_kib, params.t, params.p, Some(PSK_LEN)).map_err(KeyError::Kdf)?;
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, argon_params);
    let mut out = Zeroizing::new([0u8; PSK_LEN]);
    argon
        .hash_password_into(passphrase, &salt(room), out.as_mut())
        .map_err(KeyError::Kdf)?;
    Ok(Psk(*out))
}

/// The Argon2 salt: [`PSK_SALT`], then [`ROOM_SEPARATOR`] and the room name if one is given.
fn salt(room: Option<&str>) -> Vec<u8> {
    let mut salt = PSK_SALT.to_vec();
    if let Some(room) = room.filter(|r| !r.is_empty()) {
        salt.extend_from_slice(ROOM_SEPARATOR);
        salt.extend_from_slice(room.as_bytes());
    }
    salt
}

#[cfg(test)]
mod tests {
    use super::*;

    // Expected values were computed with the PHC reference implementation (Debian's
    // `argon2` command), not with this crate, e.g.
    // `echo -n "correct horse battery staple" | argon2 udpchat/v1/psk -id -t 3 -k 65536 -p 4 -l 32 -r`.

    #[test]
    fn known_answer_recommended_params() {
        let psk = derive_psk(b"correct horse battery staple", None).unwrap();
        assert_eq!(
            hex::encode(psk.as_bytes()),
            "1228657ccb588fe7dd28a8f370bbc4952f795c85df637fecf030d30b65a3865d"
        );
    }

    #[test]
    fn known_answers_with_test_params() {
        let p = KdfParams::INSECURE_TEST_ONLY;
        let psk = derive_psk_with(b"pw", None, p).unwrap();
        assert_eq!(
            hex::encode(psk.as_bytes()),
            "79cc75fb9be954eaebd37057ed8553c49fe82e704792dc31aba5ac64b210a1c2"
        );
        // The room goes into the salt as "udpchat/v1/psk/room/<room>".
        let psk = derive_psk_with(b"pw", Some("kitchen"), p).unwrap();
        assert_eq!(
            hex::encode(psk.as_bytes()),
            "45498f1e59abc47f3f4542b7c14dd5068be8992231f48fa52bd4f3d8f25eea37"
        );
    }

    #[test]
    fn room_changes_the_key_and_empty_room_is_no_room() {
        let p = KdfParams::INSECURE_TEST_ONLY;
        let none = derive_psk_with(b"pw", None, p).unwrap();
        let empty = derive_psk_with(b"pw", Some(""), p).unwrap();
        let kitchen = derive_psk_with(b"pw", Some("kitchen"), p).unwrap();
        assert_eq!(none.as_bytes(), empty.as_bytes());
        assert_ne!(none.as_bytes(), kitchen.as_bytes());
        assert_eq!(salt(Some("kitchen")), b"udpchat/v1/psk/room/kitchen");
    }

    #[test]
    fn debug_is_redacted() {
        let psk = Psk::from_bytes([0xAB; PSK_LEN]);
        let shown = format!("{psk:?}");
        assert_eq!(shown, "Psk(<redacted>)");
        assert!(!shown.to_lowercase().contains("ab"));
    }

    #[test]
    fn zeroize_clears_the_bytes() {
        let mut psk = Psk::from_bytes([7; PSK_LEN]);
        psk.zeroize();
        assert_eq!(psk.as_bytes(), &[0; PSK_LEN]);
    }
}
