//! Cycles accounting rules that depend on canister state.

use cairn_state::CanisterState;
use cairn_types::{CostSchedule, Cycles};

/// Balance below which the canister is frozen (storage and compute for the
/// freezing threshold, minus what is already reserved).
pub fn freezing_limit(costs: &CostSchedule, canister: &CanisterState) -> Cycles {
    let s = &canister.system_state;
    let memory = canister.memory_usage().max(s.settings.memory_allocation);
    costs
        .freezing_limit(memory, s.settings.compute_allocation, s.settings.freezing_threshold)
        .saturating_sub(s.reserved_balance)
}

/// Cycles the canister can spend without dropping below its freezing limit.
pub fn liquid_balance(costs: &CostSchedule, canister: &CanisterState) -> Cycles {
    canister.system_state.cycles_balance.saturating_sub(freezing_limit(costs, canister))
}

/// Cycles burnt per day while idle, as `canister_status` reports.
pub fn idle_cycles_burned_per_day(costs: &CostSchedule, canister: &CanisterState) -> Cycles {
    let s = &canister.system_state;
    costs.idle_cycles_burned_per_day(
        canister.memory_usage().max(s.settings.memory_allocation),
        s.settings.compute_allocation,
    )
}

/// Execution cost of `instructions`; wasm64 instructions cost twice as much.
pub fn execution_cost(costs: &CostSchedule, instructions: u64, wasm64: bool) -> Cycles {
    let factor = if wasm64 { 2 } else { 1 };
    costs.execution_cost(instructions.saturating_mul(factor))
}

/// The out-of-cycles error text, revealing the shortfall only to controllers.
pub fn out_of_cycles_message(canister: &CanisterState, needed: Cycles, liquid: Cycles, reveal: bool) -> String {
    let id = canister.id();
    if reveal {
        format!(
            "Canister {id} is out of cycles: please top up the canister with at least {} additional cycles",
            needed.saturating_sub(liquid)
        )
    } else {
        format!("Canister {id} is out of cycles")
    }
}
