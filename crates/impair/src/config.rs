//! The impairment knobs and their validation.

use std::fmt;
use std::time::Duration;

/// What the simulated network does to datagrams.
///
/// Probabilities are per datagram and must lie in `0.0..=1.0` (see
/// [`ImpairConfig::validate`]). The [`Default`] is a perfect network: nothing
/// is dropped, altered or delayed.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct ImpairConfig {
    /// Probability that any datagram, whatever its class, is dropped.
    pub loss: f64,
    /// Additional probability that a [`PacketClass::Data`](crate::PacketClass::Data)
    /// datagram is dropped (the original program's receive-side 20%).
    pub data_loss: f64,
    /// Additional probability that a [`PacketClass::Ack`](crate::PacketClass::Ack)
    /// datagram is dropped (the original program's ACK-side 20%).
    pub ack_loss: f64,
    /// Probability that a datagram is delivered twice; each copy draws its own
    /// jitter, so the copies may arrive in either order.
    pub duplicate: f64,
    /// Probability that a datagram is held back by an extra uniform delay in
    /// `0..=reorder_delay`, so that later datagrams can overtake it.
    pub reorder: f64,
    /// Upper bound of the extra hold-back applied to reordered datagrams.
    pub reorder_delay: Duration,
    /// Probability that a datagram is corrupted: a few bits flipped, the
    /// datagram truncated, or random bytes appended (chosen at random).
    pub corrupt: f64,
    /// Fixed one-way delay applied to every delivered datagram.
    pub delay: Duration,
    /// Extra uniform delay in `0..=jitter`, drawn independently per copy.
    pub jitter: Duration,
    /// Drop everything: a network partition.
    pub partitioned: bool,
}

impl ImpairConfig {
    /// The original Python chat's two knobs: ignore 20% of received messages
    /// (`data_loss`) and 20% of received ACKs (`ack_loss`); nothing else.
    #[must_use]
    pub fn seed_classic() -> Self {
        Self {
            data_loss: 0.2,
            ack_loss: 0.2,
            ..Self::default()
        }
    }

    /// Checks that every probability is a finite number in `0.0..=1.0`.
    ///
    /// Unvalidated configs are still usable: a probability `<= 0` or NaN acts
    /// as 0, and one `>= 1` acts as 1.
    ///
    /// # Errors
    /// [`ConfigError::InvalidProbability`] naming the first offending field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let fields = [
            ("loss", self.loss),
            ("data_loss", self.data_loss),
            ("ack_loss", self.ack_loss),
            ("duplicate", self.duplicate),
            ("reorder", self.reorder),
            ("corrupt", self.corrupt),
        ];
        match fields
            .into_iter()
            .find(|(_, value)| !(0.0..=1.0).contains(value))
        {
            Some((field, value)) => Err(ConfigError::InvalidProbability { field, value }),
            None => Ok(()),
        }
    }
}

/// Why an [`ImpairConfig`] was rejected by [`ImpairConfig::validate`].
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum ConfigError {
    /// A probability is NaN, infinite or outside `0.0..=1.0`.
    InvalidProbability {
        /// The name of the offending field, e.g. `"data_loss"`.
        field: &'static str,
        /// The rejected value.
        value: f64,
    },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidProbability { field, value } => write!(
                f,
                "impairment `{field}` must be a probability between 0 and 1, got {value}"
            ),
        }
    }
}

impl std::error::Error for ConfigError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_a_perfect_network() {
        let c = ImpairConfig::default();
        assert_eq!(c.loss + c.data_loss + c.ack_loss, 0.0);
        assert_eq!(c.duplicate + c.reorder + c.corrupt, 0.0);
        assert!(c.delay.is_zero() && c.jitter.is_zero() && c.reorder_delay.is_zero());
        assert!(!c.partitioned);
        assert_eq!(c.validate(), Ok(()));
    }

    #[test]
    fn seed_classic_has_only_the_two_twenty_percent_knobs() {
        let c = ImpairConfig::seed_classic();
        assert_eq!(
            c,
            ImpairConfig {
                data_loss: 0.2,
                ack_loss: 0.2,
                ..ImpairConfig::default()
            }
        );
        assert_eq!(c.validate(), Ok(()));
    }

    #[test]
    fn validate_accepts_bounds() {
        let c = ImpairConfig {
            loss: 0.0,
            corrupt: 1.0,
            ..ImpairConfig::default()
        };
        assert_eq!(c.validate(), Ok(()));
    }

    type Setter = fn(&mut ImpairConfig, f64);

    #[test]
    fn validate_rejects_bad_probabilities_naming_the_field() {
        let bad = [-0.1, 1.5, f64::NAN, f64::INFINITY];
        let setters: [(&str, Setter); 6] = [
            ("loss", |c, v| c.loss = v),
            ("data_loss", |c, v| c.data_loss = v),
            ("ack_loss", |c, v| c.ack_loss = v),
            ("duplicate", |c, v| c.duplicate = v),
            ("reorder", |c, v| c.reorder = v),
            ("corrupt", |c, v| c.corrupt = v),
        ];
        for (name, set) in setters {
            for value in bad {
                let mut c = ImpairConfig::default();
                set(&mut c, value);
                let Err(err) = c.validate() else {
                    panic!("{name} = {value} accepted");
                };
                assert!(
                    matches!(err, ConfigError::InvalidProbability { field, .. } if field == name)
                );
                let msg = err.to_string();
                assert!(msg.contains(&format!("`{name}`")), "{msg}");
                assert!(msg.contains(&value.to_string()), "{msg}");
            }
        }
    }
}
