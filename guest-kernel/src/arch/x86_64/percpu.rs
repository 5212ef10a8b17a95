//! Per-CPU data, found through the GS base.
//!
//! In the kernel, GS's base is this CPU's [`PerCpu`] (its first word points at itself, so
//! `mov rax, gs:[0]` yields a plain pointer). In user mode the base is the user's own (0:
//! `arch_prctl(ARCH_SET_GS)` is refused); each entry from user mode (`syscall`, an
//! interrupt or exception with CS.RPL 3) swaps the two with `swapgs`, and each return to
//! user mode swaps them back, as Linux does.
//!
//! The assembly entry paths read three fields at fixed offsets (checked below): the
//! running task's kernel stack top and a scratch slot for the user RSP (`syscall` has no
//! TSS stack switch), and the CPU's index. Everything else per CPU lives in the module
//! that owns it, in a `[T; MAX_CPUS]` indexed by [`index`] (see `time`, `task::sched`).

use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use super::cpu::wrmsr;

/// How many CPUs the kernel has room for.
pub const MAX_CPUS: usize = 64;

const MSR_GS_BASE: u32 = 0xc000_0101;
const MSR_KERNEL_GS_BASE: u32 = 0xc000_0102;

#[repr(C, align(64))]
pub struct PerCpu {
    /// gs:0, its own address.
    this: AtomicU64,
    /// gs:8, the running task's kernel stack top (read by `syscall_entry`).
    kernel_rsp: AtomicU64,
    /// gs:16, the user RSP while `syscall_entry` switches stacks.
    user_rsp: AtomicU64,
    /// gs:24, this CPU's index (0 = the boot CPU).
    index: AtomicU32,
    /// Its local APIC ID (where IPIs go).
    apic_id: AtomicU32,
}

pub const OFFSET_KERNEL_RSP: usize = 8;
pub const OFFSET_USER_RSP: usize = 16;
const OFFSET_INDEX: usize = 24;
const _: () = {
    assert!(core::mem::offset_of!(PerCpu, kernel_rsp) == OFFSET_KERNEL_RSP);
    assert!(core::mem::offset_of!(PerCpu, user_rsp) == OFFSET_USER_RSP);
    assert!(core::mem::offset_of!(PerCpu, index) == OFFSET_INDEX);
};

static CPUS: [PerCpu; MAX_CPUS] = [const {
    PerCpu {
        this: AtomicU64::new(0),
        kernel_rsp: AtomicU64::new(0),
        user_rsp: AtomicU64::new(0),
        index: AtomicU32::new(0),
        apic_id: AtomicU32::new(0),
    }
}; MAX_CPUS];

/// Makes `CPUS[index]` this CPU's data: sets GS's base (and the swapped-out base to the
/// user's 0). The first thing each CPU does in Rust, before any lock is taken.
pub fn init(index: usize, apic_id: u32) {
    let me = &CPUS[index];
    me.this.store(me as *const PerCpu as u64, Ordering::Relaxed);
    me.index.store(index as u32, Ordering::Relaxed);
    me.apic_id.store(apic_id, Ordering::Relaxed);
    // SAFETY: GS is used by nothing else in the kernel; the base points at this CPU's
    // static entry, which lives forever.
    unsafe {
        wrmsr(MSR_GS_BASE, me as *const PerCpu as u64);
        wrmsr(MSR_KERNEL_GS_BASE, 0);
    }
}

/// The index (0..MAX_CPUS) of the CPU running this code. Kernel code runs with
/// interrupts off and is never moved between CPUs, so the answer stays true until the
/// task blocks or yields.
#[inline]
pub fn index() -> usize {
    let i: u32;
    // SAFETY: GS's base is this CPU's `PerCpu` from `init` on (kernel_main's first step).
    unsafe { core::arch::asm!("mov {:e}, gs:[{}]", out(reg) i, const OFFSET_INDEX, options(nostack, preserves_flags, readonly)) };
    i as usize
}

/// The local APIC ID of CPU `index`.
pub fn apic_id(index: usize) -> u32 {
    CPUS[index].apic_id.load(Ordering::Relaxed)
}

/// Sets the stack `syscall_entry` switches to on CPU `cpu` (this one).
pub fn set_kernel_rsp(cpu: usize, top: u64) {
    CPUS[cpu].kernel_rsp.store(top, Ordering::Relaxed);
}
