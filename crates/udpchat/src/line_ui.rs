//! The keyboard side: the seed's `Server IP address: ` prompt, and a thread that reads
//! stdin line by line and hands raw lines to the driver.
//!
//! Stdin is read on a plain thread rather than with `tokio::io::stdin`, whose blocking
//! read cannot be cancelled and would hold up the end of the program until the user
//! pressed Enter; the process simply exits with the thread still blocked in `read`.

use std::io::{BufRead, IsTerminal, Write};

use thiserror::Error;
use tokio::sync::mpsc;

use crate::cli::UsageError;

/// Lines read ahead of the driver. Small, so a huge piped file is read only as fast
/// as the chat sends it.
const READ_AHEAD: usize = 16;

/// What the reader thread hands over.
#[derive(Debug)]
pub(crate) enum Input {
    /// One line as read, still with its newline, not yet checked for UTF-8.
    Line(Vec<u8>),
    /// Reading failed; no more lines will come.
    Failed(String),
}

/// Why a line read from stdin is not sent.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub(crate) enum LineError {
    /// The bytes are not UTF-8, and a message must be text.
    #[error("input line is not valid UTF-8 (bad byte at offset {offset}); not sent")]
    InvalidUtf8 {
        /// Offset of the first bad byte.
        offset: usize,
        /// The line with bad bytes replaced by U+FFFD, to show which line it was.
        lossy: String,
    },
}

/// Turns a raw line into the message to send: the trailing newline (`\n` or `\r\n`)
/// removed, `None` for an empty line, an error for invalid UTF-8.
pub(crate) fn message_of(mut raw: Vec<u8>) -> Result<Option<String>, LineError> {
    if raw.last() == Some(&b'\n') {
        raw.pop();
        if raw.last() == Some(&b'\r') {
            raw.pop();
        }
    }
    if raw.is_empty() {
        return Ok(None);
    }
    String::from_utf8(raw).map(Some).map_err(|e| {
        let offset = e.utf8_error().valid_up_to();
        LineError::InvalidUtf8 {
            offset,
            lossy: String::from_utf8_lossy(e.as_bytes()).into_owned(),
        }
    })
}

/// Asks for the peer as the original program did, when PEER was not given. Only when
/// stdin is a terminal: piped input must name the peer on the command line, or its
/// first line would silently become the address.
pub(crate) fn ask_peer() -> Result<String, UsageError> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return Err(UsageError(
            "no PEER given and stdin is not a terminal to ask for one; name the peer, e.g. `udpchat 127.0.0.1:12001`"
                .to_string(),
        ));
    }
    // The prompt goes to stderr so stdout carries only the conversation (or JSON).
    let mut stderr = std::io::stderr();
    let _ = write!(stderr, "Server IP address: ");
    let _ = stderr.flush();
    let mut answer = String::new();
    match stdin.lock().read_line(&mut answer) {
        Ok(0) => Err(UsageError("no peer address given".to_string())),
        Ok(_) => Ok(answer.trim().to_string()),
        Err(e) => Err(UsageError(format!("cannot read the peer address: {e}"))),
    }
}

/// Starts the thread that reads stdin. The channel closes at end of input.
pub(crate) fn spawn_reader() -> std::io::Result<mpsc::Receiver<Input>> {
    let (tx, rx) = mpsc::channel(READ_AHEAD);
    std::thread::Builder::new()
        .name("stdin".to_string())
        .spawn(move || {
            let stdin = std::io::stdin();
            let mut stdin = stdin.lock();
            loop {
                let mut line = Vec::new();
                let input = match stdin.read_until(b'\n', &mut line) {
                    Ok(0) => return,
                    Ok(_) => Input::Line(line),
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => Input::Failed(format!("cannot read stdin: {e}")),
                };
                let last = matches!(input, Input::Failed(_));
                // The driver has gone away: nothing more to read for.
                if tx.blocking_send(input).is_err() || last {
                    return;
                }
            }
        })?;
    Ok(rx)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newline_is_trimmed() {
        assert_eq!(message_of(b"hi\n".to_vec()), Ok(Some("hi".into())));
        assert_eq!(message_of(b"hi\r\n".to_vec()), Ok(Some("hi".into())));
        assert_eq!(
            message_of(b"no newline at eof".to_vec()),
            Ok(Some("no newline at eof".into()))
        );
    }

    #[test]
    fn inner_whitespace_is_kept() {
        assert_eq!(
            message_of(b"  a  b \n".to_vec()),
            Ok(Some("  a  b ".into()))
        );
    }

    #[test]
    fn empty_lines_are_skipped() {
        assert_eq!(message_of(b"\n".to_vec()), Ok(None));
        assert_eq!(message_of(b"\r\n".to_vec()), Ok(None));
        assert_eq!(message_of(Vec::new()), Ok(None));
    }

    #[test]
    fn invalid_utf8_is_an_error_naming_the_offset() {
        let err = message_of(b"ab\xffcd\n".to_vec()).unwrap_err();
        assert_eq!(
            err,
            LineError::InvalidUtf8 {
                offset: 2,
                lossy: "ab\u{fffd}cd".into()
            }
        );
        assert_eq!(
            err.to_string(),
            "input line is not valid UTF-8 (bad byte at offset 2); not sent"
        );
    }
}
