//! virtio-net (device id 1): an Ethernet device backed by a host tap interface.
//!
//! Spec types, features and config space here; the queues are served by [`device`]
//! (frames from the tap into the receive queue: [`rx`]; frames of the transmit queue to
//! the tap: [`tx`]), and the host side is [`tap`] (`/dev/net/tun`).
//!
//! Features: VERSION_1, EVENT_IDX, MAC, STATUS (the link is always up) and MRG_RXBUF.
//! **No offloads are offered**: neither checksum (CSUM, GUEST_CSUM) nor segmentation
//! (HOST_/GUEST_TSO4/6, UFO, ECN), and the tap's own offloads are turned off
//! (TUNSETOFFLOAD 0). The host kernel therefore checksums and segments everything
//! before it reaches the tap, so the guest receives complete, checksummed frames of at
//! most the tap's MTU plus the Ethernet header, and must send such frames: a transmit
//! header that asks for an offload (NEEDS_CSUM, a GSO type) is refused. MTU is not
//! offered either; the config space's `mtu` (1500) is informational.
//!
//! With VERSION_1 every frame on either queue is preceded by the 12-byte
//! `virtio_net_hdr_v1` ([`NetHdr`]); the tap carries the same header
//! (IFF_VNET_HDR, TUNSETVNETHDRSZ 12), so frames pass between the two without being
//! reframed.
//!
//! Queues: 0 receive, 1 transmit, [`QUEUE_SIZE`] entries each (one queue pair).

pub mod device;
pub mod rx;
pub mod tap;
pub mod tx;

use std::mem::offset_of;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use vm_memory::{GuestMemoryBackend, GuestMemoryMmap};

use super::chain::{self, ChainError, Segment};
use super::{QueueHandler, VirtioDevice, TYPE_NET, VIRTIO_F_VERSION_1, VIRTIO_RING_F_EVENT_IDX};

/// Feature bits (section 5.1.3). CSUM: the driver may leave a TCP/UDP checksum to the
/// device (NEEDS_CSUM); GUEST_CSUM: the driver takes frames whose checksum is partial
/// (NEEDS_CSUM) or checked (DATA_VALID).
pub const VIRTIO_NET_F_CSUM: u32 = 0;
pub const VIRTIO_NET_F_GUEST_CSUM: u32 = 1;
pub const VIRTIO_NET_F_MTU: u32 = 3;
pub const VIRTIO_NET_F_MAC: u32 = 5;
/// Receive buffers may be merged: a frame larger than one buffer spreads over several,
/// and the header's `num_buffers` says how many.
pub const VIRTIO_NET_F_MRG_RXBUF: u32 = 15;
pub const VIRTIO_NET_F_STATUS: u32 = 16;

/// The config space's `status`: the link is up.
pub const VIRTIO_NET_S_LINK_UP: u16 = 1;

/// `virtio_net_hdr.flags`.
pub const VIRTIO_NET_HDR_F_NEEDS_CSUM: u8 = 1;
pub const VIRTIO_NET_HDR_F_DATA_VALID: u8 = 2;
/// `virtio_net_hdr.gso_type`: no segmentation.
pub const VIRTIO_NET_HDR_GSO_NONE: u8 = 0;

/// Queue indices.
pub const RX_QUEUE: usize = 0;
pub const TX_QUEUE: usize = 1;
/// Entries of each queue (QEMU's default for virtio-net).
pub const QUEUE_SIZE: u16 = 256;

/// Bytes of the header before every frame (`virtio_net_hdr_v1`).
pub const HDR_LEN: usize = 12;
/// Longest frame (header excluded) the guest may send: an Ethernet frame can be no longer
/// (the IPv4 total length, and the tap's largest MTU).
pub const MAX_TX_FRAME: usize = 65535;
/// Longest frame (header excluded) the receive side expects from the tap: 65550, what the
/// spec asks receive buffers to hold without merging (65562 less the header). The bounce
/// buffer has this size; a longer frame (a 65535-byte MTU with a VLAN tag) is dropped.
pub const MAX_RX_FRAME: usize = 65550;
/// The config space's `mtu` (informational: VIRTIO_NET_F_MTU is not offered).
pub const MTU: u16 = 1500;

/// `struct virtio_net_hdr_v1` (section 5.1.6), little-endian on the wire.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct NetHdr {
    pub flags: u8,
    pub gso_type: u8,
    pub hdr_len: u16,
    pub gso_size: u16,
    pub csum_start: u16,
    pub csum_offset: u16,
    /// Receive only: how many buffers the frame took (1 without MRG_RXBUF).
    pub num_buffers: u16,
}

const _: () = assert!(size_of::<NetHdr>() == HDR_LEN);
const _: () = assert!(offset_of!(NetHdr, flags) == 0);
const _: () = assert!(offset_of!(NetHdr, gso_type) == 1);
const _: () = assert!(offset_of!(NetHdr, hdr_len) == 2);
const _: () = assert!(offset_of!(NetHdr, gso_size) == 4);
const _: () = assert!(offset_of!(NetHdr, csum_start) == 6);
const _: () = assert!(offset_of!(NetHdr, csum_offset) == 8);
const _: () = assert!(offset_of!(NetHdr, num_buffers) == 10);

impl NetHdr {
    pub fn from_bytes(b: &[u8; HDR_LEN]) -> Self {
        let half = |at: usize| u16::from_le_bytes([b[at], b[at + 1]]);
        Self {
            flags: b[0],
            gso_type: b[1],
            hdr_len: half(offset_of!(Self, hdr_len)),
            gso_size: half(offset_of!(Self, gso_size)),
            csum_start: half(offset_of!(Self, csum_start)),
            csum_offset: half(offset_of!(Self, csum_offset)),
            num_buffers: half(offset_of!(Self, num_buffers)),
        }
    }

    pub fn to_bytes(&self) -> [u8; HDR_LEN] {
        let mut b = [0u8; HDR_LEN];
        b[0] = self.flags;
        b[1] = self.gso_type;
        let mut put = |at: usize, v: u16| b[at..at + 2].copy_from_slice(&v.to_le_bytes());
        put(offset_of!(Self, hdr_len), self.hdr_len);
        put(offset_of!(Self, gso_size), self.gso_size);
        put(offset_of!(Self, csum_start), self.csum_start);
        put(offset_of!(Self, csum_offset), self.csum_offset);
        put(offset_of!(Self, num_buffers), self.num_buffers);
        b
    }
}

/// `struct virtio_net_config` up to `mtu` (section 5.1.4).
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct NetConfigSpace {
    pub mac: [u8; 6],
    pub status: u16,
    pub max_virtqueue_pairs: u16,
    pub mtu: u16,
}

const _: () = assert!(size_of::<NetConfigSpace>() == 12);
const _: () = assert!(offset_of!(NetConfigSpace, mac) == 0);
const _: () = assert!(offset_of!(NetConfigSpace, status) == 6);
const _: () = assert!(offset_of!(NetConfigSpace, max_virtqueue_pairs) == 8);
const _: () = assert!(offset_of!(NetConfigSpace, mtu) == 10);

impl NetConfigSpace {
    /// The little-endian bytes of the config space.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut b = vec![0u8; size_of::<Self>()];
        b[..6].copy_from_slice(&self.mac);
        let mut put = |at: usize, v: u16| b[at..at + 2].copy_from_slice(&v.to_le_bytes());
        put(offset_of!(Self, status), self.status);
        put(offset_of!(Self, max_virtqueue_pairs), self.max_virtqueue_pairs);
        put(offset_of!(Self, mtu), self.mtu);
        b
    }
}

/// Frame counters of every virtio-net device, for `vmm run --stats`.
pub struct NetStats {
    /// Frames put in the receive queue, and their bytes (headers excluded).
    pub rx_frames: AtomicU64,
    pub rx_bytes: AtomicU64,
    /// Frames read from the tap and not delivered: no room in the guest's buffers
    /// (without MRG_RXBUF), too long, or with offloads.
    pub rx_dropped: AtomicU64,
    /// Frames written to the tap, and their bytes (headers excluded).
    pub tx_frames: AtomicU64,
    pub tx_bytes: AtomicU64,
    /// Transmit chains refused (bad length or header) or that the tap refused.
    pub tx_dropped: AtomicU64,
}

pub static STATS: NetStats = NetStats {
    rx_frames: AtomicU64::new(0),
    rx_bytes: AtomicU64::new(0),
    rx_dropped: AtomicU64::new(0),
    tx_frames: AtomicU64::new(0),
    tx_bytes: AtomicU64::new(0),
    tx_dropped: AtomicU64::new(0),
};

/// A frame the guest got wrong (a transmit chain of a bad length, a header asking for an
/// offload): counted in [`crate::devices::guest_errors::NET`] (`--stats`), and logged
/// at debug level within that kind's rate limit. The frame is dropped; the device goes on.
macro_rules! frame_refused {
    ($($arg:tt)+) => {{
        use $crate::devices::guest_errors::{Admit, NET};
        if NET.admit() != Admit::Skip {
            log::debug!($($arg)+);
        }
    }};
}
pub(crate) use frame_refused;

/// Appends to `iovecs` the host addresses of `len` bytes at `offset` of `segments`,
/// through vm-memory's checked slices (a buffer that spans two guest memory regions
/// gives two iovecs), for the host to write into (`to_guest`) or read from. The pointers
/// stay valid while `mem` (a clone of the VM's mapping) lives.
pub(crate) fn push_guest_iovecs(
    mem: &GuestMemoryMmap,
    segments: &[Segment],
    offset: u64,
    len: u64,
    to_guest: bool,
    iovecs: &mut Vec<libc::iovec>,
) -> Result<(), ChainError> {
    for (addr, n) in chain::pieces(segments, offset, len as usize) {
        for slice in mem.get_slices(addr, n) {
            let slice = slice.map_err(|_| ChainError::Access(addr.0))?;
            let ptr = if to_guest { slice.ptr_guard_mut().as_ptr() } else { slice.ptr_guard().as_ptr().cast_mut() };
            iovecs.push(libc::iovec { iov_base: ptr.cast(), iov_len: slice.len() });
        }
    }
    Ok(())
}

/// Marks `len` bytes at `offset` of `segments` dirty (the host kernel wrote them behind
/// vm-memory's back, through readv).
pub(crate) fn mark_dirty(mem: &GuestMemoryMmap, segments: &[Segment], offset: u64, len: u64) {
    use vm_memory::bitmap::Bitmap;
    for (addr, n) in chain::pieces(segments, offset, len as usize) {
        for slice in mem.get_slices(addr, n).flatten() {
            slice.bitmap().mark_dirty(0, slice.len());
        }
    }
}

/// A virtio-net device: what the transport needs before DRIVER_OK.
pub struct Net {
    tap: Arc<tap::Tap>,
    config: Vec<u8>,
}

impl Net {
    /// A device on `tap` (opened by [`tap::Tap::open`]) whose MAC address is `mac`.
    pub fn new(tap: tap::Tap, mac: [u8; 6]) -> Self {
        let config = NetConfigSpace { mac, status: VIRTIO_NET_S_LINK_UP, max_virtqueue_pairs: 1, mtu: MTU }.to_bytes();
        Self { tap: Arc::new(tap), config }
    }
}

impl VirtioDevice for Net {
    fn device_type(&self) -> u32 {
        TYPE_NET
    }

    fn features(&self) -> u64 {
        1 << VIRTIO_F_VERSION_1
            | 1 << VIRTIO_RING_F_EVENT_IDX
            | 1 << VIRTIO_NET_F_CSUM
            | 1 << VIRTIO_NET_F_GUEST_CSUM
            | 1 << VIRTIO_NET_F_MAC
            | 1 << VIRTIO_NET_F_STATUS
            | 1 << VIRTIO_NET_F_MRG_RXBUF
    }

    fn queue_max_sizes(&self) -> &[u16] {
        &[QUEUE_SIZE, QUEUE_SIZE]
    }

    fn config(&self) -> &[u8] {
        &self.config
    }

    fn activate(&mut self, features: u64) -> Box<dyn QueueHandler> {
        let has = |bit: u32| features & (1 << bit) != 0;
        let handler = device::NetHandler::new(Arc::clone(&self.tap), has(VIRTIO_NET_F_MRG_RXBUF))
            .with_checksum_offload(has(VIRTIO_NET_F_CSUM), has(VIRTIO_NET_F_GUEST_CSUM));
        Box::new(handler)
    }

    fn poll_stats(&self) -> Option<&'static super::poll::PollStats> {
        // Kicks and interrupts only: the queues are never busy-polled (no window).
        Some(&super::poll::NET_STATS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_bytes() {
        let h = NetHdr { flags: 1, gso_type: 3, hdr_len: 0x0102, gso_size: 0x0304, csum_start: 0x0506, csum_offset: 0x0708, num_buffers: 0x090a };
        let b = h.to_bytes();
        assert_eq!(b, [1, 3, 2, 1, 4, 3, 6, 5, 8, 7, 0x0a, 9]);
        assert_eq!(NetHdr::from_bytes(&b), h);
    }

    #[test]
    fn config_space() {
        let c = NetConfigSpace { mac: [0x52, 0x54, 0, 0x12, 0x34, 0x56], status: 1, max_virtqueue_pairs: 1, mtu: 1500 };
        assert_eq!(c.to_bytes(), [0x52, 0x54, 0, 0x12, 0x34, 0x56, 1, 0, 1, 0, 0xdc, 0x05]);
    }
}
