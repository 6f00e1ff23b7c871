//! Transfers as state machines that do no IO and read no clock.
//!
//! A [`Sender`] sends a file as DATA blocks and takes ACKs (the server's side of a read
//! request); a [`Receiver`] takes DATA blocks and sends ACKs (the server's side of a write
//! request). Both follow the shape of `quinn-proto`: input goes in through
//! [`Transfer::handle_packet`] and [`Transfer::handle_timeout`] with the current time, output
//! comes out of [`Transfer::poll_transmit`] and [`Transfer::poll_timeout`]. The async worker
//! ([`crate::worker`]) is the only thing that touches sockets and timers, so every rule here
//! (retransmission, windows, block-number wrap, dally) is tested by moving time by hand.

pub(crate) mod receiver;
mod retry;
mod rtt;
mod sender;
mod sink;
mod source;

use std::fmt;
use std::time::Instant;

use bytes::Bytes;
use udp_server::Datagram;

use crate::error::ErrorReply;
use crate::packet::{ErrorCode, Packet};

pub(crate) use receiver::Receiver;
pub(crate) use retry::Timing;
pub(crate) use sender::Sender;
pub(crate) use sink::Consumer;
pub(crate) use source::BlockSource;

/// What a transfer state machine offers its driver.
pub(crate) trait Transfer {
    /// A packet from the peer (never a request: those are the worker's business).
    fn handle_packet(&mut self, now: Instant, packet: &Packet<'_>);
    /// The peer sent its request again before ever answering: send the first reply again if
    /// the timer has stopped resending it.
    fn handle_repeated_request(&mut self);
    /// The time from [`poll_timeout`](Self::poll_timeout) has come.
    fn handle_timeout(&mut self, now: Instant);
    /// The next datagram to send, if any.
    fn poll_transmit(&mut self) -> Option<Datagram>;
    /// When [`handle_timeout`](Self::handle_timeout) should next be called.
    fn poll_timeout(&self) -> Option<Instant>;
    /// The result, once settled. A settled transfer may still have work to do (an upload
    /// dallies after it completed); see [`is_finished`](Self::is_finished).
    fn outcome(&self) -> Option<&Outcome>;
    /// True when the transfer has nothing more to do.
    fn is_finished(&self) -> bool;
    /// True when the peer has answered but then not moved the transfer forward for a whole
    /// timeout (a repeat of its request then means it started over).
    fn stalled(&self, now: Instant) -> bool;
    /// Byte and retransmission counts, for the log.
    fn progress(&self) -> Progress;
    /// Ends the transfer now with `reply` sent to the peer (unless it has already ended).
    fn fail(&mut self, reply: ErrorReply);
    /// A completed upload's contents, to publish before the final ACK goes out.
    fn take_upload(&mut self) -> Option<Bytes> {
        None
    }
    /// The result of publishing what [`take_upload`](Self::take_upload) returned.
    fn handle_published(&mut self, now: Instant, result: Result<(), ErrorReply>) {
        let _ = (now, result);
    }
}

/// The time to hand the state machines: tokio's clock, so that tests with paused time drive
/// them (the machines themselves never read a clock).
pub(crate) fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

/// Counts for the end-of-transfer log line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Progress {
    /// File bytes delivered (acknowledged, for a sender; received in order, for a receiver).
    pub(crate) bytes: u64,
    /// Packets sent again after a timeout.
    pub(crate) retransmits: u64,
}

/// How a transfer ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Every byte delivered (and, for an upload, published).
    Completed,
    /// The peer sent an ERROR.
    PeerError {
        /// Its code.
        code: ErrorCode,
        /// Its message.
        message: String,
    },
    /// The peer stopped answering.
    TimedOut,
    /// We ended it with this ERROR.
    Failed(ErrorReply),
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Completed => f.write_str("completed"),
            Self::PeerError { code, message } => {
                write!(f, "peer error {}: {message}", code.as_u16())
            }
            Self::TimedOut => f.write_str("timed out"),
            Self::Failed(reply) => write!(f, "failed: {reply}"),
        }
    }
}

impl Outcome {
    /// The outcome for an ERROR packet from the peer.
    pub(crate) fn peer_error(code: ErrorCode, message: &str) -> Self {
        Self::PeerError {
            code,
            message: message.to_owned(),
        }
    }
}

#[cfg(test)]
pub(crate) mod testing {
    //! Helpers for the state-machine tests: decode what a transfer sent.
    #![allow(clippy::unwrap_used)]

    use std::time::Duration;

    use super::{Timing, Transfer};
    use crate::packet::Packet;

    /// The timeout the state-machine tests use.
    pub(crate) const SECOND: Duration = Duration::from_secs(1);

    /// Timer settings for the tests: 1 s, 3 retries, 2 first-reply retries.
    pub(crate) fn timing() -> Timing {
        Timing {
            timeout: SECOND,
            max_retries: 3,
            first_reply_retries: 2,
            adaptive_floor: None,
        }
    }

    /// A sent packet in owned form, for assertions.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub(crate) enum Sent {
        Data(u16, Vec<u8>),
        Ack(u16),
        Error(u16, String),
        Oack(Vec<(String, String)>),
        /// A client's RRQ or WRQ, with its file name.
        Request(String),
    }

    /// Everything the transfer has queued to send.
    pub(crate) fn drain(t: &mut impl Transfer) -> Vec<Sent> {
        std::iter::from_fn(|| t.poll_transmit())
            .map(|d| {
                let bytes = d.to_vec();
                match Packet::decode(&bytes).unwrap() {
                    Packet::Data { block, data } => Sent::Data(block, data.to_vec()),
                    Packet::Ack { block } => Sent::Ack(block),
                    Packet::Error { code, message } => Sent::Error(code.as_u16(), message.into()),
                    Packet::Oack { options } => Sent::Oack(
                        options
                            .iter()
                            .map(|o| (o.name.to_owned(), o.value.to_owned()))
                            .collect(),
                    ),
                    Packet::Rrq(request) | Packet::Wrq(request) => {
                        Sent::Request(request.filename.to_owned())
                    }
                }
            })
            .collect()
    }

    /// The block numbers of the DATA packets in `sent`.
    pub(crate) fn data_blocks(sent: &[Sent]) -> Vec<u16> {
        sent.iter()
            .filter_map(|s| match s {
                Sent::Data(block, _) => Some(*block),
                _ => None,
            })
            .collect()
    }
}
