//! The routing table: which subnet hosts which canister ids.
//!
//! Even a one-subnet network has one, so that adding subnets later changes
//! data, not code.

use crate::ids::{CanisterId, SubnetId};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A closed range `[start, end]` of canister ids (compared as principals).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize, Deserialize)]
pub struct CanisterIdRange {
    pub start: CanisterId,
    pub end: CanisterId,
}

impl CanisterIdRange {
    /// Whether `id` lies in this range.
    pub fn contains(&self, id: &CanisterId) -> bool {
        self.start <= *id && *id <= self.end
    }
}

/// Maps disjoint canister id ranges to subnets.
#[derive(Clone, PartialEq, Eq, Debug, Default, Serialize, Deserialize)]
pub struct RoutingTable {
    /// Keyed by range start; ranges never overlap.
    ranges: BTreeMap<CanisterId, (CanisterIdRange, SubnetId)>,
}

/// Why a range could not be added to the routing table.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RoutingTableError {
    #[error("range start {0} is after its end {1}")]
    EmptyRange(CanisterId, CanisterId),
    #[error("range {0:?} overlaps an existing range")]
    Overlap(CanisterIdRange),
}

impl RoutingTable {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Assigns a range to a subnet, refusing overlaps.
    pub fn insert(&mut self, range: CanisterIdRange, subnet: SubnetId) -> Result<(), RoutingTableError> {
        if range.start > range.end {
            return Err(RoutingTableError::EmptyRange(range.start, range.end));
        }
        if self.ranges.values().any(|(r, _)| r.start <= range.end && range.start <= r.end) {
            return Err(RoutingTableError::Overlap(range));
        }
        self.ranges.insert(range.start, (range, subnet));
        Ok(())
    }

    /// The subnet hosting `id`, if any.
    pub fn route(&self, id: &CanisterId) -> Option<SubnetId> {
        self.ranges.range(..=*id).next_back().filter(|(_, (r, _))| r.contains(id)).map(|(_, (_, s))| *s)
    }

    /// All ranges of one subnet, sorted.
    pub fn ranges_of(&self, subnet: &SubnetId) -> Vec<CanisterIdRange> {
        self.ranges.values().filter(|(_, s)| s == subnet).map(|(r, _)| *r).collect()
    }

    /// Every `(range, subnet)` pair, sorted by range start.
    pub fn iter(&self) -> impl Iterator<Item = &(CanisterIdRange, SubnetId)> {
        self.ranges.values()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::principal::Principal;

    #[test]
    fn routes_by_range() {
        let a = SubnetId(Principal::self_authenticating(b"a"));
        let b = SubnetId(Principal::self_authenticating(b"b"));
        let mut t = RoutingTable::new();
        let r1 = CanisterIdRange { start: CanisterId::from_u64(0), end: CanisterId::from_u64(99) };
        let r2 = CanisterIdRange { start: CanisterId::from_u64(100), end: CanisterId::from_u64(199) };
        t.insert(r1, a).unwrap();
        t.insert(r2, b).unwrap();
        assert_eq!(t.route(&CanisterId::from_u64(5)), Some(a));
        assert_eq!(t.route(&CanisterId::from_u64(150)), Some(b));
        assert_eq!(t.route(&CanisterId::from_u64(200)), None);
        assert!(
            t.insert(CanisterIdRange { start: CanisterId::from_u64(50), end: CanisterId::from_u64(60) }, b).is_err()
        );
        assert_eq!(t.ranges_of(&a), vec![r1]);
    }
}
