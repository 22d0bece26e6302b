//! The caller's classification of a datagram.

use crate::{DropCause, ImpairConfig};

/// What kind of datagram the caller is handing in.
///
/// The impairment knows nothing about the protocol; the caller classifies
/// each datagram so that class-specific loss (`data_loss`, `ack_loss`) can
/// reproduce the original program's separate message and ACK loss.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PacketClass {
    /// A chat message; subject to `loss` and `data_loss`.
    Data,
    /// An acknowledgement; subject to `loss` and `ack_loss`.
    Ack,
    /// Anything else (handshakes, keep-alives, garbage); subject to `loss` only.
    Control,
}

impl PacketClass {
    /// The class-specific loss probability and the cause reported if it fires.
    pub(crate) fn extra_loss(self, config: &ImpairConfig) -> Option<(f64, DropCause)> {
        match self {
            Self::Data => Some((config.data_loss, DropCause::DataLoss)),
            Self::Ack => Some((config.ack_loss, DropCause::AckLoss)),
            Self::Control => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_class_gets_only_its_own_extra_loss() {
        let c = ImpairConfig {
            data_loss: 0.25,
            ack_loss: 0.5,
            ..ImpairConfig::default()
        };
        assert_eq!(
            PacketClass::Data.extra_loss(&c),
            Some((0.25, DropCause::DataLoss))
        );
        assert_eq!(
            PacketClass::Ack.extra_loss(&c),
            Some((0.5, DropCause::AckLoss))
        );
        assert_eq!(PacketClass::Control.extra_loss(&c), None);
    }
}
