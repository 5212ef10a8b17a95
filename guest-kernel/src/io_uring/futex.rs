//! Futex requests (Linux's io_uring/futex.c): IORING_OP_FUTEX_WAIT, FUTEX_WAKE and
//! FUTEX_WAITV, on the same futex table as futex(2) (`syscall::futex`).
//!
//! SQE: `addr` the futex (FUTEX_WAITV: a `struct futex_waitv` array of `len` entries),
//! `addr2` the value (FUTEX_WAKE: how many to wake), `addr3` the wake bitset, `fd` the
//! futex2 flags; `futex_flags` must be 0.
//!
//! A wait whose word holds its value is parked (see `cancel`) and its entries are queued
//! on the futexes. A wake takes the request back and hands it to its submitter as task
//! work, where it is issued again and completes: FUTEX_WAIT with 0, FUTEX_WAITV with the
//! index woken; entries still queued leave the table then. Cancellation takes it back
//! first and dequeues it at once.

use alloc::boxed::Box;
use alloc::sync::{Arc, Weak};
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicI64, Ordering};

use super::cancel::{self, Slot};
use super::uapi::Sqe;
use super::{tctx, IoUring, Issued, Op, Request};
use crate::errno::*;
use crate::sync::SpinLock;
use crate::syscall::futex::{self as fx, Notify, Queued, WaitEntry};

pub const IORING_OP_FUTEX_WAIT: u8 = 51;
pub const IORING_OP_FUTEX_WAITV: u8 = 53;

pub enum Kind {
    Wait(WaitEntry),
    Wake { uaddr: u64, flags: u32, nr: i32, mask: u32 },
    Waitv(Vec<WaitEntry>),
}

pub struct FutexOp {
    kind: Kind,
    /// Set once the request waits: what the futex table holds for it.
    waiter: Option<Arc<Waiter>>,
}

/// A parked futex request as the futex table sees it.
pub struct Waiter {
    ring: Weak<IoUring>,
    slot: SpinLock<Option<Slot>>,
    /// Taken by the first wakeup, or by cancellation (Linux's futexv_owned).
    claimed: AtomicBool,
    /// The index woken, -1 while none.
    woken: AtomicI64,
    queued: SpinLock<Queued>,
}

impl Waiter {
    /// Takes whatever entries are still queued out of the futex table.
    fn unqueue_all(&self) {
        let queued = core::mem::take(&mut *self.queued.lock());
        fx::unqueue(&queued);
    }
}

impl Notify for Waiter {
    fn claim(&self) -> bool {
        !self.claimed.swap(true, Ordering::Relaxed)
    }

    fn woken(&self, index: usize) {
        self.woken.store(index as i64, Ordering::SeqCst);
        let (Some(ring), Some(slot)) = (self.ring.upgrade(), self.slot.lock().clone()) else { return };
        if let Some(req) = cancel::unpark(&ring, &slot) {
            tctx::queue(&ring, req);
        }
    }
}

impl Drop for FutexOp {
    fn drop(&mut self) {
        if let Some(w) = &self.waiter {
            w.unqueue_all();
        }
    }
}

/// Cancellation took the parked request: nothing may wake it any more.
pub fn cancelled(op: &FutexOp) {
    if let Some(w) = &op.waiter
        && !w.claimed.swap(true, Ordering::Relaxed)
    {
        w.unqueue_all();
    }
}

pub fn prep(_ring: &IoUring, sqe: &Sqe) -> KResult<Op> {
    if sqe.opcode == IORING_OP_FUTEX_WAITV {
        // No flags or mask: each entry has its own flags.
        if sqe.fd != 0 || sqe.buf_index != 0 || sqe.file_index != 0 || sqe.off != 0 || sqe.op_flags != 0 || sqe.addr3 != 0 {
            return Err(EINVAL);
        }
        if sqe.len == 0 || sqe.len > fx::FUTEX_WAITV_MAX {
            return Err(EINVAL);
        }
        let entries = fx::parse_waitv(sqe.addr, sqe.len)?;
        return Ok(Op::Futex(FutexOp { kind: Kind::Waitv(entries), waiter: None }));
    }
    if sqe.len != 0 || sqe.op_flags != 0 || sqe.buf_index != 0 || sqe.file_index != 0 {
        return Err(EINVAL);
    }
    let flags = sqe.fd as u32;
    let (val, mask) = (sqe.off, sqe.addr3);
    fx::check_flags2(flags, &[val, mask])?;
    let kind = if sqe.opcode == IORING_OP_FUTEX_WAIT {
        Kind::Wait(WaitEntry { uaddr: sqe.addr, flags, val: val as u32, bitset: mask as u32 })
    } else {
        Kind::Wake { uaddr: sqe.addr, flags, nr: val as u32 as i32, mask: mask as u32 }
    };
    Ok(Op::Futex(FutexOp { kind, waiter: None }))
}

pub fn issue(ring: &Arc<IoUring>, mut req: Box<Request>) -> Issued {
    let Op::Futex(op) = &mut req.op else { return Some((req, -EINVAL.0)) };
    // Issued again after a wakeup: done.
    if let Some(w) = &op.waiter {
        w.unqueue_all();
        let res = match op.kind {
            Kind::Waitv(_) => w.woken.load(Ordering::Relaxed).max(0) as i32,
            _ => 0,
        };
        return Some((req, res));
    }
    let entries: &[WaitEntry] = match &op.kind {
        Kind::Wake { uaddr, flags, nr, mask } => {
            // FLAGS_STRICT, as Linux's io_futex_wake: waking 0 wakes none.
            let res = fx::wake(*uaddr, *flags, *nr, *mask).map_or_else(|e| -e.0, |n| n as i32);
            return Some((req, res));
        }
        Kind::Wait(e) if e.bitset == 0 => return Some((req, -EINVAL.0)),
        Kind::Wait(e) => core::slice::from_ref(e),
        Kind::Waitv(v) => v,
    };
    let waiter = Arc::new(Waiter {
        ring: Arc::downgrade(ring),
        slot: SpinLock::new(None),
        claimed: AtomicBool::new(false),
        woken: AtomicI64::new(-1),
        queued: SpinLock::new(Vec::new()),
    });
    let who: Arc<dyn Notify> = waiter.clone();
    match fx::setup(entries, &who) {
        Ok(queued) => *waiter.queued.lock() = queued,
        Err(e) => return Some((req, -e.0)),
    }
    op.waiter = Some(Arc::clone(&waiter));
    let slot = cancel::park(ring, req, false);
    *waiter.slot.lock() = Some(slot.clone());
    // A wake on another CPU between `setup` and here found no slot to unpark (it stores
    // `woken` before it looks at the slot, under the slot's lock): finish it here.
    if waiter.woken.load(Ordering::SeqCst) >= 0
        && let Some(req) = cancel::unpark(ring, &slot)
    {
        tctx::queue(ring, req);
    }
    None
}
