//! Time, heights and registry versions.
//!
//! Replicated code only ever sees [`Time`] values that came from a block,
//! never the wall clock.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Nanoseconds since the Unix epoch.
#[derive(Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Time(u64);

impl Time {
    /// The Unix epoch.
    pub const EPOCH: Time = Time(0);

    /// A time from nanoseconds since the epoch.
    pub const fn from_nanos(nanos: u64) -> Self {
        Time(nanos)
    }

    /// A time from whole seconds since the epoch.
    pub const fn from_secs(secs: u64) -> Self {
        Time(secs.saturating_mul(1_000_000_000))
    }

    /// Nanoseconds since the epoch.
    pub const fn as_nanos(&self) -> u64 {
        self.0
    }

    /// Whole seconds since the epoch.
    pub const fn as_secs(&self) -> u64 {
        self.0 / 1_000_000_000
    }

    /// This time plus a duration, saturating.
    pub fn saturating_add(self, d: std::time::Duration) -> Time {
        Time(self.0.saturating_add(d.as_nanos().min(u64::MAX as u128) as u64))
    }

    /// Nanoseconds from `earlier` to `self`, zero if `earlier` is later.
    pub fn nanos_since(self, earlier: Time) -> u64 {
        self.0.saturating_sub(earlier.0)
    }
}

impl fmt::Debug for Time {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:09}s", self.0 / 1_000_000_000, self.0 % 1_000_000_000)
    }
}

/// The height of a block and of the state it produced.
#[derive(Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Debug)]
pub struct Height(pub u64);

impl Height {
    /// The next height.
    pub fn increment(self) -> Height {
        Height(self.0 + 1)
    }
}

impl fmt::Display for Height {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A version of the registry; every record is read at some version.
#[derive(Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Debug)]
pub struct RegistryVersion(pub u64);
