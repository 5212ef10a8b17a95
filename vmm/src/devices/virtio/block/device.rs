//! virtio-blk request processing (section 5.2.6), with no knowledge of the transport.
//!
//! A request is one chain: a 16-byte header (device-readable), then data (readable for
//! OUT, writable for IN and GET_ID), then one status byte (device-writable, the chain's
//! last byte). A chain without a complete header or without a status byte cannot be
//! answered: that is a driver bug and the device needs a reset (QEMU: "virtio-blk missing
//! headers"). Everything else is answered: a wrong-direction data buffer, a length that
//! is not a multiple of 512, a range past the end or a write to a read-only disk with
//! IOERR, an unknown type with UNSUPP, a host I/O error with IOERR.
//!
//! With a synchronous engine each request is carried out in [`QueueHandler::process`],
//! through a bounce buffer. With an asynchronous one ([`AsyncQueue`]), reads, writes and
//! flushes are started instead: the same checks first, then one op whose iovecs are the
//! host addresses of the request's data buffers (vm-memory's checked slices; guest memory
//! stays mapped while this handler holds its clone of it), and the status byte is written
//! when the op's completion is reaped. GET_ID, empty transfers and refused requests are
//! answered at once in both cases.

use std::sync::Arc;

use vm_memory::{GuestMemoryBackend, GuestMemoryMmap};

use super::direct::AlignedBuf;
use super::*;
use crate::devices::guest_errors;
use crate::devices::virtio::chain::{self, Chain, ChainError, Segment};
use crate::guest_warn;
use crate::devices::virtio::{DeviceError, QueueHandler};

/// Largest bounce buffer between the backing file and guest memory.
const CHUNK: usize = 128 << 10;
/// Alignment of that buffer: a page, enough for O_DIRECT on any common host device (see
/// [`super::direct`]), so that a synchronous engine never copies it again.
const CHUNK_ALIGN: usize = 4096;

/// What a request asks, after all checks that need no I/O.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    /// Read `len` bytes at byte `offset` into the writable data buffers.
    Read { offset: u64, len: u64 },
    /// Write the `len` bytes of the readable data buffers at byte `offset`.
    Write { offset: u64, len: u64 },
    Flush,
    /// Write the id (at most `len` bytes of it).
    GetId { len: u64 },
    /// Deallocate `len` bytes at byte `offset` (one segment).
    Discard { offset: u64, len: u64 },
}

/// Checks a request from its header and the sizes of its buffers: `readable` bytes
/// (header included) and `writable` bytes (status included, so at least 1).
/// `Err` is the status to answer with.
pub fn parse_request(header: &RequestHeader, readable: u64, writable: u64, capacity: u64, read_only: bool) -> Result<Request, u8> {
    let in_data = writable.saturating_sub(1);
    let out_data = readable.saturating_sub(16);
    let range = |len: u64| -> Result<u64, u8> {
        if !len.is_multiple_of(SECTOR_SIZE) {
            guest_warn!(guest_errors::BLK, "virtio-blk: data length {len} is not a multiple of {SECTOR_SIZE}");
            return Err(VIRTIO_BLK_S_IOERR);
        }
        let end = header.sector.checked_add(len / SECTOR_SIZE);
        if end.is_none_or(|end| end > capacity) {
            guest_warn!(guest_errors::BLK, "virtio-blk: sectors {}+{} beyond the end ({capacity})", header.sector, len / SECTOR_SIZE);
            return Err(VIRTIO_BLK_S_IOERR);
        }
        Ok(header.sector * SECTOR_SIZE)
    };
    match header.type_ {
        VIRTIO_BLK_T_IN => {
            if out_data != 0 {
                guest_warn!(guest_errors::BLK, "virtio-blk: read request with {out_data} device-readable data bytes");
                return Err(VIRTIO_BLK_S_IOERR);
            }
            Ok(Request::Read { offset: range(in_data)?, len: in_data })
        }
        VIRTIO_BLK_T_OUT => {
            if in_data != 0 {
                guest_warn!(guest_errors::BLK, "virtio-blk: write request with {in_data} device-writable data bytes");
                return Err(VIRTIO_BLK_S_IOERR);
            }
            if read_only {
                guest_warn!(guest_errors::BLK, "virtio-blk: write to a read-only disk");
                return Err(VIRTIO_BLK_S_IOERR);
            }
            Ok(Request::Write { offset: range(out_data)?, len: out_data })
        }
        VIRTIO_BLK_T_FLUSH => Ok(Request::Flush),
        VIRTIO_BLK_T_GET_ID => {
            if out_data != 0 {
                guest_warn!(guest_errors::BLK, "virtio-blk: GET_ID with {out_data} device-readable data bytes");
                return Err(VIRTIO_BLK_S_IOERR);
            }
            Ok(Request::GetId { len: in_data.min(ID_BYTES as u64) })
        }
        // The segment itself is read by the caller (it is data, not header): here only
        // its shape is checked.
        // Not offered on a read-only disk.
        VIRTIO_BLK_T_DISCARD if read_only => Err(VIRTIO_BLK_S_UNSUPP),
        VIRTIO_BLK_T_DISCARD if out_data != DISCARD_SEGMENT || in_data != 0 => {
            guest_warn!(guest_errors::BLK, "virtio-blk: discard with {out_data} bytes of segments and {in_data} to write");
            Err(VIRTIO_BLK_S_UNSUPP)
        }
        VIRTIO_BLK_T_DISCARD => Ok(Request::Discard { offset: 0, len: 0 }),
        other => {
            guest_warn!(guest_errors::BLK, "virtio-blk: unsupported request type {other}");
            Err(VIRTIO_BLK_S_UNSUPP)
        }
    }
}

/// One `struct virtio_blk_discard_write_zeroes` (a single segment per request).
const DISCARD_SEGMENT: u64 = 16;

/// Checks a discard segment (sector, num_sectors, flags) against the disk: the bytes it
/// covers, or the status to answer (flags, including unmap, are not ours to honour:
/// UNSUPP; beyond the end or the limit: IOERR).
pub fn parse_discard(seg: &[u8; 16], capacity: u64) -> Result<Request, u8> {
    let sector = u64::from_le_bytes(seg[..8].try_into().expect("8 bytes"));
    let sectors = u32::from_le_bytes(seg[8..12].try_into().expect("4 bytes"));
    let flags = u32::from_le_bytes(seg[12..16].try_into().expect("4 bytes"));
    if flags != 0 {
        return Err(VIRTIO_BLK_S_UNSUPP);
    }
    if sectors > super::MAX_DISCARD_SECTORS || sector.checked_add(u64::from(sectors)).is_none_or(|end| end > capacity) {
        guest_warn!(guest_errors::BLK, "virtio-blk: discard of sectors {sector}+{sectors} beyond the end ({capacity}) or the limit");
        return Err(VIRTIO_BLK_S_IOERR);
    }
    Ok(Request::Discard { offset: sector * SECTOR_SIZE, len: u64::from(sectors) * SECTOR_SIZE })
}

/// A request whose host I/O is on the asynchronous queue.
struct InFlight {
    queue: usize,
    chain: Chain,
    req: Request,
}

pub struct BlockHandler {
    backend: Arc<dyn BlockBackend>,
    read_only: bool,
    id: [u8; ID_BYTES],
    capacity: u64,
    /// The engine's asynchronous queue, if it has one. Declared before `mem`: dropping it
    /// waits for the ops in flight while the guest memory they target is still mapped.
    aio: Option<Box<dyn AsyncQueue>>,
    /// The requests on `aio`, by token (the index).
    in_flight: Vec<Option<InFlight>>,
    free_tokens: Vec<usize>,
    reaped: Vec<AsyncDone>,
    /// Guest memory, kept from the first started request on (see `aio`).
    mem: Option<GuestMemoryMmap>,
}

impl BlockHandler {
    /// A handler that serves requests synchronously until [`QueueHandler::prepare`]
    /// creates the engine's asynchronous queue, if it has one.
    pub fn new(backend: Arc<dyn BlockBackend>, read_only: bool, id: [u8; ID_BYTES]) -> Self {
        let capacity = backend.size() / SECTOR_SIZE;
        Self {
            backend,
            read_only,
            id,
            capacity,
            aio: None,
            in_flight: Vec::new(),
            free_tokens: Vec::new(),
            reaped: Vec::new(),
            mem: None,
        }
    }

    /// Creates the engine's asynchronous queue (on the worker thread, before its
    /// seccomp filter forbids creating rings).
    fn create_queue(&mut self) {
        if self.aio.is_some() {
            return;
        }
        self.aio = match self.backend.async_queue() {
            Some(Ok(q)) => Some(q),
            Some(Err(e)) => {
                log::warn!("virtio-blk: asynchronous I/O unavailable ({e}); serving requests synchronously");
                None
            }
            None => None,
        };
        let slots = self.aio.as_ref().map_or(0, |q| q.capacity());
        self.in_flight = (0..slots).map(|_| None).collect();
        self.free_tokens = (0..slots).rev().collect();
    }

    /// Whether requests are served through an asynchronous queue.
    pub fn is_async(&self) -> bool {
        self.aio.is_some()
    }

    /// Reads and checks a request's header: the request, or the status to answer with
    /// at once; an error when the chain cannot be answered at all.
    fn parse(&self, mem: &GuestMemoryMmap, chain: &Chain) -> Result<Result<Request, u8>, DeviceError> {
        let mut header = [0u8; 16];
        let writable = chain.writable_len();
        if writable == 0 || !chain.read_at(mem, 0, &mut header)? {
            return Err(DeviceError::Request(format!(
                "virtio-blk request without header or status ({} bytes to read, {writable} to write)",
                chain.readable_len()
            )));
        }
        let header = RequestHeader::from_bytes(&header);
        let req = parse_request(&header, chain.readable_len(), writable, self.capacity, self.read_only);
        if let Ok(Request::Discard { .. }) = req {
            let mut seg = [0u8; 16];
            chain.read_at(mem, 16, &mut seg)?;
            return Ok(parse_discard(&seg, self.capacity));
        }
        Ok(req)
    }

    /// Writes the status byte; returns the used length (data bytes written + the status).
    /// [`Chain::parse`] refuses chains longer than a used length can say, so saturating
    /// never happens; it only keeps a huge count from wrapping to a small one.
    fn finish(mem: &GuestMemoryMmap, chain: &Chain, status: u8, written: u64) -> Result<u32, DeviceError> {
        chain.write_at(mem, chain.writable_len() - 1, &[status])?;
        Ok(u32::try_from(written.saturating_add(1)).unwrap_or(u32::MAX))
    }

    /// Carries out a checked request; returns the status and the data bytes written.
    fn execute(&self, mem: &GuestMemoryMmap, chain: &Chain, req: Request) -> Result<(u8, u64), DeviceError> {
        let bounce = |len: u64| AlignedBuf::new(len.min(CHUNK as u64) as usize, CHUNK_ALIGN);
        match req {
            Request::Read { offset, len } => {
                let mut buf = bounce(len);
                let mut done = 0u64;
                while done < len {
                    let n = (len - done).min(CHUNK as u64) as usize;
                    let buf = &mut buf[..n];
                    if let Err(e) = self.backend.read_at(offset + done, buf) {
                        return Ok((io_err(e), done));
                    }
                    chain.write_at(mem, done, buf)?;
                    done += n as u64;
                }
                Ok((VIRTIO_BLK_S_OK, len))
            }
            Request::Write { offset, len } => {
                let mut buf = bounce(len);
                let mut done = 0u64;
                while done < len {
                    let n = (len - done).min(CHUNK as u64) as usize;
                    let buf = &mut buf[..n];
                    chain.read_at(mem, 16 + done, buf)?;
                    if let Err(e) = self.backend.write_at(offset + done, buf) {
                        return Ok((io_err(e), 0));
                    }
                    done += n as u64;
                }
                Ok((VIRTIO_BLK_S_OK, 0))
            }
            Request::Flush => match self.backend.flush() {
                Ok(()) => Ok((VIRTIO_BLK_S_OK, 0)),
                Err(e) => Ok((io_err(e), 0)),
            },
            Request::GetId { len } => {
                chain.write_at(mem, 0, &self.id[..len as usize])?;
                Ok((VIRTIO_BLK_S_OK, len))
            }
            Request::Discard { offset, len } => match self.backend.discard(offset, len) {
                Ok(()) => Ok((VIRTIO_BLK_S_OK, 0)),
                Err(e) => Ok((io_err(e), 0)),
            },
        }
    }
}

fn io_err(e: std::io::Error) -> u8 {
    guest_warn!(guest_errors::HOST_IO, "virtio-blk: host I/O error: {e}");
    VIRTIO_BLK_S_IOERR
}

/// The host addresses of `len` bytes at `offset` of `segments`, through vm-memory's
/// checked slices (a buffer that spans two guest memory regions gives two iovecs), for
/// the host to write into (`to_guest`) or read from.
fn guest_iovecs(mem: &GuestMemoryMmap, segments: &[Segment], offset: u64, len: u64, to_guest: bool) -> Result<Vec<libc::iovec>, ChainError> {
    let mut iovecs = Vec::with_capacity(segments.len());
    for (addr, n) in chain::pieces(segments, offset, len as usize) {
        for slice in mem.get_slices(addr, n) {
            let slice = slice.map_err(|_| ChainError::Access(addr.0))?;
            // The pointer outlives the guard: the mapping does (see `BlockHandler::aio`).
            let ptr = if to_guest { slice.ptr_guard_mut().as_ptr() } else { slice.ptr_guard().as_ptr().cast_mut() };
            iovecs.push(libc::iovec { iov_base: ptr.cast(), iov_len: slice.len() });
        }
    }
    Ok(iovecs)
}

/// Marks `len` bytes at `offset` of `segments` dirty (the host wrote them behind
/// vm-memory's back, through io_uring).
fn mark_dirty(mem: &GuestMemoryMmap, segments: &[Segment], offset: u64, len: u64) {
    use vm_memory::bitmap::Bitmap;
    for (addr, n) in chain::pieces(segments, offset, len as usize) {
        for slice in mem.get_slices(addr, n).flatten() {
            slice.bitmap().mark_dirty(0, slice.len());
        }
    }
}

impl QueueHandler for BlockHandler {
    fn process(&mut self, _queue: usize, mem: &GuestMemoryMmap, chain: &Chain) -> Result<u32, DeviceError> {
        let (status, written) = match self.parse(mem, chain)? {
            Ok(req) => self.execute(mem, chain, req)?,
            Err(status) => (status, 0),
        };
        Self::finish(mem, chain, status, written)
    }

    fn start(&mut self, queue: usize, mem: &GuestMemoryMmap, chain: Chain) -> Result<Option<u32>, DeviceError> {
        if self.aio.is_none() {
            return self.process(queue, mem, &chain).map(Some);
        }
        let req = match self.parse(mem, &chain)? {
            Ok(req) => req,
            Err(status) => return Self::finish(mem, &chain, status, 0).map(Some),
        };
        let op = match req {
            Request::Read { offset, len } if len > 0 => AsyncOp::Read { offset, iovecs: guest_iovecs(mem, &chain.writable, 0, len, true)? },
            Request::Write { offset, len } if len > 0 => AsyncOp::Write { offset, iovecs: guest_iovecs(mem, &chain.readable, 16, len, false)? },
            Request::Flush => AsyncOp::Flush,
            // GET_ID and empty transfers: nothing for the host to do.
            _ => return self.process(queue, mem, &chain).map(Some),
        };
        let Some(token) = self.free_tokens.pop() else {
            return Err(DeviceError::Queue("virtio-blk: a request started with no room in flight".into()));
        };
        let aio = self.aio.as_mut().expect("an asynchronous queue");
        // SAFETY: the iovecs are host addresses of the chain's data buffers, checked inside
        // guest memory by vm-memory; the mapping stays while `self.mem` (kept below) lives,
        // and `aio`, dropped before it, waits for its ops. Until the op is reaped the
        // buffers are the device's (the driver does not touch them); the VMM reads and
        // writes guest memory through vm-memory's volatile accessors only.
        if let Err(e) = unsafe { aio.push(token as u64, op) } {
            self.free_tokens.push(token);
            return Self::finish(mem, &chain, io_err(e), 0).map(Some);
        }
        if self.mem.is_none() {
            self.mem = Some(mem.clone());
        }
        self.in_flight[token] = Some(InFlight { queue, chain, req });
        Ok(None)
    }

    fn has_room(&self) -> bool {
        self.aio.is_none() || !self.free_tokens.is_empty()
    }

    fn submit(&mut self) -> Result<(), DeviceError> {
        match &mut self.aio {
            Some(aio) => aio.submit().map_err(|e| DeviceError::Queue(format!("virtio-blk: host I/O submission: {e}"))),
            None => Ok(()),
        }
    }

    fn completion_fd(&self) -> Option<std::os::fd::RawFd> {
        self.aio.as_ref().map(|q| q.completion_fd())
    }

    fn complete(&mut self, mem: &GuestMemoryMmap, done: &mut Vec<(usize, u16, u32)>) -> Result<(), DeviceError> {
        let Some(aio) = &mut self.aio else { return Ok(()) };
        let mut reaped = std::mem::take(&mut self.reaped);
        aio.reap(&mut reaped).map_err(|e| DeviceError::Queue(format!("virtio-blk: host I/O completion: {e}")))?;
        for d in reaped.drain(..) {
            let Some(InFlight { queue, chain, req }) = self.in_flight.get_mut(d.token as usize).and_then(Option::take) else {
                log::warn!("virtio-blk: completion of unknown request {}", d.token);
                continue;
            };
            self.free_tokens.push(d.token as usize);
            let (status, written) = match (req, d.result) {
                (Request::Read { len, .. }, Ok(())) => {
                    mark_dirty(mem, &chain.writable, 0, len);
                    (VIRTIO_BLK_S_OK, len)
                }
                (Request::Read { .. }, Err(e)) => {
                    mark_dirty(mem, &chain.writable, 0, d.transferred);
                    (io_err(e), d.transferred)
                }
                (_, Ok(())) => (VIRTIO_BLK_S_OK, 0),
                (_, Err(e)) => (io_err(e), 0),
            };
            done.push((queue, chain.head, Self::finish(mem, &chain, status, written)?));
        }
        self.reaped = reaped;
        Ok(())
    }

    fn prepare(&mut self) {
        self.create_queue();
    }

    fn quiesce(&mut self) {
        if let Some(aio) = &mut self.aio {
            aio.drain(&mut self.reaped);
            self.reaped.clear();
            for (token, slot) in self.in_flight.iter_mut().enumerate() {
                if slot.take().is_some() {
                    self.free_tokens.push(token);
                }
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::devices::virtio::block::engine_sync::SyncEngine;
    use crate::devices::virtio::block::direct::DioAlign;
    use crate::devices::virtio::block::engine_uring::UringEngine;
    use crate::devices::virtio::chain::tests::TestQueue;
    use crate::devices::virtio::test_util::TempDir;
    use std::io;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
    use vm_memory::{Bytes, GuestAddress};

    /// A disk in memory that can be told to fail, and counts flushes.
    #[derive(Default)]
    pub(crate) struct MemDisk {
        pub data: Mutex<Vec<u8>>,
        pub fail: AtomicBool,
        pub flushes: AtomicU32,
    }

    impl BlockBackend for MemDisk {
        fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
            if self.fail.load(Ordering::Relaxed) {
                return Err(io::Error::from_raw_os_error(libc::EIO));
            }
            let d = self.data.lock().unwrap();
            buf.copy_from_slice(&d[offset as usize..offset as usize + buf.len()]);
            Ok(())
        }
        fn write_at(&self, offset: u64, buf: &[u8]) -> io::Result<()> {
            if self.fail.load(Ordering::Relaxed) {
                return Err(io::Error::from_raw_os_error(libc::EIO));
            }
            self.data.lock().unwrap()[offset as usize..offset as usize + buf.len()].copy_from_slice(buf);
            Ok(())
        }
        fn flush(&self) -> io::Result<()> {
            self.flushes.fetch_add(1, Ordering::Relaxed);
            if self.fail.load(Ordering::Relaxed) { Err(io::Error::from_raw_os_error(libc::EIO)) } else { Ok(()) }
        }
        fn size(&self) -> u64 {
            self.data.lock().unwrap().len() as u64
        }
    }

    fn header(t: &TestQueue, at: u64, type_: u32, sector: u64) {
        t.mem.write_obj(type_.to_le(), GuestAddress(at)).unwrap();
        t.mem.write_obj(0u32, GuestAddress(at + 4)).unwrap();
        t.mem.write_obj(sector.to_le(), GuestAddress(at + 8)).unwrap();
    }

    const HDR: u64 = 0x10000;
    const DATA: u64 = 0x20000;
    const STATUS: u64 = 0x30000;

    /// The backends the device tests run over: a disk in memory (the synchronous path,
    /// with failure injection), and a temp file through each engine, buffered or with
    /// O_DIRECT (`direct=on`): at the file's own alignment, and as if the host needed
    /// 4 KiB (so that sector-sized requests are misaligned).
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub(crate) enum Engine {
        Mem,
        Sync,
        Uring,
        SyncDirect,
        UringDirect,
        SyncDirect4k,
        UringDirect4k,
    }

    impl Engine {
        fn is_uring(self) -> bool {
            matches!(self, Engine::Uring | Engine::UringDirect | Engine::UringDirect4k)
        }

        /// `None`: buffered; `Some(None)`: O_DIRECT at the file's alignment; `Some(Some(a))`:
        /// O_DIRECT as if the file needed `a`.
        fn direct(self) -> Option<Option<DioAlign>> {
            match self {
                Engine::SyncDirect | Engine::UringDirect => Some(None),
                Engine::SyncDirect4k | Engine::UringDirect4k => Some(Some(DioAlign::new(4096, 4096))),
                _ => None,
            }
        }
    }

    const ENGINES: [Engine; 7] = [
        Engine::Mem,
        Engine::Sync,
        Engine::Uring,
        Engine::SyncDirect,
        Engine::UringDirect,
        Engine::SyncDirect4k,
        Engine::UringDirect4k,
    ];
    const FILE_ENGINES: [Engine; 6] =
        [Engine::Sync, Engine::Uring, Engine::SyncDirect, Engine::UringDirect, Engine::SyncDirect4k, Engine::UringDirect4k];

    /// A backend of `sectors` zero sectors and the means to look at it.
    pub(crate) struct TestDisk {
        pub backend: Arc<dyn BlockBackend>,
        pub mem: Option<Arc<MemDisk>>,
        pub file: Option<(TempDir, std::path::PathBuf)>,
    }

    impl TestDisk {
        /// `open_ro`: the file is opened read-only (whatever the device is told).
        pub fn new(engine: Engine, sectors: usize, open_ro: bool) -> Self {
            if engine == Engine::Mem {
                let disk = Arc::new(MemDisk { data: Mutex::new(vec![0; sectors * 512]), ..Default::default() });
                return Self { backend: disk.clone(), mem: Some(disk), file: None };
            }
            let dir = TempDir::new("blkdev");
            let path = dir.path().join("disk.img");
            std::fs::write(&path, vec![0; sectors * 512]).unwrap();
            let backend: Arc<dyn BlockBackend> = if engine.is_uring() {
                Arc::new(UringEngine::open_aligned(&path, open_ro, engine.direct()).unwrap())
            } else {
                Arc::new(SyncEngine::open_aligned(&path, open_ro, engine.direct()).unwrap())
            };
            Self { backend, mem: None, file: Some((dir, path)) }
        }

        /// The disk's contents.
        pub fn data(&self) -> Vec<u8> {
            match (&self.mem, &self.file) {
                (Some(m), _) => m.data.lock().unwrap().clone(),
                (_, Some((_, path))) => std::fs::read(path).unwrap(),
                _ => unreachable!(),
            }
        }
    }

    struct Setup {
        t: TestQueue,
        q: virtio_queue::Queue,
        disk: TestDisk,
        handler: BlockHandler,
        next: u16,
    }

    fn setup_with(engine: Engine, sectors: usize, read_only: bool, open_ro: bool, qsize: u16) -> Setup {
        let t = TestQueue::new(qsize);
        let q = t.queue();
        let disk = TestDisk::new(engine, sectors, open_ro);
        let mut id = [0u8; ID_BYTES];
        id[..8].copy_from_slice(b"disk-id!");
        let mut handler = BlockHandler::new(disk.backend.clone(), read_only, id);
        handler.prepare();
        assert_eq!(handler.is_async(), engine.is_uring());
        Setup { t, q, disk, handler, next: 0 }
    }

    fn setup(engine: Engine, sectors: usize, read_only: bool) -> Setup {
        setup_with(engine, sectors, read_only, read_only, 16)
    }

    impl Setup {
        /// Publishes a chain and starts it: its head, and the used len if it is done.
        fn start(&mut self, bufs: &[(u64, u32, bool)]) -> Result<(u16, Option<u32>), DeviceError> {
            if usize::from(self.next) + bufs.len() > usize::from(self.t.size) {
                self.next = 0; // the chains there are done
            }
            let head = self.next;
            self.t.chain(head, bufs);
            self.next = (self.next + bufs.len() as u16) % self.t.size;
            self.t.publish(head);
            let chain = self.t.pop(&mut self.q).map_err(DeviceError::Chain)?;
            Ok((head, self.handler.start(0, &self.t.mem, chain)?))
        }

        /// Submits the started requests and waits until `count` of them completed:
        /// (head, used len) in completion order.
        fn wait(&mut self, count: usize) -> Vec<(u16, u32)> {
            self.handler.submit().unwrap();
            let mut done = Vec::new();
            while done.len() < count {
                let fd = self.handler.completion_fd().expect("an asynchronous handler");
                let mut pfd = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
                // SAFETY: one valid pollfd.
                assert_eq!(unsafe { libc::poll(&mut pfd, 1, 5000) }, 1, "completions within 5 s");
                self.handler.complete(&self.t.mem, &mut done).unwrap();
            }
            assert!(done.iter().all(|&(q, _, _)| q == 0));
            done.into_iter().map(|(_, head, len)| (head, len)).collect()
        }

        /// Publishes a chain and runs it to its end: (status byte, used len) or the
        /// device error.
        fn run(&mut self, bufs: &[(u64, u32, bool)]) -> Result<(u8, u32), DeviceError> {
            self.t.mem.write_obj(0xffu8, GuestAddress(STATUS)).unwrap();
            let len = match self.start(bufs)? {
                (_, Some(len)) => len,
                (head, None) => {
                    let done = self.wait(1);
                    assert_eq!(done[0].0, head);
                    done[0].1
                }
            };
            Ok((self.t.mem.read_obj(GuestAddress(STATUS)).unwrap(), len))
        }
    }

    #[test]
    fn write_then_read() {
        for engine in ENGINES {
            let mut s = setup(engine, 8, false);
            s.t.mem.write_slice(&[0xab; 1024], GuestAddress(DATA)).unwrap();
            header(&s.t, HDR, VIRTIO_BLK_T_OUT, 2);
            assert_eq!(s.run(&[(HDR, 16, false), (DATA, 1024, false), (STATUS, 1, true)]), Ok((VIRTIO_BLK_S_OK, 1)));
            assert_eq!(&s.disk.data()[1024..2048], &[0xab; 1024], "{engine:?}");
            assert_eq!(s.disk.data()[1023], 0);

            header(&s.t, HDR, VIRTIO_BLK_T_IN, 1);
            s.t.mem.write_slice(&[0; 1024], GuestAddress(DATA)).unwrap();
            // Data split over two descriptors.
            let r = s.run(&[(HDR, 16, false), (DATA, 512, true), (DATA + 512, 1024, true), (STATUS, 1, true)]);
            assert_eq!(r, Ok((VIRTIO_BLK_S_OK, 1537)), "{engine:?}");
            let mut back = [0u8; 1536];
            s.t.mem.read_slice(&mut back, GuestAddress(DATA)).unwrap();
            assert_eq!(&back[..512], &[0; 512]);
            assert_eq!(&back[512..], &[0xab; 1024]);
        }
    }

    #[test]
    fn discard_punches_a_hole() {
        for engine in ENGINES {
            let mut s = setup(engine, 8, false);
            s.t.mem.write_slice(&[0xcd; 4096], GuestAddress(DATA)).unwrap();
            header(&s.t, HDR, VIRTIO_BLK_T_OUT, 0);
            assert_eq!(s.run(&[(HDR, 16, false), (DATA, 4096, false), (STATUS, 1, true)]), Ok((VIRTIO_BLK_S_OK, 1)));
            // Sectors 2..4 (one segment: sector, num_sectors, flags).
            let seg = [2u64.to_le_bytes().to_vec(), 2u32.to_le_bytes().to_vec(), 0u32.to_le_bytes().to_vec()].concat();
            s.t.mem.write_slice(&seg, GuestAddress(DATA)).unwrap();
            header(&s.t, HDR, VIRTIO_BLK_T_DISCARD, 0);
            let r = s.run(&[(HDR, 16, false), (DATA, 16, false), (STATUS, 1, true)]);
            if engine == Engine::Mem {
                assert_eq!(r.unwrap().0, VIRTIO_BLK_S_IOERR, "a backend without discard");
                continue;
            }
            assert_eq!(r, Ok((VIRTIO_BLK_S_OK, 1)), "{engine:?}");
            let data = s.disk.data();
            assert_eq!(&data[1024..2048], &[0; 1024], "{engine:?}");
            assert_eq!(&data[..1024], &[0xcd; 1024]);
            assert_eq!(&data[2048..4096], &[0xcd; 2048]);
            // Beyond the end, unknown flags (unmap), a short segment.
            for (sector, n, flags, status) in [(7u64, 2u32, 0u32, VIRTIO_BLK_S_IOERR), (0, 1, 1, VIRTIO_BLK_S_UNSUPP)] {
                let seg = [sector.to_le_bytes().to_vec(), n.to_le_bytes().to_vec(), flags.to_le_bytes().to_vec()].concat();
                s.t.mem.write_slice(&seg, GuestAddress(DATA)).unwrap();
                assert_eq!(s.run(&[(HDR, 16, false), (DATA, 16, false), (STATUS, 1, true)]).unwrap().0, status);
            }
            assert_eq!(s.run(&[(HDR, 16, false), (DATA, 8, false), (STATUS, 1, true)]).unwrap().0, VIRTIO_BLK_S_UNSUPP);
        }
    }

    #[test]
    fn flush_and_get_id() {
        for engine in ENGINES {
            let mut s = setup(engine, 8, false);
            header(&s.t, HDR, VIRTIO_BLK_T_FLUSH, 0);
            assert_eq!(s.run(&[(HDR, 16, false), (STATUS, 1, true)]), Ok((VIRTIO_BLK_S_OK, 1)));
            if let Some(m) = &s.disk.mem {
                assert_eq!(m.flushes.load(Ordering::Relaxed), 1);
            }
            header(&s.t, HDR, VIRTIO_BLK_T_GET_ID, 0);
            assert_eq!(s.run(&[(HDR, 16, false), (DATA, 20, true), (STATUS, 1, true)]), Ok((VIRTIO_BLK_S_OK, 21)));
            let mut id = [0u8; 20];
            s.t.mem.read_slice(&mut id, GuestAddress(DATA)).unwrap();
            assert_eq!(&id[..9], b"disk-id!\0");
        }
    }

    /// The used length of a request that wrote more than 4 GiB (which `Chain::parse`
    /// refuses) would saturate, not wrap to a small count.
    #[test]
    fn used_length_does_not_wrap() {
        let s = setup(Engine::Sync, 8, false);
        let chain = Chain { head: 0, readable: vec![], writable: vec![Segment { addr: GuestAddress(STATUS), len: 1 }] };
        assert_eq!(BlockHandler::finish(&s.t.mem, &chain, VIRTIO_BLK_S_OK, 1 << 32), Ok(u32::MAX));
        assert_eq!(BlockHandler::finish(&s.t.mem, &chain, VIRTIO_BLK_S_OK, u64::MAX), Ok(u32::MAX));
        assert_eq!(BlockHandler::finish(&s.t.mem, &chain, VIRTIO_BLK_S_OK, 511), Ok(512));
    }

    #[test]
    fn bad_requests_are_answered() {
        for engine in ENGINES {
            let mut s = setup(engine, 8, true);
            // Beyond the end: sectors 7..9 of 8.
            header(&s.t, HDR, VIRTIO_BLK_T_IN, 7);
            assert_eq!(s.run(&[(HDR, 16, false), (DATA, 1024, true), (STATUS, 1, true)]).unwrap().0, VIRTIO_BLK_S_IOERR);
            // A sector number that overflows.
            header(&s.t, HDR, VIRTIO_BLK_T_IN, u64::MAX);
            assert_eq!(s.run(&[(HDR, 16, false), (DATA, 512, true), (STATUS, 1, true)]).unwrap().0, VIRTIO_BLK_S_IOERR);
            // Not a multiple of 512.
            header(&s.t, HDR, VIRTIO_BLK_T_IN, 0);
            assert_eq!(s.run(&[(HDR, 16, false), (DATA, 100, true), (STATUS, 1, true)]).unwrap().0, VIRTIO_BLK_S_IOERR);
            // Write to a read-only disk.
            header(&s.t, HDR, VIRTIO_BLK_T_OUT, 0);
            assert_eq!(s.run(&[(HDR, 16, false), (DATA, 512, false), (STATUS, 1, true)]).unwrap().0, VIRTIO_BLK_S_IOERR);
            // DISCARD (not offered on a read-only disk), and an unknown type.
            for type_ in [VIRTIO_BLK_T_DISCARD, 99] {
                header(&s.t, HDR, type_, 0);
                assert_eq!(s.run(&[(HDR, 16, false), (STATUS, 1, true)]).unwrap().0, VIRTIO_BLK_S_UNSUPP);
            }
            // A read of the last sector is fine; an empty read too.
            header(&s.t, HDR, VIRTIO_BLK_T_IN, 7);
            assert_eq!(s.run(&[(HDR, 16, false), (DATA, 512, true), (STATUS, 1, true)]), Ok((VIRTIO_BLK_S_OK, 513)));
            assert_eq!(s.run(&[(HDR, 16, false), (STATUS, 1, true)]), Ok((VIRTIO_BLK_S_OK, 1)), "{engine:?}");
        }
    }

    #[test]
    fn wrong_direction_is_refused() {
        for engine in ENGINES {
            let mut s = setup(engine, 8, false);
            // A read whose data buffer is device-readable.
            header(&s.t, HDR, VIRTIO_BLK_T_IN, 0);
            assert_eq!(s.run(&[(HDR, 16, false), (DATA, 512, false), (STATUS, 1, true)]).unwrap().0, VIRTIO_BLK_S_IOERR);
            // A write whose data buffer is device-writable: nothing is written to the disk.
            s.t.mem.write_slice(&[0x11; 512], GuestAddress(DATA)).unwrap();
            header(&s.t, HDR, VIRTIO_BLK_T_OUT, 0);
            assert_eq!(s.run(&[(HDR, 16, false), (DATA, 512, true), (STATUS, 1, true)]).unwrap().0, VIRTIO_BLK_S_IOERR);
            assert_eq!(s.disk.data()[0], 0);
            // The header in a device-writable buffer: no header at all, the device needs a reset.
            assert!(matches!(s.run(&[(HDR, 16, true), (STATUS, 1, true)]), Err(DeviceError::Request(_))));
            // No status byte.
            header(&s.t, HDR, VIRTIO_BLK_T_FLUSH, 0);
            assert!(matches!(s.run(&[(HDR, 16, false)]), Err(DeviceError::Request(_))));
            // A short header.
            assert!(matches!(s.run(&[(HDR, 8, false), (STATUS, 1, true)]), Err(DeviceError::Request(_))));
        }
    }

    #[test]
    fn host_errors_are_ioerr() {
        let mut s = setup(Engine::Mem, 8, false);
        s.disk.mem.as_ref().unwrap().fail.store(true, Ordering::Relaxed);
        for type_ in [VIRTIO_BLK_T_IN, VIRTIO_BLK_T_OUT] {
            header(&s.t, HDR, type_, 0);
            let w = type_ == VIRTIO_BLK_T_IN;
            assert_eq!(s.run(&[(HDR, 16, false), (DATA, 512, w), (STATUS, 1, true)]).unwrap().0, VIRTIO_BLK_S_IOERR);
        }
        header(&s.t, HDR, VIRTIO_BLK_T_FLUSH, 0);
        assert_eq!(s.run(&[(HDR, 16, false), (STATUS, 1, true)]).unwrap().0, VIRTIO_BLK_S_IOERR);
    }

    #[test]
    fn host_errors_on_files_are_ioerr() {
        for engine in FILE_ENGINES {
            // The device believes the disk writable, the host file is not: EBADF.
            let mut s = setup_with(engine, 8, false, true, 16);
            header(&s.t, HDR, VIRTIO_BLK_T_OUT, 0);
            assert_eq!(s.run(&[(HDR, 16, false), (DATA, 512, false), (STATUS, 1, true)]), Ok((VIRTIO_BLK_S_IOERR, 1)));
            // The file shrank under the VMM: a read past its new end fails.
            let (_, path) = s.disk.file.as_ref().unwrap();
            std::fs::OpenOptions::new().write(true).open(path).unwrap().set_len(1024 + 512).unwrap();
            header(&s.t, HDR, VIRTIO_BLK_T_IN, 2);
            let r = s.run(&[(HDR, 16, false), (DATA, 1024, true), (STATUS, 1, true)]).unwrap();
            assert_eq!(r.0, VIRTIO_BLK_S_IOERR, "{engine:?}");
        }
    }

    #[test]
    fn large_request_in_chunks() {
        for engine in ENGINES {
            let mut s = setup(engine, 1024, false); // 512 KiB
            let pattern: Vec<u8> = (0..CHUNK * 3).map(|i| (i / 512) as u8).collect();
            s.t.mem.write_slice(&pattern, GuestAddress(0x40000)).unwrap();
            header(&s.t, HDR, VIRTIO_BLK_T_OUT, 10);
            let len = pattern.len() as u32;
            assert_eq!(s.run(&[(HDR, 16, false), (0x40000, len, false), (STATUS, 1, true)]).unwrap().0, VIRTIO_BLK_S_OK);
            assert_eq!(&s.disk.data()[5120..5120 + pattern.len()], &pattern[..], "{engine:?}");
            s.t.mem.write_slice(&vec![0; pattern.len()], GuestAddress(0x40000)).unwrap();
            header(&s.t, HDR, VIRTIO_BLK_T_IN, 10);
            assert_eq!(s.run(&[(HDR, 16, false), (0x40000, len, true), (STATUS, 1, true)]).unwrap(), (VIRTIO_BLK_S_OK, len + 1));
            let mut back = vec![0u8; pattern.len()];
            s.t.mem.read_slice(&mut back, GuestAddress(0x40000)).unwrap();
            assert_eq!(back, pattern);
        }
    }

    /// With O_DIRECT, guest buffers at odd addresses and of odd lengths (as a guest
    /// kernel's heap buffer, or a buffer split over descriptors) are served, through a
    /// bounce buffer, with the same result as buffered I/O; aligned ones directly.
    #[test]
    fn direct_io_any_guest_buffer() {
        for engine in [Engine::SyncDirect, Engine::UringDirect, Engine::SyncDirect4k, Engine::UringDirect4k] {
            let mut s = setup(engine, 64, false);
            let pattern: Vec<u8> = (0..8192u32).map(|i| (i * 7 + i / 512) as u8).collect();
            // Written from 3 bytes past a page, in pieces of 100, 924 and 7168 bytes.
            let at = DATA + 3;
            s.t.mem.write_slice(&pattern, GuestAddress(at)).unwrap();
            header(&s.t, HDR, VIRTIO_BLK_T_OUT, 8);
            let w = [(HDR, 16, false), (at, 100, false), (at + 100, 924, false), (at + 1024, 7168, false), (STATUS, 1, true)];
            assert_eq!(s.run(&w), Ok((VIRTIO_BLK_S_OK, 1)), "{engine:?}");
            assert_eq!(&s.disk.data()[4096..4096 + 8192], &pattern[..], "{engine:?}");
            // Read back into a buffer 8 bytes past a page, in one piece, then page-aligned
            // in two (the direct path, at the file's own alignment).
            for (at, split) in [(0x40008u64, 8192u32), (0x40000, 512)] {
                s.t.mem.write_slice(&[0; 8192], GuestAddress(at)).unwrap();
                header(&s.t, HDR, VIRTIO_BLK_T_IN, 8);
                let r = [(HDR, 16, false), (at, split, true), (at + u64::from(split), 8192 - split, true), (STATUS, 1, true)];
                let r = if split == 8192 { vec![r[0], r[1], r[3]] } else { r.to_vec() };
                assert_eq!(s.run(&r), Ok((VIRTIO_BLK_S_OK, 8193)), "{engine:?}");
                let mut back = vec![0u8; 8192];
                s.t.mem.read_slice(&mut back, GuestAddress(at)).unwrap();
                assert_eq!(back, pattern, "{engine:?}");
            }
            // One sector at sector 3: misaligned for a 4 KiB host (the buffered descriptor).
            s.t.mem.write_slice(&[0x5a; 512], GuestAddress(DATA)).unwrap();
            header(&s.t, HDR, VIRTIO_BLK_T_OUT, 3);
            assert_eq!(s.run(&[(HDR, 16, false), (DATA, 512, false), (STATUS, 1, true)]), Ok((VIRTIO_BLK_S_OK, 1)));
            header(&s.t, HDR, VIRTIO_BLK_T_IN, 3);
            s.t.mem.write_slice(&[0; 1024], GuestAddress(DATA + 1)).unwrap();
            assert_eq!(s.run(&[(HDR, 16, false), (DATA + 1, 1024, true), (STATUS, 1, true)]), Ok((VIRTIO_BLK_S_OK, 1025)));
            let mut back = [0u8; 1024];
            s.t.mem.read_slice(&mut back, GuestAddress(DATA + 1)).unwrap();
            assert_eq!(&back[..512], &[0x5a; 512]);
            assert_eq!(&back[512..], &[0; 512]);
            header(&s.t, HDR, VIRTIO_BLK_T_FLUSH, 0);
            assert_eq!(s.run(&[(HDR, 16, false), (STATUS, 1, true)]), Ok((VIRTIO_BLK_S_OK, 1)));
        }
    }

    /// 32 requests started before any completes, as a guest at QD32: all in flight on
    /// the host at once, each finished by its own completion.
    #[test]
    fn many_requests_in_flight() {
        for engine in [Engine::Uring, Engine::UringDirect, Engine::UringDirect4k] {
            many_requests_in_flight_on(engine);
        }
    }

    fn many_requests_in_flight_on(engine: Engine) {
        let mut s = setup_with(engine, 64, false, false, 128);
        let data = |i: u64| 0x40000 + i * 0x1000;
        let hdr = |i: u64| HDR + i * 16;
        let status = |i: u64| STATUS + i;
        for i in 0..32u64 {
            s.t.mem.write_slice(&[i as u8 + 1; 1024], GuestAddress(data(i))).unwrap();
            header(&s.t, hdr(i), VIRTIO_BLK_T_OUT, i * 2);
            let (_, done) = s.start(&[(hdr(i), 16, false), (data(i), 1024, false), (status(i), 1, true)]).unwrap();
            assert_eq!(done, None, "in flight");
        }
        assert_eq!(s.handler.aio.as_ref().unwrap().in_flight(), 32);
        // A flush after them (a barrier on the host), then all read back at once.
        header(&s.t, hdr(32), VIRTIO_BLK_T_FLUSH, 0);
        assert_eq!(s.start(&[(hdr(32), 16, false), (status(32), 1, true)]).unwrap().1, None);
        let mut done = s.wait(33);
        done.sort();
        assert_eq!(done.len(), 33);
        assert!(done.iter().all(|&(_, len)| len == 1));
        let disk = s.disk.data();
        for i in 0..32u64 {
            assert_eq!(s.t.mem.read_obj::<u8>(GuestAddress(status(i))).unwrap(), VIRTIO_BLK_S_OK);
            assert_eq!(&disk[i as usize * 1024..][..1024], &[i as u8 + 1; 1024]);
            s.t.mem.write_slice(&[0; 1024], GuestAddress(data(i))).unwrap();
            header(&s.t, hdr(i), VIRTIO_BLK_T_IN, i * 2);
            assert_eq!(s.start(&[(hdr(i), 16, false), (data(i), 1024, true), (status(i), 1, true)]).unwrap().1, None);
        }
        let done = s.wait(32);
        assert!(done.iter().all(|&(_, len)| len == 1025));
        for i in 0..32u64 {
            let mut back = [0u8; 1024];
            s.t.mem.read_slice(&mut back, GuestAddress(data(i))).unwrap();
            assert_eq!(back, [i as u8 + 1; 1024]);
        }
        // Quiesce with requests in flight: they finish on the host, nothing is reported.
        header(&s.t, hdr(0), VIRTIO_BLK_T_IN, 0);
        assert_eq!(s.start(&[(hdr(0), 16, false), (data(0), 1024, true), (status(0), 1, true)]).unwrap().1, None);
        s.handler.submit().unwrap();
        s.handler.quiesce();
        assert_eq!(s.handler.aio.as_ref().unwrap().in_flight(), 0);
        assert_eq!(s.handler.free_tokens.len(), s.handler.in_flight.len());
    }

    mod prop {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            /// Whatever the header and buffer sizes, the parser never panics, a read or
            /// write lies inside the disk in whole sectors, and a read-only disk is never
            /// written.
            #[test]
            fn parse_is_safe(type_ in prop_oneof![0u32..16, any::<u32>()], sector in prop_oneof![0u64..64, any::<u64>()],
                             readable in 0u64..70_000, writable in 1u64..70_000, capacity in 0u64..128, ro: bool) {
                let h = RequestHeader { type_, reserved: 0, sector };
                match parse_request(&h, readable, writable, capacity, ro) {
                    Ok(Request::Read { offset, len }) | Ok(Request::Write { offset, len }) => {
                        prop_assert_eq!(len % SECTOR_SIZE, 0);
                        prop_assert!(offset + len <= capacity * SECTOR_SIZE);
                        if type_ == VIRTIO_BLK_T_OUT {
                            prop_assert!(!ro);
                            prop_assert_eq!(len, readable - 16);
                        } else {
                            prop_assert_eq!(len, writable - 1);
                        }
                    }
                    Ok(Request::GetId { len }) => prop_assert!(len <= ID_BYTES as u64 && len < writable),
                    Ok(Request::Flush) => prop_assert_eq!(type_, VIRTIO_BLK_T_FLUSH),
                    // The segment is checked apart (parse_discard), the shape here.
                    Ok(Request::Discard { .. }) => prop_assert!(type_ == VIRTIO_BLK_T_DISCARD && !ro && readable == 32 && writable == 1),
                    Err(status) => prop_assert!(status == VIRTIO_BLK_S_IOERR || status == VIRTIO_BLK_S_UNSUPP),
                }
            }

            /// A discard segment is inside the disk and the limit, or refused.
            #[test]
            fn discard_segments_are_checked(sector in prop_oneof![0u64..64, any::<u64>()], n: u32, flags in 0u32..3, capacity in 0u64..128) {
                let seg: [u8; 16] = [sector.to_le_bytes().to_vec(), n.to_le_bytes().to_vec(), flags.to_le_bytes().to_vec()].concat().try_into().unwrap();
                match parse_discard(&seg, capacity) {
                    Ok(Request::Discard { offset, len }) => {
                        prop_assert_eq!(flags, 0);
                        prop_assert!(offset + len <= capacity * SECTOR_SIZE);
                    }
                    Ok(other) => prop_assert!(false, "{:?}", other),
                    Err(status) => prop_assert!(status == VIRTIO_BLK_S_IOERR || status == VIRTIO_BLK_S_UNSUPP),
                }
            }
        }
    }
}
