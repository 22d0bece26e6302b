//! The model and its update function (the Elm architecture): every input becomes a
//! [`Msg`], [`Chat::update`] changes the state and returns [`Effect`]s for the driver to
//! carry out. Nothing here draws or does I/O, so all of it is tested on the state alone.

use std::time::Duration;

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use udpchat_proto::{Event, FailReason, MessageId, PeerState, Stats};

use crate::command::{self, Command};
use crate::conversation::{Author, Conversation, Delivery, EntryId};
use crate::input::InputLine;
use crate::layout;

/// What the status bar shows, refreshed by the driver from the session.
#[derive(Clone, Debug, PartialEq)]
pub struct Status {
    /// The peer's address as given.
    pub peer: String,
    /// Whether it answers.
    pub peer_state: PeerState,
    /// Smoothed round-trip time, once measured.
    pub srtt: Option<Duration>,
    /// Round-trip variation.
    pub rttvar: Duration,
    /// Current retransmission timeout.
    pub rto: Duration,
    /// Messages awaiting acknowledgement.
    pub in_flight: usize,
    /// The session's counters.
    pub stats: Stats,
    /// Simulated loss of received messages, if any.
    pub sim_drop: f64,
    /// Simulated loss of received acknowledgements, if any.
    pub sim_ack_drop: f64,
    /// How the conversation is protected; `None` before the driver has said.
    pub security: Option<Security>,
    /// The longest message this side sends, in bytes of UTF-8 (a longer one than a
    /// datagram holds goes in parts).
    pub max_text: usize,
    /// The file transfer under way, if any, for the gauge.
    pub transfer: Option<Gauge>,
}

/// A file transfer as the status bar shows it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Gauge {
    /// True for ours (sending), false for the peer's.
    pub outgoing: bool,
    /// The file's name.
    pub name: String,
    /// Bytes done.
    pub done: u64,
    /// Bytes in all.
    pub size: u64,
    /// Bytes per second lately.
    pub rate: f64,
}

/// How the conversation is protected, as the status bar shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Security {
    /// Encrypted; the handshake is not complete yet.
    Handshaking,
    /// Encrypted, and the peer's key is the right one.
    Verified {
        /// How it was verified: `pinned`, `new contact`, `passphrase`, `own key`.
        how: String,
        /// The first group of the peer key's fingerprint.
        key: String,
    },
    /// The contact was refused: no session.
    Refused,
    /// Clear text: anyone on the path can read and inject messages.
    Plaintext,
}

impl Default for Status {
    fn default() -> Self {
        Self {
            peer: String::new(),
            peer_state: PeerState::Connecting,
            srtt: None,
            rttvar: Duration::ZERO,
            rto: Duration::ZERO,
            in_flight: 0,
            stats: Stats::default(),
            sim_drop: 0.0,
            sim_ack_drop: 0.0,
            security: None,
            max_text: udpchat_proto::MAX_MESSAGE_LEN,
            transfer: None,
        }
    }
}

/// Which screen is up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mode {
    /// No peer was given: ask for it, as the original program did.
    AskPeer {
        /// Why the last answer did not work.
        error: Option<String>,
    },
    /// The conversation.
    Chat,
}

/// An input to the model.
#[derive(Clone, Debug)]
pub enum Msg {
    /// A key press.
    Key(KeyEvent),
    /// Pasted text.
    Paste(String),
    /// Mouse wheel: positive scrolls up (back in time).
    Wheel(i32),
    /// The terminal's size changed.
    Resize {
        /// Columns.
        width: u16,
        /// Rows.
        height: u16,
    },
    /// The time to stamp new entries with.
    Clock(String),
    /// The terminal gained (`true`) or lost the keyboard focus.
    Focus(bool),
    /// The lines of a diagram to show (after [`Effect::ShowTrace`]).
    Diagram(Vec<String>),
    /// Something the session reported.
    Net(Event),
    /// The session accepted the message shown by `entry`.
    Accepted {
        /// The entry.
        entry: EntryId,
        /// The session's id for it.
        id: MessageId,
    },
    /// The session refused the message shown by `entry`.
    Refused {
        /// The entry.
        entry: EntryId,
        /// Why.
        reason: String,
    },
    /// Fresh figures for the status bar.
    Status(Box<Status>),
    /// The peer address typed at the prompt could not be used.
    PeerError(String),
    /// The chat is open with this peer.
    Connected(String),
    /// A line from udpchat itself, such as a warning from the network.
    Note(String),
    /// The end of the kept conversation, oldest first, shown above everything at start.
    Earlier(Vec<Kept>),
    /// The message shown by `entry` was kept in the outbox under `number`.
    Numbered {
        /// The entry.
        entry: EntryId,
        /// Our number for it.
        number: u64,
    },
    /// Our message `number` went to the session as `id` (again, from the outbox).
    InSession {
        /// Our number for it.
        number: u64,
        /// The session's id.
        id: MessageId,
    },
    /// Our message `number` waits in the outbox for the peer.
    KeptInOutbox {
        /// Our number for it.
        number: u64,
    },
    /// Older messages of the kept conversation, oldest first, for the top of the
    /// scrollback (the answer to [`Effect::LoadOlder`]).
    Older(Vec<Kept>),
    /// What `/find` found in the kept conversation, oldest first.
    Found {
        /// What was looked for.
        query: String,
        /// The messages that contain it.
        matches: Vec<Kept>,
    },
}

/// A message of the kept conversation (the store of the data directory).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Kept {
    /// When it was written or received, as shown (e.g. `2026-12-01 14:03`).
    pub time: String,
    /// Ours or the peer's.
    pub ours: bool,
    /// The author's nickname then, if known.
    pub nick: Option<String>,
    /// What was said.
    pub text: String,
    /// Ours and still in the outbox: not delivered yet.
    pub queued: bool,
    /// Our number for it (ours only), so a later delivery can be shown on it.
    pub number: Option<u64>,
    /// Its place in the store: older messages are asked for below it.
    pub row: i64,
}

/// Something for the driver to do.
#[derive(Clone, Debug, PartialEq)]
pub enum Effect {
    /// Queue this text; answer with [`Msg::Accepted`] or [`Msg::Refused`].
    Send {
        /// The entry showing it.
        entry: EntryId,
        /// The text.
        text: String,
    },
    /// Tell the peer our new nickname.
    SendNick(String),
    /// Change simulated loss of received messages.
    SetDrop(f64),
    /// Change simulated loss of received acknowledgements.
    SetAckDrop(f64),
    /// Open the chat with the peer typed at the prompt.
    Connect(String),
    /// Search the kept conversation; answer with [`Msg::Found`].
    Find(String),
    /// Load the kept messages older than the store's row `before`; answer with
    /// [`Msg::Older`] (empty when there are none).
    LoadOlder {
        /// The row of the oldest message shown.
        before: i64,
    },
    /// Capture the mouse (the wheel scrolls) or release it (the terminal selects).
    SetMouse(bool),
    /// Ring the terminal's bell: a message arrived while the reader was away.
    Bell,
    /// Offer the file or directory at this path to the peer.
    SendFile(String),
    /// Take the peer's offer (this one, or the oldest waiting).
    AcceptFile(Option<u64>),
    /// Refuse the peer's offer (this one, or the oldest waiting).
    DeclineFile(Option<u64>),
    /// Show the last datagrams as a diagram; answer with [`Msg::Diagram`].
    ShowTrace {
        /// Columns the diagram may take.
        width: u16,
    },
    /// Set the terminal's (window or tab) title.
    Title(String),
    /// Leave.
    Quit,
}

/// The whole state of the full-screen chat.
#[derive(Clone, Debug)]
pub struct Chat {
    /// What has been said.
    pub conversation: Conversation,
    /// What is being typed.
    pub input: InputLine,
    /// The status bar's figures.
    pub status: Status,
    /// Our nickname.
    pub my_nick: String,
    /// The peer's nickname.
    pub peer_nick: String,
    /// The help is open.
    pub show_help: bool,
    /// The screen.
    pub mode: Mode,
    /// Time for new entries.
    pub clock: String,
    /// Our messages kept in the outbox, by number: the entries that show them.
    pub by_number: std::collections::HashMap<u64, EntryId>,
    /// The store's row of the oldest kept message shown, while older ones may exist.
    pub older_than: Option<i64>,
    /// Older messages were asked for and have not come yet.
    pub loading_older: bool,
    /// Set once the user asked to leave.
    pub quit: bool,
    /// Draw without colours (`NO_COLOR`).
    pub no_color: bool,
    /// Terminal size, for scrolling by pages.
    pub size: (u16, u16),
    /// The peer's state as the screen shows it: "unreachable" only once it has lasted
    /// [`UNREACHABLE_TICKS`] clock ticks, so a peer that restarts or drops one
    /// keepalive does not make the status bar flap.
    pub peer_state_shown: PeerState,
    /// Whether the mouse is captured: off at start, so selecting text to copy works as
    /// everywhere else in the terminal; `/mouse` turns the wheel on.
    pub mouse: bool,
    /// Clock ticks seen while the session says unreachable and the screen does not yet.
    unreachable_ticks: u8,
    /// A chat with ourselves (the same socket): what arrives is our own line coming
    /// back, shown from `echo` rather than under our own nickname twice.
    pub echo: bool,
    /// Whether the terminal has the focus (as far as it reports focus changes).
    pub focused: bool,
    /// Ring the bell when a message arrives while the reader is away (scrolled up or
    /// in another window); the title counts such messages either way.
    pub bell: bool,
    /// Messages from the peer since the reader was last at the bottom, in focus.
    pub unread: usize,
    /// The title last asked of the terminal.
    title: String,
    /// Bell and title changes not yet taken by the driver.
    terminal_effects: Vec<Effect>,
}

/// Clock ticks (one a second) an unreachable peer must stay so before the screen says it.
pub(crate) const UNREACHABLE_TICKS: u8 = 2;

impl Chat {
    /// A chat with a known peer.
    pub fn new(my_nick: &str, peer: &str) -> Self {
        Self {
            conversation: Conversation::default(),
            input: InputLine::default(),
            status: Status {
                peer: peer.to_owned(),
                ..Status::default()
            },
            my_nick: my_nick.to_owned(),
            peer_nick: "peer".to_owned(),
            show_help: false,
            mode: Mode::Chat,
            clock: String::new(),
            by_number: std::collections::HashMap::new(),
            older_than: None,
            loading_older: false,
            quit: false,
            no_color: false,
            size: (80, 24),
            peer_state_shown: PeerState::Connecting,
            unreachable_ticks: 0,
            mouse: false,
            focused: true,
            bell: true,
            unread: 0,
            title: String::new(),
            terminal_effects: Vec::new(),
            echo: false,
        }
    }

    /// A chat that first asks for the peer's address.
    pub fn asking_for_peer(my_nick: &str) -> Self {
        Self {
            mode: Mode::AskPeer { error: None },
            ..Self::new(my_nick, "")
        }
    }

    /// Applies one input and returns what the driver must do about it. What concerns
    /// the terminal around the chat (the bell, the title) waits in
    /// [`take_terminal_effects`](Self::take_terminal_effects), whatever input caused it.
    pub fn update(&mut self, msg: Msg) -> Vec<Effect> {
        let unread = self.unread;
        let effects = self.apply(msg);
        // One bell per turn, however many lines a paste of the peer's brought.
        if self.unread > unread && self.bell && !self.terminal_effects.contains(&Effect::Bell) {
            self.terminal_effects.push(Effect::Bell);
        }
        // Back at the bottom with the focus: everything has been seen.
        if self.focused && self.conversation.scroll == 0 {
            self.unread = 0;
        }
        let title = self.title_text();
        if title != self.title {
            self.title.clone_from(&title);
            self.terminal_effects
                .retain(|e| !matches!(e, Effect::Title(_)));
            self.terminal_effects.push(Effect::Title(title));
        }
        effects
    }

    /// The bell and title changes since the last call, for the driver to carry out
    /// once per turn of its loop.
    pub fn take_terminal_effects(&mut self) -> Vec<Effect> {
        std::mem::take(&mut self.terminal_effects)
    }

    /// The terminal's title: whom we talk to, and how many messages wait unseen.
    pub fn title_text(&self) -> String {
        let who = if self.echo { "echo" } else { &self.peer_nick };
        match self.unread {
            0 => format!("udpchat — {who}"),
            n => format!("({n}) udpchat — {who}"),
        }
    }

    fn apply(&mut self, msg: Msg) -> Vec<Effect> {
        match msg {
            Msg::Key(key) => self.on_key(key),
            Msg::Paste(text) => {
                self.input.insert(&text);
                Vec::new()
            }
            Msg::Wheel(rows) => {
                self.scroll(rows.saturating_mul(3));
                if rows > 0 {
                    self.older_if_at_top()
                } else {
                    Vec::new()
                }
            }
            Msg::Resize { width, height } => {
                self.size = (width, height);
                self.conversation.width = usize::from(width);
                let max = self.max_scroll();
                self.conversation.scroll = self.conversation.scroll.min(max);
                Vec::new()
            }
            Msg::Focus(focused) => {
                self.focused = focused;
                Vec::new()
            }
            Msg::Diagram(lines) => {
                self.conversation.scroll_down(usize::MAX);
                for line in lines {
                    self.note(&line);
                }
                Vec::new()
            }
            Msg::Clock(clock) => {
                self.clock = clock;
                if self.status.peer_state == PeerState::Unreachable
                    && self.peer_state_shown != PeerState::Unreachable
                {
                    self.unreachable_ticks = self.unreachable_ticks.saturating_add(1);
                    if self.unreachable_ticks >= UNREACHABLE_TICKS {
                        self.peer_state_shown = PeerState::Unreachable;
                        self.note(&format!("{} is unreachable", self.peer_nick));
                    }
                }
                Vec::new()
            }
            Msg::Net(event) => {
                self.on_net(event);
                Vec::new()
            }
            Msg::Accepted { entry, id } => {
                self.conversation.link(id, entry);
                Vec::new()
            }
            Msg::Refused { entry, reason } => {
                if let Some(e) = self.conversation.get_mut(entry) {
                    e.delivery = Some(Delivery::Failed { reason });
                }
                Vec::new()
            }
            Msg::Status(status) => {
                let state = status.peer_state;
                self.status = *status;
                self.observe_peer_state(state);
                Vec::new()
            }
            Msg::PeerError(error) => {
                self.mode = Mode::AskPeer { error: Some(error) };
                Vec::new()
            }
            Msg::Note(text) => {
                self.note(&text);
                Vec::new()
            }
            Msg::Numbered { entry, number } => {
                self.by_number.insert(number, entry);
                Vec::new()
            }
            Msg::InSession { number, id } => {
                if let Some(&entry) = self.by_number.get(&number) {
                    self.conversation.link(id, entry);
                    if let Some(e) = self.conversation.get_mut(entry) {
                        e.delivery = Some(Delivery::Sending);
                    }
                }
                Vec::new()
            }
            Msg::KeptInOutbox { number } => {
                if let Some(&entry) = self.by_number.get(&number) {
                    if let Some(e) = self.conversation.get_mut(entry) {
                        e.delivery = Some(Delivery::Kept);
                    }
                }
                Vec::new()
            }
            Msg::Earlier(kept) => {
                self.older_than = kept.first().map(|k| k.row);
                self.show_earlier(&kept);
                Vec::new()
            }
            Msg::Older(kept) => {
                self.loading_older = false;
                self.older_than = kept.first().map(|k| k.row);
                let older = kept
                    .iter()
                    .map(|m| {
                        let author = if m.ours { Author::Me } else { Author::Peer };
                        (
                            m.time.clone(),
                            author,
                            self.kept_nick(m),
                            m.text.clone(),
                            m.ours.then_some(if m.queued {
                                Delivery::Kept
                            } else {
                                Delivery::DeliveredEarlier
                            }),
                        )
                    })
                    .collect();
                let ids = self.conversation.prepend(older);
                // Entries that did not fit the scrollback have no handle; the rest pair
                // up with the newest of `kept`.
                let offset = kept.len() - ids.len();
                for (m, id) in kept[offset..].iter().zip(ids) {
                    if let (true, Some(number)) = (m.queued, m.number) {
                        self.by_number.insert(number, id);
                    }
                }
                Vec::new()
            }
            Msg::Found { query, matches } => {
                if matches.is_empty() {
                    self.note(&format!("/find {query}: nothing in the kept conversation"));
                } else {
                    self.note(&format!(
                        "/find {query}: {} message{} in the kept conversation:",
                        matches.len(),
                        if matches.len() == 1 { "" } else { "s" }
                    ));
                    for m in &matches {
                        let who = self.kept_nick(m);
                        self.note(&format!("  {} {who}: {}", m.time, m.text));
                    }
                }
                Vec::new()
            }
            Msg::Connected(peer) => {
                self.mode = Mode::Chat;
                self.status.peer = peer.clone();
                let clock = self.clock.clone();
                self.conversation
                    .system(&clock, &format!("chatting with {peer}; /help for commands"));
                Vec::new()
            }
        }
    }

    /// The nickname a kept message is shown under.
    fn kept_nick(&self, m: &Kept) -> String {
        match (&m.nick, m.ours) {
            (Some(nick), _) => nick.clone(),
            (None, true) => self.my_nick.clone(),
            (None, false) => self.peer_nick.clone(),
        }
    }

    /// The end of the kept conversation, above what this run adds.
    fn show_earlier(&mut self, kept: &[Kept]) {
        if kept.is_empty() {
            return;
        }
        for m in kept {
            let author = if m.ours { Author::Me } else { Author::Peer };
            let nick = self.kept_nick(m);
            let id = self.conversation.push(&m.time, author, &nick, &m.text);
            if let (true, Some(number)) = (m.queued, m.number) {
                self.by_number.insert(number, id);
            }
            if let Some(e) = self.conversation.get_mut(id) {
                if m.ours {
                    e.delivery = Some(if m.queued {
                        Delivery::Kept
                    } else {
                        Delivery::DeliveredEarlier
                    });
                }
            }
        }
        let clock = self.clock.clone();
        self.conversation.system(
            &clock,
            &format!(
                "above: {} earlier message{} (/find searches them all)",
                kept.len(),
                if kept.len() == 1 { "" } else { "s" }
            ),
        );
    }

    fn on_key(&mut self, key: KeyEvent) -> Vec<Effect> {
        if key.kind == KeyEventKind::Release {
            return Vec::new();
        }
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        let alt = key.modifiers.contains(KeyModifiers::ALT);
        match key.code {
            KeyCode::Char('c') | KeyCode::Char('d') if ctrl => return self.quit(),
            KeyCode::Enter => return self.on_enter(),
            KeyCode::Esc => self.show_help = false,
            KeyCode::Char('a') if ctrl => self.input.home(),
            KeyCode::Char('e') if ctrl => self.input.end(),
            KeyCode::Char('w') if ctrl => self.input.delete_word_before(),
            KeyCode::Char('u') if ctrl => self.input.delete_to_start(),
            KeyCode::Char('l') if ctrl => {}
            KeyCode::Backspace if alt || ctrl => self.input.delete_word_before(),
            KeyCode::Char(c) if !ctrl => self.input.insert(c.encode_utf8(&mut [0; 4])),
            KeyCode::Backspace => self.input.backspace(),
            KeyCode::Delete => self.input.delete(),
            KeyCode::Left if ctrl || alt => self.input.word_left(),
            KeyCode::Right if ctrl || alt => self.input.word_right(),
            KeyCode::Left => self.input.left(),
            KeyCode::Right => self.input.right(),
            KeyCode::Up => self.input.history_up(),
            KeyCode::Down => self.input.history_down(),
            KeyCode::PageUp => {
                self.scroll(i32::from(self.page_rows()));
                return self.older_if_at_top();
            }
            KeyCode::PageDown => self.scroll(-i32::from(self.page_rows())),
            KeyCode::Home => {
                self.conversation.scroll_up(usize::MAX, self.max_scroll());
                return self.older_if_at_top();
            }
            KeyCode::End => self.conversation.scroll_down(usize::MAX),
            _ => {}
        }
        Vec::new()
    }

    /// At the top of the scrollback, asks once for older kept messages, if any may be.
    fn older_if_at_top(&mut self) -> Vec<Effect> {
        let at_top = self.conversation.scroll >= self.max_scroll();
        match self.older_than {
            Some(before) if at_top && !self.loading_older => {
                self.loading_older = true;
                vec![Effect::LoadOlder { before }]
            }
            _ => Vec::new(),
        }
    }

    fn quit(&mut self) -> Vec<Effect> {
        self.quit = true;
        vec![Effect::Quit]
    }

    /// Rows of the conversation pane: the screen less the status bar and input line.
    fn page_rows(&self) -> u16 {
        self.size.1.saturating_sub(3).max(1)
    }

    fn max_scroll(&self) -> usize {
        let rows = layout::rows(self, usize::from(self.size.0)).len();
        rows.saturating_sub(usize::from(self.page_rows()))
    }

    fn scroll(&mut self, rows: i32) {
        let amount = usize::try_from(rows.unsigned_abs()).unwrap_or(usize::MAX);
        if rows > 0 {
            let max = self.max_scroll();
            self.conversation.scroll_up(amount, max);
        } else {
            self.conversation.scroll_down(amount);
        }
    }

    fn note(&mut self, text: &str) {
        let clock = self.clock.clone();
        self.conversation.system(&clock, text);
    }

    fn on_enter(&mut self) -> Vec<Effect> {
        if let Mode::AskPeer { .. } = self.mode {
            let peer = self.input.take();
            return if peer.trim().is_empty() {
                Vec::new()
            } else {
                vec![Effect::Connect(peer.trim().to_owned())]
            };
        }
        let line = self.input.text().to_owned();
        if line.trim().is_empty() {
            return Vec::new();
        }
        if line.contains('\n') {
            return self.send_paste();
        }
        if let Some(parsed) = command::parse(&line) {
            self.input.take();
            return match parsed {
                Ok(cmd) => self.run(cmd),
                Err(hint) => {
                    self.note(&hint);
                    Vec::new()
                }
            };
        }
        let text = command::unescape(&line).to_owned();
        let max = self.status.max_text;
        if text.len() > max {
            // Keep the text in the input so nothing typed is lost.
            self.note(&format!(
                "message too long: {} bytes, the limit is {max}; shorten it and press Enter",
                text.len()
            ));
            return Vec::new();
        }
        self.input.take();
        self.conversation.scroll_down(usize::MAX);
        let clock = self.clock.clone();
        let nick = self.my_nick.clone();
        let entry = self.conversation.push(&clock, Author::Me, &nick, &text);
        vec![Effect::Send { entry, text }]
    }

    /// The session's view of the peer, shown at once except "unreachable", which waits
    /// for the clock (see [`Chat::peer_state_shown`]).
    fn observe_peer_state(&mut self, state: PeerState) {
        self.status.peer_state = state;
        if state == PeerState::Unreachable {
            return;
        }
        self.unreachable_ticks = 0;
        let was = std::mem::replace(&mut self.peer_state_shown, state);
        if was == PeerState::Unreachable && state == PeerState::Online {
            self.note(&format!("{} is back online", self.peer_nick));
        }
    }

    /// A multi-line paste goes as one message, its line breaks kept (a log or a code
    /// block stays whole and in one piece on the other side); blank lines before and
    /// after it are dropped, and a line starting with `/` is text, not a command. If it
    /// is too long nothing is sent and it stays in the input to be shortened.
    fn send_paste(&mut self) -> Vec<Effect> {
        let max = self.status.max_text;
        let text = trim_blank_lines(self.input.text()).to_owned();
        if text.len() > max {
            self.note(&format!(
                "paste too long: {} bytes, the limit is {max}; shorten it and press Enter",
                text.len()
            ));
            return Vec::new();
        }
        self.input.take();
        self.conversation.scroll_down(usize::MAX);
        let clock = self.clock.clone();
        let nick = self.my_nick.clone();
        let entry = self.conversation.push(&clock, Author::Me, &nick, &text);
        vec![Effect::Send { entry, text }]
    }

    fn run(&mut self, cmd: Command) -> Vec<Effect> {
        match cmd {
            Command::Help => {
                self.show_help = !self.show_help;
                Vec::new()
            }
            Command::Nick(nick) => {
                self.note(&format!("you are now {nick}"));
                self.my_nick = nick.clone();
                vec![Effect::SendNick(nick)]
            }
            Command::Drop(p) => {
                self.status.sim_drop = p;
                self.note(&format!(
                    "simulating loss of {:.0}% of received messages",
                    p * 100.0
                ));
                vec![Effect::SetDrop(p)]
            }
            Command::AckDrop(p) => {
                self.status.sim_ack_drop = p;
                self.note(&format!(
                    "simulating loss of {:.0}% of received ACKs",
                    p * 100.0
                ));
                vec![Effect::SetAckDrop(p)]
            }
            Command::Find(query) => vec![Effect::Find(query)],
            Command::SendFile(path) => vec![Effect::SendFile(path)],
            Command::Accept(n) => vec![Effect::AcceptFile(n)],
            Command::Decline(n) => vec![Effect::DeclineFile(n)],
            // The conversation pane's width, less the time stamp in front of each line.
            Command::Trace => vec![Effect::ShowTrace {
                width: self.size.0.saturating_sub(8).max(40),
            }],
            Command::Stats => {
                let text = stats_text(&self.status);
                self.note(&text);
                Vec::new()
            }
            Command::Clear => {
                self.conversation.clear();
                Vec::new()
            }
            Command::Mouse => {
                self.mouse = !self.mouse;
                self.note(if self.mouse {
                    "mouse on: the wheel scrolls; hold Shift to select text (/mouse turns it off)"
                } else {
                    "mouse off: select text as usual; PgUp/PgDn scroll (/mouse turns the wheel on)"
                });
                vec![Effect::SetMouse(self.mouse)]
            }
            Command::Retry => {
                let failed = self.conversation.failed();
                if failed.is_empty() {
                    self.note("nothing to retry");
                }
                failed
                    .into_iter()
                    .map(|(entry, text)| {
                        if let Some(e) = self.conversation.get_mut(entry) {
                            e.delivery = Some(Delivery::Sending);
                        }
                        Effect::Send { entry, text }
                    })
                    .collect()
            }
            Command::Quit => self.quit(),
        }
    }

    fn on_net(&mut self, event: Event) {
        let clock = self.clock.clone();
        match event {
            Event::Received { text, .. } => {
                let nick = if self.echo {
                    "echo".to_owned()
                } else {
                    self.peer_nick.clone()
                };
                self.conversation.push(&clock, Author::Peer, &nick, &text);
                if !self.focused || self.conversation.scroll > 0 {
                    self.unread += 1;
                }
            }
            Event::PeerNick { .. } if self.echo => {}
            Event::PeerNick { nick } => {
                if nick != self.peer_nick {
                    self.note(&format!("{} is now known as {nick}", self.peer_nick));
                    self.peer_nick = nick;
                }
            }
            Event::Retransmit { id, attempt, .. } => {
                self.conversation
                    .set_delivery(id, Delivery::Retrying { attempt });
            }
            Event::Delivered { id, elapsed, .. } => {
                self.conversation
                    .set_delivery(id, Delivery::Delivered { elapsed });
            }
            Event::Failed { id, reason, .. } => {
                let reason = match reason {
                    FailReason::MaxRetries { attempts } => {
                        format!("no answer after {attempts} tries")
                    }
                    FailReason::PeerUnreachable => "peer unreachable".to_owned(),
                    FailReason::PeerLeft => "peer left before it arrived".to_owned(),
                };
                self.conversation
                    .set_delivery(id, Delivery::Failed { reason });
            }
            Event::Connected { .. } => self.note("connected"),
            Event::NoAnswer { waited } => self.note(&format!(
                "no answer from {} for {} s: is udpchat (this version) running there, on that port, and is UDP allowed? Messages typed until now are not delivered (/retry sends them again)",
                self.status.peer,
                waited.as_secs()
            )),
            Event::PeerRestarted { resent, .. } => self.note(&format!(
                "{} restarted; {resent} unacknowledged message(s) sent again",
                self.peer_nick
            )),
            Event::PeerStateChanged { state } => self.observe_peer_state(state),
            Event::PeerDone => self.note(&format!(
                "{} has finished sending (its input ended)",
                self.peer_nick
            )),
            Event::PeerLeft { finished: true } => {
                self.note(&format!("{} said goodbye and left", self.peer_nick));
            }
            Event::PeerLeft { finished: false } => self.note(&format!(
                "{} left; anything of yours it had not confirmed is marked not delivered",
                self.peer_nick
            )),
            // Shown in the status bar's counters, not as lines.
            Event::Sent { .. }
            | Event::Duplicate { .. }
            | Event::Rejected { .. }
            | Event::File { .. } => {}
        }
    }
}

/// `text` without the blank (empty or whitespace-only) lines at its start and end.
fn trim_blank_lines(text: &str) -> &str {
    let blank = |line: &&str| line.trim().is_empty();
    let start: usize = text
        .split_inclusive('\n')
        .take_while(blank)
        .map(str::len)
        .sum();
    let text = &text[start..];
    let after: usize = text
        .split_inclusive('\n')
        .rev()
        .take_while(blank)
        .map(str::len)
        .sum();
    // What is left ends with a line that is not blank, and perhaps its line break.
    text[..text.len() - after].trim_end_matches('\n')
}

/// The `/stats` line.
pub fn stats_text(status: &Status) -> String {
    let s = &status.stats;
    let ms = |d: Duration| format!("{:.1}ms", d.as_secs_f64() * 1e3);
    format!(
        "sent {} delivered {} failed {} received {} | retransmissions {} (spurious {}) duplicates {} rejected {} | srtt {} rttvar {} rto {} | loss {:.1}%",
        s.messages_queued,
        s.messages_delivered,
        s.messages_failed,
        s.messages_received,
        s.retransmissions,
        s.spurious_retransmissions,
        s.duplicates,
        s.rejected,
        status.srtt.map_or("-".to_owned(), ms),
        ms(status.rttvar),
        ms(status.rto),
        s.loss_estimate() * 100.0
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use udpchat_proto::wire::MAX_TEXT_LEN;

    fn key(code: KeyCode) -> Msg {
        Msg::Key(KeyEvent::new(code, KeyModifiers::NONE))
    }

    fn ctrl(c: char) -> Msg {
        Msg::Key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::CONTROL))
    }

    fn type_line(chat: &mut Chat, text: &str) -> Vec<Effect> {
        chat.update(Msg::Paste(text.to_owned()));
        chat.update(key(KeyCode::Enter))
    }

    #[test]
    fn enter_sends_and_shows_the_message_as_sending() {
        let mut chat = Chat::new("me", "127.0.0.1:12001");
        let effects = type_line(&mut chat, "hello");
        let [Effect::Send { entry, text }] = effects.as_slice() else {
            panic!("{effects:?}");
        };
        assert_eq!(text, "hello");
        assert!(chat.input.is_empty());
        let e = chat.conversation.get_mut(*entry).unwrap();
        assert_eq!(e.delivery, Some(Delivery::Sending));
    }

    #[test]
    fn delivery_marks_follow_the_session_and_a_duplicate_shows_once() {
        let mut chat = Chat::new("me", "p");
        let Effect::Send { entry, .. } = type_line(&mut chat, "hi")[0].clone() else {
            panic!();
        };
        chat.update(Msg::Accepted {
            entry,
            id: MessageId(0),
        });
        chat.update(Msg::Net(Event::Retransmit {
            id: MessageId(0),
            seq: 0,
            attempt: 2,
        }));
        assert_eq!(
            chat.conversation.get_mut(entry).unwrap().delivery,
            Some(Delivery::Retrying { attempt: 2 })
        );
        chat.update(Msg::Net(Event::Delivered {
            id: MessageId(0),
            seq: 0,
            attempts: 2,
            elapsed: Duration::from_millis(40),
        }));
        chat.update(Msg::Net(Event::Received {
            stable: None,
            seq: 0,
            text: "yo".into(),
        }));
        chat.update(Msg::Net(Event::Duplicate { seq: 0 }));
        let texts: Vec<_> = chat
            .conversation
            .entries()
            .map(|e| e.text.clone())
            .collect();
        assert_eq!(texts, vec!["hi", "yo"]);
    }

    #[test]
    fn too_long_keeps_the_text_and_says_why() {
        let mut chat = Chat::new("me", "p");
        // Before the driver says otherwise, the limit is the protocol's: a line longer
        // than a datagram goes (in parts).
        assert_eq!(chat.status.max_text, udpchat_proto::MAX_MESSAGE_LEN);
        chat.status.max_text = 100;
        let long = "x".repeat(101);
        assert!(type_line(&mut chat, &long).is_empty());
        assert_eq!(chat.input.text(), long);
        let last = chat.conversation.entries().last().unwrap();
        assert!(last.text.starts_with("message too long"), "{}", last.text);
    }

    #[test]
    fn the_limit_is_the_session_s_smaller_one_under_encryption() {
        let mut chat = Chat::new("me", "p");
        chat.update(Msg::Status(Box::new(Status {
            max_text: MAX_TEXT_LEN - 29,
            ..Status::default()
        })));
        let long = "x".repeat(MAX_TEXT_LEN - 28);
        assert!(type_line(&mut chat, &long).is_empty());
        let last = chat.conversation.entries().last().unwrap();
        assert!(last.text.contains("the limit is 1092"), "{}", last.text);
        // The refused text stays in the input; start again.
        chat.input.take();
        let fits = "x".repeat(MAX_TEXT_LEN - 29);
        assert!(matches!(
            type_line(&mut chat, &fits).as_slice(),
            [Effect::Send { .. }]
        ));
    }

    #[test]
    fn commands_change_state_and_ask_the_driver() {
        let mut chat = Chat::new("me", "p");
        assert_eq!(
            type_line(&mut chat, "/drop 0.2"),
            vec![Effect::SetDrop(0.2)]
        );
        assert_eq!(chat.status.sim_drop, 0.2);
        assert_eq!(
            type_line(&mut chat, "/nick ada"),
            vec![Effect::SendNick("ada".into())]
        );
        assert_eq!(chat.my_nick, "ada");
        assert!(type_line(&mut chat, "/help").is_empty());
        assert!(chat.show_help);
        chat.update(key(KeyCode::Esc));
        assert!(!chat.show_help);
        assert!(type_line(&mut chat, "/bogus").is_empty());
        assert!(chat
            .conversation
            .entries()
            .last()
            .unwrap()
            .text
            .contains("unknown command"));
        type_line(&mut chat, "/clear");
        assert_eq!(chat.conversation.entries().len(), 0);
        assert_eq!(type_line(&mut chat, "/quit"), vec![Effect::Quit]);
        assert!(chat.quit);
    }

    #[test]
    fn retry_resends_failed_messages_with_their_text() {
        let mut chat = Chat::new("me", "p");
        let Effect::Send { entry, .. } = type_line(&mut chat, "lost")[0].clone() else {
            panic!();
        };
        chat.update(Msg::Accepted {
            entry,
            id: MessageId(3),
        });
        chat.update(Msg::Net(Event::Failed {
            id: MessageId(3),
            text: "lost".into(),
            reason: FailReason::PeerUnreachable,
        }));
        assert_eq!(
            type_line(&mut chat, "/retry"),
            vec![Effect::Send {
                entry,
                text: "lost".into()
            }]
        );
        assert_eq!(
            chat.conversation.get_mut(entry).unwrap().delivery,
            Some(Delivery::Sending)
        );
    }

    #[test]
    fn a_multi_line_paste_goes_as_one_message_after_enter() {
        let mut chat = Chat::new("me", "p");
        chat.update(Msg::Paste(
            "\n  \nfirst\r\n\n/not a command\n\tlast\n\n".into(),
        ));
        // Nothing is sent until Enter: the paste can be read and edited first.
        assert_eq!(
            chat.input.display(),
            "↵  ↵first↵↵/not a command↵        last↵↵"
        );
        let sent: Vec<String> = chat
            .update(key(KeyCode::Enter))
            .into_iter()
            .map(|e| match e {
                Effect::Send { text, .. } => text,
                other => panic!("{other:?}"),
            })
            .collect();
        // One message, its inner blank line and indentation kept, the blank lines
        // around it dropped; the `/` line is text.
        assert_eq!(sent, ["first\n\n/not a command\n        last"]);
        assert!(chat.input.is_empty());
        // Over the limit: nothing goes, the paste stays.
        chat.status.max_text = 8;
        chat.update(Msg::Paste("short\nmuch too long".into()));
        assert!(chat.update(key(KeyCode::Enter)).is_empty());
        assert_eq!(chat.input.text(), "short\nmuch too long");
        let last = chat.conversation.entries().last().unwrap();
        assert!(
            last.text.contains("paste too long: 19 bytes"),
            "{}",
            last.text
        );
    }

    #[test]
    fn a_chat_with_ourselves_shows_what_comes_back_as_echo() {
        let mut chat = Chat::new("ada", "127.0.0.1:12000");
        chat.echo = true;
        chat.update(Msg::Net(Event::PeerNick { nick: "ada".into() }));
        chat.update(Msg::Net(Event::Received {
            stable: None,
            seq: 0,
            text: "hello".into(),
        }));
        let shown: Vec<_> = chat
            .conversation
            .entries()
            .map(|e| (e.nick.clone(), e.text.clone()))
            .collect();
        assert_eq!(shown, [("echo".to_owned(), "hello".to_owned())]);
    }

    #[test]
    fn a_message_while_away_rings_once_and_the_title_counts_until_seen() {
        let mut chat = Chat::new("ada", "p");
        chat.peer_nick = "bob".into();
        let received = |text: &str| {
            Msg::Net(Event::Received {
                stable: None,
                seq: 0,
                text: text.into(),
            })
        };
        // At the bottom, in focus: nothing to call attention to.
        chat.update(received("one"));
        assert_eq!(
            chat.take_terminal_effects(),
            [Effect::Title("udpchat — bob".into())]
        );
        // In another window: a bell, and the title counts.
        chat.update(Msg::Focus(false));
        chat.update(received("two"));
        assert_eq!(
            chat.take_terminal_effects(),
            [Effect::Bell, Effect::Title("(1) udpchat — bob".into())]
        );
        chat.update(received("three"));
        assert_eq!(chat.title_text(), "(2) udpchat — bob");
        // Back: seen.
        chat.update(Msg::Focus(true));
        assert_eq!(
            chat.take_terminal_effects(),
            [Effect::Bell, Effect::Title("udpchat — bob".into())]
        );
        // Scrolled up, in focus: counted until the bottom is reached; no bell when off.
        chat.bell = false;
        chat.update(Msg::Resize {
            width: 40,
            height: 5,
        });
        for i in 0..10 {
            chat.update(received(&format!("filler {i}")));
        }
        chat.update(key(KeyCode::PageUp));
        chat.take_terminal_effects();
        chat.update(received("while reading"));
        assert_eq!(
            chat.take_terminal_effects(),
            [Effect::Title("(1) udpchat — bob".into())]
        );
        chat.update(key(KeyCode::End));
        assert_eq!(chat.title_text(), "udpchat — bob");
    }

    #[test]
    fn ctrl_c_quits_and_keys_edit() {
        let mut chat = Chat::new("me", "p");
        chat.update(Msg::Paste("one two".into()));
        chat.update(ctrl('w'));
        assert_eq!(chat.input.text(), "one ");
        assert_eq!(chat.update(ctrl('c')), vec![Effect::Quit]);
    }

    #[test]
    fn unreachable_is_shown_once_it_lasts_and_back_online_only_after_it() {
        let mut chat = Chat::new("me", "p");
        let state = |state| Msg::Net(Event::PeerStateChanged { state });
        let tick = || Msg::Clock("12:00".into());
        chat.update(state(PeerState::Online));
        assert_eq!(chat.conversation.entries().len(), 0);
        // Unreachable for less than two ticks (a restart, one lost keepalive): the
        // screen keeps saying online, and says nothing.
        chat.update(state(PeerState::Unreachable));
        chat.update(tick());
        assert_eq!(chat.peer_state_shown, PeerState::Online);
        chat.update(state(PeerState::Online));
        chat.update(tick());
        chat.update(tick());
        assert_eq!(chat.conversation.entries().len(), 0);
        // Unreachable for longer: said once, then back online.
        chat.update(state(PeerState::Unreachable));
        for _ in 0..5 {
            chat.update(tick());
        }
        assert_eq!(chat.peer_state_shown, PeerState::Unreachable);
        chat.update(state(PeerState::Online));
        let notes: Vec<_> = chat
            .conversation
            .entries()
            .map(|e| e.text.clone())
            .collect();
        assert_eq!(notes, vec!["peer is unreachable", "peer is back online"]);
    }

    #[test]
    fn the_prompt_asks_for_the_peer_first() {
        let mut chat = Chat::asking_for_peer("me");
        assert_eq!(
            type_line(&mut chat, " 10.0.0.7 "),
            vec![Effect::Connect("10.0.0.7".into())]
        );
        chat.update(Msg::PeerError("cannot resolve".into()));
        assert_eq!(
            chat.mode,
            Mode::AskPeer {
                error: Some("cannot resolve".into())
            }
        );
        chat.update(Msg::Connected("10.0.0.7:12000".into()));
        assert_eq!(chat.mode, Mode::Chat);
        assert_eq!(chat.status.peer, "10.0.0.7:12000");
    }

    #[test]
    fn scrolling_is_bounded_and_the_marker_counts_new_lines() {
        let mut chat = Chat::new("me", "p");
        chat.update(Msg::Resize {
            width: 40,
            height: 10,
        });
        for i in 0..30 {
            chat.update(Msg::Net(Event::Received {
                stable: None,
                seq: i,
                text: format!("line {i}"),
            }));
        }
        chat.update(key(KeyCode::PageUp));
        assert_eq!(chat.conversation.scroll, 7);
        chat.update(key(KeyCode::Home));
        assert_eq!(chat.conversation.scroll, 30 - 7);
        chat.update(Msg::Net(Event::Received {
            stable: None,
            seq: 30,
            text: "new".into(),
        }));
        assert_eq!(chat.conversation.unseen, 1);
        chat.update(key(KeyCode::End));
        assert_eq!(chat.conversation.unseen, 0);
    }
}
