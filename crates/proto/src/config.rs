//! Settings of one session, fixed when it is created.

use std::time::Duration;

/// How many bits of the sequence number the receiver compares.
///
/// [`SeqBits::Full`] is the protocol. [`SeqBits::One`] is the seed's alternating bit,
/// kept only so the simulation can show that it delivers a late retransmission twice
/// when the network reorders and duplicates; never use it for real traffic.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SeqBits {
    /// 64-bit sequence numbers; they never wrap in practice.
    #[default]
    Full,
    /// Only the lowest bit is sent and compared (the alternating-bit protocol).
    One,
}

impl SeqBits {
    /// The value placed on the wire for sequence number `seq`.
    pub fn on_wire(self, seq: u64) -> u64 {
        match self {
            Self::Full => seq,
            Self::One => seq & 1,
        }
    }
}

/// Session settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// Retransmission timeout: how long to wait for an acknowledgement (the seed's 3 s).
    pub rto: Duration,
    /// Retransmissions of one message without an acknowledgement before it is
    /// reported failed. The default, 20 at 3 s, gives up after about a minute.
    pub max_retries: u32,
    /// Messages in flight per direction, and messages the receiver buffers ahead of a
    /// gap. 1 is stop-and-wait, as in the seed.
    pub window: u16,
    /// Sequence-number width; [`SeqBits::Full`] except in the simulation's teeth test.
    pub seq_bits: SeqBits,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            rto: Duration::from_secs(3),
            max_retries: 20,
            window: 1,
            seq_bits: SeqBits::Full,
        }
    }
}

impl Config {
    /// The seed's setup: fixed 3 s timeout, stop-and-wait.
    pub fn classic() -> Self {
        Self::default()
    }

    /// The window actually used: at least 1, and 1 with the alternating bit, which
    /// cannot tell more than two messages apart.
    pub(crate) fn effective_window(&self) -> u16 {
        match self.seq_bits {
            SeqBits::One => 1,
            SeqBits::Full => self.window.clamp(1, 64),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_seeds() {
        let c = Config::default();
        assert_eq!(c.rto, Duration::from_secs(3));
        assert_eq!(c.effective_window(), 1);
        assert_eq!(u64::from(c.max_retries) * c.rto.as_secs(), 60);
    }

    #[test]
    fn one_bit_forces_stop_and_wait_and_masks() {
        let c = Config {
            window: 8,
            seq_bits: SeqBits::One,
            ..Config::default()
        };
        assert_eq!(c.effective_window(), 1);
        assert_eq!(SeqBits::One.on_wire(5), 1);
        assert_eq!(SeqBits::Full.on_wire(5), 5);
    }
}
