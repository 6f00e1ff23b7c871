//! Transfer IDs (RFC 1350 section 4): a transfer belongs to one peer address and port. In
//! single-port mode that pair is all that tells transfers apart, so packets from any other
//! port or address must neither move a transfer nor draw its data: they get ERROR 5, within
//! the server's rate limit of such one-off replies (`--error-reply-rate`), and nothing beyond.
//!
//! The real transfer here is a lock-step download driven block by block, so that the strays
//! carry exactly the block number the transfer is at: just after DATA n arrives and just
//! before the real ACK n goes out, a socket on another port of `127.0.0.1` and one on
//! `127.0.0.2` each send DATA n and ACK n to the server.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use memtftpd_tests::hostile::{Received, Seen};
use memtftpd_tests::{
    RawClient, Reply, TestServer, assert_same_bytes, pattern, test_server_config,
};
use tftp_handler::{Config, ErrorCode, MemoryStore, Mode, Packet};
use tokio::net::UdpSocket;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// The stray from another port of the real client's address.
const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// The stray from another address.
const OTHER_HOST: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));

/// How long the real client waits for each block before the test fails. The server resends
/// after 1 s, so a block this late means a lost or ignored ACK.
const BLOCK_WAIT: Duration = Duration::from_secs(3);

/// How long a stray socket keeps listening after the last stray was sent.
const QUIET: Duration = Duration::from_millis(300);

/// A socket that sends stray DATA and ACK packets, and a task that records what the server
/// sends back to it.
struct Stray {
    /// The socket, shared with the recording task.
    socket: Arc<UdpSocket>,
    /// The server's listening address.
    server: SocketAddr,
    /// Strays sent so far.
    sent: usize,
    /// Tells the recording task that no more strays will be sent.
    done: CancellationToken,
    /// The recording task: everything received, until [`QUIET`] after `done`.
    replies: JoinHandle<Vec<Received>>,
}

impl Stray {
    /// A stray socket on a fresh port of `ip`.
    async fn bind(ip: IpAddr, server: SocketAddr) -> Self {
        let socket = Arc::new(UdpSocket::bind(SocketAddr::new(ip, 0)).await.unwrap());
        let done = CancellationToken::new();
        let replies = tokio::spawn(record(Arc::clone(&socket), done.clone()));
        Self {
            socket,
            server,
            sent: 0,
            done,
            replies,
        }
    }

    /// Sends DATA `block` (a full block of junk) and ACK `block` to the server.
    async fn send_data_and_ack(&mut self, block: u16) {
        let junk = [0xa5; 512];
        for packet in [Packet::Data { block, data: &junk }, Packet::Ack { block }] {
            self.socket
                .send_to(&packet.to_bytes(), self.server)
                .await
                .unwrap();
            self.sent += 1;
        }
    }

    /// Stops and returns what the server sent to this socket.
    async fn finish(self) -> (usize, Vec<Received>) {
        self.done.cancel();
        (self.sent, self.replies.await.unwrap())
    }
}

/// Records every datagram `socket` receives until `done` is cancelled and then [`QUIET`]
/// passes without one.
async fn record(socket: Arc<UdpSocket>, done: CancellationToken) -> Vec<Received> {
    let mut buf = vec![0; 65_536];
    let mut seen = Vec::new();
    let mut keep = |len: usize, from: SocketAddr, buf: &[u8]| {
        seen.push(Received {
            from,
            len,
            packet: Seen::decode(&buf[..len]),
        });
    };
    loop {
        tokio::select! {
            () = done.cancelled() => break,
            received = socket.recv_from(&mut buf) => {
                let (len, from) = received.unwrap();
                keep(len, from, &buf);
            }
        }
    }
    while let Ok(received) = tokio::time::timeout(QUIET, socket.recv_from(&mut buf)).await {
        let (len, from) = received.unwrap();
        keep(len, from, &buf);
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strays_at_the_current_block_get_error_5_and_leave_a_lock_step_download_untouched() {
    let contents = pattern(1 << 20, 31);
    // A fixed 1 s wait: this test drives the download block by block and takes its time
    // between DATA and ACK (it sends the strays then), which the adaptive wait would answer
    // with resends; here any resend must be the strays' doing.
    let mut config = Config::default();
    config.min_retry_timeout = config.retry_timeout;
    let rate = config.error_reply_rate as usize;
    let server = TestServer::start(MemoryStore::default(), config, test_server_config());
    server.store().insert("f.bin", contents.clone().into());
    let started = std::time::Instant::now();
    let addr = server.addr();
    let mut strays = [
        Stray::bind(LOCALHOST, addr).await,
        Stray::bind(OTHER_HOST, addr).await,
    ];
    let mut client = RawClient::bind(addr).await;
    client.send_rrq("f.bin", Mode::Octet, &[]).await;
    let mut downloaded = Vec::with_capacity(contents.len());
    let mut expected = 1_u16;
    let mut resent = Vec::new();
    loop {
        let reply = client.recv_within(BLOCK_WAIT).await;
        let Some(reply) = reply else {
            panic!("DATA {expected} did not come within {BLOCK_WAIT:?}");
        };
        match reply {
            Reply::Data { block, data } if block == expected => {
                for stray in &mut strays {
                    stray.send_data_and_ack(block).await;
                }
                downloaded.extend_from_slice(&data);
                client.send_ack(block).await;
                if data.len() < 512 {
                    break;
                }
                expected = expected.wrapping_add(1);
            }
            // The server resent the previous block: it did not take our ACK. Count it, and
            // ACK again so the download goes on and the test reports it at the end.
            Reply::Data { block, .. } if block == expected.wrapping_sub(1) => {
                resent.push(block);
                client.send_ack(block).await;
            }
            other => panic!("expected DATA {expected}, got {other:?}"),
        }
    }
    assert_same_bytes(&downloaded, &contents, "download among strays");

    let mut report = Vec::new();
    let mut total_replies = 0;
    for stray in strays {
        let local = stray.socket.local_addr().unwrap();
        let (sent, replies) = stray.finish().await;
        for reply in &replies {
            assert_eq!(
                reply.from, addr,
                "{local} got a reply from elsewhere: {reply:?}"
            );
            assert!(
                reply.packet.is_error(ErrorCode::UnknownTransferId),
                "{local} got {:?}, not ERROR 5",
                reply.packet
            );
        }
        assert!(replies.len() <= sent, "{local}: {} replies", replies.len());
        assert!(!replies.is_empty(), "{local} got no ERROR 5 at all");
        total_replies += replies.len();
        report.push(format!("{local}: {sent} strays, {} ERROR 5", replies.len()));
    }
    // Both strays share one budget: a burst of `rate`, then `rate` per second; the first
    // burst alone is answered in (nearly) full.
    let budget = rate + (started.elapsed().as_secs_f64() * rate as f64).ceil() as usize;
    assert!(
        (rate / 2..=budget).contains(&total_replies),
        "{total_replies} ERROR 5 replies; the rate limit allows {budget}"
    );
    println!(
        "transfer id: {} blocks downloaded, {} resent by the server; {}",
        expected,
        resent.len(),
        report.join("; ")
    );
    assert!(
        resent.is_empty(),
        "the server resent blocks {resent:?} during the download"
    );
    assert!(server.wait_idle(Duration::from_secs(3)).await);
    assert_eq!(
        server.stats().snapshot().sessions_opened,
        1,
        "strays open no session"
    );
    server.shutdown().await;
}
