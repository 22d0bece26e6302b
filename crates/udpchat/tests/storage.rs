//! Storage faults get a clear one-line error and lose nothing: a receiver whose disk
//! fills up stops with the path and "the disk is full" before acknowledging what it
//! could not write, so the sender keeps those lines in its outbox and they arrive once
//! the disk has room; a data directory on a read-only file system is refused at start,
//! naming it. (A damaged database and a second udpchat on the same data directory are
//! tested in udpchat-store.)
//!
//! A small disk and a read-only one are tmpfs mounts, which need root; without it the
//! tests say so and do nothing.

// Test support: a panic with the captured output is the right way to fail here.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{acquainted, free_port, history_texts, localhost, temp_home, Proc};

/// A tmpfs of `size` mounted on a fresh directory, unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(size: &str) -> Option<Self> {
        let dir = temp_home("tmpfs");
        std::fs::create_dir_all(&dir).ok()?;
        let ok = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(&dir)
            .status()
            .is_ok_and(|s| s.success());
        ok.then_some(Self(dir))
    }

    fn remount(&self, options: &str) {
        let status = Command::new("mount")
            .args(["-o", &format!("remount,{options}")])
            .arg(&self.0)
            .status()
            .unwrap();
        assert!(status.success(), "remount {options}");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Copies a data directory's files (identity, pinned peers) into `to`.
fn copy_home(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_file() {
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
}

fn chat(name: &str, port: u16, peer: u16, home: &Path) -> Proc {
    Proc::chat(
        name,
        port,
        localhost(peer),
        &["--home", home.to_str().unwrap()],
    )
}

#[test]
fn a_full_disk_stops_the_receiver_with_one_line_and_loses_nothing() {
    let Some(disk) = Tmpfs::mount("256k") else {
        eprintln!("SKIPPED the full disk: mounting a tmpfs needs root");
        return;
    };
    let (pa, pb) = (free_port(), free_port());
    let (home_a, made_b) = acquainted(pa, pb);
    let home_b = disk.0.join("home");
    copy_home(&made_b, &home_b);
    let lines: Vec<String> = (0..1000)
        .map(|i| format!("{i:04} {}", "x".repeat(400)))
        .collect();

    let mut b = chat("B", pb, pa, &home_b);
    let mut a = chat("A", pa, pb, &home_a);
    a.write_lines(&lines);
    let status = b.wait_exit_or_dump(&a);
    assert_eq!(status.code(), Some(1), "{}", b.dump());
    let dump = b.dump();
    assert!(
        dump.contains("the disk is full") && dump.contains("history.db"),
        "one line naming the file and the cause: {dump}"
    );
    // A keeps what B never confirmed; the process may go.
    a.kill();

    // Room again: the rest arrives, once, in order.
    disk.remount("size=64m");
    // A types nothing more: its outbox goes, then its goodbye; B ends once it has it.
    let mut b = chat("B2", pb, pa, &home_b);
    let mut a = chat("A2", pa, pb, &home_a);
    a.close_stdin();
    b.wait_event("A's goodbye", |e| e["event"] == "peer_done");
    b.close_stdin();
    let status = a.wait_exit_or_dump(&b);
    assert!(status.success(), "{}\n{}", a.dump(), b.dump());
    let status = b.wait_exit_or_dump(&a);
    assert!(status.success(), "{}\n{}", b.dump(), a.dump());
    assert_eq!(
        history_texts(&home_b, "in"),
        lines,
        "every line once, in order"
    );
}

#[test]
fn a_read_only_data_directory_is_refused_at_start_naming_it() {
    let Some(disk) = Tmpfs::mount("1m") else {
        eprintln!("SKIPPED the read-only directory: mounting a tmpfs needs root");
        return;
    };
    let (pa, pb) = (free_port(), free_port());
    let (_, made_b) = acquainted(pa, pb);
    let home_b = disk.0.join("home");
    copy_home(&made_b, &home_b);
    disk.remount("ro");
    let mut b = chat("B", pb, pa, &home_b);
    b.close_stdin();
    let status = b.wait_exit();
    assert_eq!(status.code(), Some(1), "{}", b.dump());
    let dump = b.dump();
    assert!(
        dump.contains(home_b.to_str().unwrap()) && dump.contains("read-only"),
        "one line naming the directory: {dump}"
    );
}
