//! Files going from an `Outgoing` to an `Incoming` the way the protocol moves them: in
//! order, in chunks the size of a datagram's payload.
// Helpers outside #[test] functions unwrap too: a failure there is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::path::{Path, PathBuf};

use udpchat_files::{expand, Downloads, FileError, Incoming, Outgoing, Source};

/// The chunk size the tests send with: about one datagram's payload.
const CHUNK: usize = 1106;

fn pseudo_random(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

fn write_source(dir: &Path, name: &str, bytes: &[u8]) -> Source {
    let path = dir.join(name);
    fs::write(&path, bytes).unwrap();
    Source {
        path,
        name: name.to_owned(),
    }
}

/// Sends `outgoing` from `incoming.received()` until `incoming` has `until` bytes.
fn send(outgoing: &mut Outgoing, incoming: &mut Incoming, until: u64) {
    let mut buf = [0u8; CHUNK];
    while incoming.received() < until {
        let offset = incoming.received();
        let n = outgoing.read_at(offset, &mut buf).unwrap();
        let n = n.min(usize::try_from(until - offset).unwrap());
        assert!(n > 0);
        incoming.write_at(offset, &buf[..n]).unwrap();
    }
}

/// Sends all of `outgoing` from `incoming.received()` on.
fn send_all(outgoing: &mut Outgoing, incoming: &mut Incoming) {
    let size = outgoing.size();
    send(outgoing, incoming, size);
}

fn offer(downloads: &Downloads, outgoing: &Outgoing) -> Incoming {
    downloads
        .incoming(outgoing.name(), outgoing.size(), outgoing.hash())
        .unwrap()
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn a_file_round_trips_in_datagram_sized_chunks() {
    let tmp = tempfile::tempdir().unwrap();
    let bytes = pseudo_random(1_000_003, 7);
    let mut outgoing = Outgoing::open(&write_source(tmp.path(), "data.bin", &bytes)).unwrap();
    let downloads = Downloads::new(tmp.path().join("downloads/nested")).unwrap();
    let mut incoming = offer(&downloads, &outgoing);
    assert_eq!(incoming.received(), 0);
    assert_eq!(incoming.size(), bytes.len() as u64);
    let partial = incoming.partial_path().to_path_buf();
    let hex: String = outgoing.hash()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(
        partial,
        downloads.dir().join(format!(".udpchat-{hex}-1000003.part"))
    );

    send_all(&mut outgoing, &mut incoming);
    assert!(incoming.is_complete());
    let path = incoming.finish().unwrap();
    assert_eq!(path, downloads.dir().join("data.bin"));
    assert_eq!(fs::read(&path).unwrap(), bytes);
    assert!(!partial.exists());
    assert_eq!(files_in(downloads.dir()), ["data.bin"]);
}

#[test]
fn a_directory_round_trips_into_its_tree() {
    let tmp = tempfile::tempdir().unwrap();
    let album = tmp.path().join("album");
    fs::create_dir_all(album.join("2024")).unwrap();
    fs::write(album.join("2024/a.jpg"), pseudo_random(5000, 1)).unwrap();
    fs::write(album.join("b.jpg"), pseudo_random(3, 2)).unwrap();
    fs::write(album.join("empty"), b"").unwrap();
    let downloads = Downloads::new(tmp.path().join("dl")).unwrap();
    for source in expand(std::slice::from_ref(&album)).unwrap() {
        let mut outgoing = Outgoing::open(&source).unwrap();
        let mut incoming = offer(&downloads, &outgoing);
        send_all(&mut outgoing, &mut incoming);
        let path = incoming.finish().unwrap();
        assert_eq!(path, downloads.dir().join(&source.name));
        assert_eq!(fs::read(&path).unwrap(), fs::read(&source.path).unwrap());
    }
    assert_eq!(
        files_in(&downloads.dir().join("album")),
        ["2024", "b.jpg", "empty"]
    );
}

#[test]
fn an_existing_file_is_never_overwritten() {
    let tmp = tempfile::tempdir().unwrap();
    let downloads = Downloads::new(tmp.path().join("dl")).unwrap();
    fs::write(downloads.dir().join("a.txt"), b"mine").unwrap();
    let mut finals = Vec::new();
    for content in [&b"first"[..], b"second"] {
        let mut outgoing = Outgoing::open(&write_source(tmp.path(), "a.txt", content)).unwrap();
        let mut incoming = offer(&downloads, &outgoing);
        send_all(&mut outgoing, &mut incoming);
        finals.push(incoming.finish().unwrap());
    }
    assert_eq!(
        finals,
        [
            downloads.dir().join("a (1).txt"),
            downloads.dir().join("a (2).txt")
        ]
    );
    assert_eq!(fs::read(downloads.dir().join("a.txt")).unwrap(), b"mine");
    assert_eq!(fs::read(&finals[0]).unwrap(), b"first");
    assert_eq!(fs::read(&finals[1]).unwrap(), b"second");

    // The same content again, under a name whose directory holds a file of that name
    // and no extension.
    fs::write(downloads.dir().join("README"), b"mine").unwrap();
    let mut outgoing = Outgoing::open(&write_source(tmp.path(), "README", b"theirs")).unwrap();
    let mut incoming = offer(&downloads, &outgoing);
    send_all(&mut outgoing, &mut incoming);
    assert_eq!(
        incoming.finish().unwrap(),
        downloads.dir().join("README (1)")
    );
}

#[test]
fn an_unsafe_offered_name_lands_inside_the_download_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let downloads = Downloads::new(tmp.path().join("dl")).unwrap();
    let bytes = b"root:x:0:0";
    let hash = *blake3::hash(bytes).as_bytes();
    let mut incoming = downloads
        .incoming("../../etc/passwd", bytes.len() as u64, hash)
        .unwrap();
    incoming.write_at(0, bytes).unwrap();
    assert_eq!(
        incoming.finish().unwrap(),
        downloads.dir().join("etc").join("passwd")
    );
}

#[test]
fn a_dropped_transfer_resumes_where_it_stopped() {
    let tmp = tempfile::tempdir().unwrap();
    let bytes = pseudo_random(200_000, 3);
    let mut outgoing = Outgoing::open(&write_source(tmp.path(), "movie.mkv", &bytes)).unwrap();
    let downloads = Downloads::new(tmp.path().join("dl")).unwrap();

    let mut incoming = offer(&downloads, &outgoing);
    send(&mut outgoing, &mut incoming, 100_000);
    incoming.flush().unwrap();
    let half = incoming.received();
    assert!(!incoming.is_complete());
    drop(incoming);

    // Both sides restart: a new `Outgoing`, a new `Downloads`, the same offer.
    let mut outgoing = Outgoing::open(&write_source(tmp.path(), "movie.mkv", &bytes)).unwrap();
    let downloads = Downloads::new(tmp.path().join("dl")).unwrap();
    let mut incoming = offer(&downloads, &outgoing);
    assert_eq!(incoming.received(), half);
    // A repeat of what is already there is ignored.
    incoming.write_at(0, &bytes[..CHUNK]).unwrap();
    incoming
        .write_at(
            half - 10,
            &bytes[usize::try_from(half).unwrap() - 10..usize::try_from(half).unwrap()],
        )
        .unwrap();
    assert_eq!(incoming.received(), half);
    send_all(&mut outgoing, &mut incoming);
    let path = incoming.finish().unwrap();
    assert_eq!(fs::read(path).unwrap(), bytes);
}

#[test]
fn a_partial_file_longer_than_the_offer_starts_over() {
    let tmp = tempfile::tempdir().unwrap();
    let downloads = Downloads::new(tmp.path().join("dl")).unwrap();
    let bytes = b"hello";
    let hash = *blake3::hash(bytes).as_bytes();
    fs::write(downloads.partial_path(5, &hash), b"something else entirely").unwrap();
    let mut incoming = downloads.incoming("hello.txt", 5, hash).unwrap();
    assert_eq!(incoming.received(), 0);
    incoming.write_at(0, bytes).unwrap();
    assert_eq!(fs::read(incoming.finish().unwrap()).unwrap(), bytes);
}

#[test]
fn a_damaged_file_is_removed_and_not_delivered() {
    let tmp = tempfile::tempdir().unwrap();
    let downloads = Downloads::new(tmp.path().join("dl")).unwrap();
    let bytes = pseudo_random(10_000, 4);
    let mut wrong = *blake3::hash(&bytes).as_bytes();
    wrong[31] ^= 1;
    let mut incoming = downloads
        .incoming("x.txt", bytes.len() as u64, wrong)
        .unwrap();
    for (i, chunk) in bytes.chunks(CHUNK).enumerate() {
        incoming.write_at((i * CHUNK) as u64, chunk).unwrap();
    }
    let partial = incoming.partial_path().to_path_buf();
    let err = incoming.finish().unwrap_err();
    assert!(
        matches!(&err, FileError::Mismatch(name) if name == "x.txt"),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "x.txt arrived damaged (BLAKE3 mismatch); the partial file was removed"
    );
    assert!(!partial.exists());
    assert!(files_in(downloads.dir()).is_empty());

    // The message shows the name made safe, not the peer's escapes.
    let mut incoming = downloads.incoming("\x1b[2Jevil\n.txt", 1, wrong).unwrap();
    incoming.write_at(0, b"x").unwrap();
    let err = incoming.finish().unwrap_err();
    assert_eq!(
        err.to_string(),
        "_[2Jevil_.txt arrived damaged (BLAKE3 mismatch); the partial file was removed"
    );
}

#[test]
fn chunks_out_of_order_or_past_the_size_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let downloads = Downloads::new(tmp.path().join("dl")).unwrap();
    let bytes = b"0123456789";
    let mut incoming = downloads
        .incoming("n.txt", 10, *blake3::hash(bytes).as_bytes())
        .unwrap();
    incoming.write_at(0, &bytes[..4]).unwrap();
    let gap = incoming.write_at(5, &bytes[5..]).unwrap_err();
    assert!(
        matches!(
            gap,
            FileError::OutOfOrder {
                offset: 5,
                expected: 4,
                ..
            }
        ),
        "{gap:?}"
    );
    let overlap = incoming.write_at(2, &bytes[2..6]).unwrap_err();
    assert!(
        matches!(
            overlap,
            FileError::OutOfOrder {
                offset: 2,
                expected: 4,
                ..
            }
        ),
        "{overlap:?}"
    );
    let long = incoming.write_at(4, b"456789X").unwrap_err();
    assert!(
        matches!(long, FileError::TooLong { size: 10, .. }),
        "{long:?}"
    );
    assert!(matches!(
        incoming.write_at(u64::MAX, b"x"),
        Err(FileError::TooLong { .. })
    ));
    let early = downloads.incoming("n.txt", 10, *blake3::hash(bytes).as_bytes());
    assert!(
        matches!(early, Err(FileError::Busy(_))),
        "the partial file is locked while in use"
    );
    incoming.write_at(4, &bytes[4..]).unwrap();
    assert_eq!(fs::read(incoming.finish().unwrap()).unwrap(), bytes);
}

#[test]
fn finishing_early_is_refused_and_discard_removes_the_partial() {
    let tmp = tempfile::tempdir().unwrap();
    let downloads = Downloads::new(tmp.path().join("dl")).unwrap();
    let hash = *blake3::hash(b"abc").as_bytes();
    let mut incoming = downloads.incoming("abc", 3, hash).unwrap();
    incoming.write_at(0, b"ab").unwrap();
    assert!(matches!(
        incoming.finish(),
        Err(FileError::Incomplete {
            received: 2,
            size: 3,
            ..
        })
    ));
    let incoming = downloads.incoming("abc", 3, hash).unwrap();
    assert_eq!(incoming.received(), 2);
    let partial = incoming.partial_path().to_path_buf();
    incoming.discard().unwrap();
    assert!(!partial.exists());
    assert_eq!(downloads.incoming("abc", 3, hash).unwrap().received(), 0);
}

#[test]
fn an_empty_file_round_trips() {
    let tmp = tempfile::tempdir().unwrap();
    let downloads = Downloads::new(tmp.path().join("dl")).unwrap();
    let outgoing = Outgoing::open(&write_source(tmp.path(), "empty", b"")).unwrap();
    let incoming = offer(&downloads, &outgoing);
    assert!(incoming.is_complete());
    let path = incoming.finish().unwrap();
    assert_eq!(fs::read(path).unwrap(), b"");
}

/// Unmounts the tmpfs at its path when dropped, even if the test failed.
struct Mounted(PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_says_so() {
    #[cfg(unix)]
    let root = std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0");
    #[cfg(not(unix))]
    let root = false;
    if !root {
        eprintln!("skipped: mounting a small tmpfs to fill needs root");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let mount = tmp.path().join("small");
    fs::create_dir(&mount).unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=64k", "tmpfs"])
        .arg(&mount)
        .output();
    match mounted {
        Ok(output) if output.status.success() => {}
        Ok(output) => {
            eprintln!(
                "skipped: mount failed: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            );
            return;
        }
        Err(e) => {
            eprintln!("skipped: cannot run mount: {e}");
            return;
        }
    }
    let _unmount = Mounted(mount.clone());

    let downloads = Downloads::new(mount.join("downloads")).unwrap();
    let bytes = pseudo_random(1 << 20, 5);
    let mut incoming = downloads
        .incoming(
            "big.bin",
            bytes.len() as u64,
            *blake3::hash(&bytes).as_bytes(),
        )
        .unwrap();
    let partial = incoming.partial_path().to_path_buf();
    let mut failure = None;
    for (i, chunk) in bytes.chunks(CHUNK).enumerate() {
        if let Err(e) = incoming.write_at((i * CHUNK) as u64, chunk) {
            failure = Some(e);
            break;
        }
    }
    let err = failure.expect("1 MiB cannot fit in 64 KiB");
    assert!(
        matches!(&err, FileError::DiskFull { path, .. } if *path == partial),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        format!("disk full while writing {}", partial.display())
    );
    // What was written before is still on disk, and nothing more (chunks are written in
    // blocks of 256 KiB, so here that is nothing): the transfer could resume from it.
    let received = incoming.received();
    assert!(received < 64 * 1024, "{received}");
    assert_eq!(fs::metadata(&partial).unwrap().len(), received);
    drop(incoming);
    assert_eq!(
        downloads
            .incoming(
                "big.bin",
                bytes.len() as u64,
                *blake3::hash(&bytes).as_bytes()
            )
            .unwrap()
            .received(),
        received
    );
}
