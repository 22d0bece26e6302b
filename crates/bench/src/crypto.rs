//! What encryption costs: the same protocol runs with and without it, the CPU time they
//! take (both ends, read from `/proc/self/stat`), the handshake, and the seal-and-open
//! cost alone, without sockets.

use std::time::{Duration, Instant};

use udpchat_secure::{derive_psk, Psk, SecureConfig, SecureEndpoint, Trust};

use crate::engine::{measure, BenchSecurity, Run};

/// CPU time this process has used, user plus system, from `/proc/self/stat` (Linux);
/// `None` elsewhere. Clock ticks are 10 ms, so runs are made long enough for that.
pub(crate) fn process_cpu() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name may hold spaces; the fields after it are plain numbers.
    let after = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after ')'.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    // USER_HZ is 100 on every Linux this runs on.
    Some(Duration::from_millis((utime + stime) * 10))
}

/// One measured run: messages per second and CPU microseconds per message (both ends).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Cost {
    pub(crate) rate: f64,
    pub(crate) cpu_us: Option<f64>,
}

/// Runs `run` and measures its rate and CPU per message.
pub(crate) fn cost(run: &Run) -> anyhow::Result<Cost> {
    let cpu_before = process_cpu();
    let outcome = measure(run)?;
    let cpu = process_cpu()
        .zip(cpu_before)
        .map(|(after, before)| after.saturating_sub(before));
    Ok(Cost {
        rate: outcome.rate(),
        cpu_us: cpu.map(|c| c.as_secs_f64() * 1e6 / outcome.received.max(1) as f64),
    })
}

/// The passphrase key of the encrypted runs, and how long deriving it took (once per
/// start, by design a quarter of a second).
pub(crate) fn passphrase_key() -> anyhow::Result<(Psk, Duration)> {
    let started = Instant::now();
    let psk = derive_psk(b"bench passphrase", None).map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok((psk, started.elapsed()))
}

/// Time from start to the first message acknowledged, one message on a fresh pair:
/// the handshake (encrypted) or the HELLO round trip (clear), plus one round trip.
pub(crate) fn first_message(run: &Run) -> anyhow::Result<Duration> {
    let one = Run {
        messages: 1,
        ..run.clone()
    };
    Ok(measure(&one)?.elapsed)
}

/// Nanoseconds to seal one inner packet of `size` bytes and open it again, in memory:
/// the cryptography alone, without syscalls. Also checks every packet opens.
pub(crate) fn seal_open_ns(size: usize, count: u32) -> anyhow::Result<f64> {
    let a_addr = "127.0.0.1:1".parse()?;
    let b_addr = "127.0.0.1:2".parse()?;
    let now = Instant::now();
    let config = |me: u8, other: u8, peer| {
        let key = crate::engine::identity(other).public();
        SecureConfig {
            peer: Some(peer),
            trust: Trust {
                pinned: [key].into_iter().collect(),
                expected: Some(key),
            },
            // No rekey during the measurement.
            rekey_after_messages: u64::MAX,
            ..SecureConfig::new(crate::engine::identity(me))
        }
    };
    let mut a = SecureEndpoint::new(config(1, 2, b_addr), 1, now, [1; 32]);
    let mut b = SecureEndpoint::new(config(2, 1, a_addr), 2, now, [2; 32]);
    a.connect(now);
    for _ in 0..10 {
        while let Some(t) = a.poll_transmit() {
            let _ = b.handle_datagram(now, a_addr, &t.payload);
        }
        while let Some(t) = b.poll_transmit() {
            let _ = a.handle_datagram(now, b_addr, &t.payload);
        }
    }
    anyhow::ensure!(a.is_established(), "no session");
    let inner = vec![0x55u8; size];
    let started = Instant::now();
    for _ in 0..count {
        let sealed = a.seal(now, &inner).map_err(|e| anyhow::anyhow!("{e}"))?;
        let opened = b
            .handle_datagram(now, a_addr, &sealed.payload)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        anyhow::ensure!(opened.is_some_and(|p| p.bytes.len() == size), "lost");
    }
    Ok(started.elapsed().as_secs_f64() * 1e9 / f64::from(count))
}

/// What an initiation costs the responder, in nanoseconds each, by how far it gets:
/// refused at MAC1 (a stranger to a pinned peer), answered with a cookie (under load, or
/// any attempt at an invitation's code), answered in full (a response: the
/// Diffie-Hellman work the rate limit and the cookies protect).
pub(crate) struct ResponderCosts {
    pub(crate) mac1_reject_ns: f64,
    pub(crate) cookie_ns: f64,
    pub(crate) answer_ns: f64,
}

/// `count` initiations, each from a fresh identity and ephemeral key, keyed with the
/// open MAC1 key; `code`: offering an invitation code.
fn initiations(count: u32, to: std::net::SocketAddr, code: bool) -> Vec<Vec<u8>> {
    let now = Instant::now();
    (0..count)
        .filter_map(|i| {
            let mut key = [0x5Au8; 32];
            key[..4].copy_from_slice(&i.to_be_bytes());
            let config = SecureConfig {
                peer: Some(to),
                code: code.then(|| udpchat_secure::InviteCode::from_random([3; 8])),
                ..SecureConfig::new(udpchat_secure::Identity::from_private(key))
            };
            let mut seed = [0u8; 32];
            seed[..4].copy_from_slice(&i.to_be_bytes());
            let mut ep = SecureEndpoint::new(config, u64::from(i) + 1, now, seed);
            ep.connect(now);
            ep.poll_transmit().map(|t| t.payload)
        })
        .collect()
}

/// Measures [`ResponderCosts`] over `count` initiations each.
pub(crate) fn responder_costs(count: u32) -> anyhow::Result<ResponderCosts> {
    let me: std::net::SocketAddr = "127.0.0.1:2".parse()?;
    let from: std::net::SocketAddr = "127.0.0.1:1".parse()?;
    let now = Instant::now();
    let time = |mut responder: SecureEndpoint, batch: &[Vec<u8>]| {
        let started = Instant::now();
        for d in batch {
            let _ = responder.handle_datagram(now, from, d);
            while responder.poll_transmit().is_some() {}
        }
        started.elapsed().as_secs_f64() * 1e9 / batch.len().max(1) as f64
    };
    let identity = crate::engine::identity(9);
    let plain = initiations(count, me, false);
    let coded = initiations(count, me, true);
    // A pinned peer accepts only MAC1 keyed by its own public key.
    let pinned = SecureConfig {
        trust: Trust {
            pinned: [crate::engine::identity(8).public()].into_iter().collect(),
            expected: Some(crate::engine::identity(8).public()),
        },
        ..SecureConfig::new(identity.clone())
    };
    let mac1_reject_ns = time(SecureEndpoint::new(pinned, 1, now, [1; 32]), &plain);
    let invitation = SecureConfig {
        code: Some(udpchat_secure::InviteCode::from_random([4; 8])),
        ..SecureConfig::new(identity.clone())
    };
    let cookie_ns = time(SecureEndpoint::new(invitation, 2, now, [2; 32]), &coded);
    let open = SecureConfig {
        load_rate: u32::MAX,
        handshake_rate_per_source: u32::MAX,
        handshake_burst: u32::MAX,
        ..SecureConfig::new(identity)
    };
    let answer_ns = time(SecureEndpoint::new(open, 3, now, [3; 32]), &plain);
    Ok(ResponderCosts {
        mac1_reject_ns,
        cookie_ns,
        answer_ns,
    })
}

/// The security modes compared, with their names.
pub(crate) fn modes(psk: &Psk) -> [(&'static str, BenchSecurity); 3] {
    [
        ("clear text", BenchSecurity::Plaintext),
        ("passphrase", BenchSecurity::Passphrase(psk.clone())),
        ("pinned keys", BenchSecurity::Pinned),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_time_is_read_and_grows() {
        let Some(before) = process_cpu() else {
            return; // not Linux
        };
        // CPU time moves in ticks of 10 ms, and a loaded machine may give this thread
        // little of the wall time: work until a tick is seen, for at most 30 s.
        let started = Instant::now();
        let mut x = 0u64;
        let mut grew = false;
        while !grew && started.elapsed() < Duration::from_secs(30) {
            for _ in 0..100_000 {
                x = x.wrapping_mul(31).wrapping_add(7);
            }
            grew = process_cpu().is_some_and(|now| now > before);
        }
        assert!(x != 1);
        assert!(grew, "no CPU time counted in 30 s of work");
    }

    #[test]
    fn responder_costs_are_measured_in_order() {
        let c = responder_costs(20).unwrap();
        eprintln!(
            "responder: {:.1} µs MAC1, {:.1} µs cookie, {:.1} µs answer",
            c.mac1_reject_ns / 1e3,
            c.cookie_ns / 1e3,
            c.answer_ns / 1e3
        );
        // Refusing at MAC1 is cheaper than a full answer, whatever the machine.
        assert!(c.mac1_reject_ns > 0.0 && c.mac1_reject_ns < c.answer_ns);
        assert!(c.cookie_ns > 0.0);
    }

    #[test]
    fn seal_and_open_work() {
        assert!(seal_open_ns(1171, 100).unwrap() > 0.0);
    }
}
