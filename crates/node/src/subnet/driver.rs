//! The consensus thread: feeds received artifacts and ingress into the pool,
//! steps the consensus state machine, persists and gossips what it decided,
//! and hands finalized blocks to the replica thread.
//!
//! Gossip is push-based: a node broadcasts every artifact it makes, and
//! peers do not relay. What a peer missed (it was down, disconnected, or its
//! queue overflowed) is repaired by status messages: every node tells its
//! peers where it stands a few times a second, and a peer that sees it
//! stalled below its own finalized height resends what lies above it
//! (blocks and aggregates for finalized heights, everything for open ones).

use super::artifact_store::ArtifactStore;
use super::ingress::{SubnetIngress, WireIngress};
use super::{PeerMessage, PeerStatus};
use crate::metrics::NodeMetrics;
use crate::wall_clock;
use cairn_consensus::{
    ArtifactKind, ArtifactPool, BlsCrypto, Consensus, ConsensusMessage, IngressPayloadHandler, LocalState, PoolEvent,
    Received, StepOutput,
};
use cairn_p2p::Transport;
use cairn_types::messages::Ingress;
use cairn_types::{Height, NodeId, RegistryVersion, Time};
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// What the consensus thread reacts to.
#[allow(clippy::large_enum_variant)] // Peer messages are the common case; boxing them costs an allocation each.
pub enum DriverEvent {
    /// A message from a peer (consensus artifacts, ingress, status).
    Peer(NodeId, PeerMessage),
    /// A request accepted over this node's HTTP interface.
    LocalIngress(Box<(Ingress, WireIngress)>),
    /// The replica certified a new height (consensus may now validate
    /// proposals that refer to it).
    Certified,
    /// The replica's state diverged from the subnet's: resume from the next
    /// catch-up package (with the state it certifies) whatever happens.
    Diverged,
    /// The replica loaded the state of a catch-up package; these requests
    /// are in its ingress history (they must not be included again).
    CaughtUp(Vec<cairn_consensus::IngressInfo>),
    /// A newer registry version (membership or node keys changed).
    Registry,
}

/// What consensus hands the replica, in order.
pub enum Delivery {
    /// The next finalized block.
    Block(FinalizedBlock),
    /// The node fell behind this catch-up package: load the checkpoint at
    /// `height` whose manifest root is `state_hash` (from disk if it has it,
    /// else by state sync) before the blocks that follow.
    CatchUp { height: Height, state_hash: [u8; 32] },
}

/// A finalized block for the replica thread, ingress already verified.
pub struct FinalizedBlock {
    pub height: Height,
    pub time: Time,
    pub randomness: [u8; 32],
    pub ingress: Vec<Ingress>,
    pub registry_version: RegistryVersion,
}

/// State the consensus thread shares with the rest of the node.
pub struct DriverShared {
    pub shutdown: AtomicBool,
    /// The latest height whose state this node certified.
    pub certified_height: AtomicU64,
    /// Height of the newest catch-up package consensus resumed from (a
    /// state sync for a lower one is abandoned).
    pub catch_up_height: AtomicU64,
}

/// At most this many heights are resent to a stalled peer per status.
const REPAIR_HEIGHTS: u64 = 50;
/// Artifacts one peer may have waiting in the unvalidated section. An
/// honest peer has about ten per height (block, aggregates, shares) within
/// the validation window of 70 heights, plus a repair burst of 50 heights;
/// beyond this a peer is flooding, and what it sends is dropped until
/// validation drains its backlog. Other peers are unaffected.
const UNVALIDATED_PER_PEER: usize = 5_000;
/// At most this many events are handled before consensus steps again.
const EVENTS_PER_STEP: usize = 10_000;

/// What this node knows of a peer.
#[derive(Clone, Copy)]
struct PeerView {
    status: PeerStatus,
    /// When artifacts were last resent to it.
    repaired: Instant,
}

/// The consensus thread's state.
pub struct Driver {
    pub consensus: Consensus<BlsCrypto, IngressPayloadHandler<SubnetIngress>>,
    pub pool: ArtifactPool,
    pub store: ArtifactStore,
    pub transport: Transport<PeerMessage>,
    pub events: Receiver<DriverEvent>,
    pub blocks: Sender<Delivery>,
    /// Manifest roots of checkpoints the replica wrote at interval starts.
    pub state_roots: Receiver<(Height, [u8; 32])>,
    pub shared: Arc<DriverShared>,
    pub registry_version: RegistryVersion,
    /// The registry (newer versions arrive as [`DriverEvent::Registry`]).
    pub registry: Arc<crate::registry_view::RegistryView>,
    pub metrics: NodeMetrics,
    pub status_interval: Duration,
    /// Each peer's last status, and when it was last repaired.
    peers: BTreeMap<NodeId, PeerView>,
    /// The nodes this node talks to (members of the intervals in use and
    /// of the newest registry version).
    connected_to: BTreeSet<NodeId>,
    /// The p2p runtime (changing peers starts its tasks).
    runtime: tokio::runtime::Handle,
}

impl Driver {
    /// A driver over a restored pool.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        consensus: Consensus<BlsCrypto, IngressPayloadHandler<SubnetIngress>>,
        pool: ArtifactPool,
        store: ArtifactStore,
        transport: Transport<PeerMessage>,
        events: Receiver<DriverEvent>,
        blocks: Sender<Delivery>,
        state_roots: Receiver<(Height, [u8; 32])>,
        shared: Arc<DriverShared>,
        registry: Arc<crate::registry_view::RegistryView>,
        metrics: NodeMetrics,
        status_interval: Duration,
        runtime: tokio::runtime::Handle,
    ) -> Driver {
        let registry_version = registry.latest().version;
        Driver {
            consensus,
            pool,
            store,
            transport,
            events,
            blocks,
            state_roots,
            shared,
            registry_version,
            registry,
            metrics,
            status_interval,
            peers: BTreeMap::new(),
            connected_to: BTreeSet::new(),
            runtime,
        }
    }

    /// Runs until shutdown (or until the replica thread is gone).
    pub fn run(mut self) {
        let mut next_status = Instant::now();
        let mut wake_at: Option<Time> = None;
        loop {
            if self.shared.shutdown.load(Ordering::Acquire) {
                break;
            }
            let now = wall_clock();
            let until_wake = wake_at.map_or(Duration::from_millis(100), |w| {
                Duration::from_nanos(w.as_nanos().saturating_sub(now.as_nanos()))
            });
            let until_status = next_status.saturating_duration_since(Instant::now());
            let timeout = until_wake.min(until_status).min(Duration::from_millis(100));
            match self.events.recv_timeout(timeout) {
                Ok(event) => {
                    self.handle(event);
                    for _ in 0..EVENTS_PER_STEP {
                        match self.events.try_recv() {
                            Ok(event) => self.handle(event),
                            Err(_) => break,
                        }
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            while let Ok((height, root)) = self.state_roots.try_recv() {
                self.consensus.note_state_hash(height, cairn_consensus::CryptoHash(root));
            }
            let local = LocalState {
                certified_height: Height(self.shared.certified_height.load(Ordering::Acquire)),
                registry_version: self.registry_version,
            };
            let out = self.consensus.step(&mut self.pool, wall_clock(), &local);
            wake_at = out.wake_at;
            if let Err(e) = self.after_step(out) {
                tracing::error!("consensus stops: {e}");
                self.shared.shutdown.store(true, Ordering::Release);
                break;
            }
            if Instant::now() >= next_status {
                next_status = Instant::now() + self.status_interval;
                self.broadcast_status(local.certified_height);
            }
        }
    }

    fn handle(&mut self, event: DriverEvent) {
        match event {
            DriverEvent::Peer(from, PeerMessage::Consensus(message)) => {
                if self.pool.insert_from_peer(from, message, UNVALIDATED_PER_PEER) == Received::OverQuota {
                    self.metrics.refused_artifacts_total.inc();
                    tracing::debug!(peer = %from, "dropping an artifact: the peer has {UNVALIDATED_PER_PEER} waiting");
                }
            }
            DriverEvent::Peer(from, PeerMessage::Ingress(wire)) => {
                let source = self.consensus.payload_mut().source_mut();
                if let Err(e) = source.add_from_peer(wire.encode(), wall_clock()) {
                    tracing::debug!(peer = %from, "dropping gossiped ingress: {e}");
                }
            }
            DriverEvent::Peer(from, PeerMessage::Status(status)) => self.repair(from, status),
            DriverEvent::Registry => self.on_registry(),
            DriverEvent::Peer(..) => {}
            DriverEvent::LocalIngress(boxed) => {
                let (ingress, wire) = *boxed;
                let source = self.consensus.payload_mut().source_mut();
                if source.add_local(ingress, &wire).is_some() {
                    let _ = self.transport.broadcast(&PeerMessage::Ingress(wire));
                }
            }
            DriverEvent::Certified => {}
            DriverEvent::Diverged => self.consensus.resync_at_next_catch_up(),
            DriverEvent::CaughtUp(history) => {
                for info in history {
                    self.consensus.payload_mut().remember_finalized(info);
                }
            }
        }
    }

    /// Persists, then gossips; delivers finalized blocks.
    fn after_step(&mut self, out: StepOutput) -> Result<(), super::artifact_store::ArtifactStoreError> {
        self.store.apply(&out.events)?;
        for event in out.events {
            match event {
                PoolEvent::Validated { message, own: true, .. } => {
                    let _ = self.transport.broadcast(&PeerMessage::Consensus(message));
                }
                PoolEvent::Invalid(id, why) => {
                    self.metrics.invalid_artifacts_total.inc();
                    tracing::debug!(?id, "invalid artifact: {why}");
                }
                _ => {}
            }
        }
        if let Some(cup) = &out.catch_up {
            let height = cup.content.height();
            tracing::info!(%height, "this node fell behind a catch-up package; resuming from it");
            let state_hash = cup.content.state_hash.0;
            self.shared.catch_up_height.fetch_max(height.0, Ordering::AcqRel);
            if self.blocks.send(Delivery::CatchUp { height, state_hash }).is_err() {
                self.shared.shutdown.store(true, Ordering::Release);
            }
        }
        self.metrics.catch_up_height.set(self.consensus.catch_up_height().0 as i64);
        self.note_key_generation();
        for batch in out.batches {
            let time = batch.block.context.time;
            let source = self.consensus.payload().source();
            let ingress = source.finalized_ingress(&batch.block.payload.messages, time);
            let block = FinalizedBlock {
                height: batch.height,
                time,
                randomness: batch.randomness,
                ingress,
                registry_version: batch.block.context.registry_version,
            };
            if self.blocks.send(Delivery::Block(block)).is_err() {
                self.shared.shutdown.store(true, Ordering::Release);
            }
            self.consensus.payload_mut().source_mut().forget_expired(time);
        }
        self.metrics.finalized_height.set(self.pool.finalized_height().0 as i64);
        if let Some(members) = self.consensus.membership(self.pool.finalized_height()) {
            self.metrics.subnet_members.set(members.len() as i64);
            self.metrics.member.set(i64::from(members.contains(&self.consensus.config().node_id)));
        }
        self.metrics.notarized_height.set(self.pool.notarized_height().0 as i64);
        self.metrics.consensus_pool_artifacts.set(self.pool.validated_len() as i64);
        self.metrics.ingress_pool_messages.set(self.consensus.payload().source().len() as i64);
        Ok(())
    }

    /// Logs and counts each newly finalized key-generation summary.
    fn note_key_generation(&mut self) {
        let Some(summary) = self.consensus.latest_summary() else { return };
        if summary.height.0 as i64 <= self.metrics.key_generation_interval.get() {
            return;
        }
        self.metrics.key_generation_interval.set(summary.height.0 as i64);
        let (low, high) = (&summary.next.low, &summary.next.high);
        let fresh = !low.dealings.is_empty()
            && low.dealt_in.0 + self.consensus.config().params.interval_length == summary.height.0;
        if fresh {
            self.metrics.keys_made_total.inc();
        } else if summary.height.0 > 0 {
            self.metrics.keys_kept_total.inc();
        }
        tracing::info!(
            interval = %summary.height,
            fresh,
            low_dealers = low.dealings.len(),
            high_dealers = high.dealings.len(),
            "keys of the interval after next: beacon key dealt afresh, subnet key reshared"
        );
        self.update_peers();
    }

    /// A newer registry: its version goes into new blocks, the keys of nodes
    /// that joined become known, and peers follow the membership.
    fn on_registry(&mut self) {
        let registry = self.registry.latest();
        self.registry_version = registry.version;
        let keys = self.consensus.crypto().public_keys().clone();
        for record in registry.nodes.values() {
            match crate::node_public_keys(record) {
                Ok((signing, multisig, encryption)) => {
                    if let Err(e) = keys.add_node(record.node_id, signing, multisig, encryption) {
                        tracing::warn!(node = %record.node_id, "ignoring the node's keys: {e}");
                    }
                }
                Err(e) => tracing::warn!(node = %record.node_id, "ignoring the node's keys: {e}"),
            }
        }
        self.update_peers();
        tracing::info!(version = registry.version.0, "registry version in use for new blocks");
    }

    /// Talks to the members of the intervals in use (they sign what this
    /// node validates) and of the newest registry version (they will).
    fn update_peers(&mut self) {
        let registry = self.registry.latest();
        let me = self.consensus.config().node_id;
        let mut members = self.consensus.members_in_use();
        if let Some(subnet) = registry.subnet_of(&me).map(|s| s.subnet_id).or_else(|| {
            registry.subnets.values().find(|s| members.iter().any(|m| s.members.contains(m))).map(|s| s.subnet_id)
        }) {
            members.extend(registry.subnets[&subnet].members.iter().copied());
        }
        if members == self.connected_to {
            return;
        }
        let peers = members
            .iter()
            .filter(|n| **n != me)
            .filter_map(|n| registry.nodes.get(n).map(|r| (*n, r.p2p_addr)))
            .collect();
        let _runtime = self.runtime.enter();
        self.transport.set_peers(peers, members.clone());
        tracing::info!(members = members.len(), "peers follow the membership");
        self.connected_to = members;
    }

    fn broadcast_status(&mut self, certified: Height) {
        let status = PeerStatus {
            delivered: Height(self.consensus.next_batch_height().0.saturating_sub(1)),
            finalized: self.pool.finalized_height(),
            notarized: self.pool.notarized_height(),
            certified,
        };
        let _ = self.transport.broadcast(&PeerMessage::Status(status));
        let m = self.transport.metrics();
        self.metrics.peers_connected.set(self.transport.connected_peers().len() as i64);
        self.metrics.p2p_messages_sent_total.set(m.messages_sent as i64);
        self.metrics.p2p_messages_received_total.set(m.messages_received as i64);
        self.metrics.p2p_messages_dropped_total.set(m.messages_dropped as i64);
    }

    /// Resends what a stalled peer lacks: for heights it has not finalized,
    /// the blocks and aggregates (and, above this node's finalized height,
    /// the shares too, so a subnet that stalled during a partition resumes).
    fn repair(&mut self, peer: NodeId, status: PeerStatus) {
        let finalized = self.pool.finalized_height();
        let now = Instant::now();
        let previous = self.peers.get(&peer).copied();
        let repair = previous.is_some_and(|previous| {
            // Stalled: it executed nothing since its last status although this
            // node has finalized more (its finalized height may still move: it
            // validates finalizations without having the blocks), or nothing at
            // all changed (both sides stuck, e.g. after a partition healed).
            let stalled = (previous.status.delivered == status.delivered && status.delivered < finalized)
                || previous.status == status;
            // Statuses queued while disconnected arrive in a burst: one repair per interval.
            stalled
                && status.delivered <= finalized
                && now.duration_since(previous.repaired) >= self.status_interval / 2
        });
        let repaired = if repair { now } else { previous.map_or(now, |p| p.repaired) };
        self.peers.insert(peer, PeerView { status, repaired });
        if !repair {
            return;
        }
        // A peer's finalized height can run ahead of what it has (it got the
        // newest finalization, not the blocks below): start at what it executed.
        let mut from = status.delivered.increment();
        // Blocks it needs were purged: it resumes from the catch-up package.
        // (A root's stand-in is no block to send.)
        let purged =
            !self.pool.validated_between(ArtifactKind::BlockProposal, from, from).any(|(_, m)| !m.is_root_stand_in());
        if let Some(cup) = self.pool.latest_catch_up().filter(|c| c.content.height() >= from && purged) {
            let _ = self.transport.send(peer, &PeerMessage::Consensus(ConsensusMessage::CatchUpPackage(cup.clone())));
            from = cup.content.height().increment();
        }
        let to = Height(from.0 + REPAIR_HEIGHTS - 1);
        let mut sent = 0usize;
        for kind in ArtifactKind::ALL {
            let messages: Vec<ConsensusMessage> =
                self.pool.validated_between(kind, from, to).map(|(_, m)| m.clone()).collect();
            for m in messages {
                if (kind.is_share() && m.height() <= finalized) || m.is_root_stand_in() {
                    continue;
                }
                let _ = self.transport.send(peer, &PeerMessage::Consensus(m));
                sent += 1;
            }
        }
        if sent > 0 {
            tracing::debug!(%peer, peer_delivered = %status.delivered, %finalized, sent, "resent artifacts to a stalled peer");
        }
    }
}
