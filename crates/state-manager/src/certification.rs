//! A state at a height together with the signature that certifies it.

use crate::certified_tree::TreeMap;
use cairn_crypto::certificate::Certificate;
use cairn_state::ReplicatedState;
use cairn_types::{CanisterId, Height};
use std::sync::Arc;

/// A state whose tree root was signed by the subnet's threshold key.
#[derive(Clone)]
pub struct CertifiedState {
    pub height: Height,
    pub state: Arc<ReplicatedState>,
    pub tree: TreeMap,
    /// Combined threshold BLS signature (48 bytes) on the tree's root.
    pub signature: Vec<u8>,
}

impl CertifiedState {
    /// A CBOR certificate revealing `paths` (and always `/time`).
    pub fn certificate(&self, paths: &[Vec<Vec<u8>>]) -> Vec<u8> {
        let mut paths = paths.to_vec();
        paths.push(vec![b"time".to_vec()]);
        let tree = self.tree.witness(&paths);
        Certificate { tree, signature: self.signature.clone(), delegation: None }.to_cbor()
    }

    /// The data certificate handed to a canister's non-replicated query:
    /// its `certified_data` and `/time`.
    pub fn data_certificate(&self, canister: &CanisterId) -> Vec<u8> {
        self.certificate(&[vec![b"canister".to_vec(), canister.as_slice().to_vec(), b"certified_data".to_vec()]])
    }
}
