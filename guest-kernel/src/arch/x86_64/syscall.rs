//! Entering the kernel from user space.
//!
//! Normal path: `syscall` jumps to [`syscall_entry`] at CPL0 with the user's RSP still
//! loaded. The entry switches to the current task's kernel stack and builds the same
//! [`TrapFrame`] an interrupt would (vector [`SYSCALL_VECTOR`]), so syscalls, interrupts and
//! exceptions share one save/restore path (`isr_common`) and one way back (`iretq`).
//!
//! Workaround path: on hosts whose `syscall` leaves the CPU at CPL3 (our PVM-based KVM),
//! the fetch at LSTAR faults, because the entry page, like all kernel pages, is
//! supervisor-only. The #PF arrives through the IDT on the kernel stack (TSS.RSP0) with
//! RIP == CR2 == `syscall_entry`, RCX = the user's return RIP and R11 its RFLAGS, exactly as
//! `syscall` left them. [`as_fault_syscall`] recognises that fault and turns the frame
//! into a syscall frame. User code can also jump to LSTAR on purpose and get the same
//! result, which is harmless: it is a syscall with RIP taken from RCX and RFLAGS from R11,
//! both sanitised before `iretq`.
//!
//! [`TrapFrame`]: super::interrupts::TrapFrame

use core::arch::global_asm;

use super::cpu::wrmsr;
use super::gdt::{KERNEL_CS, USER_CS, USER_DS};
use super::interrupts::TrapFrame;

/// Pseudo vector number that marks a frame as a syscall.
pub const SYSCALL_VECTOR: u64 = 0x100;

const MSR_EFER: u32 = 0xc000_0080;
const MSR_STAR: u32 = 0xc000_0081;
const MSR_LSTAR: u32 = 0xc000_0082;
const MSR_SFMASK: u32 = 0xc000_0084;
/// Flags cleared on `syscall`: TF, DF, IF, IOPL, AC, NT (as Linux).
const SFMASK: u64 = 0x47700;

global_asm!(
    r#"
    .section .syscall_entry, "ax"
    .global syscall_entry
syscall_entry:
    swapgs
    mov gs:[{user_rsp}], rsp
    mov rsp, gs:[{kernel_rsp}]
    push {user_ds}
    push qword ptr gs:[{user_rsp}]
    push r11
    push {user_cs}
    push rcx
    push 0
    push {vector}
    jmp isr_common_swapped
    "#,
    user_rsp = const super::percpu::OFFSET_USER_RSP,
    kernel_rsp = const super::percpu::OFFSET_KERNEL_RSP,
    user_ds = const USER_DS as u64,
    user_cs = const USER_CS as u64,
    vector = const SYSCALL_VECTOR,
);

unsafe extern "C" {
    static syscall_entry: u8;
}

fn entry_address() -> u64 {
    core::ptr::addr_of!(syscall_entry) as u64
}

/// Programs the syscall MSRs.
pub fn init() {
    let star = (u64::from(USER_DS - 8 - 3) << 48) | (u64::from(KERNEL_CS) << 32);
    // SAFETY: standard syscall setup; the entry point and selectors are the kernel's own.
    unsafe {
        wrmsr(MSR_STAR, star);
        wrmsr(MSR_LSTAR, entry_address());
        wrmsr(MSR_SFMASK, SFMASK);
        wrmsr(MSR_EFER, super::cpu::rdmsr(MSR_EFER) | 1); // SCE
    }
}

/// Sets this CPU's kernel stack for the next entry from user mode (called on every task
/// switch).
pub fn set_kernel_stack(top: u64) {
    let cpu = super::percpu::index();
    super::percpu::set_kernel_rsp(cpu, top);
    super::gdt::set_kernel_stack(cpu, top);
}

/// If this user #PF is a `syscall` that stayed at CPL3 (see the module docs), rewrites
/// the frame into a syscall frame and returns true.
pub fn as_fault_syscall(frame: &mut TrapFrame, cr2: u64) -> bool {
    let entry = entry_address();
    if frame.rip != entry || cr2 != entry || frame.cs & 3 != 3 {
        return false;
    }
    frame.rip = frame.rcx;
    frame.rflags = frame.r11;
    frame.vector = SYSCALL_VECTOR;
    true
}
