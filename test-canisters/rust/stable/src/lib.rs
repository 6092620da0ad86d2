//! `stable`: ic-stable-structures 0.7 (a `StableBTreeMap` and a `StableCell`
//! behind a `MemoryManager`) plus a heap counter that survives upgrades only
//! because `pre_upgrade` saves it and `post_upgrade` restores it.

use ic_stable_structures::memory_manager::{MemoryId, MemoryManager, VirtualMemory};
use ic_stable_structures::{DefaultMemoryImpl, StableBTreeMap, StableCell};
use serde_bytes::ByteBuf;
use std::cell::{Cell, RefCell};

type Memory = VirtualMemory<DefaultMemoryImpl>;

const MAP_MEMORY: MemoryId = MemoryId::new(0);
const SAVED_COUNTER_MEMORY: MemoryId = MemoryId::new(1);

thread_local! {
    static MEMORY_MANAGER: RefCell<MemoryManager<DefaultMemoryImpl>> =
        RefCell::new(MemoryManager::init(DefaultMemoryImpl::default()));

    static MAP: RefCell<StableBTreeMap<u64, Vec<u8>, Memory>> = RefCell::new(
        StableBTreeMap::init(MEMORY_MANAGER.with_borrow(|m| m.get(MAP_MEMORY))),
    );

    /// Where `pre_upgrade` saves `HEAP_COUNTER`.
    static SAVED_COUNTER: RefCell<StableCell<u64, Memory>> = RefCell::new(
        StableCell::init(MEMORY_MANAGER.with_borrow(|m| m.get(SAVED_COUNTER_MEMORY)), 0),
    );

    /// Lives on the heap only.
    static HEAP_COUNTER: Cell<u64> = const { Cell::new(0) };

    /// Heap allocations made by `grow_heap`, kept alive.
    static BALLAST: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
}

#[ic_cdk::update]
fn put(key: u64, value: ByteBuf) {
    MAP.with_borrow_mut(|m| m.insert(key, value.into_vec()));
}

#[ic_cdk::query]
fn get(key: u64) -> Option<ByteBuf> {
    MAP.with_borrow(|m| m.get(&key)).map(ByteBuf::from)
}

#[ic_cdk::query]
fn len() -> u64 {
    MAP.with_borrow(|m| m.len())
}

#[ic_cdk::query]
fn heap_counter() -> u64 {
    HEAP_COUNTER.with(Cell::get)
}

#[ic_cdk::update]
fn bump_heap() {
    HEAP_COUNTER.with(|c| c.set(c.get() + 1));
}

#[ic_cdk::pre_upgrade]
fn pre_upgrade() {
    let value = HEAP_COUNTER.with(Cell::get);
    SAVED_COUNTER.with_borrow_mut(|c| c.set(value));
}

#[ic_cdk::post_upgrade]
fn post_upgrade() {
    let value = SAVED_COUNTER.with_borrow(|c| *c.get());
    HEAP_COUNTER.with(|c| c.set(value));
}

/// Stable memory size in 64 KiB pages (`stable64_size`).
#[ic_cdk::query]
fn stable_size_pages() -> u64 {
    ic_cdk::api::stable_size()
}

/// Allocates `mib` MiB more heap, writes to every 4 KiB of it, keeps it, and
/// returns the wasm memory size in 64 KiB pages.
#[ic_cdk::update]
fn grow_heap(mib: u64) -> u64 {
    let len = usize::try_from(mib)
        .ok()
        .and_then(|m| m.checked_mul(1 << 20))
        .unwrap_or_else(|| ic_cdk::trap("grow_heap: size too large"));
    let mut block = vec![0u8; len];
    for byte in block.iter_mut().step_by(4096) {
        *byte = 1;
    }
    BALLAST.with_borrow_mut(|b| b.push(std::hint::black_box(block)));
    wasm_memory_pages()
}

fn wasm_memory_pages() -> u64 {
    #[cfg(target_arch = "wasm32")]
    {
        core::arch::wasm32::memory_size::<0>() as u64
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        0
    }
}

ic_cdk::export_candid!();

#[cfg(test)]
#[path = "../../../shared/did_check.rs"]
mod did_check;
