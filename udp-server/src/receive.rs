//! Taking datagrams off the socket, several per system call where the OS allows it.
//!
//! On Linux one `recvmmsg` reads up to [`SLOTS`] datagrams into consecutive slots of a shared,
//! zero-initialised chunk; the datagrams are then moved together (the first never moves, and
//! the others are usually a few bytes: acknowledgements) and split off as [`Bytes`] that share
//! the chunk, so that a datagram is copied once out of the kernel and never again per session.
//!
//! Fewer datagrams than slots means the socket was empty when the kernel looked: the batch is
//! then reported to tokio as `WouldBlock`, which clears the socket's readiness without a second
//! call that would only return `EAGAIN`. (Tokio clears readiness only if no new readiness event
//! arrived since it was observed, so a datagram that lands meanwhile still wakes the loop.) A
//! lock-step transfer thus costs one receive call per datagram instead of two. Elsewhere, one
//! datagram per call, as tokio offers it.

use std::io;
use std::net::SocketAddr;

use bytes::{Bytes, BytesMut};
use tokio::io::Interest;
use tokio::net::UdpSocket;

/// The largest datagram received whole (the UDP length field's limit).
const MAX_DATAGRAM: usize = 65_535;

/// Most datagrams read per system call.
pub(crate) const SLOTS: usize = 8;

/// Receive buffers are carved out of chunks this large. Every call needs [`SLOTS`] whole
/// slots free; a chunk is replaced (or reclaimed, once every datagram cut from it is dropped)
/// when less is left.
const CHUNK: usize = 2 * SLOTS * MAX_DATAGRAM;

/// What one call to [`BatchReceiver::receive`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fill {
    /// Every slot was filled: more may be waiting.
    Full,
    /// The socket had nothing more (its readiness is cleared): wait for the reactor.
    Drained,
}

/// Receives datagrams into shared chunks.
#[derive(Debug)]
pub(crate) struct BatchReceiver {
    /// Zero-initialised space that datagrams land in (its length is the free space).
    chunk: BytesMut,
}

impl BatchReceiver {
    /// A receiver with its first chunk.
    pub(crate) fn new() -> Self {
        Self {
            chunk: BytesMut::zeroed(CHUNK),
        }
    }

    /// Receives what the socket holds, without waiting, up to [`SLOTS`] datagrams, appending
    /// each with its sender to `out`. Errors are the socket's: per-datagram ones (an ICMP
    /// error reported on the socket) leave the readiness set, so the caller can go on.
    pub(crate) fn receive(
        &mut self,
        socket: &UdpSocket,
        out: &mut Vec<(Bytes, SocketAddr)>,
    ) -> io::Result<Fill> {
        self.make_room();
        let result = socket.try_io(Interest::READABLE, || {
            match self.receive_now(socket, out)? {
                // Reported as "would block" only so that tokio clears the readiness; the
                // datagrams are already in `out`.
                Fill::Drained => Err(io::ErrorKind::WouldBlock.into()),
                Fill::Full => Ok(()),
            }
        });
        match result {
            Ok(()) => Ok(Fill::Full),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(Fill::Drained),
            Err(e) => Err(e),
        }
    }

    /// Makes sure [`SLOTS`] whole slots are free, reusing the chunk when nothing cut from it
    /// is still alive.
    fn make_room(&mut self) {
        if self.chunk.len() >= SLOTS * MAX_DATAGRAM {
            return;
        }
        self.chunk.clear();
        if !self.chunk.try_reclaim(CHUNK) {
            self.chunk = BytesMut::with_capacity(CHUNK);
        }
        self.chunk.resize(CHUNK, 0);
    }

    /// One `recvmmsg`: the datagrams received, each appended to `out`.
    #[cfg(target_os = "linux")]
    fn receive_now(
        &mut self,
        socket: &UdpSocket,
        out: &mut Vec<(Bytes, SocketAddr)>,
    ) -> io::Result<Fill> {
        use std::io::IoSliceMut;
        use std::os::fd::AsRawFd;

        use nix::sys::socket::{MsgFlags, MultiHeaders, SockaddrStorage, recvmmsg};

        let mut headers = MultiHeaders::<SockaddrStorage>::preallocate(SLOTS, None);
        let mut landed = [(0, None); SLOTS];
        let received = {
            let mut free = self.chunk.chunks_exact_mut(MAX_DATAGRAM);
            let mut slots: [[IoSliceMut<'_>; 1]; SLOTS] =
                std::array::from_fn(|_| [IoSliceMut::new(free.next().unwrap_or_default())]);
            let results = recvmmsg(
                socket.as_raw_fd(),
                &mut headers,
                slots.iter_mut(),
                MsgFlags::MSG_DONTWAIT,
                None,
            )?;
            let mut received = 0;
            for (slot, message) in landed.iter_mut().zip(results) {
                *slot = (message.bytes, message.address.and_then(socket_addr));
                received += 1;
            }
            received
        };
        // Close the gaps between slots, then cut the datagrams apart.
        let mut end = 0;
        for (i, &(len, _)) in landed[..received].iter().enumerate() {
            let start = i * MAX_DATAGRAM;
            self.chunk.copy_within(start..start + len, end);
            end += len;
        }
        let filled = self.chunk.split_to(end).freeze();
        let mut start = 0;
        for &(len, peer) in &landed[..received] {
            // Every UDP datagram has a sender; a missing one would be a kernel bug.
            if let Some(peer) = peer {
                out.push((filled.slice(start..start + len), peer));
            }
            start += len;
        }
        Ok(if received < SLOTS {
            Fill::Drained
        } else {
            Fill::Full
        })
    }

    /// One datagram per call where there is no `recvmmsg`; only `EAGAIN` tells that the
    /// socket is empty.
    #[cfg(not(target_os = "linux"))]
    fn receive_now(
        &mut self,
        socket: &UdpSocket,
        out: &mut Vec<(Bytes, SocketAddr)>,
    ) -> io::Result<Fill> {
        let (len, peer) = socket.try_recv_from(&mut self.chunk)?;
        out.push((self.chunk.split_to(len).freeze(), peer));
        Ok(Fill::Full)
    }
}

/// The standard form of a sender's address.
#[cfg(target_os = "linux")]
fn socket_addr(address: nix::sys::socket::SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = address.as_sockaddr_in() {
        return Some(SocketAddr::V4((*v4).into()));
    }
    address
        .as_sockaddr_in6()
        .map(|v6| SocketAddr::V6((*v6).into()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    async fn pair() -> (UdpSocket, std::net::UdpSocket, SocketAddr) {
        let server = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let client = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        client.connect(server.local_addr().unwrap()).unwrap();
        let from = client.local_addr().unwrap();
        (server, client, from)
    }

    /// Receives until `want` datagrams have come.
    async fn receive_all(
        receiver: &mut BatchReceiver,
        socket: &UdpSocket,
        want: usize,
    ) -> Vec<(Bytes, SocketAddr)> {
        let mut out = Vec::new();
        while out.len() < want {
            socket.readable().await.unwrap();
            receiver.receive(socket, &mut out).unwrap();
        }
        out
    }

    #[tokio::test]
    async fn datagrams_arrive_whole_in_order_with_their_sender() {
        let (server, client, from) = pair().await;
        let sizes = [4, 0, 1_000, 65_507, 4, 516, 12];
        for (i, &size) in sizes.iter().enumerate() {
            client.send(&vec![i as u8; size]).unwrap();
        }
        let mut receiver = BatchReceiver::new();
        let got = receive_all(&mut receiver, &server, sizes.len()).await;
        assert_eq!(got.len(), sizes.len());
        for (i, ((datagram, peer), &size)) in got.iter().zip(&sizes).enumerate() {
            assert_eq!(*peer, from);
            assert_eq!(datagram.len(), size);
            assert!(datagram.iter().all(|&b| b == i as u8));
        }
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn more_datagrams_than_slots_take_several_calls_and_none_is_lost() {
        let (server, client, _) = pair().await;
        let count = SLOTS * 3 + 1;
        for i in 0..count {
            client.send(&(i as u32).to_be_bytes()).unwrap();
        }
        let mut receiver = BatchReceiver::new();
        let mut out = Vec::new();
        server.readable().await.unwrap();
        assert_eq!(receiver.receive(&server, &mut out).unwrap(), Fill::Full);
        assert_eq!(out.len(), SLOTS);
        let rest = receive_all(&mut receiver, &server, count - SLOTS).await;
        out.extend(rest);
        let numbers: Vec<u32> = out
            .iter()
            .map(|(d, _)| u32::from_be_bytes(d[..].try_into().unwrap()))
            .collect();
        assert_eq!(numbers, (0..count as u32).collect::<Vec<_>>());
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn an_empty_socket_reports_drained_and_the_next_datagram_still_wakes_it() {
        let (server, client, _) = pair().await;
        let mut receiver = BatchReceiver::new();
        let mut out = Vec::new();
        client.send(b"one").unwrap();
        server.readable().await.unwrap();
        assert_eq!(receiver.receive(&server, &mut out).unwrap(), Fill::Drained);
        assert_eq!(out.len(), 1);
        client.send(b"two").unwrap();
        let more = receive_all(&mut receiver, &server, 1).await;
        assert_eq!(&more[0].0[..], b"two");
    }

    #[tokio::test]
    async fn datagrams_outlive_the_chunks_they_were_cut_from() {
        let (server, client, _) = pair().await;
        let mut receiver = BatchReceiver::new();
        let mut kept = Vec::new();
        // Enough large datagrams to need several fresh chunks while the old ones are held.
        for round in 0..(3 * CHUNK / 60_000) {
            client.send(&vec![round as u8; 60_000]).unwrap();
            kept.extend(receive_all(&mut receiver, &server, 1).await);
        }
        for (round, (datagram, _)) in kept.iter().enumerate() {
            assert!(datagram.iter().all(|&b| b == round as u8), "round {round}");
        }
    }
}
