//! Settings from `--config FILE` and `MEMTFTPD_*` variables, and which source wins.

use std::time::Duration;

use tftp_handler::ErrorCode;

use crate::support::{RawClient, TempDir, memtftpd, pattern};

fn config_file(dir: &TempDir, text: &str) -> std::path::PathBuf {
    dir.write("memtftpd.toml", text.as_bytes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_file_size_from_the_config_file_refuses_a_bigger_upload_with_error_3() {
    let dir = TempDir::new("config-size");
    let file = config_file(&dir, "max-file-size = \"1KiB\"\n");
    let server = memtftpd().args(["--config".into(), file]).start().await;
    let client = RawClient::local(server.addr).await;
    client.wrq("big.bin", &[("tsize", "2048")]).await;
    let refusal = client.expect_error(Duration::from_secs(1)).await;
    assert_eq!(refusal.code, ErrorCode::DiskFull, "{refusal:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_from_the_environment_refuses_an_upload_with_error_2() {
    let server = memtftpd().env("MEMTFTPD_READ_ONLY", "true").start().await;
    let refusal = RawClient::local(server.addr)
        .await
        .put("r1.cfg", b"hostname r1\n")
        .await
        .unwrap_err();
    assert_eq!(refusal.code, ErrorCode::AccessViolation, "{refusal:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flag_wins_over_the_config_file() {
    let dir = TempDir::new("config-flag-wins");
    let file = config_file(&dir, "max-file-size = \"1KiB\"\n");
    let server = memtftpd()
        .args(["--config".into(), file])
        .args(["--max-file-size", "1MiB"])
        .start()
        .await;
    let contents = pattern(2048);
    RawClient::local(server.addr)
        .await
        .put("r1.cfg", &contents)
        .await
        .unwrap();
    let read = RawClient::local(server.addr)
        .await
        .get("r1.cfg")
        .await
        .unwrap();
    assert_eq!(read, contents);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_environment_wins_over_the_config_file() {
    let dir = TempDir::new("config-env-wins");
    let file = config_file(&dir, "max-file-size = \"1KiB\"\n");
    let server = memtftpd()
        .args(["--config".into(), file])
        .env("MEMTFTPD_MAX_FILE_SIZE", "1MiB")
        .start()
        .await;
    RawClient::local(server.addr)
        .await
        .put("r1.cfg", &pattern(2048))
        .await
        .unwrap();
}
