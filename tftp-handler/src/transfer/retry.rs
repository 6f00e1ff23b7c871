//! The retransmission timer both transfer directions share.
//!
//! One deadline, a count of timeouts in a row, and two limits: a small one while the peer has
//! never answered (so that a spoofed request earns its victim only a few packets: the
//! amplification bound of `spec.md`), and the usual one afterwards. Progress from the peer
//! resets the count. Only a timeout causes a resend; what to resend is the caller's choice.

use std::time::{Duration, Instant};

/// Timer settings of one transfer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Timing {
    /// Time to wait for the peer before resending.
    pub(crate) timeout: Duration,
    /// Timeouts in a row before giving up, once the peer has answered.
    pub(crate) max_retries: u32,
    /// Timeouts in a row before giving up while the peer has never answered.
    pub(crate) first_reply_retries: u32,
}

/// What a timeout means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Expiry {
    /// The deadline has not come (or the timer is not armed).
    NotYet,
    /// Resend the last packet(s); the timer is armed again.
    Resend,
    /// Too many timeouts in a row: abandon the transfer.
    GiveUp,
}

/// A retransmission timer.
#[derive(Debug, Clone)]
pub(crate) struct Retransmit {
    /// Settings.
    timing: Timing,
    /// When the current wait ends, if waiting.
    deadline: Option<Instant>,
    /// Timeouts since the last progress.
    retries: u32,
    /// Whether the peer has ever made progress.
    peer_answered: bool,
    /// Resends so far, for the log.
    retransmits: u64,
}

impl Retransmit {
    pub(crate) fn new(timing: Timing) -> Self {
        Self {
            timing,
            deadline: None,
            retries: 0,
            peer_answered: false,
            retransmits: 0,
        }
    }

    /// Starts (or restarts) the wait from `now`.
    pub(crate) fn arm(&mut self, now: Instant) {
        self.deadline = Some(now + self.timing.timeout);
    }

    /// Stops waiting.
    pub(crate) fn disarm(&mut self) {
        self.deadline = None;
    }

    /// The peer moved the transfer forward: forget past timeouts and wait afresh.
    pub(crate) fn progress(&mut self, now: Instant) {
        self.peer_answered = true;
        self.retries = 0;
        self.arm(now);
    }

    /// Called when the deadline may have passed.
    pub(crate) fn expire(&mut self, now: Instant) -> Expiry {
        match self.deadline {
            Some(deadline) if now >= deadline => {}
            _ => return Expiry::NotYet,
        }
        let limit = if self.peer_answered {
            self.timing.max_retries
        } else {
            self.timing.first_reply_retries
        };
        if self.retries >= limit {
            self.deadline = None;
            return Expiry::GiveUp;
        }
        self.retries += 1;
        self.retransmits += 1;
        self.arm(now);
        Expiry::Resend
    }

    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    pub(crate) fn peer_answered(&self) -> bool {
        self.peer_answered
    }

    pub(crate) fn retransmits(&self) -> u64 {
        self.retransmits
    }

    /// Changes the wait (the peer agreed on another timeout), from the next arming on.
    pub(crate) fn set_timeout(&mut self, timeout: Duration) {
        self.timing.timeout = timeout;
    }

    pub(crate) fn timeout(&self) -> Duration {
        self.timing.timeout
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timing() -> Timing {
        Timing {
            timeout: Duration::from_secs(1),
            max_retries: 3,
            first_reply_retries: 1,
        }
    }

    #[test]
    fn nothing_happens_before_the_deadline() {
        let t0 = Instant::now();
        let mut timer = Retransmit::new(timing());
        timer.arm(t0);
        assert_eq!(
            timer.expire(t0 + Duration::from_millis(999)),
            Expiry::NotYet
        );
    }

    #[test]
    fn a_silent_peer_gets_only_the_first_reply_retries() {
        let t0 = Instant::now();
        let mut timer = Retransmit::new(timing());
        timer.arm(t0);
        assert_eq!(timer.expire(t0 + Duration::from_secs(1)), Expiry::Resend);
        assert_eq!(timer.expire(t0 + Duration::from_secs(2)), Expiry::GiveUp);
    }

    #[test]
    fn progress_resets_the_count() {
        let t0 = Instant::now();
        let mut timer = Retransmit::new(timing());
        timer.progress(t0);
        let mut now = t0;
        for _ in 0..3 {
            now += Duration::from_secs(1);
            assert_eq!(timer.expire(now), Expiry::Resend);
        }
        timer.progress(now);
        for _ in 0..3 {
            now += Duration::from_secs(1);
            assert_eq!(timer.expire(now), Expiry::Resend);
        }
        now += Duration::from_secs(1);
        assert_eq!(timer.expire(now), Expiry::GiveUp);
        assert_eq!(timer.retransmits(), 6);
    }
}
