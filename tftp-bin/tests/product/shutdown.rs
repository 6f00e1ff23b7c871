//! SIGTERM: new requests are refused, running transfers get `--shutdown-grace` to finish,
//! stragglers get ERROR 0, the process exits 0; a second signal exits at once.

use std::time::Duration;

use tftp_handler::ErrorCode;

use crate::support::{Memtftpd, RawClient, Reply, TempDir, memtftpd, pattern};

/// The size of the file downloaded across the signal: 2048 blocks of 512 bytes.
const BIG: usize = 1 << 20;

async fn serving_a_big_file(grace: &str) -> (Memtftpd, TempDir) {
    let dir = TempDir::new("drain");
    dir.write("big.bin", &pattern(BIG));
    let server = memtftpd()
        .args(["--shutdown-grace", grace, "--root"])
        .args([dir.path()])
        .start()
        .await;
    (server, dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_request_during_the_drain_gets_error_0_server_shutting_down() {
    let (server, _dir) = serving_a_big_file("5s").await;
    let running = RawClient::local(server.addr).await;
    let mut download = running.start_download("big.bin").await;
    for _ in 0..4 {
        assert!(!download.step().await.unwrap());
    }
    server.terminate_and_wait_for_drain().await;
    let late = RawClient::local(server.addr).await;
    late.rrq("big.bin", &[]).await;
    let refusal = late.expect_error(Duration::from_secs(1)).await;
    assert_eq!(refusal.code, ErrorCode::NotDefined, "{refusal:?}");
    assert!(
        refusal.message.contains("server shutting down"),
        "{refusal:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_download_completes_during_the_drain_then_the_process_exits_0() {
    let (mut server, _dir) = serving_a_big_file("5s").await;
    let client = RawClient::local(server.addr).await;
    let mut download = client.start_download("big.bin").await;
    for _ in 0..8 {
        assert!(!download.step().await.unwrap());
    }
    server.terminate_and_wait_for_drain().await;
    let bytes = download.finish().await.unwrap();
    assert!(bytes == pattern(BIG), "the download is not byte-exact");
    // Well before the 5 s grace: the server stops as soon as nothing is running.
    let status = server.exit_status(Duration::from_secs(2)).await;
    assert!(status.success(), "memtftpd exited with {status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transfer_still_running_after_the_grace_gets_error_0_and_the_process_exits_0() {
    let (mut server, _dir) = serving_a_big_file("200ms").await;
    let client = RawClient::local(server.addr).await;
    let mut download = client.start_download("big.bin").await;
    for _ in 0..3 {
        assert!(!download.step().await.unwrap());
    }
    // The client stalls: it stops acknowledging but keeps listening.
    server.terminate_and_wait_for_drain().await;
    let refusal = loop {
        match client.recv(Duration::from_secs(3)).await {
            Some(Reply::Data { .. }) => continue, // resends of the block we never acknowledge
            Some(Reply::Error(refusal)) => break refusal,
            other => panic!("expected ERROR 0 after the grace, got {other:?}"),
        }
    };
    assert_eq!(refusal.code, ErrorCode::NotDefined, "{refusal:?}");
    assert!(
        refusal.message.contains("server shutting down"),
        "{refusal:?}"
    );
    let status = server.exit_status(Duration::from_secs(3)).await;
    assert!(status.success(), "memtftpd exited with {status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_signal_during_the_drain_exits_at_once() {
    let (mut server, _dir) = serving_a_big_file("60s").await;
    let client = RawClient::local(server.addr).await;
    let mut download = client.start_download("big.bin").await;
    assert!(!download.step().await.unwrap());
    // The stalled download holds the drain open (for up to the 60 s grace).
    server.terminate_and_wait_for_drain().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !server.has_exited(),
        "memtftpd did not wait for the running transfer"
    );
    server.terminate();
    let status = server.exit_status(Duration::from_secs(2)).await;
    assert!(
        !status.success(),
        "a forced exit should not report success, got {status}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_server_exits_0_at_once_on_sigint() {
    let mut server = memtftpd().start().await;
    server.signal("INT");
    let status = server.exit_status(Duration::from_secs(2)).await;
    assert!(status.success(), "memtftpd exited with {status}");
}
