//! Turns the conversation into screen rows of a given width: word wrapping by display
//! width (CJK and emoji take two columns), continuation lines indented under the text,
//! and the delivery mark after our messages. Pure, so scrolling and drawing agree and
//! both can be tested without a terminal.

use std::time::Duration;

use unicode_segmentation::UnicodeSegmentation;
use unicode_width::UnicodeWidthStr;

use crate::chat::Chat;
use crate::conversation::{Author, Delivery, Entry};

/// What a piece of a row is, so the view can style it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Part {
    /// The timestamp.
    Time,
    /// Our nickname.
    MyNick,
    /// The peer's nickname.
    PeerNick,
    /// A line from udpchat itself.
    System,
    /// Message text.
    Text,
    /// Delivery mark: on its way.
    Pending,
    /// Delivery mark: acknowledged.
    Delivered,
    /// Delivery mark: failed.
    Failed,
}

/// The most rows one message takes on screen; the rest of a longer one is counted.
pub(crate) const MAX_MESSAGE_ROWS: usize = 500;

/// One screen row: pieces of text, each with what it is.
pub(crate) type Row = Vec<(String, Part)>;

/// The mark shown after one of our messages.
pub(crate) fn delivery_mark(delivery: &Delivery) -> (String, Part) {
    match delivery {
        Delivery::Sending => ("…".to_owned(), Part::Pending),
        Delivery::Retrying { attempt } => (format!("↻{attempt}"), Part::Pending),
        Delivery::Delivered { elapsed } => (format!("✓ {}", short(*elapsed)), Part::Delivered),
        Delivery::Failed { reason } => (format!("✗ {reason} (/retry)"), Part::Failed),
        Delivery::Kept => ("⧗ in the outbox".to_owned(), Part::Pending),
        Delivery::DeliveredEarlier => ("✓".to_owned(), Part::Delivered),
    }
}

/// A duration the way a person reads it: `850µs`, `12ms`, `1.3s`.
pub(crate) fn short(d: Duration) -> String {
    let micros = d.as_micros();
    if micros < 1_000 {
        format!("{micros}µs")
    } else if micros < 10_000_000 {
        format!("{}ms", micros / 1_000)
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

/// Splits `text` into lines no wider than `width` columns, breaking at spaces where it
/// can and inside a word only when the word alone is too wide.
pub(crate) fn wrap(text: &str, width: usize) -> Vec<String> {
    wrap_at_most(text, width, usize::MAX).0
}

/// [`wrap`], stopping once `max_rows` rows are made (however long a word is); true
/// when more than whitespace was left over. The first row is a byte prefix of `text`
/// (whole characters, trailing spaces at a break dropped), so a caller can find where
/// it ends.
fn wrap_at_most(text: &str, width: usize, max_rows: usize) -> (Vec<String>, bool) {
    let width = width.max(1);
    let mut lines = Vec::new();
    let mut line = String::new();
    let mut line_width = 0;
    for (at, word) in text.split_word_bound_indices() {
        if lines.len() >= max_rows {
            return (lines, !text[at..].trim().is_empty());
        }
        let w = word.width();
        if line_width + w <= width {
            line.push_str(word);
            line_width += w;
            continue;
        }
        if word.trim().is_empty() {
            // A space at the break is dropped rather than starting the next line.
            lines.push(std::mem::take(&mut line));
            line_width = 0;
            continue;
        }
        if !line.is_empty() && w <= width {
            lines.push(std::mem::take(&mut line).trim_end().to_owned());
            line_width = 0;
        }
        for g in word.graphemes(true) {
            let gw = g.width();
            if line_width + gw > width && !line.is_empty() {
                lines.push(std::mem::take(&mut line));
                line_width = 0;
                // One word may be the whole text (a hex dump, a line of one letter):
                // the budget holds inside it too. `g` is still to be placed.
                if lines.len() >= max_rows {
                    return (lines, true);
                }
            }
            line.push_str(g);
            line_width += gw;
        }
    }
    if lines.len() >= max_rows && !line.trim().is_empty() {
        return (lines, true);
    }
    if !line.is_empty() || lines.is_empty() {
        lines.push(line);
    }
    (lines, false)
}

pub(crate) fn entry_rows(entry: &Entry, width: usize) -> Vec<Row> {
    let nick_part = match entry.author {
        Author::Me => Part::MyNick,
        Author::Peer => Part::PeerNick,
        Author::System => Part::System,
    };
    let time = format!("{} ", entry.time);
    let nick = match entry.author {
        Author::System => "* ".to_owned(),
        _ => format!("{}: ", entry.nick),
    };
    let prefix = time.width() + nick.width();
    // On a narrow screen the indent must leave room for the text itself.
    let indent = if prefix * 3 > width * 2 { 2 } else { prefix };
    let text_part = if entry.author == Author::System {
        Part::System
    } else {
        Part::Text
    };
    let first_width = width.saturating_sub(prefix).max(1);
    let rest_width = width.saturating_sub(indent).max(1);
    // A message of several lines (a paste) keeps its line breaks; each line wraps
    // on its own under the text. A very long one (many lines, or one huge line) is
    // cut at MAX_MESSAGE_ROWS rows, wrapping no further, so a pasted log does not
    // bury the conversation or slow every frame.
    let mut pieces = Vec::new();
    let mut hard_lines = entry.text.split('\n');
    // Why the message was cut: a line shown in part, or whole lines not shown.
    let mut partly_shown = false;
    let mut not_shown = 0;
    if let Some(first) = hard_lines.next() {
        let (mut head, more) = wrap_at_most(first, first_width, 2);
        if head.len() > 1 || more {
            // The first row sits beside the nickname; the rest wraps under the text.
            let rest = first[head[0].len()..].trim_start();
            head.truncate(1);
            let (tail, more) = wrap_at_most(rest, rest_width, MAX_MESSAGE_ROWS - 1);
            head.extend(tail);
            partly_shown = more;
        }
        pieces = head;
    }
    while !partly_shown {
        let Some(line) = hard_lines.next() else { break };
        let room = MAX_MESSAGE_ROWS.saturating_sub(pieces.len());
        if room == 0 {
            not_shown = 1;
            break;
        }
        let (rows, more) = wrap_at_most(line, rest_width, room);
        pieces.extend(rows);
        partly_shown = more;
    }
    not_shown += hard_lines.count();
    if partly_shown || not_shown > 0 {
        let lines = match not_shown {
            1 => "1 more line".to_owned(),
            n => format!("{n} more lines"),
        };
        let note = match (partly_shown, not_shown) {
            (true, 0) => "… the rest is not shown".to_owned(),
            (true, _) => format!("… the rest and {lines} not shown"),
            (false, _) => format!("… {lines} not shown"),
        };
        pieces.extend(wrap(&note, rest_width));
    }
    let mut rows: Vec<Row> = pieces
        .into_iter()
        .enumerate()
        .map(|(i, piece)| {
            let lead = if i == 0 {
                vec![(time.clone(), Part::Time), (nick.clone(), nick_part)]
            } else {
                vec![(" ".repeat(indent), Part::Text)]
            };
            let mut row = lead;
            row.push((piece, text_part));
            row
        })
        .collect();
    if let Some((mark, part)) = entry.delivery.as_ref().map(delivery_mark) {
        let used: usize = rows
            .last()
            .map_or(0, |row| row.iter().map(|(s, _)| s.width()).sum());
        if used + 1 + mark.width() <= width {
            if let Some(last) = rows.last_mut() {
                last.push((" ".to_owned(), Part::Text));
                last.push((mark, part));
            }
        } else {
            // No room after the text: the mark gets rows of its own, never cut off.
            for piece in wrap(&mark, width.saturating_sub(indent).max(1)) {
                rows.push(vec![(" ".repeat(indent), Part::Text), (piece, part)]);
            }
        }
    }
    rows
}

/// Every row of the conversation at this width, oldest first.
pub(crate) fn rows(chat: &Chat, width: usize) -> Vec<Row> {
    chat.conversation
        .entries()
        .flat_map(|e| entry_rows(e, width))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conversation::Conversation;

    #[test]
    fn wrap_breaks_at_spaces_and_inside_long_words_only() {
        assert_eq!(wrap("hello big world", 9), vec!["hello big", "world"]);
        assert_eq!(wrap("abcdefghij", 4), vec!["abcd", "efgh", "ij"]);
        assert_eq!(wrap("", 5), vec![""]);
    }

    #[test]
    fn wrap_counts_wide_characters_as_two_columns() {
        // Each CJK character is two columns: three fit in 6, never half of one.
        assert_eq!(wrap("日本語日本語", 6), vec!["日本語", "日本語"]);
        assert_eq!(wrap("日本語", 5), vec!["日本", "語"]);
        for line in wrap("😀😀😀 ok", 4) {
            assert!(line.width() <= 4, "{line}");
        }
    }

    #[test]
    fn rows_never_exceed_the_width_and_the_mark_ends_the_last_row() {
        let mut c = Conversation::default();
        let e = c.push("10:00", Author::Me, "me", &"word ".repeat(30));
        if let Some(entry) = c.get_mut(e) {
            entry.delivery = Some(Delivery::Delivered {
                elapsed: Duration::from_millis(12),
            });
        }
        let entry = c.entries().next().unwrap().clone();
        for width in [20, 40, 80] {
            let rows = entry_rows(&entry, width);
            for row in &rows {
                let w: usize = row.iter().map(|(s, _)| s.width()).sum();
                assert!(w <= width, "width {width}: {row:?}");
            }
            let last = rows.last().unwrap();
            assert_eq!(
                last.last().unwrap(),
                &("✓ 12ms".to_owned(), Part::Delivered)
            );
        }
    }

    /// The rows of a message from `bo` at `width`, as the screen shows them.
    fn shown_rows(text: &str, width: usize) -> Vec<String> {
        let mut c = Conversation::default();
        c.push("10:00", Author::Peer, "bo", text);
        let entry = c.entries().next().unwrap().clone();
        entry_rows(&entry, width)
            .iter()
            .map(|row| row.iter().map(|(s, _)| s.as_str()).collect())
            .collect()
    }

    /// Asserts that `text` is cut at MAX_MESSAGE_ROWS and ends with `note`.
    fn assert_cut(text: &str, note: &str) {
        let rows = shown_rows(text, 40);
        assert_eq!(rows.len(), MAX_MESSAGE_ROWS + 1);
        let last = &rows[MAX_MESSAGE_ROWS];
        assert!(last.ends_with(note), "{last}");
    }

    #[test]
    fn a_message_of_several_lines_keeps_its_breaks_and_a_huge_one_is_cut() {
        assert_eq!(
            shown_rows("first line\n  indented\n\nlast", 40),
            [
                "10:00 bo: first line",
                // The line's own indentation is kept under the text's.
                "            indented",
                "          ",
                "          last"
            ]
        );
        // 10,000 lines and the empty one after the final break; 500 are shown.
        let log: String = (0..10_000).map(|i| format!("log line {i}\n")).collect();
        assert_cut(&log, "… 9501 more lines not shown");
        // One huge line (from a pipe) is cut too, without wrapping all of it.
        assert_cut(&"word ".repeat(1_000_000), "… the rest is not shown");
        // And one word as long as a line can be: a hex dump, a line of one letter.
        let one_word = "x".repeat(1_000_000);
        assert_cut(&one_word, "… the rest is not shown");
        assert_eq!(
            wrap_at_most("abcdefgh", 2, 2),
            (vec!["ab".into(), "cd".into()], true)
        );
        assert_eq!(
            wrap_at_most("ab cd   ", 2, 2),
            (vec!["ab".into(), "cd".into()], false)
        );
        // On a narrow screen the note wraps like the text, never wider than the screen.
        for row in shown_rows(&one_word, 12) {
            assert!(row.width() <= 12, "{row:?}");
        }
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(short(Duration::from_micros(850)), "850µs");
        assert_eq!(short(Duration::from_millis(12)), "12ms");
        assert_eq!(short(Duration::from_millis(12_300)), "12.3s");
    }
}
