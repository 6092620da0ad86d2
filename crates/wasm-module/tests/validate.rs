//! One test (at least) per validation rule, and the `ModuleInfo` contents.

mod common;

use cairn_wasm_module::{MemoryLimits, MethodKind, ModuleError, ModuleLimits, SystemMethod, Visibility, validate};
use common::{check, reject, wat};

// ---------------------------------------------------------------- features

#[test]
fn accepts_the_supported_features() {
    // bulk-memory, reference-types, sign-ext, sat-float-to-int, multi-value, mutable
    // globals and fixed-width SIMD, all in one module.
    let info = check(
        r#"(module
            (memory 1)
            (table 2 funcref)
            (global $g (mut i32) (i32.const 0))
            (global $v (mut v128) (v128.const i64x2 0 0))
            (data $d "abc")
            (func $pair (result i32 i64) (i32.const 1) (i64.const 2))
            (func (export "canister_update f")
                (drop (i32.extend8_s (i32.const 255)))
                (drop (i32.trunc_sat_f32_s (f32.const 1.5)))
                (memory.fill (i32.const 0) (i32.const 0) (i32.const 4))
                (memory.copy (i32.const 0) (i32.const 4) (i32.const 4))
                (memory.init $d (i32.const 0) (i32.const 0) (i32.const 3))
                (data.drop $d)
                (drop (ref.is_null (ref.null extern)))
                (drop (i32x4.extract_lane 0 (i32x4.splat (i32.const 7))))
                (call $pair) (drop) (drop)
                (global.set $g (i32.const 1))))"#,
    )
    .unwrap();
    assert!(!info.memory64);
    assert!(!info.mutates_tables);
}

#[test]
fn accepts_memory64_and_table64() {
    let info = check(
        r#"(module
            (memory i64 2 10)
            (table i64 1 funcref)
            (func $f)
            (elem (table 0) (i64.const 0) func $f)
            (func (export "canister_query q")
                (call_indirect (i64.const 0))
                (memory.fill (i64.const 0) (i32.const 0) (i64.const 1))))"#,
    )
    .unwrap();
    assert!(info.memory64);
    assert_eq!(info.memory, Some(MemoryLimits { initial_pages: 2, maximum_pages: Some(10) }));
}

fn unsupported(src: &str, feature: &str) {
    match check(src) {
        Err(ModuleError::UnsupportedFeature { feature: f, .. }) => {
            assert_eq!(f, feature, "{src}");
        }
        other => panic!("expected unsupported feature {feature}, got {other:?}"),
    }
}

#[test]
fn rejects_threads() {
    unsupported("(module (memory 1 1 shared))", "threads");
    unsupported("(module (memory 1) (func (drop (i32.atomic.load (i32.const 0)))))", "threads");
}

#[test]
fn rejects_relaxed_simd() {
    unsupported("(module (func (drop (i32x4.relaxed_trunc_f32x4_s (v128.const i64x2 0 0)))))", "relaxed-simd");
}

#[test]
fn rejects_tail_calls() {
    unsupported("(module (func $f (return_call $f)))", "tail-call");
}

#[test]
fn rejects_exceptions() {
    unsupported("(module (tag $t) (func (throw $t)))", "exceptions");
}

#[test]
fn rejects_gc_and_function_references() {
    unsupported("(module (type (struct)))", "gc");
    unsupported("(module (type $t (func)) (func (param (ref $t))))", "function-references");
}

#[test]
fn rejects_extended_const() {
    unsupported("(module (global i32 (i32.add (i32.const 1) (i32.const 2))))", "extended-const");
}

#[test]
fn rejects_custom_page_sizes() {
    unsupported("(module (memory 1 (pagesize 1)))", "custom-page-sizes");
}

#[test]
fn rejects_wide_arithmetic() {
    unsupported(
        "(module (func (result i64 i64) (i64.add128 (i64.const 1) (i64.const 2) (i64.const 3) (i64.const 4))))",
        "wide-arithmetic",
    );
}

#[test]
fn rejects_components() {
    let err = validate(&wat("(component)"), &ModuleLimits::default()).unwrap_err();
    assert!(
        matches!(&err, ModuleError::UnsupportedFeature { feature, .. } if feature == "component-model")
            || err.to_string().contains("component"),
        "{err}"
    );
}

#[test]
fn rejects_invalid_wasm() {
    let err = validate(b"\0asm\x01\0\0\0\x01", &ModuleLimits::default()).unwrap_err();
    assert!(matches!(err, ModuleError::Invalid(_)), "{err}");
    reject("(module (func (result i32) (i64.const 0)))", "invalid Wasm module: type mismatch");
}

// ---------------------------------------------------------------- memories

#[test]
fn rejects_two_memories() {
    let err = reject("(module (memory 1) (memory 1))", "at most one is allowed");
    assert_eq!(err, ModuleError::TooManyMemories { count: 2 });
}

#[test]
fn no_memory_means_32_bit_pointers() {
    let info = check(r#"(module (import "ic0" "msg_reply_data_append" (func (param i32 i32))))"#).unwrap();
    assert!(!info.memory64);
    assert_eq!(info.memory, None);
    reject(
        r#"(module (import "ic0" "msg_reply_data_append" (func (param i64 i64))))"#,
        "expected (i32, i32) -> (), found (i64, i64) -> ()",
    );
}

// ---------------------------------------------------------------- imports

#[test]
fn rejects_imports_from_other_modules() {
    reject(
        r#"(module (import "env" "foo" (func)))"#,
        "Module imports function 'foo' from 'env' that is not exported by the runtime.",
    );
    reject(
        r#"(module (import "env" "msg_reply" (func)))"#,
        "Module imports function 'msg_reply' from 'env', expected to be imported from 'ic0' instead.",
    );
}

#[test]
fn rejects_unknown_ic0_functions() {
    reject(
        r#"(module (import "ic0" "mint_cycles128" (func (param i64 i64 i32))))"#,
        "Module imports function 'mint_cycles128' from 'ic0' that is not exported by the runtime.",
    );
}

#[test]
fn rejects_non_function_imports() {
    reject(r#"(module (import "env" "memory" (memory 1)))"#, "Importing memories is not allowed");
    reject(r#"(module (import "env" "table" (table 1 funcref)))"#, "Importing tables is not allowed");
    reject(r#"(module (import "ic0" "g" (global i32)))"#, "Importing globals is not allowed");
}

#[test]
fn checks_signatures_for_the_pointer_width() {
    let ok32 = r#"(module
        (import "ic0" "msg_reply_data_append" (func (param i32 i32)))
        (import "ic0" "call_new" (func (param i32 i32 i32 i32 i32 i32 i32 i32)))
        (import "ic0" "stable64_read" (func (param i64 i64 i64)))
        (import "ic0" "msg_cycles_accept128" (func (param i64 i64 i32)))
        (import "ic0" "msg_arg_data_size" (func (result i32)))
        (memory 1))"#;
    assert_eq!(check(ok32).unwrap().ic0_imports.len(), 5);

    let ok64 = r#"(module
        (import "ic0" "msg_reply_data_append" (func (param i64 i64)))
        (import "ic0" "call_new" (func (param i64 i64 i64 i64 i64 i64 i64 i64)))
        (import "ic0" "stable64_read" (func (param i64 i64 i64)))
        (import "ic0" "msg_cycles_accept128" (func (param i64 i64 i64)))
        (import "ic0" "msg_arg_data_size" (func (result i64)))
        (memory i64 1))"#;
    assert_eq!(check(ok64).unwrap().ic0_imports.len(), 5);

    let err = reject(
        r#"(module (import "ic0" "msg_reply_data_append" (func (param i32 i32))) (memory i64 1))"#,
        "function 'ic0.msg_reply_data_append' has the wrong signature: expected (i64, i64) -> (), found (i32, i32) -> ()",
    );
    assert!(matches!(err, ModuleError::WrongImportSignature { .. }));
    reject(
        r#"(module (import "ic0" "msg_reject_code" (func (result i64))) (memory 1))"#,
        "expected () -> (i32), found () -> (i64)",
    );
    reject(
        r#"(module (import "ic0" "time" (func (result i64 i64))) (memory 1))"#,
        "expected () -> (i64), found () -> (i64, i64)",
    );
}

#[test]
fn deprecated_functions_only_in_32_bit_modules() {
    check(r#"(module (import "ic0" "stable_size" (func (result i32))) (memory 1))"#).unwrap();
    reject(r#"(module (import "ic0" "stable_size" (func (result i32))) (memory i64 1))"#, "only available to 32-bit");
}

// ---------------------------------------------------------------- exports

#[test]
fn collects_methods_and_system_methods() {
    let info = check(
        r#"(module
            (memory (export "memory") 1)
            (global (export "__data_end") i32 (i32.const 0))
            (table (export "table") 0 funcref)
            (func $f)
            (export "canister_init" (func $f))
            (export "canister_pre_upgrade" (func $f))
            (export "canister_post_upgrade" (func $f))
            (export "canister_inspect_message" (func $f))
            (export "canister_heartbeat" (func $f))
            (export "canister_global_timer" (func $f))
            (export "canister_on_low_wasm_memory" (func $f))
            (export "canister_update inc" (func $f))
            (export "canister_update <ic-cdk internal> timer_executor" (func $f))
            (export "canister_query get" (func $f))
            (export "canister_query " (func $f))
            (export "canister_composite_query cq" (func $f))
            (export "get_candid_pointer" (func $f))
            (export "mem" (memory 0)))"#,
    )
    .unwrap();
    assert_eq!(info.system_methods.iter().copied().collect::<Vec<_>>(), SystemMethod::ALL.to_vec());
    assert_eq!(
        info.update_methods.iter().map(String::as_str).collect::<Vec<_>>(),
        ["<ic-cdk internal> timer_executor", "inc"]
    );
    assert_eq!(info.query_methods.iter().map(String::as_str).collect::<Vec<_>>(), ["", "get"]);
    assert_eq!(info.method_kind("cq"), Some(MethodKind::CompositeQuery));
    assert_eq!(info.method_kind("inc"), Some(MethodKind::Update));
    assert_eq!(info.method_kind("nope"), None);
    assert!(info.has_system_method(SystemMethod::GlobalTimer));
}

#[test]
fn rejects_unknown_canister_exports() {
    reject(
        r#"(module (func (export "canister_foo")))"#,
        "Exporting reserved function 'canister_foo' with \"canister_\" prefix",
    );
    reject(r#"(module (func (export "canister_update")))"#, "Exporting reserved function 'canister_update'");
    reject(r#"(module (func (export "canister_querything")))"#, "reserved function");
}

#[test]
fn rejects_reserved_exports() {
    reject(
        r#"(module (memory (export "__cairn_memory") 1))"#,
        "Exporting reserved symbol '__cairn_memory' is not allowed.",
    );
    reject(r#"(module (func (export "canister counter_instructions")))"#, "reserved symbol");
}

#[test]
fn entry_points_must_be_unit_functions() {
    reject(
        r#"(module (func (export "canister_update f") (param i32)))"#,
        "Function 'canister_update f' must have type () -> (), found (i32) -> ()",
    );
    reject(r#"(module (func (export "canister_init") (result i64) (i64.const 0)))"#, "must have type () -> ()");
    reject(
        r#"(module (global (export "canister_init") i32 (i32.const 0)))"#,
        "Export 'canister_init' must be a function, but it exports a global.",
    );
    reject(r#"(module (memory (export "canister_query m") 1))"#, "must be a function, but it exports a memory");
}

#[test]
fn rejects_duplicate_methods() {
    let err = reject(
        r#"(module (func $f)
            (export "canister_update foo" (func $f))
            (export "canister_query foo" (func $f)))"#,
        "Duplicate method 'foo'",
    );
    assert_eq!(err, ModuleError::DuplicateMethod("foo".into()));
    reject(
        r#"(module (func $f)
            (export "canister_composite_query foo" (func $f))
            (export "canister_query foo" (func $f)))"#,
        "Duplicate method 'foo'",
    );
}

// ---------------------------------------------------------------- limits

fn exports(n: usize, name_len: usize) -> String {
    let mut s = String::from("(module (func $f)");
    for i in 0..n {
        s.push_str(&format!("(export \"canister_update {i:0width$}\" (func $f))", width = name_len));
    }
    s.push(')');
    s
}

#[test]
fn method_count_limit() {
    assert_eq!(check(&exports(1000, 4)).unwrap().update_methods.len(), 1000);
    let err = check(&exports(1001, 4)).unwrap_err();
    assert_eq!(err, ModuleError::TooManyMethods { count: 1001, allowed: 1000 });
}

#[test]
fn method_name_bytes_limit() {
    check(&exports(100, 200)).unwrap(); // exactly 20,000 bytes
    let err = check(&exports(101, 200)).unwrap_err();
    assert_eq!(err, ModuleError::MethodNamesTooLong { total: 20_200, allowed: 20_000 });
}

#[test]
fn function_count_limit() {
    let limits = ModuleLimits { max_functions: 3, ..ModuleLimits::default() };
    let ok = wat("(module (func) (func) (func))");
    validate(&ok, &limits).unwrap();
    let too_many = wat("(module (func) (func) (func) (func))");
    assert_eq!(validate(&too_many, &limits).unwrap_err(), ModuleError::TooManyFunctions { defined: 4, allowed: 3 });
    // The default is the IC's 50,000.
    let mut src = String::from("(module");
    src.push_str(&"(func)".repeat(50_001));
    src.push(')');
    reject(&src, "defined 50001 functions which exceeds the maximum number allowed 50000");
}

#[test]
fn global_count_limit() {
    let mut src = String::from("(module");
    src.push_str(&"(global i32 (i32.const 0))".repeat(1_001));
    src.push(')');
    let err = check(&src).unwrap_err();
    assert_eq!(err, ModuleError::TooManyGlobals { defined: 1001, allowed: 1000 });
}

#[test]
fn rejects_reference_globals() {
    reject("(module (global funcref (ref.null func)))", "Global 0 has the unsupported type funcref");
    reject("(module (global (mut externref) (ref.null extern)))", "unsupported type externref");
}

#[test]
fn function_size_limit() {
    let body = "(nop)".repeat(99);
    let src = format!("(module (func {body}))"); // 99 nops + end = 100 instructions
    let limits = ModuleLimits { max_function_instructions: 100, ..ModuleLimits::default() };
    validate(&wat(&src), &limits).unwrap();
    let src = format!("(module (func) (func {body} nop))");
    assert_eq!(
        validate(&wat(&src), &limits).unwrap_err(),
        ModuleError::FunctionTooLarge { index: 1, size: 101, allowed: 100 }
    );
    let info = validate(&wat(&src), &ModuleLimits::default()).unwrap();
    assert_eq!(info.largest_function_instructions, 101);
}

#[test]
fn code_section_size_limit() {
    let src = format!("(module (func {}))", "(nop)".repeat(1000));
    let limits = ModuleLimits { max_code_section_size: 500, ..ModuleLimits::default() };
    let err = validate(&wat(&src), &limits).unwrap_err();
    assert!(matches!(err, ModuleError::CodeSectionTooLarge { allowed: 500, .. }), "{err}");
}

#[test]
fn module_size_limit() {
    let limits = ModuleLimits { max_module_size: 10, ..ModuleLimits::default() };
    let err = validate(&wat("(module (func))"), &limits).unwrap_err();
    assert_eq!(err, ModuleError::ModuleTooLarge { limit: 10 });
}

// ---------------------------------------------------------------- custom sections

fn with_sections(sections: &[(&str, &[u8])]) -> Vec<u8> {
    let mut wasm = wat("(module)");
    for (name, data) in sections {
        let mut payload = Vec::new();
        leb(&mut payload, name.len() as u64);
        payload.extend_from_slice(name.as_bytes());
        payload.extend_from_slice(data);
        wasm.push(0);
        leb(&mut wasm, payload.len() as u64);
        wasm.extend_from_slice(&payload);
    }
    wasm
}

fn leb(out: &mut Vec<u8>, mut v: u64) {
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

#[test]
fn collects_icp_custom_sections() {
    let wasm = with_sections(&[
        ("icp:public candid:service", b"service : {}"),
        ("icp:private motoko:stable-types", b"actor {}"),
        ("name", b""),
        ("producers", b"\0"),
    ]);
    let info = validate(&wasm, &ModuleLimits::default()).unwrap();
    assert_eq!(info.custom_sections.len(), 2);
    let candid = &info.custom_sections["candid:service"];
    assert_eq!(candid.visibility, Visibility::Public);
    assert_eq!(candid.content, b"service : {}");
    assert_eq!(info.custom_sections["motoko:stable-types"].visibility, Visibility::Private);
}

#[test]
fn rejects_bad_icp_sections() {
    let limits = ModuleLimits::default();
    let err = validate(&with_sections(&[("icp:protected x", b"")]), &limits).unwrap_err();
    assert!(err.to_string().contains("Custom section 'icp:protected x' has no public/private scope defined."), "{err}");
    let err = validate(&with_sections(&[("icp:public", b"")]), &limits).unwrap_err();
    assert!(err.to_string().contains("must have a space"), "{err}");
    let err = validate(&with_sections(&[("icp:public a", b""), ("icp:private a", b"")]), &limits).unwrap_err();
    assert!(err.to_string().contains("Custom section name 'a' is defined more than once."), "{err}");
    let err = validate(&with_sections(&[("icp:public a", b"1"), ("icp:public a", b"2")]), &limits).unwrap_err();
    assert!(matches!(err, ModuleError::InvalidCustomSection(_)), "{err}");
}

#[test]
fn custom_section_count_and_size_limits() {
    let limits = ModuleLimits::default();
    let names: Vec<String> = (0..17).map(|i| format!("icp:public s{i}")).collect();
    let sixteen: Vec<(&str, &[u8])> = names[..16].iter().map(|n| (n.as_str(), &b""[..])).collect();
    validate(&with_sections(&sixteen), &limits).unwrap();
    let seventeen: Vec<(&str, &[u8])> = names.iter().map(|n| (n.as_str(), &b""[..])).collect();
    assert_eq!(
        validate(&with_sections(&seventeen), &limits).unwrap_err(),
        ModuleError::TooManyCustomSections { defined: 17, allowed: 16 }
    );

    // Size counts payload + <name>: 1 MiB exactly is fine, one byte more is not.
    let big = vec![0u8; 1024 * 1024 - 1];
    validate(&with_sections(&[("icp:public x", &big)]), &limits).unwrap();
    let bigger = vec![0u8; 1024 * 1024];
    assert_eq!(
        validate(&with_sections(&[("icp:public x", &bigger)]), &limits).unwrap_err(),
        ModuleError::CustomSectionsTooLarge { size: 1024 * 1024 + 1, allowed: 1024 * 1024 }
    );
    // Other custom sections are not counted.
    let debug = vec![0u8; 2 * 1024 * 1024];
    validate(&with_sections(&[(".debug_info", &debug)]), &limits).unwrap();
}

// ---------------------------------------------------------------- data segments

#[test]
fn data_segments_must_fit_the_initial_memory() {
    check(r#"(module (memory 1) (data (i32.const 65532) "abcd"))"#).unwrap();
    reject(
        r#"(module (memory 1) (data (i32.const 65533) "abcd"))"#,
        "Data segment 0 (offset 65533, 4 bytes) does not fit into the initial memory of 65536 bytes.",
    );
    // Offsets are unsigned: -1 is 4 GiB - 1.
    reject(r#"(module (memory 1) (data (i32.const -1) "a"))"#, "offset 4294967295");
    check(r#"(module (memory i64 1) (data (i64.const 100) "abcd"))"#).unwrap();
}

#[test]
fn data_segment_offsets_must_be_constants() {
    // Without extended-const and without global imports, a `global.get` offset can only
    // refer to a defined global; whatever wasmparser thinks of it, it is rejected.
    let err = check(r#"(module (memory 1) (global $g i32 (i32.const 0)) (data (global.get $g) "a"))"#).unwrap_err();
    assert!(
        matches!(
            err,
            ModuleError::InvalidDataSegment(_) | ModuleError::Invalid(_) | ModuleError::UnsupportedFeature { .. }
        ),
        "{err}"
    );
}

// ---------------------------------------------------------------- info

#[test]
fn reports_start_counts_and_table_mutation() {
    let info = check(
        r#"(module
            (import "ic0" "trap" (func (param i32 i32)))
            (global (mut i64) (i64.const 0))
            (global i32 (i32.const 0))
            (func $s)
            (start $s))"#,
    )
    .unwrap();
    assert!(info.has_start);
    assert_eq!(info.num_functions, 1);
    assert_eq!(info.num_imported_functions, 1);
    assert_eq!(info.num_globals, 2);
    assert_eq!(info.ic0_imports, ["trap"]);
    assert!(!info.mutates_tables);

    for op in [
        "(table.set (i32.const 0) (ref.null func))",
        "(drop (table.grow (ref.null func) (i32.const 1)))",
        "(table.fill (i32.const 0) (ref.null func) (i32.const 1))",
        "(table.copy (i32.const 0) (i32.const 0) (i32.const 0))",
        "(table.init $e (i32.const 0) (i32.const 0) (i32.const 0))",
        "(elem.drop $e)",
    ] {
        let src = format!("(module (table 1 funcref) (func $f) (elem $e func $f) (func {op}))");
        assert!(check(&src).unwrap().mutates_tables, "{op}");
    }
    let src = "(module (table 1 funcref) (func $f) (elem (i32.const 0) $f)
        (func (drop (table.get (i32.const 0))) (drop (table.size)) (call_indirect (i32.const 0))))";
    assert!(!check(src).unwrap().mutates_tables);
}

#[test]
fn validate_wants_decoded_wasm() {
    let err = validate(&[0x1f, 0x8b, 0x08, 0, 0], &ModuleLimits::default()).unwrap_err();
    assert!(matches!(err, ModuleError::BadMagic { .. }), "{err}");
}
