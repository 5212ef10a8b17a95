//! Descriptor chains, checked once before a device reads them.
//!
//! virtio-queue's `DescriptorChain` walks the descriptor table (direct and indirect) and
//! stops at a loop (more descriptors than the table holds), a `next` index out of range,
//! an unreadable descriptor or a length overflow, but it stops silently. [`Chain::parse`]
//! notices such a cut (the last descriptor it got still had NEXT set) and also checks
//! what virtio-queue leaves to the device: every buffer lies inside guest memory, the
//! device-readable buffers come before the device-writable ones (section 2.7.4.2), the
//! chain has no more descriptors than the device accepts, and its buffers total at most
//! `u32::MAX` bytes, so that a used element's 32-bit `len` can count them (drivers must
//! not add chains longer than 2^32 bytes, section 2.7.13.1). A device then reads and writes the chain
//! by offset, through vm-memory's checked accessors only.

use std::ops::Deref;

use vm_memory::{Bytes, GuestAddress, GuestMemoryBackend, GuestMemoryMmap};

use virtio_queue::DescriptorChain;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ChainError {
    #[error("the chain is empty (head index out of range or its descriptor unreadable)")]
    Empty,
    #[error("the chain does not end (a loop, a next index out of range, or a bad descriptor)")]
    Unterminated,
    #[error("buffer {addr:#x}+{len:#x} is outside guest memory")]
    OutsideMemory { addr: u64, len: u32 },
    #[error("a device-readable buffer follows a device-writable one")]
    Order,
    #[error("more than {0} descriptors")]
    TooLong(usize),
    #[error("the buffers total more than 4 GiB - 1")]
    TooBig,
    #[error("guest memory access failed at {0:#x}")]
    Access(u64),
}

/// One guest buffer of a chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    pub addr: GuestAddress,
    pub len: u32,
}

/// A checked descriptor chain: its head index and its device-readable and device-writable
/// buffers, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Chain {
    pub head: u16,
    pub readable: Vec<Segment>,
    pub writable: Vec<Segment>,
}

impl Chain {
    /// Walks and checks `desc`, accepting at most `max_descriptors` descriptors.
    pub fn parse<M>(desc: DescriptorChain<M>, mem: &GuestMemoryMmap, max_descriptors: usize) -> Result<Chain, ChainError>
    where
        M: Deref<Target = GuestMemoryMmap>,
    {
        let mut chain = Chain { head: desc.head_index(), ..Chain::default() };
        let mut count = 0usize;
        let mut total = 0u64;
        let mut last_has_next = None;
        for d in desc {
            count += 1;
            if count > max_descriptors {
                return Err(ChainError::TooLong(max_descriptors));
            }
            last_has_next = Some(d.has_next());
            let seg = Segment { addr: d.addr(), len: d.len() };
            total += u64::from(seg.len);
            if total > u64::from(u32::MAX) {
                return Err(ChainError::TooBig);
            }
            if seg.len > 0 && !GuestMemoryBackend::check_range(mem, seg.addr, seg.len as usize) {
                return Err(ChainError::OutsideMemory { addr: seg.addr.0, len: seg.len });
            }
            if d.is_write_only() {
                chain.writable.push(seg);
            } else if chain.writable.is_empty() {
                chain.readable.push(seg);
            } else {
                return Err(ChainError::Order);
            }
        }
        match last_has_next {
            None => Err(ChainError::Empty),
            Some(true) => Err(ChainError::Unterminated),
            Some(false) => Ok(chain),
        }
    }

    /// Total bytes of the device-readable buffers.
    pub fn readable_len(&self) -> u64 {
        self.readable.iter().map(|s| u64::from(s.len)).sum()
    }

    /// Total bytes of the device-writable buffers.
    pub fn writable_len(&self) -> u64 {
        self.writable.iter().map(|s| u64::from(s.len)).sum()
    }

    /// Copies `buf.len()` bytes at `offset` of the readable buffers into `buf`.
    /// Returns false (and reads nothing more) when the buffers are too short.
    pub fn read_at(&self, mem: &GuestMemoryMmap, offset: u64, buf: &mut [u8]) -> Result<bool, ChainError> {
        if offset.checked_add(buf.len() as u64).is_none_or(|end| end > self.readable_len()) {
            return Ok(false);
        }
        let mut done = 0;
        for (addr, range) in pieces(&self.readable, offset, buf.len()) {
            mem.read_slice(&mut buf[done..done + range], addr).map_err(|_| ChainError::Access(addr.0))?;
            done += range;
        }
        Ok(true)
    }

    /// Copies `buf` to `offset` of the writable buffers. Returns false (and writes nothing)
    /// when the buffers are too short.
    pub fn write_at(&self, mem: &GuestMemoryMmap, offset: u64, buf: &[u8]) -> Result<bool, ChainError> {
        if offset.checked_add(buf.len() as u64).is_none_or(|end| end > self.writable_len()) {
            return Ok(false);
        }
        let mut done = 0;
        for (addr, range) in pieces(&self.writable, offset, buf.len()) {
            mem.write_slice(&buf[done..done + range], addr).map_err(|_| ChainError::Access(addr.0))?;
            done += range;
        }
        Ok(true)
    }
}

/// The (address, length) pieces of `segments` that cover `len` bytes from `offset`.
pub(crate) fn pieces(segments: &[Segment], mut offset: u64, mut len: usize) -> impl Iterator<Item = (GuestAddress, usize)> + '_ {
    segments.iter().filter_map(move |seg| {
        let seg_len = u64::from(seg.len);
        if len == 0 {
            return None;
        }
        if offset >= seg_len {
            offset -= seg_len;
            return None;
        }
        let n = ((seg_len - offset) as usize).min(len);
        let addr = GuestAddress(seg.addr.0 + offset);
        offset = 0;
        len -= n;
        Some((addr, n))
    })
}

#[cfg(test)]
pub(crate) mod tests {
    //! Hand-built descriptor tables in a `GuestMemoryMmap`, shared by the device tests.

    use super::*;
    use std::sync::atomic::Ordering;
    use virtio_queue::{Queue, QueueOwnedT, QueueT};
    use vm_memory::{Address, Bytes};

    pub const NEXT: u16 = 1;
    pub const WRITE: u16 = 2;
    pub const INDIRECT: u16 = 4;

    /// A split queue in guest memory: descriptor table at 0x1000, avail ring at 0x2000,
    /// used ring at 0x3000, buffers from 0x10000. 1 MiB of RAM.
    pub struct TestQueue {
        pub mem: GuestMemoryMmap,
        pub size: u16,
        avail_idx: u16,
    }

    pub const DESC: u64 = 0x1000;
    pub const AVAIL: u64 = 0x2000;
    pub const USED: u64 = 0x3000;
    pub const RAM: usize = 1 << 20;

    impl TestQueue {
        pub fn new(size: u16) -> Self {
            Self::with_ram(size, RAM)
        }

        /// As [`TestQueue::new`], with `ram` bytes of guest memory (untouched pages cost
        /// nothing).
        pub fn with_ram(size: u16, ram: usize) -> Self {
            let mem = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), ram)]).unwrap();
            Self { mem, size, avail_idx: 0 }
        }

        pub fn set_desc(&self, index: u16, addr: u64, len: u32, flags: u16, next: u16) {
            self.set_desc_at(DESC, index, addr, len, flags, next);
        }

        pub fn set_desc_at(&self, table: u64, index: u16, addr: u64, len: u32, flags: u16, next: u16) {
            let at = GuestAddress(table + u64::from(index) * 16);
            self.mem.write_obj(addr.to_le(), at).unwrap();
            self.mem.write_obj(len.to_le(), at.unchecked_add(8)).unwrap();
            self.mem.write_obj(flags.to_le(), at.unchecked_add(12)).unwrap();
            self.mem.write_obj(next.to_le(), at.unchecked_add(14)).unwrap();
        }

        /// Lays out a chain from descriptor `first` on: (addr, len, writable) each.
        pub fn chain(&self, first: u16, bufs: &[(u64, u32, bool)]) {
            for (i, &(addr, len, w)) in bufs.iter().enumerate() {
                let index = first + i as u16;
                let last = i + 1 == bufs.len();
                let flags = if w { WRITE } else { 0 } | if last { 0 } else { NEXT };
                self.set_desc(index, addr, len, flags, index + 1);
            }
        }

        /// Makes descriptor `head` available.
        pub fn publish(&mut self, head: u16) {
            let slot = u64::from(self.avail_idx % self.size);
            self.mem.write_obj(head.to_le(), GuestAddress(AVAIL + 4 + slot * 2)).unwrap();
            self.avail_idx = self.avail_idx.wrapping_add(1);
            self.mem.store(self.avail_idx.to_le(), GuestAddress(AVAIL + 2), Ordering::Release).unwrap();
        }

        /// The used ring's idx and its element `i`: (id, len).
        pub fn used(&self, i: u16) -> (u16, u32, u32) {
            let idx: u16 = self.mem.read_obj(GuestAddress(USED + 2)).unwrap();
            let at = GuestAddress(USED + 4 + u64::from(i % self.size) * 8);
            let id: u32 = self.mem.read_obj(at).unwrap();
            let len: u32 = self.mem.read_obj(at.unchecked_add(4)).unwrap();
            (idx, id, len)
        }

        /// A virtio-queue `Queue` set up on these rings, as the transport would.
        pub fn queue(&self) -> Queue {
            let mut q = Queue::new(self.size).unwrap();
            q.set_size(self.size);
            q.set_desc_table_address(Some(DESC as u32), Some(0));
            q.set_avail_ring_address(Some(AVAIL as u32), Some(0));
            q.set_used_ring_address(Some(USED as u32), Some(0));
            q.set_ready(true);
            assert!(q.is_valid(&self.mem));
            q
        }

        /// Pops the next available chain and checks it.
        pub fn pop(&self, q: &mut Queue) -> Result<Chain, ChainError> {
            let desc = q.iter(&self.mem).unwrap().next().expect("a chain is available");
            Chain::parse(desc, &self.mem, usize::from(self.size))
        }
    }

    #[test]
    fn good_chain() {
        let mut t = TestQueue::new(16);
        t.chain(0, &[(0x10000, 16, false), (0x11000, 512, true), (0x12000, 1, true)]);
        t.publish(0);
        let mut q = t.queue();
        let c = t.pop(&mut q).unwrap();
        assert_eq!(c.readable.len(), 1);
        assert_eq!(c.writable_len(), 513);
        assert!(c.write_at(&t.mem, 510, &[1, 2, 3]).unwrap());
        assert_eq!(t.mem.read_obj::<u16>(GuestAddress(0x111fe)).unwrap(), 0x0201);
        assert_eq!(t.mem.read_obj::<u8>(GuestAddress(0x12000)).unwrap(), 3);
        assert!(!c.write_at(&t.mem, 511, &[0; 3]).unwrap());
        let mut hdr = [0u8; 17];
        assert!(!c.read_at(&t.mem, 0, &mut hdr).unwrap());
        assert!(c.read_at(&t.mem, 0, &mut hdr[..16]).unwrap());
    }

    /// Buffers that total more than a used element's `len` can count are refused (the
    /// buffers may overlap; each is inside guest memory). virtio-queue 0.18 already cuts
    /// such a chain short (seen as unterminated); `TooBig` keeps the rule ours.
    #[test]
    fn chain_over_4_gib_is_refused() {
        const GIB: u32 = 1 << 30;
        let mut t = TestQueue::with_ram(8, GIB as usize + RAM);
        t.chain(0, &[(0x10000, 16, false), (0, GIB, true), (0, GIB, true), (0, GIB, true), (0, GIB - 17, true)]);
        t.publish(0);
        let mut q = t.queue();
        let c = t.pop(&mut q).unwrap();
        assert_eq!(c.readable_len() + c.writable_len(), u64::from(u32::MAX));
        t.chain(0, &[(0x10000, 16, false), (0, GIB, true), (0, GIB, true), (0, GIB, true), (0, GIB - 16, true)]);
        t.publish(0);
        assert!(matches!(t.pop(&mut q), Err(ChainError::TooBig | ChainError::Unterminated)));
        t.chain(0, &[(0, GIB, false), (0, GIB, false), (0, GIB, false), (0, GIB, false), (0x10000, 1, true)]);
        t.publish(0);
        assert!(matches!(t.pop(&mut q), Err(ChainError::TooBig | ChainError::Unterminated)));
    }

    #[test]
    fn loop_is_refused() {
        let mut t = TestQueue::new(8);
        t.set_desc(0, 0x10000, 16, NEXT, 1);
        t.set_desc(1, 0x11000, 16, NEXT, 0);
        t.publish(0);
        let mut q = t.queue();
        assert_eq!(t.pop(&mut q), Err(ChainError::Unterminated));
    }

    #[test]
    fn next_out_of_range_is_refused() {
        let mut t = TestQueue::new(8);
        t.set_desc(0, 0x10000, 16, NEXT, 8);
        t.publish(0);
        let mut q = t.queue();
        assert_eq!(t.pop(&mut q), Err(ChainError::Unterminated));
    }

    #[test]
    fn head_out_of_range_is_refused() {
        let mut t = TestQueue::new(8);
        t.publish(9);
        let mut q = t.queue();
        assert_eq!(t.pop(&mut q), Err(ChainError::Empty));
    }

    #[test]
    fn buffer_outside_memory_is_refused() {
        let mut t = TestQueue::new(8);
        t.chain(0, &[(RAM as u64 - 8, 16, false)]);
        t.publish(0);
        let mut q = t.queue();
        assert_eq!(t.pop(&mut q), Err(ChainError::OutsideMemory { addr: RAM as u64 - 8, len: 16 }));
        t.chain(1, &[(u64::MAX - 4, 16, true)]);
        t.publish(1);
        assert!(matches!(t.pop(&mut q), Err(ChainError::OutsideMemory { .. })));
    }

    #[test]
    fn readable_after_writable_is_refused() {
        let mut t = TestQueue::new(8);
        t.chain(0, &[(0x10000, 16, true), (0x11000, 16, false)]);
        t.publish(0);
        let mut q = t.queue();
        assert_eq!(t.pop(&mut q), Err(ChainError::Order));
    }

    #[test]
    fn too_long_is_refused() {
        let mut t = TestQueue::new(8);
        let bufs: Vec<_> = (0..5).map(|i| (0x10000 + i * 0x100, 16u32, false)).collect();
        t.chain(0, &bufs);
        t.publish(0);
        let mut q = t.queue();
        let desc = q.iter(&t.mem).unwrap().next().unwrap();
        assert_eq!(Chain::parse(desc, &t.mem, 4), Err(ChainError::TooLong(4)));
    }

    #[test]
    fn indirect_tables_are_checked() {
        let mut t = TestQueue::new(8);
        // A good indirect table of two entries at 0x4000.
        t.set_desc(0, 0x4000, 32, INDIRECT, 0);
        t.set_desc_at(0x4000, 0, 0x10000, 16, NEXT, 1);
        t.set_desc_at(0x4000, 1, 0x11000, 1, WRITE, 0);
        t.publish(0);
        // An indirect table whose entry loops on itself.
        t.set_desc(1, 0x5000, 16, INDIRECT, 0);
        t.set_desc_at(0x5000, 0, 0x10000, 16, NEXT, 0);
        t.publish(1);
        // An indirect table that is not a multiple of 16 bytes.
        t.set_desc(2, 0x6000, 20, INDIRECT, 0);
        t.publish(2);
        let mut q = t.queue();
        let c = t.pop(&mut q).unwrap();
        assert_eq!((c.readable_len(), c.writable_len()), (16, 1));
        assert_eq!(t.pop(&mut q), Err(ChainError::Unterminated));
        assert_eq!(t.pop(&mut q), Err(ChainError::Empty));
    }

    #[test]
    fn pieces_cross_segments() {
        let segs = [Segment { addr: GuestAddress(100), len: 4 }, Segment { addr: GuestAddress(200), len: 4 }];
        let p: Vec<_> = pieces(&segs, 2, 4).collect();
        assert_eq!(p, [(GuestAddress(102), 2), (GuestAddress(200), 2)]);
        let p: Vec<_> = pieces(&segs, 4, 4).collect();
        assert_eq!(p, [(GuestAddress(200), 4)]);
    }

    mod prop {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            /// Any descriptor table either parses into buffers inside guest memory with
            /// the readable ones first, or is refused; it never panics.
            #[test]
            fn arbitrary_tables(descs in proptest::collection::vec((any::<u64>(), any::<u32>(), 0u16..8, 0u16..10), 1..10),
                                head in 0u16..10) {
                let mut t = TestQueue::new(8);
                for (i, &(addr, len, flags, next)) in descs.iter().enumerate().take(8) {
                    // Keep addresses mostly inside RAM so that many chains are valid.
                    let addr = if addr % 3 == 0 { addr } else { addr % (RAM as u64) };
                    t.set_desc(i as u16, addr, len % 0x2000, flags, next);
                }
                t.publish(head);
                let mut q = t.queue();
                if let Ok(c) = t.pop(&mut q) {
                    for s in c.readable.iter().chain(&c.writable) {
                        prop_assert!(s.len == 0 || GuestMemoryBackend::check_range(&t.mem, s.addr, s.len as usize));
                    }
                    prop_assert!(c.readable.len() + c.writable.len() <= 8 * 8);
                }
            }
        }
    }
}
