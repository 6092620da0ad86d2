//! Cycles: the unit in which canisters pay for computation and storage.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::ops::{Add, AddAssign, Sub, SubAssign};

/// An amount of cycles. Arithmetic saturates, as the interface spec demands.
#[derive(Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Cycles(u128);

impl Cycles {
    /// No cycles.
    pub const ZERO: Cycles = Cycles(0);

    /// An amount of cycles.
    pub const fn new(amount: u128) -> Self {
        Cycles(amount)
    }

    /// The raw amount.
    pub const fn get(&self) -> u128 {
        self.0
    }

    /// The amount split into `(high, low)` 64-bit halves, as the System API passes it.
    pub fn into_parts(self) -> (u64, u64) {
        ((self.0 >> 64) as u64, self.0 as u64)
    }

    /// Rebuilds an amount from `(high, low)` 64-bit halves.
    pub fn from_parts(high: u64, low: u64) -> Self {
        Cycles(((high as u128) << 64) | low as u128)
    }

    /// Saturating subtraction, clamped at zero.
    pub fn saturating_sub(self, other: Cycles) -> Cycles {
        Cycles(self.0.saturating_sub(other.0))
    }

    /// Checked subtraction: `None` if `other` is larger.
    pub fn checked_sub(self, other: Cycles) -> Option<Cycles> {
        self.0.checked_sub(other.0).map(Cycles)
    }

    /// `self * numerator / denominator`, saturating, for pro-rata fees.
    pub fn scale(self, numerator: u128, denominator: u128) -> Cycles {
        if denominator == 0 {
            return Cycles(u128::MAX);
        }
        match self.0.checked_mul(numerator) {
            Some(product) => Cycles(product / denominator),
            None => {
                // Split to avoid overflow: (q·d + r)·n/d = q·n + r·n/d.
                let (q, r) = (self.0 / denominator, self.0 % denominator);
                let tail = r.checked_mul(numerator).map_or(u128::MAX, |x| x / denominator);
                Cycles(q.saturating_mul(numerator).saturating_add(tail))
            }
        }
    }

    /// The smaller of two amounts.
    pub fn min(self, other: Cycles) -> Cycles {
        Cycles(self.0.min(other.0))
    }
}

impl From<u128> for Cycles {
    fn from(v: u128) -> Self {
        Cycles(v)
    }
}

impl From<u64> for Cycles {
    fn from(v: u64) -> Self {
        Cycles(v as u128)
    }
}

impl Add for Cycles {
    type Output = Cycles;
    fn add(self, rhs: Cycles) -> Cycles {
        Cycles(self.0.saturating_add(rhs.0))
    }
}

impl AddAssign for Cycles {
    fn add_assign(&mut self, rhs: Cycles) {
        self.0 = self.0.saturating_add(rhs.0);
    }
}

impl Sub for Cycles {
    type Output = Cycles;
    fn sub(self, rhs: Cycles) -> Cycles {
        Cycles(self.0.saturating_sub(rhs.0))
    }
}

impl SubAssign for Cycles {
    fn sub_assign(&mut self, rhs: Cycles) {
        self.0 = self.0.saturating_sub(rhs.0);
    }
}

impl std::iter::Sum for Cycles {
    fn sum<I: Iterator<Item = Cycles>>(iter: I) -> Cycles {
        iter.fold(Cycles::ZERO, |a, b| a + b)
    }
}

impl fmt::Display for Cycles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl fmt::Debug for Cycles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} cycles", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saturates_and_splits() {
        assert_eq!(Cycles::new(5) - Cycles::new(7), Cycles::ZERO);
        assert_eq!(Cycles::new(u128::MAX) + Cycles::new(1), Cycles::new(u128::MAX));
        let c = Cycles::new((7u128 << 64) | 9);
        assert_eq!(c.into_parts(), (7, 9));
        assert_eq!(Cycles::from_parts(7, 9), c);
        assert_eq!(Cycles::new(1_000).scale(34, 13), Cycles::new(2615));
        assert_eq!(Cycles::new(u128::MAX).scale(2, 2), Cycles::new(u128::MAX));
    }
}
