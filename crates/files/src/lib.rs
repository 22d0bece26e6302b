//! The disk side of udpchat's file transfer: everything that touches files, so the
//! protocol (offers, chunks, acknowledgements) can stay sans-IO.
//!
//! - Sending: [`expand`] turns the paths the user named into [`Source`]s (a directory
//!   becomes every regular file below it), and [`Outgoing`] reads one of them in chunks
//!   after hashing it, noticing if it changes while it is being sent.
//! - Receiving: [`Downloads`] owns the download directory and hands out an [`Incoming`]
//!   per offered file. Chunks arrive in order, so a partial download is always a prefix
//!   of the file and its length is the resume offset. The partial file lives in the
//!   download directory itself, named after the offered hash and size, so an offer made
//!   again after either side restarted resumes where it stopped, and the final rename
//!   to a free name made by [`safe_name`] is atomic and never overwrites anything.
//! - [`transfers::Transfers`]: the transfers of one session both ways, over the
//!   protocol's file frames (PROTOCOL.md §6c) and the files above; the program and the
//!   simulator drive it alike.
//! - [`Progress`] turns byte counts into a rate, an ETA and a rhythm for progress
//!   events, without reading the clock itself.
//!
//! Why BLAKE3: the sender hashes the whole file before offering it and the receiver
//! checks the hash before the file gets its final name, so a transfer is verified end
//! to end (the chat's own integrity checks cover datagrams, not a file reassembled on
//! disk across restarts). BLAKE3 is a cryptographic hash (a peer cannot craft a
//! different file with the same hash), fast enough not to be the bottleneck, and
//! incremental: the receiver feeds each chunk to the hasher as it writes it, so
//! finishing never re-reads the file, and a resumed download re-hashes only the
//! prefix it already had.
#![forbid(unsafe_code)]

mod error;
mod expand;
mod incoming;
mod name;
mod outgoing;
mod progress;
pub mod transfers;

pub use error::FileError;
pub use expand::{expand, Source};
pub use incoming::{Downloads, Incoming};
pub use name::safe_name;
pub use outgoing::Outgoing;
pub use progress::{human_bytes, human_rate, Progress};
