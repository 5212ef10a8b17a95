//! The guest kernel: booted by PVH, runs Linux x86-64 programs, implements io_uring.
//!
//! Init order lives here; each step is a module of its own (see docs/DESIGN.md).

#![no_std]
#![no_main]

extern crate alloc;

mod arch;
mod boot_info;
mod cmdline;
mod console;
mod drivers;
mod errno;
mod exit;
mod fs;
mod io_uring;
mod ktest;
mod mm;
mod net;
mod random;
mod sync;
mod syscall;
mod task;
mod time;
mod trace;
mod tty;

use boot_info::BootInfo;
use cmdline::Cmdline;
use exit::{exit_vm, EXIT_PANIC};

/// Called from `arch::x86_64::boot` on the boot stack, in long mode, `.bss` zeroed.
extern "C" fn kernel_main(start_info_paddr: u32) -> ! {
    // First: spin locks (the console's too) find this CPU through its per-CPU data.
    arch::percpu::init(0, 0);
    console::init();
    kprintln!("guest-kernel {}: booted by PVH", env!("CARGO_PKG_VERSION"));

    let info = match BootInfo::parse(u64::from(start_info_paddr)) {
        Ok(info) => info,
        Err(e) => panic!("bad hvm_start_info at {start_info_paddr:#x}: {e:?}"),
    };
    let cmd = Cmdline::parse(info.cmdline());
    console::init_log(cmd.loglevel);
    mm::paging::init();
    mm::init(&info);
    arch::init();
    time::init(cmd.tsc_khz, cmd.epoch, cmd.tsc_deadline);
    arch::smp::start_aps();

    kprintln!("memory map ({} MiB usable):", info.ram_bytes() >> 20);
    for r in info.memory_map() {
        kprintln!("  {:#012x}-{:#012x} {}", r.addr, r.addr + r.size, r.kind_name());
    }
    kprintln!("command line: {}", cmd.raw);
    for m in info.modules() {
        kprintln!("initrd: {} bytes at {:#x}", m.size, m.paddr);
    }
    for d in cmd.virtio_devices() {
        kprintln!("virtio-mmio: {:#x} bytes at {:#x}, irq {}", d.size, d.base, d.irq);
    }
    if let Some((size, base)) = cmd.trace {
        trace::init(size, base, info.memory_map());
    }
    if let Some(word) = cmd.bad {
        log::warn!("command line: cannot parse {word:?}");
    }

    ktest::run(&cmd);

    let initrd = info.modules().first().and_then(|m| {
        let ptr = mm::phys_to_virt(m.paddr, m.size)?;
        // SAFETY: the loader placed the module there, the frame allocator never hands out
        // its frames, and nothing writes to it: it lives as long as the kernel.
        Some(unsafe { core::slice::from_raw_parts(ptr as *const u8, m.size as usize) })
    });
    let have_rootfs = fs::init(initrd);
    drivers::virtio::probe_all(cmd.virtio_devices());
    net::inet::stack::init(drivers::virtio::take_net(), cmd.ip);
    if let Some(dev) = cmd.root {
        match syscall::mount::mount_root(dev, cmd.root_ro) {
            Ok(()) => log::info!("root={dev}: mounted at /mnt/root"),
            Err(e) => log::error!("root={dev}: cannot mount: error {}", e.0),
        }
    }
    tty::uart::init();
    ktest::run_with_devices(&cmd);
    ktest::run_threads(&cmd);

    let init = cmd.init.or(have_rootfs.then_some("/init"));
    let Some(init) = init else {
        log::info!("no init= and no initrd: nothing to run");
        kprintln!("guest-kernel: done, exiting");
        exit_vm(0)
    };
    let mut argv: alloc::vec::Vec<&[u8]> = alloc::vec![init.as_bytes()];
    argv.extend(cmd.init_args().iter().map(|a| a.as_bytes()));
    let envp: [&[u8]; 2] = [b"HOME=/", b"PATH=/bin:/sbin:/usr/bin"];
    if let Err(e) = task::spawn_init(init, &argv, &envp) {
        panic!("cannot run init {init}: error {}", e.0);
    }
    // After init, which is pid 1.
    mm::writeback::start();
    net::inet::stack::start();
    if let Some(secs) = cmd.taskdump {
        extern "C" fn dumper(secs: usize) {
            let queue = task::wait::WaitQueue::new();
            loop {
                let deadline = time::monotonic_ns() + secs as u64 * 1_000_000_000;
                let _ = queue.wait_until(Some(deadline), || false);
                task::dump_tasks();
            }
        }
        let _ = task::spawn_kernel_thread(dumper, secs as usize);
    }
    task::sched::idle_loop(|| task::INIT_EXIT.lock().is_some());
    let status = task::INIT_EXIT.lock().unwrap_or(0);
    // The status a shell would show: the exit code, or 128 + the signal that killed init.
    let code = if status & 0x7f == 0 { (status >> 8) & 0xff } else { 128 + (status & 0x7f) };
    log::info!("init exited with status {code}");
    // As a shutdown would: mounted disk file systems written back and marked clean
    // (their disks flushed; a raw disk is not, as Linux does not without sync).
    fs::ext2::sync_all();
    exit_vm(code as u32)
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    arch::cpu::disable_interrupts();
    match info.location() {
        Some(loc) => kprintln!("kernel panic at {}:{}: {}", loc.file(), loc.line(), info.message()),
        None => kprintln!("kernel panic: {}", info.message()),
    }
    exit_vm(EXIT_PANIC)
}
