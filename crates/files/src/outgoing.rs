//! [`Outgoing`]: a file being sent, hashed once and then read in chunks.

use std::fs::{File, Metadata};
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::{FileError, Source};

/// A file being sent. [`open`](Self::open) hashes it; [`read_at`](Self::read_at) then
/// hands out its bytes and notices if it changed since, so what is sent is what was
/// offered (the receiver's hash check would catch a change anyway, but only after the
/// whole transfer, with a less helpful message).
///
/// The file stays open: if it is replaced (an editor saving by renaming a new file over
/// it), the old content is still what is read, which matches the hash.
#[derive(Debug)]
pub struct Outgoing {
    file: File,
    path: PathBuf,
    name: String,
    size: u64,
    modified: Option<SystemTime>,
    hash: [u8; 32],
}

impl Outgoing {
    /// Opens `source`, records its size and modification time and hashes it (streaming,
    /// in bounded memory). A file that changes while it is being hashed is
    /// [`FileError::Changed`].
    pub fn open(source: &Source) -> Result<Self, FileError> {
        let path = &source.path;
        let mut file = File::open(path).map_err(|e| FileError::read(path, e))?;
        let metadata = file.metadata().map_err(|e| FileError::read(path, e))?;
        if !metadata.is_file() {
            return Err(FileError::NotAFile(path.clone()));
        }
        let size = metadata.len();
        let modified = metadata.modified().ok();
        let mut hasher = blake3::Hasher::new();
        // `update_reader` reads through a fixed buffer of its own: bounded memory for
        // any file size. Reading one byte past `size` catches a file that grew.
        hasher
            .update_reader((&mut file).take(size.saturating_add(1)))
            .map_err(|e| FileError::read(path, e))?;
        let outgoing = Self {
            file,
            path: path.clone(),
            name: source.name.clone(),
            size,
            modified,
            hash: *hasher.finalize().as_bytes(),
        };
        if hasher.count() != size {
            return Err(FileError::Changed(outgoing.path));
        }
        outgoing.check_unchanged()?;
        Ok(outgoing)
    }

    /// The name offered to the peer.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The file on disk.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The size recorded when the file was opened: what is offered and sent.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The BLAKE3 hash of the whole file as it was when opened.
    pub fn hash(&self) -> [u8; 32] {
        self.hash
    }

    /// Fills `buf` with the file's bytes from `offset`, returning how many: fewer than
    /// `buf.len()` only at the end of the file (0 from [`size`](Self::size) on). If the
    /// file's size or modification time changed since it was opened, or it ends before
    /// its recorded size, that is [`FileError::Changed`].
    pub fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<usize, FileError> {
        self.check_unchanged()?;
        let left = self.size.saturating_sub(offset);
        let want = usize::try_from(left).map_or(buf.len(), |left| left.min(buf.len()));
        if want == 0 {
            return Ok(0);
        }
        let path = &self.path;
        self.file
            .seek(SeekFrom::Start(offset))
            .map_err(|e| FileError::read(path, e))?;
        let mut filled = 0;
        while filled < want {
            match self.file.read(&mut buf[filled..want]) {
                Ok(0) => return Err(FileError::Changed(path.clone())),
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(FileError::read(path, e)),
            }
        }
        Ok(filled)
    }

    /// [`FileError::Changed`] if the file's size or modification time is no longer
    /// what it was when opened. Cheap (one `fstat`); [`read_at`](Self::read_at) does
    /// it on every call.
    pub fn check_unchanged(&self) -> Result<(), FileError> {
        let metadata = self
            .file
            .metadata()
            .map_err(|e| FileError::read(&self.path, e))?;
        if self.same(&metadata) {
            Ok(())
        } else {
            Err(FileError::Changed(self.path.clone()))
        }
    }

    fn same(&self, metadata: &Metadata) -> bool {
        metadata.len() == self.size && metadata.modified().ok() == self.modified
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::{self, OpenOptions};
    use std::io::Write;

    fn source(dir: &Path, name: &str, bytes: &[u8]) -> Source {
        let path = dir.join(name);
        fs::write(&path, bytes).unwrap();
        Source {
            path,
            name: name.to_owned(),
        }
    }

    #[test]
    fn the_hash_is_blake3_of_the_bytes_and_reads_give_them_back() {
        let tmp = tempfile::tempdir().unwrap();
        let bytes: Vec<u8> = (0..3_000_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        let mut out = Outgoing::open(&source(tmp.path(), "big.bin", &bytes)).unwrap();
        assert_eq!(out.hash(), *blake3::hash(&bytes).as_bytes());
        assert_eq!(out.size(), bytes.len() as u64);
        assert_eq!(out.name(), "big.bin");

        let mut buf = [0u8; 1106];
        let tail = bytes.len() - 100;
        assert_eq!(out.read_at(tail as u64, &mut buf).unwrap(), 100);
        assert_eq!(&buf[..100], &bytes[tail..]);
        assert_eq!(out.read_at(5, &mut buf).unwrap(), 1106);
        assert_eq!(&buf[..], &bytes[5..5 + 1106]);
        assert_eq!(out.read_at(bytes.len() as u64, &mut buf).unwrap(), 0);
        assert_eq!(out.read_at(u64::MAX, &mut buf).unwrap(), 0);
    }

    #[test]
    fn an_empty_file_has_the_empty_hash() {
        let tmp = tempfile::tempdir().unwrap();
        let mut out = Outgoing::open(&source(tmp.path(), "empty", b"")).unwrap();
        assert_eq!(out.hash(), *blake3::hash(b"").as_bytes());
        assert_eq!(out.read_at(0, &mut [0u8; 16]).unwrap(), 0);
    }

    #[test]
    fn a_file_that_grows_after_open_is_changed() {
        let tmp = tempfile::tempdir().unwrap();
        let src = source(tmp.path(), "log.txt", b"hello");
        let mut out = Outgoing::open(&src).unwrap();
        out.check_unchanged().unwrap();
        OpenOptions::new()
            .append(true)
            .open(&src.path)
            .unwrap()
            .write_all(b" world")
            .unwrap();
        let err = out.check_unchanged().unwrap_err();
        assert!(
            matches!(&err, FileError::Changed(p) if *p == src.path),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            format!("{} changed while it was being sent", src.path.display())
        );
        assert!(matches!(
            out.read_at(0, &mut [0u8; 4]),
            Err(FileError::Changed(_))
        ));
    }

    #[test]
    fn a_file_that_shrinks_after_open_is_changed() {
        let tmp = tempfile::tempdir().unwrap();
        let src = source(tmp.path(), "log.txt", b"hello world");
        let mut out = Outgoing::open(&src).unwrap();
        OpenOptions::new()
            .write(true)
            .open(&src.path)
            .unwrap()
            .set_len(3)
            .unwrap();
        assert!(matches!(
            out.read_at(0, &mut [0u8; 4]),
            Err(FileError::Changed(_))
        ));
    }

    #[test]
    fn a_missing_file_is_not_found() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("gone");
        let err = Outgoing::open(&Source {
            path: path.clone(),
            name: "gone".into(),
        })
        .unwrap_err();
        assert!(matches!(err, FileError::NotFound(p) if p == path));
    }
}
