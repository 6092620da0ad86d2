//! The replica: log a finalized block, execute it, certify the result.
//!
//! [`Replica::run`] is the single-node subnet's agreement step: the node
//! makes and finalizes its own blocks. [`SubnetReplica::run`] takes the
//! blocks consensus finalized instead, and certifies with shares from its
//! peers. Everything in between — the durable block log, the batch,
//! execution, the state tree — is the same code.

use crate::block::Block;
use crate::metrics::NodeMetrics;
use crate::store::BlockStore;
use crate::wall_clock;
use crate::{NodeError, Shared};
use cairn_crypto::bls;
use cairn_crypto::certificate::state_root_message;
use cairn_execution::{Batch, ExecutionEnvironment};
use cairn_state::ReplicatedState;
use cairn_state_manager::Checkpoints;
use cairn_state_manager::{CertifiedState, StateTreeBuilder};
use cairn_types::{Height, Time};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// Timing and size parameters of the replica loop.
#[derive(Clone, Debug)]
pub struct ReplicaParams {
    /// A block is made at least this often, so timers and heartbeats run.
    pub idle_block_interval: Duration,
    /// A checkpoint is written every this many heights.
    pub checkpoint_interval: u64,
    pub max_ingress_messages_per_block: usize,
    pub max_ingress_bytes_per_block: usize,
}

/// The threshold key material used to certify states.
pub struct Certifier {
    /// The genesis share (`None` for a node that joined later: it signs
    /// with shares from the subnet's key generation instead).
    pub key_share: Option<bls::SecretKey>,
    pub index: bls::NodeIndex,
    pub threshold: usize,
}

impl Certifier {
    /// The threshold signature on a message. With one node the node's share
    /// is the whole key; a multi-node subnet combines shares from peers.
    fn sign(&self, message: &[u8]) -> Result<bls::Signature, NodeError> {
        let key = self.key_share.as_ref().ok_or_else(|| NodeError::Crypto("no genesis key share".into()))?;
        let share = bls::sign_share(key, message);
        bls::combine(self.threshold, &[(self.index, share)]).map_err(|e| NodeError::Crypto(e.to_string()))
    }

    /// The random tape of a height: unpredictable without the key, identical on every replica.
    fn random_tape(&self, height: Height) -> Result<[u8; 32], NodeError> {
        let mut msg = b"\x11cairn-random-tape".to_vec();
        msg.extend_from_slice(&height.0.to_be_bytes());
        let sig = self.sign(&msg)?;
        Ok(Sha256::digest(sig.to_bytes()).into())
    }
}

/// Owns the tip of the replicated state and moves it forward block by block.
pub struct Replica {
    pub(crate) env: ExecutionEnvironment,
    pub(crate) state: ReplicatedState,
    pub(crate) last_block_hash: [u8; 32],
    pub(crate) builder: StateTreeBuilder,
    /// The registry (for the subnet's nodes at each block's version).
    pub(crate) registry: Arc<crate::registry_view::RegistryView>,
    /// The registry version whose nodes the state tree lists.
    pub(crate) tree_version: cairn_types::RegistryVersion,
    pub(crate) store: Arc<BlockStore>,
    pub(crate) checkpoints: Arc<Checkpoints>,
    pub(crate) certifier: Certifier,
    pub(crate) shared: Arc<Shared>,
    pub(crate) params: ReplicaParams,
    pub(crate) checkpoint_tx: crossbeam_channel::Sender<(Height, [u8; 32], Arc<ReplicatedState>)>,
    pub(crate) metrics: NodeMetrics,
}

impl Replica {
    /// Re-executes the logged blocks above the restored state (crash recovery),
    /// then makes one (empty) block at the current time and certifies it.
    ///
    /// The fresh block matters to clients: they refuse certificates whose
    /// `/time` is more than a few minutes old (spec §5.6), and the restored
    /// state's time is that of the last block before the node stopped (the
    /// epoch for a new network), so the first certified state must not be
    /// the restored one.
    pub(crate) fn recover(&mut self) -> Result<(), NodeError> {
        self.replay_log()?;
        self.step(self.next_block_time(), Vec::new())
    }

    /// The time of the next block: the wall clock, but strictly after the last block.
    fn next_block_time(&self) -> Time {
        wall_clock().max(self.state.metadata.batch_time.saturating_add(Duration::from_nanos(1)))
    }

    /// Runs until shutdown; writes a final checkpoint.
    pub(crate) fn run(mut self) {
        loop {
            let block = {
                let mut pool = self.shared.pool.lock();
                if pool.is_empty() && !self.shared.shutdown.load(Ordering::Acquire) {
                    self.shared.wake.wait_for(&mut pool, self.params.idle_block_interval);
                }
                if self.shared.shutdown.load(Ordering::Acquire) {
                    break;
                }
                let time = self.next_block_time();
                let history = &self.state.metadata.ingress_history;
                let ingress = pool.take_payload(
                    self.params.max_ingress_messages_per_block,
                    self.params.max_ingress_bytes_per_block,
                    time,
                    |id| history.contains(id),
                );
                self.metrics.ingress_pool_messages.set(pool.len() as i64);
                (time, ingress)
            };
            let started = Instant::now();
            let (time, ingress) = block;
            if let Err(e) = self.step(time, ingress) {
                tracing::error!("the replica stops: {e}");
                self.shared.shutdown.store(true, Ordering::Release);
                break;
            }
            self.metrics.round_seconds.observe(started.elapsed().as_secs_f64());
        }
        self.final_checkpoint();
    }

    /// Makes, logs, executes and certifies one block.
    fn step(&mut self, time: Time, ingress: Vec<cairn_types::messages::Ingress>) -> Result<(), NodeError> {
        let height = self.state.metadata.height.increment();
        let block = Block {
            height,
            parent_hash: self.last_block_hash,
            time,
            randomness: self.certifier.random_tape(height)?,
            ingress,
            registry_version: self.state.metadata.registry_version,
        };
        self.store.append(&block)?;
        self.metrics.block_height.set(height.0 as i64);
        self.execute(&block);
        self.certify()?;
        let snapshot = self.shared.certified.read().as_ref().map(|c| c.state.clone());
        self.maybe_checkpoint(height, snapshot);
        Ok(())
    }

    fn execute(&mut self, block: &Block) {
        if block.registry_version != self.tree_version
            && let Some(nodes) = self.registry.nodes_at(block.registry_version)
        {
            if nodes != self.builder.info().nodes {
                let mut info = self.builder.info().clone();
                info.nodes = nodes;
                self.builder = StateTreeBuilder::new(info);
            }
            self.tree_version = block.registry_version;
            self.state.metadata.registry_version = block.registry_version;
        }
        let batch = Batch {
            height: block.height,
            time: block.time,
            randomness: block.randomness,
            ingress: block.ingress.clone(),
        };
        let stats = self.env.execute_round(&mut self.state, batch);
        self.last_block_hash = block.hash();
        self.metrics.blocks_total.inc();
        self.metrics.ingress_inducted_total.inc_by(stats.ingress_inducted);
        self.metrics.messages_executed_total.inc_by(stats.messages_executed);
        self.metrics.instructions_executed_total.inc_by(stats.instructions);
        self.metrics.canisters.set(self.state.canisters.len() as i64);
    }

    /// Signs the state tree of the tip and publishes the certified state.
    fn certify(&mut self) -> Result<(), NodeError> {
        let tree = self.builder.update(&self.state);
        let signature = self.certifier.sign(&state_root_message(&tree.hash()))?.to_bytes().to_vec();
        let height = self.state.metadata.height;
        self.publish(CertifiedState { height, state: Arc::new(self.state.clone()), tree, signature });
        Ok(())
    }

    /// Makes a certified state visible to queries, read_state and waiting calls.
    pub(crate) fn publish(&self, certified: CertifiedState) {
        let height = certified.height;
        *self.shared.certified.write() = Some(Arc::new(certified));
        self.shared.certified_tx.send_replace(height);
        self.metrics.certified_height.set(height.0 as i64);
    }

    /// Writes the checkpoint a clean shutdown leaves behind.
    pub(crate) fn final_checkpoint(&self) {
        let height = self.state.metadata.height;
        match self.checkpoints.write(height, self.last_block_hash, &self.state) {
            Ok(_) => tracing::info!(%height, "final checkpoint written"),
            Err(e) => tracing::error!("final checkpoint failed: {e}"),
        }
    }

    /// Hands a state to the background checkpoint writer at checkpoint heights.
    pub(crate) fn maybe_checkpoint(&self, height: Height, snapshot: Option<Arc<ReplicatedState>>) {
        if height.0.is_multiple_of(self.params.checkpoint_interval)
            && let Some(snapshot) = snapshot
        {
            // Waits only if the previous checkpoint (an interval ago) is still
            // being written: every interval start needs its checkpoint, since
            // a catch-up package certifies it.
            let _ = self.checkpoint_tx.send((height, self.last_block_hash, snapshot));
        }
    }

    /// Re-executes the logged blocks above the restored state (crash recovery).
    pub(crate) fn replay_log(&mut self) -> Result<(), NodeError> {
        let blocks = self.store.blocks_after(self.state.metadata.height)?;
        if !blocks.is_empty() {
            tracing::info!(from = %blocks[0].height, to = %blocks[blocks.len() - 1].height, "replaying logged blocks");
        }
        for block in blocks {
            if block.parent_hash != self.last_block_hash {
                return Err(NodeError::Recovery(format!("block {} does not extend the recovered chain", block.height)));
            }
            self.execute(&block);
        }
        Ok(())
    }

    /// Logs and executes a block agreed by the subnet, after the tip.
    pub(crate) fn apply_block(
        &mut self,
        height: Height,
        time: Time,
        randomness: [u8; 32],
        ingress: Vec<cairn_types::messages::Ingress>,
        registry_version: cairn_types::RegistryVersion,
    ) -> Result<(), NodeError> {
        let block = Block { height, parent_hash: self.last_block_hash, time, randomness, ingress, registry_version };
        self.store.append(&block)?;
        self.metrics.block_height.set(height.0 as i64);
        self.execute(&block);
        Ok(())
    }

    /// The requests in the tip's ingress history, as consensus needs them
    /// (so it never includes one of them in a block again).
    pub(crate) fn ingress_infos(&self) -> Vec<cairn_consensus::IngressInfo> {
        let history = self.state.metadata.ingress_history.iter();
        history.map(|(id, status)| cairn_consensus::IngressInfo { id: *id, expiry: status.expiry_time }).collect()
    }

    /// The state tree of the tip (updated incrementally).
    pub(crate) fn tree(&mut self) -> cairn_state_manager::TreeMap {
        self.builder.update(&self.state)
    }
}

/// Writes checkpoints in the background and then drops what they cover.
pub(crate) fn checkpoint_writer(
    rx: crossbeam_channel::Receiver<(Height, [u8; 32], Arc<ReplicatedState>)>,
    checkpoints: Arc<Checkpoints>,
    store: Arc<BlockStore>,
    metrics: NodeMetrics,
    roots: crossbeam_channel::Sender<(Height, [u8; 32])>,
) {
    for (height, hash, state) in rx {
        let started = Instant::now();
        match checkpoints.write(height, hash, &state) {
            Ok(root) => {
                let _ = roots.send((height, root));
            }
            Err(e) => {
                tracing::error!("checkpoint at {height} failed: {e}");
                continue;
            }
        }
        metrics.checkpoints_total.inc();
        tracing::debug!(%height, ms = started.elapsed().as_millis() as u64, "checkpoint written");
        if let Err(e) = checkpoints.retain_latest(2) {
            tracing::warn!("cannot delete old checkpoints: {e}");
        }
        // Blocks at or below the older kept checkpoint are no longer needed.
        if let Ok(heights) = checkpoints.heights()
            && let Some(oldest) = heights.first()
            && let Err(e) = store.purge_up_to(*oldest)
        {
            tracing::warn!("cannot purge old blocks: {e}");
        }
    }
}

/// The replica of a multi-node subnet: executes the blocks consensus
/// finalized and certifies each state together with its peers.
pub(crate) struct SubnetReplica {
    pub(crate) replica: Replica,
    pub(crate) blocks: crossbeam_channel::Receiver<crate::subnet::driver::Delivery>,
    /// Chunks peers send while this node syncs a state.
    pub(crate) sync_responses:
        crossbeam_channel::Receiver<(cairn_types::NodeId, crate::subnet::state_sync::StateSyncMessage)>,
    /// The subnet's other members (state sync fetches from them).
    pub(crate) peers: Vec<cairn_types::NodeId>,
    pub(crate) peer_messages: crossbeam_channel::Receiver<(cairn_types::NodeId, crate::subnet::PeerMessage)>,
    pub(crate) pool: crate::certification::CertificationPool,
    /// This node.
    pub(crate) me: cairn_types::NodeId,
    /// The high-threshold keys of recent intervals (loaded by consensus):
    /// each height is certified with its interval's share.
    pub(crate) threshold_keys: Arc<cairn_consensus::ThresholdKeyStore>,
    pub(crate) interval_length: u64,
    /// Own root hashes not signed yet because their interval's key was not
    /// loaded (right after a restart, before consensus read the chain).
    pub(crate) unsigned: std::collections::BTreeMap<Height, [u8; 32]>,
    pub(crate) transport: cairn_p2p::Transport<crate::subnet::PeerMessage>,
    pub(crate) driver: crossbeam_channel::Sender<crate::subnet::driver::DriverEvent>,
    pub(crate) driver_shared: Arc<crate::subnet::driver::DriverShared>,
    pub(crate) wrong_state_hash_from: Option<Height>,
    pub(crate) wrong_state_hash_until: Option<Height>,
    /// Executed, not yet certified states (and their trees), by height.
    pub(crate) uncertified: std::collections::BTreeMap<Height, (Arc<ReplicatedState>, cairn_state_manager::TreeMap)>,
    pub(crate) diverged: bool,
    /// A catch-up was abandoned for a newer one: blocks are skipped until it comes.
    pub(crate) awaiting_catch_up: bool,
    /// Each peer's last reported certified height, and whether it stood still.
    pub(crate) peer_certified: std::collections::BTreeMap<cairn_types::NodeId, Height>,
}

/// Why a catch-up did not complete.
enum CatchUpError {
    /// A newer package came while this one was being fetched.
    Superseded,
    Failed(NodeError),
}

impl From<NodeError> for CatchUpError {
    fn from(e: NodeError) -> Self {
        CatchUpError::Failed(e)
    }
}

/// Executed heights kept while waiting for their certification.
const MAX_UNCERTIFIED: usize = 200;

impl SubnetReplica {
    /// Runs until shutdown; writes a final checkpoint.
    pub(crate) fn run(mut self) {
        use crate::subnet::PeerMessage;
        use crossbeam_channel::select;
        if let Err(e) = self.certify_tip() {
            tracing::error!("the replica stops: {e}");
            self.stop();
            return;
        }
        loop {
            if self.replica.shared.shutdown.load(Ordering::Acquire) {
                break;
            }
            self.sign_unsigned();
            for outcome in self.pool.retry_waiting() {
                self.conclude(outcome);
            }
            select! {
                recv(self.blocks) -> delivery => {
                    use crate::subnet::driver::Delivery;
                    let block = match delivery {
                        Err(_) => break,
                        Ok(Delivery::CatchUp { height, state_hash }) => {
                            match self.catch_up(height, state_hash) {
                                Ok(()) => self.awaiting_catch_up = false,
                                Err(CatchUpError::Superseded) => {
                                    tracing::info!(%height, "a newer catch-up package replaced this one");
                                    self.awaiting_catch_up = true;
                                }
                                Err(CatchUpError::Failed(e)) => {
                                    tracing::error!("the replica stops: catching up to height {height} failed: {e}");
                                    self.stop();
                                    break;
                                }
                            }
                            continue;
                        }
                        Ok(Delivery::Block(_)) if self.awaiting_catch_up => continue,
                        Ok(Delivery::Block(block)) => block,
                    };
                    if self.diverged {
                        continue;
                    }
                    let started = Instant::now();
                    if let Err(e) = self.execute_finalized(block) {
                        tracing::error!("the replica stops: {e}");
                        self.stop();
                        break;
                    }
                    self.replica.metrics.round_seconds.observe(started.elapsed().as_secs_f64());
                }
                recv(self.peer_messages) -> msg => {
                    let Ok((from, msg)) = msg else { break };
                    let outcome = match msg {
                        PeerMessage::CertificationShare(share) => self.pool.add_share(&share),
                        PeerMessage::Certification(cert) => self.pool.add_certification(cert),
                        PeerMessage::Status(status) => {
                            self.help_lagging_peer(from, status.certified);
                            None
                        }
                        _ => None,
                    };
                    self.replica.metrics.invalid_certification_shares_total.inc_by(
                        self.pool.invalid_shares.saturating_sub(self.replica.metrics.invalid_certification_shares_total.get()),
                    );
                    if let Some(outcome) = outcome {
                        self.conclude(outcome);
                    }
                }
                default(Duration::from_millis(100)) => {}
            }
        }
        self.replica.final_checkpoint();
    }

    fn stop(&self) {
        self.replica.shared.shutdown.store(true, Ordering::Release);
        self.driver_shared.shutdown.store(true, Ordering::Release);
    }

    fn execute_finalized(&mut self, block: crate::subnet::driver::FinalizedBlock) -> Result<(), NodeError> {
        let tip = self.replica.state.metadata.height;
        if block.height <= tip {
            return Ok(()); // Already executed (replayed from the block log).
        }
        if block.height != tip.increment() {
            return Err(NodeError::Recovery(format!(
                "consensus delivered block {} but the state is at height {tip}",
                block.height
            )));
        }
        self.replica.apply_block(block.height, block.time, block.randomness, block.ingress, block.registry_version)?;
        self.certify_tip()
    }

    /// Replaces the state with the checkpoint a catch-up package certifies:
    /// from disk if this node has it, else by state sync from the peers.
    /// Blocks below the package are gone; execution resumes above it.
    fn catch_up(&mut self, height: Height, root: [u8; 32]) -> Result<(), CatchUpError> {
        if self.driver_shared.catch_up_height.load(Ordering::Acquire) > height.0 {
            return Err(CatchUpError::Superseded);
        }
        self.load_catch_up(height, root)
    }

    fn load_catch_up(&mut self, height: Height, root: [u8; 32]) -> Result<(), CatchUpError> {
        use crate::subnet::state_sync::StateSyncError;
        let checkpoints = self.replica.checkpoints.clone();
        if checkpoints.root(height).ok() != Some(root) {
            let fetch = crate::subnet::state_sync::Fetch {
                height,
                root,
                peers: self.peers.clone(),
                transport: &self.transport,
                responses: &self.sync_responses,
                checkpoints: &checkpoints,
                metrics: &self.replica.metrics,
                shutdown: &self.replica.shared.shutdown,
                newest: &self.driver_shared.catch_up_height,
            };
            match fetch.run() {
                Ok(_) => {}
                Err(StateSyncError::Superseded) => return Err(CatchUpError::Superseded),
                Err(e) => return Err(NodeError::Recovery(format!("state sync: {e}")).into()),
            }
        }
        let restored = checkpoints.load(height).map_err(NodeError::from)?;
        if restored.root != root {
            return Err(NodeError::Recovery(format!("the checkpoint at {height} is not the certified one")).into());
        }
        let replica = &mut self.replica;
        replica.state = restored.state;
        replica.last_block_hash = restored.block_hash;
        // The state tree lists the nodes of the loaded state's registry
        // version (the next block may switch it, as on every replica).
        let mut info = replica.builder.info().clone();
        replica.tree_version = replica.state.metadata.registry_version;
        if let Some(nodes) = replica.registry.nodes_at(replica.tree_version) {
            info.nodes = nodes;
        }
        replica.builder = StateTreeBuilder::new(info);
        replica.store.purge_up_to(height).map_err(NodeError::from)?;
        self.uncertified.clear();
        self.diverged = false;
        replica.metrics.state_diverged.set(0);
        replica.metrics.block_height.set(height.0 as i64);
        let _ = self.driver.send(crate::subnet::driver::DriverEvent::CaughtUp(replica.ingress_infos()));
        tracing::info!(%height, "caught up: the state of the catch-up package is loaded; executing from there");
        Ok(())
    }

    /// Signs the tip's state root, gossips the share and adds it to the pool.
    fn certify_tip(&mut self) -> Result<(), NodeError> {
        let height = self.replica.state.metadata.height;
        let tree = self.replica.tree();
        let mut root = tree.hash();
        if self.wrong_state_hash_from.is_some_and(|h| height >= h)
            && self.wrong_state_hash_until.is_none_or(|h| height < h)
        {
            // Test setting: behave as a node whose state diverged.
            root[0] ^= 0xff;
        }
        let signing = self.signing_key(height);
        let snapshot = Arc::new(self.replica.state.clone());
        self.replica.maybe_checkpoint(height, Some(snapshot.clone()));
        self.uncertified.insert(height, (snapshot, tree));
        while self.uncertified.len() > MAX_UNCERTIFIED {
            self.uncertified.pop_first();
        }
        let Some((index, key_share)) = signing else {
            // No share of this interval's key yet (consensus loads it from
            // the chain) or at all (a dealing gave this node a bad one): sign
            // once it is there; meanwhile the others may certify.
            tracing::debug!(%height, "no share of this interval's subnet key yet");
            self.unsigned.insert(height, root);
            while self.unsigned.len() > MAX_UNCERTIFIED {
                self.unsigned.pop_first();
            }
            if let Some(outcome) = self.pool.note_own(height, root) {
                self.conclude(outcome);
            }
            return Ok(());
        };
        self.sign_and_send(height, root, index, &key_share);
        Ok(())
    }

    /// This node's index and share of the subnet key at `height` (the key
    /// of its interval: reshared every interval).
    fn signing_key(&self, height: Height) -> Option<(bls::NodeIndex, bls::SecretKey)> {
        let id = cairn_consensus::dkg::key_at(cairn_consensus::ThresholdKey::High, height, self.interval_length);
        let key = self.threshold_keys.get(id)?;
        let index = key.receivers.binary_search(&self.me).ok()? as bls::NodeIndex;
        Some((index, key.share.clone()?))
    }

    /// Signs the own root hashes that waited for their interval's key.
    fn sign_unsigned(&mut self) {
        if self.unsigned.is_empty() {
            return;
        }
        let certified = self.pool.certified_height();
        self.unsigned = self.unsigned.split_off(&certified.increment());
        let ready: Vec<(Height, [u8; 32], bls::NodeIndex, bls::SecretKey)> =
            self.unsigned.iter().filter_map(|(h, root)| self.signing_key(*h).map(|(i, k)| (*h, *root, i, k))).collect();
        for (height, root, index, key) in ready {
            self.unsigned.remove(&height);
            self.sign_and_send(height, root, index, &key);
        }
    }

    fn sign_and_send(&mut self, height: Height, root: [u8; 32], index: bls::NodeIndex, key_share: &bls::SecretKey) {
        let share = bls::sign_share(key_share, &state_root_message(&root));
        self.replica.metrics.certification_shares_signed_total.inc();
        let message = crate::certification::CertificationShare {
            height,
            root_hash: root,
            signer: index,
            share: share.to_bytes().to_vec(),
        };
        let _ = self.transport.broadcast(&crate::subnet::PeerMessage::CertificationShare(message));
        if let Some(outcome) = self.pool.add_own(height, root, index, share) {
            self.conclude(outcome);
        }
    }

    fn conclude(&mut self, outcome: crate::certification::Outcome) {
        use crate::certification::Outcome;
        match outcome {
            Outcome::Certified(cert) => {
                let Some((state, tree)) = self.uncertified.remove(&cert.height) else { return };
                self.uncertified = self.uncertified.split_off(&cert.height);
                let height = cert.height;
                self.replica.publish(CertifiedState { height, state, tree, signature: cert.signature });
                self.driver_shared.certified_height.fetch_max(height.0, Ordering::AcqRel);
                let _ = self.driver.try_send(crate::subnet::driver::DriverEvent::Certified);
            }
            Outcome::Diverged { height, ours, agreed } => {
                self.diverged = true;
                let _ = self.driver.try_send(crate::subnet::driver::DriverEvent::Diverged);
                self.replica.metrics.state_diverged.set(1);
                self.replica.metrics.diverged_height.set(height.0 as i64);
                tracing::error!(
                    %height,
                    ours = %hex::encode(ours),
                    agreed = %hex::encode(agreed),
                    "STATE DIVERGED: the subnet certified a different state root than this node computed; \
                     this node stops executing and certifying (it keeps serving its last certified state) \
                     until the next catch-up package, whose state it then fetches from its peers"
                );
            }
        }
    }

    /// Sends the latest certification to a peer whose certified height stood
    /// still below it (it missed shares, e.g. after a restart).
    fn help_lagging_peer(&mut self, peer: cairn_types::NodeId, certified: Height) {
        let previous = self.peer_certified.insert(peer, certified);
        if previous != Some(certified) {
            return;
        }
        if let Some(latest) = self.pool.latest().filter(|c| c.height > certified) {
            let _ = self.transport.send(peer, &crate::subnet::PeerMessage::Certification(latest.clone()));
        }
    }
}
