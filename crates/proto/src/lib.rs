//! Sans-IO core of udpchat: a reliable, ordered, exactly-once message session with one
//! peer over an unreliable datagram network.
//!
//! This crate never opens a socket, never spawns a task and never reads the clock. Time
//! comes in as `now`, datagrams come in through [`Session::handle_datagram`], and
//! datagrams to send, timers and events come out through the `poll_*` methods. The same
//! code therefore runs under the real tokio driver and under the deterministic simulator,
//! which feeds it virtual time.
//!
//! # Calling contract
//!
//! 1. Create one [`Session`] per peer with a random non-zero epoch (once per process
//!    start) and the current time: with [`Session::new`] in the clear, where the session
//!    learns the peer's run (epoch) from a HELLO exchange; with
//!    [`Session::new_without_hello`] under a layer that authenticates the peer itself
//!    (the secure handshake), which sends no HELLO. That layer then calls
//!    [`Session::adopt_peer`] each time its handshake authenticates a run of the peer:
//!    the first time connects ([`Event::Connected`]), another run later is a restart
//!    ([`Event::PeerRestarted`]). Before the first `adopt_peer`, it may hand the
//!    handshake's round trip to [`Session::on_rtt_sample`], so the first timeout comes
//!    from a measurement.
//! 2. After **every** input — [`Session::new`], [`Session::new_without_hello`],
//!    [`Session::send`], [`Session::handle_datagram`], [`Session::handle_timeout`],
//!    [`Session::adopt_peer`] — drain
//!    [`Session::poll_event`] until `None` and hand received messages to the user, then
//!    drain [`Session::poll_transmit`] until `None` (send each datagram), then drain
//!    [`Session::poll_event`] again (first transmissions are reported as they are
//!    packed), then read [`Session::poll_timeout`]. Showing before sending matters: the
//!    acknowledgement of a message is among the transmits, and a process that crashed
//!    after acknowledging but before showing would lose a message its peer counts as
//!    delivered.
//! 3. Call [`Session::handle_timeout`] once the clock reaches the instant `poll_timeout`
//!    returned (calling it early is harmless; it just fires nothing). `None` means no
//!    timer is armed: sleep until a datagram or a message arrives.
//! 4. `now` must not go backwards; if it does, the session uses the latest value seen.
//!
//! Until the peer's run is known, messages wait unsent and spend no retries. If nobody
//! answers for [`Config::connect_timeout`] (30 s by default), the session reports
//! [`Event::NoAnswer`], then each queued message as [`Event::Failed`] with its text, and
//! keeps trying; it says so again every `connect_timeout` while nobody answers.
//!
//! ```
//! use std::time::Instant;
//! use udpchat_proto::{Config, Event, Session};
//!
//! let now = Instant::now();
//! let addr = "127.0.0.1:12000".parse().unwrap();
//! // A session whose peer is itself, as in the seed's local test.
//! let mut me = Session::new(Config::default(), 0x5eed, addr, now);
//! me.send(now, "hello".to_string()).unwrap();
//! while let Some(datagram) = me.poll_transmit() {
//!     me.handle_datagram(now, addr, &datagram.payload);
//! }
//! let got: Vec<_> = std::iter::from_fn(|| me.poll_event())
//!     .filter_map(|e| match e { Event::Received { text, .. } => Some(text), _ => None })
//!     .collect();
//! assert_eq!(got, ["hello"]);
//! ```
//!
//! # Layout
//!
//! - [`wire`]: the packet format and its codec (normative text: `docs/PROTOCOL.md`).
//! - `sender`, `receiver`: the two halves of one direction of the stream: a sliding
//!   window with selective acknowledgements (stop-and-wait at window 1).
//! - [`RttEstimator`]: RFC 6298 round-trip estimation and the retransmission timeout.
//! - [`Session`]: epochs, the HELLO exchange (or the peer's run from the layer below),
//!   restarts, keepalives and the peer's state, packing of messages into datagrams, and
//!   the two halves together.
//! - [`Event`], [`Transmit`], [`Stats`], [`Config`] and the error types.
#![forbid(unsafe_code)]

mod config;
mod congestion;
mod error;
mod event;
mod receiver;
mod rtt;
mod sender;
mod session;
mod stats;
mod transmit;
pub mod wire;

pub use config::{
    Config, SeqBits, DEFAULT_WINDOW, MAX_MESSAGE_LEN, MAX_WINDOW, MIN_DATAGRAM,
    SCHEDULING_ALLOWANCE,
};
pub use error::{DecodeError, RejectReason, SendError};
pub use event::{Event, FailReason, MessageId, PeerState};
pub use rtt::{RtoPolicy, RttEstimator};
pub use session::Session;
pub use stats::Stats;
pub use transmit::Transmit;
pub use wire::{CancelReason, FileFrame, StableId};
