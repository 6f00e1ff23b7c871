//! Nothing lost (issue 7): an upload replaces a file only when it completes, whole and at once,
//! and nothing else ever does.
//!
//! - An upload of v2 over v1 abandoned at one of three points: right after the write request
//!   (block 0), midway, and with every full block acknowledged but the final short one never
//!   sent. Half the trials kill the client (its socket is dropped: the server hears nothing
//!   more and must time the session out), half send an ERROR. Trials run concurrently, each on
//!   its own name with its own v1 and v2, and each with a reader that downloads the name over
//!   and over: while the upload is in flight and while the server reaps it, every download is
//!   v1 in full. Once the server lets go of the name (a probing write request is accepted
//!   again), the store holds exactly v1. The probe then completes v2: downloads see v1 or v2
//!   in full, never v1 after v2, and v2 from the moment its final block is acknowledged.
//! - Sixteen uploads of distinct contents to one name at once: one writer per name, so exactly
//!   one is accepted and the others are refused with ERROR 2; the store ends with exactly the
//!   accepted one's contents, and a reader never sees a refused one's.
//! - A shutdown during live downloads and uploads (slow clients): each client ends with a
//!   byte-exact transfer or ERROR 0 "server shutting down", never a timeout; a completed
//!   upload is stored exactly, a cancelled one leaves the previous version (or no file).
//!
//! `MEMTFTPD_FULL_SIZE=1` runs the figures (100 trials per abort point and client
//! behaviour, 100 live transfers at shutdown); otherwise a CI size (5 per abort point and
//! behaviour, 30 live transfers). Failures are gathered per trial and reported together.

use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use memtftpd_tests::{RawClient, Reply, TestServer, full_size, pattern};
use tftp_handler::{
    Client, ClientConfig, ClientError, Config, ErrorCode, MemoryStore, Mode, Packet,
};
use tokio::sync::{Barrier, Semaphore};
use tokio::task::JoinSet;
use udp_server::ServerConfig;

/// The block size every transfer here uses (no options): the RFC 1350 default.
const BLOCK: usize = 512;

/// The server's wait before resending in the abort trials: short, so that a killed client's
/// session is reaped in [`silence_budget`] rather than the default six seconds.
const RETRY_TIMEOUT: Duration = Duration::from_millis(200);

/// Timeouts in a row before the server gives up on a silent client, in the abort trials.
const MAX_RETRIES: u32 = 3;

/// Abort trials running at once (each with its own reader).
const CONCURRENT_TRIALS: usize = 16;

/// The reader's pause between downloads, so that readers do not crowd out the uploads.
const READ_PAUSE: Duration = Duration::from_millis(3);

/// The uploader's pause before each DATA block, so that an upload is in flight for a while.
const BLOCK_PACE: Duration = Duration::from_millis(2);

/// How long the raw uploader waits for an ACK before resending, and how often it resends.
const CLIENT_WAIT: Duration = Duration::from_secs(1);
/// See [`CLIENT_WAIT`].
const CLIENT_RESENDS: u32 = 3;

/// The longest any one step of a trial may take (a read to land in a phase, the name to be
/// freed) before the trial fails.
const STEP_LIMIT: Duration = Duration::from_secs(10);

/// How long a silent client's session may live: `RETRY_TIMEOUT x (MAX_RETRIES + 1)`.
fn silence_budget() -> Duration {
    RETRY_TIMEOUT * (MAX_RETRIES + 1)
}

/// The protocol settings of the abort trials: quick reaping, and a short dally so that
/// completed uploads' sessions end soon too.
fn reaping_config() -> Config {
    let mut config = Config::default();
    config.retry_timeout = RETRY_TIMEOUT;
    config.max_retries = MAX_RETRIES;
    config.dally = Duration::from_millis(100);
    config
}

/// Where an abandoned upload of v2 stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AbortPoint {
    /// After the write request is acknowledged (ACK 0), before any DATA.
    AfterRequest,
    /// After half the full blocks.
    Midway,
    /// After every full block: only the final, short block is missing.
    BeforeLastBlock,
}

impl AbortPoint {
    /// How many DATA blocks of `contents` go out (each acknowledged) before the abort.
    fn blocks_sent(self, contents: &[u8]) -> usize {
        let full = contents.len() / BLOCK;
        match self {
            Self::AfterRequest => 0,
            Self::Midway => full / 2,
            Self::BeforeLastBlock => full,
        }
    }
}

/// How the client abandons the upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AbortKind {
    /// The client is killed: its socket is dropped and the server hears nothing more.
    Killed,
    /// The client sends ERROR 0 and goes.
    ClientError,
}

/// Where a trial is, as its reader sees it; the uploader only moves it forward.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Phase {
    /// v1 is stored; no upload yet.
    Before,
    /// The v2 upload is accepted and partly sent.
    InFlight,
    /// The client has gone (killed or ERROR); the server may still hold its session.
    Abandoned,
    /// The server let go of the name; a complete v2 is being uploaded.
    Replacing,
    /// The complete v2's final block is acknowledged.
    Replaced,
}

impl Phase {
    /// Every phase, in order (index = discriminant).
    const ALL: [Self; 5] = [
        Self::Before,
        Self::InFlight,
        Self::Abandoned,
        Self::Replacing,
        Self::Replaced,
    ];
}

/// What one download returned.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seen {
    /// v1, whole.
    V1,
    /// v2, whole.
    V2,
    /// Anything else, described.
    Torn(String),
    /// The download failed.
    Failed(String),
}

/// One download by a trial's reader.
#[derive(Debug, Clone)]
struct Read {
    /// The phase when the download was requested.
    started: Phase,
    /// The phase when it returned.
    ended: Phase,
    /// What it returned.
    seen: Seen,
}

/// A trial's shared state: the phase (moved by the uploader) and the reader's downloads.
#[derive(Debug, Default)]
struct Watch {
    /// The current [`Phase`], as its index in [`Phase::ALL`].
    phase: AtomicU8,
    /// Every download so far, in order.
    reads: Mutex<Vec<Read>>,
    /// Set to stop the reader after its current download.
    stop: AtomicBool,
}

impl Watch {
    /// The current phase.
    fn phase(&self) -> Phase {
        Phase::ALL[usize::from(self.phase.load(Ordering::SeqCst))]
    }

    /// Moves the trial to `phase`.
    fn enter(&self, phase: Phase) {
        self.phase.store(phase as u8, Ordering::SeqCst);
    }

    /// Waits until a download that was requested in `phase` has returned, so that every phase
    /// is seen by at least one whole download; fails after [`STEP_LIMIT`].
    async fn await_read_in(&self, phase: Phase) -> Result<(), String> {
        let deadline = Instant::now() + STEP_LIMIT;
        loop {
            let done = self
                .reads
                .lock()
                .unwrap()
                .iter()
                .any(|read| read.started == phase);
            if done {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!("no download completed in phase {phase:?}"));
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
}

/// Downloads `name` over and over until told to stop, recording what each download returned
/// and the phases it spanned.
async fn read_repeatedly(
    server: SocketAddr,
    name: String,
    v1: Bytes,
    v2: Bytes,
    watch: Arc<Watch>,
) {
    let client = Client::default();
    while !watch.stop.load(Ordering::SeqCst) {
        let started = watch.phase();
        let result = client.get(server, &name).await;
        let ended = watch.phase();
        let seen = match result {
            Ok(got) if got == v1 => Seen::V1,
            Ok(got) if got == v2 => Seen::V2,
            Ok(got) => Seen::Torn(describe_torn(&got, &v1, &v2)),
            Err(e) => Seen::Failed(e.to_string()),
        };
        watch.reads.lock().unwrap().push(Read {
            started,
            ended,
            seen,
        });
        tokio::time::sleep(READ_PAUSE).await;
    }
}

/// Says how `got` relates to the two versions, for a failure message.
fn describe_torn(got: &[u8], v1: &[u8], v2: &[u8]) -> String {
    let relation = if v2.starts_with(got) {
        "a prefix of v2"
    } else if v1.starts_with(got) {
        "a prefix of v1"
    } else {
        "neither a prefix of v1 nor of v2"
    };
    format!(
        "{} bytes, {relation} (v1 {} bytes, v2 {} bytes)",
        got.len(),
        v1.len(),
        v2.len()
    )
}

/// Checks one trial's downloads: each whole v1 or v2; v2 only once its complete upload had
/// begun; only v2 once its final block was acknowledged; never v1 after v2.
fn check_reads(reads: &[Read]) -> Result<(), String> {
    let mut saw_v2 = false;
    for (index, read) in reads.iter().enumerate() {
        let at = format!("download {index} ({:?} -> {:?})", read.started, read.ended);
        match &read.seen {
            Seen::Failed(e) => return Err(format!("{at} failed: {e}")),
            Seen::Torn(what) => return Err(format!("{at} returned neither version: {what}")),
            Seen::V2 if read.ended < Phase::Replacing => {
                return Err(format!("{at} returned v2 before a complete v2 was sent"));
            }
            Seen::V2 => saw_v2 = true,
            Seen::V1 if saw_v2 => return Err(format!("{at} returned v1 after v2 was seen")),
            Seen::V1 if read.started >= Phase::Replaced => {
                return Err(format!(
                    "{at} returned v1 after v2's final block was acknowledged"
                ));
            }
            Seen::V1 => {}
        }
    }
    Ok(())
}

/// Recognizable contents: a line naming the version and the file, then pseudo-random bytes
/// seeded by both, `len` bytes in all.
fn versioned(label: &str, name: &str, seed: u64, len: usize) -> Bytes {
    let mut contents = format!("{label} of {name}\n").into_bytes();
    let rest = len.saturating_sub(contents.len());
    contents.extend_from_slice(&pattern(rest, seed));
    contents.truncate(len);
    Bytes::from(contents)
}

/// v1 (4 blocks) and v2 (9 blocks) of trial `index`: different lengths, neither a multiple of
/// the block size, so that each ends with a short block.
fn versions(name: &str, index: usize) -> (Bytes, Bytes) {
    let jitter = index % 50;
    let v1 = versioned("v1", name, 2 * index as u64, 3 * BLOCK + 100 + jitter);
    let v2 = versioned("v2", name, 2 * index as u64 + 1, 8 * BLOCK + 200 + jitter);
    (v1, v2)
}

/// DATA block `block` (from 1) of `contents`.
fn block_of(contents: &[u8], block: usize) -> &[u8] {
    let start = (block - 1) * BLOCK;
    &contents[start..(start + BLOCK).min(contents.len())]
}

/// What the raw uploader sends in one lock-step exchange.
#[derive(Debug, Clone, Copy)]
enum Step<'a> {
    /// A write request for this name, answered by ACK 0.
    Request(&'a str),
    /// DATA `block`, answered by ACK `block`.
    Data(u16, &'a [u8]),
}

/// Sends `step` and waits for its ACK, resending on silence like a real client. `Err(Some)`
/// carries any other answer, `Err(None)` means the server never answered.
async fn exchange(client: &mut RawClient, step: Step<'_>) -> Result<(), Option<Reply>> {
    let expected = match step {
        Step::Request(_) => 0,
        Step::Data(block, _) => block,
    };
    for _ in 0..=CLIENT_RESENDS {
        match step {
            Step::Request(name) => client.send_wrq(name, Mode::Octet, &[]).await,
            Step::Data(block, data) => client.send(&Packet::Data { block, data }).await,
        }
        loop {
            match client.recv_within(CLIENT_WAIT).await {
                None => break,
                Some(Reply::Ack { block }) if block == expected => return Ok(()),
                // The answer to an earlier resend.
                Some(Reply::Ack { block }) if block < expected => {}
                Some(other) => return Err(Some(other)),
            }
        }
    }
    Err(None)
}

/// Like [`exchange`], with the failure described for a trial report.
async fn exchange_or_fail(client: &mut RawClient, step: Step<'_>) -> Result<(), String> {
    exchange(client, step).await.map_err(|answer| match answer {
        Some(reply) => format!("{step:?} answered with {reply:?}"),
        None => format!("{step:?} never answered"),
    })
}

/// Asks to write `name` from a fresh socket until the server accepts (it has let go of the
/// name: the abandoned upload is gone); returns the accepted client and how long that took.
/// Only "another upload of this file is in progress" counts as not yet.
async fn await_name_free(server: SocketAddr, name: &str) -> Result<(RawClient, Duration), String> {
    let started = Instant::now();
    loop {
        let mut probe = RawClient::bind(server).await;
        match exchange(&mut probe, Step::Request(name)).await {
            Ok(()) => return Ok((probe, started.elapsed())),
            Err(Some(Reply::Error {
                code: ErrorCode::AccessViolation,
                message,
            })) if message.contains("in progress") => {}
            Err(answer) => return Err(format!("a probing write request got {answer:?}")),
        }
        if started.elapsed() >= STEP_LIMIT {
            return Err(format!(
                "the abandoned upload still held the name after {STEP_LIMIT:?} (silence budget \
                 {:?})",
                silence_budget()
            ));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// What one abort trial measured.
#[derive(Debug, Clone, Copy)]
struct TrialReport {
    /// How the client abandoned the upload.
    kind: AbortKind,
    /// From the abort until the server accepted a new upload of the name.
    freed_after: Duration,
    /// Downloads in all.
    reads: usize,
    /// Downloads requested while the abandoned upload was in flight or being reaped.
    reads_during_abort: usize,
}

/// One trial: v1 stored as `name`; a reader running throughout; v2 uploaded up to `point` and
/// abandoned by `kind`; then, once the name is free, v1 checked and v2 uploaded whole.
async fn abort_trial(
    server: SocketAddr,
    store: MemoryStore,
    point: AbortPoint,
    kind: AbortKind,
    index: usize,
) -> Result<TrialReport, String> {
    let name = format!("{point:?}-{kind:?}-{index}.bin");
    let (v1, v2) = versions(&name, index);
    store.insert(name.clone(), v1.clone());
    let watch = Arc::new(Watch::default());
    let reader = tokio::spawn(read_repeatedly(
        server,
        name.clone(),
        v1.clone(),
        v2.clone(),
        Arc::clone(&watch),
    ));
    let result = abandon_then_replace(server, &store, &name, (&v1, &v2), point, kind, &watch).await;
    watch.stop.store(true, Ordering::SeqCst);
    reader
        .await
        .map_err(|e| format!("{name}: reader task failed: {e}"))?;
    let freed_after = result.map_err(|e| format!("{name}: {e}"))?;
    let reads = watch.reads.lock().unwrap().clone();
    check_reads(&reads).map_err(|e| format!("{name}: {e}"))?;
    Ok(TrialReport {
        kind,
        freed_after,
        reads: reads.len(),
        reads_during_abort: reads
            .iter()
            .filter(|r| matches!(r.started, Phase::InFlight | Phase::Abandoned))
            .count(),
    })
}

/// The uploader's side of [`abort_trial`]; returns how long the name stayed taken after the
/// abort.
async fn abandon_then_replace(
    server: SocketAddr,
    store: &MemoryStore,
    name: &str,
    (v1, v2): (&Bytes, &Bytes),
    point: AbortPoint,
    kind: AbortKind,
    watch: &Watch,
) -> Result<Duration, String> {
    watch.await_read_in(Phase::Before).await?;

    let mut uploader = RawClient::bind(server).await;
    exchange_or_fail(&mut uploader, Step::Request(name)).await?;
    watch.enter(Phase::InFlight);
    for block in 1..=point.blocks_sent(v2) {
        tokio::time::sleep(BLOCK_PACE).await;
        let data = block_of(v2, block);
        exchange_or_fail(&mut uploader, Step::Data(block as u16, data)).await?;
    }
    // A whole download while the server holds the partial upload.
    watch.await_read_in(Phase::InFlight).await?;
    if kind == AbortKind::ClientError {
        uploader
            .send(&Packet::Error {
                code: ErrorCode::NotDefined,
                message: "client aborted",
            })
            .await;
    }
    drop(uploader);
    watch.enter(Phase::Abandoned);
    let abandoned_at = Instant::now();
    watch.await_read_in(Phase::Abandoned).await?;

    let (mut replacer, _) = await_name_free(server, name).await?;
    let freed_after = abandoned_at.elapsed();
    match store.get(name) {
        Some(stored) if stored == *v1 => {}
        Some(stored) => {
            return Err(format!(
                "after the abandoned upload the store holds {}",
                describe_torn(&stored, v1, v2)
            ));
        }
        None => return Err("after the abandoned upload the file is gone".to_owned()),
    }

    watch.enter(Phase::Replacing);
    let blocks = v2.len() / BLOCK + 1;
    for block in 1..=blocks {
        tokio::time::sleep(BLOCK_PACE).await;
        if block == blocks / 2 {
            watch.await_read_in(Phase::Replacing).await?;
        }
        let data = block_of(v2, block);
        exchange_or_fail(&mut replacer, Step::Data(block as u16, data)).await?;
    }
    watch.enter(Phase::Replaced);
    if store.get(name).as_ref() != Some(v2) {
        return Err("the completed v2 is not what the store holds".to_owned());
    }
    watch.await_read_in(Phase::Replaced).await?;
    Ok(freed_after)
}

/// Runs the abort trials at `point` (half killed, half ERROR), concurrently on one server, and
/// fails with every failed trial's reason.
async fn abandoned_uploads_leave_v1_whole(point: AbortPoint) {
    let per_kind = if full_size() { 100 } else { 5 };
    let server = TestServer::start(
        MemoryStore::default(),
        reaping_config(),
        memtftpd_tests::test_server_config(),
    );
    let started = Instant::now();
    let permits = Arc::new(Semaphore::new(CONCURRENT_TRIALS));
    let mut trials = JoinSet::new();
    for index in 0..2 * per_kind {
        let kind = if index % 2 == 0 {
            AbortKind::Killed
        } else {
            AbortKind::ClientError
        };
        let (addr, store, permits) = (server.addr(), server.store().clone(), permits.clone());
        trials.spawn(async move {
            let _permit = permits.acquire_owned().await.unwrap();
            abort_trial(addr, store, point, kind, index).await
        });
    }
    let mut reports = Vec::new();
    let mut failures = Vec::new();
    while let Some(joined) = trials.join_next().await {
        match joined.expect("trial task") {
            Ok(report) => reports.push(report),
            Err(failure) => failures.push(failure),
        }
    }
    let elapsed = started.elapsed();
    assert!(
        failures.is_empty(),
        "{} of {} trials at {point:?} failed; first ones:\n{}",
        failures.len(),
        2 * per_kind,
        failures
            .iter()
            .take(10)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(
        server.wait_idle(Duration::from_secs(5)).await,
        "sessions still live after every trial ended: {:?}",
        server.stats().snapshot()
    );
    for kind in [AbortKind::Killed, AbortKind::ClientError] {
        let of_kind: Vec<&TrialReport> = reports.iter().filter(|r| r.kind == kind).collect();
        assert_eq!(of_kind.len(), per_kind);
        eprintln!(
            "nothing lost, {point:?}, {kind:?}: {} trials, v1 kept and then replaced whole in \
             each; name freed after the abort in {}; {} downloads ({} while the abandoned \
             upload was live), all whole",
            of_kind.len(),
            Spread(of_kind.iter().map(|r| r.freed_after).collect()),
            of_kind.iter().map(|r| r.reads).sum::<usize>(),
            of_kind.iter().map(|r| r.reads_during_abort).sum::<usize>(),
        );
    }
    eprintln!("nothing lost, {point:?}: {elapsed:.2?} in all");
    server.shutdown().await;
}

/// Durations shown as median and maximum.
struct Spread(Vec<Duration>);

impl fmt::Display for Spread {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut sorted = self.0.clone();
        sorted.sort();
        match (sorted.get(sorted.len() / 2), sorted.last()) {
            (Some(median), Some(max)) => write!(f, "median {median:.0?}, max {max:.0?}"),
            _ => write!(f, "(none)"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_abandoned_right_after_its_request_leaves_v1_whole() {
    abandoned_uploads_leave_v1_whole(AbortPoint::AfterRequest).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_abandoned_midway_leaves_v1_whole() {
    abandoned_uploads_leave_v1_whole(AbortPoint::Midway).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_abandoned_before_its_last_block_leaves_v1_whole() {
    abandoned_uploads_leave_v1_whole(AbortPoint::BeforeLastBlock).await;
}

/// Whether `result` is the refusal the one-writer rule gives: ERROR 2, upload in progress.
fn is_in_progress_refusal(result: &Result<(), ClientError>) -> bool {
    matches!(
        result,
        Err(ClientError::Server { code: ErrorCode::AccessViolation, message })
            if message.contains("in progress")
    )
}

/// One writer per name: with sixteen slow uploads sent together, the first accepted holds the
/// name for its whole transfer (20 blocks, 25 ms before each packet), so every other request
/// arrives while it is in progress and is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixteen_concurrent_uploads_to_one_name_leave_exactly_one_uploaders_contents() {
    const UPLOADERS: usize = 16;
    const NAME: &str = "contested.bin";
    let mut config = Config::default();
    config.dally = Duration::from_millis(100);
    let server = TestServer::start(
        MemoryStore::default(),
        config,
        memtftpd_tests::test_server_config(),
    );
    let v0 = versioned("v0", NAME, 1_000, 3 * BLOCK + 7);
    server.store().insert(NAME, v0.clone());
    let contents: Vec<Bytes> = (0..UPLOADERS)
        .map(|i| {
            versioned(
                &format!("uploader {i}"),
                NAME,
                2_000 + i as u64,
                20 * BLOCK + 37 * i,
            )
        })
        .collect();
    let slow = Client::new({
        let mut config = ClientConfig::default();
        config.send_delay = Duration::from_millis(25);
        config
    });

    // A reader throughout: every download is v0 or one uploader's contents, whole.
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let (addr, stop) = (server.addr(), Arc::clone(&stop));
        tokio::spawn(async move {
            let client = Client::default();
            let mut seen = Vec::new();
            while !stop.load(Ordering::SeqCst) {
                seen.push(client.get(addr, NAME).await.map_err(|e| e.to_string()));
                tokio::time::sleep(READ_PAUSE).await;
            }
            seen
        })
    };

    let start_together = Arc::new(Barrier::new(UPLOADERS));
    let mut uploads = JoinSet::new();
    for (i, contents) in contents.iter().cloned().enumerate() {
        let (slow, addr, start_together) = (slow.clone(), server.addr(), start_together.clone());
        uploads.spawn(async move {
            start_together.wait().await;
            let result = slow.put(addr, NAME, contents).await;
            (i, result)
        });
    }
    let mut accepted = Vec::new();
    let mut refused = 0;
    while let Some(joined) = uploads.join_next().await {
        let (i, result) = joined.expect("upload task");
        match result {
            Ok(()) => accepted.push(i),
            ref refusal if is_in_progress_refusal(refusal) => refused += 1,
            Err(e) => panic!("uploader {i} neither completed nor was refused as busy: {e}"),
        }
    }
    stop.store(true, Ordering::SeqCst);
    let reads = reader.await.expect("reader task");

    assert_eq!(
        accepted.len(),
        1,
        "one writer per name: exactly one upload is accepted ({refused} refused)"
    );
    let winner = accepted[0];
    let stored = server.store().get(NAME).expect("the file is stored");
    let holder = contents.iter().position(|c| *c == stored);
    assert_eq!(
        holder,
        Some(winner),
        "the store holds {} bytes: not the accepted uploader {winner}'s contents",
        stored.len()
    );
    let mut saw_new = false;
    for (index, read) in reads.iter().enumerate() {
        let got = read
            .as_ref()
            .unwrap_or_else(|e| panic!("download {index} failed: {e}"));
        if *got == v0 {
            assert!(
                !saw_new,
                "download {index} returned v0 after the new version"
            );
        } else {
            assert!(
                *got == contents[winner],
                "download {index} returned {} bytes: neither v0 nor the winner's contents",
                got.len()
            );
            saw_new = true;
        }
    }
    assert!(!reads.is_empty(), "the reader completed no download");
    eprintln!(
        "nothing lost, 16 uploads to one name: uploader {winner} stored, {refused} refused with \
         ERROR 2; {} downloads, all v0 or the winner's, whole",
        reads.len()
    );
    assert!(server.wait_idle(Duration::from_secs(5)).await);
    server.shutdown().await;
}

/// One live transfer of the shutdown test.
#[derive(Debug, Clone)]
struct Live {
    /// Upload (true) or download.
    upload: bool,
    /// Too long to finish within the grace period: must be cancelled.
    long: bool,
    /// The remote name.
    name: String,
    /// What is downloaded, or uploaded.
    contents: Bytes,
    /// For an upload: what the name held before (preloaded), if anything.
    previous: Option<Bytes>,
}

/// A shutdown with live transfers: the grace period lets short ones finish, the long ones are
/// cancelled with ERROR 0, and no upload that did not complete is visible afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shutdown_ends_live_transfers_whole_or_with_an_error_and_publishes_no_partial_upload() {
    let transfers = if full_size() { 100 } else { 30 };
    // 20 ms before every packet: a short transfer (13 blocks) needs about 280 ms, a long one
    // (151 blocks) over 3 s.
    let send_delay = Duration::from_millis(20);
    let grace = Duration::from_millis(800);
    let cancel_wait = Duration::from_secs(1);
    let server = TestServer::start(
        MemoryStore::default(),
        Config::default(),
        ServerConfig::default()
            .with_shutdown_grace(grace)
            .with_cancel_wait(cancel_wait),
    );
    let live: Vec<Live> = (0..transfers)
        .map(|i| {
            let upload = i % 2 == 1;
            let long = i % 3 != 0;
            let name = format!("live-{i}.bin");
            let blocks = if long { 150 } else { 12 };
            let contents = versioned("new", &name, 3_000 + i as u64, blocks * BLOCK + 99);
            // Half the uploads replace a file, half create one.
            let previous = (upload && i % 4 == 1)
                .then(|| versioned("old", &name, 4_000 + i as u64, 5 * BLOCK + 1));
            let preload = if upload {
                previous.clone()
            } else {
                Some(contents.clone())
            };
            if let Some(preload) = preload {
                server.store().insert(name.clone(), preload);
            }
            Live {
                upload,
                long,
                name,
                contents,
                previous,
            }
        })
        .collect();
    let slow = Client::new({
        let mut config = ClientConfig::default();
        config.send_delay = send_delay;
        config
    });
    let mut clients = JoinSet::new();
    for (i, transfer) in live.iter().cloned().enumerate() {
        let (slow, addr) = (slow.clone(), server.addr());
        clients.spawn(async move {
            let result = if transfer.upload {
                slow.put(addr, &transfer.name, transfer.contents.clone())
                    .await
                    .map(|()| None)
            } else {
                slow.get(addr, &transfer.name).await.map(Some)
            };
            (i, result, Instant::now())
        });
    }
    // Every transfer under way before the shutdown starts.
    let opened = tokio::time::timeout(Duration::from_secs(5), async {
        while server.stats().snapshot().sessions_opened < transfers as u64 {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    })
    .await;
    assert!(opened.is_ok(), "not every transfer started within 5 s");
    let live_at_shutdown = server.stats().snapshot().sessions_live();
    assert_eq!(
        live_at_shutdown, transfers as u64,
        "a transfer ended before the shutdown began"
    );

    let store = server.store().clone();
    let shutdown_started = Instant::now();
    tokio::time::timeout(
        grace + cancel_wait + Duration::from_secs(5),
        server.shutdown(),
    )
    .await
    .expect("the server stops within its grace period and cancel wait");
    let shutdown_took = shutdown_started.elapsed();

    let (mut completed, mut cancelled) = (0, 0);
    let mut last_end = Duration::ZERO;
    let mut failures = Vec::new();
    let all_ended = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(joined) = clients.join_next().await {
            let (i, result, ended) = joined.expect("client task");
            last_end = last_end.max(ended.saturating_duration_since(shutdown_started));
            let transfer = &live[i];
            let stored = store.get(&transfer.name);
            let what = format!(
                "{} {} ({})",
                if transfer.upload {
                    "upload"
                } else {
                    "download"
                },
                transfer.name,
                if transfer.long { "long" } else { "short" }
            );
            match result {
                Ok(_) if transfer.long => {
                    failures.push(format!("{what} completed, past the grace period"));
                }
                Ok(Some(downloaded)) if downloaded != transfer.contents => {
                    failures.push(format!(
                        "{what} completed with {} bytes, not the file's {}",
                        downloaded.len(),
                        transfer.contents.len()
                    ));
                }
                Ok(None) if stored.as_ref() != Some(&transfer.contents) => {
                    failures.push(format!("{what} completed but the store does not hold it"));
                }
                Ok(_) => completed += 1,
                Err(ClientError::Server {
                    code: ErrorCode::NotDefined,
                    message,
                }) if message.contains("shutting down") => {
                    cancelled += 1;
                    if transfer.upload && stored != transfer.previous {
                        failures.push(format!(
                            "{what} was cancelled, yet the store holds {:?} bytes where it \
                             held {:?}",
                            stored.map(|s| s.len()),
                            transfer.previous.as_ref().map(Bytes::len)
                        ));
                    }
                }
                Err(e) => failures.push(format!("{what} neither completed nor got ERROR 0: {e}")),
            }
        }
    })
    .await;
    assert!(
        all_ended.is_ok(),
        "clients still running 10 s after the shutdown"
    );
    assert!(
        failures.is_empty(),
        "{} of {transfers} transfers went wrong:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert_eq!(completed + cancelled, transfers);
    let long = live.iter().filter(|t| t.long).count();
    assert_eq!(cancelled, long, "exactly the long transfers are cancelled");
    assert!(
        last_end < grace + cancel_wait + Duration::from_secs(1),
        "the last client ended {last_end:?} after the shutdown began: it waited out its own \
         timeouts instead of getting an ERROR"
    );
    eprintln!(
        "nothing lost, shutdown: {transfers} live ({} uploads); {completed} completed in the \
         {grace:?} grace period, {cancelled} cancelled with ERROR 0; server stopped in \
         {shutdown_took:.0?}, last client ended {last_end:.0?} after the shutdown began",
        live.iter().filter(|t| t.upload).count()
    );
}
