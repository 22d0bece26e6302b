//! Drawing: the conversation pane, the status bar, the input line, the help and the
//! peer prompt. Only reads the model; every decision about content is made in
//! [`layout`](crate::layout) and [`Chat`].

use ratatui::layout::{Constraint, Layout, Position, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Wrap};
use ratatui::Frame;
use udpchat_proto::PeerState;
use unicode_width::UnicodeWidthStr;

use crate::chat::{Chat, Mode, Security};
use crate::command::{HELP, KEYS};
use crate::layout::{self, short, Part};

/// The style of each kind of text; plain when `NO_COLOR` is set.
fn style(chat: &Chat, part: Part) -> Style {
    let base = Style::default();
    if chat.no_color {
        return match part {
            Part::MyNick | Part::PeerNick => base.add_modifier(Modifier::BOLD),
            Part::Time | Part::System | Part::Pending => base.add_modifier(Modifier::DIM),
            Part::Failed => base.add_modifier(Modifier::REVERSED),
            Part::Text | Part::Delivered => base,
        };
    }
    match part {
        Part::Time => base.fg(Color::DarkGray),
        Part::MyNick => base.fg(Color::Cyan).add_modifier(Modifier::BOLD),
        Part::PeerNick => base.fg(Color::Magenta).add_modifier(Modifier::BOLD),
        Part::System => base.fg(Color::Yellow),
        Part::Text => base,
        Part::Pending => base.fg(Color::DarkGray),
        Part::Delivered => base.fg(Color::Green),
        Part::Failed => base.fg(Color::Red).add_modifier(Modifier::BOLD),
    }
}

/// Draws the whole screen.
pub fn render(chat: &Chat, frame: &mut Frame<'_>) {
    let area = frame.area();
    if let Mode::AskPeer { error } = &chat.mode {
        render_prompt(chat, error.as_deref(), frame, area);
        return;
    }
    let [conversation, status, input] = Layout::vertical([
        Constraint::Min(1),
        Constraint::Length(1),
        Constraint::Length(1),
    ])
    .areas(area);
    render_conversation(chat, frame, conversation);
    render_status(chat, frame, status);
    render_input(chat, frame, input, "> ");
    if chat.show_help {
        render_help(chat, frame, area);
    }
}

fn render_conversation(chat: &Chat, frame: &mut Frame<'_>, area: Rect) {
    let rows = layout::rows(chat, usize::from(area.width));
    let height = usize::from(area.height);
    let max_scroll = rows.len().saturating_sub(height);
    let scroll = chat.conversation.scroll.min(max_scroll);
    let end = rows.len() - scroll;
    let start = end.saturating_sub(height);
    let lines: Vec<Line<'_>> = rows[start..end]
        .iter()
        .map(|row| {
            Line::from(
                row.iter()
                    .map(|(text, part)| Span::styled(text.clone(), style(chat, *part)))
                    .collect::<Vec<_>>(),
            )
        })
        .collect();
    // Bottom-aligned, like every chat: the newest line sits just above the status bar.
    let pad = height.saturating_sub(lines.len());
    let area = Rect {
        y: area.y + u16::try_from(pad).unwrap_or(0),
        height: area.height - u16::try_from(pad).unwrap_or(0),
        ..area
    };
    frame.render_widget(Paragraph::new(lines), area);
    if scroll > 0 && area.height > 0 {
        let marker = if chat.conversation.unseen > 0 {
            format!(" ↓ {} new (End) ", chat.conversation.unseen)
        } else {
            " ↓ more (End) ".to_owned()
        };
        let width = u16::try_from(marker.width())
            .unwrap_or(u16::MAX)
            .min(area.width);
        let at = Rect {
            x: area.x + area.width - width,
            y: area.y + area.height - 1,
            width,
            height: 1,
        };
        frame.render_widget(Clear, at);
        frame.render_widget(
            Paragraph::new(marker)
                .style(style(chat, Part::System).add_modifier(Modifier::REVERSED)),
            at,
        );
    }
}

fn peer_state_text(state: PeerState) -> &'static str {
    match state {
        PeerState::Connecting => "○ connecting",
        PeerState::Online => "● online",
        PeerState::Unreachable => "✗ unreachable",
    }
}

/// A field of the status bar.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Field {
    Transfer,
    Peer,
    Address,
    Security,
    Rtt,
    InFlight,
    Loss,
    Simulation,
}

/// One way to make the status bar narrower.
#[derive(Clone, Copy)]
enum Narrow {
    /// Leave the field out (`/stats` has it).
    Drop(Field),
    /// Say the field in short.
    Shorten(Field),
}

/// How the bar narrows, in this order, until it fits.
const NARROWING: [Narrow; 11] = [
    Narrow::Drop(Field::InFlight),
    Narrow::Drop(Field::Address),
    Narrow::Shorten(Field::Transfer),
    Narrow::Drop(Field::Rtt),
    Narrow::Shorten(Field::Simulation),
    Narrow::Drop(Field::Loss),
    Narrow::Drop(Field::Transfer),
    Narrow::Shorten(Field::Security),
    Narrow::Drop(Field::Simulation),
    Narrow::Shorten(Field::Peer),
    Narrow::Drop(Field::Security),
];

/// The status bar's text for a terminal `width` columns wide: every field when it fits,
/// else without the least important (see [`NARROWING`]), so 80 columns keep whom you
/// talk to, whether it answers, how it is protected, loss and retransmissions (and
/// simulated loss when on), and 40 columns the first three.
pub fn status_text(chat: &Chat, width: usize) -> String {
    let st = &chat.status;
    let state = peer_state_text(chat.peer_state_shown);
    let mut fields: Vec<(Field, String, String)> = vec![
        (
            Field::Peer,
            format!("{} {state}", chat.peer_nick),
            format!(
                "{} {}",
                chat.peer_nick,
                state.split(' ').next().unwrap_or(state)
            ),
        ),
        (Field::Address, st.peer.clone(), st.peer.clone()),
    ];
    if let Some(security) = &st.security {
        let (full, short) = match security {
            Security::Handshaking => ("encrypting…".to_owned(), "encrypting…".to_owned()),
            Security::Verified { how, key } => {
                (format!("encrypted, {how} {key}"), "encrypted".to_owned())
            }
            Security::Refused => ("REFUSED".to_owned(), "REFUSED".to_owned()),
            Security::Plaintext => ("NOT ENCRYPTED".to_owned(), "NOT ENCRYPTED".to_owned()),
        };
        fields.push((Field::Security, full, short));
    }
    let rtt = format!(
        "rtt {} rto {}",
        st.srtt.map_or("-".to_owned(), short),
        short(st.rto)
    );
    let in_flight = format!("in flight {}", st.in_flight);
    let loss = format!(
        "loss {:.1}% retx {}",
        st.stats.loss_estimate() * 100.0,
        st.stats.retransmissions
    );
    fields.extend([
        (Field::Rtt, rtt.clone(), rtt),
        (Field::InFlight, in_flight.clone(), in_flight),
        (Field::Loss, loss.clone(), loss),
    ]);
    if st.sim_drop > 0.0 || st.sim_ack_drop > 0.0 {
        let sim = format!(
            "sim drop {:.0}% ack {:.0}%",
            st.sim_drop * 100.0,
            st.sim_ack_drop * 100.0
        );
        let brief = format!(
            "sim {:.0}%/{:.0}%",
            st.sim_drop * 100.0,
            st.sim_ack_drop * 100.0
        );
        fields.push((Field::Simulation, sim, brief));
    }
    if let Some(g) = &st.transfer {
        let arrow = if g.outgoing { "↑" } else { "↓" };
        let percent = (g.done * 100).checked_div(g.size).unwrap_or(100);
        let full = format!(
            "{arrow} {} {percent}% of {}, {}/s",
            g.name,
            bytes(g.size),
            bytes(g.rate as u64)
        );
        fields.push((Field::Transfer, full, format!("{arrow} {percent}%")));
    }
    let mut short: Vec<Field> = Vec::new();
    let join = |fields: &[(Field, String, String)], short: &[Field]| {
        fields
            .iter()
            .map(|(f, full, brief)| {
                if short.contains(f) {
                    brief.as_str()
                } else {
                    full.as_str()
                }
            })
            .collect::<Vec<_>>()
            .join(" │ ")
    };
    for step in NARROWING {
        if join(&fields, &short).width() <= width {
            break;
        }
        match step {
            Narrow::Drop(field) => fields.retain(|(f, _, _)| *f != field),
            Narrow::Shorten(field) => short.push(field),
        }
    }
    join(&fields, &short)
}

/// Bytes for a person: `512 B`, `3.4 KiB`, `12.0 MiB`, `1.1 GiB`.
fn bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

fn render_status(chat: &Chat, frame: &mut Frame<'_>, area: Rect) {
    let bar = if chat.no_color {
        Style::default().add_modifier(Modifier::REVERSED)
    } else {
        let fg = match chat.peer_state_shown {
            PeerState::Unreachable => Color::LightRed,
            _ => Color::White,
        };
        Style::default().bg(Color::DarkGray).fg(fg)
    };
    frame.render_widget(
        Paragraph::new(status_text(chat, usize::from(area.width))).style(bar),
        area,
    );
}

fn render_input(chat: &Chat, frame: &mut Frame<'_>, area: Rect, prompt: &str) {
    let prompt_width = prompt.width();
    let text = chat.input.display();
    let available = usize::from(area.width)
        .saturating_sub(prompt_width + 1)
        .max(1);
    // Keep the cursor visible on a long line by showing the end that holds it.
    let cursor = chat.input.cursor_column();
    let skip = cursor.saturating_sub(available);
    let mut shown = String::new();
    let mut col = 0;
    for ch in text.chars() {
        let w = unicode_width::UnicodeWidthChar::width(ch).unwrap_or(0);
        if col >= skip && col + w - skip.min(col + w) <= available + skip {
            shown.push(ch);
        }
        col += w;
    }
    let line = Line::from(vec![
        Span::styled(prompt.to_owned(), style(chat, Part::MyNick)),
        Span::raw(shown),
    ]);
    frame.render_widget(Paragraph::new(line), area);
    let x = area.x + u16::try_from(prompt_width + cursor - skip).unwrap_or(area.width);
    frame.set_cursor_position(Position::new(
        x.min(area.x + area.width.saturating_sub(1)),
        area.y,
    ));
}

fn render_help(chat: &Chat, frame: &mut Frame<'_>, area: Rect) {
    let mut lines: Vec<Line<'_>> = Vec::new();
    let key_style = style(chat, Part::MyNick);
    for (key, what) in HELP.iter().chain(KEYS) {
        lines.push(Line::from(vec![
            Span::styled(format!("{key:<28}"), key_style),
            Span::raw(*what),
        ]));
    }
    let width = area.width.min(72);
    let height = area
        .height
        .min(u16::try_from(lines.len() + 2).unwrap_or(u16::MAX));
    let popup = Rect {
        x: area.x + (area.width - width) / 2,
        y: area.y + (area.height - height) / 2,
        width,
        height,
    };
    frame.render_widget(Clear, popup);
    frame.render_widget(
        Paragraph::new(lines).wrap(Wrap { trim: false }).block(
            Block::default()
                .borders(Borders::ALL)
                .title(" help (Esc closes) "),
        ),
        popup,
    );
}

fn render_prompt(chat: &Chat, error: Option<&str>, frame: &mut Frame<'_>, area: Rect) {
    let [_, body, _] = Layout::vertical([
        Constraint::Fill(1),
        Constraint::Length(4),
        Constraint::Fill(1),
    ])
    .areas(area);
    let [title, input, _, message] = Layout::vertical([Constraint::Length(1); 4]).areas(body);
    frame.render_widget(
        Paragraph::new("udpchat: whom do you want to talk to? (host or host:port)"),
        title,
    );
    render_input(chat, frame, input, "Server IP address: ");
    if let Some(error) = error {
        frame.render_widget(
            Paragraph::new(error.to_owned()).style(style(chat, Part::Failed)),
            message,
        );
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use ratatui::backend::TestBackend;
    use ratatui::Terminal;
    use udpchat_proto::{Event, FailReason, MessageId, Stats};

    use super::*;
    use crate::chat::{Effect, Msg, Status};

    fn screen(chat: &Chat, width: u16, height: u16) -> String {
        let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
        terminal.draw(|f| render(chat, f)).unwrap();
        let buffer = terminal.backend().buffer();
        let mut out = String::new();
        for y in 0..buffer.area.height {
            let mut line = String::new();
            let mut skip = 0;
            for x in 0..buffer.area.width {
                if skip > 0 {
                    skip -= 1;
                    continue;
                }
                let symbol = buffer[(x, y)].symbol();
                skip = symbol.width().saturating_sub(1);
                line.push_str(symbol);
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }

    fn status() -> Status {
        Status {
            peer: "127.0.0.1:12001".into(),
            peer_state: PeerState::Online,
            srtt: Some(Duration::from_micros(850)),
            rttvar: Duration::from_micros(200),
            rto: Duration::from_millis(10),
            in_flight: 1,
            stats: Stats {
                data_sent: 9,
                retransmissions: 1,
                ..Stats::default()
            },
            sim_drop: 0.2,
            sim_ack_drop: 0.2,
            ..Status::default()
        }
    }

    fn say(chat: &mut Chat, text: &str) -> crate::conversation::EntryId {
        chat.update(Msg::Paste(text.into()));
        match chat
            .update(Msg::Key(ratatui::crossterm::event::KeyEvent::from(
                ratatui::crossterm::event::KeyCode::Enter,
            )))
            .as_slice()
        {
            [Effect::Send { entry, .. }] => *entry,
            other => panic!("{other:?}"),
        }
    }

    fn busy() -> Chat {
        let mut chat = Chat::new("ada", "127.0.0.1:12001");
        chat.peer_nick = "bob".into();
        chat.update(Msg::Status(Box::new(status())));
        chat.update(Msg::Clock("14:02".into()));
        chat.update(Msg::Connected("127.0.0.1:12001".into()));
        chat.update(Msg::Net(Event::Received {
            stable: None,
            seq: 0,
            text: "hi ada, the network here drops one packet in five".into(),
        }));
        for (i, text) in [
            "delivered fine",
            "took a retry",
            "still on its way",
            "this one failed",
        ]
        .iter()
        .enumerate()
        {
            let entry = say(&mut chat, text);
            chat.update(Msg::Accepted {
                entry,
                id: MessageId(i as u64),
            });
        }
        chat.update(Msg::Net(Event::Delivered {
            id: MessageId(0),
            seq: 0,
            attempts: 1,
            elapsed: Duration::from_millis(1),
        }));
        chat.update(Msg::Net(Event::Retransmit {
            id: MessageId(1),
            seq: 1,
            attempt: 2,
        }));
        chat.update(Msg::Net(Event::Delivered {
            id: MessageId(1),
            seq: 1,
            attempts: 2,
            elapsed: Duration::from_millis(23),
        }));
        chat.update(Msg::Net(Event::Retransmit {
            id: MessageId(2),
            seq: 2,
            attempt: 3,
        }));
        chat.update(Msg::Net(Event::Failed {
            id: MessageId(3),
            text: "this one failed".into(),
            reason: FailReason::MaxRetries { attempts: 21 },
        }));
        chat
    }

    #[test]
    fn empty_chat() {
        let mut chat = Chat::new("ada", "127.0.0.1:12001");
        chat.status.peer = "127.0.0.1:12001".into();
        insta::assert_snapshot!(screen(&chat, 80, 8));
    }

    #[test]
    fn the_status_bar_keeps_what_matters_most_at_80_and_40_columns() {
        let mut chat = busy();
        chat.status.security = Some(Security::Verified {
            how: "new contact".into(),
            key: "3f2a".into(),
        });
        let at_80 = status_text(&chat, 80);
        assert!(at_80.width() <= 80, "{at_80}");
        for part in [
            "bob ● online",
            "encrypted, new contact 3f2a",
            "loss 10.0% retx 1",
            "sim 20%/20%",
        ] {
            assert!(at_80.contains(part), "{part} in {at_80}");
        }
        let at_40 = status_text(&chat, 40);
        assert!(at_40.width() <= 40, "{at_40}");
        assert!(at_40.starts_with("bob ● online │ encrypted"), "{at_40}");
        // Narrower still: the peer and the protection, in short.
        assert_eq!(status_text(&chat, 20), "bob ● │ encrypted");
        assert_eq!(status_text(&chat, 10), "bob ●");
    }

    #[test]
    fn a_transfer_shows_as_a_gauge_that_narrows_to_its_percentage() {
        let mut chat = busy();
        chat.status.security = Some(Security::Verified {
            how: "pinned".into(),
            key: "3f2a".into(),
        });
        chat.status.transfer = Some(crate::chat::Gauge {
            outgoing: true,
            name: "harbour.jpg".into(),
            done: 1_048_576,
            size: 4_194_304,
            rate: 2_621_440.0,
        });
        let wide = status_text(&chat, 200);
        assert!(
            wide.contains("↑ harbour.jpg 25% of 4.0 MiB, 2.5 MiB/s"),
            "{wide}"
        );
        let at_80 = status_text(&chat, 80);
        assert!(at_80.width() <= 80, "{at_80}");
        assert!(at_80.contains("↑ 25%"), "{at_80}");
        // At 40 columns the peer and its protection come first, the percentage after.
        let at_40 = status_text(&chat, 40);
        assert!(at_40.width() <= 40, "{at_40}");
        assert!(at_40.starts_with("bob ● online │ encrypted"), "{at_40}");
        assert!(!status_text(&chat, 24).contains('↑'));
    }

    #[test]
    fn the_status_bar_says_how_the_chat_is_protected() {
        let mut chat = Chat::new("ada", "10.0.0.2:12000");
        let mut bar = |security| {
            chat.status.security = Some(security);
            status_text(&chat, usize::MAX)
        };
        assert!(bar(Security::Handshaking).contains("│ encrypting… │"));
        assert!(bar(Security::Plaintext).contains("│ NOT ENCRYPTED │"));
        assert!(bar(Security::Refused).contains("│ REFUSED │"));
        assert!(bar(Security::Verified {
            how: "pinned".into(),
            key: "3f2a".into()
        })
        .contains("10.0.0.2:12000 │ encrypted, pinned 3f2a │"));
    }

    #[test]
    fn a_first_contact_shows_who_was_verified_and_how() {
        let mut chat = Chat::new("ada", "10.0.0.2:12000");
        chat.status.security = Some(Security::Verified {
            how: "new contact".into(),
            key: "3f2a".into(),
        });
        chat.update(Msg::Note(
            "encrypted session with 10.0.0.2:12000: the code matched; its key 3f2a-91c0-5b7e-0d44-a1e9-7723-c0de-19f5 is pinned, nothing to compare next time".into(),
        ));
        insta::assert_snapshot!(screen(&chat, 80, 8));
    }

    #[test]
    fn busy_conversation_with_every_delivery_state() {
        insta::assert_snapshot!(screen(&busy(), 100, 12));
    }

    #[test]
    fn the_kept_conversation_opens_above_and_find_searches_it() {
        use crate::chat::Kept;
        let kept = |time: &str, ours: bool, text: &str, queued: bool, number: Option<u64>| Kept {
            time: time.into(),
            ours,
            nick: (!ours).then(|| "bob".to_owned()),
            text: text.into(),
            queued,
            number,
            row: 10 + i64::try_from(number.unwrap_or(0)).unwrap(),
        };
        let mut chat = Chat::new("ada", "127.0.0.1:12001");
        chat.update(Msg::Clock("09:30".into()));
        chat.update(Msg::Earlier(vec![
            kept("yesterday 18:01", false, "see you tomorrow", false, None),
            kept("yesterday 18:02", true, "bring the cables", false, Some(0)),
            kept("yesterday 18:05", true, "and the tester", true, Some(1)),
        ]));
        chat.update(Msg::Connected("127.0.0.1:12001".into()));
        // The outbox's message goes to the session, then the peer confirms it.
        chat.update(Msg::InSession {
            number: 1,
            id: MessageId(0),
        });
        chat.update(Msg::Net(Event::Delivered {
            id: MessageId(0),
            seq: 0,
            attempts: 1,
            elapsed: Duration::from_millis(3),
        }));
        assert_eq!(
            chat.update(Msg::Paste("/find cables".into()))
                .into_iter()
                .chain(
                    chat.update(Msg::Key(ratatui::crossterm::event::KeyEvent::from(
                        ratatui::crossterm::event::KeyCode::Enter,
                    )))
                )
                .collect::<Vec<_>>(),
            vec![Effect::Find("cables".into())]
        );
        chat.update(Msg::Found {
            query: "cables".into(),
            matches: vec![kept(
                "yesterday 18:02",
                true,
                "bring the cables",
                false,
                Some(0),
            )],
        });
        insta::assert_snapshot!(screen(&chat, 100, 12));
    }

    #[test]
    fn scrolling_to_the_top_loads_older_kept_messages_once() {
        use crate::chat::Kept;
        let kept = |row: i64, ours: bool, text: &str| Kept {
            time: format!("12-0{row} 10:00"),
            ours,
            nick: None,
            text: text.into(),
            queued: false,
            number: ours.then_some(u64::try_from(row).unwrap()),
            row,
        };
        let mut chat = Chat::new("ada", "127.0.0.1:12001");
        chat.update(Msg::Resize {
            width: 60,
            height: 6,
        });
        chat.update(Msg::Clock("09:30".into()));
        chat.update(Msg::Earlier(vec![
            kept(5, false, "five"),
            kept(6, true, "six"),
            kept(7, false, "seven"),
        ]));
        let home =
            ratatui::crossterm::event::KeyEvent::from(ratatui::crossterm::event::KeyCode::Home);
        assert_eq!(
            chat.update(Msg::Key(home)),
            vec![Effect::LoadOlder { before: 5 }]
        );
        // Asked once until the answer comes.
        assert!(chat.update(Msg::Key(home)).is_empty());
        chat.update(Msg::Older(vec![
            kept(3, false, "three"),
            kept(4, true, "four"),
        ]));
        assert_eq!(
            chat.update(Msg::Key(home)),
            vec![Effect::LoadOlder { before: 3 }]
        );
        chat.update(Msg::Older(Vec::new()));
        assert!(chat.update(Msg::Key(home)).is_empty(), "nothing older");
        let texts: Vec<&str> = chat
            .conversation
            .entries()
            .map(|e| e.text.as_str())
            .take(5)
            .collect();
        assert_eq!(texts, ["three", "four", "five", "six", "seven"]);
        insta::assert_snapshot!(screen(&chat, 60, 6));
    }

    #[test]
    fn narrow_terminal() {
        insta::assert_snapshot!(screen(&busy(), 40, 10));
    }

    #[test]
    fn wide_characters() {
        let mut chat = Chat::new("ada", "p");
        chat.update(Msg::Clock("09:30".into()));
        chat.update(Msg::Net(Event::Received {
            stable: None,
            seq: 0,
            text: "こんにちは世界、元気ですか？ 🎉🎉 emoji and 日本語 wrap by width".into(),
        }));
        chat.update(Msg::Paste("返事 👍".into()));
        insta::assert_snapshot!(screen(&chat, 30, 8));
    }

    #[test]
    fn help() {
        let mut chat = busy();
        chat.show_help = true;
        insta::assert_snapshot!(screen(&chat, 80, 24));
    }

    #[test]
    fn asking_for_the_peer() {
        let mut chat = Chat::asking_for_peer("ada");
        chat.update(Msg::Paste("nowhere.invalid".into()));
        chat.update(Msg::PeerError("cannot resolve nowhere.invalid".into()));
        insta::assert_snapshot!(screen(&chat, 70, 8));
    }

    #[test]
    fn scrolled_up_shows_the_new_message_marker() {
        let mut chat = busy();
        chat.update(Msg::Resize {
            width: 60,
            height: 8,
        });
        chat.update(Msg::Key(ratatui::crossterm::event::KeyEvent::from(
            ratatui::crossterm::event::KeyCode::Home,
        )));
        chat.update(Msg::Net(Event::Received {
            stable: None,
            seq: 1,
            text: "are you there?".into(),
        }));
        let s = screen(&chat, 60, 8);
        assert!(s.contains("↓ 1 new (End)"), "{s}");
    }

    #[test]
    fn every_size_draws_without_panicking() {
        let chat = busy();
        for width in [1, 2, 5, 10, 20, 39, 80] {
            for height in [1, 2, 3, 5, 10] {
                screen(&chat, width, height);
            }
        }
    }

    #[test]
    fn no_color_draws_the_same_text() {
        let mut plain = busy();
        plain.no_color = true;
        assert_eq!(screen(&plain, 100, 12), screen(&busy(), 100, 12));
    }
}
