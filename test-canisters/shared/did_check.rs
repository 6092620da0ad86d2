//! Host-side check (`cargo test` in test-canisters/) that the checked-in
//! `<crate>.did` file matches the interface `export_candid!` generates.
//! `UPDATE_DID=1 cargo test` rewrites the files. Included by every Rust
//! canister with `#[cfg(test)] #[path = ...] mod did_check;`.

#[test]
fn candid_interface_matches_did_file() {
    let generated = crate::__export_service();
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(concat!(env!("CARGO_PKG_NAME"), ".did"));
    if std::env::var_os("UPDATE_DID").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_default();
    assert_eq!(
        expected, generated,
        "{path:?} is stale: run `UPDATE_DID=1 cargo test` in test-canisters/"
    );
}
