//! The harness: the `memtftpd` executable as a child process, real clients, and a raw client.
//!
//! [`Launch`] starts the binary on an ephemeral port (`--listen 127.0.0.1:0` unless a test
//! says otherwise), with a hermetic environment (no `MEMTFTPD_*` or `RUST_LOG` leaking in from
//! the shell), JSON logs on a piped stderr, and waits for the `udp server listening` line to
//! learn the bound address. A background task copies stderr into a [`Log`] so the child never
//! blocks on a full pipe and tests can assert on log lines. The child is killed when the
//! [`Memtftpd`] is dropped. [`client`] and [`run`] drive installed TFTP clients; [`RawClient`]
//! speaks the protocol directly (with `tftp_handler::Packet`) for what clients cannot show:
//! exact error codes, silence, stalls. Every wait here is bounded; nothing pauses time.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tftp_handler::packet::{Request, TftpOption};
use tftp_handler::{ErrorCode, Mode, Packet};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::UdpSocket;
use tokio::process::{Child, Command};
use tokio::time::{Instant, sleep, timeout};

/// How long the binary may take to start listening (a debug build preloading a directory).
const STARTUP: Duration = Duration::from_secs(20);
/// How long a client process may run before the test gives up on it.
const CLIENT_RUN: Duration = Duration::from_secs(30);
/// How long the raw client waits for a reply that should come.
pub(crate) const REPLY: Duration = Duration::from_secs(5);
/// The block size of transfers without options (RFC 1350).
const BLOCK: usize = 512;

/// The lines a child process wrote to stderr so far, ANSI colours removed.
#[derive(Debug, Clone, Default)]
pub(crate) struct Log {
    lines: Arc<Mutex<Vec<String>>>,
}

impl Log {
    /// Copies `stderr` line by line into a new log, in a background task.
    fn follow(stderr: tokio::process::ChildStderr) -> Self {
        let log = Self::default();
        let lines = Arc::clone(&log.lines);
        tokio::spawn(async move {
            let mut reader = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                lines
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(strip_ansi(&line));
            }
        });
        log
    }

    /// Everything logged so far, one line per line.
    pub(crate) fn text(&self) -> String {
        self.lines
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .join("\n")
    }

    /// The first line that satisfies `wanted`, waiting up to `within` for it to be written.
    pub(crate) async fn wait_for(
        &self,
        within: Duration,
        wanted: impl Fn(&str) -> bool,
    ) -> Option<String> {
        let deadline = Instant::now() + within;
        loop {
            let found = self
                .lines
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .find(|line| wanted(line))
                .cloned();
            if found.is_some() || Instant::now() >= deadline {
                return found;
            }
            sleep(Duration::from_millis(20)).await;
        }
    }
}

/// `text` without ANSI escape sequences (the text log format colours its output).
pub(crate) fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI: ESC [ parameters, then one final byte in @..=~.
            if chars.next() == Some('[') {
                for c in chars.by_ref() {
                    if ('@'..='~').contains(&c) {
                        break;
                    }
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The address in a `udp server listening` line, in the JSON or the text format.
fn listening_addr(line: &str) -> Option<SocketAddr> {
    if !line.contains("udp server listening") {
        return None;
    }
    let value = if let Some((_, rest)) = line.split_once("\"local\":\"") {
        rest.split('"').next()?
    } else {
        let (_, rest) = line.split_once("local=")?;
        rest.split_whitespace().next()?
    };
    value.parse().ok()
}

/// How to start `memtftpd`: the flags and environment a test adds.
#[derive(Debug, Clone)]
pub(crate) struct Launch {
    listen: String,
    log_format: &'static str,
    args: Vec<OsString>,
    envs: Vec<(String, String)>,
}

/// A `memtftpd` to be started on `127.0.0.1:0` with JSON logs at level `info`.
pub(crate) fn memtftpd() -> Launch {
    Launch {
        listen: "127.0.0.1:0".to_owned(),
        log_format: "json",
        args: Vec::new(),
        envs: Vec::new(),
    }
}

impl Launch {
    /// Adds command-line arguments.
    pub(crate) fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Sets an environment variable for the server.
    pub(crate) fn env(mut self, key: &str, value: &str) -> Self {
        self.envs.push((key.to_owned(), value.to_owned()));
        self
    }

    /// Listens on `addr` instead of `127.0.0.1:0`.
    pub(crate) fn listen(mut self, addr: &str) -> Self {
        addr.clone_into(&mut self.listen);
        self
    }

    /// Logs in the human-readable format instead of JSON.
    pub(crate) fn text_logs(mut self) -> Self {
        self.log_format = "text";
        self
    }

    /// The command, with a hermetic environment, not yet started.
    pub(crate) fn command(&self) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_memtftpd"));
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("MEMTFTPD_") || key == "RUST_LOG" {
                command.env_remove(key);
            }
        }
        command
            .args(["--listen", &self.listen])
            .args(["--log-level", "info", "--log-format", self.log_format])
            .args(&self.args)
            .envs(self.envs.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        command
    }

    /// Starts the server and waits until it listens; panics with its log if it does not.
    pub(crate) async fn start(self) -> Memtftpd {
        let mut child = self.command().spawn().expect("cannot start memtftpd");
        let log = Log::follow(child.stderr.take().expect("stderr is piped"));
        let deadline = Instant::now() + STARTUP;
        loop {
            if let Some(addr) = log
                .wait_for(Duration::ZERO, |line| listening_addr(line).is_some())
                .await
                .as_deref()
                .and_then(listening_addr)
            {
                return Memtftpd { child, addr, log };
            }
            if let Ok(Some(status)) = child.try_wait() {
                // Give the reader a moment to collect the last lines.
                sleep(Duration::from_millis(100)).await;
                panic!(
                    "memtftpd exited ({status}) before listening:\n{}",
                    log.text()
                );
            }
            assert!(
                Instant::now() < deadline,
                "memtftpd did not listen within {STARTUP:?}:\n{}",
                log.text()
            );
            sleep(Duration::from_millis(20)).await;
        }
    }
}

/// A running `memtftpd` child process, killed on drop.
#[derive(Debug)]
pub(crate) struct Memtftpd {
    child: Child,
    /// The address the server reported listening on.
    pub(crate) addr: SocketAddr,
    log: Log,
}

impl Memtftpd {
    /// What the server logged so far (and keeps logging).
    pub(crate) fn log(&self) -> &Log {
        &self.log
    }

    /// `tftp://ADDR/name`, the URL curl takes.
    pub(crate) fn url(&self, name: &str) -> String {
        format!("tftp://{}/{name}", self.addr)
    }

    /// Sends SIGTERM, as `kill` or systemd would.
    pub(crate) fn terminate(&self) {
        self.signal("TERM");
    }

    /// Sends the signal `name` (`TERM`, `INT`) with `kill`.
    pub(crate) fn signal(&self, name: &str) {
        let pid = self.child.id().expect("memtftpd is still running");
        let status = std::process::Command::new("kill")
            .arg(format!("-{name}"))
            .arg(pid.to_string())
            .status()
            .expect("cannot run kill");
        assert!(status.success(), "kill -{name} {pid} failed");
    }

    /// Sends SIGTERM and waits until the server says it is draining.
    pub(crate) async fn terminate_and_wait_for_drain(&self) {
        self.terminate();
        self.log
            .wait_for(REPLY, |l| l.contains("signal received"))
            .await
            .unwrap_or_else(|| panic!("no shutdown logged after SIGTERM:\n{}", self.log.text()));
    }

    /// Whether the process has exited already.
    pub(crate) fn has_exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    /// Waits up to `within` for the process to exit; panics with its log if it does not.
    pub(crate) async fn exit_status(&mut self, within: Duration) -> ExitStatus {
        match timeout(within, self.child.wait()).await {
            Ok(status) => status.expect("cannot wait for memtftpd"),
            Err(_) => panic!(
                "memtftpd still running {within:?} later:\n{}",
                self.log.text()
            ),
        }
    }
}

/// A scratch directory, removed on drop.
#[derive(Debug)]
pub(crate) struct TempDir {
    path: PathBuf,
}

impl TempDir {
    /// A new empty directory named after `tag`, unique to this process and call.
    pub(crate) fn new(tag: &str) -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "memtftpd-e2e-{tag}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("cannot create a scratch directory");
        Self { path }
    }

    /// The directory.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Writes `contents` to `name` (a relative path) inside the directory; returns its path.
    pub(crate) fn write(&self, name: &str, contents: &[u8]) -> PathBuf {
        let path = self.path.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("cannot create a directory");
        }
        std::fs::write(&path, contents).expect("cannot write a scratch file");
        path
    }

    /// Every file below the directory, as sorted relative paths with `/`.
    pub(crate) fn files(&self) -> Vec<String> {
        let mut found = Vec::new();
        let mut pending = vec![self.path.clone()];
        while let Some(dir) = pending.pop() {
            for entry in std::fs::read_dir(&dir).expect("cannot list a scratch directory") {
                let path = entry.expect("cannot list a scratch directory").path();
                if path.is_dir() {
                    pending.push(path);
                } else {
                    let relative = path.strip_prefix(&self.path).expect("below the root");
                    let parts: Vec<_> = relative
                        .components()
                        .map(|c| c.as_os_str().to_string_lossy().into_owned())
                        .collect();
                    found.push(parts.join("/"));
                }
            }
        }
        found.sort();
        found
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// `len` bytes of a fixed pseudo-random pattern (every byte value, CR and LF included).
pub(crate) fn pattern(len: usize) -> Vec<u8> {
    let mut state: u32 = 0x9e37_79b9 ^ len as u32;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            (state >> 24) as u8
        })
        .collect()
}

/// The installed client `program`, ready for arguments.
///
/// A missing client fails the test (CI installs them), unless `MEMTFTPD_SKIP_MISSING_CLIENTS=1`,
/// in which case this returns `None` and the test returns early.
pub(crate) fn client(program: &str) -> Option<Command> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let installed = std::env::split_paths(&path).any(|dir| dir.join(program).is_file());
    if !installed {
        if std::env::var("MEMTFTPD_SKIP_MISSING_CLIENTS").as_deref() == Ok("1") {
            eprintln!("skipped: `{program}` is not installed");
            return None;
        }
        panic!(
            "`{program}` is not installed: the end-to-end tests drive real clients; install \
             them with `apt-get install -y tftp-hpa atftp busybox curl`, or set \
             MEMTFTPD_SKIP_MISSING_CLIENTS=1 to skip the tests that need them"
        );
    }
    let mut command = Command::new(program);
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    Some(command)
}

/// Runs a client to completion (bounded); its output, whatever its exit status.
pub(crate) async fn run(mut command: Command) -> Output {
    let description = format!("{command:?}");
    match timeout(CLIENT_RUN, command.output()).await {
        Ok(output) => output.unwrap_or_else(|e| panic!("cannot run {description}: {e}")),
        Err(_) => panic!("{description} did not finish within {CLIENT_RUN:?}"),
    }
}

/// Panics with the client's output unless it succeeded.
pub(crate) fn assert_success(output: &Output, what: &str) {
    assert!(
        output.status.success(),
        "{what} failed ({}):\nstdout: {}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A reply from the server, owned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Reply {
    /// DATA.
    Data { block: u16, data: Vec<u8> },
    /// ACK.
    Ack { block: u16 },
    /// ERROR.
    Error(Refusal),
    /// OACK, with its options.
    Oack(Vec<(String, String)>),
}

/// An ERROR packet's code and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refusal {
    /// The error code.
    pub(crate) code: ErrorCode,
    /// The message.
    pub(crate) message: String,
}

/// A TFTP client on one UDP socket, talking to the server's listening address (memtftpd
/// answers from the port it listens on).
#[derive(Debug)]
pub(crate) struct RawClient {
    socket: UdpSocket,
    server: SocketAddr,
}

impl RawClient {
    /// A client on an ephemeral port of `ip` (any of 127.0.0.0/8 works on Linux loopback).
    pub(crate) async fn bind(ip: &str, server: SocketAddr) -> Self {
        let socket = UdpSocket::bind((ip, 0))
            .await
            .unwrap_or_else(|e| panic!("cannot bind a client on {ip}: {e}"));
        Self { socket, server }
    }

    /// A client on an ephemeral port of 127.0.0.1.
    pub(crate) async fn local(server: SocketAddr) -> Self {
        Self::bind("127.0.0.1", server).await
    }

    async fn send(&self, packet: &Packet<'_>) {
        self.socket
            .send_to(&packet.to_bytes(), self.server)
            .await
            .expect("cannot send");
    }

    fn request<'a>(name: &'a str, options: &[(&'a str, &'a str)]) -> Request<'a> {
        Request {
            filename: name,
            mode: Mode::Octet,
            options: options
                .iter()
                .map(|&(name, value)| TftpOption { name, value })
                .collect(),
        }
    }

    /// Sends an octet RRQ for `name` with `options`.
    pub(crate) async fn rrq(&self, name: &str, options: &[(&str, &str)]) {
        self.send(&Packet::Rrq(Self::request(name, options))).await;
    }

    /// Sends an octet WRQ for `name` with `options`.
    pub(crate) async fn wrq(&self, name: &str, options: &[(&str, &str)]) {
        self.send(&Packet::Wrq(Self::request(name, options))).await;
    }

    /// Sends ACK `block`.
    pub(crate) async fn ack(&self, block: u16) {
        self.send(&Packet::Ack { block }).await;
    }

    async fn data(&self, block: u16, data: &[u8]) {
        self.send(&Packet::Data { block, data }).await;
    }

    /// The next datagram from the server within `within`, decoded; `None` on silence.
    pub(crate) async fn recv(&self, within: Duration) -> Option<Reply> {
        let deadline = Instant::now() + within;
        let mut buf = vec![0; 65_536];
        loop {
            let (len, from) = timeout(
                deadline.saturating_duration_since(Instant::now()),
                self.socket.recv_from(&mut buf),
            )
            .await
            .ok()?
            .expect("cannot receive");
            if from != self.server {
                continue;
            }
            let packet = Packet::decode(&buf[..len])
                .unwrap_or_else(|e| panic!("the server sent a malformed packet: {e}"));
            return Some(match packet {
                Packet::Data { block, data } => Reply::Data {
                    block,
                    data: data.to_vec(),
                },
                Packet::Ack { block } => Reply::Ack { block },
                Packet::Error { code, message } => Reply::Error(Refusal {
                    code,
                    message: message.to_owned(),
                }),
                Packet::Oack { options } => Reply::Oack(
                    options
                        .iter()
                        .map(|o| (o.name.to_owned(), o.value.to_owned()))
                        .collect(),
                ),
                Packet::Rrq(_) | Packet::Wrq(_) => panic!("the server sent a request"),
            });
        }
    }

    /// The next reply, which must be an ERROR, arriving within `within`.
    pub(crate) async fn expect_error(&self, within: Duration) -> Refusal {
        match self.recv(within).await {
            Some(Reply::Error(refusal)) => refusal,
            other => panic!("expected an ERROR within {within:?}, got {other:?}"),
        }
    }

    /// Asserts that nothing at all arrives for `quiet`.
    pub(crate) async fn expect_silence(&self, quiet: Duration) {
        if let Some(reply) = self.recv(quiet).await {
            panic!("expected no answer for {quiet:?}, got {reply:?}");
        }
    }

    /// Sends an RRQ for `name` (no options: 512-byte blocks, lock-step).
    pub(crate) async fn start_download(&self, name: &str) -> Download<'_> {
        self.rrq(name, &[]).await;
        Download {
            client: self,
            next: 1,
            bytes: Vec::new(),
            done: false,
        }
    }

    /// Downloads `name` whole, or returns the server's ERROR.
    pub(crate) async fn get(&self, name: &str) -> Result<Vec<u8>, Refusal> {
        self.start_download(name).await.finish().await
    }

    /// Uploads `contents` as `name` (no options), or returns the server's ERROR.
    pub(crate) async fn put(&self, name: &str, contents: &[u8]) -> Result<(), Refusal> {
        self.wrq(name, &[]).await;
        self.await_ack(0, None).await?;
        // A multiple of the block size ends with an empty block.
        let mut blocks: Vec<&[u8]> = contents.chunks(BLOCK).collect();
        if contents.len() % BLOCK == 0 {
            blocks.push(&[]);
        }
        for (index, data) in blocks.into_iter().enumerate() {
            let block = (index + 1) as u16;
            self.data(block, data).await;
            self.await_ack(block, Some(data)).await?;
        }
        Ok(())
    }

    /// Waits for ACK `block`, resending `data` (DATA `block`) on silence.
    async fn await_ack(&self, block: u16, data: Option<&[u8]>) -> Result<(), Refusal> {
        for _ in 0..3 {
            loop {
                match self.recv(REPLY).await {
                    Some(Reply::Ack { block: acked }) if acked == block => return Ok(()),
                    Some(Reply::Ack { .. }) => continue, // a duplicate of an earlier ACK
                    Some(Reply::Error(refusal)) => return Err(refusal),
                    Some(other) => panic!("expected ACK {block}, got {other:?}"),
                    None => break,
                }
            }
            match data {
                Some(data) => self.data(block, data).await,
                None => panic!("no answer to a WRQ within {REPLY:?}"),
            }
        }
        panic!("no ACK {block} after resending DATA {block}");
    }
}

/// A download in progress, driven block by block.
#[derive(Debug)]
pub(crate) struct Download<'a> {
    client: &'a RawClient,
    /// The block expected next.
    next: u16,
    /// What arrived so far.
    bytes: Vec<u8>,
    done: bool,
}

impl Download<'_> {
    /// Receives and acknowledges the next block; `true` once the last block arrived.
    pub(crate) async fn step(&mut self) -> Result<bool, Refusal> {
        assert!(!self.done, "the download has already finished");
        loop {
            match self.client.recv(REPLY).await {
                Some(Reply::Data { block, data }) if block == self.next => {
                    self.client.ack(block).await;
                    self.bytes.extend_from_slice(&data);
                    self.next = self.next.wrapping_add(1);
                    self.done = data.len() < BLOCK;
                    return Ok(self.done);
                }
                // A resend of a block we have: our ACK was late or lost.
                Some(Reply::Data { block, .. }) => self.client.ack(block).await,
                Some(Reply::Error(refusal)) => return Err(refusal),
                other => panic!("expected DATA {}, got {other:?}", self.next),
            }
        }
    }

    /// Receives the rest of the file.
    pub(crate) async fn finish(mut self) -> Result<Vec<u8>, Refusal> {
        while !self.done {
            self.step().await?;
        }
        Ok(self.bytes)
    }
}
