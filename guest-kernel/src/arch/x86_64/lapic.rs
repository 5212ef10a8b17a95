//! The local APIC (xAPIC, memory-mapped at 0xfee00000) and its timer, used one-shot: the
//! kernel arms it for the earliest deadline it cares about (see `crate::time`).
//!
//! Two ways to arm it (Intel SDM vol. 3, "APIC Timer"):
//! - TSC-deadline mode (CPUID.01H:ECX[24]): write the TSC value to interrupt at into
//!   IA32_TSC_DEADLINE. No conversion, no 32-bit range limit. Used when CPUID offers it,
//!   unless `lapic=notscdeadline` is on the command line (the name Linux uses).
//! - One-shot mode: write a count to the initial-count register; it counts down at the
//!   APIC timer's rate. Both KVM's in-kernel APIC and QEMU's count at 1 GHz (one count
//!   per nanosecond with divide-by-1), so no calibration is needed on the platforms we
//!   run on. QEMU TCG's default CPU model has no TSC-deadline, so it always uses this.

use core::sync::atomic::{AtomicBool, Ordering};

use super::cpu;
use crate::mm::phys_to_virt;

const LAPIC_BASE: u64 = 0xfee0_0000;
const REG_ID: usize = 0x20;
const REG_EOI: usize = 0xb0;
const REG_ICR_LOW: usize = 0x300;
const REG_ICR_HIGH: usize = 0x310;
const ICR_PENDING: u32 = 1 << 12;
const REG_SVR: usize = 0xf0;
const REG_LVT_TIMER: usize = 0x320;
const REG_TIMER_INIT: usize = 0x380;
const REG_TIMER_CURRENT: usize = 0x390;
const REG_TIMER_DIV: usize = 0x3e0;
const LVT_MASKED: u32 = 1 << 16;
const LVT_TSC_DEADLINE: u32 = 2 << 17;
const MSR_TSC_DEADLINE: u32 = 0x6e0;

pub const TIMER_VECTOR: u8 = 32;
pub const SPURIOUS_VECTOR: u8 = 0xff;
/// Counts per second of the APIC timer with divide-by-1 (see the module doc); one-shot
/// counts are therefore nanoseconds.
const APIC_TIMER_HZ: u64 = 1_000_000_000;

/// Whether the timer runs in TSC-deadline mode (set once at boot, before interrupts).
static TSC_DEADLINE: AtomicBool = AtomicBool::new(false);

fn reg(offset: usize) -> *mut u32 {
    let base = phys_to_virt(LAPIC_BASE, 0x1000).expect("the direct map covers the LAPIC");
    base.wrapping_add(offset).cast()
}

fn write(offset: usize, value: u32) {
    // SAFETY: LAPIC registers are 32-bit MMIO in the uncached part of the direct map.
    unsafe { reg(offset).write_volatile(value) };
}

fn read(offset: usize) -> u32 {
    // SAFETY: as for `write`.
    unsafe { reg(offset).read_volatile() }
}

/// Enables the APIC and starts its timer counting down (masked) from its largest count,
/// for [`measure_tsc_khz`]. [`start_timer`] then chooses the mode the kernel uses.
pub fn init() {
    write(REG_SVR, 0x100 | u32::from(SPURIOUS_VECTOR));
    write(REG_TIMER_DIV, 0xb); // divide by 1
    write(REG_LVT_TIMER, u32::from(TIMER_VECTOR) | LVT_MASKED); // one-shot, masked
    write(REG_TIMER_INIT, u32::MAX);
}

/// Puts the timer in the mode it keeps from now on, disarmed: TSC-deadline if CPUID
/// offers it and `allow_tsc_deadline`, else one-shot. Returns whether TSC-deadline is used.
pub fn start_timer(allow_tsc_deadline: bool) -> bool {
    let deadline = allow_tsc_deadline && cpu::cpuid(1, 0)[2] & (1 << 24) != 0;
    write(REG_TIMER_INIT, 0);
    if deadline {
        write(REG_LVT_TIMER, u32::from(TIMER_VECTOR) | LVT_TSC_DEADLINE);
        // The SDM asks that the LVT write be ordered before the first IA32_TSC_DEADLINE
        // write; a locked instruction orders the (uncached) store as MFENCE would, and
        // stays clear of SSE-encoded instructions, which this host cannot run in ring 0.
        // SAFETY: a locked no-op on the stack.
        unsafe { core::arch::asm!("lock or qword ptr [rsp], 0", options(nostack, preserves_flags)) };
        // SAFETY: 0 disarms the TSC-deadline timer.
        unsafe { cpu::wrmsr(MSR_TSC_DEADLINE, 0) };
    } else {
        write(REG_LVT_TIMER, u32::from(TIMER_VECTOR)); // one-shot, unmasked
    }
    TSC_DEADLINE.store(deadline, Ordering::Relaxed);
    deadline
}

/// Whether the timer runs in TSC-deadline mode (else one-shot).
pub fn tsc_deadline_mode() -> bool {
    TSC_DEADLINE.load(Ordering::Relaxed)
}

/// Arms this CPU's timer to interrupt once, `delta_ns` from now (one-shot mode) or when
/// the TSC reaches `tsc` (TSC-deadline mode); replaces any earlier arming. The one-shot
/// count is 32 bits (4.29 s): a later deadline interrupts early and is armed again.
pub fn arm(delta_ns: u64, tsc: u64) {
    if TSC_DEADLINE.load(Ordering::Relaxed) {
        // SAFETY: IA32_TSC_DEADLINE only schedules this CPU's timer interrupt; a value in
        // the past interrupts at once (0 would disarm it, hence the max).
        unsafe { cpu::wrmsr(MSR_TSC_DEADLINE, tsc.max(1)) };
    } else {
        write(REG_TIMER_INIT, delta_ns.clamp(1, u64::from(u32::MAX)) as u32);
    }
}

/// Stops this CPU's timer.
pub fn disarm() {
    if TSC_DEADLINE.load(Ordering::Relaxed) {
        // SAFETY: 0 disarms the TSC-deadline timer.
        unsafe { cpu::wrmsr(MSR_TSC_DEADLINE, 0) };
    } else {
        write(REG_TIMER_INIT, 0);
    }
}

/// This CPU's local APIC ID.
pub fn id() -> u32 {
    read(REG_ID) >> 24
}

/// Sends an inter-processor interrupt to the CPU with `apic_id`; `command` is the ICR's
/// low word (vector, delivery mode, level). Waits until the APIC has taken it.
pub fn send_ipi(apic_id: u32, command: u32) {
    // Interrupts off: a handler sending its own IPI between the two writes would send
    // this one to its destination.
    let were_on = super::cpu::disable_interrupts();
    write(REG_ICR_HIGH, apic_id << 24);
    write(REG_ICR_LOW, command);
    while read(REG_ICR_LOW) & ICR_PENDING != 0 {
        core::hint::spin_loop();
    }
    if were_on {
        super::cpu::enable_interrupts();
    }
}

/// Signals the end of the interrupt being handled.
pub fn eoi() {
    write(REG_EOI, 0);
}

/// Measures the TSC frequency in kHz against the APIC timer (1 GHz) that [`init`] left
/// counting down: counts TSC cycles over 2 ms of APIC counts.
pub fn measure_tsc_khz() -> u64 {
    const SPAN: u64 = 2_000_000;
    let start = u64::from(read(REG_TIMER_CURRENT));
    let tsc0 = crate::time::rdtsc();
    loop {
        // Counting down from u32::MAX (4.29 s) without reloading: no wrap within SPAN.
        let elapsed = start.saturating_sub(u64::from(read(REG_TIMER_CURRENT)));
        if elapsed >= SPAN {
            return (crate::time::rdtsc() - tsc0) * (APIC_TIMER_HZ / 1000) / elapsed;
        }
    }
}
