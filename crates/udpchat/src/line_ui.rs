//! The keyboard side: the seed's `Server IP address: ` prompt, and a thread that reads
//! stdin line by line and hands raw lines to the driver.
//!
//! Stdin is read on a plain thread rather than with `tokio::io::stdin`, whose blocking
//! read cannot be cancelled and would hold up the end of the program until the user
//! pressed Enter; the process simply exits with the thread still blocked in `read`.

use std::io::{BufRead, BufReader, IsTerminal, Read, Write};

use thiserror::Error;
use tokio::sync::mpsc;

use crate::cli::UsageError;

/// Batches of lines read ahead of the driver. Small, so a huge piped file is read only
/// as fast as the chat sends it.
const READ_AHEAD: usize = 4;

/// Most lines handed over in one batch.
const MAX_BATCH: usize = 1024;

/// What the reader thread hands over.
#[derive(Debug)]
pub(crate) enum Input {
    /// Lines as read, each still with its newline, not yet checked for UTF-8: all that
    /// was waiting in the pipe (up to [`MAX_BATCH`]), so lines that arrive together are
    /// queued together and share datagrams, and the driver wakes once for them.
    Lines(Vec<Vec<u8>>),
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
            let stdin = BufReader::with_capacity(1 << 16, std::io::stdin());
            read_batches(stdin, |input| tx.blocking_send(input).is_ok());
        })?;
    Ok(rx)
}

/// Reads `from` to its end, handing `deliver` batches of lines: each batch is what was
/// already buffered when a line ended, so a person typing gets each line at once and a
/// pipe gets thousands a call. Stops when `deliver` says the driver has gone away.
fn read_batches<R: Read>(mut from: BufReader<R>, mut deliver: impl FnMut(Input) -> bool) {
    let mut batch = Vec::new();
    loop {
        let mut line = Vec::new();
        match from.read_until(b'\n', &mut line) {
            Ok(0) => break,
            Ok(_) => batch.push(line),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                if !batch.is_empty() {
                    deliver(Input::Lines(std::mem::take(&mut batch)));
                }
                deliver(Input::Failed(format!("cannot read stdin: {e}")));
                return;
            }
        }
        // Hand over when nothing more is buffered: the next read may wait for the
        // writer, and this batch must not wait with it.
        if (batch.len() >= MAX_BATCH || from.buffer().is_empty())
            && !deliver(Input::Lines(std::mem::take(&mut batch)))
        {
            return;
        }
    }
    if !batch.is_empty() {
        deliver(Input::Lines(batch));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batches(input: &[u8], capacity: usize) -> Vec<Vec<Vec<u8>>> {
        let mut got = Vec::new();
        let reader = BufReader::with_capacity(capacity, input);
        read_batches(reader, |i| {
            match i {
                Input::Lines(lines) => got.push(lines),
                Input::Failed(e) => panic!("{e}"),
            }
            true
        });
        got
    }

    #[test]
    fn lines_buffered_together_come_in_one_batch_and_none_is_lost() {
        let got = batches(b"a\nb\nc", 1 << 16);
        assert_eq!(
            got,
            vec![vec![b"a\n".to_vec(), b"b\n".to_vec(), b"c".to_vec()]]
        );
        // A buffer of two lines: each batch ends where the buffer ran dry (a reader
        // from a person typing gets each line as it comes), all lines still there.
        let text: Vec<u8> = (0..100)
            .flat_map(|i| format!("l{i:05}\n").into_bytes())
            .collect();
        let got = batches(&text, 14);
        assert!(got.iter().all(|b| b.len() == 2), "{got:?}");
        let all: Vec<Vec<u8>> = got.into_iter().flatten().collect();
        assert_eq!(all.len(), 100);
        assert_eq!(all.concat(), text);
    }

    #[test]
    fn a_batch_holds_at_most_max_batch_lines() {
        let text = b"x\n".repeat(MAX_BATCH * 2 + 1);
        let got = batches(&text, 1 << 20);
        assert_eq!(
            got.iter().map(Vec::len).collect::<Vec<_>>(),
            [MAX_BATCH, MAX_BATCH, 1]
        );
    }

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
