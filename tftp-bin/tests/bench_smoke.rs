//! `memtftp bench` against a real `memtftpd`: the load generator's verdicts can be trusted.
//!
//! Each test starts the built server on an ephemeral loopback port with a preloaded 200 KiB
//! file, runs the built `memtftp bench ... --json` a few short ways (lock-step downloads,
//! windowed downloads with `tsize`, uploads read back), and checks its exit status and JSON
//! summary: every transfer succeeded, every byte counted, whether on one client thread or
//! several. One test proves the check can fail:
//! downloads compared with a wrong SHA-256 must all be reported failed. Correctness only;
//! nothing here measures or asserts on speed (that is `bench/compare.sh`'s job).

#![allow(clippy::unwrap_used)]

#[path = "product/support.rs"]
#[allow(dead_code)] // the product tests' harness: this test uses only its server launcher
mod support;

use std::ffi::OsStr;
use std::net::SocketAddr;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio::process::Command;
use tokio::time::timeout;

use support::{Memtftpd, TempDir, memtftpd, pattern};

/// The size of the preloaded file.
const FILE_SIZE: usize = 200 * 1024;
/// How long one bench run may take (a debug build, a few hundred kilobytes per transfer).
const BENCH_RUN: Duration = Duration::from_secs(30);

/// A server preloaded with `boot.img` ([`FILE_SIZE`] bytes), and that file's local copy.
async fn server_with_file() -> (Memtftpd, TempDir) {
    let root = TempDir::new("bench");
    root.write("boot.img", &pattern(FILE_SIZE));
    let server = memtftpd()
        .args([OsStr::new("--root"), root.path().as_os_str()])
        .start()
        .await;
    (server, root)
}

/// Runs `memtftp bench SERVER WORDS... EXTRA... --json` (`words` split at spaces, `extra` as
/// given); its exit status and JSON summary.
async fn bench(server: SocketAddr, words: &str, extra: &[&str]) -> (ExitStatus, Value) {
    let args: Vec<&str> = words
        .split_whitespace()
        .chain(extra.iter().copied())
        .collect();
    let mut command = Command::new(env!("CARGO_BIN_EXE_memtftp"));
    command
        .arg("bench")
        .arg(server.to_string())
        .args(&args)
        .arg("--json")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let output = timeout(BENCH_RUN, command.output())
        .await
        .unwrap_or_else(|_| panic!("memtftp bench {args:?} did not finish within {BENCH_RUN:?}"))
        .expect("cannot run memtftp");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let summary = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "memtftp bench {args:?} printed no JSON summary ({e}):\nstdout: {stdout}\nstderr: {}",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    (output.status, summary)
}

/// Asserts that the run succeeded: exit status 0, `transfers` done, none failed, `bytes` moved.
fn assert_all_succeeded(status: ExitStatus, summary: &Value, transfers: u64, bytes: u64) {
    assert!(status.success(), "bench exited with {status}: {summary:#}");
    assert_eq!(summary["failed"], 0, "{summary:#}");
    assert_eq!(summary["succeeded"], transfers, "{summary:#}");
    assert_eq!(summary["bytes"], bytes, "{summary:#}");
}

#[tokio::test]
async fn lock_step_downloads_checked_against_the_file_all_succeed() {
    let (server, root) = server_with_file().await;
    let local = root.path().join("boot.img");
    let verify = ["--verify-file", local.to_str().unwrap()];
    let (status, summary) = bench(server.addr, "boot.img -n 20 -c 4", &verify).await;
    assert_all_succeeded(status, &summary, 20, 20 * FILE_SIZE as u64);
}

#[tokio::test]
async fn downloads_shared_among_client_threads_all_succeed_and_count_once() {
    let (server, root) = server_with_file().await;
    let local = root.path().join("boot.img");
    let verify = ["--verify-file", local.to_str().unwrap()];
    let (status, summary) = bench(server.addr, "boot.img -n 21 -c 6 --threads 4", &verify).await;
    assert_all_succeeded(status, &summary, 21, 21 * FILE_SIZE as u64);
    assert_eq!(summary["threads"], 4, "{summary:#}");
    // No more threads than transfers at once.
    let (status, summary) = bench(server.addr, "boot.img -n 3 -c 2 -t 5", &verify).await;
    assert_all_succeeded(status, &summary, 3, 3 * FILE_SIZE as u64);
    assert_eq!(summary["threads"], 2, "{summary:#}");
}

#[tokio::test]
async fn windowed_downloads_with_tsize_checked_against_the_digest_all_succeed() {
    let (server, _root) = server_with_file().await;
    let digest: String = Sha256::digest(pattern(FILE_SIZE))
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let options = "boot.img -n 20 -c 4 --blksize 1468 --windowsize 8 --tsize";
    let (status, summary) = bench(server.addr, options, &["--verify-sha256", &digest]).await;
    assert_all_succeeded(status, &summary, 20, 20 * FILE_SIZE as u64);
}

#[tokio::test]
async fn uploads_read_back_all_succeed() {
    let (server, _root) = server_with_file().await;
    let options = "up -n 8 -c 4 --upload --size 64KiB --read-back";
    let (status, summary) = bench(server.addr, options, &[]).await;
    assert_all_succeeded(status, &summary, 8, 8 * 64 * 1024);
    assert_eq!(summary["direction"], "upload", "{summary:#}");
}

#[tokio::test]
async fn downloads_checked_against_a_wrong_digest_all_fail() {
    let (server, _root) = server_with_file().await;
    let wrong: String = Sha256::digest(b"not the file")
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let verify = ["--verify-sha256", wrong.as_str()];
    let (status, summary) = bench(server.addr, "boot.img -n 5 -c 5 -t 2", &verify).await;
    assert!(
        !status.success(),
        "bench passed a wrong digest: {summary:#}"
    );
    assert_eq!(summary["failed"], 5, "{summary:#}");
    assert_eq!(summary["succeeded"], 0, "{summary:#}");
    let failures = summary["first_failures"].as_array().unwrap();
    assert!(
        failures
            .iter()
            .all(|f| f.as_str().unwrap().contains("SHA-256 differs")),
        "{summary:#}"
    );
}
