//! More than one CPU: starting the others (APs), and what CPUs ask of each other.
//!
//! # Bring-up: INIT, SIPI, and one 32-bit entry
//! The boot CPU finds the CPUs in the MP table (`mptable`), copies a real-mode trampoline
//! to [`TRAMPOLINE`] and starts each AP in turn the standard way: an INIT IPI, then a
//! start-up IPI (twice if needed) whose vector is the trampoline's page number. The AP
//! wakes in 16-bit real mode at 0x8000, loads a small GDT, enters 32-bit protected mode
//! and far-jumps to `ap_start32` (`boot`), the one 32-bit entry of APs: it turns on long
//! mode with the boot page tables (which are the kernel's) and calls [`ap_main`] on the
//! stack the boot CPU left in [`AP_BOOT`]. A VMM that cannot run real mode could enter
//! `ap_start32` directly in the PVH-style 32-bit state; ours and QEMU both run the
//! trampoline, so only that path is used. The boot CPU waits for each AP to say it is
//! up before it starts the next, so one [`AP_BOOT`] serves them all.
//!
//! # Requests between CPUs
//! One IPI vector, [`KICK_VECTOR`]: it ends a `hlt` (a task was queued for an idle CPU)
//! or brings a CPU running user code into the kernel (a signal or task work for the task
//! there; `task::return_to_user` handles it on the way out), and it carries function
//! calls ([`call_on`], Linux's `smp_call_function_many` with `wait`): the caller posts
//! the function in each target's mailbox (one slot per calling CPU) and kicks it; the
//! target runs it in the interrupt, or, when it is busy in the kernel with interrupts
//! off, in its next busy-wait (`cpu::relax`) or idle pass ([`poll_requests`]). The
//! caller waits until every target has run it. A TLB shootdown is such a call, so the
//! old frames may be reused when it returns.

use core::arch::global_asm;
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, Ordering};

use super::{cpu, gdt, interrupts, lapic, percpu, switch, syscall};
use crate::mm::phys_to_virt;

/// Physical address the AP trampoline runs at (start-up IPI vector 8 = page 0x8000).
const TRAMPOLINE: u64 = 0x8000;
const AP_STACK_SIZE: usize = 64 * 1024;

/// The IPI vector of every request between CPUs.
pub const KICK_VECTOR: u8 = 0xf0;
const ICR_INIT: u32 = 0x4500;
const ICR_STARTUP: u32 = 0x4600;

/// The CPUs that are running the kernel (bit N: CPU index N).
static ONLINE: AtomicU64 = AtomicU64::new(1);

/// A function posted to other CPUs by [`call_on`], and how many have yet to run it.
struct Call<'a> {
    f: &'a (dyn Fn() + Sync),
    left: AtomicUsize,
}

/// `MAILBOX[target][caller]`: the [`Call`] `caller` waits for `target` to run (null:
/// none). A caller waits for its call, so it has one slot per target.
static MAILBOX: [[AtomicPtr<()>; percpu::MAX_CPUS]; percpu::MAX_CPUS] =
    [const { [const { AtomicPtr::new(core::ptr::null_mut()) }; percpu::MAX_CPUS] }; percpu::MAX_CPUS];
/// Per target: the callers whose slot is filled (bit N: CPU N).
static POSTED: [AtomicU64; percpu::MAX_CPUS] = [const { AtomicU64::new(0) }; percpu::MAX_CPUS];

/// What the boot CPU leaves for the AP it is starting.
#[repr(C)]
struct ApBoot {
    stack_top: AtomicU64,
    double_fault_top: AtomicU64,
    index: AtomicU32,
    apic_id: AtomicU32,
    up: AtomicBool,
}

#[unsafe(no_mangle)]
static AP_BOOT: ApBoot = ApBoot {
    stack_top: AtomicU64::new(0),
    double_fault_top: AtomicU64::new(0),
    index: AtomicU32::new(0),
    apic_id: AtomicU32::new(0),
    up: AtomicBool::new(false),
};

global_asm!(
    r#"
    .section .rodata.ap_trampoline, "a"
    .code16
    .global ap_trampoline
ap_trampoline:
    cli
    cld
    xorw %ax, %ax
    movw %ax, %ds
    lgdtl ({base} + ap_gdt_ptr - ap_trampoline)
    movl %cr0, %eax
    orl $1, %eax                        /* PE */
    movl %eax, %cr0
    ljmpl $0x08, $ap_start32
    .balign 8
ap_gdt:
    .quad 0
    .quad 0x00cf9a000000ffff            /* 0x08: 32-bit code */
    .quad 0x00cf92000000ffff            /* 0x10: data */
ap_gdt_ptr:
    .word ap_gdt_ptr - ap_gdt - 1
    .long {base} + ap_gdt - ap_trampoline
    .global ap_trampoline_end
ap_trampoline_end:
    .code64
    "#,
    base = const TRAMPOLINE,
    options(att_syntax)
);

unsafe extern "C" {
    static ap_trampoline: u8;
    static ap_trampoline_end: u8;
}

/// The online CPUs' indexes.
pub fn online_cpus() -> impl Iterator<Item = usize> {
    let mask = ONLINE.load(Ordering::Acquire);
    (0..percpu::MAX_CPUS).filter(move |c| mask & (1 << c) != 0)
}

/// The online CPUs as a mask (bit N: CPU N).
pub fn online_mask() -> u64 {
    ONLINE.load(Ordering::Acquire)
}

/// How many CPUs run the kernel.
pub fn online_count() -> usize {
    ONLINE.load(Ordering::Relaxed).count_ones() as usize
}

/// Sends CPU `cpu` a kick (see the module doc).
pub fn send_kick(cpu: usize) {
    lapic::send_ipi(percpu::apic_id(cpu), u32::from(KICK_VECTOR));
}

/// Runs `f` on every online CPU in `mask` but this one, and waits until each has run it.
/// `f` runs with interrupts off, in an interrupt handler or a busy-wait of the target: it
/// must be short, must not sleep or take a lock the caller may hold, and must not call
/// `call_on` itself. Not for interrupt handlers (a CPU has one slot per target).
pub fn call_on(mask: u64, f: &(dyn Fn() + Sync)) {
    let me = percpu::index();
    let mask = mask & online_mask() & !(1 << me);
    if mask == 0 {
        return;
    }
    // Interrupts off throughout: a handler on this CPU cannot post a second call into this
    // CPU's slots while they are in use (the kernel runs with them off anyway).
    let were_on = cpu::disable_interrupts();
    let call = Call { f, left: AtomicUsize::new(mask.count_ones() as usize) };
    let posted = (&raw const call).cast_mut().cast::<()>();
    for c in (0..percpu::MAX_CPUS).filter(|c| mask & (1 << c) != 0) {
        // Release: `call` is written before the target can read it (pairs with the
        // Acquire swap in `poll_requests`).
        let old = MAILBOX[c][me].swap(posted, Ordering::Release);
        assert!(old.is_null(), "call_on: CPU {me} called again before its call to CPU {c} was taken");
        POSTED[c].fetch_or(1 << me, Ordering::SeqCst);
        send_kick(c);
    }
    // Answers calls posted to this CPU meanwhile, so two CPUs calling each other both
    // finish. Acquire pairs with the targets' Release: what `f` did is visible after.
    while call.left.load(Ordering::Acquire) != 0 {
        cpu::relax();
    }
    if were_on {
        cpu::enable_interrupts();
    }
}

/// Makes every CPU in `mask` (not this one) flush its TLB, and waits until each has.
pub fn flush_tlbs(mask: u64) {
    call_on(mask, &|| cpu::flush_tlb());
}

/// Runs what other CPUs posted to this one ([`call_on`]). Called by the kick interrupt,
/// every busy-wait and the idle loop.
#[inline]
pub fn poll_requests() {
    let me = percpu::index();
    if POSTED[me].load(Ordering::Relaxed) == 0 {
        return;
    }
    let callers = POSTED[me].swap(0, Ordering::SeqCst);
    for c in (0..percpu::MAX_CPUS).filter(|c| callers & (1 << c) != 0) {
        let posted = MAILBOX[me][c].swap(core::ptr::null_mut(), Ordering::Acquire);
        if posted.is_null() {
            continue; // taken by an earlier pass (an interrupt inside a busy-wait's pass)
        }
        // SAFETY: the caller keeps its `Call` alive until `left` reaches zero, which
        // needs this CPU's decrement below; nothing reads it after that.
        let call = unsafe { &*posted.cast::<Call<'_>>() };
        (call.f)();
        call.left.fetch_sub(1, Ordering::Release);
    }
}

/// Starts every other CPU the MP table lists; returns how many CPUs run.
pub fn start_aps() -> usize {
    let Some(cpus) = super::mptable::cpus() else {
        log::info!("smp: no MP table: one CPU");
        return 1;
    };
    let me = lapic::id();
    percpu::init(0, me);
    if cpus.first() != Some(&me) {
        log::warn!("smp: the MP table's boot CPU is APIC {:?}, we are {me}: one CPU", cpus.first());
        return 1;
    }
    if cpus.len() > percpu::MAX_CPUS {
        log::warn!("smp: {} CPUs listed, {} supported", cpus.len(), percpu::MAX_CPUS);
    }
    if cpus.len() > 1 {
        copy_trampoline();
    }
    for (index, &apic_id) in cpus.iter().enumerate().take(percpu::MAX_CPUS).skip(1) {
        if !start_ap(index, apic_id) {
            log::warn!("smp: CPU {index} (APIC {apic_id}) did not start");
        }
    }
    let n = online_count();
    log::info!("smp: {n} of {} CPUs online", cpus.len());
    n
}

fn copy_trampoline() {
    let start = &raw const ap_trampoline;
    // SAFETY: two symbols of the same section, `end` after `start`.
    let len = unsafe { (&raw const ap_trampoline_end).offset_from(start) } as usize;
    let dst = phys_to_virt(TRAMPOLINE, len as u64).expect("low memory is mapped");
    // SAFETY: the trampoline page is in the reserved first MiB, unused by anything else
    // (the VMM's boot data ends below it); the source is the kernel image.
    unsafe { core::ptr::copy_nonoverlapping(start, dst, len) };
}

/// Waits `ns` nanoseconds, answering other CPUs meanwhile.
fn delay(ns: u64) {
    let end = crate::time::monotonic_ns() + ns;
    while crate::time::monotonic_ns() < end {
        cpu::relax();
    }
}

/// Starts one AP and waits until it runs the kernel (true) or gives up (false).
fn start_ap(index: usize, apic_id: u32) -> bool {
    // Its idle stack and double-fault stack live as long as the kernel.
    let stack = alloc::vec![0u8; AP_STACK_SIZE].leak();
    let double_fault = alloc::vec![0u8; gdt::DOUBLE_FAULT_STACK_SIZE].leak();
    AP_BOOT.stack_top.store((stack.as_ptr() as u64 + AP_STACK_SIZE as u64) & !15, Ordering::Relaxed);
    AP_BOOT.double_fault_top.store((double_fault.as_ptr() as u64 + double_fault.len() as u64) & !15, Ordering::Relaxed);
    AP_BOOT.index.store(index as u32, Ordering::Relaxed);
    AP_BOOT.apic_id.store(apic_id, Ordering::Relaxed);
    // Release: the AP reads what was stored above once it runs (the IPIs order it too).
    AP_BOOT.up.store(false, Ordering::Release);
    lapic::send_ipi(apic_id, ICR_INIT);
    delay(10_000_000);
    let vector = (TRAMPOLINE >> 12) as u32;
    for wait in [1_000_000_000u64, 1_000_000_000] {
        lapic::send_ipi(apic_id, ICR_STARTUP | vector);
        let end = crate::time::monotonic_ns() + wait;
        while crate::time::monotonic_ns() < end {
            // Acquire pairs with the Release in `ap_main`.
            if AP_BOOT.up.load(Ordering::Acquire) {
                return true;
            }
            cpu::relax();
        }
    }
    false
}

/// An AP's first Rust code, on the stack from [`AP_BOOT`], interrupts off, boot page
/// tables loaded. Sets the CPU up as the boot CPU was, says it is up, and runs the idle
/// loop for good.
pub extern "C" fn ap_main() -> ! {
    let index = AP_BOOT.index.load(Ordering::Relaxed) as usize;
    percpu::init(index, AP_BOOT.apic_id.load(Ordering::Relaxed));
    gdt::init(Some(AP_BOOT.double_fault_top.load(Ordering::Relaxed)));
    interrupts::load();
    switch::init_fpu();
    syscall::init();
    lapic::init();
    lapic::start_timer(lapic::tsc_deadline_mode());
    crate::mm::paging::activate_kernel();
    // Online before any task can run here, so TLB shootdowns include this CPU.
    ONLINE.fetch_or(1 << index, Ordering::SeqCst);
    // Release: this CPU's setup is done before the boot CPU starts the next.
    AP_BOOT.up.store(true, Ordering::Release);
    crate::task::sched::idle_loop(|| false);
    unreachable!("the idle loop of an AP never ends");
}
