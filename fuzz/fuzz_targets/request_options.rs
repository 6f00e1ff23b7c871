//! Fuzzes request checking and option negotiation (RFC 2347-2349, 7440) through the public
//! handler, since negotiation itself is crate-private. From one input it builds an RRQ and a
//! WRQ (file name, mode, and any option name/value pairs), and offers each to a fresh
//! [`TftpHandler`] whose store sometimes holds a small file under the requested name and
//! whose `blksize` / `windowsize` caps and file-size limit are fuzzed too. Each session is
//! polled by hand on a paused clock: once, then through a bounded number of jumps of 256 s
//! (longer than any timeout a client can negotiate). Checked:
//! - nothing panics, and the session completes within those jumps;
//! - every datagram the server sends decodes, and is never a request;
//! - with no session, at most one reply (an ERROR); with a session, an ERROR is the only reply,
//!   and otherwise the first reply is an OACK, DATA 1 or ACK 0 and all later ones are copies
//!   of it (resends), at most `first_reply_retries` of them;
//! - a request that must be served (valid name and mode, the file present for a read, no
//!   announced size over the limit for a write) is not refused, and one that must be refused
//!   gets an ERROR with the right code;
//! - an OACK names only options that were requested (case-insensitively), each once, with a
//!   decimal value in range: `blksize` 8..=65464 and within the cap, `windowsize` 1..=32768
//!   and within the cap, `timeout` 1..=255, `utimeout` 10000..=255000000, `tsize` the file's
//!   transfer size for a read and within the limit for a write; no options, no OACK;
//! - DATA 1 of a read is the first block of the file as sent in its mode.
#![no_main]

use std::time::Duration;

use arbitrary::Arbitrary;
use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use memtftpd_fuzz::{
    Driver, FileName, FuzzOption, ModeName, decode_all, hex, parse_decimal, paused_runtime, request,
};
use tftp_handler::netascii::NetasciiEncoder;
use tftp_handler::packet::TftpOption;
use tftp_handler::{
    Config, ErrorCode, MAX_BLOCK_SIZE, MAX_WINDOW_SIZE, MIN_BLOCK_SIZE, MemoryStore, Mode, Packet,
    Store, StoreLimits, TftpHandler, names,
};

#[derive(Arbitrary, Debug)]
struct Input {
    name: FileName,
    mode: ModeName,
    options: Vec<FuzzOption>,
    /// Whether the store holds a file under the requested name.
    stored: bool,
    /// The stored file's contents (kept short).
    contents: Vec<u8>,
    max_block_size: Option<u16>,
    max_window_size: Option<u16>,
    /// A small per-file limit, so that `tsize` over the limit is reachable.
    max_file_size: Option<u16>,
}

fuzz_target!(|input: Input| {
    let runtime = paused_runtime();
    for write in [false, true] {
        runtime.block_on(check(&input, write));
    }
});

/// What the request must get, judged from its decoded form.
#[derive(Debug, PartialEq, Eq)]
enum Expected {
    /// The transfer starts.
    Served,
    /// An ERROR with this code.
    Refused(ErrorCode),
}

async fn check(input: &Input, write: bool) {
    let mut config = Config::default();
    if let Some(cap) = input.max_block_size {
        config.max_block_size = cap;
    }
    if let Some(cap) = input.max_window_size {
        config.max_window_size = cap;
    }
    let mut limits = StoreLimits::default();
    if let Some(limit) = input.max_file_size {
        limits = limits.with_max_file_size(u64::from(limit));
    }
    let store = MemoryStore::new(limits);
    let name = input.name.bytes();
    let contents = Bytes::copy_from_slice(&input.contents[..input.contents.len().min(2048)]);
    let key = std::str::from_utf8(&name)
        .ok()
        .and_then(|n| names::normalize(n).ok());
    if input.stored
        && let Some(key) = key
    {
        store.insert(key, contents.clone());
    }
    let handler = TftpHandler::new(store, config.clone());
    let datagram = request(write, &name, &input.mode.bytes(), &input.options);

    let (mut driver, opened) = Driver::open(&handler, datagram.clone());
    let decoded = Packet::decode(&datagram);
    let Ok(Packet::Rrq(req) | Packet::Wrq(req)) = &decoded else {
        assert!(!opened, "a session was opened for a malformed request");
        assert!(
            driver.sent.len() <= 1,
            "more than one reply without a session"
        );
        for packet in decode_all(&driver.sent) {
            assert!(
                matches!(
                    packet,
                    Packet::Error {
                        code: ErrorCode::IllegalOperation,
                        ..
                    }
                ),
                "a malformed request got {packet:?}"
            );
        }
        return;
    };
    assert!(
        opened,
        "no session for a well-formed request {}",
        hex(&datagram)
    );

    driver.settle().await;
    assert!(!driver.sent.is_empty(), "the session sent no first reply");
    for _ in 0..16 {
        if driver.is_done() {
            break;
        }
        driver.advance(Duration::from_secs(256)).await;
    }
    assert!(
        driver.is_done(),
        "the session did not end after 16 jumps of 256 s"
    );

    let sent = decode_all(&driver.sent);
    let first = &sent[0];
    let expected = expectation(
        req,
        write,
        input.stored && key.is_some(),
        handler.store().max_file_size(),
    );
    match (first, &expected) {
        (Packet::Error { code, message }, Expected::Refused(want)) => {
            assert_eq!(code, want, "refused with the wrong code: {message}");
            assert_eq!(sent.len(), 1, "an ERROR was followed by more: {sent:?}");
            return;
        }
        (Packet::Error { .. }, Expected::Served) | (_, Expected::Refused(_)) => {
            panic!("expected {expected:?} for {req:?}, got {first:?}")
        }
        _ => {}
    }
    assert!(
        sent.len() <= 1 + config.first_reply_retries as usize,
        "{} copies of the first reply to a silent peer",
        sent.len()
    );
    assert!(
        driver.sent.iter().all(|d| *d == driver.sent[0]),
        "a later reply differs from the first: {sent:?}"
    );

    let file = transfer_bytes(&contents, req.mode);
    let max_file_size = handler.store().max_file_size();
    let oack = oack_expected(req, write, file.len() as u64);
    match first {
        Packet::Oack { options } => {
            assert!(
                oack,
                "an OACK although no option can be granted: {options:?}"
            );
            check_oack(
                options,
                req,
                write,
                &config,
                file.len() as u64,
                max_file_size,
            );
        }
        Packet::Data { block, data } if !write => {
            assert!(!oack, "DATA 1 instead of an OACK");
            assert_eq!(*block, 1);
            assert_eq!(
                *data,
                &file[..file.len().min(512)],
                "DATA 1 is not the file's first block"
            );
        }
        Packet::Ack { block: 0 } if write => assert!(!oack, "ACK 0 instead of an OACK"),
        other => panic!("unexpected first reply {other:?}"),
    }
}

/// Whether some requested option must be granted, so that the first reply is an OACK. Of
/// `tsize`, the first occurrence decides: a read's is granted unless the file is empty (left
/// out on purpose), a write's when its value is a decimal number.
fn oack_expected(req: &tftp_handler::packet::Request<'_>, write: bool, transfer_size: u64) -> bool {
    let first_tsize = req
        .options
        .iter()
        .find(|o| o.name.eq_ignore_ascii_case("tsize"));
    let tsize = match first_tsize {
        Some(o) if write => parse_decimal(o.value).is_some(),
        Some(_) => transfer_size > 0,
        None => false,
    };
    tsize
        || req.options.iter().any(|o| {
            let value = parse_decimal(o.value);
            match o.name.to_ascii_lowercase().as_str() {
                "blksize" => value.is_some_and(|v| v >= 8),
                "timeout" => value.is_some_and(|v| (1..=255).contains(&v)),
                "utimeout" => value.is_some_and(|v| (10_000..=255_000_000).contains(&v)),
                "windowsize" => value.is_some_and(|v| (1..=65_535).contains(&v)),
                _ => false,
            }
        })
}

/// The file as the peer receives it.
fn transfer_bytes(contents: &[u8], mode: Mode) -> Vec<u8> {
    match mode {
        Mode::Octet => contents.to_vec(),
        _ => {
            let mut out = BytesMut::new();
            NetasciiEncoder::new().encode(contents, &mut out, usize::MAX);
            out.to_vec()
        }
    }
}

fn expectation(
    req: &tftp_handler::packet::Request<'_>,
    write: bool,
    stored: bool,
    max_file_size: u64,
) -> Expected {
    if req.mode == Mode::Mail {
        return Expected::Refused(ErrorCode::IllegalOperation);
    }
    if names::normalize(req.filename).is_err() {
        return Expected::Refused(ErrorCode::AccessViolation);
    }
    if !write {
        return match stored {
            true => Expected::Served,
            false => Expected::Refused(ErrorCode::FileNotFound),
        };
    }
    // Of a write's options, the first `tsize` decides: an announced size over the limit is
    // refused (RFC 2349).
    let first_tsize = req
        .options
        .iter()
        .find(|o| o.name.eq_ignore_ascii_case("tsize"));
    match first_tsize.and_then(|o| parse_decimal(o.value)) {
        Some(size) if size > max_file_size => Expected::Refused(ErrorCode::DiskFull),
        _ => Expected::Served,
    }
}

fn check_oack(
    options: &[TftpOption<'_>],
    req: &tftp_handler::packet::Request<'_>,
    write: bool,
    config: &Config,
    transfer_size: u64,
    max_file_size: u64,
) {
    for (i, option) in options.iter().enumerate() {
        assert!(
            req.options
                .iter()
                .any(|r| r.name.eq_ignore_ascii_case(option.name)),
            "the OACK grants {option:?}, which was not requested"
        );
        assert!(
            options[..i]
                .iter()
                .all(|o| !o.name.eq_ignore_ascii_case(option.name)),
            "the OACK names {} twice",
            option.name
        );
        let value = parse_decimal(option.value)
            .unwrap_or_else(|| panic!("OACK value {option:?} is not decimal"));
        match option.name {
            "blksize" => {
                let cap = config.max_block_size.clamp(MIN_BLOCK_SIZE, MAX_BLOCK_SIZE);
                assert!((8..=65_464).contains(&value), "blksize {value}");
                assert!(
                    value <= u64::from(cap),
                    "blksize {value} over the cap {cap}"
                );
            }
            "windowsize" => {
                let cap = config.max_window_size.clamp(1, MAX_WINDOW_SIZE);
                assert!((1..=32_768).contains(&value), "windowsize {value}");
                assert!(
                    value <= u64::from(cap),
                    "windowsize {value} over the cap {cap}"
                );
            }
            "timeout" => assert!((1..=255).contains(&value), "timeout {value}"),
            "utimeout" => assert!((10_000..=255_000_000).contains(&value), "utimeout {value}"),
            "tsize" if write => assert!(value <= max_file_size, "tsize {value} over the limit"),
            "tsize" => {
                assert_eq!(value, transfer_size, "tsize is not the transfer size");
                assert!(value > 0, "tsize granted for an empty file");
            }
            other => panic!("the OACK holds unknown option {other}"),
        }
    }
}
