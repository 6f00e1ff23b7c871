//! Slow and silent clients: hundreds of downloads that answer just before each timeout or
//! stop answering part-way, and the wall-clock cap for a client that would answer slowly
//! forever.
//!
//! Issue 7: "500 clients that ACK just before each timeout, or go silent mid-transfer, are
//! reaped within timeout x (retries + 1); a fresh client is served in under 1 s throughout;
//! live sessions return to 0. A per-transfer wall-clock cap exists (configurable)."
//!
//! The server runs with a 250 ms retry timeout and 3 retries, so a transfer may be silent for
//! [`SILENCE_LIMIT`] (1 s) before it is given up. Each client records when it last sent
//! anything, and from then on the server owes it that second of patience: no less (a session
//! reaped earlier would cut off a client still within its rights) and not much more (a session
//! reaped late is a leak). The server sends nothing when it gives up, so a session's end is
//! read from the server's count of live sessions, sampled every few milliseconds. Every sample
//! must show at least as many sessions as there are clients past their first DATA and silent
//! for less than [`SILENCE_LIMIT`], and at most as many as there are clients silent for less
//! than [`SILENCE_LIMIT`] + [`REAP_SLACK`] (plus the fresh client's, below). A count cannot
//! tell sessions apart (one late session can hide while other clients' limits run out), so
//! the clients come in four [`COHORTS`] whose limits run out in separate bands: between bands
//! the count must be down to the later cohorts' (and the fresh client's), which catches a
//! whole cohort reaped late.
//! Then the live count must be 0 by the last client's silence limit + [`REAP_SLACK`]: one
//! bounded wait, which catches any session that outlives them all. The machine is shared:
//! however long it held the whole process off the CPU ([`StallWatch`]) is added to the slack,
//! and printed.
//!
//! The retransmission timer may resend sooner than the configured timeout (an adaptive timer),
//! so nothing here counts resends or times them: a client skips the resends it sees and checks
//! only that, while it answers, every ACK is answered with the next block, byte for byte.
//! Meanwhile a fresh client downloads a small file again and again; each download must be
//! byte-exact and take under [`FRESH_CLIENT_LIMIT`].
//!
//! The wall-clock cap ([`Config::max_transfer_time`]) is checked with a client that ACKs just
//! before every timeout and would never stop: the ERROR 0 must come at the cap, for two caps.
//!
//! The figures are printed (run with `--nocapture`); `MEMTFTPD_FULL_SIZE=1` runs 500 clients
//! instead of 100.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::Bytes;
use memtftpd_tests::hostile::{Probe, Seen, raw_packet};
use memtftpd_tests::{
    Reply, TestServer, assert_same_bytes, full_size, pattern, test_server_config,
};
use tftp_handler::{Config, ErrorCode, MemoryStore, Packet};
use tokio::task::JoinSet;
use tokio::time::{Instant, MissedTickBehavior, sleep_until};
use tokio_util::sync::CancellationToken;

/// Where every client runs.
const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// The server's retry timeout: short, so that giving up takes a second rather than six.
const RETRY_TIMEOUT: Duration = Duration::from_millis(250);

/// Timeouts in a row before the server gives up.
const MAX_RETRIES: u32 = 3;

/// The silence a transfer is allowed: RETRY_TIMEOUT x (MAX_RETRIES + 1). Not before it has
/// passed may a session be reaped.
const SILENCE_LIMIT: Duration = RETRY_TIMEOUT.saturating_mul(MAX_RETRIES + 1);

/// How late after [`SILENCE_LIMIT`] a session may still be live: half a retry timeout, so a
/// server that waited one timeout too many fails, while timer granularity (1 ms), the
/// sampling period ([`SAMPLE_EVERY`]) and scheduling hundreds of tasks on a loaded 2-core
/// machine (tens of milliseconds at worst) fit several times over. Whatever the machine
/// itself stalls the process is added (see [`StallWatch`]).
const REAP_SLACK: Duration = Duration::from_millis(125);

/// How long a slow client waits after each DATA before acknowledging it: just before the
/// server's timeout.
const SLOW_ACK_DELAY: Duration = Duration::from_millis(200);

/// The longest a fresh client's download may take while the slow and silent clients run.
const FRESH_CLIENT_LIMIT: Duration = Duration::from_secs(1);

/// How often the live-session count is read.
const SAMPLE_EVERY: Duration = Duration::from_millis(5);

/// Sessions of the fresh client that may be live at a sample besides the slow and silent
/// clients': the running download, and the one before it if its end is still being counted.
const FRESH_SESSIONS: u64 = 2;

/// How long after the fresh client's download ends its session may still be counted live,
/// for a figure in the report only (the server handles the final ACK within microseconds
/// when idle; this allows for a busy moment).
const FRESH_CLOSE_LAG: Duration = Duration::from_millis(5);

/// Blocks of 512 bytes in the slow clients' file (the last one short): more than any client
/// acknowledges, so that no transfer completes and every session must be reaped.
const FILE_BLOCKS: u16 = 41;

/// The slow and silent clients' file.
const FILE: &str = "slow.bin";

/// The fresh client's file.
const SMALL_FILE: &str = "small.bin";

/// Bytes per DATA block (no `blksize` is asked for).
const BLOCK: usize = 512;

/// How many slow and silent clients: the figure of issue 7 with `MEMTFTPD_FULL_SIZE=1`,
/// otherwise a size that keeps the test to a few seconds on a 2-core machine.
fn client_count() -> usize {
    if full_size() { 500 } else { 100 }
}

/// A thread outside the async runtime that sleeps a millisecond at a time and keeps the
/// longest it overslept: how long the machine (shared with other builds and tests) kept this
/// process off the CPU at worst. A session reaped late during such a stall was late because
/// nothing ran, the server included; so the bounds below grow by the stall seen. Delays
/// inside the tokio runtime (a server task hogging a worker) do not show here, and are not
/// forgiven.
#[derive(Debug)]
struct StallWatch {
    /// The longest oversleep so far, in nanoseconds.
    longest_ns: Arc<AtomicU64>,
    /// Set to end the thread.
    stop: Arc<AtomicBool>,
    /// The thread.
    thread: Option<JoinHandle<()>>,
}

impl StallWatch {
    /// Starts watching (for at most two minutes).
    fn start() -> Self {
        let longest_ns = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = std::thread::spawn({
            let (longest_ns, stop) = (Arc::clone(&longest_ns), Arc::clone(&stop));
            move || {
                const NAP: Duration = Duration::from_millis(1);
                let give_up = std::time::Instant::now() + Duration::from_secs(120);
                while !stop.load(Ordering::Relaxed) && std::time::Instant::now() < give_up {
                    let before = std::time::Instant::now();
                    std::thread::sleep(NAP);
                    let overslept = before.elapsed().saturating_sub(NAP);
                    let ns = u64::try_from(overslept.as_nanos()).unwrap_or(u64::MAX);
                    longest_ns.fetch_max(ns, Ordering::Relaxed);
                }
            }
        });
        Self {
            longest_ns,
            stop,
            thread: Some(thread),
        }
    }

    /// The longest stall seen so far.
    fn longest(&self) -> Duration {
        Duration::from_nanos(self.longest_ns.load(Ordering::Relaxed))
    }

    /// Stops watching; returns the longest stall seen.
    fn finish(mut self) -> Duration {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            thread.join().expect("the stall watch thread panicked");
        }
        self.longest()
    }
}

impl Drop for StallWatch {
    fn drop(&mut self) {
        // A failing test drops the watch without `finish`: end the thread anyway.
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// How one client behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Behaviour {
    /// Blocks it acknowledges before it goes silent (0: silent from the first DATA on).
    acks: u16,
    /// How long after each DATA it sends the ACK.
    ack_delay: Duration,
}

/// A group of clients that behave alike and start together.
#[derive(Debug, Clone, Copy)]
struct Cohort {
    /// What each does.
    behaviour: Behaviour,
    /// When the first of them starts, from the beginning of the run; the others follow
    /// within [`START_WINDOW`].
    start: Duration,
}

/// Clients of one cohort start within this long of each other.
const START_WINDOW: Duration = Duration::from_millis(50);

/// The cohorts, client `i` in `COHORTS[i % 4]`. A quarter never ACK (the server's first reply
/// goes unanswered); half ACK just before each timeout, for four or for two blocks; a quarter
/// ACK promptly up to the middle of the file. Then each goes silent. The start times put the
/// moments their silence limits run out in separate bands (about 1.0, 1.9, 1.6 and 1.3 s
/// into the run), each some 200 ms clear of the next: in those gaps the live count must be
/// down to the later cohorts' (and the fresh client's), so a whole cohort reaped late cannot
/// hide behind another's sessions being reaped on time.
const COHORTS: [Cohort; 4] = [
    Cohort {
        behaviour: Behaviour {
            acks: 0,
            ack_delay: Duration::ZERO,
        },
        start: Duration::ZERO,
    },
    Cohort {
        behaviour: Behaviour {
            acks: 4,
            ack_delay: SLOW_ACK_DELAY,
        },
        start: Duration::from_millis(100),
    },
    Cohort {
        behaviour: Behaviour {
            acks: 2,
            ack_delay: SLOW_ACK_DELAY,
        },
        start: Duration::from_millis(200),
    },
    Cohort {
        behaviour: Behaviour {
            acks: FILE_BLOCKS / 2,
            ack_delay: Duration::ZERO,
        },
        start: Duration::from_millis(300),
    },
];

/// Client `i`'s cohort (an index into [`COHORTS`]) and start time, of `clients`, in a run
/// that began at `began`.
fn schedule(i: usize, clients: usize, began: Instant) -> (usize, Instant) {
    let cohort = i % COHORTS.len();
    let within = (i / COHORTS.len()) as f64 / clients.div_ceil(COHORTS.len()) as f64;
    (
        cohort,
        began + COHORTS[cohort].start + START_WINDOW.mul_f64(within),
    )
}

/// Why a client stopped hearing DATA.
#[derive(Debug)]
enum Stop {
    /// The server sent an ERROR.
    Error {
        /// When it arrived.
        at: Instant,
        /// Its code.
        code: ErrorCode,
        /// Its message.
        message: String,
    },
    /// Nothing arrived in the time allowed.
    Silence,
}

/// A download driven by hand over a bare socket: the test decides when each ACK goes out.
#[derive(Debug)]
struct SlowPeer {
    /// The client's socket, kept open until the test ends, so that resends to a silent
    /// client are not answered with ICMP port unreachable.
    socket: Probe,
    /// The server's address (it answers from there).
    server: SocketAddr,
    /// The file, to check each block against.
    contents: Bytes,
    /// Resends of a block already received (early timers, or resends crossing an ACK).
    duplicates: u32,
}

impl SlowPeer {
    /// A peer on a fresh port of `127.0.0.1`, downloading `contents` from `server`.
    async fn bind(server: SocketAddr, contents: Bytes) -> Self {
        // Big enough for a 516-byte DATA; hundreds of 64 KiB buffers would be waste.
        let socket = Probe::with_buffer(LOCALHOST, server, 1_024).await;
        Self {
            socket,
            server,
            contents,
            duplicates: 0,
        }
    }

    /// Sends the read request for `name`; returns the time just before sending.
    async fn request(&self, name: &str) -> Instant {
        let sent = Instant::now();
        self.socket
            .send(&raw_packet(1, &[name.as_bytes(), b"octet"]))
            .await;
        sent
    }

    /// The next datagram within `until`, checked to come from the server: `None` when none
    /// came in time.
    async fn recv_until(&mut self, until: Instant) -> Option<(Instant, Seen)> {
        let received = self
            .socket
            .recv_within(until.saturating_duration_since(Instant::now()))
            .await?;
        let at = Instant::now();
        assert_eq!(
            received.from, self.server,
            "a datagram from elsewhere: {received:?}"
        );
        Some((at, received.packet))
    }

    /// Handles a datagram that is not the block waited for: a resend of block `resent` is
    /// counted, an ERROR stops the transfer, anything else fails the test.
    fn other(&mut self, at: Instant, packet: Seen, resent: u16) -> Result<(), Stop> {
        match packet {
            Seen::Reply(Reply::Data { block, .. }) if block == resent => {
                self.duplicates += 1;
                Ok(())
            }
            Seen::Reply(Reply::Error { code, message }) => Err(Stop::Error { at, code, message }),
            other => panic!("got {other:?} where only a resend of DATA {resent} may come"),
        }
    }

    /// Waits up to `wait` for DATA `block` (skipping resends of the one before), checks its
    /// bytes against the file, and returns when it arrived.
    async fn expect_data(&mut self, block: u16, wait: Duration) -> Result<Instant, Stop> {
        let until = Instant::now() + wait;
        // Each turn takes a datagram or ends at `until`.
        loop {
            let Some((at, packet)) = self.recv_until(until).await else {
                return Err(Stop::Silence);
            };
            match packet {
                Seen::Reply(Reply::Data { block: got, data }) if got == block => {
                    let start = (usize::from(block) - 1) * BLOCK;
                    let end = (start + BLOCK).min(self.contents.len());
                    assert_same_bytes(&data, &self.contents[start..end], &format!("DATA {block}"));
                    return Ok(at);
                }
                other => self.other(at, other, block - 1)?,
            }
        }
    }

    /// Listens until `at` (resends of `block` are fine, an ERROR stops), then acknowledges
    /// `block`; returns the time just before the ACK went out.
    async fn ack_at(&mut self, block: u16, at: Instant) -> Result<Instant, Stop> {
        // Each turn takes a datagram or ends at `at`.
        while let Some((received, packet)) = self.recv_until(at).await {
            self.other(received, packet, block)?;
        }
        let sent = Instant::now();
        self.socket.send(&Packet::Ack { block }.to_bytes()).await;
        Ok(sent)
    }
}

/// What one slow or silent client did.
#[derive(Debug)]
struct Record {
    /// Its cohort (an index into [`COHORTS`]).
    cohort: usize,
    /// When its first DATA arrived: from then on its session is known to be open.
    opened: Instant,
    /// Just before it last sent anything: its silence starts after this.
    last_sent: Instant,
    /// The client, with its socket still open.
    peer: SlowPeer,
}

impl Record {
    /// The earliest the server may reap this client's session.
    fn reap_from(&self) -> Instant {
        self.last_sent + SILENCE_LIMIT
    }

    /// How many datagrams reached the client after it fell silent (resends of the last block
    /// it took), drained from its socket; at most a thousand.
    async fn resends_after_silence(&mut self) -> usize {
        let mut count = 0;
        while count < 1_000 && self.peer.socket.recv_within(Duration::ZERO).await.is_some() {
            count += 1;
        }
        count
    }
}

/// Runs client `i` of `cohort`: starts at `start`, downloads as the cohort behaves, and goes
/// silent. Fails the test if the server stops serving it while it still answers.
async fn slow_or_silent_client(
    i: usize,
    cohort: usize,
    server: SocketAddr,
    contents: Bytes,
    start: Instant,
) -> Record {
    let behaviour = COHORTS[cohort].behaviour;
    sleep_until(start).await;
    let mut peer = SlowPeer::bind(server, contents).await;
    let mut last_sent = peer.request(FILE).await;
    let mut received = peer
        .expect_data(1, SILENCE_LIMIT)
        .await
        .unwrap_or_else(|stop| panic!("client {i} ({behaviour:?}): no DATA 1: {stop:?}"));
    let opened = received;
    for block in 1..=behaviour.acks {
        let answered = async {
            last_sent = peer.ack_at(block, received + behaviour.ack_delay).await?;
            // It answered within its limit, so the server owes it the next block now; a
            // whole silence limit to send it is generous.
            received = peer.expect_data(block + 1, SILENCE_LIMIT).await?;
            Ok::<_, Stop>(())
        };
        if let Err(stop) = answered.await {
            panic!(
                "client {i} ({behaviour:?}) was cut off after ACK {block}, {:?} after its last \
                 ACK, while it answered: {stop:?}",
                last_sent.elapsed()
            );
        }
    }
    Record {
        cohort,
        opened,
        last_sent,
        peer,
    }
}

/// One download of the fresh client.
#[derive(Debug, Clone, Copy)]
struct Download {
    /// Just before it started.
    start: Instant,
    /// Just after it ended.
    end: Instant,
}

impl Download {
    /// How long it took.
    fn took(&self) -> Duration {
        self.end - self.start
    }

    /// Whether its session may have been live at `sample`: the server counts the session
    /// closed a moment after the client has sent its final ACK, so `close_lag` is added.
    fn overlaps(&self, sample: &Sample, close_lag: Duration) -> bool {
        self.start <= sample.after && sample.before <= self.end + close_lag
    }
}

/// Downloads the small file as a fresh client, again and again until `stop` (and at most
/// a few thousand times), and returns the downloads. Fails the test on a download that fails
/// or differs.
async fn fresh_client(
    server: SocketAddr,
    contents: Bytes,
    stop: CancellationToken,
) -> Vec<Download> {
    const MAX_DOWNLOADS: usize = 5_000;
    let client = tftp_handler::Client::default();
    let mut downloads = Vec::new();
    while !stop.is_cancelled() && downloads.len() < MAX_DOWNLOADS {
        let start = Instant::now();
        let got = client.get(server, SMALL_FILE).await;
        let download = Download {
            start,
            end: Instant::now(),
        };
        let got = got.unwrap_or_else(|e| {
            panic!(
                "fresh download {} failed after {:?}: {e}",
                downloads.len(),
                download.took()
            )
        });
        assert_same_bytes(&got, &contents, "fresh download");
        downloads.push(download);
        // A pause, so that about half the samples fall between downloads (see
        // `Run::reap_lateness_between_fresh_downloads`).
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    downloads
}

/// One reading of the live-session count, with the times around it.
#[derive(Debug, Clone, Copy)]
struct Sample {
    /// Just before the counters were read.
    before: Instant,
    /// Just after.
    after: Instant,
    /// Live sessions.
    live: u64,
}

/// Reads the live-session count every [`SAMPLE_EVERY`] until `stop`, and once more after it
/// (so that the last sample follows whatever the caller saw), for at most a minute.
async fn sample_live(server: &TestServer, stop: CancellationToken) -> Vec<Sample> {
    let give_up = Instant::now() + Duration::from_secs(60);
    let mut tick = tokio::time::interval(SAMPLE_EVERY);
    // After a stall, one sample, not a burst of them.
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut samples = Vec::new();
    loop {
        let before = Instant::now();
        let live = server.stats().snapshot().sessions_live();
        samples.push(Sample {
            before,
            after: Instant::now(),
            live,
        });
        if stop.is_cancelled() || before >= give_up {
            return samples;
        }
        tokio::select! {
            () = stop.cancelled() => {}
            _ = tick.tick() => {}
        }
    }
}

/// Everything one run of the slow and silent clients produced.
#[derive(Debug)]
struct Run {
    /// When the first client was due to start.
    began: Instant,
    /// Each slow or silent client, in the order they finished answering.
    records: Vec<Record>,
    /// The fresh client's downloads.
    fresh: Vec<Download>,
    /// The live-session count over the run.
    samples: Vec<Sample>,
    /// When the last client last sent anything.
    last_silent: Instant,
    /// Whether live sessions reached 0 by `last_silent` + SILENCE_LIMIT + REAP_SLACK (+ the
    /// stall).
    idle: bool,
    /// When that was seen (or the deadline passed).
    idle_at: Instant,
    /// The longest the machine held the process up (see [`StallWatch`]).
    stall: Duration,
}

/// Starts `clients` slow or silent clients (in [`COHORTS`]) and the fresh client against
/// `server`, samples the live sessions throughout, and waits until the last session may be
/// reaped; then for live sessions to reach 0, up to [`REAP_SLACK`] (and any stall) more.
async fn run_slow_and_silent(
    server: &TestServer,
    clients: usize,
    contents: Bytes,
    small: Bytes,
) -> Run {
    let addr = server.addr();
    let watch = StallWatch::start();
    let began = Instant::now();
    let stop_fresh = CancellationToken::new();
    let fresh = tokio::spawn(fresh_client(addr, small, stop_fresh.clone()));
    let mut running = JoinSet::new();
    for i in 0..clients {
        let (cohort, start) = schedule(i, clients, began);
        running.spawn(slow_or_silent_client(
            i,
            cohort,
            addr,
            contents.clone(),
            start,
        ));
    }
    let stop_sampling = CancellationToken::new();
    let run = async {
        let mut records = Vec::with_capacity(clients);
        while let Some(joined) = running.join_next().await {
            records.push(joined.expect("a slow or silent client failed"));
        }
        let last_silent = records
            .iter()
            .map(|r| r.last_sent)
            .max()
            .expect("clients ran");
        // The fresh client keeps coming until the last session may be reaped.
        sleep_until(last_silent + SILENCE_LIMIT).await;
        stop_fresh.cancel();
        let downloads = fresh.await.expect("the fresh client failed");
        let idle = wait_idle_by(server, last_silent + SILENCE_LIMIT + REAP_SLACK, &watch).await;
        let idle_at = Instant::now();
        stop_sampling.cancel();
        (records, downloads, last_silent, idle, idle_at)
    };
    let (samples, (records, downloads, last_silent, idle, idle_at)) =
        tokio::join!(sample_live(server, stop_sampling.clone()), run);
    Run {
        began,
        records,
        fresh: downloads,
        samples,
        last_silent,
        idle,
        idle_at,
        stall: watch.finish(),
    }
}

/// Waits until no session is live, up to `deadline` plus the longest stall `watch` has seen
/// (checked again at the end, in case a stall came during the wait); returns whether that
/// happened.
async fn wait_idle_by(server: &TestServer, deadline: Instant, watch: &StallWatch) -> bool {
    let left = || (deadline + watch.longest()).saturating_duration_since(Instant::now());
    server.wait_idle(left()).await || server.wait_idle(left()).await
}

impl Run {
    /// Fails the test if a sample saw fewer live sessions than clients owed one: past their
    /// first DATA (so the session is open) and silent for less than [`SILENCE_LIMIT`]. The
    /// fresh client's sessions can only add to the count.
    fn check_none_reaped_early(&self) {
        for sample in &self.samples {
            let owed = self
                .records
                .iter()
                .filter(|r| r.opened <= sample.before && r.reap_from() > sample.after)
                .count() as u64;
            assert!(
                sample.live >= owed,
                "only {} sessions live {:?} into the run, while {owed} clients were within \
                 their {SILENCE_LIMIT:?} of silence: a session was reaped early",
                sample.live,
                sample.before - self.began
            );
        }
    }

    /// How long past its client's [`SILENCE_LIMIT`] a session was still live, at least,
    /// judging by the samples `samples` picks and taking `fresh` of the live sessions at each
    /// to be the fresh client's.
    ///
    /// With r_k the k-th latest time a client's silence limit ran out, a sample at t that
    /// saw k + `fresh` sessions holds k of the slow and silent clients'; at most k - 1
    /// clients have a limit after r_k, so one of those k sessions is live t - r_k (or more)
    /// past its limit.
    fn reap_lateness<'a>(&self, samples: impl Iterator<Item = &'a Sample>, fresh: u64) -> Duration {
        let mut latest_first: Vec<Instant> = self.records.iter().map(Record::reap_from).collect();
        latest_first.sort_by(|a, b| b.cmp(a));
        samples
            .filter_map(|s| {
                let k = usize::try_from(s.live.saturating_sub(fresh)).ok()?;
                let r_k = *latest_first.get(k.checked_sub(1)?)?;
                Some(s.before.saturating_duration_since(r_k))
            })
            .max()
            .unwrap_or_default()
    }

    /// When, after the last client fell silent, the last session ended according to the
    /// samples: after the last sample that saw one live and by the next. Precise to the
    /// sampling period even when the test's own wait for idle woke late.
    fn last_reap(&self) -> Option<(Duration, Duration)> {
        let last_busy = self.samples.iter().rposition(|s| s.live > 0)?;
        let idle = self.samples.get(last_busy + 1)?;
        Some((
            self.samples[last_busy]
                .before
                .saturating_duration_since(self.last_silent),
            idle.after.saturating_duration_since(self.last_silent),
        ))
    }

    /// The longest time between two samples: how long the test's tasks were held up at worst
    /// (the period is [`SAMPLE_EVERY`]).
    fn longest_sampling_gap(&self) -> Duration {
        self.samples
            .windows(2)
            .map(|w| w[1].before - w[0].before)
            .max()
            .unwrap_or_default()
    }

    /// The samples no fresh download can have added to: none running, none ended within
    /// [`FRESH_CLOSE_LAG`].
    fn quiet_samples(&self) -> Vec<&Sample> {
        self.samples
            .iter()
            .filter(|s| !self.fresh.iter().any(|d| d.overlaps(s, FRESH_CLOSE_LAG)))
            .collect()
    }

    /// [`Run::reap_lateness`] over the [quiet samples](Run::quiet_samples), counting every
    /// live session as a slow or silent client's: closer to each session's own lateness, for
    /// the report.
    fn reap_lateness_between_fresh_downloads(&self) -> (Duration, usize) {
        let quiet = self.quiet_samples();
        (self.reap_lateness(quiet.iter().copied(), 0), quiet.len())
    }

    /// For the report, per cohort: when its clients' silence limits ran out (from the start
    /// of the run), and how soon after the last of them a quiet sample found no session past
    /// its limit.
    fn cohort_report(&self) -> String {
        let quiet = self.quiet_samples();
        let figures = COHORTS.iter().enumerate().map(|(c, cohort)| {
            let limits = self
                .records
                .iter()
                .filter(|r| r.cohort == c)
                .map(Record::reap_from);
            let (Some(first), Some(last)) = (limits.clone().min(), limits.max()) else {
                return format!("cohort {c}: no clients");
            };
            let cleared = quiet.iter().find(|s| {
                let owed = self
                    .records
                    .iter()
                    .filter(|r| r.reap_from() > s.after)
                    .count();
                s.before >= last && s.live <= owed as u64
            });
            let cleared = cleared.map_or("never seen".to_owned(), |s| {
                format!("{:?} after the last", s.after - last)
            });
            let behaviour = cohort.behaviour;
            format!(
                "{} ACKs {:?} after each DATA: limits {:?}..{:?} into the run, none overdue \
                 {cleared}",
                behaviour.acks,
                behaviour.ack_delay,
                first - self.began,
                last - self.began,
            )
        });
        figures.collect::<Vec<_>>().join("; ")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_silent_clients_are_reaped_on_time_while_fresh_clients_are_served() {
    let clients = client_count();
    let mut config = Config::default();
    config.retry_timeout = RETRY_TIMEOUT;
    config.max_retries = MAX_RETRIES;
    // No per-address cap in `test_server_config` (the server library's default; the binary's
    // is 64): every client is on 127.0.0.1, and none may be refused.
    let server = TestServer::start(MemoryStore::default(), config, test_server_config());
    let contents = Bytes::from(pattern(usize::from(FILE_BLOCKS - 1) * BLOCK + 100, 71));
    let small = Bytes::from(pattern(2_000, 72));
    server.store().insert(FILE, contents.clone());
    server.store().insert(SMALL_FILE, small.clone());

    let mut run = run_slow_and_silent(&server, clients, contents, small).await;
    let stats = server.stats().snapshot();
    // Not checked (the retransmission timer decides), only reported.
    let (mut resends, mut most_resends) = (0, [0; COHORTS.len()]);
    for record in &mut run.records {
        let count = record.resends_after_silence().await;
        resends += count;
        most_resends[record.cohort] = most_resends[record.cohort].max(count);
    }
    let mut latencies: Vec<Duration> = run.fresh.iter().map(Download::took).collect();
    latencies.sort();
    let median = latencies
        .get(latencies.len() / 2)
        .copied()
        .unwrap_or_default();
    let max_latency = latencies.last().copied().unwrap_or_default();
    let lateness = run.reap_lateness(run.samples.iter(), FRESH_SESSIONS);
    let (quiet_lateness, quiet_samples) = run.reap_lateness_between_fresh_downloads();
    let (reaped_after, reaped_by) = run.last_reap().unwrap_or_default();
    let peak = run.samples.iter().map(|s| s.live).max().unwrap_or_default();
    let duplicates: u32 = run.records.iter().map(|r| r.peer.duplicates).sum();
    let answering = run
        .records
        .iter()
        .filter(|r| COHORTS[r.cohort].behaviour.acks > 0)
        .count();
    let wall = run.idle_at - run.began;
    // Printed before the checks, so that a failure comes with the whole picture.
    let report = format!(
        "{clients} clients ({answering} answering for a while, {} never), peak {peak} sessions \
         live, {duplicates} resends seen while answering, {resends} after falling silent (at \
         most {most_resends:?} per client by cohort); last client silent {:?} into the \
         run; the last session ended between {reaped_after:?} and {reaped_by:?} after that \
         (limit {SILENCE_LIMIT:?} + {REAP_SLACK:?}; idle seen by the test's wait at {:?}); \
         latest reap past a client's silence limit {lateness:?} with {FRESH_SESSIONS} \
         sessions allowed to the fresh client, {quiet_lateness:?} over the {quiet_samples} \
         samples between fresh downloads; {} fresh downloads, median {median:?}, max \
         {max_latency:?}; {} samples, longest gap between two {:?}; longest stall of the machine {:?}; wall \
         {wall:?}",
        clients - answering,
        run.last_silent - run.began,
        run.idle_at - run.last_silent,
        latencies.len(),
        run.samples.len(),
        run.longest_sampling_gap(),
        run.stall
    );
    println!("slow clients: {report}");
    println!("slow clients by cohort: {}", run.cohort_report());

    assert!(
        run.idle,
        "{} sessions still live {:?} after the last client fell silent (limit \
         {SILENCE_LIMIT:?} + {REAP_SLACK:?} + stall {:?}): {stats:?}",
        stats.sessions_live(),
        run.idle_at - run.last_silent,
        run.stall
    );
    assert!(
        latencies.len() >= 10,
        "only {} fresh downloads in {wall:?}",
        latencies.len()
    );
    assert!(
        max_latency < FRESH_CLIENT_LIMIT,
        "a fresh download took {max_latency:?} (limit {FRESH_CLIENT_LIMIT:?}): {report}"
    );
    run.check_none_reaped_early();
    assert!(
        lateness <= REAP_SLACK + run.stall,
        "a session was live {lateness:?} past its client's {SILENCE_LIMIT:?} of silence \
         (slack {REAP_SLACK:?} + stall {:?}): {report}",
        run.stall
    );
    assert!(
        peak <= clients as u64 + FRESH_SESSIONS,
        "{peak} sessions live at once for {clients} clients"
    );
    assert_eq!(
        stats.refused_peer_limit + stats.refused_session_limit,
        0,
        "{stats:?}"
    );
    assert_eq!(
        stats.sessions_opened,
        (clients + run.fresh.len()) as u64,
        "one session per client and per fresh download: {stats:?}"
    );
    drop(run);
    server.shutdown().await;
}

/// Runs a download that ACKs every block [`SLOW_ACK_DELAY`] after it arrives, forever, on a
/// server whose transfers may take `cap`; returns how long after the request the server's
/// ERROR came, and how many blocks were acknowledged before it.
async fn slow_forever_against_a_cap(cap: Duration) -> (Duration, u16) {
    let mut config = Config::default();
    config.retry_timeout = RETRY_TIMEOUT;
    config.max_retries = MAX_RETRIES;
    config.max_transfer_time = cap;
    let server = TestServer::start(MemoryStore::default(), config, test_server_config());
    // Far more blocks than can be acknowledged within the cap: the file never completes.
    let blocks = 2 + (cap.as_millis() / SLOW_ACK_DELAY.as_millis()) as u16 * 4;
    let contents = Bytes::from(pattern(usize::from(blocks) * BLOCK + 1, 73));
    server.store().insert(FILE, contents.clone());
    let mut peer = SlowPeer::bind(server.addr(), contents).await;
    let requested = peer.request(FILE).await;
    let mut block = 1;
    // One turn per block, and the file has more blocks than there is time for.
    let stop = loop {
        assert!(
            block < blocks,
            "no ERROR after {block} slow ACKs (cap {cap:?})"
        );
        let received = match peer.expect_data(block, SILENCE_LIMIT).await {
            Ok(at) => at,
            Err(stop) => break stop,
        };
        if let Err(stop) = peer.ack_at(block, received + SLOW_ACK_DELAY).await {
            break stop;
        }
        block += 1;
    };
    let Stop::Error { at, code, message } = stop else {
        panic!("the transfer with cap {cap:?} ended without an ERROR: {stop:?}");
    };
    assert_eq!(code, ErrorCode::NotDefined, "ERROR {message:?}");
    assert!(message.contains("too long"), "ERROR 0 {message:?}");
    assert!(
        server.wait_idle(Duration::from_millis(500)).await,
        "the session outlived its ERROR: {:?}",
        server.stats().snapshot()
    );
    server.shutdown().await;
    (at - requested, block - 1)
}

/// A client that ACKs just before every timeout never lets the transfer time out; only the
/// wall-clock cap ends it, with ERROR 0, at the cap and not at the next ACK. Two caps, one
/// under the silence limit and one over it, show that the setting decides.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_acking_just_before_every_timeout_gets_error_0_at_the_transfer_time_cap() {
    /// How late after the cap the ERROR may arrive: timer granularity and scheduling (a few
    /// milliseconds measured alone, up to about 30 beside the rest of the suite), with room
    /// to spare; yet each cap falls about 20 ms after an ACK, so a server that checked the cap
    /// only when the next ACK arrives (180 ms later) fails.
    const CAP_SLACK: Duration = Duration::from_millis(100);
    let caps = [Duration::from_millis(620), Duration::from_millis(1_220)];
    let watch = StallWatch::start();
    let (short, long) = tokio::join!(
        slow_forever_against_a_cap(caps[0]),
        slow_forever_against_a_cap(caps[1])
    );
    let stall = watch.finish();
    for (cap, (ended, acked)) in caps.into_iter().zip([short, long]) {
        println!(
            "transfer time cap {cap:?}: ERROR 0 {ended:?} after the request, {acked} slow ACKs \
             before it; longest stall of the machine {stall:?}"
        );
        assert!(
            ended >= cap && ended <= cap + CAP_SLACK + stall,
            "the transfer capped at {cap:?} ended {ended:?} after the request (slack \
             {CAP_SLACK:?} + stall {stall:?})"
        );
        assert!(acked >= 2, "only {acked} ACKs before the cap {cap:?}");
    }
}
