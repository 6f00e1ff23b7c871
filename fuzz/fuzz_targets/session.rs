//! Fuzzes whole sessions. A request (RRQ or WRQ, octet or netascii, some options) opens a
//! [`TftpHandler`] session on a paused clock; then an arbitrary sequence of steps is played
//! against it: raw datagrams, well-formed DATA / ACK / ERROR / OACK with block numbers picked
//! relative to the transfer's progress (so that the fuzzer can move a transfer forward) or
//! anywhere, runs of in-order DATA or of ACKs of the latest block, the same or a new request,
//! a cancellation, and clock advances of 0 to 5 s. When the input ends the clock runs free.
//! Checked:
//! - nothing panics;
//! - the session completes within `(max_retries + 1) * timeout + dally` (plus 1 s of slack)
//!   of virtual time after the input ends, `timeout` being the negotiated one if any;
//! - every datagram the server sends decodes and is not a request; a read sends only OACK,
//!   DATA and ERROR, a write only OACK, ACK and ERROR; a handed-off datagram is a request;
//! - every DATA of a read is exactly the slice of the file (as sent in its mode) that its
//!   block number stands for;
//! - every ACK of a write acknowledges a block that was received (a model of the receiver
//!   follows the in-order DATA the session took);
//! - after a write, the store holds the model's upload exactly when the model saw the short
//!   final block, and otherwise what it held before (nothing, or the preloaded file).
#![no_main]

use std::time::Duration;

use arbitrary::Arbitrary;
use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use memtftpd_fuzz::{
    Driver, FuzzOption, decode_all, hex, parse_decimal, paused_runtime, put_options, request,
};
use tftp_handler::netascii::{NetasciiDecoder, NetasciiEncoder};
use tftp_handler::{Config, ErrorCode, MemoryStore, Packet, TftpHandler};
use udp_server::SessionEnd;

/// The name every request asks for.
const NAME: &str = "fuzz.bin";

#[derive(Arbitrary, Debug)]
struct Input {
    write: bool,
    netascii: bool,
    /// Request options (kept to a few).
    options: Vec<FuzzOption>,
    /// The file in the store before the session (a read needs one to start).
    stored: Option<Vec<u8>>,
    steps: Vec<Step>,
}

/// A block number, relative to the transfer's progress or absolute.
#[derive(Arbitrary, Debug, Clone, Copy)]
enum BlockRef {
    /// The block the transfer is waiting for (a write), or the last DATA sent (a read).
    Next,
    /// That many before it.
    Behind(u8),
    /// That many after it.
    Ahead(u8),
    /// Any number.
    Exact(u16),
}

/// How long a DATA payload is, relative to the block size.
#[derive(Arbitrary, Debug, Clone, Copy)]
enum DataLen {
    /// Exactly the block size.
    Full,
    /// Shorter than the block size: a final block.
    Short(u16),
    /// Longer than the block size.
    Over(u8),
}

#[derive(Arbitrary, Debug)]
enum Step {
    /// Advance the clock by this many milliseconds, modulo 5001.
    Wait(u16),
    /// Any datagram.
    Raw(Vec<u8>),
    /// A DATA packet whose payload repeats `fill`.
    Data {
        block: BlockRef,
        len: DataLen,
        fill: Vec<u8>,
    },
    /// An ACK.
    Ack(BlockRef),
    /// An ERROR.
    Error { code: u16, message: String },
    /// An OACK.
    Oack(Vec<FuzzOption>),
    /// The opening request again.
    SameRequest,
    /// Another request.
    NewRequest(bool),
    /// The server's shutdown grace runs out.
    Cancel,
    /// This many (modulo 16) full in-order DATA blocks, each delivered on its own: a fast way
    /// through a long upload.
    Blocks { count: u8, fill: Vec<u8> },
    /// This many (modulo 16) ACKs, each of the latest DATA the server has sent: a fast way
    /// through a long read.
    Acks(u8),
}

/// What the receiving side has taken so far, as a write's session should have.
struct UploadModel {
    block_size: usize,
    decoder: Option<NetasciiDecoder>,
    contents: BytesMut,
    received: u64,
    complete: bool,
    failed: bool,
}

impl UploadModel {
    /// The next block number the receiver takes.
    fn expected(&self) -> u16 {
        (self.received + 1) as u16
    }

    /// Follows one datagram the session took.
    fn take(&mut self, datagram: &[u8]) {
        if self.complete || self.failed {
            return;
        }
        let Ok(Packet::Data { block, data }) = Packet::decode(datagram) else {
            return;
        };
        if block != self.expected() {
            return;
        }
        if data.len() > self.block_size {
            self.failed = true;
            return;
        }
        match &mut self.decoder {
            Some(decoder) => decoder.decode(data, &mut self.contents),
            None => self.contents.extend_from_slice(data),
        }
        self.received += 1;
        if data.len() < self.block_size {
            if let Some(decoder) = &mut self.decoder {
                decoder.finish(&mut self.contents);
            }
            self.complete = true;
        }
    }
}

fuzz_target!(|input: Input| {
    paused_runtime().block_on(run(input));
});

/// Block size and retransmission timeout in force, read from the server's OACK if it sent one.
fn negotiated(first: Option<&Packet<'_>>, config: &Config) -> (usize, Duration) {
    let mut block_size = 512;
    let mut timeout = config.retry_timeout;
    if let Some(Packet::Oack { options }) = first {
        for option in options {
            let Some(value) = parse_decimal(option.value) else {
                continue;
            };
            match option.name {
                "blksize" => block_size = value as usize,
                "timeout" => timeout = Duration::from_secs(value),
                "utimeout" => timeout = Duration::from_micros(value),
                _ => {}
            }
        }
    }
    (block_size, timeout)
}

fn payload(len: usize, fill: &[u8]) -> Vec<u8> {
    if fill.is_empty() {
        return vec![b'x'; len];
    }
    fill.iter().copied().cycle().take(len).collect()
}

fn relative(base: u16, block: BlockRef) -> u16 {
    match block {
        BlockRef::Next => base,
        BlockRef::Behind(n) => base.wrapping_sub(u16::from(n)),
        BlockRef::Ahead(n) => base.wrapping_add(u16::from(n)),
        BlockRef::Exact(n) => n,
    }
}

/// Delivers one datagram; the model of a write takes what the session takes (it was live and
/// its queue had room).
async fn deliver(driver: &mut Driver, model: &mut UploadModel, write: bool, datagram: Bytes) {
    if driver.deliver(datagram.clone()).await && write {
        model.take(&datagram);
    }
}

/// The highest DATA block the server has sent so far (files are too short for numbers to wrap).
struct LastData {
    /// How many of the sent datagrams have been looked at.
    seen: usize,
    block: u16,
}

impl LastData {
    fn update(&mut self, sent: &[Vec<u8>]) -> u16 {
        for packet in decode_all(&sent[self.seen..]) {
            if let Packet::Data { block, .. } = packet {
                self.block = self.block.max(block);
            }
        }
        self.seen = sent.len();
        self.block
    }
}

async fn run(input: Input) {
    let config = Config::default();
    let store = MemoryStore::default();
    let stored = input
        .stored
        .as_ref()
        .map(|file| Bytes::copy_from_slice(&file[..file.len().min(4096)]));
    if let Some(file) = &stored {
        store.insert(NAME, file.clone());
    }
    let handler = TftpHandler::new(store, config.clone());
    let mode: &[u8] = if input.netascii {
        b"netascii"
    } else {
        b"octet"
    };
    let options = &input.options[..input.options.len().min(8)];
    let first = request(input.write, NAME.as_bytes(), mode, options);
    if !matches!(Packet::decode(&first), Ok(Packet::Rrq(_) | Packet::Wrq(_))) {
        return; // a malformed request (empty option name, NUL in a value): request_options' job
    }
    let (mut driver, opened) = Driver::open(&handler, first.clone());
    assert!(opened, "no session for {}", hex(&first));
    driver.settle().await;
    assert!(!driver.sent.is_empty(), "the session sent no first reply");

    let (block_size, timeout) = {
        let sent = decode_all(&driver.sent[..1]);
        negotiated(sent.first(), &config)
    };
    let mut model = UploadModel {
        block_size,
        decoder: input.netascii.then(NetasciiDecoder::new),
        contents: BytesMut::new(),
        received: 0,
        complete: false,
        failed: false,
    };
    let mut last_data = LastData { seen: 0, block: 0 };

    for step in input.steps.iter().take(512) {
        if driver.is_done() {
            break;
        }
        let datagram = match step {
            Step::Blocks { count, fill } => {
                for _ in 0..count % 16 {
                    let data = payload(block_size, fill);
                    let datagram = Packet::Data {
                        block: model.expected(),
                        data: &data,
                    }
                    .to_bytes();
                    deliver(&mut driver, &mut model, input.write, datagram).await;
                }
                continue;
            }
            Step::Acks(count) => {
                for _ in 0..count % 16 {
                    let block = last_data.update(&driver.sent);
                    let datagram = Packet::Ack { block }.to_bytes();
                    deliver(&mut driver, &mut model, input.write, datagram).await;
                }
                continue;
            }
            Step::Wait(ms) => {
                driver
                    .advance(Duration::from_millis(u64::from(*ms % 5001)))
                    .await;
                continue;
            }
            Step::Cancel => {
                driver.cancel();
                driver.settle().await;
                continue;
            }
            Step::Raw(bytes) => Bytes::copy_from_slice(bytes),
            Step::Data { block, len, fill } => {
                let len = match *len {
                    DataLen::Full => block_size,
                    DataLen::Short(n) => usize::from(n) % block_size,
                    DataLen::Over(n) => block_size + 1 + usize::from(n),
                };
                let data = payload(len, fill);
                let block = relative(model.expected(), *block);
                Packet::Data { block, data: &data }.to_bytes()
            }
            Step::Ack(block) => Packet::Ack {
                block: relative(last_data.update(&driver.sent), *block),
            }
            .to_bytes(),
            Step::Error { code, message } => {
                let message: String = message.chars().filter(|&c| c != '\0').collect();
                Packet::Error {
                    code: ErrorCode::from_u16(*code),
                    message: &message,
                }
                .to_bytes()
            }
            Step::Oack(options) => {
                let mut out = vec![0, 6];
                put_options(&mut out, options);
                Bytes::from(out)
            }
            Step::SameRequest => first.clone(),
            Step::NewRequest(write) => request(*write, b"other.bin", b"octet", &[]),
        };
        deliver(&mut driver, &mut model, input.write, datagram).await;
    }

    let limit = timeout * (config.max_retries + 1) + config.dally + Duration::from_secs(1);
    assert!(
        driver.run_out(limit).await,
        "the session did not end within {limit:?} after the input ended"
    );

    if let Some(SessionEnd::Handoff(datagram)) = &driver.end {
        assert!(
            matches!(
                Packet::decode(datagram),
                Ok(Packet::Rrq(_) | Packet::Wrq(_))
            ),
            "handed off a datagram that is not a request: {}",
            hex(datagram)
        );
    }

    let sent = decode_all(&driver.sent);
    if input.write {
        for packet in &sent {
            match packet {
                Packet::Ack { block } => assert!(
                    u64::from(*block) <= model.received,
                    "ACK {block} with only {} blocks received",
                    model.received
                ),
                Packet::Oack { .. } | Packet::Error { .. } => {}
                other => panic!("a write's server sent {other:?}"),
            }
        }
        let now = handler.store().get(NAME);
        if model.complete {
            assert_eq!(
                now.as_deref(),
                Some(&model.contents[..]),
                "the store does not hold the completed upload"
            );
        } else {
            assert_eq!(now, stored, "the store changed without a completed upload");
        }
    } else {
        let file = stored.unwrap_or_default();
        let file = if input.netascii {
            let mut out = BytesMut::new();
            NetasciiEncoder::new().encode(&file, &mut out, usize::MAX);
            out.freeze()
        } else {
            file
        };
        for packet in &sent {
            match packet {
                Packet::Data { block, data } => {
                    assert!(*block >= 1, "DATA 0");
                    let start = (usize::from(*block) - 1) * block_size;
                    assert!(start <= file.len(), "DATA {block} past the end of the file");
                    let end = (start + block_size).min(file.len());
                    assert_eq!(
                        *data,
                        &file[start..end],
                        "DATA {block} is not that block of the file"
                    );
                }
                Packet::Oack { .. } | Packet::Error { .. } => {}
                other => panic!("a read's server sent {other:?}"),
            }
        }
    }
}
