//! memtftpd end to end: the real server on a loopback socket, driven by real TFTP clients
//! (tftp-hpa, atftp, curl, busybox) and by a small raw client for protocol-level checks.
//!
//! One test binary with a module per topic. Every transfer is checked byte for byte against
//! its source. The clients must be installed (see `memtftpd_tests::require`); nothing here
//! pauses tokio's clock, since the clients run on real time.

#![allow(clippy::unwrap_used)]

// A test crate's root resolves `mod` paths next to itself, so each topic names its file.

#[path = "e2e/amplification.rs"]
mod amplification;
#[path = "e2e/atftp.rs"]
mod atftp;
#[path = "e2e/busybox.rs"]
mod busybox;
#[path = "e2e/curl.rs"]
mod curl;
#[path = "e2e/hostile.rs"]
mod hostile;
#[path = "e2e/hpa.rs"]
mod hpa;
#[path = "e2e/load.rs"]
mod load;
#[path = "e2e/nothing_lost.rs"]
mod nothing_lost;
#[path = "e2e/protocol.rs"]
mod protocol;
#[path = "e2e/slow_clients.rs"]
mod slow_clients;
#[path = "e2e/transfer_id.rs"]
mod transfer_id;
