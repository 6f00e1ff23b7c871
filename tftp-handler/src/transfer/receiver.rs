//! The receiving side of a transfer: DATA in, ACKs out (a server answering a write request,
//! or a client downloading: then the request is resent until the server's OACK or DATA 1
//! arrives, and an OACK is answered with ACK 0).
//!
//! The first reply (ACK 0, or the OACK when options were accepted) is resent on timeout until
//! DATA 1 arrives. Blocks are kept only in order; with `windowsize` (RFC 7440) an ACK goes out
//! after every `windowsize` blocks, and on a gap (a block from further ahead) the last in-order
//! block is acknowledged once so that the sender resumes right after it. A duplicate block
//! (the sender did not see our ACK) is answered with the current ACK, once per resent window:
//! a duplicate that directly follows the previous duplicate is part of the same window and
//! draws nothing, so each resend of the sender, however soon it comes, gets one ACK. On
//! timeout the current ACK is resent. When the short final block arrives the contents are handed over for
//! publishing ([`Transfer::take_upload`]); only once published does the final ACK go out, so
//! a client that reads the file right after its upload sees it. Then the transfer dallies,
//! answering a retransmitted final block with the final ACK again (RFC 1350 section 6).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;
use udp_server::Datagram;

use super::retry::{Expiry, Retransmit, Timing};
use super::sink::{Consumer, Sink};
use super::{Outcome, Progress, Transfer};
use crate::error::ErrorReply;
use crate::options::{MAX_WINDOW_SIZE, RequestOptions};
use crate::packet::{ErrorCode, Mode, Packet, TftpOption, ack};

/// Upper bound on memory reserved up front from an announced `tsize`: a client's claim alone
/// never makes the server allocate much.
const MAX_PREALLOCATION: u64 = 16 << 20;

/// Where the receiver is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// A client's request is out (it is the `first_reply` resent on timeout); waiting for
    /// the server's OACK or first block.
    Requesting(RequestOptions),
    /// Taking blocks.
    Receiving,
    /// The final block (this number) is in; waiting for the contents to be published.
    Publishing(u16),
    /// Published and acknowledged; answering a resent final block (this number) until then.
    Dallying(u16, Instant),
    /// Nothing more to do.
    Done,
}

/// Receives one file into a [`Sink`] that lives for `'a`.
#[derive(Debug)]
pub(crate) struct Receiver<'a> {
    /// Bytes per full block.
    block_size: usize,
    /// Blocks between ACKs.
    window_size: u16,
    /// Retransmission timer.
    timer: Retransmit,
    /// ACK 0 or the OACK (a server), or the request (a client): what is resent until DATA 1
    /// arrives.
    first_reply: Bytes,
    /// Blocks received in order so far.
    received: u64,
    /// In-order blocks since the last ACK.
    since_ack: u16,
    /// Whether the current gap has been reported already.
    gap_reported: bool,
    /// The last duplicate block seen since the last in-order one: the next duplicate that
    /// follows it directly belongs to the same resent window and is not answered.
    last_duplicate: Option<u16>,
    /// Where the file's bytes go.
    sink: Sink<'a>,
    /// The largest file accepted.
    max_size: u64,
    /// How long to answer a resent final block after completing.
    dally: Duration,
    /// Where the receiver is.
    state: State,
    /// The finished contents, until the driver takes them.
    upload: Option<Bytes>,
    /// Datagrams waiting for [`Transfer::poll_transmit`].
    transmit: VecDeque<Datagram>,
    /// Set when the result is known.
    outcome: Option<Outcome>,
}

/// How to set up a [`Receiver`].
#[derive(Debug, Clone)]
pub(crate) struct ReceiverParams {
    /// Bytes per full block.
    pub(crate) block_size: u16,
    /// Blocks between ACKs.
    pub(crate) window_size: u16,
    /// Transfer mode.
    pub(crate) mode: Mode,
    /// The largest file accepted.
    pub(crate) max_size: u64,
    /// The size the client announced (`tsize`), used to size the buffer.
    pub(crate) announced_size: Option<u64>,
    /// How long to dally after completing.
    pub(crate) dally: Duration,
    /// The OACK to send instead of ACK 0.
    pub(crate) oack: Option<Bytes>,
}

impl Receiver<'static> {
    /// Starts a server's side of a write: sends ACK 0 or the OACK.
    pub(crate) fn new(params: ReceiverParams, timing: Timing, now: Instant) -> Self {
        let first_reply = params.oack.clone().unwrap_or_else(ack_zero);
        let sink = Sink::buffer(params.mode, preallocation(&params), true);
        Self::start(params, sink, first_reply, State::Receiving, timing, now)
    }
}

impl<'a> Receiver<'a> {
    /// Starts a client's download: sends `request` (an RRQ asking for `asked`) and waits for
    /// the server's OACK or first block. The file goes to `consume` as it arrives, or with
    /// none is gathered and handed over at the end.
    pub(crate) fn download(
        request: Bytes,
        asked: RequestOptions,
        mode: Mode,
        consume: Option<Consumer<'a>>,
        max_size: u64,
        timing: Timing,
        now: Instant,
    ) -> Self {
        let declined = asked.declined();
        let sink = match consume {
            Some(consume) => Sink::consumer(mode, consume),
            None => Sink::buffer(mode, 0, false),
        };
        let params = ReceiverParams {
            block_size: declined.block_size,
            window_size: declined.window_size,
            mode,
            max_size,
            announced_size: None,
            dally: Duration::ZERO,
            oack: None,
        };
        Self::start(params, sink, request, State::Requesting(asked), timing, now)
    }

    fn start(
        params: ReceiverParams,
        sink: Sink<'a>,
        first_reply: Bytes,
        state: State,
        timing: Timing,
        now: Instant,
    ) -> Self {
        let mut receiver = Self {
            block_size: usize::from(params.block_size),
            window_size: params.window_size.clamp(1, MAX_WINDOW_SIZE),
            timer: Retransmit::new(timing),
            first_reply,
            received: 0,
            since_ack: 0,
            gap_reported: false,
            last_duplicate: None,
            sink,
            max_size: params.max_size,
            dally: params.dally,
            state,
            upload: None,
            transmit: VecDeque::new(),
            outcome: None,
        };
        receiver.send_current_ack();
        receiver.timer.arm(now);
        receiver
    }

    /// A client's request was answered with an OACK: run with what it grants, and
    /// acknowledge it with ACK 0 (RFC 2347).
    fn handle_oack(&mut self, now: Instant, asked: RequestOptions, oack: &[TftpOption<'_>]) {
        let params = match asked.accept(oack) {
            Ok(params) => params,
            Err(reply) => return self.fail(reply),
        };
        self.block_size = usize::from(params.block_size);
        self.window_size = params.window_size.clamp(1, MAX_WINDOW_SIZE);
        if let Some(timeout) = params.retry_timeout {
            self.timer.set_timeout(timeout);
        }
        if let Some(size) = params.announced_size {
            self.sink
                .reserve(size.min(self.max_size).min(MAX_PREALLOCATION) as usize);
        }
        self.first_reply = ack_zero();
        self.state = State::Receiving;
        self.timer.progress(now);
        self.send_current_ack();
        self.timer.arm(now);
    }

    /// Acknowledges the last in-order block (or the request, before DATA 1).
    fn send_current_ack(&mut self) {
        let datagram = if self.received == 0 {
            Datagram::new(self.first_reply.clone())
        } else {
            Datagram::with_header(ack(self.received as u16), Bytes::new())
        };
        self.transmit.push_back(datagram);
        self.since_ack = 0;
    }

    fn handle_data(&mut self, now: Instant, block: u16, data: &[u8]) {
        let expected = (self.received + 1) as u16;
        // Where the block stands relative to the expected one, on wrapped numbers.
        let offset = block.wrapping_sub(expected) as i16;
        if offset < 0 {
            let same_burst = self.last_duplicate == Some(block.wrapping_sub(1));
            self.last_duplicate = Some(block);
            if self.received > 0 && !same_burst {
                self.send_current_ack();
            }
            return;
        }
        if offset > 0 {
            if !self.gap_reported {
                self.gap_reported = true;
                self.send_current_ack();
            }
            return;
        }
        if data.len() > self.block_size {
            return self.fail(ErrorReply::new(
                ErrorCode::IllegalOperation,
                format!("DATA block larger than the block size {}", self.block_size),
            ));
        }
        if let Err(message) = self.sink.write(data) {
            return self.fail(ErrorReply::new(ErrorCode::NotDefined, message));
        }
        if self.sink.written() > self.max_size {
            return self.fail(ErrorReply::new(
                ErrorCode::DiskFull,
                format!("file too large: the limit is {} bytes", self.max_size),
            ));
        }
        self.received += 1;
        self.gap_reported = false;
        self.last_duplicate = None;
        self.timer.progress(now);
        if data.len() < self.block_size {
            self.timer.disarm();
            match self.sink.finish() {
                Ok(contents) => self.upload = Some(contents),
                Err(message) => return self.fail(ErrorReply::new(ErrorCode::NotDefined, message)),
            }
            self.state = State::Publishing(block);
            return;
        }
        self.since_ack += 1;
        if self.since_ack >= self.window_size {
            self.send_current_ack();
            self.timer.arm(now);
        }
    }
}

/// ACK 0: a server's answer to a write request without options, a client's to an OACK.
fn ack_zero() -> Bytes {
    Bytes::from_static(&[0, 4, 0, 0])
}

/// Bytes to reserve up front: the announced size, within limits.
fn preallocation(params: &ReceiverParams) -> usize {
    params
        .announced_size
        .unwrap_or(0)
        .min(params.max_size)
        .min(MAX_PREALLOCATION) as usize
}

impl Transfer for Receiver<'_> {
    fn handle_packet(&mut self, now: Instant, packet: &Packet<'_>) {
        match (packet, self.state) {
            (Packet::Oack { options }, State::Requesting(asked)) => {
                self.handle_oack(now, asked, options);
            }
            (&Packet::Data { block, data }, State::Requesting(_)) => {
                // The server ignored every option: lock-step at 512 bytes.
                self.state = State::Receiving;
                self.handle_data(now, block, data);
            }
            (
                &Packet::Error { code, message },
                State::Requesting(_) | State::Receiving | State::Publishing(_),
            ) => {
                self.outcome = Some(Outcome::peer_error(code, message));
                self.state = State::Done;
                self.timer.disarm();
            }
            (Packet::Error { .. }, State::Dallying(..)) => self.state = State::Done,
            (&Packet::Data { block, data }, State::Receiving) => self.handle_data(now, block, data),
            (&Packet::Data { block, .. }, State::Dallying(last, _)) if block == last => {
                self.transmit
                    .push_back(Datagram::with_header(ack(last), Bytes::new()));
            }
            // ACKs, OACKs and stray DATA have no meaning here: ignore them.
            _ => {}
        }
    }

    fn handle_repeated_request(&mut self) {
        if matches!(self.state, State::Receiving) && self.timer.resend_on_request() {
            self.send_current_ack(); // the first reply: nothing has been received
        }
    }

    fn handle_timeout(&mut self, now: Instant) {
        match self.state {
            State::Requesting(_) | State::Receiving => match self.timer.expire(now) {
                Expiry::NotYet | Expiry::Wait => {}
                Expiry::Resend => self.send_current_ack(),
                Expiry::GiveUp => {
                    self.outcome = Some(Outcome::TimedOut);
                    self.state = State::Done;
                }
            },
            State::Dallying(_, until) if now >= until => self.state = State::Done,
            _ => {}
        }
    }

    fn poll_transmit(&mut self) -> Option<Datagram> {
        self.transmit.pop_front()
    }

    fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            State::Requesting(_) | State::Receiving => self.timer.deadline(),
            State::Dallying(_, until) => Some(until),
            State::Publishing(_) | State::Done => None,
        }
    }

    fn outcome(&self) -> Option<&Outcome> {
        self.outcome.as_ref()
    }

    fn is_finished(&self) -> bool {
        self.state == State::Done
    }

    fn stalled(&self, now: Instant) -> bool {
        self.timer.stalled(now)
    }

    fn progress(&self) -> Progress {
        Progress {
            bytes: self.sink.written(),
            retransmits: self.timer.retransmits(),
        }
    }

    fn fail(&mut self, reply: ErrorReply) {
        if self.state == State::Done {
            return;
        }
        self.transmit.push_back(Datagram::new(reply.to_bytes()));
        self.outcome = Some(Outcome::Failed(reply));
        self.state = State::Done;
        self.upload = None;
        self.timer.disarm();
    }

    fn take_upload(&mut self) -> Option<Bytes> {
        self.upload.take()
    }

    fn handle_published(&mut self, now: Instant, result: Result<(), ErrorReply>) {
        let State::Publishing(last) = self.state else {
            return;
        };
        match result {
            Err(reply) => self.fail(reply),
            Ok(()) => {
                self.transmit
                    .push_back(Datagram::with_header(ack(last), Bytes::new()));
                self.outcome = Some(Outcome::Completed);
                self.state = if self.dally.is_zero() {
                    State::Done
                } else {
                    State::Dallying(last, now + self.dally)
                };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::transfer::testing::{SECOND, Sent, drain, timing};

    fn params(block_size: u16, window_size: u16) -> ReceiverParams {
        ReceiverParams {
            block_size,
            window_size,
            mode: Mode::Octet,
            max_size: 1 << 30,
            announced_size: None,
            dally: Duration::from_secs(2),
            oack: None,
        }
    }

    fn data(block: u16, data: &[u8]) -> Packet<'_> {
        Packet::Data { block, data }
    }

    /// Takes the upload and reports it published.
    fn publish(r: &mut Receiver, now: Instant) -> Bytes {
        let upload = r.take_upload().expect("upload ready");
        r.handle_published(now, Ok(()));
        upload
    }

    #[test]
    fn the_request_is_acknowledged_with_ack_zero() {
        let now = Instant::now();
        let mut r = Receiver::new(params(512, 1), timing(), now);
        assert_eq!(drain(&mut r), vec![Sent::Ack(0)]);
    }

    #[test]
    fn each_block_is_acknowledged_in_lock_step_and_the_file_assembled() {
        let now = Instant::now();
        let mut r = Receiver::new(params(4, 1), timing(), now);
        drain(&mut r);
        r.handle_packet(now, &data(1, b"abcd"));
        assert_eq!(drain(&mut r), vec![Sent::Ack(1)]);
        r.handle_packet(now, &data(2, b"ef"));
        assert!(
            drain(&mut r).is_empty(),
            "the final ACK waits for publishing"
        );
        assert_eq!(publish(&mut r, now), "abcdef");
        assert_eq!(drain(&mut r), vec![Sent::Ack(2)]);
        assert_eq!(r.outcome(), Some(&Outcome::Completed));
        assert_eq!(r.progress().bytes, 6);
    }

    #[test]
    fn a_multiple_of_the_block_size_ends_with_an_empty_block() {
        let now = Instant::now();
        let mut r = Receiver::new(params(4, 1), timing(), now);
        r.handle_packet(now, &data(1, b"abcd"));
        assert!(r.take_upload().is_none());
        r.handle_packet(now, &data(2, b""));
        assert_eq!(publish(&mut r, now), "abcd");
    }

    #[test]
    fn a_duplicate_block_is_acknowledged_again_but_stored_once() {
        let now = Instant::now();
        let mut r = Receiver::new(params(4, 1), timing(), now);
        r.handle_packet(now, &data(1, b"abcd"));
        drain(&mut r);
        let later = now + SECOND;
        r.handle_packet(later, &data(1, b"abcd"));
        assert_eq!(drain(&mut r), vec![Sent::Ack(1)]);
        r.handle_packet(later, &data(2, b"x"));
        assert_eq!(publish(&mut r, later), "abcdx");
    }

    #[test]
    fn every_resend_of_a_block_draws_an_ack_however_soon_it_comes() {
        let now = Instant::now();
        let mut r = Receiver::new(params(4, 1), timing(), now);
        r.handle_packet(now, &data(1, b"abcd"));
        drain(&mut r);
        // Our ACK 1 is lost twice: the sender's resends 10 ms apart each get it again.
        for ms in [10, 20, 30] {
            r.handle_packet(now + Duration::from_millis(ms), &data(1, b"abcd"));
            assert_eq!(drain(&mut r), vec![Sent::Ack(1)]);
        }
    }

    #[test]
    fn a_burst_of_duplicates_draws_one_ack() {
        let now = Instant::now();
        let mut r = Receiver::new(params(4, 4), timing(), now);
        for block in 1..=4 {
            r.handle_packet(now, &data(block, b"abcd"));
        }
        assert_eq!(drain(&mut r), vec![Sent::Ack(0), Sent::Ack(4)]);
        let later = now + SECOND;
        for block in 1..=4 {
            r.handle_packet(later, &data(block, b"abcd"));
        }
        assert_eq!(drain(&mut r), vec![Sent::Ack(4)]);
    }

    #[test]
    fn the_ack_is_resent_on_timeout_and_the_transfer_given_up_after_the_retries() {
        let now = Instant::now();
        let mut r = Receiver::new(params(4, 1), timing(), now);
        r.handle_packet(now, &data(1, b"abcd"));
        drain(&mut r);
        let mut resent = vec![];
        while !r.is_finished() {
            let t = r.poll_timeout().unwrap();
            r.handle_timeout(t);
            resent.extend(drain(&mut r));
        }
        assert_eq!(resent, vec![Sent::Ack(1); 3]);
        assert_eq!(r.outcome(), Some(&Outcome::TimedOut));
        assert!(r.take_upload().is_none(), "nothing is published");
    }

    #[test]
    fn a_silent_peer_gets_at_most_three_copies_of_ack_zero() {
        let now = Instant::now();
        let mut r = Receiver::new(params(512, 1), timing(), now);
        let mut sent = drain(&mut r).len();
        while !r.is_finished() {
            let t = r.poll_timeout().unwrap();
            r.handle_timeout(t);
            sent += drain(&mut r).len();
        }
        assert_eq!(sent, 3);
    }

    #[test]
    fn a_resent_final_block_is_acknowledged_while_dallying() {
        let now = Instant::now();
        let mut r = Receiver::new(params(4, 1), timing(), now);
        r.handle_packet(now, &data(1, b"ab"));
        publish(&mut r, now);
        drain(&mut r);
        assert!(!r.is_finished());
        r.handle_packet(now + SECOND, &data(1, b"ab"));
        assert_eq!(drain(&mut r), vec![Sent::Ack(1)]);
        let end = r.poll_timeout().unwrap();
        assert_eq!(end, now + Duration::from_secs(2));
        r.handle_timeout(end);
        assert!(r.is_finished());
        assert_eq!(r.outcome(), Some(&Outcome::Completed));
    }

    #[test]
    fn a_failed_publish_is_reported_to_the_peer() {
        let now = Instant::now();
        let mut r = Receiver::new(params(4, 1), timing(), now);
        drain(&mut r);
        r.handle_packet(now, &data(1, b"ab"));
        r.take_upload().unwrap();
        r.handle_published(now, Err(ErrorReply::new(ErrorCode::DiskFull, "store full")));
        assert_eq!(drain(&mut r), vec![Sent::Error(3, "store full".into())]);
        assert!(r.is_finished());
    }

    #[test]
    fn a_file_over_the_size_limit_is_refused_with_error_3() {
        let now = Instant::now();
        let mut p = params(4, 1);
        p.max_size = 6;
        let mut r = Receiver::new(p, timing(), now);
        drain(&mut r);
        r.handle_packet(now, &data(1, b"abcd"));
        r.handle_packet(now, &data(2, b"efgh"));
        let sent = drain(&mut r);
        assert!(matches!(sent.last(), Some(Sent::Error(3, _))), "{sent:?}");
        assert!(r.is_finished());
        assert!(r.take_upload().is_none());
    }

    #[test]
    fn a_peer_error_ends_the_upload_without_publishing() {
        let now = Instant::now();
        let mut r = Receiver::new(params(4, 1), timing(), now);
        r.handle_packet(now, &data(1, b"abcd"));
        drain(&mut r);
        r.handle_packet(
            now,
            &Packet::Error {
                code: ErrorCode::NotDefined,
                message: "bye",
            },
        );
        assert!(r.is_finished());
        assert!(drain(&mut r).is_empty());
        assert!(r.take_upload().is_none());
    }

    #[test]
    fn a_window_is_acknowledged_once_at_its_end() {
        let now = Instant::now();
        let mut r = Receiver::new(params(4, 3), timing(), now);
        drain(&mut r);
        r.handle_packet(now, &data(1, b"abcd"));
        r.handle_packet(now, &data(2, b"abcd"));
        assert!(drain(&mut r).is_empty());
        r.handle_packet(now, &data(3, b"abcd"));
        assert_eq!(drain(&mut r), vec![Sent::Ack(3)]);
    }

    #[test]
    fn a_gap_acknowledges_the_last_in_order_block_once() {
        let now = Instant::now();
        let mut r = Receiver::new(params(4, 4), timing(), now);
        drain(&mut r);
        r.handle_packet(now, &data(1, b"abcd"));
        // Block 2 is lost; 3 and 4 arrive.
        r.handle_packet(now, &data(3, b"abcd"));
        r.handle_packet(now, &data(4, b"abcd"));
        assert_eq!(drain(&mut r), vec![Sent::Ack(1)]);
        // The sender resumes from 2.
        for block in 2..=5 {
            r.handle_packet(now, &data(block, b"abcd"));
        }
        assert_eq!(drain(&mut r), vec![Sent::Ack(5)]);
    }

    #[test]
    fn block_numbers_wrap_past_65535() {
        let now = Instant::now();
        let mut r = Receiver::new(params(8, 16), timing(), now);
        let blocks = 140_000u64;
        for i in 1..=blocks {
            r.handle_packet(now, &data(i as u16, &[i as u8; 8]));
        }
        r.handle_packet(now, &data((blocks + 1) as u16, b"end"));
        let file = publish(&mut r, now);
        assert_eq!(file.len() as u64, blocks * 8 + 3);
        assert_eq!(&file[8 * 65_535..8 * 65_536], &[65_536u64 as u8; 8]);
    }

    #[test]
    fn netascii_is_translated_back_on_the_way_in() {
        let now = Instant::now();
        let mut p = params(5, 1);
        p.mode = Mode::Netascii;
        let mut r = Receiver::new(p, timing(), now);
        r.handle_packet(now, &data(1, b"a\r\nb\r"));
        r.handle_packet(now, &data(2, b"\0\r\n"));
        assert_eq!(publish(&mut r, now), "a\nb\r\n");
    }

    #[test]
    fn the_oack_is_the_first_reply_when_options_were_accepted() {
        let now = Instant::now();
        let mut p = params(1024, 1);
        p.oack = Some(Bytes::from_static(b"\0\x06blksize\x001024\0"));
        let mut r = Receiver::new(p, timing(), now);
        assert!(matches!(drain(&mut r)[..], [Sent::Oack(_)]));
        r.handle_timeout(now + SECOND);
        assert!(
            matches!(drain(&mut r)[..], [Sent::Oack(_)]),
            "resent on timeout"
        );
    }

    #[test]
    fn a_block_larger_than_negotiated_is_an_illegal_operation() {
        let now = Instant::now();
        let mut r = Receiver::new(params(4, 1), timing(), now);
        drain(&mut r);
        r.handle_packet(now, &data(1, b"abcde"));
        assert!(matches!(drain(&mut r)[..], [Sent::Error(4, _)]));
        assert!(r.is_finished());
    }

    fn download(asked: RequestOptions, now: Instant) -> Receiver<'static> {
        let rrq = Bytes::from_static(b"\0\x01f\0octet\0");
        Receiver::download(rrq, asked, Mode::Octet, None, 1 << 20, timing(), now)
    }

    #[test]
    fn a_client_download_resends_its_request_until_answered() {
        let now = Instant::now();
        let mut r = download(RequestOptions::default(), now);
        assert_eq!(drain(&mut r).len(), 1, "the RRQ");
        r.handle_timeout(now + SECOND);
        assert_eq!(drain(&mut r).len(), 1, "the RRQ again");
    }

    #[test]
    fn a_first_block_without_an_oack_starts_a_lock_step_download() {
        let now = Instant::now();
        let mut r = download(RequestOptions::default().with_block_size(1024), now);
        drain(&mut r);
        r.handle_packet(now, &data(1, &[1; 512]));
        assert_eq!(
            drain(&mut r),
            vec![Sent::Ack(1)],
            "512 is a full block: options declined"
        );
        r.handle_packet(now, &data(2, b"end"));
        assert_eq!(publish(&mut r, now).len(), 515);
    }

    #[test]
    fn an_oack_is_acknowledged_with_ack_zero_and_its_block_size_used() {
        let now = Instant::now();
        let mut r = download(RequestOptions::default().with_block_size(1024), now);
        drain(&mut r);
        let options = vec![TftpOption {
            name: "blksize",
            value: "1024",
        }];
        r.handle_packet(now, &Packet::Oack { options });
        assert_eq!(drain(&mut r), vec![Sent::Ack(0)]);
        r.handle_packet(now, &data(1, &[1; 1024]));
        assert_eq!(drain(&mut r), vec![Sent::Ack(1)]);
        r.handle_timeout(now + SECOND);
        assert_eq!(
            drain(&mut r),
            vec![Sent::Ack(1)],
            "after data, the ACK is what is resent"
        );
    }
}
