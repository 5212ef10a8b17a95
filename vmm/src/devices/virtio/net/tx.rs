//! The transmit queue: frames of the guest to the tap.
//!
//! Each chain is one frame: the 12-byte header, then the Ethernet frame, all
//! device-readable. A device-writable buffer in a transmit chain is a driver bug and the
//! device needs a reset. Everything else is answered (used length 0, the device never
//! writes a transmit chain), and a frame the device cannot send is dropped and counted:
//! - a chain of at most the header (no frame), or longer than the header and
//!   [`MAX_TX_FRAME`] bytes;
//! - a header that asks for an offload (NEEDS_CSUM, a GSO type) or sets any other flag
//!   (DATA_VALID and RSC_INFO are the device's to set): none is negotiated, and the host
//!   must not be told that a checksum the guest never computed is valid; or whose
//!   `hdr_len` (a hint) exceeds the frame, which the tap would refuse.
//!
//! The header is copied out of guest memory once and checked there ([`check`]); the tap
//! gets that copy (as the guest wrote it, `num_buffers` zeroed: it means nothing on
//! transmit) and the frame straight from guest memory, in one write: a WRITEV on the
//! device's io_uring, batched with the other frames of the drained queue, or a `writev`
//! ([`transmit`], without io_uring). A frame the tap refuses (the interface is down: EIO;
//! gone: EBADFD) is dropped and counted as a host I/O error ([`sent`]).

use std::io;
use std::sync::atomic::Ordering::Relaxed;

use vm_memory::GuestMemoryMmap;

use super::rx::IOV_MAX;
use super::tap::FrameIo;
use super::{frame_refused, push_guest_iovecs, NetHdr, HDR_LEN, MAX_TX_FRAME, STATS};
use crate::devices::guest_errors;
use crate::devices::virtio::chain::Chain;
use crate::devices::virtio::DeviceError;
use crate::guest_warn;

/// Why a transmit header for a frame of `len` bytes is refused, if it is. With `csum`
/// (VIRTIO_NET_F_CSUM) it may ask for a checksum (NEEDS_CSUM) whose field lies in the
/// frame; a segmentation is never negotiated.
pub fn check_header(hdr: &NetHdr, csum: bool, len: u64) -> Result<(), &'static str> {
    if hdr.gso_type != super::VIRTIO_NET_HDR_GSO_NONE {
        return Err("asks for segmentation, not negotiated");
    }
    if hdr.flags == super::VIRTIO_NET_HDR_F_NEEDS_CSUM {
        if !csum {
            return Err("asks for a checksum, not negotiated");
        }
        if u64::from(hdr.csum_start) + u64::from(hdr.csum_offset) + 2 > len {
            return Err("puts its checksum past the frame");
        }
        return Ok(());
    }
    if hdr.flags != 0 {
        return Err("sets flags only the device may set");
    }
    Ok(())
}

/// A transmit chain checked and ready for the tap: our copy of its header, then its
/// frame in guest memory.
pub struct Frame {
    hdr: [u8; HDR_LEN],
    /// The header's iovec (set by [`Frame::iovecs`]), then the frame's.
    iov: Vec<libc::iovec>,
    /// The frame's bytes, header excluded.
    pub len: u64,
}

// SAFETY: the raw pointers in `iov` point into guest memory, which every thread of the
// VMM may access (through vm-memory), or into `hdr`; a frame is used by one thread.
unsafe impl Send for Frame {}

impl Frame {
    /// The iovecs of the whole write, header first. They stay valid while the frame is
    /// not moved (the first points into it) and guest memory stays mapped (`mem` lives).
    pub fn iovecs(&mut self) -> &[libc::iovec] {
        self.iov[0].iov_base = self.hdr.as_mut_ptr().cast();
        &self.iov
    }
}

/// Checks one transmit chain: the frame to send, or `None` when it is dropped (counted).
/// `csum`: VIRTIO_NET_F_CSUM was negotiated.
pub fn check(mem: &GuestMemoryMmap, chain: &Chain, csum: bool) -> Result<Option<Frame>, DeviceError> {
    if !chain.writable.is_empty() {
        return Err(DeviceError::Request("virtio-net: a transmit chain with device-writable buffers".into()));
    }
    let total = chain.readable_len();
    if total <= HDR_LEN as u64 || total > (HDR_LEN + MAX_TX_FRAME) as u64 {
        STATS.tx_dropped.fetch_add(1, Relaxed);
        frame_refused!("virtio-net: a transmit chain of {total} bytes (a header of {HDR_LEN} and 1 to {MAX_TX_FRAME} bytes of frame expected), dropped");
        return Ok(None);
    }
    let mut bytes = [0u8; HDR_LEN];
    chain.read_at(mem, 0, &mut bytes)?;
    let mut hdr = NetHdr::from_bytes(&bytes);
    let len = total - HDR_LEN as u64;
    if let Err(why) = check_header(&hdr, csum, len) {
        STATS.tx_dropped.fetch_add(1, Relaxed);
        frame_refused!("virtio-net: a transmit header that {why} ({hdr:?}), dropped");
        return Ok(None);
    }
    if u64::from(hdr.hdr_len) > len {
        // The tap would refuse it (EINVAL); the guest's mistake, not the host's.
        STATS.tx_dropped.fetch_add(1, Relaxed);
        frame_refused!("virtio-net: a transmit header whose hdr_len {} exceeds the frame's {len} bytes, dropped", hdr.hdr_len);
        return Ok(None);
    }
    hdr.num_buffers = 0;
    let mut iov = vec![libc::iovec { iov_base: std::ptr::null_mut(), iov_len: HDR_LEN }];
    push_guest_iovecs(mem, &chain.readable, HDR_LEN as u64, len, false, &mut iov)?;
    if iov.len() > IOV_MAX {
        // Cannot happen with our queues (a chain has at most QUEUE_SIZE descriptors, each
        // inside one memory region): refused rather than split over two writes.
        STATS.tx_dropped.fetch_add(1, Relaxed);
        frame_refused!("virtio-net: a transmit chain in {} pieces, more than one writev takes, dropped", iov.len() - 1);
        return Ok(None);
    }
    Ok(Some(Frame { hdr: hdr.to_bytes(), iov, len }))
}

/// Counts a frame of `len` bytes as sent, or as dropped when the tap refused it.
pub fn sent(len: u64, result: io::Result<usize>) {
    match result {
        Ok(_) => {
            STATS.tx_frames.fetch_add(1, Relaxed);
            STATS.tx_bytes.fetch_add(len, Relaxed);
        }
        Err(e) => {
            STATS.tx_dropped.fetch_add(1, Relaxed);
            let hint = if e.raw_os_error() == Some(libc::EIO) { " (is the tap up?)" } else { "" };
            guest_warn!(guest_errors::HOST_IO, "virtio-net: the tap refused a frame of {len} bytes: {e}{hint}");
        }
    }
}

/// Writes `frame` to `io` at once (one `writev`), and counts it.
pub fn write_now(frame: &mut Frame, io: &dyn FrameIo) {
    let len = frame.len;
    // SAFETY: the first iovec is the frame's header copy, which lives through the call;
    // the others are host addresses of the chain's device-readable buffers, checked
    // inside guest memory by vm-memory and mapped while `mem` lives. The kernel only
    // reads them.
    let result = unsafe { io.write_frame(frame.iovecs()) };
    sent(len, result);
}

/// Sends the frame of one transmit chain with one `writev`; returns the used length (0).
pub fn transmit(mem: &GuestMemoryMmap, chain: &Chain, io: &dyn FrameIo, csum: bool) -> Result<u32, DeviceError> {
    if let Some(mut frame) = check(mem, chain, csum)? {
        write_now(&mut frame, io);
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::virtio::chain::tests::TestQueue;
    use crate::devices::virtio::net::rx::tests::{pattern, FakeTap};
    use crate::devices::virtio::net::VIRTIO_NET_HDR_F_DATA_VALID;
    use vm_memory::{Bytes, GuestAddress};

    const HDR: u64 = 0x20000;
    const DATA: u64 = 0x30000;

    fn send(t: &mut TestQueue, q: &mut virtio_queue::Queue, tap: &FakeTap, hdr: NetHdr, bufs: &[(u64, u32, bool)]) -> Result<u32, DeviceError> {
        t.mem.write_slice(&hdr.to_bytes(), GuestAddress(HDR)).unwrap();
        t.chain(0, bufs);
        t.publish(0);
        transmit(&t.mem, &t.pop(q).unwrap(), tap, false)
    }

    #[test]
    fn frames_reach_the_tap_with_their_header() {
        let mut t = TestQueue::new(16);
        let mut q = t.queue();
        let tap = FakeTap::default();
        let frame = pattern(1514, 3);
        t.mem.write_slice(&frame, GuestAddress(DATA)).unwrap();
        // Header and frame in separate buffers, the frame itself in two.
        let hdr = NetHdr { hdr_len: 14, num_buffers: 9, ..Default::default() };
        let len = send(&mut t, &mut q, &tap, hdr, &[(HDR, 12, false), (DATA, 1000, false), (DATA + 1000, 514, false)]).unwrap();
        assert_eq!(len, 0);
        let sent = tap.sent.lock().unwrap().pop().unwrap();
        assert_eq!(NetHdr::from_bytes(&sent[..12].try_into().unwrap()), NetHdr { hdr_len: 14, ..Default::default() });
        assert_eq!(&sent[12..], &frame[..]);
        // Header and frame in one buffer.
        t.mem.write_slice(&frame[..60], GuestAddress(HDR + 12)).unwrap();
        send(&mut t, &mut q, &tap, NetHdr::default(), &[(HDR, 72, false)]).unwrap();
        let sent = tap.sent.lock().unwrap().pop().unwrap();
        assert_eq!(sent.len(), 72);
        assert_eq!(&sent[12..], &frame[..60]);
    }

    /// Bad lengths and headers are dropped (used length 0, nothing sent); a writable
    /// buffer needs a reset.
    #[test]
    fn bad_frames_are_dropped() {
        let mut t = TestQueue::new(16);
        let mut q = t.queue();
        let tap = FakeTap::default();
        let ok = NetHdr::default();
        assert_eq!(send(&mut t, &mut q, &tap, ok, &[(HDR, 12, false)]), Ok(0));
        assert_eq!(send(&mut t, &mut q, &tap, ok, &[(HDR, 5, false), (DATA, 7, false)]), Ok(0));
        assert_eq!(send(&mut t, &mut q, &tap, ok, &[(HDR, 12, false), (DATA, MAX_TX_FRAME as u32 + 1, false)]), Ok(0));
        for bad in [
            NetHdr { flags: super::super::VIRTIO_NET_HDR_F_NEEDS_CSUM, csum_start: 34, csum_offset: 16, ..ok },
            NetHdr { flags: VIRTIO_NET_HDR_F_DATA_VALID, ..ok },
            NetHdr { gso_type: 1, gso_size: 1448, ..ok },
            NetHdr { flags: 0x80, ..ok },
            NetHdr { hdr_len: 61, ..ok },
        ] {
            assert_eq!(send(&mut t, &mut q, &tap, bad, &[(HDR, 12, false), (DATA, 60, false)]), Ok(0), "{bad:?}");
        }
        assert!(tap.sent.lock().unwrap().is_empty());
        // The longest frame goes.
        assert_eq!(send(&mut t, &mut q, &tap, ok, &[(HDR, 12, false), (DATA, MAX_TX_FRAME as u32, false)]), Ok(0));
        assert_eq!(tap.sent.lock().unwrap().pop().unwrap().len(), 12 + MAX_TX_FRAME);
        assert!(matches!(
            send(&mut t, &mut q, &tap, ok, &[(HDR, 12, false), (DATA, 60, false), (DATA + 0x1000, 16, true)]),
            Err(DeviceError::Request(_))
        ));
        assert!(tap.sent.lock().unwrap().is_empty());
    }

    /// With VIRTIO_NET_F_CSUM a header may ask for a checksum whose field lies in the
    /// frame; one past it, a segmentation, or other flags are still refused.
    #[test]
    fn checksum_requests_with_csum() {
        use super::super::VIRTIO_NET_HDR_F_NEEDS_CSUM as NEEDS;
        let ok = NetHdr::default();
        let asks = |start, offset| NetHdr { flags: NEEDS, csum_start: start, csum_offset: offset, ..ok };
        assert_eq!(check_header(&asks(34, 16), true, 60), Ok(()));
        assert_eq!(check_header(&asks(34, 24), true, 60), Ok(()), "the field's last byte is the frame's");
        assert!(check_header(&asks(34, 25), true, 60).is_err());
        assert!(check_header(&asks(0xffff, 0xffff), true, 60).is_err());
        assert!(check_header(&asks(34, 16), false, 60).is_err());
        assert!(check_header(&NetHdr { gso_type: 1, gso_size: 1448, ..asks(34, 16) }, true, 60).is_err());
        assert!(check_header(&NetHdr { flags: NEEDS | 2, ..asks(34, 16) }, true, 60).is_err());
        assert_eq!(check_header(&ok, true, 60), Ok(()));
    }
}
