//! futex: wait while a user word holds a value, wake waiters on the same word.
//!
//! Waiters are keyed by the physical address of the word, so a futex in memory shared
//! between processes (MAP_SHARED, or after CLONE_VM) is one futex, as in Linux.

use alloc::collections::BTreeMap;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, Ordering};

use super::Ctx;
use crate::errno::*;
use crate::mm::paging::pte_addr;
use crate::mm::uaccess;
use crate::sync::SpinLock;
use crate::task::{sched, with_mm, Task};
use crate::time;

const FUTEX_WAIT: u64 = 0;
const FUTEX_WAKE: u64 = 1;
const FUTEX_REQUEUE: u64 = 3;
const FUTEX_CMP_REQUEUE: u64 = 4;
const FUTEX_WAIT_BITSET: u64 = 9;
const FUTEX_WAKE_BITSET: u64 = 10;
const FUTEX_PRIVATE_FLAG: u64 = 128;
const FUTEX_CLOCK_REALTIME: u64 = 256;

struct Waiter {
    task: Arc<Task>,
    woken: Arc<AtomicBool>,
}

static WAITERS: SpinLock<BTreeMap<u64, Vec<Waiter>>> = SpinLock::new(BTreeMap::new());

/// The key of the futex word at `uaddr` (its physical address), faulting it in.
fn key(uaddr: u64) -> KResult<u64> {
    if !uaddr.is_multiple_of(4) {
        return Err(EINVAL);
    }
    with_mm(|mm| {
        let _: u32 = uaccess::read(mm, uaddr)?;
        Ok(pte_addr(mm.pt.lookup(uaddr & !0xfff)) | (uaddr & 0xfff))
    })
}

fn wake_key(key: u64, n: usize) -> usize {
    let woken: Vec<Waiter> = {
        let mut map = WAITERS.lock();
        let Some(list) = map.get_mut(&key) else { return 0 };
        let n = n.min(list.len());
        let woken = list.drain(..n).collect();
        if list.is_empty() {
            map.remove(&key);
        }
        woken
    };
    for w in &woken {
        w.woken.store(true, Ordering::Relaxed);
        sched::wake(&w.task);
    }
    woken.len()
}

/// Wakes up to `n` waiters on the word at `uaddr` of the current process (thread exit's
/// CLONE_CHILD_CLEARTID).
pub fn wake_address(uaddr: u64, n: usize) {
    if let Ok(k) = key(uaddr) {
        wake_key(k, n);
    }
}

fn wait(uaddr: u64, expected: u32, deadline: Option<u64>) -> KResult<u64> {
    let k = key(uaddr)?;
    let value: u32 = with_mm(|mm| uaccess::read(mm, uaddr))?;
    if value != expected {
        return Err(EAGAIN);
    }
    let me = sched::current();
    let woken = Arc::new(AtomicBool::new(false));
    WAITERS.lock().entry(k).or_default().push(Waiter { task: Arc::clone(&me), woken: Arc::clone(&woken) });
    let mut timer = None;
    let result = loop {
        if woken.load(Ordering::Relaxed) {
            break Ok(0);
        }
        if me.signal_pending() {
            break Err(EINTR);
        }
        if deadline.is_some_and(|d| time::monotonic_ns() >= d) {
            break Err(ETIMEDOUT);
        }
        if let (Some(d), None) = (deadline, timer) {
            timer = Some(time::wake_at(d, &me));
        }
        sched::block_current();
    };
    // However the wait ended, its deadline leaves the timer structure.
    if let Some(t) = timer {
        time::cancel(t);
    }
    if result.is_err() {
        // Still queued (not woken): take ourselves out, wherever a requeue put us.
        let mut map = WAITERS.lock();
        for list in map.values_mut() {
            list.retain(|w| !Arc::ptr_eq(&w.woken, &woken));
        }
        map.retain(|_, l| !l.is_empty());
    }
    result
}

pub fn futex(c: &mut Ctx) -> KResult<u64> {
    let [uaddr, op, val, timeout, uaddr2, val3] = c.a;
    let cmd = op & !(FUTEX_PRIVATE_FLAG | FUTEX_CLOCK_REALTIME);
    if op & FUTEX_CLOCK_REALTIME != 0 && cmd != FUTEX_WAIT_BITSET && cmd != FUTEX_WAIT {
        return Err(ENOSYS);
    }
    match cmd {
        FUTEX_WAIT | FUTEX_WAIT_BITSET => {
            if cmd == FUTEX_WAIT_BITSET && val3 as u32 == 0 {
                return Err(EINVAL);
            }
            let deadline = if timeout == 0 {
                None
            } else {
                let ns = super::time::read_timespec(timeout)?;
                Some(if cmd == FUTEX_WAIT {
                    time::monotonic_ns().saturating_add(ns)
                } else if op & FUTEX_CLOCK_REALTIME != 0 {
                    time::monotonic_ns().saturating_add(ns.saturating_sub(time::realtime_ns()))
                } else {
                    ns
                })
            };
            wait(uaddr, val as u32, deadline)
        }
        FUTEX_WAKE | FUTEX_WAKE_BITSET => {
            if cmd == FUTEX_WAKE_BITSET && val3 as u32 == 0 {
                return Err(EINVAL);
            }
            Ok(wake_key(key(uaddr)?, val as u32 as usize) as u64)
        }
        FUTEX_REQUEUE | FUTEX_CMP_REQUEUE => {
            let (k1, k2) = (key(uaddr)?, key(uaddr2)?);
            if cmd == FUTEX_CMP_REQUEUE {
                let value: u32 = with_mm(|mm| uaccess::read(mm, uaddr))?;
                if value != val3 as u32 {
                    return Err(EAGAIN);
                }
            }
            let woken = wake_key(k1, val as u32 as usize);
            let mut map = WAITERS.lock();
            let moved: Vec<Waiter> = match map.get_mut(&k1) {
                Some(list) => {
                    let n = (timeout as u32 as usize).min(list.len());
                    list.drain(..n).collect()
                }
                None => Vec::new(),
            };
            let count = moved.len();
            map.entry(k2).or_default().extend(moved);
            map.retain(|_, l| !l.is_empty());
            Ok((woken + count) as u64)
        }
        _ => Err(ENOSYS),
    }
}
