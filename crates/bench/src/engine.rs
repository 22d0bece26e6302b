//! The protocol engine over real loopback sockets: two sessions, each on its own thread
//! with its own UDP socket, the sender offering messages as fast as its session accepts
//! them, the seeded impairment applied to what each side receives (as the app does).
//!
//! This is the bench's own driver (blocking sockets, one thread per side), so the figures
//! measure the protocol and the kernel's UDP path, not the line interface or terminal.

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use udpchat_impair::{ImpairConfig, Impairment, PacketClass};
use udpchat_proto::wire::{classify, Classification};
use udpchat_proto::{Config, Event, Stats};
use udpchat_secure::{Identity, Psk, SecureConfig, Trust};
use udpchat_stack::{Opened, Security, Stack, StackEvent};

/// How long a blocked receive waits before the loop looks at its timers again. The
/// shortest protocol timer is 10 ms, so 1 ms costs nothing in accuracy.
const POLL: Duration = Duration::from_millis(1);

/// A run gives up after this long, so a broken build cannot hang the bench.
const LIMIT: Duration = Duration::from_secs(300);

/// One benchmark run of the engine.
#[derive(Clone, Debug)]
pub(crate) struct Run {
    /// Session settings of both sides.
    pub(crate) config: Config,
    /// Impairment applied to datagrams each side receives.
    pub(crate) impairment: ImpairConfig,
    /// Messages sent from A to B.
    pub(crate) messages: usize,
    /// Bytes of text per message.
    pub(crate) size: usize,
    /// Seed of the impairment.
    pub(crate) seed: u64,
    /// Encrypted (with or without a passphrase key) or clear text.
    pub(crate) security: BenchSecurity,
}

/// How the two sides protect their datagrams.
#[derive(Clone, Debug, Default)]
pub(crate) enum BenchSecurity {
    /// The protocol in the clear (`--plaintext`).
    #[default]
    Plaintext,
    /// Encrypted, keyed by a passphrase key (derived once, outside the timed part).
    Passphrase(Psk),
    /// Encrypted, each side with the other's key pinned (the program's default after a
    /// first contact).
    Pinned,
}

/// Side A's epoch (and how a side knows it is A).
const A_EPOCH: u64 = 0xA11CE;
/// Side B's epoch.
const B_EPOCH: u64 = 0xB0B;

/// The long-term identity of a side, by its seed.
pub(crate) fn identity(seed: u8) -> Identity {
    Identity::from_private([seed; 32])
}

impl BenchSecurity {
    /// `seed` is this side's, `peer_seed` the other's.
    fn for_side(&self, seed: u8, peer_seed: u8) -> Security {
        let mut config = SecureConfig::new(identity(seed));
        match self {
            Self::Plaintext => return Security::Plaintext,
            Self::Passphrase(psk) => config.psk = Some(psk.clone()),
            Self::Pinned => {
                let other = identity(peer_seed).public();
                config.trust = Trust {
                    pinned: [other].into_iter().collect(),
                    expected: Some(other),
                };
            }
        }
        Security::Encrypted {
            config: Box::new(config),
            rng_seed: [seed; 32],
        }
    }
}

/// What a run measured.
#[derive(Clone, Debug, Default)]
pub(crate) struct Outcome {
    /// From the first message offered to the last one received.
    pub(crate) elapsed: Duration,
    /// Messages B showed, in order (checked).
    pub(crate) received: usize,
    /// First transmission to acknowledgement, per message.
    pub(crate) latencies: Vec<Duration>,
    /// The sender's counters.
    pub(crate) stats: Stats,
}

impl Outcome {
    /// Messages per second.
    pub(crate) fn rate(&self) -> f64 {
        self.received as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Retransmissions per message.
    pub(crate) fn retransmissions_per_message(&self) -> f64 {
        self.stats.retransmissions as f64 / self.stats.messages_delivered.max(1) as f64
    }
}

struct Side {
    socket: UdpSocket,
    stack: Stack,
    impairment: Impairment<SocketAddr>,
}

impl Side {
    fn new(run: &Run, socket: UdpSocket, peer: SocketAddr, epoch: u64) -> anyhow::Result<Self> {
        socket.set_read_timeout(Some(POLL))?;
        // Side A (epoch 0xA11CE) has identity 1, side B identity 2.
        let (seed, peer_seed) = if epoch == A_EPOCH { (1, 2) } else { (2, 1) };
        let security = run.security.for_side(seed, peer_seed);
        Ok(Self {
            socket,
            stack: Stack::new(
                run.config.clone(),
                security,
                epoch,
                Some(peer),
                Instant::now(),
            ),
            impairment: Impairment::new(run.impairment.clone(), run.seed ^ epoch),
        })
    }

    /// Sends what the stack has queued.
    fn send_all(&mut self) {
        while let Some(t) = self.stack.poll_transmit() {
            // Loopback does not refuse datagrams between two bound sockets; a full
            // socket buffer drops one, which the protocol repairs like any loss.
            let _ = self.socket.send_to(&t.payload, t.destination);
        }
    }

    /// Waits up to [`POLL`] (or the stack's next timer, if sooner) for a datagram, then takes every datagram already queued
    /// (so one acknowledgement can cover them all), feeds them through the impairment,
    /// and fires due timers.
    fn receive(&mut self, buf: &mut [u8]) {
        // Wait no longer than the stack's next timer: the pacer releases the next
        // datagrams microseconds apart, and a fixed 1 ms wait would throttle it.
        let wait = self.stack.poll_timeout().map_or(POLL, |at| {
            at.saturating_duration_since(Instant::now())
                .clamp(Duration::from_micros(1), POLL)
        });
        let _ = self.socket.set_read_timeout(Some(wait));
        if let Ok((len, from)) = self.socket.recv_from(buf) {
            self.ingest(&buf[..len], from);
            if self.socket.set_nonblocking(true).is_ok() {
                while let Ok((len, from)) = self.socket.recv_from(buf) {
                    self.ingest(&buf[..len], from);
                }
                let _ = self.socket.set_nonblocking(false);
            }
        }
        let now = Instant::now();
        while let Some((from, bytes)) = self.impairment.poll_output(now) {
            self.stack.handle_inner(now, from, &bytes);
        }
        if self.stack.poll_timeout().is_some_and(|t| t <= now) {
            self.stack.handle_timeout(now);
        }
    }

    /// Decrypts (as the program does), then applies the impairment to the protocol
    /// packet inside.
    fn ingest(&mut self, datagram: &[u8], from: SocketAddr) {
        let now = Instant::now();
        let Ok(Opened::Inner { from, bytes }) = self.stack.open(now, from, datagram) else {
            return;
        };
        let class = match classify(&bytes) {
            Classification::Data { .. } => PacketClass::Data,
            Classification::Ack { .. } => PacketClass::Ack,
            Classification::Control | Classification::Invalid => PacketClass::Control,
        };
        self.impairment.handle_input(now, class, bytes, from);
    }
}

/// Runs `run` and checks that B showed every message exactly once, in order.
pub(crate) fn measure(run: &Run) -> anyhow::Result<Outcome> {
    let a_socket = UdpSocket::bind("127.0.0.1:0")?;
    let b_socket = UdpSocket::bind("127.0.0.1:0")?;
    let (a_addr, b_addr) = (a_socket.local_addr()?, b_socket.local_addr()?);
    let mut a = Side::new(run, a_socket, b_addr, A_EPOCH)?;
    let mut b = Side::new(run, b_socket, a_addr, B_EPOCH)?;
    let done = Arc::new(AtomicBool::new(false));

    // B: acknowledges and counts until A says it has everything acknowledged.
    let b_done = Arc::clone(&done);
    let expected = run.messages;
    let receiver = std::thread::spawn(move || -> anyhow::Result<(usize, Option<Instant>)> {
        let mut buf = vec![0u8; 65_536];
        let mut next = 0usize;
        let mut last_at = None;
        let started = Instant::now();
        while !b_done.load(Ordering::Relaxed) && started.elapsed() < LIMIT {
            b.receive(&mut buf);
            while let Some(event) = b.stack.poll_event() {
                if let StackEvent::Session(Event::Received { text, .. }) = event {
                    anyhow::ensure!(
                        text.starts_with(&format!("{next:08}")),
                        "message {next} arrived out of order: {text:.8}"
                    );
                    next += 1;
                    if next == expected {
                        last_at = Some(Instant::now());
                    }
                }
            }
            b.send_all();
        }
        Ok((next, last_at))
    });

    // A: offers messages while its session accepts them; records send and ack times.
    let filler = "x".repeat(run.size.saturating_sub(8));
    let mut buf = vec![0u8; 65_536];
    let mut offered = 0usize;
    let mut sent_at = std::collections::HashMap::new();
    let mut outcome = Outcome::default();
    let start = Instant::now();
    while start.elapsed() < LIMIT {
        let now = Instant::now();
        while offered < run.messages && a.stack.can_send() {
            let text = format!("{offered:08}{filler}");
            a.stack
                .send(now, text)
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            offered += 1;
        }
        a.send_all();
        let now = Instant::now();
        while let Some(event) = a.stack.poll_event() {
            let StackEvent::Session(event) = event else {
                continue;
            };
            match event {
                Event::Sent { id, .. } => {
                    sent_at.insert(id, now);
                }
                Event::Delivered { id, .. } => {
                    if let Some(at) = sent_at.remove(&id) {
                        outcome.latencies.push(now - at);
                    }
                }
                Event::Failed { text, .. } => anyhow::bail!("message failed: {text:.8}"),
                _ => {}
            }
        }
        if offered == run.messages && a.stack.is_idle() {
            break;
        }
        a.receive(&mut buf);
    }
    done.store(true, Ordering::Relaxed);
    let (received, last_at) = receiver
        .join()
        .map_err(|_| anyhow::anyhow!("receiver thread panicked"))??;
    anyhow::ensure!(
        received == run.messages,
        "only {received} of {} messages arrived",
        run.messages
    );
    outcome.received = received;
    outcome.elapsed = last_at.context("no last message")? - start;
    outcome.stats = *a.stack.stats();
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_small_lossy_run_delivers_everything_in_order() {
        let run = Run {
            config: Config::default(),
            impairment: ImpairConfig {
                loss: 0.1,
                ..ImpairConfig::default()
            },
            messages: 300,
            size: 100,
            seed: 1,
            security: BenchSecurity::Plaintext,
        };
        let outcome = measure(&run).unwrap();
        assert_eq!(outcome.received, 300);
        assert_eq!(outcome.latencies.len(), 300);
        let encrypted = Run {
            security: BenchSecurity::Pinned,
            ..run
        };
        assert_eq!(measure(&encrypted).unwrap().received, 300);
    }
}
