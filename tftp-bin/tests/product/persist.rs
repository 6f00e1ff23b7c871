//! `--root DIR --persist`: completed uploads are saved under DIR and survive a restart;
//! without `--persist` nothing is written to DIR.

use std::time::Duration;

use crate::support::{RawClient, TempDir, assert_success, client, memtftpd, pattern, run};

/// How long a stopping server may take: the upload's dally (2 s) may still be draining.
const STOP: Duration = Duration::from_secs(5);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persist_saves_an_upload_under_root_byte_exact_with_no_temporary_files() {
    let Some(mut curl) = client("curl") else {
        return;
    };
    let root = TempDir::new("persist-saves");
    root.write("pxelinux.0", b"boot");
    let server = memtftpd()
        .args(["--persist", "--root"])
        .args([root.path()])
        .start()
        .await;
    let scratch = TempDir::new("persist-saves-src");
    let contents = pattern(4000);
    let file = scratch.write("r1.conf", &contents);
    curl.arg("-sS")
        .arg("-T")
        .arg(&file)
        .arg(server.url("cfg/r1.conf"));
    assert_success(&run(curl).await, "curl upload into cfg/r1.conf");
    assert_eq!(
        std::fs::read(root.path().join("cfg/r1.conf")).unwrap(),
        contents
    );
    assert_eq!(root.files(), ["cfg/r1.conf", "pxelinux.0"], "stray files");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_persisted_upload_survives_a_restart() {
    let (Some(mut put), Some(mut get)) = (client("curl"), client("curl")) else {
        return;
    };
    let root = TempDir::new("persist-restart");
    let mut first = memtftpd()
        .args(["--persist", "--root"])
        .args([root.path()])
        .start()
        .await;
    let scratch = TempDir::new("persist-restart-src");
    let contents = pattern(70_000);
    let file = scratch.write("r1.conf", &contents);
    put.arg("-sS")
        .arg("-T")
        .arg(&file)
        .arg(first.url("cfg/r1.conf"));
    assert_success(&run(put).await, "curl upload into cfg/r1.conf");
    first.terminate();
    let status = first.exit_status(STOP).await;
    assert!(status.success(), "memtftpd exited with {status} on SIGTERM");

    let second = memtftpd()
        .args(["--root"])
        .args([root.path()])
        .start()
        .await;
    get.arg("-sS").arg(second.url("cfg/r1.conf"));
    let output = run(get).await;
    assert_success(&output, "curl download after the restart");
    assert!(
        output.stdout == contents,
        "the restarted server serves other bytes"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_persist_an_upload_stays_in_memory_and_root_is_untouched() {
    let Some(mut curl) = client("curl") else {
        return;
    };
    let root = TempDir::new("no-persist");
    root.write("pxelinux.0", b"boot");
    let server = memtftpd()
        .args(["--root"])
        .args([root.path()])
        .start()
        .await;
    let scratch = TempDir::new("no-persist-src");
    let contents = pattern(2000);
    let file = scratch.write("r1.conf", &contents);
    curl.arg("-sS")
        .arg("-T")
        .arg(&file)
        .arg(server.url("cfg/r1.conf"));
    assert_success(&run(curl).await, "curl upload into cfg/r1.conf");
    let read = RawClient::local(server.addr)
        .await
        .get("cfg/r1.conf")
        .await
        .unwrap();
    assert_eq!(read, contents, "the upload is served from memory");
    assert_eq!(
        root.files(),
        ["pxelinux.0"],
        "files written without --persist"
    );
}
