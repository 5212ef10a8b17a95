//! A small io_uring library for our no_std programs, in the spirit of liburing: set up a
//! ring, map it, fill SQEs, submit, reap CQEs.
//!
//! SQEs are filled by hand (`get_sqe`, `prep_rw`) or built with the typed builders of
//! [`opcode`] and queued with [`Ring::push`], as with the `io-uring` crate:
//!
//! ```ignore
//! let entry = opcode::Read::new(types::Fd(fd), buf.as_mut_ptr(), 64).offset(0).build().user_data(7);
//! ring.push(&entry);
//! ring.submit_and_wait(1)?;
//! ```
//!
//! The ring memory is shared with the kernel, so every index access says who it pairs
//! with: the SQ tail is stored with Release after the SQEs are written (the kernel loads
//! it with Acquire); the CQ tail is loaded with Acquire before CQEs are read (the kernel
//! stores it with Release after writing them); the CQ head is stored with Release after
//! the CQEs are read (the kernel loads it with Acquire before reusing the slots).

use core::sync::atomic::{AtomicU32, Ordering};

use crate::errno::{Errno, Result};
use crate::nr;
use crate::syscall::{self, ret, syscall2, syscall4, syscall6};
use crate::uapi::{MAP_SHARED, PROT_READ, PROT_WRITE};

pub mod opcode;
pub mod types;

pub const IORING_OP_NOP: u8 = 0;
pub const IORING_OP_READV: u8 = 1;
pub const IORING_OP_WRITEV: u8 = 2;
pub const IORING_OP_FSYNC: u8 = 3;
pub const IORING_OP_READ_FIXED: u8 = 4;
pub const IORING_OP_WRITE_FIXED: u8 = 5;
pub const IORING_OP_READ: u8 = 22;
pub const IORING_OP_WRITE: u8 = 23;
pub const IOSQE_FIXED_FILE: u8 = 1;
pub const IOSQE_IO_LINK: u8 = 4;
pub const IORING_ENTER_GETEVENTS: u32 = 1;
pub const IORING_REGISTER_BUFFERS: u32 = 0;
pub const IORING_REGISTER_FILES: u32 = 2;
pub const IORING_REGISTER_PROBE: u32 = 8;
/// `IO_URING_OP_SUPPORTED` in a probe entry's flags.
pub const IO_URING_OP_SUPPORTED: u16 = 1;
pub const IORING_CQE_F_BUFFER: u32 = 1 << 0;
pub const IORING_CQE_F_MORE: u32 = 1 << 1;
/// The buffer id sits above this bit in a CQE's flags (with `IORING_CQE_F_BUFFER`).
pub const IORING_CQE_BUFFER_SHIFT: u32 = 16;
const IORING_OFF_SQ_RING: i64 = 0;
const IORING_OFF_SQES: i64 = 0x1000_0000;

#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
pub struct Sqe {
    pub opcode: u8,
    pub flags: u8,
    pub ioprio: u16,
    pub fd: i32,
    pub off: u64,
    pub addr: u64,
    pub len: u32,
    pub op_flags: u32,
    pub user_data: u64,
    pub buf_index: u16,
    pub personality: u16,
    pub file_index: u32,
    pub addr3: u64,
    pub pad: u64,
}

#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
pub struct Cqe {
    pub user_data: u64,
    pub res: i32,
    pub flags: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
pub struct Params {
    pub sq_entries: u32,
    pub cq_entries: u32,
    pub flags: u32,
    pub sq_thread_cpu: u32,
    pub sq_thread_idle: u32,
    pub features: u32,
    pub wq_fd: u32,
    pub resv: [u32; 3],
    /// head, tail, ring_mask, ring_entries, flags, dropped, array, resv1, user_addr (2)
    pub sq_off: [u32; 10],
    /// head, tail, ring_mask, ring_entries, overflow, cqes, flags, resv1, user_addr (2)
    pub cq_off: [u32; 10],
}

/// One `struct io_uring_probe_op`.
#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
pub struct ProbeOp {
    pub op: u8,
    pub resv: u8,
    pub flags: u16,
    pub resv2: u32,
}

/// `struct io_uring_probe` with room for every opcode a u8 can name.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct Probe {
    pub last_op: u8,
    pub ops_len: u8,
    pub resv: u16,
    pub resv2: [u32; 3],
    pub ops: [ProbeOp; 256],
}

impl Probe {
    /// Whether the kernel implements `opcode`.
    pub fn is_supported(&self, opcode: u8) -> bool {
        opcode < self.ops_len && self.ops[opcode as usize].flags & IO_URING_OP_SUPPORTED != 0
    }
}

const _: () = assert!(size_of::<ProbeOp>() == 8 && size_of::<Probe>() == 16 + 256 * 8);

impl Cqe {
    /// `IORING_CQE_F_MORE`: a multishot request will post more CQEs.
    pub fn more(&self) -> bool {
        self.flags & IORING_CQE_F_MORE != 0
    }

    /// The id of the provided buffer the op used, if it took one.
    pub fn buffer_id(&self) -> Option<u16> {
        (self.flags & IORING_CQE_F_BUFFER != 0).then_some((self.flags >> IORING_CQE_BUFFER_SHIFT) as u16)
    }
}

// `struct io_uring_sqe` field offsets, as Linux's BUILD_BUG_SQE_ELEM pins them.
const _: () = assert!(core::mem::offset_of!(Sqe, fd) == 4 && core::mem::offset_of!(Sqe, off) == 8);
const _: () = assert!(core::mem::offset_of!(Sqe, addr) == 16 && core::mem::offset_of!(Sqe, len) == 24);
const _: () = assert!(core::mem::offset_of!(Sqe, op_flags) == 28 && core::mem::offset_of!(Sqe, user_data) == 32);
const _: () = assert!(core::mem::offset_of!(Sqe, buf_index) == 40 && core::mem::offset_of!(Sqe, personality) == 42);
const _: () = assert!(core::mem::offset_of!(Sqe, file_index) == 44 && core::mem::offset_of!(Sqe, addr3) == 48);

const _: () = assert!(size_of::<Sqe>() == 64 && size_of::<Cqe>() == 16 && size_of::<Params>() == 120);

pub struct Ring {
    pub fd: i32,
    pub params: Params,
    ring: *mut u8,
    ring_len: usize,
    sqes: *mut Sqe,
    sqes_len: usize,
    /// SQEs filled but not yet published to the kernel.
    sq_local_tail: u32,
}

impl Ring {
    /// `io_uring_setup(entries)` and the mappings (one for both rings: FEAT_SINGLE_MMAP).
    pub fn new(entries: u32) -> Result<Self> {
        let mut params = Params::default();
        // SAFETY: `params` is a valid, writable 120-byte struct.
        let fd = ret(unsafe { syscall2(nr::IO_URING_SETUP, entries as usize, &raw mut params as usize) })? as i32;
        let sq_len = params.sq_off[6] as usize + params.sq_entries as usize * 4;
        let cq_len = params.cq_off[5] as usize + params.cq_entries as usize * size_of::<Cqe>();
        let ring_len = sq_len.max(cq_len);
        let sqes_len = params.sq_entries as usize * size_of::<Sqe>();
        // SAFETY: a new shared mapping of the ring fd; nothing else is placed there.
        let ring = unsafe { syscall::mmap(0, ring_len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, IORING_OFF_SQ_RING) };
        // SAFETY: as above, for the SQE array.
        let sqes = unsafe { syscall::mmap(0, sqes_len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, IORING_OFF_SQES) };
        let (ring, sqes) = match (ring, sqes) {
            (Ok(r), Ok(s)) => (r as *mut u8, s as *mut Sqe),
            (r, s) => {
                let _ = syscall::close(fd);
                return Err(r.err().or(s.err()).unwrap_or(Errno::ENOMEM));
            }
        };
        let tail = {
            // SAFETY: the SQ tail lies inside the ring mapping (offset from the kernel).
            unsafe { &*ring.add(params.sq_off[1] as usize).cast::<AtomicU32>() }.load(Ordering::Relaxed)
        };
        Ok(Self { fd, params, ring, ring_len, sqes, sqes_len, sq_local_tail: tail })
    }

    fn word(&self, offset: u32) -> &AtomicU32 {
        // SAFETY: offsets come from the kernel's params and lie inside the ring mapping,
        // which lives as long as `self`; the words are shared, hence atomics.
        unsafe { &*self.ring.add(offset as usize).cast::<AtomicU32>() }
    }

    /// The next free SQE, zeroed, or None when the SQ is full.
    pub fn get_sqe(&mut self) -> Option<&mut Sqe> {
        let head = self.word(self.params.sq_off[0]).load(Ordering::Acquire); // pairs with the kernel's Release of sq head
        if self.sq_local_tail.wrapping_sub(head) >= self.params.sq_entries {
            return None;
        }
        let index = self.sq_local_tail & (self.params.sq_entries - 1);
        // SAFETY: the array slot is inside the ring mapping; the kernel reads it only after
        // we publish the tail.
        unsafe { self.ring.add(self.params.sq_off[6] as usize + index as usize * 4).cast::<u32>().write(index) };
        self.sq_local_tail = self.sq_local_tail.wrapping_add(1);
        // SAFETY: `index` < sq_entries; the slot is ours until the tail is published.
        let sqe = unsafe { &mut *self.sqes.add(index as usize) };
        *sqe = Sqe::default();
        Some(sqe)
    }

    /// Queues a built entry; false when the SQ is full.
    pub fn push(&mut self, entry: &opcode::Entry) -> bool {
        match self.get_sqe() {
            Some(sqe) => {
                *sqe = entry.0;
                true
            }
            None => false,
        }
    }

    /// Publishes filled SQEs; returns how many are waiting for the kernel.
    fn flush(&self) -> u32 {
        let tail = self.word(self.params.sq_off[1]);
        tail.store(self.sq_local_tail, Ordering::Release); // pairs with the kernel's Acquire of sq tail
        self.sq_local_tail.wrapping_sub(self.word(self.params.sq_off[0]).load(Ordering::Acquire))
    }

    /// `io_uring_enter`: submits what is queued and waits for `wait_nr` completions.
    pub fn submit_and_wait(&mut self, wait_nr: u32) -> Result {
        let to_submit = self.flush();
        let flags = if wait_nr > 0 { IORING_ENTER_GETEVENTS } else { 0 };
        // SAFETY: no pointers are passed.
        ret(unsafe { syscall6(nr::IO_URING_ENTER, self.fd as usize, to_submit as usize, wait_nr as usize, flags as usize, 0, 0) })
    }

    pub fn submit(&mut self) -> Result {
        self.submit_and_wait(0)
    }

    /// The oldest unconsumed CQE, if any (call `cqe_seen` after using it).
    pub fn peek_cqe(&self) -> Option<Cqe> {
        let head = self.word(self.params.cq_off[0]).load(Ordering::Relaxed);
        let tail = self.word(self.params.cq_off[1]).load(Ordering::Acquire); // pairs with the kernel's Release of cq tail
        if head == tail {
            return None;
        }
        let slot = head & (self.params.cq_entries - 1);
        // SAFETY: a CQE slot between head and tail: the kernel has finished writing it.
        Some(unsafe { self.ring.add(self.params.cq_off[5] as usize).cast::<Cqe>().add(slot as usize).read() })
    }

    /// Marks the oldest CQE consumed.
    pub fn cqe_seen(&self) {
        let head = self.word(self.params.cq_off[0]);
        head.store(head.load(Ordering::Relaxed).wrapping_add(1), Ordering::Release); // pairs with the kernel's Acquire of cq head
    }

    /// Waits for and takes the next CQE.
    pub fn wait_cqe(&mut self) -> Result<Cqe> {
        loop {
            if let Some(cqe) = self.peek_cqe() {
                self.cqe_seen();
                return Ok(cqe);
            }
            self.submit_and_wait(1)?;
        }
    }

    /// `io_uring_register(opcode, arg, nr)`.
    ///
    /// # Safety
    /// `arg` must point to what `opcode` expects, valid for `nr` entries.
    pub unsafe fn register(&self, opcode: u32, arg: usize, nr_args: u32) -> Result {
        // SAFETY: the caller's obligation.
        ret(unsafe { syscall4(nr::IO_URING_REGISTER, self.fd as usize, opcode as usize, arg, nr_args as usize) })
    }
}

impl Ring {
    /// `IORING_REGISTER_FILES`: `fds` become fixed slots 0.. (-1: an empty slot).
    pub fn register_files(&self, fds: &[i32]) -> Result {
        // SAFETY: the kernel copies `fds.len()` ints from a live slice.
        unsafe { self.register(IORING_REGISTER_FILES, fds.as_ptr() as usize, fds.len() as u32) }
    }

    /// `IORING_REGISTER_PROBE`: which opcodes the kernel implements.
    pub fn probe(&self) -> Result<Probe> {
        let mut probe = Probe { last_op: 0, ops_len: 0, resv: 0, resv2: [0; 3], ops: [ProbeOp::default(); 256] };
        // SAFETY: `probe` is zeroed (as Linux requires) and has room for 256 entries.
        unsafe { self.register(IORING_REGISTER_PROBE, (&raw mut probe) as usize, 256) }?;
        Ok(probe)
    }

    /// `IORING_REGISTER_BUFFERS`.
    ///
    /// # Safety
    /// Each iovec's memory must stay valid (and not be reused) while the ring may use
    /// it: until the buffers are unregistered or the ring is dropped.
    pub unsafe fn register_buffers(&self, iovecs: &[types::Iovec]) -> Result {
        // SAFETY: the caller keeps the buffers alive; the kernel copies the iovecs.
        unsafe { self.register(IORING_REGISTER_BUFFERS, iovecs.as_ptr() as usize, iovecs.len() as u32) }
    }
}

impl Drop for Ring {
    fn drop(&mut self) {
        // SAFETY: our own mappings, unused from here on.
        unsafe {
            let _ = syscall::munmap(self.ring as usize, self.ring_len);
            let _ = syscall::munmap(self.sqes as usize, self.sqes_len);
        }
        let _ = syscall::close(self.fd);
    }
}

/// Fills `sqe` for a read or write of `len` bytes at `buf` (offset `off`, -1: the file
/// position).
pub fn prep_rw(sqe: &mut Sqe, opcode: u8, fd: i32, buf: usize, len: u32, off: u64) {
    sqe.opcode = opcode;
    sqe.fd = fd;
    sqe.addr = buf as u64;
    sqe.len = len;
    sqe.off = off;
}
