//! The sending side of a transfer: DATA out, ACKs in (a server answering a read request, or
//! a client uploading). Before data flows there may be a handshake: a server that accepted
//! options waits for ACK 0 after its OACK; a client waits for ACK 0 or an OACK after its WRQ.
//!
//! Lock-step (RFC 1350) is a window of one; with `windowsize` (RFC 7440) up to that many
//! blocks go out before waiting. An ACK for a block inside the window acknowledges it and
//! everything before it, and the next window starts right after it: at the window's end that
//! is new data, earlier it means the blocks after it were lost and are sent again. A duplicate
//! or stale ACK sends nothing (RFC 1123 4.2.3.1, the Sorcerer's Apprentice): only a timeout
//! resends, and then the whole unacknowledged window. Block numbers are 16 bits on the wire
//! and wrap from 65535 to 0; positions are kept as 64-bit counts and only the low 16 bits are
//! compared, so wrap works at every block and window size.

use std::collections::VecDeque;
use std::time::Instant;

use bytes::Bytes;
use udp_server::Datagram;

use super::retry::{Expiry, Retransmit, Timing};
use super::{BlockSource, Outcome, Progress, Transfer};
use crate::error::ErrorReply;
use crate::options::{MAX_WINDOW_SIZE, RequestOptions};
use crate::packet::{Packet, data_header};

/// What has to happen before DATA flows.
#[derive(Debug)]
enum Handshake {
    /// Nothing: DATA is flowing.
    Done,
    /// A server's OACK went out; ACK 0 starts the data (RFC 2347).
    AwaitAck0(Bytes),
    /// A client's WRQ went out; ACK 0 (options ignored) or an OACK starts the data.
    AwaitReply(Bytes, RequestOptions),
}

/// Sends one file.
#[derive(Debug)]
pub(crate) struct Sender {
    /// Where blocks come from.
    source: BlockSource,
    /// Bytes per block.
    block_size: usize,
    /// Blocks in flight at most.
    window_size: usize,
    /// Retransmission timer.
    timer: Retransmit,
    /// What has to happen before DATA flows.
    handshake: Handshake,
    /// Blocks acknowledged so far (the 1-based index of the last one).
    acked: u64,
    /// Blocks `acked + 1 ..` that have been cut but not acknowledged, oldest first.
    window: VecDeque<Bytes>,
    /// Index of the last block (the short one), once it has been cut.
    final_block: Option<u64>,
    /// Datagrams waiting for [`Transfer::poll_transmit`].
    transmit: VecDeque<Datagram>,
    /// File bytes acknowledged.
    bytes_acked: u64,
    /// Set when the transfer ends.
    outcome: Option<Outcome>,
}

impl Sender {
    /// Starts a server's side of a read: sends the OACK if options were accepted, else the
    /// first window.
    pub(crate) fn new(
        source: BlockSource,
        block_size: u16,
        window_size: u16,
        timing: Timing,
        oack: Option<Bytes>,
        now: Instant,
    ) -> Self {
        let handshake = oack.map_or(Handshake::Done, Handshake::AwaitAck0);
        Self::start(source, block_size, window_size, timing, handshake, now)
    }

    /// Starts a client's upload: sends `request` (a WRQ asking for `asked`) and waits for the
    /// server's ACK 0 or OACK.
    pub(crate) fn upload(
        source: BlockSource,
        request: Bytes,
        asked: RequestOptions,
        timing: Timing,
        now: Instant,
    ) -> Self {
        let declined = asked.declined();
        let handshake = Handshake::AwaitReply(request, asked);
        Self::start(
            source,
            declined.block_size,
            declined.window_size,
            timing,
            handshake,
            now,
        )
    }

    fn start(
        source: BlockSource,
        block_size: u16,
        window_size: u16,
        timing: Timing,
        handshake: Handshake,
        now: Instant,
    ) -> Self {
        let mut sender = Self {
            source,
            block_size: usize::from(block_size),
            window_size: usize::from(window_size.clamp(1, MAX_WINDOW_SIZE)),
            timer: Retransmit::new(timing),
            handshake,
            acked: 0,
            window: VecDeque::new(),
            final_block: None,
            transmit: VecDeque::new(),
            bytes_acked: 0,
            outcome: None,
        };
        sender.send_handshake_or_window();
        sender.timer.arm(now);
        sender
    }

    /// Queues the pending handshake packet, or the current window once there is none.
    fn send_handshake_or_window(&mut self) {
        match &self.handshake {
            Handshake::AwaitAck0(packet) | Handshake::AwaitReply(packet, _) => {
                self.transmit.push_back(Datagram::new(packet.clone()));
            }
            Handshake::Done => self.send_window(),
        }
    }

    /// The handshake is over: data flows with these parameters.
    fn begin_data(&mut self, now: Instant, block_size: u16, window_size: u16) {
        self.handshake = Handshake::Done;
        self.block_size = usize::from(block_size);
        self.window_size = usize::from(window_size.clamp(1, MAX_WINDOW_SIZE));
        self.timer.progress(now);
        self.send_window();
        self.timer.arm(now);
    }

    /// Cuts blocks until the window is full or the last block is cut.
    fn fill_window(&mut self) {
        while self.window.len() < self.window_size && self.final_block.is_none() {
            let block = self.source.next_block(self.block_size);
            if block.len() < self.block_size {
                self.final_block = Some(self.acked + self.window.len() as u64 + 1);
            }
            self.window.push_back(block);
        }
    }

    /// Queues every block of the current window.
    fn send_window(&mut self) {
        self.fill_window();
        for (i, block) in self.window.iter().enumerate() {
            let index = self.acked + 1 + i as u64;
            // Block numbers are the low 16 bits of the index: they wrap from 65535 to 0.
            self.transmit.push_back(Datagram::with_header(
                data_header(index as u16),
                block.clone(),
            ));
        }
    }

    fn handle_ack(&mut self, now: Instant, block: u16) {
        match self.handshake {
            Handshake::Done => {}
            Handshake::AwaitAck0(_) | Handshake::AwaitReply(..) if block == 0 => {
                let (block_size, window_size) = (self.block_size as u16, self.window_size as u16);
                return self.begin_data(now, block_size, window_size);
            }
            _ => return,
        }
        // How far past the last acknowledged block this ACK reaches, on wrapped numbers.
        let reach = usize::from(block.wrapping_sub(self.acked as u16));
        if reach == 0 || reach > self.window.len() {
            return; // duplicate or stale: never answered with DATA (Sorcerer's Apprentice)
        }
        for block in self.window.drain(..reach) {
            self.bytes_acked += block.len() as u64;
        }
        self.acked += reach as u64;
        if self.final_block == Some(self.acked) {
            self.timer.disarm();
            self.outcome = Some(Outcome::Completed);
            return;
        }
        self.timer.progress(now);
        self.send_window();
        self.timer.arm(now);
    }
}

impl Transfer for Sender {
    fn handle_packet(&mut self, now: Instant, packet: &Packet<'_>) {
        if self.outcome.is_some() {
            return;
        }
        match packet {
            &Packet::Ack { block } => self.handle_ack(now, block),
            Packet::Oack { options } => {
                if let Handshake::AwaitReply(_, asked) = &self.handshake {
                    match asked.accept(options) {
                        Ok(params) => {
                            if let Some(timeout) = params.retry_timeout {
                                self.timer.set_timeout(timeout);
                            }
                            self.begin_data(now, params.block_size, params.window_size);
                        }
                        Err(reply) => self.fail(reply),
                    }
                }
            }
            &Packet::Error { code, message } => {
                self.timer.disarm();
                self.outcome = Some(Outcome::peer_error(code, message));
            }
            // DATA and requests have no meaning for a sender: ignore them.
            _ => {}
        }
    }

    fn handle_repeated_request(&mut self) {
        if self.outcome.is_none() && self.timer.resend_on_request() {
            self.send_handshake_or_window();
        }
    }

    fn handle_timeout(&mut self, now: Instant) {
        match self.timer.expire(now) {
            Expiry::NotYet | Expiry::Wait => {}
            Expiry::GiveUp => self.outcome = Some(Outcome::TimedOut),
            Expiry::Resend => self.send_handshake_or_window(),
        }
    }

    fn poll_transmit(&mut self) -> Option<Datagram> {
        self.transmit.pop_front()
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.timer.deadline()
    }

    fn outcome(&self) -> Option<&Outcome> {
        self.outcome.as_ref()
    }

    fn is_finished(&self) -> bool {
        self.outcome.is_some()
    }

    fn stalled(&self, now: Instant) -> bool {
        self.timer.stalled(now)
    }

    fn fail(&mut self, reply: ErrorReply) {
        if self.outcome.is_some() {
            return;
        }
        self.transmit.push_back(Datagram::new(reply.to_bytes()));
        self.outcome = Some(Outcome::Failed(reply));
        self.timer.disarm();
    }

    fn progress(&self) -> Progress {
        Progress {
            bytes: self.bytes_acked,
            retransmits: self.timer.retransmits(),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::options::RequestOptions;
    use crate::packet::{ErrorCode, Mode};
    use crate::transfer::testing::{SECOND, Sent, data_blocks, drain, timing};

    fn file(len: usize) -> Bytes {
        (0..len).map(|i| (i % 251) as u8).collect()
    }

    fn sender(data: Bytes, block_size: u16, window: u16, now: Instant) -> Sender {
        let source = BlockSource::new(data, Mode::Octet);
        Sender::new(source, block_size, window, timing(), None, now)
    }

    fn ack(block: u16) -> Packet<'static> {
        Packet::Ack { block }
    }

    /// Plays a well-behaved receiver: keeps blocks that arrive in order, acknowledges the last
    /// one after each burst, and returns the file it received.
    fn receive_all(s: &mut Sender, now: Instant) -> Vec<u8> {
        let mut received = Vec::new();
        let mut expected: u16 = 1;
        while !s.is_finished() {
            let sent = drain(s);
            assert!(!sent.is_empty(), "sender stalled");
            for packet in sent {
                let Sent::Data(block, data) = packet else {
                    panic!("expected DATA, got {packet:?}")
                };
                if block == expected {
                    received.extend_from_slice(&data);
                    expected = expected.wrapping_add(1);
                }
            }
            s.handle_packet(now, &ack(expected.wrapping_sub(1)));
        }
        received
    }

    #[test]
    fn sends_the_first_block_at_once_without_options() {
        let now = Instant::now();
        let mut s = sender(file(700), 512, 1, now);
        assert_eq!(
            drain(&mut s),
            vec![Sent::Data(1, file(700)[..512].to_vec())]
        );
        assert_eq!(s.poll_timeout(), Some(now + SECOND));
    }

    #[test]
    fn lock_step_delivers_the_file_and_completes_on_the_last_ack() {
        let now = Instant::now();
        let mut s = sender(file(1300), 512, 1, now);
        assert_eq!(receive_all(&mut s, now), file(1300).to_vec());
        assert_eq!(s.outcome(), Some(&Outcome::Completed));
        assert_eq!(s.progress().bytes, 1300);
        assert_eq!(s.poll_timeout(), None);
    }

    #[test]
    fn a_file_that_is_a_multiple_of_the_block_size_ends_with_an_empty_data() {
        let now = Instant::now();
        let mut s = sender(file(1024), 512, 1, now);
        drain(&mut s);
        s.handle_packet(now, &ack(1));
        drain(&mut s);
        s.handle_packet(now, &ack(2));
        assert_eq!(drain(&mut s), vec![Sent::Data(3, vec![])]);
        s.handle_packet(now, &ack(3));
        assert_eq!(s.outcome(), Some(&Outcome::Completed));
    }

    #[test]
    fn an_empty_file_is_one_empty_data() {
        let now = Instant::now();
        let mut s = sender(Bytes::new(), 512, 1, now);
        assert_eq!(drain(&mut s), vec![Sent::Data(1, vec![])]);
        s.handle_packet(now, &ack(1));
        assert_eq!(s.outcome(), Some(&Outcome::Completed));
    }

    #[test]
    fn retransmits_the_last_block_after_a_timeout() {
        let now = Instant::now();
        let mut s = sender(file(2000), 512, 1, now);
        drain(&mut s);
        s.handle_packet(now, &ack(1));
        assert_eq!(data_blocks(&drain(&mut s)), vec![2]);
        s.handle_timeout(now + SECOND / 2);
        assert!(drain(&mut s).is_empty(), "nothing before the deadline");
        s.handle_timeout(now + SECOND);
        assert_eq!(data_blocks(&drain(&mut s)), vec![2]);
        assert_eq!(s.progress().retransmits, 1);
    }

    #[test]
    fn a_duplicate_ack_sends_nothing() {
        let now = Instant::now();
        let mut s = sender(file(2000), 512, 1, now);
        drain(&mut s);
        s.handle_packet(now, &ack(1));
        drain(&mut s);
        for _ in 0..5 {
            s.handle_packet(now, &ack(1));
        }
        assert!(
            drain(&mut s).is_empty(),
            "Sorcerer's Apprentice: no DATA on a duplicate ACK"
        );
    }

    #[test]
    fn a_silent_peer_gets_at_most_three_copies_of_the_first_block() {
        let mut now = Instant::now();
        let mut s = sender(file(2000), 512, 1, now);
        let mut sent = drain(&mut s).len();
        while !s.is_finished() {
            now = s.poll_timeout().unwrap();
            s.handle_timeout(now);
            sent += drain(&mut s).len();
        }
        assert_eq!(sent, 3);
        assert_eq!(s.outcome(), Some(&Outcome::TimedOut));
    }

    #[test]
    fn gives_up_after_max_retries_once_the_peer_has_answered() {
        let mut now = Instant::now();
        let mut s = sender(file(2000), 512, 1, now);
        drain(&mut s);
        s.handle_packet(now, &ack(1));
        drain(&mut s);
        let mut resends = 0;
        while !s.is_finished() {
            now = s.poll_timeout().unwrap();
            s.handle_timeout(now);
            resends += drain(&mut s).len();
        }
        assert_eq!(resends, 3);
        assert_eq!(s.outcome(), Some(&Outcome::TimedOut));
    }

    #[test]
    fn a_peer_error_ends_the_transfer_at_once_without_reply() {
        let now = Instant::now();
        let mut s = sender(file(2000), 512, 1, now);
        drain(&mut s);
        s.handle_packet(
            now,
            &Packet::Error {
                code: ErrorCode::DiskFull,
                message: "full",
            },
        );
        assert!(s.is_finished());
        assert!(drain(&mut s).is_empty());
        assert_eq!(s.poll_timeout(), None);
    }

    #[test]
    fn block_numbers_wrap_past_65535() {
        let now = Instant::now();
        let len = 8 * 70_000 + 3;
        let mut s = sender(file(len), 8, 1, now);
        assert_eq!(receive_all(&mut s, now), file(len).to_vec());
        assert_eq!(s.outcome(), Some(&Outcome::Completed));
    }

    #[test]
    fn an_oack_waits_for_ack_zero_before_data() {
        let now = Instant::now();
        let oack = Bytes::from_static(b"\0\x06blksize\x001024\0");
        let source = BlockSource::new(file(3000), Mode::Octet);
        let mut s = Sender::new(source, 1024, 1, timing(), Some(oack), now);
        assert_eq!(
            drain(&mut s),
            vec![Sent::Oack(vec![("blksize".into(), "1024".into())])]
        );
        s.handle_packet(now, &ack(1));
        assert!(drain(&mut s).is_empty(), "only ACK 0 answers an OACK");
        s.handle_timeout(now + SECOND);
        assert!(
            matches!(drain(&mut s)[..], [Sent::Oack(_)]),
            "OACK resent on timeout"
        );
        s.handle_packet(now, &ack(0));
        assert_eq!(data_blocks(&drain(&mut s)), vec![1]);
        assert!(s.stalled(now + SECOND), "the peer has answered");
    }

    #[test]
    fn error_8_in_answer_to_the_oack_ends_quietly() {
        let now = Instant::now();
        let oack = Bytes::from_static(b"\0\x06tsize\x003000\0");
        let source = BlockSource::new(file(3000), Mode::Octet);
        let mut s = Sender::new(source, 512, 1, timing(), Some(oack), now);
        drain(&mut s);
        s.handle_packet(
            now,
            &Packet::Error {
                code: ErrorCode::OptionRefused,
                message: "",
            },
        );
        assert!(s.is_finished());
        assert!(drain(&mut s).is_empty());
    }

    #[test]
    fn a_window_of_blocks_goes_out_before_waiting() {
        let now = Instant::now();
        let mut s = sender(file(512 * 10), 512, 4, now);
        assert_eq!(data_blocks(&drain(&mut s)), vec![1, 2, 3, 4]);
        s.handle_packet(now, &ack(4));
        assert_eq!(data_blocks(&drain(&mut s)), vec![5, 6, 7, 8]);
    }

    #[test]
    fn an_ack_inside_the_window_resends_from_the_next_block() {
        let now = Instant::now();
        let mut s = sender(file(512 * 10), 512, 4, now);
        drain(&mut s);
        // Block 3 was lost: the receiver acknowledges 2.
        s.handle_packet(now, &ack(2));
        assert_eq!(data_blocks(&drain(&mut s)), vec![3, 4, 5, 6]);
        // A reordered older ACK changes nothing.
        s.handle_packet(now, &ack(1));
        assert!(drain(&mut s).is_empty());
    }

    #[test]
    fn a_timeout_resends_the_whole_unacknowledged_window() {
        let now = Instant::now();
        let mut s = sender(file(512 * 10), 512, 4, now);
        drain(&mut s);
        s.handle_timeout(now + SECOND);
        assert_eq!(data_blocks(&drain(&mut s)), vec![1, 2, 3, 4]);
    }

    #[test]
    fn the_window_stops_at_the_last_block() {
        let now = Instant::now();
        let mut s = sender(file(512 * 2 + 1), 512, 8, now);
        assert_eq!(data_blocks(&drain(&mut s)), vec![1, 2, 3]);
        s.handle_packet(now, &ack(3));
        assert_eq!(s.outcome(), Some(&Outcome::Completed));
    }

    #[test]
    fn windows_wrap_past_the_second_block_number_wrap() {
        let now = Instant::now();
        let len = 8 * 140_000 + 5; // more than 131,072 blocks
        let mut s = sender(file(len), 8, 16, now);
        assert_eq!(receive_all(&mut s, now), file(len).to_vec());
    }

    #[test]
    fn netascii_is_translated_on_the_way_out() {
        let now = Instant::now();
        let source = BlockSource::new(Bytes::from_static(b"a\nb\r\n"), Mode::Netascii);
        let mut s = Sender::new(source, 512, 1, timing(), None, now);
        assert_eq!(
            drain(&mut s),
            vec![Sent::Data(1, b"a\r\nb\r\0\r\n".to_vec())]
        );
    }

    fn wrq() -> Bytes {
        Bytes::from_static(b"\0\x02f\0octet\0blksize\x001024\0")
    }

    fn upload(len: usize, now: Instant) -> Sender {
        let asked = RequestOptions::default().with_block_size(1024);
        Sender::upload(
            BlockSource::new(file(len), Mode::Octet),
            wrq(),
            asked,
            timing(),
            now,
        )
    }

    #[test]
    fn a_client_upload_resends_its_request_until_answered() {
        let now = Instant::now();
        let mut s = upload(3000, now);
        assert_eq!(drain(&mut s).len(), 1, "the WRQ");
        s.handle_timeout(now + SECOND);
        assert_eq!(drain(&mut s).len(), 1, "the WRQ again");
    }

    #[test]
    fn ack_zero_means_the_server_ignored_the_options() {
        let now = Instant::now();
        let mut s = upload(3000, now);
        drain(&mut s);
        s.handle_packet(now, &ack(0));
        let sent = drain(&mut s);
        assert!(
            matches!(&sent[..], [Sent::Data(1, d)] if d.len() == 512),
            "{sent:?}"
        );
    }

    #[test]
    fn an_oack_sets_the_block_size_of_the_upload() {
        let now = Instant::now();
        let mut s = upload(3000, now);
        drain(&mut s);
        let options = vec![crate::packet::TftpOption {
            name: "blksize",
            value: "1024",
        }];
        s.handle_packet(now, &Packet::Oack { options });
        let sent = drain(&mut s);
        assert!(
            matches!(&sent[..], [Sent::Data(1, d)] if d.len() == 1024),
            "{sent:?}"
        );
    }

    #[test]
    fn an_oack_with_an_option_not_asked_for_is_refused_with_error_8() {
        let now = Instant::now();
        let mut s = upload(3000, now);
        drain(&mut s);
        let options = vec![crate::packet::TftpOption {
            name: "windowsize",
            value: "4",
        }];
        s.handle_packet(now, &Packet::Oack { options });
        assert!(matches!(drain(&mut s)[..], [Sent::Error(8, _)]));
        assert!(matches!(s.outcome(), Some(Outcome::Failed(_))));
    }
}
