//! A test-only fault-injection shim at the channel level: between the router and a session,
//! and between the session and the send loop, datagrams are dropped, duplicated, reordered
//! and delayed with a seeded random generator, in both directions ([`path`]). [`network`]
//! wires TFTP clients to a `TftpHandler` through such paths, with a router that behaves as
//! `udp-server`'s does. Time is paused in the tests that use it: latencies and timers are
//! exact, and hours of lossy transfers take seconds.

pub(crate) mod network;
pub(crate) mod path;
pub(crate) mod rng;
