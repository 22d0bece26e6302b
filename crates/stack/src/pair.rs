//! Two stacks wired to each other in memory, for tests: the one "pass datagrams both ways
//! until quiet" loop (lossless, instant, at one instant). The simulator is the place for
//! loss, delay and virtual time.

use std::net::SocketAddr;
use std::time::Instant;

use udpchat_proto::Config;
use udpchat_secure::Reject;

use crate::stack::{Security, Stack, StackEvent};

/// A and B, each configured with the other's address.
#[derive(Debug)]
pub struct Pair {
    /// Side A.
    pub a: Stack,
    /// Side B.
    pub b: Stack,
    /// A's address, as B sees it.
    pub a_addr: SocketAddr,
    /// B's address, as A sees it.
    pub b_addr: SocketAddr,
    /// The instant every call uses (tests move it themselves).
    pub now: Instant,
}

impl Pair {
    /// A's address.
    pub const A: SocketAddr = SocketAddr::new(
        std::net::IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 1)),
        1,
    );
    /// B's address.
    pub const B: SocketAddr = SocketAddr::new(
        std::net::IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 1)),
        2,
    );

    /// Two stacks with the same protocol settings; A has epoch 0xA, B 0xB.
    #[must_use]
    pub fn new(protocol: Config, a: Security, b: Security) -> Self {
        let now = Instant::now();
        Self {
            a: Stack::new(protocol.clone(), a, 0xA, Some(Self::B), now),
            b: Stack::new(protocol, b, 0xB, Some(Self::A), now),
            a_addr: Self::A,
            b_addr: Self::B,
            now,
        }
    }

    /// Moves datagrams both ways until both are quiet; returns what either side
    /// rejected.
    pub fn exchange(&mut self) -> Vec<Reject> {
        exchange(&mut self.a, self.a_addr, &mut self.b, self.b_addr, self.now)
    }

    /// A's events so far.
    pub fn events_a(&mut self) -> Vec<StackEvent> {
        std::iter::from_fn(|| self.a.poll_event()).collect()
    }

    /// B's events so far.
    pub fn events_b(&mut self) -> Vec<StackEvent> {
        std::iter::from_fn(|| self.b.poll_event()).collect()
    }
}

/// Moves datagrams between two stacks until both are quiet, at `now`; returns the
/// rejections. A datagram from `a` arrives at `b` from `a_addr`, and the other way.
pub fn exchange(
    a: &mut Stack,
    a_addr: SocketAddr,
    b: &mut Stack,
    b_addr: SocketAddr,
    now: Instant,
) -> Vec<Reject> {
    let mut rejects = Vec::new();
    for _ in 0..100_000 {
        let mut moved = false;
        while let Some(t) = a.poll_transmit() {
            if let Err(r) = b.handle_datagram(now, a_addr, &t.payload) {
                rejects.push(r);
            }
            moved = true;
        }
        while let Some(t) = b.poll_transmit() {
            if let Err(r) = a.handle_datagram(now, b_addr, &t.payload) {
                rejects.push(r);
            }
            moved = true;
        }
        if !moved {
            break;
        }
    }
    rejects
}
