//! A [`TftpHandler`] session driven through its channels: no sockets, paused time.
//!
//! Each test offers a first datagram to the handler with a detached [`udp_server::SessionIo`],
//! spawns the session it returns, and plays the client through the harness in `support`:
//! datagrams in, decoded replies out, and the session's end (`Done` or `Handoff`) checked
//! where it matters. Time is paused, so every retransmission and give-up happens at an exact,
//! asserted instant and the suite takes no wall-clock time waiting. One module per topic:
//! first datagrams and refusals, reads, writes, options, shutdown. The state machines' own
//! rules are unit-tested in `src/transfer`; these tests check the whole path from request to
//! session end, worker and store included.
#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use bytes::Bytes;
use tftp_handler::{Config, ErrorCode, MemoryStore, Mode, TftpHandler};

/// The default retransmission timeout.
const SECOND: Duration = Duration::from_secs(1);

/// A handler with the default configuration over a store holding `files`.
fn handler_with(files: &[(&str, Bytes)]) -> TftpHandler {
    handler_with_config(files, Config::default())
}

/// The default configuration with a fixed one-second retransmission wait instead of the
/// adaptive one, for the tests that assert when a resend comes.
fn fixed_timer() -> Config {
    let mut config = Config::default();
    config.min_retry_timeout = config.retry_timeout;
    config
}

/// A handler with `config` over a store holding `files`.
fn handler_with_config(files: &[(&str, Bytes)], config: Config) -> TftpHandler {
    let store = MemoryStore::default();
    for (name, contents) in files {
        store.insert(*name, contents.clone());
    }
    TftpHandler::new(store, config)
}

mod first_datagram {
    //! What a datagram from a peer without a session gets, and `refuse`.

    use udp_server::{ProtocolHandler, Refusal, SessionIo};

    use super::support::{Reply, ack, data, error, open, peer_addr, rrq, wrq};
    use super::*;

    /// Offers `first` to a default handler, expects no session, and returns what was sent.
    async fn no_session_reply(first: Bytes) -> Vec<Reply> {
        let handler = handler_with(&[]);
        let (mut peer, task) = open(&handler, peer_addr(40_000), first);
        assert!(task.is_none(), "a session was opened");
        peer.rest().await
    }

    /// Offers a stray ACK from each of `peers` fresh ports; how many got an ERROR back.
    async fn strays_answered(handler: &TftpHandler, ports: std::ops::Range<u16>) -> usize {
        let mut answered = 0;
        for port in ports {
            let (mut peer, task) = open(handler, peer_addr(port), ack(1));
            assert!(task.is_none());
            answered += peer.rest().await.len();
        }
        answered
    }

    #[tokio::test(start_paused = true)]
    async fn one_off_errors_are_rate_limited_and_resume_as_the_bucket_refills() {
        let mut config = Config::default();
        config.error_reply_rate = 100;
        let handler = handler_with_config(&[], config);
        assert_eq!(strays_answered(&handler, 1..1001).await, 100, "one burst");
        tokio::time::advance(SECOND / 2).await;
        assert_eq!(
            strays_answered(&handler, 2001..3001).await,
            50,
            "half a second's worth"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_data_packet_as_first_datagram_gets_error_5_and_no_session() {
        let sent = no_session_reply(data(1, b"stray")).await;
        assert!(
            matches!(&sent[..], [Reply::Error(ErrorCode::UnknownTransferId, _)]),
            "{sent:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_ack_as_first_datagram_gets_error_5_and_no_session() {
        let sent = no_session_reply(ack(3)).await;
        assert!(
            matches!(&sent[..], [Reply::Error(ErrorCode::UnknownTransferId, _)]),
            "{sent:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_oack_as_first_datagram_gets_error_5_and_no_session() {
        let oack = Bytes::from_static(b"\0\x06tsize\x0010\0");
        let sent = no_session_reply(oack).await;
        assert!(
            matches!(&sent[..], [Reply::Error(ErrorCode::UnknownTransferId, _)]),
            "{sent:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_truncated_request_gets_error_4_and_no_session() {
        let sent = no_session_reply(Bytes::from_static(&[0, 1])).await;
        assert!(
            matches!(
                &sent[..],
                [Reply::Error(ErrorCode::IllegalOperation, m)] if m.contains("malformed")
            ),
            "{sent:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_unknown_opcode_gets_error_4_and_no_session() {
        let sent = no_session_reply(Bytes::from_static(&[0, 9, b'x', 0])).await;
        assert!(
            matches!(
                &sent[..],
                [Reply::Error(ErrorCode::IllegalOperation, m)] if m.contains("opcode 9")
            ),
            "{sent:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_unknown_mode_gets_error_4_and_no_session() {
        let sent = no_session_reply(Bytes::from_static(b"\0\x01f\0binary\0")).await;
        assert!(
            matches!(
                &sent[..],
                [Reply::Error(ErrorCode::IllegalOperation, m)] if m.contains("mode")
            ),
            "{sent:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_error_as_first_datagram_gets_no_reply_and_no_session() {
        let sent = no_session_reply(error(ErrorCode::NotDefined, "bye")).await;
        assert!(sent.is_empty(), "{sent:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_refused_request_gets_error_0_server_busy() {
        let handler = handler_with(&[]);
        let (io, mut far) = SessionIo::detached(peer_addr(40_001), 4, 4);
        handler.refuse(
            wrq("f", Mode::Octet, &[]),
            &io.outbound,
            Refusal::SessionLimit,
        );
        let sent = far.outbound.try_recv().unwrap();
        assert_eq!(sent.to, peer_addr(40_001));
        assert!(matches!(
            Reply::decode(&sent.datagram.to_vec()),
            Reply::Error(ErrorCode::NotDefined, m) if m.starts_with("server busy")
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_refused_during_shutdown_gets_error_0_server_shutting_down() {
        let handler = handler_with(&[]);
        let (io, mut far) = SessionIo::detached(peer_addr(40_002), 4, 4);
        handler.refuse(
            rrq("f", Mode::Octet, &[]),
            &io.outbound,
            Refusal::ShuttingDown,
        );
        let sent = far.outbound.try_recv().unwrap();
        assert_eq!(
            Reply::decode(&sent.datagram.to_vec()),
            Reply::Error(ErrorCode::NotDefined, "server shutting down".into())
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_refused_non_request_gets_no_reply() {
        let handler = handler_with(&[]);
        let (io, mut far) = SessionIo::detached(peer_addr(40_003), 4, 4);
        for datagram in [ack(1), data(1, b"x"), Bytes::from_static(&[0, 1])] {
            handler.refuse(datagram, &io.outbound, Refusal::SessionLimit);
        }
        drop(io);
        assert!(far.outbound.recv().await.is_none(), "nothing is sent");
    }
}

mod read {
    //! Read requests: lock-step, retransmission, give-up, refusals, handoff, block-number wrap.

    use udp_server::SessionEnd;

    use super::support::{
        Reply, ack, end_at_once, end_of, error, file, peer_addr, rrq, start, start_from, wrq,
    };
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_stored_file_is_read_in_lock_step_byte_exact() {
        let contents = file(1300);
        let handler = handler_with(&[("boot.img", contents.clone())]);
        let (mut peer, task) = start(&handler, rrq("boot.img", Mode::Octet, &[]));
        let mut received = Vec::new();
        for (block, len) in [(1, 512), (2, 512), (3, 276)] {
            let data = peer.expect_data(block).await;
            assert_eq!(data.len(), len);
            received.extend_from_slice(&data);
            peer.send(ack(block));
        }
        assert_eq!(received, contents);
        assert_eq!(end_at_once(task).await, SessionEnd::Done);
        peer.expect_closed().await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_file_that_fills_its_last_block_ends_with_an_empty_data() {
        let handler = handler_with(&[("f", file(1024))]);
        let (mut peer, task) = start(&handler, rrq("f", Mode::Octet, &[]));
        assert_eq!(peer.read_to_end(512, 1).await, file(1024));
        assert_eq!(end_of(task).await, SessionEnd::Done);
    }

    #[tokio::test(start_paused = true)]
    async fn an_empty_file_is_one_empty_data() {
        let handler = handler_with(&[("empty", Bytes::new())]);
        let (mut peer, task) = start(&handler, rrq("empty", Mode::Octet, &[]));
        assert_eq!(peer.expect_data(1).await, b"");
        peer.send(ack(1));
        assert_eq!(end_at_once(task).await, SessionEnd::Done);
    }

    #[tokio::test(start_paused = true)]
    async fn a_leading_slash_and_upper_case_mode_read_the_same_file() {
        let handler = handler_with(&[("pxelinux.0", file(10))]);
        let request = Bytes::from_static(b"\0\x01/pxelinux.0\0OCTET\0");
        let (mut peer, task) = start(&handler, request);
        assert_eq!(peer.read_to_end(512, 1).await, file(10));
        assert_eq!(end_of(task).await, SessionEnd::Done);
    }

    #[tokio::test(start_paused = true)]
    async fn a_lost_ack_gets_the_same_data_again_after_the_retry_timeout() {
        let handler = handler_with_config(&[("f", file(2000))], fixed_timer());
        let (mut peer, _task) = start(&handler, rrq("f", Mode::Octet, &[]));
        peer.expect_data(1).await;
        peer.send(ack(1));
        let first = peer.expect_data(2).await;
        // The client's ACK 2 is lost.
        assert_eq!(
            peer.expect_after(SECOND).await,
            Reply::Data(2, first),
            "the same DATA 2 comes again after one second, not before"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn duplicate_acks_draw_no_extra_data() {
        let handler = handler_with_config(&[("f", file(2000))], fixed_timer());
        let (mut peer, _task) = start(&handler, rrq("f", Mode::Octet, &[]));
        peer.expect_data(1).await;
        for _ in 0..3 {
            peer.send(ack(1));
        }
        peer.expect_data(2).await;
        // Sorcerer's Apprentice (RFC 1123 4.2.3.1): the next DATA 2 is the timer's, not a
        // duplicate ACK's.
        assert!(matches!(peer.expect_after(SECOND).await, Reply::Data(2, _)));
    }

    #[tokio::test(start_paused = true)]
    async fn a_client_acking_just_before_every_timeout_is_cut_off_at_the_time_limit() {
        let mut config = Config::default();
        config.max_transfer_time = Duration::from_secs(10);
        let handler = handler_with_config(&[("slow", file(512 * 100))], config);
        let (mut peer, task) = start(&handler, rrq("slow", Mode::Octet, &[]));
        let mut block = 1;
        let end = loop {
            match peer.expect().await {
                Reply::Data(n, _) => {
                    assert_eq!(n, block);
                    tokio::time::sleep(Duration::from_millis(900)).await;
                    if !peer.session_ended() {
                        peer.send(ack(n));
                    }
                    block += 1;
                }
                other => break other,
            }
        };
        assert_eq!(
            end,
            Reply::Error(ErrorCode::NotDefined, "transfer took too long".into())
        );
        // DATA n goes out at 0.9 s x (n - 1): the 10 s limit falls after DATA 12.
        let blocks_seen = block - 1;
        assert_eq!(blocks_seen, 12, "cut off after 10 s");
        assert_eq!(end_of(task).await, udp_server::SessionEnd::Done);
    }

    #[tokio::test(start_paused = true)]
    async fn duplicated_and_delayed_acks_draw_no_extra_data() {
        // RFC 1123 4.2.3.1: every ACK arrives twice, the copy late, and the client re-ACKs
        // every DATA it sees twice. Only DATA the transfer needs goes out.
        let contents = file(512 * 200 + 7);
        let handler = handler_with(&[("f", contents.clone())]);
        let (mut peer, task) = start(&handler, rrq("f", Mode::Octet, &[]));
        let (mut data_sent, mut received, mut expected) = (0, Vec::new(), 1u16);
        loop {
            let Reply::Data(n, data) = peer.expect().await else {
                panic!("expected DATA");
            };
            data_sent += 1;
            if n == expected {
                received.extend_from_slice(&data);
                expected = expected.wrapping_add(1);
            }
            peer.send(ack(n));
            if data.len() < 512 {
                break; // the last ACK ends the transfer: nothing left to duplicate into
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
            peer.send(ack(n));
        }
        assert_eq!(received, contents.to_vec());
        let blocks = 201;
        assert!(
            data_sent * 10 <= blocks * 11,
            "{data_sent} DATA for {blocks} blocks (limit 1.1x)"
        );
        assert_eq!(end_of(task).await, udp_server::SessionEnd::Done);
        assert!(peer.rest().await.is_empty(), "no DATA after the last ACK");
    }

    #[tokio::test(start_paused = true)]
    async fn a_peer_that_never_answers_gets_three_copies_of_data_1_and_no_error() {
        let handler = handler_with(&[("f", file(2000))]);
        let (mut peer, task) = start(&handler, rrq("f", Mode::Octet, &[]));
        let sent = peer.rest_timed().await;
        let one = Reply::Data(1, file(2000)[..512].to_vec());
        assert_eq!(
            sent,
            vec![
                (Duration::ZERO, one.clone()),
                (SECOND, one.clone()),
                (2 * SECOND, one)
            ],
            "first_reply_retries = 2: the first DATA and two resends, then nothing"
        );
        assert_eq!(end_of(task).await, SessionEnd::Done);
    }

    #[tokio::test(start_paused = true)]
    async fn after_the_peer_has_answered_max_retries_timeouts_end_the_session() {
        let handler = handler_with_config(&[("f", file(2000))], fixed_timer());
        let max_retries = handler.config().max_retries;
        let (mut peer, task) = start(&handler, rrq("f", Mode::Octet, &[]));
        peer.expect_data(1).await;
        peer.send(ack(1));
        let sent = peer.rest_timed().await;
        let times: Vec<Duration> = sent.iter().map(|(at, _)| *at).collect();
        let expected: Vec<Duration> = (0..=max_retries).map(|n| n * SECOND).collect();
        assert_eq!(times, expected, "DATA 2, then one resend per timeout");
        assert!(
            sent.iter().all(|(_, r)| matches!(r, Reply::Data(2, _))),
            "{sent:?}"
        );
        let start = tokio::time::Instant::now();
        assert_eq!(end_of(task).await, SessionEnd::Done);
        assert_eq!(start.elapsed(), Duration::ZERO, "ended at the last timeout");
    }

    #[tokio::test(start_paused = true)]
    async fn a_missing_file_gets_error_1_and_the_session_ends_at_once() {
        let handler = handler_with(&[]);
        let (mut peer, task) = start(&handler, rrq("nope", Mode::Octet, &[]));
        assert!(matches!(
            peer.expect().await,
            Reply::Error(ErrorCode::FileNotFound, _)
        ));
        assert_eq!(end_at_once(task).await, SessionEnd::Done);
        peer.expect_closed().await;
    }

    #[tokio::test(start_paused = true)]
    async fn mail_mode_gets_error_4_and_no_transfer() {
        let handler = handler_with(&[("f", file(10))]);
        let (mut peer, task) = start(&handler, rrq("f", Mode::Mail, &[]));
        assert!(matches!(
            peer.expect().await,
            Reply::Error(ErrorCode::IllegalOperation, m) if m.contains("mail")
        ));
        assert_eq!(end_at_once(task).await, SessionEnd::Done);
        peer.expect_closed().await;
    }

    #[tokio::test(start_paused = true)]
    async fn an_empty_file_name_gets_error_2() {
        let handler = handler_with(&[]);
        let (mut peer, task) = start(&handler, rrq("", Mode::Octet, &[]));
        assert!(matches!(
            peer.expect().await,
            Reply::Error(ErrorCode::AccessViolation, _)
        ));
        assert_eq!(end_at_once(task).await, SessionEnd::Done);
        peer.expect_closed().await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_file_name_with_a_control_character_gets_error_2() {
        let handler = handler_with(&[("a\nb", file(10))]);
        let (mut peer, task) = start(&handler, rrq("a\nb", Mode::Octet, &[]));
        assert!(matches!(
            peer.expect().await,
            Reply::Error(ErrorCode::AccessViolation, _)
        ));
        assert_eq!(end_at_once(task).await, SessionEnd::Done);
    }

    #[tokio::test(start_paused = true)]
    async fn a_peer_error_mid_read_ends_the_session_at_once_without_reply() {
        let handler = handler_with(&[("f", file(2000))]);
        let (mut peer, task) = start(&handler, rrq("f", Mode::Octet, &[]));
        peer.expect_data(1).await;
        peer.send(ack(1));
        peer.expect_data(2).await;
        peer.send(error(ErrorCode::DiskFull, "client disk full"));
        assert_eq!(end_at_once(task).await, SessionEnd::Done);
        peer.expect_closed().await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_malformed_datagram_mid_read_is_ignored() {
        let handler = handler_with(&[("f", file(700))]);
        let (mut peer, task) = start(&handler, rrq("f", Mode::Octet, &[]));
        peer.expect_data(1).await;
        peer.send(Bytes::from_static(&[0, 4, 0])); // a truncated ACK
        peer.send(Bytes::from_static(&[0, 9]));
        peer.expect_silence(SECOND / 2).await;
        peer.send(ack(1));
        assert_eq!(peer.expect_data(2).await.len(), 188);
        peer.send(ack(2));
        assert_eq!(end_of(task).await, SessionEnd::Done);
    }

    #[tokio::test(start_paused = true)]
    async fn a_duplicate_request_before_the_peer_answered_is_ignored() {
        let request = rrq("f", Mode::Octet, &[]);
        let handler = handler_with(&[("f", file(2000))]);
        let (mut peer, _task) = start(&handler, request.clone());
        peer.expect_data(1).await;
        // The client did not see DATA 1 and asks again: no second transfer, no extra DATA;
        // our own timer resends DATA 1 a second after the first.
        peer.send(request.clone());
        peer.send(request);
        assert!(matches!(peer.expect_after(SECOND).await, Reply::Data(1, _)));
        peer.send(ack(1));
        peer.expect_data(2).await;
        peer.expect_silence(SECOND / 2).await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_different_request_hands_the_session_off() {
        let handler = handler_with(&[("f", file(2000)), ("g", file(5))]);
        let (mut peer, task) = start(&handler, rrq("f", Mode::Octet, &[]));
        peer.expect_data(1).await;
        let other = rrq("g", Mode::Octet, &[]);
        peer.send(other.clone());
        assert_eq!(end_at_once(task).await, SessionEnd::Handoff(other));
        peer.expect_closed().await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_write_request_during_a_read_hands_the_session_off() {
        let handler = handler_with(&[("f", file(2000))]);
        let (mut peer, task) = start(&handler, rrq("f", Mode::Octet, &[]));
        peer.expect_data(1).await;
        let upload = wrq("f", Mode::Octet, &[]);
        peer.send(upload.clone());
        assert_eq!(end_at_once(task).await, SessionEnd::Handoff(upload));
    }

    #[tokio::test(start_paused = true)]
    async fn a_late_copy_of_the_request_does_not_disturb_a_moving_transfer() {
        let request = rrq("f", Mode::Octet, &[]);
        let contents = file(2000);
        let handler = handler_with(&[("f", contents.clone())]);
        let (mut peer, task) = start(&handler, request.clone());
        peer.expect_data(1).await;
        peer.send(ack(1));
        peer.expect_data(2).await;
        // The client's resent request, delayed by the network behind its ACK 1.
        peer.send(request);
        peer.send(ack(2));
        assert_eq!(peer.expect_data(3).await, contents[1024..1536]);
        peer.send(ack(3));
        peer.expect_data(4).await;
        peer.send(ack(4));
        assert_eq!(end_of(task).await, SessionEnd::Done);
    }

    #[tokio::test(start_paused = true)]
    async fn the_same_request_after_the_transfer_stalled_for_a_timeout_starts_over() {
        let request = rrq("f", Mode::Octet, &[]);
        let handler = handler_with(&[("f", file(2000))]);
        let (mut peer, task) = start(&handler, request.clone());
        peer.expect_data(1).await;
        peer.send(ack(1));
        peer.expect_data(2).await;
        // The client gave up on this transfer and, a timeout later, asks again.
        tokio::time::sleep(SECOND).await;
        peer.send(request.clone());
        assert_eq!(end_at_once(task).await, SessionEnd::Handoff(request));
    }

    #[tokio::test(start_paused = true)]
    async fn a_repeated_request_draws_the_first_reply_once_the_resends_ran_out() {
        let request = rrq("f", Mode::Octet, &[]);
        let handler = handler_with(&[("f", file(2000))]);
        let (mut peer, _task) = start(&handler, request.clone());
        // DATA 1, then the timer's two resends at 1 s and 2 s.
        for _ in 0..3 {
            peer.expect_data(1).await;
        }
        // The server now only listens; the client's own resend of its request is answered,
        // one DATA 1 per request.
        tokio::time::sleep(SECOND / 2).await;
        peer.send(request.clone());
        assert!(matches!(
            peer.expect_after(Duration::ZERO).await,
            Reply::Data(1, _)
        ));
        peer.expect_silence(SECOND / 4).await;
        peer.send(ack(1));
        peer.expect_data(2).await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_queued_behind_the_last_ack_is_handed_off() {
        let handler = handler_with(&[("f", file(10))]);
        let (mut peer, task) = start(&handler, rrq("f", Mode::Octet, &[]));
        peer.expect_data(1).await;
        let next = rrq("f", Mode::Octet, &[]);
        peer.send(ack(1));
        peer.send(next.clone());
        assert_eq!(end_at_once(task).await, SessionEnd::Handoff(next));
    }

    #[tokio::test(start_paused = true)]
    async fn two_peers_read_the_same_file_independently() {
        let handler = handler_with(&[("f", file(1500))]);
        let (mut one, task_one) = start_from(&handler, peer_addr(1), rrq("f", Mode::Octet, &[]));
        let (mut two, task_two) = start_from(&handler, peer_addr(2), rrq("f", Mode::Octet, &[]));
        assert_eq!(one.read_to_end(512, 1).await, file(1500));
        assert_eq!(two.read_to_end(512, 1).await, file(1500));
        assert_eq!(end_of(task_one).await, SessionEnd::Done);
        assert_eq!(end_of(task_two).await, SessionEnd::Done);
    }

    #[tokio::test(start_paused = true)]
    async fn block_numbers_wrap_in_a_windowed_read_of_more_than_65536_blocks() {
        let len = 8 * 75_000 + 3; // 75,001 blocks of 8 bytes: the block number wraps once
        let contents = file(len);
        let handler = handler_with(&[("big", contents.clone())]);
        let request = rrq(
            "big",
            Mode::Octet,
            &[("blksize", "8"), ("windowsize", "16")],
        );
        let (mut peer, task) = start(&handler, request);
        assert_eq!(
            peer.expect().await,
            Reply::Oack(super::support::options(&[
                ("blksize", "8"),
                ("windowsize", "16")
            ]))
        );
        peer.send(ack(0));
        let received = peer.read_to_end(8, 16).await;
        assert_eq!(received.len(), len);
        assert!(received == contents, "the file differs after the wrap");
        assert_eq!(end_of(task).await, SessionEnd::Done);
    }
}

mod write {
    //! Write requests: publish before the final ACK, dally, abandonment, one writer per name.

    use tftp_handler::{Store, StoreError};
    use udp_server::SessionEnd;

    use super::support::{
        Reply, SlowStore, data, end_at_once, end_of, error, file, peer_addr, start, start_from, wrq,
    };
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_first_data_after_the_last_ack_0_resend_is_still_accepted() {
        // tftp-hpa and atftp wait 5 s before resending: ACK 0 goes out three times (0, 1, 2 s)
        // and then the session keeps listening instead of giving up at 3 s.
        let handler = handler_with(&[]);
        let (mut peer, task) = start(&handler, wrq("slow", Mode::Octet, &[]));
        for _ in 0..3 {
            assert_eq!(peer.expect().await, Reply::Ack(0));
        }
        tokio::time::sleep(Duration::from_millis(2500)).await;
        peer.send(data(1, b"late but fine"));
        assert_eq!(peer.expect().await, Reply::Ack(1));
        assert_eq!(end_of(task).await, udp_server::SessionEnd::Done);
        assert_eq!(
            handler.store().get("slow").as_deref(),
            Some(&b"late but fine"[..])
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_live_session_does_not_keep_the_shared_receive_buffer_alive() {
        use bytes::{BufMut, BytesMut};
        use udp_server::{ProtocolHandler, SessionIo};
        let handler = handler_with(&[]);
        // The request shares one receive chunk with other peers' datagrams.
        let mut chunk = BytesMut::with_capacity(4 * 65_535);
        chunk.put_slice(&wrq("up.bin", Mode::Octet, &[]));
        let len = chunk.len();
        chunk.put_bytes(0xAA, 200_000);
        let chunk = chunk.freeze();
        let (io, mut far) = SessionIo::detached(peer_addr(1000), 8, 8);
        let session = handler.open_session(chunk.slice(..len), io).unwrap();
        let task = tokio::spawn(session);
        assert!(far.outbound.recv().await.is_some(), "ACK 0");
        assert!(
            chunk.is_unique(),
            "the live session still references the receive chunk"
        );
        task.abort();
    }

    #[tokio::test(start_paused = true)]
    async fn an_upload_is_published_before_its_final_ack() {
        // Publishing takes a while, so an ACK sent before it would arrive first.
        let publish_time = Duration::from_millis(100);
        let store = SlowStore {
            delay: publish_time,
            ..SlowStore::default()
        };
        let handler = TftpHandler::new(store, Config::default());
        let (mut peer, _task) = start(&handler, wrq("up", Mode::Octet, &[]));
        let contents = file(700);
        assert_eq!(peer.expect().await, Reply::Ack(0));
        peer.send(data(1, &contents[..512]));
        assert_eq!(peer.expect().await, Reply::Ack(1));
        assert!(handler.store().files.get("up").is_none(), "nothing yet");
        peer.send(data(2, &contents[512..]));
        assert_eq!(peer.expect_after(publish_time).await, Reply::Ack(2));
        assert_eq!(
            handler.store().files.get("up"),
            Some(contents),
            "a client that has the final ACK can read the file"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_resent_final_data_within_the_dally_gets_the_final_ack_again() {
        let handler = handler_with(&[]);
        let (mut peer, _task) = start(&handler, wrq("up", Mode::Octet, &[]));
        assert_eq!(peer.expect().await, Reply::Ack(0));
        peer.send(data(1, b"short"));
        assert_eq!(peer.expect().await, Reply::Ack(1));
        peer.expect_silence(SECOND).await;
        // The client did not see the final ACK and resends its last block.
        peer.send(data(1, b"short"));
        assert_eq!(peer.expect().await, Reply::Ack(1));
        assert_eq!(handler.store().get("up").unwrap(), "short");
    }

    #[tokio::test(start_paused = true)]
    async fn an_upload_session_ends_when_the_dally_is_over() {
        let handler = handler_with(&[]);
        let dally = handler.config().dally;
        let (mut peer, task) = start(&handler, wrq("up", Mode::Octet, &[]));
        assert_eq!(peer.expect().await, Reply::Ack(0));
        peer.send(data(1, b"short"));
        assert_eq!(peer.expect().await, Reply::Ack(1));
        let start = tokio::time::Instant::now();
        assert_eq!(end_of(task).await, SessionEnd::Done);
        assert_eq!(start.elapsed(), dally);
        peer.expect_closed().await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_multiple_of_the_block_size_is_uploaded_with_a_final_empty_data() {
        let handler = handler_with(&[]);
        let (mut peer, task) = start(&handler, wrq("up", Mode::Octet, &[]));
        let contents = file(1024);
        assert_eq!(peer.expect().await, Reply::Ack(0));
        for (block, chunk) in (1..).zip(contents.chunks(512).chain([&b""[..]])) {
            peer.send(data(block, chunk));
            assert_eq!(peer.expect().await, Reply::Ack(block));
        }
        assert_eq!(handler.store().get("up"), Some(contents));
        assert_eq!(end_of(task).await, SessionEnd::Done);
    }

    #[tokio::test(start_paused = true)]
    async fn a_lost_ack_0_is_resent_and_a_duplicate_wrq_ignored() {
        let request = wrq("up", Mode::Octet, &[]);
        let handler = handler_with(&[]);
        let (mut peer, _task) = start(&handler, request.clone());
        assert_eq!(peer.expect().await, Reply::Ack(0));
        peer.send(request);
        assert_eq!(peer.expect_after(SECOND).await, Reply::Ack(0));
        peer.send(data(1, b"x"));
        assert_eq!(peer.expect().await, Reply::Ack(1));
        assert_eq!(handler.store().get("up").unwrap(), "x");
    }

    #[tokio::test(start_paused = true)]
    async fn an_abandoned_upload_leaves_the_previous_version_and_frees_the_name() {
        let previous = file(900);
        let handler = handler_with_config(&[("f", previous.clone())], fixed_timer());
        let (mut peer, task) = start(&handler, wrq("f", Mode::Octet, &[]));
        assert_eq!(peer.expect().await, Reply::Ack(0));
        peer.send(data(1, &[0xAA; 512]));
        assert_eq!(peer.expect().await, Reply::Ack(1));
        // The client goes silent: ACK 1 is resent until the session gives up.
        let resent = peer.rest().await;
        assert_eq!(
            resent,
            vec![Reply::Ack(1); handler.config().max_retries as usize]
        );
        assert_eq!(end_of(task).await, SessionEnd::Done);
        assert_eq!(handler.store().get("f"), Some(previous), "unchanged");

        let (mut again, task) = start(&handler, wrq("f", Mode::Octet, &[]));
        assert_eq!(again.expect().await, Reply::Ack(0), "the name is free");
        again.send(data(1, b"v2"));
        assert_eq!(again.expect().await, Reply::Ack(1));
        assert_eq!(handler.store().get("f").unwrap(), "v2");
        assert_eq!(end_of(task).await, SessionEnd::Done);
    }

    #[tokio::test(start_paused = true)]
    async fn a_second_upload_of_a_name_in_progress_gets_error_2_while_the_first_continues() {
        let handler = handler_with(&[]);
        let (mut first, first_task) =
            start_from(&handler, peer_addr(1), wrq("f", Mode::Octet, &[]));
        assert_eq!(first.expect().await, Reply::Ack(0));
        first.send(data(1, &[1; 512]));
        assert_eq!(first.expect().await, Reply::Ack(1));

        let (mut second, second_task) =
            start_from(&handler, peer_addr(2), wrq("f", Mode::Octet, &[]));
        assert!(matches!(
            second.expect().await,
            Reply::Error(ErrorCode::AccessViolation, m)
                if m == StoreError::UploadInProgress.to_string()
        ));
        assert_eq!(end_at_once(second_task).await, SessionEnd::Done);

        first.send(data(2, &[2; 10]));
        assert_eq!(first.expect().await, Reply::Ack(2));
        let stored = handler.store().get("f").unwrap();
        assert_eq!(stored.len(), 522);
        assert_eq!(end_of(first_task).await, SessionEnd::Done);
    }

    #[tokio::test(start_paused = true)]
    async fn a_peer_error_mid_upload_ends_the_session_at_once_and_publishes_nothing() {
        let handler = handler_with(&[]);
        let (mut peer, task) = start(&handler, wrq("f", Mode::Octet, &[]));
        assert_eq!(peer.expect().await, Reply::Ack(0));
        peer.send(data(1, &[1; 512]));
        assert_eq!(peer.expect().await, Reply::Ack(1));
        peer.send(error(ErrorCode::NotDefined, "user cancelled"));
        assert_eq!(end_at_once(task).await, SessionEnd::Done);
        peer.expect_closed().await;
        assert!(handler.store().get("f").is_none());
        assert!(
            handler.store().begin_upload("f", true).await.is_ok(),
            "the name is free again"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_upload_past_the_size_limit_gets_error_3_and_publishes_nothing() {
        let store = MemoryStore::new(tftp_handler::StoreLimits::default().with_max_file_size(600));
        let handler = TftpHandler::new(store, Config::default());
        let (mut peer, task) = start(&handler, wrq("f", Mode::Octet, &[]));
        assert_eq!(peer.expect().await, Reply::Ack(0));
        peer.send(data(1, &[1; 512]));
        assert_eq!(peer.expect().await, Reply::Ack(1));
        peer.send(data(2, &[2; 512]));
        assert!(matches!(
            peer.expect().await,
            Reply::Error(ErrorCode::DiskFull, _)
        ));
        assert_eq!(end_at_once(task).await, SessionEnd::Done);
        assert!(handler.store().get("f").is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn an_upload_over_an_existing_file_without_overwrite_gets_error_6() {
        let mut config = Config::default();
        config.allow_overwrite = false;
        let handler = handler_with_config(&[("f", file(3))], config);
        let (mut peer, task) = start(&handler, wrq("f", Mode::Octet, &[]));
        assert!(matches!(
            peer.expect().await,
            Reply::Error(ErrorCode::FileExists, _)
        ));
        assert_eq!(end_at_once(task).await, SessionEnd::Done);
        assert_eq!(handler.store().get("f"), Some(file(3)));
    }

    #[tokio::test(start_paused = true)]
    async fn an_upload_past_the_store_budget_gets_error_3_instead_of_the_final_ack() {
        let limits = tftp_handler::StoreLimits::default().with_max_total_bytes(1000);
        let store = MemoryStore::new(limits);
        store.insert("old", file(900));
        let handler = TftpHandler::new(store, Config::default());
        let (mut peer, task) = start(&handler, wrq("new", Mode::Octet, &[]));
        assert_eq!(peer.expect().await, Reply::Ack(0));
        peer.send(data(1, &[1; 200]));
        assert!(matches!(
            peer.expect().await,
            Reply::Error(ErrorCode::DiskFull, m) if m.contains("store full")
        ));
        assert_eq!(end_at_once(task).await, SessionEnd::Done);
        assert!(handler.store().get("new").is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn a_peer_that_never_sends_data_gets_three_copies_of_ack_0() {
        let handler = handler_with(&[]);
        let (mut peer, task) = start(&handler, wrq("f", Mode::Octet, &[]));
        let sent = peer.rest_timed().await;
        assert_eq!(
            sent,
            vec![
                (Duration::ZERO, Reply::Ack(0)),
                (SECOND, Reply::Ack(0)),
                (2 * SECOND, Reply::Ack(0))
            ]
        );
        assert_eq!(end_of(task).await, SessionEnd::Done);
        assert!(
            handler.store().begin_upload("f", true).await.is_ok(),
            "the name is free again"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn block_numbers_wrap_in_a_windowed_upload_of_more_than_65536_blocks() {
        let len = 8 * 75_000 + 3;
        let contents = file(len);
        let handler = handler_with(&[]);
        let request = wrq(
            "big",
            Mode::Octet,
            &[("blksize", "8"), ("windowsize", "16")],
        );
        let (mut peer, task) = start(&handler, request);
        assert!(matches!(peer.expect().await, Reply::Oack(_)));
        let mut blocks = (1..).zip(contents.chunks(8)).peekable();
        while blocks.peek().is_some() {
            let mut last = 0;
            for (index, chunk) in blocks.by_ref().take(16) {
                last = index as u16; // the wire's block number wraps
                peer.send(data(last, chunk));
            }
            assert_eq!(peer.expect().await, Reply::Ack(last));
        }
        assert_eq!(handler.store().get("big"), Some(contents));
        assert_eq!(end_of(task).await, SessionEnd::Done);
    }

    #[tokio::test(start_paused = true)]
    async fn a_netascii_upload_is_stored_untranslated() {
        let handler = handler_with(&[]);
        let (mut peer, task) = start(&handler, wrq("text", Mode::Netascii, &[]));
        // On the wire: CR LF and CR NUL pairs, two of them split across block boundaries.
        let block1 = [&[b'x'; 509][..], b"\r\n", b"\r"].concat(); // CR | NUL
        let block2 = [&b"\0"[..], &[b'y'; 510], b"\r"].concat(); // CR | LF
        let block3 = b"\nend".to_vec();
        assert_eq!((block1.len(), block2.len()), (512, 512));
        assert_eq!(peer.expect().await, Reply::Ack(0));
        for (block, chunk) in [(1, &block1), (2, &block2), (3, &block3)] {
            peer.send(data(block, chunk));
            assert_eq!(peer.expect().await, Reply::Ack(block));
        }
        let expected = [&[b'x'; 509][..], b"\n\r", &[b'y'; 510], b"\nend"].concat();
        assert_eq!(handler.store().get("text").unwrap(), expected);
        assert_eq!(end_of(task).await, SessionEnd::Done);
    }
}

mod options {
    //! Option negotiation as a client sees it (RFC 2347, 2348, 2349, 7440).

    use tftp_handler::StoreLimits;
    use udp_server::SessionEnd;

    use super::support::{
        Reply, ack, data, end_at_once, end_of, error, file, options, rrq, start, wrq,
    };
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn blksize_and_tsize_are_acknowledged_and_used() {
        let contents = file(3000);
        let handler = handler_with(&[("f", contents.clone())]);
        let request = rrq("f", Mode::Octet, &[("blksize", "1024"), ("tsize", "0")]);
        let (mut peer, task) = start(&handler, request);
        assert_eq!(
            peer.expect().await,
            Reply::Oack(options(&[("blksize", "1024"), ("tsize", "3000")]))
        );
        peer.send(ack(0));
        assert_eq!(peer.expect_data(1).await, contents[..1024]);
        peer.send(ack(1));
        assert_eq!(peer.expect_data(2).await, contents[1024..2048]);
        peer.send(ack(2));
        assert_eq!(peer.expect_data(3).await, contents[2048..]);
        peer.send(ack(3));
        assert_eq!(end_at_once(task).await, SessionEnd::Done);
    }

    #[tokio::test(start_paused = true)]
    async fn unknown_options_are_left_out_and_without_known_ones_there_is_no_oack() {
        let handler = handler_with(&[("f", file(10))]);
        let (mut peer, _task) = start(&handler, rrq("f", Mode::Octet, &[("colour", "blue")]));
        assert_eq!(peer.expect_data(1).await, file(10));
    }

    #[tokio::test(start_paused = true)]
    async fn the_oack_is_resent_until_ack_0() {
        let handler = handler_with(&[("f", file(10))]);
        let (mut peer, _task) = start(&handler, rrq("f", Mode::Octet, &[("tsize", "0")]));
        let oack = Reply::Oack(options(&[("tsize", "10")]));
        assert_eq!(peer.expect().await, oack);
        assert_eq!(peer.expect_after(SECOND).await, oack);
        peer.send(ack(0));
        assert_eq!(peer.expect_data(1).await, file(10));
    }

    #[tokio::test(start_paused = true)]
    async fn a_window_of_four_blocks_goes_out_before_waiting_for_an_ack() {
        let handler = handler_with_config(&[("f", file(512 * 10))], fixed_timer());
        let (mut peer, _task) = start(&handler, rrq("f", Mode::Octet, &[("windowsize", "4")]));
        assert_eq!(
            peer.expect().await,
            Reply::Oack(options(&[("windowsize", "4")]))
        );
        peer.send(ack(0));
        for block in 1..=4 {
            peer.expect_data(block).await;
        }
        peer.expect_silence(SECOND - Duration::from_millis(1)).await;
    }

    #[tokio::test(start_paused = true)]
    async fn an_ack_inside_the_window_resends_from_the_block_after_it() {
        let contents = file(512 * 10);
        let handler = handler_with_config(&[("f", contents.clone())], fixed_timer());
        let (mut peer, _task) = start(&handler, rrq("f", Mode::Octet, &[("windowsize", "4")]));
        peer.expect().await;
        peer.send(ack(0));
        for block in 1..=4 {
            peer.expect_data(block).await;
        }
        // Block 3 was lost: the client acknowledges 2.
        peer.send(ack(2));
        for block in 3..=6 {
            let at = usize::from(block - 1) * 512;
            assert_eq!(peer.expect_data(block).await, contents[at..at + 512]);
        }
        peer.expect_silence(SECOND / 2).await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_negotiated_timeout_sets_the_retransmission_delay() {
        let handler = handler_with(&[("f", file(2000))]);
        let (mut peer, _task) = start(&handler, rrq("f", Mode::Octet, &[("timeout", "3")]));
        assert_eq!(
            peer.expect().await,
            Reply::Oack(options(&[("timeout", "3")]))
        );
        peer.send(ack(0));
        peer.expect_data(1).await;
        assert!(matches!(
            peer.expect_after(3 * SECOND).await,
            Reply::Data(1, _)
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn utimeout_sets_the_retransmission_delay_in_microseconds() {
        let handler = handler_with(&[("f", file(2000))]);
        let request = rrq("f", Mode::Octet, &[("utimeout", "250000")]);
        let (mut peer, _task) = start(&handler, request);
        assert_eq!(
            peer.expect().await,
            Reply::Oack(options(&[("utimeout", "250000")]))
        );
        peer.send(ack(0));
        peer.expect_data(1).await;
        assert!(matches!(
            peer.expect_after(Duration::from_millis(250)).await,
            Reply::Data(1, _)
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn tsize_of_a_netascii_read_is_the_translated_size() {
        let handler = handler_with(&[("t", Bytes::from_static(b"a\nb\r\nc"))]);
        let (mut peer, _task) = start(&handler, rrq("t", Mode::Netascii, &[("tsize", "0")]));
        assert_eq!(peer.expect().await, Reply::Oack(options(&[("tsize", "9")])));
        peer.send(ack(0));
        assert_eq!(peer.expect_data(1).await, b"a\r\nb\r\0\r\nc");
    }

    #[tokio::test(start_paused = true)]
    async fn error_8_in_answer_to_the_oack_ends_the_session_quietly() {
        let handler = handler_with(&[("f", file(2000))]);
        let (mut peer, task) = start(&handler, rrq("f", Mode::Octet, &[("tsize", "0")]));
        assert!(matches!(peer.expect().await, Reply::Oack(_)));
        peer.send(error(ErrorCode::OptionRefused, "just probing"));
        assert_eq!(end_at_once(task).await, SessionEnd::Done);
        peer.expect_closed().await;
    }

    #[tokio::test(start_paused = true)]
    async fn an_upload_with_options_is_answered_with_an_oack_and_uses_them() {
        let handler = handler_with(&[]);
        let request = wrq("up", Mode::Octet, &[("blksize", "16"), ("tsize", "20")]);
        let (mut peer, task) = start(&handler, request);
        assert_eq!(
            peer.expect().await,
            Reply::Oack(options(&[("blksize", "16"), ("tsize", "20")]))
        );
        let contents = file(20);
        peer.send(data(1, &contents[..16]));
        assert_eq!(peer.expect().await, Reply::Ack(1));
        peer.send(data(2, &contents[16..]));
        assert_eq!(peer.expect().await, Reply::Ack(2));
        assert_eq!(handler.store().get("up"), Some(contents));
        assert_eq!(end_of(task).await, SessionEnd::Done);
    }

    #[tokio::test(start_paused = true)]
    async fn an_upload_announcing_more_than_the_size_limit_gets_error_3_and_reserves_nothing() {
        let store = MemoryStore::new(StoreLimits::default().with_max_file_size(1000));
        let handler = TftpHandler::new(store, Config::default());
        let (mut peer, task) = start(&handler, wrq("f", Mode::Octet, &[("tsize", "1001")]));
        assert!(matches!(
            peer.expect().await,
            Reply::Error(ErrorCode::DiskFull, _)
        ));
        assert_eq!(end_at_once(task).await, SessionEnd::Done);
        peer.expect_closed().await;

        let (mut again, _task) = start(&handler, wrq("f", Mode::Octet, &[("tsize", "10")]));
        assert_eq!(
            again.expect().await,
            Reply::Oack(options(&[("tsize", "10")])),
            "the name was never reserved"
        );
    }
}

mod shutdown {
    //! The session's cancellation token: the server's shutdown grace has run out.

    use udp_server::SessionEnd;

    use super::support::{Reply, ack, data, end_at_once, file, rrq, start, wrq};
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn cancelling_a_read_mid_transfer_sends_error_0_and_ends_it() {
        let handler = handler_with(&[("f", file(2000))]);
        let (mut peer, task) = start(&handler, rrq("f", Mode::Octet, &[]));
        peer.expect_data(1).await;
        peer.send(ack(1));
        peer.expect_data(2).await;
        peer.cancel();
        assert_eq!(
            peer.expect().await,
            Reply::Error(ErrorCode::NotDefined, "server shutting down".into())
        );
        assert_eq!(end_at_once(task).await, SessionEnd::Done);
        peer.expect_closed().await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_cancelled_upload_publishes_nothing() {
        let handler = handler_with(&[("f", file(100))]);
        let (mut peer, task) = start(&handler, wrq("f", Mode::Octet, &[]));
        assert_eq!(peer.expect().await, Reply::Ack(0));
        peer.send(data(1, &[7; 512]));
        assert_eq!(peer.expect().await, Reply::Ack(1));
        peer.cancel();
        assert_eq!(
            peer.expect().await,
            Reply::Error(ErrorCode::NotDefined, "server shutting down".into())
        );
        assert_eq!(end_at_once(task).await, SessionEnd::Done);
        assert_eq!(handler.store().get("f"), Some(file(100)));
    }

    #[tokio::test(start_paused = true)]
    async fn cancelling_a_completed_upload_during_its_dally_sends_no_error() {
        let handler = handler_with(&[]);
        let (mut peer, task) = start(&handler, wrq("f", Mode::Octet, &[]));
        assert_eq!(peer.expect().await, Reply::Ack(0));
        peer.send(data(1, b"done"));
        assert_eq!(peer.expect().await, Reply::Ack(1));
        tokio::time::sleep(Duration::from_millis(500)).await;
        peer.cancel();
        assert_eq!(end_at_once(task).await, SessionEnd::Done);
        assert!(
            peer.rest().await.is_empty(),
            "the upload succeeded: no ERROR"
        );
        assert_eq!(handler.store().get("f").as_deref(), Some(&b"done"[..]));
    }
}

mod adaptive_timer {
    //! The retransmission wait adapts to the measured round trip (RFC 6298) unless the client
    //! negotiated a timeout. Time is paused and the test peer answers at once, so the
    //! estimate falls to the floor (`min_retry_timeout`, 10 ms by default).

    use udp_server::SessionEnd;

    use super::support::{Reply, ack, data, end_of, file, options, rrq, start, wrq};
    use super::*;

    const FLOOR: Duration = Duration::from_millis(10);

    #[tokio::test(start_paused = true)]
    async fn a_lost_ack_on_a_fast_link_is_resent_after_the_floor_with_backoff() {
        let handler = handler_with(&[("f", file(512 * 20))]);
        let (mut peer, _task) = start(&handler, rrq("f", Mode::Octet, &[]));
        for block in 1..=8 {
            peer.expect_data(block).await;
            peer.send(ack(block));
        }
        let first = peer.expect_data(9).await;
        // ACK 9 is lost: DATA 9 comes again after 10 ms, then 20 ms later (backoff).
        assert_eq!(
            peer.expect_after(FLOOR).await,
            Reply::Data(9, first.clone())
        );
        assert_eq!(peer.expect_after(2 * FLOOR).await, Reply::Data(9, first));
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_peer_is_still_given_the_whole_silence_budget() {
        let handler = handler_with(&[("f", file(512 * 20))]);
        let budget = SECOND * (handler.config().max_retries + 1);
        let (mut peer, task) = start(&handler, rrq("f", Mode::Octet, &[]));
        for block in 1..=8 {
            peer.expect_data(block).await;
            peer.send(ack(block));
        }
        peer.expect_data(9).await;
        let silent_since = tokio::time::Instant::now();
        let resent = peer.rest_timed().await;
        assert_eq!(end_of(task).await, SessionEnd::Done);
        assert_eq!(
            silent_since.elapsed(),
            budget,
            "abandoned after timeout x (retries + 1)"
        );
        // 10, 20, 40, ... 640 ms, then every second: 11 resends, the last before the end.
        assert_eq!(resent.len(), 11, "{resent:?}");
        assert!(resent.iter().all(|(_, r)| matches!(r, Reply::Data(9, _))));
    }

    #[tokio::test(start_paused = true)]
    async fn a_negotiated_timeout_is_obeyed_exactly_on_a_fast_link() {
        let handler = handler_with(&[("f", file(512 * 20))]);
        let (mut peer, _task) = start(&handler, rrq("f", Mode::Octet, &[("timeout", "2")]));
        assert_eq!(
            peer.expect().await,
            Reply::Oack(options(&[("timeout", "2")]))
        );
        peer.send(ack(0));
        for block in 1..=8 {
            peer.expect_data(block).await;
            peer.send(ack(block));
        }
        peer.expect_data(9).await;
        assert!(matches!(
            peer.expect_after(2 * SECOND).await,
            Reply::Data(9, _)
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn the_first_reply_waits_the_configured_timeout() {
        let handler = handler_with(&[("f", file(2000))]);
        let (mut peer, _task) = start(&handler, rrq("f", Mode::Octet, &[]));
        peer.expect_data(1).await;
        // No round trip measured yet: the first resend comes after the full second.
        assert!(matches!(peer.expect_after(SECOND).await, Reply::Data(1, _)));
    }

    #[tokio::test(start_paused = true)]
    async fn an_upload_whose_data_is_lost_is_re_acked_after_the_floor() {
        let handler = handler_with(&[]);
        let (mut peer, _task) = start(&handler, wrq("up", Mode::Octet, &[]));
        assert_eq!(peer.expect().await, Reply::Ack(0));
        for block in 1..=8 {
            peer.send(data(block, &[block as u8; 512]));
            assert_eq!(peer.expect().await, Reply::Ack(block));
        }
        // DATA 9 is lost: ACK 8 comes again after the floor.
        assert_eq!(peer.expect_after(FLOOR).await, Reply::Ack(8));
    }
}
