//! The vDSO: named by AT_SYSINFO_EHDR, an ELF shared object exporting the time functions
//! (found here through its dynamic symbol table, as a C library finds them), whose
//! answers agree with the system calls, inherited by a forked child.

use core::sync::atomic::Ordering::Relaxed;

use ulib::sys::{self, syscall2};
use ulib::uapi::*;
use ulib::{check, check_eq, check_ok, fail, nr};

use crate::util::*;

pub const TESTS: &[Test] = tests![
    vdso_is_an_elf_shared_object_named_in_auxv,
    vdso_exports_the_time_functions,
    vdso_clock_gettime_agrees_with_the_syscall,
    vdso_clock_gettime_falls_back_for_other_clocks,
    vdso_gettimeofday_and_time_agree_with_the_syscalls,
    vdso_getcpu_names_an_online_cpu,
    vdso_works_in_a_forked_child,
];

fn base() -> Result<usize, Failure> {
    let b = VDSO.load(Relaxed);
    if b == 0 {
        fail!("no AT_SYSINFO_EHDR in the auxiliary vector");
    }
    Ok(b)
}

/// Reads a `T` at `addr` (inside the vDSO's mapped image).
fn at<T: Copy>(addr: usize) -> T {
    // SAFETY: only addresses inside the vDSO image, which stays mapped, are read.
    unsafe { (addr as *const T).read_unaligned() }
}

/// The address of the vDSO's dynamic symbol `name`, as musl's and glibc's lookups find
/// it: through PT_DYNAMIC's symbol table (its size from DT_HASH's chain count).
fn symbol(name: &[u8]) -> Result<usize, Failure> {
    let b = base()?;
    let (phoff, phnum): (u64, u16) = (at(b + 32), at(b + 56));
    let mut bias = None;
    let mut dynamic = None;
    for i in 0..phnum as usize {
        let ph = b + phoff as usize + i * 56;
        let (kind, offset, vaddr): (u32, u64, u64) = (at(ph), at(ph + 8), at(ph + 16));
        match kind {
            1 if bias.is_none() => bias = Some(b + offset as usize - vaddr as usize),
            2 => dynamic = Some(vaddr as usize),
            _ => {}
        }
    }
    let (Some(bias), Some(dynamic)) = (bias, dynamic) else { fail!("no PT_LOAD or PT_DYNAMIC") };
    let (mut symtab, mut strtab, mut hash) = (0, 0, 0);
    let mut d = bias + dynamic;
    loop {
        let (tag, val): (i64, u64) = (at(d), at(d + 8));
        match tag {
            0 => break,
            4 => hash = bias + val as usize,
            5 => strtab = bias + val as usize,
            6 => symtab = bias + val as usize,
            _ => {}
        }
        d += 16;
    }
    check!(symtab != 0 && strtab != 0 && hash != 0, "DT_SYMTAB, DT_STRTAB or DT_HASH missing");
    let nsyms: u32 = at(hash + 4);
    for i in 0..nsyms as usize {
        let sym = symtab + i * 24;
        let (name_off, value): (u32, u64) = (at(sym), at(sym + 8));
        let s = strtab + name_off as usize;
        if (0..name.len()).all(|k| at::<u8>(s + k) == name[k]) && at::<u8>(s + name.len()) == 0 && value != 0 {
            return Ok(bias + value as usize);
        }
    }
    fail!("{} not exported", core::str::from_utf8(name).unwrap_or("?"))
}

type ClockGettime = extern "C" fn(i32, *mut Timespec) -> i64;

fn clock_gettime_fn() -> Result<ClockGettime, Failure> {
    let f = symbol(b"__vdso_clock_gettime")?;
    // SAFETY: the vDSO's __vdso_clock_gettime has this C signature (as on Linux).
    Ok(unsafe { core::mem::transmute::<usize, ClockGettime>(f) })
}

fn vdso_is_an_elf_shared_object_named_in_auxv() -> TestResult {
    let b = base()?;
    check_eq!(b % 4096, 0);
    check_eq!(at::<[u8; 4]>(b), *b"\x7fELF");
    check_eq!(at::<u8>(b + 4), 2); // ELFCLASS64
    check_eq!(at::<u16>(b + 16), 3); // ET_DYN
    check_eq!(at::<u16>(b + 18), 62); // EM_X86_64
    Ok(())
}

fn vdso_exports_the_time_functions() -> TestResult {
    for name in [&b"__vdso_clock_gettime"[..], b"__vdso_gettimeofday", b"__vdso_time", b"__vdso_getcpu"] {
        symbol(name)?;
    }
    Ok(())
}

fn vdso_clock_gettime_agrees_with_the_syscall() -> TestResult {
    // The same clock read by syscall, vDSO, syscall: in order.
    let f = clock_gettime_fn()?;
    for clock in [CLOCK_MONOTONIC, CLOCK_REALTIME, 7 /* CLOCK_BOOTTIME */] {
        let (mut a, mut v, mut b) = (Timespec::default(), Timespec::default(), Timespec::default());
        check_ok!(sys::clock_gettime(clock, &mut a));
        check_eq!(f(clock, &mut v), 0);
        check_ok!(sys::clock_gettime(clock, &mut b));
        check!(a <= v && v <= b, "clock {clock}: syscall {a:?}, vDSO {v:?}, syscall {b:?}");
        check!((0..1_000_000_000).contains(&v.tv_nsec), "tv_nsec {}", v.tv_nsec);
    }
    Ok(())
}

fn vdso_clock_gettime_falls_back_for_other_clocks() -> TestResult {
    // CPU-time clocks go to the kernel; an unknown clock comes back as -EINVAL.
    let f = clock_gettime_fn()?;
    let mut t = Timespec { tv_sec: -1, tv_nsec: -1 };
    check_eq!(f(CLOCK_PROCESS_CPUTIME_ID, &mut t), 0);
    check!(t.tv_sec >= 0 && (0..1_000_000_000).contains(&t.tv_nsec), "cputime {t:?}");
    check_eq!(f(1000, &mut t), -22);
    Ok(())
}

fn vdso_gettimeofday_and_time_agree_with_the_syscalls() -> TestResult {
    let gtod = symbol(b"__vdso_gettimeofday")?;
    // SAFETY: the vDSO's gettimeofday(struct timeval *, struct timezone *).
    let gtod = unsafe { core::mem::transmute::<usize, extern "C" fn(*mut Timeval, *mut [i32; 2]) -> i64>(gtod) };
    let time = symbol(b"__vdso_time")?;
    // SAFETY: the vDSO's time(time_t *).
    let time = unsafe { core::mem::transmute::<usize, extern "C" fn(*mut i64) -> i64>(time) };
    let (mut a, mut v, mut b) = (Timeval::default(), Timeval::default(), Timeval::default());
    // SAFETY: the kernel writes the timeval.
    let sys_gtod = |tv: &mut Timeval| sys::ret(unsafe { syscall2(nr::GETTIMEOFDAY, tv as *mut Timeval as usize, 0) });
    check_ok!(sys_gtod(&mut a));
    let mut tz = [7, 7];
    check_eq!(gtod(&mut v, &mut tz), 0);
    check_ok!(sys_gtod(&mut b));
    let us = |t: &Timeval| t.tv_sec * 1_000_000 + t.tv_usec;
    check!(us(&a) <= us(&v) && us(&v) <= us(&b), "syscall {a:?}, vDSO {v:?}, syscall {b:?}");
    check!((0..1_000_000).contains(&v.tv_usec), "tv_usec {}", v.tv_usec);
    check_eq!(gtod(core::ptr::null_mut(), core::ptr::null_mut()), 0);
    let mut t = 0i64;
    let r = time(&mut t);
    check_eq!(r, t);
    // Linux's time() reads the coarse clock, updated at the tick: just after a second
    // begins it may still say the one before.
    check!(r >= a.tv_sec - 1 && r <= b.tv_sec + 1, "time {r}, gettimeofday {}..{}", a.tv_sec, b.tv_sec);
    check_eq!(time(core::ptr::null_mut()) >= r, true);
    Ok(())
}

fn vdso_getcpu_names_an_online_cpu() -> TestResult {
    let f = symbol(b"__vdso_getcpu")?;
    // SAFETY: the vDSO's getcpu(unsigned *cpu, unsigned *node, void *cache).
    let getcpu = unsafe { core::mem::transmute::<usize, extern "C" fn(*mut u32, *mut u32, *mut u8) -> i64>(f) };
    let (mut cpu, mut node) = (u32::MAX, u32::MAX);
    check_eq!(getcpu(&mut cpu, &mut node, core::ptr::null_mut()), 0);
    let mut mask = [0u8; 128];
    let n = check_ok!(sys::sched_getaffinity(0, &mut mask));
    check!(n > 0 && (cpu as usize) < n * 8, "cpu {cpu} of a {n}-byte mask");
    check_eq!(mask[cpu as usize / 8] >> (cpu % 8) & 1, 1);
    check!(node < 1024, "node {node}");
    Ok(())
}

fn vdso_works_in_a_forked_child() -> TestResult {
    let f = clock_gettime_fn()?;
    let status = run_child(move || {
        let mut t = Timespec::default();
        status_if(f(CLOCK_MONOTONIC, &mut t) == 0 && t.tv_sec >= 0, true)
    })?;
    check_eq!(status.exit_code(), Some(0));
    Ok(())
}
