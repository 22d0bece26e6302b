//! One udpchat peer as a sans-IO state machine: the reliable, ordered protocol session
//! of `udpchat-proto`, carried inside the encrypted, authenticated sessions of
//! `udpchat-secure`, or in the clear when the user asks for it (`--plaintext`,
//! `--classic`).
//!
//! The real program and the simulator both drive a [`Stack`], so what the simulation
//! proves about delivery under loss, duplication and reordering is proved about the
//! code that runs, with encryption on.
//!
//! # Calling contract
//!
//! The same as the two layers': time comes in as `now`; nothing here touches a socket
//! or a clock.
//!
//! 1. Every received datagram goes to [`Stack::handle_datagram`]. A datagram that did
//!    not authenticate comes back as `Err(reject)`: count it, log it rate-limited, and
//!    never answer it. (A driver that wants to act between decryption and the protocol,
//!    as udpchat's simulated loss does, calls [`Stack::open`] and then
//!    [`Stack::handle_inner`] instead.)
//! 2. After every call: drain [`Stack::poll_event`] (show received messages), then
//!    [`Stack::poll_transmit`] (send each datagram), then [`Stack::poll_event`] again,
//!    so a message is shown before its acknowledgement leaves.
//! 3. Sleep until [`Stack::poll_timeout`], then call [`Stack::handle_timeout`].
//!
//! Under encryption the protocol session runs no HELLO exchange: the authenticated
//! handshake gives it the peer's run (and a restart) and its first round-trip sample.
//! Messages given to [`Stack::send`] before any session exists wait for it without
//! spending their retries.
//!
//! Until the first encrypted session is up, the protocol's packets are held (at most
//! [`MAX_HELD`], the newest kept; the protocol retransmits anything dropped) and sent as
//! soon as the handshake completes, so the first message does not wait for a
//! retransmission timeout.
#![forbid(unsafe_code)]

mod ledger;
pub mod pair;
mod stack;

pub use ledger::{Conversation, Ledger, Record, Seen};
pub use stack::{Opened, Security, Stack, StackEvent, MAX_HELD};
