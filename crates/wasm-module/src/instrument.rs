//! Instrumentation: rewriting a validated module so the engine can keep a canister's
//! memory and globals across messages (orthogonal persistence) and meter bulk operations.
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
//! * **Bulk operations** are charged by length: the engine's fuel counts one unit per Wasm
//!   operator, so `memory.fill`/`memory.copy`/`memory.init` (and `table.fill`/
//!   `table.copy`/`table.init`) would otherwise move gigabytes for one unit. A function
//!   import `__cairn.charge_bytes : (i64) -> ()` is added as the *last* import, and before
//!   each such instruction the length operand (on top of the stack) is copied into a
//!   scratch local, widened to i64 if needed, and passed to that import. For table
//!   operations the argument is the number of *elements*. Adding an import shifts every
//!   defined function's index by one; the reencoder's function-index hook rewrites calls,
//!   `ref.func`, exports, element segments, the name section and the start reference.
//!   Scratch locals are appended after a function's existing locals, so existing local
//!   indices are unchanged.
//!
//! Everything else (types, tables, element segments, custom sections, …) is re-encoded
//! unchanged.

use wasm_encoder::reencode::{Error as ReencodeError, Reencode};
use wasm_encoder::{
    CodeSection, DataCountSection, DataSection, ElementSection, EntityType, ExportKind,
    ExportSection, FunctionSection, GlobalSection, ImportSection, Instruction, MemorySection,
    RawSection, TableSection, TagSection, TypeSection,
};
use wasmparser::{
    BinaryReader, CodeSectionReader, DataKind, KnownCustom, Operator, Parser, Payload, TypeRef,
};

use crate::error::ModuleError;
use crate::ic0::ValType;
use crate::validate::{ModuleInfo, const_offset, wasm_features};

/// Import module of the metering hook added by instrumentation.
pub const CHARGE_MODULE: &str = "__cairn";
/// Import name of the metering hook: `(len: i64) -> ()`, called before each bulk memory
/// (and table) operation with its length in bytes (elements for tables).
pub const CHARGE_FUNCTION: &str = "charge_bytes";
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
    /// Index of the `__cairn.charge_bytes` import in the rewritten module.
    pub charge_function_index: u32,
    /// How many charge calls were inserted (one per bulk operation in the code).
    pub charge_sites: u64,
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
        || shape.defined_func_types.len() as u32 != info.num_functions
        || shape.num_imported_funcs != info.num_imported_functions
    {
        return Err(ModuleError::Instrumentation(
            "the ModuleInfo does not describe this module".into(),
        ));
    }
    if let Some(name) = shape
        .export_names
        .iter()
        .find(|n| n.starts_with(crate::validate::RESERVED_EXPORT_PREFIX))
    {
        return Err(ModuleError::Instrumentation(format!(
            "the module already exports the reserved name '{name}'"
        )));
    }

    let mut rw = Rewriter {
        charge_func: shape.num_imported_funcs,
        shape,
        code_index: 0,
        data_segments: Vec::new(),
        charge_sites: 0,
    };
    let mut module = wasm_encoder::Module::new();
    let mut emitted = Emitted::default();

    for payload in Parser::new(0).parse_all(wasm) {
        let payload = payload.map_err(|e| ModuleError::Instrumentation(e.to_string()))?;
        if let Some(rank) = section_rank(&payload) {
            rw.emit_missing(&mut module, &mut emitted, rank);
        }
        rw.section(&mut module, &mut emitted, wasm, payload)
            .map_err(|e| ModuleError::Instrumentation(reencode_error(e)))?;
    }

    let bytes = module.finish();
    wasmparser::Validator::new_with_features(wasm_features())
        .validate_all(&bytes)
        .map_err(|e| {
            ModuleError::Instrumentation(format!("the instrumented module does not validate: {e}"))
        })?;

    let exported_globals = rw
        .shape
        .mutable_globals()
        .map(|(index, ty)| ExportedGlobal {
            index,
            ty,
            export_name: global_export_name(index),
        })
        .collect();
    Ok(InstrumentedModule {
        bytes,
        data_segments: rw.data_segments,
        exported_globals,
        has_start: rw.shape.start.is_some(),
        memory64: rw.shape.memory64,
        has_memory: rw.shape.has_memory,
        charge_function_index: rw.charge_func,
        charge_sites: rw.charge_sites,
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
    num_types: u32,
    /// Parameter count per type index (0 for non-function types, which cannot occur
    /// without the GC proposal).
    type_params: Vec<u32>,
    num_imported_funcs: u32,
    num_imported_globals: u32,
    defined_func_types: Vec<u32>,
    has_memory: bool,
    memory64: bool,
    /// Per table (imports first): is it a 64-bit table?
    table64: Vec<bool>,
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
                Payload::TypeSection(section) => {
                    for group in section {
                        for sub in group.map_err(err)?.into_types() {
                            s.num_types += 1;
                            s.type_params.push(match &sub.composite_type.inner {
                                wasmparser::CompositeInnerType::Func(f) => f.params().len() as u32,
                                _ => 0,
                            });
                        }
                    }
                }
                Payload::ImportSection(section) => {
                    for import in section.into_imports() {
                        match import.map_err(err)?.ty {
                            TypeRef::Func(_) | TypeRef::FuncExact(_) => s.num_imported_funcs += 1,
                            TypeRef::Table(t) => s.table64.push(t.table64),
                            TypeRef::Memory(m) => {
                                s.has_memory = true;
                                s.memory64 = m.memory64;
                            }
                            TypeRef::Global(_) => s.num_imported_globals += 1,
                            TypeRef::Tag(_) => {}
                        }
                    }
                }
                Payload::FunctionSection(section) => {
                    for ty in section {
                        s.defined_func_types.push(ty.map_err(err)?);
                    }
                }
                Payload::TableSection(section) => {
                    for t in section {
                        s.table64.push(t.map_err(err)?.ty.table64);
                    }
                }
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
        self.globals
            .iter()
            .filter(|(_, _, mutable)| *mutable)
            .filter_map(|&(index, ty, _)| Some((index, ty?)))
    }
}

/// Which sections the output has received, so missing ones can be synthesised.
#[derive(Default)]
struct Emitted {
    types: bool,
    imports: bool,
    exports: bool,
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
        Payload::ExportSection(_) => 8,
        Payload::StartSection { .. } => 9,
        Payload::ElementSection(_) => 10,
        Payload::DataCountSection { .. } => 11,
        Payload::CodeSectionStart { .. } => 12,
        Payload::DataSection(_) => 13,
        Payload::End(_) => u8::MAX,
        _ => return None,
    })
}

const TYPE_RANK: u8 = 1;
const IMPORT_RANK: u8 = 2;
const EXPORT_RANK: u8 = 8;

/// The reencoder: shifts defined-function indices, extracts data segments and inserts
/// charge calls.
struct Rewriter {
    shape: Shape,
    /// Index of the `charge_bytes` import = the old number of imported functions.
    charge_func: u32,
    code_index: usize,
    data_segments: Vec<(u64, Vec<u8>)>,
    charge_sites: u64,
}

type RResult<T = ()> = Result<T, ReencodeError<String>>;

fn user_error<T>(msg: impl Into<String>) -> RResult<T> {
    Err(ReencodeError::UserError(msg.into()))
}

impl Rewriter {
    fn charge_type(&self) -> u32 {
        self.shape.num_types
    }

    fn add_charge_type(&self, types: &mut TypeSection) {
        types.ty().function([wasm_encoder::ValType::I64], []);
    }

    fn add_charge_import(&self, imports: &mut ImportSection) {
        imports.import(
            CHARGE_MODULE,
            CHARGE_FUNCTION,
            EntityType::Function(self.charge_type()),
        );
    }

    fn add_exports(&mut self, exports: &mut ExportSection) -> RResult {
        if let Some(start) = self.shape.start {
            let index = self.function_index(start)?;
            exports.export(START_EXPORT, ExportKind::Func, index);
        }
        if self.shape.has_memory {
            exports.export(MEMORY_EXPORT, ExportKind::Memory, 0);
        }
        if !self.shape.table64.is_empty() {
            exports.export(TABLE_EXPORT, ExportKind::Table, 0);
        }
        for (index, _) in self.shape.mutable_globals() {
            exports.export(&global_export_name(index), ExportKind::Global, index);
        }
        Ok(())
    }

    /// Inserts the type, import and export sections the rewrite needs if the original
    /// module has none and the next section would come after their place.
    fn emit_missing(&mut self, module: &mut wasm_encoder::Module, emitted: &mut Emitted, rank: u8) {
        if !emitted.types && rank > TYPE_RANK {
            let mut types = TypeSection::new();
            self.add_charge_type(&mut types);
            module.section(&types);
            emitted.types = true;
        }
        if !emitted.imports && rank > IMPORT_RANK {
            let mut imports = ImportSection::new();
            self.add_charge_import(&mut imports);
            module.section(&imports);
            emitted.imports = true;
        }
        if !emitted.exports && rank > EXPORT_RANK {
            let mut exports = ExportSection::new();
            // Cannot fail: only maps the start index.
            let _ = self.add_exports(&mut exports);
            if !exports.is_empty() {
                module.section(&exports);
            }
            emitted.exports = true;
        }
    }

    /// Re-encodes one payload of the original module.
    fn section(
        &mut self,
        module: &mut wasm_encoder::Module,
        emitted: &mut Emitted,
        wasm: &[u8],
        payload: Payload<'_>,
    ) -> RResult {
        match payload {
            Payload::Version { .. } | Payload::End(_) | Payload::CodeSectionEntry(_) => {}
            Payload::TypeSection(s) => {
                let mut types = TypeSection::new();
                self.parse_type_section(&mut types, s)?;
                self.add_charge_type(&mut types);
                module.section(&types);
                emitted.types = true;
            }
            Payload::ImportSection(s) => {
                let mut imports = ImportSection::new();
                self.parse_import_section(&mut imports, s)?;
                self.add_charge_import(&mut imports);
                module.section(&imports);
                emitted.imports = true;
            }
            Payload::FunctionSection(s) => {
                let mut functions = FunctionSection::new();
                self.parse_function_section(&mut functions, s)?;
                module.section(&functions);
            }
            Payload::TableSection(s) => {
                let mut tables = TableSection::new();
                self.parse_table_section(&mut tables, s)?;
                module.section(&tables);
            }
            Payload::MemorySection(s) => {
                let mut memories = MemorySection::new();
                self.parse_memory_section(&mut memories, s)?;
                module.section(&memories);
            }
            Payload::TagSection(s) => {
                let mut tags = TagSection::new();
                self.parse_tag_section(&mut tags, s)?;
                module.section(&tags);
            }
            Payload::GlobalSection(s) => {
                let mut globals = GlobalSection::new();
                self.parse_global_section(&mut globals, s)?;
                module.section(&globals);
            }
            Payload::ExportSection(s) => {
                let mut exports = ExportSection::new();
                self.parse_export_section(&mut exports, s)?;
                self.add_exports(&mut exports)?;
                module.section(&exports);
                emitted.exports = true;
            }
            // Removed: the start function is exported instead (see `add_exports`).
            Payload::StartSection { .. } => {}
            Payload::ElementSection(s) => {
                let mut elements = ElementSection::new();
                self.parse_element_section(&mut elements, s)?;
                module.section(&elements);
            }
            Payload::DataCountSection { count, .. } => {
                module.section(&DataCountSection { count });
            }
            Payload::DataSection(s) => {
                let mut data = DataSection::new();
                self.parse_data_section(&mut data, s)?;
                module.section(&data);
            }
            Payload::CodeSectionStart { range, .. } => {
                let bytes = wasm
                    .get(range.clone())
                    .ok_or(ReencodeError::InvalidCodeSectionSize)?;
                let reader = CodeSectionReader::new(BinaryReader::new(bytes, range.start))?;
                let mut code = CodeSection::new();
                self.parse_code_section(&mut code, reader)?;
                module.section(&code);
            }
            Payload::CustomSection(s) => self.parse_custom_section(module, s)?,
            other => match other.as_section() {
                Some((id, range)) if id != 0 => {
                    let data = wasm
                        .get(range)
                        .ok_or(ReencodeError::InvalidCodeSectionSize)?;
                    module.section(&RawSection { id, data });
                }
                _ => return Err(ReencodeError::UnexpectedNonCoreModuleSection),
            },
        }
        Ok(())
    }

    /// For a bulk operation: whether its length operand is an i64 (`Some(true)`) or an
    /// i32 (`Some(false)`); `None` for every other operator.
    fn bulk_len_is_i64(&self, op: &Operator<'_>) -> Option<bool> {
        let table64 = |t: u32| self.shape.table64.get(t as usize).copied().unwrap_or(false);
        match op {
            // Lengths follow the index type of the memory/table; for copies between two
            // of them the narrower one; segment lengths (`*.init`) are always i32.
            Operator::MemoryFill { .. } => Some(self.shape.memory64),
            Operator::MemoryCopy { .. } => Some(self.shape.memory64),
            Operator::MemoryInit { .. } => Some(false),
            Operator::TableFill { table } => Some(table64(*table)),
            Operator::TableCopy {
                dst_table,
                src_table,
            } => Some(table64(*dst_table) && table64(*src_table)),
            Operator::TableInit { .. } => Some(false),
            _ => None,
        }
    }
}

impl Reencode for Rewriter {
    type Error = String;

    fn function_index(&mut self, func: u32) -> RResult<u32> {
        // The charge import is inserted at index `charge_func`, after the original imports.
        Ok(if func >= self.charge_func {
            func + 1
        } else {
            func
        })
    }

    fn parse_data(&mut self, data: &mut DataSection, datum: wasmparser::Data<'_>) -> RResult {
        match datum.kind {
            DataKind::Active {
                memory_index: 0,
                offset_expr,
            } => {
                let Some(offset) = const_offset(&offset_expr) else {
                    return user_error(format!(
                        "active data segment at byte {} has a non-constant offset",
                        datum.range.start
                    ));
                };
                self.data_segments.push((offset, datum.data.to_vec()));
                data.passive(std::iter::empty());
                Ok(())
            }
            _ => wasm_encoder::reencode::utils::parse_data(self, data, datum),
        }
    }

    fn parse_function_body(
        &mut self,
        code: &mut CodeSection,
        func: wasmparser::FunctionBody<'_>,
    ) -> RResult {
        let Some(&type_index) = self.shape.defined_func_types.get(self.code_index) else {
            return user_error("more function bodies than functions");
        };
        self.code_index += 1;
        let params = self
            .shape
            .type_params
            .get(type_index as usize)
            .copied()
            .unwrap_or(0);

        let mut locals = Vec::new();
        let mut num_locals = u64::from(params);
        for pair in func.get_locals_reader()? {
            let (count, ty) = pair?;
            num_locals += u64::from(count);
            locals.push((count, self.val_type(ty)?));
        }

        // First pass: which scratch locals (i32 and/or i64 lengths) does this body need?
        let (mut need32, mut need64) = (false, false);
        let mut ops = func.get_operators_reader()?;
        while !ops.eof() {
            match self.bulk_len_is_i64(&ops.read()?) {
                Some(true) => need64 = true,
                Some(false) => need32 = true,
                None => {}
            }
        }
        let Ok(scratch32) = u32::try_from(num_locals) else {
            return user_error("too many locals");
        };
        let scratch64 = scratch32 + u32::from(need32);
        if need32 {
            locals.push((1, wasm_encoder::ValType::I32));
        }
        if need64 {
            locals.push((1, wasm_encoder::ValType::I64));
        }

        let mut f = wasm_encoder::Function::new(locals);
        let mut ops = func.get_operators_reader()?;
        while !ops.eof() {
            let op = ops.read()?;
            if let Some(is_i64) = self.bulk_len_is_i64(&op) {
                // [.. len] -> [.. len] with charge_bytes(len as i64) called.
                if is_i64 {
                    f.instruction(&Instruction::LocalTee(scratch64));
                    f.instruction(&Instruction::LocalGet(scratch64));
                } else {
                    f.instruction(&Instruction::LocalTee(scratch32));
                    f.instruction(&Instruction::LocalGet(scratch32));
                    f.instruction(&Instruction::I64ExtendI32U);
                }
                f.instruction(&Instruction::Call(self.charge_func));
                self.charge_sites += 1;
            }
            f.instruction(&self.instruction(op)?);
        }
        code.function(&f);
        Ok(())
    }

    fn parse_custom_section(
        &mut self,
        module: &mut wasm_encoder::Module,
        section: wasmparser::CustomSectionReader<'_>,
    ) -> RResult {
        match section.as_known() {
            // Function indices in the name section shift too. A malformed name section
            // (custom sections are not validated) is dropped: it is debug info only.
            KnownCustom::Name(names) => {
                if let Ok(names) = self.custom_name_section(names) {
                    module.section(&names);
                }
            }
            _ => {
                module.section(&self.custom_section(section)?);
            }
        }
        Ok(())
    }
}
