//! Validation: full Wasm validation plus the IC's canister module rules (digest §7).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use wasmparser::{
    DataKind, ExternalKind, FuncValidatorAllocations, Operator, Parser, Payload, TypeRef, ValidPayload, Validator,
    WasmFeatures, types::Types,
};

use crate::decode::{DEFAULT_MAX_MODULE_SIZE, WASM_MAGIC};
use crate::error::{ModuleError, hex_prefix};
use crate::ic0::{self, IC0_MODULE, ValType};

/// The Wasm proposals Cairn accepts, and nothing else.
///
/// What real canisters need (research `real-clients.md` §1): Rust uses bulk-memory,
/// multi-value, mutable-globals, non-trapping float-to-int, reference-types and sign-ext;
/// Motoko additionally memory64 with 64-bit tables. Fixed-width SIMD is deterministic
/// with NaN canonicalisation, which the engine turns on. Everything else is off: threads
/// and relaxed-simd are nondeterministic; tail-call, exceptions, gc, function-references,
/// multi-memory, extended-const, custom-page-sizes, wide-arithmetic, stack-switching,
/// memory-control and the component model are not part of the IC's execution
/// environment. The engine should configure wasmtime with the same set.
pub fn wasm_features() -> WasmFeatures {
    // `FLOATS` and `GC_TYPES` are wasmparser's "built-in" gates for float instructions
    // and `externref` (the latter also needs reference-types); they are not proposals.
    WasmFeatures::FLOATS
        | WasmFeatures::GC_TYPES
        | WasmFeatures::MUTABLE_GLOBAL
        | WasmFeatures::SATURATING_FLOAT_TO_INT
        | WasmFeatures::SIGN_EXTENSION
        | WasmFeatures::MULTI_VALUE
        | WasmFeatures::BULK_MEMORY
        | WasmFeatures::REFERENCE_TYPES
        | WasmFeatures::SIMD
        | WasmFeatures::MEMORY64
}

/// Size limits a module must respect, with the IC's values as defaults.
///
/// Configurable so tests (and a future registry setting) can lower them; every default
/// below names where the number comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleLimits {
    /// Largest accepted (decompressed) module in bytes. Default 100 MiB: `WASM_MAX_SIZE` in
    /// the IC's `rs/config/src/embedders.rs`; digest §7.
    pub max_module_size: u64,
    /// Most defined functions. Default 50,000: `MAX_FUNCTIONS` in
    /// `rs/config/src/embedders.rs`; digest §7.
    pub max_functions: usize,
    /// Most defined globals. Default 1,000: `MAX_GLOBALS` in `rs/config/src/embedders.rs`
    /// (every global costs save/restore time per message); digest §7.
    pub max_globals: usize,
    /// Most `canister_update|query|composite_query <name>` exports. Default 1,000:
    /// `MAX_NUMBER_EXPORTED_FUNCTIONS` in `rs/config/src/embedders.rs`; digest §7.
    pub max_exported_methods: usize,
    /// Largest sum of the `<name>` lengths of those exports, in bytes. Default 20,000:
    /// `MAX_SUM_EXPORTED_FUNCTION_NAME_LENGTHS` in `rs/config/src/embedders.rs`; digest §7.
    pub max_method_name_bytes: usize,
    /// Most `icp:public`/`icp:private` custom sections. Default 16: `MAX_CUSTOM_SECTIONS`
    /// in `rs/config/src/embedders.rs`; digest §7.
    pub max_custom_sections: usize,
    /// Largest total size of those sections (payloads plus `<name>`s, as the IC counts it).
    /// Default 1 MiB: `MAX_CUSTOM_SECTIONS_SIZE` in `rs/config/src/embedders.rs`; digest §7.
    pub max_custom_sections_size: u64,
    /// Most instructions in one function body. Default 1,000,000:
    /// `WASM_FUNCTION_SIZE_LIMIT` in `rs/embedders/src/wasm_utils/validation.rs`; digest §7.
    pub max_function_instructions: u64,
    /// Largest code section in bytes. Default 10 MiB: `MAX_CODE_SECTION_SIZE_IN_BYTES` in
    /// `rs/embedders/src/wasm_utils/validation.rs`; digest §7.
    pub max_code_section_size: u64,
}

impl Default for ModuleLimits {
    fn default() -> Self {
        ModuleLimits {
            max_module_size: DEFAULT_MAX_MODULE_SIZE,
            max_functions: 50_000,
            max_globals: 1_000,
            max_exported_methods: 1_000,
            max_method_name_bytes: 20_000,
            max_custom_sections: 16,
            max_custom_sections_size: 1024 * 1024,
            max_function_instructions: 1_000_000,
            max_code_section_size: 10 * 1024 * 1024,
        }
    }
}

/// The entry points the system calls that are not user methods (digest §7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SystemMethod {
    /// `canister_init`
    Init,
    /// `canister_pre_upgrade`
    PreUpgrade,
    /// `canister_post_upgrade`
    PostUpgrade,
    /// `canister_inspect_message`
    InspectMessage,
    /// `canister_heartbeat`
    Heartbeat,
    /// `canister_global_timer`
    GlobalTimer,
    /// `canister_on_low_wasm_memory`
    OnLowWasmMemory,
}

impl SystemMethod {
    /// All system methods.
    pub const ALL: [SystemMethod; 7] = [
        SystemMethod::Init,
        SystemMethod::PreUpgrade,
        SystemMethod::PostUpgrade,
        SystemMethod::InspectMessage,
        SystemMethod::Heartbeat,
        SystemMethod::GlobalTimer,
        SystemMethod::OnLowWasmMemory,
    ];

    /// The export name the engine calls.
    pub fn export_name(self) -> &'static str {
        match self {
            SystemMethod::Init => "canister_init",
            SystemMethod::PreUpgrade => "canister_pre_upgrade",
            SystemMethod::PostUpgrade => "canister_post_upgrade",
            SystemMethod::InspectMessage => "canister_inspect_message",
            SystemMethod::Heartbeat => "canister_heartbeat",
            SystemMethod::GlobalTimer => "canister_global_timer",
            SystemMethod::OnLowWasmMemory => "canister_on_low_wasm_memory",
        }
    }

    /// The system method exported under `name`, if any.
    pub fn from_export_name(name: &str) -> Option<SystemMethod> {
        SystemMethod::ALL.into_iter().find(|m| m.export_name() == name)
    }
}

/// The kind of a user-callable method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MethodKind {
    /// `canister_update <name>`
    Update,
    /// `canister_query <name>`
    Query,
    /// `canister_composite_query <name>`
    CompositeQuery,
}

impl MethodKind {
    /// The export name prefix including the single space, e.g. `"canister_query "`.
    pub fn export_prefix(self) -> &'static str {
        match self {
            MethodKind::Update => "canister_update ",
            MethodKind::Query => "canister_query ",
            MethodKind::CompositeQuery => "canister_composite_query ",
        }
    }

    /// The export name for method `name` of this kind.
    pub fn export_name(self, name: &str) -> String {
        format!("{}{name}", self.export_prefix())
    }

    /// Splits an export name into kind and method name, if it is a method export.
    pub fn parse_export(export: &str) -> Option<(MethodKind, &str)> {
        [MethodKind::Update, MethodKind::Query, MethodKind::CompositeQuery]
            .into_iter()
            .find_map(|k| export.strip_prefix(k.export_prefix()).map(|n| (k, n)))
    }
}

/// Visibility of an `icp:` custom section: who may read it via `read_state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Visibility {
    /// `icp:public <name>`: anyone.
    Public,
    /// `icp:private <name>`: controllers only.
    Private,
}

/// One `icp:` custom section: the engine/state layer serves it under
/// `/canister/<id>/metadata/<name>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomSection {
    /// Public or private.
    pub visibility: Visibility,
    /// The section payload.
    pub content: Vec<u8>,
}

/// The module's linear memory limits, in 64 KiB Wasm pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryLimits {
    /// Pages at instantiation.
    pub initial_pages: u64,
    /// Declared maximum, if any.
    pub maximum_pages: Option<u64>,
}

/// What the engine needs to know about a validated module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleInfo {
    /// The memory is memory64, so the pointer type `I` is i64 (digest §7/§8).
    pub memory64: bool,
    /// The single memory's limits; `None` if the module has no memory.
    pub memory: Option<MemoryLimits>,
    /// Names `n` of `canister_update n` exports.
    pub update_methods: BTreeSet<String>,
    /// Names `n` of `canister_query n` exports.
    pub query_methods: BTreeSet<String>,
    /// Names `n` of `canister_composite_query n` exports.
    pub composite_query_methods: BTreeSet<String>,
    /// Which system entry points are exported.
    pub system_methods: BTreeSet<SystemMethod>,
    /// The `icp:public|private <name>` sections, by `<name>`.
    pub custom_sections: BTreeMap<String, CustomSection>,
    /// The module has a `(start)` function.
    pub has_start: bool,
    /// Defined (non-imported) functions.
    pub num_functions: u32,
    /// Imported functions (all from `ic0`).
    pub num_imported_functions: u32,
    /// Defined globals (imports of globals are rejected).
    pub num_globals: u32,
    /// Some function uses `table.set`, `table.grow`, `table.fill`, `table.copy`,
    /// `table.init` or `elem.drop`. Table state is not persisted on the IC, so the engine
    /// must re-instantiate such modules per message instead of reusing an instance.
    pub mutates_tables: bool,
    /// The `ic0` functions the module imports, in import order (with repetitions if the
    /// module imports one twice).
    pub ic0_imports: Vec<String>,
    /// Instructions in the largest function body (the IC charges compilation by it).
    pub largest_function_instructions: u64,
}

impl ModuleInfo {
    /// The kind of the user method `name`, if exported.
    pub fn method_kind(&self, name: &str) -> Option<MethodKind> {
        if self.update_methods.contains(name) {
            Some(MethodKind::Update)
        } else if self.query_methods.contains(name) {
            Some(MethodKind::Query)
        } else if self.composite_query_methods.contains(name) {
            Some(MethodKind::CompositeQuery)
        } else {
            None
        }
    }

    /// Whether the system method is exported.
    pub fn has_system_method(&self, method: SystemMethod) -> bool {
        self.system_methods.contains(&method)
    }
}

/// Export names starting with this prefix are reserved for instrumentation.
pub const RESERVED_EXPORT_PREFIX: &str = "__cairn";

/// Export names the IC reserves for its own instrumentation (`RESERVED_SYMBOLS` in the IC's
/// validation); rejected for compatibility so a module accepted here is accepted there.
const IC_RESERVED_EXPORTS: &[&str] = &["canister counter_instructions", "canister_start"];

/// Bytes per Wasm page.
pub const WASM_PAGE_SIZE: u64 = 65536;

/// Validates a decoded Wasm binary (the output of [`crate::decode_module`]) against the Wasm spec (with [`wasm_features`]) and the
/// IC's canister module rules, and describes it.
///
/// Rejections carry the rule that failed; see [`ModuleError`].
pub fn validate(wasm: &[u8], limits: &ModuleLimits) -> Result<ModuleInfo, ModuleError> {
    if wasm.len() as u64 > limits.max_module_size {
        return Err(ModuleError::ModuleTooLarge { limit: limits.max_module_size });
    }
    // A gzip upload passed here by mistake gets the same clear error as in decoding.
    if !wasm.starts_with(&WASM_MAGIC) {
        return Err(ModuleError::BadMagic { found: hex_prefix(wasm) });
    }
    let c = collect(wasm, limits)?;
    let types = c.types.as_ref().ok_or_else(|| ModuleError::Invalid("unexpected end of module".into()))?;

    let memory64 = c.memory.is_some_and(|m| m.memory64);

    check_import_signatures(&c, types, memory64)?;
    let methods = check_exports(&c, types, limits)?;
    check_globals(&c, limits)?;
    check_data_segments(&c)?;
    let custom_sections = check_custom_sections(&c, limits)?;

    Ok(ModuleInfo {
        memory64,
        memory: c.memory.map(|m| MemoryLimits { initial_pages: m.initial, maximum_pages: m.maximum }),
        update_methods: methods.update,
        query_methods: methods.query,
        composite_query_methods: methods.composite_query,
        system_methods: methods.system,
        custom_sections,
        has_start: c.has_start,
        num_functions: c.num_defined_functions,
        num_imported_functions: c.func_imports.len() as u32,
        num_globals: c.globals.len() as u32,
        mutates_tables: c.mutates_tables,
        ic0_imports: c.func_imports.iter().map(|i| i.name.clone()).collect(),
        largest_function_instructions: c.largest_function,
    })
}

/// An imported function, already known to come from `ic0` with a known name.
struct FuncImport {
    name: String,
}

/// An active data segment as the validator saw it.
struct ActiveData {
    index: u32,
    memory: u32,
    offset: Option<u64>,
    len: u64,
}

/// Everything the single parsing/validation pass gathers for the rule checks.
#[derive(Default)]
struct Collected<'a> {
    func_imports: Vec<FuncImport>,
    num_defined_functions: u32,
    memory: Option<wasmparser::MemoryType>,
    globals: Vec<wasmparser::GlobalType>,
    exports: Vec<(&'a str, ExternalKind, u32)>,
    has_start: bool,
    active_data: Vec<ActiveData>,
    custom: Vec<(&'a str, &'a [u8])>,
    mutates_tables: bool,
    largest_function: u64,
    types: Option<Types>,
}

fn wp(err: wasmparser::BinaryReaderError) -> ModuleError {
    ModuleError::from_wasmparser(&err)
}

/// One pass over the module: wasmparser validation of every payload and function body,
/// early checks of limits that bound the work (function count, code size, body size),
/// import kinds, and collection of what the later rule checks need.
fn collect<'a>(wasm: &'a [u8], limits: &ModuleLimits) -> Result<Collected<'a>, ModuleError> {
    let mut c = Collected::default();
    let mut validator = Validator::new_with_features(wasm_features());
    let mut allocs = FuncValidatorAllocations::default();
    let mut code_index = 0u32;

    for payload in Parser::new(0).parse_all(wasm) {
        let payload = payload.map_err(wp)?;

        // Checks that must run before wasmparser's so the IC's wording wins.
        match &payload {
            Payload::MemorySection(s) if s.count() > 1 => {
                return Err(ModuleError::TooManyMemories { count: s.count() });
            }
            Payload::FunctionSection(s) if s.count() as usize > limits.max_functions => {
                return Err(ModuleError::TooManyFunctions {
                    defined: s.count() as usize,
                    allowed: limits.max_functions,
                });
            }
            Payload::GlobalSection(s) if s.count() as usize > limits.max_globals => {
                return Err(ModuleError::TooManyGlobals { defined: s.count() as usize, allowed: limits.max_globals });
            }
            Payload::CodeSectionStart { size, .. } if u64::from(*size) > limits.max_code_section_size => {
                return Err(ModuleError::CodeSectionTooLarge {
                    size: u64::from(*size),
                    allowed: limits.max_code_section_size,
                });
            }
            _ => {}
        }

        let valid = validator.payload(&payload).map_err(wp)?;

        match payload {
            Payload::ImportSection(s) => {
                for import in s.into_imports() {
                    let import = import.map_err(wp)?;
                    check_import_kind(&import)?;
                    c.func_imports.push(FuncImport { name: import.name.to_string() });
                }
            }
            Payload::FunctionSection(s) => c.num_defined_functions = s.count(),
            Payload::MemorySection(s) => {
                for m in s {
                    c.memory = Some(m.map_err(wp)?);
                }
            }
            Payload::GlobalSection(s) => {
                for g in s {
                    c.globals.push(g.map_err(wp)?.ty);
                }
            }
            Payload::ExportSection(s) => {
                for e in s {
                    let e = e.map_err(wp)?;
                    c.exports.push((e.name, e.kind, e.index));
                }
            }
            Payload::StartSection { .. } => c.has_start = true,
            Payload::DataSection(s) => {
                for (index, d) in s.into_iter().enumerate() {
                    let d = d.map_err(wp)?;
                    if let DataKind::Active { memory_index, offset_expr } = d.kind {
                        c.active_data.push(ActiveData {
                            index: index as u32,
                            memory: memory_index,
                            offset: const_offset(&offset_expr),
                            len: d.data.len() as u64,
                        });
                    }
                }
            }
            Payload::CustomSection(s) => c.custom.push((s.name(), s.data())),
            Payload::CodeSectionEntry(body) => {
                let index = c.func_imports.len() as u32 + code_index;
                code_index += 1;
                let (count, mutates) = scan_body(&body)?;
                if count > limits.max_function_instructions {
                    return Err(ModuleError::FunctionTooLarge {
                        index,
                        size: count,
                        allowed: limits.max_function_instructions,
                    });
                }
                c.largest_function = c.largest_function.max(count);
                c.mutates_tables |= mutates;
                if let ValidPayload::Func(func, body) = valid {
                    let mut fv = func.into_validator(std::mem::take(&mut allocs));
                    fv.validate(&body).map_err(wp)?;
                    allocs = fv.into_allocations();
                }
            }
            Payload::End(_) => {
                if let ValidPayload::End(types) = valid {
                    c.types = Some(types);
                }
            }
            _ => {}
        }
    }
    Ok(c)
}

/// Counts a body's instructions and notes table-mutating ones.
fn scan_body(body: &wasmparser::FunctionBody<'_>) -> Result<(u64, bool), ModuleError> {
    let mut ops = body.get_operators_reader().map_err(wp)?;
    let mut count = 0u64;
    let mut mutates = false;
    while !ops.eof() {
        let op = ops.read().map_err(wp)?;
        count += 1;
        mutates |= is_table_mutating(&op);
    }
    Ok((count, mutates))
}

/// Instructions that change a table or drop an element segment: state that lives in the
/// instance, not in memory or globals, and so is lost between messages.
pub(crate) fn is_table_mutating(op: &Operator<'_>) -> bool {
    matches!(
        op,
        Operator::TableSet { .. }
            | Operator::TableGrow { .. }
            | Operator::TableFill { .. }
            | Operator::TableCopy { .. }
            | Operator::TableInit { .. }
            | Operator::ElemDrop { .. }
    )
}

/// The value of a data segment offset that is a single `i32.const` or `i64.const`; `None`
/// for anything else. Offsets are unsigned addresses, so the constant is reinterpreted.
pub(crate) fn const_offset(expr: &wasmparser::ConstExpr<'_>) -> Option<u64> {
    let mut ops = expr.get_operators_reader();
    let value = match ops.read().ok()? {
        Operator::I32Const { value } => u64::from(value as u32),
        Operator::I64Const { value } => value as u64,
        _ => return None,
    };
    match ops.read().ok()? {
        Operator::End if ops.eof() => Some(value),
        _ => None,
    }
}

/// Imports may only be `ic0` functions the runtime provides (digest §7).
fn check_import_kind(import: &wasmparser::Import<'_>) -> Result<(), ModuleError> {
    let what = match import.ty {
        TypeRef::Func(_) | TypeRef::FuncExact(_) => None,
        TypeRef::Memory(_) => Some("memories"),
        TypeRef::Table(_) => Some("tables"),
        TypeRef::Global(_) => Some("globals"),
        TypeRef::Tag(_) => Some("tags"),
    };
    if let Some(what) = what {
        return Err(ModuleError::InvalidImport(format!(
            "Importing {what} is not allowed (module imports '{}' from '{}'); \
             a canister may import only functions from 'ic0'.",
            import.name, import.module
        )));
    }
    let known = ic0::ic0_function(import.name).is_some();
    if import.module != IC0_MODULE {
        return Err(ModuleError::InvalidImport(if known {
            format!(
                "Module imports function '{}' from '{}', expected to be imported from 'ic0' instead.",
                import.name, import.module
            )
        } else {
            format!(
                "Module imports function '{}' from '{}' that is not exported by the runtime.",
                import.name, import.module
            )
        }));
    }
    if !known {
        return Err(ModuleError::InvalidImport(format!(
            "Module imports function '{}' from 'ic0' that is not exported by the runtime.",
            import.name
        )));
    }
    Ok(())
}

/// The function type at `func_index` (imports first).
fn func_type(types: &Types, func_index: u32) -> Option<&wasmparser::FuncType> {
    let types_ref = types.as_ref();
    if func_index >= types_ref.function_count() {
        return None;
    }
    let id = types_ref.core_function_at(func_index);
    match &types[id].composite_type.inner {
        wasmparser::CompositeInnerType::Func(f) => Some(f),
        _ => None,
    }
}

fn convert(ty: &wasmparser::ValType) -> Option<ValType> {
    Some(match ty {
        wasmparser::ValType::I32 => ValType::I32,
        wasmparser::ValType::I64 => ValType::I64,
        wasmparser::ValType::F32 => ValType::F32,
        wasmparser::ValType::F64 => ValType::F64,
        wasmparser::ValType::V128 => ValType::V128,
        wasmparser::ValType::Ref(_) => return None,
    })
}

fn fmt_func_type(ty: &wasmparser::FuncType) -> String {
    let list = |tys: &[wasmparser::ValType]| tys.iter().map(|t| t.to_string()).collect::<Vec<_>>().join(", ");
    format!("({}) -> ({})", list(ty.params()), list(ty.results()))
}

fn same_sig(expected: &ic0::FuncSig, found: &wasmparser::FuncType) -> bool {
    let conv = |tys: &[wasmparser::ValType]| tys.iter().map(convert).collect::<Option<Vec<_>>>();
    conv(found.params()).as_ref() == Some(&expected.params) && conv(found.results()).as_ref() == Some(&expected.results)
}

/// Each `ic0` import must have exactly the §8 type for the module's pointer width, and
/// the deprecated 32-bit-only functions are unavailable to memory64 modules.
fn check_import_signatures(c: &Collected<'_>, types: &Types, memory64: bool) -> Result<(), ModuleError> {
    for (index, import) in c.func_imports.iter().enumerate() {
        let Some(expected) = ic0::ic0_signature(&import.name, memory64) else {
            return Err(ModuleError::InvalidImport(format!(
                "Module imports function '{}' from 'ic0', which is only available to 32-bit \
                 (non-memory64) modules.",
                import.name
            )));
        };
        let found = func_type(types, index as u32)
            .ok_or_else(|| ModuleError::Invalid("function import without a function type".into()))?;
        if !same_sig(&expected, found) {
            return Err(ModuleError::WrongImportSignature {
                name: import.name.clone(),
                expected,
                found: fmt_func_type(found),
            });
        }
    }
    Ok(())
}

#[derive(Default)]
struct Methods {
    update: BTreeSet<String>,
    query: BTreeSet<String>,
    composite_query: BTreeSet<String>,
    system: BTreeSet<SystemMethod>,
}

/// The export rules of digest §7 plus the method-count limits.
fn check_exports(c: &Collected<'_>, types: &Types, limits: &ModuleLimits) -> Result<Methods, ModuleError> {
    let mut m = Methods::default();
    let mut seen: HashMap<&str, MethodKind> = HashMap::new();
    let mut name_bytes = 0usize;

    for &(name, kind, index) in &c.exports {
        if name.starts_with(RESERVED_EXPORT_PREFIX) || IC_RESERVED_EXPORTS.contains(&name) {
            return Err(ModuleError::InvalidExport(format!("Exporting reserved symbol '{name}' is not allowed.")));
        }
        let method = MethodKind::parse_export(name);
        let system = SystemMethod::from_export_name(name);
        if method.is_none() && system.is_none() {
            if name.starts_with("canister_") {
                return Err(ModuleError::InvalidExport(format!(
                    "Exporting reserved function '{name}' with \"canister_\" prefix"
                )));
            }
            continue;
        }
        if kind != ExternalKind::Func {
            return Err(ModuleError::InvalidExport(format!(
                "Export '{name}' must be a function, but it exports a {}.",
                match kind {
                    ExternalKind::Memory => "memory",
                    ExternalKind::Table => "table",
                    ExternalKind::Global => "global",
                    ExternalKind::Tag => "tag",
                    _ => "non-function",
                }
            )));
        }
        let ty = func_type(types, index)
            .ok_or_else(|| ModuleError::Invalid(format!("export '{name}' has no function type")))?;
        if !ty.params().is_empty() || !ty.results().is_empty() {
            return Err(ModuleError::InvalidExport(format!(
                "Function '{name}' must have type () -> (), found {}.",
                fmt_func_type(ty)
            )));
        }
        if let Some(s) = system {
            m.system.insert(s);
        }
        if let Some((kind, method_name)) = method {
            if seen.insert(method_name, kind).is_some() {
                return Err(ModuleError::DuplicateMethod(method_name.to_string()));
            }
            name_bytes += method_name.len();
            let set = match kind {
                MethodKind::Update => &mut m.update,
                MethodKind::Query => &mut m.query,
                MethodKind::CompositeQuery => &mut m.composite_query,
            };
            set.insert(method_name.to_string());
        }
    }
    if seen.len() > limits.max_exported_methods {
        return Err(ModuleError::TooManyMethods { count: seen.len(), allowed: limits.max_exported_methods });
    }
    if name_bytes > limits.max_method_name_bytes {
        return Err(ModuleError::MethodNamesTooLong { total: name_bytes, allowed: limits.max_method_name_bytes });
    }
    Ok(m)
}

/// Globals must be numeric: the engine saves and restores every mutable global between
/// messages, and references cannot outlive their instance. The IC likewise rejects
/// reference-typed globals (it allows i32/i64/f32/f64; v128 is allowed here since SIMD is).
fn check_globals(c: &Collected<'_>, limits: &ModuleLimits) -> Result<(), ModuleError> {
    if c.globals.len() > limits.max_globals {
        return Err(ModuleError::TooManyGlobals { defined: c.globals.len(), allowed: limits.max_globals });
    }
    for (index, g) in c.globals.iter().enumerate() {
        if convert(&g.content_type).is_none() {
            return Err(ModuleError::UnsupportedGlobalType { index: index as u32, ty: g.content_type.to_string() });
        }
    }
    Ok(())
}

/// Active data segments are applied once at install by the engine (instrumentation
/// removes them), so their offsets must be plain constants, and a segment that would make
/// instantiation trap is rejected up front.
fn check_data_segments(c: &Collected<'_>) -> Result<(), ModuleError> {
    let memory_bytes = c.memory.map(|m| m.initial.saturating_mul(WASM_PAGE_SIZE)).unwrap_or(0);
    for d in &c.active_data {
        if d.memory != 0 {
            return Err(ModuleError::InvalidDataSegment(format!(
                "Data segment {} targets memory {}; only memory 0 exists.",
                d.index, d.memory
            )));
        }
        let Some(offset) = d.offset else {
            return Err(ModuleError::InvalidDataSegment(format!(
                "Data segment {} has an offset that is not a single i32.const or i64.const.",
                d.index
            )));
        };
        if offset.checked_add(d.len).is_none_or(|end| end > memory_bytes) {
            return Err(ModuleError::InvalidDataSegment(format!(
                "Data segment {} (offset {offset}, {} bytes) does not fit into the initial \
                 memory of {memory_bytes} bytes.",
                d.index, d.len
            )));
        }
    }
    Ok(())
}

/// `icp:` custom sections: `icp:public <name>` or `icp:private <name>`, each `<name>` once,
/// at most `max_custom_sections` of them and `max_custom_sections_size` bytes in total
/// (the IC counts payload plus `<name>`). Other custom sections are not restricted.
fn check_custom_sections(
    c: &Collected<'_>,
    limits: &ModuleLimits,
) -> Result<BTreeMap<String, CustomSection>, ModuleError> {
    let mut out: BTreeMap<String, CustomSection> = BTreeMap::new();
    let mut total = 0u64;
    for &(section_name, data) in &c.custom {
        if !section_name.starts_with("icp:") {
            continue;
        }
        let (name, visibility) = if let Some(n) = section_name.strip_prefix("icp:public ") {
            (n, Visibility::Public)
        } else if let Some(n) = section_name.strip_prefix("icp:private ") {
            (n, Visibility::Private)
        } else if section_name == "icp:public" || section_name == "icp:private" {
            return Err(ModuleError::InvalidCustomSection(
                "'icp:' section names must have a space after the public/private scope.".to_string(),
            ));
        } else {
            return Err(ModuleError::InvalidCustomSection(format!(
                "Custom section '{section_name}' has no public/private scope defined."
            )));
        };
        if out.contains_key(name) {
            return Err(ModuleError::InvalidCustomSection(format!(
                "Custom section name '{name}' is defined more than once."
            )));
        }
        total += (data.len() + name.len()) as u64;
        if total > limits.max_custom_sections_size {
            return Err(ModuleError::CustomSectionsTooLarge { size: total, allowed: limits.max_custom_sections_size });
        }
        out.insert(name.to_string(), CustomSection { visibility, content: data.to_vec() });
        if out.len() > limits.max_custom_sections {
            return Err(ModuleError::TooManyCustomSections { defined: out.len(), allowed: limits.max_custom_sections });
        }
    }
    Ok(out)
}
