//! Candid types of the management canister interface (`ic.did`).
//!
//! Argument records decode leniently (unknown fields ignored, absent `opt`
//! fields are `None`); results contain every field current clients decode.

use candid::{CandidType, Deserialize, Nat, Principal};
use serde_bytes::ByteBuf;

/// `canister_id` alone.
#[derive(CandidType, Deserialize, Debug, Clone)]
pub struct CanisterIdRecord {
    pub canister_id: Principal,
}

/// Who may see logs, snapshots or the status.
#[derive(CandidType, Deserialize, Debug, Clone, PartialEq, Eq)]
pub enum VisibilityArg {
    #[serde(rename = "controllers")]
    Controllers,
    #[serde(rename = "public")]
    Public,
    #[serde(rename = "allowed_viewers")]
    AllowedViewers(Vec<Principal>),
}

/// One environment variable.
#[derive(CandidType, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct EnvironmentVariable {
    pub name: String,
    pub value: String,
}

/// `canister_settings`: every field optional; absent means "keep" (or default on creation).
#[derive(CandidType, Deserialize, Debug, Clone, Default)]
pub struct CanisterSettingsArgs {
    pub controllers: Option<Vec<Principal>>,
    pub compute_allocation: Option<Nat>,
    pub memory_allocation: Option<Nat>,
    pub freezing_threshold: Option<Nat>,
    pub reserved_cycles_limit: Option<Nat>,
    pub log_visibility: Option<VisibilityArg>,
    pub snapshot_visibility: Option<VisibilityArg>,
    pub status_visibility: Option<VisibilityArg>,
    pub wasm_memory_limit: Option<Nat>,
    pub wasm_memory_threshold: Option<Nat>,
    pub environment_variables: Option<Vec<EnvironmentVariable>>,
    pub minimum_incoming_canister_call_cycles: Option<Nat>,
}

#[derive(CandidType, Deserialize, Debug, Clone, Default)]
pub struct CreateCanisterArgs {
    pub settings: Option<CanisterSettingsArgs>,
    pub sender_canister_version: Option<u64>,
}

#[derive(CandidType, Deserialize, Debug, Clone, Default)]
pub struct ProvisionalCreateCanisterArgs {
    pub amount: Option<Nat>,
    pub settings: Option<CanisterSettingsArgs>,
    pub specified_id: Option<Principal>,
    pub sender_canister_version: Option<u64>,
}

#[derive(CandidType, Deserialize, Debug, Clone)]
pub struct ProvisionalTopUpArgs {
    pub canister_id: Principal,
    pub amount: Nat,
}

#[derive(CandidType, Deserialize, Debug, Clone)]
pub struct UpdateSettingsArgs {
    pub canister_id: Principal,
    pub settings: CanisterSettingsArgs,
    pub sender_canister_version: Option<u64>,
}

/// `wasm_memory_persistence` of an upgrade.
#[derive(CandidType, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub enum WasmMemoryPersistence {
    #[serde(rename = "keep")]
    Keep,
    #[serde(rename = "replace")]
    Replace,
}

/// Options of an upgrade.
#[derive(CandidType, Deserialize, Debug, Clone, Copy, Default)]
pub struct UpgradeOptions {
    pub skip_pre_upgrade: Option<bool>,
    pub wasm_memory_persistence: Option<WasmMemoryPersistence>,
}

/// `canister_install_mode`.
#[derive(CandidType, Deserialize, Debug, Clone, Copy)]
pub enum InstallModeArg {
    #[serde(rename = "install")]
    Install,
    #[serde(rename = "reinstall")]
    Reinstall,
    #[serde(rename = "upgrade")]
    Upgrade(Option<UpgradeOptions>),
}

#[derive(CandidType, Deserialize, Debug, Clone)]
pub struct InstallCodeArgs {
    pub mode: InstallModeArg,
    pub canister_id: Principal,
    pub wasm_module: ByteBuf,
    pub arg: ByteBuf,
    pub sender_canister_version: Option<u64>,
}

/// A chunk hash.
#[derive(CandidType, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct ChunkHash {
    pub hash: ByteBuf,
}

#[derive(CandidType, Deserialize, Debug, Clone)]
pub struct InstallChunkedCodeArgs {
    pub mode: InstallModeArg,
    pub target_canister: Principal,
    pub store_canister: Option<Principal>,
    pub chunk_hashes_list: Vec<ChunkHash>,
    pub wasm_module_hash: ByteBuf,
    pub arg: ByteBuf,
    pub sender_canister_version: Option<u64>,
}

#[derive(CandidType, Deserialize, Debug, Clone)]
pub struct UploadChunkArgs {
    pub canister_id: Principal,
    pub chunk: ByteBuf,
}

#[derive(CandidType, Deserialize, Debug, Clone)]
pub struct UninstallCodeArgs {
    pub canister_id: Principal,
    pub sender_canister_version: Option<u64>,
}

/// Running status in `canister_status`.
#[derive(CandidType, Deserialize, Debug, Clone, PartialEq, Eq)]
pub enum CanisterStatusType {
    #[serde(rename = "running")]
    Running,
    #[serde(rename = "stopping")]
    Stopping,
    #[serde(rename = "stopped")]
    Stopped,
}

/// `definite_canister_settings`.
#[derive(CandidType, Deserialize, Debug, Clone)]
pub struct DefiniteCanisterSettings {
    pub controllers: Vec<Principal>,
    pub compute_allocation: Nat,
    pub memory_allocation: Nat,
    pub freezing_threshold: Nat,
    pub reserved_cycles_limit: Nat,
    pub log_visibility: VisibilityArg,
    pub snapshot_visibility: VisibilityArg,
    pub status_visibility: VisibilityArg,
    pub wasm_memory_limit: Nat,
    pub wasm_memory_threshold: Nat,
    pub environment_variables: Vec<EnvironmentVariable>,
}

#[derive(CandidType, Deserialize, Debug, Clone)]
pub struct MemoryMetrics {
    pub wasm_memory_size: Nat,
    pub stable_memory_size: Nat,
    pub global_memory_size: Nat,
    pub wasm_binary_size: Nat,
    pub custom_sections_size: Nat,
    pub canister_history_size: Nat,
    pub wasm_chunk_store_size: Nat,
    pub snapshots_size: Nat,
}

#[derive(CandidType, Deserialize, Debug, Clone)]
pub struct QueryStatsResult {
    pub num_calls_total: Nat,
    pub num_instructions_total: Nat,
    pub request_payload_bytes_total: Nat,
    pub response_payload_bytes_total: Nat,
}

/// The result of `canister_status`.
#[derive(CandidType, Deserialize, Debug, Clone)]
pub struct CanisterStatusResult {
    pub status: CanisterStatusType,
    pub ready_for_migration: bool,
    pub version: u64,
    pub settings: DefiniteCanisterSettings,
    pub module_hash: Option<ByteBuf>,
    pub memory_size: Nat,
    pub memory_metrics: MemoryMetrics,
    pub cycles: Nat,
    pub reserved_cycles: Nat,
    pub idle_cycles_burned_per_day: Nat,
    pub query_stats: QueryStatsResult,
}

#[derive(CandidType, Deserialize, Debug, Clone)]
pub struct CanisterInfoArgs {
    pub canister_id: Principal,
    pub num_requested_changes: Option<u64>,
}

#[derive(CandidType, Deserialize, Debug, Clone)]
pub struct FromUser {
    pub user_id: Principal,
}

#[derive(CandidType, Deserialize, Debug, Clone)]
pub struct FromCanister {
    pub canister_id: Principal,
    pub canister_version: Option<u64>,
}

#[derive(CandidType, Deserialize, Debug, Clone)]
pub enum ChangeOriginArg {
    #[serde(rename = "from_user")]
    FromUser(FromUser),
    #[serde(rename = "from_canister")]
    FromCanister(FromCanister),
}

#[derive(CandidType, Deserialize, Debug, Clone)]
pub struct CreationRecord {
    pub controllers: Vec<Principal>,
    pub environment_variables_hash: Option<ByteBuf>,
}

#[derive(CandidType, Deserialize, Debug, Clone)]
pub enum CodeDeploymentMode {
    #[serde(rename = "install")]
    Install,
    #[serde(rename = "reinstall")]
    Reinstall,
    #[serde(rename = "upgrade")]
    Upgrade,
}

#[derive(CandidType, Deserialize, Debug, Clone)]
pub struct CodeDeploymentRecord {
    pub mode: CodeDeploymentMode,
    pub module_hash: ByteBuf,
}

#[derive(CandidType, Deserialize, Debug, Clone)]
pub struct ControllersChangeRecord {
    pub controllers: Vec<Principal>,
}

#[derive(CandidType, Deserialize, Debug, Clone)]
pub struct LoadSnapshotRecord {
    pub canister_version: u64,
    pub snapshot_id: ByteBuf,
    pub taken_at_timestamp: u64,
}

#[derive(CandidType, Deserialize, Debug, Clone)]
pub enum ChangeDetailsArg {
    #[serde(rename = "creation")]
    Creation(CreationRecord),
    #[serde(rename = "code_uninstall")]
    CodeUninstall,
    #[serde(rename = "code_deployment")]
    CodeDeployment(CodeDeploymentRecord),
    #[serde(rename = "load_snapshot")]
    LoadSnapshot(LoadSnapshotRecord),
    #[serde(rename = "controllers_change")]
    ControllersChange(ControllersChangeRecord),
}

#[derive(CandidType, Deserialize, Debug, Clone)]
pub struct ChangeArg {
    pub timestamp_nanos: u64,
    pub canister_version: u64,
    pub origin: ChangeOriginArg,
    pub details: ChangeDetailsArg,
}

#[derive(CandidType, Deserialize, Debug, Clone)]
pub struct CanisterInfoResult {
    pub total_num_changes: u64,
    pub recent_changes: Vec<ChangeArg>,
    pub module_hash: Option<ByteBuf>,
    pub controllers: Vec<Principal>,
}

#[derive(CandidType, Deserialize, Debug, Clone)]
pub struct CanisterLogRecordArg {
    pub idx: u64,
    pub timestamp_nanos: u64,
    pub content: ByteBuf,
}

#[derive(CandidType, Deserialize, Debug, Clone)]
pub struct FetchCanisterLogsResult {
    pub canister_log_records: Vec<CanisterLogRecordArg>,
}

#[derive(CandidType, Deserialize, Debug, Clone)]
pub struct TakeCanisterSnapshotArgs {
    pub canister_id: Principal,
    pub replace_snapshot: Option<ByteBuf>,
    pub uninstall_code: Option<bool>,
    pub sender_canister_version: Option<u64>,
}

#[derive(CandidType, Deserialize, Debug, Clone)]
pub struct LoadCanisterSnapshotArgs {
    pub canister_id: Principal,
    pub snapshot_id: ByteBuf,
    pub sender_canister_version: Option<u64>,
}

#[derive(CandidType, Deserialize, Debug, Clone)]
pub struct DeleteCanisterSnapshotArgs {
    pub canister_id: Principal,
    pub snapshot_id: ByteBuf,
}

/// A snapshot as listed and returned by `take_canister_snapshot`.
#[derive(CandidType, Deserialize, Debug, Clone)]
pub struct SnapshotResult {
    pub id: ByteBuf,
    pub taken_at_timestamp: u64,
    pub total_size: u64,
}

#[derive(CandidType, Deserialize, Debug, Clone)]
pub struct CanisterMetadataArgs {
    pub canister_id: Principal,
    pub name: String,
}

#[derive(CandidType, Deserialize, Debug, Clone)]
pub struct CanisterMetadataResult {
    pub value: ByteBuf,
}

#[derive(CandidType, Deserialize, Debug, Clone)]
pub struct SubnetInfoArgs {
    pub subnet_id: Principal,
}

#[derive(CandidType, Deserialize, Debug, Clone)]
pub struct SubnetInfoResult {
    pub replica_version: String,
    pub registry_version: u64,
}

#[derive(CandidType, Deserialize, Debug, Clone)]
pub struct CanisterIdRange {
    pub start: Principal,
    pub end: Principal,
}

#[derive(CandidType, Deserialize, Debug, Clone)]
pub struct ListCanistersResult {
    pub canisters: Vec<CanisterIdRange>,
}

/// The record returned by the canister-creating methods.
#[derive(CandidType, Deserialize, Debug, Clone)]
pub struct CanisterIdResult {
    pub canister_id: Principal,
}
