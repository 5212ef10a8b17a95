//! Global descriptor table and task state segment.
//!
//! Selector order follows what `syscall`/`sysret` need: kernel code, kernel data, then
//! user data and user code (STAR's sysret base + 8 = SS, + 16 = CS).

use core::arch::asm;
use core::mem::size_of;
use core::ptr::{addr_of, addr_of_mut};

use super::percpu::{self, MAX_CPUS};

pub const KERNEL_CS: u16 = 0x08;
pub const KERNEL_DS: u16 = 0x10;
pub const USER_DS: u16 = 0x18 | 3;
pub const USER_CS: u16 = 0x20 | 3;
const TSS_SEL: u16 = 0x28;

/// Interrupt stack table slot used for double faults (a known-good stack).
pub const IST_DOUBLE_FAULT: u8 = 1;
const IST_STACK_SIZE: usize = 16 * 1024;

#[repr(C, packed(4))]
struct Tss {
    reserved0: u32,
    rsp: [u64; 3],
    reserved1: u64,
    ist: [u64; 7],
    reserved2: u64,
    reserved3: u16,
    iomap_base: u16,
}
const _: () = assert!(size_of::<Tss>() == 104);

/// The boot CPU's double-fault stack (the other CPUs' come from the heap).
#[unsafe(link_section = ".stack")]
static mut DOUBLE_FAULT_STACK: [u8; IST_STACK_SIZE] = [0; IST_STACK_SIZE];

const TSS_INIT: Tss =
    Tss { reserved0: 0, rsp: [0; 3], reserved1: 0, ist: [0; 7], reserved2: 0, reserved3: 0, iomap_base: size_of::<Tss>() as u16 };

/// One TSS per CPU: each holds its CPU's ring-0 stack (the running task's kernel stack).
static mut TSS: [Tss; MAX_CPUS] = [TSS_INIT; MAX_CPUS];

const GDT_INIT: [u64; 7] = [
    0,
    0x00af_9a00_0000_ffff, // kernel code: 64-bit, DPL 0
    0x00cf_9200_0000_ffff, // kernel data
    0x00cf_f200_0000_ffff, // user data: DPL 3
    0x00af_fa00_0000_ffff, // user code: 64-bit, DPL 3
    0,                     // TSS, low half (filled in `init`)
    0,                     // TSS, high half
];

/// One GDT per CPU, differing only in their TSS descriptor (`ltr` marks it busy).
static mut GDT: [[u64; 7]; MAX_CPUS] = [GDT_INIT; MAX_CPUS];

#[repr(C, packed)]
struct DescriptorPointer {
    limit: u16,
    base: u64,
}

/// Loads this CPU's GDT and TSS (after `percpu::init`). The boot CPU's double-fault stack
/// is static; another CPU passes one it allocated.
pub fn init(double_fault_stack_top: Option<u64>) {
    let cpu = percpu::index();
    let ist = double_fault_stack_top.unwrap_or(addr_of!(DOUBLE_FAULT_STACK) as u64 + IST_STACK_SIZE as u64);
    // SAFETY: each CPU touches only its own entries, once, before it uses them.
    let (tss, gdt) = unsafe { (addr_of_mut!(TSS[cpu]), addr_of_mut!(GDT[cpu])) };
    let base = tss as u64;
    let limit = size_of::<Tss>() as u64 - 1;
    // Available 64-bit TSS (type 9), present.
    let low = (limit & 0xffff) | ((base & 0xff_ffff) << 16) | (0x89 << 40) | ((base >> 24 & 0xff) << 56);
    // SAFETY: as above.
    unsafe {
        (*tss).ist[usize::from(IST_DOUBLE_FAULT) - 1] = ist;
        (*gdt)[5] = low;
        (*gdt)[6] = base >> 32;
    }
    let ptr = DescriptorPointer { limit: (size_of::<[u64; 7]>() - 1) as u16, base: gdt as u64 };
    // SAFETY: the GDT is static and its code/data descriptors match the boot GDT's, so
    // reloading CS (by far return) and the data segments keeps the kernel running.
    unsafe {
        asm!(
            "lgdt [{ptr}]",
            "push {cs}",
            "lea {tmp}, [rip + 2f]",
            "push {tmp}",
            "retfq",
            "2:",
            "mov ds, {ds:x}",
            "mov es, {ds:x}",
            "mov ss, {ds:x}",
            "ltr {tss:x}",
            ptr = in(reg) &ptr,
            cs = const KERNEL_CS as u64,
            ds = in(reg) u64::from(KERNEL_DS),
            tss = in(reg) u64::from(TSS_SEL),
            tmp = out(reg) _,
        );
    }
}

/// Sets the stack CPU `cpu` (this one) switches to on an interrupt from user mode.
pub fn set_kernel_stack(cpu: usize, top: u64) {
    // SAFETY: only this CPU writes its TSS, and the CPU reads rsp0 only when entering
    // ring 0 from ring 3, which cannot happen while the kernel runs here.
    unsafe { (*addr_of_mut!(TSS[cpu])).rsp[0] = top };
}

/// Size of a double-fault stack (for the CPUs that allocate theirs).
pub const DOUBLE_FAULT_STACK_SIZE: usize = IST_STACK_SIZE;
