//! The receive queue: frames from the tap into the guest's buffers.
//!
//! The driver posts device-writable chains on queue 0 ahead of any traffic; the device
//! holds them ([`Receiver::push`], at most a queue's worth) until frames come. Each chain
//! must be device-writable only and hold at least the 12-byte header (section 5.1.6.3.1
//! asks that of every buffer with MRG_RXBUF; without it a smaller buffer could never
//! take a frame): anything else is a driver bug and the device needs a reset.
//!
//! One frame is one `readv` on the tap ([`Receiver::receive`]) whose iovecs are, in
//! order: a host buffer for the tap's header (checked, then replaced by ours); the held
//! chains' buffers after their header room, straight in guest memory, as many chains as
//! the largest frame needs (with MRG_RXBUF; without it the first chain only) and as the
//! kernel's IOV_MAX allows; and a bounce buffer of [`MAX_RX_FRAME`] bytes. A frame that
//! fits the chains lands in guest memory with no copy; what does not fit lands in the
//! bounce buffer and is copied into the next chains (through the checked chain
//! accessors). The frame is then laid out over the chains greedily ([`spread`]): each
//! chain filled before the next, the first beginning with the header, so the part the
//! kernel wrote is exactly where the layout puts it.
//!
//! - Without MRG_RXBUF a frame must fit the first chain (header included), else it is
//!   dropped and the chain waits for the next frame.
//! - With it, a frame takes as many chains as it needs; each gets a used entry with the
//!   bytes it holds (the first counts the header), consecutively in the used ring, and
//!   `num_buffers` says how many. When the chains held cannot take the frame yet, it
//!   waits in the bounce buffer (its first part already in the first chains) until the
//!   driver posts more; a full queue's worth that still cannot take it drops it.
//!
//! The header the guest sees is ours: zero but `num_buffers` (1 without MRG_RXBUF) and,
//! when the guest negotiated VIRTIO_NET_F_GUEST_CSUM (and the tap's TUNSETOFFLOAD has
//! TUN_F_CSUM), the tap's checksum state: NEEDS_CSUM with its `csum_start` and
//! `csum_offset` (a frame from the host's own stack, checksum left partial), or
//! DATA_VALID (checked). Without GUEST_CSUM neither reaches the guest: DATA_VALID is
//! dropped from the header and a frame asking for a checksum is dropped whole, as is one
//! asking for a segmentation (the tap's TSO is never turned on).
//!
//! Memory: the chains held (at most [`QUEUE_SIZE`]) and one bounce buffer; when no chain
//! is held, or a frame waits for chains, the device stops reading the tap, whose queue in
//! the host kernel (txqueuelen) is the only buffer.

use std::collections::VecDeque;
use std::io;
use std::sync::atomic::Ordering::Relaxed;

use vm_memory::GuestMemoryMmap;

use super::tap::FrameIo;
use super::{
    frame_refused, mark_dirty, push_guest_iovecs, NetHdr, HDR_LEN, MAX_RX_FRAME, QUEUE_SIZE, RX_QUEUE, STATS, VIRTIO_NET_HDR_F_DATA_VALID,
    VIRTIO_NET_HDR_F_NEEDS_CSUM, VIRTIO_NET_HDR_GSO_NONE,
};
use crate::devices::virtio::chain::{Chain, ChainError};
use crate::devices::virtio::DeviceError;

/// Most iovecs one readv takes (Linux's UIO_MAXIOV).
pub const IOV_MAX: usize = 1024;

/// What one [`Receiver::receive`] did.
#[derive(Debug)]
pub enum Outcome {
    /// A frame went to the guest (its used entries are in `done`).
    Delivered,
    /// A frame was read and dropped (counted).
    Dropped,
    /// A frame waits for more buffers (MRG_RXBUF): read nothing more until they come.
    Pending,
    /// No buffer is held: read nothing until the driver posts some.
    NoBuffers,
    /// The tap had no frame (EAGAIN).
    NoFrame,
    /// Reading the tap failed otherwise (it was deleted: EBADFD).
    Failed(io::Error),
}

/// A frame read from the tap and not yet handed to the guest.
#[derive(Debug, Clone, Copy)]
struct Frame {
    /// Its bytes, header excluded.
    len: usize,
    /// The checksum state the guest is told (GUEST_CSUM): the tap's NEEDS_CSUM with
    /// `csum_start` and `csum_offset`, or DATA_VALID; else none.
    csum: NetHdr,
    /// Of those, the first ones, which the host wrote straight into the chains; the
    /// others are at the start of the bounce buffer.
    direct: usize,
}

/// The receive side of one activated device.
pub struct Receiver {
    mrg: bool,
    /// VIRTIO_NET_F_GUEST_CSUM: partly checksummed and checked frames go to the guest.
    guest_csum: bool,
    chains: VecDeque<Chain>,
    bounce: Vec<u8>,
    pending: Option<Frame>,
    /// Most iovecs per readv ([`IOV_MAX`]; less in tests).
    iov_max: usize,
}

/// How a frame of `total` bytes (header included) spreads over chains of the capacities
/// `caps`, in order, each filled before the next: the bytes each chain takes, or `None`
/// when they cannot hold it. Without `mrg` only the first chain may take it.
pub fn spread(caps: impl IntoIterator<Item = u64>, total: u64, mrg: bool) -> Option<Vec<u32>> {
    let mut lens = Vec::new();
    let mut left = total;
    for cap in caps {
        let n = cap.min(left);
        // A chain holds at most u32::MAX bytes (`Chain::parse`).
        lens.push(u32::try_from(n).ok()?);
        left -= n;
        if left == 0 {
            return Some(lens);
        }
        if !mrg {
            return None;
        }
    }
    None
}

impl Receiver {
    pub fn new(mrg: bool) -> Self {
        Self { mrg, guest_csum: false, chains: VecDeque::new(), bounce: vec![0; MAX_RX_FRAME], pending: None, iov_max: IOV_MAX }
    }

    /// VIRTIO_NET_F_GUEST_CSUM was negotiated (the tap then hands partial checksums).
    pub fn set_guest_csum(&mut self, on: bool) {
        self.guest_csum = on;
    }

    /// Fewer iovecs per read (tests: the bounce path without a huge chain).
    #[cfg(test)]
    pub(crate) fn with_iov_max(mut self, n: usize) -> Self {
        self.iov_max = n;
        self
    }

    /// Holds a chain the driver posted, after checking it.
    pub fn push(&mut self, chain: Chain) -> Result<(), DeviceError> {
        if !chain.readable.is_empty() {
            return Err(DeviceError::Request("virtio-net: a receive chain with device-readable buffers".into()));
        }
        if chain.writable_len() < HDR_LEN as u64 {
            return Err(DeviceError::Request(format!(
                "virtio-net: a receive chain of {} bytes, less than the {HDR_LEN}-byte header",
                chain.writable_len()
            )));
        }
        if self.chains.len() >= usize::from(QUEUE_SIZE) {
            return Err(DeviceError::Queue(format!("virtio-net: more than {QUEUE_SIZE} receive chains outstanding")));
        }
        self.chains.push_back(chain);
        Ok(())
    }

    /// Whether the tap should be read: chains are held and no frame waits for more.
    pub fn wants_frames(&self) -> bool {
        !self.chains.is_empty() && self.pending.is_none()
    }

    /// Whether a frame waits for more chains.
    pub fn is_pending(&self) -> bool {
        self.pending.is_some()
    }

    /// Chains held.
    pub fn buffers(&self) -> usize {
        self.chains.len()
    }

    /// Moves one frame from `io` into the chains (or finishes the frame that waited for
    /// chains), appending the used entries (queue, head, len) to `done`.
    pub fn receive(&mut self, mem: &GuestMemoryMmap, io: &dyn FrameIo, done: &mut Vec<(usize, u16, u32)>) -> Result<Outcome, DeviceError> {
        if self.pending.is_some() {
            return self.deliver(mem, done);
        }
        if self.chains.is_empty() {
            return Ok(Outcome::NoBuffers);
        }
        let mut hdr = [0u8; HDR_LEN];
        let mut iov = vec![libc::iovec { iov_base: hdr.as_mut_ptr().cast(), iov_len: HDR_LEN }];
        let mut direct_cap = 0usize;
        for (i, chain) in self.chains.iter().enumerate() {
            if i > 0 && (!self.mrg || direct_cap >= MAX_RX_FRAME) {
                break;
            }
            let skip = if i == 0 { HDR_LEN as u64 } else { 0 };
            let room = chain.writable_len() - skip;
            let before = iov.len();
            push_guest_iovecs(mem, &chain.writable, skip, room, true, &mut iov)?;
            // Room for the bounce buffer's iovec; the first chain always goes (at most
            // two iovecs per descriptor, and a queue's worth of descriptors).
            if i > 0 && iov.len() + 1 > self.iov_max {
                iov.truncate(before);
                break;
            }
            direct_cap = direct_cap.saturating_add(usize::try_from(room).unwrap_or(usize::MAX));
        }
        iov.push(libc::iovec { iov_base: self.bounce.as_mut_ptr().cast(), iov_len: self.bounce.len() });
        // SAFETY: `hdr` and the bounce buffer are ours and live through the call; the
        // other iovecs are host addresses of the held chains' device-writable buffers,
        // checked inside guest memory by vm-memory, mapped while `mem` lives. The chains
        // are the device's until their used entries are published, and the VMM itself
        // touches guest memory only through vm-memory's volatile accessors.
        let n = match unsafe { io.read_frame(&iov) } {
            // A tap never reads empty (every frame has its header): the end of the file.
            Ok(0) => return Ok(Outcome::Failed(io::Error::new(io::ErrorKind::UnexpectedEof, "end of file"))),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Outcome::NoFrame),
            Err(e) => return Ok(Outcome::Failed(e)),
        };
        if n <= HDR_LEN {
            STATS.rx_dropped.fetch_add(1, Relaxed);
            log::debug!("virtio-net: a frame of {n} bytes (no more than a header) from the tap, dropped");
            return Ok(Outcome::Dropped);
        }
        let len = n - HDR_LEN;
        if len > direct_cap.saturating_add(self.bounce.len()) {
            // The tap says how long the frame was; the buffers took only its start.
            STATS.rx_dropped.fetch_add(1, Relaxed);
            log::debug!("virtio-net: a frame of {len} bytes from the tap, more than {MAX_RX_FRAME}: dropped");
            return Ok(Outcome::Dropped);
        }
        let tap_hdr = NetHdr::from_bytes(&hdr);
        let partial = tap_hdr.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM != 0;
        if tap_hdr.gso_type != VIRTIO_NET_HDR_GSO_NONE || partial && !self.guest_csum {
            STATS.rx_dropped.fetch_add(1, Relaxed);
            log::debug!("virtio-net: a frame from the tap asks for an offload the guest did not take ({tap_hdr:?}), dropped");
            return Ok(Outcome::Dropped);
        }
        let csum = match (self.guest_csum, partial) {
            (false, _) => NetHdr::default(),
            (true, true) => NetHdr { flags: VIRTIO_NET_HDR_F_NEEDS_CSUM, csum_start: tap_hdr.csum_start, csum_offset: tap_hdr.csum_offset, ..NetHdr::default() },
            (true, false) => NetHdr { flags: tap_hdr.flags & VIRTIO_NET_HDR_F_DATA_VALID, ..NetHdr::default() },
        };
        self.pending = Some(Frame { len, csum, direct: len.min(direct_cap) });
        self.deliver(mem, done)
    }

    /// Lays the pending frame out over the chains held, if they can take it.
    fn deliver(&mut self, mem: &GuestMemoryMmap, done: &mut Vec<(usize, u16, u32)>) -> Result<Outcome, DeviceError> {
        let Some(frame) = self.pending.take() else { return Ok(Outcome::NoBuffers) };
        let total = (HDR_LEN + frame.len) as u64;
        let Some(lens) = spread(self.chains.iter().map(Chain::writable_len), total, self.mrg) else {
            if self.mrg && self.chains.len() < usize::from(QUEUE_SIZE) {
                self.pending = Some(frame);
                return Ok(Outcome::Pending);
            }
            STATS.rx_dropped.fetch_add(1, Relaxed);
            frame_refused!("virtio-net: a frame of {} bytes does not fit the receive buffers, dropped", frame.len);
            return Ok(Outcome::Dropped);
        };
        let rest = &self.bounce[..frame.len - frame.direct];
        write_frame(mem, &self.chains, &lens, frame.direct, rest)?;
        let hdr = NetHdr { num_buffers: lens.len() as u16, ..frame.csum };
        self.chains[0].write_at(mem, 0, &hdr.to_bytes())?;
        for &len in &lens {
            let chain = self.chains.pop_front().expect("spread used held chains only");
            mark_dirty(mem, &chain.writable, 0, u64::from(len));
            done.push((RX_QUEUE, chain.head, len));
        }
        STATS.rx_frames.fetch_add(1, Relaxed);
        STATS.rx_bytes.fetch_add(frame.len as u64, Relaxed);
        Ok(Outcome::Delivered)
    }
}

/// Writes `data`, the frame's bytes from offset `from` on (header excluded), where the
/// layout `lens` puts them: chain 0's part begins after the header, each other chain's
/// at its start.
fn write_frame(mem: &GuestMemoryMmap, chains: &VecDeque<Chain>, lens: &[u32], from: usize, data: &[u8]) -> Result<(), ChainError> {
    let mut start = 0usize;
    for (i, (chain, &len)) in chains.iter().zip(lens).enumerate() {
        let skip = if i == 0 { HDR_LEN } else { 0 };
        let end = start + len as usize - skip;
        let (lo, hi) = (from.max(start), (from + data.len()).min(end));
        if lo < hi {
            let fits = chain.write_at(mem, (skip + lo - start) as u64, &data[lo - from..hi - from])?;
            debug_assert!(fits, "the layout stays inside the chain");
        }
        start = end;
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::devices::virtio::chain::tests::TestQueue;
    use std::sync::Mutex;
    use vm_memory::{Bytes, GuestAddress};

    /// Frames waiting to be read, as a tap holds them (each read takes one whole frame
    /// and says its full length, truncated or not).
    #[derive(Default)]
    pub(crate) struct FakeTap {
        pub incoming: Mutex<VecDeque<Vec<u8>>>,
        pub sent: Mutex<Vec<Vec<u8>>>,
        pub reads: std::sync::atomic::AtomicUsize,
    }

    impl FakeTap {
        /// Queues a frame with a header (`flags`, `gso_type`).
        pub fn frame(&self, flags: u8, gso_type: u8, frame: &[u8]) {
            let hdr = NetHdr { flags, gso_type, num_buffers: 0x7777, ..Default::default() };
            self.incoming.lock().unwrap().push_back([&hdr.to_bytes()[..], frame].concat());
        }
    }

    impl FrameIo for FakeTap {
        unsafe fn read_frame(&self, iov: &[libc::iovec]) -> io::Result<usize> {
            self.reads.fetch_add(1, Relaxed);
            let frame = self.incoming.lock().unwrap().pop_front().ok_or_else(|| io::Error::from(io::ErrorKind::WouldBlock))?;
            let mut at = 0;
            for v in iov {
                let n = v.iov_len.min(frame.len() - at);
                // SAFETY: the caller's promise: `v` is valid for writes of its length.
                unsafe { std::ptr::copy_nonoverlapping(frame[at..].as_ptr(), v.iov_base.cast::<u8>(), n) };
                at += n;
            }
            Ok(frame.len())
        }

        unsafe fn write_frame(&self, iov: &[libc::iovec]) -> io::Result<usize> {
            let mut frame = Vec::new();
            for v in iov {
                // SAFETY: the caller's promise: `v` is valid for reads of its length.
                frame.extend_from_slice(unsafe { std::slice::from_raw_parts(v.iov_base.cast::<u8>(), v.iov_len) });
            }
            let n = frame.len();
            self.sent.lock().unwrap().push(frame);
            Ok(n)
        }
    }

    /// A recognizable frame of `len` bytes.
    pub(crate) fn pattern(len: usize, seed: u8) -> Vec<u8> {
        (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect()
    }

    /// Posts receive chains of one writable buffer each (0x1000 apart... as sized) from
    /// descriptor `first` on, at 0x20000 + 0x20000 * i.
    fn post(t: &mut TestQueue, q: &mut virtio_queue::Queue, rx: &mut Receiver, first: u16, sizes: &[u32]) {
        for (i, &size) in sizes.iter().enumerate() {
            let d = first + i as u16;
            t.chain(d, &[(buf_addr(d), size, true)]);
            t.publish(d);
            rx.push(t.pop(q).unwrap()).unwrap();
        }
    }

    fn buf_addr(desc: u16) -> u64 {
        0x2_0000 + 0x2_0000 * u64::from(desc)
    }

    fn read(t: &TestQueue, desc: u16, offset: u64, len: usize) -> Vec<u8> {
        let mut b = vec![0u8; len];
        t.mem.read_slice(&mut b, GuestAddress(buf_addr(desc) + offset)).unwrap();
        b
    }

    fn header(t: &TestQueue, desc: u16) -> NetHdr {
        NetHdr::from_bytes(&read(t, desc, 0, HDR_LEN).try_into().unwrap())
    }

    fn setup(mrg: bool) -> (TestQueue, virtio_queue::Queue, Receiver, FakeTap) {
        let t = TestQueue::with_ram(64, 16 << 20);
        let q = t.queue();
        (t, q, Receiver::new(mrg), FakeTap::default())
    }

    #[test]
    fn spread_fills_each_chain_before_the_next() {
        assert_eq!(spread([100, 100], 60, false), Some(vec![60]));
        assert_eq!(spread([100, 100], 100, false), Some(vec![100]));
        assert_eq!(spread([100, 100], 101, false), None);
        assert_eq!(spread([100, 100], 101, true), Some(vec![100, 1]));
        assert_eq!(spread([12, 50, 50], 112, true), Some(vec![12, 50, 50]));
        assert_eq!(spread([12, 50, 50], 113, true), None);
        assert_eq!(spread([], 1, true), None);
        assert_eq!(spread([u64::from(u32::MAX) + 1], 1 << 33, true), None);
    }

    /// Without MRG_RXBUF: a frame that fits goes straight into the chain with our header
    /// (num_buffers 1, the tap's DATA_VALID cleared); one that does not is dropped and the
    /// chain takes the next frame.
    #[test]
    fn one_chain_per_frame_without_mrg() {
        let (mut t, mut q, mut rx, tap) = setup(false);
        post(&mut t, &mut q, &mut rx, 0, &[1526, 1526]);
        let mut done = Vec::new();
        let small = pattern(60, 1);
        tap.frame(super::super::VIRTIO_NET_HDR_F_DATA_VALID, 0, &small);
        assert!(matches!(rx.receive(&t.mem, &tap, &mut done).unwrap(), Outcome::Delivered));
        assert_eq!(done, [(RX_QUEUE, 0, 72)]);
        assert_eq!(header(&t, 0), NetHdr { num_buffers: 1, ..Default::default() });
        assert_eq!(read(&t, 0, 12, 60), small);

        let big = pattern(1515, 2);
        tap.frame(0, 0, &big);
        assert!(matches!(rx.receive(&t.mem, &tap, &mut done).unwrap(), Outcome::Dropped));
        assert_eq!(rx.buffers(), 1, "the chain waits for the next frame");
        let full = pattern(1514, 3);
        tap.frame(0, 0, &full);
        assert!(matches!(rx.receive(&t.mem, &tap, &mut done).unwrap(), Outcome::Delivered));
        assert_eq!(done[1], (RX_QUEUE, 1, 1526));
        assert_eq!(header(&t, 1).num_buffers, 1);
        assert_eq!(read(&t, 1, 12, 1514), full);
        // No chain left: the tap is not read.
        tap.frame(0, 0, &small);
        let reads = tap.reads.load(Relaxed);
        assert!(matches!(rx.receive(&t.mem, &tap, &mut done).unwrap(), Outcome::NoBuffers));
        assert!(!rx.wants_frames());
        assert_eq!(tap.reads.load(Relaxed), reads);
        assert_eq!(done.len(), 2);
        // An empty tap.
        post(&mut t, &mut q, &mut rx, 2, &[1526]);
        tap.incoming.lock().unwrap().clear();
        assert!(matches!(rx.receive(&t.mem, &tap, &mut done).unwrap(), Outcome::NoFrame));
        // A read of nothing at all: the tap is gone.
        tap.incoming.lock().unwrap().push_back(Vec::new());
        assert!(matches!(rx.receive(&t.mem, &tap, &mut done).unwrap(), Outcome::Failed(_)));
        assert_eq!(rx.buffers(), 1);
    }

    /// With MRG_RXBUF a frame spreads over consecutive chains, each filled before the
    /// next, with one used entry each and num_buffers in the first; the data reads back
    /// whole across the chains.
    #[test]
    fn frames_spread_over_chains_with_mrg() {
        let (mut t, mut q, mut rx, tap) = setup(true);
        post(&mut t, &mut q, &mut rx, 0, &[1024, 1024, 1024, 1024, 100]);
        let mut done = Vec::new();
        let frame = pattern(3000, 7);
        tap.frame(0, 0, &frame);
        assert!(matches!(rx.receive(&t.mem, &tap, &mut done).unwrap(), Outcome::Delivered));
        assert_eq!(done, [(RX_QUEUE, 0, 1024), (RX_QUEUE, 1, 1024), (RX_QUEUE, 2, 964)]);
        assert_eq!(header(&t, 0), NetHdr { num_buffers: 3, ..Default::default() });
        let back = [read(&t, 0, 12, 1012), read(&t, 1, 0, 1024), read(&t, 2, 0, 964)].concat();
        assert_eq!(back, frame);
        // The next frame starts in a fresh chain.
        let small = pattern(50, 9);
        tap.frame(0, 0, &small);
        assert!(matches!(rx.receive(&t.mem, &tap, &mut done).unwrap(), Outcome::Delivered));
        assert_eq!(done[3], (RX_QUEUE, 3, 62));
        assert_eq!(header(&t, 3).num_buffers, 1);
        assert_eq!(read(&t, 3, 12, 50), small);
        assert_eq!(rx.buffers(), 1);
    }

    /// A frame larger than the chains held waits (its start already in the first chain,
    /// the rest in the bounce buffer), the tap is not read meanwhile, and it is delivered
    /// whole once the driver posts more chains.
    #[test]
    fn a_frame_waits_for_buffers_with_mrg() {
        let (mut t, mut q, mut rx, tap) = setup(true);
        post(&mut t, &mut q, &mut rx, 0, &[1024]);
        let mut done = Vec::new();
        let frame = pattern(3000, 5);
        tap.frame(0, 0, &frame);
        tap.frame(0, 0, &pattern(10, 6));
        assert!(matches!(rx.receive(&t.mem, &tap, &mut done).unwrap(), Outcome::Pending));
        assert!(done.is_empty() && rx.is_pending() && !rx.wants_frames());
        assert!(matches!(rx.receive(&t.mem, &tap, &mut done).unwrap(), Outcome::Pending));
        assert_eq!(tap.reads.load(Relaxed), 1, "no read while a frame waits");
        post(&mut t, &mut q, &mut rx, 1, &[1024]);
        assert!(matches!(rx.receive(&t.mem, &tap, &mut done).unwrap(), Outcome::Pending));
        post(&mut t, &mut q, &mut rx, 2, &[2048]);
        assert!(matches!(rx.receive(&t.mem, &tap, &mut done).unwrap(), Outcome::Delivered));
        assert_eq!(done, [(RX_QUEUE, 0, 1024), (RX_QUEUE, 1, 1024), (RX_QUEUE, 2, 964)]);
        assert_eq!(header(&t, 0).num_buffers, 3);
        let back = [read(&t, 0, 12, 1012), read(&t, 1, 0, 1024), read(&t, 2, 0, 964)].concat();
        assert_eq!(back, frame);
        assert_eq!(tap.reads.load(Relaxed), 1);
        assert!(!rx.wants_frames(), "no chain left");
    }

    /// Chains beyond what one readv takes (IOV_MAX) receive the bounce buffer's part.
    #[test]
    fn the_bounce_buffer_is_scattered_into_later_chains() {
        let (mut t, mut q, rx, tap) = setup(true);
        let mut rx = rx.with_iov_max(4); // header, chain 0, chain 1, bounce
        post(&mut t, &mut q, &mut rx, 0, &[100, 100, 100, 100]);
        let mut done = Vec::new();
        let frame = pattern(350, 4);
        tap.frame(0, 0, &frame);
        assert!(matches!(rx.receive(&t.mem, &tap, &mut done).unwrap(), Outcome::Delivered));
        assert_eq!(done, [(RX_QUEUE, 0, 100), (RX_QUEUE, 1, 100), (RX_QUEUE, 2, 100), (RX_QUEUE, 3, 62)]);
        let back = [read(&t, 0, 12, 88), read(&t, 1, 0, 100), read(&t, 2, 0, 100), read(&t, 3, 0, 62)].concat();
        assert_eq!(back, frame);
        assert_eq!(header(&t, 0).num_buffers, 4);
    }

    /// With GUEST_CSUM the tap's checksum state reaches the guest: NEEDS_CSUM with its
    /// start and offset, or DATA_VALID; without it neither (see `odd_frames...`).
    #[test]
    fn checksum_state_goes_to_the_guest_with_guest_csum() {
        let (mut t, mut q, mut rx, tap) = setup(true);
        rx.set_guest_csum(true);
        post(&mut t, &mut q, &mut rx, 0, &[2048, 2048, 2048]);
        let mut done = Vec::new();
        let partial = NetHdr { flags: super::super::VIRTIO_NET_HDR_F_NEEDS_CSUM, csum_start: 34, csum_offset: 16, ..Default::default() };
        tap.incoming.lock().unwrap().push_back([&partial.to_bytes()[..], &pattern(100, 0)].concat());
        tap.frame(super::super::VIRTIO_NET_HDR_F_DATA_VALID, 0, &pattern(100, 1));
        tap.frame(0, 1, &pattern(100, 2));
        for _ in 0..2 {
            assert!(matches!(rx.receive(&t.mem, &tap, &mut done).unwrap(), Outcome::Delivered));
        }
        assert_eq!(header(&t, 0), NetHdr { num_buffers: 1, ..partial });
        assert_eq!(header(&t, 1), NetHdr { flags: super::super::VIRTIO_NET_HDR_F_DATA_VALID, num_buffers: 1, ..Default::default() });
        // A segmentation is still dropped.
        assert!(matches!(rx.receive(&t.mem, &tap, &mut done).unwrap(), Outcome::Dropped));
    }

    /// A frame longer than the bounce buffer and the chains together (the tap truncated
    /// it), an empty one, and one whose header asks for an offload are dropped; the
    /// chains stay for the next frame.
    #[test]
    fn odd_frames_from_the_tap_are_dropped() {
        let (mut t, mut q, mut rx, tap) = setup(true);
        post(&mut t, &mut q, &mut rx, 0, &[2048]);
        let mut done = Vec::new();
        tap.frame(0, 0, &pattern(MAX_RX_FRAME + 2048 - 12 + 1, 0));
        tap.incoming.lock().unwrap().push_back(vec![0; HDR_LEN]);
        tap.frame(super::super::VIRTIO_NET_HDR_F_NEEDS_CSUM, 0, &pattern(100, 0));
        tap.frame(0, 1, &pattern(100, 0));
        for _ in 0..4 {
            assert!(matches!(rx.receive(&t.mem, &tap, &mut done).unwrap(), Outcome::Dropped));
        }
        assert!(done.is_empty());
        assert_eq!(rx.buffers(), 1);
        // The longest frame that can come still goes through (mostly via the bounce
        // buffer), once enough chains are posted.
        let frame = pattern(MAX_RX_FRAME, 3);
        tap.frame(0, 0, &frame);
        assert!(matches!(rx.receive(&t.mem, &tap, &mut done).unwrap(), Outcome::Pending));
        post(&mut t, &mut q, &mut rx, 1, &[0x10000]);
        assert!(matches!(rx.receive(&t.mem, &tap, &mut done).unwrap(), Outcome::Delivered));
        assert_eq!(done, [(RX_QUEUE, 0, 2048), (RX_QUEUE, 1, (MAX_RX_FRAME + 12 - 2048) as u32)]);
        let back = [read(&t, 0, 12, 2036), read(&t, 1, 0, MAX_RX_FRAME - 2036)].concat();
        assert!(back == frame);
    }

    /// Chains the driver got wrong need a reset; so does posting more than a queue holds.
    #[test]
    fn bad_receive_chains_need_a_reset() {
        let (mut t, mut q, mut rx, _tap) = setup(true);
        t.chain(0, &[(0x20000, 64, false), (0x30000, 1500, true)]);
        t.publish(0);
        assert!(matches!(rx.push(t.pop(&mut q).unwrap()), Err(DeviceError::Request(_))));
        t.chain(0, &[(0x20000, 11, true)]);
        t.publish(0);
        assert!(matches!(rx.push(t.pop(&mut q).unwrap()), Err(DeviceError::Request(_))));
        t.chain(0, &[(0x20000, 6, true), (0x30000, 6, true)]);
        t.publish(0);
        rx.push(t.pop(&mut q).unwrap()).unwrap();
        // The same descriptor posted again and again: bounded by the queue's size.
        for _ in 1..QUEUE_SIZE {
            t.publish(0);
            rx.push(t.pop(&mut q).unwrap()).unwrap();
        }
        t.publish(0);
        assert!(matches!(rx.push(t.pop(&mut q).unwrap()), Err(DeviceError::Queue(_))));
    }

    /// Without MRG_RXBUF a frame never waits: one that does not fit is dropped even when
    /// further chains could hold it.
    #[test]
    fn no_waiting_without_mrg() {
        let (mut t, mut q, mut rx, tap) = setup(false);
        post(&mut t, &mut q, &mut rx, 0, &[100, 4096]);
        let mut done = Vec::new();
        tap.frame(0, 0, &pattern(200, 0));
        assert!(matches!(rx.receive(&t.mem, &tap, &mut done).unwrap(), Outcome::Dropped));
        assert!(!rx.is_pending());
        assert_eq!(rx.buffers(), 2);
    }
}
