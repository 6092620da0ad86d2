//! The certified state tree as a persistent, canonically shaped hash treap.
//!
//! The IC's certified state is a labeled tree whose root hash every replica
//! signs at every height. It holds the status of every recent ingress message
//! (hundreds of thousands at high load), so rebuilding or re-hashing it per
//! height is not an option. Here each level of the tree is a treap: a binary
//! search tree on labels that is also a heap on `priority = H(label)`. For a
//! given set of labels there is exactly one such tree, so every replica
//! computes the same fork structure and root hash regardless of the order of
//! insertions; inserting, updating or removing a label touches O(log n)
//! nodes. Nodes are immutable and shared (`Arc`), so keeping the tree of
//! every certified height costs only the changed paths.
//!
//! A treap node `(label, value)` with children `L` and `R` is encoded as the
//! IC hash tree `Fork(Fork(L, Labeled(label, value)), R)` (omitting empty
//! children). Its in-order reading lists the labels sorted, as the spec
//! requires of a well-formed tree; clients flatten forks, so they never see
//! the shape. A witness reveals the nodes on the search paths of the
//! requested labels and prunes everything else; the predecessor and the
//! successor of a missing label are on its search path, which proves absence.

use cairn_crypto::hash_tree::{HashTree, empty_hash, fork_hash, labeled_hash, leaf_hash};
use sha2::{Digest, Sha256};
use std::cmp::Ordering;
use std::sync::Arc;

type Hash = [u8; 32];

/// The value under a label: bytes, or a nested map.
#[derive(Clone, Debug)]
pub enum Subtree {
    Leaf(Arc<[u8]>),
    Map(TreeMap),
}

impl Subtree {
    /// A leaf holding `bytes`.
    pub fn leaf(bytes: impl Into<Vec<u8>>) -> Self {
        Subtree::Leaf(Arc::from(bytes.into()))
    }

    /// The reconstruct hash of this subtree.
    pub fn hash(&self) -> Hash {
        match self {
            Subtree::Leaf(v) => leaf_hash(v),
            Subtree::Map(m) => m.hash(),
        }
    }

    fn full(&self) -> HashTree {
        match self {
            Subtree::Leaf(v) => HashTree::Leaf(v.to_vec()),
            Subtree::Map(m) => m.full(),
        }
    }
}

#[derive(Debug)]
struct Node {
    label: Arc<[u8]>,
    priority: Hash,
    value: Subtree,
    left: Option<Arc<Node>>,
    right: Option<Arc<Node>>,
    /// Hash of the fork structure of the whole subtree rooted here.
    hash: Hash,
}

fn priority_of(label: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update(b"\x12cairn-tree-priority");
    h.update(label);
    h.finalize().into()
}

/// Whether a node with `(priority, label)` `a` belongs above `b` in the heap
/// order (hash ties cannot happen in practice; the label breaks them anyway).
fn above(a: (&Hash, &[u8]), b: (&Hash, &[u8])) -> bool {
    a > b
}

impl Node {
    fn new(
        label: Arc<[u8]>,
        priority: Hash,
        value: Subtree,
        left: Option<Arc<Node>>,
        right: Option<Arc<Node>>,
    ) -> Arc<Node> {
        let labeled = labeled_hash(&label, &value.hash());
        let hash = match (&left, &right) {
            (None, None) => labeled,
            (Some(l), None) => fork_hash(&l.hash, &labeled),
            (None, Some(r)) => fork_hash(&labeled, &r.hash),
            (Some(l), Some(r)) => fork_hash(&fork_hash(&l.hash, &labeled), &r.hash),
        };
        Arc::new(Node { label, priority, value, left, right, hash })
    }

    fn with_children(&self, left: Option<Arc<Node>>, right: Option<Arc<Node>>) -> Arc<Node> {
        Node::new(self.label.clone(), self.priority, self.value.clone(), left, right)
    }
}

/// Splits a treap into labels `< key` and `> key`, dropping `key` itself.
fn split(node: &Option<Arc<Node>>, key: &[u8]) -> (Option<Arc<Node>>, Option<Arc<Node>>) {
    let Some(n) = node else { return (None, None) };
    match key.cmp(&n.label) {
        Ordering::Less => {
            let (l, r) = split(&n.left, key);
            (l, Some(n.with_children(r, n.right.clone())))
        }
        Ordering::Greater => {
            let (l, r) = split(&n.right, key);
            (Some(n.with_children(n.left.clone(), l)), r)
        }
        Ordering::Equal => (n.left.clone(), n.right.clone()),
    }
}

/// Joins two treaps where every label of `a` is below every label of `b`.
fn merge(a: Option<Arc<Node>>, b: Option<Arc<Node>>) -> Option<Arc<Node>> {
    match (a, b) {
        (None, x) | (x, None) => x,
        (Some(a), Some(b)) => {
            if above((&a.priority, &a.label), (&b.priority, &b.label)) {
                Some(a.with_children(a.left.clone(), merge(a.right.clone(), Some(b))))
            } else {
                Some(b.with_children(merge(Some(a), b.left.clone()), b.right.clone()))
            }
        }
    }
}

fn insert(node: &Option<Arc<Node>>, label: Arc<[u8]>, priority: Hash, value: Subtree) -> Arc<Node> {
    match node {
        None => Node::new(label, priority, value, None, None),
        Some(n) if n.label == label => Node::new(label, n.priority, value, n.left.clone(), n.right.clone()),
        Some(n) => {
            // Callers insert existing labels through the `Equal` arm above, so a
            // higher-priority label is new here and becomes this subtree's root.
            if above((&priority, &label), (&n.priority, &n.label)) {
                let (l, r) = split(node, &label);
                Node::new(label, priority, value, l, r)
            } else if label[..] < n.label[..] {
                n.with_children(Some(insert(&n.left, label, priority, value)), n.right.clone())
            } else {
                n.with_children(n.left.clone(), Some(insert(&n.right, label, priority, value)))
            }
        }
    }
}

fn contains(node: &Option<Arc<Node>>, label: &[u8]) -> bool {
    let mut cur = node;
    while let Some(n) = cur {
        match label.cmp(&n.label) {
            Ordering::Less => cur = &n.left,
            Ordering::Greater => cur = &n.right,
            Ordering::Equal => return true,
        }
    }
    false
}

fn remove(node: &Option<Arc<Node>>, label: &[u8]) -> Option<Arc<Node>> {
    let n = node.as_ref()?;
    match label.cmp(&n.label) {
        Ordering::Less => Some(n.with_children(remove(&n.left, label), n.right.clone())),
        Ordering::Greater => Some(n.with_children(n.left.clone(), remove(&n.right, label))),
        Ordering::Equal => merge(n.left.clone(), n.right.clone()),
    }
}

/// A persistent map from labels to subtrees with a canonical hash-tree shape.
#[derive(Clone, Debug, Default)]
pub struct TreeMap {
    root: Option<Arc<Node>>,
    len: usize,
}

impl TreeMap {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of labels.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the map is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The reconstruct hash of this map as a hash tree (`Empty` if empty).
    pub fn hash(&self) -> Hash {
        self.root.as_ref().map_or_else(empty_hash, |n| n.hash)
    }

    /// Sets `label` to `value`.
    pub fn insert(&mut self, label: impl Into<Vec<u8>>, value: Subtree) {
        let label: Arc<[u8]> = Arc::from(label.into());
        if !contains(&self.root, &label) {
            self.len += 1;
        }
        let priority = priority_of(&label);
        self.root = Some(insert(&self.root, label, priority, value));
    }

    /// Removes `label`; returns whether it was present.
    pub fn remove(&mut self, label: &[u8]) -> bool {
        if !contains(&self.root, label) {
            return false;
        }
        self.root = remove(&self.root, label);
        self.len -= 1;
        true
    }

    /// The subtree under `label`.
    pub fn get(&self, label: &[u8]) -> Option<&Subtree> {
        let mut cur = &self.root;
        while let Some(n) = cur {
            match label.cmp(&n.label) {
                Ordering::Less => cur = &n.left,
                Ordering::Greater => cur = &n.right,
                Ordering::Equal => return Some(&n.value),
            }
        }
        None
    }

    /// The leaf at a path of labels, if the path leads to one.
    pub fn lookup<L: AsRef<[u8]>>(&self, path: &[L]) -> Option<&[u8]> {
        let (first, rest) = path.split_first()?;
        match (self.get(first.as_ref())?, rest.is_empty()) {
            (Subtree::Leaf(v), true) => Some(v),
            (Subtree::Map(m), false) => m.lookup(rest),
            _ => None,
        }
    }

    /// The whole map as a hash tree (for tests and small subtrees).
    pub fn full(&self) -> HashTree {
        fn go(n: &Option<Arc<Node>>) -> Option<HashTree> {
            let n = n.as_ref()?;
            let me = HashTree::Labeled(n.label.to_vec(), Box::new(n.value.full()));
            Some(combine(go(&n.left), me, go(&n.right)))
        }
        go(&self.root).unwrap_or(HashTree::Empty)
    }

    /// A pruned tree revealing every requested path (each a sequence of
    /// labels): the leaf or whole subtree at its end if it exists, or an
    /// absence proof if it does not. Everything else is pruned.
    pub fn witness(&self, paths: &[Vec<Vec<u8>>]) -> HashTree {
        let requests: Vec<&[Vec<u8>]> = paths.iter().map(|p| p.as_slice()).collect();
        self.witness_refs(&requests)
    }

    fn witness_refs(&self, requests: &[&[Vec<u8>]]) -> HashTree {
        if requests.iter().any(|r| r.is_empty()) {
            return self.full();
        }
        let mut sorted: Vec<&[Vec<u8>]> = requests.to_vec();
        sorted.sort_by(|a, b| a[0].cmp(&b[0]));
        match &self.root {
            None => HashTree::Empty,
            Some(_) => witness_node(&self.root, &sorted).unwrap_or(HashTree::Empty),
        }
    }
}

fn combine(left: Option<HashTree>, me: HashTree, right: Option<HashTree>) -> HashTree {
    let with_left = match left {
        Some(l) => HashTree::Fork(Box::new(l), Box::new(me)),
        None => me,
    };
    match right {
        Some(r) => HashTree::Fork(Box::new(with_left), Box::new(r)),
        None => with_left,
    }
}

/// Witness of a treap node for requests sorted by first label.
fn witness_node(node: &Option<Arc<Node>>, requests: &[&[Vec<u8>]]) -> Option<HashTree> {
    let n = node.as_ref()?;
    if requests.is_empty() {
        return Some(HashTree::Pruned(n.hash));
    }
    let split_lo = requests.partition_point(|r| r[0].as_slice() < &n.label[..]);
    let split_hi = requests.partition_point(|r| r[0].as_slice() <= &n.label[..]);
    let (below, here, beyond) = (&requests[..split_lo], &requests[split_lo..split_hi], &requests[split_hi..]);
    let left = witness_node(&n.left, below);
    let right = witness_node(&n.right, beyond);
    let me = if here.is_empty() {
        // On a search path: reveal the label (for absence proofs), prune the value.
        HashTree::Labeled(n.label.to_vec(), Box::new(HashTree::Pruned(n.value.hash())))
    } else {
        let rests: Vec<&[Vec<u8>]> = here.iter().map(|r| &r[1..]).collect();
        let inner = match &n.value {
            Subtree::Leaf(v) => HashTree::Leaf(v.to_vec()),
            Subtree::Map(m) => m.witness_refs(&rests),
        };
        HashTree::Labeled(n.label.to_vec(), Box::new(inner))
    };
    // A subtree nobody asked about stays pruned as one hash.
    let left = match (left, &n.left) {
        (Some(t), _) => Some(t),
        (None, Some(l)) => Some(HashTree::Pruned(l.hash)),
        (None, None) => None,
    };
    let right = match (right, &n.right) {
        (Some(t), _) => Some(t),
        (None, Some(r)) => Some(HashTree::Pruned(r.hash)),
        (None, None) => None,
    };
    Some(combine(left, me, right))
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_crypto::hash_tree::LookupResult;
    use proptest::prelude::*;

    fn map(entries: &[(&str, &str)]) -> TreeMap {
        let mut m = TreeMap::new();
        for (k, v) in entries {
            m.insert(k.as_bytes().to_vec(), Subtree::leaf(v.as_bytes().to_vec()));
        }
        m
    }

    #[test]
    fn hash_matches_the_full_tree_and_shape_is_canonical() {
        let a = map(&[("a", "1"), ("b", "2"), ("c", "3"), ("d", "4")]);
        let b = map(&[("d", "4"), ("b", "2"), ("a", "1"), ("c", "3")]);
        assert_eq!(a.hash(), b.hash());
        assert_eq!(a.full().digest(), a.hash());
        assert!(a.full().is_well_formed());
        assert_eq!(TreeMap::new().hash(), HashTree::Empty.digest());
    }

    #[test]
    fn witnesses_reveal_requested_and_prove_absence() {
        let mut inner = TreeMap::new();
        inner.insert(b"status".to_vec(), Subtree::leaf(b"replied".to_vec()));
        inner.insert(b"reply".to_vec(), Subtree::leaf(b"DIDL".to_vec()));
        let mut m = map(&[("a", "1"), ("c", "3"), ("e", "5"), ("g", "7")]);
        m.insert(b"req".to_vec(), Subtree::Map(inner));
        let w = m.witness(&[vec![b"c".to_vec()], vec![b"d".to_vec()], vec![b"req".to_vec(), b"status".to_vec()]]);
        assert_eq!(w.digest(), m.hash());
        assert!(w.is_well_formed());
        assert_eq!(w.lookup_path(&[b"c"]), LookupResult::Found(b"3"));
        assert_eq!(w.lookup_path(&[b"d"]), LookupResult::Absent);
        assert_eq!(w.lookup_path(&[&b"req"[..], b"status"]), LookupResult::Found(b"replied"));
        assert_eq!(w.lookup_path(&[&b"req"[..], b"reply"]), LookupResult::Unknown);
        assert_eq!(w.lookup_path(&[b"g"]), LookupResult::Unknown);
    }

    proptest! {
        #[test]
        fn persistent_updates_match_a_fresh_build(
            ops in proptest::collection::vec((0u8..40, proptest::option::of(any::<u8>())), 1..200),
            probes in proptest::collection::vec(0u8..45, 1..8),
        ) {
            let mut m = TreeMap::new();
            let mut reference = std::collections::BTreeMap::new();
            let mut versions = Vec::new();
            for (k, v) in ops {
                let key = vec![b'k', k];
                match v {
                    Some(v) => { m.insert(key.clone(), Subtree::leaf(vec![v])); reference.insert(key, vec![v]); }
                    None => { m.remove(&key); reference.remove(&key); }
                }
                versions.push((m.clone(), reference.clone()));
            }
            for (m, reference) in versions {
                let mut fresh = TreeMap::new();
                for (k, v) in &reference { fresh.insert(k.clone(), Subtree::leaf(v.clone())); }
                prop_assert_eq!(m.hash(), fresh.hash());
                prop_assert_eq!(m.len(), reference.len());
                let paths: Vec<Vec<Vec<u8>>> = probes.iter().map(|p| vec![vec![b'k', *p]]).collect();
                let w = m.witness(&paths);
                prop_assert_eq!(w.digest(), m.hash());
                prop_assert!(w.is_well_formed());
                for p in &paths {
                    match reference.get(&p[0]) {
                        Some(v) => prop_assert_eq!(w.lookup_path(p), LookupResult::Found(v)),
                        None => prop_assert_eq!(w.lookup_path(p), LookupResult::Absent),
                    }
                }
            }
        }
    }
}
