//! Support code for memtftpd's end-to-end tests (the `e2e` test binary).
//!
//! Everything here runs over real loopback sockets and the real tokio clock: [`TestServer`]
//! starts the product server (a [`udp_server::Server`] with a [`TftpHandler`] over a
//! [`MemoryStore`]) on `127.0.0.1:0`; [`run_client`] runs an installed TFTP client (tftp-hpa,
//! atftp, curl, busybox) with a timeout, and [`require`] decides what a missing client means;
//! [`pattern`] and [`netascii_text`] make deterministic file contents; [`ScratchDir`] is a
//! per-test directory for the clients' local files. [`RawClient`] is a deliberately small TFTP
//! client for what real clients cannot express (stray packets, exact timing, many sockets):
//! it is test equipment, not the product's client, and it does not try to be robust against
//! anything a loopback interface does not do.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use tftp_handler::packet::{Request, TftpOption};
use tftp_handler::{Config, ErrorCode, MemoryStore, Mode, Packet, TftpHandler};
use tokio::io::AsyncWriteExt;
use tokio::net::UdpSocket;
use tokio::process::Command;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use udp_server::{Server, ServerConfig, Stats};

pub mod hostile;

/// How long an external client may run before the test fails. Generous: the slowest
/// transfer in the suite (33 MiB in lock-step against a debug build) takes a few seconds.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(60);

/// The environment variable that turns a missing client into a skipped test (see
/// [`require`]).
pub const SKIP_MISSING_CLIENTS: &str = "MEMTFTPD_SKIP_MISSING_CLIENTS";

/// The file sizes every client is tried with: empty, one byte short of a block, exactly one
/// block (so the transfer ends with an empty DATA), one byte over, and 1 MiB.
pub const EDGE_SIZES: [usize; 5] = [0, 511, 512, 513, 1 << 20];

/// A memtftpd server running on a tokio task, bound to an ephemeral loopback port.
///
/// Dropping it cancels the server without waiting; call [`TestServer::shutdown`] at the end
/// of a test to also check that the server stops cleanly.
#[derive(Debug)]
pub struct TestServer {
    /// Where the server listens.
    addr: SocketAddr,
    /// A handle to the server's store (clones share the files), to preload and inspect.
    store: MemoryStore,
    /// The server's live counters.
    stats: Arc<Stats>,
    /// Cancelled to shut the server down.
    shutdown: CancellationToken,
    /// The task running [`Server::run`]; taken by [`TestServer::shutdown`].
    task: Option<JoinHandle<io::Result<()>>>,
}

impl TestServer {
    /// Starts a server over `store` on `127.0.0.1:0`. Must be called inside a tokio runtime.
    pub fn start(store: MemoryStore, config: Config, server_config: ServerConfig) -> Self {
        let socket =
            udp_server::bind(SocketAddr::from(([127, 0, 0, 1], 0))).expect("bind 127.0.0.1:0");
        let addr = socket
            .local_addr()
            .expect("local address of the server socket");
        let server = Server::new(TftpHandler::new(store.clone(), config), server_config);
        let stats = server.stats();
        let shutdown = CancellationToken::new();
        let token = shutdown.clone();
        let task = tokio::spawn(async move { server.run(socket, token).await });
        Self {
            addr,
            store,
            stats,
            shutdown,
            task: Some(task),
        }
    }

    /// A server with an empty store, the default protocol settings and
    /// [`test_server_config`].
    pub fn start_default() -> Self {
        Self::start(
            MemoryStore::default(),
            Config::default(),
            test_server_config(),
        )
    }

    /// A default server (see [`TestServer::start_default`]) with `contents` preloaded as
    /// `name`.
    pub fn with_file(name: &str, contents: impl Into<Bytes>) -> Self {
        let server = Self::start_default();
        server.store.insert(name, contents.into());
        server
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The port the server listens on, as text, for client command lines.
    pub fn port(&self) -> String {
        self.addr.port().to_string()
    }

    /// The server's store: preload with [`MemoryStore::insert`], check uploads with
    /// [`MemoryStore::get`].
    pub fn store(&self) -> &MemoryStore {
        &self.store
    }

    /// The server's counters (read them with [`Stats::snapshot`]).
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Waits until no session is live, polling the counters for up to `limit`; returns
    /// whether that happened in time.
    pub async fn wait_idle(&self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        loop {
            if self.stats.snapshot().sessions_live() == 0 {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Shuts the server down and waits for [`Server::run`] to return, which must be `Ok`.
    pub async fn shutdown(mut self) {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            task.await
                .expect("server task panicked")
                .expect("server ended with an error");
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        // A failing test drops the server without `shutdown`: stop it anyway.
        self.shutdown.cancel();
    }
}

/// The [`ServerConfig`] of [`TestServer::start_default`]: the defaults, with a short grace
/// period so that [`TestServer::shutdown`] does not wait out an upload's dally.
pub fn test_server_config() -> ServerConfig {
    ServerConfig::default()
        .with_shutdown_grace(Duration::from_millis(500))
        .with_cancel_wait(Duration::from_secs(1))
}

/// Whether `program` is installed (found on `PATH`).
///
/// The clients are part of the test environment, and CI installs them: a missing one fails
/// the calling test with a message naming it. With [`SKIP_MISSING_CLIENTS`]`=1` a missing
/// client only prints a notice and this returns `false`, so that the test returns early:
///
/// ```no_run
/// # use memtftpd_tests::require;
/// if !require("atftp") {
///     return;
/// }
/// ```
pub fn require(program: &str) -> bool {
    if find_program(program).is_some() {
        return true;
    }
    if std::env::var_os(SKIP_MISSING_CLIENTS).is_some_and(|v| v == "1") {
        eprintln!("notice: `{program}` is not installed; skipping ({SKIP_MISSING_CLIENTS}=1)");
        return false;
    }
    panic!(
        "the TFTP client `{program}` is not installed (not found on PATH). The end-to-end tests \
         need tftp-hpa (`tftp`), `atftp`, `curl` and `busybox`; install them, or set \
         {SKIP_MISSING_CLIENTS}=1 to skip the tests whose client is missing."
    );
}

/// The path of `program` on `PATH`, if it is there.
fn find_program(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

/// Runs `program` with `args` in `cwd`, stdin closed, and returns what it did. Fails the test
/// if it cannot be started or runs longer than [`CLIENT_TIMEOUT`] (then it is killed).
pub async fn run_client(program: &str, args: &[&str], cwd: &Path) -> Output {
    run(program, args, cwd, None).await
}

/// Like [`run_client`], with `input` written to the program's stdin (then closed): for
/// clients driven by interactive commands.
pub async fn run_client_with_input(
    program: &str,
    args: &[&str],
    cwd: &Path,
    input: &str,
) -> Output {
    run(program, args, cwd, Some(input)).await
}

/// Runs a client for [`run_client`] and [`run_client_with_input`].
async fn run(program: &str, args: &[&str], cwd: &Path, input: Option<&str>) -> Output {
    let mut command = Command::new(program);
    command
        .args(args)
        .current_dir(cwd)
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = command
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start `{program}`: {e}"));
    if let Some(input) = input {
        let mut stdin = child.stdin.take().expect("piped stdin");
        stdin
            .write_all(input.as_bytes())
            .await
            .unwrap_or_else(|e| panic!("cannot write to `{program}`'s stdin: {e}"));
        // Dropping stdin closes it: the client sees end of input after the commands.
    }
    match tokio::time::timeout(CLIENT_TIMEOUT, child.wait_with_output()).await {
        Ok(Ok(output)) => output,
        Ok(Err(e)) => panic!("waiting for `{program}` failed: {e}"),
        // The child went down with the dropped future (kill_on_drop).
        Err(_) => panic!(
            "`{program} {}` did not finish within {CLIENT_TIMEOUT:?}; killed",
            args.join(" ")
        ),
    }
}

/// Fails the test unless a client run looks successful: exit status 0, and nothing that reads
/// like an error in its output. The text check matters because some clients (tftp-hpa 5.2)
/// exit with 0 after an ERROR from the server, and a failed download of an empty file would
/// otherwise pass the content comparison.
pub fn assert_client_ok(output: &Output, what: &str) {
    let text = OutputText(output).to_string().to_ascii_lowercase();
    assert!(
        output.status.success() && !text.contains("error") && !text.contains("timed out"),
        "{what} failed: {}",
        OutputText(output)
    );
}

/// A client's exit status and output, for assertion messages.
#[derive(Debug, Clone, Copy)]
pub struct OutputText<'a>(pub &'a Output);

impl fmt::Display for OutputText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}; stdout: {:?}; stderr: {:?}",
            self.0.status,
            String::from_utf8_lossy(&self.0.stdout),
            String::from_utf8_lossy(&self.0.stderr)
        )
    }
}

/// Compares `actual` with `expected` and, if they differ, fails with the lengths and the
/// first differing offset instead of dumping megabytes.
pub fn assert_same_bytes(actual: &[u8], expected: &[u8], what: &str) {
    if actual == expected {
        return;
    }
    let first_difference = actual
        .iter()
        .zip(expected)
        .position(|(a, e)| a != e)
        .unwrap_or(actual.len().min(expected.len()));
    panic!(
        "{what}: contents differ: {} bytes, expected {}; first difference at offset {}",
        actual.len(),
        expected.len(),
        first_difference
    );
}

/// `len` pseudo-random bytes, the same for the same `seed` (splitmix64), so that failures
/// reproduce and different files never share contents by accident.
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        out.extend_from_slice(&splitmix64(&mut state).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// The splitmix64 step: advances `state` and returns the next output.
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// About `len` bytes of text whose lines end in LF, CR LF or a bare CR at random (the same for
/// the same `seed`), with the occasional CR CR LF; for netascii round trips.
pub fn netascii_text(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed;
    let mut out = Vec::with_capacity(len + 3);
    while out.len() < len {
        let r = splitmix64(&mut state);
        match r % 16 {
            0..=1 => out.push(b'\n'),
            2 => out.extend_from_slice(b"\r\n"),
            3 => out.push(b'\r'),
            4 if r % 64 == 4 => out.extend_from_slice(b"\r\r\n"),
            _ => out.push(b'a' + (r >> 8) as u8 % 26),
        }
    }
    out.truncate(len);
    out
}

/// Named texts for netascii round trips: a long mixed one, a short one with every line
/// ending, and a family where a CR falls on the last byte of a 512-byte block once encoded
/// (`'x'` × 509..=511, then LF, CR LF, bare CR, CR CR LF or a final CR), so that its LF or NUL
/// opens the next block.
pub fn netascii_samples() -> Vec<(String, Vec<u8>)> {
    let mut samples = vec![
        ("mixed".to_owned(), netascii_text(5_000, 7)),
        (
            "endings".to_owned(),
            b"unix\ndos\r\nmac\rnul-free\n\r\n\r\rlast".to_vec(),
        ),
    ];
    let tails: [(&str, &[u8]); 5] = [
        ("lf", b"\nnext\n"),
        ("crlf", b"\r\nnext\n"),
        ("cr", b"\rnext\n"),
        ("crcrlf", b"\r\r\nnext\n"),
        ("final-cr", b"\r"),
    ];
    for prefix in 509..=511 {
        for (tail_name, tail) in tails {
            let mut text = vec![b'x'; prefix];
            text.extend_from_slice(tail);
            samples.push((format!("boundary-{prefix}-{tail_name}"), text));
        }
    }
    samples
}

/// A fresh directory under [`std::env::temp_dir`] for one test's local files, removed (with
/// its contents) when dropped.
#[derive(Debug)]
pub struct ScratchDir {
    /// The directory.
    path: PathBuf,
}

impl ScratchDir {
    /// Creates `memtftpd-e2e-<label>-<pid>-<n>-<nanos>` in the temporary directory.
    pub fn new(label: &str) -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let path = std::env::temp_dir().join(format!(
            "memtftpd-e2e-{label}-{}-{}-{nanos}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", path.display()));
        Self { path }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The path of `name` inside the directory.
    pub fn join(&self, name: impl AsRef<Path>) -> PathBuf {
        self.path.join(name)
    }

    /// Writes `contents` to `name` inside the directory.
    pub fn write(&self, name: &str, contents: &[u8]) {
        let path = self.join(name);
        std::fs::write(&path, contents)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    }

    /// Reads `name` from the directory.
    pub fn read(&self, name: &str) -> Vec<u8> {
        let path = self.join(name);
        std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// A packet from the server, decoded and owned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// DATA.
    Data {
        /// The block number.
        block: u16,
        /// The payload.
        data: Bytes,
    },
    /// ACK.
    Ack {
        /// The block number acknowledged.
        block: u16,
    },
    /// OACK, with its options as sent.
    Oack {
        /// Name/value pairs, in the order sent.
        options: Vec<(String, String)>,
    },
    /// ERROR.
    Error {
        /// The error code.
        code: ErrorCode,
        /// The message.
        message: String,
    },
}

impl Reply {
    /// Decodes a datagram from the server; anything but DATA, ACK, OACK or ERROR fails the
    /// test (a server never sends requests or malformed packets).
    fn decode(datagram: Bytes) -> Self {
        match Self::try_decode(&datagram) {
            Ok(reply) => reply,
            Err(Some(request)) => panic!("the server sent a request: {request}"),
            Err(None) => panic!("the server sent a malformed packet: {datagram:?}"),
        }
    }

    /// Decodes `datagram` if it is a DATA, ACK, OACK or ERROR; otherwise `Err(Some(what))`
    /// for a request, `Err(None)` for bytes that are no TFTP packet.
    pub fn try_decode(datagram: &Bytes) -> Result<Self, Option<String>> {
        match Packet::decode(datagram) {
            Ok(Packet::Data { block, data }) => Ok(Self::Data {
                block,
                data: datagram.slice_ref(data),
            }),
            Ok(Packet::Ack { block }) => Ok(Self::Ack { block }),
            Ok(Packet::Oack { options }) => Ok(Self::Oack {
                options: options
                    .iter()
                    .map(|o| (o.name.to_owned(), o.value.to_owned()))
                    .collect(),
            }),
            Ok(Packet::Error { code, message }) => Ok(Self::Error {
                code,
                message: message.to_owned(),
            }),
            Ok(request) => Err(Some(format!("{request:?}"))),
            Err(_) => Err(None),
        }
    }

    /// The option `name` of an OACK, compared case-insensitively.
    pub fn option(&self, name: &str) -> Option<&str> {
        match self {
            Self::Oack { options } => options
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str()),
            _ => None,
        }
    }
}

/// Why a [`RawClient`] transfer failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransferError {
    /// The server sent an ERROR.
    Server {
        /// The error code.
        code: ErrorCode,
        /// The message.
        message: String,
    },
    /// The server went quiet for [`RawClient::MAX_RETRIES`] timeouts in a row.
    TimedOut,
    /// The server sent something that does not fit the transfer.
    Unexpected(Reply),
}

/// A minimal TFTP client over one tokio UDP socket, for protocol-level checks.
///
/// Requests go to the server's listening address; everything after the first reply goes to
/// the address that reply came from (RFC 1350: the server's transfer ID). [`RawClient::read`]
/// supports `blksize` and `windowsize` (RFC 7440: ACK the last block of each window, re-ACK
/// the last in-order block on a gap); [`RawClient::write`] is lock-step only.
#[derive(Debug)]
pub struct RawClient {
    /// The client's socket: one socket is one peer (address and port) to the server.
    socket: UdpSocket,
    /// The server's listening address, where requests go.
    server: SocketAddr,
    /// Where the server's replies come from, once one has arrived.
    peer: Option<SocketAddr>,
    /// Scratch space for receiving.
    buf: Vec<u8>,
}

impl RawClient {
    /// How long to wait for a packet before resending our last one.
    pub const RETRY_TIMEOUT: Duration = Duration::from_secs(1);

    /// Timeouts in a row after which a transfer fails.
    pub const MAX_RETRIES: u32 = 5;

    /// A client on a fresh `127.0.0.1` port, talking to the server at `server`.
    pub async fn bind(server: SocketAddr) -> Self {
        let socket = UdpSocket::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .expect("bind a client socket");
        Self {
            socket,
            server,
            peer: None,
            buf: vec![0; 65_536],
        }
    }

    /// The client's own address (its transfer ID, as the server sees it).
    pub fn local_addr(&self) -> SocketAddr {
        self.socket.local_addr().expect("client local address")
    }

    /// Sends `packet` to the server's transfer address (the listening address until the
    /// server has replied).
    pub async fn send(&self, packet: &Packet<'_>) {
        self.send_bytes(&packet.to_bytes()).await;
    }

    /// Sends an encoded packet, as [`RawClient::send`] does.
    async fn send_bytes(&self, datagram: &[u8]) {
        let to = self.peer.unwrap_or(self.server);
        self.socket
            .send_to(datagram, to)
            .await
            .expect("send to the server");
    }

    /// Sends a read request for `name`; `options` are name/value pairs.
    pub async fn send_rrq(&mut self, name: &str, mode: Mode, options: &[(&str, &str)]) {
        let request = request(name, mode, options);
        self.send_request(&Packet::Rrq(request)).await;
    }

    /// Sends a write request for `name`; `options` are name/value pairs.
    pub async fn send_wrq(&mut self, name: &str, mode: Mode, options: &[(&str, &str)]) {
        let request = request(name, mode, options);
        self.send_request(&Packet::Wrq(request)).await;
    }

    /// Sends a request to the listening address; the next reply's source becomes the peer.
    async fn send_request(&mut self, packet: &Packet<'_>) {
        self.peer = None;
        self.send(packet).await;
    }

    /// Sends ACK `block`.
    pub async fn send_ack(&self, block: u16) {
        self.send(&Packet::Ack { block }).await;
    }

    /// The next packet from the server, or `None` if none arrives within `wait`. Packets
    /// from other addresses than the transfer's peer are ignored.
    pub async fn recv_within(&mut self, wait: Duration) -> Option<Reply> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let received =
                tokio::time::timeout_at(deadline, self.socket.recv_from(&mut self.buf)).await;
            let (len, from) = match received {
                Err(_elapsed) => return None,
                Ok(result) => result.expect("receive from the server"),
            };
            match self.peer {
                None if from.ip() == self.server.ip() => self.peer = Some(from),
                Some(peer) if peer == from => {}
                _ => continue,
            }
            return Some(Reply::decode(Bytes::copy_from_slice(&self.buf[..len])));
        }
    }

    /// The next packet from the server; fails the test if none arrives within
    /// [`RawClient::RETRY_TIMEOUT`] times [`RawClient::MAX_RETRIES`].
    pub async fn recv(&mut self) -> Reply {
        let wait = Self::RETRY_TIMEOUT * Self::MAX_RETRIES;
        self.recv_within(wait)
            .await
            .unwrap_or_else(|| panic!("no packet from the server within {wait:?}"))
    }

    /// Downloads `name`: sends the request, then receives and acknowledges until the last
    /// (short) block. Honours `blksize` and `windowsize` from the server's OACK.
    pub async fn read(
        &mut self,
        name: &str,
        mode: Mode,
        options: &[(&str, &str)],
    ) -> Result<Vec<u8>, TransferError> {
        let rrq = Packet::Rrq(request(name, mode, options)).to_bytes();
        self.peer = None;
        self.send_bytes(&rrq).await;
        let mut last_sent = rrq;
        let mut block_size = usize::from(tftp_handler::DEFAULT_BLOCK_SIZE);
        let mut window = 1_u32;
        let mut expected = 1_u16;
        let mut in_window = 0_u32;
        let mut started = false;
        let mut gap_acked = false;
        let mut retries = 0;
        let mut out = Vec::new();
        loop {
            let Some(reply) = self.recv_within(Self::RETRY_TIMEOUT).await else {
                retries += 1;
                if retries > Self::MAX_RETRIES {
                    return Err(TransferError::TimedOut);
                }
                self.send_bytes(&last_sent).await;
                continue;
            };
            retries = 0;
            match reply {
                Reply::Oack { .. } if !started => {
                    started = true;
                    if let Some(size) = reply.option("blksize") {
                        block_size = size.parse().expect("numeric blksize in OACK");
                    }
                    if let Some(size) = reply.option("windowsize") {
                        window = size.parse().expect("numeric windowsize in OACK");
                    }
                    last_sent = ack_bytes(0);
                    self.send_bytes(&last_sent).await;
                }
                Reply::Data { block, data } if block == expected => {
                    started = true;
                    gap_acked = false;
                    out.extend_from_slice(&data);
                    in_window += 1;
                    let last = data.len() < block_size;
                    if last || in_window == window {
                        in_window = 0;
                        last_sent = ack_bytes(block);
                        self.send_bytes(&last_sent).await;
                    }
                    if last {
                        return Ok(out);
                    }
                    expected = expected.wrapping_add(1);
                }
                Reply::Data { block, .. } if started && is_ahead(block, expected) => {
                    // A block went missing: ask for the window again from the gap (RFC 7440
                    // section 4), once per gap.
                    if !gap_acked {
                        gap_acked = true;
                        in_window = 0;
                        last_sent = ack_bytes(expected.wrapping_sub(1));
                        self.send_bytes(&last_sent).await;
                    }
                }
                Reply::Data { .. } if started => {} // an old block again: already have it
                Reply::Error { code, message } => {
                    return Err(TransferError::Server { code, message });
                }
                other => return Err(TransferError::Unexpected(other)),
            }
        }
    }

    /// Uploads `contents` as `name` in octet mode, lock-step. Honours `blksize` from the
    /// server's OACK; `options` must not ask for a window (this client sends one block at a
    /// time).
    pub async fn write(
        &mut self,
        name: &str,
        contents: &[u8],
        options: &[(&str, &str)],
    ) -> Result<(), TransferError> {
        assert!(
            !options
                .iter()
                .any(|(n, _)| n.eq_ignore_ascii_case("windowsize")),
            "RawClient::write is lock-step only"
        );
        let wrq = Packet::Wrq(request(name, Mode::Octet, options)).to_bytes();
        self.peer = None;
        self.send_bytes(&wrq).await;
        let reply = self.await_ack(0, &wrq).await?;
        let block_size = match reply.option("blksize") {
            Some(size) => size.parse().expect("numeric blksize in OACK"),
            None => usize::from(tftp_handler::DEFAULT_BLOCK_SIZE),
        };
        // A file that fills its last block exactly ends with an empty one (RFC 1350).
        let blocks = contents.len() / block_size + 1;
        for index in 0..blocks {
            let block = (index + 1) as u16; // wraps from 65535 to 0 on purpose
            let start = index * block_size;
            let end = (start + block_size).min(contents.len());
            let data = Packet::Data {
                block,
                data: &contents[start..end],
            }
            .to_bytes();
            self.send_bytes(&data).await;
            self.await_ack(block, &data).await?;
        }
        Ok(())
    }

    /// Waits for ACK `block` (or, for block 0, an OACK), resending `last_sent` on timeouts.
    /// Stale ACKs of earlier blocks are skipped.
    async fn await_ack(&mut self, block: u16, last_sent: &[u8]) -> Result<Reply, TransferError> {
        let mut retries = 0;
        loop {
            match self.recv_within(Self::RETRY_TIMEOUT).await {
                None => {
                    retries += 1;
                    if retries > Self::MAX_RETRIES {
                        return Err(TransferError::TimedOut);
                    }
                    self.send_bytes(last_sent).await;
                }
                Some(Reply::Ack { block: acked }) if acked == block => {
                    return Ok(Reply::Ack { block });
                }
                Some(reply @ Reply::Oack { .. }) if block == 0 => return Ok(reply),
                Some(Reply::Ack { block: acked }) if is_ahead(block, acked) => {}
                Some(Reply::Error { code, message }) => {
                    return Err(TransferError::Server { code, message });
                }
                Some(other) => return Err(TransferError::Unexpected(other)),
            }
        }
    }
}

/// A request body with `options` as name/value pairs.
fn request<'a>(name: &'a str, mode: Mode, options: &[(&'a str, &'a str)]) -> Request<'a> {
    Request {
        filename: name,
        mode,
        options: options
            .iter()
            .map(|&(name, value)| TftpOption { name, value })
            .collect(),
    }
}

/// The wire form of ACK `block`.
fn ack_bytes(block: u16) -> Bytes {
    let mut buf = BytesMut::new();
    Packet::Ack { block }.encode(&mut buf);
    buf.freeze()
}

/// Whether block `a` comes after block `b` in a wrapping sequence (within half the range).
fn is_ahead(a: u16, b: u16) -> bool {
    let distance = a.wrapping_sub(b);
    distance != 0 && distance < 0x8000
}

/// Runs `f` and returns its result with how long it took (for timing assertions and for
/// reporting slow steps).
pub async fn timed<T>(f: impl Future<Output = T>) -> (T, Duration) {
    let started = Instant::now();
    let value = f.await;
    (value, started.elapsed())
}

/// Builds a client's command line for one transfer from the remote and the local file name.
pub type CommandLine<'a> = &'a dyn Fn(&str, &str) -> Vec<String>;

/// For each size in `sizes`: preloads a [`pattern`] file of that size, downloads it with
/// `program` (arguments from `args(remote, local)`, run in `dir`) and checks the local copy
/// byte for byte. `label` names the client and options in failure messages.
pub async fn check_downloads(
    server: &TestServer,
    dir: &ScratchDir,
    label: &str,
    program: &str,
    sizes: &[usize],
    args: CommandLine<'_>,
) {
    for (index, &size) in sizes.iter().enumerate() {
        let remote = format!("get-{index}-{size}.bin");
        let local = format!("got-{index}-{size}.bin");
        let contents = pattern(size, 0x6e7 + index as u64);
        server
            .store()
            .insert(remote.clone(), Bytes::from(contents.clone()));
        let args = args(&remote, &local);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let output = run_client(program, &args, dir.path()).await;
        let what = format!("{label}: download of {size} bytes");
        assert_client_ok(&output, &what);
        assert_same_bytes(&dir.read(&local), &contents, &what);
    }
}

/// For each size in `sizes`: writes a [`pattern`] file of that size in `dir`, uploads it with
/// `program` (arguments from `args(remote, local)`) and checks what the server stored byte
/// for byte.
pub async fn check_uploads(
    server: &TestServer,
    dir: &ScratchDir,
    label: &str,
    program: &str,
    sizes: &[usize],
    args: CommandLine<'_>,
) {
    for (index, &size) in sizes.iter().enumerate() {
        let remote = format!("put-{index}-{size}.bin");
        let local = format!("local-{index}-{size}.bin");
        let contents = pattern(size, 0x9e7 + index as u64);
        dir.write(&local, &contents);
        let args = args(&remote, &local);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let output = run_client(program, &args, dir.path()).await;
        let what = format!("{label}: upload of {size} bytes");
        assert_client_ok(&output, &what);
        let stored = server
            .store()
            .get(&remote)
            .unwrap_or_else(|| panic!("{what}: `{remote}` is not in the store"));
        assert_same_bytes(&stored, &contents, &what);
    }
}

/// Owned strings from string slices, for building [`CommandLine`]s.
pub fn strings<const N: usize>(parts: [&str; N]) -> Vec<String> {
    parts.into_iter().map(str::to_owned).collect()
}

/// The environment variable that runs the load tests at full size (see [`full_size`]).
pub const FULL_SIZE: &str = "MEMTFTPD_FULL_SIZE";

/// Whether load tests run at the size their published figures are quoted for
/// ([`FULL_SIZE`]`=1`), rather than at the smaller size that keeps `cargo test` to a few
/// seconds on a 2-core machine. Each test chooses its two sizes; this only reads the switch.
pub fn full_size() -> bool {
    std::env::var_os(FULL_SIZE).is_some_and(|v| v == "1")
}
