//! curl's `tftp://` support against memtftpd: octet transfers at the edge sizes and with the
//! block sizes curl can ask for.
//!
//! curl always sends options unless told not to (`--tftp-no-options`): `tsize`, `blksize 512`
//! and `timeout 6` on a download, `tsize <length>` on an upload, so every transfer here starts
//! with an OACK. An upload with `-T LOCAL` to a URL ending in `/NAME` is stored as `NAME`.
//! curl has no netascii translation of its own (`;mode=netascii` would hand over the wire
//! bytes), so it takes no part in the netascii tests.
//!
//! curl treats `tsize 0` in an OACK as an illegal operation (exit 71, "invalid tsize -:0:-
//! value in OACK packet", in `tftp_parse_option_ack` of curl's `lib/tftp.c`), so memtftpd
//! leaves `tsize` out of its answer for an empty file; the empty download is tested with
//! options on, as curl sends them by default.

use memtftpd_tests::{
    EDGE_SIZES, ScratchDir, TestServer, check_downloads, check_uploads, require, strings,
};

const CURL: &str = "curl";

/// The URL of `remote` on the test server.
fn url(port: &str, remote: &str) -> String {
    format!("tftp://127.0.0.1:{port}/{remote}")
}

/// A download's arguments, with `extra` options before the URL.
fn get(port: &str, extra: &[&str], remote: &str, local: &str) -> Vec<String> {
    let mut args = strings(["-sS", "--fail"]);
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    args.extend([url(port, remote), "-o".to_owned(), local.to_owned()]);
    args
}

/// An upload's arguments, with `extra` options before the URL.
fn put(port: &str, extra: &[&str], remote: &str, local: &str) -> Vec<String> {
    let mut args = strings(["-sS", "--fail"]);
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    args.extend(["-T".to_owned(), local.to_owned(), url(port, remote)]);
    args
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn downloads_of_edge_sizes_are_byte_exact_with_curls_default_options() {
    if !require(CURL) {
        return;
    }
    let server = TestServer::start_default();
    let dir = ScratchDir::new("curl-get");
    let port = server.port();
    let args = |remote: &str, local: &str| get(&port, &[], remote, local);
    check_downloads(&server, &dir, "curl", CURL, &EDGE_SIZES, &args).await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_of_edge_sizes_are_stored_byte_exact_under_the_url_name() {
    if !require(CURL) {
        return;
    }
    let server = TestServer::start_default();
    let dir = ScratchDir::new("curl-put");
    let port = server.port();
    let args = |remote: &str, local: &str| put(&port, &[], remote, local);
    check_uploads(&server, &dir, "curl", CURL, &EDGE_SIZES, &args).await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transfers_at_blksize_8192_are_byte_exact() {
    if !require(CURL) {
        return;
    }
    let server = TestServer::start_default();
    let dir = ScratchDir::new("curl-8192");
    let port = server.port();
    let sizes = [0, 8191, 8192, 8193, (1 << 20) + 5];
    let options = ["--tftp-blksize", "8192"];
    let download = |remote: &str, local: &str| get(&port, &options, remote, local);
    let upload = |remote: &str, local: &str| put(&port, &options, remote, local);
    let label = "curl blksize 8192";
    check_downloads(&server, &dir, label, CURL, &sizes[1..], &download).await;
    check_uploads(&server, &dir, label, CURL, &sizes, &upload).await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transfers_at_the_largest_block_size_are_byte_exact() {
    if !require(CURL) {
        return;
    }
    let server = TestServer::start_default();
    let dir = ScratchDir::new("curl-65464");
    let port = server.port();
    let sizes = [65_464, (4 << 20) + 9];
    let options = ["--tftp-blksize", "65464"];
    let download = |remote: &str, local: &str| get(&port, &options, remote, local);
    let upload = |remote: &str, local: &str| put(&port, &options, remote, local);
    check_downloads(&server, &dir, "curl blksize 65464", CURL, &sizes, &download).await;
    check_uploads(&server, &dir, "curl blksize 65464", CURL, &sizes, &upload).await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transfers_without_options_are_byte_exact() {
    if !require(CURL) {
        return;
    }
    let server = TestServer::start_default();
    let dir = ScratchDir::new("curl-no-options");
    let port = server.port();
    let sizes = [0, 512, 70_001];
    let options = ["--tftp-no-options"];
    let download = |remote: &str, local: &str| get(&port, &options, remote, local);
    let upload = |remote: &str, local: &str| put(&port, &options, remote, local);
    check_downloads(
        &server,
        &dir,
        "curl without options",
        CURL,
        &sizes,
        &download,
    )
    .await;
    check_uploads(&server, &dir, "curl without options", CURL, &sizes, &upload).await;
    server.shutdown().await;
}
