//! Instrumentation: rewriting a validated module so the engine can keep a canister's
//! memory and globals across messages (orthogonal persistence).
//!
//! What changes, and why:
//!
//! * **Active data segments** for memory 0 are removed and returned: the engine writes them
//!   once at install/reinstall/upgrade. Left in place, every instantiation would overwrite
//!   the persisted memory with the initial image. Each is replaced by an *empty passive*
//!   segment so data-segment indices stay stable; an instantiated active segment is
//!   dropped after instantiation anyway, so `memory.init` on it behaves the same (traps
//!   for length > 0 or offset > 0, succeeds for 0/0) and `data.drop` stays a no-op.
//! * **The start section** is removed and the function exported as [`START_EXPORT`]: the
//!   engine calls it once at install/upgrade, after writing the data segments (the order
//!   instantiation would use), and never again when it re-instantiates for a message.
//! * **Every defined mutable global** is exported as `__cairn_global_<index>`
//!   ([`global_export_name`]) so the engine can save and restore all of them, including
//!   unexported ones such as Rust's `__stack_pointer`.
//! * **Memory 0** is additionally exported as [`MEMORY_EXPORT`], whatever the module calls
//!   it (`memory` for Rust, `mem` for Motoko).
//! * **Table 0** is additionally exported as [`TABLE_EXPORT`], so the engine can call the
//!   callbacks `ic0.call_new` names by table index.
//!
//! Nothing else changes: no imports, types, functions or locals are added, so every index
//! (functions, types, tables, globals, data and element segments) is the same as in the
//! original, and every other section — the code section included — is copied byte for
//! byte. In particular, bulk operations (`memory.fill`/`copy`/`init`, `table.fill`/`copy`/
//! `init`) are not rewritten: the engine's fuel configuration (wasmtime's
//! `Config::operator_cost`, whose variable costs charge per byte or element) meters them
//! by length.

use wasm_encoder::reencode::{Error as ReencodeError, Reencode};
use wasm_encoder::{DataSection, ExportKind, ExportSection, RawSection};
use wasmparser::{DataKind, Parser, Payload, TypeRef};

use crate::error::ModuleError;
use crate::ic0::ValType;
use crate::validate::{ModuleInfo, const_offset, wasm_features};

/// Export name of the former start function.
pub const START_EXPORT: &str = "__cairn_start";
/// Export name of memory 0.
pub const MEMORY_EXPORT: &str = "__cairn_memory";

/// The export name of table 0 in an instrumented module: the engine calls
/// callbacks named by `ic0.call_new` (table indices) through it.
pub const TABLE_EXPORT: &str = "__cairn_table";
/// Prefix of the export names of mutable globals; followed by the global index.
pub const GLOBAL_EXPORT_PREFIX: &str = "__cairn_global_";

/// The export name of mutable global `index` in an instrumented module.
pub fn global_export_name(index: u32) -> String {
    format!("{GLOBAL_EXPORT_PREFIX}{index}")
}

/// A mutable global the engine must save after and restore before each message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportedGlobal {
    /// Index in the module's global index space.
    pub index: u32,
    /// Its value type (numeric or v128; reference-typed globals are rejected by validation).
    pub ty: ValType,
    /// The export name, `__cairn_global_<index>`.
    pub export_name: String,
}

/// The result of [`instrument`]: the module to compile plus what instantiation would have
/// done implicitly and the engine now has to do itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstrumentedModule {
    /// The rewritten module. It validates with [`wasm_features`].
    pub bytes: Vec<u8>,
    /// The removed active data segments of memory 0 as `(offset, bytes)`, in module order.
    /// At install/reinstall/upgrade the engine writes them into the fresh memory in this
    /// order (later segments overwrite earlier ones), then calls [`START_EXPORT`] if
    /// `has_start`. Validation already checked that each fits into the initial memory.
    pub data_segments: Vec<(u64, Vec<u8>)>,
    /// All mutable defined globals, exported for save/restore.
    pub exported_globals: Vec<ExportedGlobal>,
    /// The module had a start function, now exported as [`START_EXPORT`].
    pub has_start: bool,
    /// The memory is memory64 (pointer type i64).
    pub memory64: bool,
    /// The module has a memory, exported as [`MEMORY_EXPORT`].
    pub has_memory: bool,
}

/// Rewrites a module that [`crate::validate`] accepted (with `info` being its result); see
/// the module documentation for what changes.
///
/// Fails with [`ModuleError::Instrumentation`] if `info` does not describe `wasm`, a data
/// segment offset is not constant, or the rewritten module does not validate.
pub fn instrument(wasm: &[u8], info: &ModuleInfo) -> Result<InstrumentedModule, ModuleError> {
    let shape = Shape::read(wasm)?;
    if shape.memory64 != info.memory64
        || shape.start.is_some() != info.has_start
        || shape.num_defined_funcs != info.num_functions
        || shape.num_imported_funcs != info.num_imported_functions
    {
        return Err(ModuleError::Instrumentation("the ModuleInfo does not describe this module".into()));
    }
    if let Some(name) = shape.export_names.iter().find(|n| n.starts_with(crate::validate::RESERVED_EXPORT_PREFIX)) {
        return Err(ModuleError::Instrumentation(format!("the module already exports the reserved name '{name}'")));
    }

    let mut rw = Rewriter { shape, data_segments: Vec::new() };
    let mut module = wasm_encoder::Module::new();
    let mut exports_emitted = false;

    for payload in Parser::new(0).parse_all(wasm) {
        let payload = payload.map_err(|e| ModuleError::Instrumentation(e.to_string()))?;
        // A module without an export section gets one where it belongs, before the first
        // section that must follow it.
        if !exports_emitted && section_rank(&payload).is_some_and(|rank| rank > EXPORT_RANK) {
            let mut exports = ExportSection::new();
            rw.add_exports(&mut exports);
            if !exports.is_empty() {
                module.section(&exports);
            }
            exports_emitted = true;
        }
        if matches!(payload, Payload::ExportSection(_)) {
            exports_emitted = true;
        }
        rw.section(&mut module, wasm, payload).map_err(|e| ModuleError::Instrumentation(reencode_error(e)))?;
    }

    let bytes = module.finish();
    wasmparser::Validator::new_with_features(wasm_features())
        .validate_all(&bytes)
        .map_err(|e| ModuleError::Instrumentation(format!("the instrumented module does not validate: {e}")))?;

    let exported_globals = rw
        .shape
        .mutable_globals()
        .map(|(index, ty)| ExportedGlobal { index, ty, export_name: global_export_name(index) })
        .collect();
    Ok(InstrumentedModule {
        bytes,
        data_segments: rw.data_segments,
        exported_globals,
        has_start: rw.shape.start.is_some(),
        memory64: rw.shape.memory64,
        has_memory: rw.shape.has_memory,
    })
}

fn reencode_error(e: ReencodeError<String>) -> String {
    match e {
        ReencodeError::UserError(s) => s,
        other => other.to_string(),
    }
}

/// The facts about the original module that the rewrite depends on, read in a first pass.
#[derive(Default)]
struct Shape {
    num_imported_funcs: u32,
    num_imported_globals: u32,
    num_defined_funcs: u32,
    has_memory: bool,
    memory64: bool,
    /// The module has a table (imported or defined).
    has_table: bool,
    /// Defined globals: (index in the global space, type, mutable).
    globals: Vec<(u32, Option<ValType>, bool)>,
    start: Option<u32>,
    export_names: Vec<String>,
}

impl Shape {
    fn read(wasm: &[u8]) -> Result<Shape, ModuleError> {
        let err = |e: wasmparser::BinaryReaderError| ModuleError::Instrumentation(e.to_string());
        let mut s = Shape::default();
        for payload in Parser::new(0).parse_all(wasm) {
            match payload.map_err(err)? {
                Payload::ImportSection(section) => {
                    for import in section.into_imports() {
                        match import.map_err(err)?.ty {
                            TypeRef::Func(_) | TypeRef::FuncExact(_) => s.num_imported_funcs += 1,
                            TypeRef::Table(_) => s.has_table = true,
                            TypeRef::Memory(m) => {
                                if !s.has_memory {
                                    s.has_memory = true;
                                    s.memory64 = m.memory64;
                                }
                            }
                            TypeRef::Global(_) => s.num_imported_globals += 1,
                            TypeRef::Tag(_) => {}
                        }
                    }
                }
                Payload::FunctionSection(section) => s.num_defined_funcs += section.count(),
                Payload::TableSection(section) => s.has_table |= section.count() > 0,
                Payload::MemorySection(section) => {
                    for m in section {
                        let m = m.map_err(err)?;
                        if !s.has_memory {
                            s.has_memory = true;
                            s.memory64 = m.memory64;
                        }
                    }
                }
                Payload::GlobalSection(section) => {
                    for g in section {
                        let ty = g.map_err(err)?.ty;
                        let index = s.num_imported_globals + s.globals.len() as u32;
                        let vt = match ty.content_type {
                            wasmparser::ValType::I32 => Some(ValType::I32),
                            wasmparser::ValType::I64 => Some(ValType::I64),
                            wasmparser::ValType::F32 => Some(ValType::F32),
                            wasmparser::ValType::F64 => Some(ValType::F64),
                            wasmparser::ValType::V128 => Some(ValType::V128),
                            wasmparser::ValType::Ref(_) => None,
                        };
                        if ty.mutable && vt.is_none() {
                            return Err(ModuleError::Instrumentation(format!(
                                "global {index} is a mutable reference, which cannot be persisted"
                            )));
                        }
                        s.globals.push((index, vt, ty.mutable));
                    }
                }
                Payload::ExportSection(section) => {
                    for e in section {
                        s.export_names.push(e.map_err(err)?.name.to_string());
                    }
                }
                Payload::StartSection { func, .. } => s.start = Some(func),
                _ => {}
            }
        }
        Ok(s)
    }

    fn mutable_globals(&self) -> impl Iterator<Item = (u32, ValType)> + '_ {
        self.globals.iter().filter(|(_, _, mutable)| *mutable).filter_map(|&(index, ty, _)| Some((index, ty?)))
    }
}

/// Position of a section in the binary's mandatory order (custom sections: `None`).
fn section_rank(payload: &Payload<'_>) -> Option<u8> {
    Some(match payload {
        Payload::TypeSection(_) => 1,
        Payload::ImportSection(_) => 2,
        Payload::FunctionSection(_) => 3,
        Payload::TableSection(_) => 4,
        Payload::MemorySection(_) => 5,
        Payload::TagSection(_) => 6,
        Payload::GlobalSection(_) => 7,
        Payload::ExportSection(_) => EXPORT_RANK,
        Payload::StartSection { .. } => 9,
        Payload::ElementSection(_) => 10,
        Payload::DataCountSection { .. } => 11,
        Payload::CodeSectionStart { .. } => 12,
        Payload::DataSection(_) => 13,
        Payload::End(_) => u8::MAX,
        _ => return None,
    })
}

const EXPORT_RANK: u8 = 8;

/// The reencoder: extracts data segments, adds exports and drops the start section;
/// every other section is copied unchanged.
struct Rewriter {
    shape: Shape,
    data_segments: Vec<(u64, Vec<u8>)>,
}

type RResult<T = ()> = Result<T, ReencodeError<String>>;

impl Rewriter {
    fn add_exports(&self, exports: &mut ExportSection) {
        if let Some(start) = self.shape.start {
            exports.export(START_EXPORT, ExportKind::Func, start);
        }
        if self.shape.has_memory {
            exports.export(MEMORY_EXPORT, ExportKind::Memory, 0);
        }
        if self.shape.has_table {
            exports.export(TABLE_EXPORT, ExportKind::Table, 0);
        }
        for (index, _) in self.shape.mutable_globals() {
            exports.export(&global_export_name(index), ExportKind::Global, index);
        }
    }

    /// Re-encodes one payload of the original module.
    fn section(&mut self, module: &mut wasm_encoder::Module, wasm: &[u8], payload: Payload<'_>) -> RResult {
        match payload {
            // The code section is copied whole at `CodeSectionStart`.
            Payload::Version { .. } | Payload::End(_) | Payload::CodeSectionEntry(_) => {}
            Payload::ExportSection(s) => {
                let mut exports = ExportSection::new();
                self.parse_export_section(&mut exports, s)?;
                self.add_exports(&mut exports);
                module.section(&exports);
            }
            // Removed: the start function is exported instead (see `add_exports`).
            Payload::StartSection { .. } => {}
            Payload::DataSection(s) => {
                let mut data = DataSection::new();
                self.parse_data_section(&mut data, s)?;
                module.section(&data);
            }
            Payload::CustomSection(s) => {
                module.section(&self.custom_section(s)?);
            }
            // Everything else, byte for byte.
            other => match other.as_section() {
                Some((id, range)) => {
                    let data = wasm.get(range).ok_or(ReencodeError::InvalidCodeSectionSize)?;
                    module.section(&RawSection { id, data });
                }
                None => return Err(ReencodeError::UnexpectedNonCoreModuleSection),
            },
        }
        Ok(())
    }
}

impl Reencode for Rewriter {
    type Error = String;

    fn parse_data(&mut self, data: &mut DataSection, datum: wasmparser::Data<'_>) -> RResult {
        match datum.kind {
            DataKind::Active { memory_index: 0, offset_expr } => {
                let Some(offset) = const_offset(&offset_expr) else {
                    return Err(ReencodeError::UserError(format!(
                        "active data segment at byte {} has a non-constant offset",
                        datum.range.start
                    )));
                };
                self.data_segments.push((offset, datum.data.to_vec()));
                data.passive(std::iter::empty());
                Ok(())
            }
            _ => wasm_encoder::reencode::utils::parse_data(self, data, datum),
        }
    }
}
