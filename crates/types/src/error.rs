//! Reject codes and IC error codes, numbered exactly as the interface spec and
//! the DFINITY implementation do, because clients display and match on them.

use serde::{Deserialize, Serialize};
use std::fmt;

/// The spec's reject codes: the coarse outcome class of a failed call.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize, Deserialize)]
#[repr(u32)]
pub enum RejectCode {
    SysFatal = 1,
    SysTransient = 2,
    DestinationInvalid = 3,
    CanisterReject = 4,
    CanisterError = 5,
    SysUnknown = 6,
}

impl RejectCode {
    /// The numeric code as it appears on the wire and in `ic0.msg_reject_code`.
    pub fn as_u32(self) -> u32 {
        self as u32
    }

    /// Parses a numeric reject code.
    pub fn from_u32(code: u32) -> Option<Self> {
        Some(match code {
            1 => RejectCode::SysFatal,
            2 => RejectCode::SysTransient,
            3 => RejectCode::DestinationInvalid,
            4 => RejectCode::CanisterReject,
            5 => RejectCode::CanisterError,
            6 => RejectCode::SysUnknown,
            _ => return None,
        })
    }
}

macro_rules! error_codes {
    ($($name:ident = $num:literal),* $(,)?) => {
        /// Fine-grained IC error codes (`IC0502` and so on); the first digit is the reject code.
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize, Deserialize)]
        #[repr(u32)]
        pub enum ErrorCode {
            $($name = $num),*
        }

        impl ErrorCode {
            /// Parses a numeric error code.
            pub fn from_u32(n: u32) -> Option<Self> {
                match n {
                    $($num => Some(ErrorCode::$name),)*
                    _ => None,
                }
            }
        }
    };
}

error_codes! {
    SubnetOversubscribed = 101,
    MaxNumberOfCanistersReached = 102,
    CanisterQueueFull = 201,
    IngressMessageTimeout = 202,
    CanisterQueueNotEmpty = 203,
    IngressHistoryFull = 204,
    CanisterIdAlreadyExists = 205,
    StopCanisterRequestTimeout = 206,
    CanisterOutOfCycles = 207,
    CertifiedStateUnavailable = 208,
    CanisterInstallCodeRateLimited = 209,
    CanisterHeapDeltaRateLimited = 210,
    CanisterNotFound = 301,
    CanisterSnapshotNotFound = 305,
    InsufficientMemoryAllocation = 402,
    InsufficientCyclesForCreateCanister = 403,
    SubnetNotFound = 404,
    CanisterNotHostedBySubnet = 405,
    CanisterRejectedMessage = 406,
    UnknownManagementMessage = 407,
    InvalidManagementPayload = 408,
    CanisterTrapped = 502,
    CanisterCalledTrap = 503,
    CanisterContractViolation = 504,
    CanisterInvalidWasm = 505,
    CanisterDidNotReply = 506,
    CanisterOutOfMemory = 507,
    CanisterStopped = 508,
    CanisterStopping = 509,
    CanisterNotStopped = 510,
    CanisterStoppingCancelled = 511,
    CanisterInvalidController = 512,
    CanisterFunctionNotFound = 513,
    CanisterNonEmpty = 514,
    QueryCallGraphLoopDetected = 517,
    InsufficientCyclesInCall = 520,
    CanisterWasmEngineError = 521,
    CanisterInstructionLimitExceeded = 522,
    CanisterMemoryAccessLimitExceeded = 524,
    QueryCallGraphTooDeep = 525,
    QueryCallGraphTotalInstructionLimitExceeded = 526,
    CompositeQueryCalledInReplicatedMode = 527,
    QueryTimeLimitExceeded = 528,
    QueryCallGraphInternal = 529,
    InsufficientCyclesInComputeAllocation = 530,
    InsufficientCyclesInMemoryAllocation = 531,
    InsufficientCyclesInMemoryGrow = 532,
    ReservedCyclesLimitExceededInMemoryAllocation = 533,
    ReservedCyclesLimitExceededInMemoryGrow = 534,
    InsufficientCyclesInMessageMemoryGrow = 535,
    CanisterMethodNotFound = 536,
    CanisterWasmModuleNotFound = 537,
    CanisterAlreadyInstalled = 538,
    CanisterWasmMemoryLimitExceeded = 539,
    ReservedCyclesLimitIsTooLow = 540,
    DeadlineExpired = 601,
    ResponseDropped = 602,
}

impl ErrorCode {
    /// The numeric code, e.g. 502.
    pub fn as_u32(self) -> u32 {
        self as u32
    }

    /// The reject code class of this error (its first digit).
    pub fn reject_code(self) -> RejectCode {
        RejectCode::from_u32(self.as_u32() / 100).expect("every error code starts with a reject code digit")
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IC{:04}", self.as_u32())
    }
}

/// An error reported to a user (or calling canister): a code plus a human description.
///
/// Displayed as `IC0503: <description>`, the form a calling canister sees in its reject message.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct UserError {
    pub code: ErrorCode,
    pub description: String,
}

impl UserError {
    /// A new error.
    pub fn new(code: ErrorCode, description: impl Into<String>) -> Self {
        UserError { code, description: description.into() }
    }

    /// The reject code class.
    pub fn reject_code(&self) -> RejectCode {
        self.code.reject_code()
    }
}

impl fmt::Display for UserError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.description)
    }
}

impl std::error::Error for UserError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_format_and_classify() {
        assert_eq!(ErrorCode::CanisterCalledTrap.to_string(), "IC0503");
        assert_eq!(ErrorCode::CanisterCalledTrap.reject_code(), RejectCode::CanisterError);
        assert_eq!(ErrorCode::CanisterNotFound.reject_code(), RejectCode::DestinationInvalid);
        assert_eq!(ErrorCode::DeadlineExpired.reject_code(), RejectCode::SysUnknown);
        assert_eq!(ErrorCode::from_u32(207), Some(ErrorCode::CanisterOutOfCycles));
        assert_eq!(ErrorCode::SubnetOversubscribed.reject_code(), RejectCode::SysFatal);
    }
}
