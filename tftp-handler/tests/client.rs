//! The TFTP client against memtftpd's own handler over loopback sockets, and against a fake
//! server that answers from a new port the way tftpd-hpa and dnsmasq do. Real time throughout
//! (real sockets), with short timeouts where a test waits for one.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use tftp_handler::{
    Client, ClientConfig, ClientError, Config, ErrorCode, MemoryStore, Mode, Packet,
    RequestOptions, TftpHandler,
};
use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;
use udp_server::{Server, ServerConfig};

/// A memtftpd handler on a loopback port; stops when dropped.
struct Running {
    addr: SocketAddr,
    store: MemoryStore,
    shutdown: CancellationToken,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

fn serve(files: &[(&str, Bytes)]) -> Running {
    let store = MemoryStore::default();
    for (name, contents) in files {
        store.insert(*name, contents.clone());
    }
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.set_nonblocking(true).unwrap();
    let socket = UdpSocket::from_std(socket).unwrap();
    let addr = socket.local_addr().unwrap();
    let server = Server::new(
        TftpHandler::new(store.clone(), Config::default()),
        ServerConfig::default().with_shutdown_grace(Duration::ZERO),
    );
    let shutdown = CancellationToken::new();
    let token = shutdown.clone();
    tokio::spawn(async move { server.run(socket, token).await });
    Running {
        addr,
        store,
        shutdown,
    }
}

fn file(len: usize) -> Bytes {
    (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
}

fn client(options: RequestOptions) -> Client {
    let mut config = ClientConfig::default();
    config.options = options;
    Client::new(config)
}

#[tokio::test]
async fn downloads_of_edge_sizes_are_byte_exact() {
    let sizes = [0, 1, 511, 512, 513, 1024, 100_000];
    let files: Vec<(String, Bytes)> = sizes.iter().map(|&n| (format!("f{n}"), file(n))).collect();
    let refs: Vec<(&str, Bytes)> = files.iter().map(|(n, b)| (n.as_str(), b.clone())).collect();
    let server = serve(&refs);
    for (name, contents) in &files {
        let got = Client::default().get(server.addr, name).await.unwrap();
        assert_eq!(&got, contents, "{name}");
    }
}

#[tokio::test]
async fn uploads_are_published_byte_exact() {
    let server = serve(&[]);
    for n in [0, 512, 4097] {
        let name = format!("up{n}");
        Client::default()
            .put(server.addr, &name, file(n))
            .await
            .unwrap();
        assert_eq!(server.store.get(&name).unwrap(), file(n));
    }
}

#[tokio::test]
async fn negotiated_block_and_window_sizes_carry_the_transfer_past_the_block_number_wrap() {
    let contents = file(8 * 70_000 + 5);
    let server = serve(&[("big", contents.clone())]);
    let options = RequestOptions::default()
        .with_block_size(8)
        .with_window_size(16)
        .with_transfer_size();
    let got = client(options).get(server.addr, "big").await.unwrap();
    assert_eq!(got, contents);
    client(options)
        .put(server.addr, "big2", contents.clone())
        .await
        .unwrap();
    assert_eq!(server.store.get("big2").unwrap(), contents);
}

#[tokio::test]
async fn a_download_of_many_full_windows_is_byte_exact() {
    // 16-block windows of 1468-byte blocks reach the client as segmented runs (one coalesced
    // receive each on Linux); the odd length ends the last window early with a short block.
    let contents = file(1468 * 16 * 40 + 1468 * 5 + 333);
    let server = serve(&[("windows", contents.clone())]);
    let options = RequestOptions::default()
        .with_block_size(1468)
        .with_window_size(16);
    let got = client(options).get(server.addr, "windows").await.unwrap();
    assert_eq!(got, contents);
}

#[tokio::test]
async fn netascii_round_trips_restore_the_file() {
    let text = Bytes::from_static(b"line one\nline two\r\nbare cr\rend\r");
    let server = serve(&[]);
    netascii_upload(&server, "t.txt", &text).await;
    assert_eq!(
        server.store.get("t.txt").unwrap(),
        text,
        "stored untranslated"
    );
    assert_eq!(
        netascii_client().get(server.addr, "t.txt").await.unwrap(),
        text
    );
}

#[tokio::test]
async fn a_streamed_download_hands_over_every_block_in_order() {
    let contents = file(512 * 300 + 17);
    let text = Bytes::from_static(b"a\nb\r\nc\rd\r");
    let server = serve(&[("s", contents.clone())]);
    netascii_upload(&server, "t.txt", &text).await;
    let mut got = Vec::new();
    let mut blocks = 0;
    let received = Client::default()
        .get_with(server.addr, "s", |data| {
            got.extend_from_slice(data);
            blocks += 1;
            Ok(())
        })
        .await
        .unwrap();
    assert_eq!(received, contents.len() as u64);
    assert_eq!(got, contents);
    assert_eq!(blocks, 301, "one call per DATA block");
    // In netascii mode the blocks come translated, even where CR LF straddles two blocks.
    let mut translated = Vec::new();
    netascii_client()
        .get_with(server.addr, "t.txt", |data| {
            translated.extend_from_slice(data);
            Ok(())
        })
        .await
        .unwrap();
    assert_eq!(translated, text);
}

#[tokio::test]
async fn a_streamed_download_refused_by_its_consumer_is_abandoned() {
    let server = serve(&[("s", file(512 * 10))]);
    let mut calls = 0;
    let err = Client::default()
        .get_with(server.addr, "s", |_| {
            calls += 1;
            if calls == 3 {
                Err("disk full".into())
            } else {
                Ok(())
            }
        })
        .await
        .unwrap_err();
    match err {
        ClientError::Abandoned(reply) => assert!(reply.to_string().contains("disk full")),
        other => panic!("expected an abandoned transfer, got {other}"),
    }
    assert_eq!(calls, 3, "nothing is handed over after the refusal");
}

/// A client in netascii mode with 8-byte blocks, so that short texts span several blocks.
fn netascii_client() -> Client {
    let mut config = ClientConfig::default();
    config.mode = Mode::Netascii;
    config.options = RequestOptions::default().with_block_size(8);
    Client::new(config)
}

/// Uploads `text` in netascii mode as `name`.
async fn netascii_upload(server: &Running, name: &str, text: &Bytes) {
    netascii_client()
        .put(server.addr, name, text.clone())
        .await
        .unwrap();
}

#[tokio::test]
async fn a_missing_file_is_a_server_error_1() {
    let server = serve(&[]);
    let err = Client::default()
        .get(server.addr, "nope")
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ClientError::Server {
                code: ErrorCode::FileNotFound,
                ..
            }
        ),
        "{err}"
    );
}

#[tokio::test]
async fn a_silent_server_times_out_after_the_retries() {
    let silent = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut config = ClientConfig::default();
    config.retry_timeout = Duration::from_millis(20);
    config.max_retries = 2;
    let started = std::time::Instant::now();
    let err = Client::new(config)
        .get(silent.local_addr().unwrap(), "x")
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::TimedOut), "{err}");
    assert!(started.elapsed() < Duration::from_secs(2));
    let mut buf = [0; 64];
    let mut requests = 0;
    while let Ok(Ok(_)) =
        tokio::time::timeout(Duration::from_millis(50), silent.recv_from(&mut buf)).await
    {
        requests += 1;
    }
    assert_eq!(requests, 3, "the request and two resends");
}

/// A one-file server in the style of tftpd-hpa: the request arrives on one port, and the
/// transfer runs from a fresh one. A stranger sends a DATA from a third port mid-transfer.
#[tokio::test]
async fn the_client_follows_a_server_that_answers_from_a_new_port() {
    let listener = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let server_addr = listener.local_addr().unwrap();
    let contents = file(700);
    let expected = contents.clone();
    let fake = tokio::spawn(async move {
        let mut buf = [0; 1024];
        let (_, client_addr) = listener.recv_from(&mut buf).await.unwrap();
        let transfer = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let stranger = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        for (block, chunk) in [(1u16, &contents[..512]), (2, &contents[512..])] {
            if block == 2 {
                // Mid-transfer, a datagram from another port is refused and changes nothing.
                let evil = Packet::Data {
                    block: 2,
                    data: b"evil",
                };
                stranger
                    .send_to(&evil.to_bytes(), client_addr)
                    .await
                    .unwrap();
                let (n, _) = stranger.recv_from(&mut buf).await.unwrap();
                assert!(matches!(
                    Packet::decode(&buf[..n]).unwrap(),
                    Packet::Error {
                        code: ErrorCode::UnknownTransferId,
                        ..
                    }
                ));
            }
            transfer
                .send_to(&Packet::Data { block, data: chunk }.to_bytes(), client_addr)
                .await
                .unwrap();
            let (n, _) = transfer.recv_from(&mut buf).await.unwrap();
            assert_eq!(Packet::decode(&buf[..n]).unwrap(), Packet::Ack { block });
        }
    });
    let got = Client::default().get(server_addr, "f").await.unwrap();
    assert_eq!(got, expected);
    fake.await.unwrap();
}

#[tokio::test]
async fn an_oack_granting_more_than_asked_is_refused_with_error_8() {
    let listener = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let server_addr = listener.local_addr().unwrap();
    let fake = tokio::spawn(async move {
        let mut buf = [0; 1024];
        let (_, client_addr) = listener.recv_from(&mut buf).await.unwrap();
        let oack = Packet::Oack {
            options: vec![tftp_handler::packet::TftpOption {
                name: "blksize",
                value: "4096",
            }],
        };
        listener
            .send_to(&oack.to_bytes(), client_addr)
            .await
            .unwrap();
        let (n, _) = listener.recv_from(&mut buf).await.unwrap();
        match Packet::decode(&buf[..n]).unwrap() {
            Packet::Error { code, .. } => code,
            other => panic!("expected ERROR 8, got {other:?}"),
        }
    });
    let err = client(RequestOptions::default().with_block_size(1024))
        .get(server_addr, "f")
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::Abandoned(_)), "{err}");
    assert_eq!(fake.await.unwrap(), ErrorCode::OptionRefused);
}
