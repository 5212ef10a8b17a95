//! Memory syscalls: mmap, munmap, mprotect, madvise, brk.

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
    // File mappings: shared ones map the file's own pages; private ones get a copy of the
    // file's bytes at mmap time.
    let mut backing = if shared { Backing::SharedAnonymous } else { Backing::Private };
    let mut private_file = None;
    if flags & MAP_ANONYMOUS == 0 {
        let f = super::fs::file(fd)?;
        if !f.readable() || (shared && prot & PROT_WRITE != 0 && !f.writable()) {
            return Err(EACCES);
        }
        if shared {
            let (pages, first) = f.node.mmap_pages(off, len)?;
            backing = Backing::Shared(pages, first);
        } else if f.node.file_type() != FileType::Regular {
            return Err(ENODEV);
        } else {
            private_file = Some(f);
        }
    }
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
        mm.map_fixed(start, start + len, prot, backing).map_err(|_| ENOMEM)
    })?;
    if let Some(f) = private_file {
        // Fill the private copy through a temporarily writable mapping.
        let size = f.node.stat().size.saturating_sub(off).min(len) as usize;
        with_mm(|mm| mm.protect(start, start + len, PROT_READ | PROT_WRITE))?;
        let r = f.node.read(off, &mut IoBuf::User { addr: start, len: size }, false);
        with_mm(|mm| mm.protect(start, start + len, prot))?;
        r?;
    }
    Ok(start)
}

pub fn munmap(c: &mut Ctx) -> KResult<u64> {
    let (s, e) = range(c.a[0], c.a[1])?;
    with_mm(|mm| {
        mm.unmap_range(s, e);
        Ok(0)
    })
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
