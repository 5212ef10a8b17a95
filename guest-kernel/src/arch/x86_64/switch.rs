//! Switching between tasks: kernel stacks, FPU/SSE state and the user TLS base.
//!
//! A task's kernel context is its saved stack pointer; `context_switch` pushes the
//! callee-saved registers, swaps stacks and pops them. A new task's stack is prepared so
//! the first switch "returns" into `new_task_entry`, which leaves through the interrupt
//! return path with the task's initial user registers.

use core::arch::global_asm;

use super::cpu::wrmsr;
use super::interrupts::TrapFrame;

global_asm!(
    r#"
    .text
    .global context_switch
context_switch:
    push rbp
    push rbx
    push r12
    push r13
    push r14
    push r15
    mov [rdi], rsp
    mov rsp, rsi
    pop r15
    pop r14
    pop r13
    pop r12
    pop rbx
    pop rbp
    ret

    .global new_task_entry
new_task_entry:
    call {finish}
    jmp isr_return

    /* A kernel thread's first switch lands here with its function and argument in
       r12 and r13 (restored by context_switch from the prepared stack). */
    .global kthread_entry
kthread_entry:
    call {finish}
    mov rdi, r13
    call r12
    call {exit}
    ud2
    "#,
    finish = sym crate::task::sched::finish_switch,
    exit = sym crate::task::kthread_exit,
);

unsafe extern "C" {
    fn context_switch(save_rsp: *mut u64, new_rsp: u64);
    static new_task_entry: u8;
    static kthread_entry: u8;
}

/// Saves the current kernel context into `*save_rsp` and resumes the one at `new_rsp`.
///
/// # Safety
/// `new_rsp` must be a stack saved by `context_switch` or made by [`prepare_stack`], whose
/// memory stays alive while the task can run; `save_rsp` must stay valid until resumed.
pub unsafe fn switch(save_rsp: *mut u64, new_rsp: u64) {
    // SAFETY: upheld by the caller.
    unsafe { context_switch(save_rsp, new_rsp) };
}

/// Lays out a new kernel stack ending at `top` so that switching to it enters user mode
/// with `frame`. Returns the stack pointer to switch to.
///
/// # Safety
/// `top` must be the 16-byte-aligned end of a writable kernel stack of at least 4 KiB.
pub unsafe fn prepare_stack(top: u64, frame: &TrapFrame) -> u64 {
    let frame_at = top - size_of::<TrapFrame>() as u64;
    // SAFETY: within the caller's stack.
    unsafe { (frame_at as *mut TrapFrame).write(core::ptr::read(frame)) };
    let sp = frame_at - 7 * 8;
    let words = sp as *mut u64;
    for i in 0..6 {
        // SAFETY: within the caller's stack: six zeroed callee-saved registers...
        unsafe { words.add(i).write(0) };
    }
    // SAFETY: ...and the return address of `context_switch`.
    unsafe { words.add(6).write(core::ptr::addr_of!(new_task_entry) as u64) };
    sp
}

/// Lays out a new kernel stack ending at `top` so that switching to it calls
/// `entry(arg)` in kernel mode (then `task::kthread_exit`). Returns the stack pointer.
///
/// # Safety
/// As for [`prepare_stack`].
pub unsafe fn prepare_kernel_stack(top: u64, entry: extern "C" fn(usize), arg: usize) -> u64 {
    // Popped by context_switch in this order: r15, r14, r13, r12, rbx, rbp, then `ret`;
    // two words of padding leave rsp 16-byte aligned at `kthread_entry`'s calls.
    let sp = top - 9 * 8;
    let words = sp as *mut u64;
    let values = [0, 0, arg as u64, entry as usize as u64, 0, 0, core::ptr::addr_of!(kthread_entry) as u64, 0, 0];
    for (i, v) in values.iter().enumerate() {
        // SAFETY: within the caller's stack.
        unsafe { words.add(i).write(*v) };
    }
    sp
}

/// Saved FPU/SSE state (`fxsave64` image).
#[repr(C, align(16))]
#[derive(Clone)]
pub struct FpuState([u8; 512]);

impl FpuState {
    /// The state a new program starts with: x87 control word 0x37f, MXCSR 0x1f80.
    pub const fn initial() -> Self {
        let mut bytes = [0u8; 512];
        bytes[0] = 0x7f;
        bytes[1] = 0x03;
        bytes[24] = 0x80;
        bytes[25] = 0x1f;
        Self(bytes)
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    pub fn as_bytes_mut(&mut self) -> &mut [u8] {
        &mut self.0
    }

    /// Clears what user space must not set (reserved MXCSR bits would make `fxrstor`
    /// fault in the kernel).
    pub fn sanitize(&mut self) {
        let mxcsr = u32::from_le_bytes(self.0[24..28].try_into().expect("4 bytes")) & 0xffff;
        self.0[24..28].copy_from_slice(&mxcsr.to_le_bytes());
    }

    pub fn save(&mut self) {
        // SAFETY: 512 writable bytes, 16-byte aligned.
        unsafe { core::arch::asm!("fxsave64 [{}]", in(reg) self.0.as_mut_ptr(), options(nostack, preserves_flags)) };
    }

    pub fn restore(&self) {
        // SAFETY: a valid fxsave image (made by `initial` or `save`).
        unsafe { core::arch::asm!("fxrstor64 [{}]", in(reg) self.0.as_ptr(), options(nostack, preserves_flags, readonly)) };
    }
}

/// Sets the user FS base (thread pointer).
pub fn set_fs_base(base: u64) {
    // SAFETY: FS is not used by the kernel; any canonical value is safe (checked by callers).
    unsafe { wrmsr(0xc000_0100, base) };
}

/// Enables SSE for user space (CR4.OSFXSR, OSXMMEXCPT; CR0.MP on, EM off).
pub fn init_fpu() {
    // SAFETY: standard control-register setup for SSE; the kernel itself uses no SSE.
    unsafe {
        core::arch::asm!(
            "mov {t}, cr0", "and {t}, ~4", "or {t}, 2", "mov cr0, {t}",
            "mov {t}, cr4", "or {t}, 0x600", "mov cr4, {t}",
            "fninit",
            t = out(reg) _, options(nostack)
        );
    }
}
