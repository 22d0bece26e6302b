//! The full-screen chat's driver: owns the terminal, turns key presses, pastes, the
//! mouse wheel, resizes, datagrams, timers and a clock tick into messages for the
//! [`Chat`] model, and carries out the effects it returns against the session. The
//! model and the drawing live in `udpchat-tui`; this file is only plumbing.
//!
//! The terminal is restored on every way out: `/quit`, Ctrl-C (a key in raw mode),
//! SIGTERM and SIGHUP, an error, and a panic (ratatui's `init` installs a hook that
//! restores it first).

use std::io::{self, Write};
use std::time::{Duration, Instant};

use anyhow::Context;
use crossterm::event::{
    DisableBracketedPaste, DisableFocusChange, DisableMouseCapture, EnableBracketedPaste,
    EnableFocusChange, EnableMouseCapture, Event as TermEvent, EventStream, KeyEventKind,
    MouseEventKind,
};
use crossterm::execute;
use futures_util::StreamExt;
use tokio::signal::unix::{signal, SignalKind};
use udpchat_files::transfers::TransferEvent;
use udpchat_impair::ImpairConfig;
use udpchat_secure::SecureEvent;
use udpchat_stack::StackEvent;
use udpchat_tui::{render, Chat, Effect, Gauge, Kept, Msg, Security, Status};

use crate::cli::Settings;
use crate::driver::Finish;
use crate::endpoint::{Endpoint, RecvBuffers, SecurityMode};
use crate::launch::{self, Prepared};
use crate::report::Report;

/// Saves the terminal's title on xterm's title stack (ignored where there is none).
const PUSH_TITLE: &str = "\x1b[22;0t";
/// Gives the saved title back.
const POP_TITLE: &str = "\x1b[23;0t";

/// How often the clock and the status figures are refreshed while nothing happens.
const TICK: Duration = Duration::from_secs(1);

/// The nickname when none is given: the login name, as talk and termchat do.
fn default_nick() -> String {
    ["USER", "USERNAME", "LOGNAME"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|s| !s.trim().is_empty()))
        .unwrap_or_else(|| "me".to_owned())
}

fn clock() -> String {
    chrono::Local::now().format("%H:%M").to_string()
}

/// Everything the running full-screen chat holds.
struct TuiDriver {
    settings: Settings,
    chat: Chat,
    /// The network side, once the peer is known (or the invitation is open).
    net: Option<Endpoint>,
    seed: u64,
    /// The key, identity and invitation, prepared before the screen changed.
    prepared: Prepared,
    /// What the status bar says about protection.
    security: Option<Security>,
    /// The file transfer the status bar shows, if one is under way.
    gauge: Option<Gauge>,
}

/// Runs the full-screen chat until the user leaves.
pub(crate) async fn run(settings: Settings, prepared: Prepared) -> anyhow::Result<Finish> {
    let nick = settings.nick.clone().unwrap_or_else(default_nick);
    let mut chat = match (&settings.peer, settings.invite) {
        (Some(peer), _) => Chat::new(&nick, peer),
        (None, true) => Chat::new(&nick, "waiting for a first contact"),
        (None, false) => Chat::asking_for_peer(&nick),
    };
    chat.no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    chat.bell = settings.bell;
    chat.update(Msg::Clock(clock()));
    let seed = settings.seed.unwrap_or_else(rand::random);
    let mut driver = TuiDriver {
        settings,
        chat,
        net: None,
        seed,
        prepared,
        security: None,
        gauge: None,
    };
    if let Some(peer) = driver.settings.peer.clone() {
        // A bad PEER on the command line is a usage error, before the screen changes.
        driver.connect(Some(&peer))?;
    } else if driver.settings.invite {
        driver.connect(None)?;
    }

    // SIGTERM and SIGHUP (a closed terminal window, `kill`) end the chat as /quit
    // does: the terminal restored, the peer told, what was not delivered printed.
    let mut terminate = signal(SignalKind::terminate()).context("cannot watch SIGTERM")?;
    let mut hangup = signal(SignalKind::hangup()).context("cannot watch SIGHUP")?;
    let mut terminal = ratatui::init();
    // The mouse stays the terminal's (selection works as usual) until `/mouse`. Focus
    // reports tell when the reader is in another window (for the bell and the title);
    // the terminal's own title is saved first (xterm's title stack) and given back.
    let _ = execute!(io::stdout(), EnableBracketedPaste, EnableFocusChange);
    let _ = write!(io::stdout(), "{PUSH_TITLE}");
    // A panic undoes these too, before ratatui's hook restores the screen.
    let restore_screen = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        release_terminal();
        restore_screen(info);
    }));
    // The model lays out the screen by its size: the real one from the first frame.
    if let Ok(size) = terminal.size() {
        driver.chat.update(Msg::Resize {
            width: size.width,
            height: size.height,
        });
    }
    let result = tokio::select! {
        result = driver.run_loop(&mut terminal) => result,
        _ = terminate.recv() => Ok(()),
        _ = hangup.recv() => Ok(()),
    };
    if let Some(net) = driver.net.as_mut() {
        // Tell the peer we left, with an acknowledgement of everything shown, so it
        // reports what we never confirmed instead of retrying for a minute.
        net.stack.close(Instant::now());
        let _ = net.send_all().await;
        net.flush_trace();
    }
    release_terminal();
    ratatui::restore();
    let pending = driver
        .net
        .as_mut()
        .map(Endpoint::take_pending)
        .unwrap_or_default();
    // With the store, what was not delivered waits in the outbox: said, not lost.
    let outbox = match driver.net.as_mut() {
        Some(net) => net.outbox().unwrap_or_default(),
        None => Vec::new(),
    };
    if !outbox.is_empty() {
        let mut err = io::stderr().lock();
        let _ = writeln!(
            err,
            "udpchat: {} message(s) wait in the outbox; they go first the next time you chat with this peer (udpchat outbox lists them):",
            outbox.len()
        );
        for (_, text) in &outbox {
            let _ = writeln!(err, "  {text}");
        }
    }
    let undelivered = pending.len();
    if undelivered > 0 {
        let mut err = io::stderr().lock();
        let _ = writeln!(
            err,
            "udpchat: {undelivered} message(s) were not delivered before you left:"
        );
        for text in pending.values() {
            let _ = writeln!(err, "  {text}");
        }
    }
    result.map(|()| Finish::Left { undelivered })
}

impl TuiDriver {
    /// Resolves and binds for `peer` (or, for an invitation, just binds), and starts the
    /// session.
    fn connect(&mut self, peer: Option<&str>) -> anyhow::Result<()> {
        let peer =
            peer.map(|p| launch::alias_to_address(self.prepared.contacts.as_ref(), p.to_owned()));
        let (socket, addr) = launch::open(&self.settings, peer.as_deref())?;
        let contacts = match self.prepared.contacts.take() {
            Some(c) => Some(c),
            None if self.prepared.secret.is_some() => Some(crate::contacts::Contacts::open(
                self.settings.home.as_deref(),
                self.settings.ephemeral,
            )?),
            None => None,
        };
        // The conversation's store, opened (and locked) before anything is sent.
        let journal = launch::open_journal(
            &mut self.settings,
            contacts.as_ref(),
            addr,
            Some(self.chat.my_nick.clone()),
        )?;
        let (net, notices) = launch::endpoint(
            socket,
            addr,
            &self.settings,
            self.seed,
            self.prepared.secret.as_ref(),
            contacts,
        )?;
        let mut net = match journal {
            Some(journal) => net.with_journal(journal),
            None => net,
        };
        // For /trace: the last datagrams (a person's chat sends few; the copies cost
        // nothing that matters).
        net.keep_recent_trace(Instant::now());
        // The peer's last nickname, and the end of the kept conversation above this
        // run's.
        if let Some(nick) = net.peer_nick() {
            self.chat.peer_nick = nick;
        }
        let earlier: Vec<Kept> = net.recent(EARLIER).iter().map(kept).collect();
        self.chat.update(Msg::Earlier(earlier));
        let nick = self.chat.my_nick.clone();
        // The peer learns our nickname first thing, in order with what follows.
        let _ = net.send_nick(Instant::now(), nick);
        self.security = Some(match net.mode {
            SecurityMode::Plaintext => Security::Plaintext,
            SecurityMode::Passphrase | SecurityMode::Encrypted => Security::Handshaking,
        });
        let local = net.socket.local_addr().ok();
        self.chat.echo = matches!((local, addr), (Some(l), Some(a)) if launch::is_self(l, a));
        self.net = Some(net);
        let label = addr.map_or("waiting for a first contact".to_owned(), |a| a.to_string());
        self.chat.update(Msg::Connected(label));
        for notice in notices {
            self.chat.update(Msg::Note(format!("warning: {notice}")));
        }
        if let Some(invitation) = self.prepared.invitation.take() {
            if let Some(line) = launch::with_address(invitation, local).sentence(false) {
                self.chat.update(Msg::Note(line));
            }
        }
        Ok(())
    }

    async fn run_loop(&mut self, terminal: &mut ratatui::DefaultTerminal) -> anyhow::Result<()> {
        let mut events = EventStream::new();
        let mut tick = tokio::time::interval(TICK);
        let mut buffers = RecvBuffers::new();
        self.flush().await?;
        loop {
            let outside = self.chat.take_terminal_effects();
            self.apply(outside);
            terminal
                .draw(|frame| render(&self.chat, frame))
                .context("cannot draw the screen")?;
            if self.chat.quit {
                return Ok(());
            }
            let deadline = self.net.as_ref().and_then(Endpoint::next_deadline);
            let wake = tokio::time::Instant::from_std(deadline.unwrap_or_else(Instant::now));
            tokio::select! {
                event = events.next() => match event {
                    Some(Ok(event)) => self.on_terminal(event),
                    Some(Err(e)) => return Err(e).context("cannot read the terminal"),
                    None => return Ok(()),
                },
                readable = readable(self.net.as_ref()) => match (readable, self.net.as_mut()) {
                    (Ok(()), Some(net)) => {
                        // Rejections are counted, not shown: the screen is for the
                        // conversation, and a flood must not scroll it away.
                        net.receive_ready(Instant::now(), &mut buffers)?;
                    }
                    (Err(e), Some(net)) => net.on_recv_error(&e)?,
                    (_, None) => {}
                },
                () = tokio::time::sleep_until(wake), if deadline.is_some() => {
                    if let Some(net) = self.net.as_mut() {
                        net.on_timer(Instant::now());
                    }
                }
                _ = tick.tick() => {
                    self.chat.update(Msg::Clock(clock()));
                }
            }
            self.flush().await?;
        }
    }

    fn on_terminal(&mut self, event: TermEvent) {
        let msg = match event {
            TermEvent::Key(key) if key.kind != KeyEventKind::Release => Msg::Key(key),
            TermEvent::Paste(text) => Msg::Paste(text),
            TermEvent::Mouse(m) => match m.kind {
                MouseEventKind::ScrollUp => Msg::Wheel(1),
                MouseEventKind::ScrollDown => Msg::Wheel(-1),
                _ => return,
            },
            TermEvent::Resize(width, height) => Msg::Resize { width, height },
            TermEvent::FocusGained => Msg::Focus(true),
            TermEvent::FocusLost => Msg::Focus(false),
            _ => return,
        };
        let effects = self.chat.update(msg);
        self.apply(effects);
    }

    fn apply(&mut self, effects: Vec<Effect>) {
        for effect in effects {
            match effect {
                Effect::Send { entry, text } => {
                    let Some(net) = self.net.as_mut() else {
                        continue;
                    };
                    match net.send_tracked(Instant::now(), text) {
                        Ok(tracked) => {
                            if let Some(number) = tracked.number {
                                self.chat.update(Msg::Numbered { entry, number });
                            }
                            match (tracked.id, tracked.number) {
                                (Some(id), _) => {
                                    self.chat.update(Msg::Accepted { entry, id });
                                }
                                // Older messages wait for the peer: this one waits too.
                                (None, Some(number)) => {
                                    self.chat.update(Msg::KeptInOutbox { number });
                                }
                                (None, None) => {}
                            }
                        }
                        Err((e, _)) => {
                            self.chat.update(Msg::Refused {
                                entry,
                                reason: e.to_string(),
                            });
                        }
                    }
                }
                Effect::LoadOlder { before } => {
                    let older = self
                        .net
                        .as_ref()
                        .map(|net| net.older(before, EARLIER))
                        .unwrap_or_default();
                    self.chat
                        .update(Msg::Older(older.iter().map(kept).collect()));
                }
                Effect::Find(query) => {
                    let Some(net) = self.net.as_ref() else {
                        continue;
                    };
                    match net.search(&query) {
                        Ok(found) => {
                            let matches = found.iter().map(kept).collect();
                            self.chat.update(Msg::Found { query, matches });
                        }
                        Err(e) => {
                            self.chat.update(Msg::Note(format!("/find: {e}")));
                        }
                    }
                }
                Effect::SendNick(nick) => {
                    if let Some(net) = self.net.as_mut() {
                        if let Err(e) = net.send_nick(Instant::now(), nick) {
                            self.chat
                                .update(Msg::Note(format!("nickname not sent: {e}")));
                        }
                    }
                }
                Effect::SetDrop(p) => self.set_impairment(|c| c.data_loss = p),
                Effect::SetAckDrop(p) => self.set_impairment(|c| c.ack_loss = p),
                Effect::Connect(peer) => {
                    if let Err(e) = self.connect(Some(&peer)) {
                        self.chat.update(Msg::PeerError(format!("{e:#}")));
                    }
                }
                Effect::SetMouse(on) => {
                    let _ = if on {
                        execute!(io::stdout(), EnableMouseCapture)
                    } else {
                        execute!(io::stdout(), DisableMouseCapture)
                    };
                }
                Effect::SendFile(path) => {
                    let result = match self.net.as_mut() {
                        Some(net) => net
                            .offer_files(&[expand_home(&path)])
                            .map_err(|e| e.to_string()),
                        None => Err("no chat yet".to_owned()),
                    };
                    if let Err(e) = result {
                        self.chat.update(Msg::Note(format!("error: {e}")));
                    }
                }
                Effect::AcceptFile(n) => {
                    let result = self
                        .net
                        .as_mut()
                        .ok_or_else(|| "no chat yet".to_owned())
                        .and_then(|net| net.accept_file(n));
                    if let Err(e) = result {
                        self.chat.update(Msg::Note(format!("error: {e}")));
                    }
                }
                Effect::DeclineFile(n) => {
                    let result = self
                        .net
                        .as_mut()
                        .ok_or_else(|| "no chat yet".to_owned())
                        .and_then(|net| net.decline_file(n));
                    if let Err(e) = result {
                        self.chat.update(Msg::Note(format!("error: {e}")));
                    }
                }
                Effect::ShowTrace { width } => {
                    let trace = self.net.as_ref().and_then(Endpoint::recent_trace);
                    let lines = match trace {
                        Some(trace) if !trace.events.is_empty() => {
                            let options = udpchat_lab::TextOptions {
                                width: usize::from(width),
                                max_rows: Some(40),
                                arrivals: false,
                            };
                            let mut lines = vec![
                                "/trace: the last datagrams as seen from here (the peer's side half a round trip away; A is you)".to_owned(),
                            ];
                            lines.extend(
                                udpchat_lab::render_text_with(&trace, &options)
                                    .lines()
                                    .map(str::to_owned),
                            );
                            lines
                        }
                        _ => vec!["/trace: no datagrams yet".to_owned()],
                    };
                    self.chat.update(Msg::Diagram(lines));
                }
                Effect::Bell => {
                    let mut out = io::stdout();
                    let _ = out.write_all(b"\x07").and_then(|()| out.flush());
                }
                Effect::Title(title) => {
                    let _ = execute!(io::stdout(), crossterm::terminal::SetTitle(title));
                }
                Effect::Quit => {}
            }
        }
    }

    fn set_impairment(&mut self, change: impl FnOnce(&mut ImpairConfig)) {
        if let Some(net) = self.net.as_mut() {
            let mut config = net.impairment.config().clone();
            change(&mut config);
            net.impairment.set_config(config);
        }
    }

    /// Sends what the session has queued, shows what it reports, refreshes the status.
    ///
    /// # Errors
    /// The store cannot be written (the disk is full...): the chat cannot keep its
    /// promises and ends.
    async fn flush(&mut self) -> anyhow::Result<()> {
        let Some(net) = self.net.as_mut() else {
            return Ok(());
        };
        // Events first, then the store: a received message is in the model and on disk
        // before its acknowledgement leaves, and a typed one on disk before it is sent
        // (see the line driver's flush).
        drain(net, &mut self.chat, &mut self.security, &mut self.gauge);
        net.commit()?;
        if let Some(warning) = net.send_all().await {
            self.chat.update(Msg::Note(warning));
        }
        drain(net, &mut self.chat, &mut self.security, &mut self.gauge);
        let stack = &net.stack;
        let rtt = stack.rtt();
        let impairment = net.impairment.config();
        let status = Status {
            peer: self.chat.status.peer.clone(),
            peer_state: stack.peer_state(),
            srtt: rtt.srtt(),
            rttvar: rtt.rttvar(),
            rto: rtt.rto(),
            in_flight: stack.in_flight(),
            stats: *stack.stats(),
            sim_drop: impairment.data_loss,
            sim_ack_drop: impairment.ack_loss,
            security: self.security.clone(),
            // A longer message travels in parts (PROTOCOL.md §3, kind 4).
            max_text: stack.max_message_len(),
            transfer: self.gauge.clone(),
        };
        self.chat.update(Msg::Status(Box::new(status)));
        Ok(())
    }
}

/// Hands the endpoint's events to the model: the protocol's as they are, the encryption
/// layer's as the status bar's protection and a note in the line interface's words.
fn drain(
    net: &mut Endpoint,
    chat: &mut Chat,
    security: &mut Option<Security>,
    gauge: &mut Option<Gauge>,
) {
    while let Some(event) = net.poll_event() {
        let event = match event {
            StackEvent::Secure(e) => {
                match &e {
                    SecureEvent::Established {
                        peer_key,
                        verified,
                        new_contact,
                        ..
                    } => {
                        let how = match (verified.code(), new_contact) {
                            (_, true) => "new contact",
                            ("own_key", _) => "own key",
                            (other, _) => other,
                        };
                        *security = Some(Security::Verified {
                            how: how.to_owned(),
                            key: peer_key.fingerprint().short(),
                        });
                    }
                    SecureEvent::Refused { fatal: true, .. }
                    | SecureEvent::RefusedByPeer { .. } => {
                        *security = Some(Security::Refused);
                    }
                    _ => {}
                }
                if let Some(line) = Report::from_secure(e).and_then(|r| r.sentence(false)) {
                    chat.update(Msg::Note(line));
                }
                continue;
            }
            StackEvent::Session(e) => e,
        };
        if matches!(event, udpchat_proto::Event::PeerRestarted { .. }) {
            // The peer's new run has not heard our nickname: it goes to it after the
            // messages sent to that run again (they show under the old name there).
            let _ = net.send_nick(Instant::now(), chat.my_nick.clone());
        }
        chat.update(Msg::Net(event));
    }
    while let Some(hint) = net.take_hint() {
        chat.update(Msg::Note(format!("warning: {hint}")));
    }
    while let Some(report) = net.take_kept() {
        if let Report::Kept { number, .. } = report {
            chat.update(Msg::KeptInOutbox { number });
        }
    }
    for (id, number) in net.take_released() {
        chat.update(Msg::InSession { number, id });
    }
    while let Some(report) = net.take_file_report() {
        match &report {
            Report::File(TransferEvent::FileProgress {
                direction,
                name,
                done,
                size,
                rate,
                ..
            }) => {
                *gauge = Some(Gauge {
                    outgoing: *direction == udpchat_files::transfers::OUT,
                    name: name.clone(),
                    done: *done,
                    size: *size,
                    rate: *rate,
                });
                continue;
            }
            Report::File(TransferEvent::FileDone { .. } | TransferEvent::FileFailed { .. }) => {
                *gauge = None;
            }
            _ => {}
        }
        if let Some(line) = report.sentence(false) {
            chat.update(Msg::Note(line));
        }
    }
}

/// A path typed after `/send`: `~/` is the home directory, as in a shell.
fn expand_home(path: &str) -> std::path::PathBuf {
    match (path.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => std::path::PathBuf::from(home).join(rest),
        _ => std::path::PathBuf::from(path),
    }
}

/// Gives back what the chat asked of the terminal besides the screen: mouse, paste and
/// focus reports, and the title.
fn release_terminal() {
    let mut out = io::stdout();
    let _ = execute!(
        out,
        DisableMouseCapture,
        DisableBracketedPaste,
        DisableFocusChange
    );
    let _ = write!(out, "{POP_TITLE}");
    let _ = out.flush();
}

/// Messages of the kept conversation shown when the chat opens.
const EARLIER: usize = 50;

/// A message of the store as the model shows it.
fn kept(m: &udpchat_store::Message) -> Kept {
    let at = std::time::UNIX_EPOCH + Duration::from_millis(u64::try_from(m.at_ms).unwrap_or(0));
    let local: chrono::DateTime<chrono::Local> = at.into();
    Kept {
        time: local.format("%m-%d %H:%M").to_string(),
        ours: m.outgoing,
        nick: m.nick.clone(),
        text: m.text.clone(),
        queued: m.state == udpchat_store::State::Queued,
        number: m.stable.filter(|_| m.outgoing).map(|s| s.number),
        row: m.row,
    }
}

/// Waits until the endpoint's socket has something to read (GSO/GRO trains included:
/// [`Endpoint::try_recv_batch`] takes them apart), or forever while there is no socket.
async fn readable(net: Option<&Endpoint>) -> io::Result<()> {
    match net {
        Some(net) => net.socket.readable().await,
        None => std::future::pending().await,
    }
}
