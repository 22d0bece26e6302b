//! What the user sees: every protocol event and every local happening as a [`Report`],
//! rendered either as one JSON object per line or as a human line. Rendering is pure,
//! so it is tested here without a socket.

use std::fmt;
use std::net::SocketAddr;

use serde::{Serialize, Serializer};
use udpchat_files::transfers::TransferEvent;
use udpchat_proto::Event;
use udpchat_secure::{PublicKey, Refusal, SecureEvent};

/// A session epoch, shown as 16 lowercase hex digits everywhere (JSON and human lines),
/// so that it reads the same as in a packet dump and survives JSON parsers that turn
/// large numbers into floats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Epoch(pub(crate) u64);

impl fmt::Display for Epoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl Serialize for Epoch {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// The two JSON lines of a run that could not start: the fatal `error` with `message`,
/// and the `exit` with the program's `status`, both stamped `ts`.
pub(crate) fn fatal_json(message: &str, status: u8, ts: &str) -> String {
    let error = serde_json::json!({
        "event": "error",
        "message": message,
        "text": null,
        "fatal": true,
        "ts": ts,
    });
    let exit = serde_json::json!({"event": "exit", "status": status, "fatal": true, "ts": ts});
    format!("{error}\n{exit}")
}

/// A u64 as a decimal string (see `Report::Started::seed`).
fn decimal<S: Serializer>(n: &u64, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_str(n)
}

/// Totals printed when the program ends.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub(crate) struct Totals {
    /// Messages accepted for sending.
    pub(crate) sent: u64,
    /// Of those, acknowledged by the peer.
    pub(crate) delivered: u64,
    /// Of those, given up (including those still pending at Ctrl-C).
    pub(crate) failed: u64,
    /// Input lines that were not sent at all: too long, or not UTF-8.
    pub(crate) refused: u64,
    /// Messages received from the peer and shown.
    pub(crate) received: u64,
    /// Retransmissions of our messages.
    pub(crate) retransmissions: u64,
    /// Of those, found unnecessary afterwards: the peer had the message already.
    pub(crate) spurious_retransmissions: u64,
    /// Copies of already received messages that were acknowledged again, not shown.
    pub(crate) duplicates: u64,
    /// Datagrams dropped as malformed, from a stranger, stale or misaddressed.
    pub(crate) rejected: u64,
    /// Smoothed round-trip time in milliseconds, once measured.
    pub(crate) srtt_ms: Option<f64>,
    /// Round-trip variation in milliseconds, once measured (like `srtt_ms`: unknown
    /// figures are `null`, never a made-up 0).
    pub(crate) rttvar_ms: Option<f64>,
    /// Retransmission timeout in milliseconds.
    pub(crate) rto_ms: f64,
    /// Share of our transmissions that were retransmissions, 0 to 1; `null` when
    /// nothing was sent.
    pub(crate) loss: Option<f64>,
    /// Handshakes answered but not yet confirmed by the peer (encryption only). Zero
    /// after datagrams that did not authenticate: they leave no state behind.
    pub(crate) pending_handshakes: usize,
    /// Our messages kept in the outbox, not yet acknowledged: sent when udpchat next
    /// runs with this peer (0 without a store).
    pub(crate) queued: u64,
}

/// One thing to tell the user. Serialised with its name in the field `event`.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub(crate) enum Report {
    /// The socket is bound; the session has started.
    Started {
        /// The bound local address.
        local: SocketAddr,
        /// The peer's address; `null` for an invitation waiting to be answered.
        peer: Option<SocketAddr>,
        /// This run's epoch.
        epoch: Epoch,
        /// Seed of the simulated loss, to reproduce the run with `--seed`; a decimal
        /// string in JSON, since a u64 is more than JavaScript's numbers hold exactly.
        #[serde(serialize_with = "decimal")]
        seed: u64,
        /// `encrypted`, `passphrase` or `plaintext`.
        security: &'static str,
        /// The fingerprint of this installation's key (`null` in clear text).
        identity: Option<String>,
    },
    /// `udpchat invite`: the code to give the other person, and the command they run.
    Invitation {
        /// The code, e.g. `7-ribbon-tunnel`.
        code: String,
        /// What the other person types (with this machine's address as best known).
        command: String,
    },
    /// An encrypted session with the peer is up; messages flow inside it.
    Encrypted {
        /// The peer's address.
        peer: SocketAddr,
        /// The fingerprint of the peer's key.
        key: String,
        /// How the key was verified: `pinned`, `code`, `passphrase` or `own_key`.
        verified: &'static str,
        /// The key was not known before and is pinned now: later sessions need nothing.
        new_contact: bool,
    },
    /// A contact was refused: its key is unknown or changed, or the code did not match.
    Refused {
        /// Where the handshake came from.
        peer: SocketAddr,
        /// `unknown_contact`, `key_changed`, `code_mismatch` or `no_invitation`.
        reason: &'static str,
        /// The fingerprint of the key it presented, if the handshake got that far.
        key: Option<String>,
        /// With `key_changed`: the fingerprint of the key pinned for it.
        expected: Option<String>,
        /// Whether this ends the chat (false: a stranger was turned away).
        fatal: bool,
    },
    /// The peer refused us; the chat cannot go on.
    RefusedByPeer {
        /// The peer's address.
        peer: SocketAddr,
        /// `unknown_contact`, `key_changed` or `other`.
        reason: &'static str,
    },
    /// The open invitation is used up (`used`: a first contact proved the code) or
    /// closed after too many wrong attempts.
    InvitationClosed {
        /// Whether a contact proved the code.
        used: bool,
    },
    /// Nobody answered for the connect timeout: messages so far are reported failed.
    NoAnswer {
        /// The peer's address.
        peer: Option<SocketAddr>,
        /// Seconds waited since the start.
        waited_s: u64,
    },
    /// The session's keys were renewed (by time or message count).
    Rekeyed,
    /// An authenticated datagram came from a new address; everything goes there now.
    PeerMoved {
        /// The address used until now.
        old: SocketAddr,
        /// The address used from now on.
        new: SocketAddr,
    },
    /// Rejected datagrams that were not reported one by one (at most 200 are per
    /// second, so a flood cannot flood the output).
    RejectedUnshown {
        /// How many.
        count: u64,
    },
    /// The peer answered; messages flow.
    Connected {
        /// The peer's epoch.
        peer_epoch: Epoch,
    },
    /// The peer became unreachable (no answer for the peer timeout, or a message ran out
    /// of retries) or came back online.
    PeerState {
        /// `online` or `unreachable`.
        state: &'static str,
    },
    /// The peer's input ended: it sends nothing more, but still confirms ours.
    PeerDone,
    /// The peer left. `finished`: after a complete goodbye; otherwise its person quit,
    /// and anything of ours it had not confirmed is reported not delivered.
    PeerLeft {
        /// Whether the goodbye was complete.
        finished: bool,
    },
    /// The peer's nickname, from this point of its stream on.
    PeerNick {
        /// The nickname.
        nick: String,
    },
    /// Round-trip figures, printed at exit with `--stats`.
    Stats(Totals),
    /// The peer restarted; our unacknowledged messages go to its new run.
    PeerRestarted {
        /// The run that ended.
        old_epoch: Epoch,
        /// The new run.
        new_epoch: Epoch,
        /// Messages that will be sent again.
        resent: usize,
    },
    /// A message from the peer, in order, exactly once.
    Received {
        /// Where it came from (always the peer).
        from: SocketAddr,
        /// Its number in the peer's stream.
        seq: u64,
        /// Its text.
        text: String,
        /// The peer's nickname at this point of its stream (`null` until it gave one).
        nick: Option<String>,
    },
    /// A message of ours went out for the first time (again after a peer restart).
    Sent {
        /// Our id for it.
        id: u64,
        /// Its sequence number.
        seq: u64,
    },
    /// A message of ours was sent again after a timeout.
    #[serde(rename = "retransmitted")]
    Retransmit {
        /// Our id for it.
        id: u64,
        /// Its sequence number.
        seq: u64,
        /// Transmissions so far, this one included.
        attempt: u32,
    },
    /// The peer acknowledged a message of ours.
    Delivered {
        /// Our id for it.
        id: u64,
        /// Its sequence number.
        seq: u64,
        /// Transmissions it took.
        attempts: u32,
        /// Milliseconds from typing to acknowledgement.
        elapsed_ms: u64,
    },
    /// A message of ours was given up.
    Failed {
        /// Our id for it.
        id: u64,
        /// Its text, so nothing is lost silently.
        text: String,
        /// `max_retries`, `peer_unreachable` or `interrupted`.
        reason: &'static str,
    },
    /// A message of ours the peer could not take now (it is unreachable, it left, the
    /// run ends): it stays in the outbox, and goes again, in order, when the peer is
    /// back or when udpchat next runs with it.
    Kept {
        /// Our number for it, the same in every run.
        number: u64,
        /// Its text.
        text: String,
        /// Why it is not delivered yet: as `failed`'s reasons.
        reason: &'static str,
    },
    /// A message we already had arrived again; acknowledged again, not shown.
    #[serde(rename = "duplicate_received")]
    Duplicate {
        /// Its sequence number.
        seq: u64,
    },
    /// `--drop` / `--ack-drop` ignored a received datagram.
    DroppedBySimulation {
        /// `data`, `ack` or `control`.
        kind: &'static str,
        /// The message's seq or the acknowledgement's cumulative number; none for control.
        seq: Option<u64>,
    },
    /// A received datagram was dropped without effect.
    Rejected {
        /// Stable machine-readable reason.
        reason: &'static str,
        /// Human explanation.
        detail: String,
    },
    /// Something went wrong locally; the program goes on.
    Error {
        /// What went wrong.
        message: String,
        /// The input line concerned, if any.
        text: Option<String>,
    },
    /// Something the user should know that does not stop anything (e.g. a send failed
    /// with "connection refused" while the peer is down; the message will be retried).
    Warning {
        /// What happened.
        message: String,
    },
    /// The program ends.
    Exit(Totals),
    /// A file transfer's event (`file_offered`, `file_progress`, `file_done`,
    /// `file_failed`), printed with its own name and fields.
    #[serde(untagged)]
    File(TransferEvent),
}

/// Where a human line goes: the conversation on stdout, everything else on stderr.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Stream {
    /// The conversation.
    Stdout,
    /// Status, warnings and errors.
    Stderr,
}

impl From<TransferEvent> for Report {
    fn from(event: TransferEvent) -> Self {
        Self::File(event)
    }
}

impl Report {
    /// Translates an event of the encryption layer; `None` for one the user need not
    /// hear about (a restart: the protocol reports it itself).
    pub(crate) fn from_secure(event: SecureEvent) -> Option<Self> {
        let fp = |k: PublicKey| k.fingerprint().to_string();
        Some(match event {
            SecureEvent::Established {
                peer,
                peer_key,
                verified,
                new_contact,
                ..
            } => Self::Encrypted {
                peer,
                key: fp(peer_key),
                verified: verified.code(),
                new_contact,
            },
            SecureEvent::PeerRestarted { .. } => return None,
            SecureEvent::Rekeyed { .. } => Self::Rekeyed,
            SecureEvent::PeerAddressChanged { old, new } => Self::PeerMoved { old, new },
            SecureEvent::Refused {
                peer,
                key,
                reason,
                fatal,
            } => Self::Refused {
                peer,
                reason: reason.code(),
                key: key.map(fp),
                expected: match reason {
                    Refusal::KeyChanged { expected } => Some(fp(expected)),
                    _ => None,
                },
                fatal,
            },
            SecureEvent::RefusedByPeer { peer, reason } => Self::RefusedByPeer {
                peer,
                reason: reason.code(),
            },
            SecureEvent::InvitationClosed { used } => Self::InvitationClosed { used },
        })
    }

    /// Translates a protocol event; `peer` is the address received messages came from.
    pub(crate) fn from_event(event: Event, peer: SocketAddr) -> Self {
        match event {
            Event::NoAnswer { waited } => Self::NoAnswer {
                peer: Some(peer),
                waited_s: waited.as_secs(),
            },
            Event::Connected { peer_epoch } => Self::Connected {
                peer_epoch: Epoch(peer_epoch),
            },
            Event::PeerStateChanged { state } => Self::PeerState {
                state: state.code(),
            },
            Event::PeerNick { nick } => Self::PeerNick { nick },
            Event::PeerDone => Self::PeerDone,
            Event::PeerLeft { finished } => Self::PeerLeft { finished },
            Event::PeerRestarted {
                old_epoch,
                new_epoch,
                resent,
            } => Self::PeerRestarted {
                old_epoch: Epoch(old_epoch),
                new_epoch: Epoch(new_epoch),
                resent,
            },
            Event::Received { seq, text, .. } => Self::Received {
                from: peer,
                seq,
                text,
                nick: None,
            },
            Event::Sent { id, seq } => Self::Sent { id: id.0, seq },
            Event::Retransmit { id, seq, attempt } => Self::Retransmit {
                id: id.0,
                seq,
                attempt,
            },
            Event::Delivered {
                id,
                seq,
                attempts,
                elapsed,
            } => Self::Delivered {
                id: id.0,
                seq,
                attempts,
                elapsed_ms: u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX),
            },
            Event::Failed { id, text, reason } => Self::Failed {
                id: id.0,
                text,
                reason: reason.code(),
            },
            Event::Duplicate { seq } => Self::Duplicate { seq },
            // The endpoint's transfers take every file frame; one reaching here was
            // not for them.
            Event::File { frame } => Self::Warning {
                message: format!("file frame of transfer {} ignored", frame.transfer()),
            },
            Event::Rejected { reason } => Self::Rejected {
                reason: reason.code(),
                detail: reason.to_string(),
            },
        }
    }

    /// One JSON object, without the trailing newline.
    pub(crate) fn to_json(&self) -> String {
        // Every field is a string, a number or null, so serialisation cannot fail; the
        // fallback only keeps the output a valid JSON line if that ever changes.
        serde_json::to_string(self).unwrap_or_else(|e| {
            serde_json::json!({"event": "error", "message": e.to_string(), "text": null})
                .to_string()
        })
    }

    /// The human line for this report, if it is shown at this verbosity.
    pub(crate) fn to_human(&self, verbose: bool) -> Option<(Stream, String)> {
        match self {
            Self::Received { text, nick, .. } => Some((
                Stream::Stdout,
                format!("{}{}", received_lead(nick.as_deref()), printable(text)),
            )),
            _ => self
                .sentence(verbose)
                .map(|s| (Stream::Stderr, format!("udpchat: {s}"))),
        }
    }

    /// The human line(s) for this report when stdout is a terminal: a received message
    /// of several lines (a paste) is shown with its line breaks, each line after the
    /// first indented under the text. Into a pipe every message stays one line
    /// ([`to_human`](Self::to_human), breaks escaped), so a script reads one per line.
    pub(crate) fn to_terminal(&self, verbose: bool) -> Option<(Stream, String)> {
        match self {
            Self::Received { text, nick, .. } if text.contains('\n') => {
                let lead = received_lead(nick.as_deref());
                let indent = " ".repeat(lead.chars().count());
                let mut out = lead;
                for (i, line) in text.split('\n').enumerate() {
                    if i > 0 {
                        out.push('\n');
                        out.push_str(&indent);
                    }
                    out.push_str(&printable(line));
                }
                Some((Stream::Stdout, out))
            }
            _ => self.to_human(verbose),
        }
    }

    /// What this report says to a person, without the program's name: the line
    /// interface prefixes it, the full-screen chat shows it as a note. `None` for what is
    /// shown only when `verbose`, or not at all.
    pub(crate) fn sentence(&self, verbose: bool) -> Option<String> {
        let line = match self {
            Self::Received { text, .. } => format!("peer> {}", printable(text)),
            Self::Started {
                local,
                peer,
                epoch,
                seed,
                security,
                identity,
            } => {
                let how = match *security {
                    "plaintext" => "unencrypted".to_owned(),
                    "passphrase" => "encrypted with the shared passphrase".to_owned(),
                    _ => "encrypted".to_owned(),
                };
                let who = identity
                    .as_ref()
                    .map(|f| format!(", you are {f}"))
                    .unwrap_or_default();
                let peer = peer.map_or("waiting to be contacted".to_owned(), |p| format!("peer {p}"));
                // The epoch and the seed are for reproducing a run: asked for with -v.
                let run = if verbose {
                    format!(" (epoch {epoch}, seed {seed})")
                } else {
                    String::new()
                };
                format!(
                    "listening on {local}, {peer}, {how}{who}{run}; type a line and press Enter to send it"
                )
            }
            Self::Invitation { code, command } => format!(
                "invitation code {code}: the other person runs `{command}` (the code works once)"
            ),
            Self::Encrypted {
                peer,
                key,
                verified,
                new_contact,
            } => match (*verified, new_contact) {
                ("code", _) => format!(
                    "encrypted session with {peer}: the invitation code matched, so this is the person you gave it to; their key {key} is pinned, nothing to compare next time"
                ),
                ("passphrase", true) => format!(
                    "encrypted session with {peer}: the shared passphrase proves it; their key {key} is pinned"
                ),
                ("own_key", _) => format!(
                    "encrypted session with {peer}, which is this same installation (the same key, {key})"
                ),
                _ => format!("encrypted session with {peer}, key {key} (pinned)"),
            },
            Self::Refused {
                peer,
                reason,
                key,
                expected,
                fatal,
            } => refusal_sentence(*peer, reason, key.as_deref(), expected.as_deref(), *fatal),
            Self::RefusedByPeer { peer, reason } => match *reason {
                "unknown_contact" => format!(
                    "{peer} refused this chat: it does not know this installation; a first contact needs its invitation code (`udpchat invite` there, `--code` here) or a shared passphrase"
                ),
                "key_changed" => format!(
                    "{peer} refused this chat: it has another key pinned for this address; if this installation is new, it must run `udpchat forget` for you and make a first contact again"
                ),
                "no_invitation" => format!(
                    "{peer} tried an invitation code, but this udpchat has no invitation open and does not know it: run `udpchat invite` here and give it the code it shows"
                ),
                _ => format!("{peer} refused this chat"),
            },
            Self::InvitationClosed { used: false } => "the invitation was tried too many times without the right code and is closed; run `udpchat invite` again for a new code".to_owned(),
            Self::InvitationClosed { used: true } if verbose => {
                "the invitation code is used up".to_owned()
            }
            Self::InvitationClosed { used: true } => return None,
            Self::NoAnswer { peer, waited_s } => format!(
                "no answer from {} for {waited_s} s: is udpchat (this version) running there, on that port, and is UDP allowed? (still trying)",
                peer.map_or("the peer".to_owned(), |p| p.to_string())
            ),
            Self::PeerMoved { old, new } => {
                format!("the peer moved from {old} to {new} (authenticated)")
            }
            Self::Connected { peer_epoch } => {
                format!("connected to the peer (epoch {peer_epoch})")
            }
            Self::PeerRestarted {
                old_epoch,
                new_epoch,
                resent,
            } => format!(
                "the peer restarted (epoch {old_epoch} -> {new_epoch}); sending it {resent} unacknowledged message{} again",
                plural(*resent as u64)
            ),
            Self::Delivered {
                id,
                attempts,
                elapsed_ms,
                ..
            } => format!(
                "delivered #{id} ({attempts} attempt{}, {elapsed_ms} ms)",
                plural(u64::from(*attempts))
            ),
            Self::Failed { id, text, reason } => {
                let why = match *reason {
                    "max_retries" => "no acknowledgement after the maximum number of retries",
                    "peer_unreachable" => "the peer is unreachable",
                    "peer_left" => "the peer left before it arrived",
                    "interrupted" => "interrupted before it was acknowledged",
                    "refused" => "the contact was refused",
                    other => other,
                };
                format!("NOT delivered #{id} ({why}): {}", printable(text))
            }
            Self::Kept {
                number,
                text,
                reason,
            } => {
                let why = match *reason {
                    "max_retries" => "no acknowledgement yet",
                    "peer_unreachable" => "the peer is unreachable",
                    "peer_left" => "the peer left",
                    "interrupted" => "interrupted",
                    other => other,
                };
                format!(
                    "not delivered yet, kept in the outbox #{number} ({why}; sent when the peer is back): {}",
                    printable(text)
                )
            }
            Self::Error { message, text } => match text {
                Some(t) => format!("error: {message}: {}", printable(t)),
                None => format!("error: {message}"),
            },
            Self::Warning { message } => format!("warning: {message}"),
            Self::File(TransferEvent::FileOffered {
                direction,
                transfer,
                name,
                size,
                waiting,
            }) => {
                let size = udpchat_files::human_bytes(*size);
                if *direction == udpchat_files::transfers::IN && !waiting {
                    format!("the peer sends {} ({size})", printable(name))
                } else if *direction == udpchat_files::transfers::IN {
                    format!(
                        "the peer offers {} ({size}): /accept {transfer} to take it, /decline {transfer} to refuse",
                        printable(name)
                    )
                } else {
                    format!("offering {} ({size})", printable(name))
                }
            }
            Self::File(TransferEvent::FileProgress {
                name,
                done,
                size,
                rate,
                ..
            }) => {
                if !verbose {
                    return None;
                }
                let percent = if *size == 0 { 100 } else { done * 100 / size };
                format!(
                    "{}: {percent}% of {} at {}",
                    printable(name),
                    udpchat_files::human_bytes(*size),
                    udpchat_files::human_rate(*rate)
                )
            }
            Self::File(TransferEvent::FileDone {
                name,
                size,
                path,
                seconds,
                ..
            }) => {
                let rate = udpchat_files::human_rate(*size as f64 / seconds.max(1e-6));
                let size = udpchat_files::human_bytes(*size);
                match path {
                    Some(path) => format!(
                        "received {} ({size}, {rate}), checked: {}",
                        printable(name),
                        printable(path)
                    ),
                    None => format!(
                        "sent {} ({size}, {rate}): the peer has it, checked",
                        printable(name)
                    ),
                }
            }
            Self::File(TransferEvent::FileFailed {
                direction,
                name,
                detail,
                ..
            }) => {
                let what = if *direction == udpchat_files::transfers::IN {
                    "not received"
                } else {
                    "not sent"
                };
                format!("{} {what}: {}", printable(name), printable(detail))
            }
            Self::PeerState { state } => format!("the peer is {state}"),
            Self::PeerNick { nick } => format!("the peer is now known as {}", printable(nick)),
            Self::PeerDone => "the peer has finished sending (its input ended)".to_owned(),
            Self::PeerLeft { finished: true } => "the peer said goodbye and left".to_owned(),
            Self::PeerLeft { finished: false } => {
                "the peer left; what it had not confirmed is not delivered".to_owned()
            }
            Self::Stats(t) => format!(
                "round trip {}, timeout {:.1} ms, observed loss {}",
                match (t.srtt_ms, t.rttvar_ms) {
                    (Some(srtt), Some(var)) => format!("{srtt:.1} ms (variation {var:.1} ms)"),
                    _ => "not measured".to_owned(),
                },
                t.rto_ms,
                t.loss
                    .map_or("unknown (nothing sent)".to_owned(), |l| format!("{:.1}%", l * 100.0))
            ),
            Self::Exit(t) => format!(
                "sent {}, delivered {}, failed {}, refused {}, {}received {} (retransmissions {}{}, duplicates {}, rejected {})",
                t.sent, t.delivered, t.failed, t.refused,
                if t.queued > 0 { format!("kept in the outbox {}, ", t.queued) } else { String::new() },
                t.received, t.retransmissions,
                if t.spurious_retransmissions > 0 { format!(" of which {} unnecessary", t.spurious_retransmissions) } else { String::new() },
                t.duplicates, t.rejected
            ),
            _ if !verbose => return None,
            Self::Sent { id, seq } => format!("sent #{id} (seq {seq})"),
            Self::Retransmit { id, seq, attempt } => {
                format!("retransmit #{id} (seq {seq}, attempt {attempt})")
            }
            Self::Duplicate { seq } => {
                format!("duplicate of message {seq} acknowledged again, not shown")
            }
            Self::DroppedBySimulation { kind, seq } => match seq {
                Some(seq) => format!("simulated loss of a received {kind} datagram (seq {seq})"),
                None => format!("simulated loss of a received {kind} datagram"),
            },
            Self::Rejected { reason, detail } => {
                format!("rejected a datagram: {detail} ({reason})")
            }
            Self::RejectedUnshown { count } => {
                format!(
                    "{count} more rejected datagram{} not shown",
                    plural(*count)
                )
            }
            Self::Rekeyed => "session keys renewed".to_owned(),
        };
        Some(line)
    }
}

/// Why a contact was refused, and what the person can do about it.
fn refusal_sentence(
    peer: SocketAddr,
    reason: &str,
    key: Option<&str>,
    expected: Option<&str>,
    fatal: bool,
) -> String {
    let key = key.map(|k| format!(" (key {k})")).unwrap_or_default();
    match reason {
        "unknown_contact" if !fatal => format!(
            "turned away {peer}{key}: not a known contact, and it proved no invitation code or passphrase"
        ),
        "unknown_contact" => format!(
            "{peer}{key} is not a known contact and nothing proves who it is: for a first contact run `udpchat invite` on one side and `udpchat HOST --code CODE` on the other, or share a passphrase"
        ),
        "key_changed" => format!(
            "REFUSED {peer}: it presents another key{key} than the one pinned for it ({}); someone may be in the middle, or the peer's installation was replaced. If you know it was, run `udpchat forget {peer}` and make a first contact again",
            expected.unwrap_or("unknown")
        ),
        "code_mismatch" => "the invitation code did not match: check it with the other person, or ask for a new one (`udpchat invite`)".to_owned(),
        "no_invitation" => format!(
            "{peer} has no invitation open (or it was already used): ask them to run `udpchat invite` and give you its code"
        ),
        other => format!("refused {peer}{key}: {other}"),
    }
}

/// The name of a failure reason that is not a protocol [`FailReason`]: Ctrl-C.
pub(crate) const INTERRUPTED: &str = "interrupted";
/// The name of a failure reason that is not a protocol [`FailReason`]: the contact was
/// refused, so nothing can be delivered.
pub(crate) const REFUSED: &str = "refused";

fn plural(n: u64) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// Escapes control characters so a peer cannot move the cursor, clear the screen or
/// forge extra lines on the user's terminal.
/// What a received message's line starts with: the peer's nickname (escaped), or
/// `peer` until it gave one.
fn received_lead(nick: Option<&str>) -> String {
    format!("{}> ", nick.map_or("peer".into(), printable))
}

pub(crate) fn printable(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() && c != '\t' {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};
    use std::time::Duration;
    use udpchat_proto::{DecodeError, FailReason, MessageId, RejectReason};

    /// Every failure reason the human wording must cover.
    fn all_fail_codes() -> [&'static str; 3] {
        [
            FailReason::MaxRetries { attempts: 1 }.code(),
            FailReason::PeerUnreachable.code(),
            INTERRUPTED,
        ]
    }

    fn peer() -> SocketAddr {
        "127.0.0.1:12001".parse().unwrap()
    }

    fn json_of(r: &Report) -> Value {
        serde_json::from_str(&r.to_json()).unwrap()
    }

    #[test]
    fn every_protocol_event_has_its_json_shape() {
        let cases = [
            (
                Event::Connected { peer_epoch: 0xab },
                json!({"event": "connected", "peer_epoch": "00000000000000ab"}),
            ),
            (
                Event::PeerRestarted {
                    old_epoch: 1,
                    new_epoch: u64::MAX,
                    resent: 2,
                },
                json!({"event": "peer_restarted", "old_epoch": "0000000000000001",
                       "new_epoch": "ffffffffffffffff", "resent": 2}),
            ),
            (
                Event::Received {
                    seq: 3,
                    stable: None,
                    text: "hi".into(),
                },
                json!({"event": "received", "from": "127.0.0.1:12001", "seq": 3, "text": "hi", "nick": null}),
            ),
            (
                Event::Sent {
                    id: MessageId(4),
                    seq: 5,
                },
                json!({"event": "sent", "id": 4, "seq": 5}),
            ),
            (
                Event::Retransmit {
                    id: MessageId(4),
                    seq: 5,
                    attempt: 2,
                },
                json!({"event": "retransmitted", "id": 4, "seq": 5, "attempt": 2}),
            ),
            (
                Event::Delivered {
                    id: MessageId(4),
                    seq: 5,
                    attempts: 2,
                    elapsed: Duration::from_micros(1_500),
                },
                json!({"event": "delivered", "id": 4, "seq": 5, "attempts": 2, "elapsed_ms": 1}),
            ),
            (
                Event::Failed {
                    id: MessageId(6),
                    text: "lost?".into(),
                    reason: FailReason::MaxRetries { attempts: 21 },
                },
                json!({"event": "failed", "id": 6, "text": "lost?", "reason": "max_retries"}),
            ),
            (
                Event::Duplicate { seq: 7 },
                json!({"event": "duplicate_received", "seq": 7}),
            ),
            (
                Event::Rejected {
                    reason: RejectReason::Malformed(DecodeError::BadChecksum),
                },
                json!({"event": "rejected", "reason": "bad_checksum", "detail": "bad checksum"}),
            ),
        ];
        for (event, expected) in cases {
            assert_eq!(json_of(&Report::from_event(event, peer())), expected);
        }
    }

    #[test]
    fn security_events_have_their_json_shape_and_words() {
        use udpchat_secure::{PeerRefusal, Verification};
        let peer = peer();
        let key = PublicKey([0; 32]);
        let fp = key.fingerprint().to_string();
        let established = |verified, new_contact| SecureEvent::Established {
            peer,
            peer_epoch: 2,
            peer_key: key,
            verified,
            new_contact,
            rtt: None,
        };
        let first = Report::from_secure(established(Verification::Code, true)).unwrap();
        assert_eq!(
            json_of(&first),
            json!({"event": "encrypted", "peer": "127.0.0.1:12001", "key": fp,
                   "verified": "code", "new_contact": true})
        );
        let (_, line) = first.to_human(false).unwrap();
        assert!(
            line.contains("the invitation code matched") && line.contains(&fp),
            "{line}"
        );
        let pinned = Report::from_secure(established(Verification::Pinned, false)).unwrap();
        assert!(pinned.to_human(false).unwrap().1.contains("(pinned)"));
        let restarted = SecureEvent::PeerRestarted {
            old_epoch: 1,
            new_epoch: 2,
            rtt: None,
        };
        assert_eq!(
            Report::from_secure(restarted),
            None,
            "the protocol reports it"
        );
        let changed = Report::from_secure(SecureEvent::Refused {
            peer,
            key: Some(PublicKey([1; 32])),
            reason: udpchat_secure::Refusal::KeyChanged { expected: key },
            fatal: true,
        })
        .unwrap();
        let v = json_of(&changed);
        assert_eq!(v["event"], "refused");
        assert_eq!(v["reason"], "key_changed");
        assert_eq!(v["expected"], fp.as_str());
        assert_eq!(v["fatal"], true);
        let line = changed.to_human(false).unwrap().1;
        assert!(
            line.contains("REFUSED") && line.contains("udpchat forget"),
            "{line}"
        );
        let by_peer = Report::from_secure(SecureEvent::RefusedByPeer {
            peer,
            reason: PeerRefusal::UnknownContact,
        })
        .unwrap();
        assert_eq!(
            json_of(&by_peer),
            json!({"event": "refused_by_peer", "peer": "127.0.0.1:12001", "reason": "unknown_contact"})
        );
        let rekeyed = Report::from_secure(SecureEvent::Rekeyed {
            peer_epoch: 2,
            rtt: None,
        })
        .unwrap();
        assert_eq!(json_of(&rekeyed), json!({"event": "rekeyed"}));
        assert_eq!(rekeyed.to_human(false), None, "verbose only");
        let moved = SecureEvent::PeerAddressChanged {
            old: peer,
            new: "127.0.0.1:2".parse().unwrap(),
        };
        assert_eq!(
            json_of(&Report::from_secure(moved).unwrap()),
            json!({"event": "peer_moved", "old": "127.0.0.1:12001", "new": "127.0.0.1:2"})
        );
        assert_eq!(
            json_of(&Report::RejectedUnshown { count: 3 }),
            json!({"event": "rejected_unshown", "count": 3})
        );
        let closed = Report::from_secure(SecureEvent::InvitationClosed { used: false }).unwrap();
        assert!(closed.to_human(false).unwrap().1.contains("udpchat invite"));
    }

    #[test]
    fn local_reports_have_their_json_shape() {
        let started = Report::Started {
            local: "0.0.0.0:12000".parse().unwrap(),
            peer: Some("[::1]:12001".parse().unwrap()),
            epoch: Epoch(0x1234),
            seed: 42,
            security: "passphrase",
            identity: Some("baf7".into()),
        };
        assert_eq!(
            json_of(&started),
            json!({"event": "started", "local": "0.0.0.0:12000", "peer": "[::1]:12001",
                   "epoch": "0000000000001234", "seed": "42", "security": "passphrase",
                   "identity": "baf7"})
        );
        assert_eq!(
            json_of(&Report::DroppedBySimulation {
                kind: "ack",
                seq: Some(9)
            }),
            json!({"event": "dropped_by_simulation", "kind": "ack", "seq": 9})
        );
        assert_eq!(
            json_of(&Report::DroppedBySimulation {
                kind: "control",
                seq: None
            }),
            json!({"event": "dropped_by_simulation", "kind": "control", "seq": null})
        );
        assert_eq!(
            json_of(&Report::Error {
                message: "too long".into(),
                text: Some("x".into())
            }),
            json!({"event": "error", "message": "too long", "text": "x"})
        );
        let totals = Totals {
            sent: 1,
            delivered: 2,
            failed: 3,
            refused: 8,
            received: 4,
            retransmissions: 5,
            spurious_retransmissions: 1,
            duplicates: 6,
            rejected: 7,
            srtt_ms: Some(1.5),
            rttvar_ms: Some(0.5),
            rto_ms: 10.0,
            loss: Some(0.25),
            pending_handshakes: 0,
            queued: 0,
        };
        assert_eq!(
            json_of(&Report::Exit(totals)),
            json!({"event": "exit", "sent": 1, "delivered": 2, "failed": 3, "refused": 8, "received": 4,
                   "retransmissions": 5, "spurious_retransmissions": 1, "duplicates": 6, "rejected": 7,
                   "srtt_ms": 1.5, "rttvar_ms": 0.5, "rto_ms": 10.0, "loss": 0.25, "pending_handshakes": 0,
                   "queued": 0})
        );
        assert_eq!(
            Report::Stats(totals).to_human(false).unwrap().1,
            "udpchat: round trip 1.5 ms (variation 0.5 ms), timeout 10.0 ms, observed loss 25.0%"
        );
        assert_eq!(
            json_of(&Report::from_event(
                Event::PeerStateChanged {
                    state: udpchat_proto::PeerState::Unreachable
                },
                peer()
            )),
            json!({"event": "peer_state", "state": "unreachable"})
        );
        assert_eq!(
            json_of(&Report::from_event(
                Event::PeerNick { nick: "ada".into() },
                peer()
            )),
            json!({"event": "peer_nick", "nick": "ada"})
        );
    }

    #[test]
    fn json_is_one_line_even_for_multiline_text() {
        let r = Report::Received {
            from: peer(),
            seq: 0,
            text: "a\nb".into(),
            nick: None,
        };
        assert!(!r.to_json().contains('\n'));
    }

    #[test]
    fn received_messages_go_to_stdout_everything_else_to_stderr() {
        let r = Report::Received {
            from: peer(),
            seq: 0,
            text: "hello there".into(),
            nick: None,
        };
        assert_eq!(
            r.to_human(false),
            Some((Stream::Stdout, "peer> hello there".into()))
        );
        let d = Report::Delivered {
            id: 0,
            seq: 0,
            attempts: 1,
            elapsed_ms: 3,
        };
        assert_eq!(
            d.to_human(false),
            Some((
                Stream::Stderr,
                "udpchat: delivered #0 (1 attempt, 3 ms)".into()
            ))
        );
    }

    #[test]
    fn failed_and_errors_carry_the_text() {
        for code in all_fail_codes() {
            let f = Report::Failed {
                id: 2,
                text: "my words".into(),
                reason: code,
            };
            let (stream, line) = f.to_human(false).unwrap();
            assert_eq!(stream, Stream::Stderr);
            assert!(line.starts_with("udpchat: NOT delivered #2 ("), "{line}");
            assert!(line.ends_with("): my words"), "{line}");
            assert!(!line.contains('_'), "{line} should say {code} in words");
        }
        let e = Report::Error {
            message: "message too long: 2000 bytes, the limit is 1131 bytes".into(),
            text: Some("xx".into()),
        };
        assert_eq!(
            e.to_human(false).unwrap().1,
            "udpchat: error: message too long: 2000 bytes, the limit is 1131 bytes: xx"
        );
    }

    #[test]
    fn protocol_details_only_when_verbose() {
        let quiet = [
            Report::Sent { id: 0, seq: 0 },
            Report::Retransmit {
                id: 0,
                seq: 0,
                attempt: 2,
            },
            Report::Duplicate { seq: 0 },
            Report::DroppedBySimulation {
                kind: "data",
                seq: Some(0),
            },
            Report::Rejected {
                reason: "bad_magic",
                detail: "not a udpchat packet (bad magic)".into(),
            },
        ];
        for r in &quiet {
            assert_eq!(r.to_human(false), None, "{r:?}");
            let (stream, line) = r.to_human(true).unwrap();
            assert_eq!(stream, Stream::Stderr);
            assert!(line.starts_with("udpchat: "), "{line}");
        }
        assert_eq!(
            Report::Rejected {
                reason: "bad_magic",
                detail: "not a udpchat packet (bad magic)".into(),
            }
            .to_human(true)
            .unwrap()
            .1,
            "udpchat: rejected a datagram: not a udpchat packet (bad magic) (bad_magic)"
        );
    }

    #[test]
    fn status_lines_are_always_shown() {
        let always = [
            Report::Connected {
                peer_epoch: Epoch(1),
            },
            Report::PeerRestarted {
                old_epoch: Epoch(1),
                new_epoch: Epoch(2),
                resent: 1,
            },
            Report::Warning {
                message: "x".into(),
            },
            Report::Exit(Totals::default()),
        ];
        for r in &always {
            assert!(r.to_human(false).is_some(), "{r:?}");
        }
        assert_eq!(
            Report::Exit(Totals::default()).to_human(false).unwrap().1,
            "udpchat: sent 0, delivered 0, failed 0, refused 0, received 0 (retransmissions 0, duplicates 0, rejected 0)"
        );
    }

    #[test]
    fn control_characters_from_the_peer_are_escaped() {
        let r = Report::Received {
            from: peer(),
            seq: 0,
            text: "a\u{1b}[2Jb\nc\td".into(),
            nick: Some("ev\u{1b}[2Jil".into()),
        };
        assert_eq!(
            r.to_human(false).unwrap().1,
            "ev\\u{1b}[2Jil> a\\u{1b}[2Jb\\nc\td",
            "the nickname is the peer's text too"
        );
    }

    /// One report of every kind that `--json` prints, as docs/JSON.md shows it. The
    /// match makes a new kind fail to compile here until it has its sample (and so its
    /// place in the document).
    fn documented_samples() -> Vec<Report> {
        let totals = Totals {
            sent: 3,
            delivered: 2,
            failed: 0,
            refused: 0,
            received: 4,
            retransmissions: 1,
            spurious_retransmissions: 0,
            duplicates: 0,
            rejected: 0,
            srtt_ms: Some(0.8),
            rttvar_ms: Some(0.3),
            rto_ms: 2.0,
            loss: Some(0.25),
            pending_handshakes: 0,
            queued: 1,
        };
        let a: SocketAddr = "192.168.1.20:12000".parse().unwrap();
        let b: SocketAddr = "192.168.1.21:12000".parse().unwrap();
        let key = "3f2a-91c4-0b7e-55d1-e2a8-6c03-7f19-b4d6".to_owned();
        let samples = vec![
            Report::Started {
                local: "0.0.0.0:12000".parse().unwrap(),
                peer: Some(a),
                epoch: Epoch(0x2bde_5a4e_2c13_dafb),
                seed: 12_345_678_901_234_567_890,
                security: "encrypted",
                identity: Some("cee4-2b93-48e2-6d85-33aa-d73c-e897-2468".into()),
            },
            Report::Invitation {
                code: "7-ribbon-tunnel".into(),
                command: "udpchat 192.168.1.21:12000 --code 7-ribbon-tunnel".into(),
            },
            Report::Encrypted {
                peer: a,
                key: key.clone(),
                verified: "pinned",
                new_contact: false,
            },
            Report::Refused {
                peer: b,
                reason: "key_changed",
                key: Some("9e01-77aa-13c5-d2f0-4b6e-a8c1-0f3d-52b9".into()),
                expected: Some(key),
                fatal: true,
            },
            Report::RefusedByPeer {
                peer: a,
                reason: "unknown_contact",
            },
            Report::InvitationClosed { used: true },
            Report::NoAnswer {
                peer: Some(a),
                waited_s: 30,
            },
            Report::Rekeyed,
            Report::PeerMoved { old: a, new: b },
            Report::RejectedUnshown { count: 1200 },
            Report::Connected {
                peer_epoch: Epoch(0x91c4_0b7e_55d1_e2a8),
            },
            Report::PeerState {
                state: "unreachable",
            },
            Report::PeerDone,
            Report::PeerLeft { finished: true },
            Report::PeerNick { nick: "ada".into() },
            Report::PeerRestarted {
                old_epoch: Epoch(0x91c4_0b7e_55d1_e2a8),
                new_epoch: Epoch(0x6c03_7f19_b4d6_3f2a),
                resent: 2,
            },
            Report::Received {
                from: a,
                seq: 7,
                text: "hello".into(),
                nick: Some("ada".into()),
            },
            Report::Sent { id: 3, seq: 3 },
            Report::Retransmit {
                id: 3,
                seq: 3,
                attempt: 2,
            },
            Report::Delivered {
                id: 3,
                seq: 3,
                attempts: 2,
                elapsed_ms: 14,
            },
            Report::Failed {
                id: 4,
                text: "are you there?".into(),
                reason: "max_retries",
            },
            Report::Kept {
                number: 118,
                text: "see you tomorrow".into(),
                reason: "peer_unreachable",
            },
            Report::Duplicate { seq: 7 },
            Report::DroppedBySimulation {
                kind: "data",
                seq: Some(8),
            },
            Report::Rejected {
                reason: "bad_checksum",
                detail: "bad checksum".into(),
            },
            Report::Error {
                message: "line 3 is not UTF-8; not sent".into(),
                text: None,
            },
            Report::Warning {
                message: "no answer from 192.168.1.20:12000 for 10 s: is udpchat running there, on that port, and is UDP allowed? (still trying)".into(),
            },
            Report::File(TransferEvent::FileOffered {
                direction: "in",
                transfer: 1,
                name: "photos/harbour.jpg".into(),
                size: 2_481_152,
                waiting: true,
            }),
            Report::File(TransferEvent::FileProgress {
                direction: "out",
                transfer: 1,
                name: "photos/harbour.jpg".into(),
                done: 1_048_576,
                size: 2_481_152,
                rate: 52_428_800.0,
            }),
            Report::File(TransferEvent::FileDone {
                direction: "in",
                transfer: 1,
                name: "photos/harbour.jpg".into(),
                size: 2_481_152,
                path: Some("/home/ada/Downloads/photos/harbour.jpg".into()),
                from: 0,
                seconds: 0.05,
            }),
            Report::File(TransferEvent::FileFailed {
                direction: "out",
                transfer: 2,
                name: "notes.txt".into(),
                reason: "declined",
                detail: "the peer says: declined".into(),
            }),
            Report::Exit(totals),
        ];
        for s in &samples {
            match s {
                Report::Started { .. }
                | Report::Invitation { .. }
                | Report::Encrypted { .. }
                | Report::Refused { .. }
                | Report::RefusedByPeer { .. }
                | Report::InvitationClosed { .. }
                | Report::NoAnswer { .. }
                | Report::Rekeyed
                | Report::PeerMoved { .. }
                | Report::RejectedUnshown { .. }
                | Report::Connected { .. }
                | Report::PeerState { .. }
                | Report::PeerDone
                | Report::PeerLeft { .. }
                | Report::PeerNick { .. }
                | Report::PeerRestarted { .. }
                | Report::Received { .. }
                | Report::Sent { .. }
                | Report::Retransmit { .. }
                | Report::Delivered { .. }
                | Report::Failed { .. }
                | Report::Kept { .. }
                | Report::Duplicate { .. }
                | Report::DroppedBySimulation { .. }
                | Report::Rejected { .. }
                | Report::Error { .. }
                | Report::Warning { .. }
                | Report::File(_)
                | Report::Exit(_) => {}
                // Human output only (--stats); the `exit` event carries the same.
                Report::Stats(_) => unreachable!(),
            }
        }
        samples
    }

    /// The example lines of docs/JSON.md, by the event heading (`### \`name\``) they
    /// stand under.
    fn documented_examples() -> Vec<(String, Value)> {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/JSON.md");
        let doc = std::fs::read_to_string(path).unwrap();
        let mut heading = String::new();
        let mut examples = Vec::new();
        for line in doc.lines() {
            if let Some(name) = line.strip_prefix("### `") {
                heading = name.trim_end_matches('`').to_owned();
            } else if line.starts_with("{\"event\"") {
                let value: Value = serde_json::from_str(line)
                    .unwrap_or_else(|e| panic!("docs/JSON.md: {e}: {line}"));
                examples.push((heading.clone(), value));
            }
        }
        examples
    }

    #[test]
    fn docs_json_md_shows_every_event_as_printed() {
        let examples = documented_examples();
        for (heading, example) in &examples {
            assert_eq!(
                example["event"],
                heading.as_str(),
                "under the wrong heading: {example}"
            );
            assert!(example["ts"].is_string(), "no ts: {example}");
        }
        // The two lines of a run that could not start, as main prints them.
        let fatal = fatal_json(
            "UDP port 12000 on 0.0.0.0 is already in use (is another udpchat running?); choose another with --port",
            1,
            "2026-12-01T14:20:00.000Z",
        );
        for line in fatal.lines() {
            let value: Value = serde_json::from_str(line).unwrap();
            assert!(
                examples.iter().any(|(_, e)| *e == value),
                "docs/JSON.md lacks {line}"
            );
        }
        for sample in documented_samples() {
            let mut printed = json_of(&sample);
            let name = printed["event"].as_str().unwrap().to_owned();
            let ts = serde_json::Value::String(String::new());
            printed["ts"] = ts;
            let found = examples.iter().any(|(_, e)| {
                let mut e = e.clone();
                e["ts"] = Value::String(String::new());
                e == printed
            });
            assert!(
                found,
                "docs/JSON.md has no example of `{name}` as printed:\n{}",
                stamped_line(&sample)
            );
        }
    }

    /// A sample as `--json` prints it, with a fixed time (to paste into the document).
    fn stamped_line(r: &Report) -> String {
        let json = r.to_json();
        format!(
            "{},\"ts\":\"2026-12-01T14:20:00.000Z\"}}",
            &json[..json.len() - 1]
        )
    }

    #[test]
    fn a_message_of_several_lines_keeps_its_breaks_only_on_a_terminal() {
        let r = Report::Received {
            from: "127.0.0.1:1".parse().unwrap(),
            seq: 0,
            text: "first\n\tsecond\u{7}".into(),
            nick: Some("bo".into()),
        };
        assert_eq!(
            r.to_human(false),
            Some((Stream::Stdout, "bo> first\\n\tsecond\\u{7}".into()))
        );
        assert_eq!(
            r.to_terminal(false),
            Some((Stream::Stdout, "bo> first\n    \tsecond\\u{7}".into()))
        );
    }
}
