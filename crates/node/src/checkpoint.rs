//! Checkpoints: the whole replicated state at a height, on disk.
//!
//! A checkpoint is one file `checkpoints/<height>.bin`: the postcard encoding
//! of the state (memories included) followed by its SHA-256. It is written
//! to a temporary file, synced, and renamed into place, so a crash leaves
//! either the previous checkpoint or the new one, never a torn file.

use cairn_state::ReplicatedState;
use cairn_state::page_map::Memory;
use cairn_types::{CanisterId, Height};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

const FORMAT: u32 = 1;

/// Why a checkpoint could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("checkpoint {path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("checkpoint {path} is corrupt: {reason}")]
    Corrupt { path: String, reason: String },
}

#[derive(Serialize)]
struct CheckpointRef<'a> {
    format: u32,
    height: Height,
    block_hash: [u8; 32],
    state: &'a ReplicatedState,
    memories: Vec<(CanisterId, &'a Memory, &'a Memory)>,
    snapshot_memories: Vec<(&'a Vec<u8>, &'a Memory, &'a Memory)>,
}

#[derive(Deserialize)]
struct CheckpointOwned {
    format: u32,
    height: Height,
    block_hash: [u8; 32],
    state: ReplicatedState,
    memories: Vec<(CanisterId, Memory, Memory)>,
    snapshot_memories: Vec<(Vec<u8>, Memory, Memory)>,
}

/// A state restored from disk.
pub struct Restored {
    pub height: Height,
    /// Hash of the block that produced this state.
    pub block_hash: [u8; 32],
    pub state: ReplicatedState,
}

/// Writes through a hash, so the file's checksum costs no second pass.
struct HashingWriter<W: Write> {
    inner: W,
    hash: Sha256,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// The checkpoint directory of a node.
pub struct Checkpoints {
    dir: PathBuf,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CheckpointError + '_ {
    move |source| CheckpointError::Io { path: path.display().to_string(), source }
}

impl Checkpoints {
    /// Uses (and creates) `dir`.
    pub fn open(dir: PathBuf) -> Result<Self, CheckpointError> {
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        Ok(Checkpoints { dir })
    }

    fn path(&self, height: Height) -> PathBuf {
        self.dir.join(format!("{:020}.bin", height.0))
    }

    /// Heights of the checkpoints on disk, ascending.
    pub fn heights(&self) -> Result<Vec<Height>, CheckpointError> {
        let mut heights = Vec::new();
        for entry in std::fs::read_dir(&self.dir).map_err(io(&self.dir))? {
            let name = entry.map_err(io(&self.dir))?.file_name();
            if let Some(h) = name.to_str().and_then(|n| n.strip_suffix(".bin")).and_then(|n| n.parse().ok()) {
                heights.push(Height(h));
            }
        }
        heights.sort();
        Ok(heights)
    }

    /// Writes `state` as the checkpoint of `height`.
    pub fn write(&self, height: Height, block_hash: [u8; 32], state: &ReplicatedState) -> Result<(), CheckpointError> {
        let path = self.path(height);
        let tmp = path.with_extension("tmp");
        let memories = state
            .canisters
            .iter()
            .filter_map(|(id, c)| c.execution_state.as_ref().map(|e| (*id, &e.wasm_memory, &e.stable_memory)))
            .collect();
        let snapshot_memories = state.snapshots.iter().map(|(id, s)| (id, &s.wasm_memory, &s.stable_memory)).collect();
        let data = CheckpointRef { format: FORMAT, height, block_hash, state, memories, snapshot_memories };
        let file = std::fs::File::create(&tmp).map_err(io(&tmp))?;
        let mut w = HashingWriter { inner: BufWriter::with_capacity(1 << 20, file), hash: Sha256::new() };
        postcard::to_io(&data, &mut w)
            .map_err(|e| CheckpointError::Corrupt { path: tmp.display().to_string(), reason: e.to_string() })?;
        let digest: [u8; 32] = w.hash.finalize().into();
        let mut inner = w.inner;
        inner.write_all(&digest).map_err(io(&tmp))?;
        let file = inner
            .into_inner()
            .map_err(|e| CheckpointError::Io { path: tmp.display().to_string(), source: e.into_error() })?;
        file.sync_all().map_err(io(&tmp))?;
        std::fs::rename(&tmp, &path).map_err(io(&path))?;
        std::fs::File::open(&self.dir).and_then(|d| d.sync_all()).map_err(io(&self.dir))?;
        Ok(())
    }

    /// Loads the checkpoint of `height`, verifying its checksum.
    pub fn load(&self, height: Height) -> Result<Restored, CheckpointError> {
        let path = self.path(height);
        let corrupt = |reason: String| CheckpointError::Corrupt { path: path.display().to_string(), reason };
        let bytes = std::fs::read(&path).map_err(io(&path))?;
        if bytes.len() < 32 {
            return Err(corrupt("truncated".into()));
        }
        let (body, digest) = bytes.split_at(bytes.len() - 32);
        if Sha256::digest(body).as_slice() != digest {
            return Err(corrupt("checksum mismatch".into()));
        }
        let data: CheckpointOwned = postcard::from_bytes(body).map_err(|e| corrupt(e.to_string()))?;
        if data.format != FORMAT || data.height != height {
            return Err(corrupt(format!("format {} at height {}", data.format, data.height)));
        }
        let mut state = data.state;
        for (id, heap, stable) in data.memories {
            let exec = state
                .canisters
                .get_mut(&id)
                .and_then(|c| c.execution_state.as_mut())
                .ok_or_else(|| corrupt(format!("memories of unknown canister {id}")))?;
            exec.wasm_memory = heap;
            exec.stable_memory = stable;
        }
        for (id, heap, stable) in data.snapshot_memories {
            let snapshot =
                state.snapshots.get_mut(&id).ok_or_else(|| corrupt("memories of unknown snapshot".into()))?;
            snapshot.wasm_memory = heap;
            snapshot.stable_memory = stable;
        }
        Ok(Restored { height, block_hash: data.block_hash, state })
    }

    /// The newest checkpoint that loads, skipping (and reporting) corrupt ones.
    pub fn load_latest(&self) -> Result<Option<Restored>, CheckpointError> {
        for height in self.heights()?.into_iter().rev() {
            match self.load(height) {
                Ok(r) => return Ok(Some(r)),
                Err(e) => tracing::warn!("skipping checkpoint: {e}"),
            }
        }
        Ok(None)
    }

    /// Deletes all checkpoints except the newest `keep`.
    pub fn retain_latest(&self, keep: usize) -> Result<(), CheckpointError> {
        let heights = self.heights()?;
        for h in heights.iter().take(heights.len().saturating_sub(keep)) {
            let p = self.path(*h);
            std::fs::remove_file(&p).map_err(io(&p))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_state::{SubnetType, SystemMetadata};
    use cairn_types::{Principal, SubnetId};

    #[test]
    fn round_trip_and_corruption() {
        let dir = tempfile::tempdir().unwrap();
        let cps = Checkpoints::open(dir.path().join("cp")).unwrap();
        let mut state = ReplicatedState::new(SystemMetadata::single_subnet(
            SubnetId(Principal::self_authenticating(b"s")),
            SubnetType::Application,
            13,
            vec![1, 2, 3],
        ));
        state.metadata.height = Height(7);
        cps.write(Height(7), [9; 32], &state).unwrap();
        let r = cps.load(Height(7)).unwrap();
        assert_eq!(r.state.state_hash(), state.state_hash());
        assert_eq!(r.block_hash, [9; 32]);
        // Flip a byte: the checksum catches it and load_latest falls back.
        cps.write(Height(8), [8; 32], &state).unwrap();
        let p = dir.path().join("cp").join(format!("{:020}.bin", 8));
        let mut bytes = std::fs::read(&p).unwrap();
        bytes[10] ^= 1;
        std::fs::write(&p, bytes).unwrap();
        assert!(matches!(cps.load(Height(8)), Err(CheckpointError::Corrupt { .. })));
        assert_eq!(cps.load_latest().unwrap().unwrap().height, Height(7));
        cps.retain_latest(1).unwrap();
        assert_eq!(cps.heights().unwrap(), vec![Height(8)]);
    }
}
