//! A second protocol on the same server: echo with a running count per peer.
//!
//! Usage: `echo_count [ADDR] [IDLE_SECS]` (defaults `127.0.0.1:7070` and `5`). Each peer's
//! datagrams come back followed by a space and a count (`hello 1`, `hello 2`, ...); a peer
//! silent for `IDLE_SECS` starts over at 1. Ctrl-C shuts down gracefully. Try it with
//! `cargo run -p udp-server --example echo_count` and `echo -n hello | nc -u -w1 127.0.0.1 7070`.
//! The protocol itself lives in `tests/support/echo_count.rs`, shared with the integration
//! tests; this file only parses arguments, installs tracing, binds and runs.

#[path = "../tests/support/echo_count.rs"]
mod echo_count;

use std::net::SocketAddr;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::warn;
use tracing_subscriber::EnvFilter;
use udp_server::{Server, ServerConfig};

use crate::echo_count::EchoCount;

/// The address served when none is given.
const DEFAULT_ADDR: &str = "127.0.0.1:7070";

/// The idle timeout, in seconds, when none is given.
const DEFAULT_IDLE_SECS: &str = "5";

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();

    let mut args = std::env::args().skip(1);
    let addr: SocketAddr = args.next().as_deref().unwrap_or(DEFAULT_ADDR).parse()?;
    let idle_secs: u64 = args
        .next()
        .as_deref()
        .unwrap_or(DEFAULT_IDLE_SECS)
        .parse()?;

    let socket = udp_server::bind(addr)?;
    let server = Server::new(
        EchoCount {
            idle: Duration::from_secs(idle_secs),
        },
        ServerConfig::default(),
    );

    let shutdown = CancellationToken::new();
    tokio::spawn({
        let shutdown = shutdown.clone();
        async move {
            match tokio::signal::ctrl_c().await {
                Ok(()) => shutdown.cancel(),
                Err(e) => warn!("cannot listen for Ctrl-C ({e}); stop the process to quit"),
            }
        }
    });

    server.run(socket, shutdown).await?;
    Ok(())
}
