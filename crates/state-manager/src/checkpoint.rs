//! Checkpoints: the whole replicated state at a height, as a directory of
//! files described by a [`Manifest`].
//!
//! ```text
//! checkpoints/<height>/MANIFEST          file table + SHA-256 of every 1 MiB chunk
//!                      state.bin         everything but the memories (postcard)
//!                      memory/<i>-heap.bin, memory/<i>-stable.bin
//!                                        raw memory contents, zero pages as holes
//! ```
//!
//! Memories are stored raw, so a page keeps its offset from one checkpoint
//! to the next and state sync reuses every chunk that did not change. The
//! manifest's root hash names the checkpoint in catch-up packages; every
//! replica computes the same root for the same state.
//!
//! A checkpoint is written into `<height>.tmp`, every file synced, and the
//! directory renamed into place, so a crash leaves either no checkpoint or a
//! complete one. Loading verifies every chunk against the manifest.

use crate::manifest::{CHUNK_SIZE, ChunkEntry, FileEntry, Manifest, ManifestError, chunk_hash, root_of_encoded};
use cairn_state::ReplicatedState;
use cairn_state::page_map::{Memory, PAGE_SIZE, PageBytes, PageMap};
use cairn_types::Height;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

const FORMAT: u32 = 2;
const MANIFEST_FILE: &str = "MANIFEST";
const STATE_FILE: &str = "state.bin";

/// Why a checkpoint could not be written, read or assembled.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("checkpoint {path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("checkpoint {path} is corrupt: {reason}")]
    Corrupt { path: String, reason: String },
    #[error("no checkpoint at height {0}")]
    Missing(Height),
    #[error("manifest: {0}")]
    Manifest(#[from] ManifestError),
    #[error("chunk {index}: {reason}")]
    BadChunk { index: u32, reason: String },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CheckpointError + '_ {
    move |source| CheckpointError::Io { path: path.display().to_string(), source }
}

/// Whose memory a memory file holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
enum MemoryOwner {
    Canister(cairn_types::CanisterId),
    Snapshot(Vec<u8>),
}

/// What `state.bin` says about one owner's two memories.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct MemoryMeta {
    owner: MemoryOwner,
    heap_wasm_pages: u64,
    stable_wasm_pages: u64,
}

#[derive(Serialize)]
struct HeaderRef<'a> {
    format: u32,
    height: Height,
    block_hash: [u8; 32],
    memories: Vec<MemoryMeta>,
    state: &'a ReplicatedState,
}

#[derive(Deserialize)]
struct HeaderOwned {
    format: u32,
    height: Height,
    block_hash: [u8; 32],
    memories: Vec<MemoryMeta>,
    state: ReplicatedState,
}

/// A state restored from disk.
pub struct Restored {
    pub height: Height,
    /// Hash of the block that produced this state.
    pub block_hash: [u8; 32],
    pub state: ReplicatedState,
    /// The checkpoint's manifest root.
    pub root: [u8; 32],
}

fn memory_paths(i: usize) -> (String, String) {
    (format!("memory/{i:06}-heap.bin"), format!("memory/{i:06}-stable.bin"))
}

/// The memories of a state in a fixed order (canisters, then snapshots).
fn memories_of(state: &ReplicatedState) -> Vec<(MemoryOwner, &Memory, &Memory)> {
    let canisters = state.canisters.iter().filter_map(|(id, c)| {
        c.execution_state.as_ref().map(|e| (MemoryOwner::Canister(*id), &e.wasm_memory, &e.stable_memory))
    });
    let snapshots =
        state.snapshots.iter().map(|(id, s)| (MemoryOwner::Snapshot(id.clone()), &s.wasm_memory, &s.stable_memory));
    canisters.chain(snapshots).collect()
}

/// A file being written, with its chunk hashes.
struct Written {
    path: String,
    size: u64,
    hashes: Vec<(u64, u32, [u8; 32])>,
}

fn zero_chunk_hash() -> [u8; 32] {
    static ZERO: std::sync::OnceLock<[u8; 32]> = std::sync::OnceLock::new();
    *ZERO.get_or_init(|| chunk_hash(&vec![0; CHUNK_SIZE]))
}

/// Writes `bytes` as one file and hashes its chunks.
fn write_bytes(dir: &Path, rel: &str, bytes: &[u8]) -> Result<Written, CheckpointError> {
    let path = dir.join(rel);
    let file = File::create(&path).map_err(io(&path))?;
    file.write_all_at(bytes, 0).map_err(io(&path))?;
    file.sync_all().map_err(io(&path))?;
    let mut hashes = Vec::new();
    for (i, chunk) in bytes.chunks(CHUNK_SIZE).enumerate() {
        hashes.push(((i * CHUNK_SIZE) as u64, chunk.len() as u32, chunk_hash(chunk)));
    }
    Ok(Written { path: rel.to_string(), size: bytes.len() as u64, hashes })
}

/// Writes a memory raw: its stored pages at their offsets, all-zero chunks
/// as holes. The file ends after the last stored page.
fn write_memory(dir: &Path, rel: &str, memory: &PageMap) -> Result<Written, CheckpointError> {
    let path = dir.join(rel);
    let file = File::create(&path).map_err(io(&path))?;
    let pages_per_chunk = (CHUNK_SIZE / PAGE_SIZE) as u64;
    let mut by_chunk: BTreeMap<u64, Vec<(u64, &PageBytes)>> = BTreeMap::new();
    for (index, page) in memory.stored_pages() {
        by_chunk.entry(index / pages_per_chunk).or_default().push((index, page));
    }
    // Pages come in index order: the last one ends the file.
    let last_page = by_chunk.values().next_back().and_then(|pages| pages.last()).map(|(i, _)| *i);
    let size = last_page.map_or(0, |i| (i + 1) * PAGE_SIZE as u64);
    let mut buf = vec![0u8; CHUNK_SIZE];
    let mut hashes = Vec::new();
    let n_chunks = size.div_ceil(CHUNK_SIZE as u64);
    for c in 0..n_chunks {
        let offset = c * CHUNK_SIZE as u64;
        let len = (size - offset).min(CHUNK_SIZE as u64) as usize;
        let hash = match by_chunk.get(&c) {
            None if len == CHUNK_SIZE => zero_chunk_hash(),
            None => chunk_hash(&vec![0; len]),
            Some(pages) => {
                buf.fill(0);
                for (index, page) in pages {
                    let at = ((index % pages_per_chunk) as usize) * PAGE_SIZE;
                    buf[at..at + PAGE_SIZE].copy_from_slice(&page[..]);
                }
                file.write_all_at(&buf[..len], offset).map_err(io(&path))?;
                chunk_hash(&buf[..len])
            }
        };
        hashes.push((offset, len as u32, hash));
    }
    file.set_len(size).map_err(io(&path))?;
    file.sync_all().map_err(io(&path))?;
    Ok(Written { path: rel.to_string(), size, hashes })
}

fn build_manifest(mut written: Vec<Written>) -> Manifest {
    written.sort_by(|a, b| a.path.cmp(&b.path));
    let mut m = Manifest::default();
    for (i, w) in written.into_iter().enumerate() {
        m.files.push(FileEntry { path: w.path, size: w.size });
        for (offset, size, hash) in w.hashes {
            m.chunks.push(ChunkEntry { file: i as u32, offset, size, hash });
        }
    }
    m
}

fn sync_dir(dir: &Path) -> Result<(), CheckpointError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))
}

/// Reads a checkpoint's files, verifying every chunk against the manifest.
fn read_verified(dir: &Path, manifest: &Manifest) -> Result<BTreeMap<String, Vec<u8>>, CheckpointError> {
    let mut files = BTreeMap::new();
    for (i, f) in manifest.files.iter().enumerate() {
        let path = dir.join(&f.path);
        let bytes = std::fs::read(&path).map_err(io(&path))?;
        if bytes.len() as u64 != f.size {
            return Err(CheckpointError::Corrupt {
                path: path.display().to_string(),
                reason: format!("{} bytes, the manifest says {}", bytes.len(), f.size),
            });
        }
        for c in manifest.chunks.iter().filter(|c| c.file == i as u32) {
            let chunk = &bytes[c.offset as usize..c.offset as usize + c.size as usize];
            if chunk_hash(chunk) != c.hash {
                return Err(CheckpointError::Corrupt {
                    path: path.display().to_string(),
                    reason: format!("chunk at offset {} does not match the manifest", c.offset),
                });
            }
        }
        files.insert(f.path.clone(), bytes);
    }
    Ok(files)
}

fn memory_from_raw(bytes: &[u8], size_wasm_pages: u64) -> Memory {
    let mut page_map = PageMap::new();
    page_map.update(bytes.chunks_exact(PAGE_SIZE).enumerate().filter_map(|(i, p)| {
        let page: &PageBytes = p.try_into().expect("exact chunks");
        page.iter().any(|b| *b != 0).then_some((i as u64, page))
    }));
    Memory { page_map, size_wasm_pages }
}

/// The checkpoint directory of a node.
pub struct Checkpoints {
    dir: PathBuf,
}

impl Checkpoints {
    /// Uses (and creates) `dir`; removes unfinished checkpoints a crash left.
    pub fn open(dir: PathBuf) -> Result<Self, CheckpointError> {
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        for entry in std::fs::read_dir(&dir).map_err(io(&dir))? {
            let path = entry.map_err(io(&dir))?.path();
            let ext = path.extension().and_then(|e| e.to_str());
            if matches!(ext, Some("tmp") | Some("sync")) {
                std::fs::remove_dir_all(&path).map_err(io(&path))?;
            }
        }
        Ok(Checkpoints { dir })
    }

    fn path(&self, height: Height) -> PathBuf {
        self.dir.join(format!("{:020}", height.0))
    }

    /// Heights of the complete checkpoints on disk, ascending.
    pub fn heights(&self) -> Result<Vec<Height>, CheckpointError> {
        let mut heights = Vec::new();
        for entry in std::fs::read_dir(&self.dir).map_err(io(&self.dir))? {
            let entry = entry.map_err(io(&self.dir))?;
            let name = entry.file_name();
            if let Some(h) = name.to_str().filter(|n| n.len() == 20).and_then(|n| n.parse().ok())
                && entry.path().join(MANIFEST_FILE).exists()
            {
                heights.push(Height(h));
            }
        }
        heights.sort();
        Ok(heights)
    }

    /// Writes `state` as the checkpoint of `height`; returns its manifest root.
    /// Rewriting an existing height is a no-op that returns its root.
    pub fn write(
        &self,
        height: Height,
        block_hash: [u8; 32],
        state: &ReplicatedState,
    ) -> Result<[u8; 32], CheckpointError> {
        let target = self.path(height);
        if target.join(MANIFEST_FILE).exists() {
            return self.root(height);
        }
        let tmp = target.with_extension("tmp");
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp).map_err(io(&tmp))?;
        }
        std::fs::create_dir_all(tmp.join("memory")).map_err(io(&tmp))?;
        let memories = memories_of(state);
        let metas = memories
            .iter()
            .map(|(owner, heap, stable)| MemoryMeta {
                owner: owner.clone(),
                heap_wasm_pages: heap.size_wasm_pages,
                stable_wasm_pages: stable.size_wasm_pages,
            })
            .collect();
        let header = HeaderRef { format: FORMAT, height, block_hash, memories: metas, state };
        let bytes = postcard::to_stdvec(&header).map_err(|e| CheckpointError::Corrupt {
            path: tmp.display().to_string(),
            reason: format!("cannot encode the state: {e}"),
        })?;
        let mut written = vec![write_bytes(&tmp, STATE_FILE, &bytes)?];
        for (i, (_, heap, stable)) in memories.iter().enumerate() {
            let (heap_path, stable_path) = memory_paths(i);
            written.push(write_memory(&tmp, &heap_path, &heap.page_map)?);
            written.push(write_memory(&tmp, &stable_path, &stable.page_map)?);
        }
        let manifest = build_manifest(written);
        let root = self.install(&tmp, &target, &manifest.encode())?;
        Ok(root)
    }

    /// Writes the manifest last, syncs, and renames `tmp` to `target`.
    fn install(&self, tmp: &Path, target: &Path, manifest: &[u8]) -> Result<[u8; 32], CheckpointError> {
        let path = tmp.join(MANIFEST_FILE);
        let file = File::create(&path).map_err(io(&path))?;
        file.write_all_at(manifest, 0).map_err(io(&path))?;
        file.sync_all().map_err(io(&path))?;
        if tmp.join("memory").exists() {
            sync_dir(&tmp.join("memory"))?;
        }
        sync_dir(tmp)?;
        std::fs::rename(tmp, target).map_err(io(target))?;
        sync_dir(&self.dir)?;
        Ok(root_of_encoded(manifest))
    }

    /// The encoded manifest of a checkpoint.
    pub fn manifest_bytes(&self, height: Height) -> Result<Vec<u8>, CheckpointError> {
        let path = self.path(height).join(MANIFEST_FILE);
        std::fs::read(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => CheckpointError::Missing(height),
            _ => CheckpointError::Io { path: path.display().to_string(), source: e },
        })
    }

    /// The manifest root of a checkpoint (what a catch-up package certifies).
    pub fn root(&self, height: Height) -> Result<[u8; 32], CheckpointError> {
        Ok(root_of_encoded(&self.manifest_bytes(height)?))
    }

    /// The bytes of chunk `index` of a checkpoint's manifest, read from disk
    /// (what state sync serves to peers). Not verified here: the receiver
    /// checks every chunk against the manifest.
    pub fn read_chunk(&self, height: Height, manifest: &Manifest, index: u32) -> Result<Vec<u8>, CheckpointError> {
        let bad = |reason: &str| CheckpointError::BadChunk { index, reason: reason.into() };
        let c = manifest.chunks.get(index as usize).ok_or_else(|| bad("no such chunk"))?;
        let f = &manifest.files[c.file as usize];
        let path = self.path(height).join(&f.path);
        let file = File::open(&path).map_err(io(&path))?;
        let mut buf = vec![0; c.size as usize];
        file.read_exact_at(&mut buf, c.offset).map_err(io(&path))?;
        Ok(buf)
    }

    /// Loads the checkpoint of `height`, verifying it against its manifest.
    pub fn load(&self, height: Height) -> Result<Restored, CheckpointError> {
        let dir = self.path(height);
        let corrupt = |reason: String| CheckpointError::Corrupt { path: dir.display().to_string(), reason };
        let manifest_bytes = self.manifest_bytes(height)?;
        let manifest = Manifest::decode(&manifest_bytes)?;
        let mut files = read_verified(&dir, &manifest)?;
        let state_bytes = files.remove(STATE_FILE).ok_or_else(|| corrupt("no state.bin".into()))?;
        let header: HeaderOwned = postcard::from_bytes(&state_bytes).map_err(|e| corrupt(e.to_string()))?;
        if header.format != FORMAT || header.height != height {
            return Err(corrupt(format!("format {} at height {}", header.format, header.height)));
        }
        let mut state = header.state;
        for (i, meta) in header.memories.into_iter().enumerate() {
            let (heap_path, stable_path) = memory_paths(i);
            let raw = |p: &str| files.get(p).map(Vec::as_slice).ok_or_else(|| corrupt(format!("no {p}")));
            let heap = memory_from_raw(raw(&heap_path)?, meta.heap_wasm_pages);
            let stable = memory_from_raw(raw(&stable_path)?, meta.stable_wasm_pages);
            let slot = match &meta.owner {
                MemoryOwner::Canister(id) => state
                    .canisters
                    .get_mut(id)
                    .and_then(|c| c.execution_state.as_mut())
                    .map(|e| (&mut e.wasm_memory, &mut e.stable_memory)),
                MemoryOwner::Snapshot(id) => {
                    state.snapshots.get_mut(id).map(|s| (&mut s.wasm_memory, &mut s.stable_memory))
                }
            };
            let (h, s) = slot.ok_or_else(|| corrupt(format!("memories of unknown owner {:?}", meta.owner)))?;
            *h = heap;
            *s = stable;
        }
        Ok(Restored { height, block_hash: header.block_hash, state, root: root_of_encoded(&manifest_bytes) })
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
            std::fs::remove_dir_all(&p).map_err(io(&p))?;
        }
        Ok(())
    }

    /// Deletes every checkpoint above `height` (a node that adopts a
    /// catch-up package drops states that may not be on the agreed chain).
    pub fn remove_above(&self, height: Height) -> Result<(), CheckpointError> {
        for h in self.heights()?.into_iter().filter(|h| *h > height) {
            let p = self.path(h);
            std::fs::remove_dir_all(&p).map_err(io(&p))?;
        }
        Ok(())
    }

    /// Starts assembling the checkpoint of `height` from a manifest whose
    /// root the caller trusts (state sync).
    pub fn incoming(&self, height: Height, manifest_bytes: Vec<u8>) -> Result<IncomingCheckpoint, CheckpointError> {
        let manifest = Manifest::decode(&manifest_bytes)?;
        let tmp = self.path(height).with_extension("sync");
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp).map_err(io(&tmp))?;
        }
        std::fs::create_dir_all(&tmp).map_err(io(&tmp))?;
        let mut files = Vec::new();
        for f in &manifest.files {
            let path = tmp.join(&f.path);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).map_err(io(parent))?;
            }
            let file = File::create(&path).map_err(io(&path))?;
            file.set_len(f.size).map_err(io(&path))?;
            files.push(file);
        }
        let missing = (0..manifest.chunks.len() as u32).collect();
        Ok(IncomingCheckpoint { target: self.path(height), tmp, manifest, manifest_bytes, files, missing })
    }

    /// Where each chunk hash can be found in the newest local checkpoint
    /// (state sync copies these instead of fetching them).
    fn local_chunks(&self) -> Option<(Height, Manifest)> {
        let h = *self.heights().ok()?.last()?;
        let m = Manifest::decode(&self.manifest_bytes(h).ok()?).ok()?;
        Some((h, m))
    }
}

/// A checkpoint being assembled chunk by chunk (state sync).
pub struct IncomingCheckpoint {
    target: PathBuf,
    tmp: PathBuf,
    manifest: Manifest,
    manifest_bytes: Vec<u8>,
    files: Vec<File>,
    missing: BTreeSet<u32>,
}

impl IncomingCheckpoint {
    /// The manifest being filled in.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Chunks still to fetch, ascending.
    pub fn missing(&self) -> impl Iterator<Item = u32> + '_ {
        self.missing.iter().copied()
    }

    /// How many chunks are still missing.
    pub fn missing_count(&self) -> usize {
        self.missing.len()
    }

    /// Copies every missing chunk whose hash a local checkpoint has (and
    /// every all-zero chunk, which needs no bytes at all); returns how many
    /// chunks and bytes that saved.
    pub fn reuse_local(&mut self, local: &Checkpoints) -> (usize, u64) {
        let zero = zero_chunk_hash();
        let mut known: BTreeMap<[u8; 32], u32> = BTreeMap::new();
        let local_manifest = local.local_chunks();
        if let Some((_, m)) = &local_manifest {
            for (i, c) in m.chunks.iter().enumerate() {
                known.entry(c.hash).or_insert(i as u32);
            }
        }
        let mut reused = (0usize, 0u64);
        let candidates: Vec<u32> = self.missing.iter().copied().collect();
        for index in candidates {
            let c = self.manifest.chunks[index as usize];
            let bytes = if c.hash == zero && c.size as usize == CHUNK_SIZE {
                Some(vec![0; CHUNK_SIZE])
            } else if let (Some(found), Some((h, m))) = (known.get(&c.hash), &local_manifest) {
                local.read_chunk(*h, m, *found).ok()
            } else {
                None
            };
            if let Some(bytes) = bytes
                && self.add_chunk(index, &bytes).is_ok()
            {
                reused.0 += 1;
                reused.1 += c.size as u64;
            }
        }
        reused
    }

    /// Verifies one fetched chunk against the manifest and writes it;
    /// `Ok(false)` if it was already there.
    pub fn add_chunk(&mut self, index: u32, bytes: &[u8]) -> Result<bool, CheckpointError> {
        let bad = |reason: String| CheckpointError::BadChunk { index, reason };
        let c = *self.manifest.chunks.get(index as usize).ok_or_else(|| bad("no such chunk".into()))?;
        if !self.missing.contains(&index) {
            return Ok(false);
        }
        if bytes.len() != c.size as usize || chunk_hash(bytes) != c.hash {
            return Err(bad("does not match the manifest".into()));
        }
        if bytes.iter().any(|b| *b != 0) {
            let path = self.tmp.join(&self.manifest.files[c.file as usize].path);
            self.files[c.file as usize].write_all_at(bytes, c.offset).map_err(io(&path))?;
        }
        self.missing.remove(&index);
        Ok(true)
    }

    /// Syncs and installs the complete checkpoint; returns its root.
    pub fn finish(self, checkpoints: &Checkpoints) -> Result<[u8; 32], CheckpointError> {
        if let Some(index) = self.missing.first() {
            return Err(CheckpointError::BadChunk { index: *index, reason: "still missing".into() });
        }
        for (f, entry) in self.files.iter().zip(&self.manifest.files) {
            f.sync_all().map_err(io(&self.tmp.join(&entry.path)))?;
        }
        if self.target.exists() {
            std::fs::remove_dir_all(&self.target).map_err(io(&self.target))?;
        }
        let mut dirs: BTreeSet<PathBuf> = BTreeSet::new();
        for f in &self.manifest.files {
            if let Some(parent) = self.tmp.join(&f.path).parent() {
                dirs.insert(parent.to_path_buf());
            }
        }
        for d in dirs {
            sync_dir(&d)?;
        }
        checkpoints.install(&self.tmp, &self.target, &self.manifest_bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_state::{SubnetType, SystemMetadata};
    use cairn_types::{Principal, SubnetId};

    fn state(height: u64) -> ReplicatedState {
        let mut state = ReplicatedState::new(SystemMetadata::single_subnet(
            SubnetId(Principal::self_authenticating(b"s")),
            SubnetType::Application,
            13,
            vec![1, 2, 3],
        ));
        state.metadata.height = Height(height);
        state
    }

    #[test]
    fn round_trip_and_corruption() {
        let dir = tempfile::tempdir().unwrap();
        let cps = Checkpoints::open(dir.path().join("cp")).unwrap();
        let s = state(7);
        let root = cps.write(Height(7), [9; 32], &s).unwrap();
        let r = cps.load(Height(7)).unwrap();
        assert_eq!(r.state.state_hash(), s.state_hash());
        assert_eq!((r.block_hash, r.root), ([9; 32], root));
        // Same state, same root, on any node.
        let other = Checkpoints::open(dir.path().join("other")).unwrap();
        assert_eq!(other.write(Height(7), [9; 32], &s).unwrap(), root);
        // Flip a byte: the manifest catches it and load_latest falls back.
        cps.write(Height(8), [8; 32], &state(8)).unwrap();
        let p = dir.path().join("cp").join(format!("{:020}", 8)).join(STATE_FILE);
        let mut bytes = std::fs::read(&p).unwrap();
        bytes[10] ^= 1;
        std::fs::write(&p, bytes).unwrap();
        assert!(matches!(cps.load(Height(8)), Err(CheckpointError::Corrupt { .. })));
        assert_eq!(cps.load_latest().unwrap().unwrap().height, Height(7));
        cps.retain_latest(1).unwrap();
        assert_eq!(cps.heights().unwrap(), vec![Height(8)]);
        // An unfinished checkpoint (crash mid-write) is not listed and is cleaned up on open.
        std::fs::create_dir_all(dir.path().join("cp").join(format!("{:020}.tmp", 9))).unwrap();
        std::fs::create_dir_all(dir.path().join("cp").join(format!("{:020}", 10))).unwrap();
        assert_eq!(cps.heights().unwrap(), vec![Height(8)]);
        Checkpoints::open(dir.path().join("cp")).unwrap();
        assert!(!dir.path().join("cp").join(format!("{:020}.tmp", 9)).exists());
    }

    #[test]
    fn raw_memories_round_trip_and_chunks_are_assembled_with_reuse() {
        let mut heap = PageMap::new();
        heap.write(0, &[1; 100]);
        heap.write(3 * CHUNK_SIZE as u64 + 17, &[2; 5000]);
        let memory = Memory { page_map: heap.clone(), size_wasm_pages: 64 };
        let hash = |m: &Memory| m.page_map.content_hash();
        let written = {
            let dir = tempfile::tempdir().unwrap();
            let w = write_memory(dir.path(), "m.bin", &memory.page_map).unwrap();
            let raw = std::fs::read(dir.path().join("m.bin")).unwrap();
            assert_eq!(raw.len() as u64, w.size);
            assert_eq!(hash(&memory_from_raw(&raw, 64)), hash(&memory));
            w
        };
        assert_eq!(written.hashes.len(), 4);
        assert_eq!(written.hashes[1].2, zero_chunk_hash());

        // State sync: assemble a copy chunk by chunk, reusing what is local.
        let dir = tempfile::tempdir().unwrap();
        let source = Checkpoints::open(dir.path().join("a")).unwrap();
        let s = state(20);
        let root = source.write(Height(20), [1; 32], &s).unwrap();
        let manifest_bytes = source.manifest_bytes(Height(20)).unwrap();
        let manifest = Manifest::decode(&manifest_bytes).unwrap();
        let dest = Checkpoints::open(dir.path().join("b")).unwrap();
        dest.write(Height(10), [1; 32], &state(10)).unwrap();
        let mut incoming = dest.incoming(Height(20), manifest_bytes).unwrap();
        let before = incoming.missing_count();
        incoming.reuse_local(&dest);
        let missing: Vec<u32> = incoming.missing().collect();
        assert!(missing.len() <= before);
        for index in missing {
            let mut bytes = source.read_chunk(Height(20), &manifest, index).unwrap();
            bytes.push(0);
            assert!(incoming.add_chunk(index, &bytes).is_err(), "a wrong chunk is refused");
            bytes.pop();
            assert!(incoming.add_chunk(index, &bytes).unwrap());
        }
        assert_eq!(incoming.finish(&dest).unwrap(), root);
        assert_eq!(dest.load(Height(20)).unwrap().state.state_hash(), s.state_hash());
    }
}
