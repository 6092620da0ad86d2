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
pub mod certification;
pub mod ingress_pool;
pub mod metrics;
mod query_pool;
pub mod registry_view;
pub mod replica;
pub mod store;
pub mod subnet;

use cairn_crypto::node_key::NodeSigningKey;
use cairn_execution::{ExecutionConfig, ExecutionEnvironment, Query};
use cairn_http::{BoxFuture, NodeApi, NodeInfo, SignedIngress, SubmitError};
use cairn_registry::{NodeSecrets, Registry};
use cairn_state::{ReplicatedState, SystemMetadata};
use cairn_state_manager::Checkpoints;
use cairn_state_manager::{CertifiedState, StateTreeBuilder, SubnetTreeInfo};
use cairn_types::messages::{Ingress, WasmResult};
use cairn_types::{ErrorCode, Height, UserError};
use ingress_pool::{IngressPool, PoolLimits};
use metrics::NodeMetrics;
use parking_lot::{Condvar, Mutex, RwLock};
use replica::{Certifier, Replica, ReplicaParams};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use store::BlockStore;
use subnet::SubnetSettings;
use subnet::driver::{DriverEvent, DriverShared};
use subnet::ingress::WireIngress;

/// Why the node could not start or had to stop.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error(transparent)]
    Store(#[from] store::StoreError),
    #[error(transparent)]
    Checkpoint(#[from] cairn_state_manager::CheckpointError),
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
    #[error("p2p: {0}")]
    P2p(String),
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
    /// Settings used when the node's subnet has more than one member.
    pub subnet: SubnetSettings,
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
            subnet: SubnetSettings::default(),
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

/// Where accepted ingress goes.
enum IngressSink {
    /// The single node's own pool.
    Solo,
    /// The consensus thread (which gossips it to the peers).
    Subnet(crossbeam_channel::Sender<DriverEvent>),
}

/// The node as the HTTP layer uses it.
pub struct NodeHandle {
    shared: Arc<Shared>,
    sink: IngressSink,
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
    /// Multi-node subnets: the consensus thread, its flags and the p2p runtime.
    subnet: Option<SubnetParts>,
}

struct SubnetParts {
    driver_thread: std::thread::JoinHandle<()>,
    driver_shared: Arc<DriverShared>,
    runtime: tokio::runtime::Runtime,
}

fn genesis_state(registry: &Registry, subnet: &cairn_registry::SubnetRecord) -> ReplicatedState {
    let mut meta = SystemMetadata::single_subnet(
        subnet.subnet_id,
        subnet.subnet_type,
        subnet.cost_subnet_size,
        registry.root_key_der().to_vec(),
    );
    meta.routing_table = registry.routing_table.clone();
    meta.registry_version = subnet.genesis_registry_version;
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
        // The state tree lists the subnet's nodes at the registry version of
        // the tip's block (every replica lists the same).
        let registry_view = Arc::new(registry_view::RegistryView::new(subnet.subnet_id, registry.clone()));
        let tree_version = state.metadata.registry_version;
        let tree_info = SubnetTreeInfo {
            subnet_id: subnet.subnet_id,
            public_key_der: subnet.public_key_der.clone(),
            subnet_type: subnet.subnet_type,
            canister_ranges: registry.routing_table.ranges_of(&subnet.subnet_id),
            nodes: registry_view.nodes_at(tree_version).unwrap_or_else(|| {
                subnet
                    .members
                    .iter()
                    .filter_map(|n| registry.nodes.get(n))
                    .map(|r| (r.node_id, r.signing_key_der.clone()))
                    .collect()
            }),
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
            key_share: if config.secrets.has_genesis_shares() { Some(config.secrets.threshold_key()?) } else { None },
            index: config.secrets.threshold_index as cairn_crypto::bls::NodeIndex,
            threshold: subnet.threshold,
        };
        let (checkpoint_tx, checkpoint_rx) = crossbeam_channel::bounded(1);
        let replica = Replica {
            env,
            state,
            last_block_hash,
            builder: StateTreeBuilder::new(tree_info),
            registry: registry_view,
            tree_version,
            store: store.clone(),
            checkpoints: checkpoints.clone(),
            certifier,
            shared: shared.clone(),
            params: config.replica.clone(),
            checkpoint_tx,
            metrics: metrics.clone(),
        };
        let (jobs, query_threads) = query_pool::start(config.query_threads, config.execution.clone(), engine)?;
        let (roots_tx, roots_rx) = crossbeam_channel::unbounded();
        let checkpoint_thread = {
            let (checkpoints, store, metrics) = (checkpoints.clone(), store.clone(), metrics.clone());
            std::thread::Builder::new()
                .name("checkpoints".into())
                .spawn(move || replica::checkpoint_writer(checkpoint_rx, checkpoints, store, metrics, roots_tx))?
        };
        let signing_key = config.secrets.signing_key();
        let info = NodeInfo {
            root_key_der: registry.root_key_der().to_vec(),
            subnet_id: subnet.subnet_id,
            node_id,
            impl_version: env!("CARGO_PKG_VERSION").to_string(),
        };
        let (replica_thread, sink, subnet_parts) = if subnet.members.len() == 1 {
            (start_solo(replica)?, IngressSink::Solo, None)
        } else {
            let (thread, driver_tx, parts) = start_subnet(&config, &subnet, replica, roots_rx)?;
            (thread, IngressSink::Subnet(driver_tx), Some(parts))
        };
        let handle = Arc::new(NodeHandle { shared, sink, info, signing_key, jobs, metrics });
        let mut threads = vec![replica_thread];
        threads.extend(query_threads);
        Ok(Node { handle, threads, checkpoint_thread: Some(checkpoint_thread), subnet: subnet_parts })
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
        if let Some(parts) = self.subnet.take() {
            parts.driver_shared.shutdown.store(true, Ordering::Release);
            let _ = parts.driver_thread.join();
            parts.runtime.shutdown_timeout(Duration::from_secs(1));
        }
        // Query threads stop when the last sender of their queue is dropped;
        // the HTTP layer may still hold handles, so only the replica is joined.
        if let Some(replica) = (!self.threads.is_empty()).then(|| self.threads.remove(0)) {
            let _ = replica.join();
        }
        drop(self.checkpoint_thread.take());
    }
}

/// Runs the single-node agreement step: the replica makes its own blocks.
/// Returns once the restored state is certified.
fn start_solo(mut replica: Replica) -> Result<std::thread::JoinHandle<()>, NodeError> {
    let shared = replica.shared.clone();
    // Recovery executes Wasm, so it runs on an execution thread too.
    let thread = cairn_wasm::spawn_execution_thread("replica".into(), move || match replica.recover() {
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
        let _ = thread.join();
        return Err(NodeError::Recovery("the replica did not come up; see the log".into()));
    }
    Ok(thread)
}

/// A node record's public keys as consensus checks them: the raw Ed25519
/// signing key, and the multi-signature and key-generation encryption keys
/// with their proofs of possession.
type NodeKeyTriple = (
    [u8; 32],
    (cairn_crypto::bls::PublicKey, cairn_crypto::bls::Signature),
    (cairn_crypto::bls::PublicKey, cairn_crypto::bls::Signature),
);

pub(crate) fn node_public_keys(record: &cairn_registry::NodeRecord) -> Result<NodeKeyTriple, NodeError> {
    use cairn_crypto::bls;
    let crypto_err = |e: &dyn std::fmt::Display| NodeError::Crypto(format!("node {}: {e}", record.node_id));
    let der = &record.signing_key_der;
    let raw: [u8; 32] = der
        .get(der.len().saturating_sub(32)..)
        .and_then(|k| k.try_into().ok())
        .ok_or_else(|| NodeError::Crypto(format!("node {} has a malformed signing key", record.node_id)))?;
    let pk = bls::PublicKey::from_bytes(&record.multisig_public_key).map_err(|e| crypto_err(&e))?;
    let pop = bls::Signature::from_bytes(&record.multisig_pop).map_err(|e| crypto_err(&e))?;
    let epk = bls::PublicKey::from_bytes(&record.dkg_encryption_key).map_err(|e| crypto_err(&e))?;
    let epop = bls::Signature::from_bytes(&record.dkg_encryption_pop).map_err(|e| crypto_err(&e))?;
    Ok((raw, (pk, pop), (epk, epop)))
}

/// The consensus view of the registry: genesis members and keys, every
/// node's public keys, and the registry consensus asks about later versions.
fn consensus_setup(
    config: &NodeConfig,
    subnet: &cairn_registry::SubnetRecord,
    registry_view: Arc<registry_view::RegistryView>,
) -> Result<(cairn_consensus::ConsensusConfig, cairn_consensus::BlsCrypto), NodeError> {
    use cairn_consensus::{BlsCrypto, ConsensusConfig, Genesis, Membership, NodeSecretKeys, SubnetPublicKeys};
    use cairn_crypto::bls;
    let crypto_err = |e: &dyn std::fmt::Display| NodeError::Crypto(e.to_string());
    let registry = &config.registry;
    // The genesis keys were dealt to the members at the subnet's first version.
    let genesis_members = registry
        .subnet_members_at(&subnet.subnet_id, subnet.genesis_registry_version)
        .ok_or_else(|| NodeError::Crypto("the registry lacks the subnet's genesis membership".into()))?;
    let membership = Membership::new(genesis_members.iter().copied()).map_err(|e| crypto_err(&e))?;
    if membership.nodes() != genesis_members {
        return Err(NodeError::Crypto("the registry lists the subnet's members out of node-id order".into()));
    }
    let mut signing_keys = std::collections::BTreeMap::new();
    let mut multisig_keys = std::collections::BTreeMap::new();
    let mut encryption_keys = std::collections::BTreeMap::new();
    for record in registry.nodes.values() {
        let (signing, multisig, encryption) = node_public_keys(record)?;
        signing_keys.insert(record.node_id, signing);
        multisig_keys.insert(record.node_id, multisig);
        encryption_keys.insert(record.node_id, encryption);
    }
    let beacon = bls::PublicCoefficients::from_bytes(&subnet.beacon_public_coefficients).map_err(|e| crypto_err(&e))?;
    let subnet_key = bls::PublicCoefficients::from_bytes(&subnet.public_coefficients).map_err(|e| crypto_err(&e))?;
    let public =
        SubnetPublicKeys::new(membership.clone(), signing_keys, multisig_keys, encryption_keys, &beacon, &subnet_key)
            .map_err(|e| crypto_err(&e))?;
    let genesis_shares = config.secrets.has_genesis_shares();
    let secrets = NodeSecretKeys {
        signing: config.secrets.signing_key(),
        multisig: config.secrets.multisig_secret()?,
        encryption: config.secrets.dkg_encryption_secret()?,
        threshold_share: if genesis_shares { Some(config.secrets.beacon_key()?) } else { None },
        high_threshold_share: if genesis_shares { Some(config.secrets.threshold_key()?) } else { None },
    };
    let seed: [u8; 32] = subnet
        .genesis_random_seed
        .as_slice()
        .try_into()
        .map_err(|_| NodeError::Crypto("the genesis random seed is not 32 bytes".into()))?;
    let params = cairn_consensus::ConsensusParams {
        unit_delay: Duration::from_millis(subnet.consensus.unit_delay_ms),
        initial_notary_delay: Duration::from_millis(subnet.consensus.initial_notary_delay_ms),
        purge_margin: config.subnet.purge_margin,
        max_block_payload_bytes: subnet.consensus.max_ingress_bytes_per_block as u64,
        interval_length: subnet.consensus.interval_length(),
        ..Default::default()
    };
    let cfg = ConsensusConfig {
        node_id: config.secrets.node_id,
        registry: registry_view,
        params,
        genesis: Genesis {
            time: cairn_types::Time::from_nanos(subnet.genesis_time_nanos),
            registry_version: subnet.genesis_registry_version,
            random_seed: seed,
            summary: public.genesis_summary(),
        },
    };
    Ok((cfg, BlsCrypto::new(secrets, Arc::new(public))))
}

/// Starts a member of a multi-node subnet: p2p, the replica (after replaying
/// its block log) and the consensus thread. Returns without waiting for a
/// certified state: that needs the peers.
fn start_subnet(
    config: &NodeConfig,
    subnet: &cairn_registry::SubnetRecord,
    mut replica: Replica,
    state_roots: crossbeam_channel::Receiver<(Height, [u8; 32])>,
) -> Result<(std::thread::JoinHandle<()>, crossbeam_channel::Sender<DriverEvent>, SubnetParts), NodeError> {
    // Checkpoints are taken where catch-up packages certify them.
    replica.params.checkpoint_interval = subnet.consensus.interval_length();
    let metrics = replica.metrics.clone();
    use cairn_consensus::{ArtifactPool, Consensus, IngressLimits, IngressPayloadHandler};
    use subnet::PeerMessage;
    let node_id = config.secrets.node_id;
    let registry = &config.registry;
    let registry_view = replica.registry.clone();
    let (consensus_config, crypto) = consensus_setup(config, subnet, registry_view.clone())?;
    let own = registry.nodes.get(&node_id).ok_or(cairn_registry::RegistryError::UnknownNode(node_id))?;
    let peers = subnet
        .members
        .iter()
        .filter(|n| **n != node_id)
        .filter_map(|n| registry.nodes.get(n).map(|r| (*n, r.p2p_addr)))
        .collect();
    let mut transport_config = cairn_p2p::TransportConfig::new(
        config.subnet.p2p_listen.unwrap_or(own.p2p_addr),
        config.secrets.signing_key(),
        peers,
        subnet.members.iter().copied().collect(),
    );
    transport_config.link_delay = config.subnet.link_delay;
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(1).thread_name("p2p").enable_all().build()?;
    let (transport, mut inbound) = {
        let _guard = runtime.enter();
        cairn_p2p::Transport::<PeerMessage>::start(transport_config).map_err(|e| NodeError::P2p(e.to_string()))?
    };
    let (driver_tx, driver_rx) = crossbeam_channel::bounded::<DriverEvent>(100_000);
    let (peer_tx, peer_rx) = crossbeam_channel::bounded(100_000);
    let (blocks_tx, blocks_rx) = crossbeam_channel::unbounded();
    let (sync_request_tx, sync_request_rx) = crossbeam_channel::bounded(1_000);
    let (sync_response_tx, sync_response_rx) = crossbeam_channel::bounded(1_000);
    {
        let (checkpoints, transport, metrics) = (replica.checkpoints.clone(), transport.clone(), metrics.clone());
        std::thread::Builder::new()
            .name("state-sync".into())
            .spawn(move || subnet::state_sync::serve(checkpoints, transport, sync_request_rx, metrics))?;
    }
    {
        // Route what peers send: certification and state sync to the replica
        // (chunk requests to the state sync server), the rest to consensus.
        let driver_tx = driver_tx.clone();
        runtime.spawn(async move {
            use subnet::state_sync::StateSyncMessage;
            while let Some((from, message)) = inbound.recv().await {
                match message {
                    PeerMessage::StateSync(m @ StateSyncMessage::Request { .. }) => {
                        let _ = sync_request_tx.try_send((from, m));
                    }
                    PeerMessage::StateSync(m) => {
                        let _ = sync_response_tx.try_send((from, m));
                    }
                    PeerMessage::CertificationShare(_) | PeerMessage::Certification(_) => {
                        let _ = peer_tx.try_send((from, message));
                    }
                    PeerMessage::Status(status) => {
                        let _ = peer_tx.try_send((from, PeerMessage::Status(status)));
                        let _ = driver_tx.try_send(DriverEvent::Peer(from, message));
                    }
                    _ => {
                        let _ = driver_tx.try_send(DriverEvent::Peer(from, message));
                    }
                }
            }
        });
    }
    let driver_shared = Arc::new(DriverShared {
        shutdown: AtomicBool::new(false),
        certified_height: std::sync::atomic::AtomicU64::new(0),
        catch_up_height: std::sync::atomic::AtomicU64::new(0),
    });
    let threshold_keys = crypto.key_store();
    let subnet_replica = replica::SubnetReplica {
        pool: certification::CertificationPool::with_interval_keys(
            threshold_keys.clone(),
            consensus_config.params.interval_length,
        ),
        threshold_keys,
        me: node_id,
        interval_length: consensus_config.params.interval_length,
        unsigned: Default::default(),
        replica,
        blocks: blocks_rx,
        sync_responses: sync_response_rx,
        peers: subnet::state_sync::peers_of(&subnet.members, node_id),
        peer_messages: peer_rx,
        transport: transport.clone(),
        driver: driver_tx.clone(),
        driver_shared: driver_shared.clone(),
        wrong_state_hash_from: config.subnet.wrong_state_hash_from,
        wrong_state_hash_until: config.subnet.wrong_state_hash_until,
        uncertified: Default::default(),
        diverged: false,
        awaiting_catch_up: false,
        peer_certified: Default::default(),
    };
    // Replay the block log first: consensus resumes above the executed height.
    let (recovered_tx, recovered_rx) = crossbeam_channel::bounded(1);
    let replica_thread = cairn_wasm::spawn_execution_thread("replica".into(), move || {
        let mut subnet_replica = subnet_replica;
        match subnet_replica.replica.replay_log() {
            Ok(()) => {
                let replica = &subnet_replica.replica;
                let _ = recovered_tx.send(Ok((replica.state.metadata.height, replica.ingress_infos())));
                subnet_replica.run();
            }
            Err(e) => {
                let _ = recovered_tx.send(Err(e));
            }
        }
    })?;
    let (executed, history) =
        recovered_rx.recv().map_err(|_| NodeError::Recovery("the replica thread died during recovery".into()))??;
    tracing::info!(height = %executed, members = subnet.members.len(), "replica recovered; joining the subnet");
    let store = subnet::artifact_store::ArtifactStore::open(&config.data_dir.join("consensus_pool.redb"))
        .map_err(|e| NodeError::Recovery(e.to_string()))?;
    let pool =
        ArtifactPool::restore(&consensus_config.genesis, store.load().map_err(|e| NodeError::Recovery(e.to_string()))?);
    let limits = IngressLimits {
        max_messages: subnet.consensus.max_ingress_messages_per_block,
        max_bytes: subnet.consensus.max_ingress_bytes_per_block as u64,
        ..IngressLimits::default()
    };
    let source = subnet::ingress::SubnetIngress::new(
        registry.root_key_der().to_vec(),
        cairn_http::HttpConfig::default().max_ingress_payload_bytes,
        subnet::ingress::PendingLimits { max_messages: config.pool.max_messages, max_bytes: config.pool.max_bytes },
    );
    let mut handler = IngressPayloadHandler::new(source, limits);
    for info in history {
        handler.remember_finalized(info);
    }
    let consensus = Consensus::new(consensus_config, crypto, handler, executed.increment());
    let driver = subnet::driver::Driver::new(
        consensus,
        pool,
        store,
        transport,
        driver_rx,
        blocks_tx,
        state_roots,
        driver_shared.clone(),
        registry_view.clone(),
        metrics,
        config.subnet.status_interval,
        runtime.handle().clone(),
    );
    if let Some(path) = config.subnet.registry_path.clone() {
        let (stop, driver_tx) = (driver_shared.clone(), driver_tx.clone());
        registry_view::watch(
            path,
            registry_view,
            move || stop.shutdown.load(Ordering::Acquire),
            move |_| {
                let _ = driver_tx.send(DriverEvent::Registry);
            },
        )?;
    }
    let driver_thread = std::thread::Builder::new().name("consensus".into()).spawn(move || driver.run())?;
    Ok((replica_thread, driver_tx, SubnetParts { driver_thread, driver_shared, runtime }))
}

/// The node's clock. Never read on the replicated path: block times come
/// from consensus (which gets this as an input), and the HTTP layer uses it
/// for expiry checks and query signature timestamps.
pub fn wall_clock() -> cairn_types::Time {
    cairn_types::Time::from_nanos(
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64),
    )
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

    fn submit_ingress(&self, ingress: Ingress, signed: SignedIngress) -> Result<(), SubmitError> {
        if self.shared.shutdown.load(Ordering::Acquire) {
            return Err(SubmitError::ShuttingDown);
        }
        match &self.sink {
            IngressSink::Solo => {
                self.shared.pool.lock().insert(ingress).map_err(|_| SubmitError::PoolFull)?;
                self.shared.wake.notify_one();
            }
            IngressSink::Subnet(driver) => {
                let event = DriverEvent::LocalIngress(Box::new((ingress, WireIngress::from_signed(signed))));
                driver.try_send(event).map_err(|_| SubmitError::PoolFull)?;
            }
        }
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
        wall_clock().as_nanos()
    }
}

fn overloaded() -> UserError {
    UserError::new(ErrorCode::SubnetOversubscribed, "The node's query threads are overloaded; retry later.")
}
