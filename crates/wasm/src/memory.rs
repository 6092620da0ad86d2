//! Linear memories with dirty-page tracking.
//!
//! Every canister heap lives in its own `mmap` reservation that wasmtime uses
//! directly (through [`CairnMemoryCreator`]). Between messages every
//! accessible page is mapped read-only; the first write to a page raises a
//! fault that [`TrackedMemory::handle_fault`] resolves by recording the page
//! as dirty and making it writable. After the message, only the dirty pages
//! are copied into the canister's [`PageMap`] (commit) or restored from it
//! (rollback on trap, or after a query). The cost of a message therefore grows
//! with the pages it touched, not with the size of the heap.
//!
//! Pages written by the previous message stay writable ("hot", at most
//! [`HOT_PAGE_LIMIT`]): a message usually writes the same few pages as the
//! one before (stack top, allocator metadata), and changes to hot pages are
//! found by comparing them with the page map instead of taking a fault and
//! two `mprotect` calls (each a TLB shootdown in a multi-threaded process).
//!
//! A message that dirties more than [`DIRTY_LIST_CAPACITY`] pages switches
//! the memory to "overflow" mode: everything becomes writable and the dirty
//! set is recovered by comparing with the page map afterwards. This bounds the
//! number of memory mappings the kernel must track (its VMA limit) and the
//! fault count for bulk writes.

use cairn_state::page_map::{PAGE_SIZE, PageBytes, PageMap};
use std::cell::{Cell, RefCell, UnsafeCell};
use std::sync::Arc;
use wasmtime::{LinearMemory, MemoryCreator, MemoryType};

/// Pages one message may dirty before tracking falls back to comparison.
pub const DIRTY_LIST_CAPACITY: usize = 16 * 1024;

/// Pages kept writable between messages (see the module docs).
pub const HOT_PAGE_LIMIT: usize = 16;

/// Reservation used when wasmtime does not ask for a specific one.
const DEFAULT_RESERVATION: usize = 8 << 30;

/// The state shared between the engine, wasmtime and the fault handler.
///
/// Only the thread executing the owning store touches it, but the fault
/// handler runs inside a signal, so everything it reads is preallocated and
/// it performs no allocation.
pub(crate) struct MemoryInner {
    base: *mut u8,
    /// Bytes mapped (reservation plus guard).
    mapping_len: usize,
    /// Bytes the memory may grow to without moving.
    reserved: usize,
    /// Currently accessible bytes.
    accessible: Cell<usize>,
    /// The size wasmtime believes the memory has (it reads the size only at
    /// instantiation and after its own growth). When `accessible` differs,
    /// the sandbox must re-instantiate around this memory.
    engine_size: Cell<usize>,
    /// One bit per page of `reserved`: set for every writable page (dirty or hot).
    dirty_bits: UnsafeCell<Vec<u64>>,
    /// Dirty pages in fault order; never grows past its preallocated capacity.
    dirty_list: UnsafeCell<Vec<u32>>,
    /// Pages left writable since the last commit or rollback, sorted.
    hot: UnsafeCell<Vec<u32>>,
    overflow: Cell<bool>,
}

// SAFETY: the memory is used by one thread at a time (the thread running the
// store that owns it); the raw pointer is a private mapping owned by us.
unsafe impl Send for MemoryInner {}
unsafe impl Sync for MemoryInner {}

impl Drop for MemoryInner {
    fn drop(&mut self) {
        // SAFETY: we created this mapping in `MemoryInner::new` with this length.
        unsafe {
            libc::munmap(self.base as *mut libc::c_void, self.mapping_len);
        }
    }
}

fn protect(addr: *mut u8, len: usize, prot: libc::c_int) -> bool {
    if len == 0 {
        return true;
    }
    // SAFETY: callers pass page-aligned ranges inside our own mapping.
    unsafe { libc::mprotect(addr as *mut libc::c_void, len, prot) == 0 }
}

impl MemoryInner {
    fn new(initial: usize, reserved: usize, guard: usize) -> Result<Self, String> {
        assert_eq!(page_size(), PAGE_SIZE, "Cairn requires 4 KiB OS pages");
        let mapping_len = reserved.checked_add(guard).ok_or("memory reservation overflows")?;
        // SAFETY: a fresh anonymous mapping; checked for failure below.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                mapping_len,
                libc::PROT_NONE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(format!("cannot reserve {mapping_len} bytes: {}", std::io::Error::last_os_error()));
        }
        let inner = MemoryInner {
            base: base as *mut u8,
            mapping_len,
            reserved,
            accessible: Cell::new(0),
            engine_size: Cell::new(0),
            dirty_bits: UnsafeCell::new(Vec::new()),
            dirty_list: UnsafeCell::new(Vec::with_capacity(DIRTY_LIST_CAPACITY)),
            hot: UnsafeCell::new(Vec::with_capacity(HOT_PAGE_LIMIT)),
            overflow: Cell::new(false),
        };
        inner.set_accessible(initial)?;
        inner.engine_size.set(initial);
        Ok(inner)
    }

    /// Grows or shrinks the accessible part. New pages are zero and read-only
    /// (so writes to them are tracked); removed pages are discarded.
    fn set_accessible(&self, new_len: usize) -> Result<(), String> {
        self.resize(new_len, false)
    }

    /// Like [`Self::set_accessible`], but with `tracked_shrink` a shrink zeroes
    /// only the removed pages that were written since they became accessible
    /// (the dirty and hot pages; every other byte beyond the previous size was
    /// zero already) instead of discarding the whole range with `madvise`,
    /// which costs a TLB shootdown on every core running this process. Only
    /// valid when the removed range was zero when it became accessible and
    /// tracking did not overflow (a message's rollback).
    fn resize(&self, new_len: usize, tracked_shrink: bool) -> Result<(), String> {
        let old = self.accessible.get();
        if new_len > self.reserved {
            return Err(format!("memory of {new_len} bytes exceeds the reservation of {} bytes", self.reserved));
        }
        if new_len > old {
            let prot = if self.overflow.get() { libc::PROT_READ | libc::PROT_WRITE } else { libc::PROT_READ };
            // SAFETY: inside our mapping.
            if !protect(unsafe { self.base.add(old) }, new_len - old, prot) {
                return Err(format!("mprotect failed: {}", std::io::Error::last_os_error()));
            }
        } else if new_len < old {
            let first_gone = new_len / PAGE_SIZE;
            if tracked_shrink && !self.overflow.get() {
                // SAFETY: single-threaded access (see type docs); written pages are writable.
                let (list, hot) = unsafe { (&*self.dirty_list.get(), &*self.hot.get()) };
                for page in list.iter().chain(hot.iter()).map(|p| *p as usize).filter(|p| *p >= first_gone) {
                    self.page_slice(page).fill(0);
                }
            } else {
                // SAFETY: inside our mapping; DONTNEED on a private anonymous mapping zero-fills.
                unsafe {
                    libc::madvise(self.base.add(new_len) as *mut libc::c_void, old - new_len, libc::MADV_DONTNEED);
                }
            }
            protect(unsafe { self.base.add(new_len) }, old - new_len, libc::PROT_NONE);
            // Forget dirty and hot marks beyond the new end.
            let bits = unsafe { &mut *self.dirty_bits.get() };
            let first_gone = first_gone as u32;
            for list in [unsafe { &mut *self.dirty_list.get() }, unsafe { &mut *self.hot.get() }] {
                list.retain(|p| {
                    if *p >= first_gone {
                        bits[*p as usize / 64] &= !(1 << (*p % 64));
                        false
                    } else {
                        true
                    }
                });
            }
        }
        let pages = new_len / PAGE_SIZE;
        let bits = unsafe { &mut *self.dirty_bits.get() };
        if bits.len() * 64 < pages {
            bits.resize(pages.div_ceil(64), 0);
        }
        self.accessible.set(new_len);
        Ok(())
    }

    fn is_dirty(&self, page: usize) -> bool {
        let bits = unsafe { &*self.dirty_bits.get() };
        bits.get(page / 64).is_some_and(|w| w & (1 << (page % 64)) != 0)
    }

    /// Records a page as dirty and makes it writable. Returns false if the
    /// page could not be unprotected (the caller then switches to overflow).
    fn mark_dirty(&self, page: usize) -> bool {
        // SAFETY: single-threaded access (see type docs); no allocation: the
        // bitmap covers every accessible page and the list has spare capacity
        // (checked before pushing).
        let bits = unsafe { &mut *self.dirty_bits.get() };
        let list = unsafe { &mut *self.dirty_list.get() };
        if list.len() == list.capacity() {
            return false;
        }
        if !protect(unsafe { self.base.add(page * PAGE_SIZE) }, PAGE_SIZE, libc::PROT_READ | libc::PROT_WRITE) {
            return false;
        }
        bits[page / 64] |= 1 << (page % 64);
        list.push(page as u32);
        true
    }

    fn enter_overflow(&self) -> bool {
        self.overflow.set(true);
        protect(self.base, self.accessible.get(), libc::PROT_READ | libc::PROT_WRITE)
    }

    /// Resolves a write fault at `addr`. Returns whether the fault was ours.
    /// Runs inside a signal handler: no allocation, no locks.
    pub(crate) fn handle_fault(&self, addr: usize) -> bool {
        let base = self.base as usize;
        if addr < base || addr >= base + self.accessible.get() || self.overflow.get() {
            return false;
        }
        let page = (addr - base) / PAGE_SIZE;
        if self.is_dirty(page) {
            return false;
        }
        self.mark_dirty(page) || self.enter_overflow()
    }

    // Interior mutability through a raw mapping we own; see the SAFETY note.
    #[allow(clippy::mut_from_ref)]
    fn page_slice(&self, page: usize) -> &mut PageBytes {
        // SAFETY: the caller checked that `page` is accessible; the region is
        // owned by us and not accessed concurrently.
        unsafe { &mut *(self.base.add(page * PAGE_SIZE) as *mut PageBytes) }
    }

    /// Pages that may differ from the page map, sorted, each with whether it
    /// must be compared to know (hot pages and, after an overflow, every
    /// page) or is known to have been written (it faulted).
    fn candidate_dirty_pages(&self) -> Vec<(usize, bool)> {
        if self.overflow.get() {
            return (0..self.accessible.get() / PAGE_SIZE).map(|p| (p, true)).collect();
        }
        let faulted = unsafe { &*self.dirty_list.get() }.iter().map(|p| (*p as usize, false));
        let hot = unsafe { &*self.hot.get() }.iter().map(|p| (*p as usize, true));
        let mut pages: Vec<(usize, bool)> = faulted.chain(hot).collect();
        pages.sort_unstable();
        pages.dedup_by_key(|(p, _)| *p);
        pages
    }

    /// Write-protects pages again (coalescing runs into one call each).
    fn protect_pages(&self, pages: &mut [u32]) {
        let bits = unsafe { &mut *self.dirty_bits.get() };
        pages.sort_unstable();
        let mut i = 0;
        while i < pages.len() {
            let start = pages[i] as usize;
            let mut end = start + 1;
            while i + 1 < pages.len() && pages[i + 1] as usize == end {
                i += 1;
                end += 1;
            }
            i += 1;
            protect(unsafe { self.base.add(start * PAGE_SIZE) }, (end - start) * PAGE_SIZE, libc::PROT_READ);
        }
        for p in pages.iter() {
            bits[*p as usize / 64] &= !(1 << (*p % 64));
        }
    }

    /// Write-protects every accessible page again and forgets dirty and hot pages.
    fn reprotect_clean(&self) {
        let list = unsafe { &mut *self.dirty_list.get() };
        let hot = unsafe { &mut *self.hot.get() };
        if self.overflow.get() {
            protect(self.base, self.accessible.get(), libc::PROT_READ);
            unsafe { &mut *self.dirty_bits.get() }.iter_mut().for_each(|w| *w = 0);
        } else {
            self.protect_pages(list);
            self.protect_pages(hot);
        }
        list.clear();
        hot.clear();
        self.overflow.set(false);
    }

    /// Ends a message: the pages it wrote stay writable as the new hot set
    /// (if there are few enough); every other writable page is protected.
    fn settle(&self, written: &[usize]) {
        if self.overflow.get() || written.len() > HOT_PAGE_LIMIT {
            self.reprotect_clean();
            return;
        }
        let list = unsafe { &mut *self.dirty_list.get() };
        let hot = unsafe { &mut *self.hot.get() };
        let mut demote: Vec<u32> =
            list.iter().chain(hot.iter()).copied().filter(|p| written.binary_search(&(*p as usize)).is_err()).collect();
        demote.sort_unstable();
        demote.dedup();
        self.protect_pages(&mut demote);
        hot.clear();
        hot.extend(written.iter().map(|p| *p as u32));
        list.clear();
    }
}

fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    unsafe { libc::sysconf(libc::_SC_PAGESIZE) as usize }
}

/// A handle to a tracked memory, held by the engine next to the wasmtime store.
#[derive(Clone)]
pub(crate) struct TrackedMemory(pub(crate) Arc<MemoryInner>);

/// Counts of one commit, for metrics and benchmarks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CommitStats {
    /// Pages the message wrote (or that differ, after an overflow).
    pub dirty_pages: usize,
    /// Whether tracking overflowed and fell back to comparison.
    pub overflowed: bool,
}

impl TrackedMemory {
    /// Current size in bytes.
    pub(crate) fn size(&self) -> usize {
        self.0.accessible.get()
    }

    /// Whether wasmtime's idea of the size is stale (see `MemoryInner::engine_size`).
    pub(crate) fn engine_view_is_stale(&self) -> bool {
        self.0.accessible.get() != self.0.engine_size.get()
    }

    /// Makes the memory equal to `target` with `size` bytes, starting from a
    /// memory equal to `current` (or from scratch if `current` is `None`).
    /// Costs O(pages that differ) when `current` shares structure with `target`.
    pub(crate) fn sync(&self, current: Option<&PageMap>, target: &PageMap, size: usize) -> Result<(), String> {
        let inner = &self.0;
        inner.reprotect_clean();
        if current.is_none() {
            inner.set_accessible(0)?;
        }
        inner.set_accessible(size)?;
        let write = |index: u64, bytes: &PageBytes| -> Result<(), String> {
            let page = index as usize;
            if page * PAGE_SIZE >= size {
                return Ok(());
            }
            let addr = unsafe { inner.base.add(page * PAGE_SIZE) };
            if !protect(addr, PAGE_SIZE, libc::PROT_READ | libc::PROT_WRITE) {
                return Err(format!("mprotect failed: {}", std::io::Error::last_os_error()));
            }
            inner.page_slice(page).copy_from_slice(bytes);
            protect(addr, PAGE_SIZE, libc::PROT_READ);
            Ok(())
        };
        match current {
            Some(current) => {
                for (index, bytes) in current.diff(target) {
                    write(index, bytes)?;
                }
            }
            None => {
                for (index, bytes) in target.stored_pages() {
                    write(index, bytes)?;
                }
            }
        }
        Ok(())
    }

    /// Writes bytes from the host, tracking the touched pages as dirty so the
    /// next commit includes them.
    #[cfg(test)]
    pub(crate) fn host_write(&self, offset: usize, data: &[u8]) -> Result<(), String> {
        let inner = &self.0;
        let end = offset.checked_add(data.len()).ok_or("write overflows")?;
        if end > inner.accessible.get() {
            return Err(format!("write of {} bytes at {offset} is out of bounds", data.len()));
        }
        if data.is_empty() {
            return Ok(());
        }
        for page in offset / PAGE_SIZE..=(end - 1) / PAGE_SIZE {
            if !inner.overflow.get() && !inner.is_dirty(page) && !inner.mark_dirty(page) && !inner.enter_overflow() {
                return Err("cannot unprotect memory".into());
            }
        }
        // SAFETY: bounds checked above; pages are writable now.
        unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), inner.base.add(offset), data.len()) };
        Ok(())
    }

    /// Copies the message's writes into `page_map` (a new version) and
    /// write-protects the memory again.
    pub(crate) fn commit(&self, page_map: &mut PageMap) -> CommitStats {
        let inner = &self.0;
        let overflowed = inner.overflow.get();
        let candidates = inner.candidate_dirty_pages();
        let mut changed: Vec<(u64, &PageBytes)> = Vec::with_capacity(candidates.len());
        for (page, compare) in candidates {
            let now = inner.page_slice(page);
            if !compare || now[..] != page_map.page(page as u64)[..] {
                changed.push((page as u64, now));
            }
        }
        let written: Vec<usize> = changed.iter().map(|(p, _)| *p as usize).collect();
        let stats = CommitStats { dirty_pages: changed.len(), overflowed };
        // Pages dropped by a shrink were never dirty here: memories only grow
        // during a message, and `size` is recorded separately by the caller.
        page_map.update(changed);
        inner.settle(&written);
        stats
    }

    /// Undoes the message's writes (restoring from `page_map`) and shrinks the
    /// memory back to `size` bytes.
    pub(crate) fn rollback(&self, page_map: &PageMap, size: usize) -> Result<(), String> {
        let inner = &self.0;
        let mut written = Vec::new();
        for (page, _) in inner.candidate_dirty_pages() {
            if page * PAGE_SIZE >= size {
                continue;
            }
            let reference = page_map.page(page as u64);
            let now = inner.page_slice(page);
            if now[..] != reference[..] {
                now.copy_from_slice(reference);
                written.push(page);
            }
        }
        inner.resize(size, true)?;
        inner.settle(&written);
        Ok(())
    }

    /// Bytes of the page at `index` as currently in memory (tests, snapshots).
    #[cfg(test)]
    pub(crate) fn read_page(&self, index: usize) -> PageBytes {
        *self.0.page_slice(index)
    }

    /// Whether `addr` lies in this memory's accessible range.
    #[cfg(test)]
    pub(crate) fn base(&self) -> *mut u8 {
        self.0.base
    }
}

thread_local! {
    /// The memory most recently created on this thread, picked up by the
    /// engine right after instantiation (wasmtime creates it internally).
    static LAST_CREATED: RefCell<Option<TrackedMemory>> = const { RefCell::new(None) };
    /// A memory the next instantiation on this thread should use instead of
    /// creating one (re-instantiating around an existing memory).
    static REUSE: RefCell<Option<TrackedMemory>> = const { RefCell::new(None) };
}

/// Makes the next instantiation on this thread use `memory`.
pub(crate) fn reuse_next(memory: TrackedMemory) {
    REUSE.with(|m| *m.borrow_mut() = Some(memory));
}

/// Takes the memory created by the last instantiation on this thread.
pub(crate) fn take_last_created() -> Option<TrackedMemory> {
    LAST_CREATED.with(|m| m.borrow_mut().take())
}

/// What wasmtime holds: a view of a [`MemoryInner`].
struct WasmtimeView(Arc<MemoryInner>);

// SAFETY: `as_ptr` is stable for the life of the mapping, growth never moves
// it, and the accessible range is always mapped readable.
unsafe impl LinearMemory for WasmtimeView {
    fn byte_size(&self) -> usize {
        self.0.accessible.get()
    }

    fn byte_capacity(&self) -> usize {
        self.0.reserved
    }

    fn grow_to(&mut self, new_size: usize) -> wasmtime::Result<()> {
        self.0.set_accessible(new_size).map_err(wasmtime::Error::msg)?;
        self.0.engine_size.set(new_size);
        Ok(())
    }

    fn as_ptr(&self) -> *mut u8 {
        self.0.base
    }
}

/// Creates tracked memories for every Wasm memory wasmtime instantiates.
pub(crate) struct CairnMemoryCreator;

// SAFETY: memories are zero-filled, page aligned, and followed by the
// requested guard region, which stays `PROT_NONE`.
unsafe impl MemoryCreator for CairnMemoryCreator {
    fn new_memory(
        &self,
        _ty: MemoryType,
        minimum: usize,
        _maximum: Option<usize>,
        reserved_size_in_bytes: Option<usize>,
        guard_size_in_bytes: usize,
    ) -> Result<Box<dyn LinearMemory>, String> {
        let reserved = reserved_size_in_bytes.unwrap_or(DEFAULT_RESERVATION);
        if let Some(existing) = REUSE.with(|m| m.borrow_mut().take()) {
            let inner = existing.0.clone();
            if inner.reserved != reserved || inner.mapping_len != reserved + guard_size_in_bytes {
                return Err("cannot reuse a memory with a different reservation".into());
            }
            inner.engine_size.set(inner.accessible.get());
            LAST_CREATED.with(|m| *m.borrow_mut() = Some(existing));
            return Ok(Box::new(WasmtimeView(inner)));
        }
        let inner = Arc::new(MemoryInner::new(minimum, reserved, guard_size_in_bytes)?);
        LAST_CREATED.with(|m| *m.borrow_mut() = Some(TrackedMemory(inner.clone())));
        Ok(Box::new(WasmtimeView(inner)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Simulates wasm writes by calling the fault handler the way the signal
    /// handler would, then writing.
    fn write(mem: &TrackedMemory, offset: usize, byte: u8) {
        let addr = mem.base() as usize + offset;
        if !mem.0.overflow.get() && !mem.0.is_dirty(offset / PAGE_SIZE) {
            assert!(mem.0.handle_fault(addr));
        }
        unsafe { *(addr as *mut u8) = byte };
    }

    fn new_mem(size: usize) -> TrackedMemory {
        TrackedMemory(Arc::new(MemoryInner::new(size, 1 << 30, 1 << 20).unwrap()))
    }

    #[test]
    fn commit_copies_only_dirty_pages() {
        let mem = new_mem(64 * PAGE_SIZE);
        let mut pm = PageMap::new();
        write(&mem, 10, 1);
        write(&mem, 5 * PAGE_SIZE + 3, 2);
        let stats = mem.commit(&mut pm);
        assert_eq!(stats.dirty_pages, 2);
        assert_eq!(pm.page(0)[10], 1);
        assert_eq!(pm.page(5)[3], 2);
        // The written pages stay writable (hot) for the next message; a commit
        // that does not write them protects them, so the next write faults.
        assert!(!mem.0.handle_fault(mem.base() as usize + 10));
        assert_eq!(mem.commit(&mut pm).dirty_pages, 0);
        assert!(mem.0.handle_fault(mem.base() as usize + 10));
    }

    #[test]
    fn rollback_restores_and_shrinks() {
        let mem = new_mem(4 * PAGE_SIZE);
        let mut pm = PageMap::new();
        write(&mem, 0, 7);
        mem.commit(&mut pm);
        write(&mem, 0, 9);
        mem.0.set_accessible(8 * PAGE_SIZE).unwrap();
        write(&mem, 6 * PAGE_SIZE, 9);
        mem.rollback(&pm, 4 * PAGE_SIZE).unwrap();
        assert_eq!(mem.size(), 4 * PAGE_SIZE);
        assert_eq!(mem.read_page(0)[0], 7);
        // Growing again exposes zeroed pages, not the rolled-back write.
        mem.0.set_accessible(8 * PAGE_SIZE).unwrap();
        assert_eq!(mem.read_page(6)[0], 0);
    }

    #[test]
    fn repeated_grow_and_rollback_always_exposes_zero_pages() {
        // Queries often grow the heap by a page and are then rolled back; the
        // rollback zeroes only the written pages beyond the old size.
        let mem = new_mem(4 * PAGE_SIZE);
        let pm = PageMap::new();
        for round in 0..4u8 {
            mem.0.set_accessible(8 * PAGE_SIZE).unwrap();
            for page in 4..8 {
                assert_eq!(mem.read_page(page), [0; PAGE_SIZE], "round {round}, page {page}");
            }
            write(&mem, 0, round + 1);
            write(&mem, (4 + usize::from(round % 2)) * PAGE_SIZE + 100, 0xaa);
            mem.rollback(&pm, 4 * PAGE_SIZE).unwrap();
            assert_eq!(mem.size(), 4 * PAGE_SIZE);
            assert_eq!(mem.read_page(0)[0], 0);
        }
    }

    #[test]
    fn hot_pages_stay_writable_and_are_found_by_comparison() {
        let mem = new_mem(64 * PAGE_SIZE);
        let mut pm = PageMap::new();
        write(&mem, 10, 1);
        write(&mem, 3 * PAGE_SIZE, 1);
        mem.commit(&mut pm);
        // Both pages are hot now: writing them again takes no fault.
        assert!(mem.0.is_dirty(0) && mem.0.is_dirty(3));
        unsafe { *mem.base().add(11) = 2 };
        let stats = mem.commit(&mut pm);
        assert_eq!(stats.dirty_pages, 1, "only the page that changed is committed");
        assert_eq!(pm.page(0)[11], 2);
        assert!(!mem.0.is_dirty(3), "page 3 was not written again, so it is protected");
        // A rollback restores hot pages from the page map.
        unsafe { *mem.base().add(12) = 9 };
        mem.rollback(&pm, 64 * PAGE_SIZE).unwrap();
        assert_eq!(mem.read_page(0)[12], 0);
        assert_eq!(pm.page(0)[12], 0);
    }

    #[test]
    fn overflow_falls_back_to_comparison() {
        let pages = DIRTY_LIST_CAPACITY + 10;
        let mem = new_mem(pages * PAGE_SIZE);
        let mut pm = PageMap::new();
        for p in 0..pages {
            write(&mem, p * PAGE_SIZE, 1);
        }
        assert!(mem.0.overflow.get());
        let stats = mem.commit(&mut pm);
        assert!(stats.overflowed);
        assert_eq!(stats.dirty_pages, pages);
        assert_eq!(pm.num_stored_pages(), pages);
        assert!(!mem.0.overflow.get());
    }

    #[test]
    fn sync_applies_differences() {
        let mem = new_mem(16 * PAGE_SIZE);
        let a = PageMap::new();
        let mut b = a.clone();
        b.write(3 * PAGE_SIZE as u64, &[5; 10]);
        mem.sync(Some(&a), &b, 16 * PAGE_SIZE).unwrap();
        assert_eq!(mem.read_page(3)[0], 5);
        mem.sync(Some(&b), &a, 16 * PAGE_SIZE).unwrap();
        assert_eq!(mem.read_page(3)[0], 0);
        mem.host_write(PAGE_SIZE - 2, &[1, 2, 3, 4]).unwrap();
        let mut c = a.clone();
        assert_eq!(mem.commit(&mut c).dirty_pages, 2);
        assert_eq!(&c.page(1)[..2], &[3, 4]);
    }
}
