//! The wire format: one UDP datagram is one [`Packet`], a fixed header followed by
//! one or more [`Frame`]s and a CRC-32C trailer.
//!
//! ```text
//! offset  size  field
//!      0     2  magic      0x55 0x43 ("UC")
//!      2     1  version    0x07
//!      3     1  flags      reserved, sent as 0, a packet with any bit set is rejected
//!      4     8  src_epoch  sender's session id, big-endian, never 0
//!     12     8  dst_epoch  the receiver's session id as the sender knows it, 0 = unknown
//!     20     …  frames     at least one
//!    N-4     4  crc32c     CRC-32C (Castagnoli) of bytes 0..N-4, big-endian; zeros
//!                          inside the encrypted transport ([`Trailer`])
//! ```
//!
//! `docs/PROTOCOL.md` is the normative description; the tests at the bottom of this file
//! check its hex vectors byte for byte.
//!
//! Decoding is total: any byte string yields either a packet or a [`DecodeError`],
//! never a panic (checked by proptest here and by the fuzz target).

use crate::error::DecodeError;

/// The two bytes every packet starts with, "UC".
pub const MAGIC: [u8; 2] = *b"UC";
/// The protocol version this crate speaks.
pub const VERSION: u8 = 7;
/// Bytes before the first frame.
pub const HEADER_LEN: usize = 20;
/// Bytes of the CRC-32C trailer.
pub const CRC_LEN: usize = 4;
/// Largest datagram either side ever sends or accepts. 1200 bytes passes every path
/// that carries IPv6 or QUIC without IP fragmentation.
pub const MAX_DATAGRAM: usize = 1200;
/// Encoded size of a HELLO frame.
pub const HELLO_FRAME_LEN: usize = 1;
/// Encoded size of an ACK frame with an empty selective-acknowledgement bitmap: type,
/// cumulative, window, ack delay, max ack delay, duplicate, bitmap length.
pub const ACK_FRAME_MIN_LEN: usize = 1 + 8 + 2 + 4 + 1 + 8 + 1;
/// Longest selective-acknowledgement bitmap, in bytes: 2040 messages, as long as the
/// one-byte length says.
pub const SACK_MAX_BYTES: usize = 255;
/// Room kept in every data packet for an ACK with a bitmap of up to 7 bytes, should a
/// later version piggyback acknowledgements on data.
pub const ACK_RESERVE: usize = ACK_FRAME_MIN_LEN + 7;
/// Encoded size of a SKIP frame.
pub const SKIP_FRAME_LEN: usize = 1 + 8;
/// Encoded size of a PING or PONG frame.
pub const PING_FRAME_LEN: usize = 1 + 8;
/// Encoded size of a CLOSE frame.
pub const CLOSE_FRAME_LEN: usize = 1 + 1;
/// Encoded size of a DATA frame without its payload: type, seq, after, kind, length.
pub const DATA_FRAME_OVERHEAD: usize = 1 + 8 + 2 + 1 + 2;
/// Longest nickname in bytes of UTF-8.
pub const MAX_NICK_LEN: usize = 64;
/// Longest message text in bytes of UTF-8: it fits in one datagram together with an
/// ACK and a SKIP frame, so a sender never has to split a packet to make room.
pub const MAX_TEXT_LEN: usize =
    MAX_DATAGRAM - HEADER_LEN - CRC_LEN - ACK_RESERVE - SKIP_FRAME_LEN - DATA_FRAME_OVERHEAD;

/// Frame type bytes.
mod frame_type {
    pub(super) const HELLO: u8 = 0x01;
    pub(super) const DATA: u8 = 0x02;
    pub(super) const ACK: u8 = 0x03;
    pub(super) const SKIP: u8 = 0x04;
    pub(super) const PING: u8 = 0x05;
    pub(super) const PONG: u8 = 0x06;
    pub(super) const CLOSE: u8 = 0x07;
}

/// Payload kind bytes of DATA frames.
mod payload_kind {
    pub(super) const TEXT: u8 = 0;
    pub(super) const NICK: u8 = 1;
    pub(super) const DONE: u8 = 2;
    pub(super) const NUMBERED: u8 = 3;
    pub(super) const PART: u8 = 4;
    pub(super) const FILE_OFFER: u8 = 5;
    pub(super) const FILE_ACCEPT: u8 = 6;
    pub(super) const FILE_CANCEL: u8 = 7;
    pub(super) const FILE_CHUNK: u8 = 8;
    pub(super) const FILE_STORED: u8 = 9;
}

/// Longest file name an offer carries, in bytes of UTF-8 (a relative path, `/`-separated).
pub const MAX_FILE_NAME_LEN: usize = 1024;
/// Bytes of a file chunk's header (transfer and offset) before its data.
pub const CHUNK_HEADER_LEN: usize = 16;
/// Bytes of an offer before its name: transfer, size and the BLAKE3 hash.
pub const OFFER_HEADER_LEN: usize = 8 + 8 + 32;

/// A frame of the file transfer protocol (PROTOCOL.md §6c), carried as a DATA payload in
/// the files [`Stream`], delivered in its own order. Chunks wait behind the chat at the
/// sender and leave part of the window to it, and the receiver shows chat without
/// waiting for them, so a typed message never queues behind file data.
#[derive(Clone, PartialEq, Eq)]
pub enum FileFrame {
    /// Kind 5: "may I send you this file?" `transfer` is the sender's name for the
    /// transfer, `hash` the BLAKE3 of the whole file, `name` a relative `/`-separated path.
    Offer {
        /// The transfer's number, chosen by the sender, unique among its transfers.
        transfer: u64,
        /// Bytes in the file.
        size: u64,
        /// BLAKE3 of the file's bytes: checked by the receiver when the last byte lands.
        hash: [u8; 32],
        /// The file's name, relative, `/`-separated; the receiver makes it safe.
        name: String,
    },
    /// Kind 6: "send it from byte `from`": 0, or what an interrupted download already holds.
    Accept {
        /// The offer's transfer.
        transfer: u64,
        /// The first byte wanted.
        from: u64,
    },
    /// Kind 7: either side ends the transfer without the file.
    Cancel {
        /// The transfer.
        transfer: u64,
        /// Why.
        reason: CancelReason,
    },
    /// Kind 8: file bytes from `offset` on. Chunks of one transfer go in order.
    Chunk {
        /// The transfer.
        transfer: u64,
        /// Position of the first byte in the file.
        offset: u64,
        /// The bytes: shared, so the copy the sender keeps for retransmission and the
        /// one it puts on the wire are one allocation (a chunk is most of a datagram).
        data: std::sync::Arc<[u8]>,
    },
    /// Kind 9: the receiver checked the whole file against the offer's hash and it is
    /// under its final name: the transfer is complete.
    Stored {
        /// The transfer.
        transfer: u64,
    },
}

/// Why a transfer was cancelled (kind 7's `reason` byte).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CancelReason {
    /// 0: the receiver declined the offer.
    Declined,
    /// 1: the sender stopped it (the person cancelled, or the file cannot be read).
    Stopped,
    /// 2: the file changed while it was being sent.
    Changed,
    /// 3: the receiver cannot store it (disk full, no permission).
    CannotStore,
    /// 4: the whole file arrived and does not match the offer's hash.
    Damaged,
    /// 5: the transfer is not known here (the other side restarted without it).
    Unknown,
    /// A reason from a later version.
    Other(u8),
}

impl CancelReason {
    /// The byte on the wire.
    pub fn to_wire(self) -> u8 {
        match self {
            Self::Declined => 0,
            Self::Stopped => 1,
            Self::Changed => 2,
            Self::CannotStore => 3,
            Self::Damaged => 4,
            Self::Unknown => 5,
            Self::Other(b) => b,
        }
    }

    /// The reason a byte names.
    pub fn from_wire(b: u8) -> Self {
        match b {
            0 => Self::Declined,
            1 => Self::Stopped,
            2 => Self::Changed,
            3 => Self::CannotStore,
            4 => Self::Damaged,
            5 => Self::Unknown,
            other => Self::Other(other),
        }
    }

    /// What it means, for a person.
    pub fn describe(self) -> &'static str {
        match self {
            Self::Declined => "declined",
            Self::Stopped => "stopped by the sender",
            Self::Changed => "the file changed while it was being sent",
            Self::CannotStore => "the receiver cannot store it",
            Self::Damaged => "it arrived damaged",
            Self::Unknown => "the other side does not know this transfer",
            Self::Other(_) => "cancelled",
        }
    }
}

/// A chunk shows its length, not its bytes: traces and failure reports stay readable.
impl std::fmt::Debug for FileFrame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Offer {
                transfer,
                size,
                hash,
                name,
            } => f
                .debug_struct("Offer")
                .field("transfer", transfer)
                .field("size", size)
                .field("hash", &hex_prefix(hash))
                .field("name", name)
                .finish(),
            Self::Accept { transfer, from } => f
                .debug_struct("Accept")
                .field("transfer", transfer)
                .field("from", from)
                .finish(),
            Self::Cancel { transfer, reason } => f
                .debug_struct("Cancel")
                .field("transfer", transfer)
                .field("reason", reason)
                .finish(),
            Self::Chunk {
                transfer,
                offset,
                data,
            } => f
                .debug_struct("Chunk")
                .field("transfer", transfer)
                .field("offset", offset)
                .field("len", &data.len())
                .finish(),
            Self::Stored { transfer } => f
                .debug_struct("Stored")
                .field("transfer", transfer)
                .finish(),
        }
    }
}

/// The first bytes of a hash in hex, for a person.
fn hex_prefix(hash: &[u8; 32]) -> String {
    hash.iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect::<String>()
        + "…"
}

impl FileFrame {
    /// The transfer it belongs to.
    pub fn transfer(&self) -> u64 {
        match self {
            Self::Offer { transfer, .. }
            | Self::Accept { transfer, .. }
            | Self::Cancel { transfer, .. }
            | Self::Chunk { transfer, .. }
            | Self::Stored { transfer } => *transfer,
        }
    }

    fn kind(&self) -> u8 {
        match self {
            Self::Offer { .. } => payload_kind::FILE_OFFER,
            Self::Accept { .. } => payload_kind::FILE_ACCEPT,
            Self::Cancel { .. } => payload_kind::FILE_CANCEL,
            Self::Chunk { .. } => payload_kind::FILE_CHUNK,
            Self::Stored { .. } => payload_kind::FILE_STORED,
        }
    }

    /// Bytes of the payload on the wire (the DATA frame's `len`).
    pub fn wire_len(&self) -> usize {
        match self {
            Self::Offer { name, .. } => OFFER_HEADER_LEN + name.len(),
            Self::Accept { .. } => 16,
            Self::Cancel { .. } => 9,
            Self::Chunk { data, .. } => CHUNK_HEADER_LEN + data.len(),
            Self::Stored { .. } => 8,
        }
    }

    fn write_to(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.transfer().to_be_bytes());
        match self {
            Self::Offer {
                size, hash, name, ..
            } => {
                out.extend_from_slice(&size.to_be_bytes());
                out.extend_from_slice(hash);
                out.extend_from_slice(name.as_bytes());
            }
            Self::Accept { from, .. } => out.extend_from_slice(&from.to_be_bytes()),
            Self::Cancel { reason, .. } => out.push(reason.to_wire()),
            Self::Chunk { offset, data, .. } => {
                out.extend_from_slice(&offset.to_be_bytes());
                out.extend_from_slice(data);
            }
            Self::Stored { .. } => {}
        }
    }

    /// Decodes kinds 5–9; `None` for any other kind.
    fn decode(kind: u8, raw: &[u8]) -> Option<Result<Self, DecodeError>> {
        if !(payload_kind::FILE_OFFER..=payload_kind::FILE_STORED).contains(&kind) {
            return None;
        }
        let mut r = Reader { bytes: raw };
        Some((|| {
            let transfer = r.u64()?;
            let frame = match kind {
                payload_kind::FILE_OFFER => {
                    let size = r.u64()?;
                    let mut hash = [0u8; 32];
                    hash.copy_from_slice(r.take(32)?);
                    let name = r.take(r.bytes.len())?;
                    if name.len() > MAX_FILE_NAME_LEN {
                        return Err(DecodeError::TextTooLong { len: name.len() });
                    }
                    let name = std::str::from_utf8(name)
                        .map_err(|_| DecodeError::InvalidUtf8)?
                        .to_owned();
                    Self::Offer {
                        transfer,
                        size,
                        hash,
                        name,
                    }
                }
                payload_kind::FILE_ACCEPT => Self::Accept {
                    transfer,
                    from: r.u64()?,
                },
                payload_kind::FILE_CANCEL => Self::Cancel {
                    transfer,
                    reason: CancelReason::from_wire(r.u8()?),
                },
                payload_kind::FILE_CHUNK => {
                    let offset = r.u64()?;
                    Self::Chunk {
                        transfer,
                        offset,
                        data: r.take(r.bytes.len())?.into(),
                    }
                }
                _ => Self::Stored { transfer },
            };
            // Fixed-size kinds carry nothing more; bytes there would be lost.
            if !r.bytes.is_empty() {
                return Err(DecodeError::TextTooLong { len: raw.len() });
            }
            Ok(frame)
        })())
    }
}

/// Bytes of a numbered text's [`StableId`] before its text (kind 3).
pub const STABLE_ID_LEN: usize = 16;

/// A message's identity across runs of both sides (PROTOCOL.md §6b): the sender's store
/// (`origin`, random, chosen when that store was made) and the message's number in it,
/// one more for every message to this peer. A sender whose store was lost starts a new
/// origin, so its new numbers are never taken for old ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StableId {
    /// The sender's store.
    pub origin: u64,
    /// The message's number in it.
    pub number: u64,
}

/// One decoded datagram.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Packet {
    /// The sender's epoch: a random non-zero id chosen once per process start.
    pub src_epoch: u64,
    /// The receiver's epoch as the sender believes it, or 0 when it does not know it yet.
    pub dst_epoch: u64,
    /// The frames, in order; never empty in a valid packet.
    pub frames: Vec<Frame>,
}

/// A unit of protocol meaning inside a packet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame {
    /// "I am `src_epoch`; I believe you are `dst_epoch`." Answered with a HELLO when the
    /// receiver's epoch differs from `dst_epoch`, so both sides learn each other's epoch.
    Hello,
    /// One message of the reliable stream.
    Data {
        /// Message sequence number within the (src_epoch → dst_epoch) stream.
        seq: u64,
        /// How far back, in sequence numbers, the frame this one is delivered after:
        /// the previous frame of its own stream (chat, or files), so a chat message
        /// never waits for a lost file chunk. 0 means after every earlier frame (the
        /// order of versions before 7); a distance reaching below what the receiver
        /// has delivered means nothing to wait for (PROTOCOL.md §6).
        after: u16,
        /// What it carries.
        payload: Payload,
    },
    /// Acknowledges the stream flowing the other way.
    Ack(AckFrame),
    /// "I gave up on every message below `below`": the receiver stops waiting for them.
    Skip {
        /// First sequence number still to be expected.
        below: u64,
    },
    /// "Are you there?": answered at once with a PONG carrying the same token. Sent while
    /// the peer is silent, to notice when it becomes unreachable and to measure the
    /// round trip while no messages flow.
    Ping {
        /// Chosen by the sender; echoed in the PONG.
        token: u64,
    },
    /// The answer to a PING.
    Pong {
        /// The PING's token.
        token: u64,
    },
    /// "This run is leaving; send it nothing more." Not retransmitted: it travels with the
    /// sender's last ACK, so the peer learns both what arrived and that nothing more will
    /// be acknowledged.
    Close {
        /// Why.
        reason: CloseReason,
    },
}

/// Why a peer sent CLOSE.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloseReason {
    /// 0: the goodbye is complete: both streams ended with DONE and ours was
    /// acknowledged. Nothing the peer sent is left unconfirmed.
    Finished,
    /// 1: the person left (Ctrl-C, `/quit`) before the goodbye completed. The ACK before
    /// this frame says what was shown; anything else of the peer's was not.
    Left,
    /// A reason this version does not know; taken as `Left`.
    Unknown(u8),
}

impl CloseReason {
    fn to_wire(self) -> u8 {
        match self {
            Self::Finished => 0,
            Self::Left => 1,
            Self::Unknown(b) => b,
        }
    }

    fn from_wire(b: u8) -> Self {
        match b {
            0 => Self::Finished,
            1 => Self::Left,
            other => Self::Unknown(other),
        }
    }
}

/// What a DATA frame carries, told apart by its kind byte. Every kind shares one
/// sequence space (for acknowledgement and the window) and is delivered in the order of
/// its [`Stream`]: a nickname change lands exactly between the messages typed before and
/// after it, and a file chunk lost on the way holds back no chat message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Payload {
    /// Kind 0: a chat message, UTF-8, at most [`MAX_TEXT_LEN`] bytes.
    Text(String),
    /// Kind 1: the sender's nickname from now on, UTF-8, at most [`MAX_NICK_LEN`] bytes.
    Nick(String),
    /// Kind 2, empty: the end of the sender's stream (its input ended). Nothing follows
    /// it; acknowledging it confirms every message before it.
    Done,
    /// Kind 3: a chat message with its [`StableId`]: `origin` (u64), `number` (u64), then
    /// the text, UTF-8, at most [`MAX_TEXT_LEN`] − [`STABLE_ID_LEN`] bytes. The same
    /// message keeps its id when it is sent again after either side restarted, so a
    /// receiver that remembers the last id it showed shows each message once
    /// (PROTOCOL.md §6b).
    Numbered {
        /// The message's identity across runs.
        id: StableId,
        /// The text.
        text: String,
    },
    /// Kind 4: the beginning of a longer message, UTF-8 cut at a character boundary: the
    /// message is every consecutive part and the text or numbered text that ends it
    /// (PROTOCOL.md §3). Lets a message of any length travel in the chat stream.
    Part(String),
    /// Kinds 5–9: file transfer (PROTOCOL.md §6c).
    File(FileFrame),
    /// A kind this version does not know: acknowledged and ordered like any other, then
    /// ignored, so a newer peer's additions never stall the stream.
    Unknown {
        /// The kind byte.
        kind: u8,
        /// The raw payload.
        bytes: Vec<u8>,
    },
}

/// The orders a receiver delivers in (PROTOCOL.md §6): within one, frames are shown in
/// sequence order; between two, nothing waits. One sequence space carries both, so
/// acknowledgement, loss detection and the window stay as they are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    /// Messages, their parts and nicknames.
    Chat,
    /// Every frame of the file transfer protocol: offers, answers and chunks.
    Files,
}

impl Stream {
    /// Every stream, in the order of their index.
    pub const ALL: [Self; 2] = [Self::Chat, Self::Files];

    /// A small index, for per-stream tables.
    pub fn index(self) -> usize {
        match self {
            Self::Chat => 0,
            Self::Files => 1,
        }
    }
}

impl Payload {
    /// The stream this payload is delivered in; `None` for the end of the sender's
    /// stream (DONE), which is delivered after every frame before it, of any stream.
    pub fn stream(&self) -> Option<Stream> {
        match self {
            Self::Text(_) | Self::Nick(_) | Self::Numbered { .. } | Self::Part(_) => {
                Some(Stream::Chat)
            }
            Self::File(_) => Some(Stream::Files),
            Self::Done | Self::Unknown { .. } => None,
        }
    }

    /// The kind byte on the wire.
    pub fn kind(&self) -> u8 {
        match self {
            Self::Text(_) => payload_kind::TEXT,
            Self::Nick(_) => payload_kind::NICK,
            Self::Done => payload_kind::DONE,
            Self::Numbered { .. } => payload_kind::NUMBERED,
            Self::Part(_) => payload_kind::PART,
            Self::File(f) => f.kind(),
            Self::Unknown { kind, .. } => *kind,
        }
    }

    /// Bytes of the payload on the wire (the DATA frame's `len`).
    pub fn wire_len(&self) -> usize {
        match self {
            Self::Text(t) | Self::Nick(t) | Self::Part(t) => t.len(),
            Self::Done => 0,
            Self::File(f) => f.wire_len(),
            Self::Numbered { text, .. } => STABLE_ID_LEN + text.len(),
            Self::Unknown { bytes, .. } => bytes.len(),
        }
    }

    /// Appends the payload's bytes on the wire.
    fn write_to(&self, out: &mut Vec<u8>) {
        match self {
            Self::Text(t) | Self::Nick(t) | Self::Part(t) => out.extend_from_slice(t.as_bytes()),
            Self::Done => {}
            Self::File(f) => f.write_to(out),
            Self::Numbered { id, text } => {
                out.extend_from_slice(&id.origin.to_be_bytes());
                out.extend_from_slice(&id.number.to_be_bytes());
                out.extend_from_slice(text.as_bytes());
            }
            Self::Unknown { bytes, .. } => out.extend_from_slice(bytes),
        }
    }

    /// The payload as text for a person (a failure report, a log line): the text of a
    /// message or nickname, without a numbered message's number.
    pub fn to_text(&self) -> String {
        match self {
            Self::Text(t) | Self::Nick(t) | Self::Part(t) | Self::Numbered { text: t, .. } => {
                t.clone()
            }
            Self::Done => String::new(),
            Self::File(FileFrame::Offer { name, .. }) => name.clone(),
            Self::File(_) => String::new(),
            Self::Unknown { bytes, .. } => String::from_utf8_lossy(bytes).into_owned(),
        }
    }
}

/// Receiver state reported back to the sender.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AckFrame {
    /// Every message with a lower sequence number has been received: the next one expected.
    pub cumulative: u64,
    /// Which messages after `cumulative` have been received and are buffered.
    pub sack: Sack,
    /// How many sequence numbers from `cumulative` on the receiver is willing to accept.
    pub window: u16,
    /// How long the receiver held this acknowledgement after the newest DATA it reports
    /// arrived, in microseconds (saturating): the sender subtracts it from its round-trip
    /// sample, as QUIC's ACK Delay (RFC 9000 §19.3).
    pub ack_delay_us: u32,
    /// The longest the receiver ever holds an acknowledgement, in milliseconds: the
    /// sender's retransmission timer allows for it (RFC 9002's max_ack_delay).
    pub max_ack_delay_ms: u8,
    /// A message received again since the previous ACK (a D-SACK, RFC 2883): both copies
    /// arrived, so one transmission was unnecessary. The sender uses it to detect and undo
    /// a spurious retransmission. `None` is 0 on the wire, `Some(seq)` is `seq + 1`.
    pub duplicate: Option<u64>,
}

/// A selective-acknowledgement bitmap: bit `i` (byte `i / 8`, bit `i % 8` from the least
/// significant) set means message `cumulative + 1 + i` has been received. At most
/// [`SACK_MAX_BYTES`] bytes; trailing zero bytes are never kept, so equal bitmaps are
/// equal. Held on the heap, as long as it is: most ACKs carry a few bytes or none, and a
/// frame with 255 inline bytes would make every DATA frame as large.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Sack {
    bytes: Vec<u8>,
}

impl Sack {
    /// Nothing beyond `cumulative` received.
    pub const EMPTY: Self = Self { bytes: Vec::new() };
    /// Offsets a bitmap can describe.
    pub const CAPACITY: u64 = 8 * SACK_MAX_BYTES as u64;

    /// The first 64 offsets from a number, bit `i` for offset `i`.
    pub fn from_bits(bits: u64) -> Self {
        let mut sack = Self::EMPTY;
        for i in 0..64 {
            if bits & (1 << i) != 0 {
                sack.insert(i);
            }
        }
        sack
    }

    /// Marks offset `i` (message `cumulative + 1 + i`); offsets beyond the capacity are
    /// left out, and the sender learns of them from the cumulative acknowledgement.
    pub fn insert(&mut self, i: u64) {
        if i >= Self::CAPACITY {
            return;
        }
        let Ok(i) = usize::try_from(i) else {
            return;
        };
        if self.bytes.len() <= i / 8 {
            self.bytes.resize(i / 8 + 1, 0);
        }
        if let Some(byte) = self.bytes.get_mut(i / 8) {
            *byte |= 1 << (i % 8);
        }
    }

    /// Whether offset `i` is marked.
    pub fn contains(&self, i: u64) -> bool {
        usize::try_from(i)
            .ok()
            .and_then(|i| self.bytes.get(i / 8).map(|b| b & (1 << (i % 8)) != 0))
            .unwrap_or(false)
    }

    /// The bitmap as sent.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    fn from_wire(raw: &[u8]) -> Self {
        // Trailing zero bytes carry nothing; dropping them keeps equal bitmaps equal.
        let len = raw.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
        Self {
            bytes: raw.get(..len).map(<[u8]>::to_vec).unwrap_or_default(),
        }
    }
}

impl Frame {
    /// Bytes this frame takes on the wire.
    pub fn encoded_len(&self) -> usize {
        match self {
            Self::Hello => HELLO_FRAME_LEN,
            Self::Data { payload, .. } => DATA_FRAME_OVERHEAD + payload.wire_len(),
            Self::Ack(ack) => ACK_FRAME_MIN_LEN + ack.sack.as_bytes().len(),
            Self::Skip { .. } => SKIP_FRAME_LEN,
            Self::Ping { .. } | Self::Pong { .. } => PING_FRAME_LEN,
            Self::Close { .. } => CLOSE_FRAME_LEN,
        }
    }

    fn encode_into(&self, out: &mut Vec<u8>) {
        match self {
            Self::Hello => out.push(frame_type::HELLO),
            Self::Data {
                seq,
                after,
                payload,
            } => {
                out.push(frame_type::DATA);
                out.extend_from_slice(&seq.to_be_bytes());
                out.extend_from_slice(&after.to_be_bytes());
                out.push(payload.kind());
                // Callers keep payloads within MAX_TEXT_LEN, so the length fits in u16;
                // saturating keeps a misuse detectable (the packet fails to decode)
                // instead of silently wrapping.
                let len = u16::try_from(payload.wire_len()).unwrap_or(u16::MAX);
                out.extend_from_slice(&len.to_be_bytes());
                payload.write_to(out);
            }
            Self::Ack(ack) => {
                out.push(frame_type::ACK);
                out.extend_from_slice(&ack.cumulative.to_be_bytes());
                out.extend_from_slice(&ack.window.to_be_bytes());
                out.extend_from_slice(&ack.ack_delay_us.to_be_bytes());
                out.push(ack.max_ack_delay_ms);
                let duplicate = ack.duplicate.map_or(0, |seq| seq.saturating_add(1));
                out.extend_from_slice(&duplicate.to_be_bytes());
                let sack = ack.sack.as_bytes();
                // At most SACK_MAX_BYTES (255), so it fits in a byte.
                out.push(u8::try_from(sack.len()).unwrap_or(u8::MAX));
                out.extend_from_slice(sack);
            }
            Self::Skip { below } => {
                out.push(frame_type::SKIP);
                out.extend_from_slice(&below.to_be_bytes());
            }
            Self::Ping { token } => {
                out.push(frame_type::PING);
                out.extend_from_slice(&token.to_be_bytes());
            }
            Self::Pong { token } => {
                out.push(frame_type::PONG);
                out.extend_from_slice(&token.to_be_bytes());
            }
            Self::Close { reason } => {
                out.push(frame_type::CLOSE);
                out.push(reason.to_wire());
            }
        }
    }
}

impl Packet {
    /// What [`classify`] says of this packet's bytes: a message if it carries one (the
    /// first one's sequence number), else an acknowledgement if it carries one (the
    /// first one's cumulative number), else control. The classifier must agree with
    /// this on every packet that decodes; the tests and the fuzzer check that it does.
    pub fn classification(&self) -> Classification {
        let first_data = self.frames.iter().find_map(|f| match f {
            Frame::Data { seq, .. } => Some(*seq),
            _ => None,
        });
        let first_ack = self.frames.iter().find_map(|f| match f {
            Frame::Ack(a) => Some(a.cumulative),
            _ => None,
        });
        match (first_data, first_ack) {
            (Some(seq), _) => Classification::Data { seq },
            (None, Some(cumulative)) => Classification::Ack { cumulative },
            (None, None) => Classification::Control,
        }
    }

    /// Bytes this packet takes on the wire.
    pub fn encoded_len(&self) -> usize {
        HEADER_LEN + self.frames.iter().map(Frame::encoded_len).sum::<usize>() + CRC_LEN
    }

    /// Serialises the packet with its CRC-32C. The session never builds a packet larger
    /// than [`MAX_DATAGRAM`]; `decode` rejects one that is.
    pub fn encode(&self) -> Vec<u8> {
        self.encode_with(Trailer::Crc32c)
    }

    /// Serialises the packet with the given trailer.
    pub fn encode_with(&self, trailer: Trailer) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len());
        out.extend_from_slice(&MAGIC);
        out.push(VERSION);
        out.push(0); // flags
        out.extend_from_slice(&self.src_epoch.to_be_bytes());
        out.extend_from_slice(&self.dst_epoch.to_be_bytes());
        for frame in &self.frames {
            frame.encode_into(&mut out);
        }
        let crc = match trailer {
            Trailer::Crc32c => crc32c::crc32c(&out),
            Trailer::Authenticated => 0,
        };
        out.extend_from_slice(&crc.to_be_bytes());
        out
    }

    /// Parses and validates one datagram: size, magic, version, flags, checksum, epoch,
    /// every frame, UTF-8 of every text.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        Self::decode_with(bytes, Trailer::Crc32c)
    }

    /// As [`decode`](Self::decode), the trailer taken as `trailer` says: with
    /// [`Trailer::Authenticated`] it is not checked.
    pub fn decode_with(bytes: &[u8], trailer: Trailer) -> Result<Self, DecodeError> {
        if bytes.len() > MAX_DATAGRAM {
            return Err(DecodeError::TooLarge { len: bytes.len() });
        }
        if bytes.len() < HEADER_LEN + CRC_LEN {
            return Err(DecodeError::TooShort { len: bytes.len() });
        }
        if bytes[0..2] != MAGIC {
            return Err(DecodeError::BadMagic);
        }
        if bytes[2] != VERSION {
            return Err(DecodeError::UnsupportedVersion { version: bytes[2] });
        }
        let (body, carried) = bytes.split_at(bytes.len() - CRC_LEN);
        let carried = u32::from_be_bytes([carried[0], carried[1], carried[2], carried[3]]);
        if trailer == Trailer::Crc32c && crc32c::crc32c(body) != carried {
            return Err(DecodeError::BadChecksum);
        }
        if body[3] != 0 {
            return Err(DecodeError::ReservedFlags { flags: body[3] });
        }
        let mut reader = Reader { bytes: &body[4..] };
        let src_epoch = reader.u64()?;
        let dst_epoch = reader.u64()?;
        if src_epoch == 0 {
            return Err(DecodeError::ZeroEpoch);
        }
        let mut frames = Vec::new();
        while !reader.bytes.is_empty() {
            frames.push(reader.frame()?);
        }
        if frames.is_empty() {
            return Err(DecodeError::NoFrames);
        }
        Ok(Self {
            src_epoch,
            dst_epoch,
            frames,
        })
    }
}

/// What a packet's last four bytes hold (PROTOCOL.md §2, §9.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trailer {
    /// The CRC-32C of the bytes before it: a packet in the clear.
    Crc32c,
    /// Zeros, not checked: the packet travels inside the encrypted transport, whose AEAD
    /// tag authenticates every byte, so a checksum would only cost time (about 6% of a
    /// file transfer's CPU on each side).
    Authenticated,
}

/// What a datagram is, for the impairment layer and for logs, without trusting it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Classification {
    /// Carries at least one message; `seq` is the first message's sequence number.
    Data {
        /// Sequence number of the first DATA frame.
        seq: u64,
    },
    /// Carries an acknowledgement and no message.
    Ack {
        /// The cumulative acknowledgement.
        cumulative: u64,
    },
    /// Only handshake or other control frames.
    Control,
    /// Not a well-framed udpchat packet; the session will reject it.
    Invalid,
}

/// Classifies a datagram without decoding it: checks the framing (size, magic,
/// version) and walks the frame headers, but neither verifies the checksum nor looks at
/// text, and allocates nothing. It runs on every received datagram before the session
/// decodes it properly, to apply the seed's separate loss rates to messages and to
/// acknowledgements; what it cannot parse is [`Classification::Invalid`].
pub fn classify(bytes: &[u8]) -> Classification {
    if bytes.len() < HEADER_LEN + CRC_LEN
        || bytes.len() > MAX_DATAGRAM
        || bytes[0..2] != MAGIC
        || bytes[2] != VERSION
    {
        return Classification::Invalid;
    }
    let mut reader = Reader {
        bytes: &bytes[HEADER_LEN..bytes.len() - CRC_LEN],
    };
    let mut ack = None;
    while !reader.bytes.is_empty() {
        let Ok(kind) = reader.u8() else {
            return Classification::Invalid;
        };
        let skipped = match kind {
            frame_type::HELLO => Ok(()),
            frame_type::CLOSE => reader.u8().map(drop),
            frame_type::DATA => match reader.u64() {
                Ok(seq) => return Classification::Data { seq },
                Err(e) => Err(e),
            },
            frame_type::ACK => reader.u64().map(|cumulative| {
                ack.get_or_insert(cumulative);
            }),
            frame_type::SKIP | frame_type::PING | frame_type::PONG => reader.u64().map(drop),
            _ => return Classification::Invalid,
        };
        if skipped.is_err() {
            return Classification::Invalid;
        }
        if kind == frame_type::ACK {
            // window, ack delay, max ack delay, duplicate; then the bitmap's length.
            let sack = reader.take(2 + 4 + 1 + 8).and_then(|_| reader.u8());
            if sack.and_then(|len| reader.take(usize::from(len))).is_err() {
                return Classification::Invalid;
            }
        }
    }
    match ack {
        Some(cumulative) => Classification::Ack { cumulative },
        None => Classification::Control,
    }
}

/// A cursor over untrusted bytes that returns errors instead of panicking.
struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.bytes.len() < n {
            return Err(DecodeError::TruncatedFrame);
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, DecodeError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Result<u32, DecodeError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self) -> Result<u64, DecodeError> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_be_bytes(a))
    }

    fn frame(&mut self) -> Result<Frame, DecodeError> {
        match self.u8()? {
            frame_type::HELLO => Ok(Frame::Hello),
            frame_type::DATA => {
                let seq = self.u64()?;
                let after = self.u16()?;
                let kind = self.u8()?;
                let len = usize::from(self.u16()?);
                if len > MAX_TEXT_LEN {
                    return Err(DecodeError::TextTooLong { len });
                }
                let raw = self.take(len)?;
                let text = || {
                    std::str::from_utf8(raw)
                        .map(str::to_owned)
                        .map_err(|_| DecodeError::InvalidUtf8)
                };
                let payload = match kind {
                    payload_kind::TEXT => Payload::Text(text()?),
                    payload_kind::NICK if len > MAX_NICK_LEN => {
                        return Err(DecodeError::TextTooLong { len })
                    }
                    payload_kind::NICK => Payload::Nick(text()?),
                    // DONE carries nothing; bytes there would be lost, so they are refused.
                    payload_kind::DONE if len > 0 => return Err(DecodeError::TextTooLong { len }),
                    payload_kind::DONE => Payload::Done,
                    payload_kind::NUMBERED => {
                        let (origin, rest) = raw
                            .split_first_chunk::<8>()
                            .ok_or(DecodeError::TruncatedFrame)?;
                        let (number, text) = rest
                            .split_first_chunk::<8>()
                            .ok_or(DecodeError::TruncatedFrame)?;
                        Payload::Numbered {
                            id: StableId {
                                origin: u64::from_be_bytes(*origin),
                                number: u64::from_be_bytes(*number),
                            },
                            text: std::str::from_utf8(text)
                                .map_err(|_| DecodeError::InvalidUtf8)?
                                .to_owned(),
                        }
                    }
                    payload_kind::PART => Payload::Part(text()?),
                    _ => match FileFrame::decode(kind, raw) {
                        Some(frame) => Payload::File(frame?),
                        None => Payload::Unknown {
                            kind,
                            bytes: raw.to_vec(),
                        },
                    },
                };
                Ok(Frame::Data {
                    seq,
                    after,
                    payload,
                })
            }
            frame_type::ACK => {
                let cumulative = self.u64()?;
                let window = self.u16()?;
                let ack_delay_us = self.u32()?;
                let max_ack_delay_ms = self.u8()?;
                let duplicate = self.u64()?.checked_sub(1);
                // One byte of length: at most SACK_MAX_BYTES.
                let len = usize::from(self.u8()?);
                let sack = Sack::from_wire(self.take(len)?);
                Ok(Frame::Ack(AckFrame {
                    cumulative,
                    sack,
                    window,
                    ack_delay_us,
                    max_ack_delay_ms,
                    duplicate,
                }))
            }
            frame_type::SKIP => Ok(Frame::Skip { below: self.u64()? }),
            frame_type::PING => Ok(Frame::Ping { token: self.u64()? }),
            frame_type::PONG => Ok(Frame::Pong { token: self.u64()? }),
            frame_type::CLOSE => Ok(Frame::Close {
                reason: CloseReason::from_wire(self.u8()?),
            }),
            other => Err(DecodeError::UnknownFrame { frame_type: other }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn hex_of(p: &Packet) -> String {
        hex::encode(p.encode())
    }

    // The vectors below are copied verbatim into docs/PROTOCOL.md; the doc test in
    // tests/protocol_doc.rs checks that the document still carries them.
    pub(crate) const VECTOR_HELLO: &str = "554307000000000000000001000000000000000001c7dbbc71";
    pub(crate) const VECTOR_DATA: &str =
        "5543070000000000000000010000000000000002020000000000000000ffff0000026869494561aa";
    pub(crate) const VECTOR_ACK: &str =
        "554307000000000000000002000000000000000103000000000000000100010000000005000000000000000000f75dad9d";

    #[test]
    fn vectors_match_the_protocol_document() {
        let hello = Packet {
            src_epoch: 1,
            dst_epoch: 0,
            frames: vec![Frame::Hello],
        };
        let data = Packet {
            src_epoch: 1,
            dst_epoch: 2,
            frames: vec![Frame::Data {
                seq: 0,
                after: u16::MAX,
                payload: Payload::Text("hi".into()),
            }],
        };
        let ack = Packet {
            src_epoch: 2,
            dst_epoch: 1,
            frames: vec![Frame::Ack(AckFrame {
                cumulative: 1,
                sack: Sack::EMPTY,
                window: 1,
                max_ack_delay_ms: 5,
                ..Default::default()
            })],
        };
        assert_eq!(hex_of(&hello), VECTOR_HELLO);
        assert_eq!(hex_of(&data), VECTOR_DATA);
        assert_eq!(hex_of(&ack), VECTOR_ACK);
        for (packet, vector) in [
            (hello, VECTOR_HELLO),
            (data, VECTOR_DATA),
            (ack, VECTOR_ACK),
        ] {
            let bytes = hex::decode(vector).unwrap();
            assert_eq!(Packet::decode(&bytes).unwrap(), packet);
        }
    }

    #[test]
    fn max_text_fills_exactly_one_datagram() {
        let p = Packet {
            src_epoch: 7,
            dst_epoch: 9,
            frames: vec![
                Frame::Skip { below: 3 },
                Frame::Ack(AckFrame {
                    cumulative: 1,
                    // The largest bitmap the text limit leaves room for: 7 bytes.
                    sack: Sack::from_bits(1 << 55),
                    window: 1,
                    ..Default::default()
                }),
                Frame::Data {
                    seq: 4,
                    after: 0,
                    payload: Payload::Text("x".repeat(MAX_TEXT_LEN)),
                },
            ],
        };
        assert_eq!(p.encode().len(), MAX_DATAGRAM);
        assert_eq!(Packet::decode(&p.encode()).unwrap(), p);
    }

    #[test]
    fn rejects_each_kind_of_damage() {
        let good = hex::decode(VECTOR_DATA).unwrap();
        assert_eq!(Packet::decode(&[]), Err(DecodeError::TooShort { len: 0 }));
        assert_eq!(
            Packet::decode(&vec![0; 65_507]),
            Err(DecodeError::TooLarge { len: 65_507 })
        );
        let mut b = good.clone();
        b[0] = b'X';
        assert_eq!(Packet::decode(&b), Err(DecodeError::BadMagic));
        let mut b = good.clone();
        b[2] = 9;
        assert_eq!(
            Packet::decode(&b),
            Err(DecodeError::UnsupportedVersion { version: 9 })
        );
        let mut b = good.clone();
        let last = b.len() - 1;
        b[last] ^= 1;
        assert_eq!(Packet::decode(&b), Err(DecodeError::BadChecksum));
        for cut in 0..good.len() {
            assert!(Packet::decode(&good[..cut]).is_err(), "truncation at {cut}");
        }
    }

    #[test]
    fn inside_the_encryption_the_trailer_is_zeros_and_not_checked() {
        let packet = Packet::decode(&hex::decode(VECTOR_DATA).unwrap()).unwrap();
        let inner = packet.encode_with(Trailer::Authenticated);
        assert_eq!(inner[inner.len() - CRC_LEN..], [0; CRC_LEN]);
        assert_eq!(
            Packet::decode_with(&inner, Trailer::Authenticated),
            Ok(packet)
        );
        // In the clear the same bytes are damaged.
        assert_eq!(Packet::decode(&inner), Err(DecodeError::BadChecksum));
    }

    #[test]
    fn rejects_invalid_utf8_even_with_a_valid_checksum() {
        let p = Packet {
            src_epoch: 1,
            dst_epoch: 2,
            frames: vec![Frame::Data {
                seq: 0,
                after: 0,
                payload: Payload::Text("ab".into()),
            }],
        };
        let mut b = p.encode();
        // Replace the text with 0xff 0xfe and fix the checksum so only UTF-8 is wrong.
        let text_at = HEADER_LEN + DATA_FRAME_OVERHEAD;
        b[text_at] = 0xff;
        b[text_at + 1] = 0xfe;
        let body_len = b.len() - CRC_LEN;
        let crc = crc32c::crc32c(&b[..body_len]).to_be_bytes();
        b[body_len..].copy_from_slice(&crc);
        assert_eq!(Packet::decode(&b), Err(DecodeError::InvalidUtf8));
    }

    #[test]
    fn a_numbered_text_shorter_than_its_number_is_truncated() {
        let p = Packet {
            src_epoch: 1,
            dst_epoch: 2,
            frames: vec![Frame::Data {
                seq: 0,
                after: 0,
                payload: Payload::Numbered {
                    id: StableId {
                        origin: 5,
                        number: 1,
                    },
                    text: String::new(),
                },
            }],
        };
        let mut b = p.encode();
        // Declare 15 bytes of payload and drop the sixteenth: the id itself is cut.
        let len_at = HEADER_LEN + DATA_FRAME_OVERHEAD - 2;
        b[len_at + 1] = 15;
        b.remove(HEADER_LEN + DATA_FRAME_OVERHEAD + 15);
        let body_len = b.len() - CRC_LEN;
        let crc = crc32c::crc32c(&b[..body_len]).to_be_bytes();
        b[body_len..].copy_from_slice(&crc);
        assert_eq!(Packet::decode(&b), Err(DecodeError::TruncatedFrame));
    }

    #[test]
    fn sack_bitmaps_cover_2040_messages_and_trim_trailing_zeros() {
        let mut sack = Sack::EMPTY;
        sack.insert(0);
        sack.insert(2039);
        sack.insert(2040);
        assert!(sack.contains(0) && sack.contains(2039) && !sack.contains(2040));
        assert_eq!(sack.as_bytes().len(), SACK_MAX_BYTES);
        assert_eq!(Sack::from_bits(0b101).as_bytes(), &[0b101]);
        assert_eq!(Sack::from_wire(&[0b101, 0, 0]), Sack::from_bits(0b101));
        assert_eq!(Sack::EMPTY.as_bytes(), &[] as &[u8]);
    }

    #[test]
    fn classify_names_what_a_datagram_carries() {
        assert_eq!(
            classify(&hex::decode(VECTOR_DATA).unwrap()),
            Classification::Data { seq: 0 }
        );
        assert_eq!(
            classify(&hex::decode(VECTOR_ACK).unwrap()),
            Classification::Ack { cumulative: 1 }
        );
        assert_eq!(
            classify(&hex::decode(VECTOR_HELLO).unwrap()),
            Classification::Control
        );
        assert_eq!(classify(b"garbage"), Classification::Invalid);
    }

    fn arb_frame() -> impl Strategy<Value = Frame> {
        prop_oneof![
            Just(Frame::Hello),
            (any::<u64>(), "\\PC{0,40}").prop_map(|(seq, text)| Frame::Data {
                seq,
                after: 0,
                payload: Payload::Text(text)
            }),
            (any::<u64>(), "\\PC{0,16}").prop_map(|(seq, nick)| Frame::Data {
                seq,
                after: 0,
                payload: Payload::Nick(nick)
            }),
            any::<u64>().prop_map(|seq| Frame::Data {
                seq,
                after: 0,
                payload: Payload::Done
            }),
            (any::<u64>(), any::<u64>(), any::<u64>(), "\\PC{0,40}").prop_map(
                |(seq, origin, number, text)| Frame::Data {
                    seq,
                    after: 0,
                    payload: Payload::Numbered {
                        id: StableId { origin, number },
                        text
                    },
                }
            ),
            (
                any::<u64>(),
                10u8..,
                prop::collection::vec(any::<u8>(), 0..40)
            )
                .prop_map(|(seq, kind, bytes)| Frame::Data {
                    seq,
                    after: 0,
                    payload: Payload::Unknown { kind, bytes }
                }),
            (
                any::<u64>(),
                prop::collection::vec(any::<u16>(), 0..20),
                any::<u16>(),
                (any::<u32>(), any::<u8>(), prop::option::of(0..u64::MAX - 1)),
            )
                .prop_map(|(cumulative, offsets, window, (delay, max, duplicate))| {
                    let mut sack = Sack::EMPTY;
                    for o in offsets {
                        sack.insert(u64::from(o % 2040));
                    }
                    Frame::Ack(AckFrame {
                        cumulative,
                        sack,
                        window,
                        ack_delay_us: delay,
                        max_ack_delay_ms: max,
                        duplicate,
                    })
                }),
            any::<u8>().prop_map(|b| Frame::Close {
                reason: CloseReason::from_wire(b)
            }),
            any::<u64>().prop_map(|below| Frame::Skip { below }),
            any::<u64>().prop_map(|token| Frame::Ping { token }),
            any::<u64>().prop_map(|token| Frame::Pong { token }),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2_000))]

        #[test]
        fn round_trip(src in 1u64.., dst in any::<u64>(), frames in prop::collection::vec(arb_frame(), 1..8)) {
            let p = Packet { src_epoch: src, dst_epoch: dst, frames };
            let bytes = p.encode();
            // Frames drawn at random can pass the datagram limit (a few 255-byte
            // bitmaps do): such a packet is refused whole, never half read.
            if bytes.len() > MAX_DATAGRAM {
                prop_assert_eq!(Packet::decode(&bytes), Err(DecodeError::TooLarge { len: bytes.len() }));
            } else {
                prop_assert_eq!(Packet::decode(&bytes), Ok(p));
            }
        }

        #[test]
        fn classify_agrees_with_a_full_decode(src in 1u64.., frames in prop::collection::vec(arb_frame(), 1..6)) {
            let p = Packet { src_epoch: src, dst_epoch: 3, frames };
            let bytes = p.encode();
            let expected = if bytes.len() > MAX_DATAGRAM {
                Classification::Invalid
            } else {
                p.classification()
            };
            prop_assert_eq!(classify(&bytes), expected);
        }

        #[test]
        fn decode_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..1300)) {
            let _ = Packet::decode(&bytes);
            let _ = classify(&bytes);
        }

        #[test]
        fn decode_of_damaged_valid_packets_never_panics(
            frames in prop::collection::vec(arb_frame(), 1..4),
            flip in any::<prop::sample::Index>(),
            bit in 0u8..8,
        ) {
            let mut b = Packet { src_epoch: 5, dst_epoch: 6, frames }.encode();
            let i = flip.index(b.len());
            b[i] ^= 1 << bit;
            prop_assert!(Packet::decode(&b).is_err());
        }
    }
}
