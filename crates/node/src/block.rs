//! Blocks: what consensus agrees on, and what execution consumes.

use cairn_types::messages::Ingress;
use cairn_types::{Height, RegistryVersion, Time};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// A finalized block: the input of one execution round.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Block {
    pub height: Height,
    pub parent_hash: [u8; 32],
    /// Block time; strictly increasing along the chain.
    pub time: Time,
    /// The random tape of this height (seed of `raw_rand`).
    pub randomness: [u8; 32],
    pub ingress: Vec<Ingress>,
    /// The registry version the block was made under (it decides which
    /// nodes the state tree lists for the subnet).
    pub registry_version: RegistryVersion,
}

impl Block {
    /// The block's hash: SHA-256 of a domain separator and its canonical
    /// (postcard 1.x) encoding.
    pub fn hash(&self) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(b"\x0bcairn-block");
        h.update(postcard::to_stdvec(self).expect("blocks serialize"));
        h.finalize().into()
    }

    /// The canonical encoding.
    pub fn encode(&self) -> Vec<u8> {
        postcard::to_stdvec(self).expect("blocks serialize")
    }

    /// Decodes a block written by [`Block::encode`].
    pub fn decode(bytes: &[u8]) -> Result<Self, postcard::Error> {
        postcard::from_bytes(bytes)
    }
}
