//! IORING_SETUP_IOPOLL (Linux's io_do_iopoll in io_uring/rw.c): reads and writes of a
//! block device opened O_DIRECT go to its polled virtqueue, which never interrupts; their
//! completions are found by polling it, from `io_uring_enter` with GETEVENTS (which spins
//! until `min_complete` CQEs are there or nothing is in flight) and from the SQ poller.
//! Other files, and disks without a polled queue, are -EOPNOTSUPP (as Linux for a queue
//! without QUEUE_FLAG_POLL); opcodes without IOPOLL support -EINVAL. With
//! IORING_SETUP_HYBRID_IOPOLL a wait first sleeps half the shortest completion time seen,
//! then polls (less spinning for slow devices).

use alloc::boxed::Box;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::Ordering;

use super::{IoUring, Request};
use crate::errno::*;

/// Opcodes an IOPOLL ring takes (Linux's opdef `iopoll`).
pub fn allowed(opcode: u8) -> bool {
    use super::rw::*;
    matches!(
        opcode,
        0 /* NOP */ | 63 /* NOP128 */ | IORING_OP_READV | IORING_OP_WRITEV | IORING_OP_READ_FIXED | IORING_OP_WRITE_FIXED | IORING_OP_READ
            | IORING_OP_WRITE | IORING_OP_READV_FIXED | IORING_OP_WRITEV_FIXED
    )
}

/// Reads and writes to be reaped by polling (`IoUring::iopoll`).
pub struct Iopoll {
    /// Requests at the device.
    pub in_flight: usize,
    /// Requests the device finished, with their results, not reaped yet.
    #[allow(clippy::vec_box)]
    done: Vec<(Box<Request>, i32)>,
    /// IORING_SETUP_HYBRID_IOPOLL: the shortest wait yet seen for a completion (ns);
    /// a wait first sleeps half of it, then polls (Linux's hybrid_poll_time).
    hybrid_ns: u64,
}

impl Default for Iopoll {
    fn default() -> Self {
        Self { in_flight: 0, done: Vec::new(), hybrid_ns: u64::MAX }
    }
}

/// Counts a request sent to the device for polled completion.
pub fn submitted(ring: &IoUring) {
    ring.iopoll.lock().in_flight += 1;
}

/// A polled request finished (in `reap`'s device poll, or from an interrupt): it waits to
/// be reaped. A ring that is gone completes it at once (nobody reaps it any more).
pub fn finished(ring: &Arc<IoUring>, req: Box<Request>, res: i32) {
    if ring.dead.load(Ordering::Relaxed) {
        ring.iopoll.lock().in_flight -= 1;
        return ring.complete_async(req, res);
    }
    ring.iopoll.lock().done.push((req, res));
}

/// Polls the disks and completes what finished; how many completed.
pub fn reap(ring: &Arc<IoUring>) -> usize {
    crate::drivers::virtio::blk::poll_all();
    let done = {
        let mut p = ring.iopoll.lock();
        p.in_flight -= p.done.len();
        core::mem::take(&mut p.done)
    };
    let n = done.len();
    for (req, res) in done {
        ring.complete_async(req, res);
    }
    n
}

/// io_uring_enter's GETEVENTS on an IOPOLL ring: reaps until `min` CQEs are ready or
/// nothing is in flight (then it returns with fewer, as Linux). EINTR for a signal.
pub fn wait(ring: &Arc<IoUring>, min: u32) -> KResult<()> {
    let me = crate::task::sched::current();
    let local = ring.flag(super::uapi::IORING_SETUP_DEFER_TASKRUN);
    let hybrid = ring.flag(super::uapi::IORING_SETUP_HYBRID_IOPOLL);
    let start = crate::time::monotonic_ns();
    let mut slept = 0;
    let mut first = true;
    loop {
        let reaped = reap(ring);
        if hybrid && reaped == 0 && first {
            // Nothing done yet: sleep half the shortest completion time seen, then poll.
            let half = ring.iopoll.lock().hybrid_ns / 2;
            if half != u64::MAX / 2 && half > 0 && ring.iopoll.lock().in_flight > 0 {
                let until = crate::time::monotonic_ns().saturating_add(half);
                let nap = crate::task::wait::WaitQueue::new();
                if nap.wait_until(Some(until), || false) == Err(crate::task::wait::WaitError::Interrupted) {
                    return Err(EINTR);
                }
                slept = half;
            }
        }
        if hybrid && reaped > 0 && first {
            let runtime = crate::time::monotonic_ns().saturating_sub(start).saturating_sub(slept);
            let mut p = ring.iopoll.lock();
            p.hybrid_ns = p.hybrid_ns.min(runtime.max(1));
        }
        first &= reaped == 0;
        if local {
            ring.run_local_work();
        }
        ring.flush_overflow();
        let rings = ring.rings();
        if rings.cq_ready() >= min.min(rings.cq_entries) || ring.iopoll.lock().in_flight == 0 {
            return Ok(());
        }
        if me.signal_pending() {
            return Err(EINTR);
        }
        if me.task_work_pending() {
            crate::task::run_task_work(&me);
        }
        // Others may run meanwhile (the device is another thread of the host).
        if crate::task::sched::others_runnable() {
            crate::task::sched::yield_now();
        }
    }
}

/// A closing ring waits for what it has at the device.
pub fn drain(ring: &Arc<IoUring>) {
    while ring.iopoll.lock().in_flight > 0 {
        reap(ring);
        crate::task::sched::yield_now();
    }
}
