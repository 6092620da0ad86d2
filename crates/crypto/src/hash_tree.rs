//! The certified hash tree: wire format, `reconstruct`, and `lookup_path`.
//!
//! A [`HashTree`] is what certificates carry and what canister signatures
//! embed. It is a possibly pruned view of a labeled tree whose root hash
//! ("reconstruct") is what gets signed. Lookups distinguish values that are
//! provably absent from values hidden by pruning, exactly as the interface
//! spec's `lookup_path`, because clients rely on certified absence (e.g. an
//! unknown request status).

use crate::Digest;
use crate::cbor;
use ciborium::Value as Cbor;
use sha2::Digest as _;
use std::cmp::Ordering;
use std::fmt;

/// A (possibly pruned) hash tree, as in the interface spec.
#[derive(Clone, PartialEq, Eq)]
pub enum HashTree {
    /// The empty tree (no children), CBOR `[0]`.
    Empty,
    /// Two subtrees side by side, CBOR `[1, left, right]`.
    Fork(Box<HashTree>, Box<HashTree>),
    /// A labeled subtree, CBOR `[2, label, subtree]`.
    Labeled(Vec<u8>, Box<HashTree>),
    /// A value, CBOR `[3, value]`.
    Leaf(Vec<u8>),
    /// A subtree replaced by its hash, CBOR `[4, hash]`.
    Pruned(Digest),
}

/// The outcome of [`HashTree::lookup_path`], per the interface spec.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LookupResult<'a> {
    /// The path leads to this leaf value.
    Found(&'a [u8]),
    /// The tree proves that the path does not exist.
    Absent,
    /// The path leads into a pruned part; nothing can be concluded.
    Unknown,
    /// The path ends at an inner node, where a value was expected.
    Error,
}

/// The outcome of [`HashTree::lookup_subtree`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SubtreeLookup<'a> {
    /// The subtree at the path.
    Found(&'a HashTree),
    /// The tree proves that the path does not exist.
    Absent,
    /// The path leads into a pruned part.
    Unknown,
}

/// Why bytes are not a valid hash tree.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HashTreeError {
    #[error("hash tree is not valid CBOR: {0}")]
    Cbor(String),
    #[error("malformed hash tree node: {0}")]
    Malformed(String),
}

/// `H(len(s) · s · parts…)`: the domain-separated hashes of `reconstruct`.
fn hash_with_domain(domain: &[u8], parts: &[&[u8]]) -> Digest {
    let mut h = sha2::Sha256::new();
    h.update([domain.len() as u8]);
    h.update(domain);
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

/// Hash of [`HashTree::Empty`]: `H(ds"ic-hashtree-empty")`.
pub fn empty_hash() -> Digest {
    hash_with_domain(b"ic-hashtree-empty", &[])
}

/// Hash of a fork: `H(ds"ic-hashtree-fork" · left · right)`.
pub fn fork_hash(left: &Digest, right: &Digest) -> Digest {
    hash_with_domain(b"ic-hashtree-fork", &[left, right])
}

/// Hash of a labeled node: `H(ds"ic-hashtree-labeled" · label · subtree)`.
pub fn labeled_hash(label: &[u8], subtree: &Digest) -> Digest {
    hash_with_domain(b"ic-hashtree-labeled", &[label, subtree])
}

/// Hash of a leaf: `H(ds"ic-hashtree-leaf" · value)`.
pub fn leaf_hash(value: &[u8]) -> Digest {
    hash_with_domain(b"ic-hashtree-leaf", &[value])
}

impl HashTree {
    /// A fork of two subtrees.
    pub fn fork(left: HashTree, right: HashTree) -> HashTree {
        HashTree::Fork(Box::new(left), Box::new(right))
    }

    /// A labeled subtree.
    pub fn labeled(label: impl AsRef<[u8]>, subtree: HashTree) -> HashTree {
        HashTree::Labeled(label.as_ref().to_vec(), Box::new(subtree))
    }

    /// A leaf.
    pub fn leaf(value: impl AsRef<[u8]>) -> HashTree {
        HashTree::Leaf(value.as_ref().to_vec())
    }

    /// `reconstruct`: the root hash that certificates sign.
    pub fn digest(&self) -> Digest {
        match self {
            HashTree::Empty => empty_hash(),
            HashTree::Fork(l, r) => fork_hash(&l.digest(), &r.digest()),
            HashTree::Labeled(label, t) => labeled_hash(label, &t.digest()),
            HashTree::Leaf(v) => leaf_hash(v),
            HashTree::Pruned(h) => *h,
        }
    }

    /// The nodes obtained by flattening nested forks, left to right
    /// (`flatten_forks` of the spec).
    fn flatten_forks(&self) -> Vec<&HashTree> {
        let mut out = Vec::new();
        let mut stack = vec![self];
        while let Some(t) = stack.pop() {
            match t {
                HashTree::Empty => {}
                HashTree::Fork(l, r) => {
                    stack.push(r);
                    stack.push(l);
                }
                other => out.push(other),
            }
        }
        out
    }

    /// `find_label` of the spec: the subtree under `label` among the
    /// flattened children, or a proof of absence, or "unknown".
    fn find_label(&self, label: &[u8]) -> SubtreeLookup<'_> {
        let nodes = self.flatten_forks();
        if let Some(t) = nodes.iter().find_map(|n| match n {
            HashTree::Labeled(l, t) if l.as_slice() == label => Some(t.as_ref()),
            _ => None,
        }) {
            return SubtreeLookup::Found(t);
        }
        fn label_of<'t>(n: &&'t HashTree) -> Option<&'t [u8]> {
            match n {
                HashTree::Labeled(l, _) => Some(l.as_slice()),
                _ => None,
            }
        }
        // Absent between two adjacent labels, before the first or after the last.
        for pair in nodes.windows(2) {
            if let (Some(l1), Some(l2)) = (label_of(&pair[0]), label_of(&pair[1]))
                && l1 < label
                && label < l2
            {
                return SubtreeLookup::Absent;
            }
        }
        match nodes.first() {
            None => return SubtreeLookup::Absent,
            Some(first) => {
                if let Some(l) = label_of(first)
                    && label < l
                {
                    return SubtreeLookup::Absent;
                }
            }
        }
        if let Some(l) = nodes.last().and_then(label_of)
            && l < label
        {
            return SubtreeLookup::Absent;
        }
        if let [HashTree::Leaf(_)] = nodes.as_slice() {
            return SubtreeLookup::Absent;
        }
        SubtreeLookup::Unknown
    }

    /// `lookup_path` of the spec: the leaf value at `path`, or whether the
    /// tree proves its absence, hides it, or has no leaf there.
    pub fn lookup_path<L: AsRef<[u8]>>(&self, path: &[L]) -> LookupResult<'_> {
        let mut tree = self;
        for label in path {
            match tree.find_label(label.as_ref()) {
                SubtreeLookup::Found(t) => tree = t,
                SubtreeLookup::Absent => return LookupResult::Absent,
                SubtreeLookup::Unknown => return LookupResult::Unknown,
            }
        }
        match tree {
            HashTree::Empty => LookupResult::Absent,
            HashTree::Leaf(v) => LookupResult::Found(v),
            HashTree::Pruned(_) => LookupResult::Unknown,
            HashTree::Labeled(..) | HashTree::Fork(..) => LookupResult::Error,
        }
    }

    /// The subtree at `path` (e.g. `/canister_ranges/<sid>` to list shards).
    pub fn lookup_subtree<L: AsRef<[u8]>>(&self, path: &[L]) -> SubtreeLookup<'_> {
        let mut tree = self;
        for label in path {
            match tree.find_label(label.as_ref()) {
                SubtreeLookup::Found(t) => tree = t,
                other => return other,
            }
        }
        SubtreeLookup::Found(tree)
    }

    /// The visible labeled children after flattening forks, in tree order.
    ///
    /// Pruned siblings are skipped; use this to enumerate e.g. node ids or
    /// range shards revealed in a certificate.
    pub fn children(&self) -> Vec<(&[u8], &HashTree)> {
        self.flatten_forks()
            .into_iter()
            .filter_map(|n| match n {
                HashTree::Labeled(l, t) => Some((l.as_slice(), t.as_ref())),
                _ => None,
            })
            .collect()
    }

    /// `well_formed` of the spec: labels strictly increasing within every
    /// flattened fork group, and leaves never mixed with labels.
    pub fn is_well_formed(&self) -> bool {
        if let HashTree::Leaf(_) = self {
            return true;
        }
        let nodes = self.flatten_forks();
        let mut previous: Option<&[u8]> = None;
        for node in &nodes {
            match node {
                HashTree::Labeled(l, t) => {
                    if let Some(p) = previous
                        && p.cmp(l.as_slice()) != Ordering::Less
                    {
                        return false;
                    }
                    previous = Some(l);
                    if !t.is_well_formed() {
                        return false;
                    }
                }
                HashTree::Leaf(_) => return false,
                _ => {}
            }
        }
        true
    }

    /// The CBOR value of the tree (arrays `[0]`, `[1,l,r]`, `[2,label,t]`,
    /// `[3,v]`, `[4,h]`), for embedding into larger CBOR documents.
    pub fn to_cbor_value(&self) -> Cbor {
        let tag = |n: u8| Cbor::Integer(n.into());
        match self {
            HashTree::Empty => Cbor::Array(vec![tag(0)]),
            HashTree::Fork(l, r) => Cbor::Array(vec![tag(1), l.to_cbor_value(), r.to_cbor_value()]),
            HashTree::Labeled(label, t) => Cbor::Array(vec![tag(2), Cbor::Bytes(label.clone()), t.to_cbor_value()]),
            HashTree::Leaf(v) => Cbor::Array(vec![tag(3), Cbor::Bytes(v.clone())]),
            HashTree::Pruned(h) => Cbor::Array(vec![tag(4), Cbor::Bytes(h.to_vec())]),
        }
    }

    /// Parses a tree from its CBOR value (self-describe tags are skipped).
    pub fn from_cbor_value(value: &Cbor) -> Result<HashTree, HashTreeError> {
        let bad = |m: String| HashTreeError::Malformed(m);
        let Cbor::Array(items) = cbor::untag(value) else {
            return Err(bad(format!("expected an array, found {}", cbor::kind(cbor::untag(value)))));
        };
        let node_tag = match items.first() {
            Some(Cbor::Integer(i)) => u8::try_from(i128::from(*i)).ok(),
            _ => None,
        }
        .ok_or_else(|| bad("node does not start with a small integer tag".into()))?;
        let blob = |i: usize| -> Result<Vec<u8>, HashTreeError> {
            cbor::bytes(&items[i])
                .map(<[u8]>::to_vec)
                .ok_or_else(|| bad(format!("node {node_tag}: element {i} is not a byte string")))
        };
        let expect_len = |n: usize| {
            if items.len() == n {
                Ok(())
            } else {
                Err(bad(format!("node {node_tag} has {} elements, expected {n}", items.len())))
            }
        };
        match node_tag {
            0 => {
                expect_len(1)?;
                Ok(HashTree::Empty)
            }
            1 => {
                expect_len(3)?;
                Ok(HashTree::fork(HashTree::from_cbor_value(&items[1])?, HashTree::from_cbor_value(&items[2])?))
            }
            2 => {
                expect_len(3)?;
                Ok(HashTree::Labeled(blob(1)?, Box::new(HashTree::from_cbor_value(&items[2])?)))
            }
            3 => {
                expect_len(2)?;
                Ok(HashTree::Leaf(blob(1)?))
            }
            4 => {
                expect_len(2)?;
                let h = blob(1)?;
                let h: Digest =
                    h.try_into().map_err(|h: Vec<u8>| bad(format!("pruned hash is {} bytes, expected 32", h.len())))?;
                Ok(HashTree::Pruned(h))
            }
            n => Err(bad(format!("unknown node tag {n}"))),
        }
    }

    /// CBOR bytes of the tree (untagged, as embedded in certificates).
    pub fn to_cbor(&self) -> Vec<u8> {
        cbor::encode(&self.to_cbor_value())
    }

    /// Parses CBOR bytes; a self-describe tag is accepted but not required.
    pub fn from_cbor(bytes: &[u8]) -> Result<HashTree, HashTreeError> {
        let value = cbor::decode(bytes).map_err(HashTreeError::Cbor)?;
        HashTree::from_cbor_value(&value)
    }
}

impl fmt::Debug for HashTree {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn label(l: &[u8]) -> String {
            match std::str::from_utf8(l) {
                Ok(s) if s.chars().all(|c| c.is_ascii_graphic()) => format!("{s:?}"),
                _ => format!("0x{}", hex::encode(l)),
            }
        }
        match self {
            HashTree::Empty => write!(f, "Empty"),
            HashTree::Fork(l, r) => f.debug_tuple("Fork").field(l).field(r).finish(),
            HashTree::Labeled(l, t) => write!(f, "Labeled({}, {:?})", label(l), t),
            HashTree::Leaf(v) => write!(f, "Leaf({})", label(v)),
            HashTree::Pruned(h) => write!(f, "Pruned(0x{})", hex::encode(h)),
        }
    }
}

impl serde::Serialize for HashTree {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.to_cbor_value().serialize(serializer)
    }
}

impl<'de> serde::Deserialize<'de> for HashTree {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Cbor::deserialize(deserializer)?;
        HashTree::from_cbor_value(&value).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC_TREE: &str = "8301830183024161830183018302417882034568656c6c6f810083024179820345776f726c6483024162820344676f6f648301830241638100830241648203476d6f726e696e67";

    #[test]
    fn spec_reconstruct_vector() {
        // Interface spec "Example" (digest §5.1).
        let tree = HashTree::from_cbor(&hex::decode(SPEC_TREE).unwrap()).unwrap();
        assert_eq!(hex::encode(tree.digest()), "eb5c5b2195e62d996b84c9bcc8259d19a83786a2f59e0878cec84c811f669aa0");
        // Re-encoding is byte-identical.
        assert_eq!(hex::encode(tree.to_cbor()), SPEC_TREE);
        assert!(tree.is_well_formed());
        assert_eq!(tree.lookup_path(&["a", "x"]), LookupResult::Found(b"hello"));
        assert_eq!(tree.lookup_path(&["a", "y"]), LookupResult::Found(b"world"));
        assert_eq!(tree.lookup_path(&["b"]), LookupResult::Found(b"good"));
        assert_eq!(tree.lookup_path(&["d"]), LookupResult::Found(b"morning"));
        assert_eq!(tree.lookup_path(&["c"]), LookupResult::Absent);
        assert_eq!(tree.lookup_path(&["a"]), LookupResult::Error);
        assert_eq!(tree.lookup_path(&["aa"]), LookupResult::Absent);
        assert_eq!(tree.lookup_path(&["e"]), LookupResult::Absent);
    }

    #[test]
    fn spec_pruned_vector_keeps_the_root() {
        // The spec's pruned version of the example: /a/y, /b, /c pruned away.
        let pruned = HashTree::fork(
            HashTree::fork(
                HashTree::labeled(
                    "a",
                    HashTree::fork(
                        HashTree::Pruned(
                            hex::decode("1b4feff9bef8131788b0c9dc6dbad6e81e524249c879e9f10f71ce3749f5a638")
                                .unwrap()
                                .try_into()
                                .unwrap(),
                        ),
                        HashTree::labeled("y", HashTree::leaf("world")),
                    ),
                ),
                HashTree::labeled(
                    "b",
                    HashTree::Pruned(
                        hex::decode("7b32ac0c6ba8ce35ac82c255fc7906f7fc130dab2a090f80fe12f9c2cae83ba6")
                            .unwrap()
                            .try_into()
                            .unwrap(),
                    ),
                ),
            ),
            HashTree::fork(
                HashTree::Pruned(
                    hex::decode("ec8324b8a1f1ac16bd2e806edba78006479c9877fed4eb464a25485465af601d")
                        .unwrap()
                        .try_into()
                        .unwrap(),
                ),
                HashTree::labeled("d", HashTree::leaf("morning")),
            ),
        );
        assert_eq!(hex::encode(pruned.digest()), "eb5c5b2195e62d996b84c9bcc8259d19a83786a2f59e0878cec84c811f669aa0");
        // The spec's lookup table for the pruned tree.
        assert_eq!(pruned.lookup_path(&["a", "a"]), LookupResult::Unknown);
        assert_eq!(pruned.lookup_path(&["a", "y"]), LookupResult::Found(b"world"));
        assert_eq!(pruned.lookup_path(&["aa"]), LookupResult::Absent);
        assert_eq!(pruned.lookup_path(&["ax"]), LookupResult::Absent);
        assert_eq!(pruned.lookup_path(&["b"]), LookupResult::Unknown);
        assert_eq!(pruned.lookup_path(&["bb"]), LookupResult::Unknown);
        assert_eq!(pruned.lookup_path(&["d"]), LookupResult::Found(b"morning"));
        assert_eq!(pruned.lookup_path(&["e"]), LookupResult::Absent);
    }

    #[test]
    fn leaf_and_empty_semantics() {
        let leaf = HashTree::leaf("v");
        assert_eq!(leaf.lookup_path::<&str>(&[]), LookupResult::Found(b"v"));
        // A path through a leaf is absent (current spec: find_label(l, [Leaf _]) = Absent).
        assert_eq!(leaf.lookup_path(&["x"]), LookupResult::Absent);
        assert_eq!(HashTree::Empty.lookup_path(&["x"]), LookupResult::Absent);
        assert_eq!(HashTree::Empty.lookup_path::<&str>(&[]), LookupResult::Absent);
        let pruned = HashTree::Pruned([0; 32]);
        assert_eq!(pruned.lookup_path(&["x"]), LookupResult::Unknown);
        assert_eq!(pruned.lookup_path::<&str>(&[]), LookupResult::Unknown);
    }

    #[test]
    fn well_formedness() {
        let bad_order =
            HashTree::fork(HashTree::labeled("b", HashTree::leaf("")), HashTree::labeled("a", HashTree::leaf("")));
        assert!(!bad_order.is_well_formed());
        let dup =
            HashTree::fork(HashTree::labeled("a", HashTree::leaf("")), HashTree::labeled("a", HashTree::leaf("")));
        assert!(!dup.is_well_formed());
        let mixed = HashTree::fork(HashTree::labeled("a", HashTree::leaf("")), HashTree::leaf("x"));
        assert!(!mixed.is_well_formed());
        let nested_bad = HashTree::labeled("x", bad_order);
        assert!(!nested_bad.is_well_formed());
        assert!(HashTree::Empty.is_well_formed());
    }

    #[test]
    fn cbor_errors_are_reported() {
        assert!(HashTree::from_cbor(&[0x82, 0x04, 0x41, 0x00]).is_err()); // short pruned hash
        assert!(HashTree::from_cbor(&[0x81, 0x05]).is_err()); // unknown tag
        assert!(HashTree::from_cbor(&[0x82, 0x00, 0x00]).is_err()); // wrong arity
        assert!(HashTree::from_cbor(&[0xff]).is_err());
        // With the self-describe tag.
        let mut tagged = vec![0xd9, 0xd9, 0xf7];
        tagged.extend(HashTree::leaf("x").to_cbor());
        assert_eq!(HashTree::from_cbor(&tagged).unwrap(), HashTree::leaf("x"));
    }
}
