//! mremap: shrinking cuts the tail, growing goes in place when it can and moves (pages
//! and all, contents kept) with MREMAP_MAYMOVE, MREMAP_FIXED moves to a given address,
//! MREMAP_DONTUNMAP leaves the old range mapped and empty; the errors.

use ulib::sys::{self, syscall3, syscall5};
use ulib::uapi::*;
use ulib::{check, check_eq, check_err, check_ok, nr};

use crate::util::*;

pub const TESTS: &[Test] = tests![
    shrinking_keeps_the_address_and_cuts_the_tail,
    growing_keeps_the_contents,
    a_blocked_grow_needs_maymove,
    fixed_moves_to_the_address_given,
    dontunmap_leaves_the_old_range_empty,
    bad_arguments,
];

const PAGE: usize = 4096;
const MAYMOVE: usize = 1;
const FIXED: usize = 2;
const DONTUNMAP: usize = 4;

fn mremap(old: usize, old_len: usize, new_len: usize, flags: usize, new_addr: usize) -> ulib::errno::Result {
    // SAFETY: the ranges are the test's own mappings (or refused).
    sys::ret(unsafe { syscall5(nr::MREMAP, old, old_len, new_len, flags, new_addr) })
}

/// Whether every page of `[addr, addr + len)` is mapped (mincore answers ENOMEM if not).
fn mapped(addr: usize, len: usize) -> bool {
    let mut vec = [0u8; 64];
    // SAFETY: the kernel writes one byte per page (at most 64 here).
    sys::ret(unsafe { syscall3(nr::MINCORE, addr, len, vec.as_mut_ptr() as usize) }).is_ok()
}

fn fill(addr: usize, pages: usize, seed: u8) {
    for i in 0..pages * PAGE {
        // SAFETY: inside a writable mapping the test owns.
        unsafe { ((addr + i) as *mut u8).write_volatile(seed.wrapping_add((i % 251) as u8)) };
    }
}

fn holds(addr: usize, pages: usize, seed: u8) -> bool {
    // SAFETY: inside a readable mapping the test owns.
    (0..pages * PAGE).all(|i| unsafe { ((addr + i) as *const u8).read_volatile() } == seed.wrapping_add((i % 251) as u8))
}

fn zeroed(addr: usize, len: usize) -> bool {
    // SAFETY: as above.
    (0..len).all(|i| unsafe { ((addr + i) as *const u8).read_volatile() } == 0)
}

fn shrinking_keeps_the_address_and_cuts_the_tail() -> TestResult {
    let a = map_anon(4 * PAGE, PROT_READ | PROT_WRITE)?;
    fill(a, 4, 1);
    check_eq!(mremap(a, 4 * PAGE, PAGE, 0, 0), Ok(a));
    check!(holds(a, 1, 1), "the first page changed");
    check!(!mapped(a + PAGE, 3 * PAGE), "the tail is still mapped");
    unmap(a, PAGE)
}

fn growing_keeps_the_contents() -> TestResult {
    let a = map_anon(2 * PAGE, PROT_READ | PROT_WRITE)?;
    fill(a, 2, 7);
    let b = check_ok!(mremap(a, 2 * PAGE, 5 * PAGE, MAYMOVE, 0));
    check!(holds(b, 2, 7), "contents lost");
    check!(zeroed(b + 2 * PAGE, 3 * PAGE), "the new pages are not zero");
    if b != a {
        check!(!mapped(a, 2 * PAGE), "the old range is still mapped after a move");
    }
    fill(b, 5, 9);
    check!(holds(b, 5, 9), "the grown mapping is not writable");
    unmap(b, 5 * PAGE)
}

fn a_blocked_grow_needs_maymove() -> TestResult {
    let a = map_anon(3 * PAGE, PROT_READ | PROT_WRITE)?;
    unmap(a + 2 * PAGE, PAGE)?;
    // A neighbour right after the first two pages.
    // SAFETY: MAP_FIXED_NOREPLACE onto the page just unmapped.
    let n = check_ok!(unsafe { sys::mmap(a + 2 * PAGE, PAGE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0) });
    check_eq!(n, a + 2 * PAGE);
    fill(a, 2, 3);
    check_err!(mremap(a, 2 * PAGE, 3 * PAGE, 0, 0), ENOMEM);
    let b = check_ok!(mremap(a, 2 * PAGE, 3 * PAGE, MAYMOVE, 0));
    check!(b != a, "grew over its neighbour");
    check!(holds(b, 2, 3), "contents lost in the move");
    check!(mapped(n, PAGE), "the neighbour went away");
    unmap(b, 3 * PAGE)?;
    unmap(n, PAGE)
}

fn fixed_moves_to_the_address_given() -> TestResult {
    let a = map_anon(PAGE, PROT_READ | PROT_WRITE)?;
    fill(a, 1, 5);
    // A free place for it: reserve, then let go.
    let target = map_anon(2 * PAGE, PROT_READ)?;
    unmap(target, 2 * PAGE)?;
    check_eq!(mremap(a, PAGE, 2 * PAGE, MAYMOVE | FIXED, target), Ok(target));
    check!(holds(target, 1, 5), "contents lost");
    check!(!mapped(a, PAGE), "the old range is still mapped");
    // Overlapping the old range: EINVAL.
    check_err!(mremap(target, PAGE, PAGE, MAYMOVE | FIXED, target), EINVAL);
    unmap(target, 2 * PAGE)
}

fn dontunmap_leaves_the_old_range_empty() -> TestResult {
    let a = map_anon(PAGE, PROT_READ | PROT_WRITE)?;
    fill(a, 1, 11);
    let b = check_ok!(mremap(a, PAGE, PAGE, MAYMOVE | DONTUNMAP, 0));
    check!(b != a, "not moved");
    check!(holds(b, 1, 11), "contents lost");
    check!(mapped(a, PAGE) && zeroed(a, PAGE), "the old range is gone or not empty");
    unmap(a, PAGE)?;
    unmap(b, PAGE)
}

fn bad_arguments() -> TestResult {
    let a = map_anon(2 * PAGE, PROT_READ | PROT_WRITE)?;
    check_err!(mremap(a + 1, PAGE, PAGE, 0, 0), EINVAL);
    check_err!(mremap(a, PAGE, 0, 0, 0), EINVAL);
    check_err!(mremap(a, PAGE, PAGE, 8, 0), EINVAL);
    check_err!(mremap(a, PAGE, 2 * PAGE, FIXED, a + 8 * PAGE), EINVAL);
    check_err!(mremap(a, PAGE, 2 * PAGE, MAYMOVE | DONTUNMAP, 0), EINVAL);
    // Beyond the mapping, or no mapping at all.
    check_err!(mremap(a, 3 * PAGE, 4 * PAGE, MAYMOVE, 0), EFAULT);
    unmap(a, 2 * PAGE)?;
    check_err!(mremap(a, PAGE, 2 * PAGE, MAYMOVE, 0), EFAULT);
    Ok(())
}
