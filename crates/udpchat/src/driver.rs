//! The tokio loop around the sans-IO session: one UDP socket, stdin lines, one timer and
//! Ctrl-C in a `select!`. After every input it sends what the session wants sent, then
//! reports what the session has to say. It never polls: with no timer armed it sleeps
//! until a datagram, a line or a signal arrives.

use std::collections::VecDeque;
use std::io::{self, Write};
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::mpsc;
use udpchat_files::transfers::TransferEvent;
use udpchat_proto::Event;
use udpchat_stack::StackEvent;

use crate::endpoint::{Arrival, Endpoint, RecvBuffers};
use crate::line_ui::{message_of, Input, LineError};
use crate::reject_budget::RejectBudget;
use crate::report::{Epoch, Report, Stream, Totals, INTERRUPTED, REFUSED};

/// Messages queued in the session before stdin stops being read: a huge piped file is
/// then read only as fast as the peer takes it.
const MAX_QUEUED: usize = 16_384;

/// After a refusal, how long to wait for lines the reader thread may still hand over
/// (typed before the refusal), so they are reported with the rest.
const REFUSAL_READ: Duration = Duration::from_millis(50);

/// How a run ended.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Finish {
    /// Input ended and every message was delivered or failed.
    Completed(Totals),
    /// Ctrl-C.
    Interrupted(Totals),
    /// The contact was refused (by us or by the peer): nothing can be delivered.
    Refused(Totals),
    /// The full-screen chat was left; this many messages were not yet delivered (their
    /// texts were printed).
    Left {
        /// Messages not delivered.
        undelivered: usize,
    },
}

impl Finish {
    /// The process exit status: 0 when every input line was delivered, 1 when a
    /// message failed or a line was refused (too long, not UTF-8), 3 when nothing was
    /// lost but some messages wait in the outbox for the peer (sent when udpchat next
    /// runs with it), 130 (128 + SIGINT, the shell convention) after Ctrl-C.
    pub(crate) fn exit_status(self) -> u8 {
        match self {
            Self::Completed(t) if t.failed == 0 && t.refused == 0 && t.queued > 0 => 3,
            Self::Completed(t) if t.failed == 0 && t.refused == 0 => 0,
            Self::Completed(_) => 1,
            Self::Interrupted(_) => 130,
            Self::Refused(_) => 1,
            Self::Left { undelivered: 0 } => 0,
            Self::Left { .. } => 1,
        }
    }
}

/// Writes reports as JSON lines or human lines. Lines are collected and written with
/// one system call per stream and turn of the loop ([`Output::flush`]), in the order
/// they were made, so a terminal shows stdout and stderr lines as they came.
#[derive(Debug, Default)]
pub(crate) struct Output {
    /// One JSON object per line on stdout.
    pub(crate) json: bool,
    /// More human status lines.
    pub(crate) verbose: bool,
    /// Round-trip figures on exit.
    pub(crate) stats: bool,
    /// Lines not yet written: runs of lines for one stream, in order.
    unwritten: Vec<(Stream, String)>,
    /// Bytes in `unwritten`.
    unwritten_len: usize,
    /// No early write: what is collected waits for the store's commit.
    holding: bool,
    /// A person types the input (stdin is a terminal): the line interface greets them.
    /// From a pipe it says only what matters (or everything with `--verbose`).
    pub(crate) interactive: bool,
    /// Progress bars of file transfers, when stderr is a terminal (human output only).
    bars: Option<Bars>,
    /// Stdout is a terminal: a message of several lines is shown with its breaks.
    stdout_terminal: bool,
}

/// One progress bar per transfer under way, drawn on stderr by indicatif; status lines
/// are written with the bars suspended, so they never tear.
struct Bars {
    multi: indicatif::MultiProgress,
    by_transfer: std::collections::HashMap<(&'static str, u64), indicatif::ProgressBar>,
}

impl std::fmt::Debug for Bars {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bars")
            .field("transfers", &self.by_transfer.len())
            .finish_non_exhaustive()
    }
}

impl Bars {
    /// Shows a progress report; true if it was one (nothing else to print then).
    fn show(&mut self, report: &Report) -> bool {
        match report {
            Report::File(TransferEvent::FileProgress {
                direction,
                transfer,
                name,
                done,
                size,
                ..
            }) => {
                let multi = &self.multi;
                let bar = self
                    .by_transfer
                    .entry((*direction, *transfer))
                    .or_insert_with(|| {
                        let style = indicatif::ProgressStyle::with_template(
                            "{msg} {wide_bar} {bytes}/{total_bytes} {binary_bytes_per_sec} {eta} left",
                        )
                        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
                        let arrow = if *direction == udpchat_files::transfers::IN { "↓" } else { "↑" };
                        multi.add(
                            indicatif::ProgressBar::new(*size)
                                .with_style(style)
                                .with_message(format!("{arrow} {}", crate::report::printable(name))),
                        )
                    });
                bar.set_position(*done);
                true
            }
            Report::File(
                TransferEvent::FileDone {
                    direction,
                    transfer,
                    ..
                }
                | TransferEvent::FileFailed {
                    direction,
                    transfer,
                    ..
                },
            ) => {
                if let Some(bar) = self.by_transfer.remove(&(*direction, *transfer)) {
                    bar.finish_and_clear();
                    self.multi.remove(&bar);
                }
                false
            }
            _ => false,
        }
    }
}

/// `json`, one object, with the field `ts` added last.
fn stamped(mut json: String, at: SystemTime) -> String {
    if json.ends_with('}') {
        json.pop();
        let sep = if json.ends_with('{') { "" } else { "," };
        json.push_str(&format!(
            "{sep}\"ts\":\"{}\"}}",
            humantime::format_rfc3339_millis(at)
        ));
    }
    json
}

/// Past this many bytes what is collected is written at once, whatever the loop does.
const OUTPUT_BUFFER: usize = 1 << 16;

impl Output {
    pub(crate) fn new(json: bool, verbose: bool, stats: bool) -> Self {
        use std::io::IsTerminal as _;
        let bars = (!json && io::stderr().is_terminal()).then(|| Bars {
            multi: indicatif::MultiProgress::new(),
            by_transfer: std::collections::HashMap::new(),
        });
        Self {
            json,
            verbose,
            stats,
            bars,
            stdout_terminal: !json && io::stdout().is_terminal(),
            ..Self::default()
        }
    }

    /// Collects one report; in JSON with the time it was made (`ts`, RFC 3339 UTC with
    /// milliseconds).
    fn emit(&mut self, report: &Report) -> io::Result<()> {
        if let Some(bars) = self.bars.as_mut() {
            if bars.show(report) {
                return Ok(());
            }
        }
        let line = if self.json {
            Some((Stream::Stdout, stamped(report.to_json(), SystemTime::now())))
        } else if matches!(report, Report::Started { .. }) && !self.interactive && !self.verbose {
            None
        } else if self.stdout_terminal {
            report.to_terminal(self.verbose)
        } else {
            report.to_human(self.verbose)
        };
        let Some((stream, line)) = line else {
            return Ok(());
        };
        self.unwritten_len += line.len() + 1;
        match self.unwritten.last_mut() {
            Some((last, run)) if *last == stream => run.push_str(&line),
            _ => self.unwritten.push((stream, line)),
        }
        if let Some((_, run)) = self.unwritten.last_mut() {
            run.push('\n');
        }
        // Past the buffer's size, write out early, but only when nothing received is
        // waiting for the store: a line printed before its commit could be printed again
        // by the next run after a crash. The driver flushes after every commit anyway.
        if self.unwritten_len >= OUTPUT_BUFFER && !self.holding {
            self.flush()?;
        }
        Ok(())
    }

    /// Holds the output (no early write) while received messages wait for the store's
    /// commit; [`flush`](Self::flush) after the commit writes everything.
    fn hold(&mut self, holding: bool) {
        self.holding = holding;
    }

    /// Writes out what was collected. Failing to write the conversation (stdout) is an
    /// error: the user would no longer see what arrives. Failing to write status to
    /// stderr is not.
    fn flush(&mut self) -> io::Result<()> {
        self.unwritten_len = 0;
        for (stream, run) in std::mem::take(&mut self.unwritten) {
            match stream {
                Stream::Stdout => {
                    let write = || -> io::Result<()> {
                        let mut out = io::stdout().lock();
                        out.write_all(run.as_bytes())?;
                        out.flush()
                    };
                    // A terminal shows stdout and the bars together: suspend them.
                    match &self.bars {
                        Some(bars) => bars.multi.suspend(write)?,
                        None => write()?,
                    }
                }
                Stream::Stderr => {
                    let write = || {
                        let _ = io::stderr().lock().write_all(run.as_bytes());
                    };
                    match &self.bars {
                        Some(bars) => bars.multi.suspend(write),
                        None => write(),
                    }
                }
            }
        }
        Ok(())
    }
}

/// The running line interface: the network endpoint, stdin lines, and the bookkeeping
/// needed to know when to stop.
#[derive(Debug)]
pub(crate) struct Driver {
    net: Endpoint,
    seed: u64,
    output: Output,
    lines: mpsc::Receiver<Input>,
    /// Stdin has not reached its end yet.
    stdin_open: bool,
    /// Lines read but not yet queued in the session (it was full).
    unread: VecDeque<Vec<u8>>,
    /// Our DONE is queued: input ended and every line went to the session.
    goodbye_started: bool,
    /// The goodbye is over and our CLOSE went out; waiting for the closing period.
    closing: bool,
    /// Messages reported failed because the run ended first (Ctrl-C, a refusal).
    interrupted: u64,
    /// Input lines not sent: too long or not UTF-8.
    refused: u64,
    /// The newest outbox message reported as kept at the end (reported once each).
    kept_reported: Option<u64>,
    /// Rejected datagrams are reported only a few per second.
    reject_budget: RejectBudget,
    /// Warnings to show once the run has started.
    notices: Vec<String>,
    /// The invitation code and command, for `udpchat invite`.
    invitation: Option<Report>,
    /// Our nickname (`--nick`), told to the peer first thing and again after it restarts.
    own_nick: Option<String>,
    /// The peer's nickname, as it last said (or as the store remembers it).
    peer_nick: Option<String>,
    /// `--send`: files to offer at the start; the run then reads no lines and leaves
    /// once they are all settled.
    files_to_send: Vec<std::path::PathBuf>,
    /// `--send`: leave once the peer confirmed everything, without waiting for its
    /// own end of input.
    send_mode: bool,
    /// `--accept-files`: the end of input does not end the run before the peer has
    /// finished (its DONE) or left, so `udpchat PEER --accept-files DIR < /dev/null`
    /// waits for the files.
    wait_for_peer: bool,
    /// The peer's stream ended (DONE) or it left.
    peer_finished: bool,
}

impl Driver {
    /// Prepares a run. The session must be fresh: its first HELLO is still queued.
    pub(crate) fn new(
        net: Endpoint,
        seed: u64,
        output: Output,
        lines: mpsc::Receiver<Input>,
    ) -> Self {
        Self {
            net,
            seed,
            output,
            lines,
            stdin_open: true,
            goodbye_started: false,
            closing: false,
            unread: VecDeque::new(),
            interrupted: 0,
            refused: 0,
            kept_reported: None,
            reject_budget: RejectBudget::new(),
            notices: Vec::new(),
            invitation: None,
            own_nick: None,
            peer_nick: None,
            files_to_send: Vec::new(),
            send_mode: false,
            wait_for_peer: false,
            peer_finished: false,
        }
    }

    /// Waits for the peer to finish or leave before its own goodbye, even after the end
    /// of input (`--accept-files`: the files are what the run is for).
    pub(crate) fn waiting_for_files(mut self, wait: bool) -> Self {
        self.wait_for_peer = wait;
        self
    }

    /// Files to send (`--send`): offered at the start; the run leaves once the peer
    /// has confirmed (or refused) each and the input has ended. Lines from a pipe are
    /// sent as usual; a terminal is not read (it would never end).
    pub(crate) fn with_files(mut self, files: Vec<std::path::PathBuf>) -> Self {
        if !files.is_empty() {
            self.send_mode = true;
            if self.output.interactive {
                self.stdin_open = false;
            }
        }
        self.files_to_send = files;
        self
    }

    /// The invitation to show right after the `started` report (`udpchat invite`).
    pub(crate) fn with_invitation(mut self, invitation: Option<Report>) -> Self {
        self.invitation = invitation;
        self
    }

    /// Our nickname, told to the peer in order with our messages (PROTOCOL.md §3).
    pub(crate) fn with_nick(mut self, nick: Option<String>) -> Self {
        self.own_nick = nick;
        self
    }

    /// Warnings to show right after the `started` report (clear text, weak passphrase).
    pub(crate) fn with_notices(mut self, notices: Vec<String>) -> Self {
        self.notices = notices;
        self
    }

    /// Runs until stdin has ended and the goodbye is over (PROTOCOL.md §6a: every
    /// message of ours confirmed or failed, and the peer done too, gone or unreachable),
    /// or until Ctrl-C.
    pub(crate) async fn run(mut self) -> anyhow::Result<Finish> {
        let ctrl_c = tokio::signal::ctrl_c();
        tokio::pin!(ctrl_c);
        let mut ctrl_c_armed = true;
        // Poll it once now: the handler is installed on the first poll, and a Ctrl-C
        // that comes after `started` is printed must be caught, not kill the process.
        let early = tokio::select! {
            biased;
            signal = &mut ctrl_c => Some(signal),
            () = std::future::ready(()) => None,
        };
        match early {
            Some(Ok(())) => return self.interrupt().await,
            Some(Err(e)) => {
                // Without a handler Ctrl-C still ends the process, just without the
                // report of unsent messages.
                ctrl_c_armed = false;
                tracing::warn!("cannot listen for Ctrl-C: {e}");
            }
            None => {}
        }

        let local = self.net.socket.local_addr()?;
        self.emit(&Report::Started {
            local,
            peer: self.net.stack.peer_addr(),
            epoch: Epoch(self.net.stack.local_epoch()),
            seed: self.seed,
            security: self.net.mode.code(),
            identity: self
                .net
                .stack
                .public_key()
                .map(|k| k.fingerprint().to_string()),
        })?;
        for message in std::mem::take(&mut self.notices) {
            self.emit(&Report::Warning { message })?;
        }
        self.peer_nick = self.net.peer_nick();
        self.announce_nick()?;
        if let Some(invitation) = self.invitation.take() {
            self.emit(&invitation)?;
        }
        let files = std::mem::take(&mut self.files_to_send);
        if !files.is_empty() {
            if let Err(e) = self.net.offer_files(&files) {
                self.refused += 1;
                self.emit(&Report::Error {
                    message: format!("{e}; nothing sent"),
                    text: None,
                })?;
            }
        }
        self.flush().await?;

        let mut buffers = RecvBuffers::new();
        loop {
            if self.net.refused().is_some() {
                return self.end_refused().await;
            }
            if self.all_read()
                && !self.goodbye_started
                && self.net.transfers_under_way() == (0, 0)
                && (!self.wait_for_peer || self.peer_finished)
            {
                // End of input, every line queued: a DONE goes after the last of them,
                // and what waits in the outbox has one more chance before it.
                self.goodbye_started = true;
                self.net.release_waiting(Instant::now());
                self.net.stack.finish(Instant::now());
                self.flush().await?;
            }
            let delivered_all = self.send_mode && self.net.stack.is_confirmed();
            if self.goodbye_started
                && (self.net.stack.is_finished() || delivered_all)
                && !self.closing
            {
                // The goodbye is over: our last ACK and CLOSE go out, then a short
                // closing period answers the peer if it missed them.
                self.closing = true;
                self.net.stack.close(Instant::now());
                self.flush().await?;
            }
            if self.closing && self.net.stack.is_closed() {
                break;
            }
            if !self.unread.is_empty() && self.has_room() {
                self.queue_unread(Instant::now())?;
                self.flush().await?;
            }
            let deadline = self.next_deadline();
            let wake = tokio::time::Instant::from_std(deadline.unwrap_or_else(Instant::now));
            // Back-pressure: while the session holds enough, stdin is not read, so a huge
            // piped file is read only as fast as the peer takes it.
            let read_stdin = self.stdin_open && self.unread.is_empty() && self.has_room();
            self.output.flush()?;
            tokio::select! {
                signal = &mut ctrl_c, if ctrl_c_armed => match signal {
                    Ok(()) => return self.interrupt().await,
                    Err(e) => {
                        ctrl_c_armed = false;
                        tracing::warn!("cannot listen for Ctrl-C: {e}");
                    }
                },
                readable = self.net.socket.readable() => match readable {
                    Ok(()) => {
                        let now = Instant::now();
                        for arrival in self.net.receive_ready(now, &mut buffers)? {
                            self.report_arrival(now, arrival)?;
                        }
                        self.flush().await?;
                    }
                    Err(e) => self.net.on_recv_error(&e)?,
                },
                input = self.lines.recv(), if read_stdin => {
                    self.on_input(Instant::now(), input).await?;
                }
                () = tokio::time::sleep_until(wake), if deadline.is_some() => {
                    self.net.on_timer(Instant::now());
                    self.flush().await?;
                }
            }
        }
        let totals = self.totals();
        self.emit_exit(totals)?;
        Ok(Finish::Completed(totals))
    }

    /// Reports what became of a received datagram that did not go through.
    fn report_arrival(&mut self, now: Instant, arrival: Arrival) -> io::Result<()> {
        match arrival {
            Arrival::Accepted => Ok(()),
            Arrival::Dropped(drop) => self.emit(&Report::DroppedBySimulation {
                kind: drop.kind,
                seq: drop.seq,
            }),
            Arrival::Rejected { reject, .. } => {
                self.report_rejected(now, reject.code(), reject.to_string())
            }
        }
    }

    /// Whether the session takes more input now. Past this, stdin is not read, so a
    /// huge piped file is read only as fast as the peer takes it.
    fn has_room(&self) -> bool {
        self.net.stack.outstanding() < MAX_QUEUED && self.net.stack.can_send()
    }

    /// Queues read lines in the session while it has room; the rest waits in `unread`.
    fn queue_unread(&mut self, now: Instant) -> io::Result<()> {
        while self.has_room() {
            let Some(raw) = self.unread.pop_front() else {
                break;
            };
            match message_of(raw) {
                Ok(None) => {}
                Ok(Some(text)) => {
                    if text.starts_with('/') && self.file_command(&text)? {
                        continue;
                    }
                    if let Err((e, text)) = self.net.send_line(now, text) {
                        self.refused += 1;
                        self.emit(&Report::Error {
                            message: format!("{e}; not sent"),
                            text: Some(text),
                        })?;
                    }
                }
                Err(e) => {
                    self.refused += 1;
                    let LineError::InvalidUtf8 { lossy, .. } = &e;
                    self.emit(&Report::Error {
                        message: e.to_string(),
                        text: Some(lossy.clone()),
                    })?;
                }
            }
        }
        Ok(())
    }

    /// Input has ended and every line read was handed to the session.
    fn all_read(&self) -> bool {
        !self.stdin_open && self.unread.is_empty()
    }

    /// The earliest of the session's timer and the simulated network's next release.
    fn next_deadline(&self) -> Option<Instant> {
        self.net.next_deadline()
    }

    async fn on_input(&mut self, now: Instant, input: Option<Input>) -> io::Result<()> {
        match input {
            None => self.stdin_open = false,
            Some(Input::Failed(message)) => {
                self.stdin_open = false;
                self.emit(&Report::Error {
                    message,
                    text: None,
                })?;
            }
            Some(Input::Lines(lines)) => {
                self.unread.extend(lines);
                self.queue_unread(now)?;
                self.flush().await?;
            }
        }
        Ok(())
    }

    /// Shows what the session reports, sends what it has queued, then shows what
    /// sending reported (first transmissions). Received messages are written out before
    /// their acknowledgements leave, so a crash between the two cannot lose a message the
    /// peer believes delivered.
    async fn flush(&mut self) -> io::Result<()> {
        self.output.hold(true);
        self.report_events()?;
        // Persist, then show, then acknowledge: what arrived and what was typed is in
        // the store (one transaction) before it is written out or anything is sent, so
        // a crash can neither lose a message the peer believes delivered nor show one
        // twice.
        self.net.commit()?;
        self.output.hold(false);
        self.output.flush()?;
        if let Some(message) = self.net.send_all().await {
            self.emit(&Report::Warning { message })?;
        }
        self.report_events()
    }

    fn report_events(&mut self) -> io::Result<()> {
        while let Some(event) = self.net.poll_event() {
            let event = match event {
                StackEvent::Secure(e) => {
                    if let Some(report) = Report::from_secure(e) {
                        self.emit(&report)?;
                    }
                    continue;
                }
                StackEvent::Session(e) => e,
            };
            if let Event::Rejected { reason } = &event {
                self.report_rejected(Instant::now(), reason.code(), reason.to_string())?;
                continue;
            }
            match &event {
                Event::PeerNick { nick } => self.peer_nick = Some(nick.clone()),
                Event::PeerDone | Event::PeerLeft { .. } => self.peer_finished = true,
                // The peer's new run has not heard our nickname.
                Event::PeerRestarted { .. } => self.announce_nick()?,
                _ => {}
            }
            let peer = self
                .net
                .stack
                .peer_addr()
                .unwrap_or(SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)));
            let mut report = Report::from_event(event, peer);
            if let Report::Received { nick, .. } = &mut report {
                nick.clone_from(&self.peer_nick);
            }
            self.emit(&report)?;
        }
        while let Some(message) = self.net.take_hint() {
            self.emit(&Report::Warning { message })?;
        }
        while let Some(kept) = self.net.take_kept() {
            self.emit(&kept)?;
        }
        while let Some(report) = self.net.take_file_report() {
            self.emit(&report)?;
        }
        Ok(())
    }

    /// A line typed on a terminal that starts with `/send `, `/accept` or `/decline`:
    /// the file commands of the line interface (from a pipe every line is a message).
    /// Returns whether it was one.
    fn file_command(&mut self, text: &str) -> io::Result<bool> {
        if !self.output.interactive {
            return Ok(false);
        }
        let (command, arg) = text.split_once(' ').unwrap_or((text, ""));
        let arg = arg.trim();
        let number = || arg.parse::<u64>().ok();
        let result = match command {
            "/send" if !arg.is_empty() => self
                .net
                .offer_files(&[std::path::PathBuf::from(arg)])
                .map_err(|e| e.to_string()),
            "/accept" => self.net.accept_file(number()),
            "/decline" => self.net.decline_file(number()),
            _ => return Ok(false),
        };
        if let Err(message) = result {
            self.emit(&Report::Error {
                message,
                text: None,
            })?;
        }
        Ok(true)
    }

    /// Tells the peer our nickname, if we have one; a refusal (too long) is said once.
    fn announce_nick(&mut self) -> io::Result<()> {
        let Some(nick) = self.own_nick.clone() else {
            return Ok(());
        };
        if let Err(e) = self.net.send_nick(Instant::now(), nick) {
            // Too long is for good; a full queue (after a peer restart) is not.
            if matches!(e, udpchat_proto::SendError::TooLong { .. }) {
                self.own_nick = None;
            }
            self.emit(&Report::Warning {
                message: format!("the nickname is not sent: {e}"),
            })?;
        }
        Ok(())
    }

    /// Reports a rejected datagram, unless too many were reported in the last second.
    fn report_rejected(
        &mut self,
        now: Instant,
        reason: &'static str,
        detail: String,
    ) -> io::Result<()> {
        let Some(unshown) = self.reject_budget.admit(now) else {
            return Ok(());
        };
        if unshown > 0 {
            self.emit(&Report::RejectedUnshown { count: unshown })?;
        }
        self.emit(&Report::Rejected { reason, detail })
    }

    /// Ctrl-C: every message not yet acknowledged is reported failed, with its text,
    /// and the peer is told we left (so it reports what we never confirmed).
    async fn interrupt(mut self) -> anyhow::Result<Finish> {
        self.output.hold(true);
        self.report_events()?;
        self.net.commit()?;
        self.output.hold(false);
        self.fail_pending(INTERRUPTED)?;
        self.net.stack.close(Instant::now());
        if let Some(message) = self.net.send_all().await {
            self.emit(&Report::Warning { message })?;
        }
        let totals = self.totals();
        self.emit_exit(totals)?;
        Ok(Finish::Interrupted(totals))
    }

    /// The contact was refused for good (the refusal was reported as it happened):
    /// nothing queued can be delivered, so each message is reported failed with its text.
    async fn end_refused(mut self) -> anyhow::Result<Finish> {
        // Lines typed before the refusal but not yet handed to the session are reported
        // too (nothing typed is dropped silently): what the reader thread has ready, and
        // what it reads within a moment, is queued and then failed with the rest.
        while self.stdin_open {
            match tokio::time::timeout(REFUSAL_READ, self.lines.recv()).await {
                Ok(Some(Input::Lines(lines))) => self.unread.extend(lines),
                _ => break,
            }
        }
        loop {
            let before = self.unread.len();
            self.queue_unread(Instant::now())?;
            self.fail_pending(REFUSED)?;
            if self.unread.is_empty() || self.unread.len() == before {
                break;
            }
        }
        let totals = self.totals();
        self.emit_exit(totals)?;
        Ok(Finish::Refused(totals))
    }

    fn fail_pending(&mut self, reason: &'static str) -> io::Result<()> {
        // With the store, what was not delivered is in the outbox: not lost, sent when
        // udpchat next runs with this peer.
        for (number, text) in self.net.outbox()? {
            if self.kept_reported.is_some_and(|last| number <= last) {
                continue;
            }
            self.kept_reported = Some(number);
            self.emit(&Report::Kept {
                number,
                text,
                reason,
            })?;
        }
        for (id, text) in self.net.take_pending() {
            self.interrupted += 1;
            self.emit(&Report::Failed {
                id: id.0,
                text,
                reason,
            })?;
        }
        Ok(())
    }

    fn emit_exit(&mut self, totals: Totals) -> io::Result<()> {
        // What the peer confirmed is written down before the run ends.
        self.net.commit_all()?;
        self.net.flush_trace();
        while let Some(message) = self.net.take_hint() {
            self.emit(&Report::Warning { message })?;
        }
        if self.output.stats && !self.output.json {
            self.emit(&Report::Stats(totals))?;
        }
        self.emit(&Report::Exit(totals))?;
        self.output.flush()
    }

    fn totals(&self) -> Totals {
        let s = self.net.stack.stats();
        let rtt = self.net.stack.rtt();
        // Microsecond resolution: what the clock can tell, without float noise.
        let ms = |d: Duration| (d.as_secs_f64() * 1e6).round() / 1e3;
        Totals {
            sent: s.messages_queued,
            delivered: s.messages_delivered,
            // A file the peer did not confirm counts as a message that failed.
            failed: (s.messages_failed + self.interrupted + self.net.files_failed())
                .saturating_sub(self.net.given_back()),
            refused: self.refused,
            received: s.messages_received,
            retransmissions: s.retransmissions,
            spurious_retransmissions: s.spurious_retransmissions,
            duplicates: s.duplicates + self.net.duplicates_across_runs(),
            rejected: self.net.rejected(),
            pending_handshakes: self.net.stack.pending_handshakes(),
            queued: self.net.queued(),
            srtt_ms: rtt.srtt().map(ms),
            rttvar_ms: rtt.srtt().map(|_| ms(rtt.rttvar())),
            rto_ms: ms(rtt.rto()),
            loss: (s.data_sent > 0).then(|| (s.loss_estimate() * 1e6).round() / 1e6),
        }
    }

    fn emit(&mut self, report: &Report) -> io::Result<()> {
        self.output
            .emit(report)
            .map_err(|e| io::Error::new(e.kind(), format!("cannot write to stdout: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn totals(failed: u64, refused: u64) -> Totals {
        Totals {
            failed,
            refused,
            ..Totals::default()
        }
    }

    #[test]
    fn exit_status_says_whether_everything_was_delivered() {
        assert_eq!(Finish::Completed(totals(0, 0)).exit_status(), 0);
        assert_eq!(Finish::Completed(totals(2, 0)).exit_status(), 1);
        assert_eq!(Finish::Completed(totals(0, 1)).exit_status(), 1);
        assert_eq!(Finish::Interrupted(totals(0, 0)).exit_status(), 130);
    }
}
