//! The conversation's memory in the line interface: the store of the data directory and
//! the sans-IO [`Ledger`] of PROTOCOL.md §6b beside the stack. Our messages are numbered
//! and committed to the outbox before they are sent; the peer's are committed before
//! they are shown and before they are acknowledged; a copy of one shown by an earlier
//! run is not shown again. Messages the peer could not take (it is unreachable, it
//! left) stay in the outbox and go again, in order, when it comes back or when udpchat
//! next runs.

use std::net::SocketAddr;
use std::path::Path;

use udpchat_secure::PublicKey;
use udpchat_stack::Ledger;
use udpchat_store::{Adoption, Store, StoreError};

/// The store and the ledger of the conversation with one peer.
#[derive(Debug)]
pub(crate) struct Journal {
    store: Store,
    /// The conversation's key in the store: the peer's identity, or its address.
    peer: String,
    own_nick: Option<String>,
    /// The rules; the endpoint drives it beside the stack.
    pub(crate) ledger: Ledger,
    /// Something to tell the user about opening it, once.
    pub(crate) notice: Option<String>,
}

/// The conversation's key: the pinned identity when there is one, else the address.
pub(crate) fn conversation_key(pinned: Option<PublicKey>, peer: SocketAddr) -> String {
    match pinned {
        Some(key) => identity_conversation(&key),
        None => address_conversation(peer),
    }
}

/// The conversation with whoever answers at `peer`, before its identity is pinned.
pub(crate) fn address_conversation(peer: SocketAddr) -> String {
    format!("addr:{peer}")
}

/// The conversation with the peer whose long-term key is `key`, wherever it is.
pub(crate) fn identity_conversation(key: &PublicKey) -> String {
    format!("key:{}", crate::home::encode_key(&key.0))
}

impl Journal {
    /// Opens the store of `home` (locking it) and loads the conversation `peer`; what
    /// its outbox holds waits to be sent first. `earlier` names the conversation a first
    /// contact kept under the peer's address, which `peer` (its identity) takes over.
    ///
    /// # Errors
    /// The store's error, naming the path (locked by another udpchat, damaged, ...).
    pub(crate) fn open(
        home: &Path,
        peer: String,
        earlier: Option<&str>,
        own_nick: Option<String>,
    ) -> Result<Self, StoreError> {
        let mut store = Store::open(home)?;
        let mut notice = None;
        if let Some(earlier) = earlier {
            if let Adoption::Refused { left } = store.adopt(earlier, &peer)? {
                notice = (left > 0).then(|| format!(
                    "{left} message(s) of an earlier chat with this peer (under {earlier}) stay in the outbox unsent: they were numbered before messages it has already had, so it would take them for copies (udpchat outbox lists them)"
                ));
            }
        }
        let conversation = store.load(&peer)?;
        Ok(Self {
            store,
            peer,
            own_nick,
            ledger: Ledger::new(&conversation),
            notice,
        })
    }

    /// The newest `limit` messages of this conversation, oldest first.
    ///
    /// # Errors
    /// The store could not be read.
    pub(crate) fn recent(&self, limit: usize) -> Result<Vec<udpchat_store::Message>, StoreError> {
        self.store.history(Some(&self.peer), None, Some(limit))
    }

    /// The newest `limit` messages of this conversation before row `before`.
    ///
    /// # Errors
    /// The store could not be read.
    pub(crate) fn older(
        &self,
        before: i64,
        limit: usize,
    ) -> Result<Vec<udpchat_store::Message>, StoreError> {
        self.store.history_before(&self.peer, before, limit)
    }

    /// Messages of this conversation containing `needle`, newest `limit`, oldest first.
    ///
    /// # Errors
    /// The store could not be read.
    pub(crate) fn search(
        &self,
        needle: &str,
        limit: usize,
    ) -> Result<Vec<udpchat_store::Message>, StoreError> {
        self.store.search(Some(&self.peer), needle, limit)
    }

    /// The peer's last nickname, if it gave one in an earlier run.
    pub(crate) fn peer_nick(&self) -> Option<String> {
        self.store.peer_nick(&self.peer).ok().flatten()
    }

    /// What the outbox holds in the store: number and text, oldest first.
    ///
    /// # Errors
    /// The store could not be read.
    pub(crate) fn outbox(&self) -> Result<Vec<(u64, String)>, StoreError> {
        Ok(self
            .store
            .outbox(Some(&self.peer))?
            .into_iter()
            .filter_map(|m| Some((m.stable?.number, m.text)))
            .collect())
    }

    /// Makes what the ledger recorded since the last commit durable, in one transaction:
    /// when something must be (see `Ledger::must_commit`), or `all` of it at the end.
    ///
    /// # Errors
    /// The store's error (disk full, ...): nothing of the batch is stored then.
    pub(crate) fn commit(&mut self, all: bool) -> Result<(), StoreError> {
        // Acknowledgements alone wait for the next commit, unless everything is asked.
        let wanted = self.ledger.must_commit() || (all && self.ledger.has_records());
        if !wanted {
            return Ok(());
        }
        let records = self.ledger.take_records();
        self.store
            .commit(&self.peer, self.own_nick.as_deref(), &records)
    }
}
