//! The `ic0` table against the interface spec, transcribed independently of the table.

use std::collections::{BTreeMap, BTreeSet};

use cairn_wasm_module::ic0::{IC0_FUNCTIONS, ic0_functions_for, ic0_names, ic0_signature};
use cairn_wasm_module::{FuncSig, ValType};

/// Digest §8 in the spec's own notation (`I` = pointer type). Deprecated functions are
/// marked `[32]`.
const SPEC: &str = "
msg_arg_data_size : () -> I
msg_arg_data_copy : (I, I, I) -> ()
msg_caller_size : () -> I
msg_caller_copy : (I, I, I) -> ()
msg_caller_info_data_size : () -> I
msg_caller_info_data_copy : (I, I, I) -> ()
msg_caller_info_signer_size : () -> I
msg_caller_info_signer_copy : (I, I, I) -> ()
msg_reject_code : () -> i32
msg_reject_msg_size : () -> I
msg_reject_msg_copy : (I, I, I) -> ()
msg_deadline : () -> i64
msg_reply_data_append : (I, I) -> ()
msg_reply : () -> ()
msg_reject : (I, I) -> ()
msg_cycles_available128 : (I) -> ()
msg_cycles_refunded128 : (I) -> ()
msg_cycles_accept128 : (i64, i64, I) -> ()
cycles_burn128 : (i64, i64, I) -> ()
canister_self_size : () -> I
canister_self_copy : (I, I, I) -> ()
canister_cycle_balance128 : (I) -> ()
canister_liquid_cycle_balance128 : (I) -> ()
canister_status : () -> i32
canister_version : () -> i64
subnet_self_size : () -> I
subnet_self_copy : (I, I, I) -> ()
msg_method_name_size : () -> I
msg_method_name_copy : (I, I, I) -> ()
accept_message : () -> ()
call_new : (I, I, I, I, I, I, I, I) -> ()
call_on_cleanup : (I, I) -> ()
call_data_append : (I, I) -> ()
call_with_best_effort_response : (i32) -> ()
call_cycles_add128 : (i64, i64) -> ()
call_perform : () -> i32
stable64_size : () -> i64
stable64_grow : (i64) -> i64
stable64_write : (i64, i64, i64) -> ()
stable64_read : (i64, i64, i64) -> ()
root_key_size : () -> I
root_key_copy : (I, I, I) -> ()
certified_data_set : (I, I) -> ()
data_certificate_present : () -> i32
data_certificate_size : () -> I
data_certificate_copy : (I, I, I) -> ()
time : () -> i64
global_timer_set : (i64) -> i64
performance_counter : (i32) -> i64
is_controller : (I, I) -> i32
in_replicated_execution : () -> i32
cost_call : (i64, i64, I) -> ()
cost_create_canister : (I) -> ()
cost_http_request : (i64, i64, I) -> ()
cost_sign_with_ecdsa : (I, I, i32, I) -> i32
cost_sign_with_schnorr : (I, I, i32, I) -> i32
cost_vetkd_derive_key : (I, I, i32, I) -> i32
env_var_count : () -> I
env_var_name_size : (I) -> I
env_var_name_copy : (I, I, I, I) -> ()
env_var_name_exists : (I, I) -> i32
env_var_value_size : (I, I) -> I
env_var_value_copy : (I, I, I, I, I) -> ()
debug_print : (I, I) -> ()
trap : (I, I) -> ()
[32] msg_cycles_available : () -> i64
[32] msg_cycles_refunded : () -> i64
[32] msg_cycles_accept : (i64) -> i64
[32] canister_cycle_balance : () -> i64
[32] call_cycles_add : (i64) -> ()
[32] stable_size : () -> i32
[32] stable_grow : (i32) -> i32
[32] stable_write : (i32, i32, i32) -> ()
[32] stable_read : (i32, i32, i32) -> ()
";

fn parse_list(s: &str, memory64: bool) -> Vec<ValType> {
    let s = s.trim().trim_start_matches('(').trim_end_matches(')');
    s.split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(|t| match t {
            "I" if memory64 => ValType::I64,
            "I" | "i32" => ValType::I32,
            "i64" => ValType::I64,
            other => panic!("unknown type {other}"),
        })
        .collect()
}

/// name → signature for one width, from `SPEC`.
fn spec(memory64: bool) -> BTreeMap<String, FuncSig> {
    let mut out = BTreeMap::new();
    for line in SPEC.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let (wasm32_only, line) = match line.strip_prefix("[32] ") {
            Some(rest) => (true, rest),
            None => (false, line),
        };
        if wasm32_only && memory64 {
            continue;
        }
        let (name, sig) = line.split_once(" : ").unwrap();
        let (params, results) = sig.split_once(" -> ").unwrap();
        out.insert(
            name.to_string(),
            FuncSig { params: parse_list(params, memory64), results: parse_list(results, memory64) },
        );
    }
    out
}

#[test]
fn table_matches_the_spec_for_both_widths() {
    for memory64 in [false, true] {
        let expected = spec(memory64);
        let actual: BTreeMap<String, FuncSig> = ic0_functions_for(memory64).map(|(n, s)| (n.to_string(), s)).collect();
        assert_eq!(actual, expected, "memory64 = {memory64}");
        for (name, sig) in &expected {
            assert_eq!(ic0_signature(name, memory64).as_ref(), Some(sig), "{name}");
        }
    }
    assert_eq!(spec(false).len(), 74);
    assert_eq!(spec(true).len(), 65);
    assert_eq!(ic0_names().count(), 74);
    assert_eq!(ic0_names().collect::<BTreeSet<_>>().len(), 74, "no duplicates");
    assert_eq!(IC0_FUNCTIONS.iter().filter(|f| f.wasm32_only).count(), 9);
    assert_eq!(ic0_signature("stable_read", true), None);
    assert_eq!(ic0_signature("nonexistent", false), None);
}

#[test]
fn signature_display() {
    assert_eq!(ic0_signature("msg_reply_data_append", true).unwrap().to_string(), "(i64, i64) -> ()");
    assert_eq!(ic0_signature("time", false).unwrap().to_string(), "() -> (i64)");
}

/// Every function named in the digest's §8 table is in ours (when the digest is present
/// on this machine; it lives outside the repository).
#[test]
fn table_covers_the_digest() {
    let path = "/work/shared/spec/ic-interface-digest.md";
    let Ok(text) = std::fs::read_to_string(path) else {
        eprintln!("{path} not found; skipping");
        return;
    };
    let section = text.split("## 8. System API").nth(1).and_then(|s| s.split("\n## ").next()).expect("§8 present");
    let mut names = BTreeSet::new();
    for row in section.lines().filter(|l| l.starts_with("| ")) {
        let first = row.trim_start_matches("| ").split(" |").next().unwrap();
        if first.starts_with("**deprecated") {
            // "…: msg_cycles_available ()→i64, stable_write (off, src, size: i32), …"
            let list = first.split("**:").nth(1).unwrap();
            let words: Vec<&str> = list.split_whitespace().collect();
            for pair in words.windows(2) {
                if pair[1].starts_with('(')
                    && pair[0].chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
                {
                    names.insert(pair[0].to_string());
                }
            }
            continue;
        }
        if first == "Function" || first.starts_with("---") {
            continue;
        }
        // "msg_arg_data_size / _copy", "msg_reply_data_append · msg_reply · msg_reject",
        // "msg_caller_info_data_size / _copy, msg_caller_info_signer_size / _copy".
        let mut previous = String::new();
        for token in first.split([',', '·', '/']).map(|t| t.trim().trim_matches('`')).filter(|t| !t.is_empty()) {
            let name = if let Some(suffix) = token.strip_prefix('_') {
                let base = previous.rsplit_once('_').unwrap().0;
                format!("{base}_{suffix}")
            } else {
                token.to_string()
            };
            previous = name.clone();
            names.insert(name);
        }
    }
    let ours: BTreeSet<String> = ic0_names().map(String::from).collect();
    let missing: Vec<_> = names.difference(&ours).collect();
    assert!(missing.is_empty(), "in the digest but not in the table: {missing:?}");
    let extra: Vec<_> = ours.difference(&names).collect();
    assert!(extra.is_empty(), "in the table but not in the digest: {extra:?}");
}
