//! Size and session limits: `--max-file-size`, `--max-store-bytes`, `--max-sessions`,
//! `--max-sessions-per-peer-ip`.

use std::time::Duration;

use tftp_handler::ErrorCode;

use crate::support::{RawClient, Reply, TempDir, assert_success, client, memtftpd, pattern, run};

/// How soon a refusal must arrive: well before the server's first resend (1 s).
const AT_ONCE: Duration = Duration::from_millis(900);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_curl_upload_over_max_file_size_fails_and_leaves_no_file() {
    let Some(mut curl) = client("curl") else {
        return;
    };
    let server = memtftpd().args(["--max-file-size", "1KiB"]).start().await;
    let dir = TempDir::new("max-file-size-curl");
    let file = dir.write("big.bin", &pattern(2048));
    curl.arg("-sS")
        .arg("-T")
        .arg(&file)
        .arg(server.url("big.bin"));
    let output = run(curl).await;
    assert!(
        !output.status.success(),
        "curl uploaded 2 KiB past --max-file-size 1KiB"
    );
    let refusal = RawClient::local(server.addr)
        .await
        .get("big.bin")
        .await
        .unwrap_err();
    assert_eq!(refusal.code, ErrorCode::FileNotFound, "{refusal:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_growing_past_max_file_size_gets_error_3_and_leaves_no_file() {
    let server = memtftpd().args(["--max-file-size", "1KiB"]).start().await;
    let client = RawClient::local(server.addr).await;
    let refusal = client.put("big.bin", &pattern(2048)).await.unwrap_err();
    assert_eq!(refusal.code, ErrorCode::DiskFull, "{refusal:?}");
    let refusal = RawClient::local(server.addr)
        .await
        .get("big.bin")
        .await
        .unwrap_err();
    assert_eq!(refusal.code, ErrorCode::FileNotFound, "{refusal:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_announcing_a_tsize_over_max_file_size_gets_error_3_at_once() {
    let server = memtftpd().args(["--max-file-size", "1KiB"]).start().await;
    let client = RawClient::local(server.addr).await;
    client.wrq("big.bin", &[("tsize", "2048")]).await;
    let refusal = client.expect_error(AT_ONCE).await;
    assert_eq!(refusal.code, ErrorCode::DiskFull, "{refusal:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_past_max_store_bytes_gets_error_3_and_publishes_nothing() {
    let dir = TempDir::new("store-full");
    let preloaded = pattern(3 * 1024);
    dir.write("kernel", &preloaded);
    let server = memtftpd()
        .args(["--max-store-bytes", "4KiB", "--root"])
        .args([dir.path()])
        .start()
        .await;
    let refusal = RawClient::local(server.addr)
        .await
        .put("backup.cfg", &pattern(2048))
        .await
        .unwrap_err();
    assert_eq!(refusal.code, ErrorCode::DiskFull, "{refusal:?}");
    let reader = RawClient::local(server.addr).await;
    let refusal = reader.get("backup.cfg").await.unwrap_err();
    assert_eq!(refusal.code, ErrorCode::FileNotFound, "{refusal:?}");
    assert_eq!(reader.get("kernel").await.unwrap(), preloaded);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_that_fits_in_the_rest_of_the_store_succeeds() {
    let dir = TempDir::new("store-fits");
    dir.write("kernel", &pattern(3 * 1024));
    let server = memtftpd()
        .args(["--max-store-bytes", "4KiB", "--root"])
        .args([dir.path()])
        .start()
        .await;
    let small = pattern(512);
    RawClient::local(server.addr)
        .await
        .put("small.cfg", &small)
        .await
        .unwrap();
    let read = RawClient::local(server.addr)
        .await
        .get("small.cfg")
        .await
        .unwrap();
    assert_eq!(read, small);
}

/// A client that asked for `name` and got DATA 1, and now holds its transfer open by never
/// acknowledging (the server keeps resending DATA 1 for a few seconds).
async fn hold_a_transfer(ip: &str, server: std::net::SocketAddr, name: &str) -> RawClient {
    let client = RawClient::bind(ip, server).await;
    client.rrq(name, &[]).await;
    match client.recv(Duration::from_secs(5)).await {
        Some(Reply::Data { block: 1, .. }) => client,
        other => panic!("expected DATA 1 for the held transfer, got {other:?}"),
    }
}

/// A root with one file big enough that a transfer of it stays open.
fn big_file_root(tag: &str) -> TempDir {
    let dir = TempDir::new(tag);
    dir.write("big.bin", &pattern(64 * 1024));
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_beyond_max_sessions_gets_error_0_busy_at_once() {
    let dir = big_file_root("max-sessions");
    let server = memtftpd()
        .args(["--max-sessions", "2", "--root"])
        .args([dir.path()])
        .start()
        .await;
    let _first = hold_a_transfer("127.0.0.1", server.addr, "big.bin").await;
    let _second = hold_a_transfer("127.0.0.1", server.addr, "big.bin").await;
    let third = RawClient::local(server.addr).await;
    third.rrq("big.bin", &[]).await;
    let refusal = third.expect_error(AT_ONCE).await;
    assert_eq!(refusal.code, ErrorCode::NotDefined, "{refusal:?}");
    assert!(refusal.message.contains("busy"), "{refusal:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_request_from_an_ip_at_its_session_limit_gets_error_0_at_once() {
    let dir = big_file_root("per-ip-refused");
    let server = memtftpd()
        .args(["--max-sessions-per-peer-ip", "1", "--root"])
        .args([dir.path()])
        .start()
        .await;
    let _held = hold_a_transfer("127.0.0.1", server.addr, "big.bin").await;
    let second = RawClient::local(server.addr).await;
    second.rrq("big.bin", &[]).await;
    let refusal = second.expect_error(AT_ONCE).await;
    assert_eq!(refusal.code, ErrorCode::NotDefined, "{refusal:?}");
    assert!(!refusal.message.is_empty(), "{refusal:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_ip_is_served_while_one_ip_is_at_its_session_limit() {
    let dir = big_file_root("per-ip-other");
    let server = memtftpd()
        .args(["--max-sessions-per-peer-ip", "1", "--root"])
        .args([dir.path()])
        .start()
        .await;
    let _held = hold_a_transfer("127.0.0.1", server.addr, "big.bin").await;
    let other = RawClient::bind("127.0.0.2", server.addr).await;
    assert_eq!(other.get("big.bin").await.unwrap(), pattern(64 * 1024));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_within_max_file_size_succeeds_with_curl() {
    let Some(mut curl) = client("curl") else {
        return;
    };
    let server = memtftpd().args(["--max-file-size", "1KiB"]).start().await;
    let dir = TempDir::new("max-file-size-fits");
    let contents = pattern(1024);
    let file = dir.write("fits.bin", &contents);
    curl.arg("-sS")
        .arg("-T")
        .arg(&file)
        .arg(server.url("fits.bin"));
    assert_success(&run(curl).await, "curl upload of exactly 1 KiB");
    let read = RawClient::local(server.addr)
        .await
        .get("fits.bin")
        .await
        .unwrap();
    assert_eq!(read, contents);
}
