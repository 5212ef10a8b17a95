//! Residency: mincore (which pages are in memory), mlock, mlock2, munlock, mlockall and
//! munlockall (locking brings pages in; MLOCK_ONFAULT does not), msync, and the errors.

use ulib::sys::{self, syscall1, syscall2, syscall3};
use ulib::uapi::*;
use ulib::{check_eq, check_err, check_ok, nr};

use crate::util::*;

pub const TESTS: &[Test] = tests![
    mincore_reports_the_pages_touched,
    mlock_rounds_to_pages_and_brings_them_in,
    mlock2_onfault_leaves_pages_out,
    mlock_over_a_hole_is_enomem,
    mlockall_flags_are_checked,
    msync_checks_flags_alignment_and_holes,
    msync_of_a_shared_file_mapping_is_seen_by_read,
    mincore_errors,
];

const PAGE: usize = 4096;

fn mincore(addr: usize, len: usize, vec: &mut [u8]) -> ulib::errno::Result {
    // SAFETY: the kernel writes one byte per page into vec, which the callers size so.
    sys::ret(unsafe { syscall3(nr::MINCORE, addr, len, vec.as_mut_ptr() as usize) })
}

fn mlock(addr: usize, len: usize) -> ulib::errno::Result {
    // SAFETY: no memory is passed (the range is only looked at).
    sys::ret(unsafe { syscall2(nr::MLOCK, addr, len) })
}

fn munlock(addr: usize, len: usize) -> ulib::errno::Result {
    // SAFETY: as above.
    sys::ret(unsafe { syscall2(nr::MUNLOCK, addr, len) })
}

fn msync(addr: usize, len: usize, flags: usize) -> ulib::errno::Result {
    // SAFETY: as above.
    sys::ret(unsafe { syscall3(nr::MSYNC, addr, len, flags) })
}

/// Writes a byte into page `i` of the mapping at `addr`.
fn touch(addr: usize, i: usize) {
    // SAFETY: the page is part of a writable mapping the test owns.
    unsafe { ((addr + i * PAGE) as *mut u8).write_volatile(1) };
}

fn mincore_reports_the_pages_touched() -> TestResult {
    let a = map_anon(4 * PAGE, PROT_READ | PROT_WRITE)?;
    let mut vec = [9u8; 4];
    check_eq!(mincore(a, 4 * PAGE, &mut vec), Ok(0));
    check_eq!(vec, [0, 0, 0, 0]);
    touch(a, 1);
    touch(a, 3);
    // A length that ends inside a page counts that page.
    check_eq!(mincore(a, 3 * PAGE + 1, &mut vec), Ok(0));
    check_eq!(vec, [0, 1, 0, 1]);
    unmap(a, 4 * PAGE)
}

fn mlock_rounds_to_pages_and_brings_them_in() -> TestResult {
    // From inside page 0 for one page's length: pages 0 and 1.
    let a = map_anon(3 * PAGE, PROT_READ | PROT_WRITE)?;
    check_eq!(mlock(a + 100, PAGE), Ok(0));
    let mut vec = [9u8; 3];
    check_eq!(mincore(a, 3 * PAGE, &mut vec), Ok(0));
    check_eq!(vec, [1, 1, 0]);
    check_eq!(munlock(a, 3 * PAGE), Ok(0));
    check_eq!(mlock(a, 0), Ok(0));
    unmap(a, 3 * PAGE)
}

fn mlock2_onfault_leaves_pages_out() -> TestResult {
    let a = map_anon(2 * PAGE, PROT_READ | PROT_WRITE)?;
    // SAFETY: no memory is passed.
    let mlock2 = |flags: usize| sys::ret(unsafe { syscall3(nr::MLOCK2, a, 2 * PAGE, flags) });
    check_err!(mlock2(2), EINVAL);
    check_eq!(mlock2(1), Ok(0)); // MLOCK_ONFAULT
    let mut vec = [9u8; 2];
    check_eq!(mincore(a, 2 * PAGE, &mut vec), Ok(0));
    check_eq!(vec, [0, 0]);
    check_eq!(mlock2(0), Ok(0));
    check_eq!(mincore(a, 2 * PAGE, &mut vec), Ok(0));
    check_eq!(vec, [1, 1]);
    check_eq!(munlock(a, 2 * PAGE), Ok(0));
    unmap(a, 2 * PAGE)
}

fn mlock_over_a_hole_is_enomem() -> TestResult {
    let a = map_anon(3 * PAGE, PROT_READ | PROT_WRITE)?;
    unmap(a + PAGE, PAGE)?;
    check_err!(mlock(a, 3 * PAGE), ENOMEM);
    check_err!(munlock(a, 3 * PAGE), ENOMEM);
    check_eq!(mlock(a, PAGE), Ok(0));
    check_eq!(munlock(a, PAGE), Ok(0));
    unmap(a, PAGE)?;
    unmap(a + 2 * PAGE, PAGE)
}

fn mlockall_flags_are_checked() -> TestResult {
    // SAFETY: no memory is passed.
    let mlockall = |flags: usize| sys::ret(unsafe { syscall1(nr::MLOCKALL, flags) });
    check_err!(mlockall(0), EINVAL);
    check_err!(mlockall(4), EINVAL); // MCL_ONFAULT alone
    check_err!(mlockall(8), EINVAL);
    // In a child, which then unlocks: MCL_CURRENT | MCL_ONFAULT and MCL_FUTURE.
    let status = run_child(move || {
        // SAFETY: no memory is passed.
        let munlockall = || sys::ret(unsafe { syscall1(nr::MUNLOCKALL, 0) });
        let steps = [mlockall(1 | 4) == Ok(0), munlockall() == Ok(0), mlockall(2) == Ok(0), munlockall() == Ok(0)];
        steps.iter().position(|ok| !ok).map_or(0, |i| i as i32 + 1)
    })?;
    check_eq!(status.exit_code(), Some(0));
    Ok(())
}

fn msync_checks_flags_alignment_and_holes() -> TestResult {
    let a = map_anon(3 * PAGE, PROT_READ | PROT_WRITE)?;
    check_eq!(msync(a, 3 * PAGE, 4), Ok(0)); // MS_SYNC
    check_eq!(msync(a, 100, 1), Ok(0)); // MS_ASYNC, a partial page
    check_eq!(msync(a, 0, 4), Ok(0));
    check_err!(msync(a + 1, PAGE, 4), EINVAL);
    check_err!(msync(a, PAGE, 1 | 4), EINVAL);
    check_err!(msync(a, PAGE, 8), EINVAL);
    unmap(a + PAGE, PAGE)?;
    check_err!(msync(a, 3 * PAGE, 4), ENOMEM);
    unmap(a, PAGE)?;
    unmap(a + 2 * PAGE, PAGE)
}

fn msync_of_a_shared_file_mapping_is_seen_by_read() -> TestResult {
    let path = make_file("msync", &[b'.'; PAGE])?;
    let fd = check_ok!(sys::open(path.as_cstr(), O_RDWR, 0)) as i32;
    // SAFETY: not MAP_FIXED: the kernel picks the address.
    let m = check_ok!(unsafe { sys::mmap(0, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0) });
    // SAFETY: the first 5 bytes of the page just mapped writable.
    unsafe { core::ptr::copy_nonoverlapping(b"hello".as_ptr(), m as *mut u8, 5) };
    check_eq!(msync(m, PAGE, 4), Ok(0));
    let mut buf = [0u8; 6];
    check_eq!(sys::pread64(fd, &mut buf, 0), Ok(6));
    check_eq!(&buf, b"hello.");
    unmap(m, PAGE)?;
    check_ok!(sys::close(fd));
    Ok(())
}

fn mincore_errors() -> TestResult {
    let a = map_anon(2 * PAGE, PROT_READ | PROT_WRITE)?;
    let mut vec = [0u8; 2];
    check_err!(mincore(a + 1, PAGE, &mut vec), EINVAL);
    // SAFETY: the kernel must fail to write the unmapped vector.
    check_err!(sys::ret(unsafe { syscall3(nr::MINCORE, a, PAGE, UNMAPPED_ADDR) }), EFAULT);
    unmap(a + PAGE, PAGE)?;
    check_err!(mincore(a, 2 * PAGE, &mut vec), ENOMEM);
    check_eq!(mincore(a, 0, &mut vec), Ok(0));
    // A huge length over a mapped page then nothing: ENOMEM, and the first byte written
    // (the kernel works a chunk at a time; the fuzzer found one that allocated the lot).
    let mut big = [0xffu8; 4096];
    // SAFETY: the kernel writes at most as far as the mapped range goes: one byte here.
    let r = sys::ret(unsafe { syscall3(nr::MINCORE, a, 0x7eff_ffff_d000, big.as_mut_ptr() as usize) });
    check_err!(r, ENOMEM);
    check_eq!(big[1], 0xff);
    unmap(a, PAGE)
}
