//! The contract between the server and a protocol.
//!
//! For the first datagram from a peer address that has no live session, the server calls
//! [`ProtocolHandler::open_session`] with that datagram and the session's IO ([`SessionIo`]):
//! a bounded inbound channel of the peer's later datagrams, a [`PeerSender`] that sends to the
//! peer, and a cancellation token. The handler may answer once through the sender and return
//! `None` (no session), ignore the datagram, or return a [`SessionFuture`] that the server
//! spawns and routes the peer's datagrams to until it completes. Nothing here knows the
//! protocol.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::datagram::{Datagram, Outgoing};

/// A protocol plugged into the [`Server`](crate::Server).
pub trait ProtocolHandler: Send + Sync + 'static {
    /// Called for a datagram from a peer with no live session. Return a future to open a
    /// session: the server spawns it and routes the peer's next datagrams to `io.inbound`
    /// until the future completes. Return `None` to open no session (after answering once
    /// through `io.outbound`, or not at all).
    fn open_session(&self, first: Bytes, io: SessionIo) -> Option<SessionFuture>;

    /// Called instead of [`open_session`](Self::open_session) when the server will not open a
    /// session for this peer. The default drops the datagram silently.
    fn refuse(&self, first: Bytes, reply: &PeerSender, reason: Refusal) {
        let _ = (first, reply, reason);
    }
}

/// Why the server refused to open a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Refusal {
    /// The server already holds its maximum number of live sessions.
    SessionLimit,
    /// The peer's IP address already holds its maximum number of live sessions.
    PeerLimit,
    /// The server is shutting down and takes no new sessions.
    ShuttingDown,
}

/// How a session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SessionEnd {
    /// The session is over.
    Done,
    /// The session is over, and this datagram, which it received but which belongs to a new
    /// session, is dispatched again as the first datagram from the peer once the old route
    /// is gone.
    Handoff(Bytes),
}

/// The future that runs one session.
pub type SessionFuture = Pin<Box<dyn Future<Output = SessionEnd> + Send + 'static>>;

/// Everything a session needs to talk to its peer.
#[derive(Debug)]
pub struct SessionIo {
    /// The peer this session serves.
    pub peer: SocketAddr,
    /// The peer's datagrams after the first, in arrival order. When the queue is full the
    /// server drops new datagrams (and counts them) rather than wait. Received datagrams share
    /// larger receive buffers: a session that keeps one for long should copy it.
    pub inbound: mpsc::Receiver<Bytes>,
    /// Sends datagrams to the peer.
    pub outbound: PeerSender,
    /// Cancelled when the session must stop: when the server's shutdown grace period has run
    /// out (or at once if it is zero). Sessions are expected to end promptly after it fires.
    pub cancel: CancellationToken,
}

/// Sends datagrams to one peer through the server's send loop.
#[derive(Debug, Clone)]
pub struct PeerSender {
    /// Where the datagrams go.
    peer: SocketAddr,
    /// The send loop's queue, shared by every session of the socket.
    tx: mpsc::Sender<Outgoing>,
}

/// The send loop has stopped; the datagram was not sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SendLoopClosed;

impl std::fmt::Display for SendLoopClosed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("send loop closed")
    }
}

impl std::error::Error for SendLoopClosed {}

impl PeerSender {
    pub(crate) fn new(peer: SocketAddr, tx: mpsc::Sender<Outgoing>) -> Self {
        Self { peer, tx }
    }

    /// The peer's address.
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// Queues a datagram for the peer, waiting while the send queue is full.
    pub async fn send(&self, datagram: Datagram) -> Result<(), SendLoopClosed> {
        self.tx
            .send(Outgoing {
                to: self.peer,
                datagram,
            })
            .await
            .map_err(|_| SendLoopClosed)
    }

    /// Queues a datagram if there is room now; returns `false` if it was dropped (queue full
    /// or send loop stopped). Meant for best-effort one-off replies.
    pub fn try_send(&self, datagram: Datagram) -> bool {
        self.tx
            .try_send(Outgoing {
                to: self.peer,
                datagram,
            })
            .is_ok()
    }
}

/// The far ends of a [`SessionIo`] that is not attached to a socket: feed the session's inbound
/// channel and read what it sends. Made by [`SessionIo::detached`].
#[derive(Debug)]
pub struct DetachedPeer {
    /// Feeds the session's inbound channel, as the router would.
    pub inbound: mpsc::Sender<Bytes>,
    /// What the session sent, as the send loop would see it.
    pub outbound: mpsc::Receiver<Outgoing>,
    /// The session's cancellation token.
    pub cancel: CancellationToken,
}

impl SessionIo {
    /// A session IO attached to channels instead of a socket, for driving a handler in tests
    /// (no sockets, paused time) or through a fault-injection shim.
    pub fn detached(
        peer: SocketAddr,
        inbound_depth: usize,
        outbound_depth: usize,
    ) -> (Self, DetachedPeer) {
        let (in_tx, in_rx) = mpsc::channel(inbound_depth);
        let (out_tx, out_rx) = mpsc::channel(outbound_depth);
        let cancel = CancellationToken::new();
        let io = SessionIo {
            peer,
            inbound: in_rx,
            outbound: PeerSender::new(peer, out_tx),
            cancel: cancel.clone(),
        };
        let far = DetachedPeer {
            inbound: in_tx,
            outbound: out_rx,
            cancel,
        };
        (io, far)
    }
}
