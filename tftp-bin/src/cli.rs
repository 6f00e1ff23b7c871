//! The command line: flags, their defaults, and how they become the libraries' settings.
//!
//! Every flag can also come from an environment variable (`MEMTFTPD_` and the flag's name in
//! capitals, e.g. `MEMTFTPD_MAX_FILE_SIZE`) or from the TOML file named by `--config` (keys
//! are the flag names: `max-file-size = "64MiB"`, `listen = ["0.0.0.0:69", "[::]:69"]`,
//! `read-only = true`). A flag on the command line wins over the environment, which wins over
//! the file, which wins over the default.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::parser::ValueSource;
use clap::{ArgAction, CommandFactory, FromArgMatches, Parser, ValueEnum};
use ipnet::IpNet;
use tftp_handler::{AccessList, Config, StoreLimits};
use udp_server::ServerConfig;

use crate::units::{parse_duration, parse_positive_duration, parse_size};

/// memtftpd: a fast in-memory TFTP server (RFC 1350, 2347, 2348, 2349, 7440).
///
/// Files live in memory, optionally preloaded from a directory; an upload replaces its file
/// atomically, and only when it is complete. Every flag can also be set with an environment
/// variable (MEMTFTPD_ and the flag in capitals, e.g. MEMTFTPD_MAX_FILE_SIZE=64MiB) or in the TOML file given to
/// --config (e.g. max-file-size = "64MiB"); flags win over the environment, which wins over
/// the file.
#[derive(Debug, Parser)]
#[command(version, about, long_about)]
pub(crate) struct Args {
    /// Read settings from this TOML file (keys are flag names without the dashes in front).
    #[arg(long, value_name = "FILE", env = "MEMTFTPD_CONFIG")]
    pub(crate) config: Option<PathBuf>,

    /// Address to listen on; repeat for several. `[::]:PORT` is dual-stack where the OS allows.
    #[arg(
        short,
        long,
        value_name = "ADDR:PORT",
        default_value = "[::]:69",
        env = "MEMTFTPD_LISTEN",
        value_delimiter = ',',
        help_heading = "Network"
    )]
    pub(crate) listen: Vec<SocketAddr>,

    /// Serve only peers in this address prefix (repeatable; e.g. 10.0.0.0/8, fd00::/8).
    #[arg(long, value_name = "CIDR", env = "MEMTFTPD_ALLOW", value_delimiter = ',',
          value_parser = tftp_handler::access::parse_prefix, help_heading = "Network")]
    pub(crate) allow: Vec<IpNet>,

    /// Never serve peers in this address prefix (repeatable; wins over --allow). Refused peers
    /// get no answer.
    #[arg(long, value_name = "CIDR", env = "MEMTFTPD_DENY", value_delimiter = ',',
          value_parser = tftp_handler::access::parse_prefix, help_heading = "Network")]
    pub(crate) deny: Vec<IpNet>,

    /// Concurrent transfers at most, per listening address; beyond it a request gets
    /// ERROR 0 "server busy".
    #[arg(long, value_name = "N", default_value_t = ServerConfig::default().max_sessions,
          env = "MEMTFTPD_MAX_SESSIONS", help_heading = "Network")]
    pub(crate) max_sessions: usize,

    /// Concurrent transfers at most from one IP address (all its ports together).
    #[arg(
        long,
        value_name = "N",
        default_value_t = 64,
        env = "MEMTFTPD_MAX_SESSIONS_PER_PEER_IP",
        help_heading = "Network"
    )]
    pub(crate) max_sessions_per_peer_ip: usize,

    /// Preload every regular file under DIR (names are paths relative to DIR, with `/`).
    #[arg(
        short,
        long,
        value_name = "DIR",
        env = "MEMTFTPD_ROOT",
        help_heading = "Files"
    )]
    pub(crate) root: Option<PathBuf>,

    /// Also save each completed upload under --root (temporary file + rename), so that a
    /// restart keeps it.
    #[arg(
        long,
        requires = "root",
        env = "MEMTFTPD_PERSIST",
        help_heading = "Files"
    )]
    pub(crate) persist: bool,

    /// Serve downloads only: uploads get ERROR 2.
    #[arg(
        long,
        conflicts_with = "write_only",
        env = "MEMTFTPD_READ_ONLY",
        help_heading = "Files"
    )]
    pub(crate) read_only: bool,

    /// Accept uploads only: downloads get ERROR 2.
    #[arg(long, env = "MEMTFTPD_WRITE_ONLY", help_heading = "Files")]
    pub(crate) write_only: bool,

    /// Never replace an existing file: such an upload gets ERROR 6.
    #[arg(long, env = "MEMTFTPD_NO_OVERWRITE", help_heading = "Files")]
    pub(crate) no_overwrite: bool,

    /// Largest file an upload may create (e.g. 64MiB, 1GiB); beyond it: ERROR 3.
    #[arg(long, value_name = "SIZE", default_value = "1GiB", value_parser = parse_size,
          env = "MEMTFTPD_MAX_FILE_SIZE", help_heading = "Files")]
    pub(crate) max_file_size: u64,

    /// Most bytes all files together may hold, uploads included; beyond it: ERROR 3.
    #[arg(long, value_name = "SIZE", default_value = "4GiB", value_parser = parse_size,
          env = "MEMTFTPD_MAX_STORE_BYTES", help_heading = "Files")]
    pub(crate) max_store_bytes: u64,

    /// Time to wait before resending a packet (e.g. `1s`, `500ms`), unless the client
    /// negotiates `timeout` or `utimeout`. With an adaptive wait (`--min-timeout`), the first
    /// and the longest wait; a silent client is abandoned after `timeout x (retries + 1)`.
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = parse_positive_duration,
          env = "MEMTFTPD_TIMEOUT", help_heading = "Protocol")]
    pub(crate) timeout: Duration,

    /// Shortest wait before resending. Between it and `--timeout`, each transfer adapts the
    /// wait to its measured round-trip time (RFC 6298), so a lost packet on a fast link costs
    /// milliseconds; set it to the `--timeout` value for a fixed wait.
    #[arg(long, value_name = "DURATION", default_value = "10ms", value_parser = parse_positive_duration,
          env = "MEMTFTPD_MIN_TIMEOUT", help_heading = "Protocol")]
    pub(crate) min_timeout: Duration,

    /// Timeouts in a row before a transfer is abandoned.
    #[arg(long, value_name = "N", default_value_t = Config::default().max_retries,
          env = "MEMTFTPD_RETRIES", help_heading = "Protocol")]
    pub(crate) retries: u32,

    /// After an upload's final ACK, how long to keep re-acknowledging a resent final block (the
    /// client may not have seen the ACK). Raise it with `--retries` on a lossy link.
    #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = parse_duration,
          env = "MEMTFTPD_DALLY", help_heading = "Protocol")]
    pub(crate) dally: Duration,

    /// One-off ERROR replies per second (to stray packets, malformed requests, requests refused
    /// while busy); beyond it they are dropped. Bounds what a spoofer can reflect. 0: none.
    #[arg(long, value_name = "N", default_value_t = Config::default().error_reply_rate,
          env = "MEMTFTPD_ERROR_REPLY_RATE", help_heading = "Network")]
    pub(crate) error_reply_rate: u32,

    /// The longest one transfer may take; then it is ended with ERROR 0 (so that a client
    /// answering just before every timeout cannot hold a session forever).
    #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = parse_positive_duration,
          env = "MEMTFTPD_MAX_TRANSFER_TIME", help_heading = "Protocol")]
    pub(crate) max_transfer_time: Duration,

    /// Largest `blksize` granted (8..=65464); larger requests are clamped.
    #[arg(long, value_name = "BYTES", default_value_t = Config::default().max_block_size,
          value_parser = clap::value_parser!(u16).range(8..=65_464),
          env = "MEMTFTPD_MAX_BLOCK_SIZE", help_heading = "Protocol")]
    pub(crate) max_block_size: u16,

    /// Largest `windowsize` granted (1..=32768); larger requests are clamped.
    #[arg(long, value_name = "BLOCKS", default_value_t = Config::default().max_window_size,
          value_parser = clap::value_parser!(u16).range(1..=32_768),
          env = "MEMTFTPD_MAX_WINDOW_SIZE", help_heading = "Protocol")]
    pub(crate) max_window_size: u16,

    /// After SIGINT/SIGTERM, how long running transfers may take to finish before they are
    /// ended with ERROR 0 (a second signal exits at once).
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration,
          env = "MEMTFTPD_SHUTDOWN_GRACE", help_heading = "Operation")]
    pub(crate) shutdown_grace: Duration,

    /// Log filter when RUST_LOG is not set (e.g. `info`, `debug`, `tftp_handler=debug`).
    #[arg(
        long,
        value_name = "FILTER",
        default_value = "info",
        env = "MEMTFTPD_LOG_LEVEL",
        help_heading = "Operation"
    )]
    pub(crate) log_level: String,

    /// Log line format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, env = "MEMTFTPD_LOG_FORMAT",
          help_heading = "Operation")]
    pub(crate) log_format: LogFormat,
}

/// How log lines look.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

impl Args {
    /// Parses the process's command line, environment and config file.
    pub(crate) fn load() -> Result<Self, clap::Error> {
        Self::load_from(std::env::args_os())
    }

    /// Parses `argv` (program name first), the environment and the config file it names.
    pub(crate) fn load_from<I, T>(argv: I) -> Result<Self, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        let argv: Vec<OsString> = argv.into_iter().map(Into::into).collect();
        let command = Self::command();
        let matches = command.clone().try_get_matches_from(&argv)?;
        let args = Self::from_arg_matches(&matches)?;
        let Some(path) = &args.config else {
            return Ok(args);
        };
        let text = std::fs::read_to_string(path).map_err(|e| {
            config_error(format!("cannot read config file {}: {e}", path.display()))
        })?;
        let table: toml::Table = toml::from_str(&text)
            .map_err(|e| config_error(format!("config file {}: {e}", path.display())))?;
        let mut combined = vec![argv.first().cloned().unwrap_or_else(|| "memtftpd".into())];
        for (key, value) in &table {
            let arg = command
                .get_arguments()
                .find(|a| a.get_long() == Some(key.as_str()) && key != "config")
                .ok_or_else(|| {
                    config_error(format!("unknown setting `{key}` in {}", path.display()))
                })?;
            let id = arg.get_id().as_str();
            // Only settings still at their default take the file's value.
            if !matches!(
                matches.value_source(id),
                None | Some(ValueSource::DefaultValue)
            ) {
                continue;
            }
            let flag = format!("--{key}");
            match (arg.get_action(), value) {
                (ArgAction::SetTrue, toml::Value::Boolean(true)) => combined.push(flag.into()),
                (ArgAction::SetTrue, toml::Value::Boolean(false)) => {}
                (ArgAction::SetTrue, _) => {
                    return Err(config_error(format!("`{key}` takes true or false")));
                }
                (_, toml::Value::Array(items)) => {
                    for item in items {
                        combined.push(format!("{flag}={}", plain(item)).into());
                    }
                }
                (_, value) => combined.push(format!("{flag}={}", plain(value)).into()),
            }
        }
        combined.extend(argv.into_iter().skip(1));
        Self::try_parse_from(combined)
    }

    pub(crate) fn tftp_config(&self) -> Config {
        let mut access = AccessList::open();
        for net in &self.allow {
            access = access.allow(*net);
        }
        for net in &self.deny {
            access = access.deny(*net);
        }
        let mut config = Config::default();
        config.retry_timeout = self.timeout;
        config.min_retry_timeout = self.min_timeout.min(self.timeout);
        config.max_retries = self.retries;
        config.max_transfer_time = self.max_transfer_time;
        config.dally = self.dally;
        config.error_reply_rate = self.error_reply_rate;
        config.max_block_size = self.max_block_size;
        config.max_window_size = self.max_window_size;
        config.allow_read = !self.write_only;
        config.allow_write = !self.read_only;
        config.allow_overwrite = !self.no_overwrite;
        config.access = access;
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
            .with_max_sessions_per_ip(self.max_sessions_per_peer_ip)
            .with_shutdown_grace(self.shutdown_grace)
    }
}

/// A TOML value as it would be typed on the command line.
fn plain(value: &toml::Value) -> String {
    match value {
        toml::Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

fn config_error(message: String) -> clap::Error {
    Args::command().error(clap::error::ErrorKind::InvalidValue, message)
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
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn scratch_file(tag: &str, text: &str) -> PathBuf {
        let path =
            std::env::temp_dir().join(format!("memtftpd-cli-{tag}-{}.toml", std::process::id()));
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn the_defaults_parse() {
        let args = Args::load_from(["memtftpd"]).unwrap();
        assert_eq!(args.listen, vec!["[::]:69".parse::<SocketAddr>().unwrap()]);
        assert_eq!(args.tftp_config().retry_timeout, Duration::from_secs(1));
        assert_eq!(args.max_file_size, 1 << 30);
        assert!(args.tftp_config().allow_write);
    }

    #[test]
    fn the_config_file_fills_in_what_flags_do_not_set() {
        let path = scratch_file(
            "fill",
            "listen = [\"127.0.0.1:6969\", \"[::1]:6969\"]\nmax-file-size = \"64MiB\"\nread-only = true\ntimeout = \"250ms\"\nretries = 3\n",
        );
        let args = Args::load_from([
            "memtftpd",
            "--config",
            path.to_str().unwrap(),
            "--retries",
            "9",
        ])
        .unwrap();
        assert_eq!(args.listen.len(), 2);
        assert_eq!(args.max_file_size, 64 << 20);
        assert!(args.read_only);
        assert_eq!(args.timeout, Duration::from_millis(250));
        assert_eq!(args.retries, 9, "the flag wins over the file");
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn an_unknown_config_key_is_an_error() {
        let path = scratch_file("unknown", "max-fil-size = 3\n");
        let err = Args::load_from(["memtftpd", "--config", path.to_str().unwrap()]).unwrap_err();
        assert!(
            err.to_string().contains("unknown setting `max-fil-size`"),
            "{err}"
        );
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn policies_map_onto_the_handler_config() {
        let args = Args::load_from([
            "memtftpd",
            "--write-only",
            "--no-overwrite",
            "--allow",
            "10.0.0.0/8",
            "--deny",
            "10.9.0.0/16",
        ])
        .unwrap();
        let config = args.tftp_config();
        assert!(!config.allow_read && config.allow_write && !config.allow_overwrite);
        assert!(config.access.admits("10.1.1.1".parse().unwrap()));
        assert!(!config.access.admits("10.9.1.1".parse().unwrap()));
        assert!(!config.access.admits("192.0.2.1".parse().unwrap()));
    }

    #[test]
    fn read_only_and_write_only_conflict() {
        assert!(Args::load_from(["memtftpd", "--read-only", "--write-only"]).is_err());
    }
}
