//! Helpers shared by the integration tests.
#![allow(dead_code)]

use cairn_wasm_module::{ModuleError, ModuleInfo, ModuleLimits, validate};

/// Assembles WAT, panicking with the parse error.
pub fn wat(src: &str) -> Vec<u8> {
    wat::parse_str(src).unwrap_or_else(|e| panic!("bad WAT: {e}\n{src}"))
}

/// Validates WAT with the default limits.
pub fn check(src: &str) -> Result<ModuleInfo, ModuleError> {
    validate(&wat(src), &ModuleLimits::default())
}

/// Validates WAT and expects an error whose text contains `needle`.
pub fn reject(src: &str, needle: &str) -> ModuleError {
    match check(src) {
        Ok(_) => panic!("module was accepted, expected an error containing {needle:?}:\n{src}"),
        Err(e) => {
            let text = e.to_string();
            assert!(text.contains(needle), "error {text:?} does not contain {needle:?}");
            e
        }
    }
}
