//! Test equipment for hostile peers: raw datagrams in, everything the server sends back out.
//!
//! [`Probe`] is a bare UDP socket that sends bytes exactly as given (no codec in the way, so
//! that malformed packets stay malformed) and records every datagram it receives, decoded
//! leniently into [`Seen`] (a server that sent garbage must fail an assertion, not panic the
//! receiving code). [`raw_packet`] builds requests and other packets byte by byte;
//! [`RawClient::bind_on`] puts the raw client on another loopback address (`127.0.0.2`), so
//! that a test can be a second peer *address*, not only a second port. [`rss_kib`] and
//! [`udp_drops`] read what the kernel knows about this process and the server's socket. Nothing
//! here judges what the server should have sent; the tests do.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use bytes::Bytes;
use tftp_handler::ErrorCode;
use tokio::net::UdpSocket;

use crate::{RawClient, Reply};

/// A datagram from the server, decoded without trusting it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    /// A DATA, ACK, OACK or ERROR.
    Reply(Reply),
    /// A read or write request (a server must never send one).
    Request,
    /// Not a TFTP packet at all; the bytes as received.
    Malformed(Vec<u8>),
}

impl Seen {
    /// Decodes `datagram` into what it is, whatever it is.
    pub fn decode(datagram: &[u8]) -> Self {
        match Reply::try_decode(&Bytes::copy_from_slice(datagram)) {
            Ok(reply) => Self::Reply(reply),
            Err(Some(_request)) => Self::Request,
            Err(None) => Self::Malformed(datagram.to_vec()),
        }
    }

    /// Whether this is an ERROR with `code`.
    pub fn is_error(&self, code: ErrorCode) -> bool {
        matches!(self, Self::Reply(Reply::Error { code: got, .. }) if *got == code)
    }

    /// Whether this is an ERROR of any code.
    pub fn is_any_error(&self) -> bool {
        matches!(self, Self::Reply(Reply::Error { .. }))
    }
}

/// One datagram a [`Probe`] received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// Where it came from.
    pub from: SocketAddr,
    /// Its UDP payload length in bytes.
    pub len: usize,
    /// What it was.
    pub packet: Seen,
}

/// A bare UDP socket aimed at the server: sends raw bytes, records whatever comes back.
#[derive(Debug)]
pub struct Probe {
    /// The probe's socket: one socket is one peer (address and port) to the server.
    socket: UdpSocket,
    /// Where datagrams go.
    server: SocketAddr,
    /// Scratch space for receiving.
    buf: Vec<u8>,
}

impl Probe {
    /// A probe on a fresh port of `ip` (a loopback address), aimed at `server`, that receives
    /// datagrams of any size whole.
    pub async fn bind(ip: IpAddr, server: SocketAddr) -> Self {
        Self::with_buffer(ip, server, 65_536).await
    }

    /// A probe like [`Probe::bind`] whose receive buffer holds `len` bytes: a longer datagram
    /// is cut to `len` (and so shows as `len` bytes long, decoded from its first `len`). For
    /// many probes at once, where only short replies are acceptable anyway: 64 KiB buffers
    /// by the hundred would dwarf the server in a memory measurement.
    pub async fn with_buffer(ip: IpAddr, server: SocketAddr, len: usize) -> Self {
        let socket = UdpSocket::bind(SocketAddr::new(ip, 0))
            .await
            .unwrap_or_else(|e| panic!("bind a probe socket on {ip}: {e}"));
        Self {
            socket,
            server,
            buf: vec![0; len],
        }
    }

    /// Sends `datagram` to the server as it is.
    pub async fn send(&self, datagram: &[u8]) {
        let sent = self
            .socket
            .send_to(datagram, self.server)
            .await
            .expect("send to the server");
        assert_eq!(sent, datagram.len(), "datagram sent whole");
    }

    /// The next datagram from anywhere, or `None` if none arrives within `wait`.
    pub async fn recv_within(&mut self, wait: Duration) -> Option<Received> {
        let received = tokio::time::timeout(wait, self.socket.recv_from(&mut self.buf)).await;
        let (len, from) = received.ok()?.expect("receive on a probe socket");
        Some(Received {
            from,
            len,
            packet: Seen::decode(&self.buf[..len]),
        })
    }

    /// Everything that arrives until `quiet` has passed without a datagram, waiting up to
    /// `first` for the first one (so a slow first answer is still seen, and anything after it
    /// gets a full `quiet` window to show up).
    pub async fn collect(&mut self, first: Duration, quiet: Duration) -> Vec<Received> {
        let mut seen = Vec::new();
        let mut wait = first;
        while let Some(received) = self.recv_within(wait).await {
            seen.push(received);
            wait = quiet;
        }
        seen
    }
}

impl RawClient {
    /// A client on a fresh port of `ip` (a loopback address other than `127.0.0.1`, such as
    /// `127.0.0.2`, makes a peer with another IP address), talking to the server at `server`.
    pub async fn bind_on(ip: IpAddr, server: SocketAddr) -> Self {
        let socket = UdpSocket::bind(SocketAddr::new(ip, 0))
            .await
            .unwrap_or_else(|e| panic!("bind a client socket on {ip}: {e}"));
        Self {
            socket,
            server,
            peer: None,
            buf: vec![0; 65_536],
        }
    }

    /// Sends `datagram` as it is (malformed or not) to the server's transfer address, as
    /// [`RawClient::send`] does with an encoded packet.
    pub async fn send_raw(&self, datagram: &[u8]) {
        self.send_bytes(datagram).await;
    }
}

/// A datagram made of `opcode` (big-endian) followed by `fields`, each ended with a NUL: a
/// request is `raw_packet(1, &[name, mode, option, value, ...])`. For packets that are *not*
/// well formed, append to or cut the result.
pub fn raw_packet(opcode: u16, fields: &[&[u8]]) -> Vec<u8> {
    let mut out = opcode.to_be_bytes().to_vec();
    for field in fields {
        out.extend_from_slice(field);
        out.push(0);
    }
    out
}

/// This process's resident set size in KiB (`VmRSS` in `/proc/self/status`).
pub fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("a VmRSS line in /proc/self/status")
}

/// Datagrams the kernel dropped on arrival at the IPv4 UDP socket bound to `addr` (the last
/// column of `/proc/net/udp`: receive buffer full), or `None` if it cannot be read.
pub fn udp_drops(addr: SocketAddr) -> Option<u64> {
    let IpAddr::V4(ip) = addr.ip() else {
        return None;
    };
    // The kernel prints the address as the in-memory u32 in hex: on little-endian machines the
    // octets come out reversed.
    let local = format!(
        "{:08X}:{:04X}",
        u32::from_ne_bytes(ip.octets()),
        addr.port()
    );
    let table = std::fs::read_to_string("/proc/net/udp").ok()?;
    table
        .lines()
        .skip(1)
        .find(|line| line.split_whitespace().nth(1) == Some(local.as_str()))
        .and_then(|line| line.split_whitespace().last()?.parse().ok())
}
