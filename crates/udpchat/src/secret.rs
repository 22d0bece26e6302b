//! The shared passphrase: found (file, environment or terminal prompt), checked, turned
//! into a key once with Argon2id, and wiped from memory. `UDPCHAT_SECRET` is also taken
//! out of the process's environment block at start ([`scrub_environment`]).

use std::ffi::OsString;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::RawFd;
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::FileTypeExt;
use std::path::Path;
use std::sync::{Mutex, OnceLock, PoisonError};

use udpchat_secure::{derive_psk, Psk};
use zeroize::Zeroizing;

use crate::cli::{SecretSource, UsageError};
use crate::home::{self, RegularFileError};

/// The environment variable that may hold the passphrase.
pub(crate) const SECRET_ENV: &str = "UDPCHAT_SECRET";

/// Set by udpchat for itself only: the number of the inherited pipe through which
/// [`scrub_environment`] hands `UDPCHAT_SECRET` to the re-executed program.
pub(crate) const SECRET_FD_ENV: &str = "UDPCHAT_SECRET_FD";

/// Passphrases shorter than this get a warning: a recorded handshake lets anyone try
/// guesses offline, at their own speed.
const SHORT_PASSPHRASE: usize = 16;

/// A passphrase larger than this, from a file or the environment, is not a passphrase.
const MAX_PASSPHRASE: u64 = 64 * 1024;

/// The byte order mark some editors put at the start of a text file: invisible, yet it
/// would make another key, and nothing would connect.
const BOM: char = '\u{feff}';

/// What [`scrub_environment`] did, for [`load`] to act on.
#[derive(Debug)]
enum Handover {
    /// This is the re-executed program: the passphrase, read from the inherited pipe at
    /// start; [`load`] takes it.
    Passed(Mutex<Option<Zeroizing<Vec<u8>>>>),
    /// This is the re-executed program, but the pipe could not be read: the message.
    BadPipe(String),
    /// `UDPCHAT_SECRET` stayed in the environment block, for this reason.
    NotScrubbed(String),
}

/// Set once, by [`scrub_environment`] at the start of `main`; unset in tests.
static HANDOVER: OnceLock<Handover> = OnceLock::new();

/// The key and what to tell the user about it.
#[derive(Debug)]
pub(crate) struct Secret {
    /// The derived key; `None` when no passphrase was given.
    pub(crate) psk: Option<Psk>,
    /// Warnings for the user (a weak passphrase, a file others can read, a variable that
    /// could not be scrubbed).
    pub(crate) warnings: Vec<String>,
}

/// Takes `UDPCHAT_SECRET` out of this process's environment block. Call it first thing
/// in `main`, before anything reads the environment or starts a thread.
///
/// Why: other processes of the same user (and root) can read a process's environment in
/// `/proc/PID/environ` for as long as it runs, so the passphrase would stay exposed for
/// the whole chat. Removing the variable (`unsetenv`) does not help: that file shows the
/// block the kernel laid out at `exec`, which no library call changes, and writing over
/// it would take `unsafe`. So udpchat executes itself again, same binary, arguments and
/// PID, with an environment without `UDPCHAT_SECRET`; the passphrase goes across through
/// a pipe that the new program inherits, its number in `UDPCHAT_SECRET_FD`. The new
/// program empties that pipe at once, here, whether or not the run uses the passphrase
/// (the pipe can be opened through `/proc/PID/fd` by the same processes that could read
/// the environment), and [`load`] takes the passphrase from there. Everything else
/// (`--help`, usage errors, exit status, stdin and stdout) is the new program's, exactly
/// as without the variable.
///
/// The re-executed program has `UDPCHAT_SECRET_FD` and no `UDPCHAT_SECRET`, and does
/// not execute again: no loop. If the execution fails, udpchat goes on with the variable
/// as before, and [`load`] warns that it stays readable. Linux only (`/proc`); elsewhere
/// this does nothing.
pub(crate) fn scrub_environment() {
    if cfg!(not(target_os = "linux")) {
        return;
    }
    if let Some(fd) = std::env::var_os(SECRET_FD_ENV) {
        // The re-executed program: the number is all it needs, and no process it starts
        // should inherit the variable. Nothing runs alongside yet, so removing is safe.
        std::env::remove_var(SECRET_FD_ENV);
        let handover = match fd.to_str().and_then(|n| n.parse::<RawFd>().ok()) {
            Some(n) if n >= 0 => match read_handover(n) {
                Ok(passphrase) => Handover::Passed(Mutex::new(Some(passphrase))),
                Err(message) => Handover::BadPipe(message),
            },
            _ => Handover::BadPipe(format!(
                "{SECRET_FD_ENV} is {fd:?}, not a descriptor number (udpchat sets it for itself; unset it)"
            )),
        };
        let _ = HANDOVER.set(handover);
        return;
    }
    let Some(value) = std::env::var_os(SECRET_ENV) else {
        return;
    };
    // Returns only if the execution did not happen.
    let why = reexec_without_secret(Zeroizing::new(value.into_vec()));
    let _ = HANDOVER.set(Handover::NotScrubbed(why));
}

/// Executes this program again without `UDPCHAT_SECRET`, handing `passphrase` over
/// through an inherited pipe; returns why, if that could not be done.
fn reexec_without_secret(passphrase: Zeroizing<Vec<u8>>) -> String {
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;

    if passphrase.len() as u64 > MAX_PASSPHRASE {
        // [`load`] refuses it anyway; no pipe needs to hold it.
        return "it is larger than 64 KiB".to_owned();
    }
    let pipe = match hand_over(&passphrase) {
        Ok(pipe) => pipe,
        Err(e) => return format!("cannot hand it over through a pipe: {e}"),
    };
    drop(passphrase);
    let mut args = std::env::args_os();
    let arg0 = args.next().unwrap_or_else(|| OsString::from("udpchat"));
    let rest: Vec<OsString> = args.collect();
    // The binary's own path first: exec'ing /proc/self/exe would rename the process to
    // `exe` in ps and pgrep. That link is the fallback for a binary deleted or replaced
    // since it started.
    let programs = std::env::current_exe()
        .into_iter()
        .chain([std::path::PathBuf::from("/proc/self/exe")]);
    let mut failures = Vec::new();
    for program in programs {
        let e = std::process::Command::new(&program)
            .arg0(&arg0)
            .args(&rest)
            .env_remove(SECRET_ENV)
            .env(SECRET_FD_ENV, pipe.as_raw_fd().to_string())
            .exec();
        failures.push(format!("{}: {e}", program.display()));
    }
    format!(
        "cannot execute udpchat again without it ({})",
        failures.join("; ")
    )
}

/// A pipe holding `passphrase`, its write end closed; the read end stays open across
/// `exec` (the only descriptor made to).
fn hand_over(passphrase: &[u8]) -> io::Result<std::os::fd::OwnedFd> {
    use rustix::pipe::{pipe_with, PipeFlags};
    use std::io::Write;

    let (read, write) = pipe_with(PipeFlags::CLOEXEC)?;
    rustix::io::fcntl_setfd(&read, rustix::io::FdFlags::empty())?;
    // Never wait: nobody reads before the exec, so a pipe smaller than the passphrase
    // would block forever. Failing instead leaves the variable in place, with a warning.
    rustix::fs::fcntl_setfl(&write, rustix::fs::OFlags::NONBLOCK)?;
    let mut write = File::from(write);
    write.write_all(passphrase).map_err(|e| {
        if e.kind() == io::ErrorKind::WouldBlock {
            io::Error::other("the pipe cannot hold it")
        } else {
            e
        }
    })?;
    Ok(read)
}

/// Whether the environment offered a passphrase (`UDPCHAT_SECRET`, or the pipe it was
/// moved to at start), whether or not it is used: `--plaintext` says it ignores it.
pub(crate) fn in_environment() -> bool {
    std::env::var_os(SECRET_ENV).is_some()
        || matches!(
            HANDOVER.get(),
            Some(Handover::Passed(_) | Handover::BadPipe(_))
        )
}

/// Finds the passphrase and derives the key (about a quarter of a second, by design).
///
/// # Errors
/// A one-line [`UsageError`]: the file is missing, not a regular file, unreadable, empty
/// or too large; the variable is empty, too large or not UTF-8; the prompt got nothing;
/// `--room` without a passphrase.
pub(crate) fn load(source: &SecretSource, room: Option<&str>) -> Result<Secret, UsageError> {
    let mut warnings = Vec::new();
    let passphrase = match source {
        SecretSource::File(path) => Some(read_file(path, &mut warnings)?),
        SecretSource::Prompt => Some(prompt()?),
        SecretSource::Environment => from_environment(&mut warnings)?,
    };
    let Some(passphrase) = passphrase else {
        if room.is_some() {
            return Err(UsageError(format!(
                "--room needs a passphrase (--secret-file, --ask-secret or {SECRET_ENV})"
            )));
        }
        return Ok(Secret {
            psk: None,
            warnings,
        });
    };
    if passphrase.chars().count() < SHORT_PASSPHRASE {
        warnings.push(format!(
            "the passphrase is short ({} characters): anyone who records a handshake can try guesses offline; four or more random words are safer",
            passphrase.chars().count()
        ));
    }
    let psk = derive_psk(passphrase.as_bytes(), room)
        .map_err(|e| UsageError(format!("cannot derive the key: {e}")))?;
    Ok(Secret {
        psk: Some(psk),
        warnings,
    })
}

/// `UDPCHAT_SECRET`, from the pipe [`scrub_environment`] moved it to, or from the
/// variable where it could not; `None` if it is not set.
fn from_environment(warnings: &mut Vec<String>) -> Result<Option<Zeroizing<String>>, UsageError> {
    let bytes = match HANDOVER.get() {
        Some(Handover::Passed(passed)) => {
            if std::env::var_os(SECRET_ENV).is_some() {
                warnings.push(format!(
                    "{SECRET_ENV} is ignored: the passphrase came through {SECRET_FD_ENV}"
                ));
            }
            // Taken, not copied: this is the only copy left, and it is wiped when used.
            let taken = passed.lock().unwrap_or_else(PoisonError::into_inner).take();
            taken.ok_or_else(|| UsageError(format!("{SECRET_ENV} was used already")))?
        }
        Some(Handover::BadPipe(message)) => return Err(UsageError(message.clone())),
        other => {
            let Some(value) = std::env::var_os(SECRET_ENV) else {
                return Ok(None);
            };
            if let Some(Handover::NotScrubbed(why)) = other {
                warnings.push(format!(
                    "{SECRET_ENV} could not be removed from the environment ({why}): other programs of your user can read it while udpchat runs; --secret-file is safer"
                ));
            }
            Zeroizing::new(value.into_vec())
        }
    };
    if bytes.len() as u64 > MAX_PASSPHRASE {
        return Err(UsageError(format!(
            "{SECRET_ENV} is larger than 64 KiB; it should hold one passphrase"
        )));
    }
    let text = utf8(bytes).ok_or_else(|| UsageError(format!("{SECRET_ENV} is not valid UTF-8")))?;
    checked(text, SECRET_ENV).map(Some)
}

/// Everything in the inherited pipe number `fd`, opened anew through `/proc/self/fd`
/// (taking over a bare descriptor number would take `unsafe`); the error is a message
/// for the user. Never waits: the writer closed its end before the exec, so a read finds
/// the passphrase then the end, and anything else is an error.
fn read_handover(fd: RawFd) -> Result<Zeroizing<Vec<u8>>, String> {
    use rustix::fs::{Mode, OFlags};
    let path = format!("/proc/self/fd/{fd}");
    let fail = |e: &dyn std::fmt::Display| {
        format!("cannot read {SECRET_ENV} handed over through {SECRET_FD_ENV} ({path}): {e}")
    };
    let flags = OFlags::RDONLY | OFlags::NONBLOCK | OFlags::CLOEXEC;
    let file = rustix::fs::open(&path, flags, Mode::empty())
        .map(File::from)
        .map_err(|e| fail(&io::Error::from(e)))?;
    let meta = file.metadata().map_err(|e| fail(&e))?;
    if !meta.file_type().is_fifo() {
        return Err(fail(&"it is not a pipe"));
    }
    // Room for all of it at once: a growing buffer would leave copies behind, unwiped.
    let mut bytes = Zeroizing::new(Vec::with_capacity(home::buffer_len(MAX_PASSPHRASE)));
    file.take(MAX_PASSPHRASE + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| fail(&e))?;
    Ok(bytes)
}

/// The bytes as text, or `None` (the bytes are wiped either way).
fn utf8(mut bytes: Zeroizing<Vec<u8>>) -> Option<Zeroizing<String>> {
    match String::from_utf8(std::mem::take(&mut *bytes)) {
        Ok(text) => Some(Zeroizing::new(text)),
        Err(e) => {
            drop(Zeroizing::new(e.into_bytes()));
            None
        }
    }
}

/// The first line of the file, without its line ending. The path is looked at before
/// it is opened: a FIFO without a writer would block forever, and a device, a directory
/// or a socket is not a passphrase file.
fn read_file(path: &Path, warnings: &mut Vec<String>) -> Result<Zeroizing<String>, UsageError> {
    let shown = path.display();
    let (file, meta) = home::open_regular(path).map_err(|e| match e {
        RegularFileError::NotAFile(kind) => UsageError(format!(
            "the passphrase file {shown} is {kind}, not a regular file"
        )),
        RegularFileError::Io(e) => UsageError(format!(
            "cannot read the passphrase file {shown}: {}",
            home::describe(&e)
        )),
    })?;
    warnings.extend(home::open_to_others(
        "the passphrase file",
        path,
        &meta,
        0o600,
    ));
    // Room for all of it at once: a growing buffer would leave copies behind, unwiped.
    let mut bytes = Zeroizing::new(Vec::with_capacity(home::buffer_len(MAX_PASSPHRASE)));
    file.take(MAX_PASSPHRASE + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| {
            UsageError(format!(
                "cannot read the passphrase file {shown}: {}",
                home::describe(&e)
            ))
        })?;
    if bytes.len() as u64 > MAX_PASSPHRASE {
        return Err(UsageError(format!(
            "the passphrase file {shown} is larger than 64 KiB; it should hold one line"
        )));
    }
    let first = bytes.split(|&b| b == b'\n').next().unwrap_or_default();
    let first = first.strip_suffix(b"\r").unwrap_or(first);
    let text = std::str::from_utf8(first)
        .map_err(|_| UsageError(format!("the passphrase file {shown} is not UTF-8 text")))?;
    checked(
        Zeroizing::new(text.to_owned()),
        &format!("the passphrase file {shown}"),
    )
}

/// Asks on the terminal, without echo.
fn prompt() -> Result<Zeroizing<String>, UsageError> {
    let typed = rpassword::prompt_password("udpchat passphrase: ")
        .map_err(|e| UsageError(format!("cannot ask for the passphrase: {e}")))?;
    checked(Zeroizing::new(typed), "the typed passphrase")
}

/// Drops a leading byte order mark, wherever the passphrase came from (it is invisible
/// and would silently make another key), then refuses an empty passphrase: it would be
/// a key everybody knows.
fn checked(mut passphrase: Zeroizing<String>, what: &str) -> Result<Zeroizing<String>, UsageError> {
    if passphrase.starts_with(BOM) {
        // In place: the moved bytes stay in the buffer that Zeroizing wipes.
        passphrase.drain(..BOM.len_utf8());
    }
    if passphrase.trim().is_empty() {
        return Err(UsageError(format!("{what} is empty")));
    }
    Ok(passphrase)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::PermissionsExt;
    use std::time::Duration;

    fn temp_file(name: &str, contents: &[u8]) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("udpchat-secret-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        // The directory is named by process id, and ids come round again: a FIFO left
        // there by an earlier run would make the write below wait for a reader for
        // ever (seen in a loaded test run).
        let _ = std::fs::remove_file(&path);
        std::fs::write(&path, contents).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        path
    }

    fn read(path: &Path) -> Result<Zeroizing<String>, UsageError> {
        read_file(path, &mut Vec::new())
    }

    #[test]
    fn the_file_gives_its_first_line() {
        let a = temp_file("a", b"correct horse battery staple\r\nignored\n");
        let b = temp_file("b", b"correct horse battery staple");
        assert_eq!(read(&a).unwrap().as_str(), "correct horse battery staple");
        assert_eq!(read(&b).unwrap().as_str(), "correct horse battery staple");
    }

    #[test]
    fn bad_files_are_one_line_errors() {
        let missing = std::env::temp_dir().join("udpchat-no-such-passphrase-file");
        let empty = temp_file("empty", b"\n");
        let binary = temp_file("binary", b"\xff\xfe\n");
        let big = temp_file("big", &vec![b'x'; 70_000]);
        let bom_only = temp_file("bom-only", "\u{feff}\n".as_bytes());
        let dir = std::env::temp_dir();
        for (path, expected) in [
            (&missing, "cannot read the passphrase file"),
            (&empty, "is empty"),
            (&binary, "not UTF-8"),
            (&big, "larger than 64 KiB"),
            (&bom_only, "is empty"),
            (&dir, "is a directory, not a regular file"),
        ] {
            let err = read(path).unwrap_err().to_string();
            assert!(err.contains(expected), "{err}");
            assert!(err.contains(&path.display().to_string()), "{err}");
            assert!(!err.contains('\n'), "{err}");
        }
        let err = read(Path::new("/dev/null")).unwrap_err().to_string();
        assert_eq!(
            err,
            "the passphrase file /dev/null is a character device, not a regular file"
        );
    }

    #[test]
    fn a_fifo_is_refused_without_waiting_for_a_writer() {
        let path = temp_file("fifo-placeholder", b"");
        std::fs::remove_file(&path).unwrap();
        let Some(path) = crate::home::tests::mkfifo(&path) else {
            return;
        };
        // Reading it would block forever with no writer: fail the test instead of hanging.
        let (tx, rx) = std::sync::mpsc::channel();
        let shown = path.clone();
        std::thread::spawn(move || tx.send(read(&shown).map(|_| ()).map_err(|e| e.to_string())));
        let got = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("reading a FIFO blocked");
        let _ = std::fs::remove_file(&path);
        assert_eq!(
            got.unwrap_err(),
            format!(
                "the passphrase file {} is a FIFO, not a regular file",
                path.display()
            )
        );
    }

    #[test]
    fn a_file_others_can_read_is_warned_about() {
        let path = temp_file("open", b"correct horse battery staple\n");
        let mut warnings = Vec::new();
        read_file(&path, &mut warnings).unwrap();
        assert!(warnings.is_empty(), "0600 is fine: {warnings:?}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        read_file(&path, &mut warnings).unwrap();
        assert_eq!(
            warnings,
            [format!(
                "the passphrase file {0} is open to other users (mode 0644); fix it with: chmod 600 {0}",
                path.display()
            )]
        );
        let s = load(&SecretSource::File(path), None).unwrap();
        assert!(s.warnings[0].contains("mode 0644"), "{:?}", s.warnings);
    }

    #[test]
    fn a_byte_order_mark_is_not_part_of_the_passphrase() {
        let plain = temp_file("plain", b"correct horse battery staple\n");
        let marked = temp_file(
            "marked",
            "\u{feff}correct horse battery staple\r\n".as_bytes(),
        );
        assert_eq!(
            read(&marked).unwrap().as_str(),
            read(&plain).unwrap().as_str()
        );
        // The environment and the prompt go through the same check.
        let typed = checked(
            Zeroizing::new("\u{feff}hunter2 hunter2".to_owned()),
            "the typed passphrase",
        )
        .unwrap();
        assert_eq!(typed.as_str(), "hunter2 hunter2");
        let twice = checked(Zeroizing::new("\u{feff}\u{feff}x".to_owned()), "x").unwrap();
        assert_eq!(twice.as_str(), "\u{feff}x", "only the leading mark goes");
        let err = checked(Zeroizing::new("\u{feff}".to_owned()), SECRET_ENV).unwrap_err();
        assert_eq!(err.to_string(), "UDPCHAT_SECRET is empty");
    }

    #[test]
    fn the_handed_over_pipe_is_read_through_proc() {
        use std::io::Write;
        let (r, w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).unwrap();
        let mut w = File::from(w);
        w.write_all("\u{feff}pass phrase ünïcode".as_bytes())
            .unwrap();
        drop(w);
        let bytes = read_handover(r.as_raw_fd()).unwrap();
        let text = checked(utf8(bytes).unwrap(), SECRET_ENV).unwrap();
        assert_eq!(text.as_str(), "pass phrase ünïcode");
        let file = File::open("/dev/null").unwrap();
        let err = read_handover(file.as_raw_fd()).unwrap_err().to_string();
        assert!(err.contains("it is not a pipe"), "{err}");
        assert!(read_handover(1_000_000).is_err());
        assert!(utf8(Zeroizing::new(vec![0xff])).is_none());
    }

    #[test]
    fn hand_over_leaves_only_the_read_end_open_across_exec() {
        let pipe = hand_over(b"a passphrase").unwrap();
        let flags = rustix::io::fcntl_getfd(&pipe).unwrap();
        assert!(!flags.contains(rustix::io::FdFlags::CLOEXEC));
        let bytes = read_handover(pipe.as_raw_fd()).unwrap();
        assert_eq!(&bytes[..], b"a passphrase", "complete, then the end");
        // A passphrase larger than the pipe fails at once instead of blocking.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || tx.send(hand_over(&vec![b'x'; 4 << 20]).is_err()));
        assert!(rx.recv_timeout(Duration::from_secs(10)).expect("blocked"));
    }

    #[test]
    fn a_short_passphrase_is_warned_about_and_a_room_needs_one() {
        let short = temp_file("short", b"hunter2\n");
        let s = load(&SecretSource::File(short), None).unwrap();
        assert!(s.psk.is_some());
        assert!(
            s.warnings.iter().any(|w| w.contains("short")),
            "{:?}",
            s.warnings
        );
        if std::env::var_os(SECRET_ENV).is_none() {
            let err = load(&SecretSource::Environment, Some("lab")).unwrap_err();
            assert!(err.to_string().contains("--room needs a passphrase"));
            assert!(load(&SecretSource::Environment, None)
                .unwrap()
                .psk
                .is_none());
        }
    }
}
