//! The `ic0` System API as data: every function name and its signature for both pointer
//! widths.
//!
//! Validation uses this table to accept or reject a module's imports, and the engine uses
//! the very same table to register its host functions, so the two can never disagree.
//!
//! Source: the interface digest §8 (spec v0.66.0), cross-checked against `ic0/ic0.txt`
//! and `ic0/src/sys.rs` of dfinity/cdk-rs (ic0 1.1.0: 65 functions) and the deprecated
//! 32-bit-only functions the IC replica still accepts
//! (`rs/embedders/src/wasm_utils/validation.rs`). `I` is the module's pointer type:
//! `i64` when its memory is memory64, `i32` otherwise (also without a memory).
//!
//! Deliberately absent: `mint_cycles`/`mint_cycles128` (only for the cycles minting
//! canister, not in §8), and the functions newer than ic0 1.1.0
//! (`subnet_self_node_count`, `cost_http_request_v2`), which §8 does not list.

use std::fmt;

/// A Wasm value type as far as this crate needs to talk about it (signatures of `ic0`
/// functions and types of persisted globals). Kept independent of wasmparser/wasmtime so
/// the engine can match on it without version coupling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ValType {
    /// 32-bit integer.
    I32,
    /// 64-bit integer.
    I64,
    /// 32-bit float.
    F32,
    /// 64-bit float.
    F64,
    /// 128-bit SIMD vector.
    V128,
}

impl fmt::Display for ValType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ValType::I32 => "i32",
            ValType::I64 => "i64",
            ValType::F32 => "f32",
            ValType::F64 => "f64",
            ValType::V128 => "v128",
        })
    }
}

/// A concrete function signature, e.g. `(i64, i64) -> ()`.
///
/// Returned by [`ic0_signature`] for one pointer width; `Display` gives the form used in
/// error messages.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FuncSig {
    /// Parameter types in order.
    pub params: Vec<ValType>,
    /// Result types in order (at most one for `ic0`).
    pub results: Vec<ValType>,
}

impl fmt::Display for FuncSig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn list(f: &mut fmt::Formatter<'_>, tys: &[ValType]) -> fmt::Result {
            f.write_str("(")?;
            for (i, t) in tys.iter().enumerate() {
                if i > 0 {
                    f.write_str(", ")?;
                }
                write!(f, "{t}")?;
            }
            f.write_str(")")
        }
        list(f, &self.params)?;
        f.write_str(" -> ")?;
        list(f, &self.results)
    }
}

/// A parameter or result type in the table, before the pointer width is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Ty {
    /// `I`: the module's pointer type (address or size in linear memory).
    Ptr,
    /// Always `i32`.
    I32,
    /// Always `i64`.
    I64,
}

impl Ty {
    fn concrete(self, memory64: bool) -> ValType {
        match self {
            Ty::Ptr if memory64 => ValType::I64,
            Ty::Ptr | Ty::I32 => ValType::I32,
            Ty::I64 => ValType::I64,
        }
    }
}

/// One entry of the System API table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ic0Function {
    /// Name within the `ic0` import module.
    pub name: &'static str,
    /// Parameters, with `Ty::Ptr` for `I`.
    pub params: &'static [Ty],
    /// Results, with `Ty::Ptr` for `I`.
    pub results: &'static [Ty],
    /// Deprecated 32-bit-only function (the `stable_*` and 64-bit-cycles family): available
    /// to i32 modules only.
    pub wasm32_only: bool,
}

impl Ic0Function {
    /// The signature for a module of the given pointer width, or `None` if the function
    /// does not exist for that width (a deprecated function in a memory64 module).
    pub fn signature(&self, memory64: bool) -> Option<FuncSig> {
        if self.wasm32_only && memory64 {
            return None;
        }
        Some(FuncSig {
            params: self.params.iter().map(|t| t.concrete(memory64)).collect(),
            results: self.results.iter().map(|t| t.concrete(memory64)).collect(),
        })
    }
}

use Ty::{I32, I64, Ptr as P};

const fn f(name: &'static str, params: &'static [Ty], results: &'static [Ty]) -> Ic0Function {
    Ic0Function { name, params, results, wasm32_only: false }
}

const fn deprecated(name: &'static str, params: &'static [Ty], results: &'static [Ty]) -> Ic0Function {
    Ic0Function { name, params, results, wasm32_only: true }
}

/// Every `ic0` function, in the order of the interface spec (digest §8): the 65 current
/// functions followed by the 9 deprecated 32-bit-only ones.
pub const IC0_FUNCTIONS: &[Ic0Function] = &[
    f("msg_arg_data_size", &[], &[P]),
    f("msg_arg_data_copy", &[P, P, P], &[]),
    f("msg_caller_size", &[], &[P]),
    f("msg_caller_copy", &[P, P, P], &[]),
    f("msg_caller_info_data_size", &[], &[P]),
    f("msg_caller_info_data_copy", &[P, P, P], &[]),
    f("msg_caller_info_signer_size", &[], &[P]),
    f("msg_caller_info_signer_copy", &[P, P, P], &[]),
    f("msg_reject_code", &[], &[I32]),
    f("msg_reject_msg_size", &[], &[P]),
    f("msg_reject_msg_copy", &[P, P, P], &[]),
    f("msg_deadline", &[], &[I64]),
    f("msg_reply_data_append", &[P, P], &[]),
    f("msg_reply", &[], &[]),
    f("msg_reject", &[P, P], &[]),
    f("msg_cycles_available128", &[P], &[]),
    f("msg_cycles_refunded128", &[P], &[]),
    f("msg_cycles_accept128", &[I64, I64, P], &[]),
    f("cycles_burn128", &[I64, I64, P], &[]),
    f("canister_self_size", &[], &[P]),
    f("canister_self_copy", &[P, P, P], &[]),
    f("canister_cycle_balance128", &[P], &[]),
    f("canister_liquid_cycle_balance128", &[P], &[]),
    f("canister_status", &[], &[I32]),
    f("canister_version", &[], &[I64]),
    f("subnet_self_size", &[], &[P]),
    f("subnet_self_copy", &[P, P, P], &[]),
    f("msg_method_name_size", &[], &[P]),
    f("msg_method_name_copy", &[P, P, P], &[]),
    f("accept_message", &[], &[]),
    f("call_new", &[P, P, P, P, P, P, P, P], &[]),
    f("call_on_cleanup", &[P, P], &[]),
    f("call_data_append", &[P, P], &[]),
    f("call_with_best_effort_response", &[I32], &[]),
    f("call_cycles_add128", &[I64, I64], &[]),
    f("call_perform", &[], &[I32]),
    f("stable64_size", &[], &[I64]),
    f("stable64_grow", &[I64], &[I64]),
    f("stable64_write", &[I64, I64, I64], &[]),
    f("stable64_read", &[I64, I64, I64], &[]),
    f("root_key_size", &[], &[P]),
    f("root_key_copy", &[P, P, P], &[]),
    f("certified_data_set", &[P, P], &[]),
    f("data_certificate_present", &[], &[I32]),
    f("data_certificate_size", &[], &[P]),
    f("data_certificate_copy", &[P, P, P], &[]),
    f("time", &[], &[I64]),
    f("global_timer_set", &[I64], &[I64]),
    f("performance_counter", &[I32], &[I64]),
    f("is_controller", &[P, P], &[I32]),
    f("in_replicated_execution", &[], &[I32]),
    f("cost_call", &[I64, I64, P], &[]),
    f("cost_create_canister", &[P], &[]),
    f("cost_http_request", &[I64, I64, P], &[]),
    f("cost_sign_with_ecdsa", &[P, P, I32, P], &[I32]),
    f("cost_sign_with_schnorr", &[P, P, I32, P], &[I32]),
    f("cost_vetkd_derive_key", &[P, P, I32, P], &[I32]),
    f("env_var_count", &[], &[P]),
    f("env_var_name_size", &[P], &[P]),
    f("env_var_name_copy", &[P, P, P, P], &[]),
    f("env_var_name_exists", &[P, P], &[I32]),
    f("env_var_value_size", &[P, P], &[P]),
    f("env_var_value_copy", &[P, P, P, P, P], &[]),
    f("debug_print", &[P, P], &[]),
    f("trap", &[P, P], &[]),
    // Deprecated, i32 modules only.
    deprecated("msg_cycles_available", &[], &[I64]),
    deprecated("msg_cycles_refunded", &[], &[I64]),
    deprecated("msg_cycles_accept", &[I64], &[I64]),
    deprecated("canister_cycle_balance", &[], &[I64]),
    deprecated("call_cycles_add", &[I64], &[]),
    deprecated("stable_size", &[], &[I32]),
    deprecated("stable_grow", &[I32], &[I32]),
    deprecated("stable_write", &[I32, I32, I32], &[]),
    deprecated("stable_read", &[I32, I32, I32], &[]),
];

/// The name of the import module all System API functions come from.
pub const IC0_MODULE: &str = "ic0";

/// Looks up a function by name (regardless of pointer width).
pub fn ic0_function(name: &str) -> Option<&'static Ic0Function> {
    IC0_FUNCTIONS.iter().find(|f| f.name == name)
}

/// The signature of `ic0.<name>` for a module whose memory is (`memory64 = true`) or is
/// not 64-bit; `None` if no such function exists for that width.
pub fn ic0_signature(name: &str, memory64: bool) -> Option<FuncSig> {
    ic0_function(name)?.signature(memory64)
}

/// All function names, including the deprecated ones.
pub fn ic0_names() -> impl Iterator<Item = &'static str> {
    IC0_FUNCTIONS.iter().map(|f| f.name)
}

/// Every function available to a module of the given width with its concrete signature:
/// what the engine registers in its linker for such a module.
pub fn ic0_functions_for(memory64: bool) -> impl Iterator<Item = (&'static str, FuncSig)> {
    IC0_FUNCTIONS.iter().filter_map(move |f| Some((f.name, f.signature(memory64)?)))
}
