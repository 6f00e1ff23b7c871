//! The retransmission timer both transfer directions share.
//!
//! One deadline and a count of timeouts in a row; progress from the peer resets the count, and
//! too many in a row end the transfer. While the peer has never answered, only the first few
//! timeouts resend (so that a spoofed request earns its victim only a few packets: the
//! amplification bound of `spec.md`); after that the transfer keeps listening, silently, for
//! as long as it would have waited anyway, because a slow client (tftp-hpa and atftp wait
//! 5 s) may still answer. Only a timeout causes a resend; what to resend is the caller's
//! choice.

use std::time::{Duration, Instant};

/// Timer settings of one transfer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Timing {
    /// Time to wait for the peer before resending.
    pub(crate) timeout: Duration,
    /// Timeouts in a row before giving up.
    pub(crate) max_retries: u32,
    /// Of those, how many resend while the peer has never answered (the rest only wait).
    pub(crate) first_reply_retries: u32,
}

/// What a timeout means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Expiry {
    /// The deadline has not come (or the timer is not armed).
    NotYet,
    /// Resend the last packet(s); the timer is armed again.
    Resend,
    /// Keep waiting without resending (the first reply has been sent as often as it may be);
    /// the timer is armed again.
    Wait,
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
        // A timeout too large to add is as good as none: wait a day.
        let wait = now
            .checked_add(self.timing.timeout)
            .or_else(|| now.checked_add(Duration::from_secs(86_400)));
        self.deadline = wait.or(Some(now));
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
        if self.retries >= self.timing.max_retries {
            self.deadline = None;
            return Expiry::GiveUp;
        }
        self.retries += 1;
        self.arm(now);
        if !self.peer_answered && self.retries > self.timing.first_reply_retries {
            return Expiry::Wait;
        }
        self.retransmits += 1;
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
    fn a_silent_peer_gets_only_the_first_reply_retries_but_is_waited_for() {
        let t0 = Instant::now();
        let mut timer = Retransmit::new(timing());
        timer.arm(t0);
        assert_eq!(timer.expire(t0 + Duration::from_secs(1)), Expiry::Resend);
        assert_eq!(timer.expire(t0 + Duration::from_secs(2)), Expiry::Wait);
        assert_eq!(timer.expire(t0 + Duration::from_secs(3)), Expiry::Wait);
        assert_eq!(timer.expire(t0 + Duration::from_secs(4)), Expiry::GiveUp);
        assert_eq!(timer.retransmits(), 1);
    }

    #[test]
    fn a_late_first_answer_still_counts() {
        let t0 = Instant::now();
        let mut timer = Retransmit::new(timing());
        timer.arm(t0);
        timer.expire(t0 + Duration::from_secs(1));
        assert_eq!(timer.expire(t0 + Duration::from_secs(2)), Expiry::Wait);
        timer.progress(t0 + Duration::from_millis(2500));
        assert_eq!(
            timer.expire(t0 + Duration::from_millis(3500)),
            Expiry::Resend
        );
    }

    #[test]
    fn a_huge_timeout_does_not_overflow() {
        let mut timer = Retransmit::new(Timing {
            timeout: Duration::MAX,
            ..timing()
        });
        timer.arm(Instant::now());
        assert!(timer.deadline().is_some());
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
