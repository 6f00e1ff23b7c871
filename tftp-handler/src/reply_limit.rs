//! A token bucket for the one-off ERROR replies the handler sends to datagrams that open no
//! session (a stray DATA or ACK, a malformed request, a request refused while busy). Each such
//! reply goes to whatever source address the datagram claims, so without a limit a spoofer
//! could aim them at a victim; with it, the server sends at most `rate` per second (bursts of
//! up to `rate`), and drops the rest silently, as RFC 1350 allows for stray packets.

use std::sync::Mutex;

use tokio::time::Instant;

/// Allows up to `rate` replies per second, with bursts of up to `rate`.
#[derive(Debug)]
pub(crate) struct ReplyLimit {
    /// Replies per second (and the burst size); 0 allows none.
    rate: u32,
    /// Tokens left and when they were counted.
    bucket: Mutex<Bucket>,
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl ReplyLimit {
    pub(crate) fn new(rate: u32) -> Self {
        Self {
            rate,
            bucket: Mutex::new(Bucket {
                tokens: f64::from(rate),
                at: Instant::now(),
            }),
        }
    }

    /// True if one more reply may go out now (and counts it).
    pub(crate) fn admit(&self) -> bool {
        let rate = f64::from(self.rate);
        // A poisoned lock only means another thread panicked mid-update: the count is
        // still a number, so carry on with it.
        let mut bucket = self.bucket.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        let refill = now.saturating_duration_since(bucket.at).as_secs_f64() * rate;
        bucket.tokens = (bucket.tokens + refill).min(rate);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn admitted(limit: &ReplyLimit, tries: usize) -> usize {
        (0..tries).filter(|_| limit.admit()).count()
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_gets_the_rate_and_then_the_rate_per_second() {
        let limit = ReplyLimit::new(100);
        assert_eq!(admitted(&limit, 1000), 100);
        tokio::time::advance(Duration::from_millis(500)).await;
        assert_eq!(admitted(&limit, 1000), 50);
        tokio::time::advance(Duration::from_secs(10)).await;
        assert_eq!(
            admitted(&limit, 1000),
            100,
            "the bucket holds one second's worth"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_rate_of_zero_allows_nothing() {
        let limit = ReplyLimit::new(0);
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(admitted(&limit, 10), 0);
    }
}
