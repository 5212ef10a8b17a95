//! A process's user address space: page tables plus the areas (VMAs) that say what may be
//! mapped where. Pages are filled on first touch (demand paging): a fault inside an area
//! with the right permission gets a zeroed frame, or the file's page when the area maps a
//! file (read in first, with the address space unlocked, when it is not cached:
//! [`Fault::Missing`]); anything else is a SIGSEGV.

use alloc::collections::BTreeMap;
use alloc::sync::{Arc, Weak};
use alloc::vec::Vec;

use crate::errno::{KResult, EACCES, EFAULT, EFILL, EINVAL, ENOMEM};
use crate::mm::paging::{pte_addr, PageTable, NOT_OWNED, NO_EXECUTE, PRESENT, USER, WRITABLE};
use crate::mm::{frame, page_up, PAGE_SIZE, USER_END};
use crate::sync::SpinLock;

pub const PROT_READ: u32 = 1;
pub const PROT_WRITE: u32 = 2;
pub const PROT_EXEC: u32 = 4;

/// Lowest address `mmap` hands out without a hint, and where it starts looking (downward).
const MMAP_MIN: u64 = 0x1000_0000;
const MMAP_TOP: u64 = 0x7f00_0000_0000;
/// Lowest address a fixed mapping may use (Linux's default `vm.mmap_min_addr`).
pub const MIN_ADDR: u64 = 0x10000;

/// Page frames shared by every mapping of them: a `MAP_SHARED` anonymous area (after
/// fork), a RAM file's contents, or a file's page cache (`mm::filemap`), which mapped
/// files map directly. Pages are kept sparsely by index, each with its state; frames are
/// allocated zeroed on first use (where there is nothing to read) and freed with the
/// last user.
pub struct SharedPages {
    map: SpinLock<PageMap>,
    /// Woken when a page's read finishes (`PG_LOCKED` cleared): Linux's page wait queue,
    /// one per file here.
    pub io_wait: crate::task::wait::WaitQueue,
    /// For a file's cache: the address spaces with areas that map it (Linux's i_mmap,
    /// by address space rather than by area), so the shrinker can unmap a page.
    mappers: SpinLock<Vec<Weak<SpinLock<UserSpace>>>>,
}

/// The page's bytes are the file's (or, for memory that has no file, simply valid).
pub const PG_UPTODATE: u8 = 1;
/// Changed in memory and not yet written to the file.
pub const PG_DIRTY: u8 = 2;
/// A read into the page is in flight; its bytes are not yet valid.
pub const PG_LOCKED: u8 = 4;
/// Mapped into a writable shared area: stores may have changed it without a fault,
/// so writeback treats it as dirty.
pub const PG_MAPPED_W: u8 = 8;
/// Mapped into some page table since the cache last had no mapping: the shrinker unmaps
/// it from the address spaces that map the file (`SharedPages::mappers`) before it
/// drops it.
pub const PG_MAPPED: u8 = 32;
/// The file changed under an in-flight read (a write through the cache): its result is
/// stale and the page is dropped when it arrives.
pub const PG_STALE: u8 = 16;

#[derive(Clone, Copy)]
pub struct Slot {
    pub frame: u64,
    pub flags: u8,
}

/// The pages by index, and how many there may be (an index past `len` is EINVAL).
pub struct PageMap {
    pub slots: BTreeMap<usize, Slot>,
    pub len: usize,
    /// How many slots are `PG_DIRTY` (the page cache keeps it).
    pub dirty: usize,
}

impl SharedPages {
    pub fn new(pages: usize) -> Arc<Self> {
        Arc::new(Self {
            map: SpinLock::new(PageMap { slots: BTreeMap::new(), len: pages, dirty: 0 }),
            io_wait: crate::task::wait::WaitQueue::new(),
            mappers: SpinLock::new(Vec::new()),
        })
    }

    /// Records that `mm` has (or is about to have) areas mapping these pages, before any
    /// page of them is mapped there.
    pub fn add_mapper(&self, mm: &Arc<SpinLock<UserSpace>>) {
        let mut mappers = self.mappers.lock();
        mappers.retain(|w| w.strong_count() > 0);
        if !mappers.iter().any(|w| core::ptr::eq(w.as_ptr(), Arc::as_ptr(mm))) {
            mappers.push(Arc::downgrade(mm));
        }
    }

    /// Takes page `index` (at `frame`) out of every page table that maps it, without
    /// waiting: false (nothing changed) when an address space is busy (locked) now.
    /// The caller holds the page map locked.
    ///
    /// Every address space that maps the pages is in `mappers`: mmap adds it before it
    /// maps a page, fork before its parent is unlocked.
    pub fn unmap_everywhere(&self, index: usize, frame: u64) -> bool {
        let Some(mappers) = self.mappers.try_lock() else { return false };
        let mut spaces = Vec::new();
        for mm in mappers.iter().filter_map(Weak::upgrade) {
            spaces.push(mm);
        }
        let mut guards = Vec::new();
        for mm in &spaces {
            match mm.try_lock() {
                Some(guard) => guards.push(guard),
                None => return false,
            }
        }
        for guard in &mut guards {
            guard.unmap_shared_page(self, index, frame);
        }
        true
    }

    /// The pages, locked (the page cache works on them directly).
    pub fn lock(&self) -> crate::sync::SpinGuard<'_, PageMap> {
        self.map.lock()
    }

    pub fn try_lock(&self) -> Option<crate::sync::SpinGuard<'_, PageMap>> {
        self.map.try_lock()
    }

    /// The frame of page `index`, allocated and zeroed on first use; EINVAL past the end.
    pub fn frame(&self, index: usize) -> KResult<u64> {
        self.frame_for_map(index, false)
    }

    /// As `frame`, for a mapping; `writable`: a writable shared mapping, whose stores
    /// writeback must take as changes.
    pub fn frame_for_map(&self, index: usize, writable: bool) -> KResult<u64> {
        let mut map = self.map.lock();
        if index >= map.len {
            return Err(EINVAL);
        }
        let slot = match map.slots.get_mut(&index) {
            Some(slot) => slot,
            None => {
                let frame = frame::alloc_zeroed().ok_or(ENOMEM)?;
                map.slots.entry(index).or_insert(Slot { frame, flags: PG_UPTODATE })
            }
        };
        if writable {
            slot.flags |= PG_MAPPED_W;
        }
        Ok(slot.frame)
    }

    /// For a fault in an area mapping a file's cache: the frame of page `index` if it is
    /// up to date (None: it must be read first), marked mapped (and written through a
    /// mapping, with `writable`) so the shrinker leaves it.
    pub fn cached_for_map(&self, index: usize, writable: bool) -> Option<u64> {
        let mut map = self.map.lock();
        let slot = map.slots.get_mut(&index).filter(|s| s.flags & PG_UPTODATE != 0)?;
        slot.flags |= PG_MAPPED | if writable { PG_MAPPED_W } else { 0 };
        if writable {
            // Stores may come: the flusher writes the page back in its time.
            super::writeback::dirtied();
        }
        Some(slot.frame)
    }

    /// The frame of page `index` if it has one (0 otherwise: the page reads as zeros).
    pub fn existing(&self, index: usize) -> u64 {
        self.map.lock().slots.get(&index).map_or(0, |s| s.frame)
    }

    /// A file shrank to `pages` pages: the pages past them are unmapped everywhere and
    /// dropped, so a fault there is a SIGBUS (those an address space busy now keeps
    /// mapped are zeroed, and the size stops after them).
    pub fn truncate(&self, pages: usize) {
        let mut map = self.map.lock();
        let gone: Vec<(usize, u64)> = map.slots.range(pages..).map(|(&i, s)| (i, s.frame)).collect();
        let mut len = pages;
        for (i, frame) in gone {
            if self.unmap_everywhere(i, frame) {
                map.slots.remove(&i);
                frame::free(frame);
            } else {
                // SAFETY: a frame of these pages, in the direct map, one page long.
                unsafe { core::ptr::write_bytes(crate::mm::frame_ptr(frame), 0, PAGE_SIZE as usize) };
                len = i + 1;
            }
        }
        map.len = len;
    }

    /// Makes room for at least `pages` pages.
    pub fn grow(&self, pages: usize) {
        let mut map = self.map.lock();
        map.len = map.len.max(pages);
    }

    pub fn len(&self) -> usize {
        self.map.lock().len
    }
}

impl Drop for SharedPages {
    fn drop(&mut self) {
        for slot in self.map.lock().slots.values() {
            frame::free(slot.frame);
        }
    }
}

/// What backs a new area's pages.
pub enum Backing {
    /// Zero-filled pages of this address space alone (copied on fork).
    Private,
    /// New zero-filled pages shared with children after fork.
    SharedAnonymous,
    /// Existing shared pages (a file's), from page `.1` on.
    Shared(Arc<SharedPages>, usize),
    /// A file's pages mapped privately (MAP_PRIVATE), from page `.1` on: mapped
    /// read-only from them until the process writes a page, which is then copied
    /// (copy-on-write): until then the mapping sees the file change, as on Linux.
    PrivateFile(Arc<SharedPages>, usize),
    /// Pages every process shares and none may write (the vDSO and its vvar page):
    /// mprotect cannot make them writable.
    Sealed(Arc<SharedPages>, usize),
}

#[derive(Clone)]
pub struct Vma {
    pub start: u64,
    pub end: u64,
    pub prot: u32,
    /// For shared mappings: the pages, and the index of this area's first page in them.
    /// For a private file mapping (`cow`), the file's pages it copies on write.
    pub shared: Option<(Arc<SharedPages>, usize)>,
    /// A private mapping of `shared`'s pages: they are mapped read-only, and a write
    /// fault copies the page into the process's own frame.
    pub cow: bool,
    /// Never writable (`Backing::Sealed`).
    pub sealed: bool,
    /// What `/proc/PID/maps` names it by: a file's path and the file offset of `start`,
    /// or `[vdso]`, `[vvar]` (offset 0). Set by `label`.
    pub label: Option<(Arc<str>, u64)>,
    /// The file a writable shared mapping stores into (Linux's vm_file): msync, munmap
    /// and exit write its changed pages back. Set by `set_file`.
    pub file: Option<Arc<dyn crate::fs::Node>>,
    /// The file whose page cache `shared` is: a page not cached is read from it on
    /// fault. Set by `set_source`.
    pub source: Option<Arc<dyn crate::fs::Node>>,
}

/// How a fault ended.
pub enum Fault {
    /// The page is mapped.
    Mapped,
    /// The access is not allowed (SIGSEGV; EFAULT for a kernel access).
    Denied,
    /// The area is there but its object ends before the page (SIGBUS; EFAULT for a
    /// kernel access).
    Bus,
    /// No frame was free: try again after dirty pages were written back
    /// (`writeback::reclaim_wait`), else the process is out of memory.
    NoMemory,
    /// The page of a file's cache at this index must be read in first
    /// ([`fault_in_file`]), with the address space unlocked; then the access is tried
    /// again.
    Missing(Arc<dyn crate::fs::Node>, u64),
}

impl Vma {
    fn pte_flags(&self) -> u64 {
        let mut flags = USER;
        if self.prot & PROT_WRITE != 0 {
            flags |= WRITABLE;
        }
        if self.prot & PROT_EXEC == 0 {
            flags |= NO_EXECUTE;
        }
        flags
    }
}

pub struct UserSpace {
    pub pt: PageTable,
    vmas: BTreeMap<u64, Vma>,
    pub brk_start: u64,
    pub brk: u64,
    /// Where exec put argv's strings (`/proc/PID/cmdline` reads them).
    pub args: (u64, u64),
    /// The executable's path as exec was given it, made absolute (`/proc/PID/exe`).
    pub exe: alloc::string::String,
    /// What an access that ended with [`EFILL`] waits for before it tries again: a file
    /// page to read in, or (None) dirty pages written back so memory can be found.
    pub pending_fill: Option<(Arc<dyn crate::fs::Node>, u64)>,
}

impl UserSpace {
    pub fn new() -> KResult<Self> {
        Ok(Self { pt: PageTable::new()?, vmas: BTreeMap::new(), brk_start: 0, brk: 0, args: (0, 0), exe: alloc::string::String::new(), pending_fill: None })
    }

    /// Every area, lowest first.
    pub fn vmas(&self) -> impl Iterator<Item = &Vma> {
        self.vmas.values()
    }

    /// The area containing `addr`.
    pub fn vma(&self, addr: u64) -> Option<&Vma> {
        self.vmas.range(..=addr).next_back().map(|(_, v)| v).filter(|v| addr < v.end)
    }

    fn overlaps(&self, start: u64, end: u64) -> bool {
        self.vmas.range(..end).next_back().is_some_and(|(_, v)| v.end > start)
    }

    /// Splits the area that strictly contains `addr` in two at `addr`.
    fn split(&mut self, addr: u64) {
        let Some(v) = self.vma(addr).filter(|v| v.start < addr).cloned() else { return };
        let mut high = v.clone();
        high.start = addr;
        if let Some((name, off)) = &v.label
            && !name.starts_with('[')
        {
            high.label = Some((Arc::clone(name), off + (addr - v.start)));
        }
        if let Some((pages, first)) = &v.shared {
            high.shared = Some((Arc::clone(pages), first + ((addr - v.start) / PAGE_SIZE) as usize));
        }
        self.vmas.get_mut(&v.start).expect("found above").end = addr;
        self.vmas.insert(addr, high);
    }

    /// Unmaps `[start, end)` (page-aligned): areas are cut, pages freed.
    pub fn unmap_range(&mut self, start: u64, end: u64) {
        self.split(start);
        self.split(end);
        let keys: Vec<u64> = self.vmas.range(start..end).map(|(&k, _)| k).collect();
        // The areas go after the batch's shootdown: the last reference to shared pages
        // frees their frames, which other CPUs' TLBs may hold until then.
        let gone: Vec<Vma> = keys.iter().map(|k| self.vmas.remove(k).expect("key from the map")).collect();
        self.pt.batched(|pt| {
            for v in &gone {
                release_pages(pt, v.start, v.end);
            }
        });
        drop(gone);
    }

    /// Adds an area at `[start, end)`, replacing whatever was there (MAP_FIXED semantics).
    pub fn map_fixed(&mut self, start: u64, end: u64, prot: u32, backing: Backing) -> KResult<u64> {
        if start < MIN_ADDR || end > USER_END || start >= end {
            return Err(EINVAL);
        }
        self.unmap_range(start, end);
        let sealed = matches!(backing, Backing::Sealed(..));
        let cow = matches!(backing, Backing::PrivateFile(..));
        let shared = match backing {
            Backing::Private => None,
            Backing::SharedAnonymous => Some((SharedPages::new(((end - start) / PAGE_SIZE) as usize), 0)),
            Backing::Shared(pages, first) | Backing::Sealed(pages, first) | Backing::PrivateFile(pages, first) => Some((pages, first)),
        };
        self.vmas.insert(start, Vma { start, end, prot: if sealed { prot & !PROT_WRITE } else { prot }, shared, cow, sealed, label: None, file: None, source: None });
        Ok(start)
    }

    /// A free range of `len` bytes: `hint` if it is free, else the highest free range below
    /// the previous mappings.
    pub fn find_free(&self, hint: u64, len: u64) -> KResult<u64> {
        if hint >= MIN_ADDR && hint.checked_add(len).is_some_and(|e| e <= MMAP_TOP) && !self.overlaps(hint, hint + len) {
            return Ok(hint);
        }
        let mut top = MMAP_TOP;
        for (_, v) in self.vmas.range(..MMAP_TOP).rev() {
            if v.end <= top && top - v.end >= len {
                return Ok(top - len);
            }
            top = top.min(v.start);
        }
        top.checked_sub(len).filter(|&a| a >= MMAP_MIN).ok_or(ENOMEM)
    }

    /// mremap: `[old, old + old_len)` (inside one area, EFAULT otherwise) becomes
    /// `new_len` bytes: cut at the end, grown in place when the space after it is free,
    /// else (with `may_move`) moved to a free range or to `fixed`, its pages going along
    /// (no copy). With `keep_old` (MREMAP_DONTUNMAP) the old range stays mapped, empty.
    /// Returns the new address.
    pub fn remap(&mut self, old: u64, old_len: u64, new_len: u64, may_move: bool, fixed: Option<u64>, keep_old: bool) -> KResult<u64> {
        let v = self.vma(old).cloned().ok_or(EFAULT)?;
        if old + old_len > v.end {
            return Err(EFAULT);
        }
        if let Some(dst) = fixed {
            if dst < old + old_len && old < dst + new_len {
                return Err(EINVAL);
            }
            if dst < MIN_ADDR || dst.checked_add(new_len).is_none_or(|e| e > USER_END) {
                return Err(EINVAL);
            }
            self.unmap_range(dst, dst + new_len);
            return self.move_area(&v, old, old_len, dst, new_len, keep_old);
        }
        if !keep_old && new_len <= old_len {
            self.unmap_range(old + new_len, old + old_len);
            return Ok(old);
        }
        let end = old + new_len;
        if !keep_old && old + old_len == v.end && end <= MMAP_TOP && !self.overlaps(v.end, end) {
            if let Some((pages, first)) = &v.shared {
                pages.grow(first + ((end - v.start) / PAGE_SIZE) as usize);
            }
            self.vmas.get_mut(&v.start).expect("found above").end = end;
            return Ok(old);
        }
        if !may_move {
            return Err(ENOMEM);
        }
        let dst = self.find_free(0, new_len)?;
        self.move_area(&v, old, old_len, dst, new_len, keep_old)
    }

    /// Moves `[old, old + old_len)` of area `v` to the free range at `dst` as `new_len`
    /// bytes, the page table entries going along.
    fn move_area(&mut self, v: &Vma, old: u64, old_len: u64, dst: u64, new_len: u64, keep_old: bool) -> KResult<u64> {
        let shared = v.shared.as_ref().map(|(pages, first)| {
            let first = first + ((old - v.start) / PAGE_SIZE) as usize;
            pages.grow(first + (new_len / PAGE_SIZE) as usize);
            (Arc::clone(pages), first)
        });
        let mut present = Vec::new();
        self.pt.for_each_page(old, old + old_len.min(new_len), &mut |va, _| present.push(va));
        for (k, &va) in present.iter().enumerate() {
            let pte = self.pt.unmap(va);
            if self.pt.map(dst + (va - old), pte_addr(pte), pte & !(0x000f_ffff_ffff_f000 | PRESENT)).is_err() {
                // Out of page-table memory: every page moved goes back where it was (no
                // area covers `dst`, where nothing could find them).
                let _ = self.pt.map(va, pte_addr(pte), pte & !(0x000f_ffff_ffff_f000 | PRESENT));
                for &back in &present[..k] {
                    let moved = self.pt.unmap(dst + (back - old));
                    let _ = self.pt.map(back, pte_addr(moved), moved & !(0x000f_ffff_ffff_f000 | PRESENT));
                }
                return Err(ENOMEM);
            }
        }
        let keep = keep_old.then(|| (v.prot, v.shared.as_ref().map(|(p, f)| (Arc::clone(p), f + ((old - v.start) / PAGE_SIZE) as usize)), v.sealed));
        self.unmap_range(old, old + old_len);
        if let Some((prot, kept, sealed)) = keep {
            self.vmas.insert(old, Vma { start: old, end: old + old_len, prot, shared: kept, cow: v.cow, sealed, label: None, file: v.file.clone(), source: v.source.clone() });
        }
        let label = v.label.as_ref().map(|(name, off)| (Arc::clone(name), if name.starts_with('[') { 0 } else { off + (old - v.start) }));
        self.vmas.insert(dst, Vma { start: dst, end: dst + new_len, prot: v.prot, shared, cow: v.cow, sealed: v.sealed, label, file: v.file.clone(), source: v.source.clone() });
        Ok(dst)
    }

    /// Names the areas that start at `start` and end by `end` (just mapped there):
    /// `name`, with file offset `offset` at `start` (`/proc/PID/maps`).
    pub fn label(&mut self, start: u64, end: u64, name: &str, offset: u64) {
        let name: Arc<str> = Arc::from(name);
        for (_, v) in self.vmas.range_mut(start..end) {
            v.label = Some((Arc::clone(&name), offset + (v.start - start)));
        }
    }

    /// Records that the areas from `start` to `end` (just mapped there) store into `file`.
    pub fn set_file(&mut self, start: u64, end: u64, file: Arc<dyn crate::fs::Node>) {
        for (_, v) in self.vmas.range_mut(start..end) {
            v.file = Some(Arc::clone(&file));
        }
    }

    /// Records that the areas from `start` to `end` (just mapped there) map `file`'s page
    /// cache: pages not in it are read from `file` on fault.
    pub fn set_source(&mut self, start: u64, end: u64, file: Arc<dyn crate::fs::Node>) {
        for (_, v) in self.vmas.range_mut(start..end) {
            v.source = Some(Arc::clone(&file));
        }
    }

    /// Unmaps the page of `pages` at `index` (frame `frame`) from every area here that
    /// maps it.
    fn unmap_shared_page(&mut self, pages: &SharedPages, index: usize, frame: u64) {
        let mut at = Vec::new();
        for v in self.vmas.values() {
            let Some((p, first)) = &v.shared else { continue };
            let count = ((v.end - v.start) / PAGE_SIZE) as usize;
            if core::ptr::eq(Arc::as_ptr(p), pages) && index >= *first && index < first + count {
                at.push(v.start + (index - first) as u64 * PAGE_SIZE);
            }
        }
        for va in at {
            let pte = self.pt.lookup(va);
            // A private area's own copy stays; only the cache's frame goes.
            if pte & PRESENT != 0 && pte & NOT_OWNED != 0 && pte_addr(pte) == frame {
                self.pt.unmap(va);
            }
        }
    }

    /// Registers `mm` with the shared pages its areas map (a forked copy, before its
    /// parent's lock is let go: see `SharedPages::add_mapper`).
    pub fn register_mapper(mm: &Arc<SpinLock<UserSpace>>) {
        let caches: Vec<Arc<SharedPages>> = mm.lock().vmas.values().filter_map(|v| v.shared.as_ref().map(|(p, _)| Arc::clone(p))).collect();
        for pages in caches {
            pages.add_mapper(mm);
        }
    }

    /// The files that areas overlapping `[start, end)` store into, each once: their
    /// changes are written back (outside the address space's lock: that may sleep).
    pub fn files_in(&self, start: u64, end: u64) -> Vec<Arc<dyn crate::fs::Node>> {
        let mut out: Vec<Arc<dyn crate::fs::Node>> = Vec::new();
        for v in self.vmas.values().filter(|v| v.start < end && start < v.end) {
            if let Some(f) = &v.file
                && !out.iter().any(|o| Arc::ptr_eq(o, f))
            {
                out.push(Arc::clone(f));
            }
        }
        out
    }

    /// Whether every page of `[start, end)` is in some area.
    pub fn covered(&self, start: u64, end: u64) -> bool {
        let mut at = start;
        while at < end {
            match self.vma(at) {
                Some(v) => at = v.end,
                None => return false,
            }
        }
        true
    }

    /// Whether the page at `page` is in memory: mapped, or a shared page that has its
    /// frame (mincore).
    pub fn resident(&self, page: u64) -> bool {
        if self.pt.lookup(page) & PRESENT != 0 {
            return true;
        }
        match self.vma(page) {
            Some(Vma { shared: Some((pages, first)), start, .. }) => pages.existing(first + ((page - start) / PAGE_SIZE) as usize) != 0,
            _ => false,
        }
    }

    /// Brings in the pages of `[start, end)` that are not yet in memory, as an access
    /// the area allows would (mlock's populate); stops at the first that cannot be.
    /// A file page that must be read first ends it with [`EFILL`] (see
    /// `uaccess::with_user`, which reads it and calls again); `*at` is where it got to,
    /// and where the next call goes on from.
    pub fn populate(&mut self, at: &mut u64, end: u64) -> KResult<()> {
        while *at < end {
            let Some(v) = self.vma(*at) else { return Err(ENOMEM) };
            let (prot, vend) = (v.prot, v.end);
            if prot != 0 {
                while *at < vend.min(end) {
                    if self.pt.lookup(*at) & PRESENT == 0 {
                        match self.fault(*at, prot & PROT_WRITE != 0, false) {
                            Fault::Mapped => {}
                            Fault::Denied | Fault::Bus | Fault::NoMemory => return Err(ENOMEM),
                            Fault::Missing(file, index) => {
                                self.pending_fill = Some((file, index));
                                return Err(EFILL);
                            }
                        }
                    }
                    *at += PAGE_SIZE;
                }
            }
            *at = vend.max(*at);
        }
        Ok(())
    }

    /// The areas' extents, in order (mlockall).
    pub fn extents(&self) -> Vec<(u64, u64)> {
        self.vmas.values().map(|v| (v.start, v.end)).collect()
    }

    /// Drops the private pages of `[start, end)` so they read as zeros again
    /// (MADV_DONTNEED); shared pages keep their contents, as in Linux.
    pub fn discard(&mut self, start: u64, end: u64) {
        let mut pages = Vec::new();
        self.pt.for_each_page(start, end, &mut |va, pte| {
            if pte & NOT_OWNED == 0 {
                pages.push(va);
            }
        });
        self.pt.batched(|pt| {
            for va in pages {
                let frame = pte_addr(pt.unmap(va));
                pt.free_after_flush(frame);
            }
        });
    }

    /// Changes protection of `[start, end)`; every page of it must be mapped, and a
    /// sealed area cannot become writable (EACCES).
    pub fn protect(&mut self, start: u64, end: u64, prot: u32) -> KResult<()> {
        let mut at = start;
        while at < end {
            let v = self.vma(at).ok_or(ENOMEM)?;
            if v.sealed && prot & PROT_WRITE != 0 {
                return Err(EACCES);
            }
            at = v.end;
        }
        self.split(start);
        self.split(end);
        let keys: Vec<u64> = self.vmas.range(start..end).map(|(&k, _)| k).collect();
        let vmas = &mut self.vmas;
        self.pt.batched(|pt| {
            for k in keys {
                Self::protect_area(vmas, pt, k, prot);
            }
        });
        Ok(())
    }

    /// Gives area `k` protection `prot`, its present pages' entries too.
    fn protect_area(vmas: &mut BTreeMap<u64, Vma>, pt: &mut PageTable, k: u64, prot: u32) {
        let v = vmas.get_mut(&k).expect("key from the map");
        v.prot = prot;
        let (flags, vs, ve) = (v.pte_flags(), v.start, v.end);
        let shared = v.shared.clone().filter(|_| prot & PROT_WRITE != 0 && !v.cow);
        let mut present = Vec::new();
        pt.for_each_page(vs, ve, &mut |va, pte| present.push((va, pte)));
        for (va, pte) in present {
            if let Some((pages, first)) = &shared {
                // Made writable without a fault: writeback must see its stores.
                let i = first + ((va - vs) / PAGE_SIZE) as usize;
                if v.source.is_some() {
                    pages.cached_for_map(i, true);
                } else {
                    let _ = pages.frame_for_map(i, true);
                }
            }
            if v.cow && pte & NOT_OWNED != 0 && prot != 0 {
                // Still the file's page: a write must fault and copy it.
                pt.protect(va, flags & !WRITABLE);
            } else if prot == 0 {
                // No access: keep the frame but drop USER, so user accesses fault and
                // `fault` refuses them.
                pt.protect(va, NO_EXECUTE);
            } else {
                pt.protect(va, flags);
            }
        }
    }

    /// Handles a user fault at `addr`.
    pub fn fault(&mut self, addr: u64, write: bool, exec: bool) -> Fault {
        let Some(v) = self.vma(addr) else { return Fault::Denied };
        let allowed = v.prot != 0
            && (!write || v.prot & PROT_WRITE != 0)
            && (!exec || v.prot & PROT_EXEC != 0);
        if !allowed {
            return Fault::Denied;
        }
        let page = addr & !(PAGE_SIZE - 1);
        let pte = self.pt.lookup(page);
        // A store into a file's page that a shared writable area maps read-only (read
        // first, or unmapped by writeback and read since): from now on stores may change
        // it, and writeback must know (Linux's page_mkwrite).
        if pte & PRESENT != 0 && write && !v.cow && v.source.is_some() && pte & WRITABLE == 0 && pte & USER != 0 {
            let Some((pages, first)) = &v.shared else { return Fault::Denied };
            if pages.cached_for_map(first + ((page - v.start) / PAGE_SIZE) as usize, true).is_none() {
                return Fault::Denied; // not reached: a mapped page stays cached
            }
            self.pt.protect(page, v.pte_flags());
            return Fault::Mapped;
        }
        // A store into a file's page a private mapping reads: copy-on-write.
        let cow_break = pte & PRESENT != 0;
        if cow_break && !(write && v.cow && pte & NOT_OWNED != 0) {
            return Fault::Mapped; // present and allowed: a stale TLB entry or a race
        }
        let index = |first: usize| first + ((page - v.start) / PAGE_SIZE) as usize;
        let copy_of = |src: u64| {
            let copy = frame::alloc()?;
            frame::copy(copy, src);
            Some(copy)
        };
        let shared_writable = v.prot & PROT_WRITE != 0 && !v.cow;
        // A file's page a read brings in is mapped read-only: the first store marks it.
        let read_only_first = v.source.is_some() && !v.cow && !write;
        // The frame of the shared pages (a file's cache: only if the page is cached).
        let shared_frame = |pages: &SharedPages, i: usize| match &v.source {
            Some(file) => pages.cached_for_map(i, shared_writable && write).ok_or_else(|| Fault::Missing(Arc::clone(file), i as u64)),
            None => (if v.cow { pages.frame(i) } else { pages.frame_for_map(i, shared_writable) })
                .map_err(|e| if e == EINVAL { Fault::Bus } else { Fault::NoMemory }),
        };
        // The frame, and whether the process owns it (else it is the shared pages' or
        // the file's, mapped NOT_OWNED; read-only in a private mapping).
        let found = if cow_break {
            copy_of(pte_addr(pte)).map(|f| (f, true))
        } else {
            match &v.shared {
                Some((pages, first)) => match shared_frame(pages, index(*first)) {
                    Ok(f) if v.cow && write => copy_of(f).map(|copy| (copy, true)),
                    Ok(f) => Some((f, false)),
                    Err(fault) => return fault,
                },
                None => frame::alloc_zeroed().map(|f| (f, true)),
            }
        };
        let Some((frame, owned)) = found else { return Fault::NoMemory };
        let mut flags = v.pte_flags();
        if !owned {
            flags |= NOT_OWNED;
            if v.cow || read_only_first {
                flags &= !WRITABLE;
            }
        }
        if self.pt.map(page, frame, flags).is_err() {
            if owned {
                frame::free(frame);
            }
            return Fault::NoMemory;
        }
        Fault::Mapped
    }

    /// A copy of this address space for a forked child: private pages are copied, shared
    /// pages are mapped to the same frames.
    pub fn fork(&self) -> KResult<Self> {
        let mut child =
            Self { pt: PageTable::new()?, vmas: self.vmas.clone(), brk_start: self.brk_start, brk: self.brk, args: self.args, exe: self.exe.clone(), pending_fill: None };
        let mut result = Ok(());
        for v in self.vmas.values() {
            self.pt.for_each_page(v.start, v.end, &mut |va, pte| {
                if result.is_err() {
                    return;
                }
                let flags = pte & !(0x000f_ffff_ffff_f000) & !PRESENT;
                let frame = if pte & NOT_OWNED != 0 {
                    pte_addr(pte)
                } else {
                    let Some(copy) = frame::alloc() else {
                        result = Err(ENOMEM);
                        return;
                    };
                    frame::copy(copy, pte_addr(pte));
                    copy
                };
                if let Err(e) = child.pt.map(va, frame, flags) {
                    if pte & NOT_OWNED == 0 {
                        frame::free(frame);
                    }
                    result = Err(e.into());
                }
            });
        }
        result.map(|()| child)
    }

    /// Moves the program break; returns the new break (the old one on failure).
    pub fn set_brk(&mut self, new: u64) -> u64 {
        if new < self.brk_start || new > self.brk_start + (1 << 30) {
            return self.brk;
        }
        let (old_end, new_end) = (page_up(self.brk), page_up(new));
        if new_end > old_end {
            if self.overlaps(old_end, new_end) || self.map_fixed(old_end, new_end, PROT_READ | PROT_WRITE, Backing::Private).is_err() {
                return self.brk;
            }
        } else if new_end < old_end {
            self.unmap_range(new_end, old_end);
        }
        self.brk = new;
        new
    }
}

/// Unmaps the present pages of `[start, end)`, freeing the frames this space owns.
fn release_pages(pt: &mut PageTable, start: u64, end: u64) {
    let mut pages = Vec::new();
    pt.for_each_page(start, end, &mut |va, _| pages.push(va));
    pt.batched(|pt| {
        for va in pages {
            let pte = pt.unmap(va);
            if pte & NOT_OWNED == 0 {
                pt.free_after_flush(pte_addr(pte));
            }
        }
    });
}

impl Drop for UserSpace {
    fn drop(&mut self) {
        let areas: Vec<(u64, u64)> = self.vmas.values().map(|v| (v.start, v.end)).collect();
        self.pt.batched(|pt| {
            for (s, e) in areas {
                release_pages(pt, s, e);
            }
        });
    }
}

/// Reads page `index` of `file`'s cache in for a fault (sleeping; no address space lock
/// may be held). EFAULT: the page is wholly past the end of the file (Linux's SIGBUS);
/// the read's error otherwise.
pub fn fault_in_file(file: &dyn crate::fs::Node, index: u64) -> KResult<()> {
    let (cache, io) = file.page_cache().ok_or(EFAULT)?;
    cache.fault_in(io, index)
}
