//! [`Downloads`] and [`Incoming`]: files being received, kept as resumable partial
//! files until they are complete and verified.

use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{self, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::{safe_name, FileError};

/// Most ` (n)` suffixes tried when looking for a free final name.
const MAX_SUFFIX: u32 = 10_000;

/// The download directory: where partial files are kept and finished files land.
#[derive(Debug, Clone)]
pub struct Downloads {
    dir: PathBuf,
}

impl Downloads {
    /// The download directory `dir`, created (with its parents) if it does not exist.
    pub fn new(dir: PathBuf) -> Result<Self, FileError> {
        fs::create_dir_all(&dir).map_err(|e| FileError::write(&dir, e))?;
        Ok(Self { dir })
    }

    /// The download directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where the partial file of a transfer of `size` bytes hashing to `hash` is kept:
    /// `DIR/.udpchat-<first 16 hex digits of the hash>-<size>.part`. In the download
    /// directory itself, so the final rename stays on one file system and is atomic;
    /// named by content, not by the offered name, so the same file offered again (after
    /// either side restarted, or under another name) finds what already arrived.
    pub fn partial_path(&self, size: u64, hash: &[u8; 32]) -> PathBuf {
        let hex: String = hash[..8].iter().map(|b| format!("{b:02x}")).collect();
        self.dir.join(format!(".udpchat-{hex}-{size}.part"))
    }

    /// Starts (or resumes) receiving the file offered as `offered_name`, `size` bytes
    /// hashing to `hash`. An existing partial file is resumed from its end
    /// ([`Incoming::received`] is the offset to ask the sender for); its bytes are fed
    /// to the hasher now, so finishing never reads the file again. A partial file
    /// longer than `size` is not a prefix of this one and starts over.
    ///
    /// The partial file is locked while the [`Incoming`] lives: the same content
    /// received twice at once is [`FileError::Busy`] rather than two writers
    /// interleaving.
    pub fn incoming(
        &self,
        offered_name: &str,
        size: u64,
        hash: [u8; 32],
    ) -> Result<Incoming, FileError> {
        let partial = self.partial_path(size, &hash);
        let write_err = |e| FileError::write(&partial, e);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&partial)
            .map_err(write_err)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => return Err(FileError::Busy(partial)),
            Err(TryLockError::Error(e)) => return Err(write_err(e)),
        }
        let len = file
            .metadata()
            .map_err(|e| FileError::read(&partial, e))?
            .len();
        let mut hasher = blake3::Hasher::new();
        if len > size {
            file.set_len(0).map_err(write_err)?;
        } else if len > 0 {
            hasher
                .update_reader(io::Read::take(&mut file, len))
                .map_err(|e| FileError::read(&partial, e))?;
        }
        // What was hashed is what we have, even if the file was shorter than its
        // length said; anything after it is cut off.
        let received = hasher.count();
        if received != len {
            file.set_len(received).map_err(write_err)?;
        }
        file.seek(SeekFrom::Start(received)).map_err(write_err)?;
        Ok(Incoming {
            file,
            pending: Vec::new(),
            on_disk: received,
            partial,
            dir: self.dir.clone(),
            offered_name: offered_name.to_owned(),
            size,
            hash,
            hasher,
            received,
        })
    }
}

/// Bytes of chunks gathered before one write to the partial file.
const WRITE_BLOCK: usize = 256 * 1024;

/// A file being received into its partial file. Chunks are written in order with
/// [`write_at`](Self::write_at); [`finish`](Self::finish) verifies the hash and gives
/// the file its final name. Dropping an `Incoming` keeps the partial file as far as it
/// was written ([`flush`](Self::flush); at most [`WRITE_BLOCK`] bytes are pending),
/// which is what lets the transfer resume; [`discard`](Self::discard) deletes it.
#[derive(Debug)]
pub struct Incoming {
    file: File,
    /// Chunks accepted and not yet written: written in blocks of [`WRITE_BLOCK`], one
    /// system call each instead of one per chunk. Lost if the process dies, which only
    /// means the transfer resumes from what is on disk.
    pending: Vec<u8>,
    /// Bytes of the partial file on disk (and hashed): `received` less `pending`.
    on_disk: u64,
    partial: PathBuf,
    dir: PathBuf,
    offered_name: String,
    size: u64,
    hash: [u8; 32],
    hasher: blake3::Hasher,
    received: u64,
}

impl Incoming {
    /// Bytes received so far (kept from an earlier attempt included): the offset the
    /// next chunk must start at, and the one to resume from.
    pub fn received(&self) -> u64 {
        self.received
    }

    /// The offered size.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The name the file was offered under (unsanitised; see [`safe_name`]).
    pub fn offered_name(&self) -> &str {
        &self.offered_name
    }

    /// The partial file.
    pub fn partial_path(&self) -> &Path {
        &self.partial
    }

    /// Whether every offered byte has arrived.
    pub fn is_complete(&self) -> bool {
        self.received == self.size
    }

    /// Writes the chunk `data` at `offset`, which must be [`received`](Self::received):
    /// chunks arrive in order. A chunk entirely before it (a repeat of data already
    /// written) is ignored; one that starts elsewhere is [`FileError::OutOfOrder`], and
    /// one that reaches past the offered size is [`FileError::TooLong`]. After an error
    /// while writing (a full disk) the partial file is cut back to what was received,
    /// so the transfer can go on or resume from there.
    pub fn write_at(&mut self, offset: u64, data: &[u8]) -> Result<(), FileError> {
        let too_long = || FileError::TooLong {
            path: self.partial.clone(),
            size: self.size,
        };
        let len = u64::try_from(data.len()).map_err(|_| too_long())?;
        let end = offset.checked_add(len).ok_or_else(too_long)?;
        if end <= self.received {
            return Ok(());
        }
        if offset != self.received {
            return Err(FileError::OutOfOrder {
                path: self.partial.clone(),
                offset,
                expected: self.received,
            });
        }
        if end > self.size {
            return Err(too_long());
        }
        self.pending.extend_from_slice(data);
        self.received = end;
        if self.pending.len() >= WRITE_BLOCK {
            self.flush()?;
        }
        Ok(())
    }

    /// Writes what was accepted to the partial file. On an error (a full disk) the
    /// partial file goes back to what was on disk before, and so does
    /// [`received`](Self::received): a resumed transfer asks for the rest.
    pub fn flush(&mut self) -> Result<(), FileError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        if let Err(e) = self.file.write_all(&self.pending) {
            // Part of the block may be on disk and the position past it: go back to the
            // end of what was written before. If even that fails, the next write fails.
            let _ = self.file.set_len(self.on_disk);
            let _ = self.file.seek(SeekFrom::Start(self.on_disk));
            self.pending.clear();
            self.received = self.on_disk;
            return Err(FileError::write(&self.partial, e));
        }
        // Hashed once written, so the hash always covers exactly what is on disk.
        self.hasher.update(&self.pending);
        self.on_disk = self.received;
        self.pending.clear();
        Ok(())
    }

    /// Verifies and delivers the file: checks the hash (a mismatch deletes the partial
    /// file and is [`FileError::Mismatch`]), makes the data durable, and moves it to a
    /// free name under the download directory made from the offered name by
    /// [`safe_name`], creating its subdirectories. It never overwrites: if `name.ext`
    /// exists it becomes `name (1).ext`, then `name (2).ext`... Returns the final path.
    pub fn finish(mut self) -> Result<PathBuf, FileError> {
        self.flush()?;
        if !self.is_complete() {
            return Err(FileError::Incomplete {
                path: self.partial,
                received: self.received,
                size: self.size,
            });
        }
        if *self.hasher.finalize().as_bytes() != self.hash {
            drop(self.file);
            // Some chunk was wrong and nothing says which: none of the partial file can
            // be trusted, and resuming from it would fail the same way. If it cannot
            // be removed, that is the error to report (the message of a mismatch says
            // it was removed).
            fs::remove_file(&self.partial).map_err(|e| FileError::write(&self.partial, e))?;
            // The peer's name made safe: it is shown, and could hold escapes or newlines.
            return Err(FileError::Mismatch(safe_name(&self.offered_name)));
        }
        self.file
            .flush()
            .map_err(|e| FileError::write(&self.partial, e))?;
        self.file
            .sync_all()
            .map_err(|e| FileError::write(&self.partial, e))?;

        let name = safe_name(&self.offered_name);
        let mut target = self.dir.clone();
        let mut components = name.split('/').peekable();
        let mut file_name = "";
        while let Some(component) = components.next() {
            if components.peek().is_some() {
                target.push(component);
            } else {
                file_name = component;
            }
        }
        fs::create_dir_all(&target).map_err(|e| FileError::write(&target, e))?;
        let (stem, extension) = split_extension(file_name);
        for n in 0..MAX_SUFFIX {
            let candidate = if n == 0 {
                file_name.to_owned()
            } else {
                format!("{stem} ({n}){extension}")
            };
            let path = target.join(candidate);
            match link_no_clobber(&self.partial, &path) {
                Ok(()) => {
                    drop(self.file);
                    remove_partial(&self.partial);
                    sync_dir(&target);
                    return Ok(path);
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(FileError::write(&path, e)),
            }
        }
        let last = target.join(format!("{stem} ({MAX_SUFFIX}){extension}"));
        Err(FileError::write(
            &last,
            io::Error::new(io::ErrorKind::AlreadyExists, "no free name left"),
        ))
    }

    /// Gives up on this file: deletes its partial file.
    pub fn discard(self) -> Result<(), FileError> {
        // What is pending is dropped with the file.
        drop(self.file);
        match fs::remove_file(&self.partial) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                Err(FileError::write(&self.partial, e))
            }
            _ => Ok(()),
        }
    }
}

/// `(stem, extension)` of a file name, the extension with its dot: `("a", ".txt")`. A
/// name's leading dot does not start an extension.
fn split_extension(file_name: &str) -> (&str, &str) {
    match file_name.rfind('.') {
        Some(dot) if dot > 0 => file_name.split_at(dot),
        _ => (file_name, ""),
    }
}

/// Gives the file at `from` the new name `to`, failing with `AlreadyExists` if `to`
/// exists, atomically: a hard link cannot replace anything. On file systems without
/// hard links (FAT, some network shares), reserving the name by creating it
/// exclusively and renaming over the reservation does the same, except that the name
/// briefly exists empty.
fn link_no_clobber(from: &Path, to: &Path) -> io::Result<()> {
    match fs::hard_link(from, to) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Err(e),
        Err(_) => reserve_and_rename(from, to),
    }
}

/// The fallback of [`link_no_clobber`]: create `to` exclusively, then rename `from`
/// over it.
fn reserve_and_rename(from: &Path, to: &Path) -> io::Result<()> {
    OpenOptions::new().write(true).create_new(true).open(to)?;
    fs::rename(from, to).inspect_err(|_| {
        let _ = fs::remove_file(to);
    })
}

/// Removes the partial file once the final name holds the data. A failure leaves a
/// harmless extra link (or, after the rename fallback, nothing to remove).
fn remove_partial(partial: &Path) {
    let _ = fs::remove_file(partial);
}

/// Makes the new name durable (Unix: fsync of the directory). Best effort: the data
/// itself is already synced, and the partial file's name would survive a crash.
fn sync_dir(dir: &Path) {
    #[cfg(unix)]
    if let Ok(dir) = File::open(dir) {
        let _ = dir.sync_all();
    }
    #[cfg(not(unix))]
    let _ = dir;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extensions_split_at_the_last_dot_but_not_a_leading_one() {
        assert_eq!(split_extension("a.txt"), ("a", ".txt"));
        assert_eq!(split_extension("a.tar.gz"), ("a.tar", ".gz"));
        assert_eq!(split_extension("README"), ("README", ""));
        assert_eq!(split_extension(".hidden"), (".hidden", ""));
    }

    #[test]
    fn the_rename_fallback_never_overwrites() {
        let tmp = tempfile::tempdir().unwrap();
        let (from, to) = (tmp.path().join("from"), tmp.path().join("to"));
        fs::write(&from, b"new").unwrap();
        fs::write(&to, b"old").unwrap();
        let err = reserve_and_rename(&from, &to).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(fs::read(&to).unwrap(), b"old");
        fs::remove_file(&to).unwrap();
        reserve_and_rename(&from, &to).unwrap();
        assert_eq!(fs::read(&to).unwrap(), b"new");
        assert!(!from.exists());
    }
}
