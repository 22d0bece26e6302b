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
        let started = Instant::now();
        let mut x = 0u64;
        while started.elapsed() < Duration::from_millis(50) {
            x = x.wrapping_mul(31).wrapping_add(7);
        }
        assert!(x != 1);
        assert!(process_cpu().unwrap() > before);
    }

    #[test]
    fn seal_and_open_work() {
        assert!(seal_open_ns(1171, 100).unwrap() > 0.0);
    }
}
