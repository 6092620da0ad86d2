//! The state of one canister: system state (always present) and execution
//! state (present while a Wasm module is installed).

use crate::call_context::CallContextManager;
use crate::page_map::{Memory, WASM_PAGE_SIZE};
use crate::queues::CanisterQueues;
use cairn_types::messages::{CallbackId, MessageId};
use cairn_types::{CanisterId, Cycles, Principal, Time};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

/// Default freezing threshold: 30 days.
pub const DEFAULT_FREEZING_THRESHOLD_SECONDS: u64 = 2_592_000;
/// Default reserved cycles limit: 5 T.
pub const DEFAULT_RESERVED_CYCLES_LIMIT: Cycles = Cycles::new(5_000_000_000_000);
/// Default Wasm memory limit given to new canisters (the IC's default, 3 GiB).
pub const DEFAULT_WASM_MEMORY_LIMIT: u64 = 3 << 30;
/// Maximum number of controllers.
pub const MAX_CONTROLLERS: usize = 10;
/// Bytes of log records kept per canister.
pub const MAX_LOG_BYTES: usize = 4096;
/// History entries kept per canister (the spec requires at least 20).
pub const MAX_HISTORY_ENTRIES: usize = 20;

/// Who may see a canister's logs, snapshots or status.
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Visibility {
    #[default]
    Controllers,
    Public,
    AllowedViewers(Vec<Principal>),
}

impl Visibility {
    /// Whether `who` may see the guarded data.
    pub fn allows(&self, who: &Principal, controllers: &BTreeSet<Principal>) -> bool {
        match self {
            Visibility::Public => true,
            Visibility::Controllers => controllers.contains(who),
            Visibility::AllowedViewers(v) => controllers.contains(who) || v.contains(who),
        }
    }
}

/// The settings a controller can change with `update_settings`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CanisterSettings {
    pub compute_allocation: u64,
    pub memory_allocation: u64,
    pub freezing_threshold: u64,
    pub reserved_cycles_limit: Cycles,
    /// 0 means no limit.
    pub wasm_memory_limit: u64,
    pub wasm_memory_threshold: u64,
    pub log_visibility: Visibility,
    pub snapshot_visibility: Visibility,
    pub status_visibility: Visibility,
    pub environment_variables: BTreeMap<String, String>,
    pub minimum_incoming_canister_call_cycles: Cycles,
}

impl Default for CanisterSettings {
    fn default() -> Self {
        CanisterSettings {
            compute_allocation: 0,
            memory_allocation: 0,
            freezing_threshold: DEFAULT_FREEZING_THRESHOLD_SECONDS,
            reserved_cycles_limit: DEFAULT_RESERVED_CYCLES_LIMIT,
            wasm_memory_limit: DEFAULT_WASM_MEMORY_LIMIT,
            wasm_memory_threshold: 0,
            log_visibility: Visibility::Controllers,
            snapshot_visibility: Visibility::Controllers,
            status_visibility: Visibility::Controllers,
            environment_variables: BTreeMap::new(),
            minimum_incoming_canister_call_cycles: Cycles::ZERO,
        }
    }
}

/// Someone waiting for `stop_canister` to finish.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum StopContext {
    Ingress { sender: Principal, message_id: MessageId },
    Canister { sender: CanisterId, reply_callback: CallbackId, cycles: Cycles, deadline: Option<Time> },
}

/// Running status of a canister.
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum CanisterStatus {
    #[default]
    Running,
    /// Stopping: waits until every call context is closed.
    Stopping {
        stop_contexts: Vec<StopContext>,
        since: Time,
    },
    Stopped,
}

impl CanisterStatus {
    /// The number `ic0.canister_status` returns.
    pub fn as_ic0(&self) -> u32 {
        match self {
            CanisterStatus::Running => 1,
            CanisterStatus::Stopping { .. } => 2,
            CanisterStatus::Stopped => 3,
        }
    }
}

/// Where a change to a canister came from (canister history).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChangeOrigin {
    FromUser(Principal),
    FromCanister(CanisterId, Option<u64>),
}

/// The mode of a code deployment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum InstallMode {
    Install,
    Reinstall,
    Upgrade,
}

/// What changed (canister history).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChangeDetails {
    Creation {
        controllers: Vec<Principal>,
        environment_variables_hash: Option<[u8; 32]>,
    },
    CodeUninstall,
    CodeDeployment {
        mode: InstallMode,
        module_hash: [u8; 32],
    },
    LoadSnapshot {
        canister_version: u64,
        snapshot_id: Vec<u8>,
        taken_at_timestamp: u64,
        from_canister_id: Option<CanisterId>,
    },
    ControllersChange {
        controllers: Vec<Principal>,
    },
}

/// One entry of a canister's history, as `canister_info` returns it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CanisterChange {
    pub timestamp_nanos: u64,
    pub canister_version: u64,
    pub origin: ChangeOrigin,
    pub details: ChangeDetails,
}

/// The most recent changes of a canister plus the total count ever made.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CanisterHistory {
    pub total_num_changes: u64,
    pub changes: VecDeque<CanisterChange>,
}

impl CanisterHistory {
    /// Records a change, forgetting the oldest beyond the retention limit.
    pub fn add(&mut self, change: CanisterChange) {
        self.total_num_changes += 1;
        self.changes.push_back(change);
        while self.changes.len() > MAX_HISTORY_ENTRIES {
            self.changes.pop_front();
        }
    }
}

/// One canister log record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogRecord {
    pub idx: u64,
    pub timestamp_nanos: u64,
    #[serde(with = "serde_bytes")]
    pub content: Vec<u8>,
}

/// The canister's log: the newest records within [`MAX_LOG_BYTES`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CanisterLog {
    pub next_idx: u64,
    pub records: VecDeque<LogRecord>,
    pub bytes: usize,
}

impl CanisterLog {
    /// Appends a record, evicting the oldest ones to stay within the size limit.
    pub fn append(&mut self, timestamp_nanos: u64, mut content: Vec<u8>) {
        content.truncate(MAX_LOG_BYTES);
        self.bytes += content.len();
        self.records.push_back(LogRecord { idx: self.next_idx, timestamp_nanos, content });
        self.next_idx += 1;
        while self.bytes > MAX_LOG_BYTES {
            let old = self.records.pop_front().expect("bytes > 0 implies records");
            self.bytes -= old.content.len();
        }
    }

    /// Drops every record (the index keeps counting).
    pub fn clear(&mut self) {
        self.records.clear();
        self.bytes = 0;
    }
}

/// Chunks uploaded with `upload_chunk`, keyed by SHA-256.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WasmChunkStore {
    pub chunks: BTreeMap<[u8; 32], Arc<serde_bytes::ByteBuf>>,
}

impl WasmChunkStore {
    /// Total bytes stored.
    pub fn size_bytes(&self) -> u64 {
        self.chunks.values().map(|c| c.len() as u64).sum()
    }
}

/// Cycles consumed, by use case (reported by `canister_metrics`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsumedCycles {
    pub memory: Cycles,
    pub compute_allocation: Cycles,
    pub ingress_induction: Cycles,
    pub instructions: Cycles,
    pub request_and_response_transmission: Cycles,
    pub uninstall: Cycles,
    pub canister_creation: Cycles,
    pub http_outcalls: Cycles,
    pub burned_cycles: Cycles,
}

impl ConsumedCycles {
    /// Sum over all use cases.
    pub fn total(&self) -> Cycles {
        self.memory
            + self.compute_allocation
            + self.ingress_induction
            + self.instructions
            + self.request_and_response_transmission
            + self.uninstall
            + self.canister_creation
            + self.http_outcalls
            + self.burned_cycles
    }
}

/// Query statistics (reported by `canister_status`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueryStats {
    pub num_calls_total: u64,
    pub num_instructions_total: u64,
    pub request_payload_bytes_total: u64,
    pub response_payload_bytes_total: u64,
}

/// Whether the low-Wasm-memory hook is waiting to run, ran, or is not due.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum LowMemoryHookStatus {
    #[default]
    NotSatisfied,
    Ready,
    Executed,
}

/// Everything about a canister except its Wasm module and memories.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SystemState {
    pub canister_id: CanisterId,
    pub controllers: BTreeSet<Principal>,
    pub status: CanisterStatus,
    pub cycles_balance: Cycles,
    pub reserved_balance: Cycles,
    pub settings: CanisterSettings,
    #[serde(with = "serde_bytes")]
    pub certified_data: Vec<u8>,
    /// When `canister_global_timer` should next run.
    pub global_timer: Option<Time>,
    pub canister_version: u64,
    pub history: CanisterHistory,
    pub call_context_manager: CallContextManager,
    pub queues: CanisterQueues,
    pub log: CanisterLog,
    pub wasm_chunk_store: WasmChunkStore,
    pub creation_time: Time,
    pub last_install_time: Option<Time>,
    /// Storage and allocation fees are charged up to this time.
    pub time_of_last_allocation_charge: Time,
    pub consumed_cycles: ConsumedCycles,
    pub query_stats: QueryStats,
    pub low_memory_hook: LowMemoryHookStatus,
    /// The largest time any execution of this canister observed, so `ic0.time` is monotonic.
    pub last_observed_time: Time,
}

impl SystemState {
    /// A freshly created canister.
    pub fn new(
        canister_id: CanisterId,
        controllers: BTreeSet<Principal>,
        cycles: Cycles,
        settings: CanisterSettings,
        now: Time,
    ) -> Self {
        SystemState {
            canister_id,
            controllers,
            status: CanisterStatus::Running,
            cycles_balance: cycles,
            reserved_balance: Cycles::ZERO,
            settings,
            certified_data: Vec::new(),
            global_timer: None,
            canister_version: 0,
            history: CanisterHistory::default(),
            call_context_manager: CallContextManager::default(),
            queues: CanisterQueues::default(),
            log: CanisterLog::default(),
            wasm_chunk_store: WasmChunkStore::default(),
            creation_time: now,
            last_install_time: None,
            time_of_last_allocation_charge: now,
            consumed_cycles: ConsumedCycles::default(),
            query_stats: QueryStats::default(),
            low_memory_hook: LowMemoryHookStatus::NotSatisfied,
            last_observed_time: now,
        }
    }

    /// Whether `p` controls this canister.
    pub fn is_controller(&self, p: &Principal) -> bool {
        self.controllers.contains(p)
    }
}

/// A Wasm module as it was uploaded (possibly gzipped), with its SHA-256.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WasmBinary {
    #[serde(with = "serde_bytes")]
    pub bytes: Vec<u8>,
    pub hash: [u8; 32],
}

/// The value of a Wasm global, saved between messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum GlobalValue {
    I32(i32),
    I64(i64),
    /// Raw bits, so that NaN payloads round-trip exactly.
    F32(u32),
    F64(u64),
    V128(u128),
}

/// Which methods a module exports.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportedMethods {
    pub updates: BTreeSet<String>,
    pub queries: BTreeSet<String>,
    pub composite_queries: BTreeSet<String>,
    pub init: bool,
    pub pre_upgrade: bool,
    pub post_upgrade: bool,
    pub inspect_message: bool,
    pub heartbeat: bool,
    pub global_timer: bool,
    pub on_low_wasm_memory: bool,
}

/// A custom section `icp:public <name>` or `icp:private <name>`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomSection {
    pub public: bool,
    #[serde(with = "serde_bytes")]
    pub content: Vec<u8>,
}

/// The installed code and its memories.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ExecutionState {
    pub wasm_binary: Arc<WasmBinary>,
    #[serde(skip)]
    pub wasm_memory: Memory,
    #[serde(skip)]
    pub stable_memory: Memory,
    pub exported_globals: Vec<GlobalValue>,
    pub exports: ExportedMethods,
    pub metadata: BTreeMap<String, CustomSection>,
    /// The module uses 64-bit memory (wasm64): every System API address is an i64.
    pub memory64: bool,
}

impl ExecutionState {
    /// Bytes of custom sections (counted as memory usage).
    pub fn custom_sections_size(&self) -> u64 {
        self.metadata.iter().map(|(k, v)| (k.len() + v.content.len()) as u64).sum()
    }

    /// Bytes of globals (counted as memory usage).
    pub fn globals_size(&self) -> u64 {
        self.exported_globals.len() as u64 * 8
    }
}

/// One canister.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CanisterState {
    pub system_state: SystemState,
    pub execution_state: Option<ExecutionState>,
}

impl CanisterState {
    /// The canister's id.
    pub fn id(&self) -> CanisterId {
        self.system_state.canister_id
    }

    /// Bytes of memory the canister is charged for.
    pub fn memory_usage(&self) -> u64 {
        let exec = self.execution_state.as_ref().map_or(0, |e| {
            e.wasm_memory.size_bytes()
                + e.stable_memory.size_bytes()
                + e.wasm_binary.bytes.len() as u64
                + e.custom_sections_size()
                + e.globals_size()
        });
        exec + self.system_state.wasm_chunk_store.size_bytes() + self.system_state.history.changes.len() as u64 * 100
    }

    /// Size of the Wasm heap in bytes.
    pub fn wasm_memory_size(&self) -> u64 {
        self.execution_state.as_ref().map_or(0, |e| e.wasm_memory.size_wasm_pages * WASM_PAGE_SIZE)
    }

    /// The hash of the installed module, if any.
    pub fn module_hash(&self) -> Option<[u8; 32]> {
        self.execution_state.as_ref().map(|e| e.wasm_binary.hash)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_keeps_newest_within_limit() {
        let mut log = CanisterLog::default();
        for i in 0..100u64 {
            log.append(i, vec![b'x'; 100]);
        }
        assert!(log.bytes <= MAX_LOG_BYTES);
        assert_eq!(log.records.back().unwrap().idx, 99);
        assert_eq!(log.records.len(), MAX_LOG_BYTES / 100);
    }

    #[test]
    fn history_keeps_recent() {
        let mut h = CanisterHistory::default();
        for v in 0..30 {
            h.add(CanisterChange {
                timestamp_nanos: v,
                canister_version: v,
                origin: ChangeOrigin::FromUser(Principal::ANONYMOUS),
                details: ChangeDetails::CodeUninstall,
            });
        }
        assert_eq!(h.total_num_changes, 30);
        assert_eq!(h.changes.len(), MAX_HISTORY_ENTRIES);
        assert_eq!(h.changes[0].canister_version, 10);
    }

    #[test]
    fn visibility_rules() {
        let c: BTreeSet<Principal> = [Principal::ANONYMOUS].into();
        let other = Principal::MANAGEMENT;
        assert!(Visibility::Controllers.allows(&Principal::ANONYMOUS, &c));
        assert!(!Visibility::Controllers.allows(&other, &c));
        assert!(Visibility::Public.allows(&other, &c));
        assert!(Visibility::AllowedViewers(vec![other]).allows(&other, &c));
    }
}
