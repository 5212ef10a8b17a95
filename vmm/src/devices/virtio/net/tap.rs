//! The host side of a virtio-net device: a tap interface, through `/dev/net/tun`.
//!
//! [`Tap::open`] attaches to the tap named on the command line, or creates it if the
//! VMM may (CAP_NET_ADMIN; a tap created so lives as long as the VMM), with
//! IFF_TAP | IFF_NO_PI | IFF_VNET_HDR: each read gives, and each write takes, one
//! Ethernet frame preceded by a 12-byte `virtio_net_hdr_v1` (TUNSETVNETHDRSZ 12), the
//! very header of the virtqueues. TUNSETOFFLOAD 0 turns off any offload a previous user
//! left on a persistent tap: the host then hands us only complete, checksummed frames.
//! The descriptor is nonblocking: a read with no frame waiting fails with EAGAIN, which
//! the device worker takes as "wait for the descriptor to be readable" (see
//! [`super::device`]). io_uring does not go by O_NONBLOCK alone: its writes to the tap
//! carry RWF_NOWAIT.
//!
//! Frames enter with one `readv` each ([`FrameIo`]), on iovecs that point into guest
//! memory; they leave as WRITEVs on the device's io_uring, or with one `writev` each
//! without it.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;

use super::HDR_LEN;

/// Where frames come from and go to: the tap, or a test's stand-in. Each call moves one
/// whole frame, header first.
pub trait FrameIo: Send + Sync {
    /// Reads one frame into the buffers of `iov`, in order. Returns the frame's length,
    /// which (as the tap does) may exceed the buffers' total when they were too short:
    /// the frame was then truncated. `WouldBlock` when no frame is waiting.
    ///
    /// # Safety
    ///
    /// Every iovec must be valid for writes of its length for the duration of the call.
    unsafe fn read_frame(&self, iov: &[libc::iovec]) -> io::Result<usize>;

    /// Writes one frame, gathered from the buffers of `iov`, in order.
    ///
    /// # Safety
    ///
    /// Every iovec must be valid for reads of its length for the duration of the call.
    unsafe fn write_frame(&self, iov: &[libc::iovec]) -> io::Result<usize>;
}

/// An open tap interface.
pub struct Tap {
    file: File,
    name: String,
}

/// TUNSETOFFLOAD's flag for partial checksums (linux/if_tun.h).
pub const TUN_F_CSUM: libc::c_uint = 0x01;

/// `struct ifreq` as TUNSETIFF reads and writes it: the name and the flags (the rest of
/// the union unused).
#[repr(C)]
struct IfReq {
    name: [u8; libc::IFNAMSIZ],
    flags: libc::c_short,
    _rest: [u8; 22],
}

const _: () = assert!(size_of::<IfReq>() == 40);
const _: () = assert!(std::mem::offset_of!(IfReq, flags) == 16);

const TUN_PATH: &str = "/dev/net/tun";

impl Tap {
    /// Opens the tap `name` (at most 15 bytes; `config::parse_net` checks it), creating it
    /// if it does not exist. The error says which step failed, with a hint for the usual
    /// causes (no /dev/net/tun, EPERM, EBUSY).
    pub fn open(name: &str) -> io::Result<Tap> {
        if name.is_empty() || name.len() >= libc::IFNAMSIZ || name.contains('\0') {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "not an interface name"));
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open(TUN_PATH)
            .map_err(|e| io::Error::new(e.kind(), format!("cannot open {TUN_PATH}: {e}{}", open_hint(&e))))?;
        let mut req = IfReq { name: [0; libc::IFNAMSIZ], flags: 0, _rest: [0; 22] };
        req.name[..name.len()].copy_from_slice(name.as_bytes());
        req.flags = (libc::IFF_TAP | libc::IFF_NO_PI | libc::IFF_VNET_HDR) as libc::c_short;
        let fd = file.as_raw_fd();
        // SAFETY: TUNSETIFF reads and writes one `struct ifreq`, which `req` is (40 bytes,
        // the name NUL-terminated); `fd` is open.
        if unsafe { libc::ioctl(fd, libc::TUNSETIFF, &mut req) } < 0 {
            let e = io::Error::last_os_error();
            return Err(io::Error::new(e.kind(), format!("TUNSETIFF: {e}{}", setiff_hint(&e, name))));
        }
        let hdr_len = HDR_LEN as libc::c_int;
        // SAFETY: TUNSETVNETHDRSZ reads one int, which `hdr_len` is.
        if unsafe { libc::ioctl(fd, libc::TUNSETVNETHDRSZ, &hdr_len) } < 0 {
            let e = io::Error::last_os_error();
            return Err(io::Error::new(e.kind(), format!("TUNSETVNETHDRSZ: {e}")));
        }
        // No offload bits: checksums and segmentation are the host kernel's to do. The
        // argument is the value itself, not a pointer.
        // SAFETY: TUNSETOFFLOAD takes an integer argument and touches no memory of ours.
        if unsafe { libc::ioctl(fd, libc::TUNSETOFFLOAD, 0 as libc::c_ulong) } < 0 {
            let e = io::Error::last_os_error();
            return Err(io::Error::new(e.kind(), format!("TUNSETOFFLOAD: {e}")));
        }
        Ok(Tap { file, name: name.to_owned() })
    }

    /// TUNSETOFFLOAD: which offloads the frames the tap hands us may use (TUN_F_CSUM:
    /// partial checksums, NEEDS_CSUM in the header); 0 for none.
    pub fn set_offload(&self, flags: libc::c_uint) -> io::Result<()> {
        // SAFETY: TUNSETOFFLOAD takes an integer argument and touches no memory of ours.
        if unsafe { libc::ioctl(self.file.as_raw_fd(), libc::TUNSETOFFLOAD, libc::c_ulong::from(flags)) } < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// A stand-in for a tap: a descriptor that keeps message boundaries, as a datagram
    /// socket does, and is nonblocking. For the unit tests (`device.rs`) and the fuzz
    /// target `fuzz/src/targets/net.rs`, which have no tap (hence public, not
    /// `cfg(test)`: the fuzz crate builds this crate as a normal dependency). Unlike a
    /// tap, a datagram socket's read of a frame longer than the buffers reports the
    /// bytes it stored, not the frame's length.
    pub fn from_file(file: File, name: &str) -> Tap {
        Tap { file, name: name.to_owned() }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }
}

fn open_hint(e: &io::Error) -> &'static str {
    match e.raw_os_error() {
        Some(libc::ENOENT | libc::ENODEV | libc::ENXIO) => " (no tun/tap support: modprobe tun)",
        Some(libc::EACCES | libc::EPERM) => " (this user may not use it)",
        _ => "",
    }
}

fn setiff_hint(e: &io::Error, name: &str) -> String {
    match e.raw_os_error() {
        Some(libc::EPERM) => {
            format!(" (creating a tap takes CAP_NET_ADMIN; create it for this user first: ip tuntap add dev {name} mode tap user $USER)")
        }
        Some(libc::EBUSY) => " (another program has the tap open)".to_owned(),
        Some(libc::EINVAL) => format!(" (is {name} a single-queue tap, not a tun or another kind of interface?)"),
        _ => String::new(),
    }
}

impl FrameIo for Tap {
    unsafe fn read_frame(&self, iov: &[libc::iovec]) -> io::Result<usize> {
        loop {
            // SAFETY: the caller's promise for each iovec; at most IOV_MAX of them (the
            // kernel refuses more with EINVAL, which would be reported).
            let n = unsafe { libc::readv(self.fd(), iov.as_ptr(), iov.len().min(i32::MAX as usize) as libc::c_int) };
            if n >= 0 {
                return Ok(n as usize);
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }

    unsafe fn write_frame(&self, iov: &[libc::iovec]) -> io::Result<usize> {
        loop {
            // SAFETY: the caller's promise for each iovec.
            let n = unsafe { libc::writev(self.fd(), iov.as_ptr(), iov.len().min(i32::MAX as usize) as libc::c_int) };
            if n >= 0 {
                return Ok(n as usize);
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Errors name the failing step in one line (the tap itself may or may not be
    /// creatable here: only the shape of a failure is checked).
    #[test]
    fn errors_are_one_line() {
        for e in [libc::EPERM, libc::EBUSY, libc::EINVAL] {
            let hint = setiff_hint(&io::Error::from_raw_os_error(e), "vt0");
            assert!(!hint.contains('\n') && !hint.is_empty());
        }
        assert!(Tap::open("").is_err());
        assert!(Tap::open("sixteen-chars-xx").is_err());
    }
}
