//! State sync: a node that fell behind a catch-up package fetches the
//! checkpoint the package certifies from its peers, chunk by chunk.
//!
//! The package names the checkpoint by its manifest root. The node first
//! fetches the manifest (chunk 0) and checks it against the root, then every
//! chunk it cannot copy from its own newest checkpoint, several at a time
//! from every peer, checking each against the manifest. A peer that sends a
//! wrong chunk, or has no such checkpoint, is simply asked for something else
//! later; nothing unverified is ever written into place.

use super::PeerMessage;
use crate::metrics::NodeMetrics;
use cairn_p2p::Transport;
use cairn_state_manager::manifest::{Manifest, root_of_encoded};
use cairn_state_manager::{CheckpointError, Checkpoints};
use cairn_types::{Height, NodeId};
use crossbeam_channel::{Receiver, RecvTimeoutError};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// What nodes say to each other about checkpoints.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum StateSyncMessage {
    /// Asks for a chunk of the checkpoint at `height` whose manifest root is
    /// `root`: chunk 0 is the encoded manifest, chunk `i + 1` the manifest's
    /// chunk `i`.
    Request { height: Height, root: [u8; 32], chunk: u32 },
    /// A chunk, as asked for.
    Response {
        height: Height,
        root: [u8; 32],
        chunk: u32,
        #[serde(with = "serde_bytes")]
        bytes: Vec<u8>,
    },
    /// The sender has no checkpoint with that height and root.
    Unavailable { height: Height, root: [u8; 32] },
}

/// Why a state sync did not complete.
#[derive(Debug, thiserror::Error)]
pub enum StateSyncError {
    #[error("the node is shutting down")]
    ShuttingDown,
    #[error("no peer to fetch from")]
    NoPeers,
    #[error("a newer catch-up package replaced this one")]
    Superseded,
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    #[error("the synced checkpoint's root {got} is not the expected {expected}")]
    RootMismatch { expected: String, got: String },
}

/// Requests in flight per peer (1 MiB each).
const IN_FLIGHT_PER_PEER: usize = 16;
/// A request unanswered this long is sent again (to another peer if possible).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(3);
/// A peer that lacks the checkpoint is asked again after this long.
const UNAVAILABLE_BACKOFF: Duration = Duration::from_secs(1);

/// What a finished sync did.
#[derive(Clone, Copy, Debug, Default)]
pub struct SyncStats {
    pub chunks: usize,
    pub reused_chunks: usize,
    pub fetched_bytes: u64,
    pub seconds: f64,
}

/// Answers peers' chunk requests from this node's checkpoints (runs on its
/// own thread, so serving never delays execution).
pub fn serve(
    checkpoints: Arc<Checkpoints>,
    transport: Transport<PeerMessage>,
    requests: Receiver<(NodeId, StateSyncMessage)>,
    metrics: NodeMetrics,
) {
    let mut manifests: BTreeMap<Height, ([u8; 32], Vec<u8>, Manifest)> = BTreeMap::new();
    for (peer, message) in requests {
        let StateSyncMessage::Request { height, root, chunk } = message else { continue };
        if manifests.get(&height).is_none_or(|(r, _, _)| *r != root) {
            let loaded = checkpoints.manifest_bytes(height).ok().and_then(|bytes| {
                let m = Manifest::decode(&bytes).ok()?;
                Some((root_of_encoded(&bytes), bytes, m))
            });
            match loaded {
                Some(entry) => {
                    manifests.insert(height, entry);
                    while manifests.len() > 2 {
                        manifests.pop_first();
                    }
                }
                None => {
                    manifests.remove(&height);
                }
            }
        }
        let reply = match manifests.get(&height).filter(|(r, _, _)| *r == root) {
            None => StateSyncMessage::Unavailable { height, root },
            Some((_, bytes, _)) if chunk == 0 => {
                StateSyncMessage::Response { height, root, chunk, bytes: bytes.clone() }
            }
            Some((_, _, manifest)) => match checkpoints.read_chunk(height, manifest, chunk - 1) {
                Ok(bytes) => StateSyncMessage::Response { height, root, chunk, bytes },
                Err(e) => {
                    tracing::debug!(%peer, %height, chunk, "cannot serve a chunk: {e}");
                    StateSyncMessage::Unavailable { height, root }
                }
            },
        };
        if matches!(reply, StateSyncMessage::Response { .. }) {
            metrics.state_sync_chunks_served_total.inc();
        }
        let _ = transport.send(peer, &PeerMessage::StateSync(reply));
    }
}

/// One state sync: fetches the checkpoint at `height` named by `root` into
/// `checkpoints`, from `peers`, until it is complete (or the node stops).
pub struct Fetch<'a> {
    pub height: Height,
    pub root: [u8; 32],
    pub peers: Vec<NodeId>,
    pub transport: &'a Transport<PeerMessage>,
    pub responses: &'a Receiver<(NodeId, StateSyncMessage)>,
    pub checkpoints: &'a Checkpoints,
    pub metrics: &'a NodeMetrics,
    pub shutdown: &'a AtomicBool,
    /// Height of the newest catch-up package; a higher one than `height`
    /// abandons this sync (its checkpoint may be gone from every peer).
    pub newest: &'a std::sync::atomic::AtomicU64,
}

/// Per-peer bookkeeping of a fetch.
#[derive(Default)]
struct PeerState {
    in_flight: usize,
    /// Not asked again before this (it lacked the checkpoint or misbehaved).
    paused_until: Option<Instant>,
}

impl Fetch<'_> {
    fn send(&self, peer: NodeId, chunk: u32) {
        let request = StateSyncMessage::Request { height: self.height, root: self.root, chunk };
        let _ = self.transport.send(peer, &PeerMessage::StateSync(request));
    }

    fn check_shutdown(&self) -> Result<(), StateSyncError> {
        if self.shutdown.load(Ordering::Acquire) {
            return Err(StateSyncError::ShuttingDown);
        }
        if self.newest.load(Ordering::Acquire) > self.height.0 {
            return Err(StateSyncError::Superseded);
        }
        Ok(())
    }

    /// Fetches the manifest: asks the peers in turn until one sends bytes
    /// whose root is the expected one.
    fn manifest(&self) -> Result<Vec<u8>, StateSyncError> {
        if self.peers.is_empty() {
            return Err(StateSyncError::NoPeers);
        }
        let mut turn = 0usize;
        loop {
            self.check_shutdown()?;
            let peer = self.peers[turn % self.peers.len()];
            turn += 1;
            self.send(peer, 0);
            let asked = Instant::now();
            while asked.elapsed() < Duration::from_secs(1) {
                match self.responses.recv_timeout(Duration::from_millis(100)) {
                    Ok((_, StateSyncMessage::Response { height, root, chunk: 0, bytes }))
                        if height == self.height && root == self.root && root_of_encoded(&bytes) == self.root =>
                    {
                        return Ok(bytes);
                    }
                    Ok((from, StateSyncMessage::Unavailable { .. })) if from == peer => break,
                    Ok(_) | Err(RecvTimeoutError::Timeout) => {}
                    Err(RecvTimeoutError::Disconnected) => return Err(StateSyncError::ShuttingDown),
                }
            }
            if turn.is_multiple_of(self.peers.len()) {
                // Nobody had it yet (peers write their checkpoint in the background).
                std::thread::sleep(UNAVAILABLE_BACKOFF);
            }
        }
    }

    /// Runs the sync to completion; the checkpoint is then on disk.
    pub fn run(self) -> Result<SyncStats, StateSyncError> {
        let started = Instant::now();
        tracing::info!(height = %self.height, root = %hex::encode(self.root), "state sync: fetching the manifest");
        let manifest_bytes = self.manifest()?;
        let mut incoming = self.checkpoints.incoming(self.height, manifest_bytes)?;
        let total = incoming.manifest().chunks.len();
        let total_bytes = incoming.manifest().total_bytes();
        let (reused, reused_bytes) = incoming.reuse_local(self.checkpoints);
        tracing::info!(
            height = %self.height,
            chunks = total,
            mib = total_bytes >> 20,
            reused,
            reused_mib = reused_bytes >> 20,
            "state sync: manifest verified; fetching the missing chunks"
        );
        self.metrics.state_sync_chunks_total.set(total as i64);
        let mut peers: BTreeMap<NodeId, PeerState> = self.peers.iter().map(|p| (*p, PeerState::default())).collect();
        let mut in_flight: BTreeMap<u32, (NodeId, Instant)> = BTreeMap::new();
        let mut fetched_bytes = 0u64;
        let mut last_report = Instant::now();
        let mut last_bar = Instant::now();
        let terminal = std::io::IsTerminal::is_terminal(&std::io::stderr());
        let mut turn = 0usize;
        while incoming.missing_count() > 0 {
            self.check_shutdown()?;
            let now = Instant::now();
            // Requests that timed out are asked again.
            let expired: Vec<u32> = in_flight
                .iter()
                .filter(|(_, (_, at))| now.duration_since(*at) > REQUEST_TIMEOUT)
                .map(|(c, _)| *c)
                .collect();
            for chunk in expired {
                if let Some((peer, _)) = in_flight.remove(&chunk)
                    && let Some(p) = peers.get_mut(&peer)
                {
                    p.in_flight = p.in_flight.saturating_sub(1);
                }
            }
            // Fill every available peer's window with missing chunks.
            let ready: Vec<NodeId> = peers
                .iter()
                .filter(|(_, p)| p.paused_until.is_none_or(|t| t <= now) && p.in_flight < IN_FLIGHT_PER_PEER)
                .map(|(n, _)| *n)
                .collect();
            if !ready.is_empty() {
                let wanted: Vec<u32> = incoming.missing().filter(|c| !in_flight.contains_key(c)).collect();
                for chunk in wanted {
                    let Some(peer) = (0..ready.len())
                        .map(|k| ready[(turn + k) % ready.len()])
                        .find(|n| peers[n].in_flight < IN_FLIGHT_PER_PEER)
                    else {
                        break;
                    };
                    turn += 1;
                    self.send(peer, chunk + 1);
                    peers.get_mut(&peer).expect("known peer").in_flight += 1;
                    in_flight.insert(chunk, (peer, now));
                }
            }
            match self.responses.recv_timeout(Duration::from_millis(50)) {
                Ok((from, StateSyncMessage::Response { height, root, chunk, bytes }))
                    if height == self.height && root == self.root && chunk > 0 =>
                {
                    let index = chunk - 1;
                    if in_flight.get(&index).is_some_and(|(p, _)| *p == from) {
                        in_flight.remove(&index);
                        if let Some(p) = peers.get_mut(&from) {
                            p.in_flight = p.in_flight.saturating_sub(1);
                        }
                    }
                    match incoming.add_chunk(index, &bytes) {
                        Ok(true) => {
                            fetched_bytes += bytes.len() as u64;
                            self.metrics.state_sync_bytes_fetched_total.inc_by(bytes.len() as u64);
                        }
                        Ok(false) => {}
                        Err(e) => {
                            tracing::warn!(peer = %from, "state sync: {e}; pausing that peer");
                            if let Some(p) = peers.get_mut(&from) {
                                p.paused_until = Some(Instant::now() + UNAVAILABLE_BACKOFF);
                            }
                        }
                    }
                }
                Ok((from, StateSyncMessage::Unavailable { height, root }))
                    if height == self.height && root == self.root =>
                {
                    // Everything asked of it is asked again elsewhere.
                    in_flight.retain(|_, (p, _)| *p != from);
                    if let Some(p) = peers.get_mut(&from) {
                        p.paused_until = Some(Instant::now() + UNAVAILABLE_BACKOFF);
                        p.in_flight = 0;
                    }
                }
                Ok(_) | Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return Err(StateSyncError::ShuttingDown),
            }
            let done = total - incoming.missing_count();
            self.metrics.state_sync_chunks_done.set(done as i64);
            if terminal && last_bar.elapsed() >= Duration::from_millis(200) {
                last_bar = Instant::now();
                progress_bar(done, total, fetched_bytes, started.elapsed().as_secs_f64());
            }
            if last_report.elapsed() >= Duration::from_secs(1) {
                last_report = Instant::now();
                let secs = started.elapsed().as_secs_f64();
                tracing::info!(
                    height = %self.height,
                    "state sync: {done}/{total} chunks ({:.0}%), {:.1} MiB fetched at {:.1} MiB/s",
                    100.0 * done as f64 / total.max(1) as f64,
                    fetched_bytes as f64 / (1 << 20) as f64,
                    fetched_bytes as f64 / (1 << 20) as f64 / secs.max(1e-3),
                );
            }
        }
        if terminal {
            progress_bar(total, total, fetched_bytes, started.elapsed().as_secs_f64());
            eprintln!();
        }
        let root = incoming.finish(self.checkpoints)?;
        if root != self.root {
            return Err(StateSyncError::RootMismatch { expected: hex::encode(self.root), got: hex::encode(root) });
        }
        let stats =
            SyncStats { chunks: total, reused_chunks: reused, fetched_bytes, seconds: started.elapsed().as_secs_f64() };
        self.metrics.state_syncs_total.inc();
        self.metrics.state_sync_chunks_total.set(0);
        self.metrics.state_sync_chunks_done.set(0);
        tracing::info!(height = %self.height, ?stats, "state sync complete");
        Ok(stats)
    }
}

/// One line, redrawn in place, for a node run in a terminal.
fn progress_bar(done: usize, total: usize, fetched_bytes: u64, secs: f64) {
    const WIDTH: usize = 30;
    let filled = done * WIDTH / total.max(1);
    let mib = fetched_bytes as f64 / (1 << 20) as f64;
    eprint!(
        "\rstate sync [{}{}] {done}/{total} chunks, {mib:.0} MiB at {:.0} MiB/s ",
        "#".repeat(filled),
        "-".repeat(WIDTH - filled),
        mib / secs.max(1e-3)
    );
}

/// Peers in a fixed order (the fetch spreads requests over all of them).
pub fn peers_of(members: &[NodeId], me: NodeId) -> Vec<NodeId> {
    let set: BTreeSet<NodeId> = members.iter().copied().filter(|n| *n != me).collect();
    set.into_iter().collect()
}
