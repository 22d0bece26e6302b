//! A file from A to B beside the chat (PROTOCOL.md §6c), with the file in memory: the
//! protocol's part of a transfer (offer, accept from what is held, chunks in order,
//! stored), as the program's endpoint does it, so the simulator can check that chat and
//! file share the stream under loss, duplication, reordering and restarts without a
//! byte lost, repeated or misplaced, and that a typed line is never held behind the file.
//!
//! B's received bytes stand for its partial file on disk: they survive a restart of B,
//! and the new run accepts from their length, as a real receiver resumes.

use std::time::Instant;

use udpchat_proto::{FileFrame, PeerState};
use udpchat_stack::Stack;

/// Chunks kept queued in the session ahead of the window, as the program does.
const CHUNKS_AHEAD: usize = 256;

/// The one transfer number of the simulated file.
const TRANSFER: u64 = 1;

/// The sending side's transfer.
#[derive(Debug)]
pub(crate) struct Outgoing {
    data: Vec<u8>,
    /// The next byte to queue once accepted.
    next: Option<u64>,
    /// The peer answered stored: the file is complete there.
    pub(crate) stored: bool,
    /// The session's count of given-up file frames when last looked at.
    failures_seen: u64,
}

impl Outgoing {
    /// A file of `len` bytes that does not repeat in any short period.
    pub(crate) fn new(len: usize, seed: u64) -> Self {
        Self {
            data: pattern(len, seed),
            next: None,
            stored: false,
            failures_seen: 0,
        }
    }

    /// The file's bytes.
    pub(crate) fn data(&self) -> &[u8] {
        &self.data
    }

    /// Offers the file (at the start, and again to a new run of the peer).
    pub(crate) fn offer(&mut self, stack: &mut Stack, now: Instant) {
        self.next = None;
        let frame = FileFrame::Offer {
            transfer: TRANSFER,
            size: self.data.len() as u64,
            hash: [0; 32],
            name: "sim.bin".into(),
        };
        let _ = stack.send_file_frame(now, frame);
    }

    /// A frame from the peer.
    pub(crate) fn on_frame(&mut self, frame: &FileFrame) {
        match frame {
            FileFrame::Accept { from, .. } => self.next = Some(*from),
            FileFrame::Stored { .. } => {
                self.stored = true;
                self.next = None;
            }
            _ => {}
        }
    }

    /// Queues chunks while the session holds fewer than [`CHUNKS_AHEAD`]; offers again
    /// when the session gave file frames up (the peer was unreachable).
    pub(crate) fn pump(&mut self, stack: &mut Stack, now: Instant) -> bool {
        if stack.file_frames_failed() != self.failures_seen {
            self.failures_seen = stack.file_frames_failed();
            if !self.stored && stack.peer_state() != PeerState::Connecting {
                self.offer(stack, now);
            }
        }
        let Some(mut next) = self.next else {
            return false;
        };
        let chunk = stack.max_chunk_len();
        let mut moved = false;
        while (next as usize) < self.data.len() && stack.file_chunks_queued() < CHUNKS_AHEAD {
            let start = next as usize;
            let end = (start + chunk).min(self.data.len());
            let frame = FileFrame::Chunk {
                transfer: TRANSFER,
                offset: next,
                data: self.data.get(start..end).unwrap_or_default().to_vec(),
            };
            if stack.send_file_frame(now, frame).is_err() {
                break;
            }
            next = end as u64;
            moved = true;
        }
        self.next = Some(next);
        moved
    }
}

/// The receiving side's transfer.
#[derive(Debug, Default)]
pub(crate) struct Incoming {
    /// What arrived, in order: the partial file.
    pub(crate) data: Vec<u8>,
    /// Its size, once offered.
    size: Option<u64>,
    /// What went wrong, if anything: a chunk out of order, past the end.
    pub(crate) errors: Vec<String>,
    /// It answered stored.
    pub(crate) stored: bool,
}

impl Incoming {
    /// What a new run of the receiver starts with: the partial file on disk.
    pub(crate) fn after_restart(&self) -> Self {
        Self {
            data: self.data.clone(),
            errors: self.errors.clone(),
            ..Self::default()
        }
    }

    /// A frame from the peer; answers go through `stack`.
    pub(crate) fn on_frame(&mut self, frame: FileFrame, stack: &mut Stack, now: Instant) {
        match frame {
            FileFrame::Offer { size, .. } => {
                self.size = Some(size);
                if self.stored {
                    // Already complete: say so again.
                    let _ = stack.send_file_frame(now, FileFrame::Stored { transfer: TRANSFER });
                    return;
                }
                let from = self.data.len() as u64;
                let _ = stack.send_file_frame(
                    now,
                    FileFrame::Accept {
                        transfer: TRANSFER,
                        from,
                    },
                );
            }
            FileFrame::Chunk { offset, data, .. } => {
                let Some(size) = self.size else {
                    self.errors
                        .push(format!("chunk at {offset} before any offer"));
                    return;
                };
                let held = self.data.len() as u64;
                if offset + data.len() as u64 <= held {
                    // A chunk from before a re-offer that the stream still delivers.
                    return;
                }
                if offset != held {
                    self.errors
                        .push(format!("chunk at {offset} while holding {held} bytes"));
                    return;
                }
                self.data.extend_from_slice(&data);
                if self.data.len() as u64 > size {
                    self.errors
                        .push(format!("{} bytes of {size}", self.data.len()));
                }
                if self.data.len() as u64 == size && !self.stored {
                    self.stored = true;
                    let _ = stack.send_file_frame(now, FileFrame::Stored { transfer: TRANSFER });
                }
            }
            _ => {}
        }
    }
}

/// `len` pseudo-random bytes (xorshift64).
fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x.to_le_bytes()[0]
        })
        .collect()
}
