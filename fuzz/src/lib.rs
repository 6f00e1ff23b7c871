//! Shared pieces of the fuzz targets that drive a whole [`TftpHandler`] session: fuzzable
//! request parts (file name, mode, options) that encode into raw datagrams, and [`Driver`],
//! which runs one session future by hand on a paused-clock tokio runtime.
//!
//! The driver polls the session future itself (wrapped in [`tokio::task::unconstrained`], so
//! one poll runs it until it truly waits), delivers datagrams through the detached
//! [`SessionIo`] as the router would, and moves virtual time only when told to. Everything the
//! session sends is collected in [`Driver::sent`]. Nothing here judges the protocol: the
//! assertions are the targets' business.

use std::future::{Future, poll_fn};
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;

use arbitrary::Arbitrary;
use bytes::Bytes;
use tftp_handler::{Packet, Store, TftpHandler};
use tokio::task::Unconstrained;
use udp_server::{DetachedPeer, ProtocolHandler, SessionEnd, SessionFuture, SessionIo};

/// The peer every session serves (TEST-NET-1; there is no socket).
pub const PEER: SocketAddr = SocketAddr::new(
    std::net::IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1)),
    50_000,
);

/// A current-thread runtime with the clock paused: timers fire only when the driver advances
/// time, or, while a future is awaited with nothing else to do, at once (auto-advance).
pub fn paused_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("a current-thread runtime")
}

/// Flips the case of the ASCII letters of `text` selected by the bits of `mask`, cyclically.
fn mangle_case(text: &str, mask: u8) -> String {
    text.chars()
        .enumerate()
        .map(|(i, c)| {
            if mask & (1 << (i % 8)) != 0 {
                c.to_ascii_uppercase()
            } else {
                c
            }
        })
        .collect()
}

/// A file name, as text or as raw bytes (which may not be UTF-8 or may hold a NUL).
#[derive(Arbitrary, Debug, Clone)]
pub enum FileName {
    /// A short fixed name, so that requests often name the stored file.
    Fixed(u8),
    /// Any text.
    Text(String),
    /// Any bytes.
    Raw(Vec<u8>),
}

impl FileName {
    /// The name's bytes as written into a request.
    pub fn bytes(&self) -> Vec<u8> {
        match self {
            Self::Fixed(n) => {
                let names: [&[u8]; 4] = [b"boot.bin", b"/boot.bin", b"dir/file.txt", b"a"];
                names[usize::from(*n) % names.len()].to_vec()
            }
            Self::Text(text) => text.as_bytes().to_vec(),
            Self::Raw(bytes) => bytes.clone(),
        }
    }
}

/// A transfer mode as written on the wire.
#[derive(Arbitrary, Debug, Clone)]
pub enum ModeName {
    /// `octet`, with the case of some letters flipped.
    Octet(u8),
    /// `netascii`, with the case of some letters flipped.
    Netascii(u8),
    /// `mail`, which the server refuses.
    Mail,
    /// Anything else.
    Other(Vec<u8>),
}

impl ModeName {
    /// The mode's bytes as written into a request.
    pub fn bytes(&self) -> Vec<u8> {
        match self {
            Self::Octet(mask) => mangle_case("octet", *mask).into_bytes(),
            Self::Netascii(mask) => mangle_case("netascii", *mask).into_bytes(),
            Self::Mail => b"mail".to_vec(),
            Self::Other(bytes) => bytes.clone(),
        }
    }
}

/// An option name: one the server knows, or anything.
#[derive(Arbitrary, Debug, Clone)]
pub enum OptionName {
    /// `blksize` (RFC 2348).
    BlockSize,
    /// `timeout` (RFC 2349).
    Timeout,
    /// `utimeout` (tftp-hpa).
    MicroTimeout,
    /// `tsize` (RFC 2349).
    TransferSize,
    /// `windowsize` (RFC 7440).
    WindowSize,
    /// Any other name.
    Other(String),
}

/// An option value: numbers of various sizes, or any text.
#[derive(Arbitrary, Debug, Clone)]
pub enum OptionValue {
    /// A small number, in decimal.
    Small(u8),
    /// A 16-bit number, in decimal.
    Medium(u16),
    /// Any 64-bit number, in decimal.
    Large(u64),
    /// A number with leading zeros.
    Padded(u16, u8),
    /// A number past `u64::MAX`.
    Overflow(u8),
    /// Any text.
    Text(String),
}

/// One option of a request or OACK.
#[derive(Arbitrary, Debug, Clone)]
pub struct FuzzOption {
    /// The option's name.
    pub name: OptionName,
    /// Which letters of the name to upper-case.
    pub case_mask: u8,
    /// The option's value.
    pub value: OptionValue,
}

impl FuzzOption {
    /// The option's name as written.
    pub fn name(&self) -> String {
        let base = match &self.name {
            OptionName::BlockSize => "blksize",
            OptionName::Timeout => "timeout",
            OptionName::MicroTimeout => "utimeout",
            OptionName::TransferSize => "tsize",
            OptionName::WindowSize => "windowsize",
            OptionName::Other(name) => name,
        };
        mangle_case(base, self.case_mask)
    }

    /// The option's value as written.
    pub fn value(&self) -> String {
        match &self.value {
            OptionValue::Small(v) => v.to_string(),
            OptionValue::Medium(v) => v.to_string(),
            OptionValue::Large(v) => v.to_string(),
            OptionValue::Padded(v, zeros) => {
                format!("{}{v}", "0".repeat(usize::from(*zeros % 24)))
            }
            OptionValue::Overflow(extra) => format!("{}{extra}", u64::MAX),
            OptionValue::Text(text) => text.clone(),
        }
    }
}

/// Appends `name NUL value NUL` for each option.
pub fn put_options(out: &mut Vec<u8>, options: &[FuzzOption]) {
    for option in options {
        out.extend_from_slice(option.name().as_bytes());
        out.push(0);
        out.extend_from_slice(option.value().as_bytes());
        out.push(0);
    }
}

/// A raw RRQ (`write` false) or WRQ datagram: opcode, name NUL, mode NUL, options.
pub fn request(write: bool, name: &[u8], mode: &[u8], options: &[FuzzOption]) -> Bytes {
    let mut out = vec![0, if write { 2 } else { 1 }];
    out.extend_from_slice(name);
    out.push(0);
    out.extend_from_slice(mode);
    out.push(0);
    put_options(&mut out, options);
    Bytes::from(out)
}

/// A plain decimal number as the server reads option values (digits only), or `None`.
pub fn parse_decimal(value: &str) -> Option<u64> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    value.parse().ok()
}

/// Runs one session future by hand and records what it sends.
pub struct Driver {
    /// The session, until it completes.
    session: Option<Unconstrained<SessionFuture>>,
    /// The far ends of the session's channels.
    far: DetachedPeer,
    /// Every datagram the session sent, in order.
    pub sent: Vec<Vec<u8>>,
    /// How the session ended, once it has.
    pub end: Option<SessionEnd>,
}

/// Deep enough that a session never waits on its send queue (a window is at most 64 blocks
/// by default and is drained after every step).
const OUTBOUND_DEPTH: usize = 1 << 16;

/// As deep as the server's default route queue.
const INBOUND_DEPTH: usize = 64;

impl Driver {
    /// Offers `first` to `handler` as the first datagram from [`PEER`]. Returns the driver,
    /// and whether a session was opened (when not, the driver holds what the handler sent).
    pub fn open<S: Store>(handler: &TftpHandler<S>, first: Bytes) -> (Self, bool) {
        let (io, far) = SessionIo::detached(PEER, INBOUND_DEPTH, OUTBOUND_DEPTH);
        let session = handler.open_session(first, io);
        let opened = session.is_some();
        let mut driver = Self {
            session: session.map(tokio::task::unconstrained),
            far,
            sent: Vec::new(),
            end: None,
        };
        driver.drain();
        (driver, opened)
    }

    /// True once the session has completed (or none was opened).
    pub fn is_done(&self) -> bool {
        self.session.is_none()
    }

    /// Moves what the session queued into [`Driver::sent`]; returns how many there were.
    fn drain(&mut self) -> usize {
        let mut count = 0;
        while let Ok(outgoing) = self.far.outbound.try_recv() {
            assert_eq!(outgoing.to, PEER, "a datagram went to the wrong peer");
            self.sent.push(outgoing.datagram.to_vec());
            count += 1;
        }
        count
    }

    /// Polls the session once; records its end if it completed.
    async fn poll_once(&mut self) -> bool {
        let Some(session) = self.session.as_mut() else {
            return true;
        };
        let polled = poll_fn(|cx| Poll::Ready(Pin::new(&mut *session).poll(cx))).await;
        if let Poll::Ready(end) = polled {
            self.session = None;
            self.end = Some(end);
            return true;
        }
        false
    }

    /// Lets the session run until it waits for something only the peer or the clock can
    /// give (a bounded number of polls).
    pub async fn settle(&mut self) {
        for _ in 0..64 {
            let done = self.poll_once().await;
            let sent = self.drain();
            if done || sent == 0 {
                return;
            }
        }
    }

    /// Delivers a datagram as the router would (dropped if the queue is full or the session
    /// is over), then settles. Returns whether the session took it.
    pub async fn deliver(&mut self, datagram: Bytes) -> bool {
        if self.is_done() {
            return false;
        }
        let taken = self.far.inbound.try_send(datagram).is_ok();
        self.settle().await;
        taken
    }

    /// Moves the virtual clock on by `by` (firing due timers), then settles.
    pub async fn advance(&mut self, by: Duration) {
        tokio::time::advance(by).await;
        self.settle().await;
    }

    /// Lets the session run with nothing more from the peer, the clock jumping from timer to
    /// timer, for at most `limit` of virtual time. Returns whether it completed.
    pub async fn run_out(&mut self, limit: Duration) -> bool {
        if let Some(session) = self.session.as_mut() {
            // The send queue is deep enough that the session never waits on it, so it can
            // be drained afterwards.
            if let Ok(end) = tokio::time::timeout(limit, session).await {
                self.session = None;
                self.end = Some(end);
            }
        }
        self.drain();
        self.is_done()
    }

    /// Cancels the session's token, as the server does at the end of its shutdown grace.
    pub fn cancel(&self) {
        self.far.cancel.cancel();
    }
}

/// Decodes every datagram in `sent`, failing with the datagram in hex if one does not decode
/// or is a request (a server never sends one).
pub fn decode_all(sent: &[Vec<u8>]) -> Vec<Packet<'_>> {
    sent.iter()
        .map(|datagram| match Packet::decode(datagram) {
            Ok(Packet::Rrq(_) | Packet::Wrq(_)) => {
                panic!("the server sent a request: {}", hex(datagram))
            }
            Ok(packet) => packet,
            Err(e) => panic!(
                "the server sent an undecodable datagram ({e}): {}",
                hex(datagram)
            ),
        })
        .collect()
}

/// `bytes` in lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
