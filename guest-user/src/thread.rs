//! Threads as Linux makes them: `clone` with the flags `pthread_create` uses.
//!
//! Each thread gets one anonymous mapping, laid out top-down as
//!
//! ```text
//! +-------------------+  top of the mapping
//! | Control           |  tid word (PARENT_SETTID / CHILD_CLEARTID), closure, result, TLS
//! | the closure       |  moved here before clone, taken once by the thread
//! | stack ...         |  grows down; starts with (entry, arg) for the asm below
//! +-------------------+  base
//! ```
//!
//! The kernel writes the new tid into `Control::tid` before `clone` returns
//! (`CLONE_PARENT_SETTID`) and writes 0 there, then futex-wakes it, when the thread exits
//! (`CLONE_CHILD_CLEARTID`): [`JoinHandle::join`] waits for that 0. `CLONE_SETTLS` points
//! FS at `Control::tls_self`, which holds its own address, as the x86-64 TLS ABI wants.

use core::arch::asm;
use core::mem::{align_of, offset_of, size_of};
use core::ptr;
use core::sync::atomic::{AtomicU32, Ordering};

use crate::errno::{Errno, Result};
use crate::nr;
use crate::syscall::{futex_wait, mmap, munmap};
use crate::uapi::*;

/// The flags of a thread (what glibc's and musl's `pthread_create` pass).
pub const THREAD_FLAGS: u64 = CLONE_VM
    | CLONE_FS
    | CLONE_FILES
    | CLONE_SIGHAND
    | CLONE_THREAD
    | CLONE_SYSVSEM
    | CLONE_SETTLS
    | CLONE_PARENT_SETTID
    | CLONE_CHILD_CLEARTID;

/// Size of each thread's mapping (stack, closure and control block).
pub const THREAD_MAPPING: usize = 64 * 1024;

#[repr(C, align(64))]
struct Control {
    /// The thread's tid while it runs, 0 once it has exited.
    tid: AtomicU32,
    /// What the closure returned.
    result: i32,
    /// Where the closure is.
    closure: usize,
    /// FS points here; it holds its own address.
    tls_self: usize,
}

/// A running thread; [`join`](Self::join) it to free its stack.
#[must_use = "a thread that is not joined keeps its stack forever"]
pub struct JoinHandle {
    base: usize,
    control: *mut Control,
    tid: u32,
}

/// Starts a thread running `f`; its result is what [`JoinHandle::join`] returns.
pub fn spawn<F: FnOnce() -> i32 + Send + 'static>(f: F) -> Result<JoinHandle> {
    const { assert!(size_of::<F>() <= 1024 && align_of::<F>() <= 64) };
    // SAFETY: a fresh private mapping, not MAP_FIXED: no existing memory is affected.
    let base = unsafe {
        mmap(
            0,
            THREAD_MAPPING,
            PROT_READ | PROT_WRITE,
            MAP_PRIVATE | MAP_ANONYMOUS,
            -1,
            0,
        )?
    };
    let top = base + THREAD_MAPPING;
    let control = (top - size_of::<Control>()) as *mut Control;
    let closure = ((control as usize - size_of::<F>()) & !63) as *mut F;
    // The first 16 bytes of the stack: the entry function and its argument, popped by
    // the child in the asm below, which leaves rsp 16-byte aligned for the call.
    let stack = ((closure as usize - 16) & !15) as *mut usize;
    let tid_word = control as usize + offset_of!(Control, tid);
    let tls = control as usize + offset_of!(Control, tls_self);
    // SAFETY: all four locations lie inside our new mapping and are suitably aligned.
    unsafe {
        control.write(Control {
            tid: AtomicU32::new(0),
            result: 0,
            closure: closure as usize,
            tls_self: tls,
        });
        closure.write(f);
        stack.write(trampoline::<F> as *const () as usize);
        stack.add(1).write(control as usize);
    }
    let ret: isize;
    // SAFETY: the child starts on its own stack and never returns into this function: it
    // pops (entry, arg), calls entry(arg) and exits. The parent only sees rax, rcx, r11
    // change, as for any syscall. The tid word outlives the thread: join frees the
    // mapping only after the kernel has cleared it.
    unsafe {
        asm!(
            "syscall",
            "test rax, rax",
            "jnz 2f",
            // child: rsp = stack
            "pop rax",
            "pop rdi",
            "xor ebp, ebp",
            "call rax",
            "xor edi, edi",
            "mov eax, {exit}",
            "syscall",
            "ud2",
            "2:",
            exit = const nr::EXIT,
            inlateout("rax") nr::CLONE => ret,
            in("rdi") THREAD_FLAGS,
            in("rsi") stack,
            in("rdx") tid_word, // parent_tid
            in("r10") tid_word, // child_tid
            in("r8") tls,
            lateout("rcx") _,
            lateout("r11") _,
        );
    }
    match Errno::from_ret(ret) {
        Ok(tid) => Ok(JoinHandle {
            base,
            control,
            tid: tid as u32,
        }),
        Err(e) => {
            // SAFETY: no thread was created, so nothing uses the mapping.
            let _ = unsafe { munmap(base, THREAD_MAPPING) };
            Err(e)
        }
    }
}

/// The thread's first Rust code: runs the closure, stores its result.
extern "C" fn trampoline<F: FnOnce() -> i32>(control: *mut Control) {
    // SAFETY: spawn put the control block and an F in our mapping; we take the F once.
    unsafe {
        let f = ((*control).closure as *mut F).read();
        ptr::write_volatile(&raw mut (*control).result, f());
    }
}

impl JoinHandle {
    /// The thread's id, as `clone` returned it (and `gettid` returns it in the thread).
    pub fn tid(&self) -> u32 {
        self.tid
    }

    /// The tid word now: the tid while the thread runs (`CLONE_PARENT_SETTID` wrote it
    /// before `clone` returned), 0 once it has exited (`CLONE_CHILD_CLEARTID`).
    pub fn tid_word(&self) -> u32 {
        // SAFETY: the control block lives until join.
        unsafe { (*self.control).tid.load(Ordering::Acquire) }
    }

    /// The value of the thread's FS base (`CLONE_SETTLS`).
    pub fn tls(&self) -> usize {
        self.control as usize + offset_of!(Control, tls_self)
    }

    /// Waits until the kernel clears the tid word (the thread has exited), then frees
    /// the stack and returns the closure's result.
    pub fn join(self) -> i32 {
        // SAFETY: the control block lives until the munmap below.
        let tid = unsafe { &(*self.control).tid };
        loop {
            let t = tid.load(Ordering::Acquire);
            if t == 0 {
                break;
            }
            // EAGAIN (the word changed) and EINTR just mean: look again.
            let _ = futex_wait(tid, t, None);
        }
        // SAFETY: the thread has exited, so it wrote its result and no longer uses the
        // mapping.
        unsafe {
            let result = ptr::read_volatile(&raw const (*self.control).result);
            let _ = munmap(self.base, THREAD_MAPPING);
            result
        }
    }
}
