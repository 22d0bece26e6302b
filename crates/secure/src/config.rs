//! What an endpoint is told at start.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use crate::identity::{Identity, PublicKey};
use crate::invite::InviteCode;
use crate::key::Psk;

/// Which peer keys the endpoint accepts without further proof.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Trust {
    /// Every pinned key (the program's known-peers file). A key in here is accepted from
    /// any address: a known contact that moved.
    pub pinned: BTreeSet<PublicKey>,
    /// The key pinned for the configured peer's address, if any: at that address, any
    /// other key is refused ([`Refusal::KeyChanged`](crate::Refusal::KeyChanged)) unless
    /// an invitation code proves it.
    pub expected: Option<PublicKey>,
}

/// Configuration of a [`SecureEndpoint`](crate::SecureEndpoint).
#[derive(Clone, Debug)]
pub struct SecureConfig {
    /// This installation's long-term key pair.
    pub identity: Identity,
    /// The key derived from the shared passphrase ([`derive_psk`](crate::derive_psk)).
    /// With it, only holders of the passphrase can make an initiation we answer, and a
    /// first contact is accepted on its strength.
    pub psk: Option<Psk>,
    /// An invitation code for a first contact (`udpchat invite` on one side, `--code` on
    /// the other). Used once: a contact that proves it is pinned, and the code is
    /// forgotten.
    pub code: Option<InviteCode>,
    /// The pinned keys.
    pub trust: Trust,
    /// The peer's address, if known. Without it the endpoint only answers handshakes and
    /// learns the address from the first one that completes (an open invitation). It
    /// changes later only when an authenticated packet arrives from a new address.
    pub peer: Option<SocketAddr>,
    /// Start a new handshake once the current session is this old (WireGuard: 120 s). The
    /// side that responded to the current session waits 10 s longer, so the two sides do
    /// not routinely initiate at the same moment.
    pub rekey_after: Duration,
    /// Refuse to send or accept transport packets of a session this old (WireGuard: 180 s).
    /// Must exceed `rekey_after` by enough for a handshake to complete.
    pub reject_after: Duration,
    /// Start a new handshake after sending this many packets in one session.
    pub rekey_after_messages: u64,
    /// Handshake initiations answered per second from one source address and port.
    pub handshake_rate_per_source: u32,
    /// Initiations from one source answered back to back before the rate applies.
    pub handshake_burst: u32,
    /// Initiations per second, from all sources together, answered without a cookie:
    /// above it the endpoint is under load, and an initiation must carry a valid MAC2.
    pub load_rate: u32,
    /// The cipher of the sessions this side initiates (a responder takes the
    /// initiator's): ChaCha20-Poly1305 by default, so every test run is the same on
    /// every machine; the program asks for [`SessionCipher::for_this_processor`].
    pub cipher: SessionCipher,
}

/// The AEAD of a session's transport packets (PROTOCOL.md §9.1).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SessionCipher {
    /// ChaCha20-Poly1305: fast everywhere, constant-time without special instructions.
    #[default]
    ChaChaPoly,
    /// AES-256-GCM: several times cheaper per byte where the processor has AES and
    /// carry-less multiplication instructions.
    AesGcm,
}

impl SessionCipher {
    /// The cipher an initiation's flags name.
    pub(crate) fn from_flags(flags: u8) -> Self {
        if flags & crate::wire::FLAG_AES_GCM != 0 {
            Self::AesGcm
        } else {
            Self::ChaChaPoly
        }
    }

    /// The initiation flag that names it.
    pub(crate) fn flag(self) -> u8 {
        match self {
            Self::ChaChaPoly => 0,
            Self::AesGcm => crate::wire::FLAG_AES_GCM,
        }
    }

    /// AES-256-GCM where this processor has AES instructions (x86-64: AES-NI and
    /// PCLMULQDQ; AArch64: AES and PMULL), else ChaCha20-Poly1305.
    #[must_use]
    pub fn for_this_processor() -> Self {
        #[cfg(target_arch = "x86_64")]
        let hardware = std::arch::is_x86_feature_detected!("aes")
            && std::arch::is_x86_feature_detected!("pclmulqdq");
        #[cfg(target_arch = "aarch64")]
        let hardware = std::arch::is_aarch64_feature_detected!("aes")
            && std::arch::is_aarch64_feature_detected!("pmull");
        #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
        let hardware = false;
        if hardware {
            Self::AesGcm
        } else {
            Self::ChaChaPoly
        }
    }
}

impl SecureConfig {
    /// The defaults for this identity.
    #[must_use]
    pub fn new(identity: Identity) -> Self {
        Self {
            identity,
            psk: None,
            code: None,
            trust: Trust::default(),
            peer: None,
            rekey_after: Duration::from_secs(120),
            reject_after: Duration::from_secs(180),
            rekey_after_messages: 1 << 20,
            handshake_rate_per_source: 20,
            handshake_burst: 5,
            load_rate: 50,
            cipher: SessionCipher::ChaChaPoly,
        }
    }
}
