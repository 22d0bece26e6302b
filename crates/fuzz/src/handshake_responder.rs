//! Target: a fresh encrypted endpoint that has never spoken to anyone, answering
//! whatever arrives (the state every udpchat is in when a stranger knocks).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use udpchat_secure::{SecureEndpoint, StateSize};

use crate::datagrams;
use crate::seeds::{config, Trusting, FROM};

/// Feeds the input, as a sequence of datagrams ([`datagrams`]), to a responder in each
/// way of trusting (a pinned peer, a passphrase, an open invitation). Invariants:
/// nothing panics; a rejected datagram queues nothing to send, no event, and leaves the
/// endpoint's state as it was; no reply is larger than the datagram that provoked it;
/// nothing that is not a transport packet of an established session ever yields
/// plaintext.
pub fn handshake_responder(data: &[u8]) -> String {
    // Which results, not how many or in what order: a coarse outcome keeps the corpus
    // to inputs that reach something new.
    let mut outcome = std::collections::BTreeSet::new();
    for trusting in Trusting::ALL {
        let now = Instant::now();
        let mut responder = SecureEndpoint::new(config(trusting, false), 0xB0B, now, [0xB; 32]);
        let mut t = now;
        for datagram in datagrams(data) {
            t += Duration::from_millis(1);
            outcome.insert(format!(
                "{}:{}",
                trusting.name(),
                feed(&mut responder, t, FROM, datagram)
            ));
        }
    }
    outcome.into_iter().collect::<Vec<_>>().join(" ")
}

fn feed(ep: &mut SecureEndpoint, now: Instant, from: SocketAddr, datagram: &[u8]) -> String {
    let before = ep.state_size();
    let result = ep.handle_datagram(now, from, datagram);
    let replies: Vec<_> = std::iter::from_fn(|| ep.poll_transmit()).collect();
    let events: Vec<_> = std::iter::from_fn(|| ep.poll_event()).collect();
    match result {
        Err(reject) => {
            assert!(
                replies.is_empty(),
                "a rejected datagram ({reject}) was answered"
            );
            assert!(
                events.is_empty(),
                "a rejected datagram ({reject}) made events"
            );
            assert_eq!(
                settled(ep.state_size()),
                settled(before),
                "a rejected datagram ({reject}) changed the state"
            );
            format!("rej:{}", reject.code())
        }
        Ok(plaintext) => {
            for r in &replies {
                assert!(
                    r.payload.len() <= datagram.len(),
                    "a {}-byte reply to a {}-byte datagram",
                    r.payload.len(),
                    datagram.len()
                );
            }
            if let Some(p) = plaintext {
                assert!(
                    before.sessions > 0,
                    "plaintext ({} bytes) without any session",
                    p.bytes.len()
                );
            }
            format!("ok:{}", replies.len())
        }
    }
}

/// The parts of the state a rejected datagram must not change (queues are drained by
/// the caller, so they are equal anyway).
fn settled(s: StateSize) -> (usize, usize, bool, usize) {
    (s.sessions, s.pending, s.initiating, s.rate_limiter_entries)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::join_datagrams;
    use crate::seeds::seed_inputs;

    #[test]
    fn every_seed_input_passes_and_a_real_initiation_is_answered() {
        let mut answered = false;
        for input in seed_inputs("handshake_responder") {
            answered |= handshake_responder(&input).contains("ok:1");
        }
        assert!(answered, "the seeds include a genuine initiation");
        let garbage = join_datagrams(&[vec![0xD1; 148], vec![], vec![0xD5; 40], vec![0xE1; 89]]);
        assert!(!handshake_responder(&garbage).contains("ok"));
    }
}
