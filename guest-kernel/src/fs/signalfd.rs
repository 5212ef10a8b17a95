//! signalfd: a file whose `read` takes the reader's pending signals of its mask and
//! returns each as a 128-byte `struct signalfd_siginfo` (Linux's fs/signalfd.c). The
//! signals are those of whoever reads or polls it (the calling thread's, then its
//! process's), so a signalfd inherited by fork reads the child's. It is readable while
//! one of them is pending; every queued signal wakes its waiters
//! (`signal::SIGNALFD_WAIT`).

use alloc::sync::Arc;
use core::any::Any;
use core::sync::atomic::{AtomicU64, Ordering};

use super::{alloc_ino, FileType, IoBuf, Node, Stat, POLLIN, POLLRDNORM};
use crate::errno::*;
use crate::task::signal::{self, SIGNALFD_WAIT};
use crate::task::sched;
use crate::task::wait::{WaitError, WaitQueue};

/// Size of `struct signalfd_siginfo`.
pub const SIGINFO_SIZE: usize = 128;

pub struct SignalFd {
    ino: u64,
    /// The signals it reads (never SIGKILL or SIGSTOP).
    mask: AtomicU64,
}

pub fn new(mask: u64) -> Arc<SignalFd> {
    signal::SIGNALFDS.fetch_add(1, Ordering::Relaxed);
    Arc::new(SignalFd { ino: alloc_ino(), mask: AtomicU64::new(mask & !signal::UNBLOCKABLE) })
}

impl Drop for SignalFd {
    fn drop(&mut self) {
        signal::SIGNALFDS.fetch_sub(1, Ordering::Relaxed);
    }
}

impl SignalFd {
    /// signalfd4 on an existing signalfd: a new mask; waiters look again.
    pub fn set_mask(&self, mask: u64) {
        self.mask.store(mask & !signal::UNBLOCKABLE, Ordering::Relaxed);
        SIGNALFD_WAIT.wake_all();
    }

    fn mask(&self) -> u64 {
        self.mask.load(Ordering::Relaxed)
    }
}

impl Node for SignalFd {
    fn stat(&self) -> Stat {
        Stat { ino: self.ino, mode: FileType::Regular.mode_bits() | 0o600, nlink: 1, ..Stat::default() }
    }

    fn seekable(&self) -> bool {
        false
    }

    /// As many signals as fit, at least one: only the first read may block.
    fn read(&self, _offset: u64, buf: &mut IoBuf, nonblock: bool) -> KResult<usize> {
        if buf.len() < SIGINFO_SIZE {
            return Err(EINVAL);
        }
        let me = sched::current();
        let mut n = 0;
        while n + SIGINFO_SIZE <= buf.len() {
            let Some(info) = signal::dequeue(&me, self.mask()) else {
                if n > 0 {
                    break;
                }
                if nonblock {
                    return Err(EAGAIN);
                }
                SIGNALFD_WAIT
                    .wait_until(None, || signal::pending_for(&me) & self.mask() != 0)
                    .map_err(|e| if e == WaitError::Interrupted { EINTR } else { EAGAIN })?;
                continue;
            };
            buf.put(n, &info.to_signalfd())?;
            n += SIGINFO_SIZE;
        }
        Ok(n)
    }

    fn write(&self, _offset: u64, _buf: &IoBuf, _nonblock: bool) -> KResult<usize> {
        Err(EINVAL)
    }

    fn poll_queue(&self, write: bool) -> Option<&WaitQueue> {
        (!write).then_some(&SIGNALFD_WAIT)
    }

    fn poll_mask(&self) -> u32 {
        let Some(me) = sched::try_current() else { return 0 };
        if signal::pending_for(&me) & self.mask() != 0 { POLLIN | POLLRDNORM } else { 0 }
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}
