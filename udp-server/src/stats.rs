//! Server counters, readable at any time while the server runs.
//!
//! Plain relaxed atomics: each counter is exact, but a [`StatsSnapshot`] is not a consistent
//! cut across counters (a datagram may be counted in before its session is counted open).

use std::sync::atomic::{AtomicU64, Ordering};

/// Live counters of one server. Shared through an `Arc` (see [`Server::stats`](crate::Server::stats)).
#[derive(Debug, Default)]
pub struct Stats {
    pub(crate) datagrams_in: AtomicU64,
    pub(crate) datagrams_out: AtomicU64,
    pub(crate) dropped_queue_full: AtomicU64,
    pub(crate) refused_session_limit: AtomicU64,
    pub(crate) refused_peer_limit: AtomicU64,
    pub(crate) refused_shutting_down: AtomicU64,
    pub(crate) receive_errors: AtomicU64,
    pub(crate) send_errors: AtomicU64,
    pub(crate) sessions_opened: AtomicU64,
    pub(crate) sessions_closed: AtomicU64,
}

/// A copy of the counters at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct StatsSnapshot {
    /// Datagrams received from the socket.
    pub datagrams_in: u64,
    /// Datagrams handed to the socket successfully.
    pub datagrams_out: u64,
    /// Datagrams dropped because their session's inbound queue was full.
    pub dropped_queue_full: u64,
    /// New peers refused because the session limit was reached.
    pub refused_session_limit: u64,
    /// New peers refused because their IP address had its most sessions already.
    pub refused_peer_limit: u64,
    /// New peers refused because the server was shutting down.
    pub refused_shutting_down: u64,
    /// Receive errors that were logged and survived (e.g. ICMP port unreachable).
    pub receive_errors: u64,
    /// Datagrams the socket failed to send.
    pub send_errors: u64,
    /// Sessions opened since the server started.
    pub sessions_opened: u64,
    /// Sessions that have ended.
    pub sessions_closed: u64,
}

impl StatsSnapshot {
    /// Sessions open right now.
    pub fn sessions_live(&self) -> u64 {
        self.sessions_opened.saturating_sub(self.sessions_closed)
    }
}

impl Stats {
    /// Reads every counter.
    pub fn snapshot(&self) -> StatsSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        StatsSnapshot {
            datagrams_in: get(&self.datagrams_in),
            datagrams_out: get(&self.datagrams_out),
            dropped_queue_full: get(&self.dropped_queue_full),
            refused_session_limit: get(&self.refused_session_limit),
            refused_peer_limit: get(&self.refused_peer_limit),
            refused_shutting_down: get(&self.refused_shutting_down),
            receive_errors: get(&self.receive_errors),
            send_errors: get(&self.send_errors),
            sessions_opened: get(&self.sessions_opened),
            sessions_closed: get(&self.sessions_closed),
        }
    }

    pub(crate) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}
