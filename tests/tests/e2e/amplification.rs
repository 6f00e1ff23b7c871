//! Amplification and floods: what a request with a spoofed source address earns its victim,
//! and what one address sending requests as fast as it can gets from the server.
//!
//! `spec.md`: "a request from a peer that never answers gets only a few bytes back (few resends
//! of the first reply), and sessions per peer are capped". A silent peer here is a socket that
//! sends one request and then only counts what arrives, until the server has given up on it.
//! The server runs with a 100 ms retry timeout instead of 1 s so that giving up (the first
//! reply, two resends, then silent waiting up to five timeouts in all) takes about 0.6 s, not 6.
//!
//! The figures each test measures are printed (run with `--nocapture` to see them). Byte counts
//! are UDP payloads; "on the wire" adds 28 bytes of IPv4 and UDP header per datagram, the unit of
//! the 1,632-byte bound (3 x (516 + 28)).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use memtftpd_tests::hostile::{Probe, Received, Seen, raw_packet, udp_drops};
use memtftpd_tests::{
    RawClient, Reply, TestServer, assert_same_bytes, pattern, test_server_config,
};
use tftp_handler::{Config, ErrorCode, MemoryStore, Mode};
use tokio::net::UdpSocket;
use tokio::sync::Barrier;
use tokio::task::JoinSet;
use tokio::time::Instant;

/// Where the flood and the silent peers come from.
const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// Another address of the loopback network: a different peer IP for the per-address cap.
const OTHER_HOST: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));

/// IPv4 (20) and UDP (8) header bytes per datagram.
const HEADERS: usize = 28;

/// At most this many datagrams for a silent peer: the first reply and two resends.
const MAX_PACKETS: usize = 3;

/// At most this many bytes on the wire for a silent peer: three 512-byte DATA with headers.
const MAX_WIRE_BYTES: usize = 1_632;

/// A 1 MiB file on a server whose retry timeout is `retry_timeout` (other settings default).
fn server_with_a_file(retry_timeout: Duration) -> TestServer {
    let mut config = Config::default();
    config.retry_timeout = retry_timeout;
    let server = TestServer::start(MemoryStore::default(), config, test_server_config());
    server.store().insert("f.bin", pattern(1 << 20, 21).into());
    server
}

/// What a silent peer received.
#[derive(Debug)]
struct Earned {
    /// Every datagram, in order.
    replies: Vec<Received>,
    /// The request's length (UDP payload).
    request_len: usize,
    /// From sending the request to the server's last session ending.
    session_time: Duration,
}

impl Earned {
    /// UDP payload bytes received.
    fn payload(&self) -> usize {
        self.replies.iter().map(|r| r.len).sum()
    }

    /// Bytes received on the wire, headers included.
    fn wire(&self) -> usize {
        self.payload() + HEADERS * self.replies.len()
    }

    /// Payload received per payload byte sent.
    fn factor(&self) -> f64 {
        self.payload() as f64 / self.request_len as f64
    }

    /// Wire bytes received per wire byte sent.
    fn wire_factor(&self) -> f64 {
        self.wire() as f64 / (self.request_len + HEADERS) as f64
    }

    fn report(&self, label: &str) {
        println!(
            "amplification, {label}: {} packets, {} bytes of payload ({} on the wire) for a \
             {}-byte request ({} on the wire): factor {:.1} (wire {:.1}); session over after {:?}",
            self.replies.len(),
            self.payload(),
            self.wire(),
            self.request_len,
            self.request_len + HEADERS,
            self.factor(),
            self.wire_factor(),
            self.session_time
        );
    }
}

/// Sends `request` from a fresh socket that never answers, and records everything the server
/// sends it until its session has ended (and a quiet period after that).
async fn silent_peer(server: &TestServer, request: &[u8]) -> Earned {
    let mut probe = Probe::bind(LOCALHOST, server.addr()).await;
    let started = Instant::now();
    probe.send(request).await;
    // The first reply proves the session open, so that "idle" below means "over".
    let first = probe
        .recv_within(Duration::from_secs(3))
        .await
        .expect("a first reply to the request");
    assert!(
        server.wait_idle(Duration::from_secs(5)).await,
        "the silent peer's session is still live: {:?}",
        server.stats().snapshot()
    );
    let session_time = started.elapsed();
    let mut replies = vec![first];
    replies.extend(
        probe
            .collect(Duration::from_millis(300), Duration::from_millis(300))
            .await,
    );
    for reply in &replies {
        assert_eq!(
            reply.from,
            server.addr(),
            "a reply from elsewhere: {reply:?}"
        );
    }
    Earned {
        replies,
        request_len: request.len(),
        session_time,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_peer_gets_at_most_three_data_packets_for_a_plain_read_request() {
    let server = server_with_a_file(Duration::from_millis(100));
    let request = raw_packet(1, &[b"f.bin", b"octet"]);
    let earned = silent_peer(&server, &request).await;
    earned.report("RRQ without options");
    for reply in &earned.replies {
        assert!(
            matches!(&reply.packet, Seen::Reply(Reply::Data { block: 1, data }) if data.len() == 512),
            "only DATA 1 may be sent (again): {reply:?}"
        );
    }
    assert!(earned.replies.len() <= MAX_PACKETS, "{earned:?}");
    assert!(earned.payload() <= MAX_PACKETS * 516, "{earned:?}");
    assert!(earned.wire() <= MAX_WIRE_BYTES, "{earned:?}");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_peer_asking_for_big_blocks_and_windows_gets_only_oacks() {
    let server = server_with_a_file(Duration::from_millis(100));
    let request = raw_packet(
        1,
        &[
            b"f.bin",
            b"octet",
            b"blksize",
            b"65464",
            b"windowsize",
            b"64",
            b"tsize",
            b"0",
        ],
    );
    let earned = silent_peer(&server, &request).await;
    earned.report("RRQ blksize 65464 windowsize 64 tsize 0");
    for reply in &earned.replies {
        // Not one DATA: the peer never acknowledged the OACK (RFC 2347: ACK 0 first).
        assert!(
            matches!(reply.packet, Seen::Reply(Reply::Oack { .. })),
            "only the OACK may be sent (again): {reply:?}"
        );
    }
    assert!(earned.replies.len() <= MAX_PACKETS, "{earned:?}");
    assert!(earned.wire() <= MAX_WIRE_BYTES, "{earned:?}");
    server.shutdown().await;
}

/// The per-address cap of the flood test.
const PER_IP_CAP: usize = 64;
/// Sockets (ports) the flood comes from, all on `127.0.0.1`.
const FLOOD_SOCKETS: usize = 200;
/// Requests each flood socket sends.
const REQUESTS_PER_SOCKET: usize = 50;
/// The flood's retry timeout: a session lives about six of these (first reply, two resends,
/// silent waits, give-up), so no flood session ends during a flood shorter than
/// [`FLOOD_TIME_LIMIT`], and the counts below are exact.
const FLOOD_RETRY: Duration = Duration::from_millis(500);
/// The flood stops sending after this long, whatever it has sent.
const FLOOD_TIME_LIMIT: Duration = Duration::from_secs(2);

/// 10,000 RRQs from one address (200 ports, 50 each), sent as fast as the sockets take them,
/// against a server capped at 64 sessions per address.
///
/// A flood socket's first request opens a session if its address has fewer than 64; its
/// other 49 are then repeats of a live session's request (ignored: the session resends on
/// its own timer). A socket that finds the address full is refused, request after request,
/// until a session of the address ends; none ends during the flood. So exactly 64 sessions
/// open, 64 x 50 requests land in them, and the other 6,800 are refused (fewer only if the
/// kernel dropped some on the server's socket; the test reads that count too).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_from_one_address_opens_at_most_its_cap_and_other_addresses_are_served() {
    let mut config = Config::default();
    config.retry_timeout = FLOOD_RETRY;
    let server = TestServer::start(
        MemoryStore::default(),
        config,
        test_server_config().with_max_sessions_per_ip(PER_IP_CAP),
    );
    server.store().insert("f.bin", pattern(1 << 20, 22).into());
    let small = pattern(64 * 1024, 23);
    server.store().insert("g.bin", small.clone().into());
    let addr = server.addr();
    let drops_before = udp_drops(addr);

    let start = Arc::new(Barrier::new(FLOOD_SOCKETS + 1));
    let mut flood = JoinSet::new();
    for _ in 0..FLOOD_SOCKETS {
        let start = Arc::clone(&start);
        flood.spawn(async move {
            let socket = UdpSocket::bind(SocketAddr::new(LOCALHOST, 0))
                .await
                .unwrap();
            let rrq = raw_packet(1, &[b"f.bin", b"octet"]);
            start.wait().await;
            let deadline = Instant::now() + FLOOD_TIME_LIMIT;
            let mut sent = 0;
            while sent < REQUESTS_PER_SOCKET && Instant::now() < deadline {
                socket.send_to(&rrq, addr).await.unwrap();
                sent += 1;
            }
            // The socket lives on (returned) until the test ends: no ICMP noise.
            (socket, sent)
        });
    }
    start.wait().await;
    let flood_started = Instant::now();
    // A client at another address, while the flood runs.
    let during = tokio::spawn(async move {
        let mut client = RawClient::bind_on(OTHER_HOST, addr).await;
        client.read("g.bin", Mode::Octet, &[]).await
    });
    let mut sockets = Vec::new();
    let mut sent = 0;
    // The live sessions, watched as often as the timer allows while the flood runs.
    let mut peak_during_flood = 0;
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    loop {
        tokio::select! {
            joined = flood.join_next() => {
                let Some(joined) = joined else { break };
                let (socket, count) = joined.unwrap();
                sockets.push(socket);
                sent += count;
            }
            _ = tick.tick() => {
                let live = server.stats().snapshot().sessions_live();
                peak_during_flood = peak_during_flood.max(live);
            }
        }
    }
    let flood_time = flood_started.elapsed();
    let got = during
        .await
        .unwrap()
        .expect("download from 127.0.0.2 during the flood");
    assert_same_bytes(&got, &small, "download from 127.0.0.2 during the flood");
    // Let the server take in what is still queued on its socket (50 ms without a new
    // datagram), still watching.
    let mut settled = server.stats().snapshot();
    let mut unchanged_since = Instant::now();
    while unchanged_since.elapsed() < Duration::from_millis(50) {
        tick.tick().await;
        let now = server.stats().snapshot();
        peak_during_flood = peak_during_flood.max(now.sessions_live());
        if now.datagrams_in != settled.datagrams_in {
            unchanged_since = Instant::now();
        }
        settled = now;
    }
    let drops = match (drops_before, udp_drops(addr)) {
        (Some(before), Some(after)) => after - before,
        _ => 0,
    };

    // The other address's download opened one session of its own.
    let other_sessions = 1;
    let from_flood = settled.sessions_opened - other_sessions;
    let expected_refused = (FLOOD_SOCKETS - PER_IP_CAP) * REQUESTS_PER_SOCKET;
    println!(
        "flood: {sent} RRQs from {FLOOD_SOCKETS} ports of 127.0.0.1 in {flood_time:?}; \
         {from_flood} sessions opened for them (cap {PER_IP_CAP}), peak live {peak_during_flood} \
         (with 127.0.0.2's), refused_peer_limit {}, kernel drops {drops}; {:?}",
        settled.refused_peer_limit, settled
    );
    assert_eq!(
        sent,
        FLOOD_SOCKETS * REQUESTS_PER_SOCKET,
        "flood cut short by its time limit"
    );
    assert!(
        flood_time < FLOOD_RETRY * 4,
        "the flood took {flood_time:?}: sessions may have ended during it, so the counts below \
         would not be exact"
    );
    assert!(
        peak_during_flood <= (PER_IP_CAP + other_sessions as usize) as u64,
        "{peak_during_flood} sessions live at once"
    );
    assert_eq!(
        from_flood, PER_IP_CAP as u64,
        "sessions opened for the flood: {settled:?}"
    );
    assert!(
        settled.refused_peer_limit <= expected_refused as u64
            && settled.refused_peer_limit + drops >= expected_refused as u64,
        "refused {} of the flood's requests, expected {expected_refused} (kernel drops: {drops})",
        settled.refused_peer_limit
    );
    assert_eq!(settled.refused_session_limit, 0);

    // After the flood: its sessions give up, and both addresses are served again.
    assert!(
        server.wait_idle(FLOOD_RETRY * 12).await,
        "flood sessions still live: {:?}",
        server.stats().snapshot()
    );
    // What the flood's address got back: a DATA 1 (and its resends) per session, at most one
    // ERROR per refused request (best effort: dropped when the send queue is full).
    let (mut data, mut errors, mut bytes) = (0_u64, 0_u64, 0_usize);
    let mut buf = vec![0; 2_048];
    for socket in &sockets {
        while let Ok((len, _)) = socket.try_recv_from(&mut buf) {
            bytes += len;
            match Seen::decode(&buf[..len]) {
                Seen::Reply(Reply::Data { block: 1, .. }) => data += 1,
                Seen::Reply(Reply::Error {
                    code: ErrorCode::NotDefined,
                    ..
                }) => errors += 1,
                other => panic!("the flood got {other:?}"),
            }
        }
    }
    println!(
        "flood: 127.0.0.1 got back {data} DATA and {errors} ERROR 0, {bytes} bytes of payload \
         for {} bytes of requests",
        sent * raw_packet(1, &[b"f.bin", b"octet"]).len()
    );
    assert!(data <= (PER_IP_CAP * MAX_PACKETS) as u64, "{data} DATA");
    assert!(errors <= settled.refused_peer_limit, "{errors} ERRORs");
    for ip in [OTHER_HOST, LOCALHOST] {
        let mut client = RawClient::bind_on(ip, addr).await;
        let got = client.read("g.bin", Mode::Octet, &[]).await;
        let got = got.unwrap_or_else(|e| panic!("download from {ip} after the flood: {e:?}"));
        assert_same_bytes(&got, &small, &format!("download from {ip} after the flood"));
    }
    drop(sockets);
    server.shutdown().await;
}
