//! Slash commands typed in the input line.

/// A parsed command.
#[derive(Clone, Debug, PartialEq)]
pub enum Command {
    /// `/help`: list the commands and keys.
    Help,
    /// `/nick NAME`: change our nickname (sent to the peer).
    Nick(String),
    /// `/drop P`: simulated loss of received messages, 0 to 1.
    Drop(f64),
    /// `/ack-drop P`: simulated loss of received acknowledgements, 0 to 1.
    AckDrop(f64),
    /// `/stats`: show the session's counters.
    Stats,
    /// `/clear`: empty the conversation pane.
    Clear,
    /// `/retry`: send failed messages again.
    Retry,
    /// `/find TEXT`: search the kept conversation.
    Find(String),
    /// `/trace`: the last datagrams of this chat as a small sequence diagram.
    Trace,
    /// `/mouse`: turn the mouse wheel on or off (on, the terminal's own selection needs
    /// Shift).
    Mouse,
    /// `/send PATH`: offer a file (a directory as its files) to the peer.
    SendFile(String),
    /// `/accept [N]`: take the peer's offer N, or the oldest waiting.
    Accept(Option<u64>),
    /// `/decline [N]`: refuse the peer's offer N, or the oldest waiting.
    Decline(Option<u64>),
    /// `/quit`: leave.
    Quit,
}

/// One line per command, for `/help`.
pub const HELP: &[(&str, &str)] = &[
    ("/help", "this list"),
    ("/nick NAME", "change your nickname"),
    ("/drop P", "simulate losing received messages (0-1)"),
    ("/ack-drop P", "simulate losing received ACKs (0-1)"),
    ("/stats", "delivery and network statistics"),
    ("/clear", "clear the conversation"),
    ("/retry", "send failed messages again"),
    ("/find TEXT", "search the kept conversation"),
    ("/trace", "the last datagrams as a sequence diagram"),
    ("/mouse", "wheel scrolls (select with Shift), or not"),
    ("/send PATH", "send a file or a directory"),
    ("/accept, /decline [N]", "take or refuse the file offered"),
    ("/quit", "leave (also Ctrl-C)"),
];

/// Keys, for `/help`.
pub const KEYS: &[(&str, &str)] = &[
    ("Enter", "send"),
    ("Up / Down", "history"),
    ("Left/Right, Ctrl-Left/Right", "move by letter / word"),
    ("Ctrl-A / Ctrl-E", "start / end of line"),
    ("Ctrl-W, Alt-Backspace", "delete word"),
    ("Ctrl-U", "delete to start of line"),
    ("PgUp / PgDn (wheel: /mouse)", "scroll"),
    ("Home / End", "oldest / newest message"),
];

fn probability(name: &str, arg: &str) -> Result<f64, String> {
    match arg.trim().parse::<f64>() {
        Ok(p) if (0.0..=1.0).contains(&p) => Ok(p),
        _ => Err(format!(
            "{name} needs a probability from 0 to 1, e.g. {name} 0.2"
        )),
    }
}

/// Parses a line starting with `/`. `None` if it is not a command (a message that
/// happens to start with `//` is sent as `/…`, see [`unescape`]).
pub(crate) fn parse(line: &str) -> Option<Result<Command, String>> {
    let rest = line.strip_prefix('/')?;
    if rest.starts_with('/') {
        return None;
    }
    let (name, arg) = rest.split_once(' ').unwrap_or((rest, ""));
    let arg = arg.trim();
    let parsed = match name {
        "help" | "h" | "?" => Ok(Command::Help),
        "nick" if arg.is_empty() => Err("/nick needs a name, e.g. /nick ada".to_owned()),
        "nick" => Ok(Command::Nick(arg.to_owned())),
        "drop" => probability("/drop", arg).map(Command::Drop),
        "ack-drop" => probability("/ack-drop", arg).map(Command::AckDrop),
        "stats" => Ok(Command::Stats),
        "clear" => Ok(Command::Clear),
        "retry" => Ok(Command::Retry),
        "mouse" => Ok(Command::Mouse),
        "trace" => Ok(Command::Trace),
        "find" if arg.is_empty() => {
            Err("/find needs words to look for, e.g. /find lunch".to_owned())
        }
        "find" => Ok(Command::Find(arg.to_owned())),
        "send" if arg.is_empty() => Err("/send needs a file, e.g. /send ~/notes.txt".to_owned()),
        "send" => Ok(Command::SendFile(arg.to_owned())),
        "accept" | "decline" => {
            let number = if arg.is_empty() {
                Ok(None)
            } else {
                arg.parse::<u64>()
                    .map(Some)
                    .map_err(|_| format!("/{name} takes the offer's number, e.g. /{name} 2"))
            };
            number.map(|n| {
                if name == "accept" {
                    Command::Accept(n)
                } else {
                    Command::Decline(n)
                }
            })
        }
        "quit" | "exit" | "q" => Ok(Command::Quit),
        other => Err(format!("unknown command /{other} (/help lists them)")),
    };
    Some(parsed)
}

/// A line starting with `//` is a message starting with `/`.
pub(crate) fn unescape(line: &str) -> &str {
    if line.starts_with("//") {
        &line[1..]
    } else {
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_parse() {
        assert_eq!(parse("/help"), Some(Ok(Command::Help)));
        assert_eq!(parse("/nick  ada "), Some(Ok(Command::Nick("ada".into()))));
        assert_eq!(parse("/drop 0.2"), Some(Ok(Command::Drop(0.2))));
        assert_eq!(parse("/ack-drop 1"), Some(Ok(Command::AckDrop(1.0))));
        assert_eq!(parse("/quit"), Some(Ok(Command::Quit)));
        assert_eq!(parse("hello"), None);
        assert_eq!(parse("//not a command"), None);
        assert_eq!(unescape("//x"), "/x");
    }

    #[test]
    fn file_commands_parse() {
        assert_eq!(
            parse("/send ~/a b.txt"),
            Some(Ok(Command::SendFile("~/a b.txt".into())))
        );
        assert_eq!(parse("/accept"), Some(Ok(Command::Accept(None))));
        assert_eq!(parse("/accept 2"), Some(Ok(Command::Accept(Some(2)))));
        assert_eq!(parse("/decline 3"), Some(Ok(Command::Decline(Some(3)))));
    }

    #[test]
    fn mistakes_get_a_one_line_hint() {
        for bad in [
            "/drop 1.5",
            "/drop x",
            "/ack-drop",
            "/nick",
            "/frobnicate",
            "/send",
            "/accept two",
        ] {
            let Some(Err(hint)) = parse(bad) else {
                panic!("{bad} should be refused");
            };
            assert!(!hint.contains('\n'), "{hint}");
        }
        assert_eq!(
            parse("/frobnicate"),
            Some(Err("unknown command /frobnicate (/help lists them)".into()))
        );
    }
}
