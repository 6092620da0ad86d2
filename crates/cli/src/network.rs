//! The on-disk layout of a network and of each node's configuration.
//!
//! ```text
//! <data-dir>/registry.json        the registry (genesis)
//! <data-dir>/node-<i>/secrets.json the node's keys (mode 0600)
//! <data-dir>/node-<i>/node.json    how to run the node (`cairn node --config`)
//! <data-dir>/node-<i>/...          the node's block log, consensus pool, checkpoints
//! <data-dir>/node-<i>/node.log     its log, when started by `cairn start --nodes N`
//! ```

use anyhow::{Context, Result, bail};
use cairn_registry::{ConsensusParams, GenesisConfig, NodeSecrets, Registry};
use cairn_state::SubnetType;
use serde::{Deserialize, Serialize};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

/// How to run one node: the file `cairn node --config` reads. Relative
/// paths are relative to the file's directory.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeFile {
    /// Where the node keeps its state.
    pub data_dir: PathBuf,
    /// The registry (network configuration).
    pub registry: PathBuf,
    /// The node's secret keys.
    pub secrets: PathBuf,
    /// HTTP listen address; defaults to the node's address in the registry.
    #[serde(default)]
    pub http_listen: Option<SocketAddr>,
    /// QUIC listen address; defaults to the node's p2p address in the registry.
    #[serde(default)]
    pub p2p_listen: Option<SocketAddr>,
    /// Test/bench setting: one-way delay added to every message from a peer.
    #[serde(default)]
    pub link_delay_ms: u64,
    /// Test setting: from this height on, the node computes a wrong state
    /// root (a Byzantine or diverged node).
    #[serde(default)]
    pub wrong_state_hash_from: Option<u64>,
    /// Test setting: ... up to (not including) this height.
    #[serde(default)]
    pub wrong_state_hash_until: Option<u64>,
    /// Heights between checkpoints.
    #[serde(default)]
    pub checkpoint_interval: Option<u64>,
}

impl NodeFile {
    /// The file of a node whose directory is `node-<i>` of a network
    /// directory (`cairn init`, `cairn add-node`): everything relative to it.
    pub fn in_network_dir() -> NodeFile {
        NodeFile {
            data_dir: PathBuf::from("."),
            registry: PathBuf::from("../registry.json"),
            secrets: PathBuf::from("secrets.json"),
            http_listen: None,
            p2p_listen: None,
            link_delay_ms: 0,
            wrong_state_hash_from: None,
            wrong_state_hash_until: None,
            checkpoint_interval: None,
        }
    }

    /// Reads a node file and resolves its paths against the file's directory.
    pub fn load(path: &Path) -> Result<NodeFile> {
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let mut file: NodeFile =
            serde_json::from_slice(&bytes).with_context(|| format!("{} is not a valid node config", path.display()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        for p in [&mut file.data_dir, &mut file.registry, &mut file.secrets] {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
        Ok(file)
    }

    /// Writes the node file.
    pub fn save(&self, path: &Path) -> Result<()> {
        cairn_registry::write_atomically(path, &serde_json::to_vec_pretty(self)?)?;
        Ok(())
    }
}

/// What `cairn init` (and a first `cairn start`) creates.
#[derive(Clone, Debug)]
pub struct NetworkSpec {
    pub nodes: usize,
    pub host: IpAddr,
    /// HTTP port of node 0 (node `i` gets `port + i`, unless `hosts` are given).
    pub port: u16,
    /// One address per node (e.g. one network namespace each); every node
    /// then uses `port` for HTTP and `port + 1000` for QUIC.
    pub hosts: Vec<IpAddr>,
    pub unit_delay_ms: u64,
    pub initial_notary_delay_ms: u64,
    /// Heights per interval (catch-up package and checkpoint at each start).
    pub interval_length: u64,
}

/// Paths of node `i` of a network in `data_dir`.
pub fn node_dir(data_dir: &Path, i: usize) -> PathBuf {
    data_dir.join(format!("node-{i}"))
}

/// The registry path of a network.
pub fn registry_path(data_dir: &Path) -> PathBuf {
    data_dir.join("registry.json")
}

/// The node file of node `i`.
pub fn node_file_path(data_dir: &Path, i: usize) -> PathBuf {
    node_dir(data_dir, i).join("node.json")
}

/// Creates a new network in `data_dir`: genesis, secrets and node files.
pub fn create(data_dir: &Path, spec: &NetworkSpec) -> Result<Registry> {
    if spec.nodes == 0 {
        bail!("a subnet needs at least one node");
    }
    if !spec.hosts.is_empty() && spec.hosts.len() != spec.nodes {
        bail!("--hosts lists {} addresses for {} nodes", spec.hosts.len(), spec.nodes);
    }
    if registry_path(data_dir).exists() {
        bail!("{} already holds a network (use --clean to replace it)", data_dir.display());
    }
    std::fs::create_dir_all(data_dir).with_context(|| format!("creating {}", data_dir.display()))?;
    let genesis_time_nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_nanos() as u64;
    let consensus = ConsensusParams {
        unit_delay_ms: spec.unit_delay_ms,
        initial_notary_delay_ms: spec.initial_notary_delay_ms,
        dkg_interval_length: spec.interval_length.saturating_sub(1).max(1),
        ..ConsensusParams::default()
    };
    let config = GenesisConfig {
        nodes: spec.nodes,
        subnet_type: SubnetType::Application,
        cost_subnet_size: cairn_types::fees::REFERENCE_SUBNET_SIZE,
        consensus,
        http_host: spec.host,
        http_port: spec.port,
        p2p_port: spec.port.wrapping_add(1000),
        node_hosts: spec.hosts.clone(),
        admins: Vec::new(),
        genesis_time_nanos,
    };
    let (registry, secrets) = cairn_registry::genesis(&config, rand::random());
    registry.save(&registry_path(data_dir))?;
    for (i, secrets) in secrets.iter().enumerate() {
        let dir = node_dir(data_dir, i);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        secrets.save(&dir.join("secrets.json"))?;
        NodeFile::in_network_dir().save(&dir.join("node.json"))?;
    }
    Ok(registry)
}

/// Adds a node to the network's (first) subnet: a new registry version,
/// the node's secrets and its node file in `node-<i>`. Returns its index,
/// id and node file.
pub fn add_node(
    data_dir: &Path,
    host: Option<IpAddr>,
    http_port: Option<u16>,
    p2p_port: Option<u16>,
) -> Result<(usize, cairn_types::NodeId, PathBuf)> {
    let path = registry_path(data_dir);
    let mut registry = Registry::load(&path)?;
    let subnet = registry.root_subnet;
    if registry.subnets[&subnet].members.len() < 2 {
        bail!("a single-node network runs without consensus and cannot grow; create one with --nodes 2 or more");
    }
    let first =
        registry.subnets[&subnet].members.first().and_then(|n| registry.nodes.get(n)).context("empty subnet")?;
    let host = host.unwrap_or(first.http_addr.ip());
    let next = |port: fn(&cairn_registry::NodeRecord) -> u16| {
        registry.nodes.values().map(port).max().unwrap_or(4943).wrapping_add(1)
    };
    let http = SocketAddr::new(host, http_port.unwrap_or_else(|| next(|r| r.http_addr.port())));
    let p2p = SocketAddr::new(host, p2p_port.unwrap_or_else(|| next(|r| r.p2p_addr.port())));
    let index = (0..).find(|i| !node_dir(data_dir, *i).exists()).expect("a free index");
    let secrets = registry.add_node(&subnet, http, p2p, rand::random())?;
    let dir = node_dir(data_dir, index);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    secrets.save(&dir.join("secrets.json"))?;
    NodeFile::in_network_dir().save(&dir.join("node.json"))?;
    // The registry last: running nodes see the new version only once the
    // node's files exist.
    registry.save(&path)?;
    Ok((index, secrets.node_id, node_file_path(data_dir, index)))
}

/// The node directories (index and node) whose node is a member of the
/// network's subnet, in order.
pub fn member_indices(data_dir: &Path, registry: &Registry) -> Result<Vec<(usize, cairn_types::NodeId)>> {
    let members = &registry.subnets[&registry.root_subnet].members;
    let mut out = Vec::new();
    let mut i = 0;
    while node_dir(data_dir, i).exists() {
        let secrets = NodeSecrets::load(&node_dir(data_dir, i).join("secrets.json"))?;
        if members.contains(&secrets.node_id) {
            out.push((i, secrets.node_id));
        }
        i += 1;
    }
    Ok(out)
}

/// Removes a node (an index `i` of `node-<i>`, or a node id) from its
/// subnet: a new registry version. Returns the node and the version.
pub fn remove_node(data_dir: &Path, node: &str) -> Result<(cairn_types::NodeId, cairn_types::RegistryVersion)> {
    let path = registry_path(data_dir);
    let mut registry = Registry::load(&path)?;
    let id = match node.parse::<usize>() {
        Ok(i) => NodeSecrets::load(&node_dir(data_dir, i).join("secrets.json"))?.node_id,
        Err(_) => cairn_types::NodeId(
            cairn_types::Principal::from_text(node).map_err(|e| anyhow::anyhow!("{node} is not a node id: {e}"))?,
        ),
    };
    registry.remove_node(&id)?;
    registry.save(&path)?;
    Ok((id, registry.version))
}

/// Loads node `i`'s registry and secrets.
pub fn load_node(file: &NodeFile) -> Result<(Registry, NodeSecrets)> {
    let registry = Registry::load(&file.registry)?;
    let secrets = NodeSecrets::load(&file.secrets)?;
    if registry.subnet_of(&secrets.node_id).is_none() {
        bail!("node {} is not a member of any subnet in {}", secrets.node_id, file.registry.display());
    }
    Ok((registry, secrets))
}
