//! The peers met before, each pinned to its public key, as `~/.ssh/known_hosts` pins
//! hosts: after a first contact nothing needs comparing again, and a peer that later
//! shows another key is refused (by the caller; this module only keeps the list).
//!
//! The file, `<home>/known_peers`, is text a person can read and edit: a comment header,
//! then one peer per line:
//!
//! ```text
//! <public key, 64 hex digits> <code|passphrase|manual> <added, RFC 3339> <address or -> [name]
//! ```
//!
//! A file that does not parse is an error naming the line, and is never rewritten: a
//! rewrite would drop the pins udpchat could not read. [`KnownPeers::save`] writes the
//! header and the entries afresh, so comments a person added are not kept.

// Stored before the code that uses it lands; the expectation fails, and must be
// removed, once it is used.

use std::fmt;
use std::io::{self, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::SystemTime;

use chrono::{DateTime, SecondsFormat, Utc};
use thiserror::Error;

use crate::home::{self, RegularFileError};

/// The header [`KnownPeers::save`] writes, explaining the columns.
const HEADER: &str = "\
# udpchat known peers: the public key of each peer met, pinned at the first contact.
# A peer that later shows another key is refused. One peer per line:
#   KEY VERIFIED ADDED ADDRESS [NAME]
# KEY       the peer's public key, 64 hex digits
# VERIFIED  how the key was checked: code (an invitation code), passphrase, manual
# ADDED     when it was pinned, UTC (RFC 3339)
# ADDRESS   where it was last seen (host:port), or - if unknown
# NAME      optional, the rest of the line
";

/// How a pinned key was checked at the first contact.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Verified {
    /// An invitation code proved it (`udpchat invite` / `--code`, a PAKE).
    Code,
    /// The handshake proved that the peer knows the shared passphrase.
    Passphrase,
    /// Added by hand.
    Manual,
}

impl Verified {
    /// The stable name in the file: `code`, `passphrase`, `manual`.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Code => "code",
            Self::Passphrase => "passphrase",
            Self::Manual => "manual",
        }
    }
}

impl fmt::Display for Verified {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Verified {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "code" => Ok(Self::Code),
            "passphrase" => Ok(Self::Passphrase),
            "manual" => Ok(Self::Manual),
            _ => Err(format!(
                "{s:?} is not a way of verifying (code, passphrase or manual)"
            )),
        }
    }
}

/// One pinned peer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct KnownPeer {
    /// Its long-term public key.
    pub(crate) key: [u8; 32],
    /// How the key was checked at the first contact.
    pub(crate) verified_by: Verified,
    /// When it was pinned, RFC 3339, e.g. `2026-12-01T14:20:00Z`.
    pub(crate) added: String,
    /// Where it was last seen; one address belongs to one key at a time.
    pub(crate) addr: Option<SocketAddr>,
    /// A name for people, if one was given.
    pub(crate) name: Option<String>,
}

/// The pinned peers of `<home>/known_peers`, in the file's order.
#[derive(Debug)]
pub(crate) struct KnownPeers {
    /// The file they were read from and are saved to.
    path: PathBuf,
    /// The entries: one per key, at most one per address.
    peers: Vec<KnownPeer>,
    /// Warnings from loading (the file is open to other users).
    warnings: Vec<String>,
}

/// Why the known peers cannot be read, saved or changed; each message is one line, and
/// names the path and line where there is one.
#[derive(Debug, Error)]
pub(crate) enum KnownPeersError {
    /// Reading or writing failed.
    #[error("cannot {action} the known peers file {}: {}", .path.display(), home::describe(.error))]
    Io {
        /// `read` or `save`.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The system's error; in the message already, so not a `source`.
        error: io::Error,
    },
    /// The path is a directory, a FIFO...: never read nor replaced.
    #[error("the known peers file {} is {kind}, not a regular file; udpchat leaves it alone", .path.display())]
    NotAFile {
        /// The file.
        path: PathBuf,
        /// What it is, e.g. `a directory`.
        kind: &'static str,
    },
    /// A line does not parse; the file is left as it is.
    #[error("{}:{line}: {what}; fix or remove that line (udpchat will not rewrite the file)", .path.display())]
    Malformed {
        /// The file.
        path: PathBuf,
        /// The line, 1-based.
        line: usize,
        /// What is wrong with it.
        what: String,
    },
    /// No entry has this key.
    #[error("no known peer has the key {key}")]
    UnknownKey {
        /// The key, in hex.
        key: String,
    },
    /// A name the file could not hold.
    #[error("a peer's name cannot hold control characters such as a line break: {0:?}")]
    InvalidName(String),
    /// A time that is not RFC 3339.
    #[error("{0:?} is not an RFC 3339 time such as 2026-12-01T14:20:00Z")]
    InvalidTime(String),
}

impl KnownPeers {
    /// Reads the pinned peers from `path`; a missing file is an empty list (nobody met
    /// yet). Warns when the file is open to other users: they could pin their own key
    /// in a peer's place, or see whom you talk to.
    ///
    /// # Errors
    /// One line naming the path: not a regular file, unreadable, or a line that does not
    /// parse (`path:line: what`).
    pub(crate) fn load(path: impl Into<PathBuf>) -> Result<Self, KnownPeersError> {
        let path = path.into();
        let io_error = |error| KnownPeersError::Io {
            action: "read",
            path: path.clone(),
            error,
        };
        let (mut file, meta) = match home::open_regular(&path) {
            Ok(opened) => opened,
            Err(RegularFileError::Io(e)) if e.kind() == io::ErrorKind::NotFound => {
                return Ok(Self {
                    path,
                    peers: Vec::new(),
                    warnings: Vec::new(),
                })
            }
            Err(RegularFileError::Io(e)) => return Err(io_error(e)),
            Err(RegularFileError::NotAFile(kind)) => {
                return Err(KnownPeersError::NotAFile { path, kind })
            }
        };
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(io_error)?;
        let peers = parse(&bytes).map_err(|(line, what)| KnownPeersError::Malformed {
            path: path.clone(),
            line,
            what,
        })?;
        let warnings = home::open_to_others("the known peers file", &path, &meta, 0o600)
            .into_iter()
            .collect();
        Ok(Self {
            path,
            peers,
            warnings,
        })
    }

    /// The file they were read from and are saved to.
    #[cfg_attr(
        not(test),
        expect(dead_code, reason = "names and listings come with contacts (aliases)")
    )]
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Warnings from [`KnownPeers::load`], one line each.
    pub(crate) fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// The peer last seen at `addr`.
    pub(crate) fn by_addr(&self, addr: SocketAddr) -> Option<&KnownPeer> {
        self.peers.iter().find(|p| p.addr == Some(addr))
    }

    /// The peer named `name` (as `udpchat alias` set it).
    pub(crate) fn by_name(&self, name: &str) -> Option<&KnownPeer> {
        self.peers.iter().find(|p| p.name.as_deref() == Some(name))
    }

    /// The peer with this public key.
    pub(crate) fn by_key(&self, key: &[u8; 32]) -> Option<&KnownPeer> {
        self.peers.iter().find(|p| p.key == *key)
    }

    /// Every pinned peer, in the file's order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &KnownPeer> {
        self.peers.iter()
    }

    /// How many peers are pinned.
    #[cfg_attr(
        not(test),
        expect(dead_code, reason = "names and listings come with contacts (aliases)")
    )]
    pub(crate) fn len(&self) -> usize {
        self.peers.len()
    }

    /// Whether no peer is pinned.
    #[cfg_attr(
        not(test),
        expect(dead_code, reason = "names and listings come with contacts (aliases)")
    )]
    pub(crate) fn is_empty(&self) -> bool {
        self.peers.is_empty()
    }

    /// Pins `key`: a new entry (named later with [`KnownPeers::set_name`]), or, for a
    /// key already pinned, a new `verified_by` and, if `addr` is given, address; its
    /// `added` and name stay. Any other entry at `addr` loses its address, since an
    /// address belongs to one key at a time. Nothing is written until
    /// [`KnownPeers::save`].
    ///
    /// # Errors
    /// [`KnownPeersError::InvalidTime`] if `added` is not RFC 3339 (a file with it would
    /// not load again).
    pub(crate) fn pin(
        &mut self,
        key: [u8; 32],
        addr: Option<SocketAddr>,
        verified_by: Verified,
        added: String,
    ) -> Result<(), KnownPeersError> {
        check_time(&added).map_err(|_| KnownPeersError::InvalidTime(added.clone()))?;
        if let Some(addr) = addr {
            self.release_addr(addr, &key);
        }
        if let Some(peer) = self.peers.iter_mut().find(|p| p.key == key) {
            peer.verified_by = verified_by;
            if addr.is_some() {
                peer.addr = addr;
            }
        } else {
            self.peers.push(KnownPeer {
                key,
                verified_by,
                added,
                addr,
                name: None,
            });
        }
        Ok(())
    }

    /// Records that the peer with `key` is now at `addr` (or nowhere known, `None`); any
    /// other entry at `addr` loses its address.
    ///
    /// # Errors
    /// [`KnownPeersError::UnknownKey`] if no entry has `key`.
    pub(crate) fn set_addr(
        &mut self,
        key: &[u8; 32],
        addr: Option<SocketAddr>,
    ) -> Result<(), KnownPeersError> {
        self.by_key(key).ok_or_else(|| unknown(key))?;
        if let Some(addr) = addr {
            self.release_addr(addr, key);
        }
        if let Some(peer) = self.peers.iter_mut().find(|p| p.key == *key) {
            peer.addr = addr;
        }
        Ok(())
    }

    /// Names the peer with `key` (`None` or blank removes the name); surrounding spaces
    /// are dropped, as the file would drop them.
    ///
    /// # Errors
    /// [`KnownPeersError::UnknownKey`] if no entry has `key`;
    /// [`KnownPeersError::InvalidName`] for a name with a line break or another control
    /// character, which would break the file's lines.
    pub(crate) fn set_name(
        &mut self,
        key: &[u8; 32],
        name: Option<&str>,
    ) -> Result<(), KnownPeersError> {
        let name = name.map(str::trim).filter(|n| !n.is_empty());
        if let Some(name) = name {
            if name.chars().any(char::is_control) {
                return Err(KnownPeersError::InvalidName(name.to_owned()));
            }
        }
        let peer = self
            .peers
            .iter_mut()
            .find(|p| p.key == *key)
            .ok_or_else(|| unknown(key))?;
        peer.name = name.map(str::to_owned);
        Ok(())
    }

    /// Removes the entries for which `pred` holds; returns how many.
    pub(crate) fn remove_where(&mut self, pred: impl Fn(&KnownPeer) -> bool) -> usize {
        let before = self.peers.len();
        self.peers.retain(|p| !pred(p));
        before - self.peers.len()
    }

    /// Writes the list to its file, readable by this user only: a temporary file in the
    /// same directory, synced, then renamed over the old one, so a crash leaves the old
    /// list or the new one, never half of one. The directory must exist.
    ///
    /// # Errors
    /// [`KnownPeersError::Io`] naming the path.
    pub(crate) fn save(&self) -> Result<(), KnownPeersError> {
        home::replace_atomically(&self.path, self.to_text().as_bytes()).map_err(|error| {
            KnownPeersError::Io {
                action: "save",
                path: self.path.clone(),
                error,
            }
        })
    }

    /// The file's contents.
    fn to_text(&self) -> String {
        let mut text = String::from(HEADER);
        for peer in &self.peers {
            let addr = peer.addr.map_or_else(|| "-".to_owned(), |a| a.to_string());
            text.push_str(&format!(
                "{} {} {} {addr}",
                home::encode_key(&peer.key),
                peer.verified_by,
                peer.added
            ));
            if let Some(name) = &peer.name {
                text.push(' ');
                text.push_str(name);
            }
            text.push('\n');
        }
        text
    }

    /// Takes `addr` from every entry but `keep`'s.
    fn release_addr(&mut self, addr: SocketAddr, keep: &[u8; 32]) {
        for peer in &mut self.peers {
            if peer.addr == Some(addr) && peer.key != *keep {
                peer.addr = None;
            }
        }
    }
}

/// The error for a key no entry has.
fn unknown(key: &[u8; 32]) -> KnownPeersError {
    KnownPeersError::UnknownKey {
        key: home::encode_key(key),
    }
}

/// The entries of a known peers file; an error gives the line (1-based) and what is
/// wrong with it.
fn parse(bytes: &[u8]) -> Result<Vec<KnownPeer>, (usize, String)> {
    let mut peers: Vec<(usize, KnownPeer)> = Vec::new();
    for (number, line) in home::content_lines(bytes) {
        let line = line.map_err(|_| (number, "the line is not UTF-8 text".to_owned()))?;
        let peer = parse_line(line).map_err(|what| (number, what))?;
        if let Some((first, _)) = peers.iter().find(|(_, p)| p.key == peer.key) {
            return Err((number, format!("the key is already on line {first}")));
        }
        if let Some(addr) = peer.addr {
            if let Some((first, _)) = peers.iter().find(|(_, p)| p.addr == Some(addr)) {
                return Err((
                    number,
                    format!("the address {addr} is already on line {first}, and an address belongs to one peer"),
                ));
            }
        }
        peers.push((number, peer));
    }
    Ok(peers.into_iter().map(|(_, p)| p).collect())
}

/// One entry: `KEY VERIFIED ADDED ADDRESS [NAME]`.
fn parse_line(line: &str) -> Result<KnownPeer, String> {
    let mut rest = line;
    let mut words = [""; 4];
    for (slot, what) in words
        .iter_mut()
        .zip(["KEY", "VERIFIED", "ADDED", "ADDRESS"])
    {
        let (word, after) = split_word(rest);
        *slot = word.ok_or_else(|| {
            format!("expected KEY VERIFIED ADDED ADDRESS [NAME], but {what} is missing")
        })?;
        rest = after;
    }
    let [key, verified, added, addr] = words;
    let key = *home::decode_key(key).map_err(|what| format!("the key {what}"))?;
    let verified_by = verified.parse()?;
    check_time(added)?;
    let addr = match addr {
        "-" => None,
        a => Some(a.parse().map_err(|_| {
            format!("{a:?} is not an address such as 192.0.2.1:12000 or [2001:db8::1]:12000 (- for none)")
        })?),
    };
    let name = rest.trim();
    if name.chars().any(char::is_control) {
        return Err("the name holds control characters".to_owned());
    }
    Ok(KnownPeer {
        key,
        verified_by,
        added: added.to_owned(),
        addr,
        name: (!name.is_empty()).then(|| name.to_owned()),
    })
}

/// The first word of `text` and what follows it.
fn split_word(text: &str) -> (Option<&str>, &str) {
    let text = text.trim_start();
    if text.is_empty() {
        return (None, text);
    }
    let end = text.find(char::is_whitespace).unwrap_or(text.len());
    (Some(&text[..end]), &text[end..])
}

/// Accepts an RFC 3339 time without spaces (the file separates columns with them).
fn check_time(text: &str) -> Result<(), String> {
    if text.is_empty()
        || text.contains(char::is_whitespace)
        || DateTime::parse_from_rfc3339(text).is_err()
    {
        return Err(format!(
            "{text:?} is not an RFC 3339 time such as 2026-12-01T14:20:00Z"
        ));
    }
    Ok(())
}

/// `time` as RFC 3339 in UTC to the second, e.g. `2026-12-01T14:20:00Z`: the form of
/// [`KnownPeer::added`].
pub(crate) fn rfc3339_utc(time: SystemTime) -> String {
    DateTime::<Utc>::from(time).to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Now, as [`rfc3339_utc`] writes it.
pub(crate) fn now_rfc3339_utc() -> String {
    rfc3339_utc(SystemTime::now())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::home::tests::scratch;
    use std::fs;
    use std::os::unix::fs::PermissionsExt;
    use std::time::{Duration, UNIX_EPOCH};

    const T: &str = "2026-12-01T14:20:00Z";

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn fresh(name: &str) -> KnownPeers {
        KnownPeers::load(scratch(name).join("known_peers")).unwrap()
    }

    #[test]
    fn a_missing_file_is_nobody_met_yet() {
        let peers = fresh("kp-missing");
        assert!(peers.is_empty());
        assert_eq!(peers.len(), 0);
        assert!(peers.warnings().is_empty());
    }

    #[test]
    fn pins_survive_a_save_and_a_load() {
        let mut peers = fresh("kp-roundtrip");
        peers
            .pin(
                [1; 32],
                Some(addr("192.0.2.1:12000")),
                Verified::Code,
                T.into(),
            )
            .unwrap();
        peers
            .pin(
                [2; 32],
                None,
                Verified::Passphrase,
                "2026-12-02T08:00:00Z".into(),
            )
            .unwrap();
        peers
            .pin(
                [3; 32],
                Some(addr("[2001:db8::1]:12001")),
                Verified::Manual,
                T.into(),
            )
            .unwrap();
        peers.set_name(&[1; 32], Some("  Ada's laptop  ")).unwrap();
        peers.save().unwrap();
        let mode = fs::metadata(peers.path()).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let text = fs::read_to_string(peers.path()).unwrap();
        assert!(text.starts_with(HEADER), "{text}");
        assert!(
            text.ends_with(&format!(
                "{} code {T} 192.0.2.1:12000 Ada's laptop\n{} passphrase 2026-12-02T08:00:00Z -\n{} manual {T} [2001:db8::1]:12001\n",
                "01".repeat(32),
                "02".repeat(32),
                "03".repeat(32)
            )),
            "{text}"
        );
        let again = KnownPeers::load(peers.path()).unwrap();
        assert_eq!(
            again.iter().collect::<Vec<_>>(),
            peers.iter().collect::<Vec<_>>()
        );
        assert_eq!(
            again
                .by_addr(addr("192.0.2.1:12000"))
                .unwrap()
                .name
                .as_deref(),
            Some("Ada's laptop")
        );
        assert_eq!(
            again.by_key(&[2; 32]).unwrap().verified_by,
            Verified::Passphrase
        );
        assert!(again.by_key(&[9; 32]).is_none());
        assert!(again.by_addr(addr("192.0.2.1:1")).is_none());
        let leftovers = fs::read_dir(peers.path().parent().unwrap())
            .unwrap()
            .count();
        assert_eq!(leftovers, 1, "no temporary file left");
    }

    #[test]
    fn pinning_again_updates_but_keeps_added_and_name() {
        let mut peers = fresh("kp-repin");
        let a = addr("192.0.2.1:12000");
        let b = addr("192.0.2.2:12000");
        peers
            .pin([1; 32], Some(a), Verified::Code, T.into())
            .unwrap();
        peers.set_name(&[1; 32], Some("ada")).unwrap();
        peers
            .pin(
                [1; 32],
                Some(b),
                Verified::Passphrase,
                "2027-01-01T00:00:00Z".into(),
            )
            .unwrap();
        let p = peers.by_key(&[1; 32]).unwrap();
        assert_eq!((p.addr, p.verified_by), (Some(b), Verified::Passphrase));
        assert_eq!((p.added.as_str(), p.name.as_deref()), (T, Some("ada")));
        peers.pin([1; 32], None, Verified::Code, T.into()).unwrap();
        assert_eq!(
            peers.by_key(&[1; 32]).unwrap().addr,
            Some(b),
            "None keeps it"
        );
        assert_eq!(peers.len(), 1);
    }

    #[test]
    fn an_address_belongs_to_one_key() {
        let mut peers = fresh("kp-addr");
        let a = addr("192.0.2.1:12000");
        peers
            .pin([1; 32], Some(a), Verified::Code, T.into())
            .unwrap();
        peers
            .pin([2; 32], Some(a), Verified::Code, T.into())
            .unwrap();
        assert_eq!(peers.by_key(&[1; 32]).unwrap().addr, None);
        assert_eq!(peers.by_addr(a).unwrap().key, [2; 32]);
        peers.set_addr(&[1; 32], Some(a)).unwrap();
        assert_eq!(peers.by_key(&[2; 32]).unwrap().addr, None);
        assert_eq!(peers.by_addr(a).unwrap().key, [1; 32]);
        peers.set_addr(&[1; 32], None).unwrap();
        assert!(peers.by_addr(a).is_none());
        let err = peers.set_addr(&[7; 32], Some(a)).unwrap_err();
        assert!(matches!(err, KnownPeersError::UnknownKey { .. }), "{err}");
        assert!(peers.by_addr(a).is_none(), "an unknown key changes nothing");
    }

    #[test]
    fn names_and_times_that_would_break_the_file_are_refused() {
        let mut peers = fresh("kp-refuse");
        peers
            .pin([1; 32], None, Verified::Manual, T.into())
            .unwrap();
        for bad in ["two\nlines", "tab\there", "bell\u{7}"] {
            let err = peers.set_name(&[1; 32], Some(bad)).unwrap_err();
            assert!(matches!(err, KnownPeersError::InvalidName(_)), "{err}");
        }
        peers.set_name(&[1; 32], Some("x")).unwrap();
        peers.set_name(&[1; 32], Some("   ")).unwrap();
        assert_eq!(
            peers.by_key(&[1; 32]).unwrap().name,
            None,
            "blank removes it"
        );
        assert!(matches!(
            peers.set_name(&[2; 32], Some("x")),
            Err(KnownPeersError::UnknownKey { .. })
        ));
        for bad in [
            "",
            "yesterday",
            "2026-12-01 14:20:00Z",
            "2026-13-01T00:00:00Z",
        ] {
            let err = peers
                .pin([2; 32], None, Verified::Manual, bad.into())
                .unwrap_err();
            assert!(
                matches!(err, KnownPeersError::InvalidTime(_)),
                "{bad}: {err}"
            );
        }
        assert_eq!(peers.len(), 1);
    }

    #[test]
    fn remove_where_says_how_many() {
        let mut peers = fresh("kp-remove");
        for (k, v) in [
            (1, Verified::Code),
            (2, Verified::Manual),
            (3, Verified::Code),
        ] {
            peers.pin([k; 32], None, v, T.into()).unwrap();
        }
        assert_eq!(peers.remove_where(|p| p.verified_by == Verified::Code), 2);
        assert_eq!(peers.iter().map(|p| p.key[0]).collect::<Vec<_>>(), [2]);
        assert_eq!(peers.remove_where(|_| false), 0);
    }

    #[test]
    fn a_hand_edited_file_is_read() {
        let dir = scratch("kp-hand");
        let path = dir.join("known_peers");
        let text = format!(
            "\u{feff}# mine\r\n\n  {}   code   {T}   -   Bob   the   builder  \r\n# end",
            "AA".repeat(32)
        );
        fs::write(&path, text).unwrap();
        let peers = KnownPeers::load(&path).unwrap();
        let p = peers.by_key(&[0xaa; 32]).unwrap();
        assert_eq!(p.name.as_deref(), Some("Bob   the   builder"));
        assert_eq!(p.addr, None);
    }

    #[test]
    fn a_malformed_line_is_named_and_the_file_kept() {
        let key = "11".repeat(32);
        let other = "22".repeat(32);
        let cases = [
            (format!("# c\n{key}\n"), 2, "but VERIFIED is missing"),
            (format!("{key} code\n"), 1, "but ADDED is missing"),
            (format!("{key} code {T}\n"), 1, "but ADDRESS is missing"),
            (
                format!("{} code {T} -\n", &key[..10]),
                1,
                "the key has 10 characters",
            ),
            (
                format!("{key} voice {T} -\n"),
                1,
                "\"voice\" is not a way of verifying",
            ),
            (
                format!("{key} code monday -\n"),
                1,
                "\"monday\" is not an RFC 3339 time",
            ),
            (
                format!("{key} code {T} host:port\n"),
                1,
                "\"host:port\" is not an address",
            ),
            (
                format!("{key} code {T} -\n\n{key} manual {T} -\n"),
                3,
                "the key is already on line 1",
            ),
            (
                format!("{key} code {T} 192.0.2.1:5\n{other} code {T} 192.0.2.1:5\n"),
                2,
                "the address 192.0.2.1:5 is already on line 1",
            ),
            (
                format!("{key} code {T} - a\u{7}b\n"),
                1,
                "control characters",
            ),
        ];
        for (text, line, expected) in cases {
            let path = scratch("kp-bad").join("known_peers");
            fs::write(&path, &text).unwrap();
            let err = KnownPeers::load(&path).unwrap_err();
            let msg = err.to_string();
            assert!(
                msg.starts_with(&format!("{}:{line}: ", path.display())),
                "{text:?}: {msg}"
            );
            assert!(msg.contains(expected), "{text:?}: {msg}");
            assert!(!msg.contains('\n'), "{msg}");
            assert_eq!(fs::read_to_string(&path).unwrap(), text, "left as it was");
        }
        let path = scratch("kp-binary").join("known_peers");
        fs::write(&path, b"# ok\n\xff\n").unwrap();
        let msg = KnownPeers::load(&path).unwrap_err().to_string();
        assert!(msg.contains(":2: the line is not UTF-8 text"), "{msg}");
    }

    #[test]
    fn an_open_file_is_warned_about_and_a_directory_refused() {
        let dir = scratch("kp-open");
        let path = dir.join("known_peers");
        fs::write(&path, HEADER).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let peers = KnownPeers::load(&path).unwrap();
        assert_eq!(
            peers.warnings(),
            [format!(
                "the known peers file {0} is open to other users (mode 0644); fix it with: chmod 600 {0}",
                path.display()
            )]
        );
        let dir_path = dir.join("a directory");
        fs::create_dir(&dir_path).unwrap();
        let err = KnownPeers::load(&dir_path).unwrap_err();
        assert!(matches!(err, KnownPeersError::NotAFile { .. }), "{err:?}");
        assert!(
            err.to_string()
                .contains("is a directory, not a regular file"),
            "{err}"
        );
    }

    #[test]
    fn saving_into_a_missing_directory_names_the_path() {
        let path = scratch("kp-nodir").join("gone").join("known_peers");
        let mut peers = KnownPeers::load(&path).unwrap();
        peers
            .pin([1; 32], None, Verified::Manual, T.into())
            .unwrap();
        let msg = peers.save().unwrap_err().to_string();
        assert_eq!(
            msg,
            format!(
                "cannot save the known peers file {}: no such file or directory",
                path.display()
            )
        );
    }

    #[test]
    fn times_are_rfc3339_utc_to_the_second() {
        let t = UNIX_EPOCH + Duration::from_millis(1_796_134_800_250);
        assert_eq!(rfc3339_utc(t), "2026-12-01T14:20:00Z");
        assert_eq!(rfc3339_utc(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let now = now_rfc3339_utc();
        assert!(check_time(&now).is_ok(), "{now}");
        assert!(now.ends_with('Z') && now.len() == 20, "{now}");
    }

    #[test]
    fn verified_names_are_stable() {
        for v in [Verified::Code, Verified::Passphrase, Verified::Manual] {
            assert_eq!(v.to_string().parse::<Verified>().unwrap(), v);
        }
        assert_eq!(Verified::Code.as_str(), "code");
        assert_eq!(Verified::Passphrase.as_str(), "passphrase");
        assert_eq!(Verified::Manual.as_str(), "manual");
        assert!("Code".parse::<Verified>().is_err());
    }
}
