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
//! | `timer`    | chains 10 one-shot timers 10 ms apart and reports them              |
//! | `timers:N` | arms and cancels N one-hour timers 10 times (N=4096), checks that  |
//! |            | the timer count comes back, that timers fire in deadline order and |
//! |            | how late a 100 us timer fires; then prints the count before init   |
//! |            | runs and as each process exits (before its files close)            |
//! | `virtio-bad` | sends the first disk a malformed request (after device probing)   |
//! | `kthread`  | two kernel threads take turns through a wait queue, 5 times each     |
//! | `ext2-pages` | the page seam of ext2 files on `/dev/vda` (read_page, write_page, |
//! |            | block_map: holes, a short last page, past the end), then unmounts  |

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use crate::cmdline::{parse_u64, Cmdline};
use crate::exit::exit_vm;
use crate::{arch, kprintln, time};

static TICKS: AtomicU64 = AtomicU64::new(0);

/// One tick of `test=timer`: counts itself and arms the next, 10 ms later.
fn tick() {
    if TICKS.fetch_add(1, Ordering::Relaxed) + 1 < 10 {
        time::call_at(time::monotonic_ns() + 10_000_000, Box::new(tick));
    }
}

/// Whether `test=timers` asked for the timer count as processes exit.
static REPORT_TIMERS: AtomicBool = AtomicBool::new(false);

/// Deadline order seen by `test=timers` (each fired timer appends its tag).
static FIRED: AtomicU64 = AtomicU64::new(0);
static FIRED_COUNT: AtomicUsize = AtomicUsize::new(0);
static LATE_AT: AtomicU64 = AtomicU64::new(0);

fn timers_test(rounds_of: usize) {
    kprintln!("ktest timers: LAPIC timer in {} mode", if arch::lapic::tsc_deadline_mode() { "TSC-deadline" } else { "one-shot" });
    let start = time::pending();
    let hour = time::monotonic_ns() + 3_600_000_000_000;
    let mut ids = Vec::with_capacity(rounds_of);
    for round in 0..10 {
        for i in 0..rounds_of as u64 {
            // Some deadlines repeat: the structure must keep them apart.
            ids.push(time::call_at(hour + i % 7, Box::new(|| panic!("a cancelled timer ran"))));
        }
        let armed = time::pending();
        let cancelled = ids.drain(..).rev().filter(|&id| time::cancel(id)).count();
        if armed != start + rounds_of || cancelled != rounds_of || time::pending() != start {
            kprintln!("ktest timers: round {round}: {armed} armed, {cancelled} cancelled, {} left (FAILED)", time::pending());
            return;
        }
    }
    kprintln!("ktest timers: 10 rounds of {rounds_of} armed and cancelled, count back to {start}");

    // Five timers armed out of order, one cancelled: the other four fire in deadline order.
    let now = time::monotonic_ns();
    let mut cancel_me = None;
    for tag in [5u64, 1, 3, 2, 4] {
        let id = time::call_at(now + tag * 1_000_000, Box::new(move || {
            let n = FIRED_COUNT.fetch_add(1, Ordering::Relaxed);
            FIRED.fetch_or(tag << (8 * n), Ordering::Relaxed);
        }));
        if tag == 3 {
            cancel_me = Some(id);
        }
    }
    let cancelled = cancel_me.is_some_and(time::cancel);
    while FIRED_COUNT.load(Ordering::Relaxed) < 4 {
        arch::cpu::wait_for_interrupt();
    }
    let order = FIRED.load(Ordering::Relaxed).to_le_bytes();
    kprintln!("ktest timers: fired in order {:?}, cancelled one {}", &order[..4], if cancelled { "removed" } else { "NOT removed" });

    // Resolution: how late does a timer 100 us away fire?
    let armed_at = time::monotonic_ns();
    time::call_at(armed_at + 100_000, Box::new(|| LATE_AT.store(time::monotonic_ns(), Ordering::Relaxed)));
    while LATE_AT.load(Ordering::Relaxed) == 0 {
        arch::cpu::wait_for_interrupt();
    }
    kprintln!("ktest timers: a 100 us timer fired after {} us", (LATE_AT.load(Ordering::Relaxed) - armed_at) / 1000);
    kprintln!("ktest timers: {} pending before init", time::pending());
    REPORT_TIMERS.store(true, Ordering::Relaxed);
}

/// A process is exiting, its files still open: reports the timer count for `test=timers`.
pub fn process_exiting(pid: u32) {
    if REPORT_TIMERS.load(Ordering::Relaxed) {
        kprintln!("ktest timers: pid {pid} exits with {} timers pending", time::pending());
    }
}

pub fn run(cmd: &Cmdline) {
    if cmd.test("timer").is_some() {
        let start = time::monotonic_ns();
        time::call_at(start + 10_000_000, Box::new(tick));
        while TICKS.load(Ordering::Relaxed) < 10 {
            arch::cpu::wait_for_interrupt();
        }
        let ms = (time::monotonic_ns() - start) / 1_000_000;
        kprintln!("ktest timer: {} ticks in {ms} ms, uptime {} ms", TICKS.load(Ordering::Relaxed), time::uptime_ms());
    }
    if let Some(arg) = cmd.test("timers") {
        timers_test(parse_u64(arg).map_or(4096, |n| n as usize));
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
/// `test=ext2-pages`: what a page cache will call on an ext2 file, on the ext2 of
/// `/dev/vda`; the file is removed again and the file system unmounted (clean).
fn ext2_pages() -> crate::errno::KResult<()> {
    use crate::errno::{EINVAL, EIO};
    use crate::fs::ext2::{mount_device, Ext2Node};
    use crate::fs::{FileType, Node};
    let check = |ok: bool, what: &str| if ok { Ok(()) } else { kprintln!("ktest ext2-pages: {what} is wrong"); Err(EIO) };
    let dev = crate::fs::lookup("/", "/dev/vda", true)?;
    let (fs, root) = mount_device(&dev, false, false)?;
    let node = root.create("pages", FileType::Regular, 0o644)?;
    let file = node.as_any().downcast_ref::<Ext2Node>().ok_or(EINVAL)?;
    let page: Vec<u8> = (0..4096).map(|i| (i % 251) as u8).collect();
    file.write_page(2, &page, 4096)?;
    file.write_page(3, &page, 100)?;
    check(node.stat().size == 3 * 4096 + 100, "the size")?;
    let mut buf = alloc::vec![0xffu8; 4096];
    let buf: &mut [u8; 4096] = buf.as_mut_slice().try_into().map_err(|_| EINVAL)?;
    file.read_page(0, buf)?;
    check(buf.iter().all(|&b| b == 0), "a hole")?;
    file.read_page(2, buf)?;
    check(buf[..] == page[..], "page 2")?;
    file.read_page(3, buf)?;
    check(buf[..100] == page[..100] && buf[100..].iter().all(|&b| b == 0), "the short last page")?;
    file.read_page(9, buf)?;
    check(buf.iter().all(|&b| b == 0), "a page past the end")?;
    let per_page = 4096 / file.block_size() as u64;
    check(file.block_map(0)?.is_none() && file.block_map(2 * per_page)?.is_some(), "block_map")?;
    drop(node);
    root.unlink("pages", false)?;
    fs.unmount()
}

pub fn run_with_devices(cmd: &Cmdline) {
    if cmd.test("ext2-pages").is_some() {
        match ext2_pages() {
            Ok(()) => kprintln!("ktest ext2-pages: ok"),
            Err(e) => kprintln!("ktest ext2-pages: error {}", e.0),
        }
    }
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
