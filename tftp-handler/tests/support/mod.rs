//! The harness for driving a [`TftpHandler`] session through its channels, with no socket.
//!
//! A test opens a session with [`start`] (or [`open`], when it expects no session) and talks
//! to it through a [`Peer`]: [`Peer::send`] feeds the session's inbound channel as the router
//! would, and [`Peer::expect`] reads the next datagram the session queued for the send loop,
//! decoded into an owned [`Reply`]. Every wait is bounded by [`WAIT`], and the tests run with
//! paused time, so a timer in the session fires as soon as nothing else can run: waiting costs
//! no wall-clock time, and the time a reply arrived is exact. Packet builders ([`rrq`],
//! [`ack`], ...) encode with the crate's own codec. Nothing here judges the protocol: the
//! assertions are the tests' business.

use std::net::SocketAddr;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use tftp_handler::packet::{Request, TftpOption};
use tftp_handler::{
    ErrorCode, MemoryStore, MemoryUpload, Mode, Packet, Store, StoreError, TftpHandler, Upload,
};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep_until, timeout, timeout_at};
use tokio_util::sync::CancellationToken;
use udp_server::{Outgoing, ProtocolHandler, SessionEnd, SessionIo};

/// The longest any single wait may take before the test fails. Time is paused, so a long
/// bound costs nothing, and it is far beyond every timer of the default configuration.
pub(crate) const WAIT: Duration = Duration::from_secs(600);

/// How late after its due time a timer-driven reply may come: tokio's timers tick in
/// milliseconds.
const SLACK: Duration = Duration::from_millis(5);

/// The address of the test's peer (TEST-NET-1, never reached: there is no socket).
pub(crate) fn peer_addr(port: u16) -> SocketAddr {
    SocketAddr::from(([192, 0, 2, 1], port))
}

/// A datagram the session sent, in owned form, for assertions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Reply {
    /// DATA: block number and payload.
    Data(u16, Vec<u8>),
    /// ACK of a block.
    Ack(u16),
    /// ERROR: code and message.
    Error(ErrorCode, String),
    /// OACK: the options, sorted by name so that order does not matter.
    Oack(Vec<(String, String)>),
}

impl Reply {
    /// Decodes a datagram the session sent; a request or an undecodable datagram fails the test.
    pub(crate) fn decode(datagram: &[u8]) -> Self {
        match Packet::decode(datagram) {
            Ok(Packet::Data { block, data }) => Self::Data(block, data.to_vec()),
            Ok(Packet::Ack { block }) => Self::Ack(block),
            Ok(Packet::Error { code, message }) => Self::Error(code, message.to_owned()),
            Ok(Packet::Oack { options }) => Self::Oack(owned_options(&options)),
            other => panic!("the session sent something a server never sends: {other:?}"),
        }
    }
}

/// Options as sorted owned pairs.
fn owned_options(options: &[TftpOption<'_>]) -> Vec<(String, String)> {
    let mut pairs: Vec<_> = options
        .iter()
        .map(|o| (o.name.to_owned(), o.value.to_owned()))
        .collect();
    pairs.sort();
    pairs
}

/// Owned option pairs, sorted, to compare with a [`Reply::Oack`].
pub(crate) fn options(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut pairs: Vec<_> = pairs
        .iter()
        .map(|&(n, v)| (n.to_owned(), v.to_owned()))
        .collect();
    pairs.sort();
    pairs
}

/// The far side of one session: what the router and the send loop would see.
#[derive(Debug)]
pub(crate) struct Peer {
    /// The peer's address; every datagram the session sends must go there.
    addr: SocketAddr,
    /// Feeds the session's inbound channel.
    inbound: mpsc::Sender<Bytes>,
    /// What the session queued for the send loop.
    outbound: mpsc::Receiver<Outgoing>,
    /// The session's cancellation token.
    cancel: CancellationToken,
}

/// Offers `first` from `addr` to `handler`: the peer, and the session task if one opened.
pub(crate) fn open<S: Store>(
    handler: &TftpHandler<S>,
    addr: SocketAddr,
    first: Bytes,
) -> (Peer, Option<JoinHandle<SessionEnd>>) {
    let (io, far) = SessionIo::detached(addr, 64, 64);
    let task = handler.open_session(first, io).map(tokio::spawn);
    let peer = Peer {
        addr,
        inbound: far.inbound,
        outbound: far.outbound,
        cancel: far.cancel,
    };
    (peer, task)
}

/// Opens a session for `first` from the default peer; fails the test if none opens.
pub(crate) fn start<S: Store>(
    handler: &TftpHandler<S>,
    first: Bytes,
) -> (Peer, JoinHandle<SessionEnd>) {
    start_from(handler, peer_addr(50_000), first)
}

/// Opens a session for `first` from `addr`; fails the test if none opens.
pub(crate) fn start_from<S: Store>(
    handler: &TftpHandler<S>,
    addr: SocketAddr,
    first: Bytes,
) -> (Peer, JoinHandle<SessionEnd>) {
    match open(handler, addr, first) {
        (peer, Some(task)) => (peer, task),
        (_, None) => panic!("the handler opened no session"),
    }
}

/// How the session task ended; fails the test if it does not end within [`WAIT`].
pub(crate) async fn end_of(task: JoinHandle<SessionEnd>) -> SessionEnd {
    timeout(WAIT, task)
        .await
        .expect("the session did not end")
        .expect("the session panicked")
}

/// How the session task ended, failing the test unless it ended without the clock moving.
pub(crate) async fn end_at_once(task: JoinHandle<SessionEnd>) -> SessionEnd {
    let start = Instant::now();
    let end = end_of(task).await;
    assert_eq!(
        start.elapsed(),
        Duration::ZERO,
        "the session did not end at once"
    );
    end
}

impl Peer {
    /// Delivers `datagram` to the session, as the router would.
    pub(crate) fn send(&self, datagram: Bytes) {
        self.inbound
            .try_send(datagram)
            .expect("the session's inbound queue is full or closed");
    }

    /// True once the session has stopped reading (it ended).
    pub(crate) fn session_ended(&self) -> bool {
        self.inbound.is_closed()
    }

    /// Cancels the session's token, as the server does when its shutdown grace runs out.
    pub(crate) fn cancel(&self) {
        self.cancel.cancel();
    }

    /// The next datagram the session sends, within [`WAIT`].
    pub(crate) async fn expect(&mut self) -> Reply {
        match timeout(WAIT, self.outbound.recv()).await {
            Ok(Some(outgoing)) => {
                assert_eq!(outgoing.to, self.addr, "sent to the wrong peer");
                Reply::decode(&outgoing.datagram.to_vec())
            }
            Ok(None) => panic!("the session ended instead of sending"),
            Err(_) => panic!("the session sent nothing within {WAIT:?}"),
        }
    }

    /// The next datagram, which must be DATA `block`; its payload.
    pub(crate) async fn expect_data(&mut self, block: u16) -> Vec<u8> {
        match self.expect().await {
            Reply::Data(got, data) if got == block => data,
            other => panic!("expected DATA {block}, got {other:?}"),
        }
    }

    /// The next datagram, which must come exactly `delay` from now (a timer's doing).
    pub(crate) async fn expect_after(&mut self, delay: Duration) -> Reply {
        let start = Instant::now();
        let reply = self.expect().await;
        let waited = start.elapsed();
        assert!(
            waited >= delay && waited <= delay + SLACK,
            "{reply:?} came after {waited:?}, expected after {delay:?}"
        );
        reply
    }

    /// Fails the test if the session sends anything within `period`; the clock moves on by
    /// `period` either way.
    pub(crate) async fn expect_silence(&mut self, period: Duration) {
        let deadline = Instant::now() + period;
        match timeout_at(deadline, self.outbound.recv()).await {
            Ok(Some(outgoing)) => panic!(
                "expected silence, got {:?}",
                Reply::decode(&outgoing.datagram.to_vec())
            ),
            Ok(None) => sleep_until(deadline).await, // ended: silent for good
            Err(_) => {}
        }
    }

    /// Fails the test unless the session ends without sending anything more.
    pub(crate) async fn expect_closed(&mut self) {
        let rest = self.rest().await;
        assert!(rest.is_empty(), "expected no more datagrams, got {rest:?}");
    }

    /// Everything the session sends until it ends, with the time each came (from now).
    pub(crate) async fn rest_timed(&mut self) -> Vec<(Duration, Reply)> {
        let start = Instant::now();
        let mut sent = Vec::new();
        loop {
            match timeout(WAIT, self.outbound.recv()).await {
                Ok(Some(outgoing)) => {
                    let reply = Reply::decode(&outgoing.datagram.to_vec());
                    sent.push((start.elapsed(), reply));
                }
                Ok(None) => return sent,
                Err(_) => panic!("the session did not end; it sent {sent:?}"),
            }
        }
    }

    /// Everything the session sends until it ends.
    pub(crate) async fn rest(&mut self) -> Vec<Reply> {
        self.rest_timed()
            .await
            .into_iter()
            .map(|(_, r)| r)
            .collect()
    }

    /// Plays a well-behaved client of a read whose first window is on its way (DATA 1 after a
    /// plain request, or after ACK 0 of an OACK): takes blocks in order, acknowledges the last
    /// of every `window` blocks, and returns the file once a short block has been
    /// acknowledged. Any block out of order fails the test.
    pub(crate) async fn read_to_end(&mut self, block_size: usize, window: usize) -> Vec<u8> {
        let mut file = Vec::new();
        let mut block: u16 = 0;
        loop {
            for _ in 0..window {
                block = block.wrapping_add(1);
                let data = self.expect_data(block).await;
                file.extend_from_slice(&data);
                if data.len() < block_size {
                    self.send(ack(block));
                    return file;
                }
            }
            self.send(ack(block));
        }
    }
}

/// A [`MemoryStore`] whose uploads take `delay` to publish, so that a test can tell whether
/// the final ACK of an upload waits for the file to be in the store.
#[derive(Debug, Clone, Default)]
pub(crate) struct SlowStore {
    /// Where the files are.
    pub(crate) files: MemoryStore,
    /// How long each publish takes.
    pub(crate) delay: Duration,
}

/// An upload into a [`SlowStore`].
#[derive(Debug)]
pub(crate) struct SlowUpload {
    /// The real reservation.
    upload: MemoryUpload,
    /// How long publishing takes.
    delay: Duration,
}

#[async_trait]
impl Store for SlowStore {
    type Upload = SlowUpload;

    async fn read(&self, name: &str) -> Result<Bytes, StoreError> {
        self.files.read(name).await
    }

    async fn begin_upload(&self, name: &str, overwrite: bool) -> Result<SlowUpload, StoreError> {
        let upload = self.files.begin_upload(name, overwrite).await?;
        Ok(SlowUpload {
            upload,
            delay: self.delay,
        })
    }

    fn max_file_size(&self) -> u64 {
        self.files.max_file_size()
    }
}

#[async_trait]
impl Upload for SlowUpload {
    fn reserve(&mut self, len: u64) -> Result<(), StoreError> {
        self.upload.reserve(len)
    }

    async fn publish(self, contents: Bytes) -> Result<(), StoreError> {
        tokio::time::sleep(self.delay).await;
        self.upload.publish(contents).await
    }
}

/// A request body with `options` (name, value).
fn request<'a>(filename: &'a str, mode: Mode, options: &[(&'a str, &'a str)]) -> Request<'a> {
    Request {
        filename,
        mode,
        options: options
            .iter()
            .map(|&(name, value)| TftpOption { name, value })
            .collect(),
    }
}

/// An RRQ.
pub(crate) fn rrq(filename: &str, mode: Mode, options: &[(&str, &str)]) -> Bytes {
    Packet::Rrq(request(filename, mode, options)).to_bytes()
}

/// A WRQ.
pub(crate) fn wrq(filename: &str, mode: Mode, options: &[(&str, &str)]) -> Bytes {
    Packet::Wrq(request(filename, mode, options)).to_bytes()
}

/// A DATA packet.
pub(crate) fn data(block: u16, data: &[u8]) -> Bytes {
    Packet::Data { block, data }.to_bytes()
}

/// An ACK packet.
pub(crate) fn ack(block: u16) -> Bytes {
    Packet::Ack { block }.to_bytes()
}

/// An ERROR packet.
pub(crate) fn error(code: ErrorCode, message: &str) -> Bytes {
    Packet::Error { code, message }.to_bytes()
}

/// `len` bytes of a pattern that does not repeat at any power-of-two period, so that a block
/// delivered in the wrong place shows.
pub(crate) fn file(len: usize) -> Bytes {
    (0..len).map(|i| (i % 251) as u8).collect()
}
