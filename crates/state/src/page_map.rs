//! Page maps: versioned, copy-on-write representations of a canister memory.
//!
//! A memory (Wasm heap or stable memory) is a sequence of 4 KiB pages. A
//! [`PageMap`] stores only the pages that differ from zero, in a persistent
//! ordered map, so that cloning a state is O(1) and committing a message that
//! touched `k` pages costs O(k log n), independent of the memory size.

use imbl::OrdMap;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Size of one page of a page map (the OS page size).
pub const PAGE_SIZE: usize = 4096;

/// Size of one Wasm page (the unit of `memory.grow` and `stable64_grow`).
pub const WASM_PAGE_SIZE: u64 = 65536;

/// How many page-map pages make one Wasm page.
pub const PAGES_PER_WASM_PAGE: u64 = WASM_PAGE_SIZE / PAGE_SIZE as u64;

/// The bytes of one page.
pub type PageBytes = [u8; PAGE_SIZE];

static ZERO_PAGE: PageBytes = [0; PAGE_SIZE];

/// Source of unique page-map generations. Generations are node-local
/// bookkeeping (never hashed), used to tell whether an execution sandbox
/// already holds exactly this version of a memory.
static NEXT_GENERATION: AtomicU64 = AtomicU64::new(1);

fn next_generation() -> u64 {
    NEXT_GENERATION.fetch_add(1, Ordering::Relaxed)
}

/// A persistent map from page index to page contents; absent pages are zero.
#[derive(Clone)]
pub struct PageMap {
    pages: OrdMap<u64, Arc<PageBytes>>,
    generation: u64,
}

impl Default for PageMap {
    fn default() -> Self {
        PageMap { pages: OrdMap::new(), generation: next_generation() }
    }
}

impl std::fmt::Debug for PageMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PageMap({} pages, gen {})", self.pages.len(), self.generation)
    }
}

impl PartialEq for PageMap {
    fn eq(&self, other: &Self) -> bool {
        self.pages.len() == other.pages.len()
            && self.pages.iter().zip(other.pages.iter()).all(|((a, pa), (b, pb))| a == b && pa[..] == pb[..])
    }
}

impl PageMap {
    /// An all-zero memory.
    pub fn new() -> Self {
        Self::default()
    }

    /// A node-local id of this exact version; changes on every update.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The contents of page `index` (zero if never written).
    pub fn page(&self, index: u64) -> &PageBytes {
        self.pages.get(&index).map(|p| &**p).unwrap_or(&ZERO_PAGE)
    }

    /// Number of stored (non-zero-by-default) pages.
    pub fn num_stored_pages(&self) -> usize {
        self.pages.len()
    }

    /// Iterates over stored pages in index order.
    pub fn stored_pages(&self) -> impl Iterator<Item = (u64, &PageBytes)> {
        self.pages.iter().map(|(i, p)| (*i, &**p))
    }

    /// Replaces the given pages, producing a new version. All-zero pages are
    /// dropped from storage so that equal memories have equal representations.
    pub fn update<'a>(&mut self, pages: impl IntoIterator<Item = (u64, &'a PageBytes)>) {
        for (index, bytes) in pages {
            if bytes.iter().all(|b| *b == 0) {
                self.pages.remove(&index);
            } else {
                self.pages.insert(index, Arc::new(*bytes));
            }
        }
        self.generation = next_generation();
    }

    /// Drops every page at or beyond `first_page` (used when a memory shrinks on reinstall).
    pub fn truncate(&mut self, first_page: u64) {
        let (keep, _) = self.pages.clone().split(&first_page);
        self.pages = keep;
        self.pages.remove(&first_page);
        self.generation = next_generation();
    }

    /// Reads `buf.len()` bytes at byte `offset`.
    pub fn read(&self, offset: u64, buf: &mut [u8]) {
        let mut done = 0usize;
        while done < buf.len() {
            let pos = offset + done as u64;
            let index = pos / PAGE_SIZE as u64;
            let in_page = (pos % PAGE_SIZE as u64) as usize;
            let n = (PAGE_SIZE - in_page).min(buf.len() - done);
            buf[done..done + n].copy_from_slice(&self.page(index)[in_page..in_page + n]);
            done += n;
        }
    }

    /// Writes `data` at byte `offset`, copying only the pages it touches.
    pub fn write(&mut self, offset: u64, data: &[u8]) {
        let mut done = 0usize;
        let mut changed: Vec<(u64, PageBytes)> = Vec::new();
        while done < data.len() {
            let pos = offset + done as u64;
            let index = pos / PAGE_SIZE as u64;
            let in_page = (pos % PAGE_SIZE as u64) as usize;
            let n = (PAGE_SIZE - in_page).min(data.len() - done);
            let mut page = *self.page(index);
            page[in_page..in_page + n].copy_from_slice(&data[done..done + n]);
            changed.push((index, page));
            done += n;
        }
        self.update(changed.iter().map(|(i, p)| (*i, p)));
    }

    /// Pages whose contents differ between `self` and `newer`, with `newer`'s
    /// contents. Cost is proportional to the difference, not to the size,
    /// when the two versions share structure.
    pub fn diff<'a>(&'a self, newer: &'a PageMap) -> impl Iterator<Item = (u64, &'a PageBytes)> + 'a {
        self.pages.diff(&newer.pages).map(|item| match item {
            imbl::ordmap::DiffItem::Add(i, p) => (*i, &**p),
            imbl::ordmap::DiffItem::Update { new: (i, p), .. } => (*i, &**p),
            imbl::ordmap::DiffItem::Remove(i, _) => (*i, &ZERO_PAGE),
        })
    }

    /// SHA-256 over the index and contents of every non-zero page: equal
    /// memories hash equal however they were produced.
    pub fn content_hash(&self) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(b"\x0ecairn-pagemap1");
        for (index, page) in self.pages.iter() {
            h.update(index.to_be_bytes());
            h.update(&page[..]);
        }
        h.finalize().into()
    }
}

/// A canister memory: its pages plus its current size in Wasm pages.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Memory {
    pub page_map: PageMap,
    /// Size in 64 KiB Wasm pages.
    pub size_wasm_pages: u64,
}

impl Memory {
    /// Size in bytes.
    pub fn size_bytes(&self) -> u64 {
        self.size_wasm_pages * WASM_PAGE_SIZE
    }
}

/// Serialized as the sequence of stored `(index, page bytes)` in index order.
impl Serialize for PageMap {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        let mut seq = serializer.serialize_seq(Some(self.pages.len()))?;
        for (index, page) in self.pages.iter() {
            seq.serialize_element(&(*index, serde_bytes::Bytes::new(&page[..])))?;
        }
        seq.end()
    }
}

impl<'de> Deserialize<'de> for PageMap {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let pages: Vec<(u64, serde_bytes::ByteBuf)> = Vec::deserialize(deserializer)?;
        PageMapSerialized { pages }.into_page_map().map_err(serde::de::Error::custom)
    }
}

/// Serialized form of a page map (used by checkpoints): stored pages in index order.
#[derive(Serialize, Deserialize)]
pub struct PageMapSerialized {
    pub pages: Vec<(u64, serde_bytes::ByteBuf)>,
}

impl From<&PageMap> for PageMapSerialized {
    fn from(p: &PageMap) -> Self {
        PageMapSerialized {
            pages: p.stored_pages().map(|(i, b)| (i, serde_bytes::ByteBuf::from(b.to_vec()))).collect(),
        }
    }
}

impl PageMapSerialized {
    /// Rebuilds the page map; pages of the wrong size are an error.
    pub fn into_page_map(self) -> Result<PageMap, String> {
        let mut pm = PageMap::new();
        let mut pages = Vec::with_capacity(self.pages.len());
        for (i, b) in self.pages {
            let arr: PageBytes = b.as_slice().try_into().map_err(|_| format!("page {i} has {} bytes", b.len()))?;
            pages.push((i, arr));
        }
        pm.update(pages.iter().map(|(i, p)| (*i, p)));
        Ok(pm)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_write_across_pages() {
        let mut pm = PageMap::new();
        let data: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        pm.write(4000, &data);
        let mut out = vec![0; 10_000];
        pm.read(4000, &mut out);
        assert_eq!(out, data);
        assert_eq!(pm.num_stored_pages(), 4);
        let mut zero = [1u8; 16];
        pm.read(1 << 30, &mut zero);
        assert_eq!(zero, [0; 16]);
    }

    #[test]
    fn generations_and_diff() {
        let mut a = PageMap::new();
        a.write(0, &[1; 8192]);
        let g = a.generation();
        let mut b = a.clone();
        assert_eq!(b.generation(), g);
        b.write(4096 * 5, &[2; 10]);
        b.write(0, &[0; 4096]);
        assert_ne!(b.generation(), g);
        let mut changed: Vec<u64> = a.diff(&b).map(|(i, _)| i).collect();
        changed.sort();
        assert_eq!(changed, vec![0, 5]);
        assert_eq!(a.diff(&b).find(|(i, _)| *i == 0).unwrap().1, &[0; PAGE_SIZE]);
    }

    #[test]
    fn content_hash_ignores_history() {
        let mut a = PageMap::new();
        a.write(100, &[7; 100]);
        a.write(100, &[0; 100]);
        assert_eq!(a.content_hash(), PageMap::new().content_hash());
        let mut b = PageMap::new();
        b.write(9000, b"x");
        let mut c = PageMap::new();
        c.write(9000, b"y");
        c.write(9000, b"x");
        assert_eq!(b.content_hash(), c.content_hash());
        assert_eq!(b, c);
    }

    #[test]
    fn truncate_drops_tail() {
        let mut a = PageMap::new();
        a.write(0, &[1; 4096 * 4]);
        a.truncate(2);
        assert_eq!(a.num_stored_pages(), 2);
    }
}
