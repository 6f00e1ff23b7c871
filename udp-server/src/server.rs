//! The server: one receive loop, one send loop, and graceful shutdown.
//!
//! [`Server::run`] owns the socket for its lifetime. The receive loop reads datagrams in
//! batches into shared buffers (one copy, out of the kernel; see `receive`), offers each to
//! the router, and opens sessions through the [`ProtocolHandler`] for peers without one. It
//! never waits on a session: a full inbound queue drops the datagram. Per-datagram errors
//! (an ICMP error that reaches the socket, e.g. `ECONNREFUSED` where the OS reports
//! port-unreachable on an unconnected socket; Linux does not without `IP_RECVERR`) are
//! counted, logged and survived; only a fatal socket error ends the server. The send loop drains the outbound queue that
//! every session shares.
//!
//! Shutdown, when the caller's token is cancelled: no new sessions; live sessions keep being
//! served for up to [`ServerConfig::shutdown_grace`]; then their tokens are cancelled and the
//! server waits briefly for them to end (a session that ignores its token is left running);
//! finally the outbound queue is flushed and `run` returns.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use tokio::io::Interest;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, error, info, warn};

use crate::datagram::Outgoing;
use crate::handler::{PeerSender, ProtocolHandler, Refusal, SessionEnd, SessionIo};
use crate::receive::{BatchReceiver, Fill, SLOTS};
use crate::router::{Delivery, RouteId, Router};
use crate::segment;
use crate::send_many;
use crate::stats::Stats;

/// How many datagrams the receive loop takes from the socket per wake-up, at most, before it
/// lets the sessions run.
const RECEIVE_BATCH: usize = 32;

/// How many outgoing datagrams the send loop takes from its queue per wake-up.
const SEND_BATCH: usize = 64;

/// Limits and timings of a [`Server`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ServerConfig {
    /// Live sessions at most; a new peer beyond it is [refused](Refusal::SessionLimit).
    pub max_sessions: usize,
    /// Live sessions at most from one IP address (all its ports together); a new peer beyond
    /// it is [refused](Refusal::PeerLimit). Unlimited by default.
    pub max_sessions_per_ip: usize,
    /// Datagrams queued per session before new ones are dropped.
    pub inbound_queue_depth: usize,
    /// Datagrams queued for the send loop before sessions wait to send.
    pub outbound_queue_depth: usize,
    /// How long live sessions may keep running after shutdown is requested.
    pub shutdown_grace: Duration,
    /// After the grace period, how long to wait for cancelled sessions to end before giving
    /// up on them.
    pub cancel_wait: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            max_sessions: 10_000,
            max_sessions_per_ip: usize::MAX,
            inbound_queue_depth: 128,
            outbound_queue_depth: 4096,
            shutdown_grace: Duration::from_secs(10),
            cancel_wait: Duration::from_secs(2),
        }
    }
}

impl ServerConfig {
    /// Sets [`max_sessions`](Self::max_sessions).
    pub fn with_max_sessions(mut self, max_sessions: usize) -> Self {
        self.max_sessions = max_sessions;
        self
    }

    /// Sets [`max_sessions_per_ip`](Self::max_sessions_per_ip).
    pub fn with_max_sessions_per_ip(mut self, max_sessions: usize) -> Self {
        self.max_sessions_per_ip = max_sessions;
        self
    }

    /// Sets [`inbound_queue_depth`](Self::inbound_queue_depth) (at least 1).
    pub fn with_inbound_queue_depth(mut self, depth: usize) -> Self {
        self.inbound_queue_depth = depth.max(1);
        self
    }

    /// Sets [`outbound_queue_depth`](Self::outbound_queue_depth) (at least 1).
    pub fn with_outbound_queue_depth(mut self, depth: usize) -> Self {
        self.outbound_queue_depth = depth.max(1);
        self
    }

    /// Sets [`shutdown_grace`](Self::shutdown_grace).
    pub fn with_shutdown_grace(mut self, grace: Duration) -> Self {
        self.shutdown_grace = grace;
        self
    }

    /// Sets [`cancel_wait`](Self::cancel_wait).
    pub fn with_cancel_wait(mut self, wait: Duration) -> Self {
        self.cancel_wait = wait;
        self
    }
}

/// A UDP server for one [`ProtocolHandler`]. Cheap to clone; every clone shares the handler
/// and the counters, so one server can [`run`](Self::run) on several sockets at once.
#[derive(Debug)]
pub struct Server<H> {
    /// The protocol.
    handler: Arc<H>,
    /// Limits and timings.
    config: ServerConfig,
    /// Counters, shared with whoever asked for them.
    stats: Arc<Stats>,
}

impl<H> Clone for Server<H> {
    fn clone(&self) -> Self {
        Self {
            handler: Arc::clone(&self.handler),
            config: self.config.clone(),
            stats: Arc::clone(&self.stats),
        }
    }
}

impl<H: ProtocolHandler> Server<H> {
    /// A server for `handler` with `config`.
    pub fn new(handler: H, config: ServerConfig) -> Self {
        Self::with_shared_handler(Arc::new(handler), config)
    }

    /// A server for a handler the caller keeps a handle to.
    pub fn with_shared_handler(handler: Arc<H>, config: ServerConfig) -> Self {
        Self {
            handler,
            config,
            stats: Arc::default(),
        }
    }

    /// The server's counters (live; read them with [`Stats::snapshot`]).
    pub fn stats(&self) -> Arc<Stats> {
        Arc::clone(&self.stats)
    }

    /// Serves `socket` until `shutdown` is cancelled and the shutdown sequence completes (see
    /// the module docs), or until a fatal socket error, which is returned after the same
    /// sequence without the grace period.
    pub async fn run(&self, socket: UdpSocket, shutdown: CancellationToken) -> io::Result<()> {
        let socket = Arc::new(socket);
        let local = socket.local_addr()?;
        info!(%local, "udp server listening");
        let (out_tx, out_rx) = mpsc::channel(self.config.outbound_queue_depth);
        let flush = CancellationToken::new();
        let send_loop = tokio::spawn(send_loop(
            Arc::clone(&socket),
            out_rx,
            Arc::clone(&self.stats),
            flush.clone(),
        ));
        let mut receive = ReceiveLoop {
            socket,
            handler: Arc::clone(&self.handler),
            config: self.config.clone(),
            stats: Arc::clone(&self.stats),
            router: Router::default(),
            out_tx,
            sessions: TaskTracker::new(),
            sessions_cancel: CancellationToken::new(),
            ended: mpsc::unbounded_channel(),
            receiver: BatchReceiver::new(),
            received: Vec::with_capacity(SLOTS),
        };
        let result = receive.run(shutdown).await;
        receive.sessions.close();
        // Tasks whose routes are gone may still be finishing (a last datagram to send); a
        // session that ignores its cancellation never finishes, so the wait is bounded.
        let finishing = receive.sessions.wait();
        if tokio::time::timeout(self.config.cancel_wait, finishing)
            .await
            .is_err()
        {
            warn!(
                left = receive.sessions.len(),
                "session tasks still running; leaving them"
            );
        }
        drop(receive);
        // Sessions left running still hold senders, so the queue would never close by itself:
        // close it, and the send loop ends once it has sent what is queued.
        flush.cancel();
        if let Err(e) = send_loop.await {
            error!("send loop failed: {e}");
        }
        info!(%local, "udp server stopped");
        result
    }
}

/// A session task's last word to the receive loop.
#[derive(Debug)]
struct SessionEnded {
    /// Whose route to remove.
    peer: SocketAddr,
    /// Which session of that peer ended.
    id: RouteId,
    /// How it ended (maybe with a datagram for a new session).
    end: SessionEnd,
}

/// Sends [`SessionEnded`] when a session task finishes, even if it panicked or was dropped, so
/// that a route can never outlive its session.
struct EndNotice {
    /// Filled in by the session when it returns normally.
    end: SessionEnd,
    /// The peer and route id, taken when the notice is sent.
    route: Option<(SocketAddr, RouteId)>,
    /// The receive loop's end-of-session queue.
    tx: mpsc::UnboundedSender<SessionEnded>,
    /// Counts the close.
    stats: Arc<Stats>,
}

impl Drop for EndNotice {
    fn drop(&mut self) {
        Stats::bump(&self.stats.sessions_closed);
        if let Some((peer, id)) = self.route.take() {
            let end = std::mem::replace(&mut self.end, SessionEnd::Done);
            let _ = self.tx.send(SessionEnded { peer, id, end });
        }
    }
}

/// The receive side of a running server.
struct ReceiveLoop<H> {
    /// The socket, shared with the send loop.
    socket: Arc<UdpSocket>,
    /// Opens sessions.
    handler: Arc<H>,
    /// Limits and timings.
    config: ServerConfig,
    /// Counters.
    stats: Arc<Stats>,
    /// Live sessions by peer.
    router: Router,
    /// The send loop's queue; cloned into every [`PeerSender`].
    out_tx: mpsc::Sender<Outgoing>,
    /// Every session task, for waiting on them at shutdown.
    sessions: TaskTracker,
    /// Parent of every session's token; cancelled when the grace period ends.
    sessions_cancel: CancellationToken,
    /// Session tasks report here when they end.
    ended: (
        mpsc::UnboundedSender<SessionEnded>,
        mpsc::UnboundedReceiver<SessionEnded>,
    ),
    /// Takes datagrams off the socket into shared buffers.
    receiver: BatchReceiver,
    /// The datagrams of the last receive call, on their way to the router.
    received: Vec<(Bytes, SocketAddr)>,
}

/// Where the receive loop is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Serving and opening sessions.
    Serving,
    /// Shutdown requested: serving live sessions only, until the deadline.
    Draining,
    /// Grace period over: sessions are cancelled; waiting for them until the deadline.
    Cancelling,
}

impl<H: ProtocolHandler> ReceiveLoop<H> {
    async fn run(&mut self, shutdown: CancellationToken) -> io::Result<()> {
        let mut phase = Phase::Serving;
        let deadline = tokio::time::sleep(Duration::ZERO);
        tokio::pin!(deadline);
        // Made once: a fresh `cancelled()` per turn would register a waiter on the token (a
        // lock round trip each way) for every wake-up.
        let shutdown_requested = shutdown.cancelled();
        tokio::pin!(shutdown_requested);
        let mut result = Ok(());
        loop {
            if phase != Phase::Serving && self.router.is_empty() {
                break;
            }
            tokio::select! {
                biased;
                Some(ended) = self.ended.1.recv() => self.session_ended(ended, phase),
                () = &mut shutdown_requested, if phase == Phase::Serving => {
                    info!(live = self.router.len(), "shutdown requested: draining live sessions");
                    phase = Phase::Draining;
                    deadline.as_mut().reset(Instant::now() + self.config.shutdown_grace);
                }
                () = &mut deadline, if phase != Phase::Serving => {
                    if phase == Phase::Cancelling {
                        warn!(live = self.router.len(), "sessions did not end after cancellation; leaving them");
                        break;
                    }
                    info!(live = self.router.len(), "grace period over: cancelling live sessions");
                    self.sessions_cancel.cancel();
                    phase = Phase::Cancelling;
                    deadline.as_mut().reset(Instant::now() + self.config.cancel_wait);
                }
                readable = self.socket.readable() => {
                    if let Err(e) = readable.and_then(|()| self.receive_batch(phase)) {
                        error!("fatal socket error: {e}");
                        result = Err(e);
                        break;
                    }
                }
            }
        }
        // On a fatal error, or sessions left behind: cancel whatever is still live.
        self.sessions_cancel.cancel();
        result
    }

    /// Receives and routes what the socket holds, up to [`RECEIVE_BATCH`] datagrams, without
    /// waiting. Draining several per wake-up lets the sessions they wake run (and queue their
    /// replies) together, so the send loop too gets them in one batch. Returns only fatal
    /// errors.
    fn receive_batch(&mut self, phase: Phase) -> io::Result<()> {
        let mut received = std::mem::take(&mut self.received);
        let mut result = Ok(());
        for _ in 0..RECEIVE_BATCH.div_ceil(SLOTS) {
            let fill = self.receiver.receive(&self.socket, &mut received);
            for (datagram, peer) in received.drain(..) {
                self.route(datagram, peer, phase);
            }
            match fill {
                Ok(Fill::Full) => {}
                // Readiness is cleared: the next wake-up comes from the reactor.
                Ok(Fill::Drained) => break,
                Err(e) if is_transient(&e) => {
                    Stats::bump(&self.stats.receive_errors);
                    debug!("receive error (ignored): {e}");
                }
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        self.received = received;
        result
    }

    /// Routes one received datagram.
    fn route(&mut self, datagram: Bytes, peer: SocketAddr, phase: Phase) {
        Stats::bump(&self.stats.datagrams_in);
        match self.router.deliver(peer, datagram) {
            Delivery::Delivered => {}
            Delivery::QueueFull => {
                Stats::bump(&self.stats.dropped_queue_full);
                debug!(%peer, "session queue full: datagram dropped");
            }
            Delivery::NoSession(datagram) => self.open(datagram, peer, phase),
        }
    }

    /// A session has ended: drop its route, and dispatch the datagram it handed back.
    fn session_ended(&mut self, ended: SessionEnded, phase: Phase) {
        self.router.remove(ended.peer, ended.id);
        if let SessionEnd::Handoff(datagram) = ended.end {
            match self.router.deliver(ended.peer, datagram) {
                Delivery::NoSession(datagram) => self.open(datagram, ended.peer, phase),
                Delivery::Delivered | Delivery::QueueFull => {}
            }
        }
    }

    /// Asks the handler about a datagram from a peer without a live session.
    fn open(&mut self, first: Bytes, peer: SocketAddr, phase: Phase) {
        let outbound = PeerSender::new(peer, self.out_tx.clone());
        if phase != Phase::Serving {
            Stats::bump(&self.stats.refused_shutting_down);
            self.handler.refuse(first, &outbound, Refusal::ShuttingDown);
            return;
        }
        if self.router.len() >= self.config.max_sessions {
            Stats::bump(&self.stats.refused_session_limit);
            debug!(%peer, "session limit reached: peer refused");
            self.handler.refuse(first, &outbound, Refusal::SessionLimit);
            return;
        }
        if self.router.sessions_of_ip(peer) >= self.config.max_sessions_per_ip {
            Stats::bump(&self.stats.refused_peer_limit);
            debug!(%peer, "per-address session limit reached: peer refused");
            self.handler.refuse(first, &outbound, Refusal::PeerLimit);
            return;
        }
        let (tx, inbound) = mpsc::channel(self.config.inbound_queue_depth);
        let io = SessionIo {
            peer,
            inbound,
            outbound,
            cancel: self.sessions_cancel.child_token(),
        };
        let Some(session) = self.handler.open_session(first, io) else {
            return;
        };
        let id = self.router.insert(peer, tx);
        Stats::bump(&self.stats.sessions_opened);
        let notice = EndNotice {
            end: SessionEnd::Done,
            route: Some((peer, id)),
            tx: self.ended.0.clone(),
            stats: Arc::clone(&self.stats),
        };
        self.sessions.spawn(async move {
            // Moved whole into the task so that it drops (and reports) when the task ends,
            // however it ends.
            let mut notice = notice;
            notice.end = session.await;
        });
    }
}

/// Sends `datagrams` each as its own datagram, as many per system call as the OS takes (see
/// `send_many`); a datagram that fails is counted and skipped.
async fn send_each(socket: &UdpSocket, mut datagrams: &[Outgoing], stats: &Stats) {
    while !datagrams.is_empty() {
        let sent = socket
            .async_io(Interest::WRITABLE, || {
                send_many::try_send_many(socket, datagrams)
            })
            .await;
        match sent {
            Ok(sent) => {
                stats
                    .datagrams_out
                    .fetch_add(sent as u64, Ordering::Relaxed);
                datagrams = &datagrams[sent..];
            }
            Err(e) => {
                Stats::bump(&stats.send_errors);
                debug!(peer = %datagrams[0].to, "send failed: {e}");
                datagrams = &datagrams[1..];
            }
        }
    }
}

/// Errors that concern one datagram or one peer, not the socket.
fn is_transient(e: &io::Error) -> bool {
    use io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionRefused
            | ConnectionReset
            | ConnectionAborted
            | HostUnreachable
            | NetworkUnreachable
            | Interrupted
            | WouldBlock
            | TimedOut
            | OutOfMemory
            | PermissionDenied
    ) || e.raw_os_error().is_some_and(is_transient_os_error)
}

/// `EMSGSIZE`, `ENOBUFS` and `EHOSTDOWN`/`ENONET`-style conditions pass with the datagram.
fn is_transient_os_error(code: i32) -> bool {
    // Linux numbers; elsewhere these simply never match and the kind check above decides.
    const EMSGSIZE: i32 = 90;
    const ENOBUFS: i32 = 105;
    const EHOSTDOWN: i32 = 112;
    const ENONET: i32 = 64;
    cfg!(target_os = "linux") && matches!(code, EMSGSIZE | ENOBUFS | EHOSTDOWN | ENONET)
}

/// Sends every queued datagram until the queue is empty and either all senders are gone or
/// `flush` is cancelled (after which nothing new is accepted). Takes up to [`SEND_BATCH`] per
/// wake-up; sends runs of equal-sized datagrams to one peer as one segmented write, and the
/// others several per system call.
async fn send_loop(
    socket: Arc<UdpSocket>,
    mut rx: mpsc::Receiver<Outgoing>,
    stats: Arc<Stats>,
    flush: CancellationToken,
) {
    let mut batch = Vec::with_capacity(SEND_BATCH);
    let mut flushing = false;
    // Consecutive equal-sized datagrams to one peer go out as one segmented write (see
    // `segment`), until the kernel refuses one.
    let mut segmenting = true;
    loop {
        let received = tokio::select! {
            received = rx.recv_many(&mut batch, SEND_BATCH) => received,
            () = flush.cancelled(), if !flushing => {
                // Queued datagrams are still received; `recv_many` returns 0 once they are out.
                rx.close();
                flushing = true;
                continue;
            }
        };
        if received == 0 {
            break;
        }
        let mut rest = &batch[..];
        while !rest.is_empty() {
            let run = if segmenting {
                segment::run_len(rest)
            } else {
                1
            };
            if run > 1 {
                let (now, later) = rest.split_at(run);
                let sent = socket
                    .async_io(Interest::WRITABLE, || segment::try_send_run(&socket, now))
                    .await;
                match sent {
                    Ok(()) => {
                        stats.datagrams_out.fetch_add(run as u64, Ordering::Relaxed);
                        rest = later;
                    }
                    Err(e) if segment::is_refusal(&e) => {
                        debug!("segmented send refused ({e}): sending datagrams one by one");
                        segmenting = false;
                    }
                    Err(e) => {
                        stats.send_errors.fetch_add(run as u64, Ordering::Relaxed);
                        debug!(peer = %now[0].to, "send failed: {e}");
                        rest = later;
                    }
                }
                continue;
            }
            // Up to the next run, if any: datagrams that go out each on its own.
            let singles = if segmenting {
                (1..rest.len())
                    .find(|&i| segment::run_len(&rest[i..]) > 1)
                    .unwrap_or(rest.len())
            } else {
                rest.len()
            };
            let (now, later) = rest.split_at(singles);
            send_each(&socket, now, &stats).await;
            rest = later;
        }
        batch.clear();
    }
}
