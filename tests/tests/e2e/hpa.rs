//! tftp-hpa's `tftp` client (5.2) against memtftpd: octet transfers at the edge sizes, ascii
//! (netascii) round trips, and a download long enough for the block number to wrap.
//!
//! tftp-hpa 5.2 sends no options at all (no `blksize`, `tsize` or `windowsize`, neither as a
//! flag nor as an interactive command), so every transfer here is plain RFC 1350 lock-step at
//! 512-byte blocks. It also exits with status 0 after an ERROR from the server, which is why
//! [`assert_client_ok`] reads its output as well.

use memtftpd_tests::{
    EDGE_SIZES, ScratchDir, TestServer, assert_client_ok, assert_same_bytes, check_downloads,
    check_uploads, netascii_samples, pattern, require, run_client, strings,
};

const TFTP: &str = "tftp";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_downloads_of_edge_sizes_are_byte_exact() {
    if !require(TFTP) {
        return;
    }
    let server = TestServer::start_default();
    let dir = ScratchDir::new("hpa-get");
    let port = server.port();
    let args = |remote: &str, local: &str| {
        strings([
            "-m",
            "binary",
            "127.0.0.1",
            &port,
            "-c",
            "get",
            remote,
            local,
        ])
    };
    check_downloads(&server, &dir, "tftp-hpa", TFTP, &EDGE_SIZES, &args).await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_uploads_of_edge_sizes_are_stored_byte_exact() {
    if !require(TFTP) {
        return;
    }
    let server = TestServer::start_default();
    let dir = ScratchDir::new("hpa-put");
    let port = server.port();
    let args = |remote: &str, local: &str| {
        strings([
            "-m",
            "binary",
            "127.0.0.1",
            &port,
            "-c",
            "put",
            local,
            remote,
        ])
    };
    check_uploads(&server, &dir, "tftp-hpa", TFTP, &EDGE_SIZES, &args).await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ascii_download_restores_the_text_byte_for_byte() {
    if !require(TFTP) {
        return;
    }
    let server = TestServer::start_default();
    let dir = ScratchDir::new("hpa-ascii-get");
    let port = server.port();
    for (name, text) in netascii_samples() {
        server.store().insert(name.clone(), text.clone().into());
        let output = run_client(
            TFTP,
            &["-m", "ascii", "127.0.0.1", &port, "-c", "get", &name, &name],
            dir.path(),
        )
        .await;
        let what = format!("tftp-hpa ascii get of `{name}`");
        assert_client_ok(&output, &what);
        assert_same_bytes(&dir.read(&name), &text, &what);
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ascii_upload_stores_the_original_text() {
    if !require(TFTP) {
        return;
    }
    let server = TestServer::start_default();
    let dir = ScratchDir::new("hpa-ascii-put");
    let port = server.port();
    for (name, text) in netascii_samples() {
        dir.write(&name, &text);
        let output = run_client(
            TFTP,
            &["-m", "ascii", "127.0.0.1", &port, "-c", "put", &name, &name],
            dir.path(),
        )
        .await;
        let what = format!("tftp-hpa ascii put of `{name}`");
        assert_client_ok(&output, &what);
        let stored = server.store().get(&name).expect("uploaded file is stored");
        assert_same_bytes(&stored, &text, &what);
    }
    server.shutdown().await;
}

/// 33 MiB at 512-byte blocks is 67,585 blocks: the block number wraps from 65535 to 0 once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn download_past_the_block_number_wrap_at_512_byte_blocks_is_byte_exact() {
    if !require(TFTP) {
        return;
    }
    let contents = pattern((33 << 20) + 777, 33);
    assert!(contents.len() / 512 > 65_535);
    let server = TestServer::with_file("big.bin", contents.clone());
    let dir = ScratchDir::new("hpa-wrap");
    let port = server.port();
    let output = run_client(
        TFTP,
        &[
            "-m",
            "binary",
            "127.0.0.1",
            &port,
            "-c",
            "get",
            "big.bin",
            "big.bin",
        ],
        dir.path(),
    )
    .await;
    assert_client_ok(&output, "tftp-hpa get of 33 MiB");
    assert_same_bytes(&dir.read("big.bin"), &contents, "tftp-hpa get of 33 MiB");
    server.shutdown().await;
}
