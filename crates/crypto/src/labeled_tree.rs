//! The replica-side state tree: build, hash, and witness.
//!
//! A [`LabeledTree`] is a nested sorted map `label → subtree | leaf bytes`,
//! the shape of the certified state (`/time`, `/request_status/<rid>/…`,
//! `/canister/<cid>/…`, `/subnet/…`). It computes the root hash that the
//! subnet certifies and produces **witnesses**: pruned [`HashTree`]s that
//! reveal the requested paths, prove the absence of requested paths that do
//! not exist, and hide everything else behind `Pruned` hashes.
//!
//! # Fork shape
//!
//! The `n` children of a subtree (sorted by label) are combined into forks
//! bottom-up: level 0 holds the `labeled_hash` of each child; each further
//! level pairs neighbours left to right into `fork_hash(left, right)`, and an
//! odd last node is carried up unchanged. Any deterministic shape would do for
//! clients (they only reconstruct), but every Cairn replica must use this one
//! so that all nodes certify the same root.
//!
//! # Cost
//!
//! Every subtree caches all of its fork levels (about `2n` digests for `n`
//! children) the first time its hash is needed. Mutations through `&mut`
//! invalidate only the caches on the path from the root to the change, so
//! re-hashing after a batch of changes costs the changed leaves plus
//! `O(n)` fork hashes for each subtree on a changed path (e.g. ~20k SHA-256
//! compressions for 10k `request_status` entries). A full rebuild from
//! scratch hashes every node once: roughly `2 × (nodes + leaves)` SHA-256
//! calls. Children are kept in a sorted `Vec`, so appending in label order is
//! `O(1)`, random inserts are `O(n)` moves, and lookups are binary searches.
//!
//! A witness for `k` requested paths costs `O(k · depth · log n)` node visits
//! plus the size of any fully revealed subtrees; pruned siblings come
//! straight from the cached levels.

use crate::Digest;
use crate::hash_tree::{HashTree, empty_hash, fork_hash, labeled_hash, leaf_hash};
use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

/// A labeled tree with cached hashes, from which witnesses are cut.
#[derive(Clone, Debug)]
pub struct LabeledTree {
    node: Node,
}

#[derive(Clone, Debug)]
enum Node {
    Leaf(Vec<u8>),
    Subtree(Subtree),
}

#[derive(Clone, Debug, Default)]
struct Subtree {
    /// Sorted by label, labels unique.
    children: Vec<(Vec<u8>, LabeledTree)>,
    /// Fork levels, computed lazily and dropped on mutation.
    levels: OnceLock<Arc<Levels>>,
}

/// `levels[0][i]` = labeled hash of child `i`; `levels[k+1]` pairs `levels[k]`.
/// The last level has exactly one digest, the subtree's root.
#[derive(Debug)]
struct Levels(Vec<Vec<Digest>>);

/// Why a mutation could not be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LabeledTreeError {
    #[error("cannot insert below a leaf at path prefix of length {0}")]
    LeafInPath(usize),
    #[error("the empty path cannot be replaced")]
    EmptyPath,
}

impl Default for LabeledTree {
    fn default() -> Self {
        LabeledTree::new()
    }
}

impl LabeledTree {
    /// An empty subtree (no children); its hash is the empty-tree hash.
    pub fn new() -> LabeledTree {
        LabeledTree { node: Node::Subtree(Subtree::default()) }
    }

    /// A leaf holding `value`.
    pub fn leaf(value: impl Into<Vec<u8>>) -> LabeledTree {
        LabeledTree { node: Node::Leaf(value.into()) }
    }

    /// A subtree from `(label, child)` pairs in any order; later duplicates win.
    pub fn from_children<L: Into<Vec<u8>>>(children: impl IntoIterator<Item = (L, LabeledTree)>) -> LabeledTree {
        let map: BTreeMap<Vec<u8>, LabeledTree> = children.into_iter().map(|(l, t)| (l.into(), t)).collect();
        LabeledTree { node: Node::Subtree(Subtree { children: map.into_iter().collect(), levels: OnceLock::new() }) }
    }

    /// Whether this node is a leaf.
    pub fn is_leaf(&self) -> bool {
        matches!(self.node, Node::Leaf(_))
    }

    /// The value of a leaf.
    pub fn value(&self) -> Option<&[u8]> {
        match &self.node {
            Node::Leaf(v) => Some(v),
            Node::Subtree(_) => None,
        }
    }

    /// The children of a subtree in label order (empty for a leaf).
    pub fn children(&self) -> impl Iterator<Item = (&[u8], &LabeledTree)> {
        let slice: &[(Vec<u8>, LabeledTree)] = match &self.node {
            Node::Leaf(_) => &[],
            Node::Subtree(s) => &s.children,
        };
        slice.iter().map(|(l, t)| (l.as_slice(), t))
    }

    /// The child under `label`.
    pub fn get(&self, label: &[u8]) -> Option<&LabeledTree> {
        match &self.node {
            Node::Leaf(_) => None,
            Node::Subtree(s) => {
                s.children.binary_search_by(|(l, _)| l.as_slice().cmp(label)).ok().map(|i| &s.children[i].1)
            }
        }
    }

    /// The node at `path`.
    pub fn get_path<L: AsRef<[u8]>>(&self, path: &[L]) -> Option<&LabeledTree> {
        path.iter().try_fold(self, |t, l| t.get(l.as_ref()))
    }

    /// Inserts or replaces the child under `label`, returning the old child.
    ///
    /// A leaf is first turned into an empty subtree. Appending labels in
    /// increasing order is `O(1)`; other positions shift the children.
    pub fn insert(&mut self, label: impl Into<Vec<u8>>, child: LabeledTree) -> Option<LabeledTree> {
        let label = label.into();
        let s = self.subtree_mut();
        match s.children.last() {
            Some((last, _)) if *last < label => {
                s.children.push((label, child));
                None
            }
            None => {
                s.children.push((label, child));
                None
            }
            _ => match s.children.binary_search_by(|(l, _)| l.cmp(&label)) {
                Ok(i) => Some(std::mem::replace(&mut s.children[i].1, child)),
                Err(i) => {
                    s.children.insert(i, (label, child));
                    None
                }
            },
        }
    }

    /// Sets the node at `path`, creating intermediate subtrees as needed.
    ///
    /// Fails if a strict prefix of the path is a leaf (the state tree never
    /// nests values below leaves).
    pub fn insert_path<L: AsRef<[u8]>>(&mut self, path: &[L], node: LabeledTree) -> Result<(), LabeledTreeError> {
        let Some((last, prefix)) = path.split_last() else {
            return Err(LabeledTreeError::EmptyPath);
        };
        let mut t = self;
        for (depth, label) in prefix.iter().enumerate() {
            if t.is_leaf() {
                return Err(LabeledTreeError::LeafInPath(depth));
            }
            let label = label.as_ref();
            let s = t.subtree_mut();
            let i = match s.children.binary_search_by(|(l, _)| l.as_slice().cmp(label)) {
                Ok(i) => i,
                Err(i) => {
                    s.children.insert(i, (label.to_vec(), LabeledTree::new()));
                    i
                }
            };
            t = &mut s.children[i].1;
        }
        if t.is_leaf() {
            return Err(LabeledTreeError::LeafInPath(prefix.len()));
        }
        t.insert(last.as_ref(), node);
        Ok(())
    }

    /// Removes the child under `label`.
    pub fn remove(&mut self, label: &[u8]) -> Option<LabeledTree> {
        if self.is_leaf() {
            return None;
        }
        let s = self.subtree_mut();
        let i = s.children.binary_search_by(|(l, _)| l.as_slice().cmp(label)).ok()?;
        Some(s.children.remove(i).1)
    }

    /// Mutable access to the child under `label` (invalidates cached hashes
    /// on the way down).
    pub fn get_mut(&mut self, label: &[u8]) -> Option<&mut LabeledTree> {
        if self.is_leaf() {
            return None;
        }
        let s = self.subtree_mut();
        let i = s.children.binary_search_by(|(l, _)| l.as_slice().cmp(label)).ok()?;
        Some(&mut s.children[i].1)
    }

    /// This node as a subtree, dropping its cached hashes (a leaf becomes an
    /// empty subtree).
    fn subtree_mut(&mut self) -> &mut Subtree {
        if let Node::Leaf(_) = self.node {
            self.node = Node::Subtree(Subtree::default());
        }
        match &mut self.node {
            Node::Subtree(s) => {
                s.levels.take();
                s
            }
            Node::Leaf(_) => unreachable!("converted above"),
        }
    }

    /// The root hash (`reconstruct` of the full tree); cached.
    pub fn root_hash(&self) -> Digest {
        match &self.node {
            Node::Leaf(v) => leaf_hash(v),
            Node::Subtree(s) => s.root_hash(),
        }
    }

    /// The whole tree as an unpruned [`HashTree`] (same root hash).
    pub fn to_hash_tree(&self) -> HashTree {
        match &self.node {
            Node::Leaf(v) => HashTree::Leaf(v.clone()),
            Node::Subtree(s) => {
                if s.children.is_empty() {
                    return HashTree::Empty;
                }
                let levels = s.levels();
                s.full(&levels, levels.0.len() - 1, 0)
            }
        }
    }

    /// A witness revealing every requested path.
    ///
    /// For each path: if it exists, the node it names is revealed in full
    /// (a leaf's value, or a whole subtree); if it runs into a leaf, that leaf
    /// is revealed (lookups then report `Absent`); if a label is missing, its
    /// neighbouring labels stay visible (with pruned contents) so that
    /// `lookup_path` proves `Absent`. Everything else is pruned. The result
    /// is well formed and reconstructs to [`LabeledTree::root_hash`]. An empty
    /// path reveals the whole tree; no paths at all yields a single
    /// `Pruned(root)`.
    pub fn witness<P, L>(&self, paths: &[P]) -> HashTree
    where
        P: AsRef<[L]>,
        L: AsRef<[u8]>,
    {
        if paths.is_empty() {
            return HashTree::Pruned(self.root_hash());
        }
        let mut request = Request::Children(BTreeMap::new());
        for path in paths {
            request.add(path.as_ref());
        }
        self.witness_for(&request)
    }

    fn witness_for(&self, request: &Request<'_>) -> HashTree {
        let children = match (request, &self.node) {
            (Request::All, _) => return self.to_hash_tree(),
            (_, Node::Leaf(v)) => return HashTree::Leaf(v.clone()),
            (Request::Children(children), Node::Subtree(_)) => children,
        };
        let Node::Subtree(s) = &self.node else { unreachable!("matched above") };
        if s.children.is_empty() {
            return HashTree::Empty;
        }
        let n = s.children.len();
        let mut needs: BTreeMap<usize, Need<'_, '_>> = BTreeMap::new();
        for (label, sub) in children {
            match s.children.binary_search_by(|(l, _)| l.as_slice().cmp(label)) {
                Ok(i) => {
                    needs.insert(i, Need::Reveal(sub));
                }
                Err(p) => {
                    // Keep the neighbours' labels visible to prove absence.
                    if p > 0 {
                        needs.entry(p - 1).or_insert(Need::LabelOnly);
                    }
                    if p < n {
                        needs.entry(p).or_insert(Need::LabelOnly);
                    }
                }
            }
        }
        let needs: Vec<(usize, Need<'_, '_>)> = needs.into_iter().collect();
        let levels = s.levels();
        s.build(&levels, levels.0.len() - 1, 0, &needs)
    }
}

impl Subtree {
    fn root_hash(&self) -> Digest {
        if self.children.is_empty() {
            return empty_hash();
        }
        let levels = self.levels();
        levels.0.last().expect("at least one level")[0]
    }

    fn levels(&self) -> Arc<Levels> {
        self.levels
            .get_or_init(|| {
                let mut level: Vec<Digest> =
                    self.children.iter().map(|(l, t)| labeled_hash(l, &t.root_hash())).collect();
                let mut levels = Vec::new();
                while level.len() > 1 {
                    let next = level
                        .chunks(2)
                        .map(|pair| match pair {
                            [l, r] => fork_hash(l, r),
                            [single] => *single,
                            _ => unreachable!("chunks(2)"),
                        })
                        .collect();
                    levels.push(std::mem::replace(&mut level, next));
                }
                levels.push(level);
                Arc::new(Levels(levels))
            })
            .clone()
    }

    /// The unpruned tree for node `index` of level `level`.
    fn full(&self, levels: &Levels, level: usize, index: usize) -> HashTree {
        if level == 0 {
            let (label, child) = &self.children[index];
            return HashTree::Labeled(label.clone(), Box::new(child.to_hash_tree()));
        }
        let (left, right) = (2 * index, 2 * index + 1);
        if right >= levels.0[level - 1].len() {
            return self.full(levels, level - 1, left);
        }
        HashTree::fork(self.full(levels, level - 1, left), self.full(levels, level - 1, right))
    }

    /// The witness for node `index` of `level`, given the needed children
    /// (sorted by child index) that fall into its range.
    fn build(&self, levels: &Levels, level: usize, index: usize, needs: &[(usize, Need<'_, '_>)]) -> HashTree {
        if needs.is_empty() {
            return HashTree::Pruned(levels.0[level][index]);
        }
        if level == 0 {
            let (i, need) = &needs[0];
            let (label, child) = &self.children[*i];
            let inner = match need {
                Need::LabelOnly => HashTree::Pruned(child.root_hash()),
                Need::Reveal(request) => child.witness_for(request),
            };
            return HashTree::Labeled(label.clone(), Box::new(inner));
        }
        let (left, right) = (2 * index, 2 * index + 1);
        if right >= levels.0[level - 1].len() {
            return self.build(levels, level - 1, left, needs);
        }
        // Children covered by `right` start at right · 2^(level-1).
        let split = right << (level - 1);
        let cut = needs.partition_point(|(i, _)| *i < split);
        HashTree::fork(
            self.build(levels, level - 1, left, &needs[..cut]),
            self.build(levels, level - 1, right, &needs[cut..]),
        )
    }
}

/// The set of requested paths, as a trie.
#[derive(Debug)]
enum Request<'a> {
    /// Reveal everything below.
    All,
    /// Reveal (or prove absent) only these children.
    Children(BTreeMap<&'a [u8], Request<'a>>),
}

impl<'a> Request<'a> {
    fn add<L: AsRef<[u8]>>(&mut self, path: &'a [L]) {
        let mut node = self;
        for label in path {
            match node {
                Request::All => return,
                Request::Children(children) => {
                    node = children.entry(label.as_ref()).or_insert_with(|| Request::Children(BTreeMap::new()));
                }
            }
        }
        *node = Request::All;
    }
}

/// What a witness must show of one child.
#[derive(Debug)]
enum Need<'r, 'a> {
    /// Only its label (its contents are pruned): a neighbour of an absent label.
    LabelOnly,
    /// The child itself, as far as the request asks.
    Reveal(&'r Request<'a>),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash_tree::LookupResult;
    use proptest::prelude::*;

    fn spec_example() -> LabeledTree {
        LabeledTree::from_children([
            ("a", LabeledTree::from_children([("x", LabeledTree::leaf("hello")), ("y", LabeledTree::leaf("world"))])),
            ("b", LabeledTree::leaf("good")),
            ("c", LabeledTree::new()),
            ("d", LabeledTree::leaf("morning")),
        ])
    }

    #[test]
    fn fork_shape_pairs_neighbours_left_to_right() {
        // The spec's example tree has an extra `Empty` under /a, so it is not
        // the canonical shape; ours pairs neighbours and carries odd ones up.
        let t = spec_example();
        let expected = HashTree::fork(
            HashTree::fork(
                HashTree::labeled(
                    "a",
                    HashTree::fork(
                        HashTree::labeled("x", HashTree::leaf("hello")),
                        HashTree::labeled("y", HashTree::leaf("world")),
                    ),
                ),
                HashTree::labeled("b", HashTree::leaf("good")),
            ),
            HashTree::fork(HashTree::labeled("c", HashTree::Empty), HashTree::labeled("d", HashTree::leaf("morning"))),
        );
        assert_eq!(t.to_hash_tree(), expected);
        assert_eq!(t.root_hash(), expected.digest());
        // Five children: ((0 1) (2 3)) 4 — the odd fifth is carried to the top.
        let five = LabeledTree::from_children((0u8..5).map(|i| (vec![i], LabeledTree::leaf(vec![i]))));
        let l = |i: u8| HashTree::labeled([i], HashTree::leaf([i]));
        assert_eq!(
            five.to_hash_tree(),
            HashTree::fork(HashTree::fork(HashTree::fork(l(0), l(1)), HashTree::fork(l(2), l(3))), l(4))
        );
    }

    #[test]
    fn witness_like_the_spec_pruned_example() {
        // The spec prunes everything except /a/y and /d, and proves /aa absent.
        let t = spec_example();
        let w = t.witness(&[vec!["a", "y"], vec!["d"]]);
        assert_eq!(w.digest(), t.root_hash());
        assert_eq!(w.lookup_path(&["a", "y"]), LookupResult::Found(b"world"));
        assert_eq!(w.lookup_path(&["d"]), LookupResult::Found(b"morning"));
        assert_eq!(w.lookup_path(&["a", "x"]), LookupResult::Unknown);
        assert_eq!(w.lookup_path(&["b"]), LookupResult::Unknown);
        assert!(w.is_well_formed());
    }

    #[test]
    fn absence_proofs() {
        let t = spec_example();
        for missing in [&b"0"[..], b"aa", b"bz", b"e", b"zzz"] {
            let w = t.witness(&[vec![missing]]);
            assert_eq!(w.digest(), t.root_hash());
            assert_eq!(w.lookup_path(&[missing]), LookupResult::Absent, "{missing:?}");
            assert!(w.is_well_formed());
        }
        // Absent below an existing label, and through a leaf.
        let w = t.witness(&[vec!["a", "q"], vec!["b", "deeper"], vec!["c", "x"]]);
        assert_eq!(w.lookup_path(&["a", "q"]), LookupResult::Absent);
        assert_eq!(w.lookup_path(&["b", "deeper"]), LookupResult::Absent);
        assert_eq!(w.lookup_path(&["c", "x"]), LookupResult::Absent);
        assert_eq!(w.digest(), t.root_hash());
    }

    #[test]
    fn prefix_reveals_the_whole_subtree_and_no_paths_prune_all() {
        let t = spec_example();
        let w = t.witness(&[vec!["a"], vec!["a", "x"]]);
        assert_eq!(w.lookup_path(&["a", "x"]), LookupResult::Found(b"hello"));
        assert_eq!(w.lookup_path(&["a", "y"]), LookupResult::Found(b"world"));
        let all = t.witness(&[Vec::<&str>::new()]);
        assert_eq!(all, t.to_hash_tree());
        let none = t.witness::<Vec<&str>, &str>(&[]);
        assert_eq!(none, HashTree::Pruned(t.root_hash()));
        assert_eq!(LabeledTree::new().witness(&[vec!["x"]]), HashTree::Empty);
    }

    #[test]
    fn mutations_invalidate_cached_hashes() {
        let mut t = spec_example();
        let before = t.root_hash();
        t.insert_path(&["a", "z"], LabeledTree::leaf("!")).unwrap();
        assert_ne!(t.root_hash(), before);
        let mut rebuilt = spec_example();
        rebuilt.get_mut(b"a").unwrap().insert("z", LabeledTree::leaf("!"));
        assert_eq!(t.root_hash(), rebuilt.root_hash());
        assert_eq!(t.root_hash(), t.to_hash_tree().digest());
        t.get_mut(b"a").unwrap().remove(b"z");
        assert_eq!(t.root_hash(), before);
        assert_eq!(t.insert_path(&["b", "x"], LabeledTree::leaf("")), Err(LabeledTreeError::LeafInPath(1)));
        assert!(t.get_path(&["a", "x"]).unwrap().is_leaf());
    }

    #[test]
    #[ignore = "timing report; run with --ignored --nocapture"]
    fn timing_request_status_tree() {
        use std::time::Instant;
        let n = 10_000u32;
        let start = Instant::now();
        let mut statuses = LabeledTree::new();
        for i in 0..n {
            let rid = crate::sha256(&i.to_be_bytes());
            statuses.insert(
                rid.to_vec(),
                LabeledTree::from_children([
                    ("reply", LabeledTree::leaf(vec![7u8; 100])),
                    ("status", LabeledTree::leaf("replied")),
                ]),
            );
        }
        let mut t = LabeledTree::from_children([
            ("request_status", statuses),
            ("time", LabeledTree::leaf(crate::request_id::leb128(1))),
        ]);
        let build = start.elapsed();
        let start = Instant::now();
        let root = t.root_hash();
        let hash = start.elapsed();
        let rid = crate::sha256(&5u32.to_be_bytes()).to_vec();
        let start = Instant::now();
        let w = t.witness(&[vec![b"request_status".to_vec(), rid.clone()], vec![b"time".to_vec()]]);
        let witness = start.elapsed();
        assert_eq!(w.digest(), root);
        let start = Instant::now();
        t.insert_path(&[b"time".to_vec()], LabeledTree::leaf(vec![2])).unwrap();
        t.root_hash();
        let rehash_time_only = start.elapsed();
        let start = Instant::now();
        t.insert_path(&[b"request_status".to_vec(), rid, b"status".to_vec()], LabeledTree::leaf("done")).unwrap();
        t.root_hash();
        let rehash_one_status = start.elapsed();
        println!(
            "{n} request_status entries: build {build:?}, first root hash {hash:?}, witness {witness:?} ({} CBOR bytes), rehash after /time change {rehash_time_only:?}, after one status change {rehash_one_status:?}",
            w.to_cbor().len()
        );
    }

    /// Random trees of depth ≤ 3 with short labels (so paths often collide).
    fn arb_tree() -> impl Strategy<Value = LabeledTree> {
        let leaf = proptest::collection::vec(any::<u8>(), 0..4).prop_map(LabeledTree::leaf);
        leaf.prop_recursive(3, 64, 6, |inner| {
            proptest::collection::vec(("[a-e]{0,2}", inner), 0..6)
                .prop_map(|children| LabeledTree::from_children(children.into_iter().map(|(l, t)| (l.into_bytes(), t))))
        })
    }

    fn arb_paths() -> impl Strategy<Value = Vec<Vec<Vec<u8>>>> {
        proptest::collection::vec(proptest::collection::vec("[a-e]{0,2}".prop_map(String::into_bytes), 0..4), 0..5)
    }

    /// Lookup in the full tree, by the builder's own structure.
    fn reference_lookup(t: &LabeledTree, path: &[Vec<u8>]) -> Option<Vec<u8>> {
        let mut node = t;
        for l in path {
            node = node.get(l)?;
        }
        node.value().map(<[u8]>::to_vec)
    }

    proptest! {
        #[test]
        fn witnesses_reconstruct_and_agree(tree in arb_tree(), paths in arb_paths(), probes in arb_paths()) {
            let root = tree.root_hash();
            let full = tree.to_hash_tree();
            prop_assert_eq!(full.digest(), root);
            prop_assert!(full.is_well_formed());
            let w = tree.witness(&paths);
            prop_assert_eq!(w.digest(), root);
            prop_assert!(w.is_well_formed());
            // Requested paths are never Unknown, and agree with the full tree.
            for path in &paths {
                let in_witness = w.lookup_path(path);
                let in_full = full.lookup_path(path);
                prop_assert_ne!(in_witness, LookupResult::Unknown, "path {:?}", path);
                prop_assert_eq!(in_witness, in_full, "path {:?}", path);
                match reference_lookup(&tree, path) {
                    Some(v) => prop_assert_eq!(in_witness, LookupResult::Found(&v)),
                    None => prop_assert_ne!(in_witness, LookupResult::Found(&[])),
                }
            }
            // Any other path: the witness is either Unknown or agrees.
            for path in &probes {
                let in_witness = w.lookup_path(path);
                if in_witness != LookupResult::Unknown {
                    prop_assert_eq!(in_witness, full.lookup_path(path), "probe {:?}", path);
                }
            }
            // Round trip through CBOR.
            prop_assert_eq!(HashTree::from_cbor(&w.to_cbor()).unwrap(), w);
        }

        #[test]
        fn incremental_hash_equals_rebuild(tree in arb_tree(), path in proptest::collection::vec("[a-e]{0,2}".prop_map(String::into_bytes), 1..4), value in proptest::collection::vec(any::<u8>(), 0..4)) {
            let mut t = tree.clone();
            let _ = t.root_hash(); // populate caches
            if t.insert_path(&path, LabeledTree::leaf(value)).is_ok() {
                let fresh = t.to_hash_tree().digest();
                prop_assert_eq!(t.root_hash(), fresh);
            }
        }
    }
}
