//! Many transfers at once: a hundred raw-client downloads in parallel, a thousand client
//! downloads, curl uploads racing curl downloads of the same file name (a reader must see one
//! whole version, never a mix), and a busy answer at once over the session cap.

use std::time::Duration;

use bytes::Bytes;
use memtftpd_tests::{
    OutputText, RawClient, ScratchDir, TestServer, assert_same_bytes, pattern, require, run_client,
};
use tftp_handler::Mode;
use tokio::task::JoinSet;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_concurrent_downloads_are_byte_exact() {
    const CLIENTS: usize = 100;
    const FILES: usize = 10;
    let server = TestServer::start_default();
    let files: Vec<Bytes> = (0..FILES)
        .map(|i| Bytes::from(pattern(50_000 + i * 7_919, 100 + i as u64)))
        .collect();
    for (i, contents) in files.iter().enumerate() {
        server.store().insert(format!("f{i}.bin"), contents.clone());
    }
    // Lock-step and windowed transfers mixed, at several block sizes.
    let option_sets: [&[(&str, &str)]; 4] = [
        &[],
        &[("blksize", "1024")],
        &[("blksize", "1428"), ("windowsize", "8")],
        &[("tsize", "0"), ("windowsize", "4")],
    ];
    let mut downloads = JoinSet::new();
    for client in 0..CLIENTS {
        let addr = server.addr();
        let file = client % FILES;
        let options = option_sets[client % option_sets.len()];
        downloads.spawn(async move {
            let mut raw = RawClient::bind(addr).await;
            let name = format!("f{file}.bin");
            (client, file, raw.read(&name, Mode::Octet, options).await)
        });
    }
    let mut done = 0;
    while let Some(joined) = downloads.join_next().await {
        let (client, file, result) = joined.unwrap();
        let downloaded = result.unwrap_or_else(|e| panic!("client {client} failed: {e:?}"));
        assert_same_bytes(&downloaded, &files[file], &format!("client {client}"));
        done += 1;
    }
    assert_eq!(done, CLIENTS);
    assert!(server.wait_idle(Duration::from_secs(3)).await);
    let stats = server.stats().snapshot();
    assert_eq!(stats.sessions_opened, CLIENTS as u64, "{stats:?}");
    assert_eq!(stats.refused_session_limit, 0, "{stats:?}");
    server.shutdown().await;
}

/// One of the racing transfers, as run by curl.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Race {
    /// Uploads v2.
    Upload,
    /// Downloads whatever is there.
    Download,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_uploads_and_downloads_of_one_name_never_mix_versions() {
    const EACH: usize = 20;
    const SIZE: usize = 256 << 10;
    if !require("curl") {
        return;
    }
    let v1 = pattern(SIZE, 1);
    let v2 = pattern(SIZE, 2);
    let server = TestServer::with_file("shared.bin", v1.clone());
    let dir = ScratchDir::new("load-race");
    dir.write("v2.bin", &v2);
    let url = format!("tftp://127.0.0.1:{}/shared.bin", server.port());

    let mut races = JoinSet::new();
    for i in 0..EACH {
        for race in [Race::Upload, Race::Download] {
            let url = url.clone();
            let cwd = dir.path().to_owned();
            // Staggered starts, so that transfers overlap in every phase of each other.
            let delay = Duration::from_millis(15 * i as u64 + (race == Race::Download) as u64 * 7);
            races.spawn(async move {
                tokio::time::sleep(delay).await;
                let local = format!("down-{i}.bin");
                let args: Vec<&str> = match race {
                    Race::Upload => vec!["-sS", "-T", "v2.bin", &url],
                    Race::Download => vec!["-sS", "--fail", &url, "-o", &local],
                };
                (race, i, run_client("curl", &args, &cwd).await)
            });
        }
    }
    let (mut uploaded, mut refused, mut saw_v1, mut saw_v2) = (0, 0, 0, 0);
    while let Some(joined) = races.join_next().await {
        let (race, i, output) = joined.unwrap();
        match race {
            // Exit code 69 is curl's "TFTP: access violation": the name was being written
            // by another upload (one writer per name), which is expected here.
            Race::Upload if output.status.success() => uploaded += 1,
            Race::Upload if output.status.code() == Some(69) => refused += 1,
            Race::Upload => panic!("upload {i} failed: {}", OutputText(&output)),
            Race::Download => {
                assert!(
                    output.status.success(),
                    "download {i} failed: {}",
                    OutputText(&output)
                );
                let got = dir.read(&format!("down-{i}.bin"));
                if got == v1 {
                    saw_v1 += 1;
                } else if got == v2 {
                    saw_v2 += 1;
                } else {
                    assert_same_bytes(&got, &v2, &format!("download {i} is neither v1 nor v2"));
                }
            }
        }
    }
    eprintln!(
        "race: {uploaded} uploads stored, {refused} refused; downloads saw v1 {saw_v1}, v2 {saw_v2}"
    );
    assert!(uploaded >= 1, "no upload got through ({refused} refused)");
    assert_eq!(saw_v1 + saw_v2, EACH);
    let stored = server
        .store()
        .get("shared.bin")
        .expect("the file is stored");
    assert_same_bytes(&stored, &v2, "final stored file");
    server.shutdown().await;
}

/// A thousand clients at once, each on its own socket, each checking every byte: the load a
/// rack of machines netbooting together puts on the server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_downloads_are_byte_exact() {
    let contents = Bytes::from(pattern(64 * 1024, 7));
    let server = TestServer::with_file("boot.img", contents.clone());
    let client = tftp_handler::Client::new({
        let mut config = tftp_handler::ClientConfig::default();
        config.options = tftp_handler::RequestOptions::default().with_block_size(1428);
        config
    });
    let mut downloads = JoinSet::new();
    for _ in 0..1000 {
        let (client, addr) = (client.clone(), server.addr());
        downloads.spawn(async move { client.get(addr, "boot.img").await });
    }
    let mut exact = 0;
    while let Some(result) = downloads.join_next().await {
        let got = result.expect("download task").expect("download");
        assert_same_bytes(&got, &contents, "download");
        exact += 1;
    }
    assert_eq!(exact, 1000);
    assert_eq!(server.stats().snapshot().sessions_opened, 1000);
    server.shutdown().await;
}

/// Over the session cap, a new client is told at once that the server is busy (ERROR 0),
/// instead of waiting out its own timeouts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_the_session_cap_a_new_client_gets_busy_at_once() {
    let store = tftp_handler::MemoryStore::default();
    store.insert("big", Bytes::from(pattern(1 << 20, 3)));
    let server = TestServer::start(
        store,
        tftp_handler::Config::default(),
        memtftpd_tests::test_server_config().with_max_sessions(2),
    );
    // Two readers hold their sessions: they ask and never ACK.
    let mut holders = Vec::new();
    for _ in 0..2 {
        let mut holder = RawClient::bind(server.addr()).await;
        holder.send_rrq("big", Mode::Octet, &[]).await;
        holders.push(holder);
    }
    tokio::time::timeout(Duration::from_secs(2), async {
        while server.stats().snapshot().sessions_live() < 2 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("two sessions open");
    let started = std::time::Instant::now();
    let err = tftp_handler::Client::default()
        .get(server.addr(), "big")
        .await
        .expect_err("the third client is refused");
    assert!(
        matches!(&err, tftp_handler::ClientError::Server { code: tftp_handler::ErrorCode::NotDefined, message } if message.contains("busy")),
        "{err}"
    );
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "refused at once"
    );
    server.shutdown().await;
}
