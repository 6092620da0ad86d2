//! The Wasm modules the benchmarks run: small WAT canisters and a generated
//! ~2 MiB module.

use wasm_encoder::{
    CodeSection, ConstExpr, DataSection, ExportKind, ExportSection, Function, FunctionSection, InstructionSink, MemArg,
    MemorySection, MemoryType, Module, TypeSection, ValType,
};

/// A counter in WAT: the engine-level equivalent of the Rust counter's `inc`
/// (one store, one global, a 4-byte reply), plus probes:
///
/// - `noop`: does nothing (no write, no reply): the fixed cost of an execution;
/// - `touch_<k>`: writes one word into each of `k` distinct 4 KiB pages
///   (k = 1, 4, 16, 64), so the per-dirty-page cost is the slope.
pub fn counter_wat() -> String {
    let mut touches = String::new();
    for k in [1u32, 4, 16, 64] {
        touches.push_str(&format!(
            r#"
  (func (export "canister_update touch_{k}") (call $touch (i32.const {k})))"#
        ));
    }
    format!(
        r#"
(module
  (import "ic0" "msg_reply_data_append" (func $append (param i32 i32)))
  (import "ic0" "msg_reply" (func $reply))
  ;; 8 Wasm pages = 128 OS pages; touch_* writes pages 16..16+k.
  (memory 8)
  (global $calls (mut i32) (i32.const 0))
  (func (export "canister_update inc")
    (i32.store (i32.const 0) (i32.add (i32.load (i32.const 0)) (i32.const 1)))
    (global.set $calls (i32.add (global.get $calls) (i32.const 1)))
    (call $append (i32.const 0) (i32.const 4))
    (call $reply))
  (func (export "canister_update noop"))
  (func $touch (param $k i32)
    (local $i i32)
    (global.set $calls (i32.add (global.get $calls) (i32.const 1)))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $k)))
        (i32.store
          (i32.mul (i32.add (local.get $i) (i32.const 16)) (i32.const 4096))
          (global.get $calls))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next))))
  {touches}
)"#
    )
}

/// A canister with a heap of `wasm_pages` 64 KiB pages:
///
/// - `fill`: writes a distinct non-zero word into every 4 KiB page (setup:
///   after it, every page is resident and stored in the page map);
/// - `write_page`: fills one whole 4 KiB page (`memory.fill`), a different
///   one each call (page = n * 7919 mod pages), with a non-zero byte.
pub fn heap_wat(wasm_pages: u32) -> String {
    let os_pages = wasm_pages * 16;
    format!(
        r#"
(module
  (memory {wasm_pages})
  (global $n (mut i32) (i32.const 0))
  (func (export "canister_update fill")
    (local $p i32)
    (loop $next
      (i32.store (i32.mul (local.get $p) (i32.const 4096)) (i32.add (local.get $p) (i32.const 1)))
      (local.set $p (i32.add (local.get $p) (i32.const 1)))
      (br_if $next (i32.lt_u (local.get $p) (i32.const {os_pages})))))
  (func (export "canister_update write_page")
    (local $page i32)
    (global.set $n (i32.add (global.get $n) (i32.const 1)))
    (local.set $page (i32.rem_u (i32.mul (global.get $n) (i32.const 7919)) (i32.const {os_pages})))
    (memory.fill
      (i32.mul (local.get $page) (i32.const 4096))
      (i32.or (i32.and (global.get $n) (i32.const 255)) (i32.const 1))
      (i32.const 4096)))
)"#
    )
}

/// A CPU-bound loop with loads, stores, branches and calls. No imports, so
/// the same bytes run on Cairn's engine (as `canister_update run`) and on
/// plain wasmtime. Each iteration executes 49 Wasm operators; the array
/// is 32 KiB (8 OS pages).
pub fn cpu_loop_wat(iterations: u32) -> String {
    cpu_loop_wat_with(iterations, true)
}

/// [`cpu_loop_wat`], optionally with `mix` inlined by hand (`call = false`):
/// the same work without a call per iteration.
pub fn cpu_loop_wat_with(iterations: u32, call: bool) -> String {
    let mix = if call {
        "(call $mix (local.get $v) (local.get $i))"
    } else {
        "(i32.mul (i32.xor (local.get $v) (local.get $i)) (i32.const 16777619))"
    };
    format!(
        r#"
(module
  (memory 1)
  (func $mix (param $a i32) (param $b i32) (result i32)
    (i32.mul (i32.xor (local.get $a) (local.get $b)) (i32.const 16777619)))
  (func (export "canister_update run")
    (local $i i32) (local $v i32) (local $acc i32) (local $x i64)
    (loop $l
      ;; v = a[i mod 8192]
      (local.set $v (i32.load (i32.shl (i32.and (local.get $i) (i32.const 8191)) (i32.const 2))))
      ;; v = mix(v, i)
      (local.set $v {mix})
      ;; a data-dependent branch
      (if (i32.and (local.get $v) (i32.const 1))
        (then (local.set $v (i32.xor (local.get $v) (i32.const 0x9e3779b9))))
        (else (local.set $v (i32.rotl (local.get $v) (i32.const 5)))))
      ;; a[v mod 8192] = v + i
      (i32.store
        (i32.shl (i32.and (local.get $v) (i32.const 8191)) (i32.const 2))
        (i32.add (local.get $v) (local.get $i)))
      (local.set $x (i64.add (local.get $x) (i64.extend_i32_u (local.get $v))))
      (local.set $acc (i32.add (local.get $acc) (local.get $v)))
      (br_if $l (i32.lt_u
        (local.tee $i (i32.add (local.get $i) (i32.const 1)))
        (i32.const {iterations}))))
    (i64.store (i32.const 32768) (local.get $x))
    (i32.store (i32.const 32776) (local.get $acc)))
)"#
    )
}

/// Wasm operators executed per iteration of [`cpu_loop_wat`], counted by
/// hand: load 7, call 4 + callee 5, branch 4 + arm 4, store 9, i64 sum 5,
/// i32 sum 4, loop test 7 (not counting `end`s).
pub const CPU_LOOP_OPS_PER_ITERATION: u64 = 49;

/// Sizes of a generated module.
#[derive(Clone, Copy, Debug)]
pub struct BigModule {
    pub total_bytes: usize,
    pub code_bytes: usize,
    pub data_bytes: usize,
    pub functions: u32,
}

/// A module of about `target_bytes` (e.g. 2 MiB) that is almost entirely
/// code: many functions of ~500 bytes each with arithmetic, loads, stores,
/// branches, loops and calls, plus a 64 KiB data segment, `canister_init`
/// and `canister_update inc`. `seed` changes the constants (and so the hash).
pub fn big_module(target_bytes: usize, seed: u32) -> (Vec<u8>, BigModule) {
    const DATA: usize = 64 * 1024;
    let mut rng = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 17;
        rng ^= rng << 5;
        rng
    };
    let mem = |offset: u64| MemArg { offset, align: 2, memory_index: 0 };
    // Generate bodies until the code reaches the budget.
    let budget = target_bytes - DATA - 1024;
    let mut bodies: Vec<Function> = Vec::new();
    let mut code_bytes = 0usize;
    while code_bytes < budget {
        let index = bodies.len() as u32;
        // locals 0,1: params; 2,3,4: i32 scratch.
        let mut f = Function::new([(3, ValType::I32)]);
        {
            let mut s: InstructionSink = f.instructions();
            for block in 0..12u32 {
                let (c1, c2, c3) = (next() as i32, next() as i32 | 1, (next() % 31) as i32);
                s.local_get(0)
                    .i32_const(c1)
                    .i32_add()
                    .local_get(1)
                    .i32_xor()
                    .i32_const(c2)
                    .i32_mul()
                    .local_tee(2)
                    .i32_const(0xfffc)
                    .i32_and()
                    .i32_load(mem(0))
                    .local_get(2)
                    .i32_add()
                    .local_set(3);
                s.local_get(3).i32_const(c3).i32_shr_u().local_get(2).i32_rotl().local_set(0);
                s.local_get(3).i32_const(1).i32_and().if_(wasm_encoder::BlockType::Empty);
                if index > 0 && block % 4 == 0 {
                    // Call an earlier function (never executed at init).
                    s.local_get(0).local_get(1).call(index - 1 - (next() % index.min(8))).local_set(1);
                } else {
                    s.local_get(1).i32_const(c1 ^ c2).i32_xor().local_set(1);
                }
                s.else_().local_get(2).i32_const(0x3ffc).i32_and().local_get(0).i32_store(mem(4)).end();
                if block % 6 == 5 {
                    // A short counted loop.
                    s.i32_const(4).local_set(4);
                    s.loop_(wasm_encoder::BlockType::Empty)
                        .local_get(0)
                        .local_get(4)
                        .i32_mul()
                        .local_get(1)
                        .i32_add()
                        .local_set(0)
                        .local_get(4)
                        .i32_const(1)
                        .i32_sub()
                        .local_tee(4)
                        .br_if(0)
                        .end();
                }
            }
            s.local_get(0).local_get(1).i32_add().end();
        }
        code_bytes += f.byte_len() + 3;
        bodies.push(f);
    }
    let functions = bodies.len() as u32;

    let mut module = Module::new();
    let mut types = TypeSection::new();
    types.ty().function([ValType::I32, ValType::I32], [ValType::I32]); // 0: worker
    types.ty().function([], []); // 1: entry points
    module.section(&types);

    let mut funcs = FunctionSection::new();
    for _ in 0..functions {
        funcs.function(0);
    }
    funcs.function(1); // canister_init
    funcs.function(1); // canister_update inc
    module.section(&funcs);

    let mut memories = MemorySection::new();
    memories.memory(MemoryType { minimum: 2, maximum: None, memory64: false, shared: false, page_size_log2: None });
    module.section(&memories);

    let mut exports = ExportSection::new();
    exports.export("canister_init", ExportKind::Func, functions);
    exports.export("canister_update inc", ExportKind::Func, functions + 1);
    module.section(&exports);

    let mut code = CodeSection::new();
    for f in &bodies {
        code.function(f);
    }
    // canister_init: calls the first two workers once (the call graph of
    // the later ones fans out exponentially, so they are never executed).
    let mut init = Function::new([]);
    init.instructions()
        .i32_const(0x10000)
        .i32_const(1)
        .i32_const(2)
        .call(0)
        .i32_store(mem(0))
        .i32_const(0x10004)
        .i32_const(3)
        .i32_const(4)
        .call(1)
        .i32_store(mem(0))
        .end();
    code.function(&init);
    let mut inc = Function::new([]);
    inc.instructions()
        .i32_const(0x10008)
        .i32_const(0x10008)
        .i32_load(mem(0))
        .i32_const(1)
        .i32_add()
        .i32_store(mem(0))
        .end();
    code.function(&inc);
    module.section(&code);

    let mut data = DataSection::new();
    let bytes: Vec<u8> = (0..DATA).map(|i| (next() as usize ^ i) as u8).collect();
    data.active(0, &ConstExpr::i32_const(0), bytes);
    module.section(&data);

    let wasm = module.finish();
    let info = BigModule { total_bytes: wasm.len(), code_bytes, data_bytes: DATA, functions };
    (wasm, info)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modules_validate() {
        for wat in [counter_wat(), heap_wat(16), cpu_loop_wat(1000)] {
            let wasm = wat::parse_str(&wat).unwrap();
            wasmparser::Validator::new().validate_all(&wasm).unwrap();
        }
        let (wasm, info) = big_module(256 * 1024, 1);
        wasmparser::Validator::new().validate_all(&wasm).unwrap();
        assert!(info.total_bytes <= 256 * 1024 + 4096, "{info:?}");
        assert!(info.code_bytes > 150 * 1024, "{info:?}");
    }
}
