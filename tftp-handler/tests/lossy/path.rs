//! One direction of a lossy link: datagrams go in, and come out after a latency, unless the
//! path drops them; some come out twice, some are held back so that later ones overtake them.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};
use tokio::time::{Instant, sleep_until};

use super::rng::Rng;

/// One-way latency of every datagram.
pub(crate) const LATENCY: Duration = Duration::from_millis(1);

/// A reordered datagram is held back by 1 to this many milliseconds more than the latency.
const MAX_HOLD_BACK_MS: u64 = 4;

/// What a path does to each datagram, as probabilities.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Faults {
    /// Dropped.
    pub(crate) loss: f64,
    /// Delivered twice (the copy a little later).
    pub(crate) duplicate: f64,
    /// Held back, so that datagrams sent after it arrive first.
    pub(crate) reorder: f64,
}

impl Faults {
    /// The same probability of loss, duplication and reordering.
    pub(crate) fn each(p: f64) -> Self {
        Self {
            loss: p,
            duplicate: p,
            reorder: p,
        }
    }

    /// Only loss.
    pub(crate) fn loss(p: f64) -> Self {
        Self {
            loss: p,
            duplicate: 0.0,
            reorder: 0.0,
        }
    }
}

/// What the paths of a network did, summed over all of them.
#[derive(Debug, Default)]
pub(crate) struct PathCounts {
    /// Datagrams put on a path.
    pub(crate) sent: AtomicU64,
    /// Of those, dropped.
    pub(crate) dropped: AtomicU64,
    /// Delivered twice.
    pub(crate) duplicated: AtomicU64,
    /// Held back.
    pub(crate) reordered: AtomicU64,
}

impl PathCounts {
    fn add(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// A datagram waiting to come out, ordered by due time, then by the order it was scheduled.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Due {
    at: Instant,
    seq: u64,
    datagram: Bytes,
}

/// Starts a path: what is sent into the returned sender comes out into `out`, with `faults`.
/// The path ends once its input is closed and everything due has come out.
pub(crate) fn spawn_path(
    faults: Faults,
    mut rng: Rng,
    counts: Arc<PathCounts>,
    out: UnboundedSender<Bytes>,
) -> UnboundedSender<Bytes> {
    let (input, mut incoming) = unbounded_channel::<Bytes>();
    tokio::spawn(async move {
        let mut due: BinaryHeap<Reverse<Due>> = BinaryHeap::new();
        let mut seq = 0;
        let mut open = true;
        while open || !due.is_empty() {
            let next = due.peek().map(|Reverse(d)| d.at);
            tokio::select! {
                biased;
                () = sleep_until(next.unwrap_or_else(Instant::now)), if next.is_some() => {
                    let now = Instant::now();
                    while due.peek().is_some_and(|Reverse(d)| d.at <= now) {
                        if let Some(Reverse(d)) = due.pop() {
                            let _ = out.send(d.datagram);
                        }
                    }
                }
                datagram = recv_if(open, &mut incoming) => {
                    let Some(datagram) = datagram else {
                        open = false;
                        continue;
                    };
                    PathCounts::add(&counts.sent);
                    if rng.chance(faults.loss) {
                        PathCounts::add(&counts.dropped);
                        continue;
                    }
                    let now = Instant::now();
                    let mut at = now + LATENCY;
                    if rng.chance(faults.reorder) {
                        PathCounts::add(&counts.reordered);
                        at += Duration::from_millis(1 + rng.up_to(MAX_HOLD_BACK_MS - 1));
                    }
                    if rng.chance(faults.duplicate) {
                        PathCounts::add(&counts.duplicated);
                        let later = at + Duration::from_millis(1 + rng.up_to(MAX_HOLD_BACK_MS - 1));
                        seq += 1;
                        due.push(Reverse(Due { at: later, seq, datagram: datagram.clone() }));
                    }
                    seq += 1;
                    due.push(Reverse(Due { at, seq, datagram }));
                }
            }
        }
    });
    input
}

/// The next datagram while the input is open; never resolves once it is closed.
async fn recv_if(open: bool, incoming: &mut UnboundedReceiver<Bytes>) -> Option<Bytes> {
    if open {
        incoming.recv().await
    } else {
        std::future::pending().await
    }
}
