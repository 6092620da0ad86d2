//! Execution limits and subnet parameters.

use cairn_types::Cycles;
use cairn_types::fees::{
    MAX_INSTRUCTIONS_PER_INSPECT, MAX_INSTRUCTIONS_PER_INSTALL, MAX_INSTRUCTIONS_PER_QUERY, MAX_INSTRUCTIONS_PER_UPDATE,
};
use cairn_wasm_module::ModuleLimits;

/// Instructions one round may execute before the scheduler stops starting new messages.
pub const MAX_INSTRUCTIONS_PER_ROUND: u64 = 7_000_000_000;
/// Deepest composite query call graph.
pub const MAX_QUERY_CALL_DEPTH: usize = 6;
/// Instructions a whole composite query call graph may execute.
pub const MAX_INSTRUCTIONS_PER_COMPOSITE_QUERY: u64 = 5_000_000_000;
/// Snapshots one canister may keep.
pub const MAX_SNAPSHOTS_PER_CANISTER: usize = 10;
/// Cycles `provisional_create_canister_with_cycles` gives when no amount is named (100 T).
pub const DEFAULT_PROVISIONAL_CYCLES: Cycles = Cycles::new(100_000_000_000_000);
/// How long `stop_canister` waits before answering with a timeout.
pub const STOP_CANISTER_TIMEOUT_NANOS: u64 = 5 * 60 * 1_000_000_000;
/// Storage and compute allocation are charged at most this often.
pub const ALLOCATION_CHARGE_INTERVAL_NANOS: u64 = 10 * 1_000_000_000;
/// Statuses the ingress history may hold.
pub const MAX_INGRESS_HISTORY: usize = 600_000;
/// Largest chunk accepted by `upload_chunk`.
pub const MAX_CHUNK_SIZE: usize = 1 << 20;
/// Chunks one canister's chunk store may hold (100 MiB in total).
pub const MAX_CHUNKS: usize = 100;

/// The limits execution enforces. Defaults are the IC's; tests lower some of
/// them so that hostile canisters hit the limits quickly.
#[derive(Clone, Debug)]
pub struct ExecutionConfig {
    pub max_instructions_per_update: u64,
    pub max_instructions_per_query: u64,
    pub max_instructions_per_install: u64,
    pub max_instructions_per_inspect: u64,
    pub max_instructions_per_round: u64,
    pub max_instructions_per_composite_query: u64,
    pub module_limits: ModuleLimits,
    /// Cycles given by `provisional_create_canister_with_cycles` without an amount.
    pub default_provisional_cycles: Cycles,
}

impl Default for ExecutionConfig {
    fn default() -> Self {
        ExecutionConfig {
            max_instructions_per_update: MAX_INSTRUCTIONS_PER_UPDATE,
            max_instructions_per_query: MAX_INSTRUCTIONS_PER_QUERY,
            max_instructions_per_install: MAX_INSTRUCTIONS_PER_INSTALL,
            max_instructions_per_inspect: MAX_INSTRUCTIONS_PER_INSPECT,
            max_instructions_per_round: MAX_INSTRUCTIONS_PER_ROUND,
            max_instructions_per_composite_query: MAX_INSTRUCTIONS_PER_COMPOSITE_QUERY,
            module_limits: ModuleLimits::default(),
            default_provisional_cycles: DEFAULT_PROVISIONAL_CYCLES,
        }
    }
}
