//! A protocol-agnostic UDP server.
//!
//! The server reads datagrams off one socket, routes each to a per-peer *session* by the peer's
//! address, and sends whatever sessions hand to their outbound side. It knows nothing about the
//! protocol spoken: a [`ProtocolHandler`] decides what a datagram from a new peer means, and
//! the session future it returns does the rest.
//!
//! ```text
//! socket ─▶ receive loop ─▶ router ─▶ inbound channel ─▶ session (handler's future)
//!                                                             │
//! socket ◀─ send loop ◀──────────── outbound channel ◀────────┘
//! ```
//!
//! # Layout
//! - [`handler`]: the [`ProtocolHandler`] trait and the IO a session receives ([`SessionIo`]).
//! - [`datagram`]: [`Datagram`], an outgoing header + shared payload sent without copying.
//! - `router`: peer address → live session, delivery policy, stale-cleanup protection.
//! - [`server`]: [`Server::run`]: the receive loop, the send loop and graceful shutdown.
//! - `segment`: runs of equal-sized datagrams to one peer sent as one UDP GSO write (Linux).
//! - [`stats`]: counters readable while the server runs.
//! - [`socket`]: [`bind`], a helper that binds (dual-stack for an IPv6 wildcard address).

pub mod datagram;
pub mod handler;
mod receive;
mod router;
mod segment;
mod send_many;
pub mod server;
pub mod socket;
pub mod stats;

pub use datagram::{Datagram, Outgoing};
pub use handler::{
    DetachedPeer, PeerSender, ProtocolHandler, Refusal, SessionEnd, SessionFuture, SessionIo,
};
pub use server::{Server, ServerConfig};
pub use socket::bind;
pub use stats::{Stats, StatsSnapshot};
