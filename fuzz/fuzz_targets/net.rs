//! The `net` fuzz target: see `src/targets/net.rs` for what an input is.
//!
//! This binary also defines `readv` and `writev`, in front of libc's: every call the
//! VMM makes goes through `vmm_fuzz::targets::net::{readv,writev}`, which check the
//! iovecs the virtio-net device hands the kernel for its tap (inside guest memory but
//! its own header and bounce buffer) and then make the system call. That covers every
//! frame read (both paths) and every frame written without io_uring; the WRITEVs the
//! device puts on its io_uring never reach libc, and the target checks their iovecs
//! through the device's write hook instead (in every build).
#![no_main]

/// libc's readv, checked.
///
/// # Safety
///
/// That of readv(2).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn readv(fd: libc::c_int, iov: *const libc::iovec, n: libc::c_int) -> libc::ssize_t {
    // SAFETY: the caller's promise, passed on.
    unsafe { vmm_fuzz::targets::net::readv(fd, iov, n) }
}

/// libc's writev, checked.
///
/// # Safety
///
/// That of writev(2).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn writev(fd: libc::c_int, iov: *const libc::iovec, n: libc::c_int) -> libc::ssize_t {
    // SAFETY: the caller's promise, passed on.
    unsafe { vmm_fuzz::targets::net::writev(fd, iov, n) }
}

libfuzzer_sys::fuzz_target!(init: vmm_fuzz::targets::net::assert_interposed(), |data: &[u8]| vmm_fuzz::targets::net::run(data));
