//! Structural tests of the instrumentation: what the rewritten module contains.

mod common;

use std::collections::BTreeMap;

use cairn_wasm_module::{
    ExportedGlobal, InstrumentedModule, MEMORY_EXPORT, ModuleLimits, START_EXPORT, TABLE_EXPORT, ValType, instrument,
    validate, wasm_features,
};
use common::wat;
use wasmparser::{
    DataKind, ElementItems, ElementKind, ExternalKind, KnownCustom, Name, Operator, Parser, Payload, TypeRef,
};

fn instrumented(src: &str) -> InstrumentedModule {
    let wasm = wat(src);
    let info = validate(&wasm, &ModuleLimits::default()).expect("validates");
    let out = instrument(&wasm, &info).expect("instruments");
    // The rewritten module validates with the same feature set.
    wasmparser::Validator::new_with_features(wasm_features())
        .validate_all(&out.bytes)
        .expect("instrumented module validates");
    out
}

/// A function body: declared locals and operators (Debug-formatted).
type Body = (Vec<(u32, wasmparser::ValType)>, Vec<String>);

/// What a test wants to look at in a module, read back with wasmparser.
#[derive(Default, Debug)]
struct Parsed {
    imports: Vec<(String, String, u32)>,
    types: Vec<(Vec<wasmparser::ValType>, Vec<wasmparser::ValType>)>,
    exports: BTreeMap<String, (ExternalKind, u32)>,
    /// Per defined function.
    bodies: Vec<Body>,
    /// Per data segment: `None` for passive, `Some(offset)` for active; and its bytes.
    data: Vec<(Option<String>, Vec<u8>)>,
    /// Per element segment: (is active, function indices).
    elements: Vec<(bool, Vec<u32>)>,
    /// The start function, if there is a start section.
    start: Option<u32>,
    function_names: BTreeMap<u32, String>,
}

fn parse(bytes: &[u8]) -> Parsed {
    let mut p = Parsed::default();
    for payload in Parser::new(0).parse_all(bytes) {
        match payload.unwrap() {
            Payload::TypeSection(s) => {
                for t in s.into_iter_err_on_gc_types() {
                    let t = t.unwrap();
                    p.types.push((t.params().to_vec(), t.results().to_vec()));
                }
            }
            Payload::ImportSection(s) => {
                for i in s.into_imports() {
                    let i = i.unwrap();
                    let TypeRef::Func(ty) = i.ty else { panic!() };
                    p.imports.push((i.module.into(), i.name.into(), ty));
                }
            }
            Payload::ExportSection(s) => {
                for e in s {
                    let e = e.unwrap();
                    p.exports.insert(e.name.into(), (e.kind, e.index));
                }
            }
            Payload::CodeSectionEntry(body) => {
                let locals = body.get_locals_reader().unwrap().into_iter().map(|l| l.unwrap()).collect();
                let mut ops = Vec::new();
                let mut r = body.get_operators_reader().unwrap();
                while !r.eof() {
                    ops.push(format!("{:?}", r.read().unwrap()));
                }
                p.bodies.push((locals, ops));
            }
            Payload::DataSection(s) => {
                for d in s {
                    let d = d.unwrap();
                    let kind = match d.kind {
                        DataKind::Passive => None,
                        DataKind::Active { offset_expr, .. } => {
                            let mut r = offset_expr.get_operators_reader();
                            Some(format!("{:?}", r.read().unwrap()))
                        }
                    };
                    p.data.push((kind, d.data.to_vec()));
                }
            }
            Payload::ElementSection(s) => {
                for e in s {
                    let e = e.unwrap();
                    let active = matches!(e.kind, ElementKind::Active { .. });
                    let funcs = match e.items {
                        ElementItems::Functions(f) => f.into_iter().map(|f| f.unwrap()).collect(),
                        ElementItems::Expressions(_, exprs) => exprs
                            .into_iter()
                            .map(|e| {
                                let mut r = e.unwrap().get_operators_reader();
                                match r.read().unwrap() {
                                    Operator::RefFunc { function_index } => function_index,
                                    other => panic!("{other:?}"),
                                }
                            })
                            .collect(),
                    };
                    p.elements.push((active, funcs));
                }
            }
            Payload::StartSection { func, .. } => p.start = Some(func),
            Payload::CustomSection(c) => {
                if let KnownCustom::Name(names) = c.as_known() {
                    for n in names {
                        if let Name::Function(map) = n.unwrap() {
                            for naming in map {
                                let naming = naming.unwrap();
                                p.function_names.insert(naming.index, naming.name.into());
                            }
                        }
                    }
                }
            }
            _ => {}
        }
    }
    p
}

/// Every section as (`id` or `custom:<name>`, contents), in module order.
fn sections(bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for payload in Parser::new(0).parse_all(bytes) {
        let payload = payload.unwrap();
        if let Payload::CustomSection(c) = &payload {
            out.push((format!("custom:{}", c.name()), c.data().to_vec()));
        } else if let Some((id, range)) = payload.as_section() {
            out.push((id.to_string(), bytes[range].to_vec()));
        }
    }
    out
}

/// Section ids (as [`sections`] names them). Export, start and data sections are the only
/// ones instrumentation rewrites.
const EXPORT_SECTION: &str = "7";
const START_SECTION: &str = "8";
const CODE_SECTION: &str = "10";
const DATA_SECTION: &str = "11";

/// The sections instrumentation must leave byte for byte as they were.
fn untouched_sections(bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
    sections(bytes)
        .into_iter()
        .filter(|(id, _)| ![EXPORT_SECTION, START_SECTION, DATA_SECTION].contains(&id.as_str()))
        .collect()
}

const TABLE_MODULE: &str = r#"(module
  (import "ic0" "msg_reply" (func $reply))
  (import "ic0" "debug_print" (func $print (param i32 i32)))
  (type $t (func (result i32)))
  (memory (export "memory") 1)
  (table 3 funcref)
  (global $sp (mut i32) (i32.const 1024))
  (global $k i32 (i32.const 5))
  (global $f (mut f64) (f64.const 0))
  (data (i32.const 16) "hello")
  (data $p "passive")
  (data (i32.const 100) "world")
  (elem (i32.const 0) $a $b)
  (elem declare func $c)
  (func $a (type $t) (i32.const 1))
  (func $b (type $t) (call $c))
  (func $c (type $t) (i32.const 3))
  (func $start (global.set $sp (i32.const 2048)))
  (func $update (export "canister_update go") (local $x i32) (local $y i64)
    (drop (call_indirect (type $t) (i32.const 1)))
    (table.set (i32.const 2) (ref.func $c))
    (memory.fill (i32.const 0) (i32.const 0) (i32.const 10))
    (memory.copy (local.get $x) (i32.const 0) (i32.const 10))
    (memory.init $p (i32.const 0) (i32.const 0) (i32.const 7))
    (local.set $x (i32.const 1))
    (local.set $y (i64.const 2))
    (call $print (i32.const 16) (i32.const 5))
    (call $reply))
  (start $start))"#;

#[test]
fn function_indices_are_unchanged() {
    let out = instrumented(TABLE_MODULE);
    let p = parse(&out.bytes);

    // No import is added.
    assert_eq!(
        p.imports.iter().map(|(m, n, _)| format!("{m}.{n}")).collect::<Vec<_>>(),
        ["ic0.msg_reply", "ic0.debug_print"]
    );
    assert_eq!(p.types, parse(&wat(TABLE_MODULE)).types, "no type is added");

    // Defined functions keep their indices 2..=6 everywhere they are referenced.
    let (a, b, c, start, update) = (2, 3, 4, 5, 6);
    assert_eq!(p.exports["canister_update go"], (ExternalKind::Func, update));
    assert_eq!(p.exports[START_EXPORT], (ExternalKind::Func, start));
    assert_eq!(p.elements, vec![(true, vec![a, b]), (false, vec![c])]);
    assert_eq!(p.start, None);

    let b_ops = &p.bodies[1].1;
    assert_eq!(b_ops[0], format!("Call {{ function_index: {c} }}"));
    let ops = &p.bodies[4].1;
    assert!(ops.contains(&format!("RefFunc {{ function_index: {c} }}")));
    assert!(ops.contains(&"Call { function_index: 1 }".to_string())); // debug_print
    assert!(ops.contains(&"Call { function_index: 0 }".to_string())); // msg_reply
    assert!(ops.iter().any(|o| o.starts_with("CallIndirect")));

    assert_eq!(p.function_names, parse(&wat(TABLE_MODULE)).function_names);
    assert_eq!(p.function_names.get(&a).map(String::as_str), Some("a"));
    assert_eq!(p.function_names.get(&update).map(String::as_str), Some("update"));
    assert_eq!(p.function_names.get(&1).map(String::as_str), Some("print"));
}

/// Modules exercising every bulk operation (memory32/64, table32/64), start functions,
/// element segments, passive data and the name section.
const UNCHANGED_CASES: &[&str] = &[
    TABLE_MODULE,
    r#"(module
        (memory i64 1)
        (data $d "xyz")
        (data (i64.const 8) "active")
        (func $g (param $p i64) (local $x i32)
            (memory.fill (i64.const 0) (i32.const 0) (i64.const 3))
            (memory.copy (i64.const 0) (i64.const 3) (local.get $p))
            (memory.init $d (i64.const 0) (i32.const 0) (i32.const 3))
            (data.drop $d))
        (func (export "canister_update f") (call $g (i64.const 1))))"#,
    r#"(module
        (import "ic0" "msg_reply" (func $reply))
        (table $t32 4 funcref)
        (table $t64 i64 4 funcref)
        (global $g (mut i64) (i64.const 0))
        (func $f)
        (elem $e func $f $f)
        (func $s (global.set $g (i64.const 1)))
        (start $s)
        (func (export "canister_update f")
            (table.fill $t32 (i32.const 0) (ref.null func) (i32.const 2))
            (table.fill $t64 (i64.const 0) (ref.null func) (i64.const 2))
            (table.copy $t32 $t32 (i32.const 0) (i32.const 1) (i32.const 1))
            (table.copy $t64 $t64 (i64.const 0) (i64.const 1) (i64.const 1))
            (table.init $t32 $e (i32.const 0) (i32.const 0) (i32.const 2))
            (elem.drop $e)
            (call $reply)))"#,
];

#[test]
fn only_data_start_and_exports_are_rewritten() {
    for src in UNCHANGED_CASES {
        let original = wat(src);
        let out = instrumented(src);

        // Every other section, the code section included, is byte for byte the same, in
        // the same order: no locals, instructions, types or imports are added.
        let before = untouched_sections(&original);
        let after = untouched_sections(&out.bytes);
        assert!(before.iter().any(|(id, _)| id == CODE_SECTION), "{src}");
        assert_eq!(before, after, "{src}");

        // The original exports are all still there, with the same indices; the rest are
        // the added `__cairn_*` ones.
        let (p0, p) = (parse(&original), parse(&out.bytes));
        for (name, export) in &p0.exports {
            assert_eq!(p.exports.get(name), Some(export), "{name} in {src}");
        }
        for name in p.exports.keys().filter(|n| !p0.exports.contains_key(*n)) {
            assert!(name.starts_with("__cairn_"), "{name} in {src}");
        }
        assert_eq!(p0.bodies, p.bodies);
        assert_eq!(p0.elements, p.elements);

        // The start function is exported under its original index.
        assert_eq!(p0.start.is_some(), out.has_start);
        assert_eq!(p.exports.get(START_EXPORT), p0.start.map(|f| (ExternalKind::Func, f)).as_ref());
        assert_eq!(p.start, None);
    }
}

#[test]
fn extracts_active_data_segments() {
    let out = instrumented(TABLE_MODULE);
    assert_eq!(out.data_segments, vec![(16, b"hello".to_vec()), (100, b"world".to_vec())]);
    let p = parse(&out.bytes);
    // Indices preserved: removed segments become empty passive ones.
    assert_eq!(p.data, vec![(None, vec![]), (None, b"passive".to_vec()), (None, vec![])]);
}

#[test]
fn exports_globals_memory_and_start() {
    let out = instrumented(TABLE_MODULE);
    assert_eq!(
        out.exported_globals,
        vec![
            ExportedGlobal { index: 0, ty: ValType::I32, export_name: "__cairn_global_0".into() },
            ExportedGlobal { index: 2, ty: ValType::F64, export_name: "__cairn_global_2".into() },
        ]
    );
    let p = parse(&out.bytes);
    assert_eq!(p.exports["__cairn_global_0"], (ExternalKind::Global, 0));
    assert_eq!(p.exports["__cairn_global_2"], (ExternalKind::Global, 2));
    assert!(!p.exports.contains_key("__cairn_global_1"));
    assert_eq!(p.exports[MEMORY_EXPORT], (ExternalKind::Memory, 0));
    assert_eq!(p.exports["memory"], (ExternalKind::Memory, 0));
    assert!(out.has_start && out.has_memory && !out.memory64);
}

#[test]
fn exports_table_zero() {
    let p = parse(&instrumented(TABLE_MODULE).bytes);
    assert_eq!(p.exports[TABLE_EXPORT], (ExternalKind::Table, 0));

    // Table 0 also when it already has an export name (Motoko's `table`) and when there
    // are several.
    let p = parse(
        &instrumented(
            r#"(module
                (table (export "table") i64 2 funcref)
                (table $other 1 funcref)
                (func (export "canister_update f")))"#,
        )
        .bytes,
    );
    assert_eq!(p.exports["table"], (ExternalKind::Table, 0));
    assert_eq!(p.exports[TABLE_EXPORT], (ExternalKind::Table, 0));

    // In a synthesised export section too.
    let p = parse(&instrumented("(module (table 1 funcref))").bytes);
    assert_eq!(p.exports[TABLE_EXPORT], (ExternalKind::Table, 0));
    assert_eq!(p.exports.len(), 1);

    // No table, no export.
    let p = parse(&instrumented(r#"(module (memory 1) (func (export "canister_init")))"#).bytes);
    assert!(!p.exports.contains_key(TABLE_EXPORT));
}

#[test]
fn synthesises_a_missing_export_section() {
    // No type, import, function or export section at all.
    let out = instrumented(r#"(module (memory 1) (data (i32.const 8) "x") (global (mut i64) (i64.const 7)))"#);
    let p = parse(&out.bytes);
    assert_eq!(p.types.len(), 0);
    assert_eq!(p.imports.len(), 0);
    assert_eq!(p.exports.len(), 2); // memory + global
    assert_eq!(out.data_segments, vec![(8, b"x".to_vec())]);

    // Nothing to add to the empty module: it stays empty.
    let out = instrumented("(module)");
    assert_eq!(out.bytes, wat("(module)"));
    assert!(!out.has_memory && !out.has_start);
}

#[test]
fn rejects_a_mismatched_info() {
    let a = wat("(module (memory 1))");
    let b = wat("(module (memory i64 1))");
    let info_b = validate(&b, &ModuleLimits::default()).unwrap();
    let err = instrument(&a, &info_b).unwrap_err();
    assert!(err.to_string().contains("does not describe"), "{err}");
}

#[test]
fn instrumenting_preserves_custom_sections() {
    let mut wasm = wat("(module (memory 1) (func (export \"canister_init\")))");
    // icp:public candid:service with payload "svc".
    let name = b"icp:public candid:service";
    let mut payload = vec![name.len() as u8];
    payload.extend_from_slice(name);
    payload.extend_from_slice(b"svc");
    wasm.push(0);
    wasm.push(payload.len() as u8);
    wasm.extend_from_slice(&payload);
    let info = validate(&wasm, &ModuleLimits::default()).unwrap();
    let out = instrument(&wasm, &info).unwrap();
    let again = validate(&out.bytes, &ModuleLimits::default());
    // The instrumented module itself is no longer a valid *canister* module (it exports
    // the reserved name `__cairn_memory`), but its custom sections survive.
    assert!(again.is_err());
    let mut found = false;
    for payload in Parser::new(0).parse_all(&out.bytes) {
        if let Payload::CustomSection(c) = payload.unwrap()
            && c.name() == "icp:public candid:service"
        {
            assert_eq!(c.data(), b"svc");
            found = true;
        }
    }
    assert!(found);
}
