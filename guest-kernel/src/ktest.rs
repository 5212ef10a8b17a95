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
//! | `kthread`  | two kernel threads take turns through a wait queue, 5 times each     |

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

static TURN: core::sync::atomic::AtomicUsize = core::sync::atomic::AtomicUsize::new(0);
static TURNS: crate::task::wait::WaitQueue = crate::task::wait::WaitQueue::new();

/// Kernel thread `me` (0 or 1): waits for its turn, takes it, passes it on; 5 times.
extern "C" fn ping_pong(me: usize) {
    use core::sync::atomic::Ordering;
    for round in 0..5 {
        let _ = TURNS.wait_until(None, || TURN.load(Ordering::Relaxed) % 2 == me);
        kprintln!("ktest kthread: thread {me} round {round}");
        TURN.fetch_add(1, Ordering::Relaxed);
        TURNS.wake_all();
    }
}

/// Tests that run kernel threads (needs the scheduler: runs the idle loop until done).
pub fn run_threads(cmd: &Cmdline) {
    if cmd.test("kthread").is_some() {
        for me in 0..2 {
            if let Err(e) = crate::task::spawn_kernel_thread(ping_pong, me) {
                kprintln!("ktest kthread: spawn failed: {e:?}");
                return;
            }
        }
        crate::task::sched::idle_loop(|| TURN.load(core::sync::atomic::Ordering::Relaxed) >= 10 && !crate::task::sched::others_runnable());
        kprintln!("ktest kthread: {} turns", TURN.load(core::sync::atomic::Ordering::Relaxed));
    }
}
