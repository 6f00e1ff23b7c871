//! Transfers through a lossy network (the shim in `lossy`): mixed sizes, modes, block and
//! window sizes, both directions, with datagrams lost, duplicated and reordered each way.
//!
//! What a user would notice is asserted: every transfer completes byte-exact at 10% of each
//! fault; at 30% loss nearly all complete and none is ever corrupt or published in part; every
//! session ends; and the adaptive retransmission wait finishes a lossy workload in at most half
//! the time a fixed one-second wait needs. The figures are printed (run with `--nocapture`).
//!
//! Sizes scale with the environment: `MEMTFTPD_FULL_SIZE=1` runs the full figures of the
//! README (200 transfers up to 1 MiB each); otherwise a CI size (40 transfers up to 64 KiB).
#![allow(clippy::unwrap_used)]

mod lossy;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use lossy::network::Network;
use lossy::path::Faults;
use lossy::rng::Rng;
use tftp_handler::{Client, ClientConfig, Config, MemoryStore, Mode, RequestOptions, TftpHandler};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;

/// True when the full-size figures are asked for (`MEMTFTPD_FULL_SIZE=1`).
fn full_size() -> bool {
    std::env::var("MEMTFTPD_FULL_SIZE").is_ok_and(|v| v == "1")
}

/// `full` at full size, `ci` otherwise.
fn scaled(full: usize, ci: usize) -> usize {
    if full_size() { full } else { ci }
}

/// Transfers in a workload.
fn transfers() -> usize {
    scaled(200, 40)
}

/// The largest random file size.
fn max_size() -> usize {
    scaled(1 << 20, 64 << 10)
}

/// Transfers running at once.
const CONCURRENCY: usize = 16;

/// One transfer of a workload.
#[derive(Debug, Clone)]
struct Spec {
    /// Upload (true) or download.
    upload: bool,
    mode: Mode,
    block_size: u16,
    window_size: u16,
    contents: Bytes,
}

impl Spec {
    /// DATA blocks the transfer carries (after netascii translation).
    fn blocks(&self) -> u64 {
        let wire = match self.mode {
            Mode::Netascii => {
                let extra = self
                    .contents
                    .iter()
                    .filter(|&&b| b == b'\r' || b == b'\n')
                    .count();
                self.contents.len() + extra
            }
            _ => self.contents.len(),
        };
        (wire / usize::from(self.block_size)) as u64 + 1
    }
}

/// `n` transfers: sizes of 0, exact multiples of the block size and random up to
/// [`max_size`]; octet and netascii; blksize 8, 512 and 1428; windowsize 1 and 8; downloads
/// only or both directions.
fn workload(n: usize, uploads: bool, seed: u64) -> Vec<Spec> {
    let mut rng = Rng::new(seed);
    (0..n)
        .map(|i| {
            let block_size = [8, 512, 1428][i % 3];
            let size = match i % 5 {
                0 => 0,
                1 => {
                    usize::from(block_size)
                        * (1 + rng.up_to(max_size() as u64 / u64::from(block_size)) as usize)
                }
                _ => rng.up_to(max_size() as u64) as usize,
            };
            let size = size.min(max_size());
            Spec {
                upload: uploads && i % 2 == 1,
                mode: if i % 4 == 3 {
                    Mode::Netascii
                } else {
                    Mode::Octet
                },
                block_size,
                window_size: [1, 8][(i / 3) % 2],
                contents: random_bytes(&mut rng, size),
            }
        })
        .collect()
}

fn random_bytes(rng: &mut Rng, len: usize) -> Bytes {
    let mut bytes = Vec::with_capacity(len + 8);
    while bytes.len() < len {
        bytes.extend_from_slice(&rng.next_u64().to_le_bytes());
    }
    bytes.truncate(len);
    bytes.into()
}

/// What a workload came to.
#[derive(Debug, Default)]
struct Report {
    transfers: usize,
    /// Completed and byte-exact.
    completed: usize,
    /// Completed by the client's account, but with the wrong bytes (downloads) or the wrong
    /// bytes in the store (uploads).
    corrupt: usize,
    /// Uploads whose name holds something other than nothing or the whole upload.
    partial_publishes: usize,
    /// Client-side failures, one line each.
    failures: Vec<String>,
    /// Virtual time from the first request to the last transfer's end.
    elapsed: Duration,
    /// DATA the server sent, and blocks the downloads carried.
    server_data_sent: u64,
    download_blocks: u64,
    /// The same for the completed lock-step (windowsize 1) downloads.
    lock_step_data_sent: u64,
    lock_step_blocks: u64,
    /// Sessions live once the network went quiet, and uploads still holding a name.
    live_sessions_after: usize,
    uploads_in_progress_after: usize,
    sessions_opened: usize,
    dropped: u64,
    duplicated: u64,
    reordered: u64,
    sent: u64,
}

impl Report {
    /// DATA sent by the server per download block delivered.
    fn data_per_block(&self) -> f64 {
        self.server_data_sent as f64 / self.download_blocks.max(1) as f64
    }

    /// The same for the completed lock-step downloads.
    fn lock_step_data_per_block(&self) -> f64 {
        self.lock_step_data_sent as f64 / self.lock_step_blocks.max(1) as f64
    }
}

/// Runs `specs` through a network with `faults` each way in front of a handler with
/// `config`, [`CONCURRENCY`] at a time, with clients configured by `client`.
async fn run(
    specs: &[Spec],
    config: Config,
    client: ClientConfig,
    faults: Faults,
    seed: u64,
) -> Report {
    let store = MemoryStore::default();
    for (i, spec) in specs.iter().enumerate() {
        if !spec.upload {
            store.insert(format!("f{i}"), spec.contents.clone());
        }
    }
    let mut net = Network::new(
        TftpHandler::new(store.clone(), config),
        faults,
        faults,
        seed,
    );
    let server = net.server();
    let permits = Arc::new(Semaphore::new(CONCURRENCY));
    let mut tasks = JoinSet::new();
    let started = Instant::now();
    for (i, spec) in specs.iter().cloned().enumerate() {
        let mut link = net.connect();
        let permits = Arc::clone(&permits);
        let mut config = client.clone();
        config.mode = spec.mode;
        config.options = RequestOptions::default()
            .with_block_size(spec.block_size)
            .with_window_size(spec.window_size);
        tasks.spawn(async move {
            let _permit = permits.acquire().await.unwrap();
            let client = Client::new(config);
            let name = format!("f{i}");
            let result = if spec.upload {
                client
                    .put_over(&mut link, server, &name, spec.contents.clone())
                    .await
                    .map(|()| None)
            } else {
                client.get_over(&mut link, server, &name).await.map(Some)
            };
            (i, spec, result, link.data_sent())
        });
    }
    let mut report = Report {
        transfers: specs.len(),
        ..Report::default()
    };
    let mut outcomes = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        outcomes.push(joined.unwrap());
    }
    report.elapsed = started.elapsed();
    // Every session must end on its own: abandoned ones after their silence budget.
    let quiet = net.wait_idle(Duration::from_secs(120)).await;
    assert!(
        quiet,
        "sessions still live two minutes after the last client finished"
    );
    for (i, spec, result, data_sent) in outcomes {
        let name = format!("f{i}");
        match (&result, spec.upload) {
            (Ok(Some(got)), false) if *got == spec.contents => report.completed += 1,
            (Ok(_), false) => report.corrupt += 1,
            (Ok(_), true) if store.get(&name).as_ref() == Some(&spec.contents) => {
                report.completed += 1;
            }
            (Ok(_), true) => report.corrupt += 1,
            (Err(e), _) => report
                .failures
                .push(format!("{i} {spec:?}: {e}", spec = Brief(&spec))),
        }
        if spec.upload {
            // Nothing, or the whole upload (the server may have published it although the
            // client never saw the final ACK); never a part.
            if store.get(&name).is_some_and(|held| held != spec.contents) {
                report.partial_publishes += 1;
            }
        } else {
            report.download_blocks += spec.blocks();
            if spec.window_size == 1 && result.is_ok() {
                report.lock_step_blocks += spec.blocks();
                report.lock_step_data_sent += data_sent;
            }
        }
    }
    let counts = net.counts();
    report.server_data_sent = counts.server_data_sent.load(Ordering::Relaxed);
    report.live_sessions_after = counts.live_sessions.load(Ordering::SeqCst);
    report.sessions_opened = counts.sessions_opened.load(Ordering::SeqCst);
    report.uploads_in_progress_after = store.uploads_in_progress();
    report.sent = counts.paths.sent.load(Ordering::Relaxed);
    report.dropped = counts.paths.dropped.load(Ordering::Relaxed);
    report.duplicated = counts.paths.duplicated.load(Ordering::Relaxed);
    report.reordered = counts.paths.reordered.load(Ordering::Relaxed);
    eprintln!(
        "{report:#?}\nDATA per download block: {:.3} (lock-step: {:.3})",
        report.data_per_block(),
        report.lock_step_data_per_block()
    );
    report
}

/// A spec without its contents, for failure lines.
struct Brief<'a>(&'a Spec);

impl std::fmt::Debug for Brief<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.0;
        write!(
            f,
            "{} {:?} blksize {} windowsize {} size {}",
            if s.upload { "put" } else { "get" },
            s.mode,
            s.block_size,
            s.window_size,
            s.contents.len()
        )
    }
}

/// The client the lossy workloads use: our own, with the adaptive wait.
fn adaptive_client() -> ClientConfig {
    let mut client = ClientConfig::default();
    client.min_retry_timeout = Duration::from_millis(10);
    client
}

/// Asserts what must hold after any workload, lossy or not.
fn assert_clean(report: &Report) {
    assert_eq!(report.corrupt, 0, "corrupt transfers: {report:#?}");
    assert_eq!(
        report.partial_publishes, 0,
        "partial uploads published: {report:#?}"
    );
    assert_eq!(report.live_sessions_after, 0, "sessions left: {report:#?}");
    assert_eq!(
        report.uploads_in_progress_after, 0,
        "upload names held: {report:#?}"
    );
}

#[tokio::test(start_paused = true)]
async fn ten_percent_loss_duplication_and_reordering_each_way_lose_nothing() {
    let specs = workload(transfers(), true, 1);
    let report = run(
        &specs,
        Config::default(),
        adaptive_client(),
        Faults::each(0.10),
        11,
    )
    .await;
    assert_clean(&report);
    assert_eq!(
        report.completed, report.transfers,
        "every transfer completes byte-exact: {:#?}",
        report.failures
    );
}

#[tokio::test(start_paused = true)]
async fn thirty_percent_loss_completes_nearly_all_and_never_corrupts_or_publishes_a_part() {
    let specs = workload(transfers(), true, 2);
    // A link this bad calls for a longer silence budget (`--retries 20`), on both ends, and a
    // longer dally (`--dally 20s`): a final ACK lost for the whole default 2 s would leave the
    // client, whose upload is published, with an ERROR 5 to its last resend.
    // And a 1 MiB file at blksize 8 is 131,072 lock-step round trips, most of them repeated:
    // longer than the default hour (`--max-transfer-time`).
    let mut config = Config::default();
    config.max_retries = 20;
    config.dally = Duration::from_secs(20);
    config.max_transfer_time = Duration::from_secs(86_400);
    let mut client = adaptive_client();
    client.max_retries = 20;
    let report = run(&specs, config, client, Faults::loss(0.30), 22).await;
    assert_clean(&report);
    assert!(
        report.completed * 100 >= report.transfers * 95,
        "at least 95% complete: {} of {}: {:#?}",
        report.completed,
        report.transfers,
        report.failures
    );
}

#[tokio::test(start_paused = true)]
async fn the_adaptive_wait_halves_the_time_a_fixed_one_second_wait_needs() {
    let specs = workload(transfers(), false, 3);
    // Clients as common ones are: a fixed one-second wait.
    let client = ClientConfig::default();
    let mut fixed = Config::default();
    fixed.min_retry_timeout = fixed.retry_timeout;
    let fixed = run(&specs, fixed, client.clone(), Faults::each(0.10), 33).await;
    let adaptive = run(&specs, Config::default(), client, Faults::each(0.10), 33).await;
    assert_clean(&fixed);
    assert_clean(&adaptive);
    assert_eq!(
        adaptive.completed, adaptive.transfers,
        "{:#?}",
        adaptive.failures
    );
    eprintln!(
        "fixed 1 s: {:?}, {}/{} complete, {:.3} DATA per block (lock-step {:.3}); \
         adaptive: {:?}, {}/{} complete, {:.3} DATA per block (lock-step {:.3})",
        fixed.elapsed,
        fixed.completed,
        fixed.transfers,
        fixed.data_per_block(),
        fixed.lock_step_data_per_block(),
        adaptive.elapsed,
        adaptive.completed,
        adaptive.transfers,
        adaptive.data_per_block(),
        adaptive.lock_step_data_per_block(),
    );
    assert!(
        adaptive.elapsed * 2 <= fixed.elapsed,
        "adaptive {:?} vs fixed {:?}",
        adaptive.elapsed,
        fixed.elapsed
    );
    // No resend the losses did not call for: in lock-step a block needs 1 / (1 - p)^2 DATA on
    // average at a loss p each way (1.235 at 10%); allow 5% over that.
    let floor = 1.0 / (0.9 * 0.9);
    assert!(
        adaptive.lock_step_data_per_block() <= floor * 1.05,
        "{:.3} DATA per lock-step block, the losses call for {floor:.3}",
        adaptive.lock_step_data_per_block()
    );
}
