//! Builds the certified state tree of the interface spec from the
//! replicated state, incrementally: each height only touches what changed.
//!
//! ```text
//! /time                                   LEB128 nanoseconds
//! /subnet/<sid>/public_key                DER of the subnet's threshold BLS key
//! /subnet/<sid>/type                      "application" | "system" | ...
//! /subnet/<sid>/canister_ranges           CBOR [[lo, hi], ...]
//! /subnet/<sid>/node/<nid>/public_key     DER Ed25519 key
//! /subnet/<sid>/metrics                   CBOR map
//! /canister_ranges/<sid>/<start>          CBOR [[lo, hi], ...] (one shard)
//! /request_status/<rid>/{status, reply, reject_code, reject_message, error_code}
//! /canister/<cid>/{certified_data, module_hash, controllers, metadata/<name>,
//!                  canister_creation_timestamp, last_install_timestamp}
//! ```

use crate::certified_tree::{Subtree, TreeMap};
use cairn_crypto::certificate::encode_canister_ranges;
use cairn_crypto::request_id::leb128;
use cairn_state::{CanisterState, IngressHistory, ReplicatedState, SubnetType};
use cairn_types::messages::{IngressState, IngressStatus, MessageId, WasmResult};
use cairn_types::{CanisterId, CanisterIdRange, NodeId, Principal, SubnetId};
use ciborium::Value as Cbor;
use std::collections::BTreeMap;

/// What the state tree says about the subnet that is not in the replicated
/// state (it comes from the registry).
#[derive(Clone, Debug)]
pub struct SubnetTreeInfo {
    pub subnet_id: SubnetId,
    /// DER (133 bytes) of the subnet's threshold BLS public key.
    pub public_key_der: Vec<u8>,
    pub subnet_type: SubnetType,
    pub canister_ranges: Vec<CanisterIdRange>,
    /// Every node of the subnet with its DER Ed25519 signing key.
    pub nodes: Vec<(NodeId, Vec<u8>)>,
}

/// The certified fields of one canister, to detect changes cheaply.
#[derive(Clone, PartialEq, Eq)]
struct CanisterEntry {
    certified_data: Vec<u8>,
    module_hash: Option<[u8; 32]>,
    controllers: Vec<Principal>,
    creation: u64,
    last_install: Option<u64>,
}

impl CanisterEntry {
    fn of(c: &CanisterState) -> Self {
        let s = &c.system_state;
        CanisterEntry {
            certified_data: s.certified_data.clone(),
            module_hash: c.module_hash(),
            controllers: s.controllers.iter().copied().collect(),
            creation: s.creation_time.as_nanos(),
            last_install: s.last_install_time.map(|t| t.as_nanos()),
        }
    }
}

fn tagged(value: Cbor) -> Vec<u8> {
    let mut out = Vec::new();
    ciborium::into_writer(&Cbor::Tag(55799, Box::new(value)), &mut out).expect("CBOR to a Vec never fails");
    out
}

fn text_map(entries: Vec<(&str, Cbor)>) -> Cbor {
    Cbor::Map(entries.into_iter().map(|(k, v)| (Cbor::Text(k.into()), v)).collect())
}

/// Keeps the state tree of the latest height and moves it forward.
pub struct StateTreeBuilder {
    info: SubnetTreeInfo,
    root: TreeMap,
    history: IngressHistory,
    canisters: BTreeMap<CanisterId, CanisterEntry>,
}

impl StateTreeBuilder {
    /// The subnet facts the tree was built with.
    pub fn info(&self) -> &SubnetTreeInfo {
        &self.info
    }

    /// A builder for a subnet; the static parts of the tree are built here.
    pub fn new(info: SubnetTreeInfo) -> Self {
        let mut root = TreeMap::new();
        let sid = info.subnet_id.as_slice().to_vec();
        let ranges = encode_canister_ranges(&info.canister_ranges);
        let mut nodes = TreeMap::new();
        for (nid, key) in &info.nodes {
            let mut node = TreeMap::new();
            node.insert(b"public_key".to_vec(), Subtree::leaf(key.clone()));
            nodes.insert(nid.as_slice().to_vec(), Subtree::Map(node));
        }
        let mut subnet = TreeMap::new();
        subnet.insert(b"public_key".to_vec(), Subtree::leaf(info.public_key_der.clone()));
        subnet.insert(b"type".to_vec(), Subtree::leaf(info.subnet_type.as_str().as_bytes().to_vec()));
        subnet.insert(b"canister_ranges".to_vec(), Subtree::leaf(ranges));
        subnet.insert(b"node".to_vec(), Subtree::Map(nodes));
        let mut subnets = TreeMap::new();
        subnets.insert(sid.clone(), Subtree::Map(subnet));
        root.insert(b"subnet".to_vec(), Subtree::Map(subnets));
        // Sharded ranges: one shard per range, labeled by its start.
        let mut shards = TreeMap::new();
        for r in &info.canister_ranges {
            shards.insert(r.start.as_slice().to_vec(), Subtree::leaf(encode_canister_ranges(std::slice::from_ref(r))));
        }
        let mut by_subnet = TreeMap::new();
        by_subnet.insert(sid, Subtree::Map(shards));
        root.insert(b"canister_ranges".to_vec(), Subtree::Map(by_subnet));
        root.insert(b"request_status".to_vec(), Subtree::Map(TreeMap::new()));
        root.insert(b"canister".to_vec(), Subtree::Map(TreeMap::new()));
        StateTreeBuilder { info, root, history: IngressHistory::default(), canisters: BTreeMap::new() }
    }

    /// Brings the tree to `state` and returns it. Costs O(changes · log n).
    pub fn update(&mut self, state: &ReplicatedState) -> TreeMap {
        let meta = &state.metadata;
        self.root.insert(b"time".to_vec(), Subtree::leaf(leb128(meta.batch_time.as_nanos())));
        self.update_request_status(&meta.ingress_history);
        self.update_canisters(state);
        self.update_metrics(state);
        self.root.clone()
    }

    fn map_at(&self, label: &[u8]) -> TreeMap {
        match self.root.get(label) {
            Some(Subtree::Map(m)) => m.clone(),
            _ => TreeMap::new(),
        }
    }

    fn update_request_status(&mut self, history: &IngressHistory) {
        let mut statuses = self.map_at(b"request_status");
        for (id, status) in self.history.diff(history) {
            match status {
                Some(s) => statuses.insert(id.as_bytes().to_vec(), Subtree::Map(request_status_subtree(s))),
                None => {
                    statuses.remove(id.as_bytes());
                }
            }
        }
        self.history = history.clone();
        self.root.insert(b"request_status".to_vec(), Subtree::Map(statuses));
    }

    fn update_canisters(&mut self, state: &ReplicatedState) {
        let mut canisters = self.map_at(b"canister");
        let mut changed = false;
        for (id, c) in &state.canisters {
            let entry = CanisterEntry::of(c);
            if self.canisters.get(id) == Some(&entry) {
                continue;
            }
            canisters.insert(id.as_slice().to_vec(), Subtree::Map(canister_subtree(c, &entry)));
            self.canisters.insert(*id, entry);
            changed = true;
        }
        let gone: Vec<CanisterId> =
            self.canisters.keys().filter(|id| !state.canisters.contains_key(id)).copied().collect();
        for id in gone {
            canisters.remove(id.as_slice());
            self.canisters.remove(&id);
            changed = true;
        }
        if changed {
            self.root.insert(b"canister".to_vec(), Subtree::Map(canisters));
        }
    }

    fn update_metrics(&mut self, state: &ReplicatedState) {
        let consumed = state.metadata.consumed_cycles_total.get();
        let mut cycles = vec![("low", Cbor::Integer((consumed as u64).into()))];
        if consumed >> 64 != 0 {
            cycles.push(("high", Cbor::Integer(((consumed >> 64) as u64).into())));
        }
        let metrics = tagged(text_map(vec![
            ("num_canisters", Cbor::Integer((state.canisters.len() as u64).into())),
            ("canister_state_bytes", Cbor::Integer(state.total_memory_usage().into())),
            ("consumed_cycles_total", text_map(cycles)),
            ("update_transactions_total", Cbor::Integer(state.metadata.update_transactions_total.into())),
        ]));
        let sid = self.info.subnet_id.as_slice().to_vec();
        let mut subnets = self.map_at(b"subnet");
        let Some(Subtree::Map(mut subnet)) = subnets.get(&sid).cloned() else { return };
        subnet.insert(b"metrics".to_vec(), Subtree::leaf(metrics));
        subnets.insert(sid, Subtree::Map(subnet));
        self.root.insert(b"subnet".to_vec(), Subtree::Map(subnets));
    }
}

fn request_status_subtree(s: &IngressStatus) -> TreeMap {
    let mut m = TreeMap::new();
    m.insert(b"status".to_vec(), Subtree::leaf(s.state.status_text().as_bytes().to_vec()));
    match &s.state {
        IngressState::Completed(WasmResult::Reply(data)) => m.insert(b"reply".to_vec(), Subtree::leaf(data.clone())),
        other => {
            if let Some((code, message, error_code)) = other.reject() {
                m.insert(b"reject_code".to_vec(), Subtree::leaf(leb128(code.as_u32() as u64)));
                m.insert(b"reject_message".to_vec(), Subtree::leaf(message.into_bytes()));
                m.insert(b"error_code".to_vec(), Subtree::leaf(error_code.to_string().into_bytes()));
            }
        }
    }
    m
}

fn canister_subtree(c: &CanisterState, entry: &CanisterEntry) -> TreeMap {
    let mut m = TreeMap::new();
    m.insert(b"certified_data".to_vec(), Subtree::leaf(entry.certified_data.clone()));
    let controllers = Cbor::Array(entry.controllers.iter().map(|p| Cbor::Bytes(p.as_slice().to_vec())).collect());
    m.insert(b"controllers".to_vec(), Subtree::leaf(tagged(controllers)));
    m.insert(b"canister_creation_timestamp".to_vec(), Subtree::leaf(leb128(entry.creation)));
    if let Some(t) = entry.last_install {
        m.insert(b"last_install_timestamp".to_vec(), Subtree::leaf(leb128(t)));
    }
    if let Some(exec) = &c.execution_state {
        m.insert(b"module_hash".to_vec(), Subtree::leaf(exec.wasm_binary.hash.to_vec()));
        let mut metadata = TreeMap::new();
        for (name, section) in &exec.metadata {
            metadata.insert(name.as_bytes().to_vec(), Subtree::leaf(section.content.clone()));
        }
        if !metadata.is_empty() {
            m.insert(b"metadata".to_vec(), Subtree::Map(metadata));
        }
    }
    m
}

/// The request id as a label.
pub fn request_status_path(id: &MessageId, field: &str) -> Vec<Vec<u8>> {
    vec![b"request_status".to_vec(), id.as_bytes().to_vec(), field.as_bytes().to_vec()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::certification::CertifiedState;
    use cairn_crypto::bls;
    use cairn_crypto::certificate::{Certificate, Scope, state_root_message, verify_certificate};
    use cairn_crypto::hash_tree::LookupResult;
    use cairn_state::SystemMetadata;
    use cairn_state::canister_state::{CanisterSettings, SystemState};
    use cairn_types::{Cycles, ErrorCode, Time, UserError};
    use std::sync::Arc;

    fn info(key: &bls::SecretKey) -> SubnetTreeInfo {
        let der = key.public_key().to_der().to_vec();
        SubnetTreeInfo {
            subnet_id: SubnetId(Principal::self_authenticating(&der)),
            public_key_der: der,
            subnet_type: SubnetType::Application,
            canister_ranges: vec![CanisterIdRange {
                start: CanisterId::from_u64(0),
                end: CanisterId::from_u64(u64::MAX),
            }],
            nodes: vec![(NodeId(Principal::self_authenticating(b"node")), vec![7; 44])],
        }
    }

    fn status(state: IngressState) -> IngressStatus {
        IngressStatus {
            receiver: CanisterId::from_u64(1),
            effective_canister_id: CanisterId::from_u64(1),
            user: Principal::ANONYMOUS,
            time: Time::from_secs(1),
            state,
            expiry_time: Time::from_secs(100),
        }
    }

    #[test]
    fn certificates_verify_and_answer_lookups_like_a_fresh_build() {
        let key = bls::SecretKey::from_seed([3; 32]);
        let info = info(&key);
        let mut state =
            ReplicatedState::new(SystemMetadata::single_subnet(info.subnet_id, SubnetType::Application, 13, vec![]));
        state.metadata.batch_time = Time::from_secs(10);
        let cid = CanisterId::from_u64(5);
        let mut sys = SystemState::new(
            cid,
            [Principal::ANONYMOUS].into(),
            Cycles::new(1),
            CanisterSettings::default(),
            Time::from_secs(1),
        );
        sys.certified_data = vec![9; 32];
        state.canisters.insert(cid, CanisterState { system_state: sys, execution_state: None });
        let mut builder = StateTreeBuilder::new(info.clone());
        let (a, b) = (MessageId([1; 32]), MessageId([2; 32]));
        state.metadata.ingress_history.set(a, status(IngressState::Received));
        builder.update(&state);
        state.metadata.ingress_history.set(a, status(IngressState::Completed(WasmResult::Reply(b"hi".to_vec()))));
        state
            .metadata
            .ingress_history
            .set(b, status(IngressState::Failed(UserError::new(ErrorCode::CanisterCalledTrap, "boom"))));
        state.metadata.batch_time = Time::from_secs(11);
        let tree = builder.update(&state);
        // Incremental equals a fresh build of the same state.
        assert_eq!(tree.hash(), StateTreeBuilder::new(info.clone()).update(&state).hash());
        let signature = key.sign(&state_root_message(&tree.hash())).to_bytes().to_vec();
        let certified = CertifiedState { height: cairn_types::Height(2), state: Arc::new(state), tree, signature };
        let bytes = certified.certificate(&[
            request_status_path(&a, "status").into_iter().take(2).collect(),
            vec![b"request_status".to_vec(), b.as_bytes().to_vec()],
            vec![b"request_status".to_vec(), vec![3; 32]],
        ]);
        let cert = Certificate::from_cbor(&bytes).unwrap();
        verify_certificate(&cert, &info.public_key_der, Scope::Unchecked, None).unwrap();
        let t = &cert.tree;
        assert_eq!(t.lookup_path(&[&b"request_status"[..], &a.0, b"reply"]), LookupResult::Found(b"hi"));
        assert_eq!(t.lookup_path(&[&b"request_status"[..], &b.0, b"error_code"]), LookupResult::Found(b"IC0503"));
        assert_eq!(t.lookup_path(&[&b"request_status"[..], &b.0, b"reject_code"]), LookupResult::Found(&[5]));
        assert_eq!(t.lookup_path(&[&b"request_status"[..], &[3u8; 32][..], b"status"]), LookupResult::Absent);
        assert_eq!(t.lookup_path(&[b"time"]), LookupResult::Found(&leb128(11_000_000_000)));
        let data = CertificateRef(certified.data_certificate(&cid));
        assert_eq!(data.lookup(&[&b"canister"[..], cid.as_slice(), b"certified_data"]), Some(vec![9; 32]));
    }

    struct CertificateRef(Vec<u8>);
    impl CertificateRef {
        fn lookup(&self, path: &[&[u8]]) -> Option<Vec<u8>> {
            match Certificate::from_cbor(&self.0).unwrap().tree.lookup_path(path) {
                LookupResult::Found(v) => Some(v.to_vec()),
                _ => None,
            }
        }
    }
}
