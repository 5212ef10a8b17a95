//! Provided buffers (Linux's io_uring/kbuf.c). A READ or READV with IOSQE_BUFFER_SELECT
//! names a group instead of a buffer: the kernel picks one when the read happens, and the
//! CQE says which (IORING_CQE_F_BUFFER, the id in the upper 16 bits of `flags`).
//! Groups come in two kinds:
//! - classic: IORING_OP_PROVIDE_BUFFERS hands the ring `nbufs` buffers of `len` bytes
//!   from `addr` (ids from `bid`), REMOVE_BUFFERS takes some back; a read waiting for a
//!   pipe keeps the buffer it took;
//! - ring-mapped (IORING_REGISTER_PBUF_RING): a ring of `struct io_uring_buf` in user
//!   memory (pinned) or kernel memory the program maps (IOU_PBUF_RING_MMAP); the program
//!   adds buffers and publishes the tail, the kernel consumes from its own head. A buffer
//!   is consumed when the read takes data; a read that has to wait leaves it in the ring.

use alloc::boxed::Box;
use alloc::collections::{BTreeMap, VecDeque};
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU16, Ordering};

use super::uapi::Sqe;
use super::{IoUring, Issued, Op, Request};
use crate::errno::*;
use crate::mm::user::SharedPages;
use crate::mm::{frame_ptr, PAGE_SIZE};

pub const IORING_OP_PROVIDE_BUFFERS: u8 = 31;
pub const IORING_CQE_F_BUFFER: u32 = 1 << 0;
pub const IORING_CQE_BUFFER_SHIFT: u32 = 16;
/// Most buffers one PROVIDE_BUFFERS may name (ids are 16 bits).
const MAX_BIDS_PER_BGID: u64 = 1 << 16;
/// Most buffers a group holds (Linux counts them in a u16).
const MAX_GROUP_BUFFERS: usize = u16::MAX as usize;

/// One provided buffer.
#[derive(Clone, Copy)]
pub struct Buf {
    pub addr: u64,
    pub len: u32,
    pub bid: u16,
}

/// A ring-mapped buffer group.
pub struct BufRing {
    /// The ring's frames, one per page (pinned user pages, or `shared`'s).
    frames: Vec<u64>,
    /// IOU_PBUF_RING_MMAP: the kernel's pages, which the program maps.
    pub shared: Option<Arc<SharedPages>>,
    entries: u32,
    /// The kernel's head (free-running u16, as the tail).
    head: u16,
    /// IOU_PBUF_RING_INC: buffers are consumed a part at a time.
    inc: bool,
}

impl Drop for BufRing {
    fn drop(&mut self) {
        if self.shared.is_none() {
            for &f in &self.frames {
                crate::mm::frame::unpin(f);
            }
        }
    }
}

impl BufRing {
    /// Kernel pointer to byte `offset` of the ring (16-byte entries never straddle pages).
    fn at(&self, offset: usize) -> *mut u8 {
        frame_ptr(self.frames[offset / PAGE_SIZE as usize]).wrapping_add(offset % PAGE_SIZE as usize)
    }

    /// The tail the program published (in the first entry's last two bytes). Acquire
    /// pairs with the program's release store of the tail after it filled the entries.
    fn tail(&self) -> u16 {
        // SAFETY: offset 14 of the ring's first page, 2-aligned; the program races with
        // us only through this atomic.
        unsafe { &*self.at(14).cast::<AtomicU16>() }.load(Ordering::Acquire)
    }

    /// Byte offset of the head's entry.
    fn head_slot(&self) -> usize {
        (u32::from(self.head) & (self.entries - 1)) as usize * 16
    }

    /// Consumes `used` bytes of the head's buffer: all of it moves the head on; with
    /// IOU_PBUF_RING_INC a part of it rewrites the entry (address forward, length down)
    /// and keeps the head there. Returns whether part of the buffer is left
    /// (IORING_CQE_F_BUF_MORE).
    fn consume(&mut self, used: u32) -> bool {
        if self.inc
            && let Some(buf) = self.peek()
        {
            let used = used.min(buf.len);
            let p = self.at(self.head_slot());
            // SAFETY: the head's entry inside the ring's frames; with INC the kernel owns
            // its address and length until the head moves past it (Linux's contract).
            unsafe {
                p.cast::<u64>().write_volatile(buf.addr + u64::from(used));
                p.add(8).cast::<u32>().write_volatile(buf.len - used);
            }
            if used < buf.len {
                return true;
            }
        }
        self.head = self.head.wrapping_add(1);
        false
    }

    /// The entry at the head, if the ring is not empty.
    fn peek(&self) -> Option<Buf> {
        (self.tail() != self.head).then(|| self.entry(0))
    }

    /// The entry `i` places past the head (the caller knows it is published).
    fn entry(&self, i: u16) -> Buf {
        let slot = (u32::from(self.head.wrapping_add(i)) & (self.entries - 1)) as usize * 16;
        // SAFETY: an entry inside the ring's frames; a plain copy of integers the program
        // may be writing (a torn value is its own error, never ours).
        let (addr, len, bid) = unsafe {
            let p = self.at(slot);
            (p.cast::<u64>().read_volatile(), p.add(8).cast::<u32>().read_volatile(), p.add(12).cast::<u16>().read_volatile())
        };
        Buf { addr, len, bid }
    }

    /// A bundle's buffers from the head (see [`Groups::select_bundle`]).
    fn peek_bundle(&self, max: Option<u32>) -> KResult<(Vec<Buf>, bool)> {
        let avail = self.tail().wrapping_sub(self.head);
        if avail == 0 {
            return Err(ENOBUFS);
        }
        let limit = if max.is_some() { avail.min(BUNDLE_MAX) } else { 1 };
        let mut left = max.unwrap_or(u32::MAX);
        let mut out = Vec::new();
        for i in 0..limit {
            let buf = self.entry(i);
            if i == 0 && buf.len == 0 {
                return Err(ENOBUFS);
            }
            if buf.len > left {
                // Cut to fit: the first buffer, or any of an incremental ring.
                if i == 0 || self.inc {
                    out.push(Buf { len: left, ..buf });
                }
                break;
            }
            out.push(buf);
            left -= buf.len;
            if left == 0 {
                break;
            }
        }
        let empty = out.len() == usize::from(avail);
        Ok((out, empty))
    }
}

/// Most buffers one bundle pass takes (Linux's PEEK_MAX_IMPORT).
const BUNDLE_MAX: u16 = 256;

/// One group of provided buffers.
pub enum Group {
    Classic(VecDeque<Buf>),
    Ring(BufRing),
}

/// The ring's buffer groups by id.
#[derive(Default)]
pub struct Groups(BTreeMap<u16, Group>);

impl Groups {
    /// Takes the next buffer of group `bgid` (ENOBUFS if there is none). From a ring it
    /// is consumed by [`commit`](Self::commit), once the read took data.
    pub fn select(&mut self, bgid: u16) -> KResult<Buf> {
        match self.0.get_mut(&bgid) {
            Some(Group::Classic(list)) => list.pop_front().ok_or(ENOBUFS),
            Some(Group::Ring(ring)) => ring.peek().ok_or(ENOBUFS),
            None => Err(ENOBUFS),
        }
    }

    /// Whether group `bgid` is ring-mapped.
    pub fn is_ring(&self, bgid: u16) -> bool {
        matches!(self.0.get(&bgid), Some(Group::Ring(_)))
    }

    /// `used` bytes of the head's ring-mapped buffer were taken (see
    /// [`BufRing::consume`]); true when part of it is left for the next read.
    pub fn commit(&mut self, bgid: u16, used: u32) -> bool {
        match self.0.get_mut(&bgid) {
            Some(Group::Ring(ring)) => ring.consume(used),
            _ => false,
        }
    }

    /// The buffers of one bundle pass (IORING_RECVSEND_BUNDLE; Linux's io_buffers_peek):
    /// from the head of group `bgid`, the ones `max` bytes fill whole, at most
    /// [`BUNDLE_MAX`] (when not even the first is filled: that one, cut to `max`); with
    /// `max` None, the head buffer alone. A classic group gives its first buffer, taken
    /// off its list, whole (the caller cuts it to `max`). Also says whether they are all the group had (Linux's
    /// REQ_F_BL_EMPTY). A ring's stay at its head until [`commit_bundle`](Self::commit_bundle).
    pub fn select_bundle(&mut self, bgid: u16, max: Option<u32>) -> KResult<(Vec<Buf>, bool)> {
        match self.0.get_mut(&bgid) {
            Some(Group::Classic(list)) => {
                let buf = list.pop_front().ok_or(ENOBUFS)?;
                Ok((alloc::vec![buf], list.is_empty()))
            }
            Some(Group::Ring(ring)) => ring.peek_bundle(max),
            None => Err(ENOBUFS),
        }
    }

    /// `used` bytes went into (or out of) bundle `bufs` of group `bgid`: a ring's head
    /// moves past each buffer they reach (with IOU_PBUF_RING_INC, past the bytes).
    /// Returns whether part of the last buffer reached is left (IORING_CQE_F_BUF_MORE).
    pub fn commit_bundle(&mut self, bgid: u16, bufs: &[Buf], used: usize) -> bool {
        let Some(Group::Ring(ring)) = self.0.get_mut(&bgid) else { return false };
        let mut left = used;
        for b in bufs {
            if left == 0 {
                break;
            }
            let take = left.min(b.len as usize);
            if ring.consume(take as u32) {
                return true;
            }
            left -= take;
        }
        false
    }

    /// Gives back a classic buffer a request did not use; it is the next one handed out.
    /// (A ring-mapped one was never taken off its ring.)
    pub fn recycle(&mut self, bgid: u16, buf: Buf) {
        if let Group::Classic(list) = self.0.entry(bgid).or_insert_with(|| Group::Classic(VecDeque::new())) {
            list.push_front(buf);
        }
    }

    /// The kernel pages of ring-mapped group `bgid` (IOU_PBUF_RING_MMAP), for mmap
    /// (ENOMEM when there are none, as Linux answers).
    pub fn mmap_pages(&self, bgid: u16) -> KResult<Arc<SharedPages>> {
        match self.0.get(&bgid) {
            Some(Group::Ring(BufRing { shared: Some(p), .. })) => Ok(Arc::clone(p)),
            _ => Err(ENOMEM),
        }
    }
}

/// `struct io_uring_buf_reg`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct BufReg {
    ring_addr: u64,
    ring_entries: u32,
    bgid: u16,
    flags: u16,
    resv: [u64; 3],
}
const _: () = assert!(size_of::<BufReg>() == 40);
// SAFETY: plain integers, every bit pattern valid.
unsafe impl crate::mm::uaccess::Pod for BufReg {}

const IOU_PBUF_RING_MMAP: u16 = 1;
const IOU_PBUF_RING_INC: u16 = 2;
/// CQE flag: the buffer named has room left and stays at the head (INC rings).
pub const IORING_CQE_F_BUF_MORE: u32 = 1 << 4;

/// IORING_REGISTER_PBUF_RING.
pub fn register_ring(ring: &IoUring, arg: u64, nr: u32) -> KResult<u64> {
    if nr != 1 || arg == 0 {
        return Err(EINVAL);
    }
    let reg: BufReg = crate::task::read_user(arg)?;
    if reg.resv.iter().any(|&r| r != 0) || reg.flags & !(IOU_PBUF_RING_MMAP | IOU_PBUF_RING_INC) != 0 {
        return Err(EINVAL);
    }
    if !reg.ring_entries.is_power_of_two() || reg.ring_entries > 32768 {
        return Err(EINVAL);
    }
    let groups = ring.kbufs.lock();
    match groups.0.get(&reg.bgid) {
        Some(Group::Ring(_)) => return Err(EEXIST),
        Some(Group::Classic(list)) if !list.is_empty() => return Err(EEXIST),
        _ => {}
    }
    drop(groups);
    let bytes = reg.ring_entries as usize * 16;
    let pages = bytes.div_ceil(PAGE_SIZE as usize);
    let (frames, shared) = if reg.flags & IOU_PBUF_RING_MMAP != 0 {
        if reg.ring_addr != 0 {
            return Err(EINVAL);
        }
        let shared = SharedPages::new(pages);
        let frames = (0..pages).map(|i| shared.frame(i)).collect::<KResult<Vec<u64>>>()?;
        (frames, Some(shared))
    } else {
        if reg.ring_addr == 0 || !reg.ring_addr.is_multiple_of(PAGE_SIZE) {
            return Err(EINVAL);
        }
        let segments = crate::task::with_mm(|mm| crate::mm::uaccess::pin_user_segments(mm, reg.ring_addr, pages * PAGE_SIZE as usize, true))
            .map_err(|e| if e == EAGAIN { ENOMEM } else { e })?;
        // One pin per page; keep the page frames in order.
        let mut frames = Vec::with_capacity(pages);
        for (phys, len) in segments {
            let mut p = phys;
            while p < phys + u64::from(len) {
                frames.push(p & !(PAGE_SIZE - 1));
                p = (p & !(PAGE_SIZE - 1)) + PAGE_SIZE;
            }
        }
        (frames, None)
    };
    let bufring = BufRing { frames, shared, entries: reg.ring_entries, head: 0, inc: reg.flags & IOU_PBUF_RING_INC != 0 };
    ring.kbufs.lock().0.insert(reg.bgid, Group::Ring(bufring));
    Ok(0)
}

/// IORING_UNREGISTER_PBUF_RING.
pub fn unregister_ring(ring: &IoUring, arg: u64, nr: u32) -> KResult<u64> {
    if nr != 1 || arg == 0 {
        return Err(EINVAL);
    }
    let reg: BufReg = crate::task::read_user(arg)?;
    if reg.resv.iter().any(|&r| r != 0) || reg.flags != 0 {
        return Err(EINVAL);
    }
    let gone = {
        let mut groups = ring.kbufs.lock();
        match groups.0.get(&reg.bgid) {
            None => return Err(ENOENT),
            Some(Group::Classic(_)) => return Err(EINVAL),
            Some(Group::Ring(_)) => groups.0.remove(&reg.bgid),
        }
    };
    // Unpinned outside the lock.
    drop(gone);
    Ok(0)
}

/// IORING_REGISTER_PBUF_STATUS: the kernel's head of a ring-mapped group.
pub fn ring_status(ring: &IoUring, arg: u64, nr: u32) -> KResult<u64> {
    if nr != 1 {
        return Err(EINVAL);
    }
    let mut status: [u32; 10] = crate::task::read_user(arg)?;
    if status[2..].iter().any(|&r| r != 0) {
        return Err(EINVAL);
    }
    let head = match ring.kbufs.lock().0.get(&(status[0] as u16)) {
        None => return Err(ENOENT),
        Some(Group::Classic(_)) => return Err(EINVAL),
        Some(Group::Ring(r)) => r.head,
    };
    status[1] = u32::from(head);
    crate::task::write_user(arg, &status).map(|()| 0)
}

pub enum KbufOp {
    Provide { addr: u64, len: u32, nbufs: u32, bgid: u16, bid: u16 },
    Remove { nbufs: u32, bgid: u16 },
}

pub fn prep(_ring: &IoUring, sqe: &Sqe) -> KResult<Op> {
    if sqe.op_flags != 0 || sqe.file_index != 0 {
        return Err(EINVAL);
    }
    let nbufs = sqe.fd as u32;
    let bgid = sqe.buf_index;
    if nbufs == 0 || u64::from(nbufs) > MAX_BIDS_PER_BGID {
        // Linux: too many (or none) to provide is E2BIG, to remove EINVAL.
        return Err(if sqe.opcode == IORING_OP_PROVIDE_BUFFERS { E2BIG } else { EINVAL });
    }
    if sqe.opcode != IORING_OP_PROVIDE_BUFFERS {
        if sqe.addr != 0 || sqe.len != 0 || sqe.off != 0 {
            return Err(EINVAL);
        }
        return Ok(Op::Kbuf(KbufOp::Remove { nbufs, bgid }));
    }
    if sqe.len == 0 {
        return Err(EINVAL);
    }
    let size = u64::from(sqe.len).checked_mul(u64::from(nbufs)).ok_or(EOVERFLOW)?;
    let end = sqe.addr.checked_add(size).ok_or(EOVERFLOW)?;
    if end > crate::mm::USER_END {
        return Err(EFAULT);
    }
    if sqe.off > u64::from(u16::MAX) {
        return Err(E2BIG);
    }
    if sqe.off + u64::from(nbufs) > MAX_BIDS_PER_BGID {
        return Err(EINVAL);
    }
    Ok(Op::Kbuf(KbufOp::Provide { addr: sqe.addr, len: sqe.len, nbufs, bgid, bid: sqe.off as u16 }))
}

pub fn issue(ring: &Arc<IoUring>, req: Box<Request>) -> Issued {
    let Op::Kbuf(op) = &req.op else { return Some((req, -EINVAL.0)) };
    let res = {
        let mut groups = ring.kbufs.lock();
        match *op {
            KbufOp::Provide { addr, len, nbufs, bgid, bid } => 'provide: {
                // A full group takes no more: EOVERFLOW if none of these fit. A ring-mapped
                // group takes none (its buffers come through its ring): EINVAL.
                let group = groups.0.entry(bgid).or_insert_with(|| Group::Classic(VecDeque::new()));
                let Group::Classic(list) = group else { break 'provide -EINVAL.0 };
                let room = MAX_GROUP_BUFFERS - list.len();
                for i in 0..nbufs.min(room as u32) {
                    list.push_back(Buf { addr: addr + u64::from(i) * u64::from(len), len, bid: bid.wrapping_add(i as u16) });
                }
                if room == 0 { -EOVERFLOW.0 } else { 0 }
            }
            // An emptied group still exists (0); one never provided is ENOENT.
            KbufOp::Remove { nbufs, bgid } => match groups.0.get_mut(&bgid) {
                Some(Group::Ring(_)) => -EINVAL.0,
                Some(Group::Classic(list)) => {
                    let n = (nbufs as usize).min(list.len());
                    list.drain(..n);
                    n as i32
                }
                None => -ENOENT.0,
            },
        }
    };
    Some((req, res))
}
