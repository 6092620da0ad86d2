//! Real test canisters, built from source by this crate's `build.rs`:
//!
//! * Rust canisters from `test-canisters/rust/<name>` (ic-cdk 0.20.3,
//!   candid 0.10.39, ic-cdk-timers 1.0.0, ic-stable-structures 0.7.2),
//!   compiled for `wasm32-unknown-unknown`: 32-bit memory, i32 System API.
//! * Motoko actors from `test-canisters/motoko/src/<name>.mo`, compiled with
//!   the npm `motoko` 4.10.0 compiler: wasm64 (memory64 + table64) with
//!   enhanced orthogonal persistence, i64 System API.
//!
//! Every canister is exposed as its wasm bytes (`COUNTER`, ...) and its
//! Candid interface (`COUNTER_DID`, ...); [`ALL`] lists them all. The doc of
//! each constant shows the Candid interface. `scripts/setup.sh` installs what
//! the build needs (the wasm32 target, node modules).

use std::io::Write;

/// Which toolchain built a canister, and so which wasm flavour it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Toolchain {
    /// Rust + ic-cdk: wasm32 module.
    Rust,
    /// Motoko (moc via npm): wasm64 module (memory64, table64).
    Motoko,
}

/// One test canister.
#[derive(Debug, Clone, Copy)]
pub struct TestCanister {
    /// The file name without `.wasm`, e.g. `"counter"`.
    pub name: &'static str,
    pub toolchain: Toolchain,
    pub wasm: &'static [u8],
    /// The Candid service description.
    pub did: &'static str,
}

macro_rules! canisters {
    ($( $(#[$doc:meta])* $wasm:ident / $did:ident = $name:literal, $toolchain:ident; )*) => {
        $(
            $(#[$doc])*
            ///
            /// Candid interface:
            ///
            /// ```text
            #[doc = include_str!(concat!(env!("OUT_DIR"), "/", $name, ".did"))]
            /// ```
            pub const $wasm: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/", $name, ".wasm"));

            #[doc = concat!("The Candid interface of [`", stringify!($wasm), "`].")]
            pub const $did: &str = include_str!(concat!(env!("OUT_DIR"), "/", $name, ".did"));
        )*

        /// Every test canister, Rust first, in the order they are declared.
        pub const ALL: &[TestCanister] = &[
            $( TestCanister { name: $name, toolchain: Toolchain::$toolchain, wasm: $wasm, did: $did }, )*
        ];
    };
}

canisters! {
    /// `counter` (Rust): a `nat64` counter. `inc` is the benchmark message.
    /// Also `whoami` (the caller) and certified data set/get.
    COUNTER / COUNTER_DID = "counter", Rust;

    /// `inter` (Rust): inter-canister calls between two instances. `forward`
    /// makes a raw call (bounded-wait iff `timeout_seconds` is set) and returns
    /// the raw reply or the reject (code 0 = the call was never made); reject,
    /// trap and rollback probes; ordered `sequence` calls; a composite query;
    /// a self-call; a CPU loop (`busy`).
    INTER / INTER_DID = "inter", Rust;

    /// `timers` (Rust): ic-cdk-timers 1.0 one-shot and interval timers. Each
    /// timer runs via `canister_global_timer` and a self-call to
    /// `<ic-cdk internal> timer_executor`.
    TIMERS / TIMERS_DID = "timers", Rust;

    /// `stable` (Rust): ic-stable-structures `StableBTreeMap<u64, Vec<u8>>`,
    /// a heap counter saved by `pre_upgrade` and restored by `post_upgrade`,
    /// and a heap allocator (`grow_heap`).
    STABLE / STABLE_DID = "stable", Rust;

    /// `wallet` (Rust): cycles balance, accept, send (`deposit_cycles`),
    /// `create_canister` with exactly the given cycles, raw calls with
    /// cycles, `cycles_burn128`, `raw_rand`.
    WALLET / WALLET_DID = "wallet", Rust;

    /// `hooks` (Rust): `canister_heartbeat` (counts only after
    /// `enable_heartbeat(true)`), `canister_inspect_message` (refuses
    /// `forbidden`), a raw `canister_global_timer`,
    /// `canister_on_low_wasm_memory`, and System API probes (time, canister
    /// version, env vars, performance counter, controllers, replicated).
    HOOKS / HOOKS_DID = "hooks", Rust;

    /// `hostile` (Rust): infinite loops (update and query), heap and stable
    /// memory exhaustion, stack overflow, huge replies, trap after writing
    /// heap + stable + certified data, an unbounded self-call chain.
    HOSTILE / HOSTILE_DID = "hostile", Rust;

    /// `mo_counter` (Motoko persistent actor): `count` survives upgrades, the
    /// `transient` counter does not.
    MO_COUNTER / MO_COUNTER_DID = "mo_counter", Motoko;

    /// `mo_inter` (Motoko persistent actor): a persistent `Map`, and
    /// `call_counter(p)` which calls `inc` on the Rust `counter` at `p`.
    MO_INTER / MO_INTER_DID = "mo_inter", Motoko;
}

/// Looks a canister up by name.
pub fn by_name(name: &str) -> Option<&'static TestCanister> {
    ALL.iter().find(|c| c.name == name)
}

/// Gzips a module (install_code accepts gzipped wasm).
pub fn gzipped(wasm: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(wasm).expect("writing to a Vec cannot fail");
    encoder.finish().expect("writing to a Vec cannot fail")
}
