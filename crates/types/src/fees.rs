//! The cycles fee schedule.
//!
//! Numbers are the IC's application-subnet table for 13 nodes; every fee
//! scales linearly with the number of nodes the subnet is charged for
//! (`fee × n / 13`), so a 34-node subnet pays `34/13` as much.

use crate::cycles::Cycles;

/// The subnet size the base fee table is defined for.
pub const REFERENCE_SUBNET_SIZE: u32 = 13;

/// Instructions one update, heartbeat, timer or callback may execute.
pub const MAX_INSTRUCTIONS_PER_UPDATE: u64 = 40_000_000_000;
/// Instructions one query may execute.
pub const MAX_INSTRUCTIONS_PER_QUERY: u64 = 5_000_000_000;
/// Instructions one `install_code` (start + init, or pre/post-upgrade) may execute.
pub const MAX_INSTRUCTIONS_PER_INSTALL: u64 = 300_000_000_000;
/// Instructions `canister_inspect_message` may execute.
pub const MAX_INSTRUCTIONS_PER_INSPECT: u64 = 200_000_000;
/// Largest inter-canister request or response payload (bytes).
pub const MAX_INTER_CANISTER_PAYLOAD: u64 = 2 * 1024 * 1024;
/// Largest same-subnet inter-canister request payload (bytes).
pub const MAX_INTRA_SUBNET_PAYLOAD: u64 = 10 * 1024 * 1024;
/// Largest reply to an update call (bytes).
pub const MAX_REPLY_SIZE: u64 = 2 * 1024 * 1024;
/// Largest reply to a query (bytes).
pub const MAX_QUERY_REPLY_SIZE: u64 = 3 * 1024 * 1024;
/// Largest ingress message (bytes).
pub const MAX_INGRESS_SIZE: u64 = 2 * 1024 * 1024;
/// Longest timeout a bounded-wait call may have.
pub const MAX_CALL_TIMEOUT_SECONDS: u64 = 300;

const GIB: u128 = 1 << 30;

/// The reference fees (13 nodes). Costs are computed in reference units and
/// scaled once at the end (`cost × n / 13`, multiplying first), as the IC does.
mod reference {
    pub const CANISTER_CREATION_FEE: u128 = 500_000_000_000;
    pub const UPDATE_MESSAGE_EXECUTION_FEE: u128 = 5_000_000;
    pub const TEN_UPDATE_INSTRUCTIONS_EXECUTION_FEE: u128 = 10;
    pub const XNET_CALL_FEE: u128 = 260_000;
    pub const XNET_BYTE_TRANSMISSION_FEE: u128 = 1_000;
    pub const INGRESS_MESSAGE_RECEPTION_FEE: u128 = 1_200_000;
    pub const INGRESS_BYTE_RECEPTION_FEE: u128 = 2_000;
    pub const GIB_STORAGE_PER_SECOND_FEE: u128 = 127_000;
    pub const COMPUTE_PERCENT_ALLOCATED_PER_SECOND_FEE: u128 = 10_000_000;
    pub const HTTP_REQUEST_LINEAR_BASELINE_FEE: u128 = 3_000_000;
    pub const HTTP_REQUEST_QUADRATIC_BASELINE_FEE: u128 = 60_000;
    pub const HTTP_REQUEST_PER_BYTE_FEE: u128 = 400;
    pub const HTTP_RESPONSE_PER_BYTE_FEE: u128 = 800;
}

/// The fee schedule of one subnet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CostSchedule {
    subnet_size: u32,
}

impl CostSchedule {
    /// The fee table for a subnet charged as `subnet_size` nodes.
    pub fn for_subnet_size(subnet_size: u32) -> Self {
        CostSchedule { subnet_size: subnet_size.max(1) }
    }

    /// The number of nodes fees are computed for.
    pub fn subnet_size(&self) -> u32 {
        self.subnet_size
    }

    /// Scales a cost in reference (13-node) units to this subnet.
    fn scale(&self, reference_cost: u128) -> Cycles {
        Cycles::new(reference_cost).scale(self.subnet_size as u128, REFERENCE_SUBNET_SIZE as u128)
    }

    /// Fee for creating a canister.
    pub fn canister_creation_fee(&self) -> Cycles {
        self.scale(reference::CANISTER_CREATION_FEE)
    }

    /// The fixed part of every update-like execution.
    pub fn update_message_execution_fee(&self) -> Cycles {
        self.scale(reference::UPDATE_MESSAGE_EXECUTION_FEE)
    }

    fn instructions_reference(instructions: u64) -> u128 {
        reference::TEN_UPDATE_INSTRUCTIONS_EXECUTION_FEE.saturating_mul(instructions as u128) / 10
    }

    /// Cost of executing `instructions` in one update-like message.
    pub fn execution_cost(&self, instructions: u64) -> Cycles {
        self.scale(reference::UPDATE_MESSAGE_EXECUTION_FEE + Self::instructions_reference(instructions))
    }

    /// Cost of receiving an ingress message of `bytes` bytes.
    pub fn ingress_induction_cost(&self, bytes: u64) -> Cycles {
        self.scale(reference::INGRESS_MESSAGE_RECEPTION_FEE + reference::INGRESS_BYTE_RECEPTION_FEE * bytes as u128)
    }

    /// Cost of sending a request of `bytes` bytes (method name plus argument).
    pub fn xnet_call_performed_fee(&self, bytes: u64) -> Cycles {
        self.scale(reference::XNET_CALL_FEE + reference::XNET_BYTE_TRANSMISSION_FEE * bytes as u128)
    }

    /// Cost of transmitting `bytes` bytes between canisters.
    pub fn xnet_transmission_cost(&self, bytes: u64) -> Cycles {
        self.scale(reference::XNET_BYTE_TRANSMISSION_FEE * bytes as u128)
    }

    /// Reserved per outgoing call to run its callback.
    pub fn prepayment_for_response_execution(&self) -> Cycles {
        self.execution_cost(MAX_INSTRUCTIONS_PER_UPDATE)
    }

    /// Reserved per outgoing call to transmit the largest possible response.
    pub fn prepayment_for_response_transmission(&self) -> Cycles {
        self.xnet_transmission_cost(MAX_INTER_CANISTER_PAYLOAD)
    }

    /// What `ic0.cost_call` reports: the fee plus both reservations. Like the
    /// IC, this uses the reference subnet size whatever the actual size.
    pub fn cost_call(&self, method_name_size: u64, payload_size: u64) -> Cycles {
        let reference = CostSchedule::for_subnet_size(REFERENCE_SUBNET_SIZE);
        reference.xnet_call_performed_fee(method_name_size.saturating_add(payload_size))
            + reference.prepayment_for_response_execution()
            + reference.prepayment_for_response_transmission()
    }

    /// Storage cost of `bytes` held for `nanos` nanoseconds.
    pub fn storage_cost(&self, bytes: u64, nanos: u64) -> Cycles {
        let byte_ns = (bytes as u128).saturating_mul(nanos as u128);
        self.scale(reference::GIB_STORAGE_PER_SECOND_FEE.saturating_mul(byte_ns / 1_000_000_000) / GIB)
    }

    /// Cost of a compute allocation of `percent` held for `nanos` nanoseconds.
    pub fn compute_allocation_cost(&self, percent: u64, nanos: u64) -> Cycles {
        self.scale(
            reference::COMPUTE_PERCENT_ALLOCATED_PER_SECOND_FEE
                .saturating_mul(percent as u128)
                .saturating_mul(nanos as u128)
                / 1_000_000_000,
        )
    }

    /// Cycles a canister burns per day while idle: storage plus compute allocation.
    pub fn idle_cycles_burned_per_day(&self, memory_bytes: u64, compute_allocation: u64) -> Cycles {
        const DAY_NANOS: u64 = 86_400 * 1_000_000_000;
        self.storage_cost(memory_bytes, DAY_NANOS) + self.compute_allocation_cost(compute_allocation, DAY_NANOS)
    }

    /// Balance below which a canister is frozen.
    pub fn freezing_limit(
        &self,
        memory_bytes: u64,
        compute_allocation: u64,
        freezing_threshold_seconds: u64,
    ) -> Cycles {
        self.idle_cycles_burned_per_day(memory_bytes, compute_allocation)
            .scale(freezing_threshold_seconds as u128, 86_400)
    }

    /// The HTTPS outcall fee for the given request size and response limit
    /// (its own per-node formula, not the linear scaling).
    pub fn http_request_fee(&self, request_bytes: u64, max_response_bytes: u64) -> Cycles {
        let n = self.subnet_size as u128;
        let base =
            (reference::HTTP_REQUEST_LINEAR_BASELINE_FEE + reference::HTTP_REQUEST_QUADRATIC_BASELINE_FEE * n) * n;
        let per_byte = (reference::HTTP_REQUEST_PER_BYTE_FEE * request_bytes as u128
            + reference::HTTP_RESPONSE_PER_BYTE_FEE * max_response_bytes as u128)
            * n;
        Cycles::new(base.saturating_add(per_byte))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_table_and_scaling() {
        let c = CostSchedule::for_subnet_size(13);
        assert_eq!(c.canister_creation_fee(), Cycles::new(500_000_000_000));
        assert_eq!(c.execution_cost(1_000), Cycles::new(5_001_000));
        assert_eq!(c.ingress_induction_cost(100), Cycles::new(1_400_000));
        let big = CostSchedule::for_subnet_size(34);
        assert_eq!(big.xnet_call_performed_fee(0), Cycles::new(260_000 * 34 / 13));
        assert_eq!(big.canister_creation_fee(), Cycles::new(500_000_000_000u128 * 34 / 13));
        // The total is scaled, not each part: an instruction costs 34/13 cycles, not 2.
        assert_eq!(big.execution_cost(1_000_000), Cycles::new((5_000_000u128 + 1_000_000) * 34 / 13));
        // cost_call always uses the reference size.
        assert_eq!(big.cost_call(0, 0), c.cost_call(0, 0));
        assert_eq!(c.cost_call(0, 0), Cycles::new(42_102_412_000));
        // The digest's 13-node outcall formula: 49,140,000 + 5,200/request byte + 10,400/response byte.
        assert_eq!(c.http_request_fee(0, 0), Cycles::new(49_140_000));
        assert_eq!(c.http_request_fee(1, 1), Cycles::new(49_140_000 + 5_200 + 10_400));
        // One GiB for one second.
        assert_eq!(c.storage_cost(1 << 30, 1_000_000_000), Cycles::new(127_000));
    }

    #[test]
    fn freezing_limit_is_threshold_days_of_idle_burn() {
        let c = CostSchedule::for_subnet_size(13);
        let per_day = c.idle_cycles_burned_per_day(1 << 30, 0);
        assert_eq!(per_day, Cycles::new(127_000 * 86_400));
        assert_eq!(c.freezing_limit(1 << 30, 0, 86_400 * 30), Cycles::new(127_000 * 86_400 * 30));
    }
}
