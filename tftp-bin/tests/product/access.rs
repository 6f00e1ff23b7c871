//! Who is served: `--deny` and `--allow`. A refused peer gets no answer at all.

use std::time::Duration;

use crate::support::{RawClient, TempDir, memtftpd, pattern};

/// Long enough that any answer would have come (the server replies in microseconds).
const SILENCE: Duration = Duration::from_secs(1);

fn boot_root(tag: &str) -> TempDir {
    let dir = TempDir::new(tag);
    dir.write("pxelinux.0", &pattern(1500));
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_denied_address_gets_no_answer_while_others_are_served() {
    let dir = boot_root("deny");
    let server = memtftpd()
        .args(["--deny", "127.0.0.2/32", "--root"])
        .args([dir.path()])
        .start()
        .await;
    let served = RawClient::bind("127.0.0.1", server.addr).await;
    assert_eq!(served.get("pxelinux.0").await.unwrap(), pattern(1500));
    let denied = RawClient::bind("127.0.0.2", server.addr).await;
    denied.rrq("pxelinux.0", &[]).await;
    denied.expect_silence(SILENCE).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_allowed_addresses_are_answered() {
    let dir = boot_root("allow");
    let server = memtftpd()
        .args(["--allow", "127.0.0.3/32", "--root"])
        .args([dir.path()])
        .start()
        .await;
    let allowed = RawClient::bind("127.0.0.3", server.addr).await;
    assert_eq!(allowed.get("pxelinux.0").await.unwrap(), pattern(1500));
    let outsider = RawClient::bind("127.0.0.1", server.addr).await;
    outsider.rrq("pxelinux.0", &[]).await;
    outsider.expect_silence(SILENCE).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_denied_address_gets_no_answer_to_an_upload_either() {
    let server = memtftpd().args(["--deny", "127.0.0.2/32"]).start().await;
    let denied = RawClient::bind("127.0.0.2", server.addr).await;
    denied.wrq("sneaky.cfg", &[]).await;
    denied.expect_silence(SILENCE).await;
}
