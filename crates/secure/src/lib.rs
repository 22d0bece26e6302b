//! Sans-IO encrypted, authenticated sessions for udpchat: you talk to the person whose
//! key you pinned, nobody reads or injects messages, and nobody in the middle passes a
//! first contact.
//!
//! Encrypted protocol version 3 (normative text: `docs/PROTOCOL.md`, section 9):
//!
//! - **Identity.** Each installation has a long-term X25519 key pair ([`Identity`]);
//!   people see its [`Fingerprint`]. The handshake, `Noise_XXpsk2_25519_ChaChaPoly_BLAKE2s`
//!   (or `..._AESGCM_...` when the initiator asks, [`SessionCipher`]), proves both sides' keys. After a first contact a peer's key is pinned ([`Trust`]);
//!   later sessions (restarts too) need nothing compared, and another key is refused
//!   ([`Refusal::KeyChanged`]).
//! - **First contact** is proved by an invitation code ([`InviteCode`], `7-ribbon-tunnel`)
//!   run through SPAKE2, a PAKE: every handshake attempt lets an active attacker test one
//!   guess, and nothing can be searched offline; or by a shared passphrase
//!   ([`derive_psk`], Argon2id). Both are mixed into the handshake's PSK. Without either,
//!   an unknown key is refused ([`Refusal::UnknownContact`]).
//! - **Transport**: every datagram carries one inner (plaintext protocol) packet,
//!   encrypted with ChaCha20-Poly1305 or AES-256-GCM under an explicit 64-bit nonce that travels in the
//!   packet and is used statelessly (snow's `StatelessTransportState`), with an
//!   RFC 6479 replay window. The reliable, ordered protocol runs unchanged **inside**.
//! - **Denial of service**: an initiation must carry MAC1, keyed by the passphrase or the
//!   responder's public key (a host that only knows the addresses cannot make one), and,
//!   under load, MAC2 from a cookie bound to its address (WireGuard's cookie reply), before
//!   any Diffie–Hellman work; the work is rate-limited per source address and port. An
//!   unauthenticated packet never cancels our own handshake.
//!
//! Like the rest of udpchat this crate never touches a socket, a clock, a disk, a thread
//! or the operating system's RNG: time comes in as `now`, randomness as a 32-byte seed,
//! keys and pins as values; what must be stored comes out as events.
//!
//! # Calling contract
//!
//! 1. At start: load or create the identity, load the pinned keys, derive the passphrase
//!    key once if there is one ([`derive_psk`], about 0.25 s by design), then
//!    [`SecureEndpoint::new`] with a fresh non-zero epoch, `Instant::now()` and 32 bytes
//!    from the OS CSPRNG. Call [`SecureEndpoint::connect`] if the peer's address is known.
//! 2. Every received datagram, whatever its size, goes to
//!    [`SecureEndpoint::handle_datagram`]. `Ok(Some(plaintext))` goes to the protocol
//!    session; `Ok(None)` was a handshake message or keepalive; `Err(reject)` is counted
//!    and otherwise ignored (log it rate-limited, by [`Reject::code`]). Never answer a
//!    rejected datagram.
//! 3. Every packet the protocol session wants to send goes through
//!    [`SecureEndpoint::seal`]; send the returned [`Transmit`]. On
//!    [`SealError::NotEstablished`], hold the packet (the protocol layer retransmits
//!    anyway) until [`SecureEvent::Established`].
//! 4. After **every** call above and after [`SecureEndpoint::handle_timeout`]: drain
//!    [`SecureEndpoint::poll_event`] (pin the key of an `Established { new_contact: true }`
//!    before anything else is sent), then [`SecureEndpoint::poll_transmit`] (send each),
//!    then sleep until [`SecureEndpoint::poll_timeout`].
//! 5. The protocol layer's inner packets must not exceed [`wire::MAX_INNER`] (1171)
//!    bytes, so that a datagram stays within 1200.
//!
//! ```
//! use std::time::Instant;
//! use udpchat_secure::{
//!     Identity, InviteCode, SecureConfig, SecureEndpoint, SecureEvent, Verification,
//! };
//!
//! // Real code: the private keys come from the OS CSPRNG and live in each home.
//! let (alice, bob) = (Identity::from_private([1; 32]), Identity::from_private([2; 32]));
//! let (a_addr, b_addr) = ("127.0.0.1:12000".parse()?, "127.0.0.1:12001".parse()?);
//! let code = InviteCode::parse("7-ribbon-tunnel")?; // Bob ran `udpchat invite`
//! let now = Instant::now();
//! let mut a = SecureEndpoint::new(
//!     SecureConfig { code: Some(code), peer: Some(b_addr), ..SecureConfig::new(alice) },
//!     0xA, now, [3; 32],
//! );
//! let mut b = SecureEndpoint::new(SecureConfig { code: Some(code), ..SecureConfig::new(bob) }, 0xB, now, [4; 32]);
//!
//! a.connect(now);
//! // Shuttle datagrams until both are quiet (a real driver sends them over UDP).
//! loop {
//!     let mut moved = false;
//!     while let Some(t) = a.poll_transmit() { b.handle_datagram(now, a_addr, &t.payload)?; moved = true; }
//!     while let Some(t) = b.poll_transmit() { a.handle_datagram(now, b_addr, &t.payload)?; moved = true; }
//!     if !moved { break; }
//! }
//! // Both proved the code: each pins the other's key from now on.
//! assert!(matches!(
//!     a.poll_event(),
//!     Some(SecureEvent::Established { verified: Verification::Code, new_contact: true, .. })
//! ));
//!
//! let datagram = a.seal(now, b"an inner protocol packet")?;
//! let inner = b.handle_datagram(now, a_addr, &datagram.payload)?.expect("data");
//! assert_eq!(inner.bytes, b"an inner protocol packet");
//! // The same datagram again is a replay: rejected, and never answered.
//! assert_eq!(b.handle_datagram(now, a_addr, &datagram.payload).unwrap_err().code(), "replay");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! One endpoint talks to one peer at a time. It cannot be its own peer: its own
//! handshake comes back as [`Reject::Reflected`].
#![forbid(unsafe_code)]

mod config;
mod cookie;
mod endpoint;
mod error;
mod event;
mod identity;
mod invite;
mod key;
mod noise;
mod ratelimit;
mod replay;
mod session;
mod stats;
pub mod wire;

#[cfg(test)]
mod tests;

pub use config::{SecureConfig, SessionCipher, Trust};
pub use cookie::COOKIE_SECRET_LIFETIME;
pub use endpoint::{
    SecureEndpoint, CONFIRM_RETRIES, MAX_CODE_FAILURES, MAX_PENDING, MAX_PENDING_PER_SOURCE,
    PENDING_TTL, RESPONDER_REKEY_DELAY, RETRY_BASE, RETRY_MAX,
};
pub use error::{Reject, SealError};
pub use event::{PeerRefusal, Plaintext, Refusal, SecureEvent, Transmit, Verification};
pub use identity::{Fingerprint, Identity, PublicKey};
pub use invite::{CodeError, InviteCode, CODE_SPACE, MAX_CODE_ATTEMPTS};
pub use key::{
    derive_psk, derive_psk_with, KdfParams, KeyError, Psk, PSK_LEN, PSK_SALT, ROOM_SEPARATOR,
};
pub use noise::{PATTERN, PATTERN_AES_GCM, PROLOGUE};
pub use ratelimit::MAX_SOURCES;
pub use replay::{ReplayWindow, WINDOW};
pub use stats::{SecureStats, StateSize};
pub use wire::{MAX_DATAGRAM, MAX_INNER, OVERHEAD, VERSION};
