//! Counters of what the impairment has done.

use crate::DropCause;

/// Running totals since the [`Impairment`](crate::Impairment) was created.
///
/// Once the queue is drained,
/// `delivered == received - total_dropped() + duplicated`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ImpairStats {
    /// Datagrams handed to `handle_input`.
    pub received: u64,
    /// Dropped by the class-independent `loss`.
    pub dropped_loss: u64,
    /// Dropped by `data_loss`.
    pub dropped_data_loss: u64,
    /// Dropped by `ack_loss`.
    pub dropped_ack_loss: u64,
    /// Dropped because the network was partitioned.
    pub dropped_partition: u64,
    /// Dropped because the queue was full.
    pub dropped_overflow: u64,
    /// Datagrams that were queued twice (each counts once here).
    pub duplicated: u64,
    /// Datagrams whose bytes were altered.
    pub corrupted: u64,
    /// Datagrams held back by the reorder knob.
    pub reordered: u64,
    /// Copies released by `poll_output`.
    pub delivered: u64,
}

impl ImpairStats {
    /// Number of datagrams dropped for the given cause.
    #[must_use]
    pub const fn dropped(&self, cause: DropCause) -> u64 {
        match cause {
            DropCause::Loss => self.dropped_loss,
            DropCause::DataLoss => self.dropped_data_loss,
            DropCause::AckLoss => self.dropped_ack_loss,
            DropCause::Partition => self.dropped_partition,
            DropCause::Overflow => self.dropped_overflow,
        }
    }

    /// Number of datagrams dropped for any cause.
    #[must_use]
    pub const fn total_dropped(&self) -> u64 {
        self.dropped_loss
            + self.dropped_data_loss
            + self.dropped_ack_loss
            + self.dropped_partition
            + self.dropped_overflow
    }

    /// Counts one drop.
    pub(crate) fn record_drop(&mut self, cause: DropCause) {
        let counter = match cause {
            DropCause::Loss => &mut self.dropped_loss,
            DropCause::DataLoss => &mut self.dropped_data_loss,
            DropCause::AckLoss => &mut self.dropped_ack_loss,
            DropCause::Partition => &mut self.dropped_partition,
            DropCause::Overflow => &mut self.dropped_overflow,
        };
        *counter += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_drop_counts_per_cause_and_in_total() {
        let mut s = ImpairStats::default();
        s.record_drop(DropCause::AckLoss);
        s.record_drop(DropCause::AckLoss);
        s.record_drop(DropCause::Overflow);
        assert_eq!(s.dropped(DropCause::AckLoss), 2);
        assert_eq!(s.dropped(DropCause::Overflow), 1);
        assert_eq!(s.dropped(DropCause::Loss), 0);
        assert_eq!(s.total_dropped(), 3);
    }
}
