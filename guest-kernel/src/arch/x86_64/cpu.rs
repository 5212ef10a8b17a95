//! Single x86 instructions that touch privileged state, each wrapped once.
//!
//! All of these are only meaningful in ring 0, which is where the kernel runs.

use core::arch::asm;

/// Writes a byte to an I/O port.
pub fn outb(port: u16, value: u8) {
    // SAFETY: port I/O has no memory effects; the kernel owns all ports it names.
    unsafe { asm!("out dx, al", in("dx") port, in("al") value, options(nomem, nostack, preserves_flags)) };
}

/// Reads a byte from an I/O port.
pub fn inb(port: u16) -> u8 {
    let value: u8;
    // SAFETY: as for `outb`.
    unsafe { asm!("in al, dx", out("al") value, in("dx") port, options(nomem, nostack, preserves_flags)) };
    value
}

/// Writes a 32-bit value to an I/O port.
pub fn outl(port: u16, value: u32) {
    // SAFETY: as for `outb`.
    unsafe { asm!("out dx, eax", in("dx") port, in("eax") value, options(nomem, nostack, preserves_flags)) };
}

/// Writes a byte string to one I/O port with a single `rep outsb`: one VM exit for the
/// whole buffer instead of one per byte.
pub fn outsb(port: u16, bytes: &[u8]) {
    // SAFETY: reads `bytes.len()` bytes from a valid slice; DF is clear per the ABI.
    unsafe {
        asm!("rep outsb", in("dx") port, inout("rsi") bytes.as_ptr() => _,
             inout("rcx") bytes.len() => _, options(nostack, preserves_flags, readonly));
    }
}

/// Reads a model-specific register.
pub fn rdmsr(msr: u32) -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: the kernel only names architectural MSRs that exist on x86-64.
    unsafe { asm!("rdmsr", in("ecx") msr, out("eax") lo, out("edx") hi, options(nomem, nostack, preserves_flags)) };
    (u64::from(hi) << 32) | u64::from(lo)
}

/// Writes a model-specific register.
///
/// # Safety
/// The caller must know what the MSR controls: a wrong value can break memory safety
/// (EFER, segment bases, syscall entry points).
pub unsafe fn wrmsr(msr: u32, value: u64) {
    // SAFETY: the caller upholds the contract above.
    unsafe {
        asm!("wrmsr", in("ecx") msr, in("eax") value as u32, in("edx") (value >> 32) as u32,
             options(nostack, preserves_flags));
    }
}

/// Reads CR2, the address of the last page fault.
pub fn cr2() -> u64 {
    let value: u64;
    // SAFETY: reading CR2 has no side effects.
    unsafe { asm!("mov {}, cr2", out(reg) value, options(nomem, nostack, preserves_flags)) };
    value
}

/// Flushes this CPU's TLB of user entries (reloads CR3).
pub fn flush_tlb() {
    // SAFETY: reloading CR3 with its own value only drops cached translations.
    unsafe { asm!("mov {t}, cr3", "mov cr3, {t}", t = out(reg) _, options(nostack, preserves_flags)) };
}

/// Enables interrupts.
#[inline]
pub fn enable_interrupts() {
    // SAFETY: the IDT is loaded before the kernel ever enables interrupts.
    unsafe { asm!("sti", options(nomem, nostack)) };
}

/// Disables interrupts and returns whether they were enabled.
#[inline]
pub fn disable_interrupts() -> bool {
    let flags: u64;
    // SAFETY: reads RFLAGS and clears IF; no memory is touched.
    unsafe { asm!("pushfq", "pop {}", "cli", out(reg) flags, options(nomem, preserves_flags)) };
    flags & (1 << 9) != 0
}

/// Waits for the next interrupt with interrupts enabled only while halted (`sti; hlt;
/// cli`): the interrupt is handled, then the kernel goes on with interrupts off.
pub fn wait_for_interrupt() {
    // SAFETY: `sti` takes effect after the next instruction, so no wakeup is lost between
    // the caller's check and the halt.
    unsafe { asm!("sti", "hlt", "cli", options(nomem, nostack)) };
}

/// Lets interrupts that are pending in (the kernel runs with them off): a preemption
/// point for kernel code that yields without sleeping, so timers and devices are served
/// even when two such tasks only ever yield to each other.
pub fn take_pending_interrupts() {
    // SAFETY: the caller holds no lock an interrupt handler takes; `sti` takes effect
    // after the `nop`, which is the one window where a pending interrupt is delivered.
    unsafe { asm!("sti", "nop", "cli", options(nomem, nostack)) };
}

/// Halts forever with interrupts off.
pub fn halt_forever() -> ! {
    loop {
        // SAFETY: stops the CPU; nothing is left to run.
        unsafe { asm!("cli", "hlt", options(nomem, nostack)) };
    }
}

/// The CPUID instruction: (eax, ebx, ecx, edx) for `leaf`/`subleaf`.
pub fn cpuid(leaf: u32, subleaf: u32) -> [u32; 4] {
    // SAFETY: CPUID is always available in long mode and only reads CPU state.
    let r = core::arch::x86_64::__cpuid_count(leaf, subleaf);
    [r.eax, r.ebx, r.ecx, r.edx]
}

pub use super::percpu::{index, MAX_CPUS};

/// Spins once politely (`pause`), and does what other CPUs asked of this one meanwhile
/// (a TLB flush): every busy-wait loop in the kernel calls this, so a CPU that waits with
/// interrupts off still answers a CPU that waits for it.
#[inline]
pub fn relax() {
    core::hint::spin_loop();
    super::smp::poll_requests();
}
