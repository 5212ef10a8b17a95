//! Futexes (Linux's kernel/futex/): wait while a user word holds a value, wake waiters
//! on the same word. futex(2), the futex2 calls futex_waitv, futex_wake and futex_wait,
//! and io_uring's FUTEX_* ops all queue on the one table here.
//!
//! A futex is named by a key, as in Linux's get_futex_key: a shared futex (the default)
//! in a MAP_SHARED mapping by the physical address of the word, so memory shared between
//! processes is one futex; in a private mapping, and a private futex (FUTEX_PRIVATE_FLAG,
//! FUTEX2_PRIVATE) anywhere, by its address space and virtual address. A private and a
//! shared futex on the same word are different futexes.
//!
//! A waiter is a [`Notify`]: a sleeping task, or a parked io_uring request. Each queued
//! entry carries a wake bitset and its index in the waiter's vector (futex_waitv).

use alloc::collections::BTreeMap;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use super::Ctx;
use crate::errno::*;
use crate::mm::paging::NOT_OWNED;
use crate::mm::{uaccess, USER_END};
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
pub const FUTEX_BITSET_MATCH_ANY: u32 = u32::MAX;

/// futex2 flags (include/uapi/linux/futex.h).
pub const FUTEX2_SIZE_U32: u32 = 0x02;
const FUTEX2_SIZE_MASK: u32 = 0x03;
const FUTEX2_NUMA: u32 = 0x04;
const FUTEX2_MPOL: u32 = 0x08;
pub const FUTEX2_PRIVATE: u32 = 0x80;
const FUTEX2_VALID_MASK: u32 = FUTEX2_SIZE_MASK | FUTEX2_NUMA | FUTEX2_MPOL | FUTEX2_PRIVATE;
pub const FUTEX_WAITV_MAX: u32 = 128;
/// The only NUMA node; FUTEX_NO_NODE (-1) in a FUTEX2_NUMA futex's node word means "any".
const FUTEX_NO_NODE: u32 = u32::MAX;

const CLOCK_REALTIME: u64 = 0;
const CLOCK_MONOTONIC: u64 = 1;

/// Checks futex2 `flags` and values for them, as Linux's futex2_to_flags,
/// futex_flags_valid and futex_validate_input: unknown bits, sizes other than 32 bits
/// (the only one implemented, in Linux too), and values wider than the size are -EINVAL.
pub fn check_flags2(flags: u32, values: &[u64]) -> KResult<()> {
    if flags & !FUTEX2_VALID_MASK != 0 || flags & FUTEX2_SIZE_MASK != FUTEX2_SIZE_U32 {
        return Err(EINVAL);
    }
    if values.iter().any(|v| v >> 32 != 0) {
        return Err(EINVAL);
    }
    Ok(())
}

/// The name of a futex.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub struct Key {
    kind: KeyKind,
    /// The address space (the shared pages, for a shared mapping).
    mm: usize,
    /// The virtual address (the byte offset in the shared pages, for a shared mapping).
    addr: u64,
}

/// Linux tells the three apart (FUT_OFF_MMSHARED, FUT_OFF_INODE).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum KeyKind {
    Private,
    SharedInPrivateMapping,
    SharedMapping,
}

/// Something waiting on futexes.
pub trait Notify: Send + Sync {
    /// Under the table's lock: whether this waiter takes the wakeup of one of its
    /// entries (which then leaves the table). False: it was already woken through
    /// another entry; this one stays queued, and still counts as woken, as Linux's
    /// io_uring FUTEX_WAITV wake handler.
    fn claim(&self) -> bool;
    /// After the lock is released: entry `index` was woken.
    fn woken(&self, index: usize);
}

struct Waiter {
    id: u64,
    bitset: u32,
    index: usize,
    who: Arc<dyn Notify>,
}

static WAITERS: SpinLock<BTreeMap<Key, Vec<Waiter>>> = SpinLock::new(BTreeMap::new());
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// The key of the futex at `uaddr` with futex2 `flags` (Linux's get_futex_key): the word
/// must be naturally aligned (-EINVAL) and in user space (-EFAULT); a shared one must be
/// mapped (it is faulted in). A FUTEX2_NUMA futex is followed by its node word: -1 is
/// replaced by the node (0, the only one), any other node but 0 is -EINVAL.
pub fn key(uaddr: u64, flags: u32) -> KResult<Key> {
    let size = if flags & FUTEX2_NUMA != 0 { 8 } else { 4 };
    if !uaddr.is_multiple_of(size) {
        return Err(EINVAL);
    }
    if uaddr.checked_add(size).is_none_or(|end| end > USER_END) {
        return Err(EFAULT);
    }
    with_mm(|mm| {
        if flags & FUTEX2_NUMA != 0 {
            let node: u32 = uaccess::read(mm, uaddr + 4)?;
            if node == FUTEX_NO_NODE {
                uaccess::write(mm, uaddr + 4, &0u32)?;
            } else if node != 0 {
                return Err(EINVAL);
            }
        }
        Ok(())
    })?;
    let space = crate::task::current_process().mm().ok_or(EFAULT)?;
    let me = Arc::as_ptr(&space) as usize;
    if flags & FUTEX2_PRIVATE != 0 {
        return Ok(Key { kind: KeyKind::Private, mm: me, addr: uaddr });
    }
    uaccess::with_user(&space, |mm| {
        let _: u32 = uaccess::read(mm, uaddr)?;
        let pte = mm.pt.lookup(uaddr & !0xfff);
        if let Some(v) = mm.vma(uaddr)
            && let Some((pages, first)) = &v.shared
            && !(v.cow && pte & NOT_OWNED == 0)
        {
            // The shared pages and the offset in them (Linux keys by inode and page
            // offset): a page of a file's cache may be given back and read again into
            // another frame between the wait and the wake.
            let index = (*first as u64) + ((uaddr & !0xfff) - v.start) / 4096;
            return Ok(Key { kind: KeyKind::SharedMapping, mm: Arc::as_ptr(pages) as usize, addr: index * 4096 + (uaddr & 0xfff) });
        }
        Ok(Key { kind: KeyKind::SharedInPrivateMapping, mm: me, addr: uaddr })
    })
}

fn read_word(uaddr: u64) -> KResult<u32> {
    with_mm(|mm| uaccess::read(mm, uaddr))
}

/// Wakes waiters on `key` whose bitset meets `bitset`, as Linux's futex_wake: the count
/// stops at `nr`, but at least one is woken even for `nr` <= 0. Returns how many.
pub fn wake_key(key: Key, nr: i32, bitset: u32) -> usize {
    let mut count = 0;
    let mut woken = Vec::new();
    {
        let mut map = WAITERS.lock();
        let Some(list) = map.get_mut(&key) else { return 0 };
        let mut i = 0;
        while i < list.len() {
            if list[i].bitset & bitset == 0 {
                i += 1;
                continue;
            }
            if list[i].who.claim() {
                woken.push(list.remove(i));
            } else {
                i += 1;
            }
            count += 1;
            if count as i64 >= i64::from(nr) {
                break;
            }
        }
        if list.is_empty() {
            map.remove(&key);
        }
    }
    // No lock held: a waiter's wakeup may take it again.
    for w in woken {
        w.who.woken(w.index);
    }
    count
}

/// futex_wake with futex2 `flags` (FLAGS_STRICT: waking 0 wakes none).
pub fn wake(uaddr: u64, flags: u32, nr: i32, bitset: u32) -> KResult<usize> {
    if bitset == 0 {
        return Err(EINVAL);
    }
    let k = key(uaddr, flags)?;
    if nr == 0 {
        return Ok(0);
    }
    Ok(wake_key(k, nr, bitset))
}

/// Wakes one waiter on the word at `uaddr` of the current process (thread exit's
/// CLONE_CHILD_CLEARTID: a shared futex, as in Linux).
pub fn wake_address(uaddr: u64, n: i32) {
    if let Ok(k) = key(uaddr, FUTEX2_SIZE_U32) {
        wake_key(k, n, FUTEX_BITSET_MATCH_ANY);
    }
}

/// One futex of a vectored wait.
#[derive(Clone, Copy)]
pub struct WaitEntry {
    pub uaddr: u64,
    pub flags: u32,
    pub val: u32,
    pub bitset: u32,
}

/// Queued entries of one waiter: (key, id), to take them out again.
pub type Queued = Vec<(Key, u64)>;

/// Linux's futex_wait_multiple_setup: finds every key (errors first), then checks each
/// word in order (-EFAULT, or -EAGAIN when it no longer holds its value), and queues
/// them all for `who`. The final check runs under the table's lock, which a waker on
/// another CPU takes too: a word changed and woken after that check finds us queued.
pub fn setup(entries: &[WaitEntry], who: &Arc<dyn Notify>) -> KResult<Queued> {
    let mut keys = Vec::with_capacity(entries.len());
    for e in entries {
        keys.push(key(e.uaddr, e.flags)?);
    }
    let mut tries = 0;
    let mut map = loop {
        // Unlocked first: this may read a file page in (sleeping), which the locked pass
        // below cannot.
        for e in entries {
            if read_word(e.uaddr)? != e.val {
                return Err(EAGAIN);
            }
        }
        let map = WAITERS.lock();
        let mut changed = None;
        for e in entries {
            match read_word(e.uaddr) {
                Ok(v) if v == e.val => {}
                Ok(_) => changed = Some(EAGAIN),
                // Evicted since the unlocked pass: bring it in again.
                Err(_) if tries < 3 => changed = Some(EFILL),
                Err(e) => changed = Some(e),
            }
            if changed.is_some() {
                break;
            }
        }
        match changed {
            None => break map,
            Some(EFILL) => tries += 1,
            Some(e) => return Err(e),
        }
    };
    let mut queued = Vec::with_capacity(entries.len());
    for (index, (e, k)) in entries.iter().zip(keys).enumerate() {
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        map.entry(k).or_default().push(Waiter { id, bitset: e.bitset, index, who: Arc::clone(who) });
        queued.push((k, id));
    }
    Ok(queued)
}

/// Takes `queued` entries out of the table, wherever a requeue moved them.
pub fn unqueue(queued: &[(Key, u64)]) {
    if queued.is_empty() {
        return;
    }
    let mut map = WAITERS.lock();
    for &(k, id) in queued {
        let found = map.get_mut(&k).and_then(|l| l.iter().position(|w| w.id == id).map(|i| (l, i)));
        match found {
            Some((list, i)) => {
                list.remove(i);
                if list.is_empty() {
                    map.remove(&k);
                }
            }
            None => {
                for list in map.values_mut() {
                    list.retain(|w| w.id != id);
                }
                map.retain(|_, l| !l.is_empty());
            }
        }
    }
}

/// A task sleeping in a futex syscall.
struct TaskWaiter {
    task: Arc<Task>,
    /// The highest index woken, -1 while none.
    woken: AtomicI64,
}

impl Notify for TaskWaiter {
    fn claim(&self) -> bool {
        true
    }

    fn woken(&self, index: usize) {
        self.woken.fetch_max(index as i64, Ordering::Relaxed);
        sched::wake(&self.task);
    }
}

/// Sleeps on `entries` until one is woken (its index), a signal (-EINTR) or `deadline`
/// in monotonic ns (-ETIMEDOUT); Linux's futex_wait_multiple.
pub fn wait_multiple(entries: &[WaitEntry], deadline: Option<u64>) -> KResult<usize> {
    let me = sched::current();
    let waiter = Arc::new(TaskWaiter { task: Arc::clone(&me), woken: AtomicI64::new(-1) });
    let who: Arc<dyn Notify> = waiter.clone();
    let queued = setup(entries, &who)?;
    let mut timer = None;
    let result = loop {
        if waiter.woken.load(Ordering::Relaxed) >= 0 {
            break Ok(());
        }
        if me.signal_pending() {
            break Err(EINTR);
        }
        if deadline.is_some_and(|d| time::monotonic_ns() >= d) {
            break Err(ETIMEDOUT);
        }
        // io_uring work queued for this task runs here and the wait goes on (Linux:
        // TWA_SIGNAL task_work, then the futex syscall restarts).
        if me.task_work_pending() {
            crate::task::run_task_work(&me);
            continue;
        }
        if let (Some(d), None) = (deadline, timer) {
            timer = Some(time::wake_at(d, &me));
        }
        me.interruptible.store(true, Ordering::SeqCst);
        sched::block_unless(&me, || {
            waiter.woken.load(Ordering::SeqCst) >= 0
                || me.task_work_pending()
                || me.signal_pending()
                || deadline.is_some_and(|d| time::monotonic_ns() >= d)
        });
        me.interruptible.store(false, Ordering::Relaxed);
    };
    if let Some(t) = timer {
        time::cancel(t);
    }
    unqueue(&queued);
    // Woken, whatever else happened meanwhile.
    let woken = waiter.woken.load(Ordering::Relaxed);
    if woken >= 0 {
        return Ok(woken as usize);
    }
    result.map(|()| 0)
}

/// A futex2 timeout: absolute, on CLOCK_MONOTONIC or CLOCK_REALTIME (else -EINVAL), as a
/// monotonic deadline.
fn futex2_deadline(timeout: u64, clockid: u64) -> KResult<Option<u64>> {
    if timeout == 0 {
        return Ok(None);
    }
    if clockid != CLOCK_REALTIME && clockid != CLOCK_MONOTONIC {
        return Err(EINVAL);
    }
    let ns = super::time::read_timespec(timeout)?;
    Ok(Some(if clockid == CLOCK_REALTIME {
        time::monotonic_ns().saturating_add(ns.saturating_sub(time::realtime_ns()))
    } else {
        ns
    }))
}

/// `struct futex_waitv`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct FutexWaitv {
    pub val: u64,
    pub uaddr: u64,
    pub flags: u32,
    pub reserved: u32,
}
const _: () = assert!(core::mem::size_of::<FutexWaitv>() == 24);
// SAFETY: plain integers, any bit pattern is valid.
unsafe impl uaccess::Pod for FutexWaitv {}

/// Reads and checks a user array of `nr` futex_waitv (Linux's futex_parse_waitv):
/// -EFAULT, or -EINVAL for bad flags, a reserved field set or a value too wide.
pub fn parse_waitv(addr: u64, nr: u32) -> KResult<Vec<WaitEntry>> {
    let mut out = Vec::with_capacity(nr as usize);
    for i in 0..u64::from(nr) {
        let w: FutexWaitv = crate::task::read_user(addr.wrapping_add(i * 24))?;
        if w.flags & !FUTEX2_VALID_MASK != 0 || w.reserved != 0 {
            return Err(EINVAL);
        }
        check_flags2(w.flags, &[w.val])?;
        out.push(WaitEntry { uaddr: w.uaddr, flags: w.flags, val: w.val as u32, bitset: FUTEX_BITSET_MATCH_ANY });
    }
    Ok(out)
}

/// `futex_waitv(waiters, nr_futexes, flags, timeout, clockid)`.
pub fn futex_waitv(c: &mut Ctx) -> KResult<u64> {
    let [waiters, nr, flags, timeout, clockid, _] = c.a;
    let nr = nr as u32;
    if flags as u32 != 0 {
        return Err(EINVAL);
    }
    if nr == 0 || nr > FUTEX_WAITV_MAX || waiters == 0 {
        return Err(EINVAL);
    }
    let deadline = futex2_deadline(timeout, u64::from(clockid as u32))?;
    let entries = parse_waitv(waiters, nr)?;
    wait_multiple(&entries, deadline).map(|i| i as u64)
}

/// `futex_wake(uaddr, mask, nr, flags)`.
pub fn futex_wake(c: &mut Ctx) -> KResult<u64> {
    let [uaddr, mask, nr, flags, _, _] = c.a;
    let flags = flags as u32;
    check_flags2(flags, &[mask])?;
    wake(uaddr, flags, nr as i32, mask as u32).map(|n| n as u64)
}

/// `futex_wait(uaddr, val, mask, flags, timeout, clockid)`.
pub fn futex_wait(c: &mut Ctx) -> KResult<u64> {
    let [uaddr, val, mask, flags, timeout, clockid] = c.a;
    let flags = flags as u32;
    check_flags2(flags, &[val, mask])?;
    let deadline = futex2_deadline(timeout, u64::from(clockid as u32))?;
    if mask as u32 == 0 {
        return Err(EINVAL);
    }
    let entry = WaitEntry { uaddr, flags, val: val as u32, bitset: mask as u32 };
    wait_multiple(&[entry], deadline).map(|_| 0)
}

/// futex(2).
pub fn futex(c: &mut Ctx) -> KResult<u64> {
    let [uaddr, op, val, timeout, uaddr2, val3] = c.a;
    let cmd = op & !(FUTEX_PRIVATE_FLAG | FUTEX_CLOCK_REALTIME);
    if op & FUTEX_CLOCK_REALTIME != 0 && cmd != FUTEX_WAIT_BITSET {
        return Err(ENOSYS);
    }
    let flags = FUTEX2_SIZE_U32 | if op & FUTEX_PRIVATE_FLAG != 0 { FUTEX2_PRIVATE } else { 0 };
    match cmd {
        FUTEX_WAIT | FUTEX_WAIT_BITSET => {
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
            let bitset = if cmd == FUTEX_WAIT { FUTEX_BITSET_MATCH_ANY } else { val3 as u32 };
            if bitset == 0 {
                return Err(EINVAL);
            }
            let entry = WaitEntry { uaddr, flags, val: val as u32, bitset };
            wait_multiple(&[entry], deadline).map(|_| 0)
        }
        FUTEX_WAKE | FUTEX_WAKE_BITSET => {
            let bitset = if cmd == FUTEX_WAKE { FUTEX_BITSET_MATCH_ANY } else { val3 as u32 };
            if bitset == 0 {
                return Err(EINVAL);
            }
            Ok(wake_key(key(uaddr, flags)?, val as i32, bitset) as u64)
        }
        FUTEX_REQUEUE | FUTEX_CMP_REQUEUE => {
            let (k1, k2) = (key(uaddr, flags)?, key(uaddr2, flags)?);
            if cmd == FUTEX_CMP_REQUEUE && read_word(uaddr)? != val3 as u32 {
                return Err(EAGAIN);
            }
            let woken = wake_key(k1, val as i32, FUTEX_BITSET_MATCH_ANY);
            let mut map = WAITERS.lock();
            let moved: Vec<Waiter> = match map.get_mut(&k1) {
                Some(list) => {
                    let n = (timeout as u32 as usize).min(list.len());
                    list.drain(..n).collect()
                }
                None => Vec::new(),
            };
            let count = moved.len();
            if count > 0 {
                map.entry(k2).or_default().extend(moved);
            }
            map.retain(|_, l| !l.is_empty());
            Ok((woken + count) as u64)
        }
        _ => Err(ENOSYS),
    }
}
