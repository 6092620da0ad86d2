//! Chain-key certification among the nodes of a subnet.
//!
//! After executing a height, every node signs the root hash of its state
//! tree with its share of the subnet's threshold key and gossips the share.
//! `n − f` shares on the same root hash combine into the subnet's signature
//! (the one ic-agent verifies with the root key), so a certificate exists
//! only for a state that at least `n − 2f ≥ f + 1` honest nodes computed.
//!
//! The pool is also the **determinism guard**: when the subnet certifies a
//! root hash at a height this node executed with a *different* hash, this
//! node's state has diverged ([`Outcome::Diverged`]); it must stop executing
//! and be recovered (state sync), never serve or sign that state.
//!
//! Combining is optimistic: shares are interpolated first and only the
//! result is verified (one pairing check); individual shares are checked
//! only when that fails, and the bad ones are dropped.

use cairn_consensus::dkg::key_at;
use cairn_consensus::{ThresholdKey, ThresholdKeyStore};
use cairn_crypto::bls;
use cairn_crypto::certificate::state_root_message;
use cairn_types::Height;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;

/// One node's signature share on the state root at a height.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificationShare {
    pub height: Height,
    pub root_hash: [u8; 32],
    /// The signer's index in the subnet's threshold key.
    pub signer: bls::NodeIndex,
    #[serde(with = "serde_bytes")]
    pub share: Vec<u8>,
}

/// A combined certification: the subnet's threshold signature on a state root.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Certification {
    pub height: Height,
    pub root_hash: [u8; 32],
    #[serde(with = "serde_bytes")]
    pub signature: Vec<u8>,
}

/// What a new share or a newly executed height led to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The subnet certified this node's own state at `height`.
    Certified(Certification),
    /// The subnet certified `agreed` at a height where this node computed `ours`.
    Diverged { height: Height, ours: [u8; 32], agreed: [u8; 32] },
}

/// How far above the highest height this node knows of shares are kept:
/// a bound on what a peer can make this node store.
const MAX_HEIGHTS_AHEAD: u64 = 500;

/// Where the public shares that check a height's signers come from.
pub enum PublicShares {
    /// One key for every height (its threshold and shares).
    Fixed(usize, Vec<bls::PublicKey>),
    /// The high-threshold key of each height's interval, as consensus loads
    /// it from the chain (reshared every interval: the group key stays, the
    /// shares change).
    PerInterval { keys: Arc<ThresholdKeyStore>, interval_length: u64 },
}

impl PublicShares {
    /// The threshold and the number of share holders at `height`, once its
    /// interval's key is known here (members join and leave at interval
    /// starts, and each interval's key has its own threshold).
    fn shape(&self, height: Height) -> Option<(usize, usize)> {
        match self {
            PublicShares::Fixed(threshold, shares) => Some((*threshold, shares.len())),
            PublicShares::PerInterval { keys, interval_length } => {
                let key = keys.get(key_at(ThresholdKey::High, height, *interval_length))?;
                Some((key.threshold, key.receivers.len()))
            }
        }
    }

    fn get(&self, height: Height, signer: bls::NodeIndex) -> Option<bls::PublicKey> {
        match self {
            PublicShares::Fixed(_, shares) => shares.get(signer as usize).copied(),
            PublicShares::PerInterval { keys, interval_length } => {
                let key = keys.get(key_at(ThresholdKey::High, height, *interval_length))?;
                let node = key.receivers.get(signer as usize)?;
                key.public_shares.get(node).copied()
            }
        }
    }
}

/// Share indices above this are refused outright (no subnet is that big).
const MAX_SIGNERS: usize = 1_000;

/// Shares and certifications of recent heights, and this node's own root hashes.
pub struct CertificationPool {
    group_key: bls::PublicKey,
    public_shares: PublicShares,
    /// Heights whose shares wait for their interval's key to be loaded.
    waiting_for_key: std::collections::BTreeSet<Height>,
    /// Shares by height, then by signer (the first share of a signer counts).
    shares: BTreeMap<Height, BTreeMap<bls::NodeIndex, ([u8; 32], bls::Signature)>>,
    /// Root hashes this node computed, for heights not yet certified.
    own: BTreeMap<Height, [u8; 32]>,
    /// Certifications received or combined for heights this node has not executed yet.
    pending: BTreeMap<Height, Certification>,
    /// The highest certification matching this node's state.
    latest: Option<Certification>,
    /// Shares found invalid (count, for metrics).
    pub invalid_shares: u64,
}

impl CertificationPool {
    /// A pool for a subnet whose threshold key has these public coefficients.
    pub fn new(coefficients: &bls::PublicCoefficients, members: usize) -> CertificationPool {
        let shares = (0..members as bls::NodeIndex).map(|i| coefficients.public_share(i)).collect();
        Self::with_shares(coefficients.group_public_key(), PublicShares::Fixed(coefficients.threshold(), shares))
    }

    /// A pool for a subnet whose keys are made in the chain: shares are
    /// checked against the key of their height's interval.
    pub fn with_interval_keys(keys: Arc<ThresholdKeyStore>, interval_length: u64) -> CertificationPool {
        let group = keys.subnet_key();
        Self::with_shares(group, PublicShares::PerInterval { keys, interval_length })
    }

    fn with_shares(group_key: bls::PublicKey, public_shares: PublicShares) -> CertificationPool {
        CertificationPool {
            group_key,
            public_shares,
            waiting_for_key: Default::default(),
            shares: BTreeMap::new(),
            own: BTreeMap::new(),
            pending: BTreeMap::new(),
            latest: None,
            invalid_shares: 0,
        }
    }

    /// The height of the latest certification of this node's state.
    pub fn certified_height(&self) -> Height {
        self.latest.as_ref().map_or(Height(0), |c| c.height)
    }

    /// The latest certification of this node's state (sent to lagging peers).
    pub fn latest(&self) -> Option<&Certification> {
        self.latest.as_ref()
    }

    fn top(&self) -> Height {
        let own = self.own.keys().next_back().copied().unwrap_or(Height(0));
        own.max(self.certified_height())
    }

    /// Records this node's root hash and share at a height it just executed.
    pub fn add_own(
        &mut self,
        height: Height,
        root_hash: [u8; 32],
        signer: bls::NodeIndex,
        share: bls::Signature,
    ) -> Option<Outcome> {
        if height <= self.certified_height() {
            return None;
        }
        self.shares.entry(height).or_default().entry(signer).or_insert((root_hash, share));
        self.note_own(height, root_hash)
    }

    /// Records this node's root hash at `height` without a share of its own
    /// (it holds no share of that interval's key); returns what a pending
    /// certification completes, if anything.
    pub fn note_own(&mut self, height: Height, root_hash: [u8; 32]) -> Option<Outcome> {
        if height <= self.certified_height() {
            return None;
        }
        self.own.insert(height, root_hash);
        if let Some(cert) = self.pending.remove(&height) {
            return Some(self.conclude(cert));
        }
        self.try_combine(height)
    }

    /// Combines the heights whose shares waited for their interval's key,
    /// now that it may be loaded; returns what that completed.
    pub fn retry_waiting(&mut self) -> Vec<Outcome> {
        let certified = self.certified_height();
        let waiting = std::mem::take(&mut self.waiting_for_key);
        waiting.into_iter().filter(|h| *h > certified).filter_map(|h| self.try_combine(h)).collect()
    }

    /// Adds a peer's share; returns what it completed, if anything.
    pub fn add_share(&mut self, share: &CertificationShare) -> Option<Outcome> {
        let top = self.top();
        if share.height <= self.certified_height()
            || share.height.0 > top.0 + MAX_HEIGHTS_AHEAD
            || share.signer as usize >= MAX_SIGNERS
            || self.public_shares.shape(share.height).is_some_and(|(_, members)| share.signer as usize >= members)
        {
            return None;
        }
        let Ok(sig) = bls::Signature::from_bytes(&share.share) else {
            self.invalid_shares += 1;
            return None;
        };
        let at = self.shares.entry(share.height).or_default();
        if at.contains_key(&share.signer) {
            return None;
        }
        at.insert(share.signer, (share.root_hash, sig));
        self.try_combine(share.height)
    }

    /// Adds a combined certification from a peer (it verifies it first).
    pub fn add_certification(&mut self, cert: Certification) -> Option<Outcome> {
        if cert.height <= self.certified_height() || cert.height.0 > self.top().0 + MAX_HEIGHTS_AHEAD {
            return None;
        }
        let sig = bls::Signature::from_bytes(&cert.signature).ok()?;
        self.group_key.verify(&state_root_message(&cert.root_hash), &sig).ok()?;
        if self.own.contains_key(&cert.height) {
            Some(self.conclude(cert))
        } else {
            self.pending.insert(cert.height, cert);
            None
        }
    }

    /// Combines the shares at `height` if `threshold` of them agree on a root hash.
    fn try_combine(&mut self, height: Height) -> Option<Outcome> {
        loop {
            let at = self.shares.get(&height)?;
            let mut by_hash: BTreeMap<[u8; 32], Vec<(bls::NodeIndex, bls::Signature)>> = BTreeMap::new();
            for (signer, (hash, sig)) in at {
                by_hash.entry(*hash).or_default().push((*signer, *sig));
            }
            let Some((threshold, members)) = self.public_shares.shape(height) else {
                self.waiting_for_key.insert(height);
                return None;
            };
            let (hash, shares) = by_hash
                .into_iter()
                .map(|(h, s)| (h, s.into_iter().filter(|(i, _)| (*i as usize) < members).collect::<Vec<_>>()))
                .find(|(_, s)| s.len() >= threshold)?;
            let message = state_root_message(&hash);
            let combined = bls::combine(threshold, &shares).ok()?;
            if self.group_key.verify(&message, &combined).is_ok() {
                let cert = Certification { height, root_hash: hash, signature: combined.to_bytes().to_vec() };
                if self.own.contains_key(&height) {
                    return Some(self.conclude(cert));
                }
                self.pending.insert(height, cert);
                return None;
            }
            // Some share is bad: check them one by one and drop the culprits.
            let bad: Vec<bls::NodeIndex> = shares
                .iter()
                .filter(|(i, s)| self.public_shares.get(height, *i).is_some_and(|k| k.verify(&message, s).is_err()))
                .map(|(i, _)| *i)
                .collect();
            if bad.is_empty() {
                return None;
            }
            self.invalid_shares += bad.len() as u64;
            let at = self.shares.get_mut(&height)?;
            for i in bad {
                at.remove(&i);
            }
        }
    }

    /// A certification exists at a height this node executed: compare.
    fn conclude(&mut self, cert: Certification) -> Outcome {
        let height = cert.height;
        let ours = self.own.get(&height).copied().unwrap_or([0; 32]);
        if ours != cert.root_hash {
            return Outcome::Diverged { height, ours, agreed: cert.root_hash };
        }
        // Everything at or below a certified height is settled.
        let above = Height(height.0 + 1);
        self.shares = self.shares.split_off(&above);
        self.own = self.own.split_off(&above);
        self.pending = self.pending.split_off(&above);
        self.latest = Some(cert.clone());
        Outcome::Certified(cert)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Subnet {
        coefficients: bls::PublicCoefficients,
        keys: Vec<bls::SecretKey>,
    }

    fn subnet(n: usize, threshold: usize) -> Subnet {
        let (coefficients, keys) = bls::generate_threshold_keys([7; 32], threshold, n).unwrap();
        Subnet { coefficients, keys }
    }

    fn share(s: &Subnet, signer: u32, height: u64, hash: [u8; 32]) -> CertificationShare {
        let sig = bls::sign_share(&s.keys[signer as usize], &state_root_message(&hash));
        CertificationShare { height: Height(height), root_hash: hash, signer, share: sig.to_bytes().to_vec() }
    }

    fn own(p: &mut CertificationPool, s: &Subnet, signer: u32, height: u64, hash: [u8; 32]) -> Option<Outcome> {
        let sig = bls::sign_share(&s.keys[signer as usize], &state_root_message(&hash));
        p.add_own(Height(height), hash, signer, sig)
    }

    #[test]
    fn threshold_shares_on_our_hash_certify() {
        let s = subnet(4, 3);
        let mut p = CertificationPool::new(&s.coefficients, 4);
        assert_eq!(own(&mut p, &s, 0, 1, [1; 32]), None);
        assert_eq!(p.add_share(&share(&s, 1, 1, [1; 32])), None);
        let Some(Outcome::Certified(c)) = p.add_share(&share(&s, 2, 1, [1; 32])) else { panic!("not certified") };
        assert_eq!((c.height, c.root_hash), (Height(1), [1; 32]));
        let sig = bls::Signature::from_bytes(&c.signature).unwrap();
        s.coefficients.group_public_key().verify(&state_root_message(&[1; 32]), &sig).unwrap();
        assert_eq!(p.certified_height(), Height(1));
        // Late shares for a certified height change nothing.
        assert_eq!(p.add_share(&share(&s, 3, 1, [1; 32])), None);
    }

    #[test]
    fn a_byzantine_share_neither_blocks_nor_forges() {
        let s = subnet(4, 3);
        let mut p = CertificationPool::new(&s.coefficients, 4);
        own(&mut p, &s, 0, 5, [5; 32]);
        // Node 1 signs a wrong hash, node 3 sends garbage for the right one.
        assert_eq!(p.add_share(&share(&s, 1, 5, [6; 32])), None);
        let mut forged = share(&s, 3, 5, [5; 32]);
        forged.share = share(&s, 3, 5, [9; 32]).share;
        assert_eq!(p.add_share(&forged), None);
        assert_eq!(p.invalid_shares, 0, "not checked yet: only two shares agree");
        // The honest third share completes the set; the forged one is found and dropped.
        let out = p.add_share(&share(&s, 2, 5, [5; 32]));
        assert_eq!(p.invalid_shares, 1);
        assert_eq!(out, None, "only two valid shares on the hash");
        // A dropped share frees its signer's slot: a valid share then completes the set.
        assert!(matches!(p.add_share(&share(&s, 3, 5, [5; 32])), Some(Outcome::Certified(_))));
        // Node 1's share on the wrong hash kept its slot: a second share from it is ignored.
        assert_eq!(p.shares.get(&Height(5)), None, "settled heights are forgotten");
    }

    #[test]
    fn divergence_is_detected_when_the_subnet_certifies_another_hash() {
        let s = subnet(4, 3);
        let mut p = CertificationPool::new(&s.coefficients, 4);
        // The others certify height 2 before this node has executed it.
        for i in 1..4 {
            assert_eq!(p.add_share(&share(&s, i, 2, [2; 32])), None);
        }
        // This node then computes another hash.
        assert_eq!(
            own(&mut p, &s, 0, 2, [3; 32]),
            Some(Outcome::Diverged { height: Height(2), ours: [3; 32], agreed: [2; 32] })
        );
    }

    #[test]
    fn certifications_from_peers_are_verified_and_adopted() {
        let s = subnet(4, 3);
        let mut p = CertificationPool::new(&s.coefficients, 4);
        let shares: Vec<_> =
            (1..4).map(|i| (i, bls::sign_share(&s.keys[i as usize], &state_root_message(&[8; 32])))).collect();
        let good = Certification {
            height: Height(8),
            root_hash: [8; 32],
            signature: bls::combine(3, &shares).unwrap().to_bytes().to_vec(),
        };
        let mut bad = good.clone();
        bad.root_hash = [9; 32];
        assert_eq!(p.add_certification(bad), None);
        assert_eq!(p.add_certification(good.clone()), None, "held until this node executes height 8");
        assert_eq!(own(&mut p, &s, 0, 8, [8; 32]), Some(Outcome::Certified(good)));
        assert_eq!(p.certified_height(), Height(8));
    }

    #[test]
    fn shares_far_ahead_or_from_strangers_are_ignored() {
        let s = subnet(4, 3);
        let mut p = CertificationPool::new(&s.coefficients, 4);
        assert_eq!(p.add_share(&share(&s, 1, MAX_HEIGHTS_AHEAD + 1, [1; 32])), None);
        assert!(p.shares.is_empty());
        let mut stranger = share(&s, 1, 1, [1; 32]);
        stranger.signer = 4;
        assert_eq!(p.add_share(&stranger), None);
        assert!(p.shares.is_empty());
    }
}
