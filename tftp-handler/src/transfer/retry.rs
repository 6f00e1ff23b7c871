//! The retransmission timer both transfer directions share.
//!
//! One deadline, and a budget of silence: a transfer whose peer has said nothing useful for
//! `timeout x (max_retries + 1)` is abandoned, however often it resent meanwhile. The wait
//! before a resend is either fixed (the configured or negotiated `timeout`) or adaptive: an
//! RTT estimate per transfer ([`RttEstimator`], RFC 6298), sampled only from packets that were
//! sent once, clamped between a floor and the configured timeout, and doubled on every resend
//! (exponential backoff) until a fresh sample. Before the first sample the wait is the
//! configured timeout.
//!
//! While the peer has never answered, only the first few timeouts resend (so that a spoofed
//! request earns its victim only a few packets: the amplification bound of `spec.md`); after
//! that the transfer keeps listening, silently, for the rest of its budget, because a slow
//! client (tftp-hpa and atftp wait 5 s) may still answer. Only a timeout causes a resend; what
//! to resend is the caller's choice.

use std::time::{Duration, Instant};

use super::rtt::RttEstimator;

/// The longest wait any timer here sets: a timeout too large to add is as good as none.
const FOREVER: Duration = Duration::from_secs(86_400);

/// Timer settings of one transfer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Timing {
    /// Time to wait for the peer before resending, when there is no estimate (or the wait is
    /// fixed); the ceiling of the adaptive wait; and the unit of the silence budget.
    pub(crate) timeout: Duration,
    /// The silence budget is `timeout x (max_retries + 1)`.
    pub(crate) max_retries: u32,
    /// Timeouts that resend while the peer has never answered (the rest only wait).
    pub(crate) first_reply_retries: u32,
    /// `Some(floor)`: adapt the wait to the measured round-trip time, never below `floor`.
    /// `None`: always wait `timeout` (a negotiated `timeout` option is obeyed exactly).
    pub(crate) adaptive_floor: Option<Duration>,
}

impl Timing {
    /// The adaptive floor for a configured shortest and longest wait: `None` (a fixed wait)
    /// unless the shortest is below the longest.
    pub(crate) fn adaptive_floor(shortest: Duration, longest: Duration) -> Option<Duration> {
        (shortest < longest).then_some(shortest)
    }

    /// How long the peer may stay silent before the transfer is abandoned.
    fn silence_budget(&self) -> Duration {
        self.timeout
            .checked_mul(self.max_retries.saturating_add(1))
            .unwrap_or(FOREVER)
    }
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
    /// The peer has been silent for the whole budget: abandon the transfer.
    GiveUp,
}

/// A retransmission timer.
#[derive(Debug, Clone)]
pub(crate) struct Retransmit {
    /// Settings.
    timing: Timing,
    /// The round-trip estimate (unused when the wait is fixed).
    rtt: RttEstimator,
    /// The current wait before a resend.
    wait: Duration,
    /// When the current wait ends, if waiting.
    deadline: Option<Instant>,
    /// When the silence budget runs out, once armed.
    give_up_at: Option<Instant>,
    /// When the peer last moved the transfer forward (`None`: it has never answered).
    last_progress: Option<Instant>,
    /// When the packet(s) now awaiting an answer were sent, unless they have been resent
    /// since (Karn's rule: then the answer's round trip is ambiguous).
    sent_at: Option<Instant>,
    /// Timeouts since the last progress.
    retries: u32,
    /// Resends so far, for the log.
    retransmits: u64,
}

impl Retransmit {
    pub(crate) fn new(timing: Timing) -> Self {
        Self {
            timing,
            rtt: RttEstimator::default(),
            wait: timing.timeout,
            deadline: None,
            give_up_at: None,
            last_progress: None,
            sent_at: None,
            retries: 0,
            retransmits: 0,
        }
    }

    /// Fresh packet(s) went out at `now`: wait for the answer (and time its round trip).
    pub(crate) fn arm(&mut self, now: Instant) {
        self.sent_at = Some(now);
        if self.give_up_at.is_none() {
            self.give_up_at = Some(after(now, self.timing.silence_budget()));
        }
        self.wait_from(now);
    }

    /// Stops waiting.
    pub(crate) fn disarm(&mut self) {
        self.deadline = None;
    }

    /// The peer moved the transfer forward: take a round-trip sample if the answered packet
    /// was sent once, forget past timeouts, renew the budget and wait afresh.
    pub(crate) fn progress(&mut self, now: Instant) {
        self.last_progress = Some(now);
        self.retries = 0;
        if let (Some(sent), Some(floor)) = (self.sent_at.take(), self.timing.adaptive_floor) {
            self.rtt.sample(now.saturating_duration_since(sent));
            if let Some(estimate) = self.rtt.timeout() {
                self.wait = estimate.clamp(floor, self.timing.timeout.max(floor));
            }
        }
        self.give_up_at = Some(after(now, self.timing.silence_budget()));
        self.wait_from(now);
    }

    /// Called when the deadline may have passed.
    pub(crate) fn expire(&mut self, now: Instant) -> Expiry {
        match self.deadline {
            Some(deadline) if now >= deadline => {}
            _ => return Expiry::NotYet,
        }
        if self.give_up_at.is_none_or(|end| now >= end) {
            self.deadline = None;
            return Expiry::GiveUp;
        }
        self.retries += 1;
        self.sent_at = None;
        if self.timing.adaptive_floor.is_some() {
            self.wait = self.wait.saturating_mul(2).min(self.timing.timeout);
        }
        self.wait_from(now);
        if self.last_progress.is_none() && self.retries > self.timing.first_reply_retries {
            return Expiry::Wait;
        }
        self.retransmits += 1;
        Expiry::Resend
    }

    /// Sets the deadline one wait from `now`, but no later than the end of the budget.
    fn wait_from(&mut self, now: Instant) {
        let deadline = after(now, self.wait);
        self.deadline = Some(self.give_up_at.map_or(deadline, |end| deadline.min(end)));
    }

    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// The peer repeated its request while we wait, silently, for its first answer (the
    /// first reply was sent as often as it may be on our own): true if the reply should go
    /// once more (counted as a resend). One datagram in, one out: no amplification.
    pub(crate) fn resend_on_request(&mut self) -> bool {
        let silent =
            self.last_progress.is_none() && self.retries >= self.timing.first_reply_retries;
        if silent {
            self.retransmits += 1;
        }
        silent
    }

    /// True when the peer answered once but has not moved the transfer forward for a whole
    /// configured timeout: it may well have given up on it.
    pub(crate) fn stalled(&self, now: Instant) -> bool {
        self.last_progress
            .is_some_and(|at| now.saturating_duration_since(at) >= self.timing.timeout)
    }

    pub(crate) fn retransmits(&self) -> u64 {
        self.retransmits
    }

    /// The peer agreed on another timeout: wait exactly that long from the next arming on
    /// (a negotiated timeout is obeyed, never adapted).
    pub(crate) fn set_timeout(&mut self, timeout: Duration) {
        self.timing.timeout = timeout;
        self.timing.adaptive_floor = None;
        self.wait = timeout;
    }

    /// The current wait before a resend.
    #[cfg(test)]
    fn wait(&self) -> Duration {
        self.wait
    }
}

/// `now + wait`, or a day from now if that does not fit.
fn after(now: Instant, wait: Duration) -> Instant {
    now.checked_add(wait)
        .or_else(|| now.checked_add(FOREVER))
        .unwrap_or(now)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timing() -> Timing {
        Timing {
            timeout: Duration::from_secs(1),
            max_retries: 3,
            first_reply_retries: 1,
            adaptive_floor: None,
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
    const MS: Duration = Duration::from_millis(1);

    /// 1 s ceiling, 3 retries, 1 first-reply retry, adaptive from 10 ms.
    fn adaptive() -> Retransmit {
        Retransmit::new(Timing {
            adaptive_floor: Some(10 * MS),
            ..timing()
        })
    }

    /// Sends at `now` and gets the answer `rtt` later; returns the time of the answer.
    fn round_trip(timer: &mut Retransmit, now: Instant, rtt: Duration) -> Instant {
        timer.arm(now);
        timer.progress(now + rtt);
        now + rtt
    }

    #[test]
    fn the_first_wait_is_the_configured_timeout() {
        let t0 = Instant::now();
        let mut timer = adaptive();
        timer.arm(t0);
        assert_eq!(timer.deadline(), Some(t0 + Duration::from_secs(1)));
    }

    #[test]
    fn the_wait_follows_the_measured_round_trip() {
        let mut timer = adaptive();
        let mut now = Instant::now();
        for _ in 0..100 {
            now = round_trip(&mut timer, now, 40 * MS);
        }
        assert!(
            timer.wait() > 40 * MS && timer.wait() < 45 * MS,
            "{:?}",
            timer.wait()
        );
        timer.arm(now);
        assert_eq!(timer.deadline(), Some(now + timer.wait()));
    }

    #[test]
    fn the_wait_never_drops_below_the_floor_nor_rises_above_the_timeout() {
        let mut fast = adaptive();
        let mut now = Instant::now();
        for _ in 0..20 {
            now = round_trip(&mut fast, now, Duration::ZERO);
        }
        assert_eq!(fast.wait(), 10 * MS);
        let mut slow = adaptive();
        round_trip(&mut slow, now, Duration::from_millis(900));
        assert_eq!(slow.wait(), Duration::from_secs(1));
    }

    #[test]
    fn each_resend_doubles_the_wait_up_to_the_timeout() {
        let mut timer = adaptive();
        let mut now = Instant::now();
        for _ in 0..20 {
            now = round_trip(&mut timer, now, Duration::ZERO);
        }
        timer.arm(now);
        let mut waits = Vec::new();
        while let Some(deadline) = timer.deadline() {
            now = deadline;
            if timer.expire(now) == Expiry::GiveUp {
                break;
            }
            waits.push(timer.wait().as_millis());
        }
        assert_eq!(waits[..7], [20, 40, 80, 160, 320, 640, 1000]);
        assert!(waits[7..].iter().all(|&w| w == 1000));
    }

    #[test]
    fn an_adaptive_timer_gives_up_after_the_same_silence_as_a_fixed_one() {
        let mut timer = adaptive();
        let mut now = Instant::now();
        for _ in 0..20 {
            now = round_trip(&mut timer, now, Duration::ZERO);
        }
        let silent_since = now;
        timer.arm(now);
        let mut resends = 0;
        loop {
            let Some(deadline) = timer.deadline() else {
                panic!("the timer stopped without giving up");
            };
            now = deadline;
            match timer.expire(now) {
                Expiry::Resend => resends += 1,
                Expiry::GiveUp => break,
                other => panic!("unexpected {other:?}"),
            }
        }
        // 1 s x (3 retries + 1), whatever the wait was.
        assert_eq!(now - silent_since, Duration::from_secs(4));
        // 10 ms doubling to 1 s, then 1 s waits: 20+40+...+640 = 1,260 ms, then 2 more.
        assert_eq!(resends, 9);
    }

    #[test]
    fn answers_to_resent_packets_are_not_sampled() {
        let mut timer = adaptive();
        let mut now = Instant::now();
        for _ in 0..20 {
            now = round_trip(&mut timer, now, 20 * MS);
        }
        let settled = timer.wait();
        timer.arm(now);
        now = timer.deadline().unwrap_or(now);
        assert_eq!(timer.expire(now), Expiry::Resend);
        let backed_off = timer.wait();
        assert_eq!(backed_off, settled * 2);
        // A very late answer to the resent packet: ambiguous, so no sample, and the backed-off
        // wait stays until a packet sent once is answered.
        timer.progress(now + 900 * MS);
        assert_eq!(timer.wait(), backed_off);
        round_trip(&mut timer, now + 900 * MS, 20 * MS);
        assert!(timer.wait() < backed_off);
    }

    #[test]
    fn a_negotiated_timeout_turns_adaptation_off() {
        let mut timer = adaptive();
        timer.set_timeout(Duration::from_secs(3));
        let mut now = Instant::now();
        for _ in 0..20 {
            now = round_trip(&mut timer, now, MS);
        }
        assert_eq!(timer.wait(), Duration::from_secs(3));
    }
}
