//! Memory syscalls: mmap, munmap, mprotect, madvise, brk.

use alloc::sync::Arc;
use alloc::vec::Vec;

use super::Ctx;
use crate::errno::*;
use crate::fs::{FileType, IoBuf};
use crate::mm::user::{Backing, PROT_EXEC, PROT_READ, PROT_WRITE};
use crate::mm::{page_up, PAGE_SIZE, USER_END};
use crate::task::with_mm;

const MAP_PRIVATE: u64 = 0x02;
const MAP_SHARED_VALIDATE: u64 = 0x03;
const MAP_FIXED: u64 = 0x10;
const MAP_ANONYMOUS: u64 = 0x20;
const MAP_FIXED_NOREPLACE: u64 = 0x10_0000;
/// Flags accepted and needing no action here (MAP_GROWSDOWN..MAP_HUGETLB, MAP_SYNC ...).
const MAP_IGNORED: u64 = 0x0100 | 0x0800 | 0x1000 | 0x2000 | 0x4000 | 0x8000 | 0x1_0000 | 0x2_0000 | 0x4_0000 | 0x8_0000;

fn range(addr: u64, len: u64) -> KResult<(u64, u64)> {
    if !addr.is_multiple_of(PAGE_SIZE) || len == 0 {
        return Err(EINVAL);
    }
    let end = addr.checked_add(page_up(len)).filter(|&e| e <= USER_END).ok_or(EINVAL)?;
    Ok((addr, end))
}

pub fn mmap(c: &mut Ctx) -> KResult<u64> {
    let [addr, len, prot, flags, fd, off] = c.a;
    let (fd, prot) = (fd as i32, prot as u32);
    let kind = flags & MAP_SHARED_VALIDATE;
    if len == 0 || off % PAGE_SIZE != 0 || kind == 0 || prot & !(PROT_READ | PROT_WRITE | PROT_EXEC) != 0 {
        return Err(EINVAL);
    }
    if kind == MAP_SHARED_VALIDATE && flags & !(MAP_SHARED_VALIDATE | MAP_FIXED | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE | MAP_IGNORED) != 0 {
        return Err(EOPNOTSUPP);
    }
    let len = page_up(len);
    if len == 0 || len > USER_END {
        return Err(ENOMEM);
    }
    let shared = kind != MAP_PRIVATE;
    // File mappings: shared ones map the file's own pages; private ones of a file with
    // pages (a page cache, or the RAM file system's) map them copy-on-write, other
    // private ones get a copy of the file's bytes at mmap time.
    let mut backing = if shared { Backing::SharedAnonymous } else { Backing::Private };
    let mut private_file = None;
    let mut label = None;
    let mut stores_into = None;
    let mut source = None;
    if flags & MAP_ANONYMOUS == 0 {
        let f = super::fs::file(fd)?;
        if f.node.page_cache().is_some() {
            // Pages not yet cached are read from the file on fault.
            source = Some(Arc::clone(&f.node));
        }
        label = Some(f.path.clone());
        if !f.readable() || (shared && prot & PROT_WRITE != 0 && !f.writable()) {
            return Err(EACCES);
        }
        if shared {
            let (pages, first) = f.node.mmap_pages(off, len)?;
            // A write-sealed memfd maps only read-only, for good (Linux clears
            // VM_MAYWRITE).
            backing = if f.node.seals() & crate::fs::memfd::WRITE_SEALS != 0 {
                if prot & PROT_WRITE != 0 {
                    return Err(EPERM);
                }
                Backing::Sealed(pages, first)
            } else {
                if prot & PROT_WRITE != 0 {
                    stores_into = Some(Arc::clone(&f.node));
                }
                Backing::Shared(pages, first)
            };
        } else if f.node.file_type() != FileType::Regular {
            return Err(ENODEV);
        } else if let Ok((pages, first)) = f.node.mmap_pages(off, len) {
            backing = Backing::PrivateFile(pages, first);
        } else {
            private_file = Some(f);
        }
    }
    if let Backing::Shared(pages, _) | Backing::PrivateFile(pages, _) | Backing::Sealed(pages, _) = &backing {
        // Before any page of the file is mapped here: the shrinker and truncate must find
        // this space to unmap a page.
        pages.add_mapper(&crate::task::current_process().mm().ok_or(EFAULT)?);
    }
    // Mapping reads no file page (never EFILL): the closure runs once.
    let mut backing = Some(backing);
    let start = with_mm(|mm| {
        let start = if flags & (MAP_FIXED | MAP_FIXED_NOREPLACE) != 0 {
            if addr % PAGE_SIZE != 0 {
                return Err(EINVAL);
            }
            let (s, e) = range(addr, len).map_err(|_| ENOMEM)?;
            if flags & MAP_FIXED_NOREPLACE != 0 && flags & MAP_FIXED == 0 && mm.find_free(s, len)? != s {
                return Err(EEXIST);
            }
            let _ = e;
            s
        } else {
            mm.find_free(addr & !(PAGE_SIZE - 1), len)?
        };
        mm.map_fixed(start, start + len, prot, backing.take().ok_or(EINVAL)?).map_err(|_| ENOMEM)?;
        if let Some(name) = &label {
            mm.label(start, start + len, name, off);
        }
        if let Some(node) = &stores_into {
            mm.set_file(start, start + len, Arc::clone(node));
        }
        if let Some(node) = &source {
            mm.set_source(start, start + len, Arc::clone(node));
        }
        Ok(start)
    })?;
    if let Some(f) = private_file {
        // Fill the private copy through a temporarily writable mapping.
        let size = f.node.stat().size.saturating_sub(off).min(len) as usize;
        with_mm(|mm| mm.protect(start, start + len, PROT_READ | PROT_WRITE))?;
        let r = f.node.read(off, &mut IoBuf::User { addr: start, len: size }, false);
        with_mm(|mm| match r {
            Ok(_) => mm.protect(start, start + len, prot),
            Err(e) => {
                mm.unmap_range(start, start + len);
                Err(e)
            }
        })?;
    }
    Ok(start)
}

pub fn munmap(c: &mut Ctx) -> KResult<u64> {
    let (s, e) = range(c.a[0], c.a[1])?;
    let files = with_mm(|mm| {
        let files = mm.files_in(s, e);
        mm.unmap_range(s, e);
        Ok(files)
    })?;
    writeback(files);
    Ok(0)
}

/// Writes back what shared mappings stored into `files` (errors are fsync's to report,
/// as Linux keeps them on the file).
pub fn writeback(files: Vec<Arc<dyn crate::fs::Node>>) {
    for f in files {
        let _ = f.writeback();
    }
}

pub fn mprotect(c: &mut Ctx) -> KResult<u64> {
    let prot = c.a[2] as u32;
    if prot & !(PROT_READ | PROT_WRITE | PROT_EXEC) != 0 {
        return Err(EINVAL);
    }
    if c.a[1] == 0 {
        return if c.a[0].is_multiple_of(PAGE_SIZE) { Ok(0) } else { Err(EINVAL) };
    }
    let (s, e) = range(c.a[0], c.a[1]).map_err(|e| if c.a[0].is_multiple_of(PAGE_SIZE) { ENOMEM } else { e })?;
    with_mm(|mm| mm.protect(s, e, prot)).map(|()| 0)
}

pub fn madvise(c: &mut Ctx) -> KResult<u64> {
    do_madvise(c.a[0], c.a[1], c.a[2])
}

pub fn do_madvise(addr: u64, len: u64, advice: u64) -> KResult<u64> {
    const MADV_DONTNEED: u64 = 4;
    if !addr.is_multiple_of(PAGE_SIZE) || !matches!(advice, 0..=4 | 8..=25 | 100..=101) {
        return Err(EINVAL);
    }
    if len == 0 {
        return Ok(0);
    }
    let (s, e) = range(addr, len)?;
    with_mm(|mm| {
        let mut at = s;
        while at < e {
            at = mm.vma(at).ok_or(ENOMEM)?.end;
        }
        if advice == MADV_DONTNEED {
            mm.discard(s, e);
        }
        Ok(0)
    })
}

pub fn brk(c: &mut Ctx) -> KResult<u64> {
    let new = c.a[0];
    with_mm(|mm| Ok(if new == 0 { mm.brk } else { mm.set_brk(new) }))
}

// --- locking, syncing and residency ---
//
// There is no swap: a locked range is one whose pages have been brought in. mlock and
// friends check their ranges as Linux does and populate them; munlock has nothing to
// undo. (Pages of a mapped file may still be given back under memory pressure and read
// again on the next fault: Linux's mlock makes them unevictable, this one does not.)

const MLOCK_ONFAULT: u64 = 1;
const MCL_CURRENT: u64 = 1;
const MCL_FUTURE: u64 = 2;
const MCL_ONFAULT: u64 = 4;

/// The whole pages covering `[addr, addr + len)` (mlock takes any address); None when
/// empty, EINVAL when it wraps.
fn lock_range(addr: u64, len: u64) -> KResult<Option<(u64, u64)>> {
    let start = addr & !(PAGE_SIZE - 1);
    let end = addr.checked_add(len).map(page_up).ok_or(EINVAL)?;
    Ok((end > start).then_some((start, end)))
}

fn lock(addr: u64, len: u64, populate: bool) -> KResult<u64> {
    let Some((start, end)) = lock_range(addr, len)? else { return Ok(0) };
    // Where populating got to: a retry after a page was read in goes on from there.
    let mut at = start;
    with_mm(|mm| {
        if !mm.covered(start, end) {
            return Err(ENOMEM);
        }
        if populate {
            mm.populate(&mut at, end)?;
        }
        Ok(0)
    })
    // A page that cannot be brought in (past the end of its file): ENOMEM, as Linux.
    .map_err(|e| if e == EFAULT { ENOMEM } else { e })
}

pub fn mlock(c: &mut Ctx) -> KResult<u64> {
    lock(c.a[0], c.a[1], true)
}

pub fn mlock2(c: &mut Ctx) -> KResult<u64> {
    if c.a[2] & !MLOCK_ONFAULT != 0 {
        return Err(EINVAL);
    }
    // MLOCK_ONFAULT: pages are locked as they are touched, which they are here anyway.
    lock(c.a[0], c.a[1], c.a[2] & MLOCK_ONFAULT == 0)
}

pub fn munlock(c: &mut Ctx) -> KResult<u64> {
    lock(c.a[0], c.a[1], false)
}

pub fn mlockall(c: &mut Ctx) -> KResult<u64> {
    let flags = c.a[0];
    if flags == 0 || flags & !(MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT) != 0 || flags == MCL_ONFAULT {
        return Err(EINVAL);
    }
    if flags & MCL_CURRENT != 0 && flags & MCL_ONFAULT == 0 {
        // As Linux's mlockall, what cannot be brought in now is left to fault in later.
        let mut at = 0;
        let _ = with_mm(|mm| {
            for (s, e) in mm.extents() {
                at = at.max(s);
                if at >= e {
                    continue;
                }
                if let Err(EFILL) = mm.populate(&mut at, e) {
                    return Err(EFILL); // with_mm reads the page in and goes on from `at`
                }
                at = e;
            }
            Ok(0)
        });
    }
    Ok(0)
}

pub fn munlockall(_c: &mut Ctx) -> KResult<u64> {
    Ok(0)
}

/// msync: flags checked as Linux does; every page must be mapped (ENOMEM). Shared
/// mappings are of memory files whose pages they are: nothing to write back.
pub fn msync(c: &mut Ctx) -> KResult<u64> {
    const MS_ASYNC: u64 = 1;
    const MS_INVALIDATE: u64 = 2;
    const MS_SYNC: u64 = 4;
    let (start, len, flags) = (c.a[0], c.a[1], c.a[2]);
    if flags & !(MS_ASYNC | MS_INVALIDATE | MS_SYNC) != 0 || !start.is_multiple_of(PAGE_SIZE) || flags & (MS_ASYNC | MS_SYNC) == MS_ASYNC | MS_SYNC {
        return Err(EINVAL);
    }
    let end = start.checked_add(page_up(len)).ok_or(ENOMEM)?;
    if end == start {
        return Ok(0);
    }
    let files = with_mm(|mm| if mm.covered(start, end) { Ok(mm.files_in(start, end)) } else { Err(ENOMEM) })?;
    if flags & MS_SYNC != 0 || flags & MS_ASYNC != 0 {
        // MS_ASYNC is done at once too: there is no writeback thread to hand it to.
        for f in files {
            f.writeback()?;
        }
    }
    Ok(0)
}

/// mincore: one byte per page, 1 when the page is in memory.
pub fn mincore(c: &mut Ctx) -> KResult<u64> {
    let (start, len, vec) = (c.a[0], c.a[1], c.a[2]);
    if !start.is_multiple_of(PAGE_SIZE) {
        return Err(EINVAL);
    }
    let end = start.checked_add(len).filter(|&e| e <= USER_END).ok_or(ENOMEM)?;
    let pages = len.div_ceil(PAGE_SIZE) as usize;
    if vec.checked_add(pages as u64).is_none_or(|e| e > USER_END) {
        return Err(EFAULT);
    }
    let end = page_up(end);
    // A chunk at a time, as Linux (the length is the caller's: nothing is allocated
    // for it); an unmapped page ends the walk with ENOMEM.
    let mut chunk = [0u8; 256];
    let mut done = 0;
    while done < pages {
        let n = (pages - done).min(chunk.len());
        with_mm(|mm| {
            for (i, b) in chunk[..n].iter_mut().enumerate() {
                let page = start + (done + i) as u64 * PAGE_SIZE;
                if page >= end || mm.vma(page).is_none() {
                    return Err(ENOMEM);
                }
                *b = u8::from(mm.resident(page));
            }
            Ok(())
        })?;
        crate::task::copy_to_user(vec + done as u64, &chunk[..n])?;
        done += n;
    }
    Ok(0)
}

/// mremap(old, old_size, new_size, flags, new_addr): MREMAP_MAYMOVE, MREMAP_FIXED (with
/// MAYMOVE) and MREMAP_DONTUNMAP (with MAYMOVE and an unchanged size), see
/// `UserSpace::remap`. A zero old size (a second mapping of shared pages) is not offered
/// (EINVAL).
pub fn mremap(c: &mut Ctx) -> KResult<u64> {
    const MREMAP_MAYMOVE: u64 = 1;
    const MREMAP_FIXED: u64 = 2;
    const MREMAP_DONTUNMAP: u64 = 4;
    let [old, old_len, new_len, flags, new_addr, _] = c.a;
    if flags & !(MREMAP_MAYMOVE | MREMAP_FIXED | MREMAP_DONTUNMAP) != 0 || !old.is_multiple_of(PAGE_SIZE) {
        return Err(EINVAL);
    }
    let may_move = flags & MREMAP_MAYMOVE != 0;
    if flags & (MREMAP_FIXED | MREMAP_DONTUNMAP) != 0 && !may_move {
        return Err(EINVAL);
    }
    let (old_len, new_len) = (page_up(old_len), page_up(new_len));
    let keep_old = flags & MREMAP_DONTUNMAP != 0;
    if new_len == 0 || old_len == 0 || (keep_old && old_len != new_len) {
        return Err(EINVAL);
    }
    let fixed = if flags & MREMAP_FIXED != 0 {
        if !new_addr.is_multiple_of(PAGE_SIZE) {
            return Err(EINVAL);
        }
        Some(new_addr)
    } else {
        None
    };
    with_mm(|mm| mm.remap(old, old_len, new_len, may_move, fixed, keep_old))
}
