//! What the impairment decided for one datagram.

use std::fmt;
use std::time::Duration;

/// Why a datagram was dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DropCause {
    /// The class-independent `loss` probability fired.
    Loss,
    /// The `data_loss` probability fired on a `Data` datagram.
    DataLoss,
    /// The `ack_loss` probability fired on an `Ack` datagram.
    AckLoss,
    /// The network is `partitioned`.
    Partition,
    /// The queue was full (or the release time unrepresentable), so the
    /// datagram was dropped to keep memory bounded.
    Overflow,
}

impl DropCause {
    /// A stable snake_case name, suitable for event logs.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Loss => "loss",
            Self::DataLoss => "data_loss",
            Self::AckLoss => "ack_loss",
            Self::Partition => "partition",
            Self::Overflow => "overflow",
        }
    }
}

impl fmt::Display for DropCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The decision taken for one datagram by
/// [`Impairment::handle_input`](crate::Impairment::handle_input), so that the
/// caller can report what the simulated network did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fate {
    /// `Some` if the datagram was dropped; then `copies` is 0.
    pub dropped: Option<DropCause>,
    /// How many copies were queued for delivery: 0, 1 or 2.
    pub copies: u8,
    /// Whether the bytes were altered (all copies carry the same bytes).
    pub corrupted: bool,
    /// Whether the reorder knob fired for this datagram.
    pub reordered: bool,
    /// The reorder hold-back added on top of `delay` and jitter.
    pub extra_delay: Duration,
}

impl Fate {
    /// The fate of a dropped datagram.
    pub(crate) const fn dropped(cause: DropCause) -> Self {
        Self {
            dropped: Some(cause),
            copies: 0,
            corrupted: false,
            reordered: false,
            extra_delay: Duration::ZERO,
        }
    }

    /// True if the datagram will never come out of `poll_output`.
    #[must_use]
    pub const fn is_dropped(&self) -> bool {
        self.dropped.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drop_causes_have_stable_names() {
        let names: Vec<String> = [
            DropCause::Loss,
            DropCause::DataLoss,
            DropCause::AckLoss,
            DropCause::Partition,
            DropCause::Overflow,
        ]
        .iter()
        .map(ToString::to_string)
        .collect();
        assert_eq!(
            names,
            ["loss", "data_loss", "ack_loss", "partition", "overflow"]
        );
    }

    #[test]
    fn dropped_fate_has_no_copies() {
        let f = Fate::dropped(DropCause::Partition);
        assert!(f.is_dropped());
        assert_eq!(f.copies, 0);
    }
}
