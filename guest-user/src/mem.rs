//! The memory functions the compiler emits calls to (`memcpy` for a struct copy, ...)
//! and `strlen`, which `core` calls from `CStr::from_ptr`.
//!
//! Without libc we must provide them. Each is written so the compiler cannot turn its
//! body back into a call to itself: string instructions in inline asm for the copies and
//! fills, volatile reads for the comparison (which no idiom recogniser touches). The
//! System V ABI guarantees the direction flag is clear on entry and exit.

use core::arch::asm;
use core::ptr::read_volatile;

/// # Safety
/// `dst` and `src` must be valid for `n` bytes and must not overlap.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memcpy(dst: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    // SAFETY: rep movsb copies n bytes forward from rsi to rdi (the caller's obligation).
    unsafe {
        asm!("rep movsb", inout("rcx") n => _, inout("rdi") dst => _, inout("rsi") src => _,
             options(nostack, preserves_flags));
    }
    dst
}

/// # Safety
/// `dst` and `src` must be valid for `n` bytes; they may overlap.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memmove(dst: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    if (dst as usize).wrapping_sub(src as usize) >= n {
        // dst is below src or past its end: a forward copy reads each byte before
        // overwriting it.
        // SAFETY: as for memcpy.
        unsafe { memcpy(dst, src, n) }
    } else {
        // dst overlaps the tail of src: copy backwards, from the last byte down.
        // SAFETY: n > 0 here, so both last-byte pointers are in bounds; cld restores
        // the direction flag the ABI requires.
        unsafe {
            asm!("std", "rep movsb", "cld",
                 inout("rcx") n => _, inout("rdi") dst.add(n - 1) => _,
                 inout("rsi") src.add(n - 1) => _, options(nostack));
        }
        dst
    }
}

/// # Safety
/// `dst` must be valid for `n` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memset(dst: *mut u8, c: i32, n: usize) -> *mut u8 {
    // SAFETY: rep stosb stores al n times from rdi on (the caller's obligation).
    unsafe {
        asm!("rep stosb", inout("rcx") n => _, inout("rdi") dst => _, in("al") c as u8,
             options(nostack, preserves_flags));
    }
    dst
}

/// # Safety
/// `a` and `b` must be valid for `n` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    for i in 0..n {
        // SAFETY: i < n (the caller's obligation); volatile keeps this a plain loop.
        let (x, y) = unsafe { (read_volatile(a.add(i)), read_volatile(b.add(i))) };
        if x != y {
            return x as i32 - y as i32;
        }
    }
    0
}

/// Like memcmp, but only zero versus non-zero matters.
///
/// # Safety
/// `a` and `b` must be valid for `n` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn bcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    // SAFETY: the same contract.
    unsafe { memcmp(a, b, n) }
}

/// The length of a NUL-terminated string (`CStr::from_ptr` calls this).
///
/// # Safety
/// `s` must point at a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn strlen(s: *const u8) -> usize {
    let mut n = 0;
    // SAFETY: the string is NUL-terminated, so every byte up to the NUL is readable.
    while unsafe { read_volatile(s.add(n)) } != 0 {
        n += 1;
    }
    n
}
