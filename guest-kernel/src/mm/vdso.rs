//! The vDSO (built from `guest-kernel/vdso/` by build.rs): a small shared object with
//! clock_gettime, gettimeofday, time and getcpu, mapped read-only into every process
//! after exec and named by AT_SYSINFO_EHDR, followed by the *vvar* page, which holds the
//! TSC-to-time factors of `time`. One copy of both pages serves every process.

use alloc::sync::Arc;

use super::user::{Backing, SharedPages, UserSpace, PROT_EXEC, PROT_READ};
use super::{frame_ptr, page_up, PAGE_SIZE};
use crate::errno::*;
use crate::sync::SpinLock;

static IMAGE: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/vdso.so"));

/// The image's pages then the vvar page, made on first use (after `time::init`).
static PAGES: SpinLock<Option<Arc<SharedPages>>> = SpinLock::new(None);

/// Pages of the image (the vvar page follows them: the vDSO's linker script puts
/// `__vvar` at the first page boundary after its code).
fn image_pages() -> usize {
    (page_up(IMAGE.len() as u64) / PAGE_SIZE) as usize
}

fn pages() -> KResult<Arc<SharedPages>> {
    let mut slot = PAGES.lock();
    if let Some(p) = slot.as_ref() {
        return Ok(Arc::clone(p));
    }
    let n = image_pages();
    let pages = SharedPages::new(n + 1);
    for (i, chunk) in IMAGE.chunks(PAGE_SIZE as usize).enumerate() {
        let f = pages.frame(i)?;
        // SAFETY: a fresh zeroed frame of this kernel's, not yet mapped anywhere.
        unsafe { core::ptr::copy_nonoverlapping(chunk.as_ptr(), frame_ptr(f), chunk.len()) };
    }
    let vvar: [u64; 3] = crate::time::vdso_data();
    let f = pages.frame(n)?;
    // SAFETY: as above; the vvar layout is the vDSO's `Vvar` (three u64s).
    unsafe { core::ptr::copy_nonoverlapping(vvar.as_ptr(), frame_ptr(f).cast::<u64>(), 3) };
    *slot = Some(Arc::clone(&pages));
    Ok(pages)
}

/// Maps the vDSO and its vvar page into a new program's address space; returns the
/// vDSO's address (for AT_SYSINFO_EHDR).
pub fn map(mm: &mut UserSpace) -> KResult<u64> {
    let pages = pages()?;
    let n = image_pages() as u64;
    let base = mm.find_free(0, (n + 1) * PAGE_SIZE)?;
    mm.map_fixed(base, base + n * PAGE_SIZE, PROT_READ | PROT_EXEC, Backing::Sealed(Arc::clone(&pages), 0))?;
    mm.map_fixed(base + n * PAGE_SIZE, base + (n + 1) * PAGE_SIZE, PROT_READ, Backing::Sealed(pages, n as usize))?;
    mm.label(base, base + n * PAGE_SIZE, "[vdso]", 0);
    mm.label(base + n * PAGE_SIZE, base + (n + 1) * PAGE_SIZE, "[vvar]", 0);
    Ok(base)
}
