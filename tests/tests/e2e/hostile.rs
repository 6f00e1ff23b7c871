//! Hostile input: a matrix of malformed and abusive datagrams, each sent once from a fresh
//! socket, and what the server does about them.
//!
//! The rule every case is held to: the server answers with exactly one ERROR or with nothing,
//! never with DATA or an OACK, never twice. Which of the two, and which ERROR code, is written
//! next to each class in [`matrix`]: a request the server refuses gets one ERROR saying why
//! (4 for a malformed packet, 2 for a forbidden name); a well-formed request for a file that
//! does not exist gets ERROR 1 (so option garbage sent with it must not change that); DATA,
//! ACK or OACK from a peer without a transfer gets ERROR 5; a peer's ERROR gets nothing.
//! Then: the server still serves, no session outlives the matrix, and twenty runs of it do not
//! grow the process's memory. Option garbage that reaches negotiation (the file exists) is
//! checked separately: ignored or refused with ERROR 8, never granted.
//!
//! Cases run concurrently (one socket each), so a run of the whole matrix takes about one
//! quiet window (300 ms) plus the time to the slowest first answer.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use bytes::Bytes;
use memtftpd_tests::hostile::{Probe, Received, Seen, raw_packet, rss_kib};
use memtftpd_tests::{RawClient, Reply, TestServer, assert_same_bytes, pattern};
use tftp_handler::{Client, ClientConfig, ErrorCode, Mode};
use tokio::task::JoinSet;

/// Where the probes live.
const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// How long a case waits for anything (a first reply where none is expected, or a second
/// one after the first).
const QUIET: Duration = Duration::from_millis(300);

/// How long a case waits for an expected first reply: generous, since cases run together
/// against a debug build on a busy machine; only a reply that never comes fails.
const FIRST_REPLY: Duration = Duration::from_secs(2);

/// No reply to a hostile datagram may be larger than this: a DATA of the default block size.
/// The server's ERROR messages are short and never echo the request (a 60 KB file name must
/// not come back as a 60 KB ERROR).
const MAX_REPLY_LEN: usize = 516;

const RRQ: u16 = 1;
const WRQ: u16 = 2;
const DATA: u16 = 3;
const ACK: u16 = 4;
const ERROR: u16 = 5;
const OACK: u16 = 6;

/// What one hostile datagram may get back from the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// Exactly one ERROR with this code.
    Error(ErrorCode),
    /// Nothing within [`QUIET`].
    Nothing,
}

/// One row of the matrix.
#[derive(Debug, Clone)]
struct Case {
    /// The class of abuse it belongs to.
    class: &'static str,
    /// What this datagram is, for failure messages.
    what: String,
    /// The datagram, exactly as sent.
    datagram: Vec<u8>,
    /// The server's only acceptable answer.
    expect: Expect,
}

/// The matrix, with the expected answer of each class.
fn matrix() -> Vec<Case> {
    use ErrorCode::{AccessViolation, FileNotFound, IllegalOperation, UnknownTransferId};
    let mut cases = Vec::new();
    let mut add = |class: &'static str, what: &str, datagram: Vec<u8>, expect: Expect| {
        cases.push(Case {
            class,
            what: what.to_owned(),
            datagram,
            expect,
        });
    };
    let refused = Expect::Error(IllegalOperation);
    let missing = Expect::Error(FileNotFound);

    // Too short to hold an opcode and its first field: malformed, ERROR 4.
    add("empty", "empty datagram", vec![], refused);
    for byte in [0x00, 0x01, 0x05, 0xff] {
        add("1 byte", &format!("[{byte:#04x}]"), vec![byte], refused);
    }
    for opcode in [RRQ, WRQ, DATA, ACK, OACK] {
        // An RRQ/WRQ without a name, a DATA/ACK without a block number, an OACK without
        // options: malformed (ERROR 4), not an unknown transfer (ERROR 5).
        let what = format!("opcode {opcode} alone");
        add("2 bytes", &what, opcode.to_be_bytes().to_vec(), refused);
    }
    for (what, bytes) in [
        ("RRQ + 1 name byte", vec![0, 1, b'a']),
        ("WRQ + NUL", vec![0, 2, 0]),
        ("DATA + half a block number", vec![0, 3, 0]),
        ("ACK + half a block number", vec![0, 4, 0]),
    ] {
        add("3 bytes", what, bytes, refused);
    }

    // Opcodes outside 1..=6: ERROR 4.
    for opcode in [0_u16, 7, 255, 65_535] {
        let what = format!("opcode {opcode}");
        add(
            "unknown opcode",
            &what,
            raw_packet(opcode, &[b"f", b"octet"]),
            refused,
        );
    }

    // Requests that end inside a text field: ERROR 4.
    for (name, opcode) in [("RRQ", RRQ), ("WRQ", WRQ)] {
        let mut no_nul_after_name = opcode.to_be_bytes().to_vec();
        no_nul_after_name.extend_from_slice(b"file.bin");
        add(
            "missing NUL",
            &format!("{name} without NUL after the name"),
            no_nul_after_name,
            refused,
        );
        let mut no_nul_after_mode = raw_packet(opcode, &[b"file.bin"]);
        no_nul_after_mode.extend_from_slice(b"octet");
        add(
            "missing NUL",
            &format!("{name} without NUL after the mode"),
            no_nul_after_mode,
            refused,
        );
    }

    // Well formed, but no name to serve: ERROR 2 (README: "empty names ... get ERROR 2").
    for (name, opcode) in [("RRQ", RRQ), ("WRQ", WRQ)] {
        let what = format!("{name} with an empty name");
        let bytes = raw_packet(opcode, &[b"", b"octet"]);
        add(
            "empty file name",
            &what,
            bytes,
            Expect::Error(AccessViolation),
        );
    }
    let only_slash = raw_packet(RRQ, &[b"/", b"octet"]);
    add(
        "empty file name",
        "RRQ for `/` (empty once the slash is stripped)",
        only_slash,
        Expect::Error(AccessViolation),
    );

    // The mode is not one of netascii, octet, mail: ERROR 4.
    for (name, opcode) in [("RRQ", RRQ), ("WRQ", WRQ)] {
        let what = format!("{name} with an empty mode");
        add(
            "empty mode",
            &what,
            raw_packet(opcode, &[b"f", b""]),
            refused,
        );
    }
    for mode in [&b"foo"[..], b"netasciix", b"octe", b"octet ", b"\xff\xfe"] {
        let what = format!("RRQ with mode {:?}", String::from_utf8_lossy(mode));
        add(
            "unknown mode",
            &what,
            raw_packet(RRQ, &[b"f", mode]),
            refused,
        );
    }
    let what = "WRQ with mode \"foo\"";
    add(
        "unknown mode",
        what,
        raw_packet(WRQ, &[b"f", b"foo"]),
        refused,
    );

    // Obsolete: refused with ERROR 4 (spec: "refuse ... with a clear ERROR").
    for (what, opcode, mode) in [
        ("RRQ in mail mode", RRQ, &b"mail"[..]),
        ("WRQ in mail mode", WRQ, b"mail"),
        ("RRQ in MAIL mode", RRQ, b"MAIL"),
    ] {
        add(
            "mail mode",
            what,
            raw_packet(opcode, &[b"root", mode]),
            refused,
        );
    }

    // Far larger than any real request. The name is a valid key that is not in the store,
    // and the options go unread: ERROR 1. A whole datagram with no NUL at all: ERROR 4.
    let long_name = vec![b'a'; 60_000];
    let bytes = raw_packet(RRQ, &[&long_name, b"octet"]);
    add("over-long", "RRQ with a 60,000-byte name", bytes, missing);
    let names: Vec<String> = (0..1_000).map(|i| format!("opt{i}")).collect();
    let mut fields: Vec<&[u8]> = vec![b"missing.bin", b"octet"];
    for name in &names {
        fields.extend([name.as_bytes(), b"1"]);
    }
    let bytes = raw_packet(RRQ, &fields);
    add("over-long", "RRQ with 1,000 options", bytes, missing);
    let mut no_nul = RRQ.to_be_bytes().to_vec();
    no_nul.resize(65_000, b'x');
    add(
        "over-long",
        "65,000-byte RRQ without a NUL",
        no_nul,
        refused,
    );

    // Format specifiers are just characters of a name (ERROR 1) or of a mode (ERROR 4).
    let bytes = raw_packet(RRQ, &[b"%s%n%x%p", b"octet"]);
    add("format specifiers", "name %s%n%x%p", bytes, missing);
    let long_spec = b"%n".repeat(2_000);
    let bytes = raw_packet(RRQ, &[&long_spec, b"octet"]);
    add("format specifiers", "name %n x 2,000", bytes, missing);
    let bytes = raw_packet(RRQ, &[b"%s", b"%s%n"]);
    add("format specifiers", "mode %s%n", bytes, refused);
    let bytes = raw_packet(RRQ, &[b"missing.bin", b"octet", b"%s%n", b"%x%p"]);
    add("format specifiers", "option %s%n = %x%p", bytes, missing);

    // Well formed: options are read only once the file is found, so ERROR 1 whatever they
    // say (`garbage_options_for_an_existing_file_are_ignored_or_refused_never_granted` sends
    // the same options for a file that exists).
    for (what, options) in option_garbage() {
        let mut fields: Vec<&[u8]> = vec![b"missing.bin", b"octet"];
        for (name, value) in &options {
            fields.extend([name.as_bytes(), value.as_bytes()]);
        }
        add(class_of(what), what, raw_packet(RRQ, &fields), missing);
    }

    // RFC 1350: an ERROR is never answered, not even one too short to hold its code (atftpd
    // CVE-2019-11365 was a crash on exactly that).
    let silent = Expect::Nothing;
    add("peer ERROR", "ERROR opcode only", vec![0, 5], silent);
    add("peer ERROR", "ERROR opcode + 1 byte", vec![0, 5, 0], silent);
    let bytes = raw_packet(ERROR, &[b"\0\x01bye"]);
    add("peer ERROR", "ERROR 1 with a message", bytes, silent);
    let bytes = vec![0, 5, 0, 2, b'n', b'o', b' ', b'n', b'u', b'l'];
    add("peer ERROR", "ERROR 2 without a NUL", bytes, silent);
    let bytes = vec![0, 5, 0xff, 0xff, 0xc3, 0x28, 0];
    add("peer ERROR", "ERROR 65535, bad UTF-8", bytes, silent);

    // No transfer with this peer: ERROR 5.
    let unknown = Expect::Error(UnknownTransferId);
    let mut data_1 = vec![0, 3, 0, 1];
    data_1.extend_from_slice(&[0x5a; 512]);
    add("unsolicited", "DATA 1, 512 bytes", data_1, unknown);
    add("unsolicited", "DATA 0, empty", vec![0, 3, 0, 0], unknown);
    add(
        "unsolicited",
        "DATA 65535, 3 bytes",
        vec![0, 3, 255, 255, 1, 2, 3],
        unknown,
    );
    for block in [0_u16, 1, 65_535] {
        let mut ack = ACK.to_be_bytes().to_vec();
        ack.extend_from_slice(&block.to_be_bytes());
        add("unsolicited", &format!("ACK {block}"), ack, unknown);
    }
    let bytes = raw_packet(OACK, &[b"blksize", b"1468", b"tsize", b"99"]);
    add("unsolicited", "OACK blksize 1468 tsize 99", bytes, unknown);

    // Names are opaque keys: nothing is there, so ERROR 1 (never a file from the disk).
    for name in [
        &b"../../etc/passwd"[..],
        b"/../x",
        b"..\\..\\x",
        b"/etc/passwd",
    ] {
        let what = format!("RRQ {}", String::from_utf8_lossy(name));
        add(
            "path traversal",
            &what,
            raw_packet(RRQ, &[name, b"octet"]),
            missing,
        );
    }

    // Names that are not text or hold control characters; trailing bytes after the mode.
    let bytes = raw_packet(RRQ, &[b"\xff\xfe", b"octet"]);
    add("bad name", "name not UTF-8", bytes, refused);
    let bytes = raw_packet(RRQ, &[b"a\nb", b"octet"]);
    add(
        "bad name",
        "name with a newline",
        bytes,
        Expect::Error(AccessViolation),
    );
    let bytes = raw_packet(WRQ, &[b"a\x1bb", b"octet"]);
    add(
        "bad name",
        "WRQ name with ESC",
        bytes,
        Expect::Error(AccessViolation),
    );
    let mut stray_nul = raw_packet(RRQ, &[b"f", b"octet"]);
    stray_nul.push(0);
    add("trailing bytes", "NUL after the mode", stray_nul, refused);
    let bytes = raw_packet(RRQ, &[b"f", b"octet", b"blksize"]);
    add("trailing bytes", "option without value", bytes, refused);
    let mut unended = raw_packet(RRQ, &[b"f", b"octet", b"blksize"]);
    unended.extend_from_slice(b"512");
    add(
        "trailing bytes",
        "option value without NUL",
        unended,
        refused,
    );
    cases
}

/// Option sets that are malformed, out of range, repeated or merely huge, with a label.
fn option_garbage() -> Vec<(&'static str, Vec<(String, String)>)> {
    let pairs = |list: &[(&str, &str)]| -> Vec<(String, String)> {
        list.iter()
            .map(|&(n, v)| (n.to_owned(), v.to_owned()))
            .collect()
    };
    let mut sets = vec![
        (
            "duplicate: blksize 512, blksize 1024",
            pairs(&[("blksize", "512"), ("blksize", "1024")]),
        ),
        (
            "duplicate: BLKSIZE 1024, blksize 512",
            pairs(&[("BLKSIZE", "1024"), ("blksize", "512")]),
        ),
        ("value: blksize 7", pairs(&[("blksize", "7")])),
        ("value: blksize 65465", pairs(&[("blksize", "65465")])),
        ("value: blksize -1", pairs(&[("blksize", "-1")])),
        ("value: blksize 1e3", pairs(&[("blksize", "1e3")])),
        ("value: blksize empty", pairs(&[("blksize", "")])),
        (
            "value: blksize 2^70",
            pairs(&[("blksize", "1180591620717411303424")]),
        ),
        ("value: windowsize 0", pairs(&[("windowsize", "0")])),
        ("value: windowsize 65536", pairs(&[("windowsize", "65536")])),
        ("value: timeout 0", pairs(&[("timeout", "0")])),
        ("value: timeout 256", pairs(&[("timeout", "256")])),
        ("value: tsize abc", pairs(&[("tsize", "abc")])),
        ("value: utimeout 1", pairs(&[("utimeout", "1")])),
    ];
    // atftpd CVE-2021-41054: a tiny block size and an OACK longer than one block.
    let mut cve = pairs(&[("blksize", "8")]);
    cve.extend((0..500).map(|i| (format!("x-opt-{i}"), "1".to_owned())));
    sets.push(("cve-2021-41054: blksize 8 + 500 options", cve));
    sets
}

/// The matrix class of an [`option_garbage`] label.
fn class_of(label: &str) -> &'static str {
    if label.starts_with("duplicate") {
        "duplicate options"
    } else if label.starts_with("cve") {
        "blksize 8 + 500 options"
    } else {
        "bad option values"
    }
}

/// Sends `datagram` from a fresh socket and returns everything the server sent back: for an
/// expected ERROR, up to [`FIRST_REPLY`] for it and then [`QUIET`] for a second one; for an
/// expected silence, [`QUIET`].
async fn probe(server: SocketAddr, datagram: &[u8], expect: Expect) -> Vec<Received> {
    // Anything longer than `MAX_REPLY_LEN` fails the case, cut or not.
    let mut probe = Probe::with_buffer(LOCALHOST, server, 2 * MAX_REPLY_LEN).await;
    probe.send(datagram).await;
    let first = match expect {
        Expect::Error(_) => FIRST_REPLY,
        Expect::Nothing => QUIET,
    };
    probe.collect(first, QUIET).await
}

/// Why `replies` break the case's expectation, if they do.
fn judge(server: SocketAddr, case: &Case, replies: &[Received]) -> Result<(), String> {
    let packets: Vec<&Seen> = replies.iter().map(|r| &r.packet).collect();
    if let Some(foreign) = replies.iter().find(|r| r.from != server) {
        return Err(format!("a reply from {} (not the server)", foreign.from));
    }
    if let Some(big) = replies.iter().find(|r| r.len > MAX_REPLY_LEN) {
        return Err(format!("a {}-byte reply", big.len));
    }
    match case.expect {
        Expect::Error(code) if replies.len() == 1 && packets[0].is_error(code) => Ok(()),
        Expect::Nothing if replies.is_empty() => Ok(()),
        Expect::Error(code) => Err(format!(
            "expected exactly one ERROR {}, got {packets:?}",
            code.as_u16()
        )),
        Expect::Nothing => Err(format!("expected no reply, got {packets:?}")),
    }
}

/// Runs every case of [`matrix`] once, all at the same time, and returns the failures (one
/// line each).
async fn run_matrix(server: SocketAddr) -> Vec<String> {
    let mut probes = JoinSet::new();
    for case in matrix() {
        probes.spawn(async move {
            let replies = probe(server, &case.datagram, case.expect).await;
            judge(server, &case, &replies)
                .map_err(|why| format!("[{}] {}: {why}", case.class, case.what))
        });
    }
    let mut failures = Vec::new();
    while let Some(joined) = probes.join_next().await {
        if let Err(failure) = joined.unwrap() {
            failures.push(failure);
        }
    }
    failures.sort();
    failures
}

/// Fails with every broken case listed.
fn assert_no_failures(failures: &[String], context: &str) {
    assert!(
        failures.is_empty(),
        "{context}: {} case(s) answered wrongly:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn the_matrix_covers_at_least_40_datagrams_in_12_classes() {
    let cases = matrix();
    let classes: BTreeSet<&str> = cases.iter().map(|c| c.class).collect();
    assert!(cases.len() >= 40, "{} cases", cases.len());
    assert!(
        classes.len() >= 12,
        "{} classes: {classes:?}",
        classes.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_hostile_datagram_gets_one_error_or_nothing_never_data() {
    let server = TestServer::with_file("f.bin", pattern(5_000, 11));
    let failures = run_matrix(server.addr()).await;
    assert_no_failures(&failures, "hostile matrix");
    let stats = server.stats().snapshot();
    assert_eq!(
        stats.datagrams_in,
        matrix().len() as u64,
        "every datagram reached the server once: {stats:?}"
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_serves_a_get_and_a_put_right_after_the_hostile_matrix() {
    let contents = pattern(100_000, 12);
    let server = TestServer::with_file("f.bin", contents.clone());
    let failures = run_matrix(server.addr()).await;
    assert_no_failures(&failures, "hostile matrix");

    let mut raw = RawClient::bind(server.addr()).await;
    let got = raw.read("f.bin", Mode::Octet, &[]).await.expect("raw get");
    assert_same_bytes(&got, &contents, "raw get after the matrix");
    let upload = Bytes::from(pattern(70_000, 13));
    let client = Client::new(ClientConfig::default());
    client
        .put(server.addr(), "up.bin", upload.clone())
        .await
        .expect("put after the matrix");
    assert_same_bytes(
        &server.store().get("up.bin").expect("the upload is stored"),
        &upload,
        "put after the matrix",
    );
    let again = client.get(server.addr(), "up.bin").await.expect("get");
    assert_same_bytes(&again, &upload, "get of the upload");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_session_outlives_the_hostile_matrix() {
    let server = TestServer::with_file("f.bin", pattern(5_000, 14));
    let failures = run_matrix(server.addr()).await;
    assert_no_failures(&failures, "hostile matrix");
    assert!(
        server.wait_idle(Duration::from_secs(3)).await,
        "sessions still live after the matrix: {:?}",
        server.stats().snapshot()
    );
    let stats = server.stats().snapshot();
    assert_eq!(stats.sessions_live(), 0, "{stats:?}");
    server.shutdown().await;
}

/// Set (to anything) in the process that [`twenty_runs_of_the_hostile_matrix_do_not_grow_memory`]
/// starts to do the measuring.
const RSS_CHILD: &str = "MEMTFTPD_HOSTILE_RSS_CHILD";

/// How many times the matrix runs between the two RSS readings.
const RSS_RUNS: usize = 20;

/// How much the RSS may grow over [`RSS_RUNS`] runs. Measured: about 0.6 MiB (allocator
/// warm-up: 200 runs end about 1 MiB up, flat after the first few dozen).
const RSS_SLACK_KIB: u64 = 4 * 1024;

/// RSS is per process, and the test binary runs many tests at once on threads of one process:
/// their files and buffers would swamp the figure. So this test starts a copy of the test
/// binary that runs only this test (with [`RSS_CHILD`] set), and that copy measures a server
/// running in-process with nothing else beside it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_runs_of_the_hostile_matrix_do_not_grow_memory() {
    if std::env::var_os(RSS_CHILD).is_some() {
        measure_rss_over_matrix_runs().await;
        return;
    }
    let exe = std::env::current_exe().expect("the test binary's path");
    let test = "hostile::twenty_runs_of_the_hostile_matrix_do_not_grow_memory";
    let child = tokio::process::Command::new(exe)
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(RSS_CHILD, "1")
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(120), child)
        .await
        .expect("the measuring process finished within 120 s")
        .expect("start the measuring process");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.contains("1 passed"),
        "the measuring process failed: {}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        output.status
    );
    // Pass the child's figures on, for `--nocapture` runs.
    // (libtest prints the test's name on the same line, before what the test prints.)
    for line in stdout
        .lines()
        .filter_map(|l| l.find("hostile rss").map(|at| &l[at..]))
    {
        println!("{line}");
    }
}

/// The measuring half of [`twenty_runs_of_the_hostile_matrix_do_not_grow_memory`].
async fn measure_rss_over_matrix_runs() {
    let server = TestServer::with_file("f.bin", pattern(5_000, 15));
    // One run first: the runtime's threads, the allocator's arenas and the server's buffers
    // reach their working size.
    assert_no_failures(&run_matrix(server.addr()).await, "warm-up run");
    assert!(server.wait_idle(Duration::from_secs(3)).await);
    let before = rss_kib();
    for run in 0..RSS_RUNS {
        let failures = run_matrix(server.addr()).await;
        assert_no_failures(&failures, &format!("run {run}"));
    }
    assert!(server.wait_idle(Duration::from_secs(3)).await);
    let after = rss_kib();
    let stats = server.stats().snapshot();
    println!(
        "hostile rss: {before} KiB before, {after} KiB after {RSS_RUNS} runs of {} datagrams \
         ({} datagrams in, {} sessions opened)",
        matrix().len(),
        stats.datagrams_in,
        stats.sessions_opened
    );
    assert!(
        after <= before + RSS_SLACK_KIB,
        "RSS grew from {before} KiB to {after} KiB over {RSS_RUNS} runs of the matrix"
    );
    server.shutdown().await;
}

/// The same option garbage as in the matrix, for a file that exists, so that negotiation
/// runs. RFC 2347 and `spec.md`: an option with a malformed or out-of-range value is ignored
/// (left out of the OACK) or refused with ERROR 8; a larger `blksize` may be clamped. Never
/// granted as asked, never more than one reply before the retry timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_options_for_an_existing_file_are_ignored_or_refused_never_granted() {
    const SIZE: usize = 2_000;
    let server = TestServer::with_file("f.bin", pattern(SIZE, 16));
    let mut probes = JoinSet::new();
    for (what, options) in option_garbage() {
        let addr = server.addr();
        probes.spawn(async move {
            let mut fields: Vec<&[u8]> = vec![b"f.bin", b"octet"];
            for (name, value) in &options {
                fields.extend([name.as_bytes(), value.as_bytes()]);
            }
            let mut probe = Probe::bind(LOCALHOST, addr).await;
            probe.send(&raw_packet(RRQ, &fields)).await;
            // The server's retry timeout is 1 s: within it, one reply at most.
            let replies = probe.collect(FIRST_REPLY, QUIET).await;
            if replies.iter().any(|r| !r.packet.is_any_error()) {
                // Like firmware probing `tsize`: end the transfer the server started.
                probe.send(&raw_packet(ERROR, &[b"\0\0done"])).await;
            }
            let verdict = match replies.as_slice() {
                [only] => judge_first_reply(&options, &only.packet, SIZE),
                _ => Err(format!("expected one reply, got {replies:?}")),
            };
            verdict.map_err(|why| format!("{what}: {why}"))
        });
    }
    let mut failures = Vec::new();
    while let Some(joined) = probes.join_next().await {
        if let Err(failure) = joined.unwrap() {
            failures.push(failure);
        }
    }
    assert_no_failures(&failures, "options for an existing file");
    assert!(
        server.wait_idle(Duration::from_secs(3)).await,
        "sessions still live: {:?}",
        server.stats().snapshot()
    );
    server.shutdown().await;
}

/// Whether `reply` is an acceptable first answer to an RRQ with `asked` for a file of `size`
/// bytes: ERROR 8, DATA 1 (every option ignored), or an OACK granting only what was asked,
/// within range.
fn judge_first_reply(asked: &[(String, String)], reply: &Seen, size: usize) -> Result<(), String> {
    let asked_values = |name: &str| -> Vec<u64> {
        asked
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .filter_map(|(_, v)| v.parse().ok())
            .collect()
    };
    match reply {
        Seen::Reply(Reply::Error {
            code: ErrorCode::OptionRefused,
            ..
        }) => Ok(()),
        Seen::Reply(Reply::Data { block: 1, data }) if data.len() == size.min(512) => Ok(()),
        Seen::Reply(Reply::Oack { options }) => {
            let mut granted = BTreeSet::new();
            for (name, value) in options {
                let name = name.to_ascii_lowercase();
                if !granted.insert(name.clone()) {
                    return Err(format!("option {name} granted twice: {options:?}"));
                }
                let value: u64 = value
                    .parse()
                    .map_err(|_| format!("non-numeric {name} {value:?} granted"))?;
                let asked = asked_values(&name);
                let fits = match name.as_str() {
                    "blksize" => (8..=65_464).contains(&value) && asked.iter().any(|&a| a >= value),
                    "windowsize" => {
                        (1..=65_535).contains(&value) && asked.iter().any(|&a| a >= value)
                    }
                    "timeout" => (1..=255).contains(&value) && asked.contains(&value),
                    "utimeout" => asked.contains(&value),
                    "tsize" => value == size as u64,
                    _ => false,
                };
                if !fits {
                    return Err(format!("granted {name} {value} for {asked:?}"));
                }
            }
            Ok(())
        }
        other => Err(format!("unexpected first reply {other:?}")),
    }
}

/// RFC 1350 section 7 and `spec.md`: an ERROR from the peer is never answered. A datagram with
/// opcode 5 but no room for its error code is still the peer's ERROR; answering it lets two
/// hosts that both answer malformed packets bounce datagrams between them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncated_error_from_a_fresh_socket_gets_no_reply() {
    let server = TestServer::start_default();
    for datagram in [&[0_u8, 5][..], &[0, 5, 0]] {
        let replies = probe(server.addr(), datagram, Expect::Nothing).await;
        let packets: Vec<&Seen> = replies.iter().map(|r| &r.packet).collect();
        assert!(
            packets.is_empty(),
            "{datagram:?} was answered with {packets:?}"
        );
    }
    server.shutdown().await;
}

/// `spec.md`: an ERROR from the peer ends the transfer at once. `Packet::decode` is lenient with
/// ERROR for this reason ("a peer's ERROR must always end the transfer"), but not with one too
/// short to hold its code.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncated_error_from_the_peer_ends_its_transfer_at_once() {
    let server = TestServer::with_file("f.bin", pattern(100_000, 17));
    let mut client = RawClient::bind(server.addr()).await;
    client.send_rrq("f.bin", Mode::Octet, &[]).await;
    assert!(matches!(client.recv().await, Reply::Data { block: 1, .. }));
    client.send_raw(&[0, 5]).await;
    assert!(
        server.wait_idle(Duration::from_millis(500)).await,
        "the session outlived the peer's ERROR"
    );
    // The retry timeout is 1 s: a session still running resends DATA 1 by then.
    assert_eq!(client.recv_within(Duration::from_millis(1_500)).await, None);
    server.shutdown().await;
}
