//! The command line: flags, their defaults, and how they become the libraries' settings.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use tftp_handler::{Config, StoreLimits};
use udp_server::ServerConfig;

/// memtftpd: a fast in-memory TFTP server (RFC 1350, 2347, 2348, 2349, 7440).
///
/// Files live in memory, optionally preloaded from a directory; uploads replace them
/// atomically when complete.
#[derive(Debug, Parser)]
#[command(version, about, long_about = None)]
pub(crate) struct Args {
    /// Address to listen on (repeatable). `[::]:PORT` is dual-stack where the OS allows.
    #[arg(short, long, value_name = "ADDR:PORT", default_value = "[::]:69")]
    pub(crate) listen: Vec<SocketAddr>,

    /// Preload every regular file under DIR (names are paths relative to DIR, with `/`).
    #[arg(short, long, value_name = "DIR")]
    pub(crate) root: Option<PathBuf>,

    /// Time to wait before resending a packet (e.g. `1s`, `500ms`), unless the client
    /// negotiates `timeout` or `utimeout`.
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = parse_duration)]
    pub(crate) timeout: Duration,

    /// Timeouts in a row before a transfer is abandoned.
    #[arg(long, value_name = "N", default_value_t = 5)]
    pub(crate) retries: u32,

    /// Largest `blksize` granted (8..=65464).
    #[arg(long, value_name = "BYTES", default_value_t = 65_464,
          value_parser = clap::value_parser!(u16).range(8..=65_464))]
    pub(crate) max_block_size: u16,

    /// Largest `windowsize` granted (1..=65535).
    #[arg(long, value_name = "BLOCKS", default_value_t = 64,
          value_parser = clap::value_parser!(u16).range(1..))]
    pub(crate) max_window_size: u16,

    /// Largest file an upload may create, in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = StoreLimits::default().max_file_size)]
    pub(crate) max_file_size: u64,

    /// Most bytes all files together may hold.
    #[arg(long, value_name = "BYTES", default_value_t = StoreLimits::default().max_total_bytes)]
    pub(crate) max_store_bytes: u64,

    /// Concurrent transfers at most, per listening socket.
    #[arg(long, value_name = "N", default_value_t = ServerConfig::default().max_sessions)]
    pub(crate) max_sessions: usize,

    /// After SIGINT/SIGTERM, how long running transfers may take to finish.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    pub(crate) shutdown_grace: Duration,

    /// Log filter when RUST_LOG is not set (e.g. `info`, `debug`, `tftp_handler=debug`).
    #[arg(long, value_name = "FILTER", default_value = "info")]
    pub(crate) log_level: String,
}

impl Args {
    pub(crate) fn tftp_config(&self) -> Config {
        let mut config = Config::default();
        config.retry_timeout = self.timeout;
        config.max_retries = self.retries;
        config.max_block_size = self.max_block_size;
        config.max_window_size = self.max_window_size;
        config
    }

    pub(crate) fn store_limits(&self) -> StoreLimits {
        StoreLimits::default()
            .with_max_file_size(self.max_file_size)
            .with_max_total_bytes(self.max_store_bytes)
    }

    pub(crate) fn server_config(&self) -> ServerConfig {
        ServerConfig::default()
            .with_max_sessions(self.max_sessions)
            .with_shutdown_grace(self.shutdown_grace)
    }
}

/// `250ms`, `2s`, `1.5s`, or a bare number of seconds.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, scale) = if let Some(ms) = text.strip_suffix("ms") {
        (ms, 0.001)
    } else if let Some(s) = text.strip_suffix('s') {
        (s, 1.0)
    } else {
        (text, 1.0)
    };
    let value: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("`{text}` is not a duration (try `1s` or `500ms`)"))?;
    Duration::try_from_secs_f64(value * scale).map_err(|e| format!("`{text}`: {e}"))
}

/// A bind failure in words an operator can act on.
pub(crate) fn explain_bind_error(addr: SocketAddr, e: &std::io::Error) -> String {
    let hint = match e.kind() {
        std::io::ErrorKind::PermissionDenied => {
            " (ports below 1024 need root or CAP_NET_BIND_SERVICE; or listen on a high port such as 6969)"
        }
        std::io::ErrorKind::AddrInUse => " (another process is using this port)",
        std::io::ErrorKind::AddrNotAvailable => " (no such local address)",
        _ => "",
    };
    format!("cannot listen on {addr}: {e}{hint}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_accept_seconds_and_milliseconds() {
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("-1s").is_err());
    }

    #[test]
    fn the_defaults_parse() {
        let args = Args::parse_from(["memtftpd"]);
        assert_eq!(
            args.listen,
            vec![
                "[::]:69"
                    .parse::<SocketAddr>()
                    .unwrap_or_else(|e| panic!("{e}"))
            ]
        );
        assert_eq!(args.tftp_config().retry_timeout, Duration::from_secs(1));
    }
}
