//! The durable side of one conversation, without any disk: which number our next
//! message gets, which of the peer's numbers were already shown, and what the store
//! must record before what may happen next (PROTOCOL.md §6b).
//!
//! A driver with a store loads a [`Conversation`] at start, runs a [`Ledger`] beside the
//! [`Stack`](crate::Stack), and after every turn of its loop commits
//! [`Ledger::take_records`] in one transaction (group commit) **before** it tells the
//! session the received messages are durable
//! ([`Stack::confirm_durable`](crate::Stack::confirm_durable)) and before it sends a
//! message it numbered. The simulator drives the same type with a store in memory and
//! a crash at every commit boundary.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::Instant;

use udpchat_proto::{Event, MessageId, PeerState, SendError, StableId};

use crate::stack::Stack;

/// What the store holds about one conversation, as loaded at start.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Conversation {
    /// Our store's origin: random, chosen when the store was made, part of every id we
    /// give (a store made again numbers afresh under a new origin).
    pub origin: u64,
    /// The number our next message gets: numbers count the store's messages to every
    /// peer, so one origin never gives a number twice, whatever key a conversation has.
    pub next_number: u64,
    /// For each origin (a peer's store) seen, the number of its last message shown:
    /// what is a copy does not depend on how this side names the conversation.
    pub shown: HashMap<u64, u64>,
    /// Our messages not yet acknowledged, by number, oldest first: sent again, with
    /// their numbers, before anything new.
    pub outbox: Vec<(u64, String)>,
}

/// One change the store must make durable, in order, in one transaction per batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Record {
    /// A message of ours was accepted under `number`: into the outbox (and the
    /// history, as queued), and the next number is one more.
    Queued {
        /// Its number.
        number: u64,
        /// Its text.
        text: String,
    },
    /// The peer acknowledged our message `number`, out of order (an older one is still
    /// unacknowledged): out of the outbox, delivered in the history.
    Delivered {
        /// Its number.
        number: u64,
    },
    /// Every message of ours numbered below `below` is acknowledged: the outbox's oldest
    /// moves up. One record for a run of acknowledgements, so a bulk transfer does not
    /// rewrite every message it stored.
    DeliveredBelow {
        /// The oldest number not yet acknowledged (or the next to be given).
        below: u64,
    },
    /// A message of the peer's was shown: into the history, and, when it has an id,
    /// its number is the last shown from its origin.
    Shown {
        /// Its id, if the sender gave one.
        stable: Option<StableId>,
        /// Its text.
        text: String,
        /// The peer's nickname when it was sent, if it gave one.
        nick: Option<String>,
    },
    /// The peer's nickname from now on.
    PeerNick {
        /// The nickname.
        nick: String,
    },
}

/// What an event of the session means for the conversation ([`Ledger::on_event`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Seen {
    /// Show it (a message of the peer's, or anything that is not about the ledger).
    Show,
    /// A copy of a message this or an earlier run showed: do not show it.
    Copy,
    /// The session gave up our message `number`; the outbox keeps it and it goes again
    /// when the peer is back: report it as kept, not failed.
    Kept {
        /// Its number.
        number: u64,
    },
    /// The peer is (back) online: hand the outbox to the session ([`Ledger::release`]).
    Online,
}

/// The rules of §6b for one conversation: number ours and keep them until they are
/// acknowledged, handing them to the session in order; show each of theirs once.
#[derive(Debug)]
pub struct Ledger {
    origin: u64,
    next_number: u64,
    shown: HashMap<u64, u64>,
    peer_nick: Option<String>,
    /// Our messages numbered and not yet acknowledged, oldest first.
    unacknowledged: VecDeque<u64>,
    /// Our numbered messages in the session, by the session's id.
    in_session: HashMap<MessageId, u64>,
    /// Our numbered messages not in the session (from the store at start, or given back
    /// because the peer could not take them), by number: they go to the session in
    /// order, before anything newer.
    waiting: BTreeMap<u64, String>,
    records: Vec<Record>,
    /// Copies of messages shown before (by this run or an earlier one), not shown again.
    duplicates: u64,
}

impl Ledger {
    /// The ledger of a conversation as the store holds it.
    pub fn new(conversation: &Conversation) -> Self {
        Self {
            origin: conversation.origin,
            next_number: conversation.next_number,
            shown: conversation.shown.clone(),
            peer_nick: None,
            unacknowledged: conversation.outbox.iter().map(|(n, _)| *n).collect(),
            in_session: HashMap::new(),
            waiting: conversation.outbox.iter().cloned().collect(),
            records: Vec::new(),
            duplicates: 0,
        }
    }

    /// Takes a message of ours: numbered, recorded for the outbox, and handed to the
    /// session unless older ones wait for the peer. Returns its stable id, and the
    /// session's id when the session took it. The record must be committed ([`take_records`](Self::take_records))
    /// before the stack's next `poll_transmit`: persist, then send.
    ///
    /// # Errors
    /// Longer than this side sends now ([`Stack::max_message_len`]; the text comes
    /// back); nothing is recorded then. What is kept goes later whatever the limit is
    /// then ([`release`](Self::release)).
    pub fn queue(
        &mut self,
        stack: &mut Stack,
        now: Instant,
        text: String,
    ) -> Result<(StableId, Option<MessageId>), (SendError, String)> {
        // Refused before it is numbered, so no number is spent on it; a longer message
        // than one datagram holds travels in parts, the id in its last frame.
        let max = stack.max_message_len();
        if text.len() > max {
            return Err((
                SendError::TooLong {
                    len: text.len(),
                    max,
                },
                text,
            ));
        }
        let id = self.number(&text);
        if !self.waiting.is_empty() {
            self.waiting.insert(id.number, text);
            return Ok((id, None));
        }
        match stack.send_numbered(now, id, text.clone()) {
            Ok(mid) => {
                self.in_session.insert(mid, id.number);
                Ok((id, Some(mid)))
            }
            // In the outbox already: it waits for the next chance.
            Err(_) => {
                self.waiting.insert(id.number, text);
                Ok((id, None))
            }
        }
    }

    /// Hands the waiting messages to the session, oldest first, while it takes them:
    /// at start, when the peer is (back) online, at the end of input. Returns what it
    /// took, with the session's ids.
    pub fn release(&mut self, stack: &mut Stack, now: Instant) -> Vec<(MessageId, String)> {
        let mut taken = Vec::new();
        while stack.can_send() {
            let Some((number, text)) = self.waiting.pop_first() else {
                break;
            };
            match stack.send_numbered(now, self.id(number), text.clone()) {
                Ok(mid) => {
                    self.in_session.insert(mid, number);
                    taken.push((mid, text));
                }
                Err(_) => {
                    self.waiting.insert(number, text);
                    break;
                }
            }
        }
        taken
    }

    /// Takes in what an event of the session means here, and says what to do with it.
    pub fn on_event(&mut self, event: &Event) -> Seen {
        match event {
            Event::Received { stable, text, .. } => {
                if self.received(*stable, text) {
                    Seen::Show
                } else {
                    Seen::Copy
                }
            }
            Event::PeerNick { nick } => {
                self.peer_nick(nick);
                Seen::Show
            }
            Event::Delivered { id, .. } => {
                if let Some(number) = self.in_session.remove(id) {
                    self.delivered(number);
                }
                Seen::Show
            }
            Event::Failed { id, text, .. } => match self.in_session.remove(id) {
                Some(number) => {
                    self.waiting.insert(number, text.clone());
                    Seen::Kept { number }
                }
                None => Seen::Show,
            },
            Event::Connected { .. }
            | Event::PeerRestarted { .. }
            | Event::PeerStateChanged {
                state: PeerState::Online,
            } => Seen::Online,
            _ => Seen::Show,
        }
    }

    /// Our number for a message in the session, if it is a numbered one of ours.
    pub fn number_of(&self, id: MessageId) -> Option<u64> {
        self.in_session.get(&id).copied()
    }

    /// Our messages in the outbox that the session does not hold.
    pub fn waiting(&self) -> usize {
        self.waiting.len()
    }

    /// Numbers a message of ours. It must be committed ([`take_records`](Self::take_records))
    /// before it is sent.
    fn number(&mut self, text: &str) -> StableId {
        let number = self.next_number;
        self.next_number += 1;
        self.unacknowledged.push_back(number);
        self.records.push(Record::Queued {
            number,
            text: text.to_owned(),
        });
        self.id(number)
    }

    /// The id of our message `number`.
    pub fn id(&self, number: u64) -> StableId {
        StableId {
            origin: self.origin,
            number,
        }
    }

    /// The peer acknowledged our message `number`.
    fn delivered(&mut self, number: u64) {
        let Some(i) = self.unacknowledged.iter().position(|&n| n == number) else {
            return;
        };
        self.unacknowledged.remove(i);
        if i > 0 {
            self.records.push(Record::Delivered { number });
            return;
        }
        let below = self
            .unacknowledged
            .front()
            .copied()
            .unwrap_or(self.next_number);
        // Consecutive acknowledgements of the oldest share one record.
        if let Some(Record::DeliveredBelow { below: last }) = self.records.last_mut() {
            *last = below;
        } else {
            self.records.push(Record::DeliveredBelow { below });
        }
    }

    /// A message of the peer's arrived (in order, once per run pair). Returns whether to
    /// show it: `false` for one whose id is of the same origin as the last shown and
    /// not above it, a copy of one this or an earlier run already showed.
    fn received(&mut self, stable: Option<StableId>, text: &str) -> bool {
        if let Some(id) = stable {
            if self
                .shown
                .get(&id.origin)
                .is_some_and(|&last| id.number <= last)
            {
                self.duplicates += 1;
                return false;
            }
            self.shown.insert(id.origin, id.number);
        }
        self.records.push(Record::Shown {
            stable,
            text: text.to_owned(),
            nick: self.peer_nick.clone(),
        });
        true
    }

    /// The peer's nickname from now on.
    fn peer_nick(&mut self, nick: &str) {
        self.peer_nick = Some(nick.to_owned());
        self.records.push(Record::PeerNick {
            nick: nick.to_owned(),
        });
    }

    /// What must be made durable, in order, since the last call: commit it all in one
    /// transaction.
    pub fn take_records(&mut self) -> Vec<Record> {
        std::mem::take(&mut self.records)
    }

    /// Changes are waiting to be committed.
    pub fn has_records(&self) -> bool {
        !self.records.is_empty()
    }

    /// Something waiting must be durable before the session may go on: a message of
    /// ours before it is sent, one of the peer's before it is shown and acknowledged.
    /// Acknowledgements of ours alone may wait for the next commit (or the end of the
    /// run): losing them to a crash only sends those messages again, and the peer knows
    /// them by their ids. A bulk transfer then does not commit once per ACK.
    pub fn must_commit(&self) -> bool {
        self.records
            .iter()
            .any(|r| !matches!(r, Record::Delivered { .. } | Record::DeliveredBelow { .. }))
    }

    /// Our messages numbered and not yet acknowledged.
    pub fn unacknowledged(&self) -> usize {
        self.unacknowledged.len()
    }

    /// The number of the last message shown from `origin`, if any.
    pub fn shown_from(&self, origin: u64) -> Option<u64> {
        self.shown.get(&origin).copied()
    }

    /// Copies of already shown messages that were not shown again.
    pub fn duplicates(&self) -> u64 {
        self.duplicates
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_continue_from_the_store_and_copies_are_not_shown() {
        let theirs = |origin, number| Some(StableId { origin, number });
        let mut ledger = Ledger::new(&Conversation {
            origin: 1,
            next_number: 7,
            shown: [(9, 3)].into_iter().collect(),
            outbox: vec![(6, "six".into())],
        });
        assert_eq!(
            ledger.number("seven"),
            StableId {
                origin: 1,
                number: 7
            }
        );
        assert!(!ledger.received(theirs(9, 3), "old"));
        assert!(ledger.received(theirs(9, 4), "new"));
        assert!(ledger.received(None, "unnumbered"));
        // A store made again (another origin) numbers afresh: shown, not a copy; and
        // the first origin is still remembered.
        assert!(ledger.received(theirs(10, 0), "from a new store"));
        assert!(!ledger.received(theirs(10, 0), "again"));
        assert!(!ledger.received(theirs(9, 4), "an old copy from the first store"));
        assert_eq!(ledger.shown_from(9), Some(4));
        ledger.delivered(6);
        ledger.delivered(6);
        assert_eq!(
            ledger.take_records(),
            [
                Record::Queued {
                    number: 7,
                    text: "seven".into()
                },
                Record::Shown {
                    stable: theirs(9, 4),
                    text: "new".into(),
                    nick: None
                },
                Record::Shown {
                    stable: None,
                    text: "unnumbered".into(),
                    nick: None
                },
                Record::Shown {
                    stable: theirs(10, 0),
                    text: "from a new store".into(),
                    nick: None
                },
                Record::DeliveredBelow { below: 7 },
            ]
        );
        assert_eq!((ledger.duplicates(), ledger.unacknowledged()), (3, 1));
    }

    #[test]
    fn a_kept_message_longer_than_todays_limit_still_goes_and_new_ones_are_refused() {
        use crate::pair::Pair;
        use crate::{Security, StackEvent};
        use udpchat_proto::Config;
        // An earlier run kept a 5,000-byte line; this run sends at most 2,000 bytes.
        let config = Config {
            max_message_len: 2_000,
            ..Config::default()
        };
        let mut p = Pair::new(config, Security::Plaintext, Security::Plaintext);
        p.exchange();
        let kept = "k".repeat(5_000);
        let mut ledger = Ledger::new(&Conversation {
            origin: 1,
            next_number: 1,
            shown: HashMap::new(),
            outbox: vec![(0, kept.clone())],
        });
        let taken = ledger.release(&mut p.a, p.now);
        assert_eq!(taken.len(), 1, "the kept message went to the session");
        // A new line over today's limit is refused with its text, and nothing is numbered.
        let (err, text) = ledger
            .queue(&mut p.a, p.now, "n".repeat(3_000))
            .unwrap_err();
        assert!(
            matches!(err, SendError::TooLong { max: 2_000, .. }),
            "{err:?}"
        );
        assert_eq!(text.len(), 3_000);
        assert!(ledger.take_records().is_empty());
        p.exchange();
        let shown: Vec<String> = p
            .events_b()
            .into_iter()
            .filter_map(|e| match e {
                StackEvent::Session(Event::Received { text, .. }) => Some(text),
                _ => None,
            })
            .collect();
        assert_eq!(shown, [kept]);
    }
}
