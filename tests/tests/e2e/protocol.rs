//! Protocol behaviour that real clients cannot show on demand, checked with the raw client:
//! replies to stray packets and bad requests, how a peer's consecutive transfers meet, what
//! ends a session, and that sessions do not outlive their transfers.
//!
//! Timing assertions use margins of several times the expected delay, since the suite runs
//! other transfers in parallel against debug builds.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use memtftpd_tests::{
    RawClient, Reply, TestServer, TransferError, assert_same_bytes, pattern, test_server_config,
    timed,
};
use tftp_handler::{Config, ErrorCode, MemoryStore, Mode, Packet};
use tokio::task::JoinSet;

/// Fails unless `reply` is an ERROR with `code`; returns its message.
fn expect_error(reply: Reply, code: ErrorCode) -> String {
    match reply {
        Reply::Error { code: got, message } if got == code => message,
        other => panic!("expected ERROR {}, got {other:?}", code.as_u16()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_or_ack_from_a_peer_without_a_transfer_gets_error_5_and_disturbs_no_transfer() {
    let contents = pattern(1 << 20, 1);
    let server = TestServer::with_file("f.bin", contents.clone());
    let mut reader = RawClient::bind(server.addr()).await;
    let download = tokio::spawn(async move { reader.read("f.bin", Mode::Octet, &[]).await });

    let mut stray_data = RawClient::bind(server.addr()).await;
    stray_data
        .send(&Packet::Data {
            block: 1,
            data: b"stray",
        })
        .await;
    expect_error(stray_data.recv().await, ErrorCode::UnknownTransferId);
    let mut stray_ack = RawClient::bind(server.addr()).await;
    stray_ack.send_ack(2).await;
    expect_error(stray_ack.recv().await, ErrorCode::UnknownTransferId);

    let downloaded = download.await.unwrap().expect("the download completes");
    assert_same_bytes(&downloaded, &contents, "download next to stray packets");
    assert_eq!(
        server.stats().snapshot().sessions_opened,
        1,
        "stray packets open no session"
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_file_gets_error_1() {
    let server = TestServer::start_default();
    let mut client = RawClient::bind(server.addr()).await;
    let result = client.read("missing.bin", Mode::Octet, &[]).await;
    assert!(
        matches!(
            result,
            Err(TransferError::Server {
                code: ErrorCode::FileNotFound,
                ..
            })
        ),
        "{result:?}"
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mail_mode_is_refused_with_an_error_and_starts_no_transfer() {
    let server = TestServer::with_file("f.bin", pattern(2000, 2));
    let mut reader = RawClient::bind(server.addr()).await;
    reader.send_rrq("f.bin", Mode::Mail, &[]).await;
    let message = expect_error(reader.recv().await, ErrorCode::IllegalOperation);
    assert!(message.contains("mail"), "unclear message: {message:?}");
    // Another socket: see `a_request_right_after_a_refused_one_is_always_answered`.
    let mut writer = RawClient::bind(server.addr()).await;
    writer.send_wrq("new.bin", Mode::Mail, &[]).await;
    expect_error(writer.recv().await, ErrorCode::IllegalOperation);
    for client in [&mut reader, &mut writer] {
        let after = client.recv_within(Duration::from_millis(300)).await;
        assert_eq!(after, None, "nothing follows the ERROR");
    }
    assert!(server.store().get("new.bin").is_none());
    assert!(server.wait_idle(Duration::from_secs(3)).await);
    server.shutdown().await;
}

/// The upload's session dallies for 2 s after its final ACK (the default); a new request from
/// the same peer must not wait for that.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_right_after_an_upload_from_the_same_socket_is_served_at_once() {
    let server = TestServer::start_default();
    let dally = Config::default().dally;
    assert!(dally >= Duration::from_secs(2));
    let contents = pattern(10_000, 3);
    let mut client = RawClient::bind(server.addr()).await;
    client
        .write("up.bin", &contents, &[])
        .await
        .expect("upload completes");
    let (downloaded, took) = timed(client.read("up.bin", Mode::Octet, &[])).await;
    let downloaded = downloaded.expect("download completes");
    assert_same_bytes(&downloaded, &contents, "read after write");
    assert!(
        took < dally / 2,
        "the read took {took:?}: it waited for the upload's dally ({dally:?})"
    );
    assert_eq!(server.stats().snapshot().sessions_opened, 2);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_sessions_return_to_zero_after_transfers_end() {
    let mut config = Config::default();
    config.dally = Duration::from_millis(100);
    let server = TestServer::start(MemoryStore::default(), config, test_server_config());
    let contents = pattern(30_000, 4);
    server.store().insert("f.bin", contents.clone().into());

    let mut reader = RawClient::bind(server.addr()).await;
    let downloaded = reader.read("f.bin", Mode::Octet, &[("blksize", "1024")]);
    assert_same_bytes(&downloaded.await.unwrap(), &contents, "download");
    let mut writer = RawClient::bind(server.addr()).await;
    writer.write("up.bin", &contents, &[]).await.unwrap();
    let mut refused = RawClient::bind(server.addr()).await;
    assert!(refused.read("missing", Mode::Octet, &[]).await.is_err());
    let mut stray = RawClient::bind(server.addr()).await;
    stray.send_ack(1).await;
    expect_error(stray.recv().await, ErrorCode::UnknownTransferId);

    let snapshot = server.stats().snapshot();
    assert!(snapshot.sessions_opened >= 3, "{snapshot:?}");
    assert!(
        server.wait_idle(Duration::from_secs(3)).await,
        "sessions still live: {:?}",
        server.stats().snapshot()
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_from_the_peer_ends_its_transfer_at_once_without_reply() {
    let server = TestServer::with_file("f.bin", pattern(100_000, 5));
    let mut client = RawClient::bind(server.addr()).await;
    client.send_rrq("f.bin", Mode::Octet, &[]).await;
    assert!(matches!(client.recv().await, Reply::Data { block: 1, .. }));
    client
        .send(&Packet::Error {
            code: ErrorCode::NotDefined,
            message: "changed my mind",
        })
        .await;
    assert!(
        server.wait_idle(Duration::from_millis(500)).await,
        "the session outlived the peer's ERROR"
    );
    // The retry timeout is 1 s: a session still running would resend DATA 1 by now.
    assert_eq!(client.recv_within(Duration::from_millis(1500)).await, None);
    server.shutdown().await;
}

/// RFC 1123 section 4.2.3.1: only a timeout resends a DATA, never a duplicate ACK. The wait
/// is fixed at 1 s here (the adaptive one would resend within milliseconds on loopback), so
/// that any DATA within half a second can only be a duplicate ACK's doing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicate_ack_does_not_resend_data() {
    let mut config = Config::default();
    config.min_retry_timeout = config.retry_timeout;
    let server = TestServer::start(MemoryStore::default(), config, test_server_config());
    server.store().insert("f.bin", pattern(100_000, 6).into());
    let mut client = RawClient::bind(server.addr()).await;
    client.send_rrq("f.bin", Mode::Octet, &[]).await;
    assert!(matches!(client.recv().await, Reply::Data { block: 1, .. }));
    client.send_ack(1).await;
    client.send_ack(1).await;
    assert!(matches!(client.recv().await, Reply::Data { block: 2, .. }));
    // Well inside the 1 s retry timeout: only a duplicate-ACK resend could arrive here.
    let extra = client.recv_within(Duration::from_millis(500)).await;
    assert_eq!(extra, None, "DATA resent on a duplicate ACK");
    server.shutdown().await;
}

/// A client that resends its request before seeing our reply joins the transfer it started.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_request_goes_to_the_live_transfer() {
    let contents = pattern(50_000, 7);
    let server = TestServer::with_file("f.bin", contents.clone());
    let mut client = RawClient::bind(server.addr()).await;
    let options = [("blksize", "1000")];
    client.send_rrq("f.bin", Mode::Octet, &options).await;
    // `read` sends the same request again, then runs the transfer.
    let downloaded = client.read("f.bin", Mode::Octet, &options).await;
    assert_same_bytes(&downloaded.unwrap(), &contents, "download");
    assert_eq!(server.stats().snapshot().sessions_opened, 1);
    server.shutdown().await;
}

/// A peer that gets an ERROR and sends its next request from the same port at once (a script
/// feeding tftp-hpa's interactive client, a boot loader walking a list of config names) must
/// get an answer to it, however the two race inside the server.
///
/// The race is narrow: the new request must reach the refused request's session after its
/// ERROR went out but before the session ended. Busy threads make the OS preempt the server
/// in that window; 20,000 refused requests lose a few to it in most runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_right_after_a_refused_one_is_always_answered() {
    const CLIENTS: usize = 4;
    const REQUESTS: usize = 5_000;
    let server = TestServer::start_default();
    let stop = Arc::new(AtomicBool::new(false));
    let spinners: Vec<_> = (0..8)
        .map(|_| {
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    std::hint::spin_loop();
                }
            })
        })
        .collect();
    let mut clients = JoinSet::new();
    for c in 0..CLIENTS {
        let addr = server.addr();
        clients.spawn(async move {
            let mut client = RawClient::bind(addr).await;
            let mut unanswered = 0;
            for i in 0..REQUESTS {
                let name = format!("missing-{c}-{i}");
                client.send_rrq(&name, Mode::Octet, &[]).await;
                match client.recv_within(Duration::from_secs(1)).await {
                    Some(reply) => {
                        expect_error(reply, ErrorCode::FileNotFound);
                    }
                    None => unanswered += 1,
                }
            }
            unanswered
        });
    }
    let mut unanswered = 0;
    while let Some(joined) = clients.join_next().await {
        unanswered += joined.unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    for spinner in spinners {
        spinner.join().unwrap();
    }
    assert_eq!(
        unanswered,
        0,
        "requests never answered (the counters show them received but opening no session): {:?}",
        server.stats().snapshot()
    );
    server.shutdown().await;
}
