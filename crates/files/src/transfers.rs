//! File transfers over the session (PROTOCOL.md §6c), shared by both interfaces: offers
//! out and in, reading files into chunks as the session takes them, writing what arrives
//! into partial files that resume, and the end-to-end BLAKE3 check.
//!
//! The protocol frames travel in the session's files stream, delivered in its own order,
//! so chunks arrive in order and a partial download is always a prefix of the file: its
//! length is where an interrupted transfer resumes. Chunks wait behind chat messages at
//! the sender, and chat is delivered without waiting for them, so a line typed during a
//! transfer is never queued behind file data.
//!
//! Files go one at a time (the others wait, accepted or not), so the session's count of
//! acknowledged file bytes is the active transfer's progress.

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::time::Instant;

use crate::{Downloads, FileError, Incoming, Outgoing, Progress, Source};
use udpchat_proto::{CancelReason, FileFrame, PeerState};
use udpchat_stack::Stack;

/// File chunks kept queued in the session beyond what it has in flight: enough that
/// the window never waits for the disk, few enough that memory does not grow with the
/// file (512 chunks are about 570 KB).
const CHUNKS_AHEAD: usize = 512;

/// The peer's offers kept at once (waiting or under way); more are declined, so a peer
/// cannot grow this side's memory with offers.
const MAX_RECEIVING: usize = 256;

/// Our files offered and not yet settled at once; the rest wait their turn, so a
/// directory of thousands of files never meets the peer's limit above.
const MAX_OFFERED: usize = 64;

/// The peer's transfers answered "unknown" remembered at once; past this no more such
/// answers go out (a peer inventing transfer numbers gets silence).
const MAX_TOLD_UNKNOWN: usize = 1024;

/// Bytes read from a file at once, then cut into chunks.
const READ_BLOCK: usize = 64 * 1024;

/// `in` or `out`, as the reports name a transfer's direction.
pub const IN: &str = "in";
/// See [`IN`].
pub const OUT: &str = "out";

/// What the transfers tell the user; the program prints them (`file_offered`,
/// `file_progress`, `file_done`, `file_failed` in its JSON, docs/JSON.md).
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum TransferEvent {
    /// A file is offered, by us ([`OUT`]) or to us ([`IN`]).
    FileOffered {
        /// [`IN`] or [`OUT`].
        direction: &'static str,
        /// The sender's number for the transfer.
        transfer: u64,
        /// The file's name, relative, made safe.
        name: String,
        /// Bytes.
        size: u64,
        /// It waits for an answer (`/accept`, `/decline`).
        waiting: bool,
    },
    /// A transfer moves on (at most four a second).
    FileProgress {
        /// [`IN`] or [`OUT`].
        direction: &'static str,
        /// The transfer.
        transfer: u64,
        /// The file's name.
        name: String,
        /// Bytes confirmed (out) or written (in).
        done: u64,
        /// Bytes in all.
        size: u64,
        /// Bytes per second lately.
        rate: f64,
    },
    /// A transfer is complete and checked.
    FileDone {
        /// [`IN`] or [`OUT`].
        direction: &'static str,
        /// The transfer.
        transfer: u64,
        /// The file's name.
        name: String,
        /// Bytes.
        size: u64,
        /// Where it landed ([`IN`]).
        path: Option<String>,
        /// Bytes already there when it started (a resume).
        from: u64,
        /// Seconds from the answer to the end.
        seconds: f64,
    },
    /// A transfer ended without the file.
    FileFailed {
        /// [`IN`] or [`OUT`].
        direction: &'static str,
        /// The transfer.
        transfer: u64,
        /// The file's name.
        name: String,
        /// A stable code: `declined`, `stopped`, `changed`, `cannot_store`, `damaged`,
        /// `unknown_transfer`, `peer_left`, `peer_unreachable` or `cancelled`.
        reason: &'static str,
        /// What happened, for a person.
        detail: String,
    },
}

/// One of our files, from the offer to the peer's confirmation.
struct Sending {
    transfer: u64,
    file: Outgoing,
    state: OutState,
    progress: Progress,
    started: Instant,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum OutState {
    /// Not offered yet: [`MAX_OFFERED`] others are.
    Waiting,
    /// Offered; waiting for the peer's answer.
    Offered,
    /// Accepted from this byte on; waiting for the files before it.
    Accepted { from: u64 },
    /// Chunks are going out: the next to read, and the session's count of queued file
    /// bytes when this file's first chunk was queued (its acknowledgements start there).
    Reading { from: u64, next: u64, base: u64 },
    /// Every chunk is queued; waiting for the peer's confirmation.
    AllQueued { from: u64, base: u64 },
}

/// One of the peer's files.
struct Receiving {
    name: String,
    size: u64,
    hash: [u8; 32],
    /// Open once accepted.
    file: Option<Incoming>,
    /// What was already there when it was accepted.
    from: u64,
    /// `--accept-files` took it, but the same content is being received under another
    /// transfer (one partial file per content): it is opened when that one is done.
    deferred: bool,
    progress: Progress,
    started: Instant,
}

/// Every transfer of this run, both ways.
pub struct Transfers {
    /// Where accepted files land; `None` until a directory is known.
    downloads: Option<PathBuf>,
    /// Accept every offer at once (`--accept-files DIR`).
    accept_all: bool,
    /// Someone can answer an offer (`/accept`): a terminal. Otherwise an offer that is
    /// not taken at once is declined at once, so neither side waits for nobody.
    can_ask: bool,
    /// The peer's transfers stored whole (number, hash, size): an offer of one of them
    /// again (its sender started over after our answer was lost) is answered stored.
    stored: std::collections::BTreeSet<(u64, [u8; 32], u64)>,
    /// The peer's state when last looked at: back from unreachable, our unsettled
    /// offers go again (an answer may have been given up).
    last_state: PeerState,
    /// Ours, in the order offered; the first that is accepted is read.
    sending: VecDeque<Sending>,
    next_transfer: u64,
    /// The peer's, by its transfer number.
    receiving: BTreeMap<u64, Receiving>,
    /// The peer's transfers whose chunks we answered with "unknown" (once each, until
    /// they are offered again).
    told_unknown: std::collections::BTreeSet<u64>,
    /// File bytes handed to the session, over its life.
    bytes_queued: u64,
    /// The session's count of given-up file frames when last looked at.
    failures_seen: u64,
    reports: VecDeque<TransferEvent>,
    /// Transfers of ours that ended without the peer's confirmation.
    failed: u64,
}

impl std::fmt::Debug for Transfers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transfers")
            .field("downloads", &self.downloads)
            .field("sending", &self.sending.len())
            .field("receiving", &self.receiving.len())
            .field("bytes_queued", &self.bytes_queued)
            .finish_non_exhaustive()
    }
}

impl Transfers {
    /// No transfers yet; offers are accepted into `downloads` at once when `accept_all`,
    /// wait for `/accept` when `can_ask`, and are declined otherwise.
    pub fn new(downloads: Option<PathBuf>, accept_all: bool, can_ask: bool) -> Self {
        Self {
            downloads,
            accept_all,
            can_ask,
            stored: std::collections::BTreeSet::new(),
            last_state: PeerState::Connecting,
            sending: VecDeque::new(),
            next_transfer: 1,
            receiving: BTreeMap::new(),
            told_unknown: std::collections::BTreeSet::new(),
            bytes_queued: 0,
            failures_seen: 0,
            reports: VecDeque::new(),
            failed: 0,
        }
    }

    /// What the transfers have to tell the user.
    pub fn take_report(&mut self) -> Option<TransferEvent> {
        self.reports.pop_front()
    }

    /// Our transfers not yet confirmed by the peer (or failed).
    pub fn sending(&self) -> usize {
        self.sending.len()
    }

    /// The peer's transfers offered or under way.
    pub fn receiving(&self) -> usize {
        self.receiving.len()
    }

    /// Files that did not arrive: ours the peer did not confirm, and theirs that failed
    /// here (not those declined here).
    pub fn failed(&self) -> u64 {
        self.failed
    }

    /// Offers the files at `paths` (a directory as its files). Each is read once now for
    /// its BLAKE3 hash.
    ///
    /// # Errors
    /// A path that is missing, unreadable or empty: nothing is offered then.
    pub fn offer(
        &mut self,
        now: Instant,
        stack: &mut Stack,
        paths: &[PathBuf],
    ) -> Result<(), FileError> {
        let sources: Vec<Source> = crate::expand(paths)?;
        let files = sources
            .iter()
            .map(Outgoing::open)
            .collect::<Result<Vec<_>, _>>()?;
        for file in files {
            let transfer = self.next_transfer;
            self.next_transfer += 1;
            self.reports.push_back(TransferEvent::FileOffered {
                direction: OUT,
                transfer,
                name: file.name().to_owned(),
                size: file.size(),
                waiting: false,
            });
            self.sending.push_back(Sending {
                transfer,
                progress: Progress::new(now, 0),
                file,
                state: OutState::Waiting,
                started: now,
            });
        }
        self.offer_more(now, stack);
        Ok(())
    }

    /// Offers waiting files while fewer than [`MAX_OFFERED`] are offered.
    fn offer_more(&mut self, now: Instant, stack: &mut Stack) {
        let mut offered = self
            .sending
            .iter()
            .filter(|s| s.state != OutState::Waiting)
            .count();
        for s in &mut self.sending {
            if offered >= MAX_OFFERED {
                break;
            }
            if s.state == OutState::Waiting {
                s.state = OutState::Offered;
                Self::send_offer(now, stack, s);
                offered += 1;
            }
        }
    }

    fn send_offer(now: Instant, stack: &mut Stack, sending: &Sending) {
        let frame = FileFrame::Offer {
            transfer: sending.transfer,
            size: sending.file.size(),
            hash: sending.file.hash(),
            name: sending.file.name().to_owned(),
        };
        // Only an ended stream refuses it, and `offer` is not called then.
        if let Err(e) = stack.send_file_frame(now, frame) {
            tracing::debug!("offer not sent: {e}");
        }
    }

    /// Accepts the peer's offer `transfer` (the oldest waiting one when `None`) into the
    /// download directory.
    ///
    /// # Errors
    /// Nothing is waiting, or the directory cannot be used; the offer stays.
    pub fn accept(
        &mut self,
        now: Instant,
        stack: &mut Stack,
        transfer: Option<u64>,
    ) -> Result<(), String> {
        let transfer = self.waiting_offer(transfer)?;
        let dir = self
            .downloads
            .clone()
            .ok_or_else(|| "no download directory (--download-dir DIR)".to_owned())?;
        self.open_download(now, stack, transfer, dir)
            .map_err(|e| e.to_string())
    }

    /// Declines the peer's offer `transfer` (the oldest waiting one when `None`).
    ///
    /// # Errors
    /// Nothing is waiting.
    pub fn decline(
        &mut self,
        now: Instant,
        stack: &mut Stack,
        transfer: Option<u64>,
    ) -> Result<(), String> {
        let transfer = self.waiting_offer(transfer)?;
        let declined = CancelReason::Declined;
        self.drop_theirs(now, stack, transfer, declined, "you declined it".into());
        Ok(())
    }

    fn waiting_offer(&self, transfer: Option<u64>) -> Result<u64, String> {
        let waiting = |t: &u64| self.receiving.get(t).is_some_and(|r| r.file.is_none());
        match transfer {
            Some(t) if waiting(&t) => Ok(t),
            Some(t) => Err(format!("no file offer {t} is waiting")),
            None => self
                .receiving
                .keys()
                .copied()
                .find(waiting)
                .ok_or_else(|| "no file offer is waiting".to_owned()),
        }
    }

    fn open_download(
        &mut self,
        now: Instant,
        stack: &mut Stack,
        transfer: u64,
        dir: PathBuf,
    ) -> Result<(), FileError> {
        let Some(r) = self.receiving.get_mut(&transfer) else {
            return Ok(());
        };
        let file = Downloads::new(dir).and_then(|d| d.incoming(&r.name, r.size, r.hash))?;
        let from = file.received();
        r.progress = Progress::new(now, from);
        r.started = now;
        r.from = from;
        r.deferred = false;
        let complete = file.is_complete();
        r.file = Some(file);
        self.answer(now, stack, FileFrame::Accept { transfer, from });
        if complete {
            // Nothing to send (an empty file, or all of it was here already): no chunk
            // will come to finish it, so it is finished now.
            self.complete(now, stack, transfer);
        }
        Ok(())
    }

    /// The last byte of the peer's `transfer` is here: check it, give it its name and
    /// say so (or say why not); then open what waited for the same content.
    fn complete(&mut self, now: Instant, stack: &mut Stack, transfer: u64) {
        let Some(r) = self.receiving.remove(&transfer) else {
            return;
        };
        let Some(file) = r.file else {
            return;
        };
        match file.finish() {
            Ok(path) => {
                if self.stored.len() >= MAX_TOLD_UNKNOWN {
                    self.stored.clear();
                }
                self.stored.insert((transfer, r.hash, r.size));
                self.answer(now, stack, FileFrame::Stored { transfer });
                self.reports.push_back(TransferEvent::FileDone {
                    direction: IN,
                    transfer,
                    name: r.name,
                    size: r.size,
                    path: Some(path.display().to_string()),
                    from: r.from,
                    seconds: now.saturating_duration_since(r.started).as_secs_f64(),
                });
            }
            Err(e) => {
                let reason = match e {
                    FileError::Mismatch(_) => CancelReason::Damaged,
                    _ => CancelReason::CannotStore,
                };
                self.answer(now, stack, FileFrame::Cancel { transfer, reason });
                self.fail(IN, transfer, r.name, cancel_code(reason), e.to_string());
            }
        }
        self.open_deferred(now, stack);
    }

    /// Opens the downloads `--accept-files` took while the same content was being
    /// received: that one is done now.
    fn open_deferred(&mut self, now: Instant, stack: &mut Stack) {
        let Some(dir) = self.downloads.clone() else {
            return;
        };
        let deferred: Vec<u64> = self
            .receiving
            .iter()
            .filter(|(_, r)| r.deferred)
            .map(|(t, _)| *t)
            .collect();
        for transfer in deferred {
            match self.open_download(now, stack, transfer, dir.clone()) {
                Ok(()) | Err(FileError::Busy(_)) => {}
                Err(e) => self.refuse(now, stack, transfer, &e),
            }
        }
    }

    /// Declines the peer's `transfer` because it cannot be stored here.
    fn refuse(&mut self, now: Instant, stack: &mut Stack, transfer: u64, e: &FileError) {
        self.drop_theirs(
            now,
            stack,
            transfer,
            CancelReason::CannotStore,
            e.to_string(),
        );
    }

    /// Drops the chunks of our `transfer` still queued (it ended): nothing more of it goes
    /// out, and the next file does not wait for their acknowledgement.
    fn forget_chunks(&mut self, stack: &mut Stack, transfer: u64) {
        let dropped = stack.drop_file_chunks(transfer);
        self.bytes_queued = self.bytes_queued.saturating_sub(dropped);
    }

    /// Ends the peer's `transfer` here: tells the peer why and reports it.
    fn drop_theirs(
        &mut self,
        now: Instant,
        stack: &mut Stack,
        transfer: u64,
        reason: CancelReason,
        detail: String,
    ) {
        if let Some(r) = self.receiving.remove(&transfer) {
            self.answer(now, stack, FileFrame::Cancel { transfer, reason });
            self.fail(IN, transfer, r.name, cancel_code(reason), detail);
        }
    }

    fn answer(&mut self, now: Instant, stack: &mut Stack, frame: FileFrame) {
        if let Err(e) = stack.send_file_frame(now, frame) {
            tracing::debug!("file answer not sent: {e}");
        }
    }

    fn fail(
        &mut self,
        direction: &'static str,
        transfer: u64,
        name: String,
        reason: &'static str,
        detail: String,
    ) {
        // A file that did not arrive fails the run (exit status 1), ours or theirs, but
        // not one this side declined.
        if direction == OUT || reason != "declined" {
            self.failed += 1;
        }
        self.reports.push_back(TransferEvent::FileFailed {
            direction,
            transfer,
            name,
            reason,
            detail,
        });
    }

    /// Takes a file frame the peer sent.
    pub fn on_frame(&mut self, now: Instant, stack: &mut Stack, frame: FileFrame) {
        match frame {
            FileFrame::Offer {
                transfer,
                size,
                hash,
                name,
            } => self.on_offer(now, stack, transfer, size, hash, name),
            FileFrame::Accept { transfer, from } => {
                match self.sending.iter_mut().find(|s| s.transfer == transfer) {
                    // Only an offer waits for an answer: a second accept (to an offer
                    // sent again while the file was already going) changes nothing.
                    Some(s) if s.state == OutState::Offered => {
                        let from = from.min(s.file.size());
                        s.state = OutState::Accepted { from };
                        s.progress = Progress::new(now, from);
                        s.started = now;
                    }
                    Some(_) => {}
                    // Not ours (any more): a sender's reason, so the peer takes it for
                    // its download and drops it.
                    None => self.answer(
                        now,
                        stack,
                        FileFrame::Cancel {
                            transfer,
                            reason: CancelReason::Stopped,
                        },
                    ),
                }
            }
            FileFrame::Cancel { transfer, reason } => self.on_cancel(now, stack, transfer, reason),
            FileFrame::Chunk {
                transfer,
                offset,
                data,
            } => self.on_chunk(now, stack, transfer, offset, &data),
            FileFrame::Stored { transfer } => {
                if let Some(at) = self.sending.iter().position(|s| s.transfer == transfer) {
                    if let Some(s) = self.sending.remove(at) {
                        let seconds = now.saturating_duration_since(s.started).as_secs_f64();
                        let from = match s.state {
                            OutState::Accepted { from }
                            | OutState::Reading { from, .. }
                            | OutState::AllQueued { from, .. } => from,
                            OutState::Offered | OutState::Waiting => 0,
                        };
                        self.reports.push_back(TransferEvent::FileDone {
                            direction: OUT,
                            transfer,
                            name: s.file.name().to_owned(),
                            size: s.file.size(),
                            path: None,
                            from,
                            seconds,
                        });
                    }
                }
            }
        }
    }

    fn on_offer(
        &mut self,
        now: Instant,
        stack: &mut Stack,
        transfer: u64,
        size: u64,
        hash: [u8; 32],
        name: String,
    ) {
        self.told_unknown.remove(&transfer);
        let name = crate::safe_name(&name);
        // Stored already (our answer was lost, and the peer offers again): say so again.
        if self.stored.contains(&(transfer, hash, size)) {
            self.answer(now, stack, FileFrame::Stored { transfer });
            return;
        }
        // An offer again (the peer's sending started over): answer from what is here.
        if let Some(r) = self.receiving.get_mut(&transfer) {
            if r.hash == hash && r.size == size {
                if let Some(file) = &r.file {
                    let from = file.received();
                    self.answer(now, stack, FileFrame::Accept { transfer, from });
                }
                return;
            }
            self.receiving.remove(&transfer);
        }
        if self.receiving.len() >= MAX_RECEIVING {
            self.answer(
                now,
                stack,
                FileFrame::Cancel {
                    transfer,
                    reason: CancelReason::CannotStore,
                },
            );
            let detail = format!("more than {MAX_RECEIVING} offers at once");
            self.fail(IN, transfer, name, "cannot_store", detail);
            return;
        }
        self.receiving.insert(
            transfer,
            Receiving {
                name: name.clone(),
                size,
                hash,
                file: None,
                from: 0,
                deferred: false,
                progress: Progress::new(now, 0),
                started: now,
            },
        );
        self.reports.push_back(TransferEvent::FileOffered {
            direction: IN,
            transfer,
            name,
            size,
            waiting: !(self.accept_all && self.downloads.is_some()),
        });
        match (self.accept_all, self.downloads.clone()) {
            (true, Some(dir)) => match self.open_download(now, stack, transfer, dir) {
                Ok(()) => {}
                // The same content is being received under another number: this one
                // opens when that one is done (one partial file per content).
                Err(FileError::Busy(_)) => {
                    if let Some(r) = self.receiving.get_mut(&transfer) {
                        r.deferred = true;
                    }
                }
                Err(e) => self.refuse(now, stack, transfer, &e),
            },
            // Nobody here can answer (a pipe, no --accept-files): declined at once, so
            // neither side waits for an answer that never comes.
            _ if !self.can_ask => {
                let detail = "declined: nobody can answer here (use --accept-files DIR)";
                self.drop_theirs(now, stack, transfer, CancelReason::Declined, detail.into());
            }
            _ => {}
        }
    }

    fn on_cancel(&mut self, now: Instant, stack: &mut Stack, transfer: u64, reason: CancelReason) {
        let code = cancel_code(reason);
        let detail = format!("the peer says: {}", reason.describe());
        // Both sides number their transfers from 1: the reason says whose it is. A
        // receiver declines, cannot store, finds damage or does not know; a sender
        // stops, or its file changed.
        let ours = match reason {
            CancelReason::Declined
            | CancelReason::CannotStore
            | CancelReason::Damaged
            | CancelReason::Unknown => Some(true),
            CancelReason::Stopped | CancelReason::Changed => Some(false),
            CancelReason::Other(_) => None,
        };
        if ours != Some(false) {
            if let Some(at) = self.sending.iter().position(|s| s.transfer == transfer) {
                if reason == CancelReason::Unknown {
                    // The peer lost track of it (it dropped it while we were silent):
                    // the chunks queued for it go, and the offer goes again; the answer
                    // says from where.
                    self.forget_chunks(stack, transfer);
                    if let Some(s) = self.sending.get_mut(at) {
                        s.state = OutState::Offered;
                        Self::send_offer(now, stack, s);
                    }
                } else if let Some(s) = self.sending.remove(at) {
                    self.forget_chunks(stack, transfer);
                    self.fail(OUT, transfer, s.file.name().to_owned(), code, detail);
                    self.offer_more(now, stack);
                }
                return;
            }
        }
        if ours == Some(true) {
            return;
        }
        // Theirs: the peer stopped it. What arrived is kept for a later offer of the same
        // file, unless the file changed (then it never will be offered again as is).
        if let Some(r) = self.receiving.remove(&transfer) {
            if reason == CancelReason::Changed {
                if let Some(file) = r.file {
                    let _ = file.discard();
                }
                self.fail(IN, transfer, r.name, code, detail);
            } else {
                let r = keep(r);
                self.fail(IN, transfer, r.name, code, detail);
            }
            self.open_deferred(now, stack);
        }
    }

    fn on_chunk(
        &mut self,
        now: Instant,
        stack: &mut Stack,
        transfer: u64,
        offset: u64,
        data: &[u8],
    ) {
        let Some(r) = self.receiving.get_mut(&transfer) else {
            // Not known here (dropped while the peer was silent, or from before a
            // restart of ours): say so once, and the peer offers it again.
            if self.told_unknown.len() < MAX_TOLD_UNKNOWN && self.told_unknown.insert(transfer) {
                self.answer(
                    now,
                    stack,
                    FileFrame::Cancel {
                        transfer,
                        reason: CancelReason::Unknown,
                    },
                );
            }
            return;
        };
        let Some(file) = r.file.as_mut() else {
            return;
        };
        if let Err(e) = file.write_at(offset, data) {
            // Only a receiver's reasons (a sender's, stopped and changed, would name
            // a transfer of ours).
            let reason = match e {
                FileError::OutOfOrder { .. } | FileError::TooLong { .. } => CancelReason::Damaged,
                _ => CancelReason::CannotStore,
            };
            self.drop_theirs(now, stack, transfer, reason, e.to_string());
            return;
        }
        let done = file.received();
        r.progress.update(now, done);
        if !file.is_complete() {
            if r.progress.due(now) {
                let report = TransferEvent::FileProgress {
                    direction: IN,
                    transfer,
                    name: r.name.clone(),
                    done,
                    size: r.size,
                    rate: r.progress.rate(),
                };
                self.reports.push_back(report);
            }
            return;
        }
        self.complete(now, stack, transfer);
    }

    /// What happened to the session that transfers must follow: the peer restarted
    /// (its new run knows no transfer), left, or frames were given up.
    pub fn on_peer_restarted(&mut self, now: Instant, stack: &mut Stack) {
        self.start_over(now, stack);
        // Its new run numbers its transfers afresh.
        self.stored.clear();
        // The peer's transfers went with its run; what arrived stays on disk and
        // resumes when it offers the files again.
        for r in std::mem::take(&mut self.receiving).into_values() {
            keep(r);
        }
    }

    /// The peer left (its CLOSE): our transfers fail, theirs are dropped (their partial
    /// files stay, to resume).
    pub fn on_peer_left(&mut self) {
        for s in std::mem::take(&mut self.sending) {
            let name = s.file.name().to_owned();
            self.fail(OUT, s.transfer, name, "peer_left", "the peer left".into());
        }
        for (transfer, mut r) in std::mem::take(&mut self.receiving) {
            r = keep(r);
            self.fail(
                IN,
                transfer,
                r.name,
                "peer_left",
                "the peer left; what arrived is kept and resumes".into(),
            );
        }
    }

    /// Every transfer of ours under way goes back to its offer: the peer's answer says
    /// from where to go on.
    fn start_over(&mut self, now: Instant, stack: &mut Stack) {
        // Chunks the session dropped or gave up are not coming back.
        self.bytes_queued = stack.file_bytes_acked();
        for s in &mut self.sending {
            if s.state != OutState::Waiting {
                s.state = OutState::Offered;
                Self::send_offer(now, stack, s);
            }
        }
    }

    /// Queues file chunks while the session has room, and follows the session: given-up
    /// frames (the peer unreachable) start the transfers over, progress is reported.
    pub fn pump(&mut self, now: Instant, stack: &mut Stack) {
        let failures = stack.file_frames_failed();
        if failures != self.failures_seen {
            self.failures_seen = failures;
            if stack.peer_state() == PeerState::Online {
                // Given up while the peer answers: try again from what it holds.
                self.start_over(now, stack);
            } else {
                // The peer stopped answering for good (about a minute of retries): our
                // files fail; what arrived there resumes when they are sent again.
                self.bytes_queued = stack.file_bytes_acked();
                for s in std::mem::take(&mut self.sending) {
                    let name = s.file.name().to_owned();
                    let detail = "the peer stopped answering; sending it again resumes".into();
                    self.fail(OUT, s.transfer, name, "peer_unreachable", detail);
                }
            }
        }
        if stack.peer_state() == PeerState::Unreachable && !self.receiving.is_empty() {
            // Theirs: what arrived stays on disk and resumes when the peer offers again.
            for (transfer, r) in std::mem::take(&mut self.receiving) {
                let r = keep(r);
                let detail = "the peer stopped answering; what arrived is kept and resumes".into();
                self.fail(IN, transfer, r.name, "peer_unreachable", detail);
            }
        }
        // Back from a silence: an answer of the peer's may have been given up on its
        // side (stored, accept), so our unsettled offers go again; it answers from
        // what it has (stored again, or accept from what it holds).
        let state = stack.peer_state();
        if self.last_state == PeerState::Unreachable && state == PeerState::Online {
            // Only what waits for an answer: a file being read goes on as it is. One all
            // queued goes back to its offer, and its chunks not yet sent are dropped:
            // the offer jumps ahead of them, and the answer says where to go on (the
            // peer may have dropped the download meanwhile).
            let all_queued: Vec<u64> = self
                .sending
                .iter()
                .filter(|s| matches!(s.state, OutState::AllQueued { .. }))
                .map(|s| s.transfer)
                .collect();
            for transfer in all_queued {
                self.forget_chunks(stack, transfer);
            }
            for s in &mut self.sending {
                if matches!(s.state, OutState::AllQueued { .. }) {
                    s.state = OutState::Offered;
                }
                if s.state == OutState::Offered {
                    Self::send_offer(now, stack, s);
                }
            }
        }
        self.last_state = state;
        self.offer_more(now, stack);
        let acked = stack.file_bytes_acked();
        let mut reports = Vec::new();
        for s in &mut self.sending {
            if let OutState::Reading { from, base, .. } | OutState::AllQueued { from, base } =
                s.state
            {
                let done = from + acked.saturating_sub(base).min(s.file.size() - from);
                s.progress.update(now, done);
                if s.progress.due(now) && done < s.file.size() {
                    reports.push(TransferEvent::FileProgress {
                        direction: OUT,
                        transfer: s.transfer,
                        name: s.file.name().to_owned(),
                        done,
                        size: s.file.size(),
                        rate: s.progress.rate(),
                    });
                }
            }
        }
        self.reports.extend(reports);
        self.read_chunks(now, stack);
    }

    /// Reads the active file into chunks while the session holds fewer than
    /// [`CHUNKS_AHEAD`]; starts the next accepted file when one is all queued.
    fn read_chunks(&mut self, now: Instant, stack: &mut Stack) {
        let chunk = stack.max_chunk_len().max(1);
        let mut block = Vec::new();
        loop {
            // Whoever is reading, or else the first accepted file (files go one at a time).
            let reading = self
                .sending
                .iter()
                .position(|s| matches!(s.state, OutState::Reading { .. }));
            let active = reading.or_else(|| {
                if self
                    .sending
                    .iter()
                    .any(|s| matches!(s.state, OutState::AllQueued { .. }))
                {
                    // The previous file's chunks are still in the session: its progress
                    // must not count the next one's.
                    let acked = stack.file_bytes_acked();
                    if acked < self.bytes_queued {
                        return None;
                    }
                }
                self.sending
                    .iter()
                    .position(|s| matches!(s.state, OutState::Accepted { .. }))
            });
            let Some(at) = active else {
                return;
            };
            let bytes_queued = self.bytes_queued;
            let Some(s) = self.sending.get_mut(at) else {
                return;
            };
            if let OutState::Accepted { from } = s.state {
                s.state = OutState::Reading {
                    from,
                    next: from,
                    base: bytes_queued,
                };
            }
            let OutState::Reading {
                from,
                mut next,
                base,
            } = s.state
            else {
                return;
            };
            let size = s.file.size();
            while next < size && stack.file_chunks_queued() < CHUNKS_AHEAD {
                block.resize(
                    READ_BLOCK.min(usize::try_from(size - next).unwrap_or(READ_BLOCK)),
                    0,
                );
                let read = match s.file.read_at(next, &mut block) {
                    Ok(n) => n,
                    Err(e) => {
                        let reason = match e {
                            FileError::Changed(_) => CancelReason::Changed,
                            _ => CancelReason::Stopped,
                        };
                        let transfer = s.transfer;
                        let name = s.file.name().to_owned();
                        self.sending.remove(at);
                        self.forget_chunks(stack, transfer);
                        self.answer(now, stack, FileFrame::Cancel { transfer, reason });
                        self.fail(OUT, transfer, name, cancel_code(reason), e.to_string());
                        return;
                    }
                };
                for piece in block.get(..read).unwrap_or_default().chunks(chunk) {
                    let frame = FileFrame::Chunk {
                        transfer: s.transfer,
                        offset: next,
                        data: piece.into(),
                    };
                    if stack.send_file_frame(now, frame).is_err() {
                        return;
                    }
                    next += piece.len() as u64;
                    self.bytes_queued += piece.len() as u64;
                }
            }
            if next < size {
                s.state = OutState::Reading { from, next, base };
                return;
            }
            // The last byte is queued: a file that changed since its hash was taken
            // would arrive damaged, so say so now.
            if let Err(e) = s.file.check_unchanged() {
                let transfer = s.transfer;
                let name = s.file.name().to_owned();
                self.sending.remove(at);
                self.forget_chunks(stack, transfer);
                self.answer(
                    now,
                    stack,
                    FileFrame::Cancel {
                        transfer,
                        reason: CancelReason::Changed,
                    },
                );
                self.fail(OUT, transfer, name, "changed", e.to_string());
                return;
            }
            s.state = OutState::AllQueued { from, base };
        }
    }
}

/// Writes out what a download holds before it is dropped, so a resumed transfer goes
/// on from all of it (a failure here only means more is sent again).
fn keep(mut r: Receiving) -> Receiving {
    if let Some(file) = r.file.as_mut() {
        if let Err(e) = file.flush() {
            tracing::debug!("partial download not written out: {e}");
        }
    }
    r
}

/// The reports' name for a cancel reason.
fn cancel_code(reason: CancelReason) -> &'static str {
    match reason {
        CancelReason::Declined => "declined",
        CancelReason::Stopped => "stopped",
        CancelReason::Changed => "changed",
        CancelReason::CannotStore => "cannot_store",
        CancelReason::Damaged => "damaged",
        CancelReason::Unknown => "unknown_transfer",
        CancelReason::Other(_) => "cancelled",
    }
}
