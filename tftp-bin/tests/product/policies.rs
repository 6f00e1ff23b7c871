//! File policies: `--read-only`, `--write-only`, `--no-overwrite`.

use std::time::Duration;

use tftp_handler::ErrorCode;

use crate::support::{RawClient, TempDir, assert_success, client, memtftpd, pattern, run};

fn root_with(tag: &str, name: &str, contents: &[u8]) -> TempDir {
    let dir = TempDir::new(tag);
    dir.write(name, contents);
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_refuses_an_upload_with_error_2() {
    let server = memtftpd().args(["--read-only"]).start().await;
    let refusal = RawClient::local(server.addr)
        .await
        .put("new.cfg", b"hostname r1\n")
        .await
        .unwrap_err();
    assert_eq!(refusal.code, ErrorCode::AccessViolation, "{refusal:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_still_serves_downloads_to_curl() {
    let Some(mut curl) = client("curl") else {
        return;
    };
    let dir = root_with("read-only-get", "pxelinux.0", &pattern(5000));
    let server = memtftpd()
        .args(["--read-only", "--root"])
        .args([dir.path()])
        .start()
        .await;
    curl.arg("-sS").arg(server.url("pxelinux.0"));
    let output = run(curl).await;
    assert_success(&output, "curl download from a --read-only server");
    assert_eq!(output.stdout, pattern(5000));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_only_refuses_a_download_with_error_2() {
    let dir = root_with("write-only-get", "secret.cfg", b"enable secret 5 x\n");
    let server = memtftpd()
        .args(["--write-only", "--root"])
        .args([dir.path()])
        .start()
        .await;
    let refusal = RawClient::local(server.addr)
        .await
        .get("secret.cfg")
        .await
        .unwrap_err();
    assert_eq!(refusal.code, ErrorCode::AccessViolation, "{refusal:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_only_still_accepts_uploads_from_curl() {
    let Some(mut curl) = client("curl") else {
        return;
    };
    let server = memtftpd().args(["--write-only"]).start().await;
    let dir = TempDir::new("write-only-put");
    let file = dir.write("r1.cfg", &pattern(3000));
    curl.arg("-sS")
        .arg("-T")
        .arg(&file)
        .arg(server.url("r1.cfg"));
    assert_success(&run(curl).await, "curl upload to a --write-only server");
    // Downloads are refused, so the log is where the upload shows.
    let line = server
        .log()
        .wait_for(Duration::from_secs(5), |l| {
            l.contains("transfer finished") && l.contains("\"file\":\"r1.cfg\"")
        })
        .await
        .unwrap_or_else(|| panic!("no transfer logged:\n{}", server.log().text()));
    assert!(line.contains("\"direction\":\"write\""), "{line}");
    assert!(line.contains("\"bytes\":3000"), "{line}");
    assert!(line.contains("\"outcome\":\"completed\""), "{line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_overwrite_refuses_an_existing_name_with_error_6_and_keeps_the_old_content() {
    let old = b"hostname r1\n".to_vec();
    let dir = root_with("no-overwrite-existing", "r1.cfg", &old);
    let server = memtftpd()
        .args(["--no-overwrite", "--root"])
        .args([dir.path()])
        .start()
        .await;
    let refusal = RawClient::local(server.addr)
        .await
        .put("r1.cfg", b"hostname evil\n")
        .await
        .unwrap_err();
    assert_eq!(refusal.code, ErrorCode::FileExists, "{refusal:?}");
    let read = RawClient::local(server.addr)
        .await
        .get("r1.cfg")
        .await
        .unwrap();
    assert_eq!(read, old);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_overwrite_accepts_a_new_name() {
    let dir = root_with("no-overwrite-new", "r1.cfg", b"hostname r1\n");
    let server = memtftpd()
        .args(["--no-overwrite", "--root"])
        .args([dir.path()])
        .start()
        .await;
    let contents = pattern(1300);
    RawClient::local(server.addr)
        .await
        .put("r2.cfg", &contents)
        .await
        .unwrap();
    let read = RawClient::local(server.addr)
        .await
        .get("r2.cfg")
        .await
        .unwrap();
    assert_eq!(read, contents);
}
