//! The command line: every option, its default, its validation, and what `--classic`
//! turns them into.

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use clap_complete::Shell;
use thiserror::Error;
use udpchat_impair::ImpairConfig;
use udpchat_proto::{Config, RtoPolicy, DEFAULT_WINDOW, MAX_WINDOW};
use udpchat_secure::InviteCode;

use crate::peer_addr::DEFAULT_PORT;

/// Chat with a peer over UDP. Every line you type reaches the peer exactly once and in
/// order, or is reported as not delivered, with its text.
///
/// Run the same command on both machines, each naming the other as PEER. The first time
/// two people chat, one runs `udpchat invite` and reads the code it shows to the other,
/// who adds `--code CODE`; after that each remembers the other's key.
#[derive(Debug, Parser)]
#[command(
    name = "udpchat",
    version = version(),
    about,
    long_about,
    args_conflicts_with_subcommands = true
)]
pub(crate) struct Cli {
    /// What to do other than chat.
    #[command(subcommand)]
    pub(crate) command: Option<Command>,
    /// The chat's options.
    #[command(flatten)]
    pub(crate) chat: ChatArgs,
}

/// What `--version` and `-V` print after the name: the package version, the version of
/// the message protocol this build speaks (udpchat-proto's wire format) and the git
/// revision it was built from ("unknown" when built outside a git checkout), so a bug
/// report says exactly which build it is about.
pub(crate) fn version() -> &'static str {
    static VERSION: OnceLock<String> = OnceLock::new();
    VERSION.get_or_init(|| {
        format!(
            "{} (protocol v{}, git {})",
            env!("CARGO_PKG_VERSION"),
            udpchat_proto::wire::VERSION,
            env!("UDPCHAT_GIT_REV"),
        )
    })
}

/// Things udpchat does besides chatting.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Wait for a first contact: show a short code (7-ribbon-tunnel) for the other person
    /// to give with --code, then chat with whoever proves it. Their key is pinned; later
    /// chats need no code.
    Invite {
        /// The chat's options (PEER is optional: without it, udpchat waits to be contacted).
        #[command(flatten)]
        chat: ChatArgs,
    },
    /// Show this installation's identity: the fingerprint of its key, and where it is kept.
    Id {
        /// Where the identity is kept.
        #[command(flatten)]
        store: StoreArgs,
        /// One JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// List the peers whose keys are pinned.
    Peers {
        /// Where they are kept.
        #[command(flatten)]
        store: StoreArgs,
        /// One JSON object per line instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Forget a pinned peer (by HOST:PORT or by fingerprint), so that the next contact with
    /// it is a first contact again: after a peer reinstalled udpchat, for example.
    Forget {
        /// The peer's address as HOST:PORT, or the start of its fingerprint (4 or more hex
        /// digits).
        #[arg(value_name = "PEER|FINGERPRINT")]
        target: String,
        /// Where the pinned peers are kept.
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Give a pinned peer a name, so `udpchat NAME` chats with it at its last address.
    Alias {
        /// The name: one word, e.g. bob.
        name: String,
        /// The peer: its address as HOST:PORT, or the start of its fingerprint (4 or more
        /// hex digits), as `udpchat peers` shows them.
        #[arg(value_name = "PEER|FINGERPRINT")]
        target: String,
        /// Where the pinned peers are kept.
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Print the conversation history kept in the data directory, oldest first: both
    /// directions with time, delivery state and nickname.
    History {
        /// Only the conversation with this peer (HOST:PORT, or a name given with `udpchat
        /// alias`); all conversations if omitted.
        #[arg(value_name = "PEER")]
        peer: Option<String>,
        /// Only messages from the last DURATION (e.g. 1h, 2days).
        #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
        since: Option<std::time::Duration>,
        /// Only the newest N messages.
        #[arg(long, value_name = "N", allow_negative_numbers = true)]
        limit: Option<usize>,
        /// One JSON object per line instead of text.
        #[arg(long)]
        json: bool,
        /// Where the history is kept.
        #[command(flatten)]
        store: StoreArgs,
    },
    /// List our messages kept in the outbox: accepted, not yet acknowledged by the peer;
    /// they are sent, in order, the next time udpchat runs with that peer.
    Outbox {
        /// One JSON object per line instead of text.
        #[arg(long)]
        json: bool,
        /// Where the outbox is kept.
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Print the shell completion script for SHELL on stdout, e.g. `udpchat completions
    /// bash > ~/.local/share/bash-completion/completions/udpchat`.
    Completions {
        /// The shell to complete in.
        #[arg(value_name = "SHELL")]
        shell: Shell,
    },
    /// Print udpchat's manual page (roff) on stdout, e.g. `udpchat man > udpchat.1`, or
    /// `udpchat man | man -l -` to read it now.
    Man,
    /// The protocol lab: run two protocol sessions over simulated links in virtual time
    /// (a named scenario, or the impairments you choose) and draw the run as a sequence
    /// diagram: text, SVG, or an HTML report; or draw the traces real runs wrote with
    /// --trace.
    Lab(crate::lab::LabArgs),
}

/// Where udpchat keeps what outlives a run.
#[derive(Clone, Debug, Args)]
pub(crate) struct StoreArgs {
    /// The data directory: the identity and the pinned peers [default: $UDPCHAT_HOME, else
    /// $XDG_DATA_HOME/udpchat, else ~/.local/share/udpchat]. Two udpchats with different
    /// homes are two different people.
    #[arg(long, value_name = "DIR")]
    pub(crate) home: Option<PathBuf>,
}

/// The options of a chat.
#[derive(Debug, Args)]
pub(crate) struct ChatArgs {
    /// The peer: HOST or HOST:PORT (port 12000 if omitted). HOST is an IPv4 address, an
    /// IPv6 address ([::1]:12001, or ::1 without a port) or a hostname. When omitted and
    /// stdin is a terminal, udpchat asks for it, as the original program did.
    #[arg(value_name = "PEER")]
    pub(crate) peer: Option<String>,

    /// Local UDP port to receive and send on (0 lets the system pick one) [default:
    /// the config file's `port`, else 12000].
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub(crate) port: Option<u16>,

    /// Local IP address to bind [default: the unspecified address (0.0.0.0 or ::) of
    /// the peer's address family].
    #[arg(long, value_name = "ADDR")]
    pub(crate) bind: Option<IpAddr>,

    /// A fixed retransmission timeout, e.g. 3s (the original program's) or 250ms. Without
    /// it the timeout adapts to the measured round trip (RFC 6298: from 1 ms on a fast
    /// path up to 5 s, doubling while nothing is heard).
    #[arg(long, value_name = "DURATION", value_parser = parse_timeout)]
    pub(crate) timeout: Option<Duration>,

    /// Messages in flight at once, 1 to 2040: 1 is stop-and-wait, as the original program.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_WINDOW, allow_negative_numbers = true,
          value_parser = clap::value_parser!(u16).range(1..=i64::from(MAX_WINDOW)))]
    pub(crate) window: u16,

    /// Chance, from 0 to 1, of ignoring a received message (simulated loss, as the
    /// original program's server did with 0.2).
    #[arg(long, value_name = "P", default_value_t = 0.0, allow_negative_numbers = true,
          value_parser = parse_probability)]
    pub(crate) drop: f64,

    /// Chance, from 0 to 1, of ignoring a received acknowledgement (simulated loss, as
    /// the original program's client did with 0.2).
    #[arg(long, value_name = "P", default_value_t = 0.0, allow_negative_numbers = true,
          value_parser = parse_probability)]
    pub(crate) ack_drop: f64,

    /// Seed of the simulated loss, to reproduce a run [default: random; it is shown in
    /// the `started` event].
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub(crate) seed: Option<u64>,

    /// Retransmissions without an acknowledgement before a message is reported failed
    /// (20 is about a minute, with the adaptive timeout or a fixed 3 s).
    #[arg(
        long,
        value_name = "N",
        default_value_t = 20,
        allow_negative_numbers = true
    )]
    pub(crate) max_retries: u32,

    /// The original program's exact setup: port 12000, a fixed 3 s timeout,
    /// stop-and-wait, no keepalives, --drop 0.2 and --ack-drop 0.2. Overrides --port,
    /// --timeout, --window, --drop and --ack-drop. Implies --plaintext: the original
    /// protocol is clear text.
    #[arg(long, conflicts_with_all = ["secret_file", "ask_secret", "room"])]
    pub(crate) classic: bool,

    /// Print one JSON object per line on stdout for every event (field `event` names
    /// it) instead of human-readable lines.
    #[arg(long)]
    pub(crate) json: bool,

    /// Also show first transmissions, retransmissions, duplicates, rejected datagrams
    /// and simulated drops (human output only; --json always shows everything).
    #[arg(short, long)]
    pub(crate) verbose: bool,

    /// On exit, also print round-trip time, timeout and observed loss (the `exit` event
    /// of --json always carries them).
    #[arg(long)]
    pub(crate) stats: bool,

    /// Use the line interface even on a terminal (it is always used when stdin or
    /// stdout is not a terminal, and with --json).
    #[arg(long)]
    pub(crate) plain: bool,

    /// A first contact: the code the other person's `udpchat invite` shows (a number and
    /// two words, e.g. 7-ribbon-tunnel). It proves to each side who the other is; their
    /// keys are then pinned and later chats need no code.
    #[arg(long, value_name = "CODE", value_parser = parse_code, conflicts_with_all = ["plaintext", "classic"])]
    pub(crate) code: Option<InviteCode>,

    /// Give up on a peer that has not answered for this long: its messages are reported
    /// as not delivered, with a hint (udpchat keeps trying) [default: 30s].
    #[arg(long, value_name = "DURATION", value_parser = parse_timeout)]
    pub(crate) connect_timeout: Option<Duration>,

    /// The data directory: the identity and the pinned peers [default: $UDPCHAT_HOME, else
    /// $XDG_DATA_HOME/udpchat, else ~/.local/share/udpchat]. Two udpchats with different
    /// homes are two different people.
    #[arg(long, value_name = "DIR", conflicts_with = "ephemeral")]
    pub(crate) home: Option<PathBuf>,

    /// Use a fresh identity that is kept nowhere: nothing is read from or written to
    /// disk, so every peer is a first contact (give --code or a passphrase).
    #[arg(long)]
    pub(crate) ephemeral: bool,

    /// Keep no history and no outbox for this chat (the identity and pinned peers are
    /// still used): a line the peer does not confirm is reported not delivered and is
    /// not kept. Implied by --ephemeral and --classic.
    #[arg(long)]
    pub(crate) no_history: bool,

    /// In the full-screen chat, no bell when a message arrives while you are scrolled up
    /// or in another window (the title still counts them). The config file's `bell =
    /// false` does the same.
    #[arg(long)]
    pub(crate) no_bell: bool,

    /// Write every protocol packet sent and received, every timer that fires and the
    /// round trip, timeout and window as they change to FILE, as qlog (JSON-SEQ);
    /// `udpchat lab --from-trace MINE THEIRS` draws two runs' files as one diagram.
    #[arg(long, value_name = "FILE")]
    pub(crate) trace: Option<PathBuf>,

    /// Read the shared passphrase from the first line of this file. Only someone with the
    /// same passphrase (and --room) can then connect; anyone else gets no answer at all.
    /// The UDPCHAT_SECRET environment variable works too. A passphrase also proves a
    /// first contact: the peer's key is pinned.
    #[arg(long, value_name = "PATH", conflicts_with = "ask_secret")]
    pub(crate) secret_file: Option<PathBuf>,

    /// Ask for the shared passphrase on the terminal, without echoing it.
    #[arg(long)]
    pub(crate) ask_secret: bool,

    /// A room name, mixed into the key with the passphrase: the same passphrase in
    /// another room does not connect.
    #[arg(long, value_name = "NAME")]
    pub(crate) room: Option<String>,

    /// Send in the clear, as the original program did: no encryption, so anyone on the
    /// path can read and inject messages. Implied by --classic.
    #[arg(long, conflicts_with_all = ["secret_file", "ask_secret", "room"])]
    pub(crate) plaintext: bool,

    /// Start a new key exchange after this long [default: 2m]. For tests.
    #[arg(long, hide = true, value_name = "DURATION", value_parser = parse_timeout)]
    pub(crate) rekey_after: Option<Duration>,

    /// Your nickname in the full-screen chat, sent to the peer [default: your user
    /// name].
    #[arg(long, value_name = "NAME", value_parser = parse_nick)]
    pub(crate) nick: Option<String>,

    /// Send these files (a directory as its files) and leave once the peer has them all,
    /// each checked end to end (BLAKE3), and piped input has ended (lines from a pipe
    /// are sent too; a terminal is not read). Exit status 0 only if every file arrived.
    #[arg(long, value_name = "FILE", num_args = 1..)]
    pub(crate) send: Vec<PathBuf>,

    /// Take every file the peer offers, into DIR: a file is written under a temporary
    /// name and renamed when complete and checked; an existing file is never
    /// overwritten (a suffix is added); an interrupted transfer resumes.
    #[arg(long, value_name = "DIR")]
    pub(crate) accept_files: Option<PathBuf>,

    /// Where /accept puts offered files [default: ~/Downloads, else the current
    /// directory].
    #[arg(long, value_name = "DIR")]
    pub(crate) download_dir: Option<PathBuf>,

    /// The longest message this side sends, in bytes; a longer one is refused with its
    /// text. Every peer accepts up to 16 MiB, the most and the default [default: 16 MiB].
    #[arg(long, value_name = "BYTES", allow_negative_numbers = true,
          value_parser = clap::value_parser!(u32).range(1..=16_777_216))]
    pub(crate) max_message: Option<u32>,
}

// `--max-message`'s range ends at the protocol's maximum.
const _: () = assert!(udpchat_proto::MAX_MESSAGE_LEN == 16_777_216);

/// A mistake in how udpchat was invoked: reported in one line, exit status 2.
#[derive(Debug, Error)]
#[error("{0}")]
pub(crate) struct UsageError(pub(crate) String);

/// The settings a run uses, after `--classic` has been applied.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Settings {
    /// The PEER argument as typed, if given.
    pub(crate) peer: Option<String>,
    /// Local UDP port.
    pub(crate) port: u16,
    /// Local IP to bind, if given.
    pub(crate) bind: Option<IpAddr>,
    /// Protocol settings: timeout, retries, window.
    pub(crate) protocol: Config,
    /// Simulated loss applied to received datagrams.
    pub(crate) impairment: ImpairConfig,
    /// Seed of the simulated loss, if given.
    pub(crate) seed: Option<u64>,
    /// JSON lines instead of human lines.
    pub(crate) json: bool,
    /// More human status lines.
    pub(crate) verbose: bool,
    /// Round-trip figures on exit.
    pub(crate) stats: bool,
    /// The line interface even on a terminal.
    pub(crate) plain: bool,
    /// Nickname, if given.
    pub(crate) nick: Option<String>,
    /// Encrypted (and how the passphrase is found) or clear text.
    pub(crate) security: SecurityChoice,
    /// `--home`, if given.
    pub(crate) home: Option<PathBuf>,
    /// `--ephemeral`: a fresh identity, nothing on disk.
    pub(crate) ephemeral: bool,
    /// `--no-history`: no store for the conversation.
    pub(crate) no_history: bool,
    /// `--trace FILE`: where to write the run's trace.
    pub(crate) trace: Option<PathBuf>,
    /// Ring the bell for a message that arrives while the reader is away.
    pub(crate) bell: bool,
    /// `--code`, or the code `udpchat invite` made.
    pub(crate) code: Option<InviteCode>,
    /// `udpchat invite`: show the code and wait to be contacted.
    pub(crate) invite: bool,
    /// `--send`: files to send, then leave.
    pub(crate) send: Vec<PathBuf>,
    /// Where offered files land, and whether every offer is taken at once
    /// (`--accept-files DIR`, else `--download-dir`).
    pub(crate) downloads: Option<PathBuf>,
    /// `--accept-files`: take every offer.
    pub(crate) accept_files: bool,
}

/// How datagrams are protected, as chosen on the command line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum SecurityChoice {
    /// Clear text: `--plaintext`, or implied by `--classic`.
    Plaintext {
        /// `--classic` chose it rather than `--plaintext`.
        classic: bool,
    },
    /// Encrypted: with a passphrase if one is found, else with a code to compare.
    Encrypted {
        /// Where the passphrase comes from.
        secret: SecretSource,
        /// `--room`, mixed into the key.
        room: Option<String>,
        /// `--rekey-after`, if given.
        rekey_after: Option<Duration>,
    },
}

/// Where the shared passphrase comes from. Never the command line itself, where other
/// users of the machine can read it (`ps`) and shells keep it in their history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum SecretSource {
    /// `UDPCHAT_SECRET` if it is set, else no passphrase.
    Environment,
    /// `--secret-file PATH`.
    File(PathBuf),
    /// `--ask-secret`: typed on the terminal.
    Prompt,
}

impl ChatArgs {
    /// Resolves the options into the settings of a run; `--classic` wins over the
    /// options it fixes. `invite`: the run is `udpchat invite`.
    pub(crate) fn settings(self, invite: bool) -> Settings {
        let (port, protocol, drop, ack_drop) = if self.classic {
            let classic = ImpairConfig::seed_classic();
            (
                DEFAULT_PORT,
                Config::classic(),
                classic.data_loss,
                classic.ack_loss,
            )
        } else {
            let rto = self.timeout.map_or(RtoPolicy::adaptive(), RtoPolicy::Fixed);
            let protocol = Config {
                rto,
                window: self.window,
                ..Config::default()
            };
            (
                self.port.unwrap_or(DEFAULT_PORT),
                protocol,
                self.drop,
                self.ack_drop,
            )
        };
        Settings {
            peer: self.peer,
            port,
            bind: self.bind,
            protocol: Config {
                max_message_len: self
                    .max_message
                    .map_or(udpchat_proto::MAX_MESSAGE_LEN, |n| n as usize),
                max_retries: self.max_retries,
                connect_timeout: self
                    .connect_timeout
                    .unwrap_or(Config::default().connect_timeout),
                ..protocol
            },
            impairment: ImpairConfig {
                data_loss: drop,
                ack_loss: ack_drop,
                ..ImpairConfig::default()
            },
            seed: self.seed,
            json: self.json,
            verbose: self.verbose,
            stats: self.stats,
            plain: self.plain,
            nick: self.nick,
            security: if self.classic || self.plaintext {
                SecurityChoice::Plaintext {
                    classic: self.classic,
                }
            } else {
                SecurityChoice::Encrypted {
                    secret: match (self.secret_file, self.ask_secret) {
                        (Some(path), _) => SecretSource::File(path),
                        (None, true) => SecretSource::Prompt,
                        (None, false) => SecretSource::Environment,
                    },
                    room: self.room,
                    rekey_after: self.rekey_after,
                }
            },
            home: self.home,
            ephemeral: self.ephemeral,
            no_history: self.no_history,
            trace: self.trace,
            bell: !self.no_bell,
            code: self.code,
            invite,
            accept_files: self.accept_files.is_some(),
            downloads: self
                .accept_files
                .or(self.download_dir)
                .or_else(default_downloads),
            send: self.send,
        }
    }
}

/// `~/Downloads` if there is one, else the current directory.
fn default_downloads() -> Option<PathBuf> {
    let home = std::env::var_os("HOME").map(PathBuf::from);
    match home.map(|h| h.join("Downloads")) {
        Some(d) if d.is_dir() => Some(d),
        _ => std::env::current_dir().ok(),
    }
}

/// Parses `--code`: a typo (a word not in the list) is caught here, before anything is
/// sent, and does not use up one of the invitation's attempts.
fn parse_code(s: &str) -> Result<InviteCode, String> {
    InviteCode::parse(s).map_err(|e| e.to_string())
}

/// Parses a `--timeout` value with humantime (`3s`, `250ms`, `1m 30s`), refusing zero:
/// a zero timeout would retransmit in a tight loop.
fn parse_timeout(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s)
        .map_err(|e| format!("{e} (expected a duration such as 3s or 250ms)"))?;
    if d.is_zero() {
        return Err("the timeout must be greater than zero".to_string());
    }
    Ok(d)
}

/// A nickname: 1 to 64 bytes of text without control characters.
fn parse_nick(s: &str) -> Result<String, String> {
    let nick = s.trim();
    if nick.is_empty() || nick.len() > udpchat_proto::wire::MAX_NICK_LEN {
        return Err("a nickname is 1 to 64 bytes".to_string());
    }
    if nick.chars().any(char::is_control) {
        return Err("a nickname cannot contain control characters".to_string());
    }
    Ok(nick.to_owned())
}

/// Parses a probability for `--drop` / `--ack-drop`: a finite number from 0 to 1.
fn parse_probability(s: &str) -> Result<f64, String> {
    let p: f64 = s
        .trim()
        .parse()
        .map_err(|_| "expected a number from 0 to 1, such as 0.2".to_string())?;
    if !(0.0..=1.0).contains(&p) {
        return Err(format!("must be from 0 to 1, got {p}"));
    }
    Ok(p)
}

impl Cli {
    /// Fills what the command line left unset from the config file: flags win, then
    /// the environment (`UDPCHAT_HOME`), then the file.
    pub(crate) fn with_config(mut self, file: &crate::config::FileConfig) -> Self {
        let home_from_env = std::env::var_os(crate::home::HOME_ENV).is_some_and(|v| !v.is_empty());
        let fill_home = |home: &mut Option<PathBuf>| {
            if home.is_none() && !home_from_env {
                home.clone_from(&file.home);
            }
        };
        let fill_chat = |chat: &mut ChatArgs| {
            if chat.home.is_none() && !home_from_env && !chat.ephemeral {
                chat.home.clone_from(&file.home);
            }
            if chat.nick.is_none() {
                chat.nick.clone_from(&file.nick);
            }
            if chat.port.is_none() {
                chat.port = file.port;
            }
            chat.no_history |= file.no_history.unwrap_or(false);
            chat.no_bell |= file.bell == Some(false);
        };
        fill_chat(&mut self.chat);
        match &mut self.command {
            Some(Command::Invite { chat }) => fill_chat(chat),
            Some(
                Command::Id { store, .. }
                | Command::Peers { store, .. }
                | Command::Forget { store, .. }
                | Command::Alias { store, .. }
                | Command::History { store, .. }
                | Command::Outbox { store, .. },
            ) => fill_home(&mut store.home),
            Some(Command::Completions { .. } | Command::Man | Command::Lab(_)) | None => {}
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Result<Settings, clap::Error> {
        Cli::try_parse_from(std::iter::once("udpchat").chain(args.iter().copied()))
            .map(|cli| cli.chat.settings(false))
    }

    #[test]
    fn subcommands_and_first_contact_options() {
        let cli = Cli::try_parse_from(["udpchat", "invite", "--port", "12001"]).unwrap();
        let Some(Command::Invite { chat }) = cli.command else {
            panic!("invite")
        };
        let s = chat.settings(true);
        assert!(s.invite && s.peer.is_none() && s.port == 12001);
        let cli = Cli::try_parse_from(["udpchat", "id", "--home", "/h", "--json"]).unwrap();
        assert!(matches!(cli.command, Some(Command::Id { json: true, .. })));
        let cli = Cli::try_parse_from(["udpchat", "forget", "10.0.0.2:12000"]).unwrap();
        assert!(matches!(cli.command, Some(Command::Forget { .. })));
        let s = parse(&["--code", "7-Ribbon-Tunnel", "--connect-timeout", "5s", "h"]).unwrap();
        assert_eq!(s.code.unwrap().to_string(), "7-ribbon-tunnel");
        assert_eq!(s.protocol.connect_timeout, Duration::from_secs(5));
        assert_eq!(
            parse(&["h"]).unwrap().protocol.connect_timeout,
            Duration::from_secs(30)
        );
        let err = parse(&["--code", "7-ribon-tunnel", "h"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("ribon"), "{err}");
        for args in [
            &["--code", "7-ribbon-tunnel", "--plaintext", "h"][..],
            &["--home", "/h", "--ephemeral", "h"],
        ] {
            assert!(parse(args).is_err(), "{args:?} accepted");
        }
    }

    #[test]
    fn command_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn version_names_the_protocol_and_the_revision() {
        let v = version();
        assert!(v.starts_with(env!("CARGO_PKG_VERSION")), "{v}");
        assert!(
            v.contains(&format!(
                "(protocol v{}, git ",
                udpchat_proto::wire::VERSION
            )),
            "{v}"
        );
        assert!(v.ends_with(')') && !v.ends_with(", git )"), "{v}");
    }

    #[test]
    fn timeout_help_states_the_adaptive_floor_and_ceiling_of_the_code() {
        let RtoPolicy::Adaptive { min, max, .. } = RtoPolicy::adaptive() else {
            panic!("the default policy adapts")
        };
        let command = Cli::command();
        let help = command
            .get_arguments()
            .find(|a| a.get_id() == "timeout")
            .and_then(|a| a.get_long_help().or(a.get_help()))
            .map(ToString::to_string)
            .unwrap_or_default();
        let help = help.split_whitespace().collect::<Vec<_>>().join(" ");
        let floor = format!("from {} ms", min.as_millis());
        let ceiling = format!("up to {} s", max.as_secs());
        assert!(help.contains(&floor) && help.contains(&ceiling), "{help}");
    }

    #[test]
    fn defaults_are_the_seeds_without_loss() {
        let s = parse(&["127.0.0.1"]).unwrap();
        assert_eq!(s.peer.as_deref(), Some("127.0.0.1"));
        assert_eq!(s.port, 12000);
        assert_eq!(s.bind, None);
        assert_eq!(s.protocol, Config::default());
        assert_eq!(s.impairment, ImpairConfig::default());
        assert_eq!(s.seed, None);
        assert!(!s.json && !s.verbose);
    }

    #[test]
    fn options_are_applied() {
        let s = parse(&[
            "--port",
            "12001",
            "--bind",
            "::1",
            "--timeout",
            "250ms",
            "--drop",
            "0.5",
            "--ack-drop",
            "1",
            "--seed",
            "7",
            "--max-retries",
            "3",
            "--window",
            "8",
            "--json",
            "-v",
            "[::1]:12000",
        ])
        .unwrap();
        assert_eq!(s.port, 12001);
        assert_eq!(s.bind, Some("::1".parse().unwrap()));
        assert_eq!(s.protocol.rto, RtoPolicy::Fixed(Duration::from_millis(250)));
        assert_eq!(s.protocol.window, 8);
        assert_eq!(s.protocol.max_retries, 3);
        assert_eq!(s.impairment.data_loss, 0.5);
        assert_eq!(s.impairment.ack_loss, 1.0);
        assert_eq!(s.seed, Some(7));
        assert!(s.json && s.verbose);
        assert_eq!(s.peer.as_deref(), Some("[::1]:12000"));
    }

    #[test]
    fn classic_overrides_port_timeout_and_loss() {
        let s = parse(&[
            "--classic",
            "--port",
            "5",
            "--timeout",
            "1ms",
            "--drop",
            "0",
            "--window",
            "64",
            "--max-retries",
            "4",
            "h",
        ])
        .unwrap();
        assert_eq!(s.port, 12000);
        assert_eq!(s.protocol.rto, RtoPolicy::Fixed(Duration::from_secs(3)));
        assert_eq!(s.protocol.window, 1);
        assert_eq!(s.protocol.keepalive, None);
        assert_eq!(s.protocol.max_retries, 4, "--classic leaves retries alone");
        assert_eq!(s.impairment, ImpairConfig::seed_classic());
    }

    #[test]
    fn bad_values_are_refused() {
        for args in [
            &["--drop", "1.5"][..],
            &["--drop", "-0.1"],
            &["--drop", "NaN"],
            &["--ack-drop", "x"],
            &["--timeout", "0s"],
            &["--timeout", "3"],
            &["--port", "70000"],
            &["--bind", "nowhere"],
            &["--window", "0"],
            &["--nick", ""],
            &["--window", "2041"],
            &["--frobnicate"],
        ] {
            assert!(parse(args).is_err(), "{args:?} accepted");
        }
        let err = parse(&["--timeout", "0ms"]).unwrap_err().to_string();
        assert!(err.contains("greater than zero"), "{err}");
        let err = parse(&["--drop", "1.5"]).unwrap_err().to_string();
        assert!(err.contains("from 0 to 1"), "{err}");
    }

    #[test]
    fn encrypted_by_default_and_the_secret_never_on_the_command_line() {
        let s = parse(&["h"]).unwrap();
        assert_eq!(
            s.security,
            SecurityChoice::Encrypted {
                secret: SecretSource::Environment,
                room: None,
                rekey_after: None
            }
        );
        let s = parse(&["--secret-file", "/k", "--room", "lab", "h"]).unwrap();
        assert_eq!(
            s.security,
            SecurityChoice::Encrypted {
                secret: SecretSource::File("/k".into()),
                room: Some("lab".into()),
                rekey_after: None
            }
        );
        let s = parse(&["--ask-secret", "h"]).unwrap();
        assert!(matches!(
            s.security,
            SecurityChoice::Encrypted {
                secret: SecretSource::Prompt,
                ..
            }
        ));
        assert!(parse(&["--secret", "hunter2", "h"]).is_err());
    }

    #[test]
    fn plaintext_and_classic_are_clear_text_and_refuse_a_passphrase() {
        let s = parse(&["--plaintext", "h"]).unwrap();
        assert_eq!(s.security, SecurityChoice::Plaintext { classic: false });
        let s = parse(&["--classic", "h"]).unwrap();
        assert_eq!(s.security, SecurityChoice::Plaintext { classic: true });
        for args in [
            &["--plaintext", "--secret-file", "k", "h"][..],
            &["--classic", "--ask-secret", "h"],
            &["--classic", "--room", "r", "h"],
            &["--secret-file", "k", "--ask-secret", "h"],
        ] {
            assert!(parse(args).is_err(), "{args:?} accepted");
        }
    }

    #[test]
    fn peer_is_optional() {
        assert_eq!(parse(&[]).unwrap().peer, None);
    }
}
