//! The full-screen chat's driver: owns the terminal, turns key presses, pastes, the
//! mouse wheel, resizes, datagrams, timers and a clock tick into messages for the
//! [`Chat`] model, and carries out the effects it returns against the session. The
//! model and the drawing live in `udpchat-tui`; this file is only plumbing.
//!
//! The terminal is restored on every way out: `/quit`, Ctrl-C (a key in raw mode), an
//! error, and a panic (ratatui's `init` installs a hook that restores it first).

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::time::{Duration, Instant};

use anyhow::Context;
use crossterm::event::{
    DisableBracketedPaste, DisableMouseCapture, EnableBracketedPaste, EnableMouseCapture,
    Event as TermEvent, EventStream, KeyEventKind, MouseEventKind,
};
use crossterm::execute;
use futures_util::StreamExt;
use udpchat_impair::ImpairConfig;
use udpchat_proto::{Event, MessageId};
use udpchat_stack::StackEvent;
use udpchat_tui::{render, Chat, Effect, Msg, Security, Status};

use crate::cli::Settings;
use crate::driver::Finish;
use crate::endpoint::{Endpoint, SecurityMode, RECV_BUFFER};
use crate::launch;
use crate::report::Report;
use crate::secret::Secret;

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
    /// The network side, once the peer is known.
    net: Option<Endpoint>,
    seed: u64,
    /// Texts of our messages not yet delivered or failed, printed on the way out so
    /// nothing typed is lost silently.
    pending: BTreeMap<MessageId, String>,
    /// The key, derived before the screen changed; `None` in clear text.
    secret: Option<Secret>,
    /// What the status bar says about protection.
    security: Option<Security>,
}

/// Runs the full-screen chat until the user leaves.
pub(crate) async fn run(settings: Settings, secret: Option<Secret>) -> anyhow::Result<Finish> {
    let nick = settings.nick.clone().unwrap_or_else(default_nick);
    let mut chat = match &settings.peer {
        Some(peer) => Chat::new(&nick, peer),
        None => Chat::asking_for_peer(&nick),
    };
    chat.no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    chat.update(Msg::Clock(clock()));
    let seed = settings.seed.unwrap_or_else(rand::random);
    let mut driver = TuiDriver {
        settings,
        chat,
        net: None,
        seed,
        pending: BTreeMap::new(),
        secret,
        security: None,
    };
    if let Some(peer) = driver.settings.peer.clone() {
        // A bad PEER on the command line is a usage error, before the screen changes.
        driver.connect(&peer)?;
    }

    let mut terminal = ratatui::init();
    let _ = execute!(io::stdout(), EnableMouseCapture, EnableBracketedPaste);
    let result = driver.run_loop(&mut terminal).await;
    let _ = execute!(io::stdout(), DisableMouseCapture, DisableBracketedPaste);
    ratatui::restore();
    let undelivered = driver.pending.len();
    if undelivered > 0 {
        let mut err = io::stderr().lock();
        let _ = writeln!(
            err,
            "udpchat: {undelivered} message(s) were not delivered before you left:"
        );
        for text in driver.pending.values() {
            let _ = writeln!(err, "  {text}");
        }
    }
    result.map(|()| Finish::Left { undelivered })
}

impl TuiDriver {
    /// Resolves and binds for `peer`, and starts the session.
    fn connect(&mut self, peer: &str) -> anyhow::Result<()> {
        let (socket, addr) = launch::open(&self.settings, peer)?;
        let (mut net, notices) = launch::endpoint(
            socket,
            addr,
            &self.settings,
            self.seed,
            self.secret.as_ref(),
        )?;
        let nick = self.chat.my_nick.clone();
        // The peer learns our nickname first thing, in order with what follows.
        let _ = net.stack.session_mut().send_nick(Instant::now(), nick);
        self.security = Some(match net.mode {
            SecurityMode::Plaintext => Security::Plaintext,
            SecurityMode::Passphrase | SecurityMode::CompareCode => Security::Handshaking,
        });
        self.net = Some(net);
        self.chat.update(Msg::Connected(addr.to_string()));
        for notice in notices {
            self.chat.update(Msg::Note(format!("warning: {notice}")));
        }
        Ok(())
    }

    async fn run_loop(&mut self, terminal: &mut ratatui::DefaultTerminal) -> anyhow::Result<()> {
        let mut events = EventStream::new();
        let mut tick = tokio::time::interval(TICK);
        let mut buf = vec![0u8; RECV_BUFFER];
        self.flush().await;
        loop {
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
                received = recv(self.net.as_ref(), &mut buf) => match received {
                    Ok((len, from)) => {
                        if let Some(net) = self.net.as_mut() {
                            // Rejections are counted, not shown: the screen is for the
                            // conversation, and a flood must not scroll it away.
                            net.on_datagram(Instant::now(), from, &buf[..len]);
                            if let Some(hint) = net.take_hint() {
                                self.chat.update(Msg::Note(format!("warning: {hint}")));
                            }
                        }
                    }
                    Err(e) => {
                        if let Some(net) = self.net.as_mut() {
                            net.on_recv_error(&e)?;
                        }
                    }
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
            self.flush().await;
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
                    let reply = match net.stack.session_mut().send(Instant::now(), text.clone()) {
                        Ok(id) => {
                            self.pending.insert(id, text);
                            Msg::Accepted { entry, id }
                        }
                        Err(e) => Msg::Refused {
                            entry,
                            reason: e.to_string(),
                        },
                    };
                    self.chat.update(reply);
                }
                Effect::SendNick(nick) => {
                    if let Some(net) = self.net.as_mut() {
                        if let Err(e) = net.stack.session_mut().send_nick(Instant::now(), nick) {
                            self.chat
                                .update(Msg::Note(format!("nickname not sent: {e}")));
                        }
                    }
                }
                Effect::SetDrop(p) => self.set_impairment(|c| c.data_loss = p),
                Effect::SetAckDrop(p) => self.set_impairment(|c| c.ack_loss = p),
                Effect::Connect(peer) => {
                    if let Err(e) = self.connect(&peer) {
                        self.chat.update(Msg::PeerError(format!("{e:#}")));
                    }
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
    async fn flush(&mut self) {
        let Some(net) = self.net.as_mut() else {
            return;
        };
        // Events first: a received message is in the model before its acknowledgement
        // leaves (see the line driver's flush).
        let mut events = Events {
            chat: &mut self.chat,
            pending: &mut self.pending,
            security: &mut self.security,
        };
        events.drain(net);
        if let Some(warning) = net.send_all().await {
            events.chat.update(Msg::Note(warning));
        }
        events.drain(net);
        let session = net.stack.session();
        let rtt = session.rtt();
        let impairment = net.impairment.config();
        let status = Status {
            peer: self.chat.status.peer.clone(),
            peer_state: session.peer_state(),
            srtt: rtt.srtt(),
            rttvar: rtt.rttvar(),
            rto: rtt.rto(),
            in_flight: session.in_flight(),
            stats: *session.stats(),
            sim_drop: impairment.data_loss,
            sim_ack_drop: impairment.ack_loss,
            security: self.security.clone(),
            max_text: session.max_text_len(),
        };
        self.chat.update(Msg::Status(status));
    }
}

/// Where the stack's events go: the model, the undelivered texts, the protection shown.
struct Events<'a> {
    chat: &'a mut Chat,
    pending: &'a mut BTreeMap<MessageId, String>,
    security: &'a mut Option<Security>,
}

impl Events<'_> {
    /// Hands the stack's events to the model, keeping track of what is undelivered and
    /// of the code to compare.
    fn drain(&mut self, net: &mut Endpoint) {
        let passphrase = net.mode == SecurityMode::Passphrase;
        while let Some(event) = net.stack.poll_event() {
            let event = match event {
                StackEvent::Secure(e) => {
                    self.on_secure(e, passphrase);
                    continue;
                }
                StackEvent::Session(e) => e,
            };
            if let Event::Delivered { id, .. } | Event::Failed { id, .. } = &event {
                self.pending.remove(id);
            }
            self.chat.update(Msg::Net(event));
        }
    }

    fn on_secure(&mut self, event: udpchat_secure::SecureEvent, passphrase: bool) {
        let Some(report) = Report::from_secure(event, passphrase) else {
            return;
        };
        match &report {
            Report::Encrypted {
                code: Some(code), ..
            }
            | Report::CompareAgain { code, .. } => {
                *self.security = Some(Security::Code(code.clone()));
            }
            Report::Encrypted { code: None, .. } => *self.security = Some(Security::Passphrase),
            _ => {}
        }
        if let Some((_, line)) = report.to_human(false) {
            let line = line.strip_prefix("udpchat: ").unwrap_or(&line).to_owned();
            self.chat.update(Msg::Note(line));
        }
    }
}

/// Receives on the endpoint's socket, or waits forever while there is none yet.
async fn recv(net: Option<&Endpoint>, buf: &mut [u8]) -> io::Result<(usize, std::net::SocketAddr)> {
    match net {
        Some(net) => net.socket.recv_from(buf).await,
        None => std::future::pending().await,
    }
}
