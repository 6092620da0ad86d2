//! One Cairn replica, wired together.
//!
//! ```text
//! HTTP ──▶ ingress pool ──▶ block ──▶ block log ──▶ execution ──▶ state tree ──▶ certification
//!  ▲                                                                                   │
//!  └──────────────── certified state (queries, read_state, sync calls) ◀───────────────┘
//! ```
//!
//! [`Node::start`] restores the state (latest checkpoint plus the logged
//! blocks after it), certifies it, and starts the replica loop, the query
//! threads and the background checkpoint writer. The HTTP layer reaches the
//! node only through [`cairn_http::NodeApi`], implemented by [`NodeHandle`].

pub mod block;
pub mod checkpoint;
pub mod ingress_pool;
pub mod metrics;
mod query_pool;
pub mod replica;
pub mod store;

use cairn_crypto::node_key::NodeSigningKey;
use cairn_execution::{ExecutionConfig, ExecutionEnvironment, Query};
use cairn_http::{BoxFuture, NodeApi, NodeInfo, SubmitError};
use cairn_registry::{NodeSecrets, Registry};
use cairn_state::{ReplicatedState, SystemMetadata};
use cairn_state_manager::{CertifiedState, StateTreeBuilder, SubnetTreeInfo};
use cairn_types::messages::{Ingress, WasmResult};
use cairn_types::{ErrorCode, Height, UserError};
use checkpoint::Checkpoints;
use ingress_pool::{IngressPool, PoolLimits};
use metrics::NodeMetrics;
use parking_lot::{Condvar, Mutex, RwLock};
use replica::{Certifier, Replica, ReplicaParams};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use store::BlockStore;

/// Why the node could not start or had to stop.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error(transparent)]
    Store(#[from] store::StoreError),
    #[error(transparent)]
    Checkpoint(#[from] checkpoint::CheckpointError),
    #[error(transparent)]
    Registry(#[from] cairn_registry::RegistryError),
    #[error("cannot start the Wasm engine: {0}")]
    Engine(String),
    #[error("crypto: {0}")]
    Crypto(String),
    #[error("recovery failed: {0}")]
    Recovery(String),
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
}

/// How to run a node.
#[derive(Clone)]
pub struct NodeConfig {
    /// Where this node keeps its block log and checkpoints.
    pub data_dir: PathBuf,
    pub registry: Registry,
    pub secrets: NodeSecrets,
    pub execution: ExecutionConfig,
    pub replica: ReplicaParams,
    pub pool: PoolLimits,
    pub query_threads: usize,
}

impl NodeConfig {
    /// Defaults for everything but the identity.
    pub fn new(data_dir: PathBuf, registry: Registry, secrets: NodeSecrets) -> Self {
        let consensus = registry.subnet_of(&secrets.node_id).map(|s| s.consensus.clone()).unwrap_or_default();
        NodeConfig {
            data_dir,
            registry,
            secrets,
            execution: ExecutionConfig::default(),
            replica: ReplicaParams {
                idle_block_interval: Duration::from_millis(consensus.unit_delay_ms),
                checkpoint_interval: 500,
                max_ingress_messages_per_block: consensus.max_ingress_messages_per_block,
                max_ingress_bytes_per_block: consensus.max_ingress_bytes_per_block,
            },
            pool: PoolLimits::default(),
            query_threads: 2,
        }
    }
}

/// State shared between the replica loop and the HTTP-facing handle.
pub(crate) struct Shared {
    pub(crate) pool: Mutex<IngressPool>,
    pub(crate) wake: Condvar,
    pub(crate) certified: RwLock<Option<Arc<CertifiedState>>>,
    pub(crate) certified_tx: tokio::sync::watch::Sender<Height>,
    pub(crate) shutdown: AtomicBool,
}

/// The node as the HTTP layer uses it.
pub struct NodeHandle {
    shared: Arc<Shared>,
    info: NodeInfo,
    signing_key: NodeSigningKey,
    jobs: crossbeam_channel::Sender<query_pool::Job>,
    metrics: NodeMetrics,
}

/// A running node.
pub struct Node {
    handle: Arc<NodeHandle>,
    threads: Vec<std::thread::JoinHandle<()>>,
    checkpoint_thread: Option<std::thread::JoinHandle<()>>,
}

fn genesis_state(registry: &Registry, subnet: &cairn_registry::SubnetRecord) -> ReplicatedState {
    let mut meta = SystemMetadata::single_subnet(
        subnet.subnet_id,
        subnet.subnet_type,
        subnet.cost_subnet_size,
        registry.root_key_der().to_vec(),
    );
    meta.routing_table = registry.routing_table.clone();
    meta.registry_version = registry.version;
    meta.subnet_admins = subnet.admins.clone();
    ReplicatedState::new(meta)
}

impl Node {
    /// Restores the state, certifies it and starts serving.
    pub fn start(config: NodeConfig) -> Result<Node, NodeError> {
        let node_id = config.secrets.node_id;
        let registry = &config.registry;
        let subnet = registry.subnet_of(&node_id).ok_or(cairn_registry::RegistryError::UnknownNode(node_id))?.clone();
        std::fs::create_dir_all(&config.data_dir)?;
        let store = Arc::new(BlockStore::open(&config.data_dir.join("blocks.redb"))?);
        let checkpoints = Arc::new(Checkpoints::open(config.data_dir.join("checkpoints"))?);
        let (state, last_block_hash) = match checkpoints.load_latest()? {
            Some(r) => {
                tracing::info!(height = %r.height, "restored checkpoint");
                (r.state, r.block_hash)
            }
            None => (genesis_state(registry, &subnet), [0; 32]),
        };
        let env = ExecutionEnvironment::new(config.execution.clone()).map_err(|e| NodeError::Engine(e.to_string()))?;
        let engine = env.shared_engine();
        let tree_info = SubnetTreeInfo {
            subnet_id: subnet.subnet_id,
            public_key_der: subnet.public_key_der.clone(),
            subnet_type: subnet.subnet_type,
            canister_ranges: registry.routing_table.ranges_of(&subnet.subnet_id),
            nodes: subnet
                .members
                .iter()
                .filter_map(|n| registry.nodes.get(n))
                .map(|r| (r.node_id, r.signing_key_der.clone()))
                .collect(),
        };
        let (certified_tx, _) = tokio::sync::watch::channel(Height(0));
        let shared = Arc::new(Shared {
            pool: Mutex::new(IngressPool::new(config.pool)),
            wake: Condvar::new(),
            certified: RwLock::new(None),
            certified_tx,
            shutdown: AtomicBool::new(false),
        });
        let metrics = NodeMetrics::default();
        let certifier = Certifier {
            key_share: config.secrets.threshold_key()?,
            index: config.secrets.threshold_index as cairn_crypto::bls::NodeIndex,
            threshold: subnet.threshold,
        };
        let (checkpoint_tx, checkpoint_rx) = crossbeam_channel::bounded(1);
        let mut replica = Replica {
            env,
            state,
            last_block_hash,
            builder: StateTreeBuilder::new(tree_info),
            store: store.clone(),
            checkpoints: checkpoints.clone(),
            certifier,
            shared: shared.clone(),
            params: config.replica.clone(),
            checkpoint_tx,
            metrics: metrics.clone(),
        };
        // Recovery executes Wasm, so it runs on an execution thread too.
        let replica_thread = cairn_wasm::spawn_execution_thread("replica".into(), move || match replica.recover() {
            Ok(()) => replica.run(),
            Err(e) => {
                tracing::error!("{e}");
                replica.shared.shutdown.store(true, Ordering::Release);
                replica.shared.certified_tx.send_replace(Height(u64::MAX));
            }
        })?;
        // Wait until the restored state is certified (or recovery failed).
        while shared.certified.read().is_none() && !shared.shutdown.load(Ordering::Acquire) {
            std::thread::sleep(Duration::from_millis(2));
        }
        if shared.certified.read().is_none() {
            let _ = replica_thread.join();
            return Err(NodeError::Recovery("the replica did not come up; see the log".into()));
        }
        let (jobs, query_threads) = query_pool::start(config.query_threads, config.execution.clone(), engine)?;
        let checkpoint_thread = {
            let (checkpoints, store, metrics) = (checkpoints.clone(), store.clone(), metrics.clone());
            std::thread::Builder::new()
                .name("checkpoints".into())
                .spawn(move || replica::checkpoint_writer(checkpoint_rx, checkpoints, store, metrics))?
        };
        let signing_key = config.secrets.signing_key();
        let info = NodeInfo {
            root_key_der: registry.root_key_der().to_vec(),
            subnet_id: subnet.subnet_id,
            node_id,
            impl_version: env!("CARGO_PKG_VERSION").to_string(),
        };
        let handle = Arc::new(NodeHandle { shared, info, signing_key, jobs, metrics });
        let mut threads = vec![replica_thread];
        threads.extend(query_threads);
        Ok(Node { handle, threads, checkpoint_thread: Some(checkpoint_thread) })
    }

    /// The handle the HTTP layer uses.
    pub fn api(&self) -> Arc<NodeHandle> {
        self.handle.clone()
    }

    /// The node's metrics, to register with the HTTP layer's registry.
    pub fn metrics(&self) -> &NodeMetrics {
        &self.handle.metrics
    }

    /// Stops the replica (after its current round, with a final checkpoint)
    /// and the worker threads.
    pub fn shutdown(mut self) {
        self.handle.shared.shutdown.store(true, Ordering::Release);
        self.handle.shared.wake.notify_all();
        // Query threads stop when the last sender of their queue is dropped;
        // the HTTP layer may still hold handles, so only the replica is joined.
        if let Some(replica) = (!self.threads.is_empty()).then(|| self.threads.remove(0)) {
            let _ = replica.join();
        }
        drop(self.checkpoint_thread.take());
    }
}

fn starting() -> UserError {
    UserError::new(ErrorCode::CertifiedStateUnavailable, "The node is starting: no certified state is available yet.")
}

impl NodeApi for NodeHandle {
    fn info(&self) -> &NodeInfo {
        &self.info
    }

    fn certified_state(&self) -> Option<Arc<CertifiedState>> {
        self.shared.certified.read().clone()
    }

    fn subscribe_certified(&self) -> tokio::sync::watch::Receiver<Height> {
        self.shared.certified_tx.subscribe()
    }

    fn health(&self) -> &'static str {
        if self.shared.certified.read().is_some() { "healthy" } else { "starting" }
    }

    fn check_ingress(&self, ingress: Ingress) -> BoxFuture<'static, Result<(), UserError>> {
        let state = self.certified_state();
        let jobs = self.jobs.clone();
        Box::pin(async move {
            let state = state.ok_or_else(starting)?;
            let (reply, rx) = tokio::sync::oneshot::channel();
            jobs.try_send(query_pool::Job::Inspect { ingress, state, reply }).map_err(|_| overloaded())?;
            rx.await.map_err(|_| overloaded())?
        })
    }

    fn submit_ingress(&self, ingress: Ingress) -> Result<(), SubmitError> {
        if self.shared.shutdown.load(Ordering::Acquire) {
            return Err(SubmitError::ShuttingDown);
        }
        self.shared.pool.lock().insert(ingress).map_err(|_| SubmitError::PoolFull)?;
        self.shared.wake.notify_one();
        Ok(())
    }

    fn query(&self, query: Query, state: Arc<CertifiedState>) -> BoxFuture<'static, Result<WasmResult, UserError>> {
        let jobs = self.jobs.clone();
        Box::pin(async move {
            let (reply, rx) = tokio::sync::oneshot::channel();
            jobs.try_send(query_pool::Job::Query { query, state, reply }).map_err(|_| overloaded())?;
            rx.await.map_err(|_| overloaded())?
        })
    }

    fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.signing_key.sign(message)
    }

    fn node_public_key_der(&self) -> Vec<u8> {
        self.signing_key.public_key_der().to_vec()
    }

    fn now_nanos(&self) -> u64 {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
    }
}

fn overloaded() -> UserError {
    UserError::new(ErrorCode::SubnetOversubscribed, "The node's query threads are overloaded; retry later.")
}
