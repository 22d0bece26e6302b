//! One established session: the stateless transport keys, the send counter and the
//! receive replay window.

use std::time::Instant;

use snow::StatelessTransportState;

use crate::config::SessionCipher;
use crate::error::{Reject, SealError};
use crate::identity::PublicKey;
use crate::replay::ReplayWindow;
use crate::wire::{transport, Transport, MAC_LEN, OVERHEAD};

/// Stop using a session's keys well before the 64-bit nonce runs out (Noise reserves
/// 2⁶⁴ − 1); as WireGuard's `REJECT_AFTER_MESSAGES`.
pub(crate) const REJECT_AFTER_MESSAGES: u64 = u64::MAX - (1 << 13);

/// Deliberately broken variants, compiled into tests only, to prove the tests catch them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(not(test), allow(dead_code))] // the broken variants are built only by tests
pub(crate) enum Mutation {
    /// The real thing.
    #[default]
    None,
    /// Never consult the replay window.
    NoReplayWindow,
    /// Mark the nonce in the window before the packet authenticated.
    MarkBeforeAuth,
    /// Answer an initiation whatever its MAC1 (what a man in the middle does; the
    /// relay tests give their attacker this).
    AcceptAnyMac1,
}

/// Keys and counters of one session.
pub(crate) struct Session {
    /// Our index: the peer addresses transport packets to it.
    pub local_index: u32,
    /// The peer's index: we address transport packets to it.
    pub remote_index: u32,
    transport: StatelessTransportState,
    /// When the handshake finished.
    pub created: Instant,
    /// Whether we initiated the handshake.
    pub initiator: bool,
    /// The AEAD its initiator chose; a rekey from either side keeps it.
    pub cipher: SessionCipher,
    /// The peer's epoch, from the authenticated handshake.
    pub peer_epoch: u64,
    /// The peer's long-term key, proved by the handshake.
    pub peer_key: PublicKey,
    /// The Noise handshake hash.
    pub handshake_hash: [u8; 32],
    /// As responder: a digest of the message 3 that made this session, so a copy of it
    /// (our confirmation was lost) is answered with another confirmation.
    pub finish_digest: Option<[u8; MAC_LEN]>,
    /// Nonce of the next packet we send.
    send_nonce: u64,
    window: ReplayWindow,
    /// Whether any packet authenticated under this session yet.
    pub received_any: bool,
}

/// The fields a finished handshake gives a session.
pub(crate) struct SessionParams {
    pub local_index: u32,
    pub remote_index: u32,
    pub created: Instant,
    pub initiator: bool,
    pub peer_epoch: u64,
    pub peer_key: PublicKey,
    pub handshake_hash: [u8; 32],
    pub finish_digest: Option<[u8; MAC_LEN]>,
    pub cipher: SessionCipher,
}

impl Session {
    pub(crate) fn new(transport: StatelessTransportState, p: SessionParams) -> Self {
        Self {
            local_index: p.local_index,
            remote_index: p.remote_index,
            transport,
            created: p.created,
            initiator: p.initiator,
            cipher: p.cipher,
            peer_epoch: p.peer_epoch,
            peer_key: p.peer_key,
            handshake_hash: p.handshake_hash,
            finish_digest: p.finish_digest,
            send_nonce: 0,
            window: ReplayWindow::new(),
            received_any: false,
        }
    }

    /// Packets sent so far.
    pub(crate) fn sent(&self) -> u64 {
        self.send_nonce
    }

    /// Encrypts one inner packet into a whole transport datagram. Each nonce is used once.
    pub(crate) fn seal(&mut self, inner: &[u8]) -> Result<Vec<u8>, SealError> {
        if self.send_nonce >= REJECT_AFTER_MESSAGES {
            return Err(SealError::NotEstablished);
        }
        let nonce = self.send_nonce;
        let mut out = vec![0u8; OVERHEAD + inner.len()];
        out[..transport::HEADER_LEN].copy_from_slice(&Transport::header(self.remote_index, nonce));
        let n = self
            .transport
            .write_message(nonce, inner, &mut out[transport::HEADER_LEN..])
            .map_err(|_| SealError::Internal)?;
        out.truncate(transport::HEADER_LEN + n);
        self.send_nonce += 1;
        Ok(out)
    }

    /// Authenticates and decrypts one transport packet: replay check, decryption, then
    /// (only if it authenticated) marking the nonce. Returns the inner packet and whether
    /// its nonce is the highest seen so far (the only kind allowed to move the peer's
    /// address: a delayed packet must not move it back).
    pub(crate) fn open(
        &mut self,
        nonce: u64,
        ciphertext: &[u8],
        mutation: Mutation,
    ) -> Result<(Vec<u8>, bool), Reject> {
        let newest = self.window.top().is_none_or(|top| nonce > top);
        if mutation != Mutation::NoReplayWindow && !self.window.check(nonce) {
            return Err(Reject::Replay);
        }
        if mutation == Mutation::MarkBeforeAuth {
            self.window.mark(nonce);
        }
        let mut inner = vec![0u8; ciphertext.len()];
        let n = self
            .transport
            .read_message(nonce, ciphertext, &mut inner)
            .map_err(|_| Reject::BadMac)?;
        inner.truncate(n);
        self.window.mark(nonce);
        self.received_any = true;
        Ok((inner, newest))
    }
}
