//! A TFTP client built from the server's own parts: a download is the `Receiver` state
//! machine that serves a write request, an upload the `Sender` that serves a read request,
//! each started with the client's handshake (send the request, resend it on timeout, accept
//! or refuse the server's OACK). The same codec, option rules, windows, block-number wrap and
//! retransmission rules apply in both directions.
//!
//! Each transfer uses its own UDP socket ([`Client::get`], [`Client::put`]; on Linux a
//! windowed download takes a window of DATA in one receive, see `client_socket`), or any
//! other datagram path that implements [`ClientLink`] ([`Client::get_over`],
//! [`Client::put_over`]: channels, a fault-injecting relay in tests). RFC 1350 lets a server
//! answer from a new port (its transfer ID): the client locks onto the address of the first
//! reply and answers datagrams from anywhere else with ERROR 5, leaving the transfer
//! undisturbed.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use thiserror::Error;
use tokio::net::UdpSocket;
use tokio::time::{Instant, sleep, sleep_until};
use udp_server::Datagram;

use crate::client_socket::ClientSocket;
use crate::error::ErrorReply;
use crate::options::{DEFAULT_BLOCK_SIZE, RequestOptions};
use crate::packet::{ErrorCode, Mode, Packet, Request, TftpOption};
use crate::transfer::{BlockSource, Consumer, Outcome, Receiver, Sender, Timing, Transfer, now};

/// The smallest receive buffer: room for any OACK to the options a client asks for, and for
/// an ERROR message well past what servers send (a longer one is cut, and still read).
const MIN_RECEIVE_BUFFER: usize = 2048;

/// How a [`Client`] behaves. Start from [`ClientConfig::default`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClientConfig {
    /// Time to wait before resending (unless a `timeout` option is agreed); with an adaptive
    /// wait, the first and the longest.
    pub retry_timeout: Duration,
    /// The shortest wait before resending. Below `retry_timeout`, the wait adapts to the
    /// measured round trip (RFC 6298) as the server's does; equal to it (the default), the
    /// wait is fixed, as in common clients.
    pub min_retry_timeout: Duration,
    /// The transfer is abandoned after the server has been silent for
    /// `retry_timeout x (max_retries + 1)`.
    pub max_retries: u32,
    /// Transfer mode.
    pub mode: Mode,
    /// Options to ask for.
    pub options: RequestOptions,
    /// The largest file a download may return.
    pub max_file_size: u64,
    /// For load testing: wait this long before sending each packet (a slow client). Zero for
    /// normal use.
    pub send_delay: Duration,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            retry_timeout: Duration::from_secs(1),
            min_retry_timeout: Duration::from_secs(1),
            max_retries: 5,
            mode: Mode::Octet,
            options: RequestOptions::default(),
            max_file_size: 4 << 30,
            send_delay: Duration::ZERO,
        }
    }
}

/// Why a transfer failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The local socket failed.
    #[error("socket error: {0}")]
    Io(#[from] io::Error),
    /// The server sent an ERROR.
    #[error("server error {}: {message}", code.as_u16())]
    Server {
        /// Its code.
        code: ErrorCode,
        /// Its message.
        message: String,
    },
    /// The server stopped answering.
    #[error("timed out: the server stopped answering")]
    TimedOut,
    /// The client ended the transfer with this ERROR (e.g. an OACK it cannot accept).
    #[error("transfer abandoned: {0}")]
    Abandoned(ErrorReply),
}

/// A datagram path between a [`Client`] and a server. Implemented for [`UdpSocket`]; tests
/// implement it over channels (with faults injected, for instance).
pub trait ClientLink {
    /// Sends `datagram` to `to`.
    fn send_datagram(
        &mut self,
        datagram: &Datagram,
        to: SocketAddr,
    ) -> impl Future<Output = io::Result<()>> + Send;

    /// Receives the next datagram into `buf`: its length and sender. Must be cancel-safe (it
    /// races the retransmission timer).
    fn recv_datagram(
        &mut self,
        buf: &mut [u8],
    ) -> impl Future<Output = io::Result<(usize, SocketAddr)>> + Send;
}

impl ClientLink for UdpSocket {
    async fn send_datagram(&mut self, datagram: &Datagram, to: SocketAddr) -> io::Result<()> {
        datagram.send_to(self, to).await.map(drop)
    }

    async fn recv_datagram(&mut self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.recv_from(buf).await
    }
}

/// A TFTP client.
#[derive(Debug, Clone, Default)]
pub struct Client {
    /// Settings for every transfer.
    config: ClientConfig,
}

impl Client {
    /// A client with `config`.
    pub fn new(config: ClientConfig) -> Self {
        Self { config }
    }

    /// The client's settings.
    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    /// Downloads `filename` from `server`, over a fresh UDP socket.
    pub async fn get(&self, server: SocketAddr, filename: &str) -> Result<Bytes, ClientError> {
        let mut socket = self.download_socket(server).await?;
        self.get_over(&mut socket, server, filename).await
    }

    /// Downloads `filename` from `server` over a fresh UDP socket without holding the file:
    /// each block's bytes (translated, in netascii mode) go to `consume` as they arrive, in
    /// order, so that a file of any size costs one block of memory. An `Err(message)` from
    /// `consume` abandons the transfer: the server gets ERROR 0 with the message, and this
    /// returns [`ClientError::Abandoned`]. Returns the number of bytes received.
    pub async fn get_with<F>(
        &self,
        server: SocketAddr,
        filename: &str,
        consume: F,
    ) -> Result<u64, ClientError>
    where
        F: FnMut(&[u8]) -> Result<(), String> + Send,
    {
        let mut socket = self.download_socket(server).await?;
        let (_, received) = self
            .download(&mut socket, server, filename, Some(Box::new(consume)))
            .await?;
        Ok(received)
    }

    /// A socket for downloading from `server`.
    async fn download_socket(&self, server: SocketAddr) -> io::Result<ClientSocket> {
        // Only windows of DATA come as runs worth coalescing.
        let windowed = self.config.options.window_size.is_some_and(|w| w > 1);
        ClientSocket::bind_like(server, windowed).await
    }

    /// Uploads `contents` to `server` as `filename`, over a fresh UDP socket.
    pub async fn put(
        &self,
        server: SocketAddr,
        filename: &str,
        contents: Bytes,
    ) -> Result<(), ClientError> {
        // An upload receives only acknowledgements: nothing to coalesce.
        let mut socket = ClientSocket::bind_like(server, false).await?;
        self.put_over(&mut socket, server, filename, contents).await
    }

    /// Downloads `filename` from `server` over `link`.
    pub async fn get_over(
        &self,
        link: &mut impl ClientLink,
        server: SocketAddr,
        filename: &str,
    ) -> Result<Bytes, ClientError> {
        let (contents, _) = self.download(link, server, filename, None).await?;
        Ok(contents.unwrap_or_default())
    }

    /// Downloads `filename` from `server` over `link`, into `consume` or else into the
    /// returned contents; with the number of bytes received.
    async fn download(
        &self,
        link: &mut impl ClientLink,
        server: SocketAddr,
        filename: &str,
        consume: Option<Consumer<'_>>,
    ) -> Result<(Option<Bytes>, u64), ClientError> {
        let request = self.request(Opcode::Read, filename, 0);
        let receiver = Receiver::download(
            request,
            self.config.options,
            self.config.mode,
            consume,
            self.config.max_file_size,
            self.timing(),
            now(),
        );
        self.run(link, server, receiver).await
    }

    /// Uploads `contents` to `server` as `filename` over `link`.
    pub async fn put_over(
        &self,
        link: &mut impl ClientLink,
        server: SocketAddr,
        filename: &str,
        contents: Bytes,
    ) -> Result<(), ClientError> {
        let source = BlockSource::new(contents, self.config.mode);
        let request = self.request(Opcode::Write, filename, source.transfer_size());
        let sender = Sender::upload(source, request, self.config.options, self.timing(), now());
        self.run(link, server, sender).await.map(drop)
    }

    fn timing(&self) -> Timing {
        Timing {
            timeout: self.config.retry_timeout,
            max_retries: self.config.max_retries,
            // A client's request is resent as often as any packet: the server may be busy.
            first_reply_retries: self.config.max_retries,
            adaptive_floor: Timing::adaptive_floor(
                self.config.min_retry_timeout,
                self.config.retry_timeout,
            ),
        }
    }

    /// Room for the largest datagram a transfer needs to take whole: a DATA block of the
    /// block size asked for (with a byte over, so that an oversized block is seen as one), or
    /// an OACK or ERROR. Sized to the transfer rather than to any UDP datagram: zeroing 64 KiB
    /// cost short transfers more than their packets did (5% of the client's CPU on 5,000 x
    /// 1 KiB downloads, in `perf`).
    fn receive_buffer_len(&self) -> usize {
        let block_size = self.config.options.block_size.unwrap_or(DEFAULT_BLOCK_SIZE);
        (usize::from(block_size) + 5).max(MIN_RECEIVE_BUFFER)
    }

    /// The RRQ or WRQ datagram; `size` is the `tsize` to announce.
    fn request(&self, opcode: Opcode, filename: &str, size: u64) -> Bytes {
        let pairs = self.config.options.pairs(size);
        let request = Request {
            filename,
            mode: self.config.mode,
            options: pairs
                .iter()
                .map(|(name, value)| TftpOption { name, value })
                .collect(),
        };
        match opcode {
            Opcode::Read => Packet::Rrq(request),
            Opcode::Write => Packet::Wrq(request),
        }
        .to_bytes()
    }

    /// Drives `transfer` over `link`; returns the downloaded contents, if any, and the file
    /// bytes moved.
    async fn run<T: Transfer>(
        &self,
        link: &mut impl ClientLink,
        server: SocketAddr,
        mut transfer: T,
    ) -> Result<(Option<Bytes>, u64), ClientError> {
        let mut peer: Option<SocketAddr> = None;
        let mut buf = vec![0; self.receive_buffer_len()];
        let mut downloaded = None;
        let timer = sleep_until(Instant::now());
        tokio::pin!(timer);
        loop {
            while let Some(datagram) = transfer.poll_transmit() {
                if !self.config.send_delay.is_zero() {
                    sleep(self.config.send_delay).await;
                }
                let to = peer.unwrap_or(server);
                link.send_datagram(&datagram, to).await?;
            }
            if let Some(contents) = transfer.take_upload() {
                downloaded = Some(contents);
                transfer.handle_published(now(), Ok(()));
                continue;
            }
            if transfer.is_finished() {
                break;
            }
            let deadline = transfer.poll_timeout();
            if let Some(deadline) = deadline {
                timer.as_mut().reset(Instant::from_std(deadline));
            }
            tokio::select! {
                received = link.recv_datagram(&mut buf) => {
                    let (len, from) = received?;
                    // Lock onto the port the server answers from (its transfer ID).
                    match peer {
                        None if from.ip() == server.ip() => peer = Some(from),
                        Some(locked) if locked == from => {}
                        _ => {
                            let stray = ErrorReply::new(ErrorCode::UnknownTransferId, "unknown transfer ID");
                            link.send_datagram(&Datagram::new(stray.to_bytes()), from).await?;
                            continue;
                        }
                    }
                    if let Ok(packet) = Packet::decode(&buf[..len]) {
                        transfer.handle_packet(now(), &packet);
                    }
                }
                () = &mut timer, if deadline.is_some() => transfer.handle_timeout(now()),
            }
        }
        match transfer.outcome() {
            Some(Outcome::Completed) => Ok((downloaded, transfer.progress().bytes)),
            Some(Outcome::PeerError { code, message }) => Err(ClientError::Server {
                code: *code,
                message: message.clone(),
            }),
            Some(Outcome::Failed(reply)) => Err(ClientError::Abandoned(reply.clone())),
            Some(Outcome::TimedOut) | None => Err(ClientError::TimedOut),
        }
    }
}

/// Which request to send.
#[derive(Debug, Clone, Copy)]
enum Opcode {
    Read,
    Write,
}
