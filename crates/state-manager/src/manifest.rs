//! The manifest of a checkpoint: which files it has and the SHA-256 of every
//! 1 MiB chunk of them. Its hash (the *root*) names the checkpoint: catch-up
//! packages carry it, and state sync verifies every fetched byte against it.
//!
//! The encoding is explicit (big-endian integers, length-prefixed strings)
//! rather than serde, because every replica must compute the same root for
//! the same state, today and after any dependency upgrade.

use sha2::{Digest, Sha256};

/// Bytes per chunk (the last chunk of a file may be shorter).
pub const CHUNK_SIZE: usize = 1 << 20;

const MANIFEST_DOMAIN: &[u8] = b"\x13cairn-state-manifest";
const CHUNK_DOMAIN: &[u8] = b"\x10cairn-state-chunk";
const VERSION: u32 = 1;
/// Upper bound on the entries a decoded manifest may claim (a hostile peer
/// must not make us allocate without limit): 16 M chunks of 1 MiB = 16 TiB.
const MAX_ENTRIES: u64 = 1 << 24;

/// Why manifest bytes were refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ManifestError {
    #[error("manifest truncated")]
    Truncated,
    #[error("manifest version {0} is not supported")]
    Version(u32),
    #[error("manifest is inconsistent: {0}")]
    Inconsistent(String),
}

/// One file of a checkpoint, by path relative to the checkpoint directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileEntry {
    pub path: String,
    pub size: u64,
}

/// One chunk of one file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkEntry {
    /// Index into [`Manifest::files`].
    pub file: u32,
    pub offset: u64,
    pub size: u32,
    pub hash: [u8; 32],
}

/// Files (sorted by path) and their chunks (in file order, then offset).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Manifest {
    pub files: Vec<FileEntry>,
    pub chunks: Vec<ChunkEntry>,
}

/// The hash of one chunk's bytes.
pub fn chunk_hash(bytes: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(CHUNK_DOMAIN);
    h.update(bytes);
    h.finalize().into()
}

impl Manifest {
    /// The canonical bytes (also what a checkpoint stores as `MANIFEST`).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 + self.files.len() * 48 + self.chunks.len() * 48);
        out.extend_from_slice(&VERSION.to_be_bytes());
        out.extend_from_slice(&(self.files.len() as u64).to_be_bytes());
        for f in &self.files {
            out.extend_from_slice(&(f.path.len() as u32).to_be_bytes());
            out.extend_from_slice(f.path.as_bytes());
            out.extend_from_slice(&f.size.to_be_bytes());
        }
        out.extend_from_slice(&(self.chunks.len() as u64).to_be_bytes());
        for c in &self.chunks {
            out.extend_from_slice(&c.file.to_be_bytes());
            out.extend_from_slice(&c.offset.to_be_bytes());
            out.extend_from_slice(&c.size.to_be_bytes());
            out.extend_from_slice(&c.hash);
        }
        out
    }

    /// Parses and checks canonical bytes: chunks must tile every file exactly.
    pub fn decode(bytes: &[u8]) -> Result<Manifest, ManifestError> {
        let mut r = Reader(bytes);
        let version = r.u32()?;
        if version != VERSION {
            return Err(ManifestError::Version(version));
        }
        let n_files = r.count()?;
        let mut files = Vec::with_capacity(n_files.min(1024) as usize);
        for _ in 0..n_files {
            let len = r.u32()? as usize;
            let path = String::from_utf8(r.take(len)?.to_vec())
                .map_err(|_| ManifestError::Inconsistent("a path is not UTF-8".into()))?;
            files.push(FileEntry { path, size: r.u64()? });
        }
        let n_chunks = r.count()?;
        let mut chunks = Vec::with_capacity(n_chunks.min(1 << 16) as usize);
        for _ in 0..n_chunks {
            let file = r.u32()?;
            let offset = r.u64()?;
            let size = r.u32()?;
            let hash = r.take(32)?.try_into().expect("32 bytes");
            chunks.push(ChunkEntry { file, offset, size, hash });
        }
        if !r.0.is_empty() {
            return Err(ManifestError::Inconsistent("trailing bytes".into()));
        }
        let m = Manifest { files, chunks };
        m.check()?;
        Ok(m)
    }

    /// Paths sorted and safe (relative, no `..`), chunks tiling each file in
    /// order with full-size chunks except the last.
    fn check(&self) -> Result<(), ManifestError> {
        let bad = |s: String| Err(ManifestError::Inconsistent(s));
        for w in self.files.windows(2) {
            if w[0].path >= w[1].path {
                return bad(format!("paths not sorted at {}", w[1].path));
            }
        }
        for f in &self.files {
            let unsafe_path = f.path.is_empty()
                || f.path.starts_with('/')
                || f.path.split('/').any(|c| c.is_empty() || c == "." || c == "..");
            if unsafe_path {
                return bad(format!("unsafe path {:?}", f.path));
            }
        }
        let mut next = vec![0u64; self.files.len()];
        let mut last_file = 0u32;
        for c in &self.chunks {
            let Some(file) = self.files.get(c.file as usize) else { return bad(format!("chunk of file {}", c.file)) };
            if c.file < last_file || c.offset != next[c.file as usize] || c.size == 0 || c.size as usize > CHUNK_SIZE {
                return bad(format!("chunk at {} of {} out of place", c.offset, file.path));
            }
            last_file = c.file;
            next[c.file as usize] += c.size as u64;
            if next[c.file as usize] < file.size && (c.size as usize) < CHUNK_SIZE {
                return bad(format!("short chunk inside {}", file.path));
            }
        }
        for (f, n) in self.files.iter().zip(next) {
            if f.size != n {
                return bad(format!("{} has {} bytes, its chunks {n}", f.path, f.size));
            }
        }
        Ok(())
    }

    /// The root hash: what catch-up packages certify.
    pub fn root_hash(&self) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(MANIFEST_DOMAIN);
        h.update(self.encode());
        h.finalize().into()
    }

    /// Total bytes of all files.
    pub fn total_bytes(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }
}

/// The root of encoded manifest bytes (equal to `decode(bytes).root_hash()`).
pub fn root_of_encoded(bytes: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(MANIFEST_DOMAIN);
    h.update(bytes);
    h.finalize().into()
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], ManifestError> {
        if self.0.len() < n {
            return Err(ManifestError::Truncated);
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }
    fn u32(&mut self) -> Result<u32, ManifestError> {
        Ok(u32::from_be_bytes(self.take(4)?.try_into().expect("4 bytes")))
    }
    fn u64(&mut self) -> Result<u64, ManifestError> {
        Ok(u64::from_be_bytes(self.take(8)?.try_into().expect("8 bytes")))
    }
    fn count(&mut self) -> Result<u64, ManifestError> {
        let n = self.u64()?;
        if n > MAX_ENTRIES {
            return Err(ManifestError::Inconsistent(format!("{n} entries")));
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Manifest {
        Manifest {
            files: vec![
                FileEntry { path: "memory/000000.bin".into(), size: CHUNK_SIZE as u64 + 5 },
                FileEntry { path: "state.bin".into(), size: 3 },
            ],
            chunks: vec![
                ChunkEntry { file: 0, offset: 0, size: CHUNK_SIZE as u32, hash: [1; 32] },
                ChunkEntry { file: 0, offset: CHUNK_SIZE as u64, size: 5, hash: [2; 32] },
                ChunkEntry { file: 1, offset: 0, size: 3, hash: [3; 32] },
            ],
        }
    }

    #[test]
    fn round_trip_and_root() {
        let m = sample();
        let bytes = m.encode();
        assert_eq!(Manifest::decode(&bytes).unwrap(), m);
        assert_eq!(root_of_encoded(&bytes), m.root_hash());
        let mut other = m.clone();
        other.chunks[2].hash[0] ^= 1;
        assert_ne!(other.root_hash(), m.root_hash());
    }

    #[test]
    fn hostile_manifests_are_refused() {
        let bytes = sample().encode();
        for cut in [0, 3, 20, bytes.len() - 1] {
            assert!(Manifest::decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut extra = bytes.clone();
        extra.push(0);
        assert!(Manifest::decode(&extra).is_err());
        let mut m = sample();
        m.files[0].path = "../etc/passwd".into();
        assert!(Manifest::decode(&m.encode()).is_err(), "path traversal");
        let mut m = sample();
        m.chunks.swap(0, 1);
        assert!(Manifest::decode(&m.encode()).is_err(), "chunks out of order");
        let mut m = sample();
        m.files[1].size = 4;
        assert!(Manifest::decode(&m.encode()).is_err(), "chunks do not cover the file");
        let mut huge = 1u32.to_be_bytes().to_vec();
        huge.extend_from_slice(&u64::MAX.to_be_bytes());
        assert!(Manifest::decode(&huge).is_err(), "absurd counts");
    }
}
