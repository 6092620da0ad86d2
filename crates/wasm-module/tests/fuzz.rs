//! Random mutations of valid modules never panic: every stage returns `Ok` or an error,
//! and whatever validates also instruments into a module that validates.

use std::io::Write;

use cairn_wasm_module::{ModuleLimits, decode_module, instrument, validate, wasm_features};
use proptest::prelude::*;

const SEED_32: &str = r#"(module
  (import "ic0" "msg_reply" (func $reply))
  (import "ic0" "msg_reply_data_append" (func $append (param i32 i32)))
  (type $t (func (result i32)))
  (memory (export "memory") 1 2)
  (table 3 funcref)
  (global $sp (mut i32) (i32.const 1024))
  (global $k i64 (i64.const 5))
  (data (i32.const 16) "hello")
  (data $p "passive")
  (elem (i32.const 0) $a $b)
  (elem declare func $a)
  (func $a (type $t) (i32.const 1))
  (func $b (type $t) (call $a))
  (func $s (global.set $sp (i32.const 2048)))
  (func (export "canister_update go") (local $x i32)
    (drop (call_indirect (type $t) (i32.const 1)))
    (table.set (i32.const 2) (ref.func $a))
    (memory.fill (i32.const 0) (i32.const 0) (i32.const 10))
    (memory.copy (local.get $x) (i32.const 0) (i32.const 10))
    (memory.init $p (i32.const 0) (i32.const 0) (i32.const 7))
    (call $append (i32.const 16) (i32.const 5))
    (call $reply))
  (func (export "canister_query q") (drop (i32.extend8_s (i32.const 1))))
  (start $s))"#;

const SEED_64: &str = r#"(module
  (import "ic0" "msg_reply_data_append" (func $append (param i64 i64)))
  (memory (export "mem") i64 2)
  (table (export "table") i64 2 funcref)
  (global (mut i64) (i64.const 0))
  (data (i64.const 8) "motoko")
  (func $init (memory.fill (i64.const 0) (i32.const 1) (i64.const 4)))
  (func (export "canister_init") (call $append (i64.const 8) (i64.const 6)))
  (start $init))"#;

fn seeds() -> Vec<Vec<u8>> {
    [SEED_32, SEED_64].iter().map(|s| wat::parse_str(s).unwrap()).collect()
}

#[derive(Debug, Clone)]
enum Mutation {
    Flip { at: usize, bit: u8 },
    Set { at: usize, value: u8 },
    Insert { at: usize, value: u8 },
    Remove { at: usize },
    Truncate { len: usize },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 0u8..8).prop_map(|(at, bit)| Mutation::Flip { at, bit }),
        (any::<usize>(), any::<u8>()).prop_map(|(at, value)| Mutation::Set { at, value }),
        (any::<usize>(), any::<u8>()).prop_map(|(at, value)| Mutation::Insert { at, value }),
        any::<usize>().prop_map(|at| Mutation::Remove { at }),
        any::<usize>().prop_map(|len| Mutation::Truncate { len }),
    ]
}

fn apply(bytes: &mut Vec<u8>, m: &Mutation) {
    if bytes.is_empty() {
        return;
    }
    let n = bytes.len();
    match *m {
        Mutation::Flip { at, bit } => bytes[at % n] ^= 1 << bit,
        Mutation::Set { at, value } => bytes[at % n] = value,
        Mutation::Insert { at, value } => bytes.insert(at % (n + 1), value),
        Mutation::Remove { at } => {
            bytes.remove(at % n);
        }
        Mutation::Truncate { len } => bytes.truncate(len % n),
    }
}

/// Runs the whole pipeline; panics only on a broken invariant.
fn pipeline(bytes: &[u8]) {
    let Ok(wasm) = decode_module(bytes) else {
        return;
    };
    let Ok(info) = validate(&wasm, &ModuleLimits::default()) else {
        return;
    };
    let out = instrument(&wasm, &info).expect("a validated module instruments");
    wasmparser::Validator::new_with_features(wasm_features())
        .validate_all(&out.bytes)
        .expect("the instrumented module validates");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn mutated_modules_never_panic(
        seed in 0usize..2,
        mutations in proptest::collection::vec(mutation(), 1..3),
    ) {
        let mut bytes = seeds()[seed].clone();
        for m in &mutations {
            apply(&mut bytes, m);
        }
        pipeline(&bytes);
    }

    #[test]
    fn mutated_gzip_never_panics(
        seed in 0usize..2,
        mutations in proptest::collection::vec(mutation(), 1..4),
    ) {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(&seeds()[seed]).unwrap();
        let mut bytes = e.finish().unwrap();
        for m in &mutations {
            apply(&mut bytes, m);
        }
        pipeline(&bytes);
    }

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let mut with_magic = b"\0asm\x01\0\0\0".to_vec();
        with_magic.extend_from_slice(&bytes);
        pipeline(&with_magic);
        pipeline(&bytes);
    }
}

#[test]
fn seeds_are_valid() {
    for wasm in seeds() {
        pipeline(&wasm);
        let info = validate(&wasm, &ModuleLimits::default()).unwrap();
        assert!(info.has_start);
    }
}
