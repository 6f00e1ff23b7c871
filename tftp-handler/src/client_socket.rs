//! The UDP socket of one client transfer, receiving a window of DATA in one system call.
//!
//! The server sends a window of equal-sized blocks as one segmented (GSO) write. On Linux,
//! [`ClientSocket`] turns on `UDP_GRO`, so the kernel hands such a run over as one message of up
//! to 64 KiB with a control message giving the segment size, instead of one receive per
//! datagram; over loopback that per-datagram receive was the client's bottleneck. The datagrams
//! are consecutive chunks of that size, only the last possibly shorter: they are kept in the
//! socket and handed out one per [`ClientLink::recv_datagram`] call, each with the message's
//! sender, so the caller sees exactly the datagrams that were sent. Pending datagrams live in the
//! socket, never in a receive future, so a receive stays cancel-safe.
//!
//! Where `UDP_GRO` cannot be set (another OS, an old kernel) the socket receives one datagram
//! per call, as a bare [`UdpSocket`] does. Sending is unchanged. It knows nothing of TFTP.
//! Measured on loopback (S4: 64 MiB at blksize 1468, windowsize 16, client and server on one
//! CPU): 45,700 receives -> 2,860, and 360 -> 524 MiB/s.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};

use tokio::net::UdpSocket;
use udp_server::Datagram;

use crate::client::ClientLink;

/// A [`Client`](crate::Client)'s socket for one transfer: a [`UdpSocket`] that, on Linux,
/// receives coalesced runs of datagrams and hands them out one at a time.
#[derive(Debug)]
pub(crate) struct ClientSocket {
    /// The bound socket.
    socket: UdpSocket,
    /// The last coalesced message and the datagrams of it not yet handed out; `None` when the
    /// kernel refused `UDP_GRO` (plain receives, one datagram each).
    #[cfg(target_os = "linux")]
    coalesced: Option<gro::Coalesced>,
}

impl ClientSocket {
    /// A socket on the wildcard address of `server`'s family, any port; with coalesced
    /// receives, if `coalesce` and the kernel offers them.
    pub(crate) async fn bind_like(server: SocketAddr, coalesce: bool) -> io::Result<Self> {
        let local: SocketAddr = match server {
            SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
            SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
        };
        Ok(Self::new(UdpSocket::bind(local).await?, coalesce))
    }

    /// Wraps `socket`; turns on coalesced receives if `coalesce` and the kernel offers them.
    /// Worth it only where runs of datagrams come (a download with windows): it costs a
    /// system call and a 64 KiB buffer per socket, which a short lock-step transfer feels.
    pub(crate) fn new(socket: UdpSocket, coalesce: bool) -> Self {
        Self {
            #[cfg(target_os = "linux")]
            coalesced: coalesce.then(|| gro::Coalesced::enable(&socket)).flatten(),
            socket,
        }
    }
}

impl ClientLink for ClientSocket {
    async fn send_datagram(&mut self, datagram: &Datagram, to: SocketAddr) -> io::Result<()> {
        datagram.send_to(&self.socket, to).await.map(drop)
    }

    async fn recv_datagram(&mut self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        #[cfg(target_os = "linux")]
        if let Some(coalesced) = &mut self.coalesced {
            return coalesced.recv(&self.socket, buf).await;
        }
        self.socket.recv_from(buf).await
    }
}

/// Receiving with `UDP_GRO` (Linux 5.0 and later).
#[cfg(target_os = "linux")]
mod gro {
    use std::io::{self, IoSliceMut};
    use std::net::{Ipv4Addr, SocketAddr};
    use std::ops::Range;
    use std::os::fd::AsRawFd;

    use nix::sys::socket::{
        ControlMessageOwned, MsgFlags, SockaddrStorage, recvmsg, setsockopt, sockopt,
    };
    use tokio::io::Interest;
    use tokio::net::UdpSocket;

    /// The datagrams of one received message not yet handed out: `count` consecutive chunks of
    /// `size` bytes from `next`, the last one ending at `end` (and so possibly shorter).
    #[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
    struct Segments {
        /// Where the next datagram starts in the message.
        next: usize,
        /// Where the last datagram ends.
        end: usize,
        /// Length of every datagram but the last.
        size: usize,
        /// Datagrams left: kept apart from `next..end` because a lone datagram may be empty.
        count: usize,
    }

    impl Segments {
        /// The datagrams of a message of `len` bytes; `segment_size` is the size from its
        /// `UDP_GRO` control message (`None`: the message is one datagram), `truncated` whether
        /// it was cut to fit the buffer (`MSG_TRUNC`). Of a cut message only the whole segments
        /// before the cut are kept (the server resends the rest); a cut single datagram is
        /// dropped rather than passed on cut short.
        fn new(len: usize, segment_size: Option<usize>, truncated: bool) -> Self {
            match segment_size {
                Some(size) if size > 0 => {
                    let end = if truncated { len - len % size } else { len };
                    Self {
                        next: 0,
                        end,
                        size,
                        count: end.div_ceil(size),
                    }
                }
                _ if truncated => Self::default(),
                _ => Self {
                    next: 0,
                    end: len,
                    size: len,
                    count: 1,
                },
            }
        }

        /// The byte range of the next datagram, if any is left.
        fn pop(&mut self) -> Option<Range<usize>> {
            if self.count == 0 {
                return None;
            }
            self.count -= 1;
            let start = self.next;
            self.next = (start + self.size).min(self.end);
            Some(start..self.next)
        }
    }

    /// The largest message: every UDP payload fits, and the kernel coalesces no more than a
    /// 64 KiB packet.
    const MESSAGE_BYTES: usize = 65_536;

    /// The last coalesced message and what of it is left to hand out.
    #[derive(Debug)]
    pub(super) struct Coalesced {
        /// The message, allocated once per socket.
        message: Box<[u8]>,
        /// Room for the `UDP_GRO` control message.
        control: Vec<u8>,
        /// The datagrams of `message` not yet handed out.
        pending: Segments,
        /// Who sent `message` (every datagram in it).
        from: SocketAddr,
    }

    impl Coalesced {
        /// Turns on `UDP_GRO` on `socket`; `None` if the kernel refuses.
        pub(super) fn enable(socket: &UdpSocket) -> Option<Self> {
            setsockopt(socket, sockopt::UdpGroSegment, &true).ok()?;
            Some(Self {
                message: vec![0; MESSAGE_BYTES].into_boxed_slice(),
                control: nix::cmsg_space!(i32),
                pending: Segments::default(),
                from: SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)),
            })
        }

        /// Copies the next datagram into `buf` (cut to fit, as `recv_from` would): a pending
        /// one, or the first of the next message. Cancel-safe: the message is received and its
        /// datagrams recorded in `self` without an `.await` in between.
        pub(super) async fn recv(
            &mut self,
            socket: &UdpSocket,
            buf: &mut [u8],
        ) -> io::Result<(usize, SocketAddr)> {
            loop {
                if let Some(range) = self.pending.pop() {
                    let datagram = &self.message[range];
                    let len = datagram.len().min(buf.len());
                    buf[..len].copy_from_slice(&datagram[..len]);
                    return Ok((len, self.from));
                }
                let (message, control) = (&mut self.message, &mut self.control);
                let received = socket
                    .async_io(Interest::READABLE, || receive(socket, message, control))
                    .await?;
                if let Some((pending, from)) = received {
                    self.pending = pending;
                    self.from = from;
                }
            }
        }
    }

    /// Receives one message into `message`: its datagrams and sender, or `None` for a message
    /// that cannot be split (control data or sender address missing).
    fn receive(
        socket: &UdpSocket,
        message: &mut [u8],
        control: &mut [u8],
    ) -> io::Result<Option<(Segments, SocketAddr)>> {
        let mut parts = [IoSliceMut::new(message)];
        let received = recvmsg::<SockaddrStorage>(
            socket.as_raw_fd(),
            &mut parts,
            Some(control),
            MsgFlags::empty(),
        )?;
        // Control data cut short (MSG_CTRUNC) might have lost the segment size.
        let Ok(mut controls) = received.cmsgs() else {
            return Ok(None);
        };
        let segment_size = controls.find_map(|c| match c {
            ControlMessageOwned::UdpGroSegments(size) => usize::try_from(size).ok(),
            _ => None,
        });
        let truncated = received.flags.contains(MsgFlags::MSG_TRUNC);
        let Some(from) = received.address.as_ref().and_then(socket_addr) else {
            return Ok(None);
        };
        Ok(Some((
            Segments::new(received.bytes, segment_size, truncated),
            from,
        )))
    }

    /// `address` as a standard socket address, if it is IPv4 or IPv6.
    fn socket_addr(address: &SockaddrStorage) -> Option<SocketAddr> {
        let v4 = address.as_sockaddr_in().map(|a| SocketAddr::from(*a));
        v4.or_else(|| address.as_sockaddr_in6().map(|a| SocketAddr::from(*a)))
    }

    #[cfg(test)]
    mod tests {
        #![allow(clippy::unwrap_used)]

        use std::io::IoSlice;

        use futures::FutureExt;
        use nix::sys::socket::{ControlMessage, sendmsg};

        use super::*;
        use crate::client::ClientLink;

        fn ranges(mut segments: Segments) -> Vec<Range<usize>> {
            std::iter::from_fn(|| segments.pop()).collect()
        }

        #[test]
        fn a_coalesced_message_splits_into_equal_segments_and_a_shorter_last() {
            let got = ranges(Segments::new(540, Some(100), false));
            assert_eq!(
                got,
                [0..100, 100..200, 200..300, 300..400, 400..500, 500..540]
            );
        }

        #[test]
        fn a_message_without_a_segment_size_is_one_datagram_even_when_empty() {
            for len in [0, 700] {
                let mut segments = Segments::new(len, None, false);
                assert_eq!(segments.pop(), Some(0..len));
                assert_eq!(segments.pop(), None);
            }
        }

        #[test]
        fn a_cut_message_keeps_only_its_whole_segments() {
            assert_eq!(
                ranges(Segments::new(1000, Some(300), true)),
                [0..300, 300..600, 600..900]
            );
            assert_eq!(ranges(Segments::new(1000, None, true)), []);
        }

        #[tokio::test]
        async fn a_segmented_run_is_received_at_once_and_handed_out_datagram_by_datagram() {
            let (mut receiver, sender) = crate::client_socket::tests::pair().await;
            let run: Vec<Vec<u8>> = [100, 100, 100, 100, 100, 40]
                .into_iter()
                .enumerate()
                .map(|(i, len)| vec![i as u8 + 1; len])
                .collect();
            let parts: Vec<IoSlice<'_>> = run.iter().map(|d| IoSlice::new(d)).collect();
            sendmsg::<SockaddrStorage>(
                sender.as_raw_fd(),
                &parts,
                &[ControlMessage::UdpGsoSegments(&100)],
                MsgFlags::empty(),
                None,
            )
            .unwrap();
            let mut buf = vec![0; 65_536];
            for (i, expected) in run.iter().enumerate() {
                let (n, from) = receiver.recv_datagram(&mut buf).await.unwrap();
                assert_eq!(&buf[..n], &expected[..], "datagram {i}");
                assert_eq!(from, sender.local_addr().unwrap());
                if i == 0 {
                    // One receive brought the whole run.
                    let coalesced = receiver.coalesced.as_ref().expect("UDP_GRO refused");
                    assert_eq!(coalesced.pending.count, 5);
                }
            }
            assert!(receiver.recv_datagram(&mut buf).now_or_never().is_none());
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// A socket under test and a plain socket connected to it.
    pub(super) async fn pair() -> (ClientSocket, std::net::UdpSocket) {
        let receiver = ClientSocket::new(UdpSocket::bind("127.0.0.1:0").await.unwrap(), true);
        let sender = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        sender
            .connect(receiver.socket.local_addr().unwrap())
            .unwrap();
        (receiver, sender)
    }

    #[tokio::test]
    async fn plain_datagrams_still_arrive_one_by_one() {
        let (mut receiver, sender) = pair().await;
        let sizes = [300, 0, 1468, 7];
        for (tag, &len) in sizes.iter().enumerate() {
            sender.send(&vec![tag as u8; len]).unwrap();
        }
        let mut buf = vec![0; 65_536];
        for (tag, &len) in sizes.iter().enumerate() {
            let (n, from) = receiver.recv_datagram(&mut buf).await.unwrap();
            assert_eq!(n, len);
            assert_eq!(from, sender.local_addr().unwrap());
            assert!(buf[..n].iter().all(|&b| b == tag as u8));
        }
    }
}
