//! Page maps: versioned, copy-on-write representations of a canister memory.
//!
//! A memory (Wasm heap or stable memory) is a sequence of 4 KiB pages. A
//! [`PageMap`] stores only the pages that differ from zero, in a persistent
//! radix tree of fixed depth whose nodes are shared between versions through
//! `Arc`s, so that:
//!
//! * cloning a version is O(1);
//! * committing `k` pages copies only the `O(k · depth)` nodes on their paths
//!   (each touched node once per batch), independent of the memory size;
//! * the difference between two versions that share structure is found by
//!   skipping every subtree both still share (`Arc::ptr_eq`), at a cost
//!   proportional to the difference;
//! * the representation is canonical (zero pages and empty nodes are never
//!   stored), so equal memories have equal trees however they were produced.
//!
//! The tree is [`Root`]: a leaf resolves the low [`LEAF_BITS`] bits of a page
//! index, each inner level [`INNER_BITS`] more, [`TREE_BITS`] in all — enough
//! for 4 TiB, far beyond the largest memory (500 GiB of stable memory). Pages
//! at larger indices, which no canister can reach, are kept in a side map so
//! that every `u64` index still works.

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

/// A shared, immutable page. Stored pages are never all-zero.
type Page = Arc<PageBytes>;

/// A batch of changes: sorted by index, indices unique, `None` removes.
type Batch = [(u64, Option<Page>)];

/// Page-index bits resolved by a leaf: a leaf holds `2^LEAF_BITS` pages.
const LEAF_BITS: u32 = 6;
/// Page-index bits resolved by an inner node: it has `2^INNER_BITS` children.
const INNER_BITS: u32 = 6;
const LEAF_FANOUT: usize = 1 << LEAF_BITS;
const INNER_FANOUT: usize = 1 << INNER_BITS;

/// The radix tree: four inner levels over leaves, 6 + 4 × 6 = 30 index bits.
type Root = Inner<Inner<Inner<Inner<Leaf>>>>;

/// Page-index bits the tree resolves.
const TREE_BITS: u32 = <Root as Node>::SPAN_BITS;
/// Pages the tree addresses (2^30 pages = 4 TiB); larger indices go to the side map.
const TREE_PAGES: u64 = 1 << TREE_BITS;

// 500 GiB of stable memory is 131,072,000 pages: 27 bits.
const _: () = assert!(TREE_BITS >= 27 && TREE_BITS < 64);

/// A copy of `bytes` in a new shared page (one 4 KiB copy, straight to the heap).
fn new_page(bytes: &PageBytes) -> Page {
    Arc::<[u8]>::from(&bytes[..]).try_into().expect("a page has PAGE_SIZE bytes")
}

fn is_zero(bytes: &PageBytes) -> bool {
    *bytes == ZERO_PAGE
}

/// A node of the radix tree covering `2^SPAN_BITS` consecutive page indices
/// (all methods take absolute indices, which must lie in the node's span).
/// Stored nodes are never empty.
trait Node: Clone + Send + Sync + 'static {
    /// Index bits below and including this node.
    const SPAN_BITS: u32;

    /// A node without pages (only transiently, while a batch is applied).
    fn empty() -> Self;

    /// Pages stored in this subtree.
    fn len(&self) -> u64;

    fn get(&self, index: u64) -> Option<&PageBytes>;

    /// Applies a non-empty batch whose indices all lie in this node's span.
    fn apply(&mut self, batch: &mut Batch);

    /// Drops the pages at `first` and beyond; `first` lies in this node's
    /// span but is not its first index.
    fn truncate(&mut self, first: u64);

    /// The stored pages in index order; `base` is the node's first index.
    fn iter(&self, base: u64) -> impl Iterator<Item = (u64, &PageBytes)>;

    /// Pages whose contents differ between the two (absent = empty) nodes
    /// covering the same span starting at `base`, in index order, with the
    /// contents in `new` (zero for pages only `old` has).
    fn diff<'a>(
        old: Option<&'a Self>,
        new: Option<&'a Self>,
        base: u64,
    ) -> impl Iterator<Item = (u64, &'a PageBytes)> + 'a;

    /// Checks the invariants of the subtree and returns its page count.
    #[cfg(test)]
    fn check(&self) -> u64;
}

/// Bottom level: up to `LEAF_FANOUT` pages.
struct Leaf {
    len: u64,
    pages: [Option<Page>; LEAF_FANOUT],
}

const PREFETCH: bool = true;

/// Asks the CPU to fetch, for writing, the reference counts of the `Arc`s in
/// `slots`. Copying or freeing a node touches the count of every child, and
/// in a large memory those are cold: issued up front, the cache misses overlap
/// instead of each waiting for the one before. A hint only.
#[inline]
fn prefetch_counts<T>(slots: &[Option<Arc<T>>]) {
    #[cfg(target_arch = "x86_64")]
    if PREFETCH {
        for slot in slots.iter().flatten() {
            // The counts precede the data (std's `ArcInner` is `repr(C)`).
            let counts = Arc::as_ptr(slot).cast::<i8>().wrapping_sub(2 * size_of::<usize>());
            // SAFETY: a prefetch never faults and has no effect on memory contents.
            unsafe { std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_ET0 }>(counts) };
        }
    }
}

impl Clone for Leaf {
    fn clone(&self) -> Self {
        prefetch_counts(&self.pages);
        Leaf { len: self.len, pages: self.pages.clone() }
    }
}

impl Drop for Leaf {
    fn drop(&mut self) {
        prefetch_counts(&self.pages);
    }
}

impl<C> Clone for Inner<C> {
    fn clone(&self) -> Self {
        prefetch_counts(&self.children);
        Inner { len: self.len, children: self.children.clone() }
    }
}

impl<C> Drop for Inner<C> {
    fn drop(&mut self) {
        prefetch_counts(&self.children);
    }
}

fn leaf_slot(index: u64) -> usize {
    (index as usize) & (LEAF_FANOUT - 1)
}

impl Node for Leaf {
    const SPAN_BITS: u32 = LEAF_BITS;

    fn empty() -> Self {
        Leaf { len: 0, pages: [const { None }; LEAF_FANOUT] }
    }

    fn len(&self) -> u64 {
        self.len
    }

    fn get(&self, index: u64) -> Option<&PageBytes> {
        self.pages[leaf_slot(index)].as_deref()
    }

    fn apply(&mut self, batch: &mut Batch) {
        for (index, page) in batch {
            let slot = &mut self.pages[leaf_slot(*index)];
            self.len = self.len + page.is_some() as u64 - slot.is_some() as u64;
            *slot = page.take();
        }
    }

    fn truncate(&mut self, first: u64) {
        for slot in &mut self.pages[leaf_slot(first)..] {
            self.len -= slot.take().is_some() as u64;
        }
    }

    fn iter(&self, base: u64) -> impl Iterator<Item = (u64, &PageBytes)> {
        self.pages.iter().enumerate().filter_map(move |(i, p)| Some((base + i as u64, &**p.as_ref()?)))
    }

    fn diff<'a>(
        old: Option<&'a Self>,
        new: Option<&'a Self>,
        base: u64,
    ) -> impl Iterator<Item = (u64, &'a PageBytes)> + 'a {
        (0..LEAF_FANOUT).filter_map(move |i| {
            let a = old.and_then(|n| n.pages[i].as_deref());
            let b = new.and_then(|n| n.pages[i].as_deref());
            let changed = match (a, b) {
                (None, None) => None,
                (Some(a), Some(b)) => (!std::ptr::eq(a, b) && a != b).then_some(b),
                (Some(_), None) => Some(&ZERO_PAGE),
                (None, Some(b)) => Some(b),
            };
            Some((base + i as u64, changed?))
        })
    }

    #[cfg(test)]
    fn check(&self) -> u64 {
        let n = self.pages.iter().flatten().inspect(|p| assert!(!is_zero(p), "zero page stored")).count() as u64;
        assert_eq!(n, self.len, "leaf page count");
        n
    }
}

/// An inner level: up to `INNER_FANOUT` shared, non-empty children.
struct Inner<C> {
    len: u64,
    children: [Option<Arc<C>>; INNER_FANOUT],
}

impl<C: Node> Inner<C> {
    fn child_slot(index: u64) -> usize {
        ((index >> C::SPAN_BITS) as usize) & (INNER_FANOUT - 1)
    }
}

/// Applies a non-empty batch to the subtree in `slot`: the node is copied if
/// shared (`Arc::make_mut`, which only bumps its children's reference
/// counts), created if absent, and dropped if it ends up empty. Returns the
/// page count of the subtree before and after.
fn apply_slot<C: Node>(slot: &mut Option<Arc<C>>, batch: &mut Batch) -> (u64, u64) {
    let before = slot.as_deref().map_or(0, C::len);
    let node = match slot {
        Some(node) => Arc::make_mut(node),
        None if batch.iter().all(|(_, page)| page.is_none()) => return (0, 0),
        None => Arc::get_mut(slot.insert(Arc::new(C::empty()))).expect("a new node is not shared"),
    };
    node.apply(batch);
    let after = node.len();
    if after == 0 {
        *slot = None;
    }
    (before, after)
}

/// Drops the pages at `first` and beyond from the subtree in `slot`, where
/// `first` lies in its span. Returns the page count before and after.
fn truncate_slot<C: Node>(slot: &mut Option<Arc<C>>, first: u64) -> (u64, u64) {
    let Some(node) = slot else { return (0, 0) };
    let before = node.len();
    if first & ((1 << C::SPAN_BITS) - 1) == 0 {
        *slot = None;
        return (before, 0);
    }
    let node = Arc::make_mut(node);
    node.truncate(first);
    let after = node.len();
    if after == 0 {
        *slot = None;
    }
    (before, after)
}

impl<C: Node> Node for Inner<C> {
    const SPAN_BITS: u32 = C::SPAN_BITS + INNER_BITS;

    fn empty() -> Self {
        Inner { len: 0, children: [const { None }; INNER_FANOUT] }
    }

    fn len(&self) -> u64 {
        self.len
    }

    fn get(&self, index: u64) -> Option<&PageBytes> {
        self.children[Self::child_slot(index)].as_deref()?.get(index)
    }

    fn apply(&mut self, mut batch: &mut Batch) {
        while let Some(&(first, _)) = batch.first() {
            let slot = Self::child_slot(first);
            // Sorted indices in one span: child slots are non-decreasing.
            let n = batch.partition_point(|(index, _)| Self::child_slot(*index) == slot);
            let (now, rest) = std::mem::take(&mut batch).split_at_mut(n);
            let (before, after) = apply_slot(&mut self.children[slot], now);
            self.len = self.len + after - before;
            batch = rest;
        }
    }

    fn truncate(&mut self, first: u64) {
        let slot = Self::child_slot(first);
        for child in &mut self.children[slot + 1..] {
            self.len -= child.take().map_or(0, |c| c.len());
        }
        let (before, after) = truncate_slot(&mut self.children[slot], first);
        self.len = self.len + after - before;
    }

    fn iter(&self, base: u64) -> impl Iterator<Item = (u64, &PageBytes)> {
        self.children
            .iter()
            .enumerate()
            .filter_map(move |(i, c)| Some(c.as_deref()?.iter(base + ((i as u64) << C::SPAN_BITS))))
            .flatten()
    }

    fn diff<'a>(
        old: Option<&'a Self>,
        new: Option<&'a Self>,
        base: u64,
    ) -> impl Iterator<Item = (u64, &'a PageBytes)> + 'a {
        (0..INNER_FANOUT)
            .filter_map(move |i| {
                let a = old.and_then(|n| n.children[i].as_deref());
                let b = new.and_then(|n| n.children[i].as_deref());
                let shared = match (a, b) {
                    (None, None) => true,
                    (Some(a), Some(b)) => std::ptr::eq(a, b),
                    _ => false,
                };
                (!shared).then(|| C::diff(a, b, base + ((i as u64) << C::SPAN_BITS)))
            })
            .flatten()
    }

    #[cfg(test)]
    fn check(&self) -> u64 {
        let n = self
            .children
            .iter()
            .flatten()
            .map(|c| {
                let n = c.check();
                assert!(n > 0, "empty node stored");
                n
            })
            .sum();
        assert_eq!(n, self.len, "inner page count");
        n
    }
}

/// A persistent map from page index to page contents; absent pages are zero.
#[derive(Clone)]
pub struct PageMap {
    /// Pages below `TREE_PAGES`; `None` when there are none.
    root: Option<Arc<Root>>,
    /// Pages at `TREE_PAGES` and beyond (beyond 4 TiB: empty in practice).
    far: OrdMap<u64, Page>,
    generation: u64,
}

impl Default for PageMap {
    fn default() -> Self {
        PageMap { root: None, far: OrdMap::new(), generation: next_generation() }
    }
}

impl std::fmt::Debug for PageMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PageMap({} pages, gen {})", self.num_stored_pages(), self.generation)
    }
}

impl PartialEq for PageMap {
    fn eq(&self, other: &Self) -> bool {
        // Representations are canonical: equal contents, no difference.
        self.num_stored_pages() == other.num_stored_pages() && self.diff(other).next().is_none()
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

    /// The contents of page `index` (zero if never written). O(depth).
    pub fn page(&self, index: u64) -> &PageBytes {
        let page = if index < TREE_PAGES {
            self.root.as_deref().and_then(|root| root.get(index))
        } else {
            self.far.get(&index).map(|p| &**p)
        };
        page.unwrap_or(&ZERO_PAGE)
    }

    /// Number of stored (non-zero-by-default) pages.
    pub fn num_stored_pages(&self) -> usize {
        (self.root.as_deref().map_or(0, Root::len) as usize) + self.far.len()
    }

    /// Iterates over stored pages in index order.
    pub fn stored_pages(&self) -> impl Iterator<Item = (u64, &PageBytes)> {
        let tree = self.root.as_deref().into_iter().flat_map(|root| root.iter(0));
        tree.chain(self.far.iter().map(|(i, p)| (*i, &**p)))
    }

    /// Replaces the given pages, producing a new version. All-zero pages are
    /// dropped from storage so that equal memories have equal representations.
    /// If an index repeats, its last occurrence wins. Copies each node on the
    /// paths to the `k` given pages once: O(k · depth).
    pub fn update<'a>(&mut self, pages: impl IntoIterator<Item = (u64, &'a PageBytes)>) {
        let batch = pages.into_iter().map(|(index, bytes)| (index, (!is_zero(bytes)).then(|| new_page(bytes))));
        self.apply(batch.collect());
    }

    /// Applies changes given in any order (`None` removes; the last change of
    /// an index wins) and starts a new version.
    fn apply(&mut self, mut batch: Vec<(u64, Option<Page>)>) {
        batch.sort_by_key(|(index, _)| *index); // Stable: duplicates keep their order.
        batch.dedup_by(|later, kept| {
            let same = later.0 == kept.0;
            if same {
                std::mem::swap(&mut later.1, &mut kept.1);
            }
            same
        });
        let in_tree = batch.partition_point(|(index, _)| *index < TREE_PAGES);
        let (tree, far) = batch.split_at_mut(in_tree);
        if !tree.is_empty() {
            apply_slot(&mut self.root, tree);
        }
        for (index, page) in far {
            match page.take() {
                Some(page) => self.far.insert(*index, page),
                None => self.far.remove(index),
            };
        }
        self.generation = next_generation();
    }

    /// Drops every page at or beyond `first_page` (used when a memory shrinks on reinstall).
    pub fn truncate(&mut self, first_page: u64) {
        if first_page < TREE_PAGES {
            truncate_slot(&mut self.root, first_page);
        }
        if !self.far.is_empty() {
            self.far = self.far.split(&first_page).0;
        }
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

    /// Writes `data` at byte `offset`, copying each page it touches once.
    pub fn write(&mut self, offset: u64, data: &[u8]) {
        let mut done = 0usize;
        let mut changed: Vec<(u64, Option<Page>)> = Vec::new();
        while done < data.len() {
            let pos = offset + done as u64;
            let index = pos / PAGE_SIZE as u64;
            let in_page = (pos % PAGE_SIZE as u64) as usize;
            let n = (PAGE_SIZE - in_page).min(data.len() - done);
            let src = &data[done..done + n];
            let page = match <&PageBytes>::try_from(src) {
                Ok(whole) => new_page(whole),
                Err(_) => {
                    let mut page = new_page(self.page(index));
                    Arc::get_mut(&mut page).expect("a new page is not shared")[in_page..in_page + n]
                        .copy_from_slice(src);
                    page
                }
            };
            changed.push((index, (!is_zero(&page)).then_some(page)));
            done += n;
        }
        self.apply(changed);
    }

    /// Pages whose contents differ between `self` and `newer`, in index order,
    /// with `newer`'s contents (zero for pages `newer` no longer stores). Only
    /// subtrees the two versions do not share are visited, so the cost is
    /// proportional to the difference when `newer` derives from `self` (or
    /// the other way round).
    pub fn diff<'a>(&'a self, newer: &'a PageMap) -> impl Iterator<Item = (u64, &'a PageBytes)> + 'a {
        let (a, b) = (self.root.as_deref(), newer.root.as_deref());
        let shared = match (a, b) {
            (Some(a), Some(b)) => std::ptr::eq(a, b),
            _ => false,
        };
        let tree = (!shared).then(|| Root::diff(a, b, 0)).into_iter().flatten();
        let far = self.far.diff(&newer.far).map(|item| match item {
            imbl::ordmap::DiffItem::Add(i, p) => (*i, &**p),
            imbl::ordmap::DiffItem::Update { new: (i, p), .. } => (*i, &**p),
            imbl::ordmap::DiffItem::Remove(i, _) => (*i, &ZERO_PAGE),
        });
        tree.chain(far)
    }

    /// SHA-256 over the index and contents of every non-zero page: equal
    /// memories hash equal however they were produced.
    pub fn content_hash(&self) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(b"\x0ecairn-pagemap1");
        for (index, page) in self.stored_pages() {
            h.update(index.to_be_bytes());
            h.update(&page[..]);
        }
        h.finalize().into()
    }

    /// Checks the tree's invariants (counts, no zero pages, no empty nodes).
    #[cfg(test)]
    fn check(&self) {
        if let Some(root) = &self.root {
            assert!(root.check() > 0, "empty root stored");
        }
        assert!(self.far.iter().all(|(i, p)| *i >= TREE_PAGES && !is_zero(p)));
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
        let mut seq = serializer.serialize_seq(Some(self.num_stored_pages()))?;
        for (index, page) in self.stored_pages() {
            seq.serialize_element(&(index, serde_bytes::Bytes::new(&page[..])))?;
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
        let mut batch = Vec::with_capacity(self.pages.len());
        for (i, b) in self.pages {
            let bytes: &PageBytes = b.as_slice().try_into().map_err(|_| format!("page {i} has {} bytes", b.len()))?;
            batch.push((i, (!is_zero(bytes)).then(|| new_page(bytes))));
        }
        let mut pm = PageMap::new();
        pm.apply(batch);
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

    #[test]
    fn update_last_write_wins_and_diff_is_exact() {
        let mut a = PageMap::new();
        a.update([(3, &[1; PAGE_SIZE]), (3, &[2; PAGE_SIZE]), (9, &[0; PAGE_SIZE])]);
        assert_eq!(a.page(3), &[2; PAGE_SIZE]);
        assert_eq!(a.num_stored_pages(), 1);
        let mut b = a.clone();
        b.update([(3, &[2; PAGE_SIZE]), (9, &[0; PAGE_SIZE])]);
        assert_ne!(a.generation(), b.generation());
        assert_eq!(a.diff(&b).count(), 0, "rewriting equal contents is no difference");
        assert_eq!(a, b);
        b.update([(3, &[0; PAGE_SIZE]), (3, &[5; PAGE_SIZE]), (3, &[0; PAGE_SIZE])]);
        assert!(b.root.is_none(), "an emptied tree collapses");
        assert_eq!(b, PageMap::new());
    }

    #[test]
    fn update_copies_only_the_touched_path() {
        let page = [1; PAGE_SIZE];
        let mut a = PageMap::new();
        let indices = [0, 1, 64, 4096, 1 << 18, 1 << 24, (1 << 29) + 5, TREE_PAGES - 1, TREE_PAGES, u64::MAX];
        a.update(indices.iter().map(|i| (*i, &page)));
        let mut b = a.clone();
        b.update([(1, &[2; PAGE_SIZE])]);
        let (ra, rb) = (a.root.as_deref().unwrap(), b.root.as_deref().unwrap());
        assert!(!std::ptr::eq(ra, rb));
        for (ca, cb) in ra.children.iter().zip(&rb.children).skip(1) {
            assert!(matches!((ca, cb), (None, None)) || Arc::ptr_eq(ca.as_ref().unwrap(), cb.as_ref().unwrap()));
        }
        let leaf = |r: &Root| r.children[0].as_ref().unwrap().children[0].as_ref().unwrap().children[0].clone();
        let leaf = |r: &Root| leaf(r).unwrap().children[0].clone().unwrap();
        let (la, lb) = (leaf(ra), leaf(rb));
        assert!(!Arc::ptr_eq(&la, &lb));
        assert!(Arc::ptr_eq(la.pages[0].as_ref().unwrap(), lb.pages[0].as_ref().unwrap()));
        assert_eq!(a.diff(&b).collect::<Vec<_>>(), vec![(1, &[2; PAGE_SIZE])]);
        assert_eq!(b.diff(&a).collect::<Vec<_>>(), vec![(1, &page)]);
        let expected: Vec<u64> = indices.to_vec();
        assert_eq!(b.stored_pages().map(|(i, _)| i).collect::<Vec<_>>(), expected);
        assert_eq!(
            a.diff(&PageMap::new()).map(|(i, p)| (i, is_zero(p))).collect::<Vec<_>>(),
            expected.iter().map(|i| (*i, true)).collect::<Vec<_>>()
        );
        b.truncate(65);
        b.check();
        assert_eq!(b.stored_pages().map(|(i, _)| i).collect::<Vec<_>>(), vec![0, 1, 64]);
        b.truncate(0);
        assert!(b.root.is_none());
        assert_eq!(a.num_stored_pages(), indices.len(), "old versions are unaffected");
    }

    mod model {
        use super::*;
        use proptest::prelude::*;
        use std::collections::BTreeMap;

        /// Non-zero pages only.
        type Model = BTreeMap<u64, PageBytes>;

        #[derive(Clone, Debug)]
        enum Op {
            Write { offset: u64, len: usize, byte: u8 },
            Update(Vec<(u64, u8)>),
            Truncate(u64),
        }

        fn index() -> impl Strategy<Value = u64> {
            let boundaries = vec![63, 64, 65, 4095, 4096, 4097, (1 << 18) - 1, 1 << 18, (1 << 24) - 1, 1 << 24];
            prop_oneof![
                5 => 0..300u64,
                2 => prop::sample::select(boundaries),
                3 => (1u64 << 29) - 80..(1 << 29) + 80,
                1 => TREE_PAGES - 3..TREE_PAGES + 3,
                1 => (1u64 << 50)..(1 << 50) + 3,
            ]
        }

        fn op() -> impl Strategy<Value = Op> {
            prop_oneof![
                3 => (index(), 0..PAGE_SIZE as u64, 0..9000usize, 0..3u8)
                    .prop_map(|(i, o, len, byte)| Op::Write { offset: i * PAGE_SIZE as u64 + o, len, byte }),
                3 => prop::collection::vec((index(), 0..4u8), 0..12).prop_map(Op::Update),
                1 => index().prop_map(Op::Truncate),
            ]
        }

        fn apply(pm: &mut PageMap, m: &mut Model, op: &Op) {
            match op {
                Op::Write { offset, len, byte } => {
                    let data: Vec<u8> = (0..*len).map(|k| byte.wrapping_mul((k % 7 + 1) as u8)).collect();
                    pm.write(*offset, &data);
                    for (k, b) in data.iter().enumerate() {
                        let pos = offset + k as u64;
                        m.entry(pos / PAGE_SIZE as u64).or_insert([0; PAGE_SIZE])[(pos % PAGE_SIZE as u64) as usize] =
                            *b;
                    }
                    m.retain(|_, p| !is_zero(p));
                }
                Op::Update(pages) => {
                    let pages: Vec<(u64, PageBytes)> = pages.iter().map(|(i, v)| (*i, [*v; PAGE_SIZE])).collect();
                    pm.update(pages.iter().map(|(i, p)| (*i, p)));
                    for (i, p) in pages {
                        if is_zero(&p) {
                            m.remove(&i);
                        } else {
                            m.insert(i, p);
                        }
                    }
                }
                Op::Truncate(first) => {
                    pm.truncate(*first);
                    m.retain(|i, _| i < first);
                }
            }
        }

        fn model_hash(m: &Model) -> [u8; 32] {
            let mut h = Sha256::new();
            h.update(b"\x0ecairn-pagemap1");
            for (i, p) in m {
                h.update(i.to_be_bytes());
                h.update(&p[..]);
            }
            h.finalize().into()
        }

        fn same_contents(pm: &PageMap, m: &Model) {
            assert_eq!(pm.num_stored_pages(), m.len());
            assert!(pm.stored_pages().eq(m.iter().map(|(i, p)| (*i, p))));
        }

        fn check(pm: &PageMap, m: &Model) {
            pm.check();
            same_contents(pm, m);
            for (i, p) in m {
                assert_eq!(pm.page(*i), p);
                for probe in [i.wrapping_sub(1), i + 1, i ^ 64, i ^ (1 << 29)] {
                    assert_eq!(pm.page(probe), m.get(&probe).unwrap_or(&ZERO_PAGE));
                }
            }
            let hash = pm.content_hash();
            assert_eq!(hash, model_hash(m));
            let mut fresh = PageMap::new();
            fresh.update(m.iter().map(|(i, p)| (*i, p)));
            assert_eq!(fresh.content_hash(), hash);
            assert_eq!(&fresh, pm);
            let bytes = postcard::to_stdvec(pm).unwrap();
            let back: PageMap = postcard::from_bytes(&bytes).unwrap();
            back.check();
            assert_eq!(&back, pm);
            assert_eq!(bytes, postcard::to_stdvec(&fresh).unwrap());
        }

        /// `old.diff(new)` is exactly the pages that differ, in index order,
        /// and applying it to `old`'s contents gives `new`'s.
        fn check_diff(old: &PageMap, mo: &Model, new: &PageMap, mn: &Model) {
            let d: Vec<(u64, &PageBytes)> = old.diff(new).collect();
            assert!(d.windows(2).all(|w| w[0].0 < w[1].0), "diff not in index order");
            let mut m = mo.clone();
            for (i, p) in &d {
                assert_ne!(old.page(*i), *p, "diff yields an unchanged page {i}");
                if is_zero(p) {
                    m.remove(i);
                } else {
                    m.insert(*i, **p);
                }
            }
            assert_eq!(&m, mn);
            assert_eq!(old == new, d.is_empty());
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(200))]

            #[test]
            fn page_map_matches_model(
                ops in prop::collection::vec(op(), 1..40),
                pair in (any::<prop::sample::Index>(), any::<prop::sample::Index>()),
            ) {
                let mut versions = vec![(PageMap::new(), Model::new())];
                for op in &ops {
                    let (prev, mp) = versions.last().unwrap();
                    let (mut pm, mut m) = (prev.clone(), mp.clone());
                    apply(&mut pm, &mut m, op);
                    prop_assert_ne!(pm.generation(), prev.generation());
                    check(&pm, &m);
                    check_diff(prev, mp, &pm, &m);
                    check_diff(&pm, &m, prev, mp);
                    versions.push((pm, m));
                }
                for (pm, m) in &versions {
                    pm.check();
                    same_contents(pm, m);
                }
                let (i, j) = (pair.0.index(versions.len()), pair.1.index(versions.len()));
                let ((a, ma), (b, mb)) = (&versions[i.min(j)], &versions[i.max(j)]);
                check_diff(a, ma, b, mb);
                check_diff(b, mb, a, ma);
            }
        }
    }

    /// Run with `cargo test --release -p cairn-state --lib timing -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn timing_update_one_page() {
        use std::time::{Duration, Instant};
        fn med(mut v: Vec<Duration>) -> f64 {
            v.sort();
            v[v.len() / 2].as_secs_f64() * 1e6
        }
        let base = [7u8; PAGE_SIZE];
        for n in [256u64, 262_144, 1_310_720] {
            let mut pm = PageMap::new();
            let t = Instant::now();
            let mut i = 0;
            while i < n {
                let end = (i + 65_536).min(n);
                pm.update((i..end).map(|j| (j, &base)));
                i = end;
            }
            let build = t.elapsed();
            let reps = 20_000;
            let (mut upd, mut full, mut dif) = (Vec::new(), Vec::new(), Vec::new());
            let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
            let mut page = base;
            for r in 0..reps {
                x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
                let idx = (x >> 20) % n;
                page[0] = (r % 255 + 1) as u8;
                let t0 = Instant::now();
                let mut v = pm.clone();
                v.update([(idx, &page)]);
                let t1 = Instant::now();
                if r % 10 == 0 {
                    let t = Instant::now();
                    let c = pm.diff(&v).count();
                    dif.push(t.elapsed());
                    assert!(c <= 1);
                }
                let t2 = Instant::now();
                pm = v;
                let t3 = Instant::now();
                upd.push(t1 - t0);
                full.push((t1 - t0) + (t3 - t2));
            }
            let t = Instant::now();
            let iterated = pm.stored_pages().count();
            let iter = t.elapsed();
            assert_eq!(iterated as u64, n);
            println!(
                "{n:>9} pages: update {:.3} us, update+drop old {:.3} us, diff(1 page) {:.3} us \
                 (build {:.0} ms, iterate {:.1} ns/page)",
                med(upd),
                med(full),
                med(dif),
                build.as_secs_f64() * 1e3,
                iter.as_secs_f64() * 1e9 / n as f64
            );
        }
    }
}
