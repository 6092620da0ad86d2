//! The execution layer of a Cairn replica.
//!
//! Given the replicated state and a batch decided by consensus,
//! [`ExecutionEnvironment::execute_round`] inducts the batch's ingress,
//! runs the deterministic scheduler (canister messages, callbacks, system
//! tasks and management canister calls) and leaves the next state. Queries
//! run with [`ExecutionEnvironment::execute_query`] against any state and
//! change nothing.

pub mod config;
pub mod cycles;
mod environment;
mod inspect;
mod install;
pub mod management;
mod messages;
mod query;
mod scheduler;

pub use config::ExecutionConfig;
pub use environment::ExecutionEnvironment;
pub use query::Query;
pub use scheduler::{Batch, RoundStats};
