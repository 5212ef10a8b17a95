//! Built-in kernel tests, chosen with `test=NAME[,NAME...]` on the command line.
//! The host tests (`tests/`) boot the kernel with these and check the transcript.
//!
//! | name       | what it does                                                        |
//! |------------|---------------------------------------------------------------------|
//! | `exit:N`   | ends the VM with status N                                           |
//! | `panic`    | panics (the VM ends with `EXIT_PANIC`, message and location shown)  |
//! | `fault`    | touches an unmapped kernel address (exception report, then panic)   |
//! | `ud`       | executes `ud2` (invalid-opcode report, then panic)                  |
//! | `triple`   | triple-faults (the VMM reports a shutdown)                          |
//! | `spin`     | spins forever with interrupts on (for `vmm --timeout`)              |
//! | `timer`    | waits for 10 timer ticks and reports them                           |
//! | `virtio-bad` | sends the first disk a malformed request (after device probing)   |

use crate::cmdline::{parse_u64, Cmdline};
use crate::exit::exit_vm;
use crate::{arch, kprintln, time};

pub fn run(cmd: &Cmdline) {
    if cmd.test("timer").is_some() {
        let start = time::ticks();
        while time::ticks() < start + 10 {
            arch::cpu::wait_for_interrupt();
        }
        kprintln!("ktest timer: {} ticks, uptime {} ms", time::ticks() - start, time::uptime_ms());
    }
    if cmd.test("ud").is_some() {
        // SAFETY: deliberately raises #UD; the handler reports it and panics.
        unsafe { core::arch::asm!("ud2") };
    }
    if cmd.test("fault").is_some() {
        let bad = 0xffff_a000_dead_0000u64 as *const u64;
        // SAFETY: deliberately reads an unmapped address; the #PF handler panics.
        let value = unsafe { bad.read_volatile() };
        kprintln!("ktest fault: read {value:#x}, expected a page fault");
    }
    if cmd.test("triple").is_some() {
        kprintln!("ktest triple: triple-faulting");
        crate::console::flush();
        arch::interrupts::triple_fault();
    }
    if cmd.test("panic").is_some() {
        panic!("ktest panic: panic requested on the command line");
    }
    if cmd.test("spin").is_some() {
        kprintln!("ktest spin: spinning forever");
        loop {
            core::hint::spin_loop();
        }
    }
    if let Some(arg) = cmd.test("exit") {
        match parse_u64(arg).and_then(|n| u32::try_from(n).ok()) {
            Some(status) => {
                kprintln!("ktest exit: exiting with status {status}");
                exit_vm(status);
            }
            None => log::error!("test=exit:N needs a number, got {arg:?}"),
        }
    }
}

/// Tests that need the devices (run after driver probing).
pub fn run_with_devices(cmd: &Cmdline) {
    if cmd.test("virtio-bad").is_some() {
        match crate::drivers::virtio::blk::send_malformed_request() {
            Some(status) => kprintln!(
                "ktest virtio-bad: device status {status:#x}{}",
                if status & 0x40 != 0 { " (needs reset)" } else { "" }
            ),
            None => kprintln!("ktest virtio-bad: no disk"),
        }
    }
}
