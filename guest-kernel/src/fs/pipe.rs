//! Pipes: a 64 KiB ring buffer between a read end and a write end, with wait queues for
//! blocked readers and writers. Writes of up to `PIPE_BUF` bytes are atomic. A pipe made
//! with O_DIRECT is in packet mode (Linux's): each write is a packet of at most PIPE_BUF
//! bytes, and a read takes at most one packet (a packet larger than the read loses the
//! rest).

use alloc::collections::VecDeque;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::any::Any;

use super::{alloc_ino, FileType, IoBuf, Node, OpenFile, Stat};
use alloc::string::String;
use crate::errno::*;
use crate::sync::SpinLock;
use crate::task::wait::{WaitError, WaitQueue};
use crate::task::{self, signal};

const CAPACITY: usize = 64 * 1024;
const PIPE_BUF: usize = 4096;

struct Ring {
    data: Vec<u8>,
    head: usize,
    len: usize,
    readers: usize,
    writers: usize,
    /// Packet mode: the sizes of the packets in the buffer, oldest first.
    packets: Option<VecDeque<usize>>,
}

pub struct Pipe {
    ino: u64,
    ring: SpinLock<Ring>,
    readable: WaitQueue,
    writable: WaitQueue,
}

pub struct PipeEnd {
    pipe: Arc<Pipe>,
    write_end: bool,
}

/// A new pipe: (read end, write end); `packet`: packet mode (pipe2's O_DIRECT).
pub fn new(packet: bool) -> (Arc<dyn Node>, Arc<dyn Node>) {
    let packets = packet.then(VecDeque::new);
    let pipe = Arc::new(Pipe {
        ino: alloc_ino(),
        ring: SpinLock::new(Ring { data: alloc::vec![0; CAPACITY], head: 0, len: 0, readers: 1, writers: 1, packets }),
        readable: WaitQueue::new(),
        writable: WaitQueue::new(),
    });
    (Arc::new(PipeEnd { pipe: Arc::clone(&pipe), write_end: false }), Arc::new(PipeEnd { pipe, write_end: true }))
}

/// A new pipe's two open files, read end first, with pipe2's `flags` (O_NONBLOCK on
/// both; O_DIRECT, packet mode, shows on the write end only, as Linux's
/// create_pipe_files).
pub fn open_pair(flags: u32) -> [Arc<OpenFile>; 2] {
    use super::file::{O_DIRECT, O_NONBLOCK, O_RDONLY, O_WRONLY};
    let (r, w) = new(flags & O_DIRECT != 0);
    [
        OpenFile::new(r, O_RDONLY | (flags & O_NONBLOCK), String::from("pipe:")),
        OpenFile::new(w, O_WRONLY | (flags & (O_NONBLOCK | O_DIRECT)), String::from("pipe:")),
    ]
}

fn wait_error(e: WaitError) -> Errno {
    match e {
        WaitError::Interrupted => EINTR,
        WaitError::TimedOut => EAGAIN,
    }
}

impl PipeEnd {
    /// Whether `other` is an end of the same pipe.
    pub fn same_pipe(&self, other: &PipeEnd) -> bool {
        Arc::ptr_eq(&self.pipe, &other.pipe)
    }

    /// Free room for a write end, waiting (unless `nonblock`) while there is none and a
    /// reader remains (splice into a pipe takes no more than fits).
    pub fn wait_room(&self, nonblock: bool) -> KResult<usize> {
        let p = &self.pipe;
        let room = || {
            let r = p.ring.lock();
            if r.readers == 0 { usize::MAX } else { CAPACITY - r.len }
        };
        if room() == 0 {
            if nonblock {
                return Err(EAGAIN);
            }
            p.writable.wait_until(None, || room() > 0).map_err(wait_error)?;
        }
        match room() {
            usize::MAX => Err(EPIPE),
            n => Ok(n),
        }
    }

    /// Copies up to `buf.len()` bytes from a read end without consuming them (tee),
    /// waiting (unless `nonblock`) for data; 0 when empty with no writer left.
    pub fn peek(&self, buf: &mut [u8], nonblock: bool) -> KResult<usize> {
        let p = &self.pipe;
        let ready = || {
            let r = p.ring.lock();
            r.len > 0 || r.writers == 0
        };
        if !ready() {
            if nonblock {
                return Err(EAGAIN);
            }
            p.readable.wait_until(None, ready).map_err(wait_error)?;
        }
        let r = p.ring.lock();
        let n = r.len.min(buf.len());
        let first = n.min(CAPACITY - r.head);
        buf[..first].copy_from_slice(&r.data[r.head..r.head + first]);
        buf[first..n].copy_from_slice(&r.data[..n - first]);
        Ok(n)
    }
}

impl Node for PipeEnd {
    fn stat(&self) -> Stat {
        Stat { ino: self.pipe.ino, mode: FileType::Fifo.mode_bits() | 0o600, nlink: 1, ..Stat::default() }
    }

    fn seekable(&self) -> bool {
        false
    }

    fn read(&self, _offset: u64, buf: &mut IoBuf, nonblock: bool) -> KResult<usize> {
        if self.write_end {
            return Err(EBADF);
        }
        if buf.len() == 0 {
            return Ok(0);
        }
        let p = &self.pipe;
        let ready = || {
            let r = p.ring.lock();
            r.len > 0 || r.writers == 0
        };
        let mut prefaulted = false;
        let n = loop {
            if nonblock {
                if !ready() {
                    return Err(EAGAIN);
                }
            } else {
                p.readable.wait_until(None, ready).map_err(wait_error)?;
            }
            let mut r = p.ring.lock();
            // Packet mode: one packet at most; what the buffer cannot take is dropped.
            let packet = r.packets.as_ref().and_then(|q| q.front().copied());
            let n = r.len.min(buf.len()).min(packet.unwrap_or(usize::MAX));
            let first = n.min(CAPACITY - r.head);
            let copied = buf.put(0, &r.data[r.head..r.head + first]).and_then(|()| buf.put(first, &r.data[..n - first]));
            match copied {
                // A page of the buffer must be read in (a mapped file's), which cannot
                // happen under the lock: once, bring the buffer in and try again (from
                // the wait: another reader may have emptied the pipe meanwhile).
                Err(EFAULT) if !prefaulted => {
                    drop(r);
                    // (No read takes more than the pipe holds.)
                    if let Some(part) = buf.window(0, CAPACITY) {
                        part.prefault(true);
                    }
                    prefaulted = true;
                    continue;
                }
                Err(e) => return Err(e),
                Ok(()) => {}
            }
            if let Some(packets) = r.packets.as_mut() {
                packets.pop_front();
            }
            let consumed = packet.map_or(n, |size| size.min(r.len));
            r.head = (r.head + consumed) % CAPACITY;
            r.len -= consumed;
            break n;
        };
        p.writable.wake_all();
        Ok(n)
    }

    fn write(&self, _offset: u64, buf: &IoBuf, nonblock: bool) -> KResult<usize> {
        if !self.write_end {
            return Err(EBADF);
        }
        let p = &self.pipe;
        let total = buf.len();
        let mut done = 0;
        let mut prefaulted = false;
        while done < total {
            let want = if total - done <= PIPE_BUF { total - done } else { 1 };
            let ready = || {
                let r = p.ring.lock();
                r.readers == 0 || CAPACITY - r.len >= want
            };
            if !ready() {
                if nonblock {
                    return if done > 0 { Ok(done) } else { Err(EAGAIN) };
                }
                if let Err(e) = p.writable.wait_until(None, ready) {
                    return if done > 0 { Ok(done) } else { Err(wait_error(e)) };
                }
            }
            let mut r = p.ring.lock();
            if r.readers == 0 {
                drop(r);
                // SIGPIPE goes to the writer: the caller of write(2). An io_uring write
                // (a buffer of a given address space) may be retried from whichever task
                // woke the pipe; it gets EPIPE only.
                if matches!(buf, IoBuf::User { .. }) {
                    signal::send(&task::current_process(), signal::SIGPIPE);
                }
                return if done > 0 { Ok(done) } else { Err(EPIPE) };
            }
            let n = (CAPACITY - r.len).min(total - done);
            let tail = (r.head + r.len) % CAPACITY;
            let first = n.min(CAPACITY - tail);
            let ring = &mut *r;
            let (low, high) = ring.data.split_at_mut(tail);
            match buf.get(done, &mut high[..first]).and_then(|()| buf.get(done + first, &mut low[..n - first])) {
                // As in `read`: bring the buffer in unlocked, once, and copy again.
                Err(EFAULT) if !prefaulted => {
                    drop(r);
                    // The part this round can take (the pipe holds no more).
                    if let Some(part) = buf.window(done, CAPACITY) {
                        part.prefault(false);
                    }
                    prefaulted = true;
                    continue;
                }
                Err(e) => return if done > 0 { Ok(done) } else { Err(e) },
                Ok(()) => {}
            }
            r.len += n;
            if let Some(packets) = r.packets.as_mut() {
                let mut left = n;
                while left > 0 {
                    packets.push_back(left.min(PIPE_BUF));
                    left -= left.min(PIPE_BUF);
                }
            }
            done += n;
            prefaulted = false; // the next round may bring its part in again
            drop(r);
            p.readable.wake_all();
        }
        Ok(done)
    }

    fn poll_queue(&self, write: bool) -> Option<&WaitQueue> {
        Some(if write { &self.pipe.writable } else { &self.pipe.readable })
    }

    fn poll_mask(&self) -> u32 {
        use super::{POLLERR, POLLHUP, POLLIN, POLLOUT, POLLRDNORM, POLLWRNORM};
        let r = self.pipe.ring.lock();
        if self.write_end {
            let mut m = if CAPACITY - r.len >= PIPE_BUF { POLLOUT | POLLWRNORM } else { 0 };
            if r.readers == 0 {
                m |= POLLERR;
            }
            m
        } else {
            let mut m = if r.len > 0 { POLLIN | POLLRDNORM } else { 0 };
            if r.writers == 0 {
                m |= POLLHUP;
            }
            m
        }
    }

    fn ioctl(&self, _file: &super::OpenFile, cmd: u64, arg: u64) -> KResult<u64> {
        const FIONREAD: u64 = 0x541b;
        if cmd != FIONREAD {
            return Err(ENOTTY);
        }
        let n = self.pipe.ring.lock().len as i32;
        task::write_user(arg, &n).map(|()| 0)
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

impl Drop for PipeEnd {
    fn drop(&mut self) {
        let mut r = self.pipe.ring.lock();
        if self.write_end {
            r.writers -= 1;
        } else {
            r.readers -= 1;
        }
        drop(r);
        self.pipe.readable.wake_all();
        self.pipe.writable.wake_all();
    }
}
