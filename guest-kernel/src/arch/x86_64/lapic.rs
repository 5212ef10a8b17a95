//! The local APIC (xAPIC, memory-mapped at 0xfee00000) and its periodic timer.
//!
//! Both KVM's in-kernel APIC and QEMU's count the APIC timer at 1 GHz (one tick per
//! nanosecond with divide-by-1), so no calibration is needed on the platforms we run on.

use crate::mm::phys_to_virt;

const LAPIC_BASE: u64 = 0xfee0_0000;
const REG_EOI: usize = 0xb0;
const REG_SVR: usize = 0xf0;
const REG_LVT_TIMER: usize = 0x320;
const REG_TIMER_INIT: usize = 0x380;
const REG_TIMER_DIV: usize = 0x3e0;

pub const TIMER_VECTOR: u8 = 32;
pub const SPURIOUS_VECTOR: u8 = 0xff;
const APIC_TIMER_HZ: u64 = 1_000_000_000;

fn reg(offset: usize) -> *mut u32 {
    let base = phys_to_virt(LAPIC_BASE, 0x1000).expect("the direct map covers the LAPIC");
    base.wrapping_add(offset).cast()
}

fn write(offset: usize, value: u32) {
    // SAFETY: LAPIC registers are 32-bit MMIO in the uncached part of the direct map.
    unsafe { reg(offset).write_volatile(value) };
}

/// Enables the APIC and starts its timer at `hz` interrupts per second.
pub fn init(hz: u64) {
    write(REG_SVR, 0x100 | u32::from(SPURIOUS_VECTOR));
    write(REG_TIMER_DIV, 0xb); // divide by 1
    write(REG_LVT_TIMER, u32::from(TIMER_VECTOR) | 1 << 17); // periodic
    write(REG_TIMER_INIT, (APIC_TIMER_HZ / hz) as u32);
}

/// Signals the end of the interrupt being handled.
pub fn eoi() {
    write(REG_EOI, 0);
}

const REG_TIMER_CURRENT: usize = 0x390;

fn read(offset: usize) -> u32 {
    // SAFETY: as for `write`.
    unsafe { reg(offset).read_volatile() }
}

/// Measures the TSC frequency in kHz against the running APIC timer (1 GHz): counts TSC
/// cycles over 2 ms of APIC counts.
pub fn measure_tsc_khz() -> u64 {
    const SPAN: u64 = 2_000_000;
    let period = APIC_TIMER_HZ / crate::time::HZ;
    let start = u64::from(read(REG_TIMER_CURRENT));
    let tsc0 = crate::time::rdtsc();
    loop {
        let now = u64::from(read(REG_TIMER_CURRENT));
        // The counter runs down and reloads with `period` (at most one reload per read).
        let elapsed = if now <= start { start - now } else { start + period - now };
        if elapsed >= SPAN {
            return (crate::time::rdtsc() - tsc0) * 1_000_000 / elapsed;
        }
    }
}
