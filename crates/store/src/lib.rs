//! udpchat's durable conversations in one SQLite database in the data directory
//! (`history.db`): every message in both directions with its time, delivery state and
//! nickname; the outbox (our messages not yet acknowledged); and, per peer, the number
//! our next message gets and the highest number of the peer's that was shown
//! (PROTOCOL.md §6b).
//!
//! The rules live in the sans-IO [`Ledger`](udpchat_stack::Ledger); this crate only makes
//! its [`Record`]s durable, one transaction per batch (group commit), and loads a
//! [`Conversation`] back.
//!
//! Durability: WAL journal with `synchronous = NORMAL`. A committed transaction survives
//! any crash of the process (SIGKILL included), which is what exactly-once across
//! restarts needs: each batch costs a write to the WAL, not an fsync. After a power loss
//! or a crash of the operating system the last transactions may be rolled back
//! (SQLite's documented trade-off for NORMAL in WAL mode); the README says so.
//!
//! One chat at a time per data directory: [`Store::open`] takes an exclusive lock on
//! `udpchat.lock` (holding the owner's process id) for as long as the store is open;
//! readers ([`Store::open_read_only`]) take none, which WAL allows.
#![forbid(unsafe_code)]

use std::collections::{HashMap, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::{params, Connection, ErrorCode, OpenFlags, OptionalExtension};
use udpchat_proto::StableId;
use udpchat_stack::{Conversation, Record};

/// The database file's name in the data directory.
pub const DATABASE: &str = "history.db";
/// The lock file's name in the data directory.
pub const LOCK: &str = "udpchat.lock";

/// Schema migrations, in order: `MIGRATIONS[i]` takes `user_version` from `i` to `i + 1`.
const MIGRATIONS: &[&str] = &["
    CREATE TABLE meta (
        name  TEXT PRIMARY KEY,
        value INTEGER NOT NULL
    );
    -- This store's origin: part of every id it gives (PROTOCOL.md §6b), so a store
    -- made again never reuses an old id. SQLite seeds random() from the system.
    INSERT INTO meta (name, value) VALUES ('origin', random());
    -- The number our next message gets, to any peer: one origin never gives a number
    -- twice, whatever key a conversation has on either side.
    INSERT INTO meta (name, value) VALUES ('next_number', 0);
    -- For each origin (a peer's store) seen, the number of its last message shown.
    CREATE TABLE shown (
        origin INTEGER PRIMARY KEY,
        number INTEGER NOT NULL
    );
    CREATE TABLE conversations (
        id            INTEGER PRIMARY KEY,
        peer          TEXT NOT NULL UNIQUE,
        -- Every message of ours numbered below this is delivered, whatever its state.
        delivered_below INTEGER NOT NULL DEFAULT 0,
        -- No message of ours below this row is in the outbox: where reading it starts.
        outbox_from   INTEGER NOT NULL DEFAULT 0,
        peer_nick     TEXT
    );
    -- state: 0 queued (ours, in the outbox), 1 delivered (ours), 2 received (theirs).
    CREATE TABLE messages (
        id           INTEGER PRIMARY KEY,
        conversation INTEGER NOT NULL REFERENCES conversations (id),
        outgoing INTEGER NOT NULL,
        origin   INTEGER,
        number   INTEGER,
        text     TEXT NOT NULL,
        nick     TEXT,
        at_ms    INTEGER NOT NULL,
        state    INTEGER NOT NULL
    );
    -- No index: rows are appended in time order, so a conversation reads backwards by
    -- row id from its newest message, and the outbox forwards from outbox_from. Every
    -- index would be one more B-tree to update for every line of a bulk pipe.
"];

/// What [`Store::adopt`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Adoption {
    /// The conversation is one now (or there was nothing to take); `queued` of its
    /// messages wait in the outbox.
    Taken {
        /// Messages of the earlier conversation still to be sent.
        queued: usize,
    },
    /// The two were numbered across each other (the peer was reached at two addresses
    /// with messages outstanding at both), so sending the earlier one's messages now
    /// could have the peer take them for copies: they stay where they are, listed by
    /// `udpchat outbox`, and are not sent.
    Refused {
        /// Messages left in the earlier conversation's outbox.
        left: usize,
    },
}

/// What went wrong with the store, said with the path so a person can act on it.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Another udpchat holds the data directory.
    #[error("{home} is in use by another udpchat (process {owner}); close it or give this one another --home")]
    Locked {
        /// The data directory.
        home: PathBuf,
        /// What the lock file says about its owner.
        owner: String,
    },
    /// The file is not a udpchat database (damaged, or something else).
    #[error("{path} is damaged or not a udpchat history; it was left as it is (move it away to start a new history)")]
    Corrupt {
        /// The database file.
        path: PathBuf,
    },
    /// A newer udpchat wrote it.
    #[error("{path} was written by a newer udpchat (schema {found}, this one knows up to {known}); it was left as it is")]
    TooNew {
        /// The database file.
        path: PathBuf,
        /// Its schema version.
        found: i64,
        /// The newest this build knows.
        known: i64,
    },
    /// No space left.
    #[error("cannot write {path}: the disk is full")]
    Full {
        /// The database file.
        path: PathBuf,
    },
    /// The directory or file may not be written.
    #[error("cannot write {path}: permission denied or read-only file system")]
    ReadOnly {
        /// The database file or directory.
        path: PathBuf,
    },
    /// Anything else SQLite reports.
    #[error("{path}: {source}")]
    Sqlite {
        /// The database file.
        path: PathBuf,
        /// What SQLite said.
        source: rusqlite::Error,
    },
    /// An earlier commit through this handle failed: nothing more is written this run.
    #[error("{path}: an earlier commit failed ({reason}); nothing more is written this run")]
    EarlierFailure {
        /// The database file.
        path: PathBuf,
        /// What the failed commit said.
        reason: String,
    },
    /// A file system error outside SQLite (the lock file).
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
}

/// Where a message stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// Ours, accepted and not yet acknowledged: in the outbox.
    Queued,
    /// Ours, acknowledged by the peer.
    Delivered,
    /// The peer's, shown.
    Received,
}

impl State {
    /// The name stored and printed.
    pub fn code(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Delivered => "delivered",
            Self::Received => "received",
        }
    }

    fn from_sql(n: i64) -> Self {
        match n {
            0 => Self::Queued,
            1 => Self::Delivered,
            _ => Self::Received,
        }
    }
}

/// One message of the history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// The conversation: the peer's identity (`key:HEX`) or address (`addr:IP:PORT`).
    pub peer: String,
    /// Ours (true) or the peer's.
    pub outgoing: bool,
    /// The sender's store and number for it, if it has an id.
    pub stable: Option<StableId>,
    /// The text.
    pub text: String,
    /// The sender's nickname then, if known.
    pub nick: Option<String>,
    /// When it was stored, in milliseconds since the Unix epoch.
    pub at_ms: i64,
    /// Where it stands.
    pub state: State,
    /// Its row: messages are in row order, and older ones are asked for below it.
    pub row: i64,
}

/// The open database of one data directory.
#[derive(Debug)]
pub struct Store {
    conn: Connection,
    path: PathBuf,
    /// Conversation row ids by peer key, once known.
    conversations: HashMap<String, i64>,
    /// The rows of our messages not yet known delivered, per conversation, in number
    /// order (numbers grow with rows): an acknowledgement moves the outbox's start to a
    /// row without an index.
    rows: HashMap<i64, VecDeque<(u64, i64)>>,
    /// Held for the store's life: one chat per data directory.
    _lock: Option<File>,
    /// A commit failed: the memory of rows may be ahead of the file, so nothing more is
    /// committed through this handle (the chat stops; the next run starts from disk).
    poisoned: Option<String>,
}

/// Rows one INSERT statement takes: the per-statement cost of SQLite's virtual
/// machine is shared by this many messages of a batch (8 parameters each).
const ROWS_PER_INSERT: usize = 32;

/// A message row about to be inserted.
struct NewRow<'a> {
    outgoing: bool,
    origin: Option<i64>,
    number: Option<i64>,
    text: &'a str,
    nick: Option<&'a str>,
    state: i64,
}

/// `INSERT INTO messages ... VALUES (...), ...` for `rows` rows.
fn insert_sql(rows: usize) -> String {
    let mut sql = String::from(
        "INSERT INTO messages (conversation, outgoing, origin, number, text, nick, at_ms, state) VALUES ",
    );
    for i in 0..rows {
        if i > 0 {
            sql.push(',');
        }
        sql.push_str("(?,?,?,?,?,?,?,?)");
    }
    sql
}

/// Numbers are u64 on the wire and i64 in SQLite: stored bit for bit.
fn to_sql(n: u64) -> i64 {
    n.cast_signed()
}

fn from_sql(n: i64) -> u64 {
    n.cast_unsigned()
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

impl Store {
    /// Opens (creating on first use) the store of the data directory `home` for a chat,
    /// and locks it against a second chat with the same directory.
    ///
    /// # Errors
    /// [`StoreError::Locked`] naming the other process; [`StoreError::Corrupt`] or
    /// [`StoreError::TooNew`] (the file is never touched then); a write error with the path.
    pub fn open(home: &Path) -> Result<Self, StoreError> {
        let lock = lock(home)?;
        let path = home.join(DATABASE);
        let conn = Connection::open(&path).map_err(|e| classify(&path, e))?;
        let mut store = Self::over(conn, path, Some(lock));
        store.prepare()?;
        Ok(store)
    }

    /// Opens the store of `home` to read it (`udpchat history`, `udpchat outbox`) while
    /// a chat may be using it. `None` when there is no history yet.
    ///
    /// # Errors
    /// As [`open`](Self::open), without the lock.
    pub fn open_read_only(home: &Path) -> Result<Option<Self>, StoreError> {
        let path = home.join(DATABASE);
        if !path.exists() {
            return Ok(None);
        }
        let conn = Connection::open_with_flags(&path, OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(|e| classify(&path, e))?;
        let store = Self::over(conn, path, None);
        store
            .conn
            .busy_timeout(std::time::Duration::from_secs(2))
            .map_err(|e| store.error(e))?;
        let version = store.version()?;
        // A chat is making it right now: nothing in it yet.
        if version == 0 {
            return Ok(None);
        }
        Ok(Some(store))
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn error(&self, e: rusqlite::Error) -> StoreError {
        classify(&self.path, e)
    }

    /// A store over an open connection, with the directory's lock if it holds one.
    fn over(conn: Connection, path: PathBuf, lock: Option<File>) -> Self {
        Self {
            conn,
            path,
            conversations: HashMap::new(),
            rows: HashMap::new(),
            _lock: lock,
            poisoned: None,
        }
    }

    /// The schema version, refused when a newer udpchat wrote it.
    fn version(&self) -> Result<i64, StoreError> {
        let version: i64 = self
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(|e| self.error(e))?;
        let known = MIGRATIONS.len() as i64;
        if version > known {
            return Err(StoreError::TooNew {
                path: self.path.clone(),
                found: version,
                known,
            });
        }
        Ok(version)
    }

    /// WAL, NORMAL synchronisation, and the schema brought up to date in one
    /// transaction per migration.
    fn prepare(&mut self) -> Result<(), StoreError> {
        // The first read of the header: a file that is not a database fails here.
        let version = self.version()?;
        self.conn
            .pragma_update(None, "journal_mode", "WAL")
            .map_err(|e| self.error(e))?;
        self.conn
            .pragma_update(None, "synchronous", "NORMAL")
            .map_err(|e| self.error(e))?;
        // Room for an INSERT of every chunk size besides the few other statements.
        self.conn
            .set_prepared_statement_cache_capacity(ROWS_PER_INSERT + 16);
        // Fewer, larger checkpoints: a hot page (the newest leaf of the messages table
        // and its indexes) is copied into the database once per checkpoint, not once per
        // few batches. 16 MiB of page cache keeps those pages in memory.
        self.conn
            .pragma_update(None, "wal_autocheckpoint", 8192)
            .map_err(|e| self.error(e))?;
        self.conn
            .pragma_update(None, "cache_size", -16384)
            .map_err(|e| self.error(e))?;
        for (i, sql) in MIGRATIONS
            .iter()
            .enumerate()
            .skip(usize::try_from(version).unwrap_or(0))
        {
            let tx = self
                .conn
                .transaction()
                .map_err(|e| classify(&self.path, e))?;
            tx.execute_batch(sql).map_err(|e| classify(&self.path, e))?;
            tx.pragma_update(None, "user_version", i as i64 + 1)
                .map_err(|e| classify(&self.path, e))?;
            tx.commit().map_err(|e| classify(&self.path, e))?;
        }
        Ok(())
    }

    /// What the store holds about the conversation with `peer`.
    ///
    /// # Errors
    /// A read error with the path.
    pub fn load(&mut self, peer: &str) -> Result<Conversation, StoreError> {
        let origin: i64 = self
            .conn
            .query_row("SELECT value FROM meta WHERE name = 'origin'", [], |r| {
                r.get(0)
            })
            .map_err(|e| self.error(e))?;
        let next_number: i64 = self
            .conn
            .query_row(
                "SELECT value FROM meta WHERE name = 'next_number'",
                [],
                |r| r.get(0),
            )
            .map_err(|e| self.error(e))?;
        let shown = {
            let mut stmt = self
                .conn
                .prepare("SELECT origin, number FROM shown")
                .map_err(|e| self.error(e))?;
            let rows = stmt
                .query_map([], |r| Ok((from_sql(r.get(0)?), from_sql(r.get(1)?))))
                .map_err(|e| self.error(e))?;
            rows.collect::<Result<HashMap<u64, u64>, _>>()
                .map_err(|e| self.error(e))?
        };
        let mut outbox = Vec::new();
        for (row, conversation, m) in self.outbox_rows(Some(peer))? {
            if let Some(id) = m.stable {
                self.rows
                    .entry(conversation)
                    .or_default()
                    .push_back((id.number, row));
                outbox.push((id.number, m.text));
            }
        }
        Ok(Conversation {
            origin: from_sql(origin),
            next_number: from_sql(next_number),
            shown,
            outbox,
        })
    }

    /// Makes the conversation `from` part of `into`, before `into` is loaded: a first
    /// contact's conversation is keyed by the peer's address (its identity is not
    /// pinned yet), the later ones by its identity, and what the first run left in the
    /// outbox must go out with them. When `into` does not exist yet, `from` is renamed.
    /// When it does, `from`'s messages join it only if that keeps PROTOCOL.md §6b's
    /// order: everything `from` still has queued is numbered after everything of ours
    /// in `into`, and the other way round; otherwise both stay as they are (see
    /// [`Adoption`]).
    ///
    /// # Errors
    /// A read or write error with the path; nothing changes then.
    pub fn adopt(&mut self, from: &str, into: &str) -> Result<Adoption, StoreError> {
        let path = self.path.clone();
        let fail = |e| classify(&path, e);
        let tx = self.conn.transaction().map_err(fail)?;
        let ids = |peer: &str| -> rusqlite::Result<Option<(i64, i64, i64)>> {
            tx.query_row(
                "SELECT id, delivered_below, outbox_from FROM conversations WHERE peer = ?1",
                [peer],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()
        };
        let Some((old, old_below, old_from)) = ids(from).map_err(fail)? else {
            return Ok(Adoption::Taken { queued: 0 });
        };
        // Settle what `from`'s acknowledgement point already says was delivered, so
        // the rows say it themselves wherever they go.
        tx.execute(
            "UPDATE messages SET state = 1
             WHERE conversation = ?1 AND outgoing = 1 AND state = 0 AND number < ?2",
            params![old, old_below],
        )
        .map_err(fail)?;
        let (queued, first_queued_number, first_queued_row): (i64, Option<i64>, Option<i64>) = tx
            .query_row(
                "SELECT count(*), min(number), min(id) FROM messages
                 WHERE conversation = ?1 AND outgoing = 1 AND state = 0 AND id >= ?2",
                params![old, old_from],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .map_err(fail)?;
        match ids(into).map_err(fail)? {
            None => {
                tx.execute(
                    "UPDATE conversations SET peer = ?2 WHERE id = ?1",
                    params![old, into],
                )
                .map_err(fail)?;
            }
            Some((new, new_below, new_from)) => {
                let newest_of_ours: Option<i64> = tx
                    .query_row(
                        "SELECT max(number) FROM messages WHERE conversation = ?1 AND outgoing = 1",
                        [new],
                        |r| r.get(0),
                    )
                    .map_err(fail)?;
                // And the other way: what `into` still has queued must not be numbered
                // below anything of ours `from` already sent (the peer may have shown it).
                let (into_first_queued, from_newest): (Option<i64>, Option<i64>) = tx
                    .query_row(
                        "SELECT
                           (SELECT min(number) FROM messages WHERE conversation = ?1
                              AND outgoing = 1 AND state = 0 AND number >= ?2 AND id >= ?3),
                           (SELECT max(number) FROM messages WHERE conversation = ?4
                              AND outgoing = 1)",
                        params![new, new_below, new_from, old],
                        |r| Ok((r.get(0)?, r.get(1)?)),
                    )
                    .map_err(fail)?;
                let theirs_after_ours = first_queued_number.is_none_or(|first| {
                    first >= new_below && newest_of_ours.is_none_or(|newest| first > newest)
                });
                let ours_after_theirs = into_first_queued
                    .zip(from_newest)
                    .is_none_or(|(first, newest)| first > newest);
                if !(theirs_after_ours && ours_after_theirs) {
                    return Ok(Adoption::Refused {
                        left: usize::try_from(queued).unwrap_or(0),
                    });
                }
                tx.execute(
                    "UPDATE messages SET conversation = ?2 WHERE conversation = ?1",
                    params![old, new],
                )
                .map_err(fail)?;
                let from_row = first_queued_row.map_or(new_from, |row| row.min(new_from));
                tx.execute(
                    "UPDATE conversations
                     SET outbox_from = ?2, peer_nick = coalesce(peer_nick, ?3)
                     WHERE id = ?1",
                    params![
                        new,
                        from_row,
                        tx.query_row(
                            "SELECT peer_nick FROM conversations WHERE id = ?1",
                            [old],
                            |r| r.get::<_, Option<String>>(0),
                        )
                        .map_err(fail)?
                    ],
                )
                .map_err(fail)?;
                tx.execute("DELETE FROM conversations WHERE id = ?1", [old])
                    .map_err(fail)?;
            }
        }
        tx.commit().map_err(fail)?;
        // Neither is loaded yet (see above); drop what any cache says of them.
        self.conversations.remove(from);
        self.conversations.remove(into);
        self.rows.clear();
        Ok(Adoption::Taken {
            queued: usize::try_from(queued).unwrap_or(0),
        })
    }

    /// The conversation with a pinned peer (`key:…`) whose last nickname is `nick`, the
    /// newest if several had it: how `udpchat NICK` finds a peer nobody named.
    ///
    /// # Errors
    /// A read error with the path.
    pub fn conversation_named(&self, nick: &str) -> Result<Option<String>, StoreError> {
        self.conn
            .query_row(
                "SELECT peer FROM conversations
                 WHERE peer_nick = ?1 AND peer LIKE 'key:%' ORDER BY id DESC LIMIT 1",
                [nick],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.error(e))
    }

    /// The peer's last nickname, if it gave one.
    ///
    /// # Errors
    /// A read error with the path.
    pub fn peer_nick(&self, peer: &str) -> Result<Option<String>, StoreError> {
        self.conn
            .query_row(
                "SELECT peer_nick FROM conversations WHERE peer = ?1",
                [peer],
                |r| r.get(0),
            )
            .optional()
            .map(Option::flatten)
            .map_err(|e| self.error(e))
    }

    /// Makes `records` of the conversation with `peer` durable, in one transaction.
    /// `own_nick` is stored with our messages.
    ///
    /// # Errors
    /// [`StoreError::Full`], [`StoreError::ReadOnly`] or another write error, with the
    /// path; nothing of the batch is then stored.
    pub fn commit(
        &mut self,
        peer: &str,
        own_nick: Option<&str>,
        records: &[Record],
    ) -> Result<(), StoreError> {
        if records.is_empty() {
            return Ok(());
        }
        if let Some(reason) = &self.poisoned {
            return Err(StoreError::EarlierFailure {
                path: self.path.clone(),
                reason: reason.clone(),
            });
        }
        let result = self.commit_batch(peer, own_nick, records);
        if let Err(e) = &result {
            self.poisoned = Some(e.to_string());
        }
        result
    }

    fn commit_batch(
        &mut self,
        peer: &str,
        own_nick: Option<&str>,
        records: &[Record],
    ) -> Result<(), StoreError> {
        let at = now_ms();
        let path = self.path.clone();
        let fail = |e| classify(&path, e);
        let cached = self.conversations.get(peer).copied();
        let tx = self.conn.transaction().map_err(fail)?;
        let conversation: i64 = match cached {
            Some(id) => id,
            None => {
                tx.prepare_cached("INSERT OR IGNORE INTO conversations (peer) VALUES (?1)")
                    .map_err(fail)?
                    .execute([peer])
                    .map_err(fail)?;
                tx.prepare_cached("SELECT id FROM conversations WHERE peer = ?1")
                    .map_err(fail)?
                    .query_row([peer], |r| r.get(0))
                    .map_err(fail)?
            }
        };
        // The conversation's row changes once per batch, to its final values; messages
        // go in through cached statements; acknowledgements of consecutive numbers
        // (the usual case) are one update per run.
        let mut next_number = None;
        let mut delivered_below = None;
        let mut shown: HashMap<u64, u64> = HashMap::new();
        let mut nick = None;
        let mut delivered: Vec<u64> = Vec::new();
        let mut inserted: Vec<(u64, i64)> = Vec::new();
        // The messages of the batch, inserted many rows per statement.
        let origin: i64 = tx
            .prepare_cached("SELECT value FROM meta WHERE name = 'origin'")
            .map_err(fail)?
            .query_row([], |r| r.get(0))
            .map_err(fail)?;
        let mut new_rows: Vec<NewRow<'_>> = Vec::new();
        for record in records {
            match record {
                Record::Queued { number, text } => {
                    new_rows.push(NewRow {
                        outgoing: true,
                        origin: Some(origin),
                        number: Some(to_sql(*number)),
                        text,
                        nick: own_nick,
                        state: 0,
                    });
                    next_number = Some(number.saturating_add(1));
                }
                Record::Delivered { number } => delivered.push(*number),
                Record::Shown { stable, text, nick } => {
                    new_rows.push(NewRow {
                        outgoing: false,
                        origin: stable.map(|s| to_sql(s.origin)),
                        number: stable.map(|s| to_sql(s.number)),
                        text,
                        nick: nick.as_deref(),
                        state: 2,
                    });
                    if let Some(id) = stable {
                        shown.insert(id.origin, id.number);
                    }
                }
                Record::DeliveredBelow { below } => delivered_below = Some(*below),
                Record::PeerNick { nick: n } => nick = Some(n.as_str()),
            }
        }
        for chunk in new_rows.chunks(ROWS_PER_INSERT) {
            let mut values: Vec<&dyn rusqlite::ToSql> = Vec::with_capacity(8 * chunk.len());
            for row in chunk {
                values.extend_from_slice(&[
                    &conversation,
                    &row.outgoing,
                    &row.origin,
                    &row.number,
                    &row.text,
                    &row.nick,
                    &at,
                    &row.state,
                ]);
            }
            tx.prepare_cached(&insert_sql(chunk.len()))
                .map_err(fail)?
                .execute(rusqlite::params_from_iter(values))
                .map_err(fail)?;
            // One statement's rows take consecutive row ids, ending at the last.
            let last = tx.last_insert_rowid();
            let first = last - (chunk.len() as i64 - 1);
            for (i, row) in chunk.iter().enumerate() {
                if let (true, Some(number)) = (row.outgoing, row.number) {
                    inserted.push((from_sql(number), first + i as i64));
                }
            }
        }
        if let Some(next) = next_number {
            tx.prepare_cached("UPDATE meta SET value = max(value, ?1) WHERE name = 'next_number'")
                .map_err(fail)?
                .execute(params![to_sql(next)])
                .map_err(fail)?;
        }
        let rows = self.rows.entry(conversation).or_default();
        rows.extend(inserted);
        if let Some(below) = delivered_below {
            // The outbox now starts at the row of `below`, or after the newest row when
            // nothing of ours is outstanding.
            while rows.front().is_some_and(|&(n, _)| n < below) {
                rows.pop_front();
            }
            let from = match rows.front() {
                Some(&(_, row)) => row,
                None => tx.last_insert_rowid().saturating_add(1),
            };
            tx.prepare_cached(
                "UPDATE conversations SET delivered_below = ?2, outbox_from = max(outbox_from, ?3)
                 WHERE id = ?1",
            )
            .map_err(fail)?
            .execute(params![conversation, to_sql(below), from])
            .map_err(fail)?;
        }
        for (origin, number) in shown {
            tx.prepare_cached(
                "INSERT INTO shown (origin, number) VALUES (?1, ?2)
                 ON CONFLICT (origin) DO UPDATE SET number = excluded.number",
            )
            .map_err(fail)?
            .execute(params![to_sql(origin), to_sql(number)])
            .map_err(fail)?;
        }
        if let Some(nick) = nick {
            tx.prepare_cached("UPDATE conversations SET peer_nick = ?2 WHERE id = ?1")
                .map_err(fail)?
                .execute(params![conversation, nick])
                .map_err(fail)?;
        }
        for number in delivered {
            // Out of order (rare: acknowledgements are cumulative): by row when known.
            let known = rows
                .binary_search_by_key(&number, |&(n, _)| n)
                .ok()
                .and_then(|i| rows.remove(i));
            match known.map(|(_, row)| row) {
                Some(row) => tx
                    .prepare_cached("UPDATE messages SET state = 1 WHERE id = ?1")
                    .map_err(fail)?
                    .execute([row])
                    .map_err(fail)?,
                None => tx
                    .prepare_cached(
                        "UPDATE messages SET state = 1
                         WHERE conversation = ?1 AND outgoing = 1 AND number = ?2",
                    )
                    .map_err(fail)?
                    .execute(params![conversation, to_sql(number)])
                    .map_err(fail)?,
            };
        }
        tx.commit().map_err(fail)?;
        self.conversations.insert(peer.to_owned(), conversation);
        Ok(())
    }

    /// The history, oldest first: of `peer` or of every conversation, since
    /// `since_ms`, the newest `limit` messages.
    ///
    /// # Errors
    /// A read error with the path.
    pub fn history(
        &self,
        peer: Option<&str>,
        since_ms: Option<i64>,
        limit: Option<usize>,
    ) -> Result<Vec<Message>, StoreError> {
        let limit = limit.map_or(-1, |l| i64::try_from(l).unwrap_or(i64::MAX));
        self.newest_where(peer, "?2 IS NULL OR at_ms >= ?2", &since_ms, limit)
    }

    /// The newest `limit` messages (all if negative) of `peer` (or of everyone) that
    /// meet `condition` on `?2`, oldest first; ours show as delivered below the
    /// conversation's watermark.
    fn newest_where(
        &self,
        peer: Option<&str>,
        condition: &str,
        value: &dyn rusqlite::ToSql,
        limit: i64,
    ) -> Result<Vec<Message>, StoreError> {
        let mut stmt = self
            .conn
            .prepare(&format!(
                "SELECT c.peer, m.outgoing, m.origin, m.number, m.text, m.nick, m.at_ms,
                        CASE WHEN m.state = 0 AND m.number < c.delivered_below THEN 1 ELSE m.state END,
                        m.id
                 FROM (
                     SELECT * FROM messages
                     WHERE (?1 IS NULL OR conversation = (SELECT id FROM conversations WHERE peer = ?1))
                       AND ({condition})
                     ORDER BY id DESC LIMIT ?3
                 ) AS m JOIN conversations AS c ON c.id = m.conversation
                 ORDER BY m.id"
            ))
            .map_err(|e| self.error(e))?;
        let rows = stmt
            .query_map(params![peer, value, limit], row_to_message)
            .map_err(|e| self.error(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.error(e))
    }

    /// The newest `limit` messages of `peer` older than row `before`, oldest first: the
    /// full-screen chat scrolling back.
    ///
    /// # Errors
    /// A read error with the path.
    pub fn history_before(
        &self,
        peer: &str,
        before: i64,
        limit: usize,
    ) -> Result<Vec<Message>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.newest_where(Some(peer), "id < ?2", &before, limit)
    }

    /// Messages of `peer` (or of everyone) whose text contains `needle` (ASCII letters
    /// in any case), newest `limit` of them, oldest first: `/find`.
    ///
    /// # Errors
    /// A read error with the path.
    pub fn search(
        &self,
        peer: Option<&str>,
        needle: &str,
        limit: usize,
    ) -> Result<Vec<Message>, StoreError> {
        // LIKE with its wildcards escaped: the needle is matched as typed.
        let pattern = format!(
            "%{}%",
            needle
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_")
        );
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.newest_where(peer, "text LIKE ?2 ESCAPE '\\'", &pattern, limit)
    }

    /// Our messages not yet acknowledged, oldest first: of `peer` or of everyone.
    ///
    /// # Errors
    /// A read error with the path.
    pub fn outbox(&self, peer: Option<&str>) -> Result<Vec<Message>, StoreError> {
        Ok(self
            .outbox_rows(peer)?
            .into_iter()
            .map(|(_, _, m)| m)
            .collect())
    }

    /// The outbox with each message's row and conversation: per conversation, a scan of
    /// the rows from where its outbox starts (a range of row ids, no index needed).
    fn outbox_rows(&self, peer: Option<&str>) -> Result<Vec<(i64, i64, Message)>, StoreError> {
        let conversations: Vec<(i64, String, i64, i64)> = {
            let mut stmt = self
                .conn
                .prepare(
                    "SELECT id, peer, outbox_from, delivered_below FROM conversations
                     WHERE ?1 IS NULL OR peer = ?1 ORDER BY id",
                )
                .map_err(|e| self.error(e))?;
            let rows = stmt
                .query_map(params![peer], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
                })
                .map_err(|e| self.error(e))?;
            rows.collect::<Result<_, _>>().map_err(|e| self.error(e))?
        };
        let mut out = Vec::new();
        for (id, peer, from, below) in conversations {
            let mut stmt = self
                .conn
                .prepare_cached(
                    "SELECT ?2, outgoing, origin, number, text, nick, at_ms, state, id
                     FROM messages
                     WHERE id >= ?3 AND conversation = ?1 AND outgoing = 1 AND state = 0
                       AND number >= ?4
                     ORDER BY id",
                )
                .map_err(|e| self.error(e))?;
            let rows = stmt
                .query_map(params![id, peer, from, below], |r| {
                    Ok((r.get(8)?, id, row_to_message(r)?))
                })
                .map_err(|e| self.error(e))?;
            for row in rows {
                out.push(row.map_err(|e| self.error(e))?);
            }
        }
        Ok(out)
    }
}

fn row_to_message(r: &rusqlite::Row<'_>) -> rusqlite::Result<Message> {
    let origin = r.get::<_, Option<i64>>(2)?;
    let number = r.get::<_, Option<i64>>(3)?;
    Ok(Message {
        peer: r.get(0)?,
        outgoing: r.get::<_, i64>(1)? != 0,
        stable: origin.zip(number).map(|(o, n)| StableId {
            origin: from_sql(o),
            number: from_sql(n),
        }),
        text: r.get(4)?,
        nick: r.get(5)?,
        at_ms: r.get(6)?,
        state: State::from_sql(r.get(7)?),
        row: r.get(8)?,
    })
}

/// Names what SQLite said in the terms a person acts on.
fn classify(path: &Path, e: rusqlite::Error) -> StoreError {
    let path = path.to_path_buf();
    match e.sqlite_error_code() {
        Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt) => StoreError::Corrupt { path },
        Some(ErrorCode::DiskFull) => StoreError::Full { path },
        Some(ErrorCode::ReadOnly | ErrorCode::CannotOpen | ErrorCode::PermissionDenied) => {
            StoreError::ReadOnly { path }
        }
        _ => StoreError::Sqlite { path, source: e },
    }
}

/// Takes the data directory's lock, writing our process id into it; says who holds it
/// when another process does.
fn lock(home: &Path) -> Result<File, StoreError> {
    let path = home.join(LOCK);
    let io = |source| StoreError::Io {
        path: path.clone(),
        source,
    };
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::ReadOnlyFilesystem => {
                StoreError::ReadOnly { path: path.clone() }
            }
            _ => io(e),
        })?;
    if file.try_lock().is_err() {
        let mut owner = String::new();
        let _ = file.read_to_string(&mut owner);
        let owner = owner.trim();
        return Err(StoreError::Locked {
            home: home.to_path_buf(),
            owner: if owner.is_empty() {
                "unknown".to_owned()
            } else {
                owner.to_owned()
            },
        });
    }
    file.set_len(0).map_err(io)?;
    file.rewind().map_err(io)?;
    write!(file, "{}", std::process::id()).map_err(io)?;
    Ok(file)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("udpchat-store-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn a_conversation_comes_back_as_committed() {
        let home = scratch("back");
        let mut store = Store::open(&home).unwrap();
        store
            .commit(
                "key:ab",
                Some("ada"),
                &[
                    Record::Queued {
                        number: 0,
                        text: "one".into(),
                    },
                    Record::Queued {
                        number: 1,
                        text: "two".into(),
                    },
                    Record::DeliveredBelow { below: 1 },
                    Record::PeerNick { nick: "bob".into() },
                    Record::Shown {
                        stable: Some(StableId {
                            origin: 5,
                            number: 9,
                        }),
                        text: "hi".into(),
                        nick: Some("bob".into()),
                    },
                ],
            )
            .unwrap();
        drop(store);
        let mut store = Store::open(&home).unwrap();
        let loaded = store.load("key:ab").unwrap();
        assert_eq!(
            loaded,
            Conversation {
                origin: loaded.origin,
                next_number: 2,
                shown: [(5, 9)].into_iter().collect(),
                outbox: vec![(1, "two".into())],
            }
        );
        // Another conversation: no outbox, but the same numbering and what was shown
        // from each origin (a peer named differently is still known by its origin).
        assert_eq!(
            store.load("key:cd").unwrap(),
            Conversation {
                origin: loaded.origin,
                next_number: 2,
                shown: [(5, 9)].into_iter().collect(),
                outbox: Vec::new(),
            }
        );
        // Another store, another origin.
        let mut other = Store::open(&scratch("other")).unwrap();
        assert_ne!(other.load("key:ab").unwrap().origin, loaded.origin);
        assert_eq!(store.peer_nick("key:ab").unwrap().as_deref(), Some("bob"));
        assert_eq!(
            store.conversation_named("bob").unwrap().as_deref(),
            Some("key:ab")
        );
        assert_eq!(store.conversation_named("eve").unwrap(), None);
        let history = store.history(Some("key:ab"), None, None).unwrap();
        let states: Vec<_> = history.iter().map(|m| (m.text.as_str(), m.state)).collect();
        assert_eq!(
            states,
            [
                ("one", State::Delivered),
                ("two", State::Queued),
                ("hi", State::Received)
            ]
        );
        assert_eq!(store.history(None, None, Some(1)).unwrap()[0].text, "hi");
        let before = store.history(None, None, Some(1)).unwrap()[0].row;
        let older: Vec<_> = store
            .history_before("key:ab", before, 1)
            .unwrap()
            .into_iter()
            .map(|m| m.text)
            .collect();
        assert_eq!(older, ["two"]);
        let found: Vec<_> = store
            .search(Some("key:ab"), "O", 10)
            .unwrap()
            .into_iter()
            .map(|m| m.text)
            .collect();
        assert_eq!(found, ["one", "two"], "case-insensitive for ASCII");
        assert!(
            store.search(None, "%", 10).unwrap().is_empty(),
            "wildcards are literal"
        );
    }

    #[test]
    fn the_identity_takes_over_what_a_first_contact_left() {
        let queued = |n: u64| Record::Queued {
            number: n,
            text: format!("m{n}"),
        };
        let outbox = |store: &mut Store, peer: &str| -> Vec<u64> {
            store
                .load(peer)
                .unwrap()
                .outbox
                .iter()
                .map(|(n, _)| *n)
                .collect()
        };
        // The identity's conversation does not exist yet: the address's is renamed.
        let mut store = Store::open(&scratch("adopt-rename")).unwrap();
        store
            .commit(
                "addr:a",
                None,
                &[queued(0), queued(1), Record::DeliveredBelow { below: 1 }],
            )
            .unwrap();
        assert_eq!(
            store.adopt("addr:a", "key:k").unwrap(),
            Adoption::Taken { queued: 1 }
        );
        assert_eq!(outbox(&mut store, "key:k"), [1]);
        assert!(outbox(&mut store, "addr:a").is_empty());
        assert_eq!(store.history(Some("key:k"), None, None).unwrap().len(), 2);
        assert_eq!(
            store.adopt("addr:a", "key:k").unwrap(),
            Adoption::Taken { queued: 0 },
            "nothing left to take"
        );

        // It exists, with older messages of ours delivered: the queued ones join its
        // outbox after them, and the history is one.
        let adopt_merge = scratch("adopt-merge");
        let mut store = Store::open(&adopt_merge).unwrap();
        store
            .commit(
                "key:k",
                None,
                &[queued(0), Record::DeliveredBelow { below: 1 }],
            )
            .unwrap();
        store
            .commit(
                "key:k",
                None,
                &[Record::Shown {
                    stable: None,
                    text: "theirs".into(),
                    nick: Some("bob".into()),
                }],
            )
            .unwrap();
        store
            .commit("addr:a", None, &[queued(1), queued(2)])
            .unwrap();
        drop(store);
        let mut store = Store::open(&adopt_merge).unwrap();
        assert_eq!(
            store.adopt("addr:a", "key:k").unwrap(),
            Adoption::Taken { queued: 2 }
        );
        assert_eq!(outbox(&mut store, "key:k"), [1, 2]);
        let texts: Vec<_> = store
            .history(Some("key:k"), None, None)
            .unwrap()
            .into_iter()
            .map(|m| m.text)
            .collect();
        assert_eq!(texts, ["m0", "theirs", "m1", "m2"]);

        // Its messages are newer than what the address's outbox holds: sending those
        // now would break the order the peer keeps, so both stay as they are.
        let adopt_refuse = scratch("adopt-refuse");
        let mut store = Store::open(&adopt_refuse).unwrap();
        store.commit("addr:a", None, &[queued(0)]).unwrap();
        store.commit("key:k", None, &[queued(1)]).unwrap();
        drop(store);
        let mut store = Store::open(&adopt_refuse).unwrap();
        assert_eq!(
            store.adopt("addr:a", "key:k").unwrap(),
            Adoption::Refused { left: 1 }
        );
        assert_eq!(outbox(&mut store, "key:k"), [1]);
        assert_eq!(outbox(&mut store, "addr:a"), [0]);

        // The other way: the identity's outbox holds a message numbered below one the
        // address's conversation delivered (the peer moved with messages outstanding).
        let adopt_cross = scratch("adopt-cross");
        let mut store = Store::open(&adopt_cross).unwrap();
        store.commit("key:k", None, &[queued(0)]).unwrap();
        store
            .commit(
                "addr:a",
                None,
                &[queued(1), Record::DeliveredBelow { below: 2 }],
            )
            .unwrap();
        drop(store);
        let mut store = Store::open(&adopt_cross).unwrap();
        assert_eq!(
            store.adopt("addr:a", "key:k").unwrap(),
            Adoption::Refused { left: 0 }
        );
    }

    #[test]
    fn the_outbox_follows_acknowledgements_across_reopening() {
        let home = scratch("outbox");
        let queued = |n: u64| Record::Queued {
            number: n,
            text: format!("m{n}"),
        };
        let numbers = |store: &mut Store| -> Vec<u64> {
            store
                .load("p")
                .unwrap()
                .outbox
                .iter()
                .map(|(n, _)| *n)
                .collect()
        };
        let mut store = Store::open(&home).unwrap();
        store
            .commit("p", None, &(0..5).map(queued).collect::<Vec<_>>())
            .unwrap();
        store
            .commit("p", None, &[Record::DeliveredBelow { below: 3 }])
            .unwrap();
        assert_eq!(numbers(&mut store), [3, 4]);
        drop(store);
        // A new run knows the rows only from loading them.
        let mut store = Store::open(&home).unwrap();
        assert_eq!(numbers(&mut store), [3, 4]);
        store
            .commit("p", None, &[Record::Delivered { number: 4 }])
            .unwrap();
        assert_eq!(numbers(&mut store), [3]);
        store
            .commit("p", None, &[queued(5), Record::DeliveredBelow { below: 6 }])
            .unwrap();
        assert!(numbers(&mut store).is_empty());
        let states: Vec<State> = store
            .history(Some("p"), None, None)
            .unwrap()
            .iter()
            .map(|m| m.state)
            .collect();
        assert_eq!(states, [State::Delivered; 6]);
    }

    #[test]
    fn a_second_chat_with_the_same_home_is_refused_and_named() {
        let home = scratch("locked");
        let _first = Store::open(&home).unwrap();
        let err = Store::open(&home).unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, StoreError::Locked { .. }), "{text}");
        assert!(text.contains(&std::process::id().to_string()), "{text}");
        // Readers are welcome meanwhile.
        assert!(Store::open_read_only(&home).unwrap().is_some());
    }

    #[test]
    fn a_damaged_file_is_refused_and_left_alone() {
        let home = scratch("corrupt");
        let path = home.join(DATABASE);
        let junk = vec![0x5a_u8; 8192];
        std::fs::write(&path, &junk).unwrap();
        let err = Store::open(&home).unwrap_err();
        assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
        assert!(err.to_string().contains(&path.display().to_string()));
        assert_eq!(std::fs::read(&path).unwrap(), junk);
    }

    #[test]
    fn a_newer_schema_is_refused() {
        let home = scratch("newer");
        let store = Store::open(&home).unwrap();
        store.conn.pragma_update(None, "user_version", 99).unwrap();
        drop(store);
        let err = Store::open(&home).unwrap_err();
        assert!(matches!(err, StoreError::TooNew { found: 99, .. }), "{err}");
    }
}
