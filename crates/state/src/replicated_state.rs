//! The replicated state of a subnet at one height.
//!
//! Every replica holds an identical copy after executing the same blocks;
//! [`ReplicatedState::state_hash`] lets tests (and later the determinism guard)
//! check that.

use crate::canister_state::{CanisterState, ExecutionState, GlobalValue, WasmBinary, WasmChunkStore};
use crate::page_map::Memory;
use crate::queues::CanisterQueues;
use cairn_types::messages::{IngressState, IngressStatus, MessageId};
use cairn_types::{
    CanisterId, CanisterIdRange, Cycles, Height, Principal, RegistryVersion, RoutingTable, SubnetId, Time,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::sync::Arc;

/// The kind of subnet, which decides fees and privileges.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SubnetType {
    Application,
    System,
    VerifiedApplication,
}

impl SubnetType {
    /// The text stored under `/subnet/<id>/type`.
    pub fn as_str(&self) -> &'static str {
        match self {
            SubnetType::Application => "application",
            SubnetType::System => "system",
            SubnetType::VerifiedApplication => "verified_application",
        }
    }
}

/// How long a final result stays readable after the message finished.
pub const INGRESS_RESULT_RETENTION_NANOS: u64 = 5 * 60 * 1_000_000_000;

/// Statuses of ingress messages.
///
/// A status is kept at least until the message's expiry (so the same request
/// can never run twice) and a final result for five minutes after it was
/// produced (so clients can read it); a message still in flight is never
/// forgotten.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IngressHistory {
    /// Persistent map: cloning a state is O(1) and two versions diff in
    /// time proportional to their difference (the certified tree relies on it).
    statuses: imbl::OrdMap<MessageId, IngressStatus>,
    /// Terminal statuses by the time they may be forgotten.
    by_prune_time: imbl::OrdMap<(Time, MessageId), ()>,
}

fn prune_time(status: &IngressStatus) -> Option<Time> {
    status.state.is_terminal().then(|| {
        status
            .expiry_time
            .max(status.time.saturating_add(std::time::Duration::from_nanos(INGRESS_RESULT_RETENTION_NANOS)))
    })
}

impl IngressHistory {
    /// The status of a message, if known.
    pub fn get(&self, id: &MessageId) -> Option<&IngressStatus> {
        self.statuses.get(id)
    }

    /// Sets the status of a message.
    pub fn set(&mut self, id: MessageId, status: IngressStatus) {
        if let Some(t) = self.statuses.get(&id).and_then(prune_time) {
            self.by_prune_time.remove(&(t, id));
        }
        if let Some(t) = prune_time(&status) {
            self.by_prune_time.insert((t, id), ());
        }
        self.statuses.insert(id, status);
    }

    /// Forgets every final status whose retention ended before `now`.
    /// Costs O(k log n) for k forgotten entries: it removes from the front of
    /// the time-ordered index and stops at the first entry still retained.
    pub fn prune(&mut self, now: Time) -> usize {
        let mut removed = 0;
        while let Some(((time, id), ())) = self.by_prune_time.get_min().cloned() {
            if time >= now {
                break;
            }
            self.by_prune_time.remove(&(time, id));
            self.statuses.remove(&id);
            removed += 1;
        }
        removed
    }

    /// The statuses that differ between `self` (older) and `newer`:
    /// `(id, Some(status))` for added or changed, `(id, None)` for removed.
    pub fn diff<'a>(
        &'a self,
        newer: &'a IngressHistory,
    ) -> impl Iterator<Item = (MessageId, Option<&'a IngressStatus>)> + 'a {
        self.statuses.diff(&newer.statuses).map(|item| match item {
            imbl::ordmap::DiffItem::Add(id, s) => (*id, Some(s)),
            imbl::ordmap::DiffItem::Update { new: (id, s), .. } => (*id, Some(s)),
            imbl::ordmap::DiffItem::Remove(id, _) => (*id, None),
        })
    }

    /// Number of statuses kept.
    pub fn len(&self) -> usize {
        self.statuses.len()
    }

    /// Whether no status is kept.
    pub fn is_empty(&self) -> bool {
        self.statuses.is_empty()
    }

    /// All statuses in id order.
    pub fn iter(&self) -> impl Iterator<Item = (&MessageId, &IngressStatus)> {
        self.statuses.iter()
    }

    /// Number of messages in a non-terminal state.
    pub fn num_pending(&self) -> usize {
        self.statuses.values().filter(|s| !s.state.is_terminal()).count()
    }

    /// Whether a message with this id was already seen and is still remembered.
    pub fn contains(&self, id: &MessageId) -> bool {
        self.statuses.contains_key(id)
    }

    /// Replaces terminal results older than `before` by `Done` to save space.
    pub fn forget_results_before(&mut self, before: Time) {
        let old: Vec<MessageId> = self
            .statuses
            .iter()
            .filter(|(_, s)| s.time < before && matches!(s.state, IngressState::Completed(_) | IngressState::Failed(_)))
            .map(|(id, _)| *id)
            .collect();
        for id in old {
            if let Some(status) = self.statuses.get_mut(&id) {
                status.state = IngressState::Done;
            }
        }
    }
}

/// A canister snapshot: everything `load_canister_snapshot` restores.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CanisterSnapshot {
    pub canister_id: CanisterId,
    pub taken_at: Time,
    pub canister_version: u64,
    pub wasm_binary: Arc<WasmBinary>,
    #[serde(skip)]
    pub wasm_memory: Memory,
    #[serde(skip)]
    pub stable_memory: Memory,
    pub exported_globals: Vec<GlobalValue>,
    #[serde(with = "serde_bytes")]
    pub certified_data: Vec<u8>,
    pub wasm_chunk_store: WasmChunkStore,
    pub global_timer: Option<Time>,
    /// The full execution state at the time (memories live in the fields above).
    pub execution_state_meta: ExecutionState,
}

impl CanisterSnapshot {
    /// Bytes the snapshot occupies (reported as `total_size`).
    pub fn size_bytes(&self) -> u64 {
        self.wasm_binary.bytes.len() as u64
            + self.wasm_memory.size_bytes()
            + self.stable_memory.size_bytes()
            + self.exported_globals.len() as u64 * 8
            + self.certified_data.len() as u64
            + self.wasm_chunk_store.size_bytes()
    }
}

/// Subnet-wide metadata.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SystemMetadata {
    pub own_subnet_id: SubnetId,
    pub own_subnet_type: SubnetType,
    /// Number of nodes the fees are computed for (fees scale with subnet size).
    pub cost_subnet_size: u32,
    pub routing_table: RoutingTable,
    pub registry_version: RegistryVersion,
    /// Height of the last executed batch.
    pub height: Height,
    /// Time of the last executed batch.
    pub batch_time: Time,
    /// Next index handed out inside `canister_allocation_range`.
    pub next_canister_index: u64,
    /// The canister ids this subnet mints new canisters from.
    pub canister_allocation_range: CanisterIdRange,
    pub ingress_history: IngressHistory,
    /// The network's root public key (DER), as returned by `ic0.root_key_copy`.
    #[serde(with = "serde_bytes")]
    pub root_key: Vec<u8>,
    /// Principals allowed to create canisters by ingress on this subnet.
    pub subnet_admins: Vec<Principal>,
    pub next_snapshot_local_id: u64,
    pub consumed_cycles_total: Cycles,
    pub update_transactions_total: u64,
    /// Counter mixed into `raw_rand` so each call in one batch differs.
    pub raw_rand_counter: u64,
}

/// First canister index handed out on a local subnet: the same first id
/// (`bkyz2-fmaaa-aaaaa-qaaaq-cai`) developers know from local development.
pub const FIRST_USER_CANISTER_INDEX: u64 = 0x8000_0000_0010_0001;
/// Canister ids available for automatic allocation (2^20, like one IC range).
pub const CANISTER_ALLOCATION_RANGE: (u64, u64) = (0x8000_0000_0010_0000, 0x8000_0000_001F_FFFF);

impl SystemMetadata {
    /// Metadata of a network with a single subnet that hosts every canister id:
    /// system canisters can be created at their mainnet ids, user canisters
    /// are allocated from [`CANISTER_ALLOCATION_RANGE`].
    pub fn single_subnet(
        own_subnet_id: SubnetId,
        subnet_type: SubnetType,
        cost_subnet_size: u32,
        root_key: Vec<u8>,
    ) -> Self {
        let mut routing_table = RoutingTable::new();
        let everything = CanisterIdRange { start: CanisterId::from_u64(0), end: CanisterId::from_u64(u64::MAX) };
        routing_table.insert(everything, own_subnet_id).expect("an empty table accepts any range");
        SystemMetadata {
            own_subnet_id,
            own_subnet_type: subnet_type,
            cost_subnet_size,
            routing_table,
            registry_version: RegistryVersion(1),
            height: Height(0),
            batch_time: Time::EPOCH,
            next_canister_index: FIRST_USER_CANISTER_INDEX,
            canister_allocation_range: CanisterIdRange {
                start: CanisterId::from_u64(CANISTER_ALLOCATION_RANGE.0),
                end: CanisterId::from_u64(CANISTER_ALLOCATION_RANGE.1),
            },
            ingress_history: IngressHistory::default(),
            root_key,
            subnet_admins: Vec::new(),
            next_snapshot_local_id: 0,
            consumed_cycles_total: Cycles::ZERO,
            update_transactions_total: 0,
            raw_rand_counter: 0,
        }
    }
}

/// The replicated state of a subnet.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReplicatedState {
    pub metadata: SystemMetadata,
    pub canisters: BTreeMap<CanisterId, CanisterState>,
    /// Requests and ingress addressed to the management canister.
    pub subnet_queues: CanisterQueues,
    pub snapshots: BTreeMap<Vec<u8>, CanisterSnapshot>,
}

impl ReplicatedState {
    /// An empty state for a subnet.
    pub fn new(metadata: SystemMetadata) -> Self {
        ReplicatedState {
            metadata,
            canisters: BTreeMap::new(),
            subnet_queues: CanisterQueues::default(),
            snapshots: BTreeMap::new(),
        }
    }

    /// A canister by id.
    pub fn canister(&self, id: &CanisterId) -> Option<&CanisterState> {
        self.canisters.get(id)
    }

    /// A mutable canister by id.
    pub fn canister_mut(&mut self, id: &CanisterId) -> Option<&mut CanisterState> {
        self.canisters.get_mut(id)
    }

    /// Total memory used by all canisters and snapshots.
    pub fn total_memory_usage(&self) -> u64 {
        self.canisters.values().map(|c| c.memory_usage()).sum::<u64>()
            + self.snapshots.values().map(|s| s.size_bytes()).sum::<u64>()
    }

    /// A hash of the entire state, memory contents included. Two replicas that
    /// executed the same batches must produce the same value.
    ///
    /// Encoding: SHA-256 over a domain separator, then for each part the
    /// postcard 1.x encoding of its (BTreeMap-ordered, float-free) structure,
    /// with memories replaced by their content hashes.
    pub fn state_hash(&self) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(b"\x0fcairn-state-v01");
        hash_part(&mut h, &self.metadata);
        hash_part(&mut h, &self.subnet_queues);
        for (id, canister) in &self.canisters {
            h.update(id.as_slice());
            hash_part(&mut h, &canister.system_state);
            match &canister.execution_state {
                None => h.update([0u8]),
                Some(e) => {
                    h.update([1u8]);
                    hash_part(&mut h, e);
                    hash_memory(&mut h, &e.wasm_memory);
                    hash_memory(&mut h, &e.stable_memory);
                }
            }
        }
        for (id, snapshot) in &self.snapshots {
            h.update(id);
            hash_part(&mut h, snapshot);
            hash_memory(&mut h, &snapshot.wasm_memory);
            hash_memory(&mut h, &snapshot.stable_memory);
        }
        h.finalize().into()
    }
}

fn hash_part<T: Serialize>(h: &mut Sha256, value: &T) {
    let bytes = postcard::to_stdvec(value).expect("state types serialize infallibly");
    h.update((bytes.len() as u64).to_be_bytes());
    h.update(&bytes);
}

fn hash_memory(h: &mut Sha256, memory: &Memory) {
    h.update(memory.size_wasm_pages.to_be_bytes());
    h.update(memory.page_map.content_hash());
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_types::messages::IngressState;

    fn status(state: IngressState, time_s: u64, expiry_s: u64) -> IngressStatus {
        IngressStatus {
            receiver: CanisterId::from_u64(0),
            effective_canister_id: CanisterId::from_u64(0),
            user: Principal::ANONYMOUS,
            time: Time::from_secs(time_s),
            state,
            expiry_time: Time::from_secs(expiry_s),
        }
    }

    #[test]
    fn ingress_history_keeps_results_and_in_flight_messages() {
        let done = || IngressState::Completed(cairn_types::messages::WasmResult::Reply(vec![]));
        let mut h = IngressHistory::default();
        let (a, b, c) = (MessageId([1; 32]), MessageId([2; 32]), MessageId([3; 32]));
        h.set(a, status(IngressState::Received, 0, 100));
        h.set(a, status(done(), 10, 100));
        h.set(b, status(IngressState::Processing, 10, 100));
        h.set(c, status(done(), 10, 1000));
        // `a` finished at 10 s: kept until max(expiry 100 s, 10 s + 300 s).
        assert_eq!(h.prune(Time::from_secs(309)), 0);
        assert_eq!(h.prune(Time::from_secs(311)), 1);
        assert!(!h.contains(&a));
        // In flight: never pruned. Expiry later than retention: kept until expiry.
        assert_eq!(h.prune(Time::from_secs(999)), 0);
        assert!(h.contains(&b) && h.contains(&c));
        assert_eq!(h.prune(Time::from_secs(1001)), 1);
        assert!(h.contains(&b));
    }
}
