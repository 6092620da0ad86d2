//! Consensus artifacts: blocks, proposals, beacons, tapes, notarizations,
//! finalizations, their shares, and equivocation proofs.
//!
//! Every artifact is a plain serde type (postcard-friendly: no maps, no
//! floats), so the node can gossip and persist them as they are. Hashes and
//! signed bytes never use serde; they come from [`Encoder`], which is
//! canonical and domain-separated.

use crate::crypto::ConsensusCrypto;
use crate::dkg::{DkgPayload, DkgSummary, SignedComplaint, SignedDealing};
use crate::hash::{CryptoHash, Encoder, StreamHasher, domain};
use cairn_types::{Height, NodeId, RegistryVersion, Time};
use serde::{Deserialize, Serialize};
use std::fmt;

/// A block maker's rank at a height: 0 is the leader, higher ranks are
/// fall-backs that wait longer. Only ranks `0..=f` exist.
#[derive(Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Debug)]
pub struct Rank(pub u64);

/// What a block claims about the world when it was made; validators check it
/// against the parent and against their own view.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, Debug)]
pub struct BlockContext {
    /// Block time (nanoseconds since the epoch): strictly greater than the
    /// parent's, never ahead of a validator's clock. Execution's `time`.
    pub time: Time,
    /// The registry version the block was made under; never decreases.
    pub registry_version: RegistryVersion,
    /// The latest height whose state the maker had certified; never
    /// decreases and never exceeds a validator's certified height.
    pub certified_height: Height,
}

/// The messages a block carries. Consensus treats them as opaque bytes; the
/// [`PayloadHandler`](crate::payload::PayloadHandler) supplied by the node
/// gives them meaning (ingress messages today).
#[derive(Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Payload {
    /// The messages, in the order execution will see them.
    pub messages: Vec<Vec<u8>>,
}

impl fmt::Debug for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Payload({} messages, {} bytes)", self.messages.len(), self.byte_size())
    }
}

impl Payload {
    /// A payload with these messages.
    pub fn new(messages: Vec<Vec<u8>>) -> Payload {
        Payload { messages }
    }

    /// Total bytes of all messages (what the block size limit counts).
    pub fn byte_size(&self) -> u64 {
        self.messages.iter().map(|m| m.len() as u64).sum()
    }

    /// Number of messages.
    pub fn len(&self) -> usize {
        self.messages.len()
    }

    /// Whether the payload carries nothing.
    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }

    /// Hash of the payload, folded into the block hash.
    pub fn hash(&self) -> CryptoHash {
        let mut h = StreamHasher::new(domain::PAYLOAD);
        h.u64(self.messages.len() as u64);
        for m in &self.messages {
            h.bytes(m);
        }
        h.finish()
    }
}

/// A block: one step of the chain, with its parent, rank, context and
/// payload. Its hash names it everywhere else.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize, Debug)]
pub struct Block {
    /// Hash of the parent block (at `height − 1`).
    pub parent: CryptoHash,
    /// Height in the chain; genesis is 0.
    pub height: Height,
    /// Rank of the maker that proposed it.
    pub rank: Rank,
    /// Time, registry version and certified height.
    pub context: BlockContext,
    /// The messages.
    pub payload: Payload,
    /// Key generation: dealings and complaints, or at an interval start the
    /// summary of the interval's keys.
    pub dkg: DkgPayload,
}

impl Block {
    /// The block hash: domain-separated SHA-256 over the header and the
    /// payload hash.
    pub fn hash(&self) -> CryptoHash {
        Encoder::new(domain::BLOCK)
            .hash(&self.parent)
            .height(self.height)
            .u64(self.rank.0)
            .time(self.context.time)
            .u64(self.context.registry_version.0)
            .height(self.context.certified_height)
            .hash(&self.payload.hash())
            .hash(&self.dkg.hash())
            .digest()
    }
}

/// What every node of a subnet agrees on before the first round: the
/// genesis block's time and registry version, the genesis beacon, and the
/// genesis keys (the summary of the first interval).
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Genesis {
    /// Time of the genesis block; block 1's time must be later.
    pub time: Time,
    /// Registry version the subnet starts with.
    pub registry_version: RegistryVersion,
    /// The genesis random beacon's value; seeds the first ranking.
    pub random_seed: [u8; 32],
    /// The keys of the first two intervals and who deals in the first.
    pub summary: DkgSummary,
}

impl Genesis {
    /// The genesis block (height 0, empty payload).
    pub fn block(&self) -> Block {
        Block {
            parent: CryptoHash::ZERO,
            height: Height(0),
            rank: Rank(0),
            context: BlockContext {
                time: self.time,
                registry_version: self.registry_version,
                certified_height: Height(0),
            },
            payload: Payload::default(),
            dkg: DkgPayload::Summary(Box::new(self.summary.clone())),
        }
    }

    /// The genesis random beacon (height 0); its "signature" is the seed.
    pub fn beacon(&self) -> RandomBeacon {
        ThresholdSignature {
            content: RandomBeaconContent { height: Height(0), parent: CryptoHash::ZERO },
            signature: self.random_seed.to_vec(),
        }
    }
}

/// A block signed by its maker. The block hash is computed once, when the
/// proposal is built or decoded, because payloads can be megabytes.
#[derive(Clone, PartialEq, Eq)]
pub struct BlockProposal {
    block: Block,
    signer: NodeId,
    signature: Vec<u8>,
    hash: CryptoHash,
}

impl fmt::Debug for BlockProposal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Proposal(h={} rank={} by {} hash={:?} parent={:?})",
            self.block.height, self.block.rank.0, self.signer, self.hash, self.block.parent
        )
    }
}

#[derive(Serialize)]
struct ProposalWireRef<'a> {
    block: &'a Block,
    signer: &'a NodeId,
    signature: &'a [u8],
}

#[derive(Deserialize)]
struct ProposalWire {
    block: Block,
    signer: NodeId,
    signature: Vec<u8>,
}

impl Serialize for BlockProposal {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        ProposalWireRef { block: &self.block, signer: &self.signer, signature: &self.signature }.serialize(s)
    }
}

impl<'de> Deserialize<'de> for BlockProposal {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let w = ProposalWire::deserialize(d)?;
        Ok(BlockProposal::new(w.block, w.signer, w.signature))
    }
}

impl BlockProposal {
    /// A proposal from its parts (the hash is computed here).
    pub fn new(block: Block, signer: NodeId, signature: Vec<u8>) -> BlockProposal {
        let hash = block.hash();
        BlockProposal { block, signer, signature, hash }
    }

    /// Signs `block` with the crypto's own node key.
    pub fn sign(block: Block, crypto: &dyn ConsensusCrypto) -> BlockProposal {
        let hash = block.hash();
        let signature = crypto.sign_basic(&Self::signing_bytes(block.height, &hash));
        BlockProposal { block, signer: crypto.node_id(), signature, hash }
    }

    /// The bytes a maker signs: height and block hash. Equivocation proofs
    /// can be checked from these two values alone.
    pub fn signing_bytes(height: Height, hash: &CryptoHash) -> Vec<u8> {
        Encoder::new(domain::PROPOSAL_SIG).height(height).hash(hash).finish()
    }

    /// The proposed block.
    pub fn block(&self) -> &Block {
        &self.block
    }

    /// The maker.
    pub fn signer(&self) -> NodeId {
        self.signer
    }

    /// The maker's signature over [`BlockProposal::signing_bytes`].
    pub fn signature(&self) -> &[u8] {
        &self.signature
    }

    /// The block hash.
    pub fn hash(&self) -> CryptoHash {
        self.hash
    }

    /// The block height.
    pub fn height(&self) -> Height {
        self.block.height
    }

    /// The claimed rank.
    pub fn rank(&self) -> Rank {
        self.block.rank
    }

    /// Consumes the proposal, returning the block.
    pub fn into_block(self) -> Block {
        self.block
    }
}

/// The content of a signed consensus statement (shares and aggregates share
/// it), so one generic validation and aggregation path serves all four kinds.
pub trait SignedContent: Clone + PartialEq + Eq + Ord + fmt::Debug {
    /// The kind of a share on this content.
    const SHARE_KIND: ArtifactKind;
    /// The kind of the aggregate on this content.
    const AGGREGATE_KIND: ArtifactKind;
    /// The height the statement is about.
    fn height(&self) -> Height;
    /// The canonical bytes signed by every share (domain-separated).
    fn signing_bytes(&self) -> Vec<u8>;
}

/// "The block with this hash at this height is notarized."
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Debug)]
pub struct NotarizationContent {
    /// Height of the block.
    pub height: Height,
    /// Hash of the block.
    pub block: CryptoHash,
}

impl SignedContent for NotarizationContent {
    const SHARE_KIND: ArtifactKind = ArtifactKind::NotarizationShare;
    const AGGREGATE_KIND: ArtifactKind = ArtifactKind::Notarization;
    fn height(&self) -> Height {
        self.height
    }
    fn signing_bytes(&self) -> Vec<u8> {
        Encoder::new(domain::NOTARIZATION_SIG).height(self.height).hash(&self.block).finish()
    }
}

/// "The block with this hash at this height is final."
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Debug)]
pub struct FinalizationContent {
    /// Height of the block.
    pub height: Height,
    /// Hash of the block.
    pub block: CryptoHash,
}

impl SignedContent for FinalizationContent {
    const SHARE_KIND: ArtifactKind = ArtifactKind::FinalizationShare;
    const AGGREGATE_KIND: ArtifactKind = ArtifactKind::Finalization;
    fn height(&self) -> Height {
        self.height
    }
    fn signing_bytes(&self) -> Vec<u8> {
        Encoder::new(domain::FINALIZATION_SIG).height(self.height).hash(&self.block).finish()
    }
}

/// The random beacon of a height chains to the previous beacon, so nobody
/// can choose it: a unique threshold signature over `(height, parent)`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Debug)]
pub struct RandomBeaconContent {
    /// The beacon's height.
    pub height: Height,
    /// Hash of the beacon at `height − 1`.
    pub parent: CryptoHash,
}

impl SignedContent for RandomBeaconContent {
    const SHARE_KIND: ArtifactKind = ArtifactKind::RandomBeaconShare;
    const AGGREGATE_KIND: ArtifactKind = ArtifactKind::RandomBeacon;
    fn height(&self) -> Height {
        self.height
    }
    fn signing_bytes(&self) -> Vec<u8> {
        Encoder::new(domain::BEACON_SIG).height(self.height).hash(&self.parent).finish()
    }
}

/// The random tape of a height: execution randomness (`raw_rand`), a unique
/// threshold signature over the height, revealed only once the height is
/// about to be delivered.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Debug)]
pub struct RandomTapeContent {
    /// The tape's height.
    pub height: Height,
}

impl SignedContent for RandomTapeContent {
    const SHARE_KIND: ArtifactKind = ArtifactKind::RandomTapeShare;
    const AGGREGATE_KIND: ArtifactKind = ArtifactKind::RandomTape;
    fn height(&self) -> Height {
        self.height
    }
    fn signing_bytes(&self) -> Vec<u8> {
        Encoder::new(domain::TAPE_SIG).height(self.height).finish()
    }
}

/// "At this height the finalized block, the random beacon and the state
/// (a checkpoint's manifest root) are these." Signed with the subnet's
/// high-threshold key, it lets a node start from this height without any
/// earlier block or state.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Debug)]
pub struct CatchUpShareContent {
    /// The interval start (a checkpoint height).
    pub height: Height,
    /// Hash of the finalized block at `height`.
    pub block: CryptoHash,
    /// Hash of the random beacon at `height`.
    pub beacon: CryptoHash,
    /// Root of the manifest of the checkpoint at `height`.
    pub state_hash: CryptoHash,
}

impl SignedContent for CatchUpShareContent {
    const SHARE_KIND: ArtifactKind = ArtifactKind::CatchUpPackageShare;
    const AGGREGATE_KIND: ArtifactKind = ArtifactKind::CatchUpPackage;
    fn height(&self) -> Height {
        self.height
    }
    fn signing_bytes(&self) -> Vec<u8> {
        Encoder::new(domain::CATCH_UP_SIG)
            .height(self.height)
            .hash(&self.block)
            .hash(&self.beacon)
            .hash(&self.state_hash)
            .finish()
    }
}

/// The whole of a catch-up package's statement: the block and the beacon
/// themselves (a node that has neither starts from them), and the state hash.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, Debug)]
pub struct CatchUpContent {
    /// The finalized block at the package's height.
    pub block: Block,
    /// The random beacon at that height.
    pub beacon: RandomBeacon,
    /// Root of the manifest of the checkpoint at that height.
    pub state_hash: CryptoHash,
}

impl CatchUpContent {
    /// The package's height.
    pub fn height(&self) -> Height {
        self.block.height
    }

    /// What the shares sign (the same bytes the package's signature covers).
    pub fn share_content(&self) -> CatchUpShareContent {
        CatchUpShareContent {
            height: self.block.height,
            block: self.block.hash(),
            beacon: self.beacon.hash(),
            state_hash: self.state_hash,
        }
    }
}

/// One node's signature share on a content.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize, Debug)]
pub struct Share<C> {
    /// What is signed.
    pub content: C,
    /// Who signed.
    pub signer: NodeId,
    /// The share (BLS multi-signature share or threshold share).
    pub signature: Vec<u8>,
}

/// A BLS multi-signature: the signers are listed (sorted, distinct) so the
/// verifier can aggregate their public keys.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, Debug)]
pub struct MultiSignature<C> {
    /// What is signed.
    pub content: C,
    /// The signers, sorted ascending, without duplicates.
    pub signers: Vec<NodeId>,
    /// The aggregated signature.
    pub signature: Vec<u8>,
}

/// A threshold BLS signature: unique for the content whichever shares made
/// it, which is what makes beacons and tapes unbiasable.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, Debug)]
pub struct ThresholdSignature<C> {
    /// What is signed.
    pub content: C,
    /// The combined signature.
    pub signature: Vec<u8>,
}

/// A notary's vote that a block is valid and may extend the chain.
pub type NotarizationShare = Share<NotarizationContent>;
/// 2f+1 notarization shares aggregated: the block may be built upon.
pub type Notarization = MultiSignature<NotarizationContent>;
/// A notary's vote that a notarized block is the only one it backed.
pub type FinalizationShare = Share<FinalizationContent>;
/// 2f+1 finalization shares aggregated: the block and its ancestors are final.
pub type Finalization = MultiSignature<FinalizationContent>;
/// A committee member's share of a random beacon.
pub type RandomBeaconShare = Share<RandomBeaconContent>;
/// The random beacon of a height.
pub type RandomBeacon = ThresholdSignature<RandomBeaconContent>;
/// A committee member's share of a random tape.
pub type RandomTapeShare = Share<RandomTapeContent>;
/// The random tape of a height.
pub type RandomTape = ThresholdSignature<RandomTapeContent>;
/// A high-threshold member's share of a catch-up package.
pub type CatchUpPackageShare = Share<CatchUpShareContent>;
/// A catch-up package: block, beacon and state hash of an interval start,
/// signed by the subnet key.
pub type CatchUpPackage = ThresholdSignature<CatchUpContent>;

impl RandomBeacon {
    /// The beacon's hash: chained into the next beacon and seeds the
    /// block-maker ranking and committee sampling of the next height.
    pub fn hash(&self) -> CryptoHash {
        Encoder::new(domain::BEACON_HASH).height(self.content.height).bytes(&self.signature).digest()
    }
}

impl RandomTape {
    /// The 32 random bytes handed to execution for this height.
    pub fn randomness(&self) -> [u8; 32] {
        Encoder::new(domain::TAPE_RANDOMNESS).height(self.content.height).bytes(&self.signature).digest().0
    }
}

/// Proof that a block maker signed two different blocks at one height; it
/// disqualifies that maker's proposals at that height on every honest node.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, Debug)]
pub struct EquivocationProof {
    /// The equivocating maker.
    pub signer: NodeId,
    /// The height of both proposals.
    pub height: Height,
    /// The smaller of the two block hashes.
    pub hash1: CryptoHash,
    /// The maker's signature on `hash1`.
    pub signature1: Vec<u8>,
    /// The larger of the two block hashes.
    pub hash2: CryptoHash,
    /// The maker's signature on `hash2`.
    pub signature2: Vec<u8>,
}

impl EquivocationProof {
    /// The proof for two proposals by the same signer at the same height
    /// (ordered by hash, so both orders give the same artifact), or `None`
    /// if they don't conflict.
    pub fn from_proposals(a: &BlockProposal, b: &BlockProposal) -> Option<EquivocationProof> {
        if a.signer() != b.signer() || a.height() != b.height() || a.hash() == b.hash() {
            return None;
        }
        let (x, y) = if a.hash() < b.hash() { (a, b) } else { (b, a) };
        Some(EquivocationProof {
            signer: x.signer(),
            height: x.height(),
            hash1: x.hash(),
            signature1: x.signature().to_vec(),
            hash2: y.hash(),
            signature2: y.signature().to_vec(),
        })
    }
}

/// Every kind of consensus artifact. Variant order is the validation order
/// within a pass (beacons first: they unlock committees).
#[repr(u8)]
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Debug)]
pub enum ArtifactKind {
    /// [`RandomBeacon`]
    RandomBeacon = 0,
    /// [`RandomBeaconShare`]
    RandomBeaconShare = 1,
    /// [`BlockProposal`]
    BlockProposal = 2,
    /// [`Notarization`]
    Notarization = 3,
    /// [`NotarizationShare`]
    NotarizationShare = 4,
    /// [`Finalization`]
    Finalization = 5,
    /// [`FinalizationShare`]
    FinalizationShare = 6,
    /// [`RandomTape`]
    RandomTape = 7,
    /// [`RandomTapeShare`]
    RandomTapeShare = 8,
    /// [`EquivocationProof`]
    EquivocationProof = 9,
    /// [`CatchUpPackage`]
    CatchUpPackage = 10,
    /// [`CatchUpPackageShare`]
    CatchUpPackageShare = 11,
    /// [`SignedDealing`] (height: the interval start it is dealt in)
    Dealing = 12,
    /// [`SignedComplaint`] (height: the interval start of the dealing)
    Complaint = 13,
}

impl ArtifactKind {
    /// All kinds, in order.
    pub const ALL: [ArtifactKind; 14] = [
        ArtifactKind::RandomBeacon,
        ArtifactKind::RandomBeaconShare,
        ArtifactKind::BlockProposal,
        ArtifactKind::Notarization,
        ArtifactKind::NotarizationShare,
        ArtifactKind::Finalization,
        ArtifactKind::FinalizationShare,
        ArtifactKind::RandomTape,
        ArtifactKind::RandomTapeShare,
        ArtifactKind::EquivocationProof,
        ArtifactKind::CatchUpPackage,
        ArtifactKind::CatchUpPackageShare,
        ArtifactKind::Dealing,
        ArtifactKind::Complaint,
    ];

    /// Whether this is one node's share (as opposed to a whole artifact);
    /// gossip may treat shares differently (they are not relayed).
    pub fn is_share(self) -> bool {
        matches!(
            self,
            ArtifactKind::RandomBeaconShare
                | ArtifactKind::NotarizationShare
                | ArtifactKind::FinalizationShare
                | ArtifactKind::RandomTapeShare
                | ArtifactKind::CatchUpPackageShare
        )
    }

    /// Key-generation artifacts live for a whole interval (their height is
    /// the interval start), not just until their height is finalized.
    pub fn is_dkg(self) -> bool {
        matches!(self, ArtifactKind::Dealing | ArtifactKind::Complaint)
    }
}

/// The identity of an artifact in the pool and on the wire: ordered by kind,
/// then height, so the pool can answer "all X at height h" with a range.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Debug)]
pub struct ArtifactId {
    /// The kind.
    pub kind: ArtifactKind,
    /// The height it is about.
    pub height: Height,
    /// Hash of the artifact's canonical encoding (signatures included, so a
    /// forged copy never shadows the genuine artifact).
    pub hash: CryptoHash,
}

impl ArtifactId {
    /// The smallest id of a kind at a height (for range queries).
    pub fn min(kind: ArtifactKind, height: Height) -> ArtifactId {
        ArtifactId { kind, height, hash: CryptoHash([0; 32]) }
    }

    /// The largest id of a kind at a height (for range queries).
    pub fn max(kind: ArtifactKind, height: Height) -> ArtifactId {
        ArtifactId { kind, height, hash: CryptoHash([0xff; 32]) }
    }
}

/// One consensus artifact, as gossiped and persisted.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, Debug)]
pub enum ConsensusMessage {
    /// A signed block.
    BlockProposal(BlockProposal),
    /// A random beacon.
    RandomBeacon(RandomBeacon),
    /// A random beacon share.
    RandomBeaconShare(RandomBeaconShare),
    /// A random tape.
    RandomTape(RandomTape),
    /// A random tape share.
    RandomTapeShare(RandomTapeShare),
    /// A notarization.
    Notarization(Notarization),
    /// A notarization share.
    NotarizationShare(NotarizationShare),
    /// A finalization.
    Finalization(Finalization),
    /// A finalization share.
    FinalizationShare(FinalizationShare),
    /// An equivocation proof.
    EquivocationProof(EquivocationProof),
    /// A catch-up package.
    CatchUpPackage(CatchUpPackage),
    /// A catch-up package share.
    CatchUpPackageShare(CatchUpPackageShare),
    /// A dealing for the keys of a later interval.
    Dealing(SignedDealing),
    /// A complaint against a dealing.
    Complaint(SignedComplaint),
}

fn encode_content_multi<C: SignedContent>(e: Encoder, m: &MultiSignature<C>) -> Encoder {
    let mut e = e.bytes(&m.content.signing_bytes()).u64(m.signers.len() as u64);
    for s in &m.signers {
        e = e.node(s);
    }
    e.bytes(&m.signature)
}

impl ConsensusMessage {
    /// The artifact's kind.
    pub fn kind(&self) -> ArtifactKind {
        match self {
            ConsensusMessage::BlockProposal(_) => ArtifactKind::BlockProposal,
            ConsensusMessage::RandomBeacon(_) => ArtifactKind::RandomBeacon,
            ConsensusMessage::RandomBeaconShare(_) => ArtifactKind::RandomBeaconShare,
            ConsensusMessage::RandomTape(_) => ArtifactKind::RandomTape,
            ConsensusMessage::RandomTapeShare(_) => ArtifactKind::RandomTapeShare,
            ConsensusMessage::Notarization(_) => ArtifactKind::Notarization,
            ConsensusMessage::NotarizationShare(_) => ArtifactKind::NotarizationShare,
            ConsensusMessage::Finalization(_) => ArtifactKind::Finalization,
            ConsensusMessage::FinalizationShare(_) => ArtifactKind::FinalizationShare,
            ConsensusMessage::EquivocationProof(_) => ArtifactKind::EquivocationProof,
            ConsensusMessage::CatchUpPackage(_) => ArtifactKind::CatchUpPackage,
            ConsensusMessage::CatchUpPackageShare(_) => ArtifactKind::CatchUpPackageShare,
            ConsensusMessage::Dealing(_) => ArtifactKind::Dealing,
            ConsensusMessage::Complaint(_) => ArtifactKind::Complaint,
        }
    }

    /// The height the artifact is about.
    pub fn height(&self) -> Height {
        match self {
            ConsensusMessage::BlockProposal(p) => p.height(),
            ConsensusMessage::RandomBeacon(x) => x.content.height,
            ConsensusMessage::RandomBeaconShare(x) => x.content.height,
            ConsensusMessage::RandomTape(x) => x.content.height,
            ConsensusMessage::RandomTapeShare(x) => x.content.height,
            ConsensusMessage::Notarization(x) => x.content.height,
            ConsensusMessage::NotarizationShare(x) => x.content.height,
            ConsensusMessage::Finalization(x) => x.content.height,
            ConsensusMessage::FinalizationShare(x) => x.content.height,
            ConsensusMessage::EquivocationProof(x) => x.height,
            ConsensusMessage::CatchUpPackage(x) => x.content.height(),
            ConsensusMessage::CatchUpPackageShare(x) => x.content.height,
            ConsensusMessage::Dealing(x) => x.content.interval,
            ConsensusMessage::Complaint(x) => x.content.interval,
        }
    }

    /// The artifact's id: kind, height and the hash of its canonical
    /// encoding (which covers every signature).
    pub fn id(&self) -> ArtifactId {
        let kind = self.kind();
        let e = Encoder::new(domain::ARTIFACT_ID).u8(kind as u8).height(self.height());
        let e = match self {
            ConsensusMessage::BlockProposal(p) => e.hash(&p.hash()).node(&p.signer()).bytes(p.signature()),
            ConsensusMessage::RandomBeacon(x) => e.bytes(&x.content.signing_bytes()).bytes(&x.signature),
            ConsensusMessage::RandomTape(x) => e.bytes(&x.content.signing_bytes()).bytes(&x.signature),
            ConsensusMessage::RandomBeaconShare(x) => {
                e.bytes(&x.content.signing_bytes()).node(&x.signer).bytes(&x.signature)
            }
            ConsensusMessage::RandomTapeShare(x) => {
                e.bytes(&x.content.signing_bytes()).node(&x.signer).bytes(&x.signature)
            }
            ConsensusMessage::NotarizationShare(x) => {
                e.bytes(&x.content.signing_bytes()).node(&x.signer).bytes(&x.signature)
            }
            ConsensusMessage::FinalizationShare(x) => {
                e.bytes(&x.content.signing_bytes()).node(&x.signer).bytes(&x.signature)
            }
            ConsensusMessage::Notarization(x) => encode_content_multi(e, x),
            ConsensusMessage::Finalization(x) => encode_content_multi(e, x),
            ConsensusMessage::EquivocationProof(x) => {
                e.node(&x.signer).hash(&x.hash1).bytes(&x.signature1).hash(&x.hash2).bytes(&x.signature2)
            }
            ConsensusMessage::CatchUpPackage(x) => {
                e.bytes(&x.content.share_content().signing_bytes()).bytes(&x.signature)
            }
            ConsensusMessage::CatchUpPackageShare(x) => {
                e.bytes(&x.content.signing_bytes()).node(&x.signer).bytes(&x.signature)
            }
            ConsensusMessage::Dealing(x) => e.bytes(&x.content.signing_bytes(&x.signer)).bytes(&x.signature),
            ConsensusMessage::Complaint(x) => e.bytes(&x.content.signing_bytes(&x.signer)).bytes(&x.signature),
        };
        ArtifactId { kind, height: self.height(), hash: e.digest() }
    }

    /// Whether this is a chain root's stand-in (genesis, or a block a
    /// catch-up package vouches for): unsigned, so never sent to peers.
    pub fn is_root_stand_in(&self) -> bool {
        match self {
            ConsensusMessage::BlockProposal(p) => p.signature().is_empty(),
            ConsensusMessage::Notarization(x) => x.signers.is_empty(),
            ConsensusMessage::Finalization(x) => x.signers.is_empty(),
            _ => false,
        }
    }

    /// The signer of a share or proposal (`None` for aggregates and proofs).
    pub fn signer(&self) -> Option<NodeId> {
        match self {
            ConsensusMessage::BlockProposal(p) => Some(p.signer()),
            ConsensusMessage::RandomBeaconShare(x) => Some(x.signer),
            ConsensusMessage::RandomTapeShare(x) => Some(x.signer),
            ConsensusMessage::NotarizationShare(x) => Some(x.signer),
            ConsensusMessage::FinalizationShare(x) => Some(x.signer),
            ConsensusMessage::CatchUpPackageShare(x) => Some(x.signer),
            ConsensusMessage::Dealing(x) => Some(x.signer),
            ConsensusMessage::Complaint(x) => Some(x.signer),
            _ => None,
        }
    }
}

/// A finalized block handed to execution, in height order, with the random
/// tape of its height.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, Debug)]
pub struct Batch {
    /// The height (equal to `block.height`).
    pub height: Height,
    /// The block's hash.
    pub block_hash: CryptoHash,
    /// The finalized block.
    pub block: Block,
    /// Execution randomness of this height (from the random tape).
    pub randomness: [u8; 32],
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_types::Principal;

    fn node(i: u8) -> NodeId {
        NodeId(Principal::try_from_slice(&[i; 29]).unwrap())
    }

    fn block(payload: &[&[u8]]) -> Block {
        Block {
            parent: CryptoHash([1; 32]),
            height: Height(5),
            rank: Rank(1),
            context: BlockContext {
                time: Time::from_nanos(99),
                registry_version: RegistryVersion(1),
                certified_height: Height(3),
            },
            payload: Payload::new(payload.iter().map(|m| m.to_vec()).collect()),
            dkg: Default::default(),
        }
    }

    #[test]
    fn block_hash_covers_every_field() {
        let b = block(&[b"a"]);
        let h = b.hash();
        let mut c = b.clone();
        c.rank = Rank(0);
        assert_ne!(c.hash(), h);
        let mut c = b.clone();
        c.context.time = Time::from_nanos(100);
        assert_ne!(c.hash(), h);
        let mut c = b.clone();
        c.context.certified_height = Height(4);
        assert_ne!(c.hash(), h);
        assert_ne!(block(&[b"a", b""]).hash(), h);
        assert_ne!(block(&[b"b"]).hash(), h);
        assert_eq!(block(&[b"a"]).hash(), h);
    }

    #[test]
    fn proposal_roundtrips_through_postcard_and_keeps_its_hash() {
        let p = BlockProposal::new(block(&[b"xyz"]), node(3), vec![7; 64]);
        let msg = ConsensusMessage::BlockProposal(p.clone());
        let bytes = postcard::to_stdvec(&msg).unwrap();
        let back: ConsensusMessage = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(back, msg);
        assert_eq!(back.id(), msg.id());
        match back {
            ConsensusMessage::BlockProposal(q) => assert_eq!(q.hash(), p.hash()),
            _ => unreachable!(),
        }
    }

    #[test]
    fn every_kind_roundtrips() {
        let c = NotarizationContent { height: Height(2), block: CryptoHash([9; 32]) };
        let msgs = vec![
            ConsensusMessage::Notarization(MultiSignature {
                content: c,
                signers: vec![node(1), node(2)],
                signature: vec![1],
            }),
            ConsensusMessage::NotarizationShare(Share { content: c, signer: node(1), signature: vec![2] }),
            ConsensusMessage::Finalization(MultiSignature {
                content: FinalizationContent { height: Height(2), block: CryptoHash([9; 32]) },
                signers: vec![node(1)],
                signature: vec![3],
            }),
            ConsensusMessage::RandomBeacon(ThresholdSignature {
                content: RandomBeaconContent { height: Height(1), parent: CryptoHash::ZERO },
                signature: vec![4],
            }),
            ConsensusMessage::RandomTapeShare(Share {
                content: RandomTapeContent { height: Height(1) },
                signer: node(4),
                signature: vec![5],
            }),
            ConsensusMessage::EquivocationProof(EquivocationProof {
                signer: node(1),
                height: Height(3),
                hash1: CryptoHash([1; 32]),
                signature1: vec![1],
                hash2: CryptoHash([2; 32]),
                signature2: vec![2],
            }),
        ];
        for m in msgs {
            let back: ConsensusMessage = postcard::from_bytes(&postcard::to_stdvec(&m).unwrap()).unwrap();
            assert_eq!(back, m);
            assert_eq!(back.id(), m.id());
        }
    }

    #[test]
    fn ids_differ_by_signature_and_kind() {
        let c = NotarizationContent { height: Height(2), block: CryptoHash([9; 32]) };
        let a = ConsensusMessage::NotarizationShare(Share { content: c, signer: node(1), signature: vec![2] });
        let b = ConsensusMessage::NotarizationShare(Share { content: c, signer: node(1), signature: vec![3] });
        let f = ConsensusMessage::FinalizationShare(Share {
            content: FinalizationContent { height: c.height, block: c.block },
            signer: node(1),
            signature: vec![2],
        });
        assert_ne!(a.id(), b.id());
        assert_ne!(a.id().hash, f.id().hash);
        assert!(ArtifactId::min(ArtifactKind::NotarizationShare, Height(2)) < a.id());
        assert!(a.id() < ArtifactId::max(ArtifactKind::NotarizationShare, Height(2)));
    }

    #[test]
    fn equivocation_proof_is_order_independent() {
        let p = BlockProposal::new(block(&[b"a"]), node(1), vec![1]);
        let q = BlockProposal::new(block(&[b"b"]), node(1), vec![2]);
        let x = EquivocationProof::from_proposals(&p, &q).unwrap();
        let y = EquivocationProof::from_proposals(&q, &p).unwrap();
        assert_eq!(x, y);
        assert!(x.hash1 < x.hash2);
        assert!(EquivocationProof::from_proposals(&p, &p).is_none());
        let r = BlockProposal::new(block(&[b"b"]), node(2), vec![2]);
        assert!(EquivocationProof::from_proposals(&p, &r).is_none());
    }
}
