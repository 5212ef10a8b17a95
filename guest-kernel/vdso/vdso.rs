//! The vDSO: clock_gettime, gettimeofday, time and getcpu for user space, without
//! entering the kernel. Built by `build.rs` as a small shared object that the kernel maps
//! into every process (named by AT_SYSINFO_EHDR), followed by the *vvar* page, where the
//! kernel keeps what converting the TSC into time needs (`Vvar`, the same formula as
//! the kernel's own clock: `time::monotonic_ns`).
//!
//! Position-independent, with no relocations to apply: the vvar page is found
//! RIP-relative. Nothing here may panic (there is no panic handler): only wrapping
//! arithmetic and divisions by constants.
#![no_std]

/// The vvar page's contents (`mm::vdso` in the kernel fills it).
#[repr(C)]
struct Vvar {
    /// TSC value at boot, and ns per cycle in 32.32 fixed point.
    tsc_boot: u64,
    ns_per_cycle: u64,
    /// CLOCK_REALTIME at boot, in ns since the epoch.
    epoch_ns: u64,
}

#[repr(C)]
struct Timespec {
    sec: i64,
    nsec: i64,
}

const NSEC: u64 = 1_000_000_000;
const SYS_GETTIMEOFDAY: u64 = 96;
const SYS_CLOCK_GETTIME: u64 = 228;

fn vvar() -> &'static Vvar {
    let p: *const Vvar;
    // SAFETY: `__vvar` (the linker script's) is the page the kernel maps right after this
    // image, read-only, for as long as the image is mapped.
    unsafe {
        core::arch::asm!("lea {}, [rip + __vvar]", out(reg) p, options(pure, nomem, nostack));
        &*p
    }
}

/// Nanoseconds since boot (CLOCK_MONOTONIC), as the kernel computes them.
fn monotonic_ns() -> u64 {
    let v = vvar();
    // SAFETY: RDTSC only reads the time-stamp counter.
    let tsc = unsafe { core::arch::x86_64::_rdtsc() };
    ((u128::from(tsc.wrapping_sub(v.tsc_boot)) * u128::from(v.ns_per_cycle)) >> 32) as u64
}

/// The clock's time in ns, for the clocks the kernel computes the same way (see its
/// `syscall::time::clock_ns`); None for the others (CPU-time clocks, bad ids).
fn clock_ns(clock: i32) -> Option<u64> {
    match clock {
        0 | 5 | 8 | 11 => Some(vvar().epoch_ns.wrapping_add(monotonic_ns())),
        1 | 4 | 6 | 7 | 9 => Some(monotonic_ns()),
        _ => None,
    }
}

/// A system call with two arguments (the fallback).
fn syscall2(nr: u64, a: u64, b: u64) -> i64 {
    let ret: i64;
    // SAFETY: the kernel's syscall ABI: it reads the arguments and returns in rax,
    // clobbering rcx and r11.
    unsafe {
        core::arch::asm!("syscall", inlateout("rax") nr as i64 => ret, in("rdi") a, in("rsi") b,
            lateout("rcx") _, lateout("r11") _, options(nostack));
    }
    ret
}

#[unsafe(no_mangle)]
pub extern "C" fn __vdso_clock_gettime(clock: i32, ts: *mut Timespec) -> i64 {
    let Some(ns) = clock_ns(clock) else { return syscall2(SYS_CLOCK_GETTIME, clock as u64, ts as u64) };
    // SAFETY: the caller's buffer, as for the syscall (a bad one faults here).
    unsafe { ts.write(Timespec { sec: (ns / NSEC) as i64, nsec: (ns % NSEC) as i64 }) };
    0
}

#[unsafe(no_mangle)]
pub extern "C" fn __vdso_gettimeofday(tv: *mut Timespec, tz: *mut [i32; 2]) -> i64 {
    let Some(ns) = clock_ns(0) else { return syscall2(SYS_GETTIMEOFDAY, tv as u64, tz as u64) };
    if !tv.is_null() {
        // SAFETY: the caller's `struct timeval` (same layout, microseconds).
        unsafe { tv.write(Timespec { sec: (ns / NSEC) as i64, nsec: (ns % NSEC / 1000) as i64 }) };
    }
    if !tz.is_null() {
        // SAFETY: the caller's `struct timezone`: UTC, no DST.
        unsafe { tz.write([0, 0]) };
    }
    0
}

#[unsafe(no_mangle)]
pub extern "C" fn __vdso_time(t: *mut i64) -> i64 {
    let sec = (vvar().epoch_ns.wrapping_add(monotonic_ns()) / NSEC) as i64;
    if !t.is_null() {
        // SAFETY: the caller's time_t.
        unsafe { t.write(sec) };
    }
    sec
}

/// The CPU and NUMA node: asks the kernel (the `getcpu` syscall), which knows where the
/// caller runs. (Linux reads them without entering the kernel, from RDPID or a segment
/// limit; a syscall is always right, and getcpu is rarely hot.)
#[unsafe(no_mangle)]
pub extern "C" fn __vdso_getcpu(cpu: *mut u32, node: *mut u32, cache: *mut u8) -> i64 {
    const SYS_GETCPU: i64 = 309;
    let ret: i64;
    // SAFETY: the getcpu syscall writes only through the caller's pointers.
    unsafe {
        core::arch::asm!("syscall", inlateout("rax") SYS_GETCPU => ret, in("rdi") cpu, in("rsi") node, in("rdx") cache,
                         lateout("rcx") _, lateout("r11") _, options(nostack));
    }
    ret
}
