//! [`FileError`]: everything that can go wrong on the disk side of a transfer, each a
//! one-line message naming the file, fit to show the user as it is.

use std::io;
use std::path::{Path, PathBuf};

/// What went wrong with a file being sent or received. Every message names the path
/// (or, for a damaged download, the name it was offered under).
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// A path given to send does not exist.
    #[error("no such file: {}", .0.display())]
    NotFound(PathBuf),
    /// A path given to send is neither a regular file nor a directory (a device, a
    /// socket, a FIFO...).
    #[error("not a file or directory: {}", .0.display())]
    NotAFile(PathBuf),
    /// A directory given to send holds no regular file (symbolic links are not
    /// followed, so they do not count).
    #[error("nothing to send in {}", .0.display())]
    EmptyDirectory(PathBuf),
    /// Reading failed (permission denied, I/O error...).
    #[error("cannot read {}: {}", .path.display(), reason(.source))]
    Read {
        /// The file or directory being read.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// Writing (or creating, renaming, removing) failed for a reason other than a full
    /// disk.
    #[error("cannot write {}: {}", .path.display(), reason(.source))]
    Write {
        /// The file or directory being written.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// The file system holding the downloads is full. The partial file is kept: after
    /// making room, offering the file again resumes it.
    #[error("disk full while writing {}", .path.display())]
    DiskFull {
        /// The file being written.
        path: PathBuf,
        /// The operating system's error (ENOSPC).
        #[source]
        source: io::Error,
    },
    /// A file being sent changed (its size or modification time, or it ended early)
    /// after it was hashed; what was sent would not match the offered hash.
    #[error("{} changed while it was being sent", .0.display())]
    Changed(PathBuf),
    /// Another transfer (in this process or another) is writing the same partial file:
    /// the same content is being received twice at once.
    #[error("{} is already being received by another transfer", .0.display())]
    Busy(PathBuf),
    /// A chunk did not start where the partial file ends. Chunks arrive in order, so
    /// this is a bug on one side or the other.
    #[error("{}: a chunk at byte {offset} arrived out of order (expected byte {expected})", .path.display())]
    OutOfOrder {
        /// The partial file.
        path: PathBuf,
        /// Where the chunk starts.
        offset: u64,
        /// Where the partial file ends.
        expected: u64,
    },
    /// A chunk would make the file longer than the size it was offered with.
    #[error("{}: more data than the {size} bytes offered", .path.display())]
    TooLong {
        /// The partial file.
        path: PathBuf,
        /// The offered size.
        size: u64,
    },
    /// [`Incoming::finish`](crate::Incoming::finish) was called before every byte
    /// arrived.
    #[error("{}: incomplete, {received} of {size} bytes received", .path.display())]
    Incomplete {
        /// The partial file.
        path: PathBuf,
        /// Bytes received so far.
        received: u64,
        /// The offered size.
        size: u64,
    },
    /// The received bytes do not hash to the offered BLAKE3 hash. The partial file was
    /// deleted so the next attempt starts from scratch. Holds the offered name as
    /// [`safe_name`](crate::safe_name) makes it (the peer's own could hold terminal
    /// escapes or newlines).
    #[error("{0} arrived damaged (BLAKE3 mismatch); the partial file was removed")]
    Mismatch(String),
}

impl FileError {
    /// A failure to read `path`, [`NotFound`](Self::NotFound) if it does not exist.
    pub(crate) fn read(path: &Path, source: io::Error) -> Self {
        if source.kind() == io::ErrorKind::NotFound {
            Self::NotFound(path.to_path_buf())
        } else {
            Self::Read {
                path: path.to_path_buf(),
                source,
            }
        }
    }

    /// A failure to write `path`, [`DiskFull`](Self::DiskFull) if the disk is full.
    pub(crate) fn write(path: &Path, source: io::Error) -> Self {
        if is_disk_full(&source) {
            Self::DiskFull {
                path: path.to_path_buf(),
                source,
            }
        } else {
            Self::Write {
                path: path.to_path_buf(),
                source,
            }
        }
    }
}

/// ENOSPC, on every platform Rust knows it on, and by its number on Linux in case an
/// error reached us without a kind.
fn is_disk_full(error: &io::Error) -> bool {
    const ENOSPC: i32 = 28;
    error.kind() == io::ErrorKind::StorageFull
        || (cfg!(any(target_os = "linux", target_os = "android"))
            && error.raw_os_error() == Some(ENOSPC))
}

/// The operating system's message, in the middle of a sentence: "permission denied",
/// not "Permission denied (os error 13)".
fn reason(error: &io::Error) -> String {
    let text = error.to_string();
    let text = match text.rfind(" (os error ") {
        Some(at) if text.ends_with(')') => &text[..at],
        _ => &text,
    };
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => error.kind().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_one_line_and_name_the_path() {
        let path = Path::new("x.txt");
        let denied = FileError::read(path, io::Error::from_raw_os_error(13));
        assert_eq!(denied.to_string(), "cannot read x.txt: permission denied");
        let missing = FileError::read(path, io::Error::from(io::ErrorKind::NotFound));
        assert_eq!(missing.to_string(), "no such file: x.txt");
        let full = FileError::write(Path::new("dl/.p.part"), io::Error::from_raw_os_error(28));
        assert_eq!(full.to_string(), "disk full while writing dl/.p.part");
        assert_eq!(
            FileError::Changed(path.into()).to_string(),
            "x.txt changed while it was being sent"
        );
        assert_eq!(
            FileError::Mismatch("x.txt".into()).to_string(),
            "x.txt arrived damaged (BLAKE3 mismatch); the partial file was removed"
        );
        let custom = FileError::write(path, io::Error::other("Odd failure"));
        assert_eq!(custom.to_string(), "cannot write x.txt: odd failure");
    }
}
