//! Sending datagrams to many peers with one system call.
//!
//! When the send loop's batch holds datagrams for different peers (many transfers running
//! at once), Linux takes up to [`MAX_MESSAGES`] of them in one `sendmmsg`: the kernel still
//! sends each on its own, but the cost of entering it, finding the socket and checking the
//! arguments is paid once per batch instead of once per datagram. Headers and payloads go out
//! without a copy, each datagram as its own two-part iovec. A lone datagram, and every datagram
//! elsewhere, goes out with a plain `sendmsg`.

use std::io::{self, IoSlice};

use tokio::net::UdpSocket;

use crate::datagram::Outgoing;

/// Most datagrams in one `sendmmsg` (the kernel's own cap, `UIO_MAXIOV`, is 1024).
pub(crate) const MAX_MESSAGES: usize = 64;

/// Sends datagrams from the start of `batch` (at most [`MAX_MESSAGES`]) without waiting:
/// how many went out, at least one. An error is the first datagram's: it did not go out
/// (`WouldBlock` when the socket buffer is full).
#[cfg(target_os = "linux")]
pub(crate) fn try_send_many(socket: &UdpSocket, batch: &[Outgoing]) -> io::Result<usize> {
    use std::os::fd::AsRawFd;

    use nix::sys::socket::{ControlMessage, MsgFlags, MultiHeaders, SockaddrStorage, sendmmsg};

    let count = batch.len().min(MAX_MESSAGES);
    if count <= 1 {
        // Lock-step traffic: a plain `sendmsg`, without the batch's bookkeeping.
        return send_one(socket, batch);
    }
    let batch = &batch[..count];
    let parts: Vec<[IoSlice<'_>; 2]> = batch
        .iter()
        .map(|out| {
            [
                IoSlice::new(out.datagram.header()),
                IoSlice::new(out.datagram.payload()),
            ]
        })
        .collect();
    let addresses: Vec<Option<SockaddrStorage>> = batch
        .iter()
        .map(|out| Some(SockaddrStorage::from(out.to)))
        .collect();
    let mut headers = MultiHeaders::<SockaddrStorage>::preallocate(count, None);
    let no_control: &[ControlMessage<'_>] = &[];
    let sent = sendmmsg(
        socket.as_raw_fd(),
        &mut headers,
        &parts,
        &addresses,
        no_control,
        MsgFlags::empty(),
    )?;
    Ok(sent.count())
}

/// One datagram per call where there is no `sendmmsg`.
#[cfg(not(target_os = "linux"))]
pub(crate) fn try_send_many(socket: &UdpSocket, batch: &[Outgoing]) -> io::Result<usize> {
    send_one(socket, batch)
}

/// Sends the first datagram of `batch`, if any: how many went out.
fn send_one(socket: &UdpSocket, batch: &[Outgoing]) -> io::Result<usize> {
    let Some(out) = batch.first() else {
        return Ok(0);
    };
    out.datagram.try_send_to(socket, &out.to.into())?;
    Ok(1)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::net::SocketAddr;

    use bytes::Bytes;

    use super::*;
    use crate::Datagram;

    #[tokio::test]
    async fn each_peer_gets_its_own_datagrams_whole_and_in_order() {
        let server = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let peers: Vec<_> = (0..3)
            .map(|_| std::net::UdpSocket::bind("127.0.0.1:0").unwrap())
            .collect();
        // Interleaved peers, a header-less datagram, an empty one and different sizes.
        let batch: Vec<Outgoing> = (0..9u8)
            .map(|i| Outgoing {
                to: peers[usize::from(i % 3)].local_addr().unwrap(),
                datagram: match i {
                    4 => Datagram::new(Bytes::from(vec![i; 7])),
                    5 => Datagram::new(Bytes::new()),
                    _ => Datagram::with_header([0, i], Bytes::from(vec![i; 100 * usize::from(i)])),
                },
            })
            .collect();
        let mut rest = &batch[..];
        while !rest.is_empty() {
            server.writable().await.unwrap();
            match try_send_many(&server, rest) {
                Ok(sent) => rest = &rest[sent..],
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => panic!("send failed: {e}"),
            }
        }
        let mut buf = [0; 2048];
        for (p, peer) in peers.iter().enumerate() {
            for out in batch
                .iter()
                .filter(|out| out.to == peer.local_addr().unwrap())
            {
                let (n, from): (usize, SocketAddr) = peer.recv_from(&mut buf).unwrap();
                assert_eq!(from, server.local_addr().unwrap());
                assert_eq!(&buf[..n], &out.datagram.to_vec()[..], "peer {p}");
            }
        }
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn one_call_sends_up_to_the_cap() {
        let server = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let peer = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let out = Outgoing {
            to: peer.local_addr().unwrap(),
            datagram: Datagram::new(Bytes::from_static(b"ack")),
        };
        let batch = vec![out; MAX_MESSAGES + 5];
        server.writable().await.unwrap();
        assert_eq!(try_send_many(&server, &batch).unwrap(), MAX_MESSAGES);
    }
}
