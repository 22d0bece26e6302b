//! Fuzz targets for udpchat, and a small mutational engine that runs them on the stable
//! toolchain inside `cargo test`.
//!
//! Three targets, each a plain function that takes arbitrary bytes and panics when an
//! invariant breaks:
//!
//! - [`packet_decoder`]: the plaintext protocol's decoder and classifier.
//! - [`handshake_responder`]: a fresh encrypted endpoint answering whatever arrives.
//! - [`session_receive`]: the whole receive path of a live encrypted chat (and of a
//!   clear-text one), hostile datagrams interleaved with the real peer's.
//!
//! The same functions are the bodies of the cargo-fuzz targets in `fuzz/` (libFuzzer,
//! coverage-guided, nightly only). Without nightly, [`engine`] mutates a kept corpus
//! (`crates/fuzz/corpus/<target>/`) for a bounded number of inputs, deterministic from a
//! seed; CI runs each target that way on every `cargo test`.
#![forbid(unsafe_code)]

pub mod engine;
mod handshake_responder;
mod packet_decoder;
mod seeds;
mod session_receive;

pub use handshake_responder::handshake_responder;
pub use packet_decoder::packet_decoder;
pub use seeds::{corpus_dir, seed_inputs};
pub use session_receive::session_receive;

/// A fuzz target: checks its invariants on one input (panicking if one breaks) and
/// returns what the input did as whitespace-separated features (`psk:rej:bad_mac`),
/// which the engine uses to keep inputs that reach something new.
pub type Target = fn(&[u8]) -> String;

/// Every target by name, as the corpus directories and the runner name them.
pub const TARGETS: [(&str, Target); 3] = [
    ("packet_decoder", packet_decoder),
    ("handshake_responder", handshake_responder),
    ("session_receive", session_receive),
];

/// Splits an input into datagrams: each is a big-endian u16 length then that many
/// bytes (a short last one takes what is left). Lets one input be a sequence of
/// datagrams, so the fuzzer reaches states that take several packets to get into.
pub fn datagrams(data: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut rest = data;
    while rest.len() >= 2 {
        let len = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
        rest = &rest[2..];
        let take = len.min(rest.len());
        out.push(&rest[..take]);
        rest = &rest[take..];
    }
    out
}

/// The inverse of [`datagrams`], for building corpus entries.
pub fn join_datagrams(parts: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for p in parts {
        let len = u16::try_from(p.len()).unwrap_or(u16::MAX);
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&p[..usize::from(len)]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datagrams_round_trip() {
        let parts = vec![vec![1, 2, 3], vec![], vec![9; 300]];
        let joined = join_datagrams(&parts);
        let split: Vec<Vec<u8>> = datagrams(&joined).into_iter().map(<[u8]>::to_vec).collect();
        assert_eq!(split, parts);
        assert_eq!(datagrams(&[0, 5, 1]), vec![&[1u8][..]]);
        assert!(datagrams(&[7]).is_empty());
    }
}
