//! Memory figures from the kernel's own accounting of this process (Linux /proc).

use std::net::SocketAddr;
use std::time::Instant;

use udpchat_proto::{Config, Session};

/// Resident set size and its peak, in KiB, from /proc/self/status.
pub(crate) fn rss_kib() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Grows RSS by `sessions` connected, idle sessions, and returns KiB per session.
pub(crate) fn per_idle_peer(sessions: usize) -> f64 {
    let now = Instant::now();
    let (before, _) = rss_kib();
    let mut kept = Vec::with_capacity(sessions);
    for i in 0..sessions {
        let port = u16::try_from(i % 60_000).unwrap_or(0);
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let mut a = Session::new(Config::default(), 2 * i as u64 + 1, addr, now);
        let mut b = Session::new(Config::default(), 2 * i as u64 + 2, addr, now);
        // Connect the pair so each holds a peer epoch and the state of a live chat.
        for _ in 0..2 {
            while let Some(t) = a.poll_transmit() {
                b.handle_datagram(now, addr, &t.payload);
            }
            while let Some(t) = b.poll_transmit() {
                a.handle_datagram(now, addr, &t.payload);
            }
        }
        while a.poll_event().is_some() {}
        kept.push(a);
    }
    let (after, _) = rss_kib();
    let per = after.saturating_sub(before) as f64 / sessions as f64;
    drop(kept);
    per
}

/// RSS growth in KiB with `messages` 100-byte messages queued in one session.
pub(crate) fn queued(messages: usize) -> (u64, u64) {
    let now = Instant::now();
    let (before, _) = rss_kib();
    let config = Config {
        send_queue: messages + 1,
        ..Config::default()
    };
    let mut session = Session::new(config, 1, SocketAddr::from(([127, 0, 0, 1], 9)), now);
    let text = "x".repeat(100);
    for _ in 0..messages {
        let _ = session.send(now, text.clone());
    }
    let (after, peak) = rss_kib();
    drop(session);
    (after.saturating_sub(before), peak)
}
