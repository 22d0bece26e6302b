//! Everything between the parsed command line and the running loop: the identity and
//! the pinned peers, the peer's address, the bound socket, the epoch, the seeded
//! simulated loss, the invitation code and the runtime.

use std::io::{self, IsTerminal};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

use anyhow::Context;
use rand::rngs::OsRng;
use rand::TryRngCore;
use udpchat_impair::Impairment;
use udpchat_secure::{InviteCode, SecureConfig, SessionCipher};
use udpchat_stack::{Security, Stack};

use crate::cli::{SecurityChoice, Settings, UsageError};
use crate::contacts::Contacts;
use crate::driver::{Driver, Finish, Output};
use crate::endpoint::{Endpoint, SecurityMode};
use crate::journal::{self, Journal};
use crate::line_ui;
use crate::peer_addr::PeerSpec;
use crate::report::Report;
use crate::secret::{self, Secret};
use crate::tui_driver;

/// What a run knows before its loop starts: who we are, the key, the invitation.
#[derive(Debug)]
pub(crate) struct Prepared {
    /// The identity and the pinned peers (`None` in clear text: nothing to prove).
    pub(crate) contacts: Option<Contacts>,
    /// The passphrase's key; `None` without one or in clear text.
    pub(crate) secret: Option<Secret>,
    /// The invitation this run shows (`udpchat invite`), to print at start.
    pub(crate) invitation: Option<Report>,
}

/// Starts a chat with the given settings and runs it to the end: full screen when
/// stdin and stdout are a terminal that can draw one (unless `--plain`, `--json` or
/// `TERM=dumb`), lines otherwise.
///
/// # Errors
/// A [`UsageError`] for a bad or unresolvable PEER (exit status 2); any other error
/// (the port is in use, stdout is gone, the identity cannot be read...) is a runtime
/// failure (exit status 1).
pub(crate) fn run(mut settings: Settings) -> anyhow::Result<Finish> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    // A terminal that cannot draw a screen (TERM=dumb: Emacs' shell, some CI logs)
    // gets the line interface, as less and vim fall back on it.
    let dumb = std::env::var_os("TERM").is_some_and(|t| t == "dumb");
    let terminal = io::stdin().is_terminal() && io::stdout().is_terminal() && !dumb;
    // Asked before the screen changes, so a prompt for the passphrase reads normally.
    let prepared = prepare(&mut settings)?;
    if terminal && !settings.plain && !settings.json && settings.send.is_empty() {
        return runtime.block_on(tui_driver::run(settings, prepared));
    }
    let peer_text = match &settings.peer {
        Some(p) => Some(p.clone()),
        None if settings.invite => None,
        None => Some(line_ui::ask_peer()?),
    };
    let peer_text = peer_text.map(|t| alias_to_address(prepared.contacts.as_ref(), t));
    let (socket, peer) = open(&settings, peer_text.as_deref())?;
    let seed = settings.seed.unwrap_or_else(rand::random);
    let mut output = Output::new(settings.json, settings.verbose, settings.stats);
    output.interactive = io::stdin().is_terminal();
    // The conversation's store: opened (and locked) before anything is read or sent.
    let nick = settings.nick.clone();
    let journal = open_journal(
        &mut settings,
        prepared.contacts.as_ref(),
        peer,
        nick.clone(),
    )?;
    let lines = line_ui::spawn_reader().context("cannot start reading stdin")?;
    runtime.block_on(async move {
        let (net, notices) = endpoint(
            socket,
            peer,
            &settings,
            seed,
            prepared.secret.as_ref(),
            prepared.contacts,
        )?;
        let net = match journal {
            Some(journal) => net.with_journal(journal),
            None => net,
        };
        let local = net.socket.local_addr().ok();
        let invitation = prepared.invitation.map(|r| with_address(r, local));
        Driver::new(net, seed, output, lines)
            .with_files(settings.send.clone())
            .waiting_for_files(settings.accept_files)
            .with_nick(nick)
            .with_notices(notices)
            .with_invitation(invitation)
            .run()
            .await
    })
}

/// The conversation's store for a chat with `peer`, opened (and locked) before anything
/// is read or sent, and the protocol told to persist, then acknowledge (PROTOCOL.md
/// §6b); `None` without a store (see [`store_home`]) or without a peer yet.
///
/// # Errors
/// No home, or the store's error naming the path (locked, damaged, ...).
pub(crate) fn open_journal(
    settings: &mut Settings,
    contacts: Option<&Contacts>,
    peer: Option<SocketAddr>,
    own_nick: Option<String>,
) -> anyhow::Result<Option<Journal>> {
    let journal = match (store_home(settings, contacts)?, peer) {
        (Some(home), Some(peer)) => {
            let pinned = contacts.and_then(|c| c.trust_for(Some(peer)).expected);
            let key = journal::conversation_key(pinned, peer);
            // What a first contact at this address left, before the identity was pinned.
            let earlier = pinned.map(|_| journal::address_conversation(peer));
            Some(Journal::open(&home, key, earlier.as_deref(), own_nick)?)
        }
        _ => None,
    };
    settings.protocol.durable_receive = journal.is_some();
    Ok(journal)
}

/// PEER as typed, or the last address of the pinned peer it names: a name given with
/// `udpchat alias`, else the nickname a pinned peer last sent. A name wins over a host
/// of the same name.
pub(crate) fn alias_to_address(contacts: Option<&Contacts>, text: String) -> String {
    contacts
        .and_then(|c| c.address_of(text.trim()))
        .map_or(text, |addr| addr.to_string())
}

/// The data directory whose store keeps the line interface's conversation: none with
/// `--no-history`, `--ephemeral` or `--classic` (the original program kept nothing), else
/// the one the identity lives in (created if needed).
///
/// # Errors
/// No home can be determined, or it cannot be created.
fn store_home(
    settings: &Settings,
    contacts: Option<&Contacts>,
) -> anyhow::Result<Option<std::path::PathBuf>> {
    if settings.ephemeral
        || settings.no_history
        || matches!(
            settings.security,
            SecurityChoice::Plaintext { classic: true }
        )
    {
        return Ok(None);
    }
    if let Some(home) = contacts.and_then(Contacts::home) {
        return Ok(Some(home.to_path_buf()));
    }
    let home = crate::home::Home::resolve(settings.home.as_deref())?;
    home.create()?;
    Ok(Some(home.path().to_path_buf()))
}

/// Loads what a run needs before any socket: the passphrase, the identity and the pinned
/// peers, and for `udpchat invite` a fresh code.
///
/// # Errors
/// A [`UsageError`] for a bad passphrase source; a runtime error for an unusable home.
pub(crate) fn prepare(settings: &mut Settings) -> anyhow::Result<Prepared> {
    let encrypted = matches!(settings.security, SecurityChoice::Encrypted { .. });
    let secret = load_secret(settings)?;
    let contacts = if encrypted {
        Some(Contacts::open(
            settings.home.as_deref(),
            settings.ephemeral,
        )?)
    } else {
        None
    };
    let mut invitation = None;
    if settings.invite && encrypted {
        let code = match settings.code {
            Some(code) => code,
            None => {
                let mut random = [0u8; 8];
                OsRng
                    .try_fill_bytes(&mut random)
                    .map_err(|e| anyhow::anyhow!("cannot read the system's random numbers: {e}"))?;
                InviteCode::from_random(random)
            }
        };
        settings.code = Some(code);
        invitation = Some(Report::Invitation {
            code: code.to_string(),
            command: String::new(),
        });
        if settings.peer.is_none() {
            // Nobody is expected yet: wait for the contact as long as it takes.
            settings.protocol.connect_timeout = Duration::MAX;
        }
    }
    Ok(Prepared {
        contacts,
        secret,
        invitation,
    })
}

/// Fills in the command the other person types to answer an invitation: this machine's
/// address as the routing table sees it (no packet is sent to find it), and the port.
pub(crate) fn with_address(invitation: Report, local: Option<SocketAddr>) -> Report {
    let Report::Invitation { code, .. } = invitation else {
        return invitation;
    };
    let port = local.map_or(crate::peer_addr::DEFAULT_PORT, |l| l.port());
    let host = local
        .map(|l| l.ip())
        .filter(|ip| !ip.is_unspecified())
        .or_else(outward_address)
        .map_or("THIS_MACHINE".to_owned(), |ip| match ip {
            IpAddr::V6(v6) => format!("[{v6}]"),
            IpAddr::V4(v4) => v4.to_string(),
        });
    let command = format!("udpchat {host}:{port} --code {code}");
    Report::Invitation { code, command }
}

/// The address this machine would use to reach the wider network: a UDP socket
/// "connected" to a documentation address picks its source address from the routing
/// table, and sends nothing.
fn outward_address() -> Option<IpAddr> {
    let probe = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    probe.connect("192.0.2.1:9").ok()?;
    let ip = probe.local_addr().ok()?.ip();
    (!ip.is_unspecified()).then_some(ip)
}

/// Resolves the peer (if any) and binds the local socket.
///
/// # Errors
/// A [`UsageError`] if the peer cannot be parsed or resolved; a runtime error if the
/// port cannot be bound.
pub(crate) fn open(
    settings: &Settings,
    peer_text: Option<&str>,
) -> anyhow::Result<(std::net::UdpSocket, Option<SocketAddr>)> {
    let peer = peer_text
        .map(|text| {
            text.parse::<PeerSpec>()
                .and_then(|spec| spec.resolve(settings.bind))
                .map_err(|e| UsageError(e.to_string()))
        })
        .transpose()?;
    let bind_ip = settings.bind.unwrap_or(match peer {
        Some(SocketAddr::V6(_)) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        _ => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
    });
    let local = SocketAddr::new(bind_ip, settings.port);
    let socket = std::net::UdpSocket::bind(local).map_err(|e| bind_error(&e, local))?;
    // Room for bursts: a peer that sends a whole window while this process is busy
    // writing its output must not lose datagrams in the kernel. The system caps the size
    // (net.core.rmem_max); less than asked is fine.
    let sock = socket2::SockRef::from(&socket);
    let _ = sock.set_recv_buffer_size(SOCKET_BUFFER);
    let _ = sock.set_send_buffer_size(SOCKET_BUFFER);
    socket
        .set_nonblocking(true)
        .context("cannot make the UDP socket non-blocking")?;
    Ok((socket, peer))
}

/// Socket buffer size asked for, each way.
const SOCKET_BUFFER: usize = 4 << 20;

/// Finds the passphrase and derives the key, once, before anything else starts; `None`
/// in clear-text mode.
///
/// # Errors
/// A [`UsageError`] for a missing or empty passphrase file, or `--room` without one.
pub(crate) fn load_secret(settings: &Settings) -> anyhow::Result<Option<Secret>> {
    match &settings.security {
        SecurityChoice::Plaintext { .. } => Ok(None),
        SecurityChoice::Encrypted { secret, room, .. } => {
            Ok(Some(secret::load(secret, room.as_deref())?))
        }
    }
}

/// The network side of a run, inside the runtime: a fresh random epoch per start is
/// what lets the peer tell a restart from a late datagram; the seed only drives the
/// simulated loss and is printed to reproduce it. Also returns warnings for the user
/// (clear text, a weak passphrase, a new identity).
pub(crate) fn endpoint(
    socket: std::net::UdpSocket,
    peer: Option<SocketAddr>,
    settings: &Settings,
    seed: u64,
    secret: Option<&Secret>,
    contacts: Option<Contacts>,
) -> anyhow::Result<(Endpoint, Vec<String>)> {
    settings.impairment.validate()?;
    let local = socket
        .local_addr()
        .context("cannot read the bound address")?;
    let self_chat = peer.is_some_and(|p| is_self(local, p));
    let contacts = match contacts {
        Some(c) => c,
        // Clear text proves nothing, but the endpoint still wants an identity to name.
        None => Contacts::open(None, true)?,
    };
    let (security, mode, notices) = security(settings, secret, self_chat, &contacts, peer)?;
    let socket =
        tokio::net::UdpSocket::from_std(socket).context("cannot register the UDP socket")?;
    let epoch = rand::random_range(1..=u64::MAX);
    let stack = Stack::new(
        settings.protocol.clone(),
        security,
        epoch,
        peer,
        Instant::now(),
    );
    let impairment = Impairment::new(settings.impairment.clone(), seed);
    let mut endpoint = Endpoint::new(socket, stack, impairment, mode, contacts).with_downloads(
        settings.downloads.clone(),
        settings.accept_files,
        io::stdin().is_terminal(),
    );
    if let Some(path) = &settings.trace {
        let title = format!("udpchat on {local}");
        // The peer with the higher address is the "server" in the file, so a qlog tool
        // pairs the two runs' files (both sides apply the same rule).
        let server = peer.is_some_and(|p| {
            // Our address as the peer sees it: the source the route to it would use
            // (a socket bound to 0.0.0.0 says nothing), found without sending anything.
            let ip = std::net::UdpSocket::bind((local.ip(), 0))
                .and_then(|s| s.connect(p).and_then(|()| s.local_addr()))
                .map_or(local.ip(), |a| a.ip());
            (ip, local.port()) > (p.ip(), p.port())
        });
        let tracer = crate::trace::Tracer::create(path, &title, Instant::now(), server)?;
        endpoint = endpoint.with_tracer(tracer);
    }
    // Only before the session's own verdict, which says more (and gives up messages).
    let hint_after = crate::endpoint::SILENCE_HINT_AFTER;
    if let Some(peer) = peer.filter(|_| hint_after < settings.protocol.connect_timeout) {
        endpoint = endpoint.watch_silence(peer, Instant::now(), hint_after);
    }
    Ok((endpoint, notices))
}

/// Whether `peer` is this very socket: a chat with oneself. The encryption layer cannot
/// be its own peer (its own handshake comes back as a reflection), and datagrams to
/// oneself never leave the machine, so such a chat runs in the clear.
pub(crate) fn is_self(local: SocketAddr, peer: SocketAddr) -> bool {
    let ip = peer.ip();
    local.port() == peer.port() && (ip.is_loopback() || ip.is_unspecified() || ip == local.ip())
}

/// The protection of a run, its name for the `started` report, and what to tell the
/// user about it.
fn security(
    settings: &Settings,
    secret: Option<&Secret>,
    self_chat: bool,
    contacts: &Contacts,
    peer: Option<SocketAddr>,
) -> anyhow::Result<(Security, SecurityMode, Vec<String>)> {
    let mut notices = Vec::new();
    let rekey_after = match &settings.security {
        SecurityChoice::Plaintext { classic } => {
            let why = if *classic { "--classic" } else { "--plaintext" };
            notices.push(format!(
                "{why}: messages travel unencrypted; anyone on the path can read them and inject messages"
            ));
            if secret::in_environment() {
                notices.push(format!("{} is ignored with {why}", secret::SECRET_ENV));
            }
            return Ok((Security::Plaintext, SecurityMode::Plaintext, notices));
        }
        SecurityChoice::Encrypted { rekey_after, .. } => *rekey_after,
    };
    if self_chat {
        notices.push(
            "chatting with yourself: the datagrams never leave this machine, so they are not encrypted"
                .to_owned(),
        );
        return Ok((Security::Plaintext, SecurityMode::Plaintext, notices));
    }
    notices.extend(contacts.notices.iter().cloned());
    let psk = secret.and_then(|s| s.psk.clone());
    notices.extend(secret.iter().flat_map(|s| s.warnings.iter().cloned()));
    let mode = if psk.is_some() {
        SecurityMode::Passphrase
    } else {
        SecurityMode::Encrypted
    };
    let defaults = SecureConfig::new(contacts.identity.clone());
    let config = SecureConfig {
        psk,
        code: settings.code,
        trust: contacts.trust_for(peer),
        rekey_after: rekey_after.unwrap_or(defaults.rekey_after),
        // A session must outlive its rekey by the same margin as by default.
        reject_after: rekey_after.map_or(defaults.reject_after, |r| {
            r + (defaults.reject_after - defaults.rekey_after)
        }),
        // AES-256-GCM where the processor has AES instructions: the AEAD is most of a
        // file transfer's CPU, and there it costs a fraction of ChaCha20-Poly1305's.
        cipher: SessionCipher::for_this_processor(),
        ..defaults
    };
    let mut rng_seed = [0u8; 32];
    OsRng
        .try_fill_bytes(&mut rng_seed)
        .map_err(|e| anyhow::anyhow!("cannot read the system's random numbers: {e}"))?;
    Ok((
        Security::Encrypted {
            config: Box::new(config),
            rng_seed,
        },
        mode,
        notices,
    ))
}

/// One line that names the port and says what to do about it.
fn bind_error(e: &io::Error, local: SocketAddr) -> anyhow::Error {
    let port = local.port();
    let ip = local.ip();
    match e.kind() {
        io::ErrorKind::AddrInUse => anyhow::anyhow!(
            "UDP port {port} on {ip} is already in use (is another udpchat running?); choose another with --port"
        ),
        io::ErrorKind::AddrNotAvailable => anyhow::anyhow!(
            "cannot bind UDP port {port} on {ip}: that address does not belong to this machine"
        ),
        _ => anyhow::anyhow!("cannot bind UDP port {port} on {ip}: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chat_with_this_very_socket_is_self() {
        let local: SocketAddr = "0.0.0.0:12000".parse().unwrap();
        for peer in ["127.0.0.1:12000", "0.0.0.0:12000", "[::1]:12000"] {
            assert!(is_self(local, peer.parse().unwrap()), "{peer}");
        }
        for peer in ["127.0.0.1:12001", "10.0.0.2:12000"] {
            assert!(!is_self(local, peer.parse().unwrap()), "{peer}");
        }
        let bound: SocketAddr = "10.0.0.1:12000".parse().unwrap();
        assert!(is_self(bound, "10.0.0.1:12000".parse().unwrap()));
    }

    #[test]
    fn port_in_use_is_named() {
        let taken = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let local = taken.local_addr().unwrap();
        let e = std::net::UdpSocket::bind(local).unwrap_err();
        let msg = bind_error(&e, local).to_string();
        assert!(
            msg.starts_with(&format!(
                "UDP port {} on 127.0.0.1 is already in use",
                local.port()
            )),
            "{msg}"
        );
    }
}
