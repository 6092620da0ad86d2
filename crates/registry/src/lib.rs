//! The registry: the network's configuration as versioned records.
//!
//! On the IC the registry is a canister on the NNS subnet and every change is
//! a governance proposal. Cairn keeps the same data model — subnets with
//! their members, keys and parameters, nodes with their keys and addresses,
//! a routing table, all at a [`RegistryVersion`] — in a file for now, so
//! that moving it into a canister later changes where records come from,
//! not what they are.
//!
//! [`genesis`] creates a new local network: node keys, a subnet whose
//! threshold BLS key is dealt by a trusted dealer (the IC's genesis does
//! the same before on-chain key generation takes over), and the registry.

use cairn_crypto::bls;
use cairn_crypto::node_key::NodeSigningKey;
use cairn_state::SubnetType;
use cairn_types::{CanisterId, CanisterIdRange, NodeId, Principal, RegistryVersion, RoutingTable, SubnetId};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;

/// Consensus timing of a subnet (the IC's parameters; tests shorten them).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsensusParams {
    pub unit_delay_ms: u64,
    pub initial_notary_delay_ms: u64,
    /// Heights per DKG interval (a summary block starts each).
    pub dkg_interval_length: u64,
    pub max_ingress_messages_per_block: usize,
    pub max_ingress_bytes_per_block: usize,
}

impl ConsensusParams {
    /// Heights from one interval start to the next (the summary block
    /// included): where checkpoints and catch-up packages are made.
    pub fn interval_length(&self) -> u64 {
        self.dkg_interval_length + 1
    }
}

impl Default for ConsensusParams {
    fn default() -> Self {
        ConsensusParams {
            unit_delay_ms: 1000,
            initial_notary_delay_ms: 300,
            dkg_interval_length: 499,
            max_ingress_messages_per_block: 1000,
            max_ingress_bytes_per_block: 4 << 20,
        }
    }
}

/// A subnet.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubnetRecord {
    pub subnet_id: SubnetId,
    pub subnet_type: SubnetType,
    /// Members in index order (a node's index is its threshold key index).
    pub members: Vec<NodeId>,
    /// DER of the subnet's threshold BLS public key.
    #[serde(with = "hex_bytes")]
    pub public_key_der: Vec<u8>,
    /// Public coefficients of the threshold key (anyone can derive each
    /// member's public share from them).
    #[serde(with = "hex_bytes")]
    pub public_coefficients: Vec<u8>,
    pub threshold: usize,
    /// Public coefficients of the low-threshold (f + 1) key behind the
    /// random beacon and the random tape; share `i` belongs to `members[i]`.
    #[serde(with = "hex_bytes")]
    pub beacon_public_coefficients: Vec<u8>,
    /// Time of the subnet's genesis block (ns since the epoch): block 1 must be later.
    pub genesis_time_nanos: u64,
    /// The genesis random beacon: seeds the first block-maker ranking.
    #[serde(with = "hex_bytes")]
    pub genesis_random_seed: Vec<u8>,
    /// Number of nodes fees are computed for.
    pub cost_subnet_size: u32,
    pub consensus: ConsensusParams,
    /// Principals allowed to create canisters by ingress.
    pub admins: Vec<Principal>,
    /// The registry version the subnet was created at (its genesis block
    /// names it; members join later versions).
    #[serde(default = "first_version")]
    pub genesis_registry_version: RegistryVersion,
}

fn first_version() -> RegistryVersion {
    RegistryVersion(1)
}

/// A node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeRecord {
    pub node_id: NodeId,
    /// DER of the node's Ed25519 signing key.
    #[serde(with = "hex_bytes")]
    pub signing_key_der: Vec<u8>,
    /// Where the node serves the public HTTP interface.
    pub http_addr: SocketAddr,
    /// Where the node talks to its peers.
    pub p2p_addr: SocketAddr,
    /// The node's BLS multi-signature key (notarization, finalization).
    #[serde(with = "hex_bytes")]
    pub multisig_public_key: Vec<u8>,
    /// Proof of possession of that key (defence against rogue-key attacks).
    #[serde(with = "hex_bytes")]
    pub multisig_pop: Vec<u8>,
    /// The G2 key other nodes encrypt key-generation shares to
    /// (`cairn_crypto::dkg`), kept apart from the signing keys.
    #[serde(default, with = "hex_bytes")]
    pub dkg_encryption_key: Vec<u8>,
    /// Proof of possession of the encryption key.
    #[serde(default, with = "hex_bytes")]
    pub dkg_encryption_pop: Vec<u8>,
}

/// The registry at one version.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Registry {
    pub version: RegistryVersion,
    /// The subnet whose key is the network's root key.
    pub root_subnet: SubnetId,
    pub subnets: BTreeMap<SubnetId, SubnetRecord>,
    /// Every node ever added (records stay after a node leaves its subnet:
    /// older registry versions and blocks still name it).
    pub nodes: BTreeMap<NodeId, NodeRecord>,
    pub routing_table: RoutingTable,
    /// Subnet members at each earlier version: consensus and execution of
    /// a block use the registry version the block names, so a node that
    /// already knows a newer version must still answer for older ones.
    #[serde(default)]
    pub history: BTreeMap<RegistryVersion, BTreeMap<SubnetId, Vec<NodeId>>>,
}

/// Secrets one node keeps for itself.
#[derive(Clone, Serialize, Deserialize)]
pub struct NodeSecrets {
    pub node_id: NodeId,
    #[serde(with = "hex_bytes")]
    pub signing_seed: Vec<u8>,
    /// The node's share of its subnet's threshold key.
    #[serde(with = "hex_bytes")]
    pub threshold_share: Vec<u8>,
    /// The node's index in its subnet's threshold key.
    pub threshold_index: usize,
    /// The node's BLS multi-signature secret key.
    #[serde(with = "hex_bytes")]
    pub multisig_key: Vec<u8>,
    /// The node's share of the low-threshold (beacon) key, same index.
    #[serde(with = "hex_bytes")]
    pub beacon_share: Vec<u8>,
    /// The secret of the node's key-generation encryption key.
    #[serde(default, with = "hex_bytes")]
    pub dkg_encryption_secret: Vec<u8>,
}

impl NodeSecrets {
    /// The node's signing key.
    pub fn signing_key(&self) -> NodeSigningKey {
        let seed: [u8; 32] = self.signing_seed.as_slice().try_into().expect("32-byte seed");
        NodeSigningKey::from_seed(seed)
    }

    /// Whether the node holds shares of its subnet's genesis keys (nodes
    /// added later get shares by key generation instead).
    pub fn has_genesis_shares(&self) -> bool {
        !self.threshold_share.is_empty()
    }

    /// The node's threshold key share.
    pub fn threshold_key(&self) -> Result<bls::SecretKey, RegistryError> {
        bls_secret(&self.threshold_share, "threshold share")
    }

    /// The node's BLS multi-signature key.
    pub fn multisig_secret(&self) -> Result<bls::SecretKey, RegistryError> {
        bls_secret(&self.multisig_key, "multi-signature key")
    }

    /// The node's beacon key share.
    pub fn beacon_key(&self) -> Result<bls::SecretKey, RegistryError> {
        bls_secret(&self.beacon_share, "beacon share")
    }

    /// The secret that opens key-generation shares dealt to this node.
    pub fn dkg_encryption_secret(&self) -> Result<bls::SecretKey, RegistryError> {
        bls_secret(&self.dkg_encryption_secret, "key-generation encryption key")
    }
}

fn bls_secret(bytes: &[u8], what: &str) -> Result<bls::SecretKey, RegistryError> {
    let bytes: [u8; 32] = bytes.try_into().map_err(|_| RegistryError::Corrupt(format!("{what}: not 32 bytes")))?;
    bls::SecretKey::from_bytes(&bytes).map_err(|e| RegistryError::Corrupt(format!("{what}: {e}")))
}

/// Why the registry could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("cannot read or write {path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("{path} is not a valid registry file: {message}")]
    Parse { path: String, message: String },
    #[error("corrupt key material: {0}")]
    Corrupt(String),
    #[error("unknown node {0}")]
    UnknownNode(NodeId),
}

/// What to create at genesis.
#[derive(Clone, Debug)]
pub struct GenesisConfig {
    pub nodes: usize,
    pub subnet_type: SubnetType,
    pub cost_subnet_size: u32,
    pub consensus: ConsensusParams,
    /// HTTP address of node `i` is `http_host` with port `http_port + i`,
    /// its p2p address `http_host` with port `p2p_port + i` ...
    pub http_host: std::net::IpAddr,
    pub http_port: u16,
    pub p2p_port: u16,
    /// ... unless hosts are listed here: then node `i` listens on
    /// `node_hosts[i]` with `http_port` and `p2p_port` (one address per node,
    /// e.g. one network namespace per node).
    pub node_hosts: Vec<std::net::IpAddr>,
    pub admins: Vec<Principal>,
    /// Genesis time (ns since the epoch): the network's creation time.
    pub genesis_time_nanos: u64,
}

/// A node's keys from seeds (signing, multi-signature, key-generation
/// encryption), its record at these addresses, and its secrets without
/// shares of any subnet key.
fn new_node(seeds: [[u8; 32]; 3], http_addr: SocketAddr, p2p_addr: SocketAddr) -> (NodeRecord, NodeSecrets) {
    let [signing_seed, multisig_seed, encryption_seed] = seeds;
    let key = NodeSigningKey::from_seed(signing_seed);
    let multisig = bls::SecretKey::from_seed(multisig_seed);
    let encryption = bls::SecretKey::from_seed(encryption_seed);
    let node_id = key.node_id();
    let record = NodeRecord {
        node_id,
        signing_key_der: key.public_key_der().to_vec(),
        http_addr,
        p2p_addr,
        multisig_public_key: multisig.public_key().to_bytes().to_vec(),
        multisig_pop: bls::create_pop(&multisig).to_bytes().to_vec(),
        dkg_encryption_key: encryption.public_key().to_bytes().to_vec(),
        dkg_encryption_pop: bls::create_pop(&encryption).to_bytes().to_vec(),
    };
    let secrets = NodeSecrets {
        node_id,
        signing_seed: signing_seed.to_vec(),
        threshold_share: Vec::new(),
        threshold_index: 0,
        multisig_key: multisig.to_bytes().to_vec(),
        beacon_share: Vec::new(),
        dkg_encryption_secret: encryption.to_bytes().to_vec(),
    };
    (record, secrets)
}

/// A new network: the registry plus each node's secrets (in member order).
///
/// Members are sorted by node id, so a node's index is the same in the
/// high-threshold (certification) key, the low-threshold (beacon) key and
/// consensus's membership.
pub fn genesis(config: &GenesisConfig, seed: [u8; 32]) -> (Registry, Vec<NodeSecrets>) {
    use rand::{RngCore, SeedableRng};
    let mut rng = rand::rngs::StdRng::from_seed(seed);
    let mut random = || {
        let mut b = [0u8; 32];
        rng.fill_bytes(&mut b);
        b
    };
    let n = config.nodes.max(1);
    let f = (n - 1) / 3;
    // The high threshold (certification, catch-up packages): n − f.
    let threshold = n - f;
    let (coefficients, shares) =
        bls::generate_threshold_keys(random(), threshold, n).expect("valid threshold parameters");
    // The low threshold (random beacon and tape): f + 1.
    let (beacon_coefficients, beacon_shares) =
        bls::generate_threshold_keys(random(), f + 1, n).expect("valid threshold parameters");
    let genesis_random_seed = random().to_vec();
    let public_key_der = coefficients.group_public_key().to_der().to_vec();
    let subnet_id = SubnetId(Principal::self_authenticating(&public_key_der));
    let mut keys: Vec<([u8; 32], [u8; 32])> = (0..n).map(|_| (random(), random())).collect();
    keys.sort_by_key(|(signing_seed, _)| NodeSigningKey::from_seed(*signing_seed).node_id());
    let encryption_seeds: Vec<[u8; 32]> = (0..n).map(|_| random()).collect();
    let mut nodes = BTreeMap::new();
    let mut members = Vec::new();
    let mut secrets = Vec::new();
    for (i, (((signing_seed, multisig_seed), share), beacon_share)) in
        keys.into_iter().zip(shares).zip(beacon_shares).enumerate()
    {
        let (host, offset) = match config.node_hosts.get(i) {
            Some(host) => (*host, 0),
            None => (config.http_host, i as u16),
        };
        let http_addr = SocketAddr::new(host, config.http_port.wrapping_add(offset));
        let p2p_addr = SocketAddr::new(host, config.p2p_port.wrapping_add(offset));
        let (record, node) = new_node([signing_seed, multisig_seed, encryption_seeds[i]], http_addr, p2p_addr);
        let node_id = record.node_id;
        nodes.insert(node_id, record);
        members.push(node_id);
        secrets.push(NodeSecrets {
            threshold_share: share.to_bytes().to_vec(),
            threshold_index: i,
            beacon_share: beacon_share.to_bytes().to_vec(),
            ..node
        });
    }
    let mut routing_table = RoutingTable::new();
    routing_table
        .insert(CanisterIdRange { start: CanisterId::from_u64(0), end: CanisterId::from_u64(u64::MAX) }, subnet_id)
        .expect("empty table");
    let subnet = SubnetRecord {
        subnet_id,
        subnet_type: config.subnet_type,
        members,
        public_key_der,
        public_coefficients: coefficients.to_bytes(),
        threshold,
        beacon_public_coefficients: beacon_coefficients.to_bytes(),
        genesis_time_nanos: config.genesis_time_nanos,
        genesis_random_seed,
        cost_subnet_size: config.cost_subnet_size,
        consensus: config.consensus.clone(),
        admins: config.admins.clone(),
        genesis_registry_version: RegistryVersion(1),
    };
    let registry = Registry {
        version: RegistryVersion(1),
        root_subnet: subnet_id,
        subnets: [(subnet_id, subnet)].into(),
        nodes,
        routing_table,
        history: BTreeMap::new(),
    };
    (registry, secrets)
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> RegistryError + '_ {
    move |source| RegistryError::Io { path: path.display().to_string(), source }
}

/// Writes `bytes` to `path` atomically: temp file, fsync, rename, fsync dir.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), RegistryError> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    {
        let mut f = std::fs::File::create(&tmp).map_err(io(&tmp))?;
        f.write_all(bytes).map_err(io(&tmp))?;
        f.sync_all().map_err(io(&tmp))?;
    }
    std::fs::rename(&tmp, path).map_err(io(path))?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))?;
    }
    Ok(())
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T, RegistryError> {
    let bytes = std::fs::read(path).map_err(io(path))?;
    serde_json::from_slice(&bytes)
        .map_err(|e| RegistryError::Parse { path: path.display().to_string(), message: e.to_string() })
}

impl Registry {
    /// Reads a registry file.
    pub fn load(path: &Path) -> Result<Self, RegistryError> {
        read_json(path)
    }

    /// Writes the registry file atomically.
    pub fn save(&self, path: &Path) -> Result<(), RegistryError> {
        write_atomically(path, &serde_json::to_vec_pretty(self).expect("registry serializes"))
    }

    /// The subnet a node belongs to.
    pub fn subnet_of(&self, node: &NodeId) -> Option<&SubnetRecord> {
        self.subnets.values().find(|s| s.members.contains(node))
    }

    /// The DER of the root key.
    pub fn root_key_der(&self) -> &[u8] {
        &self.subnets[&self.root_subnet].public_key_der
    }

    /// The members of `subnet` at `version` (sorted), if this registry
    /// knows that version.
    pub fn subnet_members_at(&self, subnet: &SubnetId, version: RegistryVersion) -> Option<&[NodeId]> {
        if version == self.version {
            return self.subnets.get(subnet).map(|s| s.members.as_slice());
        }
        self.history.get(&version)?.get(subnet).map(|m| m.as_slice())
    }

    /// Starts the next version: the current memberships go to the history.
    fn next_version(&mut self) {
        let members = self.subnets.iter().map(|(id, s)| (*id, s.members.clone())).collect();
        self.history.insert(self.version, members);
        self.version = RegistryVersion(self.version.0 + 1);
    }

    /// A new version in which a new node (fresh keys, listening on
    /// `http_addr` and `p2p_addr`) joins `subnet`; returns its secrets. It
    /// holds no genesis shares: it receives shares of the subnet's keys by
    /// the subnet's key generation, from the interval the change takes
    /// effect in.
    pub fn add_node(
        &mut self,
        subnet: &SubnetId,
        http_addr: SocketAddr,
        p2p_addr: SocketAddr,
        seed: [u8; 32],
    ) -> Result<NodeSecrets, RegistryError> {
        use rand::{RngCore, SeedableRng};
        if !self.subnets.contains_key(subnet) {
            return Err(RegistryError::Corrupt(format!("no subnet {subnet}")));
        }
        let mut rng = rand::rngs::StdRng::from_seed(seed);
        let mut random = || {
            let mut b = [0u8; 32];
            rng.fill_bytes(&mut b);
            b
        };
        let (record, secrets) = new_node([random(), random(), random()], http_addr, p2p_addr);
        self.next_version();
        self.nodes.insert(secrets.node_id, record);
        let members = &mut self.subnets.get_mut(subnet).expect("checked above").members;
        members.push(secrets.node_id);
        members.sort();
        Ok(secrets)
    }

    /// A new version in which `node` leaves its subnet (its record stays).
    pub fn remove_node(&mut self, node: &NodeId) -> Result<(), RegistryError> {
        let subnet = self.subnet_of(node).map(|s| s.subnet_id).ok_or(RegistryError::UnknownNode(*node))?;
        let members = &self.subnets[&subnet].members;
        if members.len() <= 1 {
            return Err(RegistryError::Corrupt(format!("{node} is the last member of {subnet}")));
        }
        self.next_version();
        self.subnets.get_mut(&subnet).expect("found above").members.retain(|m| m != node);
        Ok(())
    }
}

impl NodeSecrets {
    /// Reads a node's secrets.
    pub fn load(path: &Path) -> Result<Self, RegistryError> {
        read_json(path)
    }

    /// Writes a node's secrets atomically (readable by the owner only).
    pub fn save(&self, path: &Path) -> Result<(), RegistryError> {
        write_atomically(path, &serde_json::to_vec_pretty(self).expect("secrets serialize"))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(io(path))?;
        }
        Ok(())
    }
}

mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        hex::decode(s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(nodes: usize) -> GenesisConfig {
        GenesisConfig {
            nodes,
            subnet_type: SubnetType::Application,
            cost_subnet_size: 13,
            consensus: ConsensusParams::default(),
            http_host: "127.0.0.1".parse().unwrap(),
            http_port: 4943,
            p2p_port: 4100,
            node_hosts: vec![],
            admins: vec![],
            genesis_time_nanos: 1_700_000_000_000_000_000,
        }
    }

    #[test]
    fn adding_and_removing_nodes_makes_versions_that_remember_older_memberships() {
        let (mut registry, _) = genesis(&config(4), [2; 32]);
        let subnet = registry.root_subnet;
        let genesis_members = registry.subnets[&subnet].members.clone();
        let addr: SocketAddr = "127.0.0.1:9000".parse().unwrap();
        let new = registry.add_node(&subnet, addr, addr, [3; 32]).unwrap();
        assert_eq!(registry.version, RegistryVersion(2));
        assert!(!new.has_genesis_shares());
        assert!(registry.subnets[&subnet].members.contains(&new.node_id));
        assert!(registry.subnets[&subnet].members.is_sorted());
        let record = &registry.nodes[&new.node_id];
        let enc = bls::PublicKey::from_bytes(&record.dkg_encryption_key).unwrap();
        assert_eq!(enc, new.dkg_encryption_secret().unwrap().public_key());
        let removed = genesis_members[0];
        registry.remove_node(&removed).unwrap();
        assert_eq!(registry.version, RegistryVersion(3));
        assert_eq!(registry.subnet_members_at(&subnet, RegistryVersion(1)).unwrap(), genesis_members.as_slice());
        assert_eq!(registry.subnet_members_at(&subnet, RegistryVersion(2)).unwrap().len(), 5);
        let now = registry.subnet_members_at(&subnet, RegistryVersion(3)).unwrap();
        assert_eq!(now.len(), 4);
        assert!(!now.contains(&removed) && now.contains(&new.node_id));
        assert!(registry.subnet_members_at(&subnet, RegistryVersion(4)).is_none());
        assert!(registry.nodes.contains_key(&removed), "records stay for older versions");
        assert!(registry.remove_node(&removed).is_err(), "no longer a member");
        // The history survives the file.
        let dir = std::env::temp_dir().join(format!("cairn-registry-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("registry.json");
        registry.save(&path).unwrap();
        assert_eq!(Registry::load(&path).unwrap(), registry);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn genesis_deals_a_working_threshold_key() {
        let (registry, secrets) = genesis(&config(4), [1; 32]);
        let subnet = &registry.subnets[&registry.root_subnet];
        assert_eq!(subnet.threshold, 3);
        assert_eq!(subnet.members.len(), 4);
        assert_eq!(registry.root_subnet.get(), Principal::self_authenticating(&subnet.public_key_der));
        let msg = b"state root";
        let shares: Vec<_> = secrets
            .iter()
            .take(3)
            .map(|s| (s.threshold_index as bls::NodeIndex, bls::sign_share(&s.threshold_key().unwrap(), msg)))
            .collect();
        let sig = bls::combine(3, &shares).unwrap();
        let pk = bls::PublicKey::from_der(&subnet.public_key_der).unwrap();
        pk.verify(msg, &sig).unwrap();
        // The beacon key needs f + 1 = 2 shares; multi-signature keys carry valid PoPs.
        let beacon = bls::PublicCoefficients::from_bytes(&subnet.beacon_public_coefficients).unwrap();
        assert_eq!(beacon.threshold(), 2);
        let shares: Vec<_> = secrets
            .iter()
            .skip(2)
            .map(|s| (s.threshold_index as bls::NodeIndex, bls::sign_share(&s.beacon_key().unwrap(), msg)))
            .collect();
        beacon.group_public_key().verify(msg, &bls::combine(2, &shares).unwrap()).unwrap();
        for s in &secrets {
            let record = &registry.nodes[&s.node_id];
            let pk = bls::PublicKey::from_bytes(&record.multisig_public_key).unwrap();
            assert_eq!(pk, s.multisig_secret().unwrap().public_key());
            bls::verify_pop(&pk, &bls::Signature::from_bytes(&record.multisig_pop).unwrap()).unwrap();
            // A separate key for key-generation shares, with its own PoP.
            let enc = bls::PublicKey::from_bytes(&record.dkg_encryption_key).unwrap();
            assert_eq!(enc, s.dkg_encryption_secret().unwrap().public_key());
            assert_ne!(enc, pk);
            bls::verify_pop(&enc, &bls::Signature::from_bytes(&record.dkg_encryption_pop).unwrap()).unwrap();
        }
        // Members are sorted by node id (one index for every key).
        assert!(subnet.members.windows(2).all(|w| w[0] < w[1]));
        // Deterministic from the seed.
        assert_eq!(genesis(&config(4), [1; 32]).0, registry);
    }

    #[test]
    fn files_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let (registry, secrets) = genesis(&config(1), [2; 32]);
        let (rp, sp) = (dir.path().join("registry.json"), dir.path().join("node.json"));
        registry.save(&rp).unwrap();
        secrets[0].save(&sp).unwrap();
        assert_eq!(Registry::load(&rp).unwrap(), registry);
        assert_eq!(NodeSecrets::load(&sp).unwrap().node_id, secrets[0].node_id);
        std::fs::write(&rp, b"{nope").unwrap();
        assert!(matches!(Registry::load(&rp), Err(RegistryError::Parse { .. })));
    }
}
