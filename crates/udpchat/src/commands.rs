//! The subcommands that do not chat: `udpchat id`, `udpchat peers`, `udpchat forget`.

use std::io::{self, Write};

use serde_json::json;
use udpchat_secure::PublicKey;

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
