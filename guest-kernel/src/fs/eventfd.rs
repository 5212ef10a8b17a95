//! eventfd: a 64-bit counter that `write` adds to and `read` takes (all of it, or one in
//! semaphore mode), blocking while it is zero (or would overflow).

use alloc::sync::Arc;
use core::any::Any;

use super::{alloc_ino, FileType, IoBuf, Node, Stat};
use crate::errno::*;
use crate::sync::SpinLock;
use crate::task::wait::WaitQueue;

pub const EFD_SEMAPHORE: u32 = 1;
const MAX: u64 = u64::MAX - 1;

pub struct EventFd {
    ino: u64,
    count: SpinLock<u64>,
    semaphore: bool,
    readable: WaitQueue,
    writable: WaitQueue,
}

pub fn new(initial: u32, semaphore: bool) -> Arc<EventFd> {
    Arc::new(EventFd {
        ino: alloc_ino(),
        count: SpinLock::new(u64::from(initial)),
        semaphore,
        readable: WaitQueue::new(),
        writable: WaitQueue::new(),
    })
}

impl EventFd {
    /// Adds `n` without blocking (io_uring's completion notifications); saturates.
    pub fn signal(&self, n: u64) {
        let mut c = self.count.lock();
        *c = c.saturating_add(n).min(MAX);
        drop(c);
        self.readable.wake_all();
    }
}

impl Node for EventFd {
    fn stat(&self) -> Stat {
        Stat { ino: self.ino, mode: FileType::Regular.mode_bits() | 0o600, nlink: 1, ..Stat::default() }
    }

    fn seekable(&self) -> bool {
        false
    }

    fn read(&self, _offset: u64, buf: &mut IoBuf, nonblock: bool) -> KResult<usize> {
        if buf.len() < 8 {
            return Err(EINVAL);
        }
        super::wait_ready(&self.readable, nonblock, || *self.count.lock() > 0)?;
        let value = {
            let mut c = self.count.lock();
            let v = if self.semaphore { 1 } else { *c };
            *c -= v;
            v
        };
        buf.put(0, &value.to_le_bytes())?;
        self.writable.wake_all();
        Ok(8)
    }

    fn write(&self, _offset: u64, buf: &IoBuf, nonblock: bool) -> KResult<usize> {
        if buf.len() < 8 {
            return Err(EINVAL);
        }
        let mut bytes = [0u8; 8];
        buf.get(0, &mut bytes)?;
        let value = u64::from_le_bytes(bytes);
        if value == u64::MAX {
            return Err(EINVAL);
        }
        super::wait_ready(&self.writable, nonblock, || MAX - *self.count.lock() >= value)?;
        *self.count.lock() += value;
        self.readable.wake_all();
        Ok(8)
    }

    fn poll_queue(&self, write: bool) -> Option<&WaitQueue> {
        Some(if write { &self.writable } else { &self.readable })
    }

    fn poll_mask(&self) -> u32 {
        use super::{POLLIN, POLLOUT, POLLRDNORM, POLLWRNORM};
        let c = *self.count.lock();
        (if c > 0 { POLLIN | POLLRDNORM } else { 0 }) | (if c < MAX { POLLOUT | POLLWRNORM } else { 0 })
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}
