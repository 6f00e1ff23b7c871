//! The TFTP protocol (RFC 1350, with options from RFC 2347, 2348, 2349 and 7440) as a
//! [`udp_server::ProtocolHandler`], over an in-memory file store.
//!
//! Plug a [`TftpHandler`] into a [`udp_server::Server`] and every read or write request
//! becomes a session: one actor that drives a sans-IO transfer state machine, with its own
//! retry timer and cancellation token.
//!
//! # Layout
//! - [`packet`]: the wire codec, decode and encode of every packet type.
//! - [`netascii`]: streaming netascii translation, both directions.
//! - `options`: option negotiation, producing transfer parameters and the OACK.
//! - `transfer`: the sender (DATA out) and receiver (DATA in) state machines; no IO, no clock.
//! - `worker`: the async actor that feeds a state machine datagrams and timeouts.
//! - `session`: checks a request and starts the right transfer.
//! - [`handler`]: [`TftpHandler`], the `ProtocolHandler` implementation; `reply_limit`: the
//!   rate limit of its one-off ERROR replies.
//! - [`client`]: [`Client`], a TFTP client made of the same state machines; `client_socket`:
//!   its UDP socket, which receives a window of DATA in one system call where Linux allows.
//! - [`store`]: the [`Store`] trait and the in-memory [`MemoryStore`]; [`persist`]: the same,
//!   saving completed uploads to a directory.
//! - [`access`]: the allow/deny address list. [`names`]: file-name rules. [`config`]: protocol settings. [`error`]: ERROR replies.

pub mod access;
pub mod client;
mod client_socket;
pub mod config;
pub mod error;
pub mod handler;
pub mod names;
pub mod netascii;
pub mod options;
pub mod packet;
pub mod persist;
mod reply_limit;
mod session;
pub mod store;
mod transfer;
mod worker;

pub use access::AccessList;
pub use client::{Client, ClientConfig, ClientError, ClientLink};
pub use config::Config;
pub use error::ErrorReply;
pub use handler::TftpHandler;
pub use options::{
    DEFAULT_BLOCK_SIZE, MAX_BLOCK_SIZE, MAX_WINDOW_SIZE, MIN_BLOCK_SIZE, RequestOptions,
};
pub use packet::{ErrorCode, Mode, Packet};
pub use persist::{PersistentStore, PersistentUpload};
pub use store::{MemoryStore, MemoryUpload, Store, StoreError, StoreLimits, Upload};
