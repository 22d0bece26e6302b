//! The fault matrix: named scenarios every change must survive.

use std::time::Duration;

use udpchat_impair::ImpairConfig;
use udpchat_proto::Config;

use crate::harness::{Scenario, SimSecurity};

/// Messages each side sends per seed in the matrix.
pub const MATRIX_MESSAGES: usize = 100;

/// The base link: 20 ms one way with 10 ms of jitter, so copies of a datagram can
/// overtake each other even before reordering is switched on.
fn base_link() -> ImpairConfig {
    ImpairConfig {
        delay: Duration::from_millis(20),
        jitter: Duration::from_millis(10),
        ..ImpairConfig::default()
    }
}

/// Holds 20% of datagrams back by up to 400 ms: longer than the retransmission timeout,
/// so a late original arrives after its retransmission, the case that breaks a 1-bit
/// sequence number.
fn reordering(link: ImpairConfig) -> ImpairConfig {
    ImpairConfig {
        reorder: 0.2,
        reorder_delay: Duration::from_millis(400),
        ..link
    }
}

/// Protocol settings for the fault matrix: the real defaults (adaptive timeout,
/// keepalives) with the given window, and retries and connect timeout without practical
/// limit, so that liveness, not give-up, is what the matrix checks (at 50% loss a
/// handshake can take longer than the 30 s a person waits). `tests/connect.rs` runs the
/// shipped limits instead.
pub fn sim_protocol(window: u16) -> Config {
    Config {
        max_retries: 100_000,
        connect_timeout: Duration::MAX,
        window,
        ..Config::default()
    }
}

fn scenario(name: &str, window: u16, link: ImpairConfig) -> Scenario {
    Scenario {
        name: format!("w{window} {name}"),
        protocol: sim_protocol(window),
        link,
        messages: MATRIX_MESSAGES,
        send_interval: Duration::ZERO,
        heal_at: Duration::from_secs(120),
        settle: Duration::from_secs(60),
        restart_b_after: None,
        b_starts_at: Duration::ZERO,
        goodbye: false,
        stall_b: None,
        file: 0,
        partition: None,
        security: SimSecurity::Plaintext,
    }
}

/// The fault matrix for one window size: loss 0/20/50% each way, the seed's separate
/// 20%/20% message and ACK loss, 10% duplication, reordering, 5% corruption, and all of
/// them at once.
pub fn matrix(window: u16) -> Vec<Scenario> {
    let all = |loss: f64| ImpairConfig {
        loss,
        duplicate: 0.1,
        corrupt: 0.05,
        ..reordering(base_link())
    };
    vec![
        scenario("loss 0%", window, base_link()),
        scenario(
            "loss 20%",
            window,
            ImpairConfig {
                loss: 0.2,
                ..base_link()
            },
        ),
        scenario(
            "loss 50%",
            window,
            ImpairConfig {
                loss: 0.5,
                ..base_link()
            },
        ),
        scenario(
            "seed 20% data / 20% ack",
            window,
            ImpairConfig {
                data_loss: 0.2,
                ack_loss: 0.2,
                ..base_link()
            },
        ),
        scenario(
            "dup 10% + reorder",
            window,
            ImpairConfig {
                duplicate: 0.1,
                ..reordering(base_link())
            },
        ),
        scenario(
            "corrupt 5%",
            window,
            ImpairConfig {
                corrupt: 0.05,
                ..base_link()
            },
        ),
        scenario("loss 20% + dup + reorder + corrupt", window, all(0.2)),
        scenario("loss 50% + dup + reorder + corrupt", window, all(0.5)),
    ]
}

/// Reordering and duplication without loss: the network on which the alternating bit
/// fails. Used by the teeth test with a 1-bit and a 64-bit sequence number.
pub fn reorder_and_duplicate(protocol: Config) -> Scenario {
    let link = ImpairConfig {
        duplicate: 0.1,
        ..reordering(base_link())
    };
    Scenario {
        name: "dup 10% + reorder".into(),
        protocol,
        ..scenario("", 1, link)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matrix_configs_are_valid_and_named_uniquely() {
        let m = matrix(1);
        let mut names: Vec<_> = m.iter().map(|s| s.name.clone()).collect();
        names.dedup();
        assert_eq!(names.len(), m.len());
        for s in &m {
            s.link.validate().unwrap();
        }
    }
}
