//! The one log line per finished transfer: peer, file, direction, bytes, duration, outcome.

use std::time::Duration;

use crate::support::{RawClient, TempDir, assert_success, client, memtftpd, pattern, run};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_curl_download_logs_one_json_line_with_peer_file_direction_bytes_and_outcome() {
    let Some(mut curl) = client("curl") else {
        return;
    };
    let root = TempDir::new("log-json");
    root.write("boot/pxelinux.0", &pattern(3000));
    let server = memtftpd()
        .args(["--root"])
        .args([root.path()])
        .start()
        .await;
    curl.arg("-sS").arg(server.url("boot/pxelinux.0"));
    assert_success(&run(curl).await, "curl download");
    let finished = |l: &str| l.contains("transfer finished");
    let line = server
        .log()
        .wait_for(Duration::from_secs(5), finished)
        .await
        .unwrap_or_else(|| panic!("no transfer logged:\n{}", server.log().text()));
    for field in [
        "\"peer\":\"127.0.0.1:",
        "\"file\":\"boot/pxelinux.0\"",
        "\"direction\":\"read\"",
        "\"bytes\":3000",
        "\"duration_ms\":",
        "\"outcome\":\"completed\"",
    ] {
        assert!(line.contains(field), "no {field} in {line}");
    }
    let lines = server.log().text();
    assert_eq!(lines.lines().filter(|l| finished(l)).count(), 1, "{lines}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_text_log_line_names_the_file_direction_bytes_and_outcome() {
    let Some(mut curl) = client("curl") else {
        return;
    };
    let root = TempDir::new("log-text");
    root.write("pxelinux.0", &pattern(1234));
    let server = memtftpd()
        .text_logs()
        .args(["--root"])
        .args([root.path()])
        .start()
        .await;
    curl.arg("-sS").arg(server.url("pxelinux.0"));
    assert_success(&run(curl).await, "curl download");
    let line = server
        .log()
        .wait_for(Duration::from_secs(5), |l| l.contains("transfer finished"))
        .await
        .unwrap_or_else(|| panic!("no transfer logged:\n{}", server.log().text()));
    for field in [
        "peer=127.0.0.1:",
        "file=\"pxelinux.0\"",
        "direction=\"read\"",
        "bytes=1234",
        "outcome=completed",
    ] {
        assert!(line.contains(field), "no {field} in {line}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_answering_gets_a_timed_out_log_line() {
    let root = TempDir::new("log-timeout");
    root.write("big.bin", &pattern(10_000));
    let server = memtftpd()
        .args(["--timeout", "100ms", "--root"])
        .args([root.path()])
        .start()
        .await;
    let client = RawClient::local(server.addr).await;
    client.rrq("big.bin", &[]).await; // and never acknowledge
    let line = server
        .log()
        .wait_for(Duration::from_secs(5), |l| l.contains("transfer finished"))
        .await
        .unwrap_or_else(|| panic!("no transfer logged:\n{}", server.log().text()));
    for field in [
        "\"file\":\"big.bin\"",
        "\"bytes\":0",
        "\"outcome\":\"timed out\"",
    ] {
        assert!(line.contains(field), "no {field} in {line}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transfer_cut_off_by_the_shutdown_still_gets_its_log_line() {
    let root = TempDir::new("log-shutdown");
    root.write("big.bin", &pattern(10_000));
    let mut server = memtftpd()
        .args(["--shutdown-grace", "100ms", "--root"])
        .args([root.path()])
        .start()
        .await;
    let client = RawClient::local(server.addr).await;
    let mut download = client.start_download("big.bin").await;
    assert!(!download.step().await.unwrap());
    server.terminate_and_wait_for_drain().await;
    let status = server.exit_status(Duration::from_secs(3)).await;
    assert!(status.success(), "memtftpd exited with {status}");
    let line = server
        .log()
        .wait_for(Duration::from_secs(1), |l| l.contains("transfer finished"))
        .await
        .unwrap_or_else(|| panic!("no transfer logged:\n{}", server.log().text()));
    for field in ["\"file\":\"big.bin\"", "\"bytes\":512", "\"outcome\":"] {
        assert!(line.contains(field), "no {field} in {line}");
    }
}
