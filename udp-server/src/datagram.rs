//! Outgoing datagrams.
//!
//! A [`Datagram`] is a short header kept inline plus a payload held as shared [`Bytes`]. The
//! send loop writes both with one vectored `sendmsg`, so a protocol can send a slice of a
//! shared buffer (a block of a file, say) behind its own header without copying it in user
//! space and without allocating.

use std::io::{self, IoSlice};
use std::net::SocketAddr;

use bytes::Bytes;
use socket2::{SockAddr, SockRef};
use tokio::io::Interest;
use tokio::net::UdpSocket;

/// The longest header a [`Datagram`] can carry inline.
pub const MAX_HEADER_LEN: usize = 16;

/// One outgoing datagram: an inline header (up to [`MAX_HEADER_LEN`] bytes) followed by a
/// shared payload.
#[derive(Clone, PartialEq, Eq)]
pub struct Datagram {
    /// Header bytes; only the first `header_len` are meaningful.
    header: [u8; MAX_HEADER_LEN],
    /// How many bytes of `header` are in use.
    header_len: u8,
    /// The shared payload that follows the header on the wire.
    payload: Bytes,
}

impl Datagram {
    /// A datagram that is just `payload`.
    pub fn new(payload: Bytes) -> Self {
        Self {
            header: [0; MAX_HEADER_LEN],
            header_len: 0,
            payload,
        }
    }

    /// A datagram made of `header` followed by `payload`. `N` is checked at compile time
    /// against [`MAX_HEADER_LEN`].
    pub fn with_header<const N: usize>(header: [u8; N], payload: Bytes) -> Self {
        const { assert!(N <= MAX_HEADER_LEN, "datagram header too long") };
        let mut inline = [0; MAX_HEADER_LEN];
        inline[..N].copy_from_slice(&header);
        Self {
            header: inline,
            header_len: N as u8,
            payload,
        }
    }

    /// The header bytes.
    pub fn header(&self) -> &[u8] {
        &self.header[..usize::from(self.header_len)]
    }

    /// The payload bytes.
    pub fn payload(&self) -> &Bytes {
        &self.payload
    }

    /// Total length on the wire (header plus payload).
    pub fn len(&self) -> usize {
        usize::from(self.header_len) + self.payload.len()
    }

    /// True when the datagram carries no bytes at all.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Sends the datagram on `socket` to `to`: header and payload in one vectored write,
    /// without joining them (what the send loop does for every datagram; public so that a
    /// client on its own socket sends the same way).
    pub async fn send_to(&self, socket: &UdpSocket, to: SocketAddr) -> io::Result<usize> {
        let to = SockAddr::from(to);
        socket
            .async_io(Interest::WRITABLE, || self.try_send_to(socket, &to))
            .await
    }

    /// Sends the datagram now if the socket can take it (`WouldBlock` if not); call it from
    /// tokio's `try_io`/`async_io` so that readiness is tracked.
    pub(crate) fn try_send_to(&self, socket: &UdpSocket, to: &SockAddr) -> io::Result<usize> {
        let parts = [IoSlice::new(self.header()), IoSlice::new(self.payload())];
        SockRef::from(socket).send_to_vectored(&parts, to)
    }

    /// The whole datagram as one contiguous buffer (copies; meant for tests and tools, not the
    /// send path).
    pub fn to_vec(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.len());
        out.extend_from_slice(self.header());
        out.extend_from_slice(&self.payload);
        out
    }
}

/// A datagram on its way to the send loop, with its destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    /// The peer it is sent to.
    pub to: SocketAddr,
    /// What is sent.
    pub datagram: Datagram,
}

impl From<Bytes> for Datagram {
    fn from(payload: Bytes) -> Self {
        Self::new(payload)
    }
}

impl std::fmt::Debug for Datagram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Datagram")
            .field("header", &self.header())
            .field("payload_len", &self.payload.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_and_payload_are_sent_in_order() {
        let d = Datagram::with_header([0, 3, 0, 1], Bytes::from_static(b"abc"));
        assert_eq!(d.to_vec(), b"\0\x03\0\x01abc");
        assert_eq!(d.len(), 7);
    }

    #[test]
    fn a_plain_datagram_has_no_header() {
        let d = Datagram::new(Bytes::from_static(b"xyz"));
        assert!(d.header().is_empty());
        assert_eq!(d.to_vec(), b"xyz");
    }
}
