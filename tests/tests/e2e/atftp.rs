//! atftp (0.8) against memtftpd: octet transfers at the edge sizes, netascii round trips, and
//! the options atftp can ask for (`blksize`, `windowsize`, `tsize`), up to the largest block
//! size and past the second block-number wrap.
//!
//! atftp asks for no option unless told to (`--option "name value"`). Netascii is only
//! reachable through its interactive `mode netascii` command, so those tests feed it commands
//! on stdin.

use memtftpd_tests::{
    EDGE_SIZES, ScratchDir, TestServer, assert_client_ok, assert_same_bytes, check_downloads,
    check_uploads, netascii_samples, require, run_client_with_input, strings,
};

const ATFTP: &str = "atftp";

/// The argument list of a batch transfer: `direction` is `--get` or `--put`, `options` are
/// `--option` values.
fn batch(port: &str, direction: &str, options: &[&str], remote: &str, local: &str) -> Vec<String> {
    let mut args = Vec::new();
    for option in options {
        args.extend(strings(["--option", option]));
    }
    args.extend(strings([
        direction,
        "-r",
        remote,
        "-l",
        local,
        "127.0.0.1",
        port,
    ]));
    args
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn octet_downloads_of_edge_sizes_are_byte_exact() {
    if !require(ATFTP) {
        return;
    }
    let server = TestServer::start_default();
    let dir = ScratchDir::new("atftp-get");
    let port = server.port();
    let args = |remote: &str, local: &str| batch(&port, "--get", &[], remote, local);
    check_downloads(&server, &dir, "atftp", ATFTP, &EDGE_SIZES, &args).await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn octet_uploads_of_edge_sizes_are_stored_byte_exact() {
    if !require(ATFTP) {
        return;
    }
    let server = TestServer::start_default();
    let dir = ScratchDir::new("atftp-put");
    let port = server.port();
    let args = |remote: &str, local: &str| batch(&port, "--put", &[], remote, local);
    check_uploads(&server, &dir, "atftp", ATFTP, &EDGE_SIZES, &args).await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn netascii_round_trips_restore_the_text_byte_for_byte() {
    if !require(ATFTP) {
        return;
    }
    let server = TestServer::start_default();
    let dir = ScratchDir::new("atftp-netascii");
    let port = server.port();
    for (name, text) in netascii_samples() {
        // Download a preloaded copy, and upload the local file under another name.
        server.store().insert(name.clone(), text.clone().into());
        dir.write(&name, &text);
        let got = format!("{name}.got");
        let uploaded = format!("{name}.up");
        let commands = format!(
            "connect 127.0.0.1 {port}\nmode netascii\nget {name} {got}\nput {name} {uploaded}\nquit\n"
        );
        let output = run_client_with_input(ATFTP, &[], dir.path(), &commands).await;
        let what = format!("atftp netascii round trip of `{name}`");
        assert_client_ok(&output, &what);
        assert_same_bytes(&dir.read(&got), &text, &format!("{what} (get)"));
        let stored = server
            .store()
            .get(&uploaded)
            .unwrap_or_else(|| panic!("{what}: the upload is not in the store"));
        assert_same_bytes(&stored, &text, &format!("{what} (put)"));
    }
    server.shutdown().await;
}

/// Sizes for windowed transfers: empty, exactly one full window (ends with an empty block
/// that opens a new window), a window and a bit, and about 1 MiB.
const WINDOW_SIZES: [usize; 4] = [0, 1428 * 8, 1428 * 8 + 1, (1 << 20) + 1];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn downloads_with_blksize_windowsize_and_tsize_are_byte_exact() {
    if !require(ATFTP) {
        return;
    }
    let server = TestServer::start_default();
    let dir = ScratchDir::new("atftp-options-get");
    let port = server.port();
    let options = ["blksize 1428", "windowsize 8", "tsize 0"];
    let args = |remote: &str, local: &str| batch(&port, "--get", &options, remote, local);
    let label = "atftp blksize 1428 windowsize 8 tsize";
    check_downloads(&server, &dir, label, ATFTP, &WINDOW_SIZES, &args).await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_with_blksize_windowsize_and_tsize_are_stored_byte_exact() {
    if !require(ATFTP) {
        return;
    }
    let server = TestServer::start_default();
    let dir = ScratchDir::new("atftp-options-put");
    let port = server.port();
    let options = ["blksize 1428", "windowsize 8", "tsize 0"];
    let args = |remote: &str, local: &str| batch(&port, "--put", &options, remote, local);
    let label = "atftp blksize 1428 windowsize 8 tsize";
    check_uploads(&server, &dir, label, ATFTP, &WINDOW_SIZES, &args).await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transfers_at_the_largest_block_size_are_byte_exact() {
    if !require(ATFTP) {
        return;
    }
    let server = TestServer::start_default();
    let dir = ScratchDir::new("atftp-65464");
    let port = server.port();
    let sizes = [65_464, (4 << 20) + 3];
    let options = ["blksize 65464"];
    let get = |remote: &str, local: &str| batch(&port, "--get", &options, remote, local);
    let put = |remote: &str, local: &str| batch(&port, "--put", &options, remote, local);
    check_downloads(&server, &dir, "atftp blksize 65464", ATFTP, &sizes, &get).await;
    check_uploads(&server, &dir, "atftp blksize 65464", ATFTP, &sizes, &put).await;
    server.shutdown().await;
}

/// 1.2 MB at 8-byte blocks is 150,001 blocks: the block number wraps twice (past 131,072).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transfers_past_the_second_block_number_wrap_are_byte_exact() {
    if !require(ATFTP) {
        return;
    }
    let server = TestServer::start_default();
    let dir = ScratchDir::new("atftp-wrap2");
    let port = server.port();
    let sizes = [1_200_000];
    assert!(sizes[0] / 8 > 2 * 65_536);
    let options = ["blksize 8", "windowsize 16"];
    let get = |remote: &str, local: &str| batch(&port, "--get", &options, remote, local);
    let put = |remote: &str, local: &str| batch(&port, "--put", &options, remote, local);
    let label = "atftp blksize 8 windowsize 16";
    check_downloads(&server, &dir, label, ATFTP, &sizes, &get).await;
    check_uploads(&server, &dir, label, ATFTP, &sizes, &put).await;
    server.shutdown().await;
}
