//! A datagram the session wants sent.

use std::net::SocketAddr;

/// One datagram for the caller to send on its socket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transmit {
    /// Where to send it.
    pub destination: SocketAddr,
    /// The encoded packet, at most [`MAX_DATAGRAM`](crate::wire::MAX_DATAGRAM) bytes.
    pub payload: Vec<u8>,
}
