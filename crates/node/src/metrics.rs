//! The node's Prometheus metrics.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Metrics the replica updates as it runs.
#[derive(Clone)]
pub struct NodeMetrics {
    pub block_height: Gauge,
    pub certified_height: Gauge,
    pub canisters: Gauge,
    pub ingress_pool_messages: Gauge,
    pub blocks_total: Counter,
    pub ingress_inducted_total: Counter,
    pub messages_executed_total: Counter,
    pub instructions_executed_total: Counter,
    /// Seconds from block making to certification.
    pub round_seconds: Histogram,
    pub checkpoints_total: Counter,
    /// 1 once this node found its state differs from what the subnet certified.
    pub state_diverged: Gauge,
    /// Height at which the divergence was found (0 if none).
    pub diverged_height: Gauge,
    pub finalized_height: Gauge,
    pub notarized_height: Gauge,
    pub consensus_pool_artifacts: Gauge,
    pub invalid_artifacts_total: Counter,
    pub refused_artifacts_total: Counter,
    pub invalid_certification_shares_total: Counter,
    pub peers_connected: Gauge,
    pub p2p_messages_sent_total: Gauge,
    pub p2p_messages_received_total: Gauge,
    pub p2p_messages_dropped_total: Gauge,
    pub catch_up_height: Gauge,
    pub state_syncs_total: Counter,
    pub state_sync_chunks_total: Gauge,
    pub state_sync_chunks_done: Gauge,
    pub state_sync_bytes_fetched_total: Counter,
    pub state_sync_chunks_served_total: Counter,
    /// Start of the latest interval whose summary this node finalized.
    pub key_generation_interval: Gauge,
    pub keys_made_total: Counter,
    pub keys_kept_total: Counter,
    /// Members of the subnet at the finalized height (the committee of its interval).
    pub subnet_members: Gauge,
    /// 1 while this node is one of them.
    pub member: Gauge,
    pub certification_shares_signed_total: Counter,
}

impl Default for NodeMetrics {
    fn default() -> Self {
        NodeMetrics {
            block_height: Gauge::default(),
            certified_height: Gauge::default(),
            canisters: Gauge::default(),
            ingress_pool_messages: Gauge::default(),
            blocks_total: Counter::default(),
            ingress_inducted_total: Counter::default(),
            messages_executed_total: Counter::default(),
            instructions_executed_total: Counter::default(),
            round_seconds: Histogram::new(exponential_buckets(0.0001, 2.0, 16)),
            checkpoints_total: Counter::default(),
            state_diverged: Gauge::default(),
            diverged_height: Gauge::default(),
            finalized_height: Gauge::default(),
            notarized_height: Gauge::default(),
            consensus_pool_artifacts: Gauge::default(),
            invalid_artifacts_total: Counter::default(),
            refused_artifacts_total: Counter::default(),
            invalid_certification_shares_total: Counter::default(),
            peers_connected: Gauge::default(),
            p2p_messages_sent_total: Gauge::default(),
            p2p_messages_received_total: Gauge::default(),
            p2p_messages_dropped_total: Gauge::default(),
            catch_up_height: Gauge::default(),
            state_syncs_total: Counter::default(),
            state_sync_chunks_total: Gauge::default(),
            state_sync_chunks_done: Gauge::default(),
            state_sync_bytes_fetched_total: Counter::default(),
            state_sync_chunks_served_total: Counter::default(),
            key_generation_interval: Gauge::default(),
            keys_made_total: Counter::default(),
            keys_kept_total: Counter::default(),
            subnet_members: Gauge::default(),
            member: Gauge::default(),
            certification_shares_signed_total: Counter::default(),
        }
    }
}

impl NodeMetrics {
    /// Registers every metric under the `cairn_` prefix.
    pub fn register(&self, registry: &mut Registry) {
        let r = registry.sub_registry_with_prefix("cairn");
        r.register("block_height", "Height of the latest finalized block", self.block_height.clone());
        r.register("certified_height", "Height of the latest certified state", self.certified_height.clone());
        r.register("canisters", "Canisters on this subnet", self.canisters.clone());
        r.register("ingress_pool_messages", "Messages waiting in the ingress pool", self.ingress_pool_messages.clone());
        r.register("blocks", "Blocks executed", self.blocks_total.clone());
        r.register("ingress_inducted", "Ingress messages inducted", self.ingress_inducted_total.clone());
        r.register("messages_executed", "Messages executed", self.messages_executed_total.clone());
        r.register("instructions_executed", "Wasm instructions executed", self.instructions_executed_total.clone());
        r.register("round_seconds", "Time from block making to certification", self.round_seconds.clone());
        r.register("checkpoints", "Checkpoints written", self.checkpoints_total.clone());
        r.register(
            "state_diverged",
            "1 if this node's state differs from the state the subnet certified (the node stops executing)",
            self.state_diverged.clone(),
        );
        r.register("diverged_height", "Height at which this node's state diverged", self.diverged_height.clone());
        r.register("finalized_height", "Highest finalized height in the consensus pool", self.finalized_height.clone());
        r.register("notarized_height", "Highest notarized height in the consensus pool", self.notarized_height.clone());
        r.register(
            "consensus_pool_artifacts",
            "Validated artifacts in the consensus pool",
            self.consensus_pool_artifacts.clone(),
        );
        r.register("invalid_artifacts", "Consensus artifacts found invalid", self.invalid_artifacts_total.clone());
        r.register(
            "refused_artifacts",
            "Consensus artifacts dropped because their peer had too many waiting for validation",
            self.refused_artifacts_total.clone(),
        );
        r.register(
            "invalid_certification_shares",
            "Certification shares that did not verify",
            self.invalid_certification_shares_total.clone(),
        );
        r.register("peers_connected", "Peers with a live QUIC connection", self.peers_connected.clone());
        r.register("p2p_messages_sent", "Messages sent to peers", self.p2p_messages_sent_total.clone());
        r.register("p2p_messages_received", "Messages received from peers", self.p2p_messages_received_total.clone());
        r.register(
            "p2p_messages_dropped",
            "Messages dropped because a peer's send queue was full",
            self.p2p_messages_dropped_total.clone(),
        );
        r.register(
            "catch_up_height",
            "Height of the newest catch-up package the chain starts from",
            self.catch_up_height.clone(),
        );
        r.register(
            "state_syncs",
            "State syncs completed (catching up from a catch-up package)",
            self.state_syncs_total.clone(),
        );
        r.register(
            "state_sync_chunks",
            "Chunks of the state being synced (0 when none)",
            self.state_sync_chunks_total.clone(),
        );
        r.register(
            "state_sync_chunks_done",
            "Chunks of the state being synced that are in place",
            self.state_sync_chunks_done.clone(),
        );
        r.register(
            "state_sync_bytes_fetched",
            "Bytes fetched from peers by state sync",
            self.state_sync_bytes_fetched_total.clone(),
        );
        r.register(
            "state_sync_chunks_served",
            "Checkpoint chunks served to peers",
            self.state_sync_chunks_served_total.clone(),
        );
        r.register(
            "key_generation_interval",
            "Start of the latest interval whose key-generation summary is finalized",
            self.key_generation_interval.clone(),
        );
        r.register(
            "keys_made",
            "Summaries whose next keys came from the previous interval's dealings (fresh low key, reshared high key)",
            self.keys_made_total.clone(),
        );
        r.register(
            "subnet_members",
            "Members of the subnet at the finalized height (they hold that interval's keys)",
            self.subnet_members.clone(),
        );
        r.register("member", "1 while this node is a member at the finalized height", self.member.clone());
        r.register(
            "certification_shares_signed",
            "State roots this node signed with its share of the subnet key",
            self.certification_shares_signed_total.clone(),
        );
        r.register(
            "keys_kept",
            "Summaries that kept the keys of the summary before (too few good dealings)",
            self.keys_kept_total.clone(),
        );
    }
}
