//! The node's view of the registry: the newest version it has read (with
//! the memberships of earlier versions), shared by consensus (who receives
//! the keys of later intervals), the driver (peers and their keys) and
//! execution (the subnet's nodes in the state tree, per block).
//!
//! A registry change reaches a running node through its registry file: a
//! watcher reads it again when it changes and hands newer versions on. (On
//! the IC the registry canister's changes would arrive the same way: as
//! newer versions a node polls for.)

use cairn_registry::Registry;
use cairn_types::{NodeId, RegistryVersion, SubnetId};
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

/// The newest registry this node knows, for one subnet.
#[derive(Debug)]
pub struct RegistryView {
    subnet: SubnetId,
    latest: RwLock<Arc<Registry>>,
}

impl RegistryView {
    /// A view of `registry` for `subnet`.
    pub fn new(subnet: SubnetId, registry: Registry) -> RegistryView {
        RegistryView { subnet, latest: RwLock::new(Arc::new(registry)) }
    }

    /// The newest registry.
    pub fn latest(&self) -> Arc<Registry> {
        self.latest.read().expect("registry lock").clone()
    }

    /// Takes `registry` if it is newer and describes the same network;
    /// returns whether it did.
    pub fn update(&self, registry: Registry) -> bool {
        let mut latest = self.latest.write().expect("registry lock");
        if registry.version <= latest.version
            || registry.root_subnet != latest.root_subnet
            || !registry.subnets.contains_key(&self.subnet)
        {
            return false;
        }
        *latest = Arc::new(registry);
        true
    }

    /// The subnet's members at `version` with their signing keys (DER), as
    /// the state tree lists them.
    pub fn nodes_at(&self, version: RegistryVersion) -> Option<Vec<(NodeId, Vec<u8>)>> {
        let registry = self.latest();
        let members = registry.subnet_members_at(&self.subnet, version)?;
        members.iter().map(|n| registry.nodes.get(n).map(|r| (*n, r.signing_key_der.clone()))).collect()
    }
}

impl cairn_consensus::SubnetRegistry for RegistryView {
    fn members_at(&self, version: RegistryVersion) -> Option<Vec<NodeId>> {
        Some(self.latest().subnet_members_at(&self.subnet, version)?.to_vec())
    }
}

/// Reads the registry file again whenever it changes and calls `on_newer`
/// with each newer version (until `stop` says so). A file that does not
/// parse is skipped with a warning: the node keeps the version it has.
pub fn watch(
    path: PathBuf,
    view: Arc<RegistryView>,
    stop: impl Fn() -> bool + Send + 'static,
    on_newer: impl Fn(Arc<Registry>) + Send + 'static,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new().name("registry".into()).spawn(move || {
        let mut seen: Option<SystemTime> = None;
        while !stop() {
            let modified = std::fs::metadata(&path).and_then(|m| m.modified()).ok();
            if modified.is_some() && modified != seen {
                seen = modified;
                match Registry::load(&path) {
                    Ok(registry) => {
                        let version = registry.version;
                        if view.update(registry) {
                            tracing::info!(version = version.0, "a newer registry version");
                            on_newer(view.latest());
                        }
                    }
                    Err(e) => tracing::warn!("ignoring the registry file: {e}"),
                }
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    })
}
