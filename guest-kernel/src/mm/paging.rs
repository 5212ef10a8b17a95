//! 4-level x86-64 page tables.
//!
//! Every address space shares the kernel half (PML4 entries 256..511: the direct map and the
//! kernel image), copied from the boot tables when the space is made; the user half
//! (entries 0..255) is private. Table frames are reached through the direct map.
//!
//! Leaf entries carry a software bit, [`NOT_OWNED`]: the frame belongs to someone else (a
//! shared mapping, an io_uring ring) and must not be freed when the page is unmapped.

use crate::mm::{frame, frame_ptr, PAGE_SIZE, USER_END};

pub const PRESENT: u64 = 1 << 0;
pub const WRITABLE: u64 = 1 << 1;
pub const USER: u64 = 1 << 2;
pub const NOT_OWNED: u64 = 1 << 9;
pub const NO_EXECUTE: u64 = 1 << 63;
const ADDR_MASK: u64 = 0x000f_ffff_ffff_f000;

/// The physical frame a page-table entry points at.
pub const fn pte_addr(pte: u64) -> u64 {
    pte & ADDR_MASK
}

#[track_caller]
fn table(phys: u64) -> *mut u64 {
    frame_ptr(phys).cast()
}

fn index(va: u64, level: u32) -> usize {
    ((va >> (12 + 9 * (level - 1))) & 0x1ff) as usize
}

fn read_cr3() -> u64 {
    let cr3: u64;
    // SAFETY: reading CR3 has no side effects.
    unsafe { core::arch::asm!("mov {}, cr3", out(reg) cr3, options(nomem, nostack, preserves_flags)) };
    cr3 & ADDR_MASK
}

static KERNEL_ROOT: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

/// Remembers the boot tables as the kernel's own (call once, early).
pub fn init() {
    KERNEL_ROOT.store(read_cr3(), core::sync::atomic::Ordering::Relaxed);
}

/// The tables each CPU has loaded (CR3), for TLB shootdowns: a CPU publishes the root
/// before it loads it, so a CPU that changes an entry and then finds another CPU not on
/// those tables knows that CPU will walk the changed entry when it gets there.
static LOADED_ROOT: [core::sync::atomic::AtomicU64; crate::arch::cpu::MAX_CPUS] =
    [const { core::sync::atomic::AtomicU64::new(0) }; crate::arch::cpu::MAX_CPUS];

/// Loads `root` into CR3 (after publishing it in `LOADED_ROOT`).
fn load_cr3(root: u64) {
    // SeqCst: pairs with the fence in `PageTable::flush` (see `LOADED_ROOT`).
    LOADED_ROOT[crate::arch::cpu::index()].store(root, core::sync::atomic::Ordering::SeqCst);
    // SAFETY: the kernel half is identical in every address space (and the boot tables
    // map the whole kernel), so the kernel keeps running across the switch.
    unsafe { core::arch::asm!("mov cr3, {}", in(reg) root, options(nostack, preserves_flags)) };
}

/// Switches to the kernel's own tables (used before a user space is torn down).
pub fn activate_kernel() {
    let root = KERNEL_ROOT.load(core::sync::atomic::Ordering::Relaxed);
    if read_cr3() != root {
        load_cr3(root);
    }
}

/// The CPUs other than this one that have `root` loaded.
fn other_cpus_on(root: u64) -> u64 {
    let me = crate::arch::cpu::index();
    let mut mask = 0;
    for cpu in crate::arch::smp::online_cpus() {
        if cpu != me && LOADED_ROOT[cpu].load(core::sync::atomic::Ordering::SeqCst) == root {
            mask |= 1 << cpu;
        }
    }
    mask
}

#[derive(Debug)]
pub struct OutOfMemory;

/// A user address space's page tables (the kernel half shared).
pub struct PageTable {
    root: u64,
    /// Open while [`PageTable::batched`] runs: shootdowns gathered into one.
    batch: Option<Batch>,
}

/// Changes made under [`PageTable::batched`] (Linux's `mmu_gather`): whether other CPUs
/// may hold stale entries, and the frames to free once they have flushed them.
#[derive(Default)]
struct Batch {
    stale: bool,
    frames: alloc::vec::Vec<u64>,
}

impl PageTable {
    pub fn new() -> Result<Self, OutOfMemory> {
        let root = frame::alloc().ok_or(OutOfMemory)?;
        let kernel = KERNEL_ROOT.load(core::sync::atomic::Ordering::Relaxed);
        // SAFETY: both tables are whole frames in the direct map; the new one is ours.
        unsafe {
            core::arch::asm!("rep stosq", inout("rdi") table(root) => _, inout("rcx") 256u64 => _, in("rax") 0u64,
                             options(nostack, preserves_flags));
            core::arch::asm!("rep movsq", inout("rdi") table(root).add(256) => _, inout("rsi") table(kernel).add(256) => _,
                             inout("rcx") 256u64 => _, options(nostack, preserves_flags));
        }
        Ok(Self { root, batch: None })
    }

    /// Loads these tables into CR3.
    pub fn activate(&self) {
        if read_cr3() != self.root {
            load_cr3(self.root);
        }
    }

    fn is_active(&self) -> bool {
        read_cr3() == self.root
    }

    /// The leaf entry for `va`, creating missing tables when `create` is set.
    fn leaf(&mut self, va: u64, create: bool) -> Result<Option<*mut u64>, OutOfMemory> {
        debug_assert!(va < USER_END);
        let mut table_phys = self.root;
        for level in (2..=4).rev() {
            // SAFETY: `table_phys` is a page-table frame of this address space.
            let entry = unsafe { table(table_phys).add(index(va, level)) };
            // SAFETY: as above; the entry is a plain u64.
            let mut value = unsafe { entry.read() };
            if value & PRESENT == 0 {
                if !create {
                    return Ok(None);
                }
                let new = frame::alloc_zeroed().ok_or(OutOfMemory)?;
                value = new | PRESENT | WRITABLE | USER;
                // SAFETY: as above.
                unsafe { entry.write(value) };
            }
            table_phys = pte_addr(value);
        }
        // SAFETY: `table_phys` is now a level-1 table of this address space.
        Ok(Some(unsafe { table(table_phys).add(index(va, 1)) }))
    }

    /// The leaf entry of `va` (0 if none).
    pub fn lookup(&self, va: u64) -> u64 {
        let mut table_phys = self.root;
        for level in (1..=4).rev() {
            // SAFETY: walking this address space's own tables.
            let value = unsafe { table(table_phys).add(index(va, level)).read() };
            if value & PRESENT == 0 || level == 1 {
                return value;
            }
            table_phys = pte_addr(value);
        }
        0
    }

    /// Maps the page at `va` to frame `pa` with `flags` (PRESENT is added). Replaces (and
    /// returns) an existing entry.
    pub fn map(&mut self, va: u64, pa: u64, flags: u64) -> Result<u64, OutOfMemory> {
        let entry = self.leaf(va, true)?.expect("created");
        // SAFETY: `entry` points into a table of this address space.
        let old = unsafe { entry.replace(pa | flags | PRESENT) };
        if old & PRESENT != 0 {
            self.flush(va);
        }
        Ok(old)
    }

    /// Removes the mapping of `va`; returns the old entry (0 if none).
    pub fn unmap(&mut self, va: u64) -> u64 {
        let Ok(Some(entry)) = self.leaf(va, false) else { return 0 };
        // SAFETY: `entry` points into a table of this address space.
        let old = unsafe { entry.replace(0) };
        if old & PRESENT != 0 {
            self.flush(va);
        }
        old
    }

    /// Changes the flags of a present page, keeping its frame and software bits.
    pub fn protect(&mut self, va: u64, flags: u64) {
        if let Ok(Some(entry)) = self.leaf(va, false) {
            // SAFETY: `entry` points into a table of this address space.
            let old = unsafe { entry.read() };
            if old & PRESENT != 0 {
                // SAFETY: as above.
                unsafe { entry.write(pte_addr(old) | (old & NOT_OWNED) | flags | PRESENT) };
                self.flush(va);
            }
        }
    }

    /// Drops `va`'s old entry from every TLB that may hold it: this CPU's, and those of
    /// other CPUs on these tables (a shootdown: they flush and answer before this
    /// returns, so the old frame may be reused at once). In a batch the other CPUs flush
    /// once, when it ends.
    fn flush(&mut self, va: u64) {
        if self.is_active() {
            // SAFETY: invalidating a TLB entry is always safe.
            unsafe { core::arch::asm!("invlpg [{}]", in(reg) va, options(nostack, preserves_flags)) };
        }
        match &mut self.batch {
            Some(b) => b.stale = true,
            None => self.shoot_down(),
        }
    }

    /// Makes the other CPUs on these tables flush their TLBs.
    fn shoot_down(&self) {
        if crate::arch::smp::online_count() > 1 {
            // The entries' stores before the look at `LOADED_ROOT` (pairs with `load_cr3`).
            core::sync::atomic::fence(core::sync::atomic::Ordering::SeqCst);
            let others = other_cpus_on(self.root);
            if others != 0 {
                crate::arch::smp::flush_tlbs(others);
            }
        }
    }

    /// Runs `f` with the shootdowns of the pages it changes gathered into one round at
    /// its end (this CPU's TLB still drops each page at once), after which the frames it
    /// gave to [`PageTable::free_after_flush`] are freed. For changes of many pages at
    /// once (munmap, mprotect, exit); a batch inside a batch joins it.
    pub fn batched<R>(&mut self, f: impl FnOnce(&mut Self) -> R) -> R {
        if self.batch.is_some() {
            return f(self);
        }
        self.batch = Some(Batch::default());
        let r = f(self);
        self.end_batch();
        self.batch = None;
        r
    }

    /// Frees `frame`, which these tables mapped until now, once no TLB can hold it: at
    /// once outside a batch (its entry was already shot down), else when the batch ends.
    pub fn free_after_flush(&mut self, frame: u64) {
        if let Some(b) = &mut self.batch {
            if b.frames.try_reserve(1).is_ok() {
                b.frames.push(frame);
                return;
            }
            // No memory to gather more: flush what is gathered now.
            self.end_batch();
        }
        frame::free(frame);
    }

    /// Flushes the other CPUs if the batch changed entries, then frees its frames; the
    /// batch stays open (empty).
    fn end_batch(&mut self) {
        let Some(b) = &mut self.batch else { return };
        let stale = core::mem::take(&mut b.stale);
        let frames = core::mem::take(&mut b.frames);
        if stale {
            self.shoot_down();
        }
        for f in frames {
            frame::free(f);
        }
    }

    /// Calls `f(va, pte)` for each present user page in `[start, end)`.
    pub fn for_each_page(&self, start: u64, end: u64, f: &mut dyn FnMut(u64, u64)) {
        walk(self.root, 4, 0, start, end, f);
    }

    /// Frees every user page-table frame (not the leaf frames: the caller did that).
    fn free_tables(&mut self) {
        free_level(self.root, 4);
    }
}

fn walk(table_phys: u64, level: u32, base: u64, start: u64, end: u64, f: &mut dyn FnMut(u64, u64)) {
    let span = PAGE_SIZE << (9 * (level - 1));
    let limit: u64 = if level == 4 { 256 } else { 512 };
    let first = start.saturating_sub(base) / span;
    let last = end.saturating_sub(base).div_ceil(span).min(limit);
    for i in first..last {
        let va = base + i * span;
        // SAFETY: walking a page-table frame of a live address space.
        let value = unsafe { table(table_phys).add(i as usize).read() };
        if value & PRESENT == 0 {
            continue;
        }
        if level == 1 {
            f(va, value);
        } else {
            walk(pte_addr(value), level - 1, va, start, end, f);
        }
    }
}

fn free_level(table_phys: u64, level: u32) {
    if level > 1 {
        let limit = if level == 4 { 256 } else { 512 };
        for i in 0..limit {
            // SAFETY: reading a page-table frame being torn down.
            let value = unsafe { table(table_phys).add(i).read() };
            if value & PRESENT != 0 {
                free_level(pte_addr(value), level - 1);
            }
        }
    }
    frame::free(table_phys);
}

impl Drop for PageTable {
    fn drop(&mut self) {
        if self.is_active() {
            activate_kernel();
        }
        // A thread that exited on another CPU may still be switching away from these
        // tables (its CPU walks them until it loads the next task's).
        while other_cpus_on(self.root) != 0 {
            crate::arch::cpu::relax();
        }
        self.free_tables();
    }
}
