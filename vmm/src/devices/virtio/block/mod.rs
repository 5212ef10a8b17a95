//! virtio-blk (device id 2): spec types, features and config space, and the host I/O
//! backend trait. Request processing is in [`device`]; one file per host I/O engine
//! ([`engine_sync`]: pread/pwrite/fdatasync; [`engine_uring`]: the host's io_uring, many
//! requests in flight), each behind [`BlockBackend`]. Both can open the disk with
//! O_DIRECT ([`direct`]: alignment checks and bounce buffers).

pub mod device;
pub mod direct;
pub mod engine_sync;
pub mod engine_test;
pub mod engine_uring;

use std::io;
use std::mem::offset_of;
use std::sync::Arc;

use super::{QueueHandler, VirtioDevice, TYPE_BLOCK, VIRTIO_F_VERSION_1, VIRTIO_RING_F_EVENT_IDX};

pub const SECTOR_SIZE: u64 = 512;
/// Requests queue size (QEMU's default for virtio-blk).
pub const QUEUE_SIZE: u16 = 256;
/// Most data segments in a request: the queue size less the header and the status.
pub const SEG_MAX: u32 = QUEUE_SIZE as u32 - 2;
/// Bytes of a GET_ID answer.
pub const ID_BYTES: usize = 20;

/// Feature bits (section 5.2.3).
pub const VIRTIO_BLK_F_SEG_MAX: u32 = 2;
pub const VIRTIO_BLK_F_RO: u32 = 5;
pub const VIRTIO_BLK_F_BLK_SIZE: u32 = 6;
pub const VIRTIO_BLK_F_FLUSH: u32 = 9;
/// Several request queues (`num_queues` in the config): one per vCPU, and one more that
/// the driver may use without interrupts, for polled I/O (io_uring's IOPOLL).
pub const VIRTIO_BLK_F_MQ: u32 = 12;
/// VIRTIO_BLK_T_DISCARD: the host punches a hole (the range then reads as zeros).
pub const VIRTIO_BLK_F_DISCARD: u32 = 13;
/// Most sectors one discard segment may name (the config's `max_discard_sectors`).
pub const MAX_DISCARD_SECTORS: u32 = 1 << 22;

/// Request types.
pub const VIRTIO_BLK_T_IN: u32 = 0;
pub const VIRTIO_BLK_T_OUT: u32 = 1;
pub const VIRTIO_BLK_T_FLUSH: u32 = 4;
pub const VIRTIO_BLK_T_GET_ID: u32 = 8;
pub const VIRTIO_BLK_T_DISCARD: u32 = 11;

/// Request status (the last byte of every request).
pub const VIRTIO_BLK_S_OK: u8 = 0;
pub const VIRTIO_BLK_S_IOERR: u8 = 1;
pub const VIRTIO_BLK_S_UNSUPP: u8 = 2;

/// The request header, the first 16 device-readable bytes of every request.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestHeader {
    pub type_: u32,
    pub reserved: u32,
    pub sector: u64,
}

const _: () = assert!(size_of::<RequestHeader>() == 16);
const _: () = assert!(offset_of!(RequestHeader, type_) == 0);
const _: () = assert!(offset_of!(RequestHeader, reserved) == 4);
const _: () = assert!(offset_of!(RequestHeader, sector) == 8);

impl RequestHeader {
    pub fn from_bytes(b: &[u8; 16]) -> Self {
        let word = |at: usize| u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"));
        Self { type_: word(0), reserved: word(4), sector: u64::from_le_bytes(b[8..16].try_into().expect("8 bytes")) }
    }
}

/// `struct virtio_blk_config` up to the discard fields (packed, as in Linux's uapi
/// header).
#[repr(C, packed)]
#[derive(Debug, Default, Clone, Copy)]
pub struct BlockConfig {
    pub capacity: u64,
    pub size_max: u32,
    pub seg_max: u32,
    pub cylinders: u16,
    pub heads: u8,
    pub sectors: u8,
    pub blk_size: u32,
    pub physical_block_exp: u8,
    pub alignment_offset: u8,
    pub min_io_size: u16,
    pub opt_io_size: u32,
    pub writeback: u8,
    pub unused0: u8,
    pub num_queues: u16,
    pub max_discard_sectors: u32,
    pub max_discard_seg: u32,
    pub discard_sector_alignment: u32,
}

const _: () = assert!(size_of::<BlockConfig>() == 48);
const _: () = assert!(offset_of!(BlockConfig, max_discard_sectors) == 36);
const _: () = assert!(offset_of!(BlockConfig, capacity) == 0);
const _: () = assert!(offset_of!(BlockConfig, size_max) == 8);
const _: () = assert!(offset_of!(BlockConfig, seg_max) == 12);
const _: () = assert!(offset_of!(BlockConfig, cylinders) == 16);
const _: () = assert!(offset_of!(BlockConfig, heads) == 18);
const _: () = assert!(offset_of!(BlockConfig, sectors) == 19);
const _: () = assert!(offset_of!(BlockConfig, blk_size) == 20);
const _: () = assert!(offset_of!(BlockConfig, physical_block_exp) == 24);
const _: () = assert!(offset_of!(BlockConfig, alignment_offset) == 25);
const _: () = assert!(offset_of!(BlockConfig, min_io_size) == 26);
const _: () = assert!(offset_of!(BlockConfig, opt_io_size) == 28);
const _: () = assert!(offset_of!(BlockConfig, writeback) == 32);
const _: () = assert!(offset_of!(BlockConfig, num_queues) == 34);

impl BlockConfig {
    /// The little-endian bytes of the config space.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut b = vec![0u8; size_of::<Self>()];
        let mut put = |at: usize, v: &[u8]| b[at..at + v.len()].copy_from_slice(v);
        put(offset_of!(Self, capacity), &self.capacity.to_le_bytes());
        put(offset_of!(Self, size_max), &self.size_max.to_le_bytes());
        put(offset_of!(Self, seg_max), &self.seg_max.to_le_bytes());
        put(offset_of!(Self, cylinders), &self.cylinders.to_le_bytes());
        put(offset_of!(Self, heads), &[self.heads]);
        put(offset_of!(Self, sectors), &[self.sectors]);
        put(offset_of!(Self, blk_size), &self.blk_size.to_le_bytes());
        put(offset_of!(Self, physical_block_exp), &[self.physical_block_exp]);
        put(offset_of!(Self, alignment_offset), &[self.alignment_offset]);
        put(offset_of!(Self, min_io_size), &self.min_io_size.to_le_bytes());
        put(offset_of!(Self, opt_io_size), &self.opt_io_size.to_le_bytes());
        put(offset_of!(Self, writeback), &[self.writeback]);
        put(offset_of!(Self, num_queues), &self.num_queues.to_le_bytes());
        put(offset_of!(Self, max_discard_sectors), &self.max_discard_sectors.to_le_bytes());
        put(offset_of!(Self, max_discard_seg), &self.max_discard_seg.to_le_bytes());
        put(offset_of!(Self, discard_sector_alignment), &self.discard_sector_alignment.to_le_bytes());
        b
    }
}

/// Host storage behind a virtio-blk device. One implementation per I/O engine.
///
/// The three blocking calls are the synchronous shape: each returns when its I/O is done
/// and borrows its buffer for the call only, so the worker serves one request at a time.
/// That shape cannot keep requests in flight, so an engine that can also returns an
/// [`AsyncQueue`] from [`BlockBackend::async_queue`] (one per activated device): the
/// device then pushes each request's I/O with a token and iovecs on guest memory, submits
/// a batch, and finishes each request when its completion is reaped. Engines without one
/// (the default) are served through the blocking calls, as before.
pub trait BlockBackend: Send + Sync {
    /// Fills `buf` from byte `offset` (all of it, or an error).
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()>;
    /// Writes all of `buf` at byte `offset`.
    fn write_at(&self, offset: u64, buf: &[u8]) -> io::Result<()>;
    /// Makes completed writes durable (fdatasync).
    fn flush(&self) -> io::Result<()>;
    /// Deallocates `len` bytes at `offset`, which then read as zeros (a hole punch).
    fn discard(&self, _offset: u64, _len: u64) -> io::Result<()> {
        Err(io::Error::from_raw_os_error(libc::EOPNOTSUPP))
    }
    /// Size in bytes.
    fn size(&self) -> u64;
    /// A queue for asynchronous I/O on this disk, for one device worker; `None` for a
    /// synchronous engine. `Some(Err(_))` when the engine cannot make one now (the device
    /// then falls back to the blocking calls).
    fn async_queue(&self) -> Option<io::Result<Box<dyn AsyncQueue>>> {
        None
    }
}

/// One host I/O of a virtio-blk request, for an [`AsyncQueue`].
#[derive(Debug)]
pub enum AsyncOp {
    /// Fill the buffers (in order) from byte `offset`: all of them, or an error.
    Read { offset: u64, iovecs: Vec<libc::iovec> },
    /// Write all the buffers (in order) at byte `offset`.
    Write { offset: u64, iovecs: Vec<libc::iovec> },
    /// fdatasync, started only once every op pushed before it has completed, and before
    /// any op pushed after it starts (a barrier, as the synchronous engine's order gives).
    Flush,
}

/// The final result of an [`AsyncOp`].
#[derive(Debug)]
pub struct AsyncDone {
    pub token: u64,
    pub result: io::Result<()>,
    /// Bytes transferred (for a failed read: those that reached the buffers).
    pub transferred: u64,
}

/// Asynchronous host I/O: ops are pushed, submitted in batches, and reaped when done, in
/// whatever order the host finishes them.
pub trait AsyncQueue: Send {
    /// Most ops in flight at once; [`AsyncQueue::push`] fails beyond it.
    fn capacity(&self) -> usize;
    /// Ops pushed and not yet reaped.
    fn in_flight(&self) -> usize;
    /// Queues `op` under `token`; it starts at the next [`AsyncQueue::submit`].
    ///
    /// # Safety
    ///
    /// Every iovec of `op` must stay valid (mapped, and writable for a read) until the op
    /// is reaped or the queue is drained or dropped; the engine reads or writes it at any
    /// time until then, so no Rust reference may cover that memory meanwhile.
    unsafe fn push(&mut self, token: u64, op: AsyncOp) -> io::Result<()>;
    /// Hands the pushed ops to the host.
    fn submit(&mut self) -> io::Result<()>;
    /// A file descriptor that becomes readable when completions may be waiting.
    fn completion_fd(&self) -> std::os::fd::RawFd;
    /// Appends the ops that finished (without blocking). A result is final: the engine
    /// itself continues short transfers and retries EINTR/EAGAIN (a bounded number of
    /// times).
    fn reap(&mut self, done: &mut Vec<AsyncDone>) -> io::Result<()>;
    /// Blocks until no op is in flight; appends their results.
    fn drain(&mut self, done: &mut Vec<AsyncDone>);
}

/// A virtio-blk device: what the transport needs before DRIVER_OK.
pub struct Block {
    backend: Arc<dyn BlockBackend>,
    read_only: bool,
    id: [u8; ID_BYTES],
    config: Vec<u8>,
    poll: std::time::Duration,
    /// One entry per queue offered (`num_queues` of them).
    queue_sizes: Vec<u16>,
}

impl Block {
    /// `id` is the GET_ID answer (at most 20 bytes are kept).
    /// One request queue and the polled one; see [`Block::with_request_queues`].
    pub fn new(backend: Arc<dyn BlockBackend>, read_only: bool, id: &[u8]) -> Self {
        let mut id_bytes = [0u8; ID_BYTES];
        let n = id.len().min(ID_BYTES);
        id_bytes[..n].copy_from_slice(&id[..n]);
        let block =
            Self { backend, read_only, id: id_bytes, config: Vec::new(), poll: std::time::Duration::ZERO, queue_sizes: Vec::new() };
        block.with_request_queues(1)
    }

    /// Offers `n` request queues (one per vCPU: each CPU of the guest submits on its own)
    /// and one more for polled I/O; `n` is at least 1 and at most `u16::MAX - 1`.
    pub fn with_request_queues(mut self, n: usize) -> Self {
        let queues = n.clamp(1, usize::from(u16::MAX) - 1) as u16 + 1;
        self.queue_sizes = vec![QUEUE_SIZE; usize::from(queues)];
        self.config = BlockConfig {
            capacity: self.backend.size() / SECTOR_SIZE,
            seg_max: SEG_MAX,
            blk_size: SECTOR_SIZE as u32,
            num_queues: queues,
            max_discard_sectors: MAX_DISCARD_SECTORS,
            max_discard_seg: 1,
            discard_sector_alignment: 1,
            ..Default::default()
        }
        .to_bytes();
        self
    }

    /// The GET_ID answer (zero-padded to 20 bytes).
    pub fn id(&self) -> &[u8; ID_BYTES] {
        &self.id
    }

    /// Busy-polls the queues whose driver polls (the IOPOLL queue) for `window` after
    /// their last work, with their kicks suppressed (`vmm run --blk-poll-us`; see
    /// [`super::poll`]). Zero: never.
    pub fn with_poll(mut self, window: std::time::Duration) -> Self {
        self.poll = window;
        self
    }
}

impl VirtioDevice for Block {
    fn device_type(&self) -> u32 {
        TYPE_BLOCK
    }

    fn features(&self) -> u64 {
        let mut f = 1 << VIRTIO_F_VERSION_1
            | 1 << VIRTIO_RING_F_EVENT_IDX
            | 1 << VIRTIO_BLK_F_FLUSH
            | 1 << VIRTIO_BLK_F_BLK_SIZE
            | 1 << VIRTIO_BLK_F_SEG_MAX
            | 1 << VIRTIO_BLK_F_MQ;
        if self.read_only {
            f |= 1 << VIRTIO_BLK_F_RO;
        } else {
            f |= 1 << VIRTIO_BLK_F_DISCARD;
        }
        f
    }

    fn queue_max_sizes(&self) -> &[u16] {
        &self.queue_sizes
    }

    fn config(&self) -> &[u8] {
        &self.config
    }

    fn activate(&mut self, _features: u64) -> Box<dyn QueueHandler> {
        Box::new(device::BlockHandler::new(Arc::clone(&self.backend), self.read_only, self.id))
    }

    fn poll_window(&self) -> std::time::Duration {
        self.poll
    }

    fn poll_stats(&self) -> Option<&'static super::poll::PollStats> {
        Some(&super::poll::BLK_STATS)
    }
}
