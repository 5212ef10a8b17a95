//! virtio-blk request processing (section 5.2.6), with no knowledge of the transport.
//!
//! A request is one chain: a 16-byte header (device-readable), then data (readable for
//! OUT, writable for IN and GET_ID), then one status byte (device-writable, the chain's
//! last byte). A chain without a complete header or without a status byte cannot be
//! answered: that is a driver bug and the device needs a reset (QEMU: "virtio-blk missing
//! headers"). Everything else is answered: a wrong-direction data buffer, a length that
//! is not a multiple of 512, a range past the end or a write to a read-only disk with
//! IOERR, an unknown type with UNSUPP, a host I/O error with IOERR.

use std::sync::Arc;

use vm_memory::GuestMemoryMmap;

use super::*;
use crate::devices::virtio::chain::Chain;
use crate::devices::virtio::{DeviceError, QueueHandler};

/// Largest bounce buffer between the backing file and guest memory.
const CHUNK: usize = 128 << 10;

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
}

/// Checks a request from its header and the sizes of its buffers: `readable` bytes
/// (header included) and `writable` bytes (status included, so at least 1).
/// `Err` is the status to answer with.
pub fn parse_request(header: &RequestHeader, readable: u64, writable: u64, capacity: u64, read_only: bool) -> Result<Request, u8> {
    let in_data = writable.saturating_sub(1);
    let out_data = readable.saturating_sub(16);
    let range = |len: u64| -> Result<u64, u8> {
        if !len.is_multiple_of(SECTOR_SIZE) {
            log::warn!("virtio-blk: data length {len} is not a multiple of {SECTOR_SIZE}");
            return Err(VIRTIO_BLK_S_IOERR);
        }
        let end = header.sector.checked_add(len / SECTOR_SIZE);
        if end.is_none_or(|end| end > capacity) {
            log::warn!("virtio-blk: sectors {}+{} beyond the end ({capacity})", header.sector, len / SECTOR_SIZE);
            return Err(VIRTIO_BLK_S_IOERR);
        }
        Ok(header.sector * SECTOR_SIZE)
    };
    match header.type_ {
        VIRTIO_BLK_T_IN => {
            if out_data != 0 {
                log::warn!("virtio-blk: read request with {out_data} device-readable data bytes");
                return Err(VIRTIO_BLK_S_IOERR);
            }
            Ok(Request::Read { offset: range(in_data)?, len: in_data })
        }
        VIRTIO_BLK_T_OUT => {
            if in_data != 0 {
                log::warn!("virtio-blk: write request with {in_data} device-writable data bytes");
                return Err(VIRTIO_BLK_S_IOERR);
            }
            if read_only {
                log::warn!("virtio-blk: write to a read-only disk");
                return Err(VIRTIO_BLK_S_IOERR);
            }
            Ok(Request::Write { offset: range(out_data)?, len: out_data })
        }
        VIRTIO_BLK_T_FLUSH => Ok(Request::Flush),
        VIRTIO_BLK_T_GET_ID => {
            if out_data != 0 {
                log::warn!("virtio-blk: GET_ID with {out_data} device-readable data bytes");
                return Err(VIRTIO_BLK_S_IOERR);
            }
            Ok(Request::GetId { len: in_data.min(ID_BYTES as u64) })
        }
        other => {
            log::warn!("virtio-blk: unsupported request type {other}");
            Err(VIRTIO_BLK_S_UNSUPP)
        }
    }
}

pub struct BlockHandler {
    backend: Arc<dyn BlockBackend>,
    read_only: bool,
    id: [u8; ID_BYTES],
    capacity: u64,
}

impl BlockHandler {
    pub fn new(backend: Arc<dyn BlockBackend>, read_only: bool, id: [u8; ID_BYTES]) -> Self {
        let capacity = backend.size() / SECTOR_SIZE;
        Self { backend, read_only, id, capacity }
    }

    /// Carries out a checked request; returns the status and the data bytes written.
    fn execute(&self, mem: &GuestMemoryMmap, chain: &Chain, req: Request) -> Result<(u8, u64), DeviceError> {
        let io_err = |e: std::io::Error| {
            log::warn!("virtio-blk: host I/O error: {e}");
            VIRTIO_BLK_S_IOERR
        };
        let mut buf = Vec::new();
        match req {
            Request::Read { offset, len } => {
                let mut done = 0u64;
                while done < len {
                    let n = (len - done).min(CHUNK as u64) as usize;
                    buf.resize(n, 0);
                    if let Err(e) = self.backend.read_at(offset + done, &mut buf) {
                        return Ok((io_err(e), done));
                    }
                    chain.write_at(mem, done, &buf)?;
                    done += n as u64;
                }
                Ok((VIRTIO_BLK_S_OK, len))
            }
            Request::Write { offset, len } => {
                let mut done = 0u64;
                while done < len {
                    let n = (len - done).min(CHUNK as u64) as usize;
                    buf.resize(n, 0);
                    chain.read_at(mem, 16 + done, &mut buf)?;
                    if let Err(e) = self.backend.write_at(offset + done, &buf) {
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
        }
    }
}

impl QueueHandler for BlockHandler {
    fn process(&mut self, _queue: usize, mem: &GuestMemoryMmap, chain: &Chain) -> Result<u32, DeviceError> {
        let mut header = [0u8; 16];
        let writable = chain.writable_len();
        if writable == 0 || !chain.read_at(mem, 0, &mut header)? {
            return Err(DeviceError::Request(format!(
                "virtio-blk request without header or status ({} bytes to read, {writable} to write)",
                chain.readable_len()
            )));
        }
        let header = RequestHeader::from_bytes(&header);
        let (status, written) = match parse_request(&header, chain.readable_len(), writable, self.capacity, self.read_only) {
            Ok(req) => self.execute(mem, chain, req)?,
            Err(status) => (status, 0),
        };
        chain.write_at(mem, writable - 1, &[status])?;
        Ok((written + 1) as u32)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::devices::virtio::chain::tests::TestQueue;
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

    struct Setup {
        t: TestQueue,
        q: virtio_queue::Queue,
        disk: Arc<MemDisk>,
        handler: BlockHandler,
        next: u16,
    }

    fn setup(sectors: usize, read_only: bool) -> Setup {
        let t = TestQueue::new(16);
        let q = t.queue();
        let disk = Arc::new(MemDisk { data: Mutex::new(vec![0; sectors * 512]), ..Default::default() });
        let mut id = [0u8; ID_BYTES];
        id[..8].copy_from_slice(b"disk-id!");
        let handler = BlockHandler::new(disk.clone(), read_only, id);
        Setup { t, q, disk, handler, next: 0 }
    }

    impl Setup {
        /// Publishes a chain and runs it: (status byte, used len) or the device error.
        fn run(&mut self, bufs: &[(u64, u32, bool)]) -> Result<(u8, u32), DeviceError> {
            let head = self.next;
            self.t.chain(head, bufs);
            self.next += bufs.len() as u16;
            self.t.publish(head);
            let chain = self.t.pop(&mut self.q).map_err(DeviceError::Chain)?;
            self.t.mem.write_obj(0xffu8, GuestAddress(STATUS)).unwrap();
            let len = self.handler.process(0, &self.t.mem, &chain)?;
            Ok((self.t.mem.read_obj(GuestAddress(STATUS)).unwrap(), len))
        }
    }

    #[test]
    fn write_then_read() {
        let mut s = setup(8, false);
        s.t.mem.write_slice(&[0xab; 1024], GuestAddress(DATA)).unwrap();
        header(&s.t, HDR, VIRTIO_BLK_T_OUT, 2);
        assert_eq!(s.run(&[(HDR, 16, false), (DATA, 1024, false), (STATUS, 1, true)]), Ok((VIRTIO_BLK_S_OK, 1)));
        assert_eq!(&s.disk.data.lock().unwrap()[1024..2048], &[0xab; 1024]);
        assert_eq!(s.disk.data.lock().unwrap()[1023], 0);

        header(&s.t, HDR, VIRTIO_BLK_T_IN, 1);
        s.t.mem.write_slice(&[0; 1024], GuestAddress(DATA)).unwrap();
        // Data split over two descriptors.
        let r = s.run(&[(HDR, 16, false), (DATA, 512, true), (DATA + 512, 1024, true), (STATUS, 1, true)]);
        assert_eq!(r, Ok((VIRTIO_BLK_S_OK, 1537)));
        let mut back = [0u8; 1536];
        s.t.mem.read_slice(&mut back, GuestAddress(DATA)).unwrap();
        assert_eq!(&back[..512], &[0; 512]);
        assert_eq!(&back[512..], &[0xab; 1024]);
    }

    #[test]
    fn flush_and_get_id() {
        let mut s = setup(8, false);
        header(&s.t, HDR, VIRTIO_BLK_T_FLUSH, 0);
        assert_eq!(s.run(&[(HDR, 16, false), (STATUS, 1, true)]), Ok((VIRTIO_BLK_S_OK, 1)));
        assert_eq!(s.disk.flushes.load(Ordering::Relaxed), 1);
        header(&s.t, HDR, VIRTIO_BLK_T_GET_ID, 0);
        assert_eq!(s.run(&[(HDR, 16, false), (DATA, 20, true), (STATUS, 1, true)]), Ok((VIRTIO_BLK_S_OK, 21)));
        let mut id = [0u8; 20];
        s.t.mem.read_slice(&mut id, GuestAddress(DATA)).unwrap();
        assert_eq!(&id[..9], b"disk-id!\0");
    }

    #[test]
    fn bad_requests_are_answered() {
        let mut s = setup(8, true);
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
        // Unknown type (DISCARD is not offered).
        header(&s.t, HDR, 11, 0);
        assert_eq!(s.run(&[(HDR, 16, false), (STATUS, 1, true)]).unwrap().0, VIRTIO_BLK_S_UNSUPP);
    }

    #[test]
    fn wrong_direction_is_refused() {
        let mut s = setup(8, false);
        // A read whose data buffer is device-readable.
        header(&s.t, HDR, VIRTIO_BLK_T_IN, 0);
        assert_eq!(s.run(&[(HDR, 16, false), (DATA, 512, false), (STATUS, 1, true)]).unwrap().0, VIRTIO_BLK_S_IOERR);
        // A write whose data buffer is device-writable: nothing is written to the disk.
        s.t.mem.write_slice(&[0x11; 512], GuestAddress(DATA)).unwrap();
        header(&s.t, HDR, VIRTIO_BLK_T_OUT, 0);
        assert_eq!(s.run(&[(HDR, 16, false), (DATA, 512, true), (STATUS, 1, true)]).unwrap().0, VIRTIO_BLK_S_IOERR);
        assert_eq!(s.disk.data.lock().unwrap()[0], 0);
        // The header in a device-writable buffer: no header at all, the device needs a reset.
        assert!(matches!(s.run(&[(HDR, 16, true), (STATUS, 1, true)]), Err(DeviceError::Request(_))));
        // No status byte.
        header(&s.t, HDR, VIRTIO_BLK_T_FLUSH, 0);
        assert!(matches!(s.run(&[(HDR, 16, false)]), Err(DeviceError::Request(_))));
        // A short header.
        assert!(matches!(s.run(&[(HDR, 8, false), (STATUS, 1, true)]), Err(DeviceError::Request(_))));
    }

    #[test]
    fn host_errors_are_ioerr() {
        let mut s = setup(8, false);
        s.disk.fail.store(true, Ordering::Relaxed);
        for type_ in [VIRTIO_BLK_T_IN, VIRTIO_BLK_T_OUT] {
            header(&s.t, HDR, type_, 0);
            let w = type_ == VIRTIO_BLK_T_IN;
            assert_eq!(s.run(&[(HDR, 16, false), (DATA, 512, w), (STATUS, 1, true)]).unwrap().0, VIRTIO_BLK_S_IOERR);
        }
        header(&s.t, HDR, VIRTIO_BLK_T_FLUSH, 0);
        assert_eq!(s.run(&[(HDR, 16, false), (STATUS, 1, true)]).unwrap().0, VIRTIO_BLK_S_IOERR);
    }

    #[test]
    fn large_request_in_chunks() {
        let mut s = setup(1024, false); // 512 KiB
        let pattern: Vec<u8> = (0..CHUNK * 3).map(|i| (i / 512) as u8).collect();
        s.t.mem.write_slice(&pattern, GuestAddress(0x40000)).unwrap();
        header(&s.t, HDR, VIRTIO_BLK_T_OUT, 10);
        let len = pattern.len() as u32;
        assert_eq!(s.run(&[(HDR, 16, false), (0x40000, len, false), (STATUS, 1, true)]).unwrap().0, VIRTIO_BLK_S_OK);
        assert_eq!(&s.disk.data.lock().unwrap()[5120..5120 + pattern.len()], &pattern[..]);
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
                    Err(status) => prop_assert!(status == VIRTIO_BLK_S_IOERR || status == VIRTIO_BLK_S_UNSUPP),
                }
            }
        }
    }
}
