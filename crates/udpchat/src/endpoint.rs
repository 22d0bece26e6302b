//! The network side both interfaces share: the UDP socket, the sans-IO [`Stack`]
//! (protocol session inside the encryption layer), and the seeded loss applied to what
//! arrives (as the original program ignored 20% of the messages and ACKs it received).
//!
//! The simulated loss acts after decryption, on the protocol packet: only there can a
//! message be told from an acknowledgement, which `--drop` and `--ack-drop` need.

use std::io;
use std::net::SocketAddr;
use std::time::Instant;

use tokio::net::UdpSocket;
use udpchat_impair::{Impairment, PacketClass};
use udpchat_proto::wire::{classify, Classification};
use udpchat_secure::Reject;
use udpchat_stack::{Opened, Stack};

/// Large enough for any UDP datagram, so an oversize one is received whole and
/// rejected for its size instead of being silently truncated.
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

/// What became of one received datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Arrival {
    /// Handed on (to the protocol, or to the simulated network's delay).
    Accepted,
    /// The simulated loss ignored it.
    Dropped(SimulatedDrop),
    /// It did not authenticate: nothing changed, nothing is answered.
    Rejected {
        /// Why.
        reject: Reject,
        /// Where it came from.
        from: SocketAddr,
    },
}

/// How this run protects its datagrams, as named in the `started` report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SecurityMode {
    /// Encrypted; only holders of the shared passphrase can connect.
    Passphrase,
    /// Encrypted without a passphrase: the users compare a code to detect a man in the
    /// middle.
    CompareCode,
    /// Clear text (`--plaintext`, `--classic`, or a chat with oneself).
    Plaintext,
}

impl SecurityMode {
    /// The stable name used in JSON.
    pub(crate) fn code(self) -> &'static str {
        match self {
            Self::Passphrase => "passphrase",
            Self::CompareCode => "compare_code",
            Self::Plaintext => "plaintext",
        }
    }
}

/// Socket, stack and simulated loss, driven by the caller's loop.
#[derive(Debug)]
pub(crate) struct Endpoint {
    /// The bound socket.
    pub(crate) socket: UdpSocket,
    /// The protocol session with the peer, encrypted unless plaintext was chosen.
    pub(crate) stack: Stack,
    /// Loss simulated on received protocol packets.
    pub(crate) impairment: Impairment<SocketAddr>,
    /// Last time an authenticated datagram (in the clear: any datagram from the peer's
    /// address) arrived, or the start.
    pub(crate) last_heard: Instant,
    /// The kind of send error already warned about, so a peer that is down for a
    /// while gives one warning, not one per retransmission.
    send_warned: Option<io::ErrorKind>,
    recv_errors_in_row: u32,
    /// Whether the user was told that the peer seems to use the other mode.
    mode_mismatch_warned: bool,
    /// A hint for the user not yet taken by the driver.
    hint: Option<String>,
    /// How datagrams are protected.
    pub(crate) mode: SecurityMode,
}

impl Endpoint {
    /// Puts the pieces together.
    pub(crate) fn new(
        socket: UdpSocket,
        stack: Stack,
        impairment: Impairment<SocketAddr>,
        mode: SecurityMode,
    ) -> Self {
        Self {
            mode,
            socket,
            stack,
            impairment,
            last_heard: Instant::now(),
            send_warned: None,
            recv_errors_in_row: 0,
            mode_mismatch_warned: false,
            hint: None,
        }
    }

    /// Takes one received datagram through the encryption layer and the simulated loss,
    /// and hands what survives to the protocol session.
    pub(crate) fn on_datagram(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) -> Arrival {
        self.recv_errors_in_row = 0;
        let encrypted = self.stack.is_encrypted();
        if !encrypted {
            // In the clear the protocol rejects what it cannot read, later.
            self.notice_mode(from, bytes, None);
        }
        let opened = match self.stack.open(now, from, bytes) {
            Ok(opened) => opened,
            Err(reject) => {
                self.notice_mode(from, bytes, Some(reject));
                return Arrival::Rejected { reject, from };
            }
        };
        // Under encryption only authenticated datagrams get here, from wherever the peer
        // is now; in the clear, only the peer's address counts as hearing from it.
        if encrypted || from == self.stack.peer_addr() {
            self.last_heard = now;
            // The path works again: a later send error deserves a new warning.
            self.send_warned = None;
        }
        let Opened::Inner { from, bytes } = opened else {
            return Arrival::Accepted;
        };
        let (class, kind, seq) = match classify(&bytes) {
            Classification::Data { seq } => (PacketClass::Data, "data", Some(seq)),
            Classification::Ack { cumulative } => (PacketClass::Ack, "ack", Some(cumulative)),
            Classification::Control | Classification::Invalid => {
                (PacketClass::Control, "control", None)
            }
        };
        let fate = self.impairment.handle_input(now, class, bytes, from);
        self.release(now);
        if fate.is_dropped() {
            Arrival::Dropped(SimulatedDrop { kind, seq })
        } else {
            Arrival::Accepted
        }
    }

    /// Notes a hint, once, when a rejected datagram from the peer's address says why nothing
    /// connects: it looks like the other mode (clear text arriving at an encrypted chat,
    /// or the reverse), or it is our own handshake come back (PEER is this very program
    /// under another of the machine's addresses). The datagram was rejected either way;
    /// the hint only saves the user from guessing.
    fn notice_mode(&mut self, from: SocketAddr, bytes: &[u8], reject: Option<Reject>) {
        if let Some(hint) = self.mode_hint(from, bytes, reject) {
            self.mode_mismatch_warned = true;
            self.hint = Some(hint);
        }
    }

    fn mode_hint(&self, from: SocketAddr, bytes: &[u8], reject: Option<Reject>) -> Option<String> {
        if self.mode_mismatch_warned || from != self.stack.peer_addr() {
            return None;
        }
        let first = *bytes.first()?;
        let hint = if reject == Some(Reject::Reflected) {
            "the peer is this udpchat itself (its own handshake came back); to chat with yourself, give 127.0.0.1 and this port as PEER"
        } else if self.stack.is_encrypted() && first == b'U' {
            "the peer sends unencrypted datagrams (it runs with --plaintext or --classic); use the same mode on both sides"
        } else if !self.stack.is_encrypted() && (0xE1..=0xE4).contains(&first) {
            "the peer sends encrypted datagrams; run without --plaintext and --classic on both sides, or with them on both"
        } else {
            return None;
        };
        Some(hint.to_owned())
    }

    /// The hint the last datagrams gave, once (see `notice_mode`).
    pub(crate) fn take_hint(&mut self) -> Option<String> {
        self.hint.take()
    }

    /// Hands the packets the simulated network lets through to the protocol session.
    fn release(&mut self, now: Instant) {
        while let Some((from, bytes)) = self.impairment.poll_output(now) {
            self.stack.handle_inner(now, from, &bytes);
        }
    }

    /// A timer fired: release delayed packets and let both layers act.
    pub(crate) fn on_timer(&mut self, now: Instant) {
        self.recv_errors_in_row = 0;
        self.release(now);
        self.stack.handle_timeout(now);
    }

    /// The earliest of the stack's timer and the simulated network's next release.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        [self.stack.poll_timeout(), self.impairment.poll_timeout()]
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

    /// Sends every datagram the stack has queued. Returns a warning for the user the
    /// first time sending fails in a given way: a refused or unreachable peer is normal
    /// while it is down, and the protocol retransmits.
    pub(crate) async fn send_all(&mut self) -> Option<String> {
        let mut warning = None;
        while let Some(transmit) = self.stack.poll_transmit() {
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

    /// Datagrams rejected so far, by either layer.
    pub(crate) fn rejected(&self) -> u64 {
        let secure = self
            .stack
            .secure()
            .map_or(0, |s| s.stats().rejected_total());
        self.stack.session().stats().rejected + secure
    }
}
