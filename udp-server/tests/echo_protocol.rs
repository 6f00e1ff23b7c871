//! The server over real loopback sockets, speaking a protocol that is not TFTP.
//!
//! Each test runs a [`Server`] in a task on `127.0.0.1:0` and talks to it through ordinary UDP
//! sockets: sessions per peer, the session limit, queue overflow, a closed peer port, session
//! handoff, and both ways a shutdown ends. Time is real, never paused (the kernel does not
//! follow tokio's clock), and every wait is bounded, so a broken server fails a test instead
//! of hanging it. The protocols are echo-count (shared with the example) and a few variants
//! defined here with the hooks a single test needs.

#[path = "support/echo_count.rs"]
mod echo_count;

use std::collections::HashSet;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use socket2::SockRef;
use tokio::net::UdpSocket;
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep, timeout, timeout_at};
use tokio_util::sync::CancellationToken;
use udp_server::{
    Datagram, PeerSender, ProtocolHandler, Refusal, Server, ServerConfig, SessionEnd,
    SessionFuture, SessionIo, Stats, StatsSnapshot,
};

use crate::echo_count::{EchoCount, reply};

/// The longest any single wait in a test may take before the test fails.
const WAIT: Duration = Duration::from_secs(5);

/// How long a session of a test that does not exercise the idle timeout stays up.
const LONG_IDLE: Duration = Duration::from_secs(3600);

/// Receive buffer asked for the server socket, so that a burst from many peers is queued
/// rather than dropped by the kernel (capped by `net.core.rmem_max`).
const SERVER_RECV_BUFFER: usize = 4 << 20;

/// A server running in a task on a loopback port.
struct Running {
    /// Where clients send.
    addr: SocketAddr,
    /// The server's live counters.
    stats: Arc<Stats>,
    /// Cancelling it asks the server to shut down.
    shutdown: CancellationToken,
    /// The task running [`Server::run`].
    task: JoinHandle<io::Result<()>>,
}

impl Running {
    /// Binds a loopback port and serves `handler` on it.
    fn start<H: ProtocolHandler>(handler: H, config: ServerConfig) -> Self {
        let socket = udp_server::bind(SocketAddr::from(([127, 0, 0, 1], 0))).expect("bind server");
        SockRef::from(&socket)
            .set_recv_buffer_size(SERVER_RECV_BUFFER)
            .expect("set receive buffer");
        let addr = socket.local_addr().expect("server address");
        let server = Server::new(handler, config);
        let stats = server.stats();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn({
            let shutdown = shutdown.clone();
            async move { server.run(socket, shutdown).await }
        });
        Self {
            addr,
            stats,
            shutdown,
            task,
        }
    }

    /// The counters now.
    fn snapshot(&self) -> StatsSnapshot {
        self.stats.snapshot()
    }

    /// Polls the counters every 20 ms until `done` holds; fails the test after [`WAIT`].
    async fn wait_for(&self, what: &str, done: impl Fn(&StatsSnapshot) -> bool) -> StatsSnapshot {
        let deadline = Instant::now() + WAIT;
        loop {
            let snapshot = self.snapshot();
            if done(&snapshot) {
                return snapshot;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}: {snapshot:?}"
            );
            sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits for [`Server::run`] to return (after the shutdown token has been cancelled).
    async fn join(self) -> io::Result<()> {
        timeout(WAIT, self.task)
            .await
            .expect("run did not return in time")
            .expect("run panicked")
    }

    /// Requests shutdown and waits for [`Server::run`] to return.
    async fn stop(self) {
        self.shutdown.cancel();
        self.join().await.expect("run failed");
    }
}

/// A client socket on an ephemeral loopback port.
async fn client() -> UdpSocket {
    UdpSocket::bind("127.0.0.1:0").await.expect("bind client")
}

/// Sends `text` from `client` to `to`.
async fn send(client: &UdpSocket, to: SocketAddr, text: &str) {
    client
        .send_to(text.as_bytes(), to)
        .await
        .expect("send to server");
}

/// Receives one datagram as text, without a time limit (callers bound it).
async fn recv_text(client: &UdpSocket) -> String {
    let mut buf = [0; 1500];
    let (len, _) = client.recv_from(&mut buf).await.expect("receive");
    String::from_utf8(buf[..len].to_vec()).expect("a text reply")
}

/// Receives one datagram as text; fails the test if none comes within [`WAIT`].
async fn recv(client: &UdpSocket) -> String {
    timeout(WAIT, recv_text(client))
        .await
        .expect("no reply in time")
}

/// Receives one datagram as text if one comes within `within`.
async fn recv_within(client: &UdpSocket, within: Duration) -> Option<String> {
    timeout(within, recv_text(client)).await.ok()
}

/// Splits an echo-count reply into the echoed text and the count.
fn decode(reply: &str) -> (&str, u64) {
    let (text, count) = reply.rsplit_once(' ').expect("reply has a count");
    (text, count.parse().expect("count is decimal"))
}

/// A protocol with the hooks some tests need, on top of echo-count: a session answers
/// cancellation with `bye`, and ends by handing off a datagram `next` (so that it opens a
/// fresh session); a refused peer is answered `busy`.
#[derive(Debug)]
struct Scripted {
    /// How long a session waits for its peer's next datagram.
    idle: Duration,
}

impl ProtocolHandler for Scripted {
    fn open_session(&self, first: Bytes, io: SessionIo) -> Option<SessionFuture> {
        Some(Box::pin(scripted_session(first, io, self.idle)))
    }

    fn refuse(&self, _first: Bytes, reply: &PeerSender, _reason: Refusal) {
        reply.try_send(Datagram::new(Bytes::from_static(b"busy")));
    }
}

/// One [`Scripted`] session: echo-count, plus `bye` on cancellation and handoff on `next`.
async fn scripted_session(first: Bytes, mut io: SessionIo, idle: Duration) -> SessionEnd {
    let mut count = 0;
    let mut next = first;
    loop {
        count += 1;
        if io.outbound.send(reply(&next, count)).await.is_err() {
            return SessionEnd::Done;
        }
        next = tokio::select! {
            () = io.cancel.cancelled() => {
                let bye = Datagram::new(Bytes::from_static(b"bye"));
                let _ = io.outbound.send(bye).await;
                return SessionEnd::Done;
            }
            received = timeout(idle, io.inbound.recv()) => match received {
                Ok(Some(datagram)) if datagram == "next" => return SessionEnd::Handoff(datagram),
                Ok(Some(datagram)) => datagram,
                Ok(None) | Err(_) => return SessionEnd::Done,
            },
        };
    }
}

/// Echo-count, except that a session opened by `hold` reads nothing until `release` fires
/// (or it is cancelled), so its inbound queue fills up.
#[derive(Debug)]
struct Hold {
    /// Serves every peer that does not ask to be held.
    echo: EchoCount,
    /// Ends held sessions.
    release: CancellationToken,
}

impl ProtocolHandler for Hold {
    fn open_session(&self, first: Bytes, io: SessionIo) -> Option<SessionFuture> {
        if first != "hold" {
            return self.echo.open_session(first, io);
        }
        let release = self.release.clone();
        let SessionIo {
            inbound, cancel, ..
        } = io;
        Some(Box::pin(async move {
            tokio::select! {
                () = release.cancelled() => {}
                () = cancel.cancelled() => {}
            }
            // Named here so that the future owns the queue, keeping it open, unread, until now
            // (an async block that only touched `io.cancel` would capture just that field).
            drop(inbound);
            SessionEnd::Done
        }))
    }
}

/// A protocol whose sessions never end, not even when cancelled.
#[derive(Debug)]
struct Stubborn;

impl ProtocolHandler for Stubborn {
    fn open_session(&self, _first: Bytes, io: SessionIo) -> Option<SessionFuture> {
        Some(Box::pin(async move {
            let _io = io;
            std::future::pending::<()>().await;
            SessionEnd::Done
        }))
    }
}

#[tokio::test]
async fn each_datagram_is_answered_with_a_running_count() {
    let server = Running::start(
        EchoCount { idle: LONG_IDLE },
        ServerConfig::default().with_shutdown_grace(Duration::ZERO),
    );
    let client = client().await;

    for expected in ["a 1", "b 2", "c 3"] {
        let (text, _) = decode(expected);
        send(&client, server.addr, text).await;
        assert_eq!(recv(&client).await, expected);
    }

    assert_eq!(server.snapshot().sessions_opened, 1);
    server.stop().await;
}

/// How many times a client of the thousand-peer test sends one datagram before giving up.
const ATTEMPTS: u32 = 8;

/// How long a client of the thousand-peer test waits for an answer before sending again.
const RESEND_AFTER: Duration = Duration::from_millis(250);

/// Sends `text` until an answer to it arrives, resending after [`RESEND_AFTER`] of silence
/// (loopback may drop datagrams under a burst). Answers to earlier datagrams are skipped.
/// Returns the answer's count and how many resends it took.
async fn exchange(client: &UdpSocket, server: SocketAddr, text: &str) -> (u64, u32) {
    for resends in 0..ATTEMPTS {
        send(client, server, text).await;
        let deadline = Instant::now() + RESEND_AFTER;
        while let Ok(answer) = timeout_at(deadline, recv_text(client)).await {
            let (echoed, count) = decode(&answer);
            if echoed == text {
                return (count, resends);
            }
        }
    }
    panic!("no answer to {text:?} after {ATTEMPTS} attempts");
}

/// A client socket whose address no earlier client of the same test had: the kernel reuses
/// the port of a closed socket, and a reused address would land in a live session.
async fn fresh_client(used: &Mutex<HashSet<SocketAddr>>) -> UdpSocket {
    loop {
        let client = client().await;
        let addr = client.local_addr().expect("client address");
        if used.lock().expect("not poisoned").insert(addr) {
            return client;
        }
    }
}

/// One peer of the thousand-peer test: two datagrams, checked to be counted 1 then 2 (or,
/// after a resend, counted in increasing order from 1 within the resends).
async fn two_datagrams(server: SocketAddr, used: Arc<Mutex<HashSet<SocketAddr>>>) -> u32 {
    let client = fresh_client(&used).await;
    let (first, first_resends) = exchange(&client, server, "x").await;
    let (second, second_resends) = exchange(&client, server, "y").await;
    if first_resends + second_resends == 0 {
        assert_eq!(
            (first, second),
            (1, 2),
            "counts of a peer that never resent"
        );
    } else {
        // A lost answer makes the session count the resend too.
        assert!((1..=1 + u64::from(first_resends)).contains(&first));
        assert!(
            second > first,
            "counts must increase: {first} then {second}"
        );
    }
    first_resends + second_resends
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_peers_get_independent_sessions() {
    const PEERS: usize = 1000;
    let idle = Duration::from_secs(1);
    let server = Running::start(EchoCount { idle }, ServerConfig::default());
    let used = Arc::new(Mutex::new(HashSet::new()));

    let resends: u32 = timeout(
        4 * WAIT,
        futures::stream::iter(0..PEERS)
            .map(|_| two_datagrams(server.addr, Arc::clone(&used)))
            .buffer_unordered(100)
            .fold(0, |total, resends| async move { total + resends }),
    )
    .await
    .expect("the thousand peers finished in time");

    let snapshot = server.snapshot();
    assert_eq!(snapshot.sessions_opened, PEERS as u64, "resends: {resends}");
    assert_eq!(snapshot.refused_session_limit, 0);

    // Every session ends by itself once its peer falls silent.
    server
        .wait_for("every session to time out", |s| s.sessions_live() == 0)
        .await;
    assert_eq!(server.snapshot().sessions_closed, PEERS as u64);
    server.stop().await;
}

/// Starts a server with `config`, opens two sessions from two ports of 127.0.0.1, and checks
/// that a third port of 127.0.0.1 is refused ("busy"). Returns the server for more checks.
async fn two_sessions_then_a_refused_third(config: ServerConfig) -> Running {
    let server = Running::start(
        Scripted { idle: LONG_IDLE },
        config.with_shutdown_grace(Duration::ZERO),
    );
    let (first, second, third) = (client().await, client().await, client().await);
    send(&first, server.addr, "a").await;
    assert_eq!(recv(&first).await, "a 1");
    send(&second, server.addr, "b").await;
    assert_eq!(recv(&second).await, "b 1");
    send(&third, server.addr, "c").await;
    assert_eq!(recv(&third).await, "busy");
    server
}

#[tokio::test]
async fn a_peer_over_the_session_limit_is_refused_and_counted() {
    let server =
        two_sessions_then_a_refused_third(ServerConfig::default().with_max_sessions(2)).await;
    let snapshot = server.snapshot();
    assert_eq!(snapshot.refused_session_limit, 1);
    assert_eq!(snapshot.sessions_opened, 2);
    server.stop().await;
}

#[tokio::test]
async fn a_peer_address_over_its_session_limit_is_refused_while_others_are_served() {
    let server =
        two_sessions_then_a_refused_third(ServerConfig::default().with_max_sessions_per_ip(2))
            .await;
    let elsewhere = UdpSocket::bind("127.0.0.2:0")
        .await
        .expect("bind 127.0.0.2");
    send(&elsewhere, server.addr, "d").await;
    assert_eq!(
        recv(&elsewhere).await,
        "d 1",
        "another address is not affected"
    );
    let snapshot = server.snapshot();
    assert_eq!(snapshot.refused_peer_limit, 1);
    assert_eq!(snapshot.sessions_opened, 3);
    server.stop().await;
}

/// On Linux an unconnected socket ignores the ICMP port-unreachable that answers a datagram
/// sent to a closed port (unless `IP_RECVERR` is set); elsewhere (Windows, connected sockets)
/// it fails the next receive. Either way the server must go on serving.
#[tokio::test]
async fn an_icmp_port_unreachable_does_not_stop_the_server() {
    let server = Running::start(
        EchoCount { idle: LONG_IDLE },
        ServerConfig::default().with_shutdown_grace(Duration::ZERO),
    );

    let gone = client().await;
    send(&gone, server.addr, "a").await;
    drop(gone);
    // The answer goes to the closed port, and the kernel sends back port-unreachable.
    server
        .wait_for("the answer to the closed port", |s| s.datagrams_out >= 1)
        .await;

    let next = client().await;
    send(&next, server.addr, "b").await;
    assert_eq!(recv(&next).await, "b 1");
    assert_eq!(server.snapshot().sessions_opened, 2);
    server.stop().await;
}

#[tokio::test]
async fn a_full_session_queue_drops_datagrams_and_counts_them() {
    let release = CancellationToken::new();
    let server = Running::start(
        Hold {
            echo: EchoCount { idle: LONG_IDLE },
            release: release.clone(),
        },
        ServerConfig::default()
            .with_inbound_queue_depth(2)
            .with_shutdown_grace(Duration::ZERO),
    );

    let held = client().await;
    send(&held, server.addr, "hold").await;
    for i in 1..10 {
        send(&held, server.addr, &i.to_string()).await;
    }
    // The first opens the session, two fill its queue, the other seven are dropped.
    let snapshot = server
        .wait_for("ten datagrams in", |s| s.datagrams_in == 10)
        .await;
    assert_eq!(snapshot.dropped_queue_full, 7, "{snapshot:?}");

    let other = client().await;
    send(&other, server.addr, "e").await;
    assert_eq!(recv(&other).await, "e 1");

    release.cancel();
    server.stop().await;
}

#[tokio::test]
async fn shutdown_lets_live_sessions_finish_then_returns() {
    let idle = Duration::from_millis(200);
    let grace = Duration::from_secs(5);
    let server = Running::start(
        EchoCount { idle },
        ServerConfig::default().with_shutdown_grace(grace),
    );
    let live = client().await;
    send(&live, server.addr, "a").await;
    assert_eq!(recv(&live).await, "a 1");

    server.shutdown.cancel();
    let cancelled_at = Instant::now();
    // While the live session is kept busy, a new peer knocks and is turned away.
    let latecomer = client().await;
    for count in 2.. {
        send(&latecomer, server.addr, "late").await;
        send(&live, server.addr, "b").await;
        assert_eq!(recv(&live).await, format!("b {count}"));
        if server.snapshot().refused_shutting_down >= 1 {
            break;
        }
        assert!(count < 50, "the latecomer was never refused");
        sleep(Duration::from_millis(20)).await;
    }

    // The live session falls idle and ends; `run` returns then, long before the grace is over.
    let stats = Arc::clone(&server.stats);
    server.join().await.expect("run failed");
    let took = cancelled_at.elapsed();
    assert!(took < grace / 2, "run returned after {took:?}");
    let snapshot = stats.snapshot();
    assert_eq!(snapshot.sessions_opened, 1);
    assert_eq!(snapshot.sessions_live(), 0);
    assert_eq!(
        recv_within(&latecomer, Duration::from_millis(50)).await,
        None
    );
}

#[tokio::test]
async fn shutdown_cancels_sessions_after_the_grace_period() {
    let grace = Duration::from_millis(200);
    let server = Running::start(
        Scripted { idle: LONG_IDLE },
        ServerConfig::default().with_shutdown_grace(grace),
    );
    let client = client().await;
    send(&client, server.addr, "a").await;
    assert_eq!(recv(&client).await, "a 1");

    server.shutdown.cancel();
    let cancelled_at = Instant::now();
    let stats = Arc::clone(&server.stats);
    server.join().await.expect("run failed");
    let took = cancelled_at.elapsed();
    assert!(
        grace <= took && took < Duration::from_secs(2),
        "run returned after {took:?}"
    );

    // What the session sent on cancellation was flushed before `run` returned.
    assert_eq!(recv(&client).await, "bye");
    assert_eq!(stats.snapshot().sessions_live(), 0);
}

#[tokio::test]
async fn a_session_that_ignores_cancellation_does_not_hold_up_shutdown() {
    let cancel_wait = Duration::from_millis(200);
    let server = Running::start(
        Stubborn,
        ServerConfig::default()
            .with_shutdown_grace(Duration::ZERO)
            .with_cancel_wait(cancel_wait),
    );
    let client = client().await;
    send(&client, server.addr, "a").await;
    server
        .wait_for("the session to open", |s| s.sessions_opened == 1)
        .await;

    server.shutdown.cancel();
    let cancelled_at = Instant::now();
    let stats = Arc::clone(&server.stats);
    server.join().await.expect("run failed");
    let took = cancelled_at.elapsed();
    assert!(took < Duration::from_secs(2), "run returned after {took:?}");
    assert_eq!(
        stats.snapshot().sessions_live(),
        1,
        "the session is left behind"
    );
}

#[tokio::test]
async fn a_session_handoff_opens_a_new_session_for_the_peer() {
    let server = Running::start(
        Scripted { idle: LONG_IDLE },
        ServerConfig::default().with_shutdown_grace(Duration::ZERO),
    );
    let client = client().await;

    // `next` ends the first session and is the first datagram of the second: counts restart.
    for (text, expected) in [("a", "a 1"), ("b", "b 2"), ("next", "next 1"), ("c", "c 2")] {
        send(&client, server.addr, text).await;
        assert_eq!(recv(&client).await, expected);
    }

    let snapshot = server.snapshot();
    assert_eq!(snapshot.sessions_opened, 2);
    assert_eq!(snapshot.sessions_closed, 1);
    server.stop().await;
}
