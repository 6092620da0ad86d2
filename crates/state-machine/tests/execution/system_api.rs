//! The System API surface: every import links, in both pointer widths, and
//! calling a function outside its contexts traps with a clear message.

use super::*;
use cairn_execution::management::types::InstallModeArg;
use cairn_state_machine::StateMachine;
use cairn_wasm_module::ic0::ic0_functions_for;

fn wat_type(t: &cairn_wasm_module::ValType) -> &'static str {
    match t {
        cairn_wasm_module::ValType::I32 => "i32",
        cairn_wasm_module::ValType::I64 => "i64",
        other => panic!("unexpected {other:?}"),
    }
}

/// A module that imports every `ic0` function for its width.
fn import_everything(memory64: bool) -> Vec<u8> {
    let mut wat = String::from("(module\n");
    for (i, (name, sig)) in ic0_functions_for(memory64).enumerate() {
        let params: Vec<&str> = sig.params.iter().map(wat_type).collect();
        let results: Vec<&str> = sig.results.iter().map(wat_type).collect();
        wat += &format!(
            "  (import \"ic0\" \"{name}\" (func $f{i} (param {}) (result {})))\n",
            params.join(" "),
            results.join(" ")
        );
    }
    wat += if memory64 { "  (memory i64 1)\n" } else { "  (memory 1)\n" };
    wat += "  (func (export \"canister_update ok\")))";
    wat::parse_str(&wat).unwrap()
}

#[test]
fn every_ic0_function_links_in_both_widths() {
    let mut sm = StateMachine::new();
    for memory64 in [false, true] {
        let id = sm.create_canister(user(), CYCLES, None).unwrap();
        sm.install_code(user(), id, &import_everything(memory64), vec![], InstallModeArg::Install)
            .unwrap_or_else(|e| panic!("memory64={memory64}: {e}"));
        let err = sm.update(user(), id, "ok", vec![]).unwrap_err();
        assert_eq!(err.code(), Some(ErrorCode::CanisterDidNotReply));
    }
}

/// A module whose method `canister_<kind> m` (or system export) calls one
/// function, then replies if it can.
fn calls_in(export: &str, import: &str, sig: &str, call: &str) -> Vec<u8> {
    let wat = format!(
        r#"(module
  (import "ic0" "{import}" (func $f {sig}))
  (import "ic0" "msg_reply" (func $reply))
  (memory 1)
  (func (export "{export}") {call}))"#
    );
    wat::parse_str(&wat).unwrap()
}

#[test]
fn functions_outside_their_contexts_trap_with_the_context_name() {
    let mut sm = StateMachine::new();
    let cases = [
        ("canister_init", "msg_reply", "", "(call $f)", "\"ic0_msg_reply\" cannot be executed in init mode"),
        (
            "canister_update m",
            "msg_method_name_size",
            "(result i32)",
            "(drop (call $f))",
            "\"ic0_msg_method_name_size\" cannot be executed in update mode",
        ),
        (
            "canister_query m",
            "call_perform",
            "(result i32)",
            "(drop (call $f))",
            "\"ic0_call_perform\" cannot be executed in non replicated query mode",
        ),
        (
            "canister_query m",
            "certified_data_set",
            "(param i32 i32)",
            "(call $f (i32.const 0) (i32.const 1))",
            "\"ic0_certified_data_set\" cannot be executed in non replicated query mode",
        ),
        (
            "canister_update m",
            "data_certificate_size",
            "(result i32)",
            "(drop (call $f))",
            "\"ic0_data_certificate_size\" cannot be executed in update mode",
        ),
        (
            "canister_update m",
            "msg_reject_code",
            "(result i32)",
            "(drop (call $f))",
            "\"ic0_msg_reject_code\" cannot be executed in update mode",
        ),
    ];
    for (export, import, sig, call, expected) in cases {
        let wasm = calls_in(export, import, sig, call);
        let id = sm.create_canister(user(), CYCLES, None).unwrap();
        let result = sm.install_code(user(), id, &wasm, vec![], InstallModeArg::Install);
        let err = if export == "canister_init" {
            result.unwrap_err()
        } else {
            result.unwrap();
            if export.starts_with("canister_query") {
                sm.query(user(), id, "m", vec![]).unwrap_err()
            } else {
                sm.update(user(), id, "m", vec![]).unwrap_err()
            }
        };
        assert_eq!(err.code(), Some(ErrorCode::CanisterContractViolation), "{import}: {err}");
        assert!(err.to_string().contains(expected), "{import}: {err}");
    }
}

#[test]
fn start_function_runs_once_before_init() {
    let wasm = wat::parse_str(
        r#"(module
  (import "ic0" "msg_reply_data_append" (func $append (param i32 i32)))
  (import "ic0" "msg_reply" (func $reply))
  (import "ic0" "msg_caller_size" (func $caller (result i32)))
  (memory 1)
  (global $starts (mut i32) (i32.const 0))
  (func $start (global.set $starts (i32.add (global.get $starts) (i32.const 1))) (i32.store8 (i32.const 0) (i32.const 42)))
  (start $start)
  (func (export "canister_init") (i32.store8 (i32.const 1) (i32.load8_u (i32.const 0))))
  (func (export "canister_update read")
    (i32.store8 (i32.const 2) (global.get $starts))
    (call $append (i32.const 0) (i32.const 3)) (call $reply)))"#,
    )
    .unwrap();
    let mut sm = StateMachine::new();
    let id = sm.create_canister(user(), CYCLES, None).unwrap();
    sm.install_code(user(), id, &wasm, vec![], InstallModeArg::Install).unwrap();
    for _ in 0..2 {
        assert_eq!(sm.update(user(), id, "read", vec![]).unwrap(), vec![42, 42, 1]);
    }
    // The start function may not use message APIs.
    let bad = wat::parse_str(
        r#"(module (import "ic0" "msg_caller_size" (func $c (result i32))) (func $s (drop (call $c))) (start $s))"#,
    )
    .unwrap();
    let id = sm.create_canister(user(), CYCLES, None).unwrap();
    let err = sm.install_code(user(), id, &bad, vec![], InstallModeArg::Install).unwrap_err();
    assert!(err.to_string().contains("\"ic0_msg_caller_size\" cannot be executed in start mode"), "{err}");
}

#[test]
fn cleanup_runs_when_a_callback_traps() {
    // Calls the management canister's raw_rand; the reply callback traps; the
    // cleanup callback records that it ran in a global that survives.
    let wasm = wat::parse_str(
        r#"(module
  (import "ic0" "call_new" (func $new (param i32 i32 i32 i32 i32 i32 i32 i32)))
  (import "ic0" "call_on_cleanup" (func $cleanup (param i32 i32)))
  (import "ic0" "call_perform" (func $perform (result i32)))
  (import "ic0" "msg_reply_data_append" (func $append (param i32 i32)))
  (import "ic0" "msg_reply" (func $reply))
  (import "ic0" "trap" (func $trap (param i32 i32)))
  (memory 1)
  (data (i32.const 100) "raw_rand")
  (data (i32.const 200) "callback trapped")
  (table 3 funcref)
  (elem (i32.const 0) $on_reply $on_reject $on_cleanup)
  (func $on_reply (param i32) (call $trap (i32.const 200) (i32.const 16)))
  (func $on_reject (param i32) (call $trap (i32.const 200) (i32.const 16)))
  (func $on_cleanup (param i32) (i32.store8 (i32.const 0) (i32.const 1)))
  (func (export "canister_update go")
    (call $new (i32.const 0) (i32.const 0) (i32.const 100) (i32.const 8) (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 0))
    (call $cleanup (i32.const 2) (i32.const 0))
    (drop (call $perform)))
  (func (export "canister_query flag") (call $append (i32.const 0) (i32.const 1)) (call $reply)))"#,
    )
    .unwrap();
    let mut sm = StateMachine::new();
    let id = sm.create_canister(user(), CYCLES, None).unwrap();
    sm.install_code(user(), id, &wasm, vec![], InstallModeArg::Install).unwrap();
    let err = sm.update(user(), id, "go", vec![]).unwrap_err();
    assert!(err.to_string().contains("callback trapped"), "{err}");
    assert_eq!(sm.query(user(), id, "flag", vec![]).unwrap(), vec![1]);
}
