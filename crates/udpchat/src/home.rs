//! The data directory of an installation and the identity key file in it.
//!
//! udpchat keeps what must outlive a run (its long-term private key, the peers it has
//! pinned) in one directory: `--home DIR`, else `UDPCHAT_HOME`, else
//! `$XDG_DATA_HOME/udpchat`, else `~/.local/share/udpchat`. Files there are written so
//! that a crash never leaves half a file and two udpchat processes starting at once end
//! with one key: a temporary file beside the target, created private, synced, then moved
//! into place. The helpers that do this, and that refuse to read anything but a regular
//! file, are shared with [`crate::known_peers`] and [`crate::secret`].

use std::ffi::OsStr;
use std::fmt;
use std::fs::{self, DirBuilder, File, FileType, Metadata, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use thiserror::Error;
use zeroize::Zeroizing;

/// The environment variable naming the data directory, below `--home`.
pub(crate) const HOME_ENV: &str = "UDPCHAT_HOME";

/// The identity file's name inside the data directory.
const IDENTITY: &str = "identity";

/// The known peers file's name inside the data directory.
const KNOWN_PEERS: &str = "known_peers";

/// The first line of a new identity file, so that whoever opens it knows what it is.
const IDENTITY_HEADER: &str = "# udpchat identity: the private key of this installation. Keep it secret: whoever copies it can pose as you.";

/// The keyword of the identity file's one meaningful line.
const PRIVATE_KEY: &str = "private-key";

/// An identity file larger than this is not one (it holds about 190 bytes).
const MAX_IDENTITY: u64 = 64 * 1024;

/// Permission bits of group and others: any of them set means another user can reach
/// a file only this user should.
const OTHERS: u32 = 0o077;

/// The data directory of this installation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Home {
    /// The directory, as resolved (relative if `--home` or `UDPCHAT_HOME` was).
    path: PathBuf,
}

/// The identity key as read from, or just written to, `<home>/identity`.
pub(crate) struct IdentityFile {
    /// The long-term X25519 private key; wiped from memory when dropped.
    pub(crate) private_key: Zeroizing<[u8; 32]>,
    /// Whether this call created the file (a first start), rather than reading it.
    pub(crate) created: bool,
    /// Warnings for the user, one line each (the file is open to other users).
    pub(crate) warnings: Vec<String>,
}

// Written by hand so that no log or panic message ever shows the key.
impl fmt::Debug for IdentityFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdentityFile")
            .field("private_key", &"<secret>")
            .field("created", &self.created)
            .field("warnings", &self.warnings)
            .finish()
    }
}

/// Why the data directory or the identity file cannot be used; every message is one line
/// that names the path.
#[derive(Debug, Error)]
pub(crate) enum HomeError {
    /// No `--home`, `UDPCHAT_HOME`, usable `XDG_DATA_HOME` or `HOME`.
    #[error("cannot tell where udpchat should keep its data: {why}; name a directory with --home DIR or {env}", env = HOME_ENV)]
    Unresolved {
        /// What was missing, e.g. `HOME is not set`.
        why: String,
    },
    /// The data directory's path is taken by something else.
    #[error("{} is {kind}, not a directory: udpchat keeps its data in a directory there; move it away or choose another with --home DIR", .path.display())]
    NotADirectory {
        /// The data directory's path.
        path: PathBuf,
        /// What is there instead, e.g. `a regular file`.
        kind: &'static str,
    },
    /// The system said no.
    #[error("cannot {action} {}: permission denied", .path.display())]
    PermissionDenied {
        /// What udpchat was doing, e.g. `create the udpchat directory`.
        action: &'static str,
        /// The path it was doing it to.
        path: PathBuf,
    },
    /// The directory is on a read-only file system.
    #[error("cannot {action} {}: the file system is read-only", .path.display())]
    ReadOnly {
        /// What udpchat was doing.
        action: &'static str,
        /// The path it was doing it to.
        path: PathBuf,
    },
    /// Any other input or output error.
    #[error("cannot {action} {}: {}", .path.display(), describe(.error))]
    Io {
        /// What udpchat was doing.
        action: &'static str,
        /// The path it was doing it to.
        path: PathBuf,
        /// The system's error; in the message already, so not a `source` that `{:#}`
        /// would print a second time.
        error: io::Error,
    },
    /// The identity file is a directory, a FIFO, a device...: never read nor replaced.
    #[error("the identity file {} is {kind}, not a regular file; udpchat leaves it alone", .path.display())]
    IdentityNotAFile {
        /// The identity file's path.
        path: PathBuf,
        /// What it is, e.g. `a FIFO`.
        kind: &'static str,
    },
    /// The identity file exists but does not hold exactly one key; never replaced, since
    /// a new key would be a new identity that every pinned peer refuses.
    #[error("the identity file {}{} {what}; udpchat will not replace it (move it away to start with a new identity)", .path.display(), .line.map(|n| format!(", line {n}:")).unwrap_or_default())]
    InvalidIdentity {
        /// The identity file's path.
        path: PathBuf,
        /// The line at fault (1-based), if one is.
        line: Option<usize>,
        /// What is wrong, without the file's contents (they may be the key).
        what: String,
    },
}

impl Home {
    /// The data directory: `explicit` (`--home DIR`), else `UDPCHAT_HOME` if non-empty,
    /// else `$XDG_DATA_HOME/udpchat` if that is an absolute path (the XDG spec says to
    /// ignore a relative one), else `$HOME/.local/share/udpchat`.
    ///
    /// # Errors
    /// [`HomeError::Unresolved`] when none of them gives a directory.
    pub(crate) fn resolve(explicit: Option<&Path>) -> Result<Self, HomeError> {
        Self::resolve_from(
            explicit,
            std::env::var_os(HOME_ENV).as_deref(),
            std::env::var_os("XDG_DATA_HOME").as_deref(),
            std::env::var_os("HOME").as_deref(),
        )
    }

    /// [`Home::resolve`] with the environment given, so tests need not change the
    /// process's own.
    fn resolve_from(
        explicit: Option<&Path>,
        udpchat_home: Option<&OsStr>,
        xdg_data_home: Option<&OsStr>,
        home: Option<&OsStr>,
    ) -> Result<Self, HomeError> {
        let path = if let Some(explicit) = explicit {
            if explicit.as_os_str().is_empty() {
                return Err(HomeError::Unresolved {
                    why: "--home is empty".to_owned(),
                });
            }
            explicit.to_path_buf()
        } else if let Some(dir) = udpchat_home.filter(|v| !v.is_empty()) {
            PathBuf::from(dir)
        } else if let Some(xdg) = xdg_data_home.map(Path::new).filter(|p| p.is_absolute()) {
            xdg.join("udpchat")
        } else {
            let home = home
                .filter(|v| !v.is_empty())
                .ok_or_else(|| HomeError::Unresolved {
                    why: "HOME is not set".to_owned(),
                })?;
            let home = Path::new(home);
            if !home.is_absolute() {
                return Err(HomeError::Unresolved {
                    why: format!("HOME ({}) is not an absolute path", home.display()),
                });
            }
            home.join(".local").join("share").join("udpchat")
        };
        Ok(Self { path })
    }

    /// The directory.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Where the identity key is kept.
    pub(crate) fn identity_path(&self) -> PathBuf {
        self.path.join(IDENTITY)
    }

    /// Where the pinned peers are kept, for [`crate::known_peers::KnownPeers::load`].
    pub(crate) fn known_peers_path(&self) -> PathBuf {
        self.path.join(KNOWN_PEERS)
    }

    /// Creates the directory if it is missing (its parents as the umask has them, itself
    /// readable by this user only) and checks it. Returns a warning, one line, when it is
    /// open to other users: they could read the private key or change the pinned peers.
    ///
    /// # Errors
    /// One line naming the path: it is not a directory, permission is denied, the file
    /// system is read-only, or another input or output error.
    pub(crate) fn create(&self) -> Result<Vec<String>, HomeError> {
        const CREATE: &str = "create the udpchat directory";
        let path = &self.path;
        match fs::metadata(path) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                    fs::create_dir_all(parent).map_err(|e| HomeError::io(CREATE, path, e))?;
                }
                match DirBuilder::new().mode(0o700).create(path) {
                    // Another udpchat starting at the same time was quicker: as good.
                    Err(e) if e.kind() != io::ErrorKind::AlreadyExists => {
                        return Err(HomeError::io(CREATE, path, e));
                    }
                    _ => {}
                }
            }
            Err(e) => return Err(HomeError::io("open the udpchat directory", path, e)),
        }
        let meta =
            fs::metadata(path).map_err(|e| HomeError::io("open the udpchat directory", path, e))?;
        if !meta.is_dir() {
            return Err(HomeError::NotADirectory {
                path: path.clone(),
                kind: kind_of(meta.file_type()),
            });
        }
        Ok(open_to_others("the udpchat directory", path, &meta, 0o700)
            .into_iter()
            .collect())
    }

    /// Reads the identity key from `<home>/identity`; when there is none, stores
    /// `fresh()` there (readable by this user only) and returns it. The directory must
    /// exist ([`Home::create`]).
    ///
    /// The new file appears complete or not at all, and never replaces one: if another
    /// udpchat creates it first, its key is read and returned (`created: false`), so
    /// both end with the same identity.
    ///
    /// # Errors
    /// One line naming the path: the identity is not a regular file, cannot be read,
    /// does not parse (never overwritten then), or cannot be written.
    pub(crate) fn load_or_create_identity(
        &self,
        fresh: impl FnOnce() -> [u8; 32],
    ) -> Result<IdentityFile, HomeError> {
        let path = self.identity_path();
        if let Some(found) = read_identity(&path)? {
            return Ok(found);
        }
        let key = Zeroizing::new(fresh());
        let contents = identity_text(&key);
        match create_atomically(&path, contents.as_bytes()) {
            Ok(true) => Ok(IdentityFile {
                private_key: key,
                created: true,
                warnings: Vec::new(),
            }),
            // Lost a race with another udpchat: its key is the identity now.
            Ok(false) => read_identity(&path)?.ok_or_else(|| HomeError::Io {
                action: "read the identity file",
                path: path.clone(),
                error: io::Error::new(
                    io::ErrorKind::NotFound,
                    "it was created and removed again while udpchat started",
                ),
            }),
            Err(e) => Err(HomeError::io("write the identity file", &path, e)),
        }
    }
}

impl HomeError {
    /// The error for `e`, with the cases users meet named plainly.
    fn io(action: &'static str, path: &Path, e: io::Error) -> Self {
        let path = path.to_path_buf();
        match e.kind() {
            io::ErrorKind::PermissionDenied => Self::PermissionDenied { action, path },
            io::ErrorKind::ReadOnlyFilesystem => Self::ReadOnly { action, path },
            _ => Self::Io {
                action,
                path,
                error: e,
            },
        }
    }
}

/// The identity at `path`, or `None` if there is no file.
fn read_identity(path: &Path) -> Result<Option<IdentityFile>, HomeError> {
    const READ: &str = "read the identity file";
    let (file, meta) = match open_regular(path) {
        Ok(opened) => opened,
        Err(RegularFileError::Io(e)) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(RegularFileError::Io(e)) => return Err(HomeError::io(READ, path, e)),
        Err(RegularFileError::NotAFile(kind)) => {
            return Err(HomeError::IdentityNotAFile {
                path: path.to_path_buf(),
                kind,
            })
        }
    };
    // Room for all of it at once: a growing buffer would leave copies behind, unwiped.
    let mut bytes = Zeroizing::new(Vec::with_capacity(buffer_len(MAX_IDENTITY)));
    file.take(MAX_IDENTITY + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| HomeError::io(READ, path, e))?;
    if bytes.len() as u64 > MAX_IDENTITY {
        return Err(HomeError::InvalidIdentity {
            path: path.to_path_buf(),
            line: None,
            what: "is larger than 64 KiB, which no identity file is".to_owned(),
        });
    }
    let private_key =
        parse_identity(&bytes).map_err(|(line, what)| HomeError::InvalidIdentity {
            path: path.to_path_buf(),
            line,
            what,
        })?;
    Ok(Some(IdentityFile {
        private_key,
        created: false,
        warnings: open_to_others("the identity file", path, &meta, 0o600)
            .into_iter()
            .collect(),
    }))
}

/// The lines of one of udpchat's text files that say something, numbered from 1:
/// trimmed, blank lines and `#` comments left out, and a byte order mark (which some
/// editors add) not part of the first line. A line that is not UTF-8 is an error.
pub(crate) fn content_lines(
    bytes: &[u8],
) -> impl Iterator<Item = (usize, Result<&str, std::str::Utf8Error>)> {
    bytes
        .split(|&b| b == b'\n')
        .enumerate()
        .map(|(index, line)| {
            let line = std::str::from_utf8(line).map(|line| {
                if index == 0 {
                    line.trim_start_matches('\u{feff}').trim()
                } else {
                    line.trim()
                }
            });
            (index + 1, line)
        })
        .filter(|(_, line)| {
            line.as_ref()
                .map_or(true, |l| !l.is_empty() && !l.starts_with('#'))
        })
}

/// The key of an identity file: `#` comments and blank lines ignored, exactly one
/// `private-key` line of 64 hex digits. An error gives the line (1-based) if one is at
/// fault, and never quotes the file, which may hold the key.
fn parse_identity(bytes: &[u8]) -> Result<Zeroizing<[u8; 32]>, (Option<usize>, String)> {
    let mut found: Option<(usize, Zeroizing<[u8; 32]>)> = None;
    for (number, line) in content_lines(bytes) {
        let bad = |what: &str| (Some(number), what.to_owned());
        let line = line.map_err(|_| bad("is not UTF-8 text"))?;
        let mut words = line.split_ascii_whitespace();
        if words.next() != Some(PRIVATE_KEY) {
            return Err(bad(
                "is neither a comment nor `private-key` followed by 64 hex digits",
            ));
        }
        let Some(hex) = words.next() else {
            return Err(bad("has no key after `private-key`"));
        };
        if words.next().is_some() {
            return Err(bad("has more than the key after `private-key`"));
        }
        let key = decode_key(hex).map_err(|what| bad(&format!("the private key {what}")))?;
        if let Some((first, _)) = found {
            return Err(bad(&format!(
                "is a second `private-key` line (the first is line {first})"
            )));
        }
        found = Some((number, key));
    }
    found
        .map(|(_, key)| key)
        .ok_or_else(|| (None, "has no `private-key` line".to_owned()))
}

/// 32 bytes from 64 hex digits (either case); the error says what is wrong without
/// repeating the digits.
pub(crate) fn decode_key(hex: &str) -> Result<Zeroizing<[u8; 32]>, String> {
    if hex.len() != 64 {
        return Err(format!(
            "has {} characters, not 64 hex digits",
            hex.chars().count()
        ));
    }
    let mut key = Zeroizing::new([0u8; 32]);
    for (byte, pair) in key.iter_mut().zip(hex.as_bytes().chunks_exact(2)) {
        let digit = |c: u8| char::from(c).to_digit(16).ok_or("is not hexadecimal");
        let (high, low) = (digit(pair[0])?, digit(pair[1])?);
        // Two hex digits are at most 255.
        *byte = u8::try_from(high * 16 + low).map_err(|_| "is not hexadecimal")?;
    }
    Ok(key)
}

/// The capacity that holds `limit` bytes and one more (the byte that shows a file is
/// too large), so that reading never moves a secret to a larger buffer.
pub(crate) fn buffer_len(limit: u64) -> usize {
    usize::try_from(limit).map_or(usize::MAX, |n| n.saturating_add(1))
}

/// 64 lowercase hex digits.
pub(crate) fn encode_key(key: &[u8; 32]) -> String {
    use fmt::Write as _;
    let mut hex = String::with_capacity(64);
    for byte in key {
        // Writing to a String cannot fail.
        let _ = write!(hex, "{byte:02x}");
    }
    hex
}

/// The whole identity file for `key`.
fn identity_text(key: &[u8; 32]) -> Zeroizing<String> {
    let hex = Zeroizing::new(encode_key(key));
    Zeroizing::new(format!(
        "{IDENTITY_HEADER}\n{PRIVATE_KEY} {}\n",
        hex.as_str()
    ))
}

/// Why [`open_regular`] would not give a file.
#[derive(Debug, Error)]
pub(crate) enum RegularFileError {
    /// Missing, unreadable, ... (not a `source`: the message says it already).
    #[error("{}", describe(.0))]
    Io(io::Error),
    /// Something that is not a regular file, e.g. `a FIFO`.
    #[error("it is {0}, not a regular file")]
    NotAFile(&'static str),
}

impl From<io::Error> for RegularFileError {
    fn from(e: io::Error) -> Self {
        Self::Io(e)
    }
}

/// Opens a regular file for reading, and nothing else: a FIFO without a writer would
/// block the open forever, a device or a socket is never what the user meant. The path
/// is looked at before it is opened (opening a device may do something), then the
/// opened file is checked again in case the path changed in between.
pub(crate) fn open_regular(path: &Path) -> Result<(File, Metadata), RegularFileError> {
    let before = fs::metadata(path)?;
    if !before.is_file() {
        return Err(RegularFileError::NotAFile(kind_of(before.file_type())));
    }
    // Non-blocking, so that a FIFO swapped in since the look cannot hang the open.
    let flags = rustix::fs::OFlags::RDONLY
        | rustix::fs::OFlags::NONBLOCK
        | rustix::fs::OFlags::NOCTTY
        | rustix::fs::OFlags::CLOEXEC;
    let fd = rustix::fs::open(path, flags, rustix::fs::Mode::empty()).map_err(io::Error::from)?;
    let file = File::from(fd);
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(RegularFileError::NotAFile(kind_of(meta.file_type())));
    }
    Ok((file, meta))
}

/// What a file is, for a message: `a directory`, `a FIFO`, ...
pub(crate) fn kind_of(kind: FileType) -> &'static str {
    if kind.is_file() {
        "a regular file"
    } else if kind.is_dir() {
        "a directory"
    } else if kind.is_fifo() {
        "a FIFO"
    } else if kind.is_char_device() {
        "a character device"
    } else if kind.is_block_device() {
        "a block device"
    } else if kind.is_socket() {
        "a socket"
    } else if kind.is_symlink() {
        "a symbolic link"
    } else {
        "not a regular file"
    }
}

/// A warning, one line, if group or others have any permission on `path`: what it is,
/// its mode in octal and the command that fixes it.
pub(crate) fn open_to_others(what: &str, path: &Path, meta: &Metadata, fix: u32) -> Option<String> {
    let mode = meta.permissions().mode() & 0o7777;
    (mode & OTHERS != 0).then(|| {
        let quoted = shell_quoted(path);
        format!(
            "{what} {} is open to other users (mode {mode:04o}); fix it with: chmod {fix:o} {quoted}",
            path.display()
        )
    })
}

/// `path` as one shell word, so the suggested command can be pasted as it is.
fn shell_quoted(path: &Path) -> String {
    let text = path.to_string_lossy();
    let plain = |c: char| c.is_ascii_alphanumeric() || "/._-+:@,%=".contains(c);
    if !text.is_empty() && text.chars().all(plain) {
        text.into_owned()
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

/// An input or output error in words, with the cases users meet said plainly.
pub(crate) fn describe(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::PermissionDenied => "permission denied".to_owned(),
        io::ErrorKind::ReadOnlyFilesystem => "the file system is read-only".to_owned(),
        io::ErrorKind::NotADirectory => "a part of the path is not a directory".to_owned(),
        io::ErrorKind::NotFound => "no such file or directory".to_owned(),
        _ => e.to_string(),
    }
}

/// Replaces `path` with a file holding `contents`, readable by this user only, so that
/// after a crash the file is either the old one or the new one, whole.
///
/// # Errors
/// The first input or output error; the temporary file is removed then.
pub(crate) fn replace_atomically(path: &Path, contents: &[u8]) -> io::Result<()> {
    let temp = write_temp(path, contents)?;
    if let Err(e) = fs::rename(&temp, path) {
        let _ = fs::remove_file(&temp);
        return Err(e);
    }
    sync_dir(path)
}

/// Creates `path` holding `contents`, readable by this user only, appearing whole or
/// not at all; `Ok(false)`, and nothing changed, if `path` already exists.
///
/// # Errors
/// The first input or output error; the temporary file is removed then.
pub(crate) fn create_atomically(path: &Path, contents: &[u8]) -> io::Result<bool> {
    let temp = write_temp(path, contents)?;
    let placed = move_no_replace(&temp, path);
    // After a rename the temporary name is gone already; after a link or a failure it
    // must go (it holds the contents).
    let _ = fs::remove_file(&temp);
    match placed {
        Ok(()) => sync_dir(path).map(|()| true),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(e),
    }
}

/// Gives `temp` the name `path` unless `path` exists (then `AlreadyExists`): a rename
/// that refuses to replace where the file system has one, else a hard link, which
/// refuses too.
fn move_no_replace(temp: &Path, path: &Path) -> io::Result<()> {
    #[cfg(any(target_os = "linux", target_os = "android", target_os = "macos"))]
    {
        use rustix::fs::{renameat_with, RenameFlags, CWD};
        use rustix::io::Errno;
        match renameat_with(CWD, temp, CWD, path, RenameFlags::NOREPLACE) {
            Ok(()) => return Ok(()),
            // This file system cannot rename without replacing; a link can do it.
            Err(e) if e == Errno::INVAL || e == Errno::NOSYS || e == Errno::NOTSUP => {}
            Err(e) => return Err(e.into()),
        }
    }
    fs::hard_link(temp, path)
}

/// Writes `contents` to a new file beside `path`, readable by this user only, and
/// syncs it to the disk; returns its path.
fn write_temp(path: &Path, contents: &[u8]) -> io::Result<PathBuf> {
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "the path has no file name"))?;
    let mut temp_name = std::ffi::OsString::from(".");
    temp_name.push(name);
    temp_name.push(format!(
        ".{}.{:016x}.tmp",
        std::process::id(),
        rand::random::<u64>()
    ));
    let temp = path.with_file_name(temp_name);
    // Created private: the mode applies from the first byte, not after a chmod.
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&temp)?;
    let written = file.write_all(contents).and_then(|()| file.sync_all());
    if let Err(e) = written {
        drop(file);
        let _ = fs::remove_file(&temp);
        return Err(e);
    }
    Ok(temp)
}

/// Syncs the directory holding `path`, so that the new name survives a crash too.
fn sync_dir(path: &Path) -> io::Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    match File::open(dir).and_then(|d| d.sync_all()) {
        // Some file systems cannot sync a directory; the file itself is synced.
        Err(e)
            if e.kind() == io::ErrorKind::InvalidInput
                || e.kind() == io::ErrorKind::Unsupported =>
        {
            Ok(())
        }
        other => other,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Barrier};

    /// A new empty directory for one test.
    pub(crate) fn scratch(name: &str) -> PathBuf {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "udpchat-test-{}-{}-{name}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o7777
    }

    fn chmod(path: &Path, mode: u32) {
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
    }

    /// Whether permissions stop this process (they do not stop root).
    fn permissions_apply(dir: &Path) -> bool {
        let probe = dir.join("probe");
        fs::create_dir(&probe).unwrap();
        chmod(&probe, 0o000);
        let applies = fs::read_dir(&probe).is_err();
        chmod(&probe, 0o700);
        applies
    }

    fn resolve(
        explicit: Option<&str>,
        udpchat_home: Option<&str>,
        xdg: Option<&str>,
        home: Option<&str>,
    ) -> Result<PathBuf, HomeError> {
        Home::resolve_from(
            explicit.map(Path::new),
            udpchat_home.map(OsStr::new),
            xdg.map(OsStr::new),
            home.map(OsStr::new),
        )
        .map(|h| h.path().to_path_buf())
    }

    #[test]
    fn the_directory_is_found_in_order() {
        let all = |explicit| resolve(explicit, Some("/u"), Some("/x"), Some("/h")).unwrap();
        assert_eq!(all(Some("/e")), Path::new("/e"));
        assert_eq!(all(None), Path::new("/u"));
        assert_eq!(
            resolve(None, Some(""), Some("/x"), Some("/h")).unwrap(),
            Path::new("/x/udpchat"),
            "an empty UDPCHAT_HOME counts as unset"
        );
        assert_eq!(
            resolve(None, None, Some("/x"), Some("/h")).unwrap(),
            Path::new("/x/udpchat")
        );
        for xdg in [None, Some(""), Some("relative/data")] {
            assert_eq!(
                resolve(None, None, xdg, Some("/h")).unwrap(),
                Path::new("/h/.local/share/udpchat"),
                "XDG_DATA_HOME={xdg:?} is ignored"
            );
        }
        assert_eq!(
            resolve(Some("rel"), None, None, None).unwrap(),
            Path::new("rel"),
            "--home is taken as given"
        );
        // --home wins whatever this process's environment holds.
        let home = Home::resolve(Some(Path::new("/e"))).unwrap();
        assert_eq!(home.path(), Path::new("/e"));
        assert_eq!(home.identity_path(), Path::new("/e/identity"));
        assert_eq!(home.known_peers_path(), Path::new("/e/known_peers"));
    }

    #[test]
    fn no_directory_is_one_line_naming_the_way_out() {
        for (explicit, home, expected) in [
            (None, None, "HOME is not set"),
            (None, Some(""), "HOME is not set"),
            (None, Some("h"), "HOME (h) is not an absolute path"),
            (Some(""), Some("/h"), "--home is empty"),
        ] {
            let err = resolve(explicit, None, None, home).unwrap_err().to_string();
            assert!(err.contains(expected), "{err}");
            assert!(err.contains("--home DIR or UDPCHAT_HOME"), "{err}");
            assert!(!err.contains('\n'), "{err}");
        }
    }

    #[test]
    fn create_makes_a_private_directory_and_its_parents() {
        let base = scratch("create");
        let home = Home {
            path: base.join("a").join("b").join("udpchat"),
        };
        assert!(home.create().unwrap().is_empty());
        assert_eq!(mode(home.path()), 0o700);
        assert!(home.create().unwrap().is_empty(), "existing is fine");
    }

    #[test]
    fn an_open_directory_is_warned_about_with_the_fix() {
        let base = scratch("open dir");
        let home = Home {
            path: base.join("udpchat"),
        };
        home.create().unwrap();
        chmod(home.path(), 0o755);
        let warnings = home.create().unwrap();
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        let w = &warnings[0];
        assert!(w.contains(&home.path().display().to_string()), "{w}");
        assert!(w.contains("mode 0755"), "{w}");
        assert!(
            w.ends_with(&format!("chmod 700 '{}'", home.path().display())),
            "quoted, since the path has a space: {w}"
        );
        assert!(!w.contains('\n'), "{w}");
    }

    #[test]
    fn a_file_where_the_directory_should_be_is_refused() {
        let base = scratch("notdir");
        let file = base.join("udpchat");
        fs::write(&file, "x").unwrap();
        let err = Home { path: file.clone() }.create().unwrap_err();
        assert!(matches!(err, HomeError::NotADirectory { .. }), "{err:?}");
        let msg = err.to_string();
        assert!(
            msg.starts_with(&format!(
                "{} is a regular file, not a directory",
                file.display()
            )),
            "{msg}"
        );
        let below = Home {
            path: file.join("deeper"),
        };
        let msg = below.create().unwrap_err().to_string();
        assert!(
            msg.contains("not a directory") && msg.contains("deeper"),
            "{msg}"
        );
        assert!(!msg.contains('\n'), "{msg}");
    }

    #[test]
    fn permission_denied_is_named() {
        let base = scratch("denied");
        if !permissions_apply(&base) {
            eprintln!("skipped: this process is not stopped by permissions (root?)");
            return;
        }
        let locked = base.join("locked");
        fs::create_dir(&locked).unwrap();
        chmod(&locked, 0o500);
        let err = Home {
            path: locked.join("udpchat"),
        }
        .create()
        .unwrap_err();
        chmod(&locked, 0o700);
        assert!(matches!(err, HomeError::PermissionDenied { .. }), "{err:?}");
        assert_eq!(
            err.to_string(),
            format!(
                "cannot create the udpchat directory {}: permission denied",
                locked.join("udpchat").display()
            )
        );
    }

    #[test]
    fn errors_users_meet_are_said_plainly() {
        let path = Path::new("/data/udpchat");
        // EROFS and EACCES as the system reports them.
        let ro = HomeError::io(
            "create the udpchat directory",
            path,
            io::Error::from_raw_os_error(30),
        );
        assert!(matches!(ro, HomeError::ReadOnly { .. }), "{ro:?}");
        assert_eq!(
            ro.to_string(),
            "cannot create the udpchat directory /data/udpchat: the file system is read-only"
        );
        let denied = HomeError::io(
            "write the identity file",
            path,
            io::Error::from_raw_os_error(13),
        );
        assert_eq!(
            denied.to_string(),
            "cannot write the identity file /data/udpchat: permission denied"
        );
    }

    fn key(n: u8) -> [u8; 32] {
        [n; 32]
    }

    fn made(name: &str) -> Home {
        let home = Home {
            path: scratch(name).join("udpchat"),
        };
        home.create().unwrap();
        home
    }

    #[test]
    fn the_identity_is_created_once_then_read() {
        let home = made("identity");
        let first = home.load_or_create_identity(|| key(7)).unwrap();
        assert!(first.created);
        assert_eq!(*first.private_key, key(7));
        assert!(first.warnings.is_empty());
        let path = home.identity_path();
        assert_eq!(mode(&path), 0o600);
        let text = fs::read_to_string(&path).unwrap();
        assert_eq!(
            text,
            format!("{IDENTITY_HEADER}\nprivate-key {}\n", "07".repeat(32))
        );
        let again = home
            .load_or_create_identity(|| panic!("no new key when one exists"))
            .unwrap();
        assert!(!again.created);
        assert_eq!(*again.private_key, key(7));
        let leftovers: Vec<_> = fs::read_dir(home.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .filter(|n| n != IDENTITY)
            .collect();
        assert!(
            leftovers.is_empty(),
            "no temporary file left: {leftovers:?}"
        );
        assert!(
            !format!("{again:?}").contains("07, 7"),
            "Debug hides the key"
        );
    }

    #[test]
    fn the_loser_of_a_race_takes_the_winners_key() {
        let home = made("race-one");
        let path = home.identity_path();
        // The other udpchat writes its key while this one generates its own.
        let got = home
            .load_or_create_identity(|| {
                fs::write(&path, identity_text(&key(1)).as_bytes()).unwrap();
                key(2)
            })
            .unwrap();
        assert!(!got.created);
        assert_eq!(*got.private_key, key(1));
        assert!(fs::read_to_string(&path)
            .unwrap()
            .contains(&"01".repeat(32)));
    }

    #[test]
    fn many_starting_at_once_end_with_one_key() {
        let home = Arc::new(made("race-many"));
        let n = 8;
        let barrier = Arc::new(Barrier::new(n));
        let results: Vec<IdentityFile> = (0..n)
            .map(|i| {
                let home = Arc::clone(&home);
                let barrier = Arc::clone(&barrier);
                std::thread::spawn(move || {
                    barrier.wait();
                    home.load_or_create_identity(|| key(u8::try_from(i).unwrap() + 1))
                        .unwrap()
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|t| t.join().unwrap())
            .collect();
        assert_eq!(results.iter().filter(|r| r.created).count(), 1);
        let winner = *results.iter().find(|r| r.created).unwrap().private_key;
        assert!(results.iter().all(|r| *r.private_key == winner));
        let on_disk = home.load_or_create_identity(|| key(99)).unwrap();
        assert_eq!(*on_disk.private_key, winner);
    }

    #[test]
    fn an_open_identity_is_warned_about() {
        let home = made("identity-open");
        home.load_or_create_identity(|| key(3)).unwrap();
        let path = home.identity_path();
        chmod(&path, 0o640);
        let got = home.load_or_create_identity(|| key(4)).unwrap();
        assert_eq!(*got.private_key, key(3));
        assert_eq!(
            got.warnings,
            [format!(
                "the identity file {0} is open to other users (mode 0640); fix it with: chmod 600 {0}",
                path.display()
            )]
        );
    }

    #[test]
    fn comments_blank_lines_and_uppercase_are_read() {
        let home = made("identity-hand");
        let path = home.identity_path();
        let text = format!(
            "\u{feff}# mine\r\n\n   \n# another\nprivate-key   {}  \r\n# end\n",
            "AB".repeat(32)
        );
        fs::write(&path, text).unwrap();
        let got = home.load_or_create_identity(|| key(0)).unwrap();
        assert_eq!(*got.private_key, [0xab; 32]);
    }

    #[test]
    fn a_bad_identity_is_refused_and_kept() {
        let good = "11".repeat(32);
        let cases: Vec<(String, &str)> = vec![
            (String::new(), "has no `private-key` line"),
            ("# only a comment\n".into(), "has no `private-key` line"),
            (
                format!("private-key {}\n", &good[..62]),
                ", line 1: the private key has 62 characters",
            ),
            (
                format!("private-key {}zz\n", &good[..62]),
                ", line 1: the private key is not hexadecimal",
            ),
            (
                format!("# c\nprivate-key {good} extra\n"),
                ", line 2: has more than the key",
            ),
            ("# c\n\nprivate-key\n".into(), ", line 3: has no key after"),
            (
                format!("public-key {good}\n"),
                ", line 1: is neither a comment nor",
            ),
            (
                format!("private-key {good}\nprivate-key {good}\n"),
                ", line 2: is a second `private-key` line (the first is line 1)",
            ),
        ];
        for (text, expected) in cases {
            let home = made("identity-bad");
            let path = home.identity_path();
            fs::write(&path, &text).unwrap();
            let err = home
                .load_or_create_identity(|| panic!("never replaced"))
                .unwrap_err();
            assert!(matches!(err, HomeError::InvalidIdentity { .. }), "{err:?}");
            let msg = err.to_string();
            assert!(
                msg.starts_with(&format!("the identity file {}", path.display())),
                "{msg}"
            );
            assert!(msg.contains(expected), "{text:?}: {msg}");
            assert!(!msg.contains(&good[..20]), "the key is not quoted: {msg}");
            assert!(!msg.contains('\n'), "{msg}");
            assert_eq!(fs::read_to_string(&path).unwrap(), text, "left as it was");
        }
        let home = made("identity-binary");
        fs::write(home.identity_path(), b"# ok\n\xff\xfe\n").unwrap();
        let msg = home
            .load_or_create_identity(|| key(0))
            .unwrap_err()
            .to_string();
        assert!(msg.contains(", line 2: is not UTF-8 text"), "{msg}");
        let home = made("identity-big");
        fs::write(home.identity_path(), vec![b'#'; 70_000]).unwrap();
        let msg = home
            .load_or_create_identity(|| key(0))
            .unwrap_err()
            .to_string();
        assert!(msg.contains("larger than 64 KiB"), "{msg}");
    }

    #[test]
    fn an_identity_that_is_not_a_file_is_left_alone() {
        let home = made("identity-dir");
        let path = home.identity_path();
        fs::create_dir(&path).unwrap();
        let err = home.load_or_create_identity(|| key(0)).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "the identity file {} is a directory, not a regular file; udpchat leaves it alone",
                path.display()
            )
        );
        let home = made("identity-fifo");
        if let Some(path) = mkfifo(&home.identity_path()) {
            let err = home.load_or_create_identity(|| key(0)).unwrap_err();
            assert!(
                err.to_string().contains("is a FIFO, not a regular file"),
                "{err}"
            );
            assert!(
                fs::metadata(&path).unwrap().file_type().is_fifo(),
                "still there"
            );
        }
    }

    #[test]
    fn an_unreadable_identity_is_refused() {
        let home = made("identity-unreadable");
        if !permissions_apply(home.path()) {
            eprintln!("skipped: this process is not stopped by permissions (root?)");
            return;
        }
        home.load_or_create_identity(|| key(5)).unwrap();
        let path = home.identity_path();
        chmod(&path, 0o000);
        let err = home.load_or_create_identity(|| key(6)).unwrap_err();
        chmod(&path, 0o600);
        assert_eq!(
            err.to_string(),
            format!(
                "cannot read the identity file {}: permission denied",
                path.display()
            )
        );
    }

    #[test]
    fn replace_keeps_the_file_whole_and_private() {
        let dir = scratch("replace");
        let path = dir.join("f");
        fs::write(&path, "old").unwrap();
        chmod(&path, 0o644);
        replace_atomically(&path, b"new").unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "new");
        assert_eq!(mode(&path), 0o600);
        assert_eq!(
            fs::read_dir(&dir).unwrap().count(),
            1,
            "no temporary file left"
        );
        assert!(!create_atomically(&path, b"other").unwrap());
        assert_eq!(
            fs::read_to_string(&path).unwrap(),
            "new",
            "create never replaces"
        );
        assert_eq!(
            fs::read_dir(&dir).unwrap().count(),
            1,
            "no temporary file left"
        );
        let err = replace_atomically(&dir.join("missing").join("f"), b"x").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn keys_go_to_hex_and_back() {
        let key: [u8; 32] = std::array::from_fn(|i| u8::try_from(i * 8).unwrap());
        let hex = encode_key(&key);
        assert_eq!(hex.len(), 64);
        assert_eq!(hex, hex.to_lowercase());
        assert_eq!(*decode_key(&hex).unwrap(), key);
        assert!(decode_key(&"é".repeat(32)).is_err());
        assert!(decode_key(&"+1".repeat(32)).is_err());
    }

    /// Makes a FIFO at `path` with mkfifo(1); `None`, with the reason printed, where
    /// that is impossible.
    pub(crate) fn mkfifo(path: &Path) -> Option<PathBuf> {
        match std::process::Command::new("mkfifo").arg(path).status() {
            Ok(status) if status.success() => Some(path.to_path_buf()),
            other => {
                eprintln!(
                    "skipped the FIFO case: mkfifo {} gave {other:?}",
                    path.display()
                );
                None
            }
        }
    }
}
