//! What has been said: entries with time, author and text, the delivery state of each
//! message we sent, and where the reader has scrolled to.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use udpchat_proto::MessageId;

/// Entries kept for scrollback; older ones are dropped so memory stays bounded.
pub const SCROLLBACK: usize = 5_000;

/// A stable handle for an entry, valid while it is in the scrollback.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EntryId(pub u64);

/// Who an entry is from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Author {
    /// The person at this terminal.
    Me,
    /// The peer.
    Peer,
    /// udpchat itself: connection changes, errors, help and statistics.
    System,
}

/// Where one of our messages stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// Queued or on the wire, no acknowledgement yet.
    Sending,
    /// Sent again; `attempt` transmissions so far.
    Retrying {
        /// Transmissions so far.
        attempt: u32,
    },
    /// Acknowledged by the peer after this long.
    Delivered {
        /// From typing to acknowledgement.
        elapsed: Duration,
    },
    /// Given up; `/retry` sends it again.
    Failed {
        /// Why, in words.
        reason: String,
    },
    /// Not delivered yet, kept in the outbox: it goes, in order, when the peer is back
    /// or when udpchat next runs with it.
    Kept,
    /// Delivered in an earlier run (from the kept conversation).
    DeliveredEarlier,
}

/// One line of the conversation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Its handle.
    pub id: EntryId,
    /// Wall-clock time it was written or received, as shown (e.g. `14:03`).
    pub time: String,
    /// Who it is from.
    pub author: Author,
    /// The author's nickname at the time.
    pub nick: String,
    /// What was said.
    pub text: String,
    /// For our messages, where delivery stands.
    pub delivery: Option<Delivery>,
}

/// The scrollback and the reader's position in it.
#[derive(Clone, Debug)]
pub struct Conversation {
    entries: VecDeque<Entry>,
    next_id: u64,
    by_message: HashMap<MessageId, EntryId>,
    /// Rows scrolled up from the bottom; 0 follows new messages.
    pub scroll: usize,
    /// Entries that arrived while scrolled up, for the "new messages" marker.
    pub unseen: usize,
    /// The width the conversation is drawn at, so a new entry's rows are known while
    /// scrolled up (the view must not move by them).
    pub width: usize,
}

/// Handles start here, so entries loaded later from the kept conversation can be put
/// above the first one with smaller handles.
const FIRST_ID: u64 = 1 << 32;

impl Default for Conversation {
    fn default() -> Self {
        Self {
            entries: VecDeque::new(),
            next_id: FIRST_ID,
            by_message: HashMap::new(),
            scroll: 0,
            unseen: 0,
            width: 80,
        }
    }
}

impl Conversation {
    /// All entries, oldest first.
    pub fn entries(&self) -> impl DoubleEndedIterator<Item = &Entry> + ExactSizeIterator {
        self.entries.iter()
    }

    /// Appends an entry and returns its handle.
    pub fn push(&mut self, time: &str, author: Author, nick: &str, text: &str) -> EntryId {
        let id = EntryId(self.next_id);
        self.next_id += 1;
        if self.entries.len() == SCROLLBACK {
            if let Some(old) = self.entries.pop_front() {
                self.by_message.retain(|_, e| *e != old.id);
            }
        }
        let delivery = (author == Author::Me).then_some(Delivery::Sending);
        self.entries.push_back(Entry {
            id,
            time: time.to_owned(),
            author,
            nick: nick.to_owned(),
            text: text.to_owned(),
            delivery,
        });
        if self.scroll > 0 {
            // Keep the reader's view still: the new entry pushes the bottom down by
            // its rows (a pasted log may take hundreds).
            let rows = self
                .entries
                .back()
                .map_or(1, |e| crate::layout::entry_rows(e, self.width).len());
            self.scroll += rows;
            self.unseen += 1;
        }
        id
    }

    /// Puts older entries above the first one (`older` oldest first), as long as the
    /// scrollback has room; returns the handles given, oldest first. The reader's
    /// position, counted from the bottom, does not move.
    pub fn prepend(
        &mut self,
        older: Vec<(String, Author, String, String, Option<Delivery>)>,
    ) -> Vec<EntryId> {
        let room = SCROLLBACK.saturating_sub(self.entries.len());
        let first = self.entries.front().map_or(self.next_id, |e| e.id.0);
        let take = older
            .len()
            .min(room)
            .min(usize::try_from(first).unwrap_or(usize::MAX));
        let skip = older.len() - take;
        let mut ids = Vec::with_capacity(take);
        for (i, (time, author, nick, text, delivery)) in
            older.into_iter().skip(skip).enumerate().rev()
        {
            let id = EntryId(first - (take - i) as u64);
            self.entries.push_front(Entry {
                id,
                time,
                author,
                nick,
                text,
                delivery,
            });
            ids.push(id);
        }
        ids.reverse();
        ids
    }

    /// Adds a line from udpchat itself.
    pub fn system(&mut self, time: &str, text: &str) -> EntryId {
        self.push(time, Author::System, "*", text)
    }

    /// The entry with this handle, if still in the scrollback.
    pub fn get_mut(&mut self, id: EntryId) -> Option<&mut Entry> {
        let first = self.entries.front()?.id.0;
        let index = usize::try_from(id.0.checked_sub(first)?).ok()?;
        self.entries.get_mut(index)
    }

    /// Ties a protocol message id to the entry that shows it.
    pub fn link(&mut self, message: MessageId, entry: EntryId) {
        self.by_message.insert(message, entry);
    }

    /// Updates the delivery state of the entry showing `message`.
    pub fn set_delivery(&mut self, message: MessageId, delivery: Delivery) {
        let Some(&entry) = self.by_message.get(&message) else {
            return;
        };
        let finished = matches!(
            delivery,
            Delivery::Delivered { .. } | Delivery::Failed { .. }
        );
        if let Some(e) = self.get_mut(entry) {
            e.delivery = Some(delivery);
        }
        if finished {
            self.by_message.remove(&message);
        }
    }

    /// Our messages that failed, oldest first, for `/retry`.
    pub fn failed(&self) -> Vec<(EntryId, String)> {
        self.entries
            .iter()
            .filter(|e| matches!(e.delivery, Some(Delivery::Failed { .. })))
            .map(|e| (e.id, e.text.clone()))
            .collect()
    }

    /// Empties the scrollback (`/clear`); messages still being delivered keep their
    /// state, but are no longer shown.
    pub fn clear(&mut self) {
        self.entries.clear();
        self.by_message.clear();
        self.scroll = 0;
        self.unseen = 0;
    }

    /// Scrolls up by `rows`, at most to `max` (the first row).
    pub fn scroll_up(&mut self, rows: usize, max: usize) {
        self.scroll = self.scroll.saturating_add(rows).min(max);
    }

    /// Scrolls down by `rows`; reaching the bottom clears the new-message marker.
    pub fn scroll_down(&mut self, rows: usize) {
        self.scroll = self.scroll.saturating_sub(rows);
        if self.scroll == 0 {
            self.unseen = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivery_state_follows_the_message_id() {
        let mut c = Conversation::default();
        let e = c.push("10:00", Author::Me, "me", "hi");
        c.link(MessageId(7), e);
        c.set_delivery(MessageId(7), Delivery::Retrying { attempt: 2 });
        assert_eq!(
            c.get_mut(e).unwrap().delivery,
            Some(Delivery::Retrying { attempt: 2 })
        );
        c.set_delivery(
            MessageId(7),
            Delivery::Delivered {
                elapsed: Duration::from_millis(5),
            },
        );
        // A late duplicate report cannot change a finished message.
        c.set_delivery(MessageId(7), Delivery::Retrying { attempt: 3 });
        assert!(matches!(
            c.get_mut(e).unwrap().delivery,
            Some(Delivery::Delivered { .. })
        ));
    }

    #[test]
    fn scrollback_is_bounded_and_handles_stay_valid() {
        let mut c = Conversation::default();
        let first = c.system("t", "0");
        for i in 1..=SCROLLBACK {
            c.system("t", &i.to_string());
        }
        assert_eq!(c.entries().len(), SCROLLBACK);
        assert!(c.get_mut(first).is_none());
        let last = EntryId(first.0 + SCROLLBACK as u64);
        assert_eq!(c.get_mut(last).unwrap().text, SCROLLBACK.to_string());
    }

    #[test]
    fn new_messages_while_scrolled_up_are_counted_until_the_bottom() {
        let mut c = Conversation::default();
        c.scroll_up(3, 10);
        c.push("t", Author::Peer, "bob", "a");
        c.push("t", Author::Peer, "bob", "b");
        assert_eq!(c.unseen, 2);
        c.scroll_down(1);
        assert_eq!(c.unseen, 2);
        c.scroll_down(10);
        assert_eq!((c.scroll, c.unseen), (0, 0));
    }

    #[test]
    fn a_message_of_many_rows_arriving_while_scrolled_up_keeps_the_view_still() {
        let mut c = Conversation::default();
        c.scroll_up(3, 10);
        c.push("t", Author::Peer, "bob", "one\ntwo\nthree\nfour");
        assert_eq!((c.scroll, c.unseen), (7, 1));
    }

    #[test]
    fn failed_messages_are_listed_for_retry() {
        let mut c = Conversation::default();
        let e = c.push("t", Author::Me, "me", "lost words");
        c.link(MessageId(1), e);
        c.set_delivery(
            MessageId(1),
            Delivery::Failed {
                reason: "peer unreachable".into(),
            },
        );
        assert_eq!(c.failed(), vec![(e, "lost words".to_string())]);
    }
}
