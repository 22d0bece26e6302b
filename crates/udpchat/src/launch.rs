//! Everything between the parsed command line and the running loop: the peer's
//! address, the bound socket, the epoch, the seeded simulated loss and the runtime.

use std::io::{self, IsTerminal};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use rand::rngs::OsRng;
use rand::TryRngCore;
use udpchat_impair::Impairment;
use udpchat_secure::SecureConfig;
use udpchat_stack::{Security, Stack};

use crate::cli::{SecurityChoice, Settings, UsageError};
use crate::driver::{Driver, Finish, Output};
use crate::endpoint::{Endpoint, SecurityMode};
use crate::line_ui;
use crate::peer_addr::PeerSpec;
use crate::secret::{self, Secret};
use crate::tui_driver;

/// Starts a chat with the given settings and runs it to the end: full screen when
/// stdin and stdout are a terminal (unless `--plain` or `--json`), lines otherwise.
///
/// # Errors
/// A [`UsageError`] for a bad or unresolvable PEER (exit status 2); any other error
/// (the port is in use, stdout is gone, ...) is a runtime failure (exit status 1).
pub(crate) fn run(settings: Settings) -> anyhow::Result<Finish> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let terminal = io::stdin().is_terminal() && io::stdout().is_terminal();
    if terminal && !settings.plain && !settings.json {
        // Asked before the screen changes, so a prompt for the passphrase reads normally.
        let secret = load_secret(&settings)?;
        return runtime.block_on(tui_driver::run(settings, secret));
    }
    let peer_text = match &settings.peer {
        Some(p) => p.clone(),
        None => line_ui::ask_peer()?,
    };
    let (socket, peer) = open(&settings, &peer_text)?;
    let seed = settings.seed.unwrap_or_else(rand::random);
    let output = Output {
        json: settings.json,
        verbose: settings.verbose,
        stats: settings.stats,
    };
    let secret = load_secret(&settings)?;
    let lines = line_ui::spawn_reader().context("cannot start reading stdin")?;
    runtime.block_on(async move {
        let (net, notices) = endpoint(socket, peer, &settings, seed, secret.as_ref())?;
        Driver::new(net, seed, output, lines)
            .with_notices(notices)
            .run()
            .await
    })
}

/// Resolves the peer and binds the local socket.
///
/// # Errors
/// A [`UsageError`] if the peer cannot be parsed or resolved; a runtime error if the
/// port cannot be bound.
pub(crate) fn open(
    settings: &Settings,
    peer_text: &str,
) -> anyhow::Result<(std::net::UdpSocket, SocketAddr)> {
    let peer = peer_text
        .parse::<PeerSpec>()
        .and_then(|spec| spec.resolve(settings.bind))
        .map_err(|e| UsageError(e.to_string()))?;
    let bind_ip = settings.bind.unwrap_or(match peer {
        SocketAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        SocketAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    });
    let local = SocketAddr::new(bind_ip, settings.port);
    let socket = std::net::UdpSocket::bind(local).map_err(|e| bind_error(&e, local))?;
    socket
        .set_nonblocking(true)
        .context("cannot make the UDP socket non-blocking")?;
    Ok((socket, peer))
}

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
/// (clear text, a weak passphrase).
pub(crate) fn endpoint(
    socket: std::net::UdpSocket,
    peer: SocketAddr,
    settings: &Settings,
    seed: u64,
    secret: Option<&Secret>,
) -> anyhow::Result<(Endpoint, Vec<String>)> {
    settings.impairment.validate()?;
    let local = socket
        .local_addr()
        .context("cannot read the bound address")?;
    let (security, mode, notices) = security(settings, secret, is_self(local, peer))?;
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
    Ok((Endpoint::new(socket, stack, impairment, mode), notices))
}

/// Whether `peer` is this very socket: a chat with oneself. The encryption layer cannot
/// be its own peer (its own handshake comes back as a reflection), and datagrams to
/// oneself never leave the machine, so such a chat runs in the clear.
fn is_self(local: SocketAddr, peer: SocketAddr) -> bool {
    let ip = peer.ip();
    local.port() == peer.port() && (ip.is_loopback() || ip.is_unspecified() || ip == local.ip())
}

/// The protection of a run, its name for the `started` report, and what to tell the
/// user about it.
fn security(
    settings: &Settings,
    secret: Option<&Secret>,
    self_chat: bool,
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
    let psk = secret.and_then(|s| s.psk.clone());
    notices.extend(secret.iter().flat_map(|s| s.warnings.iter().cloned()));
    let mode = if psk.is_some() {
        SecurityMode::Passphrase
    } else {
        SecurityMode::CompareCode
    };
    let defaults = SecureConfig::default();
    let config = SecureConfig {
        psk,
        rekey_after: rekey_after.unwrap_or(defaults.rekey_after),
        // A session must outlive its rekey by the same margin as by default.
        reject_after: rekey_after.map_or(defaults.reject_after, |r| {
            r + (defaults.reject_after - defaults.rekey_after)
        }),
        ..defaults
    };
    let mut rng_seed = [0u8; 32];
    OsRng
        .try_fill_bytes(&mut rng_seed)
        .map_err(|e| anyhow::anyhow!("cannot read the system's random numbers: {e}"))?;
    let unix_time = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .context("the system clock is before 1970")?;
    Ok((
        Security::Encrypted {
            config,
            unix_time,
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
