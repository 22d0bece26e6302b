//! The conversation's memory in the line interface: the store of the data directory and
//! the [`Ledger`] of PROTOCOL.md §6b beside the stack. Our messages are numbered and
//! committed to the outbox before they are sent; the peer's are committed before they
//! are shown and before they are acknowledged; a copy of one shown by an earlier run is
//! not shown again. Messages the peer could not take (it is unreachable, it left) stay
//! in the outbox and go again, in order, when it comes back or when udpchat next runs.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::Path;

use udpchat_proto::{MessageId, StableId};
use udpchat_secure::PublicKey;
use udpchat_stack::{Ledger, Record};
use udpchat_store::{Store, StoreError};

/// The store and the ledger of the conversation with one peer.
#[derive(Debug)]
pub(crate) struct Journal {
    store: Store,
    /// The conversation's key in the store: the peer's identity, or its address.
    peer: String,
    own_nick: Option<String>,
    ledger: Ledger,
    /// Our numbered messages in the session, by the session's id.
    numbers: HashMap<MessageId, u64>,
    /// Our numbered messages in the outbox and not in the session (loaded at start, or
    /// given back because the peer could not take them), by number: they go to the
    /// session in order, before anything newer.
    waiting: BTreeMap<u64, String>,
}

/// The conversation's key: the pinned identity when there is one, else the address.
pub(crate) fn conversation_key(pinned: Option<PublicKey>, peer: SocketAddr) -> String {
    match pinned {
        Some(key) => format!("key:{}", crate::home::encode_key(&key.0)),
        None => format!("addr:{peer}"),
    }
}

impl Journal {
    /// Opens the store of `home` (locking it) and loads the conversation `peer`; what
    /// its outbox holds waits to be sent first.
    ///
    /// # Errors
    /// The store's error, naming the path (locked by another udpchat, damaged, ...).
    pub(crate) fn open(
        home: &Path,
        peer: String,
        own_nick: Option<String>,
    ) -> Result<Self, StoreError> {
        let store = Store::open(home)?;
        let conversation = store.load(&peer)?;
        let ledger = Ledger::new(&conversation);
        Ok(Self {
            store,
            peer,
            own_nick,
            ledger,
            numbers: HashMap::new(),
            waiting: conversation.outbox.into_iter().collect(),
        })
    }

    /// Numbers a message of ours (committed at the next [`commit`](Self::commit),
    /// before anything is sent). Returns its id.
    pub(crate) fn number(&mut self, text: &str) -> StableId {
        self.ledger.number(text)
    }

    /// The id of our message `number`.
    pub(crate) fn id(&self, number: u64) -> StableId {
        self.ledger.id(number)
    }

    /// Messages of the outbox that are not in the session.
    pub(crate) fn has_waiting(&self) -> bool {
        !self.waiting.is_empty()
    }

    /// Keeps a numbered message out of the session for now (older ones wait).
    pub(crate) fn wait(&mut self, number: u64, text: String) {
        self.waiting.insert(number, text);
    }

    /// The oldest waiting message, taken to be handed to the session.
    pub(crate) fn next_waiting(&mut self) -> Option<(u64, String)> {
        self.waiting.pop_first()
    }

    /// Puts a message back at its place among the waiting (the session refused it).
    pub(crate) fn unwait(&mut self, number: u64, text: String) {
        self.waiting.insert(number, text);
    }

    /// The session took message `number` under `id`.
    pub(crate) fn sent(&mut self, id: MessageId, number: u64) {
        self.numbers.insert(id, number);
    }

    /// The message is a numbered one of ours.
    pub(crate) fn number_of(&self, id: MessageId) -> Option<u64> {
        self.numbers.get(&id).copied()
    }

    /// The peer acknowledged it.
    pub(crate) fn delivered(&mut self, id: MessageId) {
        if let Some(number) = self.numbers.remove(&id) {
            self.ledger.delivered(number);
        }
    }

    /// The session gave it up: it stays in the outbox and waits for the peer.
    pub(crate) fn given_back(&mut self, id: MessageId, text: String) -> Option<u64> {
        let number = self.numbers.remove(&id)?;
        self.waiting.insert(number, text);
        Some(number)
    }

    /// A message of the peer's arrived: whether to show it.
    pub(crate) fn received(&mut self, stable: Option<StableId>, text: &str) -> bool {
        self.ledger.received(stable, text)
    }

    /// The peer's nickname from now on.
    pub(crate) fn peer_nick(&mut self, nick: &str) {
        self.ledger.peer_nick(nick);
    }

    /// Makes everything recorded since the last call durable, in one transaction.
    ///
    /// # Errors
    /// The store's error (disk full, ...): nothing of the batch is stored then.
    pub(crate) fn commit(&mut self) -> Result<(), StoreError> {
        if !self.ledger.has_records() {
            return Ok(());
        }
        let records: Vec<Record> = self.ledger.take_records();
        self.store
            .commit(&self.peer, self.own_nick.as_deref(), &records)
    }

    /// Our messages not yet acknowledged: in the session or waiting.
    pub(crate) fn unacknowledged(&self) -> usize {
        self.ledger.unacknowledged()
    }

    /// Copies of messages already shown (by an earlier run) that were not shown again.
    pub(crate) fn duplicates(&self) -> u64 {
        self.ledger.duplicates()
    }
}
