//! Settings of one session, fixed when it is created.

use std::time::Duration;

use crate::rtt::RtoPolicy;
use crate::wire::{MAX_DATAGRAM, MAX_NICK_LEN, MAX_TEXT_LEN};

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

/// The largest window: what the longest selective-acknowledgement bitmap (255 bytes)
/// covers. A window this wide keeps a fast sender busy while one loss is repaired (a
/// round trip of messages on loopback is about a thousand).
pub const MAX_WINDOW: u16 = 2040;

/// The default window, chosen from the benchmarks (docs/BENCHMARKS.md): the largest the
/// acknowledgement bitmap covers, so a burst of messages shares datagrams and round trips.
pub const DEFAULT_WINDOW: u16 = MAX_WINDOW;

/// Session settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// How the retransmission timeout is chosen: adaptive (RFC 6298) by default, fixed
    /// with `--timeout` and in classic mode (the seed's 3 s).
    pub rto: RtoPolicy,
    /// Retransmissions of one message without an acknowledgement before it is
    /// reported failed. With the default policy, 20 gives up after about a minute.
    pub max_retries: u32,
    /// Messages in flight per direction, and messages the receiver buffers ahead of a
    /// gap. 1 is stop-and-wait, as in the seed; at most [`MAX_WINDOW`].
    pub window: u16,
    /// Sequence-number width; [`SeqBits::Full`] except in the simulation's teeth test.
    pub seq_bits: SeqBits,
    /// Messages that may wait to be sent; `send` refuses more (back-pressure), so memory
    /// stays bounded however fast the user types.
    pub send_queue: usize,
    /// Ping the peer after this much silence, to tell whether it is still there and keep
    /// a fresh round-trip estimate. `None` sends no keepalives (classic mode).
    pub keepalive: Option<Duration>,
    /// Silence after which the peer is reported unreachable.
    pub peer_timeout: Duration,
    /// How long to wait for the peer's first answer before saying that nobody answers.
    ///
    /// Until the peer's run (epoch) is known, messages simply wait: nothing is sent, so
    /// no retransmission is spent. Only once nobody has answered for this long does the
    /// session report [`Event::NoAnswer`](crate::Event::NoAnswer) and fail what is
    /// queued, so a message typed before the other side is started is not lost to a
    /// short retransmission timeout (`--timeout 50ms` with 20 retries is a second). It
    /// keeps trying afterwards, with the next verdict this much later. 30 s leaves time
    /// to start the other side. Values below 1 ms count as 1 ms, so a zero cannot make
    /// the verdict fire in a loop; one too long for the clock (`Duration::MAX`) means
    /// waiting for ever.
    pub connect_timeout: Duration,
    /// Largest packet this session builds, in bytes: [`MAX_DATAGRAM`] in the clear, less
    /// when a layer below adds its own bytes (encryption: 1171), so the datagram on the
    /// wire still fits 1200. The longest text of one DATA frame shrinks by the same
    /// amount ([`Session::max_text_len`](crate::Session::max_text_len)); a longer
    /// message goes in parts. Clamped to
    /// [`MIN_DATAGRAM`]..=[`MAX_DATAGRAM`].
    pub max_datagram: usize,
    /// How long the receiver may hold an acknowledgement to cover more messages with it
    /// (delayed ACKs). 0, the default, acknowledges every batch of datagrams at once; a
    /// gap, a SKIP or a second packet still waiting is acknowledged at once whatever this
    /// says. What the peer's timers must allow for is advertised in every ACK
    /// ([`Config::max_ack_delay`]).
    pub ack_delay: Duration,
    /// Persist, then acknowledge: no ACK covers a received message until the caller
    /// has made it durable and said so with
    /// [`Session::confirm_durable`](crate::Session::confirm_durable). A driver with a
    /// store sets it, so a message the peer believes delivered is never lost to a crash
    /// (PROTOCOL.md §6b). Off by default: without a store there is nothing to wait for.
    pub durable_receive: bool,
    /// The longest message, in bytes of UTF-8, this side sends; a longer one is refused
    /// when it is queued ([`SendError::TooLong`](crate::SendError::TooLong)), with its
    /// text still the caller's. Longer than one datagram's text, a message travels as
    /// consecutive parts (PROTOCOL.md §3, kind 4). At most, and by default,
    /// [`MAX_MESSAGE_LEN`]: what every receiver accepts, so a message this side sends is
    /// never refused by the peer after it was acknowledged.
    pub max_message_len: usize,
}

/// The longest message the protocol carries (PROTOCOL.md §3, kind 4): 16 MiB. Every
/// receiver puts together any message up to this, and refuses a longer one, so a peer
/// cannot make it hold more; it is also the default [`Config::max_message_len`].
pub const MAX_MESSAGE_LEN: usize = 16 << 20;

/// What a receiver adds to its own ACK delay when it advertises `max_ack_delay`: the
/// process may be descheduled between reading a datagram and answering it. A peer's
/// retransmission timer allows for this much, so a busy machine does not make it resend.
pub const SCHEDULING_ALLOWANCE: Duration = Duration::from_millis(5);

/// The smallest `max_datagram` a session accepts: room for the headers, a SKIP frame, an
/// ACK reserve and a 64-byte nickname, so every payload kind still fits one packet.
pub const MIN_DATAGRAM: usize = MAX_DATAGRAM - MAX_TEXT_LEN + MAX_NICK_LEN;

impl Default for Config {
    fn default() -> Self {
        Self {
            rto: RtoPolicy::adaptive(),
            max_retries: 20,
            window: DEFAULT_WINDOW,
            seq_bits: SeqBits::Full,
            send_queue: 16_384,
            keepalive: Some(Duration::from_secs(5)),
            peer_timeout: Duration::from_secs(15),
            connect_timeout: Duration::from_secs(30),
            max_datagram: MAX_DATAGRAM,
            ack_delay: Duration::ZERO,
            durable_receive: false,
            max_message_len: MAX_MESSAGE_LEN,
        }
    }
}

impl Config {
    /// The seed's setup: fixed 3 s timeout, stop-and-wait, no keepalives (and the default
    /// 30 s connect timeout).
    pub fn classic() -> Self {
        Self {
            rto: RtoPolicy::Fixed(Duration::from_secs(3)),
            window: 1,
            keepalive: None,
            ..Self::default()
        }
    }

    /// The datagram limit actually used, within [`MIN_DATAGRAM`]..=[`MAX_DATAGRAM`].
    pub(crate) fn effective_max_datagram(&self) -> usize {
        self.max_datagram.clamp(MIN_DATAGRAM, MAX_DATAGRAM)
    }

    /// The longest text one DATA frame carries under this configuration, in bytes of
    /// UTF-8: [`MAX_TEXT_LEN`] less what the smaller datagram limit takes away.
    pub fn max_text_len(&self) -> usize {
        MAX_TEXT_LEN - (MAX_DATAGRAM - self.effective_max_datagram())
    }

    /// The longest this side holds an acknowledgement, as advertised to the peer: the
    /// configured [`ack_delay`](Self::ack_delay) plus [`SCHEDULING_ALLOWANCE`], in whole
    /// milliseconds, at most 255.
    pub fn max_ack_delay(&self) -> Duration {
        (self.ack_delay + SCHEDULING_ALLOWANCE).min(Duration::from_millis(255))
    }

    /// The connect timeout actually used: at least 1 ms (see [`Config::connect_timeout`]).
    pub(crate) fn effective_connect_timeout(&self) -> Duration {
        self.connect_timeout.max(Duration::from_millis(1))
    }

    /// The window actually used: 1 to [`MAX_WINDOW`], and 1 with the alternating bit,
    /// which cannot tell more than two messages apart.
    pub(crate) fn effective_window(&self) -> u16 {
        match self.seq_bits {
            SeqBits::One => 1,
            SeqBits::Full => self.window.clamp(1, MAX_WINDOW),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classic_is_the_seeds_setup() {
        let c = Config::classic();
        assert_eq!(c.rto, RtoPolicy::Fixed(Duration::from_secs(3)));
        assert_eq!(c.effective_window(), 1);
        assert_eq!(c.keepalive, None);
        // 20 retransmissions 3 s apart: the message fails after about a minute.
        assert_eq!(c.max_retries * 3, 60);
        assert_eq!(c.connect_timeout, Duration::from_secs(30));
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

    #[test]
    fn window_is_clamped_to_what_the_bitmap_covers() {
        let c = Config {
            window: 3000,
            ..Config::default()
        };
        assert_eq!(c.effective_window(), MAX_WINDOW);
    }
}
