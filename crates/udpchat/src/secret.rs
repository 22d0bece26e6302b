//! The shared passphrase: found (file, environment or terminal prompt), checked, turned
//! into a key once with Argon2id, and wiped from memory.

use std::io::Read;
use std::path::Path;

use udpchat_secure::{derive_psk, Psk};
use zeroize::Zeroizing;

use crate::cli::{SecretSource, UsageError};

/// The environment variable that may hold the passphrase.
pub(crate) const SECRET_ENV: &str = "UDPCHAT_SECRET";

/// Passphrases shorter than this get a warning: a recorded handshake lets anyone try
/// guesses offline, at their own speed.
const SHORT_PASSPHRASE: usize = 16;

/// A passphrase file larger than this is not a passphrase file.
const MAX_FILE: u64 = 64 * 1024;

/// The key and what to tell the user about it.
#[derive(Debug)]
pub(crate) struct Secret {
    /// The derived key; `None` when no passphrase was given.
    pub(crate) psk: Option<Psk>,
    /// Warnings for the user (a weak passphrase).
    pub(crate) warnings: Vec<String>,
}

/// Finds the passphrase and derives the key (about a quarter of a second, by design).
///
/// # Errors
/// A one-line [`UsageError`]: the file is missing, unreadable, empty or too large; the
/// prompt got nothing; `--room` without a passphrase.
pub(crate) fn load(source: &SecretSource, room: Option<&str>) -> Result<Secret, UsageError> {
    let passphrase = match source {
        SecretSource::File(path) => Some(read_file(path)?),
        SecretSource::Prompt => Some(prompt()?),
        SecretSource::Environment => match std::env::var_os(SECRET_ENV) {
            None => None,
            Some(v) => {
                let v = Zeroizing::new(
                    v.into_string()
                        .map_err(|_| UsageError(format!("{SECRET_ENV} is not valid UTF-8")))?,
                );
                Some(checked(v, SECRET_ENV)?)
            }
        },
    };
    let Some(passphrase) = passphrase else {
        if room.is_some() {
            return Err(UsageError(format!(
                "--room needs a passphrase (--secret-file, --ask-secret or {SECRET_ENV})"
            )));
        }
        return Ok(Secret {
            psk: None,
            warnings: Vec::new(),
        });
    };
    let mut warnings = Vec::new();
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

/// The first line of the file, without its line ending.
fn read_file(path: &Path) -> Result<Zeroizing<String>, UsageError> {
    let shown = path.display();
    let file = std::fs::File::open(path)
        .map_err(|e| UsageError(format!("cannot read the passphrase file {shown}: {e}")))?;
    let mut bytes = Zeroizing::new(Vec::new());
    file.take(MAX_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| UsageError(format!("cannot read the passphrase file {shown}: {e}")))?;
    if bytes.len() as u64 > MAX_FILE {
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

/// Refuses an empty passphrase: it would be a key everybody knows.
fn checked(passphrase: Zeroizing<String>, what: &str) -> Result<Zeroizing<String>, UsageError> {
    if passphrase.trim().is_empty() {
        return Err(UsageError(format!("{what} is empty")));
    }
    Ok(passphrase)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_file(name: &str, contents: &[u8]) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("udpchat-secret-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, contents).unwrap();
        path
    }

    #[test]
    fn the_file_gives_its_first_line() {
        let a = temp_file("a", b"correct horse battery staple\r\nignored\n");
        let b = temp_file("b", b"correct horse battery staple");
        assert_eq!(
            read_file(&a).unwrap().as_str(),
            "correct horse battery staple"
        );
        assert_eq!(
            read_file(&b).unwrap().as_str(),
            "correct horse battery staple"
        );
    }

    #[test]
    fn bad_files_are_one_line_errors() {
        let missing = std::env::temp_dir().join("udpchat-no-such-passphrase-file");
        let empty = temp_file("empty", b"\n");
        let binary = temp_file("binary", b"\xff\xfe\n");
        let big = temp_file("big", &vec![b'x'; 70_000]);
        for (path, expected) in [
            (&missing, "cannot read the passphrase file"),
            (&empty, "is empty"),
            (&binary, "not UTF-8"),
            (&big, "larger than 64 KiB"),
        ] {
            let err = read_file(path).unwrap_err().to_string();
            assert!(err.contains(expected), "{err}");
            assert!(!err.contains('\n'), "{err}");
        }
    }

    #[test]
    fn a_short_passphrase_is_warned_about_and_a_room_needs_one() {
        let short = temp_file("short", b"hunter2\n");
        let s = load(&SecretSource::File(short), None).unwrap();
        assert!(s.psk.is_some());
        assert!(s.warnings[0].contains("short"), "{:?}", s.warnings);
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
