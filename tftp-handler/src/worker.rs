//! The actor that drives one transfer: the only place a transfer meets channels and time.
//!
//! It owns the session's IO and a [`Transfer`] state machine, and loops: send what the
//! machine queued, publish a finished upload, then wait for whichever comes first of the
//! session's cancellation, a datagram from the peer, or the machine's deadline. A request
//! from the peer is not for the machine. The same request again is normally a copy (the peer
//! resent it, or the network duplicated or delayed it): the transfer goes on, and if the peer
//! has never answered and our timer has stopped resending the first reply, the copy draws it
//! once more. But if the transfer has stalled for a whole timeout after the peer answered, the
//! same request means the peer started over; and any other request means it moved on to a new
//! transfer. In those two cases this one ends and hands the datagram back to the server to
//! open the next session.

use std::time::Duration;

use bytes::Bytes;
use tokio::time::{Instant, sleep_until};
use tracing::{debug, info, warn};
use udp_server::{SessionEnd, SessionIo};

use crate::error::ErrorReply;
use crate::packet::{ErrorCode, Opcode, Packet};
use crate::store::Upload;
use crate::transfer::{Transfer, now};

/// Runs `transfer` to its end. `request` is the datagram that opened the session; `upload`
/// receives the contents of a completed upload.
///
/// A plain function returning an `async move` block, not an `async fn`: the block uses the
/// values it captures in place, where an `async fn` would copy its parameters into locals and
/// keep both (half a kilobyte more per live session).
#[expect(
    clippy::manual_async_fn,
    reason = "an async fn would store its parameters twice (see above)"
)]
pub(crate) fn run<T: Transfer + Send, U: Upload>(
    mut transfer: T,
    mut io: SessionIo,
    request: Bytes,
    mut upload: Option<U>,
    time_limit: Duration,
) -> impl Future<Output = SessionEnd> + Send {
    async move {
        let started = now();
        let give_up_at = started.checked_add(time_limit);
        let timer = sleep_until(Instant::now());
        tokio::pin!(timer);
        // Made once: a fresh `cancelled()` per turn of the loop would register and unregister a
        // waiter on the token (two lock round trips) for every datagram.
        let cancelled = io.cancel.clone().cancelled_owned();
        tokio::pin!(cancelled);
        let mut cancel_seen = false;
        let mut armed = None;
        let mut reserved = 0;
        let mut logged = false;
        let end = loop {
            while let Some(datagram) = transfer.poll_transmit() {
                if io.outbound.send(datagram).await.is_err() {
                    return SessionEnd::Done; // the server is gone
                }
            }
            if let Some(contents) = transfer.take_upload() {
                let result = match upload.take() {
                    Some(upload) => upload.publish(contents).await.map_err(ErrorReply::from),
                    None => Err(ErrorReply::new(ErrorCode::NotDefined, "nowhere to store")),
                };
                transfer.handle_published(now(), result);
                continue;
            }
            if !logged && let Some(outcome) = transfer.outcome() {
                logged = true;
                let progress = transfer.progress();
                info!(
                    bytes = progress.bytes,
                    retransmits = progress.retransmits,
                    duration_ms = now().saturating_duration_since(started).as_millis() as u64,
                    %outcome,
                    "transfer finished"
                );
            }
            if transfer.is_finished() {
                break SessionEnd::Done;
            }
            // Until it settles, the transfer also races the wall-clock limit.
            let deadline = match (transfer.poll_timeout(), transfer.outcome()) {
                (Some(deadline), None) => Some(give_up_at.map_or(deadline, |g| deadline.min(g))),
                (deadline, _) => deadline,
            };
            if deadline != armed
                && let Some(deadline) = deadline
            {
                // Re-registering the timer costs a little: only when the deadline moved.
                timer.as_mut().reset(Instant::from_std(deadline));
            }
            armed = deadline;
            tokio::select! {
                biased;
                () = &mut cancelled, if !cancel_seen => {
                    cancel_seen = true;
                    // A transfer that has already settled (an upload dallying after its final
                    // ACK) succeeded: telling the peer otherwise would be a lie.
                    if transfer.outcome().is_some() {
                        break SessionEnd::Done;
                    }
                    warn!("transfer cancelled: server shutting down");
                    // Ends the transfer with the ERROR queued; the loop sends it and logs the
                    // outcome like any other.
                    transfer.fail(ErrorReply::new(ErrorCode::NotDefined, "server shutting down"));
                }
                datagram = io.inbound.recv() => {
                    let Some(datagram) = datagram else {
                        break SessionEnd::Done;
                    };
                    match Packet::decode(&datagram) {
                        Ok(Packet::Rrq(_) | Packet::Wrq(_)) => {
                            if datagram != request || transfer.stalled(now()) {
                                debug!("new request from the peer: ending this transfer");
                                break SessionEnd::Handoff(datagram);
                            }
                            debug!("repeated request");
                            transfer.handle_repeated_request();
                        }
                        Ok(packet) => {
                            transfer.handle_packet(now(), &packet);
                            reserve_growth(&mut transfer, upload.as_mut(), &mut reserved);
                        }
                        Err(e) => debug!("malformed datagram ignored: {e}"),
                    }
                }
                () = &mut timer, if deadline.is_some() => {
                    let now = now();
                    if transfer.outcome().is_none() && give_up_at.is_some_and(|g| now >= g) {
                        warn!("transfer took longer than the limit: ending it");
                        transfer.fail(ErrorReply::new(ErrorCode::NotDefined, "transfer took too long"));
                    } else {
                        transfer.handle_timeout(now);
                    }
                }
            }
        };
        if !logged {
            warn!("transfer ended without an outcome");
        }
        match end {
            SessionEnd::Done => next_request(&mut io),
            handoff => handoff,
        }
    }
}

/// Reserves an upload's growth in the store, failing the transfer if it cannot fit.
fn reserve_growth<T: Transfer, U: Upload>(
    transfer: &mut T,
    upload: Option<&mut U>,
    reserved: &mut u64,
) {
    let Some(upload) = upload else {
        return;
    };
    let len = transfer.progress().bytes;
    if len <= *reserved {
        return;
    }
    match upload.reserve(len) {
        Ok(()) => *reserved = len,
        Err(e) => transfer.fail(e.into()),
    }
}

/// Closes the inbound queue and looks through what is left in it for a request that should
/// open the peer's next session (it arrived just as this one ended).
pub(crate) fn next_request(io: &mut SessionIo) -> SessionEnd {
    io.inbound.close();
    while let Ok(datagram) = io.inbound.try_recv() {
        if is_request(&datagram) {
            return SessionEnd::Handoff(datagram);
        }
    }
    SessionEnd::Done
}

/// True for an RRQ or WRQ, judged by the opcode alone.
fn is_request(datagram: &[u8]) -> bool {
    datagram.starts_with(&[0, Opcode::Rrq as u8]) || datagram.starts_with(&[0, Opcode::Wrq as u8])
}
