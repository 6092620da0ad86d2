//! The replicated state of a subnet.
//!
//! Plain data with deterministic (ordered, float-free) structure: the
//! execution layer transforms it batch by batch, the state manager hashes,
//! certifies and checkpoints it. Canister memories are [`page_map::PageMap`]s
//! so a state can be cloned cheaply and a message pays only for the pages it
//! touched.

pub mod call_context;
pub mod canister_state;
pub mod page_map;
pub mod queues;
pub mod replicated_state;

pub use call_context::{CallContext, CallContextManager, CallOrigin, Callback, WasmClosure};
pub use canister_state::{CanisterSettings, CanisterState, CanisterStatus, ExecutionState, SystemState};
pub use page_map::{Memory, PAGE_SIZE, PageMap, WASM_PAGE_SIZE};
pub use queues::{CanisterInput, CanisterQueues, SystemTask};
pub use replicated_state::{IngressHistory, ReplicatedState, SubnetType, SystemMetadata};
