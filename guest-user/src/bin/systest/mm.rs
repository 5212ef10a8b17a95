//! Memory: mmap (anonymous and file, private and shared, fixed), munmap, mprotect,
//! madvise, brk, and what a bad access does (SIGSEGV for code, EFAULT for syscalls).

use core::ptr::{read_volatile, write_volatile};

use ulib::sys::{self, syscall3};
use ulib::uapi::*;
use ulib::{check, check_eq, check_err, check_ok, nr};

use crate::util::*;

pub const TESTS: &[Test] = tests![
    mmap_anonymous_is_zeroed_and_writable,
    mmap_zero_length_is_einval,
    mmap_without_private_or_shared_is_einval,
    mmap_file_offset_not_page_aligned_is_einval,
    mmap_fixed_unaligned_address_is_einval,
    mmap_file_bad_fd_is_ebadf,
    mmap_write_only_file_is_eacces,
    mmap_shared_writable_of_read_only_fd_is_eacces,
    mmap_private_file_sees_contents_and_keeps_writes_private,
    mmap_shared_file_writes_reach_the_file,
    mmap_fixed_replaces_existing_mapping,
    mmap_fixed_noreplace_over_a_mapping_is_eexist,
    mmap_fixed_in_kernel_half_is_enomem,
    mmap_shared_anonymous_is_shared_with_child,
    mmap_private_anonymous_is_copied_on_fork,
    munmap_then_access_kills_with_sigsegv,
    munmap_unaligned_or_empty_is_einval,
    munmap_of_unmapped_range_succeeds,
    munmap_middle_page_splits_the_mapping,
    mprotect_read_only_then_write_kills_with_sigsegv,
    mprotect_unaligned_is_einval,
    mprotect_unmapped_range_is_enomem,
    madvise_dontneed_zeroes_private_anonymous,
    madvise_unknown_advice_is_einval,
    madvise_unaligned_is_einval,
    brk_query_grow_and_shrink,
    brk_below_the_start_is_refused,
    read_into_prot_none_page_is_efault,
];

/// Reads the byte at `addr`.
///
/// # Safety
/// `addr` must be mapped readable, or the process dies (which some tests want, in a child).
unsafe fn peek(addr: usize) -> u8 {
    // SAFETY: the caller's obligation.
    unsafe { read_volatile(addr as *const u8) }
}

/// Writes the byte at `addr`.
///
/// # Safety
/// `addr` must be mapped writable and unused by Rust code, or the process dies.
unsafe fn poke(addr: usize, value: u8) {
    // SAFETY: the caller's obligation.
    unsafe { write_volatile(addr as *mut u8, value) }
}

fn mmap_anonymous_is_zeroed_and_writable() -> TestResult {
    let len = 2 * PAGE_SIZE;
    let addr = map_anon(len, PROT_READ | PROT_WRITE)?;
    check_eq!(addr % PAGE_SIZE, 0);
    // SAFETY: the mapping is ours and nothing else refers to it.
    let mem = unsafe { core::slice::from_raw_parts_mut(addr as *mut u8, len) };
    check!(mem.iter().all(|&b| b == 0));
    mem.fill(0xab);
    check_eq!(mem[len - 1], 0xab);
    unmap(addr, len)
}

fn mmap_zero_length_is_einval() -> TestResult {
    // SAFETY: refused: no mapping is made.
    let ret = unsafe { sys::mmap(0, 0, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0) };
    check_err!(ret, EINVAL);
    Ok(())
}

fn mmap_without_private_or_shared_is_einval() -> TestResult {
    // SAFETY: refused: no mapping is made.
    let ret = unsafe { sys::mmap(0, PAGE_SIZE, PROT_READ, MAP_ANONYMOUS, -1, 0) };
    check_err!(ret, EINVAL);
    Ok(())
}

fn mmap_file_offset_not_page_aligned_is_einval() -> TestResult {
    let path = make_file("mmap-off", b"abc")?;
    let fd = check_ok!(sys::open(path.as_cstr(), O_RDONLY, 0)) as i32;
    // SAFETY: refused: no mapping is made.
    let ret = unsafe { sys::mmap(0, PAGE_SIZE, PROT_READ, MAP_PRIVATE, fd, 1) };
    check_err!(ret, EINVAL);
    check_ok!(sys::close(fd));
    check_ok!(sys::unlink(path.as_cstr()));
    Ok(())
}

fn mmap_fixed_unaligned_address_is_einval() -> TestResult {
    let addr = map_anon(PAGE_SIZE, PROT_READ)?;
    // SAFETY: refused: the mapping at addr stays as it is.
    let ret = unsafe {
        sys::mmap(
            addr + 1,
            PAGE_SIZE,
            PROT_READ,
            MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
            -1,
            0,
        )
    };
    check_err!(ret, EINVAL);
    unmap(addr, PAGE_SIZE)
}

fn mmap_file_bad_fd_is_ebadf() -> TestResult {
    // SAFETY: refused: no mapping is made.
    let ret = unsafe { sys::mmap(0, PAGE_SIZE, PROT_READ, MAP_PRIVATE, -1, 0) };
    check_err!(ret, EBADF);
    Ok(())
}

fn mmap_write_only_file_is_eacces() -> TestResult {
    // Any file mapping reads the file, so it needs an fd open for reading.
    let path = make_file("mmap-wo", b"abc")?;
    let fd = check_ok!(sys::open(path.as_cstr(), O_WRONLY, 0)) as i32;
    // SAFETY: refused: no mapping is made.
    let ret = unsafe { sys::mmap(0, PAGE_SIZE, PROT_READ, MAP_PRIVATE, fd, 0) };
    check_err!(ret, EACCES);
    check_ok!(sys::close(fd));
    check_ok!(sys::unlink(path.as_cstr()));
    Ok(())
}

fn mmap_shared_writable_of_read_only_fd_is_eacces() -> TestResult {
    let path = make_file("mmap-ro", b"abc")?;
    let fd = check_ok!(sys::open(path.as_cstr(), O_RDONLY, 0)) as i32;
    // SAFETY: refused: no mapping is made.
    let ret = unsafe { sys::mmap(0, PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0) };
    check_err!(ret, EACCES);
    // A private writable mapping of the same fd is fine: writes never reach the file.
    // SAFETY: not MAP_FIXED.
    let addr =
        check_ok!(unsafe { sys::mmap(0, PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0) });
    unmap(addr, PAGE_SIZE)?;
    check_ok!(sys::close(fd));
    check_ok!(sys::unlink(path.as_cstr()));
    Ok(())
}

fn mmap_private_file_sees_contents_and_keeps_writes_private() -> TestResult {
    let path = make_file("mmap-priv", b"hello")?;
    let fd = check_ok!(sys::open(path.as_cstr(), O_RDWR, 0)) as i32;
    // SAFETY: not MAP_FIXED.
    let addr =
        check_ok!(unsafe { sys::mmap(0, PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0) });
    // SAFETY: one page, mapped readable and writable, used only here.
    let mem = unsafe { core::slice::from_raw_parts_mut(addr as *mut u8, PAGE_SIZE) };
    check_eq!(&mem[..5], b"hello");
    check!(mem[5..].iter().all(|&b| b == 0)); // past the end of the file: zeros
    mem[0] = b'J';
    let mut buf = [0u8; 5];
    check_ok!(sys::pread64(fd, &mut buf, 0));
    check_eq!(&buf, b"hello");
    unmap(addr, PAGE_SIZE)?;
    check_ok!(sys::close(fd));
    check_ok!(sys::unlink(path.as_cstr()));
    Ok(())
}

fn mmap_shared_file_writes_reach_the_file() -> TestResult {
    let path = make_file("mmap-shared", b"hello")?;
    let fd = check_ok!(sys::open(path.as_cstr(), O_RDWR, 0)) as i32;
    // SAFETY: not MAP_FIXED.
    let addr =
        check_ok!(unsafe { sys::mmap(0, PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0) });
    // SAFETY: the page is mapped writable and used only here.
    unsafe { poke(addr, b'J') };
    let mut buf = [0u8; 5];
    check_ok!(sys::pread64(fd, &mut buf, 0)); // no msync needed: one page cache
    check_eq!(&buf, b"Jello");
    check_ok!(sys::pwrite64(fd, b"Y", 4));
    // SAFETY: as above.
    check_eq!(unsafe { peek(addr + 4) }, b'Y');
    unmap(addr, PAGE_SIZE)?;
    check_ok!(sys::close(fd));
    check_ok!(sys::unlink(path.as_cstr()));
    Ok(())
}

fn mmap_fixed_replaces_existing_mapping() -> TestResult {
    let addr = map_anon(2 * PAGE_SIZE, PROT_READ | PROT_WRITE)?;
    // SAFETY: both pages are ours.
    unsafe {
        poke(addr, 1);
        poke(addr + PAGE_SIZE, 1);
    }
    let flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED;
    // SAFETY: replaces our own second page, which nothing else uses.
    let ret = unsafe {
        sys::mmap(
            addr + PAGE_SIZE,
            PAGE_SIZE,
            PROT_READ | PROT_WRITE,
            flags,
            -1,
            0,
        )
    };
    check_eq!(ret, Ok(addr + PAGE_SIZE));
    // SAFETY: both pages are mapped.
    check_eq!(unsafe { (peek(addr), peek(addr + PAGE_SIZE)) }, (1, 0));
    unmap(addr, 2 * PAGE_SIZE)
}

fn mmap_fixed_noreplace_over_a_mapping_is_eexist() -> TestResult {
    let addr = map_anon(PAGE_SIZE, PROT_READ)?;
    let flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE;
    // SAFETY: refused: the mapping at addr stays as it is.
    let ret = unsafe { sys::mmap(addr, PAGE_SIZE, PROT_READ, flags, -1, 0) };
    check_err!(ret, EEXIST);
    unmap(addr, PAGE_SIZE)
}

fn mmap_fixed_in_kernel_half_is_enomem() -> TestResult {
    let flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED;
    // SAFETY: refused: user space cannot map there.
    let ret = unsafe { sys::mmap(KERNEL_ADDR, PAGE_SIZE, PROT_READ, flags, -1, 0) };
    check_err!(ret, ENOMEM);
    Ok(())
}

fn mmap_shared_anonymous_is_shared_with_child() -> TestResult {
    // SAFETY: not MAP_FIXED.
    let addr = check_ok!(unsafe {
        sys::mmap(
            0,
            PAGE_SIZE,
            PROT_READ | PROT_WRITE,
            MAP_SHARED | MAP_ANONYMOUS,
            -1,
            0,
        )
    });
    let status = run_child(|| {
        // SAFETY: the shared page is mapped writable in the child too.
        unsafe { poke(addr, 42) };
        0
    })?;
    check_eq!(status.exit_code(), Some(0));
    // SAFETY: the page is mapped.
    check_eq!(unsafe { peek(addr) }, 42);
    unmap(addr, PAGE_SIZE)
}

fn mmap_private_anonymous_is_copied_on_fork() -> TestResult {
    let addr = map_anon(PAGE_SIZE, PROT_READ | PROT_WRITE)?;
    // SAFETY: our page.
    unsafe { poke(addr, 1) };
    let status = run_child(|| {
        // SAFETY: the child's copy of the page.
        let before = unsafe { peek(addr) };
        // SAFETY: as above.
        unsafe { poke(addr, 2) };
        before as i32
    })?;
    check_eq!(status.exit_code(), Some(1)); // the child saw the parent's data...
    // SAFETY: our page.
    check_eq!(unsafe { peek(addr) }, 1); // ...but its write went to its own copy
    unmap(addr, PAGE_SIZE)
}

fn munmap_then_access_kills_with_sigsegv() -> TestResult {
    let addr = map_anon(PAGE_SIZE, PROT_READ | PROT_WRITE)?;
    unmap(addr, PAGE_SIZE)?;
    let status = run_child(|| {
        // SAFETY: none: the page is gone and this must kill the child.
        unsafe { peek(addr) };
        0
    })?;
    check_eq!(status.term_signal(), Some(SIGSEGV));
    Ok(())
}

fn munmap_unaligned_or_empty_is_einval() -> TestResult {
    let addr = map_anon(PAGE_SIZE, PROT_READ)?;
    // SAFETY: refused: the mapping stays.
    check_err!(unsafe { sys::munmap(addr + 1, PAGE_SIZE) }, EINVAL);
    // SAFETY: refused: the mapping stays.
    check_err!(unsafe { sys::munmap(addr, 0) }, EINVAL);
    unmap(addr, PAGE_SIZE)
}

fn munmap_of_unmapped_range_succeeds() -> TestResult {
    let addr = map_anon(PAGE_SIZE, PROT_READ)?;
    unmap(addr, PAGE_SIZE)?;
    unmap(addr, PAGE_SIZE) // nothing there: still 0
}

fn munmap_middle_page_splits_the_mapping() -> TestResult {
    let addr = map_anon(3 * PAGE_SIZE, PROT_READ | PROT_WRITE)?;
    // SAFETY: three pages of ours.
    unsafe {
        poke(addr, 1);
        poke(addr + 2 * PAGE_SIZE, 3);
    }
    unmap(addr + PAGE_SIZE, PAGE_SIZE)?;
    // SAFETY: the outer pages are still mapped.
    check_eq!(unsafe { (peek(addr), peek(addr + 2 * PAGE_SIZE)) }, (1, 3));
    let status = run_child(|| {
        // SAFETY: none: the middle page is gone and this must kill the child.
        unsafe { peek(addr + PAGE_SIZE) };
        0
    })?;
    check_eq!(status.term_signal(), Some(SIGSEGV));
    unmap(addr, 3 * PAGE_SIZE)
}

fn mprotect_read_only_then_write_kills_with_sigsegv() -> TestResult {
    let addr = map_anon(PAGE_SIZE, PROT_READ | PROT_WRITE)?;
    // SAFETY: our page, which no Rust reference points into.
    unsafe { poke(addr, 7) };
    // SAFETY: as above.
    check_eq!(unsafe { sys::mprotect(addr, PAGE_SIZE, PROT_READ) }, Ok(0));
    // SAFETY: still readable.
    check_eq!(unsafe { peek(addr) }, 7);
    let status = run_child(|| {
        // SAFETY: none: the page is read-only and this must kill the child.
        unsafe { poke(addr, 8) };
        0
    })?;
    check_eq!(status.term_signal(), Some(SIGSEGV));
    unmap(addr, PAGE_SIZE)
}

fn mprotect_unaligned_is_einval() -> TestResult {
    let addr = map_anon(PAGE_SIZE, PROT_READ)?;
    check_err!(
        // SAFETY: refused: nothing changes.
        unsafe { sys::mprotect(addr + 1, PAGE_SIZE, PROT_READ) },
        EINVAL
    );
    unmap(addr, PAGE_SIZE)
}

fn mprotect_unmapped_range_is_enomem() -> TestResult {
    let addr = map_anon(PAGE_SIZE, PROT_READ)?;
    unmap(addr, PAGE_SIZE)?;
    // SAFETY: nothing is mapped there.
    check_err!(unsafe { sys::mprotect(addr, PAGE_SIZE, PROT_READ) }, ENOMEM);
    Ok(())
}

fn madvise_dontneed_zeroes_private_anonymous() -> TestResult {
    let addr = map_anon(PAGE_SIZE, PROT_READ | PROT_WRITE)?;
    // SAFETY: our page.
    unsafe { poke(addr, 9) };
    check_eq!(
        // SAFETY: we do not rely on the page's contents (we check they are gone).
        unsafe { sys::madvise(addr, PAGE_SIZE, MADV_DONTNEED) },
        Ok(0)
    );
    // SAFETY: still mapped; a fresh zero page.
    check_eq!(unsafe { peek(addr) }, 0);
    unmap(addr, PAGE_SIZE)
}

fn madvise_unknown_advice_is_einval() -> TestResult {
    let addr = map_anon(PAGE_SIZE, PROT_READ)?;
    // SAFETY: refused: nothing changes.
    check_err!(unsafe { sys::madvise(addr, PAGE_SIZE, 9999) }, EINVAL);
    unmap(addr, PAGE_SIZE)
}

fn madvise_unaligned_is_einval() -> TestResult {
    let addr = map_anon(PAGE_SIZE, PROT_READ)?;
    check_err!(
        // SAFETY: refused: nothing changes.
        unsafe { sys::madvise(addr + 1, PAGE_SIZE, MADV_NORMAL) },
        EINVAL
    );
    unmap(addr, PAGE_SIZE)
}

fn brk_query_grow_and_shrink() -> TestResult {
    // Nothing else in this program uses the heap that brk manages, so growing and
    // shrinking it affects only this test.
    // SAFETY: see above.
    let start = check_ok!(unsafe { sys::brk(0) });
    check!(start != 0);
    let end = start + 2 * PAGE_SIZE;
    // SAFETY: see above.
    check_eq!(unsafe { sys::brk(end) }, Ok(end));
    // SAFETY: [start, end) is now heap.
    unsafe {
        check_eq!(peek(start), 0);
        poke(start, 1);
        poke(end - 1, 2);
    }
    // SAFETY: see above.
    check_eq!(unsafe { sys::brk(start) }, Ok(start));
    // SAFETY: see above.
    check_eq!(unsafe { sys::brk(0) }, Ok(start));
    Ok(())
}

fn brk_below_the_start_is_refused() -> TestResult {
    // The raw brk does not fail: it answers with the unchanged break.
    // SAFETY: a query.
    let cur = check_ok!(unsafe { sys::brk(0) });
    // SAFETY: refused: the break stays.
    check_eq!(unsafe { sys::brk(PAGE_SIZE) }, Ok(cur));
    Ok(())
}

fn read_into_prot_none_page_is_efault() -> TestResult {
    let addr = map_anon(PAGE_SIZE, PROT_NONE)?;
    let fd = check_ok!(sys::open(c"/dev/zero", O_RDONLY, 0)) as i32;
    // SAFETY: the kernel must refuse to write the PROT_NONE page.
    let ret = sys::ret(unsafe { syscall3(nr::READ, fd as usize, addr, 8) });
    check_err!(ret, EFAULT);
    check_ok!(sys::close(fd));
    unmap(addr, PAGE_SIZE)
}
