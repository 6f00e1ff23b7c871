//! Echo-count: a second, tiny protocol, to show that the server knows nothing of TFTP.
//!
//! Every peer gets a session that answers each of its datagrams, the first included, with the
//! datagram, a space and the session's running count in decimal: `hello` is answered
//! `hello 1`, the next `hello` `hello 2`, and so on. A session ends when its peer has been
//! silent for the idle timeout, or when its cancellation token fires. Shared by the
//! `echo_count` example and the integration tests, which include this file with `#[path]`; it
//! opens no socket and installs no subscriber.

use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use tracing::{Instrument, debug, info};
use udp_server::{Datagram, ProtocolHandler, SessionEnd, SessionFuture, SessionIo};

/// The echo-count protocol.
#[derive(Debug, Clone, Copy)]
pub(crate) struct EchoCount {
    /// How long a session waits for its peer's next datagram before it ends.
    pub(crate) idle: Duration,
}

impl ProtocolHandler for EchoCount {
    fn open_session(&self, first: Bytes, io: SessionIo) -> Option<SessionFuture> {
        let span = tracing::info_span!("echo_count", peer = %io.peer);
        Some(Box::pin(session(first, io, self.idle).instrument(span)))
    }
}

/// Runs one peer's session: answers `first`, then every later datagram, until the peer has
/// been silent for `idle` or the session is cancelled.
async fn session(first: Bytes, mut io: SessionIo, idle: Duration) -> SessionEnd {
    let mut count = 0;
    let mut next = first;
    let reason = loop {
        count += 1;
        debug!(len = next.len(), count, "datagram");
        if io.outbound.send(reply(&next, count)).await.is_err() {
            break "send loop closed";
        }
        next = tokio::select! {
            () = io.cancel.cancelled() => break "cancelled",
            received = tokio::time::timeout(idle, io.inbound.recv()) => match received {
                Ok(Some(datagram)) => datagram,
                // The server never closes a live session's queue; treat it like silence.
                Ok(None) | Err(_) => break "idle",
            },
        };
    };
    info!(count, reason, "session ended");
    SessionEnd::Done
}

/// The answer to `datagram` when it is the session's `count`-th: the datagram, a space, and
/// the count in decimal.
pub(crate) fn reply(datagram: &[u8], count: u64) -> Datagram {
    let count = count.to_string();
    let mut out = BytesMut::with_capacity(datagram.len() + 1 + count.len());
    out.put_slice(datagram);
    out.put_u8(b' ');
    out.put_slice(count.as_bytes());
    Datagram::new(out.freeze())
}
