//! Round-trip time estimation, as TCP does it (RFC 6298 section 2): a smoothed round-trip
//! time and its mean deviation, from which the wait before a resend is derived. Fed only with
//! samples from packets that were sent once (Karn's rule, enforced by the caller): the answer
//! to a resent packet could belong to either copy.

use std::time::Duration;

/// The clock granularity `G` of RFC 6298: tokio's timers tick in milliseconds.
const GRANULARITY: Duration = Duration::from_millis(1);

/// A smoothed round-trip time and its variation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct RttEstimator {
    /// `SRTT`, once there has been a sample.
    smoothed: Option<Duration>,
    /// `RTTVAR`.
    variation: Duration,
}

impl RttEstimator {
    /// Takes one round-trip measurement (RFC 6298 sections 2.2 and 2.3).
    pub(crate) fn sample(&mut self, rtt: Duration) {
        match self.smoothed {
            None => {
                self.smoothed = Some(rtt);
                self.variation = rtt / 2;
            }
            Some(smoothed) => {
                self.variation = self.variation * 3 / 4 + smoothed.abs_diff(rtt) / 4;
                self.smoothed = Some(smoothed * 7 / 8 + rtt / 8);
            }
        }
    }

    /// The retransmission timeout the estimate implies (`SRTT + max(G, 4 * RTTVAR)`), or
    /// `None` before the first sample.
    pub(crate) fn timeout(&self) -> Option<Duration> {
        let smoothed = self.smoothed?;
        Some(smoothed.saturating_add(GRANULARITY.max(self.variation.saturating_mul(4))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    /// The timeout after `samples`.
    fn timeout_after(samples: &[Duration]) -> Duration {
        let mut rtt = RttEstimator::default();
        samples.iter().for_each(|&s| rtt.sample(s));
        rtt.timeout().unwrap_or(Duration::MAX)
    }

    #[test]
    fn no_estimate_before_the_first_sample() {
        assert_eq!(RttEstimator::default().timeout(), None);
    }

    #[test]
    fn the_first_sample_sets_srtt_and_half_of_it_as_variation() {
        // 100 + 4 * 50
        assert_eq!(timeout_after(&[100 * MS]), 300 * MS);
    }

    #[test]
    fn steady_samples_converge_on_the_round_trip_plus_granularity() {
        let timeout = timeout_after(&[20 * MS; 200]);
        assert!(timeout >= 21 * MS && timeout < 22 * MS, "{timeout:?}");
    }

    #[test]
    fn a_late_sample_raises_the_timeout_at_once_and_it_decays_after() {
        let steady = timeout_after(&[10 * MS; 50]);
        let mut samples = vec![10 * MS; 50];
        samples.push(200 * MS);
        let after_spike = timeout_after(&samples);
        assert!(after_spike > 200 * MS, "{after_spike:?}");
        samples.extend([10 * MS; 100]);
        let settled = timeout_after(&samples);
        assert!(settled < steady + 5 * MS, "{settled:?} vs {steady:?}");
    }

    #[test]
    fn zero_round_trips_still_wait_one_tick() {
        assert_eq!(timeout_after(&[Duration::ZERO; 2]), MS);
    }
}
