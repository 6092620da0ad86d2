//! The state manager: certifies states and keeps them durable.
//!
//! - [`certified_tree`]: the persistent, canonically shaped hash tree.
//! - [`state_tree`]: the IC state tree built incrementally from the replicated state.
//! - [`certification`]: a state with the signature on its tree.
//! - [`checkpoint`]: whole states on disk, named by their [`manifest`] root,
//!   and assembled chunk by chunk during state sync.

pub mod certification;
pub mod certified_tree;
pub mod checkpoint;
pub mod manifest;
pub mod state_tree;

pub use certification::CertifiedState;
pub use certified_tree::{Subtree, TreeMap};
pub use checkpoint::{CheckpointError, Checkpoints, IncomingCheckpoint, Restored};
pub use manifest::Manifest;
pub use state_tree::{StateTreeBuilder, SubnetTreeInfo};
