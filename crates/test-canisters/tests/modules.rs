//! Checks the built modules: valid wasm, wasm32 (Rust) vs memory64 (Motoko),
//! only `ic0` imports, and a `canister_*` export for every Candid method.
//! `cargo test -p cairn-test-canisters -- --nocapture` also prints each
//! module's `ic0` imports and `canister_*` exports.

use cairn_test_canisters::{ALL, Toolchain, gzipped};
use wasmparser::{ExternalKind, Parser, Payload, TypeRef, ValType, Validator, WasmFeatures};

struct Summary {
    memory64: bool,
    /// `(name, params, results)` of every import.
    imports: Vec<(String, String, Vec<ValType>, Vec<ValType>)>,
    exports: Vec<(String, ExternalKind)>,
    /// `(name, size)` of every custom section.
    custom_sections: Vec<(String, usize)>,
    has_start: bool,
}

fn summarize(wasm: &[u8]) -> Summary {
    let mut func_types = Vec::new();
    let mut summary = Summary {
        memory64: false,
        imports: Vec::new(),
        exports: Vec::new(),
        custom_sections: Vec::new(),
        has_start: false,
    };
    let mut first_memory = true;
    for payload in Parser::new(0).parse_all(wasm) {
        match payload.unwrap() {
            Payload::TypeSection(reader) => {
                for ty in reader.into_iter_err_on_gc_types() {
                    let ty = ty.unwrap();
                    func_types.push((ty.params().to_vec(), ty.results().to_vec()));
                }
            }
            Payload::ImportSection(reader) => {
                for import in reader.into_imports() {
                    let import = import.unwrap();
                    match import.ty {
                        TypeRef::Func(idx) => {
                            let (params, results) = func_types[idx as usize].clone();
                            summary.imports.push((import.module.to_string(), import.name.to_string(), params, results));
                        }
                        TypeRef::Memory(mem) if first_memory => {
                            summary.memory64 = mem.memory64;
                            first_memory = false;
                        }
                        _ => {}
                    }
                }
            }
            Payload::MemorySection(reader) => {
                for mem in reader {
                    let mem = mem.unwrap();
                    if first_memory {
                        summary.memory64 = mem.memory64;
                        first_memory = false;
                    }
                }
            }
            Payload::ExportSection(reader) => {
                for export in reader {
                    let export = export.unwrap();
                    summary.exports.push((export.name.to_string(), export.kind));
                }
            }
            Payload::CustomSection(reader) => {
                summary.custom_sections.push((reader.name().to_string(), reader.data().len()));
            }
            Payload::StartSection { .. } => summary.has_start = true,
            _ => {}
        }
    }
    assert!(!first_memory, "module has no memory");
    summary
}

/// `(method, export prefix)` for every method of a Candid service.
fn candid_methods(did: &str) -> Vec<(String, &'static str)> {
    let service = &did[did.find("service").expect("no service")..];
    let body = &service[service.find('{').unwrap() + 1..];
    let body: String = body.lines().filter(|l| !l.trim_start().starts_with("//")).collect::<Vec<_>>().join("\n");
    let mut methods = Vec::new();
    let (mut depth, mut start) = (0i32, 0usize);
    for (i, c) in body.char_indices() {
        match c {
            '{' | '(' => depth += 1,
            '}' | ')' if depth == 0 => break,
            '}' | ')' => depth -= 1,
            ';' if depth == 0 => {
                let decl = body[start..i].trim();
                let name = decl[..decl.find(':').unwrap()].trim().to_string();
                let prefix = if decl.ends_with("composite_query") {
                    "canister_composite_query"
                } else if decl.ends_with("query") {
                    "canister_query"
                } else {
                    "canister_update"
                };
                methods.push((name, prefix));
                start = i + 1;
            }
            _ => {}
        }
    }
    methods
}

fn fmt_types(types: &[ValType]) -> String {
    let names: Vec<String> = types.iter().map(|t| t.to_string()).collect();
    format!("({})", names.join(", "))
}

#[test]
fn every_module_is_valid_and_of_the_right_flavour() {
    assert_eq!(ALL.len(), 9);
    for canister in ALL {
        let wasm = canister.wasm;
        assert!(wasm.starts_with(b"\0asm"), "{}: not a wasm module", canister.name);
        let features = WasmFeatures::default() | WasmFeatures::MEMORY64;
        Validator::new_with_features(features)
            .validate_all(wasm)
            .unwrap_or_else(|e| panic!("{}: invalid module: {e}", canister.name));
        let summary = summarize(wasm);
        match canister.toolchain {
            Toolchain::Rust => assert!(!summary.memory64, "{}: expected wasm32", canister.name),
            Toolchain::Motoko => assert!(summary.memory64, "{}: expected memory64", canister.name),
        }
        for (module, name, _, _) in &summary.imports {
            assert_eq!(module, "ic0", "{}: unexpected import {module}.{name}", canister.name);
        }
    }
}

#[test]
fn every_candid_method_is_exported() {
    for canister in ALL {
        let summary = summarize(canister.wasm);
        let methods = candid_methods(canister.did);
        assert!(!methods.is_empty(), "{}: no methods in its .did", canister.name);
        for (method, prefix) in methods {
            let export = format!("{prefix} {method}");
            assert!(
                summary.exports.iter().any(|(name, kind)| *name == export && *kind == ExternalKind::Func),
                "{}: missing export {export:?}",
                canister.name
            );
        }
    }
}

#[test]
fn gzipped_modules_start_with_the_gzip_magic() {
    let gz = gzipped(cairn_test_canisters::COUNTER);
    assert_eq!(&gz[..2], &[0x1f, 0x8b]);
    assert!(gz.len() < cairn_test_canisters::COUNTER.len());
}

/// Prints the System API surface of every module (run with --nocapture).
#[test]
fn print_imports_and_exports() {
    for canister in ALL {
        let summary = summarize(canister.wasm);
        println!(
            "== {} ({:?}, {} bytes, {} gzipped, memory64: {})",
            canister.name,
            canister.toolchain,
            canister.wasm.len(),
            gzipped(canister.wasm).len(),
            summary.memory64
        );
        println!("  start function: {}", summary.has_start);
        for (name, size) in &summary.custom_sections {
            println!("  custom section {name:?}: {size} bytes");
        }
        println!("  imports ({}):", summary.imports.len());
        for (module, name, params, results) in &summary.imports {
            println!("    {module}.{name} {} -> {}", fmt_types(params), fmt_types(results));
        }
        let mut exports: Vec<String> = summary
            .exports
            .iter()
            .map(|(name, kind)| match kind {
                ExternalKind::Func => name.clone(),
                other => format!("{name} [{other:?}]"),
            })
            .collect();
        exports.sort();
        println!("  exports ({}):", exports.len());
        for name in exports {
            println!("    {name}");
        }
    }
}
