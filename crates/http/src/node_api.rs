//! What the HTTP layer needs from a node. The node (crate `cairn-node`)
//! implements it; the HTTP layer never reaches into consensus or execution
//! by any other way.

use cairn_execution::Query;
use cairn_state_manager::CertifiedState;
use cairn_types::messages::{Ingress, WasmResult};
use cairn_types::{Height, NodeId, SubnetId, UserError};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// A boxed future, so the trait can be used as `Arc<dyn NodeApi>`.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Facts about the node that never change while it runs.
#[derive(Clone, Debug)]
pub struct NodeInfo {
    /// DER (133 bytes) of the network's root BLS key; on a one-subnet
    /// network it is the subnet's threshold key.
    pub root_key_der: Vec<u8>,
    /// This node's subnet: ECIDs outside its canister ranges get 404.
    pub subnet_id: SubnetId,
    /// This node's id: the `identity` of its query response signatures.
    pub node_id: NodeId,
    /// Shown as `impl_version` in `/api/v2/status`.
    pub impl_version: String,
}

/// Why the ingress pool did not take a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubmitError {
    /// Answered with 429 so that clients back off and retry.
    #[error("the ingress pool is full; retry later")]
    PoolFull,
    /// Answered with 503.
    #[error("the node is shutting down")]
    ShuttingDown,
}

/// An update call exactly as the client signed it, so that other nodes can
/// verify it themselves before it goes into a block: the nodes of a subnet
/// never trust each other's word that a request was authentic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedIngress {
    /// The request body (a CBOR envelope), byte for byte.
    pub envelope: Vec<u8>,
    /// The effective canister id from the URL, or the effective subnet id
    /// for subnet endpoints.
    pub effective_principal: cairn_types::Principal,
    /// Whether it arrived at a subnet endpoint (`/api/vN/subnet/<esid>/call`).
    pub subnet_target: bool,
}

/// The node as the HTTP layer sees it.
pub trait NodeApi: Send + Sync + 'static {
    /// Static facts.
    fn info(&self) -> &NodeInfo;

    /// The latest certified state, or `None` while the node is starting.
    fn certified_state(&self) -> Option<Arc<CertifiedState>>;

    /// Notified with the height of every newly certified state.
    fn subscribe_certified(&self) -> tokio::sync::watch::Receiver<Height>;

    /// `healthy` once a certified state exists, `starting` before
    /// (the `replica_health_status` of `/api/v2/status`).
    fn health(&self) -> &'static str;

    /// The admission checks a node runs before accepting ingress, including
    /// the canister's `canister_inspect_message`, against the latest state.
    fn check_ingress(&self, ingress: Ingress) -> BoxFuture<'static, Result<(), UserError>>;

    /// Puts a fully validated message (signature, expiry, admission checked)
    /// into the ingress pool, with the signed request it came from (which a
    /// multi-node subnet gossips to its peers). Duplicates are accepted and
    /// ignored.
    fn submit_ingress(&self, ingress: Ingress, signed: SignedIngress) -> Result<(), SubmitError>;

    /// Executes a query on `state`; the node hands the data certificate of
    /// that state to the called canister.
    fn query(&self, query: Query, state: Arc<CertifiedState>) -> BoxFuture<'static, Result<WasmResult, UserError>>;

    /// Signs bytes with the node's Ed25519 key (query response signatures).
    fn sign(&self, message: &[u8]) -> [u8; 64];

    /// The node's DER Ed25519 public key (published in the state tree).
    fn node_public_key_der(&self) -> Vec<u8>;

    /// The node's clock (ns since the epoch): used for expiry checks and
    /// query signature timestamps, never on the replicated path.
    fn now_nanos(&self) -> u64;
}
