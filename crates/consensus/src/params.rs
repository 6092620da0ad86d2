//! Consensus parameters and the delay functions built from them.
//!
//! The delays are local decisions (when *this* node acts), but they still
//! avoid floats: the `1.5^k` back-off is computed with integers, step by
//! step, and capped, so every build of the node behaves the same.

use crate::types::Rank;
use cairn_types::Height;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Tunable consensus parameters (IC defaults for an application subnet).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsensusParams {
    /// Block maker of rank `r` waits `unit_delay × r` after the round
    /// starts; also scales the notary delay.
    pub unit_delay: Duration,
    /// Notaries wait at least this long after the round start, giving the
    /// rank-0 proposal time to arrive.
    pub initial_notary_delay: Duration,
    /// Validated artifacts are kept this many heights below the finalized
    /// (and delivered) height, so lagging peers can still fetch them.
    pub purge_margin: u64,
    /// Unvalidated artifacts more than this many heights above the finalized
    /// height are left alone (not validated) to bound work.
    pub max_heights_ahead: u64,
    /// Notaries and block makers stop when `notarized − certified` reaches
    /// this gap: execution/certification must catch up first.
    pub notarization_certification_gap: u64,
    /// Extra notary delay per height of certification backlog (when
    /// `finalized − certified > 1`), to let execution catch up.
    pub backlog_delay: Duration,
    /// Certification may lag finalization by this many heights before the
    /// backlog delay applies.
    pub acceptable_certification_lag: u64,
    /// Cap on any delay this node computes (keeps back-off finite).
    pub max_delay: Duration,
    /// Hard cap on a payload's total message bytes, checked by consensus
    /// itself before the payload handler sees it.
    pub max_block_payload_bytes: u64,
    /// Heights per interval. A height divisible by it starts an interval:
    /// its state is checkpointed and a catch-up package certifies block,
    /// beacon and state hash there (IC: 500).
    pub interval_length: u64,
}

impl Default for ConsensusParams {
    fn default() -> Self {
        ConsensusParams {
            unit_delay: Duration::from_millis(1000),
            initial_notary_delay: Duration::from_millis(300),
            purge_margin: 50,
            max_heights_ahead: 70,
            notarization_certification_gap: 70,
            backlog_delay: Duration::from_millis(2000),
            acceptable_certification_lag: 1,
            max_delay: Duration::from_secs(600),
            max_block_payload_bytes: 4 * 1024 * 1024,
            interval_length: 500,
        }
    }
}

impl ConsensusParams {
    /// Whether `h` starts an interval (and gets a catch-up package).
    pub fn is_interval_start(&self, h: Height) -> bool {
        h.0 > 0 && h.0.is_multiple_of(self.interval_length.max(1))
    }
}

/// `base × 1.5^k` in integer nanoseconds: multiply by 3 and divide by 2 `k`
/// times (flooring each step), saturating at `cap`.
pub fn backoff_nanos(base: u64, k: u64, cap: u64) -> u64 {
    let mut d = u128::from(base.min(cap));
    for _ in 0..k {
        d = d * 3 / 2;
        if d >= u128::from(cap) {
            return cap;
        }
    }
    d as u64
}

fn nanos(d: Duration) -> u64 {
    d.as_nanos().min(u128::from(u64::MAX)) as u64
}

impl ConsensusParams {
    /// How long after the round start a block maker of `rank` proposes.
    pub fn block_maker_delay(&self, rank: Rank) -> Duration {
        let cap = nanos(self.max_delay);
        Duration::from_nanos(nanos(self.unit_delay).saturating_mul(rank.0).min(cap))
    }

    /// How long after the round start a notary may sign a proposal of
    /// `rank`, or `None` if notarization must halt until certification
    /// catches up.
    ///
    /// `initial_notary_delay + unit_delay × rank × 1.5^(notarized − finalized)`,
    /// plus `backlog_delay × (finalized − certified)` when certification lags
    /// by more than the acceptable amount. The back-off only slows ranks > 0:
    /// the leader's block is never delayed, fall-backs are delayed more while
    /// finality lags, which is when competing notarized blocks appear.
    pub fn notary_delay(
        &self,
        rank: Rank,
        notarized: Height,
        finalized: Height,
        certified: Height,
    ) -> Option<Duration> {
        if notarized.0.saturating_sub(certified.0) >= self.notarization_certification_gap {
            return None;
        }
        let cap = nanos(self.max_delay);
        let base = nanos(self.unit_delay).saturating_mul(rank.0);
        let k = notarized.0.saturating_sub(finalized.0);
        let mut d = nanos(self.initial_notary_delay).saturating_add(backoff_nanos(base, k, cap));
        let lag = finalized.0.saturating_sub(certified.0);
        if lag > self.acceptable_certification_lag {
            d = d.saturating_add(nanos(self.backlog_delay).saturating_mul(lag));
        }
        Some(Duration::from_nanos(d.min(cap)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p() -> ConsensusParams {
        ConsensusParams::default()
    }

    #[test]
    fn backoff_is_integer_1_5_power() {
        assert_eq!(backoff_nanos(1000, 0, u64::MAX), 1000);
        assert_eq!(backoff_nanos(1000, 1, u64::MAX), 1500);
        assert_eq!(backoff_nanos(1000, 2, u64::MAX), 2250);
        assert_eq!(backoff_nanos(1000, 3, u64::MAX), 3375);
        // Flooring at each step.
        assert_eq!(backoff_nanos(1, 1, u64::MAX), 1);
        assert_eq!(backoff_nanos(3, 1, u64::MAX), 4);
        // Capped, no overflow even for huge exponents.
        assert_eq!(backoff_nanos(1_000_000_000, 1000, 5_000_000_000), 5_000_000_000);
        assert_eq!(backoff_nanos(u64::MAX, 3, u64::MAX), u64::MAX);
        assert_eq!(backoff_nanos(0, 50, 10), 0);
    }

    #[test]
    fn block_maker_delay_scales_with_rank() {
        assert_eq!(p().block_maker_delay(Rank(0)), Duration::ZERO);
        assert_eq!(p().block_maker_delay(Rank(3)), Duration::from_secs(3));
        assert_eq!(p().block_maker_delay(Rank(u64::MAX)), p().max_delay);
    }

    #[test]
    fn notary_delay_formula() {
        let h = Height;
        // Leader: only the initial delay, whatever the finality gap.
        assert_eq!(p().notary_delay(Rank(0), h(10), h(5), h(10)), Some(Duration::from_millis(300)));
        // Rank 1, finality caught up.
        assert_eq!(p().notary_delay(Rank(1), h(10), h(10), h(10)), Some(Duration::from_millis(1300)));
        // Rank 2, notarized two ahead of finalized: 300 + 2000 × 2.25.
        assert_eq!(p().notary_delay(Rank(2), h(12), h(10), h(10)), Some(Duration::from_millis(4800)));
        // Certification lagging by 3 (> 1): + 3 × 2000 ms.
        assert_eq!(p().notary_delay(Rank(0), h(10), h(10), h(7)), Some(Duration::from_millis(6300)));
        // A lag of exactly 1 is fine.
        assert_eq!(p().notary_delay(Rank(0), h(10), h(10), h(9)), Some(Duration::from_millis(300)));
        // Halt when notarization runs 70 heights ahead of certification.
        assert_eq!(p().notary_delay(Rank(0), h(80), h(80), h(10)), None);
        assert!(p().notary_delay(Rank(0), h(79), h(79), h(10)).is_some());
        // Back-off is capped.
        assert_eq!(p().notary_delay(Rank(3), h(1000), h(1), h(1000)), Some(p().max_delay));
    }
}
