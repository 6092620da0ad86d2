//! Runs instrumented modules in wasmtime (as the engine will) to check that the rewrite
//! preserves behaviour: data segments, start, globals, tables and function indices, and
//! that bulk operations are still metered by length — by wasmtime's fuel, not by
//! instrumentation.

use cairn_wasm_module::{InstrumentedModule, MEMORY_EXPORT, ModuleLimits, START_EXPORT, TABLE_EXPORT, prepare};
use wasmtime::{Config, Engine, Instance, Linker, Module, Ref, Store, Val};

/// Host state: the replies seen.
#[derive(Default)]
struct Host {
    replies: u32,
}

fn engine() -> Engine {
    let mut config = Config::new();
    config.wasm_memory64(true);
    config.wasm_bulk_memory(true);
    config.wasm_simd(true);
    Engine::new(&config).unwrap()
}

fn linker(engine: &Engine) -> Linker<Host> {
    let mut l = Linker::new(engine);
    l.func_wrap("ic0", "msg_reply", |mut c: wasmtime::Caller<'_, Host>| {
        c.data_mut().replies += 1;
    })
    .unwrap();
    l.func_wrap("ic0", "debug_print", |_: i32, _: i32| {}).unwrap();
    l
}

fn prepared(src: &str) -> InstrumentedModule {
    let wasm = wat::parse_str(src).unwrap();
    prepare(&wasm, &ModuleLimits::default()).unwrap().1
}

/// Instantiates without touching memory: what the engine does for every message.
fn instantiate(engine: &Engine, m: &InstrumentedModule) -> (Store<Host>, Instance) {
    let module = Module::new(engine, &m.bytes).unwrap();
    let mut store = Store::new(engine, Host::default());
    let instance = linker(engine).instantiate(&mut store, &module).unwrap();
    (store, instance)
}

/// Instantiates and initialises: what the engine does once at install.
fn install(engine: &Engine, m: &InstrumentedModule) -> (Store<Host>, Instance) {
    let (mut store, instance) = instantiate(engine, m);
    let memory = instance.get_memory(&mut store, MEMORY_EXPORT).unwrap();
    for (offset, bytes) in &m.data_segments {
        memory.write(&mut store, *offset as usize, bytes).unwrap();
    }
    if m.has_start {
        instance.get_typed_func::<(), ()>(&mut store, START_EXPORT).unwrap().call(&mut store, ()).unwrap();
    }
    (store, instance)
}

const MODULE: &str = r#"(module
  (import "ic0" "msg_reply" (func $reply))
  (import "ic0" "debug_print" (func $print (param i32 i32)))
  (type $t (func (result i32)))
  (memory (export "memory") 1)
  (table 3 funcref)
  (global $sp (mut i32) (i32.const 1024))
  (global $k i32 (i32.const 5))
  (global $counter (mut i64) (i64.const 0))
  (data (i32.const 16) "hello")
  (data $p "passive")
  (data (i32.const 100) "world")
  (elem (i32.const 0) $a $b)
  (elem declare func $c)
  (func $a (type $t) (i32.const 1))
  (func $b (type $t) (i32.add (call $a) (i32.const 1)))
  (func $c (type $t) (i32.const 3))
  (func $start (global.set $sp (i32.const 2048)))
  (func (export "canister_update go") (local $x i32)
    ;; table[2] := $c; then call through all three slots: 1 + 2 + 3
    (table.set (i32.const 2) (ref.func $c))
    (i32.store (i32.const 200)
      (i32.add (call_indirect (type $t) (i32.const 0))
        (i32.add (call_indirect (type $t) (i32.const 1))
                 (call_indirect (type $t) (i32.const 2)))))
    (memory.fill (i32.const 300) (i32.const 7) (i32.const 10))
    (local.set $x (i32.const 400))
    (memory.copy (local.get $x) (i32.const 16) (i32.const 5))
    (memory.init $p (i32.const 500) (i32.const 0) (i32.const 7))
    (global.set $counter (i64.add (global.get $counter) (i64.const 1)))
    (call $print (i32.const 16) (i32.const 5))
    (call $reply))
  (func (export "canister_update init_dropped")
    ;; segment 0 was active: dropped after instantiation in the original module.
    (memory.init 0 (i32.const 0) (i32.const 0) (i32.const 1)))
  (start $start))"#;

#[test]
fn install_then_message() {
    let engine = engine();
    let m = prepared(MODULE);
    let (mut store, instance) = install(&engine, &m);
    let memory = instance.get_memory(&mut store, "memory").unwrap();

    let mut buf = [0u8; 5];
    memory.read(&store, 16, &mut buf).unwrap();
    assert_eq!(&buf, b"hello");
    memory.read(&store, 100, &mut buf).unwrap();
    assert_eq!(&buf, b"world");
    let sp = instance.get_global(&mut store, "__cairn_global_0").unwrap();
    assert_eq!(sp.get(&mut store).i32(), Some(2048), "start ran");

    instance.get_typed_func::<(), ()>(&mut store, "canister_update go").unwrap().call(&mut store, ()).unwrap();
    assert_eq!(store.data().replies, 1);
    let mut word = [0u8; 4];
    memory.read(&store, 200, &mut word).unwrap();
    assert_eq!(i32::from_le_bytes(word), 6, "indirect calls reached $a, $b and $c");
    memory.read(&store, 400, &mut buf).unwrap();
    assert_eq!(&buf, b"hello");
    let mut seven = [0u8; 7];
    memory.read(&store, 500, &mut seven).unwrap();
    assert_eq!(&seven, b"passive");
    memory.read(&store, 300, &mut seven).unwrap();
    assert_eq!(seven, [7; 7]);
}

#[test]
fn reinstantiation_does_not_clobber_memory() {
    let engine = engine();
    let m = prepared(MODULE);
    // A fresh instance (as for a later message) has no data written and no start run.
    let (mut store, instance) = instantiate(&engine, &m);
    let memory = instance.get_memory(&mut store, MEMORY_EXPORT).unwrap();
    let mut buf = [0u8; 5];
    memory.read(&store, 16, &mut buf).unwrap();
    assert_eq!(buf, [0; 5]);
    let sp = instance.get_global(&mut store, "__cairn_global_0").unwrap();
    assert_eq!(sp.get(&mut store).i32(), Some(1024));
    // Globals can be restored through their exports.
    sp.set(&mut store, Val::I32(4096)).unwrap();
    let counter = instance.get_global(&mut store, "__cairn_global_2").unwrap();
    counter.set(&mut store, Val::I64(41)).unwrap();
    instance.get_typed_func::<(), ()>(&mut store, "canister_update go").unwrap().call(&mut store, ()).unwrap();
    assert_eq!(counter.get(&mut store).i64(), Some(42));
}

#[test]
fn memory_init_on_a_removed_segment_traps_like_the_original() {
    let engine = engine();
    // Original module: the active segment was dropped by instantiation.
    let original = Module::new(&engine, wat::parse_str(MODULE).unwrap()).unwrap();
    let mut store = Store::new(&engine, Host::default());
    let instance = linker(&engine).instantiate(&mut store, &original).unwrap();
    let f = instance.get_typed_func::<(), ()>(&mut store, "canister_update init_dropped").unwrap();
    let original_trap = f.call(&mut store, ()).unwrap_err();

    let m = prepared(MODULE);
    let (mut store, instance) = install(&engine, &m);
    let f = instance.get_typed_func::<(), ()>(&mut store, "canister_update init_dropped").unwrap();
    let trap = f.call(&mut store, ()).unwrap_err();
    assert_eq!(original_trap.downcast_ref::<wasmtime::Trap>(), trap.downcast_ref::<wasmtime::Trap>());
}

#[test]
fn memory64_bulk_operations_work() {
    let engine = engine();
    let m = prepared(
        r#"(module
            (memory (export "mem") i64 3)
            (global (mut i64) (i64.const 0))
            (data (i64.const 140000) "sixty-four")
            (data $p "abc")
            (func $init (global.set 0 (i64.const 99)))
            (func (export "canister_update big")
                (memory.fill (i64.const 0) (i32.const 1) (i64.const 131072))
                (memory.copy (i64.const 150000) (i64.const 140000) (i64.const 10))
                (memory.init $p (i64.const 196000) (i32.const 1) (i32.const 2)))
            (start $init))"#,
    );
    assert!(m.memory64);
    let (mut store, instance) = install(&engine, &m);
    instance.get_typed_func::<(), ()>(&mut store, "canister_update big").unwrap().call(&mut store, ()).unwrap();
    let memory = instance.get_memory(&mut store, "mem").unwrap();
    let mut buf = [0u8; 10];
    memory.read(&store, 150000, &mut buf).unwrap();
    assert_eq!(&buf, b"sixty-four");
    let mut bc = [0u8; 2];
    memory.read(&store, 196000, &mut bc).unwrap();
    assert_eq!(&bc, b"bc");
    let g = instance.get_global(&mut store, "__cairn_global_0").unwrap();
    assert_eq!(g.get(&mut store).i64(), Some(99));
}

#[test]
fn table_export_is_table_zero() {
    let engine = engine();
    let m = prepared(MODULE);
    let (mut store, instance) = install(&engine, &m);
    let table = instance.get_table(&mut store, TABLE_EXPORT).unwrap();
    assert_eq!(table.size(&store), 3);
    // Slot 1 holds $b (via the active element segment); calling it through the export
    // reaches the same function, at its original index: $b = $a + 1 = 2.
    let Some(Ref::Func(Some(b))) = table.get(&mut store, 1) else { panic!("slot 1 is not a function") };
    let b = b.typed::<(), i32>(&store).unwrap();
    assert_eq!(b.call(&mut store, ()).unwrap(), 2);
}

/// Without a charge hook, bulk operations are metered by wasmtime's fuel, whose variable
/// operator costs charge per byte: filling 1 MiB costs at least 1 Mi units, filling one
/// byte almost nothing. (`cairn-wasm` configures the real costs.)
#[test]
fn bulk_operations_are_metered_by_fuel() {
    let mut config = Config::new();
    config.consume_fuel(true);
    let engine = Engine::new(&config).unwrap();
    let m = prepared(
        r#"(module
            (memory 32)
            (func $fill (param i32) (memory.fill (i32.const 0) (i32.const 1) (local.get 0)))
            (func (export "canister_update byte") (call $fill (i32.const 1)))
            (func (export "canister_update mib") (call $fill (i32.const 0x100000))))"#,
    );
    let module = Module::new(&engine, &m.bytes).unwrap();
    let fuel_for = |method: &str| {
        let mut store = Store::new(&engine, Host::default());
        store.set_fuel(u64::MAX).unwrap();
        let instance = Linker::new(&engine).instantiate(&mut store, &module).unwrap();
        let fill = instance.get_typed_func::<(), ()>(&mut store, method).unwrap();
        let before = store.get_fuel().unwrap();
        fill.call(&mut store, ()).unwrap();
        before - store.get_fuel().unwrap()
    };
    let (small, big) = (fuel_for("canister_update byte"), fuel_for("canister_update mib"));
    assert!(small < 1_000, "{small}");
    assert!(big >= 1 << 20, "{big}");
}
