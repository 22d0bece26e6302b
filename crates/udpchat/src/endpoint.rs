//! The network side both interfaces share: the UDP socket, the sans-IO session, and the
//! seeded loss applied to what arrives (as the original program ignored 20% of the
//! messages and ACKs it received).

use std::io;
use std::net::SocketAddr;
use std::time::Instant;

use tokio::net::UdpSocket;
use udpchat_impair::{Impairment, PacketClass};
use udpchat_proto::wire::{classify, Classification};
use udpchat_proto::Session;

/// Large enough for any UDP datagram, so an oversize one is received whole and
/// rejected by the session for its size instead of being silently truncated.
pub(crate) const RECV_BUFFER: usize = 65_536;

/// Receive errors in a row, with nothing else happening in between, after which the
/// socket is taken to be broken (transient ICMP errors come one per datagram sent).
const MAX_RECV_ERRORS_IN_ROW: u32 = 1000;

/// A received datagram the simulated loss ignored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SimulatedDrop {
    /// `data`, `ack` or `control`.
    pub(crate) kind: &'static str,
    /// The message's seq or the acknowledgement's cumulative number.
    pub(crate) seq: Option<u64>,
}

/// Socket, session and simulated loss, driven by the caller's loop.
#[derive(Debug)]
pub(crate) struct Endpoint {
    /// The bound socket.
    pub(crate) socket: UdpSocket,
    /// The protocol session with the peer.
    pub(crate) session: Session,
    /// Loss simulated on received datagrams.
    pub(crate) impairment: Impairment<SocketAddr>,
    /// Last time a datagram arrived from the peer's address (or the start).
    pub(crate) last_heard: Instant,
    /// The kind of send error already warned about, so a peer that is down for a
    /// while gives one warning, not one per retransmission.
    send_warned: Option<io::ErrorKind>,
    recv_errors_in_row: u32,
}

impl Endpoint {
    /// Puts the pieces together.
    pub(crate) fn new(
        socket: UdpSocket,
        session: Session,
        impairment: Impairment<SocketAddr>,
    ) -> Self {
        Self {
            socket,
            session,
            impairment,
            last_heard: Instant::now(),
            send_warned: None,
            recv_errors_in_row: 0,
        }
    }

    /// Takes one received datagram through the simulated loss and hands what survives
    /// to the session. Says so if the simulation dropped it.
    pub(crate) fn on_datagram(
        &mut self,
        now: Instant,
        from: SocketAddr,
        bytes: &[u8],
    ) -> Option<SimulatedDrop> {
        self.recv_errors_in_row = 0;
        if from == self.session.peer_addr() {
            self.last_heard = now;
            // The path works again: a later send error deserves a new warning.
            self.send_warned = None;
        }
        let (class, kind, seq) = match classify(bytes) {
            Classification::Data { seq } => (PacketClass::Data, "data", Some(seq)),
            Classification::Ack { cumulative } => (PacketClass::Ack, "ack", Some(cumulative)),
            Classification::Control | Classification::Invalid => {
                (PacketClass::Control, "control", None)
            }
        };
        let fate = self
            .impairment
            .handle_input(now, class, bytes.to_vec(), from);
        self.release(now);
        fate.is_dropped().then_some(SimulatedDrop { kind, seq })
    }

    /// Hands the datagrams the simulated network lets through to the session.
    fn release(&mut self, now: Instant) {
        while let Some((from, bytes)) = self.impairment.poll_output(now) {
            self.session.handle_datagram(now, from, &bytes);
        }
    }

    /// A timer fired: release delayed datagrams and let the session act.
    pub(crate) fn on_timer(&mut self, now: Instant) {
        self.recv_errors_in_row = 0;
        self.release(now);
        self.session.handle_timeout(now);
    }

    /// The earliest of the session's timer and the simulated network's next release.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        [self.session.poll_timeout(), self.impairment.poll_timeout()]
            .into_iter()
            .flatten()
            .min()
    }

    /// A receive error: transient ones (an ICMP "port unreachable" for an earlier
    /// datagram surfaces as ECONNREFUSED on Linux) are logged; an endless stream of
    /// them means the socket is broken.
    pub(crate) fn on_recv_error(&mut self, e: &io::Error) -> anyhow::Result<()> {
        tracing::debug!("recv_from: {e}");
        self.recv_errors_in_row += 1;
        if self.recv_errors_in_row >= MAX_RECV_ERRORS_IN_ROW {
            anyhow::bail!("receiving on the UDP socket keeps failing: {e}");
        }
        Ok(())
    }

    /// Sends every datagram the session has queued. Returns a warning for the user the
    /// first time sending fails in a given way: a refused or unreachable peer is normal
    /// while it is down, and the session retransmits.
    pub(crate) async fn send_all(&mut self) -> Option<String> {
        let mut warning = None;
        while let Some(transmit) = self.session.poll_transmit() {
            let to = transmit.destination;
            if let Err(e) = self.socket.send_to(&transmit.payload, to).await {
                tracing::debug!("send_to {to}: {e}");
                if self.send_warned != Some(e.kind()) {
                    self.send_warned = Some(e.kind());
                    warning = Some(format!("sending to {to} failed: {e} (will retry)"));
                }
            }
        }
        warning
    }
}
