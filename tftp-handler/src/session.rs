//! From a request to a running transfer.
//!
//! Checks a read or write request (mode, file name, the store's answer, options), answers it
//! with a single ERROR if it cannot be served, and otherwise builds the [`Sender`] or
//! [`Receiver`] and hands it to the [worker](crate::worker) inside a tracing span that names
//! the peer, the file, the direction and the mode.

use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use futures::future::{self, Either, FutureExt};
use tracing::field::Empty;
use tracing::{Instrument, Span, info, info_span};
use udp_server::{Datagram, SessionEnd, SessionIo};

use crate::config::Config;
use crate::error::ErrorReply;
use crate::names;
use crate::options::{Negotiated, SizeQuery, negotiate};
use crate::packet::{ErrorCode, Mode, Packet, Request};
use crate::store::Store;
use crate::transfer::receiver::ReceiverParams;
use crate::transfer::{BlockSource, Receiver, Sender, Timing, now};
use crate::worker;

/// Serves the request in `request` (an RRQ or WRQ datagram) to its end.
///
/// Two stages chained with `then`, so that the session future holds each only while it runs:
/// checking the request (store, names, options), then the transfer or the refusal. One
/// `async` body for both would keep the first stage's results beside the transfer for its
/// whole life.
pub(crate) fn serve<S: Store>(
    store: Arc<S>,
    config: Arc<Config>,
    request: Bytes,
    io: SessionIo,
) -> impl Future<Output = SessionEnd> + Send {
    // The datagram shares its receive buffer with others; a private copy of these few bytes
    // (and dropping the original) keeps that buffer from living as long as the transfer.
    let request = {
        let private = Bytes::copy_from_slice(&request);
        drop(request);
        private
    };
    let Some((direction, span)) = describe(&request, &io) else {
        // The handler only opens sessions for requests.
        return Either::Left(future::ready(SessionEnd::Done));
    };
    let time_limit = config.max_transfer_time;
    let check = async move {
        let started = start(&*store, &config, &request, direction).await;
        (started, request)
    };
    let session = check.then(move |(started, request)| match started {
        Err(reply) => Either::Left(refuse(io, reply)),
        Ok(Started::Read(sender)) => Either::Right(Either::Left(worker::run(
            sender,
            io,
            request,
            None::<S::Upload>,
            time_limit,
        ))),
        Ok(Started::Write(receiver, upload)) => Either::Right(Either::Right(worker::run(
            receiver,
            io,
            request,
            Some(upload),
            time_limit,
        ))),
    });
    Either::Right(session.instrument(span))
}

/// The direction of a request and the span that names its session (peer, file, direction,
/// mode, and the parameters in force once negotiated); `None` if it is not a request.
fn describe(request: &[u8], io: &SessionIo) -> Option<(Direction, Span)> {
    let (direction, req) = match Packet::decode(request) {
        Ok(Packet::Rrq(req)) => (Direction::Read, req),
        Ok(Packet::Wrq(req)) => (Direction::Write, req),
        _ => return None,
    };
    let span = info_span!(
        "transfer",
        peer = %io.peer,
        file = req.filename,
        direction = direction.as_str(),
        mode = req.mode.as_str(),
        blksize = Empty,
        windowsize = Empty,
        timeout_ms = Empty,
    );
    Some((direction, span))
}

/// Checks the request and builds its transfer, or the ERROR that refuses it.
async fn start<S: Store>(
    store: &S,
    config: &Config,
    request: &[u8],
    direction: Direction,
) -> Result<Started<S::Upload>, ErrorReply> {
    let (Ok(Packet::Rrq(req)) | Ok(Packet::Wrq(req))) = Packet::decode(request) else {
        return Err(ErrorReply::new(
            ErrorCode::IllegalOperation,
            "not a request",
        ));
    };
    match direction {
        Direction::Read => start_read(store, config, &req).await,
        Direction::Write => start_write(store, config, &req).await,
    }
}

/// Sends the ERROR that refuses a request, and ends the session.
async fn refuse(mut io: SessionIo, reply: ErrorReply) -> SessionEnd {
    info!(%reply, "request refused");
    let _ = io.outbound.send(Datagram::new(reply.to_bytes())).await;
    // The peer may already have sent its next request (a boot loader trying a list of
    // names): it belongs to the next session.
    worker::next_request(&mut io)
}

/// Which way the file goes, seen from the client.
#[derive(Debug, Clone, Copy)]
enum Direction {
    /// A read request: the server sends.
    Read,
    /// A write request: the server receives.
    Write,
}

impl Direction {
    fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Write => "write",
        }
    }
}

/// A transfer ready to run.
enum Started<U> {
    /// Serving a read request.
    Read(Sender),
    /// Serving a write request into this upload.
    Write(Receiver<'static>, U),
}

/// The store key for a request, or the ERROR that refuses it.
fn checked_name<'a>(req: &Request<'a>, allowed: bool, verb: &str) -> Result<&'a str, ErrorReply> {
    if !allowed {
        return Err(ErrorReply::new(
            ErrorCode::AccessViolation,
            format!("{verb} are disabled on this server"),
        ));
    }
    if req.mode == Mode::Mail {
        return Err(ErrorReply::new(
            ErrorCode::IllegalOperation,
            "mail mode is not supported",
        ));
    }
    names::normalize(req.filename)
        .map_err(|e| ErrorReply::new(ErrorCode::AccessViolation, e.to_string()))
}

/// The timer settings for a negotiated transfer; also puts the parameters in force on the
/// session's span, so that the end-of-transfer log line shows them.
fn timing(config: &Config, negotiated: &Negotiated) -> Timing {
    let params = &negotiated.params;
    let timeout = params.retry_timeout.unwrap_or(config.retry_timeout);
    // A negotiated timeout is obeyed exactly; otherwise the wait adapts to the round trip.
    let adaptive_floor = Timing::adaptive_floor(config.min_retry_timeout, config.retry_timeout)
        .filter(|_| params.retry_timeout.is_none());
    let span = Span::current();
    span.record("blksize", params.block_size);
    span.record("windowsize", params.window_size);
    span.record("timeout_ms", timeout.as_millis() as u64);
    Timing {
        timeout,
        max_retries: config.max_retries,
        first_reply_retries: config.first_reply_retries,
        adaptive_floor,
    }
}

async fn start_read<S: Store>(
    store: &S,
    config: &Config,
    req: &Request<'_>,
) -> Result<Started<S::Upload>, ErrorReply> {
    let name = checked_name(req, config.allow_read, "reads")?;
    let data = store.read(name).await.map_err(ErrorReply::from)?;
    let source = BlockSource::new(data, req.mode);
    let negotiated = negotiate(
        &req.options,
        config,
        SizeQuery::Read(|| source.transfer_size()),
    )?;
    let timing = timing(config, &negotiated);
    let params = negotiated.params;
    Ok(Started::Read(Sender::new(
        source,
        params.block_size,
        params.window_size,
        timing,
        negotiated.oack,
        now(),
    )))
}

async fn start_write<S: Store>(
    store: &S,
    config: &Config,
    req: &Request<'_>,
) -> Result<Started<S::Upload>, ErrorReply> {
    let name = checked_name(req, config.allow_write, "writes")?;
    let max_size = store.max_file_size();
    let negotiated = negotiate(
        &req.options,
        config,
        SizeQuery::Write::<fn() -> u64> {
            max_file_size: max_size,
        },
    )?;
    let upload = store
        .begin_upload(name, config.allow_overwrite)
        .await
        .map_err(ErrorReply::from)?;
    let timing = timing(config, &negotiated);
    let params = negotiated.params;
    let receiver = Receiver::new(
        ReceiverParams {
            block_size: params.block_size,
            window_size: params.window_size,
            mode: req.mode,
            max_size,
            announced_size: params.announced_size,
            dally: config.dally,
            oack: negotiated.oack,
        },
        timing,
        now(),
    );
    Ok(Started::Write(receiver, upload))
}
