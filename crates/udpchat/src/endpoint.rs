//! The network side both interfaces share, and the one thing they talk to: the UDP
//! socket, the sans-IO [`Stack`] (protocol session inside the encryption layer), the
//! seeded loss applied to what arrives (as the original program ignored 20% of the
//! messages and ACKs it received), the texts of our messages until they are settled, and
//! the pinned peers, which it keeps up to date.
//!
//! The simulated loss acts after decryption, on the protocol packet: only there can a
//! message be told from an acknowledgement, which `--drop` and `--ack-drop` need.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use quinn_udp::{RecvMeta, UdpSocketState};
use tokio::io::Interest;
use tokio::net::UdpSocket;
use udpchat_impair::{Impairment, PacketClass};
use udpchat_proto::wire::{classify, Classification};
use udpchat_proto::{DecodeError, Event, MessageId, RejectReason, SendError};
use udpchat_secure::wire::{TYPE_INITIATION, V1_TYPES};
use udpchat_secure::{Reject, SecureEvent};
use udpchat_stack::{Opened, Seen, Stack, StackEvent};

use crate::contacts::Contacts;
use crate::journal::Journal;
use crate::report::Report;
use crate::trace::Tracer;
use udpchat_files::transfers::Transfers;

/// Large enough for any UDP datagram, so an oversize one is received whole and
/// rejected for its size instead of being silently truncated.
pub(crate) const RECV_BUFFER: usize = 65_536;

/// Most datagrams taken from the socket before the session's answer is sent.
pub(crate) const RECV_BATCH: usize = 64;

/// Datagrams one receive system call may return (recvmmsg), each buffer holding a
/// whole GRO train of up to 64 KiB.
pub(crate) const RECV_SLOTS: usize = 8;

/// Most bytes one GSO send may carry: the kernel refuses a train whose UDP payload in
/// total passes 64 KiB less the headers (`EMSGSIZE`: 54 datagrams of 1,200 bytes pass,
/// 55 do not), whatever the segment count it allows.
const MAX_TRAIN_BYTES: usize = 65_000;

/// Receive errors in a row, with nothing else happening in between, after which the
/// socket is taken to be broken (transient ICMP errors come one per datagram sent).
const MAX_RECV_ERRORS_IN_ROW: u32 = 1000;

/// Where a batched receive puts what arrives: [`RECV_SLOTS`] buffers of
/// [`RECV_BUFFER`] bytes and what the system says of each.
pub(crate) struct RecvBuffers {
    bytes: Vec<Vec<u8>>,
    meta: Vec<RecvMeta>,
    /// Buffers the last receive filled.
    filled: usize,
}

impl RecvBuffers {
    pub(crate) fn new() -> Self {
        Self {
            bytes: (0..RECV_SLOTS).map(|_| vec![0; RECV_BUFFER]).collect(),
            meta: vec![RecvMeta::default(); RECV_SLOTS],
            filled: 0,
        }
    }

    /// The datagrams the last receive took, each with its source. A GRO train is
    /// datagrams of `stride` bytes end to end; an empty datagram (stride 0) is one
    /// datagram of nothing, and is rejected as such.
    pub(crate) fn datagrams(&self) -> impl Iterator<Item = (SocketAddr, &[u8])> {
        self.meta
            .iter()
            .zip(&self.bytes)
            .take(self.filled)
            .flat_map(|(m, buf)| {
                let received = buf.get(..m.len).unwrap_or_default();
                let stride = if m.stride == 0 {
                    received.len().max(1)
                } else {
                    m.stride
                };
                let empty = received.is_empty().then_some((m.addr, received));
                received
                    .chunks(stride)
                    .map(move |d| (m.addr, d))
                    .chain(empty)
            })
    }
}

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
    /// Encrypted; pinned keys, an invitation code or the passphrase prove the peer.
    Encrypted,
    /// Encrypted, and only holders of the shared passphrase can connect at all.
    Passphrase,
    /// Clear text (`--plaintext`, `--classic`, or a chat with oneself).
    Plaintext,
}

impl SecurityMode {
    /// The stable name used in JSON.
    pub(crate) fn code(self) -> &'static str {
        match self {
            Self::Encrypted => "encrypted",
            Self::Passphrase => "passphrase",
            Self::Plaintext => "plaintext",
        }
    }
}

/// Socket, stack, simulated loss, undelivered texts and pinned peers, driven by the
/// caller's loop.
#[derive(Debug)]
pub(crate) struct Endpoint {
    /// The bound socket.
    pub(crate) socket: UdpSocket,
    /// Batched system calls on it (GSO, GRO, recvmmsg), where the system offers them;
    /// `None` when it could not be set up: plain `send_to` and `recv_from` then.
    batch: Option<UdpSocketState>,
    /// The protocol session with the peer, encrypted unless plaintext was chosen.
    pub(crate) stack: Stack,
    /// Loss simulated on received protocol packets.
    pub(crate) impairment: Impairment<SocketAddr>,
    /// Last time an authenticated datagram (in the clear: any datagram from the peer's
    /// address) arrived, or the start.
    pub(crate) last_heard: Instant,
    /// How datagrams are protected.
    pub(crate) mode: SecurityMode,
    /// The identity and the pinned peers; first contacts are written down here.
    contacts: Contacts,
    /// Texts of our messages not yet delivered or failed, to report them if the run
    /// ends first.
    pending: BTreeMap<MessageId, String>,
    /// Why no session will ever come (a refused contact), once known.
    refused: Option<Report>,
    /// The kind of send error already warned about, so a peer that is down for a
    /// while gives one warning, not one per retransmission.
    send_warned: Option<io::ErrorKind>,
    recv_errors_in_row: u32,
    /// Hints already given (each is given once).
    hints_given: Vec<&'static str>,
    /// Hints for the user not yet taken by the driver.
    hints: VecDeque<String>,
    /// The conversation's store and ledger (the line interface, unless `--ephemeral`).
    journal: Option<Journal>,
    /// Messages the session gave up that stay in the outbox, to be reported as kept.
    kept: VecDeque<Report>,
    /// How many times the session gave up a message that stayed in the outbox (not a
    /// failure for the user).
    given_back: u64,
    /// Outbox messages handed to the session again: its id and our number, for the
    /// full-screen chat to follow them.
    released: Vec<(MessageId, u64)>,
    /// The outbox is to go to the session once the events in hand are all taken.
    release_due: bool,
    /// The store could not be written: nothing more is sent (a message whose record
    /// was lost must not reach the peer under a number the next run reuses).
    store_failed: bool,
    /// When to say that the peer has not answered yet, and who it is: a person whose
    /// peer is not running learns it in seconds, while the session keeps trying (its
    /// own verdict, which gives up queued messages, comes at the connect timeout).
    silence_hint: Option<(Instant, SocketAddr, Duration)>,
    /// Our nickname announcements in flight: their delivery or failure is not a
    /// message's, and is not reported.
    announcements: HashSet<MessageId>,
    /// `--trace FILE`: the run's packets, timers and figures, as they happen.
    tracer: Option<Tracer>,
    /// Files both ways (PROTOCOL.md §6c).
    transfers: Transfers,
}

/// How long the first answer may take before the user is told nobody answers yet.
pub(crate) const SILENCE_HINT_AFTER: Duration = Duration::from_secs(10);

/// What became of a line given to [`Endpoint::send_tracked`].
#[derive(Clone, Copy, Debug)]
pub(crate) struct Tracked {
    /// The session's id, when it took the message now.
    pub(crate) id: Option<MessageId>,
    /// Our number for it, when it is kept in the outbox (with a store).
    pub(crate) number: Option<u64>,
}

impl Endpoint {
    /// Puts the pieces together.
    pub(crate) fn new(
        socket: UdpSocket,
        stack: Stack,
        impairment: Impairment<SocketAddr>,
        mode: SecurityMode,
        contacts: Contacts,
    ) -> Self {
        let batch = match UdpSocketState::new((&socket).into()) {
            Ok(state) => Some(state),
            Err(e) => {
                tracing::debug!("no batched UDP system calls: {e}");
                None
            }
        };
        Self {
            mode,
            socket,
            batch,
            stack,
            impairment,
            last_heard: Instant::now(),
            contacts,
            pending: BTreeMap::new(),
            refused: None,
            send_warned: None,
            recv_errors_in_row: 0,
            hints_given: Vec::new(),
            hints: VecDeque::new(),
            journal: None,
            kept: VecDeque::new(),
            given_back: 0,
            released: Vec::new(),
            release_due: false,
            store_failed: false,
            silence_hint: None,
            announcements: HashSet::new(),
            tracer: None,
            transfers: Transfers::new(None, false, false),
        }
    }

    /// Where accepted files land, whether every offer is accepted at once
    /// (`--accept-files DIR`), and whether someone can answer one (a terminal).
    pub(crate) fn with_downloads(
        mut self,
        dir: Option<PathBuf>,
        accept_all: bool,
        can_ask: bool,
    ) -> Self {
        self.transfers = Transfers::new(dir, accept_all, can_ask);
        self
    }

    /// Offers files (a directory as its files) to the peer.
    ///
    /// # Errors
    /// A path is missing, unreadable or empty; nothing is offered then.
    pub(crate) fn offer_files(
        &mut self,
        paths: &[PathBuf],
    ) -> Result<(), udpchat_files::FileError> {
        self.transfers.offer(Instant::now(), &mut self.stack, paths)
    }

    /// Accepts the peer's offer `transfer`, or the oldest waiting one.
    ///
    /// # Errors
    /// Nothing waits, or the download directory cannot be used.
    pub(crate) fn accept_file(&mut self, transfer: Option<u64>) -> Result<(), String> {
        self.transfers
            .accept(Instant::now(), &mut self.stack, transfer)
    }

    /// Declines the peer's offer `transfer`, or the oldest waiting one.
    ///
    /// # Errors
    /// Nothing waits.
    pub(crate) fn decline_file(&mut self, transfer: Option<u64>) -> Result<(), String> {
        self.transfers
            .decline(Instant::now(), &mut self.stack, transfer)
    }

    /// Our files not yet confirmed by the peer, and the peer's under way.
    pub(crate) fn transfers_under_way(&self) -> (usize, usize) {
        (self.transfers.sending(), self.transfers.receiving())
    }

    /// Our files that ended without the peer's confirmation.
    pub(crate) fn files_failed(&self) -> u64 {
        self.transfers.failed()
    }

    /// What the transfers have to say: offers, progress, completions, failures.
    pub(crate) fn take_file_report(&mut self) -> Option<Report> {
        self.transfers.take_report().map(Report::from)
    }

    /// Traces the run into `tracer` (`--trace FILE`).
    pub(crate) fn with_tracer(mut self, tracer: Tracer) -> Self {
        self.stack.trace_sent_packets(true);
        self.tracer = Some(tracer.inside_encryption(self.stack.is_encrypted()));
        self
    }

    /// Keeps the last datagrams for `/trace` (with the `--trace` file if there is one).
    pub(crate) fn keep_recent_trace(&mut self, now: Instant) {
        match self.tracer.as_mut() {
            Some(t) => t.keep_recent(),
            None => {
                self.stack.trace_sent_packets(true);
                self.tracer =
                    Some(Tracer::in_memory(now).inside_encryption(self.stack.is_encrypted()));
            }
        }
    }

    /// The last datagrams seen from here, if they are kept.
    pub(crate) fn recent_trace(&self) -> Option<udpchat_lab::Trace> {
        self.tracer.as_ref()?.recent()
    }

    /// Writes out what the trace holds; says once if it stopped (a write failed).
    pub(crate) fn flush_trace(&mut self) {
        if let Some(t) = self.tracer.as_mut() {
            t.flush();
            if let Some(failure) = t.failure.take() {
                self.hints.push_back(failure);
            }
        }
    }

    /// Says, once, if nothing has been heard from `peer` by `after` from `now` (see
    /// `silence_hint`).
    pub(crate) fn watch_silence(mut self, peer: SocketAddr, now: Instant, after: Duration) -> Self {
        self.silence_hint = now.checked_add(after).map(|at| (at, peer, after));
        self
    }

    /// Gives the endpoint the conversation's store: our messages are numbered and kept
    /// in the outbox until acknowledged, the peer's are committed before they are shown
    /// and acknowledged (the stack must have been made with `durable_receive`). What
    /// the outbox holds from earlier runs is queued at once, before anything new.
    pub(crate) fn with_journal(mut self, mut journal: Journal) -> Self {
        if let Some(notice) = journal.notice.take() {
            self.hints.push_back(notice);
        }
        self.journal = Some(journal);
        self.release_waiting(Instant::now());
        self
    }

    /// Queues a line of the line interface: numbered and kept in the outbox when there
    /// is a store (behind older messages still waiting for the peer), else as
    /// [`send`](Self::send).
    ///
    /// # Errors
    /// Too long, or the queue is full; the text comes back with the error.
    pub(crate) fn send_line(
        &mut self,
        now: Instant,
        text: String,
    ) -> Result<(), (SendError, String)> {
        let Some(journal) = self.journal.as_mut() else {
            return self.send(now, text).map(|_| ());
        };
        // The text is in the store from now on; nothing more is kept here.
        journal.ledger.queue(&mut self.stack, now, text)?;
        Ok(())
    }

    /// Queues a message of the full-screen chat and says how to follow it: the
    /// session's id, and with a store our number for it (it may wait in the outbox).
    ///
    /// # Errors
    /// Too long, or the queue is full; the text comes back with the error.
    pub(crate) fn send_tracked(
        &mut self,
        now: Instant,
        text: String,
    ) -> Result<Tracked, (SendError, String)> {
        let Some(journal) = self.journal.as_mut() else {
            return self.send(now, text).map(|id| Tracked {
                id: Some(id),
                number: None,
            });
        };
        let (stable, id) = journal.ledger.queue(&mut self.stack, now, text)?;
        Ok(Tracked {
            id,
            number: Some(stable.number),
        })
    }

    /// The peer's last nickname, from the kept conversation.
    pub(crate) fn peer_nick(&self) -> Option<String> {
        self.journal.as_ref()?.peer_nick()
    }

    /// Outbox messages handed to the session again since the last call.
    pub(crate) fn take_released(&mut self) -> Vec<(MessageId, u64)> {
        std::mem::take(&mut self.released)
    }

    /// The newest `limit` messages of the kept conversation, oldest first.
    pub(crate) fn recent(&self, limit: usize) -> Vec<udpchat_store::Message> {
        self.journal
            .as_ref()
            .and_then(|j| j.recent(limit).ok())
            .unwrap_or_default()
    }

    /// The newest `limit` kept messages older than row `before`, oldest first.
    pub(crate) fn older(&self, before: i64, limit: usize) -> Vec<udpchat_store::Message> {
        self.journal
            .as_ref()
            .and_then(|j| j.older(before, limit).ok())
            .unwrap_or_default()
    }

    /// Messages of the kept conversation containing `needle`, oldest first.
    ///
    /// # Errors
    /// No store (`--no-history`), or it cannot be read.
    pub(crate) fn search(&self, needle: &str) -> Result<Vec<udpchat_store::Message>, String> {
        match self.journal.as_ref() {
            Some(j) => j.search(needle, 20).map_err(|e| e.to_string()),
            None => Err("no kept conversation (--no-history, --ephemeral or --classic)".to_owned()),
        }
    }

    /// Hands the outbox's waiting messages to the session, oldest first, while it takes
    /// them: at start, when the peer is (back) online, and at the end of input.
    pub(crate) fn release_waiting(&mut self, now: Instant) {
        if let Some(journal) = self.journal.as_mut() {
            for (id, _) in journal.ledger.release(&mut self.stack, now) {
                if let Some(number) = journal.ledger.number_of(id) {
                    self.released.push((id, number));
                }
            }
        }
    }

    /// Makes what the store must record durable (one transaction), then lets the session
    /// acknowledge what arrived: call after taking the events, before writing them out
    /// and before [`send_all`](Self::send_all).
    ///
    /// # Errors
    /// The store could not be written (disk full, ...): the run cannot keep its promises.
    pub(crate) fn commit(&mut self) -> io::Result<()> {
        self.commit_with(false)
    }

    /// [`commit`](Self::commit), acknowledgements included: at the end of a run.
    ///
    /// # Errors
    /// As `commit`.
    pub(crate) fn commit_all(&mut self) -> io::Result<()> {
        self.commit_with(true)
    }

    fn commit_with(&mut self, all: bool) -> io::Result<()> {
        if let Some(journal) = self.journal.as_mut() {
            if let Err(e) = journal.commit(all) {
                self.store_failed = true;
                return Err(io::Error::other(e.to_string()));
            }
            self.stack.confirm_durable();
        }
        Ok(())
    }

    /// What the outbox holds (committed first): number and text, oldest first; empty
    /// without a store.
    ///
    /// # Errors
    /// The store could not be written or read.
    pub(crate) fn outbox(&mut self) -> io::Result<Vec<(u64, String)>> {
        self.commit_all()?;
        match self.journal.as_ref() {
            Some(journal) => journal
                .outbox()
                .map_err(|e| io::Error::other(e.to_string())),
            None => Ok(Vec::new()),
        }
    }

    /// Our messages kept in the outbox, not yet acknowledged (0 without a store).
    pub(crate) fn queued(&self) -> u64 {
        self.journal
            .as_ref()
            .map_or(0, |j| j.ledger.unacknowledged() as u64)
    }

    /// Times the session gave up a message that stayed in the outbox.
    pub(crate) fn given_back(&self) -> u64 {
        self.given_back
    }

    /// Copies of messages an earlier run already showed, not shown again.
    pub(crate) fn duplicates_across_runs(&self) -> u64 {
        self.journal.as_ref().map_or(0, |j| j.ledger.duplicates())
    }

    /// A report of a message the session gave up and the outbox keeps.
    pub(crate) fn take_kept(&mut self) -> Option<Report> {
        self.kept.pop_front()
    }

    /// Queues a message; its text is kept until it is delivered or reported failed.
    ///
    /// # Errors
    /// Too long, or the queue is full; the text comes back with the error, to be shown
    /// as not sent.
    pub(crate) fn send(
        &mut self,
        now: Instant,
        text: String,
    ) -> Result<MessageId, (SendError, String)> {
        match self.stack.send(now, text.clone()) {
            Ok(id) => {
                self.pending.insert(id, text);
                Ok(id)
            }
            Err(e) => Err((e, text)),
        }
    }

    /// Tells the peer our nickname, in order with our messages (not counted as one).
    ///
    /// # Errors
    /// Too long, or the queue is full.
    pub(crate) fn send_nick(&mut self, now: Instant, nick: String) -> Result<(), SendError> {
        let id = self.stack.send_nick(now, nick)?;
        self.announcements.insert(id);
        Ok(())
    }

    /// Takes the undelivered texts (the run is ending: they are reported as such).
    pub(crate) fn take_pending(&mut self) -> BTreeMap<MessageId, String> {
        std::mem::take(&mut self.pending)
    }

    /// Why no session will come, if a contact was refused for good.
    pub(crate) fn refused(&self) -> Option<&Report> {
        self.refused.as_ref()
    }

    /// The next event of the stack, with its consequences here already taken care of:
    /// a settled message's text is dropped, a first contact's key is pinned on disk
    /// (before anything more is sent), a final refusal is remembered. A warning about
    /// the pinning comes back as a hint.
    pub(crate) fn poll_event(&mut self) -> Option<StackEvent> {
        loop {
            let Some(event) = self.stack.poll_event() else {
                // The outbox goes again only once every event is taken: a batch of
                // failures must all be back in the outbox first, or a newer message
                // could overtake an older one (and the peer would drop the older as a
                // copy).
                if std::mem::take(&mut self.release_due) {
                    self.release_waiting(Instant::now());
                }
                // File chunks fill what room the session has once every event is in.
                self.transfers.pump(Instant::now(), &mut self.stack);
                return None;
            };
            if let Some(event) = self.take_in(event) {
                return Some(event);
            }
        }
    }

    /// What an event means here; `None` when it is for the endpoint alone (a copy of a
    /// message shown by an earlier run; a message given up that the outbox keeps).
    fn take_in(&mut self, event: StackEvent) -> Option<StackEvent> {
        // A nickname announcement is not a message: none of its events is reported.
        match &event {
            StackEvent::Session(Event::Delivered { id, .. } | Event::Failed { id, .. })
                if self.announcements.remove(id) =>
            {
                return None;
            }
            StackEvent::Session(Event::Sent { id, .. } | Event::Retransmit { id, .. })
                if self.announcements.contains(id) =>
            {
                return None;
            }
            // Someone answered: no "no answer" hint (a peer that answers and leaves
            // before the next timer would otherwise be said never to have answered).
            StackEvent::Session(Event::Connected { .. }) => self.silence_hint = None,
            StackEvent::Session(Event::PeerRestarted { .. }) => {
                self.transfers
                    .on_peer_restarted(Instant::now(), &mut self.stack);
            }
            StackEvent::Session(Event::PeerLeft { .. }) => self.transfers.on_peer_left(),
            // The session takes datagrams only from the peer (or, encrypted, from inside
            // its authenticated channel): another protocol version there means the
            // two programs differ, which nothing else would tell the user.
            StackEvent::Session(Event::Rejected {
                reason: RejectReason::Malformed(DecodeError::UnsupportedVersion { version }),
            }) => {
                let hint = format!(
                    "the peer runs another version of udpchat (protocol v{version}, this one speaks v{}); both sides need the same version",
                    udpchat_proto::wire::VERSION
                );
                self.hint_once("protocol version", hint);
            }
            _ => {}
        }
        if let StackEvent::Session(Event::File { frame }) = event {
            self.transfers
                .on_frame(Instant::now(), &mut self.stack, frame);
            return None;
        }
        if let (Some(journal), StackEvent::Session(e)) = (self.journal.as_mut(), &event) {
            match journal.ledger.on_event(e) {
                Seen::Show => {}
                Seen::Copy => return None,
                Seen::Kept { number } => {
                    if let Event::Failed { id, text, reason } = e {
                        self.pending.remove(id);
                        self.given_back += 1;
                        self.kept.push_back(Report::Kept {
                            number,
                            text: text.clone(),
                            reason: reason.code(),
                        });
                    }
                    // Given up while the peer still answers (no acknowledgement after
                    // every retry): the outbox tries again, in order, once the events
                    // are all taken.
                    if self.stack.peer_state() == udpchat_proto::PeerState::Online {
                        self.release_due = true;
                    }
                    return None;
                }
                // Online (again): what waits in the outbox goes, in order, once the
                // events are all taken.
                Seen::Online => self.release_due = true,
            }
        }
        match &event {
            StackEvent::Session(Event::Delivered { id, .. } | Event::Failed { id, .. }) => {
                self.pending.remove(id);
            }
            StackEvent::Secure(SecureEvent::Established {
                peer,
                peer_key,
                verified,
                new_contact,
                ..
            }) => {
                if let Some(warning) =
                    self.contacts
                        .remember(*peer_key, *peer, *verified, *new_contact)
                {
                    self.hints.push_back(warning);
                }
            }
            StackEvent::Secure(SecureEvent::PeerAddressChanged { new, .. }) => {
                if let Some(key) = self.stack.peer_key() {
                    let verified = udpchat_secure::Verification::Pinned;
                    if let Some(warning) = self.contacts.remember(key, *new, verified, false) {
                        self.hints.push_back(warning);
                    }
                }
            }
            StackEvent::Secure(
                e @ (SecureEvent::Refused { fatal: true, .. } | SecureEvent::RefusedByPeer { .. }),
            ) => {
                self.refused = Report::from_secure(e.clone());
            }
            _ => {}
        }
        Some(event)
    }

    /// Takes one received datagram through the encryption layer and the simulated loss,
    /// and hands what survives to the protocol session.
    pub(crate) fn on_datagram(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) -> Arrival {
        self.recv_errors_in_row = 0;
        let encrypted = self.stack.is_encrypted();
        if !encrypted {
            // In the clear the protocol rejects what it cannot read, later.
            self.notice(from, bytes, None);
        }
        let opened = match self.stack.open(now, from, bytes) {
            Ok(opened) => opened,
            Err(reject) => {
                self.notice(from, bytes, Some(reject));
                return Arrival::Rejected { reject, from };
            }
        };
        // Under encryption only authenticated datagrams get here, from wherever the peer
        // is now; in the clear, only the peer's address counts as hearing from it.
        if encrypted || Some(from) == self.stack.peer_addr() {
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
        // Only a traced run names the datagram (for a drop's mark).
        let traced = self
            .tracer
            .as_ref()
            .map(|_| crate::trace::packet_id(&bytes));
        let fate = self.impairment.handle_input(now, class, bytes, from);
        if let (Some(t), Some(id), true) = (self.tracer.as_mut(), traced, fate.is_dropped()) {
            t.dropped(now, id);
        }
        self.release(now);
        if fate.is_dropped() {
            Arrival::Dropped(SimulatedDrop { kind, seq })
        } else {
            Arrival::Accepted
        }
    }

    /// Notes a hint, once each, when a rejected datagram from the peer's address says
    /// why nothing connects: it is the other mode (clear text arriving at an encrypted
    /// chat, or the reverse), another version of udpchat, a handshake under another
    /// passphrase (or none), or our own handshake come back (PEER is this very program
    /// under another of the machine's addresses). The datagram was rejected either way;
    /// the hint only saves the user from guessing.
    fn notice(&mut self, from: SocketAddr, bytes: &[u8], reject: Option<Reject>) {
        if self.stack.peer_addr().is_some_and(|p| p != from) {
            return;
        }
        let Some(&first) = bytes.first() else {
            return;
        };
        let encrypted = self.stack.is_encrypted();
        let (key, hint) = match reject {
            Some(Reject::Reflected) => (
                "reflected",
                "the peer is this udpchat itself (its own handshake came back); to chat with yourself, give 127.0.0.1 and this port as PEER",
            ),
            Some(Reject::OtherVersion { version: 1 }) => (
                "version",
                "the peer runs an older udpchat (encrypted protocol version 1); both sides need the same version",
            ),
            Some(Reject::OtherVersion { .. }) => (
                "version",
                "the peer runs another version of udpchat's encrypted protocol; both sides need the same version",
            ),
            Some(Reject::BadMac1) if first == TYPE_INITIATION => (
                "mac1",
                if self.mode == SecurityMode::Passphrase {
                    "the peer's handshake does not carry this passphrase: it uses another passphrase or room, or none"
                } else {
                    "the peer's handshake does not fit: it uses a passphrase (then give the same one here), or it does not know this installation's key while this one only accepts it"
                },
            ),
            _ if encrypted && first == b'U' => (
                "mode",
                "the peer sends unencrypted datagrams (it runs with --plaintext or --classic); use the same mode on both sides",
            ),
            _ if !encrypted && ((0xD1..=0xD5).contains(&first) || V1_TYPES.contains(&first)) => (
                "mode",
                "the peer sends encrypted datagrams; run without --plaintext and --classic on both sides, or with them on both",
            ),
            _ => return,
        };
        self.hint_once(key, hint.to_owned());
    }

    /// Notes `hint` unless one under `key` was given already. The peer is there and has
    /// said why nothing connects: no "no answer" hint too.
    fn hint_once(&mut self, key: &'static str, hint: String) {
        if !self.hints_given.contains(&key) {
            self.hints_given.push(key);
            self.hints.push_back(hint);
        }
        self.silence_hint = None;
    }

    /// A hint the last datagrams or events gave, once (see `notice`).
    pub(crate) fn take_hint(&mut self) -> Option<String> {
        self.hints.pop_front()
    }

    /// Hands the packets the simulated network lets through to the protocol session.
    fn release(&mut self, now: Instant) {
        while let Some((from, bytes)) = self.impairment.poll_output(now) {
            if let Some(t) = self.tracer.as_mut() {
                t.received(now, &bytes);
            }
            self.stack.handle_inner(now, from, &bytes);
        }
    }

    /// A timer fired: release delayed packets and let both layers act.
    pub(crate) fn on_timer(&mut self, now: Instant) {
        self.recv_errors_in_row = 0;
        self.release(now);
        self.stack.handle_timeout(now);
        if let Some(t) = self.tracer.as_mut() {
            // The timer's mark before what it sends (in send_all).
            t.observe(now, &self.stack);
        }
        if let Some((at, peer, after)) = self.silence_hint {
            if self.stack.peer_state() != udpchat_proto::PeerState::Connecting
                || self.refused.is_some()
            {
                // It answered (or refused, which says more than this would).
                self.silence_hint = None;
            } else if at <= now {
                self.silence_hint = None;
                self.hints.push_back(format!(
                    "no answer from {peer} for {} s: is udpchat running there, on that port, and is UDP allowed? (still trying)",
                    after.as_secs()
                ));
            }
        }
    }

    /// The earliest of the stack's timer, the simulated network's next release and the
    /// silence hint.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        [
            self.stack.poll_timeout(),
            self.impairment.poll_timeout(),
            self.silence_hint.map(|(at, _, _)| at),
        ]
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
    ///
    /// A run of datagrams to one address, all of one size but the last, leaves in one
    /// system call (UDP GSO) where the system offers it: a bulk transfer's full packets.
    pub(crate) async fn send_all(&mut self) -> Option<String> {
        if self.store_failed {
            // Persist, then send: what is queued may not be on disk.
            return None;
        }
        let mut warning = None;
        // The trace's time for what goes out now: before the sends, not after them
        // (the peer may record the arrival before this run gets back from sending).
        let sent_at = Instant::now();
        let mut next = self.stack.poll_transmit();
        let mut train = Vec::new();
        while let Some(first) = next.take() {
            // Read again for every train: quinn-udp turns GSO off after the first
            // failure it blames on it.
            let max_segments = self
                .batch
                .as_ref()
                .map_or(1, UdpSocketState::max_gso_segments)
                .max(1);
            let to = first.destination;
            let segment = first.payload.len();
            train.clear();
            train.extend_from_slice(&first.payload);
            let mut segments = 1;
            // Equal sizes join the train; a shorter one ends it (GSO's rule).
            while segments < max_segments && segment > 0 {
                let Some(t) = self.stack.poll_transmit() else {
                    break;
                };
                if t.destination != to
                    || t.payload.len() > segment
                    || t.payload.is_empty()
                    || train.len() + t.payload.len() > MAX_TRAIN_BYTES
                {
                    next = Some(t);
                    break;
                }
                train.extend_from_slice(&t.payload);
                segments += 1;
                if t.payload.len() < segment {
                    break;
                }
            }
            if next.is_none() {
                next = self.stack.poll_transmit();
            }
            if let Err(e) = send_train(
                &self.socket,
                self.batch.as_ref(),
                to,
                &train,
                segment,
                segments,
            )
            .await
            {
                tracing::debug!("send to {to}: {e}");
                if self.send_warned != Some(e.kind()) {
                    self.send_warned = Some(e.kind());
                    warning = Some(format!("sending to {to} failed: {e} (will retry)"));
                }
            }
        }
        if let Some(t) = self.tracer.as_mut() {
            for packet in self.stack.take_sent_packets() {
                t.sent(sent_at, &packet);
            }
            t.observe(sent_at, &self.stack);
            if let Some(failure) = t.failure.take() {
                self.hints.push_back(failure);
            }
        }
        warning
    }

    /// Takes what has arrived without waiting into `buffers` (see
    /// [`RecvBuffers::datagrams`]); `WouldBlock` when nothing had.
    pub(crate) fn try_recv_batch(&self, buffers: &mut RecvBuffers) -> io::Result<()> {
        try_recv_batch(&self.socket, self.batch.as_ref(), buffers)
    }

    /// Takes what has arrived, up to [`RECV_BATCH`] datagrams, and hands each on (see
    /// [`on_datagram`](Self::on_datagram)), so that one answer and one write serve the
    /// lot. Returns what did not go through (simulated drops, rejections) for the
    /// interface to report or count; empty, and not allocated, when all did.
    ///
    /// # Errors
    /// Receiving keeps failing (see [`on_recv_error`](Self::on_recv_error)).
    pub(crate) fn receive_ready(
        &mut self,
        now: Instant,
        buffers: &mut RecvBuffers,
    ) -> anyhow::Result<Vec<Arrival>> {
        let mut unaccepted = Vec::new();
        let mut taken = 0;
        while taken < RECV_BATCH {
            match self.try_recv_batch(buffers) {
                Ok(()) => {
                    for (from, bytes) in buffers.datagrams() {
                        let arrival = self.on_datagram(now, from, bytes);
                        if arrival != Arrival::Accepted {
                            unaccepted.push(arrival);
                        }
                        taken += 1;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    self.on_recv_error(&e)?;
                    break;
                }
            }
        }
        Ok(unaccepted)
    }

    /// Datagrams rejected so far, by either layer.
    pub(crate) fn rejected(&self) -> u64 {
        self.stack.rejected()
    }
}

/// One system call for `segments` datagrams of `segment` bytes (the last may be shorter)
/// laid end to end in `train`: GSO where `state` offers it, else one plain datagram.
async fn send_train(
    socket: &UdpSocket,
    state: Option<&UdpSocketState>,
    to: SocketAddr,
    train: &[u8],
    segment: usize,
    segments: usize,
) -> io::Result<()> {
    let Some(state) = state else {
        return socket.send_to(train, to).await.map(drop);
    };
    let transmit = quinn_udp::Transmit {
        destination: to,
        ecn: None,
        contents: train,
        segment_size: (segments > 1).then_some(segment),
        src_ip: None,
    };
    let sent = socket
        .async_io(Interest::WRITABLE, || {
            state.try_send(socket.into(), &transmit)
        })
        .await;
    match sent {
        // A device or path that cannot segment: the train goes again one datagram at
        // a time, instead of being lost whole to the retransmission timer.
        Err(e) if segments > 1 && e.raw_os_error().is_some_and(is_gso_refusal) => {
            for datagram in train.chunks(segment) {
                socket.send_to(datagram, to).await?;
            }
            Ok(())
        }
        other => other,
    }
}

/// Whether a send error is how Linux refuses segmentation offload: EIO (5) from a
/// device without checksum offload, EINVAL (22) from a path that cannot segment
/// (quinn-udp's own test for it).
fn is_gso_refusal(errno: i32) -> bool {
    matches!(errno, 5 | 22)
}

/// Takes what has arrived on `socket` without waiting into `buffers`: with `state`,
/// several datagrams per system call (recvmmsg, GRO); without, one.
fn try_recv_batch(
    socket: &UdpSocket,
    state: Option<&UdpSocketState>,
    buffers: &mut RecvBuffers,
) -> io::Result<()> {
    buffers.filled = 0;
    let Some(state) = state else {
        let (Some(buf), Some(meta)) = (buffers.bytes.first_mut(), buffers.meta.first_mut()) else {
            return Ok(());
        };
        let (len, addr) = socket.try_recv_from(buf)?;
        *meta = RecvMeta {
            addr,
            len,
            stride: len,
            ..RecvMeta::default()
        };
        buffers.filled = 1;
        return Ok(());
    };
    let RecvBuffers { bytes, meta, .. } = buffers;
    let mut slices: Vec<io::IoSliceMut<'_>> =
        bytes.iter_mut().map(|b| io::IoSliceMut::new(b)).collect();
    let n = socket.try_io(Interest::READABLE, || {
        state.recv(socket.into(), &mut slices, meta)
    })?;
    buffers.filled = n;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use udpchat_proto::wire::MAX_DATAGRAM;

    #[tokio::test(flavor = "current_thread")]
    async fn the_longest_train_send_all_builds_is_one_the_kernel_takes() {
        let a = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let to = a.local_addr().unwrap();
        let state = UdpSocketState::new((&a).into()).unwrap();
        let segments = MAX_TRAIN_BYTES / MAX_DATAGRAM;
        if state.max_gso_segments() < segments {
            println!("skipped: this system offers no UDP GSO of {segments} segments");
            return;
        }
        let train = vec![7u8; MAX_DATAGRAM * segments];
        send_train(&a, Some(&state), to, &train, MAX_DATAGRAM, segments)
            .await
            .unwrap();
        // One more datagram would pass the kernel's limit.
        let longer = vec![7u8; MAX_DATAGRAM * (segments + 1)];
        assert!(
            send_train(&a, Some(&state), to, &longer, MAX_DATAGRAM, segments + 1)
                .await
                .is_err()
        );
    }

    #[test]
    fn a_gro_train_is_split_at_its_stride_and_an_empty_datagram_is_kept() {
        let from: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let mut buffers = RecvBuffers::new();
        buffers.bytes[0][..10].copy_from_slice(b"aaaabbbbcc");
        buffers.meta[0] = RecvMeta {
            addr: from,
            len: 10,
            stride: 4,
            ..RecvMeta::default()
        };
        buffers.meta[1] = RecvMeta {
            addr: from,
            len: 0,
            stride: 0,
            ..RecvMeta::default()
        };
        buffers.filled = 2;
        let got: Vec<&[u8]> = buffers.datagrams().map(|(_, d)| d).collect();
        assert_eq!(got, [&b"aaaa"[..], b"bbbb", b"cc", b""]);
        buffers.filled = 0;
        assert_eq!(buffers.datagrams().count(), 0);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_burst_of_equal_datagrams_leaves_and_arrives_whole() {
        let a = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let to = b.local_addr().unwrap();
        let state = UdpSocketState::new((&a).into()).unwrap();
        // Ten 100-byte datagrams and a short one, in one system call.
        let mut train = Vec::new();
        for i in 0..10u8 {
            train.extend_from_slice(&[i; 100]);
        }
        train.extend_from_slice(b"end");
        send_train(&a, Some(&state), to, &train, 100, 11)
            .await
            .unwrap();
        let receiver_state = UdpSocketState::new((&b).into()).unwrap();
        let mut buffers = RecvBuffers::new();
        let mut got = Vec::new();
        while got.len() < 11 {
            b.readable().await.unwrap();
            match try_recv_batch(&b, Some(&receiver_state), &mut buffers) {
                Ok(()) => got.extend(buffers.datagrams().map(|(_, d)| d.to_vec())),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(got.len(), 11);
        assert!(got[..10]
            .iter()
            .enumerate()
            .all(|(i, d)| d.len() == 100 && d[0] == i as u8));
        assert_eq!(got[10], b"end");
    }
}
