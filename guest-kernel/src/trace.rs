//! Kernel tracepoints: what happens to each io_uring request on its way through the
//! kernel and the virtqueues, written into a per-CPU ring in memory the VMM reads
//! (`vmm run --trace FILE.json` merges them with its own events into one timeline).
//!
//! Off unless the command line has `trace=SIZE[@BASE]`: a ring of `SIZE` bytes per CPU,
//! CPU `i`'s at `BASE + i * SIZE`. `vmm run --trace` reserves that memory outside the RAM
//! the memory map offers and reads the rings while the guest runs. Without `@BASE` the
//! kernel takes the rings from RAM; a host that can read the guest's memory after the run
//! (QEMU with a file-backed RAM: `vmm trace-import`) finds them by their magic. Off, a
//! tracepoint is one load and a branch.
//!
//! Each CPU's ring is a single-producer, single-consumer queue, like io_uring's CQ: the
//! CPU writes a record, then publishes `head` with Release; the VMM reads records up to
//! `head` (Acquire) and then publishes `tail`. A full ring drops the record and counts it
//! (the VMM says how many were lost). Records are written with interrupts off, so an
//! interrupt handler's tracepoint cannot interleave with the one it interrupted.
//!
//! The layout is an ABI shared with `vmm/src/trace.rs` (which has the same constants):
//! a 64-byte header, then 48-byte records.
//!
//! | offset | header field | written by |
//! |--------|--------------|------------|
//! | 0      | magic `TRC1` (u32), record size (u32) | guest |
//! | 8      | head: records written (u64) | guest |
//! | 16     | tail: records read (u64) | VMM |
//! | 24     | records dropped (u64) | guest |
//! | 32     | capacity in records (u64) | guest |
//! | 40     | guest TSC rate in kHz (u64) | guest |
//!
//! A record: guest TSC (u64), kind (u16), CPU (u16), task id (u32), then four u64
//! arguments whose meaning depends on the kind (see [`Kind`]).

use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

use crate::arch::cpu::{self, MAX_CPUS};

pub const MAGIC: u32 = u32::from_le_bytes(*b"TRC1");
pub const HEADER: usize = 64;
pub const RECORD: usize = 48;

/// What a record says. Arguments `a`..`d` per kind; "queue" is the virtqueue's
/// descriptor-table address (how the VMM names the same queue) and its index.
#[derive(Clone, Copy)]
#[repr(u16)]
pub enum Kind {
    /// An SQE consumed: a request, b user_data, c opcode | sqe flags << 8 | SQ slot << 16,
    /// d the ring.
    Sqe = 1,
    /// Prepared: a request, b 0 or -errno.
    Prep = 2,
    /// Issued (again after a wakeup or in io-wq, each time): a request, b in io-wq.
    Issue = 3,
    /// Parked until its file is ready (poll armed): a request.
    PollArm = 4,
    /// Handed to io-wq: a request.
    Punt = 5,
    /// A CQE posted: a request, b user_data, c result, d ring | CQ index << 32 (index
    /// u32::MAX: it went to the overflow list).
    Cqe = 6,
    /// io_uring_enter entered: a ring, b the CQ head user space has published.
    CqHead = 7,
    /// A chain published on a virtqueue: a request (0: none), b queue, c queue index,
    /// d head | its avail-ring position << 16.
    Publish = 8,
    /// The device notified: b queue, c queue index, d avail index.
    Kick = 9,
    /// No notification, the device said it is looking (EVENT_IDX): as Kick.
    KickSuppressed = 10,
    /// A device interrupt taken: a the GSI.
    Irq = 11,
    /// A used chain reaped: b queue, c queue index, d head | used index << 16 | polled << 32.
    Used = 12,
    /// A context switch: a the task switched to (0: idle).
    Switch = 13,
}

/// The trace is on (the command line gave a region).
static ON: AtomicBool = AtomicBool::new(false);
/// Per CPU: its ring's header (virtual address; 0 when off).
static RINGS: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];
/// Per CPU: the task running there, and the request it is working for (for the virtio
/// tracepoints, which do not know the request that led to them).
static TASK: [AtomicU32; MAX_CPUS] = [const { AtomicU32::new(0) }; MAX_CPUS];
static REQUEST: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];
/// Request ids (0 is "none").
static NEXT_REQUEST: AtomicU64 = AtomicU64::new(1);

/// Turns the trace on with a ring of `size` bytes for each online CPU: at physical `base`
/// if given (the VMM reserved that region: it must lie outside RAM), else in frames taken
/// from RAM (a host that reads the guest's memory after the run finds the rings by their
/// magic). Warns and leaves it off when that cannot be. After the APs are up.
pub fn init(size: u64, base: Option<u64>, ram: &[crate::boot_info::MemoryRegion]) {
    let cpus = 64 - u64::from(crate::arch::smp::online_mask().leading_zeros());
    let capacity = (size as usize).saturating_sub(HEADER) / RECORD;
    let bytes = size.checked_mul(cpus).filter(|_| capacity > 0 && size.is_multiple_of(4096));
    let base = match (bytes, base) {
        (Some(b), Some(base)) => {
            let in_ram = ram.iter().any(|r| r.kind == crate::boot_info::MEMORY_RAM && base < r.addr + r.size && r.addr < base + b);
            let mapped = base.is_multiple_of(4096) && base.checked_add(b).is_some() && crate::mm::phys_to_virt(base, b).is_some();
            (mapped && !in_ram).then_some(base)
        }
        (Some(b), None) => crate::mm::frame::alloc_contiguous(b / 4096),
        (None, _) => None,
    };
    let Some(base) = base else {
        log::warn!("trace={size}: no room for {cpus} rings (or not a mapped region outside RAM); tracing stays off");
        return;
    };
    for (i, ring) in RINGS.iter().enumerate().take(cpus as usize) {
        let hdr = crate::mm::phys_to_virt(base + i as u64 * size, size).expect("checked") as u64;
        // SAFETY: the region is ours (outside RAM and reserved by the VMM, or frames just
        // taken from the allocator) and mapped; the header's words are aligned (base and
        // size are page multiples).
        unsafe {
            for off in (8..HEADER as u64).step_by(8) {
                header(hdr, off).store(0, Ordering::Relaxed);
            }
            header(hdr, 32).store(capacity as u64, Ordering::Relaxed);
            header(hdr, 40).store(crate::time::tsc_khz(), Ordering::Relaxed);
            // The magic last: a reader that sees it sees the rest.
            header(hdr, 0).store(u64::from(MAGIC) | (RECORD as u64) << 32, Ordering::Release);
        }
        ring.store(hdr, Ordering::Relaxed);
    }
    ON.store(true, Ordering::Release);
    log::info!("trace: on, {capacity} records per CPU at {base:#x}");
}

/// The header word at `offset` of the ring at `hdr`.
///
/// # Safety
/// `hdr` is a ring's header as `init` set it up.
unsafe fn header<'a>(hdr: u64, offset: u64) -> &'a AtomicU64 {
    // SAFETY: per the contract, an aligned word of the mapped header.
    unsafe { &*((hdr + offset) as *const AtomicU64) }
}

#[inline]
pub fn on() -> bool {
    ON.load(Ordering::Relaxed)
}

/// Records an event (nothing when the trace is off).
#[inline]
pub fn emit(kind: Kind, a: u64, b: u64, c: u64, d: u64) {
    if on() {
        write(kind, [a, b, c, d]);
    }
}

#[cold]
#[inline(never)]
fn write(kind: Kind, args: [u64; 4]) {
    write_at(crate::time::rdtsc(), kind, args);
}

/// Records an event that happened at guest TSC `tsc` (taken before the step it records
/// became visible to another CPU or the device: a reader never sees its effect earlier).
#[cold]
#[inline(never)]
pub fn write_at(tsc: u64, kind: Kind, args: [u64; 4]) {
    let enabled = cpu::disable_interrupts();
    let me = cpu::index();
    let hdr = RINGS[me].load(Ordering::Relaxed);
    // SAFETY: set up by `init` (rings are set before ON).
    let (head, tail, dropped, cap) = unsafe {
        (
            header(hdr, 8),
            header(hdr, 16),
            header(hdr, 24),
            header(hdr, 32),
        )
    };
    let h = head.load(Ordering::Relaxed);
    let cap = cap.load(Ordering::Relaxed);
    if h.wrapping_sub(tail.load(Ordering::Acquire)) >= cap {
        dropped.fetch_add(1, Ordering::Relaxed);
    } else {
        let rec = (hdr + HEADER as u64 + (h % cap) * RECORD as u64) as *mut u64;
        let word0 = u64::from(kind as u16)
            | (me as u64) << 16
            | u64::from(TASK[me].load(Ordering::Relaxed)) << 32;
        // SAFETY: slot h % cap lies in this CPU's ring, which only this CPU writes (with
        // interrupts off), and the VMM does not read it until `head` passes it.
        unsafe {
            rec.write_volatile(tsc);
            rec.add(1).write_volatile(word0);
            for (i, v) in args.into_iter().enumerate() {
                rec.add(2 + i).write_volatile(v);
            }
        }
        head.store(h + 1, Ordering::Release);
    }
    if enabled {
        cpu::enable_interrupts();
    }
}

/// An SQE consumed from SQ slot `slot` of `ring` (the trace is on): records it and
/// returns its request's new id.
#[cold]
pub fn sqe(sqe: &crate::io_uring::uapi::Sqe, slot: u32, ring: u64) -> u64 {
    let id = NEXT_REQUEST.fetch_add(1, Ordering::Relaxed);
    let what = u64::from(sqe.opcode) | u64::from(sqe.flags) << 8 | u64::from(slot) << 16;
    write(Kind::Sqe, [id, sqe.user_data, what, ring]);
    id
}

/// Request `id` issued (a traced request; `worker`: by io-wq): records it and makes it
/// the request this CPU works for; returns the one before, for `set_request` after.
#[cold]
pub fn issue(id: u64, worker: bool) -> u64 {
    write(Kind::Issue, [id, u64::from(worker), 0, 0]);
    REQUEST[cpu::index()].swap(id, Ordering::Relaxed)
}

/// The request this CPU works for from now on (0: none).
pub fn set_request(id: u64) {
    REQUEST[cpu::index()].store(id, Ordering::Relaxed);
}

pub fn request() -> u64 {
    REQUEST[cpu::index()].load(Ordering::Relaxed)
}

/// A context switch to task `next` (0: idle): records it, and swaps the request context
/// (`saved` is the outgoing task's slot, `restore` the incoming task's).
#[inline]
pub fn switch(next: u32, saved: &AtomicU64, restore: &AtomicU64) {
    if !on() {
        return;
    }
    let me = cpu::index();
    saved.store(REQUEST[me].load(Ordering::Relaxed), Ordering::Relaxed);
    REQUEST[me].store(restore.load(Ordering::Relaxed), Ordering::Relaxed);
    TASK[me].store(next, Ordering::Relaxed);
    write(Kind::Switch, [u64::from(next), 0, 0, 0]);
}
