//! `decode_module`: raw, gzip, bad magic, and gzip bombs.

use std::io::Write;

use cairn_wasm_module::{ModuleError, decode_module, decode_module_with_limit};
use flate2::{Compression, write::GzEncoder};

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn module() -> Vec<u8> {
    wat::parse_str(r#"(module (func (export "canister_init")))"#).unwrap()
}

#[test]
fn raw_wasm_passes_through() {
    let wasm = module();
    assert_eq!(decode_module(&wasm).unwrap(), wasm);
}

#[test]
fn gzip_is_decompressed() {
    let wasm = module();
    let gz = gzip(&wasm);
    assert_eq!(&gz[..3], &[0x1f, 0x8b, 0x08]);
    assert_eq!(decode_module(&gz).unwrap(), wasm);
}

#[test]
fn bad_magic() {
    let err = decode_module(b"hello world").unwrap_err();
    assert!(matches!(err, ModuleError::BadMagic { .. }));
    assert!(err.to_string().starts_with("bad magic"), "{err}");
    assert!(err.to_string().contains("68 65 6c 6c 6f 20 77 6f …"), "{err}");
    assert!(decode_module(b"").unwrap_err().to_string().contains("an empty file"));
    // gzip magic with a method other than deflate.
    assert!(matches!(decode_module(&[0x1f, 0x8b, 0x07, 0]).unwrap_err(), ModuleError::BadMagic { .. }));
}

#[test]
fn corrupt_gzip() {
    let mut gz = gzip(&module());
    gz.truncate(gz.len() - 6);
    assert!(matches!(decode_module(&gz).unwrap_err(), ModuleError::Gzip(_)));
    let err = decode_module(&[0x1f, 0x8b, 0x08, 0, 0, 0]).unwrap_err();
    assert!(matches!(err, ModuleError::Gzip(_)), "{err}");
}

#[test]
fn gzip_must_contain_wasm() {
    let err = decode_module(&gzip(b"not wasm at all")).unwrap_err();
    assert!(matches!(err, ModuleError::GzipNotWasm { .. }), "{err}");
    // No nested gzip.
    let err = decode_module(&gzip(&gzip(&module()))).unwrap_err();
    assert!(matches!(err, ModuleError::GzipNotWasm { .. }), "{err}");
}

#[test]
fn size_cap_is_exact() {
    let wasm = module();
    let n = wasm.len() as u64;
    assert_eq!(decode_module_with_limit(&wasm, n).unwrap(), wasm);
    assert_eq!(decode_module_with_limit(&wasm, n - 1).unwrap_err(), ModuleError::ModuleTooLarge { limit: n - 1 });
    let gz = gzip(&wasm);
    assert_eq!(decode_module_with_limit(&gz, n).unwrap(), wasm);
    assert_eq!(decode_module_with_limit(&gz, n - 1).unwrap_err(), ModuleError::ModuleTooLarge { limit: n - 1 });
}

#[test]
fn gzip_bomb_is_rejected_without_inflating_it() {
    // 256 MiB of zeros after a Wasm header compress to ~256 KiB; the default 100 MiB cap
    // stops decompression long before the end.
    let mut e = GzEncoder::new(Vec::new(), Compression::fast());
    e.write_all(b"\0asm\x01\0\0\0").unwrap();
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..256 {
        e.write_all(&zeros).unwrap();
    }
    let bomb = e.finish().unwrap();
    assert!(bomb.len() < 2 << 20, "compressed to {} bytes", bomb.len());
    let started = std::time::Instant::now();
    let err = decode_module(&bomb).unwrap_err();
    assert_eq!(err, ModuleError::ModuleTooLarge { limit: 100 << 20 });
    // A small cap stops even earlier.
    assert_eq!(decode_module_with_limit(&bomb, 4096).unwrap_err(), ModuleError::ModuleTooLarge { limit: 4096 });
    eprintln!("bomb rejected in {:?}", started.elapsed());
}
