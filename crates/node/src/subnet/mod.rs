//! A node of a subnet with several members: IC consensus over QUIC gossip
//! replaces the single node's own block making, and certification combines
//! threshold signature shares from the peers.
//!
//! ```text
//!  peers ◀──QUIC──▶ forwarder ──▶ consensus thread ──finalized blocks──▶ replica thread
//!                       │          (artifact pool,                       (block log, execution,
//!                       │           redb store,                           state tree, share,
//!                       │           ingress pool)                         certification pool)
//!                       └──────────── certification shares ──────────────────────▲
//! ```
//!
//! Everything between receiving a block and certifying a state is the same
//! code as for a single node ([`crate::replica`]).

pub mod artifact_store;
pub mod driver;
pub mod ingress;
pub mod state_sync;

use crate::certification::{Certification, CertificationShare};
use cairn_consensus::ConsensusMessage;
use cairn_types::Height;
use ingress::WireIngress;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Everything nodes of a subnet say to each other.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[allow(clippy::large_enum_variant)]
pub enum PeerMessage {
    /// A consensus artifact (proposal, share, aggregate).
    Consensus(ConsensusMessage),
    /// A signed update call one node received over HTTP.
    Ingress(WireIngress),
    /// A signature share on a state root.
    CertificationShare(CertificationShare),
    /// A combined certification (sent to a peer whose certification lags).
    Certification(Certification),
    /// Where the sender stands; peers use it to resend what it lacks.
    Status(PeerStatus),
    /// Checkpoint chunks for a node catching up (state sync).
    StateSync(state_sync::StateSyncMessage),
}

/// A node's progress, broadcast periodically.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerStatus {
    /// The highest height this node executed (consensus delivered every
    /// block up to it): what a lagging node lacks starts above it.
    pub delivered: Height,
    pub finalized: Height,
    pub notarized: Height,
    pub certified: Height,
}

/// Settings of a multi-node subnet node that are local to the node.
#[derive(Clone, Debug)]
pub struct SubnetSettings {
    /// UDP address for QUIC (defaults to the registry's p2p address).
    pub p2p_listen: Option<std::net::SocketAddr>,
    /// Test/bench setting: one-way delay added to every message received
    /// from a peer (imitates a WAN on loopback).
    pub link_delay: Duration,
    /// How often the node tells its peers where it stands.
    pub status_interval: Duration,
    /// Validated artifacts kept below the finalized height, for lagging peers.
    pub purge_margin: u64,
    /// Test setting: sign certification shares over a wrong state root from
    /// this height on (a Byzantine node, or a node whose state diverged).
    pub wrong_state_hash_from: Option<Height>,
    /// Test setting: ... and below this height only (a node whose state
    /// diverged for a while, then is recovered by state sync).
    pub wrong_state_hash_until: Option<Height>,
    /// The registry file to watch for newer versions (membership changes);
    /// `None`: the registry the node started with stays.
    pub registry_path: Option<std::path::PathBuf>,
}

impl Default for SubnetSettings {
    fn default() -> Self {
        SubnetSettings {
            p2p_listen: None,
            link_delay: Duration::ZERO,
            status_interval: Duration::from_millis(300),
            purge_margin: 300,
            wrong_state_hash_from: None,
            wrong_state_hash_until: None,
            registry_path: None,
        }
    }
}
