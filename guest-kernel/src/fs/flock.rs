//! flock(2): advisory whole-file locks, shared or exclusive, held by an open file
//! description (so shared by dup'ed and inherited descriptors) on the file's node, and
//! let go by LOCK_UN or when the description is closed for the last time. A conflicting
//! request waits (interruptibly) unless LOCK_NB (EWOULDBLOCK). Converting a lock is not
//! atomic, as on Linux: the old one is let go first.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use super::OpenFile;
use crate::errno::*;
use crate::sync::SpinLock;
use crate::task::wait::{WaitError, WaitQueue};

pub const LOCK_SH: u32 = 1;
pub const LOCK_EX: u32 = 2;
pub const LOCK_NB: u32 = 4;
pub const LOCK_UN: u32 = 8;

/// Holders of one node's lock: open file descriptions, by address.
#[derive(Default)]
struct Holders {
    exclusive: Option<usize>,
    shared: Vec<usize>,
}

/// Locks by node address (a node with a lock is alive: its holders hold it open).
static LOCKS: SpinLock<BTreeMap<usize, Holders>> = SpinLock::new(BTreeMap::new());
/// Woken whenever a lock is let go.
static RELEASED: WaitQueue = WaitQueue::new();

fn keys(file: &OpenFile) -> (usize, usize) {
    (alloc::sync::Arc::as_ptr(&file.node).cast::<u8>() as usize, core::ptr::from_ref(file) as usize)
}

/// Lets go whatever lock `ofd` holds on `node`; whether it held one.
fn unlock(node: usize, ofd: usize) -> bool {
    let mut locks = LOCKS.lock();
    let Some(h) = locks.get_mut(&node) else { return false };
    let held = h.exclusive == Some(ofd) || h.shared.contains(&ofd);
    if h.exclusive == Some(ofd) {
        h.exclusive = None;
    }
    h.shared.retain(|&o| o != ofd);
    if h.exclusive.is_none() && h.shared.is_empty() {
        locks.remove(&node);
    }
    held
}

/// flock on `file` with `op` (LOCK_SH, LOCK_EX or LOCK_UN, optionally | LOCK_NB).
pub fn flock(file: &OpenFile, op: u32) -> KResult<()> {
    let (node, ofd) = keys(file);
    let kind = op & !LOCK_NB;
    if !matches!(kind, LOCK_SH | LOCK_EX | LOCK_UN) {
        return Err(EINVAL);
    }
    if unlock(node, ofd) {
        RELEASED.wake_all();
    }
    if kind == LOCK_UN {
        return Ok(());
    }
    let try_take = || {
        let mut locks = LOCKS.lock();
        let h = locks.entry(node).or_default();
        match kind {
            LOCK_EX if h.exclusive.is_none() && h.shared.is_empty() => h.exclusive = Some(ofd),
            LOCK_SH if h.exclusive.is_none() => h.shared.push(ofd),
            _ => {
                if h.exclusive.is_none() && h.shared.is_empty() {
                    locks.remove(&node);
                }
                return false;
            }
        }
        true
    };
    if op & LOCK_NB != 0 {
        return if try_take() { Ok(()) } else { Err(EAGAIN) }; // EWOULDBLOCK
    }
    RELEASED.wait_until(None, try_take).map_err(|e| if e == WaitError::Interrupted { EINTR } else { EAGAIN })
}

/// The open file description `file` is going away: its lock goes with it.
pub fn release(file: &OpenFile) {
    let (node, ofd) = keys(file);
    if unlock(node, ofd) {
        RELEASED.wake_all();
    }
}
