//! A file from A to B beside the chat (PROTOCOL.md §6c), sent by the program's own
//! transfer code ([`udpchat_files::transfers::Transfers`]) over the simulated network,
//! so the simulator checks that chat and file share the stream under loss, duplication,
//! reordering and restarts without a byte lost, repeated or misplaced.
//!
//! The files live in a directory of their own per run on `/dev/shm` (memory, so 10,000
//! seeds cost no disk); B's download directory survives a restart of B, and the new run
//! resumes from the partial file there, as a real receiver does.

use std::path::{Path, PathBuf};
use std::time::Instant;

use udpchat_files::transfers::{TransferEvent, Transfers, IN, OUT};
use udpchat_proto::FileFrame;
use udpchat_stack::Stack;

/// One side's transfers and what they reported.
#[derive(Debug)]
pub(crate) struct SimFiles {
    transfers: Transfers,
    /// Our file reached the peer, checked.
    pub(crate) sent: bool,
    /// The peer's file is here, checked.
    pub(crate) received: bool,
    /// Every failure reported, as `direction: reason: detail`.
    pub(crate) failures: Vec<String>,
}

/// The run's directory for files: removed when dropped.
#[derive(Debug)]
pub(crate) struct WorkDir(pub(crate) PathBuf);

impl WorkDir {
    pub(crate) fn new(seed: u64) -> Self {
        let base = Path::new("/dev/shm");
        let base = if base.is_dir() {
            base.to_path_buf()
        } else {
            std::env::temp_dir()
        };
        // Runs of one process may have the same seed at once (two tests): a counter
        // keeps their directories apart.
        static RUNS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let run = RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = base.join(format!("udpchat-sim-{}-{seed}-{run}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        Self(dir)
    }

    pub(crate) fn source(&self) -> PathBuf {
        self.0.join("out").join("sim.bin")
    }

    pub(crate) fn downloads(&self) -> PathBuf {
        self.0.join("downloads")
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl SimFiles {
    /// A's side: writes a file of `len` bytes and offers it.
    pub(crate) fn sender(
        work: &WorkDir,
        len: usize,
        seed: u64,
        stack: &mut Stack,
        now: Instant,
    ) -> Self {
        let source = work.source();
        let written = source
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|()| std::fs::write(&source, pattern(len, seed)));
        let mut files = Self {
            transfers: Transfers::new(None, false, false),
            sent: false,
            received: false,
            failures: Vec::new(),
        };
        if let Err(e) = written {
            files
                .failures
                .push(format!("cannot write the file to send: {e}"));
        } else if let Err(e) = files.transfers.offer(now, stack, &[source]) {
            files.failures.push(format!("cannot offer: {e}"));
        }
        files
    }

    /// B's side: takes every offer into the run's download directory.
    pub(crate) fn receiver(work: &WorkDir) -> Self {
        Self {
            transfers: Transfers::new(Some(work.downloads()), true, false),
            sent: false,
            received: false,
            failures: Vec::new(),
        }
    }

    /// A frame of the peer's.
    pub(crate) fn on_frame(&mut self, frame: FileFrame, stack: &mut Stack, now: Instant) {
        self.transfers.on_frame(now, stack, frame);
        self.take_events();
    }

    /// The peer's new run.
    pub(crate) fn on_peer_restarted(&mut self, stack: &mut Stack, now: Instant) {
        self.transfers.on_peer_restarted(now, stack);
        self.take_events();
    }

    /// The peer left (its CLOSE).
    pub(crate) fn on_peer_left(&mut self) {
        self.transfers.on_peer_left();
        self.take_events();
    }

    /// Queues chunks while the session has room. True if it did anything.
    pub(crate) fn pump(&mut self, stack: &mut Stack, now: Instant) -> bool {
        let before = stack.file_chunks_queued();
        self.transfers.pump(now, stack);
        self.take_events();
        stack.file_chunks_queued() != before
    }

    /// Nothing of ours is left to send and nothing of the peer's is under way.
    pub(crate) fn settled(&self) -> bool {
        self.transfers.sending() == 0 && self.transfers.receiving() == 0
    }

    fn take_events(&mut self) {
        while let Some(event) = self.transfers.take_report() {
            match event {
                TransferEvent::FileDone { direction, .. } if direction == OUT => self.sent = true,
                TransferEvent::FileDone { direction, .. } if direction == IN => {
                    self.received = true;
                }
                TransferEvent::FileFailed {
                    direction,
                    reason,
                    detail,
                    ..
                } => self
                    .failures
                    .push(format!("{direction}: {reason}: {detail}")),
                _ => {}
            }
        }
    }
}

/// `len` pseudo-random bytes (xorshift64).
pub(crate) fn pattern(len: usize, seed: u64) -> Vec<u8> {
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
