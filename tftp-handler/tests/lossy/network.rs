//! A lossy network between TFTP clients and one [`TftpHandler`], at the channel level.
//!
//! Each client gets a [`ChannelLink`] (its [`ClientLink`]) and two lossy paths: client to
//! server, ending in a small router, and server to client, fed by the send side of every
//! session the router opens. The router does for one peer address what `udp-server`'s does
//! for all: the first datagram (or one arriving after the session ended) is offered to
//! [`ProtocolHandler::open_session`], later ones go to the live session's inbound channel
//! (dropped when it is full), and a session's [`SessionEnd::Handoff`] datagram is offered
//! again. The network counts live sessions, and the DATA packets the server sends, in all
//! and to each client.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use tftp_handler::{ClientLink, TftpHandler};
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::mpsc::{self, UnboundedReceiver, UnboundedSender, WeakUnboundedSender};
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep};
use udp_server::{Datagram, ProtocolHandler, SessionEnd, SessionIo};

use super::path::{Faults, PathCounts, spawn_path};
use super::rng::Rng;

/// The server's address as clients see it (TEST-NET-2; there is no socket).
const SERVER: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(198, 51, 100, 1)), 69);

/// The inbound queue depth of a session, as the server's default.
const INBOUND_DEPTH: usize = 128;

/// A handler behind lossy paths.
pub(crate) struct Network {
    handler: Arc<TftpHandler>,
    /// Faults of the client-to-server paths.
    upstream: Faults,
    /// Faults of the server-to-client paths.
    downstream: Faults,
    /// Seeds every path.
    rng: Rng,
    /// Clients connected so far (each gets its own address).
    clients: u16,
    /// Shared counters.
    counts: Arc<Counts>,
}

/// What happened on the network.
#[derive(Debug, Default)]
pub(crate) struct Counts {
    /// Every path's faults.
    pub(crate) paths: Arc<PathCounts>,
    /// Sessions running now.
    pub(crate) live_sessions: AtomicUsize,
    /// Sessions opened in all.
    pub(crate) sessions_opened: AtomicUsize,
    /// DATA packets the server sent (before the path's faults).
    pub(crate) server_data_sent: AtomicU64,
}

/// A live session: its inbound channel and its task.
type Route = (mpsc::Sender<Bytes>, JoinHandle<()>);

impl Network {
    /// A network with `upstream` and `downstream` faults in front of `handler`.
    pub(crate) fn new(
        handler: TftpHandler,
        upstream: Faults,
        downstream: Faults,
        seed: u64,
    ) -> Self {
        Self {
            handler: Arc::new(handler),
            upstream,
            downstream,
            rng: Rng::new(seed),
            clients: 0,
            counts: Arc::default(),
        }
    }

    pub(crate) fn counts(&self) -> &Counts {
        &self.counts
    }

    /// The server's address, to give the client.
    pub(crate) fn server(&self) -> SocketAddr {
        SERVER
    }

    /// A new client: its link to the server through a fresh pair of lossy paths.
    pub(crate) fn connect(&mut self) -> ChannelLink {
        self.clients += 1;
        let peer = SocketAddr::from(([192, 0, 2, 1], self.clients));
        let (to_client, from_server) = mpsc::unbounded_channel();
        let downstream = spawn_path(
            self.downstream,
            self.rng.fork(),
            Arc::clone(&self.counts.paths),
            to_client,
        );
        let (to_router, routed) = mpsc::unbounded_channel();
        let upstream = spawn_path(
            self.upstream,
            self.rng.fork(),
            Arc::clone(&self.counts.paths),
            to_router.clone(),
        );
        let data_sent = Arc::new(AtomicU64::new(0));
        let router = Router {
            handler: Arc::clone(&self.handler),
            peer,
            downstream,
            requeue: to_router.downgrade(),
            counts: Arc::clone(&self.counts),
            data_sent: Arc::clone(&data_sent),
        };
        tokio::spawn(router.run(routed));
        ChannelLink {
            to_server: upstream,
            from_server,
            data_sent,
        }
    }

    /// Waits (in paused time) until no session is live, for at most `limit`; true if none is.
    pub(crate) async fn wait_idle(&self, limit: Duration) -> bool {
        let until = Instant::now() + limit;
        while self.counts.live_sessions.load(Ordering::SeqCst) > 0 {
            if Instant::now() >= until {
                return false;
            }
            sleep(Duration::from_millis(100)).await;
        }
        true
    }
}

/// Routes one peer's datagrams to its session, opening one when there is none.
struct Router {
    handler: Arc<TftpHandler>,
    peer: SocketAddr,
    /// The server-to-client path.
    downstream: UnboundedSender<Bytes>,
    /// The router's own input, for a session's handoff datagram (weak: the router ends when
    /// the client's path does).
    requeue: WeakUnboundedSender<Bytes>,
    counts: Arc<Counts>,
    /// DATA the server sent this client.
    data_sent: Arc<AtomicU64>,
}

impl Router {
    async fn run(self, mut routed: UnboundedReceiver<Bytes>) {
        let mut live: Option<Route> = None;
        while let Some(datagram) = routed.recv().await {
            let first = match &live {
                Some((inbound, _)) => match inbound.try_send(datagram) {
                    Ok(()) | Err(TrySendError::Full(_)) => continue,
                    Err(TrySendError::Closed(datagram)) => datagram,
                },
                None => datagram,
            };
            live = self.open(first);
        }
        // The client is gone; the route stays until its session ends, as in the server.
        if let Some((_inbound, task)) = live {
            let _ = task.await;
        }
    }

    /// Offers `first` to the handler; the route, if a session opened.
    fn open(&self, first: Bytes) -> Option<Route> {
        let (io, mut far) = SessionIo::detached(self.peer, INBOUND_DEPTH, 4096);
        let downstream = self.downstream.clone();
        let counts = Arc::clone(&self.counts);
        let data_sent = Arc::clone(&self.data_sent);
        tokio::spawn(async move {
            while let Some(outgoing) = far.outbound.recv().await {
                let datagram = outgoing.datagram.to_vec();
                if datagram.starts_with(&[0, 3]) {
                    counts.server_data_sent.fetch_add(1, Ordering::Relaxed);
                    data_sent.fetch_add(1, Ordering::Relaxed);
                }
                let _ = downstream.send(Bytes::from(datagram));
            }
        });
        let session = self.handler.open_session(first, io)?;
        self.counts.live_sessions.fetch_add(1, Ordering::SeqCst);
        self.counts.sessions_opened.fetch_add(1, Ordering::SeqCst);
        let counts = Arc::clone(&self.counts);
        let requeue = self.requeue.clone();
        let task = tokio::spawn(async move {
            if let SessionEnd::Handoff(datagram) = session.await {
                if let Some(requeue) = requeue.upgrade() {
                    let _ = requeue.send(datagram);
                }
            }
            counts.live_sessions.fetch_sub(1, Ordering::SeqCst);
        });
        Some((far.inbound, task))
    }
}

/// A client's end of its paths.
pub(crate) struct ChannelLink {
    /// Into the client-to-server path.
    to_server: UnboundedSender<Bytes>,
    /// Out of the server-to-client path.
    from_server: UnboundedReceiver<Bytes>,
    /// DATA the server sent this client.
    data_sent: Arc<AtomicU64>,
}

impl ChannelLink {
    /// DATA packets the server has sent this client so far.
    pub(crate) fn data_sent(&self) -> u64 {
        self.data_sent.load(Ordering::Relaxed)
    }
}

impl ClientLink for ChannelLink {
    async fn send_datagram(&mut self, datagram: &Datagram, _to: SocketAddr) -> io::Result<()> {
        self.to_server
            .send(Bytes::from(datagram.to_vec()))
            .map_err(|_| io::ErrorKind::BrokenPipe.into())
    }

    async fn recv_datagram(&mut self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        let datagram = self
            .from_server
            .recv()
            .await
            .ok_or(io::ErrorKind::BrokenPipe)?;
        let len = datagram.len().min(buf.len());
        buf[..len].copy_from_slice(&datagram[..len]);
        Ok((len, SERVER))
    }
}
