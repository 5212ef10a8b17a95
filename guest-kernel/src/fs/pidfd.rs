//! pidfd: a file that names a process (pidfd_open, clone's CLONE_PIDFD). It becomes
//! readable (POLLIN) when the process has exited, and pidfd_send_signal and waitid's
//! P_PIDFD act on the process it names, whatever pid numbers are reused meanwhile.

use alloc::sync::Arc;
use core::any::Any;

use super::{alloc_ino, FileType, IoBuf, Node, Stat, POLLIN, POLLRDNORM};
use crate::errno::*;
use crate::task::wait::WaitQueue;
use crate::task::Process;

pub struct PidFd {
    ino: u64,
    pub process: Arc<Process>,
}

pub fn new(process: Arc<Process>) -> Arc<PidFd> {
    Arc::new(PidFd { ino: alloc_ino(), process })
}

/// The process behind a pidfd (None: the file is not one).
pub fn process_of(file: &super::OpenFile) -> Option<Arc<Process>> {
    file.node.as_any().downcast_ref::<PidFd>().map(|p| Arc::clone(&p.process))
}

impl Node for PidFd {
    fn stat(&self) -> Stat {
        Stat { ino: self.ino, mode: FileType::Regular.mode_bits() | 0o600, nlink: 1, ..Stat::default() }
    }

    fn seekable(&self) -> bool {
        false
    }

    fn read(&self, _offset: u64, _buf: &mut IoBuf, _nonblock: bool) -> KResult<usize> {
        Err(EINVAL)
    }

    fn write(&self, _offset: u64, _buf: &IoBuf, _nonblock: bool) -> KResult<usize> {
        Err(EINVAL)
    }

    fn poll_queue(&self, write: bool) -> Option<&WaitQueue> {
        (!write).then_some(&self.process.attrs.exited)
    }

    fn poll_mask(&self) -> u32 {
        if self.process.zombie.lock().is_some() { POLLIN | POLLRDNORM } else { 0 }
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}
