//! `memtftpd`: an in-memory TFTP server.
//!
//! Thin by design: parse the command line, install logging, preload files, bind the listen
//! sockets, run a [`udp_server::Server`] with a [`tftp_handler::TftpHandler`] on each, and
//! turn SIGINT/SIGTERM into a graceful shutdown (a second signal exits at once).
//!
//! Threads: each listening socket is served by its own single-threaded tokio runtime on its
//! own thread, so a datagram is received, handled by its session and sent without crossing
//! threads (no work stealing, no cross-thread wake-ups: measured on loopback, a
//! multi-threaded runtime spent 60% more server CPU per block on 256 concurrent downloads).
//! The main thread only loads files, binds, and watches for signals.

mod cli;
mod preload;
mod units;

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::process::ExitCode;

use tftp_handler::{MemoryStore, PersistentStore, Store, TftpHandler};
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};
use udp_server::{ProtocolHandler, Server};

use crate::cli::{Args, LogFormat};

fn main() -> ExitCode {
    let args = match Args::load() {
        Ok(args) => args,
        Err(e) => e.exit(),
    };
    init_logging(&args);
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            error!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            error!("{message}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(args: &Args) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&args.log_level));
    // Colours only for a person at a terminal, not for journald or a log file.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match args.log_format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

async fn serve(args: Args) -> Result<(), String> {
    let store = MemoryStore::new(args.store_limits());
    if let Some(root) = &args.root {
        let loaded = preload::load_dir(root, &store)
            .map_err(|e| format!("cannot preload {}: {e}", root.display()))?;
        info!(
            files = loaded.files,
            bytes = loaded.bytes,
            skipped = loaded.skipped,
            root = %root.display(),
            "preloaded files"
        );
    }
    match (&args.root, args.persist) {
        (Some(root), true) => {
            let store = PersistentStore::new(store, root)
                .map_err(|e| format!("cannot persist into {}: {e}", root.display()))?;
            run(&args, store).await
        }
        _ => run(&args, store).await,
    }
}

/// Binds every listen address and serves `store` until shutdown, each socket on its own thread.
async fn run<S: Store>(args: &Args, store: S) -> Result<(), String> {
    let server = Server::new(
        TftpHandler::new(store, args.tftp_config()),
        args.server_config(),
    );
    let mut sockets = Vec::new();
    for addr in &args.listen {
        // Bound here, so that a bad address fails the start at once; moved to its thread below.
        let socket = udp_server::bind(*addr)
            .and_then(|socket| socket.into_std())
            .map_err(|e| cli::explain_bind_error(*addr, &e))?;
        sockets.push((*addr, socket));
    }
    let shutdown = CancellationToken::new();
    tokio::spawn(watch_signals(shutdown.clone()));
    let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel();
    let mut running = 0;
    let mut failure = None;
    for (addr, socket) in sockets {
        let (server, stop, done_tx) = (server.clone(), shutdown.clone(), done_tx.clone());
        let spawned = std::thread::Builder::new()
            .name("memtftpd-socket".into())
            .spawn(move || {
                let result = serve_socket(&server, addr, socket, stop);
                let _ = done_tx.send(result);
            });
        match spawned {
            Ok(_) => running += 1,
            Err(e) => {
                shutdown.cancel();
                failure.get_or_insert(format!("cannot start a thread for {addr}: {e}"));
            }
        }
    }
    drop(done_tx);
    while running > 0
        && let Some(result) = done_rx.recv().await
    {
        running -= 1;
        if let Err(message) = result {
            // One socket failing takes the whole server down, gracefully.
            shutdown.cancel();
            failure.get_or_insert(message);
        }
    }
    match failure {
        Some(message) => Err(message),
        None => Ok(()),
    }
}

/// Serves one socket to the end on a single-threaded runtime of the calling thread.
fn serve_socket<H: ProtocolHandler>(
    server: &Server<H>,
    addr: SocketAddr,
    socket: std::net::UdpSocket,
    shutdown: CancellationToken,
) -> Result<(), String> {
    // Sockets and timers only: signals are the main thread's (a signal or process driver here
    // would be polled on every park for nothing).
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
        .map_err(|e| format!("cannot start the runtime for {addr}: {e}"))?;
    runtime.block_on(async {
        let socket = tokio::net::UdpSocket::from_std(socket)
            .map_err(|e| format!("cannot register {addr}: {e}"))?;
        server
            .run(socket, shutdown)
            .await
            .map_err(|e| format!("socket {addr} failed: {e}"))
    })
}

/// First SIGINT/SIGTERM: graceful shutdown. Second: exit at once.
async fn watch_signals(shutdown: CancellationToken) {
    let mut signals = match Signals::new() {
        Ok(signals) => signals,
        Err(e) => {
            warn!("cannot listen for signals: {e}");
            return;
        }
    };
    signals.next().await;
    info!("signal received: shutting down (send it again to exit at once)");
    shutdown.cancel();
    signals.next().await;
    warn!("second signal: exiting now");
    std::process::exit(130);
}

/// SIGINT and SIGTERM, each registered once so that no signal between two waits is missed.
struct Signals {
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> std::io::Result<Self> {
        #[cfg(unix)]
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Self {
            #[cfg(unix)]
            interrupt: signal(SignalKind::interrupt())?,
            #[cfg(unix)]
            term: signal(SignalKind::terminate())?,
        })
    }

    async fn next(&mut self) {
        #[cfg(unix)]
        tokio::select! {
            _ = self.interrupt.recv() => {}
            _ = self.term.recv() => {}
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
    }
}
