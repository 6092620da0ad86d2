//! `cairn-wasm-module`: from the bytes a user uploads to a module Cairn's engine can run
//! with orthogonal persistence — or a clear reason why not.
//!
//! A pure library (wasmparser + wasm-encoder, no engine), used on `install_code`:
//!
//! 1. [`decode_module`]: raw Wasm or gzip, with a hard cap on the decompressed size.
//! 2. [`validate`]: full Wasm validation with exactly the proposals Cairn supports
//!    ([`wasm_features`]) plus the IC's canister module rules (interface digest §7): one
//!    memory, imports only from the [`ic0`] table with the signature for the module's
//!    pointer width, the allowed `canister_*` exports, `icp:` custom sections, and the
//!    IC's size limits ([`ModuleLimits`]). Returns a [`ModuleInfo`] describing the module.
//! 3. [`instrument`]: rewrites the module so the engine can keep memory and globals across
//!    messages without re-running initialisation; returns an [`InstrumentedModule`]. Code
//!    is not rewritten: bulk memory and table operations are metered by length by the
//!    engine's fuel configuration, not by instrumentation.
//!
//! ```
//! # fn main() -> Result<(), cairn_wasm_module::ModuleError> {
//! use cairn_wasm_module::{ModuleLimits, decode_module, instrument, validate};
//! let upload = wat::parse_str(r#"(module (memory 1) (func (export "canister_init")))"#).unwrap();
//! let wasm = decode_module(&upload)?;
//! let info = validate(&wasm, &ModuleLimits::default())?;
//! let module = instrument(&wasm, &info)?;
//! assert!(module.has_memory && module.data_segments.is_empty());
//! # Ok(())
//! # }
//! ```

#![warn(missing_docs)]

mod decode;
mod error;
pub mod ic0;
mod instrument;
mod validate;

pub use decode::{DEFAULT_MAX_MODULE_SIZE, GZIP_MAGIC, WASM_MAGIC, decode_module, decode_module_with_limit};
pub use error::ModuleError;
pub use ic0::{FuncSig, ValType};
pub use instrument::{
    ExportedGlobal, GLOBAL_EXPORT_PREFIX, InstrumentedModule, MEMORY_EXPORT, START_EXPORT, TABLE_EXPORT,
    global_export_name, instrument,
};
pub use validate::{
    CustomSection, MemoryLimits, MethodKind, ModuleInfo, ModuleLimits, RESERVED_EXPORT_PREFIX, SystemMethod,
    Visibility, WASM_PAGE_SIZE, validate, wasm_features,
};

/// Decodes, validates and instruments in one go: what the engine does on install.
///
/// `limits.max_module_size` also caps gzip decompression.
pub fn prepare(upload: &[u8], limits: &ModuleLimits) -> Result<(ModuleInfo, InstrumentedModule), ModuleError> {
    let wasm = decode_module_with_limit(upload, limits.max_module_size)?;
    let info = validate(&wasm, limits)?;
    let module = instrument(&wasm, &info)?;
    Ok((info, module))
}
