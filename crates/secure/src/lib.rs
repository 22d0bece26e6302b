//! Sans-IO encrypted, authenticated sessions for udpchat: nobody reads or injects messages
//! without the key.
//!
//! A Noise handshake (`snow`) agrees on keys; then every datagram carries one inner
//! (plaintext protocol) packet, encrypted with ChaCha20-Poly1305 under an explicit 64-bit
//! nonce that travels in the packet and is used statelessly (snow's
//! `StatelessTransportState`, never its stateful transport, which assumes in-order
//! delivery). The reliable, ordered protocol runs unchanged **inside** the ciphertext.
//!
//! - **With a passphrase**: `Noise_NNpsk0_25519_ChaChaPoly_BLAKE2s`, keyed with
//!   [`derive_psk`] (Argon2id, once at start). Only holders of the passphrase can
//!   produce a first message that authenticates, so everyone else gets nothing at all.
//! - **Without**: `Noise_NN_25519_ChaChaPoly_BLAKE2s`, still encrypted, plus a short
//!   authentication string ([`short_authentication_string`]) from the handshake hash for
//!   the two people to compare by voice. Rekeys are then keyed by a secret of the session
//!   they replace (`NNpsk0`, packet type 0xE4), so a man in the middle cannot step in
//!   after the strings were compared. A peer restart, or a fresh handshake after the
//!   session expired, needs a new comparison ([`SecureEvent::PeerRestarted`] and
//!   [`SecureEvent::Reverify`] carry the new string).
//!
//! Like the rest of udpchat this crate never touches a socket, a clock, a thread or the
//! operating system's RNG: time comes in as `now` (monotonic) plus one wall-clock
//! reading at start, randomness as a 32-byte seed.
//!
//! # Calling contract
//!
//! 1. At start: derive the key once ([`derive_psk`], about 0.25 s by design), then
//!    [`SecureEndpoint::new`] with a fresh non-zero epoch, `Instant::now()`, the time
//!    since the Unix epoch, and 32 bytes from the OS CSPRNG. Call
//!    [`SecureEndpoint::connect`] if the peer's address is known.
//! 2. Every received datagram, whatever its size, goes to
//!    [`SecureEndpoint::handle_datagram`]. `Ok(Some(plaintext))` goes to the protocol
//!    session as if it had arrived in the clear from `plaintext.from`; `Ok(None)` was a
//!    handshake message or keepalive; `Err(reject)` is counted and otherwise ignored
//!    (log it rate-limited, by [`Reject::code`]). Never answer a rejected datagram.
//! 3. Every packet the protocol session wants to send goes through
//!    [`SecureEndpoint::seal`]; send the returned [`Transmit`]. On
//!    [`SealError::NotEstablished`], hold the packet (the protocol layer retransmits
//!    anyway) until [`SecureEvent::Established`].
//! 4. After **every** call above and after [`SecureEndpoint::handle_timeout`]: drain
//!    [`SecureEndpoint::poll_transmit`] (send each), drain
//!    [`SecureEndpoint::poll_event`], then sleep until [`SecureEndpoint::poll_timeout`].
//! 5. The protocol layer's inner packets must not exceed [`wire::MAX_INNER`] (1171)
//!    bytes, so that a datagram stays within 1200.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use udpchat_secure::{derive_psk_with, KdfParams, SecureConfig, SecureEndpoint, SecureEvent};
//!
//! // Real code: derive_psk(passphrase, room), once. Cheap parameters keep the doctest fast.
//! let psk = derive_psk_with(b"correct horse battery staple", None, KdfParams::INSECURE_TEST_ONLY)?;
//! let (a_addr, b_addr) = ("127.0.0.1:12000".parse()?, "127.0.0.1:12001".parse()?);
//! let (now, unix) = (Instant::now(), Duration::from_secs(1_750_000_000));
//! let config = |peer| SecureConfig { psk: Some(psk.clone()), peer: Some(peer), ..SecureConfig::default() };
//! let mut a = SecureEndpoint::new(config(b_addr), 0xA, now, unix, [1; 32]); // seeds: OS CSPRNG
//! let mut b = SecureEndpoint::new(config(a_addr), 0xB, now, unix, [2; 32]);
//!
//! a.connect(now);
//! // Shuttle datagrams until both are quiet (a real driver sends them over UDP).
//! loop {
//!     let mut moved = false;
//!     while let Some(t) = a.poll_transmit() { b.handle_datagram(now, a_addr, &t.payload)?; moved = true; }
//!     while let Some(t) = b.poll_transmit() { a.handle_datagram(now, b_addr, &t.payload)?; moved = true; }
//!     if !moved { break; }
//! }
//! assert!(matches!(a.poll_event(), Some(SecureEvent::Established { .. })));
//!
//! let datagram = a.seal(now, b"an inner protocol packet")?;
//! let inner = b.handle_datagram(now, a_addr, &datagram.payload)?.expect("data");
//! assert_eq!(inner.bytes, b"an inner protocol packet");
//! // The same datagram again is a replay: rejected, and never answered.
//! assert_eq!(b.handle_datagram(now, a_addr, &datagram.payload).unwrap_err().code(), "replay");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! One endpoint talks to one peer. It cannot be its own peer: its own handshake comes
//! back as [`Reject::Reflected`].
//!
//! # Packet layout
//!
//! Big-endian integers. The first byte is the type; no type is 0x55, the first byte of a
//! plaintext udpchat packet, so the two can never be confused.
//!
//! ```text
//! 0xE1 initiation            1  type
//!                           32  e, the initiator's ephemeral X25519 key
//!                           40  payload: sender_index u32, epoch u64, unix secs u64,
//!                               nanos u32, 16 zero bytes
//!                           16  tag (with a passphrase only; NN sends the payload clear)
//!                               = 89 bytes with a passphrase, 73 without
//! 0xE4 rekey initiation      1  type (no passphrase only)
//!                            4  session_index: the receiver's index of the session whose
//!                               secret keys this handshake
//!                           32  e
//!                           40  payload, as above
//!                           16  tag                                       = 93 bytes
//! 0xE2 response              1  type
//!                            4  receiver_index (the initiator's sender_index)
//!                           32  e, the responder's ephemeral key
//!                           12  payload: sender_index u32, epoch u64
//!                           16  tag                                       = 65 bytes
//! 0xE3 transport             1  type
//!                            4  receiver_index
//!                            8  nonce (per session and direction, from 0, never reused)
//!                            n  ChaCha20-Poly1305(inner packet), n ≤ 1171
//!                           16  tag                          overhead [`OVERHEAD`] = 29
//! ```
//!
//! **Header binding.** snow 0.10's stateless transport has no associated-data input, so
//! the transport header is not AD (as in WireGuard, whose data packets use empty AD
//! too). Each header field is bound all the same: the type selects the processing, the
//! receiver index selects the key (another index means another key or none), and the
//! nonce is the AEAD nonce, so changing any bit makes authentication fail. Handshake
//! indices and epochs travel inside the Noise payload (authenticated, encrypted where the
//! pattern has a key), and the initiation's type byte is part of the Noise prologue
//! (`"udpchat/v1"` ‖ type). The tests flip every bit of every recorded packet.
//!
//! **No amplification.** A response (65 bytes) is never larger than the initiation that
//! earns it (73, 89 or 93), and the confirming keepalive (29) is smaller still. Nothing
//! else is ever sent in answer to a datagram, and nothing at all to one that did not
//! authenticate.
//!
//! # Handshake rules
//!
//! - An initiation is checked in this order, and everything before the rate limiter only
//!   reads: length for its type and mode; (NN) source = configured peer; Noise message 1
//!   authenticates (wrong passphrase: [`Reject::BadMac`]); payload well-formed; epoch is
//!   not ours ([`Reject::Reflected`]); timestamp newer than the last confirmed one and
//!   not older than our own start less `max_clock_skew` ([`Reject::StaleHandshake`]);
//!   not a repeat of one being answered; simultaneous-open tie-break; per-source rate
//!   limit. Only then is a DH computed, a response sent and a (pending) session kept.
//! - **Simultaneous open**: when both sides initiate at once, the initiation with the
//!   lower ephemeral public key proceeds; the other side drops its own and answers.
//! - **Confirmation**: a responder's session stays pending (at most [`MAX_PENDING`]) and
//!   the responder keeps sending under the previous session until a transport packet
//!   authenticates under the new one. The initiator switches on the response and sends
//!   an empty keepalive at once, re-sent up to [`CONFIRM_RETRIES`] times until it hears
//!   from the responder.
//! - **Replay mark**: an initiation that authenticates (keyed by the passphrase, or a
//!   `0xE4` rekey keyed by the previous session) raises the mark at once, whatever
//!   becomes of it (answered, lost in a simultaneous open, rate-limited), as in
//!   WireGuard; a recorded initiation replayed later, from any address, is stale. A
//!   first `NN` initiation authenticates nothing, so there only a confirmed session
//!   raises the mark, and forged `NN` initiations cannot block real ones.
//! - **Restart**: a peer's new run initiates with a newer timestamp and a new epoch:
//!   [`SecureEvent::PeerRestarted`]. An old initiation replayed later is refused.
//! - **Rekey**: after `rekey_after` (the responder 10 s later) or `rekey_after_messages`
//!   sent; the old session still decrypts until `reject_after`, then
//!   [`Reject::Expired`].
//! - **Peer address**: changes only on an authenticated packet: a handshake message that
//!   completes a session, or a transport packet with the highest nonce seen so far in
//!   the current session.
//!
//! # Not done here
//!
//! Cookies under load (WireGuard's mac2) and a PAKE (which would end offline guessing of
//! a weak passphrase from a recorded initiation) are not implemented. The SAS is 12
//! digits because `NN` lets a man in the middle grind its ephemeral key; a ZRTP-style
//! commitment would allow a shorter one. The wall clock is read once, at start; a peer
//! whose clock lags ours by more than `max_clock_skew` cannot initiate to us right after
//! we start (our own initiation still connects the two).
#![forbid(unsafe_code)]

mod config;
mod endpoint;
mod error;
mod event;
mod key;
mod noise;
mod ratelimit;
mod replay;
mod sas;
mod session;
mod stats;
pub mod wire;

#[cfg(test)]
mod tests;

pub use config::SecureConfig;
pub use endpoint::{
    SecureEndpoint, CONFIRM_RETRIES, MAX_PENDING, RESPONDER_REKEY_DELAY, RETRY_BASE, RETRY_MAX,
};
pub use error::{Reject, SealError};
pub use event::{Plaintext, SecureEvent, Transmit};
pub use key::{
    derive_psk, derive_psk_with, KdfParams, KeyError, Psk, PSK_LEN, PSK_SALT, ROOM_SEPARATOR,
};
pub use noise::{PATTERN_NN, PATTERN_PSK, PROLOGUE};
pub use ratelimit::MAX_SOURCES;
pub use replay::{ReplayWindow, WINDOW};
pub use sas::{short_authentication_string, SAS_DIGITS};
pub use stats::{SecureStats, StateSize};
pub use wire::{MAX_DATAGRAM, MAX_INNER, OVERHEAD};
