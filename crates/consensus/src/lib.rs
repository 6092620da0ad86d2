//! Internet Computer consensus for Cairn, as a pure, deterministic state
//! machine over an artifact pool.
//!
//! A subnet of `n` nodes tolerates `f = ⌊(n−1)/3⌋` faulty (even malicious)
//! ones. Every height runs one round: a random beacon (threshold BLS, f+1)
//! ranks the block makers of the next height; the rank-0 maker proposes at
//! once, others after `unit_delay × rank`; notaries sign the lowest-ranked
//! valid proposals after the notary delay; 2f+1 notarization shares make a
//! notarization and move everyone to the next height; a notary that saw
//! exactly one notarized block at a height and voted for no other signs a
//! finalization share, and 2f+1 of those make the block and its ancestors
//! final. Finalized blocks are delivered in height order with the random
//! tape of their height (execution randomness).
//!
//! # The seam for the node
//!
//! * [`ArtifactPool`]: received artifacts go in with
//!   [`ArtifactPool::insert_unvalidated`]; after a restart the pool is
//!   rebuilt with [`ArtifactPool::restore`] from the persisted validated
//!   artifacts.
//! * [`Consensus::step`]`(pool, now, local)`: time and the local certified
//!   height/registry version are passed in. It returns a [`StepOutput`]:
//!   [`PoolEvent`]s (validated artifacts to *persist, then gossip*; removed
//!   artifacts to delete), finalized [`Batch`]es to execute in order, and
//!   when to call again.
//! * [`ConsensusCrypto`]: [`BlsCrypto`] (real keys) or [`FakeCrypto`].
//! * [`PayloadHandler`]: builds and validates payloads;
//!   [`IngressPayloadHandler`] implements the IC's ingress rules over an
//!   [`IngressSource`] (the node's ingress pool).
//! * Artifacts ([`ConsensusMessage`]) are serde types (postcard for the wire
//!   and the store); hashes and signatures use a separate canonical encoding.
//!
//! A node's consensus loop, in outline:
//!
//! ```ignore
//! let mut pool = ArtifactPool::restore(&genesis, store.validated_artifacts());
//! let mut consensus = Consensus::new(config, crypto, payload_handler, last_executed.increment());
//! loop {
//!     for msg in network.received() {
//!         pool.insert_unvalidated(msg);
//!     }
//!     let out = consensus.step(&mut pool, wall_clock_now(), &LocalState { certified_height, registry_version });
//!     for event in out.events {
//!         match event {
//!             PoolEvent::Validated { id, message, own } => { store.put(id, &message); network.gossip(message, own) }
//!             PoolEvent::Removed(id) => store.delete(id),
//!             PoolEvent::Invalid(id, why) => log_invalid(id, why),
//!         }
//!     }
//!     execute(out.batches); // then step again: the certified height moved
//!     wait_until(out.wake_at.or(next_message_arrival));
//! }
//! ```
//!
//! No I/O, no clocks, no OS randomness, no hash-map iteration: the same
//! inputs always give the same outputs, which is what lets the simulation
//! tests run whole subnets deterministically from a seed.

#![warn(missing_docs)]

pub mod committee;
pub mod consensus;
pub mod crypto;
pub mod dkg;
pub mod hash;
pub mod params;
pub mod payload;
pub mod pool;
pub mod types;
pub mod validator;

#[cfg(test)]
mod tests;

pub use committee::{FixedMembers, Membership, MembershipError, RoundCommittee, SubnetRegistry, faults_tolerated};
pub use consensus::{Consensus, ConsensusConfig, LocalState, StepOutput};
pub use crypto::{
    BlsCrypto, ConsensusCrypto, CryptoError, FakeCrypto, KeyId, KeySetupError, LoadedKey, NodeSecretKeys, SubnetKeys,
    SubnetPublicKeys, ThresholdKey, ThresholdKeyStore, generate_subnet_keys, generate_subnet_keys_with,
};
pub use hash::CryptoHash;
pub use params::ConsensusParams;
pub use payload::{
    EmptyPayloadHandler, IngressInfo, IngressLimits, IngressPayloadHandler, IngressSource, PastBlock, PayloadContext,
    PayloadError, PayloadHandler,
};
pub use pool::{ArtifactPool, ChangeAction, PoolEvent, Received};
pub use types::{
    ArtifactId, ArtifactKind, Batch, Block, BlockContext, BlockProposal, CatchUpContent, CatchUpPackage,
    CatchUpPackageShare, CatchUpShareContent, ConsensusMessage, EquivocationProof, Finalization, FinalizationContent,
    FinalizationShare, Genesis, MultiSignature, Notarization, NotarizationContent, NotarizationShare, Payload,
    RandomBeacon, RandomBeaconContent, RandomBeaconShare, RandomTape, RandomTapeContent, RandomTapeShare, Rank, Share,
    SignedContent, ThresholdSignature,
};
pub use validator::InvalidArtifact;
