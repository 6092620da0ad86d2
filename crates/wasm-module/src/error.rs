//! The one error type of this crate.

use crate::ic0::FuncSig;

/// Why a module was rejected (by [`crate::decode_module`] or [`crate::validate`]) or could
/// not be rewritten (by [`crate::instrument`]).
///
/// Each variant is one rule, so the engine can map rejections to IC reject codes and tests
/// can match on the rule rather than on text; the `Display` text is written for the
/// canister developer who reads it in an `install_code` rejection, in the spirit of the
/// IC's own messages (`rs/embedders/src/wasm_utils/validation.rs`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ModuleError {
    /// The bytes are neither a Wasm binary nor gzip.
    #[error(
        "bad magic: a canister module must be a Wasm binary (starting with \\0asm) \
         or gzip-compressed Wasm (starting with 1f 8b 08); found {found}"
    )]
    BadMagic {
        /// The first bytes found, in hex.
        found: String,
    },

    /// The gzip stream is corrupt or truncated.
    #[error("failed to decompress the gzip-compressed module: {0}")]
    Gzip(String),

    /// The gzip stream decompressed to something other than a Wasm binary.
    #[error("the gzip-compressed module does not contain a Wasm binary (found {found})")]
    GzipNotWasm {
        /// The first decompressed bytes, in hex.
        found: String,
    },

    /// The (decompressed) module is larger than allowed.
    #[error("Wasm module is too large: it exceeds the limit of {limit} bytes")]
    ModuleTooLarge {
        /// The limit in bytes.
        limit: u64,
    },

    /// The module uses a Wasm proposal that Cairn does not enable.
    #[error("Wasm module uses the unsupported feature '{feature}': {message}")]
    UnsupportedFeature {
        /// The proposal's name, e.g. `threads`, `tail-call`, `multi-memory`.
        feature: String,
        /// wasmparser's description, with the byte offset.
        message: String,
    },

    /// The module is not valid WebAssembly (wasmparser rejected it).
    #[error("invalid Wasm module: {0}")]
    Invalid(String),

    /// More than one linear memory (defined or imported).
    #[error("Wasm module defines {count} memories; at most one is allowed")]
    TooManyMemories {
        /// How many memories the module declares.
        count: u32,
    },

    /// An import that the IC does not provide (wrong module, unknown name, a
    /// memory/table/global/tag import, or a 32-bit-only function in a 64-bit module).
    #[error("Wasm module has an invalid import section. {0}")]
    InvalidImport(String),

    /// An `ic0` function imported with the wrong type for the module's pointer width.
    #[error(
        "Wasm module has an invalid import section: function 'ic0.{name}' has the wrong \
         signature: expected {expected}, found {found}"
    )]
    WrongImportSignature {
        /// The `ic0` function name.
        name: String,
        /// The signature §8 prescribes for this module's pointer width.
        expected: FuncSig,
        /// The signature the module declares.
        found: String,
    },

    /// A forbidden `canister_*` export, a reserved name, a non-function under a
    /// `canister_*` name, or a canister entry point whose type is not `() -> ()`.
    #[error("Wasm module has an invalid export section. {0}")]
    InvalidExport(String),

    /// One method name exported under two kinds (update/query/composite query).
    #[error(
        "Wasm module has an invalid export section. Duplicate method '{0}' exported multiple \
         times with different call types: update, query, or composite_query."
    )]
    DuplicateMethod(String),

    /// More `canister_update|query|composite_query <name>` exports than allowed.
    #[error(
        "Wasm module has an invalid export section. The number of exported functions called \
         `canister_update <name>`, `canister_query <name>`, or `canister_composite_query <name>` \
         is {count}, which exceeds {allowed}."
    )]
    TooManyMethods {
        /// Exported methods.
        count: usize,
        /// The limit.
        allowed: usize,
    },

    /// The `<name>`s of the exported methods are too long in total.
    #[error(
        "Wasm module has an invalid export section. The sum of `<name>` lengths in exported \
         functions called `canister_update <name>`, `canister_query <name>`, or \
         `canister_composite_query <name>` is {total}, which exceeds {allowed}."
    )]
    MethodNamesTooLong {
        /// Sum of name lengths in bytes.
        total: usize,
        /// The limit.
        allowed: usize,
    },

    /// Too many defined functions.
    #[error("Wasm module defined {defined} functions which exceeds the maximum number allowed {allowed}.")]
    TooManyFunctions {
        /// Defined (not imported) functions.
        defined: usize,
        /// The limit.
        allowed: usize,
    },

    /// Too many defined globals.
    #[error("Wasm module defined {defined} globals which exceeds the maximum number allowed {allowed}.")]
    TooManyGlobals {
        /// Defined globals.
        defined: usize,
        /// The limit.
        allowed: usize,
    },

    /// A global whose type the engine cannot persist (a reference type).
    #[error(
        "Wasm module has an invalid global section. Global {index} has the unsupported type \
         {ty}; only i32, i64, f32, f64 and v128 globals are allowed."
    )]
    UnsupportedGlobalType {
        /// Global index.
        index: u32,
        /// The type as written in WAT.
        ty: String,
    },

    /// A function body with too many instructions.
    #[error(
        "Wasm module contains a function at index {index} with {size} instructions which \
         exceeds the maximum allowed {allowed}."
    )]
    FunctionTooLarge {
        /// Index in the function index space (imports included).
        index: u32,
        /// Instructions in the body.
        size: u64,
        /// The limit.
        allowed: u64,
    },

    /// The code section is too large.
    #[error("Wasm module code section size of {size} bytes exceeds the maximum allowed size of {allowed} bytes.")]
    CodeSectionTooLarge {
        /// Section size in bytes.
        size: u64,
        /// The limit.
        allowed: u64,
    },

    /// An active data segment whose offset is not a constant, or that does not fit into the
    /// initial memory (instantiation would trap).
    #[error("Wasm module has an invalid data section. {0}")]
    InvalidDataSegment(String),

    /// A custom section named `icp:…` that breaks the `icp:public|private <name>` rules.
    #[error("Wasm module has an invalid custom section. {0}")]
    InvalidCustomSection(String),

    /// More `icp:` custom sections than allowed.
    #[error("Wasm module defined {defined} custom sections which exceeds the maximum number allowed {allowed}.")]
    TooManyCustomSections {
        /// `icp:` sections.
        defined: usize,
        /// The limit.
        allowed: usize,
    },

    /// The `icp:` custom sections are too large in total.
    #[error(
        "Wasm module has an invalid custom section. The total size of the custom sections \
         ({size} bytes) exceeds the maximum allowed: {allowed} bytes."
    )]
    CustomSectionsTooLarge {
        /// Sum of `<name>` + content sizes.
        size: u64,
        /// The limit.
        allowed: u64,
    },

    /// [`crate::instrument`] could not rewrite the module (it was not produced by
    /// [`crate::validate`], or the rewrite itself failed).
    #[error("failed to instrument the Wasm module: {0}")]
    Instrumentation(String),
}

impl ModuleError {
    /// Converts a wasmparser error, naming the Wasm proposal when the error is a disabled
    /// feature (wasmparser tags those errors with the missing feature flag).
    pub(crate) fn from_wasmparser(err: &wasmparser::BinaryReaderError) -> Self {
        if let Some(missing) = err.missing_wasm_feature()
            && let Some((name, _)) = missing.iter_names().next()
        {
            return ModuleError::UnsupportedFeature {
                feature: name.to_ascii_lowercase().replace('_', "-"),
                message: err.to_string(),
            };
        }
        ModuleError::Invalid(err.to_string())
    }
}

/// Hex of at most the first 8 bytes, for "found …" in messages.
pub(crate) fn hex_prefix(bytes: &[u8]) -> String {
    if bytes.is_empty() {
        return "an empty file".to_string();
    }
    let mut s: String = bytes.iter().take(8).map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(" ");
    if bytes.len() > 8 {
        s.push_str(" …");
    }
    s
}
