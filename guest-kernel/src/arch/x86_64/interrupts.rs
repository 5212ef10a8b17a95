//! The IDT, one entry stub per vector, and the dispatcher every interrupt reaches.
//!
//! Each of the 256 stubs is 16-byte aligned at `isr_stubs + 16 * vector`. A stub pushes a
//! zero when the CPU pushes no error code, then the vector number, and jumps to
//! `isr_common`, which swaps in the kernel's GS base when it came from user mode (see
//! `percpu`), saves the general registers into a [`TrapFrame`] and calls
//! [`interrupt_dispatch`].

use core::arch::global_asm;
use core::mem::size_of;
use core::ptr::addr_of;

use super::{cpu, gdt, ioapic, lapic, syscall};

/// Registers saved on interrupt entry, in stack order (lowest address first).
#[repr(C)]
#[derive(Debug, Clone, Default)]
pub struct TrapFrame {
    pub rax: u64,
    pub rbx: u64,
    pub rcx: u64,
    pub rdx: u64,
    pub rsi: u64,
    pub rdi: u64,
    pub rbp: u64,
    pub r8: u64,
    pub r9: u64,
    pub r10: u64,
    pub r11: u64,
    pub r12: u64,
    pub r13: u64,
    pub r14: u64,
    pub r15: u64,
    pub vector: u64,
    pub error_code: u64,
    // Pushed by the CPU.
    pub rip: u64,
    pub cs: u64,
    pub rflags: u64,
    pub rsp: u64,
    pub ss: u64,
}
const _: () = assert!(size_of::<TrapFrame>() == 22 * 8);

global_asm!(
    r#"
    .text
    .balign 16
    .global isr_stubs
isr_stubs:
    .set vec, 0
    .rept 256
    .balign 16
    .if (vec == 8) || (vec == 10) || (vec == 11) || (vec == 12) || (vec == 13) || (vec == 14) || (vec == 17) || (vec == 21) || (vec == 29) || (vec == 30)
    .else
    pushq $0
    .endif
    pushq $vec
    jmp isr_common
    .set vec, vec + 1
    .endr

    .global isr_common
isr_common:
    testb $3, 24(%rsp)          /* the saved CS: from user mode? */
    jz isr_common_swapped
    swapgs
    .global isr_common_swapped
isr_common_swapped:
    pushq %r15
    pushq %r14
    pushq %r13
    pushq %r12
    pushq %r11
    pushq %r10
    pushq %r9
    pushq %r8
    pushq %rbp
    pushq %rdi
    pushq %rsi
    pushq %rdx
    pushq %rcx
    pushq %rbx
    pushq %rax
    cld
    movq %rsp, %rdi
    call {dispatch}
    .global isr_return
isr_return:
    popq %rax
    popq %rbx
    popq %rcx
    popq %rdx
    popq %rsi
    popq %rdi
    popq %rbp
    popq %r8
    popq %r9
    popq %r10
    popq %r11
    popq %r12
    popq %r13
    popq %r14
    popq %r15
    addq $16, %rsp
    testb $3, 8(%rsp)           /* back to user mode: its GS base again */
    jz 1f
    swapgs
1:
    iretq
    "#,
    dispatch = sym interrupt_dispatch,
    options(att_syntax)
);

unsafe extern "C" {
    static isr_stubs: u8;
}

#[repr(C)]
#[derive(Clone, Copy)]
struct IdtEntry {
    offset_low: u16,
    selector: u16,
    ist: u8,
    flags: u8,
    offset_mid: u16,
    offset_high: u32,
    reserved: u32,
}
const _: () = assert!(size_of::<IdtEntry>() == 16);

static mut IDT: [IdtEntry; 256] =
    [IdtEntry { offset_low: 0, selector: 0, ist: 0, flags: 0, offset_mid: 0, offset_high: 0, reserved: 0 }; 256];

#[repr(C, packed)]
struct DescriptorPointer {
    limit: u16,
    base: u64,
}

pub fn init() {
    let stubs = addr_of!(isr_stubs) as u64;
    #[allow(clippy::needless_range_loop)] // the vector number is also the stub's index
    for vector in 0..256 {
        let handler = stubs + 16 * vector as u64;
        let ist = if vector == 8 { gdt::IST_DOUBLE_FAULT } else { 0 };
        let entry = IdtEntry {
            offset_low: handler as u16,
            selector: gdt::KERNEL_CS,
            ist,
            flags: 0x8e, // present, DPL 0, 64-bit interrupt gate
            offset_mid: (handler >> 16) as u16,
            offset_high: (handler >> 32) as u32,
            reserved: 0,
        };
        // SAFETY: boot-time initialisation on the boot CPU, before interrupts are
        // enabled and before other CPUs start.
        unsafe { IDT[vector] = entry };
    }
    load();
}

/// Loads the IDT (every CPU shares the one `init` built).
pub fn load() {
    let ptr = DescriptorPointer { limit: (size_of::<[IdtEntry; 256]>() - 1) as u16, base: addr_of!(IDT) as u64 };
    // SAFETY: the IDT is static and every entry points at a stub above.
    unsafe { core::arch::asm!("lidt [{}]", in(reg) &ptr, options(readonly, nostack, preserves_flags)) };
}

const EXCEPTION_NAMES: [&str; 32] = [
    "#DE divide error",
    "#DB debug",
    "NMI",
    "#BP breakpoint",
    "#OF overflow",
    "#BR bound range",
    "#UD invalid opcode",
    "#NM device not available",
    "#DF double fault",
    "coprocessor segment overrun",
    "#TS invalid TSS",
    "#NP segment not present",
    "#SS stack fault",
    "#GP general protection",
    "#PF page fault",
    "reserved",
    "#MF x87 floating point",
    "#AC alignment check",
    "#MC machine check",
    "#XM SIMD floating point",
    "#VE virtualization",
    "#CP control protection",
    "reserved",
    "reserved",
    "reserved",
    "reserved",
    "reserved",
    "reserved",
    "#HV hypervisor injection",
    "#VC VMM communication",
    "#SX security",
    "reserved",
];

/// Device and timer interrupt handlers running now on each CPU (their callbacks must
/// not sleep: a user copy there never reads a page in, see `mm::uaccess::with_user`).
static IN_IRQ: [core::sync::atomic::AtomicU32; super::percpu::MAX_CPUS] =
    [const { core::sync::atomic::AtomicU32::new(0) }; super::percpu::MAX_CPUS];

/// Whether an interrupt handler is running on this CPU.
pub fn in_irq() -> bool {
    IN_IRQ[cpu::index()].load(core::sync::atomic::Ordering::Relaxed) > 0
}

/// Runs an interrupt handler, counted in `IN_IRQ`.
fn as_irq(handler: impl FnOnce()) {
    let me = cpu::index();
    IN_IRQ[me].fetch_add(1, core::sync::atomic::Ordering::Relaxed);
    handler();
    IN_IRQ[me].fetch_sub(1, core::sync::atomic::Ordering::Relaxed);
}

extern "C" fn interrupt_dispatch(frame: &mut TrapFrame) {
    let from_user = frame.cs & 3 == 3;
    if frame.vector == 14 && from_user && syscall::as_fault_syscall(frame, cpu::cr2()) {
        // The workaround path of `syscall` (see arch::x86_64::syscall).
        crate::syscall::dispatch(frame);
        crate::task::return_to_user(frame);
        return;
    }
    match frame.vector {
        syscall::SYSCALL_VECTOR => crate::syscall::dispatch(frame),
        0..32 if from_user => crate::task::user_exception(frame, EXCEPTION_NAMES[frame.vector as usize], cpu::cr2()),
        0..32 => exception(frame),
        v if v == u64::from(lapic::TIMER_VECTOR) => {
            lapic::eoi();
            as_irq(crate::time::interrupt);
        }
        v if v == u64::from(lapic::SPURIOUS_VECTOR) => {}
        v if v == u64::from(super::smp::KICK_VECTOR) => {
            lapic::eoi();
            super::smp::poll_requests();
        }
        v if (u64::from(ioapic::IRQ_VECTOR_BASE)..u64::from(ioapic::IRQ_VECTOR_BASE) + u64::from(ioapic::MAX_GSI)).contains(&v) => {
            as_irq(|| crate::drivers::irq((v - u64::from(ioapic::IRQ_VECTOR_BASE)) as u32));
            lapic::eoi();
        }
        v => {
            log::warn!("unexpected interrupt on vector {v}");
            lapic::eoi();
        }
    }
    if from_user {
        crate::task::return_to_user(frame);
    }
}

/// An exception in kernel mode is a kernel bug: report it and panic.
fn exception(frame: &TrapFrame) {
    let name = EXCEPTION_NAMES[frame.vector as usize];
    let cr2 = if frame.vector == 14 { cpu::cr2() } else { 0 };
    panic!(
        "exception {name} (vector {}) error={:#x} rip={:#x} cr2={:#x} rsp={:#x} cs={:#x} rflags={:#x}",
        frame.vector, frame.error_code, frame.rip, cr2, frame.rsp, frame.cs, frame.rflags
    );
}

/// Loads an empty IDT and faults: the CPU cannot deliver the exception, nor the double
/// fault that follows, and shuts down (a triple fault). Used by `test=triple`.
pub fn triple_fault() -> ! {
    let ptr = DescriptorPointer { limit: 0, base: 0 };
    // SAFETY: deliberately ends the VM; nothing runs after this.
    unsafe { core::arch::asm!("lidt [{}]", "ud2", in(reg) &ptr, options(noreturn)) }
}
