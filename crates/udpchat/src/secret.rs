//! The shared passphrase: found (file, environment or terminal prompt), checked, turned
//! into a key once with Argon2id, and wiped from memory.

use std::io::Read;
use std::os::unix::ffi::OsStringExt;
use std::path::Path;

use udpchat_secure::{derive_psk, Psk};
use zeroize::Zeroizing;

use crate::cli::{SecretSource, UsageError};
use crate::home::{self, RegularFileError};

/// The environment variable that may hold the passphrase.
pub(crate) const SECRET_ENV: &str = "UDPCHAT_SECRET";

/// Passphrases shorter than this get a warning: a recorded handshake lets anyone try
/// guesses offline, at their own speed.
const SHORT_PASSPHRASE: usize = 16;

/// A passphrase larger than this, from a file or the environment, is not a passphrase.
const MAX_PASSPHRASE: u64 = 64 * 1024;

/// The byte order mark some editors put at the start of a text file: invisible, yet it
/// would make another key, and nothing would connect.
const BOM: char = '\u{feff}';

/// The key and what to tell the user about it.
#[derive(Debug)]
pub(crate) struct Secret {
    /// The derived key; `None` when no passphrase was given.
    pub(crate) psk: Option<Psk>,
    /// Warnings for the user (a weak passphrase, a file others can read).
    pub(crate) warnings: Vec<String>,
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
        SecretSource::Environment => from_environment()?,
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

/// `UDPCHAT_SECRET`, or `None` if it is not set.
fn from_environment() -> Result<Option<Zeroizing<String>>, UsageError> {
    let Some(value) = std::env::var_os(SECRET_ENV) else {
        return Ok(None);
    };
    let bytes = Zeroizing::new(value.into_vec());
    if bytes.len() as u64 > MAX_PASSPHRASE {
        return Err(UsageError(format!(
            "{SECRET_ENV} is larger than 64 KiB; it should hold one passphrase"
        )));
    }
    let text = utf8(bytes).ok_or_else(|| UsageError(format!("{SECRET_ENV} is not valid UTF-8")))?;
    checked(text, SECRET_ENV).map(Some)
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
    use std::os::unix::fs::PermissionsExt;
    use std::time::Duration;

    fn temp_file(name: &str, contents: &[u8]) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("udpchat-secret-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
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
