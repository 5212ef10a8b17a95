//! Process entry and exit: `_start`, the initial stack, `main`, the panic handler.
//!
//! At `_start` the kernel leaves `rsp` 16-byte aligned and pointing at the initial stack:
//!
//! ```text
//! rsp -> argc
//!        argv[0] .. argv[argc-1], NULL
//!        envp[0] .. envp[n-1], NULL
//!        auxv: (key, value) pairs .. (AT_NULL, 0)
//! ```
//!
//! `_start` hands `rsp` to `start`, which calls the program's `main` (named by
//! [`crate::entry!`]) and exits the process with its result.

use core::arch::naked_asm;
use core::ffi::{CStr, c_char};
use core::panic::PanicInfo;

use crate::syscall::exit_group;

/// Declares the program's `fn main(args: &ulib::Args) -> i32`; its result is the exit
/// status. Use once per binary: `ulib::entry!(main);`.
#[macro_export]
macro_rules! entry {
    ($main:path) => {
        /// Called by `ulib::rt::start`.
        #[unsafe(no_mangle)]
        fn __ulib_main(args: &$crate::Args) -> i32 {
            $main(args)
        }
        // Makes the linker pull `_start` out of ulib.
        #[used]
        static __ULIB_START: unsafe extern "C" fn() -> ! = $crate::rt::_start;
    };
}

/// The ELF entry point.
///
/// # Safety
/// Only the kernel may jump here, with the initial stack described above.
#[unsafe(naked)]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn _start() -> ! {
    naked_asm!(
        "xor ebp, ebp",  // the outermost frame, for debuggers
        "mov rdi, rsp",  // start(sp)
        "and rsp, -16",
        "call {start}",
        "ud2",
        start = sym start,
    )
}

/// Reads the initial stack, runs `main`, exits with its status.
///
/// # Safety
/// `sp` must be the initial stack pointer the kernel gave `_start`.
unsafe extern "C" fn start(sp: *const usize) -> ! {
    unsafe extern "Rust" {
        safe fn __ulib_main(args: &Args) -> i32;
    }
    // SAFETY: sp is the initial stack (the caller's obligation).
    let args = unsafe { Args::from_initial_stack(sp) };
    exit_group(__ulib_main(&args))
}

/// The command line, environment and auxiliary vector from the initial stack.
pub struct Args {
    argc: usize,
    argv: *const *const c_char,
    envp: *const *const c_char,
    auxv: *const [usize; 2],
}

impl Args {
    /// # Safety
    /// `sp` must point at an initial process stack laid out as the module docs describe;
    /// it stays valid (and unchanged) for the life of the process.
    unsafe fn from_initial_stack(sp: *const usize) -> Self {
        // SAFETY: argc, then argc+1 argv slots, then envp up to its NULL, then auxv.
        unsafe {
            let argc = *sp;
            let argv = sp.add(1) as *const *const c_char;
            let envp = argv.add(argc + 1);
            let mut end = envp;
            while !(*end).is_null() {
                end = end.add(1);
            }
            Args {
                argc,
                argv,
                envp,
                auxv: end.add(1) as *const [usize; 2],
            }
        }
    }

    /// `argc`.
    pub fn len(&self) -> usize {
        self.argc
    }

    /// True if `argc` is 0 (possible: `execve(path, {NULL}, ...)`).
    pub fn is_empty(&self) -> bool {
        self.argc == 0
    }

    /// `argv[i]`.
    pub fn get(&self, i: usize) -> Option<&'static CStr> {
        // SAFETY: argv[..argc] are NUL-terminated strings on the initial stack.
        (i < self.argc).then(|| unsafe { CStr::from_ptr(*self.argv.add(i)) })
    }

    /// `argv[i]` as text (`"<not UTF-8>"` if it is not).
    pub fn str(&self, i: usize) -> Option<&'static str> {
        self.get(i).map(|s| s.to_str().unwrap_or("<not UTF-8>"))
    }

    /// All of `argv`, as text.
    pub fn iter(&self) -> impl Iterator<Item = &'static str> + '_ {
        (0..self.argc).filter_map(|i| self.str(i))
    }

    /// The environment strings (`NAME=value`).
    pub fn env(&self) -> impl Iterator<Item = &'static CStr> + '_ {
        let mut p = self.envp;
        core::iter::from_fn(move || {
            // SAFETY: envp is a NULL-terminated array of NUL-terminated strings; we stop
            // at the NULL.
            unsafe {
                let s = *p;
                (!s.is_null()).then(|| {
                    p = p.add(1);
                    CStr::from_ptr(s)
                })
            }
        })
    }

    /// The value of auxiliary vector entry `key` (`AT_PAGESZ`, `AT_RANDOM`, ...).
    pub fn aux(&self, key: usize) -> Option<usize> {
        let mut p = self.auxv;
        loop {
            // SAFETY: auxv is a list of pairs ending with AT_NULL (key 0).
            let [k, v] = unsafe { *p };
            match k {
                0 => return None,
                k if k == key => return Some(v),
                // SAFETY: not the terminator, so another pair follows.
                _ => p = unsafe { p.add(1) },
            }
        }
    }
}

/// Prints `panic: MESSAGE at FILE:LINE` to stderr and exits the process with 101.
#[panic_handler]
fn panic(info: &PanicInfo<'_>) -> ! {
    match info.location() {
        Some(loc) => crate::eprintln!("panic: {} at {}:{}", info.message(), loc.file(), loc.line()),
        None => crate::eprintln!("panic: {}", info.message()),
    }
    exit_group(101)
}

/// The unwinder's personality routine. The precompiled `core` refers to it from its
/// unwind tables, but with `panic = "abort"` nothing ever unwinds, so it is never called.
#[unsafe(no_mangle)]
extern "C" fn rust_eh_personality() {}
