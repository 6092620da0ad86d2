//! Cairn's Wasm engine.
//!
//! - [`engine`]: wasmtime with a deterministic configuration (NaN
//!   canonicalisation, no threads, fixed stack, fuel metering with IC-like
//!   operator costs), a compiled-module cache keyed by module hash, and
//!   [`engine::Sandbox`]es that keep a canister's instance alive between messages.
//! - [`memory`]: linear memories whose dirty pages are tracked with write
//!   protection, so persisting a message costs O(pages touched).
//! - [`system_api`] and the linker: the complete `ic0` System API in both the
//!   wasm32 and the wasm64 form.

pub mod engine;
pub mod error;
mod linker;
pub mod memory;
pub mod system_api;

pub use engine::{
    CanisterMemories, CommittedState, CompiledModule, ExecutionInput, ExecutionOutput, FuncRef, Sandbox, WasmEngine,
    spawn_execution_thread, with_execution_stack,
};
pub use error::HypervisorError;
pub use memory::CommitStats;
pub use system_api::{ApiEnvironment, ApiInputs, ApiResponse, Context, OutgoingCall, SystemApi};
