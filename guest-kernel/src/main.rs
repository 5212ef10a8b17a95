//! The guest kernel: booted by PVH, runs Linux x86-64 programs, implements io_uring.
//!
//! Init order lives here; each step is a module of its own (see docs/DESIGN.md).

#![no_std]
#![no_main]

mod arch;
mod boot_info;
mod cmdline;
mod console;
mod exit;
mod ktest;
mod mm;
mod sync;
mod time;

use boot_info::BootInfo;
use cmdline::Cmdline;
use exit::{exit_vm, EXIT_PANIC};

/// Called from `arch::x86_64::boot` on the boot stack, in long mode, `.bss` zeroed.
extern "C" fn kernel_main(start_info_paddr: u32) -> ! {
    console::init();
    kprintln!("guest-kernel {}: booted by PVH", env!("CARGO_PKG_VERSION"));

    let info = match BootInfo::parse(u64::from(start_info_paddr)) {
        Ok(info) => info,
        Err(e) => panic!("bad hvm_start_info at {start_info_paddr:#x}: {e:?}"),
    };
    let cmd = Cmdline::parse(info.cmdline());
    console::init_log(cmd.loglevel);
    arch::init();

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
    if let Some(word) = cmd.bad {
        log::warn!("command line: cannot parse {word:?}");
    }

    ktest::run(&cmd);

    match cmd.init {
        Some(init) => log::warn!("init={init}: running programs is not supported yet"),
        None => log::info!("no init= given"),
    }
    kprintln!("guest-kernel: done, exiting");
    exit_vm(0)
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
