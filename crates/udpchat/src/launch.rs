//! Everything between the parsed command line and the running loop: the peer's
//! address, the bound socket, the epoch, the seeded simulated loss and the runtime.

use std::io::{self, IsTerminal};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Instant;

use anyhow::Context;
use udpchat_impair::Impairment;
use udpchat_proto::Session;

use crate::cli::{Settings, UsageError};
use crate::driver::{Driver, Finish, Output};
use crate::endpoint::Endpoint;
use crate::line_ui;
use crate::peer_addr::PeerSpec;
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
        return runtime.block_on(tui_driver::run(settings));
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
    let lines = line_ui::spawn_reader().context("cannot start reading stdin")?;
    runtime.block_on(async move {
        let net = endpoint(socket, peer, &settings, seed)?;
        Driver::new(net, seed, output, lines).run().await
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

/// The network side of a run, inside the runtime: a fresh random epoch per start is
/// what lets the peer tell a restart from a late datagram; the seed only drives the
/// simulated loss and is printed to reproduce it.
pub(crate) fn endpoint(
    socket: std::net::UdpSocket,
    peer: SocketAddr,
    settings: &Settings,
    seed: u64,
) -> anyhow::Result<Endpoint> {
    settings.impairment.validate()?;
    let socket =
        tokio::net::UdpSocket::from_std(socket).context("cannot register the UDP socket")?;
    let epoch = rand::random_range(1..=u64::MAX);
    let session = Session::new(settings.protocol.clone(), epoch, peer, Instant::now());
    let impairment = Impairment::new(settings.impairment.clone(), seed);
    Ok(Endpoint::new(socket, session, impairment))
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
