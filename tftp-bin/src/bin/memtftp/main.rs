//! `memtftp`: a TFTP client and load generator.
//!
//! `get` and `put` move one file; `bench` drives many transfers at a chosen concurrency
//! against any TFTP server, checks every byte, and reports throughput, transfer rate,
//! latency percentiles and failures (as text, or JSON with `--json`). All of it runs on
//! [`tftp_handler::Client`], which is built from memtftpd's own transfer state machines.

mod bench;
#[path = "../../units.rs"]
mod units;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use tftp_handler::{Client, ClientConfig, Mode, RequestOptions};

use crate::units::parse_positive_duration;

/// memtftp: TFTP client and load generator (RFC 1350, 2347-2349, 7440).
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Download a file.
    Get {
        /// Server address (`HOST:PORT`, or `HOST` for port 69).
        server: String,
        /// Name of the file on the server.
        remote: String,
        /// Where to write it (default: the remote name's last component; `-` for stdout).
        #[arg(short, long)]
        output: Option<PathBuf>,
        #[command(flatten)]
        transfer: TransferArgs,
    },
    /// Upload a file.
    Put {
        /// Server address (`HOST:PORT`, or `HOST` for port 69).
        server: String,
        /// The local file to send.
        local: PathBuf,
        /// Name to store it under (default: the local file name).
        remote: Option<String>,
        #[command(flatten)]
        transfer: TransferArgs,
    },
    /// Drive many transfers against a server and report how it did.
    Bench(bench::BenchArgs),
}

/// Options for every transfer.
#[derive(Debug, Clone, Args)]
struct TransferArgs {
    /// Transfer mode.
    #[arg(long, value_enum, default_value_t = ModeArg::Octet)]
    mode: ModeArg,
    /// Ask for this block size (`blksize`, 8..=65464).
    #[arg(long, value_name = "BYTES", value_parser = clap::value_parser!(u16).range(8..=65_464))]
    blksize: Option<u16>,
    /// Ask for this window size (`windowsize`, 1..=65535).
    #[arg(long, value_name = "BLOCKS", value_parser = clap::value_parser!(u16).range(1..))]
    windowsize: Option<u16>,
    /// Ask for (download) or announce (upload) the transfer size (`tsize`).
    #[arg(long)]
    tsize: bool,
    /// Ask the server to use this retransmission timeout (`timeout`/`utimeout`).
    #[arg(long, value_name = "DURATION", value_parser = parse_positive_duration)]
    timeout_option: Option<Duration>,
    /// Our own wait before resending (the first and the longest, with `--min-retry-timeout`).
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = parse_positive_duration)]
    retry_timeout: Duration,
    /// Adapt our wait to the measured round trip (RFC 6298), never below this (e.g. `10ms`),
    /// as memtftpd does; by default the wait is fixed at `--retry-timeout`, as in common clients.
    #[arg(long, value_name = "DURATION", value_parser = parse_positive_duration)]
    min_retry_timeout: Option<Duration>,
    /// Timeouts in a row before giving up.
    #[arg(long, value_name = "N", default_value_t = 5)]
    retries: u32,
}

/// `--mode` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ModeArg {
    Octet,
    Netascii,
}

impl TransferArgs {
    /// The client settings these flags describe.
    fn config(&self) -> ClientConfig {
        let mut options = RequestOptions::default();
        if let Some(block_size) = self.blksize {
            options = options.with_block_size(block_size);
        }
        if let Some(window_size) = self.windowsize {
            options = options.with_window_size(window_size);
        }
        if let Some(timeout) = self.timeout_option {
            options = options.with_timeout(timeout);
        }
        if self.tsize {
            options = options.with_transfer_size();
        }
        let mut config = ClientConfig::default();
        config.mode = match self.mode {
            ModeArg::Octet => Mode::Octet,
            ModeArg::Netascii => Mode::Netascii,
        };
        config.options = options;
        config.retry_timeout = self.retry_timeout;
        config.min_retry_timeout = self
            .min_retry_timeout
            .map_or(self.retry_timeout, |floor| floor.min(self.retry_timeout));
        config.max_retries = self.retries;
        config
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // One thread: every transfer runs inside `block_on`, so with a multi-threaded runtime each
    // datagram was noticed by a worker thread's reactor and handed across threads to the main
    // one (measured: 19.3 MiB/s for a pinned lock-step download, 24.3 on one thread; 256
    // concurrent downloads 45 MiB/s, 65 on one thread). `bench --threads N` adds threads
    // that each run a share of the transfers on a runtime of their own, for the same reason.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("memtftp: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command)) {
        Ok(code) => code,
        Err(message) => {
            eprintln!("memtftp: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> Result<ExitCode, String> {
    match command {
        Command::Get {
            server,
            remote,
            output,
            transfer,
        } => {
            let server = resolve(&server).await?;
            let contents = Client::new(transfer.config())
                .get(server, &remote)
                .await
                .map_err(|e| format!("get {remote}: {e}"))?;
            let output = output.unwrap_or_else(|| default_local_name(&remote));
            if output.as_os_str() == "-" {
                use std::io::Write;
                std::io::stdout()
                    .write_all(&contents)
                    .map_err(|e| format!("stdout: {e}"))?;
            } else {
                std::fs::write(&output, &contents)
                    .map_err(|e| format!("cannot write {}: {e}", output.display()))?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Put {
            server,
            local,
            remote,
            transfer,
        } => {
            let server = resolve(&server).await?;
            let contents = std::fs::read(&local)
                .map_err(|e| format!("cannot read {}: {e}", local.display()))?;
            let remote = match remote {
                Some(remote) => remote,
                None => local
                    .file_name()
                    .and_then(|n| n.to_str())
                    .ok_or("give the remote name")?
                    .to_owned(),
            };
            Client::new(transfer.config())
                .put(server, &remote, contents.into())
                .await
                .map_err(|e| format!("put {remote}: {e}"))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench(args) => bench::run(args).await,
    }
}

/// `HOST:PORT`, `HOST` (port 69), or an IP address with or without a port, resolved.
pub(crate) async fn resolve(server: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = server.parse::<SocketAddr>() {
        return Ok(addr);
    }
    if let Ok(ip) = server.parse::<IpAddr>() {
        return Ok((ip, 69).into());
    }
    let target = if server.contains(':') {
        server.to_owned()
    } else {
        format!("{server}:69")
    };
    tokio::net::lookup_host(&target)
        .await
        .map_err(|e| format!("cannot resolve {server}: {e}"))?
        .next()
        .ok_or_else(|| format!("cannot resolve {server}"))
}

/// The last `/`-separated part of a remote name.
fn default_local_name(remote: &str) -> PathBuf {
    PathBuf::from(remote.rsplit('/').next().unwrap_or(remote))
}
