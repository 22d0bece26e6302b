//! The line being typed: editing by grapheme (so an emoji or an accented letter is one
//! step), word deletion, history, paste, and display width for the cursor (so CJK and
//! emoji, two columns wide, place it right).

use unicode_segmentation::UnicodeSegmentation;
use unicode_width::UnicodeWidthStr;

/// Lines of history kept.
const HISTORY: usize = 200;

/// An editable line with a cursor and a history of sent lines.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InputLine {
    text: String,
    /// Byte offset of the cursor, always on a grapheme boundary.
    cursor: usize,
    history: Vec<String>,
    /// Position while browsing history; `None` when editing a fresh line.
    browsing: Option<usize>,
    /// The fresh line put aside while browsing history.
    draft: String,
}

/// How `text` is drawn on the one input row.
fn shown(text: &str) -> String {
    text.replace('\n', "↵")
}

impl InputLine {
    /// The text typed so far.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// True when nothing is typed.
    pub fn is_empty(&self) -> bool {
        self.text.is_empty()
    }

    /// Display columns before the cursor (a line break of a paste is one column, `↵`).
    pub fn cursor_column(&self) -> usize {
        shown(&self.text[..self.cursor]).width()
    }

    /// The text as the input line shows it: a pasted line break as `↵`, so a paste of
    /// several lines stays on one row and can be read before Enter sends it.
    pub fn display(&self) -> String {
        shown(&self.text)
    }

    /// Inserts text at the cursor (a key or a paste). Line breaks of a paste are kept
    /// (Windows' and old Macs' as `\n`), so a pasted log goes as one message of
    /// several lines; a tab becomes spaces to the next multiple of 8 columns of its line
    /// (the terminal cannot draw a tab inside the chat), and other control characters
    /// are dropped.
    pub fn insert(&mut self, s: &str) {
        let mut clean = String::with_capacity(s.len());
        // The line so far, typed and pasted: a tab's stop is measured on it whole, as
        // the screen draws it (an emoji sequence is not the sum of its characters).
        // Kept only when there is a tab to place, so a key press copies nothing.
        let tabs = s.contains('\t');
        let mut line = String::new();
        if tabs {
            let line_start = self.text[..self.cursor].rfind('\n').map_or(0, |at| at + 1);
            line.push_str(&self.text[line_start..self.cursor]);
        }
        for c in s.replace("\r\n", "\n").chars() {
            match c {
                '\n' | '\r' => {
                    clean.push('\n');
                    line.clear();
                }
                '\t' => {
                    let spaces = 8 - line.width() % 8;
                    let stop: String = std::iter::repeat_n(' ', spaces).collect();
                    clean.push_str(&stop);
                    line.push_str(&stop);
                }
                c if c.is_control() => {}
                c => {
                    clean.push(c);
                    if tabs {
                        line.push(c);
                    }
                }
            }
        }
        self.text.insert_str(self.cursor, &clean);
        self.cursor += clean.len();
        self.browsing = None;
    }

    fn prev_boundary(&self) -> usize {
        self.text[..self.cursor]
            .grapheme_indices(true)
            .next_back()
            .map_or(0, |(i, _)| i)
    }

    fn next_boundary(&self) -> usize {
        self.text[self.cursor..]
            .graphemes(true)
            .next()
            .map_or(self.cursor, |g| self.cursor + g.len())
    }

    /// Deletes the grapheme before the cursor.
    pub fn backspace(&mut self) {
        let start = self.prev_boundary();
        self.text.replace_range(start..self.cursor, "");
        self.cursor = start;
    }

    /// Deletes the grapheme under the cursor.
    pub fn delete(&mut self) {
        let end = self.next_boundary();
        self.text.replace_range(self.cursor..end, "");
    }

    /// Moves one grapheme left.
    pub fn left(&mut self) {
        self.cursor = self.prev_boundary();
    }

    /// Moves one grapheme right.
    pub fn right(&mut self) {
        self.cursor = self.next_boundary();
    }

    /// Moves to the start of the line.
    pub fn home(&mut self) {
        self.cursor = 0;
    }

    /// Moves to the end of the line.
    pub fn end(&mut self) {
        self.cursor = self.text.len();
    }

    /// Start of the word before the cursor (skipping spaces first), as readline does.
    fn word_start_before(&self) -> usize {
        let before = &self.text[..self.cursor];
        let trimmed = before.trim_end();
        trimmed
            .char_indices()
            .rev()
            .find(|(_, c)| c.is_whitespace())
            .map_or(0, |(i, c)| i + c.len_utf8())
    }

    /// End of the word after the cursor.
    fn word_end_after(&self) -> usize {
        let after = &self.text[self.cursor..];
        let skip = after.len() - after.trim_start().len();
        let rest = &after[skip..];
        let word = rest.find(char::is_whitespace).unwrap_or(rest.len());
        self.cursor + skip + word
    }

    /// Moves to the start of the previous word.
    pub fn word_left(&mut self) {
        self.cursor = self.word_start_before();
    }

    /// Moves past the end of the next word.
    pub fn word_right(&mut self) {
        self.cursor = self.word_end_after();
    }

    /// Deletes the word before the cursor (Ctrl-W).
    pub fn delete_word_before(&mut self) {
        let start = self.word_start_before();
        self.text.replace_range(start..self.cursor, "");
        self.cursor = start;
    }

    /// Deletes from the start of the line to the cursor (Ctrl-U).
    pub fn delete_to_start(&mut self) {
        self.text.replace_range(..self.cursor, "");
        self.cursor = 0;
    }

    /// Takes the line for sending, records it in history, and clears the input.
    pub fn take(&mut self) -> String {
        let line = std::mem::take(&mut self.text);
        self.cursor = 0;
        self.browsing = None;
        self.draft.clear();
        if !line.is_empty() && self.history.last() != Some(&line) {
            if self.history.len() == HISTORY {
                self.history.remove(0);
            }
            self.history.push(line.clone());
        }
        line
    }

    fn show(&mut self, text: String) {
        self.cursor = text.len();
        self.text = text;
    }

    /// Recalls the previous line of history (Up).
    pub fn history_up(&mut self) {
        let next = match self.browsing {
            None if self.history.is_empty() => return,
            None => {
                self.draft = self.text.clone();
                self.history.len() - 1
            }
            Some(0) => return,
            Some(i) => i - 1,
        };
        self.browsing = Some(next);
        self.show(self.history[next].clone());
    }

    /// Goes forward in history, back to the line being written (Down).
    pub fn history_down(&mut self) {
        let Some(i) = self.browsing else {
            return;
        };
        if i + 1 < self.history.len() {
            self.browsing = Some(i + 1);
            self.show(self.history[i + 1].clone());
        } else {
            self.browsing = None;
            let draft = std::mem::take(&mut self.draft);
            self.show(draft);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn typed(s: &str) -> InputLine {
        let mut i = InputLine::default();
        i.insert(s);
        i
    }

    #[test]
    fn graphemes_are_single_steps() {
        let mut i = typed("né👍🏽");
        i.backspace();
        assert_eq!(i.text(), "né");
        i.left();
        i.backspace();
        assert_eq!(i.text(), "é");
        i.delete();
        assert_eq!(i.text(), "");
    }

    #[test]
    fn wide_characters_move_the_cursor_two_columns() {
        let mut i = typed("日本a");
        assert_eq!(i.cursor_column(), 5);
        i.left();
        assert_eq!(i.cursor_column(), 4);
        i.home();
        i.right();
        assert_eq!(i.cursor_column(), 2);
    }

    #[test]
    fn word_motions_and_deletion_follow_readline() {
        let mut i = typed("hello big  world");
        i.delete_word_before();
        assert_eq!(i.text(), "hello big  ");
        i.delete_word_before();
        assert_eq!(i.text(), "hello ");
        let mut j = typed("one two three");
        j.word_left();
        j.word_left();
        assert_eq!(&j.text()[j.cursor..], "two three");
        j.word_right();
        assert_eq!(&j.text()[j.cursor..], " three");
        j.delete_to_start();
        assert_eq!(j.text(), " three");
    }

    #[test]
    fn history_recalls_and_restores_the_draft() {
        let mut i = InputLine::default();
        i.insert("first");
        i.take();
        i.insert("second");
        i.take();
        i.insert("draft");
        i.history_up();
        assert_eq!(i.text(), "second");
        i.history_up();
        assert_eq!(i.text(), "first");
        i.history_up();
        assert_eq!(i.text(), "first");
        i.history_down();
        i.history_down();
        assert_eq!(i.text(), "draft");
    }

    #[test]
    fn a_paste_keeps_its_lines_and_drops_control_characters() {
        let i = typed("a\nb\r\nc\u{7}\rd");
        assert_eq!(i.text(), "a\nb\nc\nd");
        assert_eq!(i.display(), "a↵b↵c↵d");
        assert_eq!(i.cursor_column(), 7);
        // Tabs stop every 8 columns of their line, counting what was typed before.
        let mut i = typed("ab");
        i.insert("\tx\n\ty");
        assert_eq!(i.text(), "ab      x\n        y");
        // Columns are display columns: a wide character takes two.
        let mut i = typed("日本");
        i.insert("\tz");
        assert_eq!(i.text(), "日本    z");
        // An emoji sequence is measured as the screen draws it, typed or pasted.
        let mut typed_first = typed("❤\u{fe0f}");
        typed_first.insert("\t.");
        let pasted = typed("❤\u{fe0f}\t.");
        assert_eq!(typed_first.text(), pasted.text());
    }
}
