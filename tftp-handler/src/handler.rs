//! [`TftpHandler`]: TFTP as a [`udp_server::ProtocolHandler`].
//!
//! For a datagram from a peer without a live session: a read or write request opens a session
//! (served by the `session` module); a DATA, ACK or OACK gets ERROR 5 (unknown transfer ID) and
//! no session; a peer's ERROR is never answered; anything malformed gets ERROR 4 saying what
//! is wrong. When the server refuses a peer (too many sessions, shutting down) a request gets
//! an ERROR saying so, and nothing else gets a reply. These one-off replies are rate-limited
//! ([`Config::error_reply_rate`]); over the limit, nothing is sent. A peer outside the access
//! list gets no reply at all.

use std::sync::Arc;

use bytes::Bytes;
use tracing::debug;
use udp_server::{Datagram, PeerSender, ProtocolHandler, Refusal, SessionFuture, SessionIo};

use crate::config::Config;
use crate::error::ErrorReply;
use crate::packet::{ErrorCode, Packet};
use crate::reply_limit::ReplyLimit;
use crate::session;
use crate::store::{MemoryStore, Store};

/// The TFTP protocol over a [`Store`].
#[derive(Debug)]
pub struct TftpHandler<S = MemoryStore> {
    /// Where files are read from and uploaded to.
    store: Arc<S>,
    /// Protocol settings, shared with every session.
    config: Arc<Config>,
    /// Bounds the one-off ERROR replies.
    reply_limit: ReplyLimit,
}

impl<S: Store> TftpHandler<S> {
    /// A handler serving `store` with `config`.
    pub fn new(store: S, config: Config) -> Self {
        Self {
            store: Arc::new(store),
            reply_limit: ReplyLimit::new(config.error_reply_rate),
            config: Arc::new(config),
        }
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The protocol settings.
    pub fn config(&self) -> &Config {
        &self.config
    }
}

impl<S> TftpHandler<S> {
    /// Queues a one-off ERROR to the peer, within the rate limit (best effort: dropped if the
    /// send queue is full).
    fn reply_once(&self, reply: &PeerSender, error: ErrorReply) {
        if !self.reply_limit.admit() {
            debug!(peer = %reply.peer(), %error, "one-off error reply over the rate limit: dropped");
            return;
        }
        debug!(peer = %reply.peer(), %error, "one-off error reply");
        reply.try_send(Datagram::new(error.to_bytes()));
    }
}

impl<S: Store> ProtocolHandler for TftpHandler<S> {
    fn open_session(&self, first: Bytes, io: SessionIo) -> Option<SessionFuture> {
        if !self.config.access.admits(io.peer.ip()) {
            debug!(peer = %io.peer, "peer refused by the access list");
            return None;
        }
        match Packet::decode(&first) {
            Ok(Packet::Rrq(_) | Packet::Wrq(_)) => {}
            Ok(Packet::Data { .. } | Packet::Ack { .. } | Packet::Oack { .. }) => {
                self.reply_once(
                    &io.outbound,
                    ErrorReply::new(ErrorCode::UnknownTransferId, "unknown transfer ID"),
                );
                return None;
            }
            Ok(Packet::Error { .. }) => return None, // never answer an error
            Err(e) => {
                self.reply_once(
                    &io.outbound,
                    ErrorReply::new(
                        ErrorCode::IllegalOperation,
                        format!("malformed request: {e}"),
                    ),
                );
                return None;
            }
        }
        let store = Arc::clone(&self.store);
        let config = Arc::clone(&self.config);
        Some(Box::pin(session::serve(store, config, first, io)))
    }

    fn refuse(&self, first: Bytes, reply: &PeerSender, reason: Refusal) {
        if !matches!(Packet::decode(&first), Ok(Packet::Rrq(_) | Packet::Wrq(_))) {
            return;
        }
        if !self.config.access.admits(reply.peer().ip()) {
            return;
        }
        let message = match reason {
            Refusal::ShuttingDown => "server shutting down",
            Refusal::PeerLimit => "too many transfers from your address, try again later",
            _ => "server busy, try again later",
        };
        self.reply_once(reply, ErrorReply::new(ErrorCode::NotDefined, message));
    }
}
