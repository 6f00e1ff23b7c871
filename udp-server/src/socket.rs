//! Binding a UDP socket the way a server wants it.
//!
//! [`Server::run`](crate::Server::run) takes an already-bound socket so that callers choose the
//! address family and options; [`bind`] is the convenient default: for an IPv6 wildcard address
//! a dual-stack socket (IPv4 peers appear as `::ffff:a.b.c.d`) where the OS allows it.
//!
//! It asks for large kernel buffers (`SO_RCVBUF`, `SO_SNDBUF`, [`SOCKET_BUFFER_BYTES`], capped
//! by the system's `net.core.rmem_max`/`wmem_max`): one socket carries every peer's traffic, and
//! with the default (about 200 KiB) a few hundred lock-step clients acknowledging at once
//! overflow it, so datagrams are dropped and those transfers stall for a whole retransmission
//! timeout (measured: 256 concurrent downloads lost about 100 ACKs per run).
//!
//! It deliberately does not set `SO_REUSEADDR`. For UDP on Linux that option lets a second
//! socket bind the same address and port, and the second process then silently takes the
//! first one's traffic; a server restart does not need it (UDP has no TIME_WAIT). Binding a
//! port already in use fails with `AddrInUse`, which is what an operator needs to see.

use std::io;
use std::net::SocketAddr;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;

/// The kernel buffer size [`bind`] asks for, each way.
pub const SOCKET_BUFFER_BYTES: usize = 4 << 20;

/// Binds a non-blocking UDP socket on `addr` for use with the server. Must be called inside a
/// tokio runtime.
pub fn bind(addr: SocketAddr) -> io::Result<UdpSocket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if let SocketAddr::V6(v6) = addr
        && v6.ip().is_unspecified()
    {
        // Dual-stack is best effort: some systems forbid turning IPV6_V6ONLY off.
        let _ = socket.set_only_v6(false);
    }
    // Best effort: the kernel silently caps the sizes, and a smaller buffer still works.
    let _ = socket.set_recv_buffer_size(SOCKET_BUFFER_BYTES);
    let _ = socket.set_send_buffer_size(SOCKET_BUFFER_BYTES);
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    UdpSocket::from_std(socket.into())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[tokio::test]
    async fn binds_an_ephemeral_loopback_port() {
        let socket = bind("127.0.0.1:0".parse().unwrap()).unwrap();
        assert_ne!(socket.local_addr().unwrap().port(), 0);
    }

    #[tokio::test]
    async fn a_port_in_use_is_refused() {
        let first = bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let err = bind(first.local_addr().unwrap()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
    }

    #[tokio::test]
    async fn an_ipv6_wildcard_socket_accepts_ipv4_peers() {
        let socket = bind("[::]:0".parse().unwrap()).unwrap();
        let port = socket.local_addr().unwrap().port();
        let client = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        client.send_to(b"ping", ("127.0.0.1", port)).await.unwrap();
        let mut buf = [0; 8];
        let (n, from) = socket.recv_from(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"ping");
        assert_eq!(from.port(), client.local_addr().unwrap().port());
    }
}
