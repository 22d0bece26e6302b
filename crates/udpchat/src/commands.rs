//! The subcommands that do not chat: `udpchat id`, `udpchat peers`, `udpchat forget`,
//! `udpchat history`, `udpchat outbox`, `udpchat completions` and `udpchat man`.

use std::io::{self, Write};

use serde_json::json;
use udpchat_secure::PublicKey;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use udpchat_store::{Message, State, Store};

use crate::cli::StoreArgs;
use crate::contacts::Contacts;

/// `udpchat id`: this installation's fingerprint, public key and home.
///
/// # Errors
/// The home or the identity cannot be read; stdout is closed.
pub(crate) fn id(store: &StoreArgs, json: bool) -> anyhow::Result<()> {
    let contacts = Contacts::open(store.home.as_deref(), false)?;
    let key = contacts.identity.public();
    let home = contacts
        .home()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let known = contacts.known().count();
    let mut out = io::stdout().lock();
    if json {
        writeln!(
            out,
            "{}",
            json!({
                "fingerprint": key.fingerprint().to_string(),
                "public_key": key.to_hex(),
                "home": home,
                "created": contacts.created,
                "known_peers": known,
            })
        )?;
    } else {
        writeln!(out, "fingerprint  {}", key.fingerprint())?;
        writeln!(out, "public key   {}", key.to_hex())?;
        writeln!(
            out,
            "home         {home}{}",
            if contacts.created {
                " (identity created now)"
            } else {
                ""
            }
        )?;
        writeln!(out, "known peers  {known}")?;
    }
    Ok(())
}

/// `udpchat peers`: the pinned peers.
///
/// # Errors
/// The home or the known peers file cannot be read; stdout is closed.
pub(crate) fn peers(store: &StoreArgs, json: bool) -> anyhow::Result<()> {
    let contacts = Contacts::open(store.home.as_deref(), false)?;
    let mut out = io::stdout().lock();
    if !json && contacts.known().next().is_none() {
        writeln!(
            out,
            "no pinned peers yet: a first contact (udpchat invite / --code, or a passphrase) pins one"
        )?;
    }
    for p in contacts.known() {
        let key = PublicKey(p.key);
        let addr = p.addr.map_or("-".to_owned(), |a| a.to_string());
        if json {
            writeln!(
                out,
                "{}",
                json!({
                    "fingerprint": key.fingerprint().to_string(),
                    "public_key": key.to_hex(),
                    "verified_by": p.verified_by.as_str(),
                    "added": p.added,
                    "address": p.addr.map(|a| a.to_string()),
                    "name": p.name,
                })
            )?;
        } else {
            writeln!(
                out,
                "{}  {:<10}  {}  {addr}  {}",
                key.fingerprint(),
                p.verified_by.as_str(),
                p.added,
                p.name.as_deref().unwrap_or("")
            )?;
        }
    }
    Ok(())
}

/// `udpchat forget TARGET`: unpins the peers at an address or with a fingerprint.
///
/// # Errors
/// Nothing matches; the file cannot be saved.
pub(crate) fn forget(store: &StoreArgs, target: &str) -> anyhow::Result<()> {
    let mut contacts = Contacts::open(store.home.as_deref(), false)?;
    let removed = contacts.forget(target)?;
    if removed == 0 {
        anyhow::bail!(
            "no pinned peer at {target:?} (give HOST:PORT as `udpchat peers` shows it, or 4 or more hex digits of a fingerprint)"
        );
    }
    writeln!(
        io::stdout().lock(),
        "forgot {removed} peer{}: the next contact is a first contact again",
        if removed == 1 { "" } else { "s" }
    )?;
    Ok(())
}

/// `udpchat alias NAME TARGET`: names a pinned peer.
///
/// # Errors
/// Nothing or several peers match; a bad name; the file cannot be saved.
pub(crate) fn alias(store: &StoreArgs, name: &str, target: &str) -> anyhow::Result<()> {
    let mut contacts = Contacts::open(store.home.as_deref(), false)?;
    let fingerprint = contacts.alias(name, target)?;
    writeln!(
        io::stdout().lock(),
        "{fingerprint} is now {}: `udpchat {}` chats with it",
        name.trim(),
        name.trim()
    )?;
    Ok(())
}

/// The store of the data directory, to read; `None` when nothing was kept yet.
fn read_store(store: &StoreArgs) -> anyhow::Result<Option<Store>> {
    let home = crate::home::Home::resolve(store.home.as_deref())?;
    Ok(Store::open_read_only(home.path())?)
}

/// The conversation key of PEER (HOST:PORT): its pinned identity if any, else the address.
fn conversation_of(store: &StoreArgs, peer: &str) -> anyhow::Result<String> {
    let contacts = Contacts::open(store.home.as_deref(), false)?;
    // A name given with `udpchat alias` stands for the peer's key, as in `udpchat NAME`.
    if let Some(key) = contacts.key_named(peer.trim()) {
        return Ok(crate::journal::identity_conversation(&key));
    }
    let addr = peer
        .parse::<crate::peer_addr::PeerSpec>()
        .and_then(|spec| spec.resolve(None))
        .map_err(|e| crate::cli::UsageError(e.to_string()))?;
    let pinned = contacts.trust_for(Some(addr)).expected;
    Ok(crate::journal::conversation_key(pinned, addr))
}

fn rfc3339(at_ms: i64) -> String {
    let at = UNIX_EPOCH + Duration::from_millis(u64::try_from(at_ms).unwrap_or(0));
    humantime::format_rfc3339_millis(at).to_string()
}

fn message_json(m: &Message) -> serde_json::Value {
    json!({
        "peer": m.peer,
        "direction": if m.outgoing { "out" } else { "in" },
        "origin": m.stable.map(|s| format!("{:016x}", s.origin)),
        "number": m.stable.map(|s| s.number),
        "text": m.text,
        "nick": m.nick,
        "at": rfc3339(m.at_ms),
        "state": m.state.code(),
    })
}

fn message_line(m: &Message) -> String {
    let who = match (&m.nick, m.outgoing) {
        (Some(nick), _) => nick.clone(),
        (None, true) => "you".to_owned(),
        (None, false) => "peer".to_owned(),
    };
    let state = match m.state {
        State::Queued => "  [in the outbox]",
        State::Delivered | State::Received => "",
    };
    format!(
        "{}  {who}> {}{state}",
        rfc3339(m.at_ms),
        crate::report::printable(&m.text)
    )
}

/// `udpchat history [PEER]`: the kept conversation, oldest first.
///
/// # Errors
/// The store cannot be read (damaged, newer); a bad PEER; stdout is closed.
pub(crate) fn history(
    store: &StoreArgs,
    peer: Option<&str>,
    since: Option<Duration>,
    limit: Option<usize>,
    json: bool,
) -> anyhow::Result<()> {
    let key = peer.map(|p| conversation_of(store, p)).transpose()?;
    let Some(db) = read_store(store)? else {
        if !json {
            writeln!(io::stdout().lock(), "no history yet")?;
        }
        return Ok(());
    };
    let since_ms = since.map(|d| {
        let at = SystemTime::now()
            .checked_sub(d)
            .unwrap_or(UNIX_EPOCH)
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        i64::try_from(at.as_millis()).unwrap_or(i64::MAX)
    });
    let messages = db.history(key.as_deref(), since_ms, limit)?;
    let mut out = io::stdout().lock();
    for m in &messages {
        if json {
            writeln!(out, "{}", message_json(m))?;
        } else {
            writeln!(out, "{}", message_line(m))?;
        }
    }
    Ok(())
}

/// `udpchat outbox`: our messages not yet acknowledged.
///
/// # Errors
/// The store cannot be read; stdout is closed.
pub(crate) fn outbox(store: &StoreArgs, json: bool) -> anyhow::Result<()> {
    let messages = match read_store(store)? {
        Some(db) => db.outbox(None)?,
        None => Vec::new(),
    };
    let mut out = io::stdout().lock();
    if !json && messages.is_empty() {
        writeln!(out, "the outbox is empty")?;
    }
    for m in &messages {
        if json {
            writeln!(out, "{}", message_json(m))?;
        } else {
            writeln!(out, "{}  (to {})", message_line(m), m.peer)?;
        }
    }
    Ok(())
}

/// `udpchat completions SHELL`: the completion script for SHELL, generated from the same
/// clap definition that parses the command line, so it never lags behind an option.
///
/// # Errors
/// stdout is closed.
pub(crate) fn completions(shell: clap_complete::Shell) -> anyhow::Result<()> {
    use clap::CommandFactory;
    use clap_complete::Generator;
    let mut command = crate::cli::Cli::command();
    command.set_bin_name("udpchat");
    command.build();
    // Rendered into memory first: writing to a Vec cannot fail, and a closed stdout is
    // then an error to report rather than the panic of `clap_complete::generate`.
    let mut script = Vec::new();
    shell.try_generate(&command, &mut script)?;
    io::stdout().lock().write_all(&script)?;
    Ok(())
}

/// `udpchat man`: the manual page in roff, generated from the clap definition (the same
/// text as `--help`), for `man -l -` or to install as udpchat.1.
///
/// # Errors
/// stdout is closed.
pub(crate) fn man() -> anyhow::Result<()> {
    use clap::CommandFactory;
    let mut page = Vec::new();
    clap_mangen::Man::new(crate::cli::Cli::command()).render(&mut page)?;
    io::stdout().lock().write_all(&page)?;
    Ok(())
}
