//! Peer address → live session.
//!
//! The router is owned by the receive loop alone, so it needs no lock. It delivers a datagram
//! to its peer's session without ever waiting (a full queue drops the datagram), and removes a
//! route only for the session that created it: every route carries a fresh [`RouteId`], so a
//! late cleanup from an old session never removes a newer session for the same peer. It also
//! counts live sessions per peer IP address (IPv4-mapped IPv6 counted as IPv4), for the
//! per-address limit.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::net::{IpAddr, SocketAddr};

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;

/// Identifies one session's route, unique for the router's lifetime.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct RouteId(u64);

/// What happened to a datagram offered to the router.
#[derive(Debug)]
pub(crate) enum Delivery {
    /// Queued for the peer's live session.
    Delivered,
    /// The peer's session queue was full; the datagram was dropped.
    QueueFull,
    /// No live session for this peer (or its session has stopped reading, in which case its
    /// route is removed now): the datagram is handed back to open a new one.
    NoSession(Bytes),
}

/// One live session's entry.
#[derive(Debug)]
struct Route {
    /// Tells this session apart from a later one for the same peer.
    id: RouteId,
    /// The session's inbound queue.
    tx: mpsc::Sender<Bytes>,
}

/// The routing table of one socket.
#[derive(Debug, Default)]
pub(crate) struct Router {
    /// Live sessions by peer.
    routes: HashMap<SocketAddr, Route>,
    /// Live sessions by peer IP address; an address with none has no entry.
    per_ip: HashMap<IpAddr, usize>,
    /// The id the next route gets.
    next_id: u64,
}

impl Router {
    /// Offers `datagram` from `peer` to its live session.
    pub(crate) fn deliver(&mut self, peer: SocketAddr, datagram: Bytes) -> Delivery {
        let Entry::Occupied(entry) = self.routes.entry(peer) else {
            return Delivery::NoSession(datagram);
        };
        match entry.get().tx.try_send(datagram) {
            Ok(()) => Delivery::Delivered,
            Err(TrySendError::Full(_)) => Delivery::QueueFull,
            Err(TrySendError::Closed(datagram)) => {
                // The session dropped its receiver: it is ending, and this datagram belongs to
                // whatever the peer does next.
                entry.remove();
                self.forget_ip(peer);
                Delivery::NoSession(datagram)
            }
        }
    }

    /// Adds a route for a new session of `peer`, replacing none: the caller has just seen
    /// [`Delivery::NoSession`] for this peer.
    pub(crate) fn insert(&mut self, peer: SocketAddr, tx: mpsc::Sender<Bytes>) -> RouteId {
        let id = RouteId(self.next_id);
        self.next_id += 1;
        if self.routes.insert(peer, Route { id, tx }).is_none() {
            *self.per_ip.entry(ip_of(peer)).or_default() += 1;
        }
        id
    }

    /// Removes `peer`'s route if it still belongs to session `id`. Returns whether it did.
    pub(crate) fn remove(&mut self, peer: SocketAddr, id: RouteId) -> bool {
        match self.routes.entry(peer) {
            Entry::Occupied(entry) if entry.get().id == id => {
                entry.remove();
                self.forget_ip(peer);
                true
            }
            _ => false,
        }
    }

    /// How many sessions are live for `peer`'s IP address.
    pub(crate) fn sessions_of_ip(&self, peer: SocketAddr) -> usize {
        self.per_ip.get(&ip_of(peer)).copied().unwrap_or(0)
    }

    /// One session of `peer`'s address has gone.
    fn forget_ip(&mut self, peer: SocketAddr) {
        let ip = ip_of(peer);
        if let Some(count) = self.per_ip.get_mut(&ip) {
            *count -= 1;
            if *count == 0 {
                self.per_ip.remove(&ip);
            }
        }
    }

    /// How many routes are live.
    pub(crate) fn len(&self) -> usize {
        self.routes.len()
    }

    /// True when no session is live.
    pub(crate) fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }
}

/// The address sessions are counted under: IPv4-mapped IPv6 (from a dual-stack socket) as
/// the IPv4 address it is.
fn ip_of(peer: SocketAddr) -> IpAddr {
    peer.ip().to_canonical()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn peer(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    fn datagram(text: &'static str) -> Bytes {
        Bytes::from_static(text.as_bytes())
    }

    #[test]
    fn a_datagram_from_an_unknown_peer_is_handed_back() {
        let mut router = Router::default();
        match router.deliver(peer(1), datagram("hi")) {
            Delivery::NoSession(d) => assert_eq!(d, "hi"),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn a_datagram_from_a_routed_peer_reaches_its_session_only() {
        let mut router = Router::default();
        let (tx1, mut rx1) = mpsc::channel(4);
        let (tx2, mut rx2) = mpsc::channel(4);
        router.insert(peer(1), tx1);
        router.insert(peer(2), tx2);
        assert!(matches!(
            router.deliver(peer(2), datagram("b")),
            Delivery::Delivered
        ));
        assert_eq!(rx2.try_recv().unwrap(), "b");
        assert!(rx1.try_recv().is_err());
    }

    #[test]
    fn a_full_queue_drops_the_datagram_without_waiting() {
        let mut router = Router::default();
        let (tx, mut rx) = mpsc::channel(1);
        router.insert(peer(1), tx);
        assert!(matches!(
            router.deliver(peer(1), datagram("1")),
            Delivery::Delivered
        ));
        assert!(matches!(
            router.deliver(peer(1), datagram("2")),
            Delivery::QueueFull
        ));
        assert_eq!(rx.try_recv().unwrap(), "1");
        assert!(rx.try_recv().is_err());
        assert_eq!(router.len(), 1, "a full queue does not end the session");
    }

    #[test]
    fn cleanup_removes_the_route() {
        let mut router = Router::default();
        let (tx, _rx) = mpsc::channel(1);
        let id = router.insert(peer(1), tx);
        assert!(router.remove(peer(1), id));
        assert!(router.is_empty());
    }

    #[test]
    fn a_late_cleanup_never_removes_a_newer_session_for_the_same_peer() {
        let mut router = Router::default();
        let (old_tx, old_rx) = mpsc::channel(1);
        let old = router.insert(peer(1), old_tx);
        drop(old_rx); // the old session ends...
        // ...the peer's next datagram finds it closed and opens a new session...
        assert!(matches!(
            router.deliver(peer(1), datagram("new")),
            Delivery::NoSession(_)
        ));
        let (new_tx, mut new_rx) = mpsc::channel(1);
        let new = router.insert(peer(1), new_tx);
        // ...and only then does the old session's cleanup arrive.
        assert!(!router.remove(peer(1), old));
        assert!(matches!(
            router.deliver(peer(1), datagram("x")),
            Delivery::Delivered
        ));
        assert_eq!(new_rx.try_recv().unwrap(), "x");
        assert!(router.remove(peer(1), new));
    }

    #[test]
    fn sessions_are_counted_per_ip_address_and_uncounted_when_they_end() {
        let mut router = Router::default();
        let (tx1, _rx1) = mpsc::channel(1);
        let (tx2, rx2) = mpsc::channel(1);
        let first = router.insert(peer(1), tx1);
        router.insert(peer(2), tx2);
        let mapped: SocketAddr = "[::ffff:127.0.0.1]:3".parse().unwrap();
        assert_eq!(
            router.sessions_of_ip(mapped),
            2,
            "IPv4-mapped counts as IPv4"
        );
        router.remove(peer(1), first);
        drop(rx2);
        let _ = router.deliver(peer(2), datagram("x"));
        assert_eq!(router.sessions_of_ip(peer(9)), 0);
        assert!(router.per_ip.is_empty(), "no entry left behind");
    }

    #[test]
    fn a_session_that_stopped_reading_hands_the_datagram_back_and_loses_its_route() {
        let mut router = Router::default();
        let (tx, rx) = mpsc::channel(1);
        router.insert(peer(1), tx);
        drop(rx);
        match router.deliver(peer(1), datagram("next")) {
            Delivery::NoSession(d) => assert_eq!(d, "next"),
            other => panic!("unexpected {other:?}"),
        }
        assert!(router.is_empty());
    }
}
