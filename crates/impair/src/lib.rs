//! Seeded, sans-IO network impairment for udpchat: loss (overall, per
//! message and per ACK), duplication, reordering, corruption, delay and
//! jitter, and partitions.
//!
//! Like str0m's `netem` or smoltcp's `FaultInjector`, [`Impairment`] never
//! reads the clock, touches a socket or sleeps; the caller supplies time.
//! The deterministic simulator uses it on virtual time between two protocol
//! endpoints, and the real program applies it to received datagrams to
//! reproduce the original chat's "ignore 20% of received messages / ACKs"
//! ([`ImpairConfig::seed_classic`]).
//!
//! # Calling contract
//!
//! 1. For each datagram entering the link, call
//!    [`Impairment::handle_input`]`(now, class, bytes, meta)`; the caller
//!    classifies it ([`PacketClass`]) and gets back its [`Fate`].
//! 2. Then drain [`Impairment::poll_output`]`(now)` until it returns `None`.
//! 3. Wake up at [`Impairment::poll_timeout`] and drain again.
//!
//! The same config, seed and sequence of calls give the same outputs on every
//! platform. Memory is bounded by [`MAX_PENDING`] queued copies.
//!
//! # Example
//!
//! ```
//! use std::time::{Duration, Instant};
//! use udpchat_impair::{ImpairConfig, Impairment, PacketClass};
//!
//! let config = ImpairConfig { delay: Duration::from_millis(10), ..ImpairConfig::seed_classic() };
//! config.validate()?;
//! let mut link = Impairment::new(config, 42);
//!
//! let t0 = Instant::now();
//! // Control datagrams ignore data_loss/ack_loss, and loss is zero: it survives.
//! let fate = link.handle_input(t0, PacketClass::Control, b"hello".to_vec(), "peer-a");
//! assert!(!fate.is_dropped());
//! assert_eq!(link.poll_output(t0), None); // still in flight
//!
//! let wake = t0 + Duration::from_millis(10);
//! assert_eq!(link.poll_timeout(), Some(wake));
//! assert_eq!(link.poll_output(wake), Some(("peer-a", b"hello".to_vec())));
//! assert_eq!(link.poll_output(wake), None);
//! # Ok::<(), udpchat_impair::ConfigError>(())
//! ```

#![forbid(unsafe_code)]

mod class;
mod config;
mod corrupt;
mod draw;
mod fate;
mod impairment;
mod stats;

pub use class::PacketClass;
pub use config::{ConfigError, ImpairConfig};
pub use fate::{DropCause, Fate};
pub use impairment::{Impairment, MAX_PENDING};
pub use stats::ImpairStats;
