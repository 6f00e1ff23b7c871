//! Protocol settings of a [`TftpHandler`](crate::TftpHandler): timers, retries, option caps
//! and access policy. Store limits live with the store ([`StoreLimits`](crate::StoreLimits)).

use std::time::Duration;

use crate::access::AccessList;

/// How the TFTP handler behaves. Start from [`Config::default`] and adjust fields.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Config {
    /// How long to wait for the peer before resending the last packet, unless the client
    /// negotiated its own `timeout` / `utimeout` (RFC 2349). With an adaptive wait (see
    /// [`min_retry_timeout`](Self::min_retry_timeout)) this is the first wait and the longest.
    pub retry_timeout: Duration,
    /// The shortest wait before a resend. When it is below
    /// [`retry_timeout`](Self::retry_timeout) and the client negotiated no timeout, each
    /// transfer estimates the round-trip time (RFC 6298: smoothed RTT and variation, from
    /// packets sent once, doubled on each resend) and resends after that, within
    /// `[min_retry_timeout, retry_timeout]`: a lost packet on a fast link costs milliseconds,
    /// not a second. Set it equal to `retry_timeout` for a fixed wait.
    pub min_retry_timeout: Duration,
    /// A transfer is abandoned when the peer has been silent for
    /// `retry_timeout x (max_retries + 1)`: with a fixed wait, after this many resends.
    pub max_retries: u32,
    /// Resends of the first reply (OACK, DATA 1 or ACK 0) to a peer that has never answered.
    /// Kept small so that a spoofed request cannot turn the server into an amplifier.
    pub first_reply_retries: u32,
    /// The longest a transfer may take, however steadily the peer answers; then it is ended
    /// with ERROR 0 (a client that ACKs just before every timeout cannot hold a session
    /// forever).
    pub max_transfer_time: Duration,
    /// After the final ACK of an upload, how long to keep answering a retransmitted final DATA
    /// (the peer may not have seen the ACK; RFC 1350 section 6).
    pub dally: Duration,
    /// Largest `blksize` granted (RFC 2348 allows up to 65464); larger requests are clamped.
    pub max_block_size: u16,
    /// Largest `windowsize` granted; larger requests are clamped. At most
    /// [`MAX_WINDOW_SIZE`](crate::MAX_WINDOW_SIZE) (32768) whatever is set here, so that
    /// block numbers stay unambiguous across a wrap.
    pub max_window_size: u16,
    /// Whether read requests are served (false: `--write-only`).
    pub allow_read: bool,
    /// Whether write requests are served (false: `--read-only`).
    pub allow_write: bool,
    /// Whether an upload may replace an existing file (false: ERROR 6 "file already exists").
    pub allow_overwrite: bool,
    /// Which peer addresses are served at all; others get no answer.
    pub access: AccessList,
    /// One-off ERROR replies per second (to a stray DATA/ACK, a malformed request, a request
    /// refused while busy), in bursts of up to as many; over it, such datagrams get no reply.
    /// Bounds what a spoofer can reflect off the server. 0: never send them.
    pub error_reply_rate: u32,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            retry_timeout: Duration::from_secs(1),
            min_retry_timeout: Duration::from_millis(10),
            max_retries: 5,
            first_reply_retries: 2,
            max_transfer_time: Duration::from_secs(3600),
            dally: Duration::from_secs(2),
            max_block_size: 65_464,
            max_window_size: 64,
            allow_read: true,
            allow_write: true,
            allow_overwrite: true,
            access: AccessList::open(),
            error_reply_rate: 200,
        }
    }
}
