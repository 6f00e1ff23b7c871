//! End-to-end tests of the `memtftpd` executable, run the way an operator runs it.
//!
//! Each test starts the built binary as a child process on an ephemeral port with the flags
//! under test, then talks to it with real clients (curl, tftp-hpa) or a raw client over UDP,
//! and asserts on what a user would notice: exit statuses, error codes and messages, bytes on
//! disk, log lines. One module per topic; the harness lives in `support`. Protocol details
//! (options, netascii, retransmission) are covered by the `tests` crate, not here.

#![allow(clippy::unwrap_used)]

mod access;
mod config;
mod ipv6;
mod limits;
mod logs;
mod operator;
mod persist;
mod policies;
mod shutdown;
mod support;
