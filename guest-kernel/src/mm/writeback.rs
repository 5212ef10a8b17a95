//! The flusher (Linux's fs/fs-writeback.c and the wb workers, simply): a kernel thread
//! that writes dirty page-cache pages back to their file systems
//! - when dirty data has waited `dirty_expire_centisecs` (checked every
//!   `dirty_writeback_centisecs`: both in `/proc/sys/vm`, 30 s and 5 s by default, as on
//!   Linux; Linux ages each inode, here the oldest dirty data anywhere starts a pass over
//!   all of it);
//! - at once when memory runs out: a task whose allocation failed in a context that may
//!   sleep (a page fault, a page-cache fill) waits for a pass ([`reclaim_wait`]), after
//!   which the shrinker can give the pages back.
//!
//! fsync, sync, syncfs, the last close, umount and writers past the dirty limits still
//! write back by themselves. Only ext2 keeps dirty pages (9p and the disks write through).

use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use crate::task::wait::WaitQueue;
use crate::time;

/// `/proc/sys/vm/dirty_expire_centisecs`.
pub static EXPIRE_CS: AtomicU64 = AtomicU64::new(3000);
/// `/proc/sys/vm/dirty_writeback_centisecs` (0: no periodic writeback).
pub static INTERVAL_CS: AtomicU64 = AtomicU64::new(500);

/// When the oldest dirty data not yet written back was dirtied (monotonic ns; 0: none).
static DIRTY_SINCE: AtomicU64 = AtomicU64::new(0);
/// Passes asked for by tasks out of memory, and how many of those requests the passes
/// made so far served (a pass serves the requests made before it began).
static ASKED: AtomicU64 = AtomicU64::new(0);
static SERVED: AtomicU64 = AtomicU64::new(0);
/// The flusher's task id (0: not started).
static FLUSHER: AtomicU32 = AtomicU32::new(0);
/// Bumped when root changes the timing: the flusher's wait starts over with it.
static SETTINGS: AtomicU64 = AtomicU64::new(0);
/// The queues the flusher sleeps on and announces its passes on.
static WAKE: WaitQueue = WaitQueue::new();
static DONE: WaitQueue = WaitQueue::new();

/// A page became dirty (or writable through a mapping): starts its age if nothing older
/// is waiting, and then wakes the flusher, which sleeps without a timer while nothing is
/// dirty. Task context.
pub fn dirtied() {
    if DIRTY_SINCE.compare_exchange(0, time::monotonic_ns().max(1), Ordering::Relaxed, Ordering::Relaxed).is_ok() {
        WAKE.wake_all();
    }
}

/// `/proc/sys/vm` changed the timing: the flusher waits by the new one from now.
pub fn timing_changed() {
    SETTINGS.fetch_add(1, Ordering::Relaxed);
    WAKE.wake_all();
}

/// Starts the flusher (at boot, once init runs).
pub fn start() {
    if FLUSHER.load(Ordering::Relaxed) != 0 {
        return;
    }
    match crate::task::spawn_kernel_thread(flusher, 0) {
        Ok(tid) => {
            if FLUSHER.compare_exchange(0, tid, Ordering::Relaxed, Ordering::Relaxed).is_err() {
                log::warn!("writeback: a second flusher started");
            }
        }
        Err(e) => log::warn!("writeback: no flusher thread: {e:?}"),
    }
}

extern "C" fn flusher(_: usize) {
    loop {
        let asked = || ASKED.load(Ordering::Relaxed) > SERVED.load(Ordering::Relaxed);
        // Nothing dirty: no timer until something is.
        let _ = WAKE.wait_until(None, || asked() || DIRTY_SINCE.load(Ordering::Relaxed) != 0);
        let interval = INTERVAL_CS.load(Ordering::Relaxed).saturating_mul(10_000_000);
        let deadline = (interval != 0).then(|| time::monotonic_ns().saturating_add(interval));
        let settings = SETTINGS.load(Ordering::Relaxed);
        let _ = WAKE.wait_until(deadline, || asked() || SETTINGS.load(Ordering::Relaxed) != settings);
        let asked = ASKED.load(Ordering::Relaxed);
        let pressure = asked > SERVED.load(Ordering::Relaxed);
        let since = DIRTY_SINCE.load(Ordering::Relaxed);
        let expire = EXPIRE_CS.load(Ordering::Relaxed).saturating_mul(10_000_000);
        let expired = since != 0 && time::monotonic_ns().saturating_sub(since) >= expire;
        if pressure || expired {
            // Data dirtied from here on starts its own age.
            DIRTY_SINCE.store(0, Ordering::Relaxed);
            crate::fs::ext2::write_back_all();
            if super::filemap::dirty_pages() > 0 {
                dirtied(); // left dirty (a failed write): tried again when it expires
            }
        }
        SERVED.store(asked, Ordering::Relaxed);
        DONE.wake_all();
    }
}

/// Memory ran out in a context that may sleep: if any page is dirty, has the flusher
/// write everything back and waits for it (the pages are then clean, and the shrinker
/// can give them back). False when there is nothing to wait for (no dirty page, no
/// flusher, or this is the flusher).
pub fn reclaim_wait() -> bool {
    let flusher = FLUSHER.load(Ordering::Relaxed);
    let me = crate::task::sched::try_current().map(|t| t.tid);
    // (Pages a writable mapping may have changed count as dirty: `DIRTY_SINCE`.)
    let dirty = super::filemap::dirty_pages() > 0 || DIRTY_SINCE.load(Ordering::Relaxed) != 0;
    if flusher == 0 || me.is_none_or(|tid| tid == flusher) || !dirty {
        return false;
    }
    let ticket = ASKED.fetch_add(1, Ordering::Relaxed) + 1;
    WAKE.wake_all();
    DONE.wait_uninterruptible(|| SERVED.load(Ordering::Relaxed) >= ticket);
    true
}
