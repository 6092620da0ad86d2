//! Turning the uploaded bytes into a Wasm binary.

use std::io::Read;

use crate::error::{ModuleError, hex_prefix};

/// The Wasm binary magic, `\0asm`.
pub const WASM_MAGIC: [u8; 4] = *b"\0asm";

/// The gzip magic plus the deflate method byte; the IC accepts exactly this
/// (digest §7: "gzip (`1f8b08`, decompressed first)").
pub const GZIP_MAGIC: [u8; 3] = [0x1f, 0x8b, 0x08];

/// Default cap on the size of the (decompressed) Wasm module: 100 MiB, the IC's
/// `WASM_MAX_SIZE` (`rs/config/src/embedders.rs`; digest §7 "module > 100 MiB").
pub const DEFAULT_MAX_MODULE_SIZE: u64 = 100 * 1024 * 1024;

/// Decodes an uploaded module with the default size cap ([`DEFAULT_MAX_MODULE_SIZE`]).
///
/// Accepts a raw Wasm binary or gzip-compressed Wasm and returns the raw binary.
pub fn decode_module(bytes: &[u8]) -> Result<Vec<u8>, ModuleError> {
    decode_module_with_limit(bytes, DEFAULT_MAX_MODULE_SIZE)
}

/// Decodes an uploaded module, rejecting results larger than `max_size` bytes.
///
/// Decompression stops as soon as the output would exceed `max_size`, so a gzip bomb costs
/// at most `max_size` bytes of memory and the time to inflate that much. Only the
/// first gzip member is read (what `gzip`/`dfx` produce); nested compression is rejected
/// because the result must start with `\0asm`.
pub fn decode_module_with_limit(bytes: &[u8], max_size: u64) -> Result<Vec<u8>, ModuleError> {
    if bytes.starts_with(&WASM_MAGIC) {
        if bytes.len() as u64 > max_size {
            return Err(ModuleError::ModuleTooLarge { limit: max_size });
        }
        return Ok(bytes.to_vec());
    }
    if bytes.starts_with(&GZIP_MAGIC) {
        let decoder = flate2::read::GzDecoder::new(bytes);
        // Read one byte past the limit to tell "exactly at the limit" from "over it".
        let mut limited = decoder.take(max_size.saturating_add(1));
        // Compressed Wasm is typically 3–4x smaller; start there, but never above the cap.
        let guess = (bytes.len() as u64).saturating_mul(4).min(max_size) as usize;
        let mut out = Vec::with_capacity(guess);
        limited.read_to_end(&mut out).map_err(|e| ModuleError::Gzip(e.to_string()))?;
        if out.len() as u64 > max_size {
            return Err(ModuleError::ModuleTooLarge { limit: max_size });
        }
        if !out.starts_with(&WASM_MAGIC) {
            return Err(ModuleError::GzipNotWasm { found: hex_prefix(&out) });
        }
        return Ok(out);
    }
    Err(ModuleError::BadMagic { found: hex_prefix(bytes) })
}
