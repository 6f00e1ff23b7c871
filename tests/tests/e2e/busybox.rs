//! BusyBox's `tftp` applet (1.35) against memtftpd: octet transfers at the edge sizes, and
//! with `-b` (blksize).
//!
//! BusyBox always asks for `tsize` (and `blksize` with `-b`), so transfers start with an
//! OACK. It only speaks octet mode: it has no netascii at all, so it takes no part in the
//! netascii tests.

use memtftpd_tests::{
    EDGE_SIZES, ScratchDir, TestServer, check_downloads, check_uploads, require, strings,
};

const BUSYBOX: &str = "busybox";

/// The arguments of one transfer: `direction` is `-g` or `-p`, `extra` goes before it.
fn args(port: &str, extra: &[&str], direction: &str, remote: &str, local: &str) -> Vec<String> {
    let mut args = strings(["tftp"]);
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    args.extend(strings([
        direction,
        "-l",
        local,
        "-r",
        remote,
        "127.0.0.1",
        port,
    ]));
    args
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn downloads_of_edge_sizes_are_byte_exact() {
    if !require(BUSYBOX) {
        return;
    }
    let server = TestServer::start_default();
    let dir = ScratchDir::new("busybox-get");
    let port = server.port();
    let get = |remote: &str, local: &str| args(&port, &[], "-g", remote, local);
    check_downloads(&server, &dir, "busybox tftp", BUSYBOX, &EDGE_SIZES, &get).await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_of_edge_sizes_are_stored_byte_exact() {
    if !require(BUSYBOX) {
        return;
    }
    let server = TestServer::start_default();
    let dir = ScratchDir::new("busybox-put");
    let port = server.port();
    let put = |remote: &str, local: &str| args(&port, &[], "-p", remote, local);
    check_uploads(&server, &dir, "busybox tftp", BUSYBOX, &EDGE_SIZES, &put).await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transfers_at_blksize_1024_are_byte_exact() {
    if !require(BUSYBOX) {
        return;
    }
    let server = TestServer::start_default();
    let dir = ScratchDir::new("busybox-1024");
    let port = server.port();
    let sizes = [0, 1023, 1024, 1025, (1 << 20) + 7];
    let get = |remote: &str, local: &str| args(&port, &["-b", "1024"], "-g", remote, local);
    let put = |remote: &str, local: &str| args(&port, &["-b", "1024"], "-p", remote, local);
    check_downloads(&server, &dir, "busybox tftp -b 1024", BUSYBOX, &sizes, &get).await;
    check_uploads(&server, &dir, "busybox tftp -b 1024", BUSYBOX, &sizes, &put).await;
    server.shutdown().await;
}
