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
    }
}
